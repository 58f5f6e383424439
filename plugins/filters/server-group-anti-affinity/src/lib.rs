//! ServerGroupAntiAffinityFilter: for a request in a server group with the
//! `anti-affinity` policy, passes hosts running fewer than
//! `max_server_per_host` members of that group (group rule; default 1, also
//! when the rule is not a positive integer). Requests without a group, or
//! whose group has another policy, pass every host.
//!
//! Members on a host are counted from the host's `instance-groups` column:
//! the entries equal to the request group's id.
//!
//! Unlike Nova, a host already running the instance being scheduled is not
//! passed unconditionally (that would need the `instances` column too).

use novum_plugin_sdk::weighing::{group_members_on_host, group_needs};
use novum_plugin_sdk::{Column, Config, Filter, GroupPolicy, HostView, Request};

/// Nova's ServerGroupAntiAffinityFilter.
#[derive(Default)]
pub struct ServerGroupAntiAffinityFilter;

/// The default `max_server_per_host`.
pub const DEFAULT_MAX_SERVER_PER_HOST: usize = 1;

impl Filter for ServerGroupAntiAffinityFilter {
    const DESCRIPTION: &'static str =
        "fewer than max_server_per_host members of the anti-affinity group on the host";
    const NEEDS: &'static [Column] = &[Column::InstanceGroups];

    /// Instance groups only for a request in an anti-affinity group.
    fn needs(_config: &Config, request: &Request) -> Vec<Column> {
        group_needs(request, GroupPolicy::AntiAffinity, Self::NEEDS)
    }

    fn host_passes(&self, request: &Request, host: &HostView<'_>) -> Result<(), String> {
        let Some(group) = request
            .group
            .as_ref()
            .filter(|group| group.policy == GroupPolicy::AntiAffinity)
        else {
            return Ok(());
        };
        let max_per_host = group
            .rule("max_server_per_host")
            .and_then(|value| value.trim().parse::<usize>().ok())
            .filter(|max| *max > 0)
            .unwrap_or(DEFAULT_MAX_SERVER_PER_HOST);
        let on_host = group_members_on_host(request, host, GroupPolicy::AntiAffinity) as usize;
        if on_host < max_per_host {
            Ok(())
        } else {
            Err(format!(
                "host already runs {on_host} member(s) of anti-affinity group (max {max_per_host} per host)"
            ))
        }
    }
}

novum_plugin_sdk::export_filter!(ServerGroupAntiAffinityFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::ServerGroup;
    use novum_plugin_sdk::fixtures::{pairs, request};
    use novum_plugin_sdk::testing::{HostSpec, filter_passes};

    fn group_request(policy: GroupPolicy, rules: &[(&str, &str)]) -> Request {
        Request {
            group: Some(ServerGroup {
                id: "g1".into(),
                policy,
                rules: pairs(rules),
                members: vec!["i1".into(), "i2".into()],
                hosts: vec!["host1".into()],
            }),
            ..request()
        }
    }

    fn host_with_groups(groups: &[&str]) -> HostSpec {
        HostSpec {
            instance_groups: groups.iter().map(|g| g.to_string()).collect(),
            ..HostSpec::named("host1")
        }
    }

    fn check(request: &Request, groups_per_host: &[&[&str]]) -> Vec<bool> {
        let hosts: Vec<HostSpec> = groups_per_host
            .iter()
            .map(|groups| host_with_groups(groups))
            .collect();
        filter_passes::<ServerGroupAntiAffinityFilter>(&Config::default(), request, &hosts)
    }

    #[test]
    fn no_group_or_other_policy_passes() {
        assert_eq!(check(&request(), &[&["g1"]]), [true]);
        assert_eq!(
            check(&group_request(GroupPolicy::Affinity, &[]), &[&["g1"]]),
            [true]
        );
        assert_eq!(
            check(
                &group_request(GroupPolicy::SoftAntiAffinity, &[]),
                &[&["g1"]]
            ),
            [true]
        );
    }

    #[test]
    fn default_is_one_member_per_host() {
        let request = group_request(GroupPolicy::AntiAffinity, &[]);
        assert_eq!(
            check(&request, &[&[], &["g1"], &["other", "other"]]),
            [true, false, true]
        );
    }

    #[test]
    fn max_server_per_host_rule() {
        let two = group_request(GroupPolicy::AntiAffinity, &[("max_server_per_host", "2")]);
        assert_eq!(
            check(&two, &[&["g1"], &["g1", "g1"], &["g1", "x", "x"]]),
            [true, false, true]
        );
        let one = group_request(GroupPolicy::AntiAffinity, &[("max_server_per_host", "1")]);
        assert_eq!(check(&one, &[&["g1"], &[]]), [false, true]);
    }

    #[test]
    fn invalid_rule_falls_back_to_one() {
        for value in ["0", "-2", "many", ""] {
            let request =
                group_request(GroupPolicy::AntiAffinity, &[("max_server_per_host", value)]);
            assert_eq!(check(&request, &[&["g1"], &[]]), [false, true], "{value:?}");
        }
    }
}
