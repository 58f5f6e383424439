//! Test plugin: a weigher that misbehaves the way the request's `misbehave` scheduler hint, else its `mode`
//! configuration key, says. Modes: `wrong-length` (one weight too few), `nan` (NaN weights),
//! `loop` (never returns); anything else weighs each host by its row index.

#![cfg(target_arch = "wasm32")]

use novum_plugin_sdk::bindings::weigher::Guest;
use novum_plugin_sdk::testing::misbehave;
use novum_plugin_sdk::{Column, HostTable, PluginInfo, Request};

struct Misbehaving;

impl Guest for Misbehaving {
    fn describe() -> PluginInfo {
        misbehave::describe(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
    }

    fn begin(request: Request) -> Vec<Column> {
        novum_plugin_sdk::hold_request(request);
        vec![Column::Name]
    }

    fn weigh_hosts(hosts: HostTable) -> Vec<f64> {
        let config = novum_plugin_sdk::host_config();
        let len = hosts.len as usize;
        let mode = novum_plugin_sdk::with_held_request(|request| {
            misbehave::mode(request, &config)
                .unwrap_or("row")
                .to_string()
        });
        match mode.as_str() {
            "wrong-length" => vec![1.0; len.saturating_sub(1)],
            "nan" => vec![f64::NAN; len],
            "loop" => misbehave::spin(len),
            _ => (0..len).map(|row| row as f64).collect(),
        }
    }
}

novum_plugin_sdk::bindings::weigher::export_weigher_world!(Misbehaving);
