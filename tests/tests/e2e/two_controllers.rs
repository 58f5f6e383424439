//! Two controllers on one PostgreSQL database, one killed mid-burst:
//!
//! - two `novum serve` processes with the same configuration but their
//!   listen port and host name (the data directory is shared, as the images,
//!   the Fernet keys and the enrollment token must be: shared storage in a
//!   real deployment), no embedded agents;
//! - four `novum-agent` processes on libvirt's test driver, each given both
//!   controllers (two list A first, two B first);
//! - a burst of creates sent alternately to A and B, and SIGKILL of A (the
//!   first started, so the notification dispatcher's holder) in its middle.
//!
//! Then, through B: every server the API accepted is ACTIVE; each holds
//! exactly one claim, on its host, and no host's usage differs from what its
//! instances hold; each server's `instance.create.end` is in the JSON-lines
//! sink exactly once (and no message is there twice); the agents heartbeat
//! to B.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use novum_tests::{ADMIN_PASSWORD, binary, binary_dir, free_port};
use reqwest::Method;
use serde_json::{Value, json};

use crate::notifications_e2e::{Api, eventually};
use crate::restart_e2e::{PLUGIN_DEADLINE, assert_node_usage, postgres_database, psql};

/// Servers created in the burst.
const BURST: usize = 30;
/// Creates accepted before controller A is killed.
const KILL_AFTER: usize = 12;
/// Compute hosts.
const AGENTS: usize = 4;

/// A `novum serve` process on the shared data directory.
struct Controller {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Controller {
    /// Starts controller `name` with `common` appended to its own lines
    /// (data directory, listen port, host name), and waits until it answers.
    fn start(name: &str, root: &Path, data_dir: &Path, common: &str) -> Self {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let plugin_cache = binary_dir().join("e2e-plugin-cache");
        let config = format!(
            "host = \"{name}\"\ndata_dir = {data_dir:?}\nlisten = \"127.0.0.1:{port}\"\nplugins.cache_dir = {plugin_cache:?}\n\n\
             [identity]\nadmin_password = \"{ADMIN_PASSWORD}\"\n\n{common}\n",
            data_dir = data_dir.display().to_string(),
            plugin_cache = plugin_cache.display().to_string(),
        );
        let config_path = root.join(format!("{name}.toml"));
        std::fs::write(&config_path, config).expect("config");
        let log = root.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log");
        let child = Command::new(binary("novum"))
            .arg("--config")
            .arg(&config_path)
            .arg("serve")
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(file.try_clone().expect("log")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start novum serve");
        let mut controller = Self { child, url, log };
        let client = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = controller.child.try_wait() {
                panic!("{name} exited with {status}:\n{}", controller.log());
            }
            if client
                .get(format!("{}/identity/v3", controller.url))
                .send()
                .is_ok_and(|answer| answer.status().is_success())
            {
                return controller;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not answer:\n{}",
                controller.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{} log:\n{}", self.log.display(), self.log());
        }
    }
}

/// A `novum-agent` process.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn start(host: &str, controllers: &str, root: &Path, enrollment: &str) -> Self {
        let state_dir = root.join(host);
        std::fs::create_dir_all(&state_dir).expect("agent state dir");
        let node = root.join(format!("{host}-node.xml"));
        std::fs::write(&node, novum_agent::driver::test_node_xml(16, 32_768)).expect("node");
        let log = root.join(format!("{host}.log"));
        let file = std::fs::File::create(&log).expect("agent log");
        let child = Command::new(binary("novum-agent"))
            .args(["--controller", controllers, "--host", host])
            .arg("--libvirt-uri")
            .arg(format!("test://{}", node.display()))
            .arg("--state-dir")
            .arg(&state_dir)
            .args(["--token", enrollment])
            .args(["--heartbeat-seconds", "1", "--poll-seconds", "5"])
            .args(["--reconcile-seconds", "1", "--disk-gb", "100"])
            .args(["--host-ip", "127.0.0.1", "--shutdown-timeout-seconds", "2"])
            .arg("--instances-path")
            .arg(state_dir.join("instances"))
            .env("RUST_LOG", "info")
            .env_remove("NOVUM_AGENT_TOKEN")
            .env_remove("NOVUM_CONTROLLER")
            .stdout(Stdio::from(file.try_clone().expect("log")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start novum-agent");
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{} log:\n{}", self.log.display(), self.log());
        }
    }
}

/// Removes the test's directory at the end, unless it failed.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The compute hosts `api` lists, with their state.
fn hypervisors(api: &Api) -> HashMap<String, String> {
    let (status, body) = api.compute(Method::GET, "/os-hypervisors/detail", None);
    assert_eq!(status, 200, "{body}");
    body["hypervisors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|hypervisor| {
            Some((
                hypervisor["service"]["host"].as_str()?.to_string(),
                hypervisor["state"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The compute services' last heartbeats (`updated_at`) and states, by host.
fn heartbeats(api: &Api) -> HashMap<String, (String, String)> {
    let (status, body) = api.compute(Method::GET, "/os-services?binary=nova-compute", None);
    assert_eq!(status, 200, "{body}");
    body["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|service| {
            Some((
                service["host"].as_str()?.to_string(),
                (
                    service["updated_at"].as_str()?.to_string(),
                    service["state"].as_str()?.to_string(),
                ),
            ))
        })
        .collect()
}

/// The messages of the JSON-lines sink.
fn jsonl(data_dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(data_dir.join("notifications.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// How many `instance.create.end` the sink holds per instance.
fn create_ends(messages: &[Value]) -> HashMap<String, usize> {
    let mut ends = HashMap::new();
    for message in messages {
        if message["event_type"] == "instance.create.end"
            && let Some(uuid) = message["payload"]["nova_object.data"]["uuid"].as_str()
        {
            *ends.entry(uuid.to_string()).or_default() += 1;
        }
    }
    ends
}

#[test]
fn two_controllers_one_killed_mid_burst_lose_and_double_nothing() {
    let _turn = novum_tests::shared_turn();
    let Some(database) = postgres_database() else {
        return;
    };
    let root =
        std::env::temp_dir().join(format!("novum-e2e-two-controllers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("scratch");
    let scratch = Scratch(root.clone());
    let data_dir = root.join("data");
    let common = format!(
        "{PLUGIN_DEADLINE}\n[database]\nurl = \"{database}\"\n\n[agent]\nembedded = false\nheartbeat_seconds = 1\n\n\
         [notifications]\npoll_interval_ms = 100\n"
    );
    let started = Instant::now();
    // A first: it makes the schema, the admin, the secrets; then B.
    let mut a = Controller::start("ctl-a", &root, &data_dir, &common);
    let b = Controller::start("ctl-b", &root, &data_dir, &common);
    println!("two controllers up in {:?}", started.elapsed());
    let enrollment = std::fs::read_to_string(data_dir.join("agent-enrollment-token"))
        .expect("enrollment token")
        .trim()
        .to_string();
    let agents: Vec<Agent> = (0..AGENTS)
        .map(|index| {
            let controllers = if index % 2 == 0 {
                format!("{},{}", a.url, b.url)
            } else {
                format!("{},{}", b.url, a.url)
            };
            Agent::start(&format!("twin-{index}"), &controllers, &root, &enrollment)
        })
        .collect();
    let api_a = Api::login_at(&a.url);
    eventually(60, "every agent's host is up", || {
        let found = hypervisors(&api_a);
        found.len() == AGENTS && found.values().all(|state| state == "up")
    });
    let image = api_a.image();
    api_a.unlimited_quota();

    // The burst: creates alternately to A and B, A killed in its middle.
    let began = Instant::now();
    let accepted: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    let refused: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    let urls = [a.url.clone(), b.url.clone()];
    let token = api_a.token.clone();
    std::thread::scope(|scope| {
        for worker in 0..3 {
            let (accepted, refused, urls, token, image) =
                (&accepted, &refused, &urls, &token, &image);
            scope.spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("client");
                for index in (worker..BURST).step_by(3) {
                    let url = &urls[index % 2];
                    let body = json!({"server": {"name": format!("twin-burst-{index}"), "imageRef": image, "flavorRef": "1", "networks": "none"}});
                    let sent = client
                        .post(format!("{url}/compute/v2.1/servers"))
                        .header("x-auth-token", token)
                        .header("openstack-api-version", "compute 2.79")
                        .json(&body)
                        .send();
                    match sent {
                        Ok(response) if response.status().as_u16() == 202 => {
                            let body: Value = response.json().expect("create body");
                            let id = body["server"]["id"].as_str().expect("id").to_string();
                            accepted.lock().expect("accepted").push((index, id));
                        }
                        Ok(response) => refused
                            .lock()
                            .expect("refused")
                            .push((index, format!("answered {}", response.status()))),
                        Err(error) => refused
                            .lock()
                            .expect("refused")
                            .push((index, error.to_string())),
                    }
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while accepted.lock().expect("accepted").len() < KILL_AFTER {
            assert!(
                Instant::now() < deadline,
                "the burst stalled before the kill"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        a.kill();
        println!(
            "SIGKILL of controller A after {} accepted creates, {:?} into the burst",
            accepted.lock().expect("accepted").len(),
            began.elapsed()
        );
    });
    let killed_at = Instant::now();
    let accepted = accepted.into_inner().expect("accepted");
    let refused = refused.into_inner().expect("refused");
    println!(
        "burst: {} accepted, {} not (sent to A after its death): {:?}",
        accepted.len(),
        refused.len(),
        refused.iter().map(|(index, _)| index).collect::<Vec<_>>()
    );
    for (index, why) in &refused {
        // Only creates sent to the dead controller may fail.
        assert_eq!(index % 2, 0, "create {index} sent to B failed: {why}");
    }

    // Through the survivor: every server settles.
    let api = Api::login_at(&b.url);
    let mut servers: Vec<Value> = Vec::new();
    eventually(60, "every server of the burst settles", || {
        let (status, body) = api.compute(Method::GET, "/servers/detail?all_tenants=1", None);
        assert_eq!(status, 200, "{body}");
        servers = body["servers"].as_array().cloned().unwrap_or_default();
        servers
            .iter()
            .all(|server| server["status"] != "BUILD" && server["OS-EXT-STS:task_state"].is_null())
    });
    println!(
        "{} servers settled {:?} after the kill",
        servers.len(),
        killed_at.elapsed()
    );
    let ids: HashSet<String> = servers
        .iter()
        .filter_map(|server| server["id"].as_str().map(str::to_string))
        .collect();
    for (index, id) in &accepted {
        assert!(
            ids.contains(id),
            "accepted create {index} ({id}) is missing"
        );
    }
    // A create A committed but could not answer before it died exists too:
    // it is built like the others.
    println!(
        "{} servers exist beyond the {} accepted (committed by A, answer lost)",
        servers.len() - accepted.len(),
        accepted.len()
    );
    let not_active: Vec<&Value> = servers
        .iter()
        .filter(|server| server["status"] != "ACTIVE")
        .collect();
    assert!(not_active.is_empty(), "not ACTIVE: {not_active:#?}");

    // Exactly one claim per server, on its host; hosts hold exactly those.
    let mut claims: HashMap<String, Vec<String>> = HashMap::new();
    for row in psql(
        &database,
        "SELECT a.instance_uuid || '|' || n.host FROM allocations a JOIN compute_nodes n ON n.uuid = a.node_uuid",
    )
    .expect("claims")
    {
        let (uuid, host) = row.split_once('|').expect("claim row");
        claims.entry(uuid.to_string()).or_default().push(host.to_string());
    }
    let mut per_host: HashMap<String, i64> = HashMap::new();
    for server in &servers {
        let id = server["id"].as_str().expect("id");
        let host = server["OS-EXT-SRV-ATTR:host"].as_str().expect("host");
        assert_eq!(
            claims.get(id),
            Some(&vec![host.to_string()]),
            "server {id} on {host}: claims {:?}",
            claims.get(id)
        );
        *per_host.entry(host.to_string()).or_default() += 1;
    }
    assert!(
        claims.keys().all(|uuid| ids.contains(uuid)),
        "claims of servers that do not exist: {claims:?}"
    );
    assert_node_usage(&database, &per_host);
    println!("servers per host: {per_host:?}");

    // Each server's instance.create.end once in the sink; no message twice.
    let mut messages = Vec::new();
    eventually(
        45,
        "every server's instance.create.end is in the sink",
        || {
            messages = jsonl(&data_dir);
            let ends = create_ends(&messages);
            ids.iter().all(|id| ends.contains_key(id))
        },
    );
    let ends = create_ends(&messages);
    for id in &ids {
        assert_eq!(ends.get(id), Some(&1), "instance.create.end of {id}");
    }
    let mut seen = HashSet::new();
    let twice: Vec<&str> = messages
        .iter()
        .filter_map(|message| message["message_id"].as_str())
        .filter(|id| !seen.insert(*id))
        .collect();
    assert!(twice.is_empty(), "messages in the sink twice: {twice:?}");
    println!(
        "{} messages in the sink, each once; {} instance.create.end",
        messages.len(),
        ends.len()
    );

    // The agents heartbeat to B.
    let before = heartbeats(&api);
    std::thread::sleep(Duration::from_secs(3));
    let after = heartbeats(&api);
    assert_eq!(after.len(), AGENTS, "{after:?}");
    for (host, (updated, state)) in &after {
        assert_eq!(state, "up", "{host}: {after:?}");
        assert_ne!(
            before.get(host).map(|(updated, _)| updated),
            Some(updated),
            "{host} did not heartbeat in 3 s"
        );
    }

    let b_log = b.log();
    let adopted = b_log.matches("adopting a scheduling step").count();
    let failovers: usize = agents
        .iter()
        .map(|agent| {
            agent
                .log()
                .matches("now talking to this controller")
                .count()
        })
        .sum();
    let skipped = b_log.matches("already in the sink").count();
    println!(
        "B adopted {adopted} scheduling steps of A; agents failed over {failovers} times; \
         B skipped {skipped} sink lines A had written; whole test {:?}",
        started.elapsed()
    );
    drop(agents);
    drop(b);
    drop(a);
    drop(scratch);
}
