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
//!   what is left of the call's budget, and its wait is charged to the
//!   budget ([`super::limits::CallBudget`]). A timer that would outlast it
//!   sets the store's epoch deadline where the budget ends and wakes once
//!   the engine's epoch is past it: the guest's next instruction then hits
//!   the deadline, like a busy loop.
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

use super::limits::{
    EPOCH_TICK, WASI_MAX_RANDOM_BYTES, WASI_MAX_RESOURCES, WaitMeter, ticks_covering,
};
use super::wasm::StoreState;

/// The `wasi:clocks/monotonic-clock` instance `wasmtime_wasi` 48 defines; its
/// timer functions are replaced by deadline-capped ones. Check it when
/// upgrading wasmtime-wasi: if it no longer names the defined instance, the
/// timers are not capped and the sandbox test
/// `sleeping_past_the_deadline_hits_the_deadline` fails.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// A plugin store's WASI state: the empty context, its resource table, the
/// guest's monotonic clock, and the engine's epoch count (for timers that
/// would outlast their call's budget).
pub struct PluginWasi {
    ctx: WasiCtx,
    table: ResourceTable,
    clock: PluginClock,
    epoch: Arc<AtomicU64>,
}

impl PluginWasi {
    /// A context that grants nothing (see the module documentation);
    /// `epoch` is the engine's tick count
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
        }
    }
}

/// A pollable for the guest in `store` that is ready after `wait`, or once
/// the rest of its call's budget has passed, whichever comes first; the
/// time it keeps the guest waiting is charged to the budget.
fn timer(
    mut store: StoreContextMut<'_, StoreState>,
    wait: Duration,
) -> wasmtime::Result<Resource<DynPollable>> {
    let budget = store.data().budget();
    let remaining = budget.remaining();
    let waits = budget.wait_meter();
    let wake = if wait < remaining {
        Wake::At(tokio::time::Instant::now().checked_add(wait))
    } else {
        // The guest would wait its budget away: check the budget where it
        // ends, and wake once the engine's epoch is past that check (the
        // count read after setting it is at most one tick behind the
        // engine's, hence one tick more).
        let ticks = ticks_covering(remaining);
        store.set_epoch_deadline(ticks);
        let epoch = Arc::clone(&store.data().wasi().epoch);
        let count = epoch.load(Ordering::Acquire).saturating_add(ticks);
        Wake::PastEpoch {
            epoch,
            count: count.saturating_add(1),
        }
    };
    let table = &mut store.data_mut().wasi_mut().table;
    let timer = table.push(CappedTimer { wake, waits })?;
    subscribe(table, timer)
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
        |store: StoreContextMut<'_, StoreState>, (nanos,): (u64,)| {
            Ok((timer(store, Duration::from_nanos(nanos))?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |store: StoreContextMut<'_, StoreState>, (when,): (u64,)| {
            let wait = Duration::from_nanos(when.saturating_sub(store.data().wasi().clock.now()));
            Ok((timer(store, wait)?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A guest's timer, capped by what was left of its call's budget.
struct CappedTimer {
    wake: Wake,
    /// Where the waits are charged.
    waits: WaitMeter,
}

/// When a [`CappedTimer`] is ready.
enum Wake {
    /// At this instant, within the budget (`None`: too far ahead to
    /// represent, never; a budget that large is no cap).
    At(Option<tokio::time::Instant>),
    /// Once the engine's tick `epoch` counts past `count`.
    PastEpoch { epoch: Arc<AtomicU64>, count: u64 },
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedTimer {
    async fn ready(&mut self) {
        // Charged when the wait ends, also when `poll` drops it because
        // another pollable was ready first.
        let _charge = ChargeOnDrop {
            waits: &self.waits,
            since: Instant::now(),
        };
        match &self.wake {
            Wake::At(Some(wake)) => tokio::time::sleep_until(*wake).await,
            Wake::At(None) => std::future::pending().await,
            Wake::PastEpoch { epoch, count } => {
                while epoch.load(Ordering::Acquire) <= *count {
                    tokio::time::sleep(EPOCH_TICK).await;
                }
            }
        }
    }
}

/// Charges the time since `since` to `waits` when dropped.
struct ChargeOnDrop<'a> {
    waits: &'a WaitMeter,
    since: Instant,
}

impl Drop for ChargeOnDrop<'_> {
    fn drop(&mut self) {
        self.waits.charge(self.since.elapsed());
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
