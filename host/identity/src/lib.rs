//! Identity: the Keystone v3 subset clients need (tokens, projects, users,
//! roles) under `/identity`.
//!
//! Tokens are Fernet tokens ([`keys`], [`token`]) naming the user and the
//! project; every validation re-reads the user, the project and the role
//! assignments ([`store`]), so changes take effect at once. At first start the
//! admin project, the admin user and the roles admin, manager, member and reader are
//! created ([`Identity::new`]).
//!
//! The HTTP handlers are in the novum crate's `api::identity`; what fails
//! here is an [`IdentityError`], which they answer in Keystone's shape. The
//! `[identity]` configuration section is [`IdentityConfig`].

#![deny(missing_docs)]

pub mod config;
pub mod keys;
pub mod password;
pub mod store;
pub mod token;

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

pub use config::{
    DEFAULT_LOCKOUT_DURATION_SECONDS, DEFAULT_LOCKOUT_FAILURE_ATTEMPTS, IdentityConfig,
};
use keys::KeyRepository;
use novum_db::{Db, DbError};
use store::{DEFAULT_DOMAIN_ID, DEFAULT_DOMAIN_NAME, DEFAULT_ROLES, Project, Role, User};
use token::TokenPayload;

/// The environment variable that sets the admin password at first start.
pub const ADMIN_PASSWORD_ENV: &str = "NOVUM_ADMIN_PASSWORD";
/// The file written at first start with the admin's credentials.
pub const ADMIN_OPENRC: &str = "admin-openrc.sh";
/// The message of every authentication failure (as Keystone's).
pub const AUTH_REQUIRED: &str = "The request you have made requires authentication.";

/// Why a token did not validate.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a token of ours (bad encoding, unknown or rotated-out key).
    #[error("the token is malformed or signed by an unknown key")]
    Invalid,
    /// Past its expiry.
    #[error("the token has expired")]
    Expired,
    /// Revoked.
    #[error("the token was revoked")]
    Revoked,
    /// Its user or project is gone or disabled, or the user lost every role.
    #[error("the token's user or project is no longer valid: {0}")]
    Subject(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The key repository failed.
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
}

impl TokenError {
    /// The identity error for a token presented as the caller's credential:
    /// [`IdentityError::Unauthorized`] (the reason is logged, not told)
    /// unless the database or the key repository failed.
    pub fn into_unauthorized(self) -> IdentityError {
        match self {
            Self::Db(error) => IdentityError::Db(error),
            Self::Keys(error) => IdentityError::Keys(error),
            other => {
                tracing::info!(reason = %other, "token rejected");
                IdentityError::Unauthorized(AUTH_REQUIRED.to_string())
            }
        }
    }
}

/// Why an authentication failed. Each variant's text is the message the
/// client is told (Keystone's), except for the internal failures.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// The credentials do not authenticate, or the scope is not the
    /// user's (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The key repository failed.
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    /// The password-check queue is shut down.
    #[error("the password checks are shut down: {0}")]
    PasswordChecksClosed(#[from] tokio::sync::AcquireError),
}

impl IdentityError {
    fn bad_request(message: &str) -> Self {
        Self::BadRequest(message.to_string())
    }

    fn unauthenticated() -> Self {
        Self::Unauthorized(AUTH_REQUIRED.to_string())
    }
}

/// The result of the identity service's operations.
pub type IdentityResult<T> = Result<T, IdentityError>;

/// A token that validated, with what it stands for as of now.
#[derive(Clone, Debug)]
pub struct ValidToken {
    /// The token text.
    pub token: String,
    /// What it carries.
    pub payload: TokenPayload,
    /// Its user.
    pub user: User,
    /// Its project (none: unscoped).
    pub project: Option<Project>,
    /// The effective roles on the project (empty when unscoped).
    pub roles: Vec<Role>,
}

impl ValidToken {
    /// Holds the admin role.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|role| role.name == "admin")
    }
}

/// A reference to a domain in an authentication request.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct DomainRef {
    /// Domain id.
    pub id: Option<String>,
    /// Domain name.
    pub name: Option<String>,
}

impl DomainRef {
    /// Whether it names the one domain; `None` when it names nothing.
    pub fn is_default(&self) -> Option<bool> {
        match (&self.id, &self.name) {
            (Some(id), _) => Some(id == DEFAULT_DOMAIN_ID),
            (None, Some(name)) => Some(name == DEFAULT_DOMAIN_NAME),
            (None, None) => None,
        }
    }
}

/// `auth`: who and for what.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct AuthSpec {
    /// How the caller proves who it is.
    pub identity: IdentitySpec,
    /// What the token is for (none: the default project, else unscoped).
    #[serde(default)]
    pub scope: Option<ScopeSpec>,
}

/// `auth.identity`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct IdentitySpec {
    /// `password` and/or `token`.
    pub methods: Vec<String>,
    /// The password method.
    #[serde(default)]
    pub password: Option<PasswordSpec>,
    /// The token method.
    #[serde(default)]
    pub token: Option<TokenSpec>,
}

/// `auth.identity.password`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct PasswordSpec {
    /// The user.
    pub user: PasswordUser,
}

/// `auth.identity.password.user`: by id, or by name and domain.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct PasswordUser {
    /// User id.
    pub id: Option<String>,
    /// User name (needs `domain`).
    pub name: Option<String>,
    /// The user's domain.
    pub domain: Option<DomainRef>,
    /// The password.
    pub password: String,
}

/// `auth.identity.token`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct TokenSpec {
    /// An existing token.
    pub id: String,
}

/// `auth.scope`.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ScopeSpec {
    /// A project, by id or by name and domain.
    pub project: Option<ProjectRef>,
    /// A domain.
    pub domain: Option<DomainRef>,
    /// The system.
    pub system: Option<serde_json::Value>,
}

/// A project in a scope.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct ProjectRef {
    /// Project id.
    pub id: Option<String>,
    /// Project name (needs `domain`).
    pub name: Option<String>,
    /// The project's domain.
    pub domain: Option<DomainRef>,
}

/// Keystone's lockout (`[identity] lockout_failure_attempts` and
/// `lockout_duration`): after that many consecutive failed password
/// authentications a user is refused, even with the right password, until the
/// duration has passed since the last failure counted; a success ends the run.
/// Attempts while locked are not counted (they do not extend the lock). Unknown
/// users cost the same hashing as known ones but cannot be locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock the user.
    pub failure_attempts: u32,
    /// How long the lock lasts after the last counted failure.
    pub duration: chrono::TimeDelta,
}

impl LockoutPolicy {
    /// The policy `config` sets; `None` when lockout is off (0 attempts).
    pub fn from_config(config: &IdentityConfig) -> Option<Self> {
        (config.lockout_failure_attempts > 0).then(|| Self {
            failure_attempts: config.lockout_failure_attempts,
            duration: i64::try_from(config.lockout_duration)
                .ok()
                .and_then(chrono::TimeDelta::try_seconds)
                .unwrap_or(chrono::TimeDelta::MAX),
        })
    }

    /// Whether `failures` lock their user at `now`.
    pub fn is_locked(
        &self,
        failures: &store::AuthFailures,
        now: chrono::DateTime<chrono::Utc>,
    ) -> bool {
        if failures.count < i64::from(self.failure_attempts) {
            return false;
        }
        let Some(last) = failures
            .last_at
            .as_deref()
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        else {
            return false;
        };
        last.to_utc()
            .checked_add_signed(self.duration)
            .is_none_or(|until| now < until)
    }

    /// The last failure of a run whose lock has run out at `now` is before this.
    fn expired_before(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        now.checked_sub_signed(self.duration)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
    }
}

/// What the identity service needs to know of the controller it runs in,
/// beyond its `[identity]` section.
#[derive(Clone, Copy, Debug)]
pub struct Deployment<'a> {
    /// The controller's data directory: the default key repository's
    /// parent, and where the admin's openrc file is written at first start.
    pub data_dir: &'a Path,
    /// The URL clients reach the API at, without a trailing slash (the
    /// openrc file's `OS_AUTH_URL` is built from it).
    pub public_base_url: &'a str,
    /// The region name (the openrc file's `OS_REGION_NAME`).
    pub region: &'a str,
}

/// The identity service.
pub struct Identity {
    db: Db,
    config: IdentityConfig,
    keys: KeyRepository,
    lockout: Option<LockoutPolicy>,
    /// Admits password checks (user lookup, hashing, lockout bookkeeping):
    /// as many at once as passwords hash at once, so that a flood of logins
    /// waits here rather than in the database pool ahead of other requests.
    password_checks: tokio::sync::Semaphore,
    /// Tokens checked lately, with the identity's generation read before
    /// each was checked ([`Identity::check_token`]).
    checked: std::sync::Mutex<HashMap<String, (i64, ValidToken)>>,
}

/// Checked tokens kept at most (then the list starts again).
const CHECKED_TOKENS: usize = 1024;

impl Identity {
    /// The identity service over `db` as `config` (the `[identity]` section)
    /// and `deployment` set: opens (creating at first start) the key
    /// repository and creates the admin project, user and roles if missing.
    pub async fn new(
        db: Db,
        config: &IdentityConfig,
        deployment: &Deployment<'_>,
    ) -> anyhow::Result<Self> {
        let keys = KeyRepository::open(
            &config.key_repository(deployment.data_dir),
            config.max_active_keys,
        )?;
        let identity = Self {
            db,
            config: config.clone(),
            keys,
            lockout: LockoutPolicy::from_config(config),
            password_checks: tokio::sync::Semaphore::new(password::hashing_slots()),
            checked: std::sync::Mutex::default(),
        };
        identity.bootstrap(deployment).await?;
        Ok(identity)
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Rotates the Fernet keys (see [`keys::rotate`]); returns the new primary.
    pub fn rotate_keys(&self) -> Result<u64, keys::KeyError> {
        self.keys.rotate()
    }

    async fn bootstrap(&self, deployment: &Deployment<'_>) -> anyhow::Result<()> {
        let mut roles = Vec::new();
        for name in DEFAULT_ROLES {
            roles.push(self.ensure_role(name).await?);
        }
        self.ensure_role(store::SERVICE_ROLE).await?;
        let project = match store::get_project_by_name(&self.db, &self.config.admin_project).await?
        {
            Some(project) => project,
            None => {
                let project = Project {
                    id: store::new_id(),
                    name: self.config.admin_project.clone(),
                    domain_id: DEFAULT_DOMAIN_ID.to_string(),
                    description: "Bootstrap project for initializing the cloud.".to_string(),
                    enabled: true,
                };
                match store::insert_project(&self.db, &project).await {
                    Ok(()) => project,
                    Err(error) if error.is_unique_violation() => {
                        store::get_project_by_name(&self.db, &project.name)
                            .await?
                            .ok_or_else(|| anyhow::anyhow!("admin project vanished"))?
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        };
        if store::get_user_by_name(&self.db, &self.config.admin_user)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let configured = self.config.admin_password.clone().or_else(|| {
            std::env::var(ADMIN_PASSWORD_ENV)
                .ok()
                .filter(|p| !p.is_empty())
        });
        let generated = configured.is_none();
        let password = configured.unwrap_or_else(password::generate_password);
        let user = User {
            id: store::new_id(),
            name: self.config.admin_user.clone(),
            domain_id: DEFAULT_DOMAIN_ID.to_string(),
            default_project_id: Some(project.id.clone()),
            email: None,
            description: "Bootstrap administrator.".to_string(),
            enabled: true,
            password_hash: Some(password::hash_password(password.clone()).await?),
        };
        match store::insert_user(&self.db, &user).await {
            Ok(()) => {}
            // Another controller bootstrapped at the same moment.
            Err(error) if error.is_unique_violation() => return Ok(()),
            Err(error) => return Err(error.into()),
        }
        let admin_role = roles
            .iter()
            .find(|role| role.name == "admin")
            .ok_or_else(|| anyhow::anyhow!("admin role missing"))?;
        store::grant(&self.db, &user.id, &project.id, &admin_role.id).await?;
        let openrc = deployment.data_dir.join(ADMIN_OPENRC);
        write_openrc(&openrc, &self.config, deployment, &password)?;
        if generated {
            println!(
                "novum: created the admin user '{}' with the generated password: {password}",
                user.name
            );
            println!(
                "novum: credentials written to {} (source it to use the openstack CLI)",
                openrc.display()
            );
        } else {
            println!(
                "novum: created the admin user '{}'; credentials written to {}",
                user.name,
                openrc.display()
            );
        }
        tracing::info!(user = %user.name, project = %project.name, "identity bootstrapped");
        Ok(())
    }

    async fn ensure_role(&self, name: &str) -> anyhow::Result<Role> {
        if let Some(role) = store::get_role_by_name(&self.db, name).await? {
            return Ok(role);
        }
        let role = Role {
            id: store::new_id(),
            name: name.to_string(),
        };
        match store::insert_role(&self.db, &role).await {
            Ok(()) => Ok(role),
            Err(error) if error.is_unique_violation() => store::get_role_by_name(&self.db, name)
                .await?
                .ok_or_else(|| anyhow::anyhow!("role {name} vanished")),
            Err(error) => Err(error.into()),
        }
    }

    /// Checks a token and loads what it stands for now (roles are read from
    /// the current role assignments). A token checked before is not read
    /// again while the identity's generation (migration 0117: bumped by
    /// every change that could invalidate or alter a checked token, on any
    /// controller) has not moved since: one read instead of five.
    pub async fn check_token(&self, token: &str) -> Result<ValidToken, TokenError> {
        let ring = self.keys.ring()?;
        let token = token.trim();
        let payload = ring
            .decrypt(token)
            .and_then(|bytes| TokenPayload::decode(&bytes))
            .ok_or(TokenError::Invalid)?;
        if payload.is_expired_at(chrono::Utc::now()) {
            return Err(TokenError::Expired);
        }
        // Read before the check: a change after this read moves the
        // generation past what the checked token is kept with.
        let generation = store::generation(&self.db).await?;
        if let Some(valid) = self.checked_at(token, generation) {
            return Ok(valid);
        }
        if store::is_revoked(&self.db, &payload.audit_ids).await? {
            return Err(TokenError::Revoked);
        }
        let valid = self.load_token(token.to_string(), payload).await?;
        let mut checked = self
            .checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if checked.len() >= CHECKED_TOKENS {
            checked.clear();
        }
        checked.insert(token.to_string(), (generation, valid.clone()));
        Ok(valid)
    }

    /// Token `token` as checked at `generation`, if it was.
    fn checked_at(&self, token: &str, generation: i64) -> Option<ValidToken> {
        let checked = self
            .checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        checked
            .get(token)
            .filter(|(at, _)| *at == generation)
            .map(|(_, valid)| valid.clone())
    }

    async fn load_token(
        &self,
        token: String,
        payload: TokenPayload,
    ) -> Result<ValidToken, TokenError> {
        let user = store::get_user(&self.db, &payload.user_id)
            .await?
            .filter(|user| user.enabled)
            .ok_or_else(|| {
                TokenError::Subject(format!("user {} is gone or disabled", payload.user_id))
            })?;
        let (project, roles) = match &payload.project_id {
            None => (None, Vec::new()),
            Some(project_id) => {
                let project = store::get_project(&self.db, project_id)
                    .await?
                    .filter(|project| project.enabled)
                    .ok_or_else(|| {
                        TokenError::Subject(format!("project {project_id} is gone or disabled"))
                    })?;
                let roles = store::effective_roles(&self.db, &user.id, project_id).await?;
                if roles.is_empty() {
                    return Err(TokenError::Subject(format!(
                        "user {} has no role on project {project_id}",
                        user.id
                    )));
                }
                (Some(project), roles)
            }
        };
        Ok(ValidToken {
            token,
            payload,
            user,
            project,
            roles,
        })
    }

    /// Revokes a token (by its audit id).
    pub async fn revoke_token(&self, token: &ValidToken) -> Result<(), DbError> {
        let Some(audit_id) = token.payload.audit_ids.first() else {
            return Ok(());
        };
        store::revoke_token(
            &self.db,
            audit_id,
            &novum_db::timestamp(
                chrono::DateTime::from_timestamp(token.payload.expires_at, 0).unwrap_or_default(),
            ),
        )
        .await
    }

    /// Authenticates `request` and issues a token
    /// ([`IdentityError::Unauthorized`] for bad credentials or a scope the
    /// user holds no role on, [`IdentityError::BadRequest`] for a malformed
    /// request).
    pub async fn authenticate(&self, request: &AuthSpec) -> IdentityResult<ValidToken> {
        let identity = &request.identity;
        if identity.methods.is_empty() {
            return Err(IdentityError::bad_request(
                "Expecting to find methods in identity.",
            ));
        }
        let mut user: Option<User> = None;
        let mut rescoped: Option<TokenPayload> = None;
        for method in &identity.methods {
            let authenticated = match method.as_str() {
                "password" => {
                    let spec = identity.password.as_ref().ok_or_else(|| {
                        IdentityError::bad_request("Expecting to find password in identity.")
                    })?;
                    self.authenticate_password(&spec.user).await?
                }
                "token" => {
                    let spec = identity.token.as_ref().ok_or_else(|| {
                        IdentityError::bad_request("Expecting to find token in identity.")
                    })?;
                    let original = self
                        .check_token(&spec.id)
                        .await
                        .map_err(TokenError::into_unauthorized)?;
                    rescoped = Some(original.payload);
                    original.user
                }
                _ => {
                    return Err(IdentityError::Unauthorized(
                        "Attempted to authenticate with an unsupported method.".to_string(),
                    ));
                }
            };
            if user
                .as_ref()
                .is_some_and(|known| known.id != authenticated.id)
            {
                return Err(IdentityError::unauthenticated());
            }
            user = Some(authenticated);
        }
        let user = user.ok_or_else(IdentityError::unauthenticated)?;
        let project_id = self.resolve_scope(&user, request.scope.as_ref()).await?;
        let mut payload = TokenPayload::new(
            user.id.clone(),
            project_id,
            identity.methods.clone(),
            self.config.token_expiration_seconds,
        );
        if let Some(original) = rescoped {
            // A rescoped token never outlives the token it came from.
            payload.expires_at = payload.expires_at.min(original.expires_at);
            payload
                .audit_ids
                .extend(original.audit_ids.into_iter().take(1));
            for method in original.methods {
                if !payload.methods.contains(&method) {
                    payload.methods.push(method);
                }
            }
        }
        let ring = self.keys.ring()?;
        let token = ring.encrypt(&payload.encode());
        self.load_token(token, payload)
            .await
            .map_err(TokenError::into_unauthorized)
    }

    /// Waits for a turn to check a password (see `password_checks`); hold
    /// the permit from the user lookup to the end of [`Identity::check_password`].
    pub async fn admit_password_check(&self) -> IdentityResult<tokio::sync::SemaphorePermit<'_>> {
        Ok(self.password_checks.acquire().await?)
    }

    async fn authenticate_password(&self, spec: &PasswordUser) -> IdentityResult<User> {
        let _admitted = self.admit_password_check().await?;
        let user = match (&spec.id, &spec.name) {
            (Some(id), _) => store::get_user(&self.db, id).await?,
            (None, Some(name)) => {
                let domain = spec
                    .domain
                    .as_ref()
                    .and_then(DomainRef::is_default)
                    .ok_or_else(|| {
                        IdentityError::bad_request("Expecting to find domain in user.")
                    })?;
                if domain {
                    store::get_user_by_name(&self.db, name).await?
                } else {
                    None
                }
            }
            (None, None) => {
                return Err(IdentityError::bad_request(
                    "Expecting to find id or name in user.",
                ));
            }
        };
        let matches = self.check_password(user.as_ref(), &spec.password).await?;
        match user {
            Some(user) if matches && user.enabled => Ok(user),
            _ => Err(IdentityError::unauthenticated()),
        }
    }

    /// Whether `password` is `user`'s (`None`: an unknown user, never), with
    /// the lockout applied: a locked user's password is never right, a wrong
    /// one counts towards the lock, a right one ends the run of failures. The
    /// hashing costs the same whoever asks (see [`password::verify_password`]).
    pub async fn check_password(
        &self,
        user: Option<&User>,
        password: &str,
    ) -> IdentityResult<bool> {
        let hash = user.and_then(|user| user.password_hash.clone());
        let matches = password::verify_password(password.to_string(), hash).await;
        let (Some(user), Some(policy)) = (user, self.lockout) else {
            return Ok(matches);
        };
        let now = chrono::Utc::now();
        let failures = store::auth_failures(&self.db, &user.id).await?;
        if policy.is_locked(&failures, now) {
            tracing::debug!(user = %user.id, "password authentication refused: the user is locked out");
            return Ok(false);
        }
        if matches {
            store::reset_failed_auth(&self.db, &user.id).await?;
        } else {
            let count = store::record_failed_auth(
                &self.db,
                &user.id,
                &novum_db::timestamp(now),
                i64::from(policy.failure_attempts),
                &novum_db::timestamp(policy.expired_before(now)),
            )
            .await?;
            if count == i64::from(policy.failure_attempts) {
                tracing::warn!(
                    user = %user.id,
                    failures = count,
                    lockout_seconds = policy.duration.num_seconds(),
                    "user locked out after consecutive failed password authentications"
                );
            }
        }
        Ok(matches)
    }

    /// The project a token for `user` is scoped to.
    async fn resolve_scope(
        &self,
        user: &User,
        scope: Option<&ScopeSpec>,
    ) -> IdentityResult<Option<String>> {
        let Some(scope) = scope else {
            // Keystone scopes a scope-less request to the user's default
            // project when the user holds a role there; else unscoped.
            if let Some(default) = &user.default_project_id
                && let Some(project) = store::get_project(&self.db, default).await?
                && project.enabled
                && !store::assigned_roles(&self.db, &user.id, default)
                    .await?
                    .is_empty()
            {
                return Ok(Some(project.id));
            }
            return Ok(None);
        };
        if let Some(reference) = &scope.project {
            let project = match (&reference.id, &reference.name) {
                (Some(id), _) => store::get_project(&self.db, id).await?,
                (None, Some(name)) => {
                    let domain = reference
                        .domain
                        .as_ref()
                        .and_then(DomainRef::is_default)
                        .ok_or_else(|| {
                            IdentityError::bad_request("Expecting to find domain in project.")
                        })?;
                    if domain {
                        store::get_project_by_name(&self.db, name).await?
                    } else {
                        None
                    }
                }
                (None, None) => {
                    return Err(IdentityError::bad_request(
                        "Expecting to find id or name in project.",
                    ));
                }
            };
            let project = project.ok_or_else(|| {
                IdentityError::Unauthorized(format!(
                    "Could not find project: {}.",
                    reference
                        .id
                        .as_deref()
                        .or(reference.name.as_deref())
                        .unwrap_or_default()
                ))
            })?;
            if !project.enabled {
                return Err(IdentityError::Unauthorized(format!(
                    "Project {} is disabled.",
                    project.id
                )));
            }
            if store::assigned_roles(&self.db, &user.id, &project.id)
                .await?
                .is_empty()
            {
                return Err(IdentityError::Unauthorized(format!(
                    "User {} has no access to project {}.",
                    user.id, project.id
                )));
            }
            return Ok(Some(project.id));
        }
        if let Some(domain) = &scope.domain {
            return Err(IdentityError::Unauthorized(format!(
                "User {} has no access to domain {}.",
                user.id,
                domain
                    .id
                    .as_deref()
                    .or(domain.name.as_deref())
                    .unwrap_or_default()
            )));
        }
        if scope.system.is_some() {
            return Err(IdentityError::Unauthorized(format!(
                "User {} has no access to the system; novum supports project scope only.",
                user.id
            )));
        }
        Ok(None)
    }
}

/// Writes the shell file that sets the admin's `OS_*` variables (owner-only).
fn write_openrc(
    path: &Path,
    config: &IdentityConfig,
    deployment: &Deployment<'_>,
    password: &str,
) -> std::io::Result<()> {
    let quote = |value: &str| format!("'{}'", value.replace('\'', r"'\''"));
    let text = format!(
        "# novum admin credentials for the openstack CLI: `source {}`\n\
         export OS_AUTH_URL={}\n\
         export OS_USERNAME={}\n\
         export OS_PASSWORD={}\n\
         export OS_PROJECT_NAME={}\n\
         export OS_USER_DOMAIN_NAME={DEFAULT_DOMAIN_NAME}\n\
         export OS_PROJECT_DOMAIN_NAME={DEFAULT_DOMAIN_NAME}\n\
         export OS_REGION_NAME={}\n\
         export OS_IDENTITY_API_VERSION=3\n",
        path.display(),
        quote(&format!("{}/identity/v3", deployment.public_base_url)),
        quote(&config.admin_user),
        quote(password),
        quote(&config.admin_project),
        quote(deployment.region),
    );
    std::fs::write(path, text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
