//! What-if, replay and shadow: the pipeline run again, never claiming, over
//! inputs kept or taken live, with the live or a candidate plugin set, and
//! two answers compared host by host.
//!
//! - [`DecisionInputs`]: what a decision needs to be re-run — the request
//!   whole ([`RequestRecord`], serializable, unlike the WIT types), the seed
//!   of its random pick, the hosts as the plugins saw them (shared `Arc`s of
//!   the snapshot's, never copied on the decision's path) and the
//!   aggregates. [`DecisionInputs::encode`] (off the decision's path) keeps
//!   only the hosts the plugins were given (not those the host manager or
//!   the capacity check dropped: no plugin set changes their verdict) as
//!   deflated JSON in base64.
//! - [`evaluate`]: the pipeline over a snapshot with [`NoClaims`] and a
//!   seeded random pick, every candidate host kept in the ranking: the
//!   [`Decision`] the decision log would have recorded.
//! - [`compare`]: two decisions host by host — whether they chose the same
//!   hosts, and every host whose verdict differs (passed / rejected by
//!   which plugin / its rank among the best).
//! - [`Capacity`]: how many more of a flavor fit on the hosts that pass the
//!   filters, per host, availability zone and aggregate.
//! - [`CandidateSet`]: a candidate plugin set, a TOML document in the
//!   configuration's own format (`[scheduler]` lists, `[plugins.*]`
//!   tables) laid over the live configuration.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::sync::Arc;

use base64::Engine as _;
use novum_plugin_host::{Backend, PluginEngine, PluginSet, PluginsConfig};
use novum_plugin_sdk::{Flavor, GroupPolicy, Image, KeyValue, Request, SchedulerHint, ServerGroup};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::config::SchedulerConfig;
use super::explain::{Decision, Outcome};
use super::pipeline::{NoClaims, PLACEMENT, Trace, schedule_traced};
use super::state::{Aggregate, CloudSnapshot, HostState, SchedulingRequest};

/// The rejections the host manager makes before any plugin runs: a host
/// rejected by one of these is rejected whatever the plugin set.
pub const HOST_MANAGER_STEPS: &[&str] = &[
    "ignore_hosts",
    "force_hosts",
    "force_nodes",
    "requested_destination",
    PLACEMENT,
];

/// A server group as a request carries it (serializable).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// Group uuid.
    pub id: String,
    /// `affinity`, `anti-affinity`, `soft-affinity`, `soft-anti-affinity`.
    pub policy: String,
    /// Its rules.
    pub rules: Vec<(String, String)>,
    /// Member instance uuids.
    pub members: Vec<String>,
    /// Hosts of its members.
    pub hosts: Vec<String>,
}

/// A [`SchedulingRequest`] whole, serializable: what a replay re-runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The API request id.
    pub request_id: String,
    /// Flavor id.
    pub flavor_id: String,
    /// Flavor name.
    pub flavor_name: String,
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
    /// Flavor extra specs.
    pub extra_specs: Vec<(String, String)>,
    /// Image id.
    pub image_id: String,
    /// Image properties.
    pub image_properties: Vec<(String, String)>,
    /// Project.
    pub project_id: String,
    /// User.
    pub user_id: String,
    /// Availability zone asked for.
    pub availability_zone: Option<String>,
    /// Instances.
    pub num_instances: u32,
    /// Scheduler hints.
    pub scheduler_hints: Vec<(String, Vec<String>)>,
    /// Server group.
    pub group: Option<GroupRecord>,
    /// Instance uuids.
    pub instance_uuids: Vec<String>,
    /// Hosts never to pick.
    pub ignore_hosts: Vec<String>,
    /// Forced hosts.
    pub force_hosts: Vec<String>,
    /// Forced nodes.
    pub force_nodes: Vec<String>,
    /// Requested destinations.
    pub requested_hosts: Vec<String>,
    /// Whether the capacity check ran.
    pub check_capacity: bool,
}

fn pairs(values: &[KeyValue]) -> Vec<(String, String)> {
    values
        .iter()
        .map(|pair| (pair.key.clone(), pair.value.clone()))
        .collect()
}

fn key_values(values: &[(String, String)]) -> Vec<KeyValue> {
    values
        .iter()
        .map(|(key, value)| KeyValue {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

/// Nova's name of a group policy.
pub fn policy_name(policy: GroupPolicy) -> &'static str {
    match policy {
        GroupPolicy::Affinity => "affinity",
        GroupPolicy::AntiAffinity => "anti-affinity",
        GroupPolicy::SoftAffinity => "soft-affinity",
        GroupPolicy::SoftAntiAffinity => "soft-anti-affinity",
    }
}

/// The policy Nova names `name` (`None`: no such policy).
pub fn policy_of(name: &str) -> Option<GroupPolicy> {
    Some(match name {
        "affinity" => GroupPolicy::Affinity,
        "anti-affinity" => GroupPolicy::AntiAffinity,
        "soft-affinity" => GroupPolicy::SoftAffinity,
        "soft-anti-affinity" => GroupPolicy::SoftAntiAffinity,
        _ => return None,
    })
}

impl RequestRecord {
    /// The record of `request`.
    pub fn of(request: &SchedulingRequest) -> Self {
        let wit = &request.request;
        Self {
            request_id: request.request_id.clone(),
            flavor_id: wit.flavor.id.clone(),
            flavor_name: wit.flavor.name.clone(),
            vcpus: wit.flavor.vcpus,
            memory_mb: wit.flavor.memory_mb,
            root_gb: wit.flavor.root_gb,
            ephemeral_gb: wit.flavor.ephemeral_gb,
            swap_mb: wit.flavor.swap_mb,
            extra_specs: pairs(&wit.flavor.extra_specs),
            image_id: wit.image.id.clone(),
            image_properties: pairs(&wit.image.properties),
            project_id: wit.project_id.clone(),
            user_id: wit.user_id.clone(),
            availability_zone: wit.availability_zone.clone(),
            num_instances: wit.num_instances,
            scheduler_hints: wit
                .scheduler_hints
                .iter()
                .map(|hint| (hint.name.clone(), hint.values.clone()))
                .collect(),
            group: wit.group.as_ref().map(|group| GroupRecord {
                id: group.id.clone(),
                policy: policy_name(group.policy).to_string(),
                rules: pairs(&group.rules),
                members: group.members.clone(),
                hosts: group.hosts.clone(),
            }),
            instance_uuids: wit.instance_uuids.clone(),
            ignore_hosts: request.ignore_hosts.clone(),
            force_hosts: request.force_hosts.clone(),
            force_nodes: request.force_nodes.clone(),
            requested_hosts: request.requested_hosts.clone(),
            check_capacity: request.check_capacity,
        }
    }

    /// The request again (a group policy no longer known reads as
    /// anti-affinity, the strictest).
    pub fn request(&self) -> SchedulingRequest {
        let request = Request {
            flavor: Flavor {
                id: self.flavor_id.clone(),
                name: self.flavor_name.clone(),
                vcpus: self.vcpus,
                memory_mb: self.memory_mb,
                root_gb: self.root_gb,
                ephemeral_gb: self.ephemeral_gb,
                swap_mb: self.swap_mb,
                extra_specs: key_values(&self.extra_specs),
            },
            image: Image {
                id: self.image_id.clone(),
                properties: key_values(&self.image_properties),
            },
            project_id: self.project_id.clone(),
            user_id: self.user_id.clone(),
            availability_zone: self.availability_zone.clone(),
            num_instances: self.num_instances,
            scheduler_hints: self
                .scheduler_hints
                .iter()
                .map(|(name, values)| SchedulerHint {
                    name: name.clone(),
                    values: values.clone(),
                })
                .collect(),
            group: self.group.as_ref().map(|group| ServerGroup {
                id: group.id.clone(),
                policy: policy_of(&group.policy).unwrap_or(GroupPolicy::AntiAffinity),
                rules: key_values(&group.rules),
                members: group.members.clone(),
                hosts: group.hosts.clone(),
            }),
            instance_uuids: self.instance_uuids.clone(),
        };
        let mut scheduling = SchedulingRequest::new(self.request_id.clone(), request);
        scheduling.ignore_hosts = self.ignore_hosts.clone();
        scheduling.force_hosts = self.force_hosts.clone();
        scheduling.force_nodes = self.force_nodes.clone();
        scheduling.requested_hosts = self.requested_hosts.clone();
        scheduling.check_capacity = self.check_capacity;
        scheduling
    }
}

/// What a decision needs to be run again (see the module documentation).
#[derive(Clone, Debug)]
pub struct DecisionInputs {
    /// The request.
    pub request: SchedulingRequest,
    /// The seed of the random pick among the best `host_subset_size`.
    pub seed: u64,
    /// The hosts (shared with the snapshot they came from).
    pub hosts: Vec<Arc<HostState>>,
    /// The aggregates.
    pub aggregates: Vec<Aggregate>,
}

/// The stored form of [`DecisionInputs`].
#[derive(Serialize)]
struct InputsOut<'a> {
    request: RequestRecord,
    seed: u64,
    hosts_total: usize,
    hosts: Vec<&'a HostState>,
    aggregates: &'a [Aggregate],
}

/// [`DecisionInputs`] read back.
#[derive(Deserialize)]
struct InputsIn {
    request: RequestRecord,
    seed: u64,
    hosts_total: usize,
    hosts: Vec<HostState>,
    aggregates: Vec<Aggregate>,
}

/// Kept inputs that cannot be read back.
#[derive(Debug, thiserror::Error)]
#[error("the decision's kept inputs cannot be read: {0}")]
pub struct InputsError(String);

impl DecisionInputs {
    /// The inputs of a decision about to run on `snapshot` (cheap: `Arc`
    /// clones of its hosts).
    pub fn capture(snapshot: &CloudSnapshot, request: &SchedulingRequest, seed: u64) -> Self {
        Self {
            request: request.clone(),
            seed,
            hosts: snapshot.hosts().to_vec(),
            aggregates: snapshot.aggregates().to_vec(),
        }
    }

    /// A snapshot of the hosts.
    pub fn snapshot(&self) -> CloudSnapshot {
        CloudSnapshot::from_shared(self.hosts.clone(), self.aggregates.clone())
    }

    /// Without the hosts `decision` says the host manager rejected (no
    /// plugin set changes their verdict).
    pub fn without_host_manager_rejections(&self, decision: &Decision) -> Self {
        let dropped: HashSet<&str> = decision
            .rejections
            .iter()
            .filter(|group| HOST_MANAGER_STEPS.contains(&group.plugin.as_str()))
            .flat_map(|group| group.hosts.iter().map(String::as_str))
            .collect();
        Self {
            request: self.request.clone(),
            seed: self.seed,
            hosts: self
                .hosts
                .iter()
                .filter(|host| !dropped.contains(host.name.as_str()))
                .cloned()
                .collect(),
            aggregates: self.aggregates.clone(),
        }
    }

    /// Deflated JSON in base64, for the decision log's `inputs` column;
    /// `hosts_total` is how many hosts the original decision knew of.
    pub fn encode(&self, hosts_total: usize) -> Result<String, InputsError> {
        let out = InputsOut {
            request: RequestRecord::of(&self.request),
            seed: self.seed,
            hosts_total,
            hosts: self.hosts.iter().map(|host| host.as_ref()).collect(),
            aggregates: &self.aggregates,
        };
        let json = serde_json::to_vec(&out).map_err(|error| InputsError(error.to_string()))?;
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder
            .write_all(&json)
            .map_err(|error| InputsError(error.to_string()))?;
        let deflated = encoder
            .finish()
            .map_err(|error| InputsError(error.to_string()))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(deflated))
    }

    /// [`DecisionInputs::encode`]'s text read back, with the original
    /// decision's `hosts_total`.
    pub fn decode(text: &str) -> Result<(Self, usize), InputsError> {
        let deflated = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|error| InputsError(error.to_string()))?;
        let mut json = Vec::new();
        flate2::read::DeflateDecoder::new(deflated.as_slice())
            .read_to_end(&mut json)
            .map_err(|error| InputsError(error.to_string()))?;
        let read: InputsIn =
            serde_json::from_slice(&json).map_err(|error| InputsError(error.to_string()))?;
        Ok((
            Self {
                request: read.request.request(),
                seed: read.seed,
                hosts: read.hosts.into_iter().map(Arc::new).collect(),
                aggregates: read.aggregates,
            },
            read.hosts_total,
        ))
    }
}

/// The pipeline over `snapshot` for `request` with `plugins`, claiming
/// nothing, the random pick seeded with `seed`; every candidate host is
/// kept in the decision's ranking. The same inputs and set give the same
/// decision.
pub fn evaluate(
    plugins: &PluginSet,
    config: &SchedulerConfig,
    snapshot: &CloudSnapshot,
    request: &SchedulingRequest,
    seed: u64,
    purpose: &str,
    decided_at: String,
) -> Decision {
    let mut trace = Trace::default();
    let mut rng = StdRng::seed_from_u64(seed);
    let result = schedule_traced(
        plugins,
        config,
        snapshot,
        request,
        &NoClaims,
        &mut rng,
        Some(&mut trace),
    );
    let mut decision = Decision::new(
        purpose,
        decided_at,
        request.clone(),
        snapshot,
        trace,
        &result,
        usize::MAX,
    );
    decision.finish();
    decision
}

/// [`evaluate`] over kept inputs.
pub fn replay(
    plugins: &PluginSet,
    config: &SchedulerConfig,
    inputs: &DecisionInputs,
    decided_at: String,
) -> Decision {
    evaluate(
        plugins,
        config,
        &inputs.snapshot(),
        &inputs.request,
        inputs.seed,
        "replay",
        decided_at,
    )
}

/// What a decision said of one host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// It passed every filter; its rank when the decision kept it (the
    /// decision log keeps only the best few).
    Passed {
        /// 1 for the best.
        rank: Option<usize>,
        /// Its total weight, when ranked.
        weight: Option<f64>,
        /// Whether an instance went there.
        selected: bool,
    },
    /// A plugin (or the host manager) rejected it.
    Rejected {
        /// The plugin.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// The decision did not see it.
    Unknown,
}

/// Every host's verdict in `decision` (hosts it ranked or rejected).
pub fn verdicts(decision: &Decision) -> HashMap<&str, Verdict> {
    let mut verdicts = HashMap::new();
    for group in &decision.rejections {
        for host in &group.hosts {
            verdicts.insert(
                host.as_str(),
                Verdict::Rejected {
                    plugin: group.plugin.clone(),
                    reason: group.reason.clone(),
                },
            );
        }
    }
    for ranked in &decision.ranking {
        verdicts.insert(
            ranked.host.as_str(),
            Verdict::Passed {
                rank: Some(ranked.rank),
                weight: Some(ranked.total),
                selected: ranked.selected,
            },
        );
    }
    verdicts
}

/// The hosts a decision chose, one per instance (empty when it found none).
pub fn chosen(decision: &Decision) -> Vec<String> {
    match &decision.outcome {
        Outcome::Placed { selections } => selections
            .iter()
            .map(|selection| selection.host.clone())
            .collect(),
        _ => Vec::new(),
    }
}

/// One host whose verdict differs between two decisions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerdictChange {
    /// The host.
    pub host: String,
    /// What the first decision said.
    pub before: Verdict,
    /// What the second said.
    pub after: Verdict,
}

/// Two decisions of one request compared (see [`compare`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Whether both chose the same hosts (or both none).
    pub same_choice: bool,
    /// The first decision's hosts, one per instance.
    pub before: Vec<String>,
    /// The second's.
    pub after: Vec<String>,
    /// The first's outcome (`placed`, `no_valid_host`, `error`).
    pub before_result: String,
    /// The second's.
    pub after_result: String,
    /// Hosts whose verdict differs, at most [`COMPARISON_LIMIT`]: the
    /// chosen hosts first, then in host order.
    pub changes: Vec<VerdictChange>,
    /// How many hosts differ in all.
    pub changed_hosts: usize,
}

/// The most verdict changes a [`Comparison`] lists.
pub const COMPARISON_LIMIT: usize = 50;

/// Ranks below this are compared: a host moving within the best few is a
/// change, one moving from rank 400 to 401 is not.
pub const COMPARED_RANKS: usize = 10;

fn differs(before: &Verdict, after: &Verdict) -> bool {
    match (before, after) {
        (
            Verdict::Passed {
                rank: rank_before,
                selected: selected_before,
                ..
            },
            Verdict::Passed {
                rank: rank_after,
                selected: selected_after,
                ..
            },
        ) => {
            let top = |rank: &Option<usize>| rank.is_some_and(|rank| rank <= COMPARED_RANKS);
            selected_before != selected_after
                || ((top(rank_before) || top(rank_after))
                    && rank_before.is_some()
                    && rank_after.is_some()
                    && rank_before != rank_after)
        }
        (Verdict::Rejected { plugin: before, .. }, Verdict::Rejected { plugin: after, .. }) => {
            before != after
        }
        (Verdict::Unknown, _) | (_, Verdict::Unknown) => false,
        _ => true,
    }
}

/// Compares decision `before` with `after`, host by host: a host that one
/// passed and the other rejected, that two different plugins rejected, that
/// only one chose, or that moved within the best [`COMPARED_RANKS`]. A host
/// one decision did not see, or did not rank (the log keeps only the best
/// few), counts as passed with its rank unknown.
pub fn compare(before: &Decision, after: &Decision) -> Comparison {
    let before_verdicts = verdicts(before);
    let after_verdicts = verdicts(after);
    let before_hosts = chosen(before);
    let after_hosts = chosen(after);
    let seen = |verdicts: &HashMap<&str, Verdict>, other: &HashMap<&str, Verdict>, host: &str| {
        verdicts
            .get(host)
            .cloned()
            .unwrap_or(if other.contains_key(host) {
                Verdict::Passed {
                    rank: None,
                    weight: None,
                    selected: false,
                }
            } else {
                Verdict::Unknown
            })
    };
    let mut hosts: Vec<&str> = before_verdicts
        .keys()
        .chain(after_verdicts.keys())
        .copied()
        .collect::<HashSet<&str>>()
        .into_iter()
        .collect();
    // The chosen hosts first, then by name.
    hosts.sort_by_key(|host| {
        let chosen = before_hosts.iter().any(|chosen| chosen == host)
            || after_hosts.iter().any(|chosen| chosen == host);
        (!chosen, host.to_string())
    });
    let mut changes = Vec::new();
    let mut changed_hosts = 0;
    for host in hosts {
        let was = seen(&before_verdicts, &after_verdicts, host);
        let is = seen(&after_verdicts, &before_verdicts, host);
        if differs(&was, &is) {
            changed_hosts += 1;
            if changes.len() < COMPARISON_LIMIT {
                changes.push(VerdictChange {
                    host: host.to_string(),
                    before: was,
                    after: is,
                });
            }
        }
    }
    Comparison {
        same_choice: before_hosts == after_hosts && before.outcome.label() == after.outcome.label(),
        before: before_hosts,
        after: after_hosts,
        before_result: before.outcome.label().to_string(),
        after_result: after.outcome.label().to_string(),
        changes,
        changed_hosts,
    }
}

/// How many more instances of one flavor fit, on the hosts that pass the
/// filters (what a request for it could use now).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// In all.
    pub total: u64,
    /// Per host that passes, most first.
    pub hosts: Vec<Fit>,
    /// Per availability zone.
    pub availability_zones: Vec<Fit>,
    /// Per aggregate (by name).
    pub aggregates: Vec<Fit>,
}

/// How many fit in one place.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// The host, zone or aggregate.
    pub name: String,
    /// Instances of the flavor that fit.
    pub fits: u64,
    /// Hosts counted.
    pub hosts: usize,
}

/// How many instances of `flavor` fit on `host` (free vCPUs, RAM and disk
/// under the allocation ratios; a resource the flavor does not ask for
/// does not bound it).
pub fn fits_on(host: &HostState, flavor: &Flavor) -> u64 {
    let bound = |free: f64, each: f64| -> Option<u64> {
        (each > 0.0).then(|| (free / each).floor().max(0.0) as u64)
    };
    let vcpus_free =
        host.vcpus_total as f64 * host.cpu_allocation_ratio - f64::from(host.vcpus_used);
    let disk_gb = (flavor.root_gb + flavor.ephemeral_gb + flavor.swap_mb.div_ceil(1024)) as f64;
    let disk_free_gb = (host.disk_total_mb / 1024) as f64 * host.disk_allocation_ratio
        - (host.disk_used_mb / 1024) as f64;
    [
        bound(vcpus_free, f64::from(flavor.vcpus)),
        bound(host.memory_free_mb() as f64, flavor.memory_mb as f64),
        bound(disk_free_gb, disk_gb),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(0)
}

impl Capacity {
    /// The capacity for `flavor` of the hosts `decision` passed (ranked),
    /// read from `snapshot`.
    pub fn of(decision: &Decision, snapshot: &CloudSnapshot, flavor: &Flavor) -> Self {
        let by_name: HashMap<&str, &HostState> = snapshot
            .hosts()
            .iter()
            .map(|host| (host.name.as_str(), host.as_ref()))
            .collect();
        let mut capacity = Self::default();
        let mut zones: BTreeMap<String, Fit> = BTreeMap::new();
        let mut aggregates: BTreeMap<String, Fit> = BTreeMap::new();
        let add = |places: &mut BTreeMap<String, Fit>, name: &str, fits: u64| {
            let place = places.entry(name.to_string()).or_insert_with(|| Fit {
                name: name.to_string(),
                fits: 0,
                hosts: 0,
            });
            place.fits += fits;
            place.hosts += 1;
        };
        for ranked in &decision.ranking {
            let Some(host) = by_name.get(ranked.host.as_str()) else {
                continue;
            };
            let fits = fits_on(host, flavor);
            capacity.total += fits;
            capacity.hosts.push(Fit {
                name: host.name.clone(),
                fits,
                hosts: 1,
            });
            add(&mut zones, &host.availability_zone, fits);
            for id in &host.aggregates {
                if let Some(aggregate) = snapshot.aggregate(*id) {
                    add(&mut aggregates, &aggregate.name, fits);
                }
            }
        }
        capacity
            .hosts
            .sort_by(|left, right| right.fits.cmp(&left.fits).then(left.name.cmp(&right.name)));
        capacity.availability_zones = zones.into_values().collect();
        capacity.aggregates = aggregates.into_values().collect();
        capacity
    }
}

/// A candidate plugin set: a TOML document in the configuration file's own
/// format — `[scheduler]` with `enabled_filters`, `weighers` (and
/// `host_subset_size`, `max_attempts`), `[plugins.defaults]` and
/// `[plugins.<name>]` tables (plugin paths on the controller's machine) —
/// laid over the live configuration: lists it gives replace the live ones,
/// each plugin table it gives replaces that plugin's.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CandidateSet {
    /// `[scheduler]`.
    pub scheduler: CandidateScheduler,
    /// `[plugins]`.
    pub plugins: Option<PluginsConfig>,
}

/// The `[scheduler]` keys a candidate set may give.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CandidateScheduler {
    /// Filters, in run order.
    pub enabled_filters: Option<Vec<String>>,
    /// Weighers.
    pub weighers: Option<Vec<String>>,
    /// The random pick among this many best hosts.
    pub host_subset_size: Option<usize>,
    /// Attempts per instance.
    pub max_attempts: Option<usize>,
}

/// A candidate set that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CandidateError {
    /// Not a candidate set document.
    #[error("invalid candidate plugin set: {0}")]
    Parse(String),
    /// A plugin could not be loaded.
    #[error("candidate plugin set not loaded: {0}")]
    Load(#[from] novum_plugin_host::LoadError),
}

impl CandidateSet {
    /// Parses a candidate set document.
    pub fn parse(text: &str) -> Result<Self, CandidateError> {
        let set: Self =
            toml::from_str(text).map_err(|error| CandidateError::Parse(error.to_string()))?;
        if set.scheduler.host_subset_size == Some(0) || set.scheduler.max_attempts == Some(0) {
            return Err(CandidateError::Parse(
                "host_subset_size and max_attempts must be at least 1".to_string(),
            ));
        }
        Ok(set)
    }

    /// The scheduler and plugin settings of this set over the live ones.
    pub fn over(
        &self,
        scheduler: &SchedulerConfig,
        plugins: &PluginsConfig,
    ) -> (SchedulerConfig, PluginsConfig) {
        let mut scheduler = scheduler.clone();
        if let Some(filters) = &self.scheduler.enabled_filters {
            scheduler.enabled_filters = filters.clone();
        }
        if let Some(weighers) = &self.scheduler.weighers {
            scheduler.weighers = weighers.clone();
        }
        if let Some(size) = self.scheduler.host_subset_size {
            scheduler.host_subset_size = size;
        }
        if let Some(attempts) = self.scheduler.max_attempts {
            scheduler.max_attempts = attempts;
        }
        let mut merged = plugins.clone();
        if let Some(candidate) = &self.plugins {
            if candidate.defaults != PluginsConfig::default().defaults {
                merged.defaults = candidate.defaults.clone();
            }
            for (name, table) in &candidate.plugins {
                merged.plugins.insert(name.clone(), table.clone());
            }
        }
        (scheduler, merged)
    }

    /// Loads the set over the live settings in `engine` (the live set's):
    /// its scheduler settings and plugins.
    pub fn load(
        &self,
        engine: &Arc<PluginEngine>,
        backend: Backend,
        scheduler: &SchedulerConfig,
        plugins: &PluginsConfig,
    ) -> Result<(SchedulerConfig, PluginSet), CandidateError> {
        let (scheduler, plugins) = self.over(scheduler, plugins);
        let set = PluginSet::load(engine, backend, &scheduler.plugin_selection(), &plugins)?;
        Ok((scheduler, set))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_survives_its_record() {
        let cloud = crate::synthetic::cloud(7, 5);
        let mut scheduling = crate::synthetic::request(7, &cloud);
        scheduling.ignore_hosts = vec!["h1".into()];
        scheduling.check_capacity = true;
        let record = RequestRecord::of(&scheduling);
        let again = record.request();
        assert_eq!(again.request, scheduling.request);
        assert_eq!(again.ignore_hosts, scheduling.ignore_hosts);
        assert!(again.check_capacity);
    }

    #[test]
    fn inputs_encode_and_decode() {
        let snapshot = crate::synthetic::cloud(3, 20);
        let request = crate::synthetic::request(1, &snapshot);
        let inputs = DecisionInputs::capture(&snapshot, &request, 42);
        let text = inputs.encode(20).expect("encodes");
        let (back, total) = DecisionInputs::decode(&text).expect("decodes");
        assert_eq!(total, 20);
        assert_eq!(back.seed, 42);
        assert_eq!(back.hosts.len(), 20);
        assert_eq!(*back.hosts[3], *snapshot.hosts()[3]);
        assert_eq!(back.aggregates, snapshot.aggregates());
        assert!(DecisionInputs::decode("not base64!").is_err());
    }

    #[test]
    fn candidate_sets_lay_over_the_live_settings() {
        let set = CandidateSet::parse(
            "[scheduler]\nweighers = [\"ram-weigher\"]\n[plugins.ram-weigher]\nmultiplier = -1.0\n",
        )
        .expect("parses");
        let (scheduler, plugins) = set.over(&SchedulerConfig::default(), &PluginsConfig::default());
        assert_eq!(scheduler.weighers, vec!["ram-weigher".to_string()]);
        assert_eq!(scheduler.enabled_filters.len(), 6);
        assert_eq!(plugins.plugins["ram-weigher"].multiplier, Some(-1.0));
        assert!(CandidateSet::parse("[scheduler]\nfilters = []\n").is_err());
    }

    /// What keeping the inputs costs the log's writer (not the decision:
    /// capture is `Arc` clones): `cargo test -p novum-scheduler --lib
    /// whatif::tests::inputs_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, printed"]
    fn inputs_cost() {
        for hosts in [1_000, 10_000] {
            let snapshot = crate::synthetic::cloud(5, hosts);
            let request = crate::synthetic::request(5, &snapshot);
            let started = std::time::Instant::now();
            let inputs = DecisionInputs::capture(&snapshot, &request, 1);
            let captured = started.elapsed();
            let started = std::time::Instant::now();
            let text = inputs.encode(hosts).expect("encodes");
            let encoded = started.elapsed();
            let started = std::time::Instant::now();
            let (back, _) = DecisionInputs::decode(&text).expect("decodes");
            let decoded = started.elapsed();
            assert_eq!(back.hosts.len(), hosts);
            println!(
                "{hosts} hosts: capture {captured:?}, encode {encoded:?} to {} KiB, decode {decoded:?}",
                text.len() / 1024
            );
        }
    }
}
