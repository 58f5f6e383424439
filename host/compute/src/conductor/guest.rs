//! What touches a running guest without changing its state: setting a
//! user's password (Nova's `changePassword`, a call the API waits for),
//! injecting an NMI (Nova's `trigger_crash_dump`, an agent task the API
//! does not wait for) and reading its diagnostics (a call). The calls are
//! query tasks (see [`super::consoles`]); the crash dump is an operation of
//! its own whose result changes no state.

use std::sync::Arc;

use novum_notify::builders::InstanceAction;
use novum_notify::{Phase, Publisher};
use novum_wire::{GuestDiagnostics, Refusal, TaskAction, TaskAnswer, TaskOutcome};

use super::model::Instance;
use super::notices::{self, StateMark};
use super::states::{self, task, vm};
use super::tasks::{self, QueryEnd};
use super::{
    Caller, Conductor, ConductorError, Operation, Result, actions, fault_json, finish_operation,
    insert_operation, step,
};
use novum_db::{self as db, Tx};

/// The operation kind (and instance action) of a crash dump.
pub const TRIGGER_CRASH_DUMP: &str = "trigger_crash_dump";
/// The instance action of a password change.
pub const CHANGE_PASSWORD: &str = "changePassword";
const CRASH_DUMP_EVENT: &str = "compute_trigger_crash_dump";
const SET_PASSWORD_EVENT: &str = "compute_set_admin_password";

/// The vm_states a crash dump may be triggered in (Nova's
/// `ALLOW_TRIGGER_CRASH_DUMP`).
const CRASH_DUMP_STATES: &[&str] = &[vm::ACTIVE, vm::PAUSED, "rescued", vm::RESIZED, vm::ERROR];

/// The guest user whose password `changePassword` sets (Nova's libvirt
/// driver): the image's `os_admin_user`, else `Administrator` on Windows,
/// else `root`.
fn admin_user(instance: &Instance) -> String {
    let properties = instance.image_property_map();
    match properties.get("os_admin_user") {
        Some(user) if !user.is_empty() => user.clone(),
        _ if properties.get("os_type").map(String::as_str) == Some("windows") => {
            "Administrator".to_string()
        }
        _ => "root".to_string(),
    }
}

/// A host the instance is on, or Nova's `InstanceNotReady` (409).
fn host_of(instance: &Instance) -> Result<String> {
    instance
        .host
        .clone()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| ConductorError::Conflict(format!("Instance {} is not ready", instance.uuid)))
}

impl Conductor {
    /// `changePassword`: sets the guest's admin password through its host's
    /// agent and waits for it, as Nova's synchronous `set_admin_password`.
    /// ACTIVE with no task only (409); the instance is in task_state
    /// `updating_password` (status PASSWORD) meanwhile. The password leaves
    /// the task row as soon as the agent answered.
    pub async fn set_admin_password(
        self: &Arc<Self>,
        uuid: &str,
        password: &str,
        caller: &Caller<'_>,
    ) -> Result<()> {
        let mut tx = self.begin_global(uuid).await?;
        let instance = Self::locked_instance(&mut tx, uuid).await?;
        states::guard(
            CHANGE_PASSWORD,
            uuid,
            &instance.vm_state,
            instance.task_state.as_deref(),
            &[vm::ACTIVE],
        )
        .map_err(ConductorError::Conflict)?;
        let host = host_of(&instance)?;
        let before = StateMark::of(&instance);
        set_task_state(&mut tx, uuid, Some(task::UPDATING_PASSWORD)).await?;
        let action_id = actions::start_action(
            &mut tx,
            uuid,
            CHANGE_PASSWORD,
            caller.request_id,
            caller.user_id,
            caller.project_id,
        )
        .await?;
        actions::start_event(&mut tx, &action_id, SET_PASSWORD_EVENT, Some(&host)).await?;
        let context = notices::caller_context(caller);
        notices::state_changed(
            &mut tx,
            &self.api_publisher(),
            uuid,
            Some(&before),
            &context,
        )
        .await?;
        novum_notify::commit(tx).await?;

        let action = TaskAction::SetPassword {
            user: admin_user(&instance),
            password: password.to_string(),
            qemu_guest_agent: novum_wire::qemu_guest_agent(&instance.image_property_map()),
        };
        let asked = self
            .query_agent(&instance, "set_admin_password", &action, caller.request_id)
            .await;
        if let Ok((task_id, _)) = &asked {
            forget_password(&self.db, task_id).await?;
        }
        let outcome = match asked {
            Ok((_, end)) => self.password_outcome(uuid, &host, end),
            Err(error) => Err(error),
        };

        let mut tx = self.db.begin().await?;
        let before = StateMark::read(&mut tx, uuid).await?;
        sqlx::query(
            "UPDATE instances SET task_state = NULL, updated_at = $1 \
             WHERE uuid = $2 AND task_state = $3 AND deleted = 0",
        )
        .bind(db::now())
        .bind(uuid)
        .bind(task::UPDATING_PASSWORD)
        .execute(&mut *tx)
        .await?;
        let error = outcome.as_ref().err().map(ToString::to_string);
        actions::finish_events(&mut tx, &action_id, None, error.as_deref()).await?;
        notices::state_changed(
            &mut tx,
            &Publisher::compute(&host),
            uuid,
            before.as_ref(),
            &context,
        )
        .await?;
        novum_notify::commit(tx).await?;
        outcome
    }

    /// How a password query ended, in Nova's words (`admin_password.py`).
    fn password_outcome(&self, uuid: &str, host: &str, end: QueryEnd) -> Result<()> {
        let failed = |reason: String| {
            ConductorError::Conflict(format!(
                "Failed to set admin password on {uuid} because {reason}"
            ))
        };
        match end {
            QueryEnd::Answered(TaskAnswer::PasswordSet) => Ok(()),
            QueryEnd::Answered(TaskAnswer::Refused { refusal }) => Err(match refusal {
                Refusal::NotRunning { .. } => failed(format!("instance {uuid} is not running")),
                Refusal::GuestAgentNotEnabled => {
                    ConductorError::Conflict("QEMU guest agent is not enabled".to_string())
                }
                Refusal::NotSupported => {
                    ConductorError::Conflict("Set admin password is not supported".to_string())
                }
                Refusal::NotImplemented => {
                    ConductorError::NotImplemented("Unable to set password on instance".to_string())
                }
            }),
            QueryEnd::Answered(other) => Err(super::consoles::unexpected(&other)),
            // Nova hides what went wrong (it may echo the password).
            QueryEnd::Failed(message) => {
                tracing::warn!(instance = uuid, host, %message, "setting the admin password failed");
                Err(failed("error setting admin password".to_string()))
            }
            QueryEnd::Cancelled => Err(ConductorError::NotFound(format!(
                "Instance {uuid} could not be found."
            ))),
            QueryEnd::TimedOut => Err(self.call_timed_out("set_admin_password", host)),
        }
    }

    /// `trigger_crash_dump` (2.17): an NMI injected into the guest by its
    /// host's agent; the API does not wait (Nova casts). Nova's guards: not
    /// locked (the API), on a host (409 "not ready"), in
    /// ACTIVE/PAUSED/RESCUED/RESIZED/ERROR with no task (409). Notifies
    /// `instance.trigger_crash_dump.start` now, `.end` when the agent has
    /// done it.
    pub async fn trigger_crash_dump(
        self: &Arc<Self>,
        uuid: &str,
        caller: &Caller<'_>,
    ) -> Result<()> {
        let mut tx = self.begin_global(uuid).await?;
        let instance = Self::locked_instance(&mut tx, uuid).await?;
        let host = host_of(&instance)?;
        states::guard(
            TRIGGER_CRASH_DUMP,
            uuid,
            &instance.vm_state,
            instance.task_state.as_deref(),
            CRASH_DUMP_STATES,
        )
        .map_err(ConductorError::Conflict)?;
        let action_id = actions::start_action(
            &mut tx,
            uuid,
            TRIGGER_CRASH_DUMP,
            caller.request_id,
            caller.user_id,
            caller.project_id,
        )
        .await?;
        actions::start_event(&mut tx, &action_id, CRASH_DUMP_EVENT, Some(&host)).await?;
        let operation = insert_operation(
            &mut tx,
            uuid,
            TRIGGER_CRASH_DUMP,
            step::TASK,
            "{}",
            caller.request_id,
            &action_id,
        )
        .await?;
        tasks::enqueue(
            &mut tx,
            &host,
            uuid,
            &operation,
            &TaskAction::TriggerCrashDump,
            caller.request_id,
        )
        .await?;
        notices::action(
            &mut tx,
            &Publisher::compute(&host),
            uuid,
            InstanceAction::TriggerCrashDump,
            Phase::Start,
            &notices::caller_context(caller),
            None,
        )
        .await?;
        novum_notify::commit(tx).await?;
        self.board.wake(&host);
        Ok(())
    }

    /// A crash dump's task ended: the operation and its event close, the
    /// instance's state is left as it is (Nova: "the effect of a trigger
    /// depends on the user's configuration"); `.end` on success, a fault
    /// and `compute.exception` on failure.
    pub(super) async fn crash_dump_result(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        host: &str,
        outcome: &TaskOutcome,
    ) -> Result<()> {
        let uuid = operation.instance_uuid.as_str();
        let compute = Publisher::compute(host);
        let context = notices::action_context(tx, operation.action_id.as_deref()).await?;
        match outcome {
            TaskOutcome::Succeeded { .. } => {
                finish_operation(tx, operation, None).await?;
                notices::action(
                    tx,
                    &compute,
                    uuid,
                    InstanceAction::TriggerCrashDump,
                    Phase::End,
                    &context,
                    None,
                )
                .await
            }
            TaskOutcome::Failed { message, .. } => {
                sqlx::query(
                    "UPDATE instances SET fault = $1, updated_at = $2 WHERE uuid = $3 AND deleted = 0",
                )
                .bind(fault_json(500, message, ""))
                .bind(db::now())
                .bind(uuid)
                .execute(&mut **tx)
                .await?;
                finish_operation(tx, operation, Some(message)).await?;
                notices::exception(
                    tx,
                    &compute,
                    uuid,
                    notices::fault(TRIGGER_CRASH_DUMP, "TriggerCrashDumpFailed", message),
                )
                .await
            }
        }
    }

    /// A running guest's diagnostics from its host's agent (Nova's
    /// `get_diagnostics` / `get_instance_diagnostics`); 409 when it is on no
    /// host or does not run, in Nova's words.
    pub async fn diagnostics(
        &self,
        instance: &Instance,
        request_id: &str,
    ) -> Result<GuestDiagnostics> {
        match self
            .ask_agent(
                instance,
                "get_diagnostics",
                &TaskAction::Diagnostics,
                request_id,
            )
            .await?
        {
            TaskAnswer::Diagnostics(diagnostics) => Ok(diagnostics),
            TaskAnswer::Refused {
                refusal: Refusal::NotRunning { power_state },
            } => Err(ConductorError::Conflict(format!(
                "Cannot 'get_diagnostics' instance {} while it is in power state {}",
                instance.uuid,
                novum_notify::builders::power_state_name(i64::from(u8::from(power_state)))
            ))),
            other => Err(super::consoles::unexpected(&other)),
        }
    }
}

async fn set_task_state(tx: &mut Tx, uuid: &str, task_state: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE instances SET task_state = $1, updated_at = $2 WHERE uuid = $3")
        .bind(task_state)
        .bind(db::now())
        .bind(uuid)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Blanks the password in the row of the password task `task_id`, which
/// has ended: no password stays in the database.
async fn forget_password(db: &novum_db::Db, task_id: &str) -> Result<()> {
    let blank = TaskAction::SetPassword {
        user: String::new(),
        password: String::new(),
        qemu_guest_agent: false,
    };
    let action = serde_json::to_string(&blank).unwrap_or_else(|_| "{}".to_string());
    sqlx::query("UPDATE tasks SET action = $1, updated_at = $2 WHERE id = $3")
        .bind(action)
        .bind(db::now())
        .bind(task_id)
        .execute(db.pool())
        .await?;
    Ok(())
}
