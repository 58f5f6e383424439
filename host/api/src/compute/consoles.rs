//! Consoles of servers (Nova's `console_output` and `remote_consoles`):
//! the `os-getConsoleOutput` and `os-getSerialConsole` actions and
//! `POST /servers/{id}/remote-consoles` (2.6+). The serial console's URL
//! points at the controller's console proxy ([`crate::consoles`]) with a
//! one-time token.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse as _, Response};
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::servers::fetch_visible;
use crate::AppState;
use crate::auth::AuthContext;
use crate::body::JsonBody;
use crate::extract::Path;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use crate::request_id::RequestId;
use novum_compute::conductor::consoles::SERIAL;
use novum_compute::conductor::model::Instance;

/// Path of the serial console proxy's websocket (under the controller's root).
pub const SERIAL_CONSOLE_PATH: &str = "/serial-console";

/// Console protocols of `remote-consoles` (Nova's schema; `mks` from 2.8).
const PROTOCOLS: &[&str] = &["vnc", "spice", "rdp", "serial"];
/// Console types of `remote-consoles` (Nova's schema; `webmks` from 2.8).
const TYPES: &[&str] = &["novnc", "xvpvnc", "rdp-html5", "spice-html5", "serial"];

/// The console actions of `POST /servers/{id}/action`: the answer when
/// `name` is one of them, `None` for any other action.
pub async fn console_action(
    state: &AppState,
    auth: &AuthContext,
    request_id: &RequestId,
    id: &str,
    name: &str,
    args: &Value,
) -> ApiResult<Option<Response>> {
    match name {
        "os-getConsoleOutput" => {
            let lines = console_length(args)?;
            let instance = fetch_visible(state, auth, id).await?;
            auth.require_writer("os_compute_api:os-console-output")?;
            let output = state
                .conductor
                .console_output(&instance, lines, &request_id.0)
                .await?;
            Ok(Some(Json(json!({ "output": output })).into_response()))
        }
        "os-getSerialConsole" => {
            let console_type = legacy_console_type(name, args)?;
            let instance = fetch_visible(state, auth, id).await?;
            auth.require_writer("os_compute_api:os-remote-consoles")?;
            let url = serial_url(state, &instance, &console_type, request_id).await?;
            Ok(Some(
                Json(json!({"console": {"type": console_type, "url": url}})).into_response(),
            ))
        }
        "os-getVNCConsole" | "os-getSPICEConsole" | "os-getRDPConsole" => {
            let console_type = legacy_console_type(name, args)?;
            fetch_visible(state, auth, id).await?;
            Err(unavailable(&console_type))
        }
        _ => Ok(None),
    }
}

/// `length` of `os-getConsoleOutput` (Nova's schema: an integer or an
/// integer string, at least -1, or null): how many lines, `None` for all
/// (absent, null or -1).
fn console_length(args: &Value) -> ApiResult<Option<u32>> {
    let invalid = |detail: String| {
        ApiError::bad_request(format!("Invalid input for field/attribute {detail}"))
    };
    let Value::Object(args) = args else {
        return Err(invalid(format!(
            "os-getConsoleOutput. Value: {args}. {args} is not of type 'object'"
        )));
    };
    if let Some(unexpected) = args.keys().find(|key| key.as_str() != "length") {
        return Err(invalid(format!(
            "os-getConsoleOutput. Value: {}. Additional properties are not allowed ('{unexpected}' was unexpected)",
            Value::Object(args.clone())
        )));
    }
    let length = match args.get("length") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(number)) => number.as_i64(),
        Some(Value::String(text)) => {
            let digits = text.strip_prefix('-').unwrap_or(text);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(format!(
                    "length. Value: {text}. '{text}' does not match '^-?[0-9]+$'"
                )));
            }
            // Beyond i64: more lines than any log has.
            Some(text.parse::<i64>().unwrap_or(i64::MAX))
        }
        Some(other) => {
            return Err(invalid(format!(
                "length. Value: {other}. {other} is not of type 'integer', 'string', 'null'"
            )));
        }
    };
    match length {
        Some(-1) => Ok(None),
        Some(length) if length >= 0 => Ok(Some(u32::try_from(length).unwrap_or(u32::MAX))),
        Some(length) => Err(invalid(format!(
            "length. Value: {length}. {length} is less than the minimum of -1"
        ))),
        None => Err(invalid(format!(
            "length. Value: {}. It is not of type 'integer'",
            args.get("length").unwrap_or(&Value::Null)
        ))),
    }
}

/// `type` of a legacy `os-get…Console` action (required, from the action's
/// own list).
fn legacy_console_type(action: &str, args: &Value) -> ApiResult<String> {
    let allowed: &[&str] = match action {
        "os-getSerialConsole" => &["serial"],
        "os-getVNCConsole" => &["novnc", "xvpvnc"],
        "os-getSPICEConsole" => &["spice-html5"],
        _ => &["rdp-html5"],
    };
    let invalid = |detail: String| {
        ApiError::bad_request(format!("Invalid input for field/attribute {detail}"))
    };
    let Value::Object(args) = args else {
        return Err(invalid(format!(
            "{action}. Value: {args}. {args} is not of type 'object'"
        )));
    };
    if let Some(unexpected) = args.keys().find(|key| key.as_str() != "type") {
        return Err(invalid(format!(
            "{action}. Value: {}. Additional properties are not allowed ('{unexpected}' was unexpected)",
            Value::Object(args.clone())
        )));
    }
    match args.get("type") {
        Some(Value::String(kind)) if allowed.contains(&kind.as_str()) => Ok(kind.clone()),
        Some(other) => Err(invalid(format!(
            "type. Value: {other}. {other} is not one of {allowed:?}"
        ))),
        None => Err(invalid(format!(
            "{action}. Value: {}. 'type' is a required property",
            Value::Object(args.clone())
        ))),
    }
}

/// Nova's `ConsoleTypeUnavailable` (400).
fn unavailable(console_type: &str) -> ApiError {
    ApiError::bad_request(format!("Unavailable console type {console_type}."))
}

/// A serial console URL for `instance`: the agent says where its console
/// listens, the conductor keeps a one-time token for it.
async fn serial_url(
    state: &AppState,
    instance: &Instance,
    console_type: &str,
    request_id: &RequestId,
) -> ApiResult<String> {
    if console_type != SERIAL {
        // Nova's ConsoleTypeInvalid.
        return Err(ApiError::bad_request(format!(
            "Invalid console type {console_type}"
        )));
    }
    let issued = state
        .conductor
        .serial_console(instance, &request_id.0)
        .await?;
    Ok(format!("{}?token={}", serial_base_url(state), issued.token))
}

/// `[compute] serial_console_base_url`, or the controller's public URL as
/// a websocket URL (`http` → `ws`, `https` → `wss`) + [`SERIAL_CONSOLE_PATH`].
fn serial_base_url(state: &AppState) -> String {
    if let Some(base) = &state.config.compute.serial_console_base_url {
        return base.clone();
    }
    let public = state.config.public_base_url();
    let websocket = match public.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => format!("ws://{public}"),
    };
    format!("{websocket}{SERIAL_CONSOLE_PATH}")
}

/// `{"remote_console": {"protocol": …, "type": …}}` checked against Nova's
/// schema at `version`: (protocol, type).
fn remote_console_request(
    body: &Map<String, Value>,
    version: Microversion,
) -> ApiResult<(String, String)> {
    let invalid = |detail: String| {
        ApiError::bad_request(format!("Invalid input for field/attribute {detail}"))
    };
    if let Some(unexpected) = body.keys().find(|key| key.as_str() != "remote_console") {
        return Err(invalid(format!(
            "Additional properties are not allowed ('{unexpected}' was unexpected)"
        )));
    }
    let Some(console) = body.get("remote_console") else {
        return Err(invalid(
            "'remote_console' is a required property".to_string(),
        ));
    };
    let Value::Object(console) = console else {
        return Err(invalid(format!(
            "remote_console. Value: {console}. {console} is not of type 'object'"
        )));
    };
    if let Some(unexpected) = console
        .keys()
        .find(|key| !matches!(key.as_str(), "protocol" | "type"))
    {
        return Err(invalid(format!(
            "remote_console. Additional properties are not allowed ('{unexpected}' was unexpected)"
        )));
    }
    let field = |name: &str, allowed: &[&str], extra: &str| -> ApiResult<String> {
        match console.get(name) {
            Some(Value::String(value))
                if allowed.contains(&value.as_str()) || (version.at_least(8) && value == extra) =>
            {
                Ok(value.clone())
            }
            Some(other) => Err(invalid(format!(
                "{name}. Value: {other}. {other} is not one of {allowed:?}"
            ))),
            None => Err(invalid(format!(
                "remote_console. '{name}' is a required property"
            ))),
        }
    };
    Ok((
        field("protocol", PROTOCOLS, "mks")?,
        field("type", TYPES, "webmks")?,
    ))
}

#[utoipa::path(post, path = "/v2.1/servers/{id}/remote-consoles", params(("id" = String, Path, description = "The server UUID")), request_body = Object, responses((status = OK, description = "The console's URL", body = RemoteConsole), crate::fault::ApiError))]
async fn create_remote_console(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    if !version.at_least(6) {
        return Err(ApiError::no_such_resource());
    }
    let (protocol, console_type) = remote_console_request(&body, version)?;
    let instance = fetch_visible(&state, &auth, &id).await?;
    auth.require_writer("os_compute_api:os-remote-consoles")?;
    if protocol != SERIAL {
        return Err(unavailable(&console_type));
    }
    let url = serial_url(&state, &instance, &console_type, &request_id).await?;
    Ok(Json(json!({"remote_console": {
        "protocol": protocol,
        "type": console_type,
        "url": url,
    }})))
}

crate::envelope!(
    /// `{"remote_console": {…}}`
    RemoteConsole, "remote_console", Object
);

/// The `remote-consoles` route.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_remote_console))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_length_follows_novas_schema() {
        for (args, lines) in [
            (json!({}), None),
            (json!({"length": null}), None),
            (json!({"length": -1}), None),
            (json!({"length": "-1"}), None),
            (json!({"length": 0}), Some(0)),
            (json!({"length": 5}), Some(5)),
            (json!({"length": "12"}), Some(12)),
        ] {
            assert_eq!(console_length(&args).ok(), Some(lines), "{args}");
        }
        for args in [
            json!({"length": -2}),
            json!({"length": "five"}),
            json!({"length": ""}),
            json!({"length": 1.5}),
            json!({"length": true}),
            json!({"lines": 3}),
            json!(null),
        ] {
            let error = console_length(&args).err();
            assert_eq!(error.map(|e| e.status().as_u16()), Some(400), "{args}");
        }
    }

    #[test]
    fn remote_console_body_follows_novas_schema() {
        let body = |value: Value| match value {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let ok = remote_console_request(
            &body(json!({"remote_console": {"protocol": "serial", "type": "serial"}})),
            Microversion::v2(6),
        );
        assert_eq!(ok.ok(), Some(("serial".to_string(), "serial".to_string())));
        for (value, minor) in [
            (
                json!({"remote_console": {"protocol": "mks", "type": "webmks"}}),
                6,
            ),
            (json!({"remote_console": {"protocol": "serial"}}), 6),
            (
                json!({"remote_console": {"protocol": "serial", "type": "serial", "x": 1}}),
                6,
            ),
            (json!({"remote_console": "serial"}), 6),
            (json!({}), 6),
        ] {
            let error = remote_console_request(&body(value.clone()), Microversion::v2(minor)).err();
            assert_eq!(error.map(|e| e.status().as_u16()), Some(400), "{value}");
        }
        assert!(
            remote_console_request(
                &body(json!({"remote_console": {"protocol": "mks", "type": "webmks"}})),
                Microversion::v2(8)
            )
            .is_ok()
        );
    }
}
