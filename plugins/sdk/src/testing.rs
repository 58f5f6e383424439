//! Building blocks for plugin unit tests: describe hosts as [`HostSpec`]s,
//! build the columnar [`HostTable`] a plugin would receive with [`table`]
//! (only the columns the plugin declares are filled, so reading an undeclared
//! column fails the test as it would trap in wasm), and run a filter with
//! [`filter_verdicts`].

pub mod misbehave;

use crate::{
    Aggregate, Column, Config, Filter, HostTable, Metric, MetricLists, PropertyCount,
    PropertyCountLists, RefLists, Request, SchedulerHint, SupportedInstance,
    SupportedInstanceLists, run_filter,
};

/// One host, every column spelled out; unset fields keep harmless defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostSpec {
    /// Host name.
    pub name: String,
    /// Compute node uuid.
    pub uuid: String,
    /// Availability zone.
    pub availability_zone: String,
    /// Aggregates the host belongs to.
    pub aggregates: Vec<Aggregate>,
    /// Total RAM (MB).
    pub memory_total_mb: i64,
    /// Used RAM (MB). The free RAM a plugin reads is computed from total,
    /// ratio and used, as the controller computes it ([`crate::free_mb`]).
    pub memory_used_mb: i64,
    /// Total disk (MB).
    pub disk_total_mb: i64,
    /// Used disk (MB); free disk is computed like free RAM.
    pub disk_used_mb: i64,
    /// Physical vCPUs.
    pub vcpus_total: u32,
    /// Allocated vCPUs.
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
    /// Hypervisor type.
    pub hypervisor_type: String,
    /// Hypervisor version, Nova-encoded.
    pub hypervisor_version: u64,
    /// CPU architecture.
    pub cpu_arch: String,
    /// CPU feature flags.
    pub cpu_features: Vec<String>,
    /// (arch, hypervisor type, VM mode) triples.
    pub supported_instances: Vec<(String, String, String)>,
    /// Metrics by name.
    pub metrics: Vec<(String, f64)>,
    /// Compute service up.
    pub service_up: bool,
    /// Compute service disabled.
    pub service_disabled: bool,
    /// Host IP address.
    pub host_ip: String,
    /// Uuids of the instances on the host.
    pub instances: Vec<String>,
    /// Server group uuids of the grouped instances on the host.
    pub instance_groups: Vec<String>,
    /// (key, value, count) image properties of the instances on the host.
    pub instance_image_properties: Vec<(String, String, u32)>,
}

impl HostSpec {
    /// A host named `name`, service up, RAM and disk allocation ratios 1.0
    /// (free = total − used), everything else default.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            service_up: true,
            ram_allocation_ratio: 1.0,
            disk_allocation_ratio: 1.0,
            ..Self::default()
        }
    }
}

/// An aggregate named `name` with `metadata`.
pub fn aggregate(name: &str, metadata: &[(&str, &str)]) -> Aggregate {
    Aggregate {
        name: name.to_string(),
        metadata: crate::fixtures::pairs(metadata),
    }
}

/// One aggregate (named `agg`) per value, each setting metadata `key` to it.
pub fn aggregates_setting(key: &str, values: &[&str]) -> Vec<Aggregate> {
    values
        .iter()
        .map(|value| aggregate("agg", &[(key, value)]))
        .collect()
}

/// Hosts `h0`, `h1`, ... running the instances (uuids) of each entry.
pub fn hosts_running(instances: &[&[&str]]) -> Vec<HostSpec> {
    instances
        .iter()
        .enumerate()
        .map(|(row, uuids)| HostSpec {
            instances: uuids.iter().map(|uuid| (*uuid).to_string()).collect(),
            ..HostSpec::named(&format!("h{row}"))
        })
        .collect()
}

/// A scheduler hint `name` with `values`.
pub fn hint(name: &str, values: &[&str]) -> SchedulerHint {
    SchedulerHint {
        name: name.to_string(),
        values: values.iter().map(|value| (*value).to_string()).collect(),
    }
}

/// Compressed-row lists: `offsets` with one entry more than rows.
fn rows<T, I>(hosts: &[HostSpec], mut items_of: impl FnMut(&HostSpec) -> I) -> (Vec<u32>, Vec<T>)
where
    I: IntoIterator<Item = T>,
{
    let mut offsets = vec![0];
    let mut items = Vec::new();
    for host in hosts {
        items.extend(items_of(host));
        offsets.push(items.len() as u32);
    }
    (offsets, items)
}

/// Builds the table a plugin declaring `needs` receives for `hosts`: the
/// columns in `needs` are filled, every other column stays empty.
pub fn table(needs: &[Column], hosts: &[HostSpec]) -> HostTable {
    let mut table = HostTable::with_len(hosts.len() as u32);
    // A scratch table interns the strings (`HostTable::intern`).
    let mut interner = HostTable::with_len(0);
    let strings = |interner: &mut HostTable, field: fn(&HostSpec) -> &str| -> Vec<u32> {
        hosts
            .iter()
            .map(|host| interner.intern(field(host)))
            .collect()
    };
    for column in needs {
        match column {
            Column::Name => table.names = strings(&mut interner, |host| &host.name),
            Column::Uuid => table.uuids = strings(&mut interner, |host| &host.uuid),
            Column::AvailabilityZone => {
                table.availability_zones = strings(&mut interner, |host| &host.availability_zone)
            }
            Column::Aggregates => {
                let mut all = Vec::new();
                let (offsets, items) = rows(hosts, |host| {
                    host.aggregates
                        .iter()
                        .map(|aggregate| {
                            all.push(aggregate.clone());
                            (all.len() - 1) as u32
                        })
                        .collect::<Vec<_>>()
                });
                table.aggregates = all;
                table.host_aggregates = RefLists { offsets, items };
            }
            Column::Memory => {
                table.memory_total_mb = hosts.iter().map(|host| host.memory_total_mb).collect();
                table.memory_used_mb = hosts.iter().map(|host| host.memory_used_mb).collect();
                table.memory_free_mb = hosts
                    .iter()
                    .map(|host| {
                        crate::free_mb(
                            host.memory_total_mb,
                            host.ram_allocation_ratio,
                            host.memory_used_mb,
                        )
                    })
                    .collect();
            }
            Column::Disk => {
                table.disk_total_mb = hosts.iter().map(|host| host.disk_total_mb).collect();
                table.disk_used_mb = hosts.iter().map(|host| host.disk_used_mb).collect();
                table.disk_free_mb = hosts
                    .iter()
                    .map(|host| {
                        crate::free_mb(
                            host.disk_total_mb,
                            host.disk_allocation_ratio,
                            host.disk_used_mb,
                        )
                    })
                    .collect();
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
                table.hypervisor_types = strings(&mut interner, |host| &host.hypervisor_type);
                table.hypervisor_versions =
                    hosts.iter().map(|host| host.hypervisor_version).collect();
            }
            Column::Cpu => {
                table.cpu_archs = strings(&mut interner, |host| &host.cpu_arch);
                let (offsets, items) = rows(hosts, |host| {
                    host.cpu_features
                        .iter()
                        .map(|feature| interner.intern(feature))
                        .collect::<Vec<_>>()
                });
                table.cpu_features = RefLists { offsets, items };
            }
            Column::SupportedInstances => {
                let (offsets, items) = rows(hosts, |host| {
                    host.supported_instances
                        .iter()
                        .map(|(arch, hv_type, vm_mode)| SupportedInstance {
                            arch: interner.intern(arch),
                            hv_type: interner.intern(hv_type),
                            vm_mode: interner.intern(vm_mode),
                        })
                        .collect::<Vec<_>>()
                });
                table.supported_instances = SupportedInstanceLists { offsets, items };
            }
            Column::Metrics => {
                let (offsets, items) = rows(hosts, |host| {
                    host.metrics
                        .iter()
                        .map(|(name, value)| Metric {
                            name: interner.intern(name),
                            value: *value,
                        })
                        .collect::<Vec<_>>()
                });
                table.metrics = MetricLists { offsets, items };
            }
            Column::Service => {
                table.service_flags = hosts
                    .iter()
                    .map(|host| crate::service_flags(host.service_up, host.service_disabled))
                    .collect();
            }
            Column::HostIp => table.host_ips = strings(&mut interner, |host| &host.host_ip),
            Column::Instances => {
                let (offsets, items) = rows(hosts, |host| {
                    host.instances
                        .iter()
                        .map(|uuid| interner.intern(uuid))
                        .collect::<Vec<_>>()
                });
                table.instances = RefLists { offsets, items };
            }
            Column::InstanceGroups => {
                let (offsets, items) = rows(hosts, |host| {
                    host.instance_groups
                        .iter()
                        .map(|uuid| interner.intern(uuid))
                        .collect::<Vec<_>>()
                });
                table.instance_groups = RefLists { offsets, items };
            }
            Column::InstanceImageProperties => {
                let (offsets, items) = rows(hosts, |host| {
                    host.instance_image_properties
                        .iter()
                        .map(|(key, value, count)| PropertyCount {
                            key: interner.intern(key),
                            value: interner.intern(value),
                            count: *count,
                        })
                        .collect::<Vec<_>>()
                });
                table.instance_image_properties = PropertyCountLists { offsets, items };
            }
        }
    }
    table.strings = interner.strings;
    table
}

/// Runs filter `F` through [`run_filter`] over `hosts` (built with only
/// `F::needs(config, request)` filled) and returns, per host, `Ok(())` or the reason it was
/// rejected.
pub fn filter_verdicts<F: Filter + Default>(
    config: &Config,
    request: &Request,
    hosts: &[HostSpec],
) -> Vec<Result<(), String>> {
    let needs = F::needs(config, request);
    if let Some(column) = needs.iter().find(|column| !F::NEEDS.contains(column)) {
        panic!("needs() asked for {column:?}, which NEEDS does not declare");
    }
    let table = table(&needs, hosts);
    let outcome = run_filter::<F>(config, request, &table);
    if outcome.verdicts.is_empty() && outcome.reasons.is_empty() {
        return vec![Ok(()); hosts.len()];
    }
    outcome
        .verdicts
        .iter()
        .map(|verdict| match verdict {
            0 => Ok(()),
            n => Err(outcome
                .reasons
                .get(*n as usize - 1)
                .cloned()
                .unwrap_or_default()),
        })
        .collect()
}

/// Like [`filter_verdicts`], reduced to pass (`true`) or reject (`false`).
pub fn filter_passes<F: Filter + Default>(
    config: &Config,
    request: &Request,
    hosts: &[HostSpec],
) -> Vec<bool> {
    filter_verdicts::<F>(config, request, hosts)
        .iter()
        .map(Result::is_ok)
        .collect()
}

/// Whether filter `F` passes the single host `host`.
pub fn passes<F: Filter + Default>(config: &Config, request: &Request, host: &HostSpec) -> bool {
    filter_passes::<F>(config, request, std::slice::from_ref(host)) == [true]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostView;

    #[test]
    fn fills_only_the_needed_columns() {
        let hosts = [
            HostSpec {
                cpu_features: vec!["aes".into()],
                num_instances: 3,
                ..HostSpec::named("a")
            },
            HostSpec {
                cpu_features: vec!["avx".into(), "aes".into()],
                ..HostSpec::named("b")
            },
        ];
        let built = table(&[Column::Name, Column::Cpu], &hosts);
        assert!(built.num_instances.is_empty());
        let second = HostView::new(&built, 1);
        assert_eq!(second.name(), "b");
        assert_eq!(second.cpu_features().collect::<Vec<_>>(), ["avx", "aes"]);
        assert_eq!(built.cpu_features.offsets, [0, 1, 3]);
        let result = std::panic::catch_unwind(|| HostView::new(&built, 0).num_instances());
        assert!(result.is_err(), "an undeclared column must not be readable");
    }

    #[test]
    fn aggregates_are_indexed() {
        let hosts = [
            HostSpec {
                aggregates: vec![aggregate("x", &[("k", "1")])],
                ..HostSpec::named("a")
            },
            HostSpec::named("b"),
            HostSpec {
                aggregates: vec![aggregate("y", &[]), aggregate("z", &[("k", "2")])],
                ..HostSpec::named("c")
            },
        ];
        let built = table(&[Column::Aggregates], &hosts);
        let values: Vec<Vec<&str>> = built
            .hosts()
            .map(|host| host.aggregate_metadata("k").collect())
            .collect();
        assert_eq!(values, [vec!["1"], vec![], vec!["2"]]);
    }
}
