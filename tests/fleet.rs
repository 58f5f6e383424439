//! A small fleet of compute hosts on this machine, one network namespace
//! each, for tests that need several real hosts.
//!
//! [`Fleet::start`] makes a Linux bridge in the root namespace with an
//! address from `10.251.<k>.0/24` (`k` chosen free, the bridge's creation
//! claiming it, so parallel tests and processes do not collide), one
//! `ip netns` per host joined to the bridge by a veth pair, the real
//! `novum serve` (embedded agents off) listening on the bridge address, and
//! in each namespace a standalone `novum-agent` on libvirt's test driver
//! (its own node file, state directory and `--host-ip`) that enrolls with
//! the controller's enrollment token and registers over HTTP. Dropping the
//! [`Fleet`] kills the agents and the controller, then deletes the
//! namespaces (and with them the veths) and the bridge, also when the test
//! panicked. Traffic goes only to loopback, the bridge and the namespaces
//! made here.
//!
//! Namespaces need root and `ip` (iproute2): [`unavailable`] says why a
//! fleet cannot be made here, for tests to print and skip.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use novum_agent::driver::{DOMAIN_STORE_DIR, DomainStore, StoredDomain};

use crate::{Cloud, binary};

/// The first two octets of every fleet's network.
const NETWORK_PREFIX: &str = "10.251";

/// Prefix of every interface and namespace a fleet makes (`nvf<k>`,
/// `nvf<k>h<i>`, `nvf<k>h<i>r`).
const NAME_PREFIX: &str = "nvf";

/// Host octets of the hosts' addresses: host `i` is `.<FIRST_HOST_OCTET + i>`.
const FIRST_HOST_OCTET: usize = 10;

/// The largest fleet one bridge holds here.
pub const MAX_HOSTS: usize = 50;

/// The agents' intervals: short, so tests see changes within a second or two.
const AGENT_TIMING: [&str; 8] = [
    "--heartbeat-seconds",
    "1",
    "--poll-seconds",
    "5",
    "--reconcile-seconds",
    "1",
    "--shutdown-timeout-seconds",
    "2",
];

/// Why a fleet cannot be made on this machine (not root, no `ip`), or
/// `None` when it can.
pub fn unavailable() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective_uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("unknown");
    if effective_uid != "0" {
        return Some(format!(
            "network namespaces need root (effective uid {effective_uid})"
        ));
    }
    match Command::new("ip").arg("-V").output() {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!("`ip -V` failed: {}", output.status)),
        Err(error) => Some(format!("`ip` (iproute2) is missing: {error}")),
    }
}

/// The size of one fleet host's fake hypervisor.
#[derive(Clone, Copy, Debug)]
pub struct HostSize {
    /// vCPUs of its node file.
    pub vcpus: u32,
    /// Memory, MiB.
    pub memory_mb: u64,
    /// Disk it reports, GB.
    pub disk_gb: u64,
}

impl Default for HostSize {
    fn default() -> Self {
        Self {
            vcpus: 4,
            memory_mb: 8_192,
            disk_gb: 40,
        }
    }
}

/// Runs `ip ARGS`; an error with its stderr when it fails.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    anyhow::ensure!(
        output.status.success(),
        "ip {} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// `ip ARGS`'s standard output ("" when it fails).
fn ip_output(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default()
}

/// The bridge, namespaces and veths of one fleet; deleted on drop.
struct FleetNetwork {
    /// `k` of `10.251.<k>.0/24`.
    subnet: u32,
    bridge: String,
    namespaces: Vec<String>,
}

/// Fleets made by this process so far, to spread the first `k` tried.
static FLEETS_MADE: AtomicU32 = AtomicU32::new(0);

impl FleetNetwork {
    /// Claims a free `k` by creating its bridge, and addresses it.
    fn create() -> anyhow::Result<Self> {
        let seed = std::process::id() + 97 * FLEETS_MADE.fetch_add(1, Ordering::Relaxed);
        let addresses = ip_output(&["-o", "-4", "addr", "show"]);
        for attempt in 0..240 {
            let subnet = 10 + (seed + attempt) % 240;
            let bridge = format!("{NAME_PREFIX}{subnet}");
            let network = format!("{NETWORK_PREFIX}.{subnet}.");
            // In use here already (another fleet, or anything else)?
            if addresses.contains(&network)
                || !ip_output(&["-4", "route", "show", &format!("{network}0/24")])
                    .trim()
                    .is_empty()
            {
                continue;
            }
            // Creating the bridge is the claim: it fails when another fleet
            // took this name first.
            if ip(&["link", "add", &bridge, "type", "bridge"]).is_err() {
                continue;
            }
            let network = Self {
                subnet,
                bridge,
                namespaces: Vec::new(),
            };
            ip(&[
                "addr",
                "add",
                &format!("{}/24", network.gateway()),
                "dev",
                &network.bridge,
            ])?;
            ip(&["link", "set", &network.bridge, "up"])?;
            return Ok(network);
        }
        anyhow::bail!("no free {NETWORK_PREFIX}.<k>.0/24 for a fleet bridge")
    }

    /// The bridge's address, where the controller listens.
    fn gateway(&self) -> String {
        format!("{NETWORK_PREFIX}.{}.1", self.subnet)
    }

    /// Makes namespace `index` with its veth into the bridge and its
    /// address; returns (namespace, address).
    fn add_host(&mut self, index: usize) -> anyhow::Result<(String, String)> {
        let namespace = format!("{}h{index}", self.bridge);
        // A namespace left by a killed run under the name this fleet now owns.
        let _ = ip(&["netns", "delete", &namespace]);
        ip(&["netns", "add", &namespace])?;
        self.namespaces.push(namespace.clone());
        let outside = format!("{namespace}r"); // what `drop` deletes
        let inside = format!("{namespace}n");
        ip(&[
            "link", "add", &outside, "type", "veth", "peer", "name", &inside, "netns", &namespace,
        ])?;
        ip(&["link", "set", &outside, "master", &self.bridge, "up"])?;
        let address = format!(
            "{NETWORK_PREFIX}.{}.{}",
            self.subnet,
            FIRST_HOST_OCTET + index
        );
        ip(&["-n", &namespace, "link", "set", &inside, "name", "eth0"])?;
        ip(&[
            "-n",
            &namespace,
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &namespace, "link", "set", "eth0", "up"])?;
        ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
        Ok((namespace, address))
    }
}

impl Drop for FleetNetwork {
    fn drop(&mut self) {
        for namespace in &self.namespaces {
            // The pair goes with either end, at once; a namespace's deletion
            // would take its end only when the kernel frees the namespace,
            // later.
            let _ = ip(&["link", "delete", &format!("{namespace}r")]);
            if let Err(error) = ip(&["netns", "delete", namespace]) {
                eprintln!("fleet teardown: {error}");
            }
        }
        if let Err(error) = ip(&["link", "delete", &self.bridge]) {
            eprintln!("fleet teardown: {error}");
        }
    }
}

/// One host of a fleet: a namespace running a `novum-agent`.
pub struct FleetHost {
    /// The compute host's name (`fleet-1`, `fleet-2`, …).
    pub name: String,
    /// Its address inside its namespace (`--host-ip`).
    pub address: String,
    /// Its network namespace.
    pub namespace: String,
    /// The agent's state directory (its credential, its domain store).
    pub state_dir: PathBuf,
    log: PathBuf,
    agent: Option<Child>,
    /// How its agent is started (again, by [`FleetHost::restart_agent`]).
    start: AgentStart,
}

impl FleetHost {
    /// The domains libvirt's test driver holds on this host now, as the
    /// agent's domain store records them (written on define, removed on
    /// undefine).
    pub fn domains(&self) -> Vec<StoredDomain> {
        DomainStore::new(self.state_dir.join(DOMAIN_STORE_DIR))
            .all()
            .unwrap_or_default()
    }

    /// The domain of instance `uuid` on this host, if it has one.
    pub fn domain(&self, uuid: &str) -> Option<StoredDomain> {
        self.domains()
            .into_iter()
            .find(|domain| domain.instance.to_string() == uuid)
    }

    /// The agent's process id, while it runs.
    pub fn agent_pid(&self) -> Option<u32> {
        self.agent.as_ref().map(Child::id)
    }

    /// What the agent logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the agent (SIGKILL: the host goes silent).
    pub fn kill_agent(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = agent.kill();
            let _ = agent.wait();
        }
    }

    /// Starts the agent again as it was first started (killing it first if
    /// it runs): same namespace, address, state directory and credential,
    /// so it comes back as the same host with the domains it kept. Its log
    /// goes on in the same file.
    pub fn restart_agent(&mut self) -> anyhow::Result<()> {
        self.kill_agent();
        self.agent = Some(start_agent(&self.start)?);
        Ok(())
    }
}

impl Drop for FleetHost {
    fn drop(&mut self) {
        self.kill_agent();
        if std::thread::panicking() {
            eprintln!("novum-agent {} log:\n{}", self.name, self.log());
        }
    }
}

/// A controller and its namespaced hosts. Fields drop in order: agents,
/// controller, network.
pub struct Fleet {
    /// The hosts, `fleet-1` first.
    pub hosts: Vec<FleetHost>,
    /// The controller, listening on the bridge's address.
    pub cloud: Cloud,
    network: FleetNetwork,
}

impl Fleet {
    /// Brings up a fleet named `name` of one host per entry of `sizes`;
    /// returns once every host's hypervisor is up. `extra_config` is added
    /// to the controller's configuration inside its `[agent]` table
    /// (embedded agents off, 1 s heartbeats): keys for other sections come
    /// after their own table header.
    pub fn start(name: &str, sizes: &[HostSize], extra_config: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            sizes.len() <= MAX_HOSTS,
            "a fleet has at most {MAX_HOSTS} hosts"
        );
        let agent_binary = binary("novum-agent");
        anyhow::ensure!(
            agent_binary.exists(),
            "{} is missing: build it (cargo build -p novum-agent)",
            agent_binary.display()
        );
        let mut network = FleetNetwork::create()?;
        let cloud = Cloud::start_on(
            &format!("{name}-{}", network.subnet),
            &network.gateway(),
            &format!("[agent]\nembedded = false\nheartbeat_seconds = 1\n{extra_config}"),
        )?;
        let enrollment = std::fs::read_to_string(cloud.data_dir.join("agent-enrollment-token"))
            .context("the controller's enrollment token")?;
        let mut hosts = Vec::with_capacity(sizes.len());
        for (index, size) in sizes.iter().enumerate() {
            let (namespace, address) = network.add_host(index)?;
            let host_name = format!("fleet-{}", index + 1);
            let state_dir = cloud.data_dir.join(format!("{host_name}-state"));
            std::fs::create_dir_all(&state_dir)?;
            let node = cloud.data_dir.join(format!("{host_name}-node.xml"));
            std::fs::write(
                &node,
                novum_agent::driver::test_node_xml(size.vcpus, size.memory_mb),
            )?;
            let log = cloud.data_dir.join(format!("{host_name}.log"));
            let start = AgentStart {
                binary: agent_binary.clone(),
                namespace: namespace.clone(),
                controller: cloud.url.clone(),
                host: host_name.clone(),
                address: address.clone(),
                node,
                state_dir: state_dir.clone(),
                disk_gb: size.disk_gb,
                token: enrollment.trim().to_string(),
                log: log.clone(),
            };
            let agent = start_agent(&start)?;
            hosts.push(FleetHost {
                name: host_name,
                address,
                namespace,
                state_dir,
                log,
                agent: Some(agent),
                start,
            });
        }
        let fleet = Self {
            hosts,
            cloud,
            network,
        };
        fleet.wait_for_hosts(Duration::from_secs(60))?;
        Ok(fleet)
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&FleetHost> {
        self.hosts.iter().find(|host| host.name == name)
    }

    /// The bridge's address (the controller's).
    pub fn gateway(&self) -> String {
        self.network.gateway()
    }

    /// The bridge's name (`nvf<k>`).
    pub fn bridge(&self) -> &str {
        &self.network.bridge
    }

    /// Waits until every host's hypervisor is listed `up` with its address.
    fn wait_for_hosts(&self, timeout: Duration) -> anyhow::Result<()> {
        let token = self.cloud.admin_token()?;
        let began = Instant::now();
        loop {
            let (status, body) = self.cloud.compute(
                &token,
                reqwest::Method::GET,
                "/os-hypervisors/detail",
                None,
                "2.53",
            )?;
            anyhow::ensure!(status == 200, "os-hypervisors answered {status}: {body}");
            let listed = body["hypervisors"].as_array().cloned().unwrap_or_default();
            let up = |host: &FleetHost| {
                listed.iter().any(|hypervisor| {
                    hypervisor["service"]["host"] == host.name.as_str()
                        && hypervisor["state"] == "up"
                        && hypervisor["host_ip"] == host.address.as_str()
                })
            };
            if self.hosts.iter().all(up) {
                return Ok(());
            }
            if began.elapsed() > timeout {
                let logs: Vec<String> = self
                    .hosts
                    .iter()
                    .map(|host| format!("{}:\n{}", host.name, host.log()))
                    .collect();
                anyhow::bail!(
                    "the fleet's hosts did not come up within {timeout:?}: {body}\n{}",
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// How one host's agent is started.
struct AgentStart {
    binary: PathBuf,
    namespace: String,
    controller: String,
    host: String,
    address: String,
    node: PathBuf,
    state_dir: PathBuf,
    disk_gb: u64,
    token: String,
    log: PathBuf,
}

/// Starts `novum-agent` inside its namespace (`ip netns exec` execs it, so
/// the child is the agent itself).
fn start_agent(start: &AgentStart) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&start.log)?;
    Command::new("ip")
        .args(["netns", "exec", &start.namespace])
        .arg(&start.binary)
        .arg("--controller")
        .arg(&start.controller)
        .args(["--host", &start.host, "--host-ip", &start.address])
        .arg("--libvirt-uri")
        .arg(format!("test://{}", start.node.display()))
        .arg("--state-dir")
        .arg(&start.state_dir)
        .arg("--instances-path")
        .arg(start.state_dir.join("instances"))
        .args(["--disk-gb", &start.disk_gb.to_string()])
        .args(AGENT_TIMING)
        .args(["--token", &start.token])
        .env("RUST_LOG", "info")
        .env_remove("NOVUM_AGENT_TOKEN")
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("starting novum-agent in {}", start.namespace))
}
