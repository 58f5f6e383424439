//! DiskWeigher (Nova's `nova.scheduler.weights.disk.DiskWeigher`).
//!
//! Raw weight: the host's free disk in MB (total × disk allocation ratio −
//! used), floored at 0 as Nova's `minval = 0` does. With the default multiplier
//! (`disk_weight_multiplier`, 1.0) hosts with more free disk win (spreading).
//!
//! Nova normalizes this weigher against a minimum of 0 (`minval = 0`); that is
//! the controller's part (see plugins/weighers/README.md).

use novum_plugin_sdk::{Column, HostView, Request, Weigher};

/// Nova's DiskWeigher.
#[derive(Default)]
pub struct DiskWeigher;

impl Weigher for DiskWeigher {
    const DESCRIPTION: &'static str = "free disk in MB (more is preferred)";
    const NEEDS: &'static [Column] = &[Column::Disk];

    fn weigh(&self, _request: &Request, host: &HostView<'_>) -> f64 {
        (host.disk_free_mb() as f64).max(0.0)
    }
}

novum_plugin_sdk::export_weigher!(DiskWeigher);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::{Config, HostTable, fixtures::request, run_weigher};

    #[test]
    fn weighs_free_disk_floored_at_zero() {
        let mut hosts = HostTable::with_len(3);
        hosts.disk_free_mb = vec![10_240, 0, -2048];
        let weights = run_weigher::<DiskWeigher>(&Config::default(), &request(), &hosts);
        assert_eq!(weights, vec![10_240.0, 0.0, 0.0]);
    }
}
