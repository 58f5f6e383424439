//! The instance usage audit log (`/v2.1/os-instance_usage_audit_log`,
//! admin only): how the usage audit of the last completed period (or of
//! the period completed before a given time) went on each compute host,
//! from the task log the conductor's audit writes (see
//! `novum_compute::conductor::usage_audit`).

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::AuthContext;
use crate::extract::Path;
use crate::fault::{ApiError, ApiResult};
use novum_compute::conductor::usage_audit::{self, AUDIT_TASK, AuditPeriod};
use novum_compute::store::services::{self, COMPUTE_BINARY};

/// A period bound as Nova prints it (`str(datetime)`).
fn shown(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The audit log of the period completed last before `before`.
async fn audit_log(state: &AppState, before: DateTime<Utc>) -> ApiResult<Value> {
    let period = state
        .config
        .compute
        .audit_period()
        .unwrap_or(AuditPeriod::MONTH);
    let (begin, end) = period
        .last_completed(before)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid timestamp for date {before}")))?;
    let logs = usage_audit::task_logs(&state.db, AUDIT_TASK, begin, end).await?;
    let hosts: BTreeSet<String> = services::all(&state.db)
        .await?
        .into_iter()
        .filter(|service| service.binary_name == COMPUTE_BINARY)
        .map(|service| service.host)
        .collect();
    let seen: BTreeSet<&str> = logs.iter().map(|log| log.host.as_str()).collect();
    let done = logs.iter().filter(|log| log.state == "DONE").count();
    let running = logs.iter().filter(|log| log.state == "RUNNING").count();
    let total_errors: i64 = logs.iter().map(|log| log.errors).sum();
    let total_instances: i64 = logs.iter().map(|log| log.task_items).sum();
    let not_run: Vec<&str> = hosts
        .iter()
        .map(String::as_str)
        .filter(|host| !seen.contains(host))
        .collect();
    let log: BTreeMap<&str, Value> = logs
        .iter()
        .map(|log| {
            (
                log.host.as_str(),
                json!({
                    "state": log.state,
                    "instances": log.task_items,
                    "errors": log.errors,
                    "message": log.message,
                }),
            )
        })
        .collect();
    let hosts_done = if done == hosts.len() {
        "ALL".to_string()
    } else {
        format!("{done} of {}", hosts.len())
    };
    Ok(json!({
        "period_beginning": shown(begin),
        "period_ending": shown(end),
        "num_hosts": hosts.len(),
        "num_hosts_done": done,
        "num_hosts_running": running,
        "num_hosts_not_run": not_run.len(),
        "hosts_not_run": not_run,
        "total_instances": total_instances,
        "total_errors": total_errors,
        "overall_status": format!("{hosts_done} hosts done. {total_errors} errors."),
        "log": log,
    }))
}

/// The last completed period's audit.
#[utoipa::path(get, path = "/v2.1/os-instance_usage_audit_log", responses((status = OK, description = "Success", body = AuditLogs), crate::fault::ApiError))]
async fn index(State(state): State<AppState>, auth: AuthContext) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-instance-usage-audit-log:list")?;
    Ok(Json(
        json!({"instance_usage_audit_logs": audit_log(&state, Utc::now()).await?}),
    ))
}

/// The audit of the period completed last before `before` (`YYYY-MM-DD
/// HH:MM:SS[.ffffff]`).
#[utoipa::path(get, path = "/v2.1/os-instance_usage_audit_log/{before}", params(("before" = String, Path, description = "A time: the period completed last before it")), responses((status = OK, description = "Success", body = AuditLog), crate::fault::ApiError))]
async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(before): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-instance-usage-audit-log:show")?;
    let format = if before.contains('.') {
        "%Y-%m-%d %H:%M:%S%.f"
    } else {
        "%Y-%m-%d %H:%M:%S"
    };
    let before = NaiveDateTime::parse_from_str(&before, format)
        .map_err(|_| ApiError::bad_request(format!("Invalid timestamp for date {before}")))?
        .and_utc();
    Ok(Json(
        json!({"instance_usage_audit_log": audit_log(&state, before).await?}),
    ))
}

crate::envelope!(
    /// `{"instance_usage_audit_logs": {…}}`
    AuditLogs, "instance_usage_audit_logs", Object
);

crate::envelope!(
    /// `{"instance_usage_audit_log": {…}}`
    AuditLog, "instance_usage_audit_log", Object
);

/// The audit log routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(show))
}
