//! `/servers/{id}/metadata`: a server's metadata as Nova serves it — list,
//! merge (`POST`), replace (`PUT`), and one item shown, set or deleted.
//! Keys are 1 to 255 characters, values strings of at most 255; the
//! conductor (`conductor::server_metadata`) applies the change under Nova's
//! state guard and the `metadata_items` quota.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::server_actions::changing_caller;
use super::servers::fetch_visible;
use crate::AppState;
use crate::auth::AuthContext;
use crate::body::JsonBody;
use crate::extract::Path;
use crate::fault::{ApiError, ApiResult};
use crate::request_id::RequestId;
use novum_compute::conductor::server_metadata::MetadataChange;

/// Longest metadata key and value (Nova's schema).
const MAX_LENGTH: usize = 255;

/// The items of `body[envelope]` (`metadata` or `meta`), each checked as
/// Nova's schema does.
fn items(body: &Value, envelope: &str) -> ApiResult<BTreeMap<String, String>> {
    let Some(object) = body.get(envelope).and_then(Value::as_object) else {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {envelope}. The request body must hold an object \"{envelope}\""
        )));
    };
    if let Some(extra) = body
        .as_object()
        .and_then(|all| all.keys().find(|key| *key != envelope))
    {
        return Err(ApiError::bad_request(format!(
            "Additional properties are not allowed ('{extra}' was unexpected)"
        )));
    }
    checked(object)
}

fn checked(object: &Map<String, Value>) -> ApiResult<BTreeMap<String, String>> {
    let mut items = BTreeMap::new();
    for (key, value) in object {
        if key.is_empty() || key.chars().count() > MAX_LENGTH {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute metadata. Value: {key:?}. A metadata key must be 1 to {MAX_LENGTH} characters long"
            )));
        }
        let Some(value) = value.as_str() else {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute {key}. Value: {value}. {value} is not of type 'string'"
            )));
        };
        if value.chars().count() > MAX_LENGTH {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute {key}. The value is longer than {MAX_LENGTH} characters"
            )));
        }
        items.insert(key.clone(), value.to_string());
    }
    Ok(items)
}

/// Applies `change` to server `id` for the caller (visible, not locked).
async fn change(
    state: &AppState,
    auth: &AuthContext,
    request_id: &RequestId,
    id: &str,
    change: MetadataChange,
) -> ApiResult<BTreeMap<String, String>> {
    let caller = changing_caller(state, auth, request_id, id).await?;
    Ok(state.conductor.change_metadata(id, change, &caller).await?)
}

#[utoipa::path(get, path = "/v2.1/servers/{id}/metadata", params(("id" = String, Path, description = "The server UUID")), responses((status = OK, description = "The server's metadata", body = Object), crate::fault::ApiError))]
async fn list(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let instance = fetch_visible(&state, &auth, &id).await?;
    Ok(Json(json!({"metadata": instance.metadata_map()})))
}

/// `POST` (merge) or `PUT` (replace) of the whole metadata: the items of
/// `{"metadata": …}`, and the metadata afterwards.
async fn whole(
    state: &AppState,
    auth: &AuthContext,
    request_id: &RequestId,
    id: &str,
    body: &Value,
    change_of: fn(BTreeMap<String, String>) -> MetadataChange,
) -> ApiResult<Json<Value>> {
    let items = items(body, "metadata")?;
    let all = change(state, auth, request_id, id, change_of(items)).await?;
    Ok(Json(json!({"metadata": all})))
}

#[utoipa::path(post, path = "/v2.1/servers/{id}/metadata", params(("id" = String, Path, description = "The server UUID")), request_body = Object, responses((status = OK, description = "All the metadata after the merge", body = Object), crate::fault::ApiError))]
async fn merge(
    State(state): State<AppState>,
    auth: AuthContext,
    request_id: RequestId,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    whole(
        &state,
        &auth,
        &request_id,
        &id,
        &body,
        MetadataChange::Merge,
    )
    .await
}

#[utoipa::path(put, path = "/v2.1/servers/{id}/metadata", params(("id" = String, Path, description = "The server UUID")), request_body = Object, responses((status = OK, description = "The new metadata", body = Object), crate::fault::ApiError))]
async fn replace(
    State(state): State<AppState>,
    auth: AuthContext,
    request_id: RequestId,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    whole(
        &state,
        &auth,
        &request_id,
        &id,
        &body,
        MetadataChange::Replace,
    )
    .await
}

#[utoipa::path(get, path = "/v2.1/servers/{id}/metadata/{key}", params(("id" = String, Path, description = "The server UUID"), ("key" = String, Path, description = "The metadata key")), responses((status = OK, description = "One metadata item", body = Object), crate::fault::ApiError))]
async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let instance = fetch_visible(&state, &auth, &id).await?;
    let value = instance
        .metadata_map()
        .remove(&key)
        .ok_or_else(|| ApiError::not_found("Metadata item was not found"))?;
    Ok(Json(json!({"meta": {key: value}})))
}

#[utoipa::path(put, path = "/v2.1/servers/{id}/metadata/{key}", params(("id" = String, Path, description = "The server UUID"), ("key" = String, Path, description = "The metadata key")), request_body = Object, responses((status = OK, description = "The item set", body = Object), crate::fault::ApiError))]
async fn set(
    State(state): State<AppState>,
    auth: AuthContext,
    request_id: RequestId,
    Path((id, key)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    let mut items = items(&body, "meta")?;
    if items.len() > 1 {
        return Err(ApiError::bad_request(
            "Request body contains too many items",
        ));
    }
    let Some(value) = items.remove(&key) else {
        return Err(ApiError::bad_request("Request body and URI mismatch"));
    };
    change(
        &state,
        &auth,
        &request_id,
        &id,
        MetadataChange::Set(key.clone(), value.clone()),
    )
    .await?;
    Ok(Json(json!({"meta": {key: value}})))
}

#[utoipa::path(delete, path = "/v2.1/servers/{id}/metadata/{key}", params(("id" = String, Path, description = "The server UUID"), ("key" = String, Path, description = "The metadata key")), responses((status = NO_CONTENT, description = "Deleted"), crate::fault::ApiError))]
async fn delete(
    State(state): State<AppState>,
    auth: AuthContext,
    request_id: RequestId,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    change(&state, &auth, &request_id, &id, MetadataChange::Delete(key)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The server metadata routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, merge, replace))
        .routes(routes!(show, set, delete))
}
