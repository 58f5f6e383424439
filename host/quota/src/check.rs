//! Quota checks: build a [`QuotaRequest`] from limits and usage, run it
//! through the quota-policy plugins, and, for creates, find how many
//! instances fit.

use novum_plugin_sdk::{Flavor, QuotaRequest, ResourceUsage};

use super::resources::{LimitMap, Resource};
use super::{Quota, store};
use novum_db::{DbError, Tx};
use novum_plugin_host::{OnError, PluginSet};

/// Why a quota check did not allow a request.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// A policy denied the request; `message` is for the 403.
    #[error("{message}")]
    Exceeded {
        /// The policy that denied.
        policy: String,
        /// The resource it named.
        resource: String,
        /// Its message, e.g. `Quota exceeded for cores: Requested 4, but
        /// already used 18 of 20 cores`.
        message: String,
    },
    /// A policy failed (trap, deadline, ...) and its `on_error` is not
    /// `ignore`.
    #[error("Quota check failed: quota policy {policy} failed: {message}")]
    PolicyFailed {
        /// The failing policy.
        policy: String,
        /// What went wrong.
        message: String,
    },
    /// A new limit is outside the range the usage and the other limits
    /// leave it (see [`Quota::set_limits`]); the text is Nova's 400 message.
    #[error("{0}")]
    LimitOutOfRange(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for QuotaError {
    fn from(error: sqlx::Error) -> Self {
        Self::Db(DbError::from(error))
    }
}

/// Runs `request` through the quota policies of `set`, in order: the first
/// denial wins; a failing policy is skipped when its `on_error` is `ignore`
/// and denies otherwise. No policies: allowed.
pub fn decide(set: &PluginSet, request_id: &str, request: &QuotaRequest) -> Result<(), QuotaError> {
    for policy in set.quota_policies() {
        match policy.check_quota(request_id, request.clone()) {
            Ok(Ok(())) => {}
            Ok(Err(denial)) => {
                tracing::info!(policy = policy.name(), request_id, resource = %denial.resource, message = %denial.message, "quota denied");
                return Err(QuotaError::Exceeded {
                    policy: policy.name().to_string(),
                    resource: denial.resource,
                    message: denial.message,
                });
            }
            Err(failure) if policy.on_error() == OnError::Ignore => {
                tracing::warn!(policy = policy.name(), request_id, error = %failure, "quota policy failed; ignored (on_error = ignore)");
            }
            Err(failure) => {
                return Err(QuotaError::PolicyFailed {
                    policy: policy.name().to_string(),
                    message: failure.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// A server create to check: `min_count..=max_count` instances of `flavor`.
#[derive(Clone, Debug)]
pub struct InstanceCheck<'a> {
    /// The owner project.
    pub project_id: &'a str,
    /// The creating user.
    pub user_id: &'a str,
    /// The flavor, as the quota policies see it.
    pub flavor: &'a Flavor,
    /// At least this many (Nova's `min_count`, ≥ 1).
    pub min_count: u32,
    /// At most this many (Nova's `max_count`, ≥ `min_count`).
    pub max_count: u32,
    /// The server group the instances join.
    pub group: Option<&'a str>,
    /// Per-server absolute resources and what each server asks of them:
    /// `metadata_items`, and for old microversions' personality files
    /// `injected_files`, `injected_file_path_bytes` (the longest path) and
    /// `injected_file_content_bytes` (the largest content).
    pub absolute: &'a [(Resource, i64)],
    /// The API request id (plugin logs).
    pub request_id: &'a str,
}

/// A resize to check (see [`Quota::check_resize`]).
#[derive(Clone, Copy, Debug)]
pub struct ResizeCheck<'a> {
    /// The instance's project.
    pub project_id: &'a str,
    /// The instance's user.
    pub user_id: &'a str,
    /// The flavor it has.
    pub old: &'a Flavor,
    /// The flavor it asks for (the one the policies see).
    pub new: &'a Flavor,
    /// The API request id (plugin logs).
    pub request_id: &'a str,
}

/// The cores one instance of `flavor` takes.
fn cores_of(flavor: &Flavor) -> i64 {
    i64::from(flavor.vcpus)
}

/// The RAM one instance of `flavor` takes, MiB.
fn ram_of(flavor: &Flavor) -> i64 {
    i64::try_from(flavor.memory_mb).unwrap_or(i64::MAX)
}

/// One line of a quota request: `resource` with its usage, limit and the
/// delta asked for (`per_unit` × count).
#[derive(Clone, Copy, Debug)]
struct Line {
    resource: Resource,
    in_use: i64,
    limit: i64,
    per_unit: i64,
}

impl Line {
    fn usage(&self, count: i64) -> ResourceUsage {
        ResourceUsage {
            resource: self.resource.name().to_string(),
            in_use: self.in_use,
            limit: self.limit,
            requested: self.per_unit.saturating_mul(count),
        }
    }

    /// How many units fit under the limit.
    fn fits(&self) -> i64 {
        if self.limit < 0 || self.per_unit <= 0 {
            i64::MAX
        } else {
            (self.limit - self.in_use).max(0) / self.per_unit
        }
    }
}

fn limit_of(limits: &LimitMap, resource: Resource) -> i64 {
    limits.get(&resource).copied().unwrap_or(-1)
}

impl Quota {
    /// Runs `request` through the configured policies (on a blocking thread:
    /// plugin calls are synchronous, bounded by their deadline).
    pub async fn decide(&self, request_id: &str, request: QuotaRequest) -> Result<(), QuotaError> {
        let set = self.plugins.current();
        let request_id = request_id.to_string();
        tokio::task::spawn_blocking(move || decide(&set, &request_id, &request))
            .await
            .map_err(|error| QuotaError::PolicyFailed {
                policy: "(all)".to_string(),
                message: error.to_string(),
            })?
    }

    /// Checks a server create inside `tx` (a transaction from
    /// [`Quota::begin`], or any serialized one: the project's lock is joined)
    /// and returns how many instances to create: `max_count` when they fit,
    /// else, like Nova, as many as fit if that is at least `min_count`.
    /// The caller inserts that many instance rows, with `vcpus` and
    /// `memory_mb` set from the flavor, in the same transaction.
    pub async fn check_instances(
        &self,
        tx: &mut Tx,
        check: &InstanceCheck<'_>,
    ) -> Result<u32, QuotaError> {
        self.join(tx, check.project_id).await?;
        let (project_limits, user_rows, (project_usage, flavor_usage)) = self
            .limits_and_usage(tx, check.project_id, check.user_id)
            .await?;
        let conn = &mut **tx;
        let mut lines = instance_lines(
            conn,
            &project_limits,
            &user_rows,
            (check.project_id, project_usage),
            check.user_id,
            [1, cores_of(check.flavor), ram_of(check.flavor)],
        )
        .await?;
        if let Some(group) = check.group {
            let user_limits = {
                let mut limits = project_limits.clone();
                limits.extend(user_rows.clone());
                limits
            };
            lines.push(Line {
                resource: Resource::ServerGroupMembers,
                in_use: store::count_group_members(conn, group, check.user_id).await?,
                limit: limit_of(&user_limits, Resource::ServerGroupMembers),
                per_unit: 1,
            });
        }
        let absolute: Vec<ResourceUsage> = check
            .absolute
            .iter()
            .map(|(resource, requested)| ResourceUsage {
                resource: resource.name().to_string(),
                in_use: 0,
                limit: limit_of(&project_limits, *resource),
                requested: *requested,
            })
            .collect();
        let request = |count: u32| QuotaRequest {
            project_id: check.project_id.to_string(),
            user_id: check.user_id.to_string(),
            action: "create".to_string(),
            flavor: Some(check.flavor.clone()),
            resources: lines
                .iter()
                .map(|line| line.usage(i64::from(count)))
                .chain(absolute.iter().cloned())
                .collect(),
            flavor_usage: flavor_usage.clone(),
        };
        let max_count = check.max_count.max(1);
        let min_count = check.min_count.clamp(1, max_count);
        let denial = match self.decide(check.request_id, request(max_count)).await {
            Ok(()) => return Ok(max_count),
            Err(denial @ QuotaError::Exceeded { .. }) if min_count < max_count => denial,
            Err(error) => return Err(error),
        };
        let fits = lines.iter().map(Line::fits).min().unwrap_or(i64::MAX);
        let allowed = u32::try_from(fits.min(i64::from(max_count))).unwrap_or(max_count);
        if allowed >= min_count && allowed < max_count {
            self.decide(check.request_id, request(allowed)).await?;
            return Ok(allowed);
        }
        Err(denial)
    }

    /// Checks resizing an instance of `project`/`user` from `old` to `new`
    /// inside `tx` (the project's lock is joined): like Nova, only growth
    /// counts, so the request asks for the positive cores and ram deltas and
    /// no instance; the policies see `action` "resize" and the new flavor.
    /// The caller then sets the instance's `vcpus`/`memory_mb` to the larger
    /// of both flavors in the same transaction (a resize awaiting
    /// confirmation holds both).
    pub async fn check_resize(
        &self,
        tx: &mut Tx,
        check: &ResizeCheck<'_>,
    ) -> Result<(), QuotaError> {
        self.join(tx, check.project_id).await?;
        let (project_limits, user_rows, (project_usage, flavor_usage)) = self
            .limits_and_usage(tx, check.project_id, check.user_id)
            .await?;
        let growth = [
            0,
            (cores_of(check.new) - cores_of(check.old)).max(0),
            (ram_of(check.new) - ram_of(check.old)).max(0),
        ];
        let conn = &mut **tx;
        let lines = instance_lines(
            conn,
            &project_limits,
            &user_rows,
            (check.project_id, project_usage),
            check.user_id,
            growth,
        )
        .await?;
        let request = QuotaRequest {
            project_id: check.project_id.to_string(),
            user_id: check.user_id.to_string(),
            action: "resize".to_string(),
            flavor: Some(check.new.clone()),
            resources: lines.iter().map(|line| line.usage(1)).collect(),
            flavor_usage,
        };
        self.decide(check.request_id, request).await
    }

    /// Checks creating `count` key pairs for `user` (of `project`) inside
    /// `tx`; key pairs are counted and limited per user.
    pub async fn check_key_pairs(
        &self,
        tx: &mut Tx,
        project: &str,
        user: &str,
        count: i64,
        request_id: &str,
    ) -> Result<(), QuotaError> {
        self.join(tx, project).await?;
        let conn = &mut **tx;
        let limits = self.user_limits(conn, project, user).await?;
        let in_use = store::count_key_pairs(conn, user).await?;
        let line = Line {
            resource: Resource::KeyPairs,
            in_use,
            limit: limit_of(&limits, Resource::KeyPairs),
            per_unit: 1,
        };
        self.decide(
            request_id,
            simple_request(project, user, "keypair", vec![line.usage(count)]),
        )
        .await
    }

    /// Checks creating a server group for `user` of `project` inside `tx`.
    pub async fn check_server_groups(
        &self,
        tx: &mut Tx,
        project: &str,
        user: &str,
        request_id: &str,
    ) -> Result<(), QuotaError> {
        self.join(tx, project).await?;
        let conn = &mut **tx;
        let project_limits = self.project_limits(conn, project).await?;
        let user_rows = store::user_rows(conn, project, user).await?;
        let mut resources = vec![
            Line {
                resource: Resource::ServerGroups,
                in_use: store::count_server_groups(conn, project, None).await?,
                limit: limit_of(&project_limits, Resource::ServerGroups),
                per_unit: 1,
            }
            .usage(1),
        ];
        if let Some(limit) = user_rows.get(&Resource::ServerGroups) {
            let in_use = store::count_server_groups(conn, project, Some(user)).await?;
            resources.push(
                Line {
                    resource: Resource::ServerGroups,
                    in_use,
                    limit: *limit,
                    per_unit: 1,
                }
                .usage(1),
            );
        }
        self.decide(
            request_id,
            simple_request(project, user, "server-group", resources),
        )
        .await
    }

    /// Checks an absolute limit (`metadata_items`, `injected_files`, ...):
    /// `requested` against the limit of `user` in `project`, nothing in use.
    pub async fn check_absolute(
        &self,
        conn: &mut sqlx::AnyConnection,
        project: &str,
        user: &str,
        resource: Resource,
        requested: i64,
        request_id: &str,
    ) -> Result<(), QuotaError> {
        let limits = self.user_limits(conn, project, user).await?;
        let usage = ResourceUsage {
            resource: resource.name().to_string(),
            in_use: 0,
            limit: limit_of(&limits, resource),
            requested,
        };
        self.decide(
            request_id,
            simple_request(project, user, resource.name(), vec![usage]),
        )
        .await
    }
}

/// The instances, cores and ram lines of a request that adds `per_unit`
/// (instances, vCPUs, MiB) per unit: the project's (given: the project and
/// what it uses), plus the user's where the user has limits of their own.
async fn instance_lines(
    conn: &mut sqlx::AnyConnection,
    project_limits: &LimitMap,
    user_rows: &LimitMap,
    (project, project_usage): (&str, store::InstanceUsage),
    user: &str,
    per_unit: [i64; 3],
) -> Result<Vec<Line>, QuotaError> {
    const SCOPED: [Resource; 3] = [Resource::Instances, Resource::Cores, Resource::Ram];
    let project_in_use = [
        project_usage.instances,
        project_usage.cores,
        project_usage.ram,
    ];
    let mut lines: Vec<Line> = SCOPED
        .iter()
        .zip(project_in_use.iter().zip(per_unit))
        .map(|(resource, (in_use, per_unit))| Line {
            resource: *resource,
            in_use: *in_use,
            limit: limit_of(project_limits, *resource),
            per_unit,
        })
        .collect();
    if SCOPED
        .iter()
        .any(|resource| user_rows.contains_key(resource))
    {
        let user_usage = store::count_instances(conn, project, Some(user)).await?;
        let user_in_use = [user_usage.instances, user_usage.cores, user_usage.ram];
        for (resource, (in_use, per_unit)) in SCOPED.iter().zip(user_in_use.iter().zip(per_unit)) {
            if let Some(limit) = user_rows.get(resource) {
                lines.push(Line {
                    resource: *resource,
                    in_use: *in_use,
                    limit: *limit,
                    per_unit,
                });
            }
        }
    }
    Ok(lines)
}

fn simple_request(
    project: &str,
    user: &str,
    action: &str,
    resources: Vec<ResourceUsage>,
) -> QuotaRequest {
    QuotaRequest {
        project_id: project.to_string(),
        user_id: user.to_string(),
        action: action.to_string(),
        flavor: None,
        resources,
        flavor_usage: Vec::new(),
    }
}
