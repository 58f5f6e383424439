//! Ports: create (MAC, fixed IPs from the IPAM, security groups, allowed
//! address pairs), show, list, update, delete.
//!
//! Addresses: a port's fixed IPs are rows of `network_ip_allocations`,
//! written in a transaction serialized on the network (`network:<id>`),
//! after the quota lock of the port's project. Without `fixed_ips` a port
//! gets the lowest free address of the first IPv4 subnet that has one, the
//! same of the first stateful IPv6 subnet, and its EUI-64 address on every
//! SLAAC/DHCPv6-stateless subnet; with `fixed_ips` exactly what they ask
//! for (a subnet: its lowest free address; an address: that one).

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;

use sqlx::{AnyConnection, Row};

use crate::error::{NetworkError, invalid};
use crate::ipam;
use crate::listing::{self, Attribute, Clauses, Listing, Page, Spec};
use crate::model::{
    AddressPairRequest, Caller, FixedIp, FixedIpRequest, Network, NewPort, Port, PortUpdate,
    STATUS_ACTIVE, STATUS_DOWN, Subnet, VIF_TYPE_BRIDGE, VIF_TYPE_UNBOUND, VNIC_TYPES,
};
use crate::quotas::QuotaResource;
use crate::{
    NetworkService, admin_only, check_length, flag, networks, security_groups, store, subnets,
};

/// How many random MACs are tried before giving up.
pub const MAC_ATTEMPTS: usize = 16;

/// What ports filter and sort on.
pub(crate) const ATTRIBUTES: &[Attribute] = &[
    listing::text("id", "id"),
    listing::text("name", "name"),
    listing::text("description", "description"),
    listing::text("network_id", "network_id"),
    listing::text("project_id", "project_id"),
    listing::text("tenant_id", "project_id"),
    listing::text("mac_address", "mac_address"),
    listing::boolean("admin_state_up", "admin_state_up"),
    listing::text("status", "status"),
    listing::text("device_id", "device_id"),
    listing::text("device_owner", "device_owner"),
    listing::text("binding:host_id", "binding_host_id"),
    listing::text("binding:vif_type", "binding_vif_type"),
    listing::text("binding:vnic_type", "binding_vnic_type"),
    listing::boolean("port_security_enabled", "port_security_enabled"),
    listing::text("created_at", "created_at"),
    listing::text("updated_at", "updated_at"),
    listing::int("revision_number", "revision_number"),
];

/// The port `id`, whoever may see it.
pub(crate) async fn load(conn: &mut AnyConnection, id: &str) -> Result<Option<Port>, NetworkError> {
    Ok(store::ports(conn, &[id.to_string()]).await?.pop())
}

/// The port `id` as `caller` sees it (its owner, the network's owner, an
/// admin), and its network.
pub(crate) async fn visible(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: &str,
) -> Result<(Port, Network), NetworkError> {
    let not_found = || NetworkError::PortNotFound(id.to_string());
    let port = load(conn, id).await?.ok_or_else(not_found)?;
    let network = networks::load(conn, &port.network_id)
        .await?
        .ok_or_else(not_found)?;
    if caller.is_admin
        || port.project_id == caller.project_id
        || network.project_id == caller.project_id
    {
        Ok((port, network))
    } else {
        Err(not_found())
    }
}

/// Validated allowed address pairs: `(ip or cidr, mac if given)`.
pub(crate) fn validate_pairs(
    pairs: &[AddressPairRequest],
    max: usize,
) -> Result<Vec<(String, Option<String>)>, NetworkError> {
    if pairs.len() > max {
        return Err(NetworkError::AllowedAddressPairExhausted(max));
    }
    let mut seen = HashSet::new();
    let mut parsed = Vec::new();
    for pair in pairs {
        let ip = if pair.ip_address.contains('/') {
            ipam::parse_prefix(&pair.ip_address)?.to_string()
        } else {
            ipam::parse_ip(&pair.ip_address)?.to_string()
        };
        let mac = pair
            .mac_address
            .as_deref()
            .map(ipam::parse_mac)
            .transpose()?;
        if !seen.insert((ip.clone(), mac.clone())) {
            return Err(NetworkError::DuplicateAddressPairInRequest {
                mac: mac.unwrap_or_else(|| "None".to_string()),
                ip,
            });
        }
        parsed.push((ip, mac));
    }
    Ok(parsed)
}

fn validate_vnic(vnic: &str) -> Result<(), NetworkError> {
    if VNIC_TYPES.contains(&vnic) {
        Ok(())
    } else {
        Err(invalid(format!("'{vnic}' is not in {VNIC_TYPES:?}")))
    }
}

/// Everything a new port row needs, validated.
pub(crate) struct PortDraft {
    pub id: String,
    pub project: String,
    pub network: Network,
    pub name: String,
    pub description: String,
    pub mac: Option<String>,
    pub admin_state_up: bool,
    pub device_id: String,
    pub device_owner: String,
    pub fixed_ips: Option<Vec<FixedIpRequest>>,
    /// Ids (checked in the transaction); `None`: the default group when
    /// port security is on.
    pub security_groups: Option<Vec<String>>,
    pub port_security: bool,
    pub pairs: Vec<(String, Option<String>)>,
    pub host_id: String,
    pub vnic_type: String,
    pub created_for_instance: bool,
}

/// The addresses of `subnet_id` handed out.
async fn allocated(
    conn: &mut AnyConnection,
    subnet_id: &str,
) -> Result<BTreeSet<u128>, NetworkError> {
    let rows = sqlx::query("SELECT ip_address FROM network_ip_allocations WHERE subnet_id = $1")
        .bind(subnet_id)
        .fetch_all(&mut *conn)
        .await?;
    let mut taken = BTreeSet::new();
    for row in rows {
        let text: String = row.try_get("ip_address")?;
        if let Ok(ip) = text.parse::<IpAddr>() {
            taken.insert(ipam::to_number(ip));
        }
    }
    Ok(taken)
}

/// Records `ip` of `subnet` for `port_id` at `position`.
async fn insert_allocation(
    conn: &mut AnyConnection,
    port_id: &str,
    subnet: &Subnet,
    ip: IpAddr,
    position: usize,
) -> Result<FixedIp, NetworkError> {
    let text = ip.to_string();
    let taken = sqlx::query(
        "SELECT port_id FROM network_ip_allocations WHERE subnet_id = $1 AND ip_address = $2",
    )
    .bind(&subnet.id)
    .bind(&text)
    .fetch_optional(&mut *conn)
    .await?;
    if taken.is_some() {
        return Err(NetworkError::IpAddressAlreadyAllocated {
            ip: text,
            subnet_id: subnet.id.clone(),
        });
    }
    let inserted = sqlx::query(
        "INSERT INTO network_ip_allocations (port_id, subnet_id, network_id, ip_address, position) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(port_id)
    .bind(&subnet.id)
    .bind(&subnet.network_id)
    .bind(&text)
    .bind(position as i64)
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(_) => Ok(FixedIp {
            subnet_id: subnet.id.clone(),
            ip_address: text,
        }),
        Err(error) if novum_db::is_unique_violation(&error) => {
            Err(NetworkError::IpAddressAlreadyAllocated {
                ip: text,
                subnet_id: subnet.id.clone(),
            })
        }
        Err(error) => Err(error.into()),
    }
}

/// The lowest free address of `subnet`'s pools, or None when exhausted.
async fn lowest_free(
    conn: &mut AnyConnection,
    subnet: &Subnet,
) -> Result<Option<IpAddr>, NetworkError> {
    let taken = allocated(conn, &subnet.id).await?;
    Ok(ipam::lowest_free(&subnets::pools_of(subnet), &taken)
        .map(|number| ipam::from_number(number, subnet.ip_version)))
}

/// Allocates the addresses of `requests` (None: automatic) on `network`
/// for port `port_id` with `mac`, numbering from `first_position`. Runs in
/// a transaction serialized on the network.
pub(crate) async fn allocate_ips(
    conn: &mut AnyConnection,
    network: &Network,
    port_id: &str,
    mac: &str,
    requests: Option<&[FixedIpRequest]>,
    first_position: usize,
) -> Result<Vec<FixedIp>, NetworkError> {
    let subnets = subnets::of_network(conn, &network.id).await?;
    let mut fixed = Vec::new();
    let mut position = first_position;
    let Some(requests) = requests else {
        let auto =
            |subnet: &&Subnet| ipam::is_auto_address_mode(subnet.ipv6_address_mode.as_deref());
        let v4: Vec<&Subnet> = subnets
            .iter()
            .filter(|subnet| subnet.ip_version == 4)
            .collect();
        let v6_stateful: Vec<&Subnet> = subnets
            .iter()
            .filter(|subnet| subnet.ip_version == 6)
            .filter(|subnet| !auto(subnet))
            .collect();
        for family in [v4, v6_stateful] {
            if family.is_empty() {
                continue;
            }
            let mut done = false;
            for subnet in family {
                if let Some(ip) = lowest_free(conn, subnet).await? {
                    fixed.push(insert_allocation(conn, port_id, subnet, ip, position).await?);
                    position += 1;
                    done = true;
                    break;
                }
            }
            if !done {
                return Err(NetworkError::IpAddressGenerationFailure(network.id.clone()));
            }
        }
        for subnet in subnets
            .iter()
            .filter(|subnet| subnet.ip_version == 6)
            .filter(auto)
        {
            let net = subnets::cidr_of(subnet)?;
            if let Some(ip) = ipam::eui64(&net, mac) {
                fixed.push(insert_allocation(conn, port_id, subnet, ip, position).await?);
                position += 1;
            }
        }
        return Ok(fixed);
    };
    let mut requested_ips = HashSet::new();
    for request in requests {
        let subnet = match &request.subnet_id {
            Some(subnet_id) => Some(subnets.iter().find(|subnet| &subnet.id == subnet_id).ok_or_else(|| {
                invalid(format!(
                    "Failed to create port on network {}, because fixed_ips included invalid subnet {subnet_id}",
                    network.id
                ))
            })?),
            None => None,
        };
        let ip = request
            .ip_address
            .as_deref()
            .map(ipam::parse_ip)
            .transpose()?;
        let (subnet, ip) = match (subnet, ip) {
            (None, None) => {
                return Err(invalid(
                    "Exactly one of subnet_id or ip_address is required in fixed_ips entries; neither given",
                ));
            }
            (Some(subnet), None) => {
                let ip = if ipam::is_auto_address_mode(subnet.ipv6_address_mode.as_deref()) {
                    ipam::eui64(&subnets::cidr_of(subnet)?, mac)
                } else {
                    lowest_free(conn, subnet).await?
                };
                (
                    subnet,
                    ip.ok_or_else(|| NetworkError::IpAddressGenerationFailure(network.id.clone()))?,
                )
            }
            (Some(subnet), Some(ip)) => {
                let net = subnets::cidr_of(subnet)?;
                let number = ipam::to_number(ip);
                let usable = ipam::usable(&net);
                if ipam::version_of(ip) != subnet.ip_version
                    || number < usable.first
                    || number > usable.last
                {
                    return Err(NetworkError::InvalidIpForSubnet {
                        ip: ip.to_string(),
                        subnet_id: subnet.id.clone(),
                    });
                }
                (subnet, ip)
            }
            (None, Some(ip)) => {
                let number = ipam::to_number(ip);
                let found = subnets.iter().find(|subnet| {
                    subnets::cidr_of(subnet).is_ok_and(|net| {
                        let usable = ipam::usable(&net);
                        ipam::version_of(ip) == subnet.ip_version
                            && number >= usable.first
                            && number <= usable.last
                    })
                });
                (
                    found.ok_or_else(|| NetworkError::InvalidIpForNetwork(ip.to_string()))?,
                    ip,
                )
            }
        };
        if request.ip_address.is_some() {
            if ipam::is_auto_address_mode(subnet.ipv6_address_mode.as_deref()) {
                return Err(invalid(format!(
                    "IPv6 address {ip} cannot be directly assigned to a port on subnet {} as the subnet is configured for automatic addresses",
                    subnet.id
                )));
            }
            if subnet.gateway_ip.as_deref() == Some(ip.to_string().as_str()) {
                return Err(NetworkError::IpAddressAlreadyAllocated {
                    ip: ip.to_string(),
                    subnet_id: subnet.id.clone(),
                });
            }
        }
        if !requested_ips.insert((subnet.id.clone(), ip)) {
            return Err(invalid(format!("Duplicate IP address '{ip}'")));
        }
        fixed.push(insert_allocation(conn, port_id, subnet, ip, position).await?);
        position += 1;
    }
    Ok(fixed)
}

/// Checks that every group of `ids` belongs to `project`.
async fn check_groups(
    conn: &mut AnyConnection,
    project: &str,
    ids: &[String],
) -> Result<(), NetworkError> {
    for id in ids {
        match security_groups::load(conn, id).await? {
            Some(group) if group.project_id == project => {}
            _ => return Err(NetworkError::SecurityGroupNotFound(id.clone())),
        }
    }
    Ok(())
}

/// Replaces the group bindings of `port_id`.
async fn write_groups(
    conn: &mut AnyConnection,
    port_id: &str,
    ids: &[String],
) -> Result<(), NetworkError> {
    sqlx::query("DELETE FROM port_security_group_bindings WHERE port_id = $1")
        .bind(port_id)
        .execute(&mut *conn)
        .await?;
    for id in ids.iter().collect::<BTreeSet<_>>() {
        sqlx::query(
            "INSERT INTO port_security_group_bindings (port_id, security_group_id) VALUES ($1, $2)",
        )
        .bind(port_id)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Replaces the allowed address pairs of `port_id` (MAC default `mac`).
async fn write_pairs(
    conn: &mut AnyConnection,
    port_id: &str,
    mac: &str,
    pairs: &[(String, Option<String>)],
) -> Result<(), NetworkError> {
    sqlx::query("DELETE FROM port_allowed_address_pairs WHERE port_id = $1")
        .bind(port_id)
        .execute(&mut *conn)
        .await?;
    for (position, (ip, pair_mac)) in pairs.iter().enumerate() {
        sqlx::query("INSERT INTO port_allowed_address_pairs (port_id, position, ip_address, mac_address) VALUES ($1, $2, $3, $4)")
            .bind(port_id)
            .bind(position as i64)
            .bind(ip)
            .bind(pair_mac.as_deref().unwrap_or(mac))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Whether `mac` is taken on `network_id`.
async fn mac_taken(
    conn: &mut AnyConnection,
    network_id: &str,
    mac: &str,
) -> Result<bool, NetworkError> {
    Ok(
        sqlx::query("SELECT id FROM ports WHERE network_id = $1 AND mac_address = $2")
            .bind(network_id)
            .bind(mac)
            .fetch_optional(&mut *conn)
            .await?
            .is_some(),
    )
}

/// Inserts the port of `draft` in `conn`, a transaction serialized on the
/// quota of `draft.project` and on its network: quota `port`, MAC, row,
/// addresses, groups, pairs.
pub(crate) async fn insert_port(
    conn: &mut AnyConnection,
    service: &NetworkService,
    draft: &PortDraft,
) -> Result<Port, NetworkError> {
    service
        .check_quota(conn, &draft.project, &[(QuotaResource::Port, 1)])
        .await?;
    let mac = match &draft.mac {
        Some(mac) => {
            if mac_taken(conn, &draft.network.id, mac).await? {
                return Err(NetworkError::MacAddressInUse {
                    net_id: draft.network.id.clone(),
                    mac: mac.clone(),
                });
            }
            mac.clone()
        }
        None => {
            let mut chosen = None;
            for _ in 0..MAC_ATTEMPTS {
                let candidate = ipam::random_mac();
                if !mac_taken(conn, &draft.network.id, &candidate).await? {
                    chosen = Some(candidate);
                    break;
                }
            }
            chosen.ok_or_else(|| {
                NetworkError::MacAddressGenerationFailure(draft.network.id.clone())
            })?
        }
    };
    let bound = !draft.host_id.is_empty();
    let now = novum_db::now();
    let inserted = sqlx::query(
        "INSERT INTO ports (id, network_id, project_id, name, description, mac_address, admin_state_up, status, device_id, device_owner, binding_host_id, binding_vif_type, binding_vnic_type, port_security_enabled, created_for_instance, created_at, updated_at, revision_number) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16, 1)",
    )
    .bind(&draft.id)
    .bind(&draft.network.id)
    .bind(&draft.project)
    .bind(&draft.name)
    .bind(&draft.description)
    .bind(&mac)
    .bind(flag(draft.admin_state_up))
    .bind(if bound { STATUS_ACTIVE } else { STATUS_DOWN })
    .bind(&draft.device_id)
    .bind(&draft.device_owner)
    .bind(&draft.host_id)
    .bind(if bound { VIF_TYPE_BRIDGE } else { VIF_TYPE_UNBOUND })
    .bind(&draft.vnic_type)
    .bind(flag(draft.port_security))
    .bind(flag(draft.created_for_instance))
    .bind(&now)
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(_) => {}
        Err(error) if novum_db::is_unique_violation(&error) => {
            return Err(NetworkError::MacAddressInUse {
                net_id: draft.network.id.clone(),
                mac,
            });
        }
        Err(error) => return Err(error.into()),
    }
    allocate_ips(
        conn,
        &draft.network,
        &draft.id,
        &mac,
        draft.fixed_ips.as_deref(),
        0,
    )
    .await?;
    let groups = match &draft.security_groups {
        Some(ids) => {
            check_groups(conn, &draft.project, ids).await?;
            ids.clone()
        }
        None if draft.port_security => {
            vec![security_groups::ensure_default_in(conn, &draft.project).await?]
        }
        None => Vec::new(),
    };
    write_groups(conn, &draft.id, &groups).await?;
    write_pairs(conn, &draft.id, &mac, &draft.pairs).await?;
    load(conn, &draft.id)
        .await?
        .ok_or_else(|| NetworkError::PortNotFound(draft.id.clone()))
}

impl NetworkService {
    /// Validates `new` for `caller` into a draft (no database writes).
    pub(crate) fn draft_port(
        &self,
        caller: &Caller,
        network: Network,
        new: &NewPort,
    ) -> Result<PortDraft, NetworkError> {
        let project = self.owner_for(caller, new.project_id.as_deref())?;
        let owns = networks::owns(caller, &network);
        if !owns && !network.shared {
            return Err(NetworkError::PolicyNotAuthorized("create_port".into()));
        }
        admin_only(
            caller,
            new.binding_host_id.is_some(),
            "create_port:binding:host_id",
        )?;
        let network_owner_only = |given: bool, rule: &str| {
            if given && !owns {
                Err(NetworkError::PolicyNotAuthorized(rule.to_string()))
            } else {
                Ok(())
            }
        };
        network_owner_only(new.mac_address.is_some(), "create_port:mac_address")?;
        network_owner_only(
            new.fixed_ips
                .as_ref()
                .is_some_and(|ips| ips.iter().any(|ip| ip.ip_address.is_some())),
            "create_port:fixed_ips:ip_address",
        )?;
        network_owner_only(
            new.port_security_enabled.is_some(),
            "create_port:port_security_enabled",
        )?;
        network_owner_only(
            new.allowed_address_pairs.is_some(),
            "create_port:allowed_address_pairs",
        )?;
        let name = new.name.clone().unwrap_or_default();
        let description = new.description.clone().unwrap_or_default();
        check_length(&name)?;
        check_length(&description)?;
        let vnic_type = new
            .binding_vnic_type
            .clone()
            .unwrap_or_else(|| "normal".to_string());
        validate_vnic(&vnic_type)?;
        let port_security = new
            .port_security_enabled
            .unwrap_or(network.port_security_enabled);
        if !port_security
            && new
                .security_groups
                .as_ref()
                .is_some_and(|groups| !groups.is_empty())
        {
            return Err(NetworkError::PortSecurityAndIpRequiredForSecurityGroups);
        }
        let pairs = validate_pairs(
            new.allowed_address_pairs.as_deref().unwrap_or_default(),
            self.config.max_allowed_address_pair,
        )?;
        if !port_security && !pairs.is_empty() {
            return Err(NetworkError::AddressPairAndPortSecurityRequired);
        }
        Ok(PortDraft {
            id: crate::new_id(),
            project,
            network,
            name,
            description,
            mac: new
                .mac_address
                .as_deref()
                .map(ipam::parse_mac)
                .transpose()?,
            admin_state_up: new.admin_state_up.unwrap_or(true),
            device_id: new.device_id.clone().unwrap_or_default(),
            device_owner: new.device_owner.clone().unwrap_or_default(),
            fixed_ips: new.fixed_ips.clone(),
            security_groups: new.security_groups.clone(),
            port_security,
            pairs,
            host_id: new.binding_host_id.clone().unwrap_or_default(),
            vnic_type,
            created_for_instance: false,
        })
    }

    /// Creates a port (quota `port` of its project). Refusals: an invisible
    /// network (NotFound); a MAC, address or port-security setting asked
    /// by someone not owning the network, `binding:host_id` by a non-admin
    /// (PolicyNotAuthorized); an invalid MAC, one in use
    /// ([`NetworkError::MacAddressInUse`]); fixed IPs outside the network
    /// ([`NetworkError::InvalidIpForSubnet`],
    /// [`NetworkError::InvalidIpForNetwork`]), taken
    /// ([`NetworkError::IpAddressAlreadyAllocated`]), or none left
    /// ([`NetworkError::IpAddressGenerationFailure`]); groups of another
    /// project. Nothing is left behind by a refusal.
    pub async fn create_port(&self, caller: &Caller, new: &NewPort) -> Result<Port, NetworkError> {
        let mut conn = self.db.connection().await?;
        let network = networks::visible(&mut conn, caller, &new.network_id).await?;
        drop(conn);
        let draft = self.draft_port(caller, network, new)?;
        if draft.security_groups.is_none() && draft.port_security {
            self.ensure_default_security_group(&draft.project).await?;
        }
        let mut tx = self
            .begin_locked(&draft.project, &[&draft.network.id])
            .await?;
        let port = insert_port(&mut tx, self, &draft).await?;
        tx.commit().await.map_err(novum_db::DbError::from)?;
        tracing::info!(port = %port.id, network = %port.network_id, "port created");
        Ok(port)
    }

    /// The port `id` as `caller` sees it.
    pub async fn get_port(&self, caller: &Caller, id: &str) -> Result<Port, NetworkError> {
        let mut conn = self.db.connection().await?;
        Ok(visible(&mut conn, caller, id).await?.0)
    }

    /// The page of `listing` over the ports `caller` may see (its own and
    /// those on networks it owns). Besides the attributes, `fixed_ips`
    /// filters on `ip_address=<ip>` / `subnet_id=<id>` values and
    /// `security_groups` on group ids.
    pub async fn list_ports(
        &self,
        caller: &Caller,
        listing: &Listing,
    ) -> Result<Page<Port>, NetworkError> {
        let mut conn = self.db.connection().await?;
        let project = caller.project_id.clone();
        let visible = move |clauses: &mut Clauses| {
            let project = clauses.text(&project);
            format!(
                "(project_id = {project} OR network_id IN (SELECT id FROM networks WHERE project_id = {project}))"
            )
        };
        let special = |name: &str, values: &[String], clauses: &mut Clauses| match name {
            "fixed_ips" => {
                for value in values {
                    let (key, wanted) = value
                        .split_once('=')
                        .ok_or_else(|| invalid(format!("Invalid fixed_ips filter '{value}'")))?;
                    let column = match key {
                        "ip_address" => "ip_address",
                        "subnet_id" => "subnet_id",
                        _ => return Err(invalid(format!("Invalid fixed_ips filter '{value}'"))),
                    };
                    let placeholder = clauses.text(wanted);
                    clauses.clauses.push(format!(
                            "id IN (SELECT port_id FROM network_ip_allocations WHERE {column} = {placeholder})"
                        ));
                }
                Ok(true)
            }
            "security_groups" => {
                let list = clauses.any_of("security_group_id", values);
                clauses.clauses.push(format!(
                    "id IN (SELECT port_id FROM port_security_group_bindings WHERE {list})"
                ));
                Ok(true)
            }
            _ => Ok(false),
        };
        let spec = Spec {
            table: "ports",
            attributes: ATTRIBUTES,
            special: &special,
            visible: if caller.is_admin {
                None
            } else {
                Some(&visible)
            },
            not_found: NetworkError::PortNotFound,
        };
        let (ids, more) = listing::page_ids(&mut conn, &spec, listing).await?;
        let items = store::ports(&mut conn, &ids).await?;
        Ok(Page { items, more })
    }

    /// Updates port `id` (its owner, the network's owner or an admin).
    /// `fixed_ips` replaces the addresses: entries naming an address the
    /// port holds (or a subnet it holds one of) keep it, the rest are
    /// allocated, what is no longer named is released.
    pub async fn update_port(
        &self,
        caller: &Caller,
        id: &str,
        update: &PortUpdate,
    ) -> Result<Port, NetworkError> {
        admin_only(
            caller,
            update.binding_host_id.is_some(),
            "update_port:binding:host_id",
        )?;
        for text in [&update.name, &update.description].into_iter().flatten() {
            check_length(text)?;
        }
        if let Some(vnic) = &update.binding_vnic_type {
            validate_vnic(vnic)?;
        }
        let mut conn = self.db.connection().await?;
        let (port, network) = visible(&mut conn, caller, id).await?;
        drop(conn);
        let owns = networks::owns(caller, &network);
        if !(owns || port.project_id == caller.project_id) {
            return Err(NetworkError::PolicyNotAuthorized("update_port".into()));
        }
        if !owns
            && update
                .fixed_ips
                .as_ref()
                .is_some_and(|ips| ips.iter().any(|ip| ip.ip_address.is_some()))
        {
            return Err(NetworkError::PolicyNotAuthorized(
                "update_port:fixed_ips:ip_address".into(),
            ));
        }
        let port_security = update
            .port_security_enabled
            .unwrap_or(port.port_security_enabled);
        let groups = update
            .security_groups
            .clone()
            .unwrap_or_else(|| port.security_groups.clone());
        if !port_security && !groups.is_empty() {
            return Err(if update.security_groups.is_none() {
                NetworkError::PortSecurityPortHasSecurityGroup
            } else {
                NetworkError::PortSecurityAndIpRequiredForSecurityGroups
            });
        }
        let pairs = match &update.allowed_address_pairs {
            Some(pairs) => Some(validate_pairs(pairs, self.config.max_allowed_address_pair)?),
            None => None,
        };
        let has_pairs = pairs
            .as_ref()
            .map_or(!port.allowed_address_pairs.is_empty(), |pairs| {
                !pairs.is_empty()
            });
        if !port_security && has_pairs {
            return Err(NetworkError::AddressPairAndPortSecurityRequired);
        }
        let mut tx = self.begin_locked(&port.project_id, &[&network.id]).await?;
        if let Some(requests) = &update.fixed_ips {
            self.reassign_ips(&mut tx, &network, &port, requests)
                .await?;
        }
        if let Some(ids) = &update.security_groups {
            check_groups(&mut tx, &port.project_id, ids).await?;
            write_groups(&mut tx, id, ids).await?;
        }
        if let Some(pairs) = &pairs {
            write_pairs(&mut tx, id, &port.mac_address, pairs).await?;
        }
        let (host, vif_type, status) = match &update.binding_host_id {
            Some(host) if host.is_empty() => (String::new(), VIF_TYPE_UNBOUND, STATUS_DOWN),
            Some(host) => (host.clone(), VIF_TYPE_BRIDGE, STATUS_ACTIVE),
            None => (
                port.binding.host_id.clone(),
                port.binding.vif_type.as_str(),
                port.status.as_str(),
            ),
        };
        sqlx::query(
            "UPDATE ports SET name = $1, description = $2, admin_state_up = $3, device_id = $4, device_owner = $5, port_security_enabled = $6, binding_host_id = $7, binding_vif_type = $8, binding_vnic_type = $9, status = $10, updated_at = $11, revision_number = revision_number + 1 WHERE id = $12",
        )
        .bind(update.name.as_ref().unwrap_or(&port.name))
        .bind(update.description.as_ref().unwrap_or(&port.description))
        .bind(flag(update.admin_state_up.unwrap_or(port.admin_state_up)))
        .bind(update.device_id.as_ref().unwrap_or(&port.device_id))
        .bind(update.device_owner.as_ref().unwrap_or(&port.device_owner))
        .bind(flag(port_security))
        .bind(&host)
        .bind(vif_type)
        .bind(update.binding_vnic_type.as_ref().unwrap_or(&port.binding.vnic_type))
        .bind(status)
        .bind(novum_db::now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let port = load(&mut tx, id)
            .await?
            .ok_or_else(|| NetworkError::PortNotFound(id.to_string()))?;
        tx.commit().await.map_err(novum_db::DbError::from)?;
        Ok(port)
    }

    /// Replaces the addresses of `port` by `requests` (see
    /// [`NetworkService::update_port`]).
    async fn reassign_ips(
        &self,
        conn: &mut AnyConnection,
        network: &Network,
        port: &Port,
        requests: &[FixedIpRequest],
    ) -> Result<(), NetworkError> {
        let mut unmatched: Vec<FixedIp> = port.fixed_ips.clone();
        let mut kept = Vec::new();
        let mut fresh = Vec::new();
        // Exact matches first (an address, with or without its subnet).
        let mut pending = Vec::new();
        for request in requests {
            let wanted = request
                .ip_address
                .as_deref()
                .map(ipam::parse_ip)
                .transpose()?;
            let found = wanted.and_then(|ip| {
                unmatched.iter().position(|fixed| {
                    fixed.ip_address.parse::<IpAddr>().ok() == Some(ip)
                        && request
                            .subnet_id
                            .as_ref()
                            .is_none_or(|subnet| subnet == &fixed.subnet_id)
                })
            });
            match found {
                Some(index) => kept.push(unmatched.remove(index)),
                None => pending.push(request),
            }
        }
        // Then subnet-only entries keep an address of their subnet.
        for request in pending {
            let found = match (&request.subnet_id, &request.ip_address) {
                (Some(subnet), None) => unmatched
                    .iter()
                    .position(|fixed| &fixed.subnet_id == subnet),
                _ => None,
            };
            match found {
                Some(index) => kept.push(unmatched.remove(index)),
                None => fresh.push(request.clone()),
            }
        }
        for released in &unmatched {
            sqlx::query("DELETE FROM network_ip_allocations WHERE port_id = $1 AND subnet_id = $2 AND ip_address = $3")
                .bind(&port.id)
                .bind(&released.subnet_id)
                .bind(&released.ip_address)
                .execute(&mut *conn)
                .await?;
        }
        for (position, fixed) in kept.iter().enumerate() {
            sqlx::query("UPDATE network_ip_allocations SET position = $1 WHERE subnet_id = $2 AND ip_address = $3")
                .bind(position as i64)
                .bind(&fixed.subnet_id)
                .bind(&fixed.ip_address)
                .execute(&mut *conn)
                .await?;
        }
        if !fresh.is_empty() {
            allocate_ips(
                conn,
                network,
                &port.id,
                &port.mac_address,
                Some(&fresh),
                kept.len(),
            )
            .await?;
        }
        Ok(())
    }

    /// Deletes port `id` (its owner, the network's owner or an admin); its
    /// addresses are free again.
    pub async fn delete_port(&self, caller: &Caller, id: &str) -> Result<(), NetworkError> {
        let mut conn = self.db.connection().await?;
        let (port, network) = visible(&mut conn, caller, id).await?;
        drop(conn);
        if !(networks::owns(caller, &network) || port.project_id == caller.project_id) {
            return Err(NetworkError::PolicyNotAuthorized("delete_port".into()));
        }
        let mut tx = self.db.begin().await?;
        delete_port_rows(&mut tx, id).await?;
        tx.commit().await.map_err(novum_db::DbError::from)?;
        tracing::info!(port = %id, "port deleted");
        Ok(())
    }
}

/// Deletes the port `id` and its child rows.
pub(crate) async fn delete_port_rows(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<(), NetworkError> {
    for sql in [
        "DELETE FROM network_ip_allocations WHERE port_id = $1",
        "DELETE FROM port_security_group_bindings WHERE port_id = $1",
        "DELETE FROM port_allowed_address_pairs WHERE port_id = $1",
        "DELETE FROM ports WHERE id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *conn).await?;
    }
    Ok(())
}
