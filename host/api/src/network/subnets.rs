//! `/v2.0/subnets`: create, list, show, update, delete.

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
use novum_network::{AllocationPool, GatewayRequest, HostRoute, NewSubnet, Subnet, SubnetUpdate};

crate::envelope!(
    /// `{"subnet": …}`
    SubnetBody, "subnet", Object
);
crate::envelope!(
    /// `{"subnets": …}`
    SubnetList, "subnets", Array
);

/// The subnet routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(list_json, create_json))
        .routes(routes!(show, update, delete))
}

/// A subnet as Neutron shows it.
pub fn subnet_json(subnet: &Subnet) -> Value {
    json!({
        "id": subnet.id,
        "name": subnet.name,
        "description": subnet.description,
        "tenant_id": subnet.project_id,
        "project_id": subnet.project_id,
        "network_id": subnet.network_id,
        "ip_version": subnet.ip_version,
        "cidr": subnet.cidr,
        "gateway_ip": subnet.gateway_ip,
        "enable_dhcp": subnet.enable_dhcp,
        "ipv6_ra_mode": subnet.ipv6_ra_mode,
        "ipv6_address_mode": subnet.ipv6_address_mode,
        "allocation_pools": subnet.allocation_pools.iter()
            .map(|pool| json!({"start": pool.start, "end": pool.end}))
            .collect::<Vec<_>>(),
        "dns_nameservers": subnet.dns_nameservers,
        "host_routes": subnet.host_routes.iter()
            .map(|route| json!({"destination": route.destination, "nexthop": route.nexthop}))
            .collect::<Vec<_>>(),
        "subnetpool_id": null,
        "service_types": [],
        "tags": [],
        "created_at": neutron_time(&subnet.created_at),
        "updated_at": neutron_time(&subnet.updated_at),
        "revision_number": subnet.revision_number,
    })
}

fn pools(attrs: &mut Attrs) -> NetResult<Option<Vec<AllocationPool>>> {
    attrs.objects("allocation_pools", |pool| {
        Ok(AllocationPool {
            start: required(pool.string("start")?, "allocation_pools", "start")?,
            end: required(pool.string("end")?, "allocation_pools", "end")?,
        })
    })
}

fn routes_of(attrs: &mut Attrs) -> NetResult<Option<Vec<HostRoute>>> {
    attrs.objects("host_routes", |route| {
        Ok(HostRoute {
            destination: required(route.string("destination")?, "host_routes", "destination")?,
            nexthop: required(route.string("nexthop")?, "host_routes", "nexthop")?,
        })
    })
}

fn required<T>(value: Option<T>, attribute: &str, key: &str) -> NetResult<T> {
    value.ok_or_else(|| {
        super::invalid_attribute(
            attribute,
            format!("Validation of dictionary's keys failed. Expected keys: {{'{key}'}}"),
        )
    })
}

/// `GET /v2.0/subnets`.
#[utoipa::path(get, path = "/v2.0/subnets", responses((status = OK, description = "Success", body = SubnetList), crate::openapi::NeutronFaults))]
async fn list(
    State(state): State<AppState>,
    net: NetAuth,
    Query(params): Pairs,
) -> NetResult<Response> {
    let query = ListQuery::parse(&params)?;
    let page = state
        .network
        .list_subnets(&net.caller, &query.listing)
        .await?;
    Ok(query.page_body(
        &state,
        "subnets",
        "subnets",
        &page,
        |item| &item.id,
        subnet_json,
    ))
}

/// `GET /v2.0/subnets.json`.
#[utoipa::path(get, path = "/v2.0/subnets.json", responses((status = OK, description = "Success", body = SubnetList), crate::openapi::NeutronFaults))]
async fn list_json(state: State<AppState>, net: NetAuth, params: Pairs) -> NetResult<Response> {
    list(state, net, params).await
}

/// The subnet a create body's object asks for.
fn new_subnet(mut attrs: Attrs) -> NetResult<NewSubnet> {
    let network_id = attrs.string("network_id")?.ok_or_else(|| {
        NeutronFault(ApiError::bad_request(
            "Failed to parse request. Required attribute 'network_id' not specified",
        ))
    })?;
    let ip_version = match attrs.int("ip_version")? {
        Some(version @ (4 | 6)) => version as u8,
        Some(other) => {
            return Err(super::invalid_attribute(
                "ip_version",
                format!("{other} is not in [4, 6]"),
            ));
        }
        None => {
            return Err(NeutronFault(ApiError::bad_request(
                "Failed to parse request. Required attribute 'ip_version' not specified",
            )));
        }
    };
    if let Some(pool) = attrs.nullable_string("subnetpool_id")?.flatten() {
        return Err(NeutronFault(ApiError::bad_request(format!(
            "Subnet pools are not served: subnetpool_id {pool}"
        ))));
    }
    if attrs.boolean("use_default_subnetpool")? == Some(true) {
        return Err(NeutronFault(ApiError::bad_request(
            "Subnet pools are not served: use_default_subnetpool",
        )));
    }
    let cidr = attrs.string("cidr")?.ok_or_else(|| {
        NeutronFault(ApiError::bad_request(
            "Bad subnets request: a cidr must be specified in the absence of a subnet pool",
        ))
    })?;
    let gateway_ip = match attrs.nullable_string("gateway_ip")? {
        None => GatewayRequest::Default,
        Some(None) => GatewayRequest::Disabled,
        Some(Some(address)) => GatewayRequest::Address(address),
    };
    let new = NewSubnet {
        project_id: attrs.owner()?,
        network_id,
        name: attrs.string("name")?,
        description: attrs.string("description")?,
        ip_version,
        cidr,
        gateway_ip,
        enable_dhcp: attrs.boolean("enable_dhcp")?,
        ipv6_ra_mode: attrs.nullable_string("ipv6_ra_mode")?.flatten(),
        ipv6_address_mode: attrs.nullable_string("ipv6_address_mode")?.flatten(),
        allocation_pools: pools(&mut attrs)?,
        dns_nameservers: attrs.strings("dns_nameservers")?.unwrap_or_default(),
        host_routes: routes_of(&mut attrs)?.unwrap_or_default(),
    };
    if attrs
        .strings("service_types")?
        .is_some_and(|types| !types.is_empty())
    {
        return Err(NeutronFault(ApiError::bad_request(
            "Subnet service types are not served",
        )));
    }
    attrs.finish()?;
    Ok(new)
}

/// `POST /v2.0/subnets`, also in bulk (`{"subnets": [...]}`, undone
/// as networks are).
#[utoipa::path(post, path = "/v2.0/subnets", request_body = SubnetBody, responses((status = CREATED, description = "Created", body = SubnetBody), crate::openapi::NeutronFaults))]
async fn create(State(state): State<AppState>, net: NetAuth, bytes: Bytes) -> NetResult<Response> {
    net.require_writer("create_subnet")?;
    let (bodies, bulk) = Attrs::parse_create(&bytes, "subnet", "subnets")?;
    let news = bodies
        .into_iter()
        .map(new_subnet)
        .collect::<NetResult<Vec<_>>>()?;
    let mut made: Vec<Subnet> = Vec::with_capacity(news.len());
    for new in &news {
        match state.network.create_subnet(&net.caller, new).await {
            Ok(subnet) => made.push(subnet),
            Err(error) => {
                for subnet in &made {
                    if let Err(undo) = state.network.delete_subnet(&net.caller, &subnet.id).await {
                        tracing::warn!(subnet = %subnet.id, error = %undo, "bulk create: cannot undo");
                    }
                }
                return Err(error.into());
            }
        }
    }
    Ok(created(
        "subnet",
        "subnets",
        bulk,
        made.iter().map(subnet_json).collect(),
    ))
}

/// `POST /v2.0/subnets.json`.
#[utoipa::path(post, path = "/v2.0/subnets.json", request_body = SubnetBody, responses((status = CREATED, description = "Created", body = SubnetBody), crate::openapi::NeutronFaults))]
async fn create_json(state: State<AppState>, net: NetAuth, bytes: Bytes) -> NetResult<Response> {
    create(state, net, bytes).await
}

/// `GET /v2.0/subnets/{id}`.
#[utoipa::path(get, path = "/v2.0/subnets/{subnet_id}", params(("subnet_id" = String, Path, description = "The subnet id")), responses((status = OK, description = "Success", body = SubnetBody), crate::openapi::NeutronFaults))]
async fn show(
    State(state): State<AppState>,
    net: NetAuth,
    Path(subnet_id): Path<String>,
    Query(params): Pairs,
) -> NetResult<Response> {
    let subnet = state
        .network
        .get_subnet(&net.caller, &id(subnet_id))
        .await?;
    Ok(reply(
        StatusCode::OK,
        "subnet",
        render(subnet_json(&subnet), &show_fields(&params)),
    ))
}

/// `PUT /v2.0/subnets/{id}`.
#[utoipa::path(put, path = "/v2.0/subnets/{subnet_id}", params(("subnet_id" = String, Path, description = "The subnet id")), request_body = SubnetBody, responses((status = OK, description = "Success", body = SubnetBody), crate::openapi::NeutronFaults))]
async fn update(
    State(state): State<AppState>,
    net: NetAuth,
    Path(subnet_id): Path<String>,
    bytes: Bytes,
) -> NetResult<Response> {
    net.require_writer("update_subnet")?;
    let mut attrs = Attrs::parse(&bytes, "subnet")?;
    attrs.refuse(&[
        "id",
        "tenant_id",
        "project_id",
        "network_id",
        "ip_version",
        "cidr",
        "ipv6_ra_mode",
        "ipv6_address_mode",
        "subnetpool_id",
    ])?;
    let update = SubnetUpdate {
        name: attrs.string("name")?,
        description: attrs.string("description")?,
        gateway_ip: attrs.nullable_string("gateway_ip")?,
        enable_dhcp: attrs.boolean("enable_dhcp")?,
        dns_nameservers: attrs.strings("dns_nameservers")?,
        host_routes: routes_of(&mut attrs)?,
        allocation_pools: pools(&mut attrs)?,
    };
    attrs.finish()?;
    let subnet = state
        .network
        .update_subnet(&net.caller, &id(subnet_id), &update)
        .await?;
    Ok(reply(StatusCode::OK, "subnet", subnet_json(&subnet)))
}

/// `DELETE /v2.0/subnets/{id}`: 409 `SubnetInUse` while ports hold its
/// addresses.
#[utoipa::path(delete, path = "/v2.0/subnets/{subnet_id}", params(("subnet_id" = String, Path, description = "The subnet id")), responses((status = NO_CONTENT, description = "Deleted"), crate::openapi::NeutronFaults))]
async fn delete(
    State(state): State<AppState>,
    net: NetAuth,
    Path(subnet_id): Path<String>,
) -> NetResult<StatusCode> {
    net.require_writer("delete_subnet")?;
    state
        .network
        .delete_subnet(&net.caller, &id(subnet_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
