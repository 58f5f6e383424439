//! Evacuation (Nova's `evacuate` server action) over real HTTP on three
//! embedded hosts: admin only; Nova's body per microversion (the required
//! `onSharedStorage` before 2.14, `force` from 2.29 to 2.67, the named
//! host's 404 and same-host 400); refused while the source's compute
//! service is up (400, "Compute service of … is still in use."); once it
//! is forced down, the server is rebuilt on another host (ACTIVE, its claim
//! moved, the source's dropped), recorded as an `evacuation` migration
//! (`done`) and an `evacuate` instance action, with Nova's notifications;
//! a named host the filters refuse is no valid host (the server in ERROR,
//! the migration in `error`), the same host forced is taken; from 2.95 the
//! server ends stopped. A host with servers cannot be deleted (Nova's 409).

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::http_cloud::{self, Cloud};
use crate::migrate::{act_at, message, migrations, set_disabled, update_service};
use crate::resize::{
    act, cloud, create_flavor, event_types, host_of, show, vcpus_used, wait_status,
};

/// Creates server `name` of `flavor` as `token`, on `host` when given
/// (`nova:<host>`, admin); waits until ACTIVE and returns its id and host.
pub(crate) async fn boot(
    cloud: &Cloud,
    token: &str,
    name: &str,
    flavor: &str,
    host: Option<&str>,
) -> (String, String) {
    let mut body = http_cloud::server(name, flavor);
    if let Some(host) = host {
        body["server"]["availability_zone"] = json!(format!("nova:{host}"));
    }
    let (status, body) = cloud
        .compute(token, Method::POST, "/servers", Some(body), "2.96")
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    let host = host_of(&wait_status(cloud, &id, "ACTIVE").await);
    (id, host)
}

/// Waits until the newest migration of `id` is `wanted`.
async fn wait_migration(cloud: &Cloud, id: &str, wanted: &str) -> Vec<[String; 4]> {
    let mut rows = Vec::new();
    for _ in 0..400 {
        rows = migrations(cloud, id).await;
        if rows.first().is_some_and(|row| row[1] == wanted) {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the migration of {id} never became {wanted}: {rows:?}");
}

/// vCPUs claimed on `host`.
async fn used_on(cloud: &Cloud, host: &str) -> i64 {
    vcpus_used(cloud)
        .await
        .into_iter()
        .find(|(name, _)| name == host)
        .map_or(-1, |(_, used)| used)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn evacuation_rebuilds_a_server_of_a_down_host_elsewhere() {
    evacuation(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn evacuation_on_postgres() {
    if let Some(url) = novum_db::testing::postgres_url().await {
        evacuation(Some(url)).await;
    }
}

async fn evacuation(database_url: Option<String>) {
    let cloud = cloud(3, false, database_url).await;
    let small = create_flavor(&cloud, "small", 1, 512).await;
    let (_, _, member) = cloud.tenant("evacuees", "evacuee", "member").await;
    let (runner, source) = boot(&cloud, &member, "runner", &small, None).await;
    let admin = cloud.admin.clone();
    let (sleeper, _) = boot(&cloud, &admin, "sleeper", &small, Some(&source)).await;
    let (late, _) = boot(&cloud, &admin, "late", &small, Some(&source)).await;
    let (status, body) = act(&cloud, &admin, &sleeper, json!({"os-stop": null})).await;
    assert_eq!(status, 202, "{body}");
    wait_status(&cloud, &sleeper, "SHUTOFF").await;
    let others: Vec<String> = vcpus_used(&cloud)
        .await
        .into_iter()
        .map(|(host, _)| host)
        .filter(|host| *host != source)
        .collect();
    assert_eq!(others.len(), 2, "{others:?}");

    // Admin only, by Nova's default policy.
    let (status, body) = act(&cloud, &member, &runner, json!({"evacuate": {}})).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        message(&body, "forbidden").contains("os_compute_api:os-evacuate"),
        "{body}"
    );
    // Nova's schemas and checks, version by version.
    for (version, body, status, fault, text) in [
        (
            "2.1",
            json!({}),
            400,
            "badRequest",
            "'onSharedStorage' is a required property",
        ),
        (
            "2.1",
            json!({"onSharedStorage": true, "adminPass": "p"}),
            400,
            "badRequest",
            "admin password can't be changed on existing disk",
        ),
        (
            "2.14",
            json!({"onSharedStorage": false}),
            400,
            "badRequest",
            "'onSharedStorage' was unexpected",
        ),
        (
            "2.29",
            json!({"force": true}),
            400,
            "badRequest",
            "Can't force to a non-provided destination",
        ),
        (
            "2.68",
            json!({"host": others[0], "force": false}),
            400,
            "badRequest",
            "'force' was unexpected",
        ),
        (
            "2.29",
            json!({"host": "nowhere"}),
            404,
            "itemNotFound",
            "Compute host nowhere not found.",
        ),
        (
            "2.29",
            json!({"host": source}),
            400,
            "badRequest",
            "The target host can't be the same one.",
        ),
        (
            "2.14",
            json!({}),
            400,
            "badRequest",
            &format!("Compute service of {source} is still in use."),
        ),
    ] {
        let (got, reply) = act_at(&cloud, &runner, json!({"evacuate": body}), version).await;
        assert_eq!(got, status, "{version} {body}: {reply}");
        assert!(
            message(&reply, fault).contains(text),
            "{version} {body}: {reply}"
        );
    }
    assert!(migrations(&cloud, &runner).await.is_empty());
    // A host with servers cannot be deleted.
    let (status, body) = cloud
        .compute(
            &admin,
            Method::GET,
            &format!("/os-services?host={source}&binary=nova-compute"),
            None,
            "2.53",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let service = body["services"][0]["id"].as_str().expect("id").to_string();
    let (status, body) = cloud
        .compute(
            &admin,
            Method::DELETE,
            &format!("/os-services/{service}"),
            None,
            "2.53",
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        message(&body, "conflictingRequest"),
        "Unable to delete compute service that is hosting instances. Migrate or delete the instances first."
    );

    // Forced down (2.11): evacuable at once. Before 2.14 the answer has
    // the new password.
    update_service(&cloud, &source, json!({"forced_down": true})).await;
    assert_eq!(show(&cloud, &runner).await["host_status"], "DOWN");
    let (status, body) = act_at(
        &cloud,
        &runner,
        json!({"evacuate": {"onSharedStorage": false}}),
        "2.1",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["adminPass"].as_str().map(str::len), Some(12), "{body}");
    let moved = wait_status(&cloud, &runner, "ACTIVE").await;
    let destination = host_of(&moved);
    assert_ne!(destination, source, "{moved}");
    assert_eq!(moved["host_status"], "UP", "{moved}");
    assert_eq!(moved["OS-EXT-STS:power_state"], 1, "{moved}");
    assert_eq!(used_on(&cloud, &source).await, 2, "sleeper and late only");
    assert_eq!(
        migrations(&cloud, &runner).await,
        vec![["evacuation", "done", &source, &destination].map(str::to_string)]
    );
    let (status, body) = cloud
        .compute(
            &admin,
            Method::GET,
            &format!("/servers/{runner}/os-instance-actions"),
            None,
            "2.84",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["instanceActions"][0]["action"], "evacuate", "{body}");
    let events: Vec<String> = event_types(&cloud, &runner)
        .await
        .into_iter()
        .filter(|event| {
            event == "instance.evacuate"
                || event.starts_with("instance.rebuild")
                || event.starts_with("scheduler.")
        })
        .collect();
    assert_eq!(
        events[events.len() - 6..],
        [
            "instance.evacuate",
            "scheduler.select_destinations.start",
            "scheduler.select_destinations.end",
            "instance.rebuild_scheduled",
            "instance.rebuild.start",
            "instance.rebuild.end",
        ]
    );

    // A named host the filters refuse (disabled): no valid host, the
    // server in ERROR on its source; forced (2.29) the same host is taken,
    // and the rebuilt server is ACTIVE (as Nova rebuilds an ERROR one).
    let named = others
        .iter()
        .find(|host| **host != destination)
        .cloned()
        .unwrap_or_else(|| others[0].clone());
    set_disabled(&cloud, &named, true).await;
    let (status, body) = act_at(
        &cloud,
        &sleeper,
        json!({"evacuate": {"host": named}}),
        "2.29",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.is_null(), "{body}");
    wait_migration(&cloud, &sleeper, "error").await;
    let failed = show(&cloud, &sleeper).await;
    assert_eq!(failed["status"], "ERROR", "{failed}");
    assert_eq!(host_of(&failed), source, "{failed}");
    assert!(
        failed["fault"]["message"]
            .as_str()
            .is_some_and(|text| text.contains("No valid host was found")),
        "{failed}"
    );
    assert_eq!(used_on(&cloud, &named).await, 0);
    let (status, body) = act_at(
        &cloud,
        &sleeper,
        json!({"evacuate": {"host": named, "force": true}}),
        "2.29",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let forced = wait_status(&cloud, &sleeper, "ACTIVE").await;
    assert_eq!(host_of(&forced), named, "{forced}");
    assert_eq!(
        wait_migration(&cloud, &sleeper, "done").await,
        vec![
            ["evacuation", "done", &source, &named].map(str::to_string),
            ["evacuation", "error", &source, &named].map(str::to_string),
        ]
    );
    set_disabled(&cloud, &named, false).await;

    // From 2.95 an evacuated server ends stopped.
    let (status, body) = act_at(&cloud, &late, json!({"evacuate": {}}), "2.95").await;
    assert_eq!(status, 200, "{body}");
    let stopped = wait_status(&cloud, &late, "SHUTOFF").await;
    assert_ne!(host_of(&stopped), source, "{stopped}");
    assert_eq!(
        used_on(&cloud, &source).await,
        0,
        "nothing claimed on the source"
    );
    cloud.stop().await;
}
