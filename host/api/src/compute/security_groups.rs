//! Nova's security group proxy over the network service's groups
//! (microversions 2.1 to 2.35; from 2.36 every route answers 404, as
//! Nova's do): `os-security-groups` (list, with `all_tenants` for admins;
//! show, create, update, delete) and `os-security-group-rules` (create,
//! delete), answering what `nova/api/openstack/compute/security_groups.py`
//! answers over Neutron. `os-security-group-default-rules`, which only
//! nova-network served, answers 410 at every microversion, as Nova's does.
//! The views here are also those of a server's `os-security-groups`.
//!
//! Nova's semantics kept:
//! - A group shows its ingress rules only. A rule admitting a group shows
//!   `group: {name, tenant_id}` and `ip_range: {}`; any other shows
//!   `ip_range: {cidr}` (`0.0.0.0/0` when it has no prefix). A protocol
//!   without ports shows 1–65535 for TCP and UDP, -1/-1 otherwise. A rule
//!   admitting a group the caller cannot see is left out.
//! - A rule create makes one ingress rule. With `group_id`, TCP, UDP and
//!   ICMP without ports open every port (type); with a CIDR (default
//!   `0.0.0.0/0`) the protocol and both ports are required. Only TCP, UDP
//!   and ICMP; ports 1–65535 with `from_port <= to_port`; ICMP type and code
//!   -1 (any) to 255. The ethertype follows the CIDR (IPv4 for a group). A
//!   rule equal to one of the group's as Nova compares them is 400.
//! - What Neutron answers 409 becomes what Nova makes of it: 403 on a
//!   create (over quota, a duplicate Nova's comparison missed), 400 on a
//!   delete (a group in use, the default group) and on an update (Nova
//!   lets that one through as a 500; novum answers 400).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{
    MAX_PROXY_MICROVERSION, network_fault, parse_query, query_value, until_microversion,
};
use super::servers::network_caller;
use crate::AppState;
use crate::auth::AuthContext;
use crate::bodies::security_group::{
    SecurityGroupBody, SecurityGroupRuleBody, SecurityGroupRuleFields,
};
use crate::bodies::{self};
use crate::body::JsonBody;
use crate::extract::Path;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use novum_network::{
    Caller, Listing, NetworkError, NewSecurityGroup, NewSecurityGroupRule, SecurityGroup,
    SecurityGroupRule, SecurityGroupUpdate,
};

/// The policy rules' prefix (`os_compute_api:os-security-groups:<action>`).
const POLICY: &str = "os_compute_api:os-security-groups";

/// What Nova shows for a rule without a prefix (its `parse_cidr` of none).
const ANY_IPV4: &str = "0.0.0.0/0";

/// The protocols with port ranges (Nova's TCP and UDP).
fn has_ports(protocol: &str) -> bool {
    matches!(protocol.to_ascii_uppercase().as_str(), "TCP" | "UDP")
}

/// A rule as Nova's proxy converts Neutron's
/// (`_convert_to_nova_security_group_rule_format`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct NovaRule {
    id: String,
    parent_group_id: String,
    protocol: Option<String>,
    from_port: Option<i64>,
    to_port: Option<i64>,
    group_id: Option<String>,
    cidr: String,
}

impl NovaRule {
    fn of(rule: &SecurityGroupRule) -> Self {
        let (from_port, to_port) = match (&rule.protocol, rule.port_range_min, rule.port_range_max)
        {
            (Some(protocol), None, None) if has_ports(protocol) => (Some(1), Some(65535)),
            (Some(_), None, None) => (Some(-1), Some(-1)),
            (_, min, max) => (min, max),
        };
        Self {
            id: rule.id.clone(),
            parent_group_id: rule.security_group_id.clone(),
            protocol: rule.protocol.clone(),
            from_port,
            to_port,
            group_id: rule.remote_group_id.clone(),
            cidr: rule
                .remote_ip_prefix
                .clone()
                .unwrap_or_else(|| ANY_IPV4.to_string()),
        }
    }

    /// The rule in Nova's shape; `group` is what it shows of the group it
    /// admits (`{name, tenant_id}`).
    fn view(&self, group: Option<&Value>) -> Value {
        let (group, ip_range) = match (group, &self.group_id) {
            (Some(group), _) => (group.clone(), json!({})),
            (None, Some(_)) => (json!({}), json!({})),
            (None, None) => (json!({}), json!({"cidr": self.cidr})),
        };
        json!({
            "id": self.id,
            "parent_group_id": self.parent_group_id,
            "ip_protocol": self.protocol,
            "from_port": self.from_port,
            "to_port": self.to_port,
            "group": group,
            "ip_range": ip_range,
        })
    }
}

/// What a rule's `group` shows of a group.
fn group_reference(group: &SecurityGroup) -> Value {
    json!({"name": group.name, "tenant_id": group.project_id})
}

/// The groups the ingress rules of some groups admit, as a caller sees
/// them: by id, `None` for one it cannot see.
struct RemoteGroups(BTreeMap<String, Option<Value>>);

impl RemoteGroups {
    /// The remote groups of `groups`' ingress rules: the groups themselves
    /// first, the others looked up as `caller`.
    async fn of(state: &AppState, caller: &Caller, groups: &[SecurityGroup]) -> ApiResult<Self> {
        let mut known: BTreeMap<String, Option<Value>> = groups
            .iter()
            .map(|group| (group.id.clone(), Some(group_reference(group))))
            .collect();
        let remote_ids: Vec<String> = groups
            .iter()
            .flat_map(|group| &group.rules)
            .filter(|rule| rule.direction == "ingress")
            .filter_map(|rule| rule.remote_group_id.clone())
            .collect();
        for id in remote_ids {
            if known.contains_key(&id) {
                continue;
            }
            let seen = match state.network.get_security_group(caller, &id).await {
                Ok(group) => Some(group_reference(&group)),
                Err(NetworkError::SecurityGroupNotFound(_)) => None,
                Err(error) => return Err(network_fault(error)),
            };
            known.insert(id, seen);
        }
        Ok(Self(known))
    }

    /// The group `group` in Nova's shape: its ingress rules, without those
    /// admitting a group the caller cannot see.
    fn view(&self, group: &SecurityGroup) -> Value {
        let rules: Vec<Value> = group
            .rules
            .iter()
            .filter(|rule| rule.direction == "ingress")
            .map(NovaRule::of)
            .filter_map(|rule| match &rule.group_id {
                None => Some(rule.view(None)),
                Some(remote) => match self.0.get(remote) {
                    Some(Some(reference)) => Some(rule.view(Some(reference))),
                    _ => None,
                },
            })
            .collect();
        json!({
            "id": group.id,
            "name": group.name,
            "description": group.description,
            "tenant_id": group.project_id,
            "rules": rules,
        })
    }
}

/// `groups` in Nova's shape, sorted by owner and name as Nova sorts them.
pub(crate) async fn views(
    state: &AppState,
    caller: &Caller,
    groups: &[SecurityGroup],
) -> ApiResult<Vec<Value>> {
    let remote = RemoteGroups::of(state, caller, groups).await?;
    let mut shown: Vec<Value> = groups.iter().map(|group| remote.view(group)).collect();
    shown.sort_by(|a, b| {
        let key = |view: &Value| {
            (
                view["tenant_id"].as_str().unwrap_or_default().to_string(),
                view["name"].as_str().unwrap_or_default().to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    Ok(shown)
}

/// One group in Nova's shape.
async fn view(state: &AppState, caller: &Caller, group: SecurityGroup) -> ApiResult<Value> {
    let remote = RemoteGroups::of(state, caller, std::slice::from_ref(&group)).await?;
    Ok(remote.view(&group))
}

/// A network-service refusal as Nova's proxy answers it: what it does not
/// find 404, bad input 400, a conflict `conflict` (see the module doc),
/// the message the network service's.
fn proxy_fault(error: NetworkError, conflict: StatusCode) -> ApiError {
    let message = error.to_string();
    match error.status() {
        400 => ApiError::bad_request(message),
        404 => ApiError::not_found(message),
        409 => ApiError::new(conflict, message),
        401 | 403 => ApiError::forbidden(message),
        _ => ApiError::internal(error),
    }
}

/// Refuses an id that is not a uuid (Nova's `validate_id`).
fn check_id(id: &str) -> ApiResult<()> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| ApiError::bad_request("Security group id should be uuid"))
}

/// The group `id` the caller may see (after the microversion and id
/// checks), 404 in the network service's words otherwise.
async fn visible_group(state: &AppState, caller: &Caller, id: &str) -> ApiResult<SecurityGroup> {
    state
        .network
        .get_security_group(caller, id)
        .await
        .map_err(|error| proxy_fault(error, StatusCode::CONFLICT))
}

/// A non-negative integer query parameter (`limit`, `offset`).
fn non_negative(pairs: &[(String, String)], key: &str) -> ApiResult<Option<usize>> {
    query_value(pairs, key)
        .map(|text| {
            text.parse::<usize>().map_err(|_| {
                ApiError::bad_request(format!(
                    "Invalid input for query parameters {key}. Value: {text}. '{text}' does not match '^[0-9]*$'"
                ))
            })
        })
        .transpose()
}

#[utoipa::path(get, path = "/v2.1/os-security-groups", params(("all_tenants" = Option<String>, Query, description = "Admins: every project's groups"), ("limit" = Option<u32>, Query, description = "Page size"), ("offset" = Option<u32>, Query, description = "Groups to skip")), responses((status = OK, description = "The caller's security groups (`security_groups`)", body = Object), crate::fault::ApiError))]
async fn index(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    until_microversion(version, MAX_PROXY_MICROVERSION)?;
    let pairs = parse_query(raw.as_deref());
    let offset = non_negative(&pairs, "offset")?.unwrap_or(0);
    let max = state.config.compute.max_limit;
    let limit = match non_negative(&pairs, "limit")? {
        None | Some(0) => max,
        Some(limit) => limit.min(max),
    };
    let caller = network_caller(&auth);
    let all_tenants = auth.is_admin() && pairs.iter().any(|(key, _)| key == "all_tenants");
    let listing = if all_tenants {
        Listing::default()
    } else {
        Listing::filtered("project_id", &auth.project_id)
    };
    let groups: Vec<SecurityGroup> = state
        .network
        .list_security_groups(&caller, &listing)
        .await
        .map_err(network_fault)?
        .items
        .into_iter()
        .skip(offset)
        .take(limit)
        .collect();
    Ok(Json(
        json!({"security_groups": views(&state, &caller, &groups).await?}),
    ))
}

#[utoipa::path(post, path = "/v2.1/os-security-groups", request_body = SecurityGroupBody, responses((status = OK, description = "The new group (`security_group`)", body = Object), crate::fault::ApiError))]
async fn create(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    until_microversion(version, MAX_PROXY_MICROVERSION)?;
    let body: SecurityGroupBody = bodies::parse(&body, version)?;
    auth.require_writer(&format!("{POLICY}:create"))?;
    let caller = network_caller(&auth);
    let fields = body.security_group;
    let new = NewSecurityGroup {
        name: fields.name,
        description: Some(fields.description),
        ..NewSecurityGroup::default()
    };
    let group = state
        .network
        .create_security_group(&caller, &new)
        .await
        .map_err(|error| proxy_fault(error, StatusCode::FORBIDDEN))?;
    Ok(Json(
        json!({"security_group": view(&state, &caller, group).await?}),
    ))
}

#[utoipa::path(get, path = "/v2.1/os-security-groups/{id}", params(("id" = String, Path, description = "The group's uuid")), responses((status = OK, description = "The group (`security_group`)", body = Object), crate::fault::ApiError))]
async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    until_microversion(version, MAX_PROXY_MICROVERSION)?;
    check_id(&id)?;
    let caller = network_caller(&auth);
    let group = visible_group(&state, &caller, &id).await?;
    Ok(Json(
        json!({"security_group": view(&state, &caller, group).await?}),
    ))
}

#[utoipa::path(put, path = "/v2.1/os-security-groups/{id}", params(("id" = String, Path, description = "The group's uuid")), request_body = SecurityGroupBody, responses((status = OK, description = "The group (`security_group`)", body = Object), crate::fault::ApiError))]
async fn update(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    until_microversion(version, MAX_PROXY_MICROVERSION)?;
    let body: SecurityGroupBody = bodies::parse(&body, version)?;
    auth.require_writer(&format!("{POLICY}:update"))?;
    check_id(&id)?;
    let caller = network_caller(&auth);
    visible_group(&state, &caller, &id).await?;
    let fields = body.security_group;
    let changes = SecurityGroupUpdate {
        name: Some(fields.name),
        description: Some(fields.description),
        stateful: None,
    };
    let group = state
        .network
        .update_security_group(&caller, &id, &changes)
        .await
        .map_err(|error| proxy_fault(error, StatusCode::BAD_REQUEST))?;
    Ok(Json(
        json!({"security_group": view(&state, &caller, group).await?}),
    ))
}

#[utoipa::path(delete, path = "/v2.1/os-security-groups/{id}", params(("id" = String, Path, description = "The group's uuid")), responses((status = ACCEPTED, description = "Deleted"), crate::fault::ApiError))]
async fn delete(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    until_microversion(version, MAX_PROXY_MICROVERSION)?;
    auth.require_writer(&format!("{POLICY}:delete"))?;
    check_id(&id)?;
    let caller = network_caller(&auth);
    visible_group(&state, &caller, &id).await?;
    state
        .network
        .delete_security_group(&caller, &id)
        .await
        .map_err(|error| proxy_fault(error, StatusCode::BAD_REQUEST))?;
    Ok(StatusCode::ACCEPTED)
}

/// The ingress rule a rule create asks for, as Nova builds it
/// (`_new_ingress_rule`) before it compares it and hands it to Neutron.
#[derive(Debug, PartialEq, Eq)]
struct IngressRule {
    group_id: Option<String>,
    cidr: Option<String>,
    protocol: Option<String>,
    from_port: Option<i64>,
    to_port: Option<i64>,
}

impl IngressRule {
    /// Whether Nova's `_rule_exists` takes `rule` for this one.
    fn same_as(&self, rule: &NovaRule) -> bool {
        self.group_id == rule.group_id
            && self.cidr.as_deref() == Some(rule.cidr.as_str())
            && self.from_port == rule.from_port
            && self.to_port == rule.to_port
            && self.protocol == rule.protocol
    }

    /// The network service's rule in group `parent`: ingress, the
    /// ethertype of the CIDR, -1 (any) as no port.
    fn neutron_rule(&self, parent: &str) -> NewSecurityGroupRule {
        let ipv6 = self.cidr.as_deref().is_some_and(|cidr| cidr.contains(':'));
        let port = |port: Option<i64>| port.filter(|port| *port != -1);
        NewSecurityGroupRule {
            security_group_id: parent.to_string(),
            direction: "ingress".to_string(),
            ethertype: Some(if ipv6 { "IPv6" } else { "IPv4" }.to_string()),
            protocol: self.protocol.clone(),
            port_range_min: port(self.from_port),
            port_range_max: port(self.to_port),
            remote_ip_prefix: self.cidr.clone(),
            remote_group_id: self.group_id.clone(),
            description: None,
        }
    }
}

/// The text of a JSON value as Python's `str` gives it, `None` for what
/// Python takes as false (null, "", 0, false, empty list or object).
fn truthy_text(value: &Value) -> Option<String> {
    match value {
        Value::Null | Value::Bool(false) => None,
        Value::String(text) if text.is_empty() => None,
        Value::String(text) => Some(text.clone()),
        Value::Number(number) if number.as_f64() == Some(0.0) => None,
        Value::Array(items) if items.is_empty() => None,
        Value::Object(fields) if fields.is_empty() => None,
        Value::Bool(true) => Some("True".to_string()),
        other => Some(other.to_string()),
    }
}

/// A port (or ICMP type/code) as Python's `int()` reads it.
fn port_number(value: &Value, icmp: bool) -> ApiResult<i64> {
    let number = match value {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|float| float.trunc() as i64)),
        Value::String(text) => text.trim().parse::<i64>().ok(),
        Value::Bool(flag) => Some(i64::from(*flag)),
        _ => None,
    };
    number.ok_or_else(|| {
        ApiError::bad_request(if icmp {
            "Invalid input received: Type and Code must be integers for ICMP protocol type"
        } else {
            "Invalid input received: To and From ports must be integers"
        })
    })
}

/// `%XX` escapes decoded (Python's `urllib.parse.unquote`).
fn unquote(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .filter(|hex| hex.bytes().all(|byte| byte.is_ascii_hexdigit()))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The rule's CIDR as Nova's `parse_cidr` takes it: `0.0.0.0/0` when none,
/// else an address with a prefix length (host bits allowed), 400
/// otherwise; a zero-length prefix only of the unspecified address.
fn parse_cidr(value: &Value) -> ApiResult<String> {
    let Some(text) = truthy_text(value) else {
        return Ok(ANY_IPV4.to_string());
    };
    let invalid = || ApiError::bad_request(format!("{text} is not a valid IP network."));
    let cidr = match value {
        Value::String(_) => unquote(&text),
        _ => return Err(invalid()),
    };
    let (address, length) = cidr.split_once('/').ok_or_else(invalid)?;
    let address: std::net::IpAddr = address.trim().parse().map_err(|_| invalid())?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let length: u8 = length
        .trim()
        .parse()
        .ok()
        .filter(|length| *length <= max)
        .ok_or_else(invalid)?;
    if length == 0 && !address.is_unspecified() {
        return Err(ApiError::bad_request(format!(
            "Bad prefix for network in cidr {cidr}"
        )));
    }
    Ok(format!("{address}/{length}"))
}

/// The rule a create asks for (Nova's `_rule_args_to_dict` and
/// `_new_ingress_rule`), 400 in Nova's words when it cannot be one.
fn ingress_rule(fields: &SecurityGroupRuleFields) -> ApiResult<IngressRule> {
    let cidr = match fields.group_id {
        Some(_) => None,
        None => Some(parse_cidr(&fields.cidr)?),
    };
    let protocol = truthy_text(&fields.ip_protocol);
    let upper = protocol
        .as_deref()
        .map(str::to_ascii_uppercase)
        .unwrap_or_default();
    let given = |value: &Value| (!value.is_null()).then(|| value.clone());
    let (mut from, mut to) = (given(&fields.from_port), given(&fields.to_port));
    if fields.group_id.is_some() && from.is_none() && to.is_none() {
        match upper.as_str() {
            "ICMP" => (from, to) = (Some(json!(-1)), Some(json!(-1))),
            "TCP" | "UDP" => (from, to) = (Some(json!(1)), Some(json!(65535))),
            _ => {}
        }
    }
    let mut rule = IngressRule {
        group_id: fields.group_id.clone(),
        cidr,
        protocol: None,
        from_port: None,
        to_port: None,
    };
    let (Some(protocol), Some(from), Some(to)) = (protocol, from, to) else {
        if rule.cidr.is_some() {
            return Err(ApiError::bad_request(
                "Not enough parameters to build a valid rule.",
            ));
        }
        return Ok(rule);
    };
    let icmp = upper == "ICMP";
    let (from, to) = (port_number(&from, icmp)?, port_number(&to, icmp)?);
    let range_error =
        |reason: String| ApiError::bad_request(format!("Invalid port range {from}:{to}. {reason}"));
    match upper.as_str() {
        "TCP" | "UDP" if from > to => {
            return Err(range_error(
                "Former value cannot be greater than the later".to_string(),
            ));
        }
        "TCP" | "UDP" if from < 1 || to > 65535 => {
            return Err(range_error(format!(
                "Valid {upper} ports should be between 1-65535"
            )));
        }
        "ICMP" if !(-1..=255).contains(&from) || !(-1..=255).contains(&to) => {
            return Err(range_error(
                "For ICMP, the type:code must be valid".to_string(),
            ));
        }
        "TCP" | "UDP" | "ICMP" => {}
        _ => {
            return Err(ApiError::bad_request(format!(
                "Invalid IP protocol {protocol}."
            )));
        }
    }
    rule.protocol = Some(protocol);
    rule.from_port = Some(from);
    rule.to_port = Some(to);
    Ok(rule)
}

#[utoipa::path(post, path = "/v2.1/os-security-group-rules", request_body = SecurityGroupRuleBody, responses((status = OK, description = "The new rule (`security_group_rule`)", body = Object), crate::fault::ApiError))]
async fn create_rule(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    until_microversion(version, MAX_PROXY_MICROVERSION)?;
    let body: SecurityGroupRuleBody = bodies::parse(&body, version)?;
    auth.require_writer(&format!("{POLICY}:rule:create"))?;
    let fields = body.security_group_rule;
    let caller = network_caller(&auth);
    let parent = visible_group(&state, &caller, &fields.parent_group_id).await?;
    let source = match &fields.group_id {
        Some(id) => Some(visible_group(&state, &caller, id).await?),
        None => None,
    };
    let wanted = ingress_rule(&fields)?;
    if parent
        .rules
        .iter()
        .filter(|rule| rule.direction == "ingress")
        .any(|rule| wanted.same_as(&NovaRule::of(rule)))
    {
        return Err(ApiError::bad_request(format!(
            "This rule already exists in group {}",
            parent.id
        )));
    }
    let created = state
        .network
        .create_security_group_rule(&caller, &wanted.neutron_rule(&parent.id))
        .await
        .map_err(|error| proxy_fault(error, StatusCode::FORBIDDEN))?;
    let group = source.as_ref().map(group_reference);
    Ok(Json(
        json!({"security_group_rule": NovaRule::of(&created).view(group.as_ref())}),
    ))
}

#[utoipa::path(delete, path = "/v2.1/os-security-group-rules/{id}", params(("id" = String, Path, description = "The rule's uuid")), responses((status = ACCEPTED, description = "Deleted"), crate::fault::ApiError))]
async fn delete_rule(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    until_microversion(version, MAX_PROXY_MICROVERSION)?;
    auth.require_writer(&format!("{POLICY}:rule:delete"))?;
    check_id(&id)?;
    let caller = network_caller(&auth);
    let rule = state
        .network
        .get_security_group_rule(&caller, &id)
        .await
        .map_err(|error| proxy_fault(error, StatusCode::CONFLICT))?;
    visible_group(&state, &caller, &rule.security_group_id).await?;
    state
        .network
        .delete_security_group_rule(&caller, &id)
        .await
        .map_err(|error| proxy_fault(error, StatusCode::CONFLICT))?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(get, path = "/v2.1/os-security-group-default-rules", responses((status = GONE, description = "Removed with nova-network"), crate::fault::ApiError))]
async fn list_default_rules() -> ApiResult<StatusCode> {
    Err(ApiError::gone())
}

#[utoipa::path(post, path = "/v2.1/os-security-group-default-rules", responses((status = GONE, description = "Removed with nova-network"), crate::fault::ApiError))]
async fn create_default_rule() -> ApiResult<StatusCode> {
    Err(ApiError::gone())
}

#[utoipa::path(get, path = "/v2.1/os-security-group-default-rules/{id}", params(("id" = String, Path, description = "A default rule's id")), responses((status = GONE, description = "Removed with nova-network"), crate::fault::ApiError))]
async fn show_default_rule() -> ApiResult<StatusCode> {
    Err(ApiError::gone())
}

#[utoipa::path(delete, path = "/v2.1/os-security-group-default-rules/{id}", params(("id" = String, Path, description = "A default rule's id")), responses((status = GONE, description = "Removed with nova-network"), crate::fault::ApiError))]
async fn delete_default_rule() -> ApiResult<StatusCode> {
    Err(ApiError::gone())
}

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index, create))
        .routes(routes!(show, update, delete))
        .routes(routes!(create_rule))
        .routes(routes!(delete_rule))
        .routes(routes!(list_default_rules, create_default_rule))
        .routes(routes!(show_default_rule, delete_default_rule))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: Value) -> SecurityGroupRuleFields {
        let mut rule = json!({"parent_group_id": "8d3c4e1a-0a52-4a63-9a7b-6c1b9d0e2f11"});
        if let (Value::Object(rule), Value::Object(body)) = (&mut rule, body) {
            rule.extend(body);
        }
        serde_json::from_value(rule).expect("fields")
    }

    fn refusal(body: Value) -> String {
        ingress_rule(&fields(body))
            .expect_err("refused")
            .message()
            .to_string()
    }

    #[test]
    fn a_cidr_rule_needs_protocol_and_ports_and_defaults_to_anywhere() {
        let rule = ingress_rule(&fields(
            json!({"ip_protocol": "tcp", "from_port": "22", "to_port": 22}),
        ))
        .expect("rule");
        assert_eq!(rule.cidr.as_deref(), Some(ANY_IPV4));
        assert_eq!((rule.from_port, rule.to_port), (Some(22), Some(22)));
        assert_eq!(
            refusal(json!({"ip_protocol": "tcp", "from_port": 22})),
            "Not enough parameters to build a valid rule."
        );
        assert_eq!(
            refusal(json!({"ip_protocol": "gre", "from_port": 1, "to_port": 2})),
            "Invalid IP protocol gre."
        );
        assert_eq!(
            refusal(json!({"ip_protocol": "tcp", "from_port": 22, "to_port": 21})),
            "Invalid port range 22:21. Former value cannot be greater than the later"
        );
        assert_eq!(
            refusal(json!({"ip_protocol": "UDP", "from_port": 1, "to_port": 65536})),
            "Invalid port range 1:65536. Valid UDP ports should be between 1-65535"
        );
        assert_eq!(
            refusal(json!({"ip_protocol": "icmp", "from_port": -2, "to_port": 0})),
            "Invalid port range -2:0. For ICMP, the type:code must be valid"
        );
        assert_eq!(
            refusal(json!({"ip_protocol": "tcp", "from_port": "x", "to_port": 1})),
            "Invalid input received: To and From ports must be integers"
        );
    }

    #[test]
    fn cidrs_are_checked_as_nova_checks_them() {
        assert_eq!(
            parse_cidr(&json!("10.2.3.124/24")).expect("cidr"),
            "10.2.3.124/24"
        );
        assert_eq!(
            parse_cidr(&json!("10.0.0.0%2F8")).expect("cidr"),
            "10.0.0.0/8"
        );
        assert_eq!(parse_cidr(&json!("")).expect("cidr"), ANY_IPV4);
        assert_eq!(unquote("%+f%2f%zz%"), "%+f/%zz%");
        assert_eq!(parse_cidr(&json!("::/0")).expect("cidr"), "::/0");
        assert_eq!(
            parse_cidr(&json!("10.0.0.1"))
                .expect_err("no prefix")
                .message(),
            "10.0.0.1 is not a valid IP network."
        );
        assert_eq!(
            parse_cidr(&json!("10.0.0.0/33"))
                .expect_err("too long")
                .message(),
            "10.0.0.0/33 is not a valid IP network."
        );
        assert_eq!(
            parse_cidr(&json!("10.0.0.0/0"))
                .expect_err("bad prefix")
                .message(),
            "Bad prefix for network in cidr 10.0.0.0/0"
        );
    }

    #[test]
    fn a_group_rule_opens_every_port_of_its_protocol_or_everything() {
        let group = "0c7a3b59-5a7e-4e7b-9f0e-3f6f2e7f9a10";
        let icmp =
            ingress_rule(&fields(json!({"group_id": group, "ip_protocol": "icmp"}))).expect("icmp");
        assert_eq!((icmp.from_port, icmp.to_port), (Some(-1), Some(-1)));
        assert_eq!(icmp.neutron_rule("p").port_range_min, None);
        assert_eq!(icmp.cidr, None);
        let everything = ingress_rule(&fields(json!({"group_id": group}))).expect("any protocol");
        assert_eq!(everything.protocol, None);
        let neutron = everything.neutron_rule("p");
        assert_eq!(neutron.remote_group_id.as_deref(), Some(group));
        assert_eq!(neutron.ethertype.as_deref(), Some("IPv4"));
    }

    #[test]
    fn rules_show_nova_defaults_for_ports_and_cidr() {
        let rule = SecurityGroupRule {
            id: "r".into(),
            security_group_id: "g".into(),
            project_id: "p".into(),
            direction: "ingress".into(),
            ethertype: "IPv4".into(),
            protocol: Some("tcp".into()),
            port_range_min: None,
            port_range_max: None,
            remote_ip_prefix: None,
            remote_group_id: None,
            description: String::new(),
            created_at: String::new(),
            updated_at: String::new(),
            revision_number: 0,
        };
        let shown = NovaRule::of(&rule).view(None);
        assert_eq!(shown["from_port"], 1);
        assert_eq!(shown["to_port"], 65535);
        assert_eq!(shown["ip_range"], json!({"cidr": ANY_IPV4}));
        assert_eq!(shown["group"], json!({}));
        let icmp = SecurityGroupRule {
            protocol: Some("icmp".into()),
            ..rule
        };
        assert_eq!(NovaRule::of(&icmp).view(None)["from_port"], -1);
    }
}
