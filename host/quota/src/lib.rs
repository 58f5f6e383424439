//! Quotas that never over-commit, decided by quota-policy plugins.
//!
//! - **Limits** per project, optionally per user of a project, and per quota
//!   class. Lookup: the user's row → the project's row → the `default` class
//!   → `[quota]` configuration ([`QuotaConfig`]); −1 is unlimited.
//! - **Usage** is counted from the database ([`store`]): instances, and the
//!   cores and RAM they hold (`instances.vcpus`/`memory_mb`), server groups,
//!   key pairs (per user), server group members (per group and user).
//! - **Decision**: a [`QuotaRequest`] with each resource's usage, limit and
//!   requested delta goes through the configured quota-policy plugins in order
//!   ([`check::decide`]); the first denial wins and its message becomes the
//!   403. A failing plugin follows its `on_error`: `ignore` skips it, anything
//!   else denies with a message naming the plugin.
//! - **No over-commit**: the check and the writes it allows share one
//!   transaction serialized per project ([`Quota::begin`], lock
//!   `quota:<project>`): SQLite `BEGIN IMMEDIATE`, PostgreSQL an advisory
//!   transaction lock. A caller already in a serialized transaction under
//!   another name joins the project's lock with [`Quota::join`] (the
//!   `check_*` functions do it themselves).
//! - **Administration**: [`Quota::set_limits`], [`Quota::delete_limits`],
//!   [`Quota::set_class_limits`]; which resources an API version shows is a
//!   [`QuotaView`]. This crate knows nothing of HTTP: the handlers
//!   (`os-quota-sets`, `os-quota-class-sets`, `limits`) are in the novum
//!   crate's `api::quota`, which maps [`QuotaError`] to its faults.

#![deny(missing_docs)]

pub mod check;
pub mod config;
pub mod resources;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use sqlx::AnyConnection;

pub use check::{InstanceCheck, QuotaError, ResizeCheck};
pub use config::QuotaConfig;
pub use novum_plugin_sdk::QuotaRequest;
pub use resources::{LimitMap, MAX_LIMIT, QuotaView, Resource};

use novum_db::{Db, DbError, Tx};
use novum_plugin_host::{
    Backend, LoadError, PluginEngine, PluginSelection, Plugins, PluginsConfig,
};

/// The quota service: limits, usage, checks.
pub struct Quota {
    db: Db,
    config: QuotaConfig,
    plugins: Arc<Plugins>,
}

impl std::fmt::Debug for Quota {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Quota")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Loads the configured quota policies (`[quota] policies` of `quota`, each
/// with its `[plugins.<name>]` table of `plugins_config`) as sandboxed
/// components, whatever backend the scheduler uses. A policy that cannot be
/// loaded fails the start: quotas are never silently off.
pub fn load_policies(
    engine: &Arc<PluginEngine>,
    quota: &QuotaConfig,
    plugins_config: &PluginsConfig,
) -> Result<Arc<Plugins>, LoadError> {
    let selection = PluginSelection {
        quota_policies: quota.policies.clone(),
        ..PluginSelection::default()
    };
    Ok(Arc::new(Plugins::load(
        Arc::clone(engine),
        Backend::Wasm,
        &selection,
        plugins_config,
    )?))
}

/// The lock name serializing quota checks of `project`.
pub fn lock_name(project: &str) -> String {
    format!("quota:{project}")
}

/// Limits with −1 as unlimited: `a` at most `b`?
pub fn within(value: i64, limit: i64) -> bool {
    limit < 0 || value <= limit
}

impl Quota {
    /// The quota service over `db`, deciding with the quota policies of
    /// `plugins` (the set's `quota_policies`, in order).
    pub fn new(db: Db, config: QuotaConfig, plugins: Arc<Plugins>) -> Self {
        Self {
            db,
            config,
            plugins,
        }
    }

    /// The `[quota]` configuration.
    pub fn config(&self) -> &QuotaConfig {
        &self.config
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The plugins deciding.
    pub fn plugins(&self) -> &Arc<Plugins> {
        &self.plugins
    }

    /// A transaction serialized with every other quota check of `project`:
    /// run the check and the writes it allows in it, then commit.
    pub async fn begin(&self, project: &str) -> Result<Tx, DbError> {
        self.db.begin_grouped(&lock_name(project)).await
    }

    /// Joins the quota lock of `project` from a transaction begun with
    /// [`Db::begin_serialized`] under another name.
    pub async fn join(&self, tx: &mut Tx, project: &str) -> Result<(), DbError> {
        self.db.serialize_in(tx, &lock_name(project)).await
    }

    /// The defaults: the `default` class rows over the configuration.
    pub async fn defaults(&self, conn: &mut AnyConnection) -> Result<LimitMap, DbError> {
        let mut limits = self.config.defaults();
        limits.extend(store::class_rows(conn, store::DEFAULT_CLASS).await?);
        Ok(limits)
    }

    /// The limits of quota class `class` (its rows over the configuration).
    pub async fn class_limits(
        &self,
        conn: &mut AnyConnection,
        class: &str,
    ) -> Result<LimitMap, DbError> {
        let mut limits = self.config.defaults();
        limits.extend(store::class_rows(conn, class).await?);
        Ok(limits)
    }

    /// The limits of `project`: its rows over the defaults.
    pub async fn project_limits(
        &self,
        conn: &mut AnyConnection,
        project: &str,
    ) -> Result<LimitMap, DbError> {
        let mut limits = self.defaults(conn).await?;
        limits.extend(store::project_rows(conn, project).await?);
        Ok(limits)
    }

    /// The limits of `project`, the rows of `user` in it (which override
    /// them for that user) and the project's usage, read in one hand-off to
    /// the database: what a quota check inside a create's or a resize's
    /// transaction `tx` needs.
    pub async fn limits_and_usage(
        &self,
        tx: &mut Tx,
        project: &str,
        user: &str,
    ) -> Result<(LimitMap, LimitMap, store::ProjectUsage), DbError> {
        let ([class, project_rows, user_rows], usage) =
            store::limits_and_usage(tx, project, user).await?;
        let mut limits = self.config.defaults();
        limits.extend(class);
        limits.extend(project_rows);
        Ok((limits, user_rows, usage))
    }

    /// The limits of `user` in `project`: the user's rows over the project's
    /// limits.
    pub async fn user_limits(
        &self,
        conn: &mut AnyConnection,
        project: &str,
        user: &str,
    ) -> Result<LimitMap, DbError> {
        let mut limits = self.project_limits(conn, project).await?;
        limits.extend(store::user_rows(conn, project, user).await?);
        Ok(limits)
    }

    /// The limits of `project`, or of `user` in it.
    pub async fn limits(
        &self,
        conn: &mut AnyConnection,
        project: &str,
        user: Option<&str>,
    ) -> Result<LimitMap, DbError> {
        match user {
            Some(user) => self.user_limits(conn, project, user).await,
            None => self.project_limits(conn, project).await,
        }
    }

    /// Usage as the quota API and `limits` show it (Nova's rule): instances,
    /// cores, ram and server groups counted for the project (or the user in
    /// it); key pairs and server group members, which are limited per user
    /// and per group, show 0; absolute resources 0.
    pub async fn usage(
        &self,
        conn: &mut AnyConnection,
        project: &str,
        user: Option<&str>,
    ) -> Result<LimitMap, DbError> {
        let instances = store::count_instances(conn, project, user).await?;
        let server_groups = store::count_server_groups(conn, project, user).await?;
        let mut usage: BTreeMap<Resource, i64> = Resource::ALL
            .into_iter()
            .map(|resource| (resource, 0))
            .collect();
        usage.insert(Resource::Instances, instances.instances);
        usage.insert(Resource::Cores, instances.cores);
        usage.insert(Resource::Ram, instances.ram);
        usage.insert(Resource::ServerGroups, server_groups);
        Ok(usage)
    }

    /// The range a new limit of `project` (or of `user` in it) may take
    /// without `force`, per resource: `(minimum, maximum)`, −1 = unbounded.
    /// Project: at least the usage and the sum of its users' limits. User: at
    /// least the user's usage, at most what the project's limit leaves beside
    /// the other users' limits.
    pub async fn settable(
        &self,
        conn: &mut AnyConnection,
        project: &str,
        user: Option<&str>,
    ) -> Result<BTreeMap<Resource, (i64, i64)>, DbError> {
        let project_limits = self.project_limits(conn, project).await?;
        let user_sums = store::user_row_sums(conn, project).await?;
        let usage = self.usage(conn, project, user).await?;
        let own = match user {
            Some(user) => store::user_rows(conn, project, user).await?,
            None => LimitMap::new(),
        };
        let mut ranges = BTreeMap::new();
        for resource in Resource::ALL {
            let in_use = usage.get(&resource).copied().unwrap_or(0);
            let limit = project_limits.get(&resource).copied().unwrap_or(-1);
            let users = user_sums.get(&resource).copied().unwrap_or(0);
            let range = match user {
                None => (in_use.max(if limit < 0 { -1 } else { users }), -1),
                Some(_) => {
                    let maximum = if limit < 0 || users < 0 {
                        -1
                    } else {
                        (limit - users)
                            .saturating_add(own.get(&resource).copied().unwrap_or(0).max(0))
                    };
                    (in_use, maximum)
                }
            };
            ranges.insert(resource, range);
        }
        Ok(ranges)
    }

    /// Sets `requested` limits of `project` (or of `user` in it) and returns
    /// the limits in effect after. Unless `force`, each limit must lie in
    /// the [`Quota::settable`] range
    /// ([`QuotaError::LimitOutOfRange`] otherwise); the check and the writes
    /// are serialized with the project's quota checks, so the usage the
    /// limits are checked against cannot grow meanwhile.
    pub async fn set_limits(
        &self,
        project: &str,
        user: Option<&str>,
        requested: &[(Resource, i64)],
        force: bool,
    ) -> Result<LimitMap, QuotaError> {
        let mut tx = self.begin(project).await?;
        if !force {
            let ranges = self.settable(&mut tx, project, user).await?;
            for (resource, limit) in requested {
                let (minimum, maximum) = ranges.get(resource).copied().unwrap_or((0, -1));
                if infinite(*limit) < infinite(minimum) {
                    return Err(QuotaError::LimitOutOfRange(format!(
                        "Quota limit {limit} for {resource} must be greater than or equal to already used and reserved {minimum}."
                    )));
                }
                if infinite(*limit) > infinite(maximum) {
                    return Err(QuotaError::LimitOutOfRange(format!(
                        "Quota limit {limit} for {resource} must be less than or equal to {maximum}."
                    )));
                }
            }
        }
        for (resource, limit) in requested {
            store::set_limit(&mut tx, project, user, *resource, *limit).await?;
        }
        let limits = self.limits(&mut tx, project, user).await?;
        tx.commit().await?;
        tracing::info!(
            project,
            user = user.unwrap_or(""),
            ?requested,
            force,
            "quota limits updated"
        );
        Ok(limits)
    }

    /// Removes the limits of `project` (or of `user` in it): the defaults
    /// apply again.
    pub async fn delete_limits(&self, project: &str, user: Option<&str>) -> Result<(), DbError> {
        let mut tx = self.begin(project).await?;
        store::delete_limits(&mut tx, project, user).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets `requested` limits of quota class `class` and returns its limits
    /// after.
    pub async fn set_class_limits(
        &self,
        class: &str,
        requested: &[(Resource, i64)],
    ) -> Result<LimitMap, DbError> {
        let mut tx = self.db.begin().await?;
        for (resource, limit) in requested {
            store::set_class_limit(&mut tx, class, *resource, *limit).await?;
        }
        let limits = self.class_limits(&mut tx, class).await?;
        tx.commit().await?;
        Ok(limits)
    }
}

/// A limit with −1 as infinity, for comparisons.
fn infinite(value: i64) -> i128 {
    if value < 0 {
        i128::MAX
    } else {
        i128::from(value)
    }
}
