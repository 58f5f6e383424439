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
//! decision_replay_size = 100        # newest decisions that keep their inputs (replay)
//! decision_replay_max_hosts = 1000  # only decisions over at most this many hosts keep them
//!
//! [scheduler.shadow]                # a candidate plugin set run beside production
//! plugins = "/etc/novum/candidate.toml"   # the format of `novum plan --plugins`
//! sample_rate = 1.0                 # share of real decisions it re-runs
//! queue = 256                       # decisions waiting for it at most (beyond: dropped)
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
    /// How many of the newest decisions keep their inputs (the request and
    /// the hosts as the plugins saw them, deflated) so that `novum decision
    /// replay` can run them again; 0 keeps none and captures nothing.
    pub decision_replay_size: u64,
    /// Only decisions over at most this many hosts keep their inputs
    /// (encoding them is the costly part: about 2 KiB of JSON per host,
    /// deflated to a tenth, on the log's writer).
    pub decision_replay_max_hosts: usize,
    /// A candidate plugin set run beside production on real decisions
    /// (never deciding); none by default.
    pub shadow: Option<ShadowConfig>,
}

/// `[scheduler.shadow]`: a candidate plugin set that re-runs real
/// decisions off their path and records where its choice differs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShadowConfig {
    /// The candidate set: a TOML file in the format `novum plan --plugins`
    /// takes (`[scheduler]` lists and `[plugins.*]` tables over the live
    /// configuration); re-read by `novum plugin reload`.
    pub plugins: std::path::PathBuf,
    /// The share of real decisions the shadow re-runs (0..=1).
    pub sample_rate: f64,
    /// Decisions waiting for the shadow at most; a full queue drops (and
    /// counts) the decision rather than wait.
    pub queue: usize,
}

impl Default for ShadowConfig {
    fn default() -> Self {
        Self {
            plugins: std::path::PathBuf::new(),
            sample_rate: 1.0,
            queue: DEFAULT_SHADOW_QUEUE,
        }
    }
}

/// Decisions waiting for the shadow at most, by default.
pub const DEFAULT_SHADOW_QUEUE: usize = 256;

/// The longest shadow queue.
pub const MAX_SHADOW_QUEUE: usize = 100_000;

/// The most hosts a decision may be over and keep its inputs, by default.
pub const DEFAULT_DECISION_REPLAY_MAX_HOSTS: usize = 1000;

/// Decisions that keep their inputs by default.
pub const DEFAULT_DECISION_REPLAY_SIZE: u64 = 100;

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
            decision_replay_size: DEFAULT_DECISION_REPLAY_SIZE,
            decision_replay_max_hosts: DEFAULT_DECISION_REPLAY_MAX_HOSTS,
            shadow: None,
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
        let shadow: SchedulerConfig =
            toml::from_str("[shadow]\nplugins = \"c.toml\"\nsample_rate = 0.5\n").expect("valid");
        let shadow = shadow.shadow.expect("a shadow");
        assert_eq!(shadow.sample_rate, 0.5);
        assert_eq!(shadow.queue, DEFAULT_SHADOW_QUEUE);
    }
}
