//! Several controllers on one database (PostgreSQL): each serves the API,
//! schedules, completes the tasks its agents report; what one of them held
//! only in memory when it died is adopted by the others.
//!
//! - Every controller has a row in `controllers` (a fresh id per start,
//!   and its `host`, which must be its own), renewed every [`RENEW`] to
//!   expire [`CONTROLLER_TTL`] later, deleted at a clean stop. A controller
//!   whose row expired is dead; so is, to a controller, an earlier run of
//!   itself (a row under its own host name).
//! - The one piece of a workflow that lives in a controller's memory is an
//!   operation's scheduling step (a build, a reschedule, a resize, an
//!   unshelve waiting for a host): every other step waits for an agent
//!   task, a durable row any controller completes. A controller takes an
//!   operation's scheduling step by setting its `owner`, conditionally
//!   (unowned, or owned by itself, or by a dead controller), before it
//!   schedules; a step handed back (a reschedule) is unowned again.
//! - Every [`RENEW`], each controller adopts the scheduling steps whose
//!   owner is dead, and those nobody took for [`ADOPT_UNOWNED_AFTER`] (their
//!   controller died between the commit that made them and the take).
//!   Should two controllers ever schedule one operation (an owner thought
//!   dead that was only slow), the claim's conditional move of the step
//!   lets one win; the other's failure finds the step moved on and records
//!   nothing.
//! - A task queued by one controller for an agent whose long poll waits on
//!   another: while other controllers live, each looks every
//!   [`TASK_WATCH`] for tasks queued since, and wakes its own polls.
//! - A controller that dies may have leased tasks in a long poll whose
//!   answer never left it: when a controller sees another one go, the
//!   leased tasks are offered again (at once, not after their lease). An
//!   agent that does hold one ignores the offer (it runs a task once, until
//!   it reported it); one that never got it runs it now.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use sqlx::Row;

use super::tasks::state as task_state;
use super::{Conductor, Result, op_state, step};
use novum_db as db;

/// How long a controller's row lives without renewal.
pub const CONTROLLER_TTL: Duration = Duration::from_secs(6);
/// How often a controller renews its row (and adopts orphans).
pub const RENEW: Duration = Duration::from_secs(2);
/// How long an unowned scheduling step waits before any controller adopts it.
pub const ADOPT_UNOWNED_AFTER: Duration = Duration::from_secs(10);
/// How often, while other controllers live, the tasks queued lately are
/// looked for (the latency a cross-controller task adds at most).
pub const TASK_WATCH: Duration = Duration::from_millis(250);
/// How far back the task watch looks (what it saw in that window it
/// remembers, so each queued task wakes its host once).
const TASK_WATCH_WINDOW: Duration = Duration::from_secs(10);

fn at(offset: chrono::Duration) -> String {
    db::timestamp(chrono::Utc::now() + offset)
}

fn duration(value: Duration) -> chrono::Duration {
    chrono::Duration::from_std(value).unwrap_or(chrono::Duration::MAX)
}

/// Marks an operation's scheduling step as running in this process; the
/// mark goes when it is dropped.
pub(super) struct SchedulingMark {
    conductor: Arc<Conductor>,
    id: String,
}

impl SchedulingMark {
    /// The operation marked.
    pub(super) fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for SchedulingMark {
    fn drop(&mut self) {
        self.conductor
            .scheduling
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl Conductor {
    /// This controller's id among the controllers sharing the database
    /// (fresh at every start).
    pub fn controller_id(&self) -> &str {
        &self.controller_id
    }

    /// Writes (or renews) this controller's row in `controllers`.
    pub async fn renew_controller(&self) -> Result<()> {
        let expires = at(duration(CONTROLLER_TTL));
        let renewed = sqlx::query("UPDATE controllers SET expires_at = $1 WHERE id = $2")
            .bind(&expires)
            .bind(&self.controller_id)
            .execute(self.db.pool())
            .await?
            .rows_affected();
        if renewed == 0 {
            sqlx::query(
                "INSERT INTO controllers (id, host, started_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&self.controller_id)
            .bind(&self.host)
            .bind(db::now())
            .bind(&expires)
            .execute(self.db.pool())
            .await?;
        }
        Ok(())
    }

    /// Deletes this controller's row (a clean stop): the others adopt what
    /// it still owned at once. Dead controllers' rows expired a while ago
    /// go too.
    pub async fn deregister_controller(&self) -> Result<()> {
        sqlx::query("DELETE FROM controllers WHERE id = $1 OR expires_at < $2")
            .bind(&self.controller_id)
            .bind(at(-chrono::Duration::hours(1)))
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// How many other controllers are alive on this database.
    pub async fn live_peers(&self) -> Result<i64> {
        Ok(self.live_peer_ids().await?.len() as i64)
    }

    /// The ids of the other controllers alive on this database.
    async fn live_peer_ids(&self) -> Result<HashSet<String>> {
        sqlx::query("SELECT id FROM controllers WHERE id <> $1 AND expires_at > $2")
            .bind(&self.controller_id)
            .bind(db::now())
            .fetch_all(self.db.pool())
            .await?
            .iter()
            .map(|row| Ok(row.try_get::<String, _>("id")?))
            .collect()
    }

    /// Another controller went (`gone`, dead or stopped): the tasks leased
    /// in a long poll it may never have answered are offered again, and
    /// this controller's polls are woken for them.
    async fn peer_gone(&self, gone: &str, seen: &mut HashMap<String, String>) -> Result<()> {
        let offered = super::tasks::requeue_leased(&self.db, None).await?;
        tracing::warn!(
            controller = gone,
            offered_again = offered,
            "another controller is gone: leased tasks offered again"
        );
        self.watch_tasks(seen).await
    }

    /// How many other controllers are alive under another host name (a
    /// row under this controller's own name is a previous run of it, dead
    /// or about to be: each controller needs its own `host`).
    pub async fn live_peer_hosts(&self) -> Result<i64> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM controllers WHERE id <> $1 AND host <> $2 AND expires_at > $3",
        )
        .bind(&self.controller_id)
        .bind(&self.host)
        .bind(db::now())
        .fetch_one(self.db.pool())
        .await?
        .try_get("n")?)
    }

    /// Marks the scheduling step of operation `id` as this process's
    /// (until the mark drops): `None` when it is already. Enough to take
    /// an operation this controller inserted as its owner (a create it
    /// accepted); [`Conductor::adopt_orphans`] leaves a marked step alone.
    pub(super) fn mark_scheduling(self: &Arc<Self>, id: &str) -> Option<SchedulingMark> {
        self.scheduling
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_string())
            .then(|| SchedulingMark {
                conductor: Arc::clone(self),
                id: id.to_string(),
            })
    }

    /// Takes the scheduling step of operation `id` for this controller:
    /// `None` when it is not (or no longer) waiting for a host, when it runs
    /// in this process already, or when another live controller owns it.
    pub(super) async fn take_scheduling(
        self: &Arc<Self>,
        id: &str,
    ) -> Result<Option<SchedulingMark>> {
        let Some(mark) = self.mark_scheduling(id) else {
            return Ok(None);
        };
        let now = db::now();
        let taken = sqlx::query(
            "UPDATE conductor_operations SET owner = $1, updated_at = $2 \
             WHERE id = $3 AND state = $4 AND step = $5 AND (owner IS NULL OR owner = $1 \
             OR owner NOT IN (SELECT id FROM controllers WHERE expires_at > $2 AND host <> $6))",
        )
        .bind(&self.controller_id)
        .bind(&now)
        .bind(id)
        .bind(op_state::RUNNING)
        .bind(step::SCHEDULE)
        .bind(&self.host)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        Ok((taken == 1).then_some(mark))
    }

    /// The scheduling steps this controller should adopt: owned by a dead
    /// controller, unowned for [`ADOPT_UNOWNED_AFTER`], or its own but not
    /// running here for as long. Each is scheduled (taken first, see
    /// [`Conductor::take_scheduling`]); returns how many were started.
    pub async fn adopt_orphans(self: &Arc<Self>) -> Result<usize> {
        let now = db::now();
        let stale = at(-duration(ADOPT_UNOWNED_AFTER));
        let rows = sqlx::query(
            "SELECT id, kind FROM conductor_operations WHERE state = $1 AND step = $2 AND ( \
               ((owner IS NULL OR owner = $3) AND updated_at < $4) \
               OR (owner <> $3 AND owner NOT IN (SELECT id FROM controllers WHERE expires_at > $5 AND host <> $6))) \
             ORDER BY created_at",
        )
        .bind(op_state::RUNNING)
        .bind(step::SCHEDULE)
        .bind(&self.controller_id)
        .bind(&stale)
        .bind(&now)
        .bind(&self.host)
        .fetch_all(self.db.pool())
        .await?;
        let mut started = 0;
        for row in rows {
            let id: String = row.try_get("id")?;
            let kind: String = row.try_get("kind")?;
            if self
                .scheduling
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&id)
            {
                continue;
            }
            tracing::info!(operation = %id, %kind, "adopting a scheduling step nobody runs");
            started += 1;
            self.spawn_scheduling(&kind, id);
        }
        Ok(started)
    }

    /// Wakes this controller's long polls of the hosts that got a task
    /// queued since the last look (by any controller); `seen` remembers
    /// what was woken for within the window.
    async fn watch_tasks(&self, seen: &mut HashMap<String, String>) -> Result<()> {
        let since = at(-duration(TASK_WATCH_WINDOW));
        let rows = sqlx::query(
            "SELECT id, host, updated_at FROM tasks WHERE state = $1 AND updated_at > $2",
        )
        .bind(task_state::QUEUED)
        .bind(&since)
        .fetch_all(self.db.pool())
        .await?;
        for row in rows {
            let id: String = row.try_get("id")?;
            let host: String = row.try_get("host")?;
            let updated: String = row.try_get("updated_at")?;
            if seen.get(&id) != Some(&updated) {
                seen.insert(id, updated);
                self.board.wake(&host);
            }
        }
        seen.retain(|_, updated| *updated > since);
        Ok(())
    }

    /// Keeps this controller's row alive, adopts orphaned scheduling steps
    /// and, while other controllers live, wakes polls for the tasks they
    /// queue; until `shutdown`, then deletes the row.
    pub async fn run_cluster(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut renew = tokio::time::interval(RENEW);
        let mut watch = tokio::time::interval(TASK_WATCH);
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut peers: HashSet<String> = HashSet::new();
        let mut seen = HashMap::new();
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = renew.tick() => {
                    if let Err(error) = self.renew_controller().await {
                        tracing::warn!(%error, "cannot renew this controller's row");
                        continue;
                    }
                    match self.live_peer_ids().await {
                        Ok(live) => {
                            if live != peers {
                                tracing::info!(other_controllers = live.len(), "controllers on this database changed");
                            }
                            for gone in peers.difference(&live) {
                                if let Err(error) = self.peer_gone(gone, &mut seen).await {
                                    tracing::warn!(%error, "cannot offer a gone controller's tasks again");
                                }
                            }
                            peers = live;
                        }
                        Err(error) => tracing::warn!(%error, "cannot list the other controllers"),
                    }
                    if let Err(error) = self.adopt_orphans().await {
                        tracing::warn!(%error, "cannot adopt orphaned operations");
                    }
                }
                _ = watch.tick(), if !peers.is_empty() => {
                    if let Err(error) = self.watch_tasks(&mut seen).await {
                        tracing::warn!(%error, "cannot look for tasks other controllers queued");
                    }
                }
            }
        }
        if let Err(error) = self.deregister_controller().await {
            tracing::warn!(%error, "cannot remove this controller's row");
        }
    }
}
