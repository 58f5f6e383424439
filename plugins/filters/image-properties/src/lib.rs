//! ImagePropertiesFilter: passes hosts that can run the image, judged by its
//! properties `hw_architecture`, `img_hv_type`, `hw_vm_mode` and
//! `img_hv_requested_version`.
//!
//! An image naming none of the first three passes every host. Otherwise one
//! of the host's supported (architecture, hypervisor type, VM mode) triples
//! must match every property the image names, and when both the image asks
//! for a hypervisor version (e.g. `>=6.0,<6.2`) and the host reports one, the
//! host's version must satisfy it. A host advertising no supported instances
//! is rejected.
//!
//! Names are canonicalized as in Nova: lower case; architectures `i386`,
//! `i486`, `i586`, `x86_32`, `x86_32p` are `i686` and `amd64` is `x86_64`;
//! hypervisor type `xapi` is `xen`; VM modes `pv` is `xen`, `hv` and
//! `baremetal` are `hvm`.
//!
//! Configuration: `image_properties_default_architecture` (unset by default),
//! the architecture assumed for images without `hw_architecture`.
//!
//! Nova's `hw_maxphysaddr_bits` check is not made: hosts do not report it.

use novum_plugin_sdk::{Column, Config, Filter, HostView, Request};

/// Canonical architecture name.
pub fn canonical_arch(name: &str) -> String {
    let name = name.to_lowercase();
    match name.as_str() {
        "i386" | "i486" | "i586" | "x86_32" | "x86_32p" => "i686".to_string(),
        "amd64" => "x86_64".to_string(),
        _ => name,
    }
}

/// Canonical hypervisor type name.
pub fn canonical_hv_type(name: &str) -> String {
    let name = name.to_lowercase();
    if name == "xapi" {
        "xen".to_string()
    } else {
        name
    }
}

/// Canonical VM mode name.
pub fn canonical_vm_mode(name: &str) -> String {
    let name = name.to_lowercase();
    match name.as_str() {
        "pv" => "xen".to_string(),
        "hv" | "baremetal" => "hvm".to_string(),
        _ => name,
    }
}

/// A version as its numeric parts (`6.0.1` is `[6, 0, 1]`); a trailing
/// pre-release tag (`1.2rc1`) is dropped as in oslo.
fn version_parts(text: &str) -> Option<Vec<u64>> {
    let text = text.trim();
    let text = ["alpha", "beta", "rc", "a", "b"]
        .iter()
        .find_map(|tag| {
            let (head, tail) = text.rsplit_once(tag)?;
            let numbered = !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit());
            (numbered && head.ends_with(|c: char| c.is_ascii_digit())).then_some(head)
        })
        .unwrap_or(text);
    text.split('.').map(|part| part.parse().ok()).collect()
}

/// Nova's integer hypervisor version (major × 1,000,000 + minor × 1,000 +
/// micro) as version parts, most significant first.
pub fn hypervisor_version_parts(mut version: u64) -> Vec<u64> {
    let mut parts = Vec::new();
    while version != 0 {
        parts.insert(0, version % 1000);
        version /= 1000;
    }
    parts
}

/// Whether `version` satisfies a comma separated predicate such as
/// `>=6.0,<6.2` (operators `<`, `<=`, `>`, `>=`, `==`, `!=`). Versions compare
/// part by part; a shorter version sorts before a longer one it prefixes, as
/// Python tuples do. A malformed predicate is an error.
pub fn version_satisfies(version: &[u64], predicate: &str) -> Result<bool, String> {
    let mut satisfied = true;
    for condition in predicate.split(',') {
        let condition = condition.trim();
        let operator_len = condition
            .find(|c: char| !"<>=!".contains(c))
            .unwrap_or(condition.len());
        let (operator, wanted) = condition.split_at(operator_len);
        let wanted = version_parts(wanted)
            .filter(|_| !wanted.trim().is_empty() && !wanted.trim().contains(' '));
        let Some(wanted) = wanted else {
            return Err(format!("invalid version predicate {predicate:?}"));
        };
        let ordering = version.cmp(wanted.as_slice());
        satisfied &= match operator {
            "<" => ordering.is_lt(),
            "<=" => ordering.is_le(),
            ">" => ordering.is_gt(),
            ">=" => ordering.is_ge(),
            "==" => ordering.is_eq(),
            "!=" => ordering.is_ne(),
            _ => return Err(format!("invalid version predicate {predicate:?}")),
        };
    }
    Ok(satisfied)
}

/// Nova's ImagePropertiesFilter.
#[derive(Default)]
pub struct ImagePropertiesFilter {
    arch: Option<String>,
    hv_type: Option<String>,
    vm_mode: Option<String>,
    requested_version: Option<String>,
}

impl Filter for ImagePropertiesFilter {
    const DESCRIPTION: &'static str =
        "host supports the image's architecture, hypervisor type, VM mode and version";
    const NEEDS: &'static [Column] = &[Column::SupportedInstances, Column::Hypervisor];

    /// Nothing for an image naming no architecture, hypervisor type or VM
    /// mode; the hypervisor only when the image asks for a version.
    fn needs(config: &Config, request: &Request) -> Vec<Column> {
        let filter = Self::prepare(config, request);
        if filter.arch.is_none() && filter.hv_type.is_none() && filter.vm_mode.is_none() {
            return Vec::new();
        }
        let mut needs = vec![Column::SupportedInstances];
        if filter.requested_version.is_some() {
            needs.push(Column::Hypervisor);
        }
        needs
    }

    fn prepare(config: &Config, request: &Request) -> Self {
        let property = |key: &str| {
            request
                .image_property(key)
                .filter(|value| !value.is_empty())
        };
        let arch = property("hw_architecture").or_else(|| {
            config
                .get("image_properties_default_architecture")
                .filter(|value| !value.is_empty())
        });
        Self {
            arch: arch.map(canonical_arch),
            hv_type: property("img_hv_type").map(canonical_hv_type),
            vm_mode: property("hw_vm_mode").map(canonical_vm_mode),
            requested_version: property("img_hv_requested_version").map(str::to_string),
        }
    }

    fn host_passes(&self, _request: &Request, host: &HostView<'_>) -> Result<(), String> {
        if self.arch.is_none() && self.hv_type.is_none() && self.vm_mode.is_none() {
            return Ok(());
        }
        let wanted = |wanted: &Option<String>, offered: &str| {
            wanted
                .as_ref()
                .is_none_or(|w| w.eq_ignore_ascii_case(offered))
        };
        let triple_matches = host.supported_instances().any(|(arch, hv_type, vm_mode)| {
            wanted(&self.arch, arch)
                && wanted(&self.hv_type, hv_type)
                && wanted(&self.vm_mode, vm_mode)
        });
        if !triple_matches {
            return Err(
                "host does not support the image's architecture, hypervisor type or VM mode"
                    .to_string(),
            );
        }
        let Some(predicate) = &self.requested_version else {
            return Ok(());
        };
        match host.hypervisor_version() {
            0 => Ok(()),
            version => {
                if version_satisfies(&hypervisor_version_parts(version), predicate)? {
                    Ok(())
                } else {
                    Err(format!("hypervisor version does not satisfy {predicate}"))
                }
            }
        }
    }
}

novum_plugin_sdk::export_filter!(ImagePropertiesFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::fixtures::{pairs, request};
    use novum_plugin_sdk::testing::{HostSpec, filter_passes};

    const V6_0_0: u64 = 6_000_000;

    #[test]
    fn needs_follow_the_image_properties() {
        let needs = |properties: &[(&str, &str)], config: &Config| {
            let mut wanting = request();
            wanting.image.properties = pairs(properties);
            ImagePropertiesFilter::needs(config, &wanting)
        };
        let none = Config::default();
        assert!(needs(&[], &none).is_empty());
        assert!(needs(&[("img_hv_requested_version", ">=6.0")], &none).is_empty());
        assert_eq!(
            needs(&[("hw_architecture", "x86_64")], &none),
            [Column::SupportedInstances]
        );
        assert_eq!(
            needs(
                &[("hw_vm_mode", "hvm"), ("img_hv_requested_version", ">=6.0")],
                &none
            ),
            [Column::SupportedInstances, Column::Hypervisor]
        );
        let default_arch =
            Config::from_pairs(&[("image_properties_default_architecture", "x86_64")]);
        assert_eq!(needs(&[], &default_arch), [Column::SupportedInstances]);
    }

    fn host(triples: &[(&str, &str, &str)], version: u64) -> HostSpec {
        HostSpec {
            supported_instances: triples
                .iter()
                .map(|(a, h, v)| (a.to_string(), h.to_string(), v.to_string()))
                .collect(),
            hypervisor_version: version,
            ..HostSpec::named("host1")
        }
    }

    fn passes_with(config: &Config, properties: &[(&str, &str)], host: HostSpec) -> bool {
        let mut request = request();
        request.image.properties = pairs(properties);
        filter_passes::<ImagePropertiesFilter>(config, &request, &[host]) == [true]
    }

    fn passes(properties: &[(&str, &str)], host: HostSpec) -> bool {
        passes_with(&Config::default(), properties, host)
    }

    const KVM: &[(&str, &str, &str)] = &[("x86_64", "kvm", "hvm")];
    const FULL: &[(&str, &str)] = &[
        ("hw_architecture", "x86_64"),
        ("img_hv_type", "kvm"),
        ("hw_vm_mode", "hvm"),
    ];

    #[test]
    fn same_properties_and_version_pass() {
        let props = [FULL, &[("img_hv_requested_version", ">=6.0,<6.2")]].concat();
        assert!(passes(&props, host(KVM, V6_0_0)));
    }

    #[test]
    fn default_architecture_from_config() {
        let config = Config::from_pairs(&[("image_properties_default_architecture", "x86_64")]);
        assert!(!passes_with(
            &config,
            &[],
            host(&[("aarch64", "kvm", "hvm")], V6_0_0)
        ));
        assert!(passes_with(&config, &[], host(KVM, V6_0_0)));
        assert!(passes(&[], host(&[("aarch64", "kvm", "hvm")], V6_0_0)));
    }

    #[test]
    fn different_properties_fail() {
        let props = [
            ("hw_architecture", "armv7l"),
            ("img_hv_type", "qemu"),
            ("hw_vm_mode", "hvm"),
        ];
        assert!(!passes(&props, host(KVM, V6_0_0)));
    }

    #[test]
    fn different_hypervisor_version_fails() {
        let props = [FULL, &[("img_hv_requested_version", ">=6.2")]].concat();
        assert!(!passes(&props, host(KVM, V6_0_0)));
        let props = [FULL, &[("img_hv_requested_version", ">=6.0")]].concat();
        assert!(!passes(&props, host(KVM, 5000)));
    }

    #[test]
    fn partial_properties() {
        let props = [("hw_architecture", "x86_64"), ("hw_vm_mode", "hvm")];
        assert!(passes(&props, host(KVM, V6_0_0)));
        assert!(!passes(&props, host(&[("x86_64", "xen", "xen")], V6_0_0)));
    }

    #[test]
    fn any_supported_triple_may_match() {
        assert!(passes(
            FULL,
            host(
                &[("aarch64", "kvm", "hvm"), ("x86_64", "kvm", "hvm")],
                V6_0_0
            )
        ));
    }

    #[test]
    fn image_without_properties_passes() {
        assert!(passes(&[], host(KVM, V6_0_0)));
        assert!(passes(&[], host(&[], 0)));
        assert!(passes(
            &[("img_hv_requested_version", ">=99")],
            host(&[], V6_0_0)
        ));
    }

    #[test]
    fn host_without_supported_instances_fails() {
        assert!(!passes(FULL, host(&[], V6_0_0)));
    }

    #[test]
    fn host_without_version_passes_version_check() {
        let props = [FULL, &[("img_hv_requested_version", ">=6.0")]].concat();
        assert!(passes(&props, host(KVM, 0)));
    }

    #[test]
    fn legacy_names_are_canonicalized() {
        assert!(passes(
            &[("hw_vm_mode", "pv")],
            host(&[("x86_64", "xen", "xen")], V6_0_0)
        ));
        assert!(passes(&[("hw_vm_mode", "hv")], host(KVM, V6_0_0)));
        assert!(passes(
            &[("hw_architecture", "x86_32")],
            host(&[("i686", "kvm", "hvm")], V6_0_0)
        ));
        assert!(passes(&[("hw_architecture", "AMD64")], host(KVM, V6_0_0)));
        assert!(passes(
            &[("img_hv_type", "xapi")],
            host(&[("i686", "xen", "hvm")], V6_0_0)
        ));
        assert!(passes(
            &[("hw_vm_mode", "baremetal")],
            host(&[("i686", "baremetal", "hvm")], V6_0_0)
        ));
        assert!(passes(
            &[("img_hv_type", "KVM")],
            host(&[("x86_64", "QEMU", "hvm"), ("x86_64", "KVM", "hvm")], 0)
        ));
    }

    #[test]
    fn malformed_version_predicate_rejects() {
        let props = [FULL, &[("img_hv_requested_version", "about 6")]].concat();
        assert!(!passes(&props, host(KVM, V6_0_0)));
    }

    #[test]
    fn versions() {
        assert_eq!(hypervisor_version_parts(6_002_001), [6, 2, 1]);
        assert_eq!(hypervisor_version_parts(5000), [5, 0]);
        assert!(hypervisor_version_parts(0).is_empty());
        let v600 = [6, 0, 0];
        assert_eq!(version_satisfies(&v600, ">=6.0,<6.2"), Ok(true));
        assert_eq!(version_satisfies(&v600, ">= 6.0 , < 6.2"), Ok(true));
        assert_eq!(version_satisfies(&v600, "==6.0.0"), Ok(true));
        // As Python tuples: (6, 0, 0) > (6, 0).
        assert_eq!(version_satisfies(&v600, "==6.0"), Ok(false));
        assert_eq!(version_satisfies(&v600, "!=6.0.1"), Ok(true));
        assert_eq!(version_satisfies(&v600, ">6.0.0rc1"), Ok(false));
        assert_eq!(version_satisfies(&v600, "<6.0.1"), Ok(true));
        assert!(version_satisfies(&v600, "6.0").is_err());
        assert!(version_satisfies(&v600, "=>6.0").is_err());
        assert!(version_satisfies(&v600, ">=").is_err());
    }
}
