//! Running one task through a [`VirtDriver`] and turning the outcome into a
//! [`TaskOutcome`].

use novum_wire::{PowerState, Task, TaskAction, TaskOutcome};
use tracing::{info, warn};

use crate::driver::{DriverError, VirtDriver};

/// Execute `task` on `driver` (blocking) and say how it went.
///
/// Success carries the domain's power state afterwards (`NOSTATE` once
/// destroyed); failure carries the error and, when it can be read, the power
/// state the domain was left in. Every task kind is idempotent (see
/// [`VirtDriver`]), so a task delivered twice is harmless.
pub fn execute(driver: &dyn VirtDriver, task: &Task) -> TaskOutcome {
    let instance = task.instance_uuid;
    let result = match &task.action {
        TaskAction::Spawn(spec) => driver.spawn(instance, spec),
        TaskAction::Redefine { spec, power_on } => driver.redefine(instance, spec, *power_on),
        TaskAction::Destroy => driver.destroy(instance),
        TaskAction::Start => driver.power_on(instance),
        TaskAction::Stop => driver.power_off(instance),
        TaskAction::Reboot { reboot_type } => driver.reboot(instance, *reboot_type),
        TaskAction::Pause => driver.pause(instance),
        TaskAction::Unpause => driver.unpause(instance),
        TaskAction::Suspend => driver.suspend(instance),
        TaskAction::Resume => driver.resume(instance),
        TaskAction::AttachInterface { interface } => driver.attach_interface(instance, interface),
        TaskAction::DetachInterface {
            port_id,
            mac_address,
        } => driver.detach_interface(instance, *port_id, mac_address),
    };
    let state = driver.power_state(instance);
    match (result, state) {
        (Ok(()), Ok(state)) => {
            let power_state = state.unwrap_or(PowerState::NoState);
            info!(task = %task.id, kind = task.action.kind(), %power_state, "task succeeded");
            TaskOutcome::Succeeded { power_state }
        }
        (Ok(()), Err(e)) => failed(task, &e, None),
        (Err(e), state) => failed(
            task,
            &e,
            state.ok().map(|s| s.unwrap_or(PowerState::NoState)),
        ),
    }
}

fn failed(task: &Task, error: &DriverError, power_state: Option<PowerState>) -> TaskOutcome {
    warn!(task = %task.id, kind = task.action.kind(), %error, "task failed");
    TaskOutcome::Failed {
        message: printable(&format!("{} failed: {error}", task.action.kind())),
        power_state,
    }
}

/// `message` with each control character written as its escape (`\u{0}`),
/// so that a failure message echoing task input (a name with a NUL, ...)
/// can be reported and stored like any other.
pub fn printable(message: &str) -> String {
    message
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
