//! novum's plugin admin endpoints (admin only):
//!
//! - `GET /novum/v1/plugins`: every loaded plugin — kind, version, the columns
//!   it reads, where it came from, its multiplier — with its metrics (calls,
//!   hosts rejected, errors by kind, latency).
//! - `POST /novum/v1/plugins/reload`: re-reads the configuration file the
//!   controller started with and swaps the scheduler's plugin set atomically;
//!   requests in flight finish on the old set. A set where any plugin fails to
//!   load leaves the running one in place and answers 409 naming the plugin.
//!   Plugin tables (`[plugins.*]`) and the filter/weigher lists take effect;
//!   other keys need a restart. The shadow scheduler's candidate set
//!   (`[scheduler.shadow] plugins`, the file named at start) is re-read too.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::AuthContext;
use crate::fault::{ApiError, ApiResult};
use novum_config::Config;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

crate::envelope!(
    /// `{"plugins": …}`
    PluginList, "plugins", Array
);

/// The `/novum/v1/plugins` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(reload))
}

#[utoipa::path(get, path = "/novum/v1/plugins", responses((status = OK, description = "Success", body = PluginList), crate::fault::ApiError))]
async fn list(State(state): State<AppState>, auth: AuthContext) -> ApiResult<Json<Value>> {
    auth.require_admin("novum:plugins:list")?;
    Ok(Json(json!({ "plugins": state.conductor.plugins().list() })))
}

#[utoipa::path(post, path = "/novum/v1/plugins/reload", responses((status = OK, description = "Success", body = PluginList), crate::fault::ApiError))]
async fn reload(State(state): State<AppState>, auth: AuthContext) -> ApiResult<Json<Value>> {
    auth.require_admin("novum:plugins:reload")?;
    let Some(path) = state.config.source.clone() else {
        return Err(ApiError::conflict(
            "the controller runs on built-in defaults (no --config file): there is nothing to reload",
        ));
    };
    let config = tokio::task::spawn_blocking(move || Config::load(Some(&path)))
        .await
        .map_err(ApiError::internal)?
        .map_err(|error| ApiError::bad_request(format!("{error:#}")))?;
    let plugins = std::sync::Arc::clone(state.conductor.plugins());
    let selection = config.scheduler.plugin_selection();
    let shadow = state.conductor.decisions().shadow().cloned();
    let scope = state.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let loaded = scope
            .metrics_scope(|| plugins.reload(config.scheduler.backend, &selection, &config.plugins))
            .map_err(|error| ApiError::conflict(format!("plugin set not reloaded: {error}")))?;
        if let Some(shadow) = shadow {
            shadow
                .reload(&config.scheduler, &config.plugins)
                .map_err(|error| ApiError::conflict(format!("shadow set not reloaded: {error}")))?;
        }
        Ok::<_, ApiError>(loaded)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Json(json!({ "plugins": loaded.list() })))
}
