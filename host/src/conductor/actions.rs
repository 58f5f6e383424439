//! Instance actions and their events (`os-instance-actions`), recorded for
//! every operation on an instance.

use uuid::Uuid;

use crate::db::{self, DbError, Tx};

/// Records the start of action `action` on `instance_uuid`; returns its id.
pub async fn start_action(
    tx: &mut Tx,
    instance_uuid: &str,
    action: &str,
    request_id: &str,
    user_id: &str,
    project_id: &str,
) -> Result<String, DbError> {
    let id = Uuid::new_v4().to_string();
    let now = db::now();
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
    .bind(now)
    .execute(&mut **tx)
    .await?;
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
    sqlx::query(
        "INSERT INTO instance_action_events (id, action_id, event, start_time, host) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(action_id)
    .bind(event)
    .bind(&now)
    .bind(host)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE instance_actions SET updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(action_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
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
    let now = db::now();
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
        .bind(&now)
        .bind(result)
        .bind(error)
        .bind(action_id);
    if let Some(event) = event {
        query = query.bind(event);
    }
    query.execute(&mut **tx).await?;
    let message = error.map(|_| "Error");
    sqlx::query("UPDATE instance_actions SET updated_at = $1, message = COALESCE($2, message) WHERE id = $3")
        .bind(now)
        .bind(message)
        .bind(action_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
