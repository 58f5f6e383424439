//! Changes to an instance's record that need no agent: an admin's
//! reset-state, an owner's or admin's lock, and a rename (`PUT /servers/{id}`).
//! Each runs in the conductor's
//! serialized section, so it never interleaves with a state change of an
//! operation in flight.

use std::sync::Arc;

use super::{Caller, Conductor, ConductorError, Result, notices};
use novum_db as db;

/// What `PUT /servers/{id}` changes; each `None` leaves the field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerChanges {
    /// The new display name.
    pub name: Option<String>,
    /// The new description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// The new IPv4 access address (`""` clears it).
    pub access_ip_v4: Option<String>,
    /// The new IPv6 access address (`""` clears it).
    pub access_ip_v6: Option<String>,
    /// The availability zone to pin the server to (`Some(None)` unpins it;
    /// 2.104): only the zone it is in, and only while it is not pinned to
    /// another.
    pub pinned_availability_zone: Option<Option<String>>,
}

/// Who holds a server's lock (Nova's `locked_by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockedBy {
    /// The server's own project locked it.
    Owner,
    /// An admin of another project locked it: the owner cannot unlock it.
    Admin,
}

impl LockedBy {
    /// The stored (and shown) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
        }
    }
}

impl Conductor {
    /// `os-resetState`: sets the vm_state and clears the task state, as an
    /// admin's repair (no state guard, no agent, no notification: Nova's
    /// `reset_state`).
    pub async fn reset_state(self: &Arc<Self>, uuid: &str, vm_state: &str) -> Result<()> {
        let mut tx = self.begin_global(uuid).await?;
        Self::locked_instance(&mut tx, uuid).await?;
        sqlx::query(
            "UPDATE instances SET vm_state = $1, task_state = NULL, updated_at = $2 WHERE uuid = $3",
        )
        .bind(vm_state)
        .bind(db::now())
        .bind(uuid)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// `lock` (`Some(holder)`) or `unlock` (`None`). A server an admin locked
    /// stays locked for everyone but an admin (`caller_is_admin`): Nova's
    /// `unlock_override` rule, answered 403.
    pub async fn set_lock(
        self: &Arc<Self>,
        uuid: &str,
        lock: Option<LockedBy>,
        caller_is_admin: bool,
    ) -> Result<()> {
        let mut tx = self.begin_global(uuid).await?;
        let instance = Self::locked_instance(&mut tx, uuid).await?;
        if lock.is_none()
            && instance.locked_by.as_deref() == Some(LockedBy::Admin.as_str())
            && !caller_is_admin
        {
            return Err(ConductorError::Forbidden(
                "Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to be performed."
                    .to_string(),
            ));
        }
        sqlx::query(
            "UPDATE instances SET locked = $1, locked_by = $2, updated_at = $3 WHERE uuid = $4",
        )
        .bind(i64::from(lock.is_some()))
        .bind(lock.map(LockedBy::as_str))
        .bind(db::now())
        .bind(uuid)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// `PUT /servers/{id}`: applies `changes` to the instance's record and,
    /// when its name changed, sends `instance.update` (from the API
    /// publisher) in the same transaction.
    pub async fn update_server(
        self: &Arc<Self>,
        uuid: &str,
        changes: ServerChanges,
        caller: &Caller<'_>,
    ) -> Result<()> {
        let mut tx = self.begin_global(uuid).await?;
        let instance = Self::locked_instance(&mut tx, uuid).await?;
        let pinned = match changes.pinned_availability_zone {
            None => instance.requested_availability_zone.clone(),
            Some(None) => None,
            Some(Some(zone)) => {
                let current = instance.availability_zone.as_deref().unwrap_or_default();
                match instance.requested_availability_zone.as_deref() {
                    Some(pinned) if pinned != zone => {
                        return Err(ConductorError::Conflict(
                            "Cannot change pinned availability zone directly. Unpin first by setting \
                             pinned_availability_zone to null."
                                .to_string(),
                        ));
                    }
                    None if zone != current => {
                        return Err(ConductorError::Conflict(format!(
                            "Server can only be pinned to its current availability zone '{current}', \
                             but '{zone}' was requested."
                        )));
                    }
                    _ => Some(zone),
                }
            }
        };
        sqlx::query(
            "UPDATE instances SET display_name = $1, description = $2, updated_at = $3, access_ip_v4 = $4, \
             access_ip_v6 = $5, requested_availability_zone = $6 WHERE uuid = $7",
        )
        .bind(changes.name.unwrap_or_else(|| instance.display_name.clone()))
        .bind(changes.description.unwrap_or_else(|| instance.description.clone()))
        .bind(db::now())
        .bind(changes.access_ip_v4.unwrap_or_else(|| instance.access_ip_v4.clone()))
        .bind(changes.access_ip_v6.unwrap_or_else(|| instance.access_ip_v6.clone()))
        .bind(pinned)
        .bind(uuid)
        .execute(&mut *tx)
        .await?;
        notices::renamed(
            &mut tx,
            &self.api_publisher(),
            uuid,
            &instance.display_name,
            &notices::caller_context(caller),
        )
        .await?;
        novum_notify::commit(tx).await?;
        Ok(())
    }
}
