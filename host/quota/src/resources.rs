//! The quota resources, their defaults and which API shapes show them.

use std::collections::BTreeMap;
use std::fmt;

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

    /// Server group resources (absent from old quota class sets).
    pub fn is_server_group(self) -> bool {
        matches!(self, Resource::ServerGroups | Resource::ServerGroupMembers)
    }

    /// Whether `view` shows (and accepts) the resource.
    pub fn shown_in(self, view: QuotaView) -> bool {
        if self.is_network() {
            view.network
        } else if self.is_injected_file() {
            view.injected_files
        } else if self.is_server_group() {
            view.server_groups
        } else {
            true
        }
    }
}

/// Which groups of resources a quota shape shows (and accepts): API
/// versions drop the deprecated ones, each group at its own version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaView {
    /// The deprecated nova-network resources ([`Resource::is_network`]).
    pub network: bool,
    /// The personality resources ([`Resource::is_injected_file`]).
    pub injected_files: bool,
    /// The server group resources ([`Resource::is_server_group`]).
    pub server_groups: bool,
}

impl QuotaView {
    /// Every resource.
    pub const ALL: QuotaView = QuotaView {
        network: true,
        injected_files: true,
        server_groups: true,
    };
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
    fn names_round_trip_and_views_hide_their_groups() {
        for resource in Resource::ALL {
            assert_eq!(Resource::from_name(resource.name()), Some(resource));
        }
        assert_eq!(Resource::from_name("networks"), None);
        let shown = |view: QuotaView| {
            Resource::ALL
                .into_iter()
                .filter(|resource| resource.shown_in(view))
                .count()
        };
        assert_eq!(shown(QuotaView::ALL), 14);
        let without_network = QuotaView {
            network: false,
            ..QuotaView::ALL
        };
        assert_eq!(shown(without_network), 10);
        assert_eq!(
            shown(QuotaView {
                injected_files: false,
                ..without_network
            }),
            7
        );
        let without_groups = QuotaView {
            server_groups: false,
            ..QuotaView::ALL
        };
        assert!(!Resource::ServerGroupMembers.shown_in(without_groups));
        assert!(Resource::Cores.shown_in(without_groups));
    }
}
