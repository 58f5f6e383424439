//! One real guest through the whole stack: the controller with an embedded
//! agent on `qemu:///system` (QEMU TCG), the project's test guest uploaded
//! through the Image API as a qcow2 image, a server booted through the
//! Compute API. The agent downloads the image from the controller with its
//! own credential, verifies it, gives the guest a qcow2 overlay; the guest
//! prints NOVUM-BOOTED on its serial console (kept in `console.log`); when
//! it powers itself off the server shows SHUTOFF; deleting the server
//! leaves no domain and no file.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use virt::connect::Connect;
use virt::domain::Domain;

use crate::http_cloud::Cloud;

const URI: &str = "qemu:///system";
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// The test guest's qcow2 disk, built (or found cached) by `tests/guest/build.sh`.
fn test_guest_disk() -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = root.join("target/test-guest");
    let status = Command::new("bash")
        .arg(root.join("tests/guest/build.sh"))
        .arg(&out)
        .status()
        .expect("running tests/guest/build.sh");
    assert!(status.success(), "building the test guest failed");
    std::fs::read(out.join("disk.qcow2")).expect("disk.qcow2")
}

/// Destroys the server's domain if the test leaves it behind.
struct DomainGuard(Option<String>);

impl Drop for DomainGuard {
    fn drop(&mut self) {
        let Some(uuid) = &self.0 else { return };
        if let Ok(mut conn) = Connect::open(Some(URI)) {
            if let Ok(domain) = Domain::lookup_by_uuid_string(&conn, uuid) {
                let _ = domain.destroy();
                let _ = domain.undefine();
            }
            let _ = conn.close();
        }
    }
}

/// Removes the host firewall tables the embedded agent of host `0` made
/// (they outlive the agent on purpose: guests keep their filtering).
struct FirewallTables(String);

impl Drop for FirewallTables {
    fn drop(&mut self) {
        let table = novum_agent::firewall::table_name(&self.0);
        for family in ["inet", "bridge"] {
            let _ = std::process::Command::new("nft")
                .args(["delete", "table", family, &table])
                .output();
        }
    }
}

/// The live definition of the domain of server `uuid` (`None`: no domain).
fn domain_xml(uuid: &str) -> Option<String> {
    let mut conn = Connect::open(Some(URI)).expect("libvirt");
    let xml = Domain::lookup_by_uuid_string(&conn, uuid)
        .ok()
        // A domain destroyed between the lookup and the read is gone too.
        .and_then(|domain| domain.get_xml_desc(0).ok());
    let _ = conn.close();
    xml
}

/// The `attribute` of the first `element` inside the domain's `<serial>`.
fn serial_attribute(uuid: &str, element: &str, attribute: &str) -> Option<String> {
    let xml = domain_xml(uuid)?;
    let doc = roxmltree::Document::parse(&xml).expect("xml");
    doc.descendants()
        .find(|n| n.has_tag_name("serial"))?
        .children()
        .find(|n| n.has_tag_name(element))?
        .attribute(attribute)
        .map(str::to_string)
}

/// The console log file of the domain of server `uuid` (`None`: no domain).
fn console_log_of(uuid: &str) -> Option<String> {
    serial_attribute(uuid, "log", "file")
}

/// Waits until the console log `log` holds `marker`.
async fn wait_console(log: &str, marker: &str, since: Instant) {
    loop {
        let text = std::fs::read(log).unwrap_or_default();
        if String::from_utf8_lossy(&text).contains(marker) {
            return;
        }
        assert!(
            since.elapsed() < BOOT_TIMEOUT,
            "{marker} never came: {}",
            String::from_utf8_lossy(&text)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Types `line` into the serial console of server `uuid` (its pty).
async fn type_on_console(uuid: &str, line: &str) {
    use std::io::Write as _;
    let pty = serial_attribute(uuid, "source", "path").expect("the serial port's pty");
    let mut console = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&pty)
        .expect("opening the pty");
    console
        .write_all(format!("{line}\r").as_bytes())
        .expect("typing");
    // qemu reads the pty while it is open: keep it open until it has.
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Types `poweroff -f` on the console of server `uuid` until libvirt shows
/// its domain stopped (a loaded machine may drop what is typed before the
/// guest's shell reads it); `log`: its console log, shown if it never stops.
async fn power_off_from_console(uuid: &str, log: &str) {
    const RETYPE_AFTER: Duration = Duration::from_secs(5);
    let since = Instant::now();
    loop {
        type_on_console(uuid, "poweroff -f").await;
        let typed = Instant::now();
        while typed.elapsed() < RETYPE_AFTER {
            if !domain_running(uuid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "the guest never powered off: {}",
            String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default())
        );
    }
}

/// Whether server `uuid`'s domain runs (exists and is not shut off).
fn domain_running(uuid: &str) -> bool {
    domain_active(uuid).unwrap_or(false)
}

/// Server `uuid`'s domain: `None` when it has none, else whether it is
/// active (a lookup only: the domain may go at any moment while a deletion
/// runs).
fn domain_active(uuid: &str) -> Option<bool> {
    let mut conn = Connect::open(Some(URI)).expect("libvirt");
    let active = Domain::lookup_by_uuid_string(&conn, uuid)
        .ok()
        .map(|domain| domain.is_active().unwrap_or(false));
    let _ = conn.close();
    active
}

/// Waits until server `id` has `status` (or ERROR); the server.
async fn wait_status(
    cloud: &Cloud,
    id: &str,
    status: &str,
    timeout: Duration,
) -> serde_json::Value {
    let since = Instant::now();
    loop {
        let (_, body) = cloud
            .compute(
                &cloud.admin,
                Method::GET,
                &format!("/servers/{id}"),
                None,
                "2.37",
            )
            .await;
        let server = body["server"].clone();
        if server["status"] == status || server["status"] == "ERROR" {
            return server;
        }
        assert!(since.elapsed() < timeout, "server never {status}: {server}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A cloud with one embedded agent on `qemu:///system` (TCG) under the host
/// name `<prefix>1`, and the test guest uploaded as a public qcow2 image;
/// the cloud, the image id, and the guard of the host's firewall tables.
async fn real_cloud(prefix: &str) -> (Cloud, String, FirewallTables) {
    let disk = test_guest_disk();
    let tables = FirewallTables(format!("{prefix}1"));
    let cloud = Cloud::start(|config| {
        config.agent.embedded_hosts = 1;
        config.agent.embedded_host_prefix = prefix.to_string();
        config.agent.embedded_libvirt_uri = Some(URI.to_string());
        config.agent.embedded_virt_type = "qemu".to_string();
        // The test types on the serial port's pty (no console proxy here).
        config.agent.embedded_serial_console = false;
    })
    .await;
    cloud.wait_for_hosts(1).await;

    let (status, image) = cloud
        .call(
            &cloud.admin,
            Method::POST,
            "/image/v2/images",
            Some(json!({"name": "novum-test-guest", "visibility": "public",
                "disk_format": "qcow2", "container_format": "bare"})),
            "2.1",
        )
        .await;
    assert_eq!(status, 201, "{image}");
    let image_id = image["id"].as_str().expect("image id").to_string();
    let uploaded = cloud
        .client
        .put(format!("{}/image/v2/images/{image_id}/file", cloud.base))
        .header("x-auth-token", &cloud.admin)
        .header("content-type", "application/octet-stream")
        .body(disk)
        .send()
        .await
        .expect("upload");
    assert_eq!(uploaded.status(), 204);
    (cloud, image_id, tables)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_boots_a_real_guest_from_an_uploaded_image_and_delete_leaves_nothing() {
    // A host name of this run's own: its firewall tables are named after it.
    let (cloud, image_id, _tables) = real_cloud(&format!("real{}-", std::process::id())).await;

    let started = Instant::now();
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::POST,
            "/servers",
            Some(
                json!({"server": {"name": "real", "imageRef": image_id, "flavorRef": "1",
                "networks": "none"}}),
            ),
            "2.37",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"]
        .as_str()
        .expect("server id")
        .to_string();
    let _guard = DomainGuard(Some(id.clone()));
    let server = wait_status(&cloud, &id, "ACTIVE", BOOT_TIMEOUT).await;
    assert_eq!(server["status"], "ACTIVE", "{server}");
    let active = started.elapsed();

    let log = console_log_of(&id).expect("a domain with a console log");
    let instance_dir = Path::new(&log)
        .parent()
        .expect("instance dir")
        .to_path_buf();
    assert!(instance_dir.join("disk").is_file());
    wait_console(&log, "NOVUM-BOOTED", started).await;
    eprintln!(
        "server ACTIVE after {active:?}, NOVUM-BOOTED after {:?}",
        started.elapsed()
    );

    // The guest powers itself off: the agent's power-state sync reports
    // it, and the server shows SHUTOFF.
    wait_console(&log, "NOVUM-READY", started).await;
    power_off_from_console(&id, &log).await;
    let server = wait_status(&cloud, &id, "SHUTOFF", Duration::from_secs(60)).await;
    assert_eq!(server["status"], "SHUTOFF", "{server}");
    assert_eq!(server["OS-EXT-STS:power_state"], 4, "{server}");

    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::DELETE,
            &format!("/servers/{id}"),
            None,
            "2.37",
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while console_log_of(&id).is_some() || instance_dir.exists() {
        assert!(
            Instant::now() < deadline,
            "the domain or its files outlived the server"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cloud.stop().await;
}

/// Whether server `uuid` has a domain (see [`domain_active`]).
fn has_domain(uuid: &str) -> bool {
    domain_active(uuid).is_some()
}

/// Boots server `name` from `image` and waits for NOVUM-BOOTED on its
/// console; its id.
async fn boot_real(cloud: &Cloud, name: &str, image: &str) -> String {
    let started = Instant::now();
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::POST,
            "/servers",
            Some(json!({"server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}})),
            "2.37",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["server"]["id"]
        .as_str()
        .expect("server id")
        .to_string();
    let server = wait_status(cloud, &id, "ACTIVE", BOOT_TIMEOUT).await;
    assert_eq!(server["status"], "ACTIVE", "{server}");
    let log = console_log_of(&id).expect("a domain with a console log");
    wait_console(&log, "NOVUM-BOOTED", started).await;
    id
}

/// Image `id` as the image API shows it, once it is active.
async fn active_image(cloud: &Cloud, id: &str) -> serde_json::Value {
    let since = Instant::now();
    loop {
        let (status, image) = cloud
            .call(
                &cloud.admin,
                Method::GET,
                &format!("/image/v2/images/{id}"),
                None,
                "2.1",
            )
            .await;
        if status == 200 && image["status"] == "active" {
            return image;
        }
        assert!(
            since.elapsed() < BOOT_TIMEOUT,
            "image {id} never active: {image}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_guest_snapshots_shelves_and_unshelves_through_the_controller() {
    let (cloud, image_id, _tables) = real_cloud(&format!("realsnap{}-", std::process::id())).await;
    let id = boot_real(&cloud, "original", &image_id).await;
    let mut guard = DomainGuard(Some(id.clone()));

    // createImage of the running guest: its flattened qcow2 root disk,
    // streamed into the image service, boots a second server.
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(json!({"createImage": {"name": "real-snapshot"}})),
            "2.45",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let snapshot_id = body["image_id"].as_str().expect("image_id").to_string();
    let snapshot = active_image(&cloud, &snapshot_id).await;
    assert_eq!(snapshot["disk_format"], "qcow2", "{snapshot}");
    assert!(
        snapshot["size"].as_i64().unwrap_or_default() > 1 << 20,
        "{snapshot}"
    );
    let copy = boot_real(&cloud, "copy", &snapshot_id).await;
    let _copy_guard = DomainGuard(Some(copy.clone()));

    // Shelve: powered off, snapshotted, offloaded (the domain goes);
    // unshelve spawns the guest again from the shelved image.
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(json!({"shelve": null})),
            "2.37",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let server = wait_status(&cloud, &id, "SHELVED_OFFLOADED", BOOT_TIMEOUT).await;
    assert_eq!(server["status"], "SHELVED_OFFLOADED", "{server}");
    assert!(!has_domain(&id), "the offloaded server's domain is gone");
    let started = Instant::now();
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(json!({"unshelve": null})),
            "2.37",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let server = wait_status(&cloud, &id, "ACTIVE", BOOT_TIMEOUT).await;
    assert_eq!(server["status"], "ACTIVE", "{server}");
    let log = console_log_of(&id).expect("the unshelved server's domain");
    wait_console(&log, "NOVUM-BOOTED", started).await;

    for server in [&id, &copy] {
        let (status, body) = cloud
            .compute(
                &cloud.admin,
                Method::DELETE,
                &format!("/servers/{server}"),
                None,
                "2.37",
            )
            .await;
        assert_eq!(status, 204, "{body}");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while has_domain(&id) || has_domain(&copy) {
        assert!(Instant::now() < deadline, "a domain outlived its server");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    guard.0 = None;
    cloud.stop().await;
}
