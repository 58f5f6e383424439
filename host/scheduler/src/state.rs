//! The scheduler's view of the cloud: host rows, aggregates, and the request.

use std::collections::HashMap;
use std::sync::Arc;

use novum_plugin_sdk::Request;
use serde::{Deserialize, Serialize};

use super::table::ColumnGroups;

/// An instance running on a host, as filters and weighers see it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceOnHost {
    /// Instance uuid.
    pub uuid: String,
    /// The server group it belongs to, if any.
    pub server_group: Option<String>,
    /// The properties of the image it booted from.
    pub image_properties: Vec<(String, String)>,
}

/// One compute host (Nova's HostState).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    /// Host name (also the node name: one node per host).
    pub name: String,
    /// Compute node uuid.
    pub uuid: String,
    /// Availability zone (from aggregate metadata, else the default zone).
    pub availability_zone: String,
    /// Ids of the aggregates the host is in.
    pub aggregates: Vec<u32>,
    /// Physical RAM, MB.
    pub memory_total_mb: i64,
    /// RAM allocated to instances, MB.
    pub memory_used_mb: i64,
    /// Local disk, MB.
    pub disk_total_mb: i64,
    /// Disk allocated to instances, MB.
    pub disk_used_mb: i64,
    /// Physical vCPUs.
    pub vcpus_total: u32,
    /// vCPUs allocated to instances.
    pub vcpus_used: u32,
    /// CPU allocation ratio.
    pub cpu_allocation_ratio: f64,
    /// RAM allocation ratio.
    pub ram_allocation_ratio: f64,
    /// Disk allocation ratio.
    pub disk_allocation_ratio: f64,
    /// Instances on the host.
    pub num_instances: u32,
    /// I/O-heavy tasks in progress.
    pub num_io_ops: u32,
    /// Consecutive failed builds.
    pub failed_builds: u32,
    /// Hypervisor type, e.g. `QEMU`.
    pub hypervisor_type: String,
    /// Hypervisor version, Nova-encoded.
    pub hypervisor_version: u64,
    /// CPU architecture.
    pub cpu_arch: String,
    /// CPU feature flags.
    pub cpu_features: Vec<String>,
    /// (architecture, hypervisor type, VM mode) triples.
    pub supported_instances: Vec<(String, String, String)>,
    /// Reported metrics.
    pub metrics: Vec<(String, f64)>,
    /// Compute service up (recent heartbeat, not forced down).
    pub service_up: bool,
    /// Compute service disabled by an operator.
    pub service_disabled: bool,
    /// Host IP address.
    pub host_ip: String,
    /// Instances on the host.
    pub instances: Vec<InstanceOnHost>,
}

impl Default for HostState {
    fn default() -> Self {
        Self {
            name: String::new(),
            uuid: String::new(),
            availability_zone: DEFAULT_AVAILABILITY_ZONE.to_string(),
            aggregates: Vec::new(),
            memory_total_mb: 0,
            memory_used_mb: 0,
            disk_total_mb: 0,
            disk_used_mb: 0,
            vcpus_total: 0,
            vcpus_used: 0,
            cpu_allocation_ratio: 4.0,
            ram_allocation_ratio: 1.0,
            disk_allocation_ratio: 1.0,
            num_instances: 0,
            num_io_ops: 0,
            failed_builds: 0,
            hypervisor_type: "QEMU".to_string(),
            hypervisor_version: 0,
            cpu_arch: "x86_64".to_string(),
            cpu_features: Vec::new(),
            supported_instances: Vec::new(),
            metrics: Vec::new(),
            service_up: true,
            service_disabled: false,
            host_ip: String::new(),
            instances: Vec::new(),
        }
    }
}

/// Why `wanted` more of `resource` does not fit where `used` of `total`
/// (times the allocation `ratio`) is taken, or `None` when it fits. The one
/// capacity rule of the scheduler's check and of claims.
pub fn resource_shortage(
    resource: &str,
    used: i64,
    wanted: i64,
    total: i64,
    ratio: f64,
) -> Option<String> {
    ((used + wanted) as f64 > total as f64 * ratio).then(|| {
        format!(
            "insufficient {resource}: requested {wanted}, used {used} of {total} (allocation ratio {ratio})"
        )
    })
}

/// Nova's default availability zone.
pub const DEFAULT_AVAILABILITY_ZONE: &str = "nova";

impl HostState {
    /// Free RAM: total × ratio − used.
    pub fn memory_free_mb(&self) -> i64 {
        novum_plugin_sdk::free_mb(
            self.memory_total_mb,
            self.ram_allocation_ratio,
            self.memory_used_mb,
        )
    }

    /// Free disk: total × ratio − used.
    pub fn disk_free_mb(&self) -> i64 {
        novum_plugin_sdk::free_mb(
            self.disk_total_mb,
            self.disk_allocation_ratio,
            self.disk_used_mb,
        )
    }

    /// Why the host cannot hold `flavor` (the first resource short, as
    /// Placement names it), or `None` when it fits.
    pub fn capacity_shortage(&self, flavor: &novum_plugin_sdk::Flavor) -> Option<String> {
        let disk_gb = (flavor.root_gb + flavor.ephemeral_gb + flavor.swap_mb.div_ceil(1024)) as i64;
        resource_shortage(
            "VCPU",
            i64::from(self.vcpus_used),
            i64::from(flavor.vcpus),
            i64::from(self.vcpus_total),
            self.cpu_allocation_ratio,
        )
        .or_else(|| {
            resource_shortage(
                "MEMORY_MB",
                self.memory_used_mb,
                flavor.memory_mb as i64,
                self.memory_total_mb,
                self.ram_allocation_ratio,
            )
        })
        .or_else(|| {
            resource_shortage(
                "DISK_GB",
                self.disk_used_mb / 1024,
                disk_gb,
                self.disk_total_mb / 1024,
                self.disk_allocation_ratio,
            )
        })
    }

    /// Takes a flavor's resources, as Nova's `consume_from_request` does
    /// between the instances of one multi-create request.
    pub fn consume(&mut self, request: &Request, instance_uuid: Option<&str>) {
        let flavor = &request.flavor;
        self.memory_used_mb += flavor.memory_mb as i64;
        self.disk_used_mb +=
            ((flavor.root_gb + flavor.ephemeral_gb) * 1024 + flavor.swap_mb) as i64;
        self.vcpus_used += flavor.vcpus;
        self.num_instances += 1;
        if let Some(uuid) = instance_uuid {
            self.instances.push(InstanceOnHost {
                uuid: uuid.to_string(),
                server_group: request.group.as_ref().map(|group| group.id.clone()),
                image_properties: request
                    .image
                    .properties
                    .iter()
                    .map(|pair| (pair.key.clone(), pair.value.clone()))
                    .collect(),
            });
        }
    }
}

/// A host aggregate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// Aggregate id.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Metadata (`availability_zone`, `ram_weight_multiplier`, ...).
    pub metadata: Vec<(String, String)>,
}

impl Aggregate {
    /// Metadata `key`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }
}

/// Every host and aggregate at one moment: what a scheduling decision reads.
/// Hosts are shared: a snapshot made from another with a few hosts changed
/// shares every other host with it.
#[derive(Clone, Debug, Default)]
pub struct CloudSnapshot {
    hosts: Vec<Arc<HostState>>,
    aggregates: Vec<Aggregate>,
    aggregate_index: HashMap<u32, usize>,
    /// The columnar form of every host, built once per group on first use.
    columns: ColumnGroups,
}

impl CloudSnapshot {
    /// A snapshot of `hosts` and `aggregates`.
    pub fn new(hosts: Vec<HostState>, aggregates: Vec<Aggregate>) -> Self {
        Self::from_shared(hosts.into_iter().map(Arc::new).collect(), aggregates)
    }

    /// A snapshot of shared `hosts` and `aggregates`.
    pub fn from_shared(hosts: Vec<Arc<HostState>>, aggregates: Vec<Aggregate>) -> Self {
        let aggregate_index = aggregates
            .iter()
            .enumerate()
            .map(|(index, aggregate)| (aggregate.id, index))
            .collect();
        Self {
            hosts,
            aggregates,
            aggregate_index,
            columns: ColumnGroups::default(),
        }
    }

    /// The columnar form of every host (see [`ColumnGroups`]).
    pub fn column_groups(&self) -> &ColumnGroups {
        &self.columns
    }

    /// Every host.
    pub fn hosts(&self) -> &[Arc<HostState>] {
        &self.hosts
    }

    /// Copies of every host, to change and make another snapshot of.
    pub fn host_states(&self) -> Vec<HostState> {
        self.hosts
            .iter()
            .map(|host| HostState::clone(host))
            .collect()
    }

    /// Every aggregate.
    pub fn aggregates(&self) -> &[Aggregate] {
        &self.aggregates
    }

    /// The position of aggregate `id` in [`CloudSnapshot::aggregates`].
    pub fn aggregate_position(&self, id: u32) -> Option<usize> {
        self.aggregate_index.get(&id).copied()
    }

    /// Aggregate `id`.
    pub fn aggregate(&self, id: u32) -> Option<&Aggregate> {
        self.aggregate_position(id)
            .map(|index| &self.aggregates[index])
    }
}

/// A scheduling request: Nova's RequestSpec, as plugins see it, plus the
/// host-manager options plugins do not see.
#[derive(Clone, Debug)]
pub struct SchedulingRequest {
    /// Request id, for log lines.
    pub request_id: String,
    /// What plugins see.
    pub request: Request,
    /// Hosts never to pick.
    pub ignore_hosts: Vec<String>,
    /// Only these hosts (filters are skipped, as in Nova).
    pub force_hosts: Vec<String>,
    /// Only these nodes (filters are skipped, as in Nova).
    pub force_nodes: Vec<String>,
    /// Only these hosts, still through the filters and weighers (Nova's
    /// `requested_destination`: a cold migration to a named host).
    pub requested_hosts: Vec<String>,
    /// Drop, before the filters, hosts whose free vCPUs, RAM or disk (under
    /// their allocation ratios) cannot hold the flavor, as Nova's Placement
    /// query does. The conductor sets it; dry runs over synthetic hosts need
    /// not.
    pub check_capacity: bool,
}

impl SchedulingRequest {
    /// A request with no host-manager options.
    pub fn new(request_id: impl Into<String>, request: Request) -> Self {
        Self {
            request_id: request_id.into(),
            request,
            ignore_hosts: Vec::new(),
            force_hosts: Vec::new(),
            force_nodes: Vec::new(),
            requested_hosts: Vec::new(),
            check_capacity: false,
        }
    }
}
