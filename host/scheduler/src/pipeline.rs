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
use serde::Serialize;

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
#[derive(Clone, Debug, PartialEq, Serialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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
    /// The instance (of a multi-create) that found no host.
    pub instance_index: usize,
    /// Per host: which plugin rejected it and why.
    pub rejections: Vec<HostRejection>,
    /// Per filter: hosts in and out, in run order.
    pub filter_results: Vec<FilterCount>,
    /// Hosts whose claim was lost.
    pub lost_claims: Vec<String>,
}

impl NoValidHost {
    /// A multi-line explanation for operators and logs.
    pub fn explanation(&self) -> String {
        let mut text = self.to_string();
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

impl fmt::Display for NoValidHost {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "No valid host was found. There are not enough hosts available."
        )?;
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
            write!(formatter, " Filter results: [{}]", results.join(", "))?;
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
/// (per-host) multiplier, sorted best first.
fn run_weighers(
    weighers: &[WeigherEntry],
    rows: &HostRows<'_>,
    context: &CallContext<'_>,
    candidates: &[usize],
) -> Result<Vec<(usize, f64)>, ScheduleError> {
    let mut totals = vec![0.0; candidates.len()];
    if candidates.len() > 1 {
        for entry in weighers {
            let plugin = &entry.plugin;
            let multipliers =
                candidate_multipliers(rows, candidates, &entry.multiplier_key, entry.multiplier);
            if entry.multiplier == 0.0 && multipliers.is_none() {
                // Every candidate's weight would be multiplied by 0: skip the
                // call, as Nova does for its zero-multiplier weighers.
                continue;
            }
            let raw = plugin.weigh(context, |needs| build_table(rows, candidates, needs));
            let raw = match raw {
                Ok(raw) => raw,
                Err(failure) => match plugin.on_error() {
                    OnError::FailRequest => return Err(plugin_failed(plugin, failure)),
                    OnError::Ignore | OnError::RejectHost => continue,
                },
            };
            let normalized = normalize(&raw, entry.normalization_min);
            match multipliers {
                None => {
                    for (total, weight) in totals.iter_mut().zip(normalized) {
                        *total += entry.multiplier * weight;
                    }
                }
                Some(multipliers) => {
                    for ((total, weight), multiplier) in
                        totals.iter_mut().zip(normalized).zip(multipliers)
                    {
                        *total += multiplier * weight;
                    }
                }
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
    ranking.weighed = run_weighers(plugins.weighers(), rows, &context, &candidates)?;
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
    let mut rows = HostRows::new(snapshot);
    let mut plugin_request = request.request.clone();
    let instances = request.request.num_instances.max(1) as usize;
    let mut selections = Vec::with_capacity(instances);
    for instance_index in 0..instances {
        let ranking = rank(plugins, &rows, request, &plugin_request)?;
        let mut order: Vec<(usize, f64)> = ranking.weighed;
        if order.is_empty() {
            return Err(ScheduleError::NoValidHost(NoValidHost {
                instance_index,
                rejections: ranking.rejections,
                filter_results: ranking.filter_results,
                lost_claims: Vec::new(),
            }));
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
            return Err(ScheduleError::NoValidHost(NoValidHost {
                instance_index,
                rejections: ranking.rejections,
                filter_results: ranking.filter_results,
                lost_claims,
            }));
        };
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
    }
}
