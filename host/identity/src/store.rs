//! Identity records in the database: projects, users, roles and role
//! assignments (all in the implicit domain `default`).

use sqlx::Row;
use sqlx::any::AnyRow;

use novum_db::{Db, DbError};

/// The id of the one domain.
pub const DEFAULT_DOMAIN_ID: &str = "default";
/// The name of the one domain.
pub const DEFAULT_DOMAIN_NAME: &str = "Default";
/// The roles created at first start, each implying the next
/// (admin ⊃ manager ⊃ member ⊃ reader), as Keystone's bootstrap (2024.2 on)
/// creates them.
pub const DEFAULT_ROLES: [&str; 4] = ["admin", "manager", "member", "reader"];

/// The role of other services' users (a network or volume service telling
/// compute about a server's events), made at bootstrap as devstack makes
/// it; it implies nothing and nothing implies it.
pub const SERVICE_ROLE: &str = "service";

/// A project.
#[derive(Clone, Debug, PartialEq)]
pub struct Project {
    /// Id (uuid hex).
    pub id: String,
    /// Name, unique in its domain.
    pub name: String,
    /// Domain id (always `default`).
    pub domain_id: String,
    /// Free text.
    pub description: String,
    /// Disabled projects cannot be scoped to.
    pub enabled: bool,
}

/// A user.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    /// Id (uuid hex).
    pub id: String,
    /// Name, unique in its domain.
    pub name: String,
    /// Domain id (always `default`).
    pub domain_id: String,
    /// The project a token without scope is scoped to, if the user has a role there.
    pub default_project_id: Option<String>,
    /// E-mail address (free text).
    pub email: Option<String>,
    /// Free text.
    pub description: String,
    /// Disabled users cannot authenticate, their tokens stop validating.
    pub enabled: bool,
    /// argon2 PHC string.
    pub password_hash: Option<String>,
}

/// A role.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Role {
    /// Id (uuid hex).
    pub id: String,
    /// Name, unique.
    pub name: String,
}

/// One role assignment: `user` holds `role` on `project`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The user.
    pub user_id: String,
    /// The project.
    pub project_id: String,
    /// The role.
    pub role_id: String,
}

/// A new random id in Keystone's shape (32 hex digits).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn project_from(row: &AnyRow) -> Result<Project, sqlx::Error> {
    Ok(Project {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        domain_id: row.try_get("domain_id")?,
        description: row.try_get("description")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
    })
}

fn user_from(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        domain_id: row.try_get("domain_id")?,
        default_project_id: row.try_get("default_project_id")?,
        email: row.try_get("email")?,
        description: row.try_get("description")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        password_hash: row.try_get("password_hash")?,
    })
}

fn role_from(row: &AnyRow) -> Result<Role, sqlx::Error> {
    Ok(Role {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
    })
}

const PROJECT_COLUMNS: &str = "id, name, domain_id, description, enabled";
const USER_COLUMNS: &str =
    "id, name, domain_id, default_project_id, email, description, enabled, password_hash";

/// A list filter: an optional name and enabled flag.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Exact name.
    pub name: Option<String>,
    /// Enabled or disabled only.
    pub enabled: Option<bool>,
}

impl ListFilter {
    fn sql(&self) -> (String, Vec<String>) {
        let mut clauses = Vec::new();
        let mut binds = Vec::new();
        if let Some(name) = &self.name {
            binds.push(name.clone());
            clauses.push(format!("name = ${}", binds.len()));
        }
        if let Some(enabled) = self.enabled {
            clauses.push(format!("enabled = {}", i64::from(enabled)));
        }
        let sql = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        (sql, binds)
    }
}

async fn fetch_list<T>(
    db: &Db,
    select: &str,
    filter: &ListFilter,
    map: fn(&AnyRow) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, DbError> {
    let (where_sql, binds) = filter.sql();
    let sql = format!("{select}{where_sql} ORDER BY name, id");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for bind in binds {
        query = query.bind(bind);
    }
    let rows = query.fetch_all(db.pool()).await?;
    Ok(rows.iter().map(map).collect::<Result<_, _>>()?)
}

/// Projects matching `filter`, by name.
pub async fn list_projects(db: &Db, filter: &ListFilter) -> Result<Vec<Project>, DbError> {
    fetch_list(
        db,
        &format!("SELECT {PROJECT_COLUMNS} FROM identity_projects"),
        filter,
        project_from,
    )
    .await
}

/// The project with `id`.
pub async fn get_project(db: &Db, id: &str) -> Result<Option<Project>, DbError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {PROJECT_COLUMNS} FROM identity_projects WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.as_ref().map(project_from).transpose()?)
}

/// The project named `name` in the default domain.
pub async fn get_project_by_name(db: &Db, name: &str) -> Result<Option<Project>, DbError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {PROJECT_COLUMNS} FROM identity_projects WHERE domain_id = $1 AND name = $2"
    )))
    .bind(DEFAULT_DOMAIN_ID)
    .bind(name)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.as_ref().map(project_from).transpose()?)
}

/// Inserts `project`; `Err` with a unique violation when the name is taken.
pub async fn insert_project(db: &Db, project: &Project) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO identity_projects (id, name, domain_id, description, enabled, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&project.id)
    .bind(&project.name)
    .bind(&project.domain_id)
    .bind(&project.description)
    .bind(i64::from(project.enabled))
    .bind(novum_db::now())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Writes `project`'s name, description and enabled flag.
pub async fn update_project(db: &Db, project: &Project) -> Result<bool, DbError> {
    let result = sqlx::query(
        "UPDATE identity_projects SET name = $1, description = $2, enabled = $3 WHERE id = $4",
    )
    .bind(&project.name)
    .bind(&project.description)
    .bind(i64::from(project.enabled))
    .bind(&project.id)
    .execute(db.pool())
    .await?;
    Ok(result.rows_affected() > 0)
}

/// Deletes a project (its role assignments go with it).
pub async fn delete_project(db: &Db, id: &str) -> Result<bool, DbError> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM identity_role_assignments WHERE project_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let result = sqlx::query("DELETE FROM identity_projects WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(result.rows_affected() > 0)
}

/// Users matching `filter`, by name.
pub async fn list_users(db: &Db, filter: &ListFilter) -> Result<Vec<User>, DbError> {
    fetch_list(
        db,
        &format!("SELECT {USER_COLUMNS} FROM identity_users"),
        filter,
        user_from,
    )
    .await
}

/// The user with `id`.
pub async fn get_user(db: &Db, id: &str) -> Result<Option<User>, DbError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM identity_users WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.as_ref().map(user_from).transpose()?)
}

/// The user named `name` in the default domain.
pub async fn get_user_by_name(db: &Db, name: &str) -> Result<Option<User>, DbError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM identity_users WHERE domain_id = $1 AND name = $2"
    )))
    .bind(DEFAULT_DOMAIN_ID)
    .bind(name)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.as_ref().map(user_from).transpose()?)
}

/// Inserts `user`; `Err` with a unique violation when the name is taken.
pub async fn insert_user(db: &Db, user: &User) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO identity_users (id, name, domain_id, password_hash, default_project_id, email, description, enabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&user.id)
    .bind(&user.name)
    .bind(&user.domain_id)
    .bind(&user.password_hash)
    .bind(&user.default_project_id)
    .bind(&user.email)
    .bind(&user.description)
    .bind(i64::from(user.enabled))
    .bind(novum_db::now())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Writes every mutable field of `user`.
pub async fn update_user(db: &Db, user: &User) -> Result<bool, DbError> {
    let result = sqlx::query(
        "UPDATE identity_users SET name = $1, password_hash = $2, default_project_id = $3, email = $4, description = $5, enabled = $6 WHERE id = $7",
    )
    .bind(&user.name)
    .bind(&user.password_hash)
    .bind(&user.default_project_id)
    .bind(&user.email)
    .bind(&user.description)
    .bind(i64::from(user.enabled))
    .bind(&user.id)
    .execute(db.pool())
    .await?;
    Ok(result.rows_affected() > 0)
}

/// A user's run of failed password authentications (Keystone's
/// `failed_auth_count` and `failed_auth_at`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthFailures {
    /// Consecutive failures since the last success (or the last lockout that ran out).
    pub count: i64,
    /// When the last one happened ([`novum_db::timestamp`]).
    pub last_at: Option<String>,
}

/// The failed-authentication run of user `id` (none recorded: zero).
pub async fn auth_failures(db: &Db, id: &str) -> Result<AuthFailures, DbError> {
    let row =
        sqlx::query("SELECT failed_auth_count, failed_auth_at FROM identity_users WHERE id = $1")
            .bind(id)
            .fetch_optional(db.pool())
            .await?;
    let Some(row) = row else {
        return Ok(AuthFailures::default());
    };
    Ok(AuthFailures {
        count: row.try_get("failed_auth_count")?,
        last_at: row.try_get("failed_auth_at")?,
    })
}

/// Counts one failed authentication of user `id` at `now`, in one statement
/// (concurrent failures all count). A run that had reached `attempts` and
/// whose lockout ran out (its last failure before `expired_before`) starts
/// over at 1. Returns the run's length right after this failure (its own
/// statement's answer: of concurrent failures, each sees its own count, so
/// exactly one sees the run reach `attempts`); 0 for an unknown user.
pub async fn record_failed_auth(
    db: &Db,
    id: &str,
    now: &str,
    attempts: i64,
    expired_before: &str,
) -> Result<i64, DbError> {
    let count = sqlx::query_scalar(
        "UPDATE identity_users SET failed_auth_count = CASE \
         WHEN failed_auth_count >= $1 AND failed_auth_at < $2 THEN 1 \
         ELSE failed_auth_count + 1 END, failed_auth_at = $3 WHERE id = $4 \
         RETURNING failed_auth_count",
    )
    .bind(attempts)
    .bind(expired_before)
    .bind(now)
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    Ok(count.unwrap_or(0))
}

/// Ends user `id`'s run of failed authentications (a success).
pub async fn reset_failed_auth(db: &Db, id: &str) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE identity_users SET failed_auth_count = 0, failed_auth_at = NULL \
         WHERE id = $1 AND failed_auth_count <> 0",
    )
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Deletes a user (their role assignments go with them).
pub async fn delete_user(db: &Db, id: &str) -> Result<bool, DbError> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM identity_role_assignments WHERE user_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let result = sqlx::query("DELETE FROM identity_users WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(result.rows_affected() > 0)
}

/// Roles matching `filter` (only the name applies), by name.
pub async fn list_roles(db: &Db, filter: &ListFilter) -> Result<Vec<Role>, DbError> {
    let filter = ListFilter {
        name: filter.name.clone(),
        enabled: None,
    };
    fetch_list(
        db,
        "SELECT id, name FROM identity_roles",
        &filter,
        role_from,
    )
    .await
}

/// The role with `id`.
pub async fn get_role(db: &Db, id: &str) -> Result<Option<Role>, DbError> {
    let row = sqlx::query("SELECT id, name FROM identity_roles WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.as_ref().map(role_from).transpose()?)
}

/// The role named `name`.
pub async fn get_role_by_name(db: &Db, name: &str) -> Result<Option<Role>, DbError> {
    let row = sqlx::query("SELECT id, name FROM identity_roles WHERE name = $1")
        .bind(name)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.as_ref().map(role_from).transpose()?)
}

/// Inserts `role`; `Err` with a unique violation when the name is taken.
pub async fn insert_role(db: &Db, role: &Role) -> Result<(), DbError> {
    sqlx::query("INSERT INTO identity_roles (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&role.id)
        .bind(&role.name)
        .bind(novum_db::now())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Deletes a role (its assignments go with it).
pub async fn delete_role(db: &Db, id: &str) -> Result<bool, DbError> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM identity_role_assignments WHERE role_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let result = sqlx::query("DELETE FROM identity_roles WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(result.rows_affected() > 0)
}

/// Grants `role_id` to `user_id` on `project_id` (idempotent).
pub async fn grant(db: &Db, user_id: &str, project_id: &str, role_id: &str) -> Result<(), DbError> {
    let mut tx = db.begin_serialized("identity-assignments").await?;
    let exists = sqlx::query(
        "SELECT 1 FROM identity_role_assignments WHERE user_id = $1 AND project_id = $2 AND role_id = $3",
    )
    .bind(user_id)
    .bind(project_id)
    .bind(role_id)
    .fetch_optional(&mut *tx)
    .await?;
    if exists.is_none() {
        sqlx::query(
            "INSERT INTO identity_role_assignments (user_id, project_id, role_id) VALUES ($1, $2, $3)",
        )
        .bind(user_id)
        .bind(project_id)
        .bind(role_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Revokes a grant; whether it existed.
pub async fn revoke(
    db: &Db,
    user_id: &str,
    project_id: &str,
    role_id: &str,
) -> Result<bool, DbError> {
    let result = sqlx::query(
        "DELETE FROM identity_role_assignments WHERE user_id = $1 AND project_id = $2 AND role_id = $3",
    )
    .bind(user_id)
    .bind(project_id)
    .bind(role_id)
    .execute(db.pool())
    .await?;
    Ok(result.rows_affected() > 0)
}

/// The roles assigned directly to `user_id` on `project_id`, by name.
pub async fn assigned_roles(
    db: &Db,
    user_id: &str,
    project_id: &str,
) -> Result<Vec<Role>, DbError> {
    let rows = sqlx::query(
        "SELECT r.id, r.name FROM identity_role_assignments a JOIN identity_roles r ON r.id = a.role_id WHERE a.user_id = $1 AND a.project_id = $2 ORDER BY r.name",
    )
    .bind(user_id)
    .bind(project_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(role_from).collect::<Result<_, _>>()?)
}

/// The effective roles of `user_id` on `project_id`: the assigned roles plus
/// the roles they imply (admin implies member, member implies reader), by name.
pub async fn effective_roles(
    db: &Db,
    user_id: &str,
    project_id: &str,
) -> Result<Vec<Role>, DbError> {
    let mut roles = assigned_roles(db, user_id, project_id).await?;
    let implied: Vec<&str> = DEFAULT_ROLES
        .iter()
        .enumerate()
        .filter(|(_, name)| roles.iter().any(|role| role.name == **name))
        .flat_map(|(index, _)| DEFAULT_ROLES[index + 1..].iter().copied())
        .filter(|name| roles.iter().all(|role| role.name != *name))
        .collect();
    if !implied.is_empty() {
        for role in list_roles(db, &ListFilter::default()).await? {
            if implied.contains(&role.name.as_str()) && !roles.contains(&role) {
                roles.push(role);
            }
        }
        roles.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(roles)
}

/// Role assignments matching the optional user, project and role ids.
pub async fn list_assignments(
    db: &Db,
    user_id: Option<&str>,
    project_id: Option<&str>,
    role_id: Option<&str>,
) -> Result<Vec<Assignment>, DbError> {
    let mut clauses = Vec::new();
    let mut binds = Vec::new();
    for (column, value) in [
        ("user_id", user_id),
        ("project_id", project_id),
        ("role_id", role_id),
    ] {
        if let Some(value) = value {
            binds.push(value.to_string());
            clauses.push(format!("{column} = ${}", binds.len()));
        }
    }
    let mut sql = "SELECT user_id, project_id, role_id FROM identity_role_assignments".to_string();
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    sql.push_str(" ORDER BY user_id, project_id, role_id");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for bind in binds {
        query = query.bind(bind);
    }
    let rows = query.fetch_all(db.pool()).await?;
    rows.iter()
        .map(|row| {
            Ok(Assignment {
                user_id: row.try_get("user_id")?,
                project_id: row.try_get("project_id")?,
                role_id: row.try_get("role_id")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(DbError::from)
}

/// The projects `user_id` holds any role on, by name.
pub async fn projects_of_user(db: &Db, user_id: &str) -> Result<Vec<Project>, DbError> {
    let rows = sqlx::query(
        "SELECT p.id, p.name, p.domain_id, p.description, p.enabled FROM identity_projects p WHERE p.id IN (SELECT project_id FROM identity_role_assignments WHERE user_id = $1) ORDER BY p.name, p.id",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(project_from).collect::<Result<_, _>>()?)
}

/// Records a revoked token until `expires_at`, pruning revocations of
/// tokens that expired anyway.
pub async fn revoke_token(db: &Db, audit_id: &str, expires_at: &str) -> Result<(), DbError> {
    let now = novum_db::now();
    let mut tx = db.begin_serialized("identity-revocations").await?;
    sqlx::query("DELETE FROM identity_revoked_tokens WHERE expires_at < $1")
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    let exists = sqlx::query("SELECT 1 FROM identity_revoked_tokens WHERE audit_id = $1")
        .bind(audit_id)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        sqlx::query(
            "INSERT INTO identity_revoked_tokens (audit_id, expires_at, revoked_at) VALUES ($1, $2, $3)",
        )
        .bind(audit_id)
        .bind(expires_at)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The identity's generation (migration 0117): it moves whenever a change
/// could invalidate a checked token or alter what it stands for.
pub async fn generation(db: &Db) -> Result<i64, DbError> {
    let row = sqlx::query("SELECT generation FROM identity_generation WHERE id = 1")
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get("generation")?)
}

/// Whether any of `audit_ids` was revoked.
pub async fn is_revoked(db: &Db, audit_ids: &[String]) -> Result<bool, DbError> {
    for audit_id in audit_ids {
        let row = sqlx::query("SELECT 1 FROM identity_revoked_tokens WHERE audit_id = $1")
            .bind(audit_id)
            .fetch_optional(db.pool())
            .await?;
        if row.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}
