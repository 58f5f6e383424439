//! Test plugin: a filter that misbehaves the way the request's `misbehave`
//! scheduler hint, else its `mode` configuration key, says, so the
//! controller's sandbox tests can check containment.
//!
//! Modes: `loop` (never returns), `sleep` (sleeps for 10 s, then passes
//! every host), `work` (busy for `work_rounds` rounds, its configuration
//! key, default 1,000,000, then passes every host), `alloc` (allocates without bound), `panic` (traps),
//! `wrong-length` (one verdict too many), `bad-reason` (a verdict pointing
//! past the reasons), `undeclared-needs` (`begin` asks for a column
//! `describe` did not declare), `reject-odd` (well-behaved: rejects odd
//! rows), anything else passes every host.

#![cfg(target_arch = "wasm32")]

use novum_plugin_sdk::bindings::filter::Guest;
use novum_plugin_sdk::testing::misbehave;
use novum_plugin_sdk::{Column, FilterOutcome, HostTable, PluginInfo, Request};

struct Misbehaving;

impl Guest for Misbehaving {
    fn describe() -> PluginInfo {
        misbehave::describe(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
    }

    fn begin(request: Request) -> Vec<Column> {
        let config = novum_plugin_sdk::host_config();
        let needs = match misbehave::mode(&request, &config) {
            Some("undeclared-needs") => vec![Column::Name, Column::Memory],
            _ => vec![Column::Name],
        };
        novum_plugin_sdk::hold_request(request);
        needs
    }

    fn filter_hosts(hosts: HostTable) -> FilterOutcome {
        let config = novum_plugin_sdk::host_config();
        let len = hosts.len as usize;
        let mode = novum_plugin_sdk::with_held_request(|request| {
            misbehave::mode(request, &config)
                .unwrap_or("pass")
                .to_string()
        });
        match mode.as_str() {
            "loop" => misbehave::spin(len),
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(10));
                FilterOutcome {
                    verdicts: Vec::new(),
                    reasons: Vec::new(),
                }
            }
            "work" => {
                let rounds = config
                    .get("work_rounds")
                    .and_then(|rounds| rounds.parse().ok())
                    .unwrap_or(1_000_000);
                misbehave::work(rounds);
                FilterOutcome {
                    verdicts: vec![0; len],
                    reasons: Vec::new(),
                }
            }
            "alloc" => misbehave::hoard(),
            "panic" => panic!("misbehaving filter panics on purpose"),
            "wrong-length" => FilterOutcome {
                verdicts: vec![0; len + 1],
                reasons: Vec::new(),
            },
            "bad-reason" => FilterOutcome {
                verdicts: vec![7; len],
                reasons: vec!["only one".into()],
            },
            "reject-odd" => FilterOutcome {
                verdicts: (0..len).map(|row| (row % 2) as u32).collect(),
                reasons: vec!["odd row".into()],
            },
            _ => FilterOutcome {
                verdicts: vec![0; len],
                reasons: Vec::new(),
            },
        }
    }
}

novum_plugin_sdk::bindings::filter::export_filter_world!(Misbehaving);
