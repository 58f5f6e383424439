//! Hypervisors (`/v2.1/os-hypervisors`): list, detail, show, statistics,
//! uptime, and the servers on each. Admin only (Nova's default policy).
//!
//! Shapes by microversion: integer ids before 2.53, uuids from 2.53 (and
//! `hypervisor_hostname_pattern` / `with_servers` replace the `/search` and
//! `/servers` sub-resources); `cpu_info` a JSON string before 2.28, an object
//! from 2.28; paging from 2.33; from 2.88 the resource fields are gone (and
//! `statistics` and `uptime` with them), `show` carries `uptime`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::parse_query;
use super::common::{Page, next_link, parse_bool};
use super::servers::instance_name;
use super::services::api_id;
use crate::AppState;
use crate::auth::AuthContext;
use crate::extract::{Path, Query};
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use novum_compute::store::{self, nodes::ComputeNode, services::ServiceRow};
use novum_db::DbError;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// A compute node with its service.
#[derive(Clone, Debug)]
struct Node {
    compute: ComputeNode,
    service: ServiceRow,
}

impl Node {
    fn api_id(&self, version: Microversion) -> String {
        if version.at_least(53) {
            self.compute.uuid.clone()
        } else {
            self.compute.id.to_string()
        }
    }
}

/// The compute nodes whose service exists, each with it.
async fn nodes(state: &AppState) -> Result<Vec<Node>, DbError> {
    let services: HashMap<i64, ServiceRow> = store::services::all(&state.db)
        .await?
        .into_iter()
        .map(|service| (service.id, service))
        .collect();
    Ok(store::nodes::all(&state.db)
        .await?
        .into_iter()
        .filter_map(|compute| {
            let service = services.get(&compute.service_id).cloned()?;
            Some(Node { compute, service })
        })
        .collect())
}

/// The servers (name, uuid) on each host.
async fn servers_by_host(state: &AppState) -> Result<HashMap<String, Vec<Value>>, DbError> {
    let mut by_host: HashMap<String, Vec<Value>> = HashMap::new();
    for (uuid, host) in store::instances::placed(&state.db).await? {
        by_host
            .entry(host)
            .or_default()
            .push(json!({"name": instance_name(&uuid), "uuid": uuid}));
    }
    Ok(by_host)
}

fn summary(state: &AppState, version: Microversion, node: &Node) -> Value {
    json!({
        "id": if version.at_least(53) { json!(node.compute.uuid) } else { json!(node.compute.id) },
        "hypervisor_hostname": node.compute.hypervisor_hostname,
        "state": node.service.state(state.config.compute.service_down_time),
        "status": node.service.status(),
    })
}

fn detail(state: &AppState, version: Microversion, node: &Node) -> Value {
    let mut body = summary(state, version, node);
    body["host_ip"] = json!(node.compute.host_ip);
    body["hypervisor_type"] = json!(node.compute.hypervisor_type);
    body["hypervisor_version"] = json!(node.compute.hypervisor_version);
    body["service"] = json!({
        "host": node.service.host,
        "id": api_id(&node.service, version),
        "disabled_reason": node.service.disabled_reason,
    });
    if !version.at_least(88) {
        let free_disk = node.compute.local_gb - node.compute.local_gb_used;
        body["vcpus"] = json!(node.compute.vcpus);
        body["memory_mb"] = json!(node.compute.memory_mb);
        body["local_gb"] = json!(node.compute.local_gb);
        body["vcpus_used"] = json!(node.compute.vcpus_used);
        body["memory_mb_used"] = json!(node.compute.memory_mb_used);
        body["local_gb_used"] = json!(node.compute.local_gb_used);
        body["free_ram_mb"] = json!(node.compute.memory_mb - node.compute.memory_mb_used);
        body["free_disk_gb"] = json!(free_disk);
        body["current_workload"] = json!(node.compute.num_io_ops);
        body["running_vms"] = json!(node.compute.running_vms);
        body["disk_available_least"] = json!(free_disk);
        body["cpu_info"] = if version.at_least(28) {
            serde_json::from_str(&node.compute.cpu_info).unwrap_or_else(|_| json!({}))
        } else {
            json!(node.compute.cpu_info)
        };
    }
    body
}

fn with_servers(mut body: Value, servers: Option<&Vec<Value>>) -> Value {
    if let Some(servers) = servers.filter(|servers| !servers.is_empty()) {
        body["servers"] = json!(servers);
    }
    body
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    hypervisor_hostname_pattern: Option<String>,
    with_servers: Option<String>,
    /// `limit` and `marker`.
    #[serde(flatten)]
    #[param(inline, required = false)]
    page: Page,
}

fn flag(name: &str, value: Option<&str>) -> ApiResult<bool> {
    match value {
        None => Ok(false),
        Some(text) => parse_bool(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid input for query parameters {name}. Value: {text}."
            ))
        }),
    }
}

fn no_match(pattern: &str) -> ApiError {
    ApiError::not_found(format!(
        "No hypervisor matching '{pattern}' could be found."
    ))
}

async fn list(
    state: &AppState,
    auth: &AuthContext,
    version: Microversion,
    query: ListQuery,
    raw: Option<String>,
    detailed: bool,
) -> ApiResult<Json<Value>> {
    auth.require_admin(if detailed {
        "os_compute_api:os-hypervisors:detail"
    } else {
        "os_compute_api:os-hypervisors:list"
    })?;
    let modern = version.at_least(53);
    let pattern = query.hypervisor_hostname_pattern.filter(|_| modern);
    let servers_wanted = modern && flag("with_servers", query.with_servers.as_deref())?;
    let paging = version.at_least(33);
    if pattern.is_some() && paging && (query.page.limit.is_some() || query.page.marker.is_some()) {
        return Err(ApiError::bad_request(
            "Paging over hypervisors with the hypervisor_hostname_pattern query parameter is not supported.",
        ));
    }
    let mut all = nodes(state).await?;
    if let Some(pattern) = &pattern {
        all.retain(|node| node.compute.hypervisor_hostname.contains(pattern.as_str()));
        if all.is_empty() {
            return Err(no_match(pattern));
        }
    }
    let keyed: Vec<(String, Node)> = all
        .into_iter()
        .map(|node| (node.api_id(version), node))
        .collect();
    let (page, more) = if paging {
        query.page.apply(state, keyed, |(id, _)| id)?
    } else {
        (keyed, false)
    };
    let servers = if servers_wanted {
        Some(servers_by_host(state).await?)
    } else {
        None
    };
    let items: Vec<Value> = page
        .iter()
        .map(|(_, node)| {
            let body = if detailed {
                detail(state, version, node)
            } else {
                summary(state, version, node)
            };
            with_servers(
                body,
                servers
                    .as_ref()
                    .and_then(|by_host| by_host.get(&node.compute.host)),
            )
        })
        .collect();
    let mut body = json!({"hypervisors": items});
    if more && let Some((last, _)) = page.last() {
        body["hypervisors_links"] = next_link(
            state,
            if detailed {
                "os-hypervisors/detail"
            } else {
                "os-hypervisors"
            },
            &parse_query(raw.as_deref()),
            last,
        );
    }
    Ok(Json(body))
}

#[utoipa::path(get, path = "/v2.1/os-hypervisors", params(ListQuery), responses((status = OK, description = "Success", body = HypervisorList), crate::fault::ApiError))]
async fn index(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Query(query): Query<ListQuery>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    list(&state, &auth, version, query, raw, false).await
}

#[utoipa::path(get, path = "/v2.1/os-hypervisors/detail", params(ListQuery), responses((status = OK, description = "Success", body = HypervisorList), crate::fault::ApiError))]
async fn index_detail(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Query(query): Query<ListQuery>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    list(&state, &auth, version, query, raw, true).await
}

/// The node with API id `id` (uuid from 2.53, integer before); 404 when unknown.
async fn find(state: &AppState, version: Microversion, id: &str) -> ApiResult<Node> {
    let not_found = || ApiError::not_found(format!("Hypervisor {id} could not be found."));
    if version.at_least(53) {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(ApiError::bad_request(format!("Invalid uuid {id}")));
        }
    } else if id.parse::<i64>().is_err() {
        return Err(not_found());
    }
    nodes(state)
        .await?
        .into_iter()
        .find(|node| node.api_id(version) == id)
        .ok_or_else(not_found)
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
struct ShowQuery {
    with_servers: Option<String>,
}

#[utoipa::path(get, path = "/v2.1/os-hypervisors/{id}", params(("id" = String, Path, description = "The hypervisor id (a UUID from 2.53, an integer before)"), ShowQuery), responses((status = OK, description = "Success", body = HypervisorEnvelope), crate::fault::ApiError))]
async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-hypervisors:show")?;
    let servers_wanted =
        version.at_least(53) && flag("with_servers", query.with_servers.as_deref())?;
    let node = find(&state, version, &id).await?;
    let mut body = detail(&state, version, &node);
    if servers_wanted {
        body = with_servers(body, servers_by_host(&state).await?.get(&node.compute.host));
    }
    if version.at_least(88) {
        // Uptime comes from the host's driver; the libvirt driver does not report it.
        body["uptime"] = Value::Null;
    }
    Ok(Json(json!({"hypervisor": body})))
}

#[utoipa::path(get, path = "/v2.1/os-hypervisors/{id}/uptime", params(("id" = String, Path, description = "The hypervisor id (a UUID from 2.53, an integer before)")), responses((status = OK, description = "Success", body = HypervisorEnvelope), (status = NOT_IMPLEMENTED, description = "The agents report no uptime", body = crate::openapi::NovaFault), crate::fault::ApiError))]
async fn uptime(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-hypervisors:uptime")?;
    if version.at_least(88) {
        return Err(ApiError::no_such_resource());
    }
    find(&state, version, &id).await?;
    Err(ApiError::not_implemented(
        "Virt driver does not implement uptime function.",
    ))
}

#[utoipa::path(get, path = "/v2.1/os-hypervisors/statistics", responses((status = OK, description = "Success", body = HypervisorStatistics), crate::fault::ApiError))]
async fn statistics(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-hypervisors:statistics")?;
    if version.at_least(88) {
        return Err(ApiError::no_such_resource());
    }
    let nodes = nodes(&state).await?;
    let sum = |field: fn(&Node) -> i64| nodes.iter().map(field).sum::<i64>();
    let free_disk = sum(|n| n.compute.local_gb - n.compute.local_gb_used);
    Ok(Json(json!({"hypervisor_statistics": {
        "count": nodes.len(),
        "vcpus": sum(|n| n.compute.vcpus),
        "memory_mb": sum(|n| n.compute.memory_mb),
        "local_gb": sum(|n| n.compute.local_gb),
        "vcpus_used": sum(|n| n.compute.vcpus_used),
        "memory_mb_used": sum(|n| n.compute.memory_mb_used),
        "local_gb_used": sum(|n| n.compute.local_gb_used),
        "free_ram_mb": sum(|n| n.compute.memory_mb - n.compute.memory_mb_used),
        "free_disk_gb": free_disk,
        "current_workload": sum(|n| n.compute.num_io_ops),
        "running_vms": sum(|n| n.compute.running_vms),
        "disk_available_least": free_disk,
    }})))
}

/// Before 2.53: `/os-hypervisors/{pattern}/search` and `/{pattern}/servers`.
async fn by_pattern(
    state: &AppState,
    auth: &AuthContext,
    version: Microversion,
    pattern: &str,
    servers: bool,
) -> ApiResult<Json<Value>> {
    auth.require_admin(if servers {
        "os_compute_api:os-hypervisors:servers"
    } else {
        "os_compute_api:os-hypervisors:search"
    })?;
    if version.at_least(53) {
        return Err(ApiError::no_such_resource());
    }
    let matching: Vec<Node> = nodes(state)
        .await?
        .into_iter()
        .filter(|node| node.compute.hypervisor_hostname.contains(pattern))
        .collect();
    if matching.is_empty() {
        return Err(no_match(pattern));
    }
    let by_host = if servers {
        Some(servers_by_host(state).await?)
    } else {
        None
    };
    let items: Vec<Value> = matching
        .iter()
        .map(|node| {
            with_servers(
                summary(state, version, node),
                by_host
                    .as_ref()
                    .and_then(|by_host| by_host.get(&node.compute.host)),
            )
        })
        .collect();
    Ok(Json(json!({"hypervisors": items})))
}

#[utoipa::path(get, path = "/v2.1/os-hypervisors/{id}/search", params(("id" = String, Path, description = "A hypervisor hostname pattern")), responses((status = OK, description = "Success", body = HypervisorList), crate::fault::ApiError))]
async fn search(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(pattern): Path<String>,
) -> ApiResult<Json<Value>> {
    by_pattern(&state, &auth, version, &pattern, false).await
}

#[utoipa::path(get, path = "/v2.1/os-hypervisors/{id}/servers", params(("id" = String, Path, description = "A hypervisor hostname pattern")), responses((status = OK, description = "Success", body = HypervisorList), crate::fault::ApiError))]
async fn servers(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(pattern): Path<String>,
) -> ApiResult<Json<Value>> {
    by_pattern(&state, &auth, version, &pattern, true).await
}

crate::envelope!(
    /// `{"hypervisors": …}`
    HypervisorList, "hypervisors", Array
);
crate::envelope!(
    /// `{"hypervisor": …}`
    HypervisorEnvelope, "hypervisor", Object
);
crate::envelope!(
    /// `{"hypervisor_statistics": …}`
    HypervisorStatistics, "hypervisor_statistics", Object
);

/// The hypervisor routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(index_detail))
        .routes(routes!(statistics))
        .routes(routes!(show))
        .routes(routes!(uptime))
        .routes(routes!(search))
        .routes(routes!(servers))
}
