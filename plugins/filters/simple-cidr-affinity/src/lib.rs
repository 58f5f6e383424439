//! SimpleCIDRAffinityFilter: with scheduler hint `build_near_host_ip`, passes
//! the hosts whose IP lies in the network formed by that address and hint
//! `cidr` (default `/24`), e.g. `10.8.1.100` + `/24` = `10.8.1.0/24`. IPv4
//! and IPv6 both work; an address of the other family is never inside.
//! Without `build_near_host_ip` every host passes.
//!
//! As in Nova, the network is the concatenation of the two hints, so a `cidr`
//! hint must start with `/`. A malformed network rejects every host, and a
//! host without a valid IP is rejected.

use std::net::IpAddr;

use novum_plugin_sdk::{Column, Config, Filter, HostView, Request};

/// The prefix used when the request has no `cidr` hint.
pub const DEFAULT_CIDR: &str = "/24";

/// A network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Network {
    address: IpAddr,
    prefix: u32,
}

impl Network {
    /// Parses `address/prefix` (or a bare address: a single-host network).
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (
                address.parse::<IpAddr>().ok()?,
                Some(prefix.parse::<u32>().ok()?),
            ),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(Self { address, prefix })
    }

    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix).unwrap_or(0);
                u32::from(network) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix).unwrap_or(0);
                u128::from(network) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Nova's SimpleCIDRAffinityFilter.
#[derive(Default)]
pub struct SimpleCidrAffinityFilter {
    /// `None` without `build_near_host_ip`; else the network or why it is malformed.
    network: Option<Result<Network, String>>,
}

impl Filter for SimpleCidrAffinityFilter {
    const DESCRIPTION: &'static str = "host IP is in the build_near_host_ip/cidr network";
    const NEEDS: &'static [Column] = &[Column::HostIp];

    fn prepare(_config: &Config, request: &Request) -> Self {
        let network = request
            .hint_value("build_near_host_ip")
            .filter(|ip| !ip.is_empty())
            .map(|ip| {
                let text = format!("{ip}{}", request.hint_value("cidr").unwrap_or(DEFAULT_CIDR));
                Network::parse(&text).ok_or_else(|| {
                    format!("invalid network {text} from build_near_host_ip/cidr hints")
                })
            });
        Self { network }
    }

    fn host_passes(&self, _request: &Request, host: &HostView<'_>) -> Result<(), String> {
        let Some(network) = &self.network else {
            return Ok(());
        };
        let network = network.as_ref().map_err(Clone::clone)?;
        match host.host_ip().parse::<IpAddr>() {
            Ok(ip) if network.contains(ip) => Ok(()),
            Ok(_) => Err("host IP is outside the build_near_host_ip network".to_string()),
            Err(_) => Err("host has no valid IP address".to_string()),
        }
    }
}

novum_plugin_sdk::export_filter!(SimpleCidrAffinityFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use novum_plugin_sdk::fixtures::request;
    use novum_plugin_sdk::testing::{HostSpec, filter_passes, filter_verdicts, hint};

    fn host(ip: &str) -> HostSpec {
        HostSpec {
            host_ip: ip.into(),
            ..HostSpec::named(ip)
        }
    }

    fn check(hints: &[(&str, &str)], ips: &[&str]) -> Vec<bool> {
        let request = Request {
            scheduler_hints: hints
                .iter()
                .map(|(name, value)| hint(name, &[value]))
                .collect(),
            ..request()
        };
        let hosts: Vec<HostSpec> = ips.iter().map(|ip| host(ip)).collect();
        filter_passes::<SimpleCidrAffinityFilter>(&Config::default(), &request, &hosts)
    }

    #[test]
    fn slash_24_contains_the_neighbourhood() {
        let near = [("cidr", "/24"), ("build_near_host_ip", "10.8.1.100")];
        assert_eq!(
            check(&near, &["10.8.1.1", "10.8.2.1", "10.8.1.255"]),
            [true, false, true]
        );
    }

    #[test]
    fn slash_32_is_the_address_only() {
        let exact = [("cidr", "/32"), ("build_near_host_ip", "10.8.1.100")];
        assert_eq!(check(&exact, &["10.8.1.1", "10.8.1.100"]), [false, true]);
    }

    #[test]
    fn default_cidr_is_24() {
        assert_eq!(
            check(
                &[("build_near_host_ip", "192.168.5.7")],
                &["192.168.5.200", "192.168.6.1"]
            ),
            [true, false]
        );
    }

    #[test]
    fn slash_0_contains_everything_of_the_family() {
        let all = [("cidr", "/0"), ("build_near_host_ip", "1.2.3.4")];
        assert_eq!(check(&all, &["200.1.1.1", "::1"]), [true, false]);
    }

    #[test]
    fn ipv6() {
        let near = [("cidr", "/64"), ("build_near_host_ip", "2001:db8::1")];
        assert_eq!(
            check(&near, &["2001:db8::ff", "2001:db9::1", "10.0.0.1"]),
            [true, false, false]
        );
    }

    #[test]
    fn no_hint_passes_every_host() {
        assert_eq!(check(&[], &["10.0.0.1", ""]), [true, true]);
        assert_eq!(check(&[("cidr", "/8")], &["10.0.0.1"]), [true]);
    }

    #[test]
    fn malformed_network_or_host_ip_rejects() {
        let request = Request {
            scheduler_hints: vec![
                hint("build_near_host_ip", &["10.0.0.1"]),
                hint("cidr", &["/33"]),
            ],
            ..request()
        };
        let verdicts = filter_verdicts::<SimpleCidrAffinityFilter>(
            &Config::default(),
            &request,
            &[host("10.0.0.2")],
        );
        assert_eq!(
            verdicts,
            [Err(
                "invalid network 10.0.0.1/33 from build_near_host_ip/cidr hints".to_string()
            )]
        );
        assert_eq!(
            check(&[("build_near_host_ip", "not-an-ip")], &["10.0.0.1"]),
            [false]
        );
        assert_eq!(
            check(&[("build_near_host_ip", "10.0.0.1")], &["", "garbage"]),
            [false, false]
        );
    }

    #[test]
    fn network_parsing() {
        assert!(Network::parse("10.0.0.0/8").is_some());
        assert!(
            Network::parse("10.0.0.1").is_some_and(|n| n.contains("10.0.0.1".parse().unwrap()))
        );
        assert!(Network::parse("10.0.0.0/").is_none());
        assert!(Network::parse("::/129").is_none());
    }
}
