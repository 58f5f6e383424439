//! The `instances` table (and the server groups it refers to), for the
//! reads the compute API makes outside the conductor's operations.

use sqlx::Row;

use crate::conductor::model::Instance;
use novum_db::{Db, DbError};

/// The uuid and host of every live instance placed on one of `hosts`,
/// oldest first.
pub async fn placed_on(db: &Db, hosts: &[String]) -> Result<Vec<(String, String)>, DbError> {
    if hosts.is_empty() {
        return Ok(Vec::new());
    }
    let mut clauses = novum_db::Clauses::default();
    let list = clauses.text_list(hosts);
    clauses.push(format!("deleted = 0 AND host IN ({list})"));
    let sql = format!(
        "SELECT uuid, host FROM instances WHERE {} ORDER BY created_at, uuid",
        clauses.sql()
    );
    let rows = clauses
        .bind_all_rows(sqlx::query(sqlx::AssertSqlSafe(sql)))
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("uuid")?, row.try_get("host")?)))
        .collect()
}

/// The project of server group `uuid`, when it exists (a server created
/// into a group must see it).
pub async fn server_group_project(db: &Db, uuid: &str) -> Result<Option<String>, DbError> {
    let row = sqlx::query("SELECT project_id FROM server_groups WHERE uuid = $1")
        .bind(uuid)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(|row| row.try_get("project_id")).transpose()?)
}

/// The live instance `uuid`, when there is one.
pub async fn live(db: &Db, uuid: &str) -> Result<Option<Instance>, DbError> {
    Ok(Instance::fetch(db.pool(), uuid)
        .await?
        .filter(|instance| instance.deleted == 0))
}

/// The password the guest of instance `uuid` posted to the metadata
/// service ('' when none).
pub async fn metadata_password(db: &Db, uuid: &str) -> Result<String, DbError> {
    let row = sqlx::query("SELECT metadata_password FROM instances WHERE uuid = $1")
        .bind(uuid)
        .fetch_optional(db.pool())
        .await?;
    Ok(row
        .map(|row| row.try_get::<Option<String>, _>("metadata_password"))
        .transpose()?
        .flatten()
        .unwrap_or_default())
}

/// Clears the metadata password of live instance `uuid` (Nova's
/// `os-server-password` DELETE): the guest may post a new one.
pub async fn clear_metadata_password(db: &Db, uuid: &str) -> Result<(), DbError> {
    sqlx::query("UPDATE instances SET metadata_password = NULL WHERE uuid = $1 AND deleted = 0")
        .bind(uuid)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Stores `password` as the metadata password of live instance `uuid`
/// unless it has one already: `false` when it had (the first one stays,
/// as Nova's metadata service keeps it).
pub async fn set_metadata_password_once(
    db: &Db,
    uuid: &str,
    password: &str,
) -> Result<bool, DbError> {
    let updated = sqlx::query(
        "UPDATE instances SET metadata_password = $1 WHERE uuid = $2 AND deleted = 0 \
         AND (metadata_password IS NULL OR metadata_password = '')",
    )
    .bind(password)
    .bind(uuid)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// The instances (deleted ones included) of `project` (every project when
/// `None`) that ran during `[begin, end)`: launched before `end` and not
/// terminated by `begin` (Nova's `get_active_by_window_joined`), ordered by
/// project and uuid, at most `limit` after the instance `marker`. `None`
/// when the marker names no instance.
pub async fn active_in_window(
    db: &Db,
    begin: &str,
    end: &str,
    project: Option<&str>,
    limit: usize,
    marker: Option<&str>,
) -> Result<Option<Vec<Instance>>, DbError> {
    let after = match marker {
        None => None,
        Some(marker) => match Instance::fetch(db.pool(), marker).await? {
            Some(instance) => Some((instance.project_id, instance.uuid)),
            None => return Ok(None),
        },
    };
    let mut clauses = novum_db::Clauses::default();
    let begin = clauses.text(begin);
    let end = clauses.text(end);
    clauses.push(format!(
        "(terminated_at IS NULL OR terminated_at > {begin}) AND launched_at < {end}"
    ));
    // One project's condition only when there is one: an index on
    // (project_id, uuid) then walks just that project, in order.
    if let Some(project) = project {
        let project = clauses.text(project);
        clauses.push(format!("project_id = {project}"));
    }
    if let Some((after_project, after_uuid)) = after {
        let after_project = clauses.text(&after_project);
        let after_uuid = clauses.text(&after_uuid);
        clauses.push(format!(
            "(project_id > {after_project} OR (project_id = {after_project} AND uuid > {after_uuid}))"
        ));
    }
    let sql = format!(
        "SELECT * FROM instances WHERE {} ORDER BY project_id, uuid LIMIT {}",
        clauses.sql(),
        i64::try_from(limit).unwrap_or(i64::MAX)
    );
    let instances = clauses
        .bind_all(sqlx::query_as::<_, Instance>(sqlx::AssertSqlSafe(sql)))
        .fetch_all(db.pool())
        .await?;
    Ok(Some(instances))
}

/// The live instances placed on `host`, oldest first.
pub async fn on_host(db: &Db, host: &str) -> Result<Vec<Instance>, DbError> {
    Ok(sqlx::query_as::<_, Instance>(
        "SELECT * FROM instances WHERE deleted = 0 AND host = $1 ORDER BY created_at, uuid",
    )
    .bind(host)
    .fetch_all(db.pool())
    .await?)
}
