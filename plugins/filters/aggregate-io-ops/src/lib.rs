//! AggregateIoOpsFilter: IoOpsFilter with a per-aggregate limit. The limit is
//! the aggregate metadata `max_io_ops_per_host` of the host's aggregates
//! (several aggregates: the minimum wins), else the configuration key
//! `max_io_ops_per_host` (default 8). As in Nova, if any aggregate value is
//! not an integer, the aggregate values are ignored and the configured limit
//! applies.

use novum_plugin_sdk::count_limit::IO_OPS;
use novum_plugin_sdk::{Column, Config, Filter, HostView, Request};

/// The aggregate metadata key and configuration key.
pub const KEY: &str = IO_OPS.key;
/// The default limit.
pub const DEFAULT_MAX_IO_OPS_PER_HOST: i64 = IO_OPS.default;

/// Nova's AggregateIoOpsFilter, holding the configured limit.
pub struct AggregateIoOpsFilter(i64);

impl Default for AggregateIoOpsFilter {
    fn default() -> Self {
        Self(IO_OPS.default)
    }
}

impl Filter for AggregateIoOpsFilter {
    const DESCRIPTION: &'static str =
        "fewer I/O-heavy tasks on the host than its aggregates' max_io_ops_per_host";
    const NEEDS: &'static [Column] = &[Column::NumIoOps, Column::Aggregates];

    fn prepare(config: &Config, _request: &Request) -> Self {
        Self(IO_OPS.configured(config))
    }

    fn host_passes(&self, _request: &Request, host: &HostView<'_>) -> Result<(), String> {
        IO_OPS.check_with_aggregate_override(host, self.0)
    }
}

novum_plugin_sdk::export_filter!(AggregateIoOpsFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::fixtures::request;
    use novum_plugin_sdk::testing::{HostSpec, aggregates_setting, filter_passes};

    fn host(io_ops: u32, limits: &[&str]) -> HostSpec {
        HostSpec {
            num_io_ops: io_ops,
            aggregates: aggregates_setting(KEY, limits),
            ..HostSpec::named("h")
        }
    }

    fn check(config: &Config, hosts: &[HostSpec]) -> Vec<bool> {
        filter_passes::<AggregateIoOpsFilter>(config, &request(), hosts)
    }

    #[test]
    fn without_aggregate_value_uses_config() {
        assert_eq!(
            check(&Config::default(), &[host(7, &[]), host(8, &[])]),
            [true, false]
        );
        let config = Config::from_pairs(&[(KEY, "3")]);
        assert_eq!(check(&config, &[host(2, &[]), host(3, &[])]), [true, false]);
    }

    #[test]
    fn aggregate_value_overrides_config() {
        let config = Config::from_pairs(&[(KEY, "3")]);
        assert_eq!(
            check(
                &config,
                &[
                    host(4, &["5"]),
                    host(5, &["5"]),
                    host(1, &["2"]),
                    host(2, &["2"])
                ]
            ),
            [true, false, true, false]
        );
    }

    #[test]
    fn minimum_of_several_aggregates_wins() {
        assert_eq!(
            check(
                &Config::default(),
                &[host(1, &["5", "2"]), host(2, &["5", "2"])]
            ),
            [true, false]
        );
    }

    #[test]
    fn invalid_aggregate_value_falls_back_to_config() {
        assert_eq!(
            check(
                &Config::default(),
                &[host(7, &["XXX"]), host(8, &["1", "XXX"])]
            ),
            [true, false]
        );
    }
}
