//! The `[scheduler]` section of the controller's configuration.
//!
//! ```toml
//! [scheduler]
//! enabled_filters = ["compute-filter", "compute-capabilities-filter", "image-properties-filter",
//!                    "server-group-anti-affinity-filter", "server-group-affinity-filter",
//!                    "availability-zone-filter"]
//! weighers = ["ram-weigher", "cpu-weigher", ...]   # default: all eleven
//! host_subset_size = 1
//! max_attempts = 3
//! backend = "wasm"        # or "native": the plugin crates compiled in
//! host_state_resync_seconds = 300   # host state re-read whole this often
//! decision_log_size = 1000          # decisions kept (0: none kept)
//! decision_log_top_hosts = 10       # hosts of each decision's ranking kept
//! ```

use serde::{Deserialize, Serialize};

use novum_plugin_host::weigher_defaults::WEIGHER_DEFAULTS;
use novum_plugin_host::{Backend, PluginSelection};

/// Nova's default filters, plus the availability zone filter (novum has no
/// Placement pre-filter).
pub const DEFAULT_FILTERS: &[&str] = &[
    "compute-filter",
    "compute-capabilities-filter",
    "image-properties-filter",
    "server-group-anti-affinity-filter",
    "server-group-affinity-filter",
    "availability-zone-filter",
];

/// `[scheduler]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Filters, run in this order.
    pub enabled_filters: Vec<String>,
    /// Weighers.
    pub weighers: Vec<String>,
    /// Pick the destination randomly among this many best hosts.
    pub host_subset_size: usize,
    /// Attempts per instance: the selected host plus `max_attempts - 1`
    /// alternates.
    pub max_attempts: usize,
    /// How plugins run: sandboxed components, or the crates compiled in.
    pub backend: Backend,
    /// The in-memory host state follows the database's change log between
    /// decisions; every this many seconds it is re-read whole all the same.
    pub host_state_resync_seconds: u64,
    /// How many scheduling decisions the decision log keeps (the newest, in
    /// the database every controller shares; `GET
    /// /novum/v1/decisions/{request_id}`). 0 keeps none and the pipeline
    /// collects nothing for it.
    pub decision_log_size: u64,
    /// How many of the best hosts of each decision's ranking are kept, with
    /// every weigher's part.
    pub decision_log_top_hosts: usize,
}

/// Decisions kept by default.
pub const DEFAULT_DECISION_LOG_SIZE: u64 = 1000;

/// Ranked hosts kept per decision by default.
pub const DEFAULT_DECISION_LOG_TOP_HOSTS: usize = 10;

/// The most decisions the log may keep (a decision at 10,000 hosts can
/// name every one of them).
pub const MAX_DECISION_LOG_SIZE: u64 = 100_000;

/// The most ranked hosts a decision may keep.
pub const MAX_DECISION_LOG_TOP_HOSTS: usize = 1000;

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            enabled_filters: DEFAULT_FILTERS
                .iter()
                .map(|name| (*name).to_string())
                .collect(),
            weighers: WEIGHER_DEFAULTS
                .iter()
                .map(|(name, _, _)| (*name).to_string())
                .collect(),
            host_subset_size: 1,
            max_attempts: 3,
            backend: Backend::default(),
            host_state_resync_seconds: 300,
            decision_log_size: DEFAULT_DECISION_LOG_SIZE,
            decision_log_top_hosts: DEFAULT_DECISION_LOG_TOP_HOSTS,
        }
    }
}

impl SchedulerConfig {
    /// The plugins this section selects: its filters and weighers.
    pub fn plugin_selection(&self) -> PluginSelection {
        PluginSelection {
            filters: self.enabled_filters.clone(),
            weighers: self.weighers.clone(),
            ..PluginSelection::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let config: SchedulerConfig = toml::from_str("host_subset_size = 2\n").expect("valid");
        assert_eq!(config.host_subset_size, 2);
        assert_eq!(config.max_attempts, 3);
        assert_eq!(config.weighers.len(), 11);
        assert_eq!(config.enabled_filters.len(), 6);
        assert_eq!(config.decision_log_size, DEFAULT_DECISION_LOG_SIZE);
        assert!(toml::from_str::<SchedulerConfig>("max_attempt = 2\n").is_err());
    }
}
