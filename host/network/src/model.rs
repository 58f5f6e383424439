//! The records of the network service and what creates and updates them.
//! Field names follow Neutron's attributes (`router:external` is
//! `router_external`, `binding:host_id` is `binding.host_id`, `provider:*`
//! are in [`Provider`]); `project_id` is also Neutron's `tenant_id`.
//!
//! In the `New*` and `*Update` types an `Option` left `None` means "not
//! given": defaults apply on create, the value is kept on update. Addresses,
//! CIDRs and MACs are strings as the client sent them; the service parses
//! and validates them with Neutron's messages.

/// Who calls: the project of the token and whether it holds the admin role.
/// An admin sees and changes everything; a project sees its own resources
/// and the networks that are shared or external (and their subnets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The caller's project.
    pub project_id: String,
    /// The caller is an admin.
    pub is_admin: bool,
}

impl Caller {
    /// A caller of `project_id`.
    pub fn project(project_id: &str) -> Self {
        Self {
            project_id: project_id.to_string(),
            is_admin: false,
        }
    }

    /// An admin of `project_id`.
    pub fn admin(project_id: &str) -> Self {
        Self {
            project_id: project_id.to_string(),
            is_admin: true,
        }
    }
}

/// Network status: the only one this backend gives.
pub const STATUS_ACTIVE: &str = "ACTIVE";
/// Port status before it is bound.
pub const STATUS_DOWN: &str = "DOWN";
/// `binding:vif_type` of an unbound port.
pub const VIF_TYPE_UNBOUND: &str = "unbound";
/// `binding:vif_type` of a port bound to a host: a Linux bridge.
pub const VIF_TYPE_BRIDGE: &str = "bridge";
/// The `binding:vnic_type` values Neutron accepts.
pub const VNIC_TYPES: [&str; 9] = [
    "normal",
    "direct",
    "macvtap",
    "baremetal",
    "direct-physical",
    "virtio-forwarder",
    "smart-nic",
    "vdpa",
    "remote-managed",
];
/// The network type of networks created without provider attributes: this
/// backend's networks are a Linux bridge per host, not a segment of a
/// physical network.
pub const DEFAULT_NETWORK_TYPE: &str = "local";

/// Provider attributes (`provider:network_type`, `provider:physical_network`,
/// `provider:segmentation_id`): set and seen by admins only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provider {
    /// `provider:network_type` (`local`, `flat`, `vlan`, `vxlan`, ...).
    pub network_type: Option<String>,
    /// `provider:physical_network`.
    pub physical_network: Option<String>,
    /// `provider:segmentation_id` (VLAN id, VNI).
    pub segmentation_id: Option<i64>,
}

/// A network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// Id (uuid).
    pub id: String,
    /// Owner.
    pub project_id: String,
    /// Name (not unique).
    pub name: String,
    /// Description.
    pub description: String,
    /// `admin_state_up`.
    pub admin_state_up: bool,
    /// Every project may use it.
    pub shared: bool,
    /// `router:external`.
    pub router_external: bool,
    /// MTU.
    pub mtu: i64,
    /// `ACTIVE`.
    pub status: String,
    /// Provider attributes.
    pub provider: Provider,
    /// `port_security_enabled`: the default of its ports.
    pub port_security_enabled: bool,
    /// The default network of get-me-a-network (`is_default`).
    pub is_default: bool,
    /// Ids of its subnets, oldest first.
    pub subnets: Vec<String>,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Last changed, RFC 3339.
    pub updated_at: String,
    /// Bumped by every update.
    pub revision_number: i64,
}

/// A network to create.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewNetwork {
    /// Owner (another project than the caller's: admins only).
    pub project_id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Default true.
    pub admin_state_up: Option<bool>,
    /// Default false; true by admins only.
    pub shared: Option<bool>,
    /// Default false; admins only.
    pub router_external: Option<bool>,
    /// Default `[network] default_mtu`.
    pub mtu: Option<i64>,
    /// Admins only.
    pub provider: Provider,
    /// Default true.
    pub port_security_enabled: Option<bool>,
    /// Default false; admins only.
    pub is_default: Option<bool>,
}

/// Changes to a network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New `admin_state_up`.
    pub admin_state_up: Option<bool>,
    /// New `shared` (admins only).
    pub shared: Option<bool>,
    /// New `router:external` (admins only).
    pub router_external: Option<bool>,
    /// New MTU.
    pub mtu: Option<i64>,
    /// New `port_security_enabled`.
    pub port_security_enabled: Option<bool>,
    /// New `is_default` (admins only).
    pub is_default: Option<bool>,
}

/// An allocation pool, first and last address (inclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocationPool {
    /// `start`.
    pub start: String,
    /// `end`.
    pub end: String,
}

/// A host route of a subnet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRoute {
    /// Destination CIDR.
    pub destination: String,
    /// Next hop address.
    pub nexthop: String,
}

/// A subnet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    /// Id (uuid).
    pub id: String,
    /// Its network.
    pub network_id: String,
    /// Owner.
    pub project_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// 4 or 6.
    pub ip_version: u8,
    /// CIDR.
    pub cidr: String,
    /// Gateway, if any.
    pub gateway_ip: Option<String>,
    /// `enable_dhcp`.
    pub enable_dhcp: bool,
    /// `ipv6_ra_mode`.
    pub ipv6_ra_mode: Option<String>,
    /// `ipv6_address_mode`.
    pub ipv6_address_mode: Option<String>,
    /// Allocation pools, in order.
    pub allocation_pools: Vec<AllocationPool>,
    /// DNS name servers, in order.
    pub dns_nameservers: Vec<String>,
    /// Host routes, in order.
    pub host_routes: Vec<HostRoute>,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Last changed, RFC 3339.
    pub updated_at: String,
    /// Bumped by every update.
    pub revision_number: i64,
}

/// The gateway a new subnet asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GatewayRequest {
    /// Not given: the subnet's first host address.
    #[default]
    Default,
    /// `null`: no gateway.
    Disabled,
    /// This address.
    Address(String),
}

/// A subnet to create.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewSubnet {
    /// Owner (default: the network's owner when an admin creates it, else
    /// the caller's project).
    pub project_id: Option<String>,
    /// The network.
    pub network_id: String,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// 4 or 6.
    pub ip_version: u8,
    /// CIDR (of `ip_version`, in network form).
    pub cidr: String,
    /// Gateway.
    pub gateway_ip: GatewayRequest,
    /// Default true.
    pub enable_dhcp: Option<bool>,
    /// IPv6 only.
    pub ipv6_ra_mode: Option<String>,
    /// IPv6 only.
    pub ipv6_address_mode: Option<String>,
    /// Default: the CIDR without network, broadcast and gateway.
    pub allocation_pools: Option<Vec<AllocationPool>>,
    /// DNS name servers, in order.
    pub dns_nameservers: Vec<String>,
    /// Host routes.
    pub host_routes: Vec<HostRoute>,
}

/// Changes to a subnet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubnetUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New gateway (`Some(None)`: none).
    pub gateway_ip: Option<Option<String>>,
    /// New `enable_dhcp`.
    pub enable_dhcp: Option<bool>,
    /// New name servers (replace).
    pub dns_nameservers: Option<Vec<String>>,
    /// New host routes (replace).
    pub host_routes: Option<Vec<HostRoute>>,
    /// New pools (replace; addresses handed out stay).
    pub allocation_pools: Option<Vec<AllocationPool>>,
}

/// A fixed IP of a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedIp {
    /// The subnet.
    pub subnet_id: String,
    /// The address.
    pub ip_address: String,
}

/// A requested fixed IP: a subnet (any free address of it), an address
/// (in whichever subnet of the network holds it), or both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FixedIpRequest {
    /// The subnet.
    pub subnet_id: Option<String>,
    /// The address.
    pub ip_address: Option<String>,
}

/// An allowed address pair of a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressPair {
    /// An address or CIDR.
    pub ip_address: String,
    /// The MAC (the port's when not given).
    pub mac_address: String,
}

/// A requested allowed address pair.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressPairRequest {
    /// An address or CIDR.
    pub ip_address: String,
    /// The MAC; default the port's.
    pub mac_address: Option<String>,
}

/// A port's binding (`binding:*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// `binding:host_id` (empty: unbound).
    pub host_id: String,
    /// `binding:vif_type`: `unbound` or `bridge`.
    pub vif_type: String,
    /// `binding:vnic_type`: `normal`, ...
    pub vnic_type: String,
}

/// A port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// Id (uuid).
    pub id: String,
    /// Its network.
    pub network_id: String,
    /// Owner.
    pub project_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// MAC address.
    pub mac_address: String,
    /// `admin_state_up`.
    pub admin_state_up: bool,
    /// `DOWN` or `ACTIVE`.
    pub status: String,
    /// What it is attached to (an instance's uuid), or empty.
    pub device_id: String,
    /// `compute:<az>`, `network:...`, or empty.
    pub device_owner: String,
    /// Fixed IPs, in order.
    pub fixed_ips: Vec<FixedIp>,
    /// Ids of its security groups.
    pub security_groups: Vec<String>,
    /// `port_security_enabled`.
    pub port_security_enabled: bool,
    /// `allowed_address_pairs`.
    pub allowed_address_pairs: Vec<AddressPair>,
    /// `binding:*`.
    pub binding: Binding,
    /// Compute created it for its instance (deleted with the instance);
    /// false for ports the user created and passed (unbound and kept).
    pub created_for_instance: bool,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Last changed, RFC 3339.
    pub updated_at: String,
    /// Bumped by every update.
    pub revision_number: i64,
}

/// A port to create.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewPort {
    /// Owner (another project: admins only).
    pub project_id: Option<String>,
    /// The network.
    pub network_id: String,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Default: a random `fa:16:3e:..` address.
    pub mac_address: Option<String>,
    /// Default true.
    pub admin_state_up: Option<bool>,
    /// Device (instance uuid).
    pub device_id: Option<String>,
    /// Device owner.
    pub device_owner: Option<String>,
    /// `None`: an address from the network's subnets; `Some([])`: none.
    pub fixed_ips: Option<Vec<FixedIpRequest>>,
    /// Ids; `None`: the project's default group (when port security is on).
    pub security_groups: Option<Vec<String>>,
    /// Default: the network's.
    pub port_security_enabled: Option<bool>,
    /// Allowed address pairs.
    pub allowed_address_pairs: Option<Vec<AddressPairRequest>>,
    /// `binding:host_id` (admins only).
    pub binding_host_id: Option<String>,
    /// `binding:vnic_type`, default `normal`.
    pub binding_vnic_type: Option<String>,
}

/// Changes to a port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New `admin_state_up`.
    pub admin_state_up: Option<bool>,
    /// New device.
    pub device_id: Option<String>,
    /// New device owner.
    pub device_owner: Option<String>,
    /// New fixed IPs (replace: kept ones stay, others are released).
    pub fixed_ips: Option<Vec<FixedIpRequest>>,
    /// New security groups (replace).
    pub security_groups: Option<Vec<String>>,
    /// New `port_security_enabled`.
    pub port_security_enabled: Option<bool>,
    /// New allowed address pairs (replace).
    pub allowed_address_pairs: Option<Vec<AddressPairRequest>>,
    /// New `binding:host_id` (admins only; empty unbinds).
    pub binding_host_id: Option<String>,
    /// New `binding:vnic_type`.
    pub binding_vnic_type: Option<String>,
}

/// A security group with its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroup {
    /// Id (uuid).
    pub id: String,
    /// Owner.
    pub project_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// `stateful`.
    pub stateful: bool,
    /// Its rules.
    pub rules: Vec<SecurityGroupRule>,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Last changed, RFC 3339.
    pub updated_at: String,
    /// Bumped by every update.
    pub revision_number: i64,
}

/// A security group to create.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewSecurityGroup {
    /// Owner (another project: admins only).
    pub project_id: Option<String>,
    /// Name (not `default`).
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Default true.
    pub stateful: Option<bool>,
}

/// Changes to a security group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityGroupUpdate {
    /// New name (not for the default group).
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New `stateful`.
    pub stateful: Option<bool>,
}

/// A security group rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroupRule {
    /// Id (uuid).
    pub id: String,
    /// Its group.
    pub security_group_id: String,
    /// Owner (the group's).
    pub project_id: String,
    /// `ingress` or `egress`.
    pub direction: String,
    /// `IPv4` or `IPv6`.
    pub ethertype: String,
    /// Protocol name or number, or any.
    pub protocol: Option<String>,
    /// First port (ICMP: type).
    pub port_range_min: Option<i64>,
    /// Last port (ICMP: code).
    pub port_range_max: Option<i64>,
    /// Remote CIDR.
    pub remote_ip_prefix: Option<String>,
    /// Remote group.
    pub remote_group_id: Option<String>,
    /// Description.
    pub description: String,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Last changed, RFC 3339.
    pub updated_at: String,
    /// Revision.
    pub revision_number: i64,
}

/// A security group rule to create.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewSecurityGroupRule {
    /// The group.
    pub security_group_id: String,
    /// `ingress` or `egress`.
    pub direction: String,
    /// Default `IPv4`.
    pub ethertype: Option<String>,
    /// Protocol name or number (0–255), or any.
    pub protocol: Option<String>,
    /// First port (ICMP: type).
    pub port_range_min: Option<i64>,
    /// Last port (ICMP: code).
    pub port_range_max: Option<i64>,
    /// Remote CIDR.
    pub remote_ip_prefix: Option<String>,
    /// Remote group.
    pub remote_group_id: Option<String>,
    /// Description.
    pub description: Option<String>,
}
