//! __NAME__: a novum scheduler filter. Passes a host when it keeps
//! `headroom_mb` (configuration, default 1024) of RAM free after the
//! instance lands.

use novum_plugin_sdk::{Column, Config, Filter, HostView, Request};

/// The filter, prepared for one request.
#[derive(Default)]
pub struct Plugin {
    headroom_mb: i64,
}

impl Filter for Plugin {
    const DESCRIPTION: &'static str = "keeps RAM headroom on every host";
    const NEEDS: &'static [Column] = &[Column::Memory];

    fn prepare(config: &Config, _request: &Request) -> Self {
        Self {
            headroom_mb: config.u64_or("headroom_mb", 1024) as i64,
        }
    }

    fn host_passes(&self, request: &Request, host: &HostView<'_>) -> Result<(), String> {
        let left = host.memory_free_mb() - request.flavor.memory_mb as i64;
        if left >= self.headroom_mb {
            Ok(())
        } else {
            Err(format!(
                "only {left} MB would be left, {} MB headroom wanted",
                self.headroom_mb
            ))
        }
    }
}

novum_plugin_sdk::export_filter!(Plugin);
