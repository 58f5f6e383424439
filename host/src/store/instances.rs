//! The `instances` table, for the reads and writes the compute API makes
//! outside the conductor's operations.

use sqlx::Row;

use crate::db::{Db, DbError};

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
