//! DifferentHostFilter: with scheduler hint `different_host` (instance
//! uuids), passes the hosts running none of those instances. Without the
//! hint (or with an empty list) every host passes.

use novum_plugin_sdk::instance_hints::{HintedInstances, hinted_instances};
use novum_plugin_sdk::{Column, Filter, HostView, Request};

/// Nova's DifferentHostFilter.
#[derive(Default)]
pub struct DifferentHostFilter;

impl Filter for DifferentHostFilter {
    const DESCRIPTION: &'static str = "host runs none of the different_host instances";
    const NEEDS: &'static [Column] = &[Column::Instances];

    fn host_passes(&self, request: &Request, host: &HostView<'_>) -> Result<(), String> {
        match hinted_instances(request, host, "different_host") {
            HintedInstances::OnHost(instance) => {
                Err(format!("host runs instance {instance} (different_host)"))
            }
            HintedInstances::NoHint | HintedInstances::NotOnHost => Ok(()),
        }
    }
}

novum_plugin_sdk::export_filter!(DifferentHostFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::Config;
    use novum_plugin_sdk::fixtures::request;
    use novum_plugin_sdk::testing::{filter_passes, hint, hosts_running};

    fn check(hints: Vec<novum_plugin_sdk::SchedulerHint>) -> Vec<bool> {
        let hosts = hosts_running(&[&["i1", "i2"], &["i3"], &[]]);
        let request = Request {
            scheduler_hints: hints,
            ..request()
        };
        filter_passes::<DifferentHostFilter>(&Config::default(), &request, &hosts)
    }

    #[test]
    fn rejects_hosts_running_a_hinted_instance() {
        assert_eq!(
            check(vec![hint("different_host", &["i2"])]),
            [false, true, true]
        );
        assert_eq!(
            check(vec![hint("different_host", &["i1", "i3"])]),
            [false, false, true]
        );
    }

    #[test]
    fn unknown_uuids_pass() {
        assert_eq!(
            check(vec![hint("different_host", &["same"])]),
            [true, true, true]
        );
    }

    #[test]
    fn no_hint_passes() {
        assert_eq!(check(vec![]), [true, true, true]);
        assert_eq!(check(vec![hint("different_host", &[])]), [true, true, true]);
        assert_eq!(check(vec![hint("same_host", &["i1"])]), [true, true, true]);
    }
}
