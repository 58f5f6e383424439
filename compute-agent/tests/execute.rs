//! Task execution: each task kind mapped to the driver and reported, against
//! libvirt's real test driver.

use std::collections::BTreeMap;

use novum_agent::driver::{LibvirtDriver, LibvirtOptions, TestNode, VirtDriver};
use novum_agent::execute::execute;
use novum_wire::{
    FlavorSpec, ImageSpec, InterfaceSpec, PowerState, RebootType, SpawnSpec, Task, TaskAction,
    TaskOutcome, bridge_name,
};
use uuid::Uuid;
use virt::domain::Domain;

fn spawn_action(props: &[(&str, &str)]) -> TaskAction {
    TaskAction::Spawn(SpawnSpec {
        name: "exec-vm".into(),
        flavor: FlavorSpec {
            name: "m1.small".into(),
            vcpus: 2,
            memory_mb: 2048,
            root_gb: 20,
            ephemeral_gb: 0,
            swap_mb: 256,
        },
        image: ImageSpec {
            id: "img-1".into(),
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
        user_data: Some("I2Nsb3VkLWNvbmZpZwo=".into()),
        metadata: BTreeMap::from([("role".to_string(), "web".to_string())]),
        interfaces: Vec::new(),
        project_id: None,
        config_drive: None,
    })
}

fn task(instance: Uuid, action: TaskAction) -> Task {
    Task {
        id: Uuid::new_v4(),
        instance_uuid: instance,
        request_id: Some("req-test".into()),
        action,
    }
}

fn succeeded(state: PowerState) -> TaskOutcome {
    TaskOutcome::Succeeded { power_state: state }
}

#[test]
fn every_task_kind_maps_to_the_driver() {
    let node = TestNode::create(8, 16384).unwrap();
    let driver = LibvirtDriver::open(&node.uri(), LibvirtOptions::default()).unwrap();
    let id = Uuid::new_v4();
    let steps = [
        (spawn_action(&[]), PowerState::Running),
        (spawn_action(&[]), PowerState::Running),
        (TaskAction::Pause, PowerState::Paused),
        (TaskAction::Unpause, PowerState::Running),
        (TaskAction::Suspend, PowerState::Suspended),
        (TaskAction::Resume, PowerState::Running),
        (TaskAction::Stop, PowerState::Shutdown),
        (TaskAction::Stop, PowerState::Shutdown),
        (TaskAction::Start, PowerState::Running),
        (
            TaskAction::Reboot {
                reboot_type: RebootType::Soft,
            },
            PowerState::Running,
        ),
        (
            TaskAction::Reboot {
                reboot_type: RebootType::Hard,
            },
            PowerState::Running,
        ),
        (TaskAction::Destroy, PowerState::NoState),
        (TaskAction::Destroy, PowerState::NoState),
    ];
    for (action, expected) in steps {
        let kind = action.kind();
        let outcome = execute(&driver, &task(id, action));
        assert_eq!(outcome, succeeded(expected), "{kind}");
        let actual = driver
            .power_state(id)
            .unwrap()
            .unwrap_or(PowerState::NoState);
        assert_eq!(actual, expected, "driver state after {kind}");
    }
}

#[test]
fn spawn_defines_the_flavor_sizes() {
    let node = TestNode::create(8, 16384).unwrap();
    let driver = LibvirtDriver::open(&node.uri(), LibvirtOptions::default()).unwrap();
    let id = Uuid::new_v4();
    assert_eq!(
        execute(&driver, &task(id, spawn_action(&[]))),
        succeeded(PowerState::Running)
    );
    // Read the definition back through plain libvirt calls on the same connection.
    let domain = Domain::lookup_by_uuid_string(driver.connect(), &id.to_string()).unwrap();
    assert_eq!(domain.get_name().unwrap(), format!("instance-{id}"));
    let info = domain.get_info().unwrap();
    assert_eq!(info.nr_virt_cpu, 2);
    assert_eq!(info.max_mem, 2048 * 1024);
    let xml = domain.get_xml_desc(0).unwrap();
    assert!(xml.contains("<title>exec-vm</title>"), "{xml}");
    assert_eq!(xml.matches("<disk ").count(), 2, "root and swap: {xml}");
}

#[test]
fn failures_carry_a_message_and_the_state() {
    let node = TestNode::create(8, 16384).unwrap();
    let driver = LibvirtDriver::open(&node.uri(), LibvirtOptions::default()).unwrap();
    let id = Uuid::new_v4();

    match execute(&driver, &task(id, TaskAction::Start)) {
        TaskOutcome::Failed {
            message,
            power_state,
        } => {
            assert!(message.starts_with("start failed"), "{message}");
            assert!(message.contains(&id.to_string()), "{message}");
            assert_eq!(power_state, Some(PowerState::NoState));
        }
        other => panic!("start of a missing instance: {other:?}"),
    }

    match execute(
        &driver,
        &task(id, spawn_action(&[("hw_architecture", "s390x")])),
    ) {
        TaskOutcome::Failed { message, .. } => assert!(message.contains("s390x"), "{message}"),
        other => panic!("spawn for a foreign architecture: {other:?}"),
    }

    assert_eq!(
        execute(&driver, &task(id, spawn_action(&[]))),
        succeeded(PowerState::Running)
    );
    assert_eq!(
        execute(&driver, &task(id, TaskAction::Stop)),
        succeeded(PowerState::Shutdown)
    );
    assert_eq!(
        execute(&driver, &task(id, TaskAction::Pause)),
        TaskOutcome::Failed {
            message: format!("pause failed: cannot pause instance {id} while it is SHUTDOWN"),
            power_state: Some(PowerState::Shutdown),
        }
    );
}

#[test]
fn redefine_resizes_a_domain_in_place_and_keeps_it_off_when_asked() {
    let node = TestNode::create(8, 16384).unwrap();
    let driver = LibvirtDriver::open(&node.uri(), LibvirtOptions::default()).unwrap();
    let id = Uuid::new_v4();
    assert_eq!(
        execute(&driver, &task(id, spawn_action(&[]))),
        succeeded(PowerState::Running)
    );
    let TaskAction::Spawn(mut bigger) = spawn_action(&[]) else {
        unreachable!("spawn_action builds a spawn")
    };
    bigger.flavor.vcpus = 4;
    bigger.flavor.memory_mb = 4096;
    let redefine = |spec: &SpawnSpec, power_on| TaskAction::Redefine {
        spec: spec.clone(),
        power_on,
    };
    // A running domain is powered off, redefined, and booted again.
    assert_eq!(
        execute(&driver, &task(id, redefine(&bigger, true))),
        succeeded(PowerState::Running)
    );
    let domain = Domain::lookup_by_uuid_string(driver.connect(), &id.to_string()).unwrap();
    let info = domain.get_info().unwrap();
    assert_eq!((info.nr_virt_cpu, info.max_mem), (4, 4096 * 1024));
    // Delivered twice: the same place.
    assert_eq!(
        execute(&driver, &task(id, redefine(&bigger, true))),
        succeeded(PowerState::Running)
    );
    // A stopped instance stays off; an unknown one is defined from scratch.
    assert_eq!(
        execute(&driver, &task(id, redefine(&bigger, false))),
        succeeded(PowerState::Shutdown)
    );
    let fresh = Uuid::new_v4();
    assert_eq!(
        execute(&driver, &task(fresh, redefine(&bigger, false))),
        succeeded(PowerState::Shutdown)
    );
}

/// A spawn whose server name is `name`.
fn spawn_named(name: &str) -> TaskAction {
    match spawn_action(&[]) {
        TaskAction::Spawn(spec) => TaskAction::Spawn(SpawnSpec {
            name: name.to_string(),
            ..spec
        }),
        other => other,
    }
}

#[test]
fn text_libvirt_cannot_take_fails_the_task_with_a_message() {
    let node = TestNode::create(8, 16384).unwrap();
    let driver = LibvirtDriver::open(&node.uri(), LibvirtOptions::default()).unwrap();
    let cases = [
        (spawn_named("a\u{0}b"), "server name", "U+0000"),
        (spawn_named("a\u{1}b"), "server name", "U+0001"),
        (
            spawn_action(&[("hw_machine_type", "q35\u{0}")]),
            "image property hw_machine_type",
            "U+0000",
        ),
    ];
    for (action, field, character) in cases {
        let id = Uuid::new_v4();
        for redefine in [false, true] {
            let action = match (&action, redefine) {
                (TaskAction::Spawn(spec), true) => TaskAction::Redefine {
                    spec: spec.clone(),
                    power_on: true,
                },
                _ => action.clone(),
            };
            let kind = action.kind();
            match execute(&driver, &task(id, action)) {
                TaskOutcome::Failed {
                    message,
                    power_state,
                } => {
                    assert!(message.starts_with(&format!("{kind} failed")), "{message}");
                    assert!(message.contains(field), "{message}");
                    assert!(message.contains(character), "{message}");
                    assert_eq!(power_state, Some(PowerState::NoState));
                }
                other => panic!("{kind} with {field}: {other:?}"),
            }
            assert_eq!(driver.power_state(id).unwrap(), None, "nothing defined");
        }
    }
    // The driver goes on serving.
    let id = Uuid::new_v4();
    assert_eq!(
        execute(&driver, &task(id, spawn_named("web 01 <é>"))),
        succeeded(PowerState::Running)
    );
}

#[test]
fn failure_messages_carry_no_control_characters() {
    assert_eq!(
        novum_agent::execute::printable("bad \u{0}name\n é"),
        "bad \\u{0}name\\u{a} é"
    );
}

fn interface(n: u8) -> InterfaceSpec {
    let network_id = Uuid::new_v4();
    InterfaceSpec {
        port_id: Uuid::new_v4(),
        mac_address: format!("fa:16:3e:10:00:{n:02x}"),
        network_id,
        network_name: "private".into(),
        mtu: Some(1450),
        bridge: bridge_name(network_id),
        fixed_ips: Vec::new(),
    }
}

fn spawn_with(interfaces: Vec<InterfaceSpec>) -> TaskAction {
    match spawn_action(&[]) {
        TaskAction::Spawn(spec) => TaskAction::Spawn(SpawnSpec { interfaces, ..spec }),
        other => other,
    }
}

/// The MAC addresses of the domain's persistent definition, in order.
fn defined_macs(driver: &LibvirtDriver, id: Uuid) -> Vec<String> {
    let domain = Domain::lookup_by_uuid_string(driver.connect(), &id.to_string()).unwrap();
    let xml = domain
        .get_xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE)
        .unwrap();
    novum_agent::driver::domain_interfaces(&xml)
        .unwrap()
        .into_iter()
        .map(|i| i.mac_address)
        .collect()
}

#[test]
fn interface_tasks_delivered_twice_end_in_the_same_place() {
    let node = TestNode::create(8, 16384).unwrap();
    let driver = LibvirtDriver::open(&node.uri(), LibvirtOptions::default()).unwrap();
    let id = Uuid::new_v4();
    let (first, second) = (interface(1), interface(2));
    assert_eq!(
        execute(&driver, &task(id, spawn_with(vec![first.clone()]))),
        succeeded(PowerState::Running)
    );
    let attach = TaskAction::AttachInterface {
        interface: second.clone(),
    };
    let detach = TaskAction::DetachInterface {
        port_id: first.port_id,
        mac_address: first.mac_address.clone(),
    };
    for _ in 0..2 {
        assert_eq!(
            execute(&driver, &task(id, attach.clone())),
            succeeded(PowerState::Running)
        );
        assert_eq!(
            defined_macs(&driver, id),
            [first.mac_address.clone(), second.mac_address.clone()]
        );
    }
    for _ in 0..2 {
        assert_eq!(
            execute(&driver, &task(id, detach.clone())),
            succeeded(PowerState::Running)
        );
        assert_eq!(defined_macs(&driver, id), vec![second.mac_address.clone()]);
    }
    // On a stopped domain too; and a detach after the destroy.
    assert_eq!(
        execute(&driver, &task(id, TaskAction::Stop)),
        succeeded(PowerState::Shutdown)
    );
    assert_eq!(
        execute(&driver, &task(id, attach.clone())),
        succeeded(PowerState::Shutdown)
    );
    assert_eq!(
        execute(&driver, &task(id, TaskAction::Destroy)),
        succeeded(PowerState::NoState)
    );
    assert_eq!(
        execute(&driver, &task(id, detach)),
        succeeded(PowerState::NoState)
    );
}

#[test]
fn a_bad_mac_fails_the_task_with_a_message() {
    let node = TestNode::create(8, 16384).unwrap();
    let driver = LibvirtDriver::open(&node.uri(), LibvirtOptions::default()).unwrap();
    let mut bad = interface(1);
    bad.mac_address = "fa:16:3e:zz:00:01\u{0}".into();

    let id = Uuid::new_v4();
    match execute(
        &driver,
        &task(id, spawn_with(vec![interface(2), bad.clone()])),
    ) {
        TaskOutcome::Failed {
            message,
            power_state,
        } => {
            assert!(
                message.starts_with("spawn failed: invalid input: the MAC address"),
                "{message}"
            );
            assert!(message.contains("\\u{0}"), "printable: {message}");
            assert_eq!(power_state, Some(PowerState::NoState));
        }
        other => panic!("spawn with a bad MAC: {other:?}"),
    }
    assert_eq!(driver.power_state(id).unwrap(), None, "nothing defined");

    assert_eq!(
        execute(&driver, &task(id, spawn_with(vec![interface(2)]))),
        succeeded(PowerState::Running)
    );
    for action in [
        TaskAction::AttachInterface {
            interface: bad.clone(),
        },
        TaskAction::DetachInterface {
            port_id: bad.port_id,
            mac_address: "01:00:5e:00:00:01".into(),
        },
    ] {
        let kind = action.kind();
        match execute(&driver, &task(id, action)) {
            TaskOutcome::Failed {
                message,
                power_state,
            } => {
                assert!(
                    message.starts_with(&format!("{kind} failed: invalid input: the MAC address")),
                    "{message}"
                );
                assert_eq!(power_state, Some(PowerState::Running));
            }
            other => panic!("{kind} with a bad MAC: {other:?}"),
        }
    }
    assert_eq!(defined_macs(&driver, id), [interface(2).mac_address]);
}
