//! A compute agent as its own process: the real `novum serve` with embedded
//! agents off, the real `novum-agent` binary on libvirt's test driver (a node
//! file of 6 vCPUs / 12 GiB, 50 GB disk) enrolled with the token generated
//! into the data directory. A server built over the real API goes ACTIVE on
//! the agent's host; the agent is killed (SIGKILL) and restarted without the
//! enrollment token: it reuses its stored credential, its instance survives,
//! stop/start work, a new server builds, and the hypervisor shows its sizes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use novum_tests::{Cloud, binary};
use reqwest::Method;
use serde_json::{Value, json};

const HOST: &str = "edge1";

/// A `novum-agent` process and where it logs.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    /// Starts `novum-agent` for `HOST` against `cloud`; with the enrollment
    /// token only when `token` is given.
    fn start(cloud: &Cloud, node: &Path, state_dir: &Path, token: Option<&str>) -> Self {
        let agent = binary("novum-agent");
        assert!(
            agent.exists(),
            "{} is missing: build the workspace (cargo test --workspace builds it)",
            agent.display()
        );
        let log = state_dir.with_extension("log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("agent log");
        let mut command = Command::new(agent);
        command
            .arg("--controller")
            .arg(&cloud.url)
            .args(["--host", HOST])
            .arg("--libvirt-uri")
            .arg(format!("test://{}", node.display()))
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--heartbeat-seconds", "1", "--poll-seconds", "5"])
            .args(["--reconcile-seconds", "1", "--disk-gb", "50"])
            .args(["--host-ip", "127.0.0.1", "--shutdown-timeout-seconds", "2"])
            .arg("--instances-path")
            .arg(state_dir.join("instances"))
            .env("RUST_LOG", "info")
            .env_remove("NOVUM_AGENT_TOKEN")
            .stdout(Stdio::from(file.try_clone().expect("log")))
            .stderr(Stdio::from(file));
        if let Some(token) = token {
            command.arg("--token").arg(token);
        }
        Self {
            child: command.spawn().expect("start novum-agent"),
            log,
        }
    }

    /// SIGKILL: no goodbye to the controller.
    fn kill(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log.clone()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "novum-agent log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// Polls `probe` until it answers `Some`, or fails after `seconds`.
pub(crate) fn wait_for<T>(what: &str, seconds: u64, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn hypervisor(cloud: &Cloud, token: &str) -> Option<Value> {
    let (status, body) = cloud
        .compute(token, Method::GET, "/os-hypervisors/detail", None, "2.53")
        .expect("hypervisors");
    assert_eq!(status, 200, "{body}");
    body["hypervisors"]
        .as_array()?
        .iter()
        .find(|hypervisor| hypervisor["service"]["host"] == HOST)
        .cloned()
}

pub(crate) fn server(cloud: &Cloud, token: &str, id: &str) -> Value {
    let (status, body) = cloud
        .compute(token, Method::GET, &format!("/servers/{id}"), None, "2.57")
        .expect("server");
    assert_eq!(status, 200, "{body}");
    body["server"].clone()
}

pub(crate) fn wait_status(cloud: &Cloud, token: &str, id: &str, wanted: &str) -> Value {
    wait_for(&format!("server {id} {wanted}"), 60, || {
        let server = server(cloud, token, id);
        assert_ne!(server["status"], "ERROR", "{server}");
        (server["status"] == wanted && server["OS-EXT-STS:task_state"].is_null()).then_some(server)
    })
}

pub(crate) fn create(cloud: &Cloud, token: &str, image: &str, name: &str) -> String {
    let body =
        json!({"server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}});
    let (status, body) = cloud
        .compute(token, Method::POST, "/servers", Some(body), "2.57")
        .expect("create");
    assert_eq!(status, 202, "{body}");
    body["server"]["id"].as_str().expect("id").to_string()
}

pub(crate) fn action(cloud: &Cloud, token: &str, id: &str, body: Value) {
    let (status, reply) = cloud
        .compute(
            token,
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(body),
            "2.57",
        )
        .expect("action");
    assert_eq!(status, 202, "{reply}");
}

#[test]
fn agent_as_its_own_process_survives_a_restart() {
    let _turn = novum_tests::shared_turn();
    let cloud = Cloud::start(
        "agent-process",
        "[agent]\nembedded = false\nheartbeat_seconds = 1\n",
    )
    .expect("novum serve");
    let enrollment = std::fs::read_to_string(cloud.data_dir.join("agent-enrollment-token"))
        .expect("the controller generates an enrollment token");
    let enrollment = enrollment.trim();
    let node = cloud.data_dir.join("edge-node.xml");
    std::fs::write(&node, novum_agent::driver::test_node_xml(6, 12_288)).expect("node file");
    let state_dir = cloud.data_dir.join("edge-state");
    let token = cloud.admin_token().expect("token");
    let image = cloud.create_image(&token, "edge-image").expect("image");

    // No compute host until the agent enrolls.
    assert!(hypervisor(&cloud, &token).is_none());
    let agent = Agent::start(&cloud, &node, &state_dir, Some(enrollment));
    let found = wait_for("the agent's hypervisor", 60, || hypervisor(&cloud, &token));
    assert_eq!(found["state"], "up", "{found}");
    let credential_file = state_dir.join(novum_agent::credentials::CREDENTIAL_FILE);
    let credential = std::fs::read_to_string(&credential_file).expect("stored credential");

    let first = create(&cloud, &token, &image, "edge-vm-1");
    let active = wait_status(&cloud, &token, &first, "ACTIVE");
    assert_eq!(active["OS-EXT-SRV-ATTR:host"], HOST, "{active}");
    assert_eq!(active["OS-EXT-STS:power_state"], 1, "{active}");

    // Kill the agent, restart it WITHOUT the enrollment token: only the stored
    // credential can let it in.
    let log = agent.kill();
    let agent = Agent::start(&cloud, &node, &state_dir, None);
    wait_for("the restarted agent to heartbeat", 30, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("using the stored agent credential")
            .next()
            .map(drop)
    });
    // The controller keeps working while the agent is away and back.
    let (status, body) = cloud
        .compute(&token, Method::GET, "/servers/detail", None, "2.57")
        .expect("list");
    assert_eq!(status, 200, "{body}");

    action(&cloud, &token, &first, json!({"os-stop": null}));
    let stopped = wait_status(&cloud, &token, &first, "SHUTOFF");
    assert_eq!(stopped["OS-EXT-STS:power_state"], 4, "{stopped}");
    action(&cloud, &token, &first, json!({"os-start": null}));
    let started = wait_status(&cloud, &token, &first, "ACTIVE");
    assert_eq!(started["OS-EXT-STS:power_state"], 1, "{started}");

    let second = create(&cloud, &token, &image, "edge-vm-2");
    let active = wait_status(&cloud, &token, &second, "ACTIVE");
    assert_eq!(active["OS-EXT-SRV-ATTR:host"], HOST, "{active}");

    // The stored credential was reused, not replaced; the agent registered once.
    assert_eq!(
        std::fs::read_to_string(&credential_file).expect("credential"),
        credential
    );
    assert_eq!(cloud.log().matches("compute agent registered").count(), 1);

    // The hypervisor shows the agent's sizes and the two m1.tiny servers.
    let found = wait_for("usage of two servers", 30, || {
        hypervisor(&cloud, &token).filter(|found| found["running_vms"] == 2)
    });
    assert_eq!(found["state"], "up", "{found}");
    assert_eq!(found["hypervisor_hostname"], HOST, "{found}");
    assert_eq!(
        (
            &found["vcpus"],
            &found["memory_mb"],
            &found["local_gb"],
            &found["vcpus_used"]
        ),
        (&json!(6), &json!(12_288), &json!(50), &json!(2)),
        "{found}"
    );
    drop(agent);
}
