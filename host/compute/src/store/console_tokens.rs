//! Console authorization tokens (Nova's `console_auth_tokens`): what a
//! console URL's token opens. Only the token's SHA-256 is stored; a token is
//! taken once ([`take`] deletes it) and refused after it expires.

use std::time::Duration;

use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;

use novum_db::{self as db, Db, DbError};

/// A token just issued: the secret for the URL, and when it expires.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token (hex, 256 random bits); shown once, stored hashed.
    pub token: String,
    /// Expiry (API timestamp).
    pub expires_at: String,
}

/// What a valid token opens: a console on an agent host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleTarget {
    /// The instance.
    pub instance_uuid: String,
    /// The console type (`serial`).
    pub console_type: String,
    /// Address to connect to.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Issues a token for the `console_type` console of `instance_uuid` at
/// `host:port`, valid for `ttl`; expired tokens are purged on the way.
pub async fn issue(
    db: &Db,
    instance_uuid: &str,
    console_type: &str,
    host: &str,
    port: u16,
    ttl: Duration,
) -> Result<IssuedToken, DbError> {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let now = chrono::Utc::now();
    let expires_at =
        db::timestamp(now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX));
    let now = db::timestamp(now);
    sqlx::query("DELETE FROM console_auth_tokens WHERE expires_at < $1")
        .bind(&now)
        .execute(db.pool())
        .await?;
    sqlx::query(
        "INSERT INTO console_auth_tokens (token_hash, console_type, host, port, instance_uuid, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(hash(&token))
    .bind(console_type)
    .bind(host)
    .bind(i64::from(port))
    .bind(instance_uuid)
    .bind(&expires_at)
    .bind(&now)
    .execute(db.pool())
    .await?;
    Ok(IssuedToken { token, expires_at })
}

/// Takes `token`: what it opens if it is known, unexpired and its instance
/// not deleted; either way it cannot be used again.
pub async fn take(db: &Db, token: &str) -> Result<Option<ConsoleTarget>, DbError> {
    let row = sqlx::query(
        "DELETE FROM console_auth_tokens WHERE token_hash = $1 \
         RETURNING console_type, host, port, instance_uuid, expires_at",
    )
    .bind(hash(token))
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let expires_at: String = row.try_get("expires_at")?;
    if expires_at < db::now() {
        return Ok(None);
    }
    let instance_uuid: String = row.try_get("instance_uuid")?;
    // A deleted instance's console opens no more (Nova deletes its tokens).
    let live: Option<i64> =
        sqlx::query_scalar("SELECT COUNT(*) FROM instances WHERE uuid = $1 AND deleted = 0")
            .bind(&instance_uuid)
            .fetch_optional(db.pool())
            .await?;
    if live.unwrap_or(0) == 0 {
        return Ok(None);
    }
    let port: i64 = row.try_get("port")?;
    let Ok(port) = u16::try_from(port) else {
        return Ok(None);
    };
    Ok(Some(ConsoleTarget {
        instance_uuid,
        console_type: row.try_get("console_type")?,
        host: row.try_get("host")?,
        port,
    }))
}
