//! What the controller's `/metrics` shows of scheduling: every pass of the
//! scheduler ([`Conductor::schedule_once`](super::Conductor)) counted by what
//! it was for and how it ended, and timed by stage.
//!
//! - `novum_scheduler_decisions_total{purpose,outcome}`: `purpose` is
//!   `build`, `resize` or `unshelve`; `outcome` is `placed`, `no_valid_host`,
//!   `claims_lost` (every chosen host's claim lost to a concurrent decision:
//!   the conductor schedules again on a fresh view) or `error`.
//! - `novum_scheduler_stage_duration_seconds{stage}`: `wait` (for a
//!   scheduling slot, one per core), `state` (bringing the in-memory host
//!   state up to date: `HostStateCache::snapshot`),
//!   `pipeline` (the filter and weigher plugins, without the claims) and
//!   `claim` (the claims on the chosen hosts, lost ones included).
//! - `novum_scheduler_pipeline_cpu_seconds`: the CPU time of the pipeline
//!   stage (its thread's, so waiting for a core is not in it).
//! - `novum_scheduler_decision_duration_seconds`: a whole pass.
//! - `novum_scheduler_claims_total{outcome}`: claims `won` or `lost`.
//!
//! Every series is registered (at zero) when the conductor is built, with
//! the `metrics` recorder in scope then; recording is a handle update.

use std::time::Duration;

use metrics::{Counter, Histogram};

/// A scheduling pass's time in each of its stages.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimes {
    /// Waiting for a scheduling slot.
    pub wait: Duration,
    /// Loading the hosts' state.
    pub state: Duration,
    /// The filter and weigher plugins (the claims excluded).
    pub pipeline: Duration,
    /// Claiming on the chosen hosts.
    pub claim: Duration,
    /// The CPU time the pipeline's thread spent in the plugins (part of
    /// `pipeline`, which also counts waiting for a core).
    pub pipeline_cpu: Duration,
}

impl StageTimes {
    /// The whole pass.
    pub fn total(&self) -> Duration {
        self.wait + self.state + self.pipeline + self.claim
    }
}

/// How a scheduling pass ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A host was claimed.
    Placed,
    /// No host passed the filters (or had room).
    NoValidHost,
    /// Hosts passed, but every claim was lost to a concurrent decision.
    ClaimsLost,
    /// The pass failed (a plugin set or the database).
    Error,
}

impl Outcome {
    const ALL: [Outcome; 4] = [
        Outcome::Placed,
        Outcome::NoValidHost,
        Outcome::ClaimsLost,
        Outcome::Error,
    ];

    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Placed => "placed",
            Outcome::NoValidHost => "no_valid_host",
            Outcome::ClaimsLost => "claims_lost",
            Outcome::Error => "error",
        }
    }
}

/// The `purpose` labels ([`super::Purpose::label`]).
const PURPOSES: [&str; 3] = ["build", "resize", "unshelve"];

/// The handles of the scheduling series.
#[derive(Debug)]
pub struct SchedulingMetrics {
    /// By purpose, then outcome.
    decisions: [[Counter; Outcome::ALL.len()]; PURPOSES.len()],
    wait: Histogram,
    state: Histogram,
    pipeline: Histogram,
    pipeline_cpu: Histogram,
    claim: Histogram,
    decision: Histogram,
    claims_won: Counter,
    claims_lost: Counter,
}

impl SchedulingMetrics {
    /// Registers every series with the `metrics` recorder in scope (no-op
    /// handles when there is none).
    pub fn register() -> Self {
        let stage = |name: &'static str| metrics::histogram!("novum_scheduler_stage_duration_seconds", "stage" => name);
        Self {
            decisions: PURPOSES.map(|purpose| {
                Outcome::ALL.map(|outcome| {
                    metrics::counter!(
                        "novum_scheduler_decisions_total",
                        "purpose" => purpose,
                        "outcome" => outcome.as_str()
                    )
                })
            }),
            wait: stage("wait"),
            state: stage("state"),
            pipeline: stage("pipeline"),
            pipeline_cpu: metrics::histogram!("novum_scheduler_pipeline_cpu_seconds"),
            claim: stage("claim"),
            decision: metrics::histogram!("novum_scheduler_decision_duration_seconds"),
            claims_won: metrics::counter!("novum_scheduler_claims_total", "outcome" => "won"),
            claims_lost: metrics::counter!("novum_scheduler_claims_total", "outcome" => "lost"),
        }
    }

    /// Records one pass for `purpose` (one of the purpose labels) that
    /// ended in `outcome` after `times`.
    pub(super) fn record_decision(&self, purpose: &str, outcome: Outcome, times: StageTimes) {
        let purpose_index = PURPOSES.iter().position(|known| *known == purpose);
        let outcome_index = Outcome::ALL.iter().position(|known| *known == outcome);
        if let (Some(purpose_index), Some(outcome_index)) = (purpose_index, outcome_index) {
            self.decisions[purpose_index][outcome_index].increment(1);
        }
        self.wait.record(times.wait);
        self.state.record(times.state);
        self.pipeline.record(times.pipeline);
        self.pipeline_cpu.record(times.pipeline_cpu);
        self.claim.record(times.claim);
        self.decision.record(times.total());
    }

    /// Records one claim attempt.
    pub(super) fn record_claim(&self, won: bool) {
        if won {
            self.claims_won.increment(1);
        } else {
            self.claims_lost.increment(1);
        }
    }
}
