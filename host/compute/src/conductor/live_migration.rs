//! Live migration (Nova's `os-migrateLive` server action and the
//! `/servers/{id}/migrations` resource: list, show, `force_complete`,
//! abort).
//!
//! A live migration is a move operation of the resize machinery
//! ([`super::resize`]) with its own steps: the API records a `migrations`
//! row (`migration_type` `live-migration`, status `accepted`), the instance
//! keeps its vm_state (ACTIVE or PAUSED) with task_state `migrating`
//! (status MIGRATING), and the scheduler picks a destination other than the
//! source — a named host still goes through the filters, unless forced
//! (2.30–2.67), when only the claim decides. The flavor is claimed on the
//! destination under the consumer `resize:<uuid>`; then three agent tasks:
//! [`TaskAction::PreLiveMigration`] on the destination (status
//! `preparing`; it carries the source's recorded `cpu_info`, which the
//! destination's hypervisor must be able to offer), [`TaskAction::LiveMigrate`] on the source (`running`),
//! [`TaskAction::PostLiveMigration`] on the destination (`post-migrating`;
//! the ports are bound there first). On success the destination's claim
//! becomes the instance's, the source's goes, the instance is placed on the
//! destination and the migration is `completed`. When the first two steps
//! fail (or are aborted) the guest is still running on the source: the
//! destination's claim goes, the destination is cleaned up (a `Destroy`
//! task), the migration ends `error` (`cancelled` when aborted) and the
//! instance stays where it was, with no task state. A failure after the
//! move (the destination's post step) puts the instance in ERROR as
//! Nova's `post_live_migration_at_destination` does.
//!
//! Novum's hosts never share instance storage, so `block_migration:
//! "auto"` (2.25) is a block migration.

use std::sync::Arc;

use novum_notify::builders::InstanceAction;
use novum_notify::{Phase, Publisher};
use novum_wire::{CpuInfo, LiveMigrationControl, LiveMigrationProgress, TaskAction, TaskAnswer};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::model::Instance;
use super::notices::{self, StateMark};
use super::resize::{
    self, Migration, MoveRequest, ResizeData, Step, open_migration, resize_consumer, set_status,
    status,
};
use super::states::vm;
use super::tasks::{self, QueryEnd};
use super::{
    Conductor, ConductorError, Operation, Result, actions, claims, finish_operation, op_state,
    set_operation, to_json,
};
use novum_db::{self as db, Tx};

/// `migration_type` of a live migration, and its instance action.
pub const LIVE_MIGRATION: &str = "live-migration";
/// task_state of a live migration (API status MIGRATING).
pub const MIGRATING: &str = "migrating";
/// The instance-action event of the conductor's part.
pub(super) const CONDUCTOR_EVENT: &str = "conductor_live_migrate_instance";
const PRE_EVENT: &str = "compute_pre_live_migration";
const MIGRATE_EVENT: &str = "compute_live_migration";
const POST_EVENT: &str = "compute_post_live_migration_at_destination";
const ROLLBACK_EVENT: &str = "compute_rollback_live_migration_at_destination";
/// What an abort before the guest moved says.
pub(super) const ABORTED: &str = "The live migration was aborted.";

/// The statuses of a live migration in progress (Nova's
/// `migration_get_in_progress_by_instance`).
pub const IN_PROGRESS: &[&str] = &[
    status::ACCEPTED,
    status::PREPARING,
    status::RUNNING,
    status::POST_MIGRATING,
];

/// What a live migration was asked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveMove {
    /// The destination the caller named, if any.
    pub host: Option<String>,
    /// `block_migration`: `None` is `"auto"`.
    pub block_migration: Option<bool>,
    /// Skip the scheduler's filters for the named host (2.30–2.67).
    pub force: bool,
    /// Aborted before the guest started moving (2.65).
    #[serde(default)]
    pub abort: bool,
}

/// Whether `task_state` is a live migration's (API status MIGRATING).
pub fn is_live_migrating(task_state: &str) -> bool {
    task_state == MIGRATING
}

/// Nova's checks of a named destination (400s): a compute host that
/// exists, not the instance's own.
pub(super) async fn check_destination(
    tx: &mut Tx,
    uuid: &str,
    source: &str,
    request: &LiveMove,
) -> Result<()> {
    let Some(host) = &request.host else {
        return Ok(());
    };
    if host == source {
        return Err(ConductorError::BadRequest(format!(
            "Unable to migrate instance ({uuid}) to current host ({source})."
        )));
    }
    let exists = sqlx::query("SELECT 1 AS found FROM compute_nodes WHERE host = $1")
        .bind(host)
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    if !exists {
        return Err(ConductorError::BadRequest(format!(
            "Compute host {host} could not be found."
        )));
    }
    Ok(())
}

/// The CPU the source's agent reported (`compute_nodes.cpu_info` of its
/// node), for the destination's compatibility check (Nova's
/// `check_can_live_migrate_destination` compares the source's `cpu_info`);
/// `None` when none was recorded.
async fn source_cpu(tx: &mut Tx, migration: &Migration) -> Result<Option<CpuInfo>> {
    let text: Option<String> = sqlx::query(
        "SELECT cpu_info FROM compute_nodes WHERE host = $1 ORDER BY (hypervisor_hostname = $2) DESC, id",
    )
    .bind(&migration.source_compute)
    .bind(&migration.source_node)
    .fetch_optional(&mut **tx)
    .await?
    .map(|row| row.try_get("cpu_info"))
    .transpose()?;
    // A node that never reported holds `{}`: nothing to compare.
    Ok(text
        .and_then(|text| serde_json::from_str::<CpuInfo>(&text).ok())
        .filter(|cpu| !cpu.arch.is_empty()))
}

/// One row of a live migration, as the `/servers/{id}/migrations` API and
/// its actions need it.
struct LiveRow {
    status: String,
    migration_type: String,
    source_compute: String,
}

async fn live_row(tx: &mut Tx, uuid: &str, migration_id: i64) -> Result<Option<LiveRow>> {
    let row = sqlx::query(
        "SELECT status, migration_type, source_compute FROM migrations WHERE id = $1 AND instance_uuid = $2",
    )
    .bind(migration_id)
    .bind(uuid)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| {
        Ok(LiveRow {
            status: row.try_get("status")?,
            migration_type: row.try_get("migration_type")?,
            source_compute: row.try_get("source_compute")?,
        })
    })
    .transpose()
}

/// The successful end: the instance on the destination (in its zone,
/// `default_zone` when in none), the destination's claim its own, the
/// migration `completed`.
pub(super) async fn finish(
    tx: &mut Tx,
    uuid: &str,
    migration: &Migration,
    power: i64,
    default_zone: &str,
) -> Result<()> {
    resize::place_on_destination(tx, uuid, migration, default_zone).await?;
    resize::take_destination_claim(tx, uuid).await?;
    sqlx::query("UPDATE instances SET task_state = NULL, power_state = $1 WHERE uuid = $2")
        .bind(power)
        .bind(uuid)
        .execute(&mut **tx)
        .await?;
    set_status(tx, &migration.uuid, status::COMPLETED).await
}

/// What abort and force-complete share: the instance must be migrating
/// (409), the migration its own (`missing` answers) and in one of `allowed`
/// (400, Nova's `InvalidMigrationState`).
struct ControlCheck<'a> {
    method: &'a str,
    allowed: &'a [&'a str],
    missing: fn(String) -> ConductorError,
}

impl Conductor {
    /// The instances whose live migration to `host` is in progress.
    pub(super) async fn live_migrating_to(&self, host: &str) -> Result<Vec<String>> {
        // One placeholder per status of `IN_PROGRESS`.
        const _: () = assert!(IN_PROGRESS.len() == 4);
        let mut statement = sqlx::query(
            "SELECT instance_uuid FROM migrations WHERE dest_compute = $1 AND migration_type = $2 AND status IN ($3, $4, $5, $6) ORDER BY id",
        )
        .bind(host)
        .bind(LIVE_MIGRATION);
        for status in IN_PROGRESS {
            statement = statement.bind(*status);
        }
        let rows = statement.fetch_all(self.db.pool()).await?;
        Ok(rows
            .iter()
            .map(|row| row.try_get::<String, _>("instance_uuid"))
            .collect::<std::result::Result<_, _>>()?)
    }

    /// Starts a live migration of instance `uuid` (Nova's `os-migrateLive`):
    /// ACTIVE or PAUSED with no task (409), a named host that exists and is
    /// not the source (400).
    pub async fn live_migrate_server(
        self: &Arc<Self>,
        uuid: &str,
        request: LiveMove,
        caller: &super::Caller<'_>,
    ) -> Result<()> {
        self.move_server(uuid, MoveRequest::Live(request), caller)
            .await
    }

    /// The three agent steps of a live migration to `dest` (node `dest_uuid`).
    pub(super) async fn live_steps(
        &self,
        tx: &mut Tx,
        instance: &Instance,
        migration: &Migration,
        dest: &str,
        dest_uuid: &str,
        live: &LiveMove,
    ) -> Result<Vec<Step>> {
        let address: Option<String> =
            sqlx::query("SELECT host_ip FROM compute_nodes WHERE uuid = $1")
                .bind(dest_uuid)
                .fetch_optional(&mut **tx)
                .await?
                .map(|row| row.try_get::<Option<String>, _>("host_ip"))
                .transpose()?
                .flatten();
        let source_cpu = source_cpu(tx, migration).await?;
        let spec = self
            .spec_with_interfaces(instance, &migration.new_flavor)
            .await?;
        // Hosts never share instance storage: "auto" copies the disks.
        let block_migration = live.block_migration.unwrap_or(true);
        Ok(vec![
            Step {
                host: dest.to_string(),
                action: TaskAction::PreLiveMigration {
                    spec: spec.clone(),
                    block_migration,
                    source_cpu,
                },
                event: PRE_EVENT.to_string(),
                task_state: None,
                status: status::PREPARING.to_string(),
                start: Some(InstanceAction::LiveMigrationPre),
                end: Some(InstanceAction::LiveMigrationPre),
            },
            Step {
                host: migration.source_compute.clone(),
                action: TaskAction::LiveMigrate {
                    destination: dest.to_string(),
                    destination_ip: address.unwrap_or_else(|| dest.to_string()),
                    block_migration,
                    spec: spec.clone(),
                },
                event: MIGRATE_EVENT.to_string(),
                task_state: None,
                status: status::RUNNING.to_string(),
                start: None,
                end: None,
            },
            Step {
                host: dest.to_string(),
                action: TaskAction::PostLiveMigration {
                    spec,
                    paused: instance.vm_state == vm::PAUSED,
                },
                event: POST_EVENT.to_string(),
                task_state: None,
                status: status::POST_MIGRATING.to_string(),
                start: Some(InstanceAction::LiveMigrationPost),
                end: Some(InstanceAction::LiveMigrationPost),
            },
        ])
    }

    /// A live-migration step `done` failed with `message` (or the
    /// migration was aborted before the guest moved): before the move, a
    /// rollback that leaves the guest running on its source; after it,
    /// the instance in ERROR. Returns the host to wake.
    pub(super) async fn live_failed(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        done: &Step,
        message: &str,
    ) -> Result<Option<String>> {
        let uuid = operation.instance_uuid.as_str();
        if let TaskAction::PostLiveMigration { .. } = done.action {
            self.resize_failed(tx, operation, message).await?;
            return Ok(None);
        }
        let before = StateMark::read(tx, uuid).await?;
        let context = notices::action_context(tx, operation.action_id.as_deref()).await?;
        let data: ResizeData = serde_json::from_str(&operation.data).unwrap_or_default();
        let aborted = data.live.as_ref().is_some_and(|live| live.abort)
            || message.contains("canceled by client");
        let Some(migration) = open_migration(tx, uuid).await? else {
            finish_operation(tx, operation, Some(message)).await?;
            return Ok(None);
        };
        let source = Publisher::compute(&migration.source_compute);
        notices::action(
            tx,
            &source,
            uuid,
            InstanceAction::LiveMigrationRollback,
            Phase::Start,
            &context,
            None,
        )
        .await?;
        claims::release(tx, &resize_consumer(uuid)).await?;
        // The guest is still the source's: so are its ports.
        self.network
            .rebind_instance_ports_in(tx, uuid, &migration.source_compute)
            .await?;
        let mut wake = None;
        if let Some(dest) = migration
            .dest_compute
            .as_deref()
            .filter(|dest| *dest != migration.source_compute)
        {
            // What the destination prepared goes (Nova's
            // `rollback_live_migration_at_destination`).
            tasks::enqueue(
                tx,
                dest,
                uuid,
                &operation.id,
                &TaskAction::Destroy,
                &operation.request_id,
            )
            .await?;
            if let Some(action_id) = &operation.action_id {
                actions::start_event(tx, action_id, ROLLBACK_EVENT, Some(dest)).await?;
                actions::finish_events(tx, action_id, Some(ROLLBACK_EVENT), None).await?;
            }
            wake = Some(dest.to_string());
        }
        set_status(
            tx,
            &migration.uuid,
            if aborted {
                status::CANCELLED
            } else {
                status::ERROR
            },
        )
        .await?;
        sqlx::query(
            "UPDATE instances SET task_state = NULL, updated_at = $1 WHERE uuid = $2 AND deleted = 0",
        )
        .bind(db::now())
        .bind(uuid)
        .execute(&mut **tx)
        .await?;
        if let Some(action_id) = &operation.action_id {
            actions::finish_events(tx, action_id, Some(&done.event), Some(message)).await?;
        }
        finish_operation(tx, operation, Some(message)).await?;
        notices::state_changed(tx, &source, uuid, before.as_ref(), &context).await?;
        notices::action(
            tx,
            &source,
            uuid,
            InstanceAction::LiveMigrationRollback,
            Phase::End,
            &context,
            None,
        )
        .await?;
        Ok(wake)
    }

    /// The guards of abort and force-complete, in one transaction: the
    /// instance, the migration row, and the running operation's id.
    async fn check_control(
        &self,
        tx: &mut Tx,
        uuid: &str,
        migration_id: i64,
        check: &ControlCheck<'_>,
    ) -> Result<(LiveRow, Option<String>)> {
        let instance = Self::locked_instance(tx, uuid).await?;
        let task_state = instance.task_state.as_deref().unwrap_or("None");
        if !is_live_migrating(task_state) {
            return Err(ConductorError::Conflict(format!(
                "Cannot '{}' instance {uuid} while it is in task_state {task_state}",
                check.method
            )));
        }
        let not_found = || format!("Migration {migration_id} not found for instance {uuid}.");
        let Some(row) = live_row(tx, uuid, migration_id).await? else {
            return Err((check.missing)(not_found()));
        };
        if row.migration_type != LIVE_MIGRATION || !check.allowed.contains(&row.status.as_str()) {
            return Err(ConductorError::BadRequest(format!(
                "Migration {migration_id} state of instance {uuid} is {}. Cannot {} while the migration is in this state.",
                row.status, check.method
            )));
        }
        let operation: Option<String> = sqlx::query(
            "SELECT id FROM conductor_operations WHERE instance_uuid = $1 AND kind = $2 AND state = $3",
        )
        .bind(uuid)
        .bind(resize::RESIZE)
        .bind(op_state::RUNNING)
        .fetch_optional(&mut **tx)
        .await?
        .map(|row| row.try_get("id"))
        .transpose()?;
        Ok((row, operation))
    }

    /// Aborts live migration `migration_id` of `uuid` (Nova's `DELETE
    /// /servers/{id}/migrations/{mid}`, 2.24): a running one through the
    /// source's agent (the migration then ends `cancelled` and rolls back);
    /// from 2.65 (`queued_too`) a queued or preparing one too, before the
    /// guest moves. 404 for a migration not the instance's, 400 in another
    /// status, 409 when the instance is not migrating.
    pub async fn abort_live_migration(
        &self,
        uuid: &str,
        migration_id: i64,
        queued_too: bool,
        caller: &super::Caller<'_>,
    ) -> Result<()> {
        let allowed: &[&str] = if queued_too {
            &[status::ACCEPTED, status::PREPARING, status::RUNNING]
        } else {
            &[status::RUNNING]
        };
        let check = ControlCheck {
            method: "abort live migration",
            allowed,
            missing: ConductorError::NotFound,
        };
        let mut tx = self.begin_global(uuid).await?;
        let (row, operation) = self
            .check_control(&mut tx, uuid, migration_id, &check)
            .await?;
        let context = notices::caller_context(caller);
        let source = Publisher::compute(&row.source_compute);
        notices::action(
            &mut tx,
            &source,
            uuid,
            InstanceAction::LiveMigrationAbort,
            Phase::Start,
            &context,
            None,
        )
        .await?;
        if row.status != status::RUNNING
            && let Some(id) = &operation
            && let Some(operation) = super::load_operation(&mut *tx, id).await?
        {
            let mut data: ResizeData = serde_json::from_str(&operation.data).unwrap_or_default();
            if let Some(live) = data.live.as_mut() {
                live.abort = true;
            }
            set_operation(
                &mut tx,
                &operation.id,
                &operation.step,
                &operation.state,
                &to_json(&data),
            )
            .await?;
        }
        notices::action(
            &mut tx,
            &source,
            uuid,
            InstanceAction::LiveMigrationAbort,
            Phase::End,
            &context,
            None,
        )
        .await?;
        novum_notify::commit(tx).await?;
        if row.status == status::RUNNING {
            self.control_source(
                &row.source_compute,
                uuid,
                LiveMigrationControl::Abort,
                caller,
            )
            .await?;
        }
        Ok(())
    }

    /// Forces running live migration `migration_id` of `uuid` to complete
    /// (Nova's `force_complete`, 2.22): the source pauses the guest so its
    /// memory stops changing. 400 for a migration not the instance's or not
    /// running, 409 when the instance is not migrating.
    pub async fn force_complete_live_migration(
        &self,
        uuid: &str,
        migration_id: i64,
        caller: &super::Caller<'_>,
    ) -> Result<()> {
        let check = ControlCheck {
            method: "force complete",
            allowed: &[status::RUNNING],
            missing: ConductorError::BadRequest,
        };
        let mut tx = self.begin_global(uuid).await?;
        let (row, _) = self
            .check_control(&mut tx, uuid, migration_id, &check)
            .await?;
        let context = notices::caller_context(caller);
        let source = Publisher::compute(&row.source_compute);
        for phase in [Phase::Start, Phase::End] {
            notices::action(
                &mut tx,
                &source,
                uuid,
                InstanceAction::LiveMigrationForceComplete,
                phase,
                &context,
                None,
            )
            .await?;
        }
        novum_notify::commit(tx).await?;
        self.control_source(
            &row.source_compute,
            uuid,
            LiveMigrationControl::ForceComplete,
            caller,
        )
        .await
    }

    /// Sends `control` to the source's agent (a query run beside the
    /// migration; as Nova's cast, nobody waits for its answer).
    async fn control_source(
        &self,
        source: &str,
        uuid: &str,
        control: LiveMigrationControl,
        caller: &super::Caller<'_>,
    ) -> Result<()> {
        tasks::enqueue_query(
            &self.db,
            &self.board,
            source,
            uuid,
            &TaskAction::LiveMigrationControl { control },
            caller.request_id,
        )
        .await?;
        Ok(())
    }

    /// The progress of the running live migration of `instance`, as its
    /// source's agent reads it from the hypervisor; `None` when it cannot
    /// say (no migration runs there, or no answer in time).
    pub async fn live_migration_progress(
        &self,
        instance: &Instance,
        request_id: &str,
    ) -> Option<LiveMigrationProgress> {
        let action = TaskAction::LiveMigrationControl {
            control: LiveMigrationControl::Progress,
        };
        match self
            .query_agent(instance, "live_migration_progress", &action, request_id)
            .await
        {
            Ok((_, QueryEnd::Answered(TaskAnswer::LiveMigrationControlled(progress)))) => {
                Some(progress)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_live_task_state_is_migrating() {
        assert!(is_live_migrating(MIGRATING));
        assert!(!is_live_migrating("resize_migrating"));
    }
}
