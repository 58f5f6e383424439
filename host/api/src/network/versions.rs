//! `GET /network` and `/network/` (the version document), `GET
//! /network/v2.0/` (the resources), and the extensions this subset serves
//! (`GET /network/v2.0/extensions`, `/extensions/{alias}`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{NETWORK_VERSION, NetAuth, NetResult, NeutronFault, Path, id, reply};
use crate::AppState;
use crate::fault::ApiError;

crate::envelope!(
    /// `{"versions": …}`
    NetworkVersions, "versions", Array
);
crate::envelope!(
    /// `{"resources": …}`
    NetworkResources, "resources", Array
);
crate::envelope!(
    /// `{"extensions": …}`
    NetworkExtensionList, "extensions", Array
);
crate::envelope!(
    /// `{"extension": …}`
    NetworkExtension, "extension", Object
);

/// An extension: alias, name, description, last change.
pub struct Extension {
    /// Neutron's alias.
    pub alias: &'static str,
    /// Its name.
    pub name: &'static str,
    /// What it adds.
    pub description: &'static str,
    /// When Neutron last changed it.
    pub updated: &'static str,
}

const fn extension(
    alias: &'static str,
    name: &'static str,
    description: &'static str,
    updated: &'static str,
) -> Extension {
    Extension {
        alias,
        name,
        description,
        updated,
    }
}

/// The extensions served: each one's attributes or resources are answered
/// by these routes, and nothing else is listed.
pub const EXTENSIONS: [Extension; 20] = [
    extension(
        "allowed-address-pairs",
        "Allowed Address Pairs",
        "Provides allowed address pairs",
        "2013-07-23T10:00:00-00:00",
    ),
    extension(
        "auto-allocated-topology",
        "Auto Allocated Topology Services",
        "Auto Allocated Topology Services.",
        "2016-01-01T00:00:00-00:00",
    ),
    extension(
        "binding",
        "Port Binding",
        "Expose port bindings of a virtual port to external application",
        "2014-02-03T10:00:00-00:00",
    ),
    extension(
        "external-net",
        "Neutron external network",
        "Adds external network attribute to network resource.",
        "2013-01-14T10:00:00-00:00",
    ),
    extension(
        "filter-validation",
        "Filter parameters validation",
        "Provides validation on filter parameters.",
        "2018-03-21T10:00:00-00:00",
    ),
    extension(
        "network-mtu",
        "Network MTU",
        "Provides MTU attribute for a network resource.",
        "2015-03-25T10:00:00-00:00",
    ),
    extension(
        "network-mtu-writable",
        "Network MTU (writable)",
        "Provides a writable MTU attribute for a network resource.",
        "2017-07-12T00:00:00-00:00",
    ),
    extension(
        "pagination",
        "Pagination support",
        "Extension that indicates that pagination is enabled.",
        "2016-06-12T00:00:00-00:00",
    ),
    extension(
        "port-security",
        "Port Security",
        "Provides port security",
        "2012-07-23T10:00:00-00:00",
    ),
    extension(
        "project-id",
        "project_id field enabled",
        "Extension that indicates that project_id field is enabled.",
        "2016-09-09T09:09:09-09:09",
    ),
    extension(
        "provider",
        "Provider Network",
        "Expose mapping of virtual networks to physical networks",
        "2012-09-07T10:00:00-00:00",
    ),
    extension(
        "quota-check-limit",
        "Quota engine limit check",
        "Support for checking the resource usage before applying a new quota limit",
        "2023-05-24T10:00:00-00:00",
    ),
    extension(
        "quota_details",
        "Quota details management support",
        "Expose functions for quotas usage statistics per project",
        "2017-02-10T10:00:00-00:00",
    ),
    extension(
        "quotas",
        "Quota management support",
        "Expose functions for quotas management per project",
        "2012-07-29T10:00:00-00:00",
    ),
    extension(
        "security-group",
        "security-group",
        "The security groups extension.",
        "2012-10-05T10:00:00-00:00",
    ),
    extension(
        "sorting",
        "Sorting support",
        "Extension that indicates that sorting is enabled.",
        "2016-06-12T00:00:00-00:00",
    ),
    extension(
        "standard-attr-description",
        "standard-attr-description",
        "Extension to add descriptions to standard attributes",
        "2016-02-10T10:00:00-00:00",
    ),
    extension(
        "standard-attr-revisions",
        "Resource revision numbers",
        "This extension will display the revision number of neutron resources.",
        "2016-04-11T10:00:00-00:00",
    ),
    extension(
        "standard-attr-timestamp",
        "Resource timestamps",
        "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.",
        "2016-09-12T10:00:00-00:00",
    ),
    extension(
        "stateful-security-group",
        "Stateful security group",
        "Indicates if the security group is stateful or not",
        "2019-11-26T09:00:00-00:00",
    ),
];

/// The collections of `GET /v2.0/`: (resource, collection path).
const RESOURCES: [(&str, &str); 5] = [
    ("network", "networks"),
    ("subnet", "subnets"),
    ("port", "ports"),
    ("security_group", "security-groups"),
    ("security_group_rule", "security-group-rules"),
];

/// The version routes and the extensions.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(versions))
        .routes(routes!(version_resources))
        .routes(routes!(version_resources_without_slash))
        .routes(routes!(list_extensions))
        .routes(routes!(list_extensions_json))
        .routes(routes!(show_extension))
}

/// The version document of `GET /network` and `GET /network/`.
pub fn versions_document(state: &AppState) -> Response {
    let href = format!(
        "{}/network/{NETWORK_VERSION}/",
        state.config.public_base_url()
    );
    axum::Json(json!({"versions": [{
        "id": NETWORK_VERSION,
        "status": "CURRENT",
        "links": [{"rel": "self", "href": href}],
    }]}))
    .into_response()
}

/// `GET /network`: v2.0, CURRENT.
#[utoipa::path(get, path = "/", security(()), responses((status = OK, description = "The versions", body = NetworkVersions)))]
async fn versions(State(state): State<AppState>) -> Response {
    versions_document(&state)
}

/// `GET /network/` (the top-level router holds it: a nested router's `/`
/// is the path without its slash).
#[utoipa::path(get, path = "/network/", security(()), responses((status = OK, description = "The versions", body = NetworkVersions)))]
pub async fn versions_with_slash(State(state): State<AppState>) -> Response {
    versions_document(&state)
}

/// `GET /network/v2.0/`: the collections served.
#[utoipa::path(get, path = "/v2.0/", security(()), responses((status = OK, description = "The resources", body = NetworkResources)))]
async fn version_resources(State(state): State<AppState>) -> Response {
    resources_document(&state)
}

/// `GET /network/v2.0`: the same.
#[utoipa::path(get, path = "/v2.0", security(()), responses((status = OK, description = "The resources", body = NetworkResources)))]
async fn version_resources_without_slash(State(state): State<AppState>) -> Response {
    resources_document(&state)
}

/// The collections served, with their links.
fn resources_document(state: &AppState) -> Response {
    let base = format!(
        "{}/network/{NETWORK_VERSION}",
        state.config.public_base_url()
    );
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|(name, collection)| {
            json!({
                "name": name,
                "collection": collection.replace('-', "_"),
                "links": [{"rel": "self", "href": format!("{base}/{collection}")}],
            })
        })
        .collect();
    axum::Json(json!({ "resources": resources })).into_response()
}

fn extension_json(extension: &Extension) -> Value {
    json!({
        "alias": extension.alias,
        "name": extension.name,
        "description": extension.description,
        "updated": extension.updated,
        "links": [],
    })
}

/// `GET /v2.0/extensions`: exactly what is served.
#[utoipa::path(get, path = "/v2.0/extensions", responses((status = OK, description = "Success", body = NetworkExtensionList), crate::openapi::NeutronFaults))]
async fn list_extensions(_caller: NetAuth) -> NetResult<Response> {
    Ok(reply(
        StatusCode::OK,
        "extensions",
        EXTENSIONS.iter().map(extension_json).collect(),
    ))
}

/// `GET /v2.0/extensions.json`.
#[utoipa::path(get, path = "/v2.0/extensions.json", responses((status = OK, description = "Success", body = NetworkExtensionList), crate::openapi::NeutronFaults))]
async fn list_extensions_json(caller: NetAuth) -> NetResult<Response> {
    list_extensions(caller).await
}

/// `GET /v2.0/extensions/{alias}`.
#[utoipa::path(get, path = "/v2.0/extensions/{alias}", params(("alias" = String, Path, description = "The extension's alias")), responses((status = OK, description = "Success", body = NetworkExtension), crate::openapi::NeutronFaults))]
async fn show_extension(_caller: NetAuth, Path(alias): Path<String>) -> NetResult<Response> {
    let alias = id(alias);
    let extension = EXTENSIONS
        .iter()
        .find(|extension| extension.alias == alias)
        .ok_or_else(|| {
            NeutronFault(ApiError::not_found(format!(
                "Extension with alias {alias} does not exist"
            )))
        })?;
    Ok(reply(
        StatusCode::OK,
        "extension",
        extension_json(extension),
    ))
}
