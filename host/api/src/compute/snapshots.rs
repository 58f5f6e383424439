//! The snapshot and shelve server actions: `createImage`, `createBackup`,
//! `shelve`, `shelveOffload`, `unshelve` (bodies validated as Nova's
//! schemas at the request's microversion; the work is the conductor's,
//! see `novum_compute::conductor::snapshots`).

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use serde_json::{Value, json};

use super::server_actions::check_lock;
use super::servers::fetch_visible;
use crate::AppState;
use crate::auth::AuthContext;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use crate::request_id::RequestId;
use novum_compute::conductor::Caller;
use novum_compute::conductor::snapshots::{ImageKind, SnapshotRequest, UnshelveRequest};

/// Nova's `parameter_types.name`: 1 to 255 characters, no leading or
/// trailing whitespace.
fn image_name(action: &str, args: &serde_json::Map<String, Value>) -> ApiResult<String> {
    match args.get("name") {
        Some(Value::String(name))
            if !name.is_empty()
                && name.chars().count() <= 255
                && name.trim() == name
                && !name.chars().any(char::is_control) =>
        {
            Ok(name.clone())
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute name. Value: {other}. {other} does not match the name rules (1 to 255 characters, no leading or trailing whitespace)"
        ))),
        None => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {action}. 'name' is a required property"
        ))),
    }
}

/// Nova's `parameter_types.metadata`: keys `[a-zA-Z0-9-_:. ]{1,255}`,
/// string values up to 255 characters.
fn image_metadata(args: &serde_json::Map<String, Value>) -> ApiResult<BTreeMap<String, String>> {
    let Some(metadata) = args.get("metadata") else {
        return Ok(BTreeMap::new());
    };
    let Value::Object(items) = metadata else {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute metadata. Value: {metadata}. {metadata} is not of type 'object'"
        )));
    };
    let key_valid = |key: &str| {
        (1..=255).contains(&key.chars().count())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.' | ' '))
    };
    let mut out = BTreeMap::new();
    for (key, value) in items {
        if !key_valid(key) {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute metadata. Additional properties are not allowed ('{key}' was unexpected)"
            )));
        }
        match value {
            Value::String(text) if text.chars().count() <= 255 => {
                out.insert(key.clone(), text.clone());
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "Invalid input for field/attribute {key}. Value: {other}. {other} is not a string of at most 255 characters"
                )));
            }
        }
    }
    Ok(out)
}

/// The body of an action as an object whose keys are all in `allowed`.
fn object<'a>(
    action: &str,
    args: &'a Value,
    allowed: &[&str],
) -> ApiResult<&'a serde_json::Map<String, Value>> {
    let Value::Object(map) = args else {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {action}. Value: {args}. {args} is not of type 'object'"
        )));
    };
    if let Some(extra) = map.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {action}. Additional properties are not allowed ('{extra}' was unexpected)"
        )));
    }
    Ok(map)
}

/// `createBackup`'s `rotation`: Nova's `non_negative_integer` (an integer,
/// or a string of digits).
fn rotation(args: &serde_json::Map<String, Value>) -> ApiResult<u32> {
    let invalid = |value: &Value| {
        ApiError::bad_request(format!(
            "Invalid input for field/attribute rotation. Value: {value}. {value} is not a non-negative integer"
        ))
    };
    match args.get("rotation") {
        Some(Value::Number(number)) => number
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| invalid(&Value::Number(number.clone()))),
        Some(Value::String(text))
            if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) =>
        {
            text.parse::<u32>()
                .map_err(|_| invalid(&Value::String(text.clone())))
        }
        Some(other) => Err(invalid(other)),
        None => Err(ApiError::bad_request(
            "Invalid input for field/attribute createBackup. 'rotation' is a required property",
        )),
    }
}

fn parse_snapshot(name: &str, args: &Value) -> ApiResult<SnapshotRequest> {
    if name == "createImage" {
        let map = object(name, args, &["name", "metadata"])?;
        return Ok(SnapshotRequest {
            name: image_name(name, map)?,
            metadata: image_metadata(map)?,
            kind: ImageKind::Snapshot,
        });
    }
    let map = object(name, args, &["name", "backup_type", "rotation", "metadata"])?;
    let backup_type = match map.get("backup_type") {
        Some(Value::String(text)) => text.clone(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute backup_type. Value: {other}. {other} is not of type 'string'"
            )));
        }
        None => {
            return Err(ApiError::bad_request(
                "Invalid input for field/attribute createBackup. 'backup_type' is a required property",
            ));
        }
    };
    Ok(SnapshotRequest {
        name: image_name(name, map)?,
        metadata: image_metadata(map)?,
        kind: ImageKind::Backup {
            backup_type,
            rotation: rotation(map)?,
        },
    })
}

/// `unshelve`'s body at `version`: anything before 2.77 (ignored); from
/// 2.77 `null` or `{"availability_zone": "<zone>"}`; from 2.91 `null` or an
/// object with `availability_zone` (a zone, or `null` to unpin) and/or
/// `host`.
fn parse_unshelve(args: &Value, version: Microversion) -> ApiResult<UnshelveRequest> {
    if !version.at_least(77) || args.is_null() {
        return Ok(UnshelveRequest::default());
    }
    let allowed: &[&str] = if version.at_least(91) {
        &["availability_zone", "host"]
    } else {
        &["availability_zone"]
    };
    let map = object("unshelve", args, allowed)?;
    let zone = match map.get("availability_zone") {
        None if version.at_least(91) => None,
        None => {
            return Err(ApiError::bad_request(
                "Invalid input for field/attribute unshelve. 'availability_zone' is a required property",
            ));
        }
        Some(Value::Null) if version.at_least(91) => Some(None),
        Some(Value::String(zone)) if !zone.is_empty() && zone.trim() == zone => {
            Some(Some(zone.clone()))
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute availability_zone. Value: {other}. {other} is not a valid availability zone name"
            )));
        }
    };
    let host = match map.get("host") {
        None => None,
        Some(Value::String(host))
            if !host.is_empty()
                && host.len() <= 255
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) =>
        {
            Some(host.clone())
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute host. Value: {other}. {other} is not a valid hostname"
            )));
        }
    };
    Ok(UnshelveRequest {
        availability_zone: zone,
        host,
    })
}

/// The `Location` of a new image, as Nova's `generate_image_url` gives it:
/// the image service's endpoint, `/images/<id>`.
fn image_location(state: &AppState, image_id: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{}/image/images/{image_id}",
        state.config.public_base_url()
    ))
    .ok()
}

/// Answers `name` when it is one of this module's actions (`None`: not
/// one of them).
pub async fn image_action(
    state: &AppState,
    auth: &AuthContext,
    request_id: &RequestId,
    version: Microversion,
    id: &str,
    name: &str,
    args: &Value,
) -> ApiResult<Option<Response>> {
    let rule = match name {
        "createImage" => "os_compute_api:servers:create_image",
        "createBackup" => "os_compute_api:os-create-backup",
        "shelve" => "os_compute_api:os-shelve:shelve",
        "shelveOffload" => "os_compute_api:os-shelve:shelve_offload",
        "unshelve" => "os_compute_api:os-shelve:unshelve",
        _ => return Ok(None),
    };
    let instance = fetch_visible(state, auth, id).await?;
    if name == "shelveOffload" {
        auth.require_admin(rule)?;
    } else {
        auth.require_writer(rule)?;
    }
    check_lock(auth, &instance)?;
    let caller = Caller {
        user_id: &auth.user_id,
        project_id: &auth.project_id,
        request_id: &request_id.0,
    };
    let conductor = &state.conductor;
    match name {
        "createImage" | "createBackup" => {
            let request = parse_snapshot(name, args)?;
            let keeps_location = match request.kind {
                ImageKind::Snapshot => true,
                // Nova sends no Location for a backup rotated away at once.
                ImageKind::Backup { rotation, .. } => rotation > 0,
            };
            let image_id = conductor.snapshot_server(id, request, &caller).await?;
            if version.at_least(45) {
                return Ok(Some(
                    (
                        StatusCode::ACCEPTED,
                        axum::Json(json!({"image_id": image_id})),
                    )
                        .into_response(),
                ));
            }
            let mut response = StatusCode::ACCEPTED.into_response();
            if keeps_location && let Some(location) = image_location(state, &image_id) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(Some(response))
        }
        "shelve" => {
            conductor.shelve_server(id, &caller).await?;
            Ok(Some(StatusCode::ACCEPTED.into_response()))
        }
        "shelveOffload" => {
            conductor.shelve_offload_server(id, &caller).await?;
            Ok(Some(StatusCode::ACCEPTED.into_response()))
        }
        _ => {
            let request = parse_unshelve(args, version)?;
            if request.host.is_some() {
                auth.require_admin("os_compute_api:os-shelve:unshelve_to_host")?;
            }
            check_destination(state, &request).await?;
            conductor.unshelve_server(id, request, &caller).await?;
            Ok(Some(StatusCode::ACCEPTED.into_response()))
        }
    }
}

/// Nova's checks of an unshelve's destination: the zone must be one of
/// the cloud's (400 "The requested availability zone is not available"),
/// the host a compute node (400), and in that zone when both are named.
async fn check_destination(state: &AppState, request: &UnshelveRequest) -> ApiResult<()> {
    if request.host.is_none() && !matches!(request.availability_zone, Some(Some(_))) {
        return Ok(());
    }
    let zones = super::services::zones_by_host(state).await?;
    let default_zone = &state.config.compute.default_availability_zone;
    let zone_of = |host: &str| -> String {
        zones
            .get(host)
            .cloned()
            .unwrap_or_else(|| default_zone.clone())
    };
    let nodes = novum_compute::store::nodes::all(&state.db).await?;
    if let Some(Some(zone)) = &request.availability_zone
        && !nodes.iter().any(|node| &zone_of(&node.host) == zone)
    {
        return Err(ApiError::bad_request(
            "The requested availability zone is not available",
        ));
    }
    if let Some(host) = &request.host {
        if !nodes.iter().any(|node| &node.host == host) {
            return Err(ApiError::bad_request(format!(
                "Compute host {host} could not be found."
            )));
        }
        if let Some(Some(zone)) = &request.availability_zone
            && &zone_of(host) != zone
        {
            return Err(ApiError::bad_request(format!(
                "Host '{host}' is not in availability zone '{zone}'."
            )));
        }
    }
    Ok(())
}
