//! AggregateImagePropertiesIsolation: aggregate metadata whose key names an
//! image property restricts the host to images whose property value is one of
//! the metadata values (comma separated; values of all the host's aggregates
//! united). Images without that property, and metadata keys no image property
//! has, are not restricted.
//!
//! Configuration, as Nova's `[filter_scheduler]` options:
//! `aggregate_image_properties_isolation_namespace` (unset by default): when
//! set, only metadata keys starting with namespace + separator count;
//! `aggregate_image_properties_isolation_separator` (default `.`).
//!
//! Unlike Nova, which considers only its standard image properties, any
//! image property (also custom ones) is matched.

use novum_plugin_sdk::aggregate_metadata::merged;
use novum_plugin_sdk::{Column, Config, Filter, HostView, Request};

/// The default namespace separator.
pub const DEFAULT_SEPARATOR: &str = ".";

/// Nova's AggregateImagePropertiesIsolation.
#[derive(Default)]
pub struct AggregateImagePropertiesIsolation {
    /// Namespace + separator keys must start with, if a namespace is configured.
    prefix: Option<String>,
}

/// Whether the image has a property with a value (only those can be
/// restricted).
fn has_properties(request: &Request) -> bool {
    request
        .image
        .properties
        .iter()
        .any(|property| !property.value.is_empty())
}

impl Filter for AggregateImagePropertiesIsolation {
    const DESCRIPTION: &'static str =
        "aggregate metadata naming image properties matches the image";
    const NEEDS: &'static [Column] = &[Column::Aggregates];

    /// Aggregates only for an image with properties.
    fn needs(_config: &Config, request: &Request) -> Vec<Column> {
        if has_properties(request) {
            Self::NEEDS.to_vec()
        } else {
            Vec::new()
        }
    }

    fn prepare(config: &Config, _request: &Request) -> Self {
        let separator = config
            .get("aggregate_image_properties_isolation_separator")
            .unwrap_or(DEFAULT_SEPARATOR);
        let prefix = config
            .get("aggregate_image_properties_isolation_namespace")
            .filter(|namespace| !namespace.is_empty())
            .map(|namespace| format!("{namespace}{separator}"));
        Self { prefix }
    }

    fn host_passes(&self, request: &Request, host: &HostView<'_>) -> Result<(), String> {
        if !has_properties(request) {
            return Ok(());
        }
        for (key, options) in merged(host) {
            if self
                .prefix
                .as_deref()
                .is_some_and(|prefix| !key.starts_with(prefix))
            {
                continue;
            }
            match request.image_property(key) {
                Some(value) if !value.is_empty() && !options.contains(value) => {
                    return Err(format!(
                        "image property {key}={value} is not allowed by the host's aggregates"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

novum_plugin_sdk::export_filter!(AggregateImagePropertiesIsolation);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::fixtures::{pairs, request};
    use novum_plugin_sdk::testing::{HostSpec, aggregate, filter_passes};

    fn passes_with(
        config: &Config,
        metadata: &[(&str, &str)],
        properties: &[(&str, &str)],
    ) -> bool {
        let host = HostSpec {
            aggregates: vec![aggregate("agg", metadata)],
            ..HostSpec::named("h")
        };
        let mut request = request();
        request.image.properties = pairs(properties);
        filter_passes::<AggregateImagePropertiesIsolation>(config, &request, &[host]) == [true]
    }

    fn passes(metadata: &[(&str, &str)], properties: &[(&str, &str)]) -> bool {
        passes_with(&Config::default(), metadata, properties)
    }

    #[test]
    fn matching_property_passes() {
        assert!(passes(&[("hw_vm_mode", "hvm")], &[("hw_vm_mode", "hvm")]));
        assert!(passes(
            &[("hw_vm_mode", "hvm,xen")],
            &[("hw_vm_mode", "hvm")]
        ));
        assert!(passes(
            &[("hw_vm_mode", "hvm"), ("hw_cpu_cores", "2")],
            &[("hw_vm_mode", "hvm"), ("hw_cpu_cores", "2")]
        ));
        assert!(passes(&[("os_type", "linux")], &[("os_type", "linux")]));
    }

    #[test]
    fn mismatching_property_fails() {
        assert!(!passes(&[("hw_vm_mode", "hvm")], &[("hw_vm_mode", "xen")]));
        assert!(!passes(
            &[("hw_vm_mode", "hvm"), ("hw_cpu_cores", "1")],
            &[("hw_vm_mode", "hvm"), ("hw_cpu_cores", "2")]
        ));
        assert!(!passes(&[("os_type", "windows")], &[("os_type", "linux")]));
        // The image value is not split on commas.
        assert!(!passes(
            &[("os_distro", "windows,linux")],
            &[("os_distro", "windows,")]
        ));
    }

    #[test]
    fn absent_property_or_metadata_passes() {
        assert!(passes(&[("hw_vm_mode", "hvm")], &[]));
        assert!(passes(&[], &[("hw_vm_mode", "hvm")]));
        assert!(passes(&[("os", "linux")], &[("os_type", "linux")]));
        assert!(passes(&[("hw_vm_mode", "hvm")], &[("hw_vm_mode", "")]));
    }

    #[test]
    fn namespace_restricts_the_keys() {
        let config = Config::from_pairs(&[
            ("aggregate_image_properties_isolation_namespace", "hw"),
            ("aggregate_image_properties_isolation_separator", "_"),
        ]);
        let metadata = [("hw_vm_mode", "hvm"), ("img_owner_id", "foo")];
        assert!(passes_with(
            &config,
            &metadata,
            &[("hw_vm_mode", "hvm"), ("img_owner_id", "wrong")]
        ));
        assert!(!passes_with(&config, &metadata, &[("hw_vm_mode", "xen")]));
        assert!(!passes(
            &metadata,
            &[("hw_vm_mode", "hvm"), ("img_owner_id", "wrong")]
        ));
    }

    #[test]
    fn default_separator_is_a_dot() {
        let config =
            Config::from_pairs(&[("aggregate_image_properties_isolation_namespace", "ns")]);
        assert!(passes_with(&config, &[("ns_x", "1")], &[("ns_x", "2")]));
        assert!(!passes_with(&config, &[("ns.x", "1")], &[("ns.x", "2")]));
    }
}
