//! ServerGroupSoftAffinityWeigher (Nova's
//! `nova.scheduler.weights.affinity.ServerGroupSoftAffinityWeigher`).
//!
//! Raw weight: when the request belongs to a server group with policy
//! `soft-affinity`, the number of that group's members already on the host;
//! otherwise 0 for every host. With the default multiplier
//! (`soft_affinity_weight_multiplier`, 1.0) hosts with more members win, so the
//! group packs when it can but, unlike the `affinity` policy, still schedules
//! when it cannot.

use novum_plugin_sdk::weighing::{group_members_on_host, group_needs};
use novum_plugin_sdk::{Column, Config, GroupPolicy, HostView, Request, Weigher};

/// The server group policy this weigher acts on.
pub const POLICY: GroupPolicy = GroupPolicy::SoftAffinity;

/// Nova's ServerGroupSoftAffinityWeigher.
#[derive(Default)]
pub struct ServerGroupSoftAffinityWeigher;

impl Weigher for ServerGroupSoftAffinityWeigher {
    const DESCRIPTION: &'static str =
        "members of the request's soft-affinity group on the host (more is preferred)";
    const NEEDS: &'static [Column] = &[Column::InstanceGroups];

    /// Instance groups only for a request in a SoftAffinity group.
    fn needs(_config: &Config, request: &Request) -> Vec<Column> {
        group_needs(request, POLICY, Self::NEEDS)
    }

    fn weigh(&self, request: &Request, host: &HostView<'_>) -> f64 {
        f64::from(group_members_on_host(request, host, POLICY))
    }
}

novum_plugin_sdk::export_weigher!(ServerGroupSoftAffinityWeigher);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::{HostTable, fixtures::request_in_group, run_weigher};

    fn hosts() -> HostTable {
        HostTable::with_instance_groups(&[&["g1", "g1", "other"], &[], &["g1", "other", "other"]])
    }

    #[test]
    fn counts_group_members_for_soft_affinity() {
        let weights = run_weigher::<ServerGroupSoftAffinityWeigher>(
            &Config::default(),
            &request_in_group("g1", Some(GroupPolicy::SoftAffinity)),
            &hosts(),
        );
        assert_eq!(weights, vec![2.0, 0.0, 1.0]);
    }

    #[test]
    fn zero_without_a_soft_affinity_group() {
        for policy in [
            None,
            Some(GroupPolicy::SoftAntiAffinity),
            Some(GroupPolicy::Affinity),
        ] {
            let weights = run_weigher::<ServerGroupSoftAffinityWeigher>(
                &Config::default(),
                &request_in_group("g1", policy),
                &hosts(),
            );
            assert_eq!(weights, vec![0.0, 0.0, 0.0], "{policy:?}");
        }
    }
}
