//! `/v2.0/ports`: create, list, show, update, delete.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{
    Attrs, ListQuery, NetAuth, NetResult, NeutronFault, Pairs, Path, Query, created, id,
    neutron_time, render, reply, show_fields,
};
use crate::AppState;
use crate::fault::ApiError;
use novum_network::{
    AddressPairRequest, FixedIpRequest, NewPort, Port, PortUpdate, VIF_TYPE_BRIDGE, bridge_name,
};

crate::envelope!(
    /// `{"port": …}`
    PortBody, "port", Object
);
crate::envelope!(
    /// `{"ports": …}`
    PortList, "ports", Array
);

/// The port routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(list_json, create_json))
        .routes(routes!(show, update, delete))
}

/// A port as Neutron shows it to `admin` or not (`binding:*` but
/// `binding:vnic_type` for admins only).
pub fn port_json(port: &Port, admin: bool) -> Value {
    let mut body = json!({
        "id": port.id,
        "name": port.name,
        "description": port.description,
        "network_id": port.network_id,
        "tenant_id": port.project_id,
        "project_id": port.project_id,
        "mac_address": port.mac_address,
        "admin_state_up": port.admin_state_up,
        "status": port.status,
        "device_id": port.device_id,
        "device_owner": port.device_owner,
        "fixed_ips": port.fixed_ips.iter()
            .map(|ip| json!({"subnet_id": ip.subnet_id, "ip_address": ip.ip_address}))
            .collect::<Vec<_>>(),
        "allowed_address_pairs": port.allowed_address_pairs.iter()
            .map(|pair| json!({"ip_address": pair.ip_address, "mac_address": pair.mac_address}))
            .collect::<Vec<_>>(),
        "security_groups": port.security_groups,
        "port_security_enabled": port.port_security_enabled,
        "binding:vnic_type": port.binding.vnic_type,
        "tags": [],
        "created_at": neutron_time(&port.created_at),
        "updated_at": neutron_time(&port.updated_at),
        "revision_number": port.revision_number,
    });
    if admin {
        let details = if port.binding.vif_type == VIF_TYPE_BRIDGE {
            json!({"port_filter": true, "connectivity": "l2", "bridge_name": bridge_name(&port.network_id)})
        } else {
            json!({})
        };
        body["binding:host_id"] = json!(port.binding.host_id);
        body["binding:vif_type"] = json!(port.binding.vif_type);
        body["binding:vif_details"] = details;
        body["binding:profile"] = json!({});
    }
    body
}

fn fixed_ips(attrs: &mut Attrs) -> NetResult<Option<Vec<FixedIpRequest>>> {
    attrs.objects("fixed_ips", |ip| {
        Ok(FixedIpRequest {
            subnet_id: ip.string("subnet_id")?,
            ip_address: ip.string("ip_address")?,
        })
    })
}

fn address_pairs(attrs: &mut Attrs) -> NetResult<Option<Vec<AddressPairRequest>>> {
    attrs.objects("allowed_address_pairs", |pair| {
        Ok(AddressPairRequest {
            ip_address: pair.string("ip_address")?.ok_or_else(|| {
                NeutronFault(ApiError::bad_request(
                    "AllowedAddressPair must contain ip_address",
                ))
            })?,
            mac_address: pair.string("mac_address")?,
        })
    })
}

/// `binding:profile`: only an empty one is taken (nothing reads it).
fn empty_profile(attrs: &mut Attrs) -> NetResult<()> {
    match attrs.value("binding:profile") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(map)) if map.is_empty() => Ok(()),
        Some(_) => Err(NeutronFault(ApiError::bad_request(
            "binding:profile is not served",
        ))),
    }
}

/// `GET /v2.0/ports` (also filters `fixed_ips=ip_address=…`,
/// `fixed_ips=subnet_id=…`, `security_groups`).
#[utoipa::path(get, path = "/v2.0/ports", responses((status = OK, description = "Success", body = PortList), crate::openapi::NeutronFaults))]
async fn list(
    State(state): State<AppState>,
    net: NetAuth,
    Query(params): Pairs,
) -> NetResult<Response> {
    let query = ListQuery::parse(&params)?;
    let page = state
        .network
        .list_ports(&net.caller, &query.listing)
        .await?;
    Ok(query.page_body(
        &state,
        "ports",
        "ports",
        &page,
        |item| &item.id,
        |item| port_json(item, net.is_admin()),
    ))
}

/// `GET /v2.0/ports.json`.
#[utoipa::path(get, path = "/v2.0/ports.json", responses((status = OK, description = "Success", body = PortList), crate::openapi::NeutronFaults))]
async fn list_json(state: State<AppState>, net: NetAuth, params: Pairs) -> NetResult<Response> {
    list(state, net, params).await
}

/// The port a create body's object asks for.
fn new_port(mut attrs: Attrs) -> NetResult<NewPort> {
    let network_id = attrs.string("network_id")?.ok_or_else(|| {
        NeutronFault(ApiError::bad_request(
            "Failed to parse request. Required attribute 'network_id' not specified",
        ))
    })?;
    empty_profile(&mut attrs)?;
    let new = NewPort {
        project_id: attrs.owner()?,
        network_id,
        name: attrs.string("name")?,
        description: attrs.string("description")?,
        mac_address: attrs.string("mac_address")?,
        admin_state_up: attrs.boolean("admin_state_up")?,
        device_id: attrs.string("device_id")?,
        device_owner: attrs.string("device_owner")?,
        fixed_ips: fixed_ips(&mut attrs)?,
        security_groups: attrs.strings("security_groups")?,
        port_security_enabled: attrs.boolean("port_security_enabled")?,
        allowed_address_pairs: address_pairs(&mut attrs)?,
        binding_host_id: attrs.string("binding:host_id")?,
        binding_vnic_type: attrs.string("binding:vnic_type")?,
    };
    attrs.finish()?;
    Ok(new)
}

/// `POST /v2.0/ports`, also in bulk (`{"ports": [...]}`, undone as
/// networks are).
#[utoipa::path(post, path = "/v2.0/ports", request_body = PortBody, responses((status = CREATED, description = "Created", body = PortBody), crate::openapi::NeutronFaults))]
async fn create(State(state): State<AppState>, net: NetAuth, bytes: Bytes) -> NetResult<Response> {
    net.require_writer("create_port")?;
    let (bodies, bulk) = Attrs::parse_create(&bytes, "port", "ports")?;
    let news = bodies
        .into_iter()
        .map(new_port)
        .collect::<NetResult<Vec<_>>>()?;
    let mut made: Vec<Port> = Vec::with_capacity(news.len());
    for new in &news {
        match state.network.create_port(&net.caller, new).await {
            Ok(port) => made.push(port),
            Err(error) => {
                for port in &made {
                    if let Err(undo) = state.network.delete_port(&net.caller, &port.id).await {
                        tracing::warn!(port = %port.id, error = %undo, "bulk create: cannot undo");
                    }
                }
                return Err(error.into());
            }
        }
    }
    let items = made
        .iter()
        .map(|port| port_json(port, net.is_admin()))
        .collect();
    Ok(created("port", "ports", bulk, items))
}

/// `POST /v2.0/ports.json`.
#[utoipa::path(post, path = "/v2.0/ports.json", request_body = PortBody, responses((status = CREATED, description = "Created", body = PortBody), crate::openapi::NeutronFaults))]
async fn create_json(state: State<AppState>, net: NetAuth, bytes: Bytes) -> NetResult<Response> {
    create(state, net, bytes).await
}

/// `GET /v2.0/ports/{id}`.
#[utoipa::path(get, path = "/v2.0/ports/{port_id}", params(("port_id" = String, Path, description = "The port id")), responses((status = OK, description = "Success", body = PortBody), crate::openapi::NeutronFaults))]
async fn show(
    State(state): State<AppState>,
    net: NetAuth,
    Path(port_id): Path<String>,
    Query(params): Pairs,
) -> NetResult<Response> {
    let port = state.network.get_port(&net.caller, &id(port_id)).await?;
    Ok(reply(
        StatusCode::OK,
        "port",
        render(port_json(&port, net.is_admin()), &show_fields(&params)),
    ))
}

/// `PUT /v2.0/ports/{id}`.
#[utoipa::path(put, path = "/v2.0/ports/{port_id}", params(("port_id" = String, Path, description = "The port id")), request_body = PortBody, responses((status = OK, description = "Success", body = PortBody), crate::openapi::NeutronFaults))]
async fn update(
    State(state): State<AppState>,
    net: NetAuth,
    Path(port_id): Path<String>,
    bytes: Bytes,
) -> NetResult<Response> {
    net.require_writer("update_port")?;
    let mut attrs = Attrs::parse(&bytes, "port")?;
    attrs.refuse(&[
        "id",
        "tenant_id",
        "project_id",
        "network_id",
        "mac_address",
        "status",
    ])?;
    empty_profile(&mut attrs)?;
    let update = PortUpdate {
        name: attrs.string("name")?,
        description: attrs.string("description")?,
        admin_state_up: attrs.boolean("admin_state_up")?,
        device_id: attrs.string("device_id")?,
        device_owner: attrs.string("device_owner")?,
        fixed_ips: fixed_ips(&mut attrs)?,
        security_groups: attrs.strings("security_groups")?,
        port_security_enabled: attrs.boolean("port_security_enabled")?,
        allowed_address_pairs: address_pairs(&mut attrs)?,
        binding_host_id: attrs.string("binding:host_id")?,
        binding_vnic_type: attrs.string("binding:vnic_type")?,
    };
    attrs.finish()?;
    let port = state
        .network
        .update_port(&net.caller, &id(port_id), &update)
        .await?;
    Ok(reply(
        StatusCode::OK,
        "port",
        port_json(&port, net.is_admin()),
    ))
}

/// `DELETE /v2.0/ports/{id}`.
#[utoipa::path(delete, path = "/v2.0/ports/{port_id}", params(("port_id" = String, Path, description = "The port id")), responses((status = NO_CONTENT, description = "Deleted"), crate::openapi::NeutronFaults))]
async fn delete(
    State(state): State<AppState>,
    net: NetAuth,
    Path(port_id): Path<String>,
) -> NetResult<StatusCode> {
    net.require_writer("delete_port")?;
    state.network.delete_port(&net.caller, &id(port_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
