//! The limits every plugin runs under, their defaults, and the store-side
//! enforcement of the memory cap.
//!
//! - **Deadline**: each call into a guest gets an epoch deadline. A ticker
//!   thread advances the engine's epoch every [`EPOCH_TICK`]; a call that is
//!   still running [`Limits::deadline`] (rounded up to the tick, plus at most
//!   one tick) after it started traps with [`wasmtime::Trap::Interrupt`].
//! - **Memory**: a guest's linear memory may not grow beyond
//!   [`Limits::memory_bytes`]; growth past it fails (the guest's allocator then
//!   aborts, which traps) and the failure is recorded so the host can report
//!   "out of memory" rather than a plain trap.
//!
//! When a guest hits a limit, [`warn_limit_hit`] emits one structured tracing
//! warning naming the plugin and the limit.

use std::time::Duration;

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
    /// Wall-clock budget of one call.
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

    /// The deadline as a number of epoch ticks: rounded up, plus one tick, so
    /// a call always gets at least its full budget.
    pub fn deadline_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_micros().max(1);
        let ticks = self.deadline.as_micros().div_ceil(tick);
        u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
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

    #[test]
    fn deadline_ticks_cover_the_whole_budget() {
        let limits = Limits::new(50, 64);
        let ticks = limits.deadline_ticks();
        assert!(u128::from(ticks - 1) * EPOCH_TICK.as_millis() >= 50);
        assert_eq!(limits.memory_bytes, 64 << 20);
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
