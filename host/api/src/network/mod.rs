//! The Neutron v2.0 HTTP subset under `/network`: the version documents,
//! networks, subnets, ports, security groups and their rules, quotas,
//! extensions and the auto-allocated topology, over
//! [`novum_network::NetworkService`].
//!
//! - Every error of these routes is Neutron's body
//!   (`{"NeutronError": {"type", "message", "detail"}}`): the domain's
//!   [`NetworkError`] gives type and status; errors raised here (a malformed
//!   body, a missing token, an unknown path) take the webob name of their
//!   status (`HTTPBadRequest`, `HTTPUnauthorized`, `HTTPNotFound`).
//! - Who calls: the compute token ([`AuthContext`]) as a
//!   [`Caller`] (its project, admin or not); writes need the member role.
//! - Paths are served with and without Neutron's `.json` suffix: the
//!   collections by an alias route each, the members by stripping it from
//!   the id ([`id`]).
//! - Listing ([`ListQuery`]): every attribute is an equality filter (a
//!   repeated key is any of its values), `fields` (repeated) limits the keys
//!   shown, `sort_key`/`sort_dir` (repeated, paired), `limit`, `marker`,
//!   `page_reverse`, with `<collection>_links` when a page has neighbours.
//! - Shapes ([`render`]): Neutron's, with `tenant_id` and `project_id`,
//!   `created_at`/`updated_at` as `YYYY-MM-DDTHH:MM:SSZ`, `tags: []`;
//!   `provider:*` and `binding:*` (but `binding:vnic_type`) for admins only.

pub mod auto_allocated_topology;
pub mod networks;
pub mod ports;
pub mod quotas;
pub mod security_groups;
pub mod subnets;
pub mod versions;

use axum::extract::FromRequestParts;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;
use crate::auth::AuthContext;
use crate::fault::{ApiError, FaultStyle};
use novum_network::{Caller, Listing, NetworkError, Page, SortDirection};

/// The Network API version served.
pub const NETWORK_VERSION: &str = "v2.0";

/// An error answered in Neutron's shape.
#[derive(Debug)]
pub struct NeutronFault(pub ApiError);

impl From<ApiError> for NeutronFault {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<NetworkError> for NeutronFault {
    fn from(error: NetworkError) -> Self {
        let kind = error.error_type();
        Self(ApiError::from(error).styled(FaultStyle::Neutron(Some(kind))))
    }
}

impl From<novum_db::DbError> for NeutronFault {
    fn from(error: novum_db::DbError) -> Self {
        Self(ApiError::internal(error))
    }
}

impl IntoResponse for NeutronFault {
    fn into_response(self) -> Response {
        let style = match self.0.style() {
            FaultStyle::Neutron(kind) => FaultStyle::Neutron(kind),
            _ => FaultStyle::Neutron(None),
        };
        self.0.styled(style).into_response()
    }
}

/// The status and message each network failure is answered with (a
/// database failure: a logged 500 with a generic message), in the default
/// (Nova) shape: a compute handler that meets a network error answers a Nova
/// fault. [`NeutronFault`] adds Neutron's type for the network routes.
impl From<NetworkError> for ApiError {
    fn from(error: NetworkError) -> Self {
        match error {
            NetworkError::Db(cause) => ApiError::internal(cause),
            other => {
                let status = StatusCode::from_u16(other.status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                ApiError::new(status, other.to_string())
            }
        }
    }
}

/// The result of the network handlers.
pub type NetResult<T> = Result<T, NeutronFault>;

crate::fault_extractors!(NeutronFault);

impl From<PathRejection> for NeutronFault {
    fn from(rejection: PathRejection) -> Self {
        NeutronFault(ApiError::from(rejection))
    }
}

impl From<QueryRejection> for NeutronFault {
    fn from(rejection: QueryRejection) -> Self {
        NeutronFault(ApiError::from(rejection))
    }
}

/// The caller of a network request: the token's context and the domain's
/// [`Caller`].
pub struct NetAuth {
    /// The token's context (roles, user).
    pub auth: AuthContext,
    /// Project and admin flag, as the network service takes them.
    pub caller: Caller,
}

impl NetAuth {
    /// 403 `PolicyNotAuthorized` for `rule` unless the caller may change
    /// things (member or admin; a reader may not).
    pub fn require_writer(&self, rule: &str) -> NetResult<()> {
        if self.auth.can_write() {
            Ok(())
        } else {
            Err(NetworkError::PolicyNotAuthorized(rule.to_string()).into())
        }
    }

    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.caller.is_admin
    }
}

impl FromRequestParts<AppState> for NetAuth {
    type Rejection = NeutronFault;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> NetResult<Self> {
        let auth = AuthContext::from_request_parts(parts, state).await?;
        let caller = Caller {
            project_id: auth.project_id.clone(),
            is_admin: auth.is_admin(),
        };
        Ok(Self { auth, caller })
    }
}

/// The `/network` routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(versions::routes())
        .merge(networks::routes())
        .merge(subnets::routes())
        .merge(ports::routes())
        .merge(security_groups::routes())
        .merge(quotas::routes())
        .merge(auto_allocated_topology::routes())
        .fallback(|| async { NeutronFault(ApiError::no_such_resource()) })
}

/// An id from a path segment, without Neutron's `.json` suffix.
pub fn id(segment: String) -> String {
    match segment.strip_suffix(".json") {
        Some(stripped) => stripped.to_string(),
        None => segment,
    }
}

/// A stored timestamp as Neutron prints it (`2024-01-01T00:00:00Z`).
pub fn neutron_time(stored: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(stored)
        .map(|at| {
            at.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        })
        .unwrap_or_else(|_| stored.to_string())
}

/// `{"<key>": <value>}` with `status`.
pub fn reply(status: StatusCode, key: &str, value: Value) -> Response {
    let mut body = Map::new();
    body.insert(key.to_string(), value);
    (status, axum::Json(Value::Object(body))).into_response()
}

/// The 201 of a create: `{"<resource>": {...}}`, or `{"<collection>":
/// [...]}` for a bulk create.
pub fn created(resource: &str, collection: &str, bulk: bool, mut items: Vec<Value>) -> Response {
    if bulk {
        reply(StatusCode::CREATED, collection, Value::Array(items))
    } else {
        reply(
            StatusCode::CREATED,
            resource,
            items.pop().unwrap_or(Value::Null),
        )
    }
}

/// `value` (an object) limited to `fields` (all of it when empty).
pub fn only_fields(value: Value, fields: &[String]) -> Value {
    if fields.is_empty() {
        return value;
    }
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(key, _)| fields.iter().any(|field| field == key))
                .collect(),
        ),
        other => other,
    }
}

/// Renders one resource: its JSON limited to the requested fields.
pub fn render(value: Value, fields: &[String]) -> Value {
    only_fields(value, fields)
}

/// A 400 in Neutron's words for attribute `key`.
pub fn invalid_attribute(key: &str, reason: impl std::fmt::Display) -> NeutronFault {
    NeutronFault(ApiError::bad_request(format!(
        "Invalid input for {key}. Reason: {reason}."
    )))
}

// ---------------------------------------------------------------- bodies

/// The attributes of a request body's resource (`{"network": {...}}`),
/// taken out one by one; what is left at [`Attrs::finish`] is unknown.
pub struct Attrs {
    map: Map<String, Value>,
}

impl Attrs {
    /// The object under `resource` in `bytes` (a JSON body).
    pub fn parse(bytes: &[u8], resource: &str) -> NetResult<Self> {
        Self::of_body(parse_body(bytes)?, resource)
    }

    /// The object under `resource` in `body`.
    fn of_body(body: Value, resource: &str) -> NetResult<Self> {
        let Value::Object(mut outer) = body else {
            return Err(NeutronFault(ApiError::bad_request(
                "Body contains invalid data",
            )));
        };
        match outer.remove(resource) {
            Some(Value::Object(map)) => Ok(Self { map }),
            Some(_) => Err(NeutronFault(ApiError::bad_request(format!(
                "Invalid input for {resource}: it must be an object"
            )))),
            None => Err(NeutronFault(ApiError::bad_request(format!(
                "Unable to find '{resource}' in request body"
            )))),
        }
    }

    /// The objects of a create body: `{"<resource>": {...}}`, or Neutron's
    /// bulk form `{"<collection>": [{...}, ...]}` (then `true`).
    pub fn parse_create(
        bytes: &[u8],
        resource: &str,
        collection: &str,
    ) -> NetResult<(Vec<Self>, bool)> {
        let body: Value = parse_body(bytes)?;
        if let Value::Object(outer) = &body
            && let Some(items) = outer.get(collection)
        {
            let Value::Array(items) = items else {
                return Err(NeutronFault(ApiError::bad_request(format!(
                    "Invalid input for {collection}: it must be a list"
                ))));
            };
            if items.is_empty() || outer.len() > 1 {
                return Err(NeutronFault(ApiError::bad_request(format!(
                    "Resources required: '{collection}' must be a non-empty list and alone in the body"
                ))));
            }
            let mut all = Vec::with_capacity(items.len());
            for item in items {
                let Value::Object(map) = item else {
                    return Err(NeutronFault(ApiError::bad_request(format!(
                        "Invalid input for {collection}: each item must be an object"
                    ))));
                };
                all.push(Self { map: map.clone() });
            }
            return Ok((all, true));
        }
        Ok((vec![Self::of_body(body, resource)?], false))
    }

    /// Whether `key` was given.
    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// The raw value of `key`.
    pub fn value(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    /// A string (not null).
    pub fn string(&mut self, key: &str) -> NetResult<Option<String>> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(invalid_attribute(
                key,
                format!("'{}' is not a valid string", show(&other)),
            )),
        }
    }

    /// A string or null (`Some(None)`).
    pub fn nullable_string(&mut self, key: &str) -> NetResult<Option<Option<String>>> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(text)) => Ok(Some(Some(text))),
            Some(other) => Err(invalid_attribute(
                key,
                format!("'{}' is not a valid string", show(&other)),
            )),
        }
    }

    /// A boolean (also `"true"`, `"False"`, `1`, as Neutron converts).
    pub fn boolean(&mut self, key: &str) -> NetResult<Option<bool>> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(flag)),
            Some(Value::String(text)) => novum_network::listing::parse_bool(key, &text)
                .map(Some)
                .map_err(|_| {
                    invalid_attribute(key, format!("'{text}' cannot be converted to boolean"))
                }),
            Some(Value::Number(number)) if number.as_i64() == Some(0) => Ok(Some(false)),
            Some(Value::Number(number)) if number.as_i64() == Some(1) => Ok(Some(true)),
            Some(other) => Err(invalid_attribute(
                key,
                format!("'{}' cannot be converted to boolean", show(&other)),
            )),
        }
    }

    /// An integer (also a decimal string); null is `Some(None)`.
    pub fn nullable_int(&mut self, key: &str) -> NetResult<Option<Option<i64>>> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(value) => int_of(key, &value).map(|number| Some(Some(number))),
        }
    }

    /// An integer (also a decimal string).
    pub fn int(&mut self, key: &str) -> NetResult<Option<i64>> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(value) => int_of(key, &value).map(Some),
        }
    }

    /// A list of strings.
    pub fn strings(&mut self, key: &str) -> NetResult<Option<Vec<String>>> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text),
                    other => Err(invalid_attribute(
                        key,
                        format!("'{}' is not a valid string", show(&other)),
                    )),
                })
                .collect::<NetResult<Vec<_>>>()
                .map(Some),
            Some(other) => Err(invalid_attribute(
                key,
                format!("'{}' is not a list", show(&other)),
            )),
        }
    }

    /// A list of objects, each read by `each`.
    pub fn objects<T>(
        &mut self,
        key: &str,
        mut each: impl FnMut(&mut Attrs) -> NetResult<T>,
    ) -> NetResult<Option<Vec<T>>> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let Value::Object(map) = item else {
                        return Err(invalid_attribute(
                            key,
                            format!("'{}' is not a dictionary", show(&item)),
                        ));
                    };
                    let mut inner = Attrs { map };
                    let value = each(&mut inner)?;
                    inner.finish()?;
                    out.push(value);
                }
                Ok(Some(out))
            }
            Some(other) => Err(invalid_attribute(
                key,
                format!("'{}' is not a list", show(&other)),
            )),
        }
    }

    /// The owner asked for: `project_id` or `tenant_id` (which must agree).
    pub fn owner(&mut self) -> NetResult<Option<String>> {
        let project = self.string("project_id")?;
        let tenant = self.string("tenant_id")?;
        match (project, tenant) {
            (Some(project), Some(tenant)) if project != tenant => Err(NeutronFault(
                ApiError::bad_request("'project_id' and 'tenant_id' do not match"),
            )),
            (Some(project), _) => Ok(Some(project)),
            (None, tenant) => Ok(tenant),
        }
    }

    /// Refuses read-only attributes on update.
    pub fn refuse(&self, keys: &[&str]) -> NetResult<()> {
        for key in keys {
            if self.map.contains_key(*key) {
                return Err(NeutronFault(ApiError::bad_request(format!(
                    "Cannot update read-only attribute {key}"
                ))));
            }
        }
        Ok(())
    }

    /// Drops `keys` if given (attributes accepted and ignored).
    pub fn ignore(&mut self, keys: &[&str]) {
        for key in keys {
            self.map.remove(*key);
        }
    }

    /// 400 naming the attributes not taken.
    pub fn finish(self) -> NetResult<()> {
        if self.map.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = self.map.keys().map(String::as_str).collect();
        Err(NeutronFault(ApiError::bad_request(format!(
            "Unrecognized attribute(s) '{}'",
            names.join(", ")
        ))))
    }
}

fn int_of(key: &str, value: &Value) -> NetResult<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| invalid_attribute(key, format!("'{}' is not an integer", show(value))))
}

/// A value as Neutron quotes it in a message.
fn show(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "None".to_string(),
        other => other.to_string(),
    }
}

/// Parses a JSON body (strict, as every API's), in Neutron's shape on error.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> NetResult<T> {
    crate::body::parse_json(bytes).map_err(NeutronFault)
}

// ---------------------------------------------------------------- listing

/// The query of a listing: the domain's [`Listing`] and the `fields` asked.
pub struct ListQuery {
    /// Filters, order, page.
    pub listing: Listing,
    /// Keys to show (empty: all).
    pub fields: Vec<String>,
    /// The query's pairs that are not paging (`marker`, `page_reverse`),
    /// kept for the links.
    pub kept: Vec<(String, String)>,
}

/// Query parameters that are not filters.
const NOT_FILTERS: [&str; 6] = [
    "fields",
    "sort_key",
    "sort_dir",
    "limit",
    "marker",
    "page_reverse",
];

impl ListQuery {
    /// Parses a listing's query pairs.
    pub fn parse(params: &[(String, String)]) -> NetResult<Self> {
        let mut listing = Listing::default();
        let mut fields = Vec::new();
        let mut sort_keys = Vec::new();
        let mut sort_dirs = Vec::new();
        let mut kept = Vec::new();
        for (key, value) in params {
            match key.as_str() {
                "fields" => fields.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|field| !field.is_empty())
                        .map(str::to_string),
                ),
                "sort_key" => sort_keys.push(value.clone()),
                "sort_dir" => sort_dirs.push(value.clone()),
                "limit" => {
                    let limit: i64 = value.trim().parse().map_err(|_| {
                        bad(format!(
                            "Limit must be an integer 0 or greater and not '{value}'"
                        ))
                    })?;
                    if limit < 0 {
                        return Err(bad(format!(
                            "Limit must be an integer 0 or greater and not '{value}'"
                        )));
                    }
                    // 0: no limit, as Neutron.
                    listing.limit = usize::try_from(limit).ok().filter(|limit| *limit > 0);
                }
                "marker" => listing.marker = Some(value.clone()),
                "page_reverse" => {
                    listing.page_reverse = novum_network::listing::parse_bool(key, value)?;
                }
                _ => {}
            }
            if !matches!(key.as_str(), "marker" | "page_reverse") {
                kept.push((key.clone(), value.clone()));
            }
            if !NOT_FILTERS.contains(&key.as_str()) {
                match listing.filters.iter_mut().find(|(name, _)| name == key) {
                    Some((_, values)) => values.push(value.clone()),
                    None => listing.filters.push((key.clone(), vec![value.clone()])),
                }
            }
        }
        if !sort_dirs.is_empty() && sort_dirs.len() != sort_keys.len() {
            return Err(bad("The number of sort_keys and sort_dirs must be same"));
        }
        for (index, key) in sort_keys.into_iter().enumerate() {
            let direction = match sort_dirs.get(index) {
                None => SortDirection::Asc,
                Some(text) => SortDirection::parse(text).ok_or_else(|| {
                    bad(format!(
                        "{text} is an invalid value for sort_dir, valid values are 'asc' and 'desc'"
                    ))
                })?,
            };
            listing.sort.push((key, direction));
        }
        Ok(Self {
            listing,
            fields,
            kept,
        })
    }

    /// The collection body: `{"<collection>": [...], "<collection>_links":
    /// [...]}` (links only when the page has a neighbour): each item shown
    /// by `view`, limited to the asked `fields`, its `id` the links' marker.
    pub fn page_body<T>(
        &self,
        state: &AppState,
        collection: &str,
        path: &str,
        page: &Page<T>,
        id: impl Fn(&T) -> &str,
        view: impl Fn(&T) -> Value,
    ) -> Response {
        let items = page
            .items
            .iter()
            .map(|item| render(view(item), &self.fields))
            .collect();
        let mut body = Map::new();
        body.insert(collection.to_string(), Value::Array(items));
        let mut links = Vec::new();
        if self.listing.limit.is_some() {
            let base = format!(
                "{}/network/{NETWORK_VERSION}/{path}",
                state.config.public_base_url()
            );
            let link = |rel: &str, marker: &str, reverse: bool| {
                let mut pairs = self.kept.clone();
                pairs.push(("marker".to_string(), marker.to_string()));
                if reverse {
                    pairs.push(("page_reverse".to_string(), "True".to_string()));
                }
                let query = pairs
                    .iter()
                    .map(|(key, value)| {
                        format!("{}={}", percent_encode(key), percent_encode(value))
                    })
                    .collect::<Vec<_>>()
                    .join("&");
                json!({"rel": rel, "href": format!("{base}?{query}")})
            };
            let (first, last) = (page.items.first().map(&id), page.items.last().map(&id));
            let (ahead, behind) = if self.listing.page_reverse {
                (self.listing.marker.is_some(), page.more)
            } else {
                (page.more, self.listing.marker.is_some())
            };
            if ahead && let Some(last) = last {
                links.push(link("next", last, false));
            }
            if behind && let Some(first) = first {
                links.push(link("previous", first, true));
            }
        }
        if !links.is_empty() {
            body.insert(format!("{collection}_links"), Value::Array(links));
        }
        axum::Json(Value::Object(body)).into_response()
    }
}

fn bad(message: impl Into<String>) -> NeutronFault {
    NeutronFault(ApiError::bad_request(message))
}

/// Percent-encodes a query component.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The query pairs of a request.
pub type Pairs = Query<Vec<(String, String)>>;

/// The `fields` of a show request (`?fields=id&fields=name`).
pub fn show_fields(params: &[(String, String)]) -> Vec<String> {
    params
        .iter()
        .filter(|(key, _)| key == "fields")
        .flat_map(|(_, value)| value.split(',').map(str::trim).map(str::to_string))
        .filter(|field| !field.is_empty())
        .collect()
}
