//! The `compute_nodes` table: one node per compute host, its inventory (as
//! its agent reports it) and what the instances on it use.

use novum_wire::Inventory;
use sqlx::Row;
use uuid::Uuid;

use super::services::{COMPUTE_BINARY, service_payload};
use crate::conductor;
use crate::config::ComputeConfig;
use novum_db::{self as db, Db, DbError, Tx};
use novum_notify::{Publisher, builders, emit};

/// A `compute_nodes` row, as the hypervisor views show it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ComputeNode {
    /// Integer id (the API id before 2.53).
    pub id: i64,
    /// Uuid (the API id from 2.53).
    pub uuid: String,
    /// The `services` row of its host.
    pub service_id: i64,
    /// Host name.
    pub host: String,
    /// The hypervisor's own name for itself.
    pub hypervisor_hostname: String,
    /// Virtual CPUs.
    pub vcpus: i64,
    /// Memory, MiB.
    pub memory_mb: i64,
    /// Disk, GiB.
    pub local_gb: i64,
    /// Virtual CPUs in use.
    pub vcpus_used: i64,
    /// Memory in use, MiB.
    pub memory_mb_used: i64,
    /// Disk in use, GiB.
    pub local_gb_used: i64,
    /// Instances running on it.
    pub running_vms: i64,
    /// Operations in progress (Nova's `current_workload`).
    pub num_io_ops: i64,
    /// Hypervisor type (`QEMU`, …).
    pub hypervisor_type: String,
    /// Hypervisor version, Nova's integer encoding.
    pub hypervisor_version: i64,
    /// CPU description, JSON text.
    pub cpu_info: String,
    /// The host's IP address.
    pub host_ip: Option<String>,
    /// What `uptime` said on the host at its last heartbeat.
    pub uptime: Option<String>,
}

/// Every compute node, ordered by id.
pub async fn all(db: &Db) -> Result<Vec<ComputeNode>, DbError> {
    Ok(sqlx::query_as::<_, ComputeNode>(
        "SELECT id, uuid, service_id, host, hypervisor_hostname, vcpus, memory_mb, local_gb, vcpus_used, \
         memory_mb_used, local_gb_used, running_vms, num_io_ops, hypervisor_type, hypervisor_version, cpu_info, host_ip, \
         uptime FROM compute_nodes ORDER BY id",
    )
    .fetch_all(db.pool())
    .await?)
}

/// The columns of a [`ComputeNode`].
const NODE_COLUMNS: &str = "compute_nodes.id, compute_nodes.uuid, compute_nodes.service_id, compute_nodes.host, \
     hypervisor_hostname, vcpus, memory_mb, local_gb, vcpus_used, memory_mb_used, local_gb_used, running_vms, num_io_ops, \
     hypervisor_type, hypervisor_version, cpu_info, host_ip, uptime";

/// Which compute node a lookup names: the API's integer id (before 2.53)
/// or uuid.
#[derive(Clone, Copy, Debug)]
pub enum NodeKey<'a> {
    /// The integer id.
    Id(i64),
    /// The uuid.
    Uuid(&'a str),
}

/// The compute node `key` names, when it exists and its service does.
pub async fn find(db: &Db, key: NodeKey<'_>) -> Result<Option<ComputeNode>, DbError> {
    let (condition, text, id) = match key {
        NodeKey::Id(id) => ("compute_nodes.id = $1", None, Some(id)),
        NodeKey::Uuid(uuid) => ("compute_nodes.uuid = $1", Some(uuid), None),
    };
    let sql = format!(
        "SELECT {NODE_COLUMNS} FROM compute_nodes JOIN services ON services.id = compute_nodes.service_id \
         WHERE {condition}"
    );
    let query = sqlx::query_as::<_, ComputeNode>(sqlx::AssertSqlSafe(sql));
    let query = match (text, id) {
        (Some(text), _) => query.bind(text),
        (None, id) => query.bind(id.unwrap_or_default()),
    };
    Ok(query.fetch_optional(db.pool()).await?)
}

/// At most `limit` compute nodes whose service exists, by id, after node
/// id `after`.
pub async fn page(db: &Db, after: Option<i64>, limit: usize) -> Result<Vec<ComputeNode>, DbError> {
    let sql = format!(
        "SELECT {NODE_COLUMNS} FROM compute_nodes JOIN services ON services.id = compute_nodes.service_id \
         WHERE compute_nodes.id > $1 ORDER BY compute_nodes.id LIMIT $2"
    );
    Ok(sqlx::query_as::<_, ComputeNode>(sqlx::AssertSqlSafe(sql))
        .bind(after.unwrap_or(i64::MIN))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(db.pool())
        .await?)
}

/// Sums over the compute nodes of enabled compute services (Nova's
/// `compute_node_statistics`).
#[derive(Clone, Debug, Default, sqlx::FromRow)]
pub struct NodeStatistics {
    /// Nodes counted.
    pub count: i64,
    /// Virtual CPUs.
    pub vcpus: i64,
    /// Memory, MiB.
    pub memory_mb: i64,
    /// Disk, GiB.
    pub local_gb: i64,
    /// Virtual CPUs in use.
    pub vcpus_used: i64,
    /// Memory in use, MiB.
    pub memory_mb_used: i64,
    /// Disk in use, GiB.
    pub local_gb_used: i64,
    /// Free memory, MiB.
    pub free_ram_mb: i64,
    /// Free disk, GiB.
    pub free_disk_gb: i64,
    /// Operations in progress.
    pub current_workload: i64,
    /// Instances running.
    pub running_vms: i64,
}

/// The hypervisor statistics, in one aggregate query: the compute nodes
/// whose compute service is not disabled, as Nova counts them.
pub async fn statistics(db: &Db) -> Result<NodeStatistics, DbError> {
    let sum = |expression: &str, name: &str| {
        format!("CAST(COALESCE(SUM({expression}), 0) AS BIGINT) AS {name}")
    };
    let sql = format!(
        "SELECT COUNT(*) AS count, {}, {}, {}, {}, {}, {}, {}, {}, {}, {} \
         FROM compute_nodes JOIN services ON services.id = compute_nodes.service_id \
         WHERE services.disabled = 0 AND services.binary_name = $1",
        sum("compute_nodes.vcpus", "vcpus"),
        sum("compute_nodes.memory_mb", "memory_mb"),
        sum("compute_nodes.local_gb", "local_gb"),
        sum("compute_nodes.vcpus_used", "vcpus_used"),
        sum("compute_nodes.memory_mb_used", "memory_mb_used"),
        sum("compute_nodes.local_gb_used", "local_gb_used"),
        sum(
            "compute_nodes.memory_mb - compute_nodes.memory_mb_used",
            "free_ram_mb"
        ),
        sum(
            "compute_nodes.local_gb - compute_nodes.local_gb_used",
            "free_disk_gb"
        ),
        sum("compute_nodes.num_io_ops", "current_workload"),
        sum("compute_nodes.running_vms", "running_vms"),
    );
    Ok(
        sqlx::query_as::<_, NodeStatistics>(sqlx::AssertSqlSafe(sql))
            .bind(COMPUTE_BINARY)
            .fetch_one(db.pool())
            .await?,
    )
}

/// Creates or refreshes the service and compute node rows of `host`; a new
/// service is notified (`service.create`, in `tx`).
pub async fn upsert_host(
    tx: &mut Tx,
    config: &ComputeConfig,
    host: &str,
    inventory: &Inventory,
    version: Option<&str>,
) -> conductor::Result<()> {
    let now = db::now();
    let service = sqlx::query("SELECT id FROM services WHERE host = $1 AND binary_name = $2")
        .bind(host)
        .bind(COMPUTE_BINARY)
        .fetch_optional(&mut **tx)
        .await?;
    let service_id = match service {
        Some(row) => {
            let id: i64 = row.try_get("id")?;
            sqlx::query("UPDATE services SET last_seen_up = $1, updated_at = $1, version = COALESCE($2, version) WHERE id = $3")
                .bind(&now)
                .bind(version)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            id
        }
        None => {
            let id = db::insert_returning_id(
                tx,
                sqlx::query(
                    "INSERT INTO services (uuid, host, binary_name, topic, last_seen_up, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'compute', $4, $5, $4, $4) RETURNING id",
                )
                .bind(Uuid::new_v4().to_string())
                .bind(host)
                .bind(COMPUTE_BINARY)
                .bind(&now)
                .bind(version),
            )
            .await?;
            if let Some(payload) = service_payload(tx, config, id).await? {
                let notification = builders::service(&Publisher::compute(host), payload, "create");
                emit(tx, &notification).await?;
            }
            id
        }
    };
    let cpu_info = serde_json::to_string(&inventory.cpu_info).unwrap_or_else(|_| "{}".to_string());
    let supported =
        serde_json::to_string(&inventory.supported_instances).unwrap_or_else(|_| "[]".to_string());
    let updated = sqlx::query(
        "UPDATE compute_nodes SET hypervisor_hostname = $1, vcpus = $2, memory_mb = $3, local_gb = $4, hypervisor_type = $5, \
         hypervisor_version = $6, cpu_info = $7, host_ip = $8, supported_instances = $9, updated_at = $10, uptime = $12 \
         WHERE host = $11",
    )
    .bind(&inventory.hypervisor_hostname)
    .bind(i64::from(inventory.vcpus))
    .bind(inventory.memory_mb as i64)
    .bind(inventory.disk_gb as i64)
    .bind(&inventory.hypervisor_type)
    .bind(inventory.hypervisor_version as i64)
    .bind(&cpu_info)
    .bind(&inventory.host_ip)
    .bind(&supported)
    .bind(&now)
    .bind(host)
    .bind(&inventory.uptime)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if updated == 0 {
        db::insert_returning_id(
            tx,
            sqlx::query(
                "INSERT INTO compute_nodes (uuid, service_id, host, hypervisor_hostname, vcpus, memory_mb, local_gb, \
                 cpu_allocation_ratio, ram_allocation_ratio, disk_allocation_ratio, reserved_host_memory_mb, hypervisor_type, \
                 hypervisor_version, cpu_info, host_ip, supported_instances, created_at, updated_at, uptime) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17, $18) RETURNING id",
            )
            .bind(Uuid::new_v4().to_string())
            .bind(service_id)
            .bind(host)
            .bind(&inventory.hypervisor_hostname)
            .bind(i64::from(inventory.vcpus))
            .bind(inventory.memory_mb as i64)
            .bind(inventory.disk_gb as i64)
            .bind(config.cpu_allocation_ratio)
            .bind(config.ram_allocation_ratio)
            .bind(config.disk_allocation_ratio)
            .bind(config.reserved_host_memory_mb)
            .bind(&inventory.hypervisor_type)
            .bind(inventory.hypervisor_version as i64)
            .bind(&cpu_info)
            .bind(&inventory.host_ip)
            .bind(&supported)
            .bind(&now)
            .bind(&inventory.uptime),
        )
        .await?;
    }
    Ok(())
}
