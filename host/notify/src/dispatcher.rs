//! The dispatcher: a cancellable task that delivers the outbox to the sinks,
//! at least once, in order per ordering key.
//!
//! - One worker per sink, so a slow or dead sink holds up only itself.
//! - A sink's worker reads events past its durable cursor, queues them per
//!   ordering key (each event once: the outbox numbers events as they are
//!   written, not committed, so on PostgreSQL seq N+1 can be visible before
//!   seq N commits; the worker's [`novum_db::GapCursor`] reads such a gap
//!   again until it fills or [`GAP_PATIENCE`] passes, and the durable
//!   cursor never moves past it), and delivers up to `concurrency` keys at once, one event
//!   at a time per key (a failing event holds up only its own key). Each
//!   outcome is recorded (`notification_deliveries`); the cursor advances
//!   over the settled prefix below the first gap. A restart resumes from the cursor and skips
//!   what was recorded delivered: nothing acknowledged is redelivered twice
//!   in the common case, nothing unacknowledged is lost.
//! - Failures are retried with exponential backoff; after the sink's
//!   `max_attempts` the event is dead-lettered and its key moves on.
//! - Workers wake on [`super::wake`] and every `poll_interval_ms`.
//! - One dispatcher delivers at a time per database: it holds a lease row,
//!   renewed while it runs, released on shutdown (several controllers can
//!   share a PostgreSQL database).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::config::NotificationsConfig;
use super::envelope::Envelope;
use super::outbox::{NotifyError, events_after, events_at, wake_receiver};
use super::sink::{HookSink, JsonlSink, RetryPolicy, Sink, SinkKind, WebhookSink};
use novum_db::{self as db, Db, GapCursor};

/// Events read per query.
const BATCH: i64 = 256;
/// Events a sink holds in memory at most (beyond a stuck key, reading pauses).
const MAX_BUFFERED: usize = 4096;
/// How long a dispatcher's lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often the lease is renewed (and, without it, retried).
const LEASE_RENEW: Duration = Duration::from_secs(3);
/// How long a sink waits for a gap in the outbox's numbers (an event
/// written, not yet committed) before it counts as rolled back. Longer than
/// the host state's: a skipped notification is not re-read later.
pub const GAP_PATIENCE: Duration = Duration::from_secs(120);
/// How much of a JSON-lines file's end a dispatcher taking the sink over
/// reads for lines already written (see [`JsonlSink::recent_message_ids`]).
const JSONL_TAKEOVER_WINDOW: u64 = 1 << 20;
/// How often settled events past the retention are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// The dispatcher, configured, not yet running.
pub struct Dispatcher {
    db: Db,
    sinks: Vec<Arc<Sink>>,
    allowed: Arc<Vec<String>>,
    poll: Duration,
    retention: Duration,
}

impl Dispatcher {
    /// The sinks of `config` (the JSON-lines file under `data_dir` unless
    /// configured elsewhere or off, the webhooks, and `hooks`, the
    /// notification-hook plugins named in `config.hooks`).
    pub fn new(
        db: Db,
        config: &NotificationsConfig,
        data_dir: &Path,
        hooks: Vec<Arc<dyn HookSink>>,
    ) -> Result<Self, NotifyError> {
        let mut sinks = Vec::new();
        if config.jsonl.enabled {
            let path = config
                .jsonl
                .path
                .clone()
                .unwrap_or_else(|| data_dir.join("notifications.jsonl"));
            sinks.push(Sink {
                name: super::config::JSONL_SINK.to_string(),
                kind: SinkKind::Jsonl(JsonlSink::new(path)),
                retry: RetryPolicy {
                    max_attempts: None,
                    initial: Duration::from_millis(200),
                    max: Duration::from_secs(30),
                },
                concurrency: 1,
                event_types: Vec::new(),
                projects: Vec::new(),
                format: config.format,
            });
        }
        for webhook in &config.webhooks {
            sinks.push(Sink {
                name: webhook.sink_name(),
                kind: SinkKind::Webhook(WebhookSink::new(webhook).map_err(NotifyError::Config)?),
                retry: RetryPolicy {
                    max_attempts: Some(webhook.max_attempts.max(1)),
                    initial: Duration::from_millis(webhook.backoff_initial_ms),
                    max: Duration::from_millis(webhook.backoff_max_ms),
                },
                concurrency: webhook.concurrency.max(1),
                event_types: webhook.event_types.clone(),
                projects: webhook.projects.clone(),
                format: config.format,
            });
        }
        for hook in hooks {
            sinks.push(Sink {
                name: super::config::hook_sink_name(hook.name()),
                kind: SinkKind::Hook(hook),
                retry: RetryPolicy {
                    max_attempts: Some(config.hook_max_attempts.max(1)),
                    initial: Duration::from_millis(200),
                    max: Duration::from_secs(10),
                },
                concurrency: 1,
                event_types: Vec::new(),
                projects: Vec::new(),
                // The plugin contract is the versioned format.
                format: super::config::NotificationFormat::Versioned,
            });
        }
        let mut names = HashSet::new();
        if let Some(duplicate) = sinks.iter().find(|sink| !names.insert(sink.name.clone())) {
            return Err(NotifyError::Config(format!(
                "two sinks are named {}; give webhooks distinct `name`s",
                duplicate.name
            )));
        }
        Ok(Self {
            db,
            sinks: sinks.into_iter().map(Arc::new).collect(),
            allowed: Arc::new(config.event_types.clone()),
            poll: Duration::from_millis(config.poll_interval_ms.max(10)),
            retention: Duration::from_secs(config.retention_hours.saturating_mul(3600)),
        })
    }

    /// The names the sinks keep their delivery state under.
    pub fn sink_names(&self) -> Vec<String> {
        self.sinks.iter().map(|sink| sink.name.clone()).collect()
    }

    /// Starts delivering; stop with [`DispatcherHandle::shutdown`].
    pub fn start(self) -> DispatcherHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(
            self.supervise(stopped)
                .instrument(tracing::info_span!("notification_dispatcher")),
        );
        DispatcherHandle { stop, task }
    }

    async fn supervise(self, mut stop: watch::Receiver<bool>) {
        let holder = uuid::Uuid::new_v4().to_string();
        'lease: loop {
            loop {
                match acquire_lease(&self.db, &holder).await {
                    Ok(true) => break,
                    Ok(false) => tracing::debug!("another dispatcher holds the lease"),
                    Err(error) => tracing::warn!(%error, "cannot take the dispatcher lease"),
                }
                tokio::select! {
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(LEASE_RENEW) => {}
                }
            }
            tracing::info!(sinks = ?self.sink_names(), "delivering notifications");
            let (stop_workers, workers_stopped) = watch::channel(false);
            let mut workers = JoinSet::new();
            for sink in &self.sinks {
                let worker = SinkWorker {
                    db: self.db.clone(),
                    sink: Arc::clone(sink),
                    allowed: Arc::clone(&self.allowed),
                    poll: self.poll,
                };
                let span = tracing::info_span!("notification_sink", sink = %sink.name);
                workers.spawn(worker.run(workers_stopped.clone()).instrument(span));
            }
            let mut renew = tokio::time::interval(LEASE_RENEW);
            let mut prune = tokio::time::interval(PRUNE_INTERVAL);
            let lost = loop {
                tokio::select! {
                    _ = stop.changed() => break false,
                    _ = renew.tick() => match acquire_lease(&self.db, &holder).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!("dispatcher lease lost; pausing delivery");
                            break true;
                        }
                        Err(error) => tracing::warn!(%error, "cannot renew the dispatcher lease"),
                    },
                    _ = prune.tick() => {
                        if let Err(error) = self.prune().await {
                            tracing::warn!(%error, "cannot prune the notification outbox");
                        }
                    }
                }
            };
            let _ = stop_workers.send(true);
            while workers.join_next().await.is_some() {}
            if lost {
                continue 'lease;
            }
            if let Err(error) = release_lease(&self.db, &holder).await {
                tracing::warn!(%error, "cannot release the dispatcher lease");
            }
            return;
        }
    }

    /// Deletes events every sink has settled that are older than the retention.
    async fn prune(&self) -> Result<(), NotifyError> {
        let cursors: Vec<(String, i64)> =
            sqlx::query_as("SELECT sink, seq FROM notification_sink_cursors")
                .fetch_all(self.db.pool())
                .await?;
        let cursors: HashMap<String, i64> = cursors.into_iter().collect();
        let settled = self
            .sinks
            .iter()
            .map(|sink| cursors.get(&sink.name).copied().unwrap_or(0))
            .min()
            .unwrap_or(i64::MAX);
        let retention = chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::MAX);
        let cutoff = db::timestamp(
            chrono::Utc::now()
                .checked_sub_signed(retention)
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC),
        );
        let deleted =
            sqlx::query("DELETE FROM notification_outbox WHERE seq <= $1 AND created_at < $2")
                .bind(settled)
                .bind(cutoff)
                .execute(self.db.pool())
                .await?
                .rows_affected();
        if deleted > 0 {
            tracing::debug!(deleted, "pruned the notification outbox");
        }
        Ok(())
    }
}

/// A running dispatcher.
pub struct DispatcherHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl DispatcherHandle {
    /// Stops delivering and waits: deliveries in flight are abandoned (and
    /// redelivered by the next dispatcher), the lease is released.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "notification dispatcher task failed");
        }
    }
}

async fn acquire_lease(db: &Db, holder: &str) -> Result<bool, sqlx::Error> {
    let now = chrono::Utc::now();
    let expires = now + chrono::Duration::from_std(LEASE_TTL).unwrap_or(chrono::Duration::zero());
    let updated = sqlx::query(
        "UPDATE notification_dispatcher_lease SET holder = $1, expires_at = $2 \
         WHERE name = 'dispatcher' AND (holder = $1 OR holder = '' OR expires_at < $3)",
    )
    .bind(holder)
    .bind(db::timestamp(expires))
    .bind(db::timestamp(now))
    .execute(db.pool())
    .await?;
    Ok(updated.rows_affected() == 1)
}

async fn release_lease(db: &Db, holder: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notification_dispatcher_lease SET holder = '', expires_at = '' \
         WHERE name = 'dispatcher' AND holder = $1",
    )
    .bind(holder)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// One event to deliver to one sink.
struct Job {
    seq: i64,
    key: String,
    message_id: String,
    event_type: String,
    /// Attempts made before (recorded by an earlier run).
    attempts: u32,
    messages: Vec<Envelope>,
    /// The versioned envelope, for a dead letter.
    envelope: Envelope,
}

struct SinkWorker {
    db: Db,
    sink: Arc<Sink>,
    allowed: Arc<Vec<String>>,
    poll: Duration,
}

/// The in-memory state of a sink worker between the cursor and what it read.
struct Pipeline {
    /// What was read (each event once, gaps waited for).
    read: GapCursor,
    /// Message ids the sink holds already though the outbox does not say
    /// so (a JSON-lines file a dead dispatcher wrote last): skipped.
    written: HashSet<String>,
    /// Read, not settled.
    outstanding: BTreeSet<i64>,
    /// Waiting events per key.
    queues: HashMap<String, VecDeque<Job>>,
    /// Keys with a delivery in flight.
    busy: HashSet<String>,
    /// Deliveries in flight: task id → (key, seq).
    running: HashMap<tokio::task::Id, (String, i64)>,
}

impl Pipeline {
    /// Nothing read yet past the durable cursor `cursor`; `written`: the
    /// message ids the sink holds already.
    fn at(cursor: i64, written: HashSet<String>) -> Self {
        Self {
            read: GapCursor::at(cursor, GAP_PATIENCE),
            written,
            outstanding: BTreeSet::new(),
            queues: HashMap::new(),
            busy: HashSet::new(),
            running: HashMap::new(),
        }
    }

    /// Where the durable cursor may go: every event at or below it is
    /// settled, and no gap is below it.
    fn settled(&self) -> i64 {
        let read = self.read.floor();
        self.outstanding
            .first()
            .map_or(read, |first| read.min(first - 1))
    }
}

impl SinkWorker {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut wake = wake_receiver();
        let mut cursor = loop {
            match load_cursor(&self.db, &self.sink.name).await {
                Ok(cursor) => break cursor,
                Err(error) => tracing::warn!(%error, "cannot read the sink cursor"),
            }
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(self.poll) => {}
            }
        };
        let written = match &self.sink.kind {
            SinkKind::Jsonl(jsonl) => jsonl.recent_message_ids(JSONL_TAKEOVER_WINDOW).await,
            _ => HashSet::new(),
        };
        let mut pipeline = Pipeline::at(cursor, written);
        let mut tasks: JoinSet<()> = JoinSet::new();
        loop {
            let more = self.refill(&mut pipeline).await;
            self.start_ready(&mut pipeline, &mut tasks);
            let settled = pipeline.settled();
            if settled > cursor {
                match save_cursor(&self.db, &self.sink.name, settled).await {
                    Ok(()) => cursor = settled,
                    Err(error) => tracing::warn!(%error, "cannot save the sink cursor"),
                }
            }
            if more && *stop.borrow() {
                break;
            }
            if more {
                continue;
            }
            tokio::select! {
                _ = stop.changed() => break,
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let id = match &done {
                        Ok((id, ())) => *id,
                        Err(error) => error.id(),
                    };
                    let Some((key, seq)) = pipeline.running.remove(&id) else { continue };
                    if let Err(error) = done {
                        // A delivery task panicked: start over from the cursor.
                        tracing::error!(%error, seq, "notification delivery task failed");
                        tasks.abort_all();
                        while tasks.join_next().await.is_some() {}
                        pipeline = Pipeline::at(cursor, std::mem::take(&mut pipeline.written));
                        continue;
                    }
                    pipeline.outstanding.remove(&seq);
                    pipeline.busy.remove(&key);
                    if pipeline.queues.get(&key).is_some_and(VecDeque::is_empty) {
                        pipeline.queues.remove(&key);
                    }
                }
                _ = wake.changed() => {}
                () = tokio::time::sleep(self.poll) => {}
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }

    /// Reads the events not read yet (the gaps waited for, and past the
    /// highest read); true when there may be more now.
    async fn refill(&self, pipeline: &mut Pipeline) -> bool {
        if pipeline.outstanding.len() >= MAX_BUFFERED {
            return false;
        }
        let gaps = pipeline.read.gaps();
        let mut events = if gaps.is_empty() {
            Vec::new()
        } else {
            match events_at(&self.db, &self.sink.name, &gaps).await {
                Ok(events) => events,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the notification outbox");
                    return false;
                }
            }
        };
        let newer = match events_after(&self.db, &self.sink.name, pipeline.read.top(), BATCH).await
        {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(%error, "cannot read the notification outbox");
                return false;
            }
        };
        let full = newer.len() as i64 == BATCH;
        events.extend(newer);
        let visible: Vec<i64> = events.iter().map(|event| event.event.seq).collect();
        let fresh: HashSet<i64> = pipeline
            .read
            .advance(&visible, Instant::now())
            .into_iter()
            .collect();
        events.sort_by_key(|event| event.event.seq);
        for event in events {
            let seq = event.event.seq;
            if !fresh.contains(&seq) {
                continue;
            }
            if matches!(event.state.as_deref(), Some("delivered" | "dead")) {
                continue;
            }
            let messages = self.sink.messages(&event.event, &self.allowed);
            if messages.is_empty() {
                continue;
            }
            if !pipeline.written.is_empty()
                && messages
                    .iter()
                    .all(|message| pipeline.written.contains(&message.message_id))
            {
                tracing::info!(
                    seq,
                    message_id = %event.event.envelope.message_id,
                    "already in the sink (written by the previous dispatcher): not written again"
                );
                continue;
            }
            pipeline.outstanding.insert(seq);
            let key = event.event.ordering_key.clone();
            pipeline
                .queues
                .entry(key.clone())
                .or_default()
                .push_back(Job {
                    seq,
                    key,
                    message_id: event.event.envelope.message_id.clone(),
                    event_type: event.event.event_type.clone(),
                    attempts: event.attempts,
                    messages,
                    envelope: event.event.envelope,
                });
        }
        full
    }

    /// Starts deliveries for idle keys, oldest head event first, up to the
    /// sink's concurrency.
    fn start_ready(&self, pipeline: &mut Pipeline, tasks: &mut JoinSet<()>) {
        let free = self.sink.concurrency.saturating_sub(pipeline.busy.len());
        if free == 0 {
            return;
        }
        let mut ready: Vec<(i64, String)> = pipeline
            .queues
            .iter()
            .filter(|(key, queue)| !pipeline.busy.contains(*key) && !queue.is_empty())
            .filter_map(|(key, queue)| queue.front().map(|job| (job.seq, key.clone())))
            .collect();
        ready.sort_unstable();
        for (_, key) in ready.into_iter().take(free) {
            let Some(job) = pipeline.queues.get_mut(&key).and_then(VecDeque::pop_front) else {
                continue;
            };
            let seq = job.seq;
            let handle = tasks.spawn(deliver(self.db.clone(), Arc::clone(&self.sink), job));
            pipeline.running.insert(handle.id(), (key.clone(), seq));
            pipeline.busy.insert(key);
        }
    }
}

/// Delivers one event, retrying by the sink's policy; records the outcome.
async fn deliver(db: Db, sink: Arc<Sink>, job: Job) {
    let mut attempts = job.attempts;
    loop {
        let result = sink.deliver(&job.messages).await;
        attempts = attempts.saturating_add(1);
        let error = match result {
            Ok(()) => {
                if let Err(error) =
                    record(&db, &sink.name, job.seq, "delivered", attempts, None).await
                {
                    tracing::warn!(%error, seq = job.seq, "cannot record a delivery");
                }
                return;
            }
            Err(error) => error,
        };
        if sink.retry.exhausted(attempts) {
            tracing::warn!(
                seq = job.seq,
                message_id = %job.message_id,
                key = %job.key,
                attempts,
                %error,
                "notification dead-lettered"
            );
            if let Err(db_error) = dead_letter(&db, &sink.name, &job, attempts, &error).await {
                tracing::warn!(error = %db_error, seq = job.seq, "cannot record a dead letter");
            }
            return;
        }
        tracing::debug!(seq = job.seq, attempts, %error, "notification delivery failed; retrying");
        if let Err(db_error) =
            record(&db, &sink.name, job.seq, "pending", attempts, Some(&error)).await
        {
            tracing::warn!(error = %db_error, seq = job.seq, "cannot record a delivery attempt");
        }
        tokio::time::sleep(sink.retry.delay(attempts)).await;
    }
}

const UPSERT_DELIVERY: &str = "INSERT INTO notification_deliveries \
     (sink, seq, state, attempts, last_error, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (sink, seq) DO UPDATE SET state = excluded.state, attempts = excluded.attempts, \
     last_error = excluded.last_error, updated_at = excluded.updated_at";

async fn record(
    db: &Db,
    sink: &str,
    seq: i64,
    state: &str,
    attempts: u32,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(UPSERT_DELIVERY)
        .bind(sink)
        .bind(seq)
        .bind(state)
        .bind(i64::from(attempts))
        .bind(error)
        .bind(db::now())
        .execute(db.pool())
        .await?;
    Ok(())
}

async fn dead_letter(
    db: &Db,
    sink: &str,
    job: &Job,
    attempts: u32,
    error: &str,
) -> Result<(), NotifyError> {
    let body = serde_json::to_string(&job.envelope).map_err(|source| NotifyError::Corrupt {
        seq: job.seq,
        source,
    })?;
    let now = db::now();
    let mut tx = db.begin().await.map_err(|error| match error {
        db::DbError::Query(error) => NotifyError::Db(error),
        other => NotifyError::Config(other.to_string()),
    })?;
    sqlx::query(UPSERT_DELIVERY)
        .bind(sink)
        .bind(job.seq)
        .bind("dead")
        .bind(i64::from(attempts))
        .bind(error)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO notification_dead_letters \
         (sink, seq, message_id, event_type, attempts, last_error, created_at, body) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (sink, seq) DO NOTHING",
    )
    .bind(sink)
    .bind(job.seq)
    .bind(&job.message_id)
    .bind(&job.event_type)
    .bind(i64::from(attempts))
    .bind(error)
    .bind(&now)
    .bind(body)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn load_cursor(db: &Db, sink: &str) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO notification_sink_cursors (sink, seq, updated_at) VALUES ($1, 0, $2) \
         ON CONFLICT (sink) DO NOTHING",
    )
    .bind(sink)
    .bind(db::now())
    .execute(db.pool())
    .await?;
    let (seq,): (i64,) =
        sqlx::query_as("SELECT seq FROM notification_sink_cursors WHERE sink = $1")
            .bind(sink)
            .fetch_one(db.pool())
            .await?;
    Ok(seq)
}

async fn save_cursor(db: &Db, sink: &str, seq: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    sqlx::query("UPDATE notification_sink_cursors SET seq = $2, updated_at = $3 WHERE sink = $1 AND seq < $2")
        .bind(sink)
        .bind(seq)
        .bind(db::now())
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM notification_deliveries WHERE sink = $1 AND seq <= $2")
        .bind(sink)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
