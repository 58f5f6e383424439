//! `Path` and `Query` extractors whose rejections are fault bodies: axum's
//! own answer a malformed path segment (`%FF`) or query string (`wait=-1`,
//! a repeated `name=`) with `text/plain`, which no client of an OpenStack
//! API can read and the OpenAPI document does not promise.
//! [`fault_extractors!`] defines the pair for an API's error type (Nova's
//! fault here; Keystone's error in `api::identity`, the agent RPC's error in
//! `rpc`); the error type converts axum's rejections with `From`.

use axum::extract::rejection::{PathRejection, QueryRejection};

use super::fault::ApiError;

/// Defines `Path<T>` and `Query<T>` in the calling module: axum's
/// extractors, rejecting with `$error` (which implements
/// `From<PathRejection>` and `From<QueryRejection>`).
#[macro_export]
macro_rules! fault_extractors {
    ($error:ty) => {
        /// `axum::extract::Path`, rejecting with this API's fault body.
        #[derive(::axum::extract::FromRequestParts)]
        #[from_request(via(::axum::extract::Path), rejection($error))]
        pub struct Path<T>(pub T);

        /// `axum::extract::Query`, rejecting with this API's fault body.
        #[derive(::axum::extract::FromRequestParts)]
        #[from_request(via(::axum::extract::Query), rejection($error))]
        pub struct Query<T>(pub T);
    };
}

fault_extractors!(ApiError);

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::new(
            rejection.status(),
            format!("Invalid path: {}", rejection.body_text()),
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::new(
            rejection.status(),
            format!("Invalid query string: {}", rejection.body_text()),
        )
    }
}
