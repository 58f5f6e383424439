//! `novum serve`: opens the database, builds the services, serves the API
//! until Ctrl-C or SIGTERM.

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::{self, AppState, Services};
use crate::conductor::Conductor;
use crate::config::Config;
use crate::db::Db;
use crate::identity::Identity;
use crate::quota::Quota;
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
    let identity = Identity::new(db.clone(), &config).await?;
    let plugins = crate::conductor::load_plugins(&config)?;
    let quota_policies = crate::quota::load_policies(plugins.engine(), &config)?;
    let quota = Arc::new(Quota::new(db.clone(), config.quota.clone(), quota_policies));
    let hooks = crate::notify::sink::hook::load(plugins.engine(), &config)?;
    let conductor = Conductor::new(
        db.clone(),
        &config.host,
        config.compute.clone(),
        config.scheduler.clone(),
        plugins,
        Arc::clone(&quota),
    );
    if config.compute.default_flavors {
        crate::compute::flavors::ensure_defaults(&db).await?;
    }
    let enrollment_token = crate::rpc::enrollment_token(&config)?;
    Ok(AppState::new(Services {
        config,
        db,
        identity,
        conductor,
        enrollment_token,
        embedded_enrollment_token: crate::rpc::generate_token(),
        quota,
        hooks,
    }))
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, api::app(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Runs the controller with `config` until a shutdown signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let state = build_state(config).await?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    let notifications = start_notifications(&state)?;
    tracing::info!(listen = %local, "novum is serving");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let background = start_background(&state, local, stopped);
    let result = serve(state, listener, shutdown_signal()).await;
    let _ = stop.send(true);
    for task in background {
        let _ = task.await;
    }
    notifications.shutdown().await;
    result
}

/// Resolves when `stopped` turns true (or its sender is gone).
pub async fn stopped(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Starts the conductor's recovery and reaper and, in all-in-one mode, the
/// embedded compute agents talking to `listen`; they stop when `stop` turns true.
pub fn start_background(
    state: &AppState,
    listen: std::net::SocketAddr,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    let conductor = state.conductor.clone();
    handles.push(tokio::spawn(async move {
        if let Err(error) = conductor.recover().await {
            tracing::error!(%error, "conductor recovery failed");
        }
    }));
    handles.push(tokio::spawn(
        state.conductor.clone().run_reaper(stopped(stop.clone())),
    ));
    handles.extend(crate::conductor::embedded::start_agents(
        state, listen, stop,
    ));
    handles
}

/// Starts the notification dispatcher for `state`'s configuration.
pub fn start_notifications(state: &AppState) -> anyhow::Result<crate::notify::DispatcherHandle> {
    let config = &state.config.notifications;
    let hooks = crate::notify::sink::hook::PluginHook::all(&state.hooks, &config.hooks);
    let dispatcher =
        crate::notify::Dispatcher::new(state.db.clone(), config, &state.config.data_dir, hooks)?;
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
