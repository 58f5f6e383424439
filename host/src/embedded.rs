//! Embedded compute agents: in the all-in-one setup `novum serve` runs
//! `[agent] embedded_hosts` agents in-process (`novum_agent::run_agent`) on
//! libvirt's test driver, each with a node file of the configured size; they
//! talk to the controller's own listener over HTTP like any remote agent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use novum_agent::AgentConfig;
use novum_agent::driver::{domain_store_dir, test_node_xml};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use novum_api::AppState;

/// Suffix of an embedded host's state directory (`<data_dir>/embedded-hosts/
/// <host>-state`: its agent credential and remembered domains).
pub const STATE_DIR_SUFFIX: &str = "-state";

/// How long an embedded agent's running tasks may take to finish and report
/// at shutdown; the unfinished ones are handed back (queued again) so the
/// next start offers them.
pub const EMBEDDED_SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The agent configurations of the embedded hosts of `state` (none when disabled).
pub fn agent_configs(state: &AppState, listen: SocketAddr) -> anyhow::Result<Vec<AgentConfig>> {
    let config = &state.config.agent;
    if !config.embedded || config.embedded_hosts == 0 {
        return Ok(Vec::new());
    }
    let reachable = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let controller_url = format!("http://{}", SocketAddr::new(reachable, listen.port()));
    let dir = state.config.data_dir.join("embedded-hosts");
    std::fs::create_dir_all(&dir)?;
    let dir = std::fs::canonicalize(&dir)?;
    let mut configs = Vec::new();
    for host in config.embedded_host_names() {
        let uri = match &config.embedded_libvirt_uri {
            Some(uri) => uri.clone(),
            None => {
                let node = dir.join(format!("{host}.xml"));
                std::fs::write(
                    &node,
                    test_node_xml(config.embedded_vcpus, config.embedded_memory_mb),
                )?;
                format!("test://{}", node.display())
            }
        };
        let mut agent = AgentConfig::new(controller_url.clone(), host.clone());
        agent.libvirt_uri = uri;
        agent.enrollment_token = Some(state.embedded_enrollment_token.clone());
        agent.heartbeat_interval = Duration::from_secs(config.heartbeat_seconds.max(1));
        agent.host_ip = Some(reachable.to_string());
        // The size of a test-driver host is the configuration's; a real
        // hypervisor reports its own disk (the instances' filesystem).
        if agent.libvirt_uri.starts_with("test:") {
            agent.libvirt.disk_gb = Some(config.embedded_disk_gb);
        }
        agent.libvirt.test_guest_archs = config.embedded_guest_archs.clone();
        agent.libvirt.serial_console = config
            .embedded_serial_console
            .then(novum_agent::driver::SerialConsoleOptions::default);
        agent.libvirt.instances_path = dir.join(&host).display().to_string();
        agent.libvirt.virt_type = config
            .embedded_virt_type
            .parse()
            .map_err(|e: String| anyhow::anyhow!("[agent] embedded_virt_type: {e}"))?;
        // Like a standalone agent's `--state-dir`: the credential and, on the
        // test driver (whose domains die with this process), the domains, so
        // that a restarted controller finds its servers where they were.
        let state_dir = dir.join(format!("{host}{STATE_DIR_SUFFIX}"));
        agent.libvirt.domain_store = domain_store_dir(Some(&state_dir), &agent.libvirt_uri);
        agent.state_dir = Some(state_dir);
        agent.shutdown_grace = EMBEDDED_SHUTDOWN_GRACE;
        configs.push(agent);
    }
    Ok(configs)
}

/// The running embedded agents.
#[derive(Debug, Default)]
pub struct EmbeddedAgents {
    /// Their host names.
    pub hosts: Vec<String>,
    /// Their tasks, each ending when its agent has stopped.
    pub handles: Vec<JoinHandle<()>>,
}

/// Starts the embedded agents; each stops when `stop` turns true.
pub fn start_agents(
    state: &AppState,
    listen: SocketAddr,
    stop: watch::Receiver<bool>,
) -> EmbeddedAgents {
    let configs = match agent_configs(state, listen) {
        Ok(configs) => configs,
        Err(error) => {
            tracing::error!(%error, "cannot prepare the embedded compute agents");
            return EmbeddedAgents::default();
        }
    };
    let hosts = configs.iter().map(|config| config.host.clone()).collect();
    let handles = configs
        .into_iter()
        .map(|config| {
            let host = config.host.clone();
            let stop = crate::server::stopped(stop.clone());
            tokio::spawn(async move {
                tracing::info!(%host, "starting embedded compute agent");
                if let Err(error) = novum_agent::run_agent(config, stop).await {
                    tracing::error!(%host, %error, "embedded compute agent stopped");
                }
            })
        })
        .collect();
    EmbeddedAgents { hosts, handles }
}
