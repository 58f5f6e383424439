//! Standard quota policy: Nova's quota check.
//!
//! For each resource of the request, in order, the request is denied when the
//! resource is limited (`limit >= 0`; −1 is unlimited), the request asks for
//! more of it (`requested > 0`) and `in_use + requested > limit`. The denial
//! names the first such resource and carries Nova's message, e.g.
//! `Quota exceeded for cores: Requested 4, but already used 18 of 20 cores`.
//! Requests that give a resource back (or leave it unchanged) pass even when
//! the project is already over a lowered limit, as in Nova, which checks only
//! the positive deltas.

use novum_plugin_sdk::{Config, QuotaDenial, QuotaPolicy, QuotaRequest, ResourceUsage};

/// Nova's quota check.
#[derive(Default)]
pub struct StandardQuotaPolicy;

/// Whether `usage` goes over its limit.
fn exceeds(usage: &ResourceUsage) -> bool {
    usage.limit >= 0
        && usage.requested > 0
        && usage.in_use.saturating_add(usage.requested) > usage.limit
}

impl QuotaPolicy for StandardQuotaPolicy {
    const DESCRIPTION: &'static str = "deny requests that would exceed a quota limit";

    fn check(&mut self, _config: &Config, request: &QuotaRequest) -> Result<(), QuotaDenial> {
        match request.resources.iter().find(|usage| exceeds(usage)) {
            None => Ok(()),
            Some(usage) => Err(QuotaDenial {
                resource: usage.resource.clone(),
                message: format!(
                    "Quota exceeded for {resource}: Requested {requested}, but already used {in_use} of {limit} {resource}",
                    resource = usage.resource,
                    requested = usage.requested,
                    in_use = usage.in_use,
                    limit = usage.limit,
                ),
            }),
        }
    }
}

novum_plugin_sdk::export_quota_policy!(StandardQuotaPolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::fixtures::{quota_request, usage};
    use novum_plugin_sdk::run_quota_policy;

    fn check(resources: Vec<ResourceUsage>) -> Result<(), QuotaDenial> {
        run_quota_policy(
            &mut StandardQuotaPolicy,
            &Config::default(),
            &quota_request("p1", "create", resources),
        )
    }

    #[test]
    fn allows_requests_within_limits() {
        let resources = vec![
            usage("instances", 9, 10, 1),
            usage("cores", 16, 20, 4),
            usage("ram", 0, -1, 1_000_000),
        ];
        assert_eq!(check(resources), Ok(()));
    }

    #[test]
    fn denies_the_first_exceeded_resource_with_novas_message() {
        let resources = vec![
            usage("instances", 1, 10, 1),
            usage("cores", 18, 20, 4),
            usage("ram", 0, 10, 512),
        ];
        let denial = check(resources).unwrap_err();
        assert_eq!(denial.resource, "cores");
        assert_eq!(
            denial.message,
            "Quota exceeded for cores: Requested 4, but already used 18 of 20 cores"
        );
    }

    #[test]
    fn exactly_at_the_limit_passes_and_one_more_fails() {
        assert_eq!(check(vec![usage("instances", 9, 10, 1)]), Ok(()));
        assert_eq!(
            check(vec![usage("instances", 10, 10, 1)])
                .unwrap_err()
                .resource,
            "instances"
        );
        assert_eq!(
            check(vec![usage("key_pairs", 0, 0, 1)])
                .unwrap_err()
                .resource,
            "key_pairs"
        );
    }

    #[test]
    fn giving_back_passes_even_over_a_lowered_limit() {
        assert_eq!(check(vec![usage("cores", 30, 20, -4)]), Ok(()));
        assert_eq!(check(vec![usage("cores", 30, 20, 0)]), Ok(()));
    }
}
