//! Loads the scheduler's view of the cloud ([`CloudSnapshot`]) from the
//! database: compute nodes with their service, aggregates and zones, and the
//! instances on each host.

use std::collections::HashMap;

use sqlx::Row;

use novum_db::{Db, DbError};
use novum_scheduler::{Aggregate, CloudSnapshot, HostState, InstanceOnHost};

/// Whether a service last seen at `last_seen_up` is up now.
pub fn service_is_up(
    last_seen_up: Option<&str>,
    forced_down: bool,
    down_time_seconds: u64,
) -> bool {
    if forced_down {
        return false;
    }
    let Some(seen) = last_seen_up.and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
    else {
        return false;
    };
    let age = chrono::Utc::now().signed_duration_since(seen.with_timezone(&chrono::Utc));
    age.num_seconds() <= down_time_seconds as i64
}

/// Every aggregate with its metadata and hosts.
pub async fn aggregates(db: &Db) -> Result<Vec<(Aggregate, Vec<String>)>, DbError> {
    let rows = sqlx::query("SELECT id, name FROM aggregates ORDER BY id")
        .fetch_all(db.pool())
        .await?;
    let metadata =
        sqlx::query("SELECT aggregate_id, key, value FROM aggregate_metadata ORDER BY key")
            .fetch_all(db.pool())
            .await?;
    let hosts = sqlx::query("SELECT aggregate_id, host FROM aggregate_hosts ORDER BY host")
        .fetch_all(db.pool())
        .await?;
    let mut result = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get("id")?;
        let mut aggregate = Aggregate {
            id: id as u32,
            name: row.try_get("name")?,
            metadata: Vec::new(),
        };
        for meta in &metadata {
            if meta.try_get::<i64, _>("aggregate_id")? == id {
                aggregate
                    .metadata
                    .push((meta.try_get("key")?, meta.try_get("value")?));
            }
        }
        let mut members = Vec::new();
        for host in &hosts {
            if host.try_get::<i64, _>("aggregate_id")? == id {
                members.push(host.try_get("host")?);
            }
        }
        result.push((aggregate, members));
    }
    Ok(result)
}

/// The availability zone of every host in a zone aggregate (others are in
/// the default zone).
pub fn host_zones(aggregates: &[(Aggregate, Vec<String>)]) -> HashMap<String, String> {
    let mut zones = HashMap::new();
    for (aggregate, hosts) in aggregates {
        if let Some(zone) = aggregate.metadata("availability_zone") {
            for host in hosts {
                zones
                    .entry(host.clone())
                    .or_insert_with(|| zone.to_string());
            }
        }
    }
    zones
}

/// The cloud as the scheduler sees it now.
pub async fn load(
    db: &Db,
    default_zone: &str,
    down_time_seconds: u64,
) -> Result<CloudSnapshot, DbError> {
    let aggregates = aggregates(db).await?;
    let zones = host_zones(&aggregates);
    let nodes = sqlx::query(
        "SELECT n.*, s.disabled, s.forced_down, s.last_seen_up FROM compute_nodes n \
         JOIN services s ON s.id = n.service_id ORDER BY n.host",
    )
    .fetch_all(db.pool())
    .await?;
    let instances = sqlx::query(
        "SELECT uuid, host, server_group, image_properties FROM instances WHERE deleted = 0 AND host IS NOT NULL",
    )
    .fetch_all(db.pool())
    .await?;
    let mut on_host: HashMap<String, Vec<InstanceOnHost>> = HashMap::new();
    for row in instances {
        let properties: std::collections::BTreeMap<String, String> =
            serde_json::from_str(&row.try_get::<String, _>("image_properties")?)
                .unwrap_or_default();
        on_host
            .entry(row.try_get("host")?)
            .or_default()
            .push(InstanceOnHost {
                uuid: row.try_get("uuid")?,
                server_group: row.try_get("server_group")?,
                image_properties: properties.into_iter().collect(),
            });
    }
    let mut hosts = Vec::with_capacity(nodes.len());
    for row in nodes {
        let name: String = row.try_get("host")?;
        let cpu_info: serde_json::Value =
            serde_json::from_str(&row.try_get::<String, _>("cpu_info")?).unwrap_or_default();
        let supported: Vec<novum_wire::SupportedInstance> =
            serde_json::from_str(&row.try_get::<String, _>("supported_instances")?)
                .unwrap_or_default();
        let metrics: Vec<(String, f64)> =
            serde_json::from_str(&row.try_get::<String, _>("metrics")?).unwrap_or_default();
        let last_seen: Option<String> = row.try_get("last_seen_up")?;
        let reserved: i64 = row.try_get("reserved_host_memory_mb")?;
        hosts.push(HostState {
            uuid: row.try_get("uuid")?,
            availability_zone: zones
                .get(&name)
                .cloned()
                .unwrap_or_else(|| default_zone.to_string()),
            aggregates: aggregates
                .iter()
                .filter(|(_, members)| members.contains(&name))
                .map(|(aggregate, _)| aggregate.id)
                .collect(),
            memory_total_mb: row.try_get::<i64, _>("memory_mb")? - reserved,
            memory_used_mb: row.try_get("memory_mb_used")?,
            disk_total_mb: row.try_get::<i64, _>("local_gb")? * 1024,
            disk_used_mb: row.try_get::<i64, _>("local_gb_used")? * 1024,
            vcpus_total: row.try_get::<i64, _>("vcpus")? as u32,
            vcpus_used: row.try_get::<i64, _>("vcpus_used")? as u32,
            cpu_allocation_ratio: row.try_get("cpu_allocation_ratio")?,
            ram_allocation_ratio: row.try_get("ram_allocation_ratio")?,
            disk_allocation_ratio: row.try_get("disk_allocation_ratio")?,
            num_instances: row.try_get::<i64, _>("running_vms")? as u32,
            num_io_ops: row.try_get::<i64, _>("num_io_ops")? as u32,
            failed_builds: row.try_get::<i64, _>("failed_builds")? as u32,
            hypervisor_type: row.try_get("hypervisor_type")?,
            hypervisor_version: row.try_get::<i64, _>("hypervisor_version")? as u64,
            cpu_arch: cpu_info["arch"].as_str().unwrap_or_default().to_string(),
            cpu_features: cpu_info["features"]
                .as_array()
                .map(|features| {
                    features
                        .iter()
                        .filter_map(|f| f.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            supported_instances: supported
                .into_iter()
                .map(|triple| (triple.arch, triple.hv_type, triple.vm_mode))
                .collect(),
            metrics,
            service_up: service_is_up(
                last_seen.as_deref(),
                row.try_get::<i64, _>("forced_down")? != 0,
                down_time_seconds,
            ),
            service_disabled: row.try_get::<i64, _>("disabled")? != 0,
            host_ip: row
                .try_get::<Option<String>, _>("host_ip")?
                .unwrap_or_default(),
            instances: on_host.remove(&name).unwrap_or_default(),
            name,
        });
    }
    Ok(CloudSnapshot::new(
        hosts,
        aggregates
            .into_iter()
            .map(|(aggregate, _)| aggregate)
            .collect(),
    ))
}
