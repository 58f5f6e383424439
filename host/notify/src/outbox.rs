//! The outbox: [`emit`] writes a notification in the caller's transaction,
//! so a state change and its event commit (or roll back) together. Events
//! are numbered by the database (`seq`: an identity column on PostgreSQL,
//! AUTOINCREMENT on SQLite; migration 0103), without a lock: emitters do not
//! wait for each other. Numbers increase in the order events are written,
//! not committed, so on PostgreSQL a reader can see seq N+1 before seq N
//! commits; the dispatcher's cursor (`novum_db::GapCursor`) waits for such
//! gaps, so none is skipped.

use std::sync::LazyLock;

use serde::Serialize;
use tokio::sync::watch;

use super::envelope::{Envelope, Notification};
use novum_db::{self as db, Db, Tx};

/// Errors of the notification layer.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A query failed.
    #[error("notification outbox: {0}")]
    Db(#[from] sqlx::Error),
    /// The writes committed with the events failed.
    #[error(transparent)]
    Write(#[from] novum_db::DbError),
    /// A stored message is not valid JSON.
    #[error("notification outbox: stored message {seq} is corrupt: {source}")]
    Corrupt {
        /// Its sequence number.
        seq: i64,
        /// Why.
        source: serde_json::Error,
    },
    /// The configuration is unusable.
    #[error("notifications configuration: {0}")]
    Config(String),
}

static WAKE: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

/// Wakes the dispatchers of this process (call after committing emitted
/// events; [`commit`] does it). Without it, events are picked up at the next
/// poll.
pub fn wake() {
    WAKE.send_modify(|generation| *generation = generation.wrapping_add(1));
}

pub(crate) fn wake_receiver() -> watch::Receiver<u64> {
    WAKE.subscribe()
}

/// Commits `tx` and wakes the dispatchers.
pub async fn commit(tx: Tx) -> Result<(), NotifyError> {
    tx.commit().await?;
    wake();
    Ok(())
}

/// Runs `writes` in `tx` and commits it ([`Tx::commit_with`]: a grouped
/// transaction's commit costs no round trip of its own), then wakes the
/// dispatchers. Answers the rows each of `writes` returned, in order.
pub async fn commit_with(
    tx: Tx,
    writes: novum_db::Batch,
) -> Result<Vec<novum_db::StatementRows>, NotifyError> {
    let answers = tx.commit_with(writes).await?;
    wake();
    Ok(answers)
}

/// The outbox's columns, in the order [`emit`] and [`emit_all`] bind them.
const OUTBOX_COLUMNS: &str = "message_id, ordering_key, event_type, priority, publisher_id, \
                              project_id, instance_uuid, created_at, body, legacy_body";
/// How many values one outbox row binds.
const OUTBOX_VALUES_PER_ROW: usize = 10;
/// Rows in one multi-row `INSERT` of [`emit_all`] (well under SQLite's
/// limit of host parameters per statement).
const OUTBOX_ROWS_PER_INSERT: usize = 64;

/// One outbox row, serialized.
struct OutboxRow<'a> {
    notification: &'a Notification,
    body: String,
    legacy_body: Option<String>,
}

impl<'a> OutboxRow<'a> {
    fn of(notification: &'a Notification) -> Result<Self, NotifyError> {
        let corrupt = |source| NotifyError::Corrupt { seq: 0, source };
        Ok(Self {
            notification,
            body: serde_json::to_string(&notification.envelope).map_err(corrupt)?,
            legacy_body: notification
                .legacy
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(corrupt)?,
        })
    }

    fn bind<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
        now: &str,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>
    where
        'a: 'q,
    {
        let notification = self.notification;
        query
            .bind(&notification.envelope.message_id)
            .bind(&notification.ordering_key)
            .bind(&notification.envelope.event_type)
            .bind(notification.envelope.priority.as_str())
            .bind(&notification.envelope.publisher_id)
            .bind(notification.project_id.as_deref())
            .bind(notification.instance_uuid.as_deref())
            .bind(now.to_string())
            .bind(self.body)
            .bind(self.legacy_body)
    }
}

/// `($1, …, $10), ($11, …)`: the placeholders of `rows` outbox rows.
fn outbox_placeholders(rows: usize) -> String {
    novum_db::clauses::row_placeholders(rows, OUTBOX_VALUES_PER_ROW)
}

/// Writes `notification` to the outbox in `tx`; returns its sequence number.
/// Nothing else happens on the caller's path: delivery is the dispatcher's.
pub async fn emit(tx: &mut Tx, notification: &Notification) -> Result<i64, NotifyError> {
    let row = OutboxRow::of(notification)?;
    let sql = format!(
        "INSERT INTO notification_outbox ({OUTBOX_COLUMNS}) VALUES {} RETURNING seq AS id",
        outbox_placeholders(1)
    );
    let insert = row.bind(sqlx::query(sqlx::AssertSqlSafe(sql)), &db::now());
    let seq = db::insert_returning_id(tx, insert)
        .await
        .map_err(db_error)?;
    Ok(seq)
}

/// Writes `notifications` to the outbox in `tx`, in their order, with as
/// few statements as it can (one per [`OUTBOX_ROWS_PER_INSERT`]): a
/// transaction that emits several events pays one round trip to the
/// database for them, not one each.
pub async fn emit_all(tx: &mut Tx, notifications: &[Notification]) -> Result<(), NotifyError> {
    let mut batch = db::Batch::new();
    emit_all_into(&mut batch, notifications)?;
    batch.run(tx).await.map_err(db_error)
}

/// Adds the outbox rows of `notifications` to `batch` (see [`emit_all`]),
/// for a transaction that sends them with its other writes.
pub fn emit_all_into(
    batch: &mut db::Batch,
    notifications: &[Notification],
) -> Result<(), NotifyError> {
    let now = db::now();
    for chunk in notifications.chunks(OUTBOX_ROWS_PER_INSERT) {
        let rows = chunk
            .iter()
            .map(OutboxRow::of)
            .collect::<Result<Vec<_>, _>>()?;
        let sql = format!(
            "INSERT INTO notification_outbox ({OUTBOX_COLUMNS}) VALUES {}",
            outbox_placeholders(rows.len())
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in rows {
            insert = row.bind(insert, &now);
        }
        batch.push(insert).map_err(db_error)?;
    }
    Ok(())
}

/// A database layer error as the outbox reports it.
fn db_error(error: db::DbError) -> NotifyError {
    match error {
        db::DbError::Query(error) => NotifyError::Db(error),
        other => NotifyError::Config(other.to_string()),
    }
}

/// How many events each of `sinks` has yet to settle: the events in the
/// outbox past its durable cursor (all of them for a sink that never ran).
/// The outbox's depth as `/metrics` shows it.
pub async fn depth(db: &Db, sinks: &[String]) -> Result<Vec<(String, u64)>, NotifyError> {
    let cursors: Vec<(String, i64)> =
        sqlx::query_as("SELECT sink, seq FROM notification_sink_cursors")
            .fetch_all(db.pool())
            .await?;
    let mut depths = Vec::with_capacity(sinks.len());
    for sink in sinks {
        let settled = cursors
            .iter()
            .find(|(name, _)| name == sink)
            .map_or(0, |(_, seq)| *seq);
        // Past the cursor, less what was settled beyond it (while the
        // cursor waits for a gap).
        let (pending,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM notification_outbox o WHERE o.seq > $1 AND NOT EXISTS \
             (SELECT 1 FROM notification_deliveries d WHERE d.sink = $2 AND d.seq = o.seq \
             AND d.state IN ('delivered', 'dead'))",
        )
        .bind(settled)
        .bind(sink)
        .fetch_one(db.pool())
        .await?;
        depths.push((sink.clone(), u64::try_from(pending).unwrap_or(0)));
    }
    Ok(depths)
}

/// An event as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// Sequence number.
    pub seq: i64,
    /// Ordering key.
    pub ordering_key: String,
    /// Versioned event type.
    pub event_type: String,
    /// Project, if any.
    pub project_id: Option<String>,
    /// When it was emitted (RFC 3339).
    pub created_at: String,
    /// The versioned message.
    pub envelope: Envelope,
    /// The legacy message, if any.
    pub legacy: Option<Envelope>,
}

type EventRow = (
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
);

/// An [`EventRow`] followed by the sink's delivery state and attempts.
type SinkEventRow = (
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// sink, seq, message_id, event_type, attempts, last_error, created_at, body.
type DeadLetterRow = (String, i64, String, String, i64, String, String, String);

const EVENT_COLUMNS: &str =
    "o.seq, o.ordering_key, o.event_type, o.project_id, o.created_at, o.body, o.legacy_body";

fn parse_event(row: EventRow) -> Result<StoredEvent, NotifyError> {
    let (seq, ordering_key, event_type, project_id, created_at, body, legacy_body) = row;
    let corrupt = |source| NotifyError::Corrupt { seq, source };
    Ok(StoredEvent {
        seq,
        ordering_key,
        event_type,
        project_id,
        created_at,
        envelope: serde_json::from_str(&body).map_err(corrupt)?,
        legacy: legacy_body
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(corrupt)?,
    })
}

/// An event not yet settled for a sink, with the attempts already made.
#[derive(Clone, Debug)]
pub(crate) struct SinkEvent {
    pub event: StoredEvent,
    /// `None`: never tried; else the recorded state and attempts.
    pub state: Option<String>,
    pub attempts: u32,
}

/// Events after `after` (by sequence), with `sink`'s delivery state.
pub(crate) async fn events_after(
    db: &Db,
    sink: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<SinkEvent>, NotifyError> {
    let rows: Vec<SinkEventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {EVENT_COLUMNS}, d.state, d.attempts FROM notification_outbox o \
         LEFT JOIN notification_deliveries d ON d.sink = $1 AND d.seq = o.seq \
         WHERE o.seq > $2 ORDER BY o.seq LIMIT $3"
    )))
    .bind(sink)
    .bind(after)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.into_iter().map(sink_event).collect()
}

/// The events numbered `seqs` that are visible now (the gaps a sink's
/// cursor waits for), with `sink`'s delivery state, in order.
pub(crate) async fn events_at(
    db: &Db,
    sink: &str,
    seqs: &[i64],
) -> Result<Vec<SinkEvent>, NotifyError> {
    let mut events = Vec::new();
    for chunk in seqs.chunks(500) {
        // Integers only: nothing of the caller's text reaches the SQL.
        let list = chunk
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let rows: Vec<SinkEventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS}, d.state, d.attempts FROM notification_outbox o \
             LEFT JOIN notification_deliveries d ON d.sink = $1 AND d.seq = o.seq \
             WHERE o.seq IN ({list}) ORDER BY o.seq"
        )))
        .bind(sink)
        .fetch_all(db.pool())
        .await?;
        for row in rows {
            events.push(sink_event(row)?);
        }
    }
    Ok(events)
}

fn sink_event(row: SinkEventRow) -> Result<SinkEvent, NotifyError> {
    let (seq, key, event_type, project, created, body, legacy, state, attempts) = row;
    Ok(SinkEvent {
        event: parse_event((seq, key, event_type, project, created, body, legacy))?,
        state,
        attempts: attempts.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
    })
}

/// Filters of [`list_events`].
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// Exact event type, or a prefix ending in `*`.
    pub event_type: Option<String>,
    /// Instance uuid.
    pub instance_uuid: Option<String>,
    /// Emitted at or after (RFC 3339, database format).
    pub since: Option<String>,
    /// At most this many (newest first).
    pub limit: i64,
}

/// A `LIKE` pattern matching `text` literally (escape `\`).
fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Recent events, newest first.
pub async fn list_events(db: &Db, filter: &EventFilter) -> Result<Vec<StoredEvent>, NotifyError> {
    let pattern =
        filter
            .event_type
            .as_deref()
            .map(|event_type| match event_type.strip_suffix('*') {
                Some(prefix) => format!("{}%", like_literal(prefix)),
                None => like_literal(event_type),
            });
    let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {EVENT_COLUMNS} FROM notification_outbox o \
         WHERE (CAST($1 AS TEXT) IS NULL OR o.event_type LIKE $1 ESCAPE '\\') \
         AND (CAST($2 AS TEXT) IS NULL OR o.instance_uuid = $2) \
         AND (CAST($3 AS TEXT) IS NULL OR o.created_at >= $3) \
         ORDER BY o.seq DESC LIMIT $4"
    )))
    .bind(pattern)
    .bind(filter.instance_uuid.as_deref())
    .bind(filter.since.as_deref())
    .bind(filter.limit)
    .fetch_all(db.pool())
    .await?;
    rows.into_iter().map(parse_event).collect()
}

/// A message a sink gave up on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeadLetter {
    /// The sink (`jsonl`, `webhook:<name>`, `hook:<plugin>`).
    pub sink: String,
    /// The event's sequence number.
    pub seq: i64,
    /// The versioned message id.
    pub message_id: String,
    /// The versioned event type.
    pub event_type: String,
    /// Attempts made.
    pub attempts: i64,
    /// The last error.
    pub last_error: String,
    /// When it was given up on.
    pub created_at: String,
    /// The event (versioned envelope).
    pub notification: serde_json::Value,
}

/// Dead letters, newest first.
pub async fn list_dead_letters(db: &Db, limit: i64) -> Result<Vec<DeadLetter>, NotifyError> {
    let rows: Vec<DeadLetterRow> = sqlx::query_as(
        "SELECT sink, seq, message_id, event_type, attempts, last_error, created_at, body \
         FROM notification_dead_letters ORDER BY created_at DESC, seq DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.into_iter()
        .map(
            |(sink, seq, message_id, event_type, attempts, last_error, created_at, body)| {
                Ok(DeadLetter {
                    notification: serde_json::from_str(&body)
                        .map_err(|source| NotifyError::Corrupt { seq, source })?,
                    sink,
                    seq,
                    message_id,
                    event_type,
                    attempts,
                    last_error,
                    created_at,
                })
            },
        )
        .collect()
}
