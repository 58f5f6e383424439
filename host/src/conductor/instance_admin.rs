//! Changes to an instance's record that need no agent: an admin's
//! reset-state and an owner's or admin's lock. Each runs in the conductor's
//! serialized section, so it never interleaves with a state change of an
//! operation in flight.

use std::sync::Arc;

use super::{Conductor, ConductorError, Result};
use crate::db;

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
        let mut tx = self.db().begin_serialized("conductor").await?;
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
        let mut tx = self.db().begin_serialized("conductor").await?;
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
}
