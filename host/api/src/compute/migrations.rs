//! `GET /v2.1/os-migrations`: the resizes (Nova's migration records), for
//! admins (`openstack server migration list`). Filters: `status`, `host`
//! (source or destination), `source_compute`, `instance_uuid`,
//! `migration_type`; newest first. Shapes by microversion: 2.23 adds
//! `migration_type` and `links`, 2.59 `uuid`, 2.80 `user_id`/`project_id`.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::api_time_micros;
use crate::AppState;
use crate::auth::AuthContext;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use novum_compute::conductor::model::FlavorSnapshot;
use novum_compute::store::migrations::{self, MigrationFilter, MigrationRow};
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
/// `old_instance_type_id`/`new_instance_type_id`: Nova's internal flavor
/// number, an integer or null in its schema. A flavor whose id is a number
/// gives it; any other (a UUID) gives null, as Nova's API has no place for
/// it.
fn flavor_id(snapshot: &str) -> Value {
    serde_json::from_str::<FlavorSnapshot>(snapshot)
        .ok()
        .and_then(|flavor| flavor.id.parse::<i64>().ok())
        .map_or(Value::Null, |number| json!(number))
}

fn view(migration: &MigrationRow, version: Microversion) -> Value {
    let mut view = json!({
        "id": migration.id,
        "instance_uuid": migration.instance_uuid,
        "source_compute": migration.source_compute,
        "source_node": migration.source_node,
        "dest_compute": migration.dest_compute,
        "dest_host": migration.dest_compute,
        "dest_node": migration.dest_node,
        "old_instance_type_id": flavor_id(&migration.old_flavor),
        "new_instance_type_id": flavor_id(&migration.new_flavor),
        "status": migration.status,
        "created_at": api_time_micros(&migration.created_at),
        "updated_at": api_time_micros(&migration.updated_at),
    });
    if version.at_least(23) {
        view["migration_type"] = json!(migration.migration_type);
    }
    if version.at_least(59) {
        view["uuid"] = json!(migration.uuid);
    }
    if version.at_least(80) {
        view["user_id"] = json!(migration.user_id);
        view["project_id"] = json!(migration.project_id);
    }
    view
}

#[utoipa::path(get, path = "/v2.1/os-migrations", params(ListQuery), responses((status = OK, description = "Success", body = MigrationList), crate::fault::ApiError))]
async fn index(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-migrations:index")?;
    let Query(query) =
        query.map_err(|error| ApiError::bad_request(format!("Invalid query string: {error}")))?;
    let filter = MigrationFilter {
        status: query.status,
        host: query.host,
        source_compute: query.source_compute,
        instance_uuid: query.instance_uuid,
        migration_type: query.migration_type,
    };
    let migrations: Vec<Value> = migrations::list(&state.db, filter)
        .await?
        .iter()
        .map(|migration| view(migration, version))
        .collect();
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
