//! Builders: from novum's plain structs to [`Notification`]s with Nova's
//! versioned payloads and, where Nova also sends one, the legacy
//! (unversioned) message.
//!
//! The conductor and the API map their rows to [`InstanceInfo`] (instances)
//! or directly to the payload structs (aggregates, services, flavors, key
//! pairs, server groups, request specs, exceptions), then call one builder
//! and [`super::emit`] in the transaction of the change.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::envelope::{EventType, Notification, Phase, Publisher};
use super::payload::{
    AggregatePayload, AuditPeriodPayload, ExceptionPayload, FlavorPayload, InstanceActionPayload,
    InstanceActionResizePrepPayload, InstanceActionSnapshotPayload, InstanceExistsPayload,
    InstancePayload, InstanceStateUpdatePayload, InstanceUpdatePayload, IpPayload, KeypairPayload,
    RequestSpecPayload, ServerGroupPayload, ServiceStatusPayload, Versioned,
};

/// Who asked, in which API request: fills `request_id`,
/// `action_initiator_user` and `action_initiator_project` (all `None` for
/// periodic tasks, as in Nova).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestContext {
    /// `req-<uuid>`.
    pub request_id: Option<String>,
    /// The caller's user id.
    pub user_id: Option<String>,
    /// The caller's project id.
    pub project_id: Option<String>,
}

/// An instance, as the conductor knows it. Timestamps are the database's
/// RFC 3339 text; states are Nova's lower-case names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceInfo {
    /// Uuid.
    pub uuid: String,
    /// Name.
    pub display_name: Option<String>,
    /// Description.
    pub display_description: Option<String>,
    /// Guest host name.
    pub hostname: Option<String>,
    /// Owner user.
    pub user_id: Option<String>,
    /// Owner project.
    pub project_id: Option<String>,
    /// Multi-create reservation id.
    pub reservation_id: Option<String>,
    /// Compute host.
    pub host: Option<String>,
    /// Hypervisor node.
    pub node: Option<String>,
    /// Availability zone.
    pub availability_zone: Option<String>,
    /// Flavor.
    pub flavor: FlavorPayload,
    /// Image id.
    pub image_uuid: Option<String>,
    /// Key pair name.
    pub key_name: Option<String>,
    /// Architecture.
    pub architecture: Option<String>,
    /// Guest OS type.
    pub os_type: Option<String>,
    /// vm_state (`active`, `building`, `stopped`, ...).
    pub vm_state: String,
    /// Power state code (Nova's: 0 pending, 1 running, 3 paused, 4 shutdown,
    /// 6 crashed, 7 suspended).
    pub power_state: Option<i64>,
    /// task_state, when a task runs.
    pub task_state: Option<String>,
    /// Progress percentage.
    pub progress: Option<i64>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Addresses.
    pub ip_addresses: Vec<IpPayload>,
    /// Locked.
    pub locked: bool,
    /// Why it is locked.
    pub locked_reason: Option<String>,
    /// Created.
    pub created_at: Option<String>,
    /// First launched.
    pub launched_at: Option<String>,
    /// Terminated.
    pub terminated_at: Option<String>,
    /// Deleted.
    pub deleted_at: Option<String>,
    /// Last updated.
    pub updated_at: Option<String>,
}

/// Nova's power state name of a power state code.
pub fn power_state_name(code: i64) -> &'static str {
    match code {
        1 => "running",
        3 => "paused",
        4 => "shutdown",
        6 => "crashed",
        7 => "suspended",
        _ => "pending",
    }
}

/// A database timestamp (RFC 3339) as Nova's payload DateTimeField
/// (`2012-10-29T13:42:11Z`); text that does not parse passes through.
pub fn payload_time(text: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(at) => at
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        Err(_) => text.to_string(),
    }
}

fn payload_times(text: &Option<String>) -> Option<String> {
    text.as_deref().map(payload_time)
}

/// The instance actions with versioned notifications
/// (`instance.<action>.<phase>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum InstanceAction {
    Create,
    Delete,
    PowerOn,
    PowerOff,
    Pause,
    Unpause,
    Suspend,
    Resume,
    Shutdown,
    Reboot,
    Rebuild,
    Resize,
    ResizePrep,
    ResizeFinish,
    ResizeConfirm,
    ResizeRevert,
    Snapshot,
    Shelve,
    ShelveOffload,
    Unshelve,
    Rescue,
    Unrescue,
    LiveMigrationPre,
    LiveMigrationPost,
    LiveMigrationRollback,
    LiveMigrationAbort,
    LiveMigrationForceComplete,
    InterfaceAttach,
    InterfaceDetach,
    SoftDelete,
    Restore,
    TriggerCrashDump,
}

impl InstanceAction {
    /// The versioned action name (`power_off`).
    pub fn as_str(self) -> &'static str {
        use InstanceAction::*;
        match self {
            Create => "create",
            Delete => "delete",
            PowerOn => "power_on",
            PowerOff => "power_off",
            Pause => "pause",
            Unpause => "unpause",
            Suspend => "suspend",
            Resume => "resume",
            Shutdown => "shutdown",
            Reboot => "reboot",
            Rebuild => "rebuild",
            Resize => "resize",
            ResizePrep => "resize_prep",
            ResizeFinish => "resize_finish",
            ResizeConfirm => "resize_confirm",
            ResizeRevert => "resize_revert",
            Snapshot => "snapshot",
            Shelve => "shelve",
            ShelveOffload => "shelve_offload",
            Unshelve => "unshelve",
            Rescue => "rescue",
            Unrescue => "unrescue",
            LiveMigrationPre => "live_migration_pre",
            LiveMigrationPost => "live_migration_post",
            LiveMigrationRollback => "live_migration_rollback",
            LiveMigrationAbort => "live_migration_abort",
            LiveMigrationForceComplete => "live_migration_force_complete",
            InterfaceAttach => "interface_attach",
            InterfaceDetach => "interface_detach",
            SoftDelete => "soft_delete",
            Restore => "restore",
            TriggerCrashDump => "trigger_crash_dump",
        }
    }

    /// The legacy event name between `compute.instance.` and the phase
    /// (`resize.prep`, `finish_resize`, `live_migration._post`), where Nova's
    /// legacy notifications name the action differently.
    pub fn legacy_name(self) -> &'static str {
        use InstanceAction::*;
        match self {
            ResizePrep => "resize.prep",
            ResizeFinish => "finish_resize",
            ResizeConfirm => "resize.confirm",
            ResizeRevert => "resize.revert",
            LiveMigrationPre => "live_migration.pre",
            LiveMigrationPost => "live_migration._post",
            LiveMigrationRollback => "live_migration._rollback",
            LiveMigrationAbort => "live_migration.abort",
            LiveMigrationForceComplete => "live_migration.force_complete",
            other => other.as_str(),
        }
    }
}

fn instance_payload(instance: &InstanceInfo, context: &RequestContext) -> InstancePayload {
    InstancePayload {
        uuid: instance.uuid.clone(),
        user_id: instance.user_id.clone(),
        tenant_id: instance.project_id.clone(),
        reservation_id: instance.reservation_id.clone(),
        display_name: instance.display_name.clone(),
        display_description: instance.display_description.clone(),
        host_name: instance.hostname.clone(),
        host: instance.host.clone(),
        node: instance.node.clone(),
        os_type: instance.os_type.clone(),
        architecture: instance.architecture.clone(),
        availability_zone: instance.availability_zone.clone(),
        flavor: Versioned(instance.flavor.clone()),
        image_uuid: instance.image_uuid.clone(),
        key_name: instance.key_name.clone(),
        kernel_id: Some(String::new()),
        ramdisk_id: Some(String::new()),
        created_at: payload_times(&instance.created_at),
        launched_at: payload_times(&instance.launched_at),
        terminated_at: payload_times(&instance.terminated_at),
        deleted_at: payload_times(&instance.deleted_at),
        updated_at: payload_times(&instance.updated_at),
        state: Some(instance.vm_state.clone()),
        power_state: instance
            .power_state
            .map(|code| power_state_name(code).to_string()),
        task_state: instance.task_state.clone(),
        progress: instance.progress,
        ip_addresses: instance
            .ip_addresses
            .iter()
            .cloned()
            .map(Versioned)
            .collect(),
        block_devices: Vec::new(),
        metadata: instance.metadata.clone(),
        locked: instance.locked,
        auto_disk_config: "MANUAL".to_string(),
        // Nova: no request id for periodic tasks (no user and project).
        request_id: context
            .user_id
            .as_ref()
            .and(context.project_id.as_ref())
            .and(context.request_id.clone()),
        action_initiator_user: context.user_id.clone(),
        action_initiator_project: context.project_id.clone(),
        locked_reason: instance.locked_reason.clone(),
        shares: Vec::new(),
    }
}

/// Nova's legacy instance info (`nova/notifications/base.py`
/// `info_from_instance`): a flat dict.
fn legacy_instance_info(instance: &InstanceInfo) -> serde_json::Map<String, Value> {
    let flavor = &instance.flavor;
    let legacy_time = |text: &Option<String>| -> Value {
        match text {
            Some(text) => Value::String(payload_time(text)),
            None => Value::String(String::new()),
        }
    };
    let info = json!({
        "tenant_id": instance.project_id,
        "user_id": instance.user_id,
        "instance_id": instance.uuid,
        "display_name": instance.display_name,
        "reservation_id": instance.reservation_id,
        "hostname": instance.hostname,
        "instance_type": flavor.name,
        "instance_flavor_id": flavor.flavorid,
        "architecture": instance.architecture,
        "memory_mb": flavor.memory_mb,
        "disk_gb": flavor.root_gb.unwrap_or(0) + flavor.ephemeral_gb.unwrap_or(0),
        "vcpus": flavor.vcpus,
        "root_gb": flavor.root_gb,
        "ephemeral_gb": flavor.ephemeral_gb,
        "host": instance.host,
        "node": instance.node,
        "availability_zone": instance.availability_zone,
        "cell_name": "",
        "created_at": instance.created_at.as_deref().map(payload_time).unwrap_or_default(),
        "terminated_at": legacy_time(&instance.terminated_at),
        "deleted_at": legacy_time(&instance.deleted_at),
        "launched_at": legacy_time(&instance.launched_at),
        "image_ref_url": instance.image_uuid,
        "os_type": instance.os_type,
        "kernel_id": "",
        "ramdisk_id": "",
        "state": instance.vm_state,
        "state_description": instance.task_state.clone().unwrap_or_default(),
        "progress": instance.progress.map(Value::from).unwrap_or_else(|| Value::String(String::new())),
        "access_ip_v4": Value::Null,
        "access_ip_v6": Value::Null,
        "fixed_ips": instance.ip_addresses.iter().map(|ip| json!({
            "address": ip.address, "version": ip.version, "label": ip.label, "vif_mac": ip.mac,
        })).collect::<Vec<_>>(),
        "image_meta": {},
        "metadata": instance.metadata,
    });
    match info {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// `instance.<action>.<phase>` (`InstanceActionPayload`), with the fault
/// on `.error`.
pub fn instance_action(
    publisher: &Publisher,
    instance: &InstanceInfo,
    action: InstanceAction,
    phase: Phase,
    context: &RequestContext,
    fault: Option<ExceptionPayload>,
) -> Notification {
    instance_notification(
        publisher,
        instance,
        action,
        phase,
        context,
        fault,
        |payload| payload,
    )
}

/// `instance.<action>` without a phase (`InstanceActionPayload`), as Nova
/// sends `instance.evacuate` and `instance.rebuild_scheduled`; the legacy
/// `compute.instance.<action>` with it.
pub fn instance_event(
    publisher: &Publisher,
    instance: &InstanceInfo,
    action: &str,
    context: &RequestContext,
) -> Notification {
    let event_type = EventType::new("instance", action, None);
    let payload = InstanceActionPayload {
        instance: instance_payload(instance, context),
        fault: None,
    };
    Notification::new(publisher, &event_type, instance.uuid.as_str(), payload)
        .with_instance(&instance.uuid)
        .with_project(instance.project_id.as_deref())
        .with_legacy(
            format!("compute.instance.{action}"),
            Value::Object(legacy_instance_info(instance)),
        )
}

/// `instance.resize_prep.<phase>` (`InstanceActionResizePrepPayload`): the
/// instance and the flavor it is being resized to.
pub fn instance_resize_prep(
    publisher: &Publisher,
    instance: &InstanceInfo,
    phase: Phase,
    context: &RequestContext,
    new_flavor: FlavorPayload,
) -> Notification {
    instance_notification(
        publisher,
        instance,
        InstanceAction::ResizePrep,
        phase,
        context,
        None,
        |action| InstanceActionResizePrepPayload {
            action,
            new_flavor: Some(Versioned(new_flavor)),
        },
    )
}

/// `instance.snapshot.<phase>` (`InstanceActionSnapshotPayload`): the
/// instance and the image its snapshot fills.
pub fn instance_snapshot(
    publisher: &Publisher,
    instance: &InstanceInfo,
    phase: Phase,
    context: &RequestContext,
    snapshot_image_id: &str,
) -> Notification {
    instance_notification(
        publisher,
        instance,
        InstanceAction::Snapshot,
        phase,
        context,
        None,
        |action| InstanceActionSnapshotPayload {
            action,
            snapshot_image_id: snapshot_image_id.to_string(),
        },
    )
}

/// An instance action notification whose payload `wrap` builds from the
/// common [`InstanceActionPayload`].
fn instance_notification<P: super::payload::NovaObject>(
    publisher: &Publisher,
    instance: &InstanceInfo,
    action: InstanceAction,
    phase: Phase,
    context: &RequestContext,
    fault: Option<ExceptionPayload>,
    wrap: impl FnOnce(InstanceActionPayload) -> P,
) -> Notification {
    let event_type = EventType::new("instance", action.as_str(), Some(phase));
    let mut legacy = legacy_instance_info(instance);
    if let Some(fault) = &fault {
        legacy.insert("message".into(), json!(fault.exception_message));
        legacy.insert("exception".into(), json!(fault.exception));
    }
    let payload = InstanceActionPayload {
        instance: instance_payload(instance, context),
        fault: fault.map(Versioned),
    };
    Notification::new(
        publisher,
        &event_type,
        instance.uuid.as_str(),
        wrap(payload),
    )
    .with_instance(&instance.uuid)
    .with_project(instance.project_id.as_deref())
    .with_legacy(
        format!(
            "compute.instance.{}.{}",
            action.legacy_name(),
            phase.as_str()
        ),
        Value::Object(legacy),
    )
}

/// The audit period Nova reports by default: the current month so far.
pub fn current_audit_period() -> AuditPeriodPayload {
    use chrono::Datelike;
    let now = chrono::Utc::now();
    let beginning = now
        .date_naive()
        .with_day(1)
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|start| start.and_utc())
        .unwrap_or(now);
    AuditPeriodPayload {
        audit_period_beginning: beginning.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        audit_period_ending: now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }
}

/// `instance.update` with an `InstanceUpdatePayload` (state or name
/// changes). Legacy: `compute.instance.update`.
pub fn instance_update(
    publisher: &Publisher,
    instance: &InstanceInfo,
    state_update: InstanceStateUpdatePayload,
    old_display_name: Option<String>,
    context: &RequestContext,
) -> Notification {
    let audit_period = current_audit_period();
    let mut legacy = legacy_instance_info(instance);
    for (key, value) in [
        ("old_state", json!(state_update.old_state)),
        ("old_task_state", json!(state_update.old_task_state)),
        ("new_task_state", json!(state_update.new_task_state)),
        (
            "audit_period_beginning",
            json!(audit_period.audit_period_beginning),
        ),
        (
            "audit_period_ending",
            json!(audit_period.audit_period_ending),
        ),
    ] {
        legacy.insert(key.into(), value);
    }
    if let Some(old) = &old_display_name {
        legacy.insert("old_display_name".into(), json!(old));
    }
    let payload = InstanceUpdatePayload {
        instance: instance_payload(instance, context),
        state_update: Versioned(state_update),
        audit_period: Versioned(audit_period),
        old_display_name,
        tags: instance.tags.clone(),
    };
    Notification::new(
        publisher,
        &EventType::new("instance", "update", None),
        instance.uuid.as_str(),
        payload,
    )
    .with_instance(&instance.uuid)
    .with_project(instance.project_id.as_deref())
    .with_legacy("compute.instance.update", Value::Object(legacy))
}

/// `instance.exists` (`InstanceExistsPayload` 2.1): an instance ran during
/// `audit_period` (the usage audit). Legacy: `compute.instance.exists`.
pub fn instance_exists(
    publisher: &Publisher,
    instance: &InstanceInfo,
    audit_period: AuditPeriodPayload,
    context: &RequestContext,
) -> Notification {
    let mut legacy = legacy_instance_info(instance);
    legacy.insert(
        "audit_period_beginning".into(),
        json!(audit_period.audit_period_beginning),
    );
    legacy.insert(
        "audit_period_ending".into(),
        json!(audit_period.audit_period_ending),
    );
    legacy.insert("bandwidth".into(), json!({}));
    let payload = InstanceExistsPayload {
        instance: instance_payload(instance, context),
        audit_period: Versioned(audit_period),
    };
    Notification::new(
        publisher,
        &EventType::new("instance", "exists", None),
        instance.uuid.as_str(),
        payload,
    )
    .with_instance(&instance.uuid)
    .with_project(instance.project_id.as_deref())
    .with_legacy("compute.instance.exists", Value::Object(legacy))
}

/// Aggregate actions (`aggregate.<action>.<phase>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum AggregateAction {
    Create,
    Delete,
    AddHost,
    RemoveHost,
    UpdateMetadata,
    UpdateProp,
}

impl AggregateAction {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            AggregateAction::Create => ("create", "create"),
            AggregateAction::Delete => ("delete", "delete"),
            AggregateAction::AddHost => ("add_host", "addhost"),
            AggregateAction::RemoveHost => ("remove_host", "removehost"),
            AggregateAction::UpdateMetadata => ("update_metadata", "updatemetadata"),
            AggregateAction::UpdateProp => ("update_prop", "updateprop"),
        }
    }
}

/// `aggregate.<action>.<phase>`; ordered by the aggregate uuid. Legacy:
/// `aggregate.<action without underscores>.<phase>`.
pub fn aggregate(
    publisher: &Publisher,
    aggregate: AggregatePayload,
    action: AggregateAction,
    phase: Phase,
) -> Notification {
    let (versioned, legacy) = action.names();
    let legacy_payload = json!({
        "aggregate_id": aggregate.id,
        "name": aggregate.name,
        "hosts": aggregate.hosts,
        "meta_data": aggregate.metadata,
    });
    let key = format!("aggregate:{}", aggregate.uuid);
    Notification::new(
        publisher,
        &EventType::new("aggregate", versioned, Some(phase)),
        key,
        aggregate,
    )
    .with_legacy(
        format!("aggregate.{legacy}.{}", phase.as_str()),
        legacy_payload,
    )
}

/// `service.create`, `service.update` or `service.delete` (versioned only,
/// as in Nova); ordered by the service uuid.
pub fn service(publisher: &Publisher, service: ServiceStatusPayload, action: &str) -> Notification {
    let key = format!("service:{}", service.uuid);
    Notification::new(
        publisher,
        &EventType::new("service", action, None),
        key,
        service,
    )
}

/// `flavor.create`, `flavor.update` or `flavor.delete` (versioned only, as
/// in Nova); ordered by the flavor id.
pub fn flavor(publisher: &Publisher, flavor: FlavorPayload, action: &str) -> Notification {
    let key = format!(
        "flavor:{}",
        flavor.flavorid.as_deref().unwrap_or(&flavor.name)
    );
    Notification::new(
        publisher,
        &EventType::new("flavor", action, None),
        key,
        flavor,
    )
}

/// `keypair.<create|delete|import>.<phase>`; ordered by user and name.
/// Legacy: the same name, payload `{tenant_id, user_id, key_name}`.
pub fn keypair(
    publisher: &Publisher,
    keypair: KeypairPayload,
    action: &str,
    phase: Phase,
    project_id: Option<&str>,
) -> Notification {
    let key = format!(
        "keypair:{}:{}",
        keypair.user_id.as_deref().unwrap_or(""),
        keypair.name
    );
    let legacy = json!({
        "tenant_id": project_id,
        "user_id": keypair.user_id,
        "key_name": keypair.name,
    });
    let event_type = EventType::new("keypair", action, Some(phase));
    let legacy_type = event_type.to_string();
    Notification::new(publisher, &event_type, key, keypair)
        .with_project(project_id)
        .with_legacy(legacy_type, legacy)
}

/// `server_group.<create|delete|add_member>`; ordered by the group uuid.
/// Legacy: `servergroup.<action>`.
pub fn server_group(
    publisher: &Publisher,
    group: ServerGroupPayload,
    action: &str,
) -> Notification {
    let key = format!("server_group:{}", group.uuid);
    let legacy = json!({
        "server_group_id": group.uuid,
        "name": group.name,
        "policies": group.policies,
        "members": group.members,
    });
    let legacy_type = format!("servergroup.{}", action.replace('_', ""));
    let project = group.project_id.clone();
    Notification::new(
        publisher,
        &EventType::new("server_group", action, None),
        key,
        group,
    )
    .with_project(project.as_deref())
    .with_legacy(legacy_type, legacy)
}

/// `scheduler.select_destinations.<start|end>` with a `RequestSpecPayload`;
/// ordered with the instance's own events. Legacy: the same name, payload
/// `{request_spec: …}`.
pub fn select_destinations(
    publisher: &Publisher,
    spec: RequestSpecPayload,
    phase: Phase,
) -> Notification {
    let event_type = EventType::new("scheduler", "select_destinations", Some(phase));
    let legacy_type = event_type.to_string();
    let legacy = json!({ "request_spec": spec });
    let instance = spec.instance_uuid.clone();
    let project = spec.project_id.clone();
    Notification::new(publisher, &event_type, instance.as_str(), spec)
        .with_instance(&instance)
        .with_project(project.as_deref())
        .with_legacy(legacy_type, legacy)
}

/// `compute.exception` (priority ERROR) with an `ExceptionPayload`,
/// ordered by `ordering_key` (the object the failed operation was about).
pub fn compute_exception(
    publisher: &Publisher,
    exception: ExceptionPayload,
    ordering_key: &str,
) -> Notification {
    Notification::new(
        publisher,
        &EventType::new("compute", "exception", None),
        ordering_key,
        exception,
    )
}

/// An [`ExceptionPayload`] from an error value: `exception` names its kind
/// (Nova: the exception class, e.g. `NoValidHost`), its display is the
/// message, its source chain the traceback.
pub fn exception_payload(
    module_name: &str,
    function_name: &str,
    exception: &str,
    error: &(dyn std::error::Error + 'static),
) -> ExceptionPayload {
    let mut chain = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push(format!("caused by: {cause}"));
        source = cause.source();
    }
    ExceptionPayload {
        module_name: module_name.to_string(),
        function_name: function_name.to_string(),
        exception: exception.to_string(),
        exception_message: error.to_string(),
        traceback: chain.join("\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Priority;

    fn instance() -> InstanceInfo {
        InstanceInfo {
            uuid: "178b0921-8f85-4257-88b6-2e743b5a975c".into(),
            display_name: Some("some-server".into()),
            user_id: Some("fake".into()),
            project_id: Some("proj".into()),
            host: Some("compute".into()),
            node: Some("fake-mini".into()),
            availability_zone: Some("nova".into()),
            flavor: FlavorPayload {
                flavorid: Some("1".into()),
                name: "m1.tiny".into(),
                memory_mb: Some(512),
                vcpus: Some(1),
                root_gb: Some(1),
                ephemeral_gb: Some(0),
                is_public: true,
                ..FlavorPayload::default()
            },
            vm_state: "stopped".into(),
            power_state: Some(4),
            created_at: Some("2012-10-29T13:42:11.123456Z".into()),
            ..InstanceInfo::default()
        }
    }

    #[test]
    fn instance_action_matches_nova_sample_shape() {
        let context = RequestContext {
            request_id: Some("req-1".into()),
            user_id: Some("fake".into()),
            project_id: Some("proj".into()),
        };
        let notification = instance_action(
            &Publisher::compute("compute"),
            &instance(),
            InstanceAction::PowerOff,
            Phase::End,
            &context,
            None,
        );
        let envelope = &notification.envelope;
        assert_eq!(envelope.event_type, "instance.power_off.end");
        assert_eq!(envelope.priority, Priority::Info);
        assert_eq!(envelope.publisher_id, "nova-compute:compute");
        let data = &envelope.payload["nova_object.data"];
        assert_eq!(envelope.payload["nova_object.version"], "1.9");
        assert_eq!(data["state"], "stopped");
        assert_eq!(data["power_state"], "shutdown");
        assert_eq!(data["tenant_id"], "proj");
        assert_eq!(data["created_at"], "2012-10-29T13:42:11Z");
        assert_eq!(data["request_id"], "req-1");
        assert_eq!(data["action_initiator_project"], "proj");
        assert!(data["fault"].is_null());
        assert_eq!(data["flavor"]["nova_object.data"]["memory_mb"], 512);
        let parsed: Versioned<InstanceActionPayload> =
            serde_json::from_value(envelope.payload.clone()).expect("round trip");
        assert_eq!(parsed.0.instance.uuid, notification.ordering_key);
        let legacy = notification.legacy.expect("legacy form");
        assert_eq!(legacy.event_type, "compute.instance.power_off.end");
        assert_eq!(legacy.payload["instance_id"], notification.ordering_key);
        assert_eq!(legacy.payload["disk_gb"], 1);
        assert_ne!(legacy.message_id, envelope.message_id);
    }

    #[test]
    fn error_phase_carries_fault_and_error_priority() {
        let fault = ExceptionPayload {
            exception: "NoValidHost".into(),
            exception_message: "No valid host was found.".into(),
            ..ExceptionPayload::default()
        };
        let notification = instance_action(
            &Publisher::conductor("ctl"),
            &instance(),
            InstanceAction::Create,
            Phase::Error,
            &RequestContext::default(),
            Some(fault),
        );
        assert_eq!(notification.envelope.priority, Priority::Error);
        let data = &notification.envelope.payload["nova_object.data"];
        assert_eq!(data["fault"]["nova_object.name"], "ExceptionPayload");
        assert_eq!(
            data["fault"]["nova_object.data"]["exception"],
            "NoValidHost"
        );
        assert!(data["request_id"].is_null(), "periodic: no request id");
        let exception = compute_exception(
            &Publisher::api("ctl"),
            ExceptionPayload::default(),
            "aggregate:x",
        );
        assert_eq!(exception.envelope.event_type, "compute.exception");
        assert_eq!(exception.envelope.priority, Priority::Error);
        assert!(exception.legacy.is_none());
    }

    #[test]
    fn update_and_other_objects() {
        let update = instance_update(
            &Publisher::api("ctl"),
            &instance(),
            InstanceStateUpdatePayload {
                old_state: Some("active".into()),
                state: Some("stopped".into()),
                ..InstanceStateUpdatePayload::default()
            },
            None,
            &RequestContext::default(),
        );
        assert_eq!(update.envelope.event_type, "instance.update");
        assert_eq!(update.envelope.payload["nova_object.version"], "2.1");
        assert_eq!(
            update.envelope.payload["nova_object.data"]["state_update"]["nova_object.data"]["old_state"],
            "active"
        );
        let aggregate = aggregate(
            &Publisher::api("ctl"),
            AggregatePayload {
                uuid: "a".into(),
                name: "agg".into(),
                ..AggregatePayload::default()
            },
            AggregateAction::AddHost,
            Phase::Start,
        );
        assert_eq!(aggregate.envelope.event_type, "aggregate.add_host.start");
        assert_eq!(aggregate.ordering_key, "aggregate:a");
        assert_eq!(
            aggregate.legacy.map(|legacy| legacy.event_type).as_deref(),
            Some("aggregate.addhost.start")
        );
        let select = select_destinations(
            &Publisher::scheduler("ctl"),
            RequestSpecPayload {
                instance_uuid: "i".into(),
                num_instances: 1,
                ..RequestSpecPayload::default()
            },
            Phase::Start,
        );
        assert_eq!(
            select.envelope.event_type,
            "scheduler.select_destinations.start"
        );
        assert_eq!(select.ordering_key, "i");
        assert_eq!(
            select.envelope.payload["nova_object.name"],
            "RequestSpecPayload"
        );
    }
}
