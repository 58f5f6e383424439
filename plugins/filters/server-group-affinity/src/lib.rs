//! ServerGroupAffinityFilter: for a request in a server group with the
//! `affinity` policy, passes the hosts where the group's members run; while
//! the group has no hosts yet, every host passes. Requests without a group, or
//! whose group has another policy, pass every host.

use novum_plugin_sdk::{Column, Config, Filter, GroupPolicy, HostView, Request};

/// Nova's ServerGroupAffinityFilter.
#[derive(Default)]
pub struct ServerGroupAffinityFilter;

impl Filter for ServerGroupAffinityFilter {
    const DESCRIPTION: &'static str =
        "host runs the affinity group's members (or the group has none yet)";
    const NEEDS: &'static [Column] = &[Column::Name];

    /// Host names only for a request in an affinity group with hosts.
    fn needs(_config: &Config, request: &Request) -> Vec<Column> {
        match &request.group {
            Some(group) if group.policy == GroupPolicy::Affinity && !group.hosts.is_empty() => {
                Self::NEEDS.to_vec()
            }
            _ => Vec::new(),
        }
    }

    fn host_passes(&self, request: &Request, host: &HostView<'_>) -> Result<(), String> {
        let Some(group) = request
            .group
            .as_ref()
            .filter(|group| group.policy == GroupPolicy::Affinity)
        else {
            return Ok(());
        };
        if group.hosts.is_empty() {
            return Ok(());
        }
        let name = host.name();
        if group.hosts.iter().any(|group_host| group_host == name) {
            Ok(())
        } else {
            Err("host does not run the affinity group's members".to_string())
        }
    }
}

novum_plugin_sdk::export_filter!(ServerGroupAffinityFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::ServerGroup;
    use novum_plugin_sdk::fixtures::request;
    use novum_plugin_sdk::testing::{HostSpec, filter_passes};

    fn group_request(policy: GroupPolicy, hosts: &[&str]) -> Request {
        Request {
            group: Some(ServerGroup {
                id: "g1".into(),
                policy,
                rules: Vec::new(),
                members: Vec::new(),
                hosts: hosts.iter().map(|host| host.to_string()).collect(),
            }),
            ..request()
        }
    }

    fn check(request: &Request) -> Vec<bool> {
        let hosts = [HostSpec::named("host1"), HostSpec::named("host2")];
        filter_passes::<ServerGroupAffinityFilter>(&Config::default(), request, &hosts)
    }

    #[test]
    fn needs_names_only_for_an_affinity_group_with_hosts() {
        let needs =
            |request: &Request| ServerGroupAffinityFilter::needs(&Config::default(), request);
        assert!(needs(&request()).is_empty());
        assert!(needs(&group_request(GroupPolicy::AntiAffinity, &["host1"])).is_empty());
        assert!(needs(&group_request(GroupPolicy::Affinity, &[])).is_empty());
        assert_eq!(
            needs(&group_request(GroupPolicy::Affinity, &["host1"])),
            [Column::Name]
        );
    }

    #[test]
    fn no_group_or_other_policy_passes() {
        assert_eq!(check(&request()), [true, true]);
        assert_eq!(
            check(&group_request(GroupPolicy::AntiAffinity, &["host1"])),
            [true, true]
        );
        assert_eq!(
            check(&group_request(GroupPolicy::SoftAffinity, &["host1"])),
            [true, true]
        );
    }

    #[test]
    fn only_the_group_hosts_pass() {
        assert_eq!(
            check(&group_request(GroupPolicy::Affinity, &["host1"])),
            [true, false]
        );
        assert_eq!(
            check(&group_request(GroupPolicy::Affinity, &["host2", "host3"])),
            [false, true]
        );
    }

    #[test]
    fn group_without_hosts_passes_every_host() {
        assert_eq!(
            check(&group_request(GroupPolicy::Affinity, &[])),
            [true, true]
        );
    }
}
