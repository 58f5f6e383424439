//! `/metrics`: the controller's metrics in Prometheus's text format, rendered
//! by `metrics-exporter-prometheus` from what the crates record through the
//! `metrics` facade.
//!
//! One [`Telemetry`] per controller holds the recorder. A component
//! registers its series when it is built, inside [`Telemetry::scope`] (the
//! conductor's scheduling series, each plugin's call series), and updates
//! its handles afterwards; the API records each request in [`track`]; what
//! is a state rather than an event (agents up and down, heartbeat lag,
//! outbox depth) is read at each scrape ([`Telemetry::render`]). The
//! recorder is not global in tests, so each in-process cloud counts only its
//! own; `novum serve` also installs it as the process's global recorder
//! ([`Telemetry::install_global`]), so a plain `metrics::counter!` anywhere
//! reaches it too.
//!
//! Served two ways (`[metrics]`): `GET /metrics` on the API listener, to
//! callers with the `admin` role, and, when `[metrics] listen` is set, on a
//! listener of its own without authentication ([`scrape_app`]) for a
//! Prometheus server on a management network. Labels never hold an id or a
//! raw path: a request is labelled by its route's template
//! (`/compute/v2.1/servers/{id}`; `unmatched` for a path no route
//! knows), its method (`other` for a non-standard one) and its status.
//! Scrapes of the `[metrics] listen` address are not counted as API
//! requests; the API listener's own `/metrics` requests are.
//!
//! | series | type | labels |
//! |---|---|---|
//! | `novum_api_requests_total` | counter | `method`, `route`, `status` |
//! | `novum_api_request_duration_seconds` | histogram | `method`, `route` |
//! | `novum_scheduler_decisions_total` | counter | `purpose`, `outcome` |
//! | `novum_scheduler_stage_duration_seconds` | histogram | `stage` (`wait`, `state`, `pipeline`, `claim`) |
//! | `novum_scheduler_decision_duration_seconds` | histogram | |
//! | `novum_scheduler_claims_total` | counter | `outcome` (`won`, `lost`) |
//! | `novum_plugin_call_duration_seconds` | histogram (`_count`: the calls) | `plugin` |
//! | `novum_plugin_errors_total` | counter | `plugin`, `error` |
//! | `novum_plugin_rejections_total` | counter | `plugin` |
//! | `novum_agents` | gauge | `state` (`up`, `down`) |
//! | `novum_agent_heartbeat_lag_max_seconds`, `…_mean_seconds` | gauge | |
//! | `novum_notification_outbox_depth` | gauge | `sink` |
//! | `novum_metrics_collector_up` | gauge | `collector` (`agents`, `outbox`) |
//! | `novum_process_fd_limit` | gauge (RLIMIT_NOFILE's soft limit; 0: unlimited) | |
//! | `novum_process_open_fds` | gauge | |
//! | `novum_db_write_turn_wait_seconds` | histogram (SQLite: a write transaction's wait for the process's write turn) | |
//! | `novum_db_write_turn_held_seconds` | histogram (SQLite: how long a write transaction held it; `_sum` over time is the writer's busy share) | |
//! | `novum_db_group_commit_members` | histogram (SQLite: the members of each commit of grouped transactions, `novum_db::writer`) | |

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use metrics::{Gauge, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::AuthContext;
use crate::fault::{ApiError, ApiResult};

/// The content type of the text exposition format.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The route label of a request no route matched.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// How often histogram samples are folded into their buckets between
/// scrapes (so memory does not grow with the requests between two scrapes).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Latency buckets (seconds) of the API's requests and the scheduler's
/// stages: 100 µs to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Latency buckets (seconds) of plugin calls: 10 µs to 1 s.
const PLUGIN_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 1.0,
];

/// One controller's metrics: the Prometheus recorder and the gauges read at
/// each scrape.
pub struct Telemetry {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    scraped: ScrapedGauges,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

/// The gauges set from the database at each scrape.
struct ScrapedGauges {
    agents_up: Gauge,
    agents_down: Gauge,
    heartbeat_lag_max: Gauge,
    heartbeat_lag_mean: Gauge,
    agents_collector_up: Gauge,
    outbox_collector_up: Gauge,
    fd_limit: Gauge,
    open_fds: Gauge,
}

impl Telemetry {
    /// A recorder with novum's buckets and descriptions, and a task folding
    /// its histogram samples every few seconds while it lives (call within
    /// a tokio runtime).
    pub fn start() -> anyhow::Result<Arc<Self>> {
        let recorder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)?
            .set_buckets_for_metric(Matcher::Prefix("novum_plugin_".to_string()), PLUGIN_BUCKETS)?
            .build_recorder();
        let handle = recorder.handle();
        let recorder = Arc::new(recorder);
        let scraped = metrics::with_local_recorder(recorder.as_ref(), || {
            describe();
            ScrapedGauges {
                agents_up: metrics::gauge!("novum_agents", "state" => "up"),
                agents_down: metrics::gauge!("novum_agents", "state" => "down"),
                heartbeat_lag_max: metrics::gauge!("novum_agent_heartbeat_lag_max_seconds"),
                heartbeat_lag_mean: metrics::gauge!("novum_agent_heartbeat_lag_mean_seconds"),
                agents_collector_up: metrics::gauge!("novum_metrics_collector_up", "collector" => "agents"),
                outbox_collector_up: metrics::gauge!("novum_metrics_collector_up", "collector" => "outbox"),
                fd_limit: metrics::gauge!("novum_process_fd_limit"),
                open_fds: metrics::gauge!("novum_process_open_fds"),
            }
        });
        let telemetry = Arc::new(Self {
            recorder,
            handle,
            scraped,
        });
        tokio::spawn(upkeep(Arc::downgrade(&telemetry)));
        Ok(telemetry)
    }

    /// Runs `build` with this recorder in scope: the series a component
    /// registers while being built (with the `metrics` macros) are this
    /// controller's.
    pub fn scope<T>(&self, build: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(self.recorder.as_ref(), build)
    }

    /// Makes this recorder the process's global one (`novum serve`: one
    /// controller per process); fails when one is installed already.
    pub fn install_global(&self) -> anyhow::Result<()> {
        metrics::set_global_recorder(SharedRecorder(Arc::clone(&self.recorder)))
            .map_err(|_| anyhow::anyhow!("a global metrics recorder is installed already"))
    }

    /// Records one API request.
    pub fn record_request(
        &self,
        method: &Method,
        route: Option<&str>,
        status: u16,
        elapsed: Duration,
    ) {
        let method = method_label(method);
        let route = route.unwrap_or(UNMATCHED_ROUTE).to_string();
        self.scope(|| {
            metrics::counter!(
                "novum_api_requests_total",
                "method" => method,
                "route" => route.clone(),
                "status" => status.to_string()
            )
            .increment(1);
            metrics::histogram!(
                "novum_api_request_duration_seconds",
                "method" => method,
                "route" => route
            )
            .record(elapsed);
        });
    }

    /// Reads the states (agents, outbox) from the database and renders
    /// every series. A state that cannot be read keeps its last value and
    /// sets its `novum_metrics_collector_up` to 0.
    pub async fn render(&self, state: &AppState) -> String {
        let gauges = &self.scraped;
        match novum_compute::store::services::agent_liveness(
            &state.db,
            state.config.compute.service_down_time,
        )
        .await
        {
            Ok(liveness) => {
                gauges.agents_up.set(liveness.up as f64);
                gauges.agents_down.set(liveness.down as f64);
                gauges.heartbeat_lag_max.set(liveness.max_heartbeat_lag);
                gauges.heartbeat_lag_mean.set(liveness.mean_heartbeat_lag);
                gauges.agents_collector_up.set(1.0);
            }
            Err(error) => {
                tracing::warn!(%error, "metrics: cannot read the agents' liveness");
                gauges.agents_collector_up.set(0.0);
            }
        }
        let sinks = state.config.notifications.sink_names();
        match novum_notify::outbox::depth(&state.db, &sinks).await {
            Ok(depths) => {
                self.scope(|| {
                    for (sink, depth) in depths {
                        metrics::gauge!("novum_notification_outbox_depth", "sink" => sink)
                            .set(depth as f64);
                    }
                });
                gauges.outbox_collector_up.set(1.0);
            }
            Err(error) => {
                tracing::warn!(%error, "metrics: cannot read the notification outbox");
                gauges.outbox_collector_up.set(0.0);
            }
        }
        if let Some(limit) = fd_limit() {
            gauges.fd_limit.set(limit.map_or(0.0, |limit| limit as f64));
        }
        if let Some(open) = open_fds() {
            gauges.open_fds.set(open as f64);
        }
        self.handle.render()
    }
}

/// The soft limit on open file descriptors (RLIMIT_NOFILE): `Some(None)`
/// when unlimited, `None` when it cannot be read.
pub fn fd_limit() -> Option<Option<u64>> {
    #[cfg(unix)]
    {
        Some(rustix::process::getrlimit(rustix::process::Resource::Nofile).current)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The file descriptors this process has open (`/proc/self/fd`, else
/// `/dev/fd`), `None` when neither can be read.
pub fn open_fds() -> Option<u64> {
    ["/proc/self/fd", "/dev/fd"].iter().find_map(|dir| {
        let entries = std::fs::read_dir(dir).ok()?;
        // Less the descriptor the listing itself holds open.
        Some((entries.count() as u64).saturating_sub(1))
    })
}

/// Raises the soft limit on open file descriptors (RLIMIT_NOFILE) to the
/// hard limit, for a controller that keeps a connection per agent; answers
/// the soft limit in effect afterwards (`None`: unlimited). On failure the
/// limit stays as it was (and is answered).
#[cfg(unix)]
pub fn raise_fd_limit() -> std::io::Result<Option<u64>> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return Ok(limit.current);
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised)?;
    Ok(getrlimit(Resource::Nofile).current)
}

/// Runs `build` in `telemetry`'s scope ([`Telemetry::scope`]), or as it is
/// when metrics are off.
pub fn in_scope<T>(telemetry: Option<&Telemetry>, build: impl FnOnce() -> T) -> T {
    match telemetry {
        Some(telemetry) => telemetry.scope(build),
        None => build(),
    }
}

/// The recorder shared between the [`Telemetry`] and the global slot.
struct SharedRecorder(Arc<PrometheusRecorder>);

impl Recorder for SharedRecorder {
    fn describe_counter(
        &self,
        key: metrics::KeyName,
        unit: Option<metrics::Unit>,
        description: metrics::SharedString,
    ) {
        self.0.describe_counter(key, unit, description);
    }

    fn describe_gauge(
        &self,
        key: metrics::KeyName,
        unit: Option<metrics::Unit>,
        description: metrics::SharedString,
    ) {
        self.0.describe_gauge(key, unit, description);
    }

    fn describe_histogram(
        &self,
        key: metrics::KeyName,
        unit: Option<metrics::Unit>,
        description: metrics::SharedString,
    ) {
        self.0.describe_histogram(key, unit, description);
    }

    fn register_counter(
        &self,
        key: &metrics::Key,
        metadata: &metrics::Metadata<'_>,
    ) -> metrics::Counter {
        self.0.register_counter(key, metadata)
    }

    fn register_gauge(&self, key: &metrics::Key, metadata: &metrics::Metadata<'_>) -> Gauge {
        self.0.register_gauge(key, metadata)
    }

    fn register_histogram(
        &self,
        key: &metrics::Key,
        metadata: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        self.0.register_histogram(key, metadata)
    }
}

/// Folds histogram samples into buckets every [`UPKEEP_INTERVAL`] until the
/// telemetry is dropped.
async fn upkeep(telemetry: Weak<Telemetry>) {
    let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(telemetry) = telemetry.upgrade() else {
            return;
        };
        telemetry.handle.run_upkeep();
    }
}

/// The `HELP` line of every series.
fn describe() {
    metrics::describe_gauge!(
        "novum_process_fd_limit",
        "The controller's soft limit on open file descriptors (RLIMIT_NOFILE; 0: unlimited), raised to the hard limit at start"
    );
    metrics::describe_gauge!(
        "novum_process_open_fds",
        "File descriptors the controller has open (connections, database files, logs)"
    );
    metrics::describe_counter!(
        "novum_api_requests_total",
        "API requests answered, by method, route template and status code"
    );
    metrics::describe_histogram!(
        "novum_api_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to answer an API request (until the response head), by method and route template"
    );
    metrics::describe_counter!(
        "novum_scheduler_decisions_total",
        "Scheduling passes, by purpose (build, resize, unshelve) and outcome"
    );
    metrics::describe_histogram!(
        "novum_scheduler_stage_duration_seconds",
        metrics::Unit::Seconds,
        "Time of a scheduling pass in each stage: wait (for a slot), state (the host state brought up to date), pipeline (filters and weighers), claim"
    );
    metrics::describe_histogram!(
        "novum_scheduler_decision_duration_seconds",
        metrics::Unit::Seconds,
        "Time of a whole scheduling pass"
    );
    metrics::describe_counter!(
        "novum_scheduler_claims_total",
        "Claims on chosen hosts, won or lost (to a concurrent decision)"
    );
    metrics::describe_histogram!(
        novum_plugin_host::metrics::CALL_DURATION,
        metrics::Unit::Seconds,
        "Time of a plugin call (filter, weigher, quota policy, notification hook); _count is the calls"
    );
    metrics::describe_counter!(
        novum_plugin_host::metrics::ERRORS,
        "Failed plugin calls, by plugin and kind of failure"
    );
    metrics::describe_counter!(
        novum_plugin_host::metrics::REJECTIONS,
        "Hosts a filter plugin rejected, or requests a quota policy denied"
    );
    metrics::describe_gauge!(
        "novum_agents",
        "Compute agents by state: up (a heartbeat within service_down_time, not forced down) or down"
    );
    metrics::describe_gauge!(
        "novum_agent_heartbeat_lag_max_seconds",
        metrics::Unit::Seconds,
        "The longest time since an up agent's last heartbeat"
    );
    metrics::describe_gauge!(
        "novum_agent_heartbeat_lag_mean_seconds",
        metrics::Unit::Seconds,
        "The mean time since the up agents' last heartbeats"
    );
    metrics::describe_gauge!(
        "novum_notification_outbox_depth",
        "Notifications emitted that a sink has yet to deliver (or settle)"
    );
    metrics::describe_gauge!(
        "novum_metrics_collector_up",
        "1 when the last scrape could read this state from the database, else 0"
    );
}

/// The `method` label: the standard methods by name, any other as `other`
/// (a client cannot grow the series with made-up methods).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The rendered text, with its content type.
async fn exposition(state: &AppState, telemetry: &Telemetry) -> Response {
    let body = telemetry.render(state).await;
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT));
    response
}

/// The `/metrics` route of the API listener.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// `GET /metrics` (admin): every series in the text exposition format; 404
/// when `[metrics] enabled = false`.
#[utoipa::path(get, path = "/metrics", responses(
    (status = OK, description = "The metrics, Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String),
    crate::fault::ApiError
))]
async fn metrics(State(state): State<AppState>, auth: AuthContext) -> ApiResult<Response> {
    auth.require_admin("novum:metrics")?;
    let telemetry = state
        .telemetry
        .clone()
        .ok_or_else(ApiError::no_such_resource)?;
    Ok(exposition(&state, &telemetry).await)
}

/// `GET /metrics` on the `[metrics] listen` address: the same text, without
/// authentication (the address is the access control).
#[utoipa::path(get, path = "/metrics", responses(
    (status = OK, description = "The metrics, Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String),
    crate::fault::ApiError
))]
async fn unauthenticated_metrics(State(state): State<AppState>) -> ApiResult<Response> {
    let telemetry = state
        .telemetry
        .clone()
        .ok_or_else(ApiError::no_such_resource)?;
    Ok(exposition(&state, &telemetry).await)
}

/// The router of the `[metrics] listen` address: `GET /metrics` and
/// nothing else (every other path is a 404).
pub fn scrape_app(state: AppState) -> Router {
    let (router, _document) = OpenApiRouter::new()
        .routes(routes!(unauthenticated_metrics))
        .split_for_parts();
    router
        .fallback(|| async { ApiError::no_such_resource() })
        .layer(crate::request_layer::RequestLayer::default())
        .with_state(state)
}
