//! NumInstancesFilter: passes hosts running fewer than
//! `max_instances_per_host` instances (configuration key of that name,
//! default 50).

use novum_plugin_sdk::count_limit::INSTANCES;
use novum_plugin_sdk::{Column, Config, Filter, HostView, Request};

/// The default `max_instances_per_host`.
pub const DEFAULT_MAX_INSTANCES_PER_HOST: i64 = INSTANCES.default;

/// Nova's NumInstancesFilter, holding the configured limit.
pub struct NumInstancesFilter(i64);

impl Default for NumInstancesFilter {
    fn default() -> Self {
        Self(INSTANCES.default)
    }
}

impl Filter for NumInstancesFilter {
    const DESCRIPTION: &'static str = "fewer than max_instances_per_host instances on the host";
    const NEEDS: &'static [Column] = &[Column::NumInstances];

    fn prepare(config: &Config, _request: &Request) -> Self {
        Self(INSTANCES.configured(config))
    }

    fn host_passes(&self, _request: &Request, host: &HostView<'_>) -> Result<(), String> {
        INSTANCES.check(host, self.0)
    }
}

novum_plugin_sdk::export_filter!(NumInstancesFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::fixtures::request;
    use novum_plugin_sdk::testing::{HostSpec, filter_passes, filter_verdicts};

    fn hosts(counts: &[u32]) -> Vec<HostSpec> {
        counts
            .iter()
            .map(|count| HostSpec {
                num_instances: *count,
                ..HostSpec::named("h")
            })
            .collect()
    }

    #[test]
    fn default_limit_is_50() {
        assert_eq!(
            filter_passes::<NumInstancesFilter>(
                &Config::default(),
                &request(),
                &hosts(&[0, 49, 50, 51])
            ),
            [true, true, false, false]
        );
    }

    #[test]
    fn configured_limit() {
        let config = Config::from_pairs(&[("max_instances_per_host", "5")]);
        assert_eq!(
            filter_passes::<NumInstancesFilter>(&config, &request(), &hosts(&[4, 5])),
            [true, false]
        );
        let verdicts = filter_verdicts::<NumInstancesFilter>(&config, &request(), &hosts(&[6]));
        assert_eq!(
            verdicts,
            [Err(
                "host has too many instances (max_instances_per_host 5)".to_string()
            )]
        );
    }

    #[test]
    fn zero_limit_rejects_every_host_and_bad_config_uses_default() {
        let zero = Config::from_pairs(&[("max_instances_per_host", "0")]);
        assert_eq!(
            filter_passes::<NumInstancesFilter>(&zero, &request(), &hosts(&[0])),
            [false]
        );
        let bad = Config::from_pairs(&[("max_instances_per_host", "lots")]);
        assert_eq!(
            filter_passes::<NumInstancesFilter>(&bad, &request(), &hosts(&[49, 50])),
            [true, false]
        );
    }
}
