//! Cold migration (Nova's `migrate` server action) over real HTTP on three
//! embedded hosts: admin only; before 2.56 the body is not read, from 2.56
//! a `host` is checked (Nova's schema, its own host or an unknown one is a
//! 400) and still goes through the filters (a disabled host: no valid
//! host, the server stays where it was); the source is never a candidate
//! even with `allow_resize_to_same_host`; the flavor stays; a stopped
//! server stays off; the record is a `migration`, the instance action
//! `migrate`, and the notifications are Nova's `instance.resize*` ones.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::http_cloud::{self, Cloud};
use crate::resize::{
    ONE_RESIZE, act, cloud, create_flavor, event_types, host_of, show, vcpus_used, wait_status,
};

/// Sends server action `body` at `version`.
pub(crate) async fn act_at(cloud: &Cloud, id: &str, body: Value, version: &str) -> (u16, Value) {
    cloud
        .compute(
            &cloud.admin,
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(body),
            version,
        )
        .await
}

/// The migrations of `id` as (type, status, source, destination), newest
/// first.
pub(crate) async fn migrations(cloud: &Cloud, id: &str) -> Vec<[String; 4]> {
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
    let text = |row: &Value, key: &str| row[key].as_str().unwrap_or_default().to_string();
    body["migrations"]
        .as_array()
        .expect("migrations")
        .iter()
        .map(|row| {
            [
                text(row, "migration_type"),
                text(row, "status"),
                text(row, "source_compute"),
                text(row, "dest_compute"),
            ]
        })
        .collect()
}

/// Disables (or enables) the compute service of `host`.
pub(crate) async fn set_disabled(cloud: &Cloud, host: &str, disabled: bool) {
    let status_value = if disabled { "disabled" } else { "enabled" };
    update_service(cloud, host, json!({"status": status_value})).await;
}

/// Applies `change` (2.53's body) to the compute service of `host`.
pub(crate) async fn update_service(cloud: &Cloud, host: &str, change: Value) {
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            &format!("/os-services?host={host}&binary=nova-compute"),
            None,
            "2.53",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let service = body["services"][0]["id"]
        .as_str()
        .expect("service id")
        .to_string();
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::PUT,
            &format!("/os-services/{service}"),
            Some(change),
            "2.53",
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

pub(crate) fn message(body: &Value, fault: &str) -> String {
    body[fault]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cold_migration_moves_a_server_to_another_host_with_the_same_flavor() {
    cold_migration(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cold_migration_on_postgres() {
    if let Some(url) = novum_db::testing::postgres_url().await {
        cold_migration(Some(url)).await;
    }
}

async fn cold_migration(database_url: Option<String>) {
    // allow_resize_to_same_host on: a migration still never stays.
    let cloud = cloud(3, true, database_url).await;
    let small = create_flavor(&cloud, "small", 1, 512).await;
    let (_, _, member) = cloud.tenant("movers", "mover", "member").await;
    let (status, body) = cloud
        .compute(
            &member,
            Method::POST,
            "/servers",
            Some(http_cloud::server("mover", &small)),
            "2.96",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    let source = host_of(&wait_status(&cloud, &id, "ACTIVE").await);
    let hosts: Vec<String> = vcpus_used(&cloud)
        .await
        .into_iter()
        .map(|(host, _)| host)
        .collect();
    assert_eq!(hosts.len(), 3, "{hosts:?}");

    // Admin only, by Nova's default policy.
    let (status, body) = act(&cloud, &member, &id, json!({"migrate": null})).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        message(&body, "forbidden").contains("os_compute_api:os-migrate-server:migrate"),
        "{body}"
    );
    // 2.56's schema and Nova's checks of the named host.
    for (body, fault) in [
        (json!({"migrate": {"hots": "x"}}), "Additional properties"),
        (json!({"migrate": {"host": ""}}), "too short"),
        (json!({"migrate": {"host": 3}}), "host"),
        (
            json!({"migrate": {"host": source}}),
            "Cannot migrate to the host where the server exists.",
        ),
        (
            json!({"migrate": {"host": "nowhere"}}),
            "Compute host nowhere could not be found.",
        ),
    ] {
        let (status, reply) = act_at(&cloud, &id, body.clone(), "2.56").await;
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(message(&reply, "badRequest").contains(fault), "{reply}");
    }
    assert!(migrations(&cloud, &id).await.is_empty());

    // Before 2.56 the body is not read: the host named is ignored and the
    // scheduler picks another host than the source.
    let (status, body) = act_at(&cloud, &id, json!({"migrate": {"host": source}}), "2.55").await;
    assert_eq!(status, 202, "{body}");
    let verify = wait_status(&cloud, &id, "VERIFY_RESIZE").await;
    let first = host_of(&verify);
    assert_ne!(first, source, "{verify}");
    assert_eq!(verify["flavor"]["original_name"], "small");
    assert_eq!(verify["OS-EXT-STS:power_state"], 1);
    let claimed: i64 = vcpus_used(&cloud).await.iter().map(|(_, used)| used).sum();
    assert_eq!(claimed, 2, "both hosts hold a claim");
    // A second migration while one awaits confirmation: Nova's 409.
    let (status, body) = act_at(&cloud, &id, json!({"migrate": null}), "2.56").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        message(&body, "conflictingRequest"),
        format!("Cannot 'migrate' instance {id} while it is in vm_state resized")
    );
    let (status, body) = act(&cloud, &member, &id, json!({"revertResize": null})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(host_of(&wait_status(&cloud, &id, "ACTIVE").await), source);

    // A named host that the filters refuse (disabled): no valid host; the
    // server is back as it was, the migration in error.
    let named = hosts
        .iter()
        .find(|host| **host != source && **host != first)
        .expect("a third host")
        .clone();
    set_disabled(&cloud, &named, true).await;
    let (status, body) = act_at(&cloud, &id, json!({"migrate": {"host": named}}), "2.56").await;
    assert_eq!(status, 202, "{body}");
    let mut latest = Vec::new();
    for _ in 0..400 {
        latest = migrations(&cloud, &id).await;
        if latest.first().is_some_and(|row| row[1] == "error") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        latest.first().map(|row| row[1].as_str()),
        Some("error"),
        "{latest:?}"
    );
    let stayed = wait_status(&cloud, &id, "ACTIVE").await;
    assert_eq!(host_of(&stayed), source);
    assert!(stayed["OS-EXT-STS:task_state"].is_null(), "{stayed}");
    set_disabled(&cloud, &named, false).await;

    // A stopped server, to the named host: it stays off there.
    let (status, body) = act(&cloud, &member, &id, json!({"os-stop": null})).await;
    assert_eq!(status, 202, "{body}");
    wait_status(&cloud, &id, "SHUTOFF").await;
    let (status, body) = act_at(&cloud, &id, json!({"migrate": {"host": named}}), "2.56").await;
    assert_eq!(status, 202, "{body}");
    let verify = wait_status(&cloud, &id, "VERIFY_RESIZE").await;
    assert_eq!(host_of(&verify), named);
    assert_eq!(verify["OS-EXT-STS:power_state"], 4, "it was off");
    let (status, body) = act(&cloud, &member, &id, json!({"confirmResize": null})).await;
    assert_eq!(status, 204, "{body}");
    let confirmed = wait_status(&cloud, &id, "SHUTOFF").await;
    assert_eq!(host_of(&confirmed), named);
    let usage = vcpus_used(&cloud).await;
    assert!(
        usage
            .iter()
            .all(|(host, used)| *used == i64::from(*host == named)),
        "{usage:?}"
    );

    let row =
        |status: &str, from: &str, to: &str| ["migration", status, from, to].map(str::to_string);
    assert_eq!(
        migrations(&cloud, &id).await,
        vec![
            row("confirmed", &source, &named),
            row("error", &source, ""),
            row("reverted", &source, &first),
        ]
    );
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
    let mut actions: Vec<&str> = body["instanceActions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|action| action["action"].as_str())
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "confirmResize",
            "create",
            "migrate",
            "migrate",
            "migrate",
            "revertResize",
            "stop"
        ]
    );

    // Nova's notifications of a cold migration are the resize ones.
    let moves: Vec<String> = event_types(&cloud, &id)
        .await
        .into_iter()
        .filter(|event| event.starts_with("instance.resize"))
        .collect();
    let mut expected: Vec<&str> = ONE_RESIZE.to_vec();
    expected.extend(["instance.resize_revert.start", "instance.resize_revert.end"]);
    expected.extend(ONE_RESIZE);
    expected.extend([
        "instance.resize_confirm.start",
        "instance.resize_confirm.end",
    ]);
    assert_eq!(moves, expected);
    let shown = show(&cloud, &id).await;
    assert_eq!(shown["flavor"]["original_name"], "small", "{shown}");
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_migration_left_unconfirmed_is_confirmed_after_resize_confirm_window() {
    let cloud = Cloud::start(|config| {
        config.agent.embedded = true;
        config.agent.embedded_hosts = 2;
        config.compute.resize_confirm_window = 1;
        config.compute.reaper_interval_seconds = 1;
    })
    .await;
    cloud.wait_for_hosts(2).await;
    let id = cloud.create_server("waiter", "1", "2.96").await;
    let source = host_of(&wait_status(&cloud, &id, "ACTIVE").await);
    let (status, body) = act_at(&cloud, &id, json!({"migrate": null}), "2.1").await;
    assert_eq!(status, 202, "{body}");
    let destination = host_of(&wait_status(&cloud, &id, "VERIFY_RESIZE").await);
    assert_ne!(destination, source);
    // Nobody confirms: the reaper does, once the window has passed.
    let confirmed = wait_status(&cloud, &id, "ACTIVE").await;
    assert_eq!(host_of(&confirmed), destination);
    assert_eq!(
        migrations(&cloud, &id).await,
        vec![["migration", "confirmed", &source, &destination].map(str::to_string)]
    );
    let usage = vcpus_used(&cloud).await;
    assert!(
        usage
            .iter()
            .all(|(host, used)| *used == i64::from(*host == destination)),
        "{usage:?}"
    );
    cloud.stop().await;
}
