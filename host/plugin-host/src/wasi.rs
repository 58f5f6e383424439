//! The WASI a plugin gets: an empty `wasmtime_wasi` context.
//!
//! A `wasm32-wasip2` guest built with std imports WASI interfaces even when it
//! does no I/O, and ordinary std code calls some of them: a
//! `std::collections::HashMap` asks `wasi:random` for its hash seed,
//! `println!` writes to `wasi:cli/stdout`, a panic message goes to stderr.
//! Every plugin store therefore carries a WASI context that grants nothing:
//!
//! - no preopened directories (opening any path fails), no environment
//!   variables, no arguments, stdin closed;
//! - stdout and stderr discarded (plugins log through the `host` interface);
//! - no network: TCP, UDP and name lookups denied, no socket address allowed;
//! - randomness and clocks work (they reach nothing outside the guest);
//!   a random request is capped at [`WASI_MAX_RANDOM_BYTES`], the resources
//!   an instance holds at [`WASI_MAX_RESOURCES`];
//! - a timer (`std::thread::sleep`, `wasi:io/poll` on a clock) never outlasts
//!   the call's deadline: it wakes at the first epoch tick past the deadline,
//!   and the guest's next instruction hits the deadline like a busy loop.
//!
//! The functions are the synchronous WASI 0.2 bindings
//! (`wasmtime_wasi::p2::add_to_linker_sync`): calls stay synchronous and the
//! engine keeps concurrency support off.
//!
//! wasmtime-wasi implements its blocking functions (stream writes, `poll`) as
//! futures it drives with `block_on` on the current tokio runtime, which tokio
//! refuses on a thread that is running async tasks. [`run_guest`] runs guest
//! code so that this works on the multi-threaded runtime the controller runs
//! (plugin calls already run on blocking threads, where it costs nothing),
//! and turns the refusal into an error anywhere else (a single-threaded
//! runtime's async context) instead of unwinding into the caller.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::{HostMonotonicClock, WasiCtx, WasiCtxView, WasiView};

use super::limits::{EPOCH_TICK, WASI_MAX_RANDOM_BYTES, WASI_MAX_RESOURCES};
use super::wasm::StoreState;

/// The `wasi:clocks/monotonic-clock` instance `wasmtime_wasi` 48 defines; its
/// timer functions are replaced by deadline-capped ones. Check it when
/// upgrading wasmtime-wasi: if it no longer names the defined instance, the
/// timers are not capped and the sandbox test
/// `sleeping_past_the_deadline_hits_the_deadline` fails.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// A plugin store's WASI state: the empty context, its resource table, and
/// where the current call's deadline is (for the timers).
pub struct PluginWasi {
    ctx: WasiCtx,
    table: ResourceTable,
    clock: PluginClock,
    epoch: Arc<AtomicU64>,
    epoch_deadline: u64,
}

impl PluginWasi {
    /// A context that grants nothing (see the module documentation);
    /// `epoch` is the engine's tick counter
    /// ([`super::engine::PluginEngine::epoch_counter`]).
    pub fn empty(epoch: Arc<AtomicU64>) -> Self {
        let clock = PluginClock::new();
        let ctx = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .max_random_size(WASI_MAX_RANDOM_BYTES)
            .monotonic_clock(clock)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(WASI_MAX_RESOURCES);
        Self {
            ctx,
            table,
            clock,
            epoch,
            epoch_deadline: u64::MAX,
        }
    }

    /// Records that the store's epoch deadline was just set `ticks` ahead:
    /// the guest's timers wake once the ticker has counted past it. Call it
    /// after `Store::set_epoch_deadline`, so the engine's epoch read there
    /// is never ahead of the count read here by more than one tick.
    pub fn set_deadline(&mut self, ticks: u64) {
        self.epoch_deadline = self.epoch.load(Ordering::Acquire).saturating_add(ticks);
    }

    /// A pollable that is ready after `wait`, or once the call's deadline has
    /// passed, whichever comes first.
    fn timer(&mut self, wait: Duration) -> wasmtime::Result<Resource<DynPollable>> {
        let timer = CappedTimer {
            wake: tokio::time::Instant::now().checked_add(wait),
            epoch: Arc::clone(&self.epoch),
            // One more tick: the engine's epoch may have been one ahead of
            // the count when the deadline was set.
            epoch_deadline: self.epoch_deadline.saturating_add(1),
        };
        let timer = self.table.push(timer)?;
        subscribe(&mut self.table, timer)
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let wasi = self.wasi_mut();
        WasiCtxView {
            ctx: &mut wasi.ctx,
            table: &mut wasi.table,
        }
    }
}

/// Adds the synchronous WASI 0.2 functions to `linker`, with the monotonic
/// clock's timers capped by the call deadline.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store: StoreContextMut<'_, StoreState>, (nanos,): (u64,)| {
            Ok((store
                .data_mut()
                .wasi_mut()
                .timer(Duration::from_nanos(nanos))?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store: StoreContextMut<'_, StoreState>, (when,): (u64,)| {
            let wasi = store.data_mut().wasi_mut();
            let wait = Duration::from_nanos(when.saturating_sub(wasi.clock.now()));
            Ok((wasi.timer(wait)?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A guest's timer, capped by its call's deadline.
struct CappedTimer {
    /// When the guest asked to wake (`None`: too far ahead to represent).
    wake: Option<tokio::time::Instant>,
    epoch: Arc<AtomicU64>,
    /// Ready once the ticker's count is past this.
    epoch_deadline: u64,
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedTimer {
    async fn ready(&mut self) {
        loop {
            if self.epoch.load(Ordering::Acquire) > self.epoch_deadline {
                return;
            }
            let step = tokio::time::Instant::now() + EPOCH_TICK;
            match self.wake {
                Some(wake) if wake <= step => {
                    tokio::time::sleep_until(wake).await;
                    return;
                }
                _ => tokio::time::sleep_until(step).await,
            }
        }
    }
}

/// The guest's monotonic clock: nanoseconds since its store was created.
#[derive(Clone, Copy, Debug)]
struct PluginClock {
    origin: Instant,
}

impl PluginClock {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl HostMonotonicClock for PluginClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Runs guest code (`call`) so that wasmtime-wasi's `block_on` is allowed:
/// on a worker thread of a multi-threaded tokio runtime inside
/// `block_in_place`, anywhere else (a blocking thread, no runtime) as is.
/// A host panic while it runs (tokio refusing `block_on` in a
/// single-threaded runtime's async context) comes back as `Err` with its
/// message; the store it ran in must then be discarded.
pub fn run_guest<R>(call: impl FnOnce() -> R) -> Result<R, String> {
    std::panic::catch_unwind(AssertUnwindSafe(
        || match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(call)
            }
            _ => call(),
        },
    ))
    .map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|message| (*message).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        format!("a host function panicked: {message}")
    })
}
