//! Snapshots, backups and shelving (Nova's `createImage`, `createBackup`,
//! `shelve`, `shelveOffload` and `unshelve` server actions).
//!
//! A snapshot first makes its image record in novum's image service
//! (queued, with the properties Nova gives a snapshot), then one agent task
//! ([`TaskAction::Snapshot`]) copies the root disk and uploads it; the
//! upload moves the instance's task_state from `image_snapshot` (or
//! `image_backup`) through `image_pending_upload` to `image_uploading`,
//! and the task's success ends the operation with an active image. A
//! failure deletes the image and puts the instance back as it was, with a
//! fault. A backup then deletes the oldest backups of the instance and
//! backup type beyond its `rotation`.
//!
//! Shelve runs, under one operation, power off → snapshot (`<name>-shelved`)
//! → SHELVED, and when `[compute] shelved_offload_time` is 0 the offload at
//! once: the domain destroyed, the claim released, the ports taken off the
//! host, host and node cleared → SHELVED_OFFLOADED. Unshelving a SHELVED
//! instance powers it on where it is; unshelving a SHELVED_OFFLOADED one
//! schedules it again through the build's scheduling path, which claims a
//! host and spawns it from the shelved image. Either way the shelved image
//! is deleted afterwards.
//!
//! A multi-task operation keeps its remaining [`Step`]s in its durable data
//! (running step first), so a restarted controller finds its place.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use novum_images::{self as images, Visibility};
use novum_wire::{SpawnSpec, TaskAction, TaskOutcome};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use uuid::Uuid;

use super::model::Instance;
use super::notices::{self, StateMark};
use super::states::vm;
use super::{
    Conductor, ConductorError, Operation, Result, actions, claims, fault_json, finish_operation,
    insert_operation, load_operation, op_state, set_operation, step, tasks, to_json,
};
use novum_db::{self as db, Tx};
use novum_notify::builders::{self, InstanceAction, RequestContext};
use novum_notify::{Phase, Publisher};

/// Operation kind (and instance action) of a snapshot.
pub const CREATE_IMAGE: &str = "createImage";
/// Operation kind of a backup.
pub const CREATE_BACKUP: &str = "createBackup";
/// Operation kind of a shelve.
pub const SHELVE: &str = "shelve";
/// Operation kind of a shelve offload.
pub const SHELVE_OFFLOAD: &str = "shelveOffload";
/// Operation kind of an unshelve.
pub const UNSHELVE: &str = "unshelve";

const SNAPSHOT_EVENT: &str = "compute_snapshot_instance";
const BACKUP_EVENT: &str = "compute_backup_instance";
const SHELVE_EVENT: &str = "compute_shelve_instance";
const OFFLOAD_EVENT: &str = "compute_shelve_offload_instance";
/// The event of an unshelve's scheduling.
pub(super) const UNSHELVE_SCHEDULE_EVENT: &str = "conductor_unshelve_instance";
/// The event of an unshelve's spawn on the chosen host.
pub(super) const UNSHELVE_EVENT: &str = "compute_unshelve_instance";
const START_EVENT: &str = "compute_start_instance";

/// The `instance_system_metadata` keys of a shelved instance.
pub mod shelved_keys {
    /// When it was shelved.
    pub const AT: &str = "shelved_at";
    /// The snapshot it is unshelved from.
    pub const IMAGE_ID: &str = "shelved_image_id";
    /// The host it was shelved on.
    pub const HOST: &str = "shelved_host";
}

/// task_state values of these operations (Nova's names).
pub mod image_task {
    /// A snapshot is being taken.
    pub const SNAPSHOT: &str = "image_snapshot";
    /// A backup is being taken.
    pub const BACKUP: &str = "image_backup";
    /// The snapshot is taken, its upload about to start.
    pub const PENDING_UPLOAD: &str = "image_pending_upload";
    /// The snapshot is being uploaded.
    pub const UPLOADING: &str = "image_uploading";
    /// A shelve is powering the instance off.
    pub const SHELVING: &str = "shelving";
    /// A shelve's snapshot is taken, its upload about to start.
    pub const SHELVING_PENDING_UPLOAD: &str = "shelving_image_pending_upload";
    /// A shelve's snapshot is being uploaded.
    pub const SHELVING_UPLOADING: &str = "shelving_image_uploading";
    /// The instance is being taken off its host.
    pub const SHELVING_OFFLOADING: &str = "shelving_offloading";
    /// An unshelve was asked for.
    pub const UNSHELVING: &str = "unshelving";
    /// A SHELVED instance is being powered on.
    pub const POWERING_ON: &str = "powering-on";
}

/// Whether `kind` is an operation of this module.
pub fn is_image_operation(kind: &str) -> bool {
    matches!(
        kind,
        CREATE_IMAGE | CREATE_BACKUP | SHELVE | SHELVE_OFFLOAD | UNSHELVE
    )
}

/// Nova's `NON_INHERITABLE_IMAGE_PROPERTIES` (with the default
/// `non_inheritable_image_properties`): never copied into a snapshot.
const NON_INHERITABLE: [&str; 6] = [
    "cache_in_nova",
    "bittorrent",
    "img_signature_hash_method",
    "img_signature",
    "img_signature_key_type",
    "img_signature_certificate_uuid",
];
/// Nova's `NON_INHERITABLE_IMAGE_NAMESPACES`.
const NON_INHERITABLE_PREFIX: &str = "os_glance";

/// What kind of image a snapshot makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// `createImage`: `image_type=snapshot`.
    Snapshot,
    /// `createBackup`: `image_type=backup`, then the rotation.
    Backup {
        /// `backup_type` (`daily`, `weekly`, …).
        backup_type: String,
        /// How many backups of this instance and type to keep.
        rotation: u32,
    },
}

/// A validated `createImage` or `createBackup`.
#[derive(Clone, Debug)]
pub struct SnapshotRequest {
    /// The image's name.
    pub name: String,
    /// Properties the image gets on top of the inherited ones.
    pub metadata: BTreeMap<String, String>,
    /// Snapshot or backup.
    pub kind: ImageKind,
}

/// A validated `unshelve` (microversions 2.77 and 2.91).
#[derive(Clone, Debug, Default)]
pub struct UnshelveRequest {
    /// `None`: keep the instance's zone; `Some(None)`: unpin it (2.91
    /// `"availability_zone": null`); `Some(Some(zone))`: pin it to `zone`.
    pub availability_zone: Option<Option<String>>,
    /// The host to unshelve on (2.91, admin).
    pub host: Option<String>,
}

/// A backup's rotation.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Rotation {
    backup_type: String,
    rotation: u32,
}

/// What happens to the instance when a step succeeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Effect {
    /// Nothing but the step's own notices.
    Nothing,
    /// The snapshot is uploaded: the image must be active.
    ImageMade,
    /// The snapshot is uploaded and the instance SHELVED.
    Shelved,
    /// The domain is gone: SHELVED_OFFLOADED, off its host.
    Offloaded,
    /// The instance runs again: ACTIVE, the shelved image deleted.
    Unshelved,
}

/// One agent task of an operation, with what changes around it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Step {
    host: String,
    action: TaskAction,
    /// The instance-action event it opens (`None`: it runs under the
    /// previous step's event).
    event: Option<String>,
    /// The instance's task_state while it runs (`None`: unchanged).
    task_state: Option<String>,
    /// Notified `.start` when it begins.
    start: Option<InstanceAction>,
    /// Notified `.end` when it succeeds.
    end: Option<InstanceAction>,
    effect: Effect,
}

/// What an operation of this module remembers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ImageJob {
    /// The image being made (or, for an unshelve, spawned from).
    image_id: Option<String>,
    backup: Option<Rotation>,
    /// The vm_state the instance had (restored when a snapshot fails).
    vm_state: String,
    /// The running step first, then the ones after it.
    steps: Vec<Step>,
    /// The host an unshelve must land on (2.91).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host: Option<String>,
}

fn job_of(operation: &Operation) -> ImageJob {
    serde_json::from_str(&operation.data).unwrap_or_default()
}

/// The spawn of an unshelve boots the shelved image: `spec` with it.
pub(super) fn spawn_from_shelved_image(operation: &Operation, spec: &mut SpawnSpec) {
    if let Some(image_id) = job_of(operation).image_id {
        spec.image.id = image_id;
    }
}

/// The host an unshelve asked for (2.91), if any.
pub(super) fn requested_host(operation: &Operation) -> Option<String> {
    job_of(operation).host
}

fn conflict(action: &str, instance: &Instance, allowed: &[&str]) -> Result<()> {
    if let Some(task_state) = &instance.task_state {
        return Err(ConductorError::Conflict(format!(
            "Cannot '{action}' instance {} while it is in task_state {task_state}",
            instance.uuid
        )));
    }
    if !allowed.contains(&instance.vm_state.as_str()) {
        return Err(ConductorError::Conflict(format!(
            "Cannot '{action}' instance {} while it is in vm_state {}",
            instance.uuid, instance.vm_state
        )));
    }
    Ok(())
}

/// The vm_states a snapshot, backup or shelve may start from.
const SNAPSHOT_STATES: [&str; 4] = [vm::ACTIVE, vm::STOPPED, vm::PAUSED, vm::SUSPENDED];

fn host_of(action: &str, instance: &Instance) -> Result<String> {
    instance.host.clone().ok_or_else(|| {
        ConductorError::Conflict(format!(
            "Cannot '{action}' instance {} while it is in vm_state {}: it has no host",
            instance.uuid, instance.vm_state
        ))
    })
}

/// Sets a system metadata item of `uuid`.
async fn set_system_metadata(tx: &mut Tx, uuid: &str, key: &str, value: &str) -> Result<()> {
    sqlx::query("DELETE FROM instance_system_metadata WHERE instance_uuid = $1 AND meta_key = $2")
        .bind(uuid)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO instance_system_metadata (instance_uuid, meta_key, meta_value) VALUES ($1, $2, $3)",
    )
    .bind(uuid)
    .bind(key)
    .bind(value)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The system metadata of instance `uuid`.
pub async fn system_metadata<'c, E>(executor: E, uuid: &str) -> Result<BTreeMap<String, String>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let rows = sqlx::query(
        "SELECT meta_key, meta_value FROM instance_system_metadata WHERE instance_uuid = $1",
    )
    .bind(uuid)
    .fetch_all(executor)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("meta_key")?, row.try_get("meta_value")?)))
        .collect()
}

async fn remove_shelved_keys(tx: &mut Tx, uuid: &str) -> Result<()> {
    for key in [shelved_keys::AT, shelved_keys::IMAGE_ID, shelved_keys::HOST] {
        sqlx::query(
            "DELETE FROM instance_system_metadata WHERE instance_uuid = $1 AND meta_key = $2",
        )
        .bind(uuid)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Nova's snapshot properties: the instance's image properties without
/// the non-inheritable ones, `base_image_ref`, then `instance_uuid`,
/// `user_id`, `image_type` (and `backup_type`), then the request's own.
fn snapshot_properties(
    instance: &Instance,
    user_id: &str,
    request: &SnapshotRequest,
) -> BTreeMap<String, String> {
    let mut properties: BTreeMap<String, String> = instance
        .image_property_map()
        .into_iter()
        .filter(|(key, _)| {
            !NON_INHERITABLE.contains(&key.as_str()) && !key.starts_with(NON_INHERITABLE_PREFIX)
        })
        .collect();
    if !instance.image_ref.is_empty() {
        properties.insert("base_image_ref".into(), instance.image_ref.clone());
    }
    properties.insert("instance_uuid".into(), instance.uuid.clone());
    properties.insert("user_id".into(), user_id.to_string());
    match &request.kind {
        ImageKind::Snapshot => {
            properties.insert("image_type".into(), "snapshot".into());
        }
        ImageKind::Backup { backup_type, .. } => {
            properties.insert("image_type".into(), "backup".into());
            properties.insert("backup_type".into(), backup_type.clone());
        }
    }
    properties.extend(request.metadata.clone());
    properties
}

impl Conductor {
    /// Where the image service keeps image data (set at start), so that an
    /// image this module deletes leaves no file behind.
    pub fn set_image_data_dir(&self, dir: PathBuf) {
        let _ = self.image_data_dir.set(dir);
    }

    /// Deletes image `image_id` (its record, then its data).
    async fn delete_image(&self, image_id: &str) {
        match images::delete(&self.db, image_id).await {
            Ok(_) => {
                if let Some(dir) = self.image_data_dir.get()
                    && let Err(error) = images::data::remove(dir, image_id).await
                {
                    tracing::warn!(image = image_id, %error, "image data not removed");
                }
            }
            Err(error) => tracing::warn!(image = image_id, %error, "image not deleted"),
        }
    }

    /// The image record a snapshot of `instance` starts with (queued).
    async fn snapshot_image(
        &self,
        instance: &Instance,
        caller: &super::Caller<'_>,
        request: &SnapshotRequest,
    ) -> Result<images::Image> {
        let flavor = instance.flavor()?;
        let original = if instance.image_ref.is_empty() {
            None
        } else {
            images::get(&self.db, &instance.image_ref)
                .await
                .map_err(image_error)?
        };
        let now = db::now();
        let image = images::Image {
            id: Uuid::new_v4().to_string(),
            name: Some(request.name.clone()),
            owner: caller.project_id.to_string(),
            status: images::STATUS_QUEUED.to_string(),
            visibility: Visibility::Private,
            protected: false,
            os_hidden: false,
            // A snapshot's format is the one its upload says (Nova drops the
            // original's formats: the disk may have been converted).
            disk_format: None,
            container_format: None,
            min_disk: original
                .as_ref()
                .map_or(0, |image| image.min_disk)
                .max(flavor.root_gb),
            min_ram: original.as_ref().map_or(0, |image| image.min_ram),
            size: None,
            virtual_size: None,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            tags: Vec::new(),
            properties: snapshot_properties(instance, caller.user_id, request),
            created_at: now.clone(),
            updated_at: now,
        };
        images::insert(&self.db, &image)
            .await
            .map_err(image_error)?;
        Ok(image)
    }

    /// `createImage` / `createBackup` of instance `uuid`: the image record
    /// (queued) and the snapshot task; returns the image id. Nova's guard:
    /// ACTIVE, SHUTOFF, PAUSED or SUSPENDED with no task in progress (409).
    /// The request's metadata counts against `metadata_items` (403).
    pub async fn snapshot_server(
        self: &Arc<Self>,
        uuid: &str,
        request: SnapshotRequest,
        caller: &super::Caller<'_>,
    ) -> Result<String> {
        let action = match request.kind {
            ImageKind::Snapshot => CREATE_IMAGE,
            ImageKind::Backup { .. } => CREATE_BACKUP,
        };
        let instance = Instance::fetch(self.db.pool(), uuid)
            .await?
            .filter(|instance| instance.deleted == 0)
            .ok_or_else(|| {
                ConductorError::NotFound(format!("Instance {uuid} could not be found."))
            })?;
        conflict(action, &instance, &SNAPSHOT_STATES)?;
        host_of(action, &instance)?;
        self.check_image_metadata(&instance, &request.metadata, caller)
            .await?;
        let image = self.snapshot_image(&instance, caller, &request).await?;
        let (task_state, event) = match request.kind {
            ImageKind::Snapshot => (image_task::SNAPSHOT, SNAPSHOT_EVENT),
            ImageKind::Backup { .. } => (image_task::BACKUP, BACKUP_EVENT),
        };
        let backup = match &request.kind {
            ImageKind::Snapshot => None,
            ImageKind::Backup {
                backup_type,
                rotation,
            } => Some(Rotation {
                backup_type: backup_type.clone(),
                rotation: *rotation,
            }),
        };
        let started = self
            .start_job(uuid, action, caller, &SNAPSHOT_STATES, |instance, host| {
                let job = ImageJob {
                    image_id: Some(image.id.clone()),
                    backup,
                    vm_state: instance.vm_state.clone(),
                    steps: vec![Step {
                        host: host.to_string(),
                        action: TaskAction::Snapshot {
                            image_id: image.id.clone(),
                            base_image_id: instance.image_ref.clone(),
                        },
                        event: Some(event.to_string()),
                        task_state: Some(task_state.to_string()),
                        start: Some(InstanceAction::Snapshot),
                        end: Some(InstanceAction::Snapshot),
                        effect: Effect::ImageMade,
                    }],
                    host: None,
                };
                Ok(job)
            })
            .await;
        if let Err(error) = started {
            // Nova deletes the image when the instance changed meanwhile.
            self.delete_image(&image.id).await;
            return Err(error);
        }
        Ok(image.id)
    }

    /// Nova's `check_img_metadata_properties_quota`: the request's
    /// metadata items against `metadata_items` (403 "Image metadata limit
    /// exceeded").
    async fn check_image_metadata(
        &self,
        instance: &Instance,
        metadata: &BTreeMap<String, String>,
        caller: &super::Caller<'_>,
    ) -> Result<()> {
        if metadata.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        let checked = self
            .quota
            .check_absolute(
                &mut tx,
                &instance.project_id,
                &instance.user_id,
                novum_quota::Resource::MetadataItems,
                i64::try_from(metadata.len()).unwrap_or(i64::MAX),
                caller.request_id,
            )
            .await;
        tx.rollback().await?;
        match checked {
            Ok(()) => Ok(()),
            Err(novum_quota::QuotaError::Exceeded { .. }) => Err(ConductorError::Forbidden(
                "Image metadata limit exceeded".to_string(),
            )),
            Err(other) => Err(other.into()),
        }
    }

    /// Starts an operation `kind` on instance `uuid` in one serialized
    /// transaction: the guard (`allowed` vm_states, no task), the instance
    /// action, the operation with the job `plan` makes of the instance
    /// and its host, and its first step.
    async fn start_job(
        self: &Arc<Self>,
        uuid: &str,
        kind: &str,
        caller: &super::Caller<'_>,
        allowed: &[&str],
        plan: impl FnOnce(&Instance, &str) -> Result<ImageJob>,
    ) -> Result<()> {
        let mut tx = self.begin_global(uuid).await?;
        let instance = Self::locked_instance(&mut tx, uuid).await?;
        conflict(kind, &instance, allowed)?;
        let host = host_of(kind, &instance)?;
        let job = plan(&instance, &host)?;
        let action_id = actions::start_action(
            &mut tx,
            uuid,
            kind,
            caller.request_id,
            caller.user_id,
            caller.project_id,
        )
        .await?;
        let operation_id = insert_operation(
            &mut tx,
            uuid,
            kind,
            step::TASK,
            &to_json(&job),
            caller.request_id,
            &action_id,
        )
        .await?;
        let Some(operation) = load_operation(&mut *tx, &operation_id).await? else {
            return Err(ConductorError::NotFound(format!(
                "operation {operation_id} vanished"
            )));
        };
        let context = notices::caller_context(caller);
        let wake = self
            .begin_job_step(&mut tx, &operation, &job, &context)
            .await?;
        novum_notify::commit(tx).await?;
        self.board.wake(&wake);
        Ok(())
    }

    /// Enqueues the first of `job.steps` (its task, task_state, event and
    /// `.start` notice) and stores `job`; returns the host to wake.
    async fn begin_job_step(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        job: &ImageJob,
        context: &RequestContext,
    ) -> Result<String> {
        let Some(step) = job.steps.first() else {
            return Err(ConductorError::Conflict(format!(
                "operation {} has no step left to begin",
                operation.id
            )));
        };
        let uuid = operation.instance_uuid.as_str();
        let before = StateMark::read(tx, uuid).await?;
        tasks::enqueue(
            tx,
            &step.host,
            uuid,
            &operation.id,
            &step.action,
            &operation.request_id,
        )
        .await?;
        if let Some(task_state) = &step.task_state {
            sqlx::query("UPDATE instances SET task_state = $1, updated_at = $2 WHERE uuid = $3")
                .bind(task_state)
                .bind(db::now())
                .bind(uuid)
                .execute(&mut **tx)
                .await?;
        }
        if let (Some(action_id), Some(event)) = (&operation.action_id, &step.event) {
            actions::start_event(tx, action_id, event, Some(&step.host)).await?;
        }
        set_operation(
            tx,
            &operation.id,
            step::TASK,
            op_state::RUNNING,
            &to_json(job),
        )
        .await?;
        let compute = Publisher::compute(&step.host);
        notices::state_changed(tx, &compute, uuid, before.as_ref(), context).await?;
        if let Some(action) = step.start {
            self.notify(tx, &compute, uuid, action, Phase::Start, context, job)
                .await?;
        }
        Ok(step.host.clone())
    }

    /// `instance.<action>.<phase>`; a snapshot's names its image.
    #[allow(clippy::too_many_arguments)]
    async fn notify(
        &self,
        tx: &mut Tx,
        publisher: &Publisher,
        uuid: &str,
        action: InstanceAction,
        phase: Phase,
        context: &RequestContext,
        job: &ImageJob,
    ) -> Result<()> {
        match (action, &job.image_id) {
            (InstanceAction::Snapshot, Some(image_id)) => {
                let Some(instance) = Instance::fetch(&mut **tx, uuid).await? else {
                    return Ok(());
                };
                notices::send(
                    tx,
                    &builders::instance_snapshot(
                        publisher,
                        &notices::instance_info(&instance),
                        phase,
                        context,
                        image_id,
                    ),
                )
                .await
            }
            _ => notices::action(tx, publisher, uuid, action, phase, context, None).await,
        }
    }

    /// The agent of `host` begins uploading the snapshot `image_id`: the
    /// task must name it, the image must be queued. The instance's
    /// task_state moves to `…_pending_upload`, then `…_uploading` (each
    /// change notified), and the image to `saving`; returns the image.
    pub async fn snapshot_upload_begins(
        &self,
        host: &str,
        image_id: &str,
    ) -> Result<images::Image> {
        let not_named = || {
            ConductorError::NotFound(format!(
                "image {image_id} is not the snapshot of a task of host {host}"
            ))
        };
        let Some(uuid) = tasks::snapshot_instance(&self.db, host, image_id).await? else {
            return Err(not_named());
        };
        let image = images::get(&self.db, image_id)
            .await
            .map_err(image_error)?
            .ok_or_else(not_named)?;
        if image.status != images::STATUS_QUEUED {
            return Err(ConductorError::Conflict(format!(
                "Image status transition from {} to {} is not allowed",
                image.status,
                images::STATUS_SAVING
            )));
        }
        let mut tx = self.begin_global(&uuid).await?;
        let context = match load_running_job(&mut tx, &uuid).await? {
            Some(operation) => {
                notices::action_context(&mut tx, operation.action_id.as_deref()).await?
            }
            None => RequestContext::default(),
        };
        let compute = Publisher::compute(host);
        for (from, to) in [
            (image_task::SNAPSHOT, image_task::PENDING_UPLOAD),
            (image_task::BACKUP, image_task::PENDING_UPLOAD),
            (image_task::PENDING_UPLOAD, image_task::UPLOADING),
            (image_task::SHELVING, image_task::SHELVING_PENDING_UPLOAD),
            (
                image_task::SHELVING_PENDING_UPLOAD,
                image_task::SHELVING_UPLOADING,
            ),
        ] {
            let before = StateMark::read(&mut tx, &uuid).await?;
            let moved = sqlx::query(
                "UPDATE instances SET task_state = $1, updated_at = $2 WHERE uuid = $3 AND task_state = $4",
            )
            .bind(to)
            .bind(db::now())
            .bind(&uuid)
            .bind(from)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved > 0 {
                notices::state_changed(&mut tx, &compute, &uuid, before.as_ref(), &context).await?;
            }
        }
        novum_notify::commit(tx).await?;
        if !images::transition(
            &self.db,
            image_id,
            images::STATUS_QUEUED,
            images::STATUS_SAVING,
        )
        .await
        .map_err(image_error)?
        {
            return Err(ConductorError::Conflict(format!(
                "Image {image_id} is no longer queued"
            )));
        }
        Ok(image)
    }

    /// Advances an operation of this module with the result of its running
    /// task, inside `tx`; returns a host to wake.
    pub(super) async fn image_operation_result(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        host: &str,
        outcome: &TaskOutcome,
    ) -> Result<Option<String>> {
        if operation.kind == UNSHELVE && operation.step == step::SPAWN {
            self.unshelve_spawned(tx, operation, host, outcome).await?;
            return Ok(None);
        }
        let uuid = operation.instance_uuid.as_str();
        let mut job = job_of(operation);
        if job.steps.is_empty() {
            return Ok(None);
        }
        let done = job.steps.remove(0);
        let context = notices::action_context(tx, operation.action_id.as_deref()).await?;
        let compute = Publisher::compute(host);
        let power = match outcome {
            TaskOutcome::Succeeded { power_state } => Some(i64::from(u8::from(*power_state))),
            TaskOutcome::Failed { power_state, .. } => {
                power_state.map(|state| i64::from(u8::from(state)))
            }
        };
        let failure = match outcome {
            TaskOutcome::Failed { message, .. } => Some(message.clone()),
            TaskOutcome::Succeeded { .. } => match done.effect {
                Effect::ImageMade | Effect::Shelved => {
                    self.missing_upload(job.image_id.as_deref()).await?
                }
                _ => None,
            },
        };
        if let Some(message) = failure {
            self.job_failed(tx, operation, &job, &done, host, &message, power)
                .await?;
            return Ok(None);
        }
        let before = StateMark::read(tx, uuid).await?;
        match done.effect {
            Effect::Nothing => {}
            Effect::ImageMade => set_states(tx, uuid, None, power).await?,
            Effect::Shelved => {
                set_states(tx, uuid, Some(vm::SHELVED), power).await?;
                set_system_metadata(tx, uuid, shelved_keys::AT, &db::now()).await?;
                set_system_metadata(tx, uuid, shelved_keys::HOST, host).await?;
                if let Some(image_id) = &job.image_id {
                    set_system_metadata(tx, uuid, shelved_keys::IMAGE_ID, image_id).await?;
                }
            }
            Effect::Offloaded => self.offloaded(tx, uuid).await?,
            Effect::Unshelved => {
                set_states(tx, uuid, Some(vm::ACTIVE), power).await?;
                remove_shelved_keys(tx, uuid).await?;
            }
        }
        if done.event.is_some()
            && job.steps.first().is_none_or(|next| next.event.is_some())
            && let Some(action_id) = &operation.action_id
        {
            actions::finish_events(tx, action_id, done.event.as_deref(), None).await?;
        }
        let after = Operation {
            data: to_json(&job),
            ..operation.clone()
        };
        if job.steps.is_empty() {
            finish_operation(tx, &after, None).await?;
        }
        notices::state_changed(tx, &compute, uuid, before.as_ref(), &context).await?;
        if let Some(action) = done.end {
            self.notify(tx, &compute, uuid, action, Phase::End, &context, &job)
                .await?;
        }
        if !job.steps.is_empty() {
            let next = self.begin_job_step(tx, &after, &job, &context).await?;
            return Ok(Some(next));
        }
        Ok(None)
    }

    /// `Some(why)` when the snapshot `image_id` is not active although its
    /// task said it was uploaded.
    async fn missing_upload(&self, image_id: Option<&str>) -> Result<Option<String>> {
        let Some(image_id) = image_id else {
            return Ok(None);
        };
        let image = images::get(&self.db, image_id).await.map_err(image_error)?;
        Ok(match image {
            Some(image) if image.status == images::STATUS_ACTIVE => None,
            Some(image) => Some(format!(
                "Snapshot image {image_id} is {} after its task: its data never arrived.",
                image.status
            )),
            None => Some(format!(
                "Snapshot image {image_id} was deleted while it was being made."
            )),
        })
    }

    /// A step failed: the snapshot image is deleted (once the transaction
    /// commits), the instance goes back to the vm_state it had with the
    /// task_state cleared and a fault, and the action ends in error.
    #[allow(clippy::too_many_arguments)]
    async fn job_failed(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        job: &ImageJob,
        done: &Step,
        host: &str,
        message: &str,
        power: Option<i64>,
    ) -> Result<()> {
        let uuid = operation.instance_uuid.as_str();
        let before = StateMark::read(tx, uuid).await?;
        // An unshelve never deletes the image it unshelves from, nor does
        // a failed offload (the instance stays SHELVED, its image kept).
        let offloading = done.effect == Effect::Offloaded;
        let image = job
            .image_id
            .clone()
            .filter(|_| operation.kind != UNSHELVE && !offloading);
        let vm_state = if offloading {
            vm::SHELVED
        } else {
            job.vm_state.as_str()
        };
        sqlx::query(
            "UPDATE instances SET vm_state = $1, task_state = NULL, power_state = COALESCE($2, power_state), \
             fault = $3, updated_at = $4 WHERE uuid = $5 AND deleted = 0",
        )
        .bind(vm_state)
        .bind(power)
        .bind(fault_json(500, message, ""))
        .bind(db::now())
        .bind(uuid)
        .execute(&mut **tx)
        .await?;
        let failed = Operation {
            data: to_json(job),
            ..operation.clone()
        };
        finish_operation(tx, &failed, Some(message)).await?;
        let context = notices::action_context(tx, operation.action_id.as_deref()).await?;
        let compute = Publisher::compute(host);
        notices::state_changed(tx, &compute, uuid, before.as_ref(), &context).await?;
        let function = match done.effect {
            Effect::Offloaded => "shelve_offload_instance",
            Effect::Unshelved => "unshelve_instance",
            _ if operation.kind == SHELVE => "shelve_instance",
            _ => "snapshot_instance",
        };
        notices::exception(
            tx,
            &compute,
            uuid,
            notices::fault(function, "InstanceActionFailed", message),
        )
        .await?;
        if let Some(image_id) = image {
            // The record goes now (in this transaction's commit order it is
            // a separate write: the image service has its own table).
            sqlx::query("DELETE FROM image_members WHERE image_id = $1")
                .bind(&image_id)
                .execute(&mut **tx)
                .await?;
            sqlx::query("DELETE FROM images WHERE id = $1")
                .bind(&image_id)
                .execute(&mut **tx)
                .await?;
            if let Some(dir) = self.image_data_dir.get() {
                let dir = dir.clone();
                tokio::spawn(async move {
                    if let Err(error) = images::data::remove(&dir, &image_id).await {
                        tracing::warn!(image = %image_id, %error, "failed snapshot's data not removed");
                    }
                });
            }
        }
        Ok(())
    }

    /// The instance leaves its host: claim released, ports unbound from
    /// it, host and node cleared, SHELVED_OFFLOADED and powered off.
    async fn offloaded(&self, tx: &mut Tx, uuid: &str) -> Result<()> {
        claims::release(tx, uuid).await?;
        self.network
            .unbind_instance_ports_from_host_in(tx, uuid)
            .await?;
        sqlx::query(
            "UPDATE instances SET vm_state = $1, task_state = NULL, power_state = 0, host = NULL, node = NULL, \
             updated_at = $2 WHERE uuid = $3",
        )
        .bind(vm::SHELVED_OFFLOADED)
        .bind(db::now())
        .bind(uuid)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Shelves instance `uuid` (Nova's guard: ACTIVE, SHUTOFF, PAUSED or
    /// SUSPENDED, no task): power off, snapshot `<name>-shelved`, SHELVED,
    /// and the offload at once when `shelved_offload_time` is 0.
    pub async fn shelve_server(
        self: &Arc<Self>,
        uuid: &str,
        caller: &super::Caller<'_>,
    ) -> Result<()> {
        let instance = Instance::fetch(self.db.pool(), uuid)
            .await?
            .filter(|instance| instance.deleted == 0)
            .ok_or_else(|| {
                ConductorError::NotFound(format!("Instance {uuid} could not be found."))
            })?;
        conflict(SHELVE, &instance, &SNAPSHOT_STATES)?;
        host_of(SHELVE, &instance)?;
        let request = SnapshotRequest {
            name: format!("{}-shelved", instance.display_name),
            metadata: BTreeMap::new(),
            kind: ImageKind::Snapshot,
        };
        let image = self.snapshot_image(&instance, caller, &request).await?;
        let offload_now = self.compute.shelved_offload_time == 0;
        let started = self
            .start_job(uuid, SHELVE, caller, &SNAPSHOT_STATES, |instance, host| {
                let mut steps = vec![
                    Step {
                        host: host.to_string(),
                        action: TaskAction::Stop,
                        event: Some(SHELVE_EVENT.to_string()),
                        task_state: Some(image_task::SHELVING.to_string()),
                        start: Some(InstanceAction::Shelve),
                        end: None,
                        effect: Effect::Nothing,
                    },
                    Step {
                        host: host.to_string(),
                        action: TaskAction::Snapshot {
                            image_id: image.id.clone(),
                            base_image_id: instance.image_ref.clone(),
                        },
                        event: None,
                        task_state: None,
                        start: None,
                        end: Some(InstanceAction::Shelve),
                        effect: Effect::Shelved,
                    },
                ];
                if offload_now {
                    steps.push(offload_step(host, None));
                }
                Ok(ImageJob {
                    image_id: Some(image.id.clone()),
                    backup: None,
                    vm_state: instance.vm_state.clone(),
                    steps,
                    host: None,
                })
            })
            .await;
        if let Err(error) = started {
            self.delete_image(&image.id).await;
            return Err(error);
        }
        Ok(())
    }

    /// Offloads SHELVED instance `uuid` (`shelveOffload`): its domain
    /// destroyed, its host given up.
    pub async fn shelve_offload_server(
        self: &Arc<Self>,
        uuid: &str,
        caller: &super::Caller<'_>,
    ) -> Result<()> {
        self.start_job(
            uuid,
            SHELVE_OFFLOAD,
            caller,
            &[vm::SHELVED],
            |instance, host| {
                Ok(ImageJob {
                    image_id: None,
                    backup: None,
                    vm_state: instance.vm_state.clone(),
                    steps: vec![offload_step(host, Some(OFFLOAD_EVENT))],
                    host: None,
                })
            },
        )
        .await
    }

    /// Unshelves instance `uuid`: a SHELVED one is powered on where it is;
    /// a SHELVED_OFFLOADED one is scheduled again (in `request`'s zone,
    /// on its host when it names one) and spawned from its shelved image.
    pub async fn unshelve_server(
        self: &Arc<Self>,
        uuid: &str,
        request: UnshelveRequest,
        caller: &super::Caller<'_>,
    ) -> Result<()> {
        let mut tx = self.begin_global(uuid).await?;
        let instance = Self::locked_instance(&mut tx, uuid).await?;
        conflict(UNSHELVE, &instance, &[vm::SHELVED, vm::SHELVED_OFFLOADED])?;
        if instance.vm_state != vm::SHELVED_OFFLOADED
            && (request.availability_zone.is_some() || request.host.is_some())
        {
            return Err(ConductorError::Conflict(format!(
                "The unshelve action with an availability zone or a host is only allowed for \
                 instances in vm_state shelved_offloaded; instance {uuid} is in vm_state {}",
                instance.vm_state
            )));
        }
        let shelved = system_metadata(&mut *tx, uuid).await?;
        let image_id = shelved.get(shelved_keys::IMAGE_ID).cloned();
        let action_id = actions::start_action(
            &mut tx,
            uuid,
            UNSHELVE,
            caller.request_id,
            caller.user_id,
            caller.project_id,
        )
        .await?;
        let context = notices::caller_context(caller);
        if instance.vm_state == vm::SHELVED {
            let host = host_of(UNSHELVE, &instance)?;
            let job = ImageJob {
                image_id,
                backup: None,
                vm_state: instance.vm_state.clone(),
                steps: vec![Step {
                    host,
                    action: TaskAction::Start,
                    event: Some(START_EVENT.to_string()),
                    task_state: Some(image_task::POWERING_ON.to_string()),
                    start: Some(InstanceAction::PowerOn),
                    end: Some(InstanceAction::PowerOn),
                    effect: Effect::Unshelved,
                }],
                host: None,
            };
            let operation_id = insert_operation(
                &mut tx,
                uuid,
                UNSHELVE,
                step::TASK,
                &to_json(&job),
                caller.request_id,
                &action_id,
            )
            .await?;
            let Some(operation) = load_operation(&mut *tx, &operation_id).await? else {
                return Err(ConductorError::NotFound(format!(
                    "operation {operation_id} vanished"
                )));
            };
            let wake = self
                .begin_job_step(&mut tx, &operation, &job, &context)
                .await?;
            novum_notify::commit(tx).await?;
            self.board.wake(&wake);
            return Ok(());
        }
        let Some(image_id) = image_id else {
            return Err(ConductorError::Conflict(format!(
                "Instance {uuid} has no shelved image to unshelve from"
            )));
        };
        let before = StateMark::of(&instance);
        match &request.availability_zone {
            Some(zone) => {
                sqlx::query(
                    "UPDATE instances SET requested_availability_zone = $1, task_state = $2, updated_at = $3 WHERE uuid = $4",
                )
                .bind(zone)
                .bind(image_task::UNSHELVING)
                .bind(db::now())
                .bind(uuid)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "UPDATE instances SET task_state = $1, updated_at = $2 WHERE uuid = $3",
                )
                .bind(image_task::UNSHELVING)
                .bind(db::now())
                .bind(uuid)
                .execute(&mut *tx)
                .await?;
            }
        }
        actions::start_event(&mut tx, &action_id, UNSHELVE_SCHEDULE_EVENT, None).await?;
        let job = ImageJob {
            image_id: Some(image_id),
            backup: None,
            vm_state: instance.vm_state.clone(),
            steps: Vec::new(),
            host: request.host.clone(),
        };
        let operation = insert_operation(
            &mut tx,
            uuid,
            UNSHELVE,
            step::SCHEDULE,
            &to_json(&job),
            caller.request_id,
            &action_id,
        )
        .await?;
        notices::state_changed(
            &mut tx,
            &self.api_publisher(),
            uuid,
            Some(&before),
            &context,
        )
        .await?;
        novum_notify::commit(tx).await?;
        let conductor = Arc::clone(self);
        tokio::spawn(async move { conductor.run_build(&operation).await });
        Ok(())
    }

    /// An unshelve found no host (or its scheduling failed): the instance
    /// stays SHELVED_OFFLOADED, task_state cleared, with a fault (Nova
    /// logs "No valid host found for unshelve instance").
    pub(super) async fn unshelve_not_placed(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        message: &str,
    ) -> Result<()> {
        let uuid = operation.instance_uuid.as_str();
        let before = StateMark::read(tx, uuid).await?;
        sqlx::query(
            "UPDATE instances SET task_state = NULL, fault = $1, updated_at = $2 WHERE uuid = $3 AND deleted = 0",
        )
        .bind(fault_json(500, message, ""))
        .bind(db::now())
        .bind(uuid)
        .execute(&mut **tx)
        .await?;
        finish_operation(tx, operation, Some(message)).await?;
        let publisher = self.conductor_publisher();
        let context = notices::action_context(tx, operation.action_id.as_deref()).await?;
        notices::state_changed(tx, &publisher, uuid, before.as_ref(), &context).await?;
        notices::exception(
            tx,
            &publisher,
            uuid,
            notices::fault("unshelve_instance", "NoValidHost", message),
        )
        .await
    }

    /// The spawn of an unshelve finished: ACTIVE (the shelved image and
    /// keys gone), or the claim released, the ports off the host, and the
    /// instance back to SHELVED_OFFLOADED with a fault.
    async fn unshelve_spawned(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        host: &str,
        outcome: &TaskOutcome,
    ) -> Result<()> {
        let uuid = operation.instance_uuid.as_str();
        let before = StateMark::read(tx, uuid).await?;
        let compute = Publisher::compute(host);
        let context = notices::action_context(tx, operation.action_id.as_deref()).await?;
        match outcome {
            TaskOutcome::Succeeded { power_state } => {
                sqlx::query(
                    "UPDATE instances SET vm_state = $1, task_state = NULL, power_state = $2, launched_at = $3, \
                     updated_at = $3 WHERE uuid = $4 AND deleted = 0",
                )
                .bind(vm::ACTIVE)
                .bind(i64::from(u8::from(*power_state)))
                .bind(db::now())
                .bind(uuid)
                .execute(&mut **tx)
                .await?;
                remove_shelved_keys(tx, uuid).await?;
                finish_operation(tx, operation, None).await?;
                notices::state_changed(tx, &compute, uuid, before.as_ref(), &context).await?;
                notices::action(
                    tx,
                    &compute,
                    uuid,
                    InstanceAction::Unshelve,
                    Phase::End,
                    &context,
                    None,
                )
                .await?;
                if let Some(image_id) = job_of(operation).image_id {
                    self.delete_image_later(image_id);
                }
            }
            TaskOutcome::Failed { message, .. } => {
                self.offloaded(tx, uuid).await?;
                sqlx::query("UPDATE instances SET fault = $1 WHERE uuid = $2")
                    .bind(fault_json(500, message, ""))
                    .bind(uuid)
                    .execute(&mut **tx)
                    .await?;
                finish_operation(tx, operation, Some(message)).await?;
                notices::state_changed(tx, &compute, uuid, before.as_ref(), &context).await?;
                notices::exception(
                    tx,
                    &compute,
                    uuid,
                    notices::fault("unshelve_instance", "InstanceActionFailed", message),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// The shelved image of `instance` when it is SHELVED or
    /// SHELVED_OFFLOADED: what its deletion deletes too (as Nova's).
    pub(super) async fn shelved_image_of(
        &self,
        tx: &mut Tx,
        instance: &Instance,
    ) -> Result<Option<String>> {
        if instance.vm_state != vm::SHELVED && instance.vm_state != vm::SHELVED_OFFLOADED {
            return Ok(None);
        }
        Ok(system_metadata(&mut **tx, &instance.uuid)
            .await?
            .remove(shelved_keys::IMAGE_ID))
    }

    /// Deletes image `image_id` (when there is one) once the caller's
    /// transaction has had a moment to commit (the image service's writes
    /// are its own).
    pub(super) fn delete_image_later(&self, image_id: impl Into<Option<String>>) {
        let Some(image_id) = image_id.into() else {
            return;
        };
        let db = self.db.clone();
        let dir = self.image_data_dir.get().cloned();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            if let Err(error) = images::delete(&db, &image_id).await {
                tracing::warn!(image = %image_id, %error, "shelved image not deleted");
                return;
            }
            if let Some(dir) = dir
                && let Err(error) = images::data::remove(&dir, &image_id).await
            {
                tracing::warn!(image = %image_id, %error, "shelved image's data not removed");
            }
        });
    }

    /// Deletes the oldest backups of `instance_uuid` and `backup_type`
    /// beyond the newest `rotation` (Nova's `_rotate_backups`).
    async fn rotate_backups(&self, instance_uuid: &str, rotation: &Rotation) -> Result<()> {
        let rows = sqlx::query(
            "SELECT id, properties, created_at FROM images WHERE properties LIKE $1 ORDER BY created_at DESC, id DESC",
        )
        .bind(format!("%{instance_uuid}%"))
        .fetch_all(self.db.pool())
        .await?;
        let mut backups = Vec::new();
        for row in rows {
            let properties: BTreeMap<String, String> =
                serde_json::from_str(&row.try_get::<String, _>("properties")?).unwrap_or_default();
            let is_backup = properties.get("image_type").map(String::as_str) == Some("backup")
                && properties.get("instance_uuid").map(String::as_str) == Some(instance_uuid)
                && properties.get("backup_type") == Some(&rotation.backup_type);
            if is_backup {
                backups.push(row.try_get::<String, _>("id")?);
            }
        }
        for id in backups.iter().skip(rotation.rotation as usize) {
            tracing::info!(instance = instance_uuid, image = %id, "rotating out a backup");
            self.delete_image(id).await;
        }
        Ok(())
    }

    /// After an operation of this module committed: a finished backup's
    /// rotation.
    pub(super) async fn after_image_operation(&self, operation_id: &str) {
        let result = async {
            let Some(operation) = load_operation(self.db.pool(), operation_id).await? else {
                return Ok(());
            };
            if operation.kind != CREATE_BACKUP || operation.state != op_state::DONE {
                return Ok(());
            }
            if let Some(rotation) = job_of(&operation).backup {
                self.rotate_backups(&operation.instance_uuid, &rotation)
                    .await?;
            }
            Ok::<_, ConductorError>(())
        };
        if let Err(error) = result.await {
            tracing::error!(operation = operation_id, %error, "backup rotation failed");
        }
    }

    /// An operation of this module interrupted by a restart with no task
    /// left: the instance back to the state it had, with a fault.
    pub(super) async fn image_operation_interrupted(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        message: &str,
    ) -> Result<()> {
        if operation.kind == UNSHELVE && operation.step != step::TASK {
            return self.unshelve_not_placed(tx, operation, message).await;
        }
        let job = job_of(operation);
        let host = Instance::fetch(&mut **tx, &operation.instance_uuid)
            .await?
            .and_then(|instance| instance.host)
            .unwrap_or_else(|| self.host.clone());
        let step = job.steps.first().cloned().unwrap_or(Step {
            host: host.clone(),
            action: TaskAction::Stop,
            event: None,
            task_state: None,
            start: None,
            end: None,
            effect: Effect::Nothing,
        });
        self.job_failed(tx, operation, &job, &step, &host, message, None)
            .await
    }

    /// Offloads every SHELVED instance shelved longer than
    /// `shelved_offload_time` ago (Nova's `_poll_shelved_instances`);
    /// returns how many offloads started. Nothing when it is -1.
    pub async fn offload_shelved(self: &Arc<Self>) -> Result<usize> {
        let offload_time = self.compute.shelved_offload_time;
        if offload_time < 0 {
            return Ok(0);
        }
        let cutoff = db::timestamp(chrono::Utc::now() - chrono::Duration::seconds(offload_time));
        let rows = sqlx::query(
            "SELECT i.uuid, i.user_id, i.project_id FROM instances i JOIN instance_system_metadata m \
             ON m.instance_uuid = i.uuid AND m.meta_key = $1 \
             WHERE i.vm_state = $2 AND i.task_state IS NULL AND i.deleted = 0 AND m.meta_value <= $3",
        )
        .bind(shelved_keys::AT)
        .bind(vm::SHELVED)
        .bind(&cutoff)
        .fetch_all(self.db.pool())
        .await?;
        // Unshelved or deleted meanwhile: skipped.
        self.act_as_owners(&rows, super::ops::OwnerSweep::ShelveOffload)
            .await
    }
}

/// The step that offloads a SHELVED instance from `host`.
fn offload_step(host: &str, event: Option<&str>) -> Step {
    Step {
        host: host.to_string(),
        action: TaskAction::Destroy,
        event: event.map(str::to_string),
        task_state: Some(image_task::SHELVING_OFFLOADING.to_string()),
        start: Some(InstanceAction::ShelveOffload),
        end: Some(InstanceAction::ShelveOffload),
        effect: Effect::Offloaded,
    }
}

/// Sets vm_state (when given), clears task_state, records the power state.
async fn set_states(
    tx: &mut Tx,
    uuid: &str,
    vm_state: Option<&str>,
    power: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "UPDATE instances SET vm_state = COALESCE($1, vm_state), task_state = NULL, \
         power_state = COALESCE($2, power_state), updated_at = $3 WHERE uuid = $4 AND deleted = 0",
    )
    .bind(vm_state)
    .bind(power)
    .bind(db::now())
    .bind(uuid)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The running operation of this module on instance `uuid`, if any.
async fn load_running_job(tx: &mut Tx, uuid: &str) -> Result<Option<Operation>> {
    let row = sqlx::query(
        "SELECT id FROM conductor_operations WHERE instance_uuid = $1 AND state = $2 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(uuid)
    .bind(op_state::RUNNING)
    .fetch_optional(&mut **tx)
    .await?;
    match row {
        Some(row) => load_operation(&mut **tx, &row.try_get::<String, _>("id")?).await,
        None => Ok(None),
    }
}

fn image_error(error: images::ImageError) -> ConductorError {
    match error {
        images::ImageError::Db(error) => ConductorError::Db(error),
        other => ConductorError::Conflict(other.to_string()),
    }
}
