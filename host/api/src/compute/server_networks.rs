//! A server's networking as the Compute API shows it: `addresses` (server
//! show and list), `GET /servers/{id}/ips[/{network}]`, the server's
//! security groups (`security_groups` in its view, `GET
//! /servers/{id}/os-security-groups`) and the `addSecurityGroup` /
//! `removeSecurityGroup` actions' effect. The ports themselves belong to the
//! network service (novum-network); this module only reads and shapes.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::network_fault;
use super::servers::{fetch_visible, network_caller};
use crate::AppState;
use crate::auth::AuthContext;
use crate::extract::Path;
use crate::fault::{ApiError, ApiResult};
use novum_network::{InstancePort, SecurityGroup, SecurityGroupRule};

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

/// `addresses` of `ports`: per network name, one entry per fixed IP with
/// its version, type and the port's MAC.
pub fn addresses(ports: &[InstancePort]) -> Map<String, Value> {
    let mut addresses: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for port in ports {
        let entries = addresses.entry(port.network_name.clone()).or_default();
        for ip in &port.ips {
            entries.push(json!({
                "version": ip.version,
                "addr": ip.address,
                "OS-EXT-IPS:type": "fixed",
                "OS-EXT-IPS-MAC:mac_addr": port.port.mac_address,
            }));
        }
    }
    addresses
        .into_iter()
        .map(|(network, entries)| (network, Value::Array(entries)))
        .collect()
}

/// The networking of server `uuid`.
pub async fn of_server(state: &AppState, uuid: &str) -> ApiResult<ServerNetworking> {
    let ports = state
        .network
        .instance_ports(uuid)
        .await
        .map_err(network_fault)?;
    let groups = state
        .network
        .instance_security_groups(uuid)
        .await
        .map_err(network_fault)?;
    let mut names: Vec<String> = groups.into_iter().map(|group| group.name).collect();
    names.sort();
    names.dedup();
    Ok(ServerNetworking {
        addresses: addresses(&ports),
        security_groups: names,
    })
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

/// A rule as Nova's `os-security-groups` shows it.
fn rule_view(rule: &SecurityGroupRule, groups: &[SecurityGroup]) -> Value {
    let group = rule.remote_group_id.as_ref().map(|remote| {
        let name = groups
            .iter()
            .find(|group| &group.id == remote)
            .map(|group| group.name.clone());
        json!({"name": name})
    });
    json!({
        "id": rule.id,
        "parent_group_id": rule.security_group_id,
        "ip_protocol": rule.protocol,
        "from_port": rule.port_range_min,
        "to_port": rule.port_range_max,
        "ip_range": rule.remote_ip_prefix.as_ref().map_or_else(|| json!({}), |cidr| json!({"cidr": cidr})),
        "group": group.unwrap_or_else(|| json!({})),
    })
}

/// A security group as Nova's `os-security-groups` shows it (ingress
/// rules only, as Nova's proxy does).
fn group_view(group: &SecurityGroup, groups: &[SecurityGroup]) -> Value {
    json!({
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "tenant_id": group.project_id,
        "rules": group
            .rules
            .iter()
            .filter(|rule| rule.direction == "ingress")
            .map(|rule| rule_view(rule, groups))
            .collect::<Vec<_>>(),
    })
}

#[utoipa::path(get, path = "/v2.1/servers/{id}/os-security-groups", params(("id" = String, Path, description = "The server UUID")), responses((status = OK, description = "The server's security groups", body = Object), crate::fault::ApiError))]
async fn security_groups(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    fetch_visible(&state, &auth, &id).await?;
    let mut groups = state
        .network
        .instance_security_groups(&id)
        .await
        .map_err(network_fault)?;
    groups.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    let views: Vec<Value> = groups
        .iter()
        .map(|group| group_view(group, &groups))
        .collect();
    Ok(Json(json!({"security_groups": views})))
}

/// `addSecurityGroup` (`add`) or `removeSecurityGroup` on server `id` of
/// group `name`: every port of the server gains or loses it. Nova's
/// answers: an unknown group 404, a group the server does not have (on
/// remove) 400, a server without ports 400.
pub async fn change_security_group(
    state: &AppState,
    auth: &AuthContext,
    id: &str,
    name: &str,
    add: bool,
) -> ApiResult<()> {
    let caller = network_caller(auth);
    let network = &state.network;
    let ports = network.instance_ports(id).await.map_err(network_fault)?;
    if ports.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Server {id} has no port to {} a security group",
            if add { "add" } else { "remove" }
        )));
    }
    if !add {
        let current = network
            .instance_security_groups(id)
            .await
            .map_err(network_fault)?;
        if !current
            .iter()
            .any(|group| group.name == name || group.id == name)
        {
            return Err(ApiError::bad_request(format!(
                "Security group {name} not associated with the instance {id}"
            )));
        }
    }
    let changed = if add {
        network.add_instance_security_group(&caller, id, name).await
    } else {
        network
            .remove_instance_security_group(&caller, id, name)
            .await
    };
    match changed {
        Ok(_) => Ok(()),
        Err(novum_network::NetworkError::SecurityGroupNotFound(_)) => {
            Err(ApiError::not_found(format!(
                "Security group {name} not found for project {}.",
                auth.project_id
            )))
        }
        Err(error) => Err(network_fault(error)),
    }
}

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ips))
        .routes(routes!(ips_of_network))
        .routes(routes!(security_groups))
}
