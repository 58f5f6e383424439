//! Nova's network proxies over the network service's networks
//! (microversions 2.1 to 2.35; from 2.36 404, as Nova's): `os-networks`
//! and `os-tenant-networks`, list and show of the networks the caller may
//! see, in the shapes Nova gives them since nova-network left
//! (`nova/api/openstack/compute/networks.py`, `tenant_networks.py`): an
//! `os-networks` entry is its id and `label` (the name) with every
//! nova-network field null (admins see the admin fields too, null as
//! well); an `os-tenant-networks` entry its id, `label` and `cidr` the
//! string `"None"`. What only nova-network did (create, delete, `add`, the
//! association actions) answers 410 at every microversion, as Nova's does.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{MAX_PROXY_MICROVERSION, network_fault, until_microversion};
use super::servers::network_caller;
use crate::AppState;
use crate::auth::AuthContext;
use crate::body::JsonBody;
use crate::extract::Path;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use novum_network::{Listing, Network, NetworkError};

/// The nova-network fields every `os-networks` entry shows (null).
const NETWORK_FIELDS: &[&str] = &[
    "cidr",
    "netmask",
    "gateway",
    "broadcast",
    "dns1",
    "dns2",
    "cidr_v6",
    "gateway_v6",
    "netmask_v6",
];

/// The nova-network fields an admin sees besides (null).
const ADMIN_FIELDS: &[&str] = &[
    "created_at",
    "updated_at",
    "deleted_at",
    "deleted",
    "injected",
    "bridge",
    "vlan",
    "vpn_public_address",
    "vpn_public_port",
    "vpn_private_address",
    "dhcp_start",
    "project_id",
    "host",
    "bridge_interface",
    "multi_host",
    "priority",
    "rxtx_base",
    "mtu",
    "dhcp_server",
    "enable_dhcp",
    "share_address",
];

/// The actions of `/os-networks/{id}/action`, all removed with
/// nova-network.
const REMOVED_ACTIONS: &[&str] = &[
    "disassociate",
    "disassociate_host",
    "disassociate_project",
    "associate_host",
];

/// A network as `os-networks` shows it to a caller (`admin`: with the
/// admin fields).
fn network_view(network: &Network, admin: bool) -> Value {
    let nulls = NETWORK_FIELDS
        .iter()
        .chain(if admin { ADMIN_FIELDS } else { &[] })
        .map(|field| ((*field).to_string(), Value::Null));
    let mut view: Map<String, Value> = nulls.collect();
    view.insert("id".into(), json!(network.id));
    view.insert("label".into(), json!(network.name));
    Value::Object(view)
}

/// A network as `os-tenant-networks` shows it.
fn tenant_network_view(network: &Network) -> Value {
    json!({"id": network.id, "label": network.name, "cidr": "None"})
}

/// The networks the caller may see, as the network service lists them.
async fn visible_networks(state: &AppState, auth: &AuthContext) -> ApiResult<Vec<Network>> {
    Ok(state
        .network
        .list_networks(&network_caller(auth), &Listing::default())
        .await
        .map_err(network_fault)?
        .items)
}

/// The network `id` if the caller may see it, Nova's 404 otherwise.
async fn visible_network(state: &AppState, auth: &AuthContext, id: &str) -> ApiResult<Network> {
    match state.network.get_network(&network_caller(auth), id).await {
        Ok(network) => Ok(network),
        Err(NetworkError::NetworkNotFound(_)) => Err(ApiError::not_found("Network not found")),
        Err(error) => Err(network_fault(error)),
    }
}

#[utoipa::path(get, path = "/v2.1/os-networks", responses((status = OK, description = "The networks the caller may see (`networks`)", body = Object), crate::fault::ApiError))]
async fn list_networks(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
) -> ApiResult<Json<Value>> {
    until_microversion(version, MAX_PROXY_MICROVERSION)?;
    let admin = auth.is_admin();
    let networks: Vec<Value> = visible_networks(&state, &auth)
        .await?
        .iter()
        .map(|network| network_view(network, admin))
        .collect();
    Ok(Json(json!({"networks": networks})))
}

#[utoipa::path(get, path = "/v2.1/os-networks/{id}", params(("id" = String, Path, description = "The network's uuid")), responses((status = OK, description = "The network (`network`)", body = Object), crate::fault::ApiError))]
async fn show_network(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    until_microversion(version, MAX_PROXY_MICROVERSION)?;
    let network = visible_network(&state, &auth, &id).await?;
    Ok(Json(
        json!({"network": network_view(&network, auth.is_admin())}),
    ))
}

#[utoipa::path(post, path = "/v2.1/os-networks", responses((status = GONE, description = "Removed with nova-network"), crate::fault::ApiError))]
async fn create_network() -> ApiResult<StatusCode> {
    Err(ApiError::gone())
}

#[utoipa::path(post, path = "/v2.1/os-networks/add", responses((status = GONE, description = "Removed with nova-network"), crate::fault::ApiError))]
async fn add_network() -> ApiResult<StatusCode> {
    Err(ApiError::gone())
}

#[utoipa::path(delete, path = "/v2.1/os-networks/{id}", params(("id" = String, Path, description = "The network's id")), responses((status = GONE, description = "Removed with nova-network"), crate::fault::ApiError))]
async fn delete_network() -> ApiResult<StatusCode> {
    Err(ApiError::gone())
}

#[utoipa::path(post, path = "/v2.1/os-networks/{id}/action", params(("id" = String, Path, description = "The network's id")), request_body = crate::openapi::SingleKeyObject, responses((status = GONE, description = "Removed with nova-network"), crate::fault::ApiError))]
async fn network_action(
    JsonBody(body): JsonBody<BTreeMap<String, Value>>,
) -> ApiResult<StatusCode> {
    let mut names = body.keys();
    match (names.next(), names.next()) {
        (Some(name), None) if REMOVED_ACTIONS.contains(&name.as_str()) => Err(ApiError::gone()),
        (Some(name), None) => Err(ApiError::bad_request(format!(
            "There is no such action: {name}"
        ))),
        _ => Err(ApiError::bad_request("Malformed request body")),
    }
}

#[utoipa::path(get, path = "/v2.1/os-tenant-networks", responses((status = OK, description = "The networks the caller may see (`networks`)", body = Object), crate::fault::ApiError))]
async fn list_tenant_networks(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
) -> ApiResult<Json<Value>> {
    until_microversion(version, MAX_PROXY_MICROVERSION)?;
    let networks: Vec<Value> = visible_networks(&state, &auth)
        .await?
        .iter()
        .map(tenant_network_view)
        .collect();
    Ok(Json(json!({"networks": networks})))
}

#[utoipa::path(get, path = "/v2.1/os-tenant-networks/{id}", params(("id" = String, Path, description = "The network's uuid")), responses((status = OK, description = "The network (`network`)", body = Object), crate::fault::ApiError))]
async fn show_tenant_network(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    until_microversion(version, MAX_PROXY_MICROVERSION)?;
    let network = visible_network(&state, &auth, &id).await?;
    Ok(Json(json!({"network": tenant_network_view(&network)})))
}

#[utoipa::path(post, path = "/v2.1/os-tenant-networks", responses((status = GONE, description = "Removed with nova-network"), crate::fault::ApiError))]
async fn create_tenant_network() -> ApiResult<StatusCode> {
    Err(ApiError::gone())
}

#[utoipa::path(delete, path = "/v2.1/os-tenant-networks/{id}", params(("id" = String, Path, description = "The network's id")), responses((status = GONE, description = "Removed with nova-network"), crate::fault::ApiError))]
async fn delete_tenant_network() -> ApiResult<StatusCode> {
    Err(ApiError::gone())
}

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_networks, create_network))
        .routes(routes!(add_network))
        .routes(routes!(show_network, delete_network))
        .routes(routes!(network_action))
        .routes(routes!(list_tenant_networks, create_tenant_network))
        .routes(routes!(show_tenant_network, delete_tenant_network))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_see_the_admin_fields_everyone_the_label() {
        let network = Network {
            id: "n".into(),
            project_id: "p".into(),
            name: "shared".into(),
            description: String::new(),
            admin_state_up: true,
            shared: true,
            router_external: false,
            mtu: 1500,
            status: "ACTIVE".into(),
            provider: Default::default(),
            port_security_enabled: true,
            is_default: false,
            subnets: Vec::new(),
            created_at: String::new(),
            updated_at: String::new(),
            revision_number: 0,
        };
        let member = network_view(&network, false);
        assert_eq!(member["label"], "shared");
        assert_eq!(member["cidr"], Value::Null);
        assert!(member.get("mtu").is_none());
        let admin = network_view(&network, true);
        assert_eq!(admin.as_object().map(Map::len), Some(32));
        assert_eq!(
            tenant_network_view(&network),
            json!({"id": "n", "label": "shared", "cidr": "None"})
        );
    }
}
