//! The host firewall: security groups enforced with nftables, per port.
//!
//! The controller answers the security of every port bound to this host
//! ([`HostFirewall`]); [`render`] turns it into one nftables script that
//! replaces the agent's two tables atomically (`nft -f -`):
//!
//! - `inet <table>`, hook `forward`: bridged IPv4/IPv6 traffic passes it
//!   (with `net.bridge.bridge-nf-call-iptables = 1`, which [`Firewall::apply`]
//!   sets), its input interface being the network's bridge. Replies of
//!   admitted connections pass (connection tracking: the groups are
//!   stateful, as Neutron's); then traffic *from* a port's address goes
//!   through the port's egress chain (what the rules allow `return`s,
//!   everything else is dropped) and traffic *to* it through its ingress
//!   chain (allowed: `accept`, else dropped). A packet between two ports of
//!   this host passes the sender's egress and the receiver's ingress.
//! - `bridge <table>`, hook `prerouting`: anti-spoofing: a frame from a
//!   port's tap must carry the port's MAC and, for IP, one of its
//!   addresses (DHCP's `0.0.0.0` and IPv6 link-local excepted).
//!
//! Ports with `port_security_enabled = false` are not filtered. Neighbour
//! discovery (ICMPv6 types 133–136) always passes. Traffic a guest sends to
//! the host itself (the metadata service on 169.254.169.254) is not
//! forwarded and not filtered here; the host's answers are not either.
//! Nothing else on the host is touched: the chains match only the ports'
//! addresses on novum's bridges.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use novum_wire::{Direction, FirewallRule, HostFirewall, PortFirewall};
use tracing::{info, warn};

use crate::driver::{parse_mac, valid_device_name};

/// The default table name prefix (the agent adds its host name).
pub const TABLE_PREFIX: &str = "novum";

/// Why the firewall could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// `nft` could not be run.
    #[error("running nft: {0}")]
    Spawn(#[from] std::io::Error),
    /// `nft` refused the ruleset.
    #[error("nft refused the ruleset: {0}")]
    Refused(String),
}

/// An nftables table name for the agent of `host`: `novum_` and the host
/// name with every character but ASCII letters and digits as `_`.
pub fn table_name(host: &str) -> String {
    let host: String = host
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{TABLE_PREFIX}_{host}")
}

/// An address or CIDR as nftables takes it, or `None` when it is neither.
fn address(text: &str) -> Option<(u8, String)> {
    let (ip, prefix) = match text.split_once('/') {
        Some((ip, prefix)) => (ip, Some(prefix)),
        None => (text, None),
    };
    let ip: IpAddr = ip.parse().ok()?;
    let version = if ip.is_ipv4() { 4 } else { 6 };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match prefix {
        None => Some((version, ip.to_string())),
        Some(prefix) => {
            let prefix: u8 = prefix.parse().ok().filter(|p| *p <= max)?;
            Some((version, format!("{ip}/{prefix}")))
        }
    }
}

/// `ip` or `ip6`: the nftables payload of an IP version.
fn ip_keyword(version: u8) -> &'static str {
    if version == 6 { "ip6" } else { "ip" }
}

/// The match of a rule's protocol and ports, or `None` when the protocol
/// is unknown (the rule is left out: it allows nothing that can be named).
fn protocol_match(rule: &FirewallRule) -> Option<String> {
    let Some(protocol) = rule.protocol.as_deref().map(str::to_ascii_lowercase) else {
        return Some(String::new());
    };
    let name = match protocol.as_str() {
        "any" | "" => return Some(String::new()),
        "tcp" | "6" => "tcp",
        "udp" | "17" => "udp",
        "sctp" | "132" => "sctp",
        "icmp" | "1" => "icmp",
        "ipv6-icmp" | "icmpv6" | "58" => "ipv6-icmp",
        number => {
            let number: u8 = number.parse().ok()?;
            return Some(format!(" meta l4proto {number}"));
        }
    };
    let mut text = format!(" meta l4proto {name}");
    match name {
        "icmp" | "ipv6-icmp" => {
            let keyword = if name == "icmp" { "icmp" } else { "icmpv6" };
            if let Some(icmp_type) = rule.port_range_min.filter(|t| *t <= 255) {
                let _ = write!(text, " {keyword} type {icmp_type}");
                if let Some(code) = rule.port_range_max.filter(|c| *c <= 255) {
                    let _ = write!(text, " {keyword} code {code}");
                }
            }
        }
        _ => match (rule.port_range_min, rule.port_range_max) {
            (Some(min), Some(max)) if min <= max && max <= 65535 => {
                if min == max {
                    let _ = write!(text, " th dport {min}");
                } else {
                    let _ = write!(text, " th dport {min}-{max}");
                }
            }
            (Some(min), None) if min <= 65535 => {
                let _ = write!(text, " th dport {min}");
            }
            _ => {}
        },
    }
    Some(text)
}

/// One rule of a port's chain, or `None` when it admits nothing.
fn rule_line(rule: &FirewallRule) -> Option<String> {
    let version = if rule.ip_version == 6 { 6 } else { 4 };
    let family = if version == 6 { "ipv6" } else { "ipv4" };
    let protocol = protocol_match(rule)?;
    let remote = match &rule.remote {
        None => String::new(),
        Some(remotes) => {
            let remotes: Vec<String> = remotes
                .iter()
                .filter_map(|remote| address(remote))
                .filter(|(v, _)| *v == version)
                .map(|(_, text)| text)
                .collect();
            if remotes.is_empty() {
                return None;
            }
            let field = match rule.direction {
                Direction::Ingress => "saddr",
                Direction::Egress => "daddr",
            };
            format!(
                " {} {field} {{ {} }}",
                ip_keyword(version),
                remotes.join(", ")
            )
        }
    };
    let verdict = match rule.direction {
        Direction::Ingress => "accept",
        Direction::Egress => "return",
    };
    Some(format!("meta nfproto {family}{protocol}{remote} {verdict}"))
}

/// Neighbour discovery, which IPv6 needs to work at all.
const NEIGHBOUR_DISCOVERY: &str = "meta l4proto ipv6-icmp icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert }";

/// Whether the port's names can go into the script as they are.
fn port_is_sane(port: &PortFirewall) -> bool {
    valid_device_name(&port.bridge)
        && valid_device_name(&port.tap)
        && parse_mac(&port.mac_address).is_ok()
}

/// The nftables script giving `firewall` in tables named `table` (both
/// replaced whole). A port whose names are not plain device names is left
/// out with a warning; so are addresses that are not addresses.
pub fn render(firewall: &HostFirewall, table: &str) -> String {
    let mut script = String::new();
    // Create-then-delete makes the delete succeed when the table is new.
    let _ = writeln!(script, "table inet {table} {{}}");
    let _ = writeln!(script, "delete table inet {table}");
    let _ = writeln!(script, "table bridge {table} {{}}");
    let _ = writeln!(script, "delete table bridge {table}");
    let ports: Vec<&PortFirewall> = firewall
        .ports
        .iter()
        .filter(|port| port.port_security_enabled)
        .filter(|port| {
            let sane = port_is_sane(port);
            if !sane {
                warn!(port = %port.port_id, "port with unusable device names or MAC; not filtered");
            }
            sane
        })
        .collect();
    let addresses_of = |port: &PortFirewall| -> Vec<(u8, String)> {
        port.addresses
            .iter()
            .filter_map(|text| address(text))
            .collect()
    };

    let _ = writeln!(script, "table inet {table} {{");
    let _ = writeln!(script, "  chain forward {{");
    let _ = writeln!(
        script,
        "    type filter hook forward priority filter; policy accept;"
    );
    let mut bridges: Vec<&str> = ports.iter().map(|port| port.bridge.as_str()).collect();
    bridges.sort_unstable();
    bridges.dedup();
    if !bridges.is_empty() {
        let set = bridges
            .iter()
            .map(|bridge| format!("\"{bridge}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            script,
            "    iifname {{ {set} }} ct state established,related accept"
        );
        let _ = writeln!(script, "    iifname {{ {set} }} ct state invalid drop");
    }
    for (index, port) in ports.iter().enumerate() {
        for (version, address) in addresses_of(port) {
            let _ = writeln!(
                script,
                "    iifname \"{}\" {} saddr {address} jump egress_{index}",
                port.bridge,
                ip_keyword(version)
            );
        }
    }
    for (index, port) in ports.iter().enumerate() {
        for (version, address) in addresses_of(port) {
            let _ = writeln!(
                script,
                "    iifname \"{}\" {} daddr {address} jump ingress_{index}",
                port.bridge,
                ip_keyword(version)
            );
        }
    }
    let _ = writeln!(script, "  }}");
    for (index, port) in ports.iter().enumerate() {
        for direction in [Direction::Egress, Direction::Ingress] {
            let (name, verdict) = match direction {
                Direction::Egress => ("egress", "return"),
                Direction::Ingress => ("ingress", "accept"),
            };
            let _ = writeln!(script, "  chain {name}_{index} {{");
            let _ = writeln!(script, "    comment \"port {}\"", port.port_id);
            let _ = writeln!(script, "    {NEIGHBOUR_DISCOVERY} {verdict}");
            for rule in port.rules.iter().filter(|rule| rule.direction == direction) {
                if let Some(line) = rule_line(rule) {
                    let _ = writeln!(script, "    {line}");
                }
            }
            let _ = writeln!(script, "    drop");
            let _ = writeln!(script, "  }}");
        }
    }
    let _ = writeln!(script, "}}");

    let _ = writeln!(script, "table bridge {table} {{");
    let _ = writeln!(script, "  chain prerouting {{");
    let _ = writeln!(
        script,
        "    type filter hook prerouting priority filter; policy accept;"
    );
    for port in &ports {
        let mac = parse_mac(&port.mac_address).unwrap_or_default();
        let _ = writeln!(
            script,
            "    iifname \"{}\" ether saddr != {mac} drop",
            port.tap
        );
        let addresses = addresses_of(port);
        for (version, any) in [(4, "0.0.0.0"), (6, "fe80::/10")] {
            let mut own: Vec<String> = addresses
                .iter()
                .filter(|(v, _)| *v == version)
                .map(|(_, text)| text.clone())
                .collect();
            own.push(any.to_string());
            let _ = writeln!(
                script,
                "    iifname \"{}\" {} saddr != {{ {} }} drop",
                port.tap,
                ip_keyword(version),
                own.join(", ")
            );
        }
    }
    let _ = writeln!(script, "  }}");
    let _ = writeln!(script, "}}");
    script
}

/// The agent's host firewall: applies [`render`]'s script when it changed.
#[derive(Debug)]
pub struct Firewall {
    table: String,
    applied: Mutex<Option<String>>,
}

impl Firewall {
    /// A firewall keeping its rules in the tables named `table`.
    pub fn new(table: impl Into<String>) -> Self {
        Firewall {
            table: table.into(),
            applied: Mutex::new(None),
        }
    }

    /// The tables' name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Enforce `firewall` (blocking: runs `nft`). Returns whether the
    /// rules changed.
    pub fn apply(&self, firewall: &HostFirewall) -> Result<bool, FirewallError> {
        let script = render(firewall, &self.table);
        let mut applied = self
            .applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if applied.as_deref() == Some(script.as_str()) {
            return Ok(false);
        }
        enable_bridge_filtering();
        run_nft(&script)?;
        info!(
            table = %self.table,
            ports = firewall.ports.len(),
            "host firewall updated"
        );
        *applied = Some(script);
        Ok(true)
    }

    /// Remove the tables (nothing filtered any more).
    pub fn remove(&self) -> Result<(), FirewallError> {
        let table = &self.table;
        run_nft(&format!(
            "table inet {table} {{}}\ndelete table inet {table}\ntable bridge {table} {{}}\ndelete table bridge {table}\n"
        ))?;
        *self
            .applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        Ok(())
    }
}

/// Bridged IP traffic must pass the inet hooks for the rules to see it.
fn enable_bridge_filtering() {
    for key in ["bridge-nf-call-iptables", "bridge-nf-call-ip6tables"] {
        let path = format!("/proc/sys/net/bridge/{key}");
        if !std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1")
            && let Err(error) = std::fs::write(&path, "1")
        {
            warn!(%error, key, "cannot enable bridge filtering; bridged traffic is not filtered");
        }
    }
}

fn run_nft(script: &str) -> Result<(), FirewallError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(FirewallError::Refused(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn rule(direction: Direction, protocol: Option<&str>, remote: Option<&[&str]>) -> FirewallRule {
        FirewallRule {
            direction,
            ip_version: 4,
            protocol: protocol.map(str::to_string),
            port_range_min: None,
            port_range_max: None,
            remote: remote.map(|r| r.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn rules_render_as_nftables_matches() {
        let mut ssh = rule(Direction::Ingress, Some("tcp"), Some(&["0.0.0.0/0"]));
        ssh.port_range_min = Some(22);
        ssh.port_range_max = Some(22);
        assert_eq!(
            rule_line(&ssh).as_deref(),
            Some("meta nfproto ipv4 meta l4proto tcp th dport 22 ip saddr { 0.0.0.0/0 } accept")
        );
        let mut ping = rule(Direction::Ingress, Some("icmp"), None);
        ping.port_range_min = Some(8);
        assert_eq!(
            rule_line(&ping).as_deref(),
            Some("meta nfproto ipv4 meta l4proto icmp icmp type 8 accept")
        );
        assert_eq!(
            rule_line(&rule(Direction::Egress, None, None)).as_deref(),
            Some("meta nfproto ipv4 return")
        );
        // A remote group without members admits nothing; so does garbage.
        assert_eq!(rule_line(&rule(Direction::Ingress, None, Some(&[]))), None);
        assert_eq!(
            rule_line(&rule(
                Direction::Ingress,
                None,
                Some(&["10.0.0.1; flush ruleset"])
            )),
            None
        );
        assert_eq!(
            rule_line(&rule(Direction::Ingress, Some("bogus"), None)),
            None
        );
    }

    #[test]
    fn ports_with_unusable_names_are_left_out() {
        let port = PortFirewall {
            port_id: Uuid::nil(),
            bridge: "brq\"; flush".to_string(),
            tap: "tap0".to_string(),
            mac_address: "fa:16:3e:00:00:01".to_string(),
            addresses: vec!["10.0.0.5".to_string()],
            port_security_enabled: true,
            rules: vec![],
        };
        let script = render(&HostFirewall { ports: vec![port] }, "novum_t");
        assert!(!script.contains("flush"), "{script}");
        assert!(!script.contains("10.0.0.5"), "{script}");
    }

    #[test]
    fn table_names_are_identifiers() {
        assert_eq!(table_name("compute-1.example"), "novum_compute_1_example");
    }
}
