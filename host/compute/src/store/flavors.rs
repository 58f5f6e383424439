//! Flavors: the flavors, their extra specs and the projects a private
//! flavor is shared with. Writes run in a transaction begun with [`begin`]
//! (serialized under the `flavors` lock), so the caller can add its
//! notifications before committing.

use std::collections::BTreeMap;

use sqlx::{Any, Executor, FromRow, Row};

use crate::conductor::model::FlavorSnapshot;
use crate::conductor::{ConductorError, Result};
use novum_db::{self as db, Db, DbError, Tx};

/// A flavor row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct FlavorRow {
    /// Flavor id.
    pub id: String,
    /// Name.
    pub name: String,
    /// vCPUs.
    pub vcpus: i64,
    /// Memory, MiB.
    pub memory_mb: i64,
    /// Root disk, GiB.
    pub root_gb: i64,
    /// Ephemeral disk, GiB.
    pub ephemeral_gb: i64,
    /// Swap, MiB.
    pub swap: i64,
    /// RX/TX factor.
    pub rxtx_factor: f64,
    /// Public (0/1).
    pub is_public: i64,
    /// Disabled (0/1).
    pub disabled: i64,
    /// Description.
    pub description: Option<String>,
    /// Created.
    pub created_at: String,
}

/// A flavor with its extra specs and the projects it is shared with.
#[derive(Clone, Debug)]
pub struct FlavorDetails {
    /// The flavor.
    pub flavor: FlavorRow,
    /// Its extra specs.
    pub extra_specs: BTreeMap<String, String>,
    /// The projects with access, sorted.
    pub projects: Vec<String>,
}

/// A flavor to create.
#[derive(Clone, Debug)]
pub struct NewFlavor {
    /// Flavor id.
    pub id: String,
    /// Name.
    pub name: String,
    /// vCPUs.
    pub vcpus: i64,
    /// Memory, MiB.
    pub memory_mb: i64,
    /// Root disk, GiB.
    pub root_gb: i64,
    /// Ephemeral disk, GiB.
    pub ephemeral_gb: i64,
    /// Swap, MiB.
    pub swap: i64,
    /// RX/TX factor.
    pub rxtx_factor: f64,
    /// Public.
    pub is_public: bool,
    /// Description.
    pub description: Option<String>,
}

/// Nova's default flavors: (id, name, vcpus, ram MB, disk GB).
pub const DEFAULT_FLAVORS: &[(&str, &str, i64, i64, i64)] = &[
    ("1", "m1.tiny", 1, 512, 1),
    ("2", "m1.small", 1, 2048, 20),
    ("3", "m1.medium", 2, 4096, 40),
    ("4", "m1.large", 4, 8192, 80),
    ("5", "m1.xlarge", 8, 16384, 160),
];

/// Begins a transaction for changing flavors (serialized under `flavors`).
pub async fn begin(db: &Db) -> Result<Tx, DbError> {
    db.begin_serialized("flavors").await
}

/// Creates the default flavors once (at first start; deleting them later sticks).
pub async fn ensure_defaults(db: &Db) -> Result<(), DbError> {
    let mut tx = begin(db).await?;
    let done = sqlx::query("SELECT value FROM novum_meta WHERE key = 'default_flavors'")
        .fetch_optional(&mut *tx)
        .await?;
    if done.is_none() {
        for (id, name, vcpus, ram, disk) in DEFAULT_FLAVORS {
            sqlx::query(
                "INSERT INTO flavors (id, name, vcpus, memory_mb, root_gb, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(*id)
            .bind(*name)
            .bind(*vcpus)
            .bind(*ram)
            .bind(*disk)
            .bind(db::now())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("INSERT INTO novum_meta (key, value) VALUES ('default_flavors', 'created')")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn read_flavor<'e>(
    executor: impl Executor<'e, Database = Any>,
    id: &str,
) -> Result<Option<FlavorRow>, DbError> {
    Ok(
        sqlx::query_as::<_, FlavorRow>("SELECT * FROM flavors WHERE id = $1")
            .bind(id)
            .fetch_optional(executor)
            .await?,
    )
}

async fn read_extra_specs<'e>(
    executor: impl Executor<'e, Database = Any>,
    id: &str,
) -> Result<BTreeMap<String, String>, DbError> {
    let rows = sqlx::query("SELECT key, value FROM flavor_extra_specs WHERE flavor_id = $1")
        .bind(id)
        .fetch_all(executor)
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("key")?, row.try_get("value")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::from)
}

async fn read_projects<'e>(
    executor: impl Executor<'e, Database = Any>,
    id: &str,
) -> Result<Vec<String>, DbError> {
    let rows = sqlx::query(
        "SELECT project_id FROM flavor_projects WHERE flavor_id = $1 ORDER BY project_id",
    )
    .bind(id)
    .fetch_all(executor)
    .await?;
    rows.iter()
        .map(|row| row.try_get("project_id"))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::from)
}

/// Flavor `id`, if it exists.
pub async fn get(db: &Db, id: &str) -> Result<Option<FlavorRow>, DbError> {
    read_flavor(db.pool(), id).await
}

/// Every flavor, in no particular order.
pub async fn list(db: &Db) -> Result<Vec<FlavorRow>, DbError> {
    Ok(sqlx::query_as::<_, FlavorRow>("SELECT * FROM flavors")
        .fetch_all(db.pool())
        .await?)
}

/// The extra specs of flavor `id`.
pub async fn extra_specs(db: &Db, id: &str) -> Result<BTreeMap<String, String>, DbError> {
    read_extra_specs(db.pool(), id).await
}

/// The projects flavor `id` is shared with, sorted.
pub async fn projects_with_access(db: &Db, id: &str) -> Result<Vec<String>, DbError> {
    read_projects(db.pool(), id).await
}

/// The ids of the flavors shared with `project`.
pub async fn shared_with(db: &Db, project: &str) -> Result<Vec<String>, DbError> {
    let rows = sqlx::query("SELECT flavor_id FROM flavor_projects WHERE project_id = $1")
        .bind(project)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|row| row.try_get("flavor_id"))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::from)
}

/// Flavor `id` with its extra specs and projects as they are in `tx`, if
/// it exists.
pub async fn details(tx: &mut Tx, id: &str) -> Result<Option<FlavorDetails>, DbError> {
    let Some(flavor) = read_flavor(&mut **tx, id).await? else {
        return Ok(None);
    };
    Ok(Some(FlavorDetails {
        flavor,
        extra_specs: read_extra_specs(&mut **tx, id).await?,
        projects: read_projects(&mut **tx, id).await?,
    }))
}

/// The snapshot an instance keeps of flavor `flavor`.
pub async fn snapshot(db: &Db, flavor: &FlavorRow) -> Result<FlavorSnapshot, DbError> {
    Ok(snapshot_of(flavor, extra_specs(db, &flavor.id).await?))
}

/// The snapshot of `flavor` with its `extra_specs`.
pub fn snapshot_of(flavor: &FlavorRow, extra_specs: BTreeMap<String, String>) -> FlavorSnapshot {
    FlavorSnapshot {
        id: flavor.id.clone(),
        name: flavor.name.clone(),
        vcpus: flavor.vcpus,
        memory_mb: flavor.memory_mb,
        root_gb: flavor.root_gb,
        ephemeral_gb: flavor.ephemeral_gb,
        swap: flavor.swap,
        extra_specs,
    }
}

/// Flavor `id` with its extra specs, if it exists: one statement (the
/// flavor's row once per spec).
pub async fn get_with_specs(
    db: &Db,
    id: &str,
) -> Result<Option<(FlavorRow, BTreeMap<String, String>)>, DbError> {
    let rows = sqlx::query(
        "SELECT f.*, s.key AS spec_key, s.value AS spec_value FROM flavors f \
         LEFT JOIN flavor_extra_specs s ON s.flavor_id = f.id WHERE f.id = $1",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let flavor = FlavorRow::from_row(first)?;
    let mut specs = BTreeMap::new();
    for row in &rows {
        if let Some(key) = row.try_get::<Option<String>, _>("spec_key")? {
            specs.insert(key, row.try_get("spec_value")?);
        }
    }
    Ok(Some((flavor, specs)))
}

/// Creates `flavor` in `tx`; a conflict when its id or name is taken.
pub async fn create(tx: &mut Tx, flavor: &NewFlavor) -> Result<()> {
    let clash = sqlx::query("SELECT id, name FROM flavors WHERE id = $1 OR name = $2")
        .bind(&flavor.id)
        .bind(&flavor.name)
        .fetch_optional(&mut **tx)
        .await
        .map_err(DbError::from)?;
    if let Some(row) = clash {
        let existing: String = row.try_get("id").map_err(DbError::from)?;
        return Err(ConductorError::Conflict(if existing == flavor.id {
            format!("Flavor with ID {} already exists.", flavor.id)
        } else {
            format!("Flavor with name {} already exists.", flavor.name)
        }));
    }
    sqlx::query(
        "INSERT INTO flavors (id, name, vcpus, memory_mb, root_gb, ephemeral_gb, swap, rxtx_factor, is_public, description, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&flavor.id)
    .bind(&flavor.name)
    .bind(flavor.vcpus)
    .bind(flavor.memory_mb)
    .bind(flavor.root_gb)
    .bind(flavor.ephemeral_gb)
    .bind(flavor.swap)
    .bind(flavor.rxtx_factor)
    .bind(i64::from(flavor.is_public))
    .bind(&flavor.description)
    .bind(db::now())
    .execute(&mut **tx)
    .await
    .map_err(DbError::from)?;
    Ok(())
}

/// Sets the description of flavor `id` in `tx`.
pub async fn set_description(tx: &mut Tx, id: &str, description: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE flavors SET description = $1 WHERE id = $2")
        .bind(description)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(DbError::from)?;
    Ok(())
}

/// Deletes flavor `id` in `tx`; not found when there is none.
pub async fn delete(tx: &mut Tx, id: &str) -> Result<()> {
    let deleted = sqlx::query("DELETE FROM flavors WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(DbError::from)?
        .rows_affected();
    if deleted == 0 {
        return Err(ConductorError::NotFound(format!(
            "Flavor {id} could not be found."
        )));
    }
    Ok(())
}

/// Sets (adds or replaces) the extra specs `specs` of flavor `id` in `tx`.
pub async fn set_extra_specs(
    tx: &mut Tx,
    id: &str,
    specs: &BTreeMap<String, String>,
) -> Result<(), DbError> {
    for (key, value) in specs {
        sqlx::query("DELETE FROM flavor_extra_specs WHERE flavor_id = $1 AND key = $2")
            .bind(id)
            .bind(key)
            .execute(&mut **tx)
            .await?;
        sqlx::query("INSERT INTO flavor_extra_specs (flavor_id, key, value) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(key)
            .bind(value)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Deletes extra spec `key` of flavor `id` in `tx`; not found when it has none.
pub async fn delete_extra_spec(tx: &mut Tx, id: &str, key: &str) -> Result<()> {
    let deleted = sqlx::query("DELETE FROM flavor_extra_specs WHERE flavor_id = $1 AND key = $2")
        .bind(id)
        .bind(key)
        .execute(&mut **tx)
        .await
        .map_err(DbError::from)?
        .rows_affected();
    if deleted == 0 {
        return Err(ConductorError::NotFound(format!(
            "Flavor {id} has no extra specs with key {key}."
        )));
    }
    Ok(())
}

/// Shares flavor `id` with `project` in `tx`.
pub async fn add_access(tx: &mut Tx, id: &str, project: &str) -> Result<(), DbError> {
    sqlx::query("INSERT INTO flavor_projects (flavor_id, project_id) VALUES ($1, $2)")
        .bind(id)
        .bind(project)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Stops sharing flavor `id` with `project` in `tx`; not found when it was
/// not shared.
pub async fn remove_access(tx: &mut Tx, id: &str, project: &str) -> Result<()> {
    let removed =
        sqlx::query("DELETE FROM flavor_projects WHERE flavor_id = $1 AND project_id = $2")
            .bind(id)
            .bind(project)
            .execute(&mut **tx)
            .await
            .map_err(DbError::from)?
            .rows_affected();
    if removed == 0 {
        return Err(ConductorError::NotFound(format!(
            "Flavor access not found for {id} / {project} combination."
        )));
    }
    Ok(())
}
