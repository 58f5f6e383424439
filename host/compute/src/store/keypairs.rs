//! Key pairs: one user's named public keys. A key pair is created under
//! its project's quota lock, after the key-pairs quota check, in one
//! transaction the caller commits (after adding its notifications).

use sqlx::Row;

use crate::conductor::{ConductorError, Result};
use novum_db::{self as db, Db, DbError, Tx};
use novum_quota::Quota;

/// A key pair row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KeypairRow {
    /// The owner.
    pub user_id: String,
    /// Name (unique per user).
    pub name: String,
    /// The public key or certificate.
    pub public_key: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// `ssh` or `x509`.
    pub key_type: String,
    /// Created.
    pub created_at: String,
    /// Database id.
    pub id: i64,
}

/// A key pair to create.
#[derive(Clone, Debug)]
pub struct NewKeypair {
    /// The owner.
    pub user_id: String,
    /// Name.
    pub name: String,
    /// The public key or certificate.
    pub public_key: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// `ssh` or `x509`.
    pub key_type: String,
}

/// Creates `key` for a request of `project` (`request_id` for the quota
/// policies): takes the project's quota lock, checks the key-pairs quota,
/// refuses a name the user already has (conflict) and inserts it. Returns
/// the open transaction, for the caller's notifications and commit, and
/// the new row.
pub async fn create(
    quota: &Quota,
    project: &str,
    request_id: &str,
    key: NewKeypair,
) -> Result<(Tx, KeypairRow)> {
    let mut tx = quota.begin(project).await?;
    quota
        .check_key_pairs(&mut tx, project, &key.user_id, 1, request_id)
        .await?;
    let exists = sqlx::query("SELECT name FROM keypairs WHERE user_id = $1 AND name = $2")
        .bind(&key.user_id)
        .bind(&key.name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(DbError::from)?;
    if exists.is_some() {
        return Err(ConductorError::Conflict(format!(
            "Key pair '{}' already exists.",
            key.name
        )));
    }
    let created_at = db::now();
    let id = db::insert_returning_id(
        &mut tx,
        sqlx::query(
            "INSERT INTO keypairs (user_id, name, public_key, fingerprint, key_type, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(&key.user_id)
        .bind(&key.name)
        .bind(&key.public_key)
        .bind(&key.fingerprint)
        .bind(&key.key_type)
        .bind(&created_at),
    )
    .await?;
    let row = KeypairRow {
        user_id: key.user_id,
        name: key.name,
        public_key: key.public_key,
        fingerprint: key.fingerprint,
        key_type: key.key_type,
        created_at,
        id,
    };
    Ok((tx, row))
}

/// The key pairs of `user`, by name.
pub async fn list(db: &Db, user: &str) -> Result<Vec<KeypairRow>, DbError> {
    Ok(
        sqlx::query_as::<_, KeypairRow>("SELECT * FROM keypairs WHERE user_id = $1 ORDER BY name")
            .bind(user)
            .fetch_all(db.pool())
            .await?,
    )
}

/// Key pair `name` of `user`; not found when there is none.
pub async fn get(db: &Db, user: &str, name: &str) -> Result<KeypairRow> {
    sqlx::query_as::<_, KeypairRow>("SELECT * FROM keypairs WHERE user_id = $1 AND name = $2")
        .bind(user)
        .bind(name)
        .fetch_optional(db.pool())
        .await
        .map_err(DbError::from)?
        .ok_or_else(|| {
            ConductorError::NotFound(format!("Keypair {name} not found for user {user}"))
        })
}

/// Deletes key pair `name` of `user` in `tx`; whether there was one.
pub async fn delete(tx: &mut Tx, user: &str, name: &str) -> Result<bool, DbError> {
    let deleted = sqlx::query("DELETE FROM keypairs WHERE user_id = $1 AND name = $2")
        .bind(user)
        .bind(name)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(deleted > 0)
}

/// The public key of key pair `name` of `user` (for server create).
pub async fn public_key_of(db: &Db, user: &str, name: &str) -> Result<Option<String>, DbError> {
    Ok(
        sqlx::query("SELECT public_key FROM keypairs WHERE user_id = $1 AND name = $2")
            .bind(user)
            .bind(name)
            .fetch_optional(db.pool())
            .await?
            .map(|row| row.try_get::<String, _>("public_key"))
            .transpose()?,
    )
}
