//! A server's metadata (`/servers/{id}/metadata`) and tags
//! (`/servers/{id}/tags`): merged or replaced, one item set or deleted, in
//! the conductor's serialized section, under Nova's state guards (and the
//! `metadata_items` quota, and at most [`MAX_TAGS`] tags), with
//! `instance.update` committed with the change.

use std::collections::BTreeMap;
use std::sync::Arc;

use novum_quota::Resource;

use super::states::vm;
use super::{Caller, Conductor, ConductorError, Result, notices};
use crate::store;
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

/// How a tags request changes a server's tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagsChange {
    /// `PUT /tags`: exactly these.
    Replace(Vec<String>),
    /// `PUT /tags/{tag}`: one more (nothing when it is there).
    Add(String),
    /// `DELETE /tags/{tag}`: one gone (404 when it is not there).
    Remove(String),
    /// `DELETE /tags`: none.
    Clear,
}

/// Most tags a server may have (Nova's `MAX_TAG_COUNT`).
pub const MAX_TAGS: usize = 50;

/// The vm states in which Nova changes a server's metadata (with no task
/// in progress) and tags (whatever the task; Nova adds the shelved states,
/// which novum does not have yet).
const CHANGEABLE_IN: [&str; 4] = [vm::ACTIVE, vm::PAUSED, vm::SUSPENDED, vm::STOPPED];

/// Nova's guard: `vm_state` among `states` (checked first), then
/// `task_state` none when `idle` is asked; else 409 naming `verb`.
fn guard(instance: &super::model::Instance, verb: &str, states: &[&str], idle: bool) -> Result<()> {
    let uuid = &instance.uuid;
    if !states.contains(&instance.vm_state.as_str()) {
        return Err(ConductorError::Conflict(format!(
            "Cannot '{verb}' instance {uuid} while it is in vm_state {}",
            instance.vm_state
        )));
    }
    if idle && let Some(task_state) = &instance.task_state {
        return Err(ConductorError::Conflict(format!(
            "Cannot '{verb}' instance {uuid} while it is in task_state {task_state}"
        )));
    }
    Ok(())
}

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
        let mut tx = self.begin_global(uuid).await?;
        let instance = Self::locked_instance(&mut tx, uuid).await?;
        let verb = if matches!(change, MetadataChange::Delete(_)) {
            "delete metadata"
        } else {
            "update metadata"
        };
        guard(&instance, verb, &CHANGEABLE_IN, true)?;
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
        sqlx::query("UPDATE instances SET metadata = $1 WHERE uuid = $2")
            .bind(text)
            .bind(uuid)
            .execute(&mut *tx)
            .await?;
        self.record_changed(tx, uuid, caller).await?;
        Ok(after)
    }
}

impl Conductor {
    /// Applies `change` to server `uuid`'s tags; returns them afterwards,
    /// sorted, and whether an added tag was new. 409 in a state Nova
    /// refuses, 400 beyond [`MAX_TAGS`], 404 removing a tag it lacks.
    pub async fn change_tags(
        self: &Arc<Self>,
        uuid: &str,
        change: TagsChange,
        caller: &Caller<'_>,
    ) -> Result<(Vec<String>, bool)> {
        let mut tx = self.begin_global(uuid).await?;
        let instance = Self::locked_instance(&mut tx, uuid).await?;
        let verb = match &change {
            TagsChange::Replace(_) => "update tags",
            TagsChange::Add(_) => "update tag",
            TagsChange::Remove(_) => "delete tag",
            TagsChange::Clear => "delete tags",
        };
        guard(&instance, verb, &CHANGEABLE_IN, false)?;
        let before = store::tags::of_instance(&mut tx, uuid).await?;
        let mut added = false;
        let mut after = match change {
            TagsChange::Replace(tags) => tags,
            TagsChange::Add(tag) => {
                let mut tags = before.clone();
                if !tags.contains(&tag) {
                    tags.push(tag);
                    added = true;
                }
                tags
            }
            TagsChange::Remove(tag) => {
                if !before.contains(&tag) {
                    return Err(ConductorError::NotFound(format!(
                        "Tag {tag} could not be found for instance {uuid}."
                    )));
                }
                before.iter().filter(|t| **t != tag).cloned().collect()
            }
            TagsChange::Clear => Vec::new(),
        };
        after.sort();
        after.dedup();
        if after.len() > MAX_TAGS {
            return Err(ConductorError::BadRequest(format!(
                "The number of tags exceeded the per-server limit {MAX_TAGS}"
            )));
        }
        if after == before {
            tx.commit().await?;
        } else {
            store::tags::replace(&mut tx, uuid, &after).await?;
            self.record_changed(tx, uuid, caller).await?;
        }
        Ok((after, added))
    }

    /// Finishes a change of `uuid`'s record in `tx`: `updated_at` now,
    /// `instance.update` from the API publisher, committed together.
    async fn record_changed(
        &self,
        mut tx: novum_db::Tx,
        uuid: &str,
        caller: &Caller<'_>,
    ) -> Result<()> {
        sqlx::query("UPDATE instances SET updated_at = $1 WHERE uuid = $2")
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
        Ok(())
    }
}
