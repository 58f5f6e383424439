//! Server groups (`/v2.1/os-server-groups`): create, list, show, delete.
//!
//! Before 2.64 a group has a one-element `policies` list (`affinity`,
//! `anti-affinity`; the soft variants from 2.15) and empty `metadata`; from
//! 2.64 a `policy` and `rules` (`max_server_per_host` for anti-affinity).
//! `project_id` and `user_id` show from 2.13. The server-groups quota is
//! checked in the transaction that inserts the group. Servers join a group
//! with the `group` scheduler hint at create (see `servers`); the conductor
//! hands the group's policy, rules, members and their hosts to the scheduler.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::auth::AuthContext;
use crate::body::JsonBody;
use crate::extract::{Path, Query};
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use crate::request_id::RequestId;
use crate::validation::{self, TextFormat};
use novum_compute::store::server_groups::{self as store, ServerGroup};
use novum_notify::Publisher;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

fn view(version: Microversion, group: &ServerGroup) -> Value {
    let mut body = json!({
        "id": group.uuid,
        "name": group.name,
        "members": group.members,
    });
    if version.at_least(64) {
        body["policy"] = json!(group.policy);
        body["rules"] = json!(group.rules);
    } else {
        body["policies"] = json!([group.policy]);
        body["metadata"] = json!({});
    }
    if version.at_least(13) {
        body["project_id"] = json!(group.project_id);
        body["user_id"] = json!(group.user_id);
    }
    body
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Instance group {id} could not be found."))
}

/// Group `id` if the caller may see it (its project, or admin).
async fn fetch_visible(state: &AppState, auth: &AuthContext, id: &str) -> ApiResult<ServerGroup> {
    store::get(&state.db, id)
        .await?
        .filter(|group| auth.may_see_project(&group.project_id))
        .ok_or_else(|| not_found(id))
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    all_projects: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

fn count(name: &str, text: Option<&str>) -> ApiResult<Option<usize>> {
    text.map(|text| {
        text.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "Invalid input for query parameters {name}. Value: {text}."
            ))
        })
    })
    .transpose()
}

#[utoipa::path(get, path = "/v2.1/os-server-groups", params(ListQuery), responses((status = OK, description = "Success", body = ServerGroupList), crate::fault::ApiError))]
async fn index(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let all_projects = match query.all_projects.as_deref() {
        None => false,
        Some(text) => super::common::parse_bool(text).unwrap_or(true),
    };
    if all_projects {
        auth.require_admin("os_compute_api:os-server-groups:index:all_projects")?;
    }
    let limit = count("limit", query.limit.as_deref())?
        .unwrap_or(state.config.compute.max_limit)
        .min(state.config.compute.max_limit);
    let offset = count("offset", query.offset.as_deref())?.unwrap_or(0);
    let project = (!all_projects).then_some(auth.project_id.as_str());
    let groups: Vec<Value> = store::list(&state.db, project, offset, limit)
        .await?
        .iter()
        .map(|group| view(version, group))
        .collect();
    Ok(Json(json!({"server_groups": groups})))
}

#[utoipa::path(get, path = "/v2.1/os-server-groups/{id}", params(("id" = String, Path, description = "The server group UUID")), responses((status = OK, description = "Success", body = ServerGroupEnvelope), crate::fault::ApiError))]
async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let group = fetch_visible(&state, &auth, &id).await?;
    Ok(Json(json!({"server_group": view(version, &group)})))
}

const POLICIES: [&str; 4] = [
    "affinity",
    "anti-affinity",
    "soft-affinity",
    "soft-anti-affinity",
];

fn invalid(name: &str, value: &Value) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input for field/attribute {name}. Value: {value}."
    ))
}

/// The policy a create body asks for, checked against `version`.
fn policy_of(version: Microversion, input: &Map<String, Value>) -> ApiResult<String> {
    let allowed: &[&str] = if version.at_least(15) {
        &POLICIES
    } else {
        &POLICIES[..2]
    };
    let check = |name: &str, value: &Value| -> ApiResult<String> {
        value
            .as_str()
            .filter(|policy| allowed.contains(policy))
            .map(str::to_string)
            .ok_or_else(|| invalid(name, value))
    };
    if version.at_least(64) {
        let value = input
            .get("policy")
            .ok_or_else(|| ApiError::bad_request("'policy' is a required property"))?;
        check("policy", value)
    } else {
        match input.get("policies") {
            Some(Value::Array(items)) if items.len() == 1 => check("policies", &items[0]),
            Some(other) => Err(invalid("policies", other)),
            None => Err(ApiError::bad_request("'policies' is a required property")),
        }
    }
}

fn rules_of(policy: &str, input: &Map<String, Value>) -> ApiResult<Map<String, Value>> {
    let rules = match input.get("rules") {
        None => return Ok(Map::new()),
        Some(Value::Object(rules)) => rules,
        Some(other) => return Err(invalid("rules", other)),
    };
    if let Some(key) = rules.keys().find(|key| *key != "max_server_per_host") {
        return Err(ApiError::bad_request(format!(
            "Additional properties are not allowed ('{key}' was unexpected)"
        )));
    }
    if let Some(value) = rules.get("max_server_per_host") {
        let valid = match value {
            Value::Number(number) => number.as_i64().is_some_and(|n| n >= 1),
            Value::String(text) => text.parse::<i64>().is_ok_and(|n| n >= 1),
            _ => false,
        };
        if !valid {
            return Err(invalid("max_server_per_host", value));
        }
        if policy != "anti-affinity" {
            return Err(ApiError::bad_request(
                "Only anti-affinity policy supports max_server_per_host rule.",
            ));
        }
    }
    Ok(rules.clone())
}

#[utoipa::path(post, path = "/v2.1/os-server-groups", request_body = ServerGroupEnvelope, responses((status = OK, description = "Success", body = ServerGroupEnvelope), crate::fault::ApiError))]
async fn create(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    auth.require_writer("os_compute_api:os-server-groups:create")?;
    let input = match body.get("server_group") {
        Some(Value::Object(input)) if body.len() == 1 => input,
        _ => {
            return Err(ApiError::bad_request(
                "'server_group' is a required property",
            ));
        }
    };
    let known: &[&str] = if version.at_least(64) {
        &["name", "policy", "rules"]
    } else {
        &["name", "policies"]
    };
    if let Some(key) = input.keys().find(|key| !known.contains(&key.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Additional properties are not allowed ('{key}' was unexpected)"
        )));
    }
    let name = match input.get("name") {
        Some(name) => validation::text("name", name, TextFormat::Name)?,
        None => return Err(ApiError::bad_request("'name' is a required property")),
    };
    let policy = policy_of(version, input)?;
    let rules = rules_of(&policy, input)?;
    let mut tx = state.quota.begin(&auth.project_id).await?;
    state
        .quota
        .check_server_groups(&mut tx, &auth.project_id, &auth.user_id, &request_id.0)
        .await?;
    let group = ServerGroup {
        uuid: uuid::Uuid::new_v4().to_string(),
        name,
        policy,
        rules,
        project_id: auth.project_id.clone(),
        user_id: auth.user_id.clone(),
        members: Vec::new(),
    };
    store::create(tx, &Publisher::api(&state.config.host), &group).await?;
    Ok(Json(json!({"server_group": view(version, &group)})))
}

#[utoipa::path(delete, path = "/v2.1/os-server-groups/{id}", params(("id" = String, Path, description = "The server group UUID")), responses((status = NO_CONTENT, description = "Done, no body"), crate::fault::ApiError))]
async fn delete(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let group = fetch_visible(&state, &auth, &id).await?;
    auth.require_writer("os_compute_api:os-server-groups:delete")?;
    store::delete(&state.db, &Publisher::api(&state.config.host), &group.uuid).await?;
    Ok(StatusCode::NO_CONTENT)
}

crate::envelope!(
    /// `{"server_groups": …}`
    ServerGroupList, "server_groups", Array
);
crate::envelope!(
    /// `{"server_group": …}`
    ServerGroupEnvelope, "server_group", Object
);

/// The server group routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index, create))
        .routes(routes!(show, delete))
}
