//! The consoles of a REAL guest: one server booted through the controller's
//! API on `qemu:///system` (TCG) by a real agent with the serial console
//! enabled; its console log read through `os-getConsoleOutput` shows the
//! test guest's `NOVUM-READY`, then the serial console's websocket, through
//! the controller's proxy, runs `echo $((6*7))` in the guest's shell and
//! reads `42`. Needs libvirtd with QEMU and the test guest
//! (`tests/guest/build.sh`, cached in `target/test-guest`).
//!
//! Until the agent downloads images itself, the test's driver puts the test
//! guest's bootable `disk.qcow2` where the domain's root disk is expected
//! before the real libvirt driver spawns it; everything else is the real
//! path (controller, task queue, agent, libvirt, virtlogd, QEMU).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use novum_agent::driver::{LibvirtDriver, LibvirtOptions, SerialConsoleOptions, VirtType};
use novum_agent::{AgentConfig, run_agent_with_driver};
use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::http_cloud::{Cloud, ENROLLMENT_TOKEN};

const URI: &str = "qemu:///system";
const BOOT_WAIT: Duration = Duration::from_secs(90);

fn test_guest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-guest")
}

/// Destroys and undefines the test's domain and removes its files, even
/// when the test fails.
struct DomainGuard {
    instance: Option<String>,
    dir: PathBuf,
}

impl Drop for DomainGuard {
    fn drop(&mut self) {
        if let Some(uuid) = &self.instance {
            let name = format!("instance-{uuid}");
            for command in ["destroy", "undefine"] {
                let _ = std::process::Command::new("virsh")
                    .args(["-c", URI, command, &name])
                    .output();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_guest_console_output_and_serial_console() {
    let guest = test_guest();
    assert!(
        guest.join("disk.qcow2").exists(),
        "the test guest is missing: run tests/guest/build.sh (bootstrap does)"
    );
    let cloud = Cloud::start(|config| {
        config.agent.embedded = false;
    })
    .await;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("real-console-{}", Uuid::new_v4().simple()));
    let mut guard = DomainGuard {
        instance: None,
        dir: dir.clone(),
    };
    std::fs::create_dir_all(&dir).expect("instances dir");
    // libvirt's QEMU user walks into the instance directory.
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let options = LibvirtOptions {
        instances_path: dir.display().to_string(),
        disk_gb: Some(100),
        serial_console: Some(SerialConsoleOptions::default()),
        virt_type: VirtType::Qemu,
        ..LibvirtOptions::default()
    };
    let libvirt = tokio::task::spawn_blocking(move || LibvirtDriver::open(URI, options))
        .await
        .expect("join")
        .expect("qemu:///system opens (is libvirtd running?)");
    let driver = Arc::new(libvirt);
    let (stop_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut agent_config = AgentConfig::new(cloud.base.clone(), "real-console-1");
    agent_config.libvirt_uri = URI.to_string();
    agent_config.enrollment_token = Some(ENROLLMENT_TOKEN.to_string());
    agent_config.poll_wait = Duration::from_secs(5);
    agent_config.shutdown_grace = Duration::from_secs(20);
    let agent = tokio::spawn(run_agent_with_driver(agent_config, driver, async {
        let _ = agent_stopped.await;
    }));
    cloud.wait_for_hosts(1).await;

    // The test guest's disk image, for QEMU under TCG (KVM fails here).
    let (status, body) = cloud
        .call(
            &cloud.admin,
            Method::POST,
            "/image/v2/images",
            Some(
                json!({"name": "novum-test-guest", "visibility": "public", "disk_format": "qcow2",
                "container_format": "bare", "hypervisor_type": "qemu", "architecture": "x86_64"}),
            ),
            "2.1",
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let image = body["id"].as_str().expect("image id").to_string();
    let response = cloud
        .client
        .put(format!("{}/image/v2/images/{image}/file", cloud.base))
        .header("x-auth-token", &cloud.admin)
        .header("content-type", "application/octet-stream")
        .body(std::fs::read(guest.join("disk.qcow2")).expect("disk"))
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status().as_u16(), 204);
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::POST,
            "/flavors",
            Some(json!({"flavor": {"name": "real.console", "vcpus": 1, "ram": 192, "disk": 1}})),
            "2.61",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let flavor = body["flavor"]["id"].as_str().expect("flavor").to_string();
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::POST,
            "/servers",
            Some(json!({"server": {"name": "real-console", "imageRef": image, "flavorRef": flavor, "networks": "none"}})),
            "2.37",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    guard.instance = Some(id.clone());

    // The console log, through the API, until the guest is ready.
    let deadline = tokio::time::Instant::now() + BOOT_WAIT;
    let output = loop {
        let (status, body) = cloud
            .compute(
                &cloud.admin,
                Method::POST,
                &format!("/servers/{id}/action"),
                Some(json!({"os-getConsoleOutput": {"length": 50}})),
                "2.1",
            )
            .await;
        let output = body["output"].as_str().unwrap_or_default().to_string();
        if status == 200 && output.contains("NOVUM-READY") {
            break output;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the guest never printed NOVUM-READY: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(output.contains("NOVUM-BOOTED"), "{output}");
    assert!(output.split('\n').count() <= 50, "50 lines asked: {output}");

    // The serial console through the controller's proxy.
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::POST,
            &format!("/servers/{id}/remote-consoles"),
            Some(json!({"remote_console": {"protocol": "serial", "type": "serial"}})),
            "2.6",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["remote_console"]["url"]
        .as_str()
        .and_then(|url| url.split_once("?token="))
        .map(|(_, token)| token.to_string())
        .expect("console url");
    let url = format!(
        "{}/serial-console?token={token}",
        cloud.base.replacen("http", "ws", 1)
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket");
    socket
        .send(Message::Binary(b"echo $((6*7))\n".to_vec().into()))
        .await
        .expect("send");
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // The shell echoes the command line ("6*7"); the answer is a line "42".
    while !seen.lines().any(|line| line.trim() == "42") {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Binary(bytes)))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            Ok(Some(Ok(Message::Text(text)))) => seen.push_str(text.as_str()),
            Ok(Some(Ok(_))) => {}
            other => panic!("the shell never answered 42: {other:?}; seen {seen:?}"),
        }
    }
    let _ = socket.close(None).await;

    // Delete: the real domain goes.
    let (status, _) = cloud
        .compute(
            &cloud.admin,
            Method::DELETE,
            &format!("/servers/{id}"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 204);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let listed = std::process::Command::new("virsh")
            .args(["-c", URI, "list", "--all", "--name"])
            .output()
            .expect("virsh");
        if !String::from_utf8_lossy(&listed.stdout).contains(&id) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the domain stayed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop_agent.send(());
    let _ = agent.await;
    cloud.stop().await;
    drop(guard);
}
