//! The quota tables and the usage counts, in portable SQL. Every function
//! takes a connection so that it runs inside the caller's transaction (the
//! check and the insert of a create share one serialized transaction).

use std::collections::BTreeMap;

use novum_plugin_sdk::{FlavorUsage, KeyValue};
use sqlx::any::{Any, AnyArguments, AnyRow};
use sqlx::{AnyConnection, Row};

use super::resources::{LimitMap, Resource};
use novum_db::{self as db, Batch, DbError, Tx};

/// One statement with its values bound.
type AnyQuery<'q> = sqlx::query::Query<'q, Any, AnyArguments>;

/// The quota class that takes part in the lookup.
pub const DEFAULT_CLASS: &str = "default";

/// Rows of `(resource, hard_limit)` as a map; unknown resource names (from a
/// newer or older novum) are skipped.
fn limit_map(rows: Vec<sqlx::any::AnyRow>) -> Result<LimitMap, DbError> {
    let mut limits = LimitMap::new();
    for row in rows {
        let name: String = row.try_get("resource")?;
        if let Some(resource) = Resource::from_name(&name) {
            limits.insert(resource, row.try_get("hard_limit")?);
        }
    }
    Ok(limits)
}

/// The project-wide rows of `project` (no user).
pub async fn project_rows(conn: &mut AnyConnection, project: &str) -> Result<LimitMap, DbError> {
    let rows = sqlx::query(
        "SELECT resource, hard_limit FROM quotas WHERE project_id = $1 AND user_id = ''",
    )
    .bind(project)
    .fetch_all(&mut *conn)
    .await?;
    limit_map(rows)
}

/// The rows of `user` in `project`.
pub async fn user_rows(
    conn: &mut AnyConnection,
    project: &str,
    user: &str,
) -> Result<LimitMap, DbError> {
    let rows = sqlx::query(
        "SELECT resource, hard_limit FROM quotas WHERE project_id = $1 AND user_id = $2",
    )
    .bind(project)
    .bind(user)
    .fetch_all(&mut *conn)
    .await?;
    limit_map(rows)
}

/// Per resource, the sum of the user rows of `project` and whether any is
/// unlimited (−1).
pub async fn user_row_sums(
    conn: &mut AnyConnection,
    project: &str,
) -> Result<BTreeMap<Resource, i64>, DbError> {
    let rows = sqlx::query(
        "SELECT resource, hard_limit FROM quotas WHERE project_id = $1 AND user_id <> ''",
    )
    .bind(project)
    .fetch_all(&mut *conn)
    .await?;
    let mut sums = BTreeMap::new();
    for row in rows {
        let name: String = row.try_get("resource")?;
        let limit: i64 = row.try_get("hard_limit")?;
        if let Some(resource) = Resource::from_name(&name) {
            let sum = sums.entry(resource).or_insert(0_i64);
            *sum = if *sum < 0 || limit < 0 {
                -1
            } else {
                sum.saturating_add(limit)
            };
        }
    }
    Ok(sums)
}

/// The rows that make the limits of `user` in `project`, in one read: the
/// default quota class's, the project-wide ones and the user's own (the
/// last three layers of the lookup, over the configuration's defaults).
fn limit_layers_query<'q>(project: &'q str, user: &'q str) -> AnyQuery<'q> {
    sqlx::query(
        "SELECT CAST(0 AS BIGINT) AS layer, resource, hard_limit FROM quota_classes WHERE class_name = $1 \
         UNION ALL \
         SELECT CAST(CASE WHEN user_id = '' THEN 1 ELSE 2 END AS BIGINT) AS layer, resource, hard_limit \
         FROM quotas WHERE project_id = $2 AND (user_id = '' OR user_id = $3)",
    )
    .bind(DEFAULT_CLASS)
    .bind(project)
    .bind(user)
}

/// The layers [`limit_layers_query`]'s rows make.
fn limit_layers_of(rows: Vec<AnyRow>) -> Result<[LimitMap; 3], DbError> {
    let mut layers: [LimitMap; 3] = Default::default();
    for row in rows {
        let layer: i64 = row.try_get("layer")?;
        let name: String = row.try_get("resource")?;
        if let (Some(limits), Some(resource)) = (
            usize::try_from(layer)
                .ok()
                .and_then(|layer| layers.get_mut(layer)),
            Resource::from_name(&name),
        ) {
            limits.insert(resource, row.try_get("hard_limit")?);
        }
    }
    Ok(layers)
}

/// What a check of `user`'s instances in `project` reads, in one hand-off
/// to the database inside the check's transaction `tx`: the limit layers
/// (see [`limit_layers_query`]) and the project's usage (see
/// [`project_usage`]).
pub async fn limits_and_usage(
    tx: &mut Tx,
    project: &str,
    user: &str,
) -> Result<([LimitMap; 3], ProjectUsage), DbError> {
    let mut reads = Batch::new();
    reads.push(limit_layers_query(project, user))?;
    reads.push(project_usage_query(project))?;
    let mut answers = reads.fetch_each(tx).await?.into_iter();
    let mut next = || answers.next().map(|answer| answer.rows).unwrap_or_default();
    let layers = limit_layers_of(next())?;
    Ok((layers, project_usage_of(next())?))
}

/// The rows of quota class `class`.
pub async fn class_rows(conn: &mut AnyConnection, class: &str) -> Result<LimitMap, DbError> {
    let rows = sqlx::query("SELECT resource, hard_limit FROM quota_classes WHERE class_name = $1")
        .bind(class)
        .fetch_all(&mut *conn)
        .await?;
    limit_map(rows)
}

/// Sets the limit of `resource` for `project` (and `user`, when given).
pub async fn set_limit(
    conn: &mut AnyConnection,
    project: &str,
    user: Option<&str>,
    resource: Resource,
    limit: i64,
) -> Result<(), DbError> {
    let now = db::now();
    sqlx::query(
        "INSERT INTO quotas (project_id, user_id, resource, hard_limit, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) \
         ON CONFLICT (project_id, user_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit, updated_at = excluded.updated_at",
    )
    .bind(project)
    .bind(user.unwrap_or(""))
    .bind(resource.name())
    .bind(limit)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes the rows of `user` in `project`, or, without a user, every row of
/// `project` (its users' included), as Nova does.
pub async fn delete_limits(
    conn: &mut AnyConnection,
    project: &str,
    user: Option<&str>,
) -> Result<(), DbError> {
    match user {
        Some(user) => {
            sqlx::query("DELETE FROM quotas WHERE project_id = $1 AND user_id = $2")
                .bind(project)
                .bind(user)
                .execute(&mut *conn)
                .await?;
        }
        None => {
            sqlx::query("DELETE FROM quotas WHERE project_id = $1")
                .bind(project)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// Sets the limit of `resource` in quota class `class`.
pub async fn set_class_limit(
    conn: &mut AnyConnection,
    class: &str,
    resource: Resource,
    limit: i64,
) -> Result<(), DbError> {
    let now = db::now();
    sqlx::query(
        "INSERT INTO quota_classes (class_name, resource, hard_limit, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (class_name, resource) DO UPDATE SET hard_limit = excluded.hard_limit, updated_at = excluded.updated_at",
    )
    .bind(class)
    .bind(resource.name())
    .bind(limit)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Instances, cores and ram in use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstanceUsage {
    /// Instances not deleted.
    pub instances: i64,
    /// Their vCPUs.
    pub cores: i64,
    /// Their RAM, MiB.
    pub ram: i64,
}

/// Counts the instances of `project` (of `user` in it, when given).
///
/// Counting rule: every row not deleted counts, whatever its state (building,
/// error, stopped, shelved, soft-deleted). `vcpus`/`memory_mb` are what the
/// instance holds: its flavor, or, while a resize awaits confirmation
/// (VERIFY_RESIZE), the larger of the old and new flavor per resource, so a
/// revert can never find the old resources taken.
///
/// Read from `instance_usage`, which the database's triggers keep equal to
/// that count at every commit (migration 0113): a few rows, however many
/// instances the project has.
pub async fn count_instances(
    conn: &mut AnyConnection,
    project: &str,
    user: Option<&str>,
) -> Result<InstanceUsage, DbError> {
    const COLUMNS: &str = "SELECT CAST(COALESCE(SUM(instances), 0) AS BIGINT) AS instances, \
                           CAST(COALESCE(SUM(cores), 0) AS BIGINT) AS cores, \
                           CAST(COALESCE(SUM(ram), 0) AS BIGINT) AS ram FROM instance_usage";
    let row = match user {
        Some(user) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "{COLUMNS} WHERE project_id = $1 AND user_id = $2"
            )))
            .bind(project)
            .bind(user)
            .fetch_one(&mut *conn)
            .await?
        }
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "{COLUMNS} WHERE project_id = $1"
            )))
            .bind(project)
            .fetch_one(&mut *conn)
            .await?
        }
    };
    Ok(InstanceUsage {
        instances: row.try_get("instances")?,
        cores: row.try_get("cores")?,
        ram: row.try_get("ram")?,
    })
}

/// The server groups of `project` (of `user` in it, when given).
pub async fn count_server_groups(
    conn: &mut AnyConnection,
    project: &str,
    user: Option<&str>,
) -> Result<i64, DbError> {
    let row =
        match user {
            Some(user) => sqlx::query(
                "SELECT COUNT(*) AS n FROM server_groups WHERE project_id = $1 AND user_id = $2",
            )
            .bind(project)
            .bind(user)
            .fetch_one(&mut *conn)
            .await?,
            None => {
                sqlx::query("SELECT COUNT(*) AS n FROM server_groups WHERE project_id = $1")
                    .bind(project)
                    .fetch_one(&mut *conn)
                    .await?
            }
        };
    Ok(row.try_get("n")?)
}

/// The key pairs of `user` (key pairs belong to users, not projects).
pub async fn count_key_pairs(conn: &mut AnyConnection, user: &str) -> Result<i64, DbError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM keypairs WHERE user_id = $1")
        .bind(user)
        .fetch_one(&mut *conn)
        .await?;
    Ok(row.try_get("n")?)
}

/// The members of server group `group` that `user` created and that are not
/// deleted (Nova counts group members per user).
pub async fn count_group_members(
    conn: &mut AnyConnection,
    group: &str,
    user: &str,
) -> Result<i64, DbError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM server_group_members m JOIN instances i ON i.uuid = m.instance_uuid \
         WHERE m.group_uuid = $1 AND i.user_id = $2 AND i.deleted = 0",
    )
    .bind(group)
    .bind(user)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("n")?)
}

/// The instances of `project` by flavor (name and extra specs from each
/// instance's flavor snapshot), for policies that limit flavor classes.
pub async fn flavor_usage(
    conn: &mut AnyConnection,
    project: &str,
) -> Result<Vec<FlavorUsage>, DbError> {
    Ok(project_usage(conn, project).await?.1)
}

/// What a project uses: its instances, cores and ram in all, and its
/// instances by flavor.
pub type ProjectUsage = (InstanceUsage, Vec<FlavorUsage>);

/// What `project` uses, in one statement: its instances, cores and ram in
/// all ([`count_instances`]), and its instances by flavor
/// ([`flavor_usage`]).
pub async fn project_usage(
    conn: &mut AnyConnection,
    project: &str,
) -> Result<ProjectUsage, DbError> {
    project_usage_of(project_usage_query(project).fetch_all(&mut *conn).await?)
}

/// The statement of [`project_usage`].
fn project_usage_query(project: &str) -> AnyQuery<'_> {
    sqlx::query(
        "SELECT flavor, CAST(SUM(instances) AS BIGINT) AS n, CAST(SUM(cores) AS BIGINT) AS cores, \
         CAST(SUM(ram) AS BIGINT) AS ram FROM instance_usage WHERE project_id = $1 \
         GROUP BY flavor ORDER BY flavor",
    )
    .bind(project)
}

/// The usage [`project_usage_query`]'s rows make.
fn project_usage_of(rows: Vec<AnyRow>) -> Result<ProjectUsage, DbError> {
    let mut total = InstanceUsage::default();
    let mut by_name: BTreeMap<String, FlavorUsage> = BTreeMap::new();
    for row in rows {
        let count: i64 = row.try_get("n")?;
        total.instances += count;
        total.cores += row.try_get::<i64, _>("cores")?;
        total.ram += row.try_get::<i64, _>("ram")?;
        if count <= 0 {
            continue;
        }
        let text: String = row.try_get("flavor")?;
        let snapshot: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let name = snapshot
            .get("name")
            .and_then(|name| name.as_str())
            .unwrap_or_default()
            .to_string();
        let extra_specs: Vec<KeyValue> = snapshot
            .get("extra_specs")
            .and_then(|specs| specs.as_object())
            .map(|specs| {
                specs
                    .iter()
                    .map(|(key, value)| KeyValue {
                        key: key.clone(),
                        value: value
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| value.to_string()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let key = format!(
            "{name}\u{0}{}",
            serde_json::to_string(&snapshot.get("extra_specs")).unwrap_or_default()
        );
        let entry = by_name.entry(key).or_insert_with(|| FlavorUsage {
            flavor_name: name,
            extra_specs,
            count: 0,
        });
        entry.count = entry
            .count
            .saturating_add(u32::try_from(count).unwrap_or(u32::MAX));
    }
    Ok((total, by_name.into_values().collect()))
}
