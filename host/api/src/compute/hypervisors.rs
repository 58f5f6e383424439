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
use novum_compute::store::nodes::{ComputeNode, NodeKey};
use novum_compute::store::{self, services::ServiceRow};
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

/// `computes`, each with its service (those whose service is gone left out).
async fn with_services(state: &AppState, computes: Vec<ComputeNode>) -> Result<Vec<Node>, DbError> {
    let ids: Vec<i64> = computes.iter().map(|compute| compute.service_id).collect();
    let services: HashMap<i64, ServiceRow> = store::services::by_ids(&state.db, &ids)
        .await?
        .into_iter()
        .map(|service| (service.id, service))
        .collect();
    Ok(computes
        .into_iter()
        .filter_map(|compute| {
            let service = services.get(&compute.service_id).cloned()?;
            Some(Node { compute, service })
        })
        .collect())
}

/// The compute nodes whose service exists, each with it.
async fn nodes(state: &AppState) -> Result<Vec<Node>, DbError> {
    let computes = store::nodes::all(&state.db).await?;
    with_services(state, computes).await
}

/// The servers (name, uuid) on each of `nodes`' hosts.
async fn servers_by_host(
    state: &AppState,
    nodes: &[&Node],
) -> Result<HashMap<String, Vec<Value>>, DbError> {
    let hosts: Vec<String> = nodes.iter().map(|node| node.compute.host.clone()).collect();
    let mut by_host: HashMap<String, Vec<Value>> = HashMap::new();
    for (uuid, host) in store::instances::placed_on(&state.db, &hosts).await? {
        by_host
            .entry(host)
            .or_default()
            .push(json!({"name": instance_name(&uuid), "uuid": uuid}));
    }
    Ok(by_host)
}

/// The node with API id `id` at `version`, when there is one.
async fn by_api_id(
    state: &AppState,
    version: Microversion,
    id: &str,
) -> Result<Option<Node>, DbError> {
    let key = if version.at_least(53) {
        NodeKey::Uuid(id)
    } else {
        match id.parse::<i64>() {
            Ok(id) => NodeKey::Id(id),
            Err(_) => return Ok(None),
        }
    };
    let Some(compute) = store::nodes::find(&state.db, key).await? else {
        return Ok(None);
    };
    Ok(with_services(state, vec![compute]).await?.pop())
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
    let (page, more): (Vec<Node>, bool) = if let Some(pattern) = &pattern {
        // A pattern lists every match (paging with one is refused above).
        let mut all = nodes(state).await?;
        all.retain(|node| node.compute.hypervisor_hostname.contains(pattern.as_str()));
        if all.is_empty() {
            return Err(no_match(pattern));
        }
        (all, false)
    } else if paging {
        let limit = query.page.limit(state)?;
        let after = match &query.page.marker {
            None => None,
            Some(marker) => Some(
                by_api_id(state, version, marker)
                    .await?
                    .ok_or_else(|| ApiError::bad_request(format!("marker [{marker}] not found")))?
                    .compute
                    .id,
            ),
        };
        let computes = store::nodes::page(&state.db, after, limit.saturating_add(1)).await?;
        let mut page = with_services(state, computes).await?;
        let more = page.len() > limit && limit > 0;
        page.truncate(limit);
        (page, more)
    } else {
        (nodes(state).await?, false)
    };
    let servers = if servers_wanted {
        Some(servers_by_host(state, &page.iter().collect::<Vec<_>>()).await?)
    } else {
        None
    };
    let items: Vec<Value> = page
        .iter()
        .map(|node| {
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
    if more && let Some(last) = page.last() {
        body["hypervisors_links"] = next_link(
            state,
            if detailed {
                "os-hypervisors/detail"
            } else {
                "os-hypervisors"
            },
            &parse_query(raw.as_deref()),
            &last.api_id(version),
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
    by_api_id(state, version, id).await?.ok_or_else(not_found)
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
        body = with_servers(
            body,
            servers_by_host(&state, &[&node])
                .await?
                .get(&node.compute.host),
        );
    }
    if version.at_least(88) {
        body["uptime"] = json!(node.compute.uptime);
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
    let node = find(&state, version, &id).await?;
    let Some(uptime) = node.compute.uptime.clone() else {
        return Err(ApiError::not_implemented(
            "Virt driver does not implement uptime function.",
        ));
    };
    let mut body = summary(&state, version, &node);
    body["uptime"] = json!(uptime);
    Ok(Json(json!({ "hypervisor": body })))
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
    let sums = store::nodes::statistics(&state.db).await?;
    Ok(Json(json!({"hypervisor_statistics": {
        "count": sums.count,
        "vcpus": sums.vcpus,
        "memory_mb": sums.memory_mb,
        "local_gb": sums.local_gb,
        "vcpus_used": sums.vcpus_used,
        "memory_mb_used": sums.memory_mb_used,
        "local_gb_used": sums.local_gb_used,
        "free_ram_mb": sums.free_ram_mb,
        "free_disk_gb": sums.free_disk_gb,
        "current_workload": sums.current_workload,
        "running_vms": sums.running_vms,
        "disk_available_least": sums.free_disk_gb,
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
        Some(servers_by_host(state, &matching.iter().collect::<Vec<_>>()).await?)
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
