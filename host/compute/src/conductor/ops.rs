//! Task results, server actions, delete, recovery and the reaper.

use std::sync::Arc;

use novum_wire::{InstancePower, PowerState, TaskAction, TaskOutcome, TaskResult};
use sqlx::Row;

use super::evacuate;
use super::model::Instance;
use super::notices::{self, StateMark};
use super::rebuild;
use super::resize;
use super::states::{PowerSync, ServerAction, power_sync, task, vm};
use super::tasks::{self, state as task_state};
use super::{
    ActionData, BUILD, BUILD_EVENT, BuildData, Conductor, ConductorError, DELETE, DELETE_EVENT,
    Failure, Operation, Result, actions, cancel_operations, claims, fault_json, finish_operation,
    finish_operation_into, insert_operation, load_operation, op_state, operation_of, set_operation,
    step, to_json,
};
use novum_db::{self as db, Batch, Tx};
use novum_notify::builders::{InstanceAction, RequestContext};
use novum_notify::{Phase, Publisher};

/// Who asks for an action on an instance.
#[derive(Clone, Debug)]
pub struct Caller<'a> {
    /// User id.
    pub user_id: &'a str,
    /// Project id.
    pub project_id: &'a str,
    /// The API request id.
    pub request_id: &'a str,
}

/// What a periodic sweep does to each instance it found, on behalf of its
/// owner (see [`Conductor::act_as_owners`]).
#[derive(Clone, Copy, Debug)]
pub(super) enum OwnerSweep {
    /// Offload a SHELVED instance (`shelved_offload_time`).
    ShelveOffload,
    /// Confirm a resize left in VERIFY_RESIZE (`resize_confirm_window`).
    ConfirmResize,
}

/// One agent task started as an instance action (see
/// [`Conductor::queue_action`]).
pub(super) struct QueuedAction<'a> {
    /// The operation's kind.
    pub name: &'a str,
    /// The instance action's name (the kind, but for a soft delete's
    /// `delete`).
    pub instance_action: &'a str,
    /// The instance-action event it runs under.
    pub event: &'a str,
    /// The task_state while it runs.
    pub task_state: &'a str,
    /// What the operation needs at its end.
    pub data: ActionData,
    /// The agent task.
    pub task: TaskAction,
    /// The `instance.<action>` notified `.start` now (and `.end` after).
    pub notified: Option<InstanceAction>,
}

fn outcome_power(outcome: &TaskOutcome) -> Option<PowerState> {
    match outcome {
        TaskOutcome::Succeeded { power_state } => Some(*power_state),
        TaskOutcome::Failed { power_state, .. } => *power_state,
    }
}

/// What [`Conductor::recover_operation`] made of one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// It goes on: scheduled again, or its task is still queued or leased.
    Resumed,
    /// It had no task left: failed as interrupted.
    Failed,
    /// It had ended (or vanished) since it was listed: left as it is.
    AlreadyOver,
}

impl Conductor {
    /// Records the result of task `task_id` reported by `host`'s agent and
    /// advances its operation. Reporting the same result twice is harmless.
    pub async fn complete_task(
        self: &Arc<Self>,
        host: &str,
        task_id: &str,
        report: TaskResult,
    ) -> Result<()> {
        let TaskResult { outcome, answer } = report;
        let mut tx = self.begin_for_task(host, task_id).await?;
        let succeeded = matches!(outcome, TaskOutcome::Succeeded { .. });
        // The task's state moves on only from queued or leased: a result
        // reported twice finds it done and changes nothing. Its operation
        // (with what its notifications need from before the change) is
        // read in the same hand-off.
        let mut opening = Batch::new();
        opening.push(
            sqlx::query(
                "UPDATE tasks SET state = $1, result = $2, answer = $3, updated_at = $4 \
                 WHERE id = $5 AND host = $6 AND state IN ($7, $8) RETURNING operation_id",
            )
            .bind(if succeeded {
                task_state::DONE
            } else {
                task_state::FAILED
            })
            .bind(to_json(&outcome))
            .bind(answer.as_ref().map(to_json))
            .bind(db::now())
            .bind(task_id)
            .bind(host)
            .bind(task_state::QUEUED)
            .bind(task_state::LEASED),
        )?;
        opening.push(
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT o.*, {} FROM conductor_operations o \
                 WHERE o.id = (SELECT operation_id FROM tasks WHERE id = $1 AND host = $2)",
                notices::before_change_columns("o.instance_uuid", "o.action_id")
            )))
            .bind(task_id)
            .bind(host),
        )?;
        let mut opened = opening
            .fetch_each(&mut tx)
            .await?
            .into_iter()
            .map(|answer| answer.rows.into_iter().next());
        let (row, operation_row) = (opened.next().flatten(), opened.next().flatten());
        let Some(row) = row else {
            let known = sqlx::query("SELECT 1 FROM tasks WHERE id = $1 AND host = $2")
                .bind(task_id)
                .bind(host)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            tx.commit().await?;
            return if known {
                Ok(())
            } else {
                Err(ConductorError::NotFound(format!(
                    "Task {task_id} of host {host} could not be found."
                )))
            };
        };
        let operation_id: String = row.try_get("operation_id")?;
        if operation_id == tasks::QUERY_OPERATION {
            // A query: the request waiting for it reads the answer.
            tx.commit().await?;
            self.board.answered();
            return Ok(());
        }
        let Some(operation_row) = operation_row else {
            tx.commit().await?;
            return Ok(());
        };
        let operation = operation_of(&operation_row)?;
        if operation.state != op_state::RUNNING {
            tx.commit().await?;
            return Ok(());
        }
        let mut wake = None;
        // Writes that go with the commit (one hand-off to the database).
        let mut last_writes = Batch::new();
        let reschedule = match operation.kind.as_str() {
            BUILD => {
                let before = notices::before_change_of(&operation_row)?;
                self.build_result(
                    &mut tx,
                    &mut last_writes,
                    &operation,
                    before,
                    host,
                    &outcome,
                )
                .await?
            }
            DELETE => {
                self.delete_result(&mut tx, &operation, host, &outcome)
                    .await?;
                false
            }
            resize::RESIZE | resize::CONFIRM | resize::REVERT => {
                wake = self
                    .resize_result(&mut tx, &operation, host, &outcome)
                    .await?;
                false
            }
            kind if super::snapshots::is_image_operation(kind) => {
                wake = self
                    .image_operation_result(&mut tx, &operation, host, &outcome)
                    .await?;
                false
            }
            super::guest::TRIGGER_CRASH_DUMP => {
                self.crash_dump_result(&mut tx, &operation, host, &outcome)
                    .await?;
                false
            }
            rebuild::REBUILD => {
                self.rebuild_result(&mut tx, &operation, host, &outcome)
                    .await?;
                false
            }
            evacuate::EVACUATE => {
                self.evacuate_result(&mut tx, &operation, host, &outcome)
                    .await?;
                false
            }
            _ => {
                self.action_result(&mut tx, &operation, host, &outcome)
                    .await?;
                false
            }
        };
        novum_notify::commit_with(tx, last_writes).await?;
        if let Some(next) = wake {
            self.board.wake(&next);
        }
        if super::snapshots::is_image_operation(&operation.kind) {
            self.after_image_operation(&operation.id).await;
        }
        if reschedule {
            let conductor = Arc::clone(self);
            tokio::spawn(async move { conductor.run_build(&operation.id).await });
        }
        Ok(())
    }

    /// The transaction recording the result of task `task_id` of `host`:
    /// a build's result (or a query's answer) under its instance's lock
    /// alone ([`Conductor::begin_instance`]: builds of different instances
    /// finish side by side), any other operation's under
    /// [`Conductor::begin_global`]. A task's instance and operation never
    /// change, so they are read before the locks are taken; an unknown task
    /// gets a plain transaction (its 404 follows).
    async fn begin_for_task(&self, host: &str, task_id: &str) -> Result<Tx> {
        let row = sqlx::query(
            "SELECT t.instance_uuid, t.operation_id, o.kind FROM tasks t \
             LEFT JOIN conductor_operations o ON o.id = t.operation_id \
             WHERE t.id = $1 AND t.host = $2",
        )
        .bind(task_id)
        .bind(host)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else {
            return Ok(self.db.begin().await?);
        };
        let uuid: String = row.try_get("instance_uuid")?;
        let operation: String = row.try_get("operation_id")?;
        let kind: Option<String> = row.try_get("kind")?;
        if operation == tasks::QUERY_OPERATION || kind.as_deref() == Some(BUILD) {
            self.begin_instance(&uuid).await
        } else {
            self.begin_global(&uuid).await
        }
    }

    /// A spawn finished: ACTIVE, or release, count the failure and
    /// reschedule (returns true) until `max_attempts`, then ERROR. Writes
    /// that nothing after them reads go to `last_writes`, which the caller
    /// runs with its commit. `before`: the instance's state and its
    /// action's context as the transaction began.
    async fn build_result(
        &self,
        tx: &mut Tx,
        last_writes: &mut Batch,
        operation: &Operation,
        (before, context): (Option<StateMark>, RequestContext),
        host: &str,
        outcome: &TaskOutcome,
    ) -> Result<bool> {
        let now = db::now();
        let uuid = operation.instance_uuid.as_str();
        let compute = Publisher::compute(host);
        match outcome {
            TaskOutcome::Succeeded { power_state } => {
                let now = notices::changed(
                    tx,
                    uuid,
                    sqlx::query_as(
                        "UPDATE instances SET vm_state = $1, task_state = NULL, power_state = $2, launched_at = $3, \
                         updated_at = $3 WHERE uuid = $4 AND deleted = 0 RETURNING *",
                    )
                    .bind(vm::ACTIVE)
                    .bind(i64::from(u8::from(*power_state)))
                    .bind(&now)
                    .bind(uuid),
                )
                .await?;
                let writes = last_writes;
                writes.push(
                    sqlx::query(
                        "UPDATE compute_nodes SET failed_builds = 0 WHERE host = $1 AND failed_builds <> 0",
                    )
                    .bind(host),
                )?;
                finish_operation_into(writes, operation, None)?;
                let mut events = notices::Batch::default();
                events.state_changed(&compute, &now, before.as_ref(), &context);
                events.action(
                    &compute,
                    &now,
                    InstanceAction::Create,
                    Phase::End,
                    &context,
                    None,
                );
                events.send_with(writes)?;
                Ok(false)
            }
            TaskOutcome::Failed { message, .. } => {
                tracing::warn!(instance = %operation.instance_uuid, host, %message, "spawn failed");
                claims::release(tx, &operation.instance_uuid).await?;
                sqlx::query(
                    "UPDATE compute_nodes SET failed_builds = failed_builds + 1 WHERE host = $1",
                )
                .bind(host)
                .execute(&mut **tx)
                .await?;
                if let Some(action_id) = &operation.action_id {
                    actions::finish_events(tx, action_id, Some(BUILD_EVENT), Some(message)).await?;
                }
                let fault = notices::fault("build_and_run_instance", "SpawnFailed", message);
                notices::action(
                    tx,
                    &compute,
                    uuid,
                    InstanceAction::Create,
                    Phase::Error,
                    &context,
                    Some(fault.clone()),
                )
                .await?;
                notices::exception(tx, &compute, uuid, fault).await?;
                let mut data: BuildData = serde_json::from_str(&operation.data).unwrap_or_default();
                data.attempts += 1;
                data.tried_hosts.push(host.to_string());
                data.last_error = Some(message.clone());
                let max_attempts = self.scheduler.max_attempts.max(1) as u32;
                if data.attempts >= max_attempts {
                    let operation = Operation {
                        data: to_json(&data),
                        ..operation.clone()
                    };
                    let text = format!(
                        "Exceeded maximum number of retries. Exceeded max scheduling attempts {max_attempts} for instance {}. \
                         Last exception: {message}",
                        operation.instance_uuid
                    );
                    self.fail_build(
                        tx,
                        &operation,
                        Failure {
                            code: 500,
                            message: &text,
                            details: &format!("tried hosts: {}", data.tried_hosts.join(", ")),
                            create_error: None,
                        },
                    )
                    .await?;
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE instances SET host = NULL, node = NULL, task_state = $1, updated_at = $2 WHERE uuid = $3",
                )
                .bind(task::SCHEDULING)
                .bind(&now)
                .bind(&operation.instance_uuid)
                .execute(&mut **tx)
                .await?;
                if let Some(action_id) = &operation.action_id {
                    actions::start_event(tx, action_id, super::SCHEDULE_EVENT, None).await?;
                }
                set_operation(
                    tx,
                    &operation.id,
                    step::SCHEDULE,
                    op_state::RUNNING,
                    &to_json(&data),
                )
                .await?;
                notices::state_changed(tx, &compute, uuid, before.as_ref(), &context).await?;
                Ok(true)
            }
        }
    }

    /// Records the result of a one-task action in `tx`: its end state and
    /// `.end`, or the fault (and the vm_state its data says a failure
    /// leaves).
    pub(super) async fn action_result(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        host: &str,
        outcome: &TaskOutcome,
    ) -> Result<()> {
        let uuid = operation.instance_uuid.as_str();
        let before = StateMark::read(tx, uuid).await?;
        let compute = Publisher::compute(host);
        let context = notices::action_context(tx, operation.action_id.as_deref()).await?;
        let notified = notices::named_action(&operation.kind);
        let data: Option<ActionData> = serde_json::from_str(&operation.data).ok();
        let power = outcome_power(outcome).map(|state| i64::from(u8::from(state)));
        match outcome {
            TaskOutcome::Succeeded { .. } => {
                let result_state = data
                    .as_ref()
                    .map(|data| data.result_state.as_str())
                    .unwrap_or(vm::ACTIVE);
                sqlx::query(
                    "UPDATE instances SET vm_state = $1, task_state = NULL, power_state = COALESCE($2, power_state), \
                     updated_at = $3 WHERE uuid = $4 AND deleted = 0",
                )
                .bind(result_state)
                .bind(power)
                .bind(db::now())
                .bind(&operation.instance_uuid)
                .execute(&mut **tx)
                .await?;
                finish_operation(tx, operation, None).await?;
                notices::state_changed(tx, &compute, uuid, before.as_ref(), &context).await?;
                if let Some(action) = notified {
                    notices::action(tx, &compute, uuid, action, Phase::End, &context, None).await?;
                }
            }
            TaskOutcome::Failed { message, .. } => {
                if let Some(port_id) = data.as_ref().and_then(|data| data.port_id.as_deref()) {
                    self.give_back_port(tx, uuid, port_id).await?;
                }
                sqlx::query(
                    "UPDATE instances SET task_state = NULL, power_state = COALESCE($1, power_state), fault = $2, \
                     updated_at = $3, vm_state = COALESCE($5, vm_state) WHERE uuid = $4 AND deleted = 0",
                )
                .bind(power)
                .bind(fault_json(500, message, ""))
                .bind(db::now())
                .bind(&operation.instance_uuid)
                .bind(data.as_ref().and_then(|data| data.error_state.as_deref()))
                .execute(&mut **tx)
                .await?;
                finish_operation(tx, operation, Some(message)).await?;
                notices::state_changed(tx, &compute, uuid, before.as_ref(), &context).await?;
                let fault = notices::fault(
                    &format!("{}_instance", operation.kind),
                    "InstanceActionFailed",
                    message,
                );
                // Nova has an `.error` phase for reboot and rebuild (and
                // create) only.
                if let Some(action @ (InstanceAction::Reboot | InstanceAction::Rebuild)) = notified
                {
                    notices::action(
                        tx,
                        &compute,
                        uuid,
                        action,
                        Phase::Error,
                        &context,
                        Some(fault.clone()),
                    )
                    .await?;
                }
                notices::exception(tx, &compute, uuid, fault).await?;
            }
        }
        Ok(())
    }

    async fn delete_result(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        host: &str,
        outcome: &TaskOutcome,
    ) -> Result<()> {
        let uuid = operation.instance_uuid.as_str();
        let before = StateMark::read(tx, uuid).await?;
        let compute = Publisher::compute(host);
        let context = notices::action_context(tx, operation.action_id.as_deref()).await?;
        match outcome {
            TaskOutcome::Succeeded { .. } => {
                self.mark_deleted(tx, &operation.instance_uuid).await?;
                finish_operation(tx, operation, None).await?;
                notices::state_changed(tx, &compute, uuid, before.as_ref(), &context).await?;
                notices::action(
                    tx,
                    &compute,
                    uuid,
                    InstanceAction::Delete,
                    Phase::End,
                    &context,
                    None,
                )
                .await?;
            }
            TaskOutcome::Failed { message, .. } => {
                sqlx::query(
                    "UPDATE instances SET vm_state = $1, task_state = NULL, fault = $2, updated_at = $3 WHERE uuid = $4",
                )
                .bind(vm::ERROR)
                .bind(fault_json(500, message, ""))
                .bind(db::now())
                .bind(&operation.instance_uuid)
                .execute(&mut **tx)
                .await?;
                finish_operation(tx, operation, Some(message)).await?;
                notices::state_changed(tx, &compute, uuid, before.as_ref(), &context).await?;
                notices::exception(
                    tx,
                    &compute,
                    uuid,
                    notices::fault("terminate_instance", "InstanceTerminationFailure", message),
                )
                .await?;
            }
        }
        Ok(())
    }

    pub(super) async fn locked_instance(tx: &mut Tx, uuid: &str) -> Result<Instance> {
        Instance::fetch(&mut **tx, uuid)
            .await?
            .filter(|instance| instance.deleted == 0)
            .ok_or_else(|| ConductorError::NotFound(format!("Instance {uuid} could not be found.")))
    }

    /// In `tx`, starts one agent task on `instance` (as it was before, for
    /// the `instance.update`) on `host` as an instance action: the task
    /// state, the action and its event, the operation, the task, and the
    /// `instance.update` and `.start` notifications. The caller commits
    /// and wakes the host.
    pub(super) async fn queue_action(
        &self,
        tx: &mut Tx,
        instance: &Instance,
        host: &str,
        queued: QueuedAction<'_>,
        caller: &Caller<'_>,
    ) -> Result<()> {
        let uuid = instance.uuid.as_str();
        let before = StateMark::of(instance);
        sqlx::query("UPDATE instances SET task_state = $1, updated_at = $2 WHERE uuid = $3")
            .bind(queued.task_state)
            .bind(db::now())
            .bind(uuid)
            .execute(&mut **tx)
            .await?;
        let action_id = actions::start_action(
            tx,
            uuid,
            queued.instance_action,
            caller.request_id,
            caller.user_id,
            caller.project_id,
        )
        .await?;
        actions::start_event(tx, &action_id, queued.event, Some(host)).await?;
        let operation = insert_operation(
            tx,
            uuid,
            queued.name,
            step::TASK,
            &to_json(&queued.data),
            caller.request_id,
            &action_id,
        )
        .await?;
        tasks::enqueue(tx, host, uuid, &operation, &queued.task, caller.request_id).await?;
        let context = notices::caller_context(caller);
        notices::state_changed(tx, &self.api_publisher(), uuid, Some(&before), &context).await?;
        if let Some(action) = queued.notified {
            notices::action(
                tx,
                &Publisher::compute(host),
                uuid,
                action,
                Phase::Start,
                &context,
                None,
            )
            .await?;
        }
        Ok(())
    }

    /// Starts `action` on instance `uuid` after Nova's state guard (409 when
    /// the instance is in the wrong state).
    pub async fn server_action(
        self: &Arc<Self>,
        uuid: &str,
        action: ServerAction,
        caller: &Caller<'_>,
    ) -> Result<()> {
        let mut tx = self.begin_global(uuid).await?;
        let instance = Self::locked_instance(&mut tx, uuid).await?;
        action
            .check(uuid, &instance.vm_state, instance.task_state.as_deref())
            .map_err(ConductorError::Conflict)?;
        let Some(host) = instance.host.clone() else {
            return Err(ConductorError::Conflict(format!(
                "Cannot '{}' instance {uuid} while it is in vm_state {}: it has no host",
                action.name(),
                instance.vm_state
            )));
        };
        if let Some(stamp) = action.stamps_deleted_at() {
            super::soft_delete::stamp_deleted_at(&mut tx, uuid, stamp).await?;
        }
        let queued = QueuedAction {
            name: action.name(),
            instance_action: action.instance_action(),
            event: action.event(),
            task_state: action.task_state(),
            data: ActionData {
                result_state: action.result_state().to_string(),
                event: action.event().to_string(),
                port_id: None,
                error_state: None,
            },
            task: action.task(),
            notified: Some(notices::server_action(action)),
        };
        self.queue_action(&mut tx, &instance, &host, queued, caller)
            .await?;
        novum_notify::commit(tx).await?;
        self.board.wake(&host);
        Ok(())
    }

    /// Deletes instance `uuid`: at once when it has no host, else through a
    /// destroy task (superseding whatever was in flight).
    pub async fn delete_server(self: &Arc<Self>, uuid: &str, caller: &Caller<'_>) -> Result<()> {
        self.delete_server_when(uuid, caller, |_| true)
            .await
            .map(drop)
    }

    /// [`Conductor::delete_server`] when `wanted` holds of the instance as
    /// it is in the delete's transaction (a periodic reclaim that a restore
    /// overtook deletes nothing); whether it deleted.
    pub(super) async fn delete_server_when(
        self: &Arc<Self>,
        uuid: &str,
        caller: &Caller<'_>,
        wanted: impl FnOnce(&Instance) -> bool,
    ) -> Result<bool> {
        let mut tx = self.begin_global(uuid).await?;
        let instance = Self::locked_instance(&mut tx, uuid).await?;
        if !wanted(&instance) {
            tx.rollback().await?;
            return Ok(false);
        }
        let before = StateMark::of(&instance);
        let context = notices::caller_context(caller);
        let shelved_image = self.shelved_image_of(&mut tx, &instance).await?;
        cancel_operations(&mut tx, uuid).await?;
        let action_id = actions::start_action(
            &mut tx,
            uuid,
            "delete",
            caller.request_id,
            caller.user_id,
            caller.project_id,
        )
        .await?;
        actions::start_event(&mut tx, &action_id, DELETE_EVENT, instance.host.as_deref()).await?;
        let Some(host) = instance.host.clone() else {
            // A local delete (nothing on a host): the API notifies both phases.
            let api = self.api_publisher();
            notices::action(
                &mut tx,
                &api,
                uuid,
                InstanceAction::Delete,
                Phase::Start,
                &context,
                None,
            )
            .await?;
            self.mark_deleted(&mut tx, uuid).await?;
            actions::finish_events(&mut tx, &action_id, None, None).await?;
            notices::state_changed(&mut tx, &api, uuid, Some(&before), &context).await?;
            notices::action(
                &mut tx,
                &api,
                uuid,
                InstanceAction::Delete,
                Phase::End,
                &context,
                None,
            )
            .await?;
            novum_notify::commit(tx).await?;
            self.delete_image_later(shelved_image);
            return Ok(true);
        };
        sqlx::query("UPDATE instances SET task_state = $1, updated_at = $2 WHERE uuid = $3")
            .bind(task::DELETING)
            .bind(db::now())
            .bind(uuid)
            .execute(&mut *tx)
            .await?;
        let operation = insert_operation(
            &mut tx,
            uuid,
            DELETE,
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
            &TaskAction::Destroy,
            caller.request_id,
        )
        .await?;
        let other_host = self
            .delete_resize_leftovers(&mut tx, uuid, &host, &operation, caller.request_id)
            .await?;
        notices::state_changed(
            &mut tx,
            &self.api_publisher(),
            uuid,
            Some(&before),
            &context,
        )
        .await?;
        notices::action(
            &mut tx,
            &Publisher::compute(&host),
            uuid,
            InstanceAction::Delete,
            Phase::Start,
            &context,
            None,
        )
        .await?;
        novum_notify::commit(tx).await?;
        self.delete_image_later(shelved_image);
        self.board.wake(&host);
        if let Some(other) = other_host {
            self.board.wake(&other);
        }
        Ok(true)
    }

    /// On controller start: leased tasks are offered again, builds waiting
    /// for a host are scheduled, and operations whose task is gone are failed.
    ///
    /// Agents re-register and finish their requeued tasks while this runs, so
    /// each operation is judged in its own serialized transaction from what it
    /// is then (see [`Conductor::recover_operation`]), not from the listing.
    pub async fn recover(self: &Arc<Self>) -> Result<()> {
        // With other controllers alive the leased tasks are their agents'
        // work in progress: they stay leased (a lease that runs out is
        // offered again anyway).
        let requeued = if self.live_peer_hosts().await? == 0 {
            tasks::requeue_leased(&self.db, None).await?
        } else {
            0
        };
        let mut resumed = 0;
        let mut failed = 0;
        let mut finished = 0;
        for id in self.in_flight_operations().await? {
            match self.recover_operation(&id).await? {
                Recovery::Resumed => resumed += 1,
                Recovery::Failed => failed += 1,
                Recovery::AlreadyOver => finished += 1,
            }
        }
        tracing::info!(
            requeued,
            resumed,
            failed,
            finished,
            "conductor recovered operations in flight"
        );
        Ok(())
    }

    /// The ids of the running operations, oldest first (what
    /// [`Conductor::recover`] goes through).
    pub async fn in_flight_operations(&self) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT id FROM conductor_operations WHERE state = $1 ORDER BY created_at")
                .bind(op_state::RUNNING)
                .fetch_all(self.db.pool())
                .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("id")?))
            .collect()
    }

    /// Recovers operation `id` after a restart, judged from its row as it is
    /// now: one that ended meanwhile (its agent finished the requeued task) is
    /// left alone; one waiting for a host is scheduled again; one with a task
    /// still queued or leased goes on; one whose task is gone is failed.
    pub async fn recover_operation(self: &Arc<Self>, id: &str) -> Result<Recovery> {
        let Some(mut tx) = self.begin_global_for_operation(id).await? else {
            return Ok(Recovery::AlreadyOver);
        };
        let Some(operation) = load_operation(&mut *tx, id).await? else {
            tx.commit().await?;
            return Ok(Recovery::AlreadyOver);
        };
        if operation.state != op_state::RUNNING {
            tx.commit().await?;
            return Ok(Recovery::AlreadyOver);
        }
        if operation.step == step::SCHEDULE {
            tx.commit().await?;
            self.spawn_scheduling(&operation.kind, id.to_string());
            return Ok(Recovery::Resumed);
        }
        let live: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM tasks WHERE operation_id = $1 AND state IN ($2, $3)",
        )
        .bind(id)
        .bind(task_state::QUEUED)
        .bind(task_state::LEASED)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if live > 0 {
            tx.commit().await?;
            return Ok(Recovery::Resumed);
        }
        let message = "The operation was interrupted by a controller restart and has no task left.";
        self.fail_interrupted(&mut tx, &operation, message).await?;
        novum_notify::commit(tx).await?;
        Ok(Recovery::Failed)
    }

    async fn fail_interrupted(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        message: &str,
    ) -> Result<()> {
        if operation.kind == BUILD {
            // The spawn may have run before the task vanished: the instance
            // keeps its claim on its host (as an ERROR instance keeps its
            // allocation in Nova) until it is deleted, so a domain that does
            // run is never left unaccounted for.
            let failure = Failure {
                code: 500,
                message,
                details: "",
                create_error: Some("BuildAbortException"),
            };
            return self.fail_build(tx, operation, failure).await;
        }
        if matches!(
            operation.kind.as_str(),
            resize::RESIZE | resize::CONFIRM | resize::REVERT
        ) {
            return self.resize_interrupted(tx, operation, message).await;
        }
        if super::snapshots::is_image_operation(&operation.kind) {
            return self
                .image_operation_interrupted(tx, operation, message)
                .await;
        }
        if operation.kind == evacuate::EVACUATE {
            return self.evacuate_interrupted(tx, operation, message).await;
        }
        if operation.kind == super::guest::TRIGGER_CRASH_DUMP {
            // It set no task state: only the operation and its event end.
            return finish_operation(tx, operation, Some(message)).await;
        }
        let uuid = operation.instance_uuid.as_str();
        let before = StateMark::read(tx, uuid).await?;
        sqlx::query(
            "UPDATE instances SET task_state = NULL, fault = $1, updated_at = $2 WHERE uuid = $3",
        )
        .bind(fault_json(500, message, ""))
        .bind(db::now())
        .bind(&operation.instance_uuid)
        .execute(&mut **tx)
        .await?;
        finish_operation(tx, operation, Some(message)).await?;
        let publisher = self.conductor_publisher();
        let context = notices::action_context(tx, operation.action_id.as_deref()).await?;
        notices::state_changed(tx, &publisher, uuid, before.as_ref(), &context).await?;
        let function = format!("{}_instance", operation.kind);
        notices::exception(
            tx,
            &publisher,
            uuid,
            notices::fault(&function, "OperationInterrupted", message),
        )
        .await
    }

    /// Fails tasks older than the task timeout (their agent is gone or stuck).
    pub async fn reap(self: &Arc<Self>) -> Result<usize> {
        let cutoff = chrono::Utc::now()
            - chrono::Duration::seconds(
                self.compute.task_timeout_seconds.min(i64::MAX as u64) as i64
            );
        let rows =
            sqlx::query("SELECT id, host FROM tasks WHERE state IN ($1, $2) AND created_at < $3")
                .bind(task_state::QUEUED)
                .bind(task_state::LEASED)
                .bind(db::timestamp(cutoff))
                .fetch_all(self.db.pool())
                .await?;
        let count = rows.len();
        for row in rows {
            let id: String = row.try_get("id")?;
            let host: String = row.try_get("host")?;
            let outcome = TaskOutcome::Failed {
                message: format!(
                    "Task timed out after {} seconds: the compute agent on {host} did not finish it.",
                    self.compute.task_timeout_seconds
                ),
                power_state: None,
            };
            self.complete_task(&host, &id, TaskResult::of(outcome))
                .await?;
        }
        Ok(count)
    }

    /// Runs `sweep` on the instance of each row (columns `uuid`, `user_id`,
    /// `project_id`) as its owner, each under a request id of its own; an
    /// instance changed meanwhile (a 409 or 404) is skipped. Returns how
    /// many actions started.
    pub(super) async fn act_as_owners(
        self: &Arc<Self>,
        rows: &[sqlx::any::AnyRow],
        sweep: OwnerSweep,
    ) -> Result<usize> {
        let mut started = 0;
        for row in rows {
            let uuid: String = row.try_get("uuid")?;
            let user_id: String = row.try_get("user_id")?;
            let project_id: String = row.try_get("project_id")?;
            let request_id = format!("req-{}", uuid::Uuid::new_v4());
            let caller = Caller {
                user_id: &user_id,
                project_id: &project_id,
                request_id: &request_id,
            };
            let outcome = match sweep {
                OwnerSweep::ShelveOffload => self.shelve_offload_server(&uuid, &caller).await,
                OwnerSweep::ConfirmResize => {
                    tracing::info!(instance = %uuid, "confirming a resize automatically");
                    self.confirm_resize(&uuid, &caller).await
                }
            };
            match outcome {
                Ok(()) => started += 1,
                Err(ConductorError::Conflict(_) | ConductorError::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(started)
    }

    /// Runs the periodic tasks every `reaper_interval_seconds` until
    /// `shutdown`: [`Conductor::reap`], [`Conductor::audit_usage`], the
    /// confirmation of resizes past `resize_confirm_window`, and every
    /// `shelved_poll_interval_seconds` the offload of shelved instances.
    pub async fn run_reaper(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let interval = std::time::Duration::from_secs(self.compute.reaper_interval_seconds.max(1));
        let offload_interval =
            std::time::Duration::from_secs(self.compute.shelved_poll_interval_seconds.max(1));
        let mut last_offload_sweep = std::time::Instant::now();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(interval) => {}
            }
            if let Err(error) = self.reap().await {
                tracing::error!(%error, "task reaper failed");
            }
            if let Err(error) = self.audit_usage().await {
                tracing::error!(%error, "instance usage audit failed");
            }
            if let Err(error) = super::host_state::prune_changes(&self.db).await {
                tracing::error!(%error, "pruning the host state change log failed");
            }
            if let Err(error) = self.confirm_expired_resizes().await {
                tracing::error!(%error, "confirming resizes past resize_confirm_window failed");
            }
            if last_offload_sweep.elapsed() >= offload_interval {
                last_offload_sweep = std::time::Instant::now();
                if let Err(error) = self.offload_shelved().await {
                    tracing::error!(%error, "offloading shelved instances failed");
                }
            }
        }
    }

    /// Reconciles the power states `host` reports with the instances there
    /// (Nova's power-state sync; instances with a task in progress are left
    /// alone): the power state is recorded, a guest that shut down by itself
    /// is STOPPED, and one whose domain is gone is put in ERROR with a fault
    /// (see [`power_sync`]). Each change is conditional on the row being as it
    /// was read, so a task result landing meanwhile wins. Answers whether it
    /// needs a second look: an instance that must have a domain was
    /// reported without one (recorded as no state now, called gone if the
    /// next report still misses it).
    pub async fn reconcile_power(&self, host: &str, reported: &[InstancePower]) -> Result<bool> {
        let rows = sqlx::query(
            "SELECT uuid, vm_state, power_state FROM instances WHERE host = $1 AND deleted = 0 AND task_state IS NULL",
        )
        .bind(host)
        .fetch_all(self.db.pool())
        .await?;
        let mut on_record = std::collections::HashSet::new();
        let mut second_look = false;
        for row in rows {
            let uuid: String = row.try_get("uuid")?;
            on_record.insert(uuid.clone());
            let vm_state: String = row.try_get("vm_state")?;
            let current: i64 = row.try_get("power_state")?;
            if vm_state == vm::ERROR || vm_state == vm::BUILDING {
                continue;
            }
            let recorded = u8::try_from(current)
                .ok()
                .and_then(|value| PowerState::try_from(value).ok())
                .unwrap_or(PowerState::NoState);
            let power = reported
                .iter()
                .find(|item| item.uuid.to_string() == uuid)
                .map(|item| item.power_state)
                .unwrap_or(PowerState::NoState);
            let decision = power_sync(&vm_state, recorded, power);
            if power == recorded && decision == PowerSync::Record {
                continue;
            }
            second_look |= decision == PowerSync::Record && power == PowerState::NoState;
            let (new_vm_state, fault) = match decision {
                PowerSync::Record => (None, None),
                PowerSync::Follow(state) => (Some(state), None),
                PowerSync::PowerOff => (Some(vm::STOPPED), None),
                PowerSync::Gone => (
                    Some(vm::ERROR),
                    Some(format!(
                        "Instance {uuid} has no domain on host {host} any more: it vanished from the \
                         hypervisor behind novum's back (found by the power-state sync)."
                    )),
                ),
            };
            tracing::info!(instance = %uuid, host, power = %power, ?decision, "power state reconciled");
            let compute = Publisher::compute(host);
            // A periodic task: no request context, as in Nova.
            let context = RequestContext::default();
            let powers_off = matches!(decision, PowerSync::PowerOff | PowerSync::Gone);
            let mut tx = self.db.begin().await?;
            let before = StateMark::read(&mut tx, &uuid).await?;
            if powers_off {
                notices::action(
                    &mut tx,
                    &compute,
                    &uuid,
                    InstanceAction::PowerOff,
                    Phase::Start,
                    &context,
                    None,
                )
                .await?;
            }
            let changed = sqlx::query(
                "UPDATE instances SET power_state = $1, vm_state = COALESCE($2, vm_state), \
                 fault = COALESCE($3, fault), updated_at = $4 \
                 WHERE uuid = $5 AND task_state IS NULL AND vm_state = $6 AND power_state = $7 AND deleted = 0",
            )
            .bind(i64::from(u8::from(power)))
            .bind(new_vm_state)
            .bind(fault.as_deref().map(|message| fault_json(500, message, "")))
            .bind(db::now())
            .bind(&uuid)
            .bind(&vm_state)
            .bind(current)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                // A task result or an action got there first.
                tx.rollback().await?;
                continue;
            }
            notices::state_changed(&mut tx, &compute, &uuid, before.as_ref(), &context).await?;
            if powers_off {
                notices::action(
                    &mut tx,
                    &compute,
                    &uuid,
                    InstanceAction::PowerOff,
                    Phase::End,
                    &context,
                    None,
                )
                .await?;
            }
            if let Some(message) = &fault {
                notices::exception(
                    &mut tx,
                    &compute,
                    &uuid,
                    notices::fault("_sync_power_states", "InstanceNotFound", message),
                )
                .await?;
            }
            novum_notify::commit(tx).await?;
        }
        self.report_foreign_domains(host, reported, &on_record)
            .await?;
        Ok(second_look)
    }

    /// Warns (once per host and domain) about domains `host` runs that are
    /// no live instance of novum's: left alone, never destroyed (Nova's
    /// `running_deleted_instance_action = log`). Returns nothing; the log
    /// line is the report.
    /// `on_record`: the host's instances the caller read already; only
    /// when a domain is none of them (nor warned about) is the database
    /// asked, so a heartbeat of a host in order costs no query.
    async fn report_foreign_domains(
        &self,
        host: &str,
        reported: &[InstancePower],
        on_record: &std::collections::HashSet<String>,
    ) -> Result<()> {
        let unexplained = {
            let warned = self
                .foreign_domains
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            reported.iter().any(|domain| {
                let uuid = domain.uuid.to_string();
                !on_record.contains(&uuid) && !warned.contains(&(host.to_string(), uuid))
            })
        };
        if !unexplained {
            return Ok(());
        }
        let known: std::collections::HashSet<String> = sqlx::query(
            "SELECT uuid FROM instances WHERE deleted = 0 AND (host = $1 OR node = $1 OR uuid IN (SELECT instance_uuid FROM migrations WHERE dest_compute = $1 OR source_compute = $1))",
        )
        .bind(host)
        .fetch_all(self.db.pool())
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>("uuid"))
        .collect::<std::result::Result<_, _>>()?;
        let mut warned = self
            .foreign_domains
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for domain in reported {
            let uuid = domain.uuid.to_string();
            if !known.contains(&uuid) && warned.insert((host.to_string(), uuid.clone())) {
                tracing::warn!(
                    host,
                    domain = %uuid,
                    power = %domain.power_state,
                    "host runs a domain that is no instance of novum's; leaving it alone"
                );
            }
        }
        Ok(())
    }
}

impl Conductor {
    /// Marks an instance deleted, releases its claim, group membership and
    /// ports.
    async fn mark_deleted(&self, tx: &mut Tx, uuid: &str) -> Result<()> {
        mark_deleted_rows(tx, uuid).await?;
        self.release_ports(tx, uuid).await
    }
}

/// Marks an instance's rows deleted, releases its claim and group
/// membership.
async fn mark_deleted_rows(tx: &mut Tx, uuid: &str) -> Result<()> {
    let now = db::now();
    sqlx::query(
        "UPDATE instances SET vm_state = $1, task_state = NULL, power_state = 0, deleted = 1, deleted_at = $2, \
         terminated_at = $2, updated_at = $2 WHERE uuid = $3",
    )
    .bind(vm::DELETED)
    .bind(now)
    .bind(uuid)
    .execute(&mut **tx)
    .await?;
    claims::release(tx, uuid).await?;
    claims::release(tx, &resize::resize_consumer(uuid)).await?;
    claims::release(tx, &evacuate::evacuate_consumer(uuid)).await?;
    sqlx::query("DELETE FROM server_group_members WHERE instance_uuid = $1")
        .bind(uuid)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
