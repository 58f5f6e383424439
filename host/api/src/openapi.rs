//! The OpenAPI 3.1 document of every route novum answers, served at
//! [`OPENAPI_PATH`]. It is generated, never written by hand: every handler
//! carries a `#[utoipa::path]` attribute, and each module's `routes()` builds
//! an [`OpenApiRouter`](utoipa_axum::router::OpenApiRouter) from
//! `utoipa_axum::routes!(…)`, so the axum router and the document come from
//! one list of handlers and cannot drift apart.
//!
//! Response bodies: handlers that answer a typed value document that type;
//! the many that build their JSON with `json!` document the envelope they
//! always answer (`{"flavor": {…}}`, `{"servers": […]}`) through
//! [`envelope!`]. Every error is documented as `4XX` (or the one 5xx a handler
//! answers on purpose) with the fault body of its API: [`NovaFault`] for
//! compute, image and novum's own endpoints, [`KeystoneFault`] for identity,
//! [`NeutronFault`] for the network API, the agent RPC's
//! [`novum_wire::ErrorBody`].

use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr, Response};
use utoipa::{IntoResponses, PartialSchema, ToSchema};

use super::fault::ApiError;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/novum/v1/openapi.json";

/// The name of the `X-Auth-Token` security scheme in the document.
pub const TOKEN_SCHEME: &str = "X-Auth-Token";

/// The name of the agent RPC's bearer security scheme in the document.
pub const AGENT_SCHEME: &str = "AgentToken";

/// The document's title.
const TITLE: &str = "novum";

/// `GET /novum/v1/openapi.json`: this document (serialized at its first
/// request, then kept).
#[utoipa::path(
    get,
    path = "/novum/v1/openapi.json",
    tag = "novum",
    security(()),
    responses((status = OK, description = "The OpenAPI 3.1 document of every route novum answers", content_type = "application/json", body = Object)),
)]
pub async fn document() -> impl IntoResponse {
    static JSON: OnceLock<Bytes> = OnceLock::new();
    let json = JSON.get_or_init(|| {
        serde_json::to_vec(&crate::openapi_document())
            .unwrap_or_else(|error| {
                tracing::error!(%error, "cannot serialize the OpenAPI document");
                b"{}".to_vec()
            })
            .into()
    });
    ([(header::CONTENT_TYPE, "application/json")], json.clone())
}

/// Completes the document the router built: title and version, the token
/// security scheme (required by every operation that does not say otherwise).
pub fn finish(mut document: OpenApi) -> OpenApi {
    document.info.title = TITLE.to_string();
    document.info.version = env!("CARGO_PKG_VERSION").to_string();
    document.info.description = Some(
        "The OpenStack Compute API v2.1, the Identity v3, Image v2 and Network v2.0 subsets, \
         the agent RPC and novum's own endpoints, generated from the handlers."
            .to_string(),
    );
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        TOKEN_SCHEME,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Auth-Token"))),
    );
    components.add_security_scheme(
        AGENT_SCHEME,
        SecurityScheme::Http(
            utoipa::openapi::security::HttpBuilder::new()
                .scheme(utoipa::openapi::security::HttpAuthScheme::Bearer)
                .description(Some(
                    "The agent RPC: the enrollment token to register, then the agent's own token",
                ))
                .build(),
        ),
    );
    for (path, item) in document.paths.paths.iter_mut() {
        for (method, operation) in [
            ("get", &mut item.get),
            ("post", &mut item.post),
            ("put", &mut item.put),
            ("patch", &mut item.patch),
            ("delete", &mut item.delete),
        ] {
            if let Some(operation) = operation {
                operation.operation_id = Some(operation_id(method, path));
            }
        }
    }
    document.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
        TOKEN_SCHEME,
        Vec::<String>::new(),
    )]);
    document
}

/// A unique operation id from the method and the path (handler names repeat
/// across modules: `index`, `show`, …): `get /compute/v2.1/flavors/{id}` →
/// `get_compute_v2.1_flavors_id`; a trailing slash adds `_slash`.
fn operation_id(method: &str, path: &str) -> String {
    let segments = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| segment.trim_start_matches('{').trim_end_matches('}'));
    let trailing_slash = (path.len() > 1 && path.ends_with('/')).then_some("slash");
    std::iter::once(method)
        .chain(segments)
        .chain(trailing_slash)
        .collect::<Vec<_>>()
        .join("_")
}

/// Every (method, path) the document lists, for tests and tools.
pub fn operations(document: &OpenApi) -> Vec<(String, String)> {
    let mut operations = Vec::new();
    for (path, item) in &document.paths.paths {
        let methods: [(&str, &Option<Operation>); 5] = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, operation) in methods {
            if operation.is_some() {
                operations.push((method.to_string(), path.clone()));
            }
        }
    }
    operations
}

/// The schema of one fault's details: `{"code": 404, "message": "…"}`
/// (`retryAfter` with 413 over-limit faults).
fn nova_fault_details() -> Schema {
    ObjectBuilder::new()
        .property("code", ObjectBuilder::new().schema_type(Type::Integer))
        .required("code")
        .property("message", ObjectBuilder::new().schema_type(Type::String))
        .required("message")
        .property("retryAfter", ObjectBuilder::new().schema_type(Type::String))
        .into()
}

/// Nova's fault body: one key naming the fault (`badRequest`,
/// `itemNotFound`, …) holding its code and message.
pub struct NovaFault;

impl PartialSchema for NovaFault {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some(
                "Nova's fault: {\"<faultName>\": {\"code\": …, \"message\": …}}",
            ))
            .additional_properties(Some(nova_fault_details()))
            .min_properties(Some(1))
            .max_properties(Some(1))
            .into()
    }
}

impl ToSchema for NovaFault {}

/// Keystone's error details.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct KeystoneErrorDetails {
    /// The HTTP status.
    code: u16,
    /// The status' reason phrase.
    title: String,
    /// What went wrong.
    message: String,
}

/// Keystone's error body: `{"error": {"code", "title", "message"}}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct KeystoneFault {
    /// The error.
    #[schema(inline)]
    error: KeystoneErrorDetails,
}

/// The responses of a fault type: `4XX` with its body.
fn fault_responses<T: ToSchema>(description: &str) -> BTreeMap<String, RefOr<Response>> {
    BTreeMap::from([(
        "4XX".to_string(),
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(T::schema())).build(),
            )
            .into(),
    )])
}

impl IntoResponses for ApiError {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        fault_responses::<NovaFault>("A client error, as a Nova fault")
    }
}

/// Marker for the identity API's errors (Keystone's error body).
pub struct KeystoneFaults;

impl IntoResponses for KeystoneFaults {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        fault_responses::<KeystoneFault>("A client error, as a Keystone error")
    }
}

/// Neutron's error details.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct NeutronErrorDetails {
    /// Neutron's exception name (`NetworkNotFound`, `HTTPBadRequest`, ...).
    r#type: String,
    /// What went wrong.
    message: String,
    /// Always empty.
    detail: String,
}

/// Neutron's error body: `{"NeutronError": {"type", "message", "detail"}}`.
#[derive(ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct NeutronFault {
    /// The error.
    #[schema(inline)]
    NeutronError: NeutronErrorDetails,
}

/// Marker for the network API's errors (Neutron's error body).
pub struct NeutronFaults;

impl IntoResponses for NeutronFaults {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        fault_responses::<NeutronFault>("A client error, as a Neutron error")
    }
}

/// The agent RPC's error body.
pub struct RpcFault;

impl PartialSchema for RpcFault {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .property("error", ObjectBuilder::new().schema_type(Type::String))
            .required("error")
            .into()
    }
}

impl ToSchema for RpcFault {}

impl IntoResponses for RpcFault {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        fault_responses::<RpcFault>("A client error, as the agent RPC's error body")
    }
}

/// An object with exactly one key: an action named by its key
/// (`{"reboot": {…}}`), an extra spec (`{"hw:cpu_policy": "dedicated"}`).
pub struct SingleKeyObject;

impl PartialSchema for SingleKeyObject {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .min_properties(Some(1))
            .max_properties(Some(1))
            .into()
    }
}

impl ToSchema for SingleKeyObject {}

/// A body that is an object with one required key `$key` holding `$kind`
/// (`object`, `array` or `string`): the envelope a `json!` handler always
/// answers. The inner shape is left open; the envelope is what is promised.
#[macro_export]
macro_rules! envelope {
    ($(#[$doc:meta])* $name:ident, $key:literal, $kind:ident) => {
        $(#[$doc])*
        pub struct $name;

        impl ::utoipa::PartialSchema for $name {
            fn schema() -> ::utoipa::openapi::RefOr<::utoipa::openapi::schema::Schema> {
                $crate::openapi::envelope_schema($key, $crate::openapi::Kind::$kind)
            }
        }

        impl ::utoipa::ToSchema for $name {}
    };
}

/// What an envelope's key holds.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
    /// A string.
    String,
}

/// The schema [`envelope!`] documents.
pub fn envelope_schema(key: &str, kind: Kind) -> RefOr<Schema> {
    let inner: Schema = match kind {
        Kind::Object => ObjectBuilder::new().schema_type(Type::Object).into(),
        Kind::Array => utoipa::openapi::schema::ArrayBuilder::new().into(),
        Kind::String => ObjectBuilder::new().schema_type(Type::String).into(),
    };
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(key, inner)
        .required(key)
        .into()
}
