//! The multiplier settings of the shipped weighers (Nova's option names and
//! defaults), which a weigher gets when its own `[plugins.<name>]` table does
//! not set `multiplier`, `multiplier_key` or `normalization_min`. The
//! scheduler's `[scheduler] weighers` default lists these weighers.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_and_unknown_weighers() {
        assert_eq!(WEIGHER_DEFAULTS.len(), 11);
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
