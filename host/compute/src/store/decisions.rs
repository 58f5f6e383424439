//! The decision log's table (`scheduling_decisions`, migration 0109): every
//! scheduling decision as JSON ([`novum_scheduler::Decision`]), the newest
//! kept up to `[scheduler] decision_log_size` for every controller sharing
//! the database. Written in batches by the log's writer
//! ([`crate::conductor::decisions`]), read by the decisions API. Migration
//! 0111 adds `inputs`: what a replay needs, on the newest
//! `[scheduler] decision_replay_size` rows only.

use sqlx::Row as _;

use novum_db::{Db, DbError};
use novum_scheduler::Decision;

/// A decision as stored: its row id, who decided it, and the record.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredDecision {
    /// Row id (increasing; the list's marker).
    pub id: i64,
    /// The controller that decided it.
    pub controller: String,
    /// The project whose request it was.
    pub project_id: String,
    /// The decision.
    pub decision: Decision,
}

/// A row of the list: what identifies a decision, without its record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionEntry {
    /// Row id.
    pub id: i64,
    /// The API request it served.
    pub request_id: String,
    /// The instance it placed (or failed to).
    pub instance_uuid: Option<String>,
    /// The project whose request it was.
    pub project_id: String,
    /// `build`, `resize` or `unshelve`.
    pub purpose: String,
    /// `placed`, `no_valid_host` or `error`.
    pub outcome: String,
    /// The controller that decided it.
    pub controller: String,
    /// When.
    pub decided_at: String,
}

/// Writes `decisions` (decided by `controller`) in one transaction, their
/// inputs not kept yet ([`attach_inputs`]), then removes all but the newest
/// `keep` rows of the table. The rows' ids, in order.
pub async fn insert_and_trim(
    db: &Db,
    controller: &str,
    decisions: &[Decision],
    keep: u64,
) -> Result<Vec<i64>, DbError> {
    const COLUMNS: usize = 8;
    let mut tx = db.begin_grouped_plain().await?;
    let mut ids = Vec::with_capacity(decisions.len());
    if !decisions.is_empty() {
        // One statement for the batch (one round trip, not one a row). Its
        // ids come back in no set order; ids increase in the order the rows
        // are inserted, so sorted they are the decisions' in order.
        let rows = novum_db::clauses::row_placeholders(decisions.len(), COLUMNS);
        let sql = format!(
            "INSERT INTO scheduling_decisions \
             (request_id, instance_uuid, project_id, purpose, outcome, controller, decided_at, record) \
             VALUES {rows} RETURNING id"
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for decision in decisions {
            let record = serde_json::to_string(decision)
                .map_err(|error| DbError::Query(sqlx::Error::Encode(Box::new(error))))?;
            insert = insert
                .bind(&decision.request_id)
                .bind(decision.instance_uuids.first())
                .bind(&decision.request.project_id)
                .bind(&decision.purpose)
                .bind(decision.outcome.label())
                .bind(controller)
                .bind(&decision.decided_at)
                .bind(record);
        }
        for row in insert.fetch_all(&mut *tx).await? {
            ids.push(row.try_get::<i64, _>("id")?);
        }
        ids.sort_unstable();
    }
    let mut last_writes = novum_db::Batch::new();
    trim_into(&mut last_writes, keep)?;
    tx.commit_with(last_writes).await?;
    Ok(ids)
}

/// Keeps `inputs` (encoded, see
/// [`novum_scheduler::whatif::DecisionInputs::encode`]) on decision row
/// `id`, if it is still there, and forgets the inputs of all but the newest
/// `keep_inputs` rows that have any.
pub async fn attach_inputs(
    db: &Db,
    id: i64,
    inputs: &str,
    keep_inputs: u64,
) -> Result<(), DbError> {
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE scheduling_decisions SET inputs = $1 WHERE id = $2")
        .bind(inputs)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    trim_inputs(&mut tx, keep_inputs).await?;
    tx.commit().await?;
    Ok(())
}

/// Removes all but the newest `keep` decisions (a statement added to
/// `writes`).
fn trim_into(writes: &mut novum_db::Batch, keep: u64) -> Result<(), DbError> {
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    if keep == 0 {
        return writes.push(sqlx::query("DELETE FROM scheduling_decisions"));
    }
    // The oldest row kept is the keep-th newest; when there are fewer rows
    // the subquery is NULL and nothing goes.
    writes.push(
        sqlx::query(
            "DELETE FROM scheduling_decisions WHERE id < \
             (SELECT id FROM scheduling_decisions ORDER BY id DESC LIMIT 1 OFFSET $1)",
        )
        .bind(keep - 1),
    )
}

/// Forgets the inputs of all but the newest `keep` decisions that have any.
async fn trim_inputs(tx: &mut novum_db::Tx, keep: u64) -> Result<(), DbError> {
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    if keep == 0 {
        sqlx::query("UPDATE scheduling_decisions SET inputs = NULL WHERE inputs IS NOT NULL")
            .execute(&mut **tx)
            .await?;
        return Ok(());
    }
    sqlx::query(
        "UPDATE scheduling_decisions SET inputs = NULL WHERE inputs IS NOT NULL AND id < \
         (SELECT id FROM scheduling_decisions WHERE inputs IS NOT NULL \
          ORDER BY id DESC LIMIT 1 OFFSET $1)",
    )
    .bind(keep - 1)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The kept inputs of decision row `id` (`None`: not kept, or gone).
pub async fn inputs(db: &Db, id: i64) -> Result<Option<String>, DbError> {
    Ok(
        sqlx::query("SELECT inputs FROM scheduling_decisions WHERE id = $1")
            .bind(id)
            .fetch_optional(db.pool())
            .await?
            .map(|row| row.try_get::<Option<String>, _>("inputs"))
            .transpose()?
            .flatten(),
    )
}

fn stored(row: &sqlx::any::AnyRow) -> Result<StoredDecision, DbError> {
    let record: String = row.try_get("record")?;
    let decision = serde_json::from_str(&record)
        .map_err(|error| DbError::Query(sqlx::Error::Decode(Box::new(error))))?;
    Ok(StoredDecision {
        id: row.try_get("id")?,
        controller: row.try_get("controller")?,
        project_id: row.try_get("project_id")?,
        decision,
    })
}

/// Every decision kept for `request_id`, oldest first (a request can have
/// several: one per server of a multi-create, per reschedule, per round
/// after lost claims).
pub async fn for_request(db: &Db, request_id: &str) -> Result<Vec<StoredDecision>, DbError> {
    let rows = sqlx::query(
        "SELECT id, controller, project_id, record FROM scheduling_decisions \
         WHERE request_id = $1 ORDER BY id",
    )
    .bind(request_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(stored).collect()
}

/// A page of decisions, newest first: at most `limit`, older than the row
/// `marker` when given.
pub async fn page(db: &Db, limit: i64, marker: Option<i64>) -> Result<Vec<DecisionEntry>, DbError> {
    let rows = sqlx::query(
        "SELECT id, request_id, instance_uuid, project_id, purpose, outcome, controller, decided_at \
         FROM scheduling_decisions WHERE id < $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(marker.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(DecisionEntry {
                id: row.try_get("id")?,
                request_id: row.try_get("request_id")?,
                instance_uuid: row.try_get("instance_uuid")?,
                project_id: row.try_get("project_id")?,
                purpose: row.try_get("purpose")?,
                outcome: row.try_get("outcome")?,
                controller: row.try_get("controller")?,
                decided_at: row.try_get("decided_at")?,
            })
        })
        .collect()
}

/// How many decisions are kept.
pub async fn count(db: &Db) -> Result<i64, DbError> {
    Ok(
        sqlx::query("SELECT COUNT(*) AS kept FROM scheduling_decisions")
            .fetch_one(db.pool())
            .await?
            .try_get("kept")?,
    )
}
