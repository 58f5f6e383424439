//! The `[quota]` section: default limits (the last step of the lookup, after
//! project/user rows and the `default` quota class) and the quota policies.
//!
//! ```toml
//! [quota]
//! instances = 10
//! cores = 20
//! ram = 51200                      # MiB; -1 = unlimited
//! metadata_items = 128
//! key_pairs = 100
//! server_groups = 10
//! server_group_members = 10
//! injected_files = 5
//! injected_file_content_bytes = 10240
//! injected_file_path_bytes = 255   # Nova's option: injected_file_path_length
//! policies = ["standard-quota-policy"]   # quota-policy plugins, in order
//! ```

use serde::Deserialize;

use super::resources::{LimitMap, Resource};

/// `[quota]`
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    /// Instances per project.
    pub instances: i64,
    /// vCPUs per project.
    pub cores: i64,
    /// RAM per project, MiB.
    pub ram: i64,
    /// Metadata items per server.
    pub metadata_items: i64,
    /// Key pairs per user.
    pub key_pairs: i64,
    /// Server groups per project.
    pub server_groups: i64,
    /// Members per server group.
    pub server_group_members: i64,
    /// Injected files per server.
    pub injected_files: i64,
    /// Bytes per injected file.
    pub injected_file_content_bytes: i64,
    /// Bytes per injected file path.
    #[serde(alias = "injected_file_path_length")]
    pub injected_file_path_bytes: i64,
    /// The quota-policy plugins that decide, in order; the first denial wins.
    /// Each plugin's `[plugins.<name>]` table sets its `on_error`: `ignore`
    /// skips a failing policy, anything else denies the request.
    pub policies: Vec<String>,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            instances: 10,
            cores: 20,
            ram: 51200,
            metadata_items: 128,
            key_pairs: 100,
            server_groups: 10,
            server_group_members: 10,
            injected_files: 5,
            injected_file_content_bytes: 10240,
            injected_file_path_bytes: 255,
            policies: vec!["standard-quota-policy".to_string()],
        }
    }
}

impl QuotaConfig {
    /// The configured default of `resource` (−1 for the deprecated network
    /// resources, which have no option).
    pub fn default_limit(&self, resource: Resource) -> i64 {
        match resource {
            Resource::Instances => self.instances,
            Resource::Cores => self.cores,
            Resource::Ram => self.ram,
            Resource::MetadataItems => self.metadata_items,
            Resource::KeyPairs => self.key_pairs,
            Resource::ServerGroups => self.server_groups,
            Resource::ServerGroupMembers => self.server_group_members,
            Resource::InjectedFiles => self.injected_files,
            Resource::InjectedFileContentBytes => self.injected_file_content_bytes,
            Resource::InjectedFilePathBytes => self.injected_file_path_bytes,
            Resource::FixedIps
            | Resource::FloatingIps
            | Resource::SecurityGroups
            | Resource::SecurityGroupRules => -1,
        }
    }

    /// Every resource's configured default.
    pub fn defaults(&self) -> LimitMap {
        Resource::ALL
            .into_iter()
            .map(|resource| (resource, self.default_limit(resource)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_novas_and_keys_parse() {
        let config = QuotaConfig::default();
        assert_eq!(config.default_limit(Resource::Instances), 10);
        assert_eq!(config.default_limit(Resource::Ram), 51200);
        assert_eq!(config.default_limit(Resource::InjectedFilePathBytes), 255);
        assert_eq!(config.default_limit(Resource::FloatingIps), -1);
        assert_eq!(config.policies, ["standard-quota-policy"]);
        let parsed: QuotaConfig =
            toml::from_str("cores = -1\ninjected_file_path_length = 100\npolicies = []\n")
                .expect("valid");
        assert_eq!(parsed.cores, -1);
        assert_eq!(parsed.injected_file_path_bytes, 100);
        assert!(parsed.policies.is_empty());
        assert!(toml::from_str::<QuotaConfig>("coers = 1\n").is_err());
    }
}
