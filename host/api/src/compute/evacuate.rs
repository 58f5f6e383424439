//! The `evacuate` server action (admin): rebuild a server whose host is
//! down on another host (see `novum_compute::conductor::evacuate`).
//!
//! Nova's body by microversion: `host`, `adminPass` and the required
//! `onSharedStorage` before 2.14 (a password with shared storage is 400);
//! `force` from 2.29 to 2.67 (forcing without a host is 400); from 2.95
//! the server ends STOPPED on its new host. A named host is forced before
//! 2.29 (Nova skips the scheduler then) and goes through the filters
//! otherwise unless `force`. The answer is 200, with `{"adminPass": …}`
//! before 2.14 when `[compute] enable_instance_password` (storage is never
//! shared between novum's hosts) and no body from 2.14. The password is
//! not injected into the rebuilt guest (Nova's libvirt driver does not
//! either unless `inject_password`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::servers::{admin_password, fetch_visible};
use crate::AppState;
use crate::auth::AuthContext;
use crate::bodies::fields::Flag;
use crate::bodies::server_action::check_host_name;
use crate::bodies::{self, Gate, RequestBody, allow_only};
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use crate::request_id::RequestId;
use novum_compute::conductor::Caller;
use novum_compute::conductor::evacuate::EvacuateRequest;
use novum_compute::store::services;

/// The microversion that dropped `onSharedStorage` and the answer's body.
const NO_SHARED_STORAGE_SINCE: u16 = 14;
/// The microversion that brought `force` …
const FORCE_SINCE: u16 = 29;
/// … and the one that took it away.
const FORCE_REMOVED_IN: u16 = 68;
/// The microversion from which an evacuated server ends STOPPED.
const STOPPED_SINCE: u16 = 95;

/// `{"evacuate": {…}}` (Nova's `evacuate` schemas).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvacuateBody {
    /// The action's arguments.
    pub evacuate: Evacuate,
}

/// What an evacuation asks.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Evacuate {
    /// The destination (the scheduler's choice when absent).
    #[serde(default)]
    pub host: Option<String>,
    /// The rebuilt guest's administrator password.
    #[serde(rename = "adminPass", default)]
    pub admin_pass: Option<String>,
    /// Whether the instance's files are on storage the destination shares
    /// (before 2.14, required).
    #[serde(rename = "onSharedStorage", default)]
    #[schema(value_type = Option<bool>)]
    pub on_shared_storage: Option<Flag>,
    /// Skip the scheduler's filters for `host` (2.29–2.67).
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub force: Option<Flag>,
}

impl RequestBody for EvacuateBody {
    fn check_fields(value: &Value, version: Microversion) -> ApiResult<()> {
        allow_only::<Self>(value, &[], version)?;
        let gates = [
            Gate::removed_in("onSharedStorage", NO_SHARED_STORAGE_SINCE),
            Gate {
                field: "force",
                since: FORCE_SINCE,
                removed_in: Some(FORCE_REMOVED_IN),
            },
        ];
        allow_only::<Evacuate>(&value["evacuate"], &gates, version)
    }

    fn validate(&self, version: Microversion) -> ApiResult<()> {
        let evacuate = &self.evacuate;
        if let Some(host) = &evacuate.host {
            check_host_name(host)?;
        }
        if !version.at_least(NO_SHARED_STORAGE_SINCE) {
            let Some(Flag(shared)) = evacuate.on_shared_storage else {
                return Err(ApiError::bad_request(
                    "Invalid input for field/attribute evacuate. 'onSharedStorage' is a required property",
                ));
            };
            if shared && evacuate.admin_pass.is_some() {
                return Err(ApiError::bad_request(
                    "admin password can't be changed on existing disk",
                ));
            }
        }
        if matches!(evacuate.force, Some(Flag(true))) && evacuate.host.is_none() {
            return Err(ApiError::bad_request(
                "Can't force to a non-provided destination",
            ));
        }
        Ok(())
    }
}

/// The `evacuate` action: its answer when `name` is `evacuate`, `None` for
/// any other action.
pub async fn evacuate_action(
    state: &AppState,
    auth: &AuthContext,
    request_id: &RequestId,
    version: Microversion,
    id: &str,
    name: &str,
    args: &Value,
) -> ApiResult<Option<Response>> {
    if name != "evacuate" {
        return Ok(None);
    }
    let body: EvacuateBody = bodies::parse(&json!({ "evacuate": args }), version)?;
    fetch_visible(state, auth, id).await?;
    auth.require_admin("os_compute_api:os-evacuate")?;
    let Evacuate {
        host,
        admin_pass,
        on_shared_storage,
        force,
    } = body.evacuate;
    if let Some(host) = &host {
        let known = services::compute_of_hosts(&state.db, std::slice::from_ref(host)).await?;
        if known.is_empty() {
            return Err(ApiError::not_found(format!(
                "Compute host {host} not found."
            )));
        }
    }
    let request = EvacuateRequest {
        // Before 2.29 Nova sends a named host to the rebuild unscheduled.
        force: if version.at_least(FORCE_SINCE) {
            matches!(force, Some(Flag(true)))
        } else {
            host.is_some()
        },
        host,
        stopped: version.at_least(STOPPED_SINCE),
    };
    let caller = Caller {
        user_id: &auth.user_id,
        project_id: &auth.project_id,
        request_id: &request_id.0,
    };
    state
        .conductor
        .evacuate_server(id, request, &caller)
        .await?;
    if version.at_least(NO_SHARED_STORAGE_SINCE) {
        return Ok(Some(StatusCode::OK.into_response()));
    }
    if !state.config.compute.enable_instance_password {
        return Ok(Some(StatusCode::OK.into_response()));
    }
    // Shared storage keeps the guest's disk, and its password.
    let password = if matches!(on_shared_storage, Some(Flag(true))) {
        None
    } else {
        admin_password(state, admin_pass.as_ref())
    };
    Ok(Some(
        (StatusCode::OK, Json(json!({ "adminPass": password }))).into_response(),
    ))
}
