//! What-if and replay (issue 15): the pipeline run without claiming or
//! reserving anything, with the live plugin set or a candidate one.
//!
//! - [`Conductor::plan`] (`POST /novum/v1/scheduling/plan`): a request
//!   made of a flavor, an image, a group, hints, a count and a zone, over
//!   the live host state (the same snapshot a decision would take, the
//!   reservations of claims in flight counted); which hosts would take it,
//!   how many of the flavor still fit on the hosts that pass, and, with a
//!   candidate set, the same again and the differences.
//! - [`Conductor::replay`] (`POST /novum/v1/decisions/{request_id}/replay`):
//!   the kept inputs of a logged decision run again, with its seed, and
//!   compared with what was decided. The same set over the same inputs
//!   gives the same answer.
//!
//! Both take one of the scheduler's slots while their plugins run, as a
//! decision does, so a what-if never starves real decisions of cores.

use std::collections::BTreeMap;
use std::sync::Arc;

use novum_plugin_host::{PluginSet, PluginsConfig};
use novum_scheduler::explain::RequestSummary;
use novum_scheduler::whatif::{
    self, CandidateError, CandidateSet, Capacity, Comparison, DecisionInputs,
};
use novum_scheduler::{CloudSnapshot, Decision, SchedulerConfig, SchedulingRequest};
use serde::Serialize;
use uuid::Uuid;

use super::model::FlavorSnapshot;
use super::{Conductor, ConductorError, RequestParts, Result};
use crate::store::decisions as store;

/// The seed of a what-if's random pick: a plan answers the same twice.
pub const PLAN_SEED: u64 = 0;

/// What a what-if asks for.
#[derive(Clone, Debug)]
pub struct PlanParams {
    /// The API request's id.
    pub request_id: String,
    /// The flavor.
    pub flavor: FlavorSnapshot,
    /// The image id.
    pub image_id: String,
    /// Its properties.
    pub image_properties: BTreeMap<String, String>,
    /// The project asking (the caller's).
    pub project_id: String,
    /// The user asking.
    pub user_id: String,
    /// A server group uuid.
    pub server_group: Option<String>,
    /// Scheduler hints.
    pub hints: BTreeMap<String, Vec<String>>,
    /// Servers.
    pub count: u32,
    /// `zone`, `zone:host` or `:host`.
    pub availability_zone: Option<String>,
    /// Hosts of each ranking and capacity list shown at most.
    pub top: usize,
}

/// A loaded candidate plugin set: its scheduler settings and plugins.
#[derive(Debug)]
pub struct Candidate {
    /// Its scheduler settings (the live ones under its own lists).
    pub scheduler: SchedulerConfig,
    /// Its plugins.
    pub plugins: PluginSet,
}

/// The plugins a run used.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SetSummary {
    /// `live` or `candidate`.
    pub name: String,
    /// Filters, in run order.
    pub filters: Vec<String>,
    /// Weighers with their multipliers.
    pub weighers: Vec<(String, f64)>,
}

impl SetSummary {
    fn of(name: &str, plugins: &PluginSet) -> Self {
        Self {
            name: name.to_string(),
            filters: plugins
                .filters()
                .iter()
                .map(|filter| filter.name().to_string())
                .collect(),
            weighers: plugins
                .weighers()
                .iter()
                .map(|entry| (entry.plugin.name().to_string(), entry.multiplier))
                .collect(),
        }
    }
}

/// One set's answer to a what-if.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanRun {
    /// The plugins.
    pub set: SetSummary,
    /// What the pipeline decided (ranking cut to the plan's `top`).
    pub decision: Decision,
    /// How many of the flavor fit on the hosts that pass (hosts cut to
    /// `top`; the sums count every host).
    pub capacity: Capacity,
}

/// A what-if's answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    /// The request in brief.
    pub request: RequestSummary,
    /// With the live set.
    pub live: PlanRun,
    /// With the candidate set, when given.
    pub candidate: Option<PlanRun>,
    /// Live against candidate, when given.
    pub differences: Option<Comparison>,
}

/// One decision run again.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Replay {
    /// The decision's row id.
    pub id: i64,
    /// When it was decided.
    pub decided_at: String,
    /// The plugins it was run again with.
    pub set: SetSummary,
    /// Hosts the decision knew of.
    pub hosts_total: usize,
    /// Hosts kept with it (those its plugins were given).
    pub hosts_kept: usize,
    /// What it ran to (ranking cut to `top`).
    pub replayed: Decision,
    /// What was decided against what the replay decides.
    pub comparison: Comparison,
}

fn cut(mut decision: Decision, top: usize) -> Decision {
    decision.ranking.truncate(top);
    decision
}

fn run(
    name: &str,
    plugins: &PluginSet,
    scheduler: &SchedulerConfig,
    snapshot: &CloudSnapshot,
    request: &SchedulingRequest,
    top: usize,
) -> (PlanRun, Decision) {
    let decision = whatif::evaluate(
        plugins,
        scheduler,
        snapshot,
        request,
        PLAN_SEED,
        "plan",
        novum_db::now(),
    );
    let mut capacity = Capacity::of(&decision, snapshot, &request.request.flavor);
    capacity.hosts.truncate(top);
    let shown = PlanRun {
        set: SetSummary::of(name, plugins),
        decision: cut(decision.clone(), top),
        capacity,
    };
    (shown, decision)
}

impl Conductor {
    /// Loads candidate set `text` (see [`CandidateSet`]) over the live
    /// scheduler settings and `plugins` (the configuration's `[plugins]`)
    /// in the live set's engine. Blocking (it may compile components).
    pub fn load_candidate(
        &self,
        text: &str,
        plugins: &PluginsConfig,
    ) -> std::result::Result<Candidate, CandidateError> {
        let set = CandidateSet::parse(text)?;
        let (scheduler, plugins) = set.load(
            self.plugins.engine(),
            self.scheduler.backend,
            &self.scheduler,
            plugins,
        )?;
        Ok(Candidate { scheduler, plugins })
    }

    /// Runs a what-if (see the module documentation).
    pub async fn plan(
        self: &Arc<Self>,
        params: PlanParams,
        candidate: Option<Candidate>,
    ) -> Result<Plan> {
        if let Some(group) = &params.server_group
            && self.server_group(group).await?.is_none()
        {
            return Err(ConductorError::BadRequest(format!(
                "Server group {group} could not be found."
            )));
        }
        let count = params.count.max(1);
        let request = self
            .build_request(RequestParts {
                request_id: &params.request_id,
                flavor: &params.flavor,
                image_id: &params.image_id,
                image_properties: &params.image_properties,
                project_id: &params.project_id,
                user_id: &params.user_id,
                availability_zone: params.availability_zone.as_deref(),
                hints: params.hints.clone(),
                server_group: params.server_group.as_deref(),
                // Instances that do not exist: what group filters count.
                instance_uuids: (0..count).map(|_| Uuid::new_v4().to_string()).collect(),
                count,
            })
            .await?;
        let slot = self.scheduling_slot().await?;
        let snapshot = self.host_state.snapshot().await?;
        let live = self.plugins.current();
        let scheduler = self.scheduler.clone();
        let top = params.top.max(1);
        let plan = tokio::task::spawn_blocking(move || {
            let (live_run, live_decision) =
                run("live", &live, &scheduler, &snapshot, &request, top);
            let (candidate, differences) = match &candidate {
                Some(candidate) => {
                    let (shown, decision) = run(
                        "candidate",
                        &candidate.plugins,
                        &candidate.scheduler,
                        &snapshot,
                        &request,
                        top,
                    );
                    (
                        Some(shown),
                        Some(whatif::compare(&live_decision, &decision)),
                    )
                }
                None => (None, None),
            };
            drop(slot);
            Plan {
                request: RequestSummary::of(request),
                live: live_run,
                candidate,
                differences,
            }
        })
        .await
        .map_err(|error| ConductorError::Conflict(format!("what-if task failed: {error}")))?;
        Ok(plan)
    }

    /// Runs the logged decisions of `request_id` again over their kept
    /// inputs, with `candidate` or the live set, and compares each with
    /// what was decided. NotFound when no decision of the request is kept,
    /// Conflict when none kept its inputs.
    pub async fn replay(
        self: &Arc<Self>,
        request_id: &str,
        candidate: Option<Candidate>,
        top: usize,
    ) -> Result<Vec<Replay>> {
        // Inputs this controller keeps are encoded when asked for.
        self.decisions.flush().await;
        let kept = store::for_request(&self.db, request_id).await?;
        if kept.is_empty() {
            return Err(ConductorError::NotFound(format!(
                "No scheduling decision is kept for request {request_id}."
            )));
        }
        let mut runs = Vec::new();
        for stored in kept {
            let Some(text) = store::inputs(&self.db, stored.id).await? else {
                continue;
            };
            let (inputs, hosts_total) = DecisionInputs::decode(&text)
                .map_err(|error| ConductorError::Conflict(error.to_string()))?;
            runs.push((stored, inputs, hosts_total));
        }
        if runs.is_empty() {
            return Err(ConductorError::Conflict(format!(
                "The inputs of request {request_id}'s decisions are no longer kept \
                 ([scheduler] decision_replay_size keeps the newest only)."
            )));
        }
        let slot = self.scheduling_slot().await?;
        let live = self.plugins.current();
        let scheduler = self.scheduler.clone();
        let top = top.max(1);
        let replays = tokio::task::spawn_blocking(move || {
            let (name, plugins, scheduler) = match &candidate {
                Some(candidate) => ("candidate", &candidate.plugins, &candidate.scheduler),
                None => ("live", live.as_ref(), &scheduler),
            };
            let replays = runs
                .into_iter()
                .map(|(stored, inputs, hosts_total)| {
                    let replayed = whatif::replay(plugins, scheduler, &inputs, novum_db::now());
                    Replay {
                        id: stored.id,
                        decided_at: stored.decision.decided_at.clone(),
                        set: SetSummary::of(name, plugins),
                        hosts_total,
                        hosts_kept: inputs.hosts.len(),
                        comparison: whatif::compare(&stored.decision, &replayed),
                        replayed: cut(replayed, top),
                    }
                })
                .collect();
            drop(slot);
            replays
        })
        .await
        .map_err(|error| ConductorError::Conflict(format!("replay task failed: {error}")))?;
        Ok(replays)
    }

    /// One of the scheduler's slots (one per core), held while plugins run.
    async fn scheduling_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        Arc::clone(&self.scheduling_slots)
            .acquire_owned()
            .await
            .map_err(|error| ConductorError::Conflict(format!("scheduler closed: {error}")))
    }
}
