//! Networks: create, show, list, update, delete; and who may see one.

use sqlx::{AnyConnection, Row};

use crate::error::{NetworkError, invalid};
use crate::listing::{self, Attribute, Clauses, Listing, Page, Spec};
use crate::model::{
    Caller, DEFAULT_NETWORK_TYPE, Network, NetworkUpdate, NewNetwork, STATUS_ACTIVE,
};
use crate::quotas::QuotaResource;
use crate::{NetworkService, admin_only, check_length, flag, new_id, store};

/// The smallest MTU Neutron accepts (IPv4's minimum).
pub const MIN_MTU: i64 = 68;
/// The largest MTU accepted (jumbo frames).
pub const MAX_MTU: i64 = 9000;
/// The provider network types accepted.
pub const NETWORK_TYPES: [&str; 6] = ["local", "flat", "vlan", "vxlan", "geneve", "gre"];

/// What networks filter and sort on.
pub(crate) const ATTRIBUTES: &[Attribute] = &[
    listing::text("id", "id"),
    listing::text("name", "name"),
    listing::text("description", "description"),
    listing::text("project_id", "project_id"),
    listing::text("tenant_id", "project_id"),
    listing::boolean("admin_state_up", "admin_state_up"),
    listing::boolean("shared", "shared"),
    listing::boolean("router:external", "router_external"),
    listing::int("mtu", "mtu"),
    listing::text("status", "status"),
    listing::text("provider:network_type", "network_type"),
    listing::text("provider:physical_network", "physical_network"),
    listing::int("provider:segmentation_id", "segmentation_id"),
    listing::boolean("port_security_enabled", "port_security_enabled"),
    listing::boolean("is_default", "is_default"),
    listing::text("created_at", "created_at"),
    listing::text("updated_at", "updated_at"),
    listing::int("revision_number", "revision_number"),
];

/// The SQL condition "a network `project` may see", on `networks` columns.
pub(crate) fn visible_sql(clauses: &mut Clauses, project: &str) -> String {
    let project = clauses.text(project);
    format!("(project_id = {project} OR shared = 1 OR router_external = 1)")
}

/// Whether `caller` may see `network`.
pub fn may_see(caller: &Caller, network: &Network) -> bool {
    caller.is_admin
        || network.project_id == caller.project_id
        || network.shared
        || network.router_external
}

/// Whether `caller` owns `network` (or is an admin).
pub fn owns(caller: &Caller, network: &Network) -> bool {
    caller.is_admin || network.project_id == caller.project_id
}

/// The network `id`, whoever may see it.
pub(crate) async fn load(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<Network>, NetworkError> {
    Ok(store::networks(conn, &[id.to_string()]).await?.pop())
}

/// The network `id` as `caller` sees it.
pub(crate) async fn visible(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: &str,
) -> Result<Network, NetworkError> {
    match load(conn, id).await? {
        Some(network) if may_see(caller, &network) => Ok(network),
        _ => Err(NetworkError::NetworkNotFound(id.to_string())),
    }
}

fn validate_mtu(mtu: i64, max: i64) -> Result<(), NetworkError> {
    if mtu < MIN_MTU {
        return Err(invalid(format!(
            "'{mtu}' is too small - must be at least '{MIN_MTU}'"
        )));
    }
    if mtu > max {
        return Err(invalid(format!(
            "Requested MTU is too big, maximum is {max}"
        )));
    }
    Ok(())
}

fn validate_provider(provider: &crate::model::Provider) -> Result<(), NetworkError> {
    let Some(kind) = provider.network_type.as_deref() else {
        if provider.physical_network.is_some() || provider.segmentation_id.is_some() {
            return Err(invalid("provider:network_type required"));
        }
        return Ok(());
    };
    if !NETWORK_TYPES.contains(&kind) {
        return Err(invalid(format!(
            "network_type value '{kind}' not supported"
        )));
    }
    match (kind, provider.segmentation_id) {
        ("vlan", Some(id)) if !(1..=4094).contains(&id) => Err(invalid(format!(
            "segmentation_id out of range (1 through 4094): {id}"
        ))),
        ("vxlan" | "geneve" | "gre", Some(id)) if !(1..=16_777_215).contains(&id) => Err(invalid(
            format!("segmentation_id out of range (1 through 16777215): {id}"),
        )),
        ("local" | "flat", Some(_)) => Err(invalid(format!(
            "segmentation_id specified for {kind} network"
        ))),
        ("flat" | "vlan", _) if provider.physical_network.is_none() => Err(invalid(format!(
            "physical_network required for {kind} provider network"
        ))),
        _ => Ok(()),
    }
}

/// The default network other than `except`, if any.
async fn other_default(
    conn: &mut AnyConnection,
    except: &str,
) -> Result<Option<String>, NetworkError> {
    let row = sqlx::query("SELECT id FROM networks WHERE is_default = 1 AND id <> $1")
        .bind(except)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|row| row.try_get("id")).transpose()?)
}

impl NetworkService {
    /// Creates a network (quota `network` of its project).
    pub async fn create_network(
        &self,
        caller: &Caller,
        new: &NewNetwork,
    ) -> Result<Network, NetworkError> {
        let project = self.owner_for(caller, new.project_id.as_deref())?;
        let mut tx = self.begin_locked(&project, &[]).await?;
        let network = self.insert_network(&mut tx, caller, new).await?;
        tx.commit().await.map_err(novum_db::DbError::from)?;
        tracing::info!(network = %network.id, project = %project, "network created");
        Ok(network)
    }

    /// [`NetworkService::create_network`] in `conn`, a transaction
    /// serialized on the quota lock of the network's project.
    pub(crate) async fn insert_network(
        &self,
        conn: &mut AnyConnection,
        caller: &Caller,
        new: &NewNetwork,
    ) -> Result<Network, NetworkError> {
        let project = self.owner_for(caller, new.project_id.as_deref())?;
        admin_only(caller, new.shared == Some(true), "create_network:shared")?;
        admin_only(
            caller,
            new.router_external.is_some(),
            "create_network:router:external",
        )?;
        admin_only(
            caller,
            new.provider != crate::model::Provider::default(),
            "create_network:provider:network_type",
        )?;
        admin_only(
            caller,
            new.is_default.is_some(),
            "create_network:is_default",
        )?;
        let name = new.name.clone().unwrap_or_default();
        let description = new.description.clone().unwrap_or_default();
        check_length(&name)?;
        check_length(&description)?;
        let mtu = new.mtu.unwrap_or(self.config.default_mtu);
        validate_mtu(mtu, MAX_MTU)?;
        validate_provider(&new.provider)?;
        let id = new_id();
        self.check_quota(conn, &project, &[(QuotaResource::Network, 1)])
            .await?;
        if new.is_default == Some(true)
            && let Some(existing) = other_default(conn, &id).await?
        {
            return Err(NetworkError::DefaultNetworkExists(existing));
        }
        let now = novum_db::now();
        sqlx::query(
            "INSERT INTO networks (id, project_id, name, description, admin_state_up, shared, router_external, mtu, status, network_type, physical_network, segmentation_id, port_security_enabled, is_default, created_at, updated_at, revision_number) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, 1)",
        )
        .bind(&id)
        .bind(&project)
        .bind(&name)
        .bind(&description)
        .bind(flag(new.admin_state_up.unwrap_or(true)))
        .bind(flag(new.shared.unwrap_or(false)))
        .bind(flag(new.router_external.unwrap_or(false)))
        .bind(mtu)
        .bind(STATUS_ACTIVE)
        .bind(
            new.provider
                .network_type
                .clone()
                .unwrap_or_else(|| DEFAULT_NETWORK_TYPE.to_string()),
        )
        .bind(&new.provider.physical_network)
        .bind(new.provider.segmentation_id)
        .bind(flag(new.port_security_enabled.unwrap_or(true)))
        .bind(flag(new.is_default.unwrap_or(false)))
        .bind(&now)
        .execute(&mut *conn)
        .await?;
        load(conn, &id)
            .await?
            .ok_or_else(|| NetworkError::NetworkNotFound(id.clone()))
    }

    /// The network `id` as `caller` sees it.
    pub async fn get_network(&self, caller: &Caller, id: &str) -> Result<Network, NetworkError> {
        let mut conn = self.db.connection().await?;
        visible(&mut conn, caller, id).await
    }

    /// The page of `listing` over the networks `caller` may see.
    pub async fn list_networks(
        &self,
        caller: &Caller,
        listing: &Listing,
    ) -> Result<Page<Network>, NetworkError> {
        let mut conn = self.db.connection().await?;
        let project = caller.project_id.clone();
        let visible = move |clauses: &mut Clauses| visible_sql(clauses, &project);
        let special = |name: &str, values: &[String], clauses: &mut Clauses| {
            Ok(match name {
                "subnets" => {
                    let list = clauses.any_of("id", values);
                    clauses.clauses.push(format!(
                        "id IN (SELECT network_id FROM subnets WHERE {list})"
                    ));
                    true
                }
                _ => false,
            })
        };
        let spec = Spec {
            table: "networks",
            attributes: ATTRIBUTES,
            special: &special,
            visible: if caller.is_admin {
                None
            } else {
                Some(&visible)
            },
            not_found: NetworkError::NetworkNotFound,
        };
        let (ids, more) = listing::page_ids(&mut conn, &spec, listing).await?;
        let items = store::networks(&mut conn, &ids).await?;
        Ok(Page { items, more })
    }

    /// Updates network `id` (its owner or an admin; `shared`,
    /// `router:external` and `is_default` by admins only). Unsharing a
    /// network other projects have ports on is refused.
    pub async fn update_network(
        &self,
        caller: &Caller,
        id: &str,
        update: &NetworkUpdate,
    ) -> Result<Network, NetworkError> {
        admin_only(caller, update.shared.is_some(), "update_network:shared")?;
        admin_only(
            caller,
            update.router_external.is_some(),
            "update_network:router:external",
        )?;
        admin_only(
            caller,
            update.is_default.is_some(),
            "update_network:is_default",
        )?;
        for text in [&update.name, &update.description].into_iter().flatten() {
            check_length(text)?;
        }
        if let Some(mtu) = update.mtu {
            validate_mtu(mtu, MAX_MTU)?;
        }
        let mut tx = self.db.begin_serialized(&crate::network_lock(id)).await?;
        let mut network = visible(&mut tx, caller, id).await?;
        if !owns(caller, &network) {
            return Err(NetworkError::PolicyNotAuthorized("update_network".into()));
        }
        if update.shared == Some(false) && network.shared {
            let others = sqlx::query(
                "SELECT COUNT(*) AS n FROM ports WHERE network_id = $1 AND project_id <> $2",
            )
            .bind(id)
            .bind(&network.project_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get::<i64, _>("n")?;
            if others > 0 {
                return Err(NetworkError::InvalidSharedSetting(id.to_string()));
            }
        }
        if update.is_default == Some(true)
            && let Some(existing) = other_default(&mut tx, id).await?
        {
            return Err(NetworkError::DefaultNetworkExists(existing));
        }
        if let Some(name) = &update.name {
            network.name = name.clone();
        }
        if let Some(description) = &update.description {
            network.description = description.clone();
        }
        network.admin_state_up = update.admin_state_up.unwrap_or(network.admin_state_up);
        network.shared = update.shared.unwrap_or(network.shared);
        network.router_external = update.router_external.unwrap_or(network.router_external);
        network.mtu = update.mtu.unwrap_or(network.mtu);
        network.port_security_enabled = update
            .port_security_enabled
            .unwrap_or(network.port_security_enabled);
        network.is_default = update.is_default.unwrap_or(network.is_default);
        sqlx::query(
            "UPDATE networks SET name = $1, description = $2, admin_state_up = $3, shared = $4, router_external = $5, mtu = $6, port_security_enabled = $7, is_default = $8, updated_at = $9, revision_number = revision_number + 1 WHERE id = $10",
        )
        .bind(&network.name)
        .bind(&network.description)
        .bind(flag(network.admin_state_up))
        .bind(flag(network.shared))
        .bind(flag(network.router_external))
        .bind(network.mtu)
        .bind(flag(network.port_security_enabled))
        .bind(flag(network.is_default))
        .bind(novum_db::now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let network = load(&mut tx, id)
            .await?
            .ok_or_else(|| NetworkError::NetworkNotFound(id.to_string()))?;
        tx.commit().await.map_err(novum_db::DbError::from)?;
        Ok(network)
    }

    /// Deletes network `id` (its owner or an admin) with its subnets and the
    /// ports the network owns (`device_owner` `network:*`); any other port
    /// on it is [`NetworkError::NetworkInUse`].
    pub async fn delete_network(&self, caller: &Caller, id: &str) -> Result<(), NetworkError> {
        let mut tx = self.db.begin_serialized(&crate::network_lock(id)).await?;
        let network = visible(&mut tx, caller, id).await?;
        if !owns(caller, &network) {
            return Err(NetworkError::PolicyNotAuthorized("delete_network".into()));
        }
        let in_use = sqlx::query(
            "SELECT COUNT(*) AS n FROM ports WHERE network_id = $1 AND device_owner NOT LIKE 'network:%'",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?
        .try_get::<i64, _>("n")?;
        if in_use > 0 {
            return Err(NetworkError::NetworkInUse(id.to_string()));
        }
        for sql in [
            "DELETE FROM ports WHERE network_id = $1",
            "DELETE FROM network_ip_allocations WHERE network_id = $1",
            "DELETE FROM subnets WHERE network_id = $1",
            "DELETE FROM networks WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await.map_err(novum_db::DbError::from)?;
        tracing::info!(network = %id, "network deleted");
        Ok(())
    }
}
