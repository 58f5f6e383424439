//! The `rebuild`, `rescue` and `unrescue` server actions: their bodies
//! checked at the request's microversion, the images they name looked up
//! and checked as Nova does, the conductor called, and the answers shaped
//! (the server and `adminPass` for a rebuild, `adminPass` for a rescue).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use serde_json::json;

use super::common::compute_url;
use super::servers::{
    absolute_requests, admin_password, changed_server_view, check_image_fits, fetch_visible,
};
use crate::AppState;
use crate::auth::AuthContext;
use crate::bodies::fields::Personality;
use crate::bodies::server_action::{Rebuild, RescueBody};
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use novum_compute::conductor::Caller;
use novum_compute::conductor::model::Instance;
use novum_compute::conductor::rebuild::{KeyPair, RebuildRequest};
use novum_images as images;
use novum_quota::Resource;
use novum_wire::ImageSpec;

/// From 2.54 a rebuild's answer shows `key_name`, from 2.57 the user data.
const KEY_NAME_IN_REBUILD_SINCE: u16 = 54;
const USER_DATA_IN_REBUILD_SINCE: u16 = 57;

/// Image properties that ask for Nova's stable device rescue (2.87), which
/// novum's agents do not do.
const STABLE_RESCUE_PROPERTIES: [&str; 2] = ["hw_rescue_device", "hw_rescue_bus"];

/// Image `image_id` as `auth` may see it; `missing` makes the 400 when it
/// is unknown.
async fn visible_image(
    state: &AppState,
    auth: &AuthContext,
    image_id: &str,
    missing: impl FnOnce() -> ApiError,
) -> ApiResult<images::Image> {
    images::get_for_project(&state.db, image_id, &images::Viewer::from(auth))
        .await
        .map_err(|error| match error {
            images::ImageError::NotFound(_) => missing(),
            other => ApiError::from(other),
        })
}

/// `rebuild`: server `id` (`instance`) boots again from the image the body
/// names, with what else it changes. 202 with the server (shaped as an
/// update's answer, plus `key_name` from 2.54 and the user data from 2.57)
/// and `adminPass`, and a `Location` header.
pub async fn rebuild(
    state: &AppState,
    auth: &AuthContext,
    version: Microversion,
    instance: &Instance,
    rebuild: Rebuild,
    caller: &Caller<'_>,
) -> ApiResult<Response> {
    let image_id = rebuild.image_id();
    let image = visible_image(state, auth, &image_id, || {
        ApiError::bad_request("Cannot find image for rebuild")
    })
    .await?;
    let flavor = instance.flavor()?;
    check_image_fits(&image, &image_id, flavor.memory_mb, flavor.root_gb)?;
    let key_pair = match &rebuild.key_name {
        None => None,
        Some(None) => Some(None),
        Some(Some(name)) => {
            let public_key =
                novum_compute::store::keypairs::public_key_of(&state.db, &auth.user_id, name)
                    .await?
                    .ok_or_else(|| ApiError::bad_request("Invalid key_name provided."))?;
            Some(Some(KeyPair {
                name: name.clone(),
                public_key,
            }))
        }
    };
    let metadata = rebuild.metadata.clone().map(|metadata| metadata.0);
    let mut absolute = absolute_requests(
        metadata.as_ref().map_or(0, |metadata| metadata.len()),
        rebuild.personality.as_ref().map(Personality::sizes),
    );
    if metadata.is_none() {
        absolute.retain(|(resource, _)| *resource != Resource::MetadataItems);
    }
    let request = RebuildRequest {
        image_ref: image_id,
        image_properties: image.properties,
        name: rebuild.name.clone(),
        metadata,
        absolute,
        access_ip_v4: rebuild.access_ip_v4.as_ref().map(|ip| ip.0.clone()),
        access_ip_v6: rebuild.access_ip_v6.as_ref().map(|ip| ip.0.clone()),
        description: rebuild.description.clone(),
        key_pair,
        user_data: rebuild
            .user_data
            .as_ref()
            .map(|data| data.as_ref().map(|data| data.0.clone())),
        hostname: rebuild.hostname.clone(),
        preserve_ephemeral: rebuild.preserves_ephemeral(),
    };
    state
        .conductor
        .rebuild_server(&instance.uuid, request, caller)
        .await?;
    let mut view = changed_server_view(state, auth, version, &instance.uuid).await?;
    let rebuilt = fetch_visible(state, auth, &instance.uuid).await?;
    if version.at_least(KEY_NAME_IN_REBUILD_SINCE) {
        view["key_name"] = json!(rebuilt.key_name);
    }
    // Nova's rebuild answer leaves the extended `OS-EXT-SRV-ATTR:user_data`
    // out; from 2.57 it carries `user_data` instead.
    if let Some(fields) = view.as_object_mut() {
        fields.remove("OS-EXT-SRV-ATTR:user_data");
    }
    if version.at_least(USER_DATA_IN_REBUILD_SINCE) {
        view["user_data"] = json!(rebuilt.user_data);
    }
    if let Some(password) = admin_password(state, rebuild.admin_pass.as_ref()) {
        view["adminPass"] = json!(password);
    }
    let mut response = (StatusCode::ACCEPTED, Json(json!({ "server": view }))).into_response();
    let location = format!("{}/v2.1/servers/{}", compute_url(state), instance.uuid);
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `rescue`: server `instance` boots from the rescue image (the one the
/// body names, else its own). 202 with `{"adminPass": …}` (`{}` when
/// passwords are not shown).
pub async fn rescue(
    state: &AppState,
    auth: &AuthContext,
    instance: &Instance,
    body: RescueBody,
    caller: &Caller<'_>,
) -> ApiResult<Response> {
    let rescue = body.rescue.unwrap_or_default();
    let image_id = rescue
        .rescue_image_ref
        .clone()
        .unwrap_or_else(|| instance.image_ref.clone());
    let unsupported = || {
        ApiError::bad_request(format!(
            "Requested rescue image '{image_id}' is not supported"
        ))
    };
    let rescue_image = match &rescue.rescue_image_ref {
        Some(image_id) => {
            let image = visible_image(state, auth, image_id, unsupported).await?;
            if image.status != images::STATUS_ACTIVE {
                return Err(unsupported());
            }
            ImageSpec {
                id: image_id.clone(),
                properties: image.properties,
            }
        }
        None => ImageSpec {
            id: instance.image_ref.clone(),
            properties: instance.image_property_map(),
        },
    };
    let stable_device_rescue = STABLE_RESCUE_PROPERTIES
        .iter()
        .any(|property| rescue_image.properties.contains_key(*property));
    let volume_snapshot = rescue_image
        .properties
        .contains_key("img_block_device_mapping");
    if stable_device_rescue || volume_snapshot {
        return Err(unsupported());
    }
    let rescue_image = rescue.rescue_image_ref.is_some().then_some(rescue_image);
    state
        .conductor
        .rescue_server(&instance.uuid, rescue_image, caller)
        .await?;
    let answer = match admin_password(state, rescue.admin_pass.as_ref()) {
        Some(password) => json!({ "adminPass": password }),
        None => json!({}),
    };
    // Nova answers a rescue with 200 (the password), not 202.
    Ok((StatusCode::OK, Json(answer)).into_response())
}
