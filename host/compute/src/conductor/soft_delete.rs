//! Soft delete (Nova's `reclaim_instance_interval`): with
//! `[compute] reclaim_instance_interval` above 0, deleting a launched
//! server on a host powers it off into SOFT_DELETED (an agent `Stop`, the
//! instance action `delete`, `instance.soft_delete.start`/`.end`) and
//! stamps `deleted_at`; it keeps its claim on the host and counts against
//! its project's quota until it is gone. `restore` powers it on again
//! (`instance.restore.*`), `forceDelete` deletes it through the ordinary
//! delete, and [`Conductor::reclaim`] — run every interval by
//! [`Conductor::run_reclaimer`] — deletes those soft-deleted longer than
//! the interval. A server on no host, never launched or with a task in
//! progress is deleted at once, as Nova falls back to a delete when its
//! soft-delete guard refuses; so is one awaiting a resize confirmation or
//! in ERROR (novum's own narrowing, see `ServerAction::allowed_from`).

use std::sync::Arc;

use sqlx::Row;
use uuid::Uuid;

use super::model::Instance;
use super::states::{ServerAction, vm};
use super::{Caller, Conductor, ConductorError, Result};
use novum_db::{self as db, Tx};

/// Stamps (`true`: now) or clears (`false`) the `deleted_at` of instance
/// `uuid` in `tx`: a soft delete starts the reclaim clock, a restore stops
/// it.
pub(super) async fn stamp_deleted_at(tx: &mut Tx, uuid: &str, stamp: bool) -> Result<()> {
    sqlx::query("UPDATE instances SET deleted_at = $1 WHERE uuid = $2")
        .bind(stamp.then(db::now))
        .bind(uuid)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Conductor {
    /// Whether deletes are soft (`[compute] reclaim_instance_interval` > 0).
    pub fn soft_delete_enabled(&self) -> bool {
        self.compute.reclaim_instance_interval > 0
    }

    /// `DELETE /servers/{id}`: a soft delete when it is on and the instance
    /// may be soft-deleted, else [`Conductor::delete_server`].
    pub async fn delete_server_as_configured(
        self: &Arc<Self>,
        uuid: &str,
        caller: &Caller<'_>,
    ) -> Result<()> {
        if self.soft_delete_enabled() {
            let instance = Instance::fetch(self.db.pool(), uuid)
                .await?
                .filter(|instance| instance.deleted == 0)
                .ok_or_else(|| {
                    ConductorError::NotFound(format!("Instance {uuid} could not be found."))
                })?;
            let on_a_host = instance
                .host
                .as_deref()
                .is_some_and(|host| !host.is_empty());
            // Nova's `must_have_launched`; the states are the guard's.
            if on_a_host && instance.launched_at.is_some() {
                match self
                    .server_action(uuid, ServerAction::SoftDelete, caller)
                    .await
                {
                    // The guard refused (a task in progress meanwhile): Nova
                    // deletes instead.
                    Err(ConductorError::Conflict(_)) => {}
                    done => return done,
                }
            }
        }
        self.delete_server(uuid, caller).await
    }

    /// `restore`: powers a SOFT_DELETED instance on into ACTIVE (409 from
    /// any other state).
    pub async fn restore_server(self: &Arc<Self>, uuid: &str, caller: &Caller<'_>) -> Result<()> {
        self.server_action(uuid, ServerAction::Restore, caller)
            .await
    }

    /// `forceDelete`: deletes the instance now, whatever its vm_state, when
    /// no task is in progress (Nova's `force_delete` guard; 409 otherwise).
    pub async fn force_delete_server(
        self: &Arc<Self>,
        uuid: &str,
        caller: &Caller<'_>,
    ) -> Result<()> {
        let mut refusal = None;
        self.delete_server_when(uuid, caller, |instance| match &instance.task_state {
            Some(task_state) => {
                refusal = Some(format!(
                    "Cannot 'forceDelete' instance {uuid} while it is in task_state {task_state}"
                ));
                false
            }
            None => true,
        })
        .await?;
        match refusal {
            Some(message) => Err(ConductorError::Conflict(message)),
            None => Ok(()),
        }
    }

    /// Deletes, through the ordinary delete, every SOFT_DELETED instance
    /// with no task in progress that was soft-deleted more than
    /// `reclaim_instance_interval` seconds ago (Nova's
    /// `_reclaim_queued_deletes`); how many it deleted. Nothing when soft
    /// delete is off.
    pub async fn reclaim(self: &Arc<Self>) -> Result<usize> {
        if !self.soft_delete_enabled() {
            return Ok(0);
        }
        let interval = self
            .compute
            .reclaim_instance_interval
            .min(crate::config::MAX_RECLAIM_INSTANCE_INTERVAL) as i64;
        let cutoff = db::timestamp(chrono::Utc::now() - chrono::Duration::seconds(interval));
        let rows = sqlx::query(
            "SELECT uuid, user_id, project_id FROM instances \
             WHERE deleted = 0 AND vm_state = $1 AND task_state IS NULL AND deleted_at < $2 \
             ORDER BY deleted_at",
        )
        .bind(vm::SOFT_DELETED)
        .bind(&cutoff)
        .fetch_all(self.db.pool())
        .await?;
        let mut reclaimed = 0;
        for row in rows {
            let uuid: String = row.try_get("uuid")?;
            let user_id: String = row.try_get("user_id")?;
            let project_id: String = row.try_get("project_id")?;
            // A periodic task acts for the owner, under a request id of its own.
            let request_id = format!("req-{}", Uuid::new_v4());
            let caller = Caller {
                user_id: &user_id,
                project_id: &project_id,
                request_id: &request_id,
            };
            // Judged again in the delete's transaction: a restore that came
            // in meanwhile wins.
            let deleted = self
                .delete_server_when(&uuid, &caller, |instance| {
                    instance.vm_state == vm::SOFT_DELETED
                        && instance.task_state.is_none()
                        && instance
                            .deleted_at
                            .as_deref()
                            .is_some_and(|at| at < cutoff.as_str())
                })
                .await;
            match deleted {
                Ok(true) => {
                    tracing::info!(instance = %uuid, "reclaimed a soft-deleted instance");
                    reclaimed += 1;
                }
                Ok(false) | Err(ConductorError::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(reclaimed)
    }

    /// Runs [`Conductor::reclaim`] every `reclaim_instance_interval` seconds
    /// until `shutdown` (at once returns when soft delete is off).
    pub async fn run_reclaimer(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        if !self.soft_delete_enabled() {
            return;
        }
        let interval = std::time::Duration::from_secs(self.compute.reclaim_instance_interval);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(interval) => {}
            }
            if let Err(error) = self.reclaim().await {
                tracing::error!(%error, "reclaiming soft-deleted instances failed");
            }
        }
    }
}
