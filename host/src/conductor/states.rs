//! Instance states (Nova's vm_state / task_state / power_state), the API
//! status derived from them, and the guards of the server actions.

use novum_wire::{PowerState, RebootType, TaskAction};

/// vm_state values.
pub mod vm {
    /// Running (or at least defined and meant to run).
    pub const ACTIVE: &str = "active";
    /// Being built.
    pub const BUILDING: &str = "building";
    /// Paused.
    pub const PAUSED: &str = "paused";
    /// Suspended.
    pub const SUSPENDED: &str = "suspended";
    /// Powered off.
    pub const STOPPED: &str = "stopped";
    /// Failed.
    pub const ERROR: &str = "error";
    /// Deleted.
    pub const DELETED: &str = "deleted";
    /// Resized, awaiting confirm or revert (VERIFY_RESIZE).
    pub const RESIZED: &str = "resized";
}

/// task_state values.
pub mod task {
    /// Looking for a host.
    pub const SCHEDULING: &str = "scheduling";
    /// The agent is creating the domain.
    pub const SPAWNING: &str = "spawning";
    /// Deleting.
    pub const DELETING: &str = "deleting";
}

/// The API `status` of an instance.
pub fn status(vm_state: &str, task_state: Option<&str>) -> &'static str {
    match task_state {
        Some(task) if super::resize::is_resizing(task) => return "RESIZE",
        Some(task) if super::resize::is_reverting(task) => return "REVERT_RESIZE",
        _ => {}
    }
    match vm_state {
        vm::BUILDING => "BUILD",
        vm::ACTIVE => match task_state {
            Some("rebooting") | Some("reboot_pending") | Some("reboot_started") => "REBOOT",
            Some("rebooting_hard") | Some("reboot_pending_hard") | Some("reboot_started_hard") => {
                "HARD_REBOOT"
            }
            _ => "ACTIVE",
        },
        vm::STOPPED => "SHUTOFF",
        vm::PAUSED => "PAUSED",
        vm::SUSPENDED => "SUSPENDED",
        vm::ERROR => "ERROR",
        vm::DELETED => "DELETED",
        "soft-delete" => "SOFT_DELETED",
        vm::RESIZED => "VERIFY_RESIZE",
        "rescued" => "RESCUE",
        "shelved" => "SHELVED",
        "shelved_offloaded" => "SHELVED_OFFLOADED",
        _ => "UNKNOWN",
    }
}

/// The vm_states a status filter (`?status=`) selects.
pub fn vm_states_for_status(status: &str) -> Vec<&'static str> {
    match status.to_ascii_uppercase().as_str() {
        "BUILD" => vec![vm::BUILDING],
        "ACTIVE" | "REBOOT" | "HARD_REBOOT" => vec![vm::ACTIVE],
        "SHUTOFF" => vec![vm::STOPPED],
        "PAUSED" => vec![vm::PAUSED],
        "SUSPENDED" => vec![vm::SUSPENDED],
        "ERROR" => vec![vm::ERROR],
        "DELETED" => vec![vm::DELETED],
        "VERIFY_RESIZE" => vec![vm::RESIZED],
        _ => vec![],
    }
}

/// A server action that runs as one agent task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerAction {
    /// `os-start`.
    Start,
    /// `os-stop`.
    Stop,
    /// `reboot`.
    Reboot(RebootType),
    /// `pause`.
    Pause,
    /// `unpause`.
    Unpause,
    /// `suspend`.
    Suspend,
    /// `resume`.
    Resume,
}

impl ServerAction {
    /// The instance-action name (`start`, `stop`, `reboot`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Reboot(_) => "reboot",
            Self::Pause => "pause",
            Self::Unpause => "unpause",
            Self::Suspend => "suspend",
            Self::Resume => "resume",
        }
    }

    /// The vm_states the action may start from (task_state must be none).
    pub fn allowed_from(self) -> &'static [&'static str] {
        match self {
            Self::Start => &[vm::STOPPED],
            Self::Stop => &[vm::ACTIVE, vm::ERROR],
            Self::Reboot(RebootType::Soft) => &[vm::ACTIVE],
            Self::Reboot(RebootType::Hard) => &[
                vm::ACTIVE,
                vm::STOPPED,
                vm::PAUSED,
                vm::SUSPENDED,
                vm::ERROR,
            ],
            Self::Pause => &[vm::ACTIVE],
            Self::Unpause => &[vm::PAUSED],
            Self::Suspend => &[vm::ACTIVE],
            Self::Resume => &[vm::SUSPENDED],
        }
    }

    /// The task_state while the action runs.
    pub fn task_state(self) -> &'static str {
        match self {
            Self::Start => "powering-on",
            Self::Stop => "powering-off",
            Self::Reboot(RebootType::Soft) => "rebooting",
            Self::Reboot(RebootType::Hard) => "rebooting_hard",
            Self::Pause => "pausing",
            Self::Unpause => "unpausing",
            Self::Suspend => "suspending",
            Self::Resume => "resuming",
        }
    }

    /// The vm_state after success.
    pub fn result_state(self) -> &'static str {
        match self {
            Self::Stop => vm::STOPPED,
            Self::Pause => vm::PAUSED,
            Self::Suspend => vm::SUSPENDED,
            Self::Start | Self::Reboot(_) | Self::Unpause | Self::Resume => vm::ACTIVE,
        }
    }

    /// The instance-action event name (Nova's compute manager method).
    pub fn event(self) -> &'static str {
        match self {
            Self::Start => "compute_start_instance",
            Self::Stop => "compute_stop_instance",
            Self::Reboot(_) => "compute_reboot_instance",
            Self::Pause => "compute_pause_instance",
            Self::Unpause => "compute_unpause_instance",
            Self::Suspend => "compute_suspend_instance",
            Self::Resume => "compute_resume_instance",
        }
    }

    /// The agent task.
    pub fn task(self) -> TaskAction {
        match self {
            Self::Start => TaskAction::Start,
            Self::Stop => TaskAction::Stop,
            Self::Reboot(reboot_type) => TaskAction::Reboot { reboot_type },
            Self::Pause => TaskAction::Pause,
            Self::Unpause => TaskAction::Unpause,
            Self::Suspend => TaskAction::Suspend,
            Self::Resume => TaskAction::Resume,
        }
    }

    /// Checks Nova's guard; `Err` carries the 409 message.
    pub fn check(self, uuid: &str, vm_state: &str, task_state: Option<&str>) -> Result<(), String> {
        if let Some(task_state) = task_state {
            return Err(format!(
                "Cannot '{}' instance {uuid} while it is in task_state {task_state}",
                self.name()
            ));
        }
        if self.allowed_from().contains(&vm_state) {
            Ok(())
        } else {
            Err(format!(
                "Cannot '{}' instance {uuid} while it is in vm_state {vm_state}",
                self.name()
            ))
        }
    }
}

/// The vm_state an instance should have, given its power state as the
/// hypervisor reports it, when no task is in progress (`None`: leave it).
pub fn reconciled_vm_state(vm_state: &str, power: PowerState) -> Option<&'static str> {
    match (vm_state, power) {
        (vm::ACTIVE, PowerState::Shutdown | PowerState::Crashed) => Some(vm::STOPPED),
        (vm::ACTIVE, PowerState::Paused) => Some(vm::PAUSED),
        (vm::ACTIVE, PowerState::Suspended) => Some(vm::SUSPENDED),
        (vm::PAUSED, PowerState::Running) => Some(vm::ACTIVE),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
