//! Soft-deleted servers (Nova's `os-deferred-delete`): the `restore` and
//! `forceDelete` actions of `POST /servers/{id}/action`. Whether a
//! `DELETE /servers/{id}` is soft is the conductor's
//! (`[compute] reclaim_instance_interval`).

use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};

use super::server_actions::check_lock;
use super::servers::fetch_visible;
use crate::AppState;
use crate::auth::AuthContext;
use crate::fault::ApiResult;
use crate::request_id::RequestId;
use novum_compute::conductor::Caller;

/// The deferred-delete actions: the answer (202) when `name` is `restore`
/// or `forceDelete` (any body, as Nova's schema), `None` for any other
/// action. Both are refused on a locked server (409) but to an admin.
pub async fn deferred_delete_action(
    state: &AppState,
    auth: &AuthContext,
    request_id: &RequestId,
    id: &str,
    name: &str,
) -> ApiResult<Option<Response>> {
    let policy = match name {
        "restore" => "os_compute_api:os-deferred-delete:restore",
        "forceDelete" => "os_compute_api:os-deferred-delete:force",
        _ => return Ok(None),
    };
    let instance = fetch_visible(state, auth, id).await?;
    auth.require_writer(policy)?;
    check_lock(auth, &instance)?;
    let caller = Caller {
        user_id: &auth.user_id,
        project_id: &auth.project_id,
        request_id: &request_id.0,
    };
    if name == "restore" {
        state.conductor.restore_server(id, &caller).await?;
    } else {
        state.conductor.force_delete_server(id, &caller).await?;
    }
    Ok(Some(StatusCode::ACCEPTED.into_response()))
}
