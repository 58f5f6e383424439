//! ServerGroupSoftAntiAffinityWeigher (Nova's
//! `nova.scheduler.weights.affinity.ServerGroupSoftAntiAffinityWeigher`).
//!
//! Raw weight: when the request belongs to a server group with policy
//! `soft-anti-affinity`, minus the number of that group's members already on
//! the host; otherwise 0 for every host. The sign is Nova's: with the default
//! multiplier (`soft_anti_affinity_weight_multiplier`, 1.0) hosts with fewer
//! members win, so the group spreads when it can but, unlike the
//! `anti-affinity` policy, still schedules when it cannot.

use novum_plugin_sdk::weighing::{group_members_on_host, group_needs};
use novum_plugin_sdk::{Column, Config, GroupPolicy, HostView, Request, Weigher};

/// The server group policy this weigher acts on.
pub const POLICY: GroupPolicy = GroupPolicy::SoftAntiAffinity;

/// Nova's ServerGroupSoftAntiAffinityWeigher.
#[derive(Default)]
pub struct ServerGroupSoftAntiAffinityWeigher;

impl Weigher for ServerGroupSoftAntiAffinityWeigher {
    const DESCRIPTION: &'static str = "minus the members of the request's soft-anti-affinity group on the host (fewer is preferred)";
    const NEEDS: &'static [Column] = &[Column::InstanceGroups];

    /// Instance groups only for a request in a SoftAntiAffinity group.
    fn needs(_config: &Config, request: &Request) -> Vec<Column> {
        group_needs(request, POLICY, Self::NEEDS)
    }

    fn weigh(&self, request: &Request, host: &HostView<'_>) -> f64 {
        -f64::from(group_members_on_host(request, host, POLICY))
    }
}

novum_plugin_sdk::export_weigher!(ServerGroupSoftAntiAffinityWeigher);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::{HostTable, fixtures::request_in_group, run_weigher};

    fn hosts() -> HostTable {
        HostTable::with_instance_groups(&[&["g1", "g1", "other"], &[], &["g1", "other", "other"]])
    }

    #[test]
    fn hosts_with_fewer_members_weigh_more() {
        let weights = run_weigher::<ServerGroupSoftAntiAffinityWeigher>(
            &Config::default(),
            &request_in_group("g1", Some(GroupPolicy::SoftAntiAffinity)),
            &hosts(),
        );
        assert_eq!(weights, vec![-2.0, 0.0, -1.0]);
    }

    #[test]
    fn zero_without_a_soft_anti_affinity_group() {
        for policy in [
            None,
            Some(GroupPolicy::SoftAffinity),
            Some(GroupPolicy::AntiAffinity),
        ] {
            let weights = run_weigher::<ServerGroupSoftAntiAffinityWeigher>(
                &Config::default(),
                &request_in_group("g1", policy),
                &hosts(),
            );
            assert_eq!(weights, vec![0.0, 0.0, 0.0], "{policy:?}");
        }
    }
}
