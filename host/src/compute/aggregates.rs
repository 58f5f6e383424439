//! Host aggregates (`/v2.1/os-aggregates`): CRUD and the `add_host`,
//! `remove_host` and `set_metadata` actions. Admin only (Nova's default
//! policy). An aggregate with `availability_zone` metadata makes a zone; a
//! host cannot be in two different zones. The scheduler reads aggregates,
//! their metadata and hosts through `conductor::snapshot`. `uuid` shows
//! from 2.41.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

use super::common::api_time_micros;
use crate::api::AppState;
use crate::api::auth::AuthContext;
use crate::api::bodies::TypedBody;
use crate::api::bodies::aggregate::{
    AggregateActionBody, AggregateCreate, AggregateCreateBody, AggregateUpdate, AggregateUpdateBody,
};
use crate::api::extract::Path;
use crate::api::fault::{ApiError, ApiResult};
use crate::api::microversion::Microversion;
use crate::db::{self, Tx};
use crate::notify::builders::{self, AggregateAction};
use crate::notify::payload::AggregatePayload;
use crate::notify::{Phase, Publisher, emit};
use crate::store::services::COMPUTE_BINARY;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The metadata key that puts an aggregate's hosts into a zone.
pub const ZONE_KEY: &str = "availability_zone";
/// The lock serializing aggregate changes (names, zones, hosts).
const LOCK: &str = "aggregates";

/// An aggregate with its hosts and metadata.
#[derive(Clone, Debug)]
struct AggregateRow {
    id: i64,
    uuid: String,
    name: String,
    created_at: String,
    updated_at: Option<String>,
    hosts: Vec<String>,
    metadata: BTreeMap<String, String>,
}

impl AggregateRow {
    fn zone(&self) -> Option<&str> {
        self.metadata.get(ZONE_KEY).map(String::as_str)
    }
}

async fn load_all(conn: &mut sqlx::AnyConnection) -> ApiResult<Vec<AggregateRow>> {
    let rows = sqlx::query("SELECT * FROM aggregates ORDER BY id")
        .fetch_all(&mut *conn)
        .await?;
    let hosts = sqlx::query("SELECT aggregate_id, host FROM aggregate_hosts ORDER BY host")
        .fetch_all(&mut *conn)
        .await?;
    let metadata = sqlx::query("SELECT aggregate_id, key, value FROM aggregate_metadata")
        .fetch_all(&mut *conn)
        .await?;
    let mut aggregates = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get("id")?;
        let mut aggregate = AggregateRow {
            id,
            uuid: row.try_get("uuid")?,
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            hosts: Vec::new(),
            metadata: BTreeMap::new(),
        };
        for host in &hosts {
            if host.try_get::<i64, _>("aggregate_id")? == id {
                aggregate.hosts.push(host.try_get("host")?);
            }
        }
        for item in &metadata {
            if item.try_get::<i64, _>("aggregate_id")? == id {
                aggregate
                    .metadata
                    .insert(item.try_get("key")?, item.try_get("value")?);
            }
        }
        aggregates.push(aggregate);
    }
    Ok(aggregates)
}

impl AggregateRow {
    fn payload(&self) -> AggregatePayload {
        AggregatePayload {
            id: Some(self.id),
            uuid: self.uuid.clone(),
            name: self.name.clone(),
            hosts: Some(self.hosts.clone()),
            metadata: Some(self.metadata.clone()),
        }
    }
}

/// Emits `aggregate.<action>.start` with `before` and `.end` with `after`
/// in `tx` (both in the transaction of the change).
async fn notify_aggregate(
    tx: &mut Tx,
    state: &AppState,
    action: AggregateAction,
    before: AggregatePayload,
    after: AggregatePayload,
) -> ApiResult<()> {
    let publisher = Publisher::api(&state.config.host);
    emit(
        tx,
        &builders::aggregate(&publisher, before, action, Phase::Start),
    )
    .await?;
    emit(
        tx,
        &builders::aggregate(&publisher, after, action, Phase::End),
    )
    .await?;
    Ok(())
}

fn parse_id(id: &str) -> ApiResult<i64> {
    id.parse::<i64>()
        .map_err(|_| ApiError::bad_request(format!("Invalid id: {id} must be an integer")))
}

async fn load_one(conn: &mut sqlx::AnyConnection, id: i64) -> ApiResult<AggregateRow> {
    load_all(conn)
        .await?
        .into_iter()
        .find(|aggregate| aggregate.id == id)
        .ok_or_else(|| ApiError::not_found(format!("Aggregate {id} could not be found.")))
}

fn view(version: Microversion, aggregate: &AggregateRow, full: bool) -> Value {
    let mut body = json!({
        "id": aggregate.id,
        "name": aggregate.name,
        "availability_zone": aggregate.zone(),
        "created_at": api_time_micros(&aggregate.created_at),
        "updated_at": aggregate.updated_at.as_deref().map(api_time_micros),
        "deleted_at": null,
        "deleted": false,
    });
    if full {
        body["hosts"] = json!(aggregate.hosts);
        body["metadata"] = json!(aggregate.metadata);
    }
    if version.at_least(41) {
        body["uuid"] = json!(aggregate.uuid);
    }
    body
}

/// The zones other than `zone` that `host` is in through aggregates other
/// than `except`.
fn other_zones(aggregates: &[AggregateRow], host: &str, zone: &str, except: i64) -> Vec<String> {
    let mut zones: Vec<String> = aggregates
        .iter()
        .filter(|aggregate| aggregate.id != except && aggregate.hosts.iter().any(|h| h == host))
        .filter_map(|aggregate| aggregate.zone())
        .filter(|other| *other != zone)
        .map(str::to_string)
        .collect();
    zones.sort();
    zones.dedup();
    zones
}

/// Checks that moving `aggregate`'s hosts into `zone` puts no host into two
/// zones and moves no instance; `Err(reason)` otherwise.
async fn check_zone_change(
    tx: &mut Tx,
    aggregates: &[AggregateRow],
    aggregate: &AggregateRow,
    zone: Option<&str>,
) -> ApiResult<Result<(), String>> {
    if zone == aggregate.zone() {
        return Ok(Ok(()));
    }
    if let Some(zone) = zone {
        let conflicts: Vec<String> = aggregate
            .hosts
            .iter()
            .flat_map(|host| other_zones(aggregates, host, zone, aggregate.id))
            .collect();
        if !conflicts.is_empty() {
            return Ok(Err(format!(
                "One or more hosts already in availability zone(s) {conflicts:?}"
            )));
        }
    }
    for host in &aggregate.hosts {
        let instances: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM instances WHERE host = $1 AND deleted = 0")
                .bind(host)
                .fetch_one(&mut **tx)
                .await?
                .try_get("n")?;
        if instances > 0 {
            return Ok(Err(
                "One or more hosts contain instances in this zone.".to_string()
            ));
        }
    }
    Ok(Ok(()))
}

async fn name_taken(tx: &mut Tx, name: &str, except: i64) -> ApiResult<bool> {
    Ok(
        sqlx::query("SELECT id FROM aggregates WHERE name = $1 AND id <> $2")
            .bind(name)
            .bind(except)
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

async fn set_zone(tx: &mut Tx, id: i64, zone: Option<&str>) -> ApiResult<()> {
    sqlx::query("DELETE FROM aggregate_metadata WHERE aggregate_id = $1 AND key = $2")
        .bind(id)
        .bind(ZONE_KEY)
        .execute(&mut **tx)
        .await?;
    if let Some(zone) = zone {
        sqlx::query(
            "INSERT INTO aggregate_metadata (aggregate_id, key, value) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(ZONE_KEY)
        .bind(zone)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn touch(tx: &mut Tx, id: i64) -> ApiResult<()> {
    sqlx::query("UPDATE aggregates SET updated_at = $1 WHERE id = $2")
        .bind(db::now())
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[utoipa::path(get, path = "/v2.1/os-aggregates", responses((status = OK, description = "Success", body = AggregateList), crate::api::fault::ApiError))]
async fn index(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-aggregates:index")?;
    let mut conn = state.db.pool().acquire().await.map_err(db::DbError::from)?;
    let aggregates: Vec<Value> = load_all(&mut conn)
        .await?
        .iter()
        .map(|aggregate| view(version, aggregate, true))
        .collect();
    Ok(Json(json!({"aggregates": aggregates})))
}

#[utoipa::path(post, path = "/v2.1/os-aggregates", request_body = AggregateCreateBody, responses((status = OK, description = "Success", body = AggregateEnvelope), crate::api::fault::ApiError))]
async fn create(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    TypedBody(body): TypedBody<AggregateCreateBody>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-aggregates:create")?;
    let AggregateCreate {
        name,
        availability_zone: zone,
    } = body.aggregate;
    let mut tx = state.db.begin_serialized(LOCK).await?;
    if name_taken(&mut tx, &name, -1).await? {
        return Err(ApiError::conflict(format!(
            "Aggregate {name} already exists."
        )));
    }
    let uuid = uuid::Uuid::new_v4().to_string();
    let id = db::insert_returning_id(
        &mut tx,
        sqlx::query(
            "INSERT INTO aggregates (uuid, name, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(&uuid)
        .bind(&name)
        .bind(db::now()),
    )
    .await?;
    set_zone(&mut tx, id, zone.as_deref()).await?;
    let aggregate = load_one(&mut tx, id).await?;
    // Nova's create.start carries what was asked: no id, hosts or metadata yet.
    let requested = AggregatePayload {
        uuid,
        name,
        ..AggregatePayload::default()
    };
    notify_aggregate(
        &mut tx,
        &state,
        AggregateAction::Create,
        requested,
        aggregate.payload(),
    )
    .await?;
    crate::notify::commit(tx).await?;
    Ok(Json(json!({"aggregate": view(version, &aggregate, false)})))
}

#[utoipa::path(get, path = "/v2.1/os-aggregates/{id}", params(("id" = String, Path, description = "The aggregate id")), responses((status = OK, description = "Success", body = AggregateEnvelope), crate::api::fault::ApiError))]
async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-aggregates:show")?;
    let id = parse_id(&id)?;
    let mut conn = state.db.pool().acquire().await.map_err(db::DbError::from)?;
    let aggregate = load_one(&mut conn, id).await?;
    Ok(Json(json!({"aggregate": view(version, &aggregate, true)})))
}

#[utoipa::path(put, path = "/v2.1/os-aggregates/{id}", params(("id" = String, Path, description = "The aggregate id")), request_body = AggregateUpdateBody, responses((status = OK, description = "Success", body = AggregateEnvelope), crate::api::fault::ApiError))]
async fn update(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
    TypedBody(body): TypedBody<AggregateUpdateBody>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-aggregates:update")?;
    let id = parse_id(&id)?;
    let AggregateUpdate {
        name,
        availability_zone: zone,
    } = body.aggregate;
    let mut tx = state.db.begin_serialized(LOCK).await?;
    let aggregates = load_all(&mut tx).await?;
    let aggregate = aggregates
        .iter()
        .find(|aggregate| aggregate.id == id)
        .ok_or_else(|| ApiError::not_found(format!("Aggregate {id} could not be found.")))?;
    if let Some(name) = &name {
        if name_taken(&mut tx, name, id).await? {
            return Err(ApiError::conflict(format!(
                "Aggregate {name} already exists."
            )));
        }
        sqlx::query("UPDATE aggregates SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(zone) = &zone {
        if let Err(reason) =
            check_zone_change(&mut tx, &aggregates, aggregate, zone.as_deref()).await?
        {
            return Err(ApiError::bad_request(format!(
                "Cannot update aggregate {id}. Reason: {reason}."
            )));
        }
        set_zone(&mut tx, id, zone.as_deref()).await?;
    }
    touch(&mut tx, id).await?;
    let before = aggregate.payload();
    let aggregate = load_one(&mut tx, id).await?;
    let action = if zone.is_some() {
        AggregateAction::UpdateMetadata
    } else {
        AggregateAction::UpdateProp
    };
    notify_aggregate(&mut tx, &state, action, before, aggregate.payload()).await?;
    crate::notify::commit(tx).await?;
    Ok(Json(json!({"aggregate": view(version, &aggregate, true)})))
}

#[utoipa::path(delete, path = "/v2.1/os-aggregates/{id}", params(("id" = String, Path, description = "The aggregate id")), responses((status = OK, description = "Success"), crate::api::fault::ApiError))]
async fn delete(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.require_admin("os_compute_api:os-aggregates:delete")?;
    let id = parse_id(&id)?;
    let mut tx = state.db.begin_serialized(LOCK).await?;
    let aggregate = load_one(&mut tx, id).await?;
    if !aggregate.hosts.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Cannot perform action 'delete' on aggregate {id}. Reason: Host aggregate is not empty."
        )));
    }
    sqlx::query("DELETE FROM aggregate_metadata WHERE aggregate_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM aggregates WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let payload = aggregate.payload();
    notify_aggregate(
        &mut tx,
        &state,
        AggregateAction::Delete,
        payload.clone(),
        payload,
    )
    .await?;
    crate::notify::commit(tx).await?;
    Ok(StatusCode::OK)
}

async fn add_host(
    tx: &mut Tx,
    aggregates: &[AggregateRow],
    aggregate: &AggregateRow,
    host: &str,
) -> ApiResult<()> {
    let known = sqlx::query("SELECT id FROM services WHERE host = $1 AND binary_name = $2")
        .bind(host)
        .bind(COMPUTE_BINARY)
        .fetch_optional(&mut **tx)
        .await?;
    if known.is_none() {
        return Err(ApiError::not_found(format!(
            "Compute host {host} could not be found."
        )));
    }
    if aggregate.hosts.iter().any(|member| member == host) {
        return Err(ApiError::conflict(format!(
            "Aggregate {} already has host {host}.",
            aggregate.id
        )));
    }
    if let Some(zone) = aggregate.zone() {
        let conflicts = other_zones(aggregates, host, zone, aggregate.id);
        if !conflicts.is_empty() {
            return Err(ApiError::conflict(format!(
                "Cannot add host to aggregate {}. Reason: One or more hosts already in availability zone(s) {conflicts:?}.",
                aggregate.id
            )));
        }
    }
    sqlx::query("INSERT INTO aggregate_hosts (aggregate_id, host) VALUES ($1, $2)")
        .bind(aggregate.id)
        .bind(host)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn remove_host(tx: &mut Tx, aggregate: &AggregateRow, host: &str) -> ApiResult<()> {
    let removed = sqlx::query("DELETE FROM aggregate_hosts WHERE aggregate_id = $1 AND host = $2")
        .bind(aggregate.id)
        .bind(host)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if removed == 0 {
        return Err(ApiError::not_found(format!(
            "Cannot remove host {host} in aggregate {}",
            aggregate.id
        )));
    }
    Ok(())
}

async fn set_metadata(
    tx: &mut Tx,
    aggregates: &[AggregateRow],
    aggregate: &AggregateRow,
    changes: &BTreeMap<String, Option<String>>,
) -> ApiResult<()> {
    if let Some(zone) = changes.get(ZONE_KEY)
        && let Err(reason) = check_zone_change(tx, aggregates, aggregate, zone.as_deref()).await?
    {
        return Err(ApiError::bad_request(format!(
            "Cannot update metadata of aggregate {}. Reason: {reason}.",
            aggregate.id
        )));
    }
    for (key, value) in changes {
        sqlx::query("DELETE FROM aggregate_metadata WHERE aggregate_id = $1 AND key = $2")
            .bind(aggregate.id)
            .bind(key)
            .execute(&mut **tx)
            .await?;
        if let Some(value) = value {
            sqlx::query(
                "INSERT INTO aggregate_metadata (aggregate_id, key, value) VALUES ($1, $2, $3)",
            )
            .bind(aggregate.id)
            .bind(key)
            .bind(value)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

#[utoipa::path(post, path = "/v2.1/os-aggregates/{id}/action", params(("id" = String, Path, description = "The aggregate id")), request_body = AggregateActionBody, responses((status = OK, description = "Success", body = AggregateEnvelope), crate::api::fault::ApiError))]
async fn action(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
    TypedBody(body): TypedBody<AggregateActionBody>,
) -> ApiResult<Json<Value>> {
    let policy = format!("os_compute_api:os-aggregates:{}", body.name());
    auth.require_admin(&policy)?;
    let id = parse_id(&id)?;
    let mut tx = state.db.begin_serialized(LOCK).await?;
    let aggregates = load_all(&mut tx).await?;
    let aggregate = aggregates
        .iter()
        .find(|aggregate| aggregate.id == id)
        .ok_or_else(|| ApiError::not_found(format!("Aggregate {id} could not be found.")))?;
    let notified = match &body {
        AggregateActionBody::AddHost(args) => {
            add_host(&mut tx, &aggregates, aggregate, &args.host).await?;
            AggregateAction::AddHost
        }
        AggregateActionBody::RemoveHost(args) => {
            remove_host(&mut tx, aggregate, &args.host).await?;
            AggregateAction::RemoveHost
        }
        AggregateActionBody::SetMetadata(args) => {
            set_metadata(&mut tx, &aggregates, aggregate, &args.metadata.0).await?;
            AggregateAction::UpdateMetadata
        }
    };
    touch(&mut tx, id).await?;
    let before = aggregate.payload();
    let aggregate = load_one(&mut tx, id).await?;
    notify_aggregate(&mut tx, &state, notified, before, aggregate.payload()).await?;
    crate::notify::commit(tx).await?;
    Ok(Json(json!({"aggregate": view(version, &aggregate, true)})))
}

crate::envelope!(
    /// `{"aggregates": …}`
    AggregateList, "aggregates", Array
);
crate::envelope!(
    /// `{"aggregate": …}`
    AggregateEnvelope, "aggregate", Object
);

/// The aggregate routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index, create))
        .routes(routes!(show, update, delete))
        .routes(routes!(action))
}
