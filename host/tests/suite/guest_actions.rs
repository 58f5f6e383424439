//! What reaches into a running guest, over real HTTP on an embedded compute
//! host (libvirt's test driver): `changePassword` (the QEMU guest agent
//! image property, Nova's refusals and state guard), `trigger_crash_dump`
//! (2.17, an NMI: notifications, instance action, guards),
//! `GET /servers/{id}/diagnostics` (admin; the libvirt keys before 2.48,
//! the standardized document from 2.48; 409 when not running or on no
//! host) and `os-server-password` (what the guest posted to the metadata
//! service, read and cleared).

use reqwest::Method;
use serde_json::{Value, json};

use crate::http_cloud::Cloud;
use crate::soft_delete::{
    action, action_names, cloud, flavor, instance_actions, server, server_from, show, user_in,
    wait_event, wait_status,
};

/// An image whose guest runs the QEMU guest agent.
const AGENT_IMAGE: &str = "8d0c6a55-4a6e-4b8f-9c2b-3f1e0a7d9c11";
const METADATA_SECRET: &str = "guest-actions-metadata-secret";

/// Creates and uploads [`AGENT_IMAGE`] (`hw_qemu_guest_agent=yes`).
async fn agent_image(cloud: &Cloud) {
    let (status, body) = cloud
        .call(
            &cloud.admin,
            Method::POST,
            "/image/v2/images",
            Some(json!({
                "id": AGENT_IMAGE, "name": "with-agent", "visibility": "public",
                "disk_format": "raw", "container_format": "bare",
                "hw_qemu_guest_agent": "yes",
            })),
            "2.1",
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let response = cloud
        .client
        .put(format!("{}/image/v2/images/{AGENT_IMAGE}/file", cloud.base))
        .header("x-auth-token", &cloud.admin)
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 1024])
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status().as_u16(), 204);
}

fn conflict(body: &Value) -> &str {
    body["conflictingRequest"]["message"]
        .as_str()
        .unwrap_or_default()
}

async fn stop(cloud: &Cloud, id: &str) {
    let (status, body) = action(cloud, &cloud.admin, id, json!({"os-stop": null}), "2.1").await;
    assert_eq!(status, 202, "{body}");
    wait_status(cloud, id, "SHUTOFF").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn change_password_needs_the_guest_agent_and_an_active_server_on_sqlite() {
    change_password_needs_the_guest_agent_and_an_active_server(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn change_password_needs_the_guest_agent_and_an_active_server_on_postgres() {
    if let Some(url) = novum_db::testing::postgres_url().await {
        change_password_needs_the_guest_agent_and_an_active_server(Some(url)).await;
    }
}

async fn change_password_needs_the_guest_agent_and_an_active_server(database_url: Option<String>) {
    let cloud = cloud(|config| config.database.url = database_url).await;
    agent_image(&cloud).await;
    let (project, _, member) = cloud.tenant("pw-project", "pw-member", "member").await;
    let reader = user_in(&cloud, &project, "pw-project", "pw-reader", "reader").await;
    let small = flavor(&cloud, "pw.small", 1).await;

    // No guest agent in the image: Nova's QemuGuestAgentNotEnabled.
    let plain = server(&cloud, &member, &small, "ACTIVE").await;
    let change = json!({"changePassword": {"adminPass": "n3w-secret"}});
    let (status, body) = action(&cloud, &member, &plain, change.clone(), "2.1").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(conflict(&body), "QEMU guest agent is not enabled");
    let shown = wait_status(&cloud, &plain, "ACTIVE").await;
    assert_eq!(shown["server"]["OS-EXT-STS:task_state"], Value::Null);
    assert_eq!(
        action_names(&cloud, &plain).await,
        ["create", "changePassword"]
    );
    let actions = instance_actions(&cloud, &plain).await;
    let request = actions[0]["request_id"].as_str().expect("request id");
    let (_, detail) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            &format!("/servers/{plain}/os-instance-actions/{request}"),
            None,
            "2.51",
        )
        .await;
    assert_eq!(
        detail["instanceAction"]["events"][0]["event"],
        "compute_set_admin_password"
    );
    assert_eq!(detail["instanceAction"]["events"][0]["result"], "Error");

    // With it: set through libvirt (the test driver accepts it).
    let with_agent = server_from(&cloud, &member, &small, AGENT_IMAGE, "ACTIVE").await;
    let (status, body) = action(&cloud, &member, &with_agent, change.clone(), "2.1").await;
    assert_eq!(status, 202, "{body}");
    // No password stays in the task rows.
    let db = novum_db::Db::connect(&cloud.database_url)
        .await
        .expect("database");
    let rows = sqlx::query("SELECT action FROM tasks WHERE instance_uuid = $1")
        .bind(&with_agent)
        .fetch_all(db.pool())
        .await
        .expect("tasks");
    assert!(!rows.is_empty());
    for row in rows {
        let action: String = sqlx::Row::try_get(&row, "action").expect("action");
        assert!(!action.contains("n3w-secret"), "{action}");
    }
    let shown = wait_status(&cloud, &with_agent, "ACTIVE").await;
    assert_eq!(shown["server"]["OS-EXT-STS:task_state"], Value::Null);
    assert_eq!(
        action_names(&cloud, &with_agent).await,
        ["create", "changePassword"]
    );

    // Bodies Nova's schema refuses.
    for bad in [
        json!({"changePassword": {}}),
        json!({"changePassword": {"adminPass": 7}}),
        json!({"changePassword": {"adminPass": "x", "other": 1}}),
        json!({"changePassword": "x"}),
    ] {
        let (status, body) = action(&cloud, &member, &with_agent, bad.clone(), "2.1").await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // A reader may not.
    let (status, body) = action(&cloud, &reader, &with_agent, change.clone(), "2.1").await;
    assert_eq!(status, 403, "{body}");

    // ACTIVE only.
    stop(&cloud, &with_agent).await;
    let (status, body) = action(&cloud, &member, &with_agent, change, "2.1").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        conflict(&body),
        format!("Cannot 'changePassword' instance {with_agent} while it is in vm_state stopped")
    );
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trigger_crash_dump_injects_an_nmi_from_2_17() {
    let cloud = cloud(|_| {}).await;
    let small = flavor(&cloud, "nmi.small", 1).await;
    let id = server(&cloud, &cloud.admin, &small, "ACTIVE").await;
    let dump = json!({"trigger_crash_dump": null});

    // Before 2.17 the action does not exist at this version: a bare 404.
    let (status, body) = action(&cloud, &cloud.admin, &id, dump.clone(), "2.16").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["itemNotFound"]["code"], 404, "{body}");
    // Its body must be null.
    let (status, body) = action(
        &cloud,
        &cloud.admin,
        &id,
        json!({"trigger_crash_dump": {}}),
        "2.17",
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = action(&cloud, &cloud.admin, &id, dump.clone(), "2.17").await;
    assert_eq!(status, 202, "{body}");
    let events = wait_event(&cloud, &id, "instance.trigger_crash_dump.end").await;
    assert!(
        events.contains(&"instance.trigger_crash_dump.start".to_string()),
        "{events:?}"
    );
    assert_eq!(
        action_names(&cloud, &id).await,
        ["create", "trigger_crash_dump"]
    );
    // The guest keeps running; no state changed.
    let (_, shown) = show(&cloud, &cloud.admin, &id).await;
    assert_eq!(shown["server"]["status"], "ACTIVE", "{shown}");
    assert_eq!(shown["server"]["OS-EXT-STS:power_state"], 1, "{shown}");

    // Nova's guard: not from SHUTOFF.
    stop(&cloud, &id).await;
    let (status, body) = action(&cloud, &cloud.admin, &id, dump.clone(), "2.17").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        conflict(&body),
        format!("Cannot 'trigger_crash_dump' instance {id} while it is in vm_state stopped")
    );

    // ERROR is allowed, but a server on no host is not ready.
    let huge = flavor(&cloud, "nmi.huge", 16).await;
    let nowhere = server(&cloud, &cloud.admin, &huge, "ERROR").await;
    let (status, body) = action(&cloud, &cloud.admin, &nowhere, dump, "2.17").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(conflict(&body), format!("Instance {nowhere} is not ready"));
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn diagnostics_for_admins_in_both_formats() {
    let cloud = cloud(|_| {}).await;
    let (_, _, member) = cloud.tenant("dg-project", "dg-member", "member").await;
    let small = flavor(&cloud, "dg.small", 2).await;
    let id = server(&cloud, &member, &small, "ACTIVE").await;
    let path = format!("/servers/{id}/diagnostics");

    let (status, body) = cloud
        .compute(&member, Method::GET, &path, None, "2.48")
        .await;
    assert_eq!(status, 403, "{body}");

    // Before 2.48: the libvirt driver's keys.
    let (status, body) = cloud
        .compute(&cloud.admin, Method::GET, &path, None, "2.47")
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["cpu0_time"].is_u64(), "{body}");
    assert!(body["cpu1_time"].is_u64(), "{body}");
    assert_eq!(body["memory"], 64 * 1024, "{body}");
    assert!(body["vda_read"].is_i64(), "{body}");
    assert!(body["vda_write_req"].is_i64(), "{body}");
    assert!(body.get("state").is_none(), "{body}");

    // 2.48: the standardized document.
    let (status, body) = cloud
        .compute(&cloud.admin, Method::GET, &path, None, "2.48")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "running", "{body}");
    assert_eq!(body["driver"], "libvirt");
    assert_eq!(body["hypervisor"], "test");
    assert_eq!(body["hypervisor_os"], "linux");
    assert_eq!(body["config_drive"], false);
    assert!(body["uptime"].as_i64().is_some_and(|up| up >= 0), "{body}");
    assert_eq!(body["num_cpus"], 2);
    assert_eq!(body["cpu_details"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["cpu_details"][1]["id"], 1);
    assert_eq!(body["cpu_details"][0]["utilisation"], Value::Null);
    assert_eq!(body["memory_details"]["maximum"], 64, "{body}");
    assert_eq!(body["num_nics"], 0);
    assert_eq!(body["nic_details"], json!([]));
    assert_eq!(
        body["num_disks"].as_u64(),
        body["disk_details"]
            .as_array()
            .map(|disks| disks.len() as u64)
    );
    for key in [
        "read_bytes",
        "read_requests",
        "write_bytes",
        "write_requests",
        "errors_count",
    ] {
        assert!(body["disk_details"][0][key].is_i64(), "{key}: {body}");
    }

    // Not running: Nova's InstanceInvalidState on the power state.
    stop(&cloud, &id).await;
    let (status, body) = cloud
        .compute(&cloud.admin, Method::GET, &path, None, "2.48")
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        conflict(&body),
        format!("Cannot 'get_diagnostics' instance {id} while it is in power state shutdown")
    );

    // On no host: not ready.
    let huge = flavor(&cloud, "dg.huge", 16).await;
    let nowhere = server(&cloud, &cloud.admin, &huge, "ERROR").await;
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            &format!("/servers/{nowhere}/diagnostics"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(conflict(&body), format!("Instance {nowhere} is not ready"));
    cloud.stop().await;
}

/// What the metadata service answers `instance` of `project` posting (or,
/// with `None`, reading) its password.
async fn metadata_password(
    cloud: &Cloud,
    instance: &str,
    project: &str,
    post: Option<&str>,
) -> (u16, String) {
    let url = format!("{}/metadata/openstack/latest/password", cloud.base);
    let request = match post {
        Some(password) => cloud.client.post(url).body(password.to_string()),
        None => cloud.client.get(url),
    };
    let response = request
        .header("x-instance-id", instance)
        .header("x-tenant-id", project)
        .header(
            "x-instance-id-signature",
            novum_wire::metadata_signature(METADATA_SECRET, instance),
        )
        .send()
        .await
        .expect("metadata request");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_password_is_what_the_guest_posted_to_the_metadata_service() {
    let cloud = cloud(|config| {
        config.metadata.shared_secret = Some(METADATA_SECRET.to_string());
    })
    .await;
    let (project, _, member) = cloud.tenant("sp-project", "sp-member", "member").await;
    let reader = user_in(&cloud, &project, "sp-project", "sp-reader", "reader").await;
    let (_, _, stranger) = cloud.tenant("sp-other", "sp-stranger", "member").await;
    let small = flavor(&cloud, "sp.small", 1).await;
    let id = server(&cloud, &member, &small, "ACTIVE").await;
    let path = format!("/servers/{id}/os-server-password");

    let (status, body) = cloud
        .compute(&member, Method::GET, &path, None, "2.1")
        .await;
    assert_eq!((status, body), (200, json!({"password": ""})));

    let (status, text) = metadata_password(&cloud, &id, &project, Some("ZW5jcnlwdGVk")).await;
    assert_eq!(status, 200, "{text}");
    for token in [&member, &reader, &cloud.admin] {
        let (status, body) = cloud.compute(token, Method::GET, &path, None, "2.1").await;
        assert_eq!((status, body), (200, json!({"password": "ZW5jcnlwdGVk"})));
    }
    let (status, body) = cloud
        .compute(&stranger, Method::GET, &path, None, "2.1")
        .await;
    assert_eq!(status, 404, "{body}");
    // A second post is refused until the password is cleared.
    let (status, _) = metadata_password(&cloud, &id, &project, Some("c2Vjb25k")).await;
    assert_eq!(status, 409);

    let (status, body) = cloud
        .compute(&reader, Method::DELETE, &path, None, "2.1")
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = cloud
        .compute(&member, Method::DELETE, &path, None, "2.1")
        .await;
    assert_eq!(status, 204);
    let (status, body) = cloud
        .compute(&member, Method::GET, &path, None, "2.1")
        .await;
    assert_eq!((status, body), (200, json!({"password": ""})));
    let (status, text) = metadata_password(&cloud, &id, &project, None).await;
    assert_eq!((status, text.as_str()), (200, ""));
    // The guest may post again.
    let (status, _) = metadata_password(&cloud, &id, &project, Some("c2Vjb25k")).await;
    assert_eq!(status, 200);
    let (status, body) = cloud
        .compute(&member, Method::GET, &path, None, "2.1")
        .await;
    assert_eq!((status, body), (200, json!({"password": "c2Vjb25k"})));
    cloud.stop().await;
}
