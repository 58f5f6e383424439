//! HypervisorVersionWeigher (Nova's
//! `nova.scheduler.weights.hypervisor_version.HypervisorVersionWeigher`).
//!
//! Raw weight: the host's hypervisor version as Nova encodes it
//! (major × 1,000,000 + minor × 1,000 + micro; 0 when unknown). With the
//! default multiplier (`hypervisor_version_weight_multiplier`, 1.0) newer
//! hypervisors win; a negative multiplier prefers older ones.

use novum_plugin_sdk::{Column, HostView, Request, Weigher};

/// Nova's HypervisorVersionWeigher.
#[derive(Default)]
pub struct HypervisorVersionWeigher;

impl Weigher for HypervisorVersionWeigher {
    const DESCRIPTION: &'static str = "hypervisor version (newer is preferred)";
    const NEEDS: &'static [Column] = &[Column::Hypervisor];

    fn weigh(&self, _request: &Request, host: &HostView<'_>) -> f64 {
        host.hypervisor_version() as f64
    }
}

novum_plugin_sdk::export_weigher!(HypervisorVersionWeigher);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::{Config, HostTable, fixtures::request, run_weigher};

    #[test]
    fn weighs_hypervisor_version() {
        let mut hosts = HostTable::with_len(3);
        hosts.hypervisor_versions = vec![8_000_000, 10_000_000, 0];
        let weights =
            run_weigher::<HypervisorVersionWeigher>(&Config::default(), &request(), &hosts);
        assert_eq!(weights, vec![8_000_000.0, 10_000_000.0, 0.0]);
    }
}
