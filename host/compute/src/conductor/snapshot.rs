//! Loads the scheduler's view of the cloud ([`CloudSnapshot`]) from the
//! database: compute nodes with their service, aggregates and zones, and the
//! instances on each host.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use sqlx::Row;
use sqlx::any::AnyRow;

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

/// Placeholders `$first..` for `count` values of an `IN (…)` list.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Hosts per `IN (…)` list: well under every engine's bind limit.
const HOSTS_PER_QUERY: usize = 500;

/// The instances on each host (every host, or only `only`).
async fn instances_on_hosts(
    db: &Db,
    only: Option<&[String]>,
) -> Result<HashMap<String, Vec<InstanceOnHost>>, DbError> {
    const COLUMNS: &str = "SELECT uuid, host, server_group, image_properties FROM instances \
                           WHERE deleted = 0 AND host IS NOT NULL";
    let mut on_host: HashMap<String, Vec<InstanceOnHost>> = HashMap::new();
    for_each_row(
        db,
        only,
        COLUMNS.to_string(),
        |chunk| format!("{COLUMNS} AND host IN ({})", placeholders(1, chunk)),
        |row| {
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
            Ok(())
        },
    )
    .await?;
    Ok(on_host)
}

/// Runs `every` (or, for only the hosts `only`, `some` with as many
/// placeholders as a chunk of [`HOSTS_PER_QUERY`] host names, bound in
/// order) and hands each row to `each` as it arrives: the rows are
/// streamed, never all held at once (a resync at 10,000 hosts would hold
/// tens of MiB of them).
async fn for_each_row(
    db: &Db,
    only: Option<&[String]>,
    every: String,
    some: impl Fn(usize) -> String,
    mut each: impl FnMut(AnyRow) -> Result<(), DbError>,
) -> Result<(), DbError> {
    let chunks: Vec<(String, &[String])> = match only {
        None => vec![(every, &[])],
        Some(hosts) => hosts
            .chunks(HOSTS_PER_QUERY)
            .map(|chunk| (some(chunk.len()), chunk))
            .collect(),
    };
    for (sql, hosts) in chunks {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for host in hosts {
            query = query.bind(host);
        }
        let mut rows = query.fetch(db.pool());
        while let Some(row) = rows.try_next().await? {
            each(row)?;
        }
    }
    Ok(())
}

/// What places a host in zones and aggregates: the aggregates with their
/// members, each host's zone, and the zone of hosts in none.
pub struct Membership<'a> {
    /// Every aggregate with its hosts.
    aggregates: &'a [(Aggregate, Vec<String>)],
    /// The zone of every host in a zone aggregate.
    zones: HashMap<String, String>,
    /// The zone of the others.
    default_zone: &'a str,
}

impl<'a> Membership<'a> {
    /// The membership `aggregates` make, hosts in no zone in `default_zone`.
    pub fn new(aggregates: &'a [(Aggregate, Vec<String>)], default_zone: &'a str) -> Self {
        Self {
            aggregates,
            zones: host_zones(aggregates),
            default_zone,
        }
    }

    /// The availability zone of `host`.
    pub fn zone_of(&self, host: &str) -> String {
        self.zones
            .get(host)
            .cloned()
            .unwrap_or_else(|| self.default_zone.to_string())
    }

    /// The ids of the aggregates `host` is in.
    pub fn aggregates_of(&self, host: &str) -> Vec<u32> {
        self.aggregates
            .iter()
            .filter(|(_, members)| members.iter().any(|member| member == host))
            .map(|(aggregate, _)| aggregate.id)
            .collect()
    }
}

/// A host as the scheduler sees it, with its liveness inputs.
pub struct LoadedHost {
    /// The host's state.
    pub state: HostState,
    /// When its service last reported (RFC 3339).
    pub last_seen_up: Option<String>,
    /// Whether its service is forced down.
    pub forced_down: bool,
}

/// The compute hosts (every one, or only `only`), with their instances, as
/// the scheduler sees them now.
pub async fn load_hosts(
    db: &Db,
    membership: &Membership<'_>,
    down_time_seconds: u64,
    only: Option<&[String]>,
) -> Result<Vec<LoadedHost>, DbError> {
    const NODES: &str = "SELECT n.*, s.disabled, s.forced_down, s.last_seen_up FROM compute_nodes n \
                         JOIN services s ON s.id = n.service_id";
    let mut on_host = instances_on_hosts(db, only).await?;
    let mut hosts = Vec::with_capacity(only.map_or(0, <[String]>::len));
    for_each_row(
        db,
        only,
        format!("{NODES} ORDER BY n.host"),
        |chunk| {
            format!(
                "{NODES} WHERE n.host IN ({}) ORDER BY n.host",
                placeholders(1, chunk)
            )
        },
        |row| {
            let name: String = row.try_get("host")?;
            let cpu_info: serde_json::Value =
                serde_json::from_str(&row.try_get::<String, _>("cpu_info")?).unwrap_or_default();
            let supported: Vec<novum_wire::SupportedInstance> =
                serde_json::from_str(&row.try_get::<String, _>("supported_instances")?)
                    .unwrap_or_default();
            let metrics: Vec<(String, f64)> =
                serde_json::from_str(&row.try_get::<String, _>("metrics")?).unwrap_or_default();
            let last_seen_up: Option<String> = row.try_get("last_seen_up")?;
            let forced_down = row.try_get::<i64, _>("forced_down")? != 0;
            let reserved: i64 = row.try_get("reserved_host_memory_mb")?;
            let state = HostState {
                uuid: row.try_get("uuid")?,
                availability_zone: membership.zone_of(&name),
                aggregates: membership.aggregates_of(&name),
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
                service_up: service_is_up(last_seen_up.as_deref(), forced_down, down_time_seconds),
                service_disabled: row.try_get::<i64, _>("disabled")? != 0,
                host_ip: row
                    .try_get::<Option<String>, _>("host_ip")?
                    .unwrap_or_default(),
                instances: on_host.remove(&name).unwrap_or_default(),
                name,
            };
            hosts.push(LoadedHost {
                state,
                last_seen_up,
                forced_down,
            });
            Ok(())
        },
    )
    .await?;
    Ok(hosts)
}

/// The cloud as the scheduler sees it now, read whole from the database
/// (the scheduler itself keeps it in memory: see `host_state`).
pub async fn load(
    db: &Db,
    default_zone: &str,
    down_time_seconds: u64,
) -> Result<CloudSnapshot, DbError> {
    let aggregates = aggregates(db).await?;
    let membership = Membership::new(&aggregates, default_zone);
    let hosts = load_hosts(db, &membership, down_time_seconds, None).await?;
    Ok(CloudSnapshot::new(
        hosts.into_iter().map(|host| host.state).collect(),
        aggregates
            .into_iter()
            .map(|(aggregate, _)| aggregate)
            .collect(),
    ))
}
