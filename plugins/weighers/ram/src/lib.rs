//! RAMWeigher (Nova's `nova.scheduler.weights.ram.RAMWeigher`).
//!
//! Raw weight: the host's free RAM in MB (total × RAM allocation ratio − used),
//! floored at 0 as Nova's `minval = 0` does. With the default multiplier
//! (`ram_weight_multiplier`, 1.0) hosts with more free RAM win (spreading); a
//! negative multiplier packs instead.
//!
//! Nova also normalizes this weigher against a minimum of 0 rather than the
//! smallest weight among the candidates (`minval = 0`); that is the
//! controller's part (see plugins/weighers/README.md).

use novum_plugin_sdk::{Column, HostView, Request, Weigher};

/// Nova's RAMWeigher.
#[derive(Default)]
pub struct RamWeigher;

impl Weigher for RamWeigher {
    const DESCRIPTION: &'static str = "free RAM in MB (more is preferred)";
    const NEEDS: &'static [Column] = &[Column::Memory];

    fn weigh(&self, _request: &Request, host: &HostView<'_>) -> f64 {
        (host.memory_free_mb() as f64).max(0.0)
    }
}

novum_plugin_sdk::export_weigher!(RamWeigher);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::{Config, HostTable, fixtures::request, run_weigher};

    #[test]
    fn weighs_free_ram_floored_at_zero() {
        let mut hosts = HostTable::with_len(4);
        hosts.memory_free_mb = vec![512, 1024, 3072, -100];
        let weights = run_weigher::<RamWeigher>(&Config::default(), &request(), &hosts);
        assert_eq!(weights, vec![512.0, 1024.0, 3072.0, 0.0]);
    }
}
