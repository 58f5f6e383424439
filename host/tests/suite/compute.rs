//! Compute API, conductor and agent RPC, in-process (tower `oneshot`) and over
//! real HTTP with the embedded agent on libvirt's test driver.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use novum_api::auth::AuthContext;
use novum_api::{AppState, app};
use novum_config::Config;
use novum_db::Db;
use novum_wire::{
    CpuInfo, HeartbeatRequest, Inventory, PowerState, RegisterRequest, RegisterResponse,
    SupportedInstance, TaskAction, TaskList, TaskOutcome, TaskResult,
};
use serde_json::{Value, json};
use tower::ServiceExt;

fn context(who: &str) -> AuthContext {
    let (project, roles): (&str, &[&str]) = match who {
        "admin" => ("p-admin", &["admin", "member", "reader"]),
        "reader" => ("p-one", &["reader"]),
        "other" => ("p-two", &["member", "reader"]),
        "service" => ("p-service", &["service"]),
        _ => ("p-one", &["member", "reader"]),
    };
    AuthContext {
        user_id: format!("u-{who}"),
        user_name: who.to_string(),
        project_id: project.to_string(),
        project_name: project.to_string(),
        roles: roles.iter().map(|role| role.to_string()).collect(),
        token: String::new(),
    }
}

/// Test-only layer: `x-test-user: admin|member|reader|other` stands in for a token.
fn with_test_auth(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(
        |mut request: axum::extract::Request, next: axum::middleware::Next| async move {
            if let Some(who) = request
                .headers()
                .get("x-test-user")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
            {
                request.extensions_mut().insert(context(&who));
            }
            next.run(request).await
        },
    ))
}

pub(crate) struct Cloud {
    pub(crate) state: AppState,
    router: Router,
    _dir: tempfile_dir::TempDir,
}

mod tempfile_dir {
    /// A directory removed on drop.
    pub struct TempDir(pub std::path::PathBuf);
    impl TempDir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!(
                "novum-compute-test-{}",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::create_dir_all(&path).expect("temp dir");
            Self(path)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    config.agent.embedded = false;
    config.agent.enrollment_token = Some("enroll-me".to_string());
    config.scheduler.backend = novum_plugin_host::Backend::Native;
    config.plugins.cache_dir = Some(dir.join("cache"));
    config
}

pub(crate) async fn cloud_with(config_fn: impl FnOnce(&mut Config)) -> Cloud {
    let dir = tempfile_dir::TempDir::new();
    let mut config = test_config(&dir.0);
    config_fn(&mut config);
    let state = novum::server::build_state(config).await.expect("state");
    Cloud::from_state(state, dir).await
}

/// A cloud over `backend`'s database (SQLite or PostgreSQL).
pub(crate) async fn cloud_on(backend: &crate::api_common::Backend) -> Cloud {
    let dir = tempfile_dir::TempDir::new();
    let config = test_config(&dir.0);
    let state = novum::server::build_state_with_db(config, backend.db.clone())
        .await
        .expect("state");
    Cloud::from_state(state, dir).await
}

/// The public image every test server boots from.
pub(crate) const IMAGE: &str = "5b3c1f0e-6a4d-4f7e-9a51-0c2d8e7f1a01";

impl Cloud {
    /// The cloud over `state`, with the public boot image [`IMAGE`] in place.
    async fn from_state(state: AppState, dir: tempfile_dir::TempDir) -> Self {
        let cloud = Self {
            router: with_test_auth(app(state.clone())),
            state,
            _dir: dir,
        };
        cloud.ensure_image().await;
        cloud
    }

    /// Creates and uploads [`IMAGE`] through the image API (kept across restarts).
    async fn ensure_image(&self) {
        let (status, body) = self
            .call(
                Some("admin"),
                "POST",
                "/image/v2/images",
                Some(json!({"id": IMAGE, "name": "cirros", "visibility": "public", "disk_format": "raw", "container_format": "bare"})),
                None,
            )
            .await;
        if status == StatusCode::CONFLICT {
            return;
        }
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let request = Request::builder()
            .method("PUT")
            .uri(format!("/image/v2/images/{IMAGE}/file"))
            .header("x-test-user", "admin")
            .header("content-type", "application/octet-stream")
            .body(Body::from(vec![0u8; 1024]))
            .expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    /// [`Cloud::call`] of `path` under `/compute/v2.1` as `who` at
    /// microversion `version`.
    pub(crate) async fn compute_at(
        &self,
        who: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        version: &str,
    ) -> (StatusCode, Value) {
        self.call(
            Some(who),
            method,
            &format!("/compute/v2.1{path}"),
            body,
            Some(version),
        )
        .await
    }

    pub(crate) async fn call(
        &self,
        who: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
        version: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(who) = who {
            builder = builder.header("x-test-user", who);
        }
        if let Some(version) = version {
            builder = builder.header("openstack-api-version", format!("compute {version}"));
        }
        let request = match body {
            Some(body) => builder
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        }
        .expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        (status, value)
    }

    /// Serves the cloud's router on 127.0.0.1 over real HTTP (for clients
    /// outside the process's router, like the agent's metadata proxy);
    /// its base URL. Served until the test's runtime ends.
    pub(crate) async fn serve_http(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let router = self.router.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        url
    }

    /// A request with `headers` and a raw `body`: status, content type, body.
    pub(crate) async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, String, Vec<u8>) {
        let mut builder = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Body::from(body)).expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("response");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, content_type, bytes.to_vec())
    }

    pub(crate) async fn rpc(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let builder = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        let request = match body {
            Some(body) => builder
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        }
        .expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Registers a fake-free agent host (the protocol, driven by the test).
    pub(crate) async fn register(&self, host: &str, vcpus: u32, memory_mb: u64) -> String {
        self.register_with(host, inventory(host, vcpus, memory_mb))
            .await
    }

    /// Registers agent host `host` reporting `inventory`.
    pub(crate) async fn register_with(&self, host: &str, inventory: Inventory) -> String {
        let request = RegisterRequest {
            host: host.to_string(),
            inventory,
            agent_version: "test".into(),
        };
        let (status, body) = self
            .rpc(
                "enroll-me",
                "POST",
                "/rpc/v1/agents/register",
                Some(serde_json::to_value(request).expect("json")),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let response: RegisterResponse = serde_json::from_value(body).expect("register response");
        response.agent_token
    }

    /// Sends `host`'s heartbeat: its inventory as registered, and the power
    /// states of `instances`; answers the status.
    pub(crate) async fn heartbeat(
        &self,
        host: &str,
        token: &str,
        (vcpus, memory_mb): (u32, u64),
        instances: Vec<novum_wire::InstancePower>,
    ) -> StatusCode {
        let heartbeat = HeartbeatRequest {
            inventory: inventory(host, vcpus, memory_mb),
            instances,
        };
        let (status, _) = self
            .rpc(
                token,
                "POST",
                &format!("/rpc/v1/agents/{host}/heartbeat"),
                Some(serde_json::to_value(heartbeat).expect("json")),
            )
            .await;
        status
    }

    pub(crate) async fn poll(&self, host: &str, token: &str) -> TaskList {
        let (status, body) = self
            .rpc(
                token,
                "GET",
                &format!("/rpc/v1/agents/{host}/tasks?wait=0"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).expect("task list")
    }

    pub(crate) async fn report(
        &self,
        host: &str,
        token: &str,
        task: uuid::Uuid,
        outcome: TaskOutcome,
    ) {
        let body = serde_json::to_value(TaskResult::of(outcome)).expect("json");
        let (status, body) = self
            .rpc(
                token,
                "POST",
                &format!("/rpc/v1/agents/{host}/tasks/{task}/result"),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }

    /// Plays `host`'s agent for server `id`'s build: takes the spawn task,
    /// reports it running, and waits for ACTIVE; returns the server.
    pub(crate) async fn spawn_active(&self, host: &str, token: &str, id: &str) -> Value {
        let tasks = self.next_tasks(host, token).await;
        self.report(
            host,
            token,
            tasks.tasks[0].id,
            TaskOutcome::Succeeded {
                power_state: PowerState::Running,
            },
        )
        .await;
        self.wait_status(id, "ACTIVE").await
    }

    /// Deletes server `id` as its owner and plays `host`'s agent for the
    /// destroy; returns once the server is gone (404).
    pub(crate) async fn delete_done(&self, host: &str, token: &str, id: &str) {
        let path = format!("/compute/v2.1/servers/{id}");
        let (status, body) = self
            .call(Some("member"), "DELETE", &path, None, Some("2.96"))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let tasks = self.next_tasks(host, token).await;
        assert!(
            matches!(tasks.tasks[0].action, TaskAction::Destroy),
            "{:?}",
            tasks.tasks[0].action
        );
        self.report(
            host,
            token,
            tasks.tasks[0].id,
            TaskOutcome::Succeeded {
                power_state: PowerState::NoState,
            },
        )
        .await;
        for _ in 0..200 {
            let (status, _) = self.call(Some("admin"), "GET", &path, None, None).await;
            if status == StatusCode::NOT_FOUND {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server {id} was not deleted");
    }

    /// Waits for a task on `host` (the build runs in the background).
    pub(crate) async fn next_tasks(&self, host: &str, token: &str) -> TaskList {
        for _ in 0..200 {
            let tasks = self.poll(host, token).await;
            if !tasks.tasks.is_empty() {
                return tasks;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no task arrived for {host}");
    }

    pub(crate) async fn server(&self, id: &str) -> Value {
        let (status, body) = self
            .call(
                Some("admin"),
                "GET",
                &format!("/compute/v2.1/servers/{id}"),
                None,
                Some("2.96"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["server"].clone()
    }

    pub(crate) async fn wait_status(&self, id: &str, wanted: &str) -> Value {
        for _ in 0..300 {
            let server = self.server(id).await;
            if server["status"] == wanted {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "server {id} never reached {wanted}: {}",
            self.server(id).await
        );
    }

    pub(crate) async fn create(&self, who: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            Some(who),
            "POST",
            "/compute/v2.1/servers",
            Some(body),
            Some("2.96"),
        )
        .await
    }
}

pub(crate) fn inventory(host: &str, vcpus: u32, memory_mb: u64) -> Inventory {
    Inventory {
        uptime: None,
        vcpus,
        memory_mb,
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

pub(crate) fn server_body(name: &str) -> Value {
    json!({"server": {"name": name, "imageRef": IMAGE, "flavorRef": "1", "networks": "none"}})
}

#[tokio::test]
async fn version_documents_and_auth() {
    let cloud = cloud_with(|_| {}).await;
    let (status, body) = cloud.call(None, "GET", "/compute/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["versions"][0]["id"], "v2.0");
    assert_eq!(body["versions"][0]["status"], "SUPPORTED");
    assert_eq!(body["versions"][1]["status"], "CURRENT");
    assert_eq!(body["versions"][1]["min_version"], "2.1");
    let (status, body) = cloud.call(None, "GET", "/compute/v2.1/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"]["id"], "v2.1");
    let (status, body) = cloud.call(None, "GET", "/compute/v2/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"]["id"], "v2.0");
    assert_eq!(
        body["version"]["media-types"][0]["base"],
        "application/json"
    );
    let (status, body) = cloud
        .call(None, "GET", "/compute/v2.1/servers", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["unauthorized"]["code"], 401);
    let (status, _) = cloud
        .call(
            Some("member"),
            "GET",
            "/compute/v2.1/servers",
            None,
            Some("2.999"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn flavors_defaults_crud_and_shapes() {
    let cloud = cloud_with(|_| {}).await;
    let (status, body) = cloud
        .call(
            Some("member"),
            "GET",
            "/compute/v2.1/flavors/detail",
            None,
            Some("2.61"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["flavors"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["m1.tiny", "m1.small", "m1.medium", "m1.large", "m1.xlarge"]
    );
    assert_eq!(body["flavors"][0]["ram"], 512);
    assert_eq!(body["flavors"][0]["extra_specs"], json!({}));
    assert_eq!(body["flavors"][0]["description"], Value::Null);
    let (_, body) = cloud
        .call(
            Some("member"),
            "GET",
            "/compute/v2.1/flavors/detail",
            None,
            None,
        )
        .await;
    assert!(
        body["flavors"][0].get("extra_specs").is_none(),
        "2.1 has no extra_specs"
    );
    assert_eq!(body["flavors"][0]["swap"], "");
    let (_, body) = cloud
        .call(
            Some("member"),
            "GET",
            "/compute/v2.1/flavors?minRam=4096",
            None,
            None,
        )
        .await;
    assert_eq!(body["flavors"].as_array().map(Vec::len), Some(3));
    let (_, body) = cloud
        .call(
            Some("member"),
            "GET",
            "/compute/v2.1/flavors?limit=2",
            None,
            None,
        )
        .await;
    assert_eq!(body["flavors"].as_array().map(Vec::len), Some(2));
    assert!(
        body["flavors_links"][0]["href"]
            .as_str()
            .unwrap_or_default()
            .contains("marker=2")
    );

    let create = json!({"flavor": {"name": "private", "ram": 256, "vcpus": 1, "disk": 1, "id": "p1", "os-flavor-access:is_public": false}});
    let (status, body) = cloud
        .call(
            Some("member"),
            "POST",
            "/compute/v2.1/flavors",
            Some(create.clone()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["forbidden"]["code"], 403);
    let (status, _) = cloud
        .call(
            Some("admin"),
            "POST",
            "/compute/v2.1/flavors",
            Some(create.clone()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = cloud
        .call(
            Some("admin"),
            "POST",
            "/compute/v2.1/flavors",
            Some(create),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = cloud
        .call(
            Some("member"),
            "GET",
            "/compute/v2.1/flavors/p1",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "private flavor hidden");
    let (status, _) = cloud
        .call(
            Some("admin"),
            "POST",
            "/compute/v2.1/flavors/p1/action",
            Some(json!({"addTenantAccess": {"tenant": "p-one"}})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = cloud
        .call(
            Some("member"),
            "GET",
            "/compute/v2.1/flavors/p1",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "access granted");
    let (status, body) = cloud
        .call(
            Some("admin"),
            "POST",
            "/compute/v2.1/flavors/p1/os-extra_specs",
            Some(json!({"extra_specs": {"hw:cpu_policy": "dedicated"}})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = cloud
        .call(
            Some("admin"),
            "GET",
            "/compute/v2.1/flavors/p1/os-extra_specs/hw:cpu_policy",
            None,
            None,
        )
        .await;
    assert_eq!(body["hw:cpu_policy"], "dedicated");
    let (status, _) = cloud
        .call(
            Some("admin"),
            "DELETE",
            "/compute/v2.1/flavors/p1/os-extra_specs/hw:cpu_policy",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = cloud
        .call(
            Some("admin"),
            "POST",
            "/compute/v2.1/flavors",
            Some(json!({"flavor": {"name": "bad", "ram": "x", "vcpus": 1, "disk": 1}})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["badRequest"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("ram")
    );
    let (status, _) = cloud
        .call(
            Some("admin"),
            "DELETE",
            "/compute/v2.1/flavors/p1",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

/// The message of a Nova fault body (`{"<kind>": {"message": …}}`).
fn fault_message(body: &Value) -> &str {
    body.as_object()
        .and_then(|fault| fault.values().next())
        .and_then(|fault| fault["message"].as_str())
        .unwrap_or_default()
}

#[tokio::test]
async fn flavor_access_extra_specs_and_description_edges() {
    let cloud = cloud_with(|_| {}).await;
    let admin = |method: &'static str, path: String, body: Option<Value>| {
        let cloud = &cloud;
        async move {
            cloud
                .call(Some("admin"), method, &path, body, Some("2.61"))
                .await
        }
    };
    let create = json!({"flavor": {"name": "shared", "ram": 256, "vcpus": 1, "disk": 1, "id": "p2", "os-flavor-access:is_public": false}});
    let (status, body) = admin("POST", "/compute/v2.1/flavors".into(), Some(create)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let action = "/compute/v2.1/flavors/p2/action".to_string();
    let add = json!({"addTenantAccess": {"tenant": "p-one"}});
    let (status, body) = admin("POST", action.clone(), Some(add.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"flavor_access": [{"flavor_id": "p2", "tenant_id": "p-one"}]})
    );
    let (status, body) = admin("POST", action.clone(), Some(add)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        fault_message(&body),
        "Flavor access already exists for flavor p2 and project p-one combination."
    );
    let (status, body) = admin(
        "GET",
        "/compute/v2.1/flavors/p2/os-flavor-access".into(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["flavor_access"][0]["tenant_id"], "p-one");
    let (_, body) = cloud
        .call(Some("member"), "GET", "/compute/v2.1/flavors", None, None)
        .await;
    assert!(
        body["flavors"]
            .as_array()
            .expect("list")
            .iter()
            .any(|f| f["id"] == "p2"),
        "shared flavor listed"
    );
    let (_, body) = admin("GET", "/compute/v2.1/flavors?is_public=false".into(), None).await;
    let ids: Vec<&str> = body["flavors"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert_eq!(ids, ["p2"]);

    let remove = json!({"removeTenantAccess": {"tenant": "p-one"}});
    let (status, body) = admin("POST", action.clone(), Some(remove.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"flavor_access": []}));
    let (status, body) = admin("POST", action.clone(), Some(remove)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        fault_message(&body),
        "Flavor access not found for p2 / p-one combination."
    );
    let (status, _) = cloud
        .call(
            Some("member"),
            "GET",
            "/compute/v2.1/flavors/p2",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "access removed");
    let (status, body) = admin(
        "POST",
        action.clone(),
        Some(json!({"shareWith": {"tenant": "x"}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(fault_message(&body), "Unknown flavor action shareWith.");
    let (status, body) = admin(
        "GET",
        "/compute/v2.1/flavors/1/os-flavor-access".into(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        fault_message(&body),
        "Access list not available for public flavors."
    );
    let (status, body) = admin(
        "POST",
        "/compute/v2.1/flavors/1/action".into(),
        Some(json!({"addTenantAccess": {"tenant": "p-one"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        fault_message(&body),
        "Can not add access to a public flavor."
    );

    let specs = "/compute/v2.1/flavors/p2/os-extra_specs";
    let (status, body) = admin(
        "POST",
        specs.into(),
        Some(json!({"extra_specs": {"hw:cpu_policy": "dedicated", "quota:cpu_shares": 2}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["extra_specs"]["quota:cpu_shares"], "2");
    let (status, body) = admin(
        "PUT",
        format!("{specs}/hw:cpu_policy"),
        Some(json!({"hw:cpu_policy": "shared"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"hw:cpu_policy": "shared"}));
    let (status, _) = admin("DELETE", format!("{specs}/quota:cpu_shares"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = admin("DELETE", format!("{specs}/quota:cpu_shares"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        fault_message(&body),
        "Flavor p2 has no extra specs with key quota:cpu_shares."
    );
    let (_, body) = admin("GET", specs.into(), None).await;
    assert_eq!(body, json!({"extra_specs": {"hw:cpu_policy": "shared"}}));
    let (_, body) = admin("GET", "/compute/v2.1/flavors/p2".into(), None).await;
    assert_eq!(
        body["flavor"]["extra_specs"],
        json!({"hw:cpu_policy": "shared"})
    );

    let (status, body) = admin(
        "PUT",
        "/compute/v2.1/flavors/p2".into(),
        Some(json!({"flavor": {"description": "for p-one"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["flavor"]["description"], "for p-one");

    let (status, _) = admin("DELETE", "/compute/v2.1/flavors/p2".into(), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = admin("DELETE", "/compute/v2.1/flavors/p2".into(), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(fault_message(&body), "Flavor p2 could not be found.");
}

#[tokio::test]
async fn build_runs_through_scheduler_claim_and_agent() {
    let cloud = cloud_with(|_| {}).await;
    let token = cloud.register("cmp1", 4, 8192).await;
    let (status, body) = cloud.create("member", server_body("vm1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    let tasks = cloud.next_tasks("cmp1", &token).await;
    assert_eq!(tasks.tasks.len(), 1);
    assert_eq!(tasks.tasks[0].action.kind(), "spawn");
    assert_eq!(cloud.server(&id).await["status"], "BUILD");
    cloud
        .report(
            "cmp1",
            &token,
            tasks.tasks[0].id,
            TaskOutcome::Succeeded {
                power_state: PowerState::Running,
            },
        )
        .await;
    let server = cloud.wait_status(&id, "ACTIVE").await;
    assert_eq!(server["OS-EXT-SRV-ATTR:host"], "cmp1");
    assert_eq!(server["OS-EXT-STS:power_state"], 1);
    assert_eq!(server["OS-EXT-AZ:availability_zone"], "nova");
    assert_eq!(server["flavor"]["original_name"], "m1.tiny");

    // Guards: pause from ACTIVE is fine; stop while pausing is a 409.
    let (status, _) = cloud
        .call(
            Some("member"),
            "POST",
            &format!("/compute/v2.1/servers/{id}/action"),
            Some(json!({"pause": null})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = cloud
        .call(
            Some("member"),
            "POST",
            &format!("/compute/v2.1/servers/{id}/action"),
            Some(json!({"os-stop": null})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["conflictingRequest"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("task_state pausing"),
        "{body}"
    );
    let tasks = cloud.next_tasks("cmp1", &token).await;
    assert_eq!(tasks.tasks[0].action.kind(), "pause");
    cloud
        .report(
            "cmp1",
            &token,
            tasks.tasks[0].id,
            TaskOutcome::Succeeded {
                power_state: PowerState::Paused,
            },
        )
        .await;
    cloud.wait_status(&id, "PAUSED").await;
    let (status, body) = cloud
        .call(
            Some("member"),
            "POST",
            &format!("/compute/v2.1/servers/{id}/action"),
            Some(json!({"os-start": null})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["conflictingRequest"]["message"],
        format!("Cannot 'start' instance {id} while it is in vm_state paused")
    );

    // Readers cannot act; other projects cannot see.
    let (status, _) = cloud
        .call(
            Some("reader"),
            "POST",
            &format!("/compute/v2.1/servers/{id}/action"),
            Some(json!({"unpause": null})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = cloud
        .call(
            Some("other"),
            "GET",
            &format!("/compute/v2.1/servers/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = cloud
        .call(
            Some("other"),
            "DELETE",
            &format!("/compute/v2.1/servers/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, body) = cloud
        .call(Some("other"), "GET", "/compute/v2.1/servers", None, None)
        .await;
    assert_eq!(body["servers"], json!([]));
    let (status, _) = cloud
        .call(
            Some("member"),
            "GET",
            "/compute/v2.1/servers?all_tenants=1",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, body) = cloud
        .call(
            Some("admin"),
            "GET",
            "/compute/v2.1/servers/detail?all_tenants=1&host=cmp1",
            None,
            None,
        )
        .await;
    assert_eq!(body["servers"].as_array().map(Vec::len), Some(1));

    // Instance actions with events.
    let (_, body) = cloud
        .call(
            Some("member"),
            "GET",
            &format!("/compute/v2.1/servers/{id}/os-instance-actions"),
            None,
            Some("2.84"),
        )
        .await;
    let actions: Vec<&str> = body["instanceActions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert_eq!(actions, ["pause", "create"]);
    let request_id = body["instanceActions"][1]["request_id"]
        .as_str()
        .expect("request id")
        .to_string();
    let (_, body) = cloud
        .call(
            Some("admin"),
            "GET",
            &format!("/compute/v2.1/servers/{id}/os-instance-actions/{request_id}"),
            None,
            Some("2.84"),
        )
        .await;
    let events = body["instanceAction"]["events"].as_array().expect("events");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "compute__do_build_and_run_instance"
                && e["result"] == "Success"
                && e["host"] == "cmp1"),
        "{body}"
    );

    // Delete goes through a destroy task and frees the claim.
    let (status, _) = cloud
        .call(
            Some("member"),
            "DELETE",
            &format!("/compute/v2.1/servers/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let tasks = cloud.next_tasks("cmp1", &token).await;
    assert_eq!(tasks.tasks[0].action.kind(), "destroy");
    cloud
        .report(
            "cmp1",
            &token,
            tasks.tasks[0].id,
            TaskOutcome::Succeeded {
                power_state: PowerState::NoState,
            },
        )
        .await;
    let (status, _) = cloud
        .call(
            Some("member"),
            "GET",
            &format!("/compute/v2.1/servers/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let used: i64 = sqlx::query_scalar("SELECT vcpus_used FROM compute_nodes WHERE host = 'cmp1'")
        .fetch_one(cloud.state.db.pool())
        .await
        .expect("usage");
    assert_eq!(used, 0);
}

#[tokio::test]
async fn failed_spawn_reschedules_to_the_alternate_then_errors() {
    let cloud = cloud_with(|config| config.scheduler.max_attempts = 2).await;
    let big = cloud.register("big", 16, 32768).await;
    let small = cloud.register("small", 4, 4096).await;
    let (_, body) = cloud.create("member", server_body("vm")).await;
    let id = body["server"]["id"].as_str().expect("id").to_string();
    // The RAM weigher prefers the big host; its spawn fails.
    let tasks = cloud.next_tasks("big", &big).await;
    cloud
        .report(
            "big",
            &big,
            tasks.tasks[0].id,
            TaskOutcome::Failed {
                message: "disk on fire".into(),
                power_state: None,
            },
        )
        .await;
    let tasks = cloud.next_tasks("small", &small).await;
    assert_eq!(tasks.tasks[0].instance_uuid.to_string(), id);
    let failed_builds: i64 =
        sqlx::query_scalar("SELECT failed_builds FROM compute_nodes WHERE host = 'big'")
            .fetch_one(cloud.state.db.pool())
            .await
            .expect("failed builds");
    assert_eq!(failed_builds, 1);
    let used: i64 = sqlx::query_scalar("SELECT vcpus_used FROM compute_nodes WHERE host = 'big'")
        .fetch_one(cloud.state.db.pool())
        .await
        .expect("usage");
    assert_eq!(used, 0, "claim released");
    cloud
        .report(
            "small",
            &small,
            tasks.tasks[0].id,
            TaskOutcome::Failed {
                message: "also broken".into(),
                power_state: None,
            },
        )
        .await;
    let server = cloud.wait_status(&id, "ERROR").await;
    let message = server["fault"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Exceeded max scheduling attempts 2"),
        "{server}"
    );
    assert!(message.contains("also broken"), "{server}");
}

#[tokio::test]
async fn no_valid_host_explains_per_plugin() {
    let cloud = cloud_with(|_| {}).await;
    let _token = cloud.register("tiny", 1, 600).await;
    let (_, body) = cloud.create("member", json!({"server": {"name": "big", "imageRef": IMAGE, "flavorRef": "5", "networks": "none"}})).await;
    let id = body["server"]["id"].as_str().expect("id").to_string();
    let server = cloud.wait_status(&id, "ERROR").await;
    assert!(
        server["fault"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("No valid host was found"),
        "{server}"
    );
    // No host passed the capacity checks; the admin sees why per host.
    assert!(
        server["fault"]["details"]
            .as_str()
            .unwrap_or_default()
            .contains("tiny"),
        "{server}"
    );
}

#[tokio::test]
async fn create_validation_and_pagination() {
    let cloud = cloud_with(|_| {}).await;
    let (status, body) = cloud
        .create(
            "member",
            json!({"server": {"name": "x", "imageRef": IMAGE, "flavorRef": "1"}}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "networks required at 2.37+: {body}"
    );
    let (status, _) = cloud.create("member", json!({"server": {"name": "x", "imageRef": IMAGE, "flavorRef": "nope", "networks": "none"}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = cloud.create("reader", server_body("x")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = cloud
        .create("member", json!({"server": {"name": "x", "imageRef": IMAGE, "flavorRef": "1", "networks": "none", "availability_zone": "mars"}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut body = server_body("multi");
    body["server"]["min_count"] = json!(3);
    let (status, _) = cloud.create("member", body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, body) = cloud
        .call(
            Some("member"),
            "GET",
            "/compute/v2.1/servers?limit=2",
            None,
            None,
        )
        .await;
    assert_eq!(body["servers"].as_array().map(Vec::len), Some(2));
    let next = body["servers_links"][0]["href"]
        .as_str()
        .expect("next link")
        .to_string();
    let path = next
        .split_once("/compute")
        .map(|(_, rest)| format!("/compute{rest}"))
        .expect("path");
    let (_, body) = cloud.call(Some("member"), "GET", &path, None, None).await;
    assert_eq!(body["servers"].as_array().map(Vec::len), Some(1));
    assert!(body.get("servers_links").is_none());
    let (_, body) = cloud
        .call(
            Some("member"),
            "GET",
            "/compute/v2.1/servers?name=^multi-2$",
            None,
            None,
        )
        .await;
    assert_eq!(body["servers"].as_array().map(Vec::len), Some(1));
    let (status, _) = cloud
        .call(
            Some("member"),
            "GET",
            "/compute/v2.1/servers?marker=nope",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn restart_resumes_or_fails_operations_in_flight() {
    let dir = tempfile_dir::TempDir::new();
    let config = test_config(&dir.0);
    let (id, stuck, token) = {
        let state = novum::server::build_state(config.clone())
            .await
            .expect("state");
        let cloud = Cloud::from_state(state, tempfile_dir::TempDir::new()).await;
        let token = cloud.register("cmp1", 4, 8192).await;
        let (_, body) = cloud.create("member", server_body("survivor")).await;
        let id = body["server"]["id"].as_str().expect("id").to_string();
        // The spawn task is leased, then the controller "stops".
        let tasks = cloud.next_tasks("cmp1", &token).await;
        assert_eq!(tasks.tasks.len(), 1);
        // An operation whose task vanished (e.g. cleaned by hand) must fail cleanly.
        let (_, body) = cloud.create("member", server_body("stuck")).await;
        let stuck = body["server"]["id"].as_str().expect("id").to_string();
        let stuck_tasks = cloud.next_tasks("cmp1", &token).await;
        sqlx::query("DELETE FROM tasks WHERE id = $1")
            .bind(stuck_tasks.tasks[0].id.to_string())
            .execute(cloud.state.db.pool())
            .await
            .expect("delete");
        (id, stuck, token)
    };
    let state = novum::server::build_state(config)
        .await
        .expect("state again");
    let cloud = Cloud::from_state(state, tempfile_dir::TempDir::new()).await;
    cloud.state.conductor.recover().await.expect("recover");
    // The agent keeps its credential across the controller's restart (its
    // host is still up: registering again under its name would be refused).
    let tasks = cloud.next_tasks("cmp1", &token).await;
    assert_eq!(
        tasks.tasks[0].instance_uuid.to_string(),
        id,
        "the leased spawn is offered again"
    );
    cloud
        .report(
            "cmp1",
            &token,
            tasks.tasks[0].id,
            TaskOutcome::Succeeded {
                power_state: PowerState::Running,
            },
        )
        .await;
    cloud.wait_status(&id, "ACTIVE").await;
    let server = cloud.wait_status(&stuck, "ERROR").await;
    assert!(
        server["fault"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("restart"),
        "{server}"
    );
}

#[tokio::test]
async fn heartbeat_reconciles_power_state() {
    let cloud = cloud_with(|_| {}).await;
    let token = cloud.register("cmp1", 4, 8192).await;
    let (_, body) = cloud.create("member", server_body("vm")).await;
    let id = body["server"]["id"].as_str().expect("id").to_string();
    cloud.spawn_active("cmp1", &token, &id).await;
    let power = novum_wire::InstancePower {
        uuid: id.parse().expect("uuid"),
        power_state: PowerState::Shutdown,
    };
    let status = cloud
        .heartbeat("cmp1", &token, (4, 8192), vec![power])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let server = cloud.wait_status(&id, "SHUTOFF").await;
    assert_eq!(server["OS-EXT-STS:power_state"], 4);
    let (status, _) = cloud
        .rpc(
            "wrong",
            "POST",
            "/rpc/v1/agents/cmp1/heartbeat",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn claim_race(db: Db) {
    let now = novum_db::now();
    sqlx::query("INSERT INTO services (id, uuid, host, binary_name, topic, created_at) VALUES (1, 's1', 'h1', 'nova-compute', 'compute', $1)")
        .bind(&now)
        .execute(db.pool())
        .await
        .expect("service");
    // Room for exactly one 1-vCPU instance (1 vCPU × ratio 1.0).
    sqlx::query(
        "INSERT INTO compute_nodes (id, uuid, service_id, host, hypervisor_hostname, vcpus, memory_mb, local_gb, cpu_allocation_ratio, \
         hypervisor_type, hypervisor_version, created_at) VALUES (1, 'n1', 1, 'h1', 'h1', 1, 4096, 10, 1.0, 'TEST', 1, $1)",
    )
    .bind(&now)
    .execute(db.pool())
    .await
    .expect("node");
    let db = Arc::new(db);
    let mut handles = Vec::new();
    for index in 0..16 {
        let db = Arc::clone(&db);
        handles.push(tokio::spawn(async move {
            let wanted = novum_compute::conductor::claims::Resources {
                vcpus: 1,
                memory_mb: 64,
                disk_gb: 1,
            };
            let then = novum_db::Batch::new();
            match novum_compute::conductor::claims::claim(
                &db,
                "n1",
                &format!("i{index}"),
                wanted,
                then,
            )
            .await
            .expect("claim")
            .won()
            {
                Some(tx) => {
                    tx.commit().await.expect("commit");
                    1
                }
                None => 0,
            }
        }));
    }
    let mut wins = 0;
    for handle in handles {
        wins += handle.await.expect("join");
    }
    assert_eq!(wins, 1, "exactly one claim wins the last slot");
    let allocations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM allocations")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(allocations, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_for_one_slot_sqlite() {
    let dir = tempfile_dir::TempDir::new();
    claim_race(novum_db::testing::sqlite(&dir.0).await.expect("sqlite")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_for_one_slot_postgres() {
    if let Some(db) = novum_db::testing::postgres().await {
        claim_race(db).await;
    }
}

/// End to end over real HTTP with the real embedded agent on libvirt's test
/// driver: create → ACTIVE → stop → start → delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn end_to_end_with_embedded_agent() {
    let dir = tempfile_dir::TempDir::new();
    let mut config = test_config(&dir.0);
    config.agent.embedded = true;
    config.agent.heartbeat_seconds = 1;
    let state = novum::server::build_state(config).await.expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    // The boot image, through the image API of the same state.
    Cloud::from_state(state.clone(), tempfile_dir::TempDir::new()).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let background = novum::server::start_background(&state, address, stopped.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, with_test_auth(app(state)))
            .with_graceful_shutdown(novum::server::stopped(stopped))
            .await
    });
    let client = reqwest::Client::new();
    let base = format!("http://{address}/compute/v2.1");
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut request = client
            .request(method, format!("{base}{path}"))
            .header("x-test-user", "member")
            .header("openstack-api-version", "compute 2.96");
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.expect("send");
            let status = response.status().as_u16();
            let value: Value = response.json().await.unwrap_or(Value::Null);
            (status, value)
        }
    };
    // The embedded agent registers.
    let mut registered = false;
    for _ in 0..200 {
        let hosts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM compute_nodes")
            .fetch_one(
                novum_db::Db::open(&format!(
                    "sqlite://{}?mode=rwc",
                    dir.0.join("novum.db").display()
                ))
                .await
                .expect("db")
                .pool(),
            )
            .await
            .expect("count");
        if hosts == 1 {
            registered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(registered, "embedded agent registered");
    let wait = |id: String, wanted: &'static str| async move {
        for _ in 0..400 {
            let (_, body) = call(reqwest::Method::GET, format!("/servers/{id}"), None).await;
            if body["server"]["status"] == wanted {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{id} never reached {wanted}");
    };
    let (status, body) = call(
        reqwest::Method::POST,
        "/servers".into(),
        Some(server_body("e2e")),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    let body = wait(id.clone(), "ACTIVE").await;
    assert_eq!(body["server"]["OS-EXT-STS:power_state"], 1);
    let (status, _) = call(
        reqwest::Method::POST,
        format!("/servers/{id}/action"),
        Some(json!({"os-stop": null})),
    )
    .await;
    assert_eq!(status, 202);
    wait(id.clone(), "SHUTOFF").await;
    let (status, _) = call(
        reqwest::Method::POST,
        format!("/servers/{id}/action"),
        Some(json!({"os-start": null})),
    )
    .await;
    assert_eq!(status, 202);
    wait(id.clone(), "ACTIVE").await;
    let (status, _) = call(reqwest::Method::DELETE, format!("/servers/{id}"), None).await;
    assert_eq!(status, 204);
    let mut gone = false;
    for _ in 0..400 {
        let (status, _) = call(reqwest::Method::GET, format!("/servers/{id}"), None).await;
        if status == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "deleted");
    let _ = stop.send(true);
    let _ = server.await;
    for task in background {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
}

/// `PUT /servers/{id}` (through the conductor): fields absent stay, `""`
/// clears an access address, and a rename (only a rename) sends
/// `instance.update` from the API publisher with the old name.
#[tokio::test]
async fn update_renames_and_notifies_once() {
    let cloud = cloud_with(|_| {}).await;
    let token = cloud.register("cmp1", 4, 8192).await;
    let mut body = server_body("before");
    body["server"]["accessIPv4"] = json!("1.1.1.1");
    let (status, created) = cloud.create("member", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = created["server"]["id"].as_str().expect("id").to_string();
    cloud.spawn_active("cmp1", &token, &id).await;
    let renames = || async {
        novum_notify::outbox::list_events(
            &cloud.state.db,
            &novum_notify::outbox::EventFilter {
                event_type: Some("instance.update".to_string()),
                instance_uuid: Some(id.clone()),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .expect("events")
    };
    let before = renames().await.len();
    let path = format!("/compute/v2.1/servers/{id}");
    let (status, body) = cloud
        .call(
            Some("member"),
            "PUT",
            &path,
            Some(json!({"server": {"name": "after", "accessIPv4": ""}})),
            Some("2.19"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["server"]["name"], "after");
    assert_eq!(body["server"]["accessIPv4"], "");
    assert_eq!(body["server"]["description"], Value::Null);
    let events = renames().await;
    assert_eq!(
        events.len(),
        before + 1,
        "one instance.update for the rename"
    );
    let newest = &events[0].envelope;
    assert!(
        newest.publisher_id.starts_with("nova-api:"),
        "{}",
        newest.publisher_id
    );
    assert_eq!(
        newest.payload["nova_object.data"]["old_display_name"], "before",
        "{}",
        newest.payload
    );

    // No rename, no notification; the description is set, the name stays.
    let (status, body) = cloud
        .call(
            Some("member"),
            "PUT",
            &path,
            Some(json!({"server": {"description": "d"}})),
            Some("2.19"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["server"]["name"], "after");
    assert_eq!(body["server"]["description"], "d");
    assert_eq!(renames().await.len(), before + 1);

    let missing = format!("/compute/v2.1/servers/{}", uuid::Uuid::new_v4());
    let (status, body) = cloud
        .call(
            Some("member"),
            "PUT",
            &missing,
            Some(json!({"server": {"name": "x"}})),
            Some("2.19"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn access_ips_lock_and_reset_state() {
    let cloud = cloud_with(|_| {}).await;
    let token = cloud.register("cmp1", 4, 8192).await;
    let mut body = server_body("vm1");
    body["server"]["accessIPv4"] = json!("1.1.1.1");
    body["server"]["accessIPv6"] = json!("0000:0000:0000:0000:0000:babe:220.12.22.2");
    let (status, created) = cloud.create("member", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = created["server"]["id"].as_str().expect("id").to_string();
    let server = cloud.spawn_active("cmp1", &token, &id).await;
    assert_eq!(server["accessIPv4"], "1.1.1.1");
    // Stored canonical (RFC 5952), as Nova does.
    assert_eq!(server["accessIPv6"], "::babe:dc0c:1602");
    let mut bad = server_body("vm2");
    bad["server"]["accessIPv4"] = json!("1.1.1");
    let (status, body) = cloud.create("member", bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let act = |who: &'static str, action: Value| {
        let cloud = &cloud;
        let path = format!("/compute/v2.1/servers/{id}/action");
        async move {
            cloud
                .call(Some(who), "POST", &path, Some(action), None)
                .await
        }
    };
    // Locked: the owner can neither act nor delete (409); unlocked, it can.
    let (status, _) = act("member", json!({"lock": null})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(cloud.server(&id).await["locked"], true);
    let (status, body) = act("member", json!({"os-stop": null})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        body["conflictingRequest"]["message"],
        format!("Instance {id} is locked")
    );
    let (status, _) = cloud
        .call(
            Some("member"),
            "DELETE",
            &format!("/compute/v2.1/servers/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = act("member", json!({"unlock": null})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(cloud.server(&id).await["locked"], false);

    // os-resetState: admin only, `active` or `error`.
    let (status, _) = act("member", json!({"os-resetState": {"state": "error"}})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = act("admin", json!({"os-resetState": {"state": "paused"}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = act("admin", json!({"os-resetState": {"state": "error"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(cloud.server(&id).await["status"], "ERROR");
    let (status, _) = act("admin", json!({"os-resetState": {"state": "active"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(cloud.server(&id).await["status"], "ACTIVE");
}
