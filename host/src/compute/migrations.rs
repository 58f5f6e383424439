//! `GET /v2.1/os-migrations`: the resizes (Nova's migration records), for
//! admins (`openstack server migration list`). Filters: `status`, `host`
//! (source or destination), `source_compute`, `instance_uuid`,
//! `migration_type`; newest first. Shapes by microversion: 2.23 adds
//! `migration_type` and `links`, 2.59 `uuid`, 2.80 `user_id`/`project_id`.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use super::common::api_time_micros;
use crate::api::AppState;
use crate::api::auth::AuthContext;
use crate::api::fault::{ApiError, ApiResult};
use crate::api::microversion::Microversion;
use crate::conductor::model::FlavorSnapshot;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    status: Option<String>,
    host: Option<String>,
    source_compute: Option<String>,
    instance_uuid: Option<String>,
    migration_type: Option<String>,
}

/// A flavor id as Nova shows it: a number when it is one.
fn flavor_id(snapshot: &str) -> Value {
    let id = serde_json::from_str::<FlavorSnapshot>(snapshot)
        .map(|flavor| flavor.id)
        .unwrap_or_default();
    id.parse::<i64>()
        .map_or_else(|_| json!(id), |number| json!(number))
}

fn view(row: &sqlx::any::AnyRow, version: Microversion) -> ApiResult<Value> {
    let dest: Option<String> = row.try_get("dest_compute")?;
    let mut view = json!({
        "id": row.try_get::<i64, _>("id")?,
        "instance_uuid": row.try_get::<String, _>("instance_uuid")?,
        "source_compute": row.try_get::<String, _>("source_compute")?,
        "source_node": row.try_get::<String, _>("source_node")?,
        "dest_compute": dest,
        "dest_host": dest,
        "dest_node": row.try_get::<Option<String>, _>("dest_node")?,
        "old_instance_type_id": flavor_id(&row.try_get::<String, _>("old_flavor")?),
        "new_instance_type_id": flavor_id(&row.try_get::<String, _>("new_flavor")?),
        "status": row.try_get::<String, _>("status")?,
        "created_at": api_time_micros(&row.try_get::<String, _>("created_at")?),
        "updated_at": api_time_micros(&row.try_get::<String, _>("updated_at")?),
    });
    if version.at_least(23) {
        view["migration_type"] = json!(row.try_get::<String, _>("migration_type")?);
    }
    if version.at_least(59) {
        view["uuid"] = json!(row.try_get::<String, _>("uuid")?);
    }
    if version.at_least(80) {
        view["user_id"] = json!(row.try_get::<String, _>("user_id")?);
        view["project_id"] = json!(row.try_get::<String, _>("project_id")?);
    }
    Ok(view)
}

#[utoipa::path(get, path = "/v2.1/os-migrations", params(ListQuery), responses((status = OK, description = "Success", body = MigrationList), crate::api::fault::ApiError))]
async fn index(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-migrations:index")?;
    let Query(query) =
        query.map_err(|error| ApiError::bad_request(format!("Invalid query string: {error}")))?;
    let rows = sqlx::query(
        "SELECT * FROM migrations m \
         WHERE (CAST($1 AS TEXT) IS NULL OR m.status = $1) \
         AND (CAST($2 AS TEXT) IS NULL OR m.source_compute = $2 OR m.dest_compute = $2) \
         AND (CAST($3 AS TEXT) IS NULL OR m.source_compute = $3) \
         AND (CAST($4 AS TEXT) IS NULL OR m.instance_uuid = $4) \
         AND (CAST($5 AS TEXT) IS NULL OR m.migration_type = $5) \
         ORDER BY m.created_at DESC, m.id DESC",
    )
    .bind(query.status)
    .bind(query.host)
    .bind(query.source_compute)
    .bind(query.instance_uuid)
    .bind(query.migration_type)
    .fetch_all(state.db.pool())
    .await?;
    let migrations = rows
        .iter()
        .map(|row| view(row, version))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(json!({"migrations": migrations})))
}

crate::envelope!(
    /// `{"migrations": …}`
    MigrationList, "migrations", Array
);

/// The migration routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(index))
}
