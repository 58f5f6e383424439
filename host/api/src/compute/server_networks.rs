//! A server's networking as the Compute API shows it: `addresses` (server
//! show and list), `GET /servers/{id}/ips[/{network}]`, the server's
//! security groups (`security_groups` in its view, `GET
//! /servers/{id}/os-security-groups`) and the `addSecurityGroup` /
//! `removeSecurityGroup` actions' effect. The ports themselves belong to the
//! network service (novum-network); this module only reads and shapes.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::network_fault;
use super::security_groups;
use super::servers::{fetch_visible, network_caller};
use crate::AppState;
use crate::auth::AuthContext;
use crate::extract::Path;
use crate::fault::{ApiError, ApiResult};
use novum_network::{InstanceAddress, SecurityGroup};

/// What a server's view shows of its networking.
#[derive(Clone, Debug, Default)]
pub struct ServerNetworking {
    /// `addresses`: network name → its addresses on the server.
    pub addresses: Map<String, Value>,
    /// `security_groups`: the names of its ports' groups, each once.
    pub security_groups: Vec<String>,
}

impl ServerNetworking {
    /// `[{"name": …}]`, as Nova shows a server's groups.
    pub fn security_groups_view(&self) -> Value {
        Value::Array(
            self.security_groups
                .iter()
                .map(|name| json!({"name": name}))
                .collect(),
        )
    }
}

/// `addresses` of an instance: per network name, one entry per fixed IP
/// with its version, type and the port's MAC.
pub fn addresses(of_instance: &[InstanceAddress]) -> Map<String, Value> {
    let mut addresses: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for address in of_instance {
        addresses
            .entry(address.network_name.as_str())
            .or_default()
            .push(json!({
                "version": address.version,
                "addr": address.address,
                "OS-EXT-IPS:type": "fixed",
                "OS-EXT-IPS-MAC:mac_addr": address.mac_address,
            }));
    }
    addresses
        .into_iter()
        .map(|(network, entries)| (network.to_string(), Value::Array(entries)))
        .collect()
}

/// The networking of server `uuid`.
pub async fn of_server(state: &AppState, uuid: &str) -> ApiResult<ServerNetworking> {
    Ok(of_servers(state, &[uuid.to_string()])
        .await?
        .remove(uuid)
        .unwrap_or_default())
}

/// The networking of each of `uuids` (a page of a server list), read in
/// one statement per 500 servers.
pub async fn of_servers(
    state: &AppState,
    uuids: &[String],
) -> ApiResult<HashMap<String, ServerNetworking>> {
    let mut addressing = state
        .network
        .instances_addressing(uuids)
        .await
        .map_err(network_fault)?;
    Ok(uuids
        .iter()
        .map(|uuid| {
            let addressing = addressing.remove(uuid).unwrap_or_default();
            (
                uuid.clone(),
                ServerNetworking {
                    addresses: addresses(&addressing.addresses),
                    security_groups: addressing.security_group_names,
                },
            )
        })
        .collect())
}

/// The addresses of a server the caller may see.
async fn visible_addresses(
    state: &AppState,
    auth: &AuthContext,
    id: &str,
) -> ApiResult<Map<String, Value>> {
    fetch_visible(state, auth, id).await?;
    Ok(of_server(state, id).await?.addresses)
}

#[utoipa::path(get, path = "/v2.1/servers/{id}/ips", params(("id" = String, Path, description = "The server UUID")), responses((status = OK, description = "The server's addresses by network", body = Object), crate::fault::ApiError))]
async fn ips(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let addresses = visible_addresses(&state, &auth, &id).await?;
    Ok(Json(json!({"addresses": addresses})))
}

#[utoipa::path(get, path = "/v2.1/servers/{id}/ips/{network}", params(("id" = String, Path, description = "The server UUID"), ("network" = String, Path, description = "The network's name (label)")), responses((status = OK, description = "The server's addresses on that network", body = Object), crate::fault::ApiError))]
async fn ips_of_network(
    State(state): State<AppState>,
    auth: AuthContext,
    Path((id, network)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let mut addresses = visible_addresses(&state, &auth, &id).await?;
    match addresses.remove(&network) {
        Some(entries) => Ok(Json(json!({ network: entries }))),
        None => Err(ApiError::not_found(
            "Instance is not a member of specified network",
        )),
    }
}

#[utoipa::path(get, path = "/v2.1/servers/{id}/os-security-groups", params(("id" = String, Path, description = "The server UUID")), responses((status = OK, description = "The server's security groups", body = Object), crate::fault::ApiError))]
async fn security_groups(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    fetch_visible(&state, &auth, &id).await?;
    let caller = network_caller(&auth);
    let groups: Vec<SecurityGroup> = state
        .network
        .instance_security_groups(&id)
        .await
        .map_err(network_fault)?
        .into_iter()
        .filter(|group| auth.may_see_project(&group.project_id))
        .collect();
    let views = security_groups::views(&state, &caller, &groups).await?;
    Ok(Json(json!({"security_groups": views})))
}

/// `addSecurityGroup` (`add`) or `removeSecurityGroup` on server `id` of
/// group `name` (a name or an id of the caller's project): every port of
/// the server gains or loses it. Nova's answers (`security_group_api`'s
/// `add_to_instance` / `remove_from_instance`): an unknown group 404, a
/// name of several groups 409, a server without ports 404, a group none of
/// its ports has (on remove) 404, a port without port security (on add)
/// 400.
pub async fn change_security_group(
    state: &AppState,
    auth: &AuthContext,
    id: &str,
    name: &str,
    add: bool,
) -> ApiResult<()> {
    let caller = network_caller(auth);
    let network = &state.network;
    let group = match network
        .resolve_security_groups(&auth.project_id, &[name.to_string()])
        .await
    {
        Ok(mut ids) => ids.pop().unwrap_or_default(),
        Err(novum_network::NetworkError::SecurityGroupNotFound(_)) => {
            return Err(ApiError::not_found(format!(
                "Security group {name} is not found for project {}",
                auth.project_id
            )));
        }
        Err(error) => return Err(network_fault(error)),
    };
    let ports = network.instance_ports(id).await.map_err(network_fault)?;
    if ports.is_empty() {
        return Err(ApiError::not_found(format!(
            "instance_id {id} could not be found as device id on any ports"
        )));
    }
    if !add
        && !ports
            .iter()
            .any(|port| port.port.security_groups.contains(&group))
    {
        return Err(ApiError::not_found(format!(
            "Security group {name} not associated with the instance {id}"
        )));
    }
    let changed = if add {
        network
            .add_instance_security_group(&caller, id, &group)
            .await
    } else {
        network
            .remove_instance_security_group(&caller, id, &group)
            .await
    };
    changed.map(|_| ()).map_err(network_fault)
}

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ips))
        .routes(routes!(ips_of_network))
        .routes(routes!(security_groups))
}
