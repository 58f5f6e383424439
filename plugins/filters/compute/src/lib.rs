//! ComputeFilter: passes hosts whose compute service is up (recent heartbeat,
//! not forced down) and not disabled by an operator.

use novum_plugin_sdk::{Column, Filter, HostView, Request};

/// Nova's ComputeFilter.
#[derive(Default)]
pub struct ComputeFilter;

impl Filter for ComputeFilter {
    const DESCRIPTION: &'static str = "compute service is up and enabled";
    const NEEDS: &'static [Column] = &[Column::Service];

    fn host_passes(&self, _request: &Request, host: &HostView<'_>) -> Result<(), String> {
        if host.service_disabled() {
            Err("compute service is disabled".to_string())
        } else if !host.service_up() {
            Err("compute service is down".to_string())
        } else {
            Ok(())
        }
    }
}

novum_plugin_sdk::export_filter!(ComputeFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::Config;
    use novum_plugin_sdk::fixtures::request;
    use novum_plugin_sdk::testing::{HostSpec, filter_verdicts};

    #[test]
    fn passes_up_and_enabled_rejects_disabled_or_down() {
        let hosts = [
            HostSpec::named("up"),
            HostSpec {
                service_disabled: true,
                ..HostSpec::named("disabled")
            },
            HostSpec {
                service_up: false,
                ..HostSpec::named("down")
            },
            HostSpec {
                service_up: false,
                service_disabled: true,
                ..HostSpec::named("both")
            },
        ];
        let verdicts = filter_verdicts::<ComputeFilter>(&Config::default(), &request(), &hosts);
        assert_eq!(
            verdicts,
            [
                Ok(()),
                Err("compute service is disabled".to_string()),
                Err("compute service is down".to_string()),
                Err("compute service is disabled".to_string()),
            ]
        );
    }
}
