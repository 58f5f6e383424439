//! A simulated fleet: N hosts in one agent process (`novum-agent --simulate N`).
//!
//! Each host is a full agent — its own registration, credential, heartbeat,
//! long poll and task execution, over the real agent protocol — on a
//! [`SimulatedDriver`] instead of a libvirt connection. They share one HTTP/2
//! connection per [`HOSTS_PER_CONNECTION`] hosts (prior knowledge, no TLS),
//! so 10,000 hosts cost the controller 100 connections, not 10,000. Hosts
//! start in a ramp so that the registrations do not all arrive at once.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::agent::{AgentConfig, AgentError, USER_AGENT, run_agent_with_driver};
use crate::driver::{SimulatedDriver, SimulatedHost};

/// Hosts that share one HTTP/2 connection. A server lets one connection
/// carry a bounded number of concurrent streams (hyper's default is 200)
/// and each host keeps one long poll open, now and then with a heartbeat
/// or a report beside it.
pub const HOSTS_PER_CONNECTION: usize = 100;

/// What a simulated fleet looks like.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// The controller's base URL.
    pub controller_url: String,
    /// Host names are this prefix followed by the host's number, zero-padded
    /// (`sim-0001` … `sim-1000`).
    pub prefix: String,
    /// How many hosts.
    pub hosts: usize,
    /// The size of every host (its `hostname` is replaced by each host's name).
    pub host: SimulatedHost,
    /// The enrollment credential.
    pub enrollment_token: Option<String>,
    /// Heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Long-poll wait.
    pub poll_wait: Duration,
    /// How often each host samples its guests' power states.
    pub reconcile_interval: Duration,
    /// Each host's credential is kept in `<state_dir>/<host>`; `None`: memory only.
    pub state_dir: Option<PathBuf>,
    /// The `host_ip` every host reports.
    pub host_ip: String,
    /// How long it takes until every host has started.
    pub ramp: Duration,
}

/// The name of host `index` (from 1) in a fleet of `hosts` named `prefix…`.
pub fn host_name(prefix: &str, index: usize, hosts: usize) -> String {
    let width = hosts.to_string().len();
    format!("{prefix}{index:0width$}")
}

/// Runs the fleet until `shutdown` completes; fails when the shared HTTP
/// client cannot be built or a host's agent stops with an error.
pub async fn run_fleet(
    options: FleetOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let mut connections = Vec::new();
    for _ in 0..options.hosts.div_ceil(HOSTS_PER_CONNECTION) {
        connections.push(
            reqwest::Client::builder()
                .user_agent(USER_AGENT)
                .http2_prior_knowledge()
                .build()
                .map_err(crate::agent::RpcError::from)?,
        );
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let step = options
        .ramp
        .checked_div(u32::try_from(options.hosts.max(1)).unwrap_or(u32::MAX))
        .unwrap_or_default();
    let mut agents = JoinSet::new();
    let mut ramp = tokio::time::interval(step.max(Duration::from_micros(1)));
    for index in 1..=options.hosts {
        if *stop_rx.borrow() {
            break;
        }
        ramp.tick().await;
        let name = host_name(&options.prefix, index, options.hosts);
        let driver = SimulatedDriver::new(SimulatedHost {
            hostname: name.clone(),
            ..options.host.clone()
        });
        let mut config = AgentConfig::new(options.controller_url.clone(), name.clone());
        config.enrollment_token = options.enrollment_token.clone();
        config.heartbeat_interval = options.heartbeat_interval;
        config.poll_wait = options.poll_wait;
        config.reconcile_interval = options.reconcile_interval;
        config.state_dir = options.state_dir.as_ref().map(|dir| dir.join(&name));
        config.host_ip = Some(options.host_ip.clone());
        config.shutdown_grace = Duration::from_secs(1);
        config.http = connections.get((index - 1) / HOSTS_PER_CONNECTION).cloned();
        if let Some(dir) = &config.state_dir {
            std::fs::create_dir_all(dir)?;
        }
        let mut stop = stop_rx.clone();
        agents.spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            };
            (
                name,
                run_agent_with_driver(config, std::sync::Arc::new(driver), stopped).await,
            )
        });
    }
    info!(hosts = options.hosts, "simulated fleet started");
    let mut failed = None;
    while let Some(joined) = agents.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(error))) => {
                warn!(host = %name, %error, "a simulated host stopped");
                failed.get_or_insert(error);
            }
            Err(error) => {
                warn!(%error, "a simulated host panicked");
                failed.get_or_insert(AgentError::Join(error));
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::host_name;

    #[test]
    fn host_names_are_numbered_with_a_fixed_width() {
        assert_eq!(host_name("sim-", 7, 1000), "sim-0007");
        assert_eq!(host_name("sim-", 1000, 1000), "sim-1000");
        assert_eq!(host_name("h", 3, 9), "h3");
    }
}
