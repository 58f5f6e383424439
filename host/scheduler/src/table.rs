//! Builds the columnar [`HostTable`] a plugin receives: only the candidate
//! rows, only the columns the plugin declared, strings interned, per-host
//! lists in compressed-row form.
//!
//! The columnar form of every row is built once per [`CloudSnapshot`], one
//! column group at a time (lazily, the first time a plugin needs it), each
//! group with its own interned string table ([`ColumnGroups`]). A plugin call
//! then only *projects* the groups it needs: when the candidates are every
//! row, the columns are copied as they are (string ids shifted by the strings
//! of the groups before); for a subset, rows are gathered by index and string
//! ids remapped through an array, so the table carries only the strings its
//! rows reference. No call hashes or re-interns a string.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use novum_plugin_sdk::{
    Aggregate as TableAggregate, Column, HostTable, KeyValue, Metric, PropertyCount, RefLists,
    SupportedInstance,
};

use super::state::{CloudSnapshot, HostState};

/// The host rows of one scheduling request: the snapshot, plus hosts whose
/// resources earlier instances of the same request consumed.
#[derive(Debug)]
pub struct HostRows<'a> {
    snapshot: &'a CloudSnapshot,
    consumed: HashMap<usize, HostState>,
    /// Column groups that consumption changed, rebuilt from the consumed
    /// rows when first needed after the last consumption.
    changed: ColumnGroups,
}

impl<'a> HostRows<'a> {
    /// The rows of `snapshot`, unchanged.
    pub fn new(snapshot: &'a CloudSnapshot) -> Self {
        Self {
            snapshot,
            consumed: HashMap::new(),
            changed: ColumnGroups::default(),
        }
    }

    /// The snapshot.
    pub fn snapshot(&self) -> &'a CloudSnapshot {
        self.snapshot
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.snapshot.hosts().len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `index`, with consumption applied.
    pub fn get(&self, index: usize) -> &HostState {
        if self.consumed.is_empty() {
            return &self.snapshot.hosts()[index];
        }
        self.consumed
            .get(&index)
            .unwrap_or(&self.snapshot.hosts()[index])
    }

    /// A mutable copy of row `index` for consumption. The column groups that
    /// [`HostState::consume`] changes are rebuilt when next needed.
    pub fn get_mut(&mut self, index: usize) -> &mut HostState {
        let snapshot = self.snapshot;
        self.changed = ColumnGroups::default();
        self.consumed
            .entry(index)
            .or_insert_with(|| HostState::clone(&snapshot.hosts()[index]))
    }

    /// The columnar form of column group `column` over every row (only that
    /// group's columns filled), consumption applied.
    pub fn group(&self, column: Column) -> &HostTable {
        if !self.consumed.is_empty() && CONSUMED_COLUMNS.contains(&column) {
            return self.changed.get(column, || build_group(self, column));
        }
        let unchanged = HostRows::new(self.snapshot);
        self.snapshot
            .column_groups()
            .get(column, || build_group(&unchanged, column))
    }
}

/// The column groups [`HostState::consume`] changes.
const CONSUMED_COLUMNS: &[Column] = &[
    Column::Memory,
    Column::Disk,
    Column::Vcpus,
    Column::NumInstances,
    Column::Instances,
    Column::InstanceGroups,
    Column::InstanceImageProperties,
];

/// Number of column groups (variants of [`Column`]).
const COLUMN_COUNT: usize = 20;

/// The columnar form of every row, one [`HostTable`] per column group (only
/// that group's columns filled, with the group's own string table), each
/// built on first use. Cloning shares the groups built so far.
#[derive(Clone, Debug, Default)]
pub struct ColumnGroups {
    groups: [OnceLock<Arc<HostTable>>; COLUMN_COUNT],
}

impl ColumnGroups {
    /// Group `column`, built by `build` if it is not yet.
    fn get(&self, column: Column, build: impl FnOnce() -> HostTable) -> &HostTable {
        self.groups[column as usize].get_or_init(|| Arc::new(build()))
    }
}

/// A fast, non-cryptographic string hasher (the Fx algorithm) for interning:
/// table strings come from the controller's own database, not from callers
/// who could choose colliding keys, and SipHash dominated table building.
#[derive(Clone, Copy, Default)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(SEED);
        }
        for byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*byte)).wrapping_mul(SEED);
        }
    }
}

type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

/// Interned strings of one table.
struct Strings<'a> {
    index: HashMap<&'a str, u32, FxBuild>,
    strings: Vec<String>,
}

impl<'a> Strings<'a> {
    fn new() -> Self {
        Self {
            index: HashMap::default(),
            strings: Vec::new(),
        }
    }

    /// A string that repeats across hosts: stored once.
    fn intern(&mut self, text: &'a str) -> u32 {
        if let Some(index) = self.index.get(text) {
            return *index;
        }
        let index = self.strings.len() as u32;
        self.strings.push(text.to_string());
        self.index.insert(text, index);
        index
    }

    /// A string unique to its host (name, uuid, IP): stored without lookup.
    fn unique(&mut self, text: &str) -> u32 {
        let index = self.strings.len() as u32;
        self.strings.push(text.to_string());
        index
    }
}

/// Compressed-row lists, built host by host.
struct Rows<T> {
    offsets: Vec<u32>,
    items: Vec<T>,
}

impl<T> Rows<T> {
    fn with_capacity(hosts: usize) -> Self {
        let mut offsets = Vec::with_capacity(hosts + 1);
        offsets.push(0);
        Self {
            offsets,
            items: Vec::new(),
        }
    }

    fn end_row(&mut self) {
        self.offsets.push(self.items.len() as u32);
    }
}

/// Builds column group `column` over every row of `rows`, from the host
/// states: the one place that turns [`HostState`]s into columns.
fn build_group(rows: &HostRows<'_>, column: Column) -> HostTable {
    let mut table = HostTable::with_len(rows.len() as u32);
    let mut strings = Strings::new();
    let hosts: Vec<&HostState> = (0..rows.len()).map(|index| rows.get(index)).collect();
    let count = hosts.len();
    {
        match column {
            Column::Name => {
                table.names = hosts
                    .iter()
                    .map(|host| strings.unique(&host.name))
                    .collect()
            }
            Column::Uuid => {
                table.uuids = hosts
                    .iter()
                    .map(|host| strings.unique(&host.uuid))
                    .collect()
            }
            Column::AvailabilityZone => {
                table.availability_zones = hosts
                    .iter()
                    .map(|host| strings.intern(&host.availability_zone))
                    .collect()
            }
            Column::Aggregates => {
                let snapshot = rows.snapshot();
                let mut positions: HashMap<u32, u32> = HashMap::new();
                let mut lists = Rows::with_capacity(count);
                for host in &hosts {
                    for id in &host.aggregates {
                        let Some(aggregate) = snapshot.aggregate(*id) else {
                            continue;
                        };
                        let next = table.aggregates.len() as u32;
                        let position = *positions.entry(*id).or_insert_with(|| {
                            table.aggregates.push(TableAggregate {
                                name: aggregate.name.clone(),
                                metadata: aggregate
                                    .metadata
                                    .iter()
                                    .map(|(key, value)| KeyValue {
                                        key: key.clone(),
                                        value: value.clone(),
                                    })
                                    .collect(),
                            });
                            next
                        });
                        lists.items.push(position);
                    }
                    lists.end_row();
                }
                table.host_aggregates = RefLists {
                    offsets: lists.offsets,
                    items: lists.items,
                };
            }
            Column::Memory => {
                table.memory_total_mb = hosts.iter().map(|host| host.memory_total_mb).collect();
                table.memory_used_mb = hosts.iter().map(|host| host.memory_used_mb).collect();
                table.memory_free_mb = hosts.iter().map(|host| host.memory_free_mb()).collect();
            }
            Column::Disk => {
                table.disk_total_mb = hosts.iter().map(|host| host.disk_total_mb).collect();
                table.disk_used_mb = hosts.iter().map(|host| host.disk_used_mb).collect();
                table.disk_free_mb = hosts.iter().map(|host| host.disk_free_mb()).collect();
            }
            Column::Vcpus => {
                table.vcpus_total = hosts.iter().map(|host| host.vcpus_total).collect();
                table.vcpus_used = hosts.iter().map(|host| host.vcpus_used).collect();
            }
            Column::AllocationRatios => {
                table.cpu_allocation_ratios =
                    hosts.iter().map(|host| host.cpu_allocation_ratio).collect();
                table.ram_allocation_ratios =
                    hosts.iter().map(|host| host.ram_allocation_ratio).collect();
                table.disk_allocation_ratios = hosts
                    .iter()
                    .map(|host| host.disk_allocation_ratio)
                    .collect();
            }
            Column::NumInstances => {
                table.num_instances = hosts.iter().map(|host| host.num_instances).collect()
            }
            Column::NumIoOps => {
                table.num_io_ops = hosts.iter().map(|host| host.num_io_ops).collect()
            }
            Column::FailedBuilds => {
                table.failed_builds = hosts.iter().map(|host| host.failed_builds).collect()
            }
            Column::Hypervisor => {
                table.hypervisor_types = hosts
                    .iter()
                    .map(|host| strings.intern(&host.hypervisor_type))
                    .collect();
                table.hypervisor_versions =
                    hosts.iter().map(|host| host.hypervisor_version).collect();
            }
            Column::Cpu => {
                table.cpu_archs = hosts
                    .iter()
                    .map(|host| strings.intern(&host.cpu_arch))
                    .collect();
                let mut lists = Rows::with_capacity(count);
                for host in &hosts {
                    lists.items.extend(
                        host.cpu_features
                            .iter()
                            .map(|feature| strings.intern(feature)),
                    );
                    lists.end_row();
                }
                table.cpu_features = RefLists {
                    offsets: lists.offsets,
                    items: lists.items,
                };
            }
            Column::SupportedInstances => {
                let mut lists = Rows::with_capacity(count);
                for host in &hosts {
                    for (arch, hv_type, vm_mode) in &host.supported_instances {
                        let item = SupportedInstance {
                            arch: strings.intern(arch),
                            hv_type: strings.intern(hv_type),
                            vm_mode: strings.intern(vm_mode),
                        };
                        lists.items.push(item);
                    }
                    lists.end_row();
                }
                table.supported_instances.offsets = lists.offsets;
                table.supported_instances.items = lists.items;
            }
            Column::Metrics => {
                let mut lists = Rows::with_capacity(count);
                for host in &hosts {
                    for (name, value) in &host.metrics {
                        lists.items.push(Metric {
                            name: strings.intern(name),
                            value: *value,
                        });
                    }
                    lists.end_row();
                }
                table.metrics.offsets = lists.offsets;
                table.metrics.items = lists.items;
            }
            Column::Service => {
                table.service_flags = hosts
                    .iter()
                    .map(|host| {
                        novum_plugin_sdk::service_flags(host.service_up, host.service_disabled)
                    })
                    .collect();
            }
            Column::HostIp => {
                table.host_ips = hosts
                    .iter()
                    .map(|host| strings.unique(&host.host_ip))
                    .collect()
            }
            Column::Instances => {
                let mut lists = Rows::with_capacity(count);
                for host in &hosts {
                    lists.items.extend(
                        host.instances
                            .iter()
                            .map(|instance| strings.unique(&instance.uuid)),
                    );
                    lists.end_row();
                }
                table.instances = RefLists {
                    offsets: lists.offsets,
                    items: lists.items,
                };
            }
            Column::InstanceGroups => {
                let mut lists = Rows::with_capacity(count);
                for host in &hosts {
                    lists.items.extend(
                        host.instances
                            .iter()
                            .filter_map(|instance| instance.server_group.as_deref())
                            .map(|group| strings.intern(group)),
                    );
                    lists.end_row();
                }
                table.instance_groups = RefLists {
                    offsets: lists.offsets,
                    items: lists.items,
                };
            }
            Column::InstanceImageProperties => {
                let mut lists = Rows::with_capacity(count);
                let mut counts: BTreeMap<(u32, u32), u32> = BTreeMap::new();
                for host in &hosts {
                    counts.clear();
                    for instance in &host.instances {
                        for (key, value) in &instance.image_properties {
                            *counts
                                .entry((strings.intern(key), strings.intern(value)))
                                .or_insert(0) += 1;
                        }
                    }
                    lists
                        .items
                        .extend(counts.iter().map(|((key, value), count)| PropertyCount {
                            key: *key,
                            value: *value,
                            count: *count,
                        }));
                    lists.end_row();
                }
                table.instance_image_properties.offsets = lists.offsets;
                table.instance_image_properties.items = lists.items;
            }
        }
    }
    table.strings = strings.strings;
    table
}

/// Which rows a projection takes: every row in order, or a subset.
#[derive(Clone, Copy)]
enum Selected<'a> {
    All,
    Rows(&'a [usize]),
}

impl Selected<'_> {
    fn plain<T: Copy>(self, column: &[T]) -> Vec<T> {
        match self {
            Selected::All => column.to_vec(),
            Selected::Rows(rows) => rows.iter().map(|row| column[*row]).collect(),
        }
    }

    /// Gathers compressed-row lists, mapping each item.
    fn lists<T, U>(
        self,
        offsets: &[u32],
        items: &[T],
        mut map: impl FnMut(&T) -> U,
    ) -> (Vec<u32>, Vec<U>) {
        match self {
            Selected::All => (offsets.to_vec(), items.iter().map(map).collect()),
            Selected::Rows(rows) => {
                let mut lists = Rows::with_capacity(rows.len());
                for row in rows {
                    let range = offsets[*row] as usize..offsets[*row + 1] as usize;
                    lists.items.extend(items[range].iter().map(&mut map));
                    lists.end_row();
                }
                (lists.offsets, lists.items)
            }
        }
    }
}

/// Maps the string ids of one column group to ids of the table being
/// built, appending the strings the table needs.
struct StringMap<'a> {
    source: &'a [String],
    /// Every row: the group's strings are all appended, ids shift by `base`.
    base: u32,
    /// A subset: group id → table id (`u32::MAX`: not yet in the table).
    remap: Vec<u32>,
}

impl<'a> StringMap<'a> {
    fn new(source: &'a [String], selected: Selected<'_>, out: &mut Vec<String>) -> Self {
        let base = out.len() as u32;
        let remap = match selected {
            Selected::All => {
                out.extend_from_slice(source);
                Vec::new()
            }
            Selected::Rows(_) => vec![u32::MAX; source.len()],
        };
        Self {
            source,
            base,
            remap,
        }
    }

    fn map(&mut self, id: u32, out: &mut Vec<String>) -> u32 {
        if self.remap.is_empty() {
            return self.base + id;
        }
        let slot = &mut self.remap[id as usize];
        if *slot == u32::MAX {
            *slot = out.len() as u32;
            out.push(self.source[id as usize].clone());
        }
        *slot
    }
}

/// Builds the table of `candidates` (row indices into `rows`, ascending)
/// with the columns in `needs`, projected from the rows' column groups.
pub fn build_table(rows: &HostRows<'_>, candidates: &[usize], needs: &[Column]) -> HostTable {
    let mut table = HostTable::with_len(candidates.len() as u32);
    let every_row = candidates.len() == rows.len()
        && candidates
            .iter()
            .enumerate()
            .all(|(position, row)| position == *row);
    let selected = if every_row {
        Selected::All
    } else {
        Selected::Rows(candidates)
    };
    let mut filled = [false; COLUMN_COUNT];
    for column in needs {
        let slot = *column as usize;
        if filled.get(slot).copied().unwrap_or(true) {
            continue;
        }
        filled[slot] = true;
        project(rows.group(*column), *column, selected, &mut table);
    }
    table
}

/// Copies column group `column` of `source` (every row) into `table`, for
/// the `selected` rows.
fn project(source: &HostTable, column: Column, selected: Selected<'_>, table: &mut HostTable) {
    let mut out = std::mem::take(&mut table.strings);
    let mut strings = StringMap::new(&source.strings, selected, &mut out);
    let mut ids = |column: &[u32], out: &mut Vec<String>| -> Vec<u32> {
        match selected {
            Selected::All => column.iter().map(|id| strings.map(*id, out)).collect(),
            Selected::Rows(rows) => rows
                .iter()
                .map(|row| strings.map(column[*row], out))
                .collect(),
        }
    };
    match column {
        Column::Name => table.names = ids(&source.names, &mut out),
        Column::Uuid => table.uuids = ids(&source.uuids, &mut out),
        Column::AvailabilityZone => {
            table.availability_zones = ids(&source.availability_zones, &mut out)
        }
        Column::HostIp => table.host_ips = ids(&source.host_ips, &mut out),
        Column::Aggregates => {
            table.aggregates = source.aggregates.clone();
            let lists = &source.host_aggregates;
            let (offsets, items) = selected.lists(&lists.offsets, &lists.items, |item| *item);
            table.host_aggregates = RefLists { offsets, items };
        }
        Column::Memory => {
            table.memory_total_mb = selected.plain(&source.memory_total_mb);
            table.memory_used_mb = selected.plain(&source.memory_used_mb);
            table.memory_free_mb = selected.plain(&source.memory_free_mb);
        }
        Column::Disk => {
            table.disk_total_mb = selected.plain(&source.disk_total_mb);
            table.disk_used_mb = selected.plain(&source.disk_used_mb);
            table.disk_free_mb = selected.plain(&source.disk_free_mb);
        }
        Column::Vcpus => {
            table.vcpus_total = selected.plain(&source.vcpus_total);
            table.vcpus_used = selected.plain(&source.vcpus_used);
        }
        Column::AllocationRatios => {
            table.cpu_allocation_ratios = selected.plain(&source.cpu_allocation_ratios);
            table.ram_allocation_ratios = selected.plain(&source.ram_allocation_ratios);
            table.disk_allocation_ratios = selected.plain(&source.disk_allocation_ratios);
        }
        Column::NumInstances => table.num_instances = selected.plain(&source.num_instances),
        Column::NumIoOps => table.num_io_ops = selected.plain(&source.num_io_ops),
        Column::FailedBuilds => table.failed_builds = selected.plain(&source.failed_builds),
        Column::Hypervisor => {
            table.hypervisor_types = ids(&source.hypervisor_types, &mut out);
            table.hypervisor_versions = selected.plain(&source.hypervisor_versions);
        }
        Column::Cpu => {
            table.cpu_archs = ids(&source.cpu_archs, &mut out);
            let lists = &source.cpu_features;
            let (offsets, items) = selected.lists(&lists.offsets, &lists.items, |id| {
                strings.map(*id, &mut out)
            });
            table.cpu_features = RefLists { offsets, items };
        }
        Column::SupportedInstances => {
            let lists = &source.supported_instances;
            let (offsets, items) =
                selected.lists(&lists.offsets, &lists.items, |item| SupportedInstance {
                    arch: strings.map(item.arch, &mut out),
                    hv_type: strings.map(item.hv_type, &mut out),
                    vm_mode: strings.map(item.vm_mode, &mut out),
                });
            table.supported_instances.offsets = offsets;
            table.supported_instances.items = items;
        }
        Column::Metrics => {
            let lists = &source.metrics;
            let (offsets, items) = selected.lists(&lists.offsets, &lists.items, |item| Metric {
                name: strings.map(item.name, &mut out),
                value: item.value,
            });
            table.metrics.offsets = offsets;
            table.metrics.items = items;
        }
        Column::Service => {
            table.service_flags = selected.plain(&source.service_flags);
        }
        Column::Instances | Column::InstanceGroups => {
            let (lists, target) = if column == Column::Instances {
                (&source.instances, &mut table.instances)
            } else {
                (&source.instance_groups, &mut table.instance_groups)
            };
            let (offsets, items) = selected.lists(&lists.offsets, &lists.items, |id| {
                strings.map(*id, &mut out)
            });
            *target = RefLists { offsets, items };
        }
        Column::InstanceImageProperties => {
            let lists = &source.instance_image_properties;
            let (offsets, items) =
                selected.lists(&lists.offsets, &lists.items, |item| PropertyCount {
                    key: strings.map(item.key, &mut out),
                    value: strings.map(item.value, &mut out),
                    count: item.count,
                });
            table.instance_image_properties.offsets = offsets;
            table.instance_image_properties.items = items;
        }
    }
    table.strings = out;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Aggregate, InstanceOnHost};
    use novum_plugin_sdk::HostView;
    use novum_plugin_sdk::testing::HostSpec;

    fn host(name: &str, aggregates: Vec<u32>) -> HostState {
        HostState {
            name: name.to_string(),
            aggregates,
            memory_total_mb: 1000,
            memory_used_mb: 200,
            ram_allocation_ratio: 1.5,
            instances: vec![
                InstanceOnHost {
                    uuid: format!("{name}-i1"),
                    server_group: Some("g".into()),
                    image_properties: vec![("os".into(), "linux".into())],
                },
                InstanceOnHost {
                    uuid: format!("{name}-i2"),
                    server_group: None,
                    image_properties: vec![("os".into(), "linux".into())],
                },
            ],
            ..HostState::default()
        }
    }

    #[test]
    fn fills_only_needed_columns_of_candidates() {
        let snapshot = CloudSnapshot::new(
            vec![host("a", vec![7]), host("b", vec![]), host("c", vec![7, 8])],
            vec![
                Aggregate {
                    id: 7,
                    name: "seven".into(),
                    metadata: vec![("k".into(), "v".into())],
                },
                Aggregate {
                    id: 8,
                    name: "eight".into(),
                    metadata: vec![],
                },
            ],
        );
        let rows = HostRows::new(&snapshot);
        let table = build_table(
            &rows,
            &[2, 0],
            &[
                Column::Name,
                Column::Memory,
                Column::Aggregates,
                Column::InstanceGroups,
                Column::InstanceImageProperties,
            ],
        );
        assert_eq!(table.len, 2);
        let views: Vec<_> = table.hosts().collect();
        assert_eq!(views[0].name(), "c");
        assert_eq!(views[1].name(), "a");
        assert_eq!(views[0].memory_free_mb(), 1300);
        assert_eq!(
            views[1]
                .aggregates()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>(),
            ["seven"]
        );
        assert_eq!(views[0].aggregates().count(), 2);
        assert_eq!(table.aggregates.len(), 2, "aggregates are sent once");
        assert_eq!(views[0].instance_groups().collect::<Vec<_>>(), ["g"]);
        assert_eq!(
            views[1].instance_image_properties().collect::<Vec<_>>(),
            [("os", "linux", 2)]
        );
        assert!(
            table.uuids.is_empty() && table.service_flags.is_empty(),
            "unneeded columns stay empty"
        );
        assert_eq!(
            table.strings.iter().filter(|s| *s == "linux").count(),
            1,
            "strings are interned"
        );
    }

    /// Every column of row `row`, read through the SDK's accessors.
    fn render(table: &HostTable, row: usize) -> String {
        let host = novum_plugin_sdk::HostView::new(table, row);
        format!(
            "{} {} {} {:?} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {:?} {:?} {:?} {} {} {} {:?} {:?} {:?}",
            host.name(),
            host.uuid(),
            host.availability_zone(),
            host.aggregates()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>(),
            host.memory_total_mb(),
            host.memory_used_mb(),
            host.memory_free_mb(),
            host.disk_total_mb(),
            host.disk_used_mb(),
            host.disk_free_mb(),
            host.vcpus_total(),
            host.vcpus_used(),
            host.cpu_allocation_ratio(),
            host.ram_allocation_ratio(),
            host.disk_allocation_ratio(),
            host.num_instances(),
            host.num_io_ops(),
            host.failed_builds(),
            host.hypervisor_type(),
            host.hypervisor_version(),
            host.cpu_features().collect::<Vec<_>>(),
            host.supported_instances().collect::<Vec<_>>(),
            host.metrics().collect::<Vec<_>>(),
            host.cpu_arch(),
            host.service_up(),
            host.host_ip(),
            host.instances().collect::<Vec<_>>(),
            host.instance_groups().collect::<Vec<_>>(),
            sorted(host.instance_image_properties().collect()),
        )
    }

    /// `items` in order: property counts come in the order their strings
    /// were interned, which is each table builder's own business.
    fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
        items.sort();
        items
    }

    /// The SDK's test description of `host` (`novum_plugin_sdk::testing`),
    /// taken field by field from the controller's row: only inputs, nothing
    /// the table computes.
    fn spec_of(snapshot: &CloudSnapshot, host: &HostState) -> HostSpec {
        let mut image_properties: BTreeMap<(String, String), u32> = BTreeMap::new();
        for instance in &host.instances {
            for (key, value) in &instance.image_properties {
                *image_properties
                    .entry((key.clone(), value.clone()))
                    .or_insert(0) += 1;
            }
        }
        HostSpec {
            name: host.name.clone(),
            uuid: host.uuid.clone(),
            availability_zone: host.availability_zone.clone(),
            aggregates: host
                .aggregates
                .iter()
                .filter_map(|id| snapshot.aggregate(*id))
                .map(|aggregate| novum_plugin_sdk::Aggregate {
                    name: aggregate.name.clone(),
                    metadata: aggregate
                        .metadata
                        .iter()
                        .map(|(key, value)| KeyValue {
                            key: key.clone(),
                            value: value.clone(),
                        })
                        .collect(),
                })
                .collect(),
            memory_total_mb: host.memory_total_mb,
            memory_used_mb: host.memory_used_mb,
            disk_total_mb: host.disk_total_mb,
            disk_used_mb: host.disk_used_mb,
            vcpus_total: host.vcpus_total,
            vcpus_used: host.vcpus_used,
            cpu_allocation_ratio: host.cpu_allocation_ratio,
            ram_allocation_ratio: host.ram_allocation_ratio,
            disk_allocation_ratio: host.disk_allocation_ratio,
            num_instances: host.num_instances,
            num_io_ops: host.num_io_ops,
            failed_builds: host.failed_builds,
            hypervisor_type: host.hypervisor_type.clone(),
            hypervisor_version: host.hypervisor_version,
            cpu_arch: host.cpu_arch.clone(),
            cpu_features: host.cpu_features.clone(),
            supported_instances: host.supported_instances.clone(),
            metrics: host.metrics.clone(),
            service_up: host.service_up,
            service_disabled: host.service_disabled,
            host_ip: host.host_ip.clone(),
            instances: host
                .instances
                .iter()
                .map(|instance| instance.uuid.clone())
                .collect(),
            instance_groups: host
                .instances
                .iter()
                .filter_map(|instance| instance.server_group.clone())
                .collect(),
            instance_image_properties: image_properties
                .into_iter()
                .map(|((key, value), count)| (key, value, count))
                .collect(),
        }
    }

    /// A plugin's unit tests (`novum_plugin_sdk::testing::table`) see the
    /// same table the controller sends for the same hosts: every column, on
    /// synthetic clouds of every shape the benchmark and the property test use.
    #[test]
    fn plugin_test_tables_equal_the_tables_the_controller_sends() {
        for seed in 0..40 {
            let snapshot = crate::synthetic::cloud(seed, 5 + (seed as usize * 7) % 60);
            let rows = HostRows::new(&snapshot);
            let every: Vec<usize> = (0..rows.len()).collect();
            let sent = build_table(&rows, &every, &EVERY_COLUMN);
            let specs: Vec<HostSpec> = snapshot
                .hosts()
                .iter()
                .map(|host| spec_of(&snapshot, host))
                .collect();
            let tested = novum_plugin_sdk::testing::table(&EVERY_COLUMN, &specs);
            for row in 0..rows.len() {
                assert_eq!(
                    render(&tested, row),
                    render(&sent, row),
                    "cloud {seed}, row {row}"
                );
            }
        }
    }

    const EVERY_COLUMN: [Column; COLUMN_COUNT] = [
        Column::Name,
        Column::Uuid,
        Column::AvailabilityZone,
        Column::Aggregates,
        Column::Memory,
        Column::Disk,
        Column::Vcpus,
        Column::AllocationRatios,
        Column::NumInstances,
        Column::NumIoOps,
        Column::FailedBuilds,
        Column::Hypervisor,
        Column::Cpu,
        Column::SupportedInstances,
        Column::Metrics,
        Column::Service,
        Column::HostIp,
        Column::Instances,
        Column::InstanceGroups,
        Column::InstanceImageProperties,
    ];

    #[test]
    fn projections_match_tables_built_from_the_rows_alone() {
        let snapshot = crate::synthetic::cloud(11, 60);
        let rows = HostRows::new(&snapshot);
        let every: Vec<usize> = (0..rows.len()).collect();
        let subset: Vec<usize> = (0..rows.len()).filter(|row| row % 3 != 1).collect();
        for candidates in [&every, &subset] {
            let projected = build_table(&rows, candidates, &EVERY_COLUMN);
            let alone = CloudSnapshot::new(
                candidates
                    .iter()
                    .map(|row| HostState::clone(&snapshot.hosts()[*row]))
                    .collect(),
                snapshot.aggregates().to_vec(),
            );
            let reference = build_table(
                &HostRows::new(&alone),
                &every[..candidates.len()],
                &EVERY_COLUMN,
            );
            for row in 0..candidates.len() {
                assert_eq!(
                    render(&projected, row),
                    render(&reference, row),
                    "row {row}"
                );
            }
            let referenced = projected.strings.len();
            let single = build_table(&rows, candidates, &[Column::Name]);
            assert_eq!(
                single.strings.len(),
                candidates.len(),
                "only the names are sent"
            );
            assert!(referenced > single.strings.len());
        }
    }

    #[test]
    fn consumption_is_seen_by_later_tables() {
        let snapshot = crate::synthetic::cloud(5, 20);
        let mut rows = HostRows::new(&snapshot);
        let every: Vec<usize> = (0..rows.len()).collect();
        let before = build_table(&rows, &every, &EVERY_COLUMN);
        let request = crate::synthetic::request(5, &snapshot).request;
        rows.get_mut(4).consume(&request, Some("new-instance"));
        let after = build_table(&rows, &every, &EVERY_COLUMN);
        assert_eq!(render(&before, 3), render(&after, 3));
        assert_ne!(render(&before, 4), render(&after, 4));
        assert_eq!(
            HostView::new(&after, 4).memory_used_mb(),
            snapshot.hosts()[4].memory_used_mb + request.flavor.memory_mb as i64
        );
        assert!(
            HostView::new(&after, 4)
                .instances()
                .any(|uuid| uuid == "new-instance")
        );
        let untouched = build_table(&HostRows::new(&snapshot), &every, &EVERY_COLUMN);
        assert_eq!(
            render(&before, 4),
            render(&untouched, 4),
            "the snapshot is unchanged"
        );
    }
}
