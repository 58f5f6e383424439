//! Test plugin: a filter written with ordinary std Rust, which the controller
//! runs in an empty WASI context.
//!
//! For each request it builds a `std::collections::HashMap` (whose hasher asks
//! `wasi:random` for a seed), looks at the environment and the arguments,
//! tries to read `/etc/passwd`, to connect to a TCP socket and to resolve a
//! name, prints what it saw on stdout and stderr, and rejects every host with
//! one reason that says it, e.g.
//! `env=absent args=none fs=denied net=denied dns=denied map=ok`.
//! Anything else than that reason shows a capability leaked into the sandbox.

#![cfg(target_arch = "wasm32")]

use std::collections::HashMap;
use std::net::{TcpStream, ToSocketAddrs};

use novum_plugin_sdk::{Column, Filter, HostView, Request};

/// Rejects every host with what std saw of the outside.
#[derive(Default)]
pub struct StdUsingFilter {
    seen: String,
}

impl Filter for StdUsingFilter {
    const DESCRIPTION: &'static str = "rejects every host, saying what std saw of the outside";
    const NEEDS: &'static [Column] = &[Column::Name];

    fn prepare(_config: &novum_plugin_sdk::Config, _request: &Request) -> Self {
        Self { seen: observe() }
    }

    fn host_passes(&self, _request: &Request, _host: &HostView<'_>) -> Result<(), String> {
        Err(self.seen.clone())
    }
}

novum_plugin_sdk::export_filter!(StdUsingFilter);

/// What std sees of the environment, the filesystem and the network.
fn observe() -> String {
    let mut seen: HashMap<&str, String> = HashMap::new();
    let env_empty = std::env::vars().next().is_none() && std::env::var("PATH").is_err();
    seen.insert("env", if env_empty { "absent" } else { "present" }.into());
    let args = std::env::args().count();
    seen.insert(
        "args",
        if args == 0 {
            "none".into()
        } else {
            args.to_string()
        },
    );
    seen.insert("fs", outcome(std::fs::read("/etc/passwd")));
    seen.insert("net", outcome(TcpStream::connect(("127.0.0.1", 80))));
    seen.insert("dns", outcome(("localhost", 80).to_socket_addrs()));
    let map_works = seen.len() == 5 && seen.contains_key("env");
    seen.insert("map", if map_works { "ok" } else { "broken" }.into());
    println!("std-using-filter saw {seen:?}");
    eprintln!("std-using-filter: stderr works too");
    ["env", "args", "fs", "net", "dns", "map"]
        .iter()
        .map(|key| format!("{key}={}", seen.get(key).map_or("?", String::as_str)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `denied` for any error (with its kind, for the log), `allowed` otherwise.
fn outcome<T>(result: std::io::Result<T>) -> String {
    match result {
        Ok(_) => "allowed".into(),
        Err(error) => {
            novum_plugin_sdk::log(
                novum_plugin_sdk::Level::Debug,
                "std call refused",
                &[("error", &error.to_string())],
            );
            "denied".into()
        }
    }
}
