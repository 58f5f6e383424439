//! The Glance v2 HTTP subset under `/image`: version documents, image CRUD
//! with JSON-patch updates, data upload and download, tags, and members of
//! shared images.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::data;
use super::{
    CONTAINER_FORMATS, DISK_FORMATS, Image, Member, STATUS_ACTIVE, STATUS_QUEUED, STATUS_SAVING,
    Visibility,
};
use crate::api::AppState;
use crate::api::auth::AuthContext;
use crate::api::body::parse_json;
use crate::api::extract::{Path, Query};
use crate::api::fault::{ApiError, ApiResult};
use crate::api::validation;
use crate::db::Backend;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The newest Image API version novum's subset corresponds to.
const CURRENT_VERSION: u32 = 9;
/// Images per page when the request gives no `limit` (Glance's default).
const DEFAULT_LIMIT: usize = 25;
/// The largest `limit` (Glance's `api_limit_max`).
const MAX_LIMIT: usize = 1000;
/// Longest name, tag and property key.
const MAX_NAME_LENGTH: usize = 255;
/// Longest property value.
const MAX_PROPERTY_LENGTH: usize = 65535;
/// The JSON-patch media types of `PATCH /v2/images/{id}`.
const PATCH_MEDIA_TYPES: [&str; 2] = [
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
];
/// Attributes no request may set.
const READ_ONLY: [&str; 14] = [
    "status",
    "size",
    "virtual_size",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "created_at",
    "updated_at",
    "self",
    "file",
    "schema",
    "direct_url",
    "locations",
    "deleted",
];

crate::envelope!(
    /// `{"versions": …}`
    ImageVersions, "versions", Array
);
crate::envelope!(
    /// `{"images": …}`
    ImageList, "images", Array
);
crate::envelope!(
    /// `{"id": …}`
    ImageBody, "id", String
);
crate::envelope!(
    /// `{"members": …}`
    ImageMemberList, "members", Array
);
crate::envelope!(
    /// `{"member_id": …}`
    ImageMember, "member_id", String
);

/// The `/image` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(versions))
        .routes(routes!(versions_listed))
        .routes(routes!(list_images, create_image))
        .routes(routes!(show_image, update_image, delete_image))
        .routes(routes!(download, upload))
        .routes(routes!(add_tag, remove_tag))
        .routes(routes!(list_members, create_member))
        .routes(routes!(show_member, update_member, delete_member))
}

/// `GET /image`, `GET /image/versions`: v2.0 … v2.9, the newest CURRENT.
#[utoipa::path(get, path = "/", security(()), responses((status = OK, description = "Success", body = ImageVersions)))]
async fn versions(State(state): State<AppState>) -> Response {
    versions_document(&state)
}

/// `GET /image/versions`: the same version list.
#[utoipa::path(get, path = "/versions", security(()), responses((status = OK, description = "Success", body = ImageVersions)))]
async fn versions_listed(State(state): State<AppState>) -> Response {
    versions_document(&state)
}

/// The version list of both version routes.
fn versions_document(state: &AppState) -> Response {
    let href = format!("{}/image/v2/", state.config.public_base_url());
    let versions: Vec<Value> = (0..=CURRENT_VERSION)
        .rev()
        .map(|minor| {
            json!({
                "id": format!("v2.{minor}"),
                "status": if minor == CURRENT_VERSION { "CURRENT" } else { "SUPPORTED" },
                "links": [{"rel": "self", "href": href}],
            })
        })
        .collect();
    axum::Json(json!({ "versions": versions })).into_response()
}

/// A stored timestamp as Glance prints it (`2024-01-01T00:00:00Z`).
fn glance_time(stored: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(stored)
        .map(|at| at.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| stored.to_string())
}

/// An image as the API shows it: core fields, then properties as top-level keys.
pub fn image_json(image: &Image) -> Value {
    let mut body = Map::new();
    for (key, value) in &image.properties {
        body.insert(key.clone(), json!(value));
    }
    let core = json!({
        "id": image.id,
        "name": image.name,
        "status": image.status,
        "visibility": image.visibility.as_str(),
        "protected": image.protected,
        "os_hidden": image.os_hidden,
        "owner": image.owner,
        "disk_format": image.disk_format,
        "container_format": image.container_format,
        "min_disk": image.min_disk,
        "min_ram": image.min_ram,
        "size": image.size,
        "virtual_size": image.virtual_size,
        "checksum": image.checksum,
        "os_hash_algo": image.os_hash_algo,
        "os_hash_value": image.os_hash_value,
        "tags": image.tags,
        "created_at": glance_time(&image.created_at),
        "updated_at": glance_time(&image.updated_at),
        "self": format!("/v2/images/{}", image.id),
        "file": format!("/v2/images/{}/file", image.id),
        "schema": "/v2/schemas/image",
    });
    if let Value::Object(core) = core {
        body.extend(core);
    }
    Value::Object(body)
}

/// The image `image_id` if `auth` may see it, else 404.
async fn visible_image(state: &AppState, auth: &AuthContext, image_id: &str) -> ApiResult<Image> {
    Ok(super::get_for_project(&state.db, image_id, auth).await?)
}

/// The image `image_id` if `auth` may change it: 404 when it may not see
/// it, 403 when it is not the owner's member (or an admin).
async fn owned_image(
    state: &AppState,
    auth: &AuthContext,
    image_id: &str,
    rule: &str,
) -> ApiResult<Image> {
    let image = visible_image(state, auth, image_id).await?;
    if !(auth.is_admin() || (auth.project_id == image.owner && auth.can_write())) {
        return Err(ApiError::forbidden(format!(
            "You are not authorized to complete {rule} action."
        )));
    }
    Ok(image)
}

fn read_only(key: &str) -> ApiError {
    ApiError::forbidden(format!("Attribute '{key}' is read-only."))
}

fn invalid(key: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("Invalid value for '{key}': {why}"))
}

fn string_or_null(key: &str, value: &Value) -> ApiResult<Option<String>> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) if text.chars().count() > MAX_NAME_LENGTH => {
            Err(invalid(key, "too long"))
        }
        Value::String(text) if validation::has_control_character(text) => {
            Err(invalid(key, "must not contain control characters"))
        }
        Value::String(text) => Ok(Some(text.clone())),
        _ => Err(invalid(key, "must be a string or null")),
    }
}

fn format_value(key: &str, value: &Value, allowed: &[&str]) -> ApiResult<Option<String>> {
    let text = string_or_null(key, value)?;
    if let Some(text) = &text
        && !allowed.contains(&text.as_str())
    {
        return Err(invalid(
            key,
            &format!("'{text}' is not one of {}", allowed.join(", ")),
        ));
    }
    Ok(text)
}

fn non_negative(key: &str, value: &Value) -> ApiResult<i64> {
    value
        .as_i64()
        .filter(|number| *number >= 0)
        .ok_or_else(|| invalid(key, "must be a non-negative integer"))
}

fn boolean(key: &str, value: &Value) -> ApiResult<bool> {
    value
        .as_bool()
        .ok_or_else(|| invalid(key, "must be a boolean"))
}

fn tags(value: &Value) -> ApiResult<Vec<String>> {
    let list = value
        .as_array()
        .ok_or_else(|| invalid("tags", "must be a list of strings"))?;
    let mut tags: Vec<String> = Vec::with_capacity(list.len());
    for tag in list {
        let tag = tag
            .as_str()
            .filter(|tag| !tag.is_empty() && tag.len() <= MAX_NAME_LENGTH)
            .ok_or_else(|| invalid("tags", "each tag must be a string of 1 to 255 characters"))?;
        if !tags.iter().any(|known| known == tag) {
            tags.push(tag.to_string());
        }
    }
    Ok(tags)
}

/// Sets attribute `key` of `image` to `value` as `auth` asks (create or
/// patch): core fields with their rules, anything else as a string property.
fn set_attribute(
    image: &mut Image,
    key: &str,
    value: &Value,
    auth: &AuthContext,
    creating: bool,
) -> ApiResult<()> {
    if READ_ONLY.contains(&key) || (key == "id" && !creating) {
        return Err(read_only(key));
    }
    if key.starts_with("os_glance") {
        return Err(ApiError::forbidden(format!(
            "Attribute '{key}' is reserved."
        )));
    }
    match key {
        "id" => {
            let id = value
                .as_str()
                .and_then(|id| uuid::Uuid::parse_str(id).ok())
                .ok_or_else(|| invalid("id", "must be a UUID"))?;
            image.id = id.hyphenated().to_string();
        }
        "name" => image.name = string_or_null(key, value)?,
        "visibility" => {
            let visibility = value
                .as_str()
                .and_then(Visibility::parse)
                .ok_or_else(|| invalid(key, "must be public, community, shared or private"))?;
            if visibility == Visibility::Public && !auth.is_admin() {
                return Err(ApiError::forbidden(
                    "You are not authorized to complete publicize_image action.",
                ));
            }
            image.visibility = visibility;
        }
        "protected" => image.protected = boolean(key, value)?,
        "os_hidden" => image.os_hidden = boolean(key, value)?,
        "disk_format" | "container_format" => {
            if !creating && image.status != STATUS_QUEUED {
                return Err(ApiError::forbidden(format!(
                    "Attribute '{key}' can be only replaced for a queued image."
                )));
            }
            if key == "disk_format" {
                image.disk_format = format_value(key, value, &DISK_FORMATS)?;
            } else {
                image.container_format = format_value(key, value, &CONTAINER_FORMATS)?;
            }
        }
        "min_disk" => image.min_disk = non_negative(key, value)?,
        "min_ram" => image.min_ram = non_negative(key, value)?,
        "tags" => image.tags = tags(value)?,
        "owner" => {
            let owner = value
                .as_str()
                .filter(|owner| !owner.is_empty() && owner.len() <= MAX_NAME_LENGTH)
                .ok_or_else(|| invalid(key, "must be a project id"))?;
            if owner != auth.project_id && !auth.is_admin() {
                return Err(ApiError::forbidden(
                    "You are not permitted to create or modify images owned by another project.",
                ));
            }
            image.owner = owner.to_string();
        }
        _ => {
            if key.is_empty() || key.len() > MAX_NAME_LENGTH {
                return Err(invalid(key, "property names are 1 to 255 characters"));
            }
            let text = value
                .as_str()
                .filter(|text| text.len() <= MAX_PROPERTY_LENGTH)
                .ok_or_else(|| {
                    invalid(
                        key,
                        "additional properties must be strings of at most 65535 characters",
                    )
                })?;
            image.properties.insert(key.to_string(), text.to_string());
        }
    }
    Ok(())
}

/// Whether `key` is a core attribute (not an additional property).
fn is_core(key: &str) -> bool {
    READ_ONLY.contains(&key)
        || matches!(
            key,
            "id" | "name"
                | "visibility"
                | "protected"
                | "os_hidden"
                | "disk_format"
                | "container_format"
                | "min_disk"
                | "min_ram"
                | "tags"
                | "owner"
        )
}

/// `POST /v2/images`: a queued image owned by the caller's project.
#[utoipa::path(post, path = "/v2/images", request_body = Object, responses((status = CREATED, description = "Created", body = ImageBody), crate::api::fault::ApiError))]
async fn create_image(
    State(state): State<AppState>,
    auth: AuthContext,
    bytes: Bytes,
) -> ApiResult<Response> {
    auth.require_writer("add_image")?;
    let body: Map<String, Value> = parse_json(&bytes)?;
    let now = crate::db::now();
    let mut image = Image {
        id: uuid::Uuid::new_v4().to_string(),
        name: None,
        owner: auth.project_id.clone(),
        status: STATUS_QUEUED.to_string(),
        visibility: Visibility::Shared,
        protected: false,
        os_hidden: false,
        disk_format: None,
        container_format: None,
        min_disk: 0,
        min_ram: 0,
        size: None,
        virtual_size: None,
        checksum: None,
        os_hash_algo: None,
        os_hash_value: None,
        tags: Vec::new(),
        properties: BTreeMap::new(),
        created_at: now.clone(),
        updated_at: now,
    };
    for (key, value) in &body {
        set_attribute(&mut image, key, value, &auth, true)?;
    }
    match super::insert(&state.db, &image).await {
        Ok(()) => {}
        Err(error) if crate::identity::store::is_unique_violation(&error) => {
            return Err(ApiError::conflict(format!(
                "An image with identifier {} already exists",
                image.id
            )));
        }
        Err(error) => return Err(error.into()),
    }
    tracing::info!(image = %image.id, owner = %image.owner, "image created");
    let mut response = (StatusCode::CREATED, axum::Json(image_json(&image))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!(
        "{}/image/v2/images/{}",
        state.config.public_base_url(),
        image.id
    )) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /v2/images/{id}`.
#[utoipa::path(get, path = "/v2/images/{image_id}", params(("image_id" = String, Path, description = "The image id")), responses((status = OK, description = "Success", body = ImageBody), crate::api::fault::ApiError))]
async fn show_image(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(image_id): Path<String>,
) -> ApiResult<Response> {
    let image = visible_image(&state, &auth, &image_id).await?;
    Ok(axum::Json(image_json(&image)).into_response())
}

/// One JSON-patch operation.
#[derive(Deserialize, utoipa::ToSchema)]
struct PatchOp {
    op: String,
    path: String,
    #[serde(default)]
    value: Option<Value>,
}

/// The attribute a patch path names (`/name`, `/hw_disk_bus`, `/a~1b` → `a/b`).
fn patch_key(path: &str) -> ApiResult<String> {
    let key = path
        .strip_prefix('/')
        .filter(|key| !key.is_empty() && !key.contains('/'))
        .ok_or_else(|| {
            ApiError::bad_request(format!("Invalid JSON pointer for this resource: '{path}'"))
        })?;
    Ok(key.replace("~1", "/").replace("~0", "~"))
}

/// `PATCH /v2/images/{id}`: JSON-patch `add`, `replace`, `remove`.
#[utoipa::path(patch, path = "/v2/images/{image_id}", params(("image_id" = String, Path, description = "The image id")), request_body(content = Vec<PatchOp>, content_type = "application/openstack-images-v2.1-json-patch"), responses((status = OK, description = "Success", body = ImageBody), crate::api::fault::ApiError))]
async fn update_image(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(image_id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Response> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if !PATCH_MEDIA_TYPES.contains(&media_type.as_str()) {
        return Err(ApiError::bad_media_type(format!(
            "Unsupported Content-Type {media_type}; use {}",
            PATCH_MEDIA_TYPES[0]
        )));
    }
    let mut image = owned_image(&state, &auth, &image_id, "modify_image").await?;
    let operations: Vec<PatchOp> = parse_json(&bytes)?;
    for operation in operations {
        let key = patch_key(&operation.path)?;
        match operation.op.as_str() {
            "add" | "replace" => {
                let value = operation.value.ok_or_else(|| {
                    ApiError::bad_request(format!("Operation '{}' needs a value.", operation.op))
                })?;
                if operation.op == "replace"
                    && !is_core(&key)
                    && !image.properties.contains_key(&key)
                {
                    return Err(ApiError::conflict(format!(
                        "Property {key} does not exist."
                    )));
                }
                set_attribute(&mut image, &key, &value, &auth, false)?;
            }
            "remove" => {
                if is_core(&key) {
                    return Err(ApiError::forbidden(format!(
                        "Attribute '{key}' is a core attribute and cannot be removed."
                    )));
                }
                if image.properties.remove(&key).is_none() {
                    return Err(ApiError::conflict(format!(
                        "Property {key} does not exist."
                    )));
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "Unsupported patch operation '{other}'; use add, replace or remove."
                )));
            }
        }
    }
    if !super::update_metadata(&state.db, &mut image).await? {
        return Err(super::ImageError::NotFound(image_id).into());
    }
    Ok(axum::Json(image_json(&image)).into_response())
}

/// `DELETE /v2/images/{id}`: the row and the data; 403 when protected.
#[utoipa::path(delete, path = "/v2/images/{image_id}", params(("image_id" = String, Path, description = "The image id")), responses((status = NO_CONTENT, description = "Done, no body"), crate::api::fault::ApiError))]
async fn delete_image(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(image_id): Path<String>,
) -> ApiResult<StatusCode> {
    let image = owned_image(&state, &auth, &image_id, "delete_image").await?;
    if image.protected {
        return Err(ApiError::forbidden(format!(
            "Image {image_id} is protected and cannot be deleted."
        )));
    }
    if !super::delete(&state.db, &image_id).await? {
        return Err(super::ImageError::NotFound(image_id).into());
    }
    data::remove(&state.config.data_dir, &image_id)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(image = %image_id, "image deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// 413 for image data over the upload's limit.
fn too_large(message: String) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message)
}

/// `PUT /v2/images/{id}/file`: streams the data in; queued → saving → active.
/// Data over `[images] max_image_size_mb` or the owner's remaining
/// `project_storage_quota_mb` is refused with 413, before it is read when
/// `Content-Length` says so, else as soon as the stream passes the limit;
/// nothing of it is kept.
#[utoipa::path(put, path = "/v2/images/{image_id}/file", params(("image_id" = String, Path, description = "The image id")), request_body(content = String, content_type = "application/octet-stream"), responses((status = NO_CONTENT, description = "Done, no body"), crate::api::fault::ApiError))]
async fn upload(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(image_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let image = owned_image(&state, &auth, &image_id, "upload_image").await?;
    if image.disk_format.is_none() || image.container_format.is_none() {
        return Err(ApiError::bad_request(
            "Properties disk_format, container_format must be set prior to saving data.",
        ));
    }
    let limit = super::UploadLimit::for_image(&state.db, &state.config.images, &image).await?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if let Some(size) = declared.filter(|size| *size > limit.bytes()) {
        return Err(too_large(limit.refusal(Some(size))));
    }
    if !super::transition(&state.db, &image_id, STATUS_QUEUED, STATUS_SAVING).await? {
        return Err(ApiError::conflict(format!(
            "Image status transition from {} to {STATUS_SAVING} is not allowed",
            image.status
        )));
    }
    let stored = match data::store(
        &state.config.data_dir,
        &image_id,
        image.disk_format.as_deref(),
        limit.bytes(),
        body,
    )
    .await
    {
        Ok(stored) => stored,
        Err(error) => {
            super::transition(&state.db, &image_id, STATUS_SAVING, STATUS_QUEUED).await?;
            return Err(match error {
                data::DataError::Body(message) => ApiError::bad_request(message),
                data::DataError::TooLarge { .. } => too_large(limit.refusal(None)),
                other => ApiError::internal(other),
            });
        }
    };
    if !super::activate(&state.db, &image_id, &stored).await? {
        // Deleted while uploading: drop the orphan data.
        data::remove(&state.config.data_dir, &image_id)
            .await
            .map_err(ApiError::internal)?;
        return Err(ApiError::conflict(format!(
            "Image {image_id} was deleted during the upload."
        )));
    }
    tracing::info!(image = %image_id, size = stored.size, "image data uploaded");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v2/images/{id}/file`: the data (204 when there is none yet).
#[utoipa::path(get, path = "/v2/images/{image_id}/file", params(("image_id" = String, Path, description = "The image id")), responses((status = OK, description = "The image data", content_type = "application/octet-stream", body = String), (status = NO_CONTENT, description = "No data uploaded yet"), crate::api::fault::ApiError))]
async fn download(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(image_id): Path<String>,
) -> ApiResult<Response> {
    let image = visible_image(&state, &auth, &image_id).await?;
    if image.status != STATUS_ACTIVE {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let (body, length) = data::open(&state.config.data_dir, &image_id)
        .await
        .map_err(ApiError::internal)?;
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(checksum) = image
        .checksum
        .as_deref()
        .and_then(|sum| HeaderValue::from_str(sum).ok())
    {
        headers.insert("content-md5", checksum);
    }
    Ok(response)
}

/// `PUT /v2/images/{id}/tags/{tag}`.
#[utoipa::path(put, path = "/v2/images/{image_id}/tags/{tag}", params(("image_id" = String, Path, description = "The image id"), ("tag" = String, Path, description = "The tag")), responses((status = NO_CONTENT, description = "Done, no body"), crate::api::fault::ApiError))]
async fn add_tag(
    State(state): State<AppState>,
    auth: AuthContext,
    Path((image_id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let mut image = owned_image(&state, &auth, &image_id, "modify_image").await?;
    let mut list = image.tags.clone();
    list.push(tag);
    image.tags = tags(&json!(list))?;
    super::update_metadata(&state.db, &mut image).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v2/images/{id}/tags/{tag}`.
#[utoipa::path(delete, path = "/v2/images/{image_id}/tags/{tag}", params(("image_id" = String, Path, description = "The image id"), ("tag" = String, Path, description = "The tag")), responses((status = NO_CONTENT, description = "Done, no body"), crate::api::fault::ApiError))]
async fn remove_tag(
    State(state): State<AppState>,
    auth: AuthContext,
    Path((image_id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let mut image = owned_image(&state, &auth, &image_id, "modify_image").await?;
    let before = image.tags.len();
    image.tags.retain(|known| *known != tag);
    if image.tags.len() == before {
        return Err(ApiError::not_found(format!("Tag {tag} not found")));
    }
    super::update_metadata(&state.db, &mut image).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- listing

/// A value bound into a listing query.
enum Bind {
    Text(String),
    Int(i64),
}

/// Builds the WHERE clause of a listing, numbering placeholders.
struct Clauses {
    clauses: Vec<String>,
    binds: Vec<Bind>,
}

impl Clauses {
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    fn text(&mut self, value: &str) -> String {
        self.bind(Bind::Text(value.to_string()))
    }

    /// `column = value`, or `column IN (...)` for `in:a,b`.
    fn eq_or_in(&mut self, column: &str, value: &str) {
        let clause = match value.strip_prefix("in:") {
            Some(list) => {
                let placeholders: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| self.text(item))
                    .collect();
                if placeholders.is_empty() {
                    "1 = 0".to_string()
                } else {
                    format!("{column} IN ({})", placeholders.join(", "))
                }
            }
            None => format!("{column} = {}", self.text(value)),
        };
        self.clauses.push(clause);
    }
}

/// Sort keys a listing accepts, and the SQL expression each sorts by.
fn sort_expression(key: &str) -> ApiResult<&'static str> {
    Ok(match key {
        "created_at" => "created_at",
        "updated_at" => "updated_at",
        "name" => "COALESCE(name, '')",
        "id" => "id",
        "status" => "status",
        "size" => "COALESCE(size, -1)",
        other => {
            return Err(ApiError::bad_request(format!(
                "Unsupported sort key '{other}'; use created_at, updated_at, name, id, status or size."
            )));
        }
    })
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Query parameters of a listing that are not property filters.
const LIST_PARAMETERS: [&str; 17] = [
    "limit",
    "marker",
    "sort_key",
    "sort_dir",
    "sort",
    "visibility",
    "member_status",
    "os_hidden",
    "name",
    "id",
    "status",
    "owner",
    "disk_format",
    "container_format",
    "protected",
    "size_min",
    "size_max",
];

/// `GET /v2/images`: filters `name`, `id` (also `in:a,b`), `status`,
/// `visibility`, `owner`, `disk_format`, `container_format`, `protected`,
/// `os_hidden`, `member_status`, `size_min`, `size_max`, `tag` (repeatable),
/// `checksum`, `os_hash_value` and any property (`hw_architecture=x86_64`);
/// `sort_key`/`sort_dir` or `sort=key:dir`; `limit`/`marker` with a `next` link.
#[utoipa::path(get, path = "/v2/images", responses((status = OK, description = "Success", body = ImageList), crate::api::fault::ApiError))]
async fn list_images(
    State(state): State<AppState>,
    auth: AuthContext,
    Query(params): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let single = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let mut where_ = Clauses {
        clauses: Vec::new(),
        binds: Vec::new(),
    };
    // Visibility: what the caller may see, narrowed by the filter.
    let member_status = single("member_status").unwrap_or("accepted");
    if !["accepted", "pending", "rejected", "all"].contains(&member_status) {
        return Err(ApiError::bad_request(format!(
            "Invalid member_status {member_status}"
        )));
    }
    let visibility = single("visibility");
    if let Some(visibility) = visibility
        && visibility != "all"
        && Visibility::parse(visibility).is_none()
    {
        return Err(ApiError::bad_request(format!(
            "Invalid visibility value: {visibility}"
        )));
    }
    if auth.is_admin() {
        if let Some(visibility) = visibility.filter(|v| *v != "all") {
            let placeholder = where_.text(visibility);
            where_.clauses.push(format!("visibility = {placeholder}"));
        }
    } else {
        let project = where_.text(&auth.project_id);
        let member = if member_status == "all" {
            format!("id IN (SELECT image_id FROM image_members WHERE member_id = {project})")
        } else {
            let status = where_.text(member_status);
            format!(
                "id IN (SELECT image_id FROM image_members WHERE member_id = {project} AND status = {status})"
            )
        };
        where_.clauses.push(match visibility {
            None => format!(
                "(owner = {project} OR visibility = 'public' OR (visibility = 'shared' AND {member}))"
            ),
            Some("all") => format!(
                "(owner = {project} OR visibility IN ('public', 'community') OR (visibility = 'shared' AND {member}))"
            ),
            Some("public") => "visibility = 'public'".to_string(),
            Some("community") => "visibility = 'community'".to_string(),
            Some("private") => format!("(visibility = 'private' AND owner = {project})"),
            Some(_) => format!("(visibility = 'shared' AND (owner = {project} OR {member}))"),
        });
    }
    let hidden = match single("os_hidden") {
        None => false,
        Some(text) => text
            .parse::<bool>()
            .map_err(|_| ApiError::bad_request(format!("Invalid os_hidden value: {text}")))?,
    };
    where_
        .clauses
        .push(format!("os_hidden = {}", i64::from(hidden)));
    for column in [
        "name",
        "id",
        "status",
        "owner",
        "disk_format",
        "container_format",
    ] {
        if let Some(value) = single(column) {
            where_.eq_or_in(column, value);
        }
    }
    if let Some(text) = single("protected") {
        let protected = text
            .parse::<bool>()
            .map_err(|_| ApiError::bad_request(format!("Invalid protected value: {text}")))?;
        where_
            .clauses
            .push(format!("protected = {}", i64::from(protected)));
    }
    for (name, operator) in [("size_min", ">="), ("size_max", "<=")] {
        if let Some(text) = single(name) {
            let size = text
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("Invalid {name} value: {text}")))?;
            let placeholder = where_.bind(Bind::Int(size));
            where_
                .clauses
                .push(format!("size {operator} {placeholder}"));
        }
    }
    for (key, value) in &params {
        if LIST_PARAMETERS.contains(&key.as_str()) {
            continue;
        }
        match key.as_str() {
            "tag" => {
                // Tags are a JSON array of strings: match the quoted tag.
                let quoted = serde_json::to_string(value).unwrap_or_default();
                let pattern = format!(
                    "%{}%",
                    quoted
                        .replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_")
                );
                let placeholder = where_.text(&pattern);
                where_
                    .clauses
                    .push(format!("tags LIKE {placeholder} ESCAPE '\\'"));
            }
            "checksum" | "os_hash_value" => where_.eq_or_in(key, value),
            "created_at" | "updated_at" | "changes-since" => {
                return Err(ApiError::bad_request(format!(
                    "Filtering on {key} is not supported."
                )));
            }
            property => {
                let value = where_.text(value);
                let clause = match state.db.backend() {
                    Backend::Sqlite => {
                        let path = where_.text(&format!("$.\"{}\"", property.replace('"', "\\\"")));
                        format!("json_extract(properties, {path}) = {value}")
                    }
                    Backend::Postgres => {
                        let key = where_.text(property);
                        format!("(CAST(properties AS jsonb) ->> {key}) = {value}")
                    }
                };
                where_.clauses.push(clause);
            }
        }
    }
    // Order and page.
    let (sort_key, sort_dir) = match single("sort") {
        Some(sort) => {
            if sort.contains(',') {
                return Err(ApiError::bad_request("Only one sort key is supported."));
            }
            let (key, dir) = sort.split_once(':').unwrap_or((sort, "desc"));
            (key.trim().to_string(), dir.trim().to_string())
        }
        None => (
            single("sort_key").unwrap_or("created_at").to_string(),
            single("sort_dir").unwrap_or("desc").to_string(),
        ),
    };
    let expression = sort_expression(&sort_key)?;
    let (direction, comparison) = match sort_dir.as_str() {
        "desc" => ("DESC", "<"),
        "asc" => ("ASC", ">"),
        other => {
            return Err(ApiError::bad_request(format!(
                "Invalid sort direction '{other}'; use asc or desc."
            )));
        }
    };
    let limit = match single("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("limit param must be an integer: {text}")))?
            .min(MAX_LIMIT),
    };
    if let Some(marker) = single("marker") {
        if visible_image(&state, &auth, marker).await.is_err() {
            return Err(ApiError::bad_request(format!(
                "Invalid marker. Image {marker} could not be found."
            )));
        }
        let placeholder = where_.text(marker);
        let of_marker = format!("(SELECT {expression} FROM images WHERE id = {placeholder})");
        where_.clauses.push(format!(
            "({expression} {comparison} {of_marker} OR ({expression} = {of_marker} AND id {comparison} {placeholder}))"
        ));
    }
    let where_sql = where_.clauses.join(" AND ");
    let order_sql = format!("{expression} {direction}, id {direction}");
    let mut images = run_listing(&state, &where_sql, &where_.binds, &order_sql, limit + 1).await?;
    let mut body = json!({
        "first": "/v2/images",
        "schema": "/v2/schemas/images",
    });
    if images.len() > limit {
        images.truncate(limit);
        if let Some(last) = images.last() {
            let mut query: Vec<String> = params
                .iter()
                .filter(|(key, _)| key != "marker")
                .map(|(key, value)| format!("{}={}", percent_encode(key), percent_encode(value)))
                .collect();
            query.push(format!("marker={}", percent_encode(&last.id)));
            body["next"] = json!(format!("/v2/images?{}", query.join("&")));
        }
    }
    body["images"] = images.iter().map(image_json).collect();
    Ok(axum::Json(body).into_response())
}

async fn run_listing(
    state: &AppState,
    where_sql: &str,
    binds: &[Bind],
    order_sql: &str,
    limit: usize,
) -> ApiResult<Vec<Image>> {
    let sql = format!(
        "SELECT {} FROM images WHERE {where_sql} ORDER BY {order_sql} LIMIT {limit}",
        super::IMAGE_COLUMNS
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for bind in binds {
        query = match bind {
            Bind::Text(text) => query.bind(text.as_str()),
            Bind::Int(number) => query.bind(*number),
        };
    }
    let rows = query.fetch_all(state.db.pool()).await?;
    Ok(rows
        .iter()
        .map(super::image_from)
        .collect::<Result<_, _>>()?)
}

// ---------------------------------------------------------------- members

fn member_json(member: &Member) -> Value {
    json!({
        "image_id": member.image_id,
        "member_id": member.member_id,
        "status": member.status,
        "created_at": glance_time(&member.created_at),
        "updated_at": glance_time(&member.updated_at),
        "schema": "/v2/schemas/member",
    })
}

/// A shared image the caller owns or is a member of (404 otherwise).
async fn shared_image(state: &AppState, auth: &AuthContext, image_id: &str) -> ApiResult<Image> {
    let image = visible_image(state, auth, image_id).await?;
    if image.visibility != Visibility::Shared {
        return Err(ApiError::forbidden("Only shared images have members."));
    }
    Ok(image)
}

/// `GET /v2/images/{id}/members`: all members to the owner, its own
/// membership to a member.
#[utoipa::path(get, path = "/v2/images/{image_id}/members", params(("image_id" = String, Path, description = "The image id")), responses((status = OK, description = "Success", body = ImageMemberList), crate::api::fault::ApiError))]
async fn list_members(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(image_id): Path<String>,
) -> ApiResult<Response> {
    let image = shared_image(&state, &auth, &image_id).await?;
    let only =
        (!auth.is_admin() && image.owner != auth.project_id).then_some(auth.project_id.as_str());
    let members = super::members(&state.db, &image_id, only).await?;
    let members: Vec<Value> = members.iter().map(member_json).collect();
    Ok(axum::Json(json!({"members": members, "schema": "/v2/schemas/members"})).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
struct NewMember {
    member: String,
}

/// `POST /v2/images/{id}/members` (the owner).
#[utoipa::path(post, path = "/v2/images/{image_id}/members", params(("image_id" = String, Path, description = "The image id")), request_body = NewMember, responses((status = OK, description = "Success", body = ImageMember), crate::api::fault::ApiError))]
async fn create_member(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(image_id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let image = owned_image(&state, &auth, &image_id, "add_member").await?;
    if image.visibility != Visibility::Shared {
        return Err(ApiError::forbidden("Only shared images have members."));
    }
    let NewMember { member } = parse_json(&bytes)?;
    if !super::add_member(&state.db, &image_id, &member).await? {
        return Err(ApiError::conflict(format!(
            "Member {member} already exists for image {image_id}."
        )));
    }
    let created = super::members(&state.db, &image_id, Some(&member)).await?;
    let created = created
        .first()
        .ok_or_else(|| ApiError::not_found(format!("Member {member} not found")))?;
    Ok(axum::Json(member_json(created)).into_response())
}

/// `GET /v2/images/{id}/members/{member}` (the owner or that member).
#[utoipa::path(get, path = "/v2/images/{image_id}/members/{member_id}", params(("image_id" = String, Path, description = "The image id"), ("member_id" = String, Path, description = "The member project id")), responses((status = OK, description = "Success", body = ImageMember), crate::api::fault::ApiError))]
async fn show_member(
    State(state): State<AppState>,
    auth: AuthContext,
    Path((image_id, member_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let image = shared_image(&state, &auth, &image_id).await?;
    if !(auth.is_admin() || image.owner == auth.project_id || member_id == auth.project_id) {
        return Err(ApiError::not_found(format!("Member {member_id} not found")));
    }
    let members = super::members(&state.db, &image_id, Some(&member_id)).await?;
    let member = members
        .first()
        .ok_or_else(|| ApiError::not_found(format!("Member {member_id} not found")))?;
    Ok(axum::Json(member_json(member)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
struct MemberStatus {
    status: String,
}

/// `PUT /v2/images/{id}/members/{member}`: the member accepts or rejects.
#[utoipa::path(put, path = "/v2/images/{image_id}/members/{member_id}", params(("image_id" = String, Path, description = "The image id"), ("member_id" = String, Path, description = "The member project id")), request_body = MemberStatus, responses((status = OK, description = "Success", body = ImageMember), crate::api::fault::ApiError))]
async fn update_member(
    State(state): State<AppState>,
    auth: AuthContext,
    Path((image_id, member_id)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult<Response> {
    shared_image(&state, &auth, &image_id).await?;
    if member_id != auth.project_id {
        return Err(ApiError::forbidden(
            "You are not authorized to complete modify_member action.",
        ));
    }
    let MemberStatus { status } = parse_json(&bytes)?;
    if !["pending", "accepted", "rejected"].contains(&status.as_str()) {
        return Err(ApiError::bad_request(format!(
            "Invalid member status {status}; use pending, accepted or rejected."
        )));
    }
    if !super::set_member_status(&state.db, &image_id, &member_id, &status).await? {
        return Err(ApiError::not_found(format!("Member {member_id} not found")));
    }
    let members = super::members(&state.db, &image_id, Some(&member_id)).await?;
    let member = members
        .first()
        .ok_or_else(|| ApiError::not_found(format!("Member {member_id} not found")))?;
    Ok(axum::Json(member_json(member)).into_response())
}

/// `DELETE /v2/images/{id}/members/{member}` (the owner).
#[utoipa::path(delete, path = "/v2/images/{image_id}/members/{member_id}", params(("image_id" = String, Path, description = "The image id"), ("member_id" = String, Path, description = "The member project id")), responses((status = NO_CONTENT, description = "Done, no body"), crate::api::fault::ApiError))]
async fn delete_member(
    State(state): State<AppState>,
    auth: AuthContext,
    Path((image_id, member_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    owned_image(&state, &auth, &image_id, "delete_member").await?;
    if super::remove_member(&state.db, &image_id, &member_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("Member {member_id} not found")))
    }
}
