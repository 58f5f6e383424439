//! Helpers shared by the compute API handlers: fault mapping, base URLs,
//! links, pagination.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use novum_compute::conductor::ConductorError;

/// The last microversion of Nova's proxy APIs (its
/// `MAX_PROXY_API_SUPPORT_VERSION`, 2.35): the image proxy, the network and
/// security group proxies.
pub const MAX_PROXY_MICROVERSION: u16 = 35;

/// 404 (Nova's `VersionNotFoundForAPIMethod`) for a route whose last
/// microversion is 2.`last`, at every later one.
pub fn until_microversion(version: Microversion, last: u16) -> ApiResult<()> {
    if version.at_least(last + 1) {
        Err(ApiError::no_such_resource())
    } else {
        Ok(())
    }
}

impl From<ConductorError> for ApiError {
    fn from(error: ConductorError) -> Self {
        match error {
            ConductorError::NotFound(message) => ApiError::not_found(message),
            ConductorError::Conflict(message) => ApiError::conflict(message),
            ConductorError::BadRequest(message) => ApiError::bad_request(message),
            ConductorError::Forbidden(message) => ApiError::forbidden(message),
            ConductorError::NotImplemented(message) => ApiError::not_implemented(message),
            ConductorError::Db(error) => ApiError::internal(error),
            ConductorError::Quota(error) => ApiError::from(error),
            ConductorError::Notify(error) => ApiError::internal(error),
            ConductorError::Network(error) => network_fault(error),
            ConductorError::Metadata(error) => ApiError::internal(error),
            ConductorError::Timeout(message) => {
                ApiError::new(axum::http::StatusCode::GATEWAY_TIMEOUT, message)
            }
        }
    }
}

/// A network refusal as the Compute API answers it: what the network
/// service does not find is a bad request of the server's (400), a port or
/// address in use a conflict (409), over the port quota 403; the message is
/// the network service's.
pub fn network_fault(error: novum_network::NetworkError) -> ApiError {
    match error.status() {
        400 | 404 => ApiError::bad_request(error.to_string()),
        409 => ApiError::conflict(error.to_string()),
        401 | 403 => ApiError::forbidden(error.to_string()),
        _ => ApiError::internal(error),
    }
}

/// The public base URL of the compute API (`…/compute`).
pub fn compute_url(state: &AppState) -> String {
    format!("{}/compute", state.config.public_base_url())
}

/// `self` and `bookmark` links of resource `collection/id`.
pub fn links(state: &AppState, collection: &str, id: &str) -> Value {
    let base = compute_url(state);
    json!([
        {"rel": "self", "href": format!("{base}/v2.1/{collection}/{id}")},
        {"rel": "bookmark", "href": format!("{base}/{collection}/{id}")},
    ])
}

/// `limit` and `marker` of a list request.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct Page {
    /// Page size.
    pub limit: Option<String>,
    /// Last id of the previous page.
    pub marker: Option<String>,
}

impl Page {
    /// The effective limit (capped by `max_limit`); 400 when not a number ≥ 0.
    pub fn limit(&self, state: &AppState) -> ApiResult<usize> {
        let max = state.config.compute.max_limit;
        match &self.limit {
            None => Ok(max),
            Some(text) => text
                .parse::<usize>()
                .map(|limit| limit.min(max))
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "Invalid input for query parameters limit. Value: {text}."
                    ))
                }),
        }
    }

    /// Cuts `items` (sorted, each with an id) after the marker and at the
    /// limit; returns the page and whether a next link is due. 400 when the
    /// marker is unknown.
    pub fn apply<T>(
        &self,
        state: &AppState,
        items: Vec<T>,
        id: impl Fn(&T) -> &str,
    ) -> ApiResult<(Vec<T>, bool)> {
        let limit = self.limit(state)?;
        let start = match &self.marker {
            None => 0,
            Some(marker) => {
                items
                    .iter()
                    .position(|item| id(item) == marker)
                    .ok_or_else(|| ApiError::bad_request(format!("marker [{marker}] not found")))?
                    + 1
            }
        };
        let rest: Vec<T> = items.into_iter().skip(start).collect();
        let more = rest.len() > limit;
        let page: Vec<T> = rest.into_iter().take(limit).collect();
        Ok((page, more && limit > 0))
    }
}

/// The query string as decoded pairs, in order.
pub fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The query string as pairs; 400 in Nova's words for a key not in
/// `allowed` when `strict` (the query schemas without additional
/// properties of microversion 2.75 on).
pub fn strict_query(
    raw: Option<&str>,
    strict: bool,
    allowed: &[&str],
) -> ApiResult<Vec<(String, String)>> {
    let pairs = parse_query(raw);
    if strict
        && let Some((key, _)) = pairs
            .iter()
            .find(|(key, _)| !allowed.contains(&key.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "Invalid input for query parameters {key}. Value: Additional properties are not allowed ('{key}' was unexpected)"
        )));
    }
    Ok(pairs)
}

/// The first value of query parameter `key`.
pub fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

/// The `<collection>_links` next link, kept query parameters plus the marker.
pub fn next_link(state: &AppState, path: &str, query: &[(String, String)], marker: &str) -> Value {
    let mut pairs: Vec<String> = query
        .iter()
        .filter(|(key, _)| key != "marker")
        .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
        .collect();
    pairs.push(format!("marker={}", encode(marker)));
    json!([{"rel": "next", "href": format!("{}/v2.1/{path}?{}", compute_url(state), pairs.join("&"))}])
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Nova's boolean query/body strings (`true`, `1`, `yes`, `on`, …).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// A timestamp as Nova shows it (`2026-01-02T03:04:05Z`).
pub fn api_time(stored: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(stored)
        .map(|time| {
            time.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        })
        .unwrap_or_else(|_| stored.to_string())
}

/// A timestamp with microseconds, as Nova shows actions (`…:05.123456`).
pub fn api_time_micros(stored: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(stored)
        .map(|time| {
            time.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%S%.6f")
                .to_string()
        })
        .unwrap_or_else(|_| stored.to_string())
}
