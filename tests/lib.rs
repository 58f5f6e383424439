//! Support for novum's end-to-end tests: start the real `novum` binary on a
//! free port with a private data directory, wait until it answers, and reach
//! it over real HTTP (and with the real `openstack` CLI).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod fleet;

/// The admin password every test cloud is started with.
pub const ADMIN_PASSWORD: &str = "novum-test-admin";

/// The password of every user [`Cloud::project_member`] makes.
pub const MEMBER_PASSWORD: &str = "novum-test-member";

/// A user holding `member` in a project of its own
/// ([`Cloud::project_member`]).
#[derive(Clone, Debug)]
pub struct Member {
    /// The project's name.
    pub project: String,
    /// The project's id.
    pub project_id: String,
    /// The user's name.
    pub user: String,
    /// A token scoped to the project.
    pub token: String,
}

/// The directory holding the workspace's built binaries: `NOVUM_BIN_DIR`, else
/// the `target/debug` these tests were built into.
pub fn binary_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NOVUM_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/<test-exe> → target/debug
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Path of a workspace binary (`novum`, `novum-agent`) in [`binary_dir`].
pub fn binary(name: &str) -> PathBuf {
    binary_dir().join(name)
}

/// The component of test plugin crate `name` (e.g. `spinning-hook`) built
/// by `host/plugin-host/build.rs` from this checkout: `<target>/wasm-<hash>/wasm32-wasip2/
/// plugin/<name>.wasm`, picked among the checkouts sharing the target
/// directory by its dependency file, which names this checkout's sources.
pub fn test_plugin(name: &str) -> Option<PathBuf> {
    let file = name.replace('-', "_");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let sources = workspace.join("plugins").display().to_string();
    let target = binary_dir().parent()?.to_path_buf();
    std::fs::read_dir(&target)
        .ok()?
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("wasm-"))
        .map(|entry| entry.path().join("wasm32-wasip2/plugin"))
        .find(|dir| {
            dir.join(format!("{file}.wasm")).exists()
                && std::fs::read_to_string(dir.join(format!("{file}.d")))
                    .is_ok_and(|deps| deps.contains(&sources))
        })
        .map(|dir| dir.join(format!("{file}.wasm")))
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or(0)
}

/// A running `novum serve`.
pub struct Cloud {
    child: Child,
    /// The base URL, e.g. `http://127.0.0.1:PORT`.
    pub url: String,
    /// The data directory (a temp dir removed on drop).
    pub data_dir: PathBuf,
    /// The configuration file it runs with.
    pub config_path: PathBuf,
    log_path: PathBuf,
}

impl Cloud {
    /// Starts `novum serve` with `extra_config` appended to a config that sets
    /// a free port, a fresh data directory and the admin password.
    pub fn start(name: &str, extra_config: &str) -> anyhow::Result<Self> {
        Self::start_on(name, "127.0.0.1", extra_config)
    }

    /// [`Cloud::start`] listening on `listen_ip` instead of loopback (a
    /// fleet's bridge address, which its namespaced hosts reach).
    pub fn start_on(name: &str, listen_ip: &str, extra_config: &str) -> anyhow::Result<Self> {
        let data_dir =
            std::env::temp_dir().join(format!("novum-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir)?;
        Self::start_in_on(data_dir, listen_ip, extra_config)
    }

    /// Starts `novum serve` on an existing data directory (a restart).
    pub fn start_in(data_dir: PathBuf, extra_config: &str) -> anyhow::Result<Self> {
        Self::start_in_on(data_dir, "127.0.0.1", extra_config)
    }

    /// [`Cloud::start_in`] listening on `listen_ip`.
    pub fn start_in_on(
        data_dir: PathBuf,
        listen_ip: &str,
        extra_config: &str,
    ) -> anyhow::Result<Self> {
        let port = free_port();
        let url = format!("http://{listen_ip}:{port}");
        let config_path = data_dir.join("novum.toml");
        // One compiled-plugin cache for every test cloud (a debug controller
        // takes tens of seconds to compile the shipped plugins; each cloud
        // doing it again made starts outlast their timeouts). A dotted key,
        // so tests may still add `[plugins.NAME]` tables.
        let plugin_cache = binary_dir().join("e2e-plugin-cache");
        let config = format!(
            "data_dir = {data_dir:?}\nlisten = \"{listen_ip}:{port}\"\nplugins.cache_dir = {plugin_cache:?}\n\n[identity]\nadmin_password = \"{ADMIN_PASSWORD}\"\n\n{extra_config}\n",
            data_dir = data_dir.display().to_string(),
            plugin_cache = plugin_cache.display().to_string(),
        );
        std::fs::write(&config_path, config)?;
        let log_path = data_dir.join("novum.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(binary("novum"))
            .arg("--config")
            .arg(&config_path)
            .arg("serve")
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()?;
        let mut cloud = Self {
            child,
            url,
            data_dir,
            config_path,
            log_path,
        };
        cloud.wait_ready(Duration::from_secs(120))?;
        Ok(cloud)
    }

    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let client = reqwest::blocking::Client::new();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "novum exited with {status} before answering; log:\n{}",
                    self.log()
                );
            }
            if client
                .get(format!("{}/identity/v3", self.url))
                .send()
                .map(|r| r.status().is_success())
                .unwrap_or(false)
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        anyhow::bail!(
            "novum did not answer within {timeout:?}; log:\n{}",
            self.log()
        )
    }

    /// The controller's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The controller's resident memory now, in KiB (`VmRSS` of
    /// `/proc/<pid>/status`); `None` where that cannot be read.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib_of(self.pid())
    }

    /// What the controller logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Kills the controller (SIGKILL: no graceful shutdown), keeping the data directory.
    pub fn kill(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let data_dir = self.data_dir.clone();
        std::mem::forget(self);
        data_dir
    }

    /// Stops the controller with SIGTERM (a graceful shutdown) and waits up to
    /// `timeout` for it to exit, successfully; returns the data directory
    /// (kept, for a restart) and how long the exit took.
    pub fn terminate(mut self, timeout: Duration) -> anyhow::Result<(PathBuf, Duration)> {
        let began = Instant::now();
        let signalled = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        anyhow::ensure!(signalled.success(), "kill -TERM failed: {signalled}");
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if began.elapsed() > timeout {
                anyhow::bail!(
                    "novum did not exit within {timeout:?} of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = began.elapsed();
        anyhow::ensure!(
            status.success(),
            "novum exited with {status} after SIGTERM; log:\n{}",
            self.log()
        );
        let data_dir = self.data_dir.clone();
        std::mem::forget(self);
        Ok((data_dir, elapsed))
    }

    /// A project-scoped token of the admin user (Keystone password auth).
    pub fn admin_token(&self) -> anyhow::Result<String> {
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"id": "default"}, "password": ADMIN_PASSWORD}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }});
        let response = reqwest::blocking::Client::new()
            .post(format!("{}/identity/v3/auth/tokens", self.url))
            .json(&body)
            .send()?;
        anyhow::ensure!(
            response.status().as_u16() == 201,
            "token request answered {}",
            response.status()
        );
        Ok(response
            .headers()
            .get("x-subject-token")
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| anyhow::anyhow!("no X-Subject-Token"))?
            .to_string())
    }

    /// Creates and uploads a small public raw image named `name`; returns its id.
    pub fn create_image(&self, token: &str, name: &str) -> anyhow::Result<String> {
        self.create_image_with(token, name, serde_json::json!({}))
    }

    /// [`Cloud::create_image`] with the extra image properties in `properties`
    /// (a JSON object of strings).
    pub fn create_image_with(
        &self,
        token: &str,
        name: &str,
        properties: serde_json::Value,
    ) -> anyhow::Result<String> {
        let client = reqwest::blocking::Client::new();
        let mut body = serde_json::json!({"name": name, "visibility": "public", "disk_format": "raw", "container_format": "bare"});
        if let (Some(body), Some(properties)) = (body.as_object_mut(), properties.as_object()) {
            body.extend(properties.clone());
        }
        let created: serde_json::Value = client
            .post(format!("{}/image/v2/images", self.url))
            .header("x-auth-token", token)
            .json(&body)
            .send()?
            .error_for_status()?
            .json()?;
        let id = created["id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no image id in {created}"))?
            .to_string();
        client
            .put(format!("{}/image/v2/images/{id}/file", self.url))
            .header("x-auth-token", token)
            .header("content-type", "application/octet-stream")
            .body(vec![0u8; 1024])
            .send()?
            .error_for_status()?;
        Ok(id)
    }

    /// Calls the compute API (`/compute/v2.1<path>`) at `microversion`;
    /// returns the status and the JSON body (Null when empty).
    pub fn compute(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        microversion: &str,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let mut request = reqwest::blocking::Client::new()
            .request(method, format!("{}/compute/v2.1{path}", self.url))
            .header("x-auth-token", token)
            .header("openstack-api-version", format!("compute {microversion}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send()?;
        let status = response.status().as_u16();
        let text = response.text()?;
        Ok((status, serde_json::from_str(&text).unwrap_or_default()))
    }

    /// Sends `body` to `path` (from the root, e.g. `/novum/v1/…`) with
    /// `token`; the JSON answer with its headers, or an error naming the
    /// status.
    pub fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<(reqwest::header::HeaderMap, serde_json::Value)> {
        let (status, headers, body) = self.request(token, method.clone(), path, body)?;
        anyhow::ensure!(
            (200..300).contains(&status),
            "{method} {path} answered {status}: {body}"
        );
        Ok((headers, body))
    }

    /// Sends `body` to `path` with `token` whatever the answer: its status,
    /// headers and JSON body (Null when empty).
    pub fn request(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<(u16, reqwest::header::HeaderMap, serde_json::Value)> {
        let mut request = reqwest::blocking::Client::new()
            .request(method, format!("{}{path}", self.url))
            .header("x-auth-token", token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send()?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text()?;
        Ok((
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        ))
    }

    /// A new project `project` with a new user `user` holding `member`
    /// there (made through the identity API as the admin), with its token.
    pub fn project_member(&self, admin: &str, project: &str, user: &str) -> anyhow::Result<Member> {
        use reqwest::Method;
        use serde_json::json;
        let (_, created) = self.call(
            admin,
            Method::POST,
            "/identity/v3/projects",
            Some(json!({"project": {"name": project, "domain_id": "default"}})),
        )?;
        let project_id = created["project"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (_, created) = self.call(
            admin,
            Method::POST,
            "/identity/v3/users",
            Some(json!({"user": {"name": user, "domain_id": "default",
                "password": MEMBER_PASSWORD, "default_project_id": project_id}})),
        )?;
        let user_id = created["user"]["id"].as_str().unwrap_or_default();
        let (_, roles) = self.call(admin, Method::GET, "/identity/v3/roles?name=member", None)?;
        let role_id = roles["roles"][0]["id"].as_str().unwrap_or_default();
        self.call(
            admin,
            Method::PUT,
            &format!("/identity/v3/projects/{project_id}/users/{user_id}/roles/{role_id}"),
            None,
        )?;
        let (headers, _) = self.call(
            "",
            Method::POST,
            "/identity/v3/auth/tokens",
            Some(json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "id": user_id, "password": MEMBER_PASSWORD}}},
                "scope": {"project": {"id": project_id}},
            }})),
        )?;
        let token = headers
            .get("x-subject-token")
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| anyhow::anyhow!("no X-Subject-Token for {user}"))?
            .to_string();
        Ok(Member {
            project: project.to_string(),
            project_id,
            user: user.to_string(),
            token,
        })
    }

    /// Environment for the `openstack` CLI against this cloud, as the admin.
    pub fn cli_env(&self) -> Vec<(&'static str, String)> {
        self.cli_env_as("admin", ADMIN_PASSWORD, "admin")
    }

    /// Environment for the `openstack` CLI (and `novum`'s client commands)
    /// as `member`.
    pub fn member_env(&self, member: &Member) -> Vec<(&'static str, String)> {
        self.cli_env_as(&member.user, MEMBER_PASSWORD, &member.project)
    }

    fn cli_env_as(&self, user: &str, password: &str, project: &str) -> Vec<(&'static str, String)> {
        vec![
            ("OS_AUTH_URL", format!("{}/identity/v3", self.url)),
            ("OS_USERNAME", user.to_string()),
            ("OS_PASSWORD", password.to_string()),
            ("OS_PROJECT_NAME", project.to_string()),
            ("OS_USER_DOMAIN_NAME", "Default".to_string()),
            ("OS_PROJECT_DOMAIN_NAME", "Default".to_string()),
            ("OS_IDENTITY_API_VERSION", "3".to_string()),
            ("OS_REGION_NAME", "RegionOne".to_string()),
        ]
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        } else {
            eprintln!("novum log ({}):\n{}", self.log_path.display(), self.log());
        }
    }
}

/// The `openstack` CLI installed by tests/bootstrap.sh (or `NOVUM_OPENSTACK_CLI`):
/// `openstack-cli/bin/openstack` in the target directory the tests were built
/// in (which `CARGO_TARGET_DIR` may move), else in the workspace's `target/`.
pub fn openstack_cli() -> Option<PathBuf> {
    installed_tool("NOVUM_OPENSTACK_CLI", "openstack-cli/bin/openstack")
}

/// `schemathesis` as tests/bootstrap.sh installs it (`target/schemathesis`,
/// a venv of its own), or `NOVUM_SCHEMATHESIS`.
pub fn schemathesis() -> Option<PathBuf> {
    installed_tool("NOVUM_SCHEMATHESIS", "schemathesis/bin/schemathesis")
}

/// A tool tests/bootstrap.sh installs under `target/`: the path in the
/// environment variable `override_var`, else `relative` under the
/// workspace's `target/` or the target directory the tests were built in.
fn installed_tool(override_var: &str, relative: &str) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(override_var) {
        return Some(PathBuf::from(path));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .to_path_buf();
    // The workspace's target/, or the target directory the tests were built
    // in (CARGO_TARGET_DIR may point elsewhere).
    let built_in = binary_dir().parent().map(Path::to_path_buf);
    [Some(workspace.join("target")), built_in]
        .into_iter()
        .flatten()
        .map(|target| target.join(relative))
        .find(|candidate| candidate.exists())
}

/// Runs `openstack ARGS` against `cloud` as the admin; returns stdout or an
/// error with stderr.
pub fn openstack(cloud: &Cloud, args: &[&str]) -> anyhow::Result<String> {
    openstack_with(cloud.cli_env(), args)
}

/// Runs `openstack ARGS` with the `OS_*` environment `env` (see
/// [`Cloud::member_env`]); returns stdout or an error with stderr.
pub fn openstack_with(env: Vec<(&'static str, String)>, args: &[&str]) -> anyhow::Result<String> {
    let cli = openstack_cli()
        .ok_or_else(|| anyhow::anyhow!("the openstack CLI is missing: run tests/bootstrap.sh"))?;
    let output = Command::new(cli).args(args).envs(env).output()?;
    if !output.status.success() {
        anyhow::bail!(
            "openstack {} failed ({}):\n{}\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs the `novum` binary's client commands (`novum plugin list`, `novum
/// decision show …`) with the `OS_*` environment `env`; returns stdout or an
/// error with stderr.
pub fn novum_cli(env: Vec<(&'static str, String)>, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(binary("novum"))
        .args(args)
        .envs(env)
        .output()?;
    if !output.status.success() {
        anyhow::bail!(
            "novum {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `openstack ARGS -f json` as the admin and parses the answer.
pub fn openstack_json(cloud: &Cloud, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    openstack_json_with(cloud.cli_env(), args)
}

/// Runs `openstack ARGS -f json` with the `OS_*` environment `env` and
/// parses the answer.
pub fn openstack_json_with(
    env: Vec<(&'static str, String)>,
    args: &[&str],
) -> anyhow::Result<serde_json::Value> {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-f", "json"]);
    let text = openstack_with(env, &all)?;
    serde_json::from_str(&text).map_err(|error| {
        anyhow::anyhow!(
            "openstack {} printed non-JSON ({error}): {text}",
            args.join(" ")
        )
    })
}

/// Who may run beside whom in the e2e binary. Most tests share the machine
/// (cargo runs two at a time on two cores), but a test that saturates every
/// core on purpose (a flood of argon2 logins, the fuzzer) starves the
/// timeouts of whatever runs beside it: it takes an [`exclusive_turn`] and
/// runs alone; every other test takes a [`shared_turn`]. A waiting exclusive
/// test goes before shared tests that arrive after it.
struct TurnGate {
    state: std::sync::Mutex<TurnState>,
    changed: std::sync::Condvar,
}

#[derive(Default)]
struct TurnState {
    shared: usize,
    exclusive: bool,
    exclusive_waiting: usize,
}

static TURNS: TurnGate = TurnGate {
    state: std::sync::Mutex::new(TurnState {
        shared: 0,
        exclusive: false,
        exclusive_waiting: 0,
    }),
    changed: std::sync::Condvar::new(),
};

impl TurnGate {
    fn wait_until(&self, mut ready: impl FnMut(&mut TurnState) -> bool) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        while !ready(&mut state) {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(|poison| poison.into_inner());
        }
    }

    fn update(&self, change: impl FnOnce(&mut TurnState)) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        change(&mut state);
        self.changed.notify_all();
    }
}

/// A test's turn to run beside other shared tests (held until dropped).
pub struct SharedTurn(());

/// A test's turn to run alone (held until dropped).
pub struct ExclusiveTurn(());

/// Waits for a turn to run beside the other ordinary tests.
pub fn shared_turn() -> SharedTurn {
    TURNS.wait_until(|state| {
        let free = !state.exclusive && state.exclusive_waiting == 0;
        if free {
            state.shared += 1;
        }
        free
    });
    SharedTurn(())
}

/// Waits until no other test runs, then runs alone.
pub fn exclusive_turn() -> ExclusiveTurn {
    TURNS.update(|state| state.exclusive_waiting += 1);
    TURNS.wait_until(|state| {
        let free = !state.exclusive && state.shared == 0;
        if free {
            state.exclusive_waiting -= 1;
            state.exclusive = true;
        }
        free
    });
    ExclusiveTurn(())
}

impl Drop for SharedTurn {
    fn drop(&mut self) {
        TURNS.update(|state| state.shared -= 1);
    }
}

impl Drop for ExclusiveTurn {
    fn drop(&mut self) {
        TURNS.update(|state| state.exclusive = false);
    }
}

/// The resident memory of process `pid` now, in KiB (`VmRSS` of
/// `/proc/<pid>/status`); `None` where that cannot be read.
pub fn rss_kib_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
