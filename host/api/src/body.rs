//! [`JsonBody`]: a JSON request body that answers malformed input with a 400
//! naming the field, and a wrong content type with 415, in Nova's fault shape.
//! [`parse_json`] is what every JSON body of every API goes through: one
//! value and nothing after it, no NUL in any string.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::fault::ApiError;
use super::validation;

/// A deserialized JSON request body.
pub struct JsonBody<T>(pub T);

/// Parses `bytes` as `T`, naming the failing field in the error. Anything
/// but whitespace after the JSON value (`{}xxx`) and a NUL in any string or
/// key (`"\u0000"`) are refused with a 400.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "The request body is empty; a JSON object is required.",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path.is_empty() || path == "." {
            ApiError::bad_request(format!("Invalid request body: {inner}"))
        } else {
            ApiError::bad_request(format!("Invalid input for field/attribute {path}. {inner}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|error| ApiError::bad_request(format!("Invalid request body: {error}")))?;
    if validation::json_has_nul(bytes) {
        return Err(validation::nul_refused("request body"));
    }
    Ok(value)
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("application/json")
            .to_ascii_lowercase();
        if !content_type.contains("json") {
            return Err(ApiError::bad_media_type(format!(
                "Unsupported Content-Type: {content_type}"
            )));
        }
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|error| match error.status() {
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE => super::guard::body_too_large(),
                    _ => ApiError::bad_request(format!("Cannot read the request body: {error}")),
                })?;
        parse_json(&bytes).map(JsonBody)
    }
}
