//! Servers: create (multi-create, hints, groups, zones, key pairs, boot from
//! image), list and detail (filters, pagination), show, update, delete.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha224};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{api_time, compute_url, links};
use super::flavors;
use super::server_list::{self, ListQuery};
use super::server_networks::{self, ServerNetworking};
use super::server_tags;
use super::services;
use crate::AppState;
use crate::auth::AuthContext;
use crate::bodies::TypedBody;
use crate::bodies::fields::{self, Personality, PersonalitySizes};
use crate::bodies::server::{Networks, ServerCreate, ServerCreateBody, ServerUpdateBody};
use crate::extract::{Path, Query};
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use crate::request_id::RequestId;
use novum_compute::conductor::instance_admin::ServerChanges;
use novum_compute::conductor::model::{FlavorSnapshot, Instance};
use novum_compute::conductor::snapshot;
use novum_compute::conductor::states::{self, vm};
use novum_compute::conductor::{BuildRequest, Caller, PortPlan};
use novum_compute::store;
use novum_compute::store::services::HostStatus;
use novum_images as images;
use novum_network::InstancePortRequest;
use novum_quota::Resource;

/// Instance `uuid` if the caller may see it (its project, or admin); 404 otherwise.
pub async fn fetch_visible(
    state: &AppState,
    auth: &AuthContext,
    uuid: &str,
) -> ApiResult<Instance> {
    Instance::fetch(state.db.pool(), uuid)
        .await?
        .filter(|instance| instance.deleted == 0 && auth.may_see_project(&instance.project_id))
        .ok_or_else(|| ApiError::not_found(format!("Instance {uuid} could not be found.")))
}

/// Instance `uuid` if `auth` may see it, deleted or not (what the
/// instance-action routes read from 2.21).
pub async fn fetch_visible_even_deleted(
    state: &AppState,
    auth: &AuthContext,
    uuid: &str,
) -> ApiResult<Instance> {
    Instance::fetch(state.db.pool(), uuid)
        .await?
        .filter(|instance| auth.may_see_project(&instance.project_id))
        .ok_or_else(|| ApiError::not_found(format!("Instance {uuid} could not be found.")))
}

/// The instance name an admin sees (`OS-EXT-SRV-ATTR:instance_name`).
pub fn instance_name(uuid: &str) -> String {
    format!("instance-{}", uuid.get(..8).unwrap_or(uuid))
}

fn host_id(instance: &Instance) -> String {
    match &instance.host {
        Some(host) => hex::encode(Sha224::digest(
            format!("{}{host}", instance.project_id).as_bytes(),
        )),
        None => String::new(),
    }
}

/// The `host_status` of each host, for the responses that show the field.
pub type HostStatuses = HashMap<String, HostStatus>;

/// The microversion from which show and list detail carry `host_status`.
pub(super) const HOST_STATUS_SINCE: u16 = 16;
/// The microversion from which the update response carries `host_status`
/// (Nova shows every attribute there from 2.75 on).
const HOST_STATUS_IN_UPDATE_SINCE: u16 = 75;

/// The host statuses of `servers`' hosts a response at `version` shows
/// `auth`: from `since`, to admins (Nova's default
/// `os_compute_api:servers:show:host_status` policy); `None` leaves the
/// field out.
pub(super) async fn shown_host_statuses(
    state: &AppState,
    auth: &AuthContext,
    version: Microversion,
    since: u16,
    servers: &[&Instance],
) -> ApiResult<Option<HostStatuses>> {
    if !version.at_least(since) || !auth.is_admin() {
        return Ok(None);
    }
    let mut hosts: Vec<String> = servers
        .iter()
        .filter_map(|instance| instance.host.clone())
        .collect();
    hosts.sort();
    hosts.dedup();
    Ok(Some(services::host_statuses(state, &hosts).await?))
}

/// The `host_status` of `instance`: its host's, `""` without a host or
/// when the host has no compute service.
fn host_status(statuses: &HostStatuses, instance: &Instance) -> HostStatus {
    instance
        .host
        .as_ref()
        .and_then(|host| statuses.get(host))
        .copied()
        .unwrap_or(HostStatus::NoHost)
}

/// One value of a server's view, borrowed from the instance where it can
/// be: a page of servers is serialized without building a JSON tree (no
/// per-field copies, no sorted maps; measured, a page of 1,000 servers).
pub enum Field<'a> {
    /// A string.
    Str(&'a str),
    /// A string, or `null`.
    OptStr(Option<&'a str>),
    /// A string made for the view.
    Owned(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// `null`.
    Null,
    /// Strings, as an array.
    Strings(&'a [String]),
    /// A JSON object.
    Object(&'a Map<String, Value>),
    /// Any JSON.
    Json(Value),
}

impl<'a> From<&'a str> for Field<'a> {
    fn from(text: &'a str) -> Self {
        Self::Str(text)
    }
}

impl<'a> From<&'a String> for Field<'a> {
    fn from(text: &'a String) -> Self {
        Self::Str(text)
    }
}

impl<'a> From<&'a Option<String>> for Field<'a> {
    fn from(text: &'a Option<String>) -> Self {
        Self::OptStr(text.as_deref())
    }
}

impl From<String> for Field<'_> {
    fn from(text: String) -> Self {
        Self::Owned(text)
    }
}

impl From<i64> for Field<'_> {
    fn from(number: i64) -> Self {
        Self::Int(number)
    }
}

impl From<bool> for Field<'_> {
    fn from(flag: bool) -> Self {
        Self::Bool(flag)
    }
}

impl From<Value> for Field<'_> {
    fn from(value: Value) -> Self {
        Self::Json(value)
    }
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Str(text) => serializer.serialize_str(text),
            Self::OptStr(Some(text)) => serializer.serialize_str(text),
            Self::OptStr(None) | Self::Null => serializer.serialize_none(),
            Self::Owned(text) => serializer.serialize_str(text),
            Self::Int(number) => serializer.serialize_i64(*number),
            Self::Bool(flag) => serializer.serialize_bool(*flag),
            Self::Strings(texts) => texts.serialize(serializer),
            Self::Object(object) => object.serialize(serializer),
            Self::Json(value) => value.serialize(serializer),
        }
    }
}

/// A server's detailed view ([`detail_view`]): its fields in order, each
/// name once; serialized as a JSON object.
pub struct ServerView<'a> {
    fields: Vec<(&'static str, Field<'a>)>,
}

impl<'a> ServerView<'a> {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            fields: Vec::with_capacity(capacity),
        }
    }

    fn push(&mut self, name: &'static str, value: impl Into<Field<'a>>) {
        self.fields.push((name, value.into()));
    }

    /// The view as a JSON tree (a single server's answer, which callers
    /// still change).
    pub fn into_value(self) -> Value {
        // A map of string keys always serializes.
        serde_json::to_value(&self).unwrap_or_default()
    }
}

impl Serialize for ServerView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (name, value) in &self.fields {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// The detailed view of a server for `version`; `host_statuses` (see
/// [`shown_host_statuses`]) adds `host_status`.
pub fn detail_view<'a>(
    state: &AppState,
    auth: &AuthContext,
    version: Microversion,
    instance: &'a Instance,
    host_statuses: Option<&HostStatuses>,
    networking: &'a ServerNetworking,
    tags: &'a [String],
) -> ServerView<'a> {
    let admin = auth.is_admin();
    let status = states::status(&instance.vm_state, instance.task_state.as_deref());
    let base = compute_url(state);
    let flavor = instance.flavor().ok();
    let flavor_view = match (&flavor, version.at_least(47)) {
        (Some(flavor), true) => json!({
            "vcpus": flavor.vcpus,
            "ram": flavor.memory_mb,
            "disk": flavor.root_gb,
            "ephemeral": flavor.ephemeral_gb,
            "swap": flavor.swap,
            "original_name": flavor.name,
            "extra_specs": flavor.extra_specs,
        }),
        _ => json!({
            "id": instance.flavor_id,
            "links": [{"rel": "bookmark", "href": format!("{base}/flavors/{}", instance.flavor_id)}],
        }),
    };
    let image = if instance.image_ref.is_empty() {
        json!("")
    } else {
        let mut image = json!({"id": instance.image_ref, "links": [{"rel": "bookmark", "href": format!("{base}/images/{}", instance.image_ref)}]});
        if version.at_least(IMAGE_PROPERTIES_SINCE) {
            image["properties"] = json!(standard_image_properties(instance));
        }
        image
    };
    let mut view = ServerView::with_capacity(48);
    view.push("id", &instance.uuid);
    view.push("name", &instance.display_name);
    view.push("status", status);
    view.push("tenant_id", &instance.project_id);
    view.push("user_id", &instance.user_id);
    view.push("metadata", json!(instance.metadata_map()));
    view.push("hostId", host_id(instance));
    view.push("image", image);
    view.push("flavor", flavor_view);
    view.push("created", api_time(&instance.created_at));
    view.push("updated", api_time(&instance.updated_at));
    view.push("addresses", Field::Object(&networking.addresses));
    view.push("accessIPv4", &instance.access_ip_v4);
    view.push("accessIPv6", &instance.access_ip_v6);
    view.push("links", links(state, "servers", &instance.uuid));
    view.push("OS-DCF:diskConfig", "MANUAL");
    view.push(
        "OS-EXT-AZ:availability_zone",
        instance.availability_zone.as_deref().unwrap_or_default(),
    );
    view.push("config_drive", &instance.config_drive);
    view.push("key_name", &instance.key_name);
    let time_micros = |time: &Option<String>| match time.as_deref() {
        Some(time) => Field::Owned(super::common::api_time_micros(time)),
        None => Field::Null,
    };
    view.push("OS-SRV-USG:launched_at", time_micros(&instance.launched_at));
    view.push(
        "OS-SRV-USG:terminated_at",
        time_micros(&instance.terminated_at),
    );
    view.push("OS-EXT-STS:task_state", &instance.task_state);
    view.push("OS-EXT-STS:vm_state", &instance.vm_state);
    view.push("OS-EXT-STS:power_state", instance.power_state);
    view.push("os-extended-volumes:volumes_attached", Field::Strings(&[]));
    // Nova shows `security_groups` only for a server that has some.
    if !networking.security_groups.is_empty() {
        view.push("security_groups", networking.security_groups_view());
    }
    if status == "ACTIVE" || status == "BUILD" {
        view.push("progress", if status == "ACTIVE" { 100 } else { 0 });
    }
    if admin {
        view.push("OS-EXT-SRV-ATTR:host", &instance.host);
        view.push(
            "OS-EXT-SRV-ATTR:instance_name",
            instance_name(&instance.uuid),
        );
        view.push("OS-EXT-SRV-ATTR:hypervisor_hostname", &instance.node);
    }
    if version.at_least(3) && admin {
        view.push("OS-EXT-SRV-ATTR:reservation_id", &instance.reservation_id);
        view.push("OS-EXT-SRV-ATTR:launch_index", instance.launch_index);
        view.push("OS-EXT-SRV-ATTR:kernel_id", "");
        view.push("OS-EXT-SRV-ATTR:ramdisk_id", "");
        view.push("OS-EXT-SRV-ATTR:root_device_name", Field::Null);
        view.push("OS-EXT-SRV-ATTR:user_data", &instance.user_data);
    }
    if version.at_least(3) && (admin || version.at_least(90)) {
        view.push("OS-EXT-SRV-ATTR:hostname", &instance.hostname);
    }
    if version.at_least(9) {
        view.push("locked", instance.locked != 0);
    }
    if version.at_least(73) {
        view.push("locked_reason", Field::Null);
    }
    if let Some(statuses) = host_statuses {
        view.push("host_status", host_status(statuses, instance).as_str());
    }
    if version.at_least(19) {
        view.push("description", &instance.description);
    }
    if version.at_least(server_tags::TAGS_SINCE) {
        view.push("tags", Field::Strings(tags));
    }
    if version.at_least(63) {
        view.push("trusted_image_certificates", Field::Null);
    }
    if version.at_least(96) {
        view.push(
            "pinned_availability_zone",
            &instance.requested_availability_zone,
        );
    }
    if version.at_least(SCHEDULER_HINTS_SINCE) {
        view.push("scheduler_hints", json!(instance.hints()));
    }
    if (instance.vm_state == vm::ERROR || instance.vm_state == vm::DELETED)
        && let Some(fault) = instance
            .fault
            .as_deref()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
    {
        let code = fault["code"].as_u64().unwrap_or(500);
        let mut shown = json!({
            "code": code,
            "message": fault["message"],
            "created": fault["created"].as_str().map(api_time),
        });
        if admin || code != 500 {
            shown["details"] = fault["details"].clone();
        }
        view.push("fault", shown);
    }
    view
}

/// Image properties under `image` in a server's view from this microversion.
const IMAGE_PROPERTIES_SINCE: u16 = 98;

/// The scheduler hints of the create in a server's view from this
/// microversion.
const SCHEDULER_HINTS_SINCE: u16 = 100;

/// `server_groups` in show, update and rebuild (not in lists) from this
/// microversion.
const SERVER_GROUPS_SINCE: u16 = 71;

/// Image properties without Nova's standard prefixes that Nova still
/// knows (its legacy names).
const LEGACY_IMAGE_PROPERTIES: &[&str] = &[
    "architecture",
    "auto_disk_config",
    "hypervisor_type",
    "hypervisor_version_requires",
    "vm_mode",
];

/// The instance's image properties Nova shows (2.98): the standard ones
/// (`hw_*`, `img_*`, `os_*`, `trait:*` and the legacy names) of the image it
/// was booted from, as recorded then.
fn standard_image_properties(instance: &Instance) -> BTreeMap<String, String> {
    instance
        .image_property_map()
        .into_iter()
        .filter(|(key, _)| {
            ["hw_", "img_", "os_", "trait:"]
                .iter()
                .any(|prefix| key.starts_with(prefix))
                || LEGACY_IMAGE_PROPERTIES.contains(&key.as_str())
        })
        .collect()
}

/// Adds what only a show, an update and a rebuild answer: the server's
/// group (2.71).
pub fn add_single_server_fields(view: &mut Value, version: Microversion, instance: &Instance) {
    if version.at_least(SERVER_GROUPS_SINCE) {
        view["server_groups"] = json!(instance.server_group.iter().collect::<Vec<_>>());
    }
}

/// The tags of server `uuid`.
async fn instance_tags(state: &AppState, uuid: &str) -> ApiResult<Vec<String>> {
    let mut conn = state.db.connection().await?;
    Ok(store::tags::of_instance(&mut conn, uuid).await?)
}

#[utoipa::path(get, path = "/v2.1/servers", params(ListQuery), responses((status = OK, description = "Success", body = ServerList), crate::fault::ApiError))]
pub(super) async fn index(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Query(query): Query<ListQuery>,
    RawQuery(raw): RawQuery,
) -> ApiResult<axum::response::Response> {
    server_list::list(&state, &auth, version, query, raw, false).await
}

#[utoipa::path(get, path = "/v2.1/servers/detail", params(ListQuery), responses((status = OK, description = "Success", body = ServerList), crate::fault::ApiError))]
pub(super) async fn detail(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Query(query): Query<ListQuery>,
    RawQuery(raw): RawQuery,
) -> ApiResult<axum::response::Response> {
    server_list::list(&state, &auth, version, query, raw, true).await
}

#[utoipa::path(get, path = "/v2.1/servers/{id}", params(("id" = String, Path, description = "The server UUID")), responses((status = OK, description = "Success", body = ServerEnvelope), crate::fault::ApiError))]
pub(super) async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let instance = fetch_visible(&state, &auth, &id).await?;
    let host_statuses =
        shown_host_statuses(&state, &auth, version, HOST_STATUS_SINCE, &[&instance]).await?;
    let networking = server_networks::of_server(&state, &instance.uuid).await?;
    let tags = instance_tags(&state, &instance.uuid).await?;
    let mut view = detail_view(
        &state,
        &auth,
        version,
        &instance,
        host_statuses.as_ref(),
        &networking,
        &tags,
    )
    .into_value();
    add_single_server_fields(&mut view, version, &instance);
    Ok(Json(json!({ "server": view })))
}

/// What each server of a create (or a rebuild) asks of the absolute quota
/// resources.
pub(super) fn absolute_requests(
    metadata_items: usize,
    personality: Option<PersonalitySizes>,
) -> Vec<(Resource, i64)> {
    let mut absolute = vec![(
        Resource::MetadataItems,
        i64::try_from(metadata_items).unwrap_or(i64::MAX),
    )];
    if let Some(sizes) = personality {
        absolute.extend([
            (Resource::InjectedFiles, sizes.files),
            (Resource::InjectedFilePathBytes, sizes.longest_path),
            (Resource::InjectedFileContentBytes, sizes.largest_content),
        ]);
    }
    absolute
}

/// The flavor a request names (`flavorRef`: an id or a link), as the
/// server keeps it, when the caller may use it and it is enabled; else a
/// 400 naming it.
pub(super) async fn requested_flavor(
    state: &AppState,
    auth: &AuthContext,
    flavor_ref: &str,
) -> ApiResult<FlavorSnapshot> {
    let (flavor, specs) =
        flavors::get_visible_with_specs(&state.db, auth, &fields::last_segment(flavor_ref))
            .await
            .map_err(|_| {
                ApiError::bad_request(format!("Flavor {flavor_ref} could not be found."))
            })?;
    if flavor.disabled != 0 {
        return Err(ApiError::bad_request(format!(
            "Flavor {flavor_ref} is disabled."
        )));
    }
    Ok(flavors::snapshot_of(&flavor, specs))
}

async fn known_zones(state: &AppState) -> ApiResult<Vec<String>> {
    let aggregates = snapshot::aggregates(&state.db).await?;
    let mut zones = vec![state.config.compute.default_availability_zone.clone()];
    for (aggregate, _) in &aggregates {
        if let Some(zone) = aggregate.metadata("availability_zone")
            && !zones.iter().any(|known| known == zone)
        {
            zones.push(zone.to_string());
        }
    }
    Ok(zones)
}

/// The image a server boots from, as the caller may see it: 400 when it is
/// unknown or not active, or when the flavor is too small for it (Nova).
async fn boot_image(
    state: &AppState,
    auth: &AuthContext,
    image_ref: &str,
    flavor: &FlavorSnapshot,
) -> ApiResult<images::Image> {
    let image = images::get_for_project(&state.db, image_ref, &images::Viewer::from(auth))
        .await
        .map_err(|error| match error {
            images::ImageError::NotFound(_) => {
                ApiError::bad_request(format!("Image {image_ref} could not be found."))
            }
            other => ApiError::from(other),
        })?;
    check_image_fits(&image, image_ref, flavor.memory_mb, flavor.root_gb)?;
    Ok(image)
}

/// Nova's `_check_requested_image`: 400 when the image is not active, or
/// when a flavor of `memory_mb` and `root_gb` is too small for it.
pub(super) fn check_image_fits(
    image: &images::Image,
    image_ref: &str,
    memory_mb: i64,
    root_gb: i64,
) -> ApiResult<()> {
    if image.status != images::STATUS_ACTIVE {
        return Err(ApiError::bad_request(format!(
            "Image {image_ref} is not active."
        )));
    }
    if memory_mb < image.min_ram {
        return Err(ApiError::bad_request(
            "Flavor's memory is too small for requested image.",
        ));
    }
    if root_gb > 0 && root_gb < image.min_disk {
        return Err(ApiError::bad_request(
            "Flavor's disk is too small for requested image.",
        ));
    }
    Ok(())
}

/// The administrator password an answer shows: the one asked for, else a
/// new one of 12 characters; `None` when the answers show none (`[compute]
/// enable_instance_password = false`, Nova's `[api]` option).
pub(super) fn admin_password(state: &AppState, requested: Option<&String>) -> Option<String> {
    if !state.config.compute.enable_instance_password {
        return None;
    }
    Some(match requested {
        Some(password) => password.clone(),
        None => uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
    })
}

/// The ports a create asks for: the listed networks and ports; `auto` (and,
/// before 2.37, no `networks` at all) the project's auto-allocated network
/// when the cloud has one; `none` nothing. A port or a fixed address cannot
/// serve several servers of one request (Nova's messages).
async fn requested_ports(
    state: &AppState,
    auth: &AuthContext,
    server: &ServerCreate,
) -> ApiResult<PortPlan> {
    let several = server.max_count() > 1;
    let requests = match &server.networks {
        Some(Networks::List(entries)) => {
            let mut requests = Vec::new();
            for entry in entries {
                if let Some(port_id) = &entry.port {
                    if several {
                        return Err(ApiError::bad_request(
                            "Unable to launch multiple instances with a single configured port ID. Please launch your instance one by one with different ports.",
                        ));
                    }
                    requests.push(InstancePortRequest::Port {
                        port_id: port_id.clone(),
                    });
                } else if let Some(network_id) = &entry.uuid {
                    if entry.fixed_ip.is_some() && several {
                        return Err(ApiError::bad_request(
                            "max_count cannot be greater than 1 if an fixed_ip is specified.",
                        ));
                    }
                    requests.push(InstancePortRequest::Network {
                        network_id: network_id.clone(),
                        fixed_ip: entry.fixed_ip.clone(),
                        port_id: String::new(),
                    });
                }
            }
            requests
        }
        Some(Networks::Keyword(keyword)) if keyword.0 == "none" => Vec::new(),
        Some(Networks::Keyword(_)) | None => {
            let caller = network_caller(auth);
            match state
                .network
                .auto_allocated_topology(&caller, &auth.project_id)
                .await
            {
                Ok(topology) => vec![InstancePortRequest::Network {
                    network_id: topology.id,
                    fixed_ip: None,
                    port_id: String::new(),
                }],
                // Before 2.37 a cloud without networks boots without ports.
                Err(_) if server.networks.is_none() => Vec::new(),
                Err(error) => {
                    return Err(ApiError::bad_request(format!(
                        "Unable to automatically allocate a network for project {}: {error}",
                        auth.project_id
                    )));
                }
            }
        }
    };
    let security_groups = server
        .security_groups
        .iter()
        .flatten()
        .filter_map(|group| group.get("name").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    Ok(PortPlan {
        requests,
        security_groups,
        admin: auth.is_admin(),
    })
}

/// The caller as the network service sees it.
pub(crate) fn network_caller(auth: &AuthContext) -> novum_network::Caller {
    if auth.is_admin() {
        novum_network::Caller::admin(&auth.project_id)
    } else {
        novum_network::Caller::project(&auth.project_id)
    }
}

#[utoipa::path(post, path = "/v2.1/servers", request_body = ServerCreateBody, responses((status = ACCEPTED, description = "The new server (`server`), or its reservation id (`reservation_id`) with return_reservation_id", body = Object), crate::fault::ApiError))]
pub(super) async fn create(
    State(state): State<AppState>,
    auth: AuthContext,
    request_id: RequestId,
    TypedBody(body): TypedBody<ServerCreateBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    auth.require_writer("os_compute_api:servers:create")?;
    let hints = body.scheduler_hints();
    let server = body.server;
    let flavor = requested_flavor(&state, &auth, &server.flavor_ref).await?;
    let image_ref = server.boot_image_id()?;
    let availability_zone = server.availability_zone().map(str::to_string);
    if let Some(zone) = &availability_zone {
        let (zone_name, host) = zone.split_once(':').unwrap_or((zone.as_str(), ""));
        if !host.is_empty() {
            auth.require_admin("os_compute_api:servers:create:forced_host")?;
        }
        if !zone_name.is_empty()
            && !known_zones(&state)
                .await?
                .iter()
                .any(|known| known == zone_name)
        {
            return Err(ApiError::bad_request(format!(
                "The requested availability zone is not available (zone {zone_name})."
            )));
        }
    }
    let key_data = match &server.key_name {
        Some(key_name) => Some(
            novum_compute::store::keypairs::public_key_of(&state.db, &auth.user_id, key_name)
                .await?
                .ok_or_else(|| ApiError::bad_request("Invalid key_name provided."))?,
        ),
        None => None,
    };
    let group = match hints.get("group").and_then(|values| values.first()) {
        Some(group) => match store::instances::server_group_project(&state.db, group).await? {
            Some(project_id) if auth.may_see_project(&project_id) => Some(group.clone()),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Invalid server group {group}: it could not be found."
                )));
            }
        },
        None => None,
    };
    let image = boot_image(&state, &auth, &image_ref, &flavor).await?;
    let ports = requested_ports(&state, &auth, &server).await?;
    let metadata = server.metadata.clone().unwrap_or_default().0;
    let personality = server.personality.as_ref().map(Personality::sizes);
    let mut tags = match &server.tags {
        Some(tags) => server_tags::checked_tags(&json!(tags))?,
        None => Vec::new(),
    };
    tags.sort();
    tags.dedup();
    let request = BuildRequest {
        name: server.name.clone(),
        description: server.description.clone(),
        project_id: auth.project_id.clone(),
        user_id: auth.user_id.clone(),
        flavor,
        image_ref,
        image_properties: image.properties,
        availability_zone,
        absolute: absolute_requests(metadata.len(), personality),
        metadata,
        key_name: server.key_name.clone(),
        key_data,
        user_data: server.user_data.as_ref().map(|data| data.0.clone()),
        config_drive: server.config_drive.as_ref().is_some_and(|flag| flag.0),
        hints,
        group,
        count: u32::try_from(server.max_count()).unwrap_or(u32::MAX),
        min_count: u32::try_from(server.min_count()).unwrap_or(u32::MAX),
        request_id: request_id.0.clone(),
        access_ip_v4: server
            .access_ip_v4
            .as_ref()
            .map(|ip| ip.0.clone())
            .unwrap_or_default(),
        access_ip_v6: server
            .access_ip_v6
            .as_ref()
            .map(|ip| ip.0.clone())
            .unwrap_or_default(),
        ports,
        tags,
    };
    let groups_shown: Vec<Value> = if request.ports.security_groups.is_empty() {
        vec![json!({"name": "default"})]
    } else {
        request
            .ports
            .security_groups
            .iter()
            .map(|name| json!({"name": name}))
            .collect()
    };
    let (uuids, reservation_id) = state.conductor.create_servers(request).await?;
    if server.returns_reservation_id() {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"reservation_id": reservation_id})),
        ));
    }
    let first = uuids.first().cloned().unwrap_or_default();
    let mut view = json!({
        "id": first,
        "links": links(&state, "servers", &first),
        "OS-DCF:diskConfig": "MANUAL",
        "security_groups": groups_shown,
    });
    if let Some(password) = admin_password(&state, server.admin_pass.as_ref()) {
        view["adminPass"] = json!(password);
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"server": view}))))
}

#[utoipa::path(put, path = "/v2.1/servers/{id}", params(("id" = String, Path, description = "The server UUID")), request_body = ServerUpdateBody, responses((status = OK, description = "Success", body = ServerEnvelope), crate::fault::ApiError))]
pub(super) async fn update(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    Path(id): Path<String>,
    TypedBody(body): TypedBody<ServerUpdateBody>,
) -> ApiResult<Json<Value>> {
    auth.require_writer("os_compute_api:servers:update")?;
    fetch_visible(&state, &auth, &id).await?;
    let changes = body.server;
    let caller = Caller {
        user_id: &auth.user_id,
        project_id: &auth.project_id,
        request_id: &request_id.0,
    };
    let changes = ServerChanges {
        name: changes.name,
        description: changes.description,
        access_ip_v4: changes.access_ip_v4.map(|ip| ip.0),
        access_ip_v6: changes.access_ip_v6.map(|ip| ip.0),
        pinned_availability_zone: changes.pinned_availability_zone,
    };
    state.conductor.update_server(&id, changes, &caller).await?;
    let view = changed_server_view(&state, &auth, version, &id).await?;
    Ok(Json(json!({ "server": view })))
}

/// The view of a server an update or a rebuild answers with: before 2.75,
/// the detailed view without what only `show` has.
fn changed_view(mut view: Value, version: Microversion) -> Value {
    if !version.at_least(UPDATE_SHOWS_ALL_SINCE)
        && let Some(fields) = view.as_object_mut()
    {
        fields.retain(|key, _| !only_in_show(key));
        // Nor do its addresses carry the extended IP attributes.
        if let Some(Value::Object(networks)) = fields.get_mut("addresses") {
            for address in networks
                .values_mut()
                .filter_map(Value::as_array_mut)
                .flatten()
                .filter_map(Value::as_object_mut)
            {
                address.retain(|key, _| !key.starts_with("OS-EXT-IPS"));
            }
        }
    }
    view
}

/// The detailed view of server `uuid` as `auth` sees it at `version`,
/// for the answer of an action that changed it (`host_status` as an
/// update shows it).
pub(super) async fn changed_server_view(
    state: &AppState,
    auth: &AuthContext,
    version: Microversion,
    uuid: &str,
) -> ApiResult<Value> {
    let instance = fetch_visible(state, auth, uuid).await?;
    let host_statuses = shown_host_statuses(
        state,
        auth,
        version,
        HOST_STATUS_IN_UPDATE_SINCE,
        &[&instance],
    )
    .await?;
    let networking = server_networks::of_server(state, &instance.uuid).await?;
    let tags = instance_tags(state, &instance.uuid).await?;
    let view = detail_view(
        state,
        auth,
        version,
        &instance,
        host_statuses.as_ref(),
        &networking,
        &tags,
    )
    .into_value();
    let mut view = changed_view(view, version);
    add_single_server_fields(&mut view, version, &instance);
    Ok(view)
}

/// From 2.75 a server update answers every field a show does; before, the
/// extended attributes are left out.
const UPDATE_SHOWS_ALL_SINCE: u16 = 75;

/// The fields Nova's server update leaves out before 2.75.
fn only_in_show(key: &str) -> bool {
    [
        "OS-EXT-AZ:",
        "OS-EXT-STS:",
        "OS-SRV-USG:",
        "OS-EXT-SRV-ATTR:",
    ]
    .iter()
    .any(|prefix| key.starts_with(prefix))
        || matches!(
            key,
            "config_drive"
                | "key_name"
                | "os-extended-volumes:volumes_attached"
                | "security_groups"
        )
}

#[utoipa::path(delete, path = "/v2.1/servers/{id}", params(("id" = String, Path, description = "The server UUID")), responses((status = NO_CONTENT, description = "Done, no body"), crate::fault::ApiError))]
pub(super) async fn delete(
    State(state): State<AppState>,
    auth: AuthContext,
    request_id: RequestId,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let instance = fetch_visible(&state, &auth, &id).await?;
    auth.require_writer("os_compute_api:servers:delete")?;
    super::server_actions::check_lock(&auth, &instance)?;
    let caller = Caller {
        user_id: &auth.user_id,
        project_id: &auth.project_id,
        request_id: &request_id.0,
    };
    state
        .conductor
        .delete_server_as_configured(&id, &caller)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

crate::envelope!(
    /// `{"servers": […]}`
    ServerList, "servers", Array
);
crate::envelope!(
    /// `{"server": {…}}`
    ServerEnvelope, "server", Object
);

/// The server routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index, create))
        .routes(routes!(detail))
        .routes(routes!(show, update, delete))
}
