//! The WebAssembly backend: a component compiled once (through the cache),
//! pre-linked (`InstancePre`), and a small pool of warm instances, each in its
//! own store with a memory cap, a per-call budget ([`CallBudget`], checked
//! at epoch deadlines) and an empty WASI
//! context ([`super::wasi`]). An instance that traps, overruns its deadline or
//! its memory is discarded; the next call gets a fresh one.

use std::sync::{Arc, Mutex, PoisonError};

use novum_plugin_sdk::{
    FilterOutcome, HostTable, Level, Notification, PluginInfo, QuotaDenial, QuotaRequest,
};
use wasmtime::component::Linker;
use wasmtime::{Store, Trap};

use super::bindings::{VersionedInstance, VersionedPre};
use super::engine::{CompileSource, PluginEngine};
use super::limits::{CallBudget, LimitKind, Limits, MemoryCap, warn_limit_hit};
use super::wasi::{self, PluginWasi};
use super::{
    CallContext, FailureKind, PluginBackend, PluginFailure, PluginKind, PluginSettings,
    PluginSource, TableFor,
};

/// Wall-clock milliseconds since the Unix epoch (the `now-ms` import).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What a plugin's store holds: its name, its configuration, the current
/// request id (for log lines), its memory cap, the current call's budget and
/// its (empty) WASI context.
pub struct StoreState {
    plugin: Arc<str>,
    config: Arc<Vec<(String, String)>>,
    request_id: String,
    memory: MemoryCap,
    budget: CallBudget,
    wasi: PluginWasi,
}

impl StoreState {
    /// The current call's budget.
    pub(super) fn budget(&self) -> &CallBudget {
        &self.budget
    }

    /// The store's WASI state.
    pub(super) fn wasi(&self) -> &PluginWasi {
        &self.wasi
    }

    /// The store's WASI state, to change.
    pub(super) fn wasi_mut(&mut self) -> &mut PluginWasi {
        &mut self.wasi
    }

    /// The plugin's configuration (the `config` import).
    pub fn plugin_config(&self) -> &[(String, String)] {
        &self.config
    }

    /// The `log` import: a tracing event tagged with plugin and request id.
    pub fn write_log(&self, level: Level, message: &str, fields: &[(String, String)]) {
        let plugin = &*self.plugin;
        let request_id = self.request_id.as_str();
        let fields = fields
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(" ");
        match level {
            Level::Trace => tracing::trace!(plugin, request_id, fields, "{message}"),
            Level::Debug => tracing::debug!(plugin, request_id, fields, "{message}"),
            Level::Info => tracing::info!(plugin, request_id, fields, "{message}"),
            Level::Warn => tracing::warn!(plugin, request_id, fields, "{message}"),
            Level::Error => tracing::error!(plugin, request_id, fields, "{message}"),
        }
    }
}

/// One warm instance.
struct Slot {
    store: Store<StoreState>,
    instance: VersionedInstance,
}

/// A plugin component ready to run.
pub struct WasmPlugin {
    engine: Arc<PluginEngine>,
    name: Arc<str>,
    source: PluginSource,
    pre: VersionedPre,
    limits: Limits,
    config: Arc<Vec<(String, String)>>,
    pool: Mutex<Vec<Slot>>,
    pool_size: usize,
    compile_source: CompileSource,
    /// Serializes the calls of a notification hook: a hook keeps state
    /// between calls (a ledger, a record), so its deliveries and its
    /// `report` run one at a time on its one warm instance.
    hook_calls: Mutex<()>,
}

impl WasmPlugin {
    /// Compiles (or loads from the cache) and links `bytes`, then instantiates
    /// it once and asks it to describe itself.
    pub fn load(
        engine: &Arc<PluginEngine>,
        name: &str,
        source: PluginSource,
        bytes: &[u8],
        settings: &PluginSettings,
    ) -> Result<(Self, PluginKind, PluginInfo), String> {
        let (component, compile_source) = engine
            .load_component(name, bytes)
            .map_err(|error| format!("not a valid component: {error:#}"))?;
        let mut linker: Linker<StoreState> = Linker::new(engine.engine());
        super::bindings::v0_1_0::add_to_linker(&mut linker)
            .map_err(|error| format!("linking host functions: {error:#}"))?;
        wasi::add_to_linker(&mut linker).map_err(|error| format!("linking WASI: {error:#}"))?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|error| format!("cannot be linked: {error:#}"))?;
        let pre = VersionedPre::new(&instance_pre).ok_or_else(|| {
            "exports none of the novum:plugin@0.1.0 worlds (filter, weigher, quota-policy, notification-hook)".to_string()
        })?;
        let kind = pre.kind();
        let plugin = Self {
            engine: Arc::clone(engine),
            name: Arc::from(name),
            source,
            pre,
            limits: settings.limits,
            config: Arc::new(settings.config.clone()),
            pool: Mutex::new(Vec::new()),
            pool_size: settings.pool_size.max(1),
            compile_source,
            hook_calls: Mutex::new(()),
        };
        let info = plugin
            .call("load", |instance, store| instance.describe(store))
            .map_err(|failure| format!("describe failed: {failure}"))?;
        Ok((plugin, kind, info))
    }

    /// Whether the component was compiled now or came from the cache.
    pub fn compile_source(&self) -> CompileSource {
        self.compile_source
    }

    /// The contract version the component implements.
    pub fn contract_version(&self) -> &'static str {
        self.pre.version()
    }

    fn instantiate(&self) -> Result<Slot, PluginFailure> {
        let state = StoreState {
            plugin: Arc::clone(&self.name),
            config: Arc::clone(&self.config),
            request_id: String::new(),
            memory: MemoryCap::new(self.limits.memory_bytes),
            budget: CallBudget::new(self.limits.deadline),
            wasi: PluginWasi::empty(Arc::clone(self.engine.epoch_counter())),
        };
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|state| &mut state.memory);
        store.epoch_deadline_callback(|store| Ok(store.data().budget.on_epoch_deadline()));
        start_budget(&mut store);
        match wasi::run_guest(|| self.pre.instantiate(&mut store)) {
            Ok(Ok(instance)) => Ok(Slot { store, instance }),
            Ok(Err(error)) => Err(self.classify(&store, error, FailureKind::Instantiate)),
            Err(panic) => Err(PluginFailure::new(FailureKind::Instantiate, panic)),
        }
    }

    /// Fails with `Unsupported` unless the plugin is of `kind`.
    fn expect_kind(&self, kind: PluginKind, export: &str) -> Result<(), PluginFailure> {
        if self.pre.kind() == kind {
            Ok(())
        } else {
            Err(PluginFailure::new(
                FailureKind::Unsupported,
                format!("is a {}, it does not export `{export}`", self.pre.kind()),
            ))
        }
    }

    fn classify(
        &self,
        store: &Store<StoreState>,
        error: wasmtime::Error,
        otherwise: FailureKind,
    ) -> PluginFailure {
        if store.data().memory.was_hit() {
            warn_limit_hit(
                &self.name,
                LimitKind::Memory,
                &format!("{} bytes", self.limits.memory_bytes),
            );
            return PluginFailure::new(
                FailureKind::OutOfMemory,
                format!(
                    "exceeded its memory limit of {} MiB",
                    self.limits.memory_bytes >> 20
                ),
            );
        }
        if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            warn_limit_hit(
                &self.name,
                LimitKind::Deadline,
                &format!("{:?}", self.limits.deadline),
            );
            return PluginFailure::new(
                FailureKind::Deadline,
                format!(
                    "exceeded its deadline of {} ms",
                    self.limits.deadline.as_millis()
                ),
            );
        }
        PluginFailure::new(otherwise, format!("{error:#}"))
    }

    /// Runs `call` on a warm instance (or a fresh one), under the plugin's
    /// deadline and memory cap. The instance goes back to the pool only when
    /// the call succeeded.
    fn call<R, E: Into<CallError>>(
        &self,
        request_id: &str,
        call: impl FnOnce(&VersionedInstance, &mut Store<StoreState>) -> Result<R, E>,
    ) -> Result<R, PluginFailure> {
        let warm = self
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut slot = match warm {
            Some(slot) => slot,
            None => self.instantiate()?,
        };
        {
            let state = slot.store.data_mut();
            state.memory.reset();
            state.request_id.clear();
            state.request_id.push_str(request_id);
        }
        start_budget(&mut slot.store);
        let result = match wasi::run_guest(|| call(&slot.instance, &mut slot.store)) {
            Ok(result) => result.map_err(Into::into),
            Err(panic) => Err(CallError::Host(PluginFailure::new(
                FailureKind::Trap,
                panic,
            ))),
        };
        match result {
            Ok(value) => {
                let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
                if pool.len() < self.pool_size {
                    pool.push(slot);
                }
                Ok(value)
            }
            Err(CallError::Guest(error)) => {
                Err(self.classify(&slot.store, error, FailureKind::Trap))
            }
            Err(CallError::Host(failure)) => Err(failure),
        }
    }

    /// One request on one instance: `begin` hands it the request and answers
    /// the columns, `hosts` builds the table for them, and `run` makes the
    /// filter or weigh call (under a fresh deadline). A failure anywhere
    /// discards the instance, so no instance keeps a half-begun request.
    fn session<R>(
        &self,
        context: &CallContext<'_>,
        hosts: &mut TableFor<'_>,
        run: impl FnOnce(&VersionedInstance, &mut Store<StoreState>, HostTable) -> wasmtime::Result<R>,
    ) -> Result<R, PluginFailure> {
        self.call(context.request_id, |instance, store| {
            let needs = instance.begin(store, context.request)?;
            let table = hosts(needs).map_err(CallError::Host)?;
            start_budget(store);
            Ok::<_, CallError>(run(instance, store, table)?)
        })
    }
}

/// Starts a fresh budget for the next guest call and sets its first check.
fn start_budget(store: &mut Store<StoreState>) {
    let ticks = store.data_mut().budget.start();
    store.set_epoch_deadline(ticks);
}

/// How a call on an instance failed.
enum CallError {
    /// In the guest: a trap, the deadline, the memory cap.
    Guest(wasmtime::Error),
    /// On the host, between two guest calls (a malformed `begin` answer).
    Host(PluginFailure),
}

impl From<wasmtime::Error> for CallError {
    fn from(error: wasmtime::Error) -> Self {
        Self::Guest(error)
    }
}

impl PluginBackend for WasmPlugin {
    fn source(&self) -> PluginSource {
        self.source.clone()
    }

    fn filter(
        &self,
        context: &CallContext<'_>,
        hosts: &mut TableFor<'_>,
    ) -> Result<FilterOutcome, PluginFailure> {
        self.expect_kind(PluginKind::Filter, "filter-hosts")?;
        self.session(context, hosts, |instance, store, table| {
            instance.filter_hosts(store, table)
        })
    }

    fn weigh(
        &self,
        context: &CallContext<'_>,
        hosts: &mut TableFor<'_>,
    ) -> Result<Vec<f64>, PluginFailure> {
        self.expect_kind(PluginKind::Weigher, "weigh-hosts")?;
        self.session(context, hosts, |instance, store, table| {
            instance.weigh_hosts(store, table)
        })
    }

    fn check_quota(
        &self,
        request_id: &str,
        request: QuotaRequest,
    ) -> Result<Result<(), QuotaDenial>, PluginFailure> {
        self.expect_kind(PluginKind::QuotaPolicy, "check-quota")?;
        self.call(request_id, |instance, store| {
            instance.check_quota(store, request)
        })
    }

    fn on_notification(
        &self,
        request_id: &str,
        notification: Notification,
    ) -> Result<Result<(), String>, PluginFailure> {
        self.expect_kind(PluginKind::NotificationHook, "on-notification")?;
        let _serial = self
            .hook_calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.call(request_id, |instance, store| {
            instance.on_notification(store, notification)
        })
    }

    fn report(&self) -> Result<String, PluginFailure> {
        self.expect_kind(PluginKind::NotificationHook, "report")?;
        let _serial = self
            .hook_calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.call("", |instance, store| instance.report(store))
    }
}
