//! ComputeCapabilitiesFilter: the flavor's extra specs that name host
//! capabilities must be satisfied by the host.
//!
//! * `capabilities:PATH` specs name a host attribute by its Nova name, nested
//!   with `:` (`capabilities:free_ram_mb`, `capabilities:cpu_info:arch`,
//!   `capabilities:cpu_info:features`, `capabilities:metrics:cpu.percent`);
//!   see `novum_plugin_sdk::host_attributes` for the names. A path the host
//!   cannot resolve rejects it.
//! * Unscoped specs (`free_ram_mb`) are checked the same way when they name a
//!   host attribute, and ignored otherwise.
//! * Specs of other scopes (`hw:`, `aggregate_instance_extra_specs:`, ...)
//!   are ignored, except `hw:maxphysaddr_bits`, which as in Nova demands
//!   `capabilities:cpu_info:maxphysaddr:bits` ≥ the value; hosts do not report
//!   it, so such a flavor is rejected everywhere.
//!
//! The attribute's value, rendered as Python's `str()` would (lists as
//! `['aes', 'avx']`), must satisfy the spec with the extra-spec operators
//! (`>= 1024`, `<in> aes`, `<all-in> aes avx`, `s== x86_64`, `<or> a <or> b`,
//! or plain string equality). Nova's free-form host `stats` are not
//! available.

use novum_plugin_sdk::extra_specs::matches;
use novum_plugin_sdk::host_attributes::{self, COLUMNS};
use novum_plugin_sdk::{Column, Config, Filter, HostView, Request};

/// The scope of capability extra specs.
pub const SCOPE: &str = "capabilities";

/// One capability requirement: an attribute path and the extra-spec value.
#[derive(Clone, Debug, PartialEq)]
struct Requirement {
    path: Vec<String>,
    spec: String,
}

/// Nova's ComputeCapabilitiesFilter.
#[derive(Default)]
pub struct ComputeCapabilitiesFilter {
    requirements: Vec<Requirement>,
}

fn requirement(key: &str, value: &str) -> Option<Requirement> {
    if key == "hw:maxphysaddr_bits" {
        return Some(Requirement {
            path: ["cpu_info", "maxphysaddr", "bits"]
                .map(str::to_string)
                .to_vec(),
            spec: format!(">= {value}"),
        });
    }
    let mut scope: Vec<&str> = key.split(':').collect();
    if scope.len() == 1 {
        if !host_attributes::is_attribute(key) {
            return None;
        }
    } else if scope[0] == SCOPE {
        scope.remove(0);
    } else {
        return None;
    }
    Some(Requirement {
        path: scope.into_iter().map(str::to_string).collect(),
        spec: value.to_string(),
    })
}

impl Filter for ComputeCapabilitiesFilter {
    const DESCRIPTION: &'static str = "flavor extra specs match the host's capabilities";
    const NEEDS: &'static [Column] = COLUMNS;

    /// Only the columns of the attributes the flavor's specs name.
    fn needs(config: &Config, request: &Request) -> Vec<Column> {
        let filter = Self::prepare(config, request);
        host_attributes::columns_for(
            filter
                .requirements
                .iter()
                .filter_map(|requirement| requirement.path.first())
                .map(String::as_str),
        )
    }

    fn prepare(_config: &Config, request: &Request) -> Self {
        let requirements = request
            .flavor
            .extra_specs
            .iter()
            .filter_map(|spec| requirement(&spec.key, &spec.value))
            .collect();
        Self { requirements }
    }

    fn host_passes(&self, _request: &Request, host: &HostView<'_>) -> Result<(), String> {
        for requirement in &self.requirements {
            let path: Vec<&str> = requirement.path.iter().map(String::as_str).collect();
            let Some(value) = host_attributes::lookup(host, &path) else {
                return Err(format!("host has no capability {}", path.join(":")));
            };
            if !matches(&value.to_string(), &requirement.spec) {
                return Err(format!(
                    "capability {} does not match '{}'",
                    path.join(":"),
                    requirement.spec
                ));
            }
        }
        Ok(())
    }
}

novum_plugin_sdk::export_filter!(ComputeCapabilitiesFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::fixtures::{pairs, request};
    use novum_plugin_sdk::testing::{HostSpec, filter_verdicts};

    fn host() -> HostSpec {
        HostSpec {
            memory_total_mb: 2048,
            memory_used_mb: 1024,
            disk_total_mb: 10240,
            disk_used_mb: 10240,
            vcpus_total: 16,
            vcpus_used: 10,
            hypervisor_type: "QEMU".into(),
            hypervisor_version: 8_002_000,
            cpu_arch: "x86_64".into(),
            cpu_features: vec!["aes".into(), "mmx".into(), "aux".into()],
            metrics: vec![("cpu.percent".into(), 0.5)],
            host_ip: "10.0.0.1".into(),
            ..HostSpec::named("host1")
        }
    }

    fn verdict(specs: &[(&str, &str)]) -> Result<(), String> {
        let mut request = request();
        request.flavor.extra_specs = pairs(specs);
        filter_verdicts::<ComputeCapabilitiesFilter>(&Config::default(), &request, &[host()])
            .remove(0)
    }

    fn passes(specs: &[(&str, &str)]) -> bool {
        verdict(specs).is_ok()
    }

    #[test]
    fn no_extra_specs_pass() {
        assert!(passes(&[]));
    }

    fn needs(specs: &[(&str, &str)]) -> Vec<Column> {
        let mut request = request();
        request.flavor.extra_specs = pairs(specs);
        ComputeCapabilitiesFilter::needs(&Config::default(), &request)
    }

    #[test]
    fn needs_only_the_named_attributes() {
        assert!(needs(&[]).is_empty());
        assert!(needs(&[("hw:cpu_policy", "dedicated"), ("XXYY", "1")]).is_empty());
        assert_eq!(
            needs(&[
                ("capabilities:cpu_info:arch", "x86_64"),
                ("free_ram_mb", ">= 1"),
                ("capabilities:metrics:cpu.percent", "<= 1")
            ]),
            [Column::Memory, Column::Cpu, Column::Metrics]
        );
        assert_eq!(needs(&[("hw:maxphysaddr_bits", "42")]), [Column::Cpu]);
        assert!(needs(&[("capabilities:opts", "1")]).is_empty());
    }

    #[test]
    fn unscoped_attribute_names_are_checked() {
        // free_ram_mb is total − used = 1024.
        assert!(passes(&[("free_ram_mb", ">= 300")]));
        assert!(!passes(&[("free_ram_mb", "<= 300")]));
        assert!(passes(&[("vcpus_used", "<= 20")]));
        assert!(!passes(&[("vcpus_used", ">= 20")]));
        assert!(passes(&[("free_disk_mb", "0")]));
        assert!(!passes(&[("free_disk_mb", "1")]));
    }

    #[test]
    fn scoped_capabilities() {
        assert!(passes(&[("capabilities:hypervisor_type", "QEMU")]));
        assert!(passes(&[("capabilities:hypervisor_type", "s== QEMU")]));
        assert!(!passes(&[("capabilities:hypervisor_type", "kvm")]));
        assert!(passes(&[("capabilities:hypervisor_version", ">= 8000000")]));
        assert!(passes(&[("capabilities:cpu_info:arch", "x86_64")]));
        assert!(passes(&[(
            "capabilities:cpu_info:arch",
            "<or> aarch64 <or> x86_64"
        )]));
        assert!(passes(&[("capabilities:metrics:cpu.percent", "<= 0.5")]));
        assert!(passes(&[
            ("capabilities:host_ip", "10.0.0.1"),
            ("capabilities:vcpus_total", "= 16")
        ]));
    }

    #[test]
    fn cpu_features_render_like_python_lists() {
        assert!(passes(&[(
            "capabilities:cpu_info:features",
            "<all-in> aes mmx"
        )]));
        assert!(passes(&[("capabilities:cpu_info:features", "<in> aux")]));
        assert!(!passes(&[(
            "capabilities:cpu_info:features",
            "<all-in> txt aes"
        )]));
    }

    #[test]
    fn unknown_capability_rejects() {
        assert_eq!(
            verdict(&[("capabilities:cpu_info:vendor", "Intel")]),
            Err("host has no capability cpu_info:vendor".to_string())
        );
        assert!(!passes(&[("capabilities:opts", "1")]));
        assert!(!passes(&[("capabilities:metrics:missing", ">= 0")]));
        assert!(!passes(&[("capabilities:free_ram_mb:deeper", "1")]));
    }

    #[test]
    fn self_defined_and_other_scopes_are_ignored() {
        assert!(passes(&[("XXYY", "1")]));
        assert!(passes(&[("wrong_scope:opt1", "1")]));
        assert!(passes(&[("hw:cpu_policy", "dedicated")]));
        assert!(passes(&[("capabilities", "1")]));
    }

    #[test]
    fn every_requirement_must_hold() {
        assert!(!passes(&[
            ("free_ram_mb", ">= 300"),
            ("capabilities:cpu_info:arch", "aarch64")
        ]));
    }

    #[test]
    fn maxphysaddr_bits_needs_a_host_report() {
        assert!(!passes(&[("hw:maxphysaddr_bits", "42")]));
    }

    #[test]
    fn cpu_info_as_a_whole() {
        assert!(!passes(&[("cpu_info", "")]));
        assert!(passes(&[(
            "capabilities:cpu_info",
            "<in> 'arch': 'x86_64'"
        )]));
    }
}
