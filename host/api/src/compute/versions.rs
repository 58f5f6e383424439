//! Version documents: `GET /compute/`, `GET /compute/v2.1/` and the legacy
//! `GET /compute/v2/` (unauthenticated).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::common::compute_url;
use crate::AppState;
use crate::microversion::{MAX_MICROVERSION, MIN_MICROVERSION};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

fn v21(state: &AppState) -> Value {
    json!({
        "id": "v2.1",
        "status": "CURRENT",
        "version": MAX_MICROVERSION.to_string(),
        "min_version": MIN_MICROVERSION.to_string(),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": format!("{}/v2.1/", compute_url(state))}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}],
    })
}

/// The legacy v2.0 API as Nova lists it: SUPPORTED, no microversions. Its
/// own document (`GET /v2/`) adds the media types.
fn v20(state: &AppState, media_types: bool) -> Value {
    let mut version = json!({
        "id": "v2.0",
        "status": "SUPPORTED",
        "version": "",
        "min_version": "",
        "updated": "2011-01-21T11:33:21Z",
        "links": [{"rel": "self", "href": format!("{}/v2/", compute_url(state))}],
    });
    if media_types {
        version["media-types"] = json!([
            {"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2"}
        ]);
    }
    version
}

/// `GET /compute`: the version list.
#[utoipa::path(get, path = "/", security(()), responses((status = OK, description = "The versions", body = VersionList)))]
pub async fn root(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"versions": [v20(&state, false), v21(&state)]}))
}

/// `GET /compute/`: the version list.
#[utoipa::path(get, path = "/compute/", security(()), responses((status = OK, description = "The versions", body = VersionList)))]
pub async fn root_with_slash(state: State<AppState>) -> Json<Value> {
    root(state).await
}

/// `GET /compute/v2.1`: the current version.
#[utoipa::path(get, path = "/v2.1", security(()), responses((status = OK, description = "The v2.1 version", body = VersionEnvelope)))]
async fn current(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"version": v21(&state)}))
}

/// `GET /compute/v2.1/`: the current version.
#[utoipa::path(get, path = "/v2.1/", security(()), responses((status = OK, description = "The v2.1 version", body = VersionEnvelope)))]
async fn current_with_slash(state: State<AppState>) -> Json<Value> {
    current(state).await
}

/// `GET /compute/v2`: the legacy v2.0 version.
#[utoipa::path(get, path = "/v2", security(()), responses((status = OK, description = "The v2.0 version", body = VersionEnvelope)))]
async fn legacy(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"version": v20(&state, true)}))
}

/// `GET /compute/v2/`: the legacy v2.0 version.
#[utoipa::path(get, path = "/v2/", security(()), responses((status = OK, description = "The v2.0 version", body = VersionEnvelope)))]
async fn legacy_with_slash(state: State<AppState>) -> Json<Value> {
    legacy(state).await
}

crate::envelope!(
    /// `{"versions": …}`
    VersionList, "versions", Array
);
crate::envelope!(
    /// `{"version": …}`
    VersionEnvelope, "version", Object
);

/// The version routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(root))
        .routes(routes!(current))
        .routes(routes!(current_with_slash))
        .routes(routes!(legacy))
        .routes(routes!(legacy_with_slash))
}
