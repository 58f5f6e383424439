//! `/v2.0/quotas`: the network limits of a project (`networks`, `subnets`,
//! `ports`, `security_groups`, `security_group_rules`), their usage
//! (`/details`), the defaults (`/default`), and their administration (PUT,
//! DELETE, admins). What `openstack quota show/set/delete` and
//! openstacksdk's `get_quota`/`update_quota` call.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{NetAuth, NetResult, NeutronFault, Path, id, invalid_attribute, parse_body, reply};
use crate::AppState;
use crate::fault::{ApiError, FaultStyle};
use novum_network::{QuotaDetail, QuotaResource};

crate::envelope!(
    /// `{"quota": …}`
    NetworkQuotaBody, "quota", Object
);
crate::envelope!(
    /// `{"quotas": …}`
    NetworkQuotaList, "quotas", Array
);

/// The quota routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, update, reset))
        .routes(routes!(details))
        .routes(routes!(defaults))
}

fn limits_json(limits: &BTreeMap<QuotaResource, i64>) -> Map<String, Value> {
    limits
        .iter()
        .map(|(resource, limit)| (resource.name().to_string(), json!(limit)))
        .collect()
}

/// `GET /v2.0/quotas` (admins): the projects with limits of their own.
#[utoipa::path(get, path = "/v2.0/quotas", responses((status = OK, description = "Success", body = NetworkQuotaList), crate::openapi::NeutronFaults))]
async fn list(State(state): State<AppState>, net: NetAuth) -> NetResult<Response> {
    let projects = state.network.quota_projects(&net.caller).await?;
    let quotas: Vec<Value> = projects
        .iter()
        .map(|(project, limits)| {
            let mut body = limits_json(limits);
            body.insert("project_id".to_string(), json!(project));
            body.insert("tenant_id".to_string(), json!(project));
            Value::Object(body)
        })
        .collect();
    Ok(reply(StatusCode::OK, "quotas", Value::Array(quotas)))
}

/// `GET /v2.0/quotas/{project_id}`: the project itself or an admin.
#[utoipa::path(get, path = "/v2.0/quotas/{project_id}", params(("project_id" = String, Path, description = "The project id")), responses((status = OK, description = "Success", body = NetworkQuotaBody), crate::openapi::NeutronFaults))]
async fn show(
    State(state): State<AppState>,
    net: NetAuth,
    Path(project_id): Path<String>,
) -> NetResult<Response> {
    let limits = state
        .network
        .quota_limits(&net.caller, &id(project_id))
        .await?;
    Ok(reply(
        StatusCode::OK,
        "quota",
        Value::Object(limits_json(&limits)),
    ))
}

/// `GET /v2.0/quotas/{project_id}/details`: limit, used, reserved per
/// resource.
#[utoipa::path(get, path = "/v2.0/quotas/{project_id}/details", params(("project_id" = String, Path, description = "The project id")), responses((status = OK, description = "Success", body = NetworkQuotaBody), crate::openapi::NeutronFaults))]
async fn details(
    State(state): State<AppState>,
    net: NetAuth,
    Path(project_id): Path<String>,
) -> NetResult<Response> {
    let details = state
        .network
        .quota_details(&net.caller, &project_id)
        .await?;
    let body: Map<String, Value> = details
        .iter()
        .map(
            |(
                resource,
                QuotaDetail {
                    limit,
                    used,
                    reserved,
                },
            )| {
                (
                    resource.name().to_string(),
                    json!({"limit": limit, "used": used, "reserved": reserved}),
                )
            },
        )
        .collect();
    Ok(reply(StatusCode::OK, "quota", Value::Object(body)))
}

/// `GET /v2.0/quotas/{project_id}/default`: the configured defaults.
#[utoipa::path(get, path = "/v2.0/quotas/{project_id}/default", params(("project_id" = String, Path, description = "The project id")), responses((status = OK, description = "Success", body = NetworkQuotaBody), crate::openapi::NeutronFaults))]
async fn defaults(
    State(state): State<AppState>,
    net: NetAuth,
    Path(project_id): Path<String>,
) -> NetResult<Response> {
    if !net.auth.may_see_project(&project_id) {
        return Err(novum_network::NetworkError::NotAuthorized.into());
    }
    Ok(reply(
        StatusCode::OK,
        "quota",
        Value::Object(limits_json(&state.network.quota_defaults())),
    ))
}

/// `PUT /v2.0/quotas/{project_id}` (admins): `{"quota": {"network": 10,
/// …}}`; with `"check_limit": true` a limit below the project's usage is
/// refused (`force` is taken and changes nothing).
#[utoipa::path(put, path = "/v2.0/quotas/{project_id}", params(("project_id" = String, Path, description = "The project id")), request_body = NetworkQuotaBody, responses((status = OK, description = "Success", body = NetworkQuotaBody), crate::openapi::NeutronFaults))]
async fn update(
    State(state): State<AppState>,
    net: NetAuth,
    Path(project_id): Path<String>,
    bytes: Bytes,
) -> NetResult<Response> {
    let project_id = id(project_id);
    if !net.is_admin() {
        return Err(novum_network::NetworkError::NotAuthorized.into());
    }
    let body: Value = parse_body(&bytes)?;
    let Some(Value::Object(quota)) = body.get("quota") else {
        return Err(NeutronFault(ApiError::bad_request(
            "Unable to find 'quota' in request body",
        )));
    };
    let mut limits = Vec::new();
    let mut check_limit = false;
    let mut unknown = Vec::new();
    for (key, value) in quota {
        let number = || {
            match value {
                Value::Number(number) => number.as_i64(),
                Value::String(text) => text.trim().parse().ok(),
                _ => None,
            }
            .ok_or_else(|| invalid_attribute(key, format!("'{value}' is not an integer")))
        };
        let flag = || {
            value
                .as_bool()
                .or_else(|| {
                    value
                        .as_str()
                        .and_then(|text| novum_network::listing::parse_bool(key, text).ok())
                })
                .ok_or_else(|| {
                    invalid_attribute(key, format!("'{value}' cannot be converted to boolean"))
                })
        };
        match key.as_str() {
            "check_limit" => check_limit = flag()?,
            "force" => {
                flag()?;
            }
            // openstacksdk sends the project back as the resource's id.
            "project_id" | "tenant_id" | "id" => {}
            name => match QuotaResource::from_name(name) {
                Some(resource) => limits.push((resource, number()?)),
                None => unknown.push(name.to_string()),
            },
        }
    }
    if !unknown.is_empty() {
        return Err(NeutronFault(ApiError::bad_request(format!(
            "Unrecognized attribute(s) '{}'",
            unknown.join(", ")
        ))));
    }
    if check_limit {
        let usage = state
            .network
            .quota_details(&net.caller, &project_id)
            .await?;
        for (resource, limit) in &limits {
            let used = usage.get(resource).map_or(0, |detail| detail.used);
            if *limit >= 0 && *limit < used {
                return Err(NeutronFault(
                    ApiError::bad_request(format!(
                        "Quota limit {limit} for {} must be greater than or equal to already used {used}",
                        resource.name()
                    ))
                    .styled(FaultStyle::Neutron(Some("InvalidQuotaValue"))),
                ));
            }
        }
    }
    let after = state
        .network
        .set_quotas(&net.caller, &project_id, &limits)
        .await?;
    Ok(reply(
        StatusCode::OK,
        "quota",
        Value::Object(limits_json(&after)),
    ))
}

/// `DELETE /v2.0/quotas/{project_id}` (admins): back to the defaults.
#[utoipa::path(delete, path = "/v2.0/quotas/{project_id}", params(("project_id" = String, Path, description = "The project id")), responses((status = NO_CONTENT, description = "Reset"), crate::openapi::NeutronFaults))]
async fn reset(
    State(state): State<AppState>,
    net: NetAuth,
    Path(project_id): Path<String>,
) -> NetResult<StatusCode> {
    state
        .network
        .reset_quotas(&net.caller, &id(project_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
