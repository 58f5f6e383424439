//! The agent's side of the RPC: authenticated JSON calls to the controller, with
//! registration and re-registration when the controller forgets the credential.

use std::time::Duration;

use novum_wire::{
    ErrorBody, HeartbeatRequest, HostFirewall, Inventory, REGISTER_PATH, RegisterRequest,
    RegisterResponse, Task, TaskList, TaskResult, firewall_path, heartbeat_path, task_result_path,
    tasks_path,
};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::RwLock;
use tracing::{info, warn};

use crate::credentials::{CredentialStore, StoredCredential};

/// How long an ordinary call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Extra time over the long-poll wait before the client gives up on a poll.
const POLL_TIMEOUT_MARGIN: Duration = Duration::from_secs(15);

/// What went wrong in an RPC call.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The controller could not be reached or the answer could not be read.
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// The controller answered with an error status.
    #[error("controller answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: StatusCode,
        /// The error message from the body (or the raw body).
        message: String,
    },
    /// No agent credential and no enrollment credential to register with.
    #[error("no agent credential and no enrollment token to register with")]
    NoEnrollmentToken,
    /// The credential store could not be written.
    #[error("storing the agent credential: {0}")]
    Store(#[from] std::io::Error),
}

impl RpcError {
    /// Whether the controller refused the credential (`401`).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, RpcError::Status { status, .. } if *status == StatusCode::UNAUTHORIZED)
    }

    /// Whether the controller refused a registration because another agent's
    /// host of that name is still up (`409`): it is free once that one is down.
    pub fn is_host_name_taken(&self) -> bool {
        matches!(self, RpcError::Status { status, .. } if *status == StatusCode::CONFLICT)
    }

    /// Whether retrying the same call can help (transport failures, 5xx, 408, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            RpcError::Transport(_) => true,
            RpcError::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::REQUEST_TIMEOUT
                    || *status == StatusCode::TOO_MANY_REQUESTS
            }
            RpcError::NoEnrollmentToken | RpcError::Store(_) => false,
        }
    }
}

/// Authenticated client for one agent.
pub struct Client {
    http: reqwest::Client,
    base: String,
    host: String,
    enrollment_token: Option<String>,
    store: CredentialStore,
    token: RwLock<Option<String>>,
}

impl Client {
    /// A client for `host` talking to the controller at `base` (no trailing `/`).
    pub fn new(
        base: &str,
        host: &str,
        enrollment_token: Option<String>,
        store: CredentialStore,
        token: Option<String>,
    ) -> Result<Self, RpcError> {
        Ok(Client {
            http: reqwest::Client::builder()
                .user_agent(concat!("novum-agent/", env!("CARGO_PKG_VERSION")))
                .build()?,
            base: base.trim_end_matches('/').to_string(),
            host: host.to_string(),
            enrollment_token,
            store,
            token: RwLock::new(token),
        })
    }

    /// The current agent credential.
    pub async fn token(&self) -> Option<String> {
        self.token.read().await.clone()
    }

    /// Register with the enrollment token and keep (and store) the agent credential.
    /// Returns the controller's preferred heartbeat interval, if it has one.
    pub async fn register(&self, inventory: Inventory) -> Result<Option<u64>, RpcError> {
        let enrollment = self
            .enrollment_token
            .as_deref()
            .ok_or(RpcError::NoEnrollmentToken)?;
        let request = RegisterRequest {
            host: self.host.clone(),
            inventory,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let response = self
            .http
            .post(format!("{}{REGISTER_PATH}", self.base))
            .bearer_auth(enrollment)
            .timeout(CALL_TIMEOUT)
            .json(&request)
            .send()
            .await?;
        let answer: RegisterResponse = read_json(response).await?;
        if answer.host != self.host {
            warn!(asked = %self.host, got = %answer.host, "controller registered another host name");
        }
        self.store.save(&StoredCredential {
            controller: self.base.clone(),
            host: self.host.clone(),
            token: answer.agent_token.clone(),
        })?;
        *self.token.write().await = Some(answer.agent_token);
        info!(host = %self.host, "registered with the controller");
        Ok(answer.heartbeat_seconds)
    }

    /// Send the heartbeat.
    pub async fn heartbeat(&self, beat: &HeartbeatRequest) -> Result<(), RpcError> {
        self.call(
            Method::POST,
            &heartbeat_path(&self.host),
            Some(beat),
            CALL_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// Long-poll for tasks, waiting up to `wait` on the controller.
    pub async fn poll(&self, wait: Duration) -> Result<Vec<Task>, RpcError> {
        let path = format!("{}?wait={}", tasks_path(&self.host), wait.as_secs());
        let response = self
            .call::<()>(Method::GET, &path, None, wait + POLL_TIMEOUT_MARGIN)
            .await?;
        Ok(read_json::<TaskList>(response).await?.tasks)
    }

    /// Report a task's result.
    pub async fn report(&self, task: &Task, result: &TaskResult) -> Result<(), RpcError> {
        let path = task_result_path(&self.host, task.id);
        self.call(Method::POST, &path, Some(result), CALL_TIMEOUT)
            .await
            .map(drop)
    }

    /// The security of every port bound to this host.
    pub async fn firewall(&self) -> Result<HostFirewall, RpcError> {
        let response = self
            .call::<()>(Method::GET, &firewall_path(&self.host), None, CALL_TIMEOUT)
            .await?;
        read_json(response).await
    }

    /// An authenticated call with the current agent credential.
    async fn call<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<reqwest::Response, RpcError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(timeout);
        if let Some(token) = self.token.read().await.as_deref() {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        check(request.send().await?).await
    }
}

async fn check(response: reqwest::Response) -> Result<reqwest::Response, RpcError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<ErrorBody>(&text)
        .map(|body| body.error)
        .unwrap_or(text);
    Err(RpcError::Status { status, message })
}

async fn read_json<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, RpcError> {
    Ok(check(response).await?.json().await?)
}
