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
//! ```

use serde::{Deserialize, Serialize};

use crate::plugins::Backend;

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

/// The shipped weighers with the aggregate metadata key that overrides their
/// multiplier and their default multiplier (Nova's option names and defaults).
pub const WEIGHER_DEFAULTS: &[(&str, &str, f64)] = &[
    ("ram-weigher", "ram_weight_multiplier", 1.0),
    ("cpu-weigher", "cpu_weight_multiplier", 1.0),
    ("disk-weigher", "disk_weight_multiplier", 1.0),
    ("io-ops-weigher", "io_ops_weight_multiplier", -1.0),
    (
        "num-instances-weigher",
        "num_instances_weight_multiplier",
        0.0,
    ),
    (
        "server-group-soft-affinity-weigher",
        "soft_affinity_weight_multiplier",
        1.0,
    ),
    (
        "server-group-soft-anti-affinity-weigher",
        "soft_anti_affinity_weight_multiplier",
        1.0,
    ),
    (
        "build-failure-weigher",
        "build_failure_weight_multiplier",
        1_000_000.0,
    ),
    (
        "hypervisor-version-weigher",
        "hypervisor_version_weight_multiplier",
        1.0,
    ),
    ("metrics-weigher", "metrics_weight_multiplier", 1.0),
    ("image-props-weigher", "image_props_weight_multiplier", 0.0),
];

/// The shipped weighers that normalize from 0 rather than from the smallest
/// weight among the candidates (Nova's `minval = 0`): free RAM of 1024 and
/// 2048 MB normalize to 0.5 and 1.0.
pub const NORMALIZED_FROM_ZERO: &[&str] = &[
    "ram-weigher",
    "cpu-weigher",
    "disk-weigher",
    "io-ops-weigher",
];

/// The default normalization floor of weigher `name`: 0.0 for
/// [`NORMALIZED_FROM_ZERO`], else none (the smallest weight).
pub fn weigher_normalization_min(name: &str) -> Option<f64> {
    NORMALIZED_FROM_ZERO.contains(&name).then_some(0.0)
}

/// The aggregate key and default multiplier of weigher `name`: the table
/// above, else `<name>_weight_multiplier` (dashes as underscores) and 1.0.
pub fn weigher_defaults(name: &str) -> (String, f64) {
    WEIGHER_DEFAULTS
        .iter()
        .find(|(weigher, _, _)| *weigher == name)
        .map(|(_, key, multiplier)| ((*key).to_string(), *multiplier))
        .unwrap_or_else(|| (format!("{}_weight_multiplier", name.replace('-', "_")), 1.0))
}

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
        assert_eq!(
            weigher_defaults("io-ops-weigher"),
            ("io_ops_weight_multiplier".to_string(), -1.0)
        );
        assert_eq!(weigher_normalization_min("ram-weigher"), Some(0.0));
        assert_eq!(weigher_normalization_min("io-ops-weigher"), Some(0.0));
        assert_eq!(weigher_normalization_min("metrics-weigher"), None);
        assert_eq!(
            weigher_defaults("my-weigher"),
            ("my_weigher_weight_multiplier".to_string(), 1.0)
        );
    }
}
