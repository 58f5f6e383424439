//! Compute API microversions: `OpenStack-API-Version: compute 2.x` (from 2.27)
//! and `X-OpenStack-Nova-API-Version: 2.x`, `latest`, 406 outside the range,
//! both headers echoed with `Vary`.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::fault::ApiError;

/// A compute API microversion (2.x).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Microversion {
    /// Always 2.
    pub major: u16,
    /// The x of 2.x.
    pub minor: u16,
}

/// The oldest microversion served.
pub const MIN_MICROVERSION: Microversion = Microversion { major: 2, minor: 1 };
/// The newest microversion served.
pub const MAX_MICROVERSION: Microversion = Microversion {
    major: 2,
    minor: 96,
};

impl Microversion {
    /// 2.`minor`.
    pub const fn v2(minor: u16) -> Self {
        Self { major: 2, minor }
    }

    /// Whether this is 2.`minor` or newer.
    pub fn at_least(self, minor: u16) -> bool {
        self >= Self::v2(minor)
    }

    /// Parses `2.x` or `latest`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("latest") {
            return Some(MAX_MICROVERSION);
        }
        let (major, minor) = text.split_once('.')?;
        Some(Self {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }

    /// The version a request asks for (none → 2.1); `Err` for malformed or
    /// out-of-range versions.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let modern = headers
            .get_all("openstack-api-version")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .find_map(|item| item.trim().strip_prefix("compute ").map(str::to_string));
        let legacy = headers
            .get("x-openstack-nova-api-version")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let Some(requested) = modern.or(legacy) else {
            return Ok(MIN_MICROVERSION);
        };
        let version = Self::parse(&requested)
            .ok_or_else(|| ApiError::bad_request(format!("API Version String {requested} is of invalid format. Must be of format MajorNum.MinorNum.")))?;
        if version < MIN_MICROVERSION || version > MAX_MICROVERSION {
            return Err(ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                format!(
                    "Version {requested} is not supported by the API. Minimum is {MIN_MICROVERSION} and maximum is {MAX_MICROVERSION}."
                ),
            ));
        }
        Ok(version)
    }
}

impl std::fmt::Display for Microversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Middleware for the compute API: negotiates the version, stores it for
/// handlers, and echoes it.
pub async fn negotiate(mut request: Request, next: Next) -> Response {
    let version = match Microversion::from_headers(request.headers()) {
        Ok(version) => version,
        Err(error) => return error.into_response(),
    };
    request.extensions_mut().insert(version);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("compute {version}")) {
        headers.insert("openstack-api-version", value);
    }
    if let Ok(value) = HeaderValue::from_str(&version.to_string()) {
        headers.insert("x-openstack-nova-api-version", value);
    }
    headers.insert(
        "vary",
        HeaderValue::from_static("OpenStack-API-Version, X-OpenStack-Nova-API-Version"),
    );
    response
}

impl<S: Send + Sync> FromRequestParts<S> for Microversion {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Microversion>()
            .copied()
            .unwrap_or(MIN_MICROVERSION))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn negotiation() {
        assert_eq!(
            Microversion::from_headers(&headers(&[])).ok(),
            Some(MIN_MICROVERSION)
        );
        assert_eq!(
            Microversion::from_headers(&headers(&[("x-openstack-nova-api-version", "2.37")])).ok(),
            Some(Microversion::v2(37))
        );
        assert_eq!(
            Microversion::from_headers(&headers(&[("openstack-api-version", "compute 2.60")])).ok(),
            Some(Microversion::v2(60))
        );
        assert_eq!(
            Microversion::from_headers(&headers(&[(
                "openstack-api-version",
                "image 2.5, compute latest"
            )]))
            .ok(),
            Some(MAX_MICROVERSION)
        );
        let too_new =
            Microversion::from_headers(&headers(&[("x-openstack-nova-api-version", "2.999")]));
        assert_eq!(
            too_new.err().map(|error| error.status()),
            Some(StatusCode::NOT_ACCEPTABLE)
        );
        let junk = Microversion::from_headers(&headers(&[("x-openstack-nova-api-version", "two")]));
        assert_eq!(
            junk.err().map(|error| error.status()),
            Some(StatusCode::BAD_REQUEST)
        );
    }
}
