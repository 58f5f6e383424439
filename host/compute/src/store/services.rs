//! The `services` table: the compute services (one per agent host), their
//! enable/disable/forced-down flags and heartbeats, and the `service.*`
//! notifications their changes send.

use sqlx::Row;

use crate::conductor::{self, ConductorError, snapshot};
use crate::config::ComputeConfig;
use novum_db::{self as db, Db, DbError, Tx};
use novum_notify::builders::{self, payload_time};
use novum_notify::payload::ServiceStatusPayload;
use novum_notify::{Publisher, emit};

/// The compute service's binary name, as Nova lists it.
pub const COMPUTE_BINARY: &str = "nova-compute";

/// The service version novum reports in service notifications (Nova's
/// integer `SERVICE_VERSION`; novum's RPC is versioned separately).
pub const SERVICE_VERSION: i64 = 1;

/// A `services` row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ServiceRow {
    /// Integer id (the API id before 2.53).
    pub id: i64,
    /// Uuid (the API id from 2.53).
    pub uuid: String,
    /// Host name.
    pub host: String,
    /// `nova-compute`.
    pub binary_name: String,
    /// Disabled (0/1).
    pub disabled: i64,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// Forced down (0/1).
    pub forced_down: i64,
    /// Last heartbeat.
    pub last_seen_up: Option<String>,
    /// Created.
    pub created_at: String,
    /// Updated.
    pub updated_at: Option<String>,
}

impl ServiceRow {
    /// Up: a heartbeat within `service_down_time` seconds and not forced down.
    pub fn is_up(&self, service_down_time: u64) -> bool {
        snapshot::service_is_up(
            self.last_seen_up.as_deref(),
            self.forced_down != 0,
            service_down_time,
        )
    }

    /// `enabled` or `disabled`.
    pub fn status(&self) -> &'static str {
        if self.disabled != 0 {
            "disabled"
        } else {
            "enabled"
        }
    }

    /// `up` or `down`.
    pub fn state(&self, service_down_time: u64) -> &'static str {
        if self.is_up(service_down_time) {
            "up"
        } else {
            "down"
        }
    }

    /// The `host_status` of the servers on this compute service's host, by
    /// Nova's rules (`nova.compute.api.API.get_instance_host_status`):
    /// forced down is `DOWN` (before anything else), disabled is
    /// `MAINTENANCE`, otherwise `UP` while it heartbeats and `UNKNOWN` once
    /// it has stopped.
    pub fn host_status(&self, service_down_time: u64) -> HostStatus {
        if self.forced_down != 0 {
            HostStatus::Down
        } else if self.disabled != 0 {
            HostStatus::Maintenance
        } else if self.is_up(service_down_time) {
            HostStatus::Up
        } else {
            HostStatus::Unknown
        }
    }
}

/// A server's `host_status` (from 2.16): the state of the compute service
/// on its host, Nova's `HostStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostStatus {
    /// The compute service heartbeats and is enabled.
    Up,
    /// The compute service is forced down.
    Down,
    /// The compute service is disabled.
    Maintenance,
    /// The compute service has stopped heartbeating.
    Unknown,
    /// The server has no host, or its host no compute service.
    NoHost,
}

impl HostStatus {
    /// The API value: `UP`, `DOWN`, `MAINTENANCE`, `UNKNOWN`, or `""`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "UP",
            Self::Down => "DOWN",
            Self::Maintenance => "MAINTENANCE",
            Self::Unknown => "UNKNOWN",
            Self::NoHost => "",
        }
    }
}

/// Every service, ordered by id.
pub async fn all(db: &Db) -> Result<Vec<ServiceRow>, DbError> {
    Ok(sqlx::query_as::<_, ServiceRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {SERVICE_COLUMNS} FROM services ORDER BY id"
    )))
    .fetch_all(db.pool())
    .await?)
}

/// The columns of a [`ServiceRow`].
const SERVICE_COLUMNS: &str = "id, uuid, host, binary_name, disabled, disabled_reason, forced_down, last_seen_up, created_at, updated_at";

/// The services matching `clauses`, by id.
async fn matching(db: &Db, clauses: &novum_db::Clauses) -> Result<Vec<ServiceRow>, DbError> {
    let sql = format!(
        "SELECT {SERVICE_COLUMNS} FROM services WHERE {} ORDER BY id",
        clauses.sql()
    );
    let query = sqlx::query_as::<_, ServiceRow>(sqlx::AssertSqlSafe(sql));
    Ok(clauses.bind_all(query).fetch_all(db.pool()).await?)
}

/// The services whose ids are among `ids`.
pub async fn by_ids(db: &Db, ids: &[i64]) -> Result<Vec<ServiceRow>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut clauses = novum_db::Clauses::default();
    let list = ids
        .iter()
        .map(|id| clauses.int(*id))
        .collect::<Vec<_>>()
        .join(", ");
    clauses.push(format!("id IN ({list})"));
    matching(db, &clauses).await
}

/// The compute services of `hosts`.
pub async fn compute_of_hosts(db: &Db, hosts: &[String]) -> Result<Vec<ServiceRow>, DbError> {
    if hosts.is_empty() {
        return Ok(Vec::new());
    }
    let mut clauses = novum_db::Clauses::default();
    let list = clauses.text_list(hosts);
    let binary = clauses.text(COMPUTE_BINARY);
    clauses.push(format!("host IN ({list}) AND binary_name = {binary}"));
    matching(db, &clauses).await
}

/// The compute agents as `/metrics` shows them: how many are up and down
/// (Nova's rule: a heartbeat within `service_down_time` seconds and not
/// forced down), and how long ago the agents that are up last heartbeated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentLiveness {
    /// Compute services up.
    pub up: u64,
    /// Compute services down (stopped heartbeating, or forced down).
    pub down: u64,
    /// The longest time since an up agent's last heartbeat, in seconds.
    pub max_heartbeat_lag: f64,
    /// The mean time since the up agents' last heartbeats, in seconds.
    pub mean_heartbeat_lag: f64,
}

/// [`AgentLiveness`] now, from the compute services' heartbeats.
pub async fn agent_liveness(db: &Db, service_down_time: u64) -> Result<AgentLiveness, DbError> {
    let rows: Vec<(Option<String>, i64)> =
        sqlx::query_as("SELECT last_seen_up, forced_down FROM services WHERE binary_name = $1")
            .bind(COMPUTE_BINARY)
            .fetch_all(db.pool())
            .await?;
    let now = chrono::Utc::now();
    let mut liveness = AgentLiveness::default();
    let mut total_lag = 0.0;
    for (last_seen_up, forced_down) in rows {
        if !snapshot::service_is_up(last_seen_up.as_deref(), forced_down != 0, service_down_time) {
            liveness.down += 1;
            continue;
        }
        liveness.up += 1;
        let lag = last_seen_up
            .as_deref()
            .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
            .map(|seen| {
                let age = now.signed_duration_since(seen.with_timezone(&chrono::Utc));
                (age.num_milliseconds().max(0) as f64) / 1000.0
            })
            .unwrap_or_default();
        total_lag += lag;
        liveness.max_heartbeat_lag = liveness.max_heartbeat_lag.max(lag);
    }
    if liveness.up > 0 {
        liveness.mean_heartbeat_lag = total_lag / liveness.up as f64;
    }
    Ok(liveness)
}

/// The flags an administrator sets on a service (`PUT /os-services/{id}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusFlags {
    /// Disabled: the scheduler places nothing on its host.
    pub disabled: bool,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// Forced down: counted down whatever its heartbeats.
    pub forced_down: bool,
}

/// Sets the flags of service `id` and notifies it (`service.update`, from
/// the API publisher; Nova sends it when `disabled`, `disabled_reason` or
/// `forced_down` change), in one transaction.
pub async fn set_status(
    db: &Db,
    config: &ComputeConfig,
    publisher: &Publisher,
    id: i64,
    flags: &StatusFlags,
) -> conductor::Result<()> {
    let mut tx = db.begin_serialized("services").await?;
    sqlx::query(
        "UPDATE services SET disabled = $1, disabled_reason = $2, forced_down = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(i64::from(flags.disabled))
    .bind(&flags.disabled_reason)
    .bind(i64::from(flags.forced_down))
    .bind(db::now())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if let Some(payload) = service_payload(&mut tx, config, id).await? {
        emit(&mut tx, &builders::service(publisher, payload, "update")).await?;
    }
    novum_notify::commit(tx).await?;
    Ok(())
}

/// Deletes `service`, its compute node and its host's aggregate memberships,
/// and the claims left on that node, and notifies it (`service.delete`); a
/// [`ConductorError::Conflict`] (Nova's messages) while instances live on
/// its host or migrations to or from it are in progress.
pub async fn delete(
    db: &Db,
    config: &ComputeConfig,
    publisher: &Publisher,
    service: &ServiceRow,
) -> conductor::Result<()> {
    let mut tx = db.begin_serialized("conductor").await?;
    let instances: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM instances WHERE host = $1 AND deleted = 0")
            .bind(&service.host)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
    if instances > 0 {
        return Err(ConductorError::Conflict(
            "Unable to delete compute service that is hosting instances. Migrate or delete the instances first."
                .to_string(),
        ));
    }
    // Nova's in-progress migrations: any status but these.
    let migrating: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM migrations WHERE (source_compute = $1 OR dest_compute = $1) \
         AND status NOT IN ('confirmed', 'reverted', 'error', 'failed', 'completed', 'cancelled', 'done')",
    )
    .bind(&service.host)
    .fetch_one(&mut *tx)
    .await?
    .try_get("n")?;
    if migrating > 0 {
        return Err(ConductorError::Conflict(
            "Unable to delete compute service that has in-progress migrations. Complete the migrations or delete the instances first."
                .to_string(),
        ));
    }
    // What is still claimed on its node (an evacuated instance's old claim,
    // a deleted one's) goes with it, as Nova deletes the resource provider
    // with its allocations.
    sqlx::query(
        "DELETE FROM allocations WHERE node_uuid IN (SELECT uuid FROM compute_nodes WHERE service_id = $1)",
    )
    .bind(service.id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM aggregate_hosts WHERE host = $1")
        .bind(&service.host)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM compute_nodes WHERE service_id = $1")
        .bind(service.id)
        .execute(&mut *tx)
        .await?;
    let payload = service_payload(&mut tx, config, service.id).await?;
    sqlx::query("DELETE FROM services WHERE id = $1")
        .bind(service.id)
        .execute(&mut *tx)
        .await?;
    if let Some(payload) = payload {
        emit(&mut tx, &builders::service(publisher, payload, "delete")).await?;
    }
    novum_notify::commit(tx).await?;
    Ok(())
}

/// The `ServiceStatusPayload` of service `id`, read in `tx`.
pub async fn service_payload(
    tx: &mut Tx,
    config: &ComputeConfig,
    id: i64,
) -> Result<Option<ServiceStatusPayload>, DbError> {
    let Some(row) = sqlx::query("SELECT * FROM services WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(None);
    };
    let host: String = row.try_get("host")?;
    let zone =
        crate::store::aggregates::host_zone(tx, &host, &config.default_availability_zone).await?;
    Ok(Some(ServiceStatusPayload {
        host: Some(host),
        binary: Some(row.try_get("binary_name")?),
        topic: Some(row.try_get("topic")?),
        report_count: 0,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        disabled_reason: row.try_get("disabled_reason")?,
        availability_zone: Some(zone),
        last_seen_up: row
            .try_get::<Option<String>, _>("last_seen_up")?
            .as_deref()
            .map(payload_time),
        forced_down: row.try_get::<i64, _>("forced_down")? != 0,
        version: SERVICE_VERSION,
        uuid: row.try_get("uuid")?,
    }))
}

/// Whether the compute service of a host is up (see [`snapshot::service_is_up`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// A heartbeat within `service_down_time`, and not forced down.
    Up {
        /// The last heartbeat.
        last_seen_up: Option<String>,
    },
    /// Silent for longer, or forced down.
    Down,
}

/// The liveness of `host`'s compute service, read in `tx`; `None` when it has
/// none (never registered, or deleted).
pub async fn compute_service_liveness(
    tx: &mut Tx,
    config: &ComputeConfig,
    host: &str,
) -> Result<Option<Liveness>, DbError> {
    let Some(row) = sqlx::query(
        "SELECT last_seen_up, forced_down FROM services WHERE host = $1 AND binary_name = $2",
    )
    .bind(host)
    .bind(COMPUTE_BINARY)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let last_seen_up: Option<String> = row.try_get("last_seen_up")?;
    let forced_down = row.try_get::<i64, _>("forced_down")? != 0;
    let up = snapshot::service_is_up(
        last_seen_up.as_deref(),
        forced_down,
        config.service_down_time,
    );
    Ok(Some(if up {
        Liveness::Up { last_seen_up }
    } else {
        Liveness::Down
    }))
}

/// How many hosts one statement of [`record_heartbeats`] names (bound
/// values stay far below SQLite's and PostgreSQL's limits).
const HEARTBEAT_CHUNK: usize = 500;

/// Records, in one transaction, that the compute services of `hosts`
/// heartbeated at `seen` (`last_seen_up` and `updated_at`), one UPDATE per
/// [`HEARTBEAT_CHUNK`] hosts, and the `uptime` reported by the hosts in
/// `uptimes` (one UPDATE each). Answers the hosts among `hosts` that have no
/// compute service (deleted while their agent beats on): the caller makes
/// their next heartbeat create it again.
///
/// This is the write behind the agents' heartbeats: the RPC keeps the beats
/// in memory and a controller calls this every couple of seconds for all
/// the hosts that beat since (see `novum_api::rpc`).
pub async fn record_heartbeats(
    db: &Db,
    seen: &str,
    hosts: &[String],
    uptimes: &[(String, Option<String>)],
) -> Result<Vec<String>, DbError> {
    if hosts.is_empty() && uptimes.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = db.begin().await?;
    let mut missing = Vec::new();
    for chunk in hosts.chunks(HEARTBEAT_CHUNK) {
        let mut clauses = novum_db::Clauses::default();
        let seen_at = clauses.text(seen);
        let binary = clauses.text(COMPUTE_BINARY);
        let list = clauses.text_list(chunk);
        let sql = format!(
            "UPDATE services SET last_seen_up = {seen_at}, updated_at = {seen_at} \
             WHERE binary_name = {binary} AND host IN ({list})"
        );
        let updated = clauses
            .bind_all_rows(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if updated < chunk.len() as u64 {
            let mut clauses = novum_db::Clauses::default();
            let binary = clauses.text(COMPUTE_BINARY);
            let list = clauses.text_list(chunk);
            let sql = format!(
                "SELECT host FROM services WHERE binary_name = {binary} AND host IN ({list})"
            );
            let present: std::collections::HashSet<String> = clauses
                .bind_all(sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql)))
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|(host,)| host)
                .collect();
            missing.extend(
                chunk
                    .iter()
                    .filter(|host| !present.contains(*host))
                    .cloned(),
            );
        }
    }
    for (host, uptime) in uptimes {
        sqlx::query("UPDATE compute_nodes SET uptime = $1 WHERE host = $2")
            .bind(uptime)
            .bind(host)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(missing)
}
