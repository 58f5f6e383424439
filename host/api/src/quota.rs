//! The quota API: `os-quota-sets`, `os-quota-class-sets` and `limits`, with
//! Nova's shapes per microversion and Nova's default policy (quota sets: a
//! project's members may read their own, only admins change them; quota
//! classes: admin only; limits: anyone, another project's only for admins).

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::auth::AuthContext;
use crate::body::JsonBody;
use crate::compute::common::strict_query;
use crate::extract::Path;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use novum_quota::{LimitMap, MAX_LIMIT, QuotaError, QuotaView, Resource};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

crate::envelope!(
    /// `{"quota_set": …}`
    QuotaSet, "quota_set", Object
);
crate::envelope!(
    /// `{"quota_class_set": …}`
    QuotaClassSet, "quota_class_set", Object
);
crate::envelope!(
    /// `{"limits": …}`
    Limits, "limits", Object
);

/// The status and message each quota failure is answered with: Nova's 403
/// with the policy's message when over quota, 400 for a limit out of range.
impl From<QuotaError> for ApiError {
    fn from(error: QuotaError) -> Self {
        match error {
            QuotaError::Db(error) => ApiError::internal(error),
            QuotaError::LimitOutOfRange(message) => ApiError::bad_request(message),
            denied @ (QuotaError::Exceeded { .. } | QuotaError::PolicyFailed { .. }) => {
                ApiError::forbidden(denied.to_string())
            }
        }
    }
}

/// What `os-quota-sets` shows at `version`: 2.36 drops the network
/// resources, 2.57 the injected files.
fn quota_sets_view(version: Microversion) -> QuotaView {
    QuotaView {
        network: !version.at_least(36),
        injected_files: !version.at_least(57),
        server_groups: true,
    }
}

/// What `os-quota-class-sets` shows at `version`: server groups only from
/// 2.50, which also drops the network resources; 2.57 drops the injected
/// files.
fn quota_class_sets_view(version: Microversion) -> QuotaView {
    QuotaView {
        network: !version.at_least(50),
        injected_files: !version.at_least(57),
        server_groups: version.at_least(50),
    }
}

/// The quota routes (under `/compute`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show, update, delete))
        .routes(routes!(defaults))
        .routes(routes!(detail))
        .routes(routes!(class_show, class_update))
        .routes(routes!(limits))
}

/// Query parameters; from 2.75 only `allowed` keys.
fn query(
    raw: Option<&str>,
    version: Microversion,
    allowed: &[&str],
) -> ApiResult<Vec<(String, String)>> {
    strict_query(raw, version.at_least(75), allowed)
}

fn user_param(pairs: &[(String, String)]) -> Option<String> {
    pairs
        .iter()
        .find(|(key, _)| key == "user_id")
        .map(|(_, value)| value.clone())
        .filter(|value| !value.is_empty())
}

/// Nova's `verify_project_id`: 400 for a project the identity service does
/// not know.
async fn verify_project(state: &AppState, project: &str) -> ApiResult<()> {
    match novum_identity::store::get_project(&state.db, project).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::bad_request(format!(
            "Project ID {project} is not a valid project."
        ))),
    }
}

/// `os_compute_api:os-quota-sets:{rule}` for project readers or admins.
fn require_reader(auth: &AuthContext, project: &str, rule: &str) -> ApiResult<()> {
    if auth.may_see_project(project) {
        Ok(())
    } else {
        Err(ApiError::policy(&format!(
            "os_compute_api:os-quota-sets:{rule}"
        )))
    }
}

/// A quota set body: `id` (when given) and the resources `shown`.
fn quota_set(
    id: Option<&str>,
    values: &LimitMap,
    shown: impl Fn(Resource) -> bool,
    value: impl Fn(Resource, i64) -> Value,
) -> Value {
    let mut body = Map::new();
    if let Some(id) = id {
        body.insert("id".to_string(), json!(id));
    }
    for (resource, limit) in values {
        if shown(*resource) {
            body.insert(resource.name().to_string(), value(*resource, *limit));
        }
    }
    Value::Object(body)
}

fn plain(_: Resource, limit: i64) -> Value {
    json!(limit)
}

#[utoipa::path(get, path = "/v2.1/os-quota-sets/{project}", params(("project" = String, Path, description = "The project id"), ("user_id" = Option<String>, Query, description = "The user whose quota (admin)")), responses((status = OK, description = "Success", body = QuotaSet), crate::fault::ApiError))]
async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(project): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    require_reader(&auth, &project, "show")?;
    let pairs = query(raw.as_deref(), version, &["user_id"])?;
    verify_project(&state, &project).await?;
    let user = user_param(&pairs);
    let mut conn = state.db.connection().await?;
    let limits = state
        .quota
        .limits(&mut conn, &project, user.as_deref())
        .await?;
    Ok(Json(
        json!({"quota_set": quota_set(Some(&project), &limits, |r| r.shown_in(quota_sets_view(version)), plain)}),
    ))
}

#[utoipa::path(get, path = "/v2.1/os-quota-sets/{project}/detail", params(("project" = String, Path, description = "The project id"), ("user_id" = Option<String>, Query, description = "The user whose quota (admin)")), responses((status = OK, description = "Success", body = QuotaSet), crate::fault::ApiError))]
async fn detail(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(project): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    require_reader(&auth, &project, "detail")?;
    let pairs = query(raw.as_deref(), version, &["user_id"])?;
    verify_project(&state, &project).await?;
    let user = user_param(&pairs);
    let mut conn = state.db.connection().await?;
    let limits = state
        .quota
        .limits(&mut conn, &project, user.as_deref())
        .await?;
    let usage = state
        .quota
        .usage(&mut conn, &project, user.as_deref())
        .await?;
    let body = quota_set(
        Some(&project),
        &limits,
        |r| r.shown_in(quota_sets_view(version)),
        |resource, limit| json!({"in_use": usage.get(&resource).copied().unwrap_or(0), "limit": limit, "reserved": 0}),
    );
    Ok(Json(json!({"quota_set": body})))
}

#[utoipa::path(get, path = "/v2.1/os-quota-sets/{project}/defaults", params(("project" = String, Path, description = "The project id")), responses((status = OK, description = "Success", body = QuotaSet), crate::fault::ApiError))]
async fn defaults(
    State(state): State<AppState>,
    _auth: AuthContext,
    version: Microversion,
    Path(project): Path<String>,
) -> ApiResult<Json<Value>> {
    verify_project(&state, &project).await?;
    let mut conn = state.db.connection().await?;
    let limits = state.quota.defaults(&mut conn).await?;
    Ok(Json(
        json!({"quota_set": quota_set(Some(&project), &limits, |r| r.shown_in(quota_sets_view(version)), plain)}),
    ))
}

/// Nova's `parameter_types.boolean`.
fn boolean(key: &str, value: &Value) -> ApiResult<bool> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        Value::String(text) => match text.as_str() {
            "True" | "TRUE" | "true" | "1" | "ON" | "On" | "on" | "YES" | "Yes" | "yes" => Ok(true),
            "False" | "FALSE" | "false" | "0" | "OFF" | "Off" | "off" | "NO" | "No" | "no" => {
                Ok(false)
            }
            _ => Err(invalid(key, value, "is not of type 'boolean'")),
        },
        _ => Err(invalid(key, value, "is not of type 'boolean'")),
    }
}

fn invalid(key: &str, value: &Value, reason: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input for field/attribute {key}. Value: {value}. {value} {reason}"
    ))
}

/// A limit: an integer or a string of digits, −1 ..= [`MAX_LIMIT`].
fn limit_value(key: &str, value: &Value) -> ApiResult<i64> {
    let number = match value {
        Value::Number(number) => number
            .as_i64()
            .ok_or_else(|| invalid(key, value, "is not of type 'integer', 'string'"))?,
        Value::String(text) => {
            let digits = text.strip_prefix('-').unwrap_or(text);
            if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(invalid(key, value, "does not match '^-?[0-9]+$'"));
            }
            text.parse::<i64>()
                .map_err(|_| invalid(key, value, "is too large"))?
        }
        _ => return Err(invalid(key, value, "is not of type 'integer', 'string'")),
    };
    if number < -1 {
        return Err(invalid(key, value, "is less than the minimum of -1"));
    }
    if number > MAX_LIMIT {
        return Err(invalid(
            key,
            value,
            &format!("is greater than the maximum of {MAX_LIMIT}"),
        ));
    }
    Ok(number)
}

/// The `{"<wrapper>": {...}}` object of a body; 400 for anything else.
fn wrapped<'a>(body: &'a Value, wrapper: &str) -> ApiResult<&'a Map<String, Value>> {
    let object = body.as_object().ok_or_else(|| {
        ApiError::bad_request("Invalid input for field/attribute body. The body must be an object.")
    })?;
    if let Some(key) = object.keys().find(|key| key.as_str() != wrapper) {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute body. Additional properties are not allowed ('{key}' was unexpected)"
        )));
    }
    object
        .get(wrapper)
        .and_then(Value::as_object)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid input for field/attribute {wrapper}. '{wrapper}' is a required property"
            ))
        })
}

/// The resources and limits of a quota (class) set body; `force` apart.
fn requested_limits(
    set: &Map<String, Value>,
    wrapper: &str,
    accepted: impl Fn(Resource) -> bool,
    allow_force: bool,
) -> ApiResult<(Vec<(Resource, i64)>, bool)> {
    let mut force = false;
    let mut limits = Vec::new();
    for (key, value) in set {
        if allow_force && key == "force" {
            force = boolean(key, value)?;
            continue;
        }
        let resource = Resource::from_name(key).filter(|resource| accepted(*resource)).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid input for field/attribute {wrapper}. Additional properties are not allowed ('{key}' was unexpected)"
            ))
        })?;
        limits.push((resource, limit_value(key, value)?));
    }
    Ok((limits, force))
}

#[utoipa::path(put, path = "/v2.1/os-quota-sets/{project}", params(("project" = String, Path, description = "The project id"), ("user_id" = Option<String>, Query, description = "The user whose quota (admin)")), request_body = QuotaSet, responses((status = OK, description = "Success", body = QuotaSet), crate::fault::ApiError))]
async fn update(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(project): Path<String>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-quota-sets:update")?;
    let pairs = query(raw.as_deref(), version, &["user_id"])?;
    verify_project(&state, &project).await?;
    let user = user_param(&pairs);
    let set = wrapped(&body, "quota_set")?;
    let (requested, force) = requested_limits(
        set,
        "quota_set",
        |r| r.shown_in(quota_sets_view(version)),
        true,
    )?;
    let limits = state
        .quota
        .set_limits(&project, user.as_deref(), &requested, force)
        .await?;
    Ok(Json(
        json!({"quota_set": quota_set(None, &limits, |r| r.shown_in(quota_sets_view(version)), plain)}),
    ))
}

#[utoipa::path(delete, path = "/v2.1/os-quota-sets/{project}", params(("project" = String, Path, description = "The project id"), ("user_id" = Option<String>, Query, description = "The user whose quota (admin)")), responses((status = ACCEPTED, description = "Accepted"), crate::fault::ApiError))]
async fn delete(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(project): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    auth.require_admin("os_compute_api:os-quota-sets:delete")?;
    let pairs = query(raw.as_deref(), version, &["user_id"])?;
    let user = user_param(&pairs);
    state.quota.delete_limits(&project, user.as_deref()).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[utoipa::path(get, path = "/v2.1/os-quota-class-sets/{class}", params(("class" = String, Path, description = "The quota class (`default`)")), responses((status = OK, description = "Success", body = QuotaClassSet), crate::fault::ApiError))]
async fn class_show(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(class): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-quota-class-sets:show")?;
    let mut conn = state.db.connection().await?;
    let limits = state.quota.class_limits(&mut conn, &class).await?;
    Ok(Json(
        json!({"quota_class_set": quota_set(Some(&class), &limits, |r| r.shown_in(quota_class_sets_view(version)), plain)}),
    ))
}

#[utoipa::path(put, path = "/v2.1/os-quota-class-sets/{class}", params(("class" = String, Path, description = "The quota class (`default`)")), request_body = QuotaClassSet, responses((status = OK, description = "Success", body = QuotaClassSet), crate::fault::ApiError))]
async fn class_update(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(class): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-quota-class-sets:update")?;
    if class.is_empty() || class.chars().count() > 255 {
        return Err(ApiError::bad_request(
            "quota_class_name has to be between 1 and 255 characters long.",
        ));
    }
    let set = wrapped(&body, "quota_class_set")?;
    let (requested, _) = requested_limits(
        set,
        "quota_class_set",
        |r| r.shown_in(quota_class_sets_view(version)),
        false,
    )?;
    let limits = state.quota.set_class_limits(&class, &requested).await?;
    Ok(Json(
        json!({"quota_class_set": quota_set(None, &limits, |r| r.shown_in(quota_class_sets_view(version)), plain)}),
    ))
}

/// `limits.absolute` names of each resource's limit.
fn absolute_names(resource: Resource, version: Microversion) -> &'static [&'static str] {
    match resource {
        Resource::Ram => &["maxTotalRAMSize"],
        Resource::Instances => &["maxTotalInstances"],
        Resource::Cores => &["maxTotalCores"],
        Resource::KeyPairs => &["maxTotalKeypairs"],
        Resource::MetadataItems if version.at_least(39) => &["maxServerMeta"],
        Resource::MetadataItems => &["maxServerMeta", "maxImageMeta"],
        Resource::ServerGroups => &["maxServerGroups"],
        Resource::ServerGroupMembers => &["maxServerGroupMembers"],
        Resource::InjectedFiles if !version.at_least(57) => &["maxPersonality"],
        Resource::InjectedFileContentBytes if !version.at_least(57) => &["maxPersonalitySize"],
        Resource::FloatingIps if !version.at_least(36) => &["maxTotalFloatingIps"],
        Resource::SecurityGroups if !version.at_least(36) => &["maxSecurityGroups"],
        Resource::SecurityGroupRules if !version.at_least(36) => &["maxSecurityGroupRules"],
        _ => &[],
    }
}

/// `limits.absolute` names of each resource's usage.
fn used_name(resource: Resource, version: Microversion) -> Option<&'static str> {
    match resource {
        Resource::Ram => Some("totalRAMUsed"),
        Resource::Cores => Some("totalCoresUsed"),
        Resource::Instances => Some("totalInstancesUsed"),
        Resource::ServerGroups => Some("totalServerGroupsUsed"),
        Resource::FloatingIps if !version.at_least(36) => Some("totalFloatingIpsUsed"),
        Resource::SecurityGroups if !version.at_least(36) => Some("totalSecurityGroupsUsed"),
        _ => None,
    }
}

#[utoipa::path(get, path = "/v2.1/limits", params(("tenant_id" = Option<String>, Query, description = "Another project's limits (admin)")), responses((status = OK, description = "Success", body = Limits), crate::fault::ApiError))]
async fn limits(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let pairs = query(raw.as_deref(), version, &["tenant_id"])?;
    let project = match pairs.iter().find(|(key, _)| key == "tenant_id") {
        Some((_, tenant)) => {
            auth.require_admin("os_compute_api:limits:other_project")?;
            tenant.clone()
        }
        None => auth.project_id.clone(),
    };
    let mut conn = state.db.connection().await?;
    let limits = state.quota.project_limits(&mut conn, &project).await?;
    let usage = state.quota.usage(&mut conn, &project, None).await?;
    let mut absolute = Map::new();
    for (resource, limit) in &limits {
        for name in absolute_names(*resource, version) {
            absolute.insert((*name).to_string(), json!(limit));
        }
        if let Some(name) = used_name(*resource, version) {
            absolute.insert(
                name.to_string(),
                json!(usage.get(resource).copied().unwrap_or(0)),
            );
        }
    }
    Ok(Json(json!({"limits": {"rate": [], "absolute": absolute}})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_follow_microversions() {
        let shown = |version: u16| {
            Resource::ALL
                .into_iter()
                .filter(|resource| resource.shown_in(quota_sets_view(Microversion::v2(version))))
                .count()
        };
        assert_eq!(shown(1), 14);
        assert_eq!(shown(36), 10);
        assert_eq!(shown(57), 7);
        let in_classes = |resource: Resource, version| {
            resource.shown_in(quota_class_sets_view(Microversion::v2(version)))
        };
        assert!(!in_classes(Resource::ServerGroups, 49));
        assert!(in_classes(Resource::ServerGroups, 50));
        assert!(in_classes(Resource::FloatingIps, 49));
        assert!(!in_classes(Resource::FloatingIps, 50));
        assert!(in_classes(Resource::InjectedFiles, 56));
        assert!(!in_classes(Resource::InjectedFiles, 57));
    }
}
