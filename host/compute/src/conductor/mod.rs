//! The conductor: the workflows on instances (build with reschedules, delete,
//! start/stop/reboot/pause/unpause/suspend/resume). Every step is a durable
//! row in `conductor_operations`, and every piece of agent work a row in
//! `tasks`, so that a restarted controller resumes or cleanly fails what was
//! in flight ([`Conductor::recover`]); tasks that never finish time out
//! ([`Conductor::reap`]), so nothing stays in BUILD forever.
//!
//! Build: API request → instance rows (BUILD/scheduling) + one `build`
//! operation each → scheduler (filter and weigher plugins) → atomic claim on
//! the chosen node, committed together with the spawn task → the agent's
//! result: ACTIVE, or the claim released, `failed_builds` counted and the
//! build rescheduled (tried hosts ignored) up to `max_attempts`, then ERROR
//! with a fault that explains.
//!
//! Locks (PostgreSQL advisory locks; SQLite has its one writer): a create
//! takes its project's quota lock (`quota:<project>`, then its networks'),
//! nothing global, so creates of different projects run side by side; the
//! steps of a build after it (a scheduling failure, the agent's result) take
//! the instance's lock (`instance:<uuid>`) alone, and its claim the node's
//! (`claim:<node>`) with a conditional update of the operation's step. The
//! other workflows on an instance (delete, actions, resize, snapshots,
//! rebuild, rescue, admin changes) still take the global `conductor` lock,
//! then `instance:<uuid>`, so they serialize with a build's steps too.

pub mod actions;
pub mod claims;
pub mod cluster;
pub mod consoles;
pub mod decisions;
pub mod evacuate;
pub mod guest;
pub mod host_state;
pub mod instance_admin;
pub mod interfaces;
pub mod live_migration;
mod metadata;
pub mod model;
pub mod networking;
pub mod notices;
pub mod ops;
pub mod pipeline_threads;
pub mod rebuild;
pub mod rescue;
pub mod resize;
pub mod scheduling_metrics;
pub mod server_metadata;
pub mod shadow;
pub mod snapshot;
pub mod snapshots;
pub mod soft_delete;
pub mod states;
pub mod tasks;
pub mod usage_audit;
pub mod whatif;

pub use networking::PortPlan;
pub use ops::{Caller, Recovery};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use novum_plugin_sdk::{GroupPolicy, Image, KeyValue, Request, SchedulerHint, ServerGroup};
use novum_wire::{FlavorSpec, ImageSpec, SpawnSpec, TaskAction};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};
use uuid::Uuid;

use crate::config::ComputeConfig;
use crate::instance_metadata::{config_drive_column, config_drive_required};
use claims::Resources;
use cluster::SchedulingMark;
use model::{FlavorSnapshot, Instance};
use notices::StateMark;
use novum_db::{self as db, Batch, Db, DbError, StatementRows, Tx};
use novum_notify::builders::{self, InstanceAction};
use novum_notify::payload::RequestSpecPayload;
use novum_notify::{Phase, Publisher};
use novum_plugin_host::Plugins;
use novum_scheduler::{
    self as scheduler, ClaimOutcome, Claimer, CloudSnapshot, HostState, ScheduleError,
    SchedulerConfig, SchedulingRequest,
};
use scheduling_metrics::{Outcome, SchedulingMetrics, StageTimes};
use states::{task, vm};
use tasks::TaskBoard;

/// Errors of conductor calls, mapped to API faults by the compute API.
#[derive(Debug, thiserror::Error)]
pub enum ConductorError {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 403: the caller may not do this to this instance.
    #[error("{0}")]
    Forbidden(String),
    /// A database failure.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The network service refused (an unknown network, a port in use, an
    /// address outside its subnet, over the port quota, …).
    #[error(transparent)]
    Network(#[from] novum_network::NetworkError),
    /// Over quota, or a quota policy failed (403).
    #[error(transparent)]
    Quota(#[from] novum_quota::QuotaError),
    /// A notification could not be written to the outbox.
    #[error(transparent)]
    Notify(#[from] novum_notify::NotifyError),
    /// The instance's metadata documents cannot be rendered.
    #[error(transparent)]
    Metadata(#[from] crate::instance_metadata::MetadataError),
    /// A compute agent did not answer a call in time (504).
    #[error("{0}")]
    Timeout(String),
    /// The hypervisor or the guest cannot do this (501, Nova's
    /// `NotImplementedError`).
    #[error("{0}")]
    NotImplemented(String),
}

impl From<sqlx::Error> for ConductorError {
    fn from(error: sqlx::Error) -> Self {
        Self::Db(DbError::Query(error))
    }
}

/// Result of conductor calls.
pub type Result<T, E = ConductorError> = std::result::Result<T, E>;

/// Operation row states.
mod op_state {
    pub const RUNNING: &str = "running";
    pub const DONE: &str = "done";
    pub const FAILED: &str = "failed";
    pub const CANCELLED: &str = "cancelled";
}

/// Operation steps.
mod step {
    pub const SCHEDULE: &str = "schedule";
    pub const SPAWN: &str = "spawn";
    pub const TASK: &str = "task";
}

const BUILD: &str = "build";
/// Scheduling passes per build attempt when every claim of a pass is lost.
const SCHEDULING_ROUNDS: u32 = 4;

/// Looks a decision takes, at most, when it finds no host while claims of
/// other decisions are in flight (each after those claims are answered).
const NO_HOST_LOOKS: u32 = 4;

/// How long a decision that found no host waits, at most, for the claims
/// in flight when it looked.
const UNANSWERED_PATIENCE: Duration = Duration::from_secs(5);
const DELETE: &str = "delete";
const SCHEDULE_EVENT: &str = "conductor_schedule_and_build_instances";
const BUILD_EVENT: &str = "compute__do_build_and_run_instance";
const DELETE_EVENT: &str = "compute_terminate_instance";

/// The global lock the workflows other than create and build still take
/// first (see [`Conductor::begin_global`]).
pub(crate) const CONDUCTOR_LOCK: &str = "conductor";

/// The lock serializing the changes to instance `uuid`.
pub(crate) fn instance_lock(uuid: &str) -> String {
    format!("instance:{uuid}")
}

/// What a build operation remembers between attempts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct BuildData {
    attempts: u32,
    tried_hosts: Vec<String>,
    last_error: Option<String>,
}

/// What an action operation needs at its end.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ActionData {
    result_state: String,
    event: String,
    /// The port an interface attach plugs (given back when it fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port_id: Option<String>,
    /// The vm_state a failed task leaves (a failed rescue: ERROR);
    /// `None`: unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error_state: Option<String>,
}

/// A request to build servers (validated by the API).
#[derive(Clone, Debug)]
pub struct BuildRequest {
    /// Display name (suffixed `-N` when several are built).
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Owner project.
    pub project_id: String,
    /// Requesting user.
    pub user_id: String,
    /// Flavor.
    pub flavor: FlavorSnapshot,
    /// Image id.
    pub image_ref: String,
    /// Image properties.
    pub image_properties: BTreeMap<String, String>,
    /// Requested availability zone (`zone`, `zone:host`).
    pub availability_zone: Option<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// What each server asks of the absolute quota resources (metadata
    /// items, personality files); see [`novum_quota::InstanceCheck`].
    pub absolute: Vec<(novum_quota::Resource, i64)>,
    /// Key pair name.
    pub key_name: Option<String>,
    /// Key pair public key.
    pub key_data: Option<String>,
    /// User data.
    pub user_data: Option<String>,
    /// Whether the create asked for a config drive (`config_drive`).
    pub config_drive: bool,
    /// Scheduler hints.
    pub hints: BTreeMap<String, Vec<String>>,
    /// Server group uuid.
    pub group: Option<String>,
    /// How many servers at most (Nova's `max_count`).
    pub count: u32,
    /// How many at least (Nova's `min_count`): when `count` does not fit the
    /// quota, as many as fit are built if that is at least this many.
    pub min_count: u32,
    /// The API request id.
    pub request_id: String,
    /// `accessIPv4` ('' when not given).
    pub access_ip_v4: String,
    /// `accessIPv6`, canonical ('' when not given).
    pub access_ip_v6: String,
    /// The ports each server gets.
    pub ports: PortPlan,
    /// The tags each server gets (2.52), checked and sorted.
    pub tags: Vec<String>,
}

/// The conductor.
pub struct Conductor {
    db: Db,
    host: String,
    compute: ComputeConfig,
    scheduler: SchedulerConfig,
    plugins: Arc<Plugins>,
    quota: Arc<novum_quota::Quota>,
    network: novum_network::NetworkService,
    board: Arc<TaskBoard>,
    /// Bounds how many scheduling passes run their plugins at once (one per
    /// core): plugin deadlines are wall-clock, so a burst of builds must queue
    /// here rather than starve each other's plugin calls into timeouts.
    scheduling_slots: Arc<tokio::sync::Semaphore>,
    /// The threads the pipelines run on, one per scheduling slot, below
    /// the control plane's priority.
    pipeline_threads: pipeline_threads::PipelineThreads,
    /// The hosts as the scheduler sees them, kept in memory.
    host_state: host_state::HostStateCache,
    /// Domains agents reported that are no instance of novum's, each
    /// `(host, uuid)` warned about once (they are never destroyed).
    foreign_domains: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
    /// Where the image service keeps image data (see
    /// [`Conductor::set_image_data_dir`]).
    image_data_dir: std::sync::OnceLock<std::path::PathBuf>,
    /// Scheduling decisions and their stages, for `/metrics`.
    scheduling_metrics: SchedulingMetrics,
    /// This controller's id in `controllers` (see [`cluster`]).
    controller_id: String,
    /// The operations whose scheduling step runs in this process.
    scheduling: Mutex<std::collections::HashSet<String>>,
    /// Every scheduling decision, kept for `GET /novum/v1/decisions`.
    decisions: decisions::DecisionLog,
}

impl std::fmt::Debug for Conductor {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Conductor").finish_non_exhaustive()
    }
}

#[derive(Clone, Debug)]
struct Operation {
    id: String,
    instance_uuid: String,
    kind: String,
    step: String,
    state: String,
    data: String,
    request_id: String,
    action_id: Option<String>,
}

/// The hypervisor hostname of `host`'s node (the host's name when its node
/// row is gone).
async fn node_name(tx: &mut Tx, host: &HostState) -> Result<String> {
    let node: Option<String> =
        sqlx::query("SELECT hypervisor_hostname FROM compute_nodes WHERE uuid = $1")
            .bind(&host.uuid)
            .fetch_optional(&mut **tx)
            .await?
            .map(|row| row.try_get("hypervisor_hostname"))
            .transpose()?;
    Ok(node.unwrap_or_else(|| host.name.clone()))
}

/// Records `host` (and its node) as the destination of migration
/// `migration`, with its new status when one is given.
async fn set_migration_destination(
    tx: &mut Tx,
    migration: &str,
    host: &HostState,
    status: Option<&str>,
) -> Result<()> {
    let node = node_name(tx, host).await?;
    sqlx::query(
        "UPDATE migrations SET dest_compute = $1, dest_node = $2, status = COALESCE($3, status), \
         updated_at = $4 WHERE uuid = $5",
    )
    .bind(&host.name)
    .bind(&node)
    .bind(status)
    .bind(db::now())
    .bind(migration)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Operation {
    /// Whether the operation still waits for its scheduler's choice.
    fn is_scheduling(&self) -> bool {
        self.state == op_state::RUNNING && self.step == step::SCHEDULE
    }
}

async fn load_operation<'c, E>(executor: E, id: &str) -> Result<Option<Operation>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let row = sqlx::query("SELECT * FROM conductor_operations WHERE id = $1")
        .bind(id)
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(operation_of).transpose()
}

/// The operation in `row`, a row of `conductor_operations`.
fn operation_of(row: &AnyRow) -> Result<Operation> {
    Ok(Operation {
        id: row.try_get("id")?,
        instance_uuid: row.try_get("instance_uuid")?,
        kind: row.try_get("kind")?,
        step: row.try_get("step")?,
        state: row.try_get("state")?,
        data: row.try_get("data")?,
        request_id: row.try_get("request_id")?,
        action_id: row.try_get("action_id")?,
    })
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string())
}

async fn insert_operation(
    tx: &mut Tx,
    instance_uuid: &str,
    kind: &str,
    step: &str,
    data: &str,
    request_id: &str,
    action_id: &str,
) -> Result<String> {
    let mut writes = Batch::new();
    let operation = insert_operation_into(
        &mut writes,
        None,
        instance_uuid,
        kind,
        step,
        data,
        request_id,
        action_id,
    )?;
    writes.run(tx).await?;
    Ok(operation.id)
}

/// Adds an operation to `writes`, owned by controller `owner` when given
/// (a build this controller schedules itself: see `cluster`); its id.
#[allow(clippy::too_many_arguments)]
fn insert_operation_into(
    writes: &mut Batch,
    owner: Option<&str>,
    instance_uuid: &str,
    kind: &str,
    step: &str,
    data: &str,
    request_id: &str,
    action_id: &str,
) -> Result<Operation> {
    let id = Uuid::new_v4().to_string();
    writes.push(
        sqlx::query(
            "INSERT INTO conductor_operations (id, instance_uuid, kind, step, state, data, request_id, action_id, created_at, updated_at, owner) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
        )
        .bind(&id)
        .bind(instance_uuid)
        .bind(kind)
        .bind(step)
        .bind(op_state::RUNNING)
        .bind(data)
        .bind(request_id)
        .bind(action_id)
        .bind(db::now())
        .bind(owner),
    )?;
    Ok(Operation {
        id,
        instance_uuid: instance_uuid.to_string(),
        kind: kind.to_string(),
        step: step.to_string(),
        state: op_state::RUNNING.to_string(),
        data: data.to_string(),
        request_id: request_id.to_string(),
        action_id: Some(action_id.to_string()),
    })
}

/// Ends `operation` where it stands: DONE when `error` is `None`, else FAILED,
/// and closes its instance-action events with the same outcome.
async fn finish_operation(tx: &mut Tx, operation: &Operation, error: Option<&str>) -> Result<()> {
    let mut writes = Batch::new();
    finish_operation_into(&mut writes, operation, error)?;
    writes.run(tx).await?;
    Ok(())
}

/// [`finish_operation`], written with `writes`' other writes.
fn finish_operation_into(
    writes: &mut Batch,
    operation: &Operation,
    error: Option<&str>,
) -> Result<()> {
    let state = if error.is_some() {
        op_state::FAILED
    } else {
        op_state::DONE
    };
    set_operation_into(
        writes,
        &operation.id,
        &operation.step,
        state,
        &operation.data,
    )?;
    if let Some(action_id) = &operation.action_id {
        actions::finish_events_into(writes, action_id, None, error)?;
    }
    Ok(())
}

async fn set_operation(tx: &mut Tx, id: &str, step: &str, state: &str, data: &str) -> Result<()> {
    let mut writes = Batch::new();
    set_operation_into(&mut writes, id, step, state, data)?;
    writes.run(tx).await?;
    Ok(())
}

/// [`set_operation`], written with `writes`' other writes.
fn set_operation_into(
    writes: &mut Batch,
    id: &str,
    step: &str,
    state: &str,
    data: &str,
) -> Result<()> {
    // A step handed back to scheduling (a reschedule) belongs to no
    // controller until one takes it (see `cluster`).
    writes.push(
        sqlx::query(
            "UPDATE conductor_operations SET step = $1, state = $2, data = $3, updated_at = $4, \
                     owner = CASE WHEN $1 = 'schedule' THEN NULL ELSE owner END WHERE id = $5",
        )
        .bind(step)
        .bind(state)
        .bind(data)
        .bind(db::now())
        .bind(id),
    )?;
    Ok(())
}

/// Cancels the running operations of an instance (a delete supersedes them).
async fn cancel_operations(tx: &mut Tx, instance_uuid: &str) -> Result<()> {
    sqlx::query("UPDATE conductor_operations SET state = $1, updated_at = $2 WHERE instance_uuid = $3 AND state = $4")
        .bind(op_state::CANCELLED)
        .bind(db::now())
        .bind(instance_uuid)
        .bind(op_state::RUNNING)
        .execute(&mut **tx)
        .await?;
    tasks::cancel_for_instance(tx, instance_uuid).await?;
    Ok(())
}

fn fault_json(code: u16, message: &str, details: &str) -> String {
    to_json(&serde_json::json!({
        "code": code,
        "message": message,
        "details": details,
        "created": db::now(),
    }))
}

fn resources(flavor: &FlavorSnapshot) -> Resources {
    Resources {
        vcpus: flavor.vcpus,
        memory_mb: flavor.memory_mb,
        disk_gb: flavor.disk_gb(),
    }
}

fn group_policy(name: &str) -> GroupPolicy {
    match name {
        "affinity" => GroupPolicy::Affinity,
        "soft-affinity" => GroupPolicy::SoftAffinity,
        "soft-anti-affinity" => GroupPolicy::SoftAntiAffinity,
        _ => GroupPolicy::AntiAffinity,
    }
}

/// What a scheduling request is made of (a build's instance, or a
/// what-if's parameters): see [`Conductor::build_request`].
pub(crate) struct RequestParts<'a> {
    request_id: &'a str,
    flavor: &'a FlavorSnapshot,
    image_id: &'a str,
    image_properties: &'a BTreeMap<String, String>,
    project_id: &'a str,
    user_id: &'a str,
    /// `zone`, `zone:host` or `:host`.
    availability_zone: Option<&'a str>,
    hints: BTreeMap<String, Vec<String>>,
    server_group: Option<&'a str>,
    instance_uuids: Vec<String>,
    count: u32,
}

fn key_values(map: &BTreeMap<String, String>) -> Vec<KeyValue> {
    map.iter()
        .map(|(key, value)| KeyValue {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

fn spawn_spec(instance: &Instance, flavor: &FlavorSnapshot) -> SpawnSpec {
    SpawnSpec {
        name: instance.display_name.clone(),
        flavor: FlavorSpec {
            name: flavor.name.clone(),
            vcpus: flavor.vcpus as u32,
            memory_mb: flavor.memory_mb as u64,
            root_gb: flavor.root_gb as u64,
            ephemeral_gb: flavor.ephemeral_gb as u64,
            swap_mb: flavor.swap as u64,
        },
        image: ImageSpec {
            id: instance.image_ref.clone(),
            properties: instance.image_property_map(),
        },
        user_data: instance.user_data.clone(),
        metadata: instance.metadata_map(),
        interfaces: Vec::new(),
        project_id: Some(instance.project_id.clone()),
        config_drive: None,
    }
}

/// What a scheduling pass is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// A build: the claim commits the placement and the spawn task.
    Build,
    /// A resize: the claim (of the new flavor, under the consumer
    /// `resize:<uuid>`) commits the destination and the first task.
    Resize,
    /// An unshelve of an offloaded instance: as a build, but the spawn
    /// boots the shelved image and the instance action and notices are
    /// the unshelve's.
    Unshelve,
    /// An evacuation: the claim (under the consumer `evacuate:<uuid>`)
    /// commits the destination and the rebuild there.
    Evacuate,
}

impl Purpose {
    /// Its `purpose` label in the scheduling metrics.
    fn label(self) -> &'static str {
        match self {
            Self::Build => "build",
            Self::Resize => "resize",
            Self::Unshelve => "unshelve",
            Self::Evacuate => "evacuate",
        }
    }

    /// The purpose of a scheduling operation of kind `kind`.
    fn of_kind(kind: &str) -> Self {
        match kind {
            resize::RESIZE => Self::Resize,
            snapshots::UNSHELVE => Self::Unshelve,
            evacuate::EVACUATE => Self::Evacuate,
            _ => Self::Build,
        }
    }
}

/// What a scheduling pass places: the operation, its instance and the
/// flavor to claim, and the request spec it notifies.
#[derive(Clone, Debug)]
struct Placement {
    purpose: Purpose,
    operation: Operation,
    instance: Instance,
    flavor: FlavorSnapshot,
    spec: RequestSpecPayload,
    /// `scheduler.select_destinations.start`, stamped when scheduling began,
    /// still to be sent (with the claim): a build's. A resize sends its own
    /// before scheduling.
    start_notice: Option<novum_notify::Notification>,
}

impl Placement {
    /// The consumer its claim is recorded under.
    fn consumer(&self) -> String {
        match self.purpose {
            Purpose::Build | Purpose::Unshelve => self.instance.uuid.clone(),
            Purpose::Resize => resize::resize_consumer(&self.instance.uuid),
            Purpose::Evacuate => evacuate::evacuate_consumer(&self.instance.uuid),
        }
    }
}

/// The claimer the scheduling pipeline calls while the decision holds its
/// slot: the chosen host is reserved in the host state (so the next decision
/// counts it), and claimed in the database after the slot is passed on
/// ([`Conductor::claim_selection`]).
struct ReservingClaimer<'a> {
    host_state: &'a host_state::HostStateCache,
    instance_uuid: &'a str,
    reserved: Mutex<Vec<(String, host_state::Reservation)>>,
}

impl Claimer for ReservingClaimer<'_> {
    fn claim(&self, host: &HostState, request: &SchedulingRequest, _index: usize) -> ClaimOutcome {
        let reservation = self
            .host_state
            .reserve(&host.name, &request.request, self.instance_uuid);
        self.reserved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((host.name.clone(), reservation));
        ClaimOutcome::Won
    }
}

/// The hosts of the first selection, chosen one first, then its
/// alternates, as `snapshot` has them (a name it lacks as `Err`).
fn candidates(
    snapshot: &CloudSnapshot,
    selections: &[scheduler::Selection],
) -> Vec<Result<Arc<HostState>, String>> {
    selections
        .first()
        .map(|selection| {
            std::iter::once(&selection.host)
                .chain(&selection.alternates)
                .map(|name| {
                    snapshot
                        .hosts()
                        .binary_search_by(|host| host.name.as_str().cmp(name))
                        .map(|index| Arc::clone(&snapshot.hosts()[index]))
                        .map_err(|_| name.clone())
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Conductor {
    /// The scheduler's plugin set (listing, metrics, reload).
    pub fn plugins(&self) -> &Arc<Plugins> {
        &self.plugins
    }

    /// A conductor over `db` scheduling with `plugins`; `host` is the
    /// controller's host name (its notifications' publisher host).
    pub fn new(
        db: Db,
        host: &str,
        compute: ComputeConfig,
        scheduler: SchedulerConfig,
        plugins: Arc<Plugins>,
        quota: Arc<novum_quota::Quota>,
        network: novum_network::NetworkService,
    ) -> Arc<Self> {
        let decisions = decisions::DecisionLog::new(db.clone(), host, &scheduler);
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let host_state = host_state::HostStateCache::new(
            db.clone(),
            &compute.default_availability_zone,
            compute.service_down_time,
            std::time::Duration::from_secs(scheduler.host_state_resync_seconds),
        );
        Arc::new(Self {
            db,
            host_state,
            host: host.to_string(),
            compute,
            scheduler,
            plugins,
            quota,
            network,
            board: Arc::new(TaskBoard::default()),
            foreign_domains: std::sync::Mutex::default(),
            image_data_dir: std::sync::OnceLock::new(),
            scheduling_slots: Arc::new(tokio::sync::Semaphore::new(cores)),
            pipeline_threads: pipeline_threads::PipelineThreads::start(
                cores,
                tokio::runtime::Handle::try_current().ok(),
            ),
            scheduling_metrics: SchedulingMetrics::register(),
            controller_id: Uuid::new_v4().to_string(),
            scheduling: Mutex::default(),
            decisions,
        })
    }

    /// `nova-conductor:<controller>`.
    fn conductor_publisher(&self) -> Publisher {
        Publisher::conductor(&self.host)
    }

    /// `nova-scheduler:<controller>`.
    fn scheduler_publisher(&self) -> Publisher {
        Publisher::scheduler(&self.host)
    }

    /// `nova-api:<controller>`.
    fn api_publisher(&self) -> Publisher {
        Publisher::api(&self.host)
    }

    /// The decision log (start its writer with
    /// [`decisions::DecisionLog::start`]).
    pub fn decisions(&self) -> &decisions::DecisionLog {
        &self.decisions
    }

    /// The task board (long-poll wake-ups).
    pub fn board(&self) -> &Arc<TaskBoard> {
        &self.board
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The compute settings.
    pub fn compute_config(&self) -> &ComputeConfig {
        &self.compute
    }

    /// A transaction serialized with every other change to instance
    /// `uuid` (the lock `instance:<uuid>`, alone): the steps of a build —
    /// a scheduling failure, the agent's result — which no other instance's
    /// work waits for. See [`Conductor::begin_global`] for the rest.
    pub(crate) async fn begin_instance(&self, uuid: &str) -> Result<Tx> {
        Ok(self.db.begin_grouped(&instance_lock(uuid)).await?)
    }

    /// A transaction for a workflow on instance `uuid` that still runs
    /// under the global `conductor` lock (resize, snapshots, rebuild,
    /// rescue, admin actions, delete, …): `conductor`, then
    /// `instance:<uuid>`, so it serializes with the build steps of
    /// [`Conductor::begin_instance`] too. Lock order (see
    /// `novum_db::Db::begin_serialized`): `conductor`, `instance:<uuid>`,
    /// `quota:<project>`, `network:<id>`.
    pub(crate) async fn begin_global(&self, uuid: &str) -> Result<Tx> {
        let mut tx = self.db.begin_serialized(CONDUCTOR_LOCK).await?;
        self.db.serialize_in(&mut tx, &instance_lock(uuid)).await?;
        Ok(tx)
    }

    /// [`Conductor::begin_global`] for the instance of operation `id`, or
    /// `None` when the operation is gone. Its instance never changes, so
    /// it is read before the locks are taken.
    pub(crate) async fn begin_global_for_operation(&self, id: &str) -> Result<Option<Tx>> {
        match load_operation(self.db.pool(), id).await? {
            Some(operation) => Ok(Some(self.begin_global(&operation.instance_uuid).await?)),
            None => Ok(None),
        }
    }

    /// [`Conductor::begin_instance`] for the instance of operation `id`, or
    /// `None` when the operation is gone.
    async fn begin_instance_for_operation(&self, id: &str) -> Result<Option<Tx>> {
        match load_operation(self.db.pool(), id).await? {
            Some(operation) => Ok(Some(self.begin_instance(&operation.instance_uuid).await?)),
            None => Ok(None),
        }
    }

    /// Creates the instances of `request` (BUILD) and starts their builds;
    /// returns their uuids and the reservation id. The quota check and the
    /// inserts share one transaction, serialized per project
    /// (`quota:<project>`, then the networks' locks; nothing serializes the
    /// creates of different projects), so concurrent creates never exceed
    /// a limit; over quota is [`ConductorError::Quota`].
    pub async fn create_servers(
        self: &Arc<Self>,
        request: BuildRequest,
    ) -> Result<(Vec<String>, String)> {
        let reservation_id = format!("r-{}", &Uuid::new_v4().simple().to_string()[..8]);
        let flavor = to_json(&request.flavor);
        let mut uuids = Vec::new();
        let mut operations = Vec::new();
        self.prepare_ports(&request.project_id, &request.ports)
            .await?;
        // The project's quota lock is all a create needs: the rows it
        // writes are new (no one else can see them before the commit), its
        // addresses are allocated under the networks' locks, and its
        // notifications are numbered without a lock.
        let mut tx = self.quota.begin(&request.project_id).await?;
        let quota_flavor = request.flavor.sdk_flavor();
        let check = novum_quota::InstanceCheck {
            project_id: &request.project_id,
            user_id: &request.user_id,
            flavor: &quota_flavor,
            min_count: request.min_count.max(1),
            max_count: request.count.max(1),
            group: request.group.as_deref(),
            absolute: &request.absolute,
            request_id: &request.request_id,
        };
        let count = self.quota.check_instances(&mut tx, &check).await?;
        let mut writes = Batch::new();
        // What the batches' statements returned, and which of them is each
        // server's `INSERT … RETURNING *`: the scheduling step starts from
        // the rows as written, without reading them again.
        let mut answered: Vec<StatementRows> = Vec::new();
        let mut inserted_at = Vec::new();
        for index in 0..count {
            let uuid = Uuid::new_v4().to_string();
            let name = if count > 1 {
                format!("{}-{}", request.name, index + 1)
            } else {
                request.name.clone()
            };
            let now = db::now();
            inserted_at.push(answered.len() + writes.len());
            writes.push(sqlx::query(
                "INSERT INTO instances (uuid, display_name, description, project_id, user_id, flavor_id, flavor, image_ref, \
                 image_properties, vm_state, task_state, power_state, requested_availability_zone, metadata, key_name, key_data, \
                 user_data, scheduler_hints, server_group, reservation_id, launch_index, hostname, created_at, updated_at, \
                 vcpus, memory_mb, access_ip_v4, access_ip_v6, config_drive) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $22, $23, $24, $25, $26, $27) RETURNING *",
            )
            .bind(&uuid)
            .bind(&name)
            .bind(&request.description)
            .bind(&request.project_id)
            .bind(&request.user_id)
            .bind(&request.flavor.id)
            .bind(&flavor)
            .bind(&request.image_ref)
            .bind(to_json(&request.image_properties))
            .bind(vm::BUILDING)
            .bind(task::SCHEDULING)
            .bind(&request.availability_zone)
            .bind(to_json(&request.metadata))
            .bind(&request.key_name)
            .bind(&request.key_data)
            .bind(&request.user_data)
            .bind(to_json(&request.hints))
            .bind(&request.group)
            .bind(&reservation_id)
            .bind(i64::from(index))
            .bind(hostname(&name))
            .bind(now)
            .bind(request.flavor.vcpus)
            .bind(request.flavor.memory_mb)
            .bind(&request.access_ip_v4)
            .bind(&request.access_ip_v6)
            .bind(config_drive_column(config_drive_required(
                request.config_drive,
                &request.image_properties,
                self.compute.force_config_drive,
            ))))?;
            if let Some(group) = &request.group {
                writes.push(
                    sqlx::query(
                        "INSERT INTO server_group_members (group_uuid, instance_uuid) VALUES ($1, $2)",
                    )
                    .bind(group)
                    .bind(&uuid),
                )?;
            }
            if !request.ports.requests.is_empty() || !request.tags.is_empty() {
                answered.extend(std::mem::take(&mut writes).fetch_each(&mut tx).await?);
            }
            self.allocate_ports(&mut tx, &request.project_id, &uuid, &request.ports)
                .await?;
            if !request.tags.is_empty() {
                crate::store::tags::replace(&mut tx, &uuid, &request.tags).await?;
            }
            let action_id = actions::start_action_into(
                &mut writes,
                &uuid,
                "create",
                &request.request_id,
                &request.user_id,
                &request.project_id,
            )?;
            actions::start_first_event_into(&mut writes, &action_id, SCHEDULE_EVENT, None)?;
            let operation = insert_operation_into(
                &mut writes,
                Some(&self.controller_id),
                &uuid,
                BUILD,
                step::SCHEDULE,
                &to_json(&BuildData::default()),
                &request.request_id,
                &action_id,
            )?;
            uuids.push(uuid);
            operations.push(operation);
        }
        // One `server_group.add_member` per new member (the payload lists
        // them: the writes run first).
        if let Some(group) = &request.group {
            answered.extend(std::mem::take(&mut writes).fetch_each(&mut tx).await?);
            if let Some(payload) = crate::store::server_groups::payload(&mut tx, group).await? {
                for _ in &uuids {
                    notices::server_group(
                        &mut tx,
                        &self.api_publisher(),
                        payload.clone(),
                        "add_member",
                    )
                    .await?;
                }
            }
        }
        answered.extend(novum_notify::commit_with(tx, writes).await?);
        let mut written = Vec::with_capacity(operations.len());
        for (operation, at) in operations.into_iter().zip(inserted_at) {
            let row = answered.get(at).and_then(|answer| answer.rows.first());
            let instance = row.map(Instance::from_row).transpose()?;
            written.push((operation, instance));
        }
        // The servers are scheduled one after the other, all marked as this
        // process's from now: a server still waiting for its turn after
        // ADOPT_UNOWNED_AFTER is not adopted (and run beside the others).
        let marked: Vec<(SchedulingMark, Option<(Operation, Instance)>)> = written
            .into_iter()
            .filter_map(|(operation, instance)| {
                let mark = self.mark_scheduling(&operation.id)?;
                Some((mark, instance.map(|instance| (operation, instance))))
            })
            .collect();
        let conductor = Arc::clone(self);
        tokio::spawn(async move {
            for (mark, written) in marked {
                let id = mark.id().to_string();
                conductor.run_build_marked(&id, Some(mark), written).await;
            }
        });
        Ok((uuids, reservation_id))
    }

    /// Runs the scheduling step of operation `id` of kind `kind` in the
    /// background (a resize's, an evacuation's, else a build's).
    fn spawn_scheduling(self: &Arc<Self>, kind: &str, id: String) {
        let conductor = Arc::clone(self);
        match kind {
            resize::RESIZE => tokio::spawn(async move { conductor.run_resize(&id).await }),
            evacuate::EVACUATE => tokio::spawn(async move { conductor.run_evacuate(&id).await }),
            _ => tokio::spawn(async move { conductor.run_build(&id).await }),
        };
    }

    /// Runs the scheduling step of build operation `id` (logging failures).
    async fn run_build(self: &Arc<Self>, id: &str) {
        self.run_build_marked(id, None, None).await;
    }

    /// [`Conductor::run_build`], with the operation's scheduling step
    /// already taken when `mark` is given (one this controller inserted as
    /// its owner: taking it needs no write), and with the operation and
    /// its server as that create wrote them when `written` is given.
    async fn run_build_marked(
        self: &Arc<Self>,
        id: &str,
        mark: Option<SchedulingMark>,
        written: Option<(Operation, Instance)>,
    ) {
        if let Err(error) = self.schedule_build(id, mark, written).await {
            tracing::error!(operation = id, %error, "build failed");
            let result = async {
                let Some(mut tx) = self.begin_instance_for_operation(id).await? else {
                    return Ok(());
                };
                // Still waiting for a host (another controller may have
                // placed it meanwhile: see `cluster`).
                if let Some(operation) = load_operation(&mut *tx, id).await?
                    && operation.state == op_state::RUNNING
                    && operation.step == step::SCHEDULE
                {
                    self.placement_failed(
                        &mut tx,
                        &operation,
                        Failure {
                            code: 500,
                            message: &format!("Build failed: {error}"),
                            details: "",
                            create_error: Some("BuildAbortException"),
                        },
                    )
                    .await?;
                }
                novum_notify::commit(tx).await?;
                Ok::<_, ConductorError>(())
            };
            if let Err(error) = result.await {
                tracing::error!(operation = id, %error, "cannot record a failed build");
            }
        }
    }

    async fn scheduling_request(
        &self,
        instance: &Instance,
        flavor: &FlavorSnapshot,
        data: &BuildData,
        request_id: &str,
    ) -> Result<SchedulingRequest> {
        let mut scheduling = self
            .build_request(RequestParts {
                request_id,
                flavor,
                image_id: &instance.image_ref,
                image_properties: &instance.image_property_map(),
                project_id: &instance.project_id,
                user_id: &instance.user_id,
                availability_zone: instance.requested_availability_zone.as_deref(),
                hints: instance.hints(),
                server_group: instance.server_group.as_deref(),
                instance_uuids: vec![instance.uuid.clone()],
                count: 1,
            })
            .await?;
        scheduling.ignore_hosts = data.tried_hosts.clone();
        Ok(scheduling)
    }

    /// The server group `uuid` as plugins see it (its members and their
    /// hosts now), or `None` when it is gone.
    async fn server_group(&self, uuid: &str) -> Result<Option<ServerGroup>> {
        let row = sqlx::query("SELECT policy, rules FROM server_groups WHERE uuid = $1")
            .bind(uuid)
            .fetch_optional(self.db.pool())
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let members = sqlx::query(
            "SELECT m.instance_uuid, i.host FROM server_group_members m \
             LEFT JOIN instances i ON i.uuid = m.instance_uuid AND i.deleted = 0 WHERE m.group_uuid = $1",
        )
        .bind(uuid)
        .fetch_all(self.db.pool())
        .await?;
        let mut hosts: Vec<String> = Vec::new();
        let mut uuids = Vec::new();
        for member in members {
            uuids.push(member.try_get::<String, _>("instance_uuid")?);
            if let Some(host) = member.try_get::<Option<String>, _>("host")?
                && !hosts.contains(&host)
            {
                hosts.push(host);
            }
        }
        let rules: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(&row.try_get::<String, _>("rules")?).unwrap_or_default();
        Ok(Some(ServerGroup {
            id: uuid.to_string(),
            policy: group_policy(&row.try_get::<String, _>("policy")?),
            rules: rules
                .into_iter()
                .map(|(key, value)| KeyValue {
                    key,
                    value: value
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| value.to_string()),
                })
                .collect(),
            members: uuids,
            hosts,
        }))
    }

    /// The scheduling request of `parts`, as a build asks it (capacity
    /// checked; a `zone:host` zone forces the host).
    pub(crate) async fn build_request(&self, parts: RequestParts<'_>) -> Result<SchedulingRequest> {
        let group = match parts.server_group {
            Some(uuid) => self.server_group(uuid).await?,
            None => None,
        };
        let (zone, forced_host) = match parts.availability_zone {
            Some(requested) => match requested.split_once(':') {
                Some((zone, host)) => (
                    (!zone.is_empty()).then(|| zone.to_string()),
                    (!host.is_empty()).then(|| host.to_string()),
                ),
                None => (Some(requested.to_string()), None),
            },
            None => (None, None),
        };
        let flavor = parts.flavor;
        let request = Request {
            flavor: flavor.sdk_flavor(),
            image: Image {
                id: parts.image_id.to_string(),
                properties: key_values(parts.image_properties),
            },
            project_id: parts.project_id.to_string(),
            user_id: parts.user_id.to_string(),
            availability_zone: zone,
            num_instances: parts.count.max(1),
            scheduler_hints: parts
                .hints
                .into_iter()
                .map(|(name, values)| SchedulerHint { name, values })
                .collect(),
            group,
            instance_uuids: parts.instance_uuids,
        };
        let mut scheduling = SchedulingRequest::new(parts.request_id, request);
        scheduling.force_hosts = forced_host.into_iter().collect();
        scheduling.check_capacity = true;
        Ok(scheduling)
    }

    /// Takes operation `id` for scheduling on this controller (see
    /// `cluster`) when it still waits for its scheduler's choice: the mark
    /// that holds it, the operation and its server; `None` when another
    /// controller (or this one) schedules it already, or it has moved on.
    /// `mark`: the step is taken already (an operation this controller
    /// inserted as its owner and marked: taking it needs no write).
    /// `written`: the operation and its server as that create wrote them
    /// (nothing to read; the claim re-reads the operation under its lock,
    /// so a server deleted meanwhile is not placed).
    async fn take_for_scheduling(
        self: &Arc<Self>,
        id: &str,
        mark: Option<SchedulingMark>,
        written: Option<(Operation, Instance)>,
    ) -> Result<Option<(SchedulingMark, Operation, Instance)>> {
        let taken = match mark {
            Some(mark) => {
                if let Some((operation, instance)) = written {
                    return Ok(Some((mark, operation, instance)));
                }
                mark
            }
            None => match self.take_scheduling(id).await? {
                Some(mark) => mark,
                None => return Ok(None),
            },
        };
        let Some(operation) = load_operation(self.db.pool(), id).await? else {
            return Ok(None);
        };
        if !operation.is_scheduling() {
            return Ok(None);
        }
        let Some(instance) = Instance::fetch(self.db.pool(), &operation.instance_uuid).await?
        else {
            return Ok(None);
        };
        Ok(Some((taken, operation, instance)))
    }

    async fn schedule_build(
        self: &Arc<Self>,
        id: &str,
        mark: Option<SchedulingMark>,
        written: Option<(Operation, Instance)>,
    ) -> Result<()> {
        // Taken by this controller first: another (live) one schedules it,
        // or it runs here already, or it is placed.
        let Some((_taken, operation, instance)) =
            self.take_for_scheduling(id, mark, written).await?
        else {
            return Ok(());
        };
        let data: BuildData = serde_json::from_str(&operation.data).unwrap_or_default();
        let flavor = instance.flavor()?;
        let purpose = Purpose::of_kind(&operation.kind);
        let mut request = self
            .scheduling_request(&instance, &flavor, &data, &operation.request_id)
            .await?;
        if purpose == Purpose::Unshelve
            && let Some(host) = snapshots::requested_host(&operation)
        {
            request.force_hosts = vec![host];
        }
        let spec = notices::request_spec(&instance, &flavor, &request);
        // Stamped now, sent with the claim (or the failure) it leads to: a
        // transaction fewer per build.
        let start_notice =
            builders::select_destinations(&self.scheduler_publisher(), spec.clone(), Phase::Start);
        let placement = Placement {
            purpose,
            operation: operation.clone(),
            instance: instance.clone(),
            flavor: flavor.clone(),
            spec: spec.clone(),
            start_notice: Some(start_notice.clone()),
        };
        match self.schedule_rounds(id, placement, request).await? {
            Ok(()) => Ok(()),
            Err(error) => {
                let (message, details, exception) = match &error {
                    ScheduleError::NoValidHost(no_valid_host) => (
                        no_valid_host.to_string(),
                        no_valid_host.explanation(),
                        "NoValidHost",
                    ),
                    other => (other.to_string(), String::new(), "SchedulerError"),
                };
                let data: BuildData = serde_json::from_str(
                    &load_operation(self.db.pool(), id)
                        .await?
                        .map(|operation| operation.data)
                        .unwrap_or_default(),
                )
                .unwrap_or_default();
                let message = match (&data.last_error, data.attempts) {
                    (Some(last), attempts) if attempts > 0 => {
                        format!("{message} Last build error (attempt {attempts}): {last}")
                    }
                    _ => message,
                };
                tracing::warn!(operation = id, %details, "no valid host");
                let Some(mut tx) = self.begin_instance_for_operation(id).await? else {
                    return Ok(());
                };
                if let Some(operation) = load_operation(&mut *tx, id).await?
                    && operation.state == op_state::RUNNING
                    && operation.step == step::SCHEDULE
                {
                    notices::send(&mut tx, &start_notice).await?;
                    self.placement_failed(
                        &mut tx,
                        &operation,
                        Failure {
                            code: 500,
                            message: &message,
                            details: &details,
                            create_error: Some(exception),
                        },
                    )
                    .await?;
                }
                novum_notify::commit(tx).await?;
                Ok(())
            }
        }
    }

    /// Schedules `placement` until a claim is won, or the pipeline finds no
    /// host, or [`SCHEDULING_ROUNDS`] rounds lost every claim (a lost claim
    /// means the snapshot was stale: claims only lose on a real shortage, so
    /// each round runs on a fresh one and the final answer — a host, or
    /// NoValidHost — reflects the cloud as it is). Wakes the host claimed;
    /// answers the last round's error. `operation` names the work in logs.
    async fn schedule_rounds(
        self: &Arc<Self>,
        operation: &str,
        placement: Placement,
        request: SchedulingRequest,
    ) -> Result<std::result::Result<(), ScheduleError>> {
        let mut round = 0;
        loop {
            round += 1;
            let (result, won) = self
                .schedule_once(placement.clone(), request.clone())
                .await?;
            match result {
                Ok(_) => {
                    if let Some(host) = won {
                        self.board.wake(&host);
                    }
                    return Ok(Ok(()));
                }
                Err(ScheduleError::NoValidHost(no_valid_host))
                    if !no_valid_host.lost_claims.is_empty() && round < SCHEDULING_ROUNDS =>
                {
                    tracing::info!(
                        operation,
                        round,
                        lost = ?no_valid_host.lost_claims,
                        "every claim lost: scheduling again on a fresh view"
                    );
                }
                Err(error) => return Ok(Err(error)),
            }
        }
    }

    /// One scheduling pass on a fresh snapshot: the pipeline's answer and
    /// the host claimed, if any. Counted and timed by stage in the
    /// scheduling metrics.
    async fn schedule_once(
        self: &Arc<Self>,
        placement: Placement,
        request: SchedulingRequest,
    ) -> Result<(
        Result<Vec<scheduler::Selection>, ScheduleError>,
        Option<String>,
    )> {
        let purpose = placement.purpose.label();
        let mut times = StageTimes::default();
        let pass = self.schedule_pass(placement, request, &mut times).await;
        let outcome = match &pass {
            Ok((Ok(_), _)) => Outcome::Placed,
            Ok((Err(ScheduleError::NoValidHost(no_valid_host)), _))
                if !no_valid_host.lost_claims.is_empty() =>
            {
                Outcome::ClaimsLost
            }
            Ok((Err(ScheduleError::NoValidHost(_)), _)) => Outcome::NoValidHost,
            Ok((Err(_), _)) | Err(_) => Outcome::Error,
        };
        self.scheduling_metrics
            .record_decision(purpose, outcome, times);
        pass
    }

    /// [`Conductor::schedule_once`]'s work, noting each stage's time in
    /// `times` as it ends. The slot is held while the state is brought up
    /// to date and the pipeline chooses (its choice reserved); the claim
    /// runs after, beside the next decision.
    async fn schedule_pass(
        self: &Arc<Self>,
        placement: Placement,
        request: SchedulingRequest,
        times: &mut StageTimes,
    ) -> Result<(
        Result<Vec<scheduler::Selection>, ScheduleError>,
        Option<String>,
    )> {
        let mut looks = 0;
        let (candidates, selections, reserved) = loop {
            looks += 1;
            let started = Instant::now();
            // Wait for a slot first, so the snapshot is fresh when our turn comes.
            let slot = Arc::clone(&self.scheduling_slots)
                .acquire_owned()
                .await
                .map_err(|error| ConductorError::Conflict(format!("scheduler closed: {error}")))?;
            times.wait += started.elapsed();
            let loading = Instant::now();
            let (snapshot, unanswered) = self.host_state.snapshot_with_unanswered().await?;
            times.state += loading.elapsed();
            let plugins = self.plugins.current();
            let config = self.scheduler.clone();
            let conductor = Arc::clone(self);
            let instance_uuid = placement.instance.uuid.clone();
            let purpose = placement.purpose.label();
            let chosen_from = Arc::clone(&snapshot);
            let request = request.clone();
            let ((result, reserved, pipeline), pipeline_cpu) = self
                .pipeline_threads
                .run(move || {
                    let claimer = ReservingClaimer {
                        host_state: &conductor.host_state,
                        instance_uuid: &instance_uuid,
                        reserved: Mutex::new(Vec::new()),
                    };
                    let mut rng = rand::rng();
                    let scheduling = Instant::now();
                    let result = conductor.decisions.schedule(
                        purpose,
                        &plugins,
                        &config,
                        &chosen_from,
                        request,
                        &claimer,
                        &mut rng,
                    );
                    let elapsed = scheduling.elapsed();
                    drop(slot);
                    let reserved = claimer
                        .reserved
                        .into_inner()
                        .unwrap_or_else(PoisonError::into_inner);
                    (result, reserved, elapsed)
                })
                .await
                .map_err(|error| {
                    ConductorError::Conflict(format!("scheduler task failed: {error}"))
                })?;
            times.pipeline += pipeline;
            times.pipeline_cpu += pipeline_cpu;
            match result {
                // Only the chosen host and its alternates outlive the pass:
                // the snapshot (and the columns the plugins had built of it)
                // goes now, not after the claim's wait for the database.
                Ok(selections) => break (candidates(&snapshot, &selections), selections, reserved),
                // No host while other decisions' claims were in flight: one
                // of them may fail and free its host. Look again once they
                // are answered.
                Err(ScheduleError::NoValidHost(_))
                    if !unanswered.is_empty() && looks < NO_HOST_LOOKS =>
                {
                    let waiting = Instant::now();
                    self.host_state
                        .wait_answered(&unanswered, UNANSWERED_PATIENCE)
                        .await;
                    times.wait += waiting.elapsed();
                }
                Err(error) => return Ok((Err(error), None)),
            }
        };
        let claiming = Instant::now();
        let claimed = self.claim_selection(&placement, candidates, reserved).await;
        times.claim = claiming.elapsed();
        match claimed {
            Ok(host) => Ok((Ok(selections), Some(host))),
            Err(lost_claims) => Ok((
                Err(ScheduleError::NoValidHost(scheduler::NoValidHost {
                    lost_claims,
                    ..scheduler::NoValidHost::default()
                })),
                None,
            )),
        }
    }

    /// Claims the pipeline's choice in the database, then its alternates in
    /// order (`candidates`, see [`candidates`]) until one holds: the host
    /// claimed, or every host whose claim was lost. The reservation of the
    /// choice ends with it.
    async fn claim_selection(
        &self,
        placement: &Placement,
        candidates: Vec<Result<Arc<HostState>, String>>,
        reserved: Vec<(String, host_state::Reservation)>,
    ) -> std::result::Result<String, Vec<String>> {
        let mut reserved = reserved;
        let mut lost = Vec::new();
        for candidate in candidates {
            let host = match candidate {
                Ok(host) => host,
                Err(gone) => {
                    lost.push(gone);
                    continue;
                }
            };
            let name = &host.name;
            let claimed = match placement.purpose {
                Purpose::Build | Purpose::Unshelve => self.claim_on(placement, &host).await,
                Purpose::Resize => self.claim_resize_on(placement, &host).await,
                Purpose::Evacuate => self.claim_evacuate_on(placement, &host).await,
            };
            let won = claimed.unwrap_or_else(|error| {
                tracing::error!(host = %name, %error, "claim failed");
                false
            });
            self.scheduling_metrics.record_claim(won);
            if won {
                for (host, reservation) in reserved.drain(..) {
                    if host == *name {
                        reservation.committed();
                    } else {
                        reservation.cancel();
                    }
                }
                return Ok(name.clone());
            }
            lost.push(name.clone());
        }
        Err(lost)
    }

    /// Claims `placement`'s flavor on `host`'s node, and runs `then` with
    /// the claim ([`claims::claim`]): the open transaction holding the
    /// claim and what `then`'s statements did, or `None` when the node has
    /// no room (or is gone).
    async fn claim_for(
        &self,
        placement: &Placement,
        host: &HostState,
        then: Batch,
    ) -> Result<Option<(Tx, Vec<StatementRows>)>> {
        let wanted = resources(&placement.flavor);
        match claims::claim(&self.db, &host.uuid, &placement.consumer(), wanted, then).await? {
            claims::Claim::Won { tx, then, .. } => Ok(Some((tx, then))),
            claims::Claim::NoRoom(why) => {
                tracing::info!(
                    instance = %placement.instance.uuid,
                    host = %host.name,
                    purpose = ?placement.purpose,
                    %why,
                    "claim found no room"
                );
                Ok(None)
            }
            claims::Claim::NoNode => Ok(None),
        }
    }

    /// Claims `placement` on `host` for an operation that moves a server
    /// (a resize, an evacuation): the claim's open transaction and the
    /// operation as re-read in it, or `None` when the node has no room or
    /// the operation has left its scheduling step meanwhile (the claim then
    /// rolled back).
    async fn claim_while_scheduling(
        &self,
        placement: &Placement,
        host: &HostState,
    ) -> Result<Option<(Tx, Operation)>> {
        let Some((mut tx, _)) = self.claim_for(placement, host, Batch::new()).await? else {
            return Ok(None);
        };
        match load_operation(&mut *tx, &placement.operation.id).await? {
            Some(current) if current.is_scheduling() => Ok(Some((tx, current))),
            _ => {
                tx.rollback().await?;
                Ok(None)
            }
        }
    }

    /// Claims the node of `host` for the build, and commits the placement,
    /// the next step and the spawn task with the claim.
    async fn claim_on(&self, placement: &Placement, host: &HostState) -> Result<bool> {
        let Placement {
            operation,
            instance,
            flavor,
            spec,
            ..
        } = placement;
        let interfaces = self
            .bind_ports(&instance.uuid, &host.name, &host.availability_zone)
            .await?;
        // Whatever does not depend on the claim is prepared before it: the
        // domain, the spawn task, the action's events and the scheduler's
        // notifications are written with the claim's transaction, but
        // nothing in them waits for the database's one writer.
        let placed = Instance {
            availability_zone: Some(host.availability_zone.clone()),
            ..instance.clone()
        };
        let mut spawn = self.complete_spec(&placed, flavor, interfaces).await?;
        let unshelve = placement.purpose == Purpose::Unshelve;
        if unshelve {
            snapshots::spawn_from_shelved_image(operation, &mut spawn);
        }
        let (schedule_event, spawn_event, notice) = if unshelve {
            (
                snapshots::UNSHELVE_SCHEDULE_EVENT,
                snapshots::UNSHELVE_EVENT,
                InstanceAction::Unshelve,
            )
        } else {
            (SCHEDULE_EVENT, BUILD_EVENT, InstanceAction::Create)
        };
        let mut writes = Batch::new();
        tasks::enqueue_into(
            &mut writes,
            &host.name,
            &instance.uuid,
            &operation.id,
            &TaskAction::Spawn(spawn),
            &operation.request_id,
        )?;
        if let Some(action_id) = &operation.action_id {
            actions::finish_and_start_event_into(
                &mut writes,
                action_id,
                schedule_event,
                spawn_event,
                Some(&host.name),
            )?;
        }
        let mut scheduler_events = notices::Batch::default();
        if let Some(start) = &placement.start_notice {
            scheduler_events.push(start.clone());
        }
        scheduler_events.push(builders::select_destinations(
            &self.scheduler_publisher(),
            spec.clone(),
            Phase::End,
        ));
        scheduler_events.send_with(&mut writes)?;
        // The build's next step (read back with what its notifications
        // need from before the change) and the instance placed, sent with
        // the claim: one hand-off to the database.
        let mut then = Batch::new();
        then.push(
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE conductor_operations SET step = $1, updated_at = $2 \
                 WHERE id = $3 AND state = $4 AND step = $5 RETURNING {}",
                notices::before_change_columns("$6", "$7")
            )))
            .bind(step::SPAWN)
            .bind(db::now())
            .bind(&operation.id)
            .bind(op_state::RUNNING)
            .bind(step::SCHEDULE)
            .bind(&instance.uuid)
            .bind(operation.action_id.as_deref()),
        )?;
        then.push(
            sqlx::query(
                "UPDATE instances SET host = $1, \
                 node = (SELECT hypervisor_hostname FROM compute_nodes WHERE uuid = $2), \
                 availability_zone = $3, task_state = $4, updated_at = $5 \
                 WHERE uuid = $6 RETURNING *",
            )
            .bind(&host.name)
            .bind(&host.uuid)
            .bind(&host.availability_zone)
            .bind(task::SPAWNING)
            .bind(db::now())
            .bind(&instance.uuid),
        )?;
        let Some((mut tx, then)) = self.claim_for(placement, host, then).await? else {
            return Ok(false);
        };
        let mut then = then.into_iter().map(|done| done.rows.into_iter().next());
        let (advanced, placed) = (then.next().flatten(), then.next().flatten());
        // Another controller took the build's step meanwhile.
        let Some(advanced) = advanced else {
            tx.rollback().await?;
            return Ok(false);
        };
        let (before, context) = notices::before_change_of(&advanced)?;
        let now = match placed {
            Some(row) => Instance::from_row(&row)?,
            None => notices::current(&mut tx, &instance.uuid).await?,
        };
        let compute = Publisher::compute(&host.name);
        let mut events = notices::Batch::default();
        events.action(&compute, &now, notice, Phase::Start, &context, None);
        events.state_changed(&compute, &now, before.as_ref(), &context);
        events.send_with(&mut writes)?;
        novum_notify::commit_with(tx, writes).await?;
        Ok(true)
    }

    /// A scheduling operation found no host or could not be scheduled: a
    /// build fails ([`Conductor::fail_build`]), an unshelve stays offloaded.
    async fn placement_failed(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        failure: Failure<'_>,
    ) -> Result<()> {
        if operation.kind == snapshots::UNSHELVE {
            return self
                .unshelve_not_placed(tx, operation, failure.message)
                .await;
        }
        self.fail_build(tx, operation, failure).await
    }

    /// Puts a build into ERROR with a fault, inside `tx`, and notifies it
    /// (`instance.update`; `instance.create.error` when `create_error` names
    /// the exception).
    async fn fail_build(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        failure: Failure<'_>,
    ) -> Result<()> {
        let Failure {
            code,
            message,
            details,
            create_error,
        } = failure;
        let before = StateMark::read(tx, &operation.instance_uuid).await?;
        sqlx::query(
            "UPDATE instances SET vm_state = $1, task_state = NULL, fault = $2, updated_at = $3 WHERE uuid = $4 AND deleted = 0",
        )
        .bind(vm::ERROR)
        .bind(fault_json(code, message, details))
        .bind(db::now())
        .bind(&operation.instance_uuid)
        .execute(&mut **tx)
        .await?;
        finish_operation(tx, operation, Some(message)).await?;
        self.release_ports(tx, &operation.instance_uuid).await?;
        let live = before
            .as_ref()
            .is_some_and(|before| before.vm_state != vm::DELETED);
        if !live {
            return Ok(());
        }
        let publisher = self.conductor_publisher();
        let context = notices::action_context(tx, operation.action_id.as_deref()).await?;
        if let Some(exception) = create_error {
            notices::action(
                tx,
                &publisher,
                &operation.instance_uuid,
                InstanceAction::Create,
                Phase::Error,
                &context,
                Some(notices::fault("build_and_run_instance", exception, message)),
            )
            .await?;
        }
        notices::state_changed(
            tx,
            &publisher,
            &operation.instance_uuid,
            before.as_ref(),
            &context,
        )
        .await
    }
}

/// How a build failed (see [`Conductor::fail_build`]).
struct Failure<'a> {
    /// The fault code.
    code: u16,
    /// The fault message.
    message: &'a str,
    /// The fault details.
    details: &'a str,
    /// The exception `instance.create.error` names; `None`: already notified.
    create_error: Option<&'a str>,
}

fn hostname(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    cleaned.trim_matches('-').chars().take(63).collect()
}
