//! `/v2.0/networks`: create, list, show, update, delete.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{
    Attrs, ListQuery, NetAuth, NetResult, Pairs, Path, Query, created, id, neutron_time, render,
    reply, show_fields,
};
use crate::AppState;
use novum_network::{Network, NetworkUpdate, NewNetwork, Provider};

crate::envelope!(
    /// `{"network": …}`
    NetworkBody, "network", Object
);
crate::envelope!(
    /// `{"networks": …}`
    NetworkList, "networks", Array
);

/// The network routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(list_json, create_json))
        .routes(routes!(show, update, delete))
}

/// A network as Neutron shows it to `admin` or not (provider attributes
/// for admins only).
pub fn network_json(network: &Network, admin: bool) -> Value {
    let mut body = json!({
        "id": network.id,
        "name": network.name,
        "description": network.description,
        "tenant_id": network.project_id,
        "project_id": network.project_id,
        "admin_state_up": network.admin_state_up,
        "status": network.status,
        "subnets": network.subnets,
        "shared": network.shared,
        "router:external": network.router_external,
        "mtu": network.mtu,
        "port_security_enabled": network.port_security_enabled,
        "is_default": network.is_default,
        "availability_zone_hints": [],
        "availability_zones": [],
        "ipv4_address_scope": null,
        "ipv6_address_scope": null,
        "l2_adjacency": true,
        "tags": [],
        "created_at": neutron_time(&network.created_at),
        "updated_at": neutron_time(&network.updated_at),
        "revision_number": network.revision_number,
    });
    if admin {
        body["provider:network_type"] = json!(network.provider.network_type);
        body["provider:physical_network"] = json!(network.provider.physical_network);
        body["provider:segmentation_id"] = json!(network.provider.segmentation_id);
    }
    body
}

/// `GET /v2.0/networks`.
#[utoipa::path(get, path = "/v2.0/networks", responses((status = OK, description = "Success", body = NetworkList), crate::openapi::NeutronFaults))]
async fn list(
    State(state): State<AppState>,
    net: NetAuth,
    Query(params): Pairs,
) -> NetResult<Response> {
    let query = ListQuery::parse(&params)?;
    let page = state
        .network
        .list_networks(&net.caller, &query.listing)
        .await?;
    Ok(query.page_body(
        &state,
        "networks",
        "networks",
        &page,
        |item| &item.id,
        |item| network_json(item, net.is_admin()),
    ))
}

/// `GET /v2.0/networks.json`.
#[utoipa::path(get, path = "/v2.0/networks.json", responses((status = OK, description = "Success", body = NetworkList), crate::openapi::NeutronFaults))]
async fn list_json(state: State<AppState>, net: NetAuth, params: Pairs) -> NetResult<Response> {
    list(state, net, params).await
}

/// The network a create body's object asks for.
fn new_network(mut attrs: Attrs) -> NetResult<NewNetwork> {
    let new = NewNetwork {
        project_id: attrs.owner()?,
        name: attrs.string("name")?,
        description: attrs.string("description")?,
        admin_state_up: attrs.boolean("admin_state_up")?,
        shared: attrs.boolean("shared")?,
        router_external: attrs.boolean("router:external")?,
        mtu: attrs.int("mtu")?,
        provider: Provider {
            network_type: attrs.nullable_string("provider:network_type")?.flatten(),
            physical_network: attrs
                .nullable_string("provider:physical_network")?
                .flatten(),
            segmentation_id: attrs.nullable_int("provider:segmentation_id")?.flatten(),
        },
        port_security_enabled: attrs.boolean("port_security_enabled")?,
        is_default: attrs.boolean("is_default")?,
    };
    attrs.finish()?;
    Ok(new)
}

/// `POST /v2.0/networks`, also in bulk (`{"networks": [...]}`: all are
/// validated first; when one create fails, those made before it are
/// deleted).
#[utoipa::path(post, path = "/v2.0/networks", request_body = NetworkBody, responses((status = CREATED, description = "Created", body = NetworkBody), crate::openapi::NeutronFaults))]
async fn create(State(state): State<AppState>, net: NetAuth, bytes: Bytes) -> NetResult<Response> {
    net.require_writer("create_network")?;
    let (bodies, bulk) = Attrs::parse_create(&bytes, "network", "networks")?;
    let news = bodies
        .into_iter()
        .map(new_network)
        .collect::<NetResult<Vec<_>>>()?;
    let mut made: Vec<Network> = Vec::with_capacity(news.len());
    for new in &news {
        match state.network.create_network(&net.caller, new).await {
            Ok(network) => made.push(network),
            Err(error) => {
                for network in &made {
                    if let Err(undo) = state.network.delete_network(&net.caller, &network.id).await
                    {
                        tracing::warn!(network = %network.id, error = %undo, "bulk create: cannot undo");
                    }
                }
                return Err(error.into());
            }
        }
    }
    let items = made
        .iter()
        .map(|network| network_json(network, net.is_admin()))
        .collect();
    Ok(created("network", "networks", bulk, items))
}

/// `POST /v2.0/networks.json`.
#[utoipa::path(post, path = "/v2.0/networks.json", request_body = NetworkBody, responses((status = CREATED, description = "Created", body = NetworkBody), crate::openapi::NeutronFaults))]
async fn create_json(state: State<AppState>, net: NetAuth, bytes: Bytes) -> NetResult<Response> {
    create(state, net, bytes).await
}

/// `GET /v2.0/networks/{id}` (also `{id}.json`; `fields` limits the keys).
#[utoipa::path(get, path = "/v2.0/networks/{network_id}", params(("network_id" = String, Path, description = "The network id")), responses((status = OK, description = "Success", body = NetworkBody), crate::openapi::NeutronFaults))]
async fn show(
    State(state): State<AppState>,
    net: NetAuth,
    Path(network_id): Path<String>,
    Query(params): Pairs,
) -> NetResult<Response> {
    let network = state
        .network
        .get_network(&net.caller, &id(network_id))
        .await?;
    Ok(reply(
        StatusCode::OK,
        "network",
        render(
            network_json(&network, net.is_admin()),
            &show_fields(&params),
        ),
    ))
}

/// `PUT /v2.0/networks/{id}`.
#[utoipa::path(put, path = "/v2.0/networks/{network_id}", params(("network_id" = String, Path, description = "The network id")), request_body = NetworkBody, responses((status = OK, description = "Success", body = NetworkBody), crate::openapi::NeutronFaults))]
async fn update(
    State(state): State<AppState>,
    net: NetAuth,
    Path(network_id): Path<String>,
    bytes: Bytes,
) -> NetResult<Response> {
    net.require_writer("update_network")?;
    let mut attrs = Attrs::parse(&bytes, "network")?;
    attrs.refuse(&[
        "id",
        "tenant_id",
        "project_id",
        "status",
        "subnets",
        "provider:network_type",
        "provider:physical_network",
        "provider:segmentation_id",
    ])?;
    let update = NetworkUpdate {
        name: attrs.string("name")?,
        description: attrs.string("description")?,
        admin_state_up: attrs.boolean("admin_state_up")?,
        shared: attrs.boolean("shared")?,
        router_external: attrs.boolean("router:external")?,
        mtu: attrs.int("mtu")?,
        port_security_enabled: attrs.boolean("port_security_enabled")?,
        is_default: attrs.boolean("is_default")?,
    };
    attrs.finish()?;
    let network = state
        .network
        .update_network(&net.caller, &id(network_id), &update)
        .await?;
    Ok(reply(
        StatusCode::OK,
        "network",
        network_json(&network, net.is_admin()),
    ))
}

/// `DELETE /v2.0/networks/{id}`: 409 `NetworkInUse` while ports other than
/// the network's own are on it.
#[utoipa::path(delete, path = "/v2.0/networks/{network_id}", params(("network_id" = String, Path, description = "The network id")), responses((status = NO_CONTENT, description = "Deleted"), crate::openapi::NeutronFaults))]
async fn delete(
    State(state): State<AppState>,
    net: NetAuth,
    Path(network_id): Path<String>,
) -> NetResult<StatusCode> {
    net.require_writer("delete_network")?;
    state
        .network
        .delete_network(&net.caller, &id(network_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
