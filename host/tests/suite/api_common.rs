//! Shared test support: the real router over a real SQLite or PostgreSQL
//! database, called in-process with `tower::ServiceExt::oneshot`.

#![allow(dead_code)]

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use novum_api::AppState;
use novum_config::Config;
use novum_db::{Db, testing};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The admin password the tests configure.
pub const ADMIN_PASSWORD: &str = "admin-secret";
/// The public URL the tests configure.
pub const PUBLIC_URL: &str = "http://novum.test:8774";

/// A temporary directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty directory.
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("novum-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A database to test against, named.
pub struct Backend {
    /// `sqlite` or `postgres`.
    pub name: &'static str,
    /// The database.
    pub db: Db,
    /// Its directory (SQLite file, data dir).
    pub dir: TempDir,
    /// PostgreSQL: the database's URL.
    pub postgres_url: Option<String>,
}

/// SQLite always; PostgreSQL when a server answers (else the reason is printed).
pub async fn backends() -> Vec<Backend> {
    let mut list = Vec::new();
    for snapshot in migrated().await {
        list.extend(snapshot.copy().await);
    }
    list
}

/// The migrated, empty databases, made once per test binary, which every
/// test's are copied from: migrating PostgreSQL takes about a second,
/// copying a tenth of that.
async fn migrated() -> &'static [Snapshot] {
    static MIGRATED: tokio::sync::OnceCell<Vec<Snapshot>> = tokio::sync::OnceCell::const_new();
    MIGRATED
        .get_or_init(|| async {
            let dir = TempDir::new();
            let db = testing::sqlite(&dir.0).await.expect("sqlite test db");
            let sqlite = Backend {
                name: "sqlite",
                db,
                dir,
                postgres_url: None,
            };
            let mut list = vec![Snapshot::take(sqlite).await];
            if let Some(url) = testing::postgres_url().await {
                match Db::open(&url).await {
                    Ok(db) => {
                        let postgres = Backend {
                            name: "postgres",
                            db,
                            dir: TempDir::new(),
                            postgres_url: Some(url),
                        };
                        list.push(Snapshot::take(postgres).await);
                    }
                    Err(error) => println!("skipping PostgreSQL: {error}"),
                }
            }
            list
        })
        .await
}

/// A database frozen to copy fresh ones from.
pub enum Snapshot {
    /// A SQLite database file's bytes.
    Sqlite(Vec<u8>),
    /// A PostgreSQL template database: the server's URL without a database
    /// name, and the template's name.
    Postgres { server: String, name: String },
}

impl Snapshot {
    /// Freezes `backend`'s database as it is now (closing every connection,
    /// which a PostgreSQL template must not have; for SQLite that folds the
    /// write-ahead log into the file).
    pub async fn take(backend: Backend) -> Self {
        backend.db.close().await;
        match backend.postgres_url {
            Some(url) => {
                let (server, name) = url.rsplit_once('/').expect("database name in URL");
                Self::Postgres {
                    server: server.to_string(),
                    name: name.to_string(),
                }
            }
            None => Self::Sqlite(
                std::fs::read(backend.dir.0.join("novum.db")).expect("read sqlite database"),
            ),
        }
    }

    /// A fresh database copied from this one, or None (with the reason
    /// printed) when PostgreSQL refuses.
    pub async fn copy(&self) -> Option<Backend> {
        match self {
            Self::Sqlite(bytes) => {
                let dir = TempDir::new();
                std::fs::write(dir.0.join("novum.db"), bytes).expect("write sqlite database");
                let db = testing::sqlite(&dir.0).await.expect("sqlite test db");
                Some(Backend {
                    name: "sqlite",
                    db,
                    dir,
                    postgres_url: None,
                })
            }
            Self::Postgres { server, name } => {
                let admin = Db::connect(&testing::postgres_admin_url()).await.ok()?;
                let copy = format!("novum_test_{}", uuid::Uuid::new_v4().simple());
                let created = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "CREATE DATABASE {copy} TEMPLATE {name}"
                )))
                .execute(admin.pool())
                .await;
                admin.close().await;
                if let Err(error) = created {
                    println!("skipping PostgreSQL: cannot copy database {name}: {error}");
                    return None;
                }
                let url = format!("{server}/{copy}");
                match Db::open(&url).await {
                    Ok(db) => Some(Backend {
                        name: "postgres",
                        db,
                        dir: TempDir::new(),
                        postgres_url: Some(url),
                    }),
                    Err(error) => {
                        println!("skipping PostgreSQL: {error}");
                        None
                    }
                }
            }
        }
    }
}

/// The test configuration for data directory `dir`.
pub fn config(dir: &std::path::Path) -> Config {
    let mut config = Config {
        data_dir: dir.join("data"),
        public_url: Some(PUBLIC_URL.to_string()),
        ..Config::default()
    };
    config.identity.admin_password = Some(ADMIN_PASSWORD.to_string());
    // One compile cache for the test binary (the default, under each test's
    // fresh data directory, would compile every plugin for every test).
    config.plugins.cache_dir =
        Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache"));
    // See `http_cloud::Cloud::start`: deadlines are the sandbox tests' subject.
    config.plugins.defaults.deadline_ms = 1_000;
    config
}

/// The app under test.
pub struct TestApp {
    /// The router.
    pub router: Router,
    /// Its state.
    pub state: AppState,
    /// The backend's name, for assertion messages.
    pub backend: &'static str,
}

/// A response: status, headers, JSON body (Null when empty or not JSON).
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as JSON.
    pub json: Value,
    /// Raw body.
    pub bytes: Vec<u8>,
}

impl Reply {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

impl TestApp {
    /// The app over `backend` with `config`.
    pub async fn new(backend: &Backend, config: Config) -> Self {
        let state = novum::server::build_state_with_db(config, backend.db.clone())
            .await
            .expect("build state");
        Self {
            router: novum_api::app(state.clone()),
            state,
            backend: backend.name,
        }
    }

    /// The app over `backend` with the test configuration.
    pub async fn start(backend: &Backend) -> Self {
        Self::new(backend, config(&backend.dir.0)).await
    }

    /// Sends a request with optional token, content type and body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::from(body)).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
            bytes,
        }
    }

    /// A JSON request (`body` Null: none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Reply {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(token) = token {
            headers.push(("x-auth-token", token));
        }
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).expect("json")
        };
        self.send(method, path, &headers, bytes).await
    }

    /// `POST /identity/v3/auth/tokens` with a password, scoped to `project` by name.
    /// Creates a public raw image with 1 KiB of data, for server creates;
    /// returns its id.
    pub async fn public_image(&self, admin: &str) -> String {
        let reply = self
            .call(
                Method::POST,
                "/image/v2/images",
                Some(admin),
                serde_json::json!({"name": "cirros", "visibility": "public",
                    "disk_format": "raw", "container_format": "bare"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
        let id = reply.json["id"].as_str().expect("image id").to_string();
        let reply = self
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
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.json);
        id
    }

    pub async fn password_auth(&self, user: &str, password: &str, project: Option<&str>) -> Reply {
        let mut auth = json!({"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": password,
        }}}});
        if let Some(project) = project {
            auth["scope"] = json!({"project": {"name": project, "domain": {"id": "default"}}});
        }
        self.call(
            Method::POST,
            "/identity/v3/auth/tokens",
            None,
            json!({ "auth": auth }),
        )
        .await
    }

    /// A project-scoped token, asserting success.
    pub async fn token(&self, user: &str, password: &str, project: &str) -> String {
        let reply = self.password_auth(user, password, Some(project)).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "[{}] auth {user}@{project}: {}",
            self.backend,
            reply.json
        );
        reply
            .header("x-subject-token")
            .expect("X-Subject-Token")
            .to_string()
    }

    /// The admin's token on the admin project.
    pub async fn admin_token(&self) -> String {
        self.token("admin", ADMIN_PASSWORD, "admin").await
    }

    /// Creates a project (admin), returning its id.
    pub async fn create_project(&self, admin: &str, name: &str) -> String {
        let reply = self
            .call(
                Method::POST,
                "/identity/v3/projects",
                Some(admin),
                json!({"project": {"name": name, "domain_id": "default"}}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "[{}] {}",
            self.backend,
            reply.json
        );
        reply.json["project"]["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    /// Creates a user with `password` (admin), returning its id.
    pub async fn create_user(&self, admin: &str, name: &str, password: &str) -> String {
        let reply = self
            .call(
                Method::POST,
                "/identity/v3/users",
                Some(admin),
                json!({"user": {"name": name, "password": password, "domain_id": "default"}}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "[{}] {}",
            self.backend,
            reply.json
        );
        reply.json["user"]["id"].as_str().expect("id").to_string()
    }

    /// The id of role `name`.
    pub async fn role_id(&self, admin: &str, name: &str) -> String {
        let reply = self
            .call(
                Method::GET,
                &format!("/identity/v3/roles?name={name}"),
                Some(admin),
                Value::Null,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        reply.json["roles"][0]["id"]
            .as_str()
            .expect("role")
            .to_string()
    }

    /// Grants role `role` (by name) to `user_id` on `project_id`.
    pub async fn grant(&self, admin: &str, project_id: &str, user_id: &str, role: &str) {
        let role_id = self.role_id(admin, role).await;
        let reply = self
            .call(
                Method::PUT,
                &format!("/identity/v3/projects/{project_id}/users/{user_id}/roles/{role_id}"),
                Some(admin),
                Value::Null,
            )
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.json);
    }

    /// A new project with a new user holding `role` there: (project id, user id, token).
    pub async fn project_user(
        &self,
        admin: &str,
        project: &str,
        user: &str,
        role: &str,
    ) -> (String, String, String) {
        let project_id = self.create_project(admin, project).await;
        let user_id = self.create_user(admin, user, "pw").await;
        self.grant(admin, &project_id, &user_id, role).await;
        let token = self.token(user, "pw", project).await;
        (project_id, user_id, token)
    }

    /// Adds `user_id` with `role` to an existing project and returns its token.
    pub async fn add_user(
        &self,
        admin: &str,
        project_id: &str,
        project: &str,
        user: &str,
        role: &str,
    ) -> String {
        let user_id = self.create_user(admin, user, "pw").await;
        self.grant(admin, project_id, &user_id, role).await;
        self.token(user, "pw", project).await
    }
}

/// Asserts Keystone's error shape with `status`.
pub fn assert_keystone_error(reply: &Reply, status: StatusCode) {
    assert_eq!(reply.status, status, "{}", reply.json);
    assert_eq!(
        reply.json["error"]["code"],
        json!(status.as_u16()),
        "{}",
        reply.json
    );
    assert!(reply.json["error"]["title"].is_string(), "{}", reply.json);
    assert!(reply.json["error"]["message"].is_string(), "{}", reply.json);
}
