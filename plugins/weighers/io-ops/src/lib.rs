//! IoOpsWeigher (Nova's `nova.scheduler.weights.io_ops.IoOpsWeigher`).
//!
//! Raw weight: the number of I/O-heavy tasks in progress on the host (builds,
//! resizes, snapshots, ...). The default multiplier (`io_ops_weight_multiplier`)
//! is −1.0, so lightly loaded hosts win; a positive multiplier prefers busy
//! hosts.
//!
//! Nova normalizes this weigher against a minimum of 0 (`minval = 0`); that is
//! the controller's part (see plugins/weighers/README.md).

use novum_plugin_sdk::{Column, HostView, Request, Weigher};

/// Nova's IoOpsWeigher.
#[derive(Default)]
pub struct IoOpsWeigher;

impl Weigher for IoOpsWeigher {
    const DESCRIPTION: &'static str = "I/O-heavy tasks in progress (fewer is preferred by default)";
    const NEEDS: &'static [Column] = &[Column::NumIoOps];

    fn weigh(&self, _request: &Request, host: &HostView<'_>) -> f64 {
        f64::from(host.num_io_ops())
    }
}

novum_plugin_sdk::export_weigher!(IoOpsWeigher);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::{Config, HostTable, fixtures::request, run_weigher};

    #[test]
    fn weighs_io_ops_in_progress() {
        let mut hosts = HostTable::with_len(3);
        hosts.num_io_ops = vec![1, 0, 10];
        let weights = run_weigher::<IoOpsWeigher>(&Config::default(), &request(), &hosts);
        assert_eq!(weights, vec![1.0, 0.0, 10.0]);
    }
}
