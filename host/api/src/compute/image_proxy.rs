//! The compute API's image proxy (`/v2.1/images`, microversions 2.1 to
//! 2.35): the images the caller may see in the image service, in Nova's
//! shape (`minRam`, `minDisk`, `metadata`, `SAVING`/`ACTIVE` status,
//! `server` for snapshots), Nova's filters (`name`, `status`,
//! `changes-since`, `server`, `type`, `minRam`, `minDisk`, `property-*`),
//! delete, and the image metadata routes (`/images/{id}/metadata`). From
//! 2.36 every route answers 404, as Nova's do.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{
    MAX_PROXY_MICROVERSION, Page, api_time, compute_url, links, next_link, parse_query,
    query_value, until_microversion,
};
use crate::AppState;
use crate::auth::AuthContext;
use crate::body::JsonBody;
use crate::extract::Path;
use crate::fault::{ApiError, ApiResult};
use crate::images::{owned_image, remove_image, visible_image};
use crate::microversion::Microversion;
use novum_images::listing::{self, FilterColumn, ImageListing, ValueMatch};
use novum_images::{Image, Viewer};
use novum_quota::Resource;

/// The listing's page size when the proxy reads every image it then
/// filters and pages itself.
const ALL_IMAGES: usize = 100_000;

/// 404 from 2.36.
fn guard(version: Microversion) -> ApiResult<()> {
    until_microversion(version, MAX_PROXY_MICROVERSION)
}

/// Nova's answer for an image the caller cannot see.
fn image_not_found() -> ApiError {
    ApiError::not_found("Image not found.")
}

/// The image `id` the caller may see, 404 in Nova's words otherwise.
async fn shown_image(state: &AppState, auth: &AuthContext, id: &str) -> ApiResult<Image> {
    visible_image(state, auth, id)
        .await
        .map_err(|_| image_not_found())
}

/// Nova's status of an image-service status.
fn status(image: &Image) -> &'static str {
    match image.status.as_str() {
        "active" => "ACTIVE",
        "queued" | "saving" => "SAVING",
        "deleted" | "pending_delete" => "DELETED",
        "killed" => "ERROR",
        _ => "UNKNOWN",
    }
}

/// Nova's progress of an image-service status.
fn progress(image: &Image) -> u8 {
    match image.status.as_str() {
        "queued" => 25,
        "saving" => 50,
        "active" => 100,
        _ => 0,
    }
}

/// `self`, `bookmark` and the image service's `alternate` link.
fn image_links(state: &AppState, id: &str) -> Value {
    let mut shown = links(state, "images", id);
    if let Value::Array(list) = &mut shown {
        list.push(json!({
            "rel": "alternate",
            "type": "application/vnd.openstack.image",
            "href": format!("{}/image/images/{id}", state.config.public_base_url()),
        }));
    }
    shown
}

/// The id, name and links of an image (the list).
fn basic_view(state: &AppState, image: &Image) -> Value {
    json!({"id": image.id, "name": image.name, "links": image_links(state, &image.id)})
}

/// The detailed view of an image (show and the detailed list).
fn detail_view(state: &AppState, image: &Image) -> Value {
    let mut view = json!({
        "id": image.id,
        "name": image.name,
        "minRam": image.min_ram,
        "minDisk": image.min_disk,
        "metadata": image.properties,
        "created": api_time(&image.created_at),
        "updated": api_time(&image.updated_at),
        "status": status(image),
        "progress": progress(image),
        "OS-EXT-IMG-SIZE:size": image.size,
        "links": image_links(state, &image.id),
    });
    if let Some(server) = image.property("instance_uuid") {
        let base = compute_url(state);
        view["server"] = json!({
            "id": server,
            "links": [
                {"rel": "self", "href": format!("{base}/v2.1/servers/{server}")},
                {"rel": "bookmark", "href": format!("{base}/servers/{server}")},
            ],
        });
    }
    if let Some(auto) = image
        .property("auto_disk_config")
        .and_then(super::common::parse_bool)
    {
        view["OS-DCF:diskConfig"] = json!(if auto { "AUTO" } else { "MANUAL" });
    }
    view
}

/// Nova's filters of the query, as a listing, and the filters the listing
/// cannot express (`changes-since`, `minRam`, `minDisk`), checked after.
struct ProxyFilters {
    listing: ImageListing,
    changes_since: Option<String>,
    min_ram: Option<i64>,
    min_disk: Option<i64>,
}

impl ProxyFilters {
    fn of(pairs: &[(String, String)]) -> ApiResult<Self> {
        let mut listing = ImageListing {
            limit: ALL_IMAGES,
            descending: true,
            ..ImageListing::default()
        };
        let mut filters = ProxyFilters {
            listing: ImageListing::default(),
            changes_since: None,
            min_ram: None,
            min_disk: None,
        };
        let number = |key: &str, text: &str| {
            text.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("Invalid input for query parameters {key}."))
            })
        };
        for (key, value) in pairs {
            match key.as_str() {
                "name" => listing
                    .columns
                    .push((FilterColumn::Name, ValueMatch::Equals(value.clone()))),
                "status" => listing.columns.push((
                    FilterColumn::Status,
                    ValueMatch::Equals(value.to_lowercase()),
                )),
                "server" => listing.properties.push((
                    "instance_uuid".into(),
                    value.rsplit('/').next().unwrap_or(value).to_string(),
                )),
                "type" => listing
                    .properties
                    .push(("image_type".into(), value.clone())),
                "changes-since" => {
                    let since = chrono::DateTime::parse_from_rfc3339(value)
                        .or_else(|_| {
                            chrono::DateTime::parse_from_rfc3339(&format!("{value}Z"))
                        })
                        .map_err(|_| {
                            ApiError::bad_request(format!(
                                "Invalid input for query parameters changes-since. Value: {value}. '{value}' is not a 'date-time'"
                            ))
                        })?;
                    filters.changes_since = Some(novum_db::timestamp(since.to_utc()));
                }
                "minRam" => filters.min_ram = Some(number(key, value)?),
                "minDisk" => filters.min_disk = Some(number(key, value)?),
                other => {
                    if let Some(property) = other.strip_prefix("property-") {
                        listing
                            .properties
                            .push((property.to_string(), value.clone()));
                    }
                }
            }
        }
        filters.listing = listing;
        Ok(filters)
    }

    fn keeps(&self, image: &Image) -> bool {
        self.changes_since
            .as_deref()
            .is_none_or(|since| image.updated_at.as_str() >= since)
            && self.min_ram.is_none_or(|min| image.min_ram >= min)
            && self.min_disk.is_none_or(|min| image.min_disk >= min)
    }
}

/// The page of images a list asks for, and the next link.
async fn listed(
    state: &AppState,
    auth: &AuthContext,
    raw: Option<&str>,
    detail: bool,
) -> ApiResult<Json<Value>> {
    let pairs = parse_query(raw);
    let filters = ProxyFilters::of(&pairs)?;
    let page = listing::list(&state.db, &Viewer::from(auth), &filters.listing).await?;
    let images: Vec<Image> = page
        .images
        .into_iter()
        .filter(|image| filters.keeps(image))
        .collect();
    let paging = Page {
        limit: query_value(&pairs, "limit").map(str::to_string),
        marker: query_value(&pairs, "marker").map(str::to_string),
    };
    let (images, more) = paging.apply(state, images, |image| &image.id)?;
    let shown: Vec<Value> = images
        .iter()
        .map(|image| {
            if detail {
                detail_view(state, image)
            } else {
                basic_view(state, image)
            }
        })
        .collect();
    let mut body = json!({"images": shown});
    if more && let Some(last) = images.last() {
        body["images_links"] = next_link(
            state,
            if detail { "images/detail" } else { "images" },
            &pairs,
            &last.id,
        );
    }
    Ok(Json(body))
}

#[utoipa::path(get, path = "/v2.1/images", responses((status = OK, description = "Success", body = ImageList), crate::fault::ApiError))]
async fn index(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    guard(version)?;
    listed(&state, &auth, raw.as_deref(), false).await
}

#[utoipa::path(get, path = "/v2.1/images/detail", responses((status = OK, description = "Success", body = ImageList), crate::fault::ApiError))]
async fn detail(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    guard(version)?;
    listed(&state, &auth, raw.as_deref(), true).await
}

#[utoipa::path(get, path = "/v2.1/images/{image_id}", params(("image_id" = String, Path, description = "The image id")), responses((status = OK, description = "Success", body = ImageEnvelope), crate::fault::ApiError))]
async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    guard(version)?;
    let image = shown_image(&state, &auth, &id).await?;
    Ok(Json(json!({"image": detail_view(&state, &image)})))
}

#[utoipa::path(delete, path = "/v2.1/images/{image_id}", params(("image_id" = String, Path, description = "The image id")), responses((status = NO_CONTENT, description = "Deleted"), crate::fault::ApiError))]
async fn delete(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    guard(version)?;
    shown_image(&state, &auth, &id).await?;
    remove_image(&state, &auth, &id)
        .await
        .map_err(|error| match error.status() {
            StatusCode::FORBIDDEN => {
                ApiError::forbidden("You are not allowed to delete the image.")
            }
            StatusCode::NOT_FOUND => image_not_found(),
            _ => error,
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// The metadata of a request body under `wrapper` (`metadata` or `meta`):
/// an object of strings.
fn metadata_body(body: &Value, wrapper: &str) -> ApiResult<BTreeMap<String, String>> {
    let Some(object) = body.get(wrapper).and_then(Value::as_object) else {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {wrapper}. '{wrapper}' is a required property"
        )));
    };
    object
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key.clone(), text.clone())),
            other => Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute {key}. Value: {other}. {other} is not of type 'string'"
            ))),
        })
        .collect()
}

/// Nova's checks of new image metadata: the `metadata_items` quota of the
/// caller (403) and the keys' length (400).
async fn check_metadata(
    state: &AppState,
    auth: &AuthContext,
    metadata: &BTreeMap<String, String>,
) -> ApiResult<()> {
    if metadata.is_empty() {
        return Ok(());
    }
    let mut conn = state.db.connection().await?;
    state
        .quota
        .check_absolute(
            &mut conn,
            &auth.project_id,
            &auth.user_id,
            Resource::MetadataItems,
            i64::try_from(metadata.len()).unwrap_or(i64::MAX),
            "",
        )
        .await
        .map_err(|_| ApiError::forbidden("Image metadata limit exceeded"))?;
    for key in metadata.keys() {
        if key.is_empty() {
            return Err(ApiError::bad_request("Image metadata key cannot be blank"));
        }
        if key.chars().count() > 255 {
            return Err(ApiError::bad_request("Image metadata key too long"));
        }
    }
    Ok(())
}

/// Stores `properties` as the image's whole metadata, for a caller who may
/// change it (403 otherwise).
async fn store_metadata(
    state: &AppState,
    auth: &AuthContext,
    id: &str,
    properties: BTreeMap<String, String>,
) -> ApiResult<()> {
    check_metadata(state, auth, &properties).await?;
    let mut image =
        owned_image(state, auth, id, "modify_image")
            .await
            .map_err(|error| match error.status() {
                StatusCode::NOT_FOUND => image_not_found(),
                _ => error,
            })?;
    image.properties = properties;
    if !novum_images::update_metadata(&state.db, &mut image).await? {
        return Err(image_not_found());
    }
    Ok(())
}

#[utoipa::path(get, path = "/v2.1/images/{image_id}/metadata", params(("image_id" = String, Path, description = "The image id")), responses((status = OK, description = "Success", body = ImageMetadata), crate::fault::ApiError))]
async fn metadata_index(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    guard(version)?;
    let image = shown_image(&state, &auth, &id).await?;
    Ok(Json(json!({"metadata": image.properties})))
}

/// Adds or changes the given items, keeping the others.
#[utoipa::path(post, path = "/v2.1/images/{image_id}/metadata", params(("image_id" = String, Path, description = "The image id")), responses((status = OK, description = "Success", body = ImageMetadata), crate::fault::ApiError))]
async fn metadata_create(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    guard(version)?;
    let added = metadata_body(&body, "metadata")?;
    let mut properties = shown_image(&state, &auth, &id).await?.properties;
    properties.extend(added);
    store_metadata(&state, &auth, &id, properties.clone()).await?;
    Ok(Json(json!({"metadata": properties})))
}

/// Replaces the whole metadata.
#[utoipa::path(put, path = "/v2.1/images/{image_id}/metadata", params(("image_id" = String, Path, description = "The image id")), responses((status = OK, description = "Success", body = ImageMetadata), crate::fault::ApiError))]
async fn metadata_replace(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    guard(version)?;
    let properties = metadata_body(&body, "metadata")?;
    shown_image(&state, &auth, &id).await?;
    store_metadata(&state, &auth, &id, properties.clone()).await?;
    Ok(Json(json!({"metadata": properties})))
}

#[utoipa::path(get, path = "/v2.1/images/{image_id}/metadata/{key}", params(("image_id" = String, Path, description = "The image id"), ("key" = String, Path, description = "The metadata key")), responses((status = OK, description = "Success", body = ImageMeta), crate::fault::ApiError))]
async fn metadata_show(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    guard(version)?;
    let image = shown_image(&state, &auth, &id).await?;
    match image.property(&key) {
        Some(value) => Ok(Json(json!({"meta": {key.as_str(): value}}))),
        None => Err(ApiError::no_such_resource()),
    }
}

/// Sets one item; the body names exactly that key.
#[utoipa::path(put, path = "/v2.1/images/{image_id}/metadata/{key}", params(("image_id" = String, Path, description = "The image id"), ("key" = String, Path, description = "The metadata key")), responses((status = OK, description = "Success", body = ImageMeta), crate::fault::ApiError))]
async fn metadata_update(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path((id, key)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    guard(version)?;
    let meta = metadata_body(&body, "meta")?;
    if meta.len() > 1 {
        return Err(ApiError::bad_request(
            "Invalid input for field/attribute meta. Value: too many items. meta has too many properties",
        ));
    }
    let Some(value) = meta.get(&key) else {
        return Err(ApiError::bad_request("Request body and URI mismatch"));
    };
    let mut properties = shown_image(&state, &auth, &id).await?.properties;
    properties.insert(key.clone(), value.clone());
    store_metadata(&state, &auth, &id, properties).await?;
    Ok(Json(json!({"meta": meta})))
}

#[utoipa::path(delete, path = "/v2.1/images/{image_id}/metadata/{key}", params(("image_id" = String, Path, description = "The image id"), ("key" = String, Path, description = "The metadata key")), responses((status = NO_CONTENT, description = "Deleted"), crate::fault::ApiError))]
async fn metadata_delete(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    guard(version)?;
    let mut properties = shown_image(&state, &auth, &id).await?.properties;
    if properties.remove(&key).is_none() {
        return Err(ApiError::not_found("Invalid metadata key"));
    }
    store_metadata(&state, &auth, &id, properties).await?;
    Ok(StatusCode::NO_CONTENT)
}

crate::envelope!(
    /// `{"images": […]}`
    ImageList, "images", Array
);

crate::envelope!(
    /// `{"image": {…}}`
    ImageEnvelope, "image", Object
);

crate::envelope!(
    /// `{"metadata": {…}}`
    ImageMetadata, "metadata", Object
);

crate::envelope!(
    /// `{"meta": {…}}`
    ImageMeta, "meta", Object
);

/// The image proxy routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(detail))
        .routes(routes!(show, delete))
        .routes(routes!(metadata_index, metadata_create, metadata_replace))
        .routes(routes!(metadata_show, metadata_update, metadata_delete))
}
