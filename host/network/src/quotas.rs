//! Network quotas: networks, subnets, ports, security groups and rules per
//! project. Limits are rows of the `quotas` table (user `''`, Neutron's
//! resource names) over the `[network] quota_*` defaults; −1 is unlimited.
//! Usage is counted from the resource tables in the transaction that
//! inserts, which is serialized per project (`quota:<project>`), so
//! concurrent creates never pass a limit.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row};

use crate::error::{NetworkError, invalid};
use crate::model::Caller;
use crate::{NetworkService, quota_lock, store};

/// A resource the network quotas limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuotaResource {
    /// `network`.
    Network,
    /// `subnet`.
    Subnet,
    /// `port`.
    Port,
    /// `security_group`.
    SecurityGroup,
    /// `security_group_rule`.
    SecurityGroupRule,
}

impl QuotaResource {
    /// Every resource, in Neutron's order.
    pub const ALL: [QuotaResource; 5] = [
        Self::Network,
        Self::Subnet,
        Self::Port,
        Self::SecurityGroup,
        Self::SecurityGroupRule,
    ];

    /// Neutron's name (the key in the quota API and in the `quotas` table).
    pub fn name(self) -> &'static str {
        match self {
            Self::Network => "network",
            Self::Subnet => "subnet",
            Self::Port => "port",
            Self::SecurityGroup => "security_group",
            Self::SecurityGroupRule => "security_group_rule",
        }
    }

    /// The resource named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|resource| resource.name() == name)
    }

    fn table(self) -> &'static str {
        match self {
            Self::Network => "networks",
            Self::Subnet => "subnets",
            Self::Port => "ports",
            Self::SecurityGroup => "security_groups",
            Self::SecurityGroupRule => "security_group_rules",
        }
    }
}

/// A resource's limit and usage (`GET /v2.0/quotas/{project}/details`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaDetail {
    /// The limit (−1 unlimited).
    pub limit: i64,
    /// In use.
    pub used: i64,
    /// Reserved (always 0: checks and inserts share a transaction).
    pub reserved: i64,
}

/// The explicit limits of `project`.
async fn rows(
    conn: &mut AnyConnection,
    project: &str,
) -> Result<BTreeMap<QuotaResource, i64>, NetworkError> {
    let rows = sqlx::query(
        "SELECT resource, hard_limit FROM quotas WHERE project_id = $1 AND user_id = ''",
    )
    .bind(project)
    .fetch_all(&mut *conn)
    .await?;
    let mut limits = BTreeMap::new();
    for row in rows {
        let name: String = row.try_get("resource")?;
        if let Some(resource) = QuotaResource::from_name(&name) {
            limits.insert(resource, row.try_get("hard_limit")?);
        }
    }
    Ok(limits)
}

fn may_read(caller: &Caller, project: &str) -> Result<(), NetworkError> {
    if caller.is_admin || caller.project_id == project {
        Ok(())
    } else {
        Err(NetworkError::NotAuthorized)
    }
}

impl NetworkService {
    /// The limits of `project` with `conn`: its rows over the defaults.
    pub(crate) async fn limits_in(
        &self,
        conn: &mut AnyConnection,
        project: &str,
    ) -> Result<BTreeMap<QuotaResource, i64>, NetworkError> {
        let mut limits: BTreeMap<QuotaResource, i64> = QuotaResource::ALL
            .into_iter()
            .map(|resource| (resource, self.config.default_quota(resource)))
            .collect();
        limits.extend(rows(conn, project).await?);
        Ok(limits)
    }

    /// Checks that `project` may add `deltas`, in `conn` (a transaction
    /// serialized on `quota:<project>`, whose inserts follow):
    /// [`NetworkError::OverQuota`] naming every resource that would pass
    /// its limit.
    pub(crate) async fn check_quota(
        &self,
        conn: &mut AnyConnection,
        project: &str,
        deltas: &[(QuotaResource, i64)],
    ) -> Result<(), NetworkError> {
        let limits = self.limits_in(conn, project).await?;
        let mut overs = Vec::new();
        for (resource, delta) in deltas {
            let limit = limits.get(resource).copied().unwrap_or(-1);
            if limit < 0 || *delta <= 0 {
                continue;
            }
            let used = store::count(conn, resource.table(), "project_id", project).await?;
            if used.saturating_add(*delta) > limit {
                overs.push(resource.name().to_string());
            }
        }
        if overs.is_empty() {
            Ok(())
        } else {
            Err(NetworkError::OverQuota(overs))
        }
    }

    /// The limits of `project` (`GET /v2.0/quotas/{project}`): the project
    /// itself or an admin.
    pub async fn quota_limits(
        &self,
        caller: &Caller,
        project: &str,
    ) -> Result<BTreeMap<QuotaResource, i64>, NetworkError> {
        may_read(caller, project)?;
        let mut conn = self.db.connection().await?;
        self.limits_in(&mut conn, project).await
    }

    /// The defaults (`GET /v2.0/quotas/{project}/default`).
    pub fn quota_defaults(&self) -> BTreeMap<QuotaResource, i64> {
        QuotaResource::ALL
            .into_iter()
            .map(|resource| (resource, self.config.default_quota(resource)))
            .collect()
    }

    /// Limits and usage of `project` (`GET /v2.0/quotas/{project}/details`).
    pub async fn quota_details(
        &self,
        caller: &Caller,
        project: &str,
    ) -> Result<BTreeMap<QuotaResource, QuotaDetail>, NetworkError> {
        may_read(caller, project)?;
        let mut conn = self.db.connection().await?;
        let limits = self.limits_in(&mut conn, project).await?;
        let mut details = BTreeMap::new();
        for (resource, limit) in limits {
            let used = store::count(&mut conn, resource.table(), "project_id", project).await?;
            details.insert(
                resource,
                QuotaDetail {
                    limit,
                    used,
                    reserved: 0,
                },
            );
        }
        Ok(details)
    }

    /// The projects with explicit network limits (`GET /v2.0/quotas`,
    /// admins), each with its limits.
    pub async fn quota_projects(
        &self,
        caller: &Caller,
    ) -> Result<Vec<(String, BTreeMap<QuotaResource, i64>)>, NetworkError> {
        if !caller.is_admin {
            return Err(NetworkError::NotAuthorized);
        }
        let mut conn = self.db.connection().await?;
        let names: Vec<&str> = QuotaResource::ALL
            .iter()
            .map(|resource| resource.name())
            .collect();
        let mut clauses = crate::listing::Clauses::default();
        let list = clauses.any_of(
            "resource",
            &names
                .iter()
                .map(|name| name.to_string())
                .collect::<Vec<_>>(),
        );
        let sql = format!(
            "SELECT DISTINCT project_id FROM quotas WHERE user_id = '' AND {list} ORDER BY project_id"
        );
        let projects =
            crate::listing::bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &clauses.binds)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|row| row.try_get::<String, _>("project_id"))
                .collect::<Result<Vec<_>, _>>()?;
        let mut answer = Vec::new();
        for project in projects {
            let limits = self.limits_in(&mut conn, &project).await?;
            answer.push((project, limits));
        }
        Ok(answer)
    }

    /// Sets limits of `project` (admins; −1 unlimited, below −1 refused)
    /// and returns the limits after.
    pub async fn set_quotas(
        &self,
        caller: &Caller,
        project: &str,
        limits: &[(QuotaResource, i64)],
    ) -> Result<BTreeMap<QuotaResource, i64>, NetworkError> {
        if !caller.is_admin {
            return Err(NetworkError::NotAuthorized);
        }
        for (resource, limit) in limits {
            if *limit < -1 {
                return Err(invalid(format!(
                    "'{limit}' is too small - must be at least '-1' for {}",
                    resource.name()
                )));
            }
        }
        let mut tx = self.db.begin_serialized(&quota_lock(project)).await?;
        let now = novum_db::now();
        for (resource, limit) in limits {
            sqlx::query(
                "INSERT INTO quotas (project_id, user_id, resource, hard_limit, created_at, updated_at) VALUES ($1, '', $2, $3, $4, $4) \
                 ON CONFLICT (project_id, user_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit, updated_at = excluded.updated_at",
            )
            .bind(project)
            .bind(resource.name())
            .bind(*limit)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        let after = self.limits_in(&mut tx, project).await?;
        tx.commit().await.map_err(novum_db::DbError::from)?;
        Ok(after)
    }

    /// Removes the network limits of `project` (admins): the defaults
    /// apply again. Compute's rows of the project stay.
    pub async fn reset_quotas(&self, caller: &Caller, project: &str) -> Result<(), NetworkError> {
        if !caller.is_admin {
            return Err(NetworkError::NotAuthorized);
        }
        let mut tx = self.db.begin_serialized(&quota_lock(project)).await?;
        for resource in QuotaResource::ALL {
            sqlx::query(
                "DELETE FROM quotas WHERE project_id = $1 AND user_id = '' AND resource = $2",
            )
            .bind(project)
            .bind(resource.name())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await.map_err(novum_db::DbError::from)?;
        Ok(())
    }
}
