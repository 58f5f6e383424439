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

/// One build of a filter in [`filter_costs`]: decision times with that
/// filter alone, and its own mean call time.
#[derive(Clone, Debug, PartialEq)]
pub struct FilterCost {
    /// Median decision time.
    pub median: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// The plugin's mean call time (without building its table), µs.
    pub call_mean_us: f64,
}

/// One filter, three builds, one cloud size: a Python component, the Rust
/// crate as a component, the Rust crate compiled in.
#[derive(Clone, Debug, PartialEq)]
pub struct FilterCostRow {
    /// Hosts in the cloud.
    pub hosts: usize,
    /// Hosts the filter rejected (the same in every build, or the run fails).
    pub rejected: usize,
    /// Decisions timed per build.
    pub iterations: usize,
    /// The Python component.
    pub python: FilterCost,
    /// The Rust crate as a WebAssembly component.
    pub wasm: FilterCost,
    /// The Rust crate compiled natively.
    pub native: FilterCost,
}

/// The configuration every build of the compared filter gets: a limit the
/// synthetic hosts' instance counts (0–23) straddle, so it both passes and
/// rejects.
pub const FILTER_COST_CONFIG: (&str, &str) = ("max_instances_per_host", "12");

/// The call deadline of the filters [`filter_costs`] compares, ms.
pub const FILTER_COST_DEADLINE_MS: u64 = 1000;

/// The cost per decision of one filter alone (no weighers), side by side:
/// the Python component `python` (a port of the shipped filter `filter`),
/// that filter's Rust crate as a component, and compiled in. Before timing,
/// every build's rejections (host and reason) must agree, or this fails.
pub fn filter_costs(
    sizes: &[usize],
    engine: &Arc<PluginEngine>,
    budget: Duration,
    filter: &str,
    python: &std::path::Path,
) -> anyhow::Result<Vec<FilterCostRow>> {
    let python_name = format!("python-{filter}");
    // A fresh Python instance spends tens of milliseconds instantiating
    // CPython inside its first call's deadline (the default 50 ms is
    // missed on a busy machine); the deadline is a bound, not a cost.
    let plugins: PluginsConfig = toml::from_str(&format!(
        "[defaults]\ndeadline_ms = {FILTER_COST_DEADLINE_MS}\n\
         [{filter}]\nconfig = {{ {key} = {value:?} }}\n\
         [{python_name}]\npath = {path:?}\nconfig = {{ {key} = {value:?} }}\n",
        key = FILTER_COST_CONFIG.0,
        value = FILTER_COST_CONFIG.1,
        path = python.display().to_string(),
    ))?;
    let config_of = |name: &str| SchedulerConfig {
        enabled_filters: vec![name.to_string()],
        weighers: Vec::new(),
        host_subset_size: 1,
        ..SchedulerConfig::default()
    };
    let (python_config, rust_config) = (config_of(&python_name), config_of(filter));
    let mut rows = Vec::new();
    for &hosts in sizes {
        let sets = [
            PluginSet::load(
                engine,
                Backend::Wasm,
                &python_config.plugin_selection(),
                &plugins,
            )?,
            PluginSet::load(
                engine,
                Backend::Wasm,
                &rust_config.plugin_selection(),
                &plugins,
            )?,
            PluginSet::load(
                engine,
                Backend::Native,
                &rust_config.plugin_selection(),
                &plugins,
            )?,
        ];
        let configs = [&python_config, &rust_config, &rust_config];
        let cloud = synthetic::cloud(42, hosts);
        let mut request = synthetic::request(1, &cloud);
        request.force_hosts.clear();
        request.ignore_hosts.clear();
        request.request.num_instances = 1;
        request.request.instance_uuids.truncate(1);
        let rows_of = super::table::HostRows::new(&cloud);
        let rejections = |set: &PluginSet| -> anyhow::Result<Vec<(String, String)>> {
            let ranking = super::pipeline::rank(set, &rows_of, &request, &request.request)
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            Ok(ranking
                .rejections
                .into_iter()
                .map(|rejection| (rejection.host, rejection.reason))
                .collect())
        };
        let expected = rejections(&sets[2])?;
        for set in &sets[..2] {
            let got = rejections(set)?;
            if got != expected {
                anyhow::bail!(
                    "{hosts} hosts: {} rejects {} hosts, the native {filter} {}",
                    set.filters()[0].name(),
                    got.len(),
                    expected.len()
                );
            }
        }
        let mut rng = StdRng::seed_from_u64(0);
        let mut time = |index: usize| -> anyhow::Result<Duration> {
            let started = Instant::now();
            let result = schedule(
                &sets[index],
                configs[index],
                &cloud,
                &request,
                &NoClaims,
                &mut rng,
            );
            let elapsed = started.elapsed();
            result.map_err(|error| anyhow::anyhow!("benchmark request failed: {error}"))?;
            Ok(elapsed)
        };
        for _ in 0..3 {
            for index in 0..3 {
                time(index)?;
            }
        }
        let mut samples: [Vec<Duration>; 3] = Default::default();
        let started = Instant::now();
        while samples[0].len() < 5 || (started.elapsed() < budget && samples[0].len() < 1000) {
            for (index, samples) in samples.iter_mut().enumerate() {
                samples.push(time(index)?);
            }
        }
        let iterations = samples[0].len();
        let [python, wasm, native] = samples;
        let cost = |set: &PluginSet, mut samples: Vec<Duration>| {
            let metrics = set.filters()[0].metrics().snapshot();
            FilterCost {
                median: percentile(&mut samples, 0.5),
                p90: percentile(&mut samples, 0.9),
                call_mean_us: metrics.latency.total_us as f64 / metrics.latency.count.max(1) as f64,
            }
        };
        rows.push(FilterCostRow {
            hosts,
            rejected: expected.len(),
            iterations,
            python: cost(&sets[0], python),
            wasm: cost(&sets[1], wasm),
            native: cost(&sets[2], native),
        });
    }
    Ok(rows)
}

/// The rows of [`filter_costs`] as a text table.
pub fn format_filter_costs(filter: &str, rows: &[FilterCostRow]) -> String {
    let ms = |duration: Duration| format!("{:.3}", duration.as_secs_f64() * 1000.0);
    let mut text = format!(
        "\n{filter} alone ({}={}), per decision: Python component, Rust component, Rust native\n\
         {:>7} {:>8} {:>6} {:>11} {:>10} {:>9} {:>9} {:>10} {:>10} {:>12} {:>9}\n",
        FILTER_COST_CONFIG.0,
        FILTER_COST_CONFIG.1,
        "hosts",
        "rejected",
        "runs",
        "py p50 ms",
        "py p90",
        "rust p50",
        "rust p90",
        "native p50",
        "native p90",
        "py/rust",
        "py/native",
    );
    let ratio = |left: Duration, right: Duration| {
        left.as_secs_f64() / right.as_secs_f64().max(f64::MIN_POSITIVE)
    };
    for row in rows {
        text.push_str(&format!(
            "{:>7} {:>8} {:>6} {:>11} {:>10} {:>9} {:>9} {:>10} {:>10} {:>11.2}x {:>8.1}x\n",
            row.hosts,
            row.rejected,
            row.iterations,
            ms(row.python.median),
            ms(row.python.p90),
            ms(row.wasm.median),
            ms(row.wasm.p90),
            ms(row.native.median),
            ms(row.native.p90),
            ratio(row.python.median, row.wasm.median),
            ratio(row.python.median, row.native.median),
        ));
    }
    text.push_str("mean call time of the filter itself (µs, without building its table):\n");
    for row in rows {
        text.push_str(&format!(
            "{:>7} hosts: python {:.1}, rust {:.1}, native {:.1}\n",
            row.hosts, row.python.call_mean_us, row.wasm.call_mean_us, row.native.call_mean_us
        ));
    }
    text
}
