//! Virt drivers: what the agent needs from a hypervisor, and its libvirt
//! implementation.
//!
//! The [`VirtDriver`] operations are at the level of Nova's compute driver
//! (spawn, destroy, power on/off, ...), each idempotent where the outcome is
//! already reached: spawning a running instance, destroying a missing one or
//! stopping a stopped one succeeds without doing anything. Calls block (libvirt
//! is synchronous); async callers run them on a blocking thread.

mod bridge;
mod console;
mod disks;
mod guest;
mod images;
mod libvirt;
mod simulated;
mod store;
mod xml;

use novum_wire::{
    ImageSpec, InstancePower, InterfaceSpec, Inventory, LiveMigrationControl, PowerState,
    RebootType, SpawnSpec, TaskAnswer,
};
use uuid::Uuid;

pub use bridge::{DeviceKind, MAX_DEVICE_NAME, device_kind, ensure_bridge, valid_device_name};
pub use console::{
    DEFAULT_SERIAL_LISTEN, DEFAULT_SERIAL_PORT_RANGE, SerialConsoleOptions, SerialListen,
    parse_port_range, read_console_log, serial_listeners, serial_xml,
};
pub use disks::{
    CONSOLE_LOG, DiskInfo, EPHEMERAL_DISK, InstanceFiles, KERNEL_FILE, RAMDISK_FILE, RESCUE_DISK,
    RESCUE_KERNEL_FILE, RESCUE_RAMDISK_FILE, ROOT_DISK, SWAP_DISK, disk_info, qemu_img,
};
pub use images::{
    BASE_DIR, CachedImage, ImageCache, ImageData, ImageSource, check_image_id, upload_info,
};
pub use libvirt::{
    DEFAULT_CLEAN_SHUTDOWN_TIMEOUT, DEFAULT_INSTANCES_PATH, DEFAULT_INTERFACE_DETACH_TIMEOUT,
    LibvirtDriver, LibvirtOptions, VirtType, parse_mac,
};
use libvirt::{libvirt_text, lv};
pub use simulated::{SimulatedDriver, SimulatedHost};
pub use store::{DOMAIN_STORE_DIR, DomainStore, GuestState, StoredDomain, domain_store_dir};
pub use xml::{
    Capabilities, DEFAULT_KERNEL_CMDLINE, DEFAULT_X86_MACHINE_TYPE, DiskLayout, DomainInterface,
    KernelBoot, RescueBoot, add_guest_archs, canonical_arch, choose_guest, config_drive_xml,
    cpu_xml, domain_disk_targets, domain_interfaces, domain_name, domain_xml, find_interface,
    interface_xml, parse_capabilities, rescued_original, test_node_xml, with_device,
    without_interface,
};

/// What went wrong in a driver call.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// libvirt refused or failed.
    #[error("libvirt {op}: {message}")]
    Libvirt {
        /// The operation that failed (`define`, `create`, ...).
        op: &'static str,
        /// libvirt's message.
        message: String,
    },
    /// The instance has no domain on this host.
    #[error("instance {0} has no domain on this host")]
    NotFound(Uuid),
    /// The domain is in a state from which the operation cannot proceed.
    #[error("cannot {op} instance {instance} while it is {state}")]
    InvalidState {
        /// The operation asked for.
        op: &'static str,
        /// The instance.
        instance: Uuid,
        /// Its current power state.
        state: PowerState,
    },
    /// The host cannot run what was asked (architecture, hypervisor type, ...).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An XML document could not be read.
    #[error("xml: {0}")]
    Xml(String),
    /// The task carries text libvirt cannot take (a NUL or another control
    /// character in a name, a property, ...): the task fails, nothing is made.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The host's network could not be prepared for an interface (its
    /// bridge could not be made or brought up).
    #[error("host network, bridge {bridge}: {message}")]
    HostNetwork {
        /// The bridge.
        bridge: String,
        /// What went wrong.
        message: String,
    },
    /// An image could not be downloaded, verified or cached.
    #[error("image: {0}")]
    Image(String),
    /// An instance disk (or another of its files) could not be made or removed.
    #[error("disk: {0}")]
    Disk(String),
    /// The config drive could not be made or removed.
    #[error("config drive: {0}")]
    ConfigDrive(String),
    /// The hypervisor cannot offer the CPU a live-migrating guest had on
    /// its source (Nova's `InvalidCPUInfo` from `_compare_cpu`); the
    /// detail is libvirt's answer.
    #[error("{CPU_INCOMPATIBLE} {0} Refer to {CPU_COMPARE_REFERENCE}")]
    CpuIncompatible(String),
    /// A hot-unplugged interface was still in the guest after the timeout
    /// (the guest did not release it).
    #[error("interface {mac_address} of instance {instance} was not released by the guest in time")]
    DetachTimeout {
        /// The instance.
        instance: Uuid,
        /// The interface's MAC address.
        mac_address: String,
    },
}

/// How a live migration's preparation fails when the destination cannot
/// offer the source's CPU (Nova's message).
pub const CPU_INCOMPATIBLE: &str = "Unacceptable CPU info: CPU doesn't have compatibility.";

/// Where libvirt explains the CPU comparison's answers (Nova's message
/// names it too).
pub const CPU_COMPARE_REFERENCE: &str =
    "http://libvirt.org/html/libvirt-libvirt-host.html#virCPUCompareResult";

/// A hypervisor the agent drives. Every method blocks.
pub trait VirtDriver: Send + Sync {
    /// The host's resources and capabilities. `host_ip` is left for the agent to fill.
    fn inventory(&self) -> Result<Inventory, DriverError>;

    /// What `uptime` says on the host (C locale), as Nova's libvirt driver
    /// reports it; `None` when it cannot be run.
    fn uptime(&self) -> Option<String> {
        let output = std::process::Command::new("uptime")
            .env("LANG", "C")
            .output()
            .ok()
            .filter(|output| output.status.success())?;
        let text = String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_string();
        (!text.is_empty()).then_some(text)
    }

    /// Every domain on the hypervisor with its power state.
    fn list_instances(&self) -> Result<Vec<InstancePower>, DriverError>;

    /// The power state of an instance, `None` when it has no domain.
    fn power_state(&self, instance: Uuid) -> Result<Option<PowerState>, DriverError>;

    /// Define the instance's domain from the spec and boot it. If the domain
    /// exists already it is only started (when not running).
    fn spawn(&self, instance: Uuid, spec: &SpawnSpec) -> Result<(), DriverError>;

    /// Define the domain from the spec, replacing an existing definition
    /// (powered off first), and boot it when `power_on`. Delivered twice, it
    /// ends in the same place.
    fn redefine(&self, instance: Uuid, spec: &SpawnSpec, power_on: bool)
    -> Result<(), DriverError>;

    /// Power off and undefine the domain. No domain: nothing to do.
    fn destroy(&self, instance: Uuid) -> Result<(), DriverError>;

    /// Boot a stopped domain (or continue a paused one). Running: nothing to do.
    fn power_on(&self, instance: Uuid) -> Result<(), DriverError>;

    /// Clean shutdown, then a hard stop after the driver's timeout.
    /// Already off: nothing to do.
    fn power_off(&self, instance: Uuid) -> Result<(), DriverError>;

    /// Reboot. Soft asks the guest and falls back to hard.
    fn reboot(&self, instance: Uuid, reboot_type: RebootType) -> Result<(), DriverError>;

    /// Pause the vCPUs. Paused already: nothing to do.
    fn pause(&self, instance: Uuid) -> Result<(), DriverError>;

    /// Continue a paused domain. Running: nothing to do.
    fn unpause(&self, instance: Uuid) -> Result<(), DriverError>;

    /// Save memory to disk and stop. Suspended already: nothing to do.
    fn suspend(&self, instance: Uuid) -> Result<(), DriverError>;

    /// Restore a suspended domain. Running: nothing to do.
    fn resume(&self, instance: Uuid) -> Result<(), DriverError>;

    /// Plug `interface` into the domain: into the running guest and the
    /// persistent definition when it runs or is paused, into the definition
    /// when it is off (a suspended domain refuses). The host bridge is made
    /// first. Plugged already: nothing to do.
    fn attach_interface(
        &self,
        instance: Uuid,
        interface: &InterfaceSpec,
    ) -> Result<(), DriverError>;

    /// Brings back the guests the hypervisor lost while the agent was away
    /// (libvirt's test driver, whose domains die with the agent process:
    /// the domain store's, defined again and the running ones started, as a
    /// host booting with `resume_guests_state_on_host_boot`). Already
    /// defined ones are left as they are. The agent calls it once the
    /// controller has said which domains are no longer this host's and
    /// those are destroyed. Default: nothing to bring back.
    fn resume_guests(&self) -> Result<(), DriverError> {
        Ok(())
    }

    /// Where the driver downloads images from (the agent sets the
    /// controller's image service once it has its credential). Drivers
    /// that need no images ignore it.
    fn set_image_source(&self, source: std::sync::Arc<dyn ImageSource>) {
        let _ = source;
    }

    /// Unplug the interface with `mac_address` (of port `port_id`) from the
    /// running guest and the persistent definition. Not plugged, or no
    /// domain: nothing to do.
    fn detach_interface(
        &self,
        instance: Uuid,
        port_id: Uuid,
        mac_address: &str,
    ) -> Result<(), DriverError>;

    /// The guest's console log, its last `lines` lines (all when `None`) of
    /// at most [`novum_wire::MAX_CONSOLE_BYTES`], as printable text
    /// ([`TaskAnswer::ConsoleOutput`]). No domain: [`DriverError::NotFound`].
    fn console_output(&self, instance: Uuid, lines: Option<u32>)
    -> Result<TaskAnswer, DriverError>;

    /// Where the guest's serial console listens
    /// ([`TaskAnswer::SerialConsole`]), or [`TaskAnswer::ConsoleUnavailable`]
    /// when its domain has no TCP serial port. No domain:
    /// [`DriverError::NotFound`].
    fn serial_console(&self, instance: Uuid) -> Result<TaskAnswer, DriverError>;

    /// Copies the instance's root disk into the snapshot image `image_id`
    /// and uploads it through the image source (see
    /// [`novum_wire::TaskAction::Snapshot`]); `base_image_id` is the image
    /// the instance was booted from. No domain: [`DriverError::NotFound`].
    fn snapshot(
        &self,
        instance: Uuid,
        image_id: &str,
        base_image_id: &str,
    ) -> Result<(), DriverError> {
        let _ = (instance, base_image_id);
        Err(DriverError::Unsupported(format!(
            "this driver cannot snapshot (image {image_id})"
        )))
    }
    /// Set `user`'s password in the running guest through the QEMU guest
    /// agent ([`TaskAnswer::PasswordSet`]), as Nova's libvirt driver: a
    /// KVM/QEMU guest whose image does not say it runs the agent
    /// (`qemu_guest_agent`) is refused, as is a guest that does not run or
    /// an agent that does not answer ([`TaskAnswer::Refused`]). No domain:
    /// [`DriverError::NotFound`].
    fn set_password(
        &self,
        instance: Uuid,
        user: &str,
        password: &str,
        qemu_guest_agent: bool,
    ) -> Result<TaskAnswer, DriverError>;

    /// Inject a non-maskable interrupt into the running guest (Nova's
    /// `trigger_crash_dump`). Not running, or the hypervisor cannot:
    /// an error saying so.
    fn trigger_crash_dump(&self, instance: Uuid) -> Result<(), DriverError>;

    /// The running guest's statistics ([`TaskAnswer::Diagnostics`]), or
    /// [`TaskAnswer::Refused`] with its power state when it does not run.
    /// No domain: [`DriverError::NotFound`].
    fn diagnostics(&self, instance: Uuid) -> Result<TaskAnswer, DriverError>;

    /// Rebuild from `spec.image` (see [`novum_wire::TaskAction::Rebuild`]):
    /// power off, make the root disk (and, unless `preserve_ephemeral`, the
    /// ephemeral disk) again, then as [`VirtDriver::redefine`].
    fn rebuild(
        &self,
        instance: Uuid,
        spec: &SpawnSpec,
        power_on: bool,
        preserve_ephemeral: bool,
    ) -> Result<(), DriverError>;

    /// Boot from `rescue_image` with the root disk second, keeping the
    /// definition to restore (see [`novum_wire::TaskAction::Rescue`]).
    fn rescue(
        &self,
        instance: Uuid,
        spec: &SpawnSpec,
        rescue_image: &ImageSpec,
    ) -> Result<(), DriverError>;

    /// Restore the definition [`VirtDriver::rescue`] kept, remove the
    /// rescue files and boot (see [`novum_wire::TaskAction::Unrescue`]).
    fn unrescue(&self, instance: Uuid) -> Result<(), DriverError>;

    /// The destination of a live migration gets ready (see
    /// [`novum_wire::TaskAction::PreLiveMigration`]), once its hypervisor
    /// has said it can offer `source_cpu` (when known).
    fn pre_live_migration(
        &self,
        _instance: Uuid,
        _spec: &SpawnSpec,
        _block_migration: bool,
        _source_cpu: Option<&novum_wire::CpuInfo>,
    ) -> Result<(), DriverError> {
        Err(DriverError::Unsupported(
            "this hypervisor cannot live-migrate".to_string(),
        ))
    }

    /// Moves the running guest to another host (see
    /// [`novum_wire::TaskAction::LiveMigrate`]); a failure leaves it here.
    fn live_migrate(&self, _instance: Uuid, _job: &LiveMigrationJob) -> Result<(), DriverError> {
        Err(DriverError::Unsupported(
            "this hypervisor cannot live-migrate".to_string(),
        ))
    }

    /// The guest arrived (see [`novum_wire::TaskAction::PostLiveMigration`]).
    fn post_live_migration(&self, _instance: Uuid, _spec: &SpawnSpec) -> Result<(), DriverError> {
        Err(DriverError::Unsupported(
            "this hypervisor cannot live-migrate".to_string(),
        ))
    }

    /// Aborts, forces or reports the running live migration of `instance`
    /// (see [`novum_wire::TaskAction::LiveMigrationControl`]).
    fn control_live_migration(
        &self,
        _instance: Uuid,
        _control: LiveMigrationControl,
    ) -> Result<TaskAnswer, DriverError> {
        Err(DriverError::Unsupported(
            "this hypervisor cannot live-migrate".to_string(),
        ))
    }
}

/// What the source of a live migration is asked (the fields of
/// [`novum_wire::TaskAction::LiveMigrate`]).
#[derive(Debug, Clone)]
pub struct LiveMigrationJob<'a> {
    /// The destination compute host's name.
    pub destination: &'a str,
    /// The destination's address.
    pub destination_ip: &'a str,
    /// Copy the disks too.
    pub block_migration: bool,
    /// The domain as the destination defines it.
    pub spec: &'a SpawnSpec,
}

/// A test-driver node file on disk describing a host of a given size (see
/// [`test_node_xml`]); removed again when dropped. Open [`TestNode::uri`] with
/// [`LibvirtDriver::open`] to get a fake hypervisor with private state.
#[derive(Debug)]
pub struct TestNode {
    path: std::path::PathBuf,
}

impl TestNode {
    /// Write a node file for `vcpus` CPUs and `memory_mb` MiB under the temp dir.
    pub fn create(vcpus: u32, memory_mb: u64) -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!("novum-node-{}.xml", Uuid::new_v4()));
        std::fs::write(&path, test_node_xml(vcpus, memory_mb))?;
        Ok(TestNode { path })
    }

    /// `test:///<absolute path of the file>`.
    pub fn uri(&self) -> String {
        format!("test://{}", self.path.display())
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
