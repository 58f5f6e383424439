//! The Compute API's admin and per-user resources, in-process over the real
//! router, real tokens and a real database (SQLite, and PostgreSQL when one
//! answers): os-hypervisors, os-services, os-aggregates,
//! os-availability-zone, os-server-groups, os-keypairs, and server create's
//! image, key pair and server group handling as the scheduler sees them.
//! Hosts enroll through the real agent RPC (the test plays the agent).
//!
//! Every test starts from a fresh [`Env`] (see [`on_each_backend`]): a copy
//! of a database holding four callers (made once per test binary, see
//! [`Callers`]) and two enrolled x86_64 hosts, `alpha` and `beta`; whatever
//! else it needs (aggregates, key pairs, servers…) it builds itself.

mod aggregates;
mod availability_zones;
mod boot_images;
mod hypervisors;
mod keypairs;
mod server_groups;
mod server_lists;
mod services;

use crate::api_common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use api_common::{Backend, Reply, Snapshot, TestApp, backends};
use axum::http::{Method, StatusCode};
use novum_config::Config;
use novum_wire::{CpuInfo, Inventory, RegisterRequest, SupportedInstance};
use serde_json::{Value, json};

const ENROLLMENT: &str = "enroll-me";

/// A user's token and ids.
#[derive(Clone)]
struct Caller {
    token: String,
    user_id: String,
    project_id: String,
}

impl Caller {
    /// `user`, authenticated with `password` on `project` (by name).
    async fn signed_in(app: &TestApp, user: &str, password: &str, project: &str) -> Self {
        let reply = app.password_auth(user, password, Some(project)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
        let id = |entity: &str| {
            reply.json["token"][entity]["id"]
                .as_str()
                .expect("id")
                .to_string()
        };
        Self {
            token: reply
                .header("x-subject-token")
                .expect("X-Subject-Token")
                .to_string(),
            user_id: id("user"),
            project_id: id("project"),
        }
    }
}

/// The app and its callers: the admin; `member` and `reader` in project
/// p-one; `other`, a member of p-two.
struct Env {
    app: TestApp,
    admin: Caller,
    member: Caller,
    reader: Caller,
    other: Caller,
}

/// The callers of one backend, made once per test binary and copied into
/// every test's database: users, projects and tokens cost Argon2 hashes and
/// a dozen requests a test would otherwise repeat.
struct Callers {
    /// The database holding them.
    database: Snapshot,
    /// The Fernet keys (file name, contents) that signed their tokens.
    keys: Vec<(String, Vec<u8>)>,
    admin: Caller,
    member: Caller,
    reader: Caller,
    other: Caller,
}

/// The configuration of every test on `backend`: no embedded agents (the
/// tests enroll hosts themselves), the native scheduler, and the Fernet keys
/// under the backend's directory.
fn config(backend: &Backend) -> Config {
    let mut config = api_common::config(&backend.dir.0);
    config.agent.embedded = false;
    config.agent.enrollment_token = Some(ENROLLMENT.to_string());
    config.scheduler.backend = novum_plugin_host::Backend::Native;
    config.identity.key_repository = Some(backend.dir.0.join("fernet-keys"));
    config
}

/// The callers on every backend, made on first use.
async fn callers() -> &'static [Callers] {
    static CALLERS: tokio::sync::OnceCell<Vec<Callers>> = tokio::sync::OnceCell::const_new();
    CALLERS
        .get_or_init(|| async {
            let mut list = Vec::new();
            for backend in backends().await {
                let config = config(&backend);
                let keys = config.identity.key_repository.clone().expect("keys");
                let app = TestApp::new(&backend, config).await;
                let admin =
                    Caller::signed_in(&app, "admin", api_common::ADMIN_PASSWORD, "admin").await;
                // A new user with `role` on a project, signed in there.
                let user_on = async |project_id: &str, project: &str, user: &str, role: &str| {
                    let user_id = app.create_user(&admin.token, user, "pw").await;
                    app.grant(&admin.token, project_id, &user_id, role).await;
                    Caller::signed_in(&app, user, "pw", project).await
                };
                let p_one = app.create_project(&admin.token, "p-one").await;
                let member = user_on(&p_one, "p-one", "alice", "member").await;
                let reader = user_on(&p_one, "p-one", "rita", "reader").await;
                let p_two = app.create_project(&admin.token, "p-two").await;
                let other = user_on(&p_two, "p-two", "bob", "member").await;
                drop(app);
                let keys = std::fs::read_dir(&keys)
                    .expect("key repository")
                    .map(|entry| {
                        let path = entry.expect("key file").path();
                        let name = path.file_name().expect("name").to_string_lossy();
                        (name.to_string(), std::fs::read(&path).expect("key"))
                    })
                    .collect();
                list.push(Callers {
                    database: Snapshot::take(backend).await,
                    keys,
                    admin,
                    member,
                    reader,
                    other,
                });
            }
            list
        })
        .await
}

/// Runs `test` on a fresh [`Env`] on every backend.
async fn on_each_backend(test: impl AsyncFn(&Env)) {
    for callers in callers().await {
        let Some(backend) = callers.database.copy().await else {
            continue;
        };
        println!("backend: {}", backend.name);
        let env = Env::start(&backend, callers).await;
        test(&env).await;
    }
}

impl Env {
    /// The app over `backend` (a copy of `callers`' database) with
    /// `callers`, and hosts `alpha` and `beta` enrolled.
    async fn start(backend: &Backend, callers: &Callers) -> Self {
        let config = config(backend);
        let keys = config.identity.key_repository.clone().expect("keys");
        std::fs::create_dir_all(&keys).expect("key repository");
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700))
            .expect("key repository mode");
        for (name, key) in &callers.keys {
            let path = keys.join(name);
            std::fs::write(&path, key).expect("key");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .expect("key mode");
        }
        let env = Self {
            app: TestApp::new(backend, config).await,
            admin: callers.admin.clone(),
            member: callers.member.clone(),
            reader: callers.reader.clone(),
            other: callers.other.clone(),
        };
        env.register("alpha", "x86_64").await;
        env.register("beta", "x86_64").await;
        env
    }

    /// The event types in the notification outbox, oldest first.
    async fn outbox_events(&self) -> Vec<String> {
        use sqlx::Row as _;
        sqlx::query("SELECT event_type FROM notification_outbox ORDER BY seq")
            .fetch_all(self.app.state.db.pool())
            .await
            .expect("outbox")
            .iter()
            .map(|row| row.try_get("event_type").expect("event type"))
            .collect()
    }

    /// A compute API call at microversion `version`.
    async fn compute(
        &self,
        caller: &Caller,
        method: Method,
        path: &str,
        version: &str,
        body: Value,
    ) -> Reply {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).expect("json")
        };
        let version = format!("compute {version}");
        self.app
            .send(
                method,
                &format!("/compute/v2.1/{path}"),
                &[
                    ("content-type", "application/json"),
                    ("x-auth-token", &caller.token),
                    ("openstack-api-version", &version),
                ],
                bytes,
            )
            .await
    }

    /// Enrolls `host` through the agent RPC, as an agent does.
    async fn register(&self, host: &str, arch: &str) {
        let request = RegisterRequest {
            host: host.to_string(),
            inventory: Inventory {
                uptime: Some(format!(
                    " 10:00:00 up 1 day,  2:03,  0 users,  load average: 0.00, 0.00, 0.00 ({host})"
                )),
                vcpus: 8,
                memory_mb: 16384,
                disk_gb: 100,
                cpu_info: CpuInfo {
                    arch: arch.into(),
                    ..CpuInfo::default()
                },
                hypervisor_type: "TEST".into(),
                hypervisor_version: 2_000_000,
                hypervisor_hostname: format!("{host}.example"),
                host_ip: Some("192.0.2.10".into()),
                supported_instances: vec![SupportedInstance {
                    arch: arch.into(),
                    hv_type: "test".into(),
                    vm_mode: "hvm".into(),
                }],
            },
            agent_version: "test".into(),
        };
        let reply = self
            .app
            .send(
                Method::POST,
                "/rpc/v1/agents/register",
                &[
                    ("content-type", "application/json"),
                    ("authorization", &format!("Bearer {ENROLLMENT}")),
                ],
                serde_json::to_vec(&request).expect("json"),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    }

    /// An active image owned by `caller` with `properties`.
    async fn image(&self, caller: &Caller, name: &str, properties: Value) -> String {
        let mut body = json!({"name": name, "disk_format": "raw", "container_format": "bare"});
        if let (Some(body), Some(properties)) = (body.as_object_mut(), properties.as_object()) {
            body.extend(properties.clone());
        }
        let reply = self
            .app
            .call(Method::POST, "/image/v2/images", Some(&caller.token), body)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
        let id = reply.json["id"].as_str().expect("image id").to_string();
        let reply = self
            .app
            .send(
                Method::PUT,
                &format!("/image/v2/images/{id}/file"),
                &[
                    ("content-type", "application/octet-stream"),
                    ("x-auth-token", &caller.token),
                ],
                vec![1u8; 512],
            )
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.json);
        id
    }

    async fn create_server(&self, caller: &Caller, server: Value, hints: Value) -> Reply {
        let mut body = json!({"server": server});
        if !hints.is_null() {
            body["os:scheduler_hints"] = hints;
        }
        self.compute(caller, Method::POST, "servers", "2.96", body)
            .await
    }

    /// Creates `server` for `caller` (asserting 202) and waits until the
    /// scheduler has placed (or failed) it.
    async fn boot(&self, caller: &Caller, server: Value, hints: Value) -> Value {
        let reply = self.create_server(caller, server, hints).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
        self.placed(reply.json["server"]["id"].as_str().expect("id"))
            .await
    }

    /// Waits until the scheduler has placed (or failed) server `id`.
    async fn placed(&self, id: &str) -> Value {
        for _ in 0..300 {
            let reply = self
                .compute(
                    &self.admin,
                    Method::GET,
                    &format!("servers/{id}"),
                    "2.96",
                    Value::Null,
                )
                .await;
            let server = reply.json["server"].clone();
            if server["OS-EXT-SRV-ATTR:host"].is_string() || server["status"] == "ERROR" {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server {id} was never placed");
    }

    /// Sets `caller`'s project quota to `quota_set` (admin), asserting 200.
    async fn set_quota(&self, caller: &Caller, quota_set: Value) {
        let reply = self
            .compute(
                &self.admin,
                Method::PUT,
                &format!("os-quota-sets/{}", caller.project_id),
                "2.1",
                json!({ "quota_set": quota_set }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    }
}

/// Asserts Nova's fault body (`{"<name>": {"code", "message"}}`).
fn assert_fault(reply: &Reply, status: StatusCode, name: &str) {
    assert_eq!(reply.status, status, "{}", reply.json);
    assert_eq!(
        reply.json[name]["code"],
        json!(status.as_u16()),
        "{}",
        reply.json
    );
    assert!(reply.json[name]["message"].is_string(), "{}", reply.json);
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .map(|object| object.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}
