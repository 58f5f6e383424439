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
    /// Shelved: powered off, snapshotted, still on its host.
    pub const SHELVED: &str = "shelved";
    /// Shelved and taken off its host.
    pub const SHELVED_OFFLOADED: &str = "shelved_offloaded";
    /// Deleted softly: powered off, restorable until reclaimed
    /// (`[compute] reclaim_instance_interval`).
    pub const SOFT_DELETED: &str = "soft-delete";
    /// Booted from a rescue image (RESCUE).
    pub const RESCUED: &str = "rescued";
}

/// task_state values.
pub mod task {
    /// Looking for a host.
    pub const SCHEDULING: &str = "scheduling";
    /// The agent is creating the domain.
    pub const SPAWNING: &str = "spawning";
    /// Deleting.
    pub const DELETING: &str = "deleting";
    /// The guest's password is being set (status PASSWORD).
    pub const UPDATING_PASSWORD: &str = "updating_password";
}

/// The API `status` of an instance.
pub fn status(vm_state: &str, task_state: Option<&str>) -> &'static str {
    match task_state {
        Some(task) if super::resize::is_resizing(task) => return "RESIZE",
        Some(task) if super::resize::is_reverting(task) => return "REVERT_RESIZE",
        Some(task)
            if super::live_migration::is_live_migrating(task)
                && [vm::ACTIVE, vm::PAUSED].contains(&vm_state) =>
        {
            return "MIGRATING";
        }
        Some(task)
            if super::rebuild::is_rebuilding(task)
                && [vm::ACTIVE, vm::STOPPED, vm::ERROR].contains(&vm_state) =>
        {
            return "REBUILD";
        }
        _ => {}
    }
    match vm_state {
        vm::BUILDING => "BUILD",
        vm::ACTIVE => match task_state {
            Some("rebooting") | Some("reboot_pending") | Some("reboot_started") => "REBOOT",
            Some("rebooting_hard") | Some("reboot_pending_hard") | Some("reboot_started_hard") => {
                "HARD_REBOOT"
            }
            Some(task::UPDATING_PASSWORD) => "PASSWORD",
            _ => "ACTIVE",
        },
        vm::STOPPED => "SHUTOFF",
        vm::PAUSED => "PAUSED",
        vm::SUSPENDED => "SUSPENDED",
        vm::ERROR => "ERROR",
        vm::DELETED => "DELETED",
        vm::SOFT_DELETED => "SOFT_DELETED",
        vm::RESIZED => "VERIFY_RESIZE",
        vm::RESCUED => "RESCUE",
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
        "SHELVED" => vec![vm::SHELVED],
        "SHELVED_OFFLOADED" => vec![vm::SHELVED_OFFLOADED],
        "SOFT_DELETED" => vec![vm::SOFT_DELETED],
        "RESCUE" => vec![vm::RESCUED],
        _ => vec![],
    }
}

/// Whether a server list shows an instance (`deleted`: whether it is
/// deleted, in `vm_state`) for the `deleted` filter as Nova's database API
/// applies it: `Some(false)` (the default) shows neither deleted nor
/// SOFT_DELETED instances, `Some(true)` (admins) shows both, `None` (a
/// `changes-since` without `deleted`) shows every instance.
pub fn listed(deleted: bool, vm_state: &str, deleted_filter: Option<bool>) -> bool {
    match deleted_filter {
        None => true,
        Some(true) => deleted || vm_state == vm::SOFT_DELETED,
        Some(false) => !deleted && vm_state != vm::SOFT_DELETED,
    }
}

/// Nova's guard (`check_instance_state`): `action` may start on instance
/// `uuid` only with no task in progress and in one of the vm_states
/// `allowed`; `Err` carries the 409 message.
pub fn guard(
    action: &str,
    uuid: &str,
    vm_state: &str,
    task_state: Option<&str>,
    allowed: &[&str],
) -> Result<(), String> {
    if let Some(task_state) = task_state {
        return Err(format!(
            "Cannot '{action}' instance {uuid} while it is in task_state {task_state}"
        ));
    }
    if allowed.contains(&vm_state) {
        Ok(())
    } else {
        Err(format!(
            "Cannot '{action}' instance {uuid} while it is in vm_state {vm_state}"
        ))
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
    /// `DELETE` with soft delete on (`[compute] reclaim_instance_interval`):
    /// power off into SOFT_DELETED.
    SoftDelete,
    /// `restore` of a SOFT_DELETED instance: power on into ACTIVE.
    Restore,
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
            Self::SoftDelete => "soft_delete",
            Self::Restore => "restore",
        }
    }

    /// The instance action recorded (`os-instance-actions`): Nova records a
    /// soft delete as `delete`; the others as [`ServerAction::name`].
    pub fn instance_action(self) -> &'static str {
        match self {
            Self::SoftDelete => "delete",
            other => other.name(),
        }
    }

    /// What the action does to `deleted_at`: a soft delete stamps it (the
    /// reclaim counts from then), a restore clears it; `None`: untouched.
    pub fn stamps_deleted_at(self) -> Option<bool> {
        match self {
            Self::SoftDelete => Some(true),
            Self::Restore => Some(false),
            _ => None,
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
            // Nova allows any vm_state. Deleted outright instead (see
            // `Conductor::delete_server_as_configured`): one never launched
            // or on no host (as Nova), a resized one (its resize would need
            // confirming first) and one in ERROR, whose domain may be gone
            // (powering it off would fail and leave it undeleted).
            Self::SoftDelete => &[
                vm::ACTIVE,
                vm::STOPPED,
                vm::PAUSED,
                vm::SUSPENDED,
                vm::SOFT_DELETED,
            ],
            Self::Restore => &[vm::SOFT_DELETED],
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
            Self::SoftDelete => "soft-deleting",
            Self::Restore => "restoring",
        }
    }

    /// The vm_state after success.
    pub fn result_state(self) -> &'static str {
        match self {
            Self::Stop => vm::STOPPED,
            Self::Pause => vm::PAUSED,
            Self::Suspend => vm::SUSPENDED,
            Self::SoftDelete => vm::SOFT_DELETED,
            Self::Start | Self::Reboot(_) | Self::Unpause | Self::Resume | Self::Restore => {
                vm::ACTIVE
            }
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
            Self::SoftDelete => "compute_soft_delete_instance",
            Self::Restore => "compute_restore_instance",
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
            // Nova's libvirt driver has no soft delete or restore of its
            // own: the compute manager powers the guest off and on.
            Self::SoftDelete => TaskAction::Stop,
            Self::Restore => TaskAction::Start,
        }
    }

    /// Checks Nova's guard; `Err` carries the 409 message.
    pub fn check(self, uuid: &str, vm_state: &str, task_state: Option<&str>) -> Result<(), String> {
        guard(self.name(), uuid, vm_state, task_state, self.allowed_from())
    }
}

/// What the power-state sync does with an instance that has no task in
/// progress, given the power state it has on record and the one its host
/// reports (Nova's `_sync_instance_power_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerSync {
    /// Only the reported power state is recorded.
    Record,
    /// The vm_state follows the hypervisor (a guest paused or resumed behind
    /// novum's back).
    Follow(&'static str),
    /// The guest shut down by itself: STOPPED, as Nova's sync calls the stop
    /// API (`instance.power_off.start`/`.end`).
    PowerOff,
    /// The domain is gone from its host (reported missing twice in a row, so
    /// a heartbeat sampled just before a spawn finished is not taken for it):
    /// ERROR with a fault.
    Gone,
}

/// The vm_states in which an instance must have a domain on its host.
const NEEDS_A_DOMAIN: &[&str] = &[vm::ACTIVE, vm::STOPPED, vm::PAUSED, vm::SUSPENDED];

/// The power-state sync's decision for an instance in `vm_state` whose
/// recorded power state is `recorded` and whose host now reports `reported`.
pub fn power_sync(vm_state: &str, recorded: PowerState, reported: PowerState) -> PowerSync {
    match (vm_state, reported) {
        (vm::ACTIVE, PowerState::Shutdown | PowerState::Crashed) => PowerSync::PowerOff,
        (vm::ACTIVE, PowerState::Paused) => PowerSync::Follow(vm::PAUSED),
        (vm::ACTIVE, PowerState::Suspended) => PowerSync::Follow(vm::SUSPENDED),
        (vm::PAUSED, PowerState::Running) => PowerSync::Follow(vm::ACTIVE),
        (state, PowerState::NoState)
            if recorded == PowerState::NoState && NEEDS_A_DOMAIN.contains(&state) =>
        {
            PowerSync::Gone
        }
        _ => PowerSync::Record,
    }
}
