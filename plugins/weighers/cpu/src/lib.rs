//! CPUWeigher (Nova's `nova.scheduler.weights.cpu.CPUWeigher`).
//!
//! Raw weight: free vCPUs, `vcpus_total × cpu_allocation_ratio − vcpus_used`,
//! floored at 0 as Nova's `minval = 0` does. With the default multiplier
//! (`cpu_weight_multiplier`, 1.0) hosts with more free vCPUs win (spreading).
//!
//! Nova normalizes this weigher against a minimum of 0 (`minval = 0`); that is
//! the controller's part (see plugins/weighers/README.md).

use novum_plugin_sdk::{Column, HostView, Request, Weigher};

/// Nova's CPUWeigher.
#[derive(Default)]
pub struct CpuWeigher;

impl Weigher for CpuWeigher {
    const DESCRIPTION: &'static str = "free vCPUs after the allocation ratio (more is preferred)";
    const NEEDS: &'static [Column] = &[Column::Vcpus, Column::AllocationRatios];

    fn weigh(&self, _request: &Request, host: &HostView<'_>) -> f64 {
        let free = f64::from(host.vcpus_total()) * host.cpu_allocation_ratio()
            - f64::from(host.vcpus_used());
        free.max(0.0)
    }
}

novum_plugin_sdk::export_weigher!(CpuWeigher);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::{Config, HostTable, fixtures::request, run_weigher};

    #[test]
    fn weighs_free_vcpus_with_the_allocation_ratio() {
        let mut hosts = HostTable::with_len(3);
        hosts.vcpus_total = vec![4, 8, 2];
        hosts.vcpus_used = vec![2, 2, 10];
        hosts.cpu_allocation_ratios = vec![16.0, 1.5, 1.0];
        let weights = run_weigher::<CpuWeigher>(&Config::default(), &request(), &hosts);
        assert_eq!(weights, vec![62.0, 10.0, 0.0]);
    }
}
