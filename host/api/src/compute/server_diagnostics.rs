//! `GET /servers/{id}/diagnostics` (admin): what libvirt says of a running
//! guest, read by its host's agent, in Nova's two shapes — the libvirt
//! driver's flat keys before 2.48 (`cpu0_time`, `vda_read`, `memory`, …)
//! and the standardized document from 2.48.

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::servers::fetch_visible;
use crate::AppState;
use crate::auth::AuthContext;
use crate::extract::Path;
use crate::fault::ApiResult;
use crate::microversion::Microversion;
use crate::request_id::RequestId;
use novum_compute::conductor::model::Instance;
use novum_wire::GuestDiagnostics;

/// The microversion of the standardized format.
const STANDARDIZED_SINCE: u16 = 48;

/// The libvirt driver's `get_diagnostics` keys (before 2.48).
fn libvirt_view(diagnostics: &GuestDiagnostics) -> Value {
    let mut view = Map::new();
    for cpu in &diagnostics.cpus {
        view.insert(format!("cpu{}_time", cpu.id), json!(cpu.time_ns));
    }
    for disk in &diagnostics.disks {
        let device = &disk.device;
        view.insert(format!("{device}_read_req"), json!(disk.read_requests));
        view.insert(format!("{device}_read"), json!(disk.read_bytes));
        view.insert(format!("{device}_write_req"), json!(disk.write_requests));
        view.insert(format!("{device}_write"), json!(disk.write_bytes));
        view.insert(format!("{device}_errors"), json!(disk.errors));
    }
    for nic in &diagnostics.nics {
        let (Some(device), Some(stats)) = (&nic.device, &nic.stats) else {
            continue;
        };
        view.insert(format!("{device}_rx"), json!(stats.rx_bytes));
        view.insert(format!("{device}_rx_packets"), json!(stats.rx_packets));
        view.insert(format!("{device}_rx_errors"), json!(stats.rx_errors));
        view.insert(format!("{device}_rx_drop"), json!(stats.rx_drop));
        view.insert(format!("{device}_tx"), json!(stats.tx_bytes));
        view.insert(format!("{device}_tx_packets"), json!(stats.tx_packets));
        view.insert(format!("{device}_tx_errors"), json!(stats.tx_errors));
        view.insert(format!("{device}_tx_drop"), json!(stats.tx_drop));
    }
    view.insert("memory".to_string(), json!(diagnostics.max_memory_kib));
    for (name, value) in &diagnostics.memory_stats {
        view.insert(format!("memory-{name}"), json!(value));
    }
    Value::Object(view)
}

/// Seconds since `launched_at` (Nova's libvirt `uptime`); `None` when the
/// instance never launched.
fn uptime(instance: &Instance) -> Option<i64> {
    let launched = chrono::DateTime::parse_from_rfc3339(instance.launched_at.as_deref()?).ok()?;
    Some((chrono::Utc::now() - launched.with_timezone(&chrono::Utc)).num_seconds())
}

/// Nova's standardized diagnostics (2.48, `views/server_diagnostics.py`).
/// Memory is in MiB, as the API reference documents it.
fn standardized_view(instance: &Instance, diagnostics: &GuestDiagnostics) -> Value {
    let nic_details: Vec<Value> = diagnostics
        .nics
        .iter()
        .map(|nic| {
            let stats = nic.stats.as_ref();
            json!({
                "mac_address": nic.mac_address,
                "rx_octets": stats.map(|s| s.rx_bytes),
                "rx_errors": stats.map(|s| s.rx_errors),
                "rx_drop": stats.map(|s| s.rx_drop),
                "rx_packets": stats.map(|s| s.rx_packets),
                "rx_rate": null,
                "tx_octets": stats.map(|s| s.tx_bytes),
                "tx_errors": stats.map(|s| s.tx_errors),
                "tx_drop": stats.map(|s| s.tx_drop),
                "tx_packets": stats.map(|s| s.tx_packets),
                "tx_rate": null,
            })
        })
        .collect();
    let disk_details: Vec<Value> = diagnostics
        .disks
        .iter()
        .map(|disk| {
            json!({
                "read_bytes": disk.read_bytes,
                "read_requests": disk.read_requests,
                "write_bytes": disk.write_bytes,
                "write_requests": disk.write_requests,
                "errors_count": disk.errors,
            })
        })
        .collect();
    let cpu_details: Vec<Value> = diagnostics
        .cpus
        .iter()
        .map(|cpu| json!({"id": cpu.id, "time": cpu.time_ns, "utilisation": null}))
        .collect();
    json!({
        "state": novum_notify::builders::power_state_name(i64::from(u8::from(
            diagnostics.power_state
        ))),
        "driver": "libvirt",
        "hypervisor": diagnostics.hypervisor,
        "hypervisor_os": "linux",
        "uptime": uptime(instance),
        "config_drive": !instance.config_drive.is_empty(),
        "num_cpus": cpu_details.len(),
        "num_nics": nic_details.len(),
        "num_disks": disk_details.len(),
        "memory_details": {
            "maximum": diagnostics.max_memory_kib / 1024,
            "used": diagnostics.memory_kib / 1024,
        },
        "cpu_details": cpu_details,
        "nic_details": nic_details,
        "disk_details": disk_details,
    })
}

#[utoipa::path(get, path = "/v2.1/servers/{id}/diagnostics", params(("id" = String, Path, description = "The server UUID")), responses((status = OK, description = "The running guest's diagnostics (the standardized format from 2.48)", body = Object), crate::fault::ApiError))]
async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let instance = fetch_visible(&state, &auth, &id).await?;
    auth.require_admin("os_compute_api:os-server-diagnostics")?;
    let diagnostics = state
        .conductor
        .diagnostics(&instance, &request_id.0)
        .await?;
    Ok(Json(if version.at_least(STANDARDIZED_SINCE) {
        standardized_view(&instance, &diagnostics)
    } else {
        libvirt_view(&diagnostics)
    }))
}

/// The diagnostics route.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show))
}
