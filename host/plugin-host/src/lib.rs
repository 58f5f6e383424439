//! novum's plugin runtime: filters, weighers, quota policies and
//! notification hooks as sandboxed WebAssembly components (or, for the
//! reference pipeline and benchmarks, the same plugin crates compiled
//! natively, with the `native` feature).
//!
//! - [`engine`]: the one wasmtime engine, its epoch ticker and compile cache.
//! - [`limits`]: deadlines and memory caps, with their defaults.
//! - [`bindings`]: generated bindings per released WIT version.
//! - [`wasm`] and `native`: the two [`PluginBackend`]s; [`wasi`]: the
//!   empty WASI context of every wasm plugin store.
//! - [`set`]: [`PluginSet`], the loaded and configured plugins, and
//!   [`Plugins`], which swaps sets atomically on reload.
//! - [`weigher_defaults`]: the multiplier settings a weigher gets when its
//!   own `[plugins.<name>]` table does not set them.
//! - [`metrics`]: per-plugin call counters and latency.
//! - [`builtin`]: the shipped components, built by `build.rs`, and
//!   [`builtin::PLUGIN_WASM_DIR`], where every built component lies.
//! - [`config`]: the `[plugins]` section of the configuration.
//!
//! **Sandbox.** A plugin gets the `host` interface (log, config, now-ms) and
//! an empty WASI context ([`wasi`]): Rust guests built for `wasm32-wasip2`
//! import WASI interfaces even when they do no I/O, and ordinary std code
//! (a `HashMap`, `println!`, `std::env::var`) works, but there is nothing to
//! reach: no preopened directories, no environment, no arguments, no
//! network, stdout and stderr discarded. Opening a file or a socket is an
//! error the guest sees, not a capability; a timer never outlasts the call's
//! deadline.

#![deny(missing_docs)]

pub mod bindings;
pub mod builtin;
pub mod config;
pub mod engine;
pub mod limits;
pub mod metrics;
#[cfg(feature = "native")]
pub mod native;
pub mod set;
pub mod wasi;
pub mod wasm;
pub mod weigher_defaults;

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use novum_plugin_sdk::{
    Column, FilterOutcome, HostTable, Notification, PluginInfo, QuotaDenial, QuotaRequest,
};
use serde::Serialize;

pub use config::{OnError, PluginConfig, PluginDefaults, PluginSettings, PluginsConfig};
pub use engine::{CompileSource, PluginEngine};
pub use limits::Limits;
pub use metrics::{MetricsSnapshot, PluginMetrics};
pub use set::{
    Backend, LoadError, PluginSelection, PluginSet, PluginSummary, Plugins, WeigherEntry,
};

/// What a plugin does: the WIT world it implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// A scheduler filter.
    Filter,
    /// A scheduler weigher.
    Weigher,
    /// A quota policy.
    QuotaPolicy,
    /// A notification hook.
    NotificationHook,
}

impl fmt::Display for PluginKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            PluginKind::Filter => "filter",
            PluginKind::Weigher => "weigher",
            PluginKind::QuotaPolicy => "quota-policy",
            PluginKind::NotificationHook => "notification-hook",
        })
    }
}

/// Where a plugin was loaded from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "path")]
pub enum PluginSource {
    /// A component shipped inside the controller.
    Builtin,
    /// A component file.
    File(PathBuf),
    /// The plugin crate compiled natively into the controller.
    Native,
}

/// How a plugin call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The guest trapped (panic, unreachable, `std::process::exit`, a WASI
    /// function failing, ...).
    Trap,
    /// The call overran its deadline.
    Deadline,
    /// The guest tried to grow its memory past its cap.
    OutOfMemory,
    /// The answer was malformed (wrong length, bad reason index, NaN).
    Malformed,
    /// A fresh instance could not be created.
    Instantiate,
    /// The plugin does not implement the call (wrong world).
    Unsupported,
}

impl FailureKind {
    /// Every kind, in metrics order.
    pub const ALL: [FailureKind; 6] = [
        FailureKind::Trap,
        FailureKind::Deadline,
        FailureKind::OutOfMemory,
        FailureKind::Malformed,
        FailureKind::Instantiate,
        FailureKind::Unsupported,
    ];

    /// The kind's name in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Deadline => "deadline",
            FailureKind::OutOfMemory => "out-of-memory",
            FailureKind::Malformed => "malformed",
            FailureKind::Instantiate => "instantiate",
            FailureKind::Unsupported => "unsupported",
        }
    }

    fn index(self) -> usize {
        match self {
            FailureKind::Trap => 0,
            FailureKind::Deadline => 1,
            FailureKind::OutOfMemory => 2,
            FailureKind::Malformed => 3,
            FailureKind::Instantiate => 4,
            FailureKind::Unsupported => 5,
        }
    }
}

/// A failed plugin call.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{} ({})", message, kind.as_str())]
pub struct PluginFailure {
    /// What went wrong.
    pub kind: FailureKind,
    /// Details.
    pub message: String,
}

impl PluginFailure {
    /// A failure of `kind`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// What a plugin call knows about its scheduling request.
#[derive(Clone, Copy, Debug)]
pub struct CallContext<'a> {
    /// The request id, for log lines.
    pub request_id: &'a str,
    /// The request, converted for the WebAssembly contract at most once per
    /// version and shared by every plugin call.
    pub request: &'a bindings::ConvertedRequest<'a>,
}

/// Builds the host table of one plugin call for the columns the plugin's
/// `begin` answered (after checking them against what it declared).
pub type TableFor<'t> = dyn FnMut(Vec<Column>) -> Result<HostTable, PluginFailure> + 't;

/// How a plugin runs: a sandboxed component ([`wasm::WasmPlugin`]) or the
/// plugin crate compiled natively (`native::NativeBackend`, feature
/// `native`). The scheduler only sees this trait, so one pipeline serves
/// both.
pub trait PluginBackend: Send + Sync {
    /// Where the plugin was loaded from.
    fn source(&self) -> PluginSource;
    /// Filters the hosts of one request: `begin` with the request (which
    /// answers the columns it needs), the table `hosts` builds for them,
    /// then `filter-hosts` on the same instance.
    fn filter(
        &self,
        context: &CallContext<'_>,
        hosts: &mut TableFor<'_>,
    ) -> Result<FilterOutcome, PluginFailure>;
    /// Raw weights of the hosts of one request, as [`PluginBackend::filter`]
    /// with `weigh-hosts`.
    fn weigh(
        &self,
        context: &CallContext<'_>,
        hosts: &mut TableFor<'_>,
    ) -> Result<Vec<f64>, PluginFailure>;
    /// Checks a quota request.
    fn check_quota(
        &self,
        request_id: &str,
        request: QuotaRequest,
    ) -> Result<Result<(), QuotaDenial>, PluginFailure>;
    /// Delivers a notification.
    fn on_notification(
        &self,
        request_id: &str,
        notification: Notification,
    ) -> Result<Result<(), String>, PluginFailure>;
    /// The hook's report (JSON).
    fn report(&self) -> Result<String, PluginFailure>;
}

/// A loaded plugin: its identity, settings, metrics and backend. Every call
/// goes through here, which validates answers, counts and logs failures.
pub struct LoadedPlugin {
    name: String,
    kind: PluginKind,
    info: PluginInfo,
    settings: PluginSettings,
    metrics: PluginMetrics,
    backend: Box<dyn PluginBackend>,
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("source", &self.backend.source())
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// Wraps a backend.
    pub fn new(
        name: String,
        kind: PluginKind,
        info: PluginInfo,
        settings: PluginSettings,
        backend: Box<dyn PluginBackend>,
    ) -> Self {
        let metrics = PluginMetrics::exported(&name);
        Self {
            name,
            kind,
            info,
            settings,
            metrics,
            backend,
        }
    }

    /// The configured name (what `enabled_filters`/`weighers` list).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin kind.
    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    /// What the plugin said about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// Effective settings.
    pub fn settings(&self) -> &PluginSettings {
        &self.settings
    }

    /// Failure policy.
    pub fn on_error(&self) -> OnError {
        self.settings.on_error
    }

    /// Call metrics.
    pub fn metrics(&self) -> &PluginMetrics {
        &self.metrics
    }

    /// Where the plugin came from.
    pub fn source(&self) -> PluginSource {
        self.backend.source()
    }

    fn finish<T>(
        &self,
        started: Instant,
        result: Result<T, PluginFailure>,
        request_id: &str,
    ) -> Result<T, PluginFailure> {
        self.finish_after(started.elapsed(), result, request_id)
    }

    fn finish_after<T>(
        &self,
        elapsed: Duration,
        result: Result<T, PluginFailure>,
        request_id: &str,
    ) -> Result<T, PluginFailure> {
        self.metrics.record_call(elapsed);
        if let Err(failure) = &result {
            self.metrics.record_error(failure.kind);
            tracing::warn!(
                plugin = %self.name,
                request_id,
                kind = failure.kind.as_str(),
                error = %failure.message,
                "plugin call failed"
            );
        }
        result
    }

    /// Runs `call` with a table builder that checks the columns the plugin
    /// asks for against its declared `needs` and builds the table with
    /// `hosts`, then checks the answer with `check` (given the table's row
    /// count). One call in the metrics, timed without the table building.
    fn with_table<T>(
        &self,
        context: &CallContext<'_>,
        hosts: impl FnOnce(&[Column]) -> HostTable,
        call: impl FnOnce(&mut TableFor<'_>) -> Result<T, PluginFailure>,
        check: impl FnOnce(T, usize) -> Result<T, PluginFailure>,
    ) -> Result<T, PluginFailure> {
        let started = Instant::now();
        let mut building = Duration::ZERO;
        let mut rows = 0;
        let mut hosts = Some(hosts);
        let declared = &self.info.needs;
        let result = {
            let mut table = |needs: Vec<Column>| {
                let needs = validate_needs(needs, declared)?;
                let build = hosts.take().ok_or_else(|| {
                    PluginFailure::new(FailureKind::Malformed, "host table asked for twice")
                })?;
                let built = Instant::now();
                let table = build(&needs);
                building = built.elapsed();
                rows = table.len as usize;
                Ok(table)
            };
            call(&mut table)
        };
        let result = result.and_then(|answer| check(answer, rows));
        self.finish_after(
            started.elapsed().saturating_sub(building),
            result,
            context.request_id,
        )
    }

    /// Runs the filter over the table `hosts` builds for the columns the
    /// request needs, and checks the answer's shape.
    pub fn filter(
        &self,
        context: &CallContext<'_>,
        hosts: impl FnOnce(&[Column]) -> HostTable,
    ) -> Result<FilterOutcome, PluginFailure> {
        let outcome = self.with_table(
            context,
            hosts,
            |table| self.backend.filter(context, table),
            validate_filter,
        )?;
        let rejected = outcome
            .verdicts
            .iter()
            .filter(|verdict| **verdict != 0)
            .count();
        self.metrics.record_rejections(rejected as u64);
        Ok(outcome)
    }

    /// Runs the weigher over the table `hosts` builds for the columns the
    /// request needs, and checks the answer's shape.
    pub fn weigh(
        &self,
        context: &CallContext<'_>,
        hosts: impl FnOnce(&[Column]) -> HostTable,
    ) -> Result<Vec<f64>, PluginFailure> {
        self.with_table(
            context,
            hosts,
            |table| self.backend.weigh(context, table),
            validate_weights,
        )
    }

    /// Runs the quota policy.
    pub fn check_quota(
        &self,
        request_id: &str,
        request: QuotaRequest,
    ) -> Result<Result<(), QuotaDenial>, PluginFailure> {
        let started = Instant::now();
        let result = self.backend.check_quota(request_id, request);
        if let Ok(Err(_)) = &result {
            self.metrics.record_rejections(1);
        }
        self.finish(started, result, request_id)
    }

    /// Delivers a notification to the hook.
    pub fn on_notification(
        &self,
        request_id: &str,
        notification: Notification,
    ) -> Result<Result<(), String>, PluginFailure> {
        let started = Instant::now();
        let result = self.backend.on_notification(request_id, notification);
        self.finish(started, result, request_id)
    }

    /// The hook's own report (JSON).
    pub fn report(&self) -> Result<String, PluginFailure> {
        let started = Instant::now();
        let result = self.backend.report();
        self.finish(started, result, "")
    }
}

/// The WIT name of a host column, e.g. `num-io-ops`.
pub fn column_name(column: Column) -> &'static str {
    match column {
        Column::Name => "name",
        Column::Uuid => "uuid",
        Column::AvailabilityZone => "availability-zone",
        Column::Aggregates => "aggregates",
        Column::Memory => "memory",
        Column::Disk => "disk",
        Column::Vcpus => "vcpus",
        Column::AllocationRatios => "allocation-ratios",
        Column::NumInstances => "num-instances",
        Column::NumIoOps => "num-io-ops",
        Column::FailedBuilds => "failed-builds",
        Column::Hypervisor => "hypervisor",
        Column::Cpu => "cpu",
        Column::SupportedInstances => "supported-instances",
        Column::Metrics => "metrics",
        Column::Service => "service",
        Column::HostIp => "host-ip",
        Column::Instances => "instances",
        Column::InstanceGroups => "instance-groups",
        Column::InstanceImageProperties => "instance-image-properties",
    }
}

/// Checks a filter answer: one verdict per host, each naming an existing
/// reason.
pub fn validate_filter(
    mut outcome: FilterOutcome,
    len: usize,
) -> Result<FilterOutcome, PluginFailure> {
    // An empty verdict list means every host passed.
    if outcome.verdicts.is_empty() && outcome.reasons.is_empty() {
        outcome.verdicts = vec![0; len];
    }
    if outcome.verdicts.len() != len {
        return Err(PluginFailure::new(
            FailureKind::Malformed,
            format!(
                "returned {} verdicts for {len} hosts",
                outcome.verdicts.len()
            ),
        ));
    }
    if let Some(bad) = outcome
        .verdicts
        .iter()
        .find(|verdict| **verdict as usize > outcome.reasons.len())
    {
        return Err(PluginFailure::new(
            FailureKind::Malformed,
            format!(
                "verdict {bad} names a reason beyond the {} given",
                outcome.reasons.len()
            ),
        ));
    }
    Ok(outcome)
}

/// Checks a `begin` answer: only columns of `declared`.
pub fn validate_needs(
    needs: Vec<Column>,
    declared: &[Column],
) -> Result<Vec<Column>, PluginFailure> {
    match needs.iter().find(|column| !declared.contains(column)) {
        Some(column) => Err(PluginFailure::new(
            FailureKind::Malformed,
            format!(
                "begin asked for column `{}`, which describe() did not declare",
                column_name(*column)
            ),
        )),
        None => Ok(needs),
    }
}

/// Checks a weigher answer: one finite weight per host.
pub fn validate_weights(weights: Vec<f64>, len: usize) -> Result<Vec<f64>, PluginFailure> {
    if weights.len() != len {
        return Err(PluginFailure::new(
            FailureKind::Malformed,
            format!("returned {} weights for {len} hosts", weights.len()),
        ));
    }
    if let Some(row) = weights.iter().position(|weight| !weight.is_finite()) {
        return Err(PluginFailure::new(
            FailureKind::Malformed,
            format!("weight of row {row} is {}", weights[row]),
        ));
    }
    Ok(weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_answers_are_caught() {
        let ok = FilterOutcome {
            verdicts: vec![0, 1, 1],
            reasons: vec!["x".into()],
        };
        assert!(validate_filter(ok, 3).is_ok());
        let short = FilterOutcome {
            verdicts: vec![0],
            reasons: vec![],
        };
        assert_eq!(
            validate_filter(short, 2).map_err(|f| f.kind),
            Err(FailureKind::Malformed)
        );
        let bad_reason = FilterOutcome {
            verdicts: vec![2],
            reasons: vec!["x".into()],
        };
        assert_eq!(
            validate_filter(bad_reason, 1).map_err(|f| f.kind),
            Err(FailureKind::Malformed)
        );
        assert!(validate_weights(vec![1.0, 2.0], 2).is_ok());
        assert!(validate_weights(vec![1.0], 2).is_err());
        assert!(validate_weights(vec![f64::NAN, 2.0], 2).is_err());
        assert!(validate_weights(vec![f64::INFINITY], 1).is_err());
        let declared = [Column::Memory, Column::Name];
        assert_eq!(
            validate_needs(vec![Column::Name], &declared).map_err(|f| f.kind),
            Ok(vec![Column::Name])
        );
        assert!(validate_needs(Vec::new(), &declared).is_ok());
        assert_eq!(
            validate_needs(vec![Column::Name, Column::Disk], &declared).map_err(|f| f.kind),
            Err(FailureKind::Malformed)
        );
    }
}
