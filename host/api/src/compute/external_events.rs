//! Server external events (`POST /v2.1/os-server-external-events`, admin):
//! what other services (a Neutron, a Cinder, Ironic, Cyborg) tell compute
//! about a server. Each event is answered on its own — 200 when the
//! server is on a host, 404 when there is no such server, 422 when it has
//! no host, 400 when an event that needs a tag has none — and the whole
//! request 200, or 207 when any event failed, as Nova does. novum's
//! network service is built in and tells the conductor directly, so an
//! accepted event changes nothing; it is logged.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::AuthContext;
use crate::body::JsonBody;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use novum_compute::store::instances;

/// Event names and the microversion that brought each.
const EVENT_NAMES: &[(&str, u16)] = &[
    ("network-changed", 0),
    ("network-vif-plugged", 0),
    ("network-vif-unplugged", 0),
    ("network-vif-deleted", 0),
    ("volume-extended", 51),
    ("power-update", 76),
    ("accelerator-request-bound", 82),
    ("volume-reimaged", 93),
];

/// Events that mean nothing without a tag.
const TAG_REQUIRED: &[&str] = &[
    "volume-extended",
    "power-update",
    "accelerator-request-bound",
];

/// An event's statuses.
const STATUSES: &[&str] = &["failed", "completed", "in-progress"];

fn invalid(field: &str, value: &Value, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input for field/attribute {field}. Value: {value}. {why}"
    ))
}

/// Nova's schema for one event at `version`.
fn check_event(event: &Value, version: Microversion) -> ApiResult<&Map<String, Value>> {
    let Some(fields) = event.as_object() else {
        return Err(invalid("events", event, "is not of type 'object'"));
    };
    if let Some(key) = fields
        .keys()
        .find(|key| !["name", "server_uuid", "status", "tag"].contains(&key.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute events. Additional properties are not allowed ('{key}' was unexpected)"
        )));
    }
    for required in ["name", "server_uuid"] {
        if !fields.contains_key(required) {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute events. '{required}' is a required property"
            )));
        }
    }
    let name = &fields["name"];
    let known = EVENT_NAMES
        .iter()
        .any(|(known, since)| name.as_str() == Some(known) && version.at_least(*since));
    if !known {
        return Err(invalid("name", name, "is not one of the known event names"));
    }
    let server = &fields["server_uuid"];
    if server
        .as_str()
        .and_then(|text| uuid::Uuid::parse_str(text).ok())
        .is_none()
    {
        return Err(invalid("server_uuid", server, "is not a 'uuid'"));
    }
    if let Some(status) = fields.get("status")
        && !status
            .as_str()
            .is_some_and(|status| STATUSES.contains(&status))
    {
        return Err(invalid(
            "status",
            status,
            "is not one of ['failed', 'completed', 'in-progress']",
        ));
    }
    if let Some(tag) = fields.get("tag")
        && tag.as_str().is_none_or(|tag| tag.chars().count() > 255)
    {
        return Err(invalid(
            "tag",
            tag,
            "is not a string of at most 255 characters",
        ));
    }
    Ok(fields)
}

#[utoipa::path(post, path = "/v2.1/os-server-external-events", responses((status = OK, description = "Every event accepted", body = ExternalEvents), (status = MULTI_STATUS, description = "Some events failed", body = ExternalEvents), crate::fault::ApiError))]
async fn create(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    auth.require_admin("os_compute_api:os-server-external-events:create")?;
    let events = match body.get("events") {
        Some(Value::Array(events)) if !events.is_empty() => events,
        Some(other) => return Err(invalid("events", other, "is not a non-empty array")),
        None => {
            return Err(ApiError::bad_request(
                "Invalid input for field/attribute events. 'events' is a required property",
            ));
        }
    };
    if let Some(key) = body
        .as_object()
        .and_then(|fields| fields.keys().find(|key| *key != "events"))
    {
        return Err(ApiError::bad_request(format!(
            "Additional properties are not allowed ('{key}' was unexpected)"
        )));
    }
    let mut answered = Vec::with_capacity(events.len());
    let mut all_accepted = true;
    for event in events {
        let fields = check_event(event, version)?;
        let name = fields["name"].as_str().unwrap_or_default();
        let server = fields["server_uuid"].as_str().unwrap_or_default();
        let instance = instances::live(&state.db, server).await?;
        let code = match instance {
            None => 404,
            Some(_) if TAG_REQUIRED.contains(&name) && !fields.contains_key("tag") => 400,
            Some(instance) if instance.host.is_some() => {
                tracing::info!(event = name, server, host = ?instance.host, "external event");
                200
            }
            Some(_) => 422,
        };
        all_accepted &= code == 200;
        let mut shown = fields.clone();
        shown.insert(
            "status".into(),
            json!(if code == 200 { "completed" } else { "failed" }),
        );
        shown.insert("code".into(), json!(code));
        answered.push(Value::Object(shown));
    }
    let status = if all_accepted {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    Ok((status, Json(json!({ "events": answered }))))
}

crate::envelope!(
    /// `{"events": […]}`
    ExternalEvents, "events", Array
);

/// The external events route.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create))
}
