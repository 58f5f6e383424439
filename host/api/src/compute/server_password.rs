//! `os-server-password`: the (encrypted) password the guest posted to the
//! metadata service (`POST /metadata/openstack/<version>/password`, see
//! [`crate::metadata`]), read and cleared by the server's owner or an
//! admin. Both read and write the same stored value.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::servers::fetch_visible;
use crate::AppState;
use crate::auth::AuthContext;
use crate::extract::Path;
use crate::fault::ApiResult;
use novum_compute::store::instances;

#[utoipa::path(get, path = "/v2.1/servers/{id}/os-server-password", params(("id" = String, Path, description = "The server UUID")), responses((status = OK, description = "`{\"password\": …}`, empty when the guest posted none", body = Object), crate::fault::ApiError))]
async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let instance = fetch_visible(&state, &auth, &id).await?;
    let password = instances::metadata_password(&state.db, &instance.uuid).await?;
    Ok(Json(json!({ "password": password })))
}

#[utoipa::path(delete, path = "/v2.1/servers/{id}/os-server-password", params(("id" = String, Path, description = "The server UUID")), responses((status = NO_CONTENT, description = "Cleared: the guest may post a new one"), crate::fault::ApiError))]
async fn clear(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let instance = fetch_visible(&state, &auth, &id).await?;
    auth.require_writer("os_compute_api:os-server-password:clear")?;
    instances::clear_metadata_password(&state.db, &instance.uuid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The server password routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, clear))
}
