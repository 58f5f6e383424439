//! AggregateInstanceExtraSpecsFilter: the flavor's extra specs must match the
//! metadata of the host's aggregates.
//!
//! Considered specs are the unscoped ones (`ssd`) and those scoped
//! `aggregate_instance_extra_specs:` (`aggregate_instance_extra_specs:ssd`);
//! other scopes (`hw:`, `capabilities:`, ...) are ignored. For each, the host's
//! aggregates must have the key (values of all aggregates united, comma
//! separated values split) and one of its values must satisfy the spec with
//! the extra-spec operators (`<in>`, `>=`, `<or>`, ...). A flavor without
//! extra specs passes every host.

use novum_plugin_sdk::aggregate_metadata::merged;
use novum_plugin_sdk::extra_specs::matches;
use novum_plugin_sdk::{Column, Config, Filter, HostView, Request};

/// The extra-spec scope of this filter.
pub const SCOPE: &str = "aggregate_instance_extra_specs";

/// Nova's AggregateInstanceExtraSpecsFilter.
#[derive(Default)]
pub struct AggregateInstanceExtraSpecsFilter;

/// The aggregate metadata key an extra spec applies to, if it concerns this filter.
fn metadata_key(spec_key: &str) -> Option<&str> {
    match spec_key.split_once(':') {
        None => Some(spec_key),
        Some((SCOPE, key)) => Some(key),
        Some(_) => None,
    }
}

/// Whether any of the flavor's extra specs concerns this filter.
fn considers_specs(request: &Request) -> bool {
    request
        .flavor
        .extra_specs
        .iter()
        .any(|spec| metadata_key(&spec.key).is_some())
}

impl Filter for AggregateInstanceExtraSpecsFilter {
    const DESCRIPTION: &'static str = "flavor extra specs match the host's aggregate metadata";
    const NEEDS: &'static [Column] = &[Column::Aggregates];

    /// Aggregates only when an extra spec concerns them.
    fn needs(_config: &Config, request: &Request) -> Vec<Column> {
        if considers_specs(request) {
            Self::NEEDS.to_vec()
        } else {
            Vec::new()
        }
    }

    fn host_passes(&self, request: &Request, host: &HostView<'_>) -> Result<(), String> {
        let specs = &request.flavor.extra_specs;
        if !considers_specs(request) {
            return Ok(());
        }
        let metadata = merged(host);
        for spec in specs {
            let Some(key) = metadata_key(&spec.key) else {
                continue;
            };
            let Some(values) = metadata.get(key).filter(|values| !values.is_empty()) else {
                return Err(format!("no aggregate of the host sets {key}"));
            };
            if !values.iter().any(|value| matches(value, &spec.value)) {
                return Err(format!(
                    "aggregate metadata {key} does not match '{}'",
                    spec.value
                ));
            }
        }
        Ok(())
    }
}

novum_plugin_sdk::export_filter!(AggregateInstanceExtraSpecsFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::Config;
    use novum_plugin_sdk::fixtures::{pairs, request};
    use novum_plugin_sdk::testing::{HostSpec, aggregate, filter_passes, filter_verdicts};

    fn with_specs(specs: &[(&str, &str)]) -> Request {
        let mut request = request();
        request.flavor.extra_specs = pairs(specs);
        request
    }

    fn host(aggregates: &[&[(&str, &str)]]) -> HostSpec {
        HostSpec {
            aggregates: aggregates
                .iter()
                .map(|metadata| aggregate("agg", metadata))
                .collect(),
            ..HostSpec::named("h")
        }
    }

    fn passes(specs: &[(&str, &str)], aggregates: &[&[(&str, &str)]]) -> bool {
        filter_passes::<AggregateInstanceExtraSpecsFilter>(
            &Config::default(),
            &with_specs(specs),
            &[host(aggregates)],
        ) == [true]
    }

    #[test]
    fn no_extra_specs_pass_even_without_aggregates() {
        assert!(passes(&[], &[]));
        assert!(passes(&[], &[&[("opt1", "1")]]));
    }

    #[test]
    fn unscoped_and_scoped_specs_match() {
        let aggregates: &[&[(&str, &str)]] = &[&[("opt1", "1"), ("opt2", "2")]];
        assert!(passes(
            &[("opt1", "1"), ("aggregate_instance_extra_specs:opt2", "2")],
            aggregates
        ));
        assert!(!passes(&[("opt1", "1"), ("opt2", "222")], aggregates));
    }

    #[test]
    fn comma_separated_values_and_several_aggregates() {
        assert!(passes(
            &[("opt1", "1"), ("aggregate_instance_extra_specs:opt1", "3")],
            &[&[("opt1", "1,3")], &[("opt2", "2")]]
        ));
        assert!(passes(
            &[("opt1", "3")],
            &[&[("opt1", "1")], &[("opt1", "3")]]
        ));
    }

    #[test]
    fn key_same_as_scope() {
        assert!(passes(
            &[("aggregate_instance_extra_specs", "1")],
            &[&[("aggregate_instance_extra_specs", "1")]]
        ));
    }

    #[test]
    fn other_scopes_are_ignored() {
        assert!(passes(
            &[("hw:cpu_policy", "dedicated"), ("capabilities:opt", "1")],
            &[]
        ));
    }

    #[test]
    fn missing_key_rejects() {
        let verdicts = filter_verdicts::<AggregateInstanceExtraSpecsFilter>(
            &Config::default(),
            &with_specs(&[("ssd", "true")]),
            &[host(&[&[("other", "x")]]), host(&[])],
        );
        let missing = Err("no aggregate of the host sets ssd".to_string());
        assert_eq!(verdicts, [missing.clone(), missing]);
    }

    #[test]
    fn operators_apply() {
        let aggregates: &[&[(&str, &str)]] = &[&[("speed", "10"), ("kind", "gold")]];
        assert!(passes(
            &[("speed", ">= 5"), ("kind", "<or> silver <or> gold")],
            aggregates
        ));
        assert!(!passes(&[("speed", ">= 11")], aggregates));
        assert!(passes(
            &[("aggregate_instance_extra_specs:kind", "s== gold")],
            aggregates
        ));
    }
}
