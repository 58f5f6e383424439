//! `novum-agent`: the compute agent of one hypervisor host.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use novum_agent::agent::{
    DEFAULT_FIREWALL_INTERVAL, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_LIBVIRT_URI, DEFAULT_POLL_WAIT,
    DEFAULT_RECONCILE_INTERVAL,
};
use novum_agent::driver::{
    DEFAULT_CLEAN_SHUTDOWN_TIMEOUT, DEFAULT_INTERFACE_DETACH_TIMEOUT, LibvirtOptions,
    SerialConsoleOptions, VirtType,
};
use novum_agent::{AgentConfig, run_agent};
use tracing_subscriber::EnvFilter;

/// Run the novum compute agent for this hypervisor.
#[derive(Debug, Parser)]
#[command(name = "novum-agent", version, about)]
struct Args {
    /// Base URL of the novum controller; several controllers on one
    /// database: repeat the option or separate the URLs with commas (calls
    /// fail over from one to the next).
    #[arg(
        long,
        env = "NOVUM_CONTROLLER",
        value_name = "URL",
        value_delimiter = ',',
        required = true
    )]
    controller: Vec<String>,
    /// Host name of this compute service (default: the machine's hostname).
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
    /// libvirt URI (`test:///default`, `test:///abs/node.xml`, `qemu:///system`).
    #[arg(long, default_value = DEFAULT_LIBVIRT_URI)]
    libvirt_uri: String,
    /// Enrollment token for registering with the controller.
    #[arg(long, env = "NOVUM_AGENT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = DEFAULT_HEARTBEAT_INTERVAL.as_secs())]
    heartbeat_seconds: u64,
    /// Seconds one task long-poll waits on the controller.
    #[arg(long, default_value_t = DEFAULT_POLL_WAIT.as_secs())]
    poll_seconds: u64,
    /// Seconds between power-state samples.
    #[arg(long, default_value_t = DEFAULT_RECONCILE_INTERVAL.as_secs())]
    reconcile_seconds: u64,
    /// Directory keeping the agent's credential across restarts.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Host IP to report (default: the address used to reach the controller).
    #[arg(long)]
    host_ip: Option<String>,
    /// Directory of instance disks.
    #[arg(long, default_value = novum_agent::driver::DEFAULT_INSTANCES_PATH)]
    instances_path: String,
    /// Storage pool whose capacity is reported as disk (default: first active pool).
    #[arg(long)]
    storage_pool: Option<String>,
    /// Disk size in GB to report instead of the storage pool's capacity.
    #[arg(long)]
    disk_gb: Option<u64>,
    /// Seconds a clean shutdown may take before the domain is stopped hard.
    #[arg(long, default_value_t = DEFAULT_CLEAN_SHUTDOWN_TIMEOUT.as_secs())]
    shutdown_timeout_seconds: u64,
    /// Seconds a guest may take to release a hot-unplugged interface.
    #[arg(long, default_value_t = DEFAULT_INTERFACE_DETACH_TIMEOUT.as_secs())]
    interface_detach_timeout_seconds: u64,
    /// Accelerator of real guests (Nova's `[libvirt] virt_type`): `kvm`,
    /// `qemu` (TCG emulation), or `auto` (KVM when a probe guest runs under
    /// it, else `qemu`).
    #[arg(long, default_value = "auto")]
    virt_type: VirtType,
    /// On libvirt's test driver only: guest architectures the fake host
    /// reports on top of the test driver's `i686` (repeatable).
    #[arg(long = "test-guest-arch")]
    test_guest_archs: Vec<String>,
    /// Give each guest a serial console on a TCP port, for the controller's
    /// console proxy (Nova's `[serial_console] enabled`).
    #[arg(long)]
    serial_console: bool,
    /// Address the guests' serial consoles listen on (Nova's
    /// `[serial_console] serialproxy_host` of the compute host); a
    /// controller on another machine needs an address it reaches.
    #[arg(long, default_value = novum_agent::driver::DEFAULT_SERIAL_LISTEN)]
    serial_listen: String,
    /// Address the controller's console proxy connects to (Nova's
    /// `proxyclient_address`); default: the listen address, or the host's
    /// IP (`--host-ip`, else the one towards the controller) when that is
    /// `0.0.0.0`/`::`.
    #[arg(long)]
    serial_proxyclient_address: Option<String>,
    /// Ports the serial consoles may take, `<first>:<last>` (Nova's `port_range`).
    #[arg(long, default_value = "10000:20000", value_parser = novum_agent::driver::parse_port_range)]
    serial_port_range: std::ops::RangeInclusive<u16>,
    /// Seconds between refreshes of the host firewall (the security groups
    /// of this host's ports, enforced with nftables on a real hypervisor).
    #[arg(long, default_value_t = DEFAULT_FIREWALL_INTERVAL.as_secs())]
    firewall_seconds: u64,
    /// The most a live migration from this host may send, MiB/s (Nova's
    /// `[libvirt] live_migration_bandwidth`); 0: as fast as the link goes.
    #[arg(long, value_name = "MIB_PER_SECOND", default_value_t = 0)]
    live_migration_bandwidth: u64,
    /// Simulate a fleet of this many hosts in this one process, for
    /// benchmarks and scale tests: each is a full agent (registration,
    /// heartbeats, long polls, tasks) on an in-memory hypervisor, named
    /// `--host` followed by its number (`sim-0001` …), a hundred hosts to
    /// one HTTP/2 connection. No libvirt is opened.
    #[arg(long, value_name = "N")]
    simulate: Option<usize>,
    /// CPUs of each simulated host.
    #[arg(long, default_value_t = 64, requires = "simulate")]
    simulate_vcpus: u32,
    /// Memory of each simulated host, MiB.
    #[arg(long, default_value_t = 262_144, requires = "simulate")]
    simulate_memory_mb: u64,
    /// Disk of each simulated host, GiB.
    #[arg(long, default_value_t = 4_000, requires = "simulate")]
    simulate_disk_gb: u64,
    /// How long a simulated spawn takes, milliseconds.
    #[arg(long, default_value_t = 0, requires = "simulate")]
    simulate_spawn_ms: u64,
    /// Seconds over which the simulated hosts start (their registrations
    /// spread over it).
    #[arg(long, default_value_t = 10, requires = "simulate")]
    simulate_ramp_seconds: u64,
}

/// Runs `--simulate N` hosts named after `prefix` until a signal.
async fn simulate(args: Args, hosts: usize, prefix: String) -> anyhow::Result<()> {
    let options = novum_agent::fleet::FleetOptions {
        controller_url: args.controller.join(","),
        prefix,
        hosts,
        host: novum_agent::driver::SimulatedHost {
            hostname: String::new(),
            vcpus: args.simulate_vcpus,
            memory_mb: args.simulate_memory_mb,
            disk_gb: args.simulate_disk_gb,
            spawn_delay: Duration::from_millis(args.simulate_spawn_ms),
        },
        enrollment_token: args.token,
        heartbeat_interval: Duration::from_secs(args.heartbeat_seconds.max(1)),
        poll_wait: Duration::from_secs(args.poll_seconds),
        reconcile_interval: Duration::from_secs(args.reconcile_seconds.max(1)),
        state_dir: args.state_dir,
        host_ip: args.host_ip.unwrap_or_else(|| "127.0.0.1".to_string()),
        ramp: Duration::from_secs(args.simulate_ramp_seconds),
    };
    novum_agent::fleet::run_fleet(options, shutdown_signal())
        .await
        .context("the simulated fleet stopped")
}

fn hostname() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("reading the hostname; pass --host")?;
    Ok(name.trim().to_string())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    if let Some(hosts) = args.simulate {
        let prefix = args.host.clone().unwrap_or_else(|| "sim-".to_string());
        return simulate(args, hosts, prefix).await;
    }
    let host = match args.host {
        Some(host) => host,
        None => hostname()?,
    };
    if args.state_dir.is_none() {
        tracing::warn!("no --state-dir: the agent credential is not kept across restarts");
    }
    // The test driver's hypervisor dies with this process: keep its domains
    // in the state directory so that a restarted agent finds them again.
    let domain_store =
        novum_agent::driver::domain_store_dir(args.state_dir.as_deref(), &args.libvirt_uri);
    let config = AgentConfig {
        libvirt_uri: args.libvirt_uri,
        enrollment_token: args.token,
        heartbeat_interval: Duration::from_secs(args.heartbeat_seconds.max(1)),
        poll_wait: Duration::from_secs(args.poll_seconds),
        reconcile_interval: Duration::from_secs(args.reconcile_seconds.max(1)),
        state_dir: args.state_dir,
        host_ip: args.host_ip,
        libvirt: LibvirtOptions {
            instances_path: args.instances_path,
            storage_pool: args.storage_pool,
            disk_gb: args.disk_gb,
            hypervisor_hostname: None,
            clean_shutdown_timeout: Duration::from_secs(args.shutdown_timeout_seconds),
            test_guest_archs: args.test_guest_archs,
            domain_store,
            interface_detach_timeout: Duration::from_secs(args.interface_detach_timeout_seconds),
            virt_type: args.virt_type,
            serial_console: args.serial_console.then_some(SerialConsoleOptions {
                listen: args.serial_listen,
                proxyclient_address: args.serial_proxyclient_address,
                port_range: args.serial_port_range,
            }),
            live_migration_bandwidth: (args.live_migration_bandwidth > 0)
                .then_some(args.live_migration_bandwidth),
        },
        firewall_interval: Duration::from_secs(args.firewall_seconds.max(1)),
        ..AgentConfig::new(args.controller.join(","), host)
    };
    run_agent(config, shutdown_signal())
        .await
        .context("the agent stopped")
}
