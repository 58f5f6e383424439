//! Simple tenant usage (`/v2.1/os-simple-tenant-usage`, `openstack usage
//! list/show`): per project, the hours each server ran during a time
//! window and its vCPU, memory and disk hours, from the instances' launch
//! and termination times (deleted servers included), as Nova reports them.
//! The list of every project is admin only; a project's own usage is open to
//! its readers.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{next_link, query_value, strict_query};
use crate::AppState;
use crate::auth::AuthContext;
use crate::extract::Path;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use novum_compute::conductor::model::Instance;
use novum_compute::store::instances;

/// Pagination (`limit`, `marker` and the `*_links`) from this microversion.
const LINKS_SINCE: u16 = 40;

/// Unknown query parameters are refused from this microversion.
const STRICT_QUERY_SINCE: u16 = 75;

/// The time formats Nova's usage API accepts for `start` and `end`.
const TIME_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
];

/// `start` or `end`: now when absent or empty; 400 when in none of Nova's
/// formats.
fn parse_time(text: Option<&str>, now: DateTime<Utc>) -> ApiResult<DateTime<Utc>> {
    let Some(text) = text.filter(|text| !text.is_empty()) else {
        return Ok(now);
    };
    TIME_FORMATS
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc())
        .ok_or_else(|| {
            ApiError::bad_request("Invalid datetime string: Datetime is in invalid format")
        })
}

/// The window a request asks about (`end` no later than now) and whether it
/// wants each server's usage.
struct Window {
    start: DateTime<Utc>,
    stop: DateTime<Utc>,
    detailed: bool,
}

impl Window {
    fn of(pairs: &[(String, String)]) -> ApiResult<Self> {
        // Each bound defaults to the time it is read, the end after the
        // start, as Nova's do.
        let start = parse_time(query_value(pairs, "start"), Utc::now())?;
        let now = Utc::now();
        let stop = parse_time(query_value(pairs, "end"), now)?;
        if start >= stop {
            return Err(ApiError::bad_request(
                "Invalid start time. The start time cannot occur after the end time.",
            ));
        }
        Ok(Window {
            start,
            stop: stop.min(now),
            // Nova takes only `1`; openstacksdk sends `True` (`usage
            // list` counts the servers from `server_usages`): any of
            // Nova's true strings.
            detailed: query_value(pairs, "detailed")
                .and_then(super::common::parse_bool)
                .unwrap_or(false),
        })
    }
}

/// A stored timestamp as a time.
fn stored_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

/// A time as Nova's usage API writes it (naive UTC, microseconds).
fn usage_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// Hours a server launched at `launched` and terminated at `terminated`
/// ran within `window` (Nova's `_hours_for`).
fn hours_in(
    launched: Option<DateTime<Utc>>,
    terminated: Option<DateTime<Utc>>,
    window: &Window,
) -> f64 {
    let Some(launched) = launched else {
        return 0.0;
    };
    if terminated.is_some_and(|terminated| terminated < window.start) || launched > window.stop {
        return 0.0;
    }
    let begin = launched.max(window.start);
    let end = terminated.map_or(window.stop, |terminated| terminated.min(window.stop));
    (end - begin).num_microseconds().unwrap_or(0).max(0) as f64 / 3_600_000_000.0
}

/// One server's usage (`server_usages` item).
fn server_usage(instance: &Instance, window: &Window, now: DateTime<Utc>) -> Value {
    let started = instance.launched_at.as_deref().and_then(stored_time);
    let ended = instance.terminated_at.as_deref().and_then(stored_time);
    let hours = hours_in(started, ended, window);
    let uptime = match (started, ended) {
        (Some(started), Some(ended)) => (ended - started).num_seconds(),
        (Some(started), None) => (now - started).num_seconds(),
        _ => 0,
    };
    let mut usage = json!({
        "instance_id": instance.uuid,
        "name": instance.display_name,
        "tenant_id": instance.project_id,
        "hours": hours,
        "started_at": started.map(usage_time),
        "ended_at": ended.map(usage_time),
        "state": if ended.is_some() { "terminated" } else { instance.vm_state.as_str() },
        "uptime": uptime.max(0),
        "flavor": "",
    });
    if let Ok(flavor) = instance.flavor() {
        usage["flavor"] = json!(flavor.name);
        usage["memory_mb"] = json!(flavor.memory_mb);
        usage["local_gb"] = json!(flavor.root_gb + flavor.ephemeral_gb);
        usage["vcpus"] = json!(flavor.vcpus);
    }
    usage
}

/// Each project's totals (with its servers when `detailed`), in the order
/// of `instances` (by project), and every server's usage.
fn tenant_usages(instances: &[Instance], window: &Window) -> (Vec<Value>, Vec<Value>) {
    let now = Utc::now();
    let mut tenants: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    let mut servers = Vec::new();
    for instance in instances {
        let usage = server_usage(instance, window, now);
        let hours = usage["hours"].as_f64().unwrap_or(0.0);
        let amount = |field: &str| usage[field].as_f64().unwrap_or(0.0) * hours;
        let tenant = tenants
            .entry(instance.project_id.as_str())
            .or_insert_with(|| {
                let mut tenant = Map::new();
                tenant.insert("tenant_id".into(), json!(instance.project_id));
                if window.detailed {
                    tenant.insert("server_usages".into(), json!([]));
                }
                for total in [
                    "total_local_gb_usage",
                    "total_vcpus_usage",
                    "total_memory_mb_usage",
                    "total_hours",
                ] {
                    tenant.insert(total.into(), json!(0.0));
                }
                tenant.insert("start".into(), json!(usage_time(window.start)));
                tenant.insert("stop".into(), json!(usage_time(window.stop)));
                tenant
            });
        for (total, added) in [
            ("total_local_gb_usage", amount("local_gb")),
            ("total_vcpus_usage", amount("vcpus")),
            ("total_memory_mb_usage", amount("memory_mb")),
            ("total_hours", hours),
        ] {
            let sum = tenant[total].as_f64().unwrap_or(0.0) + added;
            tenant.insert(total.into(), json!(sum));
        }
        if let Some(Value::Array(list)) = tenant.get_mut("server_usages") {
            list.push(usage.clone());
        }
        servers.push(usage);
    }
    (tenants.into_values().map(Value::Object).collect(), servers)
}

/// The instances of the window for `project` (all when `None`): the page
/// the request asks for, and whether a next link is due.
async fn instances_of(
    state: &AppState,
    version: Microversion,
    pairs: &[(String, String)],
    window: &Window,
    project: Option<&str>,
) -> ApiResult<(Vec<Instance>, usize)> {
    let max = state.config.compute.max_limit;
    let (limit, marker) = if version.at_least(LINKS_SINCE) {
        let limit = match query_value(pairs, "limit") {
            None => max,
            Some(text) => text
                .parse::<usize>()
                .map(|limit| limit.min(max))
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "Invalid input for query parameters limit. Value: {text}."
                    ))
                })?,
        };
        (limit, query_value(pairs, "marker"))
    } else {
        (max, None)
    };
    let found = instances::active_in_window(
        &state.db,
        &novum_db::timestamp(window.start),
        &novum_db::timestamp(window.stop),
        project,
        limit,
        marker,
    )
    .await?;
    let instances = found.ok_or_else(|| {
        ApiError::bad_request(format!(
            "Marker {} could not be found.",
            marker.unwrap_or_default()
        ))
    })?;
    Ok((instances, limit))
}

/// The `*_links` next link when the page is full.
fn links_of(
    state: &AppState,
    path: &str,
    pairs: &[(String, String)],
    servers: &[Value],
    limit: usize,
) -> Option<Value> {
    let last = servers.last()?;
    (limit > 0 && servers.len() == limit).then(|| {
        next_link(
            state,
            path,
            pairs,
            last["instance_id"].as_str().unwrap_or_default(),
        )
    })
}

/// Query parameters of the list.
const LIST_QUERY: &[&str] = &["start", "end", "detailed", "limit", "marker"];

/// Query parameters of one project's usage.
const SHOW_QUERY: &[&str] = &["start", "end", "limit", "marker"];

/// Every project's usage (admin).
#[utoipa::path(get, path = "/v2.1/os-simple-tenant-usage", responses((status = OK, description = "Success", body = TenantUsageList), crate::fault::ApiError))]
async fn index(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-simple-tenant-usage:list")?;
    let pairs = strict_query(
        raw.as_deref(),
        version.at_least(STRICT_QUERY_SINCE),
        LIST_QUERY,
    )?;
    let window = Window::of(&pairs)?;
    let (instances, limit) = instances_of(&state, version, &pairs, &window, None).await?;
    let (tenants, servers) = tenant_usages(&instances, &window);
    let mut body = json!({"tenant_usages": tenants});
    if version.at_least(LINKS_SINCE)
        && let Some(links) = links_of(&state, "os-simple-tenant-usage", &pairs, &servers, limit)
    {
        body["tenant_usages_links"] = links;
    }
    Ok(Json(body))
}

/// One project's usage (its readers, or an admin).
#[utoipa::path(get, path = "/v2.1/os-simple-tenant-usage/{tenant_id}", params(("tenant_id" = String, Path, description = "The project id")), responses((status = OK, description = "Success", body = TenantUsage), crate::fault::ApiError))]
async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(tenant_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    if !auth.is_admin() && auth.project_id != tenant_id {
        return Err(ApiError::policy(
            "os_compute_api:os-simple-tenant-usage:show",
        ));
    }
    let pairs = strict_query(
        raw.as_deref(),
        version.at_least(STRICT_QUERY_SINCE),
        SHOW_QUERY,
    )?;
    let window = Window {
        detailed: true,
        ..Window::of(&pairs)?
    };
    let (instances, limit) =
        instances_of(&state, version, &pairs, &window, Some(&tenant_id)).await?;
    let (tenants, servers) = tenant_usages(&instances, &window);
    let mut body = json!({"tenant_usage": tenants.into_iter().next().unwrap_or_else(|| json!({}))});
    if version.at_least(LINKS_SINCE)
        && let Some(links) = links_of(
            &state,
            &format!("os-simple-tenant-usage/{tenant_id}"),
            &pairs,
            &servers,
            limit,
        )
    {
        body["tenant_usage_links"] = links;
    }
    Ok(Json(body))
}

crate::envelope!(
    /// `{"tenant_usages": […]}`
    TenantUsageList, "tenant_usages", Array
);

crate::envelope!(
    /// `{"tenant_usage": {…}}`
    TenantUsage, "tenant_usage", Object
);

/// The usage routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(show))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        parse_time(Some(text), Utc::now()).expect("a valid time")
    }

    #[test]
    fn nova_time_formats_parse_and_others_are_refused() {
        assert_eq!(
            usage_time(at("2026-01-02T03:04:05")),
            "2026-01-02T03:04:05.000000"
        );
        assert_eq!(
            usage_time(at("2026-01-02T03:04:05.25")),
            "2026-01-02T03:04:05.250000"
        );
        assert_eq!(
            usage_time(at("2026-01-02 03:04:05.5")),
            "2026-01-02T03:04:05.500000"
        );
        assert!(parse_time(Some("yesterday"), Utc::now()).is_err());
    }

    #[test]
    fn hours_count_only_the_part_of_the_run_inside_the_window() {
        let window = Window {
            start: at("2026-01-01T00:00:00"),
            stop: at("2026-01-01T10:00:00"),
            detailed: true,
        };
        let run = |launched: Option<&str>, terminated: Option<&str>| {
            hours_in(
                launched.and_then(stored_time),
                terminated.and_then(stored_time),
                &window,
            )
        };
        assert_eq!(run(Some("2025-12-31T22:00:00Z"), None), 10.0);
        assert_eq!(
            run(Some("2026-01-01T04:30:00Z"), Some("2026-01-01T06:00:00Z")),
            1.5
        );
        assert_eq!(
            run(Some("2025-12-30T00:00:00Z"), Some("2025-12-31T00:00:00Z")),
            0.0
        );
        assert_eq!(run(Some("2026-01-02T00:00:00Z"), None), 0.0);
        assert_eq!(run(None, None), 0.0);
    }
}
