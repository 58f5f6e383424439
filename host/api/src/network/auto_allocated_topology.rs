//! `/v2.0/auto-allocated-topology/{project_id}`: get-me-a-network. The
//! topology of every project is the cloud's shared default network.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{NetAuth, NetResult, Pairs, Path, Query, id, reply, show_fields};
use crate::AppState;

crate::envelope!(
    /// `{"auto_allocated_topology": …}`
    AutoAllocatedTopologyBody, "auto_allocated_topology", Object
);

/// The auto-allocated topology routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, delete))
}

/// `GET /v2.0/auto-allocated-topology/{project_id}`: `{"id": <network>,
/// "tenant_id", "project_id"}`; with `fields=dry-run` only the check, answered
/// as Neutron does (`{"id": "dry-run=pass", ...}`), which `openstack network
/// auto allocated topology create --check-resources` reads. 409 `AutoAllocationFailure` without a
/// default network.
#[utoipa::path(get, path = "/v2.0/auto-allocated-topology/{project_id}", params(("project_id" = String, Path, description = "The project id")), responses((status = OK, description = "Success", body = AutoAllocatedTopologyBody), crate::openapi::NeutronFaults))]
async fn show(
    State(state): State<AppState>,
    net: NetAuth,
    Path(project_id): Path<String>,
    Query(params): Pairs,
) -> NetResult<Response> {
    let project_id = id(project_id);
    let topology = state
        .network
        .auto_allocated_topology(&net.caller, &project_id)
        .await?;
    if show_fields(&params).iter().any(|field| field == "dry-run") {
        return Ok(reply(
            StatusCode::OK,
            "auto_allocated_topology",
            json!({
                "id": "dry-run=pass",
                "tenant_id": topology.project_id,
                "project_id": topology.project_id,
            }),
        ));
    }
    Ok(reply(
        StatusCode::OK,
        "auto_allocated_topology",
        json!({
            "id": topology.id,
            "tenant_id": topology.project_id,
            "project_id": topology.project_id,
        }),
    ))
}

/// `DELETE /v2.0/auto-allocated-topology/{project_id}`: nothing was
/// allocated for the project alone (its topology is the shared default
/// network, which stays), so this only checks who asks.
#[utoipa::path(delete, path = "/v2.0/auto-allocated-topology/{project_id}", params(("project_id" = String, Path, description = "The project id")), responses((status = NO_CONTENT, description = "Done"), crate::openapi::NeutronFaults))]
async fn delete(
    State(state): State<AppState>,
    net: NetAuth,
    Path(project_id): Path<String>,
) -> NetResult<StatusCode> {
    net.require_writer("delete_auto_allocated_topology")?;
    state
        .network
        .auto_allocated_topology(&net.caller, &id(project_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
