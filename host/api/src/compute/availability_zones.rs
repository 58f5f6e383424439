//! Availability zones (`/v2.1/os-availability-zone`, `/detail`): the zones
//! of the compute services (a host's zone comes from its aggregates'
//! `availability_zone` metadata, else `[compute] default_availability_zone`).
//! A zone is available while one of its services is enabled. The list is
//! open to readers; `detail` (hosts and their service state) is admin only.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::common::api_time_micros;
use super::services::{service_zone, zones_by_host};
use crate::AppState;
use crate::auth::AuthContext;
use crate::fault::ApiResult;
use novum_compute::store::services::{self, ServiceRow};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Zone name → its services, and the names of the zones with an enabled one.
async fn zones(state: &AppState) -> ApiResult<BTreeMap<String, Vec<ServiceRow>>> {
    let by_host = zones_by_host(state).await?;
    let mut zones: BTreeMap<String, Vec<ServiceRow>> = BTreeMap::new();
    for service in services::all(&state.db).await? {
        zones
            .entry(service_zone(state, &by_host, &service))
            .or_default()
            .push(service);
    }
    Ok(zones)
}

fn available(services: &[ServiceRow]) -> bool {
    services.iter().any(|service| service.disabled == 0)
}

/// Any authenticated caller may list zones (Nova's policy: `@`).
#[utoipa::path(get, path = "/v2.1/os-availability-zone", responses((status = OK, description = "Success", body = AvailabilityZoneInfo), crate::fault::ApiError))]
async fn index(State(state): State<AppState>, _auth: AuthContext) -> ApiResult<Json<Value>> {
    let info: Vec<Value> = zones(&state)
        .await?
        .iter()
        // Nova leaves the internal zone (controller services) out of this list.
        .filter(|(name, _)| name.as_str() != "internal")
        .map(|(name, services)| {
            json!({
                "zoneName": name,
                "zoneState": {"available": available(services)},
                "hosts": null,
            })
        })
        .collect();
    Ok(Json(json!({"availabilityZoneInfo": info})))
}

#[utoipa::path(get, path = "/v2.1/os-availability-zone/detail", responses((status = OK, description = "Success", body = AvailabilityZoneInfo), crate::fault::ApiError))]
async fn detail(State(state): State<AppState>, auth: AuthContext) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-availability-zone:detail")?;
    let info: Vec<Value> = zones(&state)
        .await?
        .iter()
        .map(|(name, services)| {
            let mut hosts: BTreeMap<&str, BTreeMap<&str, Value>> = BTreeMap::new();
            for service in services {
                hosts.entry(&service.host).or_default().insert(
                    &service.binary_name,
                    json!({
                        "available": service.is_up(state.config.compute.service_down_time),
                        "active": service.disabled == 0,
                        "updated_at": service.updated_at.as_deref().map(api_time_micros),
                    }),
                );
            }
            json!({
                "zoneName": name,
                "zoneState": {"available": available(services)},
                "hosts": hosts,
            })
        })
        .collect();
    Ok(Json(json!({"availabilityZoneInfo": info})))
}

crate::envelope!(
    /// `{"availabilityZoneInfo": …}`
    AvailabilityZoneInfo, "availabilityZoneInfo", Array
);

/// The availability zone routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(detail))
}
