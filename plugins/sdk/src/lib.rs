//! The novum plugin SDK.
//!
//! A plugin is a Rust crate built for `wasm32-wasip2`. It implements one of the
//! traits here ([`Filter`], [`Weigher`], [`QuotaPolicy`], [`NotificationHook`])
//! and names its type in the matching export macro:
//!
//! ```ignore
//! use novum_plugin_sdk::{Column, Filter, HostView, Request};
//!
//! /// Passes hosts with at least 2 GiB of free RAM.
//! #[derive(Default)]
//! pub struct BigHostFilter;
//!
//! impl Filter for BigHostFilter {
//!     const DESCRIPTION: &'static str = "hosts with at least 2 GiB free";
//!     const NEEDS: &'static [Column] = &[Column::Memory];
//!     fn host_passes(&self, _request: &Request, host: &HostView<'_>) -> Result<(), String> {
//!         if host.memory_free_mb() >= 2048 { Ok(()) } else { Err("less than 2 GiB free".into()) }
//!     }
//! }
//! novum_plugin_sdk::export_filter!(BigHostFilter);
//! ```
//!
//! The same types compile natively, so a plugin's logic is unit-tested with plain
//! `cargo test`, and the controller's native reference pipeline runs the very
//! same code without the WebAssembly boundary.
//!
//! Guests run in an empty WASI context: ordinary std works
//! (`std::collections::HashMap`, `println!`, which goes nowhere), but there
//! is no filesystem, environment, argument or network to reach: opening a
//! file or a socket, or reading an environment variable, is an error. Log
//! with [`log`] and read the time with [`now_ms`]; [`collections`] has maps
//! whose iteration order is deterministic.

#![deny(missing_docs)]

#[doc(hidden)]
pub mod bindings;
mod config;
mod filter;
mod hook;
mod host_view;
mod quota;
mod table;
mod weigher;

pub mod aggregate_metadata;
pub mod count_limit;
pub mod extra_specs;
pub mod fixtures;
pub mod host_attributes;
pub mod instance_hints;
pub mod notifications;
pub mod testing;
pub mod weighing;

pub use bindings::filter::novum::plugin::types::{
    Aggregate, Column, FilterOutcome, Flavor, FlavorUsage, GroupPolicy, HostTable, Image, KeyValue,
    Metric, MetricLists, Notification, PluginInfo, PropertyCount, PropertyCountLists, QuotaDenial,
    QuotaRequest, RefLists, Request, ResourceUsage, SchedulerHint, ServerGroup, SupportedInstance,
    SupportedInstanceLists,
};
pub use config::Config;
pub use filter::{Filter, run_filter};
pub use hook::{NotificationHook, run_notification_hook};
pub use host_view::HostView;
pub use quota::{QuotaPolicy, run_quota_policy};
pub use table::{SERVICE_DISABLED, SERVICE_UP, free_mb, service_flags};
pub use weigher::{Weigher, run_weigher};

/// A filter or weigher compiled natively into the controller, defined by the
/// export macros in native builds. The controller's reference pipeline and
/// benchmarks run plugins through it, without the WebAssembly boundary.
#[derive(Clone, Copy)]
pub enum NativePlugin {
    /// A filter.
    Filter {
        /// What `describe` would answer.
        info: fn() -> PluginInfo,
        /// What `begin` would answer: the columns one request needs.
        needs: fn(&Config, &Request) -> Vec<Column>,
        /// The filter over a host table.
        run: fn(&Config, &Request, &HostTable) -> FilterOutcome,
    },
    /// A weigher.
    Weigher {
        /// What `describe` would answer.
        info: fn() -> PluginInfo,
        /// What `begin` would answer: the columns one request needs.
        needs: fn(&Config, &Request) -> Vec<Column>,
        /// Raw weights over a host table.
        run: fn(&Config, &Request, &HostTable) -> Vec<f64>,
    },
}

/// Collections whose iteration order is deterministic (no random hash seed),
/// so a plugin answers the same way for the same input.
pub mod collections {
    pub use std::collections::{BTreeMap, BTreeSet};
}

/// Log levels for [`log`].
pub use bindings::filter::novum::plugin::host::Level;

/// Writes a structured log line through the controller, tagged with the
/// plugin's name and the request id. Natively (in unit tests) it is a no-op.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    #[cfg(target_arch = "wasm32")]
    {
        let fields: Vec<KeyValue> = fields
            .iter()
            .map(|(key, value)| KeyValue {
                key: (*key).to_string(),
                value: (*value).to_string(),
            })
            .collect();
        bindings::filter::novum::plugin::host::log(level, message, &fields);
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (level, message, fields);
}

/// Wall-clock milliseconds since the Unix epoch, from the controller's clock.
pub fn now_ms() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        bindings::filter::novum::plugin::host::now_ms()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// The plugin's configuration as the controller passes it (wasm only). It is
/// fetched from the controller once per instance and kept: an instance never
/// outlives its configuration (a reload loads new instances).
#[doc(hidden)]
pub fn host_config() -> Config {
    #[cfg(target_arch = "wasm32")]
    {
        thread_local! {
            static CONFIG: std::cell::OnceCell<Config> = const { std::cell::OnceCell::new() };
        }
        CONFIG.with(|config| {
            config
                .get_or_init(|| Config::new(bindings::filter::novum::plugin::host::config()))
                .clone()
        })
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Config::default()
    }
}

thread_local! {
    static HELD_REQUEST: std::cell::RefCell<Option<Request>> = const { std::cell::RefCell::new(None) };
}

/// Keeps the request a `begin` export received, for the `filter-hosts` /
/// `weigh-hosts` call that follows on the same instance; used by the export
/// macros (and by hand-written exports).
#[doc(hidden)]
pub fn hold_request(request: Request) {
    HELD_REQUEST.with(|held| *held.borrow_mut() = Some(request));
}

/// Runs `call` on the request the last `begin` kept. Panics (a trap in wasm)
/// when no `begin` came first: the controller always calls `begin` before
/// `filter-hosts` or `weigh-hosts` on the same instance.
#[doc(hidden)]
pub fn with_held_request<R>(call: impl FnOnce(&Request) -> R) -> R {
    HELD_REQUEST.with(|held| match held.borrow().as_ref() {
        Some(request) => call(request),
        None => panic!("filter-hosts or weigh-hosts called before begin"),
    })
}

/// Builds the [`PluginInfo`] a plugin reports; used by the export macros.
#[doc(hidden)]
pub fn plugin_info(name: &str, version: &str, description: &str, needs: &[Column]) -> PluginInfo {
    PluginInfo {
        name: name.to_string(),
        version: version.to_string(),
        description: description.to_string(),
        needs: needs.to_vec(),
    }
}

impl Request {
    /// The values of scheduler hint `name`, if the request has it.
    pub fn hint(&self, name: &str) -> Option<&[String]> {
        self.scheduler_hints
            .iter()
            .find(|hint| hint.name == name)
            .map(|hint| hint.values.as_slice())
    }

    /// The first value of scheduler hint `name`.
    pub fn hint_value(&self, name: &str) -> Option<&str> {
        self.hint(name)
            .and_then(|values| values.first())
            .map(String::as_str)
    }

    /// The flavor extra spec `key`.
    pub fn extra_spec(&self, key: &str) -> Option<&str> {
        lookup(&self.flavor.extra_specs, key)
    }

    /// The image property `key`.
    pub fn image_property(&self, key: &str) -> Option<&str> {
        lookup(&self.image.properties, key)
    }
}

impl ServerGroup {
    /// Group rule `key` (e.g. `max_server_per_host`).
    pub fn rule(&self, key: &str) -> Option<&str> {
        lookup(&self.rules, key)
    }
}

impl Aggregate {
    /// Aggregate metadata `key`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        lookup(&self.metadata, key)
    }
}

/// Finds `key` in a key/value list.
pub fn lookup<'a>(pairs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|pair| pair.key == key)
        .map(|pair| pair.value.as_str())
}
