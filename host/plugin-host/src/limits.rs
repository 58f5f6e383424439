//! The limits every plugin runs under, their defaults, and the store-side
//! enforcement of the memory cap.
//!
//! - **Deadline**: each call into a guest has a [`CallBudget`] of
//!   [`Limits::deadline`]: the CPU time of the thread running the call, plus
//!   the time the guest waits on WASI timers. Time the thread spends waiting
//!   for a core is not charged, so a call preempted on a loaded machine is
//!   not cut short; a guest that spins or sleeps is. A ticker thread advances
//!   the engine's epoch every [`EPOCH_TICK`]; when a call's epoch deadline
//!   comes, [`CallBudget::on_epoch_deadline`] traps it with
//!   [`wasmtime::Trap::Interrupt`] if the budget is spent, else sets the next
//!   check where the rest of the budget would end.
//! - **Memory**: a guest's linear memory may not grow beyond
//!   [`Limits::memory_bytes`]; growth past it fails (the guest's allocator then
//!   aborts, which traps) and the failure is recorded so the host can report
//!   "out of memory" rather than a plain trap.
//!
//! When a guest hits a limit, [`warn_limit_hit`] emits one structured tracing
//! warning naming the plugin and the limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::UpdateDeadline;

/// Default time a single plugin call may take, in milliseconds.
pub const DEFAULT_DEADLINE_MS: u64 = 50;

/// Default cap on a plugin instance's linear memory, in MiB.
pub const DEFAULT_MEMORY_LIMIT_MIB: u64 = 64;

/// Largest memory cap a plugin may be configured with, in MiB (the size of a
/// pooling-allocator memory slot).
pub const MAX_MEMORY_LIMIT_MIB: u64 = 1024;

/// How often the ticker thread advances the engine epoch.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Instances of one plugin kept warm for reuse between calls.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// Plugins the pooling allocator is sized for (instances = plugins × pool size).
pub const POOLED_PLUGINS: u32 = 48;

/// Upper bound on core wasm instances inside one plugin component.
pub const CORE_INSTANCES_PER_COMPONENT: u32 = 16;

/// Largest `wasi:random` request a guest may make, in bytes (a `HashMap`
/// seed is 16); a larger one traps instead of making the host allocate it.
pub const WASI_MAX_RANDOM_BYTES: u64 = 1 << 20;

/// WASI resources (streams, pollables, ...) one plugin instance may hold at
/// once; creating one more traps. std holds a handful at most.
pub const WASI_MAX_RESOURCES: usize = 1024;

/// Limits applied to one plugin's calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Budget of one call: CPU time plus time waiting on timers
    /// ([`CallBudget`]).
    pub deadline: Duration,
    /// Cap on linear memory, in bytes.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(DEFAULT_DEADLINE_MS, DEFAULT_MEMORY_LIMIT_MIB)
    }
}

impl Limits {
    /// Limits from a deadline in milliseconds and a memory cap in MiB.
    pub fn new(deadline_ms: u64, memory_limit_mib: u64) -> Self {
        let mib = memory_limit_mib.min(MAX_MEMORY_LIMIT_MIB);
        Self {
            deadline: Duration::from_millis(deadline_ms),
            memory_bytes: usize::try_from(mib << 20).unwrap_or(usize::MAX),
        }
    }
}

/// Epoch ticks that cover `span`: rounded up, plus one tick (the engine's
/// epoch may be just about to advance when a deadline is set).
pub fn ticks_covering(span: Duration) -> u64 {
    let tick = EPOCH_TICK.as_micros().max(1);
    let ticks = span.as_micros().div_ceil(tick);
    u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
}

/// The CPU time the calling thread has used.
pub fn thread_cpu_time() -> Duration {
    let spent = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(spent.tv_sec).unwrap_or(0),
        u32::try_from(spent.tv_nsec).unwrap_or(0),
    )
}

/// What one call into a guest has used of its deadline: the CPU time of the
/// thread running it since [`CallBudget::start`], plus the time its WASI
/// timers kept it waiting ([`WaitMeter`]). A guest call runs on one thread
/// from start to end (the calls are synchronous), so the thread's CPU clock
/// measures the call and nothing else.
#[derive(Debug)]
pub struct CallBudget {
    limit: Duration,
    cpu_at_start: Duration,
    waited: WaitMeter,
}

impl CallBudget {
    /// A budget of `limit` per call, started now.
    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            cpu_at_start: thread_cpu_time(),
            waited: WaitMeter::default(),
        }
    }

    /// Starts a fresh budget for the next call, on the calling thread;
    /// answers the epoch ticks to its first check (where the budget would
    /// end if the call ran on its core throughout).
    pub fn start(&mut self) -> u64 {
        self.cpu_at_start = thread_cpu_time();
        self.waited.reset();
        ticks_covering(self.limit)
    }

    /// The budget used since [`CallBudget::start`]. Call it on the thread
    /// running the call.
    pub fn used(&self) -> Duration {
        let running = thread_cpu_time().saturating_sub(self.cpu_at_start);
        running.saturating_add(self.waited.total())
    }

    /// What is left of the budget (zero once it is spent).
    pub fn remaining(&self) -> Duration {
        self.limit.saturating_sub(self.used())
    }

    /// The store's epoch-deadline callback: interrupt the guest once the
    /// budget is spent, else check again where the rest would end.
    pub fn on_epoch_deadline(&self) -> UpdateDeadline {
        let remaining = self.remaining();
        if remaining.is_zero() {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Continue(ticks_covering(remaining))
        }
    }

    /// The meter the guest's timers charge their waits to.
    pub fn wait_meter(&self) -> WaitMeter {
        self.waited.clone()
    }
}

/// Time a guest's WASI timers kept its call waiting, shared between the
/// call's [`CallBudget`] and the timers. Two timers polled together both
/// charge the same wait: a guest waiting on several clocks at once is
/// charged more, never less.
#[derive(Clone, Debug, Default)]
pub struct WaitMeter(Arc<AtomicU64>);

impl WaitMeter {
    /// Adds `waited` to the call's total.
    pub fn charge(&self, waited: Duration) {
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Ordering::Relaxed);
    }

    fn total(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }

    fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// A limit a guest ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// The call deadline.
    Deadline,
    /// The memory cap.
    Memory,
}

impl LimitKind {
    /// The limit's name in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Deadline => "deadline",
            LimitKind::Memory => "memory",
        }
    }
}

/// Logs that `plugin` hit `limit` (configured at `value`).
pub fn warn_limit_hit(plugin: &str, limit: LimitKind, value: &str) {
    tracing::warn!(
        plugin,
        limit = limit.as_str(),
        value,
        "plugin hit its {} limit",
        limit.as_str()
    );
}

/// The store's resource limiter: caps linear memory and remembers whether the
/// guest asked for more than allowed during the current call.
#[derive(Debug)]
pub struct MemoryCap {
    limit: usize,
    hit: bool,
}

impl MemoryCap {
    /// A cap of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { limit, hit: false }
    }

    /// Whether growth was refused since the last [`MemoryCap::reset`].
    pub fn was_hit(&self) -> bool {
        self.hit
    }

    /// Clears the "hit" flag before a call.
    pub fn reset(&mut self) {
        self.hit = false;
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.limit && maximum.is_none_or(|maximum| desired <= maximum);
        if !allowed {
            self.hit = true;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000 && maximum.is_none_or(|maximum| desired <= maximum))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn deadline_ticks_cover_the_whole_budget() {
        let limits = Limits::new(50, 64);
        let ticks = CallBudget::new(limits.deadline).start();
        assert!(u128::from(ticks - 1) * EPOCH_TICK.as_millis() >= 50);
        assert_eq!(limits.memory_bytes, 64 << 20);
    }

    #[test]
    fn a_budget_counts_cpu_and_waits_not_time_off_the_core() {
        let mut budget = CallBudget::new(Duration::from_millis(40));
        budget.start();
        // Off the core (sleeping) for longer than the budget: not charged.
        std::thread::sleep(Duration::from_millis(60));
        assert!(budget.used() < Duration::from_millis(20), "{budget:?}");
        assert!(matches!(
            budget.on_epoch_deadline(),
            UpdateDeadline::Continue(ticks) if ticks >= 1
        ));
        // A timer's wait is charged.
        budget.wait_meter().charge(Duration::from_millis(30));
        assert!(budget.used() >= Duration::from_millis(30));
        // CPU time is charged: spin until the budget is spent.
        let spinning = Instant::now();
        while !budget.remaining().is_zero() {
            assert!(spinning.elapsed() < Duration::from_secs(10), "{budget:?}");
            std::hint::black_box(&budget);
        }
        assert!(matches!(
            budget.on_epoch_deadline(),
            UpdateDeadline::Interrupt
        ));
        // A fresh start clears CPU and waits.
        budget.start();
        assert!(budget.used() < Duration::from_millis(20), "{budget:?}");
    }

    #[test]
    fn memory_cap_refuses_and_remembers() {
        use wasmtime::ResourceLimiter;
        let mut cap = MemoryCap::new(1 << 20);
        assert!(cap.memory_growing(0, 1 << 20, None).unwrap_or(false));
        assert!(!cap.was_hit());
        assert!(!cap.memory_growing(0, 2 << 20, None).unwrap_or(true));
        assert!(cap.was_hit());
        cap.reset();
        assert!(!cap.was_hit());
    }
}
