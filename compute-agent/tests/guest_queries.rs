//! The tasks about a running guest that change none of its state — set a
//! user's password, inject an NMI, read its diagnostics — against libvirt's
//! real test driver.

use std::collections::BTreeMap;

use novum_agent::driver::{LibvirtDriver, LibvirtOptions, TestNode, VirtDriver};
use novum_agent::execute::{execute, run};
use novum_wire::{
    FlavorSpec, ImageSpec, PowerState, Refusal, SpawnSpec, Task, TaskAction, TaskAnswer,
    TaskOutcome, TaskResult,
};
use uuid::Uuid;

fn spawn() -> TaskAction {
    TaskAction::Spawn(SpawnSpec {
        name: "guest-vm".into(),
        flavor: FlavorSpec {
            name: "m1.small".into(),
            vcpus: 2,
            memory_mb: 2048,
            root_gb: 20,
            ephemeral_gb: 0,
            swap_mb: 0,
        },
        image: ImageSpec {
            id: "img-1".into(),
            properties: BTreeMap::new(),
        },
        user_data: None,
        metadata: BTreeMap::new(),
        interfaces: Vec::new(),
        project_id: None,
        config_drive: None,
    })
}

fn task(instance: Uuid, action: TaskAction) -> Task {
    Task {
        id: Uuid::new_v4(),
        instance_uuid: instance,
        request_id: Some("req-guest".into()),
        action,
    }
}

fn set_password(qemu_guest_agent: bool) -> TaskAction {
    TaskAction::SetPassword {
        user: "root".into(),
        password: "s3cret".into(),
        qemu_guest_agent,
    }
}

/// A driver on a fresh test node with one running guest.
fn running_guest() -> (TestNode, LibvirtDriver, Uuid) {
    let node = TestNode::create(8, 16384).unwrap();
    let driver = LibvirtDriver::open(&node.uri(), LibvirtOptions::default()).unwrap();
    let id = Uuid::new_v4();
    let outcome = execute(&driver, &task(id, spawn()));
    assert!(
        matches!(outcome, TaskOutcome::Succeeded { .. }),
        "{outcome:?}"
    );
    (node, driver, id)
}

fn answer_of(result: TaskResult) -> TaskAnswer {
    assert!(
        matches!(result.outcome, TaskOutcome::Succeeded { .. }),
        "{:?}",
        result.outcome
    );
    result.answer.expect("a query carries an answer")
}

#[test]
fn the_new_queries_are_queries_and_the_crash_dump_is_not() {
    assert!(set_password(true).is_query());
    assert!(TaskAction::Diagnostics.is_query());
    assert!(!TaskAction::TriggerCrashDump.is_query());
    assert_eq!(set_password(true).kind(), "set_password");
    assert_eq!(TaskAction::TriggerCrashDump.kind(), "trigger_crash_dump");
    assert_eq!(TaskAction::Diagnostics.kind(), "diagnostics");
}

#[test]
fn a_password_is_set_through_the_guest_agent_only_when_the_image_says_it_runs() {
    let (_node, driver, id) = running_guest();
    assert_eq!(
        answer_of(run(&driver, &task(id, set_password(false)))),
        TaskAnswer::Refused {
            refusal: Refusal::GuestAgentNotEnabled
        }
    );
    assert_eq!(
        answer_of(run(&driver, &task(id, set_password(true)))),
        TaskAnswer::PasswordSet
    );
    // The guest is untouched.
    assert_eq!(driver.power_state(id).unwrap(), Some(PowerState::Running));
}

#[test]
fn a_password_is_refused_for_a_guest_that_does_not_run() {
    let (_node, driver, id) = running_guest();
    execute(&driver, &task(id, TaskAction::Stop));
    assert_eq!(
        answer_of(run(&driver, &task(id, set_password(true)))),
        TaskAnswer::Refused {
            refusal: Refusal::NotRunning {
                power_state: PowerState::Shutdown
            }
        }
    );
}

#[test]
fn a_password_with_a_nul_fails_the_query_with_a_message_instead_of_panicking() {
    let (_node, driver, id) = running_guest();
    let action = TaskAction::SetPassword {
        user: "root".into(),
        password: "bad\0password".into(),
        qemu_guest_agent: true,
    };
    match run(&driver, &task(id, action)).outcome {
        TaskOutcome::Failed { message, .. } => {
            assert!(message.contains("control character"), "{message}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn a_crash_dump_injects_an_nmi_into_a_running_guest_and_leaves_it_running() {
    let (_node, driver, id) = running_guest();
    assert_eq!(
        execute(&driver, &task(id, TaskAction::TriggerCrashDump)),
        TaskOutcome::Succeeded {
            power_state: PowerState::Running
        }
    );
    execute(&driver, &task(id, TaskAction::Stop));
    match execute(&driver, &task(id, TaskAction::TriggerCrashDump)) {
        TaskOutcome::Failed {
            message,
            power_state,
        } => {
            assert!(message.contains("crash dump"), "{message}");
            assert_eq!(power_state, Some(PowerState::Shutdown));
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn diagnostics_report_cpus_memory_and_disks_of_a_running_guest() {
    let (_node, driver, id) = running_guest();
    let TaskAnswer::Diagnostics(diagnostics) =
        answer_of(run(&driver, &task(id, TaskAction::Diagnostics)))
    else {
        panic!("expected diagnostics");
    };
    assert_eq!(diagnostics.power_state, PowerState::Running);
    assert_eq!(diagnostics.hypervisor, "test");
    assert_eq!(diagnostics.max_memory_kib, 2048 * 1024);
    assert_eq!(diagnostics.cpus.len(), 2, "{diagnostics:?}");
    assert_eq!(diagnostics.cpus[0].id, 0);
    assert_eq!(diagnostics.cpus[1].id, 1);
    assert!(!diagnostics.disks.is_empty(), "{diagnostics:?}");
    assert!(diagnostics.disks.iter().all(|disk| !disk.device.is_empty()));
    assert_eq!(diagnostics.memory_kib, 2048 * 1024);
}

#[test]
fn diagnostics_of_a_stopped_guest_are_refused_with_its_power_state() {
    let (_node, driver, id) = running_guest();
    execute(&driver, &task(id, TaskAction::Stop));
    assert_eq!(
        answer_of(run(&driver, &task(id, TaskAction::Diagnostics))),
        TaskAnswer::Refused {
            refusal: Refusal::NotRunning {
                power_state: PowerState::Shutdown
            }
        }
    );
}

#[test]
fn queries_about_an_instance_without_a_domain_fail() {
    let node = TestNode::create(8, 16384).unwrap();
    let driver = LibvirtDriver::open(&node.uri(), LibvirtOptions::default()).unwrap();
    let id = Uuid::new_v4();
    for action in [
        TaskAction::Diagnostics,
        set_password(true),
        TaskAction::TriggerCrashDump,
    ] {
        let kind = action.kind();
        match run(&driver, &task(id, action)).outcome {
            TaskOutcome::Failed { message, .. } => {
                assert!(message.contains("no domain"), "{kind}: {message}")
            }
            other => panic!("{kind}: expected a failure, got {other:?}"),
        }
    }
}
