//! ImagePropertiesWeigher (Nova's
//! `nova.scheduler.weights.image_props.ImagePropertiesWeigher`).
//!
//! Raw weight: for each image property `key=value` of the request's image that
//! instances on the host also have (same key, same value), the number of those
//! instances, times the property's ratio from `image_props_weight_setting`
//! (`"os_distro=1, hw_machine_type=-1"`). Without a setting every property
//! counts with ratio 1; with one, properties it does not name count 0 (the
//! last ratio wins when a name repeats). A request whose image has no
//! properties weighs 0 everywhere.
//!
//! The default multiplier (`image_props_weight_multiplier`) is 0.0, which
//! disables the weigher; a positive multiplier packs instances with the same
//! image properties, a negative one spreads them.
//!
//! Nova skips the computation (every host weighs 0) while the configured
//! multiplier is 0, even if an aggregate overrides it; that shortcut is the
//! controller's (see plugins/weighers/README.md).

use novum_plugin_sdk::collections::BTreeSet;
use novum_plugin_sdk::{Column, Config, HostView, Request, Weigher};

/// Nova's ImagePropertiesWeigher.
#[derive(Default)]
pub struct ImagePropsWeigher {
    setting: Vec<(String, f64)>,
}

impl ImagePropsWeigher {
    /// The ratio of property `key`.
    fn ratio(&self, key: &str) -> f64 {
        if self.setting.is_empty() {
            return 1.0;
        }
        self.setting
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map_or(0.0, |(_, ratio)| *ratio)
    }
}

impl Weigher for ImagePropsWeigher {
    const DESCRIPTION: &'static str =
        "instances on the host sharing the request's image properties";
    const NEEDS: &'static [Column] = &[Column::InstanceImageProperties];

    fn prepare(config: &Config, _request: &Request) -> Self {
        Self {
            setting: config.ratios("image_props_weight_setting"),
        }
    }

    fn weigh(&self, request: &Request, host: &HostView<'_>) -> f64 {
        let requested: BTreeSet<(&str, &str)> = request
            .image
            .properties
            .iter()
            .map(|property| (property.key.as_str(), property.value.as_str()))
            .collect();
        host.instance_image_properties()
            .filter(|(key, value, _)| requested.contains(&(*key, *value)))
            .map(|(key, _, count)| self.ratio(key) * f64::from(count))
            .sum()
    }
}

novum_plugin_sdk::export_weigher!(ImagePropsWeigher);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::fixtures::{pairs, request};
    use novum_plugin_sdk::{HostTable, run_weigher};

    /// Nova's unit-test hosts: host1 has no instances; host2 one Windows/pc
    /// instance; host3 a Linux instance and a Linux/pc instance; host4 one
    /// Linux instance.
    fn hosts() -> HostTable {
        let mut hosts = HostTable::with_len(4);
        hosts.set_instance_image_properties(&[
            &[],
            &[("os_distro", "windows", 1), ("hw_machine_type", "pc", 1)],
            &[("os_distro", "linux", 2), ("hw_machine_type", "pc", 1)],
            &[("os_distro", "linux", 1)],
        ]);
        hosts
    }

    fn weights(setting: Option<&str>, image: &[(&str, &str)]) -> Vec<f64> {
        let mut request = request();
        request.image.properties = pairs(image);
        let config = match setting {
            Some(setting) => Config::from_pairs(&[("image_props_weight_setting", setting)]),
            None => Config::default(),
        };
        run_weigher::<ImagePropsWeigher>(&config, &request, &hosts())
    }

    #[test]
    fn no_image_properties_weigh_nothing() {
        assert_eq!(weights(None, &[]), vec![0.0; 4]);
    }

    #[test]
    fn counts_instances_sharing_each_property() {
        let windows_pc = [("os_distro", "windows"), ("hw_machine_type", "pc")];
        assert_eq!(weights(None, &windows_pc), vec![0.0, 2.0, 1.0, 0.0]);
        assert_eq!(
            weights(None, &[("hw_machine_type", "pc")]),
            vec![0.0, 1.0, 1.0, 0.0]
        );
        assert_eq!(
            weights(None, &[("os_distro", "linux")]),
            vec![0.0, 0.0, 2.0, 1.0]
        );
        let linux_pc = [("os_distro", "linux"), ("hw_machine_type", "pc")];
        assert_eq!(weights(None, &linux_pc), vec![0.0, 1.0, 3.0, 1.0]);
    }

    #[test]
    fn the_setting_weighs_each_property() {
        let linux_pc = [("os_distro", "linux"), ("hw_machine_type", "pc")];
        assert_eq!(
            weights(Some("os_distro=1, hw_machine_type=0"), &linux_pc),
            vec![0.0, 0.0, 2.0, 1.0]
        );
        assert_eq!(
            weights(Some("os_distro=1, hw_machine_type=-1"), &linux_pc),
            vec![0.0, -1.0, 1.0, 1.0]
        );
        assert_eq!(
            weights(Some("os_distro=2"), &linux_pc),
            vec![0.0, 0.0, 4.0, 2.0]
        );
        assert_eq!(
            weights(Some("os_distro=5, os_distro=2"), &linux_pc),
            vec![0.0, 0.0, 4.0, 2.0]
        );
    }
}
