//! The destination's CPU check of a live migration (Nova's
//! `check_can_live_migrate_destination` / `_compare_cpu`): the
//! `PreLiveMigration` step asks the destination's libvirt
//! (`virConnectCompareHypervisorCPU`) whether it can offer the source's
//! CPU, before it makes anything.
//!
//! On the real `qemu:///system`, for KVM guests: the host's own CPU (as its
//! inventory reports it) prepares a migration; a CPU it lacks (its own plus
//! the other vendor's virtualisation extension) is refused with Nova's
//! "Unacceptable CPU info" and libvirt's reason, leaving no instance files
//! and no config drive. Under QEMU's TCG the check is skipped, as Nova
//! skips it. On
//! libvirt's test driver, which cannot compare CPUs (`VIR_ERR_NO_SUPPORT`),
//! the step proceeds.

use novum_agent::config_drive;
use novum_agent::driver::{
    CPU_INCOMPATIBLE, DriverError, LibvirtDriver, LibvirtOptions, TestNode, VirtDriver, VirtType,
};
use novum_wire::{ConfigDriveFile, CpuInfo, FlavorSpec, ImageSpec, SpawnSpec};
use uuid::Uuid;

#[path = "support/real_guest.rs"]
mod real_guest;

use real_guest::TestDir;

const URI: &str = "qemu:///system";

/// A small guest with a config drive (the destination builds it in its
/// preparation).
fn spec() -> SpawnSpec {
    SpawnSpec {
        name: "moving".into(),
        flavor: FlavorSpec {
            name: "tiny".into(),
            vcpus: 1,
            memory_mb: 256,
            root_gb: 1,
            ephemeral_gb: 0,
            swap_mb: 0,
        },
        image: ImageSpec {
            id: "an-image-never-fetched".into(),
            properties: Default::default(),
        },
        user_data: None,
        metadata: Default::default(),
        interfaces: Vec::new(),
        project_id: None,
        config_drive: Some(vec![ConfigDriveFile {
            path: "openstack/latest/meta_data.json".into(),
            content_base64: "e30=".into(),
        }]),
    }
}

/// A driver on `qemu:///system` whose guests run as `virt_type`, keeping
/// instances in `dir`.
fn open(dir: &TestDir, virt_type: VirtType) -> LibvirtDriver {
    let options = LibvirtOptions {
        instances_path: dir.0.display().to_string(),
        virt_type,
        ..LibvirtOptions::default()
    };
    LibvirtDriver::open(URI, options).expect("qemu:///system")
}

/// The host's own CPU with a feature no CPU of its vendor has: the other
/// vendor's virtualisation extension.
fn impossible(own: &CpuInfo) -> CpuInfo {
    let foreign = if own.vendor.as_deref() == Some("AMD") {
        "vmx"
    } else {
        "svm"
    };
    let mut cpu = own.clone();
    cpu.features.push(foreign.to_string());
    cpu.features.sort();
    cpu
}

/// A KVM driver (the check runs for KVM guests only), or `None` with the
/// reason printed when this host's libvirt offers no KVM guests.
fn kvm_driver(dir: &TestDir) -> Option<LibvirtDriver> {
    let driver = open(dir, VirtType::Kvm);
    let offers_kvm = driver
        .inventory()
        .expect("inventory")
        .supported_instances
        .iter()
        .any(|s| s.hv_type == "kvm");
    if !offers_kvm {
        eprintln!("skipped: this host's libvirt offers no KVM guests to compare a CPU for");
        return None;
    }
    Some(driver)
}

#[test]
fn the_hosts_own_cpu_is_accepted_and_one_it_lacks_refused_before_anything_is_made() {
    let dir = TestDir::new();
    let Some(driver) = kvm_driver(&dir) else {
        return;
    };
    let own = driver.inventory().expect("inventory").cpu_info;
    assert!(own.model.is_some(), "a QEMU host reports its CPU model");

    // The host's own CPU (as its inventory reports it): prepared.
    let instance = Uuid::new_v4();
    driver
        .pre_live_migration(instance, &spec(), false, Some(&own))
        .expect("the host's own CPU is acceptable");
    let image = config_drive::image_path(&dir.0.display().to_string(), instance);
    assert!(image.exists(), "the preparation built the config drive");

    // One with a feature this host lacks: libvirt refuses it.
    let instance = Uuid::new_v4();
    let error = driver
        .pre_live_migration(instance, &spec(), true, Some(&impossible(&own)))
        .expect_err("a CPU this host lacks");
    let message = error.to_string();
    assert!(
        matches!(error, DriverError::CpuIncompatible(_)),
        "{error:?}"
    );
    assert!(message.starts_with(CPU_INCOMPATIBLE), "{message}");
    assert!(
        message.contains("incompatible with host CPU"),
        "libvirt's reason: {message}"
    );
    eprintln!("refused: {message}");
    // Refused first: no disk overlays, no config drive, no directory.
    let files = dir.0.join(instance.to_string());
    assert!(!files.exists(), "{} was made", files.display());
}

#[test]
fn emulated_guests_take_any_cpu() {
    let dir = TestDir::new();
    let driver = open(&dir, VirtType::Qemu);
    let own = driver.inventory().expect("inventory").cpu_info;
    // Under TCG the guest's CPU is software: no comparison (Nova).
    driver
        .pre_live_migration(Uuid::new_v4(), &spec(), false, Some(&impossible(&own)))
        .expect("no CPU comparison for emulated guests");
}

#[test]
fn a_driver_that_cannot_compare_cpus_proceeds() {
    let node = TestNode::create(4, 8192).expect("node");
    let driver = LibvirtDriver::open(&node.uri(), LibvirtOptions::default()).expect("open");
    let haswell = CpuInfo {
        arch: "x86_64".into(),
        model: Some("Haswell".into()),
        vendor: Some("Intel".into()),
        features: vec!["avx2".into()],
        ..CpuInfo::default()
    };
    // libvirt's test driver answers VIR_ERR_NO_SUPPORT.
    driver
        .pre_live_migration(Uuid::new_v4(), &spec(), true, Some(&haswell))
        .expect("proceeds");
    // A source that reported no model (a test-driver host): nothing to
    // compare.
    let model_less = CpuInfo {
        arch: "i686".into(),
        features: vec!["pae".into()],
        ..CpuInfo::default()
    };
    driver
        .pre_live_migration(Uuid::new_v4(), &spec(), true, Some(&model_less))
        .expect("proceeds");
}
