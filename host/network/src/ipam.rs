//! Address arithmetic of the IPAM, without a database: CIDRs, allocation
//! pools (default ones, validation), the lowest free address of a set of
//! pools, EUI-64 addresses for SLAAC subnets, MAC addresses.
//!
//! Addresses are handled as `u128` (an IPv4 address in the low 32 bits), so
//! one code path serves both versions.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::error::{NetworkError, invalid};

/// An inclusive range of addresses of one IP version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Range {
    /// The first address.
    pub first: u128,
    /// The last address (inclusive).
    pub last: u128,
}

/// The address as a number.
pub fn to_number(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The number as an address of `version` (4 or 6).
pub fn from_number(value: u128, version: u8) -> IpAddr {
    if version == 4 {
        IpAddr::V4(Ipv4Addr::from(u32::try_from(value).unwrap_or(u32::MAX)))
    } else {
        IpAddr::V6(Ipv6Addr::from(value))
    }
}

/// The IP version of an address.
pub fn version_of(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 4 } else { 6 }
}

/// Parses an address (Neutron's "'x' is not a valid IP address").
pub fn parse_ip(text: &str) -> Result<IpAddr, NetworkError> {
    text.trim()
        .parse::<IpAddr>()
        .map_err(|_| invalid(format!("'{text}' is not a valid IP address")))
}

/// Parses a subnet CIDR of `ip_version` as Neutron validates one: a valid
/// prefix, in its network form (`10.0.0.1/24` is refused, naming
/// `10.0.0.0/24`), of the requested version, not a /0.
pub fn parse_subnet_cidr(text: &str, ip_version: u8) -> Result<IpNet, NetworkError> {
    let net: IpNet = text
        .trim()
        .parse()
        .map_err(|_| invalid(format!("'{text}' is not a valid IP subnet")))?;
    if net.trunc() != net {
        return Err(invalid(format!(
            "'{text}' isn't a recognized IP subnet cidr, '{}' is recommended",
            net.trunc()
        )));
    }
    let version = version_of(net.addr());
    if version != ip_version {
        return Err(invalid(format!(
            "Cidr {text} does not match ip_version {ip_version}"
        )));
    }
    if net.prefix_len() == 0 {
        return Err(invalid(format!(
            "0 is not allowed as CIDR prefix length: {text}"
        )));
    }
    Ok(net)
}

/// Parses a CIDR or a bare address (as a host prefix), normalized to its
/// network (an address pair, a host route, what the firewall matches).
pub fn parse_prefix(text: &str) -> Result<IpNet, NetworkError> {
    parse_address_prefix(text).map(|net| net.trunc())
}

/// Parses a CIDR or a bare address (as a host prefix), keeping the address
/// as given, host bits included: a security group rule's
/// `remote_ip_prefix`, which Neutron stores so (`10.2.3.124/24`).
pub fn parse_address_prefix(text: &str) -> Result<IpNet, NetworkError> {
    let trimmed = text.trim();
    if let Ok(net) = trimmed.parse::<IpNet>() {
        return Ok(net);
    }
    trimmed
        .parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| invalid(format!("'{text}' is not a valid IP subnet")))
}

/// All addresses of `net`.
pub fn whole(net: &IpNet) -> Range {
    Range {
        first: to_number(net.network()),
        last: to_number(net.broadcast()),
    }
}

/// The addresses of `net` a host may hold: IPv4 without the network and
/// broadcast addresses (except in a /31 or /32), IPv6 without the
/// subnet-router anycast address (the first) unless it is a /127 or /128.
pub fn usable(net: &IpNet) -> Range {
    let Range { first, last } = whole(net);
    let max = net.max_prefix_len();
    match net {
        IpNet::V4(_) if net.prefix_len() + 1 < max => Range {
            first: first + 1,
            last: last - 1,
        },
        IpNet::V6(_) if net.prefix_len() + 1 < max => Range {
            first: first + 1,
            last,
        },
        _ => Range { first, last },
    }
}

/// The default allocation pools of `net`: its usable addresses minus the
/// gateway (Neutron's, one or two pools).
pub fn default_pools(net: &IpNet, gateway: Option<IpAddr>) -> Vec<Range> {
    let usable = usable(net);
    let Some(gateway) = gateway.map(to_number) else {
        return vec![usable];
    };
    if gateway < usable.first || gateway > usable.last {
        return vec![usable];
    }
    let mut pools = Vec::new();
    if gateway > usable.first {
        pools.push(Range {
            first: usable.first,
            last: gateway - 1,
        });
    }
    if gateway < usable.last {
        pools.push(Range {
            first: gateway + 1,
            last: usable.last,
        });
    }
    pools
}

/// A pool as Neutron prints it in errors (`first-last`).
pub fn pool_text(pool: &Range, version: u8) -> String {
    format!(
        "{}-{}",
        from_number(pool.first, version),
        from_number(pool.last, version)
    )
}

/// Parses and validates requested pools of subnet `net` with `gateway`:
/// each a valid range of the subnet's version, inside its usable addresses,
/// none overlapping another, none holding the gateway.
pub fn validate_pools(
    net: &IpNet,
    gateway: Option<IpAddr>,
    pools: &[(String, String)],
) -> Result<Vec<Range>, NetworkError> {
    let version = version_of(net.addr());
    let usable = usable(net);
    let mut ranges = Vec::new();
    for (start, end) in pools {
        let text = format!("{start}-{end}");
        let (Ok(first), Ok(last)) = (start.trim().parse::<IpAddr>(), end.trim().parse::<IpAddr>())
        else {
            return Err(NetworkError::InvalidAllocationPool(text));
        };
        if version_of(first) != version || version_of(last) != version || first > last {
            return Err(NetworkError::InvalidAllocationPool(text));
        }
        let range = Range {
            first: to_number(first),
            last: to_number(last),
        };
        if range.first < usable.first || range.last > usable.last {
            return Err(NetworkError::OutOfBoundsAllocationPool {
                pool: text,
                cidr: net.to_string(),
            });
        }
        ranges.push(range);
    }
    let mut sorted = ranges.clone();
    sorted.sort();
    for pair in sorted.windows(2) {
        if pair[1].first <= pair[0].last {
            return Err(NetworkError::OverlappingAllocationPools {
                pool_1: pool_text(&pair[0], version),
                pool_2: pool_text(&pair[1], version),
                cidr: net.to_string(),
            });
        }
    }
    if let Some(gateway) = gateway {
        let at = to_number(gateway);
        if let Some(pool) = ranges
            .iter()
            .find(|pool| pool.first <= at && at <= pool.last)
        {
            return Err(NetworkError::GatewayConflictWithAllocationPools {
                ip: gateway.to_string(),
                pool: pool_text(pool, version),
            });
        }
    }
    Ok(ranges)
}

/// Checks a gateway of subnet `net`: an address of the subnet's version,
/// inside it, not its network address nor (IPv4) its broadcast address.
pub fn validate_gateway(net: &IpNet, gateway: IpAddr) -> Result<(), NetworkError> {
    let at = to_number(gateway);
    let usable = usable(net);
    if version_of(gateway) != version_of(net.addr()) || at < usable.first || at > usable.last {
        return Err(invalid(format!(
            "Gateway IP {gateway} is not valid on subnet {net}"
        )));
    }
    Ok(())
}

/// The lowest address of `pools` (in address order) that is not in
/// `allocated`, or `None` when they are exhausted.
pub fn lowest_free(pools: &[Range], allocated: &BTreeSet<u128>) -> Option<u128> {
    let mut sorted = pools.to_vec();
    sorted.sort();
    for pool in sorted {
        let mut candidate = pool.first;
        for taken in allocated.range(pool.first..=pool.last) {
            if *taken == candidate {
                candidate = candidate.checked_add(1)?;
            } else {
                break;
            }
        }
        if candidate <= pool.last {
            return Some(candidate);
        }
    }
    None
}

/// Parses a MAC address (`aa:bb:cc:dd:ee:ff` or with dashes) into Neutron's
/// form (lower case, colons); refuses the zero, broadcast and multicast
/// addresses as Neutron does.
pub fn parse_mac(text: &str) -> Result<String, NetworkError> {
    let refuse = || invalid(format!("'{text}' is not a valid MAC address"));
    let parts: Vec<&str> = text.trim().split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(refuse());
    }
    let mut bytes = [0u8; 6];
    for (byte, part) in bytes.iter_mut().zip(&parts) {
        if part.len() != 2 {
            return Err(refuse());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| refuse())?;
    }
    if bytes == [0; 6] || bytes[0] & 1 == 1 {
        return Err(refuse());
    }
    Ok(format_mac(&bytes))
}

/// A MAC address as Neutron writes it.
pub fn format_mac(bytes: &[u8; 6]) -> String {
    bytes
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// OpenStack's base MAC prefix (`fa:16:3e`, Neutron's `base_mac`).
pub const MAC_PREFIX: [u8; 3] = [0xfa, 0x16, 0x3e];

/// A random MAC address under [`MAC_PREFIX`].
pub fn random_mac() -> String {
    let tail: [u8; 3] = rand::random();
    format_mac(&[
        MAC_PREFIX[0],
        MAC_PREFIX[1],
        MAC_PREFIX[2],
        tail[0],
        tail[1],
        tail[2],
    ])
}

/// The EUI-64 address of `mac` in the /64 `prefix` (SLAAC and
/// DHCPv6-stateless subnets): the MAC split by `ff:fe`, its universal/local
/// bit flipped.
pub fn eui64(prefix: &IpNet, mac: &str) -> Option<IpAddr> {
    let IpNet::V6(prefix) = prefix else {
        return None;
    };
    let parts: Vec<u8> = mac
        .split(':')
        .map(|part| u8::from_str_radix(part, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let [a, b, c, d, e, f] = <[u8; 6]>::try_from(parts).ok()?;
    let interface = u64::from_be_bytes([a ^ 0x02, b, c, 0xff, 0xfe, d, e, f]);
    let network = u128::from(prefix.network()) & !u128::from(u64::MAX);
    Some(IpAddr::V6(Ipv6Addr::from(network | u128::from(interface))))
}

/// Whether an IPv6 address mode hands out EUI-64 addresses (no IPAM pool).
pub fn is_auto_address_mode(mode: Option<&str>) -> bool {
    matches!(mode, Some("slaac" | "dhcpv6-stateless"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        text.parse().expect("cidr")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn default_pools_skip_network_broadcast_and_gateway() {
        let pools = default_pools(&net("10.0.0.0/24"), Some(ip("10.0.0.1")));
        assert_eq!(
            pools
                .iter()
                .map(|pool| pool_text(pool, 4))
                .collect::<Vec<_>>(),
            ["10.0.0.2-10.0.0.254"]
        );
        let split = default_pools(&net("10.0.0.0/29"), Some(ip("10.0.0.3")));
        assert_eq!(
            split
                .iter()
                .map(|pool| pool_text(pool, 4))
                .collect::<Vec<_>>(),
            ["10.0.0.1-10.0.0.2", "10.0.0.4-10.0.0.6"]
        );
        let v6 = default_pools(&net("2001:db8::/64"), Some(ip("2001:db8::1")));
        assert_eq!(
            pool_text(&v6[0], 6),
            "2001:db8::2-2001:db8::ffff:ffff:ffff:ffff"
        );
    }

    #[test]
    fn pools_are_validated() {
        let subnet = net("10.0.0.0/24");
        let pool = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert!(validate_pools(&subnet, None, &[pool("10.0.0.10", "10.0.0.20")]).is_ok());
        assert!(matches!(
            validate_pools(&subnet, None, &[pool("10.0.0.20", "10.0.0.10")]),
            Err(NetworkError::InvalidAllocationPool(_))
        ));
        assert!(matches!(
            validate_pools(&subnet, None, &[pool("10.0.0.0", "10.0.0.10")]),
            Err(NetworkError::OutOfBoundsAllocationPool { .. })
        ));
        assert!(matches!(
            validate_pools(
                &subnet,
                None,
                &[
                    pool("10.0.0.10", "10.0.0.20"),
                    pool("10.0.0.20", "10.0.0.30")
                ]
            ),
            Err(NetworkError::OverlappingAllocationPools { .. })
        ));
        assert!(matches!(
            validate_pools(
                &subnet,
                Some(ip("10.0.0.15")),
                &[pool("10.0.0.10", "10.0.0.20")]
            ),
            Err(NetworkError::GatewayConflictWithAllocationPools { .. })
        ));
    }

    #[test]
    fn lowest_free_walks_the_pools_in_order() {
        let pools = [
            Range {
                first: 10,
                last: 12,
            },
            Range { first: 2, last: 3 },
        ];
        let mut taken = BTreeSet::new();
        assert_eq!(lowest_free(&pools, &taken), Some(2));
        taken.extend([2, 3, 10]);
        assert_eq!(lowest_free(&pools, &taken), Some(11));
        taken.extend([11, 12]);
        assert_eq!(lowest_free(&pools, &taken), None);
    }

    #[test]
    fn cidrs_macs_and_eui64() {
        assert!(parse_subnet_cidr("10.0.0.0/24", 4).is_ok());
        assert!(parse_subnet_cidr("10.0.0.1/24", 4).is_err());
        assert!(parse_subnet_cidr("10.0.0.0/24", 6).is_err());
        assert!(parse_subnet_cidr("0.0.0.0/0", 4).is_err());
        assert!(parse_subnet_cidr("nonsense", 4).is_err());
        assert_eq!(
            parse_mac("FA-16-3E-00-00-01").expect("mac"),
            "fa:16:3e:00:00:01"
        );
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
        assert!(parse_mac("fa:16:3e:00:00").is_err());
        assert!(random_mac().starts_with("fa:16:3e:"));
        assert_eq!(
            eui64(&net("2001:db8::/64"), "fa:16:3e:12:34:56"),
            Some(ip("2001:db8::f816:3eff:fe12:3456"))
        );
    }
}
