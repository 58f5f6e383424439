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
//! A host may instead run real guests ([`Hypervisor::Libvirtd`]): its own
//! `libvirtd` ([`Libvirtd`]) in the host's network namespace and in mount
//! and UTS namespaces of its own (its own host name and run, state, cache, log and config
//! directories, its own host UUID, TCP listening for peer-to-peer
//! migrations, and its own instances directory at the agent's default
//! path, so that disk paths are the same on every host as libvirt's
//! migration needs), and the agent entering both namespaces, so that its
//! `qemu:///system`, instances and image cache are that host's.
//! [`Fleet::span_bridge`] joins a bridge of every host to one layer-2
//! segment with a peer namespace on it, for a guest network that spans the
//! hosts.
//!
//! Namespaces need root and `ip` (iproute2): [`unavailable`] says why a
//! fleet cannot be made here, for tests to print and skip;
//! [`libvirtd_unavailable`] why hosts of real guests cannot.

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

/// Why hosts of real guests cannot be made on this machine (no fleet, no
/// `libvirtd`, `virsh`, QEMU, `unshare` or `nsenter`), or `None` when
/// they can.
pub fn libvirtd_unavailable() -> Option<String> {
    if let Some(reason) = unavailable() {
        return Some(reason);
    }
    for binary in [
        "libvirtd",
        "virsh",
        "qemu-system-x86_64",
        "unshare",
        "nsenter",
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {binary}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !found {
            return Some(format!("no {binary} on this machine"));
        }
    }
    None
}

/// Runs `program ARGS`; its standard output, or an error with its stderr.
fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{program} {} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A `libvirtd` of its own in a network namespace and in mount and UTS
/// namespaces of its own (its own host name, which libvirt reports as the
/// hypervisor's): `/run/libvirt`, `/var/lib/libvirt`, `/var/cache/libvirt`,
/// `/var/log/libvirt`, `/etc/libvirt` and the agent's instances directory
/// ([`novum_agent::driver::DEFAULT_INSTANCES_PATH`]) are bind mounts of
/// directories under its root, its host UUID is its own, it listens on TCP
/// (no authentication: only inside its namespace) for peer-to-peer
/// migrations, QEMU runs as root and writes its consoles itself (no
/// `virtlogd`). Dropping it destroys its domains (their QEMU processes
/// would outlive the daemon) and stops it.
pub struct Libvirtd {
    root: PathBuf,
    pid: u32,
}

impl Libvirtd {
    /// Starts a daemon in namespace `namespace` with its directories under
    /// `root` (made here) and host name `hostname` (a UTS namespace of its
    /// own: libvirt reports it as the hypervisor's host name); returns once
    /// its socket is there.
    pub fn start(namespace: &str, root: PathBuf, hostname: &str) -> anyhow::Result<Self> {
        for sub in ["run", "lib", "cache", "log", "etc", "instances"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        // QEMU's capabilities as an earlier daemon probed them (8 s saved;
        // libvirt probes again when they do not fit this QEMU or libvirt).
        copy_files(&capabilities_cache(), &root.join(CAPABILITIES))?;
        std::fs::write(
            root.join("etc/libvirtd.conf"),
            format!(
                "listen_tls = 0\nlisten_tcp = 1\nauth_tcp = \"none\"\nhost_uuid = \"{}\"\n",
                random_uuid()?
            ),
        )?;
        std::fs::write(
            root.join("etc/qemu.conf"),
            "stdio_handler = \"file\"\nuser = \"root\"\ngroup = \"root\"\ndynamic_ownership = 0\n",
        )?;
        let instances = novum_agent::driver::DEFAULT_INSTANCES_PATH;
        let dir = root.display().to_string();
        let script = format!(
            "set -e\nhostname {hostname}\n\
             mkdir -p /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /etc/libvirt {instances}\n\
             mount --bind {dir}/run /run/libvirt\nmount --bind {dir}/lib /var/lib/libvirt\n\
             mount --bind {dir}/cache /var/cache/libvirt\nmount --bind {dir}/log /var/log/libvirt\n\
             mount --bind {dir}/etc /etc/libvirt\nmount --bind {dir}/instances {instances}\n\
             libvirtd --listen -d -p {dir}/libvirtd.pid\n"
        );
        run(
            "ip",
            &[
                "netns",
                "exec",
                namespace,
                "unshare",
                "-m",
                "-u",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
            ],
        )?;
        let pid_file = root.join("libvirtd.pid");
        let socket = root.join("run/libvirt-sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pid = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|text| text.trim().parse::<u32>().ok());
            if let Some(pid) = pid
                && socket.exists()
            {
                return Ok(Self { root, pid });
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "libvirtd in {namespace} made no socket within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its URI from outside its mount namespace (through its socket).
    pub fn uri(&self) -> String {
        format!(
            "qemu+unix:///system?socket={}",
            self.root.join("run/libvirt-sock").display()
        )
    }

    /// The directory its run, state, cache, log, config and instances
    /// directories are under (its `/run/libvirt` is `<root>/run`).
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// The daemon's process id (its namespaces are the host's).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What its host sees as the agent's instances directory.
    pub fn instances_dir(&self) -> PathBuf {
        self.root.join("instances")
    }

    /// `virsh -c <its uri> ARGS`: the standard output, or an error.
    pub fn virsh(&self, args: &[&str]) -> anyhow::Result<String> {
        let uri = self.uri();
        run("virsh", &[&["-c", uri.as_str()][..], args].concat())
    }

    /// The UUIDs of its domains, running or defined.
    pub fn domains(&self) -> Vec<String> {
        self.virsh(&["list", "--all", "--uuid"])
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// A command that runs `program` in the daemon's network, mount and
    /// UTS namespaces (`nsenter` execs it: the child is the program itself).
    pub fn command(&self, program: &std::path::Path) -> Command {
        nsenter(self.pid, program)
    }
}

impl Drop for Libvirtd {
    fn drop(&mut self) {
        for domain in self.domains() {
            let _ = self.virsh(&["destroy", &domain]);
        }
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
        let gone = Instant::now() + Duration::from_secs(10);
        while alive(self.pid) && Instant::now() < gone {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Err(error) = copy_files(&self.root.join(CAPABILITIES), &capabilities_cache()) {
            eprintln!("libvirtd teardown: keeping QEMU's capabilities: {error}");
        }
    }
}

/// Where libvirt caches QEMU's capabilities, under a daemon's root.
const CAPABILITIES: &str = "cache/qemu/capabilities";

/// The capabilities every daemon of the tests starts from.
fn capabilities_cache() -> PathBuf {
    crate::binary_dir().join("e2e-libvirt-capabilities")
}

/// Copies the files of `from` (if it exists) into `to` (made), each
/// written beside and renamed, so that a reader never sees half a file.
fn copy_files(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(());
    };
    std::fs::create_dir_all(to)?;
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let partial = to.join(format!(
            ".{}.{}",
            entry.file_name().to_string_lossy(),
            std::process::id()
        ));
        std::fs::copy(entry.path(), &partial)?;
        std::fs::rename(&partial, to.join(entry.file_name()))?;
    }
    Ok(())
}

/// Whether process `pid` runs (neither gone nor a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some(state != "Z")
        })
        .unwrap_or(false)
}

/// A command running `program` in the network, mount and UTS namespaces
/// of process `pid`.
fn nsenter(pid: u32, program: &std::path::Path) -> Command {
    let mut command = Command::new("nsenter");
    command
        .args(["-t", &pid.to_string(), "-n", "-m", "-u", "--"])
        .arg(program);
    command
}

/// A random UUID (the daemons' host UUIDs), from the kernel.
fn random_uuid() -> anyhow::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .context("a random UUID from the kernel")?
        .trim()
        .to_string())
}

/// What a fleet host's agent drives.
#[derive(Clone, Copy, Debug)]
pub enum Hypervisor {
    /// libvirt's test driver, a fake host of this size.
    Test(HostSize),
    /// Real guests (QEMU, TCG) on a [`Libvirtd`] of the host's own, the
    /// agent reporting `disk_gb` of disk.
    Libvirtd {
        /// Disk the agent reports, GB.
        disk_gb: u64,
        /// The agent's `--live-migration-bandwidth`, MiB/s (0: unbounded).
        live_migration_mib_s: u64,
    },
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
    /// Segments made by [`Fleet::span_bridge`] so far.
    segments: usize,
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
                segments: 0,
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

impl FleetNetwork {
    /// Joins bridge `bridge` of each of `hosts` (namespaces; the bridge is
    /// made where it is missing) to a new layer-2 segment: a bridge in a
    /// new peer namespace with address `peer_cidr`, one veth pair per host.
    /// Returns the peer namespace.
    fn add_segment(
        &mut self,
        bridge: &str,
        peer_cidr: &str,
        hosts: &[String],
    ) -> anyhow::Result<String> {
        let n = self.segments;
        self.segments += 1;
        let peer = format!("{}p{n}", self.bridge);
        let _ = ip(&["netns", "delete", &peer]);
        ip(&["netns", "add", &peer])?;
        self.namespaces.push(peer.clone());
        ip(&["-n", &peer, "link", "set", "lo", "up"])?;
        ip(&["-n", &peer, "link", "add", "segment", "type", "bridge"])?;
        ip(&["-n", &peer, "addr", "add", peer_cidr, "dev", "segment"])?;
        ip(&["-n", &peer, "link", "set", "segment", "up"])?;
        for (index, namespace) in hosts.iter().enumerate() {
            if ip(&["-n", namespace, "link", "show", bridge]).is_err() {
                ip(&["-n", namespace, "link", "add", bridge, "type", "bridge"])?;
            }
            ip(&["-n", namespace, "link", "set", bridge, "up"])?;
            // Both ends are made in the peer namespace (no name of the
            // root namespace is taken), then one moves to the host.
            let (host_end, peer_end) = (format!("s{n}h{index}"), format!("s{n}p{index}"));
            ip(&[
                "-n", &peer, "link", "add", &host_end, "type", "veth", "peer", "name", &peer_end,
            ])?;
            ip(&[
                "-n", &peer, "link", "set", &peer_end, "master", "segment", "up",
            ])?;
            ip(&["-n", &peer, "link", "set", &host_end, "netns", namespace])?;
            ip(&[
                "-n", namespace, "link", "set", &host_end, "master", bridge, "up",
            ])?;
        }
        Ok(peer)
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

/// One host of a fleet: a namespace running a `novum-agent` (and, for
/// real guests, its own `libvirtd`).
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
    /// Its own daemon, when it runs real guests (dropped after the agent).
    pub libvirtd: Option<Libvirtd>,
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

    /// The directory of its instances' files (disks, config drives,
    /// consoles), as seen from outside its namespaces.
    pub fn instances_dir(&self) -> PathBuf {
        match &self.libvirtd {
            Some(daemon) => daemon.instances_dir(),
            None => self.state_dir.join("instances"),
        }
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
        let hosts: Vec<Hypervisor> = sizes.iter().copied().map(Hypervisor::Test).collect();
        Self::start_hosts(name, &hosts, extra_config)
    }

    /// [`Fleet::start`] with one host per entry of `hosts`, each on the
    /// hypervisor it says; real hosts wait for their daemons too.
    pub fn start_hosts(
        name: &str,
        hypervisors: &[Hypervisor],
        extra_config: &str,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            hypervisors.len() <= MAX_HOSTS,
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
        let mut hosts = Vec::with_capacity(hypervisors.len());
        for (index, hypervisor) in hypervisors.iter().enumerate() {
            let (namespace, address) = network.add_host(index)?;
            let host_name = format!("fleet-{}", index + 1);
            let state_dir = cloud.data_dir.join(format!("{host_name}-state"));
            std::fs::create_dir_all(&state_dir)?;
            let (libvirtd, libvirt_uri, disk_gb, live_migration_mib_s) = match hypervisor {
                Hypervisor::Test(size) => {
                    let node = cloud.data_dir.join(format!("{host_name}-node.xml"));
                    std::fs::write(
                        &node,
                        novum_agent::driver::test_node_xml(size.vcpus, size.memory_mb),
                    )?;
                    (None, format!("test://{}", node.display()), size.disk_gb, 0)
                }
                Hypervisor::Libvirtd {
                    disk_gb,
                    live_migration_mib_s,
                } => {
                    let daemon = Libvirtd::start(
                        &namespace,
                        cloud.data_dir.join(format!("{host_name}-libvirt")),
                        &host_name,
                    )?;
                    (
                        Some(daemon),
                        "qemu:///system".to_string(),
                        *disk_gb,
                        *live_migration_mib_s,
                    )
                }
            };
            let log = cloud.data_dir.join(format!("{host_name}.log"));
            let start = AgentStart {
                binary: agent_binary.clone(),
                namespace: namespace.clone(),
                libvirtd: libvirtd.as_ref().map(Libvirtd::pid),
                controller: cloud.url.clone(),
                host: host_name.clone(),
                address: address.clone(),
                libvirt_uri,
                state_dir: state_dir.clone(),
                disk_gb,
                live_migration_mib_s,
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
                libvirtd,
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

    /// Joins bridge `bridge` of every host (made where missing; a
    /// network's `brq…` bridge, which the agents then find there) to one
    /// layer-2 segment, with a peer namespace on it at `peer_cidr`
    /// (`192.168.7.250/24`): the provider wiring of a network that spans
    /// the hosts. Returns the peer's namespace, for pings.
    pub fn span_bridge(&mut self, bridge: &str, peer_cidr: &str) -> anyhow::Result<String> {
        let namespaces: Vec<String> = self.hosts.iter().map(|h| h.namespace.clone()).collect();
        self.network.add_segment(bridge, peer_cidr, &namespaces)
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
    /// The process id of the host's own `libvirtd`, whose network and
    /// mount namespaces the agent enters; `None`: the test driver, in the
    /// network namespace only.
    libvirtd: Option<u32>,
    controller: String,
    host: String,
    address: String,
    libvirt_uri: String,
    state_dir: PathBuf,
    disk_gb: u64,
    /// `--live-migration-bandwidth` (real hosts; 0: unbounded).
    live_migration_mib_s: u64,
    token: String,
    log: PathBuf,
}

/// Starts `novum-agent` inside its namespace(s) (`ip netns exec` and
/// `nsenter` exec it, so the child is the agent itself).
fn start_agent(start: &AgentStart) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&start.log)?;
    let mut command = match start.libvirtd {
        Some(pid) => {
            let mut command = nsenter(pid, &start.binary);
            command
                .args(["--virt-type", "qemu", "--firewall-seconds", "1"])
                .args([
                    "--live-migration-bandwidth",
                    &start.live_migration_mib_s.to_string(),
                ])
                .arg("--instances-path")
                .arg(novum_agent::driver::DEFAULT_INSTANCES_PATH);
            command
        }
        None => {
            let mut command = Command::new("ip");
            command
                .args(["netns", "exec", &start.namespace])
                .arg(&start.binary)
                .arg("--instances-path")
                .arg(start.state_dir.join("instances"));
            command
        }
    };
    command
        .arg("--controller")
        .arg(&start.controller)
        .args(["--host", &start.host, "--host-ip", &start.address])
        .args(["--libvirt-uri", &start.libvirt_uri])
        .arg("--state-dir")
        .arg(&start.state_dir)
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
