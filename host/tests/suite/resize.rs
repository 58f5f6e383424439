//! Resize, confirm and revert over real HTTP, on embedded compute hosts
//! (libvirt's test driver): the states the API shows, the claims on both
//! hosts, quota counting the larger flavor while a resize awaits
//! confirmation, instance actions and the `instance.resize*` notifications.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::http_cloud::{self, Cloud};

/// The notifications of one resize (or cold migration) up to
/// VERIFY_RESIZE, in order.
pub(crate) const ONE_RESIZE: [&str; 6] = [
    "instance.resize_prep.start",
    "instance.resize_prep.end",
    "instance.resize.start",
    "instance.resize.end",
    "instance.resize_finish.start",
    "instance.resize_finish.end",
];

/// A cloud of `hosts` embedded hosts (8 vCPUs each, ratio 1.0), on SQLite
/// or the PostgreSQL database `database_url`.
pub(crate) async fn cloud(hosts: u32, same_host: bool, database_url: Option<String>) -> Cloud {
    let cloud = Cloud::start(|config| {
        config.database.url = database_url;
        config.agent.embedded = true;
        config.agent.embedded_hosts = hosts;
        config.agent.embedded_vcpus = 8;
        config.agent.embedded_memory_mb = 65_536;
        config.agent.embedded_disk_gb = 500;
        config.compute.cpu_allocation_ratio = 1.0;
        config.compute.allow_resize_to_same_host = same_host;
    })
    .await;
    cloud.wait_for_hosts(hosts as usize).await;
    cloud
}

pub(crate) async fn create_flavor(cloud: &Cloud, name: &str, vcpus: u32, ram: u32) -> String {
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::POST,
            "/flavors",
            Some(json!({"flavor": {"name": name, "vcpus": vcpus, "ram": ram, "disk": 1}})),
            "2.61",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["flavor"]["id"]
        .as_str()
        .expect("flavor id")
        .to_string()
}

pub(crate) async fn show(cloud: &Cloud, id: &str) -> Value {
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

pub(crate) async fn wait_status(cloud: &Cloud, id: &str, wanted: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..400 {
        last = show(cloud, id).await;
        if last["status"] == wanted {
            return last;
        }
        assert_ne!(last["status"], "ERROR", "{last}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server {id} never reached {wanted}: {last}");
}

pub(crate) async fn act(cloud: &Cloud, token: &str, id: &str, body: Value) -> (u16, Value) {
    cloud
        .compute(
            token,
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(body),
            "2.96",
        )
        .await
}

/// (totalCoresUsed, totalRAMUsed) of the caller's project.
async fn used(cloud: &Cloud, token: &str) -> (i64, i64) {
    let (status, body) = cloud
        .compute(token, Method::GET, "/limits", None, "2.96")
        .await;
    assert_eq!(status, 200, "{body}");
    let absolute = &body["limits"]["absolute"];
    (
        absolute["totalCoresUsed"].as_i64().expect("cores"),
        absolute["totalRAMUsed"].as_i64().expect("ram"),
    )
}

/// vcpus_used per hypervisor hostname.
pub(crate) async fn vcpus_used(cloud: &Cloud) -> Vec<(String, i64)> {
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
    let mut used: Vec<(String, i64)> = body["hypervisors"]
        .as_array()
        .expect("hypervisors")
        .iter()
        .map(|hypervisor| {
            (
                hypervisor["hypervisor_hostname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                hypervisor["vcpus_used"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    used.sort();
    used
}

/// The event types notified for `instance`, oldest first.
pub(crate) async fn event_types(cloud: &Cloud, instance: &str) -> Vec<String> {
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
    let mut events: Vec<(i64, String)> = body["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .map(|item| {
            (
                item["seq"].as_i64().unwrap_or_default(),
                item["notification"]["event_type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    events.sort();
    events.into_iter().map(|(_, event)| event).collect()
}

pub(crate) fn host_of(server: &Value) -> String {
    server["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .expect("host")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resize_across_hosts_counts_the_larger_flavor_until_confirmed_or_reverted() {
    resize_across_hosts(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resize_across_hosts_on_postgres() {
    if let Some(url) = novum_db::testing::postgres_url().await {
        resize_across_hosts(Some(url)).await;
    }
}

async fn resize_across_hosts(database_url: Option<String>) {
    let cloud = cloud(2, false, database_url).await;
    let wide = create_flavor(&cloud, "wide", 2, 1024).await;
    let tall = create_flavor(&cloud, "tall", 1, 2048).await;
    let huge = create_flavor(&cloud, "huge", 8, 1024).await;
    let (project, _, member) = cloud.tenant("resizers", "resizer", "member").await;
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::PUT,
            &format!("/os-quota-sets/{project}"),
            Some(json!({"quota_set": {"cores": 4}})),
            "2.56",
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = cloud
        .compute(
            &member,
            Method::POST,
            "/servers",
            Some(http_cloud::server("grow", &wide)),
            "2.96",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    let source = host_of(&wait_status(&cloud, &id, "ACTIVE").await);
    assert_eq!(used(&cloud, &member).await, (2, 1024));

    // Guards: the same flavor is a 400, confirm before a resize a 409, a
    // resize over quota a 403 naming the resource.
    let (status, body) = act(&cloud, &member, &id, json!({"resize": {"flavorRef": wide}})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["badRequest"]["message"],
        "When resizing, instances must change flavor!"
    );
    let (status, body) = act(&cloud, &member, &id, json!({"confirmResize": null})).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = act(&cloud, &member, &id, json!({"resize": {"flavorRef": huge}})).await;
    assert_eq!(status, 403, "{body}");
    let message = body["forbidden"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Quota exceeded for cores: Requested 6, but already used 2 of 4 cores"),
        "{message}"
    );
    let (status, body) = act(&cloud, &member, &id, json!({"resize": {}})).await;
    assert_eq!(status, 400, "{body}");

    // wide (2 vCPUs, 1 GiB) → tall (1 vCPU, 2 GiB), on the other host.
    let (status, body) = act(&cloud, &member, &id, json!({"resize": {"flavorRef": tall}})).await;
    assert_eq!(status, 202, "{body}");
    let verify = wait_status(&cloud, &id, "VERIFY_RESIZE").await;
    let destination = host_of(&verify);
    assert_ne!(destination, source, "allow_resize_to_same_host is off");
    assert_eq!(verify["flavor"]["original_name"], "tall");
    assert_eq!(verify["OS-EXT-STS:vm_state"], "resized");
    assert_eq!(verify["OS-EXT-STS:power_state"], 1, "it was running");
    // Both claims are held; quota counts the larger of each resource.
    let both: Vec<i64> = vcpus_used(&cloud)
        .await
        .iter()
        .map(|(_, used)| *used)
        .collect();
    assert_eq!(both.iter().sum::<i64>(), 3, "{both:?}");
    assert_eq!(used(&cloud, &member).await, (2, 2048));
    // A 3-vCPU server would fit next to the new flavor alone (1 + 3 = 4),
    // but not next to what the resize holds (2 + 3 > 4).
    let three = create_flavor(&cloud, "three", 3, 512).await;
    let (status, body) = cloud
        .compute(
            &member,
            Method::POST,
            "/servers",
            Some(http_cloud::server("squeeze", &three)),
            "2.96",
        )
        .await;
    assert_eq!(
        status, 403,
        "1 (tall) + 3 would fit, 2 (counted) + 3 does not: {body}"
    );

    let (status, body) = act(&cloud, &member, &id, json!({"confirmResize": null})).await;
    assert_eq!(status, 204, "{body}");
    let active = wait_status(&cloud, &id, "ACTIVE").await;
    assert_eq!(host_of(&active), destination);
    for _ in 0..200 {
        if used(&cloud, &member).await == (1, 2048) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(used(&cloud, &member).await, (1, 2048));
    assert_eq!(
        vcpus_used(&cloud)
            .await
            .iter()
            .map(|(_, used)| *used)
            .sum::<i64>(),
        1,
        "the source claim is gone"
    );

    // tall → wide again, then revert: back on the first host as tall.
    let (status, body) = act(&cloud, &member, &id, json!({"resize": {"flavorRef": wide}})).await;
    assert_eq!(status, 202, "{body}");
    let verify = wait_status(&cloud, &id, "VERIFY_RESIZE").await;
    assert_eq!(host_of(&verify), source);
    assert_eq!(used(&cloud, &member).await, (2, 2048));
    let (status, body) = act(&cloud, &member, &id, json!({"revertResize": null})).await;
    assert_eq!(status, 202, "{body}");
    let reverted = wait_status(&cloud, &id, "ACTIVE").await;
    assert_eq!(host_of(&reverted), destination);
    assert_eq!(reverted["flavor"]["original_name"], "tall");
    assert_eq!(used(&cloud, &member).await, (1, 2048));
    assert_eq!(
        vcpus_used(&cloud)
            .await
            .iter()
            .map(|(_, used)| *used)
            .sum::<i64>(),
        1,
        "the destination claim of the reverted resize is gone"
    );

    // The migration records, newest first (admins only).
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            &format!("/os-migrations?instance_uuid={id}"),
            None,
            "2.80",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let migrations = body["migrations"].as_array().expect("migrations");
    let statuses: Vec<&str> = migrations
        .iter()
        .map(|migration| migration["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses, ["reverted", "confirmed"]);
    assert_eq!(migrations[0]["source_compute"], destination.as_str());
    assert_eq!(migrations[0]["dest_compute"], source.as_str());
    assert_eq!(migrations[0]["migration_type"], "resize");
    assert!(migrations[0]["uuid"].is_string() && migrations[0]["user_id"].is_string());
    let (status, _) = cloud
        .compute(&member, Method::GET, "/os-migrations", None, "2.1")
        .await;
    assert_eq!(status, 403);

    // Instance actions and their events.
    let (status, body) = cloud
        .compute(
            &member,
            Method::GET,
            &format!("/servers/{id}/os-instance-actions"),
            None,
            "2.84",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut actions: Vec<String> = body["instanceActions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|action| action["action"].as_str().unwrap_or_default().to_string())
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            "confirmResize",
            "create",
            "resize",
            "resize",
            "revertResize"
        ]
    );

    // The notifications, in order.
    let resize_events: Vec<String> = event_types(&cloud, &id)
        .await
        .into_iter()
        .filter(|event| event.starts_with("instance.resize"))
        .collect();
    let mut expected: Vec<&str> = ONE_RESIZE.to_vec();
    expected.extend([
        "instance.resize_confirm.start",
        "instance.resize_confirm.end",
    ]);
    expected.extend(ONE_RESIZE);
    expected.extend(["instance.resize_revert.start", "instance.resize_revert.end"]);
    assert_eq!(resize_events, expected);
    let (status, body) = cloud
        .call(
            &cloud.admin,
            Method::GET,
            &format!("/novum/v1/notifications?instance={id}&event_type=instance.resize_prep.start"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let payloads: Vec<&Value> = body["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .map(|item| &item["notification"]["payload"])
        .collect();
    assert_eq!(payloads.len(), 2, "{body}");
    for payload in &payloads {
        assert_eq!(
            payload["nova_object.name"],
            "InstanceActionResizePrepPayload"
        );
        assert_eq!(payload["nova_object.version"], "1.2");
    }
    let mut new_flavors: Vec<&str> = payloads
        .iter()
        .map(|payload| {
            payload["nova_object.data"]["new_flavor"]["nova_object.data"]["name"]
                .as_str()
                .unwrap_or_default()
        })
        .collect();
    new_flavors.sort();
    assert_eq!(new_flavors, ["tall", "wide"]);

    // Deleting during VERIFY_RESIZE frees both hosts.
    let (status, body) = act(&cloud, &member, &id, json!({"resize": {"flavorRef": wide}})).await;
    assert_eq!(status, 202, "{body}");
    wait_status(&cloud, &id, "VERIFY_RESIZE").await;
    let (status, _) = cloud
        .compute(
            &member,
            Method::DELETE,
            &format!("/servers/{id}"),
            None,
            "2.96",
        )
        .await;
    assert_eq!(status, 204);
    for _ in 0..400 {
        if vcpus_used(&cloud).await.iter().all(|(_, used)| *used == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        vcpus_used(&cloud).await.iter().all(|(_, used)| *used == 0),
        "{:?}",
        vcpus_used(&cloud).await
    );
    assert_eq!(used(&cloud, &member).await, (0, 0));
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_one_host_cloud_resizes_in_place_and_a_stopped_server_stays_off() {
    let cloud = cloud(1, true, None).await;
    let id = cloud.create_server("in-place", "1", "2.96").await;
    let host = host_of(&wait_status(&cloud, &id, "ACTIVE").await);

    let (status, body) = act(
        &cloud,
        &cloud.admin,
        &id,
        json!({"resize": {"flavorRef": "2"}}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let verify = wait_status(&cloud, &id, "VERIFY_RESIZE").await;
    assert_eq!(host_of(&verify), host);
    assert_eq!(verify["flavor"]["original_name"], "m1.small");
    // Same host: the node holds both claims until the confirm, which needs
    // no agent and ends at once.
    assert_eq!(vcpus_used(&cloud).await[0].1, 2);
    let (status, body) = act(&cloud, &cloud.admin, &id, json!({"confirmResize": null})).await;
    assert_eq!(status, 204, "{body}");
    let active = show(&cloud, &id).await;
    assert_eq!(active["status"], "ACTIVE");
    assert_eq!(vcpus_used(&cloud).await[0].1, 1);

    // A stopped server resizes and reverts without being started.
    let (status, body) = act(&cloud, &cloud.admin, &id, json!({"os-stop": null})).await;
    assert_eq!(status, 202, "{body}");
    wait_status(&cloud, &id, "SHUTOFF").await;
    let (status, body) = act(
        &cloud,
        &cloud.admin,
        &id,
        json!({"resize": {"flavorRef": "3"}}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let verify = wait_status(&cloud, &id, "VERIFY_RESIZE").await;
    assert_eq!(verify["OS-EXT-STS:power_state"], 4, "shut down");
    let (status, body) = act(&cloud, &cloud.admin, &id, json!({"revertResize": null})).await;
    assert_eq!(status, 202, "{body}");
    let reverted = wait_status(&cloud, &id, "SHUTOFF").await;
    assert_eq!(reverted["flavor"]["original_name"], "m1.small");
    assert_eq!(vcpus_used(&cloud).await[0].1, 1);
    cloud.stop().await;
}
