//! The quota resources, their defaults and which API shapes show them.

use std::collections::BTreeMap;
use std::fmt;

use crate::api::microversion::Microversion;

/// A quota resource, named as Nova names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// Instances of a project (or user).
    Instances,
    /// vCPUs of those instances.
    Cores,
    /// RAM of those instances, MiB.
    Ram,
    /// Metadata items per server.
    MetadataItems,
    /// Key pairs per user.
    KeyPairs,
    /// Server groups of a project (or user).
    ServerGroups,
    /// Members per server group.
    ServerGroupMembers,
    /// Injected files per server (API before 2.57).
    InjectedFiles,
    /// Bytes per injected file (API before 2.57).
    InjectedFileContentBytes,
    /// Bytes per injected file path (API before 2.57).
    InjectedFilePathBytes,
    /// Deprecated nova-network quota, shown before 2.36 (default −1).
    FixedIps,
    /// Deprecated nova-network quota, shown before 2.36 (default −1).
    FloatingIps,
    /// Deprecated nova-network quota, shown before 2.36 (default −1).
    SecurityGroups,
    /// Deprecated nova-network quota, shown before 2.36 (default −1).
    SecurityGroupRules,
}

/// Limits by resource; −1 is unlimited.
pub type LimitMap = BTreeMap<Resource, i64>;

/// The largest limit the API accepts (Nova's database `MAX_INT`).
pub const MAX_LIMIT: i64 = 0x7FFF_FFFF;

impl Resource {
    /// Every resource.
    pub const ALL: [Resource; 14] = [
        Resource::Instances,
        Resource::Cores,
        Resource::Ram,
        Resource::MetadataItems,
        Resource::KeyPairs,
        Resource::ServerGroups,
        Resource::ServerGroupMembers,
        Resource::InjectedFiles,
        Resource::InjectedFileContentBytes,
        Resource::InjectedFilePathBytes,
        Resource::FixedIps,
        Resource::FloatingIps,
        Resource::SecurityGroups,
        Resource::SecurityGroupRules,
    ];

    /// The resource's API and database name, e.g. `server_group_members`.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Instances => "instances",
            Resource::Cores => "cores",
            Resource::Ram => "ram",
            Resource::MetadataItems => "metadata_items",
            Resource::KeyPairs => "key_pairs",
            Resource::ServerGroups => "server_groups",
            Resource::ServerGroupMembers => "server_group_members",
            Resource::InjectedFiles => "injected_files",
            Resource::InjectedFileContentBytes => "injected_file_content_bytes",
            Resource::InjectedFilePathBytes => "injected_file_path_bytes",
            Resource::FixedIps => "fixed_ips",
            Resource::FloatingIps => "floating_ips",
            Resource::SecurityGroups => "security_groups",
            Resource::SecurityGroupRules => "security_group_rules",
        }
    }

    /// The resource named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|resource| resource.name() == name)
    }

    /// Deprecated nova-network resources (hidden from 2.36 on).
    pub fn is_network(self) -> bool {
        matches!(
            self,
            Resource::FixedIps
                | Resource::FloatingIps
                | Resource::SecurityGroups
                | Resource::SecurityGroupRules
        )
    }

    /// Personality (injected file) resources (hidden from 2.57 on).
    pub fn is_injected_file(self) -> bool {
        matches!(
            self,
            Resource::InjectedFiles
                | Resource::InjectedFileContentBytes
                | Resource::InjectedFilePathBytes
        )
    }

    /// Whether `os-quota-sets` at `version` shows (and accepts) the resource.
    pub fn in_quota_sets(self, version: Microversion) -> bool {
        !(self.is_network() && version.at_least(36)
            || self.is_injected_file() && version.at_least(57))
    }

    /// Whether `os-quota-class-sets` at `version` shows (and accepts) the
    /// resource: server groups only from 2.50, which also drops the network
    /// quotas; 2.57 drops the injected files.
    pub fn in_quota_class_sets(self, version: Microversion) -> bool {
        let server_group = matches!(self, Resource::ServerGroups | Resource::ServerGroupMembers);
        if server_group {
            return version.at_least(50);
        }
        !(self.is_network() && version.at_least(50)
            || self.is_injected_file() && version.at_least(57))
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_visibility_follows_microversions() {
        for resource in Resource::ALL {
            assert_eq!(Resource::from_name(resource.name()), Some(resource));
        }
        assert_eq!(Resource::from_name("networks"), None);
        let shown = |version: u16| {
            Resource::ALL
                .into_iter()
                .filter(|resource| resource.in_quota_sets(Microversion::v2(version)))
                .count()
        };
        assert_eq!(shown(1), 14);
        assert_eq!(shown(36), 10);
        assert_eq!(shown(57), 7);
        assert!(!Resource::ServerGroups.in_quota_class_sets(Microversion::v2(49)));
        assert!(Resource::FloatingIps.in_quota_class_sets(Microversion::v2(49)));
        assert!(!Resource::FloatingIps.in_quota_class_sets(Microversion::v2(50)));
        assert!(Resource::InjectedFiles.in_quota_class_sets(Microversion::v2(56)));
        assert!(!Resource::InjectedFiles.in_quota_class_sets(Microversion::v2(57)));
    }
}
