//! The agent's side of the RPC: authenticated JSON calls to the controller, with
//! registration and re-registration when the controller forgets the credential.
//!
//! An agent may know several controllers (several `novum serve` on one
//! database, see [`controller_urls`]): a call goes to the one that answered
//! last and, when it cannot be reached or answers with a server error (a
//! 503 while it shuts down included), to the next, each tried once per
//! call. The agent credential is in the shared database, so every
//! controller accepts it.

use std::io::Read;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use novum_wire::{
    ErrorBody, Evacuated, HeartbeatRequest, HostFirewall, ImageFileInfo, Inventory, REGISTER_PATH,
    RegisterRequest, RegisterResponse, Task, TaskList, TaskResult, evacuated_path, firewall_path,
    heartbeat_path, image_file_path, task_result_path, tasks_path,
};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::RwLock;
use tracing::{info, warn};

use crate::credentials::{CredentialStore, StoredCredential};
use crate::driver::{DriverError, ImageData, ImageSource, check_image_id};

/// The agent's `User-Agent`.
pub const USER_AGENT: &str = concat!("novum-agent/", env!("CARGO_PKG_VERSION"));

/// How long an ordinary call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an image download may wait for its answer, and then for each
/// piece of the data.
const IMAGE_READ_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// No controller URL was given.
    #[error("no controller URL")]
    NoController,
}

impl RpcError {
    /// Whether the controller refused the credential (`401`).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, RpcError::Status { status, .. } if *status == StatusCode::UNAUTHORIZED)
    }

    /// Whether the controller does not know the call (`404`: an older one).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RpcError::Status { status, .. } if *status == StatusCode::NOT_FOUND)
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
            RpcError::NoEnrollmentToken | RpcError::Store(_) | RpcError::NoController => false,
        }
    }

    /// Whether another controller may answer where this one failed: it could
    /// not be reached or answered a server error (a 503 while it shuts
    /// down included).
    pub fn fails_over(&self) -> bool {
        match self {
            RpcError::Transport(_) => true,
            RpcError::Status { status, .. } => status.is_server_error(),
            RpcError::NoEnrollmentToken | RpcError::Store(_) | RpcError::NoController => false,
        }
    }
}

/// The controller URLs of `list`: separated by commas (or whitespace),
/// without trailing `/`, empty items dropped, duplicates kept once.
pub fn controller_urls(list: &str) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for url in list.split([',', ' ', '\t', '\n']) {
        let url = url.trim().trim_end_matches('/');
        if !url.is_empty() && !urls.iter().any(|known| known == url) {
            urls.push(url.to_string());
        }
    }
    urls
}

/// What an agent's requests told the controllers so far, as far as the
/// heartbeat needs to know whether the controller already heard everything
/// (see [`Client::contact`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contact {
    /// When the last request was sent to a controller (each attempt counts:
    /// the controller notes the agent alive as a request arrives, a long
    /// poll still waiting included); `None`: never.
    pub last_sent: Option<Instant>,
    /// How many requests failed so far without an answer of the controller
    /// (it could not be reached, or answered a server error): after one, the
    /// controller may have restarted and forgotten what it heard.
    pub failures: u64,
    /// How many registrations succeeded so far.
    pub registrations: u64,
    /// How many task results the controller accepted so far.
    pub results: u64,
    /// Which of [`Controllers::urls`] answered last.
    pub controller: usize,
}

/// The counters behind [`Contact`], kept by [`Controllers::each`] and the
/// client's calls.
#[derive(Debug, Default)]
struct ContactLog {
    last_sent: Mutex<Option<Instant>>,
    failures: AtomicU64,
    registrations: AtomicU64,
    results: AtomicU64,
}

/// The controllers an agent talks to, and which of them answered last
/// (shared by the client and its image source).
#[derive(Debug)]
pub struct Controllers {
    urls: Vec<String>,
    current: AtomicUsize,
    contact: ContactLog,
}

impl Controllers {
    /// The controllers of `list` (see [`controller_urls`]); an empty list
    /// keeps the one (empty) base, so calls fail with a transport error.
    pub fn new(list: &str) -> Self {
        let mut urls = controller_urls(list);
        if urls.is_empty() {
            urls.push(String::new());
        }
        Controllers {
            urls,
            current: AtomicUsize::new(0),
            contact: ContactLog::default(),
        }
    }

    /// Every controller URL.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The controller calls go to first (the last that answered).
    pub fn current(&self) -> &str {
        &self.urls[self.current.load(Ordering::Relaxed) % self.urls.len()]
    }

    /// The order to try them in for one call: the current one, then the
    /// others in their order; each with its index.
    fn rotation(&self) -> impl Iterator<Item = (usize, &str)> + '_ {
        let start = self.current.load(Ordering::Relaxed) % self.urls.len();
        (0..self.urls.len()).map(move |offset| {
            let index = (start + offset) % self.urls.len();
            (index, self.urls[index].as_str())
        })
    }

    /// Remembers that controller `index` answered.
    fn answered(&self, index: usize) {
        let previous = self.current.swap(index, Ordering::Relaxed);
        if previous != index && self.urls.len() > 1 {
            info!(controller = %self.urls[index], "now talking to this controller");
        }
    }

    /// What the requests through these controllers told them so far.
    pub fn contact(&self) -> Contact {
        let log = &self.contact;
        Contact {
            last_sent: *log.last_sent.lock().unwrap_or_else(PoisonError::into_inner),
            failures: log.failures.load(Ordering::Relaxed),
            registrations: log.registrations.load(Ordering::Relaxed),
            results: log.results.load(Ordering::Relaxed),
            controller: self.current.load(Ordering::Relaxed) % self.urls.len(),
        }
    }

    /// Tries `call` on each controller in turn (see [`Controllers::rotation`])
    /// until one answers with something other than a failover error (see
    /// [`RpcError::fails_over`]); returns that answer, or the last error.
    /// Each attempt is noted in the [`Contact`] (when it was sent, whether it
    /// failed).
    async fn each<'a, T, F, Fut>(&'a self, call: F) -> Result<T, RpcError>
    where
        F: Fn(&'a str) -> Fut,
        Fut: Future<Output = Result<T, RpcError>>,
    {
        let mut last = None;
        for (index, base) in self.rotation() {
            *self
                .contact
                .last_sent
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
            match call(base).await {
                Err(error) if error.fails_over() => {
                    self.contact.failures.fetch_add(1, Ordering::Relaxed);
                    if self.urls.len() > 1 {
                        warn!(controller = %base, %error, "controller unavailable; trying the next");
                    }
                    last = Some(error);
                }
                answer => {
                    self.answered(index);
                    return answer;
                }
            }
        }
        Err(last.unwrap_or(RpcError::NoController))
    }
}

/// Authenticated client for one agent.
pub struct Client {
    http: reqwest::Client,
    controllers: Arc<Controllers>,
    host: String,
    enrollment_token: Option<String>,
    store: CredentialStore,
    token: Arc<RwLock<Option<String>>>,
}

impl Client {
    /// A client for `host` talking to the controllers listed in `base`
    /// (one URL, or several separated by commas; see [`controller_urls`]),
    /// over `http` when given (shared by several agents), else over its own.
    pub fn new(
        base: &str,
        host: &str,
        enrollment_token: Option<String>,
        store: CredentialStore,
        token: Option<String>,
        http: Option<reqwest::Client>,
    ) -> Result<Self, RpcError> {
        let http = match http {
            Some(http) => http,
            None => reqwest::Client::builder().user_agent(USER_AGENT).build()?,
        };
        Ok(Client {
            http,
            controllers: Arc::new(Controllers::new(base)),
            host: host.to_string(),
            enrollment_token,
            store,
            token: Arc::new(RwLock::new(token)),
        })
    }

    /// The controller's image service as this agent downloads from it (with
    /// its current credential), for blocking driver threads of `runtime`.
    pub fn image_source(&self, runtime: tokio::runtime::Handle) -> ControllerImages {
        ControllerImages {
            http: self.http.clone(),
            controllers: Arc::clone(&self.controllers),
            host: self.host.clone(),
            token: Arc::clone(&self.token),
            runtime,
        }
    }

    /// The controllers this client talks to.
    pub fn controllers(&self) -> &Arc<Controllers> {
        &self.controllers
    }

    /// What this client's requests (and its image source's) told the
    /// controllers so far.
    pub fn contact(&self) -> Contact {
        self.controllers.contact()
    }

    /// The current agent credential.
    pub async fn token(&self) -> Option<String> {
        self.token.read().await.clone()
    }

    /// Register with the enrollment token and keep (and store) the agent credential.
    /// Returns the controller's answer (its preferred heartbeat interval, the
    /// metadata proxies' secret).
    pub async fn register(&self, inventory: Inventory) -> Result<RegisterResponse, RpcError> {
        let enrollment = self
            .enrollment_token
            .as_deref()
            .ok_or(RpcError::NoEnrollmentToken)?;
        let request = RegisterRequest {
            host: self.host.clone(),
            inventory,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let answer: RegisterResponse = self
            .controllers
            .each(|base| {
                let request = self
                    .http
                    .post(format!("{base}{REGISTER_PATH}"))
                    .bearer_auth(enrollment)
                    .timeout(CALL_TIMEOUT)
                    .json(&request);
                async move { read_json(request.send().await?).await }
            })
            .await?;
        if answer.host != self.host {
            warn!(asked = %self.host, got = %answer.host, "controller registered another host name");
        }
        self.store.save(&StoredCredential {
            controller: self.controllers.urls().join(","),
            host: self.host.clone(),
            token: answer.agent_token.clone(),
        })?;
        *self.token.write().await = Some(answer.agent_token.clone());
        self.controllers
            .contact
            .registrations
            .fetch_add(1, Ordering::Relaxed);
        info!(host = %self.host, "registered with the controller");
        Ok(answer)
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
            .await?;
        self.controllers
            .contact
            .results
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The instances evacuated away from this host (see
    /// [`novum_wire::evacuated_path`]).
    pub async fn evacuated(&self) -> Result<Evacuated, RpcError> {
        let response = self
            .call::<()>(Method::GET, &evacuated_path(&self.host), None, CALL_TIMEOUT)
            .await?;
        read_json(response).await
    }

    /// Reports the domains of `destroyed` (evacuated instances) gone.
    pub async fn evacuated_destroyed(&self, destroyed: &Evacuated) -> Result<(), RpcError> {
        self.call(
            Method::POST,
            &evacuated_path(&self.host),
            Some(destroyed),
            CALL_TIMEOUT,
        )
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
        let token = self.token.read().await.clone();
        self.controllers
            .each(|base| {
                let mut request = self
                    .http
                    .request(method.clone(), format!("{base}{path}"))
                    .timeout(timeout);
                if let Some(token) = token.as_deref() {
                    request = request.bearer_auth(token);
                }
                if let Some(body) = body {
                    request = request.json(body);
                }
                async move { check(request.send().await?).await }
            })
            .await
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

/// The controller's image service, as an [`ImageSource`] for the driver:
/// `GET /rpc/v1/agents/{host}/images/{id}/file` with the agent credential.
/// Its calls block (on `runtime`): call them from blocking threads only.
pub struct ControllerImages {
    http: reqwest::Client,
    controllers: Arc<Controllers>,
    host: String,
    token: Arc<RwLock<Option<String>>>,
    runtime: tokio::runtime::Handle,
}

impl ControllerImages {
    /// A source downloading from the controllers listed in `base` (see
    /// [`controller_urls`]) as agent `host` with credential `token`.
    pub fn new(
        base: &str,
        host: &str,
        token: Option<String>,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, RpcError> {
        Ok(ControllerImages {
            http: reqwest::Client::builder().user_agent(USER_AGENT).build()?,
            controllers: Arc::new(Controllers::new(base)),
            host: host.to_string(),
            token: Arc::new(RwLock::new(token)),
            runtime,
        })
    }
}

impl ImageSource for ControllerImages {
    fn upload(
        &self,
        image_id: &str,
        disk_format: &str,
        path: &std::path::Path,
    ) -> Result<(), DriverError> {
        let id = check_image_id(image_id)?;
        self.put_file(id, disk_format, path)
    }

    fn open(&self, image_id: &str) -> Result<ImageData, DriverError> {
        let id = check_image_id(image_id)?;
        let failed = |e: &dyn std::fmt::Display| {
            DriverError::Image(format!("downloading image {id} from the controller: {e}"))
        };
        let path = image_file_path(&self.host, id);
        let response = self.runtime.block_on(async {
            let token = self.token.read().await.clone();
            self.controllers
                .each(|base| {
                    let mut request = self.http.get(format!("{base}{path}"));
                    if let Some(token) = token.as_deref() {
                        request = request.bearer_auth(token);
                    }
                    async move {
                        let response = tokio::time::timeout(IMAGE_READ_TIMEOUT, request.send())
                            .await
                            .map_err(|_| RpcError::Status {
                                status: StatusCode::GATEWAY_TIMEOUT,
                                message: format!(
                                    "no answer within {} s",
                                    IMAGE_READ_TIMEOUT.as_secs()
                                ),
                            })??;
                        check(response).await
                    }
                })
                .await
                .map_err(|e| failed(&e))
        })?;
        let info = ImageFileInfo::from_headers(|name| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        });
        Ok(ImageData {
            info,
            reader: Box::new(ResponseReader {
                response,
                runtime: self.runtime.clone(),
                chunk: Vec::new(),
                offset: 0,
            }),
        })
    }
}

impl ControllerImages {
    /// `PUT` of `path` as the data of snapshot image `id`, with its
    /// [`ImageFileInfo`] (format, size, SHA-256) in the headers.
    fn put_file(
        &self,
        id: &str,
        disk_format: &str,
        path: &std::path::Path,
    ) -> Result<(), DriverError> {
        let failed = |e: &dyn std::fmt::Display| {
            DriverError::Image(format!("uploading snapshot {id} to the controller: {e}"))
        };
        let info = crate::driver::upload_info(path, disk_format)?;
        let path_on_controller = image_file_path(&self.host, id);
        self.runtime.block_on(async {
            let token = self.token.read().await.clone();
            let info = &info;
            let token = token.as_deref();
            let path_on_controller = path_on_controller.as_str();
            self.controllers
                .each(|base| async move {
                    // The file again for each controller tried.
                    let file = tokio::fs::File::open(path).await?;
                    let body = FileBody {
                        file,
                        buffer: vec![0_u8; 1 << 20].into_boxed_slice(),
                        size: info.size.unwrap_or_default(),
                    };
                    let mut request = self
                        .http
                        .put(format!("{base}{path_on_controller}"))
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .body(reqwest::Body::wrap(body));
                    for (name, value) in info.headers() {
                        request = request.header(name, value);
                    }
                    if let Some(token) = token {
                        request = request.bearer_auth(token);
                    }
                    check(request.send().await?).await.map(drop)
                })
                .await
                .map_err(|e| failed(&e))
        })?;
        info!(image = id, size = ?info.size, "snapshot uploaded");
        Ok(())
    }
}

/// A file as a streamed request body, read a piece at a time (so that a
/// snapshot of any size is uploaded without holding it in memory), of a
/// known length.
struct FileBody {
    file: tokio::fs::File,
    buffer: Box<[u8]>,
    size: u64,
}

impl http_body::Body for FileBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        use tokio::io::AsyncRead as _;
        let this = &mut *self;
        let mut read = tokio::io::ReadBuf::new(&mut this.buffer);
        match std::pin::Pin::new(&mut this.file).poll_read(context, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(error)) => Poll::Ready(Some(Err(error))),
            Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => Poll::Ready(Some(Ok(http_body::Frame::data(
                bytes::Bytes::copy_from_slice(read.filled()),
            )))),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.size)
    }
}

/// A streamed answer's body as a blocking [`Read`].
struct ResponseReader {
    response: reqwest::Response,
    runtime: tokio::runtime::Handle,
    chunk: Vec<u8>,
    offset: usize,
}

impl Read for ResponseReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        while self.offset == self.chunk.len() {
            let response = &mut self.response;
            let next = self
                .runtime
                .block_on(async {
                    tokio::time::timeout(IMAGE_READ_TIMEOUT, response.chunk()).await
                })
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no data for 60 s"))?
                .map_err(std::io::Error::other)?;
            match next {
                Some(chunk) => {
                    self.chunk = chunk.to_vec();
                    self.offset = 0;
                }
                None => return Ok(0),
            }
        }
        let count = buffer.len().min(self.chunk.len() - self.offset);
        buffer[..count].copy_from_slice(&self.chunk[self.offset..self.offset + count]);
        self.offset += count;
        Ok(count)
    }
}
