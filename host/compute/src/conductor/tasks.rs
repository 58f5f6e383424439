//! The task queue: durable rows agents long-poll for, and a [`Notify`] per
//! host that wakes a waiting poll when work arrives.
//!
//! A *query* task (console output, the serial console's endpoint: see
//! `TaskAction::is_query`) is Nova's synchronous RPC `call`: it belongs to
//! no operation ([`QUERY_OPERATION`]), an API request enqueues it and waits
//! for its answer ([`wait_answer`], bounded), and nothing of the instance's
//! state changes when it completes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use novum_wire::{Task, TaskAction, TaskAnswer, TaskOutcome};
use sqlx::Row;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use novum_db::{self as db, Batch, Db, DbError, Tx};

/// Task row states.
pub mod state {
    /// Waiting for its agent.
    pub const QUEUED: &str = "queued";
    /// Handed to its agent, lease running.
    pub const LEASED: &str = "leased";
    /// Succeeded.
    pub const DONE: &str = "done";
    /// Failed (or timed out).
    pub const FAILED: &str = "failed";
    /// No longer wanted (its operation was superseded).
    pub const CANCELLED: &str = "cancelled";
}

/// The `operation_id` of a query task: it belongs to no operation.
pub const QUERY_OPERATION: &str = "";

/// How often a request waiting for a query's answer looks at its row even
/// when this controller saw no answer arrive (another controller may have
/// taken it).
const ANSWER_RECHECK: Duration = Duration::from_millis(250);

/// How often a controller looks in the database for hosts with offered
/// tasks that no wake-up announced (queued by another controller, or by
/// a path that does not wake, or leases that expired): see
/// [`TaskBoard::sweep`].
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(2);

/// Wakes the long polls of hosts, and closes them all at shutdown.
///
/// It also knows which hosts are *idle*: a poll found nothing offered to
/// them and no wake-up came since. A poll of an idle host does not touch
/// the database; [`TaskBoard::wake`] (after a task is queued on this
/// controller) and [`TaskBoard::sweep`] (every [`SWEEP_INTERVAL`], one
/// query for all hosts) end a host's idleness.
#[derive(Debug)]
pub struct TaskBoard {
    notifies: Mutex<HashMap<String, Arc<Notify>>>,
    /// Hosts with nothing offered, as far as this controller knows.
    idle: Mutex<HashSet<String>>,
    /// True once the controller shuts down: no task is handed out any more.
    closed: watch::Sender<bool>,
    /// Counts the query answers this controller received: requests waiting
    /// for one look at their row again when it moves.
    answers: watch::Sender<u64>,
}

impl Default for TaskBoard {
    fn default() -> Self {
        Self {
            notifies: Mutex::default(),
            idle: Mutex::default(),
            closed: watch::Sender::new(false),
            answers: watch::Sender::new(0),
        }
    }
}

impl TaskBoard {
    /// Hands out no more tasks: every long poll, waiting or to come, answers
    /// at once (the controller is shutting down; what is queued stays queued
    /// for the next start).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Whether [`TaskBoard::close`] was called.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Completes once the board is closed.
    pub async fn closed(&self) {
        let mut closed = self.closed.subscribe();
        let _ = closed.wait_for(|closed| *closed).await;
    }

    /// The notifier of `host`.
    pub fn notify_of(&self, host: &str) -> Arc<Notify> {
        let mut notifies = self.notifies.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(notifies.entry(host.to_string()).or_default())
    }

    /// Wakes `host`'s poll (or the next one), which looks in the database
    /// again.
    pub fn wake(&self, host: &str) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(host);
        self.notify_of(host).notify_one();
    }

    /// Whether a poll of `host` may skip the database: nothing was offered
    /// to it at its last look, and no wake-up came since.
    pub fn is_idle(&self, host: &str) -> bool {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(host)
    }

    /// Marks `host` idle, before a poll looks for its tasks: a wake-up
    /// while it looks ends the idleness again, so that none is lost.
    pub fn mark_idle(&self, host: &str) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(host.to_string());
    }

    /// Forgets that `host` is idle (its poll could not look).
    pub fn forget_idle(&self, host: &str) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(host);
    }

    /// Wakes every host the database offers tasks to (queued, or leased
    /// with an expired lease), in one query; answers how many it woke.
    pub async fn sweep(&self, db: &Db) -> Result<usize, DbError> {
        let hosts = offered_hosts(db).await?;
        for host in &hosts {
            self.wake(host);
        }
        Ok(hosts.len())
    }

    /// Tells the requests waiting for a query's answer that one came.
    pub fn answered(&self) {
        self.answers
            .send_modify(|count| *count = count.wrapping_add(1));
    }
}

/// How a query task ended, as [`wait_answer`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryEnd {
    /// The agent answered.
    Answered(TaskAnswer),
    /// The agent could not answer (the message says why).
    Failed(String),
    /// The task was cancelled (its instance is being deleted).
    Cancelled,
    /// No answer within the wait: the task is cancelled.
    TimedOut,
}

/// Enqueues the query `action` about `instance_uuid` for `host` (committed
/// at once) and wakes the host; returns the task id to wait for.
pub async fn enqueue_query(
    db: &Db,
    board: &TaskBoard,
    host: &str,
    instance_uuid: &str,
    action: &TaskAction,
    request_id: &str,
) -> Result<String, DbError> {
    let mut tx = db.begin().await?;
    let id = enqueue(
        &mut tx,
        host,
        instance_uuid,
        QUERY_OPERATION,
        action,
        request_id,
    )
    .await?;
    tx.commit().await?;
    board.wake(host);
    Ok(id)
}

/// Waits (at most `timeout`) for the query task `task_id` to end. A query
/// not answered in time is cancelled, so that a late agent's answer is
/// dropped.
pub async fn wait_answer(
    db: &Db,
    board: &TaskBoard,
    task_id: &str,
    timeout: Duration,
) -> Result<QueryEnd, DbError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut answers = board.answers.subscribe();
    loop {
        answers.mark_unchanged();
        if let Some(end) = query_end(db, task_id).await? {
            return Ok(end);
        }
        let recheck = (tokio::time::Instant::now() + ANSWER_RECHECK).min(deadline);
        tokio::select! {
            _ = answers.changed() => {}
            () = tokio::time::sleep_until(recheck) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            let cancelled = sqlx::query(
                "UPDATE tasks SET state = $1, updated_at = $2 WHERE id = $3 AND state IN ($4, $5)",
            )
            .bind(state::CANCELLED)
            .bind(db::now())
            .bind(task_id)
            .bind(state::QUEUED)
            .bind(state::LEASED)
            .execute(db.pool())
            .await?
            .rows_affected();
            if cancelled > 0 {
                return Ok(QueryEnd::TimedOut);
            }
            // It ended just now.
            return Ok(query_end(db, task_id).await?.unwrap_or(QueryEnd::TimedOut));
        }
    }
}

/// How the query task `task_id` ended; `None` while it runs.
async fn query_end(db: &Db, task_id: &str) -> Result<Option<QueryEnd>, DbError> {
    let row = sqlx::query("SELECT state, result, answer FROM tasks WHERE id = $1")
        .bind(task_id)
        .fetch_optional(db.pool())
        .await?;
    let Some(row) = row else {
        return Ok(Some(QueryEnd::Cancelled));
    };
    let task_state: String = row.try_get("state")?;
    let result: Option<String> = row.try_get("result")?;
    let answer: Option<String> = row.try_get("answer")?;
    let outcome = result.and_then(|json| serde_json::from_str::<TaskOutcome>(&json).ok());
    Ok(match task_state.as_str() {
        state::QUEUED | state::LEASED => None,
        state::CANCELLED => Some(QueryEnd::Cancelled),
        _ => Some(
            match (
                outcome,
                answer.and_then(|json| serde_json::from_str::<TaskAnswer>(&json).ok()),
            ) {
                (Some(TaskOutcome::Succeeded { .. }), Some(answer)) => QueryEnd::Answered(answer),
                (Some(TaskOutcome::Failed { message, .. }), _) => QueryEnd::Failed(message),
                _ => QueryEnd::Failed("the compute agent's answer could not be read".to_string()),
            },
        ),
    })
}

/// Inserts a queued task in `tx`; returns its id. Wake the host after commit.
pub async fn enqueue(
    tx: &mut Tx,
    host: &str,
    instance_uuid: &str,
    operation_id: &str,
    action: &TaskAction,
    request_id: &str,
) -> Result<String, DbError> {
    let mut batch = Batch::new();
    let id = enqueue_into(
        &mut batch,
        host,
        instance_uuid,
        operation_id,
        action,
        request_id,
    )?;
    batch.run(tx).await?;
    Ok(id)
}

/// [`enqueue`], written with `batch`'s other writes.
pub fn enqueue_into(
    batch: &mut Batch,
    host: &str,
    instance_uuid: &str,
    operation_id: &str,
    action: &TaskAction,
    request_id: &str,
) -> Result<String, DbError> {
    let id = Uuid::new_v4().to_string();
    let action = serde_json::to_string(action)
        .map_err(|error| DbError::Query(sqlx::Error::Encode(error.into())))?;
    batch.push(
        sqlx::query(
            "INSERT INTO tasks (id, host, instance_uuid, operation_id, action, request_id, state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(&id)
        .bind(host)
        .bind(instance_uuid)
        .bind(operation_id)
        .bind(action)
        .bind(request_id)
        .bind(state::QUEUED)
        .bind(db::now()),
    )?;
    Ok(id)
}

/// Whether `host` holds a task (queued or leased) whose action names image
/// `image_id` (the image it boots, or its `kernel_id`/`ramdisk_id`): what
/// entitles an agent to download the image's data. `image_id` must not
/// hold LIKE wildcards (`%`, `_`); an id that does is named by no task.
pub async fn names_image(db: &Db, host: &str, image_id: &str) -> Result<bool, DbError> {
    if image_id.is_empty() || image_id.contains(['%', '_', '\\', '"']) {
        return Ok(false);
    }
    let row = sqlx::query(
        "SELECT id FROM tasks WHERE host = $1 AND state IN ($2, $3) AND action LIKE $4 LIMIT 1",
    )
    .bind(host)
    .bind(state::QUEUED)
    .bind(state::LEASED)
    .bind(format!("%\"{image_id}\"%"))
    .fetch_optional(db.pool())
    .await?;
    Ok(row.is_some())
}

/// The instance whose queued or leased [`TaskAction::Snapshot`] task on
/// `host` fills image `image_id`: what entitles an agent to upload the
/// image's data.
pub async fn snapshot_instance(
    db: &Db,
    host: &str,
    image_id: &str,
) -> Result<Option<String>, DbError> {
    let rows = sqlx::query(
        "SELECT instance_uuid, action FROM tasks WHERE host = $1 AND state IN ($2, $3) AND action LIKE $4",
    )
    .bind(host)
    .bind(state::QUEUED)
    .bind(state::LEASED)
    .bind("%\"snapshot\"%")
    .fetch_all(db.pool())
    .await?;
    for row in rows {
        let action: String = row.try_get("action")?;
        if let Ok(TaskAction::Snapshot {
            image_id: named, ..
        }) = serde_json::from_str(&action)
            && named == image_id
        {
            return Ok(Some(row.try_get("instance_uuid")?));
        }
    }
    Ok(None)
}

/// The hosts with a task offered (queued, or leased with an expired
/// lease), in one query over the `tasks_state_lease` index.
pub async fn offered_hosts(db: &Db) -> Result<Vec<String>, DbError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT host FROM tasks WHERE state = $1 OR (state = $2 AND leased_until < $3)",
    )
    .bind(state::QUEUED)
    .bind(state::LEASED)
    .bind(db::now())
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(|(host,)| host).collect())
}

/// Leases every task offered to `host` (queued, or leased with an expired
/// lease), oldest first. A read looks first: when nothing is offered,
/// nothing is written and no lock is taken.
pub async fn lease(db: &Db, host: &str, lease: Duration) -> Result<Vec<Task>, DbError> {
    let now = chrono::Utc::now();
    let until =
        db::timestamp(now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX));
    let now = db::timestamp(now);
    let offered = sqlx::query(
        "SELECT id FROM tasks WHERE host = $1 AND (state = $2 OR (state = $3 AND leased_until < $4)) LIMIT 1",
    )
    .bind(host)
    .bind(state::QUEUED)
    .bind(state::LEASED)
    .bind(&now)
    .fetch_optional(db.pool())
    .await?;
    if offered.is_none() {
        return Ok(Vec::new());
    }
    let mut tx = db.begin_grouped(&format!("tasks:{host}")).await?;
    // The leased tasks come back from the lease itself, in the queue's
    // order once sorted.
    let mut rows = sqlx::query(
        "UPDATE tasks SET state = $1, leased_until = $2, offers = offers + 1, updated_at = $3 \
         WHERE host = $4 AND (state = $5 OR (state = $1 AND leased_until < $3)) \
         RETURNING id, instance_uuid, action, request_id, created_at",
    )
    .bind(state::LEASED)
    .bind(&until)
    .bind(&now)
    .bind(host)
    .bind(state::QUEUED)
    .fetch_all(&mut *tx)
    .await?;
    rows.sort_by_cached_key(|row| {
        (
            row.try_get::<String, _>("created_at").unwrap_or_default(),
            row.try_get::<String, _>("id").unwrap_or_default(),
        )
    });
    tx.commit().await?;
    let mut tasks = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get("id")?;
        let instance: String = row.try_get("instance_uuid")?;
        let action: String = row.try_get("action")?;
        match (
            Uuid::parse_str(&id),
            Uuid::parse_str(&instance),
            serde_json::from_str(&action),
        ) {
            (Ok(id), Ok(instance_uuid), Ok(action)) => tasks.push(Task {
                id,
                instance_uuid,
                request_id: row.try_get("request_id")?,
                action,
            }),
            _ => tracing::error!(task = %id, "malformed task row skipped"),
        }
    }
    Ok(tasks)
}

/// Offers `host`'s leased tasks again (its agent restarted, or the controller did).
pub async fn requeue_leased(db: &Db, host: Option<&str>) -> Result<u64, DbError> {
    let query = match host {
        Some(_) => {
            "UPDATE tasks SET state = $1, leased_until = NULL, updated_at = $2 WHERE state = $3 AND host = $4"
        }
        None => {
            "UPDATE tasks SET state = $1, leased_until = NULL, updated_at = $2 WHERE state = $3"
        }
    };
    let mut query = sqlx::query(query)
        .bind(state::QUEUED)
        .bind(db::now())
        .bind(state::LEASED);
    if let Some(host) = host {
        query = query.bind(host);
    }
    Ok(query.execute(db.pool()).await?.rows_affected())
}

/// Cancels the unfinished tasks of `instance_uuid` in `tx`.
pub async fn cancel_for_instance(tx: &mut Tx, instance_uuid: &str) -> Result<(), DbError> {
    sqlx::query("UPDATE tasks SET state = $1, updated_at = $2 WHERE instance_uuid = $3 AND state IN ($4, $5)")
        .bind(state::CANCELLED)
        .bind(db::now())
        .bind(instance_uuid)
        .bind(state::QUEUED)
        .bind(state::LEASED)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
