//! The conductor's notifications: instance rows mapped to
//! [`InstanceInfo`], and emission into the outbox inside the transaction of
//! the change each event describes (see [`novum_notify::outbox`]).
//!
//! Where the conductor emits what (Nova's names and phases):
//!
//! | event | where | publisher |
//! |---|---|---|
//! | `scheduler.select_destinations.start` | before the pipeline runs (its own transaction) | `nova-scheduler:<controller>` |
//! | `scheduler.select_destinations.end`, `instance.create.start`, `instance.update` | the claim's transaction | scheduler; `nova-compute:<host>` |
//! | `instance.create.end` / `.error`, `compute.exception` | the spawn result's transaction | `nova-compute:<host>` |
//! | `instance.create.error` | no valid host, interrupted or failed build | `nova-conductor:<controller>` |
//! | `instance.<action>.start` + `instance.update` | the API transaction that queues the task | `nova-compute:<host>` |
//! | `instance.<action>.end` (`.error` for reboot) + `instance.update`, `compute.exception` | the task result's transaction | `nova-compute:<host>` |
//! | `instance.delete.start` / `.end` | delete request; destroy result | `nova-compute:<host>` (`nova-api` without a host) |
//! | `instance.update` | power-state sync changing the vm_state | `nova-compute:<host>` |
//! | `instance.soft_delete.start` / `.end`, `instance.restore.start` / `.end` | like any server action (the delete request with soft delete on; `restore`) | `nova-compute:<host>` |
//! | `instance.trigger_crash_dump.start` / `.end` | the request; the NMI task's result | `nova-compute:<host>` |
//!
//! `instance.update` is sent whenever vm_state or task_state changes (Nova's
//! `notify_on_state_change = vm_and_task_state`).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::model::Instance;
use super::{ConductorError, Result};
use novum_db::Tx;
use novum_notify::builders::{self, InstanceAction, InstanceInfo, RequestContext};
use novum_notify::payload::{
    ExceptionPayload, FlavorPayload, InstanceStateUpdatePayload, RequestSpecPayload,
    ServerGroupPayload, Versioned,
};
use novum_notify::{Notification, Phase, Publisher, emit};

/// An instance's vm_state and task_state before a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMark {
    /// vm_state.
    pub vm_state: String,
    /// task_state.
    pub task_state: Option<String>,
}

impl StateMark {
    /// The states of `instance`.
    pub fn of(instance: &Instance) -> Self {
        Self {
            vm_state: instance.vm_state.clone(),
            task_state: instance.task_state.clone(),
        }
    }

    /// The states of instance `uuid` in `tx` (`None` when it does not exist).
    pub async fn read(tx: &mut Tx, uuid: &str) -> Result<Option<Self>> {
        Ok(Instance::fetch(&mut **tx, uuid)
            .await?
            .map(|instance| Self::of(&instance)))
    }
}

/// A flavor snapshot as a `FlavorPayload`.
pub fn flavor_payload(flavor: &super::model::FlavorSnapshot) -> FlavorPayload {
    FlavorPayload {
        flavorid: Some(flavor.id.clone()),
        name: flavor.name.clone(),
        memory_mb: Some(flavor.memory_mb),
        vcpus: Some(flavor.vcpus),
        root_gb: Some(flavor.root_gb),
        ephemeral_gb: Some(flavor.ephemeral_gb),
        swap: flavor.swap,
        rxtx_factor: Some(1.0),
        vcpu_weight: Some(0),
        disabled: false,
        is_public: true,
        extra_specs: Some(flavor.extra_specs.clone()),
        projects: None,
        description: None,
    }
}

/// An instance row as the notification builders take it.
pub fn instance_info(instance: &Instance) -> InstanceInfo {
    let flavor = instance
        .flavor()
        .map(|flavor| flavor_payload(&flavor))
        .unwrap_or_else(|_| FlavorPayload {
            flavorid: Some(instance.flavor_id.clone()),
            ..FlavorPayload::default()
        });
    let properties = instance.image_property_map();
    InstanceInfo {
        uuid: instance.uuid.clone(),
        display_name: Some(instance.display_name.clone()),
        display_description: instance.description.clone(),
        hostname: Some(instance.hostname.clone()),
        user_id: Some(instance.user_id.clone()),
        project_id: Some(instance.project_id.clone()),
        reservation_id: Some(instance.reservation_id.clone()),
        host: instance.host.clone(),
        node: instance.node.clone(),
        availability_zone: instance
            .availability_zone
            .clone()
            .or_else(|| instance.requested_availability_zone.clone()),
        flavor,
        image_uuid: (!instance.image_ref.is_empty()).then(|| instance.image_ref.clone()),
        key_name: instance.key_name.clone(),
        architecture: properties.get("hw_architecture").cloned(),
        os_type: properties.get("os_type").cloned(),
        vm_state: instance.vm_state.clone(),
        power_state: Some(instance.power_state),
        task_state: instance.task_state.clone(),
        progress: None,
        metadata: instance.metadata_map(),
        tags: Vec::new(),
        ip_addresses: Vec::new(),
        locked: instance.locked != 0,
        locked_reason: None,
        created_at: Some(instance.created_at.clone()),
        launched_at: instance.launched_at.clone(),
        terminated_at: instance.terminated_at.clone(),
        deleted_at: instance.deleted_at.clone(),
        updated_at: Some(instance.updated_at.clone()),
    }
}

/// The context of an API caller.
pub fn caller_context(caller: &super::Caller<'_>) -> RequestContext {
    RequestContext {
        request_id: Some(caller.request_id.to_string()),
        user_id: Some(caller.user_id.to_string()),
        project_id: Some(caller.project_id.to_string()),
    }
}

/// The context of the request that started instance action `action_id`
/// (its request id and initiator), read in `tx`; empty when unknown.
pub async fn action_context(tx: &mut Tx, action_id: Option<&str>) -> Result<RequestContext> {
    let Some(action_id) = action_id else {
        return Ok(RequestContext::default());
    };
    let row =
        sqlx::query("SELECT request_id, user_id, project_id FROM instance_actions WHERE id = $1")
            .bind(action_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(match row {
        Some(row) => RequestContext {
            request_id: Some(row.try_get("request_id")?),
            user_id: Some(row.try_get("user_id")?),
            project_id: Some(row.try_get("project_id")?),
        },
        None => RequestContext::default(),
    })
}

/// The instance action notified for a server action.
pub fn server_action(action: super::states::ServerAction) -> InstanceAction {
    use super::states::ServerAction;
    match action {
        ServerAction::Start => InstanceAction::PowerOn,
        ServerAction::Stop => InstanceAction::PowerOff,
        ServerAction::Reboot(_) => InstanceAction::Reboot,
        ServerAction::Pause => InstanceAction::Pause,
        ServerAction::Unpause => InstanceAction::Unpause,
        ServerAction::Suspend => InstanceAction::Suspend,
        ServerAction::Resume => InstanceAction::Resume,
        ServerAction::SoftDelete => InstanceAction::SoftDelete,
        ServerAction::Restore => InstanceAction::Restore,
    }
}

/// The instance action notified for an instance-action name (`stop`,
/// `reboot`, …; the names [`super::states::ServerAction::name`] gives).
pub fn named_action(name: &str) -> Option<InstanceAction> {
    Some(match name {
        "start" => InstanceAction::PowerOn,
        "stop" => InstanceAction::PowerOff,
        "reboot" => InstanceAction::Reboot,
        "pause" => InstanceAction::Pause,
        "unpause" => InstanceAction::Unpause,
        "suspend" => InstanceAction::Suspend,
        "resume" => InstanceAction::Resume,
        "soft_delete" => InstanceAction::SoftDelete,
        "restore" => InstanceAction::Restore,
        super::interfaces::ATTACH => InstanceAction::InterfaceAttach,
        super::interfaces::DETACH => InstanceAction::InterfaceDetach,
        super::rebuild::REBUILD => InstanceAction::Rebuild,
        super::rescue::RESCUE => InstanceAction::Rescue,
        super::rescue::UNRESCUE => InstanceAction::Unrescue,
        _ => return None,
    })
}

/// A fault payload: `exception` names the kind, `message` the text.
pub fn fault(function_name: &str, exception: &str, message: &str) -> ExceptionPayload {
    ExceptionPayload {
        module_name: "novum.conductor".to_string(),
        function_name: function_name.to_string(),
        exception: exception.to_string(),
        exception_message: message.to_string(),
        traceback: String::new(),
    }
}

/// Instance `uuid` as it is now in `tx` (not found is an error).
pub async fn current(tx: &mut Tx, uuid: &str) -> Result<Instance> {
    Instance::fetch(&mut **tx, uuid)
        .await?
        .ok_or_else(|| ConductorError::NotFound(format!("Instance {uuid} could not be found.")))
}

/// What the notifications of a change to instance `uuid` need from before
/// it, as columns of one statement: the instance's states (`NULL` when it
/// does not exist) and the request context of its action
/// ([`action_context`]); `uuid` and `action_id` are
/// the placeholders binding the instance's uuid and its action's id (or
/// the columns holding them, in a query of `conductor_operations`). Also
/// a `RETURNING` list: an update of another row (a step taken) reads them
/// in the same statement, and [`before_change_of`] reads its answer.
pub fn before_change_columns(uuid: &str, action_id: &str) -> String {
    format!(
        "(SELECT vm_state FROM instances WHERE uuid = {uuid}) AS before_vm_state, \
         (SELECT task_state FROM instances WHERE uuid = {uuid}) AS before_task_state, \
         (SELECT request_id FROM instance_actions WHERE id = {action_id}) AS action_request_id, \
         (SELECT user_id FROM instance_actions WHERE id = {action_id}) AS action_user_id, \
         (SELECT project_id FROM instance_actions WHERE id = {action_id}) AS action_project_id"
    )
}

/// What a row of [`before_change_columns`] says: the instance's states
/// (`None` when it did not exist) and the action's request context.
pub fn before_change_of(row: &AnyRow) -> Result<(Option<StateMark>, RequestContext)> {
    let mark = match row.try_get::<Option<String>, _>("before_vm_state")? {
        Some(vm_state) => Some(StateMark {
            vm_state,
            task_state: row.try_get("before_task_state")?,
        }),
        None => None,
    };
    let context = match row.try_get::<Option<String>, _>("action_request_id")? {
        Some(request_id) => RequestContext {
            request_id: Some(request_id),
            user_id: row.try_get("action_user_id")?,
            project_id: row.try_get("action_project_id")?,
        },
        None => RequestContext::default(),
    };
    Ok((mark, context))
}

/// Instance `uuid` as `update` (an `UPDATE instances … RETURNING *`) left
/// it in `tx`: the change and the row its notifications describe, in one
/// statement. When the update matched nothing, the row as it is
/// ([`current`]).
pub async fn changed(
    tx: &mut Tx,
    uuid: &str,
    update: sqlx::query::QueryAs<'_, sqlx::Any, Instance, sqlx::any::AnyArguments>,
) -> Result<Instance> {
    match update.fetch_optional(&mut **tx).await? {
        Some(instance) => Ok(instance),
        None => current(tx, uuid).await,
    }
}

/// Emits `notification` in `tx`.
pub async fn send(tx: &mut Tx, notification: &Notification) -> Result<()> {
    emit(tx, notification).await?;
    Ok(())
}

/// Events of one change, written to the outbox together
/// ([`novum_notify::emit_all`]: one statement, however many), in the order
/// they were added. The instance events are built from an instance row the
/// caller read once for all of them (see [`current`]).
#[derive(Default)]
pub struct Batch {
    notifications: Vec<Notification>,
}

impl Batch {
    /// Adds `notification`.
    pub fn push(&mut self, notification: Notification) {
        self.notifications.push(notification);
    }

    /// Adds `instance.<action>.<phase>` about `instance`.
    pub fn action(
        &mut self,
        publisher: &Publisher,
        instance: &Instance,
        action: InstanceAction,
        phase: Phase,
        context: &RequestContext,
        fault: Option<ExceptionPayload>,
    ) {
        self.push(builders::instance_action(
            publisher,
            &instance_info(instance),
            action,
            phase,
            context,
            fault,
        ));
    }

    /// Adds `instance.update` when `instance`'s vm_state or task_state
    /// differs from `before` (nothing when `before` is `None` or unchanged).
    pub fn state_changed(
        &mut self,
        publisher: &Publisher,
        instance: &Instance,
        before: Option<&StateMark>,
        context: &RequestContext,
    ) {
        let Some(before) = before else { return };
        if StateMark::of(instance) == *before {
            return;
        }
        let update = InstanceStateUpdatePayload {
            old_state: Some(before.vm_state.clone()),
            state: Some(instance.vm_state.clone()),
            old_task_state: before.task_state.clone(),
            new_task_state: instance.task_state.clone(),
        };
        self.push(builders::instance_update(
            publisher,
            &instance_info(instance),
            update,
            None,
            context,
        ));
    }

    /// Writes the events in `tx`.
    pub async fn send(self, tx: &mut Tx) -> Result<()> {
        if !self.notifications.is_empty() {
            novum_notify::emit_all(tx, &self.notifications).await?;
        }
        Ok(())
    }

    /// Adds the events to `writes`, to be sent with a transaction's other
    /// writes.
    pub fn send_with(self, writes: &mut novum_db::Batch) -> Result<()> {
        novum_notify::emit_all_into(writes, &self.notifications)?;
        Ok(())
    }
}

/// Emits `instance.<action>.<phase>` about instance `uuid` as it is now in `tx`.
pub async fn action(
    tx: &mut Tx,
    publisher: &Publisher,
    uuid: &str,
    action: InstanceAction,
    phase: Phase,
    context: &RequestContext,
    fault: Option<ExceptionPayload>,
) -> Result<()> {
    let instance = current(tx, uuid).await?;
    let mut batch = Batch::default();
    batch.action(publisher, &instance, action, phase, context, fault);
    batch.send(tx).await
}

/// Emits `instance.<action>` (no phase: `evacuate`, `rebuild_scheduled`)
/// about instance `uuid` as it is now in `tx`.
pub async fn instance_event(
    tx: &mut Tx,
    publisher: &Publisher,
    uuid: &str,
    action: &str,
    context: &RequestContext,
) -> Result<()> {
    let instance = current(tx, uuid).await?;
    let notification =
        builders::instance_event(publisher, &instance_info(&instance), action, context);
    send(tx, &notification).await
}

/// Emits `instance.resize_prep.<phase>` about instance `uuid` as it is now
/// in `tx`, with the flavor it is being resized to.
pub async fn resize_prep(
    tx: &mut Tx,
    publisher: &Publisher,
    uuid: &str,
    phase: Phase,
    context: &RequestContext,
    new_flavor: &super::model::FlavorSnapshot,
) -> Result<()> {
    let instance = current(tx, uuid).await?;
    let notification = builders::instance_resize_prep(
        publisher,
        &instance_info(&instance),
        phase,
        context,
        flavor_payload(new_flavor),
    );
    send(tx, &notification).await
}

/// Emits `instance.update` when instance `uuid`'s vm_state or task_state
/// differs from `before` (nothing when `before` is `None` or unchanged).
pub async fn state_changed(
    tx: &mut Tx,
    publisher: &Publisher,
    uuid: &str,
    before: Option<&StateMark>,
    context: &RequestContext,
) -> Result<()> {
    if before.is_none() {
        return Ok(());
    }
    let instance = current(tx, uuid).await?;
    let mut batch = Batch::default();
    batch.state_changed(publisher, &instance, before, context);
    batch.send(tx).await
}

/// Emits `compute.exception` about instance `uuid`.
pub async fn exception(
    tx: &mut Tx,
    publisher: &Publisher,
    uuid: &str,
    fault: ExceptionPayload,
) -> Result<()> {
    let notification = builders::compute_exception(publisher, fault, uuid)
        .with_instance(uuid)
        .with_project(
            Instance::fetch(&mut **tx, uuid)
                .await?
                .map(|instance| instance.project_id)
                .as_deref(),
        );
    send(tx, &notification).await
}

/// The `RequestSpecPayload` of scheduling `instance` with `request`.
pub fn request_spec(
    instance: &Instance,
    flavor: &super::model::FlavorSnapshot,
    request: &novum_scheduler::SchedulingRequest,
) -> RequestSpecPayload {
    let hints = instance.hints();
    RequestSpecPayload {
        instance_uuid: instance.uuid.clone(),
        project_id: Some(instance.project_id.clone()),
        user_id: Some(instance.user_id.clone()),
        availability_zone: request.request.availability_zone.clone(),
        flavor: Some(Versioned(flavor_payload(flavor))),
        force_hosts: request.force_hosts.first().cloned(),
        force_nodes: request.force_nodes.first().cloned(),
        ignore_hosts: (!request.ignore_hosts.is_empty()).then(|| request.ignore_hosts.clone()),
        image_meta: None,
        instance_group: None,
        image: (!instance.image_ref.is_empty()).then(|| {
            serde_json::json!({
                "id": instance.image_ref,
                "properties": instance.image_property_map(),
            })
        }),
        numa_topology: None,
        pci_requests: None,
        num_instances: 1,
        // Nova's `DestinationPayload` of a migration to a named host.
        requested_destination: request.requested_hosts.first().map(|host| {
            serde_json::json!({
                "nova_object.name": "DestinationPayload",
                "nova_object.namespace": "nova",
                "nova_object.version": "1.0",
                "nova_object.data": {"host": host, "node": null, "cell": null, "aggregates": null},
            })
        }),
        retry: None,
        scheduler_hints: (!hints.is_empty()).then_some(hints),
        security_groups: Vec::new(),
    }
}

/// Emits `instance.update` for a rename of instance `uuid` from `old_name`
/// (Nova's `old_display_name`; the states are unchanged).
pub async fn renamed(
    tx: &mut Tx,
    publisher: &Publisher,
    uuid: &str,
    old_name: &str,
    context: &RequestContext,
) -> Result<()> {
    if current(tx, uuid).await?.display_name == old_name {
        return Ok(());
    }
    updated(tx, publisher, uuid, Some(old_name.to_string()), context).await
}

/// Emits `instance.update` about `uuid` as it now is, its state unchanged:
/// a rename (`old_display_name`) or a change of its metadata or tags.
pub async fn updated(
    tx: &mut Tx,
    publisher: &Publisher,
    uuid: &str,
    old_display_name: Option<String>,
    context: &RequestContext,
) -> Result<()> {
    let instance = current(tx, uuid).await?;
    let update = InstanceStateUpdatePayload {
        old_state: Some(instance.vm_state.clone()),
        state: Some(instance.vm_state.clone()),
        old_task_state: instance.task_state.clone(),
        new_task_state: instance.task_state.clone(),
    };
    let notification = builders::instance_update(
        publisher,
        &instance_info(&instance),
        update,
        old_display_name,
        context,
    );
    send(tx, &notification).await
}

/// Emits `server_group.<action>` (`create`, `delete`, `add_member`) about
/// group `payload` in `tx`.
pub async fn server_group(
    tx: &mut Tx,
    publisher: &Publisher,
    payload: ServerGroupPayload,
    action: &str,
) -> Result<()> {
    send(tx, &builders::server_group(publisher, payload, action)).await
}
