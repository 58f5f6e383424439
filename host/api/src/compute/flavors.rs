//! Flavors: CRUD, detail, extra specs, project access (`/v2.1/flavors…`).

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{Page, links, next_link, parse_bool, parse_query, strict_query};
use crate::AppState;
use crate::auth::AuthContext;
use crate::bodies::TypedBody;
use crate::bodies::flavor::FlavorCreateBody;
use crate::body::JsonBody;
use crate::extract::{Path, Query};
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use crate::validation::{self, TextFormat};
use novum_compute::store::flavors::{self, FlavorDetails, NewFlavor};
/// Re-exported from the repository so the server handlers keep their paths.
pub(crate) use novum_compute::store::flavors::{FlavorRow, snapshot_of};
use novum_db::{Db, DbError, Tx};
use novum_notify::builders;
use novum_notify::payload::FlavorPayload;
use novum_notify::{Publisher, emit};

/// Flavor `id` as a `FlavorPayload` (with its extra specs and, for a
/// private flavor, the projects with access), read in `tx`.
async fn flavor_payload(tx: &mut Tx, id: &str) -> Result<Option<FlavorPayload>, DbError> {
    let Some(FlavorDetails {
        flavor,
        extra_specs,
        projects,
    }) = flavors::details(tx, id).await?
    else {
        return Ok(None);
    };
    Ok(Some(FlavorPayload {
        flavorid: Some(flavor.id),
        name: flavor.name,
        memory_mb: Some(flavor.memory_mb),
        vcpus: Some(flavor.vcpus),
        root_gb: Some(flavor.root_gb),
        ephemeral_gb: Some(flavor.ephemeral_gb),
        swap: flavor.swap,
        rxtx_factor: Some(flavor.rxtx_factor),
        vcpu_weight: Some(0),
        disabled: flavor.disabled != 0,
        is_public: flavor.is_public != 0,
        extra_specs: Some(extra_specs),
        // Nova sends the projects only for private flavors.
        projects: (flavor.is_public == 0).then_some(projects),
        description: flavor.description,
    }))
}

/// Emits `flavor.<action>` with `payload` in `tx` (nothing without one;
/// `flavor.delete` takes the payload read before deleting).
async fn notify_flavor(
    tx: &mut Tx,
    state: &AppState,
    payload: Option<FlavorPayload>,
    action: &str,
) -> ApiResult<()> {
    if let Some(payload) = payload {
        let publisher = Publisher::api(&state.config.host);
        emit(tx, &builders::flavor(&publisher, payload, action)).await?;
    }
    Ok(())
}

/// Emits `flavor.update` about flavor `id` as it is now in `tx`.
async fn flavor_updated(tx: &mut Tx, state: &AppState, id: &str) -> ApiResult<()> {
    let payload = flavor_payload(tx, id).await?;
    notify_flavor(tx, state, payload, "update").await
}

/// Flavor `id` as the caller may see it (private flavors only with access).
pub async fn get_visible(db: &Db, auth: &AuthContext, id: &str) -> ApiResult<FlavorRow> {
    let flavor = flavors::get(db, id).await?;
    visible(db, auth, id, flavor).await
}

/// [`get_visible`] with the flavor's extra specs, read with it.
pub async fn get_visible_with_specs(
    db: &Db,
    auth: &AuthContext,
    id: &str,
) -> ApiResult<(FlavorRow, BTreeMap<String, String>)> {
    let (flavor, specs) = flavors::get_with_specs(db, id).await?.unzip();
    Ok((
        visible(db, auth, id, flavor).await?,
        specs.unwrap_or_default(),
    ))
}

/// `flavor` (flavor `id` as read) when the caller may see it, else 404.
async fn visible(
    db: &Db,
    auth: &AuthContext,
    id: &str,
    flavor: Option<FlavorRow>,
) -> ApiResult<FlavorRow> {
    let flavor =
        flavor.ok_or_else(|| ApiError::not_found(format!("Flavor {id} could not be found.")))?;
    if flavor.is_public == 0
        && !auth.is_admin()
        && !flavors::projects_with_access(db, id)
            .await?
            .contains(&auth.project_id)
    {
        return Err(ApiError::not_found(format!(
            "Flavor {id} could not be found."
        )));
    }
    Ok(flavor)
}

fn view(
    state: &AppState,
    flavor: &FlavorRow,
    version: Microversion,
    detail: bool,
    specs: Option<&BTreeMap<String, String>>,
) -> Value {
    let mut body = json!({
        "id": flavor.id,
        "name": flavor.name,
        "links": links(state, "flavors", &flavor.id),
    });
    if version.at_least(55) {
        body["description"] = json!(flavor.description);
    }
    if detail {
        body["ram"] = json!(flavor.memory_mb);
        body["disk"] = json!(flavor.root_gb);
        body["vcpus"] = json!(flavor.vcpus);
        body["swap"] = if flavor.swap == 0 && !version.at_least(75) {
            json!("")
        } else {
            json!(flavor.swap)
        };
        body["OS-FLV-EXT-DATA:ephemeral"] = json!(flavor.ephemeral_gb);
        body["os-flavor-access:is_public"] = json!(flavor.is_public != 0);
        if !version.at_least(RXTX_REMOVED_IN) {
            body["OS-FLV-DISABLED:disabled"] = json!(flavor.disabled != 0);
            body["rxtx_factor"] = json!(flavor.rxtx_factor);
        }
        if version.at_least(61) {
            body["extra_specs"] = json!(specs.cloned().unwrap_or_default());
        }
    }
    body
}

/// From this microversion flavors have no `rxtx_factor` (in views, create
/// bodies and sort keys) and no `OS-FLV-DISABLED:disabled`, and lists take a
/// `name` filter.
pub(crate) const RXTX_REMOVED_IN: u16 = 102;

/// The query parameters of a list (refused others from 2.75; `name` from
/// 2.102).
const LIST_QUERY: &[&str] = &[
    "limit",
    "marker",
    "is_public",
    "minRam",
    "minDisk",
    "sort_key",
    "sort_dir",
];

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// The flavor name (from 2.102).
    name: Option<String>,
    is_public: Option<String>,
    #[serde(rename = "minRam")]
    min_ram: Option<String>,
    #[serde(rename = "minDisk")]
    min_disk: Option<String>,
    sort_key: Option<String>,
    sort_dir: Option<String>,
    /// `limit` and `marker`.
    #[serde(flatten)]
    #[param(inline, required = false)]
    page: Page,
}

fn number(name: &str, text: &Option<String>) -> ApiResult<Option<i64>> {
    text.as_ref()
        .map(|text| {
            text.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("Invalid {name} filter [{text}]")))
        })
        .transpose()
}

async fn list_flavors(
    state: &AppState,
    auth: &AuthContext,
    version: Microversion,
    query: ListQuery,
    raw: Option<String>,
    detail: bool,
) -> ApiResult<Json<Value>> {
    let is_public = match query.is_public.as_deref() {
        None => Some(true),
        Some(text) if text.eq_ignore_ascii_case("none") || text.eq_ignore_ascii_case("all") => None,
        Some(text) => {
            Some(parse_bool(text).ok_or_else(|| {
                ApiError::bad_request(format!("Invalid is_public filter [{text}]"))
            })?)
        }
    };
    // Only admins may see private flavors they have no access to.
    let is_public = if auth.is_admin() {
        is_public
    } else {
        Some(true)
    };
    let mut allowed = LIST_QUERY.to_vec();
    if version.at_least(RXTX_REMOVED_IN) {
        allowed.push("name");
    }
    strict_query(raw.as_deref(), version.at_least(75), &allowed)?;
    let name = query.name.filter(|_| version.at_least(RXTX_REMOVED_IN));
    let min_ram = number("minRam", &query.min_ram)?;
    let min_disk = number("minDisk", &query.min_disk)?;
    let rows = flavors::list(&state.db).await?;
    let access = flavors::shared_with(&state.db, &auth.project_id).await?;
    let mut flavors: Vec<FlavorRow> = rows
        .into_iter()
        .filter(|flavor| match is_public {
            Some(true) => flavor.is_public != 0 || access.contains(&flavor.id),
            Some(false) => flavor.is_public == 0,
            None => true,
        })
        .filter(|flavor| min_ram.is_none_or(|min| flavor.memory_mb >= min))
        .filter(|flavor| min_disk.is_none_or(|min| flavor.root_gb >= min))
        .filter(|flavor| name.as_ref().is_none_or(|name| &flavor.name == name))
        .collect();
    let sort_key = query.sort_key.as_deref().unwrap_or("flavorid");
    match sort_key {
        "flavorid" | "id" => flavors.sort_by(|a, b| a.id.cmp(&b.id)),
        "name" => flavors.sort_by(|a, b| a.name.cmp(&b.name)),
        "memory_mb" => flavors.sort_by_key(|f| f.memory_mb),
        "vcpus" => flavors.sort_by_key(|f| f.vcpus),
        "root_gb" => flavors.sort_by_key(|f| f.root_gb),
        "created_at" => flavors.sort_by(|a, b| a.created_at.cmp(&b.created_at)),
        other => return Err(ApiError::bad_request(format!("Invalid sort_key {other}"))),
    }
    if query.sort_dir.as_deref() == Some("desc") {
        flavors.reverse();
    }
    let (page, more) = query.page.apply(state, flavors, |flavor| &flavor.id)?;
    let mut specs: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    if detail && version.at_least(61) {
        for flavor in &page {
            specs.insert(
                flavor.id.clone(),
                flavors::extra_specs(&state.db, &flavor.id).await?,
            );
        }
    }
    let items: Vec<Value> = page
        .iter()
        .map(|flavor| view(state, flavor, version, detail, specs.get(&flavor.id)))
        .collect();
    let mut body = json!({"flavors": items});
    if more && let Some(last) = page.last() {
        let pairs = parse_query(raw.as_deref());
        body["flavors_links"] = next_link(
            state,
            if detail { "flavors/detail" } else { "flavors" },
            &pairs,
            &last.id,
        );
    }
    Ok(Json(body))
}

#[utoipa::path(get, path = "/v2.1/flavors", params(ListQuery), responses((status = OK, description = "Success", body = FlavorList), crate::fault::ApiError))]
async fn index(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Query(query): Query<ListQuery>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    list_flavors(&state, &auth, version, query, raw, false).await
}

#[utoipa::path(get, path = "/v2.1/flavors/detail", params(ListQuery), responses((status = OK, description = "Success", body = FlavorList), crate::fault::ApiError))]
async fn detail(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Query(query): Query<ListQuery>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    list_flavors(&state, &auth, version, query, raw, true).await
}

#[utoipa::path(get, path = "/v2.1/flavors/{id}", params(("id" = String, Path, description = "The flavor id")), responses((status = OK, description = "Success", body = FlavorEnvelope), crate::fault::ApiError))]
async fn show(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let flavor = get_visible(&state.db, &auth, &id).await?;
    let specs = flavors::extra_specs(&state.db, &id).await?;
    Ok(Json(
        json!({"flavor": view(&state, &flavor, version, true, Some(&specs))}),
    ))
}

#[utoipa::path(post, path = "/v2.1/flavors", request_body = FlavorCreateBody, responses((status = OK, description = "Success", body = FlavorEnvelope), crate::fault::ApiError))]
async fn create(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    TypedBody(body): TypedBody<FlavorCreateBody>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-flavor-manage:create")?;
    let input = body.flavor;
    let flavor = NewFlavor {
        id: match &input.id {
            Some(id) => id.0.clone(),
            None => uuid::Uuid::new_v4().to_string(),
        },
        vcpus: input.vcpus.0,
        memory_mb: input.ram.0,
        root_gb: input.disk.0,
        ephemeral_gb: input.ephemeral_gb(),
        swap: input.swap_mb(),
        rxtx_factor: input.rxtx_factor(),
        is_public: input.is_public(),
        name: input.name,
        description: input.description,
    };
    let id = flavor.id.clone();
    let mut tx = flavors::begin(&state.db).await?;
    flavors::create(&mut tx, &flavor).await?;
    let payload = flavor_payload(&mut tx, &id).await?;
    notify_flavor(&mut tx, &state, payload, "create").await?;
    novum_notify::commit(tx).await?;
    let flavor = get_visible(&state.db, &auth, &id).await?;
    Ok(Json(
        json!({"flavor": view(&state, &flavor, version, true, Some(&BTreeMap::new()))}),
    ))
}

#[derive(Deserialize, ToSchema)]
struct FlavorUpdateBody {
    flavor: FlavorUpdate,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct FlavorUpdate {
    description: Option<String>,
}

#[utoipa::path(put, path = "/v2.1/flavors/{id}", params(("id" = String, Path, description = "The flavor id")), request_body = FlavorUpdateBody, responses((status = OK, description = "Success", body = FlavorEnvelope), crate::fault::ApiError))]
async fn update(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<FlavorUpdateBody>,
) -> ApiResult<Json<Value>> {
    if !version.at_least(55) {
        return Err(ApiError::bad_method());
    }
    auth.require_admin("os_compute_api:os-flavor-manage:update")?;
    if let Some(description) = &body.flavor.description {
        validation::check_text("description", description, TextFormat::Description)?;
    }
    get_visible(&state.db, &auth, &id).await?;
    let mut tx = flavors::begin(&state.db).await?;
    flavors::set_description(&mut tx, &id, body.flavor.description.as_deref()).await?;
    flavor_updated(&mut tx, &state, &id).await?;
    novum_notify::commit(tx).await?;
    show(State(state), auth, version, Path(id)).await
}

#[utoipa::path(delete, path = "/v2.1/flavors/{id}", params(("id" = String, Path, description = "The flavor id")), responses((status = ACCEPTED, description = "Accepted"), crate::fault::ApiError))]
async fn delete(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.require_admin("os_compute_api:os-flavor-manage:delete")?;
    let mut tx = flavors::begin(&state.db).await?;
    let payload = flavor_payload(&mut tx, &id).await?;
    flavors::delete(&mut tx, &id).await?;
    notify_flavor(&mut tx, &state, payload, "delete").await?;
    novum_notify::commit(tx).await?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(get, path = "/v2.1/flavors/{id}/os-extra_specs", params(("id" = String, Path, description = "The flavor id")), responses((status = OK, description = "Success", body = ExtraSpecs), crate::fault::ApiError))]
async fn specs_index(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    get_visible(&state.db, &auth, &id).await?;
    Ok(Json(
        json!({"extra_specs": flavors::extra_specs(&state.db, &id).await?}),
    ))
}

#[derive(Deserialize, ToSchema)]
struct SpecsBody {
    extra_specs: BTreeMap<String, Value>,
}

fn spec_value(key: &str, value: &Value) -> ApiResult<String> {
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute extra_specs. Key: {key}."
        )));
    }
    match value {
        Value::String(text) if text.len() <= 255 => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        other => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute extra_specs. Value: {other}."
        ))),
    }
}

async fn set_specs(
    state: &AppState,
    id: &str,
    specs: &BTreeMap<String, Value>,
) -> ApiResult<BTreeMap<String, String>> {
    let mut values = BTreeMap::new();
    for (key, value) in specs {
        values.insert(key.clone(), spec_value(key, value)?);
    }
    let mut tx = flavors::begin(&state.db).await?;
    flavors::set_extra_specs(&mut tx, id, &values).await?;
    flavor_updated(&mut tx, state, id).await?;
    novum_notify::commit(tx).await?;
    Ok(values)
}

#[utoipa::path(post, path = "/v2.1/flavors/{id}/os-extra_specs", params(("id" = String, Path, description = "The flavor id")), request_body = SpecsBody, responses((status = OK, description = "Success", body = ExtraSpecs), crate::fault::ApiError))]
async fn specs_create(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<SpecsBody>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-flavor-extra-specs:create")?;
    get_visible(&state.db, &auth, &id).await?;
    let values = set_specs(&state, &id, &body.extra_specs).await?;
    Ok(Json(json!({"extra_specs": values})))
}

#[utoipa::path(get, path = "/v2.1/flavors/{id}/os-extra_specs/{key}", params(("id" = String, Path, description = "The flavor id"), ("key" = String, Path, description = "The extra spec key")), responses((status = OK, description = "{key: value}", body = crate::openapi::SingleKeyObject), crate::fault::ApiError))]
async fn spec_show(
    State(state): State<AppState>,
    auth: AuthContext,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    get_visible(&state.db, &auth, &id).await?;
    let specs = flavors::extra_specs(&state.db, &id).await?;
    let value = specs.get(&key).ok_or_else(|| {
        ApiError::not_found(format!("Flavor {id} has no extra specs with key {key}."))
    })?;
    Ok(Json(json!({ key: value })))
}

#[utoipa::path(put, path = "/v2.1/flavors/{id}/os-extra_specs/{key}", params(("id" = String, Path, description = "The flavor id"), ("key" = String, Path, description = "The extra spec key")), request_body = crate::openapi::SingleKeyObject, responses((status = OK, description = "{key: value}", body = crate::openapi::SingleKeyObject), crate::fault::ApiError))]
async fn spec_update(
    State(state): State<AppState>,
    auth: AuthContext,
    Path((id, key)): Path<(String, String)>,
    JsonBody(body): JsonBody<BTreeMap<String, Value>>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-flavor-extra-specs:update")?;
    get_visible(&state.db, &auth, &id).await?;
    if body.len() > 1 {
        return Err(ApiError::bad_request(
            "Request body contains too many items.",
        ));
    }
    if !body.contains_key(&key) {
        return Err(ApiError::bad_request("Request body and URI mismatch"));
    }
    let values = set_specs(&state, &id, &body).await?;
    Ok(Json(json!(values)))
}

#[utoipa::path(delete, path = "/v2.1/flavors/{id}/os-extra_specs/{key}", params(("id" = String, Path, description = "The flavor id"), ("key" = String, Path, description = "The extra spec key")), responses((status = OK, description = "Success"), crate::fault::ApiError))]
async fn spec_delete(
    State(state): State<AppState>,
    auth: AuthContext,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    auth.require_admin("os_compute_api:os-flavor-extra-specs:delete")?;
    get_visible(&state.db, &auth, &id).await?;
    let mut tx = flavors::begin(&state.db).await?;
    flavors::delete_extra_spec(&mut tx, &id, &key).await?;
    flavor_updated(&mut tx, &state, &id).await?;
    novum_notify::commit(tx).await?;
    // Nova answers 200 here (not 202 as for deleting a flavor).
    Ok(StatusCode::OK)
}

fn access_view(id: &str, projects: &[String]) -> Value {
    json!({"flavor_access": projects.iter().map(|project| json!({"flavor_id": id, "tenant_id": project})).collect::<Vec<_>>()})
}

#[utoipa::path(get, path = "/v2.1/flavors/{id}/os-flavor-access", params(("id" = String, Path, description = "The flavor id")), responses((status = OK, description = "Success", body = FlavorAccess), crate::fault::ApiError))]
async fn access_index(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    auth.require_admin("os_compute_api:os-flavor-access")?;
    let flavor = get_visible(&state.db, &auth, &id).await?;
    if flavor.is_public != 0 {
        return Err(ApiError::not_found(
            "Access list not available for public flavors.",
        ));
    }
    Ok(Json(access_view(
        &id,
        &flavors::projects_with_access(&state.db, &id).await?,
    )))
}

#[utoipa::path(post, path = "/v2.1/flavors/{id}/action", params(("id" = String, Path, description = "The flavor id")), request_body = crate::openapi::SingleKeyObject, responses((status = OK, description = "addTenantAccess / removeTenantAccess: the access list", body = FlavorAccess), crate::fault::ApiError))]
async fn flavor_action(
    State(state): State<AppState>,
    auth: AuthContext,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<BTreeMap<String, Value>>,
) -> ApiResult<Json<Value>> {
    let (action, args) = body
        .iter()
        .next()
        .ok_or_else(|| ApiError::bad_request("No action given."))?;
    let tenant = args
        .get("tenant")
        .and_then(Value::as_str)
        .filter(|tenant| !tenant.is_empty())
        .ok_or_else(|| ApiError::bad_request("Invalid input for field/attribute tenant."))?
        .to_string();
    let flavor = match action.as_str() {
        "addTenantAccess" => {
            auth.require_admin("os_compute_api:os-flavor-access:add_tenant_access")?;
            let flavor = get_visible(&state.db, &auth, &id).await?;
            if flavor.is_public != 0 {
                return Err(ApiError::conflict("Can not add access to a public flavor."));
            }
            if flavors::projects_with_access(&state.db, &id)
                .await?
                .contains(&tenant)
            {
                return Err(ApiError::conflict(format!(
                    "Flavor access already exists for flavor {id} and project {tenant} combination."
                )));
            }
            let mut tx = flavors::begin(&state.db).await?;
            flavors::add_access(&mut tx, &id, &tenant).await?;
            flavor_updated(&mut tx, &state, &id).await?;
            novum_notify::commit(tx).await?;
            flavor
        }
        "removeTenantAccess" => {
            auth.require_admin("os_compute_api:os-flavor-access:remove_tenant_access")?;
            let flavor = get_visible(&state.db, &auth, &id).await?;
            let mut tx = flavors::begin(&state.db).await?;
            flavors::remove_access(&mut tx, &id, &tenant).await?;
            flavor_updated(&mut tx, &state, &id).await?;
            novum_notify::commit(tx).await?;
            flavor
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "Unknown flavor action {other}."
            )));
        }
    };
    Ok(Json(access_view(
        &flavor.id,
        &flavors::projects_with_access(&state.db, &id).await?,
    )))
}

crate::envelope!(
    /// `{"flavors": […]}`
    FlavorList, "flavors", Array
);
crate::envelope!(
    /// `{"flavor": {…}}`
    FlavorEnvelope, "flavor", Object
);
crate::envelope!(
    /// `{"extra_specs": {…}}`
    ExtraSpecs, "extra_specs", Object
);
crate::envelope!(
    /// `{"flavor_access": […]}`
    FlavorAccess, "flavor_access", Array
);

/// The flavor routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index, create))
        .routes(routes!(detail))
        .routes(routes!(show, update, delete))
        .routes(routes!(specs_index, specs_create))
        .routes(routes!(spec_show, spec_update, spec_delete))
        .routes(routes!(access_index))
        .routes(routes!(flavor_action))
}
