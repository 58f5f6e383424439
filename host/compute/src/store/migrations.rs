//! The `migrations` table: Nova's migration records (the resizes), as
//! `GET /os-migrations` lists them.

use novum_db::{Db, DbError};

/// A `migrations` row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MigrationRow {
    /// Integer id.
    pub id: i64,
    /// Uuid (the API shows it from 2.59).
    pub uuid: String,
    /// The migrated instance.
    pub instance_uuid: String,
    /// `resize`, …
    pub migration_type: String,
    /// Source host.
    pub source_compute: String,
    /// Source node.
    pub source_node: String,
    /// Destination host, once chosen.
    pub dest_compute: Option<String>,
    /// Destination node, once chosen.
    pub dest_node: Option<String>,
    /// The flavor before, a `FlavorSnapshot` as JSON text.
    pub old_flavor: String,
    /// The flavor after, a `FlavorSnapshot` as JSON text.
    pub new_flavor: String,
    /// The user who asked for it.
    pub user_id: String,
    /// The instance's project.
    pub project_id: String,
    /// `migrating`, `finished`, `confirmed`, …
    pub status: String,
    /// Created.
    pub created_at: String,
    /// Updated.
    pub updated_at: String,
}

/// Which migrations to list; every filter set must match.
#[derive(Clone, Debug, Default)]
pub struct MigrationFilter {
    /// This status.
    pub status: Option<String>,
    /// This host as source or destination.
    pub host: Option<String>,
    /// This source host.
    pub source_compute: Option<String>,
    /// This instance.
    pub instance_uuid: Option<String>,
    /// This type.
    pub migration_type: Option<String>,
}

/// The migrations matching `filter`, newest first.
pub async fn list(db: &Db, filter: MigrationFilter) -> Result<Vec<MigrationRow>, DbError> {
    Ok(sqlx::query_as::<_, MigrationRow>(
        "SELECT id, uuid, instance_uuid, migration_type, source_compute, source_node, dest_compute, dest_node, \
         old_flavor, new_flavor, user_id, project_id, status, created_at, updated_at FROM migrations m \
         WHERE (CAST($1 AS TEXT) IS NULL OR m.status = $1) \
         AND (CAST($2 AS TEXT) IS NULL OR m.source_compute = $2 OR m.dest_compute = $2) \
         AND (CAST($3 AS TEXT) IS NULL OR m.source_compute = $3) \
         AND (CAST($4 AS TEXT) IS NULL OR m.instance_uuid = $4) \
         AND (CAST($5 AS TEXT) IS NULL OR m.migration_type = $5) \
         ORDER BY m.created_at DESC, m.id DESC",
    )
    .bind(filter.status)
    .bind(filter.host)
    .bind(filter.source_compute)
    .bind(filter.instance_uuid)
    .bind(filter.migration_type)
    .fetch_all(db.pool())
    .await?)
}
