//! AllHostsFilter: passes every host. It reads no host column, so it costs
//! nothing at the boundary.

use novum_plugin_sdk::{Column, Filter, HostView, Request};

/// Nova's AllHostsFilter.
#[derive(Default)]
pub struct AllHostsFilter;

impl Filter for AllHostsFilter {
    const DESCRIPTION: &'static str = "passes every host";
    const NEEDS: &'static [Column] = &[];

    fn host_passes(&self, _request: &Request, _host: &HostView<'_>) -> Result<(), String> {
        Ok(())
    }
}

novum_plugin_sdk::export_filter!(AllHostsFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::Config;
    use novum_plugin_sdk::fixtures::request;
    use novum_plugin_sdk::testing::{HostSpec, filter_passes};

    #[test]
    fn passes_every_host() {
        let hosts = [
            HostSpec::named("a"),
            HostSpec {
                service_up: false,
                ..HostSpec::named("b")
            },
        ];
        assert_eq!(
            filter_passes::<AllHostsFilter>(&Config::default(), &request(), &hosts),
            [true, true]
        );
    }

    #[test]
    fn passes_an_empty_table() {
        assert!(filter_passes::<AllHostsFilter>(&Config::default(), &request(), &[]).is_empty());
    }
}
