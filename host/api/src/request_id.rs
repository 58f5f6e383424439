//! Request ids: every request gets `req-<uuid>`, carried in a tracing span and
//! answered in `x-openstack-request-id` and `x-compute-request-id` (by
//! [`request_layer`](crate::request_layer)).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The id of the request being served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// A new `req-<uuid>` id.
    pub fn generate() -> Self {
        Self(format!("req-{}", uuid::Uuid::new_v4()))
    }
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
