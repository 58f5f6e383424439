//! Rows to records: the columns each resource selects and the loaders that
//! fill in the child rows (subnets of networks, pools and name servers of
//! subnets, fixed IPs, groups and address pairs of ports, rules of groups)
//! with one query per child table for a whole page.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::NetworkError;
use crate::listing::{Clauses, bind_all};
use crate::model::{
    AddressPair, AllocationPool, Binding, FixedIp, HostRoute, Network, Port, Provider,
    SecurityGroup, SecurityGroupRule, Subnet,
};

/// Ids per `IN (...)` list.
pub(crate) const CHUNK: usize = 500;

pub(crate) const NETWORK_COLUMNS: &str = "id, project_id, name, description, admin_state_up, shared, router_external, mtu, status, network_type, physical_network, segmentation_id, port_security_enabled, is_default, created_at, updated_at, revision_number";
pub(crate) const SUBNET_COLUMNS: &str = "id, network_id, project_id, name, description, ip_version, cidr, gateway_ip, enable_dhcp, ipv6_ra_mode, ipv6_address_mode, created_at, updated_at, revision_number";
pub(crate) const PORT_COLUMNS: &str = "id, network_id, project_id, name, description, mac_address, admin_state_up, status, device_id, device_owner, binding_host_id, binding_vif_type, binding_vnic_type, port_security_enabled, created_for_instance, created_at, updated_at, revision_number";
pub(crate) const GROUP_COLUMNS: &str =
    "id, project_id, name, description, stateful, created_at, updated_at, revision_number";
pub(crate) const RULE_COLUMNS: &str = "id, security_group_id, project_id, direction, ethertype, protocol, port_range_min, port_range_max, remote_ip_prefix, remote_group_id, description, created_at, updated_at, revision_number";

fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

fn network_from(row: &AnyRow) -> Result<Network, sqlx::Error> {
    Ok(Network {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        admin_state_up: flag(row, "admin_state_up")?,
        shared: flag(row, "shared")?,
        router_external: flag(row, "router_external")?,
        mtu: row.try_get("mtu")?,
        status: row.try_get("status")?,
        provider: Provider {
            network_type: row.try_get("network_type")?,
            physical_network: row.try_get("physical_network")?,
            segmentation_id: row.try_get("segmentation_id")?,
        },
        port_security_enabled: flag(row, "port_security_enabled")?,
        is_default: flag(row, "is_default")?,
        subnets: Vec::new(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        revision_number: row.try_get("revision_number")?,
    })
}

fn subnet_from(row: &AnyRow) -> Result<Subnet, sqlx::Error> {
    let version: i64 = row.try_get("ip_version")?;
    Ok(Subnet {
        id: row.try_get("id")?,
        network_id: row.try_get("network_id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        ip_version: if version == 6 { 6 } else { 4 },
        cidr: row.try_get("cidr")?,
        gateway_ip: row.try_get("gateway_ip")?,
        enable_dhcp: flag(row, "enable_dhcp")?,
        ipv6_ra_mode: row.try_get("ipv6_ra_mode")?,
        ipv6_address_mode: row.try_get("ipv6_address_mode")?,
        allocation_pools: Vec::new(),
        dns_nameservers: Vec::new(),
        host_routes: Vec::new(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        revision_number: row.try_get("revision_number")?,
    })
}

fn port_from(row: &AnyRow) -> Result<Port, sqlx::Error> {
    Ok(Port {
        id: row.try_get("id")?,
        network_id: row.try_get("network_id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        mac_address: row.try_get("mac_address")?,
        admin_state_up: flag(row, "admin_state_up")?,
        status: row.try_get("status")?,
        device_id: row.try_get("device_id")?,
        device_owner: row.try_get("device_owner")?,
        fixed_ips: Vec::new(),
        security_groups: Vec::new(),
        port_security_enabled: flag(row, "port_security_enabled")?,
        allowed_address_pairs: Vec::new(),
        binding: Binding {
            host_id: row.try_get("binding_host_id")?,
            vif_type: row.try_get("binding_vif_type")?,
            vnic_type: row.try_get("binding_vnic_type")?,
        },
        created_for_instance: flag(row, "created_for_instance")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        revision_number: row.try_get("revision_number")?,
    })
}

fn group_from(row: &AnyRow) -> Result<SecurityGroup, sqlx::Error> {
    Ok(SecurityGroup {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        stateful: flag(row, "stateful")?,
        rules: Vec::new(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        revision_number: row.try_get("revision_number")?,
    })
}

pub(crate) fn rule_from(row: &AnyRow) -> Result<SecurityGroupRule, sqlx::Error> {
    Ok(SecurityGroupRule {
        id: row.try_get("id")?,
        security_group_id: row.try_get("security_group_id")?,
        project_id: row.try_get("project_id")?,
        direction: row.try_get("direction")?,
        ethertype: row.try_get("ethertype")?,
        protocol: row.try_get("protocol")?,
        port_range_min: row.try_get("port_range_min")?,
        port_range_max: row.try_get("port_range_max")?,
        remote_ip_prefix: row.try_get("remote_ip_prefix")?,
        remote_group_id: row.try_get("remote_group_id")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        revision_number: row.try_get("revision_number")?,
    })
}

/// Runs `SELECT {columns} FROM {table} WHERE {key} IN (ids) {tail}` over
/// chunks of `ids`.
pub(crate) async fn select_in(
    conn: &mut AnyConnection,
    columns: &str,
    table: &str,
    key: &str,
    ids: &[String],
    tail: &str,
) -> Result<Vec<AnyRow>, NetworkError> {
    let mut rows = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let mut clauses = Clauses::default();
        let list = clauses.any_of(key, chunk);
        let sql = format!("SELECT {columns} FROM {table} WHERE {list} {tail}");
        rows.extend(
            bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &clauses.binds)
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    Ok(rows)
}

/// Puts `items` in the order of `ids` (dropping ids without an item).
fn in_order<T>(ids: &[String], items: Vec<T>, id_of: impl Fn(&T) -> &str) -> Vec<T> {
    let mut by_id: HashMap<String, T> = items
        .into_iter()
        .map(|item| (id_of(&item).to_string(), item))
        .collect();
    ids.iter().filter_map(|id| by_id.remove(id)).collect()
}

/// The networks with `ids`, in that order, with their subnets.
pub(crate) async fn networks(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<Vec<Network>, NetworkError> {
    let rows = select_in(conn, NETWORK_COLUMNS, "networks", "id", ids, "").await?;
    let mut networks = rows
        .iter()
        .map(network_from)
        .collect::<Result<Vec<_>, _>>()?;
    let subnets = select_in(
        conn,
        "id, network_id",
        "subnets",
        "network_id",
        ids,
        "ORDER BY created_at, id",
    )
    .await?;
    let mut by_network: HashMap<String, Vec<String>> = HashMap::new();
    for row in subnets {
        by_network
            .entry(row.try_get("network_id")?)
            .or_default()
            .push(row.try_get("id")?);
    }
    for network in &mut networks {
        network.subnets = by_network.remove(&network.id).unwrap_or_default();
    }
    Ok(in_order(ids, networks, |network| &network.id))
}

/// The subnets with `ids`, in that order, with pools, name servers, routes.
pub(crate) async fn subnets(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<Vec<Subnet>, NetworkError> {
    let rows = select_in(conn, SUBNET_COLUMNS, "subnets", "id", ids, "").await?;
    let mut subnets = rows
        .iter()
        .map(subnet_from)
        .collect::<Result<Vec<_>, _>>()?;
    let mut pools: HashMap<String, Vec<AllocationPool>> = HashMap::new();
    for row in select_in(
        conn,
        "subnet_id, first_ip, last_ip",
        "subnet_allocation_pools",
        "subnet_id",
        ids,
        "ORDER BY subnet_id, position",
    )
    .await?
    {
        pools
            .entry(row.try_get("subnet_id")?)
            .or_default()
            .push(AllocationPool {
                start: row.try_get("first_ip")?,
                end: row.try_get("last_ip")?,
            });
    }
    let mut servers: HashMap<String, Vec<String>> = HashMap::new();
    for row in select_in(
        conn,
        "subnet_id, address",
        "subnet_dns_nameservers",
        "subnet_id",
        ids,
        "ORDER BY subnet_id, position",
    )
    .await?
    {
        servers
            .entry(row.try_get("subnet_id")?)
            .or_default()
            .push(row.try_get("address")?);
    }
    let mut routes: HashMap<String, Vec<HostRoute>> = HashMap::new();
    for row in select_in(
        conn,
        "subnet_id, destination, nexthop",
        "subnet_host_routes",
        "subnet_id",
        ids,
        "ORDER BY subnet_id, position",
    )
    .await?
    {
        routes
            .entry(row.try_get("subnet_id")?)
            .or_default()
            .push(HostRoute {
                destination: row.try_get("destination")?,
                nexthop: row.try_get("nexthop")?,
            });
    }
    for subnet in &mut subnets {
        subnet.allocation_pools = pools.remove(&subnet.id).unwrap_or_default();
        subnet.dns_nameservers = servers.remove(&subnet.id).unwrap_or_default();
        subnet.host_routes = routes.remove(&subnet.id).unwrap_or_default();
    }
    Ok(in_order(ids, subnets, |subnet| &subnet.id))
}

/// The ports with `ids`, in that order, with fixed IPs, groups and pairs.
pub(crate) async fn ports(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<Vec<Port>, NetworkError> {
    let rows = select_in(conn, PORT_COLUMNS, "ports", "id", ids, "").await?;
    let mut ports = rows.iter().map(port_from).collect::<Result<Vec<_>, _>>()?;
    let mut fixed: HashMap<String, Vec<FixedIp>> = HashMap::new();
    for row in select_in(
        conn,
        "port_id, subnet_id, ip_address",
        "network_ip_allocations",
        "port_id",
        ids,
        "ORDER BY port_id, position",
    )
    .await?
    {
        fixed
            .entry(row.try_get("port_id")?)
            .or_default()
            .push(FixedIp {
                subnet_id: row.try_get("subnet_id")?,
                ip_address: row.try_get("ip_address")?,
            });
    }
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    for row in select_in(
        conn,
        "port_id, security_group_id",
        "port_security_group_bindings",
        "port_id",
        ids,
        "ORDER BY port_id, security_group_id",
    )
    .await?
    {
        groups
            .entry(row.try_get("port_id")?)
            .or_default()
            .push(row.try_get("security_group_id")?);
    }
    let mut pairs: HashMap<String, Vec<AddressPair>> = HashMap::new();
    for row in select_in(
        conn,
        "port_id, ip_address, mac_address",
        "port_allowed_address_pairs",
        "port_id",
        ids,
        "ORDER BY port_id, position",
    )
    .await?
    {
        pairs
            .entry(row.try_get("port_id")?)
            .or_default()
            .push(AddressPair {
                ip_address: row.try_get("ip_address")?,
                mac_address: row.try_get("mac_address")?,
            });
    }
    for port in &mut ports {
        port.fixed_ips = fixed.remove(&port.id).unwrap_or_default();
        port.security_groups = groups.remove(&port.id).unwrap_or_default();
        port.allowed_address_pairs = pairs.remove(&port.id).unwrap_or_default();
    }
    Ok(in_order(ids, ports, |port| &port.id))
}

/// The security groups with `ids`, in that order, with their rules.
pub(crate) async fn groups(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<Vec<SecurityGroup>, NetworkError> {
    let rows = select_in(conn, GROUP_COLUMNS, "security_groups", "id", ids, "").await?;
    let mut groups = rows.iter().map(group_from).collect::<Result<Vec<_>, _>>()?;
    let mut rules: HashMap<String, Vec<SecurityGroupRule>> = HashMap::new();
    for row in select_in(
        conn,
        RULE_COLUMNS,
        "security_group_rules",
        "security_group_id",
        ids,
        "ORDER BY security_group_id, created_at, id",
    )
    .await?
    {
        let rule = rule_from(&row)?;
        rules
            .entry(rule.security_group_id.clone())
            .or_default()
            .push(rule);
    }
    for group in &mut groups {
        group.rules = rules.remove(&group.id).unwrap_or_default();
    }
    Ok(in_order(ids, groups, |group| &group.id))
}

/// The security group rules with `ids`, in that order.
pub(crate) async fn rules(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<Vec<SecurityGroupRule>, NetworkError> {
    let rows = select_in(conn, RULE_COLUMNS, "security_group_rules", "id", ids, "").await?;
    let rules = rows.iter().map(rule_from).collect::<Result<Vec<_>, _>>()?;
    Ok(in_order(ids, rules, |rule| &rule.id))
}

/// The number of rows of `table` where `column` = `value`.
pub(crate) async fn count(
    conn: &mut AnyConnection,
    table: &str,
    column: &str,
    value: &str,
) -> Result<i64, NetworkError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) AS n FROM {table} WHERE {column} = $1"
    )))
    .bind(value)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("n")?)
}
