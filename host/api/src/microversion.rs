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

/// The service type naming the compute API in `OpenStack-API-Version`.
const SERVICE_TYPE: &str = "compute";

/// The oldest microversion served.
pub const MIN_MICROVERSION: Microversion = Microversion { major: 2, minor: 1 };
/// The newest microversion served.
pub const MAX_MICROVERSION: Microversion = Microversion {
    major: 2,
    minor: 104,
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

    /// Parses `latest` or a version as Nova's `APIVersionRequest` does
    /// (`^([1-9]\d*)\.([1-9]\d*|0)$`: no sign, no leading zero, no space
    /// inside); `None` for anything else. A number too large for the type
    /// saturates, so that it is refused as out of range rather than malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("latest") {
            return Some(MAX_MICROVERSION);
        }
        let (major, minor) = text.split_once('.')?;
        let number = |part: &str, zero_allowed: bool| -> Option<u16> {
            let digits = !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
            let canonical = !part.starts_with('0') || (zero_allowed && part == "0");
            if !digits || !canonical {
                return None;
            }
            Some(part.parse::<u16>().unwrap_or(u16::MAX))
        };
        Some(Self {
            major: number(major, false)?,
            minor: number(minor, true)?,
        })
    }

    /// The version a request asks for (none → 2.1); `Err` for malformed or
    /// out-of-range versions.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        // Header bytes that are not visible ASCII are read lossily, so that
        // `compute é` is a malformed version rather than no header at all.
        let text = |value: &HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
        let modern = headers
            .get_all("openstack-api-version")
            .iter()
            .map(text)
            .flat_map(|value| {
                value
                    .split(',')
                    .map(|item| item.trim().to_string())
                    .collect::<Vec<_>>()
            })
            .find_map(|item| {
                let (service, version) = item.split_once(' ').unwrap_or((item.as_str(), ""));
                service
                    .eq_ignore_ascii_case(SERVICE_TYPE)
                    .then(|| version.trim().to_string())
            });
        let legacy = headers.get("x-openstack-nova-api-version").map(text);
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

    #[test]
    fn versions_parse_as_nova_does() {
        for good in ["2.1", "2.0", "2.10", "2.104", " 2.5 ", "latest", "LATEST"] {
            assert!(Microversion::parse(good).is_some(), "{good:?}");
        }
        for bad in [
            "2.01", "02.1", "2", "2.", ".1", "2.1.1", "2. 1", "+2.1", "2.-1", "é", "", "2,1",
        ] {
            assert_eq!(Microversion::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            Microversion::parse("2.99999"),
            Some(Microversion::v2(u16::MAX))
        );
    }

    #[test]
    fn malformed_headers_are_bad_requests() {
        let status = |pairs: &[(&'static str, &[u8])]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(
                    *name,
                    HeaderValue::from_bytes(value).expect("a valid header value"),
                );
            }
            Microversion::from_headers(&map)
                .err()
                .map(|error| error.status())
        };
        for value in [
            &b"compute 2.01"[..],
            b"compute",
            b"compute ",
            "compute é".as_bytes(),
            b"compute two",
            b"image 2.5, compute",
        ] {
            assert_eq!(
                status(&[("openstack-api-version", value)]),
                Some(StatusCode::BAD_REQUEST),
                "{}",
                String::from_utf8_lossy(value)
            );
        }
        assert_eq!(
            status(&[("x-openstack-nova-api-version", "é".as_bytes())]),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            status(&[("openstack-api-version", b"compute 2.999")]),
            Some(StatusCode::NOT_ACCEPTABLE)
        );
        // Another service's version alone leaves the compute default.
        assert_eq!(status(&[("openstack-api-version", b"image 2.5")]), None);
    }
}
