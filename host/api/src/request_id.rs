//! Request ids: every request gets `req-<uuid>`, carried in a tracing span and
//! answered in `x-openstack-request-id` and `x-compute-request-id`.

use axum::extract::{FromRequestParts, Request};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The id of the request being served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// A new `req-<uuid>` id.
    pub fn generate() -> Self {
        Self(format!("req-{}", uuid::Uuid::new_v4()))
    }
}

/// Middleware: assigns the id, opens the span, stamps the response.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = RequestId::generate();
    request.extensions_mut().insert(id.clone());
    let span = tracing::info_span!("request", request_id = %id.0, method = %request.method(), path = %request.uri().path());
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        let headers = response.headers_mut();
        headers.insert("x-openstack-request-id", value.clone());
        headers.insert("x-compute-request-id", value);
    }
    response
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate))
    }
}
