//! IsolatedHostsFilter: keeps isolated images on isolated hosts.
//!
//! Configuration, as Nova's `[filter_scheduler]` options: `isolated_images`
//! (image ids) and `isolated_hosts` (host names), each a JSON array or a
//! comma separated string; `restrict_isolated_hosts_to_isolated_images`
//! (default `true`).
//!
//! | | isolated image | other image |
//! |---|---|---|
//! | isolated host | passes | passes only when not restricted |
//! | other host | rejected | passes |
//!
//! Without isolated images, isolated hosts are rejected when restricted and
//! everything else passes.

use novum_plugin_sdk::collections::BTreeSet;
use novum_plugin_sdk::{Column, Config, Filter, HostView, Request};

/// Nova's IsolatedHostsFilter.
pub struct IsolatedHostsFilter {
    isolated_hosts: BTreeSet<String>,
    /// Whether the request's image is isolated.
    image_isolated: bool,
    restrict: bool,
}

impl Default for IsolatedHostsFilter {
    fn default() -> Self {
        Self {
            isolated_hosts: BTreeSet::new(),
            image_isolated: false,
            restrict: true,
        }
    }
}

impl Filter for IsolatedHostsFilter {
    const DESCRIPTION: &'static str = "isolated images only on isolated hosts";
    const NEEDS: &'static [Column] = &[Column::Name];

    fn prepare(config: &Config, request: &Request) -> Self {
        Self {
            isolated_hosts: config.strings("isolated_hosts").into_iter().collect(),
            image_isolated: config
                .strings("isolated_images")
                .contains(&request.image.id),
            restrict: config.bool_or("restrict_isolated_hosts_to_isolated_images", true),
        }
    }

    fn host_passes(&self, _request: &Request, host: &HostView<'_>) -> Result<(), String> {
        let host_isolated = self.isolated_hosts.contains(host.name());
        let image_isolated = self.image_isolated;
        if image_isolated && !host_isolated {
            Err("isolated image on a non-isolated host".to_string())
        } else if !image_isolated && host_isolated && self.restrict {
            Err("isolated host is restricted to isolated images".to_string())
        } else {
            Ok(())
        }
    }
}

novum_plugin_sdk::export_filter!(IsolatedHostsFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::fixtures::request;
    use novum_plugin_sdk::testing::{HostSpec, filter_passes};

    /// Runs the filter on `isolated_host` or `free_host` for the isolated image
    /// or another one.
    fn passes(pairs: &[(&str, &str)], host_isolated: bool, image_isolated: bool) -> bool {
        let host = HostSpec::named(if host_isolated {
            "isolated_host"
        } else {
            "free_host"
        });
        let mut request = request();
        request.image.id = if image_isolated {
            "image_ref"
        } else {
            "fake_image_ref"
        }
        .into();
        filter_passes::<IsolatedHostsFilter>(&Config::from_pairs(pairs), &request, &[host])
            == [true]
    }

    const BOTH: &[(&str, &str)] = &[
        ("isolated_images", "image_ref"),
        ("isolated_hosts", "isolated_host"),
    ];

    #[test]
    fn restricted_matrix() {
        assert!(!passes(BOTH, false, true));
        assert!(!passes(BOTH, true, false));
        assert!(passes(BOTH, true, true));
        assert!(passes(BOTH, false, false));
    }

    #[test]
    fn no_config_passes_everything() {
        for (host, image) in [(false, true), (true, false), (true, true), (false, false)] {
            assert!(passes(&[], host, image));
        }
    }

    #[test]
    fn images_without_hosts() {
        let config = [
            ("isolated_images", "image_ref"),
            ("restrict_isolated_hosts_to_isolated_images", "false"),
        ];
        assert!(!passes(&config, false, true));
        assert!(passes(&config, true, false));
        assert!(!passes(&config, true, true));
        assert!(passes(&config, false, false));
    }

    #[test]
    fn hosts_without_images() {
        let restricted = [("isolated_hosts", r#"["isolated_host"]"#)];
        assert!(passes(&restricted, false, true));
        assert!(!passes(&restricted, true, false));
        assert!(!passes(&restricted, true, true));
        assert!(passes(&restricted, false, false));
        let unrestricted = [
            ("isolated_hosts", "isolated_host"),
            ("restrict_isolated_hosts_to_isolated_images", "false"),
        ];
        assert!(passes(&unrestricted, true, false));
    }

    #[test]
    fn less_restrictive_matrix() {
        let config = [
            ("isolated_images", "image_ref"),
            ("isolated_hosts", "isolated_host"),
            ("restrict_isolated_hosts_to_isolated_images", "false"),
        ];
        assert!(passes(&config, true, false));
        assert!(passes(&config, true, true));
        assert!(passes(&config, false, false));
        assert!(!passes(&config, false, true));
    }
}
