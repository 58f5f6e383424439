//! [`HostView`]: one host (row) of a [`HostTable`], with named accessors.
//!
//! Accessors read columns the plugin declared in its `NEEDS`; reading an
//! undeclared column panics with a message naming it (in wasm, a trap that the
//! controller reports with the plugin's name).

use crate::{Aggregate, HostTable, RefLists, SERVICE_DISABLED, SERVICE_UP};

/// One candidate host of a request.
#[derive(Clone, Copy)]
pub struct HostView<'a> {
    table: &'a HostTable,
    row: usize,
}

fn cell<T: Copy>(column: &[T], row: usize, name: &str) -> T {
    match column.get(row) {
        Some(value) => *value,
        None => panic!("host column `{name}` was not sent: declare it in NEEDS"),
    }
}

fn row_range(offsets: &[u32], row: usize, name: &str) -> std::ops::Range<usize> {
    match (offsets.get(row), offsets.get(row + 1)) {
        (Some(start), Some(end)) => *start as usize..*end as usize,
        _ => panic!("host column `{name}` was not sent: declare it in NEEDS"),
    }
}

impl<'a> HostView<'a> {
    /// Row `row` of `table`.
    pub fn new(table: &'a HostTable, row: usize) -> Self {
        Self { table, row }
    }

    /// The row index in the table.
    pub fn row(&self) -> usize {
        self.row
    }

    fn string(&self, index: u32) -> &'a str {
        self.table
            .strings
            .get(index as usize)
            .map(String::as_str)
            .unwrap_or("")
    }

    fn strings_of(&self, lists: &'a RefLists, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let table = self.table;
        lists.items[row_range(&lists.offsets, self.row, name)]
            .iter()
            .map(move |index| {
                table
                    .strings
                    .get(*index as usize)
                    .map(String::as_str)
                    .unwrap_or("")
            })
    }

    /// Host name (`Column::Name`).
    pub fn name(&self) -> &'a str {
        self.string(cell(&self.table.names, self.row, "name"))
    }
    /// Compute node uuid (`Column::Uuid`).
    pub fn uuid(&self) -> &'a str {
        self.string(cell(&self.table.uuids, self.row, "uuid"))
    }
    /// Availability zone (`Column::AvailabilityZone`).
    pub fn availability_zone(&self) -> &'a str {
        self.string(cell(
            &self.table.availability_zones,
            self.row,
            "availability-zone",
        ))
    }
    /// The aggregates the host belongs to (`Column::Aggregates`).
    pub fn aggregates(&self) -> impl Iterator<Item = &'a Aggregate> + 'a {
        let table = self.table;
        let lists = &table.host_aggregates;
        lists.items[row_range(&lists.offsets, self.row, "aggregates")]
            .iter()
            .filter_map(move |index| table.aggregates.get(*index as usize))
    }
    /// Values of metadata `key` across the host's aggregates.
    pub fn aggregate_metadata(&self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.aggregates()
            .filter_map(move |aggregate| aggregate.metadata(key))
    }
    /// Total RAM in MB (`Column::Memory`).
    pub fn memory_total_mb(&self) -> i64 {
        cell(&self.table.memory_total_mb, self.row, "memory")
    }
    /// Used RAM in MB, allocations included (`Column::Memory`).
    pub fn memory_used_mb(&self) -> i64 {
        cell(&self.table.memory_used_mb, self.row, "memory")
    }
    /// Free RAM in MB: total × ram allocation ratio − used; may be negative (`Column::Memory`).
    pub fn memory_free_mb(&self) -> i64 {
        cell(&self.table.memory_free_mb, self.row, "memory")
    }
    /// Total disk in MB (`Column::Disk`).
    pub fn disk_total_mb(&self) -> i64 {
        cell(&self.table.disk_total_mb, self.row, "disk")
    }
    /// Used disk in MB (`Column::Disk`).
    pub fn disk_used_mb(&self) -> i64 {
        cell(&self.table.disk_used_mb, self.row, "disk")
    }
    /// Free disk in MB: total × disk allocation ratio − used (`Column::Disk`).
    pub fn disk_free_mb(&self) -> i64 {
        cell(&self.table.disk_free_mb, self.row, "disk")
    }
    /// Physical vCPUs (`Column::Vcpus`).
    pub fn vcpus_total(&self) -> u32 {
        cell(&self.table.vcpus_total, self.row, "vcpus")
    }
    /// vCPUs allocated to instances (`Column::Vcpus`).
    pub fn vcpus_used(&self) -> u32 {
        cell(&self.table.vcpus_used, self.row, "vcpus")
    }
    /// CPU allocation ratio (`Column::AllocationRatios`).
    pub fn cpu_allocation_ratio(&self) -> f64 {
        cell(
            &self.table.cpu_allocation_ratios,
            self.row,
            "allocation-ratios",
        )
    }
    /// RAM allocation ratio (`Column::AllocationRatios`).
    pub fn ram_allocation_ratio(&self) -> f64 {
        cell(
            &self.table.ram_allocation_ratios,
            self.row,
            "allocation-ratios",
        )
    }
    /// Disk allocation ratio (`Column::AllocationRatios`).
    pub fn disk_allocation_ratio(&self) -> f64 {
        cell(
            &self.table.disk_allocation_ratios,
            self.row,
            "allocation-ratios",
        )
    }
    /// Instances on the host (`Column::NumInstances`).
    pub fn num_instances(&self) -> u32 {
        cell(&self.table.num_instances, self.row, "num-instances")
    }
    /// I/O-heavy tasks in progress (`Column::NumIoOps`).
    pub fn num_io_ops(&self) -> u32 {
        cell(&self.table.num_io_ops, self.row, "num-io-ops")
    }
    /// Consecutive failed builds (`Column::FailedBuilds`).
    pub fn failed_builds(&self) -> u32 {
        cell(&self.table.failed_builds, self.row, "failed-builds")
    }
    /// Hypervisor type, e.g. `QEMU` (`Column::Hypervisor`).
    pub fn hypervisor_type(&self) -> &'a str {
        self.string(cell(&self.table.hypervisor_types, self.row, "hypervisor"))
    }
    /// Hypervisor version as Nova encodes it (major × 1,000,000 + minor × 1,000 + micro) (`Column::Hypervisor`).
    pub fn hypervisor_version(&self) -> u64 {
        cell(&self.table.hypervisor_versions, self.row, "hypervisor")
    }
    /// CPU architecture, e.g. `x86_64` (`Column::Cpu`).
    pub fn cpu_arch(&self) -> &'a str {
        self.string(cell(&self.table.cpu_archs, self.row, "cpu"))
    }
    /// CPU feature flags (`Column::Cpu`).
    pub fn cpu_features(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.strings_of(&self.table.cpu_features, "cpu")
    }
    /// Supported (architecture, hypervisor type, VM mode) triples (`Column::SupportedInstances`).
    pub fn supported_instances(&self) -> impl Iterator<Item = (&'a str, &'a str, &'a str)> + 'a {
        let table = self.table;
        let lists = &table.supported_instances;
        let text = move |index: u32| {
            table
                .strings
                .get(index as usize)
                .map(String::as_str)
                .unwrap_or("")
        };
        lists.items[row_range(&lists.offsets, self.row, "supported-instances")]
            .iter()
            .map(move |triple| {
                (
                    text(triple.arch),
                    text(triple.hv_type),
                    text(triple.vm_mode),
                )
            })
    }
    /// Metrics by name (`Column::Metrics`).
    pub fn metrics(&self) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        let table = self.table;
        let lists = &table.metrics;
        lists.items[row_range(&lists.offsets, self.row, "metrics")]
            .iter()
            .map(move |metric| {
                (
                    table
                        .strings
                        .get(metric.name as usize)
                        .map(String::as_str)
                        .unwrap_or(""),
                    metric.value,
                )
            })
    }
    /// Metric `name`, if the host reports it (`Column::Metrics`).
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics()
            .find(|(metric, _)| *metric == name)
            .map(|(_, value)| value)
    }
    /// The compute service is up: heartbeat recent and not forced down (`Column::Service`).
    pub fn service_up(&self) -> bool {
        cell(&self.table.service_flags, self.row, "service") & SERVICE_UP != 0
    }
    /// The compute service is disabled by an operator (`Column::Service`).
    pub fn service_disabled(&self) -> bool {
        cell(&self.table.service_flags, self.row, "service") & SERVICE_DISABLED != 0
    }
    /// The host's IP address (`Column::HostIp`).
    pub fn host_ip(&self) -> &'a str {
        self.string(cell(&self.table.host_ips, self.row, "host-ip"))
    }
    /// Uuids of the instances on the host (`Column::Instances`).
    pub fn instances(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.strings_of(&self.table.instances, "instances")
    }
    /// Server group uuids of the instances on the host, one per grouped instance (`Column::InstanceGroups`).
    pub fn instance_groups(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.strings_of(&self.table.instance_groups, "instance-groups")
    }
    /// (key, value, instance count) of the image properties of instances on the host (`Column::InstanceImageProperties`).
    pub fn instance_image_properties(&self) -> impl Iterator<Item = (&'a str, &'a str, u32)> + 'a {
        let table = self.table;
        let lists = &table.instance_image_properties;
        let text = move |index: u32| {
            table
                .strings
                .get(index as usize)
                .map(String::as_str)
                .unwrap_or("")
        };
        lists.items[row_range(&lists.offsets, self.row, "instance-image-properties")]
            .iter()
            .map(move |count| (text(count.key), text(count.value), count.count))
    }
}

impl HostTable {
    /// Every host of the table, in row order.
    pub fn hosts(&self) -> impl Iterator<Item = HostView<'_>> {
        (0..self.len as usize).map(move |row| HostView::new(self, row))
    }
}
