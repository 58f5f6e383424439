//! The `compute_nodes` table: one node per compute host, its inventory (as
//! its agent reports it) and what the instances on it use.

use crate::db::{Db, DbError};

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
}

/// Every compute node, ordered by id.
pub async fn all(db: &Db) -> Result<Vec<ComputeNode>, DbError> {
    Ok(sqlx::query_as::<_, ComputeNode>(
        "SELECT id, uuid, service_id, host, hypervisor_hostname, vcpus, memory_mb, local_gb, vcpus_used, \
         memory_mb_used, local_gb_used, running_vms, num_io_ops, hypervisor_type, hypervisor_version, cpu_info, host_ip \
         FROM compute_nodes ORDER BY id",
    )
    .fetch_all(db.pool())
    .await?)
}
