//! The deprecated hosts API (`/v2.1/os-hosts`, microversions 2.1 to 2.42,
//! admin only): the hosts of the services, a host's resources (total, used
//! now, what its instances take, per project), and the host actions, which
//! Nova's libvirt driver does not implement (501) — on a host that exists.
//! From 2.43 every route answers 404, as Nova's do.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{parse_query, query_value, until_microversion};
use super::services::{service_zone, zones_by_host};
use crate::AppState;
use crate::auth::AuthContext;
use crate::body::JsonBody;
use crate::extract::Path;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use novum_compute::store::services::{self, COMPUTE_BINARY, ServiceRow};
use novum_compute::store::{instances, nodes};

/// The last microversion with the hosts API.
const LAST_MICROVERSION: u16 = 42;

/// 404 from 2.43; 403 for a caller who is not an admin.
fn guard(auth: &AuthContext, version: Microversion, rule: &str) -> ApiResult<()> {
    until_microversion(version, LAST_MICROVERSION)?;
    auth.require_admin(&format!("os_compute_api:os-hosts:{rule}"))
}

/// The compute service of `host`: 404 when there is none.
async fn compute_service(state: &AppState, host: &str) -> ApiResult<ServiceRow> {
    services::all(&state.db)
        .await?
        .into_iter()
        .find(|service| service.host == host && service.binary_name == COMPUTE_BINARY)
        .ok_or_else(|| ApiError::not_found(format!("Host {host} could not be found.")))
}

/// The hosts of the enabled services (in `zone` when given).
#[utoipa::path(get, path = "/v2.1/os-hosts", responses((status = OK, description = "Success", body = HostList), crate::fault::ApiError))]
async fn index(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    guard(&auth, version, "list")?;
    let pairs = parse_query(raw.as_deref());
    let zone = query_value(&pairs, "zone").filter(|zone| !zone.is_empty());
    let zones = zones_by_host(&state).await?;
    let hosts: Vec<Value> = services::all(&state.db)
        .await?
        .iter()
        .filter(|service| service.disabled == 0)
        .map(|service| {
            json!({
                "host_name": service.host,
                "service": service.binary_name.strip_prefix("nova-").unwrap_or(&service.binary_name),
                "zone": service_zone(&state, &zones, service),
            })
        })
        .filter(|host| zone.is_none_or(|zone| host["zone"] == zone))
        .collect();
    Ok(Json(json!({"hosts": hosts})))
}

/// One row of a host's resources.
fn resource(host: &str, project: &str, cpu: i64, memory_mb: i64, disk_gb: i64) -> Value {
    json!({"resource": {
        "host": host,
        "project": project,
        "cpu": cpu,
        "memory_mb": memory_mb,
        "disk_gb": disk_gb,
    }})
}

/// A host's resources: `(total)`, `(used_now)`, `(used_max)` (what its
/// instances' flavors take) and one row per project with instances there.
#[utoipa::path(get, path = "/v2.1/os-hosts/{host_name}", params(("host_name" = String, Path, description = "The host name")), responses((status = OK, description = "Success", body = HostResources), crate::fault::ApiError))]
async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(host): Path<String>,
) -> ApiResult<Json<Value>> {
    guard(&auth, version, "show")?;
    let node = nodes::all(&state.db)
        .await?
        .into_iter()
        .find(|node| node.host == host)
        .ok_or_else(|| ApiError::not_found(format!("Host '{host}' is not mapped to any cell")))?;
    let mut rows = vec![
        resource(&host, "(total)", node.vcpus, node.memory_mb, node.local_gb),
        resource(
            &host,
            "(used_now)",
            node.vcpus_used,
            node.memory_mb_used,
            node.local_gb_used,
        ),
    ];
    let mut used_max = (0, 0, 0);
    let mut by_project: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    for instance in instances::on_host(&state.db, &host).await? {
        let Ok(flavor) = instance.flavor() else {
            continue;
        };
        let taken = (
            flavor.vcpus,
            flavor.memory_mb,
            flavor.root_gb + flavor.ephemeral_gb,
        );
        for sum in [
            &mut used_max,
            by_project.entry(instance.project_id).or_default(),
        ] {
            sum.0 += taken.0;
            sum.1 += taken.1;
            sum.2 += taken.2;
        }
    }
    rows.push(resource(
        &host,
        "(used_max)",
        used_max.0,
        used_max.1,
        used_max.2,
    ));
    rows.extend(
        by_project
            .iter()
            .map(|(project, used)| resource(&host, project, used.0, used.1, used.2)),
    );
    Ok(Json(json!({"host": rows})))
}

/// `status` or `maintenance_mode` of an update: `enable`/`disable` in any of
/// the cases Nova's schema lists.
fn switch(body: &Map<String, Value>, key: &str) -> ApiResult<Option<bool>> {
    match body.get(key) {
        None => Ok(None),
        Some(Value::String(text))
            if [
                "enable", "Enable", "ENABLE", "disable", "Disable", "DISABLE",
            ]
            .contains(&text.as_str()) =>
        {
            Ok(Some(text.eq_ignore_ascii_case("enable")))
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {key}. Value: {other}. {other} is not one of ['enable', 'disable', 'Enable', 'Disable', 'ENABLE', 'DISABLE']"
        ))),
    }
}

/// Enabling or disabling a host, or its maintenance mode: validated as Nova
/// does, then 501 as Nova's libvirt driver answers (it implements neither).
#[utoipa::path(put, path = "/v2.1/os-hosts/{host_name}", params(("host_name" = String, Path, description = "The host name")), responses((status = NOT_IMPLEMENTED, description = "The hypervisor driver cannot do this"), crate::fault::ApiError))]
async fn update(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(host): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    guard(&auth, version, "update")?;
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute body. Value: {body}. {body} is not of type 'object'"
        )));
    };
    if let Some(key) = body
        .keys()
        .find(|key| *key != "status" && *key != "maintenance_mode")
    {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute body. Additional properties are not allowed ('{key}' was unexpected)"
        )));
    }
    let status = switch(&body, "status")?;
    let maintenance = switch(&body, "maintenance_mode")?;
    if status.is_none() && maintenance.is_none() {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute body. Value: {}. {} is not valid under any of the given schemas",
            Value::Object(body.clone()),
            Value::Object(body)
        )));
    }
    compute_service(&state, &host).await?;
    Err(ApiError::feature_not_supported())
}

/// A host power action: 404 for an unknown host, else 501 (the libvirt
/// driver has no host power actions).
async fn power_action(
    state: &AppState,
    auth: &AuthContext,
    version: Microversion,
    host: &str,
    rule: &str,
) -> ApiResult<Json<Value>> {
    guard(auth, version, rule)?;
    compute_service(state, host).await?;
    Err(ApiError::feature_not_supported())
}

#[utoipa::path(get, path = "/v2.1/os-hosts/{host_name}/startup", params(("host_name" = String, Path, description = "The host name")), responses((status = NOT_IMPLEMENTED, description = "The hypervisor driver cannot do this"), crate::fault::ApiError))]
async fn startup(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(host): Path<String>,
) -> ApiResult<Json<Value>> {
    power_action(&state, &auth, version, &host, "start").await
}

#[utoipa::path(get, path = "/v2.1/os-hosts/{host_name}/shutdown", params(("host_name" = String, Path, description = "The host name")), responses((status = NOT_IMPLEMENTED, description = "The hypervisor driver cannot do this"), crate::fault::ApiError))]
async fn shutdown(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(host): Path<String>,
) -> ApiResult<Json<Value>> {
    power_action(&state, &auth, version, &host, "shutdown").await
}

#[utoipa::path(get, path = "/v2.1/os-hosts/{host_name}/reboot", params(("host_name" = String, Path, description = "The host name")), responses((status = NOT_IMPLEMENTED, description = "The hypervisor driver cannot do this"), crate::fault::ApiError))]
async fn reboot(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(host): Path<String>,
) -> ApiResult<Json<Value>> {
    power_action(&state, &auth, version, &host, "reboot").await
}

crate::envelope!(
    /// `{"hosts": […]}`
    HostList, "hosts", Array
);

crate::envelope!(
    /// `{"host": [{"resource": …}, …]}`
    HostResources, "host", Array
);

/// The hosts routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(show, update))
        .routes(routes!(startup))
        .routes(routes!(shutdown))
        .routes(routes!(reboot))
}
