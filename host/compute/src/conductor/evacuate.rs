//! Evacuate (Nova's `evacuate` server action): a server whose host is down
//! (its service stopped heartbeating longer than `service_down_time`, or
//! was forced down) is rebuilt on another host from its image; storage is
//! never shared between novum's hosts.
//!
//! The API transaction checks Nova's guards (ACTIVE, STOPPED or ERROR with
//! no task; the source's compute service down, else "Compute service of
//! <host> is still in use."), sets task_state `rebuilding`, records a
//! `migrations` row of type `evacuation` (status `accepted`), the instance
//! action `evacuate` and `instance.evacuate`, and starts scheduling: the
//! source host is never a candidate, a named host still goes through the
//! filters (Nova's `requested_destination`) unless the caller forced it
//! (2.29–2.67 `force`, or any named host before 2.29), which skips them.
//!
//! The chosen host is claimed under the consumer `evacuate:<uuid>` and,
//! with the claim, the ports are bound to it, the migration becomes
//! `pre-migrating`, `instance.rebuild_scheduled` is sent and one agent task
//! runs there: [`TaskAction::Redefine`], which makes the disks from the
//! image and defines and (unless the server was stopped, or 2.95 asks it
//! stopped) boots the guest. Its success puts the server on the new host,
//! ACTIVE (or STOPPED), drops the source's claim and gives the destination
//! claim the instance's uuid; the migration is `done`. A failure leaves
//! the server in ERROR on its source with a fault, the destination claim
//! dropped and the ports back on the source; the migration `failed`
//! (`error` when no host was found).
//!
//! The source still holds the guest. When its agent comes back it asks
//! [`Conductor::evacuated_from`] which domains are no longer its own,
//! destroys them before it resumes any guest, and reports them
//! ([`Conductor::evacuated_destroyed`]): their migrations become
//! `completed` (Nova's `_destroy_evacuated_instances` at `init_host`).

use std::sync::Arc;

use novum_notify::Phase;
use novum_notify::Publisher;
use novum_notify::builders::{self, InstanceAction};
use novum_scheduler::{HostState, ScheduleError};
use novum_wire::{TaskAction, TaskOutcome};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use uuid::Uuid;

use super::model::Instance;
use super::notices::{self, StateMark};
use super::rebuild::rebuild_task;
use super::states::vm;
use super::{
    BuildData, Caller, Conductor, ConductorError, Operation, Placement, Purpose, Result, actions,
    claims, fault_json, finish_operation, insert_operation, load_operation, op_state,
    set_migration_destination, set_operation, step, tasks, to_json,
};
use crate::store::services;
use novum_db::{self as db, Tx};

/// The instance action and operation kind of an evacuation.
pub const EVACUATE: &str = "evacuate";
/// `migrations.migration_type` of an evacuation.
pub const MIGRATION_TYPE: &str = "evacuation";
/// The conductor's instance-action event (Nova's `rebuild_server`).
const SCHEDULE_EVENT: &str = "conductor_rebuild_server";
/// The destination's instance-action event.
const REBUILD_EVENT: &str = "compute_rebuild_instance";

/// `migrations.status` values of an evacuation, in Nova's words.
mod status {
    pub const ACCEPTED: &str = "accepted";
    pub const PRE_MIGRATING: &str = "pre-migrating";
    pub const DONE: &str = "done";
    pub const FAILED: &str = "failed";
    pub const ERROR: &str = "error";
    pub const COMPLETED: &str = "completed";
}

/// The vm_states a server may be evacuated from (no task in progress).
const EVACUABLE: [&str; 3] = [vm::ACTIVE, vm::STOPPED, vm::ERROR];

/// The consumer of the destination claim while an evacuation runs.
pub fn evacuate_consumer(instance_uuid: &str) -> String {
    format!("evacuate:{instance_uuid}")
}

/// What an evacuation asks (validated by the API).
#[derive(Clone, Debug, Default)]
pub struct EvacuateRequest {
    /// The destination the caller named, if any.
    pub host: Option<String>,
    /// Skip the filters for the named host (2.29–2.67 `force`; a named
    /// host before 2.29).
    pub force: bool,
    /// Leave the server stopped on its new host whatever it was (2.95).
    pub stopped: bool,
}

/// What an evacuation operation remembers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct EvacuateData {
    migration: String,
    source: String,
    #[serde(default)]
    requested_host: Option<String>,
    #[serde(default)]
    force: bool,
    /// Whether the guest boots on its new host.
    power_on: bool,
}

/// How an evacuation failed (see [`Conductor::evacuate_failed`]).
struct Failure<'a> {
    /// The fault's message.
    message: &'a str,
    /// The fault's details.
    details: &'a str,
    /// The migration's status: `failed` on the destination, `error` before.
    migration_status: &'a str,
}

fn data_of(operation: &Operation) -> EvacuateData {
    serde_json::from_str(&operation.data).unwrap_or_default()
}

async fn set_status(tx: &mut Tx, migration: &str, value: &str) -> Result<()> {
    sqlx::query("UPDATE migrations SET status = $1, updated_at = $2 WHERE uuid = $3")
        .bind(value)
        .bind(db::now())
        .bind(migration)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Conductor {
    /// Starts evacuating server `uuid` off its host (Nova's guards: 409 in
    /// a state it refuses, 400 while the host's compute service is up);
    /// scheduling and the rebuild go on in the background.
    pub async fn evacuate_server(
        self: &Arc<Self>,
        uuid: &str,
        request: EvacuateRequest,
        caller: &Caller<'_>,
    ) -> Result<()> {
        let mut tx = self.begin_global(uuid).await?;
        let instance = Self::locked_instance(&mut tx, uuid).await?;
        super::states::guard(
            EVACUATE,
            uuid,
            &instance.vm_state,
            instance.task_state.as_deref(),
            &EVACUABLE,
        )
        .map_err(ConductorError::Conflict)?;
        let (Some(source), Some(source_node)) = (instance.host.clone(), instance.node.clone())
        else {
            return Err(ConductorError::Conflict(format!(
                "Cannot '{EVACUATE}' instance {uuid} while it is in vm_state {}: it has no host",
                instance.vm_state
            )));
        };
        if request.host.as_deref() == Some(source.as_str()) {
            return Err(ConductorError::BadRequest(
                "The target host can't be the same one.".to_string(),
            ));
        }
        let service = services::compute_of_hosts(&self.db, std::slice::from_ref(&source))
            .await?
            .into_iter()
            .next();
        if service.is_some_and(|service| service.is_up(self.compute.service_down_time)) {
            tracing::error!(
                host = %source,
                "instance compute service state expected to be down, but it was up"
            );
            return Err(ConductorError::BadRequest(format!(
                "Compute service of {source} is still in use."
            )));
        }
        let flavor = to_json(&instance.flavor()?);
        let before = StateMark::of(&instance);
        let now = db::now();
        sqlx::query("UPDATE instances SET task_state = $1, updated_at = $2 WHERE uuid = $3")
            .bind(rebuild_task::REBUILDING)
            .bind(&now)
            .bind(uuid)
            .execute(&mut *tx)
            .await?;
        let migration = Uuid::new_v4().to_string();
        db::insert_returning_id(
            &mut tx,
            sqlx::query(
                "INSERT INTO migrations (uuid, instance_uuid, migration_type, source_compute, source_node, \
                 dest_compute, old_flavor, new_flavor, old_vm_state, status, created_at, updated_at, user_id, \
                 project_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $10, $11, $12) RETURNING id",
            )
            .bind(&migration)
            .bind(uuid)
            .bind(MIGRATION_TYPE)
            .bind(&source)
            .bind(&source_node)
            .bind(&request.host)
            .bind(&flavor)
            .bind(&instance.vm_state)
            .bind(status::ACCEPTED)
            .bind(&now)
            .bind(caller.user_id)
            .bind(caller.project_id),
        )
        .await?;
        let action_id = actions::start_action(
            &mut tx,
            uuid,
            EVACUATE,
            caller.request_id,
            caller.user_id,
            caller.project_id,
        )
        .await?;
        actions::start_event(&mut tx, &action_id, SCHEDULE_EVENT, None).await?;
        let data = EvacuateData {
            migration,
            source,
            requested_host: request.host,
            force: request.force,
            power_on: !request.stopped && instance.vm_state != vm::STOPPED,
        };
        let operation = insert_operation(
            &mut tx,
            uuid,
            EVACUATE,
            step::SCHEDULE,
            &to_json(&data),
            caller.request_id,
            &action_id,
        )
        .await?;
        let context = notices::caller_context(caller);
        let api = self.api_publisher();
        notices::state_changed(&mut tx, &api, uuid, Some(&before), &context).await?;
        notices::instance_event(&mut tx, &api, uuid, EVACUATE, &context).await?;
        novum_notify::commit(tx).await?;
        let conductor = Arc::clone(self);
        tokio::spawn(async move { conductor.run_evacuate(&operation).await });
        Ok(())
    }

    /// Runs the scheduling step of evacuation `id`; no host found puts the
    /// server in ERROR with a fault, as Nova's conductor does.
    pub(super) async fn run_evacuate(self: &Arc<Self>, id: &str) {
        let (message, details) = match self.schedule_evacuate(id).await {
            Ok(None) => return,
            Ok(Some(failure)) => failure,
            Err(error) => (format!("Evacuate failed: {error}"), String::new()),
        };
        tracing::warn!(operation = id, %message, %details, "evacuation not scheduled");
        let result = async {
            let Some(mut tx) = self.begin_global_for_operation(id).await? else {
                return Ok(());
            };
            if let Some(operation) = load_operation(&mut *tx, id).await?
                && operation.state == op_state::RUNNING
                && operation.step == step::SCHEDULE
            {
                let failure = Failure {
                    message: &message,
                    details: &details,
                    migration_status: status::ERROR,
                };
                self.evacuate_failed(&mut tx, &operation, failure).await?;
            }
            novum_notify::commit(tx).await?;
            Ok::<_, ConductorError>(())
        };
        if let Err(error) = result.await {
            tracing::error!(operation = id, %error, "cannot record a failed evacuation");
        }
    }

    /// Schedules evacuation `id`: `Ok(None)` once a destination is claimed
    /// (or nothing is left to do), `Ok(Some((why, details)))` when no host
    /// fits.
    async fn schedule_evacuate(self: &Arc<Self>, id: &str) -> Result<Option<(String, String)>> {
        let Some((_taken, operation, instance)) = self.take_for_scheduling(id, None, None).await?
        else {
            return Ok(None);
        };
        let data = data_of(&operation);
        let flavor = instance.flavor()?;
        let mut request = self
            .scheduling_request(
                &instance,
                &flavor,
                &BuildData::default(),
                &operation.request_id,
            )
            .await?;
        // Nova's conductor resets the forced destinations of the request
        // spec and never offers the source.
        request.force_hosts.clear();
        request.ignore_hosts.push(data.source.clone());
        if let Some(host) = &data.requested_host {
            if data.force {
                request.force_hosts = vec![host.clone()];
            } else {
                request.requested_hosts = vec![host.clone()];
            }
        }
        let spec = notices::request_spec(&instance, &flavor, &request);
        let mut tx = self.db.begin().await?;
        notices::send(
            &mut tx,
            &builders::select_destinations(&self.scheduler_publisher(), spec.clone(), Phase::Start),
        )
        .await?;
        novum_notify::commit(tx).await?;
        let placement = Placement {
            purpose: Purpose::Evacuate,
            operation: operation.clone(),
            instance: instance.clone(),
            flavor,
            spec,
            start_notice: None,
        };
        match self
            .schedule_rounds(&operation.id, placement, request)
            .await?
        {
            Ok(()) => Ok(None),
            Err(ScheduleError::NoValidHost(no_valid_host)) => Ok(Some((
                no_valid_host.to_string(),
                no_valid_host.explanation(),
            ))),
            Err(other) => Ok(Some((other.to_string(), String::new()))),
        }
    }

    /// Claims the flavor on `host` for an evacuation and commits, with the
    /// claim, the destination, the ports bound there, the rebuild task and
    /// its notifications.
    pub(super) async fn claim_evacuate_on(
        &self,
        placement: &Placement,
        host: &HostState,
    ) -> Result<bool> {
        let Placement {
            operation,
            instance,
            flavor,
            spec,
            ..
        } = placement;
        let Some((mut tx, current)) = self.claim_while_scheduling(placement, host).await? else {
            return Ok(false);
        };
        let data = data_of(&current);
        let uuid = instance.uuid.as_str();
        set_migration_destination(&mut tx, &data.migration, host, Some(status::PRE_MIGRATING))
            .await?;
        let before = StateMark::read(&mut tx, uuid).await?;
        sqlx::query("UPDATE instances SET availability_zone = $1, updated_at = $2 WHERE uuid = $3")
            .bind(&host.availability_zone)
            .bind(db::now())
            .bind(uuid)
            .execute(&mut *tx)
            .await?;
        // The guest's ports follow it before it is defined there, so the
        // destination's firewall covers them first.
        self.network
            .rebind_instance_ports_in(&mut tx, uuid, &host.name)
            .await?;
        let placed = Instance {
            availability_zone: Some(host.availability_zone.clone()),
            ..instance.clone()
        };
        let action = TaskAction::Redefine {
            spec: self.spec_with_interfaces(&placed, flavor).await?,
            power_on: data.power_on,
        };
        tasks::enqueue(
            &mut tx,
            &host.name,
            uuid,
            &operation.id,
            &action,
            &operation.request_id,
        )
        .await?;
        set_operation(
            &mut tx,
            &operation.id,
            step::TASK,
            op_state::RUNNING,
            &current.data,
        )
        .await?;
        let context = notices::action_context(&mut tx, operation.action_id.as_deref()).await?;
        if let Some(action_id) = &operation.action_id {
            actions::finish_events(&mut tx, action_id, Some(SCHEDULE_EVENT), None).await?;
            actions::start_event(&mut tx, action_id, REBUILD_EVENT, Some(&host.name)).await?;
        }
        notices::send(
            &mut tx,
            &builders::select_destinations(&self.scheduler_publisher(), spec.clone(), Phase::End),
        )
        .await?;
        let conductor = self.conductor_publisher();
        notices::instance_event(&mut tx, &conductor, uuid, "rebuild_scheduled", &context).await?;
        let destination = Publisher::compute(&host.name);
        notices::state_changed(&mut tx, &destination, uuid, before.as_ref(), &context).await?;
        notices::action(
            &mut tx,
            &destination,
            uuid,
            InstanceAction::Rebuild,
            Phase::Start,
            &context,
            None,
        )
        .await?;
        novum_notify::commit(tx).await?;
        Ok(true)
    }

    /// Records the result of an evacuation's rebuild on `host` in `tx`: the
    /// server on its new host (the source's claim dropped), or in ERROR on
    /// its source.
    pub(super) async fn evacuate_result(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        host: &str,
        outcome: &TaskOutcome,
    ) -> Result<()> {
        let uuid = operation.instance_uuid.as_str();
        let compute = Publisher::compute(host);
        let context = notices::action_context(tx, operation.action_id.as_deref()).await?;
        let power = match outcome {
            TaskOutcome::Succeeded { power_state } => i64::from(u8::from(*power_state)),
            TaskOutcome::Failed { message, .. } => {
                let fault = notices::fault("rebuild_instance", "BuildAbortException", message);
                notices::action(
                    tx,
                    &compute,
                    uuid,
                    InstanceAction::Rebuild,
                    Phase::Error,
                    &context,
                    Some(fault.clone()),
                )
                .await?;
                notices::exception(tx, &compute, uuid, fault).await?;
                let failure = Failure {
                    message,
                    details: "",
                    migration_status: status::FAILED,
                };
                return self.evacuate_failed(tx, operation, failure).await;
            }
        };
        let data = data_of(operation);
        let before = StateMark::read(tx, uuid).await?;
        let node: String = sqlx::query("SELECT dest_node FROM migrations WHERE uuid = $1")
            .bind(&data.migration)
            .fetch_optional(&mut **tx)
            .await?
            .and_then(|row| row.try_get::<Option<String>, _>("dest_node").ok().flatten())
            .unwrap_or_else(|| host.to_string());
        // The source's claim goes; the destination's takes the uuid.
        claims::release(tx, uuid).await?;
        sqlx::query("UPDATE allocations SET instance_uuid = $1 WHERE instance_uuid = $2")
            .bind(uuid)
            .bind(evacuate_consumer(uuid))
            .execute(&mut **tx)
            .await?;
        let now = db::now();
        sqlx::query(
            "UPDATE instances SET host = $1, node = $2, vm_state = $3, task_state = NULL, power_state = $4, \
             launched_at = $5, updated_at = $5 WHERE uuid = $6 AND deleted = 0",
        )
        .bind(host)
        .bind(&node)
        .bind(if data.power_on { vm::ACTIVE } else { vm::STOPPED })
        .bind(power)
        .bind(&now)
        .bind(uuid)
        .execute(&mut **tx)
        .await?;
        set_status(tx, &data.migration, status::DONE).await?;
        finish_operation(tx, operation, None).await?;
        notices::state_changed(tx, &compute, uuid, before.as_ref(), &context).await?;
        notices::action(
            tx,
            &compute,
            uuid,
            InstanceAction::Rebuild,
            Phase::End,
            &context,
            None,
        )
        .await
    }

    /// A failed evacuation: the server in ERROR on its source with a fault,
    /// the destination claim dropped and the ports back on the source, the
    /// migration in the failure's status.
    async fn evacuate_failed(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        failure: Failure<'_>,
    ) -> Result<()> {
        let Failure {
            message,
            details,
            migration_status,
        } = failure;
        let uuid = operation.instance_uuid.as_str();
        let data = data_of(operation);
        let before = StateMark::read(tx, uuid).await?;
        claims::release(tx, &evacuate_consumer(uuid)).await?;
        self.network
            .rebind_instance_ports_in(tx, uuid, &data.source)
            .await?;
        set_status(tx, &data.migration, migration_status).await?;
        sqlx::query(
            "UPDATE instances SET vm_state = $1, task_state = NULL, fault = $2, updated_at = $3 \
             WHERE uuid = $4 AND deleted = 0",
        )
        .bind(vm::ERROR)
        .bind(fault_json(500, message, details))
        .bind(db::now())
        .bind(uuid)
        .execute(&mut **tx)
        .await?;
        finish_operation(tx, operation, Some(message)).await?;
        let publisher = self.conductor_publisher();
        let context = notices::action_context(tx, operation.action_id.as_deref()).await?;
        notices::state_changed(tx, &publisher, uuid, before.as_ref(), &context).await?;
        if migration_status == status::ERROR {
            notices::exception(
                tx,
                &publisher,
                uuid,
                notices::fault("rebuild_server", "NoValidHost", message),
            )
            .await?;
        }
        Ok(())
    }

    /// An evacuation interrupted by a restart with no task left: failed
    /// (`error` while still scheduling).
    pub(super) async fn evacuate_interrupted(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        message: &str,
    ) -> Result<()> {
        let migration_status = if operation.step == step::SCHEDULE {
            status::ERROR
        } else {
            status::FAILED
        };
        let failure = Failure {
            message,
            details: "",
            migration_status,
        };
        self.evacuate_failed(tx, operation, failure).await
    }

    /// The instances evacuated away from `host` whose domains it may still
    /// hold: evacuations from it that are accepted, under way or done
    /// (Nova's filter in `_destroy_evacuated_instances`), of instances not
    /// on `host` now.
    pub async fn evacuated_from(&self, host: &str) -> Result<Vec<Uuid>> {
        let rows = sqlx::query(
            "SELECT DISTINCT m.instance_uuid AS uuid FROM migrations m \
             LEFT JOIN instances i ON i.uuid = m.instance_uuid \
             WHERE m.migration_type = $1 AND m.source_compute = $2 AND m.status IN ($3, $4, $5) \
             AND (i.host IS NULL OR i.host <> $2 OR i.deleted <> 0)",
        )
        .bind(MIGRATION_TYPE)
        .bind(host)
        .bind(status::ACCEPTED)
        .bind(status::PRE_MIGRATING)
        .bind(status::DONE)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .filter_map(|row| row.try_get::<String, _>("uuid").ok())
            .map(|uuid| {
                Uuid::parse_str(&uuid).map_err(|error| {
                    ConductorError::Db(novum_db::DbError::Query(sqlx::Error::Decode(error.into())))
                })
            })
            .collect()
    }

    /// `host` destroyed the domains of `instances`, evacuated away from it:
    /// their finished evacuations from it are `completed`.
    pub async fn evacuated_destroyed(&self, host: &str, instances: &[Uuid]) -> Result<()> {
        let mut tx = self.db.begin().await?;
        for instance in instances {
            tracing::info!(host, %instance, "the source destroyed an evacuated instance's domain");
            sqlx::query(
                "UPDATE migrations SET status = $1, updated_at = $2 WHERE migration_type = $3 \
                 AND source_compute = $4 AND instance_uuid = $5 AND status = $6",
            )
            .bind(status::COMPLETED)
            .bind(db::now())
            .bind(MIGRATION_TYPE)
            .bind(host)
            .bind(instance.to_string())
            .bind(status::DONE)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
