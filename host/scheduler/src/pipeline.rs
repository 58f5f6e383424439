//! The scheduling pipeline, as Nova's filter scheduler:
//!
//! 1. host manager: drop `ignore_hosts`; keep only `force_hosts` /
//!    `force_nodes` (when any match, filters are skipped, as in Nova) and
//!    the `requested_hosts` (which still go through the filters);
//! 2. filters, in configured order, each over the surviving hosts; every
//!    rejection is recorded (plugin + reason) for the "no valid host"
//!    explanation;
//! 3. weighers: per weigher, raw weights min-max normalized over the
//!    candidates to 0..1 (all equal: 0), times the multiplier (per host: the
//!    minimum of its aggregates' `<weigher>_weight_multiplier` metadata, else
//!    the configured one), summed; sorted descending (ties keep host order);
//! 4. a random pick among the best `host_subset_size`, up to
//!    `max_attempts − 1` alternates, and a claim through [`Claimer`]; a lost
//!    claim moves on to the next alternate.
//!
//! With several instances, each is scheduled in turn and the chosen host's
//! resources are consumed before the next one, as Nova does.
//!
//! The pipeline only sees [`LoadedPlugin`]s, so the same code runs sandboxed
//! components and natively compiled plugins.

use std::fmt;

use novum_plugin_sdk::{Column, Request};
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use super::config::SchedulerConfig;
use super::state::{CloudSnapshot, HostState, SchedulingRequest};
use super::table::{HostRows, build_table};
use novum_plugin_host::bindings::ConvertedRequest;
use novum_plugin_host::{
    CallContext, LoadedPlugin, OnError, PluginFailure, PluginSet, WeigherEntry,
};

/// The answer of a claim attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The resources are ours.
    Won,
    /// Someone else got there first (or the host refused): try the next.
    Lost,
}

/// Claims a host's resources for an instance (the conductor implements this
/// against the database). Called synchronously from the pipeline, which runs
/// on a blocking thread.
pub trait Claimer {
    /// Tries to claim `host` for instance `instance_index` of `request`.
    fn claim(
        &self,
        host: &HostState,
        request: &SchedulingRequest,
        instance_index: usize,
    ) -> ClaimOutcome;
}

/// A [`Claimer`] that always wins (no claims: dry runs, tests, benchmarks).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoClaims;

impl Claimer for NoClaims {
    fn claim(
        &self,
        _host: &HostState,
        _request: &SchedulingRequest,
        _instance_index: usize,
    ) -> ClaimOutcome {
        ClaimOutcome::Won
    }
}

/// Where one instance goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The claimed host.
    pub host: String,
    /// Its compute node uuid.
    pub host_uuid: String,
    /// Its total weight.
    pub weight: f64,
    /// Hosts to retry on (reschedules), best first.
    pub alternates: Vec<String>,
}

/// One host's rejection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostRejection {
    /// Host name.
    pub host: String,
    /// The filter (or `ignore_hosts` / `force_hosts` / `force_nodes`).
    pub plugin: String,
    /// Why.
    pub reason: String,
}

/// How many hosts a filter kept (Nova's "Filter results").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterCount {
    /// The filter.
    pub plugin: String,
    /// Hosts it was given.
    pub hosts_in: usize,
    /// Hosts it passed.
    pub hosts_out: usize,
}

/// Why no host was found, host by host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NoValidHost {
    /// The request id: where its decision is kept (`GET
    /// /novum/v1/decisions/{request_id}`); empty for dry runs.
    pub request_id: String,
    /// The instance (of a multi-create) that found no host.
    pub instance_index: usize,
    /// Per host: which plugin rejected it and why.
    pub rejections: Vec<HostRejection>,
    /// Per filter: hosts in and out, in run order.
    pub filter_results: Vec<FilterCount>,
    /// Hosts whose claim was lost.
    pub lost_claims: Vec<String>,
}

/// Nova's message for a request no host can take.
pub const NO_VALID_HOST_MESSAGE: &str =
    "No valid host was found. There are not enough hosts available.";

/// How many plugins the short reason of a fault names (the most
/// rejecting first).
pub const TOP_REASONS: usize = 3;

/// Hosts rejected per plugin, most first (ties in the order the plugins
/// first rejected a host).
pub fn rejection_counts(rejections: &[HostRejection]) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for rejection in rejections {
        match counts
            .iter_mut()
            .find(|(plugin, _)| *plugin == rejection.plugin)
        {
            Some((_, count)) => *count += 1,
            None => counts.push((rejection.plugin.clone(), 1)),
        }
    }
    // A stable sort keeps first-rejection order among equal counts.
    counts.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    counts
}

/// The top reasons as Nova's log line gives them: `"compute-filter rejected
/// 3 hosts, ram-filter 7"` (at most [`TOP_REASONS`] plugins, then how many
/// more), plus the claims lost; `None` when nothing was rejected.
pub fn top_reasons(counts: &[(String, usize)], lost_claims: usize) -> Option<String> {
    let hosts = |count: usize| if count == 1 { "host" } else { "hosts" };
    let mut parts: Vec<String> = counts
        .iter()
        .take(TOP_REASONS)
        .enumerate()
        .map(|(position, (plugin, count))| {
            if position == 0 {
                format!("{plugin} rejected {count} {}", hosts(*count))
            } else {
                format!("{plugin} {count}")
            }
        })
        .collect();
    if counts.len() > TOP_REASONS {
        let others = counts.len() - TOP_REASONS;
        parts.push(format!(
            "{others} more {}",
            if others == 1 { "plugin" } else { "plugins" }
        ));
    }
    if lost_claims > 0 {
        parts.push(format!(
            "claims lost on {lost_claims} {}",
            hosts(lost_claims)
        ));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

impl NoValidHost {
    /// A multi-line explanation for operators and logs: the message, Nova's
    /// "Filter results" and every host's rejection.
    pub fn explanation(&self) -> String {
        let mut text = self.to_string();
        if !self.filter_results.is_empty() {
            let results: Vec<String> = self
                .filter_results
                .iter()
                .map(|count| {
                    format!(
                        "{}: (start: {}, end: {})",
                        count.plugin, count.hosts_in, count.hosts_out
                    )
                })
                .collect();
            text.push_str(&format!(" Filter results: [{}]", results.join(", ")));
        }
        for rejection in &self.rejections {
            text.push_str(&format!(
                "\n  {}: rejected by {}: {}",
                rejection.host, rejection.plugin, rejection.reason
            ));
        }
        for host in &self.lost_claims {
            text.push_str(&format!("\n  {host}: claim lost"));
        }
        text
    }
}

/// The fault message: Nova's, the top reasons with their host counts, and
/// where the whole decision is (`novum decision show REQUEST_ID`).
impl fmt::Display for NoValidHost {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(NO_VALID_HOST_MESSAGE)?;
        let counts = rejection_counts(&self.rejections);
        match top_reasons(&counts, self.lost_claims.len()) {
            Some(reasons) => write!(formatter, " Top reasons: {reasons}.")?,
            None => formatter.write_str(" No hosts to choose from.")?,
        }
        if !self.request_id.is_empty() {
            write!(
                formatter,
                " Decision: novum decision show {}",
                self.request_id
            )?;
        }
        Ok(())
    }
}

/// A failed scheduling request.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// No host passed (or every claim was lost).
    #[error("{0}")]
    NoValidHost(NoValidHost),
    /// A plugin with `on_error = "fail-request"` failed.
    #[error("scheduler plugin {plugin} failed: {failure}")]
    PluginFailed {
        /// The plugin.
        plugin: String,
        /// What went wrong.
        failure: PluginFailure,
    },
}

/// The filtered and weighed candidates of one instance.
#[derive(Clone, Debug, Default)]
pub struct Ranking {
    /// (row index, total weight), best first.
    pub weighed: Vec<(usize, f64)>,
    /// Rejections so far.
    pub rejections: Vec<HostRejection>,
    /// Filter counts.
    pub filter_results: Vec<FilterCount>,
    /// What each weigher gave, when asked for ([`rank_traced`]).
    pub weighing: Option<Weighing>,
}

/// What one weigher gave the candidates of a ranking (for the decision
/// log): the vectors the pipeline computes anyway, kept instead of dropped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WeigherTrace {
    /// The weigher.
    pub weigher: String,
    /// Its configured multiplier.
    pub multiplier: f64,
    /// Per candidate, when aggregates override the multiplier.
    pub multipliers: Option<Vec<f64>>,
    /// Raw weights per candidate (empty when the weigher gave none).
    pub raw: Vec<f64>,
    /// Normalized weights per candidate (empty when the weigher gave none).
    pub normalized: Vec<f64>,
    /// Why the weigher gave nothing: a multiplier of 0, or its failure.
    pub skipped: Option<String>,
}

impl WeigherTrace {
    /// The multiplier candidate `position` had.
    pub fn multiplier_of(&self, position: usize) -> f64 {
        self.multipliers
            .as_ref()
            .and_then(|multipliers| multipliers.get(position).copied())
            .unwrap_or(self.multiplier)
    }
}

/// The weighing of one ranking: the candidates (row indices, in the order
/// of every [`WeigherTrace`]'s vectors) and each weigher's part.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Weighing {
    /// Candidate rows, ascending.
    pub candidates: Vec<usize>,
    /// Per weigher, in run order.
    pub weighers: Vec<WeigherTrace>,
}

/// One instance's ranking as the decision log keeps it.
#[derive(Clone, Debug, Default)]
pub struct RankingTrace {
    /// The instance (of a multi-create).
    pub instance_index: usize,
    /// (row index, total weight), best first, before the random pick.
    pub weighed: Vec<(usize, f64)>,
    /// Every rejection (ignore/force, capacity, filters).
    pub rejections: Vec<HostRejection>,
    /// Per filter: hosts in and out.
    pub filter_results: Vec<FilterCount>,
    /// Each weigher's part.
    pub weighing: Weighing,
    /// Hosts whose claim was lost.
    pub lost_claims: Vec<String>,
}

/// What the pipeline saw of a request, kept when asked for
/// ([`schedule_traced`]); the decision log builds its record from it.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// Hosts in the snapshot.
    pub hosts: usize,
    /// One ranking per instance scheduled; when the request failed, the
    /// last is the instance that found no host.
    pub rankings: Vec<RankingTrace>,
}

/// Normalizes `raw` to 0..1 over `floor ..= max` (`floor`: Nova's
/// `minval`; `None`: the smallest weight). A flat range (`floor == max`, or
/// not finite) gives zeros, as Nova's `normalize` does.
pub fn normalize(raw: &[f64], floor: Option<f64>) -> Vec<f64> {
    let min = floor.unwrap_or_else(|| raw.iter().copied().fold(f64::INFINITY, f64::min));
    let max = raw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let range = max - min;
    if range.is_nan() || range == 0.0 || !range.is_finite() {
        return vec![0.0; raw.len()];
    }
    raw.iter().map(|value| (value - min) / range).collect()
}

/// The weight multiplier of every candidate: per host, the minimum of its
/// aggregates' metadata `key` (values that do not parse as finite numbers are
/// ignored, with a warning), else `default`. `None` when no aggregate sets
/// the key: every candidate then has `default`.
pub fn candidate_multipliers(
    rows: &HostRows<'_>,
    candidates: &[usize],
    key: &str,
    default: f64,
) -> Option<Vec<f64>> {
    let group = rows.group(Column::Aggregates);
    let overrides: Vec<Option<f64>> = group
        .aggregates
        .iter()
        .map(|aggregate| {
            let value = aggregate.metadata(key)?;
            match value.trim().parse::<f64>() {
                Ok(number) if number.is_finite() => Some(number),
                _ => {
                    tracing::warn!(
                        key,
                        value,
                        aggregate = aggregate.name.as_str(),
                        "ignoring a non-numeric weight multiplier"
                    );
                    None
                }
            }
        })
        .collect();
    if overrides.iter().all(Option::is_none) {
        return None;
    }
    let lists = &group.host_aggregates;
    Some(
        candidates
            .iter()
            .map(|row| {
                let range = lists.offsets[*row] as usize..lists.offsets[*row + 1] as usize;
                lists.items[range]
                    .iter()
                    .filter_map(|position| overrides[*position as usize])
                    .reduce(f64::min)
                    .unwrap_or(default)
            })
            .collect(),
    )
}

/// The name rejections by the capacity check carry (Nova's Placement).
pub const PLACEMENT: &str = "placement";

/// Applies the host manager's ignore/force options and the capacity check;
/// returns the remaining rows and whether filters are to be skipped (forced
/// hosts).
fn host_manager(
    rows: &HostRows<'_>,
    request: &SchedulingRequest,
    rejections: &mut Vec<HostRejection>,
) -> (Vec<usize>, bool) {
    let mut candidates = Vec::with_capacity(rows.len());
    let forced = !request.force_hosts.is_empty() || !request.force_nodes.is_empty();
    for index in 0..rows.len() {
        let host = rows.get(index);
        let rejection = if request.ignore_hosts.contains(&host.name) {
            Some(("ignore_hosts", "host is in ignore_hosts"))
        } else if !request.force_hosts.is_empty() && !request.force_hosts.contains(&host.name) {
            Some(("force_hosts", "host is not in force_hosts"))
        } else if !request.force_nodes.is_empty() && !request.force_nodes.contains(&host.name) {
            Some(("force_nodes", "node is not in force_nodes"))
        } else if !request.requested_hosts.is_empty()
            && !request.requested_hosts.contains(&host.name)
        {
            Some((
                "requested_destination",
                "host is not the requested destination",
            ))
        } else {
            None
        };
        let rejection = rejection
            .map(|(plugin, reason)| (plugin, reason.to_string()))
            .or_else(|| {
                request
                    .check_capacity
                    .then(|| host.capacity_shortage(&request.request.flavor))
                    .flatten()
                    .map(|reason| (PLACEMENT, reason))
            });
        match rejection {
            Some((plugin, reason)) => rejections.push(HostRejection {
                host: host.name.clone(),
                plugin: plugin.to_string(),
                reason,
            }),
            None => candidates.push(index),
        }
    }
    let skip_filters = forced && !candidates.is_empty();
    (candidates, skip_filters)
}

fn plugin_failed(plugin: &LoadedPlugin, failure: PluginFailure) -> ScheduleError {
    ScheduleError::PluginFailed {
        plugin: plugin.name().to_string(),
        failure,
    }
}

/// Runs the filters over `candidates`.
fn run_filters(
    plugins: &PluginSet,
    rows: &HostRows<'_>,
    context: &CallContext<'_>,
    mut candidates: Vec<usize>,
    ranking: &mut Ranking,
) -> Result<Vec<usize>, ScheduleError> {
    for filter in plugins.filters() {
        if candidates.is_empty() {
            break;
        }
        let hosts_in = candidates.len();
        let outcome = filter.filter(context, |needs| build_table(rows, &candidates, needs));
        match outcome {
            Ok(outcome) => {
                let mut kept = Vec::with_capacity(candidates.len());
                for (index, verdict) in candidates.iter().zip(&outcome.verdicts) {
                    if *verdict == 0 {
                        kept.push(*index);
                    } else {
                        let reason = outcome
                            .reasons
                            .get(*verdict as usize - 1)
                            .cloned()
                            .unwrap_or_default();
                        ranking.rejections.push(HostRejection {
                            host: rows.get(*index).name.clone(),
                            plugin: filter.name().to_string(),
                            reason,
                        });
                    }
                }
                candidates = kept;
            }
            Err(failure) => match filter.on_error() {
                OnError::Ignore => {}
                OnError::FailRequest => return Err(plugin_failed(filter, failure)),
                OnError::RejectHost => {
                    let reason = format!("plugin {} failed: {failure}", filter.name());
                    for index in candidates.drain(..) {
                        ranking.rejections.push(HostRejection {
                            host: rows.get(index).name.clone(),
                            plugin: filter.name().to_string(),
                            reason: reason.clone(),
                        });
                    }
                }
            },
        }
        ranking.filter_results.push(FilterCount {
            plugin: filter.name().to_string(),
            hosts_in,
            hosts_out: candidates.len(),
        });
    }
    Ok(candidates)
}

/// Weighs `candidates`: the sum of each weigher's normalized weights times its
/// (per-host) multiplier, sorted best first. With `trace`, each weigher's
/// vectors are kept there instead of dropped.
fn run_weighers(
    weighers: &[WeigherEntry],
    rows: &HostRows<'_>,
    context: &CallContext<'_>,
    candidates: &[usize],
    mut trace: Option<&mut Vec<WeigherTrace>>,
) -> Result<Vec<(usize, f64)>, ScheduleError> {
    let mut totals = vec![0.0; candidates.len()];
    if candidates.len() > 1 {
        for entry in weighers {
            let plugin = &entry.plugin;
            let multipliers =
                candidate_multipliers(rows, candidates, &entry.multiplier_key, entry.multiplier);
            let mut kept = trace.as_ref().map(|_| WeigherTrace {
                weigher: plugin.name().to_string(),
                multiplier: entry.multiplier,
                ..WeigherTrace::default()
            });
            if entry.multiplier == 0.0 && multipliers.is_none() {
                // Every candidate's weight would be multiplied by 0: skip the
                // call, as Nova does for its zero-multiplier weighers.
                if let (Some(trace), Some(mut kept)) = (trace.as_deref_mut(), kept) {
                    kept.skipped = Some("multiplier 0".to_string());
                    trace.push(kept);
                }
                continue;
            }
            let raw = plugin.weigh(context, |needs| build_table(rows, candidates, needs));
            let raw = match raw {
                Ok(raw) => raw,
                Err(failure) => match plugin.on_error() {
                    OnError::FailRequest => return Err(plugin_failed(plugin, failure)),
                    OnError::Ignore | OnError::RejectHost => {
                        if let (Some(trace), Some(mut kept)) = (trace.as_deref_mut(), kept) {
                            kept.skipped = Some(format!("failed: {failure}"));
                            trace.push(kept);
                        }
                        continue;
                    }
                },
            };
            let normalized = normalize(&raw, entry.normalization_min);
            match &multipliers {
                None => {
                    for (total, weight) in totals.iter_mut().zip(&normalized) {
                        *total += entry.multiplier * weight;
                    }
                }
                Some(multipliers) => {
                    for ((total, weight), multiplier) in
                        totals.iter_mut().zip(&normalized).zip(multipliers)
                    {
                        *total += multiplier * weight;
                    }
                }
            }
            if let (Some(trace), Some(mut kept)) = (trace.as_deref_mut(), kept.take()) {
                kept.multipliers = multipliers;
                kept.raw = raw;
                kept.normalized = normalized;
                trace.push(kept);
            }
        }
    }
    let mut weighed: Vec<(usize, f64)> = candidates.iter().copied().zip(totals).collect();
    weighed.sort_by(|left, right| right.1.total_cmp(&left.1));
    Ok(weighed)
}

/// Filters and weighs the hosts for one instance of `request`.
pub fn rank(
    plugins: &PluginSet,
    rows: &HostRows<'_>,
    request: &SchedulingRequest,
    plugin_request: &Request,
) -> Result<Ranking, ScheduleError> {
    rank_traced(plugins, rows, request, plugin_request, false)
}

/// [`rank`], keeping each weigher's part in [`Ranking::weighing`] when
/// `keep_weighing`.
pub fn rank_traced(
    plugins: &PluginSet,
    rows: &HostRows<'_>,
    request: &SchedulingRequest,
    plugin_request: &Request,
    keep_weighing: bool,
) -> Result<Ranking, ScheduleError> {
    let mut ranking = Ranking::default();
    let converted = ConvertedRequest::new(plugin_request);
    let context = CallContext {
        request_id: &request.request_id,
        request: &converted,
    };
    let (candidates, skip_filters) = host_manager(rows, request, &mut ranking.rejections);
    let candidates = if skip_filters {
        candidates
    } else {
        run_filters(plugins, rows, &context, candidates, &mut ranking)?
    };
    let mut weighers = Vec::new();
    ranking.weighed = run_weighers(
        plugins.weighers(),
        rows,
        &context,
        &candidates,
        keep_weighing.then_some(&mut weighers),
    )?;
    if keep_weighing {
        ranking.weighing = Some(Weighing {
            candidates,
            weighers,
        });
    }
    Ok(ranking)
}

/// Schedules every instance of `request`: a claimed host and alternates per
/// instance, or why not.
pub fn schedule(
    plugins: &PluginSet,
    config: &SchedulerConfig,
    snapshot: &CloudSnapshot,
    request: &SchedulingRequest,
    claimer: &dyn Claimer,
    rng: &mut dyn RngCore,
) -> Result<Vec<Selection>, ScheduleError> {
    schedule_traced(plugins, config, snapshot, request, claimer, rng, None)
}

/// [`schedule`], keeping in `trace` (when given) what the decision log
/// needs: the vectors the pipeline computes anyway are moved there rather
/// than dropped; only a failed request's rejections are copied.
pub fn schedule_traced(
    plugins: &PluginSet,
    config: &SchedulerConfig,
    snapshot: &CloudSnapshot,
    request: &SchedulingRequest,
    claimer: &dyn Claimer,
    rng: &mut dyn RngCore,
    mut trace: Option<&mut Trace>,
) -> Result<Vec<Selection>, ScheduleError> {
    let mut rows = HostRows::new(snapshot);
    if let Some(trace) = trace.as_deref_mut() {
        trace.hosts = rows.len();
    }
    let mut plugin_request = request.request.clone();
    let instances = request.request.num_instances.max(1) as usize;
    let mut selections = Vec::with_capacity(instances);
    for instance_index in 0..instances {
        let ranking = rank_traced(plugins, &rows, request, &plugin_request, trace.is_some())?;
        let mut order: Vec<(usize, f64)> = ranking.weighed;
        let mut kept = trace.as_ref().map(|_| RankingTrace {
            instance_index,
            weighed: order.clone(),
            weighing: ranking.weighing.unwrap_or_default(),
            ..RankingTrace::default()
        });
        let no_valid_host = |lost_claims: Vec<String>,
                             rejections: Vec<HostRejection>,
                             filter_results: Vec<FilterCount>,
                             kept: Option<RankingTrace>,
                             trace: Option<&mut Trace>| {
            if let (Some(trace), Some(mut kept)) = (trace, kept) {
                kept.rejections = rejections.clone();
                kept.filter_results = filter_results.clone();
                kept.lost_claims = lost_claims.clone();
                trace.rankings.push(kept);
            }
            ScheduleError::NoValidHost(NoValidHost {
                request_id: request.request_id.clone(),
                instance_index,
                rejections,
                filter_results,
                lost_claims,
            })
        };
        if order.is_empty() {
            return Err(no_valid_host(
                Vec::new(),
                ranking.rejections,
                ranking.filter_results,
                kept,
                trace,
            ));
        }
        let subset = config.host_subset_size.clamp(1, order.len());
        let chosen = if subset > 1 {
            rng.random_range(0..subset)
        } else {
            0
        };
        let first = order.remove(chosen);
        order.insert(0, first);
        order.truncate(config.max_attempts.max(1));

        let mut lost_claims = Vec::new();
        let mut won = None;
        for (position, (index, weight)) in order.iter().enumerate() {
            let host = rows.get(*index);
            match claimer.claim(host, request, instance_index) {
                ClaimOutcome::Won => {
                    won = Some((position, *index, *weight));
                    break;
                }
                ClaimOutcome::Lost => lost_claims.push(host.name.clone()),
            }
        }
        let Some((position, index, weight)) = won else {
            return Err(no_valid_host(
                lost_claims,
                ranking.rejections,
                ranking.filter_results,
                kept,
                trace,
            ));
        };
        if let (Some(trace), Some(mut kept)) = (trace.as_deref_mut(), kept.take()) {
            kept.rejections = ranking.rejections;
            kept.filter_results = ranking.filter_results;
            kept.lost_claims = lost_claims;
            trace.rankings.push(kept);
        }
        let host = rows.get(index);
        selections.push(Selection {
            host: host.name.clone(),
            host_uuid: host.uuid.clone(),
            weight,
            alternates: order[position + 1..]
                .iter()
                .map(|(alternate, _)| rows.get(*alternate).name.clone())
                .collect(),
        });

        let host_name = host.name.clone();
        let instance_uuid = plugin_request.instance_uuids.get(instance_index).cloned();
        rows.get_mut(index)
            .consume(&plugin_request, instance_uuid.as_deref());
        if let Some(group) = plugin_request.group.as_mut() {
            if !group.hosts.contains(&host_name) {
                group.hosts.push(host_name);
            }
            if let Some(uuid) = instance_uuid
                && !group.members.contains(&uuid)
            {
                group.members.push(uuid);
            }
        }
    }
    Ok(selections)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Aggregate;

    #[test]
    fn normalization_is_min_max_and_flat_is_zero() {
        assert_eq!(normalize(&[2.0, 4.0, 3.0], None), vec![0.0, 1.0, 0.5]);
        assert_eq!(normalize(&[5.0, 5.0], None), vec![0.0, 0.0]);
        assert_eq!(normalize(&[], None), Vec::<f64>::new());
        assert_eq!(normalize(&[-10.0, 0.0], None), vec![0.0, 1.0]);
    }

    #[test]
    fn normalization_floor_is_novas_minval() {
        assert_eq!(normalize(&[1024.0, 2048.0], Some(0.0)), vec![0.5, 1.0]);
        assert_eq!(normalize(&[2.0, 4.0, 3.0], Some(0.0)), vec![0.5, 1.0, 0.75]);
        // Equal weights above the floor are not flat: all 1.0.
        assert_eq!(normalize(&[5.0, 5.0], Some(0.0)), vec![1.0, 1.0]);
        // Only a range of zero is flat.
        assert_eq!(normalize(&[0.0, 0.0], Some(0.0)), vec![0.0, 0.0]);
    }

    #[test]
    fn aggregate_multiplier_takes_the_minimum() {
        let aggregates = vec![
            Aggregate {
                id: 1,
                name: "a".into(),
                metadata: vec![("ram_weight_multiplier".into(), "3.0".into())],
            },
            Aggregate {
                id: 2,
                name: "b".into(),
                metadata: vec![("ram_weight_multiplier".into(), "-2".into())],
            },
            Aggregate {
                id: 3,
                name: "c".into(),
                metadata: vec![("ram_weight_multiplier".into(), "junk".into())],
            },
            Aggregate {
                id: 4,
                name: "d".into(),
                metadata: vec![],
            },
        ];
        let host = |aggregates: Vec<u32>| HostState {
            aggregates,
            ..HostState::default()
        };
        let snapshot = CloudSnapshot::new(
            vec![
                host(vec![1, 2]),
                host(vec![1, 4]),
                host(vec![3, 4]),
                host(vec![]),
            ],
            aggregates,
        );
        let rows = HostRows::new(&snapshot);
        let key = "ram_weight_multiplier";
        assert_eq!(
            candidate_multipliers(&rows, &[0, 1, 2, 3], key, 1.5),
            Some(vec![-2.0, 3.0, 1.5, 1.5])
        );
        assert_eq!(
            candidate_multipliers(&rows, &[2, 1], key, 1.0),
            Some(vec![1.0, 3.0])
        );
        assert_eq!(
            candidate_multipliers(&rows, &[0, 1], "cpu_weight_multiplier", 1.0),
            None
        );
    }

    #[test]
    fn explanation_lists_hosts_and_filter_counts() {
        let error = NoValidHost {
            request_id: "req-1".into(),
            instance_index: 0,
            rejections: vec![HostRejection {
                host: "h1".into(),
                plugin: "compute-filter".into(),
                reason: "down".into(),
            }],
            filter_results: vec![FilterCount {
                plugin: "compute-filter".into(),
                hosts_in: 1,
                hosts_out: 0,
            }],
            lost_claims: vec![],
        };
        let text = error.explanation();
        assert!(
            text.contains("compute-filter: (start: 1, end: 0)"),
            "{text}"
        );
        assert!(
            text.contains("h1: rejected by compute-filter: down"),
            "{text}"
        );
        assert_eq!(
            error.to_string(),
            "No valid host was found. There are not enough hosts available. \
             Top reasons: compute-filter rejected 1 host. Decision: novum decision show req-1"
        );
    }

    #[test]
    fn top_reasons_count_hosts_per_plugin_most_first() {
        let rejection = |plugin: &str| HostRejection {
            host: "h".into(),
            plugin: plugin.into(),
            reason: "r".into(),
        };
        let rejections: Vec<HostRejection> = ["a", "b", "b", "c", "d", "d", "d", "e"]
            .iter()
            .map(|plugin| rejection(plugin))
            .collect();
        let counts = rejection_counts(&rejections);
        assert_eq!(
            counts,
            vec![
                ("d".to_string(), 3),
                ("b".to_string(), 2),
                ("a".to_string(), 1),
                ("c".to_string(), 1),
                ("e".to_string(), 1)
            ]
        );
        assert_eq!(
            top_reasons(&counts, 2).as_deref(),
            Some("d rejected 3 hosts, b 2, a 1, 2 more plugins, claims lost on 2 hosts")
        );
        assert_eq!(top_reasons(&[], 0), None);
        let empty = NoValidHost::default();
        assert_eq!(
            empty.to_string(),
            "No valid host was found. There are not enough hosts available. No hosts to choose from."
        );
    }
}
