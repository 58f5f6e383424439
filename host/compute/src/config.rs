//! The compute domain's configuration sections: `[compute]` (the Compute
//! API's and the conductor's settings) and `[agent]` (how compute agents
//! enroll and the agents `novum serve` runs in-process).

use serde::Deserialize;

/// The longest `[compute] reclaim_instance_interval` accepted, seconds
/// (ten years).
pub const MAX_RECLAIM_INSTANCE_INTERVAL: u64 = 10 * 365 * 24 * 3600;

/// The longest `[compute] resize_confirm_window` accepted, seconds (ten
/// years, so the cutoff is always a representable time).
pub const MAX_RESIZE_CONFIRM_WINDOW: u64 = MAX_RECLAIM_INSTANCE_INTERVAL;

/// `[compute]`
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComputeConfig {
    /// The availability zone of hosts in no zone aggregate.
    pub default_availability_zone: String,
    /// Seconds without a heartbeat after which a compute service is down.
    pub service_down_time: u64,
    /// The largest `limit` a list accepts.
    pub max_limit: usize,
    /// Initial CPU allocation ratio of new compute nodes.
    pub cpu_allocation_ratio: f64,
    /// Initial RAM allocation ratio of new compute nodes.
    pub ram_allocation_ratio: f64,
    /// Initial disk allocation ratio of new compute nodes.
    pub disk_allocation_ratio: f64,
    /// Memory (MB) kept back for the hypervisor on every compute node.
    pub reserved_host_memory_mb: i64,
    /// Seconds an agent holds a task before it is offered again.
    pub task_lease_seconds: u64,
    /// Seconds after which an unfinished task fails (so nothing stays in a
    /// transitional state forever).
    pub task_timeout_seconds: u64,
    /// Seconds between sweeps for expired leases and timed-out tasks.
    pub reaper_interval_seconds: u64,
    /// Create Nova's default flavors (m1.tiny … m1.xlarge) at first start.
    pub default_flavors: bool,
    /// Seconds after which a resize or cold migration left awaiting
    /// confirmation (VERIFY_RESIZE) is confirmed automatically by the
    /// reaper (Nova's `resize_confirm_window`); 0 (the default): never.
    pub resize_confirm_window: u64,
    /// Let a resize land on the instance's own host (Nova's option of that
    /// name; Nova defaults to false, devstack and novum's all-in-one to true,
    /// so that a one-host cloud can resize).
    pub allow_resize_to_same_host: bool,
    /// Give every instance a config drive, whether or not its create asked
    /// for one (Nova's option of that name).
    pub force_config_drive: bool,
    /// How long an API request waits for a compute agent's answer to a
    /// call (console output, serial console), seconds (Nova's
    /// `rpc_response_timeout`); then 504.
    pub agent_call_timeout_seconds: u64,
    /// How long a console URL's token stays valid, seconds (Nova's
    /// `[consoleauth] token_ttl`).
    pub console_token_ttl_seconds: u64,
    /// Soft delete (Nova's `reclaim_instance_interval`, seconds): when
    /// above 0, deleting a server that runs on a host powers it off into
    /// SOFT_DELETED, from which `restore` brings it back, and a periodic
    /// task deletes it for good once it has been soft-deleted this long
    /// (the task runs this often). 0 (the default): deletes are immediate.
    pub reclaim_instance_interval: u64,
    /// Base of the serial console URLs handed out (Nova's `[serial_console]
    /// base_url`), e.g. `wss://cloud.example.com/serial-console`; default:
    /// the controller's public URL with `ws`/`wss` and `/serial-console`.
    pub serial_console_base_url: Option<String>,
    /// Audit every completed period's instance usage per host, sending
    /// `instance.exists` and recording the run for
    /// `os-instance_usage_audit_log` (Nova's `instance_usage_audit`).
    pub instance_usage_audit: bool,
    /// The audit period: `hour`, `day`, `month` or `year`, with an optional
    /// `@offset` (`month@15`, `day@18`) (Nova's
    /// `instance_usage_audit_period`).
    pub instance_usage_audit_period: String,
    /// Seconds a SHELVED instance stays on its host before it is offloaded
    /// (Nova's `shelved_offload_time`): 0 offloads at once as part of the
    /// shelve, -1 never (only `shelveOffload` does).
    pub shelved_offload_time: i64,
    /// Seconds between the sweeps that offload SHELVED instances older than
    /// `shelved_offload_time` (Nova's `shelved_poll_interval`).
    pub shelved_poll_interval_seconds: u64,
    /// Show the administrator password in the answers of a server create,
    /// rebuild and rescue (`adminPass`; Nova's `[api]
    /// enable_instance_password`, default true).
    pub enable_instance_password: bool,
}

impl ComputeConfig {
    /// The audit period, when `instance_usage_audit_period` is valid.
    pub fn audit_period(&self) -> Option<crate::conductor::usage_audit::AuditPeriod> {
        self.instance_usage_audit_period.parse().ok()
    }
}

impl Default for ComputeConfig {
    fn default() -> Self {
        Self {
            default_availability_zone: "nova".to_string(),
            service_down_time: 60,
            max_limit: 1000,
            cpu_allocation_ratio: 4.0,
            ram_allocation_ratio: 1.0,
            disk_allocation_ratio: 1.0,
            reserved_host_memory_mb: 512,
            task_lease_seconds: 300,
            task_timeout_seconds: 900,
            reaper_interval_seconds: 5,
            default_flavors: true,
            resize_confirm_window: 0,
            allow_resize_to_same_host: true,
            force_config_drive: false,
            agent_call_timeout_seconds: 30,
            console_token_ttl_seconds: 600,
            reclaim_instance_interval: 0,
            serial_console_base_url: None,
            instance_usage_audit: false,
            instance_usage_audit_period: "month".to_string(),
            shelved_offload_time: 0,
            shelved_poll_interval_seconds: 3600,
            enable_instance_password: true,
        }
    }
}

/// `[agent]`: how compute agents enroll, and the agents `novum serve` runs
/// in-process in the all-in-one setup.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// The enrollment token agents register with; default: generated into
    /// `<data_dir>/agent-enrollment-token` at first start.
    pub enrollment_token: Option<String>,
    /// Heartbeat interval asked of agents, seconds: how often an agent
    /// looks at its inventory and power states, and reports them when
    /// they changed (a change of power state is reported at once); an idle
    /// agent sends a full report only every tenth interval (its
    /// `full_report_every`), or when no other request of it went for an
    /// interval. Liveness does not wait for it: every request of an agent,
    /// its long polls (one at least every `max_poll_wait_seconds`) above
    /// all, keeps its service up.
    pub heartbeat_seconds: u64,
    /// Longest long-poll wait the controller grants, seconds.
    pub max_poll_wait_seconds: u64,
    /// Run compute agents inside `novum serve` (libvirt test driver).
    pub embedded: bool,
    /// How many embedded agents (hosts `<embedded_host_prefix>1`, `2`, …).
    pub embedded_hosts: u32,
    /// Host name prefix of the embedded agents.
    pub embedded_host_prefix: String,
    /// vCPUs of each embedded host on libvirt's test driver (a real
    /// hypervisor reports its own).
    pub embedded_vcpus: u32,
    /// Memory (MiB) of each embedded host on the test driver.
    pub embedded_memory_mb: u64,
    /// Disk (GiB) of each embedded host on the test driver.
    pub embedded_disk_gb: u64,
    /// libvirt URI of the embedded agents; default: the test driver with a
    /// node file of the sizes above.
    pub embedded_libvirt_uri: Option<String>,
    /// Guest architectures the embedded hosts report on top of libvirt's test
    /// driver's own `i686` (only on the test driver): images asking for one of
    /// these boot; any other architecture is still refused by the
    /// ImagePropertiesFilter.
    pub embedded_guest_archs: Vec<String>,
    /// Accelerator of the embedded hosts' real guests when
    /// `embedded_libvirt_uri` is a real hypervisor (`qemu:///system`): `kvm`,
    /// `qemu` (TCG emulation) or `auto` (KVM when a probe guest runs under
    /// it, else `qemu`), as Nova's `[libvirt] virt_type`.
    pub embedded_virt_type: String,
    /// Give the embedded agents' guests a serial console on a local TCP
    /// port (127.0.0.1, ports 10000 to 20000) for the console proxy. On
    /// libvirt's test driver nothing listens there.
    pub embedded_serial_console: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            enrollment_token: None,
            heartbeat_seconds: 30,
            max_poll_wait_seconds: 30,
            embedded: true,
            embedded_hosts: 1,
            embedded_host_prefix: "compute".to_string(),
            embedded_vcpus: 8,
            embedded_memory_mb: 16384,
            embedded_disk_gb: 200,
            embedded_libvirt_uri: None,
            embedded_guest_archs: vec!["x86_64".to_string()],
            embedded_virt_type: "auto".to_string(),
            embedded_serial_console: true,
        }
    }
}

impl AgentConfig {
    /// The host names of the embedded agents this section runs
    /// (`<embedded_host_prefix>1`, `2`, …; none when embedded agents are off).
    pub fn embedded_host_names(&self) -> impl Iterator<Item = String> + '_ {
        let count = if self.embedded {
            self.embedded_hosts
        } else {
            0
        };
        (1..=count).map(|index| format!("{}{index}", self.embedded_host_prefix))
    }
}

/// `[metadata]`: the metadata service guests reach at 169.254.169.254
/// through the metadata proxy of their compute host.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataConfig {
    /// The secret the proxies sign instance ids with (neutron's
    /// `metadata_proxy_shared_secret`); default: generated into
    /// `<data_dir>/metadata-shared-secret` at first start. Agents receive
    /// it when they register.
    pub shared_secret: Option<String>,
}
