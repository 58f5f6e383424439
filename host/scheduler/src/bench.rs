//! `novum bench scheduler`: decision time of the WASM pipeline against the
//! native one (the same plugin crates compiled in), side by side in one run,
//! with the default filters and every shipped weigher.
//!
//! The request is realistic by default: its server group has at most
//! [`DEFAULT_GROUP_MEMBERS`] members (Nova's default `server_group_members`
//! quota). The synthetic cloud's uncapped groups (some 15 % of all instances
//! each, ~1,500 members at 10,000 hosts) stay available as a stress case.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::config::SchedulerConfig;
use super::explain::Decision;
use super::pipeline::{NoClaims, Trace, schedule, schedule_traced};
use super::synthetic;
use novum_plugin_host::{Backend, PluginEngine, PluginSet, PluginsConfig};

/// The server group size of the default benchmark request: Nova's default
/// `server_group_members` quota.
pub const DEFAULT_GROUP_MEMBERS: usize = 10;

/// Decision times for one cloud size.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchRow {
    /// Hosts in the cloud.
    pub hosts: usize,
    /// Members of the request's server group (0: no group).
    pub group_members: usize,
    /// Hosts of the request's server group.
    pub group_hosts: usize,
    /// Decisions timed per backend.
    pub iterations: usize,
    /// WASM median.
    pub wasm_median: Duration,
    /// WASM 90th percentile.
    pub wasm_p90: Duration,
    /// Native median.
    pub native_median: Duration,
    /// Native 90th percentile.
    pub native_p90: Duration,
    /// Per plugin: (name, WASM mean µs per call, native mean µs per call).
    pub plugins: Vec<(String, f64, f64)>,
}

impl BenchRow {
    /// WASM median over native median.
    pub fn ratio(&self) -> f64 {
        self.wasm_median.as_secs_f64() / self.native_median.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    let index = ((samples.len() - 1) as f64 * fraction).round() as usize;
    samples[index.min(samples.len() - 1)]
}

/// Loads the default plugins with both backends and times decisions on
/// synthetic clouds of each size in `sizes`, with server groups capped at
/// `group_members` members (`None`: the uncapped synthetic groups). With
/// `explain`, each decision also keeps what the decision log needs, as the
/// controller's does ([`schedule_traced`] and [`Decision::new`]). The
/// native pipeline needs `novum-plugin-host`'s `native` feature (the `novum`
/// binary turns it on); without it this fails with a load error.
pub fn run(
    sizes: &[usize],
    engine: &Arc<PluginEngine>,
    budget: Duration,
    group_members: Option<usize>,
    explain: bool,
) -> anyhow::Result<Vec<BenchRow>> {
    let config = SchedulerConfig {
        host_subset_size: 1,
        ..SchedulerConfig::default()
    };
    let selection = config.plugin_selection();
    let plugins = PluginsConfig::default();
    let mut rows = Vec::new();
    for &hosts in sizes {
        // Fresh sets per size, so per-plugin metrics cover this size only.
        let wasm = PluginSet::load(engine, Backend::Wasm, &selection, &plugins)?;
        let native = PluginSet::load(engine, Backend::Native, &selection, &plugins)?;
        let mut cloud = synthetic::cloud(42, hosts);
        if let Some(members) = group_members {
            cloud = synthetic::cap_group_members(&cloud, members);
        }
        let mut request = synthetic::request(1, &cloud);
        request.force_hosts.clear();
        request.ignore_hosts.clear();
        request.request.num_instances = 1;
        request.request.instance_uuids.truncate(1);
        let mut rng = StdRng::seed_from_u64(0);
        let mut time = |set: &PluginSet| -> anyhow::Result<Duration> {
            // The controller hands its request over; here it is copied
            // before the clock starts.
            let kept = explain.then(|| request.clone());
            let started = Instant::now();
            let result = match kept {
                Some(kept) => {
                    let mut trace = Trace::default();
                    let result = schedule_traced(
                        set,
                        &config,
                        &cloud,
                        &request,
                        &NoClaims,
                        &mut rng,
                        Some(&mut trace),
                    );
                    std::hint::black_box(Decision::new(
                        "build",
                        String::new(),
                        kept,
                        &cloud,
                        trace,
                        &result,
                        config.decision_log_top_hosts,
                    ));
                    result
                }
                None => schedule(set, &config, &cloud, &request, &NoClaims, &mut rng),
            };
            let elapsed = started.elapsed();
            result.map_err(|error| anyhow::anyhow!("benchmark request failed: {error}"))?;
            Ok(elapsed)
        };
        // Warm up: instantiate, fault memory in.
        for _ in 0..3 {
            time(&wasm)?;
            time(&native)?;
        }
        let (mut wasm_samples, mut native_samples) = (Vec::new(), Vec::new());
        let started = Instant::now();
        while wasm_samples.len() < 5 || (started.elapsed() < budget && wasm_samples.len() < 1000) {
            wasm_samples.push(time(&wasm)?);
            native_samples.push(time(&native)?);
        }
        let group = request.request.group.as_ref();
        rows.push(BenchRow {
            hosts,
            group_members: group.map_or(0, |group| group.members.len()),
            group_hosts: group.map_or(0, |group| group.hosts.len()),
            iterations: wasm_samples.len(),
            wasm_median: percentile(&mut wasm_samples, 0.5),
            wasm_p90: percentile(&mut wasm_samples, 0.9),
            native_median: percentile(&mut native_samples, 0.5),
            native_p90: percentile(&mut native_samples, 0.9),
            plugins: per_plugin(&wasm, &native),
        });
    }
    Ok(rows)
}

fn per_plugin(wasm: &PluginSet, native: &PluginSet) -> Vec<(String, f64, f64)> {
    let mean = |set: &PluginSet, name: &str| {
        set.list()
            .into_iter()
            .find(|plugin| plugin.name == name)
            .map(|plugin| {
                plugin.metrics.latency.total_us as f64 / plugin.metrics.latency.count.max(1) as f64
            })
            .unwrap_or(0.0)
    };
    wasm.list()
        .into_iter()
        .map(|plugin| {
            let native_mean = mean(native, &plugin.name);
            (plugin.name.clone(), mean(wasm, &plugin.name), native_mean)
        })
        .collect()
}

/// Per-plugin mean call times (µs) of each size, as text.
pub fn format_plugins(rows: &[BenchRow]) -> String {
    let mut text = String::new();
    for row in rows {
        text.push_str(&format!(
            "\n{} hosts: mean call time per plugin (µs), wasm / native\n",
            row.hosts
        ));
        for (name, wasm, native) in &row.plugins {
            text.push_str(&format!("  {name:<42} {wasm:>10.1} {native:>10.1}\n"));
        }
    }
    text
}

/// The rows as a text table.
pub fn format(rows: &[BenchRow]) -> String {
    let ms = |duration: Duration| format!("{:.3}", duration.as_secs_f64() * 1000.0);
    let mut text = format!(
        "{:>7} {:>13} {:>6} {:>12} {:>10} {:>14} {:>12} {:>7}\n",
        "hosts",
        "group mbr/hst",
        "runs",
        "wasm p50 ms",
        "wasm p90",
        "native p50 ms",
        "native p90",
        "ratio"
    );
    for row in rows {
        text.push_str(&format!(
            "{:>7} {:>13} {:>6} {:>12} {:>10} {:>14} {:>12} {:>6.2}x\n",
            row.hosts,
            format!("{}/{}", row.group_members, row.group_hosts),
            row.iterations,
            ms(row.wasm_median),
            ms(row.wasm_p90),
            ms(row.native_median),
            ms(row.native_p90),
            row.ratio()
        ));
    }
    text
}
