//! The `[network]` section.
//!
//! ```toml
//! [network]
//! backend = "builtin"            # "neutron" is reserved (not in this build)
//! default_mtu = 1500             # MTU of new networks without one
//! default_network = true         # create the shared default network at start
//! default_network_name = "shared"
//! default_network_cidr = "10.0.0.0/22"
//! default_network_dns_nameservers = []
//! max_dns_nameservers = 5        # Neutron's max_dns_nameservers
//! max_subnet_host_routes = 20    # Neutron's max_subnet_host_routes
//! max_allowed_address_pair = 10  # Neutron's max_allowed_address_pair
//! quota_network = 100            # Neutron's quota defaults; -1 = unlimited
//! quota_subnet = 100
//! quota_port = 500
//! quota_security_group = 10
//! quota_security_group_rule = 100
//! ```
//!
//! MTU: the built-in backend puts a network on one Linux bridge per host
//! with no tunnel encapsulation, so a network carries full 1500-byte frames
//! (Neutron's `global_physnet_mtu` default); 1450 is what VXLAN overlays
//! leave, which this backend does not build.

use serde::Deserialize;

use crate::quotas::QuotaResource;

/// Which network service answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkBackend {
    /// novum's own network service, in its database (this crate).
    #[default]
    Builtin,
    /// An external Neutron endpoint (reserved: not implemented in this build).
    Neutron,
}

/// The MTU of networks created without one (see the module doc).
pub const DEFAULT_MTU: i64 = 1500;
/// The name of the default network.
pub const DEFAULT_NETWORK_NAME: &str = "shared";
/// The CIDR of the default network's subnet.
pub const DEFAULT_NETWORK_CIDR: &str = "10.0.0.0/22";

/// `[network]`
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Which network service answers.
    pub backend: NetworkBackend,
    /// MTU of networks created without one.
    pub default_mtu: i64,
    /// Create the default network (shared, `is_default`, with an IPv4
    /// subnet) when no default network exists.
    pub default_network: bool,
    /// Its name.
    pub default_network_name: String,
    /// Its subnet's CIDR (IPv4).
    pub default_network_cidr: String,
    /// Its subnet's DNS name servers.
    pub default_network_dns_nameservers: Vec<String>,
    /// The most DNS name servers a subnet may have.
    pub max_dns_nameservers: usize,
    /// The most host routes a subnet may have.
    pub max_subnet_host_routes: usize,
    /// The most allowed address pairs a port may have.
    pub max_allowed_address_pair: usize,
    /// Networks per project (−1 unlimited).
    pub quota_network: i64,
    /// Subnets per project.
    pub quota_subnet: i64,
    /// Ports per project.
    pub quota_port: i64,
    /// Security groups per project.
    pub quota_security_group: i64,
    /// Security group rules per project.
    pub quota_security_group_rule: i64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            backend: NetworkBackend::Builtin,
            default_mtu: DEFAULT_MTU,
            default_network: true,
            default_network_name: DEFAULT_NETWORK_NAME.to_string(),
            default_network_cidr: DEFAULT_NETWORK_CIDR.to_string(),
            default_network_dns_nameservers: Vec::new(),
            max_dns_nameservers: 5,
            max_subnet_host_routes: 20,
            max_allowed_address_pair: 10,
            quota_network: 100,
            quota_subnet: 100,
            quota_port: 500,
            quota_security_group: 10,
            quota_security_group_rule: 100,
        }
    }
}

impl NetworkConfig {
    /// The configured default limit of `resource`.
    pub fn default_quota(&self, resource: QuotaResource) -> i64 {
        match resource {
            QuotaResource::Network => self.quota_network,
            QuotaResource::Subnet => self.quota_subnet,
            QuotaResource::Port => self.quota_port,
            QuotaResource::SecurityGroup => self.quota_security_group,
            QuotaResource::SecurityGroupRule => self.quota_security_group_rule,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_neutrons_and_keys_parse() {
        let config = NetworkConfig::default();
        assert_eq!(config.default_quota(QuotaResource::Port), 500);
        assert_eq!(config.default_quota(QuotaResource::SecurityGroup), 10);
        let parsed: NetworkConfig =
            toml::from_str("backend = \"neutron\"\nquota_port = -1\n").expect("valid");
        assert_eq!(parsed.backend, NetworkBackend::Neutron);
        assert_eq!(parsed.quota_port, -1);
        assert!(toml::from_str::<NetworkConfig>("backend = \"nova\"\n").is_err());
        assert!(toml::from_str::<NetworkConfig>("quota_ports = 1\n").is_err());
    }
}
