//! `/v2.1/os-volumes_boot`: Nova's old alias of `/servers` (what novaclient
//! booted from a volume with), every route answering as the server route it
//! mirrors, until microversion 2.102; from 2.103 it is gone (404), as in
//! Nova.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::until_microversion;
use super::server_actions;
use super::server_list::ListQuery;
use super::servers;
use crate::AppState;
use crate::auth::AuthContext;
use crate::bodies::TypedBody;
use crate::bodies::server::{ServerCreateBody, ServerUpdateBody};
use crate::body::JsonBody;
use crate::extract::{Path, Query};
use crate::fault::ApiResult;
use crate::microversion::Microversion;
use crate::request_id::RequestId;

/// The last microversion with the alias.
const LAST_MICROVERSION: u16 = 102;

#[utoipa::path(get, path = "/v2.1/os-volumes_boot", params(ListQuery), responses((status = OK, description = "As `GET /servers` (to 2.102)", body = Object), crate::fault::ApiError))]
async fn index(
    state: State<AppState>,
    auth: AuthContext,
    version: Microversion,
    query: Query<ListQuery>,
    raw: RawQuery,
) -> ApiResult<axum::response::Response> {
    until_microversion(version, LAST_MICROVERSION)?;
    servers::index(state, auth, version, query, raw).await
}

#[utoipa::path(get, path = "/v2.1/os-volumes_boot/detail", params(ListQuery), responses((status = OK, description = "As `GET /servers/detail` (to 2.102)", body = Object), crate::fault::ApiError))]
async fn detail(
    state: State<AppState>,
    auth: AuthContext,
    version: Microversion,
    query: Query<ListQuery>,
    raw: RawQuery,
) -> ApiResult<axum::response::Response> {
    until_microversion(version, LAST_MICROVERSION)?;
    servers::detail(state, auth, version, query, raw).await
}

#[utoipa::path(post, path = "/v2.1/os-volumes_boot", request_body = Object, responses((status = ACCEPTED, description = "As `POST /servers` (to 2.102)", body = Object), crate::fault::ApiError))]
async fn create(
    state: State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    body: TypedBody<ServerCreateBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    until_microversion(version, LAST_MICROVERSION)?;
    servers::create(state, auth, request_id, body).await
}

#[utoipa::path(get, path = "/v2.1/os-volumes_boot/{id}", params(("id" = String, Path, description = "The server UUID")), responses((status = OK, description = "As `GET /servers/{id}` (to 2.102)", body = Object), crate::fault::ApiError))]
async fn show(
    state: State<AppState>,
    auth: AuthContext,
    version: Microversion,
    id: Path<String>,
) -> ApiResult<Json<Value>> {
    until_microversion(version, LAST_MICROVERSION)?;
    servers::show(state, auth, version, id).await
}

#[utoipa::path(put, path = "/v2.1/os-volumes_boot/{id}", params(("id" = String, Path, description = "The server UUID")), request_body = Object, responses((status = OK, description = "As `PUT /servers/{id}` (to 2.102)", body = Object), crate::fault::ApiError))]
async fn update(
    state: State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    id: Path<String>,
    body: TypedBody<ServerUpdateBody>,
) -> ApiResult<Json<Value>> {
    until_microversion(version, LAST_MICROVERSION)?;
    servers::update(state, auth, version, request_id, id, body).await
}

#[utoipa::path(delete, path = "/v2.1/os-volumes_boot/{id}", params(("id" = String, Path, description = "The server UUID")), responses((status = NO_CONTENT, description = "As `DELETE /servers/{id}` (to 2.102)"), crate::fault::ApiError))]
async fn delete(
    state: State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    id: Path<String>,
) -> ApiResult<StatusCode> {
    until_microversion(version, LAST_MICROVERSION)?;
    servers::delete(state, auth, request_id, id).await
}

#[utoipa::path(post, path = "/v2.1/os-volumes_boot/{id}/action", params(("id" = String, Path, description = "The server UUID")), request_body = crate::openapi::SingleKeyObject, responses((status = ACCEPTED, description = "As `POST /servers/{id}/action` (to 2.102)"), crate::fault::ApiError))]
async fn action(
    state: State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    id: Path<String>,
    body: JsonBody<BTreeMap<String, Value>>,
) -> ApiResult<Response> {
    until_microversion(version, LAST_MICROVERSION)?;
    server_actions::action(state, auth, version, request_id, id, body).await
}

/// The alias routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index, create))
        .routes(routes!(detail))
        .routes(routes!(show, update, delete))
        .routes(routes!(action))
}
