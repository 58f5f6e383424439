//! `createImage`, `createBackup`, `shelve`, `shelveOffload` and `unshelve`
//! over real HTTP on embedded compute hosts (libvirt's test driver, whose
//! agent snapshots by uploading the instance's base image through the
//! agent RPC): Nova's state guards (409), body validation (400), the
//! microversion shapes (Location before 2.45, `image_id` from it), the
//! snapshot's image record, booting from it, backup rotation, shelve with
//! an immediate or periodic offload, unshelve on the same host or
//! scheduled again (2.77 zone, 2.91 host), a failed snapshot, instance
//! actions and notifications.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::http_cloud::{Cloud, IMAGE};

async fn cloud(hosts: u32, configure: impl FnOnce(&mut novum_config::Config)) -> Cloud {
    let cloud = Cloud::start(|config| {
        config.agent.embedded = true;
        config.agent.embedded_hosts = hosts;
        config.agent.embedded_vcpus = 8;
        config.agent.embedded_memory_mb = 65_536;
        config.agent.embedded_disk_gb = 500;
        config.compute.cpu_allocation_ratio = 1.0;
        config.compute.reaper_interval_seconds = 1;
        configure(config);
    })
    .await;
    cloud.wait_for_hosts(hosts as usize).await;
    cloud
}

async fn show(cloud: &Cloud, id: &str) -> Value {
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            &format!("/servers/{id}"),
            None,
            "2.96",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["server"].clone()
}

async fn wait_status(cloud: &Cloud, id: &str, wanted: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        last = show(cloud, id).await;
        if last["status"] == wanted && last["OS-EXT-STS:task_state"].is_null() {
            return last;
        }
        assert_ne!(last["status"], "ERROR", "{last}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server {id} never reached {wanted}: {last}");
}

async fn boot(cloud: &Cloud, token: &str, name: &str, image: &str) -> String {
    let (status, body) = cloud
        .compute(
            token,
            Method::POST,
            "/servers",
            Some(json!({"server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}})),
            "2.96",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    wait_status(cloud, &id, "ACTIVE").await;
    id
}

/// A server action at `version`: status, `Location` header, JSON body.
async fn act(
    cloud: &Cloud,
    token: &str,
    id: &str,
    body: Value,
    version: &str,
) -> (u16, Option<String>, Value) {
    let response = cloud
        .client
        .post(format!("{}/compute/v2.1/servers/{id}/action", cloud.base))
        .header("x-auth-token", token)
        .header("openstack-api-version", format!("compute {version}"))
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    (
        status,
        location,
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn image(cloud: &Cloud, id: &str) -> (u16, Value) {
    cloud
        .call(
            &cloud.admin,
            Method::GET,
            &format!("/image/v2/images/{id}"),
            None,
            "2.1",
        )
        .await
}

async fn wait_image_active(cloud: &Cloud, id: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        let (status, body) = image(cloud, id).await;
        if status == 200 && body["status"] == "active" {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("image {id} never became active: {last}");
}

async fn wait_image_gone(cloud: &Cloud, id: &str) {
    for _ in 0..600 {
        if image(cloud, id).await.0 == 404 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("image {id} was never deleted");
}

/// The event types notified for `instance`, oldest first.
async fn event_types(cloud: &Cloud, instance: &str) -> Vec<String> {
    let (status, body) = cloud
        .call(
            &cloud.admin,
            Method::GET,
            &format!("/novum/v1/notifications?instance={instance}&limit=1000"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut events: Vec<(i64, Value)> = body["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .map(|item| {
            (
                item["seq"].as_i64().unwrap_or_default(),
                item["notification"].clone(),
            )
        })
        .collect();
    events.sort_by_key(|(seq, _)| *seq);
    events
        .into_iter()
        .map(|(_, notification)| {
            let event = notification["event_type"].as_str().unwrap_or_default();
            if event == "instance.update" {
                let data = &notification["payload"]["nova_object.data"];
                let task = data["state_update"]["nova_object.data"]["new_task_state"]
                    .as_str()
                    .unwrap_or("-")
                    .to_string();
                format!("instance.update:{task}")
            } else {
                event.to_string()
            }
        })
        .collect()
}

/// The instance actions of `id`, oldest first, with their events.
async fn actions(cloud: &Cloud, id: &str) -> Vec<(String, Vec<(String, String)>)> {
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            &format!("/servers/{id}/os-instance-actions"),
            None,
            "2.96",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut out = Vec::new();
    let mut list = body["instanceActions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    list.reverse();
    for action in list {
        let request = action["request_id"].as_str().unwrap_or_default();
        let (_, detail) = cloud
            .compute(
                &cloud.admin,
                Method::GET,
                &format!("/servers/{id}/os-instance-actions/{request}"),
                None,
                "2.96",
            )
            .await;
        let events = detail["instanceAction"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|event| {
                (
                    event["event"].as_str().unwrap_or_default().to_string(),
                    event["result"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        out.push((
            action["action"].as_str().unwrap_or_default().to_string(),
            events,
        ));
    }
    out
}

fn host_of(server: &Value) -> Option<String> {
    server["OS-EXT-SRV-ATTR:host"].as_str().map(str::to_string)
}

async fn vcpus_used(cloud: &Cloud) -> i64 {
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            "/os-hypervisors/detail",
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["hypervisors"]
        .as_array()
        .expect("hypervisors")
        .iter()
        .map(|hypervisor| hypervisor["vcpus_used"].as_i64().unwrap_or_default())
        .sum()
}

async fn limits(cloud: &Cloud, token: &str) -> (i64, i64) {
    let (status, body) = cloud
        .compute(token, Method::GET, "/limits", None, "2.96")
        .await;
    assert_eq!(status, 200, "{body}");
    let absolute = &body["limits"]["absolute"];
    (
        absolute["totalInstancesUsed"].as_i64().expect("instances"),
        absolute["totalCoresUsed"].as_i64().expect("cores"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_image_makes_an_active_bootable_snapshot() {
    let cloud = cloud(1, |_| {}).await;
    let (project, user, member) = cloud.tenant("snappers", "snapper", "member").await;
    let id = boot(&cloud, &member, "origin", IMAGE).await;

    // Bodies Nova's schema refuses.
    for body in [
        json!({"createImage": {}}),
        json!({"createImage": {"name": ""}}),
        json!({"createImage": {"name": " padded"}}),
        json!({"createImage": {"name": "x", "metadata": {"k": 1}}}),
        json!({"createImage": {"name": "x", "extra": true}}),
        json!({"createImage": "x"}),
    ] {
        let (status, _, reply) = act(&cloud, &member, &id, body.clone(), "2.44").await;
        assert_eq!(status, 400, "{body}: {reply}");
    }

    // Before 2.45: 202, the image's URL in Location, no body.
    let (status, location, body) = act(
        &cloud,
        &member,
        &id,
        json!({"createImage": {"name": "snap-1", "metadata": {"purpose": "test"}}}),
        "2.44",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert!(body.is_null(), "{body}");
    let location = location.expect("Location");
    let image_id = location.rsplit('/').next().expect("id").to_string();
    assert!(
        location.ends_with(&format!("/image/images/{image_id}")),
        "{location}"
    );
    let snapshot = wait_image_active(&cloud, &image_id).await;
    assert_eq!(snapshot["name"], "snap-1");
    assert_eq!(snapshot["owner"], project.as_str());
    assert_eq!(snapshot["image_type"], "snapshot");
    assert_eq!(snapshot["instance_uuid"], id.as_str());
    assert_eq!(snapshot["base_image_ref"], IMAGE);
    assert_eq!(snapshot["user_id"], user.as_str());
    assert_eq!(snapshot["purpose"], "test");
    assert_eq!(snapshot["min_disk"], 1, "the flavor's root disk");
    assert_eq!(
        snapshot["disk_format"], "raw",
        "the test driver uploads the base image"
    );
    assert_eq!(snapshot["container_format"], "bare");
    assert_eq!(snapshot["size"], 1024);
    assert_eq!(snapshot["visibility"], "private");
    let server = wait_status(&cloud, &id, "ACTIVE").await;
    assert_eq!(
        server["image"]["id"], IMAGE,
        "the server's image stays the original"
    );

    // The upload moved the task_state as Nova's driver does.
    let events = event_types(&cloud, &id).await;
    let snapshot_events: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .skip_while(|event| *event != "instance.update:image_snapshot")
        .collect();
    assert_eq!(
        snapshot_events,
        [
            "instance.update:image_snapshot",
            "instance.snapshot.start",
            "instance.update:image_pending_upload",
            "instance.update:image_uploading",
            "instance.update:-",
            "instance.snapshot.end",
        ],
        "{events:?}"
    );
    let history = actions(&cloud, &id).await;
    assert_eq!(
        history.last().expect("action"),
        &(
            "createImage".to_string(),
            vec![(
                "compute_snapshot_instance".to_string(),
                "Success".to_string()
            )]
        )
    );

    // From 2.45: `{"image_id": …}` and no Location.
    let (status, location, body) = act(
        &cloud,
        &member,
        &id,
        json!({"createImage": {"name": "snap-2"}}),
        "2.45",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert!(location.is_none(), "{location:?}");
    let second = body["image_id"].as_str().expect("image_id").to_string();
    wait_image_active(&cloud, &second).await;
    wait_status(&cloud, &id, "ACTIVE").await;

    // The snapshot boots.
    let child = boot(&cloud, &member, "child", &image_id).await;
    assert_eq!(show(&cloud, &child).await["image"]["id"], image_id.as_str());

    // A paused server snapshots too; an ERROR one is refused with 409.
    let (status, _, body) = act(&cloud, &member, &child, json!({"pause": null}), "2.96").await;
    assert_eq!(status, 202, "{body}");
    wait_status(&cloud, &child, "PAUSED").await;
    let (status, _, body) = act(
        &cloud,
        &member,
        &child,
        json!({"createImage": {"name": "p"}}),
        "2.96",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    wait_image_active(&cloud, body["image_id"].as_str().expect("image_id")).await;
    let paused = wait_status(&cloud, &child, "PAUSED").await;
    assert_eq!(paused["OS-EXT-STS:vm_state"], "paused");
    let (status, _, _) = act(
        &cloud,
        &cloud.admin,
        &child,
        json!({"os-resetState": {"state": "error"}}),
        "2.96",
    )
    .await;
    assert_eq!(status, 202);
    let (status, _, body) = act(
        &cloud,
        &member,
        &child,
        json!({"createImage": {"name": "e"}}),
        "2.96",
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["conflictingRequest"]["message"],
        format!("Cannot 'createImage' instance {child} while it is in vm_state error")
    );

    // The request's metadata counts against metadata_items (403).
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::PUT,
            &format!("/os-quota-sets/{project}"),
            Some(json!({"quota_set": {"metadata_items": 1}})),
            "2.56",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = act(
        &cloud,
        &member,
        &id,
        json!({"createImage": {"name": "m", "metadata": {"a": "1", "b": "2"}}}),
        "2.96",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["forbidden"]["message"],
        "Image metadata limit exceeded"
    );
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_backup_rotates_the_oldest_backups_of_its_type() {
    let cloud = cloud(1, |_| {}).await;
    let (_, _, member) = cloud.tenant("backers", "backer", "member").await;
    let id = boot(&cloud, &member, "backed", IMAGE).await;
    for body in [
        json!({"createBackup": {"name": "b", "backup_type": "daily"}}),
        json!({"createBackup": {"name": "b", "rotation": 1}}),
        json!({"createBackup": {"name": "b", "backup_type": "daily", "rotation": -1}}),
        json!({"createBackup": {"name": "b", "backup_type": "daily", "rotation": "x"}}),
    ] {
        let (status, _, reply) = act(&cloud, &member, &id, body.clone(), "2.96").await;
        assert_eq!(status, 400, "{body}: {reply}");
    }
    let mut daily = Vec::new();
    for index in 0..3 {
        let (status, location, body) = act(
            &cloud,
            &member,
            &id,
            json!({"createBackup": {"name": format!("daily-{index}"), "backup_type": "daily", "rotation": "2"}}),
            "2.44",
        )
        .await;
        assert_eq!(status, 202, "{body}");
        let image_id = location
            .expect("Location")
            .rsplit('/')
            .next()
            .expect("id")
            .to_string();
        let backup = wait_image_active(&cloud, &image_id).await;
        assert_eq!(backup["image_type"], "backup");
        assert_eq!(backup["backup_type"], "daily");
        wait_status(&cloud, &id, "ACTIVE").await;
        daily.push(image_id);
    }
    let (status, _, body) = act(
        &cloud,
        &member,
        &id,
        json!({"createBackup": {"name": "weekly", "backup_type": "weekly", "rotation": 1}}),
        "2.45",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let weekly = body["image_id"].as_str().expect("image_id").to_string();
    wait_image_active(&cloud, &weekly).await;
    wait_status(&cloud, &id, "ACTIVE").await;
    // Rotation 2 keeps the two newest daily backups; the weekly one is
    // another type.
    wait_image_gone(&cloud, &daily[0]).await;
    assert_eq!(image(&cloud, &daily[1]).await.0, 200);
    assert_eq!(image(&cloud, &daily[2]).await.0, 200);
    assert_eq!(image(&cloud, &weekly).await.0, 200);

    // Rotation 0: no Location before 2.45, and every weekly backup goes,
    // the new one too.
    let (status, location, body) = act(
        &cloud,
        &member,
        &id,
        json!({"createBackup": {"name": "none", "backup_type": "weekly", "rotation": 0}}),
        "2.44",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert!(location.is_none(), "{location:?}");
    wait_status(&cloud, &id, "ACTIVE").await;
    wait_image_gone(&cloud, &weekly).await;
    let history = actions(&cloud, &id).await;
    assert_eq!(
        history.last().expect("action"),
        &(
            "createBackup".to_string(),
            vec![("compute_backup_instance".to_string(), "Success".to_string())]
        )
    );
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shelve_offloads_at_once_and_unshelve_schedules_again() {
    shelve_and_unshelve(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shelve_and_unshelve_on_postgres() {
    if let Some(url) = novum_db::testing::postgres_url().await {
        shelve_and_unshelve(Some(url)).await;
    }
}

async fn shelve_and_unshelve(database_url: Option<String>) {
    let cloud = cloud(2, |config| config.database.url = database_url).await;
    let (_, _, member) = cloud.tenant("shelvers", "shelver", "member").await;
    let id = boot(&cloud, &member, "sleeper", IMAGE).await;
    let before = limits(&cloud, &member).await;
    assert_eq!(vcpus_used(&cloud).await, 1);

    let (status, _, body) = act(&cloud, &member, &id, json!({"unshelve": null}), "2.96").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["conflictingRequest"]["message"],
        format!("Cannot 'unshelve' instance {id} while it is in vm_state active")
    );
    let (status, _, body) = act(&cloud, &member, &id, json!({"shelve": null}), "2.96").await;
    assert_eq!(status, 202, "{body}");
    let offloaded = wait_status(&cloud, &id, "SHELVED_OFFLOADED").await;
    assert_eq!(host_of(&offloaded), None, "{offloaded}");
    assert_eq!(offloaded["OS-EXT-STS:power_state"], 0);
    assert_eq!(offloaded["image"]["id"], IMAGE);
    assert_eq!(vcpus_used(&cloud).await, 0, "the claim is released");
    assert_eq!(
        limits(&cloud, &member).await,
        before,
        "an offloaded server still counts (legacy quota counting)"
    );
    let shelved_image = {
        let (status, body) = cloud
            .call(
                &cloud.admin,
                Method::GET,
                "/image/v2/images?name=sleeper-shelved",
                None,
                "2.1",
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let found = body["images"].as_array().expect("images");
        assert_eq!(found.len(), 1, "{body}");
        assert_eq!(found[0]["status"], "active");
        assert_eq!(found[0]["image_type"], "snapshot");
        found[0]["id"].as_str().expect("id").to_string()
    };
    let events = event_types(&cloud, &id).await;
    for wanted in [
        "instance.shelve.start",
        "instance.update:shelving_image_pending_upload",
        "instance.update:shelving_image_uploading",
        "instance.shelve.end",
        "instance.update:shelving_offloading",
        "instance.shelve_offload.start",
        "instance.shelve_offload.end",
    ] {
        assert!(
            events.iter().any(|event| event == wanted),
            "{wanted}: {events:?}"
        );
    }

    // Offloaded: no snapshot, no second shelve; a member may not pick a
    // host; an unknown zone or host is a 400; before 2.77 the body is
    // not looked at, at 2.77 `host` is unknown.
    for (body, version, wanted) in [
        (json!({"createImage": {"name": "x"}}), "2.96", 409),
        (json!({"shelve": null}), "2.96", 409),
        (
            json!({"unshelve": {"availability_zone": "nowhere"}}),
            "2.77",
            400,
        ),
        (json!({"unshelve": {"host": "compute1"}}), "2.77", 400),
        (
            json!({"unshelve": {"availability_zone": null}}),
            "2.77",
            400,
        ),
        (json!({"unshelve": {"host": "compute1"}}), "2.91", 403),
    ] {
        let (status, _, reply) = act(&cloud, &member, &id, body.clone(), version).await;
        assert_eq!(status, wanted, "{body} at {version}: {reply}");
    }
    let (status, _, body) = act(
        &cloud,
        &cloud.admin,
        &id,
        json!({"unshelve": {"host": "no-such-host"}}),
        "2.91",
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Unshelve: scheduled again, spawned from the shelved image, which is
    // deleted afterwards.
    let (status, _, body) = act(&cloud, &member, &id, json!({"unshelve": null}), "2.96").await;
    assert_eq!(status, 202, "{body}");
    let active = wait_status(&cloud, &id, "ACTIVE").await;
    assert!(host_of(&active).is_some(), "{active}");
    assert_eq!(vcpus_used(&cloud).await, 1);
    wait_image_gone(&cloud, &shelved_image).await;
    let events = event_types(&cloud, &id).await;
    assert!(
        events
            .iter()
            .any(|event| event == "instance.unshelve.start"),
        "{events:?}"
    );
    assert!(
        events.iter().any(|event| event == "instance.unshelve.end"),
        "{events:?}"
    );

    // Shelve again, then unshelve onto a named host (2.91, admin).
    let first = host_of(&active).expect("host");
    let other = if first == "compute1" {
        "compute2"
    } else {
        "compute1"
    };
    let (status, _, body) = act(&cloud, &member, &id, json!({"shelve": null}), "2.96").await;
    assert_eq!(status, 202, "{body}");
    wait_status(&cloud, &id, "SHELVED_OFFLOADED").await;
    let (status, _, body) = act(
        &cloud,
        &cloud.admin,
        &id,
        json!({"unshelve": {"host": other, "availability_zone": null}}),
        "2.91",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let moved = wait_status(&cloud, &id, "ACTIVE").await;
    assert_eq!(host_of(&moved).as_deref(), Some(other));

    let names: Vec<String> = actions(&cloud, &id)
        .await
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        names,
        ["create", "shelve", "unshelve", "shelve", "unshelve"]
    );
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shelved_servers_stay_on_their_host_until_offloaded() {
    let cloud = cloud(1, |config| config.compute.shelved_offload_time = -1).await;
    let (_, _, member) = cloud.tenant("keepers", "keeper", "member").await;
    let id = boot(&cloud, &member, "kept", IMAGE).await;
    let (status, _, body) = act(&cloud, &member, &id, json!({"shelveOffload": null}), "2.96").await;
    assert_eq!(status, 403, "shelveOffload is admin-only: {body}");
    let (status, _, body) = act(
        &cloud,
        &cloud.admin,
        &id,
        json!({"shelveOffload": null}),
        "2.96",
    )
    .await;
    assert_eq!(status, 409, "only a SHELVED server offloads: {body}");

    // Suspended servers shelve (and unshelve) too.
    let (status, _, body) = act(&cloud, &member, &id, json!({"suspend": null}), "2.96").await;
    assert_eq!(status, 202, "{body}");
    wait_status(&cloud, &id, "SUSPENDED").await;
    let (status, _, body) = act(&cloud, &member, &id, json!({"shelve": null}), "2.96").await;
    assert_eq!(status, 202, "{body}");
    wait_status(&cloud, &id, "SHELVED").await;
    let (status, _, body) = act(&cloud, &member, &id, json!({"unshelve": null}), "2.96").await;
    assert_eq!(status, 202, "{body}");
    wait_status(&cloud, &id, "ACTIVE").await;

    // Stopped servers shelve too; the server keeps its host.
    let (status, _, body) = act(&cloud, &member, &id, json!({"os-stop": null}), "2.96").await;
    assert_eq!(status, 202, "{body}");
    wait_status(&cloud, &id, "SHUTOFF").await;
    let (status, _, body) = act(&cloud, &member, &id, json!({"shelve": null}), "2.96").await;
    assert_eq!(status, 202, "{body}");
    let shelved = wait_status(&cloud, &id, "SHELVED").await;
    assert!(host_of(&shelved).is_some(), "{shelved}");
    assert_eq!(
        vcpus_used(&cloud).await,
        1,
        "a SHELVED server keeps its claim"
    );
    let (status, _, body) = act(
        &cloud,
        &member,
        &id,
        json!({"unshelve": {"availability_zone": "nova"}}),
        "2.77",
    )
    .await;
    assert_eq!(status, 409, "a zone only for an offloaded server: {body}");

    // Unshelve from SHELVED: powered on where it is.
    let (status, _, body) = act(&cloud, &member, &id, json!({"unshelve": null}), "2.96").await;
    assert_eq!(status, 202, "{body}");
    let active = wait_status(&cloud, &id, "ACTIVE").await;
    assert_eq!(host_of(&active), host_of(&shelved));
    assert_eq!(active["OS-EXT-STS:power_state"], 1);

    // shelveOffload on demand.
    let (status, _, body) = act(&cloud, &member, &id, json!({"shelve": null}), "2.96").await;
    assert_eq!(status, 202, "{body}");
    wait_status(&cloud, &id, "SHELVED").await;
    let (status, _, body) = act(
        &cloud,
        &cloud.admin,
        &id,
        json!({"shelveOffload": null}),
        "2.96",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let offloaded = wait_status(&cloud, &id, "SHELVED_OFFLOADED").await;
    assert_eq!(host_of(&offloaded), None);
    assert_eq!(vcpus_used(&cloud).await, 0);
    let names: Vec<String> = actions(&cloud, &id)
        .await
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        names,
        [
            "create",
            "suspend",
            "shelve",
            "unshelve",
            "stop",
            "shelve",
            "unshelve",
            "shelve",
            "shelveOffload"
        ]
    );
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_periodic_task_offloads_servers_shelved_long_enough() {
    let cloud = cloud(1, |config| {
        config.compute.shelved_offload_time = 1;
        config.compute.shelved_poll_interval_seconds = 1;
    })
    .await;
    let (_, _, member) = cloud.tenant("sleepers", "sleeper", "member").await;
    let id = boot(&cloud, &member, "dozing", IMAGE).await;
    let (status, _, body) = act(&cloud, &member, &id, json!({"shelve": null}), "2.96").await;
    assert_eq!(status, 202, "{body}");
    let offloaded = wait_status(&cloud, &id, "SHELVED_OFFLOADED").await;
    assert_eq!(host_of(&offloaded), None);
    let names: Vec<String> = actions(&cloud, &id)
        .await
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        names,
        ["create", "shelve", "shelveOffload"],
        "the offload is its own action"
    );
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_snapshot_deletes_its_image_and_leaves_a_fault() {
    let cloud = cloud(1, |_| {}).await;
    let (_, _, member) = cloud.tenant("failers", "failer", "member").await;
    let id = boot(&cloud, &member, "doomed", IMAGE).await;
    // The test driver's snapshot is the base image: gone, the task fails.
    let (status, body) = cloud
        .call(
            &cloud.admin,
            Method::DELETE,
            &format!("/image/v2/images/{IMAGE}"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, _, body) = act(
        &cloud,
        &member,
        &id,
        json!({"createImage": {"name": "lost"}}),
        "2.96",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let image_id = body["image_id"].as_str().expect("image_id").to_string();
    wait_image_gone(&cloud, &image_id).await;
    let server = wait_status(&cloud, &id, "ACTIVE").await;
    assert_eq!(server["OS-EXT-STS:vm_state"], "active");
    let history = actions(&cloud, &id).await;
    assert_eq!(
        history.last().expect("action"),
        &(
            "createImage".to_string(),
            vec![("compute_snapshot_instance".to_string(), "Error".to_string())]
        )
    );
    let events = event_types(&cloud, &id).await;
    assert!(
        events.iter().any(|event| event == "compute.exception"),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|event| event == "instance.snapshot.end"),
        "{events:?}"
    );

    // A shelve whose snapshot fails goes back to where it was.
    let (status, _, body) = act(&cloud, &member, &id, json!({"shelve": null}), "2.96").await;
    assert_eq!(status, 202, "{body}");
    for _ in 0..600 {
        let server = show(&cloud, &id).await;
        if server["OS-EXT-STS:task_state"].is_null() && server["status"] != "SHELVED" {
            assert_eq!(server["OS-EXT-STS:vm_state"], "active", "{server}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (status, body) = cloud
        .call(
            &cloud.admin,
            Method::GET,
            "/image/v2/images?name=doomed-shelved",
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["images"],
        json!([]),
        "the failed shelve's image is deleted"
    );
    cloud.stop().await;
}
