//! Instance actions and their events (`os-instance-actions`), recorded for
//! every operation on an instance.

use uuid::Uuid;

use novum_db::{self as db, Batch, DbError, Tx};

/// Records the start of action `action` on `instance_uuid`; returns its id.
pub async fn start_action(
    tx: &mut Tx,
    instance_uuid: &str,
    action: &str,
    request_id: &str,
    user_id: &str,
    project_id: &str,
) -> Result<String, DbError> {
    let mut batch = Batch::new();
    let id = start_action_into(
        &mut batch,
        instance_uuid,
        action,
        request_id,
        user_id,
        project_id,
    )?;
    batch.run(tx).await?;
    Ok(id)
}

/// [`start_action`], written with `batch`'s other writes.
pub fn start_action_into(
    batch: &mut Batch,
    instance_uuid: &str,
    action: &str,
    request_id: &str,
    user_id: &str,
    project_id: &str,
) -> Result<String, DbError> {
    let id = Uuid::new_v4().to_string();
    batch.push(
        sqlx::query(
            "INSERT INTO instance_actions (id, instance_uuid, action, request_id, user_id, project_id, start_time, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(&id)
        .bind(instance_uuid)
        .bind(action)
        .bind(request_id)
        .bind(user_id)
        .bind(project_id)
        .bind(db::now()),
    )?;
    Ok(id)
}

/// Records the start of event `event` of action `action_id`.
pub async fn start_event(
    tx: &mut Tx,
    action_id: &str,
    event: &str,
    host: Option<&str>,
) -> Result<(), DbError> {
    let now = db::now();
    let mut batch = Batch::new();
    insert_event(&mut batch, action_id, event, host, &now)?;
    touch_action(&mut batch, action_id, &now)?;
    batch.run(tx).await
}

/// Records the start of event `event` of action `action_id`, which
/// [`start_action_into`] has just added to `batch` (so its `updated_at` is
/// now already: only the event is written).
pub fn start_first_event_into(
    batch: &mut Batch,
    action_id: &str,
    event: &str,
    host: Option<&str>,
) -> Result<(), DbError> {
    insert_event(batch, action_id, event, host, &db::now())
}

/// Finishes event `finished` of action `action_id` (successfully) and
/// starts event `started`: one step of an action handing over to the next,
/// the action's `updated_at` written once. Written with `batch`'s other
/// writes.
pub fn finish_and_start_event_into(
    batch: &mut Batch,
    action_id: &str,
    finished: &str,
    started: &str,
    host: Option<&str>,
) -> Result<(), DbError> {
    let now = db::now();
    finish_matching(batch, action_id, Some(finished), None, &now)?;
    insert_event(batch, action_id, started, host, &now)?;
    touch_action(batch, action_id, &now)
}

/// Adds event `event` of action `action_id`, started at `now`.
fn insert_event(
    batch: &mut Batch,
    action_id: &str,
    event: &str,
    host: Option<&str>,
    now: &str,
) -> Result<(), DbError> {
    batch.push(
        sqlx::query(
            "INSERT INTO instance_action_events (id, action_id, event, start_time, host) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(action_id)
        .bind(event)
        .bind(now)
        .bind(host),
    )
}

/// Sets action `action_id`'s `updated_at` to `now`.
fn touch_action(batch: &mut Batch, action_id: &str, now: &str) -> Result<(), DbError> {
    batch.push(
        sqlx::query("UPDATE instance_actions SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(action_id),
    )
}

/// Finishes the unfinished events of action `action_id` (all of them, or
/// those named `event`): `Success`, or `Error` with the error as the event's
/// `traceback` (shown to admins) and `details` (shown to everyone from
/// microversion 2.84), as Nova records a failed compute method.
pub async fn finish_events(
    tx: &mut Tx,
    action_id: &str,
    event: Option<&str>,
    error: Option<&str>,
) -> Result<(), DbError> {
    let mut batch = Batch::new();
    finish_events_into(&mut batch, action_id, event, error)?;
    batch.run(tx).await
}

/// [`finish_events`], written with `batch`'s other writes.
pub fn finish_events_into(
    batch: &mut Batch,
    action_id: &str,
    event: Option<&str>,
    error: Option<&str>,
) -> Result<(), DbError> {
    let now = db::now();
    finish_matching(batch, action_id, event, error, &now)?;
    let message = error.map(|_| "Error");
    batch.push(
        sqlx::query("UPDATE instance_actions SET updated_at = $1, message = COALESCE($2, message) WHERE id = $3")
            .bind(now)
            .bind(message)
            .bind(action_id),
    )
}

/// Finishes the unfinished events of action `action_id` (all, or those
/// named `event`) at `now`, as [`finish_events`] says; leaves the action's
/// own row to the caller.
fn finish_matching(
    batch: &mut Batch,
    action_id: &str,
    event: Option<&str>,
    error: Option<&str>,
    now: &str,
) -> Result<(), DbError> {
    let result = if error.is_some() { "Error" } else { "Success" };
    let query = match event {
        Some(_) => {
            "UPDATE instance_action_events SET finish_time = $1, result = $2, traceback = $3, details = $3 \
                    WHERE action_id = $4 AND finish_time IS NULL AND event = $5"
        }
        None => {
            "UPDATE instance_action_events SET finish_time = $1, result = $2, traceback = $3, details = $3 \
                 WHERE action_id = $4 AND finish_time IS NULL"
        }
    };
    let mut query = sqlx::query(query)
        .bind(now)
        .bind(result)
        .bind(error)
        .bind(action_id);
    if let Some(event) = event {
        query = query.bind(event);
    }
    batch.push(query)
}

/// One recorded action on an instance (`os-instance-actions`).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct InstanceAction {
    /// Row id (what its events refer to).
    pub id: String,
    /// Action name (`create`, `stop`, `resize`, …).
    pub action: String,
    /// The instance.
    pub instance_uuid: String,
    /// The API request that started it.
    pub request_id: String,
    /// Who started it.
    pub user_id: String,
    /// Their project.
    pub project_id: String,
    /// When it started (stored timestamp).
    pub start_time: String,
    /// When it last changed (stored timestamp).
    pub updated_at: String,
    /// `Error` once an event failed.
    pub message: Option<String>,
}

/// One event of an action.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct InstanceActionEvent {
    /// Event name (`compute_stop_instance`, …).
    pub event: String,
    /// When it started (stored timestamp).
    pub start_time: String,
    /// When it finished, if it has.
    pub finish_time: Option<String>,
    /// `Success` or `Error` once finished.
    pub result: Option<String>,
    /// The error, for admins.
    pub traceback: Option<String>,
    /// The error, for everyone (2.84).
    pub details: Option<String>,
    /// The host it ran on.
    pub host: Option<String>,
}

/// The actions recorded on `instance_uuid`, newest first.
pub async fn list(db: &db::Db, instance_uuid: &str) -> Result<Vec<InstanceAction>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, action, instance_uuid, request_id, user_id, project_id, start_time, updated_at, message \
         FROM instance_actions WHERE instance_uuid = $1 ORDER BY start_time DESC, id DESC",
    )
    .bind(instance_uuid)
    .fetch_all(db.pool())
    .await?)
}

/// The newest action of request `request_id` on `instance_uuid`.
pub async fn find(
    db: &db::Db,
    instance_uuid: &str,
    request_id: &str,
) -> Result<Option<InstanceAction>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, action, instance_uuid, request_id, user_id, project_id, start_time, updated_at, message \
         FROM instance_actions WHERE instance_uuid = $1 AND request_id = $2 ORDER BY start_time DESC",
    )
    .bind(instance_uuid)
    .bind(request_id)
    .fetch_optional(db.pool())
    .await?)
}

/// The events of action `action_id`, oldest first.
pub async fn events(db: &db::Db, action_id: &str) -> Result<Vec<InstanceActionEvent>, DbError> {
    Ok(sqlx::query_as(
        "SELECT event, start_time, finish_time, result, traceback, details, host \
         FROM instance_action_events WHERE action_id = $1 ORDER BY start_time",
    )
    .bind(action_id)
    .fetch_all(db.pool())
    .await?)
}
