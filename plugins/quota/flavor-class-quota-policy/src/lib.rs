//! Flavor class quota policy: caps how many instances of a class of flavors a
//! project may run, the class being the flavors that carry an extra spec.
//!
//! Configuration:
//! - `extra_spec`: the spec that marks the class, as `key` (e.g.
//!   `resources:VGPU`, `trait:CUSTOM_GPU`) or `key=value` (e.g.
//!   `trait:CUSTOM_GPU=required`). A flavor carries `key=value` when it has that
//!   exact pair; it carries `key` when it has the key with a value other than
//!   `0` or `forbidden` (so `resources:VGPU=0` and `trait:X=forbidden` are not
//!   in the class). Without `extra_spec` the policy allows everything.
//! - `max_instances` (default 0): how many instances of the class a project
//!   may have.
//!
//! A request whose flavor carries the spec adds the `instances` resource's
//! requested count (1 when the request has no `instances` line) to the
//! project's instances of flavors carrying it (summed from
//! `request.flavor_usage`); it is denied when that goes over `max_instances`.
//! Requests without a flavor, or with a flavor outside the class, pass. A
//! resize into the class adds no instance (`instances` requested 0) and passes.

use novum_plugin_sdk::{Config, KeyValue, QuotaDenial, QuotaPolicy, QuotaRequest, lookup};

/// Limits instances of flavors carrying an extra spec.
#[derive(Default)]
pub struct FlavorClassQuotaPolicy;

/// The configured class marker: a key and an optional exact value.
struct Spec<'a> {
    key: &'a str,
    value: Option<&'a str>,
}

impl<'a> Spec<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        let (key, value) = match text.split_once('=') {
            Some((key, value)) => (key.trim(), Some(value.trim())),
            None => (text.trim(), None),
        };
        (!key.is_empty()).then_some(Self { key, value })
    }

    /// Whether a flavor with `extra_specs` carries the spec.
    fn carried_by(&self, extra_specs: &[KeyValue]) -> bool {
        match (lookup(extra_specs, self.key).map(str::trim), self.value) {
            (None, _) => false,
            (Some(found), Some(wanted)) => found == wanted,
            (Some(found), None) => found != "0" && !found.eq_ignore_ascii_case("forbidden"),
        }
    }
}

impl QuotaPolicy for FlavorClassQuotaPolicy {
    const DESCRIPTION: &'static str = "cap a project's instances of flavors carrying an extra spec";

    fn check(&mut self, config: &Config, request: &QuotaRequest) -> Result<(), QuotaDenial> {
        let Some(text) = config.get("extra_spec") else {
            return Ok(());
        };
        let Some(spec) = Spec::parse(text) else {
            return Ok(());
        };
        let Some(flavor) = &request.flavor else {
            return Ok(());
        };
        if !spec.carried_by(&flavor.extra_specs) {
            return Ok(());
        }
        let requested = request
            .resources
            .iter()
            .find(|usage| usage.resource == "instances")
            .map_or(1, |usage| usage.requested.max(0) as u64);
        let in_use: u64 = request
            .flavor_usage
            .iter()
            .filter(|usage| spec.carried_by(&usage.extra_specs))
            .map(|usage| u64::from(usage.count))
            .sum();
        let limit = config.u64_or("max_instances", 0);
        if requested > 0 && in_use + requested > limit {
            return Err(QuotaDenial {
                resource: text.trim().to_string(),
                message: format!(
                    "Quota exceeded for instances of flavors with {text}: Requested {requested}, but already used {in_use} of {limit} instances",
                    text = text.trim(),
                ),
            });
        }
        Ok(())
    }
}

novum_plugin_sdk::export_quota_policy!(FlavorClassQuotaPolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::fixtures::{flavor, pairs, quota_request, usage};
    use novum_plugin_sdk::{FlavorUsage, run_quota_policy};

    const GPU: &[(&str, &str)] = &[("resources:VGPU", "1"), ("trait:CUSTOM_GPU", "required")];

    fn request(
        flavor_specs: &[(&str, &str)],
        requested: Option<i64>,
        usages: &[(&[(&str, &str)], u32)],
    ) -> QuotaRequest {
        let resources = requested
            .map(|count| vec![usage("instances", 3, 10, count)])
            .unwrap_or_default();
        let mut request = quota_request("p1", "create", resources);
        request.flavor = Some(flavor("requested", flavor_specs));
        request.flavor_usage = usages
            .iter()
            .enumerate()
            .map(|(index, (specs, count))| FlavorUsage {
                flavor_name: format!("f{index}"),
                extra_specs: pairs(specs),
                count: *count,
            })
            .collect();
        request
    }

    fn check(config: &[(&str, &str)], request: &QuotaRequest) -> Result<(), QuotaDenial> {
        run_quota_policy(
            &mut FlavorClassQuotaPolicy,
            &Config::from_pairs(config),
            request,
        )
    }

    const VGPU_TWO: &[(&str, &str)] = &[("extra_spec", "resources:VGPU"), ("max_instances", "2")];

    #[test]
    fn denies_when_the_project_already_has_the_maximum() {
        let usages: &[(&[(&str, &str)], u32)] = &[(GPU, 2), (&[], 5)];
        let denial = check(VGPU_TWO, &request(GPU, Some(1), usages)).unwrap_err();
        assert_eq!(denial.resource, "resources:VGPU");
        assert_eq!(
            denial.message,
            "Quota exceeded for instances of flavors with resources:VGPU: Requested 1, but already used 2 of 2 instances"
        );
    }

    #[test]
    fn allows_below_the_maximum_and_counts_multi_creates() {
        let usages: &[(&[(&str, &str)], u32)] = &[(GPU, 1), (&[], 5)];
        assert_eq!(check(VGPU_TWO, &request(GPU, Some(1), usages)), Ok(()));
        assert_eq!(check(VGPU_TWO, &request(GPU, None, usages)), Ok(()));
        assert!(check(VGPU_TWO, &request(GPU, Some(2), usages)).is_err());
    }

    #[test]
    fn flavors_outside_the_class_pass() {
        let usages: &[(&[(&str, &str)], u32)] = &[(GPU, 7)];
        assert_eq!(check(VGPU_TWO, &request(&[], Some(1), usages)), Ok(()));
        assert_eq!(
            check(
                VGPU_TWO,
                &request(&[("resources:VGPU", "0")], Some(1), usages)
            ),
            Ok(())
        );
        let mut no_flavor = request(GPU, Some(1), usages);
        no_flavor.flavor = None;
        assert_eq!(check(VGPU_TWO, &no_flavor), Ok(()));
    }

    #[test]
    fn a_key_value_spec_matches_the_exact_value() {
        let config = [
            ("extra_spec", "trait:CUSTOM_GPU=required"),
            ("max_instances", "1"),
        ];
        let usages: &[(&[(&str, &str)], u32)] =
            &[(&[("trait:CUSTOM_GPU", "forbidden")], 4), (GPU, 1)];
        assert!(check(&config, &request(GPU, Some(1), usages)).is_err());
        let forbidden = [("trait:CUSTOM_GPU", "forbidden")];
        assert_eq!(
            check(&config, &request(&forbidden, Some(1), usages)),
            Ok(())
        );
    }

    #[test]
    fn a_resize_adds_no_instance_and_no_spec_allows_everything() {
        let usages: &[(&[(&str, &str)], u32)] = &[(GPU, 2)];
        assert_eq!(check(VGPU_TWO, &request(GPU, Some(0), usages)), Ok(()));
        assert_eq!(
            check(&[("max_instances", "0")], &request(GPU, Some(1), usages)),
            Ok(())
        );
    }
}
