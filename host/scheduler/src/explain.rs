//! What the decision log keeps of one scheduling decision ([`Decision`]):
//! the request in brief, the outcome, per rejected host which plugin
//! rejected it and why, and the best hosts of the weighed ranking with each
//! weigher's raw weight, normalized weight and multiplier.
//!
//! [`Decision::new`] runs on the scheduling thread right after the
//! pipeline, so it only moves what the pipeline's [`Trace`] holds and copies
//! the few hosts of the ranking it keeps (at most `top`); grouping the
//! rejections by plugin and reason ([`Decision::finish`]) and everything
//! after it run off the decision's path, in the log's writer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::pipeline::{
    FilterCount, HostRejection, ScheduleError, Selection, Trace, rejection_counts,
};
use super::state::{CloudSnapshot, SchedulingRequest};
use super::whatif::policy_name;

/// One scheduling decision as the decision log keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The API request it served (`x-openstack-request-id`).
    pub request_id: String,
    /// The instances it placed (or failed to).
    pub instance_uuids: Vec<String>,
    /// `build`, `resize` or `unshelve`.
    pub purpose: String,
    /// When it was decided (RFC 3339, UTC).
    pub decided_at: String,
    /// The request in brief.
    pub request: RequestSummary,
    /// Where the instances went, or why not.
    pub outcome: Outcome,
    /// Hosts the scheduler knew of.
    pub hosts_total: usize,
    /// Hosts that passed every filter (the weighed candidates).
    pub hosts_passed: usize,
    /// Hosts rejected per plugin, most first.
    pub reasons: Vec<ReasonCount>,
    /// Every rejected host, grouped by plugin and reason.
    pub rejections: Vec<RejectionGroup>,
    /// Per filter: hosts in and out, in run order (Nova's "Filter results").
    pub filter_results: Vec<FilterCount>,
    /// The best hosts of the weighed ranking, best first (at most the
    /// log's `top`).
    pub ranking: Vec<RankedHost>,
    /// Hosts whose claim was lost to another decision.
    pub lost_claims: Vec<String>,
    /// Rejections as the pipeline gave them, until [`Decision::finish`]
    /// groups them into `rejections` (never stored).
    #[serde(skip)]
    pending_rejections: Vec<HostRejection>,
}

/// The request of a decision in brief.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestSummary {
    /// The flavor.
    pub flavor: FlavorSummary,
    /// The image id.
    pub image: String,
    /// The project.
    pub project_id: String,
    /// The user.
    pub user_id: String,
    /// The availability zone asked for.
    pub availability_zone: Option<String>,
    /// Instances in the request.
    pub num_instances: u32,
    /// Scheduler hints.
    pub hints: BTreeMap<String, Vec<String>>,
    /// The server group.
    pub group: Option<GroupSummary>,
    /// Hosts the request may not use (a reschedule's tried hosts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_hosts: Vec<String>,
    /// Hosts the request is forced to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub force_hosts: Vec<String>,
}

/// A flavor in brief.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FlavorSummary {
    /// Flavor id.
    pub id: String,
    /// Flavor name.
    pub name: String,
    /// vCPUs.
    pub vcpus: u32,
    /// RAM, MiB.
    pub memory_mb: u64,
    /// Root disk, GiB.
    pub root_gb: u64,
    /// Ephemeral disk, GiB.
    pub ephemeral_gb: u64,
    /// Swap, MiB.
    pub swap_mb: u64,
    /// Extra specs (what capability and aggregate filters match).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_specs: BTreeMap<String, String>,
}

/// A server group in brief.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// Group uuid.
    pub id: String,
    /// Its policy, as Nova names it (`anti-affinity`, ...).
    pub policy: String,
    /// Members before this request.
    pub members: usize,
}

/// What a decision came to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Every instance got a host.
    Placed {
        /// Per instance: the host, its weight, its alternates.
        selections: Vec<Selection>,
    },
    /// Some instance found no host.
    NoValidHost {
        /// The fault message the server got.
        message: String,
    },
    /// The pipeline failed (a plugin with `on_error = "fail-request"`).
    Error {
        /// What went wrong.
        message: String,
    },
}

impl Outcome {
    /// `placed`, `no_valid_host` or `error` (the stored column).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Placed { .. } => "placed",
            Self::NoValidHost { .. } => "no_valid_host",
            Self::Error { .. } => "error",
        }
    }
}

/// Hosts one plugin rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonCount {
    /// The plugin (or `placement`, `ignore_hosts`, `force_hosts`).
    pub plugin: String,
    /// Hosts it rejected.
    pub hosts: usize,
}

/// The hosts one plugin rejected for one reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionGroup {
    /// The plugin.
    pub plugin: String,
    /// Its reason (empty when the plugin gave none).
    pub reason: String,
    /// The hosts, in the order the pipeline saw them.
    pub hosts: Vec<String>,
}

/// One host of the weighed ranking.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankedHost {
    /// 1 for the best.
    pub rank: usize,
    /// The host.
    pub host: String,
    /// Its total weight (the sum of the contributions).
    pub total: f64,
    /// Whether the instance went there.
    pub selected: bool,
    /// Each weigher's part.
    pub weighers: Vec<Contribution>,
}

/// One weigher's part in a host's weight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// The weigher.
    pub weigher: String,
    /// What the plugin answered (`None`: it gave nothing, see `note`).
    pub raw: Option<f64>,
    /// Normalized to 0..1 over the candidates.
    pub normalized: Option<f64>,
    /// The multiplier (an aggregate's, when one overrides it).
    pub multiplier: f64,
    /// `normalized × multiplier`.
    pub weighted: f64,
    /// Why the weigher gave nothing (multiplier 0, a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl RequestSummary {
    /// The brief of `request` (taken apart: the decision path has no more
    /// use for it).
    pub fn of(request: SchedulingRequest) -> Self {
        let SchedulingRequest {
            request,
            ignore_hosts,
            force_hosts,
            ..
        } = request;
        let novum_plugin_sdk::Flavor {
            id,
            name,
            vcpus,
            memory_mb,
            root_gb,
            ephemeral_gb,
            swap_mb,
            extra_specs,
        } = request.flavor;
        let extra_specs = extra_specs
            .into_iter()
            .map(|spec| (spec.key, spec.value))
            .collect();
        Self {
            flavor: FlavorSummary {
                id,
                name,
                vcpus,
                memory_mb,
                root_gb,
                ephemeral_gb,
                swap_mb,
                extra_specs,
            },
            image: request.image.id,
            project_id: request.project_id,
            user_id: request.user_id,
            availability_zone: request.availability_zone,
            num_instances: request.num_instances,
            hints: request
                .scheduler_hints
                .into_iter()
                .map(|hint| (hint.name, hint.values))
                .collect(),
            group: request.group.map(|group| GroupSummary {
                id: group.id,
                policy: policy_name(group.policy).to_string(),
                members: group.members.len(),
            }),
            ignore_hosts,
            force_hosts,
        }
    }
}

impl Decision {
    /// The record of a decision: `request` as scheduled (taken apart),
    /// `snapshot` the hosts it was scheduled over, `trace` what the pipeline
    /// kept, `result` its answer; the `top` best hosts of the ranking are
    /// kept. Cheap (no grouping, no serialization): see
    /// [`Decision::finish`].
    pub fn new(
        purpose: &str,
        decided_at: String,
        request: SchedulingRequest,
        snapshot: &CloudSnapshot,
        trace: Trace,
        result: &Result<Vec<Selection>, ScheduleError>,
        top: usize,
    ) -> Self {
        let request_id = request.request_id.clone();
        let instance_uuids = request.request.instance_uuids.clone();
        let outcome = match result {
            Ok(selections) => Outcome::Placed {
                selections: selections.clone(),
            },
            Err(ScheduleError::NoValidHost(no_valid_host)) => Outcome::NoValidHost {
                message: no_valid_host.to_string(),
            },
            Err(other) => Outcome::Error {
                message: other.to_string(),
            },
        };
        let selected: Vec<&str> = match result {
            Ok(selections) => selections
                .iter()
                .map(|selection| selection.host.as_str())
                .collect(),
            Err(_) => Vec::new(),
        };
        let mut decision = Self {
            request_id,
            instance_uuids,
            purpose: purpose.to_string(),
            decided_at,
            request: RequestSummary::of(request),
            outcome,
            hosts_total: trace.hosts,
            hosts_passed: 0,
            reasons: Vec::new(),
            rejections: Vec::new(),
            filter_results: Vec::new(),
            ranking: Vec::new(),
            lost_claims: Vec::new(),
            pending_rejections: Vec::new(),
        };
        // The last ranking decided: the failed instance's, or the last placed.
        let Some(ranking) = trace.rankings.into_iter().last() else {
            return decision;
        };
        decision.hosts_passed = ranking.weighing.candidates.len();
        decision.ranking = ranking
            .weighed
            .iter()
            .take(top)
            .enumerate()
            .map(|(position, (row, total))| {
                let host = snapshot.hosts()[*row].name.clone();
                let candidate = ranking.weighing.candidates.binary_search(row).ok();
                RankedHost {
                    rank: position + 1,
                    selected: selected.contains(&host.as_str()),
                    host,
                    total: *total,
                    weighers: ranking
                        .weighing
                        .weighers
                        .iter()
                        .map(|weigher| {
                            let value = |values: &[f64]| -> Option<f64> {
                                candidate.and_then(|at| values.get(at).copied())
                            };
                            let raw = value(&weigher.raw);
                            let normalized = value(&weigher.normalized);
                            let multiplier = candidate
                                .map_or(weigher.multiplier, |at| weigher.multiplier_of(at));
                            Contribution {
                                weigher: weigher.weigher.clone(),
                                raw,
                                normalized,
                                multiplier,
                                weighted: normalized.map_or(0.0, |weight| weight * multiplier),
                                note: weigher.skipped.clone(),
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        decision.filter_results = ranking.filter_results;
        decision.lost_claims = ranking.lost_claims;
        decision.pending_rejections = ranking.rejections;
        decision
    }

    /// Groups the rejections by plugin and reason and counts them per
    /// plugin (the log's writer calls it, off the decision's path).
    pub fn finish(&mut self) {
        let rejections = std::mem::take(&mut self.pending_rejections);
        if rejections.is_empty() {
            return;
        }
        self.reasons = rejection_counts(&rejections)
            .into_iter()
            .map(|(plugin, hosts)| ReasonCount { plugin, hosts })
            .collect();
        let mut groups: Vec<RejectionGroup> = Vec::new();
        let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
        for rejection in rejections {
            let key = (rejection.plugin, rejection.reason);
            match index.get(&key) {
                Some(&at) => groups[at].hosts.push(rejection.host),
                None => {
                    index.insert(key.clone(), groups.len());
                    groups.push(RejectionGroup {
                        plugin: key.0,
                        reason: key.1,
                        hosts: vec![rejection.host],
                    });
                }
            }
        }
        self.rejections = groups;
    }

    /// What the requester's project sees of it (no host names, no other
    /// project's anything): the request in brief, the outcome without
    /// hosts, and the hosts rejected per plugin.
    pub fn summary(&self) -> DecisionSummary {
        DecisionSummary {
            request_id: self.request_id.clone(),
            instance_uuids: self.instance_uuids.clone(),
            purpose: self.purpose.clone(),
            decided_at: self.decided_at.clone(),
            // Host names are the operator's: not the ones tried or forced.
            request: RequestSummary {
                ignore_hosts: Vec::new(),
                force_hosts: Vec::new(),
                ..self.request.clone()
            },
            result: self.outcome.label().to_string(),
            message: match &self.outcome {
                Outcome::Placed { .. } => None,
                Outcome::NoValidHost { message } | Outcome::Error { message } => {
                    Some(message.clone())
                }
            },
            reasons: self.reasons.clone(),
        }
    }
}

/// A decision as the requester's project sees it ([`Decision::summary`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionSummary {
    /// The API request it served.
    pub request_id: String,
    /// The instances it placed (or failed to).
    pub instance_uuids: Vec<String>,
    /// `build`, `resize` or `unshelve`.
    pub purpose: String,
    /// When it was decided.
    pub decided_at: String,
    /// The request in brief.
    pub request: RequestSummary,
    /// `placed`, `no_valid_host` or `error`.
    pub result: String,
    /// The fault message, when it failed.
    pub message: Option<String>,
    /// Hosts rejected per plugin, most first.
    pub reasons: Vec<ReasonCount>,
}
