//! Compute services (`/v2.1/os-services`): list, enable/disable/force down
//! (`PUT /os-services/{id}` from 2.53, the `enable`, `disable`,
//! `disable-log-reason` and `force-down` actions before), delete. Admin only,
//! as Nova's default policy. The scheduler's ComputeFilter reads the same
//! `disabled` and `forced_down` columns (see `conductor::snapshot`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::common::api_time_micros;
use crate::AppState;
use crate::auth::AuthContext;
use crate::body::JsonBody;
use crate::extract::{Path, Query};
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use novum_compute::conductor::snapshot;
use novum_compute::store::services::{self, COMPUTE_BINARY, StatusFlags};
use novum_compute::store::services::{HostStatus, ServiceRow};
use novum_db::{Db, DbError};
use novum_notify::Publisher;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The id the API shows for `service` at `version` (uuid from 2.53).
pub fn api_id(service: &ServiceRow, version: Microversion) -> Value {
    if version.at_least(53) {
        json!(service.uuid)
    } else {
        json!(service.id)
    }
}

/// The `host_status` of each of `hosts` that has a compute service, from
/// one read of the services table.
pub async fn host_statuses(
    state: &AppState,
    hosts: &[String],
) -> Result<HashMap<String, HostStatus>, DbError> {
    let down_time = state.config.compute.service_down_time;
    Ok(services::compute_of_hosts(&state.db, hosts)
        .await?
        .iter()
        .map(|service| (service.host.clone(), service.host_status(down_time)))
        .collect())
}

/// The availability zone of each host (aggregate metadata, else the default).
pub async fn zones_by_host(state: &AppState) -> Result<HashMap<String, String>, DbError> {
    let aggregates = snapshot::aggregates(&state.db).await?;
    Ok(snapshot::host_zones(&aggregates))
}

/// The zone of a service: its host's zone for `nova-compute`, `internal` otherwise.
pub fn service_zone(
    state: &AppState,
    zones: &HashMap<String, String>,
    service: &ServiceRow,
) -> String {
    if service.binary_name == COMPUTE_BINARY {
        zones
            .get(&service.host)
            .cloned()
            .unwrap_or_else(|| state.config.compute.default_availability_zone.clone())
    } else {
        "internal".to_string()
    }
}

fn view(
    state: &AppState,
    version: Microversion,
    zones: &HashMap<String, String>,
    service: &ServiceRow,
) -> Value {
    let mut body = json!({
        "id": api_id(service, version),
        "binary": service.binary_name,
        "host": service.host,
        "zone": service_zone(state, zones, service),
        "status": service.status(),
        "state": service.state(state.config.compute.service_down_time),
        "updated_at": service.updated_at.as_deref().map(api_time_micros),
        "disabled_reason": service.disabled_reason,
    });
    if version.at_least(11) {
        body["forced_down"] = json!(service.forced_down != 0);
    }
    body
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    host: Option<String>,
    binary: Option<String>,
}

#[utoipa::path(get, path = "/v2.1/os-services", params(ListQuery), responses((status = OK, description = "Success", body = ServiceList), crate::fault::ApiError))]
async fn index(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-services:list")?;
    let zones = zones_by_host(&state).await?;
    let services: Vec<Value> = services::all(&state.db)
        .await?
        .iter()
        .filter(|service| query.host.as_ref().is_none_or(|host| &service.host == host))
        .filter(|service| {
            query
                .binary
                .as_ref()
                .is_none_or(|binary| &service.binary_name == binary)
        })
        .map(|service| view(&state, version, &zones, service))
        .collect();
    Ok(Json(json!({"services": services})))
}

async fn find_by_uuid(db: &Db, id: &str) -> ApiResult<ServiceRow> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::bad_request(format!("Invalid uuid {id}")));
    }
    services::all(db)
        .await?
        .into_iter()
        .find(|service| service.uuid == id)
        .ok_or_else(|| ApiError::not_found(format!("Service {id} could not be found.")))
}

async fn find_by_host(db: &Db, host: &str, binary: &str) -> ApiResult<ServiceRow> {
    services::all(db)
        .await?
        .into_iter()
        .find(|service| service.host == host && service.binary_name == binary)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Service {binary} on host {host} could not be found."
            ))
        })
}

/// The changes a PUT asks for.
#[derive(Default)]
struct Change {
    disabled: Option<bool>,
    disabled_reason: Option<Option<String>>,
    forced_down: Option<bool>,
}

/// Applies `change` to `service` and notifies it (`service.update`).
async fn apply(state: &AppState, service: &ServiceRow, change: &Change) -> ApiResult<()> {
    let disabled_reason = match (&change.disabled_reason, change.disabled) {
        (Some(reason), _) => reason.clone(),
        // Enabling clears the reason.
        (None, Some(false)) => None,
        (None, _) => service.disabled_reason.clone(),
    };
    let flags = StatusFlags {
        disabled: change.disabled.unwrap_or(service.disabled != 0),
        disabled_reason,
        forced_down: change.forced_down.unwrap_or(service.forced_down != 0),
    };
    services::set_status(
        &state.db,
        &state.config.compute,
        &Publisher::api(&state.config.host),
        service.id,
        &flags,
    )
    .await?;
    Ok(())
}

fn reason_field(value: &Value) -> ApiResult<String> {
    match value {
        Value::String(text) if !text.trim().is_empty() && text.len() <= 255 => Ok(text.clone()),
        other => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute disabled_reason. Value: {other}."
        ))),
    }
}

fn bool_field(name: &str, value: &Value) -> ApiResult<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) => super::common::parse_bool(text),
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::bad_request(format!(
            "Invalid input for field/attribute {name}. Value: {value}. {value} is not of type 'boolean'"
        ))
    })
}

fn reject_unknown(body: &Map<String, Value>, allowed: &[&str]) -> ApiResult<()> {
    match body.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(ApiError::bad_request(format!(
            "Additional properties are not allowed ('{key}' was unexpected)"
        ))),
        None => Ok(()),
    }
}

/// `PUT /os-services/{id}`: from 2.53, `id` is the service uuid and the body
/// sets `status`, `disabled_reason`, `forced_down`; before 2.53, `id` names
/// an action (`enable`, `disable`, `disable-log-reason`, `force-down`) on the
/// service named by `host` and `binary`.
#[utoipa::path(put, path = "/v2.1/os-services/{id}", params(("id" = String, Path, description = "The service id (a UUID from 2.53, an integer before)")), request_body = Object, responses((status = OK, description = "Success", body = ServiceEnvelope), crate::fault::ApiError))]
async fn update(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-services:update")?;
    if version.at_least(53) {
        update_by_uuid(&state, version, &id, &body).await
    } else {
        legacy_action(&state, version, &id, &body).await
    }
}

async fn update_by_uuid(
    state: &AppState,
    version: Microversion,
    id: &str,
    body: &Map<String, Value>,
) -> ApiResult<Json<Value>> {
    reject_unknown(body, &["status", "disabled_reason", "forced_down"])?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "At least one of 'status' or 'forced_down' must be specified in the request body.",
        ));
    }
    let service = find_by_uuid(&state.db, id).await?;
    let mut change = Change::default();
    match body.get("status") {
        None => {}
        Some(Value::String(status)) if status == "enabled" => change.disabled = Some(false),
        Some(Value::String(status)) if status == "disabled" => change.disabled = Some(true),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute status. Value: {other}. {other} is not one of ['enabled', 'disabled']"
            )));
        }
    }
    if let Some(reason) = body.get("disabled_reason") {
        if change.disabled != Some(true) {
            return Err(ApiError::bad_request(
                "Specifying 'disabled_reason' with status 'enabled' is invalid.",
            ));
        }
        change.disabled_reason = Some(Some(reason_field(reason)?));
    }
    if let Some(forced) = body.get("forced_down") {
        change.forced_down = Some(bool_field("forced_down", forced)?);
    }
    if service.binary_name != COMPUTE_BINARY {
        return Err(ApiError::bad_request(format!(
            "Updating a {} service is not supported. Only nova-compute services can be updated.",
            service.binary_name
        )));
    }
    apply(state, &service, &change).await?;
    let service = find_by_uuid(&state.db, id).await?;
    let zones = zones_by_host(state).await?;
    Ok(Json(
        json!({"service": view(state, version, &zones, &service)}),
    ))
}

async fn legacy_action(
    state: &AppState,
    version: Microversion,
    action: &str,
    body: &Map<String, Value>,
) -> ApiResult<Json<Value>> {
    let text = |name: &str| -> ApiResult<String> {
        match body.get(name) {
            Some(Value::String(text)) if !text.is_empty() && text.len() <= 255 => Ok(text.clone()),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute {name}. Value: {other}."
            ))),
            None => Err(ApiError::bad_request(format!(
                "'{name}' is a required property"
            ))),
        }
    };
    let (allowed, change): (&[&str], Change) = match action {
        "enable" => (
            &["host", "binary"],
            Change {
                disabled: Some(false),
                ..Change::default()
            },
        ),
        "disable" => (
            &["host", "binary"],
            Change {
                disabled: Some(true),
                ..Change::default()
            },
        ),
        "disable-log-reason" => (
            &["host", "binary", "disabled_reason"],
            Change {
                disabled: Some(true),
                disabled_reason: Some(Some(reason_field(
                    body.get("disabled_reason").unwrap_or(&Value::Null),
                )?)),
                ..Change::default()
            },
        ),
        "force-down" if version.at_least(11) => (
            &["host", "binary", "forced_down"],
            Change {
                forced_down: Some(bool_field(
                    "forced_down",
                    body.get("forced_down").unwrap_or(&Value::Null),
                )?),
                ..Change::default()
            },
        ),
        other => {
            return Err(ApiError::not_found(format!("Unknown action {other}")));
        }
    };
    reject_unknown(body, allowed)?;
    let host = text("host")?;
    let binary = text("binary")?;
    let service = find_by_host(&state.db, &host, &binary).await?;
    apply(state, &service, &change).await?;
    let mut shown = json!({"host": host, "binary": binary});
    if let Some(disabled) = change.disabled {
        shown["status"] = json!(if disabled { "disabled" } else { "enabled" });
    }
    if let Some(Some(reason)) = &change.disabled_reason {
        shown["disabled_reason"] = json!(reason);
    }
    if let Some(forced) = change.forced_down {
        shown["forced_down"] = json!(forced);
    }
    Ok(Json(json!({"service": shown})))
}

/// `DELETE /os-services/{id}`: removes a compute service and its node; 409
/// while instances live on the host.
#[utoipa::path(delete, path = "/v2.1/os-services/{id}", params(("id" = String, Path, description = "The service id (a UUID from 2.53, an integer before)")), responses((status = NO_CONTENT, description = "Done, no body"), crate::fault::ApiError))]
async fn delete(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.require_admin("os_compute_api:os-services:delete")?;
    let service = if version.at_least(53) {
        find_by_uuid(&state.db, &id).await?
    } else {
        let number: i64 = id
            .parse()
            .map_err(|_| ApiError::bad_request(format!("Invalid service id {id}")))?;
        services::all(&state.db)
            .await?
            .into_iter()
            .find(|service| service.id == number)
            .ok_or_else(|| ApiError::not_found(format!("Service {id} could not be found.")))?
    };
    services::delete(
        &state.db,
        &state.config.compute,
        &Publisher::api(&state.config.host),
        &service,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

crate::envelope!(
    /// `{"services": …}`
    ServiceList, "services", Array
);
crate::envelope!(
    /// `{"service": …}`
    ServiceEnvelope, "service", Object
);

/// The service routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(update, delete))
}
