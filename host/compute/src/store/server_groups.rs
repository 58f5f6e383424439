//! Server groups: their rows and live members (instances not deleted, by
//! creation). Creating and deleting send Nova's `server_group.create` and
//! `server_group.delete` in the transaction of the change.

use serde_json::{Map, Value};
use sqlx::Row;

use crate::conductor::{Result, notices};
use novum_db::{self as db, Db, Tx};
use novum_notify::Publisher;
use novum_notify::payload::ServerGroupPayload;

/// A server group with its live members.
#[derive(Clone, Debug)]
pub struct ServerGroup {
    /// The UUID (the API's `id`).
    pub uuid: String,
    /// The name.
    pub name: String,
    /// `affinity`, `anti-affinity`, `soft-affinity` or `soft-anti-affinity`.
    pub policy: String,
    /// The policy's rules (`max_server_per_host`).
    pub rules: Map<String, Value>,
    /// The owning project.
    pub project_id: String,
    /// The creating user.
    pub user_id: String,
    /// The UUIDs of its instances that are not deleted, oldest first.
    pub members: Vec<String>,
}

/// Which groups [`load`] reads.
enum Selection<'a> {
    /// Group `uuid`.
    One(&'a str),
    /// The groups of one project.
    Project(&'a str),
    /// Every group.
    All,
}

async fn load(db: &Db, selection: Selection<'_>) -> Result<Vec<ServerGroup>> {
    let rows = match selection {
        Selection::One(uuid) => {
            sqlx::query("SELECT * FROM server_groups WHERE uuid = $1")
                .bind(uuid)
                .fetch_all(db.pool())
                .await?
        }
        Selection::Project(project) => {
            sqlx::query(
                "SELECT * FROM server_groups WHERE project_id = $1 ORDER BY created_at, uuid",
            )
            .bind(project)
            .fetch_all(db.pool())
            .await?
        }
        Selection::All => {
            sqlx::query("SELECT * FROM server_groups ORDER BY created_at, uuid")
                .fetch_all(db.pool())
                .await?
        }
    };
    let members = sqlx::query(
        "SELECT m.group_uuid, m.instance_uuid FROM server_group_members m \
         JOIN instances i ON i.uuid = m.instance_uuid AND i.deleted = 0 ORDER BY i.created_at, m.instance_uuid",
    )
    .fetch_all(db.pool())
    .await?;
    let mut groups = Vec::with_capacity(rows.len());
    for row in rows {
        let uuid: String = row.try_get("uuid")?;
        let mut group_members = Vec::new();
        for member in &members {
            if member.try_get::<String, _>("group_uuid")? == uuid {
                group_members.push(member.try_get("instance_uuid")?);
            }
        }
        groups.push(ServerGroup {
            name: row.try_get("name")?,
            policy: row.try_get("policy")?,
            rules: serde_json::from_str(&row.try_get::<String, _>("rules")?).unwrap_or_default(),
            project_id: row.try_get("project_id")?,
            user_id: row.try_get("user_id")?,
            members: group_members,
            uuid,
        });
    }
    Ok(groups)
}

/// The groups of `project` (every project's when `None`), oldest first,
/// `offset` skipped and at most `limit`.
pub async fn list(
    db: &Db,
    project: Option<&str>,
    offset: usize,
    limit: usize,
) -> Result<Vec<ServerGroup>> {
    let selection = match project {
        Some(project) => Selection::Project(project),
        None => Selection::All,
    };
    Ok(load(db, selection)
        .await?
        .into_iter()
        .skip(offset)
        .take(limit)
        .collect())
}

/// Group `uuid` with its members, if there is one.
pub async fn get(db: &Db, uuid: &str) -> Result<Option<ServerGroup>> {
    Ok(load(db, Selection::One(uuid)).await?.into_iter().next())
}

/// Inserts `group` (its members are ignored) in `tx`, which holds the
/// server-groups quota check, sends `server_group.create` and commits.
pub async fn create(mut tx: Tx, publisher: &Publisher, group: &ServerGroup) -> Result<()> {
    sqlx::query(
        "INSERT INTO server_groups (uuid, name, policy, rules, project_id, user_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&group.uuid)
    .bind(&group.name)
    .bind(&group.policy)
    .bind(Value::Object(group.rules.clone()).to_string())
    .bind(&group.project_id)
    .bind(&group.user_id)
    .bind(db::now())
    .execute(&mut *tx)
    .await?;
    if let Some(payload) = payload(&mut tx, &group.uuid).await? {
        notices::server_group(&mut tx, publisher, payload, "create").await?;
    }
    novum_notify::commit(tx).await?;
    Ok(())
}

/// Deletes group `uuid` and its memberships, sending `server_group.delete`
/// (with the members it had) when the group was there.
pub async fn delete(db: &Db, publisher: &Publisher, uuid: &str) -> Result<()> {
    let mut tx = db.begin().await?;
    let payload = payload(&mut tx, uuid).await?;
    sqlx::query("DELETE FROM server_group_members WHERE group_uuid = $1")
        .bind(uuid)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM server_groups WHERE uuid = $1")
        .bind(uuid)
        .execute(&mut *tx)
        .await?;
    if let Some(payload) = payload {
        notices::server_group(&mut tx, publisher, payload, "delete").await?;
    }
    novum_notify::commit(tx).await?;
    Ok(())
}

/// Server group `uuid` as a `ServerGroupPayload` (members and their hosts
/// included), read in `tx`.
pub async fn payload(tx: &mut Tx, uuid: &str) -> Result<Option<ServerGroupPayload>> {
    let Some(row) = sqlx::query(
        "SELECT uuid, name, policy, rules, project_id, user_id FROM server_groups WHERE uuid = $1",
    )
    .bind(uuid)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let members = sqlx::query(
        "SELECT m.instance_uuid, i.host FROM server_group_members m \
         LEFT JOIN instances i ON i.uuid = m.instance_uuid AND i.deleted = 0 \
         WHERE m.group_uuid = $1 ORDER BY m.instance_uuid",
    )
    .bind(uuid)
    .fetch_all(&mut **tx)
    .await?;
    let mut uuids = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    for member in members {
        uuids.push(member.try_get::<String, _>("instance_uuid")?);
        if let Some(host) = member.try_get::<Option<String>, _>("host")?
            && !hosts.contains(&host)
        {
            hosts.push(host);
        }
    }
    let policy: String = row.try_get("policy")?;
    let rules: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&row.try_get::<String, _>("rules")?).unwrap_or_default();
    Ok(Some(ServerGroupPayload {
        uuid: row.try_get("uuid")?,
        name: row.try_get("name")?,
        user_id: row.try_get("user_id")?,
        project_id: row.try_get("project_id")?,
        policies: Some(vec![policy.clone()]),
        members: Some(uuids),
        hosts: Some(hosts),
        policy: Some(policy),
        rules: rules
            .into_iter()
            .map(|(key, value)| {
                let text = value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| value.to_string());
                (key, text)
            })
            .collect(),
    }))
}
