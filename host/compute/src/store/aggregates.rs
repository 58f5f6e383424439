//! Host aggregates: their rows, hosts and metadata, and the rules of
//! availability zones (an aggregate with [`ZONE_KEY`] metadata makes a zone;
//! a host cannot be in two different zones; a zone does not change under a
//! host that runs instances). Every change runs in a transaction serialized
//! on the aggregates lock and sends Nova's `aggregate.<action>.start`/`.end`
//! notifications in that transaction.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::conductor::{ConductorError, Result};
use crate::store::services::COMPUTE_BINARY;
use novum_db::{self as db, Db, Tx};
use novum_notify::builders::{self, AggregateAction};
use novum_notify::payload::AggregatePayload;
use novum_notify::{Phase, Publisher, emit};

/// The metadata key that puts an aggregate's hosts into a zone.
pub const ZONE_KEY: &str = "availability_zone";
/// The lock serializing aggregate changes (names, zones, hosts).
const LOCK: &str = "aggregates";

/// An aggregate with its hosts and metadata.
#[derive(Clone, Debug)]
pub struct Aggregate {
    /// The database id (the API's `id`).
    pub id: i64,
    /// The UUID (shown from 2.41).
    pub uuid: String,
    /// The unique name.
    pub name: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed, if ever.
    pub updated_at: Option<String>,
    /// Its hosts, by name.
    pub hosts: Vec<String>,
    /// Its metadata, the zone included.
    pub metadata: BTreeMap<String, String>,
}

/// The availability zone of `host`, read in `tx`: the zone of its zone
/// aggregate (a host is in one zone at most), else `default` (the
/// `[compute] default_availability_zone`), as the scheduler's
/// `zone_of` says at build time.
pub async fn host_zone(
    tx: &mut Tx,
    host: &str,
    default: &str,
) -> std::result::Result<String, db::DbError> {
    Ok(sqlx::query(
        "SELECT m.value FROM aggregate_metadata m JOIN aggregate_hosts h ON h.aggregate_id = m.aggregate_id \
         WHERE h.host = $1 AND m.key = $2 ORDER BY m.aggregate_id",
    )
    .bind(host)
    .bind(ZONE_KEY)
    .fetch_optional(&mut **tx)
    .await?
    .map(|row| row.try_get::<String, _>("value"))
    .transpose()?
    .unwrap_or_else(|| default.to_string()))
}

impl Aggregate {
    /// The availability zone it makes, if any.
    pub fn zone(&self) -> Option<&str> {
        self.metadata.get(ZONE_KEY).map(String::as_str)
    }

    /// Its notification payload.
    pub fn payload(&self) -> AggregatePayload {
        AggregatePayload {
            id: Some(self.id),
            uuid: self.uuid.clone(),
            name: self.name.clone(),
            hosts: Some(self.hosts.clone()),
            metadata: Some(self.metadata.clone()),
        }
    }
}

/// What an update changes: a name, a zone (`Some(None)`: out of its zone),
/// or both.
#[derive(Clone, Debug, Default)]
pub struct AggregateUpdate {
    /// The new name.
    pub name: Option<String>,
    /// The new zone.
    pub zone: Option<Option<String>>,
}

fn not_found(id: i64) -> ConductorError {
    ConductorError::NotFound(format!("Aggregate {id} could not be found."))
}

fn name_conflict(name: &str) -> ConductorError {
    ConductorError::Conflict(format!("Aggregate {name} already exists."))
}

async fn load_all(conn: &mut sqlx::AnyConnection) -> Result<Vec<Aggregate>> {
    let rows = sqlx::query("SELECT * FROM aggregates ORDER BY id")
        .fetch_all(&mut *conn)
        .await?;
    let hosts = sqlx::query("SELECT aggregate_id, host FROM aggregate_hosts ORDER BY host")
        .fetch_all(&mut *conn)
        .await?;
    let metadata = sqlx::query("SELECT aggregate_id, key, value FROM aggregate_metadata")
        .fetch_all(&mut *conn)
        .await?;
    let mut aggregates = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get("id")?;
        let mut aggregate = Aggregate {
            id,
            uuid: row.try_get("uuid")?,
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            hosts: Vec::new(),
            metadata: BTreeMap::new(),
        };
        for host in &hosts {
            if host.try_get::<i64, _>("aggregate_id")? == id {
                aggregate.hosts.push(host.try_get("host")?);
            }
        }
        for item in &metadata {
            if item.try_get::<i64, _>("aggregate_id")? == id {
                aggregate
                    .metadata
                    .insert(item.try_get("key")?, item.try_get("value")?);
            }
        }
        aggregates.push(aggregate);
    }
    Ok(aggregates)
}

async fn load_one(conn: &mut sqlx::AnyConnection, id: i64) -> Result<Aggregate> {
    load_all(conn)
        .await?
        .into_iter()
        .find(|aggregate| aggregate.id == id)
        .ok_or_else(|| not_found(id))
}

/// Every aggregate, by id.
pub async fn list(db: &Db) -> Result<Vec<Aggregate>> {
    let mut conn = db.pool().acquire().await?;
    load_all(&mut conn).await
}

/// Aggregate `id`; `NotFound` if there is none.
pub async fn get(db: &Db, id: i64) -> Result<Aggregate> {
    let mut conn = db.pool().acquire().await?;
    load_one(&mut conn, id).await
}

/// Emits `aggregate.<action>.start` with `before` and `.end` with `after`
/// in `tx` (both in the transaction of the change).
async fn notify_aggregate(
    tx: &mut Tx,
    publisher: &Publisher,
    action: AggregateAction,
    before: AggregatePayload,
    after: AggregatePayload,
) -> Result<()> {
    emit(
        tx,
        &builders::aggregate(publisher, before, action, Phase::Start),
    )
    .await?;
    emit(
        tx,
        &builders::aggregate(publisher, after, action, Phase::End),
    )
    .await?;
    Ok(())
}

/// The zones other than `zone` that `host` is in through aggregates other
/// than `except`.
fn other_zones(aggregates: &[Aggregate], host: &str, zone: &str, except: i64) -> Vec<String> {
    let mut zones: Vec<String> = aggregates
        .iter()
        .filter(|aggregate| aggregate.id != except && aggregate.hosts.iter().any(|h| h == host))
        .filter_map(|aggregate| aggregate.zone())
        .filter(|other| *other != zone)
        .map(str::to_string)
        .collect();
    zones.sort();
    zones.dedup();
    zones
}

/// Checks that moving `aggregate`'s hosts into `zone` puts no host into two
/// zones and moves no instance; `Err(reason)` otherwise.
async fn check_zone_change(
    tx: &mut Tx,
    aggregates: &[Aggregate],
    aggregate: &Aggregate,
    zone: Option<&str>,
) -> Result<std::result::Result<(), String>> {
    if zone == aggregate.zone() {
        return Ok(Ok(()));
    }
    if let Some(zone) = zone {
        let conflicts: Vec<String> = aggregate
            .hosts
            .iter()
            .flat_map(|host| other_zones(aggregates, host, zone, aggregate.id))
            .collect();
        if !conflicts.is_empty() {
            return Ok(Err(format!(
                "One or more hosts already in availability zone(s) {conflicts:?}"
            )));
        }
    }
    for host in &aggregate.hosts {
        let instances: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM instances WHERE host = $1 AND deleted = 0")
                .bind(host)
                .fetch_one(&mut **tx)
                .await?
                .try_get("n")?;
        if instances > 0 {
            return Ok(Err(
                "One or more hosts contain instances in this zone.".to_string()
            ));
        }
    }
    Ok(Ok(()))
}

async fn name_taken(tx: &mut Tx, name: &str, except: i64) -> Result<bool> {
    Ok(
        sqlx::query("SELECT id FROM aggregates WHERE name = $1 AND id <> $2")
            .bind(name)
            .bind(except)
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

/// Sets (`Some`) or removes (`None`) metadata `key` of aggregate `id`.
async fn set_metadata_item(tx: &mut Tx, id: i64, key: &str, value: Option<&str>) -> Result<()> {
    sqlx::query("DELETE FROM aggregate_metadata WHERE aggregate_id = $1 AND key = $2")
        .bind(id)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    if let Some(value) = value {
        sqlx::query(
            "INSERT INTO aggregate_metadata (aggregate_id, key, value) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(key)
        .bind(value)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn touch(tx: &mut Tx, id: i64) -> Result<()> {
    sqlx::query("UPDATE aggregates SET updated_at = $1 WHERE id = $2")
        .bind(db::now())
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Creates aggregate `name`, in `zone` if given; `Conflict` if the name is
/// taken. Sends `aggregate.create.start` (with what was asked) and `.end`.
pub async fn create(
    db: &Db,
    publisher: &Publisher,
    name: &str,
    zone: Option<&str>,
) -> Result<Aggregate> {
    let mut tx = db.begin_serialized(LOCK).await?;
    if name_taken(&mut tx, name, -1).await? {
        return Err(name_conflict(name));
    }
    let uuid = uuid::Uuid::new_v4().to_string();
    let id = db::insert_returning_id(
        &mut tx,
        sqlx::query(
            "INSERT INTO aggregates (uuid, name, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(&uuid)
        .bind(name)
        .bind(db::now()),
    )
    .await?;
    set_metadata_item(&mut tx, id, ZONE_KEY, zone).await?;
    let aggregate = load_one(&mut tx, id).await?;
    // Nova's create.start carries what was asked: no id, hosts or metadata yet.
    let requested = AggregatePayload {
        uuid,
        name: name.to_string(),
        ..AggregatePayload::default()
    };
    notify_aggregate(
        &mut tx,
        publisher,
        AggregateAction::Create,
        requested,
        aggregate.payload(),
    )
    .await?;
    novum_notify::commit(tx).await?;
    Ok(aggregate)
}

/// Renames aggregate `id` and/or moves it into another zone (or none):
/// `NotFound`, `Conflict` on a taken name, `BadRequest` when the zone change
/// breaks a zone rule. Sends `aggregate.update_prop` (name only) or
/// `aggregate.update_metadata` (zone) `.start`/`.end`.
pub async fn update(
    db: &Db,
    publisher: &Publisher,
    id: i64,
    change: &AggregateUpdate,
) -> Result<Aggregate> {
    let mut tx = db.begin_serialized(LOCK).await?;
    let aggregates = load_all(&mut tx).await?;
    let aggregate = aggregates
        .iter()
        .find(|aggregate| aggregate.id == id)
        .ok_or_else(|| not_found(id))?;
    if let Some(name) = &change.name {
        if name_taken(&mut tx, name, id).await? {
            return Err(name_conflict(name));
        }
        sqlx::query("UPDATE aggregates SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(zone) = &change.zone {
        if let Err(reason) =
            check_zone_change(&mut tx, &aggregates, aggregate, zone.as_deref()).await?
        {
            return Err(ConductorError::BadRequest(format!(
                "Cannot update aggregate {id}. Reason: {reason}."
            )));
        }
        set_metadata_item(&mut tx, id, ZONE_KEY, zone.as_deref()).await?;
    }
    touch(&mut tx, id).await?;
    let before = aggregate.payload();
    let aggregate = load_one(&mut tx, id).await?;
    let action = if change.zone.is_some() {
        AggregateAction::UpdateMetadata
    } else {
        AggregateAction::UpdateProp
    };
    notify_aggregate(&mut tx, publisher, action, before, aggregate.payload()).await?;
    novum_notify::commit(tx).await?;
    Ok(aggregate)
}

/// Deletes aggregate `id` with its metadata: `NotFound`, or `BadRequest`
/// while it has hosts. Sends `aggregate.delete.start`/`.end`.
pub async fn delete(db: &Db, publisher: &Publisher, id: i64) -> Result<()> {
    let mut tx = db.begin_serialized(LOCK).await?;
    let aggregate = load_one(&mut tx, id).await?;
    if !aggregate.hosts.is_empty() {
        return Err(ConductorError::BadRequest(format!(
            "Cannot perform action 'delete' on aggregate {id}. Reason: Host aggregate is not empty."
        )));
    }
    sqlx::query("DELETE FROM aggregate_metadata WHERE aggregate_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM aggregates WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let payload = aggregate.payload();
    notify_aggregate(
        &mut tx,
        publisher,
        AggregateAction::Delete,
        payload.clone(),
        payload,
    )
    .await?;
    novum_notify::commit(tx).await?;
    Ok(())
}

/// A change to an aggregate's hosts or metadata (its actions).
#[derive(Clone, Copy, Debug)]
enum Membership<'a> {
    AddHost(&'a str),
    RemoveHost(&'a str),
    SetMetadata(&'a BTreeMap<String, Option<String>>),
}

impl Membership<'_> {
    fn notified_as(self) -> AggregateAction {
        match self {
            Membership::AddHost(_) => AggregateAction::AddHost,
            Membership::RemoveHost(_) => AggregateAction::RemoveHost,
            Membership::SetMetadata(_) => AggregateAction::UpdateMetadata,
        }
    }
}

async fn insert_host(
    tx: &mut Tx,
    aggregates: &[Aggregate],
    aggregate: &Aggregate,
    host: &str,
) -> Result<()> {
    let known = sqlx::query("SELECT id FROM services WHERE host = $1 AND binary_name = $2")
        .bind(host)
        .bind(COMPUTE_BINARY)
        .fetch_optional(&mut **tx)
        .await?;
    if known.is_none() {
        return Err(ConductorError::NotFound(format!(
            "Compute host {host} could not be found."
        )));
    }
    if aggregate.hosts.iter().any(|member| member == host) {
        return Err(ConductorError::Conflict(format!(
            "Aggregate {} already has host {host}.",
            aggregate.id
        )));
    }
    if let Some(zone) = aggregate.zone() {
        let conflicts = other_zones(aggregates, host, zone, aggregate.id);
        if !conflicts.is_empty() {
            return Err(ConductorError::Conflict(format!(
                "Cannot add host to aggregate {}. Reason: One or more hosts already in availability zone(s) {conflicts:?}.",
                aggregate.id
            )));
        }
    }
    sqlx::query("INSERT INTO aggregate_hosts (aggregate_id, host) VALUES ($1, $2)")
        .bind(aggregate.id)
        .bind(host)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn delete_host(tx: &mut Tx, aggregate: &Aggregate, host: &str) -> Result<()> {
    let removed = sqlx::query("DELETE FROM aggregate_hosts WHERE aggregate_id = $1 AND host = $2")
        .bind(aggregate.id)
        .bind(host)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if removed == 0 {
        return Err(ConductorError::NotFound(format!(
            "Cannot remove host {host} in aggregate {}",
            aggregate.id
        )));
    }
    Ok(())
}

async fn write_metadata(
    tx: &mut Tx,
    aggregates: &[Aggregate],
    aggregate: &Aggregate,
    changes: &BTreeMap<String, Option<String>>,
) -> Result<()> {
    if let Some(zone) = changes.get(ZONE_KEY)
        && let Err(reason) = check_zone_change(tx, aggregates, aggregate, zone.as_deref()).await?
    {
        return Err(ConductorError::BadRequest(format!(
            "Cannot update metadata of aggregate {}. Reason: {reason}.",
            aggregate.id
        )));
    }
    for (key, value) in changes {
        set_metadata_item(tx, aggregate.id, key, value.as_deref()).await?;
    }
    Ok(())
}

/// Applies `change` to aggregate `id` in one serialized transaction, touches
/// it and sends the action's `.start` (before) and `.end` (after).
async fn change_membership(
    db: &Db,
    publisher: &Publisher,
    id: i64,
    change: Membership<'_>,
) -> Result<Aggregate> {
    let mut tx = db.begin_serialized(LOCK).await?;
    let aggregates = load_all(&mut tx).await?;
    let aggregate = aggregates
        .iter()
        .find(|aggregate| aggregate.id == id)
        .ok_or_else(|| not_found(id))?;
    match change {
        Membership::AddHost(host) => insert_host(&mut tx, &aggregates, aggregate, host).await?,
        Membership::RemoveHost(host) => delete_host(&mut tx, aggregate, host).await?,
        Membership::SetMetadata(changes) => {
            write_metadata(&mut tx, &aggregates, aggregate, changes).await?
        }
    }
    touch(&mut tx, id).await?;
    let before = aggregate.payload();
    let aggregate = load_one(&mut tx, id).await?;
    notify_aggregate(
        &mut tx,
        publisher,
        change.notified_as(),
        before,
        aggregate.payload(),
    )
    .await?;
    novum_notify::commit(tx).await?;
    Ok(aggregate)
}

/// Adds compute host `host` to aggregate `id`: `NotFound` (aggregate or
/// compute service), `Conflict` if it is there already or would be in two
/// zones. Sends `aggregate.add_host.start`/`.end`.
pub async fn add_host(db: &Db, publisher: &Publisher, id: i64, host: &str) -> Result<Aggregate> {
    change_membership(db, publisher, id, Membership::AddHost(host)).await
}

/// Removes `host` from aggregate `id`: `NotFound` if either is missing.
/// Sends `aggregate.remove_host.start`/`.end`.
pub async fn remove_host(db: &Db, publisher: &Publisher, id: i64, host: &str) -> Result<Aggregate> {
    change_membership(db, publisher, id, Membership::RemoveHost(host)).await
}

/// Sets (`Some`) or removes (`None`) metadata of aggregate `id`; a zone
/// change obeys the zone rules (`BadRequest`). Sends
/// `aggregate.update_metadata.start`/`.end`.
pub async fn set_metadata(
    db: &Db,
    publisher: &Publisher,
    id: i64,
    changes: &BTreeMap<String, Option<String>>,
) -> Result<Aggregate> {
    change_membership(db, publisher, id, Membership::SetMetadata(changes)).await
}
