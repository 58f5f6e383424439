//! AggregateMultiTenancyIsolation: a host in an aggregate whose metadata has
//! keys starting with `filter_tenant_id` (`filter_tenant_id`,
//! `filter_tenant_id_group2`, ...; comma separated project ids) takes only
//! requests from those projects. Hosts without such metadata take every
//! project.

use novum_plugin_sdk::{Column, Filter, HostView, Request};

/// The metadata key prefix naming allowed projects.
pub const KEY_PREFIX: &str = "filter_tenant_id";

/// Nova's AggregateMultiTenancyIsolation.
#[derive(Default)]
pub struct AggregateMultiTenancyIsolation;

impl Filter for AggregateMultiTenancyIsolation {
    const DESCRIPTION: &'static str = "aggregates with filter_tenant_id take only those projects";
    const NEEDS: &'static [Column] = &[Column::Aggregates];

    fn host_passes(&self, request: &Request, host: &HostView<'_>) -> Result<(), String> {
        let mut restricted = false;
        for aggregate in host.aggregates() {
            for pair in aggregate
                .metadata
                .iter()
                .filter(|pair| pair.key.starts_with(KEY_PREFIX))
            {
                for project in pair.value.split(',').map(str::trim) {
                    if project == request.project_id {
                        return Ok(());
                    }
                    restricted = true;
                }
            }
        }
        if restricted {
            Err("host's aggregates are reserved for other projects".to_string())
        } else {
            Ok(())
        }
    }
}

novum_plugin_sdk::export_filter!(AggregateMultiTenancyIsolation);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::Config;
    use novum_plugin_sdk::fixtures::request;
    use novum_plugin_sdk::testing::{HostSpec, aggregate, filter_passes};

    fn passes(project: &str, aggregates: &[&[(&str, &str)]]) -> bool {
        let host = HostSpec {
            aggregates: aggregates
                .iter()
                .map(|metadata| aggregate("agg", metadata))
                .collect(),
            ..HostSpec::named("h")
        };
        let request = Request {
            project_id: project.into(),
            ..request()
        };
        filter_passes::<AggregateMultiTenancyIsolation>(&Config::default(), &request, &[host])
            == [true]
    }

    #[test]
    fn listed_project_passes() {
        assert!(passes(
            "my_tenantid",
            &[&[("filter_tenant_id", "my_tenantid")]]
        ));
        assert!(passes(
            "my_tenantid",
            &[&[("filter_tenant_id", "my_tenantid,mytenantid2")]]
        ));
        assert!(passes(
            "mytenantid2",
            &[&[("filter_tenant_id", "my_tenantid, mytenantid2")]]
        ));
    }

    #[test]
    fn other_project_fails() {
        assert!(!passes(
            "my_tenantid",
            &[&[("filter_tenant_id", "other_tenantid")]]
        ));
        assert!(!passes(
            "my_tenantid",
            &[&[("filter_tenant_id", "other_tenantid,other_tenantid2")]]
        ));
    }

    #[test]
    fn unrestricted_hosts_pass() {
        assert!(passes("my_tenantid", &[]));
        assert!(passes("my_tenantid", &[&[("ssd", "true")]]));
    }

    #[test]
    fn prefixed_keys_across_aggregates() {
        let aggregates: &[&[(&str, &str)]] = &[
            &[("filter_tenant_id", "my_tenantid")],
            &[("filter_tenant_id_gr1", "my_tenantid1,my_tenantid2")],
            &[("filter_tenant_id_gr2", "my_tenantid5,my_tenantid4")],
        ];
        assert!(passes("my_tenantid", aggregates));
        assert!(passes("my_tenantid2", aggregates));
        assert!(passes("my_tenantid4", aggregates));
        assert!(!passes("my_tenantid6", aggregates));
    }
}
