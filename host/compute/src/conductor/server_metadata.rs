//! A server's metadata (`/servers/{id}/metadata`): merged, replaced, one
//! item set or deleted, in the conductor's serialized section, under Nova's
//! state guard and the `metadata_items` quota, with `instance.update`
//! committed with the change.

use std::collections::BTreeMap;
use std::sync::Arc;

use novum_quota::Resource;

use super::states::vm;
use super::{Caller, Conductor, ConductorError, Result, notices};
use novum_db as db;

/// How a metadata request changes a server's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataChange {
    /// `POST /metadata`: these items added or overwritten, the rest kept.
    Merge(BTreeMap<String, String>),
    /// `PUT /metadata`: exactly these items.
    Replace(BTreeMap<String, String>),
    /// `PUT /metadata/{key}`: one item set.
    Set(String, String),
    /// `DELETE /metadata/{key}`: one item gone (404 when it is not there).
    Delete(String),
}

/// The vm states in which Nova changes a server's metadata (with no task
/// in progress).
const CHANGEABLE_IN: [&str; 4] = [vm::ACTIVE, vm::PAUSED, vm::SUSPENDED, vm::STOPPED];

impl Conductor {
    /// Applies `change` to server `uuid`'s metadata; returns the metadata
    /// afterwards. 409 when the server is in a state Nova refuses
    /// (`update metadata` / `delete metadata`), 403 over `metadata_items`.
    pub async fn change_metadata(
        self: &Arc<Self>,
        uuid: &str,
        change: MetadataChange,
        caller: &Caller<'_>,
    ) -> Result<BTreeMap<String, String>> {
        let mut tx = self.db().begin_serialized("conductor").await?;
        let instance = Self::locked_instance(&mut tx, uuid).await?;
        let verb = if matches!(change, MetadataChange::Delete(_)) {
            "delete metadata"
        } else {
            "update metadata"
        };
        // Nova's order: the vm_state first, then the task_state.
        if !CHANGEABLE_IN.contains(&instance.vm_state.as_str()) {
            return Err(ConductorError::Conflict(format!(
                "Cannot '{verb}' instance {uuid} while it is in vm_state {}",
                instance.vm_state
            )));
        }
        if let Some(task_state) = &instance.task_state {
            return Err(ConductorError::Conflict(format!(
                "Cannot '{verb}' instance {uuid} while it is in task_state {task_state}"
            )));
        }
        let before = instance.metadata_map();
        let after = match change {
            MetadataChange::Merge(items) => {
                let mut merged = before.clone();
                merged.extend(items);
                merged
            }
            MetadataChange::Replace(items) => items,
            MetadataChange::Set(key, value) => {
                let mut set = before.clone();
                set.insert(key, value);
                set
            }
            MetadataChange::Delete(key) => {
                let mut rest = before.clone();
                if rest.remove(&key).is_none() {
                    return Err(ConductorError::NotFound(
                        "Metadata item was not found".to_string(),
                    ));
                }
                rest
            }
        };
        if after.len() > before.len() {
            self.quota
                .check_absolute(
                    &mut tx,
                    &instance.project_id,
                    &instance.user_id,
                    Resource::MetadataItems,
                    i64::try_from(after.len()).unwrap_or(i64::MAX),
                    caller.request_id,
                )
                .await?;
        }
        let text = serde_json::to_string(&after).map_err(|error| {
            ConductorError::BadRequest(format!("metadata cannot be stored: {error}"))
        })?;
        sqlx::query("UPDATE instances SET metadata = $1, updated_at = $2 WHERE uuid = $3")
            .bind(text)
            .bind(db::now())
            .bind(uuid)
            .execute(&mut *tx)
            .await?;
        notices::updated(
            &mut tx,
            &self.api_publisher(),
            uuid,
            None,
            &notices::caller_context(caller),
        )
        .await?;
        novum_notify::commit(tx).await?;
        Ok(after)
    }
}
