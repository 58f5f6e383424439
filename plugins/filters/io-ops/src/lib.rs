//! IoOpsFilter: passes hosts with fewer than `max_io_ops_per_host`
//! I/O-heavy tasks in progress (builds, resizes, snapshots, ...; configuration
//! key of that name, default 8).

use novum_plugin_sdk::count_limit::IO_OPS;
use novum_plugin_sdk::{Column, Config, Filter, HostView, Request};

/// The default `max_io_ops_per_host`.
pub const DEFAULT_MAX_IO_OPS_PER_HOST: i64 = IO_OPS.default;

/// Nova's IoOpsFilter, holding the configured limit.
pub struct IoOpsFilter(i64);

impl Default for IoOpsFilter {
    fn default() -> Self {
        Self(IO_OPS.default)
    }
}

impl Filter for IoOpsFilter {
    const DESCRIPTION: &'static str = "fewer than max_io_ops_per_host I/O-heavy tasks on the host";
    const NEEDS: &'static [Column] = &[Column::NumIoOps];

    fn prepare(config: &Config, _request: &Request) -> Self {
        Self(IO_OPS.configured(config))
    }

    fn host_passes(&self, _request: &Request, host: &HostView<'_>) -> Result<(), String> {
        IO_OPS.check(host, self.0)
    }
}

novum_plugin_sdk::export_filter!(IoOpsFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::fixtures::request;
    use novum_plugin_sdk::testing::{HostSpec, filter_passes};

    fn hosts(counts: &[u32]) -> Vec<HostSpec> {
        counts
            .iter()
            .map(|count| HostSpec {
                num_io_ops: *count,
                ..HostSpec::named("h")
            })
            .collect()
    }

    #[test]
    fn default_limit_is_8() {
        assert_eq!(
            filter_passes::<IoOpsFilter>(&Config::default(), &request(), &hosts(&[0, 7, 8, 9])),
            [true, true, false, false]
        );
    }

    #[test]
    fn configured_limit() {
        let config = Config::from_pairs(&[("max_io_ops_per_host", "2")]);
        assert_eq!(
            filter_passes::<IoOpsFilter>(&config, &request(), &hosts(&[1, 2])),
            [true, false]
        );
        let bad = Config::from_pairs(&[("max_io_ops_per_host", "2.5")]);
        assert_eq!(
            filter_passes::<IoOpsFilter>(&bad, &request(), &hosts(&[7, 8])),
            [true, false]
        );
    }
}
