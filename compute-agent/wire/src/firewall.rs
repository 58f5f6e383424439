//! The host firewall call: `GET /rpc/v1/agents/{host}/firewall` answers the
//! security of every port bound to the host ([`HostFirewall`]), remote
//! groups resolved to addresses, for the agent to enforce.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::API_PREFIX;

/// Path of the firewall call for `host`.
pub fn firewall_path(host: &str) -> String {
    format!("{API_PREFIX}/agents/{host}/firewall")
}

/// Every port bound to the host with what its firewall needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFirewall {
    /// The ports, oldest first.
    pub ports: Vec<PortFirewall>,
}

/// One port's firewall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortFirewall {
    /// The port.
    pub port_id: Uuid,
    /// The Linux bridge of its network on the host.
    pub bridge: String,
    /// Its tap device.
    pub tap: String,
    /// Its MAC address.
    pub mac_address: String,
    /// Its fixed IPs and allowed address pairs (addresses or CIDRs).
    pub addresses: Vec<String>,
    /// Neutron's `port_security_enabled`: false, nothing is filtered.
    pub port_security_enabled: bool,
    /// What its security groups allow (everything else is dropped).
    pub rules: Vec<FirewallRule>,
}

/// Which way a rule admits traffic, seen from the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Traffic to the port.
    Ingress,
    /// Traffic from the port.
    Egress,
}

/// One allowing rule (a security group rule, remote group resolved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallRule {
    /// To or from the port.
    pub direction: Direction,
    /// 4 or 6.
    pub ip_version: u8,
    /// Protocol name (`tcp`, `udp`, `icmp`, `ipv6-icmp`, ...) or number;
    /// `None`: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// First port (ICMP: type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range_min: Option<u32>,
    /// Last port (ICMP: code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range_max: Option<u32>,
    /// The remote addresses or CIDRs admitted; `None`: any; empty: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<Vec<String>>,
}
