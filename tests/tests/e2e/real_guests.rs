//! Issue 11's proof: real guests on `qemu:///system`, booted and driven
//! through the real `openstack` CLI against `novum serve` with its embedded
//! agent on QEMU (the README's real-guest configuration).
//!
//! The test guest (tests/guest: Debian's cloud kernel and busybox, built by
//! tests/bootstrap.sh into target/test-guest) prints what reached it to the
//! serial console. Three servers on the default shared network:
//! - B (default security group) boots the qcow2 disk image (SYSLINUX);
//! - C (group `isolated`, egress only) boots the AKI/ARI/AMI trio by direct
//!   kernel boot;
//! - A (default group) boots from the disk image with a key pair, a config
//!   drive and user data: a script that pings B (must answer: same group)
//!   and C (must not: C admits only its own group), and asks the metadata
//!   service for its own `meta_data.json`.
//!
//! Then the console log of A shows its uuid, user data, key and the
//! script's findings; the serial console websocket runs a command; stop,
//! start, reboot, pause, suspend, resize and delete act on the real domains
//! and leave no domain, disk or tap behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use novum_tests::{Cloud, openstack, openstack_json};
use serde_json::Value;

const VIRSH_URI: &str = "qemu:///system";

/// The test guest's files, or `None` (with the reason printed) when this
/// machine cannot run real guests.
fn test_guest() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .join("target/test-guest");
    if !dir.join("disk.qcow2").exists() {
        eprintln!(
            "skipped: no test guest in {} (tests/bootstrap.sh builds it)",
            dir.display()
        );
        return None;
    }
    let libvirt = Command::new("virsh")
        .args(["-c", VIRSH_URI, "version"])
        .output()
        .map(|output| output.status.success())
        .unwrap_or(false);
    if !libvirt {
        eprintln!(
            "skipped: libvirtd (qemu:///system) is not running (tests/bootstrap.sh starts it)"
        );
        return None;
    }
    Some(dir)
}

fn virsh(args: &[&str]) -> String {
    let output = Command::new("virsh")
        .args(["-c", VIRSH_URI])
        .args(args)
        .output()
        .expect("virsh");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn domain(id: &str) -> String {
    format!("instance-{id}")
}

fn domain_state(id: &str) -> String {
    virsh(&["domstate", &domain(id)]).trim().to_string()
}

fn run(cloud: &Cloud, args: &[&str]) -> Value {
    openstack_json(cloud, args).unwrap_or_else(|error| panic!("{args:?}: {error:#}"))
}

fn run_plain(cloud: &Cloud, args: &[&str]) -> String {
    openstack(cloud, args).unwrap_or_else(|error| panic!("{args:?}: {error:#}"))
}

fn console_log(cloud: &Cloud, id: &str) -> String {
    openstack(cloud, &["console", "log", "show", id]).unwrap_or_default()
}

/// Waits until `id`'s console log holds `marker`; returns the log.
fn wait_console(cloud: &Cloud, id: &str, marker: &str, timeout: Duration) -> String {
    let started = Instant::now();
    loop {
        let log = console_log(cloud, id);
        if log.contains(marker) {
            return log;
        }
        assert!(
            started.elapsed() < timeout,
            "{marker:?} did not reach the console of {id} within {timeout:?}; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn wait_state(id: &str, wanted: &str, timeout: Duration) {
    let started = Instant::now();
    while domain_state(id) != wanted {
        assert!(
            started.elapsed() < timeout,
            "domain of {id} is {:?}, not {wanted:?}, after {timeout:?}",
            domain_state(id)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the API shows `id` with `status`.
fn wait_status(cloud: &Cloud, id: &str, status: &str, timeout: Duration) {
    let started = Instant::now();
    loop {
        let shown = run(cloud, &["server", "show", id]);
        if shown["status"] == status {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "{id} is {}, not {status}, after {timeout:?}",
            shown["status"]
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn create_server(cloud: &Cloud, args: &[&str]) -> String {
    let mut all = vec!["server", "create", "--flavor", "m1.tiny", "--wait"];
    all.extend_from_slice(args);
    let server = run(cloud, &all);
    assert_eq!(server["status"], "ACTIVE", "{server}");
    server["id"].as_str().expect("id").to_string()
}

/// The first IPv4 address of `id` on the shared network.
fn address(cloud: &Cloud, id: &str) -> String {
    let shown = run(cloud, &["server", "show", id]);
    let text = shown["addresses"].to_string();
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|part| part.split('.').count() == 4)
        .unwrap_or_else(|| panic!("no IPv4 address in {text}"))
        .to_string()
}

/// A syntactically valid ed25519 public key line.
fn public_key() -> String {
    let mut blob = Vec::new();
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    blob.extend_from_slice(&[7u8; 32]);
    format!(
        "ssh-ed25519 {} novum-real-guest",
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

/// What is left of a server on the host: its domain's disk files and taps.
struct Leftovers {
    disks: Vec<String>,
    taps: Vec<String>,
}

fn leftovers_of(id: &str) -> Leftovers {
    let disks = virsh(&["domblklist", &domain(id)])
        .lines()
        .skip(2)
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter(|path| path.starts_with('/'))
        .map(str::to_string)
        .collect();
    let taps = virsh(&["domiflist", &domain(id)])
        .lines()
        .skip(2)
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with("tap"))
        .map(str::to_string)
        .collect();
    Leftovers { disks, taps }
}

fn assert_nothing_left(id: &str, leftovers: &Leftovers) {
    let all = virsh(&["list", "--all", "--name"]);
    assert!(
        !all.contains(&domain(id)),
        "the domain of {id} is left: {all}"
    );
    for disk in &leftovers.disks {
        assert!(!Path::new(disk).exists(), "disk {disk} of {id} is left");
    }
    for tap in &leftovers.taps {
        let exists = Command::new("ip")
            .args(["link", "show", tap])
            .output()
            .map(|output| output.status.success())
            .unwrap_or(false);
        assert!(!exists, "tap {tap} of {id} is left");
    }
}

/// Types `command` into the serial console behind the websocket `url` and
/// returns what came back until `expect` showed up.
fn serial_console(url: &str, command: &str, expect: &str) -> String {
    use tungstenite::client::IntoClientRequest as _;
    let mut request = url.into_client_request().expect("a websocket URL");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "binary".parse().expect("header value"),
    );
    let (mut socket, _) = tungstenite::connect(request).expect("websocket connect");
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("read timeout");
    }
    let started = Instant::now();
    let mut seen = String::new();
    let mut sent = false;
    while started.elapsed() < Duration::from_secs(60) {
        if !sent || started.elapsed().as_secs() % 10 == 9 {
            socket
                .send(tungstenite::Message::binary(
                    format!("{command}\n").into_bytes(),
                ))
                .expect("send");
            sent = true;
        }
        match socket.read() {
            Ok(message) => {
                seen.push_str(&String::from_utf8_lossy(&message.into_data()));
                if seen.contains(expect) {
                    let _ = socket.close(None);
                    return seen;
                }
            }
            Err(tungstenite::Error::Io(error))
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(error) => panic!("serial console: {error}; seen so far: {seen}"),
        }
    }
    panic!("{expect:?} never came back from the serial console; seen: {seen}");
}

/// What the test made on this host outside the cloud's data directory:
/// removed when dropped, also when the test fails (domains of servers not
/// deleted, the networks' bridges, the agent's firewall tables).
struct HostCleanup {
    host: String,
    servers: Vec<String>,
    bridges: Vec<String>,
}

impl Drop for HostCleanup {
    fn drop(&mut self) {
        for id in &self.servers {
            let _ = Command::new("virsh")
                .args(["-c", VIRSH_URI, "destroy", &domain(id)])
                .output();
            let _ = Command::new("virsh")
                .args(["-c", VIRSH_URI, "undefine", "--managed-save", &domain(id)])
                .output();
        }
        for bridge in &self.bridges {
            let _ = Command::new("ip").args(["link", "del", bridge]).output();
        }
        let table = novum_agent::firewall::table_name(&self.host);
        for family in ["inet", "bridge"] {
            let _ = Command::new("nft")
                .args(["delete", "table", family, &table])
                .output();
        }
    }
}

#[test]
fn real_guests_boot_talk_and_go_through_the_cli() {
    let Some(guest) = test_guest() else {
        return;
    };
    let _turn = novum_tests::shared_turn();
    let started = Instant::now();
    // A host name of this run's own: its firewall tables are named after it.
    let prefix = format!("rg{}-", std::process::id());
    let cloud = Cloud::start(
        "real-guests",
        &format!(
            "[agent]\nembedded_hosts = 1\nembedded_host_prefix = \"{prefix}\"\nembedded_libvirt_uri = \"qemu:///system\"\nembedded_virt_type = \"qemu\"\n"
        ),
    )
    .expect("cloud");
    let networks = run(&cloud, &["network", "list"]);
    let mut cleanup = HostCleanup {
        host: format!("{prefix}1"),
        servers: Vec::new(),
        bridges: networks
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|network| network["ID"].as_str())
            .map(|id| format!("brq{}", &id[..11.min(id.len())]))
            .collect(),
    };
    let file = |name: &str| guest.join(name).display().to_string();

    // Images: the bootable disk, and the kernel/ramdisk/machine trio.
    let disk_image = run(
        &cloud,
        &[
            "image",
            "create",
            "--disk-format",
            "qcow2",
            "--container-format",
            "bare",
            "--file",
            &file("disk.qcow2"),
            "guest-disk",
        ],
    );
    let disk_image = disk_image["id"].as_str().expect("image id").to_string();
    let kernel = run(
        &cloud,
        &[
            "image",
            "create",
            "--disk-format",
            "aki",
            "--container-format",
            "aki",
            "--file",
            &file("vmlinuz"),
            "guest-kernel",
        ],
    );
    let ramdisk = run(
        &cloud,
        &[
            "image",
            "create",
            "--disk-format",
            "ari",
            "--container-format",
            "ari",
            "--file",
            &file("initrd.img"),
            "guest-ramdisk",
        ],
    );
    let kernel_property = format!("kernel_id={}", kernel["id"].as_str().expect("id"));
    let ramdisk_property = format!("ramdisk_id={}", ramdisk["id"].as_str().expect("id"));
    run(
        &cloud,
        &[
            "image",
            "create",
            "--disk-format",
            "ami",
            "--container-format",
            "ami",
            "--file",
            &file("disk.raw"),
            "--property",
            &kernel_property,
            "--property",
            &ramdisk_property,
            "guest-ami",
        ],
    );
    let key = public_key();
    let key_file = cloud.data_dir.join("key.pub");
    std::fs::write(&key_file, &key).expect("key file");
    run(
        &cloud,
        &[
            "keypair",
            "create",
            "--public-key",
            &key_file.display().to_string(),
            "guest-key",
        ],
    );
    run(&cloud, &["security", "group", "create", "isolated"]);

    // B and C first: A's user data pings them when it boots.
    let b = create_server(
        &cloud,
        &["--image", &disk_image, "--config-drive", "True", "b"],
    );
    cleanup.servers.push(b.clone());
    let c = create_server(
        &cloud,
        &[
            "--image",
            "guest-ami",
            "--config-drive",
            "True",
            "--security-group",
            "isolated",
            "c",
        ],
    );
    cleanup.servers.push(c.clone());
    let (b_ip, c_ip) = (address(&cloud, &b), address(&cloud, &c));
    wait_console(&cloud, &b, "NOVUM-READY", Duration::from_secs(90));
    wait_console(&cloud, &c, "NOVUM-READY", Duration::from_secs(90));

    let script = format!(
        "#!/bin/sh\n\
         if ping -c 2 -W 2 {b_ip} >/dev/null; then echo PING-B ok; else echo PING-B failed; fi\n\
         if ping -c 2 -W 2 {c_ip} >/dev/null; then echo PING-C ok; else echo PING-C failed; fi\n\
         echo METADATA $(printf 'GET /openstack/latest/meta_data.json HTTP/1.0\\r\\nHost: 169.254.169.254\\r\\n\\r\\n' | nc -w 10 169.254.169.254 80 | tail -n 1 | sed -n 's/.*\"uuid\": *\"\\([^\"]*\\)\".*/\\1/p')\n"
    );
    let user_data = cloud.data_dir.join("user-data.sh");
    std::fs::write(&user_data, &script).expect("user data");
    let a = create_server(
        &cloud,
        &[
            "--image",
            &disk_image,
            "--config-drive",
            "True",
            "--key-name",
            "guest-key",
            "--user-data",
            &user_data.display().to_string(),
            "a",
        ],
    );
    cleanup.servers.push(a.clone());
    let log = wait_console(&cloud, &a, "NOVUM-READY", Duration::from_secs(120));
    assert!(log.contains(&format!("NOVUM-UUID {a}")), "{log}");
    assert!(log.contains(&format!("NOVUM-KEY {key}")), "{log}");
    assert!(log.contains("NOVUM-USER-DATA-BEGIN\n#!/bin/sh"), "{log}");
    assert!(log.contains("NOVUM-NET eth0"), "{log}");
    assert!(
        log.contains("PING-B ok"),
        "B (same group) must answer A: {log}"
    );
    assert!(
        log.contains("PING-C failed"),
        "C (isolated) must not answer A: {log}"
    );
    assert!(
        log.contains(&format!("METADATA {a}")),
        "the metadata service must answer A with A's own data: {log}"
    );
    // `--lines` keeps the tail.
    let tail = run_plain(&cloud, &["console", "log", "show", "--lines", "3", &a]);
    assert!(tail.lines().count() <= 3, "{tail}");

    // The serial console through the controller's websocket proxy.
    let url = run(&cloud, &["console", "url", "show", "--serial", &a]);
    let url = url["url"].as_str().expect("url").to_string();
    let answer = serial_console(&url, "echo $((6*7))", "42");
    assert!(answer.contains("42"), "{answer}");

    // Lifecycle on the real domain: each action through the CLI, then the
    // API's status and the domain's state.
    let act = |action: &str, id: &str, status: &str, state: &str| {
        run_plain(&cloud, &["server", action, id]);
        wait_status(&cloud, id, status, Duration::from_secs(90));
        wait_state(id, state, Duration::from_secs(60));
    };
    act("stop", &b, "SHUTOFF", "shut off");
    act("start", &b, "ACTIVE", "running");
    run_plain(&cloud, &["server", "reboot", "--hard", "--wait", &b]);
    wait_state(&b, "running", Duration::from_secs(60));
    act("pause", &c, "PAUSED", "paused");
    act("unpause", &c, "ACTIVE", "running");
    act("suspend", &c, "SUSPENDED", "shut off");
    act("resume", &c, "ACTIVE", "running");
    run_plain(
        &cloud,
        &["server", "resize", "--flavor", "m1.small", "--wait", &b],
    );
    let resized = run(&cloud, &["server", "show", &b]);
    assert_eq!(
        resized["status"],
        "VERIFY_RESIZE",
        "{resized}\n{}",
        run_plain(&cloud, &["server", "event", "list", "--long", &b])
    );
    run_plain(&cloud, &["server", "resize", "confirm", &b]);
    let info = virsh(&["domblkinfo", &domain(&b), "vda"]);
    let capacity: u64 = info
        .lines()
        .find_map(|line| line.strip_prefix("Capacity:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no capacity in {info}"));
    assert_eq!(
        capacity,
        20 << 30,
        "the root disk grows to m1.small's 20 GiB"
    );
    wait_state(&b, "running", Duration::from_secs(60));

    // Delete: nothing left on the host.
    let all = [a.clone(), b.clone(), c.clone()];
    let leftovers: Vec<Leftovers> = all.iter().map(|id| leftovers_of(id)).collect();
    for id in &all {
        run_plain(&cloud, &["server", "delete", "--wait", id]);
    }
    for (id, leftovers) in all.iter().zip(&leftovers) {
        assert!(!leftovers.disks.is_empty() && !leftovers.taps.is_empty());
        assert_nothing_left(id, leftovers);
    }
    eprintln!("real guests: {:?}", started.elapsed());
}
