//! The network service: the Neutron v2.0 subset clients need (networks,
//! subnets, ports, security groups and rules, quotas, get-me-a-network),
//! built in, in novum's database, without its HTTP layer.
//!
//! - **Records** ([`model`]): [`Network`], [`Subnet`], [`Port`],
//!   [`SecurityGroup`], [`SecurityGroupRule`]; what creates and changes them
//!   ([`NewNetwork`], [`NetworkUpdate`], ...). Who asks is a [`Caller`].
//! - **Service**: [`NetworkService`] (`new(db, config)`), one method per
//!   API operation (`create_network`, `list_ports`, ...), plus the
//!   operations compute calls ([`compute`]: allocate ports for an instance,
//!   bind, release, the instance's ports with what the agent needs).
//! - **Visibility**: an admin sees everything; a project sees its own
//!   resources, the networks that are `shared` or `router:external` and
//!   their subnets, and the ports on networks it owns. What a caller may
//!   not see does not exist for it (NotFound). Admin-only attributes
//!   (provider, `router:external`, `shared` on create, `is_default`,
//!   `binding:host_id`, another project) are refused with
//!   [`NetworkError::PolicyNotAuthorized`].
//! - **IPAM** ([`ipam`] for the arithmetic): an address is handed out by a
//!   transaction serialized on the network (lock `network:<id>`), the
//!   lowest free address of the subnet's pools, and guarded by the unique
//!   `(subnet_id, ip_address)` of `network_ip_allocations`. MACs are random
//!   `fa:16:3e:xx:xx:xx`, unique per network, retried on collision.
//! - **Quotas** ([`quotas`]): networks, subnets, ports, security groups and
//!   rules per project, counted and checked in the transaction that inserts,
//!   serialized per project on the same lock name as compute's quotas
//!   (`quota:<project>`); limits are rows of the `quotas` table (user `''`)
//!   over `[network] quota_*`.
//! - **Default security group**: one `default` group per project, created
//!   on first use (listing groups, creating a group or a port), unique by
//!   `network_default_security_groups` (keyed by project).
//! - **Get-me-a-network** ([`default_network`]): [`ensure_default_network`]
//!   creates the shared default network at start;
//!   [`NetworkService::auto_allocated_topology`] hands it out.
//! - **Listing** ([`listing`]): one generic [`Listing`] (filters, sort keys,
//!   limit, marker, page_reverse) giving a [`Page`].
//! - **Errors**: [`NetworkError`], named and worded as Neutron's, with the
//!   HTTP status ([`NetworkError::status`]) and type
//!   ([`NetworkError::error_type`]) the handler puts in a `NeutronError`.
//!
//! Lock order (PostgreSQL advisory locks; SQLite holds its one write lock):
//! `conductor` → `instance:<uuid>` → `quota:<project>` → `network:<network
//! id>` (several in id order), any of them first; a server create starts at
//! `quota:<project>` (no global lock), the compute workflows on an existing
//! instance at `conductor` or `instance:<uuid>`; `network-default`
//! (creating the default network) comes before `quota:<project>`.
//! `security-group-default:<project>` and `network-instance:<uuid>` are
//! taken alone.

#![deny(missing_docs)]

pub mod compute;
pub mod config;
pub mod default_network;
pub mod error;
pub mod firewall;
pub mod ipam;
pub mod listing;
pub mod model;
pub mod networks;
pub mod ports;
pub mod quotas;
pub mod security_groups;
mod store;
pub mod subnets;

pub use compute::{
    InstanceAddress, InstanceAddressing, InstanceIp, InstancePort, InstancePortRequest,
    ReleasedPorts, bridge_name,
};
pub use config::{NetworkBackend, NetworkConfig};
pub use default_network::{AutoAllocatedTopology, ensure_default_network};
pub use error::NetworkError;
pub use firewall::{PortSecurity, ResolvedRule};
pub use listing::{Listing, Page, SortDirection};
pub use model::*;
pub use quotas::{QuotaDetail, QuotaResource};

use novum_db::{Db, Tx};

/// The network service over a database.
#[derive(Clone, Debug)]
pub struct NetworkService {
    db: Db,
    config: NetworkConfig,
}

/// The lock name serializing quota checks of `project` (the same name
/// novum-quota uses, so network and compute quota checks of a project
/// serialize with each other).
pub fn quota_lock(project: &str) -> String {
    format!("quota:{project}")
}

/// The lock name serializing address and MAC allocation on `network_id`.
pub fn network_lock(network_id: &str) -> String {
    format!("network:{network_id}")
}

/// The longest name or description Neutron accepts.
pub const MAX_NAME_LENGTH: usize = 255;

impl NetworkService {
    /// The service for `config`: the built-in backend over `db`.
    /// `backend = "neutron"` is [`NetworkError::NotImplemented`].
    pub fn new(db: Db, config: NetworkConfig) -> Result<Self, NetworkError> {
        match config.backend {
            NetworkBackend::Builtin => Ok(Self { db, config }),
            NetworkBackend::Neutron => Err(NetworkError::NotImplemented(
                "[network] backend = \"neutron\" (an external Neutron endpoint)".to_string(),
            )),
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The `[network]` configuration.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// A transaction serialized on `project`'s quota and then on each of
    /// `networks` (in id order), per the lock order.
    pub async fn begin_locked(&self, project: &str, networks: &[&str]) -> Result<Tx, NetworkError> {
        let mut tx = self.db.begin_serialized(&quota_lock(project)).await?;
        self.lock_networks(&mut tx, networks).await?;
        Ok(tx)
    }

    /// Joins the locks of `networks` (in id order) from a serialized
    /// transaction that holds the quota lock.
    pub async fn lock_networks(&self, tx: &mut Tx, networks: &[&str]) -> Result<(), NetworkError> {
        let mut sorted: Vec<&str> = networks.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        for network in sorted {
            self.db.serialize_in(tx, &network_lock(network)).await?;
        }
        Ok(())
    }

    /// The project a create acts for: `requested` when given (another
    /// project than the caller's: admins only), else the caller's.
    pub(crate) fn owner_for(
        &self,
        caller: &Caller,
        requested: Option<&str>,
    ) -> Result<String, NetworkError> {
        match requested {
            Some(project) if project != caller.project_id && !caller.is_admin => {
                Err(error::invalid(
                    "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges",
                ))
            }
            Some(project) => Ok(project.to_string()),
            None => Ok(caller.project_id.clone()),
        }
    }
}

/// A new uuid.
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Refuses a name or description longer than Neutron's limit.
pub(crate) fn check_length(value: &str) -> Result<(), NetworkError> {
    if value.chars().count() > MAX_NAME_LENGTH {
        return Err(error::invalid(format!(
            "'{value}' exceeds maximum length of {MAX_NAME_LENGTH}"
        )));
    }
    Ok(())
}

/// Refuses an admin-only attribute for a non-admin (`rule` names it as
/// Neutron's policy does).
pub(crate) fn admin_only(caller: &Caller, given: bool, rule: &str) -> Result<(), NetworkError> {
    if given && !caller.is_admin {
        return Err(NetworkError::PolicyNotAuthorized(rule.to_string()));
    }
    Ok(())
}

/// `true` as the database stores it.
pub(crate) fn flag(value: bool) -> i64 {
    i64::from(value)
}
