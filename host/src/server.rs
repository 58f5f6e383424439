//! `novum serve`: opens the database, builds the services, serves the API
//! until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use novum_api::{self as api, AppState, Services};
use novum_compute::conductor::Conductor;
use novum_config::Config;
use novum_db::Db;
use novum_identity::Identity;
use novum_quota::Quota;
use std::sync::Arc;

/// Builds the services for `config` (opening and migrating the database).
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let db = Db::open(&config.database_url()).await?;
    build_state_with_db(config, db).await
}

/// Builds the services for `config` over an open, migrated `db` (tests give
/// their own SQLite or PostgreSQL database).
pub async fn build_state_with_db(config: Config, db: Db) -> anyhow::Result<AppState> {
    // A file was checked with lines at load; a configuration built in code is
    // checked here, so neither starts a cloud on an out-of-range value.
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let public_base_url = config.public_base_url();
    let deployment = novum_identity::Deployment {
        data_dir: &config.data_dir,
        public_base_url: &public_base_url,
        region: &config.region,
    };
    let identity = Identity::new(db.clone(), &config.identity, &deployment).await?;
    let telemetry = if config.metrics.enabled {
        Some(api::telemetry::Telemetry::start()?)
    } else {
        None
    };
    // Plugins and the conductor register their metric series as they are
    // built: with this controller's recorder in scope.
    let (plugins, quota_policies, hooks) =
        api::telemetry::in_scope(telemetry.as_deref(), || -> anyhow::Result<_> {
            let plugins = config.load_scheduler_plugins()?;
            let quota_policies =
                novum_quota::load_policies(plugins.engine(), &config.quota, &config.plugins)?;
            let hooks = novum_notify::sink::hook::load(
                plugins.engine(),
                &config.notifications,
                &config.plugins,
            )?;
            Ok((plugins, quota_policies, hooks))
        })?;
    let quota = Arc::new(Quota::new(db.clone(), config.quota.clone(), quota_policies));

    let network = novum_network::NetworkService::new(db.clone(), config.network.clone())?;
    let admin_project =
        novum_identity::store::get_project_by_name(&db, &config.identity.admin_project)
            .await?
            .with_context(|| format!("admin project {} missing", config.identity.admin_project))?;
    novum_network::ensure_default_network(&db, &config.network, &admin_project.id).await?;
    let conductor = api::telemetry::in_scope(telemetry.as_deref(), || {
        Conductor::new(
            db.clone(),
            &config.host,
            config.compute.clone(),
            config.scheduler.clone(),
            plugins,
            Arc::clone(&quota),
            network.clone(),
        )
    });
    conductor.set_image_data_dir(config.data_dir.clone());
    // A candidate set beside production, fed by the decision log's writer
    // (so set before the writer starts).
    if let Some(shadow) = &config.scheduler.shadow {
        let shadow = novum_compute::conductor::shadow::Shadow::start(
            shadow,
            Arc::clone(conductor.plugins().engine()),
            config.scheduler.backend,
            &config.scheduler,
            &config.plugins,
        )?;
        conductor.decisions().set_shadow(shadow);
    }
    // Decisions are written by their own task, off the scheduling path.
    conductor.decisions().start();
    if config.compute.default_flavors {
        novum_compute::store::flavors::ensure_defaults(&db).await?;
    }
    let enrollment_token = novum_api::rpc::enrollment_token(&config)?;
    let metadata_secret = novum_api::rpc::metadata_secret(&config)?;
    // Heartbeats are written in batches; offered tasks no wake-up announced
    // are looked for every couple of seconds.
    let agents = novum_api::rpc::Agents::new(db.clone(), config.compute.service_down_time);
    agents.start(conductor.board());
    Ok(AppState::new(Services {
        config,
        db,
        identity,
        conductor,
        enrollment_token,
        embedded_enrollment_token: novum_api::rpc::generate_token(),
        metadata_secret,
        quota,
        network,
        hooks,
        telemetry,
        agents,
    }))
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Turned into a service once: served as a bare `Router`, axum rebuilds
    // the whole route table for every connection (about 85 KiB for ours;
    // 1,000 connections held open by a login flood kept 210 MiB).
    axum::serve(listener, api::app(state).into_make_service())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Binds `[metrics] listen`, the unauthenticated scrape address, if set.
pub async fn bind_metrics(config: &Config) -> anyhow::Result<Option<TcpListener>> {
    let Some(listen) = config.metrics.listen.filter(|_| config.metrics.enabled) else {
        return Ok(None);
    };
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (`metrics.listen`)"))?;
    Ok(Some(listener))
}

/// Serves `GET /metrics` without authentication on `listener` (the
/// `[metrics] listen` address) until `shutdown` resolves.
pub async fn serve_metrics(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(
        listener,
        api::telemetry::scrape_app(state).into_make_service(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}

/// How long the HTTP server may take, at shutdown, to finish the requests in
/// flight once it stopped accepting connections.
pub const HTTP_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long, at shutdown, the decision log may take to write what it holds.
pub const DECISION_LOG_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long, at shutdown, the embedded agents may take to stop beyond their
/// own grace period for running tasks (then they are aborted).
pub const AGENT_STOP_MARGIN: Duration = Duration::from_secs(1);

/// Runs the controller with `config` until a shutdown signal, then stops in
/// an order that loses nothing (see [`shut_down`]).
pub async fn run(config: Config) -> anyhow::Result<()> {
    raise_fd_limit();
    let listen = config.listen;
    let state = build_state(config).await?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    let metrics_listener = bind_metrics(&state.config).await?;
    if let Some(telemetry) = &state.telemetry {
        telemetry.install_global()?;
    }
    let notifications = start_notifications(&state)?;
    tracing::info!(listen = %local, "novum is serving");
    let (stop, stopped) = watch::channel(false);
    let background = Background::start(&state, local, stopped);
    let (stop_http, http_stopped) = watch::channel(false);
    let metrics_http = match metrics_listener {
        Some(metrics_listener) => {
            tracing::info!(listen = %metrics_listener.local_addr()?, "serving /metrics without authentication");
            Some(tokio::spawn(serve_metrics(
                state.clone(),
                metrics_listener,
                self::stopped(http_stopped.clone()),
            )))
        }
        None => None,
    };
    let mut http = tokio::spawn(serve(state.clone(), listener, self::stopped(http_stopped)));
    let failed = tokio::select! {
        () = shutdown_signal() => None,
        served = &mut http => Some(served),
    };
    let began = Instant::now();
    tracing::info!("shutting down");
    let result = shut_down(
        &state,
        Running {
            stop,
            background,
            stop_http,
            http: if failed.is_some() { None } else { Some(http) },
        },
    )
    .await;
    notifications.shutdown().await;
    if let Some(metrics_http) = metrics_http {
        // Stopped with the API (a scrape in flight finishes, or is dropped).
        let abort = metrics_http.abort_handle();
        if tokio::time::timeout(HTTP_DRAIN_TIMEOUT, metrics_http)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
    tracing::info!(
        elapsed_ms = began.elapsed().as_millis() as u64,
        "novum stopped"
    );
    match failed {
        Some(served) => served?,
        None => result,
    }
}

/// Raises the soft limit on open file descriptors to the hard limit (one
/// connection per agent: 10,000 agents need more than the usual 1,024) and
/// logs the limit in effect.
pub fn raise_fd_limit() {
    #[cfg(unix)]
    match api::telemetry::raise_fd_limit() {
        Ok(Some(limit)) => tracing::info!(limit, "open file descriptor limit"),
        Ok(None) => tracing::info!("open file descriptor limit: unlimited"),
        Err(error) => tracing::warn!(
            %error,
            limit = ?api::telemetry::fd_limit().flatten(),
            "cannot raise the open file descriptor limit to its hard limit"
        ),
    }
}

/// What [`shut_down`] stops.
struct Running {
    /// Stops the background work.
    stop: watch::Sender<bool>,
    background: Background,
    /// Stops the HTTP server (graceful: in-flight requests finish).
    stop_http: watch::Sender<bool>,
    /// The HTTP server, unless it ended already.
    http: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Stops the controller without losing work: no task is handed out any
/// more (long polls answer at once), the embedded agents finish and report
/// what they run (the API still serves them), the HTTP server drains, the
/// tasks still leased to embedded agents are handed back (queued again for
/// the next start), and the reaper and recovery stop. Notifications stay in
/// the durable outbox for the next dispatcher.
async fn shut_down(state: &AppState, running: Running) -> anyhow::Result<()> {
    let Running {
        stop,
        background,
        stop_http,
        http,
    } = running;
    state.conductor.board().close();
    let _ = stop.send(true);
    let agent_deadline = crate::embedded::EMBEDDED_SHUTDOWN_GRACE + AGENT_STOP_MARGIN;
    for agent in background.agents.handles {
        let abort = agent.abort_handle();
        if tokio::time::timeout(agent_deadline, agent).await.is_err() {
            tracing::warn!("an embedded agent did not stop in time; aborted");
            abort.abort();
        }
    }
    let _ = stop_http.send(true);
    let mut result = Ok(());
    if let Some(http) = http {
        let abort = http.abort_handle();
        match tokio::time::timeout(HTTP_DRAIN_TIMEOUT, http).await {
            Ok(Ok(served)) => result = served,
            Ok(Err(error)) => result = Err(error.into()),
            Err(_) => {
                tracing::warn!("requests still in flight after the drain timeout; dropped");
                abort.abort();
            }
        }
    }
    // The last decisions the log holds, before the process goes.
    if tokio::time::timeout(
        DECISION_LOG_FLUSH_TIMEOUT,
        state.conductor.decisions().flush(),
    )
    .await
    .is_err()
    {
        tracing::warn!("scheduling decisions still unwritten at shutdown; dropped");
    }
    // The last heartbeats, before the process goes.
    if let Err(error) = state.agents.flush().await {
        tracing::warn!(%error, "cannot record the agents' last heartbeats");
    }
    for host in &background.agents.hosts {
        match novum_compute::conductor::tasks::requeue_leased(&state.db, Some(host)).await {
            Ok(0) => {}
            Ok(handed_back) => {
                tracing::info!(%host, handed_back, "tasks of a stopped embedded agent queued again")
            }
            Err(error) => {
                tracing::error!(%host, %error, "cannot hand back the tasks of an embedded agent")
            }
        }
    }
    background.recovery.abort();
    let _ = background.reaper.await;
    let _ = background.reclaimer.await;
    let _ = background.cluster.await;
    result
}

/// Resolves when `stopped` turns true (or its sender is gone).
pub async fn stopped(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// The controller's background work: the conductor's recovery of what was
/// in flight, the task reaper, the controllers' registry and, in all-in-one
/// mode, the embedded agents.
pub struct Background {
    /// The recovery (ends by itself once every operation is judged).
    pub recovery: tokio::task::JoinHandle<()>,
    /// The task reaper.
    pub reaper: tokio::task::JoinHandle<()>,
    /// The reclaim of soft-deleted instances (ends at once when
    /// `[compute] reclaim_instance_interval` is 0).
    pub reclaimer: tokio::task::JoinHandle<()>,
    /// This controller's row among the controllers sharing the database,
    /// the adoption of what dead ones left, the wake-up of polls for tasks
    /// other controllers queue (see `novum_compute::conductor::cluster`).
    pub cluster: tokio::task::JoinHandle<()>,
    /// The embedded compute agents.
    pub agents: crate::embedded::EmbeddedAgents,
}

impl Background {
    /// Starts the recovery, the reaper and the embedded agents talking to
    /// `listen`; the reaper and the agents stop when `stop` turns true.
    pub fn start(state: &AppState, listen: SocketAddr, stop: watch::Receiver<bool>) -> Self {
        let conductor = state.conductor.clone();
        let recovery = tokio::spawn(async move {
            if let Err(error) = conductor.recover().await {
                tracing::error!(%error, "conductor recovery failed");
            }
        });
        let reaper = tokio::spawn(state.conductor.clone().run_reaper(stopped(stop.clone())));
        let reclaimer = tokio::spawn(state.conductor.clone().run_reclaimer(stopped(stop.clone())));
        let cluster = tokio::spawn(state.conductor.clone().run_cluster(stopped(stop.clone())));
        let agents = crate::embedded::start_agents(state, listen, stop);
        Self {
            recovery,
            reaper,
            reclaimer,
            cluster,
            agents,
        }
    }

    /// Every task of the background work.
    pub fn into_handles(self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles = vec![self.recovery, self.reaper, self.reclaimer, self.cluster];
        handles.extend(self.agents.handles);
        handles
    }
}

/// Starts the conductor's recovery and reaper and, in all-in-one mode, the
/// embedded compute agents talking to `listen`; they stop when `stop` turns true.
pub fn start_background(
    state: &AppState,
    listen: SocketAddr,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    Background::start(state, listen, stop).into_handles()
}

/// Starts the notification dispatcher for `state`'s configuration.
pub fn start_notifications(state: &AppState) -> anyhow::Result<novum_notify::DispatcherHandle> {
    let config = &state.config.notifications;
    let hooks = novum_notify::sink::hook::PluginHook::all(&state.hooks, &config.hooks);
    let dispatcher =
        novum_notify::Dispatcher::new(state.db.clone(), config, &state.config.data_dir, hooks)?;
    Ok(dispatcher.start())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
