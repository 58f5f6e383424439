//! Server actions (`POST /servers/{id}/action`) and instance actions
//! (`/servers/{id}/os-instance-actions`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use novum_wire::RebootType;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::api_time_micros;
use super::server_rebuild;
use super::servers::{fetch_visible, requested_flavor};
use crate::AppState;
use crate::auth::AuthContext;
use crate::bodies::{
    self,
    server_action::{MIGRATE_HOST_SINCE, MigrateBody, Rebuild, RebuildBody, RescueBody},
};
use crate::body::JsonBody;
use crate::extract::Path;
use crate::fault::{ApiError, ApiResult};
use crate::microversion::Microversion;
use crate::request_id::RequestId;
use novum_compute::conductor::Caller;
use novum_compute::conductor::actions;
use novum_compute::conductor::instance_admin::LockedBy;
use novum_compute::conductor::states::ServerAction;

/// A server action the API accepts.
enum Requested {
    /// One agent task with a state guard (start, stop, reboot, …).
    Simple(ServerAction),
    /// `resize` to the flavor `flavorRef` names.
    Resize(String),
    /// A cold `migrate` (admin), to the named host from 2.56.
    Migrate(Option<String>),
    /// `confirmResize`.
    ConfirmResize,
    /// `revertResize`.
    RevertResize,
    /// `lock`: the owner can't act on the server until it is unlocked.
    Lock,
    /// `unlock`.
    Unlock,
    /// `os-resetState` (admin): sets vm_state to `active` or `error` and
    /// clears the task state, without touching the hypervisor.
    ResetState(&'static str),
    /// `addSecurityGroup` (`true`) or `removeSecurityGroup` of the named
    /// group.
    SecurityGroup(String, bool),
    /// `injectNetworkInfo` (admin): Nova's libvirt driver does nothing with
    /// it on a Neutron-style network service, and neither does novum's
    /// agent (a guest reads its network from the config drive or the
    /// metadata service); accepted for a server on a host.
    InjectNetworkInfo,
    /// `rebuild`, its body checked at the request's microversion.
    Rebuild(Box<Rebuild>),
    /// `rescue`.
    Rescue(RescueBody),
    /// `unrescue`.
    Unrescue,
}

impl Requested {
    /// The policy rule's last part (`os_compute_api:servers:<name>`).
    fn policy_name(&self) -> &'static str {
        match self {
            Self::Simple(action) => action.name(),
            Self::Resize(_) => "resize",
            Self::Migrate(_) => "migrate",
            Self::ConfirmResize => "confirm_resize",
            Self::RevertResize => "revert_resize",
            Self::Lock => "lock",
            Self::Unlock => "unlock",
            Self::ResetState(_) => "reset_state",
            Self::SecurityGroup(_, true) => "add",
            Self::SecurityGroup(_, false) => "remove",
            Self::InjectNetworkInfo => "inject_network_info",
            Self::Rebuild(_) => "rebuild",
            Self::Rescue(_) => "rescue",
            Self::Unrescue => "unrescue",
        }
    }

    /// The whole policy rule (`os_compute_api:<scope>:<name>`, and Nova's
    /// `os_compute_api:os-rescue` / `os-unrescue`).
    fn policy_rule(&self) -> String {
        let scope = match self {
            Self::Lock | Self::Unlock => "os-lock-server",
            Self::Migrate(_) => "os-migrate-server",
            Self::SecurityGroup(..) => "os-security-groups",
            Self::Rescue(_) => return "os_compute_api:os-rescue".to_string(),
            Self::Unrescue => return "os_compute_api:os-unrescue".to_string(),
            _ => "servers",
        };
        format!("os_compute_api:{scope}:{}", self.policy_name())
    }
}

fn parse_action(name: &str, args: &Value, version: Microversion) -> ApiResult<Requested> {
    Ok(Requested::Simple(match name {
        "rebuild" => {
            let body: RebuildBody = bodies::parse(&json!({ "rebuild": args }), version)?;
            return Ok(Requested::Rebuild(Box::new(body.rebuild)));
        }
        "rescue" => {
            return bodies::parse(&json!({ "rescue": args }), version).map(Requested::Rescue);
        }
        "unrescue" => return Ok(Requested::Unrescue),
        "migrate" => {
            // Before 2.56 Nova reads no body: the scheduler picks.
            if !version.at_least(MIGRATE_HOST_SINCE) {
                return Ok(Requested::Migrate(None));
            }
            let body: MigrateBody = bodies::parse(&json!({ "migrate": args }), version)?;
            return Ok(Requested::Migrate(body.migrate.and_then(|m| m.host)));
        }
        "os-start" => ServerAction::Start,
        "os-stop" => ServerAction::Stop,
        "pause" => ServerAction::Pause,
        "unpause" => ServerAction::Unpause,
        "suspend" => ServerAction::Suspend,
        "resume" => ServerAction::Resume,
        "confirmResize" => return Ok(Requested::ConfirmResize),
        "revertResize" => return Ok(Requested::RevertResize),
        "lock" => return Ok(Requested::Lock),
        "addSecurityGroup" | "removeSecurityGroup" => {
            return match args.get("name").and_then(Value::as_str) {
                Some(group) if !group.trim().is_empty() => Ok(Requested::SecurityGroup(
                    group.trim().to_string(),
                    name == "addSecurityGroup",
                )),
                _ => Err(ApiError::bad_request(format!(
                    "Invalid input for field/attribute {name}. 'name' is a required property"
                ))),
            };
        }
        "unlock" => return Ok(Requested::Unlock),
        "injectNetworkInfo" => return Ok(Requested::InjectNetworkInfo),
        "os-resetState" => {
            return match args.get("state").and_then(Value::as_str) {
                Some("active") => Ok(Requested::ResetState(
                    novum_compute::conductor::states::vm::ACTIVE,
                )),
                Some("error") => Ok(Requested::ResetState(
                    novum_compute::conductor::states::vm::ERROR,
                )),
                _ => Err(ApiError::bad_request(format!(
                    "Invalid input for field/attribute state. Value: {}. It must be one of ['active', 'error']",
                    args.get("state").unwrap_or(&Value::Null)
                ))),
            };
        }
        "resize" => {
            let flavor_ref = match args.get("flavorRef") {
                Some(Value::String(text)) if !text.is_empty() => text.clone(),
                Some(Value::Number(number)) => number.to_string(),
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "Invalid input for field/attribute flavorRef. Value: {other}. {other} is not of type 'string'"
                    )));
                }
                None => {
                    return Err(ApiError::bad_request(
                        "Invalid input for field/attribute resize. 'flavorRef' is a required property",
                    ));
                }
            };
            return Ok(Requested::Resize(flavor_ref));
        }
        "reboot" => match args
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("SOFT") => ServerAction::Reboot(RebootType::Soft),
            Some("HARD") => ServerAction::Reboot(RebootType::Hard),
            _ => {
                return Err(ApiError::bad_request(
                    "Invalid input for field/attribute type. It must be one of ['HARD', 'Hard', 'SOFT', 'Soft']",
                ));
            }
        },
        other => {
            return Err(ApiError::bad_request(format!(
                "There is no such action: {other}"
            )));
        }
    }))
}

#[utoipa::path(post, path = "/v2.1/servers/{id}/action", params(("id" = String, Path, description = "The server UUID")), request_body = crate::openapi::SingleKeyObject, responses((status = ACCEPTED, description = "Accepted"), (status = OK, description = "os-getConsoleOutput: the log; os-getSerialConsole: the console URL", body = Object), (status = NO_CONTENT, description = "confirmResize done"), crate::fault::ApiError))]
pub(super) async fn action(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    request_id: RequestId,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<BTreeMap<String, Value>>,
) -> ApiResult<Response> {
    if body.len() != 1 {
        return Err(ApiError::bad_request(
            "The request body must name exactly one action.",
        ));
    }
    let Some((name, args)) = body.iter().next() else {
        return Err(ApiError::bad_request(
            "The request body must name exactly one action.",
        ));
    };
    if let Some(answer) =
        super::consoles::console_action(&state, &auth, &request_id, &id, name, args).await?
    {
        return Ok(answer);
    }
    if let Some(answer) =
        super::snapshots::image_action(&state, &auth, &request_id, version, &id, name, args).await?
    {
        return Ok(answer);
    }
    if let Some(answer) =
        super::deferred_delete::deferred_delete_action(&state, &auth, &request_id, &id, name)
            .await?
    {
        return Ok(answer);
    }
    if let Some(answer) =
        super::guest_actions::guest_action(&state, &auth, &request_id, version, &id, name, args)
            .await?
    {
        return Ok(answer);
    }
    if let Some(answer) = super::live_migration::live_migrate_action(
        &state,
        &auth,
        &request_id,
        version,
        &id,
        name,
        args,
    )
    .await?
    {
        return Ok(answer);
    }
    if let Some(answer) =
        super::evacuate::evacuate_action(&state, &auth, &request_id, version, &id, name, args)
            .await?
    {
        return Ok(answer);
    }
    let requested = parse_action(name, args, version)?;
    let instance = fetch_visible(&state, &auth, &id).await?;
    let locking = matches!(requested, Requested::Lock | Requested::Unlock);
    if let Requested::ResetState(_) | Requested::InjectNetworkInfo = requested {
        auth.require_admin(&format!(
            "os_compute_api:os-admin-actions:{}",
            requested.policy_name()
        ))?;
    } else if let Requested::Migrate(_) = requested {
        auth.require_admin(&requested.policy_rule())?;
    } else {
        auth.require_writer(&requested.policy_rule())?;
    }
    if !locking {
        check_lock(&auth, &instance)?;
    }
    let caller = Caller {
        user_id: &auth.user_id,
        project_id: &auth.project_id,
        request_id: &request_id.0,
    };
    let conductor = &state.conductor;
    match requested {
        Requested::Simple(action) => conductor.server_action(&id, action, &caller).await?,
        Requested::Resize(flavor_ref) => {
            let flavor = requested_flavor(&state, &auth, &flavor_ref).await?;
            conductor.resize_server(&id, flavor, &caller).await?;
        }
        Requested::Migrate(host) => conductor.migrate_server(&id, host, &caller).await?,
        Requested::ConfirmResize => {
            conductor.confirm_resize(&id, &caller).await?;
            // Nova answers a confirm with 204, every other action with 202.
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        Requested::RevertResize => conductor.revert_resize(&id, &caller).await?,
        Requested::Lock => {
            // An admin locking another project's server holds the lock as
            // admin: its owner cannot unlock it.
            let holder = if auth.is_admin() && auth.project_id != instance.project_id {
                LockedBy::Admin
            } else {
                LockedBy::Owner
            };
            conductor
                .set_lock(&id, Some(holder), auth.is_admin())
                .await?
        }
        Requested::Unlock => conductor.set_lock(&id, None, auth.is_admin()).await?,
        Requested::ResetState(vm_state) => conductor.reset_state(&id, vm_state).await?,
        Requested::SecurityGroup(group, add) => {
            super::server_networks::change_security_group(&state, &auth, &id, &group, add).await?
        }
        Requested::InjectNetworkInfo => {
            if instance.host.is_none() {
                return Err(ApiError::conflict(format!(
                    "Cannot 'inject_network_info' instance {id} while it is in vm_state {}",
                    instance.vm_state
                )));
            }
        }
        Requested::Rebuild(rebuild) => {
            return server_rebuild::rebuild(&state, &auth, version, &instance, *rebuild, &caller)
                .await;
        }
        Requested::Rescue(body) => {
            return server_rebuild::rescue(&state, &auth, &instance, body, &caller).await;
        }
        Requested::Unrescue => conductor.unrescue_server(&id, &caller).await?,
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// The caller as the conductor sees it, once server `id` is visible to it
/// and not locked against it (404, 409): what every change of a server's
/// record asks first.
pub async fn changing_caller<'a>(
    state: &AppState,
    auth: &'a AuthContext,
    request_id: &'a RequestId,
    id: &str,
) -> ApiResult<Caller<'a>> {
    let instance = fetch_visible(state, auth, id).await?;
    check_lock(auth, &instance)?;
    Ok(Caller {
        user_id: &auth.user_id,
        project_id: &auth.project_id,
        request_id: &request_id.0,
    })
}

/// Nova's `check_instance_lock`: a locked server refuses actions (and
/// deletion) to everyone but an admin, with 409.
pub fn check_lock(
    auth: &AuthContext,
    instance: &novum_compute::conductor::model::Instance,
) -> ApiResult<()> {
    if instance.locked != 0 && !auth.is_admin() {
        return Err(ApiError::conflict(format!(
            "Instance {} is locked",
            instance.uuid
        )));
    }
    Ok(())
}

/// From this microversion a deleted server's actions can be read.
const DELETED_ACTIONS_SINCE: u16 = 21;

/// 404 unless `auth` may read server `id`'s actions: a live server it sees,
/// or from 2.21 a deleted one.
async fn actions_instance(
    state: &AppState,
    auth: &AuthContext,
    version: Microversion,
    id: &str,
) -> ApiResult<()> {
    if version.at_least(DELETED_ACTIONS_SINCE) {
        super::servers::fetch_visible_even_deleted(state, auth, id).await?;
    } else {
        fetch_visible(state, auth, id).await?;
    }
    Ok(())
}

fn action_view(action: &actions::InstanceAction, version: Microversion) -> Value {
    let mut view = json!({
        "action": action.action,
        "instance_uuid": action.instance_uuid,
        "request_id": action.request_id,
        "user_id": action.user_id,
        "project_id": action.project_id,
        "start_time": api_time_micros(&action.start_time),
        "message": action.message,
    });
    if version.at_least(58) {
        view["updated_at"] = json!(api_time_micros(&action.updated_at));
    }
    view
}

#[utoipa::path(get, path = "/v2.1/servers/{id}/os-instance-actions", params(("id" = String, Path, description = "The server UUID")), responses((status = OK, description = "Success", body = InstanceActions), crate::fault::ApiError))]
async fn instance_actions(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    actions_instance(&state, &auth, version, &id).await?;
    let actions: Vec<Value> = actions::list(&state.db, &id)
        .await?
        .iter()
        .map(|action| action_view(action, version))
        .collect();
    Ok(Json(json!({"instanceActions": actions})))
}

#[utoipa::path(get, path = "/v2.1/servers/{id}/os-instance-actions/{request_id}", params(("id" = String, Path, description = "The server UUID"), ("request_id" = String, Path, description = "The request id of the action")), responses((status = OK, description = "Success", body = InstanceAction), crate::fault::ApiError))]
async fn instance_action(
    State(state): State<AppState>,
    auth: AuthContext,
    version: Microversion,
    Path((id, request)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    actions_instance(&state, &auth, version, &id).await?;
    let action = actions::find(&state.db, &id, &request)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Action for request_id {request} on instance {id} not found"
            ))
        })?;
    let mut view = action_view(&action, version);
    let admin = auth.is_admin();
    if admin || version.at_least(51) {
        let mut shown = Vec::new();
        for event in actions::events(&state.db, &action.id).await? {
            let mut item = json!({
                "event": event.event,
                "start_time": api_time_micros(&event.start_time),
                "finish_time": event.finish_time.as_deref().map(api_time_micros),
                "result": event.result,
            });
            if admin {
                item["traceback"] = json!(event.traceback);
                if version.at_least(62) {
                    item["host"] = json!(event.host);
                }
            }
            if version.at_least(62) {
                item["hostId"] = json!(
                    event
                        .host
                        .as_ref()
                        .map(|host| {
                            use sha2::Digest;
                            hex::encode(sha2::Sha224::digest(
                                format!("{}{host}", action.project_id).as_bytes(),
                            ))
                        })
                        .unwrap_or_default()
                );
            }
            if version.at_least(84) {
                item["details"] = json!(event.details);
            }
            shown.push(item);
        }
        view["events"] = json!(shown);
    }
    Ok(Json(json!({"instanceAction": view})))
}

crate::envelope!(
    /// `{"instanceActions": […]}`
    InstanceActions, "instanceActions", Array
);
crate::envelope!(
    /// `{"instanceAction": {…}}`
    InstanceAction, "instanceAction", Object
);

/// The action routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(action))
        .routes(routes!(instance_actions))
        .routes(routes!(instance_action))
}
