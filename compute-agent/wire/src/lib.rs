//! Wire types shared by the novum controller and its compute agents.
//!
//! The protocol is agent-initiated HTTP/JSON: the controller never connects to an
//! agent and there is no message broker. Every path lives under [`API_PREFIX`]:
//!
//! | call | path | body → answer |
//! |------|------|---------------|
//! | register | `POST /rpc/v1/agents/register` | [`RegisterRequest`] → [`RegisterResponse`] |
//! | heartbeat | `POST /rpc/v1/agents/{host}/heartbeat` | [`HeartbeatRequest`] → 2xx (body ignored) |
//! | poll | `GET /rpc/v1/agents/{host}/tasks?wait=<seconds>` | → [`TaskList`] |
//! | report | `POST /rpc/v1/agents/{host}/tasks/{task_id}/result` | [`TaskResult`] → 2xx |
//! | image data | `GET /rpc/v1/agents/{host}/images/{image_id}/file` | → the bytes, [`ImageFileInfo`] in headers |
//! | firewall | `GET /rpc/v1/agents/{host}/firewall` | → [`HostFirewall`] |
//!
//! Registration authenticates with the enrollment credential (`Authorization:
//! Bearer <enrollment token>`) and answers with the agent's own credential; every
//! later call carries `Authorization: Bearer <agent token>`. A `401` on a later
//! call means the controller no longer knows that credential: the agent registers
//! again. Errors come back as [`ErrorBody`].
//!
//! Tasks are durable rows on the controller side. An agent may see the same task
//! more than once (for example after a restart before it reported); executing a
//! task is idempotent, so that is harmless.
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod firewall;
pub use firewall::{Direction, FirewallRule, HostFirewall, PortFirewall, firewall_path};

/// Prefix of every agent RPC path.
pub const API_PREFIX: &str = "/rpc/v1";

/// Path of the registration call (relative to the controller's base URL).
pub const REGISTER_PATH: &str = "/rpc/v1/agents/register";

/// Longest long-poll wait (seconds) an agent asks for; controllers may cap lower.
pub const MAX_POLL_WAIT_SECONDS: u64 = 60;

/// Path of the heartbeat call for `host`.
pub fn heartbeat_path(host: &str) -> String {
    format!("{API_PREFIX}/agents/{host}/heartbeat")
}

/// Path of the task long-poll for `host` (without the `wait` query).
pub fn tasks_path(host: &str) -> String {
    format!("{API_PREFIX}/agents/{host}/tasks")
}

/// Path of the result report for task `task_id` of `host`.
pub fn task_result_path(host: &str, task_id: Uuid) -> String {
    format!("{API_PREFIX}/agents/{host}/tasks/{task_id}/result")
}

/// Path of the list of instances evacuated away from `host` (`GET`,
/// answered with [`Evacuated`]): domains the host may still hold that are
/// no longer its own. The agent destroys them before it resumes its
/// guests, then reports them with a `POST` of the same [`Evacuated`] to
/// the same path (Nova's `_destroy_evacuated_instances` at `init_host`).
pub fn evacuated_path(host: &str) -> String {
    format!("{API_PREFIX}/agents/{host}/evacuated")
}

/// Instances evacuated away from a host (see [`evacuated_path`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evacuated {
    /// Their uuids (= their domains' uuids on the host).
    pub instances: Vec<Uuid>,
}

/// Path of the data of image `image_id`, as agent `host` downloads it
/// (`GET`, agent credential) or uploads a snapshot into it (`PUT`, only an
/// image a [`TaskAction::Snapshot`] of that host names; the headers say the
/// data's format, size and SHA-256, which the controller checks). The answer streams the bytes; its headers
/// carry the image's [`ImageFileInfo`] (see [`IMAGE_HEADER_DISK_FORMAT`]
/// and its siblings).
pub fn image_file_path(host: &str, image_id: &str) -> String {
    format!("{API_PREFIX}/agents/{host}/images/{image_id}/file")
}

/// Header of an image download naming the image's `disk_format` (`raw`,
/// `qcow2`, `aki`, ...).
pub const IMAGE_HEADER_DISK_FORMAT: &str = "x-image-meta-disk-format";
/// Header of an image download with Glance's `checksum` (MD5, hex).
pub const IMAGE_HEADER_CHECKSUM: &str = "x-image-meta-checksum";
/// Header of an image download naming `os_hash_algo` (`sha256`, `sha512`).
pub const IMAGE_HEADER_HASH_ALGO: &str = "x-image-meta-os-hash-algo";
/// Header of an image download with `os_hash_value` (hex).
pub const IMAGE_HEADER_HASH_VALUE: &str = "x-image-meta-os-hash-value";
/// Header of an image download with the data's size in bytes.
pub const IMAGE_HEADER_SIZE: &str = "x-image-meta-size";

/// What the controller's image service says about an image's data, sent
/// with the bytes (in the `x-image-meta-*` headers) so that the agent can
/// verify what it received and knows the data's format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFileInfo {
    /// Glance's `disk_format` (`raw`, `qcow2`, `aki`, `ari`, `ami`, ...).
    pub disk_format: Option<String>,
    /// The data's size in bytes.
    pub size: Option<u64>,
    /// Glance's `checksum`: MD5 of the data, hex.
    pub checksum: Option<String>,
    /// Glance's `os_hash_algo` (`sha256`, `sha512`).
    pub os_hash_algo: Option<String>,
    /// Glance's `os_hash_value`: the data's hash with `os_hash_algo`, hex.
    pub os_hash_value: Option<String>,
}

impl ImageFileInfo {
    /// The `(header name, value)` pairs carrying this info (only the known ones).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        [
            (IMAGE_HEADER_DISK_FORMAT, self.disk_format.clone()),
            (IMAGE_HEADER_SIZE, self.size.map(|size| size.to_string())),
            (IMAGE_HEADER_CHECKSUM, self.checksum.clone()),
            (IMAGE_HEADER_HASH_ALGO, self.os_hash_algo.clone()),
            (IMAGE_HEADER_HASH_VALUE, self.os_hash_value.clone()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| (name, value)))
        .collect()
    }

    /// The info read back from headers, `header(name)` giving a header's value.
    pub fn from_headers(header: impl Fn(&str) -> Option<String>) -> Self {
        let text = |name: &str| {
            header(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        ImageFileInfo {
            disk_format: text(IMAGE_HEADER_DISK_FORMAT),
            size: text(IMAGE_HEADER_SIZE).and_then(|size| size.parse().ok()),
            checksum: text(IMAGE_HEADER_CHECKSUM),
            os_hash_algo: text(IMAGE_HEADER_HASH_ALGO),
            os_hash_value: text(IMAGE_HEADER_HASH_VALUE),
        }
    }
}

/// Encode a `major.minor.micro` version the way Nova stores hypervisor versions:
/// `major * 1_000_000 + minor * 1_000 + micro` (libvirt uses the same encoding).
pub fn encode_version(major: u64, minor: u64, micro: u64) -> u64 {
    major * 1_000_000 + minor * 1_000 + micro
}

/// Split a version encoded by [`encode_version`] into `(major, minor, micro)`.
pub fn decode_version(version: u64) -> (u64, u64, u64) {
    (
        version / 1_000_000,
        (version / 1_000) % 1_000,
        version % 1_000,
    )
}

/// Power state of an instance, with Nova's names and numeric values.
///
/// Serialized as its number (`1` for `RUNNING`), exactly as Nova stores
/// `instances.power_state`; [`PowerState::name`] gives Nova's upper-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
#[repr(u8)]
pub enum PowerState {
    /// `NOSTATE` (0): unknown, or no domain exists.
    NoState = 0,
    /// `RUNNING` (1).
    Running = 1,
    /// `PAUSED` (3): vCPUs stopped, memory kept in place.
    Paused = 3,
    /// `SHUTDOWN` (4): powered off.
    Shutdown = 4,
    /// `CRASHED` (6).
    Crashed = 6,
    /// `SUSPENDED` (7): memory saved to disk (libvirt managed save or guest PM
    /// suspend); resumes where it left off.
    Suspended = 7,
}

impl PowerState {
    /// Nova's name for the state (`"RUNNING"`, `"SHUTDOWN"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            PowerState::NoState => "NOSTATE",
            PowerState::Running => "RUNNING",
            PowerState::Paused => "PAUSED",
            PowerState::Shutdown => "SHUTDOWN",
            PowerState::Crashed => "CRASHED",
            PowerState::Suspended => "SUSPENDED",
        }
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<PowerState> for u8 {
    fn from(state: PowerState) -> u8 {
        state as u8
    }
}

/// A number that is not one of Nova's power-state values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownPowerState(pub u8);

impl fmt::Display for UnknownPowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown power state {}", self.0)
    }
}

impl std::error::Error for UnknownPowerState {}

impl TryFrom<u8> for PowerState {
    type Error = UnknownPowerState;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Ok(match value {
            0 => PowerState::NoState,
            1 => PowerState::Running,
            3 => PowerState::Paused,
            4 => PowerState::Shutdown,
            6 => PowerState::Crashed,
            7 => PowerState::Suspended,
            other => return Err(UnknownPowerState(other)),
        })
    }
}

/// One (architecture, hypervisor type, VM mode) triple a host can run, as in
/// Nova's `supported_instances` (e.g. `("x86_64", "kvm", "hvm")`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SupportedInstance {
    /// Guest architecture (`x86_64`, `aarch64`, `i686`, ...).
    pub arch: String,
    /// Hypervisor type (libvirt domain type: `kvm`, `qemu`, `test`, ...).
    pub hv_type: String,
    /// VM mode (libvirt os type: `hvm`, `xen`, `exe`, ...).
    pub vm_mode: String,
}

/// CPU topology of the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTopology {
    /// Sockets (per NUMA node when libvirt reports it that way).
    pub sockets: u32,
    /// Cores per socket.
    pub cores: u32,
    /// Threads per core.
    pub threads: u32,
}

/// The host CPU, as Nova's `cpu_info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuInfo {
    /// Host architecture (`x86_64`, ...).
    pub arch: String,
    /// CPU model name (`Skylake-Client-IBRS`, ...), when the hypervisor reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// CPU vendor (`Intel`, `AMD`, ...), when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// CPU feature flags (`vmx`, `avx2`, ...), sorted.
    #[serde(default)]
    pub features: Vec<String>,
    /// Socket/core/thread layout.
    #[serde(default)]
    pub topology: CpuTopology,
}

/// What a hypervisor host offers: sent at registration and with every heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Usable physical CPUs (Nova's `vcpus` of the compute node).
    pub vcpus: u32,
    /// Physical memory in MiB.
    pub memory_mb: u64,
    /// Local disk for instances in GiB (Nova's `local_gb`).
    pub disk_gb: u64,
    /// The CPU: architecture, model, features, topology.
    pub cpu_info: CpuInfo,
    /// Hypervisor type as the driver names it (`QEMU`, `TEST`, ...).
    pub hypervisor_type: String,
    /// Hypervisor version in Nova's encoding, see [`encode_version`].
    pub hypervisor_version: u64,
    /// Hostname of the hypervisor (Nova's `hypervisor_hostname`).
    pub hypervisor_hostname: String,
    /// IP address of the host, as the controller should show it (`host_ip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Every (arch, hv_type, vm_mode) this host can run.
    pub supported_instances: Vec<SupportedInstance>,
    /// What `uptime` says on the host (Nova's `get_host_uptime`), when the
    /// agent could run it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<String>,
}

/// First call of an agent: who it is and what it offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// The service host name (Nova's `host`), unique per agent.
    pub host: String,
    /// The host's resources and capabilities.
    pub inventory: Inventory,
    /// Version of the agent software (`CARGO_PKG_VERSION`).
    pub agent_version: String,
}

/// The controller's answer to [`RegisterRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The host name the controller registered (echo of the request).
    pub host: String,
    /// The agent's own credential, for `Authorization: Bearer` on every later call.
    pub agent_token: String,
    /// Heartbeat interval the controller asks for, if it has a preference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_seconds: Option<u64>,
    /// The secret the agent's metadata proxy signs instance ids with
    /// (`X-Instance-ID-Signature`, see [`metadata_signature`]); `None` from
    /// a controller without a metadata service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_secret: Option<String>,
}

/// Power state of one domain the agent runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstancePower {
    /// The instance uuid (= the domain uuid).
    pub uuid: Uuid,
    /// Its current power state.
    pub power_state: PowerState,
}

/// Periodic liveness report: current inventory and every domain's power state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    /// Current inventory (it can change: hot-added memory, a libvirt upgrade).
    pub inventory: Inventory,
    /// Every domain on the hypervisor with its power state, for reconciliation.
    /// Domains the controller does not know are listed too.
    pub instances: Vec<InstancePower>,
}

/// Answer to the task long-poll: zero or more tasks, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskList {
    /// Tasks to execute; empty when the wait expired with nothing to do.
    pub tasks: Vec<Task>,
}

/// One unit of work for an agent, about one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Task id (the controller's durable row), used to report the result.
    pub id: Uuid,
    /// The instance the task is about.
    pub instance_uuid: Uuid,
    /// Request id of the API call that caused the task (`req-...`), for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// What to do.
    pub action: TaskAction,
}

/// What a task asks the agent to do. Serialized with a `kind` tag:
/// `{"kind": "reboot", "reboot_type": "HARD"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskAction {
    /// Create the instance's domain and boot it. Succeeds at once if the domain
    /// already exists and runs.
    Spawn(SpawnSpec),
    /// Define the instance's domain from the spec, replacing the definition
    /// it has (powering it off first), then boot it when `power_on`. A
    /// resize finishes with this on the destination host, and a revert on
    /// the source (with the old flavor). Delivered twice, it ends in the
    /// same place.
    Redefine {
        /// The domain to have.
        spec: SpawnSpec,
        /// Whether it should run afterwards (a stopped instance stays off).
        power_on: bool,
    },
    /// Power off and remove the domain. Succeeds if there is no domain.
    Destroy,
    /// Power on (boot a stopped domain, unpause a paused one).
    Start,
    /// Power off: clean shutdown, then a hard stop after a timeout.
    Stop,
    /// Reboot the domain.
    Reboot {
        /// Soft (guest-cooperative, falling back to hard) or hard.
        reboot_type: RebootType,
    },
    /// Pause the vCPUs, keeping memory in place.
    Pause,
    /// Continue a paused domain.
    Unpause,
    /// Save memory to disk and stop the domain.
    Suspend,
    /// Restore a suspended domain.
    Resume,
    /// Plug one interface (a port) into the instance's domain: into the
    /// running guest and its persistent definition when it runs or is
    /// paused, into the definition only when it is off. The host bridge is
    /// made first. Already plugged: nothing to do.
    AttachInterface {
        /// The interface to plug.
        interface: InterfaceSpec,
    },
    /// Unplug the interface of one port from the instance's domain (the
    /// running guest and the persistent definition). Not plugged, or no
    /// domain: nothing to do.
    DetachInterface {
        /// The port whose interface goes (for logs and messages).
        port_id: Uuid,
        /// The interface's MAC address, which identifies it in the domain.
        mac_address: String,
    },
    /// A query (see [`TaskAction::is_query`]): the guest's serial console
    /// log, the last `lines` lines of its last [`MAX_CONSOLE_BYTES`]
    /// (all of them when `None`), answered with
    /// [`TaskAnswer::ConsoleOutput`]. Empty when the guest wrote nothing.
    ConsoleOutput {
        /// How many lines from the end; `None`: all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lines: Option<u32>,
    },
    /// A query: where the guest's serial console listens (TCP, raw), answered
    /// with [`TaskAnswer::SerialConsole`], or
    /// [`TaskAnswer::ConsoleUnavailable`] when the domain has none.
    SerialConsole,
    /// Copy the instance's root disk into image `image_id` (Nova's
    /// `snapshot` of the compute driver): a real hypervisor flattens the
    /// qcow2 overlay with `qemu-img convert` (the guest paused while it
    /// runs); the test driver, whose guests never write a disk, takes the
    /// instance's base image. The data is uploaded to the controller
    /// ([`image_file_path`], `PUT`), which makes the image active.
    Snapshot {
        /// The image to fill (queued on the controller, named by this task).
        image_id: String,
        /// The image the instance was booted from.
        base_image_id: String,
    },
    /// A query (Nova's `set_admin_password` call): set the password of
    /// `user` in the running guest through the QEMU guest agent
    /// (`virDomainSetUserPassword`), answered with
    /// [`TaskAnswer::PasswordSet`] or [`TaskAnswer::Refused`]. The
    /// controller blanks `password` in its task row once answered.
    SetPassword {
        /// The guest user (`os_admin_user`, else `root`, or
        /// `Administrator` for Windows guests).
        user: String,
        /// The new password.
        password: String,
        /// Whether the image says the guest runs the QEMU guest agent
        /// (`hw_qemu_guest_agent`); without it Nova's libvirt driver
        /// refuses.
        qemu_guest_agent: bool,
    },
    /// Inject a non-maskable interrupt into the guest (Nova's
    /// `trigger_crash_dump`), which a guest configured for it answers with
    /// a kernel crash dump. Changes nothing of the domain's state.
    TriggerCrashDump,
    /// A query (Nova's `get_diagnostics` / `get_instance_diagnostics`):
    /// what libvirt says of the running guest's CPUs, memory, disks and
    /// interfaces, answered with [`TaskAnswer::Diagnostics`] (or
    /// [`TaskAnswer::Refused`] when the guest does not run).
    Diagnostics,
    /// Rebuild the instance from `spec.image` (Nova's rebuild): power the
    /// domain off, make its root disk again from the image (a new overlay
    /// on the newly cached image; the ephemeral disk is made again too
    /// unless `preserve_ephemeral`), write the config drive from the spec,
    /// redefine the domain and boot it when `power_on` (a stopped instance
    /// stays off). Delivered twice, it rebuilds twice: nothing of the guest
    /// ran in between.
    Rebuild {
        /// The domain to have, with the new image, name, metadata and
        /// config drive.
        spec: SpawnSpec,
        /// Whether it should run afterwards.
        power_on: bool,
        /// Keep the ephemeral disk as it is.
        #[serde(default)]
        preserve_ephemeral: bool,
    },
    /// Boot the instance in rescue mode (Nova's rescue): its definition is
    /// kept to be restored, and the domain is defined again to boot from a
    /// new disk made from `rescue_image` with the original root disk
    /// attached as the second disk, then started. Rescued already: nothing
    /// to do but make sure it runs.
    Rescue {
        /// The instance's own domain (flavor, interfaces, config drive).
        spec: SpawnSpec,
        /// The image to boot.
        rescue_image: ImageSpec,
    },
    /// Leave rescue mode: the definition kept by [`TaskAction::Rescue`] is
    /// defined again, the rescue files go, and the domain boots. Not
    /// rescued: nothing to do but make sure it runs.
    Unrescue,
    /// The destination of a live migration gets ready to receive the guest
    /// (Nova's `pre_live_migration`): the instance's files, its config
    /// drive and its host bridges; with `block_migration` the disks are
    /// made empty for the copy. Delivered twice, it ends in the same place.
    /// First the hypervisor must be able to offer the source's CPU (Nova's
    /// `_compare_cpu`): when it cannot, the step fails with "Unacceptable
    /// CPU info: CPU doesn't have compatibility." and nothing is made.
    PreLiveMigration {
        /// The domain the guest will have here.
        spec: SpawnSpec,
        /// The disks are copied (no shared storage).
        block_migration: bool,
        /// The source host's CPU as its agent reported it; `None` (and a
        /// controller that does not send it) skips the check.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source_cpu: Option<CpuInfo>,
    },
    /// The source of a live migration moves the running guest to
    /// `destination` (libvirt: peer to peer to the destination's libvirtd,
    /// `VIR_MIGRATE_LIVE | PERSIST_DEST | UNDEFINE_SOURCE`, with
    /// `NON_SHARED_DISK` for a block migration). Ends with no domain here.
    /// A failure leaves the guest running here.
    LiveMigrate {
        /// The destination compute host's name.
        destination: String,
        /// The destination's address (its `host_ip`), for its libvirt URI.
        destination_ip: String,
        /// Copy the disks too.
        block_migration: bool,
        /// The domain as the destination defines it.
        spec: SpawnSpec,
    },
    /// The destination after a live migration (Nova's
    /// `post_live_migration_at_destination`): the guest is defined and runs
    /// here (a hypervisor that cannot migrate, libvirt's test driver, gets
    /// it defined and started from `spec`: the simulated move).
    PostLiveMigration {
        /// The domain the guest has here.
        spec: SpawnSpec,
        /// The guest was paused on the source (vm_state PAUSED): it stays
        /// paused here (Nova keeps a paused guest paused through the move).
        #[serde(default)]
        paused: bool,
    },
    /// A query on the source of a running live migration: abort it (Nova's
    /// `live_migration_abort`) or force it to complete (`live_migration_force_complete`):
    /// answered with [`TaskAnswer::LiveMigrationControlled`], or refused
    /// when no migration runs.
    LiveMigrationControl {
        /// What to do.
        control: LiveMigrationControl,
    },
}

/// What [`TaskAction::LiveMigrationControl`] asks of a running live migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveMigrationControl {
    /// Stop it: the guest stays on the source (libvirt's `abortJob`).
    Abort,
    /// Finish it now: switch to post-copy, or pause the guest so its memory
    /// stops changing.
    ForceComplete,
    /// Report its progress.
    Progress,
}

/// How far a live migration is (from libvirt's domain job info), in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveMigrationProgress {
    /// Memory to copy.
    pub memory_total: u64,
    /// Memory copied.
    pub memory_processed: u64,
    /// Memory left.
    pub memory_remaining: u64,
    /// Disk to copy (block migration).
    pub disk_total: u64,
    /// Disk copied.
    pub disk_processed: u64,
    /// Disk left.
    pub disk_remaining: u64,
}

impl TaskAction {
    /// Short name of the action (`"spawn"`, `"reboot"`, ...), as in the `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            TaskAction::Spawn(_) => "spawn",
            TaskAction::Redefine { .. } => "redefine",
            TaskAction::Destroy => "destroy",
            TaskAction::Start => "start",
            TaskAction::Stop => "stop",
            TaskAction::Reboot { .. } => "reboot",
            TaskAction::Pause => "pause",
            TaskAction::Unpause => "unpause",
            TaskAction::Suspend => "suspend",
            TaskAction::Resume => "resume",
            TaskAction::AttachInterface { .. } => "attach_interface",
            TaskAction::DetachInterface { .. } => "detach_interface",
            TaskAction::ConsoleOutput { .. } => "console_output",
            TaskAction::SerialConsole => "serial_console",
            TaskAction::Snapshot { .. } => "snapshot",
            TaskAction::SetPassword { .. } => "set_password",
            TaskAction::TriggerCrashDump => "trigger_crash_dump",
            TaskAction::Diagnostics => "diagnostics",
            TaskAction::Rebuild { .. } => "rebuild",
            TaskAction::Rescue { .. } => "rescue",
            TaskAction::Unrescue => "unrescue",
            TaskAction::PreLiveMigration { .. } => "pre_live_migration",
            TaskAction::LiveMigrate { .. } => "live_migrate",
            TaskAction::PostLiveMigration { .. } => "post_live_migration",
            TaskAction::LiveMigrationControl { .. } => "live_migration_control",
        }
    }

    /// Whether this is a query: it changes nothing on the host, belongs to
    /// no operation, may run beside the instance's other tasks, and its
    /// result carries a [`TaskAnswer`] that an API request waits for
    /// (Nova's synchronous RPC `call`).
    pub fn is_query(&self) -> bool {
        matches!(
            self,
            TaskAction::ConsoleOutput { .. }
                | TaskAction::SerialConsole
                | TaskAction::SetPassword { .. }
                | TaskAction::Diagnostics
                | TaskAction::LiveMigrationControl { .. }
        )
    }
}

/// Whether image `properties` say the guest runs the QEMU guest agent
/// (`hw_qemu_guest_agent`, a boolean as oslo reads one: `yes`, `true`,
/// `on`, `1`, …): Nova's libvirt driver then gives the domain the agent's
/// channel and sets passwords through it.
pub fn qemu_guest_agent(properties: &BTreeMap<String, String>) -> bool {
    properties.get("hw_qemu_guest_agent").is_some_and(|value| {
        matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "1" | "t" | "true" | "on" | "y" | "yes"
        )
    })
}

/// Most bytes of console log a [`TaskAction::ConsoleOutput`] answer holds:
/// the end of the log (Nova's `MAX_CONSOLE_BYTES`, 100 KiB).
pub const MAX_CONSOLE_BYTES: usize = 100 * 1024;

/// The last `lines` lines of `log` the way Nova's compute manager tails a
/// console log (`_tail_log`): split at every `\n`, keep the last `lines`
/// pieces, join them again; `0` gives nothing, `None` everything.
pub fn tail_lines(log: &str, lines: Option<u32>) -> &str {
    let Some(lines) = lines else {
        return log;
    };
    if lines == 0 {
        return "";
    }
    let mut seen = 0_u32;
    for (index, _) in log.rmatch_indices('\n') {
        seen += 1;
        if seen == lines {
            return &log[index + 1..];
        }
    }
    log
}

/// `text` without the control characters Nova removes from console output
/// (`[\x00-\x08\x0B-\x1F]`: everything below a space but tab and newline),
/// and without DEL.
pub fn printable_console(text: &str) -> String {
    text.chars()
        .filter(|&c| c == '\t' || c == '\n' || !(c.is_ascii_control()))
        .collect()
}

/// Nova's reboot types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RebootType {
    /// Ask the guest to restart; fall back to hard when it does not.
    Soft,
    /// Power-cycle the domain.
    Hard,
}

/// Everything needed to build an instance's domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpawnSpec {
    /// Display name of the instance.
    pub name: String,
    /// Sizes from the flavor.
    pub flavor: FlavorSpec,
    /// The image and its properties.
    pub image: ImageSpec,
    /// User data as given to the API (base64 text), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// Instance metadata (key/value).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The instance's network interfaces (one per port), in the order the
    /// guest sees them. Absent in messages from before networking: none.
    #[serde(default)]
    pub interfaces: Vec<InterfaceSpec>,
    /// The project owning the instance (the metadata proxy's `X-Tenant-ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// The files of the instance's config drive (an ISO 9660 volume
    /// labelled [`CONFIG_DRIVE_LABEL`] the agent builds and attaches as a
    /// CD-ROM); `None`: the instance has no config drive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_drive: Option<Vec<ConfigDriveFile>>,
}

/// The volume label of a config drive (Nova's, which cloud-init looks for).
pub const CONFIG_DRIVE_LABEL: &str = "config-2";

/// One file of a config drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigDriveFile {
    /// Relative path inside the volume (`openstack/latest/meta_data.json`).
    pub path: String,
    /// The content, base64 (user data need not be text).
    pub content_base64: String,
}

/// Headers the metadata proxy on a compute host adds to each request it
/// forwards to the controller's metadata service (neutron's metadata agent
/// names): the instance, its project, and the signature of the instance id.
pub mod metadata_headers {
    /// The instance uuid.
    pub const INSTANCE_ID: &str = "X-Instance-ID";
    /// The instance's project.
    pub const TENANT_ID: &str = "X-Tenant-ID";
    /// Hex HMAC-SHA256 of the instance uuid under the shared secret.
    pub const SIGNATURE: &str = "X-Instance-ID-Signature";
    /// The guest's address.
    pub const FORWARDED_FOR: &str = "X-Forwarded-For";
}

/// `X-Instance-ID-Signature` of `instance_id` under `secret`: the hex
/// HMAC-SHA256 (neutron's metadata agent signs the same way). The one
/// implementation the proxy signs with and the controller checks with.
pub fn metadata_signature(secret: &str, instance_id: &str) -> String {
    use hmac::{Hmac, Mac};
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    match Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(instance_id.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Where the controller serves the metadata API (the proxy forwards guest
/// path `P` to `<controller>/metadata` + `P`).
pub const METADATA_PREFIX: &str = "/metadata";

/// Prefix of the Linux bridge of a network on a compute host (Neutron's
/// linuxbridge naming).
pub const BRIDGE_PREFIX: &str = "brq";

/// Prefix of the host-side device of an instance's interface (Nova's naming).
pub const TAP_PREFIX: &str = "tap";

/// How many leading characters of a network or port id go into a device
/// name: Linux allows 15 bytes, the prefix takes 3.
pub const DEVICE_ID_CHARS: usize = 11;

/// The Linux bridge of network `network_id` on a compute host:
/// `brq` + the first 11 characters of the id (`brq3f4e1c9a-2b`).
pub fn bridge_name(network_id: Uuid) -> String {
    device_name(BRIDGE_PREFIX, network_id)
}

/// The host-side device (and the guest's `network_data.json` link id) of
/// port `port_id`: `tap` + the first 11 characters of the id (`tap1a81968a-79`).
pub fn tap_name(port_id: Uuid) -> String {
    device_name(TAP_PREFIX, port_id)
}

fn device_name(prefix: &str, id: Uuid) -> String {
    let id = id.to_string();
    format!("{prefix}{}", &id[..DEVICE_ID_CHARS])
}

/// One network interface of an instance: a port on a network, as the
/// controller bound it to the host. Field names follow Neutron's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceSpec {
    /// The port id (Neutron's `id`); names the host device ([`tap_name`]).
    pub port_id: Uuid,
    /// The port's MAC address (`fa:16:3e:12:34:56`).
    pub mac_address: String,
    /// The network the port is on.
    pub network_id: Uuid,
    /// The network's name, for logs.
    #[serde(default)]
    pub network_name: String,
    /// The network's MTU; `None`: the hypervisor's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The Linux bridge to plug into; the built-in network service uses
    /// [`bridge_name`] of the network.
    pub bridge: String,
    /// The port's addresses, in Neutron's order.
    #[serde(default)]
    pub fixed_ips: Vec<FixedIpSpec>,
}

impl InterfaceSpec {
    /// The host-side device name of this interface ([`tap_name`] of the port).
    pub fn tap_name(&self) -> String {
        tap_name(self.port_id)
    }
}

/// One fixed IP of a port, with what the guest needs of its subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIpSpec {
    /// The address (`10.0.0.5`, `2001:db8::5`).
    pub ip_address: String,
    /// 4 or 6.
    pub ip_version: u8,
    /// The subnet's CIDR (`10.0.0.0/24`).
    pub subnet_cidr: String,
    /// The subnet's gateway; `None`: no default route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_ip: Option<String>,
    /// The subnet's DNS servers.
    #[serde(default)]
    pub dns_nameservers: Vec<String>,
    /// The subnet's host routes.
    #[serde(default)]
    pub host_routes: Vec<HostRoute>,
}

/// A subnet's host route (Neutron's `host_routes` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRoute {
    /// Destination CIDR (`192.168.0.0/16`).
    pub destination: String,
    /// Next hop address.
    pub nexthop: String,
}

/// The sizes of a flavor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlavorSpec {
    /// Flavor name, for logs and domain metadata.
    #[serde(default)]
    pub name: String,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mb: u64,
    /// Root disk in GiB.
    pub root_gb: u64,
    /// Ephemeral disk in GiB (0: none).
    #[serde(default)]
    pub ephemeral_gb: u64,
    /// Swap in MiB (0: none), as Nova's flavor `swap`.
    #[serde(default)]
    pub swap_mb: u64,
}

impl FlavorSpec {
    /// Nova's `m1.tiny`: 1 vCPU, 512 MiB, a 1 GiB root disk, no ephemeral
    /// disk and no swap (what tests and examples spawn).
    pub fn tiny() -> Self {
        FlavorSpec {
            name: "m1.tiny".into(),
            vcpus: 1,
            memory_mb: 512,
            root_gb: 1,
            ephemeral_gb: 0,
            swap_mb: 0,
        }
    }
}

/// Image property naming the architecture (`x86_64`, `aarch64`, ...).
pub const PROP_ARCHITECTURE: &str = "hw_architecture";
/// Image property naming the hypervisor type (`kvm`, `qemu`, ...).
pub const PROP_HV_TYPE: &str = "img_hv_type";
/// Image property naming the VM mode (`hvm`, `xen`, ...).
pub const PROP_VM_MODE: &str = "hw_vm_mode";
/// Image property naming the kernel image (an AKI) of a direct kernel boot.
pub const PROP_KERNEL_ID: &str = "kernel_id";
/// Image property naming the ramdisk image (an ARI) of a direct kernel boot.
pub const PROP_RAMDISK_ID: &str = "ramdisk_id";
/// Image property with the kernel command line of a direct kernel boot.
pub const PROP_COMMAND_LINE: &str = "os_command_line";
/// Image property naming the machine type (`q35`, `pc`, `virt`, ...).
pub const PROP_MACHINE_TYPE: &str = "hw_machine_type";

/// The image an instance boots from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSpec {
    /// Image id (Glance uuid).
    pub id: String,
    /// Image properties (`hw_architecture`, `img_hv_type`, `hw_vm_mode`, ...).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl ImageSpec {
    /// A property, trying the current name first and then Nova's legacy name.
    fn property(&self, name: &str, legacy: &str) -> Option<&str> {
        self.properties
            .get(name)
            .or_else(|| self.properties.get(legacy))
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// `hw_architecture` (legacy `architecture`).
    pub fn architecture(&self) -> Option<&str> {
        self.property(PROP_ARCHITECTURE, "architecture")
    }

    /// `img_hv_type` (legacy `hypervisor_type`).
    pub fn hv_type(&self) -> Option<&str> {
        self.property(PROP_HV_TYPE, "hypervisor_type")
    }

    /// `hw_vm_mode` (legacy `vm_mode`).
    pub fn vm_mode(&self) -> Option<&str> {
        self.property(PROP_VM_MODE, "vm_mode")
    }

    /// `hw_machine_type`.
    pub fn machine_type(&self) -> Option<&str> {
        self.property(PROP_MACHINE_TYPE, PROP_MACHINE_TYPE)
    }

    /// `kernel_id`: the kernel image of a direct kernel boot.
    pub fn kernel_id(&self) -> Option<&str> {
        self.property(PROP_KERNEL_ID, PROP_KERNEL_ID)
    }

    /// `ramdisk_id`: the ramdisk image of a direct kernel boot.
    pub fn ramdisk_id(&self) -> Option<&str> {
        self.property(PROP_RAMDISK_ID, PROP_RAMDISK_ID)
    }

    /// `os_command_line`: the kernel command line of a direct kernel boot.
    pub fn command_line(&self) -> Option<&str> {
        self.property(PROP_COMMAND_LINE, PROP_COMMAND_LINE)
    }
}

/// The outcome of one task, reported by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    /// Success or failure.
    pub outcome: TaskOutcome,
    /// What a query task found (with a succeeded outcome); `None` for
    /// every other task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<TaskAnswer>,
}

impl TaskResult {
    /// The result of a task that is not a query: `outcome`, no answer.
    pub fn of(outcome: TaskOutcome) -> Self {
        Self {
            outcome,
            answer: None,
        }
    }
}

/// The answer to a query task (see [`TaskAction::is_query`]). Serialized
/// with a `kind` tag: `{"kind": "console_output", "output": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskAnswer {
    /// The console log asked for by [`TaskAction::ConsoleOutput`], tailed
    /// and without control characters (see [`printable_console`]).
    ConsoleOutput {
        /// The log text.
        output: String,
    },
    /// Where the guest's serial console listens, for the controller's
    /// console proxy to connect to (raw TCP).
    SerialConsole {
        /// Address the controller connects to (the agent host's address
        /// for consoles, Nova's `proxyclient_address`).
        host: String,
        /// TCP port.
        port: u16,
    },
    /// The instance has no console of the asked type on this host (the
    /// serial console is not enabled there, or its domain predates it).
    ConsoleUnavailable {
        /// The console type asked for (`serial`).
        console_type: String,
    },
    /// The guest user's password was set ([`TaskAction::SetPassword`]).
    PasswordSet,
    /// The query was refused for a reason Nova answers in its own way
    /// (see [`Refusal`]).
    Refused {
        /// Why.
        refusal: Refusal,
    },
    /// What libvirt says of the running guest ([`TaskAction::Diagnostics`]).
    Diagnostics(GuestDiagnostics),
    /// A [`TaskAction::LiveMigrationControl`] was done; the migration's
    /// progress when it was.
    LiveMigrationControlled(LiveMigrationProgress),
}

/// Why a query was refused: each is an answer the compute API gives in
/// Nova's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// The guest is not running (Nova's `InstanceInvalidState` on the power
    /// state, `InstancePasswordSetFailed` "instance … is not running").
    NotRunning {
        /// Its power state.
        power_state: PowerState,
    },
    /// The image does not say the guest runs the QEMU guest agent (Nova's
    /// `QemuGuestAgentNotEnabled`).
    GuestAgentNotEnabled,
    /// The hypervisor cannot do it at all (Nova's
    /// `SetAdminPasswdNotSupported`).
    NotSupported,
    /// The guest agent does not answer, or libvirt does not implement the
    /// call (Nova's `NotImplementedError`).
    NotImplemented,
}

/// A running guest's statistics as libvirt reports them, from which the
/// controller renders both of Nova's diagnostics formats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestDiagnostics {
    /// The guest's power state.
    pub power_state: PowerState,
    /// The hypervisor type guests run as (`kvm`, `qemu`; `test` on the
    /// test driver): Nova's `[libvirt] virt_type`.
    pub hypervisor: String,
    /// Maximum memory, KiB (`virDomainGetMaxMemory`).
    pub max_memory_kib: u64,
    /// Memory in use, KiB (`virDomainGetInfo`).
    pub memory_kib: u64,
    /// Each vCPU's time.
    pub cpus: Vec<CpuDiagnostics>,
    /// Each disk's I/O counters.
    pub disks: Vec<DiskDiagnostics>,
    /// Each interface, with its counters when libvirt has them.
    pub nics: Vec<NicDiagnostics>,
    /// `virDomainMemoryStats` by Nova's names (`actual`, `rss`, …).
    pub memory_stats: BTreeMap<String, u64>,
}

/// One vCPU of [`GuestDiagnostics`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuDiagnostics {
    /// The vCPU number.
    pub id: u32,
    /// CPU time, nanoseconds.
    pub time_ns: u64,
}

/// One disk of [`GuestDiagnostics`] (`virDomainBlockStats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskDiagnostics {
    /// The target device (`vda`).
    pub device: String,
    /// Read requests.
    pub read_requests: i64,
    /// Bytes read.
    pub read_bytes: i64,
    /// Write requests.
    pub write_requests: i64,
    /// Bytes written.
    pub write_bytes: i64,
    /// Errors.
    pub errors: i64,
}

/// One interface of [`GuestDiagnostics`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicDiagnostics {
    /// Its MAC address.
    pub mac_address: String,
    /// The host-side device (`tap…`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Its counters (`virDomainInterfaceStats`), when libvirt gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<NicCounters>,
}

/// The counters of one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicCounters {
    /// Bytes received.
    pub rx_bytes: i64,
    /// Packets received.
    pub rx_packets: i64,
    /// Receive errors.
    pub rx_errors: i64,
    /// Received packets dropped.
    pub rx_drop: i64,
    /// Bytes sent.
    pub tx_bytes: i64,
    /// Packets sent.
    pub tx_packets: i64,
    /// Send errors.
    pub tx_errors: i64,
    /// Sent packets dropped.
    pub tx_drop: i64,
}

/// Success with the resulting power state, or failure with a message.
/// Serialized with a `status` tag: `{"status": "succeeded", "power_state": 1}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TaskOutcome {
    /// The task did what it asked; the domain is now in `power_state`
    /// (`NOSTATE` after a destroy).
    Succeeded {
        /// Power state after the task.
        power_state: PowerState,
    },
    /// The task failed.
    Failed {
        /// What went wrong, for the instance fault.
        message: String,
        /// Power state after the failure, when it could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        power_state: Option<PowerState>,
    },
}

/// Error body of a failed RPC call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Human-readable description.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_metadata_signature_is_the_hex_hmac_sha256_of_the_instance_id() {
        // Python: hmac.new(b"secret", b"8c6e…1a10", hashlib.sha256).hexdigest()
        assert_eq!(
            metadata_signature("secret", "8c6e4ae0-0d5c-4d8f-9a4b-2f6f3b6b1a10"),
            "c338559bb819d2d3e8e75731d394433d3f6997f9732d2131e0887fd6e7e2774c"
        );
        assert_ne!(
            metadata_signature("other", "8c6e4ae0-0d5c-4d8f-9a4b-2f6f3b6b1a10"),
            metadata_signature("secret", "8c6e4ae0-0d5c-4d8f-9a4b-2f6f3b6b1a10")
        );
    }

    #[test]
    fn spawn_specs_from_before_the_config_drive_still_parse() {
        let spec: SpawnSpec = serde_json::from_value(json!({
            "name": "old",
            "flavor": {"vcpus": 1, "memory_mb": 64, "root_gb": 1},
            "image": {"id": "i"},
        }))
        .unwrap();
        assert_eq!(spec.config_drive, None);
        assert_eq!(spec.project_id, None);
        let answer: RegisterResponse =
            serde_json::from_value(json!({"host": "h", "agent_token": "t"})).unwrap();
        assert_eq!(answer.metadata_secret, None);
    }

    #[test]
    fn a_pre_live_migration_without_the_source_cpu_still_parses() {
        let spec = json!({
            "name": "old",
            "flavor": {"vcpus": 1, "memory_mb": 64, "root_gb": 1},
            "image": {"id": "i"},
        });
        let old: TaskAction = serde_json::from_value(
            json!({"kind": "pre_live_migration", "spec": spec, "block_migration": true}),
        )
        .unwrap();
        assert!(
            matches!(
                old,
                TaskAction::PreLiveMigration {
                    source_cpu: None,
                    ..
                }
            ),
            "{old:?}"
        );
        let cpu = CpuInfo {
            arch: "x86_64".into(),
            model: Some("Haswell".into()),
            ..CpuInfo::default()
        };
        let TaskAction::PreLiveMigration {
            spec,
            block_migration,
            ..
        } = old
        else {
            unreachable!()
        };
        let new = TaskAction::PreLiveMigration {
            spec,
            block_migration,
            source_cpu: Some(cpu),
        };
        let value = serde_json::to_value(&new).unwrap();
        assert_eq!(value["source_cpu"]["model"], "Haswell");
        assert_eq!(serde_json::from_value::<TaskAction>(value).unwrap(), new);
    }

    #[test]
    fn power_state_is_nova_number() {
        assert_eq!(
            serde_json::to_value(PowerState::Running).ok(),
            Some(json!(1))
        );
        assert_eq!(
            serde_json::to_value(PowerState::Suspended).ok(),
            Some(json!(7))
        );
        let state: PowerState = serde_json::from_value(json!(4)).unwrap();
        assert_eq!(state, PowerState::Shutdown);
        assert!(serde_json::from_value::<PowerState>(json!(2)).is_err());
        for n in 0..=u8::MAX {
            if let Ok(state) = PowerState::try_from(n) {
                assert_eq!(u8::from(state), n);
            }
        }
        assert_eq!(PowerState::Crashed.to_string(), "CRASHED");
    }

    #[test]
    fn task_json_shape() {
        let task = Task {
            id: Uuid::nil(),
            instance_uuid: Uuid::nil(),
            request_id: Some("req-1".into()),
            action: TaskAction::Reboot {
                reboot_type: RebootType::Hard,
            },
        };
        let value = serde_json::to_value(&task).unwrap();
        assert_eq!(
            value["action"],
            json!({"kind": "reboot", "reboot_type": "HARD"})
        );
        let back: Task = serde_json::from_value(value).unwrap();
        assert_eq!(back, task);

        let spawn: TaskAction = serde_json::from_value(json!({
            "kind": "spawn",
            "name": "vm1",
            "flavor": {"vcpus": 2, "memory_mb": 512, "root_gb": 1},
            "image": {"id": "img", "properties": {"architecture": "x86_64"}},
        }))
        .unwrap();
        let TaskAction::Spawn(spec) = spawn else {
            panic!("not a spawn: {spawn:?}");
        };
        assert_eq!(spec.flavor.swap_mb, 0);
        assert!(spec.interfaces.is_empty(), "a spawn from before networking");
        assert_eq!(spec.image.architecture(), Some("x86_64"));
        assert_eq!(spec.image.hv_type(), None);
    }

    #[test]
    fn device_names_follow_neutron_and_nova() {
        let id = Uuid::parse_str("1a81968a-797a-400f-8a80-567f997eb93f").unwrap();
        assert_eq!(tap_name(id), "tap1a81968a-79");
        assert_eq!(bridge_name(id), "brq1a81968a-79");
        assert!(
            bridge_name(id).len() <= 15,
            "Linux device names hold 15 bytes"
        );
    }

    #[test]
    fn interface_actions_json_shape() {
        let port = Uuid::parse_str("1a81968a-797a-400f-8a80-567f997eb93f").unwrap();
        let network = Uuid::parse_str("dacd568d-5be6-4786-91fe-750c374b78b4").unwrap();
        let attach: TaskAction = serde_json::from_value(json!({
            "kind": "attach_interface",
            "interface": {
                "port_id": port,
                "mac_address": "fa:16:3e:ed:9a:59",
                "network_id": network,
                "bridge": "brqdacd568d-5b",
                "fixed_ips": [{
                    "ip_address": "10.0.0.5",
                    "ip_version": 4,
                    "subnet_cidr": "10.0.0.0/24",
                }],
            },
        }))
        .unwrap();
        let TaskAction::AttachInterface { interface } = &attach else {
            panic!("not an attach: {attach:?}");
        };
        assert_eq!(attach.kind(), "attach_interface");
        assert_eq!(interface.tap_name(), "tap1a81968a-79");
        assert_eq!(interface.bridge, bridge_name(network));
        assert_eq!((interface.mtu, interface.network_name.as_str()), (None, ""));
        let ip = &interface.fixed_ips[0];
        assert_eq!(ip.gateway_ip, None);
        assert!(ip.dns_nameservers.is_empty() && ip.host_routes.is_empty());
        let back: TaskAction =
            serde_json::from_value(serde_json::to_value(&attach).unwrap()).unwrap();
        assert_eq!(back, attach);

        let detach = TaskAction::DetachInterface {
            port_id: port,
            mac_address: "fa:16:3e:ed:9a:59".into(),
        };
        assert_eq!(detach.kind(), "detach_interface");
        assert_eq!(
            serde_json::to_value(&detach).unwrap(),
            json!({
                "kind": "detach_interface",
                "port_id": "1a81968a-797a-400f-8a80-567f997eb93f",
                "mac_address": "fa:16:3e:ed:9a:59",
            })
        );
    }

    #[test]
    fn outcome_json_shape() {
        let ok = TaskOutcome::Succeeded {
            power_state: PowerState::Running,
        };
        assert_eq!(
            serde_json::to_value(&ok).ok(),
            Some(json!({"status": "succeeded", "power_state": 1}))
        );
        let failed: TaskOutcome =
            serde_json::from_value(json!({"status": "failed", "message": "boom"})).unwrap();
        assert_eq!(
            failed,
            TaskOutcome::Failed {
                message: "boom".into(),
                power_state: None
            }
        );
    }

    #[test]
    fn console_output_is_tailed_like_nova() {
        let log = "one\ntwo\nthree\n";
        assert_eq!(tail_lines(log, None), log);
        assert_eq!(tail_lines(log, Some(0)), "");
        // Nova splits at every newline: the last piece is the empty one.
        assert_eq!(tail_lines(log, Some(1)), "");
        assert_eq!(tail_lines(log, Some(2)), "three\n");
        assert_eq!(tail_lines(log, Some(3)), "two\nthree\n");
        assert_eq!(tail_lines(log, Some(4)), log);
        assert_eq!(tail_lines(log, Some(99)), log);
        assert_eq!(tail_lines("no newline", Some(1)), "no newline");
        assert_eq!(
            printable_console("a\u{0}b\tc\r\n\u{1b}[0md\u{7f}é"),
            "ab\tc\n[0mdé"
        );
    }

    #[test]
    fn queries_and_answers_json_shape() {
        let ask = TaskAction::ConsoleOutput { lines: Some(5) };
        assert!(ask.is_query() && TaskAction::SerialConsole.is_query());
        assert!(!TaskAction::Start.is_query());
        assert_eq!(
            serde_json::to_value(&ask).unwrap(),
            json!({"kind": "console_output", "lines": 5})
        );
        assert_eq!(
            serde_json::to_value(TaskAction::SerialConsole).unwrap(),
            json!({"kind": "serial_console"})
        );
        let report: TaskResult = serde_json::from_value(json!({
            "outcome": {"status": "succeeded", "power_state": 1},
            "answer": {"kind": "serial_console", "host": "10.0.0.2", "port": 10000},
        }))
        .unwrap();
        assert_eq!(
            report.answer,
            Some(TaskAnswer::SerialConsole {
                host: "10.0.0.2".into(),
                port: 10000
            })
        );
        let plain = TaskResult::of(TaskOutcome::Succeeded {
            power_state: PowerState::Running,
        });
        assert_eq!(
            serde_json::to_value(&plain).unwrap(),
            json!({"outcome": {"status": "succeeded", "power_state": 1}}),
            "a result without an answer keeps its old shape"
        );
    }

    #[test]
    fn versions_and_paths() {
        assert_eq!(encode_version(9, 0, 0), 9_000_000);
        assert_eq!(decode_version(8_002_001), (8, 2, 1));
        let id = Uuid::nil();
        assert_eq!(
            task_result_path("cmp1", id),
            format!("/rpc/v1/agents/cmp1/tasks/{id}/result")
        );
        assert_eq!(heartbeat_path("cmp1"), "/rpc/v1/agents/cmp1/heartbeat");
        assert_eq!(tasks_path("cmp1"), "/rpc/v1/agents/cmp1/tasks");
        assert!(REGISTER_PATH.starts_with(API_PREFIX));
    }
}
