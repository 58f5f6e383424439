//! The `instances` table (and the server groups it refers to), for the
//! reads the compute API makes outside the conductor's operations.

use sqlx::Row;

use crate::conductor::model::Instance;
use novum_db::{Db, DbError};

/// The uuid and host of every live instance placed on a host, oldest first.
pub async fn placed(db: &Db) -> Result<Vec<(String, String)>, DbError> {
    let rows = sqlx::query(
        "SELECT uuid, host FROM instances WHERE deleted = 0 AND host IS NOT NULL ORDER BY created_at, uuid",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("uuid")?, row.try_get("host")?)))
        .collect()
}

/// Every instance, deleted ones included, newest first.
pub async fn all_newest_first(db: &Db) -> Result<Vec<Instance>, DbError> {
    Ok(
        sqlx::query_as::<_, Instance>(
            "SELECT * FROM instances ORDER BY created_at DESC, uuid DESC",
        )
        .fetch_all(db.pool())
        .await?,
    )
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
