//! Host aggregates (`/v2.1/os-aggregates`): CRUD and the `add_host`,
//! `remove_host` and `set_metadata` actions. Admin only (Nova's default
//! policy). An aggregate with `availability_zone` metadata makes a zone; a
//! host cannot be in two different zones. The scheduler reads aggregates,
//! their metadata and hosts through `conductor::snapshot`. `uuid` shows
//! from 2.41.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::common::api_time_micros;
use crate::AppState;
use crate::auth::AuthContext;
use crate::bodies::TypedBody;
use crate::bodies::aggregate::{
    AggregateActionBody, AggregateCreate, AggregateCreateBody, AggregateUpdate, AggregateUpdateBody,
};
use crate::extract::Path;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use novum_compute::store::aggregates::{self as store, Aggregate};
use novum_notify::Publisher;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use novum_compute::store::aggregates::ZONE_KEY;

/// Who sends this API's aggregate notifications.
fn publisher(state: &AppState) -> Publisher {
    Publisher::api(&state.config.host)
}

fn parse_id(id: &str) -> ApiResult<i64> {
    id.parse::<i64>()
        .map_err(|_| ApiError::bad_request(format!("Invalid id: {id} must be an integer")))
}

fn view(version: Microversion, aggregate: &Aggregate, full: bool) -> Value {
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

#[utoipa::path(get, path = "/v2.1/os-aggregates", responses((status = OK, description = "Success", body = AggregateList), crate::fault::ApiError))]
async fn index(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-aggregates:index")?;
    let aggregates: Vec<Value> = store::list(&state.db)
        .await?
        .iter()
        .map(|aggregate| view(version, aggregate, true))
        .collect();
    Ok(Json(json!({"aggregates": aggregates})))
}

#[utoipa::path(post, path = "/v2.1/os-aggregates", request_body = AggregateCreateBody, responses((status = OK, description = "Success", body = AggregateEnvelope), crate::fault::ApiError))]
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
    let aggregate = store::create(&state.db, &publisher(&state), &name, zone.as_deref()).await?;
    Ok(Json(json!({"aggregate": view(version, &aggregate, false)})))
}

#[utoipa::path(get, path = "/v2.1/os-aggregates/{id}", params(("id" = String, Path, description = "The aggregate id")), responses((status = OK, description = "Success", body = AggregateEnvelope), crate::fault::ApiError))]
async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-aggregates:show")?;
    let id = parse_id(&id)?;
    let aggregate = store::get(&state.db, id).await?;
    Ok(Json(json!({"aggregate": view(version, &aggregate, true)})))
}

#[utoipa::path(put, path = "/v2.1/os-aggregates/{id}", params(("id" = String, Path, description = "The aggregate id")), request_body = AggregateUpdateBody, responses((status = OK, description = "Success", body = AggregateEnvelope), crate::fault::ApiError))]
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
    let change = store::AggregateUpdate { name, zone };
    let aggregate = store::update(&state.db, &publisher(&state), id, &change).await?;
    Ok(Json(json!({"aggregate": view(version, &aggregate, true)})))
}

#[utoipa::path(delete, path = "/v2.1/os-aggregates/{id}", params(("id" = String, Path, description = "The aggregate id")), responses((status = OK, description = "Success"), crate::fault::ApiError))]
async fn delete(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.require_admin("os_compute_api:os-aggregates:delete")?;
    let id = parse_id(&id)?;
    store::delete(&state.db, &publisher(&state), id).await?;
    Ok(StatusCode::OK)
}

#[utoipa::path(post, path = "/v2.1/os-aggregates/{id}/action", params(("id" = String, Path, description = "The aggregate id")), request_body = AggregateActionBody, responses((status = OK, description = "Success", body = AggregateEnvelope), crate::fault::ApiError))]
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
    let publisher = publisher(&state);
    let aggregate = match &body {
        AggregateActionBody::AddHost(args) => {
            store::add_host(&state.db, &publisher, id, &args.host).await?
        }
        AggregateActionBody::RemoveHost(args) => {
            store::remove_host(&state.db, &publisher, id, &args.host).await?
        }
        AggregateActionBody::SetMetadata(args) => {
            store::set_metadata(&state.db, &publisher, id, &args.metadata.0).await?
        }
    };
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
