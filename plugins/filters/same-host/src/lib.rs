//! SameHostFilter: with scheduler hint `same_host` (instance uuids), passes
//! the hosts running at least one of those instances. Without the hint (or
//! with an empty list) every host passes.

use novum_plugin_sdk::instance_hints::{HintedInstances, hinted_instances};
use novum_plugin_sdk::{Column, Filter, HostView, Request};

/// Nova's SameHostFilter.
#[derive(Default)]
pub struct SameHostFilter;

impl Filter for SameHostFilter {
    const DESCRIPTION: &'static str = "host runs one of the same_host instances";
    const NEEDS: &'static [Column] = &[Column::Instances];

    fn host_passes(&self, request: &Request, host: &HostView<'_>) -> Result<(), String> {
        match hinted_instances(request, host, "same_host") {
            HintedInstances::NotOnHost => {
                Err("host runs none of the same_host instances".to_string())
            }
            HintedInstances::NoHint | HintedInstances::OnHost(_) => Ok(()),
        }
    }
}

novum_plugin_sdk::export_filter!(SameHostFilter);

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
        filter_passes::<SameHostFilter>(&Config::default(), &request, &hosts)
    }

    #[test]
    fn passes_hosts_running_a_hinted_instance() {
        assert_eq!(
            check(vec![hint("same_host", &["i2"])]),
            [true, false, false]
        );
        assert_eq!(
            check(vec![hint("same_host", &["i1", "i3"])]),
            [true, true, false]
        );
    }

    #[test]
    fn unknown_uuids_reject_every_host() {
        assert_eq!(
            check(vec![hint("same_host", &["same"])]),
            [false, false, false]
        );
    }

    #[test]
    fn no_hint_passes() {
        assert_eq!(check(vec![]), [true, true, true]);
        assert_eq!(check(vec![hint("same_host", &[])]), [true, true, true]);
        assert_eq!(
            check(vec![hint("different_host", &["i1"])]),
            [true, true, true]
        );
    }
}
