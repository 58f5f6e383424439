//! The decision log: every scheduling decision kept, so that "No valid host
//! was found" comes with its reasons and a placement with its ranking
//! (`GET /novum/v1/decisions/{request_id}`, `novum decision show`).
//!
//! Off the decision's path: [`DecisionLog::schedule`] runs the pipeline
//! with its [`Trace`] (the vectors it computes anyway, kept instead of
//! dropped), builds the cheap part of the record ([`Decision::new`]: the
//! request taken apart, the best `decision_log_top_hosts` hosts) and hands
//! it to a bounded channel without waiting. One writer task per controller
//! ([`DecisionLog::start`]) drains the channel, groups the rejections, and
//! writes each batch in one transaction that also trims the table to
//! `[scheduler] decision_log_size` rows (the table is shared by every
//! controller on the database). When the channel is full the decision is
//! dropped and counted, never waited for. With `decision_log_size = 0` the
//! pipeline runs exactly as without a log.
//!
//! Replay and shadow: the random pick of every logged decision is seeded
//! from a seed the log keeps, and when `[scheduler] decision_replay_size`
//! is not 0 (or a shadow runs) the decision's inputs ([`DecisionInputs`]: the request
//! and `Arc`s of the snapshot's hosts, no copy) travel with it to the
//! writer, which hands the decision to the shadow ([`super::shadow`]) when
//! it was sampled, and keeps the inputs of the newest
//! `decision_replay_size` decisions in memory. Encoding them (deflated, on
//! a blocking thread) into the row's `inputs` column is the costly part
//! (measured, release build: tens of milliseconds for 1,000 hosts with
//! their instances), so it waits until no decision came for
//! [`INPUTS_QUIET`], or until someone asks for them ([`DecisionLog::flush`]:
//! the replay and the inputs API flush first), and the newest go first. A
//! burst of decisions thus encodes only the last `decision_replay_size`
//! once it is over, instead of encoding every decision (and then trimming
//! all but the newest) on the cores the burst needs; and the decisions'
//! batches stay small writes. Only decisions over at most
//! `decision_replay_max_hosts` hosts keep their inputs.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tokio::sync::{mpsc, oneshot};

use novum_db::Db;
use novum_plugin_host::PluginSet;
use novum_scheduler::whatif::DecisionInputs;
use novum_scheduler::{
    Claimer, CloudSnapshot, Decision, ScheduleError, SchedulerConfig, SchedulingRequest, Selection,
    Trace,
};

use super::shadow::Shadow;

use crate::store::decisions as store;

/// Decisions waiting for the writer at most; beyond, new ones are dropped.
pub const CHANNEL_CAPACITY: usize = 1024;

/// Decisions the writer puts in one transaction at most.
pub const BATCH_SIZE: usize = 64;

/// How long the writer waits with no new decision before it encodes the
/// inputs it keeps (see the module documentation).
pub const INPUTS_QUIET: Duration = Duration::from_millis(500);

/// A decision on its way to the writer, with its inputs when kept.
struct Record {
    decision: Decision,
    inputs: Option<DecisionInputs>,
    /// Keep the inputs for replays.
    replay: bool,
    /// Hand it to the shadow too.
    shadow: bool,
}

enum Message {
    Decision(Box<Record>),
    /// Answered once everything sent before it is written.
    Flush(oneshot::Sender<()>),
}

/// A controller's decision log (see the module documentation).
pub struct DecisionLog {
    db: Db,
    controller: String,
    size: u64,
    top_hosts: usize,
    replay_size: u64,
    replay_max_hosts: usize,
    shadow: OnceLock<Arc<Shadow>>,
    sender: mpsc::Sender<Message>,
    receiver: Mutex<Option<mpsc::Receiver<Message>>>,
    running: AtomicBool,
    dropped: AtomicU64,
}

impl std::fmt::Debug for DecisionLog {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DecisionLog")
            .field("size", &self.size)
            .field("top_hosts", &self.top_hosts)
            .finish_non_exhaustive()
    }
}

impl DecisionLog {
    /// The log of controller `controller` (its host name) on `db`, sized by
    /// `config`. Nothing is written until [`DecisionLog::start`].
    pub fn new(db: Db, controller: &str, config: &SchedulerConfig) -> Self {
        let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        Self {
            db,
            controller: controller.to_string(),
            size: config.decision_log_size,
            top_hosts: config.decision_log_top_hosts,
            replay_size: config.decision_replay_size,
            replay_max_hosts: config.decision_replay_max_hosts,
            shadow: OnceLock::new(),
            sender,
            receiver: Mutex::new(Some(receiver)),
            running: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        }
    }

    /// Whether decisions are kept (`decision_log_size > 0`).
    pub fn enabled(&self) -> bool {
        self.size > 0
    }

    /// Runs `shadow` beside production on the decisions it samples (once;
    /// a later call changes nothing). Needs the log enabled.
    pub fn set_shadow(&self, shadow: Arc<Shadow>) {
        let _ = self.shadow.set(shadow);
    }

    /// The shadow, when one runs.
    pub fn shadow(&self) -> Option<&Arc<Shadow>> {
        self.shadow.get()
    }

    /// Decisions dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Runs the pipeline for `request` (a `purpose` decision) and hands
    /// its decision to the log; the pipeline's answer is returned as
    /// [`novum_scheduler::schedule`] gives it.
    #[allow(clippy::too_many_arguments)]
    pub fn schedule(
        &self,
        purpose: &str,
        plugins: &PluginSet,
        config: &SchedulerConfig,
        snapshot: &CloudSnapshot,
        request: SchedulingRequest,
        claimer: &dyn Claimer,
        rng: &mut dyn RngCore,
    ) -> Result<Vec<Selection>, ScheduleError> {
        if !self.enabled() {
            return novum_scheduler::schedule(plugins, config, snapshot, &request, claimer, rng);
        }
        // The pick is seeded from a seed kept with the inputs, so a replay
        // over them picks as this decision did.
        let seed = rng.next_u64();
        let mut seeded = StdRng::seed_from_u64(seed);
        let shadow = self.shadow.get().is_some_and(|shadow| shadow.sample());
        let replay = self.replay_size > 0 && snapshot.hosts().len() <= self.replay_max_hosts;
        let inputs = (replay || shadow).then(|| DecisionInputs::capture(snapshot, &request, seed));
        let mut trace = Trace::default();
        let result = novum_scheduler::schedule_traced(
            plugins,
            config,
            snapshot,
            &request,
            claimer,
            &mut seeded,
            Some(&mut trace),
        );
        let decision = Decision::new(
            purpose,
            novum_db::now(),
            request,
            snapshot,
            trace,
            &result,
            self.top_hosts,
        );
        self.send(Record {
            decision,
            inputs,
            replay,
            shadow,
        });
        result
    }

    /// Hands `decision` to the writer without waiting; drops it (counted)
    /// when the writer is that far behind.
    pub fn record(&self, decision: Decision) {
        self.send(Record {
            decision,
            inputs: None,
            replay: false,
            shadow: false,
        });
    }

    fn send(&self, record: Record) {
        if !self.enabled() {
            return;
        }
        if let Err(error) = self.sender.try_send(Message::Decision(Box::new(record))) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped == 1 || dropped.is_multiple_of(1000) {
                tracing::warn!(
                    dropped,
                    %error,
                    "decision log writer behind: scheduling decisions dropped"
                );
            }
        }
    }

    /// Starts the writer (once; later calls and a disabled log start
    /// nothing).
    pub fn start(&self) -> Option<tokio::task::JoinHandle<()>> {
        if !self.enabled() {
            return None;
        }
        let receiver = self
            .receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        self.running.store(true, Ordering::Release);
        let writer = Writer {
            db: self.db.clone(),
            controller: self.controller.clone(),
            size: self.size,
            replay_size: self.replay_size,
            shadow: self.shadow.get().cloned(),
        };
        Some(tokio::spawn(writer.run(receiver)))
    }

    /// Waits until every decision recorded before the call is written, with
    /// the inputs it keeps (at once when the writer does not run).
    pub async fn flush(&self) {
        if !self.running.load(Ordering::Acquire) {
            return;
        }
        let (done, written) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

/// The task that writes the decisions.
struct Writer {
    db: Db,
    controller: String,
    size: u64,
    replay_size: u64,
    shadow: Option<Arc<Shadow>>,
}

/// Inputs kept for a written decision until they are encoded.
struct KeptInputs {
    /// The decision's row.
    id: i64,
    inputs: DecisionInputs,
    hosts_total: usize,
}

impl Writer {
    async fn run(self, mut receiver: mpsc::Receiver<Message>) {
        let mut batch: Vec<Record> = Vec::with_capacity(BATCH_SIZE);
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        // Newest last, at most `replay_size`.
        let mut kept: VecDeque<KeptInputs> = VecDeque::new();
        loop {
            let first = if kept.is_empty() {
                receiver.recv().await
            } else {
                match tokio::time::timeout(INPUTS_QUIET, receiver.recv()).await {
                    Ok(message) => message,
                    Err(_quiet) => {
                        // Quiet: encode, newest first, until decisions come again.
                        while receiver.is_empty() && self.encode_newest(&mut kept).await {}
                        continue;
                    }
                }
            };
            let Some(first) = first else { break };
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Message::Decision(record) => batch.push(*record),
                    Message::Flush(done) => flushes.push(done),
                }
                if batch.len() < BATCH_SIZE {
                    next = receiver.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.write(std::mem::take(&mut batch), &mut kept).await;
                batch = Vec::with_capacity(BATCH_SIZE);
            }
            if !flushes.is_empty() {
                while self.encode_newest(&mut kept).await {}
            }
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
    }

    /// Writes `records` in one transaction and keeps the inputs of those
    /// that keep theirs in `kept` (the newest `replay_size` of all).
    async fn write(&self, records: Vec<Record>, kept: &mut VecDeque<KeptInputs>) {
        let shadow = self.shadow.clone();
        // Grouping and the shadow's hand-off are CPU work: off the
        // runtime's threads.
        let prepared = tokio::task::spawn_blocking(move || {
            records
                .into_iter()
                .map(|record| prepare(record, shadow.as_deref()))
                .collect::<Vec<_>>()
        })
        .await;
        let (decisions, inputs): (Vec<_>, Vec<_>) = match prepared {
            Ok(prepared) => prepared.into_iter().unzip(),
            Err(error) => {
                tracing::warn!(%error, "cannot prepare scheduling decisions");
                return;
            }
        };
        match store::insert_and_trim(&self.db, &self.controller, &decisions, self.size).await {
            Ok(ids) => {
                for ((id, inputs), decision) in ids.into_iter().zip(inputs).zip(&decisions) {
                    if let Some(inputs) = inputs {
                        kept.push_back(KeptInputs {
                            id,
                            inputs,
                            hosts_total: decision.hosts_total,
                        });
                    }
                }
                let keep = usize::try_from(self.replay_size).unwrap_or(usize::MAX);
                while kept.len() > keep {
                    kept.pop_front();
                }
            }
            Err(error) => {
                tracing::warn!(%error, decisions = decisions.len(), "cannot write scheduling decisions");
            }
        }
    }

    /// Encodes the newest kept inputs into their row (the oldest rows'
    /// inputs trimmed beyond `replay_size`); `false` when none was kept.
    async fn encode_newest(&self, kept: &mut VecDeque<KeptInputs>) -> bool {
        let Some(KeptInputs {
            id,
            inputs,
            hosts_total,
        }) = kept.pop_back()
        else {
            return false;
        };
        let encoded = tokio::task::spawn_blocking(move || inputs.encode(hosts_total)).await;
        match encoded {
            Ok(Ok(text)) => {
                if let Err(error) =
                    store::attach_inputs(&self.db, id, &text, self.replay_size).await
                {
                    tracing::warn!(%error, decision = id, "cannot keep a decision's inputs");
                }
            }
            Ok(Err(error)) => tracing::warn!(%error, "cannot keep a decision's inputs"),
            Err(error) => tracing::warn!(%error, "cannot encode a decision's inputs"),
        }
        true
    }
}

/// A record made ready to store: the rejections grouped, the decision
/// handed to the shadow when sampled; and its inputs (without the hosts the
/// host manager dropped) when they are kept for replays.
fn prepare(record: Record, shadow: Option<&Shadow>) -> (Decision, Option<DecisionInputs>) {
    let Record {
        mut decision,
        inputs,
        replay,
        shadow: sampled,
    } = record;
    decision.finish();
    let inputs = inputs.map(|inputs| inputs.without_host_manager_rejections(&decision));
    if sampled && let (Some(shadow), Some(inputs)) = (shadow, &inputs) {
        shadow.offer(decision.clone(), inputs.clone());
    }
    (decision, inputs.filter(|_| replay))
}
