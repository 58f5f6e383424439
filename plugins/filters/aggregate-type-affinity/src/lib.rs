//! AggregateTypeAffinityFilter: a host in an aggregate with metadata
//! `instance_type` (a comma separated list of flavor names) takes only those
//! flavors; hosts without it take every flavor. With several aggregates, the
//! flavor need be listed in one of them.

use novum_plugin_sdk::aggregate_metadata::values;
use novum_plugin_sdk::{Column, Filter, HostView, Request};

/// The aggregate metadata key.
pub const KEY: &str = "instance_type";

/// Nova's AggregateTypeAffinityFilter.
#[derive(Default)]
pub struct AggregateTypeAffinityFilter;

impl Filter for AggregateTypeAffinityFilter {
    const DESCRIPTION: &'static str = "aggregates with instance_type take only those flavors";
    const NEEDS: &'static [Column] = &[Column::Aggregates];

    fn host_passes(&self, request: &Request, host: &HostView<'_>) -> Result<(), String> {
        let lists = values(host, KEY);
        let flavor = request.flavor.name.as_str();
        if lists.is_empty()
            || lists
                .iter()
                .any(|list| list.split(',').any(|name| name.trim() == flavor))
        {
            Ok(())
        } else {
            Err(format!("host's aggregates do not take flavor {flavor}"))
        }
    }
}

novum_plugin_sdk::export_filter!(AggregateTypeAffinityFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::Config;
    use novum_plugin_sdk::fixtures::request;
    use novum_plugin_sdk::testing::{HostSpec, aggregates_setting, filter_passes};

    fn passes(flavor: &str, types: &[&str]) -> bool {
        let host = HostSpec {
            aggregates: aggregates_setting(KEY, types),
            ..HostSpec::named("h")
        };
        let mut request = request();
        request.flavor.name = flavor.into();
        filter_passes::<AggregateTypeAffinityFilter>(&Config::default(), &request, &[host])
            == [true]
    }

    #[test]
    fn without_instance_type_every_flavor_passes() {
        assert!(passes("fake1", &[]));
    }

    #[test]
    fn listed_flavor_passes() {
        assert!(passes("fake1", &["fake1"]));
        assert!(passes("fake1", &["fake1,fake2"]));
        assert!(passes("fake2", &["fake1, fake2"]));
        assert!(passes("fake2", &["fake3", "fake2"]));
    }

    #[test]
    fn unlisted_flavor_fails() {
        assert!(!passes("fake2", &["fake1"]));
        assert!(!passes("fake", &["fake1,fake2"]));
        assert!(!passes("fake1", &["fake3", "fake4"]));
    }
}
