//! `rebuild`, `rescue` and `unrescue` as Nova answers them: the bodies
//! checked per microversion (Nova's messages), the state guards and the
//! lock (409), the images looked up and checked (400s), the agent tasks
//! and what they carry, the states the server passes through, the instance
//! actions and events, the notifications, and the ports and addresses a
//! rebuild keeps. The agent is played by the test (the RPC protocol), so
//! every result is chosen; `rebuild_and_rescue_on_an_embedded_host` runs
//! the real agent on libvirt's test driver.

use std::time::Duration;

use axum::http::StatusCode;
use novum_wire::{PowerState, Task, TaskAction, TaskOutcome};
use reqwest::Method;
use serde_json::{Value, json};

use crate::compute::{Cloud, IMAGE, cloud_with};
use crate::http_cloud;
use crate::server_ports::network;

/// A second public image, with `extra` fields (properties, `min_ram`).
async fn image(cloud: &Cloud, id: &str, extra: Value) -> String {
    let mut body = json!({"id": id, "name": id, "visibility": "public", "disk_format": "raw", "container_format": "bare"});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let (status, created) = cloud
        .call(Some("admin"), "POST", "/image/v2/images", Some(body), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, _, _) = cloud
        .raw(
            "PUT",
            &format!("/image/v2/images/{id}/file"),
            &[
                ("x-test-user", "admin"),
                ("content-type", "application/octet-stream"),
            ],
            vec![7u8; 2048],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    id.to_string()
}

const NEW_IMAGE: &str = "0d1e2f30-4152-4637-8899-aabbccddeeff";
const HUNGRY_IMAGE: &str = "1d1e2f30-4152-4637-8899-aabbccddeeff";
const STABLE_RESCUE_IMAGE: &str = "2d1e2f30-4152-4637-8899-aabbccddeeff";

/// `who` posts action `body` to server `id` at microversion `version`.
async fn act(
    cloud: &Cloud,
    who: &str,
    id: &str,
    body: Value,
    version: &str,
) -> (StatusCode, Value) {
    cloud
        .call(
            Some(who),
            "POST",
            &format!("/compute/v2.1/servers/{id}/action"),
            Some(body),
            Some(version),
        )
        .await
}

/// The 400's message.
fn bad_request(reply: &(StatusCode, Value)) -> String {
    assert_eq!(reply.0, StatusCode::BAD_REQUEST, "{}", reply.1);
    reply.1["badRequest"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The 409's message.
fn conflict(reply: &(StatusCode, Value)) -> String {
    assert_eq!(reply.0, StatusCode::CONFLICT, "{}", reply.1);
    reply.1["conflictingRequest"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The one task `host` has next.
async fn one_task(cloud: &Cloud, host: &str, token: &str) -> Task {
    let mut tasks = cloud.next_tasks(host, token).await.tasks;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    tasks.remove(0)
}

fn succeeded(power_state: PowerState) -> TaskOutcome {
    TaskOutcome::Succeeded { power_state }
}

/// The notifications about `id` of `event_type` (`None`: all), oldest
/// first: (event type, payload data).
async fn notices(cloud: &Cloud, id: &str, event_type: Option<&str>) -> Vec<(String, Value)> {
    let mut events = novum_notify::outbox::list_events(
        &cloud.state.db,
        &novum_notify::outbox::EventFilter {
            event_type: event_type.map(str::to_string),
            instance_uuid: Some(id.to_string()),
            limit: 1000,
            ..Default::default()
        },
    )
    .await
    .expect("events");
    events.reverse();
    events
        .into_iter()
        .map(|event| {
            let envelope = serde_json::to_value(&event.envelope).expect("json");
            (
                envelope["event_type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                envelope["payload"]["nova_object.data"].clone(),
            )
        })
        .collect()
}

/// The instance actions of `id`, newest first, and the events of the
/// newest as (event, result).
async fn newest_action(cloud: &Cloud, id: &str) -> (Vec<String>, Vec<(String, String)>) {
    let (_, body) = cloud
        .call(
            Some("admin"),
            "GET",
            &format!("/compute/v2.1/servers/{id}/os-instance-actions"),
            None,
            Some("2.84"),
        )
        .await;
    let actions = body["instanceActions"].as_array().expect("actions").clone();
    let names = actions
        .iter()
        .filter_map(|a| a["action"].as_str().map(str::to_string))
        .collect();
    let request_id = actions[0]["request_id"].as_str().expect("request id");
    let (_, body) = cloud
        .call(
            Some("admin"),
            "GET",
            &format!("/compute/v2.1/servers/{id}/os-instance-actions/{request_id}"),
            None,
            Some("2.84"),
        )
        .await;
    let events = body["instanceAction"]["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap_or_default().to_string(),
                e["result"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    (names, events)
}

/// A cloud with host `cmp1` and an ACTIVE server of `member` on network
/// `net1`: (cloud, agent token, server id).
async fn active_server() -> (Cloud, String, String) {
    let cloud = cloud_with(|_| {}).await;
    let token = cloud.register("cmp1", 8, 16384).await;
    let net = network(&cloud, "net1", "10.9.0.0/24").await;
    let (status, body) = cloud
        .create(
            "member",
            json!({"server": {"name": "web", "imageRef": IMAGE, "flavorRef": "1",
                   "networks": [{"uuid": net}], "metadata": {"old": "1"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    cloud.spawn_active("cmp1", &token, &id).await;
    (cloud, token, id)
}

#[tokio::test]
async fn rebuild_boots_the_new_image_keeping_ports_and_addresses() {
    let (cloud, token, id) = active_server().await;
    image(&cloud, NEW_IMAGE, json!({"hw_machine_type": "q35"})).await;
    image(&cloud, HUNGRY_IMAGE, json!({"min_ram": 999_999})).await;
    let before = cloud.server(&id).await;
    let addresses = before["addresses"].clone();
    let address = addresses["net1"][0]["addr"]
        .as_str()
        .expect("an address on net1")
        .to_string();

    // The body, per microversion, in Nova's words.
    let rebuild = |body: Value| json!({ "rebuild": body });
    let reply = act(&cloud, "member", &id, rebuild(json!({})), "2.1").await;
    assert_eq!(bad_request(&reply), "'imageRef' is a required property");
    let reply = act(
        &cloud,
        "member",
        &id,
        rebuild(json!({"imageRef": NEW_IMAGE, "description": "d"})),
        "2.18",
    )
    .await;
    assert_eq!(
        bad_request(&reply),
        "Additional properties are not allowed ('description' was unexpected)"
    );
    for (field, value, version) in [
        ("key_name", json!(null), "2.53"),
        ("user_data", json!("YQ=="), "2.56"),
        ("personality", json!([]), "2.57"),
        ("trusted_image_certificates", json!(["c"]), "2.62"),
        ("hostname", json!("h"), "2.89"),
        ("bogus", json!(1), "2.96"),
    ] {
        let mut body = json!({"imageRef": NEW_IMAGE});
        body[field] = value;
        let reply = act(&cloud, "member", &id, rebuild(body), version).await;
        assert_eq!(
            bad_request(&reply),
            format!("Additional properties are not allowed ('{field}' was unexpected)")
        );
    }
    let reply = act(
        &cloud,
        "member",
        &id,
        rebuild(json!({"imageRef": "not-a-uuid"})),
        "2.1",
    )
    .await;
    assert_eq!(
        bad_request(&reply),
        "Invalid input for field/attribute imageRef. Value: \"not-a-uuid\". \"not-a-uuid\" is not a 'uuid'"
    );
    let reply = act(
        &cloud,
        "member",
        &id,
        rebuild(json!({"imageRef": "9d1e2f30-4152-4637-8899-aabbccddeeff"})),
        "2.1",
    )
    .await;
    assert_eq!(bad_request(&reply), "Cannot find image for rebuild");
    let reply = act(
        &cloud,
        "member",
        &id,
        rebuild(json!({"imageRef": HUNGRY_IMAGE})),
        "2.1",
    )
    .await;
    assert_eq!(
        bad_request(&reply),
        "Flavor's memory is too small for requested image."
    );
    let reply = act(
        &cloud,
        "member",
        &id,
        rebuild(json!({"imageRef": NEW_IMAGE, "key_name": "nobody"})),
        "2.54",
    )
    .await;
    assert_eq!(bad_request(&reply), "Invalid key_name provided.");

    // Locked by an admin: the owner gets 409, as for every action.
    let (status, _) = act(&cloud, "admin", &id, json!({"lock": null}), "2.1").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let reply = act(
        &cloud,
        "member",
        &id,
        rebuild(json!({"imageRef": NEW_IMAGE})),
        "2.1",
    )
    .await;
    assert_eq!(conflict(&reply), format!("Instance {id} is locked"));
    let (status, _) = act(&cloud, "admin", &id, json!({"unlock": null}), "2.1").await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // The rebuild: 202 with the server as it now is and the password.
    let (status, body) = act(
        &cloud,
        "member",
        &id,
        rebuild(json!({
            "imageRef": NEW_IMAGE, "name": "web2", "adminPass": "s3cret",
            "metadata": {"new": "2"}, "user_data": "aGVsbG8=", "key_name": null,
            "preserve_ephemeral": true, "description": "rebuilt",
        })),
        "2.57",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let server = &body["server"];
    assert_eq!(server["adminPass"], "s3cret");
    assert_eq!(server["image"]["id"], NEW_IMAGE);
    assert_eq!(server["name"], "web2");
    assert_eq!(server["status"], "REBUILD");
    assert_eq!(server["metadata"], json!({"new": "2"}));
    assert_eq!(server["description"], "rebuilt");
    assert_eq!(server["key_name"], Value::Null);
    // From 2.57 `user_data`, never the extended attribute (Nova).
    assert_eq!(server["user_data"], "aGVsbG8=");
    assert!(
        server.get("OS-EXT-SRV-ATTR:user_data").is_none(),
        "{server}"
    );
    // Before 2.75 without the extended IP attributes (Nova's rebuild view
    // has `extend_address=False`).
    assert_eq!(
        server["addresses"],
        json!({"net1": [{"addr": address, "version": 4}]})
    );
    assert!(
        server.get("OS-EXT-STS:task_state").is_none(),
        "before 2.75 a rebuild answers without the extended attributes: {server}"
    );

    // Nothing else while it rebuilds.
    let reply = act(
        &cloud,
        "member",
        &id,
        rebuild(json!({"imageRef": IMAGE})),
        "2.1",
    )
    .await;
    assert_eq!(
        conflict(&reply),
        format!("Cannot 'rebuild' instance {id} while it is in task_state rebuilding")
    );

    // The agent's task: the new image, name, user data, the same ports.
    let task = one_task(&cloud, "cmp1", &token).await;
    let TaskAction::Rebuild {
        spec,
        power_on,
        preserve_ephemeral,
    } = &task.action
    else {
        panic!("not a rebuild: {task:?}");
    };
    assert!(*power_on && *preserve_ephemeral);
    assert_eq!(spec.image.id, NEW_IMAGE);
    assert_eq!(
        spec.image
            .properties
            .get("hw_machine_type")
            .map(String::as_str),
        Some("q35")
    );
    assert_eq!(spec.name, "web2");
    assert_eq!(spec.user_data.as_deref(), Some("aGVsbG8="));
    assert_eq!(spec.metadata.get("new").map(String::as_str), Some("2"));
    assert_eq!(spec.interfaces.len(), 1);
    assert_eq!(spec.interfaces[0].fixed_ips[0].ip_address, address);
    cloud
        .report("cmp1", &token, task.id, succeeded(PowerState::Running))
        .await;
    let after = cloud.wait_status(&id, "ACTIVE").await;
    assert_eq!(after["image"]["id"], NEW_IMAGE);
    assert_eq!(after["addresses"], addresses, "same ports, same addresses");
    assert_eq!(after["OS-EXT-STS:task_state"], Value::Null);
    assert_ne!(
        after["OS-SRV-USG:launched_at"], before["OS-SRV-USG:launched_at"],
        "a rebuild launches the server again"
    );

    // The instance action and its event; the notifications in Nova's order.
    let (actions, events) = newest_action(&cloud, &id).await;
    assert_eq!(actions[0], "rebuild");
    assert_eq!(
        events,
        [(
            "compute_rebuild_instance".to_string(),
            "Success".to_string()
        )]
    );
    let sent = notices(&cloud, &id, None).await;
    let kinds: Vec<&str> = sent.iter().map(|(kind, _)| kind.as_str()).collect();
    let start = kinds
        .iter()
        .position(|kind| *kind == "instance.rebuild.start")
        .expect("rebuild.start");
    assert_eq!(
        kinds.last().copied(),
        Some("instance.rebuild.end"),
        "{kinds:?}"
    );
    let task_states: Vec<Value> = sent
        .iter()
        .filter(|(kind, _)| kind == "instance.update")
        .map(|(_, data)| data["state_update"]["nova_object.data"]["new_task_state"].clone())
        .collect();
    let tail = &task_states[task_states.len() - 4..];
    assert_eq!(
        tail,
        [
            json!("rebuilding"),
            json!("rebuild_block_device_mapping"),
            json!("rebuild_spawning"),
            Value::Null
        ],
        "{kinds:?} from {start}"
    );
}

#[tokio::test]
async fn a_stopped_server_stays_stopped_and_a_failed_rebuild_is_an_error() {
    let (cloud, token, id) = active_server().await;
    let (status, _) = act(&cloud, "member", &id, json!({"os-stop": null}), "2.1").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let task = one_task(&cloud, "cmp1", &token).await;
    cloud
        .report("cmp1", &token, task.id, succeeded(PowerState::Shutdown))
        .await;
    cloud.wait_status(&id, "SHUTOFF").await;

    let (status, body) = act(
        &cloud,
        "member",
        &id,
        json!({"rebuild": {"imageRef": IMAGE}}),
        "2.96",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["server"]["OS-EXT-STS:task_state"], "rebuilding");
    assert_eq!(body["server"]["status"], "REBUILD");
    assert_eq!(body["server"]["adminPass"].as_str().map(str::len), Some(12));
    let task = one_task(&cloud, "cmp1", &token).await;
    assert!(
        matches!(
            task.action,
            TaskAction::Rebuild {
                power_on: false,
                preserve_ephemeral: false,
                ..
            }
        ),
        "{task:?}"
    );
    cloud
        .report("cmp1", &token, task.id, succeeded(PowerState::Shutdown))
        .await;
    let server = cloud.wait_status(&id, "SHUTOFF").await;
    assert_eq!(server["OS-EXT-STS:vm_state"], "stopped");

    // A rebuild the agent fails: ERROR with the fault, rebuild.error.
    let (status, _) = act(
        &cloud,
        "member",
        &id,
        json!({"rebuild": {"imageRef": IMAGE}}),
        "2.1",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let task = one_task(&cloud, "cmp1", &token).await;
    cloud
        .report(
            "cmp1",
            &token,
            task.id,
            TaskOutcome::Failed {
                message: "rebuild failed: disk full".into(),
                power_state: Some(PowerState::Shutdown),
            },
        )
        .await;
    let server = cloud.wait_status(&id, "ERROR").await;
    assert_eq!(server["fault"]["message"], "rebuild failed: disk full");
    let errors = notices(&cloud, &id, Some("instance.rebuild.error")).await;
    assert_eq!(errors.len(), 1);
    let (_, events) = newest_action(&cloud, &id).await;
    assert_eq!(events[0].1, "Error");

    // From ERROR a rebuild is allowed again (Nova's recovery path).
    let (status, body) = act(
        &cloud,
        "member",
        &id,
        json!({"rebuild": {"imageRef": IMAGE}}),
        "2.1",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let task = one_task(&cloud, "cmp1", &token).await;
    cloud
        .report("cmp1", &token, task.id, succeeded(PowerState::Running))
        .await;
    cloud.wait_status(&id, "ACTIVE").await;
}

#[tokio::test]
async fn rescue_and_unrescue_follow_nova() {
    let (cloud, token, id) = active_server().await;
    image(
        &cloud,
        STABLE_RESCUE_IMAGE,
        json!({"hw_rescue_device": "disk", "hw_rescue_bus": "virtio"}),
    )
    .await;
    image(&cloud, NEW_IMAGE, json!({})).await;

    // A server still building cannot be rescued.
    let (status, body) = cloud
        .create(
            "member",
            json!({"server": {"name": "young", "imageRef": IMAGE, "flavorRef": "1", "networks": "none"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let young = body["server"]["id"].as_str().expect("id").to_string();
    let reply = act(&cloud, "member", &young, json!({"rescue": null}), "2.1").await;
    let message = conflict(&reply);
    assert!(
        message.starts_with(&format!("Cannot 'rescue' instance {young} while it is in")),
        "{message}"
    );
    cloud.spawn_active("cmp1", &token, &young).await;

    // Bodies and images refused as Nova refuses them.
    let reply = act(
        &cloud,
        "member",
        &id,
        json!({"rescue": {"bogus": 1}}),
        "2.1",
    )
    .await;
    assert_eq!(
        bad_request(&reply),
        "Additional properties are not allowed ('bogus' was unexpected)"
    );
    let missing = "9d1e2f30-4152-4637-8899-aabbccddeeff";
    let reply = act(
        &cloud,
        "member",
        &id,
        json!({"rescue": {"rescue_image_ref": missing}}),
        "2.87",
    )
    .await;
    assert_eq!(
        bad_request(&reply),
        format!("Requested rescue image '{missing}' is not supported")
    );
    let reply = act(
        &cloud,
        "member",
        &id,
        json!({"rescue": {"rescue_image_ref": STABLE_RESCUE_IMAGE}}),
        "2.87",
    )
    .await;
    assert_eq!(
        bad_request(&reply),
        format!("Requested rescue image '{STABLE_RESCUE_IMAGE}' is not supported")
    );
    let reply = act(&cloud, "member", &id, json!({"unrescue": null}), "2.1").await;
    assert_eq!(
        conflict(&reply),
        format!("Cannot 'unrescue' instance {id} while it is in vm_state active")
    );
    let (status, _) = act(&cloud, "admin", &id, json!({"lock": null}), "2.1").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let reply = act(&cloud, "member", &id, json!({"rescue": null}), "2.1").await;
    assert_eq!(conflict(&reply), format!("Instance {id} is locked"));
    let (status, _) = act(&cloud, "admin", &id, json!({"unlock": null}), "2.1").await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // Rescue with the server's own image: {"adminPass": …}, RESCUE.
    let (status, body) = act(&cloud, "member", &id, json!({"rescue": null}), "2.1").await;
    // Nova answers a rescue with 200.
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["adminPass"].as_str().map(str::len), Some(12), "{body}");
    assert_eq!(cloud.server(&id).await["OS-EXT-STS:task_state"], "rescuing");
    let task = one_task(&cloud, "cmp1", &token).await;
    let TaskAction::Rescue { spec, rescue_image } = &task.action else {
        panic!("not a rescue: {task:?}");
    };
    assert_eq!(rescue_image.id, IMAGE);
    assert_eq!(spec.image.id, IMAGE);
    assert_eq!(spec.interfaces.len(), 1);
    cloud
        .report("cmp1", &token, task.id, succeeded(PowerState::Running))
        .await;
    let server = cloud.wait_status(&id, "RESCUE").await;
    assert_eq!(server["OS-EXT-STS:vm_state"], "rescued");

    // Rescued: no second rescue, no rebuild.
    let reply = act(&cloud, "member", &id, json!({"rescue": null}), "2.1").await;
    assert_eq!(
        conflict(&reply),
        format!("Cannot 'rescue' instance {id} while it is in vm_state rescued")
    );
    let reply = act(
        &cloud,
        "member",
        &id,
        json!({"rebuild": {"imageRef": IMAGE}}),
        "2.1",
    )
    .await;
    assert_eq!(
        conflict(&reply),
        format!("Cannot 'rebuild' instance {id} while it is in vm_state rescued")
    );

    // Unrescue: ACTIVE again.
    let (status, body) = act(&cloud, "member", &id, json!({"unrescue": null}), "2.1").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let task = one_task(&cloud, "cmp1", &token).await;
    assert_eq!(task.action, TaskAction::Unrescue);
    cloud
        .report("cmp1", &token, task.id, succeeded(PowerState::Running))
        .await;
    cloud.wait_status(&id, "ACTIVE").await;
    let (actions, events) = newest_action(&cloud, &id).await;
    assert_eq!(actions[..2], ["unrescue".to_string(), "rescue".to_string()]);
    assert_eq!(
        events,
        [(
            "compute_unrescue_instance".to_string(),
            "Success".to_string()
        )]
    );
    let kinds: Vec<String> = notices(&cloud, &id, None)
        .await
        .into_iter()
        .map(|(kind, _)| kind)
        .filter(|kind| kind.contains("rescue"))
        .collect();
    assert_eq!(
        kinds,
        [
            "instance.rescue.start",
            "instance.rescue.end",
            "instance.unrescue.start",
            "instance.unrescue.end"
        ]
    );

    // A rescue image of the caller's choosing, with a password; the agent
    // fails it: ERROR, as Nova.
    let (status, body) = act(
        &cloud,
        "member",
        &id,
        json!({"rescue": {"rescue_image_ref": NEW_IMAGE, "adminPass": "pw"}}),
        "2.87",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"adminPass": "pw"}));
    let task = one_task(&cloud, "cmp1", &token).await;
    let TaskAction::Rescue { rescue_image, .. } = &task.action else {
        panic!("not a rescue: {task:?}");
    };
    assert_eq!(rescue_image.id, NEW_IMAGE);
    cloud
        .report(
            "cmp1",
            &token,
            task.id,
            TaskOutcome::Failed {
                message: "rescue failed: no such disk".into(),
                power_state: Some(PowerState::Running),
            },
        )
        .await;
    let server = cloud.wait_status(&id, "ERROR").await;
    assert_eq!(server["fault"]["message"], "rescue failed: no such disk");
}

/// The real agent (libvirt's test driver) rebuilds, rescues and unrescues.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_and_rescue_on_an_embedded_host() {
    let cloud = http_cloud::Cloud::start(|config| {
        config.agent.embedded = true;
        config.agent.embedded_hosts = 1;
    })
    .await;
    cloud.wait_for_hosts(1).await;
    let id = cloud.create_server("real", "1", "2.96").await;
    let status_of = |wanted: &'static str| {
        let cloud = &cloud;
        let id = id.clone();
        async move {
            let mut last = Value::Null;
            for _ in 0..400 {
                let (_, body) = cloud
                    .compute(
                        &cloud.admin,
                        Method::GET,
                        &format!("/servers/{id}"),
                        None,
                        "2.96",
                    )
                    .await;
                last = body["server"].clone();
                if last["status"] == wanted {
                    return last;
                }
                assert_ne!(last["status"], "ERROR", "{last}");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("never {wanted}: {last}");
        }
    };
    status_of("ACTIVE").await;
    for (action, wanted, answered) in [
        (
            json!({"rebuild": {"imageRef": http_cloud::IMAGE}}),
            "ACTIVE",
            202,
        ),
        (json!({"rescue": null}), "RESCUE", 200),
        (json!({"unrescue": null}), "ACTIVE", 202),
    ] {
        let (status, body) = cloud
            .compute(
                &cloud.admin,
                Method::POST,
                &format!("/servers/{id}/action"),
                Some(action),
                "2.96",
            )
            .await;
        assert_eq!(status, answered, "{body}");
        let server = status_of(wanted).await;
        assert_eq!(server["OS-EXT-STS:task_state"], Value::Null);
        assert_eq!(server["OS-EXT-STS:power_state"], 1);
    }
    cloud.stop().await;
}

/// With `[compute] enable_instance_password = false` (Nova's `[api]`
/// option) no answer shows a password: a rescue answers `{}`.
#[tokio::test]
async fn answers_show_no_password_when_instance_passwords_are_off() {
    let cloud = cloud_with(|config| config.compute.enable_instance_password = false).await;
    let token = cloud.register("cmp1", 8, 16384).await;
    let (status, body) = cloud
        .create(
            "member",
            json!({"server": {"name": "quiet", "imageRef": IMAGE, "flavorRef": "1", "networks": "none"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body["server"].get("adminPass").is_none(), "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    cloud.spawn_active("cmp1", &token, &id).await;
    let (status, body) = act(
        &cloud,
        "member",
        &id,
        json!({"rebuild": {"imageRef": IMAGE, "adminPass": "x"}}),
        "2.1",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body["server"].get("adminPass").is_none(), "{body}");
    let task = one_task(&cloud, "cmp1", &token).await;
    cloud
        .report("cmp1", &token, task.id, succeeded(PowerState::Running))
        .await;
    cloud.wait_status(&id, "ACTIVE").await;
    let (status, body) = act(&cloud, "member", &id, json!({"rescue": null}), "2.1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({}));
}

#[test]
fn rebuild_and_rescue_states_show_as_nova_shows_them() {
    use novum_compute::conductor::states::{status, vm};
    for vm_state in [vm::ACTIVE, vm::STOPPED, vm::ERROR] {
        for task_state in [
            "rebuilding",
            "rebuild_block_device_mapping",
            "rebuild_spawning",
        ] {
            assert_eq!(status(vm_state, Some(task_state)), "REBUILD");
        }
    }
    assert_eq!(status(vm::ACTIVE, Some("rescuing")), "ACTIVE");
    assert_eq!(status(vm::RESCUED, None), "RESCUE");
    assert_eq!(status(vm::RESCUED, Some("unrescuing")), "RESCUE");
}
