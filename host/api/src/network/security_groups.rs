//! `/v2.0/security-groups` (create, list, show, update, delete) and
//! `/v2.0/security-group-rules` (create, list, show, delete).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{
    Attrs, ListQuery, NetAuth, NetResult, NeutronFault, Pairs, Path, Query, id, neutron_time,
    render, reply, show_fields,
};
use crate::AppState;
use crate::fault::ApiError;
use novum_network::{
    NewSecurityGroup, NewSecurityGroupRule, SecurityGroup, SecurityGroupRule, SecurityGroupUpdate,
};

crate::envelope!(
    /// `{"security_group": …}`
    SecurityGroupBody, "security_group", Object
);
crate::envelope!(
    /// `{"security_groups": …}`
    SecurityGroupList, "security_groups", Array
);
crate::envelope!(
    /// `{"security_group_rule": …}`
    SecurityGroupRuleBody, "security_group_rule", Object
);
crate::envelope!(
    /// `{"security_group_rules": …}`
    SecurityGroupRuleList, "security_group_rules", Array
);

/// The security group and rule routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_groups, create_group))
        .routes(routes!(list_groups_json, create_group_json))
        .routes(routes!(show_group, update_group, delete_group))
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(list_rules_json, create_rule_json))
        .routes(routes!(show_rule, delete_rule))
}

/// A rule as Neutron shows it.
pub fn rule_json(rule: &SecurityGroupRule) -> Value {
    json!({
        "id": rule.id,
        "security_group_id": rule.security_group_id,
        "tenant_id": rule.project_id,
        "project_id": rule.project_id,
        "direction": rule.direction,
        "ethertype": rule.ethertype,
        "protocol": rule.protocol,
        "port_range_min": rule.port_range_min,
        "port_range_max": rule.port_range_max,
        "remote_ip_prefix": rule.remote_ip_prefix,
        "remote_group_id": rule.remote_group_id,
        "remote_address_group_id": null,
        "description": rule.description,
        "tags": [],
        "created_at": neutron_time(&rule.created_at),
        "updated_at": neutron_time(&rule.updated_at),
        "revision_number": rule.revision_number,
    })
}

/// A security group as Neutron shows it, with its rules.
pub fn group_json(group: &SecurityGroup) -> Value {
    json!({
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "tenant_id": group.project_id,
        "project_id": group.project_id,
        "stateful": group.stateful,
        "security_group_rules": group.rules.iter().map(rule_json).collect::<Vec<_>>(),
        "tags": [],
        "created_at": neutron_time(&group.created_at),
        "updated_at": neutron_time(&group.updated_at),
        "revision_number": group.revision_number,
    })
}

/// `GET /v2.0/security-groups` (the caller's `default` group is made on
/// first use).
#[utoipa::path(get, path = "/v2.0/security-groups", responses((status = OK, description = "Success", body = SecurityGroupList), crate::openapi::NeutronFaults))]
async fn list_groups(
    State(state): State<AppState>,
    net: NetAuth,
    Query(params): Pairs,
) -> NetResult<Response> {
    let query = ListQuery::parse(&params)?;
    let page = state
        .network
        .list_security_groups(&net.caller, &query.listing)
        .await?;
    Ok(query.page_body(
        &state,
        "security_groups",
        "security-groups",
        &page,
        |item| &item.id,
        group_json,
    ))
}

/// `GET /v2.0/security-groups.json`.
#[utoipa::path(get, path = "/v2.0/security-groups.json", responses((status = OK, description = "Success", body = SecurityGroupList), crate::openapi::NeutronFaults))]
async fn list_groups_json(
    state: State<AppState>,
    net: NetAuth,
    params: Pairs,
) -> NetResult<Response> {
    list_groups(state, net, params).await
}

/// `POST /v2.0/security-groups`: the group with its two egress rules.
#[utoipa::path(post, path = "/v2.0/security-groups", request_body = SecurityGroupBody, responses((status = CREATED, description = "Created", body = SecurityGroupBody), crate::openapi::NeutronFaults))]
async fn create_group(
    State(state): State<AppState>,
    net: NetAuth,
    bytes: Bytes,
) -> NetResult<Response> {
    net.require_writer("create_security_group")?;
    let mut attrs = Attrs::parse(&bytes, "security_group")?;
    let new = NewSecurityGroup {
        project_id: attrs.owner()?,
        name: attrs.string("name")?.unwrap_or_default(),
        description: attrs.string("description")?,
        stateful: attrs.boolean("stateful")?,
    };
    attrs.finish()?;
    let group = state
        .network
        .create_security_group(&net.caller, &new)
        .await?;
    Ok(reply(
        StatusCode::CREATED,
        "security_group",
        group_json(&group),
    ))
}

/// `POST /v2.0/security-groups.json`.
#[utoipa::path(post, path = "/v2.0/security-groups.json", request_body = SecurityGroupBody, responses((status = CREATED, description = "Created", body = SecurityGroupBody), crate::openapi::NeutronFaults))]
async fn create_group_json(
    state: State<AppState>,
    net: NetAuth,
    bytes: Bytes,
) -> NetResult<Response> {
    create_group(state, net, bytes).await
}

/// `GET /v2.0/security-groups/{id}`.
#[utoipa::path(get, path = "/v2.0/security-groups/{security_group_id}", params(("security_group_id" = String, Path, description = "The security group id")), responses((status = OK, description = "Success", body = SecurityGroupBody), crate::openapi::NeutronFaults))]
async fn show_group(
    State(state): State<AppState>,
    net: NetAuth,
    Path(group_id): Path<String>,
    Query(params): Pairs,
) -> NetResult<Response> {
    let group = state
        .network
        .get_security_group(&net.caller, &id(group_id))
        .await?;
    Ok(reply(
        StatusCode::OK,
        "security_group",
        render(group_json(&group), &show_fields(&params)),
    ))
}

/// `PUT /v2.0/security-groups/{id}`.
#[utoipa::path(put, path = "/v2.0/security-groups/{security_group_id}", params(("security_group_id" = String, Path, description = "The security group id")), request_body = SecurityGroupBody, responses((status = OK, description = "Success", body = SecurityGroupBody), crate::openapi::NeutronFaults))]
async fn update_group(
    State(state): State<AppState>,
    net: NetAuth,
    Path(group_id): Path<String>,
    bytes: Bytes,
) -> NetResult<Response> {
    net.require_writer("update_security_group")?;
    let mut attrs = Attrs::parse(&bytes, "security_group")?;
    attrs.refuse(&["id", "tenant_id", "project_id", "security_group_rules"])?;
    let update = SecurityGroupUpdate {
        name: attrs.string("name")?,
        description: attrs.string("description")?,
        stateful: attrs.boolean("stateful")?,
    };
    attrs.finish()?;
    let group = state
        .network
        .update_security_group(&net.caller, &id(group_id), &update)
        .await?;
    Ok(reply(StatusCode::OK, "security_group", group_json(&group)))
}

/// `DELETE /v2.0/security-groups/{id}`: 409 while a port uses it; the
/// `default` group by admins only.
#[utoipa::path(delete, path = "/v2.0/security-groups/{security_group_id}", params(("security_group_id" = String, Path, description = "The security group id")), responses((status = NO_CONTENT, description = "Deleted"), crate::openapi::NeutronFaults))]
async fn delete_group(
    State(state): State<AppState>,
    net: NetAuth,
    Path(group_id): Path<String>,
) -> NetResult<StatusCode> {
    net.require_writer("delete_security_group")?;
    state
        .network
        .delete_security_group(&net.caller, &id(group_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v2.0/security-group-rules`.
#[utoipa::path(get, path = "/v2.0/security-group-rules", responses((status = OK, description = "Success", body = SecurityGroupRuleList), crate::openapi::NeutronFaults))]
async fn list_rules(
    State(state): State<AppState>,
    net: NetAuth,
    Query(params): Pairs,
) -> NetResult<Response> {
    let query = ListQuery::parse(&params)?;
    let page = state
        .network
        .list_security_group_rules(&net.caller, &query.listing)
        .await?;
    Ok(query.page_body(
        &state,
        "security_group_rules",
        "security-group-rules",
        &page,
        |item| &item.id,
        rule_json,
    ))
}

/// `GET /v2.0/security-group-rules.json`.
#[utoipa::path(get, path = "/v2.0/security-group-rules.json", responses((status = OK, description = "Success", body = SecurityGroupRuleList), crate::openapi::NeutronFaults))]
async fn list_rules_json(
    state: State<AppState>,
    net: NetAuth,
    params: Pairs,
) -> NetResult<Response> {
    list_rules(state, net, params).await
}

/// A rule's protocol: a name, a number (sent as a number or a string), or
/// none.
fn protocol(attrs: &mut Attrs) -> NetResult<Option<String>> {
    match attrs.value("protocol") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(other) => Err(NeutronFault(ApiError::bad_request(format!(
            "Security group rule protocol {other} not supported."
        )))),
    }
}

/// `POST /v2.0/security-group-rules`.
#[utoipa::path(post, path = "/v2.0/security-group-rules", request_body = SecurityGroupRuleBody, responses((status = CREATED, description = "Created", body = SecurityGroupRuleBody), crate::openapi::NeutronFaults))]
async fn create_rule(
    State(state): State<AppState>,
    net: NetAuth,
    bytes: Bytes,
) -> NetResult<Response> {
    net.require_writer("create_security_group_rule")?;
    let mut attrs = Attrs::parse(&bytes, "security_group_rule")?;
    let required = |value: Option<String>, key: &str| {
        value.ok_or_else(|| {
            NeutronFault(ApiError::bad_request(format!(
                "Failed to parse request. Required attribute '{key}' not specified"
            )))
        })
    };
    // The rule belongs to its group's project: an owner in the body is
    // checked against the caller as for other resources, then the group's
    // project applies.
    let owner = attrs.owner()?;
    if let Some(owner) = owner
        && owner != net.caller.project_id
        && !net.is_admin()
    {
        return Err(NeutronFault(ApiError::bad_request(
            "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges",
        )));
    }
    let new = NewSecurityGroupRule {
        security_group_id: required(attrs.string("security_group_id")?, "security_group_id")?,
        direction: required(attrs.string("direction")?, "direction")?,
        ethertype: attrs.string("ethertype")?,
        protocol: protocol(&mut attrs)?,
        port_range_min: attrs.nullable_int("port_range_min")?.flatten(),
        port_range_max: attrs.nullable_int("port_range_max")?.flatten(),
        remote_ip_prefix: attrs.nullable_string("remote_ip_prefix")?.flatten(),
        remote_group_id: attrs.nullable_string("remote_group_id")?.flatten(),
        description: attrs.string("description")?,
    };
    if attrs
        .nullable_string("remote_address_group_id")?
        .flatten()
        .is_some()
    {
        return Err(NeutronFault(ApiError::bad_request(
            "Address groups are not served: remote_address_group_id",
        )));
    }
    attrs.finish()?;
    let rule = state
        .network
        .create_security_group_rule(&net.caller, &new)
        .await?;
    Ok(reply(
        StatusCode::CREATED,
        "security_group_rule",
        rule_json(&rule),
    ))
}

/// `POST /v2.0/security-group-rules.json`.
#[utoipa::path(post, path = "/v2.0/security-group-rules.json", request_body = SecurityGroupRuleBody, responses((status = CREATED, description = "Created", body = SecurityGroupRuleBody), crate::openapi::NeutronFaults))]
async fn create_rule_json(
    state: State<AppState>,
    net: NetAuth,
    bytes: Bytes,
) -> NetResult<Response> {
    create_rule(state, net, bytes).await
}

/// `GET /v2.0/security-group-rules/{id}`.
#[utoipa::path(get, path = "/v2.0/security-group-rules/{rule_id}", params(("rule_id" = String, Path, description = "The rule id")), responses((status = OK, description = "Success", body = SecurityGroupRuleBody), crate::openapi::NeutronFaults))]
async fn show_rule(
    State(state): State<AppState>,
    net: NetAuth,
    Path(rule_id): Path<String>,
    Query(params): Pairs,
) -> NetResult<Response> {
    let rule = state
        .network
        .get_security_group_rule(&net.caller, &id(rule_id))
        .await?;
    Ok(reply(
        StatusCode::OK,
        "security_group_rule",
        render(rule_json(&rule), &show_fields(&params)),
    ))
}

/// `DELETE /v2.0/security-group-rules/{id}`.
#[utoipa::path(delete, path = "/v2.0/security-group-rules/{rule_id}", params(("rule_id" = String, Path, description = "The rule id")), responses((status = NO_CONTENT, description = "Deleted"), crate::openapi::NeutronFaults))]
async fn delete_rule(
    State(state): State<AppState>,
    net: NetAuth,
    Path(rule_id): Path<String>,
) -> NetResult<StatusCode> {
    net.require_writer("delete_security_group_rule")?;
    state
        .network
        .delete_security_group_rule(&net.caller, &id(rule_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
