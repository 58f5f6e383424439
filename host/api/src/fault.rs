//! API errors and their wire shapes: Nova's fault body
//! (`{"itemNotFound": {"code": 404, "message": "..."}}`), Keystone's error body
//! (`{"error": {"code": 401, "title": "Unauthorized", "message": "..."}}`),
//! Neutron's (`{"NeutronError": {"type": "NetworkNotFound", "message": "...",
//! "detail": ""}}`).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Which service's error shape a response takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultStyle {
    /// Compute (and image) API: `{"<faultName>": {"code", "message"}}`.
    Nova,
    /// Identity API: `{"error": {"code", "title", "message"}}`.
    Keystone,
    /// The agent RPC: `{"error": "<message>"}` (`novum_wire::ErrorBody`).
    AgentRpc,
    /// Network API: `{"NeutronError": {"type", "message", "detail"}}`; the
    /// type is Neutron's exception name (`NetworkNotFound`, `OverQuota`), or
    /// when `None` the webob name of the status (`HTTPBadRequest`,
    /// `HTTPUnauthorized`, ...), as Neutron answers errors raised outside
    /// its plugins.
    Neutron(Option<&'static str>),
}

/// The webob exception name Neutron gives an error of `status` that no
/// Neutron exception names (a malformed body, a missing token).
pub fn neutron_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "HTTPBadRequest",
        401 => "HTTPUnauthorized",
        403 => "HTTPForbidden",
        404 => "HTTPNotFound",
        405 => "HTTPMethodNotAllowed",
        409 => "HTTPConflict",
        413 => "HTTPRequestEntityTooLarge",
        415 => "HTTPUnsupportedMediaType",
        501 => "HTTPNotImplemented",
        503 => "HTTPServiceUnavailable",
        _ => "HTTPInternalServerError",
    }
}

/// An error answered to an API client. Build it with the constructors; an
/// internal error is logged with its cause and answered with a generic text.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    style: FaultStyle,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            style: FaultStyle::Nova,
            retry_after: None,
        }
    }
    /// 400 badRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// 401 unauthorized.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    /// 403 forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    /// 403 forbidden with Nova's policy text for `rule`.
    pub fn policy(rule: &str) -> Self {
        Self::forbidden(format!("Policy doesn't allow {rule} to be performed."))
    }
    /// 404 itemNotFound.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// 405 badMethod.
    pub fn bad_method() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "The method specified is not allowed for this resource.",
        )
    }
    /// 409 conflictingRequest.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    /// 413 overLimit, with `retryAfter`.
    pub fn over_limit(message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
        }
    }
    /// 415 badMediaType.
    pub fn bad_media_type(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }
    /// 404 for a route or method the request's microversion does not have
    /// (Nova's `VersionNotFoundForAPIMethod`).
    pub fn no_such_resource() -> Self {
        Self::not_found("The resource could not be found.")
    }
    /// 410 computeFault for a route Nova removed with nova-network
    /// (`@wsgi.removed`), at every microversion; webob's message.
    pub fn gone() -> Self {
        Self::new(
            StatusCode::GONE,
            "This resource is no longer available.  No forwarding address is given.",
        )
    }
    /// 501 for what the hypervisor driver cannot do (Nova's
    /// `raise_feature_not_supported`).
    pub fn feature_not_supported() -> Self {
        Self::not_implemented("The requested functionality is not supported.")
    }
    /// 501 notImplemented.
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, message)
    }
    /// 503 serviceUnavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
    /// 500 computeFault: logs `cause`, answers a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Unexpected API Error. Please report this at the novum issue tracker and attach the novum log if possible.",
        )
    }
    /// The same error in another service's shape.
    pub fn styled(mut self, style: FaultStyle) -> Self {
        self.style = style;
        self
    }
    /// The service whose shape the error takes.
    pub fn style(&self) -> FaultStyle {
        self.style
    }
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Nova's fault name for a status (`nova/api/openstack/wsgi.py` `_fault_names`).
pub fn fault_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 | 429 => "overLimit",
        415 => "badMediaType",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.status.as_u16();
        let body = match self.style {
            FaultStyle::Nova => {
                let mut fault = json!({"code": code, "message": self.message});
                if let Some(retry_after) = self.retry_after {
                    fault["retryAfter"] = json!(retry_after.to_string());
                }
                json!({ fault_name(self.status): fault })
            }
            FaultStyle::Keystone => json!({"error": {
                "code": code,
                "title": self.status.canonical_reason().unwrap_or("Error"),
                "message": self.message,
            }}),
            FaultStyle::AgentRpc => json!(novum_wire::ErrorBody {
                error: self.message
            }),
            FaultStyle::Neutron(kind) => json!({"NeutronError": {
                "type": kind.unwrap_or_else(|| neutron_type(self.status)),
                "message": self.message,
                "detail": "",
            }}),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(retry_after) = self.retry_after {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(retry_after));
        }
        response
    }
}

impl From<novum_db::DbError> for ApiError {
    fn from(error: novum_db::DbError) -> Self {
        Self::internal(error)
    }
}

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
