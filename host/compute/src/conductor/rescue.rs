//! Rescue and unrescue (Nova's `rescue` / `unrescue` server actions).
//!
//! Rescue: from ACTIVE, STOPPED or ERROR with no task (Nova's guard),
//! task_state `rescuing`, one agent task [`TaskAction::Rescue`] that boots
//! the domain from the rescue image (the server's own image unless the
//! request names one) with the server's root disk as the second disk, the
//! original definition kept to restore; then RESCUED. A failed rescue
//! leaves the server in ERROR (Nova's `_error_out_instance_on_exception`).
//!
//! Unrescue: from RESCUED, task_state `unrescuing`, [`TaskAction::Unrescue`]
//! restores the original definition, removes the rescue files and boots;
//! then ACTIVE. A failed unrescue leaves the server RESCUED with a fault.
//!
//! Both are instance actions (`rescue`, `unrescue`; events
//! `compute_rescue_instance`, `compute_unrescue_instance`) notified as
//! `instance.rescue.*` / `instance.unrescue.*` with `instance.update` on
//! every state change.

use std::sync::Arc;

use novum_notify::builders::InstanceAction;
use novum_wire::{ImageSpec, TaskAction};

use super::ops::QueuedAction;
use super::states::{guard, vm};
use super::{ActionData, Caller, Conductor, ConductorError, Result};

/// The instance action (and operation kind) of a rescue.
pub const RESCUE: &str = "rescue";
/// The instance action (and operation kind) of an unrescue.
pub const UNRESCUE: &str = "unrescue";

/// One of the two actions, with what differs between them.
struct RescueStep {
    name: &'static str,
    event: &'static str,
    task_state: &'static str,
    allowed_from: &'static [&'static str],
    result_state: &'static str,
    error_state: Option<&'static str>,
    notified: InstanceAction,
}

const RESCUE_STEP: RescueStep = RescueStep {
    name: RESCUE,
    event: "compute_rescue_instance",
    task_state: "rescuing",
    allowed_from: &[vm::ACTIVE, vm::STOPPED, vm::ERROR],
    result_state: vm::RESCUED,
    error_state: Some(vm::ERROR),
    notified: InstanceAction::Rescue,
};

const UNRESCUE_STEP: RescueStep = RescueStep {
    name: UNRESCUE,
    event: "compute_unrescue_instance",
    task_state: "unrescuing",
    allowed_from: &[vm::RESCUED],
    result_state: vm::ACTIVE,
    error_state: None,
    notified: InstanceAction::Unrescue,
};

impl Conductor {
    /// Rescues server `uuid`, booting `rescue_image` (`None`: the
    /// server's own image, as Nova). 409 in a state Nova refuses.
    pub async fn rescue_server(
        self: &Arc<Self>,
        uuid: &str,
        rescue_image: Option<ImageSpec>,
        caller: &Caller<'_>,
    ) -> Result<()> {
        self.rescue_step(uuid, &RESCUE_STEP, Some(rescue_image), caller)
            .await
    }

    /// Unrescues server `uuid`. 409 unless it is RESCUED with no task.
    pub async fn unrescue_server(self: &Arc<Self>, uuid: &str, caller: &Caller<'_>) -> Result<()> {
        self.rescue_step(uuid, &UNRESCUE_STEP, None, caller).await
    }

    /// Starts `step` on `uuid`; `rescue` is `Some` for a rescue (with the
    /// image asked for, if any).
    async fn rescue_step(
        self: &Arc<Self>,
        uuid: &str,
        step: &RescueStep,
        rescue: Option<Option<ImageSpec>>,
        caller: &Caller<'_>,
    ) -> Result<()> {
        let mut tx = self.begin_global(uuid).await?;
        let instance = Self::locked_instance(&mut tx, uuid).await?;
        guard(
            step.name,
            uuid,
            &instance.vm_state,
            instance.task_state.as_deref(),
            step.allowed_from,
        )
        .map_err(ConductorError::Conflict)?;
        let host = instance.host.clone().ok_or_else(|| {
            ConductorError::Conflict(format!(
                "Cannot '{}' instance {uuid} while it is in vm_state {}: it has no host",
                step.name, instance.vm_state
            ))
        })?;
        let task = match rescue {
            Some(rescue_image) => {
                let spec = self
                    .spec_with_interfaces(&instance, &instance.flavor()?)
                    .await?;
                TaskAction::Rescue {
                    rescue_image: rescue_image.unwrap_or_else(|| spec.image.clone()),
                    spec,
                }
            }
            None => TaskAction::Unrescue,
        };
        let queued = QueuedAction {
            name: step.name,
            instance_action: step.name,
            event: step.event,
            task_state: step.task_state,
            data: ActionData {
                result_state: step.result_state.to_string(),
                event: step.event.to_string(),
                port_id: None,
                error_state: step.error_state.map(str::to_string),
            },
            task,
            notified: Some(step.notified),
        };
        self.queue_action(&mut tx, &instance, &host, queued, caller)
            .await?;
        novum_notify::commit(tx).await?;
        self.board.wake(&host);
        Ok(())
    }
}
