//! The vm/task state guards and the power-state sync follow Nova.

use novum_compute::conductor::states::*;
use novum_wire::{PowerState, RebootType};

#[test]
fn guards_follow_nova() {
    assert!(ServerAction::Pause.check("x", vm::ACTIVE, None).is_ok());
    assert_eq!(
        ServerAction::Pause
            .check("x", vm::STOPPED, None)
            .err()
            .as_deref(),
        Some("Cannot 'pause' instance x while it is in vm_state stopped")
    );
    assert!(
        ServerAction::Start
            .check("x", vm::STOPPED, Some("powering-off"))
            .is_err()
    );
    assert!(
        ServerAction::Reboot(RebootType::Hard)
            .check("x", vm::STOPPED, None)
            .is_ok()
    );
    assert!(
        ServerAction::Reboot(RebootType::Soft)
            .check("x", vm::STOPPED, None)
            .is_err()
    );
    assert!(ServerAction::Stop.check("x", vm::ERROR, None).is_ok());
}

#[test]
fn power_sync_follows_nova_and_needs_two_sightings_of_a_missing_domain() {
    use PowerState::*;
    assert_eq!(
        power_sync(vm::ACTIVE, Running, Shutdown),
        PowerSync::PowerOff
    );
    assert_eq!(
        power_sync(vm::ACTIVE, Running, Crashed),
        PowerSync::PowerOff
    );
    assert_eq!(
        power_sync(vm::PAUSED, Paused, Running),
        PowerSync::Follow(vm::ACTIVE)
    );
    assert_eq!(power_sync(vm::ACTIVE, Running, NoState), PowerSync::Record);
    assert_eq!(power_sync(vm::ACTIVE, NoState, NoState), PowerSync::Gone);
    assert_eq!(power_sync(vm::STOPPED, NoState, NoState), PowerSync::Gone);
    assert_eq!(power_sync(vm::RESIZED, NoState, NoState), PowerSync::Record);
    assert_eq!(power_sync(vm::ERROR, NoState, NoState), PowerSync::Record);
    assert_eq!(
        power_sync(vm::STOPPED, Shutdown, Shutdown),
        PowerSync::Record
    );
}

#[test]
fn status_mapping() {
    assert_eq!(status(vm::BUILDING, Some(task::SCHEDULING)), "BUILD");
    assert_eq!(status(vm::STOPPED, None), "SHUTOFF");
    assert_eq!(status(vm::ACTIVE, Some("rebooting_hard")), "HARD_REBOOT");
    assert_eq!(status(vm::ACTIVE, Some("rebooting")), "REBOOT");
    assert_eq!(status(vm::ACTIVE, Some("powering-off")), "ACTIVE");
    assert_eq!(status(vm::STOPPED, Some("resize_migrating")), "RESIZE");
    assert_eq!(status(vm::RESIZED, None), "VERIFY_RESIZE");
    assert_eq!(
        status(vm::RESIZED, Some("resize_reverting")),
        "REVERT_RESIZE"
    );
}
