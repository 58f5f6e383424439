//! The decision log (issue 15, "explain"):
//!
//! - `GET /novum/v1/decisions/{request_id}`: the scheduling decisions of one
//!   API request (`x-openstack-request-id`; the fault of a server that
//!   found no host names it), oldest first. An admin sees each whole: every
//!   rejected host with the plugin that rejected it and its reason, Nova's
//!   filter results, the best hosts of the ranking with each weigher's raw
//!   weight, normalized weight and multiplier. A member of the requesting
//!   project sees the summary: the request, the outcome without hosts, the
//!   hosts rejected per plugin. Anyone else: 404.
//! - `GET /novum/v1/decisions?limit=&marker=` (admin): the newest
//!   decisions first, one line each; `marker` is the `id` of the last one
//!   of the previous page.
//! - `POST /novum/v1/decisions/{request_id}/replay` (admin): runs the
//!   request's decisions again over their kept inputs (the newest
//!   `[scheduler] decision_replay_size` keep them) with the live plugin set,
//!   or with the candidate set of an optional body `{"replay": {"plugins":
//!   TOML?, "top": N?}}`, and answers per decision the replayed decision and
//!   its comparison with the original: the hosts each chose and every host
//!   whose verdict differs. 404 when nothing is kept for the request, 409
//!   when its inputs no longer are.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::AuthContext;
use crate::body::parse_json;
use crate::extract::Path;
use crate::fault::{ApiError, ApiResult};
use crate::notifications::{parse_limit, query};
use novum_compute::store::decisions::{self, StoredDecision};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

crate::envelope!(
    /// `{"request_id": …, "decisions": […]}`
    DecisionsOfRequest, "decisions", Array
);
crate::envelope!(
    /// `{"decisions": […]}`
    DecisionList, "decisions", Array
);
crate::envelope!(
    /// `{"request_id": …, "inputs": [{"id": …, "inputs": "…" | null}]}`
    DecisionInputsOfRequest, "inputs", Array
);
crate::envelope!(
    /// `{"request_id": …, "replays": […]}`
    ReplayList, "replays", Array
);

/// The `/novum/v1/decisions` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show))
        .routes(routes!(list))
        .routes(routes!(replay))
        .routes(routes!(inputs))
}

/// A decision as an admin sees it: the whole record, its row id and the
/// controller that decided it.
fn whole(stored: &StoredDecision) -> Value {
    let mut value = json!(stored.decision);
    if let Some(object) = value.as_object_mut() {
        object.insert("id".into(), json!(stored.id));
        object.insert("controller".into(), json!(stored.controller));
    }
    value
}

#[utoipa::path(get, path = "/novum/v1/decisions/{request_id}", params(("request_id" = String, Path, description = "The API request id (x-openstack-request-id) the decisions served")), responses((status = OK, description = "Success", body = DecisionsOfRequest), crate::fault::ApiError))]
async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(request_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let kept = decisions::for_request(&state.db, &request_id).await?;
    let shown: Vec<Value> = if auth.is_admin() {
        kept.iter().map(whole).collect()
    } else {
        kept.iter()
            .filter(|stored| stored.project_id == auth.project_id)
            .map(|stored| json!(stored.decision.summary()))
            .collect()
    };
    if shown.is_empty() {
        return Err(ApiError::not_found(format!(
            "No scheduling decision is kept for request {request_id}."
        )));
    }
    Ok(Json(
        json!({ "request_id": request_id, "decisions": shown }),
    ))
}

/// `GET /novum/v1/decisions/{request_id}/inputs` (admin): what each
/// decision of the request kept to be re-run — the request and the hosts
/// its plugins saw, encoded as the log keeps them (deflated JSON in base64,
/// `novum_scheduler::whatif::DecisionInputs::decode`), or `null` once no
/// longer kept. `novum plugin test --decisions-from` runs a plugin over them.
#[utoipa::path(get, path = "/novum/v1/decisions/{request_id}/inputs", params(("request_id" = String, Path, description = "The API request id (x-openstack-request-id) the decisions served")), responses((status = OK, description = "Success", body = DecisionInputsOfRequest), crate::fault::ApiError))]
async fn inputs(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(request_id): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("novum:decisions:inputs")?;
    // Inputs this controller keeps are encoded when asked for.
    state.conductor.decisions().flush().await;
    let kept = decisions::for_request(&state.db, &request_id).await?;
    if kept.is_empty() {
        return Err(ApiError::not_found(format!(
            "No scheduling decision is kept for request {request_id}."
        )));
    }
    let mut shown = Vec::with_capacity(kept.len());
    for stored in &kept {
        let encoded = decisions::inputs(&state.db, stored.id).await?;
        shown.push(json!({ "id": stored.id, "inputs": encoded }));
    }
    Ok(Json(json!({ "request_id": request_id, "inputs": shown })))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Decisions per page (default 100, at most 1000).
    limit: Option<String>,
    /// The `id` of the last decision of the previous page.
    marker: Option<String>,
}

#[utoipa::path(get, path = "/novum/v1/decisions", params(ListQuery), responses((status = OK, description = "Success", body = DecisionList), crate::fault::ApiError))]
async fn list(
    State(state): State<AppState>,
    auth: AuthContext,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("novum:decisions:list")?;
    let params = query(params)?;
    let limit = parse_limit(params.limit.as_deref())?;
    let marker = params
        .marker
        .as_deref()
        .map(|marker| {
            marker.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "marker must be the id of a decision, got '{marker}'"
                ))
            })
        })
        .transpose()?;
    let entries = decisions::page(&state.db, limit, marker).await?;
    let listed: Vec<Value> = entries
        .into_iter()
        .map(|entry| {
            json!({
                "id": entry.id,
                "request_id": entry.request_id,
                "instance_uuid": entry.instance_uuid,
                "project_id": entry.project_id,
                "purpose": entry.purpose,
                "result": entry.outcome,
                "controller": entry.controller,
                "decided_at": entry.decided_at,
            })
        })
        .collect();
    Ok(Json(json!({ "decisions": listed })))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    replay: ReplayFields,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplayFields {
    /// A candidate plugin set (TOML); absent: the live set.
    #[serde(default)]
    plugins: Option<String>,
    /// Ranked hosts shown per decision (default 10).
    #[serde(default)]
    top: Option<usize>,
}

#[utoipa::path(post, path = "/novum/v1/decisions/{request_id}/replay", params(("request_id" = String, Path, description = "The API request id the decisions served")), request_body = ReplayBody, responses((status = OK, description = "Success", body = ReplayList), crate::fault::ApiError))]
async fn replay(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(request_id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    auth.require_admin("novum:decisions:replay")?;
    // The body is optional: none replays with the live set.
    let fields = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayFields::default()
    } else {
        parse_json::<ReplayBody>(&body)?.replay
    };
    let top = crate::scheduling::top(fields.top)?;
    let candidate = crate::scheduling::candidate(&state, fields.plugins).await?;
    let replays = state.conductor.replay(&request_id, candidate, top).await?;
    Ok(Json(
        json!({ "request_id": request_id, "replays": replays }),
    ))
}
