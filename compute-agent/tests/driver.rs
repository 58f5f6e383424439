//! The libvirt driver against libvirt's real test driver.

use std::collections::BTreeMap;

use novum_agent::driver::{
    DeviceKind, DriverError, LibvirtDriver, LibvirtOptions, TestNode, VirtDriver, device_kind,
    ensure_bridge,
};
use novum_wire::{
    FlavorSpec, ImageSpec, InterfaceSpec, PowerState, RebootType, SpawnSpec, bridge_name,
};
use uuid::Uuid;
use virt::domain::Domain;
use virt::sys;

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
        project_id: None,
        config_drive: None,
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

/// Port `n` on network `net`, MTU 1400 + n.
fn port(n: u8, net: u8) -> InterfaceSpec {
    let network_id = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | u128::from(net));
    InterfaceSpec {
        port_id: Uuid::from_u128(0x1a81_968a_797a_400f_8a80_0000_0000_0000 | u128::from(n)),
        mac_address: format!("fa:16:3e:00:00:{n:02x}"),
        network_id,
        network_name: format!("net{net}"),
        mtu: Some(1400 + u32::from(n)),
        bridge: bridge_name(network_id),
        fixed_ips: Vec::new(),
    }
}

fn spec_with(interfaces: Vec<InterfaceSpec>) -> SpawnSpec {
    SpawnSpec {
        interfaces,
        ..spec(&[])
    }
}

/// The interfaces of a domain definition as (mac, bridge, target, mtu, model).
fn interfaces_in(xml: &str) -> Vec<[Option<String>; 5]> {
    let doc = roxmltree::Document::parse(xml).expect("domain xml");
    doc.descendants()
        .filter(|n| n.has_tag_name("interface"))
        .map(|node| {
            assert_eq!(node.attribute("type"), Some("bridge"), "{xml}");
            let attr = |element: &str, name: &str| {
                node.children()
                    .find(|n| n.has_tag_name(element))
                    .and_then(|n| n.attribute(name))
                    .map(str::to_string)
            };
            [
                attr("mac", "address"),
                attr("source", "bridge"),
                attr("target", "dev"),
                attr("mtu", "size"),
                attr("model", "type"),
            ]
        })
        .collect()
}

/// What [`interfaces_in`] should read for `ports`, in that order.
fn expected(ports: &[&InterfaceSpec]) -> Vec<[Option<String>; 5]> {
    ports
        .iter()
        .map(|p| {
            [
                Some(p.mac_address.clone()),
                Some(p.bridge.clone()),
                Some(p.tap_name()),
                p.mtu.map(|m| m.to_string()),
                Some("virtio".to_string()),
            ]
        })
        .collect()
}

fn live_xml(driver: &LibvirtDriver, id: Uuid) -> String {
    let domain = Domain::lookup_by_uuid_string(driver.connect(), &id.to_string()).unwrap();
    domain.get_xml_desc(0).unwrap()
}

fn config_xml(driver: &LibvirtDriver, id: Uuid) -> String {
    let domain = Domain::lookup_by_uuid_string(driver.connect(), &id.to_string()).unwrap();
    domain.get_xml_desc(sys::VIR_DOMAIN_XML_INACTIVE).unwrap()
}

#[test]
fn spawn_with_two_interfaces_defines_both_in_port_order() {
    let (_node, driver) = host(8, 8192);
    let id = Uuid::new_v4();
    // Port order, not MAC or id order.
    let (second, first) = (port(9, 2), port(3, 1));
    driver
        .spawn(id, &spec_with(vec![second.clone(), first.clone()]))
        .unwrap();
    assert_eq!(state(&driver, id), Some(PowerState::Running));
    let live = live_xml(&driver, id);
    assert_eq!(interfaces_in(&live), expected(&[&second, &first]), "{live}");
    assert_eq!(
        interfaces_in(&live)[0][2].as_deref(),
        Some("tap1a81968a-79"),
        "tap + the port id's first 11 characters"
    );
    assert_eq!(
        interfaces_in(&live)[0][1].as_deref(),
        Some("brq00000000-00"),
        "brq + the network id's first 11 characters"
    );
    for port in [&first, &second] {
        assert_eq!(
            device_kind(&port.bridge).unwrap(),
            DeviceKind::Missing,
            "the test driver makes no host bridge"
        );
    }
}

#[test]
fn attach_and_detach_are_idempotent_on_a_running_domain() {
    let (_node, driver) = host(8, 8192);
    let id = Uuid::new_v4();
    let (first, second) = (port(1, 1), port(2, 2));
    driver.spawn(id, &spec_with(vec![first.clone()])).unwrap();

    for _ in 0..2 {
        driver.attach_interface(id, &second).unwrap();
        assert_eq!(state(&driver, id), Some(PowerState::Running));
        assert_eq!(
            interfaces_in(&config_xml(&driver, id)),
            expected(&[&first, &second])
        );
    }
    // libvirt's test driver cannot hot-plug: the guest sees the new
    // interface from its next boot.
    assert_eq!(interfaces_in(&live_xml(&driver, id)), expected(&[&first]));
    driver.power_off(id).unwrap();
    driver.power_on(id).unwrap();
    assert_eq!(
        interfaces_in(&live_xml(&driver, id)),
        expected(&[&first, &second])
    );

    for _ in 0..2 {
        driver
            .detach_interface(id, first.port_id, &first.mac_address.to_uppercase())
            .unwrap();
        assert_eq!(state(&driver, id), Some(PowerState::Running));
        assert_eq!(
            interfaces_in(&config_xml(&driver, id)),
            expected(&[&second])
        );
    }
    driver.reboot(id, RebootType::Hard).unwrap();
    assert_eq!(interfaces_in(&live_xml(&driver, id)), expected(&[&second]));

    // Nothing there, or no domain at all: nothing to do.
    driver
        .detach_interface(id, first.port_id, &first.mac_address)
        .unwrap();
    driver
        .detach_interface(Uuid::new_v4(), first.port_id, &first.mac_address)
        .unwrap();
}

#[test]
fn a_stopped_domain_gets_the_interface_in_its_definition() {
    let (_node, driver) = host(8, 8192);
    let id = Uuid::new_v4();
    driver.spawn(id, &spec_with(Vec::new())).unwrap();
    driver.power_off(id).unwrap();
    let added = port(4, 1);
    for _ in 0..2 {
        driver.attach_interface(id, &added).unwrap();
        assert_eq!(state(&driver, id), Some(PowerState::Shutdown), "stays off");
    }
    driver.power_on(id).unwrap();
    assert_eq!(interfaces_in(&live_xml(&driver, id)), expected(&[&added]));
    driver.power_off(id).unwrap();
    for _ in 0..2 {
        driver
            .detach_interface(id, added.port_id, &added.mac_address)
            .unwrap();
        assert_eq!(state(&driver, id), Some(PowerState::Shutdown));
    }
    assert!(interfaces_in(&config_xml(&driver, id)).is_empty());
}

#[test]
fn interfaces_of_missing_or_suspended_domains() {
    let (_node, driver) = host(8, 8192);
    let id = Uuid::new_v4();
    let added = port(5, 1);
    assert!(matches!(
        driver.attach_interface(id, &added),
        Err(DriverError::NotFound(u)) if u == id
    ));
    driver.spawn(id, &spec_with(vec![port(1, 1)])).unwrap();
    driver.suspend(id).unwrap();
    match driver.attach_interface(id, &added) {
        Err(DriverError::InvalidState {
            state: PowerState::Suspended,
            ..
        }) => {}
        other => panic!("attach to a suspended domain: {other:?}"),
    }
    assert!(matches!(
        driver.detach_interface(id, port(1, 1).port_id, &port(1, 1).mac_address),
        Err(DriverError::InvalidState { .. })
    ));
    // What is not there needs no change, suspended or not.
    driver
        .detach_interface(id, added.port_id, &added.mac_address)
        .unwrap();
    assert_eq!(state(&driver, id), Some(PowerState::Suspended));
}

#[test]
fn invalid_interfaces_fail_before_anything_is_made() {
    let (_node, driver) = host(8, 8192);
    let with = |change: fn(&mut InterfaceSpec)| {
        let mut bad = port(1, 1);
        change(&mut bad);
        bad
    };
    let cases: Vec<(Vec<InterfaceSpec>, &str)> = vec![
        (
            vec![with(|p| p.mac_address = "fa:16:3e:00:00".into())],
            "MAC address",
        ),
        (
            vec![with(|p| p.mac_address = "fa:16:3e:00:00:zz".into())],
            "MAC address",
        ),
        (
            vec![with(|p| p.mac_address = "fa-16-3e-00-00-01".into())],
            "MAC address",
        ),
        (
            vec![with(|p| p.mac_address = "01:00:5e:00:00:01".into())],
            "multicast",
        ),
        (
            vec![with(|p| p.mac_address = "00:00:00:00:00:00".into())],
            "all zero",
        ),
        (
            vec![with(|p| p.mac_address = "fa:16:3e:00:00:\u{0}1".into())],
            "MAC address",
        ),
        (
            vec![with(|p| p.bridge = "br with space".into())],
            "Linux device name",
        ),
        (
            vec![with(|p| p.bridge = "brq0123456789abc".into())],
            "Linux device name",
        ),
        (vec![with(|p| p.mtu = Some(0))], "MTU 0"),
        (vec![port(1, 1), port(1, 2)], "given twice"),
        (
            vec![port(1, 1), with(|p| p.port_id = Uuid::new_v4())],
            "given twice",
        ),
    ];
    for (interfaces, expected) in cases {
        let id = Uuid::new_v4();
        let spec = spec_with(interfaces.clone());
        for result in [driver.spawn(id, &spec), driver.redefine(id, &spec, true)] {
            match result {
                Err(DriverError::InvalidInput(message)) => {
                    assert!(message.contains(expected), "{expected}: {message}")
                }
                other => panic!("{interfaces:?}: {other:?}"),
            }
        }
        assert_eq!(state(&driver, id), None, "nothing defined");
    }
    let id = Uuid::new_v4();
    driver.spawn(id, &spec_with(Vec::new())).unwrap();
    assert!(matches!(
        driver.attach_interface(id, &with(|p| p.mac_address = "nonsense".into())),
        Err(DriverError::InvalidInput(_))
    ));
    assert!(matches!(
        driver.detach_interface(id, Uuid::new_v4(), "ff:ff:ff:ff:ff:ff"),
        Err(DriverError::InvalidInput(_))
    ));
    assert!(interfaces_in(&config_xml(&driver, id)).is_empty());
}

#[test]
fn redefine_carries_the_interfaces() {
    let (_node, driver) = host(8, 8192);
    let id = Uuid::new_v4();
    driver.spawn(id, &spec_with(vec![port(1, 1)])).unwrap();
    let (a, b) = (port(2, 1), port(3, 2));
    driver
        .redefine(id, &spec_with(vec![a.clone(), b.clone()]), true)
        .unwrap();
    assert_eq!(interfaces_in(&live_xml(&driver, id)), expected(&[&a, &b]));
}

/// A test hypervisor reopened with its domain store brings back the
/// interfaces plugged and unplugged after the spawn.
#[test]
fn a_reopened_hypervisor_keeps_the_plugged_interfaces() {
    let node = TestNode::create(8, 8192).expect("node file");
    let store = std::env::temp_dir().join(format!("novum-store-{}", Uuid::new_v4()));
    let options = LibvirtOptions {
        domain_store: Some(store.clone()),
        ..LibvirtOptions::default()
    };
    let id = Uuid::new_v4();
    let (first, second) = (port(1, 1), port(2, 1));
    {
        let driver = LibvirtDriver::open(&node.uri(), options.clone()).expect("open");
        driver.spawn(id, &spec_with(vec![first.clone()])).unwrap();
        driver.pause(id).unwrap();
        driver.attach_interface(id, &second).unwrap();
        driver
            .detach_interface(id, first.port_id, &first.mac_address)
            .unwrap();
    }
    let driver = LibvirtDriver::open(&node.uri(), options).expect("reopen");
    assert_eq!(
        state(&driver, id),
        Some(PowerState::Paused),
        "as it was left"
    );
    assert_eq!(interfaces_in(&live_xml(&driver, id)), expected(&[&second]));
    drop(driver);
    let _ = std::fs::remove_dir_all(store);
}

/// Deletes the bridge it names when dropped.
struct BridgeGuard(String);

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", "dev", &self.0])
            .status();
    }
}

/// A real Linux bridge, made twice (the second time finds it), with the
/// MTU asked for and up. Needs CAP_NET_ADMIN: skipped (saying so) without.
#[test]
fn ensure_bridge_makes_a_real_bridge_once() {
    let name = format!("brqt{}", &Uuid::new_v4().simple().to_string()[..8]);
    let probe = std::process::Command::new("ip")
        .args(["link", "add", "name", &name, "type", "bridge"])
        .output();
    match probe {
        Ok(output) if output.status.success() => {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", "dev", &name])
                .status();
        }
        Ok(output) => {
            eprintln!(
                "skipped: cannot make a bridge here ({})",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("skipped: no `ip` command ({e})");
            return;
        }
    }
    let _guard = BridgeGuard(name.clone());
    assert_eq!(device_kind(&name).unwrap(), DeviceKind::Missing);
    ensure_bridge(&name, Some(1450)).unwrap();
    ensure_bridge(&name, Some(1450)).unwrap();
    assert_eq!(device_kind(&name).unwrap(), DeviceKind::Bridge);
    let sys = std::path::Path::new("/sys/class/net").join(&name);
    let mtu = std::fs::read_to_string(sys.join("mtu")).unwrap();
    assert_eq!(mtu.trim(), "1450");
    let flags = std::fs::read_to_string(sys.join("flags")).unwrap();
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "IFF_UP");
}
