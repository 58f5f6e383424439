//! The Keystone v3 HTTP subset under `/identity`: version documents, tokens,
//! the catalog, and admin CRUD of projects, users, roles and role
//! assignments. Errors take Keystone's shape.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::Digest;

use crate::AppState;
use crate::body::parse_json;
use crate::fault::{ApiError, FaultStyle};
use crate::validation;
use novum_config::Config;
use novum_identity::store::{
    self, DEFAULT_DOMAIN_ID, DEFAULT_DOMAIN_NAME, ListFilter, Project, Role, User,
};
use novum_identity::{AUTH_REQUIRED, AuthSpec, IdentityError, TokenError, ValidToken, password};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The Identity API version served.
pub const IDENTITY_VERSION: &str = "v3.14";
/// The date of the newest Identity API change novum follows.
const IDENTITY_UPDATED: &str = "2020-04-07T00:00:00Z";
/// Longest project, user and role names.
const MAX_NAME_LENGTH: usize = 255;

/// An error answered in Keystone's shape.
#[derive(Debug)]
pub struct KeystoneError(pub ApiError);

impl From<ApiError> for KeystoneError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<novum_db::DbError> for KeystoneError {
    fn from(error: novum_db::DbError) -> Self {
        Self(ApiError::internal(error))
    }
}

impl IntoResponse for KeystoneError {
    fn into_response(self) -> Response {
        self.0.styled(FaultStyle::Keystone).into_response()
    }
}

impl From<IdentityError> for KeystoneError {
    fn from(error: IdentityError) -> Self {
        Self(error.into())
    }
}

/// The status and message each identity failure is answered with.
impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::BadRequest(message) => ApiError::bad_request(message),
            IdentityError::Unauthorized(message) => ApiError::unauthorized(message),
            internal @ (IdentityError::Db(_)
            | IdentityError::Keys(_)
            | IdentityError::PasswordChecksClosed(_)) => ApiError::internal(internal),
        }
    }
}

type KsResult<T> = Result<T, KeystoneError>;

crate::fault_extractors!(KeystoneError);

impl From<PathRejection> for KeystoneError {
    fn from(rejection: PathRejection) -> Self {
        KeystoneError(ApiError::from(rejection))
    }
}

impl From<QueryRejection> for KeystoneError {
    fn from(rejection: QueryRejection) -> Self {
        KeystoneError(ApiError::from(rejection))
    }
}

/// The caller of an identity request: the validated `X-Auth-Token`.
pub struct Caller(pub ValidToken);

impl FromRequestParts<AppState> for Caller {
    type Rejection = KeystoneError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> KsResult<Self> {
        let token = parts
            .headers
            .get("x-auth-token")
            .and_then(|value| value.to_str().ok())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ApiError::unauthorized(AUTH_REQUIRED))?;
        let valid = state
            .identity
            .check_token(token)
            .await
            .map_err(TokenError::into_unauthorized)?;
        Ok(Self(valid))
    }
}

impl Caller {
    /// 403 unless the caller holds admin on its project; `rule` names the policy.
    fn require_admin(&self, rule: &str) -> KsResult<()> {
        if self.0.project.is_some() && self.0.is_admin() {
            Ok(())
        } else {
            Err(forbidden(rule))
        }
    }

    /// Admin, or the user `user_id` itself.
    fn require_admin_or_user(&self, rule: &str, user_id: &str) -> KsResult<()> {
        if self.0.user.id == user_id {
            Ok(())
        } else {
            self.require_admin(rule)
        }
    }
}

fn forbidden(rule: &str) -> KeystoneError {
    KeystoneError(ApiError::forbidden(format!(
        "You are not authorized to perform the requested action: {rule}."
    )))
}

fn not_found(kind: &str, id: &str) -> KeystoneError {
    KeystoneError(ApiError::not_found(format!("Could not find {kind}: {id}.")))
}

fn conflict(kind: &str, name: &str) -> KeystoneError {
    KeystoneError(ApiError::conflict(format!(
        "Conflict occurred attempting to store {kind} - Duplicate entry found with name {name} at domain ID {DEFAULT_DOMAIN_ID}."
    )))
}

/// Parses a JSON body with Keystone-shaped errors.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> KsResult<T> {
    Ok(parse_json(bytes)?)
}

fn validate_name(kind: &str, name: &str) -> KsResult<()> {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_LENGTH {
        return Err(KeystoneError(ApiError::bad_request(format!(
            "Invalid input for field 'name': the {kind} name must be 1 to {MAX_NAME_LENGTH} characters."
        ))));
    }
    if validation::has_control_character(name) {
        return Err(KeystoneError(ApiError::bad_request(format!(
            "Invalid input for field 'name': the {kind} name must not contain control characters."
        ))));
    }
    Ok(())
}

fn check_domain_id(domain_id: Option<&str>) -> KsResult<()> {
    match domain_id {
        None => Ok(()),
        Some(id) if id == DEFAULT_DOMAIN_ID => Ok(()),
        Some(id) => Err(KeystoneError(ApiError::bad_request(format!(
            "Could not find domain: {id}; novum has only the domain '{DEFAULT_DOMAIN_ID}'."
        )))),
    }
}

crate::envelope!(
    /// `{"versions": …}`
    IdentityVersions, "versions", Object
);
crate::envelope!(
    /// `{"version": …}`
    IdentityVersion, "version", Object
);
crate::envelope!(
    /// `{"token": …}`
    IdentityToken, "token", Object
);
crate::envelope!(
    /// `{"catalog": …}`
    IdentityCatalog, "catalog", Array
);
crate::envelope!(
    /// `{"projects": …}`
    IdentityProjectList, "projects", Array
);
crate::envelope!(
    /// `{"project": …}`
    IdentityProject, "project", Object
);
crate::envelope!(
    /// `{"domains": …}`
    IdentityDomainList, "domains", Array
);
crate::envelope!(
    /// `{"domain": …}`
    IdentityDomain, "domain", Object
);
crate::envelope!(
    /// `{"users": …}`
    IdentityUserList, "users", Array
);
crate::envelope!(
    /// `{"user": …}`
    IdentityUser, "user", Object
);
crate::envelope!(
    /// `{"roles": …}`
    IdentityRoleList, "roles", Array
);
crate::envelope!(
    /// `{"role": …}`
    IdentityRole, "role", Object
);
crate::envelope!(
    /// `{"role_assignments": …}`
    IdentityRoleAssignments, "role_assignments", Array
);
crate::envelope!(
    /// `{"services": …}`
    IdentityServiceList, "services", Array
);
crate::envelope!(
    /// `{"service": …}`
    IdentityService, "service", Object
);
crate::envelope!(
    /// `{"endpoints": …}`
    IdentityEndpointList, "endpoints", Array
);
crate::envelope!(
    /// `{"endpoint": …}`
    IdentityEndpoint, "endpoint", Object
);

/// The body of `POST /v3/auth/tokens`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct AuthRequest {
    /// `auth`.
    pub auth: AuthSpec,
}

/// The `/identity` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(versions))
        .routes(routes!(version))
        .routes(routes!(version_with_slash))
        .routes(routes!(validate_token, issue_token, revoke_token))
        .routes(routes!(auth_catalog))
        .routes(routes!(auth_projects))
        .routes(routes!(auth_domains))
        .routes(routes!(list_domains))
        .routes(routes!(show_domain))
        .routes(routes!(list_projects, create_project))
        .routes(routes!(show_project, update_project, delete_project))
        .routes(routes!(list_grants))
        .routes(routes!(check_grant, create_grant, delete_grant))
        .routes(routes!(list_users, create_user))
        .routes(routes!(show_user, update_user, delete_user))
        .routes(routes!(user_projects))
        .routes(routes!(change_password))
        .routes(routes!(list_roles, create_role))
        .routes(routes!(show_role, delete_role))
        .routes(routes!(list_role_assignments))
        .routes(routes!(list_services))
        .routes(routes!(show_service))
        .routes(routes!(list_endpoints))
        .routes(routes!(show_endpoint))
        .fallback(|| async { KeystoneError(ApiError::no_such_resource()) })
}

fn base(config: &Config) -> String {
    format!("{}/identity/v3", config.public_base_url())
}

fn version_entry(config: &Config) -> Value {
    json!({
        "id": IDENTITY_VERSION,
        "status": "stable",
        "updated": IDENTITY_UPDATED,
        "links": [{"rel": "self", "href": format!("{}/", base(config))}],
        "media-types": [{
            "base": "application/json",
            "type": "application/vnd.openstack.identity-v3+json",
        }],
    })
}

/// `GET /identity`: the versions (300 Multiple Choices, as Keystone).
#[utoipa::path(get, path = "/", security(()), responses((status = MULTIPLE_CHOICES, description = "The versions", body = IdentityVersions)))]
async fn versions(State(state): State<AppState>) -> Response {
    (
        StatusCode::MULTIPLE_CHOICES,
        axum::Json(json!({"versions": {"values": [version_entry(&state.config)]}})),
    )
        .into_response()
}

/// `GET /identity/v3`.
#[utoipa::path(get, path = "/v3", security(()), responses((status = OK, description = "Success", body = IdentityVersion)))]
async fn version(State(state): State<AppState>) -> Response {
    axum::Json(json!({"version": version_entry(&state.config)})).into_response()
}

/// `GET /identity/v3/`: the v3 version document.
#[utoipa::path(get, path = "/v3/", security(()), responses((status = OK, description = "Success", body = IdentityVersion)))]
async fn version_with_slash(state: State<AppState>) -> Response {
    version(state).await
}

/// A stable id for a catalog entry.
fn stable_id(parts: &[&str]) -> String {
    let digest = sha2::Sha256::digest(parts.join("/").as_bytes());
    hex::encode(&digest[..16])
}

/// The services in the catalog: (type, name, path under the public URL).
const SERVICES: [(&str, &str, &str); 4] = [
    ("identity", "keystone", "/identity"),
    ("compute", "nova", "/compute/v2.1"),
    ("image", "glance", "/image"),
    ("network", "neutron", "/network"),
];

const INTERFACES: [&str; 3] = ["public", "internal", "admin"];

/// The service catalog: identity, compute, image and network, each with public,
/// internal and admin endpoints in the configured region.
pub fn catalog(config: &Config) -> Value {
    let public = config.public_base_url();
    Value::Array(
        SERVICES
            .iter()
            .map(|(kind, name, path)| {
                let endpoints: Vec<Value> = INTERFACES
                    .iter()
                    .map(|interface| {
                        json!({
                            "id": stable_id(&[kind, interface]),
                            "interface": interface,
                            "region": config.region,
                            "region_id": config.region,
                            "url": format!("{public}{path}"),
                        })
                    })
                    .collect();
                json!({
                    "id": stable_id(&[kind]),
                    "type": kind,
                    "name": name,
                    "endpoints": endpoints,
                })
            })
            .collect(),
    )
}

fn domain_ref() -> Value {
    json!({"id": DEFAULT_DOMAIN_ID, "name": DEFAULT_DOMAIN_NAME})
}

/// The `token` body of a token response.
pub fn token_body(config: &Config, token: &ValidToken) -> Value {
    let mut body = json!({
        "methods": token.payload.methods,
        "user": {
            "id": token.user.id,
            "name": token.user.name,
            "domain": domain_ref(),
            "password_expires_at": null,
        },
        "audit_ids": token.payload.audit_ids,
        "expires_at": token.payload.expires_at_text(),
        "issued_at": token.payload.issued_at_text(),
    });
    if let Some(project) = &token.project {
        body["project"] = json!({
            "id": project.id,
            "name": project.name,
            "domain": domain_ref(),
        });
        body["is_domain"] = json!(false);
        body["roles"] = token
            .roles
            .iter()
            .map(|role| json!({"id": role.id, "name": role.name}))
            .collect();
        body["catalog"] = catalog(config);
    }
    json!({ "token": body })
}

fn token_response(status: StatusCode, config: &Config, token: &ValidToken) -> Response {
    let mut response = (status, axum::Json(token_body(config, token))).into_response();
    if let Ok(value) = HeaderValue::from_str(&token.token) {
        response.headers_mut().insert("x-subject-token", value);
    }
    response
}

/// `POST /v3/auth/tokens`.
#[utoipa::path(post, path = "/v3/auth/tokens", request_body = AuthRequest, security(()), responses((status = CREATED, description = "The token (its id in X-Subject-Token)", body = IdentityToken), crate::openapi::KeystoneFaults))]
async fn issue_token(State(state): State<AppState>, bytes: Bytes) -> KsResult<Response> {
    let request: AuthRequest = body(&bytes)?;
    let token = state.identity.authenticate(&request.auth).await?;
    Ok(token_response(StatusCode::CREATED, &state.config, &token))
}

/// The token named by `X-Subject-Token`, valid; 404 otherwise.
async fn subject_token(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
) -> KsResult<ValidToken> {
    let subject = headers
        .get("x-subject-token")
        .and_then(|value| value.to_str().ok())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("Expecting to find X-Subject-Token in the request headers.")
        })?;
    let valid = match state.identity.check_token(subject).await {
        Ok(valid) => valid,
        Err(error @ (TokenError::Db(_) | TokenError::Keys(_))) => {
            return Err(KeystoneError(ApiError::internal(error)));
        }
        Err(error) => {
            tracing::info!(reason = %error, "subject token rejected");
            return Err(KeystoneError(ApiError::not_found("Could not find token.")));
        }
    };
    caller.require_admin_or_user("identity:validate_token", &valid.user.id)?;
    Ok(valid)
}

/// `GET|HEAD /v3/auth/tokens`: validates `X-Subject-Token`.
#[utoipa::path(get, path = "/v3/auth/tokens", params(("X-Subject-Token" = String, Header, description = "The token to validate or revoke")), responses((status = OK, description = "Success", body = IdentityToken), crate::openapi::KeystoneFaults))]
async fn validate_token(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> KsResult<Response> {
    let valid = subject_token(&state, &caller, &headers).await?;
    Ok(token_response(StatusCode::OK, &state.config, &valid))
}

/// `DELETE /v3/auth/tokens`: revokes `X-Subject-Token`.
#[utoipa::path(delete, path = "/v3/auth/tokens", params(("X-Subject-Token" = String, Header, description = "The token to validate or revoke")), responses((status = NO_CONTENT, description = "Done, no body"), crate::openapi::KeystoneFaults))]
async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> KsResult<StatusCode> {
    let valid = subject_token(&state, &caller, &headers).await?;
    state.identity.revoke_token(&valid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v3/auth/catalog`.
#[utoipa::path(get, path = "/v3/auth/catalog", responses((status = OK, description = "Success", body = IdentityCatalog), crate::openapi::KeystoneFaults))]
async fn auth_catalog(State(state): State<AppState>, caller: Caller) -> KsResult<Response> {
    if caller.0.project.is_none() {
        return Err(forbidden("identity:get_auth_catalog"));
    }
    Ok(axum::Json(json!({
        "catalog": catalog(&state.config),
        "links": {"self": format!("{}/auth/catalog", base(&state.config)), "previous": null, "next": null},
    }))
    .into_response())
}

fn list_links(config: &Config, path: &str) -> Value {
    json!({"self": format!("{}/{path}", base(config)), "previous": null, "next": null})
}

/// `GET /v3/auth/projects`: the projects the caller holds a role on.
#[utoipa::path(get, path = "/v3/auth/projects", responses((status = OK, description = "Success", body = IdentityProjectList), crate::openapi::KeystoneFaults))]
async fn auth_projects(State(state): State<AppState>, caller: Caller) -> KsResult<Response> {
    let projects = store::projects_of_user(&state.db, &caller.0.user.id).await?;
    Ok(projects_response(&state.config, "auth/projects", &projects))
}

/// `GET /v3/auth/domains`: novum has no domain-scoped roles.
#[utoipa::path(get, path = "/v3/auth/domains", responses((status = OK, description = "Success", body = IdentityDomainList), crate::openapi::KeystoneFaults))]
async fn auth_domains(State(state): State<AppState>, _caller: Caller) -> Response {
    axum::Json(json!({"domains": [], "links": list_links(&state.config, "auth/domains")}))
        .into_response()
}

fn domain_json(config: &Config) -> Value {
    json!({
        "id": DEFAULT_DOMAIN_ID,
        "name": DEFAULT_DOMAIN_NAME,
        "description": "The default domain",
        "enabled": true,
        "tags": [],
        "options": {},
        "links": {"self": format!("{}/domains/{DEFAULT_DOMAIN_ID}", base(config))},
    })
}

/// `GET /v3/domains`: the one domain.
#[utoipa::path(get, path = "/v3/domains", responses((status = OK, description = "Success", body = IdentityDomainList), crate::openapi::KeystoneFaults))]
async fn list_domains(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let matches = query
        .get("name")
        .is_none_or(|name| name == DEFAULT_DOMAIN_NAME)
        && query
            .get("enabled")
            .is_none_or(|enabled| parse_bool(enabled) != Some(false));
    let domains: Vec<Value> = if matches {
        vec![domain_json(&state.config)]
    } else {
        Vec::new()
    };
    axum::Json(json!({"domains": domains, "links": list_links(&state.config, "domains")}))
        .into_response()
}

/// `GET /v3/domains/{id}` (by id or, for the CLI's lookups, by name).
#[utoipa::path(get, path = "/v3/domains/{domain_id}", params(("domain_id" = String, Path, description = "The domain id")), responses((status = OK, description = "Success", body = IdentityDomain), crate::openapi::KeystoneFaults))]
async fn show_domain(
    State(state): State<AppState>,
    _caller: Caller,
    Path(domain_id): Path<String>,
) -> KsResult<Response> {
    if domain_id != DEFAULT_DOMAIN_ID {
        return Err(not_found("domain", &domain_id));
    }
    Ok(axum::Json(json!({"domain": domain_json(&state.config)})).into_response())
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The list filter of a query (`name`, `enabled`); `None` when the query asks
/// for another domain (nothing matches).
fn list_filter(query: &HashMap<String, String>) -> KsResult<Option<ListFilter>> {
    if query
        .get("domain_id")
        .is_some_and(|domain| domain != DEFAULT_DOMAIN_ID)
    {
        return Ok(None);
    }
    let enabled = match query.get("enabled") {
        None => None,
        Some(text) => Some(parse_bool(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid input for field 'enabled': {text} is not a boolean."
            ))
        })?),
    };
    Ok(Some(ListFilter {
        name: query.get("name").cloned(),
        enabled,
    }))
}

fn project_json(config: &Config, project: &Project) -> Value {
    json!({
        "id": project.id,
        "name": project.name,
        "domain_id": project.domain_id,
        "description": project.description,
        "enabled": project.enabled,
        "is_domain": false,
        "parent_id": project.domain_id,
        "tags": [],
        "options": {},
        "links": {"self": format!("{}/projects/{}", base(config), project.id)},
    })
}

fn projects_response(config: &Config, path: &str, projects: &[Project]) -> Response {
    let projects: Vec<Value> = projects
        .iter()
        .map(|project| project_json(config, project))
        .collect();
    axum::Json(json!({"projects": projects, "links": list_links(config, path)})).into_response()
}

/// `GET /v3/projects` (admin).
#[utoipa::path(get, path = "/v3/projects", responses((status = OK, description = "Success", body = IdentityProjectList), crate::openapi::KeystoneFaults))]
async fn list_projects(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> KsResult<Response> {
    caller.require_admin("identity:list_projects")?;
    let projects = match list_filter(&query)? {
        Some(filter) => store::list_projects(&state.db, &filter).await?,
        None => Vec::new(),
    };
    Ok(projects_response(&state.config, "projects", &projects))
}

async fn load_project(state: &AppState, project_id: &str) -> KsResult<Project> {
    store::get_project(&state.db, project_id)
        .await?
        .ok_or_else(|| not_found("project", project_id))
}

/// `GET /v3/projects/{id}`: admin, or a caller scoped to that project.
#[utoipa::path(get, path = "/v3/projects/{project_id}", params(("project_id" = String, Path, description = "The project id")), responses((status = OK, description = "Success", body = IdentityProject), crate::openapi::KeystoneFaults))]
async fn show_project(
    State(state): State<AppState>,
    caller: Caller,
    Path(project_id): Path<String>,
) -> KsResult<Response> {
    let scoped_here = caller
        .0
        .project
        .as_ref()
        .is_some_and(|project| project.id == project_id);
    if !scoped_here {
        caller.require_admin("identity:get_project")?;
    }
    let project = load_project(&state, &project_id).await?;
    Ok(axum::Json(json!({"project": project_json(&state.config, &project)})).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ProjectBody {
    project: ProjectFields,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ProjectFields {
    name: Option<String>,
    description: Option<String>,
    domain_id: Option<String>,
    enabled: Option<bool>,
}

/// `POST /v3/projects` (admin).
#[utoipa::path(post, path = "/v3/projects", request_body = ProjectBody, responses((status = CREATED, description = "Created", body = IdentityProject), crate::openapi::KeystoneFaults))]
async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> KsResult<Response> {
    caller.require_admin("identity:create_project")?;
    let ProjectBody { project: fields } = body(&bytes)?;
    check_domain_id(fields.domain_id.as_deref())?;
    let name = fields.name.ok_or_else(|| {
        ApiError::bad_request("Invalid input for field 'name': 'name' is a required property.")
    })?;
    validate_name("project", &name)?;
    let project = Project {
        id: store::new_id(),
        name,
        domain_id: DEFAULT_DOMAIN_ID.to_string(),
        description: fields.description.unwrap_or_default(),
        enabled: fields.enabled.unwrap_or(true),
    };
    match store::insert_project(&state.db, &project).await {
        Ok(()) => {}
        Err(error) if error.is_unique_violation() => {
            return Err(conflict("project", &project.name));
        }
        Err(error) => return Err(error.into()),
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"project": project_json(&state.config, &project)})),
    )
        .into_response())
}

/// `PATCH /v3/projects/{id}` (admin).
#[utoipa::path(patch, path = "/v3/projects/{project_id}", params(("project_id" = String, Path, description = "The project id")), request_body = ProjectBody, responses((status = OK, description = "Success", body = IdentityProject), crate::openapi::KeystoneFaults))]
async fn update_project(
    State(state): State<AppState>,
    caller: Caller,
    Path(project_id): Path<String>,
    bytes: Bytes,
) -> KsResult<Response> {
    caller.require_admin("identity:update_project")?;
    let ProjectBody { project: fields } = body(&bytes)?;
    check_domain_id(fields.domain_id.as_deref())?;
    let mut project = load_project(&state, &project_id).await?;
    if let Some(name) = fields.name {
        validate_name("project", &name)?;
        project.name = name;
    }
    if let Some(description) = fields.description {
        project.description = description;
    }
    if let Some(enabled) = fields.enabled {
        project.enabled = enabled;
    }
    match store::update_project(&state.db, &project).await {
        Ok(true) => {}
        Ok(false) => return Err(not_found("project", &project_id)),
        Err(error) if error.is_unique_violation() => {
            return Err(conflict("project", &project.name));
        }
        Err(error) => return Err(error.into()),
    }
    Ok(axum::Json(json!({"project": project_json(&state.config, &project)})).into_response())
}

/// `DELETE /v3/projects/{id}` (admin).
#[utoipa::path(delete, path = "/v3/projects/{project_id}", params(("project_id" = String, Path, description = "The project id")), responses((status = NO_CONTENT, description = "Done, no body"), crate::openapi::KeystoneFaults))]
async fn delete_project(
    State(state): State<AppState>,
    caller: Caller,
    Path(project_id): Path<String>,
) -> KsResult<StatusCode> {
    caller.require_admin("identity:delete_project")?;
    if store::delete_project(&state.db, &project_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found("project", &project_id))
    }
}

fn user_json(config: &Config, user: &User) -> Value {
    let mut value = json!({
        "id": user.id,
        "name": user.name,
        "domain_id": user.domain_id,
        "enabled": user.enabled,
        "description": user.description,
        "password_expires_at": null,
        "options": {},
        "links": {"self": format!("{}/users/{}", base(config), user.id)},
    });
    if let Some(project) = &user.default_project_id {
        value["default_project_id"] = json!(project);
    }
    if let Some(email) = &user.email {
        value["email"] = json!(email);
    }
    value
}

/// `GET /v3/users` (admin).
#[utoipa::path(get, path = "/v3/users", responses((status = OK, description = "Success", body = IdentityUserList), crate::openapi::KeystoneFaults))]
async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> KsResult<Response> {
    caller.require_admin("identity:list_users")?;
    let users = match list_filter(&query)? {
        Some(filter) => store::list_users(&state.db, &filter).await?,
        None => Vec::new(),
    };
    let users: Vec<Value> = users
        .iter()
        .map(|user| user_json(&state.config, user))
        .collect();
    Ok(
        axum::Json(json!({"users": users, "links": list_links(&state.config, "users")}))
            .into_response(),
    )
}

async fn load_user(state: &AppState, user_id: &str) -> KsResult<User> {
    store::get_user(&state.db, user_id)
        .await?
        .ok_or_else(|| not_found("user", user_id))
}

/// `GET /v3/users/{id}`: admin, or the user itself.
#[utoipa::path(get, path = "/v3/users/{user_id}", params(("user_id" = String, Path, description = "The user id")), responses((status = OK, description = "Success", body = IdentityUser), crate::openapi::KeystoneFaults))]
async fn show_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> KsResult<Response> {
    caller.require_admin_or_user("identity:get_user", &user_id)?;
    let user = load_user(&state, &user_id).await?;
    Ok(axum::Json(json!({"user": user_json(&state.config, &user)})).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
struct UserBody {
    user: UserFields,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct UserFields {
    name: Option<String>,
    password: Option<String>,
    domain_id: Option<String>,
    default_project_id: Option<String>,
    email: Option<String>,
    description: Option<String>,
    enabled: Option<bool>,
}

/// Applies `fields` to `user` (hashing a new password).
async fn apply_user_fields(state: &AppState, user: &mut User, fields: UserFields) -> KsResult<()> {
    check_domain_id(fields.domain_id.as_deref())?;
    if let Some(name) = fields.name {
        validate_name("user", &name)?;
        user.name = name;
    }
    if let Some(password) = fields.password {
        user.password_hash = Some(
            password::hash_password(password)
                .await
                .map_err(ApiError::internal)?,
        );
    }
    if let Some(project_id) = fields.default_project_id {
        if store::get_project(&state.db, &project_id).await?.is_none() {
            return Err(KeystoneError(ApiError::bad_request(format!(
                "Invalid input for field 'default_project_id': could not find project: {project_id}."
            ))));
        }
        user.default_project_id = Some(project_id);
    }
    if let Some(email) = fields.email {
        user.email = Some(email);
    }
    if let Some(description) = fields.description {
        user.description = description;
    }
    if let Some(enabled) = fields.enabled {
        user.enabled = enabled;
    }
    Ok(())
}

/// `POST /v3/users` (admin).
#[utoipa::path(post, path = "/v3/users", request_body = UserBody, responses((status = CREATED, description = "Created", body = IdentityUser), crate::openapi::KeystoneFaults))]
async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> KsResult<Response> {
    caller.require_admin("identity:create_user")?;
    let UserBody { user: fields } = body(&bytes)?;
    if fields.name.is_none() {
        return Err(KeystoneError(ApiError::bad_request(
            "Invalid input for field 'name': 'name' is a required property.",
        )));
    }
    let mut user = User {
        id: store::new_id(),
        name: String::new(),
        domain_id: DEFAULT_DOMAIN_ID.to_string(),
        default_project_id: None,
        email: None,
        description: String::new(),
        enabled: true,
        password_hash: None,
    };
    apply_user_fields(&state, &mut user, fields).await?;
    match store::insert_user(&state.db, &user).await {
        Ok(()) => {}
        Err(error) if error.is_unique_violation() => {
            return Err(conflict("user", &user.name));
        }
        Err(error) => return Err(error.into()),
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"user": user_json(&state.config, &user)})),
    )
        .into_response())
}

/// `PATCH /v3/users/{id}` (admin).
#[utoipa::path(patch, path = "/v3/users/{user_id}", params(("user_id" = String, Path, description = "The user id")), request_body = UserBody, responses((status = OK, description = "Success", body = IdentityUser), crate::openapi::KeystoneFaults))]
async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
    bytes: Bytes,
) -> KsResult<Response> {
    caller.require_admin("identity:update_user")?;
    let UserBody { user: fields } = body(&bytes)?;
    let mut user = load_user(&state, &user_id).await?;
    apply_user_fields(&state, &mut user, fields).await?;
    match store::update_user(&state.db, &user).await {
        Ok(true) => {}
        Ok(false) => return Err(not_found("user", &user_id)),
        Err(error) if error.is_unique_violation() => {
            return Err(conflict("user", &user.name));
        }
        Err(error) => return Err(error.into()),
    }
    Ok(axum::Json(json!({"user": user_json(&state.config, &user)})).into_response())
}

/// `DELETE /v3/users/{id}` (admin).
#[utoipa::path(delete, path = "/v3/users/{user_id}", params(("user_id" = String, Path, description = "The user id")), responses((status = NO_CONTENT, description = "Done, no body"), crate::openapi::KeystoneFaults))]
async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> KsResult<StatusCode> {
    caller.require_admin("identity:delete_user")?;
    if store::delete_user(&state.db, &user_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found("user", &user_id))
    }
}

/// `GET /v3/users/{id}/projects`: admin, or the user itself.
#[utoipa::path(get, path = "/v3/users/{user_id}/projects", params(("user_id" = String, Path, description = "The user id")), responses((status = OK, description = "Success", body = IdentityProjectList), crate::openapi::KeystoneFaults))]
async fn user_projects(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> KsResult<Response> {
    caller.require_admin_or_user("identity:list_user_projects", &user_id)?;
    load_user(&state, &user_id).await?;
    let projects = store::projects_of_user(&state.db, &user_id).await?;
    Ok(projects_response(
        &state.config,
        &format!("users/{user_id}/projects"),
        &projects,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct PasswordChangeBody {
    user: PasswordChange,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct PasswordChange {
    original_password: String,
    password: String,
}

/// `POST /v3/users/{id}/password`: a user changes its own password.
#[utoipa::path(post, path = "/v3/users/{user_id}/password", params(("user_id" = String, Path, description = "The user id")), request_body = PasswordChangeBody, security(()), responses((status = NO_CONTENT, description = "Done, no body"), crate::openapi::KeystoneFaults))]
async fn change_password(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    bytes: Bytes,
) -> KsResult<StatusCode> {
    let PasswordChangeBody { user: change } = body(&bytes)?;
    let _admitted = state.identity.admit_password_check().await?;
    let mut user = load_user(&state, &user_id).await?;
    if !state
        .identity
        .check_password(Some(&user), &change.original_password)
        .await?
    {
        return Err(KeystoneError(ApiError::unauthorized(AUTH_REQUIRED)));
    }
    user.password_hash = Some(
        password::hash_password(change.password)
            .await
            .map_err(ApiError::internal)?,
    );
    store::update_user(&state.db, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn role_json(config: &Config, role: &Role) -> Value {
    json!({
        "id": role.id,
        "name": role.name,
        "domain_id": null,
        "description": null,
        "options": {},
        "links": {"self": format!("{}/roles/{}", base(config), role.id)},
    })
}

/// `GET /v3/roles` (admin).
#[utoipa::path(get, path = "/v3/roles", responses((status = OK, description = "Success", body = IdentityRoleList), crate::openapi::KeystoneFaults))]
async fn list_roles(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> KsResult<Response> {
    caller.require_admin("identity:list_roles")?;
    let filter = ListFilter {
        name: query.get("name").cloned(),
        enabled: None,
    };
    let roles = store::list_roles(&state.db, &filter).await?;
    let roles: Vec<Value> = roles
        .iter()
        .map(|role| role_json(&state.config, role))
        .collect();
    Ok(
        axum::Json(json!({"roles": roles, "links": list_links(&state.config, "roles")}))
            .into_response(),
    )
}

async fn load_role(state: &AppState, role_id: &str) -> KsResult<Role> {
    store::get_role(&state.db, role_id)
        .await?
        .ok_or_else(|| not_found("role", role_id))
}

/// `GET /v3/roles/{id}` (admin).
#[utoipa::path(get, path = "/v3/roles/{role_id}", params(("role_id" = String, Path, description = "The role id")), responses((status = OK, description = "Success", body = IdentityRole), crate::openapi::KeystoneFaults))]
async fn show_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(role_id): Path<String>,
) -> KsResult<Response> {
    caller.require_admin("identity:get_role")?;
    let role = load_role(&state, &role_id).await?;
    Ok(axum::Json(json!({"role": role_json(&state.config, &role)})).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RoleBody {
    role: RoleFields,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RoleFields {
    name: String,
}

/// `POST /v3/roles` (admin).
#[utoipa::path(post, path = "/v3/roles", request_body = RoleBody, responses((status = CREATED, description = "Created", body = IdentityRole), crate::openapi::KeystoneFaults))]
async fn create_role(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> KsResult<Response> {
    caller.require_admin("identity:create_role")?;
    let RoleBody { role: fields } = body(&bytes)?;
    validate_name("role", &fields.name)?;
    let role = Role {
        id: store::new_id(),
        name: fields.name,
    };
    match store::insert_role(&state.db, &role).await {
        Ok(()) => {}
        Err(error) if error.is_unique_violation() => {
            return Err(conflict("role", &role.name));
        }
        Err(error) => return Err(error.into()),
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"role": role_json(&state.config, &role)})),
    )
        .into_response())
}

/// `DELETE /v3/roles/{id}` (admin).
#[utoipa::path(delete, path = "/v3/roles/{role_id}", params(("role_id" = String, Path, description = "The role id")), responses((status = NO_CONTENT, description = "Done, no body"), crate::openapi::KeystoneFaults))]
async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(role_id): Path<String>,
) -> KsResult<StatusCode> {
    caller.require_admin("identity:delete_role")?;
    if store::delete_role(&state.db, &role_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found("role", &role_id))
    }
}

/// Loads the three parts of a grant (404 naming the missing one).
async fn grant_parts(
    state: &AppState,
    project_id: &str,
    user_id: &str,
    role_id: Option<&str>,
) -> KsResult<()> {
    load_project(state, project_id).await?;
    load_user(state, user_id).await?;
    if let Some(role_id) = role_id {
        load_role(state, role_id).await?;
    }
    Ok(())
}

/// `GET /v3/projects/{p}/users/{u}/roles` (admin).
#[utoipa::path(get, path = "/v3/projects/{project_id}/users/{user_id}/roles", params(("project_id" = String, Path, description = "The project id"), ("user_id" = String, Path, description = "The user id")), responses((status = OK, description = "Success", body = IdentityRoleList), crate::openapi::KeystoneFaults))]
async fn list_grants(
    State(state): State<AppState>,
    caller: Caller,
    Path((project_id, user_id)): Path<(String, String)>,
) -> KsResult<Response> {
    caller.require_admin("identity:list_grants")?;
    grant_parts(&state, &project_id, &user_id, None).await?;
    let roles = store::assigned_roles(&state.db, &user_id, &project_id).await?;
    let roles: Vec<Value> = roles
        .iter()
        .map(|role| role_json(&state.config, role))
        .collect();
    Ok(axum::Json(json!({
        "roles": roles,
        "links": list_links(&state.config, &format!("projects/{project_id}/users/{user_id}/roles")),
    }))
    .into_response())
}

/// `GET|HEAD /v3/projects/{p}/users/{u}/roles/{r}` (admin): 204 when granted.
#[utoipa::path(get, path = "/v3/projects/{project_id}/users/{user_id}/roles/{role_id}", params(("project_id" = String, Path, description = "The project id"), ("user_id" = String, Path, description = "The user id"), ("role_id" = String, Path, description = "The role id")), responses((status = NO_CONTENT, description = "The user holds the role"), crate::openapi::KeystoneFaults))]
async fn check_grant(
    State(state): State<AppState>,
    caller: Caller,
    Path((project_id, user_id, role_id)): Path<(String, String, String)>,
) -> KsResult<StatusCode> {
    caller.require_admin("identity:check_grant")?;
    grant_parts(&state, &project_id, &user_id, Some(&role_id)).await?;
    let granted =
        !store::list_assignments(&state.db, Some(&user_id), Some(&project_id), Some(&role_id))
            .await?
            .is_empty();
    if granted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(KeystoneError(ApiError::not_found(format!(
            "Could not find role assignment with role: {role_id}, user or group: {user_id}, project, domain, or system: {project_id}."
        ))))
    }
}

/// `PUT /v3/projects/{p}/users/{u}/roles/{r}` (admin).
#[utoipa::path(put, path = "/v3/projects/{project_id}/users/{user_id}/roles/{role_id}", params(("project_id" = String, Path, description = "The project id"), ("user_id" = String, Path, description = "The user id"), ("role_id" = String, Path, description = "The role id")), responses((status = NO_CONTENT, description = "Done, no body"), crate::openapi::KeystoneFaults))]
async fn create_grant(
    State(state): State<AppState>,
    caller: Caller,
    Path((project_id, user_id, role_id)): Path<(String, String, String)>,
) -> KsResult<StatusCode> {
    caller.require_admin("identity:create_grant")?;
    grant_parts(&state, &project_id, &user_id, Some(&role_id)).await?;
    store::grant(&state.db, &user_id, &project_id, &role_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v3/projects/{p}/users/{u}/roles/{r}` (admin).
#[utoipa::path(delete, path = "/v3/projects/{project_id}/users/{user_id}/roles/{role_id}", params(("project_id" = String, Path, description = "The project id"), ("user_id" = String, Path, description = "The user id"), ("role_id" = String, Path, description = "The role id")), responses((status = NO_CONTENT, description = "Done, no body"), crate::openapi::KeystoneFaults))]
async fn delete_grant(
    State(state): State<AppState>,
    caller: Caller,
    Path((project_id, user_id, role_id)): Path<(String, String, String)>,
) -> KsResult<StatusCode> {
    caller.require_admin("identity:revoke_grant")?;
    grant_parts(&state, &project_id, &user_id, Some(&role_id)).await?;
    if store::revoke(&state.db, &user_id, &project_id, &role_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(KeystoneError(ApiError::not_found(format!(
            "Could not find role assignment with role: {role_id}, user or group: {user_id}, project, domain, or system: {project_id}."
        ))))
    }
}

/// `GET /v3/role_assignments`: admin, or a user listing its own
/// (`user.id` = itself). Filters `user.id`, `scope.project.id`, `role.id`;
/// `include_names`.
#[utoipa::path(get, path = "/v3/role_assignments", responses((status = OK, description = "Success", body = IdentityRoleAssignments), crate::openapi::KeystoneFaults))]
async fn list_role_assignments(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> KsResult<Response> {
    let user_id = query.get("user.id").map(String::as_str);
    match user_id {
        Some(user_id) => caller.require_admin_or_user("identity:list_role_assignments", user_id)?,
        None => caller.require_admin("identity:list_role_assignments")?,
    }
    let config = &state.config;
    // Groups, domains and the system hold no assignments in novum.
    let impossible = query.contains_key("group.id")
        || query.contains_key("scope.domain.id")
        || query.contains_key("scope.system");
    let assignments = if impossible {
        Vec::new()
    } else {
        store::list_assignments(
            &state.db,
            user_id,
            query.get("scope.project.id").map(String::as_str),
            query.get("role.id").map(String::as_str),
        )
        .await?
    };
    let include_names = query
        .get("include_names")
        .is_some_and(|value| parse_bool(value) != Some(false));
    let mut names: HashMap<String, String> = HashMap::new();
    if include_names {
        for user in store::list_users(&state.db, &ListFilter::default()).await? {
            names.insert(format!("user:{}", user.id), user.name);
        }
        for project in store::list_projects(&state.db, &ListFilter::default()).await? {
            names.insert(format!("project:{}", project.id), project.name);
        }
        for role in store::list_roles(&state.db, &ListFilter::default()).await? {
            names.insert(format!("role:{}", role.id), role.name);
        }
    }
    let entity = |kind: &str, id: &str, with_domain: bool| {
        let mut value = json!({"id": id});
        if let Some(name) = names.get(&format!("{kind}:{id}")) {
            value["name"] = json!(name);
            if with_domain {
                value["domain"] = domain_ref();
            }
        }
        value
    };
    let list: Vec<Value> = assignments
        .iter()
        .map(|assignment| {
            json!({
                "role": entity("role", &assignment.role_id, false),
                "user": entity("user", &assignment.user_id, true),
                "scope": {"project": entity("project", &assignment.project_id, true)},
                "links": {"assignment": format!(
                    "{}/projects/{}/users/{}/roles/{}",
                    base(config), assignment.project_id, assignment.user_id, assignment.role_id
                )},
            })
        })
        .collect();
    Ok(axum::Json(
        json!({"role_assignments": list, "links": list_links(config, "role_assignments")}),
    )
    .into_response())
}

/// The catalog's services as `/v3/services` shows them.
fn services_json(config: &Config) -> Vec<Value> {
    SERVICES
        .iter()
        .map(|(kind, name, _)| {
            let id = stable_id(&[kind]);
            json!({
                "id": id,
                "type": kind,
                "name": name,
                "enabled": true,
                "links": {"self": format!("{}/services/{id}", base(config))},
            })
        })
        .collect()
}

/// The catalog's endpoints as `/v3/endpoints` shows them.
fn endpoints_json(config: &Config) -> Vec<Value> {
    let public = config.public_base_url();
    let mut endpoints = Vec::new();
    for (kind, _, path) in SERVICES {
        for interface in INTERFACES {
            let id = stable_id(&[kind, interface]);
            endpoints.push(json!({
                "id": id,
                "interface": interface,
                "region": config.region,
                "region_id": config.region,
                "service_id": stable_id(&[kind]),
                "url": format!("{public}{path}"),
                "enabled": true,
                "links": {"self": format!("{}/endpoints/{id}", base(config))},
            }));
        }
    }
    endpoints
}

/// Keeps the entries whose `field`s equal the query's values for them.
fn filter_entries(
    entries: Vec<Value>,
    query: &HashMap<String, String>,
    fields: &[&str],
) -> Vec<Value> {
    entries
        .into_iter()
        .filter(|entry| {
            fields.iter().all(|field| {
                query
                    .get(*field)
                    .is_none_or(|wanted| entry[*field].as_str() == Some(wanted.as_str()))
            })
        })
        .collect()
}

/// `GET /v3/services` (admin): the catalog's services; filters `name`, `type`.
#[utoipa::path(get, path = "/v3/services", responses((status = OK, description = "Success", body = IdentityServiceList), crate::openapi::KeystoneFaults))]
async fn list_services(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> KsResult<Response> {
    caller.require_admin("identity:list_services")?;
    let services = filter_entries(services_json(&state.config), &query, &["name", "type"]);
    Ok(
        axum::Json(json!({"services": services, "links": list_links(&state.config, "services")}))
            .into_response(),
    )
}

/// `GET /v3/services/{id}` (admin).
#[utoipa::path(get, path = "/v3/services/{service_id}", params(("service_id" = String, Path, description = "The catalog service id")), responses((status = OK, description = "Success", body = IdentityService), crate::openapi::KeystoneFaults))]
async fn show_service(
    State(state): State<AppState>,
    caller: Caller,
    Path(service_id): Path<String>,
) -> KsResult<Response> {
    caller.require_admin("identity:get_service")?;
    let service = services_json(&state.config)
        .into_iter()
        .find(|service| service["id"] == service_id.as_str())
        .ok_or_else(|| not_found("service", &service_id))?;
    Ok(axum::Json(json!({ "service": service })).into_response())
}

/// `GET /v3/endpoints` (admin): the catalog's endpoints; filters
/// `interface`, `service_id`, `region_id`.
#[utoipa::path(get, path = "/v3/endpoints", responses((status = OK, description = "Success", body = IdentityEndpointList), crate::openapi::KeystoneFaults))]
async fn list_endpoints(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> KsResult<Response> {
    caller.require_admin("identity:list_endpoints")?;
    let endpoints = filter_entries(
        endpoints_json(&state.config),
        &query,
        &["interface", "service_id", "region_id"],
    );
    Ok(
        axum::Json(
            json!({"endpoints": endpoints, "links": list_links(&state.config, "endpoints")}),
        )
        .into_response(),
    )
}

/// `GET /v3/endpoints/{id}` (admin).
#[utoipa::path(get, path = "/v3/endpoints/{endpoint_id}", params(("endpoint_id" = String, Path, description = "The endpoint id")), responses((status = OK, description = "Success", body = IdentityEndpoint), crate::openapi::KeystoneFaults))]
async fn show_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path(endpoint_id): Path<String>,
) -> KsResult<Response> {
    caller.require_admin("identity:get_endpoint")?;
    let endpoint = endpoints_json(&state.config)
        .into_iter()
        .find(|endpoint| endpoint["id"] == endpoint_id.as_str())
        .ok_or_else(|| not_found("endpoint", &endpoint_id))?;
    Ok(axum::Json(json!({ "endpoint": endpoint })).into_response())
}
