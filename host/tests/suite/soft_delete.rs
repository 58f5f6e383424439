//! Soft delete over real HTTP on an embedded compute host (libvirt's test
//! driver): with `[compute] reclaim_instance_interval` set, `DELETE`
//! powers a server off into SOFT_DELETED (instance action `delete`,
//! `instance.soft_delete.*`), its quota still counted; `restore` brings it
//! back (`instance.restore.*`), `forceDelete` deletes it, the periodic
//! reclaim deletes it once the interval passed; a server on no host is
//! deleted at once; the `deleted` list filter. Shared helpers of the
//! guest-action tests live here too.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::http_cloud::{self, Cloud};

pub const WAIT: Duration = Duration::from_secs(30);

/// A cloud with one embedded host of 8 vCPUs, configured further by
/// `configure`.
pub async fn cloud(configure: impl FnOnce(&mut novum_config::Config)) -> Cloud {
    let cloud = Cloud::start(|config| {
        config.agent.embedded = true;
        config.agent.embedded_hosts = 1;
        config.agent.embedded_vcpus = 8;
        config.compute.cpu_allocation_ratio = 1.0;
        configure(config);
    })
    .await;
    cloud.wait_for_hosts(1).await;
    cloud
}

/// A token of a new user `user` with `role` in the existing project
/// `project_id` (named `project`).
pub async fn user_in(
    cloud: &Cloud,
    project_id: &str,
    project: &str,
    user: &str,
    role: &str,
) -> String {
    let password = format!("{user}-password");
    let (status, body) = cloud
        .call(
            &cloud.admin,
            Method::POST,
            "/identity/v3/users",
            Some(json!({"user": {"name": user, "password": password}})),
            "2.1",
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let user_id = body["user"]["id"].as_str().expect("user id").to_string();
    let (_, roles) = cloud
        .call(
            &cloud.admin,
            Method::GET,
            &format!("/identity/v3/roles?name={role}"),
            None,
            "2.1",
        )
        .await;
    let role_id = roles["roles"][0]["id"].as_str().expect("role").to_string();
    let (status, _) = cloud
        .call(
            &cloud.admin,
            Method::PUT,
            &format!("/identity/v3/projects/{project_id}/users/{user_id}/roles/{role_id}"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 204);
    cloud.token(user, &password, project).await
}

/// A flavor of `vcpus` vCPUs; its id.
pub async fn flavor(cloud: &Cloud, name: &str, vcpus: u32) -> String {
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::POST,
            "/flavors",
            Some(json!({"flavor": {"name": name, "vcpus": vcpus, "ram": 64, "disk": 1}})),
            "2.61",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["flavor"]["id"]
        .as_str()
        .expect("flavor id")
        .to_string()
}

/// The server `id` as `token` sees it (status and body).
pub async fn show(cloud: &Cloud, token: &str, id: &str) -> (u16, Value) {
    cloud
        .compute(token, Method::GET, &format!("/servers/{id}"), None, "2.1")
        .await
}

/// Waits until server `id` shows `wanted` (`"GONE"`: until it is 404).
pub async fn wait_status(cloud: &Cloud, id: &str, wanted: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = show(cloud, &cloud.admin, id).await;
        if (wanted == "GONE" && status == 404) || body["server"]["status"] == wanted {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server never {wanted}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates a server of `flavor` from `image` as `token` and waits until it
/// shows `wanted`; its id.
pub async fn server_from(
    cloud: &Cloud,
    token: &str,
    flavor: &str,
    image: &str,
    wanted: &str,
) -> String {
    let mut body = http_cloud::server("guest", flavor);
    body["server"]["imageRef"] = json!(image);
    let (status, body) = cloud
        .compute(token, Method::POST, "/servers", Some(body), "2.37")
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    wait_status(cloud, &id, wanted).await;
    id
}

/// Creates a server of `flavor` (the cloud's image) as `token`.
pub async fn server(cloud: &Cloud, token: &str, flavor: &str, wanted: &str) -> String {
    server_from(cloud, token, flavor, http_cloud::IMAGE, wanted).await
}

/// `POST /servers/{id}/action` as `token` at `version`.
pub async fn action(
    cloud: &Cloud,
    token: &str,
    id: &str,
    body: Value,
    version: &str,
) -> (u16, Value) {
    cloud
        .compute(
            token,
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(body),
            version,
        )
        .await
}

/// The event types notified for `instance`, oldest first.
pub async fn event_types(cloud: &Cloud, instance: &str) -> Vec<String> {
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

/// Waits until `event` was notified for `instance`.
pub async fn wait_event(cloud: &Cloud, instance: &str, event: &str) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = event_types(cloud, instance).await;
        if events.iter().any(|seen| seen == event) {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{event} never notified: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The instance actions of `id` (newest first) as admin.
pub async fn instance_actions(cloud: &Cloud, id: &str) -> Vec<Value> {
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            &format!("/servers/{id}/os-instance-actions"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["instanceActions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The names of the instance actions of `id`, oldest first.
pub async fn action_names(cloud: &Cloud, id: &str) -> Vec<String> {
    let mut names: Vec<String> = instance_actions(cloud, id)
        .await
        .iter()
        .filter_map(|action| action["action"].as_str().map(str::to_string))
        .collect();
    names.reverse();
    names
}

/// The quota usage of `resource` in `project`.
async fn in_use(cloud: &Cloud, project: &str, resource: &str) -> i64 {
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            &format!("/os-quota-sets/{project}/detail"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["quota_set"][resource]["in_use"]
        .as_i64()
        .unwrap_or_else(|| panic!("{resource} in use: {body}"))
}

/// The ids of the servers `token` lists with `query`.
async fn listed(cloud: &Cloud, token: &str, query: &str) -> Vec<String> {
    let (status, body) = cloud
        .compute(token, Method::GET, &format!("/servers{query}"), None, "2.1")
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    body["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .filter_map(|server| server["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soft_delete_restore_and_force_delete_on_sqlite() {
    soft_delete_restore_and_force_delete(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soft_delete_restore_and_force_delete_on_postgres() {
    if let Some(url) = novum_db::testing::postgres_url().await {
        soft_delete_restore_and_force_delete(Some(url)).await;
    }
}

async fn soft_delete_restore_and_force_delete(database_url: Option<String>) {
    let cloud = cloud(|config| {
        config.database.url = database_url;
        // An hour: nothing is reclaimed during the test.
        config.compute.reclaim_instance_interval = 3600;
    })
    .await;
    let (project, _, member) = cloud.tenant("sd-project", "sd-member", "member").await;
    let (_, _, stranger) = cloud.tenant("sd-other", "sd-stranger", "member").await;
    let small = flavor(&cloud, "sd.small", 1).await;
    let id = server(&cloud, &member, &small, "ACTIVE").await;
    assert_eq!(in_use(&cloud, &project, "instances").await, 1);
    assert_eq!(in_use(&cloud, &project, "cores").await, 1);

    // Restore of a server that is not soft-deleted: Nova's guard.
    let (status, body) = action(&cloud, &member, &id, json!({"restore": null}), "2.1").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["conflictingRequest"]["message"],
        format!("Cannot 'restore' instance {id} while it is in vm_state active")
    );

    // DELETE soft-deletes: powered off, SOFT_DELETED, still counted.
    let (status, body) = cloud
        .compute(
            &member,
            Method::DELETE,
            &format!("/servers/{id}"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let shown = wait_status(&cloud, &id, "SOFT_DELETED").await;
    assert_eq!(
        shown["server"]["OS-EXT-STS:vm_state"], "soft-delete",
        "{shown}"
    );
    assert_eq!(shown["server"]["OS-EXT-STS:power_state"], 4, "{shown}");
    let events = wait_event(&cloud, &id, "instance.soft_delete.end").await;
    assert!(
        events.contains(&"instance.soft_delete.start".to_string()),
        "{events:?}"
    );
    assert!(
        !events.contains(&"instance.delete.start".to_string()),
        "{events:?}"
    );
    assert_eq!(action_names(&cloud, &id).await, ["create", "delete"]);
    assert_eq!(in_use(&cloud, &project, "instances").await, 1);
    assert_eq!(in_use(&cloud, &project, "cores").await, 1);

    // Listing as Nova: hidden by default, shown to an admin asking for
    // deleted servers, the owner's `deleted` ignored.
    assert!(!listed(&cloud, &member, "").await.contains(&id));
    assert!(!listed(&cloud, &member, "?deleted=true").await.contains(&id));
    assert!(
        listed(&cloud, &cloud.admin, "?all_tenants=1&deleted=true")
            .await
            .contains(&id)
    );
    assert!(
        listed(
            &cloud,
            &cloud.admin,
            "?all_tenants=1&deleted=true&status=SOFT_DELETED"
        )
        .await
        .contains(&id)
    );
    assert!(
        !listed(&cloud, &cloud.admin, "?all_tenants=1&deleted=false")
            .await
            .contains(&id)
    );
    // A status filter alone does not reach it (Nova's `deleted` default).
    assert!(
        !listed(&cloud, &cloud.admin, "?all_tenants=1&status=SOFT_DELETED")
            .await
            .contains(&id)
    );
    // `changes-since` lists every instance.
    assert!(
        listed(&cloud, &member, "?changes-since=2000-01-01T00:00:00Z")
            .await
            .contains(&id)
    );
    // Deleted servers are for admins.
    let (status, body) = cloud
        .compute(&member, Method::GET, "/servers?status=DELETED", None, "2.1")
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["forbidden"]["message"],
        "Only administrators may list deleted instances"
    );

    // Another project's user does not see it; the owner restores it.
    let (status, body) = action(&cloud, &stranger, &id, json!({"restore": null}), "2.1").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = action(&cloud, &member, &id, json!({"restore": null}), "2.1").await;
    assert_eq!(status, 202, "{body}");
    let shown = wait_status(&cloud, &id, "ACTIVE").await;
    assert_eq!(shown["server"]["OS-EXT-STS:power_state"], 1, "{shown}");
    let events = wait_event(&cloud, &id, "instance.restore.end").await;
    assert!(
        events.contains(&"instance.restore.start".to_string()),
        "{events:?}"
    );
    assert_eq!(
        action_names(&cloud, &id).await,
        ["create", "delete", "restore"]
    );
    assert!(listed(&cloud, &member, "").await.contains(&id));

    // Soft-deleted again, then force-deleted: gone, its quota freed.
    let (status, _) = cloud
        .compute(
            &member,
            Method::DELETE,
            &format!("/servers/{id}"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 204);
    wait_status(&cloud, &id, "SOFT_DELETED").await;
    let (status, body) = action(&cloud, &member, &id, json!({"forceDelete": null}), "2.1").await;
    assert_eq!(status, 202, "{body}");
    wait_status(&cloud, &id, "GONE").await;
    let events = wait_event(&cloud, &id, "instance.delete.end").await;
    assert!(
        events.contains(&"instance.delete.start".to_string()),
        "{events:?}"
    );
    assert_eq!(in_use(&cloud, &project, "instances").await, 0);
    assert_eq!(in_use(&cloud, &project, "cores").await, 0);

    // forceDelete of a live server deletes it too (Nova: any vm_state).
    let other = server(&cloud, &member, &small, "ACTIVE").await;
    let (status, body) = action(&cloud, &member, &other, json!({"forceDelete": null}), "2.1").await;
    assert_eq!(status, 202, "{body}");
    wait_status(&cloud, &other, "GONE").await;

    // A locked soft-deleted server refuses its owner's restore.
    let locked = server(&cloud, &member, &small, "ACTIVE").await;
    let (status, _) = cloud
        .compute(
            &member,
            Method::DELETE,
            &format!("/servers/{locked}"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 204);
    wait_status(&cloud, &locked, "SOFT_DELETED").await;
    let (status, body) = action(&cloud, &cloud.admin, &locked, json!({"lock": null}), "2.1").await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = action(&cloud, &member, &locked, json!({"restore": null}), "2.1").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["conflictingRequest"]["message"],
        format!("Instance {locked} is locked")
    );

    // One in ERROR is deleted outright: its domain may be gone.
    let failed = server(&cloud, &member, &small, "ACTIVE").await;
    let (status, body) = action(
        &cloud,
        &cloud.admin,
        &failed,
        json!({"os-resetState": {"state": "error"}}),
        "2.1",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, _) = cloud
        .compute(
            &member,
            Method::DELETE,
            &format!("/servers/{failed}"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 204);
    wait_status(&cloud, &failed, "GONE").await;

    // A server on no host is deleted at once, soft delete or not.
    let huge = flavor(&cloud, "sd.huge", 16).await;
    let nowhere = server(&cloud, &member, &huge, "ERROR").await;
    let (status, _) = cloud
        .compute(
            &member,
            Method::DELETE,
            &format!("/servers/{nowhere}"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = show(&cloud, &cloud.admin, &nowhere).await;
    assert_eq!(status, 404, "{body}");
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_periodic_reclaim_deletes_servers_soft_deleted_longer_than_the_interval_on_sqlite() {
    the_periodic_reclaim_deletes_servers_soft_deleted_longer_than_the_interval(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_periodic_reclaim_deletes_servers_soft_deleted_longer_than_the_interval_on_postgres() {
    if let Some(url) = novum_db::testing::postgres_url().await {
        the_periodic_reclaim_deletes_servers_soft_deleted_longer_than_the_interval(Some(url)).await;
    }
}

async fn the_periodic_reclaim_deletes_servers_soft_deleted_longer_than_the_interval(
    database_url: Option<String>,
) {
    let cloud = cloud(|config| {
        config.database.url = database_url;
        config.compute.reclaim_instance_interval = 2;
    })
    .await;
    let (project, _, member) = cloud.tenant("rc-project", "rc-member", "member").await;
    let small = flavor(&cloud, "rc.small", 2).await;
    let id = server(&cloud, &member, &small, "ACTIVE").await;
    let (status, _) = cloud
        .compute(
            &member,
            Method::DELETE,
            &format!("/servers/{id}"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 204);
    wait_status(&cloud, &id, "SOFT_DELETED").await;
    assert_eq!(in_use(&cloud, &project, "cores").await, 2);
    // Reclaimed by the background task within a few intervals.
    wait_status(&cloud, &id, "GONE").await;
    let events = wait_event(&cloud, &id, "instance.delete.end").await;
    let soft = events
        .iter()
        .position(|event| event == "instance.soft_delete.end")
        .expect("soft-deleted first");
    let hard = events
        .iter()
        .position(|event| event == "instance.delete.start")
        .expect("then deleted");
    assert!(soft < hard, "{events:?}");
    assert_eq!(in_use(&cloud, &project, "instances").await, 0);
    assert_eq!(in_use(&cloud, &project, "cores").await, 0);
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_reclaim_interval_a_delete_is_immediate() {
    let cloud = cloud(|_| {}).await;
    let small = flavor(&cloud, "now.small", 1).await;
    let id = server(&cloud, &cloud.admin, &small, "ACTIVE").await;
    let (status, _) = cloud
        .compute(
            &cloud.admin,
            Method::DELETE,
            &format!("/servers/{id}"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 204);
    wait_status(&cloud, &id, "GONE").await;
    let events = event_types(&cloud, &id).await;
    assert!(
        !events
            .iter()
            .any(|event| event.starts_with("instance.soft_delete")),
        "{events:?}"
    );
    // restore has nothing to restore.
    let live = server(&cloud, &cloud.admin, &small, "ACTIVE").await;
    let (status, body) = action(&cloud, &cloud.admin, &live, json!({"restore": {}}), "2.1").await;
    assert_eq!(status, 409, "{body}");
    cloud.stop().await;
}
