//! What compute asks of the network service: ports for an instance
//! (created for it, or the user's own taken), bound to the host it runs
//! on, released when it goes; the instance's ports with what the agent
//! (MAC, addresses, MTU, bridge) and the API's `addresses` need; the
//! instance's security groups.
//!
//! Every operation is one transaction and idempotent: allocation takes the
//! port ids the caller chose (and recorded in its durable operation), so a
//! retry finds the ports it made; binding a bound port, releasing a
//! released instance change nothing. A failed allocation leaves nothing.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use crate::error::NetworkError;
use crate::model::{
    Caller, FixedIpRequest, HostRoute, Network, NewPort, Port, STATUS_ACTIVE, STATUS_DOWN,
    SecurityGroup, Subnet, VIF_TYPE_BRIDGE, VIF_TYPE_UNBOUND,
};
use crate::ports::{self, PortDraft};
use crate::{NetworkService, networks, security_groups, store, subnets};

/// The Linux bridge prefix of Neutron's linuxbridge agent.
pub const BRIDGE_PREFIX: &str = "brq";
/// Characters of the network id in a bridge name (15-character interface
/// names: `brq` + 11 + room for none).
pub const BRIDGE_ID_LENGTH: usize = 11;

/// The Linux bridge that carries `network_id` on a host: `brq` and the
/// first 11 characters of the id, as Neutron's linuxbridge agent names it.
pub fn bridge_name(network_id: &str) -> String {
    let id: String = network_id.chars().take(BRIDGE_ID_LENGTH).collect();
    format!("{BRIDGE_PREFIX}{id}")
}

/// The tap device of a port on its host (`tap` + the first 11 characters
/// of the port id), as Nova and Neutron name it.
pub fn tap_name(port_id: &str) -> String {
    let id: String = port_id.chars().take(BRIDGE_ID_LENGTH).collect();
    format!("tap{id}")
}

/// One port an instance asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstancePortRequest {
    /// A new port on a network, created for the instance (deleted with it).
    Network {
        /// The network.
        network_id: String,
        /// A fixed IPv4 or IPv6 address (`--nic v4-fixed-ip=`).
        fixed_ip: Option<String>,
        /// The id the new port gets, chosen by the caller so that a retry
        /// finds the port it made.
        port_id: String,
    },
    /// The user's own port (unbound and kept when the instance goes).
    Port {
        /// The port.
        port_id: String,
    },
}

/// What releasing an instance's ports did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReleasedPorts {
    /// Ports created for the instance, deleted.
    pub deleted: Vec<String>,
    /// The user's ports, unbound and kept.
    pub unbound: Vec<String>,
}

/// An address of an instance's port, with its subnet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceIp {
    /// The address.
    pub address: String,
    /// 4 or 6.
    pub version: u8,
    /// The subnet.
    pub subnet_id: String,
    /// Its CIDR.
    pub cidr: String,
    /// Its gateway.
    pub gateway: Option<String>,
    /// Its DNS name servers, in order.
    pub dns_nameservers: Vec<String>,
    /// Its host routes.
    pub host_routes: Vec<HostRoute>,
    /// Its DHCP setting (the guest configures statically when off).
    pub enable_dhcp: bool,
    /// Its IPv6 address mode, if any.
    pub ipv6_address_mode: Option<String>,
}

/// An instance's port with what the agent and the API need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstancePort {
    /// The port (MAC, status, groups, binding, ...).
    pub port: Port,
    /// Its network's name (the key of `addresses`).
    pub network_name: String,
    /// Its network's MTU.
    pub mtu: i64,
    /// The Linux bridge of the network on the host ([`bridge_name`]).
    pub bridge: String,
    /// The tap device of the port ([`tap_name`]).
    pub tap: String,
    /// Its addresses in order, with their subnets.
    pub ips: Vec<InstanceIp>,
}

/// An address of an instance as a server's view shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceAddress {
    /// The name of the port's network (the key of `addresses`).
    pub network_name: String,
    /// The address.
    pub address: String,
    /// 4 or 6.
    pub version: u8,
    /// The port's MAC.
    pub mac_address: String,
}

/// What a server's view shows of an instance's ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceAddressing {
    /// Its fixed addresses, by port age then the port's order of them.
    pub addresses: Vec<InstanceAddress>,
    /// The names of its ports' security groups, sorted, each once.
    pub security_group_names: Vec<String>,
}

/// One statement for the addressing of a list of instances: the ports'
/// addresses (`kind` 0) and the ports' groups (`kind` 1) as one union, so a
/// server's view costs one round trip to the database, however many ports,
/// subnets and groups it has. `{ports}` is the `device_id` condition, twice.
const ADDRESSING_SQL: &str = "\
SELECT CAST(0 AS BIGINT) AS kind, p.device_id AS device_id, p.created_at AS created_at, p.id AS port_id, \
       a.position AS position, n.name AS name, a.ip_address AS address, \
       s.ip_version AS version, p.mac_address AS mac_address \
  FROM ports p \
  JOIN networks n ON n.id = p.network_id \
  JOIN network_ip_allocations a ON a.port_id = p.id \
  JOIN subnets s ON s.id = a.subnet_id \
 WHERE {addressed} \
UNION ALL \
SELECT CAST(1 AS BIGINT), p.device_id, p.created_at, p.id, CAST(0 AS BIGINT), g.name, NULL, NULL, NULL \
  FROM ports p \
  JOIN port_security_group_bindings b ON b.port_id = p.id \
  JOIN security_groups g ON g.id = b.security_group_id \
 WHERE {grouped} \
 ORDER BY 3, 4, 5";

/// The ids of the ports of `instance_id`, oldest first.
async fn port_ids_of(
    conn: &mut AnyConnection,
    instance_id: &str,
) -> Result<Vec<String>, NetworkError> {
    let rows = sqlx::query("SELECT id FROM ports WHERE device_id = $1 ORDER BY created_at, id")
        .bind(instance_id)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect::<Result<Vec<_>, _>>()?)
}

impl NetworkService {
    /// Ports for `instance_id` of `caller`'s project, one per request, in
    /// order, in one transaction (nothing is left when one fails): new
    /// ports on networks (with `security_groups`, names or ids, or the
    /// default group), and the user's ports taken
    /// ([`NetworkError::PortInUse`] when attached to another device). The
    /// ports carry `device_id` = the instance; [`NetworkService::bind_instance_ports`]
    /// binds them once the host is known. Idempotent: requests whose ports
    /// exist for this instance give them back.
    pub async fn allocate_for_instance(
        &self,
        caller: &Caller,
        instance_id: &str,
        security_groups: &[String],
        requests: &[InstancePortRequest],
    ) -> Result<Vec<Port>, NetworkError> {
        let project = caller.project_id.clone();
        if security_groups.is_empty()
            || security_groups
                .iter()
                .any(|name| name == security_groups::DEFAULT_GROUP_NAME)
        {
            self.ensure_default_security_group(&project).await?;
        }
        let mut conn = self.db.connection().await?;
        let network_ids = self.networks_of_requests(&mut conn, requests).await?;
        drop(conn);
        let locked: Vec<&str> = network_ids.iter().map(String::as_str).collect();
        let mut tx = self.begin_locked(&project, &locked).await?;
        let ports = self
            .allocate_for_instance_in(&mut tx, caller, instance_id, security_groups, requests)
            .await?;
        tx.commit().await.map_err(novum_db::DbError::from)?;
        tracing::info!(
            instance = instance_id,
            ports = ports.len(),
            "ports allocated for instance"
        );
        Ok(ports)
    }

    /// The networks `requests` touch (a port's network for a port
    /// request; an unknown port touches none), whose locks an allocation
    /// takes.
    pub async fn networks_of_requests(
        &self,
        conn: &mut AnyConnection,
        requests: &[InstancePortRequest],
    ) -> Result<Vec<String>, NetworkError> {
        let mut network_ids = Vec::new();
        for request in requests {
            match request {
                InstancePortRequest::Network { network_id, .. } => {
                    network_ids.push(network_id.clone())
                }
                InstancePortRequest::Port { port_id } => {
                    if let Some(port) = ports::load(conn, port_id).await? {
                        network_ids.push(port.network_id);
                    }
                }
            }
        }
        Ok(network_ids)
    }

    /// [`NetworkService::allocate_for_instance`] inside the caller's
    /// transaction, which must be serialized on `quota:<project>` and the
    /// locks of the networks involved ([`NetworkService::begin_locked`],
    /// or [`NetworkService::lock_networks`] after the quota lock).
    pub async fn allocate_for_instance_in(
        &self,
        conn: &mut AnyConnection,
        caller: &Caller,
        instance_id: &str,
        security_groups: &[String],
        requests: &[InstancePortRequest],
    ) -> Result<Vec<Port>, NetworkError> {
        let project = caller.project_id.clone();
        let groups = if security_groups.is_empty() {
            None
        } else {
            Some(security_groups::resolve_in(conn, &project, security_groups).await?)
        };
        let mut result = Vec::new();
        for request in requests {
            match request {
                InstancePortRequest::Network {
                    network_id,
                    fixed_ip,
                    port_id,
                } => {
                    if let Some(existing) = ports::load(conn, port_id).await? {
                        if existing.device_id == instance_id {
                            result.push(existing);
                            continue;
                        }
                        return Err(NetworkError::PortInUse {
                            port_id: existing.id.clone(),
                            net_id: existing.network_id.clone(),
                            device_id: existing.device_id.clone(),
                        });
                    }
                    let network = networks::visible(conn, caller, network_id).await?;
                    let new = NewPort {
                        network_id: network_id.clone(),
                        device_id: Some(instance_id.to_string()),
                        fixed_ips: fixed_ip.as_ref().map(|ip| {
                            vec![FixedIpRequest {
                                subnet_id: None,
                                ip_address: Some(ip.clone()),
                            }]
                        }),
                        security_groups: groups.clone(),
                        ..NewPort::default()
                    };
                    let draft = PortDraft {
                        id: port_id.clone(),
                        created_for_instance: true,
                        ..self.draft_port(caller, network, &new)?
                    };
                    result.push(ports::insert_port(conn, self, &draft).await?);
                }
                InstancePortRequest::Port { port_id } => {
                    let (port, _) = ports::visible(conn, caller, port_id).await?;
                    if port.device_id == instance_id {
                        result.push(port);
                        continue;
                    }
                    if !port.device_id.is_empty() {
                        return Err(NetworkError::PortInUse {
                            port_id: port.id.clone(),
                            net_id: port.network_id.clone(),
                            device_id: port.device_id.clone(),
                        });
                    }
                    sqlx::query(
                        "UPDATE ports SET device_id = $1, updated_at = $2, revision_number = revision_number + 1 WHERE id = $3 AND device_id = ''",
                    )
                    .bind(instance_id)
                    .bind(novum_db::now())
                    .bind(port_id)
                    .execute(&mut *conn)
                    .await?;
                    result.push(
                        ports::load(conn, port_id)
                            .await?
                            .ok_or_else(|| NetworkError::PortNotFound(port_id.clone()))?,
                    );
                }
            }
        }
        Ok(result)
    }

    /// Binds every port of `instance_id` to `host`: `device_owner`
    /// `compute:<availability_zone>`, `binding:host_id`, `binding:vif_type`
    /// `bridge`, status ACTIVE. A port already so bound is left as it is.
    pub async fn bind_instance_ports(
        &self,
        instance_id: &str,
        host: &str,
        availability_zone: &str,
    ) -> Result<Vec<Port>, NetworkError> {
        // An instance without ports (`networks: none`) binds nothing: no
        // write transaction. Its ports cannot change meanwhile (an
        // interface is attached only to a server that has left BUILD).
        let mut conn = self.db.connection().await?;
        if port_ids_of(&mut conn, instance_id).await?.is_empty() {
            return Ok(Vec::new());
        }
        drop(conn);
        // The write alone holds the writer (grouped: nothing is held
        // across its commit); the bound ports are read after it.
        let owner = format!("compute:{availability_zone}");
        let mut bind = novum_db::Batch::new();
        bind.push(
            sqlx::query(
                "UPDATE ports SET device_owner = $1, binding_host_id = $2, binding_vif_type = $3, status = $4, updated_at = $5, revision_number = revision_number + 1 \
                 WHERE device_id = $6 AND NOT (device_owner = $1 AND binding_host_id = $2 AND binding_vif_type = $3 AND status = $4)",
            )
            .bind(&owner)
            .bind(host)
            .bind(VIF_TYPE_BRIDGE)
            .bind(STATUS_ACTIVE)
            .bind(novum_db::now())
            .bind(instance_id),
        )?;
        self.db
            .begin_grouped_plain()
            .await?
            .commit_with(bind)
            .await?;
        let mut conn = self.db.connection().await?;
        let ids = port_ids_of(&mut conn, instance_id).await?;
        store::ports(&mut conn, &ids).await
    }

    /// Releases the ports of `instance_id`: those created for it are
    /// deleted (their addresses free again), the user's are unbound and
    /// kept. Releasing twice does nothing the second time.
    pub async fn release_instance_ports(
        &self,
        instance_id: &str,
    ) -> Result<ReleasedPorts, NetworkError> {
        let mut tx = self
            .db
            .begin_serialized(&format!("network-instance:{instance_id}"))
            .await?;
        let released = self.release_instance_ports_in(&mut tx, instance_id).await?;
        tx.commit().await.map_err(novum_db::DbError::from)?;
        Ok(released)
    }

    /// [`NetworkService::release_instance_ports`] inside the caller's
    /// transaction (the conductor releases ports in the transaction that
    /// marks the instance deleted or failed, so both commit together).
    pub async fn release_instance_ports_in(
        &self,
        conn: &mut AnyConnection,
        instance_id: &str,
    ) -> Result<ReleasedPorts, NetworkError> {
        let ids = port_ids_of(conn, instance_id).await?;
        let ports = store::ports(conn, &ids).await?;
        let mut released = ReleasedPorts::default();
        for port in ports {
            if port.created_for_instance {
                ports::delete_port_rows(conn, &port.id).await?;
                released.deleted.push(port.id);
            } else {
                unbind(conn, &port.id).await?;
                released.unbound.push(port.id);
            }
        }
        if !released.deleted.is_empty() || !released.unbound.is_empty() {
            tracing::info!(
                instance = instance_id,
                deleted = released.deleted.len(),
                unbound = released.unbound.len(),
                "instance ports released"
            );
        }
        Ok(released)
    }

    /// Takes the ports of `instance_id` off their host, keeping them the
    /// instance's (a shelve offload: `binding:host_id` empty, `vif_type`
    /// unbound, status DOWN; the next spawn binds them again).
    pub async fn unbind_instance_ports_from_host_in(
        &self,
        conn: &mut AnyConnection,
        instance_id: &str,
    ) -> Result<(), NetworkError> {
        sqlx::query(
            "UPDATE ports SET binding_host_id = '', binding_vif_type = $1, status = $2, updated_at = $3, revision_number = revision_number + 1 WHERE device_id = $4",
        )
        .bind(VIF_TYPE_UNBOUND)
        .bind(STATUS_DOWN)
        .bind(novum_db::now())
        .bind(instance_id)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Moves the binding of every port of `instance_id` to `host` inside the
    /// caller's transaction (a resize or migration: to the destination
    /// before the guest is defined there, back to the source on a revert),
    /// keeping its owner; `binding:vif_type` bridge, status ACTIVE. A port
    /// already bound there is left as it is.
    pub async fn rebind_instance_ports_in(
        &self,
        conn: &mut AnyConnection,
        instance_id: &str,
        host: &str,
    ) -> Result<(), NetworkError> {
        sqlx::query(
            "UPDATE ports SET binding_host_id = $1, binding_vif_type = $2, status = $3, updated_at = $4, revision_number = revision_number + 1 \
             WHERE device_id = $5 AND NOT (binding_host_id = $1 AND binding_vif_type = $2 AND status = $3)",
        )
        .bind(host)
        .bind(VIF_TYPE_BRIDGE)
        .bind(STATUS_ACTIVE)
        .bind(novum_db::now())
        .bind(instance_id)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Detaches one port from `instance_id` (`os-interface` detach):
    /// deleted when it was created for the instance, else unbound.
    /// [`NetworkError::PortNotFound`] when the instance does not hold it.
    pub async fn detach_instance_port(
        &self,
        instance_id: &str,
        port_id: &str,
    ) -> Result<ReleasedPorts, NetworkError> {
        let mut tx = self
            .db
            .begin_serialized(&format!("network-instance:{instance_id}"))
            .await?;
        let released = self
            .detach_instance_port_in(&mut tx, instance_id, port_id)
            .await?;
        tx.commit().await.map_err(novum_db::DbError::from)?;
        Ok(released)
    }

    /// [`NetworkService::detach_instance_port`] inside the caller's
    /// transaction (the conductor gives back the port of an attach that
    /// failed in the transaction that records the failure).
    pub async fn detach_instance_port_in(
        &self,
        conn: &mut AnyConnection,
        instance_id: &str,
        port_id: &str,
    ) -> Result<ReleasedPorts, NetworkError> {
        let port = match ports::load(conn, port_id).await? {
            Some(port) if port.device_id == instance_id => port,
            _ => return Err(NetworkError::PortNotFound(port_id.to_string())),
        };
        let mut released = ReleasedPorts::default();
        if port.created_for_instance {
            ports::delete_port_rows(conn, port_id).await?;
            released.deleted.push(port.id);
        } else {
            unbind(conn, port_id).await?;
            released.unbound.push(port.id);
        }
        Ok(released)
    }

    /// The ports of `instance_id` as compute shows them (in creation
    /// order, with their network's name, MTU and bridge and each address's
    /// subnet).
    pub async fn instance_ports(
        &self,
        instance_id: &str,
    ) -> Result<Vec<InstancePort>, NetworkError> {
        Ok(self
            .instances_ports(&[instance_id.to_string()])
            .await?
            .remove(instance_id)
            .unwrap_or_default())
    }

    /// The addressing of every one of `instance_ids` (instances without
    /// ports are absent): one statement per 500 instances.
    pub async fn instances_addressing(
        &self,
        instance_ids: &[String],
    ) -> Result<HashMap<String, InstanceAddressing>, NetworkError> {
        let mut conn = self.db.connection().await?;
        let mut answer: HashMap<String, InstanceAddressing> = HashMap::new();
        for chunk in instance_ids.chunks(store::CHUNK) {
            let mut clauses = crate::listing::Clauses::default();
            let addressed = clauses.any_of("p.device_id", chunk);
            let grouped = clauses.any_of("p.device_id", chunk);
            let sql = ADDRESSING_SQL
                .replace("{addressed}", &addressed)
                .replace("{grouped}", &grouped);
            let rows =
                crate::listing::bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &clauses.binds)
                    .fetch_all(&mut *conn)
                    .await?;
            for row in rows {
                let addressing = answer.entry(row.try_get("device_id")?).or_default();
                let name: String = row.try_get("name")?;
                if row.try_get::<i64, _>("kind")? == 1 {
                    addressing.security_group_names.push(name);
                    continue;
                }
                addressing.addresses.push(InstanceAddress {
                    network_name: name,
                    address: row.try_get("address")?,
                    version: u8::try_from(row.try_get::<i64, _>("version")?).unwrap_or(4),
                    mac_address: row.try_get("mac_address")?,
                });
            }
        }
        for addressing in answer.values_mut() {
            addressing.security_group_names.sort();
            addressing.security_group_names.dedup();
        }
        Ok(answer)
    }

    /// [`NetworkService::instance_ports`] of every one of `instance_ids`,
    /// keyed by instance (instances without ports are absent), read with a
    /// fixed number of batched queries whatever the number of instances: a
    /// page of a server list costs as much as one server.
    pub async fn instances_ports(
        &self,
        instance_ids: &[String],
    ) -> Result<HashMap<String, Vec<InstancePort>>, NetworkError> {
        let mut conn = self.db.connection().await?;
        let owners = store::select_in(
            &mut conn,
            "id, device_id",
            "ports",
            "device_id",
            instance_ids,
            "ORDER BY created_at, id",
        )
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<String, _>("id")?,
                row.try_get::<String, _>("device_id")?,
            ))
        })
        .collect::<Result<Vec<(String, String)>, sqlx::Error>>()?;
        let port_ids: Vec<String> = owners.iter().map(|(port, _)| port.clone()).collect();
        let mut ports: HashMap<String, Port> = store::ports(&mut conn, &port_ids)
            .await?
            .into_iter()
            .map(|port| (port.id.clone(), port))
            .collect();
        let mut network_ids: Vec<String> =
            ports.values().map(|port| port.network_id.clone()).collect();
        network_ids.sort();
        network_ids.dedup();
        let networks: HashMap<String, Network> = store::networks(&mut conn, &network_ids)
            .await?
            .into_iter()
            .map(|network| (network.id.clone(), network))
            .collect();
        let mut subnet_ids: Vec<String> = ports
            .values()
            .flat_map(|port| port.fixed_ips.iter().map(|fixed| fixed.subnet_id.clone()))
            .collect();
        subnet_ids.sort();
        subnet_ids.dedup();
        let subnets: HashMap<String, Subnet> = store::subnets(&mut conn, &subnet_ids)
            .await?
            .into_iter()
            .map(|subnet| (subnet.id.clone(), subnet))
            .collect();
        let mut answer: HashMap<String, Vec<InstancePort>> = HashMap::new();
        for (port_id, instance) in owners {
            let Some(port) = ports.remove(&port_id) else {
                continue;
            };
            let network = networks
                .get(&port.network_id)
                .ok_or_else(|| NetworkError::NetworkNotFound(port.network_id.clone()))?;
            let ips = port
                .fixed_ips
                .iter()
                .filter_map(|fixed| {
                    let subnet = subnets.get(&fixed.subnet_id)?;
                    Some(InstanceIp {
                        address: fixed.ip_address.clone(),
                        version: subnet.ip_version,
                        subnet_id: subnet.id.clone(),
                        cidr: subnet.cidr.clone(),
                        gateway: subnet.gateway_ip.clone(),
                        dns_nameservers: subnet.dns_nameservers.clone(),
                        host_routes: subnet.host_routes.clone(),
                        enable_dhcp: subnet.enable_dhcp,
                        ipv6_address_mode: subnet.ipv6_address_mode.clone(),
                    })
                })
                .collect();
            answer.entry(instance).or_default().push(InstancePort {
                bridge: bridge_name(&network.id),
                tap: tap_name(&port.id),
                network_name: network.name.clone(),
                mtu: network.mtu,
                ips,
                port,
            });
        }
        Ok(answer)
    }

    /// The security groups on the ports of `instance_id` (each once, by
    /// name), as `GET /servers/{id}/os-security-groups` shows them.
    pub async fn instance_security_groups(
        &self,
        instance_id: &str,
    ) -> Result<Vec<SecurityGroup>, NetworkError> {
        Ok(self
            .instances_security_groups(&[instance_id.to_string()])
            .await?
            .remove(instance_id)
            .unwrap_or_default())
    }

    /// [`NetworkService::instance_security_groups`] of every one of
    /// `instance_ids`, keyed by instance, in a fixed number of queries.
    pub async fn instances_security_groups(
        &self,
        instance_ids: &[String],
    ) -> Result<HashMap<String, Vec<SecurityGroup>>, NetworkError> {
        let mut conn = self.db.connection().await?;
        let bindings = store::select_in(
            &mut conn,
            "DISTINCT p.device_id AS device_id, b.security_group_id AS id",
            "port_security_group_bindings b JOIN ports p ON p.id = b.port_id",
            "p.device_id",
            instance_ids,
            "",
        )
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<String, _>("device_id")?,
                row.try_get::<String, _>("id")?,
            ))
        })
        .collect::<Result<Vec<(String, String)>, sqlx::Error>>()?;
        let mut group_ids: Vec<String> = bindings.iter().map(|(_, group)| group.clone()).collect();
        group_ids.sort();
        group_ids.dedup();
        let groups: HashMap<String, SecurityGroup> = store::groups(&mut conn, &group_ids)
            .await?
            .into_iter()
            .map(|group| (group.id.clone(), group))
            .collect();
        let mut answer: HashMap<String, Vec<SecurityGroup>> = HashMap::new();
        for (instance, group) in bindings {
            if let Some(group) = groups.get(&group) {
                answer.entry(instance).or_default().push(group.clone());
            }
        }
        for groups in answer.values_mut() {
            groups.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        }
        Ok(answer)
    }

    /// Adds the group `name_or_id` of `caller`'s project to every port of
    /// `instance_id` that has port security (`addSecurityGroup`); returns
    /// the group's id.
    pub async fn add_instance_security_group(
        &self,
        caller: &Caller,
        instance_id: &str,
        name_or_id: &str,
    ) -> Result<String, NetworkError> {
        self.change_instance_group(caller, instance_id, name_or_id, true)
            .await
    }

    /// Removes the group `name_or_id` from every port of `instance_id`
    /// (`removeSecurityGroup`); returns the group's id.
    pub async fn remove_instance_security_group(
        &self,
        caller: &Caller,
        instance_id: &str,
        name_or_id: &str,
    ) -> Result<String, NetworkError> {
        self.change_instance_group(caller, instance_id, name_or_id, false)
            .await
    }

    async fn change_instance_group(
        &self,
        caller: &Caller,
        instance_id: &str,
        name_or_id: &str,
        add: bool,
    ) -> Result<String, NetworkError> {
        if name_or_id == security_groups::DEFAULT_GROUP_NAME {
            self.ensure_default_security_group(&caller.project_id)
                .await?;
        }
        let mut tx = self
            .db
            .begin_serialized(&crate::quota_lock(&caller.project_id))
            .await?;
        let group =
            security_groups::resolve_in(&mut tx, &caller.project_id, &[name_or_id.to_string()])
                .await?
                .pop()
                .ok_or_else(|| NetworkError::SecurityGroupNotFound(name_or_id.to_string()))?;
        let ids = port_ids_of(&mut tx, instance_id).await?;
        for port in store::ports(&mut tx, &ids).await? {
            if add {
                if !port.port_security_enabled {
                    return Err(NetworkError::PortSecurityAndIpRequiredForSecurityGroups);
                }
                if port.security_groups.contains(&group) {
                    continue;
                }
                sqlx::query("INSERT INTO port_security_group_bindings (port_id, security_group_id) VALUES ($1, $2)")
                    .bind(&port.id)
                    .bind(&group)
                    .execute(&mut *tx)
                    .await?;
            } else {
                sqlx::query("DELETE FROM port_security_group_bindings WHERE port_id = $1 AND security_group_id = $2")
                    .bind(&port.id)
                    .bind(&group)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE ports SET revision_number = revision_number + 1, updated_at = $1 WHERE id = $2")
                .bind(novum_db::now())
                .bind(&port.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await.map_err(novum_db::DbError::from)?;
        Ok(group)
    }

    /// The subnets of `network_id`, whoever may see them (for the agent's
    /// `network_data.json`).
    pub async fn network_subnets(
        &self,
        network_id: &str,
    ) -> Result<Vec<crate::model::Subnet>, NetworkError> {
        let mut conn = self.db.connection().await?;
        subnets::of_network(&mut conn, network_id).await
    }
}

/// Unbinds the port `id`: no device, no host, status DOWN.
async fn unbind(conn: &mut AnyConnection, id: &str) -> Result<(), NetworkError> {
    sqlx::query(
        "UPDATE ports SET device_id = '', device_owner = '', binding_host_id = '', binding_vif_type = $1, status = $2, updated_at = $3, revision_number = revision_number + 1 WHERE id = $4",
    )
    .bind(VIF_TYPE_UNBOUND)
    .bind(STATUS_DOWN)
    .bind(novum_db::now())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
