//! The libvirt driver against libvirt's real test driver.

use std::collections::BTreeMap;

use novum_agent::driver::{DriverError, LibvirtDriver, LibvirtOptions, TestNode, VirtDriver};
use novum_wire::{FlavorSpec, ImageSpec, PowerState, RebootType, SpawnSpec};
use uuid::Uuid;

fn host(vcpus: u32, memory_mb: u64) -> (TestNode, LibvirtDriver) {
    let node = TestNode::create(vcpus, memory_mb).expect("node file");
    let driver = LibvirtDriver::open(&node.uri(), LibvirtOptions::default()).expect("open");
    (node, driver)
}

fn spec(props: &[(&str, &str)]) -> SpawnSpec {
    SpawnSpec {
        name: "vm".into(),
        flavor: FlavorSpec {
            name: "m1.tiny".into(),
            vcpus: 1,
            memory_mb: 512,
            root_gb: 1,
            ephemeral_gb: 1,
            swap_mb: 0,
        },
        image: ImageSpec {
            id: "cirros".into(),
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
        user_data: None,
        metadata: BTreeMap::new(),
        interfaces: Vec::new(),
    }
}

fn state(driver: &LibvirtDriver, id: Uuid) -> Option<PowerState> {
    driver.power_state(id).expect("power state")
}

#[test]
fn inventory_reports_the_node_file_sizes() {
    let (_node, driver) = host(24, 65536);
    let inv = driver.inventory().unwrap();
    assert_eq!(inv.vcpus, 24);
    assert_eq!(inv.memory_mb, 65536);
    assert_eq!(inv.disk_gb, 100, "the test driver's pools hold 100 GiB");
    assert_eq!(inv.hypervisor_type, "TEST");
    assert!(inv.hypervisor_version > 0);
    assert!(!inv.cpu_info.arch.is_empty());
    assert_eq!(inv.cpu_info.topology.cores, 24);
    assert!(
        inv.supported_instances
            .iter()
            .any(|s| s.hv_type == "test" && s.vm_mode == "hvm" && s.arch == inv.cpu_info.arch),
        "{:?}",
        inv.supported_instances
    );

    let (_small, small) = host(2, 1024);
    let inv = small.inventory().unwrap();
    assert_eq!((inv.vcpus, inv.memory_mb), (2, 1024));
}

#[test]
fn inventory_overrides() {
    let node = TestNode::create(4, 4096).unwrap();
    let options = LibvirtOptions {
        disk_gb: Some(7),
        hypervisor_hostname: Some("fake-7".into()),
        ..LibvirtOptions::default()
    };
    let driver = LibvirtDriver::open(&node.uri(), options).unwrap();
    let inv = driver.inventory().unwrap();
    assert_eq!(inv.disk_gb, 7);
    assert_eq!(inv.hypervisor_hostname, "fake-7");

    let missing_pool = LibvirtOptions {
        storage_pool: Some("no-such-pool".into()),
        ..LibvirtOptions::default()
    };
    let driver = LibvirtDriver::open(&node.uri(), missing_pool).unwrap();
    assert!(matches!(
        driver.inventory(),
        Err(DriverError::Libvirt { .. })
    ));
}

#[test]
fn lifecycle() {
    let (_node, driver) = host(8, 8192);
    let id = Uuid::new_v4();
    assert_eq!(state(&driver, id), None);

    driver.spawn(id, &spec(&[])).unwrap();
    assert_eq!(state(&driver, id), Some(PowerState::Running));
    let listed = driver.list_instances().unwrap();
    assert!(
        listed
            .iter()
            .any(|p| p.uuid == id && p.power_state == PowerState::Running)
    );

    driver.pause(id).unwrap();
    assert_eq!(state(&driver, id), Some(PowerState::Paused));
    driver.unpause(id).unwrap();
    assert_eq!(state(&driver, id), Some(PowerState::Running));

    driver.suspend(id).unwrap();
    assert_eq!(state(&driver, id), Some(PowerState::Suspended));
    driver.resume(id).unwrap();
    assert_eq!(state(&driver, id), Some(PowerState::Running));

    driver.power_off(id).unwrap();
    assert_eq!(state(&driver, id), Some(PowerState::Shutdown));
    driver.power_on(id).unwrap();
    assert_eq!(state(&driver, id), Some(PowerState::Running));

    driver.reboot(id, RebootType::Soft).unwrap();
    assert_eq!(state(&driver, id), Some(PowerState::Running));
    driver.power_off(id).unwrap();
    driver.reboot(id, RebootType::Hard).unwrap();
    assert_eq!(
        state(&driver, id),
        Some(PowerState::Running),
        "hard reboot boots a stopped domain"
    );

    driver.destroy(id).unwrap();
    assert_eq!(state(&driver, id), None);
    assert!(
        !driver
            .list_instances()
            .unwrap()
            .iter()
            .any(|p| p.uuid == id)
    );
}

#[test]
fn operations_are_idempotent() {
    let (_node, driver) = host(8, 8192);
    let id = Uuid::new_v4();
    driver.destroy(id).unwrap(); // nothing there: fine

    driver.spawn(id, &spec(&[])).unwrap();
    driver.spawn(id, &spec(&[])).unwrap(); // exists and runs: fine
    assert_eq!(state(&driver, id), Some(PowerState::Running));
    driver.power_on(id).unwrap();
    driver.unpause(id).unwrap();
    driver.resume(id).unwrap();
    assert_eq!(state(&driver, id), Some(PowerState::Running));

    driver.pause(id).unwrap();
    driver.pause(id).unwrap();
    assert_eq!(state(&driver, id), Some(PowerState::Paused));
    driver.power_off(id).unwrap(); // paused: stopped hard
    driver.power_off(id).unwrap(); // stopped already
    assert_eq!(state(&driver, id), Some(PowerState::Shutdown));

    driver.spawn(id, &spec(&[])).unwrap(); // defined but off: started again
    assert_eq!(state(&driver, id), Some(PowerState::Running));
    driver.suspend(id).unwrap();
    driver.suspend(id).unwrap();
    assert_eq!(state(&driver, id), Some(PowerState::Suspended));

    driver.destroy(id).unwrap(); // suspended: managed save removed with it
    driver.destroy(id).unwrap();
    assert_eq!(state(&driver, id), None);
}

#[test]
fn invalid_transitions_fail_with_the_state() {
    let (_node, driver) = host(8, 8192);
    let id = Uuid::new_v4();
    assert!(matches!(driver.power_on(id), Err(DriverError::NotFound(u)) if u == id));
    driver.spawn(id, &spec(&[])).unwrap();
    driver.power_off(id).unwrap();
    match driver.pause(id) {
        Err(DriverError::InvalidState {
            op: "pause",
            state: PowerState::Shutdown,
            ..
        }) => {}
        other => panic!("pause of a stopped domain: {other:?}"),
    }
    assert!(matches!(
        driver.suspend(id),
        Err(DriverError::InvalidState { .. })
    ));
    assert!(matches!(
        driver.resume(id),
        Err(DriverError::InvalidState { .. })
    ));
    assert!(matches!(
        driver.unpause(id),
        Err(DriverError::InvalidState { .. })
    ));
}

#[test]
fn spawn_rejects_an_architecture_the_host_lacks() {
    let (_node, driver) = host(8, 8192);
    let id = Uuid::new_v4();
    let err = driver
        .spawn(id, &spec(&[("hw_architecture", "s390x")]))
        .unwrap_err();
    assert!(matches!(err, DriverError::Unsupported(_)), "{err}");
    assert_eq!(state(&driver, id), None, "nothing left defined");
}

#[test]
fn hosts_from_node_files_do_not_share_domains() {
    let (_a, a) = host(4, 4096);
    let (_b, b) = host(4, 4096);
    let id = Uuid::new_v4();
    a.spawn(id, &spec(&[])).unwrap();
    assert_eq!(state(&a, id), Some(PowerState::Running));
    assert_eq!(state(&b, id), None);
}

/// A test hypervisor reopened with the same domain store (an agent, or an
/// embedded host, restarted) gets back every domain as it was left:
/// running, shut off, paused, suspended.
#[test]
fn a_reopened_hypervisor_restores_domains_as_they_were_left() {
    let node = TestNode::create(8, 8192).expect("node file");
    let store = std::env::temp_dir().join(format!("novum-store-{}", Uuid::new_v4()));
    let options = LibvirtOptions {
        domain_store: Some(store.clone()),
        ..LibvirtOptions::default()
    };
    let [running, stopped, paused, suspended] = [(); 4].map(|()| Uuid::new_v4());
    {
        let driver = LibvirtDriver::open(&node.uri(), options.clone()).expect("open");
        for id in [running, stopped, paused, suspended] {
            driver.spawn(id, &spec(&[])).unwrap();
        }
        driver.power_off(stopped).unwrap();
        driver.pause(paused).unwrap();
        driver.suspend(suspended).unwrap();
    }
    let driver = LibvirtDriver::open(&node.uri(), options).expect("reopen");
    assert_eq!(
        [running, stopped, paused, suspended].map(|id| state(&driver, id)),
        [
            Some(PowerState::Running),
            Some(PowerState::Shutdown),
            Some(PowerState::Paused),
            Some(PowerState::Suspended)
        ]
    );
    // And they go on from there.
    driver.unpause(paused).unwrap();
    driver.resume(suspended).unwrap();
    assert_eq!(state(&driver, paused), Some(PowerState::Running));
    assert_eq!(state(&driver, suspended), Some(PowerState::Running));
    drop(driver);
    let _ = std::fs::remove_dir_all(store);
}
