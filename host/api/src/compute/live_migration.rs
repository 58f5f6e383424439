//! Live migration through the API: the `os-migrateLive` server action
//! (Nova's `migrate_server.migrate_live`, admin) and the
//! `/servers/{id}/migrations` resource (Nova's `server_migrations`, admin):
//! the in-progress live migrations of a server with their progress (2.23),
//! `force_complete` (2.22) and abort (`DELETE`, 2.24; queued and preparing
//! ones too from 2.65).
//!
//! The body of `os-migrateLive` by microversion: `host` (a host name or
//! `null`) and `block_migration` always required, `disk_over_commit`
//! required before 2.25 (and ignored, as Nova does since the placement
//! claims), `block_migration` may be `"auto"` from 2.25, `force` from 2.30
//! until 2.67.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{api_time_micros, parse_bool};
use super::server_actions::changing_caller;
use super::servers::fetch_visible;
use crate::AppState;
use crate::auth::AuthContext;
use crate::bodies::{self, server_action::MigrateBody};
use crate::body::JsonBody;
use crate::extract::Path;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use crate::request_id::RequestId;
use novum_compute::conductor::live_migration::{IN_PROGRESS, LIVE_MIGRATION, LiveMove};
use novum_compute::store::migrations::{self, MigrationFilter, MigrationRow};

/// `block_migration: "auto"` and no `disk_over_commit`.
const AUTO_SINCE: u16 = 25;
/// `force`.
const FORCE_SINCE: u16 = 30;
/// `force` is gone.
const FORCE_UNTIL: u16 = 68;
/// `force_complete`.
const FORCE_COMPLETE_SINCE: u16 = 22;
/// `GET /servers/{id}/migrations`.
const LIST_SINCE: u16 = 23;
/// Abort (`DELETE`).
const ABORT_SINCE: u16 = 24;
/// Abort of queued and preparing migrations too.
const ABORT_QUEUED_SINCE: u16 = 65;

fn invalid(field: &str, value: &Value, reason: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input for field/attribute {field}. Value: {value}. {reason}"
    ))
}

/// Nova's `parameter_types.boolean` at `field`.
fn flag(field: &str, value: &Value) -> ApiResult<bool> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        Value::String(text) => parse_bool(text)
            .ok_or_else(|| invalid(field, value, &format!("{value} is not a valid boolean"))),
        other => Err(invalid(
            field,
            other,
            &format!("{other} is not of type 'boolean', 'string'"),
        )),
    }
}

/// The `os-migrateLive` body at `version`, in Nova's words when refused.
fn parse_body(args: &Value, version: Microversion) -> ApiResult<LiveMove> {
    let Value::Object(fields) = args else {
        return Err(invalid(
            "os-migrateLive",
            args,
            &format!("{args} is not of type 'object'"),
        ));
    };
    let auto = version.at_least(AUTO_SINCE);
    let force_allowed = version.at_least(FORCE_SINCE) && !version.at_least(FORCE_UNTIL);
    for key in fields.keys() {
        let known = match key.as_str() {
            "host" | "block_migration" => true,
            "disk_over_commit" => !auto,
            "force" => force_allowed,
            _ => false,
        };
        if !known {
            return Err(bodies::unexpected(key));
        }
    }
    let mut required = vec!["block_migration", "host"];
    if !auto {
        required.insert(1, "disk_over_commit");
    }
    if let Some(missing) = required.iter().find(|key| !fields.contains_key(**key)) {
        return Err(invalid(
            "os-migrateLive",
            args,
            &format!("'{missing}' is a required property"),
        ));
    }
    // The host's rules are the cold migration's (`parameter_types.fqdn`).
    let host = bodies::parse::<MigrateBody>(
        &json!({"migrate": {"host": fields.get("host").cloned().unwrap_or(Value::Null)}}),
        version,
    )?
    .migrate
    .and_then(|migrate| migrate.host);
    let block_migration = match fields.get("block_migration") {
        Some(Value::String(text)) if auto && text == "auto" => None,
        Some(value) => Some(flag("block_migration", value)?),
        None => None,
    };
    if let Some(value) = fields.get("disk_over_commit") {
        flag("disk_over_commit", value)?;
    }
    let force = fields
        .get("force")
        .map(|value| flag("force", value))
        .transpose()?
        .unwrap_or(false);
    if force && host.is_none() {
        return Err(ApiError::bad_request(
            "Can't force to a non-provided destination",
        ));
    }
    Ok(LiveMove {
        host,
        block_migration,
        force,
        abort: false,
    })
}

/// The `os-migrateLive` action (202), `None` for any other action.
pub async fn live_migrate_action(
    state: &AppState,
    auth: &AuthContext,
    request_id: &RequestId,
    version: Microversion,
    id: &str,
    name: &str,
    args: &Value,
) -> ApiResult<Option<Response>> {
    if name != "os-migrateLive" {
        return Ok(None);
    }
    let request = parse_body(args, version)?;
    fetch_visible(state, auth, id).await?;
    auth.require_admin("os_compute_api:os-migrate-server:migrate_live")?;
    let caller = changing_caller(state, auth, request_id, id).await?;
    state
        .conductor
        .live_migrate_server(id, request, &caller)
        .await?;
    Ok(Some(StatusCode::ACCEPTED.into_response()))
}

/// Nova's `server_migrations` view of a live migration, with its progress.
fn view(
    migration: &MigrationRow,
    progress: Option<&novum_wire::LiveMigrationProgress>,
    version: Microversion,
) -> Value {
    let mut view = json!({
        "created_at": api_time_micros(&migration.created_at),
        "dest_compute": migration.dest_compute,
        "dest_host": migration.dest_compute,
        "dest_node": migration.dest_node,
        "disk_processed_bytes": progress.map(|p| p.disk_processed),
        "disk_remaining_bytes": progress.map(|p| p.disk_remaining),
        "disk_total_bytes": progress.map(|p| p.disk_total),
        "id": migration.id,
        "memory_processed_bytes": progress.map(|p| p.memory_processed),
        "memory_remaining_bytes": progress.map(|p| p.memory_remaining),
        "memory_total_bytes": progress.map(|p| p.memory_total),
        "server_uuid": migration.instance_uuid,
        "source_compute": migration.source_compute,
        "source_node": migration.source_node,
        "status": migration.status,
        "updated_at": api_time_micros(&migration.updated_at),
    });
    if version.at_least(59) {
        view["uuid"] = json!(migration.uuid);
    }
    if version.at_least(80) {
        view["user_id"] = json!(migration.user_id);
        view["project_id"] = json!(migration.project_id);
    }
    view
}

/// The live migrations of server `id` in progress, each with its progress
/// (asked of the source's agent while it runs).
async fn in_progress(
    state: &AppState,
    auth: &AuthContext,
    request_id: &RequestId,
    id: &str,
    version: Microversion,
    rule: &str,
) -> ApiResult<Vec<(MigrationRow, Value)>> {
    if !version.at_least(LIST_SINCE) {
        return Err(ApiError::no_such_resource());
    }
    auth.require_admin(rule)?;
    let instance = fetch_visible(state, auth, id).await?;
    let rows = migrations::list(
        &state.db,
        MigrationFilter {
            instance_uuid: Some(id.to_string()),
            migration_type: Some(LIVE_MIGRATION.to_string()),
            ..MigrationFilter::default()
        },
    )
    .await?;
    let mut shown = Vec::new();
    for row in rows {
        if !IN_PROGRESS.contains(&row.status.as_str()) {
            continue;
        }
        let progress = if row.status == "running" {
            state
                .conductor
                .live_migration_progress(&instance, &request_id.0)
                .await
        } else {
            None
        };
        let value = view(&row, progress.as_ref(), version);
        shown.push((row, value));
    }
    Ok(shown)
}

#[utoipa::path(get, path = "/v2.1/servers/{server_id}/migrations", params(("server_id" = String, Path, description = "The server UUID")), responses((status = OK, description = "The server's live migrations in progress", body = Object), crate::fault::ApiError))]
async fn index(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    Path(server_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let shown = in_progress(
        &state,
        &auth,
        &request_id,
        &server_id,
        version,
        "os_compute_api:servers:migrations:index",
    )
    .await?;
    let migrations: Vec<Value> = shown.into_iter().map(|(_, value)| value).collect();
    Ok(Json(json!({ "migrations": migrations })))
}

/// The migration id of a path, or Nova's 404 for one that is not a number.
fn migration_id(server_id: &str, text: &str) -> ApiResult<i64> {
    text.parse().map_err(|_| {
        ApiError::not_found(format!(
            "Migration {text} not found for instance {server_id}."
        ))
    })
}

#[utoipa::path(get, path = "/v2.1/servers/{server_id}/migrations/{migration_id}", params(("server_id" = String, Path, description = "The server UUID"), ("migration_id" = String, Path, description = "The migration id")), responses((status = OK, description = "One live migration in progress", body = Object), crate::fault::ApiError))]
async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    Path((server_id, migration)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let wanted = migration_id(&server_id, &migration)?;
    let shown = in_progress(
        &state,
        &auth,
        &request_id,
        &server_id,
        version,
        "os_compute_api:servers:migrations:show",
    )
    .await?;
    let Some((_, value)) = shown.into_iter().find(|(row, _)| row.id == wanted) else {
        return Err(ApiError::not_found(format!(
            "In-progress live migration {wanted} is not found for server {server_id}."
        )));
    };
    Ok(Json(json!({ "migration": value })))
}

#[utoipa::path(post, path = "/v2.1/servers/{server_id}/migrations/{migration_id}/action", params(("server_id" = String, Path, description = "The server UUID"), ("migration_id" = String, Path, description = "The migration id")), request_body = crate::openapi::SingleKeyObject, responses((status = ACCEPTED, description = "force_complete accepted"), crate::fault::ApiError))]
async fn action(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    Path((server_id, migration)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<StatusCode> {
    if !version.at_least(FORCE_COMPLETE_SINCE) {
        return Err(ApiError::no_such_resource());
    }
    match body.as_object() {
        Some(fields) if fields.len() == 1 && fields.contains_key("force_complete") => {
            if !fields["force_complete"].is_null() {
                return Err(invalid(
                    "force_complete",
                    &fields["force_complete"],
                    &format!("{} is not of type 'null'", fields["force_complete"]),
                ));
            }
        }
        Some(fields) => {
            let name = fields.keys().next().cloned().unwrap_or_default();
            return Err(ApiError::bad_request(format!(
                "There is no such action: {name}"
            )));
        }
        None => {
            return Err(ApiError::bad_request(
                "The request body must name exactly one action.",
            ));
        }
    }
    auth.require_admin("os_compute_api:servers:migrations:force_complete")?;
    let caller = changing_caller(&state, &auth, &request_id, &server_id).await?;
    let wanted = migration_id(&server_id, &migration)
        .map_err(|error| ApiError::bad_request(error.message().to_string()))?;
    state
        .conductor
        .force_complete_live_migration(&server_id, wanted, &caller)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(delete, path = "/v2.1/servers/{server_id}/migrations/{migration_id}", params(("server_id" = String, Path, description = "The server UUID"), ("migration_id" = String, Path, description = "The migration id")), responses((status = ACCEPTED, description = "Abort accepted"), crate::fault::ApiError))]
async fn abort(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    Path((server_id, migration)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    if !version.at_least(ABORT_SINCE) {
        return Err(ApiError::no_such_resource());
    }
    auth.require_admin("os_compute_api:servers:migrations:delete")?;
    let caller = changing_caller(&state, &auth, &request_id, &server_id).await?;
    let wanted = migration_id(&server_id, &migration)?;
    state
        .conductor
        .abort_live_migration(
            &server_id,
            wanted,
            version.at_least(ABORT_QUEUED_SINCE),
            &caller,
        )
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// The `/servers/{id}/migrations` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(show, abort))
        .routes(routes!(action))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: Value, minor: u16) -> String {
        parse_body(&body, Microversion::v2(minor))
            .err()
            .map(|error| error.message().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn bodies_follow_the_microversions() {
        let old = json!({"host": null, "block_migration": false, "disk_over_commit": false});
        assert!(parse_body(&old, Microversion::v2(1)).is_ok());
        assert!(refused(old.clone(), 25).contains("'disk_over_commit' was unexpected"));
        assert!(
            refused(json!({"host": null, "block_migration": true}), 1)
                .contains("'disk_over_commit' is a required property")
        );
        let auto = parse_body(
            &json!({"host": "h1", "block_migration": "auto"}),
            Microversion::v2(25),
        )
        .expect("auto from 2.25");
        assert_eq!(auto.block_migration, None);
        assert_eq!(auto.host.as_deref(), Some("h1"));
        assert!(
            refused(
                json!({"host": null, "block_migration": "auto", "disk_over_commit": false}),
                24
            )
            .contains("block_migration")
        );
        assert!(
            refused(json!({"block_migration": "auto"}), 25)
                .contains("'host' is a required property")
        );
        assert!(
            refused(
                json!({"host": "h1", "block_migration": "auto", "force": true}),
                29
            )
            .contains("'force' was unexpected")
        );
        assert!(
            parse_body(
                &json!({"host": "h1", "block_migration": "auto", "force": true}),
                Microversion::v2(30)
            )
            .is_ok_and(|live| live.force)
        );
        assert!(
            refused(
                json!({"host": null, "block_migration": "auto", "force": true}),
                30
            )
            .contains("Can't force to a non-provided destination")
        );
        assert!(
            refused(
                json!({"host": "h1", "block_migration": "auto", "force": true}),
                68
            )
            .contains("'force' was unexpected")
        );
        assert!(refused(json!({"host": "a b", "block_migration": "auto"}), 68).contains("host"));
        assert!(
            refused(json!({"host": null, "block_migration": 3}), 68).contains("block_migration")
        );
    }
}
