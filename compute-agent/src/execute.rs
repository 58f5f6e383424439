//! Running one task through a [`VirtDriver`] and turning the outcome into a
//! [`TaskOutcome`] (with a [`TaskAnswer`] for a query).

use novum_wire::{PowerState, Task, TaskAction, TaskAnswer, TaskOutcome, TaskResult};
use tracing::{debug, info, warn};

use crate::driver::{DriverError, VirtDriver};
use uuid::Uuid;

/// Execute `task` on `driver` (blocking) and say how it went.
///
/// Success carries the domain's power state afterwards (`NOSTATE` once
/// destroyed); failure carries the error and, when it can be read, the power
/// state the domain was left in. Every task kind is idempotent (see
/// [`VirtDriver`]), so a task delivered twice is harmless.
pub fn execute(driver: &dyn VirtDriver, task: &Task) -> TaskOutcome {
    run(driver, task).outcome
}

/// Execute `task` on `driver` (blocking): a query is answered (see
/// [`answer`]), any other task executed; the result to report.
pub fn run(driver: &dyn VirtDriver, task: &Task) -> TaskResult {
    let instance = task.instance_uuid;
    let result = match &task.action {
        action if action.is_query() => return answer(driver, task),
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
        TaskAction::Snapshot {
            image_id,
            base_image_id,
        } => driver.snapshot(instance, image_id, base_image_id),
        TaskAction::TriggerCrashDump => driver.trigger_crash_dump(instance),
        TaskAction::ConsoleOutput { .. }
        | TaskAction::SerialConsole
        | TaskAction::SetPassword { .. }
        | TaskAction::Diagnostics
        | TaskAction::LiveMigrationControl { .. } => return answer(driver, task),
        TaskAction::Rebuild {
            spec,
            power_on,
            preserve_ephemeral,
        } => driver.rebuild(instance, spec, *power_on, *preserve_ephemeral),
        TaskAction::Rescue { spec, rescue_image } => driver.rescue(instance, spec, rescue_image),
        TaskAction::Unrescue => driver.unrescue(instance),
        TaskAction::PreLiveMigration {
            spec,
            block_migration,
            source_cpu,
        } => driver.pre_live_migration(instance, spec, *block_migration, source_cpu.as_ref()),
        TaskAction::LiveMigrate {
            destination,
            destination_ip,
            block_migration,
            spec,
        } => driver.live_migrate(
            instance,
            &crate::driver::LiveMigrationJob {
                destination,
                destination_ip,
                block_migration: *block_migration,
                spec,
            },
        ),
        TaskAction::PostLiveMigration { spec, paused } => driver
            .post_live_migration(instance, spec)
            .and_then(|()| arrive(driver, instance, *paused)),
    };
    let state = driver.power_state(instance);
    match (result, state) {
        (Ok(()), Ok(state)) => {
            let power_state = state.unwrap_or(PowerState::NoState);
            info!(task = %task.id, kind = task.action.kind(), %power_state, "task succeeded");
            TaskResult::of(TaskOutcome::Succeeded { power_state })
        }
        (Ok(()), Err(e)) => TaskResult::of(failed(task, &e, None)),
        (Err(e), state) => TaskResult::of(failed(
            task,
            &e,
            state.ok().map(|s| s.unwrap_or(PowerState::NoState)),
        )),
    }
}

/// The guest arrives at the destination of a live migration in the power
/// state it moved in: paused when it was paused on the source (the test
/// driver's simulated move starts it from its spec: paused again here),
/// running otherwise (a move forced to complete paused it on the source so
/// its memory stopped changing; libvirt resumes it at the end, and where it
/// did not, it is resumed here).
fn arrive(driver: &dyn VirtDriver, instance: Uuid, paused: bool) -> Result<(), DriverError> {
    match (paused, driver.power_state(instance)?) {
        (true, Some(PowerState::Running)) => driver.pause(instance),
        (false, Some(PowerState::Paused)) => driver.unpause(instance),
        _ => Ok(()),
    }
}

/// Answer the query `task` (see [`TaskAction::is_query`]): what the driver
/// found, with the domain's power state; nothing on the host changes.
pub fn answer(driver: &dyn VirtDriver, task: &Task) -> TaskResult {
    let instance = task.instance_uuid;
    let found: Result<TaskAnswer, DriverError> = match &task.action {
        TaskAction::ConsoleOutput { lines } => driver.console_output(instance, *lines),
        TaskAction::SerialConsole => driver.serial_console(instance),
        TaskAction::SetPassword {
            user,
            password,
            qemu_guest_agent,
        } => driver.set_password(instance, user, password, *qemu_guest_agent),
        TaskAction::Diagnostics => driver.diagnostics(instance),
        TaskAction::LiveMigrationControl { control } => {
            driver.control_live_migration(instance, *control)
        }
        other => Err(DriverError::Unsupported(format!(
            "{} is not a query",
            other.kind()
        ))),
    };
    let power_state = driver.power_state(instance);
    match (found, power_state) {
        (Ok(answer), Ok(state)) => {
            debug!(task = %task.id, kind = task.action.kind(), "query answered");
            TaskResult {
                outcome: TaskOutcome::Succeeded {
                    power_state: state.unwrap_or(PowerState::NoState),
                },
                answer: Some(answer),
            }
        }
        (Ok(_), Err(e)) => TaskResult::of(failed(task, &e, None)),
        (Err(e), state) => TaskResult::of(failed(
            task,
            &e,
            state.ok().map(|s| s.unwrap_or(PowerState::NoState)),
        )),
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
