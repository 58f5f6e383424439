//! Seeded random clouds and requests, for the equivalence property test and
//! the benchmark: capacities, aggregates with availability zones and weight
//! multipliers, server groups, failed builds, disabled and down services,
//! metrics, image properties. The same seed always yields the same cloud.

use novum_plugin_sdk::{Flavor, GroupPolicy, Image, KeyValue, Request, SchedulerHint, ServerGroup};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::state::{
    Aggregate, CloudSnapshot, DEFAULT_AVAILABILITY_ZONE, HostState, InstanceOnHost,
    SchedulingRequest,
};

const ZONES: &[&str] = &["az1", "az2", "az3"];
const GROUPS: &[&str] = &[
    "0b7b1a52-0000-4000-8000-000000000001",
    "0b7b1a52-0000-4000-8000-000000000002",
    "0b7b1a52-0000-4000-8000-000000000003",
];
const FEATURES: &[&str] = &["sse4.2", "avx", "avx2", "aes", "vmx", "pdpe1gb"];
const MULTIPLIER_KEYS: &[&str] = &[
    "ram_weight_multiplier",
    "cpu_weight_multiplier",
    "disk_weight_multiplier",
    "io_ops_weight_multiplier",
    "build_failure_weight_multiplier",
    "soft_affinity_weight_multiplier",
];
const METRICS: &[&str] = &["cpu.percent", "cpu.frequency"];
const OS_TYPES: &[&str] = &["linux", "windows"];

fn uuid(rng: &mut StdRng) -> String {
    uuid::Uuid::from_u128(rng.random::<u128>()).to_string()
}

fn pick<'a>(rng: &mut StdRng, items: &'a [&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: value.to_string(),
    }
}

/// A cloud of `hosts` hosts generated from `seed`.
pub fn cloud(seed: u64, hosts: usize) -> CloudSnapshot {
    let mut rng = StdRng::seed_from_u64(seed);
    let aggregate_count = (hosts / 40).clamp(2, 24);
    let aggregates: Vec<Aggregate> = (0..aggregate_count)
        .map(|index| {
            let mut metadata = Vec::new();
            if index < ZONES.len() && rng.random_bool(0.8) {
                metadata.push(("availability_zone".to_string(), ZONES[index].to_string()));
            }
            if rng.random_bool(0.5) {
                let key = pick(&mut rng, MULTIPLIER_KEYS);
                let value = f64::from(rng.random_range(-20..=30_i32)) / 10.0;
                metadata.push((key.to_string(), value.to_string()));
            }
            if rng.random_bool(0.2) {
                metadata.push(("ssd".to_string(), "true".to_string()));
            }
            Aggregate {
                id: index as u32 + 1,
                name: format!("agg-{index}"),
                metadata,
            }
        })
        .collect();

    let hosts: Vec<HostState> = (0..hosts)
        .map(|index| {
            let mut member_of: Vec<u32> = Vec::new();
            for aggregate in &aggregates {
                if rng.random_bool(1.5 / aggregate_count as f64) {
                    member_of.push(aggregate.id);
                }
            }
            let availability_zone = member_of
                .iter()
                .filter_map(|id| aggregates.iter().find(|aggregate| aggregate.id == *id))
                .find_map(|aggregate| aggregate.metadata("availability_zone"))
                .unwrap_or(DEFAULT_AVAILABILITY_ZONE)
                .to_string();
            let memory_total_mb = [16_384_i64, 32_768, 65_536, 131_072][rng.random_range(0..4)];
            let disk_total_mb = [256_000_i64, 512_000, 1_024_000][rng.random_range(0..3)];
            let vcpus_total = [8_u32, 16, 32, 64][rng.random_range(0..4)];
            let listed = rng.random_range(0..4_usize);
            let instances: Vec<InstanceOnHost> = (0..listed)
                .map(|_| InstanceOnHost {
                    uuid: uuid(&mut rng),
                    server_group: rng
                        .random_bool(0.3)
                        .then(|| pick(&mut rng, GROUPS).to_string()),
                    image_properties: vec![(
                        "os_type".to_string(),
                        pick(&mut rng, OS_TYPES).to_string(),
                    )],
                })
                .collect();
            let mut metrics = Vec::new();
            for name in METRICS {
                if rng.random_bool(0.9) {
                    metrics.push(((*name).to_string(), f64::from(rng.random_range(0..100_u32))));
                }
            }
            let arch = if rng.random_bool(0.9) {
                "x86_64"
            } else {
                "aarch64"
            };
            HostState {
                name: format!("host-{index:05}"),
                uuid: uuid(&mut rng),
                availability_zone,
                aggregates: member_of,
                memory_total_mb,
                memory_used_mb: rng.random_range(0..memory_total_mb),
                disk_total_mb,
                disk_used_mb: rng.random_range(0..disk_total_mb),
                vcpus_total,
                vcpus_used: rng.random_range(0..vcpus_total * 2),
                cpu_allocation_ratio: [1.0, 4.0, 16.0][rng.random_range(0..3)],
                ram_allocation_ratio: [1.0, 1.5][rng.random_range(0..2)],
                disk_allocation_ratio: 1.0,
                num_instances: listed as u32 + rng.random_range(0..20),
                num_io_ops: rng.random_range(0..10),
                failed_builds: if rng.random_bool(0.1) {
                    rng.random_range(1..4)
                } else {
                    0
                },
                hypervisor_type: "QEMU".to_string(),
                hypervisor_version: [6_002_000_u64, 7_002_000, 8_000_000][rng.random_range(0..3)],
                cpu_arch: arch.to_string(),
                cpu_features: FEATURES
                    .iter()
                    .filter(|_| rng.random_bool(0.6))
                    .map(|f| (*f).to_string())
                    .collect(),
                supported_instances: vec![(
                    arch.to_string(),
                    "qemu".to_string(),
                    "hvm".to_string(),
                )],
                metrics,
                service_up: rng.random_bool(0.95),
                service_disabled: rng.random_bool(0.05),
                host_ip: format!(
                    "10.{}.{}.{}",
                    (index >> 16) & 255,
                    (index >> 8) & 255,
                    index & 255
                ),
                instances,
            }
        })
        .collect();
    CloudSnapshot::new(hosts, aggregates)
}

/// Caps every server group of `cloud` at `members` instances: instances past
/// the cap (in host order) leave their group. Nova's default
/// `server_group_members` quota is 10, while the uncapped synthetic cloud puts
/// some 15 % of all instances in each of its three groups.
pub fn cap_group_members(cloud: &CloudSnapshot, members: usize) -> CloudSnapshot {
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut hosts = cloud.host_states();
    for instance in hosts.iter_mut().flat_map(|host| host.instances.iter_mut()) {
        let Some(group) = &instance.server_group else {
            continue;
        };
        let position = match seen.iter().position(|(id, _)| id == group) {
            Some(position) => position,
            None => {
                seen.push((group.clone(), 0));
                seen.len() - 1
            }
        };
        let count = &mut seen[position].1;
        if *count < members {
            *count += 1;
        } else {
            instance.server_group = None;
        }
    }
    CloudSnapshot::new(hosts, cloud.aggregates().to_vec())
}

/// A request generated from `seed` for `cloud` (it may name groups and hosts
/// of the cloud).
pub fn request(seed: u64, cloud: &CloudSnapshot) -> SchedulingRequest {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_5eed);
    let mut extra_specs = Vec::new();
    if rng.random_bool(0.2) {
        extra_specs.push(kv(
            "capabilities:cpu_arch",
            if rng.random_bool(0.8) {
                "x86_64"
            } else {
                "aarch64"
            },
        ));
    }
    let mut properties = vec![kv("os_type", pick(&mut rng, OS_TYPES))];
    if rng.random_bool(0.3) {
        properties.push(kv(
            "hw_architecture",
            if rng.random_bool(0.8) {
                "x86_64"
            } else {
                "aarch64"
            },
        ));
    }
    let num_instances = if rng.random_bool(0.2) {
        rng.random_range(2..4)
    } else {
        1
    };
    let group = rng.random_bool(0.3).then(|| {
        let id = pick(&mut rng, GROUPS).to_string();
        let hosts: Vec<String> = cloud
            .hosts()
            .iter()
            .filter(|host| {
                host.instances
                    .iter()
                    .any(|instance| instance.server_group.as_deref() == Some(&id))
            })
            .map(|host| host.name.clone())
            .collect();
        let members = cloud
            .hosts()
            .iter()
            .flat_map(|host| host.instances.iter())
            .filter(|instance| instance.server_group.as_deref() == Some(&id))
            .map(|instance| instance.uuid.clone())
            .collect();
        let policy = [
            GroupPolicy::Affinity,
            GroupPolicy::AntiAffinity,
            GroupPolicy::SoftAffinity,
            GroupPolicy::SoftAntiAffinity,
        ][rng.random_range(0..4)];
        ServerGroup {
            id,
            policy,
            rules: Vec::new(),
            members,
            hosts,
        }
    });
    let mut scheduler_hints = Vec::new();
    if let Some(group) = &group {
        scheduler_hints.push(SchedulerHint {
            name: "group".to_string(),
            values: vec![group.id.clone()],
        });
    }
    let request = Request {
        flavor: Flavor {
            id: "flavor".to_string(),
            name: ["m1.small", "m1.medium", "m1.large"][rng.random_range(0..3)].to_string(),
            vcpus: [1_u32, 2, 4, 8][rng.random_range(0..4)],
            memory_mb: [512_u64, 2048, 4096, 16_384][rng.random_range(0..4)],
            root_gb: [1_u64, 20, 40][rng.random_range(0..3)],
            ephemeral_gb: 0,
            swap_mb: 0,
            extra_specs,
        },
        image: Image {
            id: uuid(&mut rng),
            properties,
        },
        project_id: "project".to_string(),
        user_id: "user".to_string(),
        availability_zone: rng
            .random_bool(0.3)
            .then(|| pick(&mut rng, ZONES).to_string()),
        num_instances,
        scheduler_hints,
        group,
        instance_uuids: (0..num_instances).map(|_| uuid(&mut rng)).collect(),
    };
    let mut scheduling = SchedulingRequest::new(format!("req-{seed}"), request);
    let len = cloud.hosts().len();
    if len > 0 && rng.random_bool(0.1) {
        scheduling
            .ignore_hosts
            .push(cloud.hosts()[rng.random_range(0..len)].name.clone());
    }
    if len > 0 && rng.random_bool(0.05) {
        scheduling
            .force_hosts
            .push(cloud.hosts()[rng.random_range(0..len)].name.clone());
    }
    scheduling
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_groups_have_at_most_the_cap() {
        let big = cloud(42, 2000);
        let members = |cloud: &CloudSnapshot, group: &str| {
            cloud
                .hosts()
                .iter()
                .flat_map(|host| host.instances.iter())
                .filter(|instance| instance.server_group.as_deref() == Some(group))
                .count()
        };
        assert!(members(&big, GROUPS[0]) > 100);
        let capped = cap_group_members(&big, 10);
        for group in GROUPS {
            assert_eq!(members(&capped, group), 10);
        }
        assert_eq!(capped.hosts().len(), big.hosts().len());
    }

    #[test]
    fn same_seed_same_cloud() {
        let first = cloud(7, 50);
        let second = cloud(7, 50);
        assert_eq!(first.hosts(), second.hosts());
        assert_eq!(first.aggregates(), second.aggregates());
        assert_ne!(cloud(8, 50).hosts(), first.hosts());
        let request = request(7, &first);
        assert_eq!(
            request.request.instance_uuids.len(),
            request.request.num_instances as usize
        );
    }
}
