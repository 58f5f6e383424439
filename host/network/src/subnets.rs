//! Subnets: create (CIDR, gateway, pools, name servers, host routes, IPv6
//! modes, validated as Neutron does), show, list, update, delete.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use sqlx::{AnyConnection, Row};

use crate::error::{NetworkError, invalid};
use crate::ipam::{self, Range};
use crate::listing::{self, Attribute, Clauses, Listing, Page, Spec};
use crate::model::{
    AllocationPool, Caller, GatewayRequest, HostRoute, NewSubnet, Subnet, SubnetUpdate,
};
use crate::networks;
use crate::quotas::QuotaResource;
use crate::{NetworkService, check_length, flag, new_id, store};

/// A new subnet, validated.
pub(crate) struct PreparedSubnet {
    name: String,
    description: String,
    net: IpNet,
    gateway: Option<IpAddr>,
    pools: Vec<Range>,
    dns: Vec<String>,
    routes: Vec<HostRoute>,
}

/// The IPv6 modes Neutron accepts.
pub const IPV6_MODES: [&str; 3] = ["slaac", "dhcpv6-stateful", "dhcpv6-stateless"];

/// What subnets filter and sort on.
pub(crate) const ATTRIBUTES: &[Attribute] = &[
    listing::text("id", "id"),
    listing::text("name", "name"),
    listing::text("description", "description"),
    listing::text("network_id", "network_id"),
    listing::text("project_id", "project_id"),
    listing::text("tenant_id", "project_id"),
    listing::int("ip_version", "ip_version"),
    listing::text("cidr", "cidr"),
    listing::text("gateway_ip", "gateway_ip"),
    listing::boolean("enable_dhcp", "enable_dhcp"),
    listing::text("ipv6_ra_mode", "ipv6_ra_mode"),
    listing::text("ipv6_address_mode", "ipv6_address_mode"),
    listing::text("created_at", "created_at"),
    listing::text("updated_at", "updated_at"),
    listing::int("revision_number", "revision_number"),
];

/// The SQL condition "a subnet `project` may see": its own, or of a network
/// it may see.
fn visible_sql(clauses: &mut Clauses, project: &str) -> String {
    let networks = networks::visible_sql(clauses, project);
    let project = clauses.text(project);
    format!("(project_id = {project} OR network_id IN (SELECT id FROM networks WHERE {networks}))")
}

/// The subnet `id`, whoever may see it.
pub(crate) async fn load(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<Subnet>, NetworkError> {
    Ok(store::subnets(conn, &[id.to_string()]).await?.pop())
}

/// The subnet `id` as `caller` sees it, and its network.
pub(crate) async fn visible(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: &str,
) -> Result<(Subnet, crate::model::Network), NetworkError> {
    let not_found = || NetworkError::SubnetNotFound(id.to_string());
    let subnet = load(conn, id).await?.ok_or_else(not_found)?;
    let network = networks::load(conn, &subnet.network_id)
        .await?
        .ok_or_else(not_found)?;
    if caller.is_admin
        || subnet.project_id == caller.project_id
        || networks::may_see(caller, &network)
    {
        Ok((subnet, network))
    } else {
        Err(not_found())
    }
}

/// The subnets of `network_id`, oldest first.
pub(crate) async fn of_network(
    conn: &mut AnyConnection,
    network_id: &str,
) -> Result<Vec<Subnet>, NetworkError> {
    let rows = sqlx::query("SELECT id FROM subnets WHERE network_id = $1 ORDER BY created_at, id")
        .bind(network_id)
        .fetch_all(&mut *conn)
        .await?;
    let ids = rows
        .iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect::<Result<Vec<_>, _>>()?;
    store::subnets(conn, &ids).await
}

/// A subnet's CIDR, parsed (stored ones are valid).
pub(crate) fn cidr_of(subnet: &Subnet) -> Result<IpNet, NetworkError> {
    subnet.cidr.parse().map_err(|_| {
        invalid(format!(
            "stored subnet {} has an invalid cidr {}",
            subnet.id, subnet.cidr
        ))
    })
}

/// A subnet's pools as ranges.
pub(crate) fn pools_of(subnet: &Subnet) -> Vec<Range> {
    subnet
        .allocation_pools
        .iter()
        .filter_map(|pool| {
            let first = pool.start.parse::<IpAddr>().ok()?;
            let last = pool.end.parse::<IpAddr>().ok()?;
            Some(Range {
                first: ipam::to_number(first),
                last: ipam::to_number(last),
            })
        })
        .collect()
}

fn validate_ipv6_modes(
    ip_version: u8,
    net: &IpNet,
    ra_mode: Option<&str>,
    address_mode: Option<&str>,
) -> Result<(), NetworkError> {
    for mode in [ra_mode, address_mode].into_iter().flatten() {
        if !IPV6_MODES.contains(&mode) {
            return Err(invalid(format!(
                "'{mode}' is not in ['dhcpv6-stateful', 'dhcpv6-stateless', 'slaac']"
            )));
        }
    }
    if ip_version == 4 && (ra_mode.is_some() || address_mode.is_some()) {
        return Err(invalid(
            "ipv6_ra_mode or ipv6_address_mode cannot be set when ip_version is 4",
        ));
    }
    if let (Some(ra), Some(address)) = (ra_mode, address_mode)
        && ra != address
    {
        return Err(invalid(format!(
            "ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to '{address}' is not valid. If both attributes are set, they must be the same value"
        )));
    }
    if ipam::is_auto_address_mode(address_mode) && net.prefix_len() != 64 {
        return Err(invalid(format!(
            "Invalid CIDR {net} for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64"
        )));
    }
    Ok(())
}

/// Parses a gateway of subnet `net` (an IPv6 link-local gateway may lie
/// outside the subnet, as Neutron allows).
fn parse_gateway(net: &IpNet, text: &str) -> Result<IpAddr, NetworkError> {
    let gateway = ipam::parse_ip(text)?;
    if let IpAddr::V6(v6) = gateway
        && (v6.segments()[0] & 0xffc0) == 0xfe80
        && net.addr().is_ipv6()
    {
        return Ok(gateway);
    }
    ipam::validate_gateway(net, gateway)?;
    Ok(gateway)
}

fn validate_dns(
    servers: &[String],
    subnet: &str,
    limit: usize,
) -> Result<Vec<String>, NetworkError> {
    if servers.len() > limit {
        return Err(NetworkError::DnsNameServersExhausted {
            subnet: subnet.to_string(),
            limit,
        });
    }
    let mut seen = HashSet::new();
    let mut parsed = Vec::new();
    for server in servers {
        let address = ipam::parse_ip(server)?.to_string();
        if !seen.insert(address.clone()) {
            return Err(invalid(format!("Duplicate nameserver '{server}'")));
        }
        parsed.push(address);
    }
    Ok(parsed)
}

fn validate_routes(
    routes: &[HostRoute],
    version: u8,
    subnet: &str,
    limit: usize,
) -> Result<Vec<HostRoute>, NetworkError> {
    if routes.len() > limit {
        return Err(NetworkError::HostRoutesExhausted {
            subnet: subnet.to_string(),
            limit,
        });
    }
    let mut seen = HashSet::new();
    let mut parsed = Vec::new();
    for route in routes {
        let destination = ipam::parse_prefix(&route.destination)?;
        let nexthop = ipam::parse_ip(&route.nexthop)?;
        if ipam::version_of(destination.addr()) != version || ipam::version_of(nexthop) != version {
            return Err(invalid(format!(
                "Host route {} via {} does not match ip_version {version}",
                route.destination, route.nexthop
            )));
        }
        let route = HostRoute {
            destination: destination.to_string(),
            nexthop: nexthop.to_string(),
        };
        if !seen.insert((route.destination.clone(), route.nexthop.clone())) {
            return Err(invalid(format!(
                "Duplicate hostroute '{} {}'",
                route.destination, route.nexthop
            )));
        }
        parsed.push(route);
    }
    Ok(parsed)
}

fn pool_pairs(pools: &[AllocationPool]) -> Vec<(String, String)> {
    pools
        .iter()
        .map(|pool| (pool.start.clone(), pool.end.clone()))
        .collect()
}

/// Replaces the pools, name servers and routes of `subnet_id`.
async fn write_children(
    conn: &mut AnyConnection,
    subnet_id: &str,
    version: u8,
    pools: Option<&[Range]>,
    dns: Option<&[String]>,
    routes: Option<&[HostRoute]>,
) -> Result<(), NetworkError> {
    if let Some(pools) = pools {
        sqlx::query("DELETE FROM subnet_allocation_pools WHERE subnet_id = $1")
            .bind(subnet_id)
            .execute(&mut *conn)
            .await?;
        for (position, pool) in pools.iter().enumerate() {
            sqlx::query("INSERT INTO subnet_allocation_pools (subnet_id, position, first_ip, last_ip) VALUES ($1, $2, $3, $4)")
                .bind(subnet_id)
                .bind(position as i64)
                .bind(ipam::from_number(pool.first, version).to_string())
                .bind(ipam::from_number(pool.last, version).to_string())
                .execute(&mut *conn)
                .await?;
        }
    }
    if let Some(dns) = dns {
        sqlx::query("DELETE FROM subnet_dns_nameservers WHERE subnet_id = $1")
            .bind(subnet_id)
            .execute(&mut *conn)
            .await?;
        for (position, address) in dns.iter().enumerate() {
            sqlx::query("INSERT INTO subnet_dns_nameservers (subnet_id, position, address) VALUES ($1, $2, $3)")
                .bind(subnet_id)
                .bind(position as i64)
                .bind(address)
                .execute(&mut *conn)
                .await?;
        }
    }
    if let Some(routes) = routes {
        sqlx::query("DELETE FROM subnet_host_routes WHERE subnet_id = $1")
            .bind(subnet_id)
            .execute(&mut *conn)
            .await?;
        for (position, route) in routes.iter().enumerate() {
            sqlx::query("INSERT INTO subnet_host_routes (subnet_id, position, destination, nexthop) VALUES ($1, $2, $3, $4)")
                .bind(subnet_id)
                .bind(position as i64)
                .bind(&route.destination)
                .bind(&route.nexthop)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

impl NetworkService {
    /// Creates a subnet on a network the caller owns (or any, for an
    /// admin), quota `subnet` of its project. Refusals: an invalid or
    /// non-network-form CIDR, one of the other IP version, a /0; a gateway
    /// outside the subnet or in a pool; pools invalid, outside the subnet
    /// or overlapping; too many or invalid name servers and routes; IPv6
    /// modes on IPv4 or inconsistent; a CIDR overlapping another subnet of
    /// the network.
    pub async fn create_subnet(
        &self,
        caller: &Caller,
        new: &NewSubnet,
    ) -> Result<Subnet, NetworkError> {
        let prepared = self.prepare_subnet(new)?;
        let mut conn = self.db.connection().await?;
        let network = networks::visible(&mut conn, caller, &new.network_id).await?;
        drop(conn);
        let project = self.subnet_owner(caller, new, &network)?;
        let mut tx = self.begin_locked(&project, &[&network.id]).await?;
        let subnet = self
            .insert_subnet(&mut tx, new, &prepared, &network, &project)
            .await?;
        tx.commit().await.map_err(novum_db::DbError::from)?;
        tracing::info!(subnet = %subnet.id, network = %network.id, cidr = %subnet.cidr, "subnet created");
        Ok(subnet)
    }

    /// The project a new subnet on `network` belongs to; only the network's
    /// owner (or an admin) may add one.
    pub(crate) fn subnet_owner(
        &self,
        caller: &Caller,
        new: &NewSubnet,
        network: &crate::model::Network,
    ) -> Result<String, NetworkError> {
        if !networks::owns(caller, network) {
            return Err(NetworkError::PolicyNotAuthorized("create_subnet".into()));
        }
        match &new.project_id {
            Some(project) => self.owner_for(caller, Some(project)),
            None if caller.is_admin => Ok(network.project_id.clone()),
            None => Ok(caller.project_id.clone()),
        }
    }

    /// Validates a new subnet (no database).
    pub(crate) fn prepare_subnet(&self, new: &NewSubnet) -> Result<PreparedSubnet, NetworkError> {
        let name = new.name.clone().unwrap_or_default();
        let description = new.description.clone().unwrap_or_default();
        check_length(&name)?;
        check_length(&description)?;
        if new.ip_version != 4 && new.ip_version != 6 {
            return Err(invalid(format!("'{}' is not in [4, 6]", new.ip_version)));
        }
        let net = ipam::parse_subnet_cidr(&new.cidr, new.ip_version)?;
        validate_ipv6_modes(
            new.ip_version,
            &net,
            new.ipv6_ra_mode.as_deref(),
            new.ipv6_address_mode.as_deref(),
        )?;
        let gateway = match &new.gateway_ip {
            GatewayRequest::Default => {
                Some(ipam::from_number(ipam::usable(&net).first, new.ip_version))
            }
            GatewayRequest::Disabled => None,
            GatewayRequest::Address(text) => Some(parse_gateway(&net, text)?),
        };
        let pools = match &new.allocation_pools {
            Some(pools) => ipam::validate_pools(&net, gateway, &pool_pairs(pools))?,
            None => ipam::default_pools(&net, gateway),
        };
        let dns = validate_dns(
            &new.dns_nameservers,
            &net.to_string(),
            self.config.max_dns_nameservers,
        )?;
        let routes = validate_routes(
            &new.host_routes,
            new.ip_version,
            &net.to_string(),
            self.config.max_subnet_host_routes,
        )?;
        Ok(PreparedSubnet {
            name,
            description,
            net,
            gateway,
            pools,
            dns,
            routes,
        })
    }

    /// Inserts a prepared subnet of `project` on `network` in `conn`, a
    /// transaction serialized on the project's quota and the network:
    /// quota `subnet`, no overlap with the network's other subnets.
    pub(crate) async fn insert_subnet(
        &self,
        conn: &mut AnyConnection,
        new: &NewSubnet,
        prepared: &PreparedSubnet,
        network: &crate::model::Network,
        project: &str,
    ) -> Result<Subnet, NetworkError> {
        let net = prepared.net;
        let id = new_id();
        self.check_quota(conn, project, &[(QuotaResource::Subnet, 1)])
            .await?;
        for other in of_network(conn, &network.id).await? {
            let other_net = cidr_of(&other)?;
            if other_net.contains(&net.network()) || net.contains(&other_net.network()) {
                return Err(invalid(format!(
                    "Requested subnet with cidr: {net} for network: {} overlaps with another subnet",
                    network.id
                )));
            }
        }
        let now = novum_db::now();
        sqlx::query(
            "INSERT INTO subnets (id, network_id, project_id, name, description, ip_version, cidr, gateway_ip, enable_dhcp, ipv6_ra_mode, ipv6_address_mode, created_at, updated_at, revision_number) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, 1)",
        )
        .bind(&id)
        .bind(&network.id)
        .bind(project)
        .bind(&prepared.name)
        .bind(&prepared.description)
        .bind(i64::from(new.ip_version))
        .bind(net.to_string())
        .bind(prepared.gateway.map(|gateway| gateway.to_string()))
        .bind(flag(new.enable_dhcp.unwrap_or(true)))
        .bind(&new.ipv6_ra_mode)
        .bind(&new.ipv6_address_mode)
        .bind(&now)
        .execute(&mut *conn)
        .await?;
        write_children(
            conn,
            &id,
            new.ip_version,
            Some(&prepared.pools),
            Some(&prepared.dns),
            Some(&prepared.routes),
        )
        .await?;
        load(conn, &id)
            .await?
            .ok_or_else(|| NetworkError::SubnetNotFound(id.clone()))
    }

    /// The subnet `id` as `caller` sees it.
    pub async fn get_subnet(&self, caller: &Caller, id: &str) -> Result<Subnet, NetworkError> {
        let mut conn = self.db.connection().await?;
        Ok(visible(&mut conn, caller, id).await?.0)
    }

    /// The page of `listing` over the subnets `caller` may see.
    pub async fn list_subnets(
        &self,
        caller: &Caller,
        listing: &Listing,
    ) -> Result<Page<Subnet>, NetworkError> {
        let mut conn = self.db.connection().await?;
        let project = caller.project_id.clone();
        let visible = move |clauses: &mut Clauses| visible_sql(clauses, &project);
        let special = |_: &str, _: &[String], _: &mut Clauses| Ok(false);
        let spec = Spec {
            table: "subnets",
            attributes: ATTRIBUTES,
            special: &special,
            visible: if caller.is_admin {
                None
            } else {
                Some(&visible)
            },
            not_found: NetworkError::SubnetNotFound,
        };
        let (ids, more) = listing::page_ids(&mut conn, &spec, listing).await?;
        let items = store::subnets(&mut conn, &ids).await?;
        Ok(Page { items, more })
    }

    /// Updates subnet `id` (its owner, the network's owner or an admin):
    /// name, description, gateway, DHCP, name servers, host routes, pools
    /// (addresses handed out stay), validated as on create.
    pub async fn update_subnet(
        &self,
        caller: &Caller,
        id: &str,
        update: &SubnetUpdate,
    ) -> Result<Subnet, NetworkError> {
        for text in [&update.name, &update.description].into_iter().flatten() {
            check_length(text)?;
        }
        let mut conn = self.db.connection().await?;
        let (subnet, network) = visible(&mut conn, caller, id).await?;
        drop(conn);
        if !(networks::owns(caller, &network) || subnet.project_id == caller.project_id) {
            return Err(NetworkError::PolicyNotAuthorized("update_subnet".into()));
        }
        let net = cidr_of(&subnet)?;
        let gateway = match &update.gateway_ip {
            Some(Some(text)) => Some(parse_gateway(&net, text)?),
            Some(None) => None,
            None => subnet
                .gateway_ip
                .as_deref()
                .map(ipam::parse_ip)
                .transpose()?,
        };
        let pools = match &update.allocation_pools {
            Some(pools) => Some(ipam::validate_pools(&net, gateway, &pool_pairs(pools))?),
            None => {
                let current = pools_of(&subnet);
                let pairs: Vec<(String, String)> = current
                    .iter()
                    .map(|pool| {
                        (
                            ipam::from_number(pool.first, subnet.ip_version).to_string(),
                            ipam::from_number(pool.last, subnet.ip_version).to_string(),
                        )
                    })
                    .collect();
                ipam::validate_pools(&net, gateway, &pairs)?;
                None
            }
        };
        let dns = update
            .dns_nameservers
            .as_deref()
            .map(|servers| validate_dns(servers, id, self.config.max_dns_nameservers))
            .transpose()?;
        let routes = update
            .host_routes
            .as_deref()
            .map(|routes| {
                validate_routes(
                    routes,
                    subnet.ip_version,
                    id,
                    self.config.max_subnet_host_routes,
                )
            })
            .transpose()?;
        let mut tx = self
            .db
            .begin_serialized(&crate::network_lock(&network.id))
            .await?;
        sqlx::query(
            "UPDATE subnets SET name = $1, description = $2, gateway_ip = $3, enable_dhcp = $4, updated_at = $5, revision_number = revision_number + 1 WHERE id = $6",
        )
        .bind(update.name.as_ref().unwrap_or(&subnet.name))
        .bind(update.description.as_ref().unwrap_or(&subnet.description))
        .bind(gateway.map(|gateway| gateway.to_string()))
        .bind(flag(update.enable_dhcp.unwrap_or(subnet.enable_dhcp)))
        .bind(novum_db::now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        write_children(
            &mut tx,
            id,
            subnet.ip_version,
            pools.as_deref(),
            dns.as_deref(),
            routes.as_deref(),
        )
        .await?;
        let subnet = load(&mut tx, id)
            .await?
            .ok_or_else(|| NetworkError::SubnetNotFound(id.to_string()))?;
        tx.commit().await.map_err(novum_db::DbError::from)?;
        Ok(subnet)
    }

    /// Deletes subnet `id` (its owner, the network's owner or an admin).
    /// Addresses held by ports the network owns (`network:*`) go with it;
    /// any other allocation is [`NetworkError::SubnetInUse`].
    pub async fn delete_subnet(&self, caller: &Caller, id: &str) -> Result<(), NetworkError> {
        let mut conn = self.db.connection().await?;
        let (subnet, network) = visible(&mut conn, caller, id).await?;
        drop(conn);
        if !(networks::owns(caller, &network) || subnet.project_id == caller.project_id) {
            return Err(NetworkError::PolicyNotAuthorized("delete_subnet".into()));
        }
        let mut tx = self
            .db
            .begin_serialized(&crate::network_lock(&network.id))
            .await?;
        let in_use = sqlx::query(
            "SELECT COUNT(*) AS n FROM network_ip_allocations a JOIN ports p ON p.id = a.port_id WHERE a.subnet_id = $1 AND p.device_owner NOT LIKE 'network:%'",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?
        .try_get::<i64, _>("n")?;
        if in_use > 0 {
            return Err(NetworkError::SubnetInUse(id.to_string()));
        }
        sqlx::query("DELETE FROM network_ip_allocations WHERE subnet_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM subnets WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(NetworkError::SubnetNotFound(id.to_string()));
        }
        tx.commit().await.map_err(novum_db::DbError::from)?;
        tracing::info!(subnet = %id, "subnet deleted");
        Ok(())
    }
}
