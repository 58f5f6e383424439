//! Security groups and their rules, and each project's `default` group.
//!
//! A new group gets Neutron's two egress rules (IPv4 and IPv6 to anywhere);
//! the `default` group also gets two ingress rules from itself
//! (`remote_group_id` = the group), so members talk to each other and
//! nothing else comes in. The default group is created on first use;
//! `network_default_security_groups` (keyed by project) makes concurrent
//! first uses agree on one group.

use sqlx::{AnyConnection, Row};

use crate::error::{NetworkError, invalid};
use crate::ipam;
use crate::listing::{self, Attribute, Clauses, Listing, Page, Spec};
use crate::model::{
    Caller, NewSecurityGroup, NewSecurityGroupRule, SecurityGroup, SecurityGroupRule,
    SecurityGroupUpdate,
};
use crate::quotas::QuotaResource;
use crate::{NetworkService, check_length, flag, new_id, quota_lock, store};

/// The name of each project's default group.
pub const DEFAULT_GROUP_NAME: &str = "default";
/// Its description.
pub const DEFAULT_GROUP_DESCRIPTION: &str = "Default security group";

/// Protocol names Neutron accepts (besides numbers 0–255).
pub const PROTOCOLS: [&str; 24] = [
    "ah",
    "dccp",
    "egp",
    "esp",
    "gre",
    "icmp",
    "icmpv6",
    "igmp",
    "ipip",
    "ipv6-encap",
    "ipv6-frag",
    "ipv6-icmp",
    "ipv6-nonxt",
    "ipv6-opts",
    "ipv6-route",
    "ospf",
    "pgm",
    "rsvp",
    "sctp",
    "tcp",
    "udp",
    "udplite",
    "vrrp",
    "any",
];
/// Protocols with port ranges (names and numbers).
const PORT_PROTOCOLS: [&str; 10] = [
    "tcp", "udp", "sctp", "dccp", "udplite", "6", "17", "132", "33", "136",
];
/// ICMP protocols (type/code in the port range).
const ICMP_PROTOCOLS: [&str; 5] = ["icmp", "icmpv6", "ipv6-icmp", "1", "58"];
/// IPv6-only protocols.
const IPV6_PROTOCOLS: [&str; 8] = [
    "icmpv6",
    "ipv6-icmp",
    "ipv6-encap",
    "ipv6-frag",
    "ipv6-nonxt",
    "ipv6-opts",
    "ipv6-route",
    "58",
];

/// What security groups filter and sort on.
pub(crate) const GROUP_ATTRIBUTES: &[Attribute] = &[
    listing::text("id", "id"),
    listing::text("name", "name"),
    listing::text("description", "description"),
    listing::text("project_id", "project_id"),
    listing::text("tenant_id", "project_id"),
    listing::boolean("stateful", "stateful"),
    listing::text("created_at", "created_at"),
    listing::text("updated_at", "updated_at"),
    listing::int("revision_number", "revision_number"),
];

/// What rules filter and sort on.
pub(crate) const RULE_ATTRIBUTES: &[Attribute] = &[
    listing::text("id", "id"),
    listing::text("security_group_id", "security_group_id"),
    listing::text("project_id", "project_id"),
    listing::text("tenant_id", "project_id"),
    listing::text("direction", "direction"),
    listing::text("ethertype", "ethertype"),
    listing::text("protocol", "protocol"),
    listing::int("port_range_min", "port_range_min"),
    listing::int("port_range_max", "port_range_max"),
    listing::text("remote_ip_prefix", "remote_ip_prefix"),
    listing::text("remote_group_id", "remote_group_id"),
    listing::text("description", "description"),
    listing::text("created_at", "created_at"),
    listing::text("updated_at", "updated_at"),
    listing::int("revision_number", "revision_number"),
];

/// The lock name of the first use of `project`'s default group.
pub fn default_group_lock(project: &str) -> String {
    format!("security-group-default:{project}")
}

/// The group `id`, whoever may see it.
pub(crate) async fn load(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<SecurityGroup>, NetworkError> {
    Ok(store::groups(conn, &[id.to_string()]).await?.pop())
}

/// The group `id` as `caller` sees it (its owner or an admin).
pub(crate) async fn visible(
    conn: &mut AnyConnection,
    caller: &Caller,
    id: &str,
) -> Result<SecurityGroup, NetworkError> {
    match load(conn, id).await? {
        Some(group) if caller.is_admin || group.project_id == caller.project_id => Ok(group),
        _ => Err(NetworkError::SecurityGroupNotFound(id.to_string())),
    }
}

/// The id of `project`'s default group, if it has one.
pub(crate) async fn default_of(
    conn: &mut AnyConnection,
    project: &str,
) -> Result<Option<String>, NetworkError> {
    let row = sqlx::query(
        "SELECT security_group_id FROM network_default_security_groups WHERE project_id = $1",
    )
    .bind(project)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row
        .map(|row| row.try_get("security_group_id"))
        .transpose()?)
}

/// A rule to insert, already validated.
struct RuleRow<'a> {
    group: &'a str,
    project: &'a str,
    direction: &'a str,
    ethertype: &'a str,
    protocol: Option<&'a str>,
    port_range_min: Option<i64>,
    port_range_max: Option<i64>,
    remote_ip_prefix: Option<&'a str>,
    remote_group_id: Option<&'a str>,
    description: &'a str,
}

async fn insert_rule(
    conn: &mut AnyConnection,
    rule: &RuleRow<'_>,
    now: &str,
) -> Result<String, NetworkError> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO security_group_rules (id, security_group_id, project_id, direction, ethertype, protocol, port_range_min, port_range_max, remote_ip_prefix, remote_group_id, description, created_at, updated_at, revision_number) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, 0)",
    )
    .bind(&id)
    .bind(rule.group)
    .bind(rule.project)
    .bind(rule.direction)
    .bind(rule.ethertype)
    .bind(rule.protocol)
    .bind(rule.port_range_min)
    .bind(rule.port_range_max)
    .bind(rule.remote_ip_prefix)
    .bind(rule.remote_group_id)
    .bind(rule.description)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Inserts group `id` of `project` with Neutron's rules: egress IPv4 and
/// IPv6 to anywhere, and for the default group ingress IPv4 and IPv6 from
/// the group itself.
async fn insert_group(
    conn: &mut AnyConnection,
    id: &str,
    project: &str,
    name: &str,
    description: &str,
    stateful: bool,
    default: bool,
) -> Result<(), NetworkError> {
    let now = novum_db::now();
    sqlx::query(
        "INSERT INTO security_groups (id, project_id, name, description, stateful, created_at, updated_at, revision_number) VALUES ($1, $2, $3, $4, $5, $6, $6, 1)",
    )
    .bind(id)
    .bind(project)
    .bind(name)
    .bind(description)
    .bind(flag(stateful))
    .bind(&now)
    .execute(&mut *conn)
    .await?;
    for ethertype in ["IPv4", "IPv6"] {
        let egress = RuleRow {
            group: id,
            project,
            direction: "egress",
            ethertype,
            protocol: None,
            port_range_min: None,
            port_range_max: None,
            remote_ip_prefix: None,
            remote_group_id: None,
            description: "",
        };
        insert_rule(conn, &egress, &now).await?;
        if default {
            let ingress = RuleRow {
                direction: "ingress",
                remote_group_id: Some(id),
                ..egress
            };
            insert_rule(conn, &ingress, &now).await?;
        }
    }
    Ok(())
}

/// The default group of `project` in `conn` (a write transaction),
/// created when missing. Concurrent first uses agree: the mapping row is
/// inserted `ON CONFLICT DO NOTHING`, and a loser removes its own group and
/// takes the winner's.
pub(crate) async fn ensure_default_in(
    conn: &mut AnyConnection,
    project: &str,
) -> Result<String, NetworkError> {
    if let Some(id) = default_of(conn, project).await? {
        return Ok(id);
    }
    let id = new_id();
    insert_group(
        conn,
        &id,
        project,
        DEFAULT_GROUP_NAME,
        DEFAULT_GROUP_DESCRIPTION,
        true,
        true,
    )
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO network_default_security_groups (project_id, security_group_id) VALUES ($1, $2) ON CONFLICT (project_id) DO NOTHING",
    )
    .bind(project)
    .bind(&id)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        tracing::info!(project, group = %id, "default security group created");
        return Ok(id);
    }
    sqlx::query("DELETE FROM security_group_rules WHERE security_group_id = $1")
        .bind(&id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM security_groups WHERE id = $1")
        .bind(&id)
        .execute(&mut *conn)
        .await?;
    default_of(conn, project)
        .await?
        .ok_or_else(|| NetworkError::SecurityGroupNotFound(DEFAULT_GROUP_NAME.to_string()))
}

/// A rule's remote prefix as Neutron compares rules for duplicates: every
/// address (`0.0.0.0/0`, `::/0`) the same as none.
fn any_address_as_none(prefix: Option<&str>) -> Option<&str> {
    prefix.filter(|prefix| !matches!(*prefix, "0.0.0.0/0" | "::/0"))
}

fn normalize_protocol(protocol: Option<&str>) -> Result<Option<String>, NetworkError> {
    let Some(protocol) = protocol
        .map(str::trim)
        .filter(|protocol| !protocol.is_empty())
    else {
        return Ok(None);
    };
    let lower = protocol.to_ascii_lowercase();
    if lower == "any" {
        return Ok(None);
    }
    if PROTOCOLS.contains(&lower.as_str()) {
        return Ok(Some(lower));
    }
    match lower.parse::<u16>() {
        Ok(number) if number <= 255 => Ok(Some(number.to_string())),
        _ => Err(NetworkError::SecurityGroupRuleInvalidProtocol(
            protocol.to_string(),
        )),
    }
}

/// Validates a rule as Neutron does; returns (direction, ethertype,
/// protocol, remote prefix) normalized.
fn validate_rule(
    new: &NewSecurityGroupRule,
) -> Result<(String, String, Option<String>, Option<String>), NetworkError> {
    let direction = new.direction.trim();
    if direction != "ingress" && direction != "egress" {
        return Err(invalid(format!(
            "'{direction}' is not in ['ingress', 'egress']"
        )));
    }
    let ethertype = match new
        .ethertype
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("ipv4") => "IPv4",
        Some("ipv6") => "IPv6",
        Some(_) => {
            return Err(invalid(format!(
                "'{}' is not in ['IPv4', 'IPv6']",
                new.ethertype.as_deref().unwrap_or_default()
            )));
        }
    };
    let protocol = normalize_protocol(new.protocol.as_deref())?;
    if let Some(protocol) = protocol.as_deref()
        && ethertype == "IPv4"
        && IPV6_PROTOCOLS.contains(&protocol)
    {
        return Err(NetworkError::SecurityGroupEthertypeConflictWithProtocol {
            ethertype: ethertype.to_string(),
            protocol: protocol.to_string(),
        });
    }
    let (min, max) = (new.port_range_min, new.port_range_max);
    if min.is_some() || max.is_some() {
        let Some(protocol) = protocol.as_deref() else {
            return Err(NetworkError::SecurityGroupProtocolRequiredWithPorts);
        };
        if PORT_PROTOCOLS.contains(&protocol) {
            for port in [min, max].into_iter().flatten() {
                if !(1..=65535).contains(&port) {
                    return Err(NetworkError::SecurityGroupInvalidPortValue(port));
                }
            }
            match (min, max) {
                (Some(min), Some(max)) if min <= max => {}
                _ => return Err(NetworkError::SecurityGroupInvalidPortRange),
            }
        } else if ICMP_PROTOCOLS.contains(&protocol) {
            for (value, field, attr) in [
                (min, "type", "port_range_min"),
                (max, "code", "port_range_max"),
            ] {
                if let Some(value) = value
                    && !(0..=255).contains(&value)
                {
                    return Err(NetworkError::SecurityGroupInvalidIcmpValue { field, attr, value });
                }
            }
            if let (None, Some(max)) = (min, max) {
                return Err(NetworkError::SecurityGroupMissingIcmpType(max));
            }
        } else {
            return Err(invalid(format!(
                "Invalid protocol {protocol} for port range, only supported for TCP, UDP, UDPLITE, SCTP and DCCP protocols"
            )));
        }
    }
    if new.remote_ip_prefix.is_some() && new.remote_group_id.is_some() {
        return Err(NetworkError::SecurityGroupRemoteGroupAndRemoteIpPrefix);
    }
    let prefix = match new.remote_ip_prefix.as_deref() {
        None => None,
        Some(text) => {
            let prefix = ipam::parse_address_prefix(text)?;
            let version = if ethertype == "IPv4" { 4 } else { 6 };
            if ipam::version_of(prefix.addr()) != version {
                return Err(NetworkError::SecurityGroupRuleParameterConflict {
                    ethertype: ethertype.to_string(),
                    cidr: text.to_string(),
                });
            }
            Some(prefix.to_string())
        }
    };
    Ok((
        direction.to_string(),
        ethertype.to_string(),
        protocol,
        prefix,
    ))
}

impl NetworkService {
    /// The id of `project`'s default security group, created (with its
    /// rules) on first use. Idempotent under concurrency: every caller gets
    /// the same group.
    pub async fn ensure_default_security_group(
        &self,
        project: &str,
    ) -> Result<String, NetworkError> {
        let mut conn = self.db.connection().await?;
        if let Some(id) = default_of(&mut conn, project).await? {
            return Ok(id);
        }
        drop(conn);
        let mut tx = self
            .db
            .begin_serialized(&default_group_lock(project))
            .await?;
        let id = ensure_default_in(&mut tx, project).await?;
        tx.commit().await.map_err(novum_db::DbError::from)?;
        Ok(id)
    }

    /// Creates a security group with its two egress rules (quotas
    /// `security_group` and `security_group_rule`). The name `default` is
    /// [`NetworkError::SecurityGroupDefaultAlreadyExists`].
    pub async fn create_security_group(
        &self,
        caller: &Caller,
        new: &NewSecurityGroup,
    ) -> Result<SecurityGroup, NetworkError> {
        let project = self.owner_for(caller, new.project_id.as_deref())?;
        let description = new.description.clone().unwrap_or_default();
        check_length(&new.name)?;
        check_length(&description)?;
        self.ensure_default_security_group(&project).await?;
        if new.name == DEFAULT_GROUP_NAME {
            return Err(NetworkError::SecurityGroupDefaultAlreadyExists);
        }
        let id = new_id();
        let mut tx = self.db.begin_serialized(&quota_lock(&project)).await?;
        self.check_quota(
            &mut tx,
            &project,
            &[
                (QuotaResource::SecurityGroup, 1),
                (QuotaResource::SecurityGroupRule, 2),
            ],
        )
        .await?;
        insert_group(
            &mut tx,
            &id,
            &project,
            &new.name,
            &description,
            new.stateful.unwrap_or(true),
            false,
        )
        .await?;
        let group = load(&mut tx, &id)
            .await?
            .ok_or_else(|| NetworkError::SecurityGroupNotFound(id.clone()))?;
        tx.commit().await.map_err(novum_db::DbError::from)?;
        Ok(group)
    }

    /// The group `id` as `caller` sees it.
    pub async fn get_security_group(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<SecurityGroup, NetworkError> {
        let mut conn = self.db.connection().await?;
        visible(&mut conn, caller, id).await
    }

    /// The page of `listing` over the groups `caller` may see; the caller's
    /// project gets its default group first if it has none.
    pub async fn list_security_groups(
        &self,
        caller: &Caller,
        listing: &Listing,
    ) -> Result<Page<SecurityGroup>, NetworkError> {
        self.ensure_default_security_group(&caller.project_id)
            .await?;
        let mut conn = self.db.connection().await?;
        let project = caller.project_id.clone();
        let visible =
            move |clauses: &mut Clauses| format!("project_id = {}", clauses.text(&project));
        let special = |_: &str, _: &[String], _: &mut Clauses| Ok(false);
        let spec = Spec {
            table: "security_groups",
            attributes: GROUP_ATTRIBUTES,
            special: &special,
            visible: if caller.is_admin {
                None
            } else {
                Some(&visible)
            },
            not_found: NetworkError::SecurityGroupNotFound,
        };
        let (ids, more) = listing::page_ids(&mut conn, &spec, listing).await?;
        let items = store::groups(&mut conn, &ids).await?;
        Ok(Page { items, more })
    }

    /// Updates group `id` (its owner or an admin); the default group keeps
    /// its name, and no other group may take it.
    pub async fn update_security_group(
        &self,
        caller: &Caller,
        id: &str,
        update: &SecurityGroupUpdate,
    ) -> Result<SecurityGroup, NetworkError> {
        for text in [&update.name, &update.description].into_iter().flatten() {
            check_length(text)?;
        }
        let mut conn = self.db.connection().await?;
        let group = visible(&mut conn, caller, id).await?;
        let is_default = default_of(&mut conn, &group.project_id).await?.as_deref() == Some(id);
        drop(conn);
        if let Some(name) = &update.name {
            if is_default && name != DEFAULT_GROUP_NAME {
                return Err(NetworkError::SecurityGroupCannotUpdateDefault);
            }
            if !is_default && name == DEFAULT_GROUP_NAME {
                return Err(NetworkError::SecurityGroupDefaultAlreadyExists);
            }
        }
        let mut tx = self.db.begin().await?;
        sqlx::query(
            "UPDATE security_groups SET name = $1, description = $2, stateful = $3, updated_at = $4, revision_number = revision_number + 1 WHERE id = $5",
        )
        .bind(update.name.as_ref().unwrap_or(&group.name))
        .bind(update.description.as_ref().unwrap_or(&group.description))
        .bind(flag(update.stateful.unwrap_or(group.stateful)))
        .bind(novum_db::now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let group = load(&mut tx, id)
            .await?
            .ok_or_else(|| NetworkError::SecurityGroupNotFound(id.to_string()))?;
        tx.commit().await.map_err(novum_db::DbError::from)?;
        Ok(group)
    }

    /// Deletes group `id` (its owner or an admin) with its rules. The
    /// default group only by an admin
    /// ([`NetworkError::SecurityGroupCannotRemoveDefault`]); a group a port
    /// uses is [`NetworkError::SecurityGroupInUse`].
    pub async fn delete_security_group(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(), NetworkError> {
        let mut conn = self.db.connection().await?;
        let group = visible(&mut conn, caller, id).await?;
        drop(conn);
        let mut tx = self
            .db
            .begin_serialized(&quota_lock(&group.project_id))
            .await?;
        let is_default = default_of(&mut tx, &group.project_id).await?.as_deref() == Some(id);
        if is_default && !caller.is_admin {
            return Err(NetworkError::SecurityGroupCannotRemoveDefault);
        }
        if store::count(
            &mut tx,
            "port_security_group_bindings",
            "security_group_id",
            id,
        )
        .await?
            > 0
        {
            return Err(NetworkError::SecurityGroupInUse(id.to_string()));
        }
        for sql in [
            "DELETE FROM network_default_security_groups WHERE security_group_id = $1",
            "DELETE FROM security_group_rules WHERE security_group_id = $1 OR remote_group_id = $1",
            "DELETE FROM security_groups WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await.map_err(novum_db::DbError::from)?;
        Ok(())
    }

    /// Creates a rule in a group the caller owns (quota
    /// `security_group_rule` of the group's project), validated as Neutron
    /// does; the same rule twice is
    /// [`NetworkError::SecurityGroupRuleExists`].
    pub async fn create_security_group_rule(
        &self,
        caller: &Caller,
        new: &NewSecurityGroupRule,
    ) -> Result<SecurityGroupRule, NetworkError> {
        let description = new.description.clone().unwrap_or_default();
        check_length(&description)?;
        let (direction, ethertype, protocol, prefix) = validate_rule(new)?;
        let mut conn = self.db.connection().await?;
        let group = visible(&mut conn, caller, &new.security_group_id).await?;
        if let Some(remote) = &new.remote_group_id {
            visible(&mut conn, caller, remote).await?;
        }
        drop(conn);
        let mut tx = self
            .db
            .begin_serialized(&quota_lock(&group.project_id))
            .await?;
        let existing = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM security_group_rules WHERE security_group_id = $1",
            store::RULE_COLUMNS
        )))
        .bind(&group.id)
        .fetch_all(&mut *tx)
        .await?;
        for row in &existing {
            let rule = store::rule_from(row)?;
            if rule.direction == direction
                && rule.ethertype == ethertype
                && rule.protocol == protocol
                && rule.port_range_min == new.port_range_min
                && rule.port_range_max == new.port_range_max
                && any_address_as_none(rule.remote_ip_prefix.as_deref())
                    == any_address_as_none(prefix.as_deref())
                && rule.remote_group_id == new.remote_group_id
            {
                return Err(NetworkError::SecurityGroupRuleExists(rule.id));
            }
        }
        self.check_quota(
            &mut tx,
            &group.project_id,
            &[(QuotaResource::SecurityGroupRule, 1)],
        )
        .await?;
        let now = novum_db::now();
        let id = insert_rule(
            &mut tx,
            &RuleRow {
                group: &group.id,
                project: &group.project_id,
                direction: &direction,
                ethertype: &ethertype,
                protocol: protocol.as_deref(),
                port_range_min: new.port_range_min,
                port_range_max: new.port_range_max,
                remote_ip_prefix: prefix.as_deref(),
                remote_group_id: new.remote_group_id.as_deref(),
                description: &description,
            },
            &now,
        )
        .await?;
        sqlx::query("UPDATE security_groups SET revision_number = revision_number + 1, updated_at = $1 WHERE id = $2")
            .bind(&now)
            .bind(&group.id)
            .execute(&mut *tx)
            .await?;
        let rule = store::rules(&mut tx, std::slice::from_ref(&id))
            .await?
            .pop()
            .ok_or_else(|| NetworkError::SecurityGroupRuleNotFound(id.clone()))?;
        tx.commit().await.map_err(novum_db::DbError::from)?;
        Ok(rule)
    }

    /// The rule `id` as `caller` sees it (its owner, the group's owner or an
    /// admin).
    pub async fn get_security_group_rule(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<SecurityGroupRule, NetworkError> {
        let mut conn = self.db.connection().await?;
        self.visible_rule(&mut conn, caller, id).await
    }

    async fn visible_rule(
        &self,
        conn: &mut AnyConnection,
        caller: &Caller,
        id: &str,
    ) -> Result<SecurityGroupRule, NetworkError> {
        let not_found = || NetworkError::SecurityGroupRuleNotFound(id.to_string());
        let rule = store::rules(conn, &[id.to_string()])
            .await?
            .pop()
            .ok_or_else(not_found)?;
        if caller.is_admin || rule.project_id == caller.project_id {
            return Ok(rule);
        }
        match load(conn, &rule.security_group_id).await? {
            Some(group) if group.project_id == caller.project_id => Ok(rule),
            _ => Err(not_found()),
        }
    }

    /// The page of `listing` over the rules `caller` may see.
    pub async fn list_security_group_rules(
        &self,
        caller: &Caller,
        listing: &Listing,
    ) -> Result<Page<SecurityGroupRule>, NetworkError> {
        self.ensure_default_security_group(&caller.project_id)
            .await?;
        let mut conn = self.db.connection().await?;
        let project = caller.project_id.clone();
        let visible = move |clauses: &mut Clauses| {
            let project = clauses.text(&project);
            format!(
                "(project_id = {project} OR security_group_id IN (SELECT id FROM security_groups WHERE project_id = {project}))"
            )
        };
        let special = |_: &str, _: &[String], _: &mut Clauses| Ok(false);
        let spec = Spec {
            table: "security_group_rules",
            attributes: RULE_ATTRIBUTES,
            special: &special,
            visible: if caller.is_admin {
                None
            } else {
                Some(&visible)
            },
            not_found: NetworkError::SecurityGroupRuleNotFound,
        };
        let (ids, more) = listing::page_ids(&mut conn, &spec, listing).await?;
        let items = store::rules(&mut conn, &ids).await?;
        Ok(Page { items, more })
    }

    /// Deletes rule `id` (its owner, the group's owner or an admin).
    pub async fn delete_security_group_rule(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(), NetworkError> {
        let mut conn = self.db.connection().await?;
        let rule = self.visible_rule(&mut conn, caller, id).await?;
        drop(conn);
        let mut tx = self.db.begin().await?;
        sqlx::query("DELETE FROM security_group_rules WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE security_groups SET revision_number = revision_number + 1, updated_at = $1 WHERE id = $2")
            .bind(novum_db::now())
            .bind(&rule.security_group_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await.map_err(novum_db::DbError::from)?;
        Ok(())
    }

    /// The groups of `project` matching `name_or_id` each (an id, or a
    /// unique name), in order: what `security_groups` of a server create
    /// names. Unknown: [`NetworkError::SecurityGroupNotFound`]; a name of
    /// several groups: [`NetworkError::SecurityGroupNotUnique`].
    pub async fn resolve_security_groups(
        &self,
        project: &str,
        names_or_ids: &[String],
    ) -> Result<Vec<String>, NetworkError> {
        if names_or_ids.iter().any(|name| name == DEFAULT_GROUP_NAME) {
            self.ensure_default_security_group(project).await?;
        }
        let mut conn = self.db.connection().await?;
        resolve_in(&mut conn, project, names_or_ids).await
    }
}

/// [`NetworkService::resolve_security_groups`] in `conn`.
pub(crate) async fn resolve_in(
    conn: &mut AnyConnection,
    project: &str,
    names_or_ids: &[String],
) -> Result<Vec<String>, NetworkError> {
    let mut ids = Vec::new();
    for wanted in names_or_ids {
        let rows = sqlx::query("SELECT id FROM security_groups WHERE project_id = $1 AND (id = $2 OR name = $2) ORDER BY id")
            .bind(project)
            .bind(wanted)
            .fetch_all(&mut *conn)
            .await?;
        let matches = rows
            .iter()
            .map(|row| row.try_get::<String, _>("id"))
            .collect::<Result<Vec<_>, _>>()?;
        let id = if matches.iter().any(|id| id == wanted) {
            wanted.clone()
        } else {
            match matches.as_slice() {
                [] => return Err(NetworkError::SecurityGroupNotFound(wanted.clone())),
                [only] => only.clone(),
                _ => return Err(NetworkError::SecurityGroupNotUnique(wanted.clone())),
            }
        };
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}
