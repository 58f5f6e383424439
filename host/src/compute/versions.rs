//! Version documents: `GET /compute/` and `GET /compute/v2.1/` (unauthenticated).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::common::compute_url;
use crate::api::AppState;
use crate::api::microversion::{MAX_MICROVERSION, MIN_MICROVERSION};

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

/// `GET /compute/`: the version list.
pub async fn root(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"versions": [
        {
            "id": "v2.0",
            "status": "DEPRECATED",
            "version": "",
            "min_version": "",
            "updated": "2011-01-21T11:33:21Z",
            "links": [{"rel": "self", "href": format!("{}/v2/", compute_url(&state))}],
        },
        v21(&state),
    ]}))
}

async fn current(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"version": v21(&state)}))
}

/// The version routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/v2.1", get(current))
        .route("/v2.1/", get(current))
}
