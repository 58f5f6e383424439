//! Restarts: recovery racing with agents that finish their requeued tasks
//! (SQLite and PostgreSQL).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use novum::conductor::Recovery;
use novum::db::Db;
use novum_wire::{
    CpuInfo, Inventory, PowerState, RegisterRequest, RegisterResponse, SupportedInstance, TaskList,
    TaskOutcome, TaskResult,
};
use serde_json::{Value, json};
use sqlx::Row;

use crate::api_common::{self, Backend, TestApp};

/// The enrollment token of the in-process controllers.
const ENROLL: &str = "enroll-restart";
/// How long a test waits for a task.
const WAIT: Duration = Duration::from_secs(30);

/// The app over `backend`: embedded agents off, the native pipeline.
async fn controller(backend: &Backend) -> TestApp {
    let mut config = api_common::config(&backend.dir.0);
    config.agent.embedded = false;
    config.agent.enrollment_token = Some(ENROLL.to_string());
    config.scheduler.backend = novum::plugins::Backend::Native;
    TestApp::new(backend, config).await
}

fn inventory(host: &str) -> Inventory {
    Inventory {
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
                serde_json::to_vec(&TaskResult { outcome }).expect("json"),
            )
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.json);
    }
}

/// Uploads the public boot image; returns its id.
async fn image(app: &TestApp, admin: &str) -> String {
    let reply = app
        .call(
            Method::POST,
            "/image/v2/images",
            Some(admin),
            json!({"name": "cirros", "visibility": "public", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    let id = reply.json["id"].as_str().expect("image id").to_string();
    let reply = app
        .send(
            Method::PUT,
            &format!("/image/v2/images/{id}/file"),
            &[
                ("x-auth-token", admin),
                ("content-type", "application/octet-stream"),
            ],
            vec![0_u8; 1024],
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    id
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
    let image = image(&app, &admin).await;
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
