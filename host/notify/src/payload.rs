//! Versioned payloads: Nova's notification objects as typed serde structs.
//!
//! On the wire a payload is a `nova_object`:
//! `{"nova_object.name", "nova_object.namespace": "nova",
//! "nova_object.version", "nova_object.data"}`, and nested payloads (the
//! flavor of an instance, a fault) are `nova_object`s too.
//!
//! **Versions are part of the contract.** Each payload's version is the
//! [`NovaObject::VERSION`] constant, equal to the version of the same object
//! in Nova (nova/notifications/objects/, August 2026), and its fields are
//! Nova's fields of that version, with the same names and JSON types (fields
//! novum has no data for are sent as Nova sends an unset nullable field:
//! `null`, or an empty list). A version only grows: a new field bumps the
//! minor version, removing or retyping one bumps the major.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A notification payload object: its Nova name and version.
pub trait NovaObject: Serialize {
    /// `nova_object.name`.
    const NAME: &'static str;
    /// `nova_object.version`.
    const VERSION: &'static str;
}

/// `nova_object.namespace` of every payload.
pub const NAMESPACE: &str = "nova";

/// A payload wrapped as a `nova_object` (serializes to the wrapper;
/// deserializes from it, keeping `nova_object.data`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Versioned<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Versioned<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire<T> {
            #[serde(rename = "nova_object.data")]
            data: T,
        }
        Wire::deserialize(deserializer).map(|wire| Versioned(wire.data))
    }
}

impl<T: NovaObject> Serialize for Versioned<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("nova_object.name", T::NAME)?;
        map.serialize_entry("nova_object.namespace", NAMESPACE)?;
        map.serialize_entry("nova_object.version", T::VERSION)?;
        map.serialize_entry("nova_object.data", &self.0)?;
        map.end()
    }
}

impl<T: NovaObject> Versioned<T> {
    /// The payload as JSON.
    pub fn to_value(&self) -> serde_json::Value {
        // Serializing plain structs of strings, numbers, maps and lists
        // cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

macro_rules! nova_object {
    ($type:ty, $name:literal, $version:literal) => {
        impl NovaObject for $type {
            const NAME: &'static str = $name;
            const VERSION: &'static str = $version;
        }
    };
}

/// A flavor (`FlavorPayload` 1.4). Also the input of the flavor builders.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FlavorPayload {
    /// The flavor id of the API.
    pub flavorid: Option<String>,
    /// Name.
    pub name: String,
    /// RAM in MiB.
    pub memory_mb: Option<i64>,
    /// vCPUs.
    pub vcpus: Option<i64>,
    /// Root disk in GiB.
    pub root_gb: Option<i64>,
    /// Ephemeral disk in GiB.
    pub ephemeral_gb: Option<i64>,
    /// Swap in MiB.
    pub swap: i64,
    /// Network rxtx factor.
    pub rxtx_factor: Option<f64>,
    /// vCPU weight.
    pub vcpu_weight: Option<i64>,
    /// Disabled.
    pub disabled: bool,
    /// Public.
    pub is_public: bool,
    /// Extra specs.
    pub extra_specs: Option<BTreeMap<String, String>>,
    /// Projects with access (private flavors), when known.
    pub projects: Option<Vec<String>>,
    /// Description.
    pub description: Option<String>,
}
nova_object!(FlavorPayload, "FlavorPayload", "1.4");

/// An exception (`ExceptionPayload` 1.1): an instance fault or a
/// `compute.exception`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExceptionPayload {
    /// Where it was raised (novum: the Rust module path).
    pub module_name: String,
    /// The function that raised it.
    pub function_name: String,
    /// The exception (error kind) name.
    pub exception: String,
    /// Its message.
    pub exception_message: String,
    /// A traceback or error chain.
    pub traceback: String,
}
nova_object!(ExceptionPayload, "ExceptionPayload", "1.1");

/// An IP address of an instance (`IpPayload` 1.0).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IpPayload {
    /// Network label.
    pub label: String,
    /// MAC address.
    pub mac: String,
    /// Free-form metadata.
    pub meta: BTreeMap<String, String>,
    /// Port id.
    pub port_uuid: Option<String>,
    /// 4 or 6.
    pub version: i64,
    /// The address.
    pub address: String,
    /// Device name.
    pub device_name: Option<String>,
}
nova_object!(IpPayload, "IpPayload", "1.0");

/// The fields every instance payload has (Nova's `InstancePayload` 1.9).
/// Flattened into [`InstanceActionPayload`] and [`InstanceUpdatePayload`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstancePayload {
    /// Instance uuid.
    pub uuid: String,
    /// Owner user.
    pub user_id: Option<String>,
    /// Owner project.
    pub tenant_id: Option<String>,
    /// Reservation id of the multi-create request.
    pub reservation_id: Option<String>,
    /// Name.
    pub display_name: Option<String>,
    /// Description.
    pub display_description: Option<String>,
    /// Guest host name.
    pub host_name: Option<String>,
    /// Compute host.
    pub host: Option<String>,
    /// Hypervisor node.
    pub node: Option<String>,
    /// Guest OS type.
    pub os_type: Option<String>,
    /// Architecture.
    pub architecture: Option<String>,
    /// Availability zone.
    pub availability_zone: Option<String>,
    /// Flavor.
    pub flavor: Versioned<FlavorPayload>,
    /// Image id.
    pub image_uuid: Option<String>,
    /// Key pair name.
    pub key_name: Option<String>,
    /// Kernel image id.
    pub kernel_id: Option<String>,
    /// Ramdisk image id.
    pub ramdisk_id: Option<String>,
    /// `2012-10-29T13:42:11Z`.
    pub created_at: Option<String>,
    /// When it first ran.
    pub launched_at: Option<String>,
    /// When it was terminated.
    pub terminated_at: Option<String>,
    /// When it was deleted.
    pub deleted_at: Option<String>,
    /// Last update.
    pub updated_at: Option<String>,
    /// vm_state, lower case (`active`, `building`, ...).
    pub state: Option<String>,
    /// Power state name (`pending`, `running`, `paused`, `shutdown`,
    /// `crashed`, `suspended`).
    pub power_state: Option<String>,
    /// Task state, lower case, or null.
    pub task_state: Option<String>,
    /// Progress percentage.
    pub progress: Option<i64>,
    /// Addresses.
    pub ip_addresses: Vec<Versioned<IpPayload>>,
    /// Block devices (novum has no volumes: empty).
    pub block_devices: Vec<serde_json::Value>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Locked.
    pub locked: bool,
    /// `MANUAL` or `AUTO`.
    pub auto_disk_config: String,
    /// The request id of the API request behind the event.
    pub request_id: Option<String>,
    /// The user who asked.
    pub action_initiator_user: Option<String>,
    /// The project of the user who asked.
    pub action_initiator_project: Option<String>,
    /// Why the instance is locked.
    pub locked_reason: Option<String>,
    /// Attached shares (novum has none: empty).
    pub shares: Vec<serde_json::Value>,
}

/// An instance action (`InstanceActionPayload` 1.9): `instance.<action>.<phase>`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceActionPayload {
    /// The instance.
    #[serde(flatten)]
    pub instance: InstancePayload,
    /// The fault, on `.error`.
    pub fault: Option<Versioned<ExceptionPayload>>,
}
nova_object!(InstanceActionPayload, "InstanceActionPayload", "1.9");

/// A resize's preparation (`InstanceActionResizePrepPayload` 1.2):
/// `instance.resize_prep.<phase>`, with the flavor the resize asks for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceActionResizePrepPayload {
    /// The instance (and fault).
    #[serde(flatten)]
    pub action: InstanceActionPayload,
    /// The flavor asked for.
    pub new_flavor: Option<Versioned<FlavorPayload>>,
}
nova_object!(
    InstanceActionResizePrepPayload,
    "InstanceActionResizePrepPayload",
    "1.2"
);

/// A state change (`InstanceStateUpdatePayload` 1.0).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceStateUpdatePayload {
    /// vm_state before.
    pub old_state: Option<String>,
    /// vm_state after.
    pub state: Option<String>,
    /// task_state before.
    pub old_task_state: Option<String>,
    /// task_state after.
    pub new_task_state: Option<String>,
}
nova_object!(
    InstanceStateUpdatePayload,
    "InstanceStateUpdatePayload",
    "1.0"
);

/// The audit period of `instance.update`/`instance.exists`
/// (`AuditPeriodPayload` 1.0).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditPeriodPayload {
    /// Start.
    pub audit_period_beginning: String,
    /// End.
    pub audit_period_ending: String,
}
nova_object!(AuditPeriodPayload, "AuditPeriodPayload", "1.0");

/// `instance.exists` (`InstanceExistsPayload` 2.1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceExistsPayload {
    /// The instance.
    #[serde(flatten)]
    pub instance: InstancePayload,
    /// The period it ran in.
    pub audit_period: Versioned<AuditPeriodPayload>,
}
nova_object!(InstanceExistsPayload, "InstanceExistsPayload", "2.1");

/// `instance.update` (`InstanceUpdatePayload` 2.1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceUpdatePayload {
    /// The instance.
    #[serde(flatten)]
    pub instance: InstancePayload,
    /// What changed.
    pub state_update: Versioned<InstanceStateUpdatePayload>,
    /// The audit period.
    pub audit_period: Versioned<AuditPeriodPayload>,
    /// The name before a rename.
    pub old_display_name: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
}
nova_object!(InstanceUpdatePayload, "InstanceUpdatePayload", "2.1");

/// A host aggregate (`AggregatePayload` 1.1). Also the input of the builder.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AggregatePayload {
    /// Numeric id (null on `aggregate.create.start`).
    pub id: Option<i64>,
    /// Uuid.
    pub uuid: String,
    /// Name.
    pub name: String,
    /// Member hosts.
    pub hosts: Option<Vec<String>>,
    /// Metadata.
    pub metadata: Option<BTreeMap<String, String>>,
}
nova_object!(AggregatePayload, "AggregatePayload", "1.1");

/// A service (`ServiceStatusPayload` 1.1). Also the input of the builder.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatusPayload {
    /// Host.
    pub host: Option<String>,
    /// `nova-compute`, ...
    pub binary: Option<String>,
    /// `compute`, ...
    pub topic: Option<String>,
    /// Heartbeats received.
    pub report_count: i64,
    /// Disabled.
    pub disabled: bool,
    /// Why.
    pub disabled_reason: Option<String>,
    /// Availability zone.
    pub availability_zone: Option<String>,
    /// Last heartbeat, `2012-10-29T13:42:11Z`.
    pub last_seen_up: Option<String>,
    /// Forced down.
    pub forced_down: bool,
    /// Service version.
    pub version: i64,
    /// Uuid.
    pub uuid: String,
}
nova_object!(ServiceStatusPayload, "ServiceStatusPayload", "1.1");

/// A key pair (`KeypairPayload` 1.0). Also the input of the builder.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeypairPayload {
    /// Owner.
    pub user_id: Option<String>,
    /// Name.
    pub name: String,
    /// Fingerprint.
    pub fingerprint: Option<String>,
    /// Public key.
    pub public_key: Option<String>,
    /// `ssh` or `x509`.
    #[serde(rename = "type")]
    pub key_type: String,
}
nova_object!(KeypairPayload, "KeypairPayload", "1.0");

/// A server group (`ServerGroupPayload` 1.1). Also the input of the builder.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerGroupPayload {
    /// Uuid.
    pub uuid: String,
    /// Name.
    pub name: Option<String>,
    /// Owner user.
    pub user_id: Option<String>,
    /// Owner project.
    pub project_id: Option<String>,
    /// Deprecated list form of `policy`.
    pub policies: Option<Vec<String>>,
    /// Member instance uuids.
    pub members: Option<Vec<String>>,
    /// Hosts of the members.
    pub hosts: Option<Vec<String>>,
    /// `affinity`, `anti-affinity`, `soft-affinity`, `soft-anti-affinity`.
    pub policy: Option<String>,
    /// Rules (`max_server_per_host`).
    pub rules: BTreeMap<String, String>,
}
nova_object!(ServerGroupPayload, "ServerGroupPayload", "1.1");

/// A scheduling request (`RequestSpecPayload` 1.1), for
/// `scheduler.select_destinations.start/end`. Also the input of the builder.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestSpecPayload {
    /// The (first) instance.
    pub instance_uuid: String,
    /// Project.
    pub project_id: Option<String>,
    /// User.
    pub user_id: Option<String>,
    /// Requested availability zone.
    pub availability_zone: Option<String>,
    /// Flavor.
    pub flavor: Option<Versioned<FlavorPayload>>,
    /// First forced host.
    pub force_hosts: Option<String>,
    /// First forced node.
    pub force_nodes: Option<String>,
    /// Hosts to avoid.
    pub ignore_hosts: Option<Vec<String>>,
    /// Image metadata (`ImageMetaPayload`), when sent.
    pub image_meta: Option<serde_json::Value>,
    /// The server group.
    pub instance_group: Option<Versioned<ServerGroupPayload>>,
    /// The image (`ImageMetaPayload`), when sent.
    pub image: Option<serde_json::Value>,
    /// NUMA topology (novum: none).
    pub numa_topology: Option<serde_json::Value>,
    /// PCI requests (novum: none).
    pub pci_requests: Option<serde_json::Value>,
    /// Instances requested.
    pub num_instances: i64,
    /// Requested destination (`DestinationPayload`), when any.
    pub requested_destination: Option<serde_json::Value>,
    /// Retries (`SchedulerRetriesPayload`), when any.
    pub retry: Option<serde_json::Value>,
    /// Scheduler hints.
    pub scheduler_hints: Option<BTreeMap<String, Vec<String>>>,
    /// Security group names.
    pub security_groups: Vec<String>,
}
nova_object!(RequestSpecPayload, "RequestSpecPayload", "1.1");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_objects_are_nova_objects() {
        let payload = InstanceActionPayload {
            instance: InstancePayload {
                uuid: "u".into(),
                flavor: Versioned(FlavorPayload {
                    name: "m1.small".into(),
                    ..FlavorPayload::default()
                }),
                auto_disk_config: "MANUAL".into(),
                ..InstancePayload::default()
            },
            fault: None,
        };
        let value = Versioned(payload).to_value();
        assert_eq!(value["nova_object.name"], "InstanceActionPayload");
        assert_eq!(value["nova_object.namespace"], "nova");
        assert_eq!(value["nova_object.version"], "1.9");
        let data = &value["nova_object.data"];
        assert_eq!(data["uuid"], "u");
        assert!(data["fault"].is_null());
        assert_eq!(data["flavor"]["nova_object.name"], "FlavorPayload");
        assert_eq!(data["flavor"]["nova_object.version"], "1.4");
        assert_eq!(data["flavor"]["nova_object.data"]["name"], "m1.small");
        let keypair = Versioned(KeypairPayload {
            key_type: "ssh".into(),
            ..KeypairPayload::default()
        })
        .to_value();
        assert_eq!(keypair["nova_object.data"]["type"], "ssh");
    }
}
