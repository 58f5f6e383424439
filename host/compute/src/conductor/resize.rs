//! Resize, cold migration, confirm and revert (Nova's `resize`, `migrate`,
//! `confirmResize`, `revertResize` server actions).
//!
//! A cold migration is a resize to the same flavor (Nova's own words): the
//! same operation, with `migration_type` `migration`, the instance action
//! `migrate`, no quota check, the source host never a candidate, and,
//! from microversion 2.56, an optional destination host that still goes
//! through the filters (Nova's `requested_destination`).
//!
//! A resize is checked against quota (only growth counts) and recorded in one
//! transaction with a `migrations` row; the instance then counts the larger of
//! both flavors against cores and ram until it is confirmed or reverted. The
//! scheduler picks a destination for the new flavor (the source host too when
//! `allow_resize_to_same_host`), the new flavor is claimed there under the
//! consumer `resize:<uuid>` while the old claim stays on the source, and two
//! agent tasks run in order: power off on the source, `Redefine` with the new
//! flavor on the destination. The instance is then VERIFY_RESIZE on the
//! destination. Confirm destroys the source domain (no task on a same-host
//! resize) and drops the old claim; revert destroys the destination domain,
//! redefines the source with the old flavor and drops the new claim.
//!
//! A live migration (`os-migrateLive`) is a move operation of this module
//! too, with its own steps and ends (see [`super::live_migration`]).
//!
//! Each multi-task operation keeps its remaining [`Step`]s in its durable
//! data, so a restarted controller finds the running task in `tasks` and the
//! steps after it in the operation.

use std::sync::Arc;

use novum_wire::{TaskAction, TaskOutcome};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use uuid::Uuid;

use super::model::{FlavorSnapshot, Instance};
use super::notices::{self, StateMark};
use super::states::vm;
use super::{
    BuildData, Conductor, ConductorError, Operation, Placement, Purpose, Result, actions, claims,
    fault_json, finish_operation, insert_operation, load_operation, op_state,
    set_migration_destination, set_operation, step, tasks, to_json,
};
use novum_db::{self as db, Tx};
use novum_notify::builders::{self, InstanceAction, RequestContext};
use novum_notify::{Phase, Publisher};
use novum_quota::ResizeCheck;
use novum_scheduler::{HostState, ScheduleError};

/// Operation kind of a resize (and of a cold migration).
pub(super) const RESIZE: &str = "resize";
/// Instance action of a cold migration (its operation is a [`RESIZE`]).
const MIGRATE: &str = "migrate";
/// Operation kind of a confirm.
pub(super) const CONFIRM: &str = "confirmResize";
/// Operation kind of a revert.
pub(super) const REVERT: &str = "revertResize";

const MIGRATE_EVENT: &str = "conductor_migrate_server";
const PREP_EVENT: &str = "compute_prep_resize";
const RESIZE_EVENT: &str = "compute_resize_instance";
const FINISH_EVENT: &str = "compute_finish_resize";
const CONFIRM_EVENT: &str = "compute_confirm_resize";
const REVERT_EVENT: &str = "compute_revert_resize";
const FINISH_REVERT_EVENT: &str = "compute_finish_revert_resize";

/// task_state values of a resize.
pub(super) mod resize_task {
    pub const PREP: &str = "resize_prep";
    pub const MIGRATING: &str = "resize_migrating";
    pub const FINISH: &str = "resize_finish";
    pub const REVERTING: &str = "resize_reverting";
}

/// `migrations.status` values (a live migration's too).
pub(super) mod status {
    pub const PRE_MIGRATING: &str = "pre-migrating";
    pub const MIGRATING: &str = "migrating";
    pub const POST_MIGRATING: &str = "post-migrating";
    pub const FINISHED: &str = "finished";
    pub const CONFIRMING: &str = "confirming";
    pub const REVERTING: &str = "reverting";
    pub const CONFIRMED: &str = "confirmed";
    pub const REVERTED: &str = "reverted";
    pub const ERROR: &str = "error";
    pub const ACCEPTED: &str = "accepted";
    pub const PREPARING: &str = "preparing";
    pub const RUNNING: &str = "running";
    pub const COMPLETED: &str = "completed";
    pub const CANCELLED: &str = "cancelled";
}

/// The consumer of the destination claim while a resize is unconfirmed (the
/// source claim keeps the instance's uuid).
pub fn resize_consumer(instance_uuid: &str) -> String {
    format!("resize:{instance_uuid}")
}

/// Whether a task_state belongs to a resize in progress (API status RESIZE).
pub fn is_resizing(task_state: &str) -> bool {
    matches!(
        task_state,
        resize_task::PREP | resize_task::MIGRATING | resize_task::FINISH
    )
}

/// Whether a task_state is a revert in progress (API status REVERT_RESIZE).
pub fn is_reverting(task_state: &str) -> bool {
    task_state == resize_task::REVERTING
}

/// One agent task of a multi-task operation, with what it changes around it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Step {
    pub(super) host: String,
    pub(super) action: TaskAction,
    /// The instance-action event it runs under.
    pub(super) event: String,
    /// The instance's task_state while it runs (`None`: unchanged).
    pub(super) task_state: Option<String>,
    /// The migration's status while it runs.
    pub(super) status: String,
    /// Notified `.start` when it begins.
    pub(super) start: Option<InstanceAction>,
    /// Notified `.end` when it succeeds.
    pub(super) end: Option<InstanceAction>,
}

/// What a resize, confirm or revert operation remembers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct ResizeData {
    pub(super) migration: String,
    /// A cold migration (`migrate`): the source host is never a candidate.
    #[serde(default)]
    cold_migration: bool,
    /// The destination a cold migration named (2.56), checked by the filters.
    #[serde(default)]
    requested_host: Option<String>,
    /// A live migration (`os-migrateLive`): what it was asked.
    #[serde(default)]
    pub(super) live: Option<super::live_migration::LiveMove>,
    /// The running step first, then the ones after it.
    pub(super) steps: Vec<Step>,
}

/// A `migrations` row.
#[derive(Clone, Debug)]
pub(super) struct Migration {
    pub(super) uuid: String,
    pub(super) source_compute: String,
    pub(super) source_node: String,
    pub(super) dest_compute: Option<String>,
    pub(super) dest_node: Option<String>,
    old_flavor: FlavorSnapshot,
    pub(super) new_flavor: FlavorSnapshot,
    old_vm_state: String,
}

impl Migration {
    fn power_on(&self) -> bool {
        self.old_vm_state == vm::ACTIVE
    }

    fn same_host(&self) -> bool {
        self.dest_compute.as_deref() == Some(self.source_compute.as_str())
    }
}

fn flavor_of(text: &str) -> Result<FlavorSnapshot> {
    serde_json::from_str(text).map_err(|error| {
        ConductorError::Db(novum_db::DbError::Query(sqlx::Error::Decode(error.into())))
    })
}

/// The instance's unfinished migration, if any.
pub(super) async fn open_migration(tx: &mut Tx, instance_uuid: &str) -> Result<Option<Migration>> {
    let row = sqlx::query(
        "SELECT * FROM migrations WHERE instance_uuid = $1 AND status NOT IN ($2, $3, $4, $5, $6) \
         AND migration_type <> 'evacuation' ORDER BY created_at DESC LIMIT 1",
    )
    .bind(instance_uuid)
    .bind(status::CONFIRMED)
    .bind(status::REVERTED)
    .bind(status::ERROR)
    .bind(status::COMPLETED)
    .bind(status::CANCELLED)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| {
        Ok(Migration {
            uuid: row.try_get("uuid")?,
            source_compute: row.try_get("source_compute")?,
            source_node: row.try_get("source_node")?,
            dest_compute: row.try_get("dest_compute")?,
            dest_node: row.try_get("dest_node")?,
            old_flavor: flavor_of(&row.try_get::<String, _>("old_flavor")?)?,
            new_flavor: flavor_of(&row.try_get::<String, _>("new_flavor")?)?,
            old_vm_state: row.try_get("old_vm_state")?,
        })
    })
    .transpose()
}

pub(super) async fn set_status(tx: &mut Tx, migration: &str, value: &str) -> Result<()> {
    sqlx::query("UPDATE migrations SET status = $1, updated_at = $2 WHERE uuid = $3")
        .bind(value)
        .bind(db::now())
        .bind(migration)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Sets what the instance counts against quota (`vcpus`, `memory_mb`).
async fn set_counted(tx: &mut Tx, uuid: &str, vcpus: i64, memory_mb: i64) -> Result<()> {
    sqlx::query("UPDATE instances SET vcpus = $1, memory_mb = $2 WHERE uuid = $3")
        .bind(vcpus)
        .bind(memory_mb)
        .bind(uuid)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Sets the instance's flavor snapshot and placement: `host`, `node` and
/// the host's availability zone (`default_zone` when it is in none).
pub(super) async fn place(
    tx: &mut Tx,
    uuid: &str,
    flavor: &FlavorSnapshot,
    host: &str,
    node: &str,
    default_zone: &str,
) -> Result<()> {
    // The instance is in its host's zone, as at build time (Nova's
    // conductor sets it from the destination's aggregate when it moves).
    let zone = crate::store::aggregates::host_zone(tx, host, default_zone).await?;
    sqlx::query(
        "UPDATE instances SET flavor_id = $1, flavor = $2, host = $3, node = $4, availability_zone = $5, updated_at = $6 WHERE uuid = $7",
    )
    .bind(&flavor.id)
    .bind(to_json(flavor))
    .bind(host)
    .bind(node)
    .bind(zone)
    .bind(db::now())
    .bind(uuid)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The guard of confirm and revert: VERIFY_RESIZE, nothing in progress.
fn check_verify_resize(instance: &Instance, action: &str) -> Result<()> {
    if let Some(task_state) = &instance.task_state {
        return Err(ConductorError::Conflict(format!(
            "Cannot '{action}' instance {} while it is in task_state {task_state}",
            instance.uuid
        )));
    }
    if instance.vm_state != vm::RESIZED {
        return Err(ConductorError::Conflict(format!(
            "Cannot '{action}' instance {} while it is in vm_state {}",
            instance.uuid, instance.vm_state
        )));
    }
    Ok(())
}

/// What a resize operation moves an instance for.
#[derive(Clone, Debug)]
pub enum MoveRequest {
    /// `resize` to this flavor.
    Resize(FlavorSnapshot),
    /// A cold `migrate` with the same flavor, to the scheduler's choice or
    /// to the named host (2.56).
    Migrate {
        /// The destination the caller named, if any.
        host: Option<String>,
    },
    /// A live migration (`os-migrateLive`).
    Live(super::live_migration::LiveMove),
}

impl MoveRequest {
    /// The action's name in Nova's guards and instance actions.
    fn action(&self) -> &'static str {
        match self {
            Self::Resize(_) => RESIZE,
            Self::Migrate { .. } => MIGRATE,
            Self::Live(_) => super::live_migration::LIVE_MIGRATION,
        }
    }

    /// The action's name in Nova's state-guard messages.
    fn guard_name(&self) -> &'static str {
        match self {
            Self::Live(_) => "os-migrateLive",
            other => other.action(),
        }
    }

    /// The vm_states it starts from.
    fn allowed_states(&self) -> [&'static str; 2] {
        match self {
            Self::Live(_) => [vm::ACTIVE, vm::PAUSED],
            _ => [vm::ACTIVE, vm::STOPPED],
        }
    }
}

/// Whether compute host `host` has a compute node.
async fn host_exists(tx: &mut Tx, host: &str) -> Result<bool> {
    Ok(
        sqlx::query("SELECT 1 AS found FROM compute_nodes WHERE host = $1")
            .bind(host)
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

impl Conductor {
    /// Starts resizing instance `uuid` to `flavor` (Nova's guards: ACTIVE or
    /// SHUTOFF with nothing in progress, a different flavor, no smaller root
    /// disk; quota on the growth).
    pub async fn resize_server(
        self: &Arc<Self>,
        uuid: &str,
        flavor: FlavorSnapshot,
        caller: &super::Caller<'_>,
    ) -> Result<()> {
        self.move_server(uuid, MoveRequest::Resize(flavor), caller)
            .await
    }

    /// Starts a cold migration of instance `uuid` (Nova's `migrate`): the
    /// resize guards, then, when `host` is named, Nova's checks of it (not
    /// the instance's own host, a compute host that exists: 400).
    pub async fn migrate_server(
        self: &Arc<Self>,
        uuid: &str,
        host: Option<String>,
        caller: &super::Caller<'_>,
    ) -> Result<()> {
        self.move_server(uuid, MoveRequest::Migrate { host }, caller)
            .await
    }

    /// Records a resize, cold or live migration and starts scheduling it.
    pub(super) async fn move_server(
        self: &Arc<Self>,
        uuid: &str,
        request: MoveRequest,
        caller: &super::Caller<'_>,
    ) -> Result<()> {
        let action = request.action();
        let guard = request.guard_name();
        let mut tx = self.begin_global(uuid).await?;
        let instance = Self::locked_instance(&mut tx, uuid).await?;
        if let Some(task_state) = &instance.task_state {
            return Err(ConductorError::Conflict(format!(
                "Cannot '{guard}' instance {uuid} while it is in task_state {task_state}"
            )));
        }
        if !request
            .allowed_states()
            .contains(&instance.vm_state.as_str())
        {
            return Err(ConductorError::Conflict(format!(
                "Cannot '{guard}' instance {uuid} while it is in vm_state {}",
                instance.vm_state
            )));
        }
        let (Some(host), Some(node)) = (instance.host.clone(), instance.node.clone()) else {
            return Err(ConductorError::Conflict(format!(
                "Cannot '{guard}' instance {uuid}: it has no host"
            )));
        };
        let mut live = None;
        let old = instance.flavor()?;
        let (flavor, requested_host) = match request {
            MoveRequest::Resize(flavor) => {
                if old.id == flavor.id {
                    return Err(ConductorError::BadRequest(
                        "When resizing, instances must change flavor!".to_string(),
                    ));
                }
                if flavor.root_gb < old.root_gb && !instance.image_ref.is_empty() {
                    return Err(ConductorError::BadRequest(format!(
                        "Resizing to a smaller root disk is not allowed: flavor {} has {} GB, the instance has {} GB.",
                        flavor.name, flavor.root_gb, old.root_gb
                    )));
                }
                self.quota
                    .check_resize(
                        &mut tx,
                        &ResizeCheck {
                            project_id: &instance.project_id,
                            user_id: &instance.user_id,
                            old: &old.sdk_flavor(),
                            new: &flavor.sdk_flavor(),
                            request_id: caller.request_id,
                        },
                    )
                    .await?;
                (flavor, None)
            }
            MoveRequest::Migrate { host: requested } => {
                if let Some(requested) = &requested {
                    if *requested == host {
                        return Err(ConductorError::BadRequest(
                            "Cannot migrate to the host where the server exists.".to_string(),
                        ));
                    }
                    if !host_exists(&mut tx, requested).await? {
                        return Err(ConductorError::BadRequest(format!(
                            "Compute host {requested} could not be found."
                        )));
                    }
                }
                (old.clone(), requested)
            }
            MoveRequest::Live(request) => {
                super::live_migration::check_destination(&mut tx, uuid, &host, &request).await?;
                let requested = request.host.clone();
                live = Some(request);
                (old.clone(), requested)
            }
        };
        let cold_migration = action != RESIZE;
        let (task_state, migration_type, first_status, first_event) = match &live {
            Some(_) => (
                super::live_migration::MIGRATING,
                super::live_migration::LIVE_MIGRATION,
                status::ACCEPTED,
                super::live_migration::CONDUCTOR_EVENT,
            ),
            None if cold_migration => (
                resize_task::PREP,
                "migration",
                status::PRE_MIGRATING,
                MIGRATE_EVENT,
            ),
            None => (
                resize_task::PREP,
                "resize",
                status::PRE_MIGRATING,
                MIGRATE_EVENT,
            ),
        };
        let before = StateMark::of(&instance);
        let now = db::now();
        sqlx::query("UPDATE instances SET task_state = $1, updated_at = $2 WHERE uuid = $3")
            .bind(task_state)
            .bind(&now)
            .bind(uuid)
            .execute(&mut *tx)
            .await?;
        set_counted(
            &mut tx,
            uuid,
            old.vcpus.max(flavor.vcpus),
            old.memory_mb.max(flavor.memory_mb),
        )
        .await?;
        let migration = Uuid::new_v4().to_string();
        db::insert_returning_id(
            &mut tx,
            sqlx::query(
                "INSERT INTO migrations (uuid, instance_uuid, migration_type, source_compute, source_node, old_flavor, \
                 new_flavor, old_vm_state, status, created_at, updated_at, user_id, project_id) \
                 VALUES ($1, $2, $12, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11) RETURNING id",
            )
            .bind(&migration)
            .bind(uuid)
            .bind(&host)
            .bind(&node)
            .bind(to_json(&old))
            .bind(to_json(&flavor))
            .bind(&instance.vm_state)
            .bind(first_status)
            .bind(&now)
            .bind(caller.user_id)
            .bind(caller.project_id)
            .bind(migration_type),
        )
        .await?;
        let action_id = actions::start_action(
            &mut tx,
            uuid,
            action,
            caller.request_id,
            caller.user_id,
            caller.project_id,
        )
        .await?;
        actions::start_event(&mut tx, &action_id, first_event, None).await?;
        let data = ResizeData {
            migration,
            cold_migration,
            requested_host,
            live,
            ..ResizeData::default()
        };
        let operation = insert_operation(
            &mut tx,
            uuid,
            RESIZE,
            step::SCHEDULE,
            &to_json(&data),
            caller.request_id,
            &action_id,
        )
        .await?;
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
        let conductor = Arc::clone(self);
        tokio::spawn(async move { conductor.run_resize(&operation).await });
        Ok(())
    }

    /// Runs the scheduling step of resize operation `id`; a failure puts the
    /// instance back as it was, with a fault.
    pub(super) async fn run_resize(self: &Arc<Self>, id: &str) {
        let message = match self.schedule_resize(id).await {
            Ok(None) => return,
            Ok(Some(message)) => message,
            Err(error) => format!("Resize failed: {error}"),
        };
        tracing::warn!(operation = id, %message, "resize not scheduled");
        let result = async {
            let Some(mut tx) = self.begin_global_for_operation(id).await? else {
                return Ok(());
            };
            if let Some(operation) = load_operation(&mut *tx, id).await?
                && operation.state == op_state::RUNNING
                && operation.step == step::SCHEDULE
            {
                self.undo_resize(&mut tx, &operation, &message).await?;
            }
            novum_notify::commit(tx).await?;
            Ok::<_, ConductorError>(())
        };
        if let Err(error) = result.await {
            tracing::error!(operation = id, %error, "cannot record a failed resize");
        }
    }

    /// Schedules resize `id`: `Ok(None)` once a destination is claimed (or
    /// nothing is left to do), `Ok(Some(why))` when no host fits.
    async fn schedule_resize(self: &Arc<Self>, id: &str) -> Result<Option<String>> {
        // Taken by this controller first (see `cluster`).
        let Some((_taken, operation, instance)) = self.take_for_scheduling(id, None, None).await?
        else {
            return Ok(None);
        };
        let mut tx = self.db.begin().await?;
        let migration = open_migration(&mut tx, &instance.uuid).await?;
        tx.rollback().await?;
        let Some(migration) = migration else {
            return Ok(Some("The resize's migration record is gone.".to_string()));
        };
        let data: ResizeData = serde_json::from_str(&operation.data).unwrap_or_default();
        // A resize is not rescheduled: it has no hosts tried before.
        let mut request = self
            .scheduling_request(
                &instance,
                &migration.new_flavor,
                &BuildData::default(),
                &operation.request_id,
            )
            .await?;
        request.force_hosts.clear();
        // Nova's scheduler never offers a cold migration its source host.
        if data.cold_migration || !self.compute.allow_resize_to_same_host {
            request.ignore_hosts.push(migration.source_compute.clone());
        }
        request.requested_hosts = data.requested_host.iter().cloned().collect();
        if data.live.as_ref().is_some_and(|live| live.force) {
            // A forced live migration (2.30–2.67) skips the filters: the
            // claim alone decides.
            request.force_hosts = std::mem::take(&mut request.requested_hosts);
        }
        let spec = notices::request_spec(&instance, &migration.new_flavor, &request);
        let mut tx = self.db.begin().await?;
        notices::send(
            &mut tx,
            &builders::select_destinations(&self.scheduler_publisher(), spec.clone(), Phase::Start),
        )
        .await?;
        novum_notify::commit(tx).await?;
        let placement = Placement {
            purpose: Purpose::Resize,
            operation: operation.clone(),
            instance: instance.clone(),
            flavor: migration.new_flavor.clone(),
            spec,
            start_notice: None,
        };
        match self
            .schedule_rounds(&operation.id, placement, request)
            .await?
        {
            Ok(()) => Ok(None),
            Err(ScheduleError::NoValidHost(no_valid_host))
                if data.cold_migration && data.live.is_none() =>
            {
                Ok(Some(format!(
                    "No valid host was found. No valid host found for cold migrate. {}",
                    no_valid_host.explanation()
                )))
            }
            Err(ScheduleError::NoValidHost(no_valid_host)) => Ok(Some(format!(
                "{no_valid_host} {}",
                no_valid_host.explanation()
            ))),
            Err(other) => Ok(Some(other.to_string())),
        }
    }

    /// Claims the new flavor on `host` for a resize and commits, with the
    /// claim, the destination, the first task and the prep notifications.
    pub(super) async fn claim_resize_on(
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
        let Some(migration) = open_migration(&mut tx, &instance.uuid).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        set_migration_destination(&mut tx, &migration.uuid, host, None).await?;
        let context = notices::action_context(&mut tx, operation.action_id.as_deref()).await?;
        let destination = Publisher::compute(&host.name);
        let mut data: ResizeData = serde_json::from_str(&current.data).unwrap_or_default();
        if let Some(live) = data.live.clone() {
            if let Some(action_id) = &operation.action_id {
                actions::finish_events(
                    &mut tx,
                    action_id,
                    Some(super::live_migration::CONDUCTOR_EVENT),
                    None,
                )
                .await?;
            }
            notices::send(
                &mut tx,
                &builders::select_destinations(
                    &self.scheduler_publisher(),
                    spec.clone(),
                    Phase::End,
                ),
            )
            .await?;
            data.steps = self
                .live_steps(&mut tx, instance, &migration, &host.name, &host.uuid, &live)
                .await?;
            let first = self.begin_step(&mut tx, &current, &data, &context).await?;
            novum_notify::commit(tx).await?;
            self.board.wake(&first);
            return Ok(true);
        }
        if let Some(action_id) = &operation.action_id {
            actions::finish_events(&mut tx, action_id, Some(MIGRATE_EVENT), None).await?;
            actions::start_event(&mut tx, action_id, PREP_EVENT, Some(&host.name)).await?;
            actions::finish_events(&mut tx, action_id, Some(PREP_EVENT), None).await?;
        }
        notices::send(
            &mut tx,
            &builders::select_destinations(&self.scheduler_publisher(), spec.clone(), Phase::End),
        )
        .await?;
        for phase in [Phase::Start, Phase::End] {
            notices::resize_prep(
                &mut tx,
                &destination,
                &instance.uuid,
                phase,
                &context,
                flavor,
            )
            .await?;
        }
        data.steps = vec![
            Step {
                host: migration.source_compute.clone(),
                action: TaskAction::Stop,
                event: RESIZE_EVENT.to_string(),
                task_state: Some(resize_task::MIGRATING.to_string()),
                status: status::MIGRATING.to_string(),
                start: Some(InstanceAction::Resize),
                end: Some(InstanceAction::Resize),
            },
            Step {
                host: host.name.clone(),
                action: TaskAction::Redefine {
                    spec: self.spec_with_interfaces(instance, flavor).await?,
                    power_on: migration.power_on(),
                },
                event: FINISH_EVENT.to_string(),
                task_state: Some(resize_task::FINISH.to_string()),
                status: status::POST_MIGRATING.to_string(),
                start: Some(InstanceAction::ResizeFinish),
                end: Some(InstanceAction::ResizeFinish),
            },
        ];
        let first = self.begin_step(&mut tx, &current, &data, &context).await?;
        novum_notify::commit(tx).await?;
        self.board.wake(&first);
        Ok(true)
    }

    /// Enqueues the first of `data.steps` (its task, task_state, migration
    /// status, event and `.start` notice) and stores `data`; returns the
    /// host to wake.
    pub(super) async fn begin_step(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        data: &ResizeData,
        context: &RequestContext,
    ) -> Result<String> {
        let Some(step) = data.steps.first() else {
            return Err(ConductorError::Conflict(format!(
                "operation {} has no step left to begin",
                operation.id
            )));
        };
        let uuid = operation.instance_uuid.as_str();
        let before = StateMark::read(tx, uuid).await?;
        if let TaskAction::Redefine { .. } | TaskAction::PostLiveMigration { .. } = step.action {
            // The guest's ports follow it before it is defined there, so the
            // host's firewall covers them first (the destination of a move,
            // the source again on a revert).
            self.network
                .rebind_instance_ports_in(tx, uuid, &step.host)
                .await?;
        }
        tasks::enqueue(
            tx,
            &step.host,
            uuid,
            &operation.id,
            &step.action,
            &operation.request_id,
        )
        .await?;
        if let Some(task_state) = &step.task_state {
            sqlx::query("UPDATE instances SET task_state = $1, updated_at = $2 WHERE uuid = $3")
                .bind(task_state)
                .bind(db::now())
                .bind(uuid)
                .execute(&mut **tx)
                .await?;
        }
        set_status(tx, &data.migration, &step.status).await?;
        if let Some(action_id) = &operation.action_id {
            actions::start_event(tx, action_id, &step.event, Some(&step.host)).await?;
        }
        set_operation(
            tx,
            &operation.id,
            step::TASK,
            op_state::RUNNING,
            &to_json(data),
        )
        .await?;
        let compute = Publisher::compute(&step.host);
        notices::state_changed(tx, &compute, uuid, before.as_ref(), context).await?;
        if let Some(action) = step.start {
            notices::action(tx, &compute, uuid, action, Phase::Start, context, None).await?;
        }
        Ok(step.host.clone())
    }

    /// Advances a resize, confirm or revert operation with the result of its
    /// running step, inside `tx`; returns a host to wake.
    pub(super) async fn resize_result(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        host: &str,
        outcome: &TaskOutcome,
    ) -> Result<Option<String>> {
        let uuid = operation.instance_uuid.as_str();
        let mut data: ResizeData = serde_json::from_str(&operation.data).unwrap_or_default();
        let context = notices::action_context(tx, operation.action_id.as_deref()).await?;
        let compute = Publisher::compute(host);
        if data.steps.is_empty() {
            return Ok(None);
        }
        let done = data.steps.remove(0);
        if data.live.is_some() {
            if let TaskOutcome::Failed { message, .. } = outcome {
                return self.live_failed(tx, operation, &done, message).await;
            }
            if data.live.as_ref().is_some_and(|live| live.abort) && !data.steps.is_empty() {
                // Aborted while queued or preparing (2.65): not started.
                return self
                    .live_failed(tx, operation, &done, super::live_migration::ABORTED)
                    .await;
            }
        }
        if let TaskOutcome::Failed { message, .. } = outcome {
            let fault = notices::fault(
                &format!("{}_instance", operation.kind),
                "ResizeError",
                message,
            );
            if operation.kind == RESIZE {
                notices::action(
                    tx,
                    &compute,
                    uuid,
                    InstanceAction::Resize,
                    Phase::Error,
                    &context,
                    Some(fault.clone()),
                )
                .await?;
            }
            notices::exception(tx, &compute, uuid, fault).await?;
            self.resize_failed(tx, operation, message).await?;
            return Ok(None);
        }
        if let Some(action_id) = &operation.action_id {
            actions::finish_events(tx, action_id, Some(&done.event), None).await?;
        }
        let power = match outcome {
            TaskOutcome::Succeeded { power_state } => i64::from(u8::from(*power_state)),
            TaskOutcome::Failed { .. } => 0,
        };
        if !data.steps.is_empty() {
            if let Some(action) = done.end {
                notices::action(tx, &compute, uuid, action, Phase::End, &context, None).await?;
            }
            let next = self.begin_step(tx, operation, &data, &context).await?;
            return Ok(Some(next));
        }
        let Some(migration) = open_migration(tx, uuid).await? else {
            finish_operation(
                tx,
                operation,
                Some("The resize's migration record is gone."),
            )
            .await?;
            return Ok(None);
        };
        let before = StateMark::read(tx, uuid).await?;
        let zone = self.compute.default_availability_zone.as_str();
        match operation.kind.as_str() {
            RESIZE if data.live.is_some() => {
                super::live_migration::finish(tx, uuid, &migration, power, zone).await?
            }
            RESIZE => self.finish_resize(tx, uuid, &migration, power).await?,
            CONFIRM => confirm(tx, uuid, &migration).await?,
            _ => revert(tx, uuid, &migration, power, zone).await?,
        }
        let operation = Operation {
            data: to_json(&data),
            ..operation.clone()
        };
        finish_operation(tx, &operation, None).await?;
        notices::state_changed(tx, &compute, uuid, before.as_ref(), &context).await?;
        if let Some(action) = done.end {
            notices::action(tx, &compute, uuid, action, Phase::End, &context, None).await?;
        }
        Ok(None)
    }

    /// The destination runs the new flavor: VERIFY_RESIZE there.
    async fn finish_resize(
        &self,
        tx: &mut Tx,
        uuid: &str,
        migration: &Migration,
        power: i64,
    ) -> Result<()> {
        place_on_destination(tx, uuid, migration, &self.compute.default_availability_zone).await?;
        sqlx::query(
            "UPDATE instances SET vm_state = $1, task_state = NULL, power_state = $2 WHERE uuid = $3",
        )
        .bind(vm::RESIZED)
        .bind(power)
        .bind(uuid)
        .execute(&mut **tx)
        .await?;
        set_status(tx, &migration.uuid, status::FINISHED).await
    }

    /// A failed step: the instance in ERROR with a fault, the migration in
    /// error; a failed resize also drops the new claim and counts the old
    /// flavor again (the instance is still on its source).
    pub(super) async fn resize_failed(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        message: &str,
    ) -> Result<()> {
        let uuid = operation.instance_uuid.as_str();
        let before = StateMark::read(tx, uuid).await?;
        let migration = open_migration(tx, uuid).await?;
        if operation.kind == RESIZE
            && let Some(migration) = &migration
        {
            claims::release(tx, &resize_consumer(uuid)).await?;
            // The instance is still its source's: so are its ports.
            self.network
                .rebind_instance_ports_in(tx, uuid, &migration.source_compute)
                .await?;
            set_counted(
                tx,
                uuid,
                migration.old_flavor.vcpus,
                migration.old_flavor.memory_mb,
            )
            .await?;
        }
        if let Some(migration) = &migration {
            set_status(tx, &migration.uuid, status::ERROR).await?;
        }
        sqlx::query(
            "UPDATE instances SET vm_state = $1, task_state = NULL, fault = $2, updated_at = $3 WHERE uuid = $4 AND deleted = 0",
        )
        .bind(vm::ERROR)
        .bind(fault_json(500, message, ""))
        .bind(db::now())
        .bind(uuid)
        .execute(&mut **tx)
        .await?;
        finish_operation(tx, operation, Some(message)).await?;
        let context = notices::action_context(tx, operation.action_id.as_deref()).await?;
        notices::state_changed(
            tx,
            &self.conductor_publisher(),
            uuid,
            before.as_ref(),
            &context,
        )
        .await
    }

    /// A resize that found no destination: the instance as it was (state,
    /// quota), with a fault saying why; the action ends in error.
    async fn undo_resize(&self, tx: &mut Tx, operation: &Operation, message: &str) -> Result<()> {
        let uuid = operation.instance_uuid.as_str();
        let before = StateMark::read(tx, uuid).await?;
        if let Some(migration) = open_migration(tx, uuid).await? {
            set_counted(
                tx,
                uuid,
                migration.old_flavor.vcpus,
                migration.old_flavor.memory_mb,
            )
            .await?;
            set_status(tx, &migration.uuid, status::ERROR).await?;
        }
        sqlx::query(
            "UPDATE instances SET task_state = NULL, fault = $1, updated_at = $2 WHERE uuid = $3 AND deleted = 0",
        )
        .bind(fault_json(500, message, ""))
        .bind(db::now())
        .bind(uuid)
        .execute(&mut **tx)
        .await?;
        finish_operation(tx, operation, Some(message)).await?;
        let publisher = self.conductor_publisher();
        let context = notices::action_context(tx, operation.action_id.as_deref()).await?;
        notices::state_changed(tx, &publisher, uuid, before.as_ref(), &context).await?;
        notices::exception(
            tx,
            &publisher,
            uuid,
            notices::fault("migrate_server", "NoValidHost", message),
        )
        .await
    }

    /// A resize (or its confirm/revert) interrupted by a restart with no
    /// task left: undone while still scheduling, else failed.
    pub(super) async fn resize_interrupted(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        message: &str,
    ) -> Result<()> {
        if operation.step == step::SCHEDULE {
            self.undo_resize(tx, operation, message).await
        } else {
            self.resize_failed(tx, operation, message).await
        }
    }

    /// Confirms the resize of `uuid`: the source domain goes (no task when
    /// the resize stayed on one host), and so does the old claim.
    pub async fn confirm_resize(
        self: &Arc<Self>,
        uuid: &str,
        caller: &super::Caller<'_>,
    ) -> Result<()> {
        self.settle_resize(uuid, caller, CONFIRM).await
    }

    /// Reverts the resize of `uuid`: the destination domain goes, the source
    /// is redefined with the old flavor, and the new claim is dropped.
    pub async fn revert_resize(
        self: &Arc<Self>,
        uuid: &str,
        caller: &super::Caller<'_>,
    ) -> Result<()> {
        self.settle_resize(uuid, caller, REVERT).await
    }

    async fn settle_resize(
        self: &Arc<Self>,
        uuid: &str,
        caller: &super::Caller<'_>,
        kind: &str,
    ) -> Result<()> {
        let mut tx = self.begin_global(uuid).await?;
        let instance = Self::locked_instance(&mut tx, uuid).await?;
        check_verify_resize(&instance, kind)?;
        let migration = match open_migration(&mut tx, uuid).await? {
            Some(migration) if migration.dest_compute.is_some() => migration,
            _ => {
                return Err(ConductorError::Conflict(format!(
                    "Instance {uuid} has not been resized."
                )));
            }
        };
        let dest = migration
            .dest_compute
            .clone()
            .unwrap_or_else(|| migration.source_compute.clone());
        let action_id = actions::start_action(
            &mut tx,
            uuid,
            kind,
            caller.request_id,
            caller.user_id,
            caller.project_id,
        )
        .await?;
        let context = notices::caller_context(caller);
        let (notice, steps) = if kind == CONFIRM {
            let destroy_source = Step {
                host: migration.source_compute.clone(),
                action: TaskAction::Destroy,
                event: CONFIRM_EVENT.to_string(),
                task_state: None,
                status: status::CONFIRMING.to_string(),
                start: Some(InstanceAction::ResizeConfirm),
                end: Some(InstanceAction::ResizeConfirm),
            };
            let steps = if migration.same_host() {
                Vec::new()
            } else {
                vec![destroy_source]
            };
            (InstanceAction::ResizeConfirm, steps)
        } else {
            let redefine_source = Step {
                host: migration.source_compute.clone(),
                action: TaskAction::Redefine {
                    spec: self
                        .spec_with_interfaces(&instance, &migration.old_flavor)
                        .await?,
                    power_on: migration.power_on(),
                },
                event: FINISH_REVERT_EVENT.to_string(),
                task_state: Some(resize_task::REVERTING.to_string()),
                status: status::REVERTING.to_string(),
                start: None,
                end: Some(InstanceAction::ResizeRevert),
            };
            let steps = if migration.same_host() {
                vec![Step {
                    start: Some(InstanceAction::ResizeRevert),
                    ..redefine_source
                }]
            } else {
                vec![
                    Step {
                        host: dest.clone(),
                        action: TaskAction::Destroy,
                        event: REVERT_EVENT.to_string(),
                        task_state: Some(resize_task::REVERTING.to_string()),
                        status: status::REVERTING.to_string(),
                        start: Some(InstanceAction::ResizeRevert),
                        end: None,
                    },
                    redefine_source,
                ]
            };
            (InstanceAction::ResizeRevert, steps)
        };
        let data = ResizeData {
            migration: migration.uuid.clone(),
            steps,
            ..ResizeData::default()
        };
        let operation_id = insert_operation(
            &mut tx,
            uuid,
            kind,
            step::TASK,
            &to_json(&data),
            caller.request_id,
            &action_id,
        )
        .await?;
        let Some(operation) = load_operation(&mut *tx, &operation_id).await? else {
            return Err(ConductorError::NotFound(format!(
                "operation {operation_id} vanished"
            )));
        };
        if data.steps.is_empty() {
            // A same-host confirm: nothing for an agent to do.
            let before = StateMark::of(&instance);
            let compute = Publisher::compute(&dest);
            actions::start_event(&mut tx, &action_id, CONFIRM_EVENT, Some(&dest)).await?;
            notices::action(
                &mut tx,
                &compute,
                uuid,
                notice,
                Phase::Start,
                &context,
                None,
            )
            .await?;
            confirm(&mut tx, uuid, &migration).await?;
            finish_operation(&mut tx, &operation, None).await?;
            notices::state_changed(&mut tx, &compute, uuid, Some(&before), &context).await?;
            notices::action(&mut tx, &compute, uuid, notice, Phase::End, &context, None).await?;
            novum_notify::commit(tx).await?;
            return Ok(());
        }
        let host = self
            .begin_step(&mut tx, &operation, &data, &context)
            .await?;
        novum_notify::commit(tx).await?;
        self.board.wake(&host);
        Ok(())
    }

    /// Confirms every resize and cold migration that has awaited
    /// confirmation (VERIFY_RESIZE) longer than `[compute]
    /// resize_confirm_window` (Nova's `_poll_unconfirmed_resizes`), as the
    /// user who started it; returns how many confirmations started. Does
    /// nothing when the window is 0.
    pub async fn confirm_expired_resizes(self: &Arc<Self>) -> Result<usize> {
        let window = self.compute.resize_confirm_window;
        if window == 0 {
            return Ok(0);
        }
        let seconds = i64::try_from(window).unwrap_or(i64::MAX);
        let cutoff = db::timestamp(chrono::Utc::now() - chrono::Duration::seconds(seconds));
        let rows = sqlx::query(
            "SELECT m.instance_uuid AS uuid, m.user_id, m.project_id FROM migrations m \
             JOIN instances i ON i.uuid = m.instance_uuid \
             WHERE m.status = $1 AND m.updated_at <= $2 AND i.vm_state = $3 \
             AND i.task_state IS NULL AND i.deleted = 0",
        )
        .bind(status::FINISHED)
        .bind(&cutoff)
        .bind(vm::RESIZED)
        .fetch_all(self.db.pool())
        .await?;
        // Confirmed, reverted or deleted meanwhile: skipped.
        self.act_as_owners(&rows, super::ops::OwnerSweep::ConfirmResize)
            .await
    }

    /// On delete: the other host of an unfinished resize gets a destroy task
    /// too (under the delete operation), and the migration ends in error.
    pub(super) async fn delete_resize_leftovers(
        &self,
        tx: &mut Tx,
        uuid: &str,
        host: &str,
        operation_id: &str,
        request_id: &str,
    ) -> Result<Option<String>> {
        let Some(migration) = open_migration(tx, uuid).await? else {
            return Ok(None);
        };
        set_status(tx, &migration.uuid, status::ERROR).await?;
        let other = [
            Some(migration.source_compute.clone()),
            migration.dest_compute.clone(),
        ]
        .into_iter()
        .flatten()
        .find(|candidate| candidate != host);
        if let Some(other) = &other {
            tasks::enqueue(
                tx,
                other,
                uuid,
                operation_id,
                &TaskAction::Destroy,
                request_id,
            )
            .await?;
        }
        Ok(other)
    }
}

/// Confirmed: the old claim goes, the new one takes the instance's uuid, and
/// the instance counts the new flavor only.
async fn confirm(tx: &mut Tx, uuid: &str, migration: &Migration) -> Result<()> {
    take_destination_claim(tx, uuid).await?;
    set_counted(
        tx,
        uuid,
        migration.new_flavor.vcpus,
        migration.new_flavor.memory_mb,
    )
    .await?;
    sqlx::query(
        "UPDATE instances SET vm_state = $1, task_state = NULL, updated_at = $2 WHERE uuid = $3",
    )
    .bind(&migration.old_vm_state)
    .bind(db::now())
    .bind(uuid)
    .execute(&mut **tx)
    .await?;
    set_status(tx, &migration.uuid, status::CONFIRMED).await
}

/// The source's claim goes and the destination's (`resize:<uuid>`) becomes
/// the instance's.
pub(super) async fn take_destination_claim(tx: &mut Tx, uuid: &str) -> Result<()> {
    claims::release(tx, uuid).await?;
    sqlx::query("UPDATE allocations SET instance_uuid = $1 WHERE instance_uuid = $2")
        .bind(uuid)
        .bind(resize_consumer(uuid))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The instance on the migration's destination (its source when it has
/// none: a resize on the same host) with the new flavor (see [`place`]).
pub(super) async fn place_on_destination(
    tx: &mut Tx,
    uuid: &str,
    migration: &Migration,
    default_zone: &str,
) -> Result<()> {
    let host = migration
        .dest_compute
        .clone()
        .unwrap_or_else(|| migration.source_compute.clone());
    let node = migration.dest_node.clone().unwrap_or_else(|| host.clone());
    place(tx, uuid, &migration.new_flavor, &host, &node, default_zone).await
}

/// Reverted: the new claim goes, the instance is back on its source with
/// the old flavor and counts it only.
async fn revert(
    tx: &mut Tx,
    uuid: &str,
    migration: &Migration,
    power: i64,
    default_zone: &str,
) -> Result<()> {
    claims::release(tx, &resize_consumer(uuid)).await?;
    place(
        tx,
        uuid,
        &migration.old_flavor,
        &migration.source_compute,
        &migration.source_node,
        default_zone,
    )
    .await?;
    set_counted(
        tx,
        uuid,
        migration.old_flavor.vcpus,
        migration.old_flavor.memory_mb,
    )
    .await?;
    sqlx::query(
        "UPDATE instances SET vm_state = $1, task_state = NULL, power_state = $2, updated_at = $3 WHERE uuid = $4",
    )
    .bind(&migration.old_vm_state)
    .bind(power)
    .bind(db::now())
    .bind(uuid)
    .execute(&mut **tx)
    .await?;
    set_status(tx, &migration.uuid, status::REVERTED).await
}
