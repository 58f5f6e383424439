//! [`NetworkError`]: every refusal of the network service, named as Neutron
//! names it (the `type` of a `{"NeutronError": {...}}` body), with its HTTP
//! status and Neutron's message.

use novum_db::DbError;

/// Errors of the network service. [`NetworkError::error_type`] is Neutron's
/// exception name, [`NetworkError::status`] the HTTP status Neutron answers
/// with, and the `Display` text Neutron's message.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// No such network, or the caller may not see it.
    #[error("Network {0} could not be found.")]
    NetworkNotFound(String),
    /// No such subnet, or the caller may not see it.
    #[error("Subnet {0} could not be found.")]
    SubnetNotFound(String),
    /// No such port, or the caller may not see it.
    #[error("Port {0} could not be found.")]
    PortNotFound(String),
    /// No such security group, or the caller may not see it.
    #[error("Security group {0} does not exist")]
    SecurityGroupNotFound(String),
    /// No such security group rule, or the caller may not see it.
    #[error("Security group rule {0} does not exist")]
    SecurityGroupRuleNotFound(String),
    /// The request is malformed or breaks a rule (the text says which).
    #[error("Invalid input for operation: {0}.")]
    InvalidInput(String),
    /// An allocation pool is not a valid range.
    #[error("The allocation pool {0} is not valid.")]
    InvalidAllocationPool(String),
    /// An allocation pool reaches outside the subnet.
    #[error("The allocation pool {pool} spans beyond the subnet cidr {cidr}.")]
    OutOfBoundsAllocationPool {
        /// The pool, `first-last`.
        pool: String,
        /// The subnet's CIDR.
        cidr: String,
    },
    /// Two allocation pools overlap.
    #[error("Found overlapping allocation pools: {pool_1} {pool_2} for subnet {cidr}.")]
    OverlappingAllocationPools {
        /// One pool.
        pool_1: String,
        /// The other.
        pool_2: String,
        /// The subnet's CIDR.
        cidr: String,
    },
    /// The gateway lies in an allocation pool.
    #[error("Gateway ip {ip} conflicts with allocation pool {pool}.")]
    GatewayConflictWithAllocationPools {
        /// The gateway.
        ip: String,
        /// The pool.
        pool: String,
    },
    /// A requested address is not in the requested subnet.
    #[error("IP address {ip} does not belong to subnet {subnet_id}")]
    InvalidIpForSubnet {
        /// The address.
        ip: String,
        /// The subnet.
        subnet_id: String,
    },
    /// A requested address is in none of the network's subnets.
    #[error("IP address {0} is not a valid IP for any of the subnets on the specified network.")]
    InvalidIpForNetwork(String),
    /// A requested address is taken.
    #[error("IP address {ip} already allocated in subnet {subnet_id}")]
    IpAddressAlreadyAllocated {
        /// The address.
        ip: String,
        /// The subnet.
        subnet_id: String,
    },
    /// The network's allocation pools are exhausted.
    #[error("No more IP addresses available on network {0}.")]
    IpAddressGenerationFailure(String),
    /// A requested MAC address is taken on the network.
    #[error("Unable to complete operation for network {net_id}. The mac address {mac} is in use.")]
    MacAddressInUse {
        /// The network.
        net_id: String,
        /// The address.
        mac: String,
    },
    /// No free MAC address was found.
    #[error("Unable to generate unique mac on network {0}.")]
    MacAddressGenerationFailure(String),
    /// The network still has ports.
    #[error(
        "Unable to complete operation on network {0}. There are one or more ports still in use on the network."
    )]
    NetworkInUse(String),
    /// The subnet still has allocations.
    #[error(
        "Unable to complete operation on subnet {0}: One or more ports have an IP allocation from this subnet."
    )]
    SubnetInUse(String),
    /// The port is attached to another device.
    #[error(
        "Unable to complete operation on port {port_id} for network {net_id}. Port already has an attached device {device_id}."
    )]
    PortInUse {
        /// The port.
        port_id: String,
        /// Its network.
        net_id: String,
        /// The device it is attached to.
        device_id: String,
    },
    /// The security group is used by a port.
    #[error("Security Group {0} in use.")]
    SecurityGroupInUse(String),
    /// A non-admin tried to delete its default security group.
    #[error("Insufficient rights for removing default security group.")]
    SecurityGroupCannotRemoveDefault,
    /// The default security group cannot be renamed.
    #[error("Updating default security group not allowed.")]
    SecurityGroupCannotUpdateDefault,
    /// A second group named `default`.
    #[error("Default security group already exists.")]
    SecurityGroupDefaultAlreadyExists,
    /// The same rule exists.
    #[error("Security group rule already exists. Rule id is {0}.")]
    SecurityGroupRuleExists(String),
    /// An unknown protocol.
    #[error(
        "Security group rule protocol {0} not supported. Only protocol values [None, ah, dccp, egp, esp, gre, icmp, icmpv6, igmp, ipip, ipv6-encap, ipv6-frag, ipv6-icmp, ipv6-nonxt, ipv6-opts, ipv6-route, ospf, pgm, rsvp, sctp, tcp, udp, udplite, vrrp] and integer representations [0 to 255] are supported."
    )]
    SecurityGroupRuleInvalidProtocol(String),
    /// The remote prefix is of the other IP version.
    #[error("Conflicting value ethertype {ethertype} for CIDR {cidr}")]
    SecurityGroupRuleParameterConflict {
        /// The rule's ethertype.
        ethertype: String,
        /// The prefix.
        cidr: String,
    },
    /// Both a remote prefix and a remote group.
    #[error("Only remote_ip_prefix or remote_group_id may be provided.")]
    SecurityGroupRemoteGroupAndRemoteIpPrefix,
    /// `port_range_min` above `port_range_max`.
    #[error("For TCP/UDP protocols, port_range_min must be <= port_range_max")]
    SecurityGroupInvalidPortRange,
    /// A port number outside 1–65535.
    #[error("Invalid value for port {0}.")]
    SecurityGroupInvalidPortValue(i64),
    /// An ICMP type or code outside 0–255.
    #[error("Invalid value for ICMP {field} ({attr}) {value}. It must be 0 to 255.")]
    SecurityGroupInvalidIcmpValue {
        /// `type` or `code`.
        field: &'static str,
        /// `port_range_min` or `port_range_max`.
        attr: &'static str,
        /// The value.
        value: i64,
    },
    /// An ICMP code without a type.
    #[error(
        "ICMP code (port-range-max) {0} is provided but ICMP type (port-range-min) is missing."
    )]
    SecurityGroupMissingIcmpType(i64),
    /// A port range without a protocol.
    #[error("Must also specify protocol if port range is given.")]
    SecurityGroupProtocolRequiredWithPorts,
    /// ICMP for IPv6, or ICMPv6 for IPv4.
    #[error("Invalid ethertype {ethertype} for protocol {protocol}.")]
    SecurityGroupEthertypeConflictWithProtocol {
        /// The rule's ethertype.
        ethertype: String,
        /// The protocol.
        protocol: String,
    },
    /// Security groups on a port without port security.
    #[error(
        "Port security must be enabled and port must have an IP address in order to use security groups."
    )]
    PortSecurityAndIpRequiredForSecurityGroups,
    /// Port security turned off on a port that has groups.
    #[error(
        "Port has security group associated. Cannot disable port security or ip address until security group is removed"
    )]
    PortSecurityPortHasSecurityGroup,
    /// Allowed address pairs on a port without port security.
    #[error("Port Security must be enabled in order to have allowed address pairs on a port.")]
    AddressPairAndPortSecurityRequired,
    /// The same address pair twice.
    #[error("Request contains duplicate address pair: mac_address {mac} ip_address {ip}.")]
    DuplicateAddressPairInRequest {
        /// The pair's MAC.
        mac: String,
        /// The pair's address.
        ip: String,
    },
    /// Too many DNS name servers.
    #[error(
        "Unable to complete operation for {subnet}. The number of DNS nameservers exceeds the limit {limit}."
    )]
    DnsNameServersExhausted {
        /// The subnet (its id, or its CIDR when not created yet).
        subnet: String,
        /// The limit.
        limit: usize,
    },
    /// Too many host routes.
    #[error(
        "Unable to complete operation for {subnet}. The number of host routes exceeds the limit {limit}."
    )]
    HostRoutesExhausted {
        /// The subnet.
        subnet: String,
        /// The limit.
        limit: usize,
    },
    /// Too many allowed address pairs.
    #[error("Exceeded maximum amount of allowed address pairs {0}.")]
    AllowedAddressPairExhausted(usize),
    /// Another network is the default already.
    #[error("A default external network already exists: {0}.")]
    DefaultNetworkExists(String),
    /// Unsharing a network other projects use.
    #[error(
        "Unable to reconfigure sharing settings for network {0}. Multiple tenants are using it."
    )]
    InvalidSharedSetting(String),
    /// A security group name matches several groups.
    #[error("Multiple security groups found matching '{0}'. Use an ID to be more specific.")]
    SecurityGroupNotUnique(String),
    /// A quota would be exceeded.
    #[error("Quota exceeded for resources: [{}].", .0.iter().map(|name| format!("'{name}'")).collect::<Vec<_>>().join(", "))]
    OverQuota(Vec<String>),
    /// The policy forbids the action (`rule` names it).
    #[error("(rule:{0}) is disallowed by policy")]
    PolicyNotAuthorized(String),
    /// The caller may not do this.
    #[error("Not authorized.")]
    NotAuthorized,
    /// Get-me-a-network cannot give a network.
    #[error("Deployment error: {0}.")]
    AutoAllocationFailure(String),
    /// A feature of this build that is missing (the `neutron` backend).
    #[error("{0} is not implemented in this build.")]
    NotImplemented(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for NetworkError {
    fn from(error: sqlx::Error) -> Self {
        Self::Db(DbError::Query(error))
    }
}

impl NetworkError {
    /// Neutron's exception name: the `type` of the fault body.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::NetworkNotFound(_) => "NetworkNotFound",
            Self::SubnetNotFound(_) => "SubnetNotFound",
            Self::PortNotFound(_) => "PortNotFound",
            Self::SecurityGroupNotFound(_) => "SecurityGroupNotFound",
            Self::SecurityGroupRuleNotFound(_) => "SecurityGroupRuleNotFound",
            Self::InvalidInput(_) => "InvalidInput",
            Self::InvalidAllocationPool(_) => "InvalidAllocationPool",
            Self::OutOfBoundsAllocationPool { .. } => "OutOfBoundsAllocationPool",
            Self::OverlappingAllocationPools { .. } => "OverlappingAllocationPools",
            Self::GatewayConflictWithAllocationPools { .. } => "GatewayConflictWithAllocationPools",
            Self::InvalidIpForSubnet { .. } => "InvalidIpForSubnet",
            Self::InvalidIpForNetwork(_) => "InvalidIpForNetwork",
            Self::IpAddressAlreadyAllocated { .. } => "IpAddressAlreadyAllocated",
            Self::IpAddressGenerationFailure(_) => "IpAddressGenerationFailure",
            Self::MacAddressInUse { .. } => "MacAddressInUse",
            Self::MacAddressGenerationFailure(_) => "MacAddressGenerationFailure",
            Self::NetworkInUse(_) => "NetworkInUse",
            Self::SubnetInUse(_) => "SubnetInUse",
            Self::PortInUse { .. } => "PortInUse",
            Self::SecurityGroupInUse(_) => "SecurityGroupInUse",
            Self::SecurityGroupCannotRemoveDefault => "SecurityGroupCannotRemoveDefault",
            Self::SecurityGroupCannotUpdateDefault => "SecurityGroupCannotUpdateDefault",
            Self::SecurityGroupDefaultAlreadyExists => "SecurityGroupDefaultAlreadyExists",
            Self::SecurityGroupRuleExists(_) => "SecurityGroupRuleExists",
            Self::SecurityGroupRuleInvalidProtocol(_) => "SecurityGroupRuleInvalidProtocol",
            Self::SecurityGroupRuleParameterConflict { .. } => "SecurityGroupRuleParameterConflict",
            Self::SecurityGroupRemoteGroupAndRemoteIpPrefix => {
                "SecurityGroupRemoteGroupAndRemoteIpPrefix"
            }
            Self::SecurityGroupInvalidPortRange => "SecurityGroupInvalidPortRange",
            Self::SecurityGroupInvalidPortValue(_) => "SecurityGroupInvalidPortValue",
            Self::SecurityGroupInvalidIcmpValue { .. } => "SecurityGroupInvalidIcmpValue",
            Self::SecurityGroupMissingIcmpType(_) => "SecurityGroupMissingIcmpType",
            Self::SecurityGroupProtocolRequiredWithPorts => {
                "SecurityGroupProtocolRequiredWithPorts"
            }
            Self::SecurityGroupEthertypeConflictWithProtocol { .. } => {
                "SecurityGroupEthertypeConflictWithProtocol"
            }
            Self::PortSecurityAndIpRequiredForSecurityGroups => {
                "PortSecurityAndIPRequiredForSecurityGroups"
            }
            Self::PortSecurityPortHasSecurityGroup => "PortSecurityPortHasSecurityGroup",
            Self::AddressPairAndPortSecurityRequired => "AddressPairAndPortSecurityRequired",
            Self::DuplicateAddressPairInRequest { .. } => "DuplicateAddressPairInRequest",
            Self::DnsNameServersExhausted { .. } => "DNSNameServersExhausted",
            Self::HostRoutesExhausted { .. } => "HostRoutesExhausted",
            Self::AllowedAddressPairExhausted(_) => "AllowedAddressPairExhausted",
            Self::DefaultNetworkExists(_) => "DefaultExternalNetworkExists",
            Self::InvalidSharedSetting(_) => "InvalidSharedSetting",
            Self::SecurityGroupNotUnique(_) => "NoUniqueMatch",
            Self::OverQuota(_) => "OverQuota",
            Self::PolicyNotAuthorized(_) => "PolicyNotAuthorized",
            Self::NotAuthorized => "NotAuthorized",
            Self::AutoAllocationFailure(_) => "AutoAllocationFailure",
            Self::NotImplemented(_) => "NotImplementedError",
            Self::Db(_) => "HTTPInternalServerError",
        }
    }

    /// The HTTP status Neutron answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            Self::NetworkNotFound(_)
            | Self::SubnetNotFound(_)
            | Self::PortNotFound(_)
            | Self::SecurityGroupNotFound(_)
            | Self::SecurityGroupRuleNotFound(_) => 404,
            Self::InvalidInput(_)
            | Self::InvalidAllocationPool(_)
            | Self::OutOfBoundsAllocationPool { .. }
            | Self::InvalidIpForSubnet { .. }
            | Self::InvalidIpForNetwork(_)
            | Self::SecurityGroupRuleInvalidProtocol(_)
            | Self::SecurityGroupRuleParameterConflict { .. }
            | Self::SecurityGroupRemoteGroupAndRemoteIpPrefix
            | Self::SecurityGroupInvalidPortRange
            | Self::SecurityGroupInvalidPortValue(_)
            | Self::SecurityGroupInvalidIcmpValue { .. }
            | Self::SecurityGroupMissingIcmpType(_)
            | Self::SecurityGroupProtocolRequiredWithPorts
            | Self::SecurityGroupEthertypeConflictWithProtocol { .. }
            | Self::PortSecurityAndIpRequiredForSecurityGroups
            | Self::DuplicateAddressPairInRequest { .. }
            | Self::DnsNameServersExhausted { .. }
            | Self::HostRoutesExhausted { .. }
            | Self::AllowedAddressPairExhausted(_) => 400,
            Self::PolicyNotAuthorized(_) | Self::NotAuthorized => 403,
            Self::OverlappingAllocationPools { .. }
            | Self::GatewayConflictWithAllocationPools { .. }
            | Self::IpAddressAlreadyAllocated { .. }
            | Self::IpAddressGenerationFailure(_)
            | Self::MacAddressInUse { .. }
            | Self::NetworkInUse(_)
            | Self::SubnetInUse(_)
            | Self::PortInUse { .. }
            | Self::SecurityGroupInUse(_)
            | Self::SecurityGroupCannotRemoveDefault
            | Self::SecurityGroupCannotUpdateDefault
            | Self::SecurityGroupDefaultAlreadyExists
            | Self::SecurityGroupRuleExists(_)
            | Self::PortSecurityPortHasSecurityGroup
            | Self::AddressPairAndPortSecurityRequired
            | Self::OverQuota(_)
            | Self::DefaultNetworkExists(_)
            | Self::InvalidSharedSetting(_)
            | Self::SecurityGroupNotUnique(_)
            | Self::AutoAllocationFailure(_) => 409,
            Self::NotImplemented(_) => 501,
            Self::MacAddressGenerationFailure(_) => 503,
            Self::Db(_) => 500,
        }
    }
}

/// `InvalidInput` with `message`.
pub(crate) fn invalid(message: impl Into<String>) -> NetworkError {
    NetworkError::InvalidInput(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_types_and_statuses_are_neutrons() {
        let over = NetworkError::OverQuota(vec!["port".into()]);
        assert_eq!(over.to_string(), "Quota exceeded for resources: ['port'].");
        assert_eq!((over.error_type(), over.status()), ("OverQuota", 409));
        let exhausted = NetworkError::IpAddressGenerationFailure("n1".into());
        assert_eq!(
            exhausted.to_string(),
            "No more IP addresses available on network n1."
        );
        assert_eq!(exhausted.status(), 409);
        assert_eq!(NetworkError::NetworkNotFound("x".into()).status(), 404);
        assert_eq!(
            invalid("bad").to_string(),
            "Invalid input for operation: bad."
        );
    }
}
