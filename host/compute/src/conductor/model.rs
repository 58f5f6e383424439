//! Rows the conductor and the API share: instances and the flavor snapshot
//! an instance keeps.

use std::collections::BTreeMap;

use novum_plugin_sdk::{Flavor, KeyValue};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use novum_db::DbError;

/// The flavor as it was when the instance was created (Nova keeps a copy so
/// that later flavor changes do not change running instances).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlavorSnapshot {
    /// Flavor id.
    pub id: String,
    /// Name.
    pub name: String,
    /// vCPUs.
    pub vcpus: i64,
    /// Memory, MiB.
    pub memory_mb: i64,
    /// Root disk, GiB.
    pub root_gb: i64,
    /// Ephemeral disk, GiB.
    pub ephemeral_gb: i64,
    /// Swap, MiB.
    pub swap: i64,
    /// Extra specs.
    #[serde(default)]
    pub extra_specs: BTreeMap<String, String>,
}

impl FlavorSnapshot {
    /// Disk the instance takes on its host, GiB (root + ephemeral + swap rounded up).
    pub fn disk_gb(&self) -> i64 {
        self.root_gb + self.ephemeral_gb + (self.swap + 1023) / 1024
    }

    /// The plugin SDK's flavor of this snapshot (what the quota checks and
    /// their policies see); a negative size counts as 0.
    pub fn sdk_flavor(&self) -> Flavor {
        Flavor {
            id: self.id.clone(),
            name: self.name.clone(),
            vcpus: u32::try_from(self.vcpus).unwrap_or(u32::MAX),
            memory_mb: u64::try_from(self.memory_mb).unwrap_or(0),
            root_gb: u64::try_from(self.root_gb).unwrap_or(0),
            ephemeral_gb: u64::try_from(self.ephemeral_gb).unwrap_or(0),
            swap_mb: u64::try_from(self.swap).unwrap_or(0),
            extra_specs: self
                .extra_specs
                .iter()
                .map(|(key, value)| KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
        }
    }
}

/// An instance row (read as a row, or as a JSON object of its
/// [`Instance::COLUMNS`]).
#[derive(Clone, Debug, PartialEq, sqlx::FromRow, Deserialize)]
pub struct Instance {
    /// Uuid.
    pub uuid: String,
    /// Name.
    pub display_name: String,
    /// Description.
    pub description: Option<String>,
    /// Owner project.
    pub project_id: String,
    /// Creating user.
    pub user_id: String,
    /// Flavor id.
    pub flavor_id: String,
    /// Flavor snapshot (JSON).
    pub flavor: String,
    /// Image id ('' when booted from volume).
    pub image_ref: String,
    /// Image properties (JSON object).
    pub image_properties: String,
    /// vm_state.
    pub vm_state: String,
    /// task_state.
    pub task_state: Option<String>,
    /// power_state (Nova's number).
    pub power_state: i64,
    /// Compute host.
    pub host: Option<String>,
    /// Compute node (hypervisor hostname).
    pub node: Option<String>,
    /// Availability zone it runs in.
    pub availability_zone: Option<String>,
    /// The zone the user asked for.
    pub requested_availability_zone: Option<String>,
    /// Metadata (JSON object).
    pub metadata: String,
    /// Key pair name.
    pub key_name: Option<String>,
    /// Key pair public key.
    pub key_data: Option<String>,
    /// User data (base64).
    pub user_data: Option<String>,
    /// Scheduler hints (JSON object of string lists).
    pub scheduler_hints: String,
    /// Server group uuid.
    pub server_group: Option<String>,
    /// Fault (JSON: code, message, details, created).
    pub fault: Option<String>,
    /// Reservation id (`r-…`), shared by a multi-create.
    pub reservation_id: String,
    /// Index within a multi-create.
    pub launch_index: i64,
    /// Hostname.
    pub hostname: String,
    /// Config drive.
    pub config_drive: String,
    /// Locked (0/1).
    pub locked: i64,
    /// When it first became ACTIVE.
    pub launched_at: Option<String>,
    /// When it was deleted on its host.
    pub terminated_at: Option<String>,
    /// Created.
    pub created_at: String,
    /// Updated.
    pub updated_at: String,
    /// Deleted at.
    pub deleted_at: Option<String>,
    /// Deleted (0/1).
    pub deleted: i64,
    /// Nova's `accessIPv4` ('' when unset).
    pub access_ip_v4: String,
    /// Nova's `accessIPv6`, canonical ('' when unset).
    pub access_ip_v6: String,
    /// Who locked it: 'owner' or 'admin' (None when unlocked).
    pub locked_by: Option<String>,
}

impl Instance {
    /// The columns of an instance row that [`Instance`] holds, in its
    /// order.
    pub const COLUMNS: &[&str] = &[
        "uuid",
        "display_name",
        "description",
        "project_id",
        "user_id",
        "flavor_id",
        "flavor",
        "image_ref",
        "image_properties",
        "vm_state",
        "task_state",
        "power_state",
        "host",
        "node",
        "availability_zone",
        "requested_availability_zone",
        "metadata",
        "key_name",
        "key_data",
        "user_data",
        "scheduler_hints",
        "server_group",
        "fault",
        "reservation_id",
        "launch_index",
        "hostname",
        "config_drive",
        "locked",
        "launched_at",
        "terminated_at",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted",
        "access_ip_v4",
        "access_ip_v6",
        "locked_by",
    ];

    /// A SQL expression of an `instances` row as the JSON object
    /// [`Instance`] deserializes from (SQLite's `json_object`).
    pub fn sqlite_json_object() -> String {
        let pairs: Vec<String> = Self::COLUMNS
            .iter()
            .map(|column| format!("'{column}', {column}"))
            .collect();
        format!("json_object({})", pairs.join(", "))
    }

    /// The flavor snapshot.
    pub fn flavor(&self) -> Result<FlavorSnapshot, DbError> {
        serde_json::from_str(&self.flavor).map_err(|error| {
            DbError::Query(sqlx::Error::Decode(
                format!("instance {} flavor: {error}", self.uuid).into(),
            ))
        })
    }

    /// A JSON column as a string map (empty when malformed).
    pub fn string_map(text: &str) -> BTreeMap<String, String> {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// Metadata.
    pub fn metadata_map(&self) -> BTreeMap<String, String> {
        Self::string_map(&self.metadata)
    }

    /// Image properties.
    pub fn image_property_map(&self) -> BTreeMap<String, String> {
        Self::string_map(&self.image_properties)
    }

    /// Scheduler hints.
    pub fn hints(&self) -> BTreeMap<String, Vec<String>> {
        serde_json::from_str(&self.scheduler_hints).unwrap_or_default()
    }

    /// Fetches instance `uuid` (deleted ones too).
    pub async fn fetch<'c, E>(executor: E, uuid: &str) -> Result<Option<Instance>, DbError>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        Ok(
            sqlx::query_as::<_, Instance>("SELECT * FROM instances WHERE uuid = $1")
                .bind(uuid)
                .fetch_optional(executor)
                .await?,
        )
    }
}

/// Reads column `name` of `row` as an i64 (booleans, counts).
pub fn int(row: &AnyRow, name: &str) -> Result<i64, DbError> {
    use sqlx::Row;
    Ok(row.try_get::<i64, _>(name)?)
}
