//! Rebuild (Nova's `rebuild` server action): the server boots again from
//! an image (its own or a new one), on the same host, with the same ports
//! and addresses.
//!
//! The API transaction checks Nova's guard (ACTIVE, STOPPED or ERROR with
//! no task), the `metadata_items` and injected-file quotas, writes what
//! changes on the instance (image and its properties, name, metadata,
//! access IPs, description, key pair, user data, hostname: `server show`
//! has them at once, as in Nova), sets task_state `rebuilding`, and queues
//! one agent task, [`TaskAction::Rebuild`], with the instance action
//! `rebuild` (event `compute_rebuild_instance`) and `instance.rebuild.start`.
//!
//! The agent powers the guest off, makes the root disk again from the new
//! image (the ephemeral disk too unless `preserve_ephemeral`), writes the
//! config drive from the new user data and key, redefines the domain and
//! boots it, all in that one task. Its result records, in one transaction,
//! the task states Nova's compute manager passes through
//! (`rebuild_block_device_mapping`, `rebuild_spawning`, each an
//! `instance.update`), then ACTIVE — or STOPPED for a server that was
//! stopped, whose guest is never started (Nova boots it and stops it again:
//! the end state is the same) — with `launched_at` renewed and
//! `instance.rebuild.end`. A failed rebuild leaves the server in ERROR with
//! a fault, `instance.rebuild.error` and `compute.exception`, as Nova's
//! `_error_out_instance_on_exception`.

use std::collections::BTreeMap;
use std::sync::Arc;

use novum_notify::Publisher;
use novum_notify::builders::InstanceAction;
use novum_quota::Resource;
use novum_wire::{TaskAction, TaskOutcome};

use super::model::Instance;
use super::notices::{self, StateMark};
use super::ops::QueuedAction;
use super::states::{guard, vm};
use super::{ActionData, Caller, Conductor, ConductorError, Operation, Result};
use novum_db::{self as db, Tx};

/// The instance action (and operation kind) of a rebuild.
pub const REBUILD: &str = "rebuild";
/// The instance-action event of a rebuild.
const REBUILD_EVENT: &str = "compute_rebuild_instance";

/// task_state values of a rebuild, in Nova's order.
pub mod rebuild_task {
    /// Set by the API; the agent powers off and makes the disks again.
    pub const REBUILDING: &str = "rebuilding";
    /// The block devices are attached (none in novum).
    pub const BLOCK_DEVICE_MAPPING: &str = "rebuild_block_device_mapping";
    /// The guest is defined and booted again.
    pub const SPAWNING: &str = "rebuild_spawning";
}

/// The vm_states a server may be rebuilt from (no task in progress).
const REBUILDABLE: [&str; 3] = [vm::ACTIVE, vm::STOPPED, vm::ERROR];

/// Whether `task_state` belongs to a rebuild in progress (API status
/// REBUILD).
pub fn is_rebuilding(task_state: &str) -> bool {
    matches!(
        task_state,
        rebuild_task::REBUILDING | rebuild_task::BLOCK_DEVICE_MAPPING | rebuild_task::SPAWNING
    )
}

/// A key pair a rebuild sets: its name and public key.
#[derive(Clone, Debug)]
pub struct KeyPair {
    /// The key pair's name.
    pub name: String,
    /// Its public key.
    pub public_key: String,
}

/// What a rebuild asks (validated by the API). Fields left `None` keep
/// what the server has.
#[derive(Clone, Debug, Default)]
pub struct RebuildRequest {
    /// The image to boot (an image the caller may use, active, fitting the
    /// flavor).
    pub image_ref: String,
    /// Its properties.
    pub image_properties: BTreeMap<String, String>,
    /// A new display name.
    pub name: Option<String>,
    /// New metadata, replacing the server's.
    pub metadata: Option<BTreeMap<String, String>>,
    /// What the request asks of the absolute quotas (metadata items when
    /// it sets metadata; injected files, their paths and contents).
    pub absolute: Vec<(Resource, i64)>,
    /// A new `accessIPv4` (`""` clears it).
    pub access_ip_v4: Option<String>,
    /// A new `accessIPv6` (`""` clears it).
    pub access_ip_v6: Option<String>,
    /// A new description (`Some(None)` clears it; 2.19).
    pub description: Option<Option<String>>,
    /// A new key pair (`Some(None)` removes it; 2.54).
    pub key_pair: Option<Option<KeyPair>>,
    /// New user data (`Some(None)` removes it; 2.57).
    pub user_data: Option<Option<String>>,
    /// A new hostname (2.90).
    pub hostname: Option<String>,
    /// Keep the ephemeral disk.
    pub preserve_ephemeral: bool,
}

impl Conductor {
    /// Rebuilds server `uuid` as `request` asks: 409 in a state Nova
    /// refuses, 403 over quota; the work goes on in the background.
    pub async fn rebuild_server(
        self: &Arc<Self>,
        uuid: &str,
        request: RebuildRequest,
        caller: &Caller<'_>,
    ) -> Result<()> {
        let mut tx = self.begin_global(uuid).await?;
        let instance = Self::locked_instance(&mut tx, uuid).await?;
        guard(
            REBUILD,
            uuid,
            &instance.vm_state,
            instance.task_state.as_deref(),
            &REBUILDABLE,
        )
        .map_err(ConductorError::Conflict)?;
        let host = instance.host.clone().ok_or_else(|| {
            ConductorError::Conflict(format!(
                "Cannot 'rebuild' instance {uuid} while it is in vm_state {}: it has no host",
                instance.vm_state
            ))
        })?;
        for &(resource, requested) in &request.absolute {
            self.quota
                .check_absolute(
                    &mut tx,
                    &instance.project_id,
                    &instance.user_id,
                    resource,
                    requested,
                    caller.request_id,
                )
                .await?;
        }
        apply_changes(&mut tx, &instance, &request).await?;
        let rebuilt = Self::locked_instance(&mut tx, uuid).await?;
        let flavor = rebuilt.flavor()?;
        let spec = self.spec_with_interfaces(&rebuilt, &flavor).await?;
        // A stopped server is rebuilt without booting, and stays STOPPED.
        let stopped = instance.vm_state == vm::STOPPED;
        let data = ActionData {
            result_state: if stopped { vm::STOPPED } else { vm::ACTIVE }.to_string(),
            event: REBUILD_EVENT.to_string(),
            port_id: None,
            error_state: Some(vm::ERROR.to_string()),
        };
        let queued = QueuedAction {
            name: REBUILD,
            instance_action: REBUILD,
            event: REBUILD_EVENT,
            task_state: rebuild_task::REBUILDING,
            data,
            task: TaskAction::Rebuild {
                spec,
                power_on: !stopped,
                preserve_ephemeral: request.preserve_ephemeral,
            },
            notified: Some(InstanceAction::Rebuild),
        };
        self.queue_action(&mut tx, &instance, &host, queued, caller)
            .await?;
        novum_notify::commit(tx).await?;
        self.board.wake(&host);
        Ok(())
    }

    /// Records the result of a rebuild task in `tx`: on success the task
    /// states Nova's compute passes through and a new `launched_at`, then
    /// (as any action) the end state and `instance.rebuild.end`; on failure
    /// ERROR, the fault and `instance.rebuild.error`.
    pub(super) async fn rebuild_result(
        &self,
        tx: &mut Tx,
        operation: &Operation,
        host: &str,
        outcome: &TaskOutcome,
    ) -> Result<()> {
        if matches!(outcome, TaskOutcome::Succeeded { .. }) {
            let uuid = operation.instance_uuid.as_str();
            let compute = Publisher::compute(host);
            let context = notices::action_context(tx, operation.action_id.as_deref()).await?;
            for task_state in [rebuild_task::BLOCK_DEVICE_MAPPING, rebuild_task::SPAWNING] {
                let before = StateMark::read(tx, uuid).await?;
                sqlx::query(
                    "UPDATE instances SET task_state = $1, updated_at = $2 WHERE uuid = $3 AND deleted = 0",
                )
                .bind(task_state)
                .bind(db::now())
                .bind(uuid)
                .execute(&mut **tx)
                .await?;
                notices::state_changed(tx, &compute, uuid, before.as_ref(), &context).await?;
            }
            sqlx::query("UPDATE instances SET launched_at = $1 WHERE uuid = $2")
                .bind(db::now())
                .bind(uuid)
                .execute(&mut **tx)
                .await?;
        }
        self.action_result(tx, operation, host, outcome).await
    }
}

/// Writes on `instance` in `tx` what `request` changes, as Nova's API does
/// before the compute rebuilds: the image and its properties, and each
/// field the request gives.
async fn apply_changes(tx: &mut Tx, instance: &Instance, request: &RebuildRequest) -> Result<()> {
    let json = |value: &BTreeMap<String, String>| {
        serde_json::to_string(value).map_err(|error| {
            ConductorError::BadRequest(format!("the rebuild cannot be stored: {error}"))
        })
    };
    let (key_name, key_data) = match &request.key_pair {
        None => (instance.key_name.clone(), instance.key_data.clone()),
        Some(None) => (None, None),
        Some(Some(pair)) => (Some(pair.name.clone()), Some(pair.public_key.clone())),
    };
    let metadata = match &request.metadata {
        Some(metadata) => json(metadata)?,
        None => instance.metadata.clone(),
    };
    sqlx::query(
        "UPDATE instances SET image_ref = $1, image_properties = $2, display_name = $3, metadata = $4, \
         access_ip_v4 = $5, access_ip_v6 = $6, description = $7, key_name = $8, key_data = $9, \
         user_data = $10, hostname = $11, updated_at = $12 WHERE uuid = $13",
    )
    .bind(&request.image_ref)
    .bind(json(&request.image_properties)?)
    .bind(request.name.as_ref().unwrap_or(&instance.display_name))
    .bind(metadata)
    .bind(request.access_ip_v4.as_ref().unwrap_or(&instance.access_ip_v4))
    .bind(request.access_ip_v6.as_ref().unwrap_or(&instance.access_ip_v6))
    .bind(match &request.description {
        Some(description) => description.clone(),
        None => instance.description.clone(),
    })
    .bind(key_name)
    .bind(key_data)
    .bind(match &request.user_data {
        Some(user_data) => user_data.clone(),
        None => instance.user_data.clone(),
    })
    .bind(request.hostname.as_ref().unwrap_or(&instance.hostname))
    .bind(db::now())
    .bind(&instance.uuid)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
