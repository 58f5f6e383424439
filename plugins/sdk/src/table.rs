//! Constructors for [`HostTable`] and its compressed-row lists.

use crate::{HostTable, MetricLists, PropertyCountLists, RefLists, SupportedInstanceLists};

impl RefLists {
    /// No rows.
    pub fn empty() -> Self {
        Self {
            offsets: Vec::new(),
            items: Vec::new(),
        }
    }
}

impl SupportedInstanceLists {
    /// No rows.
    pub fn empty() -> Self {
        Self {
            offsets: Vec::new(),
            items: Vec::new(),
        }
    }
}

impl MetricLists {
    /// No rows.
    pub fn empty() -> Self {
        Self {
            offsets: Vec::new(),
            items: Vec::new(),
        }
    }
}

impl PropertyCountLists {
    /// No rows.
    pub fn empty() -> Self {
        Self {
            offsets: Vec::new(),
            items: Vec::new(),
        }
    }
}

impl HostTable {
    /// A table of `len` hosts with every column empty; fill the columns a
    /// plugin needs.
    pub fn with_len(len: u32) -> Self {
        Self {
            len,
            strings: Vec::new(),
            aggregates: Vec::new(),
            names: Vec::new(),
            uuids: Vec::new(),
            availability_zones: Vec::new(),
            host_aggregates: RefLists::empty(),
            memory_total_mb: Vec::new(),
            memory_used_mb: Vec::new(),
            memory_free_mb: Vec::new(),
            disk_total_mb: Vec::new(),
            disk_used_mb: Vec::new(),
            disk_free_mb: Vec::new(),
            vcpus_total: Vec::new(),
            vcpus_used: Vec::new(),
            cpu_allocation_ratios: Vec::new(),
            ram_allocation_ratios: Vec::new(),
            disk_allocation_ratios: Vec::new(),
            num_instances: Vec::new(),
            num_io_ops: Vec::new(),
            failed_builds: Vec::new(),
            hypervisor_types: Vec::new(),
            hypervisor_versions: Vec::new(),
            cpu_archs: Vec::new(),
            cpu_features: RefLists::empty(),
            supported_instances: SupportedInstanceLists::empty(),
            metrics: MetricLists::empty(),
            service_flags: Vec::new(),
            host_ips: Vec::new(),
            instances: RefLists::empty(),
            instance_groups: RefLists::empty(),
            instance_image_properties: PropertyCountLists::empty(),
        }
    }
}

/// `service-flags` bit: the compute service is up.
pub const SERVICE_UP: u8 = 1;
/// `service-flags` bit: the compute service is disabled.
pub const SERVICE_DISABLED: u8 = 2;

/// The `service-flags` byte of a host.
pub fn service_flags(up: bool, disabled: bool) -> u8 {
    (if up { SERVICE_UP } else { 0 }) | (if disabled { SERVICE_DISABLED } else { 0 })
}

/// The `memory-free-mb`/`disk-free-mb` cell of a host: what is left of the
/// resource once `used_mb` is taken from `total_mb` × `allocation_ratio`
/// (negative when over-committed). The controller and [`crate::testing`]
/// both fill the column with it.
#[inline]
pub fn free_mb(total_mb: i64, allocation_ratio: f64, used_mb: i64) -> i64 {
    (total_mb as f64 * allocation_ratio) as i64 - used_mb
}
