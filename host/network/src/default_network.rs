//! Get-me-a-network: the default network every project may use.
//!
//! At start the controller calls [`ensure_default_network`]: when no
//! network is the default (`is_default`), it creates one, shared, named
//! `[network] default_network_name` (`shared`), with an IPv4 subnet of
//! `default_network_cidr` (10.0.0.0/22: 1021 addresses for guests),
//! gateway the first address. Compute's `networks: "auto"` (and a server
//! create without networks) asks [`NetworkService::auto_allocated_topology`]
//! for a project's network: that default network.

use sqlx::Row;

use crate::error::NetworkError;
use crate::model::{Caller, GatewayRequest, Network, NewNetwork, NewSubnet};
use crate::{NetworkConfig, NetworkService, networks};

/// The lock serializing the creation of the default network.
pub const DEFAULT_NETWORK_LOCK: &str = "network-default";

/// A project's auto-allocated topology (`GET
/// /v2.0/auto-allocated-topology/{project}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoAllocatedTopology {
    /// The network to boot on.
    pub id: String,
    /// The project asked for.
    pub project_id: String,
}

/// The id of the default network, if there is one.
async fn default_network_id(db: &novum_db::Db) -> Result<Option<String>, NetworkError> {
    let row = sqlx::query("SELECT id FROM networks WHERE is_default = 1 ORDER BY created_at, id")
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(|row| row.try_get("id")).transpose()?)
}

/// Creates the default network (owned by `owner_project`, the cloud
/// admin's project) with its subnet when no network is the default and
/// `[network] default_network` is on; returns the default network (None
/// when off and there is none). Idempotent, also when several controllers
/// start at once: the check and the creation run under one lock.
pub async fn ensure_default_network(
    db: &novum_db::Db,
    config: &NetworkConfig,
    owner_project: &str,
) -> Result<Option<Network>, NetworkError> {
    let service = NetworkService::new(db.clone(), config.clone())?;
    let admin = Caller::admin(owner_project);
    if let Some(id) = default_network_id(db).await? {
        return service.get_network(&admin, &id).await.map(Some);
    }
    if !config.default_network {
        return Ok(None);
    }
    // One transaction under `network-default`, then the owner's quota and
    // the new network's lock: concurrent starts make one network, and it
    // never exists without its subnet.
    let mut tx = db.begin_serialized(DEFAULT_NETWORK_LOCK).await?;
    let existing = sqlx::query("SELECT id FROM networks WHERE is_default = 1")
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(row) = existing {
        let id: String = row.try_get("id")?;
        tx.rollback().await.map_err(novum_db::DbError::from)?;
        return service.get_network(&admin, &id).await.map(Some);
    }
    db.serialize_in(&mut tx, &crate::quota_lock(owner_project))
        .await?;
    let id = create(&service, &mut tx, &admin, config).await?;
    tx.commit().await.map_err(novum_db::DbError::from)?;
    tracing::info!(network = %id, cidr = %config.default_network_cidr, "default network created");
    service.get_network(&admin, &id).await.map(Some)
}

async fn create(
    service: &NetworkService,
    tx: &mut novum_db::Tx,
    admin: &Caller,
    config: &NetworkConfig,
) -> Result<String, NetworkError> {
    let network = service
        .insert_network(
            tx,
            admin,
            &NewNetwork {
                name: Some(config.default_network_name.clone()),
                description: Some("The default network (get-me-a-network)".to_string()),
                shared: Some(true),
                is_default: Some(true),
                ..NewNetwork::default()
            },
        )
        .await?;
    service
        .db()
        .serialize_in(tx, &crate::network_lock(&network.id))
        .await?;
    let new = NewSubnet {
        network_id: network.id.clone(),
        name: Some(format!("{}-subnet", config.default_network_name)),
        ip_version: 4,
        cidr: config.default_network_cidr.clone(),
        gateway_ip: GatewayRequest::Default,
        dns_nameservers: config.default_network_dns_nameservers.clone(),
        ..NewSubnet::default()
    };
    let prepared = service.prepare_subnet(&new)?;
    service
        .insert_subnet(tx, &new, &prepared, &network, &network.project_id)
        .await?;
    Ok(network.id)
}

impl NetworkService {
    /// The auto-allocated topology of `project`: the default network.
    /// [`NetworkError::NotAuthorized`] for another project than the
    /// caller's (unless admin); [`NetworkError::AutoAllocationFailure`]
    /// when there is no default network.
    pub async fn auto_allocated_topology(
        &self,
        caller: &Caller,
        project: &str,
    ) -> Result<AutoAllocatedTopology, NetworkError> {
        if !caller.is_admin && caller.project_id != project {
            return Err(NetworkError::NotAuthorized);
        }
        let as_project = Caller::project(project);
        let id = default_network_id(&self.db).await?.ok_or_else(|| {
            NetworkError::AutoAllocationFailure(
                "No default network is available for auto-allocation".to_string(),
            )
        })?;
        let mut conn = self.db.connection().await?;
        let network = networks::visible(&mut conn, &as_project, &id)
            .await
            .map_err(|_| {
                NetworkError::AutoAllocationFailure("The default network is not shared".to_string())
            })?;
        Ok(AutoAllocatedTopology {
            id: network.id,
            project_id: project.to_string(),
        })
    }
}
