//! AggregateNumInstancesFilter: NumInstancesFilter with a per-aggregate
//! limit. The limit is the aggregate metadata `max_instances_per_host` of the
//! host's aggregates (several aggregates: the minimum wins), else the
//! configuration key `max_instances_per_host` (default 50). As in Nova, if any
//! aggregate value is not an integer, the aggregate values are ignored and the
//! configured limit applies.

use novum_plugin_sdk::count_limit::INSTANCES;
use novum_plugin_sdk::{Column, Config, Filter, HostView, Request};

/// The aggregate metadata key and configuration key.
pub const KEY: &str = INSTANCES.key;
/// The default limit.
pub const DEFAULT_MAX_INSTANCES_PER_HOST: i64 = INSTANCES.default;

/// Nova's AggregateNumInstancesFilter, holding the configured limit.
pub struct AggregateNumInstancesFilter(i64);

impl Default for AggregateNumInstancesFilter {
    fn default() -> Self {
        Self(INSTANCES.default)
    }
}

impl Filter for AggregateNumInstancesFilter {
    const DESCRIPTION: &'static str =
        "fewer instances on the host than its aggregates' max_instances_per_host";
    const NEEDS: &'static [Column] = &[Column::NumInstances, Column::Aggregates];

    fn prepare(config: &Config, _request: &Request) -> Self {
        Self(INSTANCES.configured(config))
    }

    fn host_passes(&self, _request: &Request, host: &HostView<'_>) -> Result<(), String> {
        INSTANCES.check_with_aggregate_override(host, self.0)
    }
}

novum_plugin_sdk::export_filter!(AggregateNumInstancesFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::fixtures::request;
    use novum_plugin_sdk::testing::{HostSpec, aggregates_setting, filter_passes};

    fn host(count: u32, limits: &[&str]) -> HostSpec {
        HostSpec {
            num_instances: count,
            aggregates: aggregates_setting(KEY, limits),
            ..HostSpec::named("h")
        }
    }

    fn check(config: &Config, hosts: &[HostSpec]) -> Vec<bool> {
        filter_passes::<AggregateNumInstancesFilter>(config, &request(), hosts)
    }

    #[test]
    fn without_aggregate_value_uses_config() {
        assert_eq!(
            check(&Config::default(), &[host(49, &[]), host(50, &[])]),
            [true, false]
        );
        let config = Config::from_pairs(&[(KEY, "4")]);
        assert_eq!(check(&config, &[host(3, &[]), host(4, &[])]), [true, false]);
    }

    #[test]
    fn aggregate_value_overrides_config_in_both_directions() {
        let config = Config::from_pairs(&[(KEY, "4")]);
        assert_eq!(
            check(&config, &[host(5, &["6"]), host(6, &["6"])]),
            [true, false]
        );
        assert_eq!(
            check(&config, &[host(1, &["2"]), host(2, &["2"])]),
            [true, false]
        );
    }

    #[test]
    fn minimum_of_several_aggregates_wins() {
        assert_eq!(
            check(
                &Config::default(),
                &[host(2, &["10", "3"]), host(3, &["3", "10"])]
            ),
            [true, false]
        );
    }

    #[test]
    fn invalid_aggregate_value_falls_back_to_config() {
        let config = Config::from_pairs(&[(KEY, "4")]);
        assert_eq!(
            check(&config, &[host(3, &["XXX"]), host(4, &["1", "XXX"])]),
            [true, false]
        );
    }
}
