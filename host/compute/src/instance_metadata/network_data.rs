//! The guest's `network_data.json` (OpenStack metadata format, as Nova's
//! config drive and metadata service serve it), rendered from the
//! instance's interfaces.
//!
//! The document has three lists:
//! - `links`: one per port, in port order: `id` the host device name
//!   (`tap` + the port id's first 11 characters), `vif_id` the port id,
//!   `type` `bridge` (the VIF type of a Linux-bridge port), `mtu` (the
//!   network's, `null` when unknown) and `ethernet_mac_address`;
//! - `networks`: one per fixed IP, in port order and then address order,
//!   `id` `network0`, `network1`…: `type` `ipv4` or `ipv6` (static: novum
//!   runs no DHCP server), `link` (the link id), `ip_address`, `netmask`
//!   (the subnet's, dotted for IPv4, an address for IPv6 too), `routes`
//!   (the default route through the subnet's gateway, `0.0.0.0/0.0.0.0` or
//!   `::/::`, then the subnet's host routes, each as `network`, `netmask`,
//!   `gateway`), `network_id`, and `services` (the subnet's DNS servers);
//! - `services`: every DNS server once, in order of appearance, as
//!   `{"type": "dns", "address": …}`.
//!
//! Nova writes a network only for the first address of the first IPv4 and
//! the first IPv6 subnet of a port, and no link for a port without
//! addresses; here every address gets its network and every port its link
//! (cloud-init leaves a link without a network unconfigured).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use novum_wire::{FixedIpSpec, InterfaceSpec};
use serde::{Deserialize, Serialize};

/// The link type of a port plugged into a Linux bridge (Nova's VIF type).
pub const LINK_TYPE_BRIDGE: &str = "bridge";

/// The whole `network_data.json` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkData {
    /// The guest's network devices.
    pub links: Vec<Link>,
    /// The addresses configured on them.
    pub networks: Vec<Network>,
    /// Services not bound to one network: the DNS servers.
    pub services: Vec<Service>,
}

impl NetworkData {
    /// The document as JSON text.
    pub fn to_json(&self) -> String {
        // Plain strings, numbers and lists: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One network device of the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Link id: the host device name (`tap` + the port id's first 11 characters).
    pub id: String,
    /// The port id.
    pub vif_id: String,
    /// The link type ([`LINK_TYPE_BRIDGE`]).
    #[serde(rename = "type")]
    pub link_type: String,
    /// The network's MTU, `null` when unknown.
    pub mtu: Option<u32>,
    /// The port's MAC address (lower case).
    pub ethernet_mac_address: String,
}

/// One address on a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// `network<n>`, counted over the document.
    pub id: String,
    /// `ipv4` or `ipv6`.
    #[serde(rename = "type")]
    pub network_type: String,
    /// The id of the link it is on.
    pub link: String,
    /// The address.
    pub ip_address: String,
    /// The subnet's netmask (`255.255.255.0`, `ffff:ffff:ffff:ffff::`).
    pub netmask: String,
    /// The default route (when the subnet has a gateway), then the host routes.
    pub routes: Vec<Route>,
    /// The Neutron network id.
    pub network_id: String,
    /// The subnet's DNS servers.
    pub services: Vec<Service>,
}

/// A route of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination network address.
    pub network: String,
    /// Destination netmask.
    pub netmask: String,
    /// Next hop.
    pub gateway: String,
}

/// A service the guest can use (a DNS server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// `dns`.
    #[serde(rename = "type")]
    pub service_type: String,
    /// Its address.
    pub address: String,
}

/// What in the interfaces cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkDataError {
    /// An address, CIDR or version of port `port` is not valid.
    #[error("port {port}: {message}")]
    Invalid {
        /// The port.
        port: String,
        /// What is wrong.
        message: String,
    },
}

/// Renders the `network_data.json` of an instance with `interfaces` (in
/// the guest's order). See the module documentation for the format.
pub fn network_data(interfaces: &[InterfaceSpec]) -> Result<NetworkData, NetworkDataError> {
    let mut data = NetworkData {
        links: Vec::with_capacity(interfaces.len()),
        networks: Vec::new(),
        services: Vec::new(),
    };
    for interface in interfaces {
        let link = Link {
            id: interface.tap_name(),
            vif_id: interface.port_id.to_string(),
            link_type: LINK_TYPE_BRIDGE.to_string(),
            mtu: interface.mtu,
            ethernet_mac_address: interface.mac_address.to_ascii_lowercase(),
        };
        for fixed_ip in &interface.fixed_ips {
            let network =
                network(interface, fixed_ip, data.networks.len(), &link.id).map_err(|message| {
                    NetworkDataError::Invalid {
                        port: interface.port_id.to_string(),
                        message,
                    }
                })?;
            for service in &network.services {
                if !data.services.contains(service) {
                    data.services.push(service.clone());
                }
            }
            data.networks.push(network);
        }
        data.links.push(link);
    }
    Ok(data)
}

fn network(
    interface: &InterfaceSpec,
    fixed_ip: &FixedIpSpec,
    index: usize,
    link: &str,
) -> Result<Network, String> {
    let address = parse_address("fixed IP", &fixed_ip.ip_address)?;
    let version = if address.is_ipv4() { 4 } else { 6 };
    if fixed_ip.ip_version != version {
        return Err(format!(
            "the fixed IP {address} is IPv{version}, not IPv{}",
            fixed_ip.ip_version
        ));
    }
    let subnet = Cidr::parse(&fixed_ip.subnet_cidr)?;
    if !subnet.contains(address) {
        return Err(format!(
            "the fixed IP {address} is outside its subnet {}",
            fixed_ip.subnet_cidr
        ));
    }
    let mut routes = Vec::new();
    if let Some(gateway) = &fixed_ip.gateway_ip {
        let gateway = parse_address("gateway", gateway)?;
        if gateway.is_ipv4() != address.is_ipv4() {
            return Err(format!(
                "the gateway {gateway} is not of the fixed IP {address}'s version"
            ));
        }
        let any = Cidr::any(gateway);
        routes.push(Route {
            network: any.network().to_string(),
            netmask: any.netmask().to_string(),
            gateway: gateway.to_string(),
        });
    }
    for route in &fixed_ip.host_routes {
        let destination = Cidr::parse(&route.destination)?;
        let nexthop = parse_address("host route next hop", &route.nexthop)?;
        if destination.address.is_ipv4() != nexthop.is_ipv4() {
            return Err(format!(
                "the host route to {} goes through {nexthop}, of another IP version",
                route.destination
            ));
        }
        routes.push(Route {
            network: destination.network().to_string(),
            netmask: destination.netmask().to_string(),
            gateway: nexthop.to_string(),
        });
    }
    let services = fixed_ip
        .dns_nameservers
        .iter()
        .map(|server| {
            Ok(Service {
                service_type: "dns".to_string(),
                address: parse_address("DNS server", server)?.to_string(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Network {
        id: format!("network{index}"),
        network_type: format!("ipv{version}"),
        link: link.to_string(),
        ip_address: address.to_string(),
        netmask: subnet.netmask().to_string(),
        routes,
        network_id: interface.network_id.to_string(),
        services,
    })
}

fn parse_address(what: &str, text: &str) -> Result<IpAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("the {what} {text:?} is not an IP address"))
}

/// An address with a prefix length (`10.0.0.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    address: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(text: &str) -> Result<Self, String> {
        let invalid = || format!("{text:?} is not a CIDR (address/prefix length)");
        let (address, prefix) = text.trim().split_once('/').ok_or_else(invalid)?;
        let address: IpAddr = address.parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(invalid());
        }
        Ok(Cidr { address, prefix })
    }

    /// `0.0.0.0/0` or `::/0`, of `like`'s version.
    fn any(like: IpAddr) -> Self {
        let address = match like {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        Cidr { address, prefix: 0 }
    }

    fn mask_bits(&self) -> u128 {
        let width = if self.address.is_ipv4() { 32 } else { 128 };
        let ones = u32::from(self.prefix);
        if ones == 0 {
            0
        } else {
            (u128::MAX << (128 - ones)) >> (128 - width)
        }
    }

    fn netmask(&self) -> IpAddr {
        to_address(self.address, self.mask_bits())
    }

    fn network(&self) -> IpAddr {
        to_address(self.address, bits(self.address) & self.mask_bits())
    }

    fn contains(&self, address: IpAddr) -> bool {
        address.is_ipv4() == self.address.is_ipv4()
            && bits(address) & self.mask_bits() == bits(self.address) & self.mask_bits()
    }
}

fn bits(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of `like`'s version with the low bits `value`.
fn to_address(like: IpAddr, value: u128) -> IpAddr {
    match like {
        // The value came from a 32-bit mask or address: it fits.
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}
