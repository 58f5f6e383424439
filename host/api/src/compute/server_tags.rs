//! `/servers/{id}/tags` (microversion 2.26): a server's tags as Nova serves
//! them — list, replace, clear, and one tag checked, added or removed. A
//! tag is 1 to 60 characters without `/` or `,`; a server has at most 50
//! (the conductor, `conductor::server_metadata`, applies the change).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::server_actions::changing_caller;
use super::servers::fetch_visible;
use crate::AppState;
use crate::auth::AuthContext;
use crate::body::JsonBody;
use crate::extract::Path;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use crate::request_id::RequestId;
use novum_compute::conductor::server_metadata::{MAX_TAGS, TagsChange};
use novum_compute::store;

/// The microversion that brought server tags.
pub const TAGS_SINCE: u16 = 26;

/// Longest tag (Nova's schema).
const MAX_TAG_LENGTH: usize = 60;

/// `tag` if Nova's schema takes it, else the 400.
pub fn checked_tag(tag: &str) -> ApiResult<String> {
    let length = tag.chars().count();
    if length == 0 || length > MAX_TAG_LENGTH || tag.contains('/') || tag.contains(',') {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute tags. Value: {tag}. A tag must be 1 to {MAX_TAG_LENGTH} characters long and hold no '/' or ','"
        )));
    }
    Ok(tag.to_string())
}

/// The tags of a request body's `tags` list (at most 50, each checked).
pub fn checked_tags(value: &Value) -> ApiResult<Vec<String>> {
    let Some(list) = value.as_array() else {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute tags. Value: {value}. {value} is not of type 'array'"
        )));
    };
    if list.len() > MAX_TAGS {
        return Err(ApiError::bad_request(format!(
            "The number of tags exceeded the per-server limit {MAX_TAGS}"
        )));
    }
    list.iter()
        .map(|tag| match tag.as_str() {
            Some(tag) => checked_tag(tag),
            None => Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute tags. Value: {tag}. {tag} is not of type 'string'"
            ))),
        })
        .collect()
}

fn require_tags(version: Microversion) -> ApiResult<()> {
    if version.at_least(TAGS_SINCE) {
        Ok(())
    } else {
        Err(ApiError::no_such_resource())
    }
}

/// The tags of a server the caller may see.
async fn visible_tags(state: &AppState, auth: &AuthContext, id: &str) -> ApiResult<Vec<String>> {
    fetch_visible(state, auth, id).await?;
    let mut conn = state.db.connection().await?;
    Ok(store::tags::of_instance(&mut conn, id).await?)
}

/// Applies `change` for the caller (the server visible and not locked).
async fn change(
    state: &AppState,
    auth: &AuthContext,
    request_id: &RequestId,
    id: &str,
    change: TagsChange,
) -> ApiResult<(Vec<String>, bool)> {
    let caller = changing_caller(state, auth, request_id, id).await?;
    Ok(state.conductor.change_tags(id, change, &caller).await?)
}

#[utoipa::path(get, path = "/v2.1/servers/{id}/tags", params(("id" = String, Path, description = "The server UUID")), responses((status = OK, description = "The server's tags", body = Object), crate::fault::ApiError))]
async fn list(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_tags(version)?;
    Ok(Json(
        json!({"tags": visible_tags(&state, &auth, &id).await?}),
    ))
}

#[utoipa::path(put, path = "/v2.1/servers/{id}/tags", params(("id" = String, Path, description = "The server UUID")), request_body = Object, responses((status = OK, description = "The new tags", body = Object), crate::fault::ApiError))]
async fn replace(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    require_tags(version)?;
    let Some(tags) = body.get("tags") else {
        return Err(ApiError::bad_request(
            "Invalid input for field/attribute tags. 'tags' is a required property",
        ));
    };
    let tags = checked_tags(tags)?;
    let (tags, _) = change(&state, &auth, &request_id, &id, TagsChange::Replace(tags)).await?;
    Ok(Json(json!({"tags": tags})))
}

#[utoipa::path(delete, path = "/v2.1/servers/{id}/tags", params(("id" = String, Path, description = "The server UUID")), responses((status = NO_CONTENT, description = "Every tag removed"), crate::fault::ApiError))]
async fn clear(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    require_tags(version)?;
    change(&state, &auth, &request_id, &id, TagsChange::Clear).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v2.1/servers/{id}/tags/{tag}", params(("id" = String, Path, description = "The server UUID"), ("tag" = String, Path, description = "The tag")), responses((status = NO_CONTENT, description = "The server has the tag"), crate::fault::ApiError))]
async fn check(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    require_tags(version)?;
    if visible_tags(&state, &auth, &id).await?.contains(&tag) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "Tag {tag} could not be found for instance {id}."
        )))
    }
}

#[utoipa::path(put, path = "/v2.1/servers/{id}/tags/{tag}", params(("id" = String, Path, description = "The server UUID"), ("tag" = String, Path, description = "The tag")), responses((status = CREATED, description = "Added"), (status = NO_CONTENT, description = "The server had it already"), crate::fault::ApiError))]
async fn add(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<Response> {
    require_tags(version)?;
    let tag = checked_tag(&tag)?;
    let (_, added) = change(
        &state,
        &auth,
        &request_id,
        &id,
        TagsChange::Add(tag.clone()),
    )
    .await?;
    if !added {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let mut headers = HeaderMap::new();
    let location = format!(
        "{}/v2.1/servers/{id}/tags/{tag}",
        super::common::compute_url(&state)
    );
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    Ok((StatusCode::CREATED, headers).into_response())
}

#[utoipa::path(delete, path = "/v2.1/servers/{id}/tags/{tag}", params(("id" = String, Path, description = "The server UUID"), ("tag" = String, Path, description = "The tag")), responses((status = NO_CONTENT, description = "Removed"), crate::fault::ApiError))]
async fn remove(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    require_tags(version)?;
    change(&state, &auth, &request_id, &id, TagsChange::Remove(tag)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The server tag routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, replace, clear))
        .routes(routes!(check, add, remove))
}
