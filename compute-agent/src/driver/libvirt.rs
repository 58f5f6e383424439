//! [`VirtDriver`] on libvirt through the `virt` crate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use std::collections::HashSet;

use novum_wire::{
    ImageSpec, InstancePower, InterfaceSpec, Inventory, PowerState, RebootType, SpawnSpec,
    TaskAnswer,
};
use tracing::{debug, info, warn};
use uuid::Uuid;
use virt::connect::Connect;
use virt::domain::Domain;
use virt::error::ErrorNumber;
use virt::storage_pool::StoragePool;
use virt::sys;

use super::bridge;
use super::console::{self, CONSOLE_LOG, SerialConsoleOptions, SerialListen};
use super::disks::{self, InstanceFiles};
use super::guest;
use super::images::{ImageCache, ImageSource};
use super::store::{DomainStore, GuestState, StoredDomain};
use super::xml::{self, DiskLayout, KernelBoot};
use super::{DriverError, VirtDriver};
use crate::config_drive;

mod live_migration;

/// How long a clean shutdown may take before the domain is stopped hard
/// (Nova's `shutdown_timeout` default).
pub const DEFAULT_CLEAN_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// Where instance disks live by default.
pub const DEFAULT_INSTANCES_PATH: &str = "/var/lib/novum/instances";

/// How long a hot-unplugged interface may take to leave the guest before
/// the detach fails (Nova waits about as long).
pub const DEFAULT_INTERFACE_DETACH_TIMEOUT: Duration = Duration::from_secs(20);

/// How often the state is polled while waiting for a clean shutdown (and
/// the domain while waiting for an unplugged interface to go).
const SHUTDOWN_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Smallest and largest MTU an interface may ask for (Linux's IPv4 minimum,
/// the 16-bit maximum).
const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=65535;

const BYTES_PER_GIB: u64 = 1024 * 1024 * 1024;

/// The files one boot of an instance is made of: the disk it boots from
/// and a direct kernel boot's kernel and ramdisk.
struct BootFiles {
    /// The disk booted from.
    disk: &'static str,
    /// The kernel file.
    kernel: &'static str,
    /// The ramdisk file.
    ramdisk: &'static str,
    /// Whether the flavor's ephemeral and swap disks come with it.
    data_disks: bool,
}

/// The instance's own boot: the root disk, ephemeral and swap.
const INSTANCE_BOOT: BootFiles = BootFiles {
    disk: disks::ROOT_DISK,
    kernel: disks::KERNEL_FILE,
    ramdisk: disks::RAMDISK_FILE,
    data_disks: true,
};

/// The files a rescue makes, removed at unrescue.
const RESCUE_FILES: [&str; 3] = [
    disks::RESCUE_DISK,
    disks::RESCUE_KERNEL_FILE,
    disks::RESCUE_RAMDISK_FILE,
];

/// A rescue: the rescue disk, with a kernel and ramdisk of its own.
const RESCUE_BOOT: BootFiles = BootFiles {
    disk: disks::RESCUE_DISK,
    kernel: disks::RESCUE_KERNEL_FILE,
    ramdisk: disks::RESCUE_RAMDISK_FILE,
    data_disks: false,
};

/// Settings of a [`LibvirtDriver`].
#[derive(Debug, Clone)]
pub struct LibvirtOptions {
    /// Directory holding one sub-directory of disks per instance.
    pub instances_path: String,
    /// Storage pool whose capacity is the host's disk; `None`: the first active pool.
    pub storage_pool: Option<String>,
    /// Disk size to report instead of the pool's capacity.
    pub disk_gb: Option<u64>,
    /// Hypervisor hostname to report instead of libvirt's (useful when several
    /// test-driver hosts share one machine).
    pub hypervisor_hostname: Option<String>,
    /// Clean-shutdown timeout of [`VirtDriver::power_off`].
    pub clean_shutdown_timeout: Duration,
    /// Guest architectures a host on libvirt's *test* driver reports on top of
    /// the test driver's own (which knows only `i686`), with the same
    /// hypervisor types and VM modes. The test driver runs nothing, so it can
    /// stand in for a host of any architecture; a real hypervisor ignores this
    /// and reports only what libvirt says it can run.
    pub test_guest_archs: Vec<String>,
    /// Directory remembering the domains this driver defines, restored when
    /// the hypervisor lost them (see [`DomainStore`]); for the test driver,
    /// whose domains die with the agent process. `None`: nothing kept.
    pub domain_store: Option<PathBuf>,
    /// How long [`VirtDriver::detach_interface`] waits for the guest to
    /// release a hot-unplugged interface.
    pub interface_detach_timeout: Duration,
    /// Which accelerator real guests use (Nova's `[libvirt] virt_type`).
    pub virt_type: VirtType,
    /// The guests' serial console (a TCP port each, for the controller's
    /// console proxy); `None` (the default, as Nova's `[serial_console]
    /// enabled = false`): the serial device only logs.
    pub serial_console: Option<SerialConsoleOptions>,
    /// The most a live migration from this host may send, MiB/s (Nova's
    /// `[libvirt] live_migration_bandwidth`, libvirt's
    /// `VIR_MIGRATE_PARAM_BANDWIDTH`, which bounds the disks' copy too);
    /// `None`: as fast as the link goes.
    pub live_migration_bandwidth: Option<u64>,
}

/// Which accelerator the guests of a QEMU host run on (Nova's `[libvirt]
/// virt_type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VirtType {
    /// KVM when a probe guest runs under it, else QEMU's TCG emulation.
    #[default]
    Auto,
    /// Hardware virtualisation (`<domain type='kvm'>`) only.
    Kvm,
    /// QEMU's TCG emulation (`<domain type='qemu'>`) only.
    Qemu,
}

impl std::str::FromStr for VirtType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(VirtType::Auto),
            "kvm" => Ok(VirtType::Kvm),
            "qemu" => Ok(VirtType::Qemu),
            other => Err(format!("unknown virt type {other:?} (auto, kvm or qemu)")),
        }
    }
}

impl std::fmt::Display for VirtType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VirtType::Auto => "auto",
            VirtType::Kvm => "kvm",
            VirtType::Qemu => "qemu",
        })
    }
}

/// How long the KVM probe guest of [`VirtType::Auto`] may take to reach
/// its firmware's "no bootable device" (a working KVM takes well under a
/// second; a broken one never gets there).
const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for LibvirtOptions {
    fn default() -> Self {
        LibvirtOptions {
            instances_path: DEFAULT_INSTANCES_PATH.to_string(),
            storage_pool: None,
            disk_gb: None,
            hypervisor_hostname: None,
            clean_shutdown_timeout: DEFAULT_CLEAN_SHUTDOWN_TIMEOUT,
            test_guest_archs: Vec::new(),
            domain_store: None,
            interface_detach_timeout: DEFAULT_INTERFACE_DETACH_TIMEOUT,
            virt_type: VirtType::Auto,
            serial_console: None,
            live_migration_bandwidth: None,
        }
    }
}

/// A libvirt connection, closed when dropped (`virt::Connect` does not close itself).
struct Connection(Connect);

impl Drop for Connection {
    fn drop(&mut self) {
        if let Err(e) = self.0.close() {
            warn!(error = %e, "closing the libvirt connection");
        }
    }
}

/// The libvirt driver. It keeps ONE connection for its lifetime: each connection
/// to a test-driver node file has private state, so reopening would lose every
/// domain.
pub struct LibvirtDriver {
    conn: Connection,
    uri: String,
    /// Whether this is libvirt's test driver, which runs nothing: no host
    /// bridges are made for it (see [`LibvirtDriver::ensure_bridges`]).
    test_driver: bool,
    options: LibvirtOptions,
    store: Option<DomainStore>,
    /// The libvirt domain types real guests may use (from
    /// [`LibvirtOptions::virt_type`], after the KVM probe); empty on the
    /// test driver (no filter).
    hv_types: Vec<String>,
    /// The host's image cache (real hypervisors).
    images: ImageCache,
    /// Where images come from, once the agent has said.
    image_source: RwLock<Option<Arc<dyn ImageSource>>>,
    /// Held from choosing a serial console port to defining the domain
    /// that gets it, so two spawns never choose the same one.
    serial_ports: std::sync::Mutex<()>,
    /// The live migrations running from this host.
    live_jobs: live_migration::Jobs,
}

/// The libvirt domain types the guests of a real hypervisor may use, from
/// `options.virt_type`: `kvm` or `qemu` as asked, or for
/// [`VirtType::Auto`] both when a KVM probe guest runs, else `qemu` alone.
/// Logs the choice.
fn resolve_virt_type(conn: &Connect, options: &LibvirtOptions) -> Result<Vec<String>, DriverError> {
    let caps = xml::parse_capabilities(&conn.get_capabilities().map_err(lv("capabilities"))?)?;
    let offered = |hv: &str| caps.supported_instances.iter().any(|s| s.hv_type == hv);
    let hv_types: Vec<String> = match options.virt_type {
        VirtType::Kvm => vec!["kvm".into()],
        VirtType::Qemu => vec!["qemu".into()],
        VirtType::Auto if offered("kvm") && kvm_probe(conn, &caps, options)? => {
            vec!["kvm".into(), "qemu".into()]
        }
        VirtType::Auto => vec!["qemu".into()],
    };
    info!(
        virt_type = %options.virt_type,
        domain_types = ?hv_types,
        "guests run as {}",
        if hv_types[0] == "kvm" { "KVM (hardware virtualisation)" } else { "QEMU TCG (emulation)" }
    );
    Ok(hv_types)
}

/// Whether a KVM guest runs on this host: a probe domain without disks
/// boots its firmware (SeaBIOS, printing to the serial port), which must
/// reach "No bootable device" within [`KVM_PROBE_TIMEOUT`]. On hosts whose
/// KVM is broken (nested virtualisation without what the guest needs) the
/// vCPU hangs in the firmware or dies with "KVM internal error".
fn kvm_probe(
    conn: &Connect,
    caps: &xml::Capabilities,
    options: &LibvirtOptions,
) -> Result<bool, DriverError> {
    let dir = Path::new(&options.instances_path);
    std::fs::create_dir_all(dir)
        .map_err(|e| DriverError::Disk(format!("creating {}: {e}", dir.display())))?;
    let probe_dir = dir.join(format!(".kvm-probe-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&probe_dir)
        .map_err(|e| DriverError::Disk(format!("creating {}: {e}", probe_dir.display())))?;
    let log = probe_dir.join(super::disks::CONSOLE_LOG);
    let name = format!("novum-kvm-probe-{}", Uuid::new_v4());
    let machine = if caps.cpu.arch == "x86_64" || caps.cpu.arch == "i686" {
        format!(" machine='{}'", xml::DEFAULT_X86_MACHINE_TYPE)
    } else {
        String::new()
    };
    let definition = format!(
        "<domain type='kvm'>\n  <name>{name}</name>\n  <memory unit='MiB'>32</memory>\n  <vcpu>1</vcpu>\n  \
         <os>\n    <type arch='{}'{machine}>hvm</type>\n    <bios useserial='yes'/>\n  </os>\n  \
         <on_poweroff>destroy</on_poweroff>\n  <devices>\n{}  </devices>\n</domain>\n",
        xml::escape(&caps.cpu.arch),
        console::serial_xml(&probe_dir.to_string_lossy(), None, "    ")
    );
    let works = match Domain::create_xml(conn, &definition, 0) {
        Ok(domain) => {
            let deadline = Instant::now() + KVM_PROBE_TIMEOUT;
            let mut works = false;
            while Instant::now() < deadline && domain.is_active().unwrap_or(false) {
                let text = std::fs::read(&log).unwrap_or_default();
                if String::from_utf8_lossy(&text).contains("No bootable device") {
                    works = true;
                    break;
                }
                thread::sleep(SHUTDOWN_POLL_INTERVAL);
            }
            if domain.is_active().unwrap_or(false)
                && let Err(e) = domain.destroy()
            {
                warn!(error = %e, "stopping the KVM probe guest");
            }
            works
        }
        Err(e) => {
            warn!(error = %e.message(), "the KVM probe guest did not start");
            false
        }
    };
    let _ = std::fs::remove_dir_all(&probe_dir);
    if !works {
        warn!("KVM guests do not run on this host; falling back to QEMU TCG");
    }
    Ok(works)
}

pub(super) fn lv(op: &'static str) -> impl FnOnce(virt::error::Error) -> DriverError {
    move |e| DriverError::Libvirt {
        op,
        message: e.message().to_string(),
    }
}

/// `text` (named `what` in the error) if C and XML can take it: the `virt`
/// crate turns every string into a C string and panics on a NUL, and XML 1.0
/// holds no control character but tab, line feed and carriage return.
pub(super) fn libvirt_text<'a>(what: &str, text: &'a str) -> Result<&'a str, DriverError> {
    match text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        Some(c) => Err(DriverError::InvalidInput(format!(
            "the {what} contains the control character U+{:04X}, which libvirt cannot take",
            u32::from(c)
        ))),
        None => Ok(text),
    }
}

/// `text` as a MAC address in libvirt's spelling (lower-case hex octets
/// separated by colons), or why it is not one: six octets of two hex
/// digits, separated by `:`, unicast and not all zero.
pub fn parse_mac(text: &str) -> Result<String, DriverError> {
    let invalid = |why: &str| {
        DriverError::InvalidInput(format!(
            "the MAC address {:?} {why}",
            crate::execute::printable(text)
        ))
    };
    let octets = text
        .split(':')
        .map(|octet| {
            if octet.len() == 2 && octet.bytes().all(|b| b.is_ascii_hexdigit()) {
                u8::from_str_radix(octet, 16).ok()
            } else {
                None
            }
        })
        .collect::<Option<Vec<u8>>>()
        .filter(|octets| octets.len() == 6)
        .ok_or_else(|| invalid("is not six hex octets separated by colons"))?;
    if octets[0] & 1 == 1 {
        return Err(invalid("is a multicast address"));
    }
    if octets.iter().all(|&b| b == 0) {
        return Err(invalid("is all zero"));
    }
    Ok(octets
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// Checks what of `interface` goes to libvirt and the host: the MAC, the
/// bridge name (a Linux device name), the MTU.
fn check_interface(interface: &InterfaceSpec) -> Result<(), DriverError> {
    parse_mac(&interface.mac_address)?;
    if !bridge::valid_device_name(&interface.bridge) {
        return Err(DriverError::InvalidInput(format!(
            "the bridge {:?} of port {} is not a Linux device name (1 to {} letters, digits, '-', '_', '.')",
            crate::execute::printable(&interface.bridge),
            interface.port_id,
            bridge::MAX_DEVICE_NAME
        )));
    }
    if let Some(mtu) = interface.mtu
        && !MTU_RANGE.contains(&mtu)
    {
        return Err(DriverError::InvalidInput(format!(
            "the MTU {mtu} of port {} is outside {}..={}",
            interface.port_id,
            MTU_RANGE.start(),
            MTU_RANGE.end()
        )));
    }
    Ok(())
}

/// Checks every text of `spec` with [`libvirt_text`], so that the error
/// names the field (the domain XML is checked again as a whole when defined),
/// and every interface with [`check_interface`] (no port or MAC twice).
fn check_spec(spec: &SpawnSpec) -> Result<(), DriverError> {
    libvirt_text("server name", &spec.name)?;
    libvirt_text("flavor name", &spec.flavor.name)?;
    libvirt_text("image id", &spec.image.id)?;
    for (key, value) in &spec.image.properties {
        libvirt_text("image property name", key)?;
        libvirt_text(&format!("image property {key}"), value)?;
    }
    for (key, value) in &spec.metadata {
        libvirt_text("metadata key", key)?;
        libvirt_text(&format!("metadata item {key}"), value)?;
    }
    if let Some(user_data) = &spec.user_data {
        libvirt_text("user data", user_data)?;
    }
    let mut ports = HashSet::new();
    let mut macs = HashSet::new();
    for interface in &spec.interfaces {
        check_interface(interface)?;
        if !ports.insert(interface.port_id) {
            return Err(DriverError::InvalidInput(format!(
                "port {} is given twice",
                interface.port_id
            )));
        }
        if !macs.insert(parse_mac(&interface.mac_address)?) {
            return Err(DriverError::InvalidInput(format!(
                "the MAC address {} is given twice",
                interface.mac_address
            )));
        }
    }
    Ok(())
}

/// Whether libvirt answered that the driver cannot do this at all.
fn unsupported(error: &virt::error::Error) -> bool {
    error.code() == ErrorNumber::NoSupport
}

/// Defines (or redefines) a domain from `xml`, refusing what libvirt cannot take.
fn define(conn: &Connect, xml: &str) -> Result<Domain, DriverError> {
    Domain::define_xml(conn, libvirt_text("domain definition", xml)?).map_err(lv("define"))
}

/// Nova's power state for a libvirt domain state. A shut-off domain with a
/// managed-save image is `SUSPENDED` (that is how [`VirtDriver::suspend`] leaves it).
fn power_state_of(state: sys::virDomainState, managed_save: bool) -> PowerState {
    match state {
        sys::VIR_DOMAIN_RUNNING | sys::VIR_DOMAIN_BLOCKED => PowerState::Running,
        sys::VIR_DOMAIN_PAUSED => PowerState::Paused,
        sys::VIR_DOMAIN_SHUTDOWN => PowerState::Shutdown,
        sys::VIR_DOMAIN_SHUTOFF if managed_save => PowerState::Suspended,
        sys::VIR_DOMAIN_SHUTOFF => PowerState::Shutdown,
        sys::VIR_DOMAIN_CRASHED => PowerState::Crashed,
        sys::VIR_DOMAIN_PMSUSPENDED => PowerState::Suspended,
        _ => PowerState::NoState,
    }
}

impl LibvirtDriver {
    /// Open `uri` (`test:///default`, `test:///abs/node.xml`, `qemu:///system`)
    /// and restore the domains the hypervisor lost (see
    /// [`LibvirtDriver::open_deferred`]).
    pub fn open(uri: &str, options: LibvirtOptions) -> Result<Self, DriverError> {
        let driver = Self::open_deferred(uri, options)?;
        driver.restore()?;
        Ok(driver)
    }

    /// Open `uri` without restoring the remembered domains yet: the agent
    /// first destroys the ones evacuated away from this host, then calls
    /// [`VirtDriver::resume_guests`].
    pub fn open_deferred(uri: &str, options: LibvirtOptions) -> Result<Self, DriverError> {
        static SILENCE: Once = Once::new();
        // libvirt prints every error to stderr by default; ours are values.
        SILENCE.call_once(virt::error::clear_error_callback);
        let conn =
            Connection(Connect::open(Some(libvirt_text("libvirt URI", uri)?)).map_err(lv("open"))?);
        let test_driver = conn
            .0
            .get_type()
            .map_err(lv("hypervisor type"))?
            .eq_ignore_ascii_case("test");
        info!(uri, test_driver, "libvirt connection open");
        let store = options.domain_store.as_ref().map(DomainStore::new);
        let hv_types = if test_driver {
            Vec::new()
        } else {
            resolve_virt_type(&conn.0, &options)?
        };
        let images = ImageCache::new(Path::new(&options.instances_path));
        let driver = LibvirtDriver {
            conn,
            uri: uri.to_string(),
            test_driver,
            options,
            store,
            hv_types,
            images,
            image_source: RwLock::new(None),
            serial_ports: std::sync::Mutex::new(()),
            live_jobs: live_migration::Jobs::default(),
        };
        Ok(driver)
    }

    /// Defines again the remembered domains the hypervisor does not know, and
    /// starts those that were running.
    fn restore(&self) -> Result<(), DriverError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let domains = store.all().map_err(|e| DriverError::Libvirt {
            op: "read the domain store",
            message: e.to_string(),
        })?;
        let mut restored = 0;
        for stored in domains {
            if self.lookup(stored.instance)?.is_some() {
                continue;
            }
            let domain = define(&self.conn.0, &stored.xml)?;
            if stored.running {
                self.start(&domain)?;
                match stored.guest {
                    GuestState::Running => {}
                    GuestState::Paused => domain.suspend().map(drop).map_err(lv("pause"))?,
                    GuestState::Suspended => domain
                        .managed_save(0)
                        .map(drop)
                        .map_err(lv("managed save"))?,
                }
            }
            restored += 1;
        }
        if restored > 0 {
            info!(uri = %self.uri, restored, "restored the domains the hypervisor had lost");
        }
        Ok(())
    }

    /// Records in the domain store (if any) what became of `instance`:
    /// `Some(running)` for a live domain, `None` once it is gone. A store that
    /// cannot be written is logged, not fatal: the hypervisor did the work.
    fn remember(&self, instance: Uuid, running: Option<bool>, xml: Option<&str>) {
        if let Some(running) = running {
            self.note_test_console(instance, &[if running { "running" } else { "shut off" }]);
        }
        let Some(store) = &self.store else { return };
        let result = match (running, xml) {
            (Some(running), Some(xml)) => store.save(&StoredDomain {
                instance,
                xml: xml.to_string(),
                running,
                guest: GuestState::Running,
            }),
            (Some(running), None) => store.set_running(instance, running),
            (None, _) => store.forget(instance),
        };
        if let Err(e) = result {
            warn!(%instance, error = %e, "cannot update the domain store");
        }
    }

    /// Records in the domain store (if any) the persistent definition of
    /// `instance` as libvirt has it now (after an interface came or went).
    fn remember_definition(&self, instance: Uuid, domain: &Domain) {
        let Some(store) = &self.store else { return };
        let result = Self::definition(domain).and_then(|xml| {
            store
                .set_xml(instance, &xml)
                .map_err(|e| DriverError::Libvirt {
                    op: "write the domain store",
                    message: e.to_string(),
                })
        });
        if let Err(e) = result {
            warn!(%instance, error = %e, "cannot update the domain store");
        }
    }

    /// Records in the domain store (if any) that the running guest of
    /// `instance` is now `guest` (paused, suspended, or running again).
    fn remember_guest(&self, instance: Uuid, guest: GuestState) {
        self.note_test_console(
            instance,
            &[match guest {
                GuestState::Running => "running",
                GuestState::Paused => "paused",
                GuestState::Suspended => "suspended",
            }],
        );
        let Some(store) = &self.store else { return };
        if let Err(e) = store.set_guest(instance, guest) {
            warn!(%instance, error = %e, "cannot update the domain store");
        }
    }

    /// libvirt's test driver runs no guest, so nothing writes a serial
    /// console: on it the driver keeps the instance's console log itself,
    /// recording what happened to the domain — its virtual hardware when it
    /// is made, then each change of its power state (`lines`, one per
    /// line, after a timestamp). Real hypervisors' guests write their own;
    /// a log that cannot be written is logged, not fatal.
    fn note_test_console(&self, instance: Uuid, lines: &[&str]) {
        if !self.test_driver {
            return;
        }
        let files = InstanceFiles::new(Path::new(&self.options.instances_path), instance);
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let text: String = lines
            .iter()
            .map(|line| format!("[{stamp}] {line}\n"))
            .collect();
        let written = files.create_dir().and_then(|()| {
            use std::io::Write as _;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(files.path(CONSOLE_LOG))
                .and_then(|mut log| log.write_all(text.as_bytes()))
                .map_err(|error| DriverError::Disk(error.to_string()))
        });
        if let Err(error) = written {
            warn!(%instance, %error, "cannot write the test driver's console log");
        }
    }

    /// The hypervisor type guests run as (Nova's `[libvirt] virt_type`):
    /// the first domain type real guests may use, `test` on the test driver.
    fn hypervisor(&self) -> &str {
        self.hv_types.first().map(String::as_str).unwrap_or("test")
    }

    /// The driver's libvirt connection, for inspecting what the driver made.
    pub fn connect(&self) -> &Connect {
        &self.conn.0
    }

    /// The URI this driver is connected to.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    fn lookup(&self, instance: Uuid) -> Result<Option<Domain>, DriverError> {
        match Domain::lookup_by_uuid_string(&self.conn.0, &instance.to_string()) {
            Ok(domain) => Ok(Some(domain)),
            Err(e) if e.code() == ErrorNumber::NoDomain => Ok(None),
            Err(e) => Err(lv("lookup")(e)),
        }
    }

    fn domain(&self, instance: Uuid) -> Result<Domain, DriverError> {
        self.lookup(instance)?
            .ok_or(DriverError::NotFound(instance))
    }

    fn state_of(domain: &Domain) -> Result<PowerState, DriverError> {
        let (state, _reason) = domain.get_state().map_err(lv("get state"))?;
        let managed_save = state == sys::VIR_DOMAIN_SHUTOFF
            && domain.has_managed_save(0).map_err(lv("has managed save"))?;
        Ok(power_state_of(state, managed_save))
    }

    fn disk_gb(&self) -> Result<u64, DriverError> {
        if let Some(gb) = self.options.disk_gb {
            return Ok(gb);
        }
        let pool = match &self.options.storage_pool {
            Some(name) => Some(
                StoragePool::lookup_by_name(&self.conn.0, libvirt_text("storage pool", name)?)
                    .map_err(lv("storage pool"))?,
            ),
            None => self
                .conn
                .0
                .list_all_storage_pools(sys::VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)
                .map_err(lv("list storage pools"))?
                .into_iter()
                .next(),
        };
        match pool {
            Some(pool) => {
                Ok(pool.get_info().map_err(lv("storage pool info"))?.capacity / BYTES_PER_GIB)
            }
            None if !self.test_driver => self.instances_path_gb(),
            None => {
                warn!(uri = %self.uri, "no storage pool and no configured disk size: reporting 0 GB");
                Ok(0)
            }
        }
    }

    /// The size of the file system holding the instances path, in GiB.
    fn instances_path_gb(&self) -> Result<u64, DriverError> {
        let path = Path::new(&self.options.instances_path);
        std::fs::create_dir_all(path)
            .map_err(|e| DriverError::Disk(format!("creating {}: {e}", path.display())))?;
        let stat = rustix::fs::statvfs(path)
            .map_err(|e| DriverError::Disk(format!("statvfs {}: {e}", path.display())))?;
        Ok(stat.f_blocks.saturating_mul(stat.f_frsize) / BYTES_PER_GIB)
    }

    /// The image source, or why there is none.
    fn image_source(&self) -> Result<Arc<dyn ImageSource>, DriverError> {
        self.image_source
            .read()
            .ok()
            .and_then(|source| source.clone())
            .ok_or_else(|| {
                DriverError::Image(
                    "no image source: the agent has not connected to the controller".into(),
                )
            })
    }

    /// Makes the files of `instance` a real guest of `spec` needs: the
    /// image (and the kernel and ramdisk of a direct kernel boot) fetched
    /// into the host's cache, the root overlay, ephemeral and swap disks,
    /// and the boot files. The test driver needs none: the plain layout.
    fn prepare_files(&self, instance: Uuid, spec: &SpawnSpec) -> Result<DiskLayout, DriverError> {
        self.prepare_boot_files(instance, spec, &INSTANCE_BOOT)
    }

    /// Makes the files of `instance` that booting `spec.image` as `boot`
    /// says needs (see [`LibvirtDriver::prepare_files`]); for a rescue,
    /// only the rescue disk and the rescue image's kernel and ramdisk.
    fn prepare_boot_files(
        &self,
        instance: Uuid,
        spec: &SpawnSpec,
        boot: &BootFiles,
    ) -> Result<DiskLayout, DriverError> {
        let mut layout = DiskLayout {
            instances_path: self.options.instances_path.clone(),
            ..DiskLayout::default()
        };
        if self.test_driver {
            return Ok(layout);
        }
        let source = self.image_source()?;
        let files = self.files(instance);
        let image = self.images.fetch(source.as_ref(), &spec.image.id)?;
        let kernel = spec
            .image
            .kernel_id()
            .map(|id| self.images.fetch(source.as_ref(), id))
            .transpose()?;
        let ramdisk = spec
            .image
            .ramdisk_id()
            .map(|id| self.images.fetch(source.as_ref(), id))
            .transpose()?;
        if boot.data_disks {
            files.create_disks(&image, &spec.flavor)?;
        } else {
            files.create_overlay(boot.disk, &image, spec.flavor.root_gb)?;
        }
        if let Some(kernel) = kernel {
            let text = |path: PathBuf| path.to_string_lossy().into_owned();
            layout.kernel_boot = Some(KernelBoot {
                kernel: text(files.copy_boot_file(&kernel, boot.kernel)?),
                initrd: ramdisk
                    .map(|ramdisk| files.copy_boot_file(&ramdisk, boot.ramdisk))
                    .transpose()?
                    .map(text),
                cmdline: spec
                    .image
                    .command_line()
                    .unwrap_or(xml::DEFAULT_KERNEL_CMDLINE)
                    .to_string(),
            });
        }
        Ok(layout)
    }

    /// The files of `instance` under the instances path.
    fn files(&self, instance: Uuid) -> InstanceFiles {
        InstanceFiles::new(Path::new(&self.options.instances_path), instance)
    }

    /// Removes the files of `instance` (on the test driver, its console log).
    fn remove_files(&self, instance: Uuid) -> Result<(), DriverError> {
        self.files(instance).remove()
    }

    /// Removes some of the disk files of `instance` (real hypervisors; the
    /// test driver has no disks).
    fn remove_some_files(&self, instance: Uuid, files: &[&str]) -> Result<(), DriverError> {
        if self.test_driver {
            return Ok(());
        }
        self.files(instance).remove_files(files)
    }

    /// Defines the domain of `instance` from `spec` and boots it, making
    /// its files first; on failure nothing of it is left.
    fn create_domain(&self, instance: Uuid, spec: &SpawnSpec) -> Result<String, DriverError> {
        let mut defined = None;
        let result = (|| {
            let layout = self.prepare_files(instance, spec)?;
            self.write_config_drive(instance, spec)?;
            let (domain, definition) = self.define_instance(instance, spec, &layout)?;
            let started = self.start(&domain);
            defined = Some(domain);
            started.map(|()| definition)
        })();
        if let Err(e) = &result {
            warn!(%instance, error = %e, "the guest could not be made; removing what was");
            // Leave nothing half-made behind: a retry starts from scratch.
            if let Some(domain) = defined
                && let Err(undefine) = domain.undefine()
            {
                warn!(%instance, error = %undefine, "undefining after a failed start");
            }
            if let Err(remove) = self.remove_files(instance) {
                warn!(%instance, error = %remove, "removing the files after a failed start");
            }
        }
        result
    }

    /// Boots a defined domain, making the host bridges its interfaces plug
    /// into first (after a host reboot they are gone; a definition alone
    /// needs none, so they are made when a guest is about to use them).
    fn start(&self, domain: &Domain) -> Result<(), DriverError> {
        self.ensure_bridges(|| {
            Ok(xml::domain_interfaces(&Self::definition(domain)?)?
                .into_iter()
                .filter_map(|i| i.bridge.map(|bridge| (bridge, i.mtu)))
                .collect())
        })?;
        domain.create().map(drop).map_err(lv("start"))
    }

    /// Makes sure every `(bridge, mtu)` that `bridges` lists exists on the
    /// host and is up (see [`bridge::ensure_bridge`]). The ONE place that
    /// knows the test driver runs nothing: for it there is no host network
    /// to prepare, and `bridges` is not even asked.
    fn ensure_bridges(
        &self,
        bridges: impl FnOnce() -> Result<Vec<(String, Option<u32>)>, DriverError>,
    ) -> Result<(), DriverError> {
        if self.test_driver {
            return Ok(());
        }
        for (name, mtu) in bridges()? {
            bridge::ensure_bridge(&name, mtu)?;
        }
        Ok(())
    }

    /// Makes the config drive of `instance` when `spec` has one (see
    /// [`crate::config_drive::build`]); not for the test driver, which
    /// reads no file.
    fn write_config_drive(&self, instance: Uuid, spec: &SpawnSpec) -> Result<(), DriverError> {
        match &spec.config_drive {
            Some(files) if !self.test_driver => {
                let image = config_drive::image_path(&self.options.instances_path, instance);
                config_drive::build(files, &image)
            }
            _ => Ok(()),
        }
    }

    /// Removes the config drive of `instance`, if it has one.
    fn remove_config_drive(&self, instance: Uuid) -> Result<(), DriverError> {
        config_drive::remove(&config_drive::image_path(
            &self.options.instances_path,
            instance,
        ))
    }

    /// Defines (or redefines) the domain of `instance` from `spec`, with a
    /// serial console port of its own when the serial console is enabled
    /// (chosen and defined under [`LibvirtDriver::serial_ports`]).
    /// Returns the domain and the definition it was given.
    fn define_instance(
        &self,
        instance: Uuid,
        spec: &SpawnSpec,
        layout: &DiskLayout,
    ) -> Result<(Domain, String), DriverError> {
        let caps = self.capabilities()?;
        let guest = xml::choose_guest(&caps, spec)?;
        let _choosing = self
            .serial_ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let listen = match &self.options.serial_console {
            Some(options) => Some(SerialListen {
                host: options.listen.clone(),
                port: console::choose_port(options, &self.serial_ports_taken(instance)?)?,
            }),
            None => None,
        };
        let definition = xml::domain_xml(instance, spec, &guest, layout, listen.as_ref());
        debug!(%instance, xml = %definition, "defining domain");
        Ok((define(&self.conn.0, &definition)?, definition))
    }

    /// The serial console ports in the definitions of every domain but
    /// `instance`'s (those of stopped domains are not bound, yet taken).
    fn serial_ports_taken(&self, instance: Uuid) -> Result<HashSet<u16>, DriverError> {
        let mut taken = HashSet::new();
        for domain in self
            .conn
            .0
            .list_all_domains(0)
            .map_err(lv("list domains"))?
        {
            if domain.get_uuid_string().ok() == Some(instance.to_string()) {
                continue;
            }
            // A domain that vanished meanwhile holds nothing.
            if let Ok(definition) = Self::definition(&domain) {
                taken.extend(
                    console::serial_listeners(&definition)?
                        .iter()
                        .map(|l| l.port),
                );
            }
        }
        Ok(taken)
    }

    /// The domain's persistent definition.
    fn definition(domain: &Domain) -> Result<String, DriverError> {
        domain
            .get_xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
            .map_err(lv("domain definition"))
    }

    /// The running domain's live definition.
    fn live_definition(domain: &Domain) -> Result<String, DriverError> {
        domain.get_xml_desc(0).map_err(lv("live domain definition"))
    }

    /// Refuses to change the interfaces of a suspended domain: its memory
    /// image holds the devices it had (Nova refuses it too).
    fn interfaces_changeable(
        op: &'static str,
        instance: Uuid,
        domain: &Domain,
    ) -> Result<(), DriverError> {
        match Self::state_of(domain)? {
            PowerState::Suspended => Err(DriverError::InvalidState {
                op,
                instance,
                state: PowerState::Suspended,
            }),
            _ => Ok(()),
        }
    }

    /// Waits until the live domain no longer has the interface `mac`.
    fn wait_unplugged(
        &self,
        instance: Uuid,
        domain: &Domain,
        mac: &str,
    ) -> Result<(), DriverError> {
        let deadline = Instant::now() + self.options.interface_detach_timeout;
        loop {
            if !domain.is_active().map_err(lv("is active"))?
                || xml::find_interface(&Self::live_definition(domain)?, mac)?.is_none()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(DriverError::DetachTimeout {
                    instance,
                    mac_address: mac.to_string(),
                });
            }
            thread::sleep(SHUTDOWN_POLL_INTERVAL);
        }
    }

    fn hard_stop(domain: &Domain) -> Result<(), DriverError> {
        match domain.destroy() {
            Ok(()) => Ok(()),
            // Raced with the guest powering off by itself.
            Err(_) if !domain.is_active().map_err(lv("is active"))? => Ok(()),
            Err(e) => Err(lv("destroy")(e)),
        }
    }

    /// libvirt's capabilities, plus the test driver's stand-in architectures
    /// ([`LibvirtOptions::test_guest_archs`]).
    fn capabilities(&self) -> Result<xml::Capabilities, DriverError> {
        let caps_xml = self.conn.0.get_capabilities().map_err(lv("capabilities"))?;
        let mut caps = xml::parse_capabilities(&caps_xml)?;
        if self.test_driver {
            xml::add_guest_archs(&mut caps, &self.options.test_guest_archs);
        } else {
            caps.supported_instances
                .retain(|s| self.hv_types.contains(&s.hv_type));
        }
        Ok(caps)
    }

    /// Shuts the domain of `instance` down: cleanly, then hard after the
    /// timeout (nothing to do when it is not running).
    fn shut_down(&self, instance: Uuid) -> Result<(), DriverError> {
        let domain = self.domain(instance)?;
        match Self::state_of(&domain)? {
            PowerState::Shutdown
            | PowerState::Suspended
            | PowerState::NoState
            | PowerState::Crashed
                if !domain.is_active().map_err(lv("is active"))? =>
            {
                return Ok(());
            }
            // A paused guest cannot answer the ACPI request.
            PowerState::Paused => return Self::hard_stop(&domain),
            _ => {}
        }
        if let Err(e) = domain.shutdown() {
            warn!(%instance, error = %e.message(), "clean shutdown refused; stopping hard");
            return Self::hard_stop(&domain);
        }
        let deadline = Instant::now() + self.options.clean_shutdown_timeout;
        while domain.is_active().map_err(lv("is active"))? {
            if Instant::now() >= deadline {
                warn!(%instance, "guest did not shut down in time; stopping hard");
                return Self::hard_stop(&domain);
            }
            thread::sleep(SHUTDOWN_POLL_INTERVAL);
        }
        Ok(())
    }

    fn hard_reboot(&self, domain: &Domain) -> Result<(), DriverError> {
        if domain.is_active().map_err(lv("is active"))? {
            Self::hard_stop(domain)?;
        }
        if domain.has_managed_save(0).map_err(lv("has managed save"))? {
            domain
                .managed_save_remove(0)
                .map_err(lv("remove managed save"))?;
        }
        self.start(domain)
    }
}

impl VirtDriver for LibvirtDriver {
    fn inventory(&self) -> Result<Inventory, DriverError> {
        let node = self.conn.0.get_node_info().map_err(lv("node info"))?;
        let mut caps = self.capabilities()?;
        if caps.cpu.topology.sockets == 0 {
            caps.cpu.topology = novum_wire::CpuTopology {
                sockets: node.sockets * node.nodes.max(1),
                cores: node.cores,
                threads: node.threads,
            };
        }
        let hypervisor_hostname = match &self.options.hypervisor_hostname {
            Some(name) => name.clone(),
            None => self.conn.0.get_hostname().map_err(lv("hostname"))?,
        };
        Ok(Inventory {
            uptime: None,
            vcpus: node.cpus,
            memory_mb: node.memory / 1024,
            disk_gb: self.disk_gb()?,
            cpu_info: caps.cpu,
            hypervisor_type: self.conn.0.get_type().map_err(lv("hypervisor type"))?,
            hypervisor_version: u64::from(
                self.conn
                    .0
                    .get_hyp_version()
                    .map_err(lv("hypervisor version"))?,
            ),
            hypervisor_hostname,
            host_ip: None,
            supported_instances: caps.supported_instances,
        })
    }

    fn list_instances(&self) -> Result<Vec<InstancePower>, DriverError> {
        let domains = self
            .conn
            .0
            .list_all_domains(0)
            .map_err(lv("list domains"))?;
        let mut out = Vec::with_capacity(domains.len());
        for domain in &domains {
            let uuid = domain.get_uuid_string().map_err(lv("domain uuid"))?;
            let Ok(uuid) = Uuid::parse_str(&uuid) else {
                warn!(uuid, "domain with an unparsable uuid");
                continue;
            };
            match Self::state_of(domain) {
                Ok(power_state) => out.push(InstancePower { uuid, power_state }),
                // The domain vanished between listing and asking.
                Err(e) => debug!(%uuid, error = %e, "skipping domain"),
            }
        }
        Ok(out)
    }

    fn power_state(&self, instance: Uuid) -> Result<Option<PowerState>, DriverError> {
        self.lookup(instance)?
            .as_ref()
            .map(Self::state_of)
            .transpose()
    }

    fn spawn(&self, instance: Uuid, spec: &SpawnSpec) -> Result<(), DriverError> {
        check_spec(spec)?;
        if let Some(domain) = self.lookup(instance)? {
            return match Self::state_of(&domain)? {
                PowerState::Running => Ok(()),
                PowerState::Paused => domain.resume().map(drop).map_err(lv("resume")),
                _ => self.start(&domain),
            };
        }
        let definition = self.create_domain(instance, spec)?;
        let hardware = format!(
            "domain {} of instance {instance} made on libvirt's test driver, which runs no guest: \
             this log records what happens to the domain",
            spec.name
        );
        let flavor = format!(
            "flavor {}: {} vCPU, {} MiB, root disk {} GiB; image {}",
            spec.flavor.name,
            spec.flavor.vcpus,
            spec.flavor.memory_mb,
            spec.flavor.root_gb,
            spec.image.id
        );
        let interfaces: Vec<String> = spec
            .interfaces
            .iter()
            .map(|interface| {
                format!(
                    "interface {} on network {}",
                    interface.mac_address, interface.network_name
                )
            })
            .collect();
        let mut lines = vec![hardware.as_str(), flavor.as_str()];
        lines.extend(interfaces.iter().map(String::as_str));
        self.note_test_console(instance, &lines);
        self.remember(instance, Some(true), Some(&definition));
        Ok(())
    }

    fn redefine(
        &self,
        instance: Uuid,
        spec: &SpawnSpec,
        power_on: bool,
    ) -> Result<(), DriverError> {
        check_spec(spec)?;
        if let Some(domain) = self.lookup(instance)?
            && domain.is_active().map_err(lv("is active"))?
        {
            Self::hard_stop(&domain)?;
        }
        let layout = self.prepare_files(instance, spec)?;
        if !self.test_driver {
            self.files(instance).grow_root(spec.flavor.root_gb)?;
        }
        self.write_config_drive(instance, spec)?;
        let (domain, definition) = self.define_instance(instance, spec, &layout)?;
        if power_on {
            self.start(&domain)?;
        }
        self.remember(instance, Some(power_on), Some(&definition));
        Ok(())
    }

    fn destroy(&self, instance: Uuid) -> Result<(), DriverError> {
        let Some(domain) = self.lookup(instance)? else {
            self.remove_files(instance)?;
            self.remember(instance, None, None);
            return Ok(());
        };
        if domain.is_active().map_err(lv("is active"))? {
            Self::hard_stop(&domain)?;
        }
        domain
            .undefine_flags(
                sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
            )
            .map_err(lv("undefine"))?;
        self.remove_files(instance)?;
        self.remember(instance, None, None);
        self.remove_config_drive(instance)
    }

    fn resume_guests(&self) -> Result<(), DriverError> {
        self.restore()
    }

    fn set_image_source(&self, source: Arc<dyn ImageSource>) {
        if let Ok(mut current) = self.image_source.write() {
            *current = Some(source);
        }
    }

    fn power_on(&self, instance: Uuid) -> Result<(), DriverError> {
        let domain = self.domain(instance)?;
        match Self::state_of(&domain)? {
            PowerState::Running => Ok(()),
            PowerState::Paused => domain.resume().map(drop).map_err(lv("resume")),
            _ => self.start(&domain),
        }?;
        self.remember(instance, Some(true), None);
        Ok(())
    }

    fn power_off(&self, instance: Uuid) -> Result<(), DriverError> {
        self.shut_down(instance)?;
        self.remember(instance, Some(false), None);
        Ok(())
    }

    fn reboot(&self, instance: Uuid, reboot_type: RebootType) -> Result<(), DriverError> {
        let domain = self.domain(instance)?;
        if reboot_type == RebootType::Soft && Self::state_of(&domain)? == PowerState::Running {
            match domain.reboot(0) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    warn!(%instance, error = %e.message(), "soft reboot failed; rebooting hard")
                }
            }
        }
        self.hard_reboot(&domain)?;
        self.remember(instance, Some(true), None);
        Ok(())
    }

    fn pause(&self, instance: Uuid) -> Result<(), DriverError> {
        let domain = self.domain(instance)?;
        let result = match Self::state_of(&domain)? {
            PowerState::Paused => Ok(()),
            PowerState::Running => domain.suspend().map(drop).map_err(lv("pause")),
            state => Err(DriverError::InvalidState {
                op: "pause",
                instance,
                state,
            }),
        };
        if result.is_ok() {
            self.remember_guest(instance, GuestState::Paused);
        }
        result
    }

    fn unpause(&self, instance: Uuid) -> Result<(), DriverError> {
        let domain = self.domain(instance)?;
        let result = match Self::state_of(&domain)? {
            PowerState::Running => Ok(()),
            PowerState::Paused => domain.resume().map(drop).map_err(lv("unpause")),
            state => Err(DriverError::InvalidState {
                op: "unpause",
                instance,
                state,
            }),
        };
        if result.is_ok() {
            self.remember_guest(instance, GuestState::Running);
        }
        result
    }

    fn suspend(&self, instance: Uuid) -> Result<(), DriverError> {
        let domain = self.domain(instance)?;
        let result = match Self::state_of(&domain)? {
            PowerState::Suspended => Ok(()),
            PowerState::Running | PowerState::Paused => {
                domain.managed_save(0).map(drop).map_err(lv("managed save"))
            }
            state => Err(DriverError::InvalidState {
                op: "suspend",
                instance,
                state,
            }),
        };
        if result.is_ok() {
            self.remember_guest(instance, GuestState::Suspended);
        }
        result
    }

    fn resume(&self, instance: Uuid) -> Result<(), DriverError> {
        let domain = self.domain(instance)?;
        let result = match Self::state_of(&domain)? {
            PowerState::Running => Ok(()),
            PowerState::Suspended if !domain.is_active().map_err(lv("is active"))? => {
                self.start(&domain)
            }
            state => Err(DriverError::InvalidState {
                op: "resume",
                instance,
                state,
            }),
        };
        if result.is_ok() {
            self.remember_guest(instance, GuestState::Running);
        }
        result
    }

    fn attach_interface(
        &self,
        instance: Uuid,
        interface: &InterfaceSpec,
    ) -> Result<(), DriverError> {
        check_interface(interface)?;
        let mac = parse_mac(&interface.mac_address)?;
        let domain = self.domain(instance)?;
        let device = xml::interface_xml(interface, "    ");
        let device = libvirt_text("interface definition", &device)?;
        let definition = Self::definition(&domain)?;
        let live = domain.is_active().map_err(lv("is active"))?;
        let missing_live =
            live && xml::find_interface(&Self::live_definition(&domain)?, &mac)?.is_none();
        let missing_config = xml::find_interface(&definition, &mac)?.is_none();
        if !missing_live && !missing_config {
            debug!(%instance, port = %interface.port_id, "interface plugged already");
            return Ok(());
        }
        Self::interfaces_changeable("attach an interface to", instance, &domain)?;
        if missing_live {
            self.ensure_bridges(|| Ok(vec![(interface.bridge.clone(), interface.mtu)]))?;
        }
        let mut flags = 0;
        if missing_live {
            flags |= sys::VIR_DOMAIN_AFFECT_LIVE;
        }
        if missing_config {
            flags |= sys::VIR_DOMAIN_AFFECT_CONFIG;
        }
        info!(%instance, port = %interface.port_id, network = %interface.network_name, live = missing_live, "plugging an interface");
        match domain.attach_device_flags(device, flags) {
            Ok(_) => {}
            Err(e) if unsupported(&e) => {
                // libvirt's test driver has no hot-plug: the definition
                // gets the interface, the guest sees it from its next boot.
                if missing_live {
                    warn!(%instance, port = %interface.port_id, error = %e.message(),
                        "the hypervisor cannot hot-plug; the interface appears at the next boot");
                }
                if missing_config {
                    define(&self.conn.0, &xml::with_device(&definition, device)?)?;
                }
            }
            Err(e) => return Err(lv("attach interface")(e)),
        }
        self.remember_definition(instance, &domain);
        Ok(())
    }

    fn detach_interface(
        &self,
        instance: Uuid,
        port_id: Uuid,
        mac_address: &str,
    ) -> Result<(), DriverError> {
        let mac = parse_mac(mac_address)?;
        let Some(domain) = self.lookup(instance)? else {
            return Ok(());
        };
        let live = if domain.is_active().map_err(lv("is active"))? {
            xml::find_interface(&Self::live_definition(&domain)?, &mac)?
        } else {
            None
        };
        let definition = Self::definition(&domain)?;
        let config = xml::find_interface(&definition, &mac)?;
        if live.is_none() && config.is_none() {
            debug!(%instance, port = %port_id, "interface unplugged already");
            return Ok(());
        }
        Self::interfaces_changeable("detach an interface from", instance, &domain)?;
        info!(%instance, port = %port_id, "unplugging an interface");
        if let Some(device) = live {
            match domain.detach_device_flags(&device.xml, sys::VIR_DOMAIN_AFFECT_LIVE) {
                Ok(_) => self.wait_unplugged(instance, &domain, &mac)?,
                Err(e) if unsupported(&e) => {
                    warn!(%instance, port = %port_id, error = %e.message(),
                        "the hypervisor cannot hot-unplug; the interface goes at the next boot");
                }
                Err(e) => return Err(lv("detach interface")(e)),
            }
        }
        if let Some(device) = config {
            match domain.detach_device_flags(&device.xml, sys::VIR_DOMAIN_AFFECT_CONFIG) {
                Ok(_) => {}
                Err(e) if unsupported(&e) => {
                    if let Some(without) = xml::without_interface(&definition, &mac)? {
                        define(&self.conn.0, &without)?;
                    }
                }
                Err(e) => return Err(lv("detach interface")(e)),
            }
        }
        self.remember_definition(instance, &domain);
        Ok(())
    }

    fn console_output(
        &self,
        instance: Uuid,
        lines: Option<u32>,
    ) -> Result<TaskAnswer, DriverError> {
        self.domain(instance)?;
        let log = std::path::Path::new(&self.options.instances_path)
            .join(instance.to_string())
            .join(CONSOLE_LOG);
        Ok(TaskAnswer::ConsoleOutput {
            output: console::read_console_log(&log, lines)?,
        })
    }

    fn rebuild(
        &self,
        instance: Uuid,
        spec: &SpawnSpec,
        power_on: bool,
        preserve_ephemeral: bool,
    ) -> Result<(), DriverError> {
        check_spec(spec)?;
        // An instance in ERROR may have lost its domain: it is made anew.
        if self.lookup(instance)?.is_some() {
            self.shut_down(instance)?;
        }
        let mut old_files = vec![disks::ROOT_DISK, disks::KERNEL_FILE, disks::RAMDISK_FILE];
        if !preserve_ephemeral {
            old_files.push(disks::EPHEMERAL_DISK);
        }
        info!(%instance, image = %spec.image.id, preserve_ephemeral, "rebuilding");
        self.remove_some_files(instance, &old_files)?;
        self.redefine(instance, spec, power_on)
    }

    fn rescue(
        &self,
        instance: Uuid,
        spec: &SpawnSpec,
        rescue_image: &ImageSpec,
    ) -> Result<(), DriverError> {
        let rescue_spec = SpawnSpec {
            image: rescue_image.clone(),
            ..spec.clone()
        };
        check_spec(&rescue_spec)?;
        let domain = self.domain(instance)?;
        let original = Self::definition(&domain)?;
        if xml::rescued_original(&original)?.is_some() {
            debug!(%instance, "rescued already");
            if !domain.is_active().map_err(lv("is active"))? {
                self.start(&domain)?;
            }
            return Ok(());
        }
        self.shut_down(instance)?;
        if domain.has_managed_save(0).map_err(lv("has managed save"))? {
            domain
                .managed_save_remove(0)
                .map_err(lv("remove managed save"))?;
        }
        let mut layout = self.prepare_boot_files(instance, &rescue_spec, &RESCUE_BOOT)?;
        layout.rescue = Some(xml::RescueBoot {
            original_definition: original.clone(),
        });
        info!(%instance, image = %rescue_image.id, "rescuing");
        let (domain, definition) = self.define_instance(instance, &rescue_spec, &layout)?;
        if let Err(e) = self.start(&domain) {
            // Leave the instance as it was: its own definition, no rescue files.
            warn!(%instance, error = %e, "the rescue guest did not start; restoring the instance");
            if let Err(restore) = define(&self.conn.0, &original) {
                warn!(%instance, error = %restore, "restoring the definition after a failed rescue");
            }
            let _ = self.remove_some_files(instance, &RESCUE_FILES);
            return Err(e);
        }
        self.remember(instance, Some(true), Some(&definition));
        Ok(())
    }

    fn unrescue(&self, instance: Uuid) -> Result<(), DriverError> {
        let domain = self.domain(instance)?;
        let Some(original) = xml::rescued_original(&Self::definition(&domain)?)? else {
            debug!(%instance, "not rescued");
            if !domain.is_active().map_err(lv("is active"))? {
                self.start(&domain)?;
            }
            return Ok(());
        };
        if domain.is_active().map_err(lv("is active"))? {
            Self::hard_stop(&domain)?;
        }
        info!(%instance, "unrescuing");
        let domain = define(&self.conn.0, &original)?;
        self.remove_some_files(instance, &RESCUE_FILES)?;
        self.start(&domain)?;
        self.remember(instance, Some(true), Some(&original));
        Ok(())
    }

    fn pre_live_migration(
        &self,
        instance: Uuid,
        spec: &SpawnSpec,
        block_migration: bool,
        source_cpu: Option<&novum_wire::CpuInfo>,
    ) -> Result<(), DriverError> {
        self.prepare_live_migration(instance, spec, block_migration, source_cpu)
    }

    fn live_migrate(
        &self,
        instance: Uuid,
        job: &super::LiveMigrationJob<'_>,
    ) -> Result<(), DriverError> {
        self.run_live_migration(instance, job)
    }

    fn post_live_migration(&self, instance: Uuid, spec: &SpawnSpec) -> Result<(), DriverError> {
        self.finish_live_migration(instance, spec)
    }

    fn control_live_migration(
        &self,
        instance: Uuid,
        control: novum_wire::LiveMigrationControl,
    ) -> Result<TaskAnswer, DriverError> {
        self.live_migration_control(instance, control)
    }

    fn serial_console(&self, instance: Uuid) -> Result<TaskAnswer, DriverError> {
        let domain = self.domain(instance)?;
        let definition = if domain.is_active().map_err(lv("is active"))? {
            Self::live_definition(&domain)?
        } else {
            Self::definition(&domain)?
        };
        let listener = console::serial_listeners(&definition)?.into_iter().next();
        Ok(match (listener, &self.options.serial_console) {
            (Some(listener), Some(options)) => TaskAnswer::SerialConsole {
                host: options.proxy_address().to_string(),
                port: listener.port,
            },
            _ => TaskAnswer::ConsoleUnavailable {
                console_type: "serial".to_string(),
            },
        })
    }

    fn snapshot(
        &self,
        instance: Uuid,
        image_id: &str,
        base_image_id: &str,
    ) -> Result<(), DriverError> {
        super::images::check_image_id(image_id)?;
        let domain = self.domain(instance)?;
        let source = self.image_source()?;
        if self.test_driver {
            // The test driver's guests never write their disk: the
            // snapshot's data is the image they booted from.
            let base = self.images.fetch(source.as_ref(), base_image_id)?;
            return source.upload(image_id, base.qemu_format(), &base.path);
        }
        let files = InstanceFiles::new(Path::new(&self.options.instances_path), instance);
        let target = files.path(&format!(".snapshot-{image_id}.qcow2"));
        // A running guest is paused while its disk is read (Nova's cold
        // snapshot of a live domain): the copy is consistent at the block
        // level, and the guest goes on afterwards.
        let paused = Self::state_of(&domain)? == PowerState::Running;
        if paused {
            domain.suspend().map_err(lv("suspend"))?;
        }
        let flattened = files.flatten_root(&target);
        if paused && let Err(e) = domain.resume() {
            warn!(%instance, error = %e, "resuming the guest after its snapshot");
        }
        let uploaded = flattened.and_then(|()| source.upload(image_id, "qcow2", &target));
        if let Err(e) = std::fs::remove_file(&target)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(%instance, error = %e, "removing the snapshot's temporary file");
        }
        uploaded
    }

    fn set_password(
        &self,
        instance: Uuid,
        user: &str,
        password: &str,
        qemu_guest_agent: bool,
    ) -> Result<TaskAnswer, DriverError> {
        let domain = self.domain(instance)?;
        guest::set_password(
            &domain,
            self.hypervisor(),
            Self::state_of(&domain)?,
            user,
            password,
            qemu_guest_agent,
        )
    }

    fn trigger_crash_dump(&self, instance: Uuid) -> Result<(), DriverError> {
        let domain = self.domain(instance)?;
        match Self::state_of(&domain)? {
            PowerState::Running | PowerState::Paused => guest::inject_nmi(&domain),
            state => Err(DriverError::InvalidState {
                op: "trigger a crash dump of",
                instance,
                state,
            }),
        }
    }

    fn diagnostics(&self, instance: Uuid) -> Result<TaskAnswer, DriverError> {
        let domain = self.domain(instance)?;
        let state = Self::state_of(&domain)?;
        let live = if state == PowerState::Running {
            Self::live_definition(&domain)?
        } else {
            String::new()
        };
        guest::diagnostics(&domain, self.hypervisor(), state, &live)
    }
}
