//! Nova's metadata API under `/metadata`, as guests reach it at
//! `http://169.254.169.254/` through the metadata proxy of their compute
//! host (the agent's `metadata_proxy`), which forwards `/<path>` to
//! `/metadata/<path>`.
//!
//! The proxy names the instance as neutron's metadata agent does:
//! `X-Instance-ID`, `X-Tenant-ID` and `X-Instance-ID-Signature`, the hex
//! HMAC-SHA256 of the instance id under the shared secret
//! ([`novum_wire::metadata_signature`]; `[metadata] shared_secret`, handed to
//! agents when they register). A missing instance or tenant header is 400,
//! a missing or wrong signature 403, an instance that does not exist or is
//! not the tenant's 404 (Nova's answers). The documents are those of
//! [`novum_compute::instance_metadata`], the generator the config drive
//! uses too; directories answer their entries one a line (`text/plain`).
//! `openstack/<version>/password`: GET answers the password the guest
//! posted ('' before), POST stores it once (409 when one is set, 400 over
//! Nova's 1020 bytes).
//!
//! Errors are plain text in webob's words (`404 Not Found\n\nThe resource
//! could not be found.\n\n   `), as Nova's metadata service answers.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use novum_compute::conductor::model::Instance;
use novum_compute::instance_metadata::{Entry, InstanceMetadata};
use novum_compute::store::instances;
use novum_wire::metadata_headers;

use crate::AppState;

/// The longest password a guest may post: Nova's 4 chunks of 255 bytes.
pub const MAX_PASSWORD_BYTES: usize = 4 * 255;

/// The metadata API's routes (mounted under `/metadata`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(root))
        .routes(routes!(document, post_document))
}

/// An answer of the metadata API in its own (plain text) shape.
struct MetadataError {
    status: StatusCode,
    explanation: String,
}

impl MetadataError {
    fn new(status: StatusCode, explanation: impl Into<String>) -> Self {
        MetadataError {
            status,
            explanation: explanation.into(),
        }
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "The resource could not be found.")
    }

    fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "Access was denied to this resource.")
    }

    fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "metadata service error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unknown error has occurred. Please try your request again.",
        )
    }
}

impl IntoResponse for MetadataError {
    fn into_response(self) -> Response {
        let reason = self.status.canonical_reason().unwrap_or("Error");
        let body = format!(
            "{} {reason}\n\n{}\n\n   ",
            self.status.as_u16(),
            self.explanation
        );
        text(self.status, "text/plain; charset=UTF-8", body.into_bytes())
    }
}

fn text(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `GET /metadata`: the EC2 versions and `latest`, one a line.
#[utoipa::path(get, path = "/", security(()),
    params(
        ("X-Instance-ID" = String, Header, description = "The instance (set by the metadata proxy)"),
        ("X-Tenant-ID" = String, Header, description = "Its project (set by the metadata proxy)"),
        ("X-Instance-ID-Signature" = String, Header, description = "Hex HMAC-SHA256 of the instance id under the shared secret"),
    ),
    responses(
        (status = OK, description = "A listing, one entry a line", content_type = "text/plain", body = String),
        (status = BAD_REQUEST, description = "A header is missing", content_type = "text/plain", body = String),
        (status = FORBIDDEN, description = "The signature is missing or wrong", content_type = "text/plain", body = String),
        (status = NOT_FOUND, description = "No such instance of that tenant", content_type = "text/plain", body = String),
    ))]
async fn root(State(state): State<AppState>, headers: HeaderMap) -> Response {
    answer(&state, &headers, Method::GET, "", Bytes::new()).await
}

/// `GET /metadata/{path}`: a document or a directory of the instance's
/// metadata (OpenStack `openstack/…`, EC2 `<version>/meta-data/…`).
#[utoipa::path(get, path = "/{*path}", security(()),
    params(
        ("*path" = String, Path, description = "The path below the metadata root (`openstack/latest/meta_data.json`, `latest/meta-data/instance-id`)"),
        ("X-Instance-ID" = String, Header, description = "The instance (set by the metadata proxy)"),
        ("X-Tenant-ID" = String, Header, description = "Its project (set by the metadata proxy)"),
        ("X-Instance-ID-Signature" = String, Header, description = "Hex HMAC-SHA256 of the instance id under the shared secret"),
    ),
    responses(
        (status = OK, description = "The document, or a listing one entry a line", content(
            (String = "text/plain"),
            (Object = "application/json"),
        )),
        (status = BAD_REQUEST, description = "A header is missing", content_type = "text/plain", body = String),
        (status = FORBIDDEN, description = "The signature is missing or wrong", content_type = "text/plain", body = String),
        (status = NOT_FOUND, description = "No such path, or no such instance of that tenant", content_type = "text/plain", body = String),
    ))]
async fn document(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(&state, &headers, Method::GET, &path, Bytes::new()).await
}

/// `POST /metadata/openstack/{version}/password`: the guest stores its
/// (encrypted) password, once.
#[utoipa::path(post, path = "/{*path}", security(()),
    params(
        ("*path" = String, Path, description = "`openstack/<version>/password`"),
        ("X-Instance-ID" = String, Header, description = "The instance (set by the metadata proxy)"),
        ("X-Tenant-ID" = String, Header, description = "Its project (set by the metadata proxy)"),
        ("X-Instance-ID-Signature" = String, Header, description = "Hex HMAC-SHA256 of the instance id under the shared secret"),
    ),
    request_body(content = String, content_type = "text/plain"),
    responses(
        (status = OK, description = "Stored", content_type = "text/plain", body = String),
        (status = BAD_REQUEST, description = "A header is missing, the path takes no POST, or the password is too long", content_type = "text/plain", body = String),
        (status = FORBIDDEN, description = "The signature is missing or wrong", content_type = "text/plain", body = String),
        (status = NOT_FOUND, description = "No such path, or no such instance of that tenant", content_type = "text/plain", body = String),
        (status = CONFLICT, description = "A password is set already", content_type = "text/plain", body = String),
    ))]
async fn post_document(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(&state, &headers, Method::POST, &path, body).await
}

async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    method: Method,
    path: &str,
    body: Bytes,
) -> Response {
    match serve(state, headers, method, path, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn serve(
    state: &AppState,
    headers: &HeaderMap,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<Response, MetadataError> {
    let instance = identify(state, headers).await?;
    let metadata: InstanceMetadata = state
        .conductor
        .instance_metadata(&instance)
        .await
        .map_err(MetadataError::internal)?;
    let entry = metadata.lookup(path).ok_or_else(MetadataError::not_found)?;
    if method == Method::POST && entry != Entry::Password {
        return Err(MetadataError::new(
            StatusCode::BAD_REQUEST,
            "The server could not comply with the request since it is either malformed or otherwise incorrect.",
        ));
    }
    Ok(match entry {
        Entry::Listing(listing) => text(
            StatusCode::OK,
            "text/plain; charset=UTF-8",
            listing.into_bytes(),
        ),
        Entry::Json(document) => text(StatusCode::OK, "application/json", document),
        Entry::Text(document) => text(StatusCode::OK, "text/plain; charset=UTF-8", document),
        Entry::Password if method == Method::POST => {
            store_password(state, &instance.uuid, &body).await?
        }
        Entry::Password => {
            let password = instances::metadata_password(&state.db, &instance.uuid)
                .await
                .map_err(MetadataError::internal)?;
            text(
                StatusCode::OK,
                "text/plain; charset=UTF-8",
                password.into_bytes(),
            )
        }
    })
}

async fn store_password(
    state: &AppState,
    uuid: &str,
    body: &[u8],
) -> Result<Response, MetadataError> {
    let current = instances::metadata_password(&state.db, uuid)
        .await
        .map_err(MetadataError::internal)?;
    if !current.is_empty() {
        return Err(conflict());
    }
    if body.len() > MAX_PASSWORD_BYTES {
        return Err(MetadataError::new(
            StatusCode::BAD_REQUEST,
            "Request is too large.",
        ));
    }
    let password = String::from_utf8(body.to_vec()).map_err(|_| {
        MetadataError::new(StatusCode::BAD_REQUEST, "The password is not UTF-8 text.")
    })?;
    if !instances::set_metadata_password_once(&state.db, uuid, &password)
        .await
        .map_err(MetadataError::internal)?
    {
        return Err(conflict());
    }
    Ok(text(
        StatusCode::OK,
        "text/plain; charset=UTF-8",
        Vec::new(),
    ))
}

fn conflict() -> MetadataError {
    MetadataError::new(
        StatusCode::CONFLICT,
        "There was a conflict when trying to complete your request.",
    )
}

/// The instance the proxy's headers name, when the signature is right and
/// it is the tenant's.
async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Instance, MetadataError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    let instance_id = header(metadata_headers::INSTANCE_ID).ok_or_else(|| {
        MetadataError::new(
            StatusCode::BAD_REQUEST,
            "X-Instance-ID header is missing from request.",
        )
    })?;
    let tenant_id = header(metadata_headers::TENANT_ID).ok_or_else(|| {
        MetadataError::new(
            StatusCode::BAD_REQUEST,
            "X-Tenant-ID header is missing from request.",
        )
    })?;
    let signature = header(metadata_headers::SIGNATURE).unwrap_or_default();
    let expected = novum_wire::metadata_signature(&state.metadata_secret, instance_id);
    if !constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
        tracing::warn!(
            instance = instance_id,
            forwarded_for = header(metadata_headers::FORWARDED_FOR).unwrap_or(""),
            "metadata request with a missing or wrong instance signature"
        );
        return Err(MetadataError::forbidden());
    }
    let instance = instances::live(&state.db, instance_id)
        .await
        .map_err(MetadataError::internal)?
        .ok_or_else(MetadataError::not_found)?;
    if instance.project_id != tenant_id {
        tracing::warn!(
            instance = instance_id,
            tenant = tenant_id,
            "metadata request for an instance of another tenant"
        );
        return Err(MetadataError::not_found());
    }
    Ok(instance)
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
