//! The shadow scheduler (`[scheduler.shadow]`): a candidate plugin set that
//! re-runs real decisions beside production and never decides.
//!
//! The decision log samples a decision ([`Shadow::sample`], every
//! `1/sample_rate`-th, counted, not random) and keeps its inputs; its
//! writer, off the decision's path, hands the finished decision and the
//! inputs to [`Shadow::offer`], which queues them for the shadow's own
//! thread without waiting (a full queue drops them, counted). The thread
//! re-runs the inputs with the candidate set and the decision's seed
//! ([`whatif::replay`]) and compares its choice with production's
//! ([`whatif::compare`]): agreements and disagreements are counted, by
//! (production host, shadow host), and the latest disagreements kept with
//! why the two hosts fared differently. [`Shadow::report`] is what `GET
//! /novum/v1/scheduling/shadow` answers. [`Shadow::reload`] swaps the
//! candidate set (the plugin reload re-reads it).
//!
//! What it keeps is in memory, per controller, since its start.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, mpsc};

use novum_plugin_host::{Backend, PluginEngine, PluginSet, PluginsConfig};
use novum_scheduler::config::ShadowConfig;
use novum_scheduler::whatif::{self, CandidateError, CandidateSet, DecisionInputs, VerdictChange};
use novum_scheduler::{Decision, SchedulerConfig};
use serde::Serialize;

/// Disagreements a shadow keeps, the newest.
pub const RECENT_DISAGREEMENTS: usize = 50;

/// A shadow that cannot be started or reloaded.
#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    /// Its candidate file cannot be read.
    #[error("cannot read the shadow's plugin set {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The set is invalid or does not load.
    #[error("shadow plugin set {path}: {error}")]
    Candidate {
        /// The file.
        path: PathBuf,
        /// Why.
        error: CandidateError,
    },
}

/// What the shadow runs: its scheduler settings and its plugins.
struct Loaded {
    scheduler: SchedulerConfig,
    plugins: PluginSet,
}

struct Job {
    production: Decision,
    inputs: DecisionInputs,
}

/// One decision where the shadow chose otherwise.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Disagreement {
    /// The API request.
    pub request_id: String,
    /// When production decided.
    pub decided_at: String,
    /// Production's hosts (`[]`: it found none).
    pub production: Vec<String>,
    /// The shadow's.
    pub shadow: Vec<String>,
    /// Production's outcome.
    pub production_result: String,
    /// The shadow's.
    pub shadow_result: String,
    /// Why: the verdicts of the two choices (and of any other host that
    /// changed, up to the comparison's limit), production's first.
    pub why: Vec<VerdictChange>,
    /// Hosts whose verdict differs in all.
    pub changed_hosts: usize,
}

/// How often production and the shadow chose the same (from one pair).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PairCount {
    /// Production's choice (`-`: none).
    pub production: String,
    /// The shadow's.
    pub shadow: String,
    /// Decisions.
    pub count: u64,
}

/// What the shadow has seen (`GET /novum/v1/scheduling/shadow`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShadowReport {
    /// The candidate set's file.
    pub plugins: String,
    /// The candidate set's filters.
    pub filters: Vec<String>,
    /// The candidate set's weighers with their multipliers.
    pub weighers: Vec<(String, f64)>,
    /// The share of decisions sampled.
    pub sample_rate: f64,
    /// Decisions compared.
    pub compared: u64,
    /// Where the shadow chose the same.
    pub agreed: u64,
    /// Where it did not.
    pub disagreed: u64,
    /// Sampled decisions dropped because its queue was full.
    pub dropped: u64,
    /// Disagreements by (production host, shadow host), most first.
    pub by_hosts: Vec<PairCount>,
    /// The newest disagreements, newest first.
    pub recent: Vec<Disagreement>,
}

#[derive(Default)]
struct Tally {
    compared: u64,
    agreed: u64,
    disagreed: u64,
    by_hosts: BTreeMap<(String, String), u64>,
    recent: VecDeque<Disagreement>,
}

/// A running shadow (see the module documentation).
pub struct Shadow {
    config: ShadowConfig,
    backend: Backend,
    engine: Arc<PluginEngine>,
    loaded: RwLock<Arc<Loaded>>,
    sender: mpsc::SyncSender<Job>,
    seen: AtomicU64,
    dropped: AtomicU64,
    tally: Mutex<Tally>,
}

impl std::fmt::Debug for Shadow {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Shadow")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn label(hosts: &[String]) -> String {
    if hosts.is_empty() {
        "-".to_string()
    } else {
        hosts.join(",")
    }
}

impl Shadow {
    fn load_set(
        config: &ShadowConfig,
        engine: &Arc<PluginEngine>,
        backend: Backend,
        scheduler: &SchedulerConfig,
        plugins: &PluginsConfig,
    ) -> Result<Loaded, ShadowError> {
        let path = config.plugins.clone();
        let text = std::fs::read_to_string(&path).map_err(|error| ShadowError::Read {
            path: path.clone(),
            error,
        })?;
        let candidate = |error| ShadowError::Candidate {
            path: path.clone(),
            error,
        };
        let set = CandidateSet::parse(&text).map_err(candidate)?;
        let (scheduler, plugins) = set
            .load(engine, backend, scheduler, plugins)
            .map_err(candidate)?;
        Ok(Loaded { scheduler, plugins })
    }

    /// Loads the candidate set of `config` over the live `scheduler` and
    /// `plugins` settings in `engine`, and starts the shadow's thread.
    pub fn start(
        config: &ShadowConfig,
        engine: Arc<PluginEngine>,
        backend: Backend,
        scheduler: &SchedulerConfig,
        plugins: &PluginsConfig,
    ) -> Result<Arc<Self>, ShadowError> {
        let loaded = Self::load_set(config, &engine, backend, scheduler, plugins)?;
        let (sender, receiver) = mpsc::sync_channel(config.queue.max(1));
        let shadow = Arc::new(Self {
            config: config.clone(),
            backend,
            engine,
            loaded: RwLock::new(Arc::new(loaded)),
            sender,
            seen: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            tally: Mutex::default(),
        });
        let weak = Arc::downgrade(&shadow);
        std::thread::Builder::new()
            .name("novum-shadow".to_string())
            .spawn(move || {
                // Ends when the shadow is gone (its sender with it).
                while let Ok(job) = receiver.recv() {
                    let Some(shadow) = weak.upgrade() else {
                        break;
                    };
                    shadow.compare(job);
                }
            })
            .map_err(|error| ShadowError::Read {
                path: config.plugins.clone(),
                error,
            })?;
        Ok(shadow)
    }

    /// Re-reads the candidate file and swaps the set; on an error the
    /// running set stays.
    pub fn reload(
        &self,
        scheduler: &SchedulerConfig,
        plugins: &PluginsConfig,
    ) -> Result<(), ShadowError> {
        let loaded = Self::load_set(&self.config, &self.engine, self.backend, scheduler, plugins)?;
        *self.loaded.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(loaded);
        tracing::info!(plugins = %self.config.plugins.display(), "shadow plugin set reloaded");
        Ok(())
    }

    /// Whether the next decision is re-run: `sample_rate` of them, evenly
    /// (the n-th decision is when ⌊n·rate⌋ grows).
    pub fn sample(&self) -> bool {
        let rate = self.config.sample_rate;
        if rate >= 1.0 {
            return true;
        }
        let seen = self.seen.fetch_add(1, Ordering::Relaxed);
        ((seen + 1) as f64 * rate).floor() > (seen as f64 * rate).floor()
    }

    /// Queues production's finished `decision` and its `inputs` for the
    /// shadow, without waiting: a full queue drops them (counted).
    pub fn offer(&self, decision: Decision, inputs: DecisionInputs) {
        let job = Job {
            production: decision,
            inputs,
        };
        if self.sender.try_send(job).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped == 1 || dropped.is_multiple_of(1000) {
                tracing::warn!(dropped, "shadow scheduler behind: decisions not compared");
            }
        }
    }

    fn compare(&self, job: Job) {
        let loaded = Arc::clone(&self.loaded.read().unwrap_or_else(PoisonError::into_inner));
        let shadow = whatif::replay(
            &loaded.plugins,
            &loaded.scheduler,
            &job.inputs,
            novum_db::now(),
        );
        let comparison = whatif::compare(&job.production, &shadow);
        let mut tally = lock(&self.tally);
        tally.compared += 1;
        if comparison.same_choice {
            tally.agreed += 1;
            return;
        }
        tally.disagreed += 1;
        *tally
            .by_hosts
            .entry((label(&comparison.before), label(&comparison.after)))
            .or_default() += 1;
        if tally.recent.len() == RECENT_DISAGREEMENTS {
            tally.recent.pop_back();
        }
        tally.recent.push_front(Disagreement {
            request_id: job.production.request_id.clone(),
            decided_at: job.production.decided_at.clone(),
            production: comparison.before,
            shadow: comparison.after,
            production_result: comparison.before_result,
            shadow_result: comparison.after_result,
            why: comparison.changes,
            changed_hosts: comparison.changed_hosts,
        });
    }

    /// What the shadow has seen since it started.
    pub fn report(&self) -> ShadowReport {
        let loaded = Arc::clone(&self.loaded.read().unwrap_or_else(PoisonError::into_inner));
        let tally = lock(&self.tally);
        let mut by_hosts: Vec<PairCount> = tally
            .by_hosts
            .iter()
            .map(|((production, shadow), count)| PairCount {
                production: production.clone(),
                shadow: shadow.clone(),
                count: *count,
            })
            .collect();
        by_hosts.sort_by_key(|pair| std::cmp::Reverse(pair.count));
        ShadowReport {
            plugins: self.config.plugins.display().to_string(),
            filters: loaded
                .plugins
                .filters()
                .iter()
                .map(|filter| filter.name().to_string())
                .collect(),
            weighers: loaded
                .plugins
                .weighers()
                .iter()
                .map(|entry| (entry.plugin.name().to_string(), entry.multiplier))
                .collect(),
            sample_rate: self.config.sample_rate,
            compared: tally.compared,
            agreed: tally.agreed,
            disagreed: tally.disagreed,
            dropped: self.dropped.load(Ordering::Relaxed),
            by_hosts,
            recent: tally.recent.iter().cloned().collect(),
        }
    }
}
