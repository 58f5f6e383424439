//! `host_status` (2.16) follows the compute service of the server's host, as
//! Nova's `get_instance_host_status`: `UP` (heartbeating, enabled),
//! `MAINTENANCE` (disabled), `DOWN` (forced down, which wins over disabled),
//! `UNKNOWN` (heartbeats stopped), and `""` for a server without a host.
//! Shown to admins only (Nova's default `show:host_status` policy), in show
//! and in list detail. Over real HTTP with a real compute agent (libvirt's
//! test driver) that the test stops, on SQLite and PostgreSQL.

use std::time::Duration;

use novum_agent::driver::TestNode;
use novum_agent::{AgentConfig, run_agent};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::http_cloud::{self, Cloud, ENROLLMENT_TOKEN};

/// The compute host of these tests.
const HOST: &str = "status-host";
/// Seconds without a heartbeat before the service counts as down: short,
/// so that a stopped agent is seen as gone within the test, long enough
/// that a loaded machine does not miss it while the agent runs.
const SERVICE_DOWN_TIME: u64 = 4;
/// How long to wait for a state to appear.
const WAIT: Duration = Duration::from_secs(30);

/// A controller without embedded agents on SQLite, or on a fresh PostgreSQL
/// database (`None`, reason printed, when none answers).
async fn controller(postgres: bool) -> Option<Cloud> {
    let database_url = if postgres {
        Some(novum_db::testing::postgres_url().await?)
    } else {
        None
    };
    Some(
        Cloud::start(|config| {
            config.database.url = database_url;
            config.agent.embedded = false;
            config.compute.service_down_time = SERVICE_DOWN_TIME;
        })
        .await,
    )
}

/// The real compute agent for [`HOST`], heartbeating every 300 ms; dropping
/// the sender stops it.
fn start_agent(
    cloud: &Cloud,
    node: &TestNode,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let config = AgentConfig {
        libvirt_uri: node.uri(),
        enrollment_token: Some(ENROLLMENT_TOKEN.to_string()),
        heartbeat_interval: Duration::from_millis(300),
        poll_wait: Duration::from_secs(2),
        reconcile_interval: Duration::from_millis(200),
        host_ip: Some("127.0.0.1".to_string()),
        ..AgentConfig::new(cloud.base.clone(), HOST)
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        run_agent(config, async {
            let _ = stopped.await;
        })
        .await
        .expect("agent ends cleanly");
    });
    (stop, handle)
}

async fn create_server(cloud: &Cloud, token: &str, name: &str) -> String {
    let (status, body) = cloud
        .compute(
            token,
            Method::POST,
            "/servers",
            Some(http_cloud::server(name, "1")),
            // `"networks": "none"` needs 2.37.
            "2.37",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    body["server"]["id"].as_str().expect("id").to_string()
}

async fn show(cloud: &Cloud, token: &str, id: &str, version: &str) -> Value {
    let (status, body) = cloud
        .compute(token, Method::GET, &format!("/servers/{id}"), None, version)
        .await;
    assert_eq!(status, 200, "{body}");
    body["server"].clone()
}

/// The `host_status` field of server `id` in the admin's show and in the
/// admin's list detail (all projects), at 2.16.
async fn host_status(cloud: &Cloud, id: &str) -> (Option<Value>, Option<Value>) {
    let shown = show(cloud, &cloud.admin, id, "2.16").await;
    let (status, listed) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            "/servers/detail?all_tenants=1",
            None,
            "2.16",
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    let listed = listed["servers"]
        .as_array()
        .and_then(|servers| servers.iter().find(|server| server["id"] == id))
        .unwrap_or_else(|| panic!("{id} is listed"))
        .clone();
    (
        shown.get("host_status").cloned(),
        listed.get("host_status").cloned(),
    )
}

/// Waits until server `id` shows `expected` in both show and list detail.
async fn wait_for_host_status(cloud: &Cloud, id: &str, expected: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = host_status(cloud, id).await;
        if seen == (Some(json!(expected)), Some(json!(expected))) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "host_status never became {expected:?}: (show, list) = {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_status(cloud: &Cloud, id: &str, expected: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let server = show(cloud, &cloud.admin, id, "2.16").await;
        if server["status"] == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server {id} never became {expected}: {server}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The uuid of [`HOST`]'s compute service.
async fn service_id(cloud: &Cloud) -> String {
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            "/os-services?binary=nova-compute",
            None,
            "2.53",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["services"]
        .as_array()
        .and_then(|services| services.iter().find(|service| service["host"] == HOST))
        .and_then(|service| service["id"].as_str())
        .expect("the agent's service")
        .to_string()
}

async fn update_service(cloud: &Cloud, service: &str, change: Value) {
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

async fn host_status_follows_the_compute_service(postgres: bool) {
    let Some(cloud) = controller(postgres).await else {
        return;
    };
    let (_, _, member) = cloud.tenant("status", "status-member", "member").await;

    // Before any host exists: the build finds no host and the server has
    // none, which Nova shows as "".
    let hostless = create_server(&cloud, &member, "hostless").await;
    wait_for_status(&cloud, &hostless, "ERROR").await;
    assert_eq!(
        host_status(&cloud, &hostless).await,
        (Some(json!("")), Some(json!("")))
    );

    let node = TestNode::create(4, 8192).expect("test node");
    let (stop_agent, agent) = start_agent(&cloud, &node);
    cloud.wait_for_hosts(1).await;
    let server = create_server(&cloud, &member, "placed").await;
    wait_for_status(&cloud, &server, "ACTIVE").await;
    wait_for_host_status(&cloud, &server, "UP").await;

    // Admins only, from 2.16.
    let as_member = show(&cloud, &member, &server, "2.16").await;
    assert!(as_member.get("host_status").is_none(), "{as_member}");
    let before = show(&cloud, &cloud.admin, &server, "2.15").await;
    assert!(before.get("host_status").is_none(), "{before}");

    let service = service_id(&cloud).await;
    update_service(&cloud, &service, json!({"status": "disabled"})).await;
    wait_for_host_status(&cloud, &server, "MAINTENANCE").await;

    // Forced down wins over disabled, as in Nova.
    update_service(&cloud, &service, json!({"forced_down": true})).await;
    wait_for_host_status(&cloud, &server, "DOWN").await;
    update_service(&cloud, &service, json!({"status": "enabled"})).await;
    wait_for_host_status(&cloud, &server, "DOWN").await;
    update_service(&cloud, &service, json!({"forced_down": false})).await;
    wait_for_host_status(&cloud, &server, "UP").await;

    // The agent stops: no more heartbeats, the host's state is unknown.
    let _ = stop_agent.send(());
    tokio::time::timeout(WAIT, agent)
        .await
        .expect("agent stops in time")
        .expect("agent task");
    wait_for_host_status(&cloud, &server, "UNKNOWN").await;
    assert_eq!(
        host_status(&cloud, &hostless).await,
        (Some(json!("")), Some(json!("")))
    );
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_status_follows_the_compute_service_sqlite() {
    host_status_follows_the_compute_service(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_status_follows_the_compute_service_postgres() {
    host_status_follows_the_compute_service(true).await;
}
