//! Admin endpoints for debugging notifications:
//! `GET /novum/v1/notifications?event_type=&instance=&since=&limit=` (recent
//! events, newest first) and `GET /novum/v1/notifications/dead-letters`;
//! the notification-hook plugins: `GET /novum/v1/notifications/hooks` (loaded
//! hooks with call metrics), `GET /novum/v1/notifications/hooks/{name}/report`
//! (the hook's own `report()`, e.g. the usage ledger) and
//! `POST /novum/v1/notifications/hooks/reload` (reloads the hook components;
//! their in-memory state starts over).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::AuthContext;
use crate::extract::Path;
use crate::fault::{ApiError, ApiResult};
use novum_db as db;
use novum_notify::outbox::{EventFilter, NotifyError, list_dead_letters, list_events};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Default page size.
pub const DEFAULT_LIMIT: i64 = 100;
/// Largest page size.
pub const MAX_LIMIT: i64 = 1000;

crate::envelope!(
    /// `{"notifications": […]}`
    NotificationList, "notifications", Array
);
crate::envelope!(
    /// `{"dead_letters": […]}`
    DeadLetterList, "dead_letters", Array
);
crate::envelope!(
    /// `{"hooks": […]}`
    HookList, "hooks", Array
);
crate::envelope!(
    /// `{"hook": "<name>", "report": …}`
    HookReport, "hook", String
);

/// The routes (full paths; merge into the app).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(dead_letters))
        .routes(routes!(hooks))
        .routes(routes!(reload_hooks))
        .routes(routes!(hook_report))
}

impl From<NotifyError> for ApiError {
    fn from(error: NotifyError) -> Self {
        ApiError::internal(error)
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    event_type: Option<String>,
    instance: Option<String>,
    since: Option<String>,
    limit: Option<String>,
}

/// `limit=`: [`DEFAULT_LIMIT`] when absent, at most [`MAX_LIMIT`].
pub(crate) fn parse_limit(limit: Option<&str>) -> ApiResult<i64> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<i64>() {
            Ok(limit) if limit >= 0 => Ok(limit.min(MAX_LIMIT)),
            _ => Err(ApiError::bad_request(format!(
                "limit must be a non-negative integer, got '{text}'"
            ))),
        },
    }
}

/// The parsed query string, or 400 naming what is wrong.
pub(crate) fn query<T>(query: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    query
        .map(|Query(query)| query)
        .map_err(|error| ApiError::bad_request(format!("Invalid query string: {error}")))
}

#[utoipa::path(get, path = "/novum/v1/notifications", params(ListQuery), responses((status = OK, description = "Success", body = NotificationList), crate::fault::ApiError))]
async fn list(
    State(state): State<AppState>,
    context: AuthContext,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    context.require_admin("novum:notifications:list")?;
    let params = query(params)?;
    let since = params
        .since
        .as_deref()
        .map(|since| {
            chrono::DateTime::parse_from_rfc3339(since)
                .map(|at| db::timestamp(at.with_timezone(&chrono::Utc)))
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "since must be an RFC 3339 timestamp, got '{since}'"
                    ))
                })
        })
        .transpose()?;
    let filter = EventFilter {
        event_type: params.event_type.filter(|value| !value.is_empty()),
        instance_uuid: params.instance.filter(|value| !value.is_empty()),
        since,
        limit: parse_limit(params.limit.as_deref())?,
    };
    let events = list_events(&state.db, &filter).await?;
    let notifications: Vec<Value> = events
        .into_iter()
        .map(|event| {
            let mut item = json!({
                "seq": event.seq,
                "ordering_key": event.ordering_key,
                "created_at": event.created_at,
                "notification": event.envelope,
            });
            if let Some(legacy) = event.legacy {
                item["legacy_notification"] = json!(legacy);
            }
            item
        })
        .collect();
    Ok(Json(json!({ "notifications": notifications })))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DeadLetterQuery {
    limit: Option<String>,
}

#[utoipa::path(get, path = "/novum/v1/notifications/dead-letters", params(DeadLetterQuery), responses((status = OK, description = "Success", body = DeadLetterList), crate::fault::ApiError))]
async fn dead_letters(
    State(state): State<AppState>,
    context: AuthContext,
    params: Result<Query<DeadLetterQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    context.require_admin("novum:notifications:dead-letters")?;
    let params = query(params)?;
    let letters = list_dead_letters(&state.db, parse_limit(params.limit.as_deref())?).await?;
    Ok(Json(json!({ "dead_letters": letters })))
}

#[utoipa::path(get, path = "/novum/v1/notifications/hooks", responses((status = OK, description = "Success", body = HookList), crate::fault::ApiError))]
async fn hooks(State(state): State<AppState>, context: AuthContext) -> ApiResult<Json<Value>> {
    context.require_admin("novum:notifications:hooks")?;
    Ok(Json(json!({ "hooks": state.hooks.list() })))
}

#[utoipa::path(get, path = "/novum/v1/notifications/hooks/{name}/report", params(("name" = String, Path, description = "The hook plugin name")), responses((status = OK, description = "Success", body = HookReport), crate::fault::ApiError))]
async fn hook_report(
    State(state): State<AppState>,
    context: AuthContext,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    context.require_admin("novum:notifications:hooks")?;
    let set = state.hooks.current();
    let plugin = set
        .notification_hooks()
        .iter()
        .find(|plugin| plugin.name() == name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("Notification hook {name} is not loaded.")))?;
    // A plugin call blocks (up to the plugin's deadline, or while a delivery
    // to the hook runs): off the async workers.
    let report = tokio::task::spawn_blocking(move || plugin.report())
        .await
        .map_err(ApiError::internal)?
        .map_err(|failure| {
            ApiError::unavailable(format!(
                "Notification hook {name} failed to report: {failure}"
            ))
        })?;
    let report: Value = serde_json::from_str(&report).unwrap_or(Value::String(report));
    Ok(Json(json!({ "hook": name, "report": report })))
}

#[utoipa::path(post, path = "/novum/v1/notifications/hooks/reload", responses((status = OK, description = "Success", body = HookList), (status = SERVICE_UNAVAILABLE, description = "The hooks could not be reloaded", body = crate::openapi::NovaFault), crate::fault::ApiError))]
async fn reload_hooks(
    State(state): State<AppState>,
    context: AuthContext,
) -> ApiResult<Json<Value>> {
    context.require_admin("novum:notifications:hooks:reload")?;
    let reloaded = state.clone();
    tokio::task::spawn_blocking(move || {
        reloaded.metrics_scope(|| {
            novum_notify::sink::hook::reload(
                &reloaded.hooks,
                &reloaded.config.notifications,
                &reloaded.config.plugins,
            )
        })
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|error| ApiError::bad_request(error.to_string()))?;
    Ok(Json(json!({ "hooks": state.hooks.list() })))
}
