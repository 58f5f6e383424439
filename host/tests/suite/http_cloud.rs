//! Shared test support: a controller (the real router and background tasks,
//! as `novum serve` runs them) served on 127.0.0.1:0 in-process, called over
//! real HTTP with real Keystone tokens.

#![allow(dead_code)]

use std::time::Duration;

use novum_config::Config;
use reqwest::Method;
use serde_json::{Value, json};

pub const ADMIN_PASSWORD: &str = "admin-secret";
/// The public image every test server boots from.
pub const IMAGE: &str = "5b3c1f0e-6a4d-4f7e-9a51-0c2d8e7f1a01";
/// The enrollment token agents register with.
pub const ENROLLMENT_TOKEN: &str = "enroll-test";

/// A running controller.
pub struct Cloud {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The HTTP client.
    pub client: reqwest::Client,
    /// An admin token.
    pub admin: String,
    /// The database URL the controller uses.
    pub database_url: String,
    /// `http://<[metrics] listen>` when the configuration sets it.
    pub metrics_base: Option<String>,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    background: Vec<tokio::task::JoinHandle<()>>,
    dir: std::path::PathBuf,
}

/// A response: status and JSON body (Null when empty).
pub type Reply = (u16, Value);

impl Cloud {
    /// Starts a controller configured by `configure` (SQLite in a fresh
    /// directory unless it sets `database.url`).
    pub async fn start(configure: impl FnOnce(&mut Config)) -> Self {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cloud-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut config = Config {
            data_dir: dir.clone(),
            ..Config::default()
        };
        config.identity.admin_password = Some(ADMIN_PASSWORD.to_string());
        config.agent.enrollment_token = Some(ENROLLMENT_TOKEN.to_string());
        config.agent.heartbeat_seconds = 1;
        config.plugins.cache_dir =
            Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache"));
        // Deadlines are the sandbox tests' subject; elsewhere a loaded test
        // machine must not turn a descheduled plugin call into a rejection.
        config.plugins.defaults.deadline_ms = 1_000;
        configure(&mut config);
        let database_url = config
            .database
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.join("novum.db").display()));
        let state = novum::server::build_state(config).await.expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut background = novum::server::start_background(&state, address, stopped.clone());
        let metrics_listener = novum::server::bind_metrics(&state.config)
            .await
            .expect("bind [metrics] listen");
        let mut metrics_base = None;
        if let Some(metrics_listener) = metrics_listener {
            metrics_base = Some(format!(
                "http://{}",
                metrics_listener.local_addr().expect("metrics address")
            ));
            let (state, stopped) = (state.clone(), stopped.clone());
            background.push(tokio::spawn(async move {
                let _ = novum::server::serve_metrics(
                    state,
                    metrics_listener,
                    novum::server::stopped(stopped),
                )
                .await;
            }));
        }
        let server = tokio::spawn(async move {
            let _ = novum::server::serve(state, listener, novum::server::stopped(stopped)).await;
        });
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("client");
        let base = format!("http://{address}");
        let mut cloud = Self {
            base,
            client,
            database_url,
            metrics_base,
            admin: String::new(),
            stop,
            server,
            background,
            dir,
        };
        cloud.admin = cloud.token("admin", ADMIN_PASSWORD, "admin").await;
        cloud.create_image().await;
        cloud
    }

    /// Creates and uploads the public boot image [`IMAGE`] through the image API.
    async fn create_image(&self) {
        let (status, body) = self
            .call(
                &self.admin,
                Method::POST,
                "/image/v2/images",
                Some(json!({"id": IMAGE, "name": "cirros", "visibility": "public", "disk_format": "raw", "container_format": "bare"})),
                "2.1",
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let response = self
            .client
            .put(format!("{}/image/v2/images/{IMAGE}/file", self.base))
            .header("x-auth-token", &self.admin)
            .header("content-type", "application/octet-stream")
            .body(vec![0u8; 1024])
            .send()
            .await
            .expect("upload");
        assert_eq!(response.status().as_u16(), 204);
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        for task in self.background {
            let _ = task.await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    pub async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        version: &str,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("x-auth-token", token)
            .header("openstack-api-version", format!("compute {version}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn compute(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        version: &str,
    ) -> Reply {
        self.call(
            token,
            method,
            &format!("/compute/v2.1{path}"),
            body,
            version,
        )
        .await
    }

    pub async fn token(&self, user: &str, password: &str, project: &str) -> String {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}},
        }});
        let response = self
            .client
            .post(format!("{}/identity/v3/auth/tokens", self.base))
            .json(&body)
            .send()
            .await
            .expect("token request");
        assert_eq!(response.status().as_u16(), 201, "token for {user}");
        response.headers()["x-subject-token"]
            .to_str()
            .expect("token")
            .to_string()
    }

    /// A project with one user holding `role` in it; returns (project id,
    /// user id, the user's token).
    pub async fn tenant(&self, project: &str, user: &str, role: &str) -> (String, String, String) {
        let (status, body) = self
            .call(
                &self.admin,
                Method::POST,
                "/identity/v3/projects",
                Some(json!({"project": {"name": project}})),
                "2.1",
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let project_id = body["project"]["id"]
            .as_str()
            .expect("project id")
            .to_string();
        let password = format!("{user}-password");
        let (status, body) = self
            .call(
                &self.admin,
                Method::POST,
                "/identity/v3/users",
                Some(json!({"user": {"name": user, "password": password}})),
                "2.1",
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let user_id = body["user"]["id"].as_str().expect("user id").to_string();
        let (_, roles) = self
            .call(
                &self.admin,
                Method::GET,
                &format!("/identity/v3/roles?name={role}"),
                None,
                "2.1",
            )
            .await;
        let role_id = roles["roles"][0]["id"].as_str().expect("role").to_string();
        let (status, _) = self
            .call(
                &self.admin,
                Method::PUT,
                &format!("/identity/v3/projects/{project_id}/users/{user_id}/roles/{role_id}"),
                None,
                "2.1",
            )
            .await;
        assert_eq!(status, 204);
        let token = self.token(user, &password, project).await;
        (project_id, user_id, token)
    }

    pub async fn wait_for_hosts(&self, hosts: usize) {
        for _ in 0..400 {
            let (_, body) = self
                .compute(&self.admin, Method::GET, "/os-hypervisors", None, "2.53")
                .await;
            if body["hypervisors"]
                .as_array()
                .is_some_and(|list| list.len() >= hosts)
            {
                return;
            }
            let db = novum_db::Db::connect(&self.database_url).await;
            if let Ok(db) = db
                && sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM compute_nodes")
                    .fetch_one(db.pool())
                    .await
                    .is_ok_and(|count| count >= hosts as i64)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the embedded agents never registered");
    }
}

impl Cloud {
    /// Creates server `name` of flavor `flavor` as the admin at
    /// microversion `version` (no network); returns its id once the API
    /// has accepted it (202).
    pub async fn create_server(&self, name: &str, flavor: &str, version: &str) -> String {
        let (status, body) = self
            .compute(
                &self.admin,
                Method::POST,
                "/servers",
                Some(server(name, flavor)),
                version,
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body["server"]["id"].as_str().expect("id").to_string()
    }

    /// Waits until server `id` shows `wanted` as its status (failing on
    /// ERROR); returns its view.
    pub async fn wait_status(&self, id: &str, wanted: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..400 {
            (_, last) = self
                .compute(
                    &self.admin,
                    Method::GET,
                    &format!("/servers/{id}"),
                    None,
                    "2.1",
                )
                .await;
            if last["server"]["status"] == wanted {
                return last["server"].clone();
            }
            assert_ne!(last["server"]["status"], "ERROR", "{last}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server {id} never reached {wanted}: {last}");
    }
}

/// A server-create body.
pub fn server(name: &str, flavor: &str) -> Value {
    json!({"server": {"name": name, "imageRef": IMAGE, "flavorRef": flavor, "networks": "none"}})
}
