//! Restarts: recovery racing with agents that finish their requeued tasks
//! (SQLite and PostgreSQL), and the power-state sync of a server whose
//! domain vanished behind novum's back (a real agent on libvirt's test
//! driver), whose failed actions show their error in the instance actions.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use novum_agent::driver::{LibvirtDriver, LibvirtOptions, TestNode, VirtDriver};
use novum_agent::{AgentConfig, run_agent_with_driver};
use novum_compute::conductor::Recovery;
use novum_db::Db;
use novum_wire::{
    CpuInfo, Inventory, PowerState, RegisterRequest, RegisterResponse, SupportedInstance, TaskList,
    TaskOutcome, TaskResult,
};
use serde_json::{Value, json};
use sqlx::Row;

use crate::api_common::{self, Backend, TestApp};
use crate::http_cloud::{Cloud, ENROLLMENT_TOKEN};

/// The enrollment token of the in-process controllers.
const ENROLL: &str = "enroll-restart";
/// How long a test waits for something to happen.
const WAIT: Duration = Duration::from_secs(30);

/// The app over `backend`: embedded agents off, the native pipeline.
async fn controller(backend: &Backend) -> TestApp {
    let mut config = api_common::config(&backend.dir.0);
    config.agent.embedded = false;
    config.agent.enrollment_token = Some(ENROLL.to_string());
    config.scheduler.backend = novum_plugin_host::Backend::Native;
    TestApp::new(backend, config).await
}

fn inventory(host: &str) -> Inventory {
    Inventory {
        uptime: None,
        vcpus: 4,
        memory_mb: 8192,
        disk_gb: 100,
        cpu_info: CpuInfo {
            arch: "x86_64".into(),
            ..CpuInfo::default()
        },
        hypervisor_type: "TEST".into(),
        hypervisor_version: 2_000_000,
        hypervisor_hostname: host.to_string(),
        host_ip: Some("127.0.0.1".into()),
        supported_instances: vec![SupportedInstance {
            arch: "x86_64".into(),
            hv_type: "test".into(),
            vm_mode: "hvm".into(),
        }],
    }
}

/// An agent's side of the RPC, driven by the test over the real router.
struct Rpc<'a> {
    app: &'a TestApp,
    host: &'static str,
    token: String,
}

impl<'a> Rpc<'a> {
    async fn register(app: &'a TestApp, host: &'static str) -> Self {
        let request = RegisterRequest {
            host: host.to_string(),
            inventory: inventory(host),
            agent_version: "test".into(),
        };
        let reply = app
            .send(
                Method::POST,
                "/rpc/v1/agents/register",
                &[
                    ("authorization", &format!("Bearer {ENROLL}")),
                    ("content-type", "application/json"),
                ],
                serde_json::to_vec(&request).expect("json"),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        let response: RegisterResponse = serde_json::from_value(reply.json).expect("registered");
        Self {
            app,
            host,
            token: response.agent_token,
        }
    }

    /// Leases what is offered, waiting for something to arrive.
    async fn next_tasks(&self) -> TaskList {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let reply = self
                .app
                .send(
                    Method::GET,
                    &format!("/rpc/v1/agents/{}/tasks?wait=0", self.host),
                    &[("authorization", &format!("Bearer {}", self.token))],
                    Vec::new(),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
            let tasks: TaskList = serde_json::from_value(reply.json).expect("tasks");
            if !tasks.tasks.is_empty() {
                return tasks;
            }
            assert!(tokio::time::Instant::now() < deadline, "no task arrived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn report(&self, task: uuid::Uuid, outcome: TaskOutcome) {
        let reply = self
            .app
            .send(
                Method::POST,
                &format!("/rpc/v1/agents/{}/tasks/{task}/result", self.host),
                &[
                    ("authorization", &format!("Bearer {}", self.token)),
                    ("content-type", "application/json"),
                ],
                serde_json::to_vec(&TaskResult::of(outcome)).expect("json"),
            )
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.json);
    }
}

/// A compute API call at microversion 2.84.
async fn compute(
    app: &TestApp,
    method: Method,
    path: &str,
    admin: &str,
    body: Value,
) -> api_common::Reply {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).expect("json")
    };
    app.send(
        method,
        &format!("/compute/v2.1{path}"),
        &[
            ("x-auth-token", admin),
            ("content-type", "application/json"),
            ("openstack-api-version", "compute 2.84"),
        ],
        bytes,
    )
    .await
}

async fn create(app: &TestApp, admin: &str, image: &str, name: &str) -> String {
    let reply = compute(
        app,
        Method::POST,
        "/servers",
        admin,
        json!({"server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
    reply.json["server"]["id"]
        .as_str()
        .expect("server id")
        .to_string()
}

async fn show(app: &TestApp, admin: &str, id: &str) -> Value {
    let reply = compute(
        app,
        Method::GET,
        &format!("/servers/{id}"),
        admin,
        Value::Null,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    reply.json["server"].clone()
}

/// (vcpus held by the instance's claim or 0, the node's vcpus_used and running_vms).
async fn claim_of(db: &Db, uuid: &str) -> (i64, i64, i64) {
    let held: i64 = sqlx::query("SELECT vcpus FROM allocations WHERE instance_uuid = $1")
        .bind(uuid)
        .fetch_optional(db.pool())
        .await
        .expect("allocations")
        .map_or(0, |row| row.try_get("vcpus").expect("vcpus"));
    let node = sqlx::query("SELECT vcpus_used, running_vms FROM compute_nodes")
        .fetch_one(db.pool())
        .await
        .expect("node");
    (
        held,
        node.try_get("vcpus_used").expect("used"),
        node.try_get("running_vms").expect("running"),
    )
}

/// A build whose spawn finishes between the restarted conductor's listing of
/// the operations in flight and its handling of that one stays ACTIVE with
/// its claim; an operation whose task really vanished is failed, and its
/// instance keeps its claim (its domain may run) until it is deleted.
async fn recovery_racing_with_a_finishing_build(backend: Backend) {
    let app = controller(&backend).await;
    let admin = app.admin_token().await;
    let image = app.public_image(&admin).await;
    let agent = Rpc::register(&app, "cmp1").await;
    let finished = create(&app, &admin, &image, "finished").await;
    let spawn = agent.next_tasks().await.tasks[0].id;
    let vanished = create(&app, &admin, &image, "vanished").await;
    let lost = agent.next_tasks().await.tasks[0].id;
    sqlx::query("DELETE FROM tasks WHERE id = $1")
        .bind(lost.to_string())
        .execute(backend.db.pool())
        .await
        .expect("lose a task");

    // The restarted conductor lists what is in flight...
    let conductor = Arc::clone(&app.state.conductor);
    let listed = conductor.in_flight_operations().await.expect("list");
    assert_eq!(
        listed.len(),
        2,
        "[{}] both builds are in flight",
        backend.name
    );
    // ... the agent, back first, finishes its spawn ...
    agent
        .report(
            spawn,
            TaskOutcome::Succeeded {
                power_state: PowerState::Running,
            },
        )
        .await;
    // ... and only then does recovery reach the operations.
    let mut outcomes = Vec::new();
    for id in &listed {
        outcomes.push(conductor.recover_operation(id).await.expect("recover"));
    }
    assert_eq!(
        outcomes,
        vec![Recovery::AlreadyOver, Recovery::Failed],
        "[{}] the finished build is left alone, the one without a task fails",
        backend.name
    );

    let server = show(&app, &admin, &finished).await;
    assert_eq!(server["status"], "ACTIVE", "[{}] {server}", backend.name);
    assert!(server.get("fault").is_none(), "[{}] {server}", backend.name);
    let server = show(&app, &admin, &vanished).await;
    assert_eq!(server["status"], "ERROR", "[{}] {server}", backend.name);
    assert!(
        server["fault"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("restart")),
        "[{}] {server}",
        backend.name
    );
    // Both hold their 1-vCPU claim: the host counts two instances.
    assert_eq!(
        claim_of(&backend.db, &finished).await,
        (1, 2, 2),
        "[{}] the finished build keeps its claim",
        backend.name
    );
    assert_eq!(
        claim_of(&backend.db, &vanished).await.0,
        1,
        "[{}] the failed build keeps its claim until deleted",
        backend.name
    );
    let reply = compute(
        &app,
        Method::DELETE,
        &format!("/servers/{vanished}"),
        &admin,
        Value::Null,
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.json);
    let destroy = agent.next_tasks().await.tasks[0].id;
    agent
        .report(
            destroy,
            TaskOutcome::Succeeded {
                power_state: PowerState::NoState,
            },
        )
        .await;
    assert_eq!(
        claim_of(&backend.db, &vanished).await,
        (0, 1, 1),
        "[{}] the delete releases the claim",
        backend.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_leaves_a_build_finished_meanwhile_active_with_its_claim_sqlite() {
    let backend = api_common::backends().await.remove(0);
    recovery_racing_with_a_finishing_build(backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_leaves_a_build_finished_meanwhile_active_with_its_claim_postgres() {
    let Some(backend) = api_common::backends()
        .await
        .into_iter()
        .find(|backend| backend.name == "postgres")
    else {
        println!("skipping: no PostgreSQL");
        return;
    };
    recovery_racing_with_a_finishing_build(backend).await;
}

/// Polls `check` until it answers `Some`, or fails after [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Event types of the outbox about `uuid`, in order.
async fn events_of(db: &Db, uuid: &str) -> Vec<String> {
    sqlx::query("SELECT event_type FROM notification_outbox WHERE instance_uuid = $1 ORDER BY seq")
        .bind(uuid)
        .fetch_all(db.pool())
        .await
        .expect("outbox")
        .iter()
        .map(|row| row.try_get("event_type").expect("event type"))
        .collect()
}

/// A server whose domain is removed behind novum's back (as `virsh destroy;
/// virsh undefine` would) goes to ERROR with a fault, notified as Nova's
/// power-state sync does; an action on it then fails, and the failure is in
/// its instance action's events (`result: Error`, `traceback` for admins,
/// `details` from 2.84).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_domain_is_synced_to_error_and_a_failed_action_shows_its_error() {
    let cloud = Cloud::start(|config| {
        config.agent.embedded = false;
    })
    .await;
    let db = Db::connect(&cloud.database_url).await.expect("db");
    let node = TestNode::create(4, 8192).expect("node file");
    let uri = node.uri();
    let driver = Arc::new(
        tokio::task::spawn_blocking(move || {
            LibvirtDriver::open(
                &uri,
                LibvirtOptions {
                    hypervisor_hostname: Some("sync1".into()),
                    disk_gb: Some(100),
                    ..LibvirtOptions::default()
                },
            )
        })
        .await
        .expect("join")
        .expect("driver"),
    );
    let config = AgentConfig {
        libvirt_uri: node.uri(),
        enrollment_token: Some(ENROLLMENT_TOKEN.to_string()),
        heartbeat_interval: Duration::from_millis(300),
        poll_wait: Duration::from_secs(2),
        reconcile_interval: Duration::from_millis(200),
        host_ip: Some("127.0.0.1".to_string()),
        ..AgentConfig::new(cloud.base.clone(), "sync1")
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent_driver: Arc<dyn VirtDriver> = driver.clone();
    let agent = tokio::spawn(run_agent_with_driver(config, agent_driver, async {
        let _ = stopped.await;
    }));
    cloud.wait_for_hosts(1).await;

    let id = cloud.create_server("doomed", "1", "2.84").await;
    let show = |version: &'static str| {
        let cloud = &cloud;
        let id = id.clone();
        async move {
            let (status, body) = cloud
                .compute(
                    &cloud.admin,
                    reqwest::Method::GET,
                    &format!("/servers/{id}"),
                    None,
                    version,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            body["server"].clone()
        }
    };
    eventually("the server to go ACTIVE", || async {
        let server = show("2.84").await;
        (server["status"] == "ACTIVE").then_some(())
    })
    .await;

    // Behind novum's back: the domain goes from the hypervisor.
    let uuid: uuid::Uuid = id.parse().expect("uuid");
    let gone = Arc::clone(&driver);
    tokio::task::spawn_blocking(move || gone.destroy(uuid))
        .await
        .expect("join")
        .expect("destroy behind novum's back");
    let server = eventually(
        "the power-state sync to put the server in ERROR",
        || async {
            let server = show("2.84").await;
            (server["status"] == "ERROR").then_some(server)
        },
    )
    .await;
    assert_eq!(server["OS-EXT-STS:power_state"], 0, "{server}");
    let message = server["fault"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("no domain on host sync1"), "{server}");
    let events = events_of(&db, &id).await;
    let tail: Vec<&str> = events
        .iter()
        .rev()
        .take(4)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "instance.power_off.start",
            "instance.update",
            "instance.power_off.end",
            "compute.exception"
        ],
        "{events:?}"
    );

    // Stop is allowed from ERROR; with no domain it fails, and says so.
    let response = cloud
        .client
        .post(format!("{}/compute/v2.1/servers/{id}/action", cloud.base))
        .header("x-auth-token", &cloud.admin)
        .header("openstack-api-version", "compute 2.84")
        .json(&json!({"os-stop": null}))
        .send()
        .await
        .expect("stop");
    assert_eq!(response.status().as_u16(), 202);
    let request_id = response
        .headers()
        .get("x-openstack-request-id")
        .and_then(|value| value.to_str().ok())
        .expect("request id")
        .to_string();
    let path = format!("/servers/{id}/os-instance-actions/{request_id}");
    let event = eventually("the failed stop to be recorded", || async {
        let (status, body) = cloud
            .compute(&cloud.admin, reqwest::Method::GET, &path, None, "2.84")
            .await;
        assert_eq!(status, 200, "{body}");
        let event = body["instanceAction"]["events"][0].clone();
        (!event["finish_time"].is_null()).then_some(event)
    })
    .await;
    assert_eq!(event["event"], "compute_stop_instance", "{event}");
    assert_eq!(event["result"], "Error", "{event}");
    for field in ["traceback", "details"] {
        assert!(
            event[field]
                .as_str()
                .is_some_and(|text| text.contains("has no domain on this host")),
            "{field}: {event}"
        );
    }
    // Before 2.84 an event has no `details`.
    let (status, body) = cloud
        .compute(&cloud.admin, reqwest::Method::GET, &path, None, "2.83")
        .await;
    assert_eq!(status, 200, "{body}");
    let event = &body["instanceAction"]["events"][0];
    assert!(event.get("details").is_none(), "{event}");
    assert!(event["traceback"].is_string(), "{event}");
    let server = show("2.84").await;
    assert_eq!(server["status"], "ERROR", "{server}");

    let _ = stop.send(());
    let _ = tokio::time::timeout(WAIT, agent).await;
    cloud.stop().await;
}
