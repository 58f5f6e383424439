//! __NAME__: a novum scheduler weigher. Prefers hosts running fewer
//! instances (raw weight: minus the host's instance count); the controller
//! normalizes the weights and applies the multiplier.

use novum_plugin_sdk::{Column, HostView, Request, Weigher};

/// The weigher.
#[derive(Default)]
pub struct Plugin;

impl Weigher for Plugin {
    const DESCRIPTION: &'static str = "fewer instances on the host (more is worse)";
    const NEEDS: &'static [Column] = &[Column::NumInstances];

    fn weigh(&self, _request: &Request, host: &HostView<'_>) -> f64 {
        -f64::from(host.num_instances())
    }
}

novum_plugin_sdk::export_weigher!(Plugin);
