//! The agent's loops: register, heartbeat, long-poll for tasks, execute them,
//! report results, and reconcile power states.
//!
//! Everything is started by [`run_agent`] (or [`run_agent_with_driver`]) and stops
//! when the `shutdown` future completes. Tasks for different instances run
//! concurrently, tasks for one instance one after the other.

mod client;
mod heartbeat;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs as _, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use novum_wire::{
    Evacuated, HeartbeatRequest, Inventory, Task, TaskAction, TaskOutcome, TaskResult,
};
use tokio::sync::oneshot::{self, error::TryRecvError};
use tokio::sync::{Mutex, Notify, watch};
use tokio::task::JoinSet;
use tracing::{Instrument as _, debug, error, info, info_span, warn};
use uuid::Uuid;

pub use client::{
    Client, Contact, ControllerImages, Controllers, RpcError, USER_AGENT, controller_urls,
};
pub use heartbeat::DEFAULT_FULL_REPORT_EVERY;

use crate::credentials::CredentialStore;
use crate::driver::{DriverError, LibvirtDriver, LibvirtOptions, VirtDriver};
use crate::execute::run;
use crate::firewall::{self, Firewall};
use crate::metadata_proxy::MetadataProxy;
use heartbeat::{BeatReason, Heartbeats, Report, delay_after_skip};

/// Default libvirt URI: libvirt's test driver (no daemon needed).
pub const DEFAULT_LIBVIRT_URI: &str = "test:///default";
/// Default heartbeat interval.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// Default long-poll wait.
pub const DEFAULT_POLL_WAIT: Duration = Duration::from_secs(30);
/// Default interval between power-state samples.
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(5);
/// First delay after a failed call; doubled on each failure up to [`MAX_BACKOFF`].
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest delay between retries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long shutdown waits, by default, for running tasks to finish and report.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Default interval between host firewall refreshes (security group
/// changes reach the host within it; a spawn or plug refreshes at once).
pub const DEFAULT_FIREWALL_INTERVAL: Duration = Duration::from_secs(10);

/// Everything an agent needs to know.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Base URL of the controller (`http://controller:8774`), or of several
    /// controllers on one database separated by commas
    /// (`http://c1:8774,http://c2:8774`): calls go to the one that answered
    /// last and fail over to the next (see [`Controllers`]).
    pub controller_url: String,
    /// This agent's host name (Nova's service `host`), unique in the cloud.
    pub host: String,
    /// libvirt URI (`test:///default`, `test:///abs/node.xml`, `qemu:///system`).
    pub libvirt_uri: String,
    /// Enrollment credential for registering (not needed while a stored agent
    /// credential is accepted).
    pub enrollment_token: Option<String>,
    /// Heartbeat interval (the controller may ask for another at registration).
    /// The loop wakes this often (after a skipped beat, timed half-way
    /// between two long polls), but sends the beat only when the controller
    /// has not heard it all: the first after a start or a registration, a
    /// changed inventory (its `uptime` aside) or changed power states (and
    /// the beat after, the controller's second look), a beat after a task
    /// result, after a failed request (the controller may have restarted)
    /// or a move to another controller, when no request was sent for an
    /// interval (so at most one and a half intervals after the last long
    /// poll), and a full report every [`AgentConfig::full_report_every`]
    /// intervals.
    pub heartbeat_interval: Duration,
    /// A full heartbeat goes at least every this many intervals, whatever
    /// changed (1: at every wake). The controller's periodic power-state
    /// reconciliation (every 600 s) and the host `uptime` it shows
    /// (`os-hypervisors/{id}/uptime`) ride on beats; the default,
    /// [`DEFAULT_FULL_REPORT_EVERY`], is 5 minutes at the controller's
    /// default 30 s interval. A host's first full report comes early by a
    /// number of intervals taken from its name, so that a fleet started
    /// together does not send them all at once.
    pub full_report_every: u32,
    /// How long one task long-poll waits on the controller.
    pub poll_wait: Duration,
    /// How often power states are sampled; a change triggers a heartbeat at once.
    pub reconcile_interval: Duration,
    /// Directory for the stored agent credential; `None`: memory only.
    pub state_dir: Option<PathBuf>,
    /// Host IP to report; `None`: the local address used to reach the controller.
    pub host_ip: Option<String>,
    /// libvirt driver settings.
    pub libvirt: LibvirtOptions,
    /// How long shutdown waits for running tasks to finish and report; the
    /// controller offers the unfinished ones again.
    pub shutdown_grace: Duration,
    /// The nftables tables enforcing the security groups of this host's
    /// ports (see [`crate::firewall`]); `None`: no host firewall (libvirt's
    /// test driver runs no guest). [`run_agent`] sets
    /// [`crate::firewall::table_name`] of the host for a real hypervisor.
    pub firewall_table: Option<String>,
    /// How often the host firewall is refreshed from the controller.
    pub firewall_interval: Duration,
    /// An HTTP client shared by the agents of one process (the simulated
    /// fleet multiplexes all its hosts over one HTTP/2 connection); `None`:
    /// the agent makes its own.
    pub http: Option<reqwest::Client>,
}

impl AgentConfig {
    /// A configuration with every default, for `host` talking to `controller_url`.
    pub fn new(controller_url: impl Into<String>, host: impl Into<String>) -> Self {
        AgentConfig {
            controller_url: controller_url.into(),
            host: host.into(),
            libvirt_uri: DEFAULT_LIBVIRT_URI.to_string(),
            enrollment_token: None,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            full_report_every: DEFAULT_FULL_REPORT_EVERY,
            poll_wait: DEFAULT_POLL_WAIT,
            reconcile_interval: DEFAULT_RECONCILE_INTERVAL,
            state_dir: None,
            host_ip: None,
            libvirt: LibvirtOptions::default(),
            shutdown_grace: SHUTDOWN_GRACE,
            firewall_table: None,
            firewall_interval: DEFAULT_FIREWALL_INTERVAL,
            http: None,
        }
    }
}

/// Why an agent stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The hypervisor could not be opened or read.
    #[error("driver: {0}")]
    Driver(#[from] DriverError),
    /// A call to the controller failed in a way retrying cannot fix.
    #[error("rpc: {0}")]
    Rpc(#[from] RpcError),
    /// The stored credential could not be read.
    #[error("reading the stored credential: {0}")]
    Credential(#[from] std::io::Error),
    /// A blocking driver call panicked or was cancelled.
    #[error("driver thread: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The failure reported for `task` whose execution panicked with `payload`.
fn panicked(task: &Task, payload: Box<dyn std::any::Any + Send>) -> TaskOutcome {
    let reason = payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string());
    error!(task = %task.id, %reason, "task execution panicked; reporting it failed");
    TaskOutcome::Failed {
        message: crate::execute::printable(&format!(
            "{} failed: the agent panicked executing it: {reason}",
            task.action.kind()
        )),
        power_state: None,
    }
}

/// Run an agent on the libvirt driver named by `config.libvirt_uri` until
/// `shutdown` completes.
///
/// For a `test:` URI the hypervisor hostname defaults to `config.host`, so that
/// several fake hypervisors on one machine stay distinct.
pub async fn run_agent(
    mut config: AgentConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    if config.libvirt_uri.starts_with("test:") && config.libvirt.hypervisor_hostname.is_none() {
        config.libvirt.hypervisor_hostname = Some(config.host.clone());
    }
    // Serial consoles listening on every address are reached at the host's.
    if let Some(serial) = &mut config.libvirt.serial_console
        && serial.proxyclient_address.is_none()
        && serial
            .listen
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_unspecified())
    {
        serial.proxyclient_address = config
            .host_ip
            .clone()
            .or_else(|| local_ip_towards(first_controller(&config.controller_url)));
    }
    if !config.libvirt_uri.starts_with("test:") && config.firewall_table.is_none() {
        config.firewall_table = Some(firewall::table_name(&config.host));
    }
    let uri = config.libvirt_uri.clone();
    let options = config.libvirt.clone();
    // The guests it lost come back once the evacuated ones are gone (see
    // `Agent::destroy_evacuated`).
    let driver =
        tokio::task::spawn_blocking(move || LibvirtDriver::open_deferred(&uri, options)).await??;
    run_agent_with_driver(config, Arc::new(driver), shutdown).await
}

/// Run an agent on `driver` until `shutdown` completes.
pub async fn run_agent_with_driver(
    config: AgentConfig,
    driver: Arc<dyn VirtDriver>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let span = info_span!("agent", host = %config.host);
    async move {
        let (cancel_tx, cancel_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = cancel_tx.send(true);
        });
        let agent = Arc::new(Agent::new(config, driver)?);
        agent.run(Cancel(cancel_rx)).await
    }
    .instrument(span)
    .await
}

/// A cancellation signal shared by the loops.
#[derive(Clone)]
struct Cancel(watch::Receiver<bool>);

impl Cancel {
    fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once shutdown was asked for (or its sender is gone).
    async fn cancelled(&mut self) {
        let _ = self.0.wait_for(|cancelled| *cancelled).await;
    }

    /// Sleep for `duration`; `false` when cancelled meanwhile.
    async fn sleep(&mut self, duration: Duration) -> bool {
        tokio::select! {
            _ = self.cancelled() => false,
            _ = tokio::time::sleep(duration) => true,
        }
    }
}

/// Exponential backoff between retries.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(INITIAL_BACKOFF)
    }

    fn next(&mut self) -> Duration {
        let delay = self.0;
        self.0 = (self.0 * 2).min(MAX_BACKOFF);
        delay
    }
}

struct Agent {
    config: AgentConfig,
    driver: Arc<dyn VirtDriver>,
    client: Client,
    heartbeat_interval: StdMutex<Duration>,
    /// Wakes the heartbeat loop early (power states changed).
    heartbeat_now: Notify,
    /// What the last successful heartbeat reported (its power states sorted
    /// by uuid), and whether the next may be left out.
    heartbeats: StdMutex<Heartbeats>,
    /// Serializes (re-)registrations: several loops may see a `401` at once.
    registering: Mutex<()>,
    /// Tasks received and not yet reported, so a re-delivery does not run twice.
    in_flight: StdMutex<HashSet<Uuid>>,
    /// The host firewall, when this host enforces security groups.
    firewall: Option<Arc<Firewall>>,
    /// The metadata proxy for the guests of this host.
    metadata: Arc<MetadataProxy>,
}

impl Agent {
    fn new(config: AgentConfig, driver: Arc<dyn VirtDriver>) -> Result<Self, AgentError> {
        let store = CredentialStore::new(config.state_dir.as_deref());
        // Kept under the list of controllers (or, stored by an agent that
        // knew one, under any of them: the credential is in the database
        // every controller of the list shares).
        let urls = controller_urls(&config.controller_url);
        let mut token = store.load(&urls.join(","), &config.host)?;
        for url in &urls {
            if token.is_none() {
                token = store.load(url, &config.host)?;
            }
        }
        if token.is_some() {
            info!("using the stored agent credential");
        }
        let client = Client::new(
            &config.controller_url,
            &config.host,
            config.enrollment_token.clone(),
            store,
            token,
            config.http.clone(),
        )?;
        driver.set_image_source(Arc::new(
            client.image_source(tokio::runtime::Handle::current()),
        ));
        let firewall = config
            .firewall_table
            .as_ref()
            .map(|table| Arc::new(Firewall::new(table.clone())));
        let metadata =
            MetadataProxy::with_state(&config.controller_url, config.state_dir.as_deref());
        Ok(Agent {
            heartbeats: StdMutex::new(Heartbeats::new(&config.host, config.full_report_every)),
            heartbeat_interval: StdMutex::new(config.heartbeat_interval),
            config,
            driver,
            client,
            heartbeat_now: Notify::new(),
            registering: Mutex::new(()),
            in_flight: StdMutex::new(HashSet::new()),
            firewall,
            metadata,
        })
    }

    async fn run(self: Arc<Self>, mut cancel: Cancel) -> Result<(), AgentError> {
        if self.client.token().await.is_none() {
            let mut backoff = Backoff::new();
            loop {
                match self.register_if_refused(None).await {
                    Ok(()) => break,
                    Err(AgentError::Rpc(e)) if e.is_transient() || e.is_host_name_taken() => {
                        warn!(error = %e, "registration failed; retrying");
                        if !cancel.sleep(backoff.next()).await {
                            return Ok(());
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if !self.destroy_evacuated(&mut cancel).await {
            return Ok(());
        }
        self.blocking(|d| d.resume_guests()).await?;
        self.metadata.serve_known_bridges();
        let heartbeat = tokio::spawn(Arc::clone(&self).heartbeat_loop(cancel.clone()));
        let reconcile = tokio::spawn(Arc::clone(&self).reconcile_loop(cancel.clone()));
        let poll = tokio::spawn(Arc::clone(&self).poll_loop(cancel.clone()));
        let firewall = tokio::spawn(Arc::clone(&self).firewall_loop(cancel.clone()));
        let (heartbeat, reconcile, poll, firewall) =
            tokio::join!(heartbeat, reconcile, poll, firewall);
        self.metadata.stop();
        heartbeat?;
        reconcile?;
        poll?;
        firewall?;
        info!("agent stopped");
        Ok(())
    }

    /// Destroys the domains of the instances evacuated away from this host
    /// while it was gone (the controller lists them), before any guest is
    /// resumed, and reports them destroyed (Nova's
    /// `_destroy_evacuated_instances` at `init_host`): a stale copy is
    /// never started. Retries while the controller cannot answer; `false`
    /// when shut down meanwhile. A controller without the call (404)
    /// evacuates nothing.
    async fn destroy_evacuated(&self, cancel: &mut Cancel) -> bool {
        let mut backoff = Backoff::new();
        let evacuated = loop {
            match self.authed(|client| client.evacuated()).await {
                Ok(evacuated) => break evacuated,
                Err(AgentError::Rpc(e)) if e.is_not_found() => return true,
                Err(AgentError::Rpc(e)) if !e.is_transient() => {
                    error!(error = %e, "the controller will not say which instances were evacuated; resuming every guest");
                    return true;
                }
                Err(e) => {
                    warn!(error = %e, "cannot learn which instances were evacuated; retrying");
                    if !cancel.sleep(backoff.next()).await {
                        return false;
                    }
                }
            }
        };
        let mut destroyed = Vec::new();
        for instance in evacuated.instances {
            info!(%instance, "destroying the domain of an instance evacuated from this host");
            match self.blocking(move |d| d.destroy(instance)).await {
                Ok(()) => destroyed.push(instance),
                Err(e) => warn!(%instance, error = %e, "cannot destroy an evacuated instance"),
            }
        }
        if destroyed.is_empty() {
            return true;
        }
        let report = Evacuated {
            instances: destroyed,
        };
        let mut backoff = Backoff::new();
        for _ in 0..5 {
            match self
                .authed(|client| client.evacuated_destroyed(&report))
                .await
            {
                Ok(()) => break,
                Err(e) => {
                    warn!(error = %e, "cannot report the evacuated instances destroyed; retrying");
                    if !cancel.sleep(backoff.next()).await {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Run a blocking driver call on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn VirtDriver) -> Result<T, DriverError> + Send + 'static,
    ) -> Result<T, AgentError> {
        let driver = Arc::clone(&self.driver);
        Ok(tokio::task::spawn_blocking(move || f(driver.as_ref())).await??)
    }

    async fn inventory(&self) -> Result<Inventory, AgentError> {
        let mut inventory = self
            .blocking(|d| {
                let mut inventory = d.inventory()?;
                inventory.uptime = d.uptime();
                Ok(inventory)
            })
            .await?;
        inventory.host_ip = self
            .config
            .host_ip
            .clone()
            .or_else(|| local_ip_towards(self.client.controllers().current()));
        Ok(inventory)
    }

    /// Register, unless the credential changed since `refused` was refused (then
    /// another loop registered already).
    async fn register_if_refused(&self, refused: Option<String>) -> Result<(), AgentError> {
        let _guard = self.registering.lock().await;
        if self.client.token().await != refused {
            return Ok(());
        }
        let inventory = self.inventory().await?;
        let answer = self.client.register(inventory).await?;
        self.metadata.set_secret(answer.metadata_secret);
        if let Some(seconds) = answer.heartbeat_seconds {
            *self
                .heartbeat_interval
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Duration::from_secs(seconds.max(1));
        }
        Ok(())
    }

    /// Make an authenticated call; on `401` register again and retry once.
    async fn authed<'a, T, F, Fut>(&'a self, call: F) -> Result<T, AgentError>
    where
        F: Fn(&'a Client) -> Fut,
        Fut: Future<Output = Result<T, RpcError>> + 'a,
    {
        self.authed_unless(None, call)
            .await
            .unwrap_or_else(|| unreachable!("without a stop signal the call is never given up"))
    }

    /// [`Agent::authed`], with each call given up (`None`) once `stop` is
    /// cancelled. A registration is never given up half-way: once the
    /// controller issued a credential, it is stored before anything stops.
    async fn authed_unless<'a, T, F, Fut>(
        &'a self,
        stop: Option<&Cancel>,
        call: F,
    ) -> Option<Result<T, AgentError>>
    where
        F: Fn(&'a Client) -> Fut,
        Fut: Future<Output = Result<T, RpcError>> + 'a,
    {
        let stop = || async {
            match stop {
                Some(cancel) => cancel.clone().cancelled().await,
                None => std::future::pending().await,
            }
        };
        let token = self.client.token().await;
        let first = tokio::select! {
            _ = stop() => return None,
            first = call(&self.client) => first,
        };
        match first {
            Err(e) if e.is_unauthorized() => {
                warn!("controller refused the agent credential; registering again");
                if let Err(e) = self.register_if_refused(token).await {
                    return Some(Err(e));
                }
                tokio::select! {
                    _ = stop() => None,
                    again = call(&self.client) => Some(again.map_err(AgentError::from)),
                }
            }
            other => Some(other.map_err(AgentError::from)),
        }
    }

    /// The heartbeat interval in effect.
    fn heartbeat_interval(&self) -> Duration {
        *self
            .heartbeat_interval
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// What the heartbeats told the controller.
    fn heartbeats(&self) -> MutexGuard<'_, Heartbeats> {
        self.heartbeats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// One wake of the heartbeat loop: reads the inventory and power states
    /// and sends them, when `asked` (power states changed) or when the
    /// controller has not heard them all (see [`Heartbeats::reason`]).
    /// Returns how long to sleep until the next wake.
    async fn heartbeat_once(&self, asked: bool) -> Result<Duration, AgentError> {
        let inventory = self.inventory().await?;
        let mut instances = self.blocking(|d| d.list_instances()).await?;
        instances.sort_by_key(|p| p.uuid);
        let report = Report::of(&inventory, &instances);
        let before = self.client.contact();
        let now = Instant::now();
        let interval = self.heartbeat_interval();
        let reason = if asked {
            Some(BeatReason::Asked)
        } else {
            self.heartbeats().reason(&report, &before, now, interval)
        };
        let Some(reason) = reason else {
            self.heartbeats().skipped();
            debug!("heartbeat skipped: the controller heard all of it");
            return Ok(delay_after_skip(before.last_sent, now, interval));
        };
        let beat = HeartbeatRequest {
            inventory,
            instances,
        };
        self.authed(|client| client.heartbeat(&beat)).await?;
        let answered_by = self.client.contact().controller;
        self.heartbeats().sent(reason, report, before, answered_by);
        debug!(?reason, "heartbeat sent");
        Ok(interval)
    }

    async fn heartbeat_loop(self: Arc<Self>, mut cancel: Cancel) {
        let mut backoff = Backoff::new();
        let mut asked = false;
        loop {
            let delay = match self
                .heartbeat_once(asked)
                .instrument(info_span!("heartbeat"))
                .await
            {
                Ok(delay) => {
                    backoff = Backoff::new();
                    delay
                }
                Err(e) => {
                    warn!(error = %e, "heartbeat failed");
                    backoff.next()
                }
            };
            asked = tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => false,
                _ = self.heartbeat_now.notified() => true,
            };
        }
    }

    /// Sample power states; when they differ from what the controller last
    /// heard, heartbeat at once so it can reconcile without waiting.
    async fn reconcile_loop(self: Arc<Self>, mut cancel: Cancel) {
        while cancel.sleep(self.config.reconcile_interval).await {
            let mut now = match self.blocking(|d| d.list_instances()).await {
                Ok(now) => now,
                Err(e) => {
                    warn!(error = %e, "reading power states");
                    continue;
                }
            };
            now.sort_by_key(|p| p.uuid);
            let changed = self
                .heartbeats()
                .reported_instances()
                .is_some_and(|last| last != now.as_slice());
            if changed {
                info!("power states changed; reporting");
                self.heartbeat_now.notify_one();
            }
        }
    }

    /// Fetch the security of this host's ports and enforce it (when this
    /// host has a firewall).
    async fn sync_firewall(&self) -> Result<(), String> {
        let Some(firewall) = self.firewall.clone() else {
            return Ok(());
        };
        let rules = self
            .authed(|client| client.firewall())
            .await
            .map_err(|e| e.to_string())?;
        tokio::task::spawn_blocking(move || firewall.apply(&rules))
            .await
            .map_err(|e| e.to_string())?
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Refresh the host firewall every `firewall_interval` (security group
    /// rules and memberships change without a task for this host).
    async fn firewall_loop(self: Arc<Self>, mut cancel: Cancel) {
        if self.firewall.is_none() {
            return;
        }
        loop {
            if let Err(error) = self.sync_firewall().await {
                warn!(%error, "refreshing the host firewall");
            }
            if !cancel.sleep(self.config.firewall_interval).await {
                return;
            }
        }
    }

    async fn poll_loop(self: Arc<Self>, mut cancel: Cancel) {
        let mut running = JoinSet::new();
        // Per instance, the completion signal of its last task received: the
        // next one waits for it, so one instance's tasks run in the order
        // they came (spawned tasks start in no particular order).
        let mut last_of: HashMap<Uuid, oneshot::Receiver<()>> = HashMap::new();
        let mut backoff = Backoff::new();
        while !cancel.is_cancelled() {
            let polled = self
                .authed_unless(Some(&cancel), |client| client.poll(self.config.poll_wait))
                .await;
            let Some(polled) = polled else { break };
            match polled {
                Ok(tasks) => {
                    backoff = Backoff::new();
                    for task in tasks {
                        let fresh = self
                            .in_flight
                            .lock()
                            .map(|mut f| f.insert(task.id))
                            .unwrap_or(false);
                        if fresh {
                            let (done, done_rx) = oneshot::channel();
                            // A query changes nothing: it runs at once,
                            // beside its instance's other tasks.
                            let after = if task.action.is_query() {
                                None
                            } else {
                                last_of.insert(task.instance_uuid, done_rx)
                            };
                            running.spawn(Arc::clone(&self).run_task(
                                task,
                                after,
                                done,
                                cancel.clone(),
                            ));
                        } else {
                            debug!(task = %task.id, "task already running");
                        }
                    }
                }
                Err(e) => {
                    warn!(error = %e, "polling for tasks failed");
                    if !cancel.sleep(backoff.next()).await {
                        break;
                    }
                }
            }
            while let Some(done) = running.try_join_next() {
                if let Err(e) = done {
                    error!(error = %e, "task runner panicked");
                }
            }
            // Forget the instances whose last task is over.
            last_of.retain(|_, done| matches!(done.try_recv(), Err(TryRecvError::Empty)));
        }
        // Let running tasks finish and report, within the grace period.
        if !running.is_empty() {
            info!(tasks = running.len(), "waiting for running tasks");
            let drained = tokio::time::timeout(self.config.shutdown_grace, async {
                while running.join_next().await.is_some() {}
            })
            .await;
            if drained.is_err() {
                warn!("tasks still running at shutdown; the controller will re-deliver them");
                running.abort_all();
            }
        }
    }

    /// Runs `task` once the previous task of its instance (`after`) is over,
    /// reports it, and signals `done` (by dropping it) to the next one.
    async fn run_task(
        self: Arc<Self>,
        task: Task,
        after: Option<oneshot::Receiver<()>>,
        done: oneshot::Sender<()>,
        cancel: Cancel,
    ) {
        let span = info_span!(
            "task",
            task = %task.id,
            kind = task.action.kind(),
            instance = %task.instance_uuid,
            request_id = task.request_id.as_deref().unwrap_or(""),
        );
        let id = task.id;
        async {
            if let Some(previous) = after {
                // Err: the previous runner is gone (finished or aborted).
                let _ = previous.await;
            }
            // A port must be filtered before its guest runs: refresh the
            // firewall first, and fail the task when that cannot be done.
            if plugs_ports(&task.action)
                && let Err(error) = self.sync_firewall().await
            {
                let outcome = TaskOutcome::Failed {
                    message: crate::execute::printable(&format!(
                        "{} failed: the host firewall could not be updated: {error}",
                        task.action.kind()
                    )),
                    power_state: None,
                };
                self.report(&task, TaskResult::of(outcome), cancel).await;
                if let Ok(mut in_flight) = self.in_flight.lock() {
                    in_flight.remove(&id);
                }
                return;
            }
            let outcome = {
                let driver = Arc::clone(&self.driver);
                let task = task.clone();
                let span = tracing::Span::current();
                tokio::task::spawn_blocking(move || span.in_scope(|| run(driver.as_ref(), &task)))
                    .await
            };
            match outcome {
                Ok(result) => {
                    self.metadata
                        .observe(task.instance_uuid, &task.action, &result.outcome);
                    self.report(&task, result, cancel).await
                }
                // A panic would panic again on every re-delivery: the task
                // fails with what the panic said instead.
                Err(e) if e.is_panic() => {
                    let outcome = panicked(&task, e.into_panic());
                    self.report(&task, TaskResult::of(outcome), cancel).await
                }
                Err(e) => error!(error = %e, "task execution cancelled; not reporting"),
            }
        }
        .instrument(span)
        .await;
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.remove(&id);
        }
        drop(done);
    }

    /// Report a result, retrying transient failures until it lands or the agent
    /// stops (the controller then re-delivers the task; running it again is
    /// idempotent).
    async fn report(&self, task: &Task, result: TaskResult, mut cancel: Cancel) {
        let mut backoff = Backoff::new();
        loop {
            match self.authed(|client| client.report(task, &result)).await {
                Ok(()) => {
                    debug!("result reported");
                    return;
                }
                Err(AgentError::Rpc(e)) if e.is_transient() => {
                    warn!(error = %e, "reporting the result failed; retrying");
                    if !cancel.sleep(backoff.next()).await {
                        return;
                    }
                }
                Err(e) => {
                    error!(error = %e, "the controller refused the result; dropping it");
                    return;
                }
            }
        }
    }
}

/// Whether `action` plugs ports into a guest (their firewall comes first).
fn plugs_ports(action: &TaskAction) -> bool {
    matches!(
        action,
        TaskAction::Spawn(_)
            | TaskAction::Redefine { .. }
            | TaskAction::AttachInterface { .. }
            | TaskAction::PreLiveMigration { .. }
            | TaskAction::PostLiveMigration { .. }
    )
}

/// The first controller of a list (see [`controller_urls`]).
fn first_controller(list: &str) -> &str {
    list.split(',')
        .map(str::trim)
        .find(|url| !url.is_empty())
        .unwrap_or(list)
}

/// The local address this machine uses to reach the controller (no packet is
/// sent: connecting a UDP socket only picks the route).
fn local_ip_towards(controller_url: &str) -> Option<String> {
    let url = reqwest::Url::parse(controller_url).ok()?;
    let host = url.host_str()?;
    let port = url.port_or_known_default().unwrap_or(80);
    let target: SocketAddr = (host.trim_matches(|c| c == '[' || c == ']'), port)
        .to_socket_addrs()
        .ok()?
        .next()?;
    let bind: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect(target).ok()?;
    Some(socket.local_addr().ok()?.ip().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_lists() {
        assert_eq!(
            controller_urls(" http://a:1/, http://b:2 ,,http://a:1"),
            vec!["http://a:1".to_string(), "http://b:2".to_string()]
        );
        assert_eq!(first_controller("http://a:1,http://b:2"), "http://a:1");
        assert!(controller_urls("").is_empty());
        let controllers = Controllers::new("http://a:1,http://b:2");
        assert_eq!(controllers.current(), "http://a:1");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut backoff = Backoff::new();
        assert_eq!(backoff.next(), INITIAL_BACKOFF);
        assert_eq!(backoff.next(), INITIAL_BACKOFF * 2);
        for _ in 0..20 {
            backoff.next();
        }
        assert_eq!(backoff.next(), MAX_BACKOFF);
    }

    #[test]
    fn local_ip_of_a_loopback_controller() {
        assert_eq!(
            local_ip_towards("http://127.0.0.1:8774").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(local_ip_towards("not a url"), None);
    }
}
