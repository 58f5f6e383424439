//! The agent RPC (`/rpc/v1`) with real agents: the controller served on a
//! real socket (embedded agents off), the real compute agent
//! (`novum_agent::run_agent`) on libvirt's test driver. Credentials: a
//! restarted agent reuses its stored one, a revoked one makes it register
//! again; bad credentials get 401, a bad host name 400, an unknown task 404.
//! Tasks queued before any agent exists run in order, each delivered once.

use std::path::Path;
use std::time::Duration;

use novum_agent::driver::{LibvirtDriver, LibvirtOptions, TestNode, VirtDriver};
use novum_agent::{AgentConfig, run_agent};
use novum_api::rpc::hash_token;
use novum_db::Db;
use novum_wire::{
    ErrorBody, FlavorSpec, ImageSpec, PowerState, RegisterRequest, RegisterResponse, SpawnSpec,
    TaskAction, TaskOutcome, TaskResult,
};
use sqlx::Row;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::http_cloud;
use http_cloud::{Cloud, ENROLLMENT_TOKEN};

const WAIT: Duration = Duration::from_secs(20);

/// Seconds without a heartbeat after which the test controller's hosts are
/// down (short, so that tests can wait for a host to go down).
const SERVICE_DOWN_TIME: u64 = 2;

async fn controller() -> (Cloud, Db) {
    controller_on(None).await
}

/// A controller on `database_url` (none: SQLite in its directory).
async fn controller_on(database_url: Option<String>) -> (Cloud, Db) {
    let cloud = Cloud::start(|config| {
        config.agent.embedded = false;
        config.agent.heartbeat_seconds = 1;
        config.compute.service_down_time = SERVICE_DOWN_TIME;
        config.database.url = database_url;
    })
    .await;
    let db = Db::connect(&cloud.database_url).await.expect("db");
    (cloud, db)
}

fn agent_config(cloud: &Cloud, host: &str, node: &TestNode) -> AgentConfig {
    AgentConfig {
        libvirt_uri: node.uri(),
        enrollment_token: Some(ENROLLMENT_TOKEN.to_string()),
        heartbeat_interval: Duration::from_millis(300),
        poll_wait: Duration::from_secs(2),
        reconcile_interval: Duration::from_millis(200),
        host_ip: Some("127.0.0.1".to_string()),
        ..AgentConfig::new(cloud.base.clone(), host)
    }
}

struct RunningAgent {
    stop: oneshot::Sender<()>,
    handle: JoinHandle<Result<(), novum_agent::AgentError>>,
}

fn start_agent(config: AgentConfig) -> RunningAgent {
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(run_agent(config, async {
        let _ = stopped.await;
    }));
    RunningAgent { stop, handle }
}

impl RunningAgent {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT, self.handle)
            .await
            .expect("agent stops in time")
            .expect("agent task")
            .expect("agent ends cleanly");
    }
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spawn_action() -> TaskAction {
    TaskAction::Spawn(SpawnSpec {
        name: "rpc".into(),
        flavor: FlavorSpec::tiny(),
        image: ImageSpec {
            id: "cirros".into(),
            properties: Default::default(),
        },
        user_data: None,
        metadata: Default::default(),
        interfaces: Vec::new(),
        project_id: None,
        config_drive: None,
    })
}

/// Queues a task for `host` (its own operation id, which the conductor does
/// not know: only the task row matters here); returns its id.
async fn enqueue(db: &Db, host: &str, instance: Uuid, action: &TaskAction) -> String {
    let mut tx = db.begin().await.expect("tx");
    let id = novum_compute::conductor::tasks::enqueue(
        &mut tx,
        host,
        &instance.to_string(),
        &format!("op-{}", Uuid::new_v4()),
        action,
        "req-rpc",
    )
    .await
    .expect("enqueue");
    tx.commit().await.expect("commit");
    id
}

/// (state, offers, result, updated_at) of task `id`.
async fn task(db: &Db, id: &str) -> (String, i64, Option<TaskOutcome>, String) {
    let row = sqlx::query("SELECT state, offers, result, updated_at FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_one(db.pool())
        .await
        .expect("task row");
    let result: Option<String> = row.try_get("result").expect("result");
    (
        row.try_get("state").expect("state"),
        row.try_get("offers").expect("offers"),
        result.and_then(|text| serde_json::from_str(&text).ok()),
        row.try_get("updated_at").expect("updated"),
    )
}

async fn wait_done(db: &Db, id: &str) -> TaskOutcome {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (state, _, result, _) = task(db, id).await;
        if state == "done" || state == "failed" {
            return result.expect("a recorded outcome");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for task {id}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn node_vcpus(db: &Db, host: &str) -> Option<i64> {
    sqlx::query("SELECT vcpus FROM compute_nodes WHERE host = $1")
        .bind(host)
        .fetch_optional(db.pool())
        .await
        .expect("node")
        .map(|row| row.try_get("vcpus").expect("vcpus"))
}

/// (token hash, created_at) of `host`'s credential.
async fn credential_row(db: &Db, host: &str) -> Option<(String, String)> {
    sqlx::query("SELECT token_hash, created_at FROM agent_credentials WHERE host = $1")
        .bind(host)
        .fetch_optional(db.pool())
        .await
        .expect("credential")
        .map(|row| {
            (
                row.try_get("token_hash").expect("hash"),
                row.try_get("created_at").expect("created"),
            )
        })
}

fn stored_token(state_dir: &Path) -> String {
    let text = std::fs::read_to_string(state_dir.join(novum_agent::credentials::CREDENTIAL_FILE))
        .expect("stored credential");
    let stored: novum_agent::credentials::StoredCredential =
        serde_json::from_str(&text).expect("credential json");
    stored.token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_queued_before_any_agent_run_in_order_each_delivered_once() {
    let (cloud, db) = controller().await;
    let vm = Uuid::new_v4();
    let mut ids = Vec::new();
    for action in [
        spawn_action(),
        TaskAction::Pause,
        TaskAction::Stop,
        TaskAction::Start,
    ] {
        ids.push(enqueue(&db, "cmp-2", vm, &action).await);
    }
    let node = TestNode::create(4, 8192).expect("node");
    let agent = start_agent(agent_config(&cloud, "cmp-2", &node));
    let mut outcomes = Vec::new();
    for id in &ids {
        outcomes.push(wait_done(&db, id).await);
    }
    assert_eq!(
        outcomes,
        [
            PowerState::Running,
            PowerState::Paused,
            PowerState::Shutdown,
            PowerState::Running
        ]
        .map(|power_state| TaskOutcome::Succeeded { power_state })
    );
    // Each went out once, and finished in queue order.
    let mut finished = Vec::new();
    for id in &ids {
        let (state, offers, _, updated) = task(&db, id).await;
        assert_eq!((state.as_str(), offers), ("done", 1), "task {id}");
        finished.push(updated);
    }
    let mut sorted = finished.clone();
    sorted.sort();
    assert_eq!(finished, sorted, "finished in queue order");
    agent.stop().await;
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_reuses_its_credential_and_registers_again_once_revoked() {
    let (cloud, db) = controller().await;
    let state_dir = std::env::temp_dir().join(format!("novum-rpc-state-{}", Uuid::new_v4()));
    let node = TestNode::create(4, 8192).expect("node");
    let config = AgentConfig {
        state_dir: Some(state_dir.clone()),
        ..agent_config(&cloud, "cmp-3", &node)
    };

    let agent = start_agent(config.clone());
    wait_until("registration", || async {
        credential_row(&db, "cmp-3").await.is_some()
    })
    .await;
    agent.stop().await;
    let first = credential_row(&db, "cmp-3").await.expect("credential");
    assert_eq!(first.0, hash_token(&stored_token(&state_dir)));

    // Restarted without the enrollment token: only the stored credential works.
    let agent = start_agent(AgentConfig {
        enrollment_token: None,
        ..config.clone()
    });
    let id = enqueue(&db, "cmp-3", Uuid::new_v4(), &spawn_action()).await;
    assert_eq!(
        wait_done(&db, &id).await,
        TaskOutcome::Succeeded {
            power_state: PowerState::Running
        }
    );
    agent.stop().await;
    assert_eq!(
        credential_row(&db, "cmp-3").await,
        Some(first.clone()),
        "no second registration"
    );

    // Another agent takes the host name once the first one is down (it is
    // refused with 409 and retries until then): the first one's credential
    // is revoked.
    let other = TestNode::create(2, 2048).expect("node");
    let usurper = start_agent(agent_config(&cloud, "cmp-3", &other));
    wait_until("the usurper's inventory", || async {
        node_vcpus(&db, "cmp-3").await == Some(2)
    })
    .await;
    usurper.stop().await;
    assert_ne!(credential_row(&db, "cmp-3").await, Some(first.clone()));

    // The original agent is refused (401), registers again with its
    // enrollment token once the usurper is down, and stores the new credential.
    let agent = start_agent(config);
    wait_until("the original agent back", || async {
        node_vcpus(&db, "cmp-3").await == Some(4)
    })
    .await;
    agent.stop().await;
    let last = credential_row(&db, "cmp-3").await.expect("credential");
    assert_ne!(last, first);
    assert_eq!(last.0, hash_token(&stored_token(&state_dir)));
    let _ = std::fs::remove_dir_all(&state_dir);
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_refuses_bad_credentials_bad_hosts_and_unknown_tasks() {
    let (cloud, _db) = controller().await;
    let http = reqwest::Client::new();
    let node = TestNode::create(2, 2048).expect("node");
    let inventory = LibvirtDriver::open(&node.uri(), LibvirtOptions::default())
        .expect("driver")
        .inventory()
        .expect("inventory");
    let register = |token: &str, host: &str| {
        http.post(format!("{}{}", cloud.base, novum_wire::REGISTER_PATH))
            .bearer_auth(token)
            .json(&RegisterRequest {
                host: host.into(),
                inventory: inventory.clone(),
                agent_version: "test".into(),
            })
            .send()
    };
    let wrong = register("not-the-token", "cmp-4").await.expect("send");
    assert_eq!(wrong.status(), 401);
    let body: ErrorBody = wrong.json().await.expect("error body");
    assert!(body.error.contains("enrollment"), "{}", body.error);

    for bad in ["../etc", "", "a/b"] {
        let refused = register(ENROLLMENT_TOKEN, bad).await.expect("send");
        assert_eq!(refused.status(), 400, "host {bad:?}");
    }

    let ok = register(ENROLLMENT_TOKEN, "cmp-4").await.expect("send");
    assert_eq!(ok.status(), 200);
    let answer: RegisterResponse = ok.json().await.expect("answer");
    let poll = |token: &str, host: &str| {
        http.get(format!(
            "{}{}?wait=0",
            cloud.base,
            novum_wire::tasks_path(host)
        ))
        .bearer_auth(token)
        .send()
    };
    let status =
        |response: reqwest::Result<reqwest::Response>| response.expect("send").status().as_u16();
    assert_eq!(status(poll(&answer.agent_token, "cmp-4").await), 200);
    // The enrollment token is not an agent credential; credentials are per
    // host; no credential at all is refused too.
    assert_eq!(status(poll(ENROLLMENT_TOKEN, "cmp-4").await), 401);
    register(ENROLLMENT_TOKEN, "cmp-5").await.expect("send");
    assert_eq!(status(poll(&answer.agent_token, "cmp-5").await), 401);
    let anonymous = http
        .get(format!("{}{}", cloud.base, novum_wire::tasks_path("cmp-4")))
        .send()
        .await;
    assert_eq!(status(anonymous), 401);

    // Results for unknown tasks are refused.
    let unknown = http
        .post(format!(
            "{}{}",
            cloud.base,
            novum_wire::task_result_path("cmp-4", Uuid::new_v4())
        ))
        .bearer_auth(&answer.agent_token)
        .json(&TaskResult::of(TaskOutcome::Succeeded {
            power_state: PowerState::Running,
        }))
        .send()
        .await;
    assert_eq!(status(unknown), 404);
    cloud.stop().await;
}

/// The registration protocol driven by hand over real HTTP: register, heartbeat, poll.
struct RpcClient {
    http: reqwest::Client,
    base: String,
    inventory: novum_wire::Inventory,
}

impl RpcClient {
    fn new(cloud: &Cloud, vcpus: u32) -> (Self, TestNode) {
        let node = TestNode::create(vcpus, 2048).expect("node");
        let inventory = LibvirtDriver::open(&node.uri(), LibvirtOptions::default())
            .expect("driver")
            .inventory()
            .expect("inventory");
        let client = Self {
            http: reqwest::Client::new(),
            base: cloud.base.clone(),
            inventory,
        };
        (client, node)
    }

    /// Registers as `host`: the status and, on success, the agent credential.
    async fn register(&self, host: &str) -> (u16, Result<String, String>) {
        let response = self
            .http
            .post(format!("{}{}", self.base, novum_wire::REGISTER_PATH))
            .bearer_auth(ENROLLMENT_TOKEN)
            .json(&RegisterRequest {
                host: host.into(),
                inventory: self.inventory.clone(),
                agent_version: "test".into(),
            })
            .send()
            .await
            .expect("send");
        let status = response.status().as_u16();
        if status == 200 {
            let answer: RegisterResponse = response.json().await.expect("answer");
            (status, Ok(answer.agent_token))
        } else {
            let body: ErrorBody = response.json().await.expect("error body");
            (status, Err(body.error))
        }
    }

    async fn heartbeat(&self, host: &str, token: &str) -> u16 {
        self.http
            .post(format!("{}{}", self.base, novum_wire::heartbeat_path(host)))
            .bearer_auth(token)
            .json(&novum_wire::HeartbeatRequest {
                inventory: self.inventory.clone(),
                instances: Vec::new(),
            })
            .send()
            .await
            .expect("send")
            .status()
            .as_u16()
    }

    /// Polls `host`'s tasks: the status and the task ids handed out.
    async fn poll(&self, host: &str, token: &str) -> (u16, Vec<String>) {
        let response = self
            .http
            .get(format!(
                "{}{}?wait=0",
                self.base,
                novum_wire::tasks_path(host)
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("send");
        let status = response.status().as_u16();
        if status != 200 {
            return (status, Vec::new());
        }
        let list: novum_wire::TaskList = response.json().await.expect("task list");
        (
            status,
            list.tasks.iter().map(|task| task.id.to_string()).collect(),
        )
    }
}

/// Waits until `host`'s compute service is down (no heartbeat for longer
/// than [`SERVICE_DOWN_TIME`]).
async fn wait_down() {
    tokio::time::sleep(Duration::from_secs(SERVICE_DOWN_TIME + 2)).await;
}

/// Registering under the name of a host that is up is refused (409): the
/// live host keeps its credential, its inventory and its tasks. Once the host
/// is down, or its service deleted, the name can be taken (and the old
/// credential stops working).
async fn live_host_names_cannot_be_taken_on(database_url: Option<String>) {
    let (cloud, db) = controller_on(database_url).await;
    let (owner, _owner_node) = RpcClient::new(&cloud, 4);
    let (newcomer, _newcomer_node) = RpcClient::new(&cloud, 2);

    let (status, token) = owner.register("cmp-live").await;
    assert_eq!(status, 200);
    let token = token.expect("credential");
    assert_eq!(owner.heartbeat("cmp-live", &token).await, 204);
    let task = enqueue(&db, "cmp-live", Uuid::new_v4(), &spawn_action()).await;

    let (status, refused) = newcomer.register("cmp-live").await;
    assert_eq!(status, 409, "{refused:?}");
    let message = refused.expect_err("no credential for the newcomer");
    assert!(
        message.contains("cmp-live") && message.contains("is up"),
        "{message}"
    );
    assert_eq!(node_vcpus(&db, "cmp-live").await, Some(4), "inventory kept");
    assert_eq!(
        credential_row(&db, "cmp-live").await.map(|row| row.0),
        Some(hash_token(&token)),
        "credential kept"
    );
    // The newcomer holds nothing to poll with; the owner still does.
    assert_eq!(newcomer.poll("cmp-live", ENROLLMENT_TOKEN).await.0, 401);
    assert_eq!(owner.heartbeat("cmp-live", &token).await, 204);
    assert_eq!(owner.poll("cmp-live", &token).await, (200, vec![task]));

    // Down: the name is free; the old credential is revoked.
    wait_down().await;
    let (status, taken) = newcomer.register("cmp-live").await;
    assert_eq!(status, 200, "{taken:?}");
    let taken = taken.expect("credential");
    assert_eq!(owner.heartbeat("cmp-live", &token).await, 401);
    assert_eq!(newcomer.heartbeat("cmp-live", &taken).await, 204);
    assert_eq!(node_vcpus(&db, "cmp-live").await, Some(2));

    // Deleted: the name is free at once, up or not.
    let (status, gone) = owner.register("cmp-gone").await;
    assert_eq!(status, 200);
    assert_eq!(
        owner
            .heartbeat("cmp-gone", &gone.expect("credential"))
            .await,
        204
    );
    assert_eq!(newcomer.register("cmp-gone").await.0, 409);
    let (_, services) = cloud
        .compute(
            &cloud.admin,
            reqwest::Method::GET,
            "/os-services?host=cmp-gone",
            None,
            "2.53",
        )
        .await;
    let id = services["services"][0]["id"]
        .as_str()
        .expect("service id")
        .to_string();
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            reqwest::Method::DELETE,
            &format!("/os-services/{id}"),
            None,
            "2.53",
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(newcomer.register("cmp-gone").await.0, 200);
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_host_names_cannot_be_taken_sqlite() {
    live_host_names_cannot_be_taken_on(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_host_names_cannot_be_taken_postgres() {
    let Some(url) = novum_db::testing::postgres_url().await else {
        return;
    };
    live_host_names_cannot_be_taken_on(Some(url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawn_with_a_nul_in_the_name_fails_once_with_a_message_and_the_agent_goes_on() {
    let (cloud, db) = controller().await;
    let TaskAction::Spawn(spec) = spawn_action() else {
        unreachable!("spawn_action is a spawn");
    };
    let poisoned = TaskAction::Spawn(SpawnSpec {
        name: "a\u{0}b".into(),
        ..spec
    });
    let bad = enqueue(&db, "cmp-nul", Uuid::new_v4(), &poisoned).await;
    let good = enqueue(&db, "cmp-nul", Uuid::new_v4(), &spawn_action()).await;
    let node = TestNode::create(4, 8192).expect("node");
    let agent = start_agent(agent_config(&cloud, "cmp-nul", &node));
    match wait_done(&db, &bad).await {
        TaskOutcome::Failed { message, .. } => {
            assert!(message.starts_with("spawn failed"), "{message}");
            assert!(message.contains("server name"), "{message}");
            assert!(message.contains("U+0000"), "{message}");
        }
        other => panic!("a NUL in the name: {other:?}"),
    }
    assert_eq!(
        wait_done(&db, &good).await,
        TaskOutcome::Succeeded {
            power_state: PowerState::Running
        }
    );
    // Offered once, not re-offered lease after lease.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, offers, _, _) = task(&db, &bad).await;
    assert_eq!(offers, 1);
    agent.stop().await;
    cloud.stop().await;
}

/// Creates an image through the Image API and uploads `data`; its id.
async fn upload_image(cloud: &Cloud, disk_format: &str, data: Vec<u8>) -> String {
    let created: serde_json::Value = cloud
        .client
        .post(format!("{}/image/v2/images", cloud.base))
        .header("x-auth-token", &cloud.admin)
        .json(&serde_json::json!({
            "name": "agent-download",
            "disk_format": disk_format,
            "container_format": "bare",
        }))
        .send()
        .await
        .expect("create image")
        .json()
        .await
        .expect("image");
    let id = created["id"].as_str().expect("image id").to_string();
    let uploaded = cloud
        .client
        .put(format!("{}/image/v2/images/{id}/file", cloud.base))
        .header("x-auth-token", &cloud.admin)
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await
        .expect("upload");
    assert_eq!(uploaded.status(), 204);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_download_the_images_their_tasks_name_and_verify_them() {
    use novum_agent::agent::ControllerImages;
    use novum_agent::driver::{DriverError, ImageCache, ImageSource};

    let (cloud, db) = controller().await;
    let data: Vec<u8> = (0..300_000_u32).map(|i| (i % 251) as u8).collect();
    let image = upload_image(&cloud, "qcow2", data.clone()).await;
    let inventory = {
        let node = TestNode::create(2, 2048).expect("node");
        LibvirtDriver::open(&node.uri(), LibvirtOptions::default())
            .expect("driver")
            .inventory()
            .expect("inventory")
    };
    let mut tokens = Vec::new();
    for host in ["cmp-img", "cmp-other"] {
        let answer: RegisterResponse = cloud
            .client
            .post(format!("{}{}", cloud.base, novum_wire::REGISTER_PATH))
            .bearer_auth(ENROLLMENT_TOKEN)
            .json(&RegisterRequest {
                host: host.into(),
                inventory: inventory.clone(),
                agent_version: "test".into(),
            })
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("credential");
        tokens.push(answer.agent_token);
    }
    let source = |host: &str, token: &str| {
        ControllerImages::new(
            &cloud.base,
            host,
            Some(token.to_string()),
            tokio::runtime::Handle::current(),
        )
        .expect("image source")
    };
    let open = |source: ControllerImages, id: String| async move {
        tokio::task::spawn_blocking(move || source.open(&id).map(|data| data.info))
            .await
            .expect("join")
    };
    let refused =
        |result: Result<novum_wire::ImageFileInfo, DriverError>, status: &str| match result {
            Err(DriverError::Image(message)) => assert!(message.contains(status), "{message}"),
            other => panic!("expected {status}, got {other:?}"),
        };

    // No task of the host names the image yet: not found for it.
    refused(
        open(source("cmp-img", &tokens[0]), image.clone()).await,
        "404",
    );
    let mut action = spawn_action();
    if let TaskAction::Spawn(spec) = &mut action {
        spec.image.id = image.clone();
    }
    enqueue(&db, "cmp-img", Uuid::new_v4(), &action).await;
    // Another host's credential, or no task of its own: refused.
    refused(
        open(source("cmp-img", &tokens[1]), image.clone()).await,
        "401",
    );
    refused(
        open(source("cmp-other", &tokens[1]), image.clone()).await,
        "404",
    );

    // The host whose task names it downloads it, with what the image
    // service knows of it, and its cache verifies and keeps it.
    let info = open(source("cmp-img", &tokens[0]), image.clone())
        .await
        .expect("download");
    assert_eq!(info.disk_format.as_deref(), Some("qcow2"));
    assert_eq!(info.size, Some(data.len() as u64));
    assert!(
        info.checksum.is_some() && info.os_hash_value.is_some(),
        "{info:?}"
    );
    let dir = std::env::temp_dir().join(format!("novum-image-cache-{}", Uuid::new_v4()));
    let cache = ImageCache::new(&dir);
    let images = source("cmp-img", &tokens[0]);
    let id = image.clone();
    let cached = tokio::task::spawn_blocking(move || cache.fetch(&images, &id))
        .await
        .expect("join")
        .expect("verified download");
    assert_eq!(cached.size, data.len() as u64);
    assert_eq!(cached.qemu_format(), "qcow2");
    assert_eq!(std::fs::read(&cached.path).expect("cached data"), data);
    let _ = std::fs::remove_dir_all(&dir);
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_upload_only_the_snapshots_their_tasks_name() {
    use novum_agent::agent::ControllerImages;
    use novum_agent::driver::{DriverError, ImageSource};

    let (cloud, db) = controller().await;
    let created: serde_json::Value = cloud
        .client
        .post(format!("{}/image/v2/images", cloud.base))
        .header("x-auth-token", &cloud.admin)
        .json(&serde_json::json!({"name": "a-snapshot"}))
        .send()
        .await
        .expect("create image")
        .json()
        .await
        .expect("image");
    let image = created["id"].as_str().expect("image id").to_string();
    let (client, _node) = RpcClient::new(&cloud, 2);
    let (_, snapper) = client.register("cmp-snap").await;
    let snapper = snapper.expect("credential");
    let (_, other) = client.register("cmp-else").await;
    let other = other.expect("credential");
    let dir = std::env::temp_dir().join(format!("novum-upload-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("snapshot.qcow2");
    let data: Vec<u8> = (0..300_000_u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(&file, &data).expect("write");
    let upload = |host: &str, token: &str| {
        let source = ControllerImages::new(
            &cloud.base,
            host,
            Some(token.to_string()),
            tokio::runtime::Handle::current(),
        )
        .expect("image source");
        let (image, file) = (image.clone(), file.clone());
        async move {
            tokio::task::spawn_blocking(move || source.upload(&image, "qcow2", &file))
                .await
                .expect("join")
        }
    };
    let refused = |result: Result<(), DriverError>, status: &str| match result {
        Err(DriverError::Image(message)) => assert!(message.contains(status), "{message}"),
        other => panic!("expected {status}, got {other:?}"),
    };

    // No snapshot task names the image: not found for the host.
    refused(upload("cmp-snap", &snapper).await, "404");
    let action = TaskAction::Snapshot {
        image_id: image.clone(),
        base_image_id: "some-base".into(),
    };
    enqueue(&db, "cmp-snap", Uuid::new_v4(), &action).await;
    refused(upload("cmp-snap", &other).await, "401");
    refused(upload("cmp-else", &other).await, "404");

    // Data that is not what the headers declare is refused, and the image
    // is queued again.
    let path = novum_wire::image_file_path("cmp-snap", &image);
    let lying = cloud
        .client
        .put(format!("{}{path}", cloud.base))
        .bearer_auth(&snapper)
        .header("x-image-meta-disk-format", "qcow2")
        .header("x-image-meta-size", data.len().to_string())
        .header("x-image-meta-os-hash-algo", "sha256")
        .header("x-image-meta-os-hash-value", "00".repeat(32))
        .body(data.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(lying.status().as_u16(), 400);
    let (_, shown) = cloud
        .call(
            &cloud.admin,
            reqwest::Method::GET,
            &format!("/image/v2/images/{image}"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(shown["status"], "queued", "{shown}");

    // The host whose task names it uploads it: active, with its format.
    upload("cmp-snap", &snapper).await.expect("upload");
    let (_, shown) = cloud
        .call(
            &cloud.admin,
            reqwest::Method::GET,
            &format!("/image/v2/images/{image}"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(shown["status"], "active", "{shown}");
    assert_eq!(shown["disk_format"], "qcow2");
    assert_eq!(shown["container_format"], "bare");
    assert_eq!(shown["size"], data.len());
    assert_eq!(
        shown["os_hash_value"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data))
    );
    // Once active, it takes no second upload.
    refused(upload("cmp-snap", &snapper).await, "409");
    let _ = std::fs::remove_dir_all(&dir);
    cloud.stop().await;
}
