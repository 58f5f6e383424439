//! A server's ports: allocated with the instance rows (so an unknown
//! network, a port in use or an address outside its subnet fails the create
//! at the API, and nothing is left), bound to the host the claim chose
//! before the spawn task is queued (the task carries each port's MAC,
//! addresses, MTU and bridge), and released in the transaction that ends
//! the instance (deleted, or its build failed): ports created for it are
//! deleted, the user's own are unbound and kept.

use novum_network::{
    Caller as NetworkCaller, InstancePort, InstancePortRequest, NetworkService, ResolvedRule,
};
use novum_wire::{
    Direction, FirewallRule, FixedIpSpec, HostFirewall, HostRoute, InterfaceSpec, PortFirewall,
    SpawnSpec,
};
use uuid::Uuid;

use super::model::{FlavorSnapshot, Instance};
use super::{Conductor, ConductorError, Result};
use novum_db::Tx;

/// The ports a server create asks for, as the API resolved them (`auto`:
/// the project's auto-allocated network; `none` or nothing: no port).
#[derive(Clone, Debug, Default)]
pub struct PortPlan {
    /// One entry per port, in the order the guest sees them. Ports on a
    /// network get a fresh id per instance when the servers are created.
    pub requests: Vec<InstancePortRequest>,
    /// Security groups (names or ids) of the ports created; empty: the
    /// project's `default` group.
    pub security_groups: Vec<String>,
    /// Whether the caller is an admin (sees every network).
    pub admin: bool,
}

impl PortPlan {
    /// The requests for one instance of the create: a fresh port id for
    /// every port made on a network.
    pub(super) fn for_instance(&self) -> Vec<InstancePortRequest> {
        self.requests
            .iter()
            .map(|request| match request {
                InstancePortRequest::Network {
                    network_id,
                    fixed_ip,
                    ..
                } => InstancePortRequest::Network {
                    network_id: network_id.clone(),
                    fixed_ip: fixed_ip.clone(),
                    port_id: Uuid::new_v4().to_string(),
                },
                other => other.clone(),
            })
            .collect()
    }

    /// The caller as the network service sees it.
    pub(super) fn caller(&self, project_id: &str) -> NetworkCaller {
        if self.admin {
            NetworkCaller::admin(project_id)
        } else {
            NetworkCaller::project(project_id)
        }
    }
}

/// The agent's description of `port`.
pub fn interface_spec(port: &InstancePort) -> Result<InterfaceSpec> {
    let uuid = |text: &str| {
        Uuid::parse_str(text)
            .map_err(|error| ConductorError::BadRequest(format!("bad id {text}: {error}")))
    };
    Ok(InterfaceSpec {
        port_id: uuid(&port.port.id)?,
        mac_address: port.port.mac_address.clone(),
        network_id: uuid(&port.port.network_id)?,
        network_name: port.network_name.clone(),
        mtu: u32::try_from(port.mtu).ok().filter(|mtu| *mtu > 0),
        bridge: port.bridge.clone(),
        fixed_ips: port
            .ips
            .iter()
            .map(|ip| FixedIpSpec {
                ip_address: ip.address.clone(),
                ip_version: ip.version,
                subnet_cidr: ip.cidr.clone(),
                gateway_ip: ip.gateway.clone(),
                dns_nameservers: ip.dns_nameservers.clone(),
                host_routes: ip
                    .host_routes
                    .iter()
                    .map(|route| HostRoute {
                        destination: route.destination.clone(),
                        nexthop: route.nexthop.clone(),
                    })
                    .collect(),
            })
            .collect(),
    })
}

impl Conductor {
    /// The network service.
    pub fn network(&self) -> &NetworkService {
        &self.network
    }

    /// Before the create's transaction: the project's default security
    /// group exists when the ports will use it (made in its own
    /// transaction, as Neutron makes it on first use).
    pub(super) async fn prepare_ports(&self, project_id: &str, plan: &PortPlan) -> Result<()> {
        let needs_default = plan.security_groups.is_empty()
            || plan
                .security_groups
                .iter()
                .any(|group| group == novum_network::security_groups::DEFAULT_GROUP_NAME);
        if !plan.requests.is_empty() && needs_default {
            self.network
                .ensure_default_security_group(project_id)
                .await?;
        }
        Ok(())
    }

    /// Allocates the ports of instance `uuid` in the create's transaction,
    /// which already holds `quota:<project>`; the networks' locks follow.
    pub(super) async fn allocate_ports(
        &self,
        tx: &mut Tx,
        project_id: &str,
        uuid: &str,
        plan: &PortPlan,
    ) -> Result<()> {
        if plan.requests.is_empty() {
            return Ok(());
        }
        let caller = plan.caller(project_id);
        let requests = plan.for_instance();
        let networks = self.network.networks_of_requests(tx, &requests).await?;
        let locked: Vec<&str> = networks.iter().map(String::as_str).collect();
        self.network.lock_networks(tx, &locked).await?;
        self.network
            .allocate_for_instance_in(tx, &caller, uuid, &plan.security_groups, &requests)
            .await?;
        Ok(())
    }

    /// Binds the ports of `uuid` to `host` (in `zone`) and gives the
    /// interfaces its spawn task carries. Binding is idempotent: a lost
    /// claim leaves the ports bound to a host the next claim rebinds.
    pub(super) async fn bind_ports(
        &self,
        uuid: &str,
        host: &str,
        zone: &str,
    ) -> Result<Vec<InterfaceSpec>> {
        self.network.bind_instance_ports(uuid, host, zone).await?;
        self.interfaces(uuid).await
    }

    /// The interfaces of `uuid` as its ports are now.
    pub(super) async fn interfaces(&self, uuid: &str) -> Result<Vec<InterfaceSpec>> {
        self.network
            .instance_ports(uuid)
            .await?
            .iter()
            .map(interface_spec)
            .collect()
    }

    /// The domain `instance` should have with `flavor`, with its
    /// interfaces (a resize or its revert redefines it whole).
    pub(super) async fn spec_with_interfaces(
        &self,
        instance: &Instance,
        flavor: &FlavorSnapshot,
    ) -> Result<SpawnSpec> {
        let interfaces = self.interfaces(&instance.uuid).await?;
        self.complete_spec(instance, flavor, interfaces).await
    }

    /// Releases the ports of `uuid` in `tx` (the transaction that deletes
    /// the instance or fails its build).
    pub(super) async fn release_ports(&self, tx: &mut Tx, uuid: &str) -> Result<()> {
        self.network.release_instance_ports_in(tx, uuid).await?;
        Ok(())
    }
}

impl Conductor {
    /// The firewall of compute host `host`: every port bound to it with the
    /// rules of its security groups, remote groups resolved (what the
    /// host's agent enforces), and the ports of the guests live-migrating
    /// to it, still bound to their source (Nova's `pre_live_migration`
    /// sets up the destination's filters before the guest arrives: it is
    /// filtered from its first packet there).
    pub async fn host_firewall(&self, host: &str) -> Result<HostFirewall> {
        let arriving = self.live_migrating_to(host).await?;
        let ports = self.network.host_port_security(host, &arriving).await?;
        let ports = ports
            .into_iter()
            .map(|port| {
                Ok(PortFirewall {
                    port_id: Uuid::parse_str(&port.port_id).map_err(|error| {
                        ConductorError::BadRequest(format!("bad id {}: {error}", port.port_id))
                    })?,
                    bridge: port.bridge,
                    tap: port.tap,
                    mac_address: port.mac_address,
                    addresses: port.addresses,
                    port_security_enabled: port.port_security_enabled,
                    rules: port.rules.into_iter().map(firewall_rule).collect(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(HostFirewall { ports })
    }
}

fn firewall_rule(rule: ResolvedRule) -> FirewallRule {
    let port = |value: Option<i64>| value.and_then(|value| u32::try_from(value).ok());
    FirewallRule {
        direction: if rule.direction == "egress" {
            Direction::Egress
        } else {
            Direction::Ingress
        },
        ip_version: if rule.ethertype == "IPv6" { 6 } else { 4 },
        protocol: rule.protocol,
        port_range_min: port(rule.port_range_min),
        port_range_max: port(rule.port_range_max),
        remote: rule.remote,
    }
}
