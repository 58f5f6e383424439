//! `novum bench cloud`: the whole control plane under load, end to end.
//!
//! For each fleet size it starts the real controller (`novum serve`, a child
//! process on a fresh database) and a simulated fleet (`novum-agent
//! --simulate N`, another process: the agents are outside the controller),
//! waits until every host is registered, measures the controller's idle
//! CPU and memory, places the background instances (multi-creates through
//! the compute API and the real scheduler, a few batches in flight), measures
//! the controller idle again with them placed and the reads an operator
//! makes of such a cloud, then sends a burst of single-server creates from
//! `concurrency` clients and waits for each to be ACTIVE. It prints, side by
//! side in one run: decisions per second end to end, the rate the
//! scheduler's pipeline alone reached in the same controller (decisions /
//! the CPU time its threads spent in the pipeline, `/metrics`'
//! `novum_scheduler_pipeline_cpu_seconds`: one core's rate, which waiting
//! for a core under the load does not lower),
//! their ratio, POST→ACTIVE p50/p99, creates accepted per second, RSS and
//! idle CPU, and the failures the issue counts (HTTP 5xx, "database is
//! locked", EMFILE, over-commit); and in a second table the background's
//! placement rate, RSS and idle CPU with the instances placed, and the
//! times of `GET /servers/detail` (a first page and one deep inside),
//! `GET /os-hypervisors/statistics` and `GET /os-hypervisors/detail`.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// The admin password of the benchmark's clouds.
const ADMIN_PASSWORD: &str = "novum-bench-admin";
/// The microversion the benchmark speaks.
const MICROVERSION: &str = "2.37";
/// The page size of the lists the benchmark reads and times (the
/// controller's default `[compute] max_limit`, Nova's `max_limit` too).
const PAGE: usize = 1000;

/// What to run.
#[derive(Debug, Clone)]
pub struct CloudBenchOptions {
    /// Fleet sizes.
    pub hosts: Vec<usize>,
    /// Instances placed before the burst, per size (each size runs once per entry).
    pub background: Vec<usize>,
    /// Servers one background POST asks for (`min_count` = `max_count`):
    /// Nova sets no upper bound on a multi-create but quota, nor does novum.
    pub background_batch: usize,
    /// Background batches the controller is scheduling at once: the next
    /// POST is sent once at most `background_in_flight - 1` batches' worth
    /// of servers are still in BUILD (the controller schedules a
    /// multi-create's servers one after the other, so this is about the
    /// decisions in flight).
    pub background_in_flight: usize,
    /// Times each read of the reads table is made.
    pub read_runs: usize,
    /// Seconds the controller's notification outbox may take to drain
    /// after the background is placed, before the controller is measured
    /// idle with it anyway.
    pub drain_seconds: f64,
    /// The controller's JSON-lines notification sink off (`[notifications.jsonl]
    /// enabled = false`): events are still written to the outbox in the
    /// transactions that emit them, but no sink delivers them (Nova emits
    /// none unless a notification driver is configured).
    pub no_notification_log: bool,
    /// Single-server creates in the burst.
    pub creates: usize,
    /// Clients sending them at once.
    pub concurrency: usize,
    /// Run on a fresh PostgreSQL database (made on the server of
    /// `NOVUM_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`)
    /// instead of a fresh SQLite file.
    pub postgres: bool,
    /// Where `novum` and `novum-agent` are.
    pub bin_dir: PathBuf,
    /// Seconds the idle CPU is sampled over.
    pub idle_seconds: f64,
    /// The controller's `RUST_LOG` (e.g. `warn,sqlx::query=debug` for
    /// every statement with its time).
    pub controller_log: String,
    /// Where each run's controller and fleet logs are copied before its
    /// directory goes (`<hosts>-<instances>-novum.log`, `…-fleet.log`).
    pub keep_logs: Option<PathBuf>,
    /// The controllers' compiled-plugin cache (default: one under the
    /// temporary directory, shared by the runs).
    pub plugin_cache: Option<PathBuf>,
}

/// One measured configuration.
#[derive(Debug, Clone, Default)]
pub struct CloudBenchRow {
    /// Hosts in the fleet.
    pub hosts: usize,
    /// Instances placed before the burst.
    pub background: usize,
    /// Decisions (servers ACTIVE) per second over the burst.
    pub decisions_per_second: f64,
    /// Mean time of the scheduler's pipeline stage, ms.
    pub pipeline_ms: f64,
    /// Mean CPU time of the scheduler's pipeline stage, ms.
    pub pipeline_cpu_ms: f64,
    /// Mean wait for a scheduling slot, ms.
    pub wait_ms: f64,
    /// Mean time bringing the host state up to date, ms.
    pub state_ms: f64,
    /// Mean time claiming (the claim's transaction), ms.
    pub claim_ms: f64,
    /// Mean time of a whole decision (wait, state, pipeline, claim), ms.
    pub decision_ms: f64,
    /// The share of the burst the SQLite writer was busy (the write turn
    /// held, `novum_db_write_turn_held_seconds`), %; 0 on PostgreSQL.
    pub writer_busy_percent: f64,
    /// Write transactions per create during the burst (every writer of the
    /// controller: API, conductor, agents' RPCs, notifications).
    pub writes_per_create: f64,
    /// Servers accepted by `POST /servers` per second.
    pub creates_per_second: f64,
    /// POST→ACTIVE, median, ms.
    pub p50_ms: f64,
    /// POST→ACTIVE, 99th percentile, ms.
    pub p99_ms: f64,
    /// Controller RSS with the fleet registered and idle, MiB.
    pub idle_rss_mib: f64,
    /// Controller RSS after the burst, MiB.
    pub rss_mib: f64,
    /// Background servers placed (ACTIVE) per second, from the first POST
    /// to the last server out of BUILD.
    pub background_per_second: f64,
    /// Seconds the notification outbox took to drain once the background
    /// was placed (the dispatcher delivering its events to the sinks).
    pub drain_seconds: f64,
    /// Events still in the outbox when the wait for the drain ended
    /// (`drain_seconds` reached the option's patience).
    pub outbox_left: usize,
    /// Controller RSS with the background placed and idle (before the
    /// burst), MiB.
    pub loaded_rss_mib: f64,
    /// Controller CPU with the background placed and nothing else, % of one core.
    pub loaded_cpu_percent: f64,
    /// `GET /servers/detail?limit=1000`, the first page.
    pub servers_detail: ReadTiming,
    /// `GET /servers/detail?limit=1000&marker=…`, the page after the
    /// middle of the background.
    /// `None` when the background has fewer than two servers.
    pub servers_detail_deep: Option<ReadTiming>,
    /// `GET /os-hypervisors/statistics`.
    pub hypervisor_statistics: ReadTiming,
    /// `GET /os-hypervisors/detail?limit=1000`, the first page.
    pub hypervisors_detail: ReadTiming,
    /// Controller CPU with the fleet heartbeating and nothing else, % of one core.
    pub idle_cpu_percent: f64,
    /// HTTP 5xx answers the benchmark saw.
    pub http_5xx: usize,
    /// Servers that ended in ERROR (background and burst).
    pub errors: usize,
    /// "database is locked" in the controller's log.
    pub database_locked: usize,
    /// "Too many open files" in the controller's or the fleet's log.
    pub emfile: usize,
    /// Hosts whose usage exceeds their capacity × allocation ratio.
    pub overcommitted_hosts: usize,
}

/// How long one read took over its runs, through the API as the admin
/// (request sent to body received).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReadTiming {
    /// Median, ms.
    pub p50_ms: f64,
    /// Slowest run, ms.
    pub max_ms: f64,
}

impl ReadTiming {
    /// The timing of `runs` (any order).
    fn of(mut runs: Vec<f64>) -> Self {
        runs.sort_by(f64::total_cmp);
        ReadTiming {
            p50_ms: percentile(&runs, 50.0),
            max_ms: runs.last().copied().unwrap_or(0.0),
        }
    }
}

impl CloudBenchRow {
    /// The pipeline-only rate: decisions per second of one core's CPU
    /// time in the pipeline alone.
    pub fn pipeline_rate(&self) -> f64 {
        if self.pipeline_cpu_ms > 0.0 {
            1000.0 / self.pipeline_cpu_ms
        } else {
            0.0
        }
    }

    /// End-to-end decisions/s as a share of the pipeline-only rate.
    pub fn ratio(&self) -> f64 {
        let rate = self.pipeline_rate();
        if rate > 0.0 {
            self.decisions_per_second / rate
        } else {
            0.0
        }
    }
}

/// A child process killed when dropped.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(command: &mut Command, log: PathBuf) -> anyhow::Result<Self> {
        let file = std::fs::File::create(&log)?;
        let child = command
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        Ok(Process { child, log })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_count(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|text| text.matches(needle).count())
            .unwrap_or(0)
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields start after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

/// Resident memory of `pid`, MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| {
                    value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The compute API of one benchmark cloud, as its admin.
struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
    project: String,
    errors_5xx: AtomicUsize,
}

impl Api {
    async fn login(url: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?;
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"id": "default"}, "password": ADMIN_PASSWORD}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}});
        let response = http
            .post(format!("{url}/identity/v3/auth/tokens"))
            .json(&body)
            .send()
            .await?;
        let token = response
            .headers()
            .get("x-subject-token")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
            .context("no X-Subject-Token")?;
        let answer: Value = response.json().await?;
        let project = answer["token"]["project"]["id"]
            .as_str()
            .context("the token names no project")?
            .to_string();
        Ok(Api {
            http,
            url: url.to_string(),
            token,
            project,
            errors_5xx: AtomicUsize::new(0),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("x-auth-token", &self.token)
            .header("openstack-api-version", format!("compute {MICROVERSION}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        if status >= 500 {
            self.errors_5xx.fetch_add(1, Ordering::Relaxed);
        }
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn compute(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        self.call(method, &format!("/compute/v2.1{path}"), body)
            .await
    }

    /// `GET /compute/v2.1{path}`, which must answer 200: its body.
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self.compute(reqwest::Method::GET, path, None).await?;
        if status != 200 {
            bail!("GET {path} answered {status}: {body}");
        }
        Ok(body)
    }

    /// Makes read `path` `runs` times: how long it took (sending the
    /// request to having the whole body; the client's JSON parsing is not
    /// counted). Each answer must be 200 and pass `check`.
    async fn time_read(
        &self,
        path: &str,
        runs: usize,
        check: impl Fn(&Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<ReadTiming> {
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs.max(1) {
            let started = Instant::now();
            let response = self
                .http
                .get(format!("{}/compute/v2.1{path}", self.url))
                .header("x-auth-token", &self.token)
                .header("openstack-api-version", format!("compute {MICROVERSION}"))
                .send()
                .await?;
            let status = response.status().as_u16();
            let text = response.text().await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            if status != 200 {
                bail!("GET {path} answered {status}: {text}");
            }
            check(&serde_json::from_str(&text)?).with_context(|| format!("GET {path}"))?;
        }
        Ok(ReadTiming::of(times))
    }

    /// Up to `at_most` ids of the servers in `status`, paged by [`PAGE`]
    /// (the count is exact below `at_most`; a page more may be read).
    async fn server_ids(&self, status: &str, at_most: usize) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut path = format!("/servers?status={status}&limit={PAGE}");
            if let Some(marker) = &marker {
                path.push_str(&format!("&marker={marker}"));
            }
            let page = ids_of(&self.get(&path).await?["servers"]);
            let full = page.len() == PAGE;
            marker = page.last().cloned();
            ids.extend(page);
            if !full || ids.len() >= at_most {
                return Ok(ids);
            }
        }
    }

    /// The id of the server at `position` (0-based) of the default list
    /// order (newest first), reached through pages of [`PAGE`] with
    /// markers; `None` when there are not that many.
    async fn server_at(&self, position: usize) -> anyhow::Result<Option<String>> {
        let mut marker: Option<String> = None;
        let mut skipped = 0;
        loop {
            let limit = (position + 1 - skipped).min(PAGE);
            let mut path = format!("/servers?limit={limit}");
            if let Some(marker) = &marker {
                path.push_str(&format!("&marker={marker}"));
            }
            let page = ids_of(&self.get(&path).await?["servers"]);
            if page.len() < limit {
                return Ok(None);
            }
            skipped += page.len();
            marker = page.last().cloned();
            if skipped > position {
                return Ok(marker);
            }
        }
    }

    /// A flavor, an image and unlimited quotas for the admin project.
    async fn prepare(&self) -> anyhow::Result<(String, String)> {
        let (status, _) = self
            .compute(
                reqwest::Method::PUT,
                &format!("/os-quota-sets/{}", self.project),
                Some(json!({"quota_set": {"instances": -1, "cores": -1, "ram": -1}})),
            )
            .await?;
        if status != 200 {
            bail!("setting quotas answered {status}");
        }
        let (status, flavor) = self
            .compute(
                reqwest::Method::POST,
                "/flavors",
                Some(json!({"flavor": {"name": "bench", "vcpus": 1, "ram": 512, "disk": 1}})),
            )
            .await?;
        let flavor = flavor["flavor"]["id"]
            .as_str()
            .with_context(|| format!("creating the flavor answered {status}"))?
            .to_string();
        let (status, image) = self
            .call(
                reqwest::Method::POST,
                "/image/v2/images",
                Some(json!({"name": "bench", "visibility": "public",
                    "disk_format": "raw", "container_format": "bare"})),
            )
            .await?;
        let image = image["id"]
            .as_str()
            .with_context(|| format!("creating the image answered {status}"))?
            .to_string();
        let response = self
            .http
            .put(format!("{}/image/v2/images/{image}/file", self.url))
            .header("x-auth-token", &self.token)
            .header("content-type", "application/octet-stream")
            .body(vec![0_u8; 4096])
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("uploading the image answered {}", response.status());
        }
        Ok((flavor, image))
    }

    /// How many hypervisors are up.
    async fn hosts_up(&self) -> anyhow::Result<usize> {
        let (_, body) = self
            .compute(reqwest::Method::GET, "/os-hypervisors/statistics", None)
            .await?;
        Ok(body["hypervisor_statistics"]["count"].as_u64().unwrap_or(0) as usize)
    }

    /// Hosts whose usage exceeds capacity × the allocation ratios
    /// (`cpu_allocation_ratio` 4.0, RAM and disk 1.0 as configured).
    /// Every page is read: the list is paged by `max_limit` (1000) from 2.33.
    async fn overcommitted_hosts(&self) -> anyhow::Result<usize> {
        let mut overcommitted = 0;
        let mut marker: Option<String> = None;
        loop {
            let mut path = format!("/os-hypervisors/detail?limit={PAGE}");
            if let Some(marker) = &marker {
                path.push_str(&format!("&marker={marker}"));
            }
            let body = self.get(&path).await?;
            let hypervisors = body["hypervisors"].as_array().cloned().unwrap_or_default();
            overcommitted += hypervisors
                .iter()
                .filter(|hypervisor| {
                    let number = |key: &str| hypervisor[key].as_f64().unwrap_or(0.0);
                    number("vcpus_used") > number("vcpus") * 4.0
                        || number("memory_mb_used") > number("memory_mb")
                        || number("local_gb_used") > number("local_gb")
                })
                .count();
            // The id is an integer before 2.53, a uuid from it.
            marker = hypervisors.last().map(|last| match &last["id"] {
                Value::String(id) => id.clone(),
                other => other.to_string(),
            });
            if hypervisors.len() < PAGE {
                return Ok(overcommitted);
            }
        }
    }

    /// The status of server `id`.
    async fn status(&self, id: &str) -> anyhow::Result<String> {
        let (_, body) = self
            .compute(reqwest::Method::GET, &format!("/servers/{id}"), None)
            .await?;
        Ok(body["server"]["status"].as_str().unwrap_or("").to_string())
    }

    /// The ids of the servers in BUILD.
    async fn building(&self) -> anyhow::Result<HashSet<String>> {
        Ok(self
            .server_ids("BUILD", usize::MAX)
            .await?
            .into_iter()
            .collect())
    }
}

/// The ids in a list of servers.
fn ids_of(servers: &Value) -> Vec<String> {
    servers
        .as_array()
        .map(|servers| {
            servers
                .iter()
                .filter_map(|server| server["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// How often the watcher lists the building servers.
const WATCH_INTERVAL: Duration = Duration::from_millis(10);

/// Tells the burst's clients when their servers leave BUILD. Clients of a
/// real cloud poll every few seconds (openstacksdk's `wait_for_server`: 2 s);
/// a benchmark that wants the moment each server goes ACTIVE must look far
/// more often, and if every client polled its own server that polling would
/// be most of the controller's load. One list of the building servers per
/// [`WATCH_INTERVAL`] answers for all of them.
#[derive(Default)]
struct Watcher {
    waiting: std::sync::Mutex<Vec<Waiting>>,
}

/// A server a client waits for.
struct Waiting {
    id: String,
    since: Instant,
    done: tokio::sync::oneshot::Sender<(Instant, bool)>,
}

impl Watcher {
    /// Waits until server `id` (just accepted) leaves BUILD: when it was
    /// seen out of it, and whether it is ACTIVE.
    async fn wait(&self, id: String) -> anyhow::Result<(Instant, bool)> {
        let (done, seen) = tokio::sync::oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Waiting {
                id,
                since: Instant::now(),
                done,
            });
        seen.await.context("the watcher stopped")
    }

    /// Lists the building servers until aborted; a server registered before
    /// a list began and missing from it has left BUILD.
    async fn run(self: Arc<Self>, api: Arc<Api>) -> anyhow::Result<()> {
        loop {
            let asked = Instant::now();
            let building = api.building().await?;
            let seen = Instant::now();
            let left: Vec<Waiting> = {
                let mut waiting = self
                    .waiting
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let (left, still): (Vec<Waiting>, Vec<Waiting>) = std::mem::take(&mut *waiting)
                    .into_iter()
                    .partition(|server| server.since < asked && !building.contains(&server.id));
                *waiting = still;
                left
            };
            for server in left {
                let active = api.status(&server.id).await? == "ACTIVE";
                let _ = server.done.send((seen, active));
            }
            tokio::time::sleep(WATCH_INTERVAL.saturating_sub(seen.elapsed())).await;
        }
    }
}

/// The controller's CPU, % of one core, once it is steady: consecutive
/// windows of `window` are measured until two in a row agree within a
/// percentage point or a tenth (the registration wave's first heartbeats
/// and inventory writes are over), at most [`STEADY_WINDOWS`] of them.
async fn steady_cpu_percent(pid: u32, window: Duration) -> f64 {
    let mut previous: Option<f64> = None;
    let mut percent = 0.0;
    for _ in 0..STEADY_WINDOWS {
        let before = cpu_ticks(pid).unwrap_or(0);
        tokio::time::sleep(window).await;
        let after = cpu_ticks(pid).unwrap_or(0);
        let ticks_per_second = 100.0;
        percent =
            (after.saturating_sub(before) as f64 / ticks_per_second) / window.as_secs_f64() * 100.0;
        if let Some(previous) = previous
            && ((percent - previous).abs() <= 1.0 || (percent - previous).abs() <= previous / 10.0)
        {
            break;
        }
        previous = Some(percent);
    }
    percent
}

/// Idle-CPU windows measured at most before the last one is taken.
const STEADY_WINDOWS: usize = 12;

/// The sum of the values of `series` (any labels) holding `labels` in a
/// Prometheus text page.
fn series_sum(page: &str, series: &str, labels: &str) -> f64 {
    page.lines()
        .filter(|line| {
            line.strip_prefix(series)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
                && line.contains(labels)
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// The write transactions between two pages of `/metrics`, by kind
/// (`novum_db_write_turn_held_seconds{kind}`): per create and their mean
/// hold time, the busiest first.
fn writes_by_kind(before: &str, after: &str, creates: usize) -> String {
    const SERIES: &str = "novum_db_write_turn_held_seconds";
    let prefix = format!("{SERIES}_count{{kind=\"");
    let kinds: BTreeSet<&str> = after
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix)?.split('"').next())
        .collect();
    let mut rows: Vec<(f64, String)> = kinds
        .into_iter()
        .filter_map(|kind| {
            let label = format!("kind=\"{kind}\"");
            let (sum_before, count_before) = histogram(before, SERIES, &label);
            let (sum_after, count_after) = histogram(after, SERIES, &label);
            let (held, count) = (sum_after - sum_before, count_after - count_before);
            (count > 0.0).then(|| {
                (
                    held,
                    format!(
                        "{kind} {:.2}/create × {:.2} ms",
                        count / creates.max(1) as f64,
                        held / count * 1000.0
                    ),
                )
            })
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut text = rows
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(", ");
    // Group commit (`novum_db::writer`): the grouped transactions per commit.
    const GROUPS: &str = "novum_db_group_commit_members";
    let (members_before, commits_before) = histogram(before, GROUPS, "");
    let (members_after, commits_after) = histogram(after, GROUPS, "");
    let (members, commits) = (
        members_after - members_before,
        commits_after - commits_before,
    );
    if commits > 0.0 {
        text.push_str(&format!(
            "; grouped transactions {:.2}/create in {:.2} commits/create ({:.1} a commit)",
            members / creates.max(1) as f64,
            commits / creates.max(1) as f64,
            members / commits
        ));
    }
    text
}

/// The sum and count of histogram `series{labels}` in a Prometheus text page.
fn histogram(page: &str, series: &str, labels: &str) -> (f64, f64) {
    (
        series_sum(page, &format!("{series}_sum"), labels),
        series_sum(page, &format!("{series}_count"), labels),
    )
}

/// How often the notification outbox's depth is looked at.
const DRAIN_POLL: Duration = Duration::from_secs(1);

/// Waits (at most `patience`) until the controller's notification outbox
/// is empty (`novum_notification_outbox_depth`, summed over the sinks, on
/// `/metrics`): the events the background emitted are delivered before the
/// controller is measured idle. The seconds waited and the events left.
async fn drain_outbox(
    http: &reqwest::Client,
    metrics_url: &str,
    patience: Duration,
) -> anyhow::Result<(f64, usize)> {
    let started = Instant::now();
    loop {
        let page = http.get(metrics_url).send().await?.text().await?;
        let depth = series_sum(&page, "novum_notification_outbox_depth", "") as usize;
        if depth == 0 || started.elapsed() >= patience {
            return Ok((started.elapsed().as_secs_f64(), depth));
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

/// Waits until `ready` holds, checking every `every`, at most `timeout`.
async fn wait_until<F, Fut>(timeout: Duration, every: Duration, mut ready: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if ready().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("not ready within {timeout:?}");
        }
        tokio::time::sleep(every).await;
    }
}

/// Percentile `p` (0–100) of sorted `values`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// How often the background's progress is looked at.
const BACKGROUND_POLL: Duration = Duration::from_millis(500);
/// How long the background may go without a server leaving BUILD before
/// the run fails (longer than a task's lease: a spawn whose long-poll
/// answer was lost is offered again when its lease ends, after
/// `[compute] task_lease_seconds`, 300 by default).
const BACKGROUND_STALL: Duration = Duration::from_secs(600);
/// How often the background's progress is printed.
const BACKGROUND_REPORT: Duration = Duration::from_secs(30);

/// Places `count` servers (`server`, the body of a create) through the
/// compute API and the real scheduler: multi-creates of
/// `options.background_batch`, the next one sent once at most
/// `options.background_in_flight - 1` batches' worth of servers are still
/// in BUILD (counted with `GET /servers?status=BUILD`), until none is. The
/// seconds it took, from the first POST to the last server out of BUILD.
async fn place_background(
    api: &Api,
    options: &CloudBenchOptions,
    server: &Value,
    count: usize,
) -> anyhow::Result<f64> {
    let batch = options.background_batch.max(1);
    let window = batch * options.background_in_flight.max(1);
    let started = Instant::now();
    let mut posted = 0;
    let mut building = 0;
    let mut placed = 0;
    let mut progressed = Instant::now();
    let mut reported = Instant::now();
    while posted < count || building > 0 {
        while posted < count && building + batch.min(count - posted) <= window {
            let servers = batch.min(count - posted);
            let mut body = json!({"server": server});
            body["server"]["min_count"] = json!(servers);
            body["server"]["max_count"] = json!(servers);
            let (status, answer) = api
                .compute(reqwest::Method::POST, "/servers", Some(body))
                .await?;
            if status != 202 {
                bail!("a background create answered {status}: {answer}");
            }
            posted += servers;
            building += servers;
        }
        tokio::time::sleep(BACKGROUND_POLL).await;
        building = api.server_ids("BUILD", window).await?.len();
        if posted - building > placed {
            placed = posted - building;
            progressed = Instant::now();
        } else if progressed.elapsed() > BACKGROUND_STALL {
            bail!(
                "{building} servers stayed in BUILD for {BACKGROUND_STALL:?} ({placed} of {count} placed)"
            );
        }
        if reported.elapsed() >= BACKGROUND_REPORT {
            reported = Instant::now();
            eprintln!(
                "background: {placed} of {count} placed in {:.0} s ({:.1}/s)",
                started.elapsed().as_secs_f64(),
                placed as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The reads the benchmark times, with the background placed.
struct Reads {
    servers_detail: ReadTiming,
    servers_detail_deep: Option<ReadTiming>,
    hypervisor_statistics: ReadTiming,
    hypervisors_detail: ReadTiming,
}

impl Reads {
    /// Times each read `runs` times on a cloud of `hosts` and `servers`
    /// (the background: nothing else exists yet), checking each answer
    /// holds what it should.
    async fn measure(api: &Api, hosts: usize, servers: usize, runs: usize) -> anyhow::Result<Self> {
        let length = |key: &'static str, expected: usize| {
            move |body: &Value| {
                let found = body[key].as_array().map_or(0, Vec::len);
                if found != expected {
                    bail!("{found} {key}, not {expected}");
                }
                Ok(())
            }
        };
        let servers_detail = api
            .time_read(
                &format!("/servers/detail?limit={PAGE}"),
                runs,
                length("servers", servers.min(PAGE)),
            )
            .await?;
        // The page after the middle server.
        let middle = servers / 2;
        let servers_detail_deep = if servers >= 2 {
            let marker = api
                .server_at(middle)
                .await?
                .with_context(|| format!("no server at position {middle} of the list"))?;
            Some(
                api.time_read(
                    &format!("/servers/detail?limit={PAGE}&marker={marker}"),
                    runs,
                    length("servers", (servers - middle - 1).min(PAGE)),
                )
                .await?,
            )
        } else {
            None
        };
        let hypervisor_statistics = api
            .time_read("/os-hypervisors/statistics", runs, |body: &Value| {
                let count = body["hypervisor_statistics"]["count"].as_u64().unwrap_or(0);
                if count != hosts as u64 {
                    bail!("{count} hypervisors counted, not {hosts}");
                }
                Ok(())
            })
            .await?;
        let hypervisors_detail = api
            .time_read(
                &format!("/os-hypervisors/detail?limit={PAGE}"),
                runs,
                length("hypervisors", hosts.min(PAGE)),
            )
            .await?;
        Ok(Reads {
            servers_detail,
            servers_detail_deep,
            hypervisor_statistics,
            hypervisors_detail,
        })
    }
}

/// Runs the benchmark for one fleet size and background count.
async fn run_one(
    options: &CloudBenchOptions,
    hosts: usize,
    background: usize,
) -> anyhow::Result<CloudBenchRow> {
    let dir = std::env::temp_dir().join(format!(
        "novum-bench-cloud-{}-{hosts}-{background}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let metrics_port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let enrollment = format!("bench-enrollment-{}", uuid_like());
    let database = if options.postgres {
        let url = novum_db::testing::postgres_url()
            .await
            .context("no PostgreSQL server answers")?;
        format!("[database]\nurl = {url:?}\n")
    } else {
        String::new()
    };
    let plugin_cache = options
        .plugin_cache
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("novum-bench-plugin-cache"));
    let config = format!(
        "data_dir = {data:?}\nlisten = \"127.0.0.1:{port}\"\nplugins.cache_dir = {cache:?}\n{database}\n\
         [identity]\nadmin_password = \"{ADMIN_PASSWORD}\"\n\n\
         [agent]\nembedded = false\nenrollment_token = \"{enrollment}\"\n\n\
         [metrics]\nenabled = true\nlisten = \"127.0.0.1:{metrics_port}\"\n\n\
         [notifications.jsonl]\nenabled = {log}\n",
        log = !options.no_notification_log,
        data = dir.display().to_string(),
        cache = plugin_cache.display().to_string(),
    );
    let config_path = dir.join("novum.toml");
    std::fs::write(&config_path, config)?;
    let mut controller = Process::spawn(
        Command::new(options.bin_dir.join("novum"))
            .arg("--config")
            .arg(&config_path)
            .arg("serve")
            .env("RUST_LOG", &options.controller_log),
        dir.join("novum.log"),
    )?;
    let http = reqwest::Client::new();
    wait_until(Duration::from_secs(300), Duration::from_millis(200), || {
        let http = http.clone();
        let url = url.clone();
        let exited = controller.exited();
        async move {
            if let Some(status) = exited {
                bail!("the controller exited with {status}");
            }
            Ok(http
                .get(format!("{url}/identity/v3"))
                .send()
                .await
                .is_ok_and(|response| response.status().is_success()))
        }
    })
    .await
    .context("starting the controller")?;
    let api = Arc::new(Api::login(&url).await?);
    let (flavor, image) = api.prepare().await?;
    let ramp = (hosts / 500).max(2);
    let fleet = Process::spawn(
        Command::new(options.bin_dir.join("novum-agent"))
            .args(["--controller", &url, "--token", &enrollment])
            .args(["--host", "sim-", "--simulate", &hosts.to_string()])
            .args(["--simulate-ramp-seconds", &ramp.to_string()])
            .arg("--state-dir")
            .arg(dir.join("fleet"))
            .env("RUST_LOG", "warn"),
        dir.join("fleet.log"),
    )?;
    wait_until(
        Duration::from_secs(120 + hosts as u64 / 20),
        Duration::from_secs(1),
        || {
            let api = Arc::clone(&api);
            async move { Ok(api.hosts_up().await? >= hosts) }
        },
    )
    .await
    .context("waiting for the fleet to register")?;
    let idle_cpu_percent = steady_cpu_percent(
        controller.pid(),
        Duration::from_secs_f64(options.idle_seconds),
    )
    .await;
    let idle_rss_mib = rss_mib(controller.pid());

    // The background, then the controller idle again with it placed, and
    // the reads.
    let background_seconds = place_background(
        &api,
        options,
        &json!({"name": "background", "flavorRef": flavor,
            "imageRef": image, "networks": "none"}),
        background,
    )
    .await
    .context("placing the background instances")?;
    let background_errors = api.server_ids("ERROR", usize::MAX).await?.len();
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let (drain_seconds, outbox_left) = drain_outbox(
        &http,
        &metrics_url,
        Duration::from_secs_f64(options.drain_seconds),
    )
    .await?;
    let (loaded_cpu_percent, loaded_rss_mib) = if background > 0 {
        (
            steady_cpu_percent(
                controller.pid(),
                Duration::from_secs_f64(options.idle_seconds),
            )
            .await,
            rss_mib(controller.pid()),
        )
    } else {
        (idle_cpu_percent, idle_rss_mib)
    };
    let reads = Reads::measure(&api, hosts, background, options.read_runs)
        .await
        .context("measuring the reads")?;
    let page_before = http.get(&metrics_url).send().await?.text().await?;

    // The burst: each client posts, then waits for the watcher to see its
    // server leave BUILD (one cheap list of the building servers every
    // WATCH_INTERVAL, instead of every client polling its own server).
    let watcher = Arc::new(Watcher::default());
    let watching = tokio::spawn(Arc::clone(&watcher).run(Arc::clone(&api)));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency.max(1) {
        let api = Arc::clone(&api);
        let watcher = Arc::clone(&watcher);
        let next = Arc::clone(&next);
        let (flavor, image) = (flavor.clone(), image.clone());
        let creates = options.creates;
        clients.spawn(async move {
            let mut results = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < creates {
                let posted = Instant::now();
                let (status, body) = api
                    .compute(
                        reqwest::Method::POST,
                        "/servers",
                        Some(json!({"server": {"name": "burst", "flavorRef": flavor,
                            "imageRef": image, "networks": "none"}})),
                    )
                    .await?;
                let accepted = posted.elapsed();
                let Some(id) = body["server"]["id"].as_str().map(str::to_string) else {
                    results.push((accepted, None, false));
                    tracing::warn!(status, %body, "a create was refused");
                    continue;
                };
                let (done_at, active) = watcher.wait(id).await?;
                results.push((accepted, Some(done_at.duration_since(posted)), active));
            }
            anyhow::Ok(results)
        });
    }
    let mut latencies = Vec::new();
    let mut accepted_total = Duration::ZERO;
    let mut errors = 0;
    while let Some(joined) = clients.join_next().await {
        for (accepted, done, active) in joined?? {
            accepted_total += accepted;
            match done {
                Some(done) if active => latencies.push(done.as_secs_f64() * 1000.0),
                _ => errors += 1,
            }
        }
    }
    watching.abort();
    let burst = started.elapsed();
    let page_after = http.get(&metrics_url).send().await?.text().await?;
    let per_decision = |sum: f64, count: f64| {
        if count > 0.0 {
            sum / count * 1000.0
        } else {
            0.0
        }
    };
    let stage = |page: &str, name: &str| {
        histogram(
            page,
            "novum_scheduler_stage_duration_seconds",
            &format!("stage=\"{name}\""),
        )
    };
    let stage_ms = |name: &str| {
        let (sum_before, count_before) = stage(&page_before, name);
        let (sum_after, count_after) = stage(&page_after, name);
        per_decision(sum_after - sum_before, count_after - count_before)
    };
    let pipeline_cpu = |page: &str| histogram(page, "novum_scheduler_pipeline_cpu_seconds", "");
    let ((cpu_before, runs_before), (cpu_after, runs_after)) =
        (pipeline_cpu(&page_before), pipeline_cpu(&page_after));
    let (decision_before, decisions_before) = histogram(
        &page_before,
        "novum_scheduler_decision_duration_seconds",
        "",
    );
    let (decision_after, decisions_after) =
        histogram(&page_after, "novum_scheduler_decision_duration_seconds", "");
    let turn = |page: &str| histogram(page, "novum_db_write_turn_held_seconds", "");
    let ((held_before, writes_before), (held_after, writes_after)) =
        (turn(&page_before), turn(&page_after));
    eprintln!(
        "{hosts} hosts, {background} instances: the burst's write transactions by kind: {}",
        writes_by_kind(&page_before, &page_after, options.creates)
    );
    latencies.sort_by(f64::total_cmp);
    let row = CloudBenchRow {
        hosts,
        background,
        decisions_per_second: latencies.len() as f64 / burst.as_secs_f64(),
        pipeline_ms: stage_ms("pipeline"),
        pipeline_cpu_ms: per_decision(cpu_after - cpu_before, runs_after - runs_before),
        wait_ms: stage_ms("wait"),
        state_ms: stage_ms("state"),
        claim_ms: stage_ms("claim"),
        decision_ms: per_decision(
            decision_after - decision_before,
            decisions_after - decisions_before,
        ),
        writer_busy_percent: (held_after - held_before) / burst.as_secs_f64() * 100.0,
        writes_per_create: (writes_after - writes_before) / options.creates.max(1) as f64,
        // Each client spends `accepted / concurrency` of its time in POSTs.
        creates_per_second: options.creates as f64
            / (accepted_total.as_secs_f64() / options.concurrency.max(1) as f64).max(f64::EPSILON),
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        idle_rss_mib,
        rss_mib: rss_mib(controller.pid()),
        idle_cpu_percent,
        background_per_second: if background_seconds > 0.0 {
            background as f64 / background_seconds
        } else {
            0.0
        },
        drain_seconds,
        outbox_left,
        loaded_rss_mib,
        loaded_cpu_percent,
        servers_detail: reads.servers_detail,
        servers_detail_deep: reads.servers_detail_deep,
        hypervisor_statistics: reads.hypervisor_statistics,
        hypervisors_detail: reads.hypervisors_detail,
        http_5xx: api.errors_5xx.load(Ordering::Relaxed),
        errors: errors + background_errors,
        database_locked: controller.log_count("database is locked"),
        emfile: controller.log_count("Too many open files")
            + fleet.log_count("Too many open files"),
        overcommitted_hosts: api.overcommitted_hosts().await?,
    };
    drop(fleet);
    drop(controller);
    if let Some(keep) = &options.keep_logs {
        std::fs::create_dir_all(keep)?;
        for log in ["novum.log", "fleet.log"] {
            std::fs::copy(
                dir.join(log),
                keep.join(format!("{hosts}-{background}-{log}")),
            )?;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(row)
}

/// A short random-enough suffix (the process id and the clock).
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", std::process::id(), nanos)
}

/// Runs every configuration of `options`, one after the other.
pub async fn run(options: &CloudBenchOptions) -> anyhow::Result<Vec<CloudBenchRow>> {
    for binary in ["novum", "novum-agent"] {
        if !Path::new(&options.bin_dir.join(binary)).exists() {
            bail!(
                "{} not found: build both binaries (cargo build --release -p novum -p novum-agent)",
                options.bin_dir.join(binary).display()
            );
        }
    }
    let mut rows = Vec::new();
    for &hosts in &options.hosts {
        for &background in &options.background {
            let row = run_one(options, hosts, background)
                .await
                .with_context(|| format!("{hosts} hosts, {background} instances"))?;
            eprintln!("{}\n{}", format_row(&row), format_reads_row(&row));
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The table's header.
pub fn header() -> String {
    "| hosts | instances | decisions/s | pipeline-only/s (1 core) | ratio | decision ms (wait / state / pipeline / claim) | writer busy / write tx per create | POST→ACTIVE p50 / p99 ms | creates/s | RSS idle / after MiB | idle CPU | 5xx / ERROR / locked / EMFILE / over-committed |\n\
     |---|---|---|---|---|---|---|---|---|---|---|---|\n"
        .to_string()
}

/// One row of the table.
pub fn format_row(row: &CloudBenchRow) -> String {
    format!(
        "| {} | {} | {:.1} | {:.0} | {:.1} % | {:.1} ({:.1} / {:.1} / {:.1} / {:.1}) | {:.0} % / {:.1} | {:.0} / {:.0} | {:.1} | {:.0} / {:.0} | {:.1} % | {} / {} / {} / {} / {} |",
        row.hosts,
        row.background,
        row.decisions_per_second,
        row.pipeline_rate(),
        row.ratio() * 100.0,
        row.decision_ms,
        row.wait_ms,
        row.state_ms,
        row.pipeline_ms,
        row.claim_ms,
        row.writer_busy_percent,
        row.writes_per_create,
        row.p50_ms,
        row.p99_ms,
        row.creates_per_second,
        row.idle_rss_mib,
        row.rss_mib,
        row.idle_cpu_percent,
        row.http_5xx,
        row.errors,
        row.database_locked,
        row.emfile,
        row.overcommitted_hosts,
    )
}

/// The reads table's header.
pub fn reads_header() -> String {
    format!(
        "| hosts | instances | background placed/s | notifications drained s (left) | RSS with instances, idle MiB | idle CPU with instances | \
         GET /servers/detail?limit={PAGE} p50 / max ms | same, page after the middle (marker) p50 / max ms | \
         GET /os-hypervisors/statistics p50 / max ms | GET /os-hypervisors/detail?limit={PAGE} p50 / max ms |\n\
         |---|---|---|---|---|---|---|---|---|---|\n"
    )
}

/// One row of the reads table.
pub fn format_reads_row(row: &CloudBenchRow) -> String {
    let timing = |timing: &ReadTiming| format!("{:.1} / {:.1}", timing.p50_ms, timing.max_ms);
    format!(
        "| {} | {} | {:.1} | {:.0} ({}) | {:.0} | {:.1} % | {} | {} | {} | {} |",
        row.hosts,
        row.background,
        row.background_per_second,
        row.drain_seconds,
        row.outbox_left,
        row.loaded_rss_mib,
        row.loaded_cpu_percent,
        timing(&row.servers_detail),
        row.servers_detail_deep
            .as_ref()
            .map_or_else(|| "–".to_string(), timing),
        timing(&row.hypervisor_statistics),
        timing(&row.hypervisors_detail),
    )
}

/// Both tables: the burst, then the reads.
pub fn format(rows: &[CloudBenchRow]) -> String {
    let mut out = header();
    for row in rows {
        out.push_str(&format_row(row));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&reads_header());
    for row in rows {
        out.push_str(&format_reads_row(row));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_are_summed_over_their_labels_only() {
        let page = "novum_notification_outbox_depth{sink=\"jsonl\"} 7\n\
                    novum_notification_outbox_depth{sink=\"hook\"} 3\n\
                    novum_notification_outbox_depth_total 100\n";
        assert_eq!(
            series_sum(page, "novum_notification_outbox_depth", ""),
            10.0
        );
        assert_eq!(series_sum(page, "novum_absent", ""), 0.0);
    }

    #[test]
    fn histograms_are_read_from_prometheus_text() {
        let page = "novum_scheduler_stage_duration_seconds_sum{stage=\"pipeline\"} 0.5\n\
                    novum_scheduler_stage_duration_seconds_count{stage=\"pipeline\"} 100\n\
                    novum_scheduler_stage_duration_seconds_sum{stage=\"claim\"} 9\n";
        assert_eq!(
            histogram(
                page,
                "novum_scheduler_stage_duration_seconds",
                "stage=\"pipeline\""
            ),
            (0.5, 100.0)
        );
    }

    #[test]
    fn write_transactions_are_told_by_kind_with_their_groups() {
        let before = "novum_db_write_turn_held_seconds_sum{kind=\"claim\"} 1\n\
                      novum_db_write_turn_held_seconds_count{kind=\"claim\"} 100\n\
                      novum_db_group_commit_members_sum 100\n\
                      novum_db_group_commit_members_count 100\n";
        let after = "novum_db_write_turn_held_seconds_sum{kind=\"claim\"} 1.2\n\
                     novum_db_write_turn_held_seconds_count{kind=\"claim\"} 200\n\
                     novum_db_group_commit_members_sum 300\n\
                     novum_db_group_commit_members_count 150\n";
        assert_eq!(
            writes_by_kind(before, after, 100),
            "claim 1.00/create × 2.00 ms; grouped transactions 2.00/create \
             in 0.50 commits/create (4.0 a commit)"
        );
    }

    #[test]
    fn percentiles_pick_the_ranked_value() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 51.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
