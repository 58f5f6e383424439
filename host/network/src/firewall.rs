//! What a compute host enforces: the security groups of the ports bound to
//! it, with each rule's remote group resolved to its members' addresses
//! (Neutron's `security_group_rules_for_devices`). The agent turns the
//! answer into its host firewall.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;

use crate::compute::{bridge_name, tap_name};
use crate::error::NetworkError;
use crate::model::{Port, SecurityGroupRule};
use crate::{NetworkService, store};

/// One port bound to the host, with what its firewall needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSecurity {
    /// The port.
    pub port_id: String,
    /// Its network's bridge on the host.
    pub bridge: String,
    /// Its tap device.
    pub tap: String,
    /// Its MAC address.
    pub mac_address: String,
    /// Its fixed IPs and allowed address pairs (addresses or CIDRs): what
    /// it may send from and receives at.
    pub addresses: Vec<String>,
    /// `port_security_enabled`: false, nothing is filtered.
    pub port_security_enabled: bool,
    /// The rules of its groups, remote groups resolved.
    pub rules: Vec<ResolvedRule>,
}

/// A security group rule with its remote group replaced by the addresses
/// of the group's ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedRule {
    /// `ingress` or `egress`.
    pub direction: String,
    /// `IPv4` or `IPv6`.
    pub ethertype: String,
    /// Protocol name or number; `None`: any.
    pub protocol: Option<String>,
    /// First port (ICMP: type).
    pub port_range_min: Option<i64>,
    /// Last port (ICMP: code).
    pub port_range_max: Option<i64>,
    /// The remote addresses (CIDRs or addresses) the rule admits; `None`:
    /// any. An empty list admits nothing (a remote group without ports).
    pub remote: Option<Vec<String>>,
}

impl NetworkService {
    /// The ports bound to compute host `host` (instance ports), then the
    /// instance ports of the servers `arriving` (ids; a live migration's
    /// guests, still bound to their source) that are bound elsewhere,
    /// oldest first, with their security.
    pub async fn host_port_security(
        &self,
        host: &str,
        arriving: &[String],
    ) -> Result<Vec<PortSecurity>, NetworkError> {
        let mut conn = self.db.connection().await?;
        let rows = sqlx::query(
            "SELECT id FROM ports WHERE binding_host_id = $1 AND device_owner LIKE 'compute:%' ORDER BY created_at, id",
        )
        .bind(host)
        .fetch_all(&mut *conn)
        .await?;
        let mut ids = rows
            .iter()
            .map(|row| row.try_get::<String, _>("id"))
            .collect::<Result<Vec<_>, _>>()?;
        for instance in arriving {
            let rows = sqlx::query(
                "SELECT id FROM ports WHERE device_id = $1 AND device_owner LIKE 'compute:%' ORDER BY created_at, id",
            )
            .bind(instance)
            .fetch_all(&mut *conn)
            .await?;
            for row in &rows {
                let id: String = row.try_get("id")?;
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        let ports = store::ports(&mut conn, &ids).await?;
        let group_ids: BTreeSet<String> = ports
            .iter()
            .flat_map(|port| port.security_groups.iter().cloned())
            .collect();
        let group_ids: Vec<String> = group_ids.into_iter().collect();
        let groups = store::groups(&mut conn, &group_ids).await?;
        // The addresses of every port in each remote group the rules name,
        // on any host.
        let remote_ids: BTreeSet<String> = groups
            .iter()
            .flat_map(|group| group.rules.iter())
            .filter_map(|rule| rule.remote_group_id.clone())
            .collect();
        let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for remote in remote_ids {
            let rows = sqlx::query(
                "SELECT a.ip_address FROM network_ip_allocations a JOIN port_security_group_bindings b ON b.port_id = a.port_id WHERE b.security_group_id = $1 ORDER BY a.ip_address",
            )
            .bind(&remote)
            .fetch_all(&mut *conn)
            .await?;
            let addresses = rows
                .iter()
                .map(|row| row.try_get::<String, _>("ip_address"))
                .collect::<Result<Vec<_>, _>>()?;
            members.insert(remote, addresses);
        }
        Ok(ports
            .into_iter()
            .map(|port| {
                let rules = groups
                    .iter()
                    .filter(|group| port.security_groups.contains(&group.id))
                    .flat_map(|group| group.rules.iter())
                    .map(|rule| resolve(rule, &members))
                    .collect();
                port_security(port, rules)
            })
            .collect())
    }
}

fn port_security(port: Port, rules: Vec<ResolvedRule>) -> PortSecurity {
    let addresses = port
        .fixed_ips
        .iter()
        .map(|fixed| fixed.ip_address.clone())
        .chain(
            port.allowed_address_pairs
                .iter()
                .map(|pair| pair.ip_address.clone()),
        )
        .collect();
    PortSecurity {
        bridge: bridge_name(&port.network_id),
        tap: tap_name(&port.id),
        port_id: port.id,
        mac_address: port.mac_address,
        addresses,
        port_security_enabled: port.port_security_enabled,
        rules,
    }
}

fn resolve(rule: &SecurityGroupRule, members: &BTreeMap<String, Vec<String>>) -> ResolvedRule {
    let version = if rule.ethertype == "IPv6" { 6 } else { 4 };
    let remote = match (&rule.remote_ip_prefix, &rule.remote_group_id) {
        (Some(prefix), _) => Some(vec![
            crate::ipam::parse_prefix(prefix)
                .map(|network| network.to_string())
                .unwrap_or_else(|_| prefix.clone()),
        ]),
        (None, Some(group)) => Some(
            members
                .get(group)
                .map(|addresses| {
                    addresses
                        .iter()
                        .filter(|address| ip_version(address) == version)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
        ),
        (None, None) => None,
    };
    ResolvedRule {
        direction: rule.direction.clone(),
        ethertype: rule.ethertype.clone(),
        protocol: rule.protocol.clone(),
        port_range_min: rule.port_range_min,
        port_range_max: rule.port_range_max,
        remote,
    }
}

fn ip_version(address: &str) -> u8 {
    if address.contains(':') { 6 } else { 4 }
}
