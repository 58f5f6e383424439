//! Claims: an instance's resources taken from a compute node, atomically.
//!
//! A claim is one conditional `UPDATE … WHERE <capacity holds>` (the usage
//! bumped, the node's generation with it) in the same transaction as the
//! allocation row: two claimers racing for the last slot cannot both win,
//! since the second `UPDATE` sees the first's usage (SQLite: one writer;
//! PostgreSQL: the row lock, then the condition re-checked on the row as
//! the first left it). The node is read only when the `UPDATE` took
//! nothing, to say why. Claims on one node also serialize on a per-node
//! lock, so a burst of builds queues instead of piling up on the row (Nova
//! bug 1716706).

use sqlx::Row;

use novum_db::{self as db, Batch, Db, DbError, StatementRows, Tx};
use novum_scheduler::resource_shortage;

/// What an instance takes from a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resources {
    /// vCPUs.
    pub vcpus: i64,
    /// Memory, MiB.
    pub memory_mb: i64,
    /// Disk, GiB.
    pub disk_gb: i64,
}

/// The answer of [`claim`].
#[derive(Debug)]
pub enum Claim {
    /// The resources are taken; the transaction holding the claim (and the
    /// node's claim lock) is still open, for the caller's own writes.
    Won {
        /// The open transaction.
        tx: Tx,
        /// The node's hypervisor hostname (what an instance on it records
        /// as its `node`), read by the claim itself.
        hypervisor_hostname: String,
        /// What the statements sent with the claim did, in their order.
        then: Vec<StatementRows>,
    },
    /// The node cannot hold the request (why, for the logs).
    NoRoom(String),
    /// The node does not exist (any more).
    NoNode,
}

impl Claim {
    /// The open transaction when the claim was won.
    pub fn won(self) -> Option<Tx> {
        match self {
            Self::Won { tx, .. } => Some(tx),
            Self::NoRoom(_) | Self::NoNode => None,
        }
    }
}

/// Why node `node_uuid` cannot take `wanted`: `None` when the node is
/// gone, `Some(None)` when (now) it could.
async fn shortage_of(
    tx: &mut Tx,
    node_uuid: &str,
    wanted: Resources,
) -> Result<Option<Option<String>>, DbError> {
    let row = sqlx::query(
        "SELECT vcpus, memory_mb, local_gb, vcpus_used, memory_mb_used, local_gb_used, \
         cpu_allocation_ratio, ram_allocation_ratio, disk_allocation_ratio, reserved_host_memory_mb \
         FROM compute_nodes WHERE uuid = $1",
    )
    .bind(node_uuid)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let reserved: i64 = row.try_get("reserved_host_memory_mb")?;
    let shortage = resource_shortage(
        "VCPU",
        row.try_get("vcpus_used")?,
        wanted.vcpus,
        row.try_get("vcpus")?,
        row.try_get("cpu_allocation_ratio")?,
    )
    .or(resource_shortage(
        "MEMORY_MB",
        row.try_get("memory_mb_used")?,
        wanted.memory_mb,
        row.try_get::<i64, _>("memory_mb")? - reserved,
        row.try_get("ram_allocation_ratio")?,
    ))
    .or(resource_shortage(
        "DISK_GB",
        row.try_get("local_gb_used")?,
        wanted.disk_gb,
        row.try_get("local_gb")?,
        row.try_get("disk_allocation_ratio")?,
    ));
    Ok(Some(shortage))
}

/// Claims `wanted` on node `node_uuid` for `instance_uuid`, and runs the
/// statements of `then` after it in the same hand-off to the database
/// (the caller's next steps, which a lost claim rolls back with it).
///
/// Claims on one node serialize on its claim lock
/// ([`Db::begin_serialized`] `claim:<node>`), so concurrent builds queue up;
/// inside it the usage is bumped with a conditional `UPDATE … WHERE
/// <capacity holds under the allocation ratios>` (the node's generation
/// with it, for readers that cached the node). When it takes nothing the
/// node is read to say why: [`Claim::NoRoom`], or [`Claim::NoNode`].
pub async fn claim(
    db: &Db,
    node_uuid: &str,
    instance_uuid: &str,
    wanted: Resources,
    then: Batch,
) -> Result<Claim, DbError> {
    let mut tx = db.begin_grouped(&format!("claim:{node_uuid}")).await?;
    // The allocation row first, then the conditional usage bump: one
    // hand-off to the database. When the bump takes nothing, the rollback
    // takes the row back too.
    let mut statements = Batch::new();
    statements.push(
        sqlx::query(
            "INSERT INTO allocations (instance_uuid, node_uuid, vcpus, memory_mb, disk_gb, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(instance_uuid)
        .bind(node_uuid)
        .bind(wanted.vcpus)
        .bind(wanted.memory_mb)
        .bind(wanted.disk_gb)
        .bind(db::now()),
    )?;
    statements.push(
        sqlx::query(
            "UPDATE compute_nodes SET vcpus_used = vcpus_used + $1, memory_mb_used = memory_mb_used + $2, \
             local_gb_used = local_gb_used + $3, running_vms = running_vms + 1, generation = generation + 1, \
             updated_at = $4 \
             WHERE uuid = $5 \
             AND vcpus_used + $1 <= vcpus * cpu_allocation_ratio \
             AND memory_mb_used + $2 <= (memory_mb - reserved_host_memory_mb) * ram_allocation_ratio \
             AND local_gb_used + $3 <= local_gb * disk_allocation_ratio \
             RETURNING hypervisor_hostname",
        )
        .bind(wanted.vcpus)
        .bind(wanted.memory_mb)
        .bind(wanted.disk_gb)
        .bind(db::now())
        .bind(node_uuid),
    )?;
    statements.extend(then);
    let mut done = statements.fetch_each(&mut tx).await?.into_iter();
    let updated = done.nth(1).and_then(|bump| bump.rows.into_iter().next());
    let Some(updated) = updated else {
        let answer = match shortage_of(&mut tx, node_uuid, wanted).await? {
            None => Claim::NoNode,
            Some(why) => Claim::NoRoom(
                why.unwrap_or_else(|| "the node's capacity check failed at the claim".to_string()),
            ),
        };
        tx.rollback().await?;
        return Ok(answer);
    };
    let hypervisor_hostname: String = updated.try_get("hypervisor_hostname")?;
    Ok(Claim::Won {
        tx,
        hypervisor_hostname,
        then: done.collect(),
    })
}

/// Releases the claim of `instance_uuid`, if any, inside `tx`.
pub async fn release(tx: &mut Tx, instance_uuid: &str) -> Result<(), DbError> {
    let row = sqlx::query(
        "SELECT node_uuid, vcpus, memory_mb, disk_gb FROM allocations WHERE instance_uuid = $1",
    )
    .bind(instance_uuid)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(()) };
    let node: String = row.try_get("node_uuid")?;
    sqlx::query("DELETE FROM allocations WHERE instance_uuid = $1")
        .bind(instance_uuid)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE compute_nodes SET vcpus_used = vcpus_used - $1, memory_mb_used = memory_mb_used - $2, \
         local_gb_used = local_gb_used - $3, running_vms = running_vms - 1, generation = generation + 1, \
         updated_at = $4 WHERE uuid = $5",
    )
    .bind(row.try_get::<i64, _>("vcpus")?)
    .bind(row.try_get::<i64, _>("memory_mb")?)
    .bind(row.try_get::<i64, _>("disk_gb")?)
    .bind(db::now())
    .bind(node)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
