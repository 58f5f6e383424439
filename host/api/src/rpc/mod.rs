//! The agent RPC under `/rpc/v1` (protocol and types in `novum-wire`):
//! registration with the enrollment token, per-agent credentials (stored as
//! SHA-256 hashes of random tokens), heartbeats with inventory and power
//! states, task long-polls and task results.
//!
//! An agent with nothing new to say costs the database (almost) nothing:
//! its credential, liveness, inventory and power report are remembered in
//! memory ([`Agents`]; beats are written in batches every couple of seconds)
//! and a poll of a host with nothing offered reads nothing
//! ([`novum_compute::conductor::tasks::TaskBoard`]'s idle hosts).

mod agents;

pub use agents::{Agents, BeatPlan, TOKEN_TTL, flush_interval};

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use novum_wire::{
    ErrorBody, Evacuated, HeartbeatRequest, HostFirewall, RegisterRequest, RegisterResponse,
    TaskList, TaskResult,
};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::body::parse_json;
use novum_compute::conductor::{ConductorError, tasks};
use novum_compute::store::{agent_credentials, nodes, services};
use novum_config::Config;
use novum_db::DbError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// An RPC error: a status and an [`ErrorBody`].
#[derive(Debug)]
pub struct RpcError(StatusCode, String);

impl IntoResponse for RpcError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl From<DbError> for RpcError {
    fn from(error: DbError) -> Self {
        tracing::error!(%error, "agent rpc failed");
        Self(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error".to_string(),
        )
    }
}

impl From<novum_notify::NotifyError> for RpcError {
    fn from(error: novum_notify::NotifyError) -> Self {
        tracing::error!(%error, "agent rpc failed");
        Self(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error".to_string(),
        )
    }
}

impl From<ConductorError> for RpcError {
    fn from(error: ConductorError) -> Self {
        match error {
            ConductorError::NotFound(message) => Self(StatusCode::NOT_FOUND, message),
            ConductorError::Conflict(message) => Self(StatusCode::CONFLICT, message),
            ConductorError::BadRequest(message) => Self(StatusCode::BAD_REQUEST, message),
            ConductorError::Forbidden(message) => Self(StatusCode::FORBIDDEN, message),
            ConductorError::Db(error) => error.into(),
            ConductorError::Quota(novum_quota::QuotaError::Db(error)) => error.into(),
            ConductorError::Quota(denied) => Self(StatusCode::FORBIDDEN, denied.to_string()),
            ConductorError::Notify(error) => error.into(),
            ConductorError::Timeout(message) => Self(StatusCode::GATEWAY_TIMEOUT, message),
            ConductorError::NotImplemented(message) => Self(StatusCode::NOT_IMPLEMENTED, message),
            ConductorError::Network(error) => Self(
                StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                error.to_string(),
            ),
            ConductorError::Metadata(error) => {
                Self(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
            }
        }
    }
}

crate::fault_extractors!(RpcError);

impl From<PathRejection> for RpcError {
    fn from(rejection: PathRejection) -> Self {
        Self(
            rejection.status(),
            format!("invalid path: {}", rejection.body_text()),
        )
    }
}

impl From<QueryRejection> for RpcError {
    fn from(rejection: QueryRejection) -> Self {
        Self(
            rejection.status(),
            format!("invalid query string: {}", rejection.body_text()),
        )
    }
}

fn unauthorized() -> RpcError {
    RpcError(
        StatusCode::UNAUTHORIZED,
        "unknown or missing agent credential".to_string(),
    )
}

/// SHA-256 of a token, hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token (256 bits, hex).
pub fn generate_token() -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The enrollment token in effect: from the configuration, else the one in
/// `<data_dir>/agent-enrollment-token` (generated at first start).
pub fn enrollment_token(config: &Config) -> anyhow::Result<String> {
    configured_or_kept_secret(
        config.agent.enrollment_token.as_deref(),
        &config.data_dir.join("agent-enrollment-token"),
    )
}

/// The metadata proxies' shared secret in effect: `[metadata]
/// shared_secret`, else the one in `<data_dir>/metadata-shared-secret`
/// (generated at first start).
pub fn metadata_secret(config: &Config) -> anyhow::Result<String> {
    configured_or_kept_secret(
        config.metadata.shared_secret.as_deref(),
        &config.data_dir.join("metadata-shared-secret"),
    )
}

/// `configured` when set; else the secret kept in the file `path`, made
/// (random, mode 0600) when the file is missing or empty.
fn configured_or_kept_secret(
    configured: Option<&str>,
    path: &std::path::Path,
) -> anyhow::Result<String> {
    if let Some(secret) = configured {
        return Ok(secret.to_string());
    }
    if let Ok(secret) = std::fs::read_to_string(path) {
        let secret = secret.trim().to_string();
        if !secret.is_empty() {
            return Ok(secret);
        }
    }
    let secret = generate_token();
    std::fs::write(path, format!("{secret}\n"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(secret)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Checks the agent credential of `host`: a token that matched the
/// database less than [`TOKEN_TTL`] ago passes without a query; any other
/// is checked in the database (a mismatch is never remembered). A request
/// that passes proves the agent alive ([`Agents::alive`]).
async fn authenticate(state: &AppState, headers: &HeaderMap, host: &str) -> Result<(), RpcError> {
    let token = bearer(headers).ok_or_else(unauthorized)?;
    let hash = hash_token(token);
    if !state.agents.token_known(host, &hash) {
        // Boxed: the query's future would otherwise be part of every RPC
        // handler's future, the long polls' included, for their whole wait.
        if !Box::pin(agent_credentials::is_valid(&state.db, host, &hash)).await? {
            return Err(unauthorized());
        }
        state.agents.remember_token(host, &hash);
    }
    state.agents.alive(host);
    Ok(())
}

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, RpcError> {
    parse_json(bytes)
        .map_err(|error| RpcError(StatusCode::BAD_REQUEST, error.message().to_string()))
}

/// `POST /rpc/v1/agents/register`: enrolls an agent under its host name and
/// issues its credential. A host name whose compute service is up belongs to
/// the agent heartbeating under it: registering as it is refused (409) until
/// that host is down or its service deleted; only this controller's own
/// embedded agents (their per-start enrollment token) may take theirs back
/// at once, after a restart.
#[utoipa::path(post, path = "/agents/register", request_body = Object, security(("AgentToken" = [])), responses((status = OK, description = "The agent's own credential (register with the enrollment token as the bearer)", body = AgentCredential), crate::openapi::RpcFault))]
async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<RegisterResponse>, RpcError> {
    let presented = bearer(&headers).ok_or_else(unauthorized)?;
    let request: RegisterRequest = body(&bytes)?;
    let embedded = presented == state.embedded_enrollment_token
        && state
            .config
            .agent
            .embedded_host_names()
            .any(|host| host == request.host);
    if !embedded && presented != state.enrollment_token {
        return Err(RpcError(
            StatusCode::UNAUTHORIZED,
            "invalid enrollment token".to_string(),
        ));
    }
    if request.host.is_empty() || request.host.contains('/') {
        return Err(RpcError(
            StatusCode::BAD_REQUEST,
            "invalid host name".to_string(),
        ));
    }
    let token = generate_token();
    // The beats noted in memory first: whether the host is up is read below.
    state.agents.flush().await?;
    let mut tx = state.db.begin_serialized("services").await?;
    let previous =
        services::compute_service_liveness(&mut tx, &state.config.compute, &request.host).await?;
    match previous {
        Some(services::Liveness::Up { last_seen_up }) if !embedded => {
            tracing::warn!(
                host = %request.host,
                last_seen_up = %last_seen_up.as_deref().unwrap_or("never"),
                "refused to register a compute agent under the name of a host that is up"
            );
            return Err(RpcError(
                StatusCode::CONFLICT,
                format!(
                    "compute host {} is up (last heartbeat {}): another agent cannot take its name \
                     until it is down (no heartbeat for {} s, or forced down) or its service is deleted",
                    request.host,
                    last_seen_up.as_deref().unwrap_or("never"),
                    state.config.compute.service_down_time
                ),
            ));
        }
        Some(_) => tracing::warn!(
            host = %request.host,
            embedded,
            "a compute agent registered under an existing host name: the previous credential is revoked"
        ),
        None => {}
    }
    nodes::upsert_host(
        &mut tx,
        &state.config.compute,
        &request.host,
        &request.inventory,
        Some(&request.agent_version),
    )
    .await?;
    let token_hash = hash_token(&token);
    agent_credentials::replace(&mut tx, &request.host, &token_hash).await?;
    novum_notify::commit(tx).await?;
    state
        .agents
        .registered(&request.host, &token_hash, &request.inventory);
    // A (re)registered agent starts afresh: whatever it held is offered again.
    tasks::requeue_leased(&state.db, Some(&request.host)).await?;
    state.conductor.board().wake(&request.host);
    tracing::info!(host = %request.host, "compute agent registered");
    Ok(Json(RegisterResponse {
        host: request.host,
        agent_token: token,
        heartbeat_seconds: Some(state.config.agent.heartbeat_seconds),
        metadata_secret: Some(state.metadata_secret.clone()),
    }))
}

#[utoipa::path(post, path = "/agents/{host}/heartbeat", params(("host" = String, Path, description = "The agent's host name")), request_body = Object, security(("AgentToken" = [])), responses((status = NO_CONTENT, description = "Done, no body"), crate::openapi::RpcFault))]
async fn heartbeat(
    State(state): State<AppState>,
    Path(host): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<StatusCode, RpcError> {
    authenticate(&state, &headers, &host).await?;
    let request: HeartbeatRequest = body(&bytes)?;
    // Liveness is noted in memory and written with the other beats.
    let plan = state.agents.beat(&host, &request);
    if let Some(fingerprint) = plan.inventory {
        let written = async {
            let mut tx = state.db.begin_serialized("services").await?;
            nodes::upsert_host(
                &mut tx,
                &state.config.compute,
                &host,
                &request.inventory,
                None,
            )
            .await?;
            novum_notify::commit(tx).await?;
            Ok::<_, RpcError>(())
        }
        .await;
        match written {
            Ok(()) => {
                state
                    .agents
                    .inventory_written(&host, fingerprint, request.inventory.uptime.clone())
            }
            Err(error) => {
                state.agents.forget_inventory(&host);
                return Err(error);
            }
        }
    }
    if plan.reconcile {
        match state
            .conductor
            .reconcile_power(&host, &request.instances)
            .await
        {
            Ok(second_look) => state.agents.reconciled(&host, second_look),
            Err(error) => {
                state.agents.power_stale(&host);
                return Err(error.into());
            }
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PollQuery {
    wait: Option<u64>,
}

#[utoipa::path(get, path = "/agents/{host}/tasks", params(("host" = String, Path, description = "The agent's host name"), PollQuery), security(("AgentToken" = [])), responses((status = OK, description = "Success", body = AgentTasks), crate::openapi::RpcFault))]
async fn poll(
    State(state): State<AppState>,
    Path(host): Path<String>,
    Query(query): Query<PollQuery>,
    headers: HeaderMap,
) -> Result<Json<TaskList>, RpcError> {
    authenticate(&state, &headers, &host).await?;
    drop(headers);
    let wait = Duration::from_secs(
        query
            .wait
            .unwrap_or(0)
            .min(state.config.agent.max_poll_wait_seconds),
    );
    let lease = Duration::from_secs(state.config.compute.task_lease_seconds);
    let deadline = tokio::time::Instant::now() + wait;
    let board = state.conductor.board();
    let notify = board.notify_of(&host);
    loop {
        if board.is_closed() {
            return Err(shutting_down());
        }
        // An idle host (nothing offered at its last look, no wake-up since)
        // reads nothing; it is marked before the look, so that a wake-up
        // while it looks is not lost.
        let tasks = if board.is_idle(&host) {
            Vec::new()
        } else {
            board.mark_idle(&host);
            // Boxed, so that a waiting poll does not keep room for it.
            match Box::pin(tasks::lease(&state.db, &host, lease)).await {
                Ok(tasks) => tasks,
                Err(error) => {
                    board.forget_idle(&host);
                    return Err(error.into());
                }
            }
        };
        if !tasks.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(TaskList { tasks }));
        }
        tokio::select! {
            () = board.closed() => return Err(shutting_down()),
            woken = tokio::time::timeout_at(deadline, notify.notified()) => {
                if woken.is_err() {
                    return Ok(Json(TaskList::default()));
                }
            }
        }
    }
}

/// The answer to a long poll while the controller shuts down: a 503, which
/// agents retry after a backoff (against the restarted controller).
fn shutting_down() -> RpcError {
    RpcError(
        StatusCode::SERVICE_UNAVAILABLE,
        "the controller is shutting down".to_string(),
    )
}

#[utoipa::path(post, path = "/agents/{host}/tasks/{task_id}/result", params(("host" = String, Path, description = "The agent's host name"), ("task_id" = String, Path, description = "The task id")), request_body = Object, security(("AgentToken" = [])), responses((status = NO_CONTENT, description = "Done, no body"), crate::openapi::RpcFault))]
async fn result(
    State(state): State<AppState>,
    Path((host, task_id)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<StatusCode, RpcError> {
    authenticate(&state, &headers, &host).await?;
    let report: TaskResult = body(&bytes)?;
    let completed = state.conductor.complete_task(&host, &task_id, report).await;
    // The host's instances changed: its next beat reconciles power states.
    state.agents.power_stale(&host);
    completed?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /rpc/v1/agents/{host}/images/{image_id}/file`: the data of an
/// active image, streamed, with what the image service knows of it (format,
/// size, MD5 `checksum`, `os_hash_algo`/`os_hash_value`) in the
/// `x-image-meta-*` headers for the agent to verify. An agent may download
/// only an image that a task it holds names (404 otherwise, as for an
/// unknown image).
#[utoipa::path(get, path = "/agents/{host}/images/{image_id}/file", params(("host" = String, Path, description = "The agent's host name"), ("image_id" = String, Path, description = "The image id")), security(("AgentToken" = [])), responses((status = OK, description = "The image data; its format, size and hashes in the x-image-meta-* headers", content_type = "application/octet-stream", body = String), crate::openapi::RpcFault))]
async fn image_file(
    State(state): State<AppState>,
    Path((host, image_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, RpcError> {
    authenticate(&state, &headers, &host).await?;
    let not_found = || {
        RpcError(
            StatusCode::NOT_FOUND,
            format!("image {image_id} is not named by a task of host {host}, or has no data"),
        )
    };
    if !tasks::names_image(&state.db, &host, &image_id).await? {
        return Err(not_found());
    }
    let image = novum_images::get(&state.db, &image_id)
        .await
        .map_err(|error| {
            tracing::error!(%error, "agent image download failed");
            RpcError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error".to_string(),
            )
        })?
        .filter(|image| image.status == novum_images::STATUS_ACTIVE)
        .ok_or_else(not_found)?;
    let (file, length) = novum_images::data::open(&state.config.data_dir, &image_id)
        .await
        .map_err(|error| {
            tracing::error!(%error, image = %image_id, "the data of an active image cannot be read");
            not_found()
        })?;
    let info = novum_wire::ImageFileInfo {
        disk_format: image.disk_format.clone(),
        size: Some(length),
        checksum: image.checksum.clone(),
        os_hash_algo: image.os_hash_algo.clone(),
        os_hash_value: image.os_hash_value.clone(),
    };
    let mut response = crate::images::file_body(file).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/octet-stream"),
    );
    response_headers.insert(
        axum::http::header::CONTENT_LENGTH,
        axum::http::HeaderValue::from(length),
    );
    for (name, value) in info.headers() {
        if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
            response_headers.insert(name, value);
        }
    }
    tracing::info!(%host, image = %image_id, size = length, "an agent downloads an image");
    Ok(response)
}

/// `PUT /rpc/v1/agents/{host}/images/{image_id}/file`: the data of a
/// snapshot a task of the host makes ([`novum_wire::TaskAction::Snapshot`]),
/// streamed into the image service with its format, size and SHA-256 in the
/// `x-image-meta-*` headers (checked against what arrives); the image
/// becomes active. Only an image such a task names (404 otherwise), only
/// while it is queued (409).
#[utoipa::path(put, path = "/agents/{host}/images/{image_id}/file", params(("host" = String, Path, description = "The agent's host name"), ("image_id" = String, Path, description = "The snapshot image id")), request_body(content = String, content_type = "application/octet-stream"), security(("AgentToken" = [])), responses((status = NO_CONTENT, description = "Stored; the image is active"), crate::openapi::RpcFault))]
async fn image_upload(
    State(state): State<AppState>,
    Path((host, image_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<StatusCode, RpcError> {
    authenticate(&state, &headers, &host).await?;
    let image = state
        .conductor
        .snapshot_upload_begins(&host, &image_id)
        .await?;
    let info = novum_wire::ImageFileInfo::from_headers(|name| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    });
    let stored = crate::images::receive_snapshot(&state, image, &info, body)
        .await
        .map_err(|error| RpcError(error.status(), error.message().to_string()))?;
    tracing::info!(%host, image = %image_id, size = stored.size, "an agent uploaded a snapshot");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/agents/{host}/firewall", params(("host" = String, Path, description = "The agent's host name")), security(("AgentToken" = [])), responses((status = OK, description = "The security of every port bound to the host", body = Object), crate::openapi::RpcFault))]
async fn firewall(
    State(state): State<AppState>,
    Path(host): Path<String>,
    headers: HeaderMap,
) -> Result<Json<HostFirewall>, RpcError> {
    authenticate(&state, &headers, &host).await?;
    Ok(Json(state.conductor.host_firewall(&host).await?))
}

/// The instances evacuated away from `host` whose domains it may still
/// hold: the agent destroys them before it resumes its guests.
#[utoipa::path(get, path = "/agents/{host}/evacuated", params(("host" = String, Path, description = "The agent's host name")), security(("AgentToken" = [])), responses((status = OK, description = "`{\"instances\": [uuid, …]}`", body = Object), crate::openapi::RpcFault))]
async fn evacuated(
    State(state): State<AppState>,
    Path(host): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Evacuated>, RpcError> {
    authenticate(&state, &headers, &host).await?;
    Ok(Json(Evacuated {
        instances: state.conductor.evacuated_from(&host).await?,
    }))
}

/// `host` destroyed the domains of these evacuated instances: their
/// evacuations are `completed`.
#[utoipa::path(post, path = "/agents/{host}/evacuated", params(("host" = String, Path, description = "The agent's host name")), request_body = Object, security(("AgentToken" = [])), responses((status = NO_CONTENT, description = "Done, no body"), crate::openapi::RpcFault))]
async fn evacuated_destroyed(
    State(state): State<AppState>,
    Path(host): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<StatusCode, RpcError> {
    authenticate(&state, &headers, &host).await?;
    let report: Evacuated = body(&bytes)?;
    state
        .conductor
        .evacuated_destroyed(&host, &report.instances)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

crate::envelope!(
    /// `{"agent_token": …}`
    AgentCredential, "agent_token", String
);
crate::envelope!(
    /// `{"tasks": …}`
    AgentTasks, "tasks", Array
);

/// The `/rpc/v1` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(heartbeat))
        .routes(routes!(poll))
        .routes(routes!(result))
        .routes(routes!(image_file, image_upload))
        .routes(routes!(firewall))
        .routes(routes!(evacuated, evacuated_destroyed))
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    /// The size of the future an async fn of four arguments returns.
    fn future_size<A, B, C, D, F: Future>(_: impl Fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every agent keeps a long poll waiting at the controller: at 10,000
    /// hosts, a KiB of poll is 10 MiB of controller.
    #[test]
    fn a_waiting_long_poll_is_small() {
        let size = future_size(super::poll);
        println!("the long poll's future: {size} bytes");
        assert!(size <= 1024, "the long poll's future is {size} bytes");
    }
}
