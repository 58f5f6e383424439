//! NumInstancesWeigher (Nova's
//! `nova.scheduler.weights.num_instances.NumInstancesWeigher`).
//!
//! Raw weight: the number of instances on the host. The default multiplier
//! (`num_instances_weight_multiplier`) is 0.0, which disables the weigher; a
//! negative multiplier prefers hosts with fewer instances (spreading), a
//! positive one packs.

use novum_plugin_sdk::{Column, HostView, Request, Weigher};

/// Nova's NumInstancesWeigher.
#[derive(Default)]
pub struct NumInstancesWeigher;

impl Weigher for NumInstancesWeigher {
    const DESCRIPTION: &'static str = "number of instances on the host";
    const NEEDS: &'static [Column] = &[Column::NumInstances];

    fn weigh(&self, _request: &Request, host: &HostView<'_>) -> f64 {
        f64::from(host.num_instances())
    }
}

novum_plugin_sdk::export_weigher!(NumInstancesWeigher);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::{Config, HostTable, fixtures::request, run_weigher};

    #[test]
    fn weighs_instance_count() {
        let mut hosts = HostTable::with_len(3);
        hosts.num_instances = vec![3, 0, 7];
        let weights = run_weigher::<NumInstancesWeigher>(&Config::default(), &request(), &hosts);
        assert_eq!(weights, vec![3.0, 0.0, 7.0]);
    }
}
