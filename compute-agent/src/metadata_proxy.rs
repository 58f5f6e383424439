//! The metadata proxy of a compute host: guests reach Nova's metadata
//! service at `http://169.254.169.254/`, the way neutron's metadata agent
//! serves it.
//!
//! On each Linux bridge of a network with guests on this host, the proxy
//! adds the address `169.254.169.254/32` and listens on
//! `169.254.169.254:80` with `SO_BINDTODEVICE` = the bridge, so a request is
//! known to come from that bridge's network and the answer leaves by it
//! (guests add an on-link route to the address). A request from guest
//! address X on bridge B is the instance whose port on B's network has the
//! fixed IP X (known from the interfaces of the instances this agent spawned:
//! [`MetadataProxy::observe`]); it goes to `<controller>/metadata<path>`
//! with `X-Instance-ID`, `X-Tenant-ID`, `X-Instance-ID-Signature`
//! ([`novum_wire::metadata_signature`] under the secret the controller
//! handed over at registration) and `X-Forwarded-For`. An unknown source is
//! answered 404, without asking the controller.
//!
//! What it knows (the secret, each instance's project and interfaces) is
//! kept in `<state_dir>/metadata-proxy.json` (owner-only), so an agent that
//! restarts with its stored credential, and so without registering again,
//! goes on answering its guests.
//!
//! The HTTP it speaks is the little a metadata client needs: one request a
//! connection (`GET`, `HEAD`, `POST` with a `Content-Length` body), answered
//! with `Connection: close`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use novum_wire::{
    InterfaceSpec, METADATA_PREFIX, SpawnSpec, TaskAction, TaskOutcome, metadata_headers,
    metadata_signature,
};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::credentials::write_private;
use crate::driver::{DeviceKind, device_kind};

/// The metadata service's address, as guests know it.
pub const METADATA_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// The port it answers on.
pub const METADATA_PORT: u16 = 80;

/// The longest request head (request line and headers) read.
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// The longest request body forwarded (a posted password is at most 1020).
const MAX_BODY_BYTES: usize = 4 * 1024;

/// How long a guest may take to send its request, and the controller to answer.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Whose requests come from one (bridge, address).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Guest {
    instance: Uuid,
    project_id: String,
}

/// What the proxy knows of one instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Known {
    project_id: String,
    interfaces: Vec<InterfaceSpec>,
}

/// What the state file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Kept {
    secret: Option<String>,
    instances: HashMap<Uuid, Known>,
}

/// The state file's name in the agent's state directory.
pub const STATE_FILE: &str = "metadata-proxy.json";

/// The metadata proxy of this host.
pub struct MetadataProxy {
    controller_url: String,
    http: reqwest::Client,
    secret: Mutex<Option<String>>,
    instances: Mutex<HashMap<Uuid, Known>>,
    listeners: Mutex<HashMap<String, JoinHandle<()>>>,
    state_file: Option<PathBuf>,
    /// Held while the state is written: two writes at once would share
    /// the temporary file (one's rename finds it gone, or renames the
    /// other's older state into place).
    keeping: Mutex<()>,
}

impl std::fmt::Debug for MetadataProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataProxy")
            .field("controller_url", &self.controller_url)
            .finish_non_exhaustive()
    }
}

/// Why the proxy could not serve a bridge.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The metadata address could not be added to the bridge.
    #[error("bridge {bridge}: {message}")]
    Address {
        /// The bridge.
        bridge: String,
        /// What went wrong.
        message: String,
    },
    /// The listening socket could not be made.
    #[error("bridge {bridge}: cannot listen on {METADATA_ADDRESS}:{METADATA_PORT}: {source}")]
    Listen {
        /// The bridge.
        bridge: String,
        /// Why.
        source: std::io::Error,
    },
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MetadataProxy {
    /// A proxy forwarding to the controller at `controller_url`, with no
    /// secret yet (see [`MetadataProxy::set_secret`]).
    pub fn new(controller_url: &str) -> Arc<Self> {
        Self::with_state(controller_url, None)
    }

    /// A proxy forwarding to `controller_url` that keeps what it knows in
    /// `state_dir`/[`STATE_FILE`] (`None`: in memory only), starting from
    /// what the file holds. An unreadable file is logged and ignored.
    pub fn with_state(controller_url: &str, state_dir: Option<&Path>) -> Arc<Self> {
        let state_file = state_dir.map(|dir| dir.join(STATE_FILE));
        let kept = state_file
            .as_deref()
            .and_then(|path| match std::fs::read(path) {
                Ok(bytes) => serde_json::from_slice::<Kept>(&bytes)
                    .map_err(|error| warn!(path = %path.display(), %error, "ignoring the metadata proxy's unreadable state"))
                    .ok(),
                Err(_) => None,
            })
            .unwrap_or_default();
        Arc::new(MetadataProxy {
            controller_url: controller_url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            secret: Mutex::new(kept.secret),
            instances: Mutex::new(kept.instances),
            listeners: Mutex::new(HashMap::new()),
            state_file,
            keeping: Mutex::new(()),
        })
    }

    /// Writes what the proxy knows to its state file (if any); a failure is
    /// logged: the proxy goes on from memory.
    fn keep(&self) {
        if let Err(error) = self.write_state() {
            let path = self.state_file.as_deref().unwrap_or(Path::new(""));
            warn!(path = %path.display(), %error, "cannot keep the metadata proxy's state");
        }
    }

    /// Writes what the proxy knows now to its state file (if any), one
    /// write at a time, so the file ends with the latest state.
    fn write_state(&self) -> std::io::Result<()> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let _turn = lock(&self.keeping);
        let kept = Kept {
            secret: lock(&self.secret).clone(),
            instances: lock(&self.instances).clone(),
        };
        serde_json::to_vec(&kept)
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_private(path, &bytes))
    }

    /// Serves the bridges of every instance it knows that exist on this
    /// host (at the agent's start, for the guests already running).
    pub fn serve_known_bridges(self: &Arc<Self>) {
        let bridges: Vec<String> = lock(&self.instances)
            .values()
            .flat_map(|known| known.interfaces.iter().map(|i| i.bridge.clone()))
            .collect();
        for bridge in bridges {
            self.serve_bridge_if_present(&bridge);
        }
    }

    /// The secret to sign instance ids with (from the registration answer).
    pub fn set_secret(&self, secret: Option<String>) {
        *lock(&self.secret) = secret;
        self.keep();
    }

    /// Learns from a task that succeeded: a spawn or redefine gives the
    /// instance's project and interfaces (and the bridges that now have
    /// guests are served), so does the destination's end of a live
    /// migration (the guest arrived), an interface attach or detach changes
    /// them, a destroy forgets the instance and so does the source's live
    /// migration (the guest left).
    pub fn observe(self: &Arc<Self>, instance: Uuid, action: &TaskAction, outcome: &TaskOutcome) {
        if !matches!(outcome, TaskOutcome::Succeeded { .. }) {
            return;
        }
        match action {
            TaskAction::Spawn(spec)
            | TaskAction::Redefine { spec, .. }
            | TaskAction::PostLiveMigration { spec, .. } => self.record(instance, spec),
            TaskAction::AttachInterface { interface } => {
                let bridge = {
                    let mut instances = lock(&self.instances);
                    let Some(known) = instances.get_mut(&instance) else {
                        return;
                    };
                    known.interfaces.retain(|i| i.port_id != interface.port_id);
                    known.interfaces.push(interface.clone());
                    interface.bridge.clone()
                };
                self.keep();
                self.serve_bridge_if_present(&bridge);
            }
            TaskAction::DetachInterface { port_id, .. } => {
                if let Some(known) = lock(&self.instances).get_mut(&instance) {
                    known.interfaces.retain(|i| i.port_id != *port_id);
                }
                self.keep();
            }
            TaskAction::Destroy | TaskAction::LiveMigrate { .. } => self.forget(instance),
            _ => {}
        }
    }

    /// Records the project and interfaces of `instance` from its spec, and
    /// serves the bridges of its interfaces that exist on this host (the
    /// libvirt test driver makes none: then nothing listens). A guest with
    /// no interface cannot reach the proxy: it is not kept (and forgotten
    /// if it had interfaces before). The state file is written only when
    /// what the proxy knows changed.
    pub fn record(self: &Arc<Self>, instance: Uuid, spec: &SpawnSpec) {
        let Some(project_id) = spec.project_id.clone() else {
            return;
        };
        if spec.interfaces.is_empty() {
            self.forget(instance);
            return;
        }
        let known = Known {
            project_id,
            interfaces: spec.interfaces.clone(),
        };
        let changed = lock(&self.instances).insert(instance, known.clone()) != Some(known);
        if changed {
            self.keep();
        }
        for interface in &spec.interfaces {
            self.serve_bridge_if_present(&interface.bridge);
        }
    }

    /// Forgets `instance` (its addresses are answered 404 from now on).
    pub fn forget(&self, instance: Uuid) {
        if lock(&self.instances).remove(&instance).is_some() {
            self.keep();
        }
    }

    fn serve_bridge_if_present(self: &Arc<Self>, bridge: &str) {
        if !matches!(device_kind(bridge), Ok(DeviceKind::Bridge)) {
            return;
        }
        if let Err(error) = self.serve_bridge(bridge) {
            warn!(%error, "the metadata proxy cannot serve the bridge");
        }
    }

    /// Adds the metadata address to `bridge` and answers on it (once per
    /// bridge; nothing to do when it already does).
    pub fn serve_bridge(self: &Arc<Self>, bridge: &str) -> Result<(), ProxyError> {
        let mut listeners = lock(&self.listeners);
        if listeners
            .get(bridge)
            .is_some_and(|listener| !listener.is_finished())
        {
            return Ok(());
        }
        add_address(bridge)?;
        let listener = listen_on(bridge).map_err(|source| ProxyError::Listen {
            bridge: bridge.to_string(),
            source,
        })?;
        info!(
            bridge,
            "metadata proxy listening on {METADATA_ADDRESS}:{METADATA_PORT}"
        );
        let proxy = Arc::clone(self);
        let name = bridge.to_string();
        listeners.insert(
            bridge.to_string(),
            tokio::spawn(async move { proxy.accept_loop(name, listener).await }),
        );
        Ok(())
    }

    /// Stops answering on every bridge (the addresses stay: harmless).
    pub fn stop(&self) {
        for (_, listener) in lock(&self.listeners).drain() {
            listener.abort();
        }
    }

    async fn accept_loop(self: Arc<Self>, bridge: String, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let proxy = Arc::clone(&self);
                    let bridge = bridge.clone();
                    tokio::spawn(async move { proxy.handle(&bridge, stream, peer).await });
                }
                Err(error) => {
                    warn!(%bridge, %error, "metadata proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// The instance (and its project) whose port on `bridge`'s network has
    /// the fixed IP `address`: whom a request from there is forwarded for.
    pub fn instance_at(&self, bridge: &str, address: IpAddr) -> Option<(Uuid, String)> {
        self.guest(bridge, address)
            .map(|guest| (guest.instance, guest.project_id))
    }

    /// The guest at `address` on `bridge`.
    fn guest(&self, bridge: &str, address: IpAddr) -> Option<Guest> {
        lock(&self.instances)
            .iter()
            .find(|(_, known)| {
                known.interfaces.iter().any(|interface| {
                    interface.bridge == bridge
                        && interface
                            .fixed_ips
                            .iter()
                            .any(|ip| ip.ip_address.parse::<IpAddr>().ok() == Some(address))
                })
            })
            .map(|(instance, known)| Guest {
                instance: *instance,
                project_id: known.project_id.clone(),
            })
    }

    async fn handle(&self, bridge: &str, mut stream: TcpStream, peer: SocketAddr) {
        let answer = match tokio::time::timeout(IO_TIMEOUT, read_request(&mut stream)).await {
            Ok(Ok(request)) => self.forward(bridge, peer.ip(), request).await,
            Ok(Err(message)) => Answer::plain(400, &message),
            Err(_) => Answer::plain(408, "the request took too long"),
        };
        let _ = tokio::time::timeout(IO_TIMEOUT, stream.write_all(&answer.to_bytes())).await;
        let _ = stream.shutdown().await;
    }

    async fn forward(&self, bridge: &str, source: IpAddr, request: Request) -> Answer {
        let Some(guest) = self.guest(bridge, source) else {
            debug!(bridge, %source, "metadata request from an unknown address");
            return Answer::plain(404, "The resource could not be found.");
        };
        let Some(secret) = lock(&self.secret).clone() else {
            warn!("metadata request before the controller handed over the shared secret");
            return Answer::plain(503, "The metadata service is not available yet.");
        };
        let path = if request.path == "/" {
            String::new()
        } else {
            request.path.clone()
        };
        let controllers = crate::agent::controller_urls(&self.controller_url);
        let method = match request.method.as_str() {
            "GET" => reqwest::Method::GET,
            "HEAD" => reqwest::Method::HEAD,
            "POST" => reqwest::Method::POST,
            _ => return Answer::plain(405, "The method is not allowed."),
        };
        let instance = guest.instance.to_string();
        // Each controller in turn (several on one database) until one
        // answers without a server error.
        let mut reply = None;
        for controller in &controllers {
            let url = format!("{controller}{METADATA_PREFIX}{path}");
            let sent = self
                .http
                .request(method.clone(), url)
                .timeout(IO_TIMEOUT)
                .header(metadata_headers::INSTANCE_ID, &instance)
                .header(metadata_headers::TENANT_ID, &guest.project_id)
                .header(
                    metadata_headers::SIGNATURE,
                    metadata_signature(&secret, &instance),
                )
                .header(metadata_headers::FORWARDED_FOR, source.to_string())
                .body(request.body.clone())
                .send()
                .await;
            let fails_over = match &sent {
                Ok(answer) => answer.status().is_server_error(),
                Err(_) => true,
            };
            reply = Some(sent);
            if !fails_over {
                break;
            }
        }
        let Some(reply) = reply else {
            return Answer::plain(502, "The metadata service did not answer.");
        };
        match reply {
            Ok(reply) => {
                let status = reply.status().as_u16();
                let content_type = reply
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("text/plain")
                    .to_string();
                match reply.bytes().await {
                    Ok(body) => Answer {
                        status,
                        content_type,
                        body: body.to_vec(),
                    },
                    Err(error) => {
                        warn!(%error, "reading the metadata service's answer");
                        Answer::plain(502, "The metadata service did not answer.")
                    }
                }
            }
            Err(error) => {
                warn!(%error, "forwarding to the metadata service");
                Answer::plain(502, "The metadata service did not answer.")
            }
        }
    }
}

impl Drop for MetadataProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `ip addr replace 169.254.169.254/32 dev <bridge>`.
fn add_address(bridge: &str) -> Result<(), ProxyError> {
    let address = format!("{METADATA_ADDRESS}/32");
    let output = Command::new("ip")
        .args(["addr", "replace", &address, "dev", bridge])
        .output()
        .map_err(|e| ProxyError::Address {
            bridge: bridge.to_string(),
            message: format!("cannot run `ip`: {e}"),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(ProxyError::Address {
            bridge: bridge.to_string(),
            message: format!(
                "`ip addr replace {address} dev {bridge}` failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }
}

/// A listening socket on the metadata address bound to `bridge`.
fn listen_on(bridge: &str) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind_device(Some(bridge.as_bytes()))?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((METADATA_ADDRESS, METADATA_PORT)).into())?;
    socket.listen(64)?;
    TcpListener::from_std(socket.into())
}

/// What a guest asked.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// Reads one request: its head, then `Content-Length` bytes of body.
async fn read_request(stream: &mut TcpStream) -> Result<Request, String> {
    let mut buffer = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buffer.len() > MAX_HEAD_BYTES {
            return Err("the request head is too long".into());
        }
        let mut chunk = [0_u8; 1024];
        let read = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the request: {e}"))?;
        if read == 0 {
            return Err("the request ended early".into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split_whitespace();
    let method = request_line.next().unwrap_or_default().to_ascii_uppercase();
    let path = request_line.next().unwrap_or_default().to_string();
    if method.is_empty() || !path.starts_with('/') {
        return Err("not an HTTP request".into());
    }
    let length = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .map(|(_, value)| value.trim().parse::<usize>())
        .transpose()
        .map_err(|_| "a bad Content-Length".to_string())?
        .unwrap_or(0);
    if length > MAX_BODY_BYTES {
        return Err("the request body is too long".into());
    }
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0_u8; 1024];
        let read = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the request body: {e}"))?;
        if read == 0 {
            return Err("the request body ended early".into());
        }
        body.extend_from_slice(&chunk[..read]);
    }
    body.truncate(length);
    Ok(Request { method, path, body })
}

/// An answer to a guest.
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn plain(status: u16, message: &str) -> Self {
        Answer {
            status,
            content_type: "text/plain; charset=UTF-8".into(),
            body: format!("{status} {}\n\n{message}\n", reason(status)).into_bytes(),
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes from several threads at once (a task's update beside a new
    /// secret) all succeed, and the file ends with the latest state.
    #[test]
    fn concurrent_writes_keep_the_latest_state() {
        let dir = std::env::temp_dir().join(format!("novum-proxy-{}", Uuid::new_v4()));
        let proxy = MetadataProxy::with_state("http://127.0.0.1:1", Some(&dir));
        std::thread::scope(|scope| {
            for writer in 0..8 {
                let proxy = &proxy;
                scope.spawn(move || {
                    for round in 0..50 {
                        *lock(&proxy.secret) = Some(format!("secret-{writer}-{round}"));
                        proxy.write_state().expect("state written");
                    }
                });
            }
        });
        *lock(&proxy.secret) = Some("last".to_string());
        proxy.write_state().expect("state written");
        let again = MetadataProxy::with_state("http://127.0.0.1:1", Some(&dir));
        assert_eq!(lock(&again.secret).as_deref(), Some("last"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A spawn spec of project `p1` with `interfaces`.
    fn spec_with(interfaces: Vec<InterfaceSpec>) -> SpawnSpec {
        SpawnSpec {
            name: "guest".into(),
            flavor: novum_wire::FlavorSpec::tiny(),
            image: novum_wire::ImageSpec {
                id: "img".into(),
                properties: Default::default(),
            },
            user_data: None,
            metadata: Default::default(),
            interfaces,
            project_id: Some("p1".into()),
            config_drive: None,
        }
    }

    /// What the state file in `dir` holds (`None`: no file).
    fn kept_in(dir: &Path) -> Option<Kept> {
        let bytes = std::fs::read(dir.join(STATE_FILE)).ok()?;
        Some(serde_json::from_slice(&bytes).expect("a readable state"))
    }

    /// Guests without interfaces are not kept (nothing is written for
    /// them); one with interfaces is, written once however often it is
    /// recorded unchanged, and forgotten when it loses them.
    #[test]
    fn only_changes_of_guests_with_interfaces_are_written() {
        let dir = std::env::temp_dir().join(format!("novum-proxy-{}", Uuid::new_v4()));
        let proxy = MetadataProxy::with_state("http://127.0.0.1:1", Some(&dir));
        let portless = Uuid::new_v4();
        proxy.record(portless, &spec_with(Vec::new()));
        proxy.forget(portless);
        assert!(kept_in(&dir).is_none(), "a port-less guest was written");

        let guest = Uuid::new_v4();
        let interface = InterfaceSpec {
            port_id: Uuid::new_v4(),
            mac_address: "fa:16:3e:00:00:01".into(),
            network_id: Uuid::new_v4(),
            network_name: "net".into(),
            mtu: None,
            bridge: "novum-no-such-bridge".into(),
            fixed_ips: Vec::new(),
        };
        proxy.record(guest, &spec_with(vec![interface]));
        let kept = kept_in(&dir).expect("the guest written");
        assert_eq!(kept.instances.len(), 1);
        assert!(kept.instances.contains_key(&guest));
        // Unchanged: not written again (the file removed stays removed).
        std::fs::remove_file(dir.join(STATE_FILE)).expect("state file");
        let interfaces = lock(&proxy.instances)[&guest].interfaces.clone();
        proxy.record(guest, &spec_with(interfaces));
        assert!(kept_in(&dir).is_none(), "an unchanged record was written");
        // Redefined without interfaces: forgotten, and written.
        proxy.record(guest, &spec_with(Vec::new()));
        assert!(kept_in(&dir).expect("written").instances.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
