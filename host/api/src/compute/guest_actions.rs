//! Server actions that reach into the guest: `changePassword` (Nova's
//! `os-admin-password`; the API waits for the guest agent's answer) and
//! `trigger_crash_dump` (2.17; an NMI, not waited for).

use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use serde_json::Value;

use super::server_actions::check_lock;
use super::servers::fetch_visible;
use crate::AppState;
use crate::auth::AuthContext;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use crate::request_id::RequestId;
use novum_compute::conductor::Caller;

/// The microversion that brought `trigger_crash_dump`.
const CRASH_DUMP_SINCE: u16 = 17;

/// What a guest action asks.
enum GuestAction {
    /// `changePassword` to this password.
    ChangePassword(String),
    /// `trigger_crash_dump`.
    TriggerCrashDump,
}

/// `adminPass` of a `changePassword` body, with Nova's schema messages.
fn admin_pass(args: &Value) -> ApiResult<String> {
    let invalid = |detail: String| {
        ApiError::bad_request(format!("Invalid input for field/attribute {detail}"))
    };
    let Value::Object(fields) = args else {
        return Err(invalid(format!(
            "changePassword. Value: {args}. {args} is not of type 'object'"
        )));
    };
    if let Some(extra) = fields.keys().find(|key| key.as_str() != "adminPass") {
        return Err(invalid(format!(
            "changePassword. Value: {args}. Additional properties are not allowed ('{extra}' was unexpected)"
        )));
    }
    match fields.get("adminPass") {
        Some(Value::String(password)) => Ok(password.clone()),
        Some(other) => Err(invalid(format!(
            "adminPass. Value: {other}. {other} is not of type 'string'"
        ))),
        None => Err(invalid(format!(
            "changePassword. Value: {args}. 'adminPass' is a required property"
        ))),
    }
}

fn parse(name: &str, args: &Value, version: Microversion) -> ApiResult<Option<GuestAction>> {
    Ok(Some(match name {
        "changePassword" => GuestAction::ChangePassword(admin_pass(args)?),
        // Below 2.17 Nova's action exists but its version does not: a bare 404.
        "trigger_crash_dump" if !version.at_least(CRASH_DUMP_SINCE) => {
            return Err(ApiError::not_found("The resource could not be found."));
        }
        "trigger_crash_dump" if !args.is_null() => {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute trigger_crash_dump. Value: {args}. {args} is not of type 'null'"
            )));
        }
        "trigger_crash_dump" => GuestAction::TriggerCrashDump,
        _ => return Ok(None),
    }))
}

/// The guest actions: the answer (202) when `name` is `changePassword` or
/// `trigger_crash_dump`, `None` for any other action.
pub async fn guest_action(
    state: &AppState,
    auth: &AuthContext,
    request_id: &RequestId,
    version: Microversion,
    id: &str,
    name: &str,
    args: &Value,
) -> ApiResult<Option<Response>> {
    let Some(action) = parse(name, args, version)? else {
        return Ok(None);
    };
    let instance = fetch_visible(state, auth, id).await?;
    auth.require_writer(match action {
        GuestAction::ChangePassword(_) => "os_compute_api:os-admin-password",
        GuestAction::TriggerCrashDump => "os_compute_api:servers:trigger_crash_dump",
    })?;
    check_lock(auth, &instance)?;
    let caller = Caller {
        user_id: &auth.user_id,
        project_id: &auth.project_id,
        request_id: &request_id.0,
    };
    match action {
        GuestAction::ChangePassword(password) => {
            state
                .conductor
                .set_admin_password(id, &password, &caller)
                .await?
        }
        GuestAction::TriggerCrashDump => state.conductor.trigger_crash_dump(id, &caller).await?,
    }
    Ok(Some(StatusCode::ACCEPTED.into_response()))
}
