//! Server lists (`GET /servers`, `/servers/detail`): Nova's filters, sort
//! keys and pagination. The database filters, sorts and pages
//! (`store::server_listing`); what it cannot answer portably — Nova's
//! regular-expression filters (`name`, `reservation_id`,
//! `availability_zone`) and the address filters (`ip`, `ip6`) — is checked
//! here over the pages it returns, reading on until the page is full.

use std::collections::HashMap;

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::common::{Page, links, next_link, parse_bool, parse_query};
use super::server_networks::{self, ServerNetworking};
use super::server_tags;
use super::servers::{HOST_STATUS_SINCE, ServerView, detail_view, shown_host_statuses};
use crate::AppState;
use crate::auth::AuthContext;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use novum_compute::conductor::model::Instance;
use novum_compute::conductor::states::{self, vm};
use novum_compute::store;
use novum_compute::store::server_listing::{ServerListing, SortColumn, SortKey, TagFilters};

/// The `locked` filter and sort key, from this microversion.
const LOCKED_SINCE: u16 = 73;
/// Unknown query parameters (and Nova's ignored sort keys) are refused from
/// this microversion.
const STRICT_SORT_KEYS_SINCE: u16 = 75;
/// Non-administrators may filter by `user_id` from this microversion.
const USER_FILTER_FOR_EVERYONE_SINCE: u16 = 83;
/// Servers read per query while filters SQL cannot apply drop some.
const POST_FILTER_BATCH: usize = 200;

/// Nova's sort keys (`VALID_SORT_KEYS`, without the ignored ones).
const SORT_KEYS: &[&str] = &[
    "access_ip_v4",
    "access_ip_v6",
    "auto_disk_config",
    "availability_zone",
    "config_drive",
    "created_at",
    "display_description",
    "display_name",
    "host",
    "hostname",
    "image_ref",
    "instance_type_id",
    "kernel_id",
    "key_name",
    "launch_index",
    "launched_at",
    "locked_by",
    "node",
    "power_state",
    "progress",
    "project_id",
    "ramdisk_id",
    "root_device_name",
    "task_state",
    "terminated_at",
    "updated_at",
    "user_id",
    "uuid",
    "vm_state",
];

/// The sort keys Nova accepts and ignores (`SERVER_LIST_IGNORE_SORT_KEY`;
/// `locked` leaves the list at 2.73; all are refused from 2.75).
const IGNORED_SORT_KEYS: &[&str] = &[
    "architecture",
    "cell_name",
    "cleaned",
    "default_ephemeral_device",
    "default_swap_device",
    "deleted",
    "deleted_at",
    "disable_terminate",
    "ephemeral_gb",
    "ephemeral_key_uuid",
    "id",
    "key_data",
    "launched_on",
    "locked",
    "memory_mb",
    "os_type",
    "reservation_id",
    "root_gb",
    "shutdown_terminate",
    "user_data",
    "vcpus",
    "vm_mode",
];

/// The sort keys only administrators may use.
const ADMIN_SORT_KEYS: &[&str] = &["host", "node"];

/// The query of a server list (`sort_key` and `sort_dir` repeat, and are
/// read from the raw query).
#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// A regular expression the server's name matches.
    name: Option<String>,
    /// A server status (`ACTIVE`, `SHUTOFF`, …).
    status: Option<String>,
    /// The server's host (administrators).
    host: Option<String>,
    /// Servers changed at or after this time (deleted ones included).
    #[serde(rename = "changes-since")]
    changes_since: Option<String>,
    /// Servers changed at or before this time (2.66; deleted ones included).
    #[serde(rename = "changes-before")]
    changes_before: Option<String>,
    /// Every project's servers (administrators).
    all_tenants: Option<String>,
    /// With `all_tenants`: this project's servers.
    project_id: Option<String>,
    /// The alias of `project_id`.
    tenant_id: Option<String>,
    /// Servers of this user (administrators; everyone from 2.83).
    user_id: Option<String>,
    /// The flavor's id.
    flavor: Option<String>,
    /// The image's id.
    image: Option<String>,
    /// A regular expression the reservation id matches.
    reservation_id: Option<String>,
    /// A regular expression the availability zone matches.
    availability_zone: Option<String>,
    /// Deleted servers (administrators).
    deleted: Option<String>,
    /// Locked or unlocked servers (2.73).
    locked: Option<String>,
    /// A regular expression an IPv4 address of the server matches.
    ip: Option<String>,
    /// A regular expression an IPv6 address of the server matches.
    ip6: Option<String>,
    /// Servers with every one of these tags (comma-separated; 2.26).
    tags: Option<String>,
    /// Servers with at least one of these tags (2.26).
    #[serde(rename = "tags-any")]
    tags_any: Option<String>,
    /// Servers without every one of these tags (2.26).
    #[serde(rename = "not-tags")]
    not_tags: Option<String>,
    /// Servers with none of these tags (2.26).
    #[serde(rename = "not-tags-any")]
    not_tags_any: Option<String>,
    /// `limit` and `marker`.
    #[serde(flatten)]
    #[param(inline, required = false)]
    page: Page,
}

/// The `name` filter: a regular-expression search, as Nova's database
/// REGEXP does (unanchored unless the pattern anchors itself). A pattern
/// that is not a valid expression matches as literal text.
pub enum NameFilter {
    /// A compiled expression.
    Expression(regex::Regex),
    /// Literal text (the pattern was no valid expression).
    Literal(String),
}

impl NameFilter {
    /// Compiles `pattern` once for a whole listing.
    pub fn new(pattern: &str) -> Self {
        regex::Regex::new(pattern)
            .map(Self::Expression)
            .unwrap_or_else(|_| Self::Literal(pattern.to_string()))
    }

    /// The text every passing name contains, when the filter is plain
    /// text (no expression syntax): what SQL can narrow the list to.
    pub fn literal(&self) -> Option<&str> {
        match self {
            Self::Expression(expression) => {
                // Outside a class (which needs `[`), only these are syntax.
                let pattern = expression.as_str();
                let plain = !pattern.is_empty()
                    && !pattern
                        .chars()
                        .any(|character| "\\.+*?()|[]{}^$".contains(character));
                plain.then_some(pattern)
            }
            Self::Literal(text) => Some(text.as_str()),
        }
    }

    /// Whether `name` passes.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Expression(expression) => expression.is_match(name),
            Self::Literal(text) => name.contains(text.as_str()),
        }
    }
}

/// The filters checked here, over what the database returns.
struct PostFilters {
    /// `name`.
    name: Option<NameFilter>,
    /// `reservation_id`.
    reservation_id: Option<NameFilter>,
    /// `availability_zone`.
    availability_zone: Option<NameFilter>,
    /// `ip` (4) and `ip6` (6): the IP version and the expression.
    addresses: Vec<(u8, NameFilter)>,
}

impl PostFilters {
    fn of(query: &ListQuery) -> Self {
        let compile = |pattern: &Option<String>| pattern.as_deref().map(NameFilter::new);
        PostFilters {
            name: compile(&query.name),
            reservation_id: compile(&query.reservation_id),
            availability_zone: compile(&query.availability_zone),
            addresses: [(4, &query.ip), (6, &query.ip6)]
                .into_iter()
                .filter_map(|(version, pattern)| {
                    pattern
                        .as_deref()
                        .map(|pattern| (version, NameFilter::new(pattern)))
                })
                .collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.reservation_id.is_none()
            && self.availability_zone.is_none()
            && self.addresses.is_empty()
    }

    /// Whether `instance` passes every filter.
    async fn pass(&self, state: &AppState, instance: &Instance) -> ApiResult<bool> {
        let text_passes = |filter: &Option<NameFilter>, value: Option<&str>| {
            filter
                .as_ref()
                .is_none_or(|filter| value.is_some_and(|value| filter.matches(value)))
        };
        if !text_passes(&self.name, Some(&instance.display_name))
            || !text_passes(&self.reservation_id, Some(&instance.reservation_id))
            || !text_passes(
                &self.availability_zone,
                instance.availability_zone.as_deref(),
            )
        {
            return Ok(false);
        }
        if self.addresses.is_empty() {
            return Ok(true);
        }
        let ports = state
            .network
            .instance_ports(&instance.uuid)
            .await
            .map_err(super::common::network_fault)?;
        Ok(self.addresses.iter().all(|(version, filter)| {
            ports
                .iter()
                .flat_map(|port| &port.ips)
                .any(|ip| ip.version == *version && filter.matches(&ip.address))
        }))
    }
}

/// The tag filters of `query` (2.26 on), each a comma-separated list.
fn tag_filters(query: &ListQuery, version: Microversion) -> TagFilters {
    let split = |text: &Option<String>| {
        text.as_deref()
            .filter(|_| version.at_least(server_tags::TAGS_SINCE))
            .map(|text| {
                text.split(',')
                    .map(str::trim)
                    .filter(|tag| !tag.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
    };
    TagFilters {
        all: split(&query.tags),
        any: split(&query.tags_any),
        not_all: split(&query.not_tags),
        not_any: split(&query.not_tags_any),
    }
}

/// Nova's order of a server list from the query's `sort_key`s and
/// `sort_dir`s: ignored keys dropped (with the direction in their place),
/// host and node for administrators only, every key without a direction
/// in the first one's (or descending), then `created_at` and the
/// tie-breaker in that direction too (ascending when every key was
/// dropped). 400 for a key Nova refuses or a direction not `asc`/`desc`.
fn sort_order(
    pairs: &[(String, String)],
    auth: &AuthContext,
    version: Microversion,
) -> ApiResult<Vec<SortKey>> {
    let values = |name: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.trim().to_string())
            .collect()
    };
    let mut keys = values("sort_key");
    let mut directions = values("sort_dir");
    let locked_sorts = version.at_least(LOCKED_SINCE);
    let ignored =
        |key: &str| IGNORED_SORT_KEYS.contains(&key) && !(locked_sorts && key == "locked");
    for key in &keys {
        let valid = SORT_KEYS.contains(&key.as_str())
            || (locked_sorts && key == "locked")
            || (ignored(key) && !version.at_least(STRICT_SORT_KEYS_SINCE));
        if !valid {
            return Err(ApiError::bad_request(format!(
                "Invalid input for query parameters sort_key. Value: {key}. '{key}' is not one of the valid sort keys"
            )));
        }
    }
    if keys.is_empty() {
        keys.push("created_at".to_string());
    }
    if directions.is_empty() {
        directions.push("desc".to_string());
    }
    let mut index = 0;
    while index < keys.len() {
        let key = keys[index].as_str();
        if ignored(key) {
            if directions.len() > index {
                directions.remove(index);
            }
            keys.remove(index);
            continue;
        }
        if ADMIN_SORT_KEYS.contains(&key) && !auth.is_admin() {
            return Err(ApiError::forbidden(format!(
                "Only administrators can sort servers by {key}"
            )));
        }
        index += 1;
    }
    if let Some(bad) = directions
        .iter()
        .find(|direction| !matches!(direction.as_str(), "asc" | "desc"))
    {
        return Err(ApiError::bad_request(format!(
            "Invalid input received: Unknown sort direction, must be 'desc' or 'asc' (got '{bad}')"
        )));
    }
    if directions.len() > keys.len() {
        return Err(ApiError::bad_request(
            "Invalid input received: Sort direction size exceeds sort key size",
        ));
    }
    let default_descending = directions
        .first()
        .is_some_and(|direction| direction == "desc");
    let mut order: Vec<SortKey> = Vec::with_capacity(keys.len() + 2);
    let mut named: Vec<&str> = Vec::with_capacity(keys.len());
    for (index, key) in keys.iter().enumerate() {
        named.push(key);
        let descending = directions
            .get(index)
            .map_or(default_descending, |direction| direction == "desc");
        if let Some(column) = SortColumn::of_nova_key(key) {
            order.push(SortKey { column, descending });
        }
    }
    // Nova's default keys, `created_at` and `id` (the uuid here).
    for (key, column) in [
        ("created_at", SortColumn::CreatedAt),
        ("uuid", SortColumn::Uuid),
    ] {
        if !named.contains(&key) {
            order.push(SortKey {
                column,
                descending: default_descending,
            });
        }
    }
    Ok(order)
}

fn parse_time(name: &str, text: &str) -> ApiResult<String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(&format!("{text}Z")))
        .map(|time| novum_db::timestamp(time.with_timezone(&chrono::Utc)))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "Invalid input for query parameters {name}. Value: {text}."
            ))
        })
}

/// The database's part of the list `query` asks `auth` for.
fn listing(
    query: &ListQuery,
    auth: &AuthContext,
    version: Microversion,
    pairs: &[(String, String)],
) -> ApiResult<ServerListing> {
    let all_tenants = match query.all_tenants.as_deref() {
        None => false,
        Some("") => true,
        Some(text) => parse_bool(text).unwrap_or(true),
    };
    if all_tenants {
        auth.require_admin("os_compute_api:servers:index:get_all_tenants")?;
    }
    let project_id = if all_tenants {
        query.project_id.clone().or(query.tenant_id.clone())
    } else {
        Some(auth.project_id.clone())
    };
    let changes_since = query
        .changes_since
        .as_deref()
        .map(|text| parse_time("changes-since", text))
        .transpose()?;
    let changes_before = query
        .changes_before
        .as_deref()
        .map(|text| parse_time("changes-before", text))
        .transpose()?;
    if let (Some(since), Some(before)) = (&changes_since, &changes_before)
        && before < since
    {
        return Err(ApiError::bad_request(
            "The value of changes-since must be less than or equal to changes-before.",
        ));
    }
    // Nova's `deleted` filter (admins only): without it, a `changes-since`
    // or `changes-before` lists every instance and anything else hides
    // deleted and SOFT_DELETED ones.
    let mut deleted = match query.deleted.as_deref().filter(|_| auth.is_admin()) {
        Some(text) => Some(parse_bool(text).unwrap_or(false)),
        None if changes_since.is_some() || changes_before.is_some() => None,
        None => Some(false),
    };
    let vm_states = query.status.as_deref().map(states::vm_states_for_status);
    if vm_states.as_deref() == Some(&[vm::DELETED][..]) {
        if !auth.is_admin() {
            return Err(ApiError::forbidden(
                "Only administrators may list deleted instances",
            ));
        }
        deleted = Some(true);
    }
    if let (Some(status), Some(states)) = (&query.status, &vm_states)
        && states.is_empty()
        && version.at_least(38)
    {
        return Err(ApiError::bad_request(format!(
            "Invalid status value: {status}"
        )));
    }
    let locked = match query.locked.as_deref().filter(|_| version.at_least(LOCKED_SINCE)) {
        None => None,
        Some(text) => Some(parse_bool(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Unrecognized value '{text}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"
            ))
        })?),
    };
    let user_id = query
        .user_id
        .clone()
        .filter(|_| auth.is_admin() || version.at_least(USER_FILTER_FOR_EVERYONE_SINCE));
    Ok(ServerListing {
        project_id,
        user_id,
        deleted,
        vm_states: vm_states.map(|states| states.iter().map(|state| state.to_string()).collect()),
        host: query.host.clone().filter(|_| auth.is_admin()),
        flavor_id: query.flavor.clone(),
        image_ref: query.image.clone(),
        locked,
        name_contains: query
            .name
            .as_deref()
            .map(NameFilter::new)
            .and_then(|filter| filter.literal().map(str::to_string)),
        changes_since,
        changes_before,
        tags: tag_filters(query, version),
        sort: sort_order(pairs, auth, version)?,
    })
}

fn summary_view(state: &AppState, instance: &Instance) -> Value {
    json!({"id": instance.uuid, "name": instance.display_name, "links": links(state, "servers", &instance.uuid)})
}

/// The servers of one page and whether more follow: the database's pages
/// after the marker, less what the post-filters drop, until `limit` are
/// kept.
async fn servers_page(
    state: &AppState,
    listing: &ServerListing,
    post: &PostFilters,
    marker: Option<String>,
    limit: usize,
) -> ApiResult<(Vec<Instance>, bool)> {
    if limit == 0 {
        return Ok((Vec::new(), false));
    }
    let batch = if post.is_empty() {
        limit + 1
    } else {
        (limit + 1).max(POST_FILTER_BATCH)
    };
    let mut kept: Vec<Instance> = Vec::with_capacity(limit + 1);
    let mut after = marker;
    loop {
        let rows = store::server_listing::page(&state.db, listing, after.as_deref(), batch).await?;
        let exhausted = rows.len() < batch;
        after = rows.last().map(|instance| instance.uuid.clone());
        for instance in rows {
            if post.pass(state, &instance).await? {
                kept.push(instance);
                if kept.len() > limit {
                    break;
                }
            }
        }
        if exhausted || kept.len() > limit {
            break;
        }
    }
    let more = kept.len() > limit;
    kept.truncate(limit);
    Ok((kept, more))
}

/// `GET /servers` (`detail` false) and `/servers/detail`.
pub(super) async fn list(
    state: &AppState,
    auth: &AuthContext,
    version: Microversion,
    query: ListQuery,
    raw: Option<String>,
    detail: bool,
) -> ApiResult<Response> {
    let pairs = parse_query(raw.as_deref());
    let listing = listing(&query, auth, version, &pairs)?;
    let limit = query.page.limit(state)?;
    if let Some(marker) = &query.page.marker
        && store::server_listing::marker(&state.db, marker)
            .await?
            .is_none()
    {
        return Err(ApiError::bad_request(format!(
            "marker [{marker}] not found"
        )));
    }
    let post = PostFilters::of(&query);
    let (page, more) =
        servers_page(state, &listing, &post, query.page.marker.clone(), limit).await?;
    let servers_links = page.last().filter(|_| more).map(|last| {
        next_link(
            state,
            if detail { "servers/detail" } else { "servers" },
            &pairs,
            &last.uuid,
        )
    });
    if !detail {
        let servers: Vec<Value> = page
            .iter()
            .map(|instance| summary_view(state, instance))
            .collect();
        return Ok(Json(ServerPage {
            servers,
            servers_links,
        })
        .into_response());
    }
    let host_statuses = shown_host_statuses(
        state,
        auth,
        version,
        HOST_STATUS_SINCE,
        &page.iter().collect::<Vec<_>>(),
    )
    .await?;
    let uuids: Vec<String> = page.iter().map(|instance| instance.uuid.clone()).collect();
    let tags = if version.at_least(server_tags::TAGS_SINCE) {
        let mut conn = state.db.connection().await?;
        store::tags::of_instances(&mut conn, &uuids).await?
    } else {
        HashMap::new()
    };
    let mut networking = server_networks::of_servers(state, &uuids).await?;
    let networking: Vec<ServerNetworking> = page
        .iter()
        .map(|instance| networking.remove(&instance.uuid).unwrap_or_default())
        .collect();
    let servers: Vec<ServerView> = page
        .iter()
        .zip(&networking)
        .map(|(instance, networking)| {
            detail_view(
                state,
                auth,
                version,
                instance,
                host_statuses.as_ref(),
                networking,
                tags.get(&instance.uuid)
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            )
        })
        .collect();
    // Serialized here, while the views still borrow the page.
    Ok(Json(ServerPage {
        servers,
        servers_links,
    })
    .into_response())
}

/// A page of a server list: its servers and, when more follow, the link to
/// the next page.
#[derive(Serialize)]
struct ServerPage<T: Serialize> {
    servers: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    servers_links: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::NameFilter;

    fn name_matches(pattern: &str, name: &str) -> bool {
        NameFilter::new(pattern).matches(name)
    }

    #[test]
    fn name_filter_is_a_regex_search() {
        assert!(name_matches("web", "my-web-1"));
        assert!(name_matches("^web", "web-1"));
        assert!(!name_matches("^web", "my-web"));
        assert!(name_matches("web-.$", "web-1"));
        assert!(!name_matches("web$", "web-1"));
        assert!(name_matches("w.*1", "web-1"));
        assert!(!name_matches("db", "web"));
        // What Tempest sends, and a pattern that is no expression at all.
        assert!(name_matches(
            r"^tempest\-server\-[0-9]+$",
            "tempest-server-12"
        ));
        assert!(!name_matches(
            r"^tempest\-server\-[0-9]+$",
            "tempest-server-x"
        ));
        assert!(name_matches("web[", "my-web[1]"));
    }

    #[test]
    fn only_plain_text_narrows_in_sql() {
        assert_eq!(NameFilter::new("web-1").literal(), Some("web-1"));
        assert_eq!(NameFilter::new("a_b%").literal(), Some("a_b%"));
        assert_eq!(NameFilter::new("web[").literal(), Some("web["));
        assert_eq!(NameFilter::new("^web").literal(), None);
        assert_eq!(NameFilter::new("w.b").literal(), None);
        assert_eq!(NameFilter::new(r"a\-b").literal(), None);
        assert_eq!(NameFilter::new("").literal(), None);
    }
}
