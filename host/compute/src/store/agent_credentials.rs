//! The `agent_credentials` table: one credential per compute host, kept as
//! the SHA-256 of the token its agent presents (`rpc::hash_token`).

use std::collections::HashMap;

use sqlx::Row;

use novum_db::{self as db, Db, DbError, Tx};

/// Whether `token_hash` is the credential of `host`.
pub async fn is_valid(db: &Db, host: &str, token_hash: &str) -> Result<bool, DbError> {
    Ok(
        sqlx::query("SELECT host FROM agent_credentials WHERE host = $1 AND token_hash = $2")
            .bind(host)
            .bind(token_hash)
            .fetch_optional(db.pool())
            .await?
            .is_some(),
    )
}

/// Every host's credential: host → token hash.
pub async fn all(db: &Db) -> Result<HashMap<String, String>, DbError> {
    let rows = sqlx::query("SELECT host, token_hash FROM agent_credentials")
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("host")?, row.try_get("token_hash")?)))
        .collect()
}

/// Makes `token_hash` the one credential of `host`, revoking the previous.
pub async fn replace(tx: &mut Tx, host: &str, token_hash: &str) -> Result<(), DbError> {
    sqlx::query("DELETE FROM agent_credentials WHERE host = $1")
        .bind(host)
        .execute(&mut **tx)
        .await?;
    sqlx::query("INSERT INTO agent_credentials (host, token_hash, created_at) VALUES ($1, $2, $3)")
        .bind(host)
        .bind(token_hash)
        .bind(db::now())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
