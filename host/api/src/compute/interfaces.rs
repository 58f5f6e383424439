//! `/servers/{id}/os-interface`: a server's ports as interface
//! attachments — list, show, attach (a new port on a network, optionally at
//! a fixed address, or the user's port) and detach. The conductor does the
//! work (novum-compute's `conductor::interfaces`); this module parses,
//! authorizes and shapes Nova's `interfaceAttachment`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::network_fault;
use super::server_actions::check_lock;
use super::servers::{fetch_visible, network_caller};
use crate::AppState;
use crate::auth::AuthContext;
use crate::body::JsonBody;
use crate::extract::Path;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use crate::request_id::RequestId;
use novum_compute::conductor::Caller;
use novum_network::{InstancePort, InstancePortRequest};

/// Nova's `interfaceAttachment` of `port` at `version` (`tag` from 2.70).
fn attachment_view(port: &InstancePort, version: Microversion) -> Value {
    let mut view = json!({
        "port_state": port.port.status,
        "fixed_ips": port
            .port
            .fixed_ips
            .iter()
            .map(|ip| json!({"subnet_id": ip.subnet_id, "ip_address": ip.ip_address}))
            .collect::<Vec<_>>(),
        "port_id": port.port.id,
        "net_id": port.port.network_id,
        "mac_addr": port.port.mac_address,
    });
    if version.at_least(70) {
        view["tag"] = Value::Null;
    }
    view
}

/// The ports of a server the caller may see.
async fn visible_ports(
    state: &AppState,
    auth: &AuthContext,
    id: &str,
) -> ApiResult<Vec<InstancePort>> {
    fetch_visible(state, auth, id).await?;
    state
        .network
        .instance_ports(id)
        .await
        .map_err(network_fault)
}

#[utoipa::path(get, path = "/v2.1/servers/{id}/os-interface", params(("id" = String, Path, description = "The server UUID")), responses((status = OK, description = "The server's interface attachments", body = Object), crate::fault::ApiError))]
async fn list(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let ports = visible_ports(&state, &auth, &id).await?;
    let views: Vec<Value> = ports
        .iter()
        .map(|port| attachment_view(port, version))
        .collect();
    Ok(Json(json!({"interfaceAttachments": views})))
}

#[utoipa::path(get, path = "/v2.1/servers/{id}/os-interface/{port_id}", params(("id" = String, Path, description = "The server UUID"), ("port_id" = String, Path, description = "The port")), responses((status = OK, description = "One interface attachment", body = Object), crate::fault::ApiError))]
async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path((id, port_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ports = visible_ports(&state, &auth, &id).await?;
    let port = ports
        .iter()
        .find(|port| port.port.id == port_id)
        .ok_or_else(|| {
            ApiError::not_found(format!("Instance {id} is not attached to port {port_id}"))
        })?;
    Ok(Json(
        json!({"interfaceAttachment": attachment_view(port, version)}),
    ))
}

/// `{"interfaceAttachment": {…}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachBody {
    /// What to attach.
    #[serde(rename = "interfaceAttachment")]
    pub attachment: AttachRequest,
}

/// One address asked for the new port.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedIp {
    /// The address.
    pub ip_address: String,
}

/// A network (a new port) or the user's port.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    /// The network of a new port.
    #[serde(default)]
    pub net_id: Option<String>,
    /// The user's port.
    #[serde(default)]
    pub port_id: Option<String>,
    /// The new port's address (one).
    #[serde(default)]
    pub fixed_ips: Option<Vec<RequestedIp>>,
    /// A device tag (2.49+; kept for the metadata service by Nova).
    #[serde(default)]
    pub tag: Option<String>,
}

impl AttachRequest {
    /// Nova's rules: not both a network and a port; an address needs a
    /// network; one address at most. Neither: the project's
    /// auto-allocated network.
    async fn port_request(
        self,
        state: &AppState,
        auth: &AuthContext,
    ) -> ApiResult<InstancePortRequest> {
        let fixed_ip = match self.fixed_ips.as_deref() {
            None | Some([]) => None,
            Some([ip]) => {
                if ip.ip_address.parse::<std::net::IpAddr>().is_err() {
                    return Err(ApiError::bad_request(format!(
                        "Invalid input for field/attribute ip_address. Value: {}. '{}' is not a 'ip-address'",
                        ip.ip_address, ip.ip_address
                    )));
                }
                Some(ip.ip_address.clone())
            }
            Some(_) => {
                return Err(ApiError::bad_request(
                    "Invalid input for field/attribute fixed_ips. Only one fixed IP may be requested.",
                ));
            }
        };
        match (self.net_id, self.port_id) {
            (Some(_), Some(_)) => Err(ApiError::bad_request(
                "Must not input both network_id and port_id",
            )),
            (None, Some(_)) if fixed_ip.is_some() => Err(ApiError::bad_request(
                "Must input network_id when request IP address",
            )),
            (None, Some(port_id)) => Ok(InstancePortRequest::Port { port_id }),
            (Some(network_id), None) => Ok(InstancePortRequest::Network {
                network_id,
                fixed_ip,
                port_id: String::new(),
            }),
            (None, None) if fixed_ip.is_some() => Err(ApiError::bad_request(
                "Must input network_id when request IP address",
            )),
            (None, None) => {
                let topology = state
                    .network
                    .auto_allocated_topology(&network_caller(auth), &auth.project_id)
                    .await
                    .map_err(network_fault)?;
                Ok(InstancePortRequest::Network {
                    network_id: topology.id,
                    fixed_ip: None,
                    port_id: String::new(),
                })
            }
        }
    }
}

#[utoipa::path(post, path = "/v2.1/servers/{id}/os-interface", params(("id" = String, Path, description = "The server UUID")), request_body = AttachBody, responses((status = OK, description = "The new interface attachment", body = Object), crate::fault::ApiError))]
async fn attach(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<AttachBody>,
) -> ApiResult<Json<Value>> {
    let instance = fetch_visible(&state, &auth, &id).await?;
    auth.require_writer("os_compute_api:os-attach-interfaces:create")?;
    check_lock(&auth, &instance)?;
    let request = body.attachment.port_request(&state, &auth).await?;
    let caller = Caller {
        user_id: &auth.user_id,
        project_id: &auth.project_id,
        request_id: &request_id.0,
    };
    let port = state
        .conductor
        .attach_interface(&id, request, auth.is_admin(), &caller)
        .await?;
    Ok(Json(
        json!({"interfaceAttachment": attachment_view(&port, version)}),
    ))
}

#[utoipa::path(delete, path = "/v2.1/servers/{id}/os-interface/{port_id}", params(("id" = String, Path, description = "The server UUID"), ("port_id" = String, Path, description = "The port")), responses((status = ACCEPTED, description = "Detaching"), crate::fault::ApiError))]
async fn detach(
    State(state): State<AppState>,
    auth: AuthContext,
    request_id: RequestId,
    Path((id, port_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let instance = fetch_visible(&state, &auth, &id).await?;
    auth.require_writer("os_compute_api:os-attach-interfaces:delete")?;
    check_lock(&auth, &instance)?;
    let caller = Caller {
        user_id: &auth.user_id,
        project_id: &auth.project_id,
        request_id: &request_id.0,
    };
    state
        .conductor
        .detach_interface(&id, &port_id, &caller)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, attach))
        .routes(routes!(show, detach))
}
