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
}

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
        assert!(toml::from_str::<SchedulerConfig>("max_attempt = 2\n").is_err());
    }
}
