//! What-if and shadow (issue 15), admin only:
//!
//! - `POST /novum/v1/scheduling/plan`: `{"plan": {"flavor": ID-or-name,
//!   "image": ID, "group": UUID?, "hints": {name: value-or-list}?,
//!   "count": N?, "availability_zone": "zone[:host]"?, "top": N?,
//!   "plugins": TOML?}}` runs the pipeline over the live host state without
//!   claiming or reserving: which hosts would take it (ranked, every
//!   weigher's part), why the others would not (per plugin and reason), how
//!   many of the flavor still fit per host, availability zone and
//!   aggregate; with `plugins` (a candidate set, see
//!   [`novum_scheduler::whatif::CandidateSet`]; plugin paths are the
//!   controller's) the same with the candidate set and the differences.
//! - `GET /novum/v1/scheduling/shadow`: what the shadow scheduler
//!   (`[scheduler.shadow]`) has compared since this controller started:
//!   agreements, disagreements by (production host, shadow host), the
//!   newest disagreements with why. 404 when no shadow runs.
//!
//! The candidate set body is shared with `POST
//! /novum/v1/decisions/{request_id}/replay` ([`candidate`]).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::AuthContext;
use crate::body::JsonBody;
use crate::fault::{ApiError, ApiResult};
use crate::request_id::RequestId;
use novum_compute::conductor::whatif::{Candidate, PlanParams};
use novum_compute::store::flavors;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

crate::envelope!(
    /// `{"plan": …}`
    PlanEnvelope, "plan", Object
);
crate::envelope!(
    /// `{"shadow": …}`
    ShadowEnvelope, "shadow", Object
);

/// Ranked hosts shown per set by default.
pub const DEFAULT_TOP: usize = 10;

/// The most ranked hosts a what-if or replay shows per set.
pub const MAX_TOP: usize = 1000;

/// The most servers one what-if places.
pub const MAX_COUNT: u32 = 1000;

/// The `/novum/v1/scheduling` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(plan))
        .routes(routes!(shadow))
}

/// A scheduler hint's value: one string or several.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
enum HintValue {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PlanBody {
    plan: PlanFields,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PlanFields {
    /// Flavor id or name.
    flavor: String,
    /// Image id.
    image: String,
    /// Server group uuid.
    #[serde(default)]
    group: Option<String>,
    /// Scheduler hints.
    #[serde(default)]
    #[schema(value_type = Object)]
    hints: BTreeMap<String, HintValue>,
    /// Servers (default 1, at most [`MAX_COUNT`]).
    #[serde(default)]
    count: Option<u32>,
    /// `zone`, `zone:host`.
    #[serde(default)]
    availability_zone: Option<String>,
    /// Ranked hosts shown per set (default 10).
    #[serde(default)]
    top: Option<usize>,
    /// A candidate plugin set (TOML).
    #[serde(default)]
    plugins: Option<String>,
}

/// The `top` asked for, checked (400 outside 1..=[`MAX_TOP`]).
pub(crate) fn top(asked: Option<usize>) -> ApiResult<usize> {
    match asked {
        None => Ok(DEFAULT_TOP),
        Some(top) if (1..=MAX_TOP).contains(&top) => Ok(top),
        Some(top) => Err(ApiError::bad_request(format!(
            "top must be 1 to {MAX_TOP}, not {top}"
        ))),
    }
}

/// Loads candidate set `text` (400 naming what is wrong: TOML, an unknown
/// key, a plugin that does not load).
pub(crate) async fn candidate(
    state: &AppState,
    text: Option<String>,
) -> ApiResult<Option<Candidate>> {
    let Some(text) = text else {
        return Ok(None);
    };
    let conductor = std::sync::Arc::clone(&state.conductor);
    let plugins = state.config.plugins.clone();
    let loaded = tokio::task::spawn_blocking(move || conductor.load_candidate(&text, &plugins))
        .await
        .map_err(ApiError::internal)?
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    Ok(Some(loaded))
}

#[utoipa::path(post, path = "/novum/v1/scheduling/plan", request_body = PlanBody, responses((status = OK, description = "Success", body = PlanEnvelope), crate::fault::ApiError))]
async fn plan(
    State(state): State<AppState>,
    auth: AuthContext,
    request_id: RequestId,
    JsonBody(body): JsonBody<PlanBody>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("novum:scheduling:plan")?;
    let fields = body.plan;
    let top = top(fields.top)?;
    if let Some(count) = fields.count
        && !(1..=MAX_COUNT).contains(&count)
    {
        return Err(ApiError::bad_request(format!(
            "count must be 1 to {MAX_COUNT}, not {count}"
        )));
    }
    let flavor = match flavors::get(&state.db, &fields.flavor).await? {
        Some(flavor) => flavor,
        None => flavors::list(&state.db)
            .await?
            .into_iter()
            .find(|flavor| flavor.name == fields.flavor)
            .ok_or_else(|| {
                ApiError::bad_request(format!("Flavor {} could not be found.", fields.flavor))
            })?,
    };
    let image = novum_images::get(&state.db, &fields.image)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(format!("Image {} could not be found.", fields.image))
        })?;
    let candidate = candidate(&state, fields.plugins).await?;
    let params = PlanParams {
        request_id: request_id.0,
        flavor: flavors::snapshot(&state.db, &flavor).await?,
        image_id: image.id,
        image_properties: image.properties,
        project_id: auth.project_id.clone(),
        user_id: auth.user_id.clone(),
        server_group: fields.group,
        hints: fields
            .hints
            .into_iter()
            .map(|(name, value)| {
                let values = match value {
                    HintValue::One(value) => vec![value],
                    HintValue::Many(values) => values,
                };
                (name, values)
            })
            .collect(),
        count: fields.count.unwrap_or(1),
        availability_zone: fields.availability_zone,
        top,
    };
    let plan = state.conductor.plan(params, candidate).await?;
    Ok(Json(json!({ "plan": plan })))
}

#[utoipa::path(get, path = "/novum/v1/scheduling/shadow", responses((status = OK, description = "Success", body = ShadowEnvelope), crate::fault::ApiError))]
async fn shadow(State(state): State<AppState>, auth: AuthContext) -> ApiResult<Json<Value>> {
    auth.require_admin("novum:scheduling:shadow")?;
    let shadow = state.conductor.decisions().shadow().ok_or_else(|| {
        ApiError::not_found(
            "No shadow scheduler runs on this controller (configure [scheduler.shadow]).",
        )
    })?;
    Ok(Json(json!({ "shadow": shadow.report() })))
}
