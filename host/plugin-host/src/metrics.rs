//! Per-plugin metrics: calls, hosts rejected, errors by kind, and latency
//! (count, total, max, and p50/p99 from a power-of-two histogram).
//!
//! The same calls reach `/metrics` through the `metrics` facade:
//! [`PluginMetrics::exported`] registers the plugin's series with the
//! recorder in scope when the plugin is loaded, and every call recorded here
//! is recorded there too (one place counts, two views read):
//! `novum_plugin_call_duration_seconds{plugin}` (a histogram: its `_count`
//! is the calls), `novum_plugin_rejections_total{plugin}` and
//! `novum_plugin_errors_total{plugin,error}`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::FailureKind;

/// Latency buckets: bucket `i` counts calls of `[2^i, 2^(i+1))` µs
/// (bucket 0 also counts calls under 1 µs).
const BUCKETS: usize = 32;

/// The Prometheus name of a plugin's call latency histogram.
pub const CALL_DURATION: &str = "novum_plugin_call_duration_seconds";
/// The Prometheus name of a plugin's rejection counter.
pub const REJECTIONS: &str = "novum_plugin_rejections_total";
/// The Prometheus name of a plugin's failed-call counter.
pub const ERRORS: &str = "novum_plugin_errors_total";

/// Counters of one plugin, updated lock-free on every call.
#[derive(Debug)]
pub struct PluginMetrics {
    calls: AtomicU64,
    rejections: AtomicU64,
    errors: [AtomicU64; FailureKind::ALL.len()],
    total_ns: AtomicU64,
    max_ns: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
    exported: Exported,
}

/// The plugin's series in the `metrics` facade's recorder (no-ops when
/// none was in scope at load).
#[derive(Debug)]
struct Exported {
    duration: metrics::Histogram,
    rejections: metrics::Counter,
    errors: [metrics::Counter; FailureKind::ALL.len()],
}

impl Exported {
    fn noop() -> Self {
        Self {
            duration: metrics::Histogram::noop(),
            rejections: metrics::Counter::noop(),
            errors: std::array::from_fn(|_| metrics::Counter::noop()),
        }
    }

    /// The series of plugin `name`, registered with the recorder in scope.
    fn register(name: &str) -> Self {
        let plugin = name.to_string();
        Self {
            duration: metrics::histogram!(CALL_DURATION, "plugin" => plugin.clone()),
            rejections: metrics::counter!(REJECTIONS, "plugin" => plugin.clone()),
            errors: FailureKind::ALL.map(|kind| {
                metrics::counter!(ERRORS, "plugin" => plugin.clone(), "error" => kind.as_str())
            }),
        }
    }
}

impl Default for PluginMetrics {
    fn default() -> Self {
        Self::with_exported(Exported::noop())
    }
}

/// Latency figures, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySnapshot {
    /// Calls measured.
    pub count: u64,
    /// Sum of all call times.
    pub total_us: u64,
    /// Slowest call.
    pub max_us: u64,
    /// Median (upper bound of its histogram bucket).
    pub p50_us: u64,
    /// 99th percentile (upper bound of its histogram bucket).
    pub p99_us: u64,
}

/// A point-in-time copy of a plugin's metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// Calls made.
    pub calls: u64,
    /// Hosts rejected (filters) or requests denied (quota policies).
    pub rejections: u64,
    /// Failed calls by kind (`trap`, `deadline`, `out-of-memory`, `malformed`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Call latency.
    pub latency: LatencySnapshot,
}

impl MetricsSnapshot {
    /// Total failed calls.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

impl PluginMetrics {
    fn with_exported(exported: Exported) -> Self {
        Self {
            calls: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            total_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            exported,
        }
    }

    /// Counters of plugin `name` that also record into the `metrics`
    /// recorder in scope now (the controller's `/metrics`); a plugin loaded
    /// again under the same name continues the same series.
    pub fn exported(name: &str) -> Self {
        Self::with_exported(Exported::register(name))
    }

    /// Records one call that took `elapsed`.
    pub fn record_call(&self, elapsed: Duration) {
        self.exported.duration.record(elapsed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.total_ns.fetch_add(nanos, Ordering::Relaxed);
        self.max_ns.fetch_max(nanos, Ordering::Relaxed);
        let micros = nanos / 1000;
        let bucket = if micros == 0 {
            0
        } else {
            (63 - micros.leading_zeros() as usize).min(BUCKETS - 1)
        };
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Records `count` rejected hosts.
    pub fn record_rejections(&self, count: u64) {
        self.rejections.fetch_add(count, Ordering::Relaxed);
        self.exported.rejections.increment(count);
    }

    /// Records a failed call.
    pub fn record_error(&self, kind: FailureKind) {
        self.errors[kind.index()].fetch_add(1, Ordering::Relaxed);
        self.exported.errors[kind.index()].increment(1);
    }

    /// Failed calls of `kind`.
    pub fn errors(&self, kind: FailureKind) -> u64 {
        self.errors[kind.index()].load(Ordering::Relaxed)
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let buckets: Vec<u64> = self
            .buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .collect();
        let count: u64 = buckets.iter().sum();
        let percentile = |fraction: f64| -> u64 {
            if count == 0 {
                return 0;
            }
            let wanted = ((count as f64) * fraction).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (index, bucket) in buckets.iter().enumerate() {
                seen += bucket;
                if seen >= wanted {
                    return 1u64 << (index + 1);
                }
            }
            1u64 << BUCKETS
        };
        MetricsSnapshot {
            calls: self.calls.load(Ordering::Relaxed),
            rejections: self.rejections.load(Ordering::Relaxed),
            errors: FailureKind::ALL
                .iter()
                .map(|kind| (kind.as_str().to_string(), self.errors(*kind)))
                .filter(|(_, count)| *count > 0)
                .collect(),
            latency: LatencySnapshot {
                count,
                total_us: self.total_ns.load(Ordering::Relaxed) / 1000,
                max_us: self.max_ns.load(Ordering::Relaxed) / 1000,
                p50_us: percentile(0.5),
                p99_us: percentile(0.99),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentiles() {
        let metrics = PluginMetrics::default();
        for _ in 0..98 {
            metrics.record_call(Duration::from_micros(10));
        }
        metrics.record_call(Duration::from_micros(5000));
        metrics.record_call(Duration::from_micros(5000));
        metrics.record_error(FailureKind::Deadline);
        metrics.record_rejections(3);
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.calls, 100);
        assert_eq!(snapshot.rejections, 3);
        assert_eq!(snapshot.errors.get("deadline"), Some(&1));
        assert_eq!(snapshot.error_count(), 1);
        assert_eq!(snapshot.latency.p50_us, 16);
        assert_eq!(snapshot.latency.p99_us, 8192);
        assert_eq!(snapshot.latency.max_us, 5000);
    }
}
