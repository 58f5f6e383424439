//! [`AuthContext`]: who is calling, from the `X-Auth-Token` header, with Nova's
//! default policy roles (admin, member, reader).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::AppState;
use super::fault::{ApiError, ApiResult};
use novum_identity::{Identity, TokenError, ValidToken};

/// The caller of a request: the validated token's user, project and roles.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthContext {
    /// User id.
    pub user_id: String,
    /// User name.
    pub user_name: String,
    /// Scoped project id.
    pub project_id: String,
    /// Scoped project name.
    pub project_name: String,
    /// Role names in the project.
    pub roles: Vec<String>,
    /// The token itself (for token validation responses).
    pub token: String,
}

impl AuthContext {
    /// Validates `token` for the compute and image APIs: 401 when it is
    /// unknown, malformed, expired or revoked, or its user or project is no
    /// longer valid; 403 when it is not scoped to a project. Roles are read
    /// from the current role assignments.
    pub async fn validate(identity: &Identity, token: &str) -> ApiResult<Self> {
        let valid = identity
            .check_token(token)
            .await
            .map_err(TokenError::into_unauthorized)?;
        Self::of_token(&valid)
    }

    /// The caller a validated token stands for; 403 when it is unscoped.
    pub fn of_token(token: &ValidToken) -> ApiResult<Self> {
        let project = token.project.as_ref().ok_or_else(|| {
            ApiError::forbidden(
                "The token is not scoped to a project; request a project-scoped token.",
            )
        })?;
        Ok(Self {
            user_id: token.user.id.clone(),
            user_name: token.user.name.clone(),
            project_id: project.id.clone(),
            project_name: project.name.clone(),
            roles: token.roles.iter().map(|role| role.name.clone()).collect(),
            token: token.token.clone(),
        })
    }

    /// Holds the `admin` role.
    pub fn is_admin(&self) -> bool {
        self.has_role("admin")
    }

    /// Holds role `name`.
    pub fn has_role(&self, name: &str) -> bool {
        self.roles.iter().any(|role| role == name)
    }

    /// May change things in its project (member or admin; not reader-only).
    pub fn can_write(&self) -> bool {
        self.is_admin() || self.has_role("member")
    }

    /// 403 unless admin; `rule` names the policy for the message.
    pub fn require_admin(&self, rule: &str) -> ApiResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::policy(rule))
        }
    }

    /// 403 unless the caller may change things.
    pub fn require_writer(&self, rule: &str) -> ApiResult<()> {
        if self.can_write() {
            Ok(())
        } else {
            Err(ApiError::policy(rule))
        }
    }

    /// Whether the caller may see resources of `project_id` (its own, or admin).
    pub fn may_see_project(&self, project_id: &str) -> bool {
        self.is_admin() || self.project_id == project_id
    }
}

impl FromRequestParts<AppState> for AuthContext {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(context) = parts.extensions.get::<AuthContext>() {
            return Ok(context.clone());
        }
        let token = parts
            .headers
            .get("x-auth-token")
            .and_then(|value| value.to_str().ok())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("The request you have made requires authentication.")
            })?;
        let context = Self::validate(&state.identity, token).await?;
        parts.extensions.insert(context.clone());
        Ok(context)
    }
}
