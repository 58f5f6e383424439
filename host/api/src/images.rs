//! The Glance v2 HTTP subset under `/image`: version documents, image CRUD
//! with JSON-patch updates, data upload and download, tags, and members of
//! shared images.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, ReadBuf};

use crate::AppState;
use crate::auth::AuthContext;
use crate::body::parse_json;
use crate::extract::{Path, Query};
use crate::fault::{ApiError, ApiResult};
use crate::validation;
use novum_images::{
    self as images, CONTAINER_FORMATS, DISK_FORMATS, FilterColumn, Image, ImageError, ImageListing,
    Member, STATUS_ACTIVE, STATUS_QUEUED, STATUS_SAVING, SortKey, ValueMatch, Viewer, Visibility,
    VisibilityFilter, data,
};
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

/// The size of a download chunk.
const CHUNK: usize = 64 * 1024;

/// The status and message each image failure is answered with.
impl From<ImageError> for ApiError {
    fn from(error: ImageError) -> Self {
        match error {
            ImageError::NotFound(_) => ApiError::not_found(error.to_string()),
            ImageError::AlreadyExists(_) => ApiError::conflict(error.to_string()),
            ImageError::InvalidMarker(_) => ApiError::bad_request(error.to_string()),
            ImageError::Db(error) => ApiError::internal(error),
        }
    }
}

impl<'a> From<&'a AuthContext> for Viewer<'a> {
    fn from(auth: &'a AuthContext) -> Self {
        Viewer {
            project_id: &auth.project_id,
            is_admin: auth.is_admin(),
        }
    }
}

/// The `/image` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(versions))
        .routes(routes!(versions_listed))
        .routes(routes!(list_images, create_image))
        .routes(routes!(show_image, update_image, delete_image))
        .routes(routes!(image_tasks))
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
pub(crate) async fn visible_image(
    state: &AppState,
    auth: &AuthContext,
    image_id: &str,
) -> ApiResult<Image> {
    Ok(images::get_for_project(&state.db, image_id, &Viewer::from(auth)).await?)
}

/// The image `image_id` if `auth` may change it: 404 when it may not see
/// it, 403 when it is not the owner's member (or an admin).
pub(crate) async fn owned_image(
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
#[utoipa::path(post, path = "/v2/images", request_body = Object, responses((status = CREATED, description = "Created", body = ImageBody), crate::fault::ApiError))]
async fn create_image(
    State(state): State<AppState>,
    auth: AuthContext,
    bytes: Bytes,
) -> ApiResult<Response> {
    auth.require_writer("add_image")?;
    let body: Map<String, Value> = parse_json(&bytes)?;
    let now = novum_db::now();
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
    images::insert(&state.db, &image).await?;
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
#[utoipa::path(get, path = "/v2/images/{image_id}", params(("image_id" = String, Path, description = "The image id")), responses((status = OK, description = "Success", body = ImageBody), crate::fault::ApiError))]
async fn show_image(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(image_id): Path<String>,
) -> ApiResult<Response> {
    let image = visible_image(&state, &auth, &image_id).await?;
    Ok(axum::Json(image_json(&image)).into_response())
}

/// `GET /v2/images/{id}/tasks` (Glance 2.12): the import tasks of an
/// image. novum's image service imports nothing asynchronously: none.
#[utoipa::path(get, path = "/v2/images/{image_id}/tasks", params(("image_id" = String, Path, description = "The image id")), responses((status = OK, description = "Success", body = Object), crate::fault::ApiError))]
async fn image_tasks(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(image_id): Path<String>,
) -> ApiResult<Response> {
    visible_image(&state, &auth, &image_id).await?;
    Ok(axum::Json(serde_json::json!({"tasks": []})).into_response())
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
#[utoipa::path(patch, path = "/v2/images/{image_id}", params(("image_id" = String, Path, description = "The image id")), request_body(content = Vec<PatchOp>, content_type = "application/openstack-images-v2.1-json-patch"), responses((status = OK, description = "Success", body = ImageBody), crate::fault::ApiError))]
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
    if !images::update_metadata(&state.db, &mut image).await? {
        return Err(ImageError::NotFound(image_id).into());
    }
    Ok(axum::Json(image_json(&image)).into_response())
}

/// `DELETE /v2/images/{id}`: the row and the data; 403 when protected.
#[utoipa::path(delete, path = "/v2/images/{image_id}", params(("image_id" = String, Path, description = "The image id")), responses((status = NO_CONTENT, description = "Done, no body"), crate::fault::ApiError))]
async fn delete_image(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(image_id): Path<String>,
) -> ApiResult<StatusCode> {
    remove_image(&state, &auth, &image_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes image `image_id` and its data for `auth`: 404 when it may not
/// see it, 403 when it may not change it or the image is protected.
pub(crate) async fn remove_image(
    state: &AppState,
    auth: &AuthContext,
    image_id: &str,
) -> ApiResult<()> {
    let image = owned_image(state, auth, image_id, "delete_image").await?;
    if image.protected {
        return Err(ApiError::forbidden(format!(
            "Image {image_id} is protected and cannot be deleted."
        )));
    }
    if !images::delete(&state.db, image_id).await? {
        return Err(ImageError::NotFound(image_id.to_string()).into());
    }
    data::remove(&state.config.data_dir, image_id)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(image = %image_id, "image deleted");
    Ok(())
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
#[utoipa::path(put, path = "/v2/images/{image_id}/file", params(("image_id" = String, Path, description = "The image id")), request_body(content = String, content_type = "application/octet-stream"), responses((status = NO_CONTENT, description = "Done, no body"), crate::fault::ApiError))]
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
    let limit = images::UploadLimit::for_image(&state.db, &state.config.images, &image).await?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if let Some(size) = declared.filter(|size| *size > limit.bytes()) {
        return Err(too_large(limit.refusal(Some(size))));
    }
    if !images::transition(&state.db, &image_id, STATUS_QUEUED, STATUS_SAVING).await? {
        return Err(ApiError::conflict(format!(
            "Image status transition from {} to {STATUS_SAVING} is not allowed",
            image.status
        )));
    }
    let stored = store_and_activate(&state, &image, limit, body, |_| Ok(())).await?;
    tracing::info!(image = %image_id, size = stored.size, "image data uploaded");
    Ok(StatusCode::NO_CONTENT)
}

/// Streams `body` into `image` (already `saving`) under `limit`, checks
/// what was stored with `check` (its `Err` is a 400), and activates the
/// image. Any failure leaves no data and the image `queued` again.
async fn store_and_activate(
    state: &AppState,
    image: &Image,
    limit: images::UploadLimit,
    body: Body,
    check: impl FnOnce(&data::StoredData) -> Result<(), String>,
) -> ApiResult<data::StoredData> {
    let image_id = image.id.as_str();
    let stored = data::store(
        &state.config.data_dir,
        image_id,
        image.disk_format.as_deref(),
        limit.bytes(),
        body,
    )
    .await;
    let refused = match &stored {
        Ok(stored) => check(stored).err().map(ApiError::bad_request),
        Err(_) => None,
    };
    let stored = match (stored, refused) {
        (Ok(stored), None) => stored,
        (stored, refused) => {
            if stored.is_ok() {
                data::remove(&state.config.data_dir, image_id)
                    .await
                    .map_err(ApiError::internal)?;
            }
            images::transition(&state.db, image_id, STATUS_SAVING, STATUS_QUEUED).await?;
            return Err(match (stored, refused) {
                (_, Some(refused)) => refused,
                (Err(data::DataError::Body(message)), _) => ApiError::bad_request(message),
                (Err(data::DataError::TooLarge { .. }), _) => too_large(limit.refusal(None)),
                (Err(other), _) => ApiError::internal(other),
                (Ok(_), None) => ApiError::internal("the upload failed"),
            });
        }
    };
    if !images::activate(&state.db, image_id, &stored).await? {
        // Deleted while uploading: drop the orphan data.
        data::remove(&state.config.data_dir, image_id)
            .await
            .map_err(ApiError::internal)?;
        return Err(ApiError::conflict(format!(
            "Image {image_id} was deleted during the upload."
        )));
    }
    Ok(stored)
}

/// Receives the data of snapshot `image` (already `saving`) from a compute
/// agent: its format (`info.disk_format`, container `bare`) is recorded,
/// the data streamed in under the owner's upload limit, and its size and
/// SHA-256 must be the ones `info` declares; then the image is active.
pub async fn receive_snapshot(
    state: &AppState,
    mut image: Image,
    info: &novum_wire::ImageFileInfo,
    body: Body,
) -> ApiResult<data::StoredData> {
    let disk_format = info
        .disk_format
        .clone()
        .filter(|format| images::DISK_FORMATS.contains(&format.as_str()));
    let (Some(disk_format), Some(size), Some("sha256"), Some(sha256)) = (
        disk_format,
        info.size,
        info.os_hash_algo.as_deref(),
        info.os_hash_value.clone(),
    ) else {
        images::transition(&state.db, &image.id, STATUS_SAVING, STATUS_QUEUED).await?;
        return Err(ApiError::bad_request(
            "A snapshot upload must name its disk format, size and sha256.",
        ));
    };
    image.disk_format = Some(disk_format);
    image.container_format = Some("bare".to_string());
    images::update_metadata(&state.db, &mut image).await?;
    let limit = images::UploadLimit::for_image(&state.db, &state.config.images, &image).await?;
    if size > limit.bytes() {
        images::transition(&state.db, &image.id, STATUS_SAVING, STATUS_QUEUED).await?;
        return Err(too_large(limit.refusal(Some(size))));
    }
    store_and_activate(state, &image, limit, body, |stored| {
        if u64::try_from(stored.size).ok() != Some(size) || stored.sha256 != sha256 {
            return Err(format!(
                "The snapshot data ({} bytes, sha256 {}) is not what its upload declared ({size} bytes, sha256 {sha256}).",
                stored.size, stored.sha256
            ));
        }
        Ok(())
    })
    .await
}

/// `GET /v2/images/{id}/file`: the data (204 when there is none yet).
#[utoipa::path(get, path = "/v2/images/{image_id}/file", params(("image_id" = String, Path, description = "The image id")), responses((status = OK, description = "The image data", content_type = "application/octet-stream", body = String), (status = NO_CONTENT, description = "No data uploaded yet"), crate::fault::ApiError))]
async fn download(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(image_id): Path<String>,
) -> ApiResult<Response> {
    let image = visible_image(&state, &auth, &image_id).await?;
    if image.status != STATUS_ACTIVE {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let (file, length) = data::open(&state.config.data_dir, &image_id)
        .await
        .map_err(ApiError::internal)?;
    let mut response = Response::new(file_body(file));
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

/// `file`, read in chunks, as an HTTP body.
pub(crate) fn file_body(file: tokio::fs::File) -> Body {
    Body::new(FileBody {
        file,
        buffer: vec![0; CHUNK].into_boxed_slice(),
        done: false,
    })
}

/// A file read in chunks as an HTTP body.
struct FileBody {
    file: tokio::fs::File,
    buffer: Box<[u8]>,
    done: bool,
}

impl HttpBody for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let mut read = ReadBuf::new(&mut this.buffer);
        match Pin::new(&mut this.file).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(error)) => Poll::Ready(Some(Err(error))),
            Poll::Ready(Ok(())) => {
                if read.filled().is_empty() {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(read.filled())))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// `PUT /v2/images/{id}/tags/{tag}`.
#[utoipa::path(put, path = "/v2/images/{image_id}/tags/{tag}", params(("image_id" = String, Path, description = "The image id"), ("tag" = String, Path, description = "The tag")), responses((status = NO_CONTENT, description = "Done, no body"), crate::fault::ApiError))]
async fn add_tag(
    State(state): State<AppState>,
    auth: AuthContext,
    Path((image_id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let mut image = owned_image(&state, &auth, &image_id, "modify_image").await?;
    let mut list = image.tags.clone();
    list.push(tag);
    image.tags = tags(&json!(list))?;
    images::update_metadata(&state.db, &mut image).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v2/images/{id}/tags/{tag}`.
#[utoipa::path(delete, path = "/v2/images/{image_id}/tags/{tag}", params(("image_id" = String, Path, description = "The image id"), ("tag" = String, Path, description = "The tag")), responses((status = NO_CONTENT, description = "Done, no body"), crate::fault::ApiError))]
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
    images::update_metadata(&state.db, &mut image).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- listing

/// A column filter's value: `in:a,b` is any of a list.
fn value_match(value: &str) -> ValueMatch {
    match value.strip_prefix("in:") {
        Some(list) => ValueMatch::AnyOf(
            list.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_string)
                .collect(),
        ),
        None => ValueMatch::Equals(value.to_string()),
    }
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
#[utoipa::path(get, path = "/v2/images", responses((status = OK, description = "Success", body = ImageList), crate::fault::ApiError))]
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
    let mut listing = ImageListing::default();
    // Visibility: what the caller may see, narrowed by the filter.
    let member_status = single("member_status").unwrap_or("accepted");
    if !["accepted", "pending", "rejected", "all"].contains(&member_status) {
        return Err(ApiError::bad_request(format!(
            "Invalid member_status {member_status}"
        )));
    }
    listing.member_status = (member_status != "all").then(|| member_status.to_string());
    listing.visibility =
        match single("visibility") {
            None => VisibilityFilter::Default,
            Some("all") => VisibilityFilter::All,
            Some(text) => VisibilityFilter::Only(Visibility::parse(text).ok_or_else(|| {
                ApiError::bad_request(format!("Invalid visibility value: {text}"))
            })?),
        };
    if let Some(text) = single("os_hidden") {
        listing.os_hidden = query_bool("os_hidden", text)?;
    }
    for column in [
        FilterColumn::Name,
        FilterColumn::Id,
        FilterColumn::Status,
        FilterColumn::Owner,
        FilterColumn::DiskFormat,
        FilterColumn::ContainerFormat,
    ] {
        if let Some(value) = single(column.name()) {
            listing.columns.push((column, value_match(value)));
        }
    }
    if let Some(text) = single("protected") {
        listing.protected = Some(query_bool("protected", text)?);
    }
    for (name, bound) in [
        ("size_min", &mut listing.size_min),
        ("size_max", &mut listing.size_max),
    ] {
        if let Some(text) = single(name) {
            *bound = Some(
                text.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("Invalid {name} value: {text}")))?,
            );
        }
    }
    for (key, value) in &params {
        if LIST_PARAMETERS.contains(&key.as_str()) {
            continue;
        }
        match key.as_str() {
            "tag" => listing.tags.push(value.clone()),
            "checksum" => listing
                .columns
                .push((FilterColumn::Checksum, value_match(value))),
            "os_hash_value" => listing
                .columns
                .push((FilterColumn::OsHashValue, value_match(value))),
            "created_at" | "updated_at" | "changes-since" => {
                return Err(ApiError::bad_request(format!(
                    "Filtering on {key} is not supported."
                )));
            }
            property => listing
                .properties
                .push((property.to_string(), value.clone())),
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
    listing.sort_key = SortKey::parse(&sort_key).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Unsupported sort key '{sort_key}'; use created_at, updated_at, name, id, status or size."
        ))
    })?;
    listing.descending = match sort_dir.as_str() {
        "desc" => true,
        "asc" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "Invalid sort direction '{other}'; use asc or desc."
            )));
        }
    };
    listing.limit = match single("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("limit param must be an integer: {text}")))?
            .min(MAX_LIMIT),
    };
    listing.marker = single("marker").map(str::to_string);
    let page = images::list(&state.db, &Viewer::from(&auth), &listing).await?;
    let mut body = json!({
        "first": "/v2/images",
        "schema": "/v2/schemas/images",
    });
    if page.more
        && let Some(last) = page.images.last()
    {
        let mut query: Vec<String> = params
            .iter()
            .filter(|(key, _)| key != "marker")
            .map(|(key, value)| format!("{}={}", percent_encode(key), percent_encode(value)))
            .collect();
        query.push(format!("marker={}", percent_encode(&last.id)));
        body["next"] = json!(format!("/v2/images?{}", query.join("&")));
    }
    body["images"] = page.images.iter().map(image_json).collect();
    Ok(axum::Json(body).into_response())
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
#[utoipa::path(get, path = "/v2/images/{image_id}/members", params(("image_id" = String, Path, description = "The image id")), responses((status = OK, description = "Success", body = ImageMemberList), crate::fault::ApiError))]
async fn list_members(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(image_id): Path<String>,
) -> ApiResult<Response> {
    let image = shared_image(&state, &auth, &image_id).await?;
    let only =
        (!auth.is_admin() && image.owner != auth.project_id).then_some(auth.project_id.as_str());
    let members = images::members(&state.db, &image_id, only).await?;
    let members: Vec<Value> = members.iter().map(member_json).collect();
    Ok(axum::Json(json!({"members": members, "schema": "/v2/schemas/members"})).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
struct NewMember {
    member: String,
}

/// `POST /v2/images/{id}/members` (the owner).
#[utoipa::path(post, path = "/v2/images/{image_id}/members", params(("image_id" = String, Path, description = "The image id")), request_body = NewMember, responses((status = OK, description = "Success", body = ImageMember), crate::fault::ApiError))]
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
    if !images::add_member(&state.db, &image_id, &member).await? {
        return Err(ApiError::conflict(format!(
            "Member {member} already exists for image {image_id}."
        )));
    }
    let created = images::members(&state.db, &image_id, Some(&member)).await?;
    let created = created
        .first()
        .ok_or_else(|| ApiError::not_found(format!("Member {member} not found")))?;
    Ok(axum::Json(member_json(created)).into_response())
}

/// `GET /v2/images/{id}/members/{member}` (the owner or that member).
#[utoipa::path(get, path = "/v2/images/{image_id}/members/{member_id}", params(("image_id" = String, Path, description = "The image id"), ("member_id" = String, Path, description = "The member project id")), responses((status = OK, description = "Success", body = ImageMember), crate::fault::ApiError))]
async fn show_member(
    State(state): State<AppState>,
    auth: AuthContext,
    Path((image_id, member_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let image = shared_image(&state, &auth, &image_id).await?;
    if !(auth.is_admin() || image.owner == auth.project_id || member_id == auth.project_id) {
        return Err(ApiError::not_found(format!("Member {member_id} not found")));
    }
    let members = images::members(&state.db, &image_id, Some(&member_id)).await?;
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
#[utoipa::path(put, path = "/v2/images/{image_id}/members/{member_id}", params(("image_id" = String, Path, description = "The image id"), ("member_id" = String, Path, description = "The member project id")), request_body = MemberStatus, responses((status = OK, description = "Success", body = ImageMember), crate::fault::ApiError))]
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
    if !images::set_member_status(&state.db, &image_id, &member_id, &status).await? {
        return Err(ApiError::not_found(format!("Member {member_id} not found")));
    }
    let members = images::members(&state.db, &image_id, Some(&member_id)).await?;
    let member = members
        .first()
        .ok_or_else(|| ApiError::not_found(format!("Member {member_id} not found")))?;
    Ok(axum::Json(member_json(member)).into_response())
}

/// `DELETE /v2/images/{id}/members/{member}` (the owner).
#[utoipa::path(delete, path = "/v2/images/{image_id}/members/{member_id}", params(("image_id" = String, Path, description = "The image id"), ("member_id" = String, Path, description = "The member project id")), responses((status = NO_CONTENT, description = "Done, no body"), crate::fault::ApiError))]
async fn delete_member(
    State(state): State<AppState>,
    auth: AuthContext,
    Path((image_id, member_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    owned_image(&state, &auth, &image_id, "delete_member").await?;
    if images::remove_member(&state.db, &image_id, &member_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("Member {member_id} not found")))
    }
}

/// A boolean of the query string as Glance reads one (oslo's strict
/// `bool_from_string`: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`,
/// `t`/`f`, `y`/`n`, in any case); anything else is a 400 naming `name`.
fn query_bool(name: &str, text: &str) -> ApiResult<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "Invalid {name} value: {text}"
        ))),
    }
}
