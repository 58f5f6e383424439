//! The request guard every API request passes before its handler (applied
//! by [`request_layer`](crate::request_layer)): a NUL in
//! the path or the query string is a 400, a body over
//! [`MAX_REQUEST_BODY_BYTES`] a 413 (Nova's `max_request_body_size`), both
//! in the fault shape of the API asked (Keystone's under `/identity`, the
//! agent RPC's under `/rpc/v1`, Neutron's under `/network`, Nova's
//! elsewhere). Image data uploads stream past the body limit (they have their
//! own, `[images] max_image_size_mb`), and so does the agent RPC.

use std::future::poll_fn;
use std::pin::Pin;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::header::CONTENT_LENGTH;
use axum::response::{IntoResponse, Response};

use super::fault::{ApiError, FaultStyle};
use super::validation;

/// The largest request body accepted, in bytes: Nova's (and Keystone's)
/// `[oslo_middleware] max_request_body_size` default, 112 KiB.
pub const MAX_REQUEST_BODY_BYTES: usize = 114_688;

/// The 413 answered for a body over [`MAX_REQUEST_BODY_BYTES`].
pub fn body_too_large() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        format!("Request is too large: the limit is {MAX_REQUEST_BODY_BYTES} bytes."),
    )
}

/// The fault shape of the API `path` belongs to.
pub(crate) fn style_of(path: &str) -> FaultStyle {
    if path.starts_with("/identity") {
        FaultStyle::Keystone
    } else if path.starts_with(novum_wire::API_PREFIX) {
        FaultStyle::AgentRpc
    } else if path == "/network" || path.starts_with("/network/") {
        FaultStyle::Neutron(None)
    } else {
        FaultStyle::Nova
    }
}

/// Whether the body of a request to `path` streams past the size limit.
pub(crate) fn streams_body(path: &str) -> bool {
    path.starts_with(novum_wire::API_PREFIX)
        || (path.starts_with("/image/") && path.ends_with("/file"))
}

/// The answer refusing `request` before its handler: a NUL escaped in its
/// path or query string, or a declared body over the limit (where bodies
/// are held to it). `None` lets it through; a body without a declared
/// length is held to the limit while it is read ([`read_limited`]).
pub fn refusal(request: &Request) -> Option<Response> {
    let path = request.uri().path();
    let style = style_of(path);
    // A raw NUL cannot appear in a URI: only its escape can.
    let nul_in = if path.contains("%00") {
        Some("path")
    } else if request
        .uri()
        .query()
        .is_some_and(|query| query.contains("%00"))
    {
        Some("query string")
    } else {
        None
    };
    if let Some(part) = nul_in {
        return Some(validation::nul_refused(part).styled(style).into_response());
    }
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if !streams_body(path) && declared.is_some_and(|length| length > MAX_REQUEST_BODY_BYTES as u64)
    {
        return Some(body_too_large().styled(style).into_response());
    }
    None
}

/// The whole of `body`, or a 413 as soon as it passes `limit` bytes.
pub(crate) async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut buffer = Vec::new();
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|error| {
            ApiError::bad_request(format!("Cannot read the request body: {error}"))
        })?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        if buffer.len() + chunk.len() > limit {
            return Err(body_too_large());
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buffer))
}
