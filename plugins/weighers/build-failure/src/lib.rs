//! BuildFailureWeigher (Nova's `nova.scheduler.weights.compute.BuildFailureWeigher`).
//!
//! Raw weight: −(consecutive failed builds on the host). Nova returns the
//! failure count and negates the multiplier instead; returning the negated
//! count with the plain multiplier (`build_failure_weight_multiplier`, default
//! 1,000,000) shifts every host's score by the same constant (the multiplier),
//! so the ordering is Nova's. The large default makes any host with
//! recent failures sort after every healthy host; the count resets when a build
//! on the host succeeds.

use novum_plugin_sdk::{Column, HostView, Request, Weigher};

/// Nova's BuildFailureWeigher.
#[derive(Default)]
pub struct BuildFailureWeigher;

impl Weigher for BuildFailureWeigher {
    const DESCRIPTION: &'static str = "minus the recent failed builds (hosts with failures last)";
    const NEEDS: &'static [Column] = &[Column::FailedBuilds];

    fn weigh(&self, _request: &Request, host: &HostView<'_>) -> f64 {
        -f64::from(host.failed_builds())
    }
}

novum_plugin_sdk::export_weigher!(BuildFailureWeigher);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::{Config, HostTable, fixtures::request, run_weigher};

    #[test]
    fn hosts_with_more_failures_weigh_less() {
        let mut hosts = HostTable::with_len(3);
        hosts.failed_builds = vec![0, 3, 1];
        let weights = run_weigher::<BuildFailureWeigher>(&Config::default(), &request(), &hosts);
        assert_eq!(weights, vec![0.0, -3.0, -1.0]);
    }
}
