//! MetricsWeigher (Nova's `nova.scheduler.weights.metrics.MetricsWeigher`).
//!
//! Configuration (the `[metrics]` options of Nova):
//! - `weight_setting`: `"name1=1.0, name2=-1.0"` (or a JSON array of such
//!   items). Items without `=`, with an empty name or a ratio that is not a
//!   number are ignored; a name given twice counts twice.
//! - `required` (default `true`): whether every metric in `weight_setting`
//!   must be reported by every host.
//! - `weight_of_unavailable` (default −10000.0): the weight of a host that
//!   misses a metric when metrics are not required.
//! - `metrics_weight_multiplier` (default 1.0): the weigher's multiplier as
//!   the controller applies it; read only to tell whether a missing metric
//!   matters (below). Aggregate metadata `metrics_weight_multiplier` overrides
//!   it per host, the minimum winning, as in the controller.
//!
//! Raw weight: Σ value(name) × ratio over `weight_setting`. When a host lacks
//! one of the metrics:
//! - with `required = true`, Nova raises `ComputeHostMetricNotFound` and the
//!   scheduling attempt fails. The weigher has no error channel, so it panics
//!   (a trap in wasm, handled by the plugin's failure policy). Enable the
//!   MetricsFilter to remove such hosts before weighing, as Nova advises.
//! - with `required = false`, the host weighs `weight_of_unavailable`, unless
//!   that metric's ratio or the host's multiplier is 0, in which case the
//!   metric is skipped (contributes nothing).

use novum_plugin_sdk::weighing::weight_multiplier;
use novum_plugin_sdk::{Column, Config, HostView, Request, Weigher};

/// Aggregate metadata key and configuration key of the multiplier.
const MULTIPLIER_KEY: &str = "metrics_weight_multiplier";

/// Nova's MetricsWeigher.
pub struct MetricsWeigher {
    setting: Vec<(String, f64)>,
    required: bool,
    weight_of_unavailable: f64,
    multiplier: f64,
}

impl Default for MetricsWeigher {
    fn default() -> Self {
        Self::from_config(&Config::default())
    }
}

impl MetricsWeigher {
    /// The weigher for `config` (defaults as in Nova).
    pub fn from_config(config: &Config) -> Self {
        Self {
            setting: config.ratios("weight_setting"),
            required: config.bool_or("required", true),
            weight_of_unavailable: config.f64_or("weight_of_unavailable", -10000.0),
            multiplier: config.f64_or(MULTIPLIER_KEY, 1.0),
        }
    }
}

impl Weigher for MetricsWeigher {
    const DESCRIPTION: &'static str = "weighted sum of host metrics from weight_setting";
    const NEEDS: &'static [Column] = &[Column::Metrics, Column::Aggregates];

    /// No `weight_setting`: every host weighs 0, so no host data is needed.
    fn needs(config: &Config, _request: &Request) -> Vec<Column> {
        if config.ratios("weight_setting").is_empty() {
            Vec::new()
        } else {
            Self::NEEDS.to_vec()
        }
    }

    fn prepare(config: &Config, _request: &Request) -> Self {
        Self::from_config(config)
    }

    fn weigh(&self, _request: &Request, host: &HostView<'_>) -> f64 {
        let mut value = 0.0;
        for (name, ratio) in &self.setting {
            match host.metric(name) {
                Some(metric) => value += metric * ratio,
                None if self.required => {
                    panic!(
                        "ComputeHostMetricNotFound: metric `{name}` not found on host row {}",
                        host.row()
                    )
                }
                None => {
                    if ratio * weight_multiplier(host, MULTIPLIER_KEY, self.multiplier) != 0.0 {
                        return self.weight_of_unavailable;
                    }
                }
            }
        }
        value
    }
}

novum_plugin_sdk::export_weigher!(MetricsWeigher);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::fixtures::{pairs, request};
    use novum_plugin_sdk::{Aggregate, HostTable, run_weigher};

    const IDLE: &str = "cpu.idle.time";
    const KERNEL: &str = "cpu.kernel.time";
    const USER: &str = "cpu.user.time";

    /// The six hosts of Nova's MetricsWeigher unit tests.
    fn hosts() -> HostTable {
        let mut hosts = HostTable::with_len(6);
        hosts.set_metrics(&[
            &[(IDLE, 512.0), (KERNEL, 1.0)],
            &[(IDLE, 1024.0), (KERNEL, 2.0)],
            &[(IDLE, 3072.0), (KERNEL, 1.0)],
            &[(IDLE, 8192.0), (KERNEL, 0.0)],
            &[(IDLE, 768.0), (KERNEL, 0.0), (USER, 1.0)],
            &[(IDLE, 2048.0), (KERNEL, 0.0), (USER, 2.0)],
        ]);
        hosts.set_aggregates(Vec::new(), &[&[], &[], &[], &[], &[], &[]]);
        hosts
    }

    fn weights(config: &[(&str, &str)], hosts: &HostTable) -> Vec<f64> {
        run_weigher::<MetricsWeigher>(&Config::from_pairs(config), &request(), hosts)
    }

    /// The row with the largest weight (the first on ties, as a stable sort).
    fn best(weights: &[f64]) -> usize {
        let mut best = 0;
        for (row, weight) in weights.iter().enumerate() {
            if *weight > weights[best] {
                best = row;
            }
        }
        best
    }

    #[test]
    fn single_resource_prefers_the_largest_value() {
        let weights = weights(&[("weight_setting", &format!("{IDLE}=1"))], &hosts());
        assert_eq!(weights, vec![512.0, 1024.0, 3072.0, 8192.0, 768.0, 2048.0]);
    }

    #[test]
    fn ratios_combine_and_may_be_negative() {
        let multiple = weights(
            &[("weight_setting", &format!("{IDLE}=0.0001, {KERNEL}=1"))],
            &hosts(),
        );
        assert_eq!(best(&multiple), 1);
        let negative = weights(&[("weight_setting", &format!("{IDLE}=-1"))], &hosts());
        assert_eq!(best(&negative), 0);
        let duplicate = weights(
            &[("weight_setting", &format!("{IDLE}=-2, {IDLE}=1"))],
            &hosts(),
        );
        assert_eq!(duplicate[0], -512.0);
        assert_eq!(best(&duplicate), 0);
    }

    #[test]
    fn malformed_items_are_ignored() {
        let missing_ratio = weights(
            &[("weight_setting", &format!("{IDLE}=0.0001, {KERNEL}"))],
            &hosts(),
        );
        assert_eq!(best(&missing_ratio), 3);
        let wrong_ratio = weights(
            &[("weight_setting", &format!("{IDLE}=0.0001, {KERNEL} = 2.0t"))],
            &hosts(),
        );
        assert_eq!(best(&wrong_ratio), 3);
    }

    #[test]
    #[should_panic(expected = "ComputeHostMetricNotFound")]
    fn a_missing_metric_fails_when_required() {
        weights(
            &[("weight_setting", &format!("{IDLE}=1, {USER}=2"))],
            &hosts(),
        );
    }

    #[test]
    fn a_missing_metric_weighs_unavailable_when_not_required() {
        let config = [
            ("weight_setting", format!("{IDLE}=0.0001, {USER}=-1")),
            ("required", "false".to_string()),
        ];
        let config: Vec<(&str, &str)> = config
            .iter()
            .map(|(key, value)| (*key, value.as_str()))
            .collect();
        let weights = weights(&config, &hosts());
        assert_eq!(&weights[..4], &[-10000.0; 4]);
        assert_eq!(best(&weights), 4);
    }

    #[test]
    fn a_zero_ratio_or_multiplier_skips_a_missing_metric() {
        let zero_ratio = weights(
            &[
                ("weight_setting", &format!("{IDLE}=1, {USER}=0")),
                ("required", "false"),
                ("weight_of_unavailable", "-5"),
            ],
            &hosts(),
        );
        assert_eq!(zero_ratio[0], 512.0);
        let zero_multiplier = weights(
            &[
                ("weight_setting", &format!("{IDLE}=1, {USER}=1")),
                ("required", "false"),
                (MULTIPLIER_KEY, "0"),
            ],
            &hosts(),
        );
        assert_eq!(zero_multiplier[0], 512.0);
        assert_eq!(zero_multiplier[4], 769.0);
    }

    #[test]
    fn an_aggregate_multiplier_of_zero_skips_a_missing_metric_on_its_hosts() {
        let mut hosts = hosts();
        let zero = Aggregate {
            name: "zero".into(),
            metadata: pairs(&[(MULTIPLIER_KEY, "0")]),
        };
        hosts.set_aggregates(vec![zero], &[&[0], &[], &[], &[], &[], &[]]);
        let weights = weights(
            &[
                ("weight_setting", &format!("{IDLE}=1, {USER}=1")),
                ("required", "false"),
            ],
            &hosts,
        );
        assert_eq!(weights[0], 512.0);
        assert_eq!(weights[1], -10000.0);
    }
}
