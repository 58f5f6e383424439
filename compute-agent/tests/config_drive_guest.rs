//! The config drive and the metadata proxy with a REAL guest: novum's test
//! guest (target/test-guest, built by tests/guest/build.sh) boots on
//! `qemu:///system` (TCG) from its kernel and initramfs, with the config
//! drive this agent builds as its CD-ROM and one NIC on a Linux bridge the
//! agent makes. Its /init prints what reached it (NOVUM-UUID, NOVUM-KEY,
//! the user data, NOVUM-NET) to the serial console, and runs the user data,
//! a script that fetches `http://169.254.169.254/openstack/latest/meta_data.json`
//! through the agent's metadata proxy. A small HTTP server of the test
//! stands in for the controller: it answers only a request the proxy
//! signed for this instance, coming from the guest's address.
//!
//! Also: the ISO itself, read back with `isoinfo`, without a guest.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use novum_agent::config_drive;
use novum_agent::driver::{LibvirtDriver, LibvirtOptions, TestNode, VirtDriver};
use novum_agent::metadata_proxy::MetadataProxy;
use novum_wire::{
    ConfigDriveFile, FixedIpSpec, FlavorSpec, ImageSpec, InterfaceSpec, SpawnSpec, bridge_name,
    metadata_signature,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use uuid::Uuid;

#[path = "support/real_guest.rs"]
mod real_guest;

use real_guest::{Bridge, Guest, READY_WITHIN, TestDir, fetch_script, fetched};

const SECRET: &str = "test-shared-secret";
const PROJECT: &str = "5b1c3f0e9a8d4c2b8e7f6a5d4c3b2a10";
const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGnovumtestkeynovumtestkeynovumtestkey00 rg@novum";
const PROXIED_MARK: &str = "NOVUM-PROXY-OK";

fn file(path: &str, content: &[u8]) -> ConfigDriveFile {
    ConfigDriveFile {
        path: path.into(),
        content_base64: BASE64.encode(content),
    }
}

fn isoinfo(image: &Path, args: &[&str]) -> String {
    let output = Command::new("isoinfo")
        .arg("-i")
        .arg(image)
        .args(args)
        .output()
        .expect("isoinfo runs (genisoimage installs it)");
    assert!(output.status.success(), "isoinfo {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).to_string()
}

#[test]
fn the_config_drive_is_an_iso_labelled_config_2_holding_the_files() {
    let dir = TestDir::new();
    let image = dir.0.join("instance").join(config_drive::DISK_CONFIG);
    let user_data = b"#!/bin/sh\necho hello \x01 binary\n";
    let files = vec![
        file("openstack/latest/meta_data.json", br#"{"uuid": "u-1"}"#),
        file("openstack/latest/user_data", user_data),
        file(
            "ec2/latest/meta-data.json",
            br#"{"instance-id": "i-00000001"}"#,
        ),
    ];
    config_drive::build(&files, &image).expect("build");
    let description = isoinfo(&image, &["-d"]);
    assert!(description.contains("Volume id: config-2"), "{description}");
    assert_eq!(
        isoinfo(&image, &["-J", "-x", "/openstack/latest/meta_data.json"]),
        r#"{"uuid": "u-1"}"#
    );
    let read_back = Command::new("isoinfo")
        .arg("-i")
        .arg(&image)
        .args(["-J", "-x", "/openstack/latest/user_data"])
        .output()
        .expect("isoinfo");
    assert_eq!(read_back.stdout, user_data);
    assert_eq!(
        isoinfo(&image, &["-J", "-x", "/ec2/latest/meta-data.json"]),
        r#"{"instance-id": "i-00000001"}"#
    );
    // Rebuilding replaces it; removing removes it, twice is fine.
    config_drive::build(&files[..1], &image).expect("rebuild");
    assert!(!isoinfo(&image, &["-J", "-f"]).contains("user_data"));
    config_drive::remove(&image).expect("remove");
    assert!(!image.exists());
    config_drive::remove(&image).expect("remove again");
}

#[test]
fn a_config_drive_path_leaving_the_volume_is_refused() {
    let dir = TestDir::new();
    let image = dir.0.join(config_drive::DISK_CONFIG);
    for path in ["../escape", "/etc/passwd", "", "openstack/../../x"] {
        let error = config_drive::build(&[file(path, b"x")], &image).unwrap_err();
        assert!(
            error.to_string().contains("relative path"),
            "{path}: {error}"
        );
    }
    assert!(!image.exists());
}

fn small_spec(config_drive: Option<Vec<ConfigDriveFile>>) -> SpawnSpec {
    SpawnSpec {
        name: "cd".into(),
        flavor: FlavorSpec {
            name: "tiny".into(),
            vcpus: 1,
            memory_mb: 256,
            root_gb: 1,
            ephemeral_gb: 0,
            swap_mb: 0,
        },
        image: ImageSpec {
            id: String::new(),
            properties: Default::default(),
        },
        user_data: None,
        metadata: Default::default(),
        interfaces: Vec::new(),
        project_id: Some(PROJECT.into()),
        config_drive,
    }
}

#[test]
fn the_domain_gets_the_config_drive_as_a_read_only_cdrom_only_when_it_has_one() {
    let dir = TestDir::new();
    let node = TestNode::create(4, 8192).expect("node");
    let options = LibvirtOptions {
        instances_path: dir.0.display().to_string(),
        ..LibvirtOptions::default()
    };
    let driver = LibvirtDriver::open(&node.uri(), options).expect("open");
    let with = Uuid::new_v4();
    let files = vec![file("openstack/latest/meta_data.json", b"{}")];
    driver.spawn(with, &small_spec(Some(files))).expect("spawn");
    let xml = |id: Uuid| {
        virt::domain::Domain::lookup_by_uuid_string(driver.connect(), &id.to_string())
            .expect("domain")
            .get_xml_desc(0)
            .expect("xml")
    };
    let image = config_drive::image_path(&dir.0.display().to_string(), with);
    let defined = xml(with);
    assert!(defined.contains("device='cdrom'"), "{defined}");
    assert!(defined.contains(&image.display().to_string()), "{defined}");
    assert!(defined.contains("<readonly/>"), "{defined}");
    assert!(defined.contains("dev='hdd' bus='ide'"), "{defined}");
    // The test driver reads no file: none is made for it.
    assert!(!image.exists());
    let without = Uuid::new_v4();
    driver.spawn(without, &small_spec(None)).expect("spawn");
    assert!(!xml(without).contains("cdrom"));
    driver.destroy(with).expect("destroy");
    driver.destroy(without).expect("destroy");
}

#[tokio::test]
async fn the_proxy_maps_a_bridge_and_address_to_the_instance_and_keeps_it_across_restarts() {
    let dir = TestDir::new();
    let instance = Uuid::new_v4();
    let network = Uuid::new_v4();
    // A bridge that does not exist on this host: nothing listens.
    let interface = InterfaceSpec {
        port_id: Uuid::new_v4(),
        mac_address: "fa:16:3e:00:00:31".into(),
        network_id: network,
        network_name: "kept".into(),
        mtu: None,
        bridge: bridge_name(network),
        fixed_ips: vec![FixedIpSpec {
            ip_address: "10.232.0.5".into(),
            ip_version: 4,
            subnet_cidr: "10.232.0.0/24".into(),
            gateway_ip: None,
            dns_nameservers: Vec::new(),
            host_routes: Vec::new(),
        }],
    };
    let spec = SpawnSpec {
        interfaces: vec![interface.clone()],
        ..small_spec(None)
    };
    let address = "10.232.0.5".parse().expect("address");
    let other: std::net::IpAddr = "10.232.0.6".parse().expect("address");
    {
        let proxy = MetadataProxy::with_state("http://controller", Some(&dir.0));
        proxy.set_secret(Some(SECRET.into()));
        proxy.observe(
            instance,
            &novum_wire::TaskAction::Spawn(spec.clone()),
            &novum_wire::TaskOutcome::Succeeded {
                power_state: novum_wire::PowerState::Running,
            },
        );
        assert_eq!(
            proxy.instance_at(&interface.bridge, address),
            Some((instance, PROJECT.to_string()))
        );
        assert_eq!(proxy.instance_at(&interface.bridge, other), None);
        assert_eq!(proxy.instance_at("brq-elsewhere", address), None);
    }
    let state = dir.0.join(novum_agent::metadata_proxy::STATE_FILE);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state)
            .expect("state file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "owner only: {mode:o}");
    }
    // A restarted agent's proxy knows the guest (and the secret) still.
    let restarted = MetadataProxy::with_state("http://controller", Some(&dir.0));
    assert_eq!(
        restarted.instance_at(&interface.bridge, address),
        Some((instance, PROJECT.to_string()))
    );
    // A failed task teaches nothing; a destroy forgets, for good.
    restarted.observe(
        instance,
        &novum_wire::TaskAction::Destroy,
        &novum_wire::TaskOutcome::Failed {
            message: "no".into(),
            power_state: None,
        },
    );
    assert!(restarted.instance_at(&interface.bridge, address).is_some());
    restarted.observe(
        instance,
        &novum_wire::TaskAction::Destroy,
        &novum_wire::TaskOutcome::Succeeded {
            power_state: novum_wire::PowerState::NoState,
        },
    );
    assert_eq!(restarted.instance_at(&interface.bridge, address), None);
    let again = MetadataProxy::with_state("http://controller", Some(&dir.0));
    assert_eq!(again.instance_at(&interface.bridge, address), None);
}

#[tokio::test]
async fn the_proxy_follows_a_live_migration_from_host_to_host() {
    let network = Uuid::new_v4();
    let instance = Uuid::new_v4();
    let interface = InterfaceSpec {
        port_id: Uuid::new_v4(),
        mac_address: "fa:16:3e:00:00:32".into(),
        network_id: network,
        network_name: "moving".into(),
        mtu: None,
        bridge: bridge_name(network),
        fixed_ips: vec![FixedIpSpec {
            ip_address: "10.233.0.5".into(),
            ip_version: 4,
            subnet_cidr: "10.233.0.0/24".into(),
            gateway_ip: None,
            dns_nameservers: Vec::new(),
            host_routes: Vec::new(),
        }],
    };
    let spec = SpawnSpec {
        interfaces: vec![interface.clone()],
        ..small_spec(None)
    };
    let address: std::net::IpAddr = "10.233.0.5".parse().expect("address");
    let succeeded = |power_state| novum_wire::TaskOutcome::Succeeded { power_state };
    let (source, destination) = (
        MetadataProxy::new("http://controller"),
        MetadataProxy::new("http://controller"),
    );
    source.observe(
        instance,
        &novum_wire::TaskAction::Spawn(spec.clone()),
        &succeeded(novum_wire::PowerState::Running),
    );
    let live_migrate = novum_wire::TaskAction::LiveMigrate {
        destination: "elsewhere".into(),
        destination_ip: "10.0.0.2".into(),
        block_migration: true,
        spec: spec.clone(),
    };
    // A move that failed leaves the guest (and its metadata) where it was.
    source.observe(
        instance,
        &live_migrate,
        &novum_wire::TaskOutcome::Failed {
            message: "no".into(),
            power_state: Some(novum_wire::PowerState::Running),
        },
    );
    assert!(source.instance_at(&interface.bridge, address).is_some());
    // The preparation alone teaches the destination nothing yet.
    destination.observe(
        instance,
        &novum_wire::TaskAction::PreLiveMigration {
            spec: spec.clone(),
            block_migration: true,
            source_cpu: None,
        },
        &succeeded(novum_wire::PowerState::NoState),
    );
    assert_eq!(destination.instance_at(&interface.bridge, address), None);
    // The guest left the source and arrived at the destination.
    source.observe(
        instance,
        &live_migrate,
        &succeeded(novum_wire::PowerState::NoState),
    );
    assert_eq!(source.instance_at(&interface.bridge, address), None);
    destination.observe(
        instance,
        &novum_wire::TaskAction::PostLiveMigration {
            spec,
            paused: false,
        },
        &succeeded(novum_wire::PowerState::Running),
    );
    assert_eq!(
        destination.instance_at(&interface.bridge, address),
        Some((instance, PROJECT.to_string()))
    );
}

/// The stand-in controller: answers `GET /metadata/openstack/latest/meta_data.json`
/// with the instance's uuid and [`PROXIED_MARK`] when the proxy's headers
/// name `instance` of [`PROJECT`], signed with [`SECRET`], for `guest_ip`;
/// 403 otherwise. Returns its URL.
async fn stand_in_controller(instance: Uuid, guest_ip: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut chunk = [0_u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&chunk[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let id = instance.to_string();
            let wanted = [
                "get /metadata/openstack/latest/meta_data.json ".to_string(),
                format!("x-instance-id: {id}\r\n"),
                format!("x-tenant-id: {PROJECT}\r\n"),
                format!(
                    "x-instance-id-signature: {}\r\n",
                    metadata_signature(SECRET, &id)
                ),
                format!("x-forwarded-for: {guest_ip}\r\n"),
            ];
            let (status, body) = if wanted.iter().all(|line| head.contains(line.as_str())) {
                (
                    "200 OK",
                    format!(r#"{{"uuid": "{id}", "proxied": "{PROXIED_MARK}"}}"#),
                )
            } else {
                ("403 Forbidden", "403 Forbidden".to_string())
            };
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_guest_reads_its_config_drive_and_its_metadata_through_the_proxy() {
    let dir = TestDir::new();
    let instance = Uuid::new_v4();
    let network = Uuid::new_v4();
    let port = Uuid::new_v4();
    const GUEST_IP: &str = "10.231.7.21";
    let mac = "fa:16:3e:5d:21:07";
    let bridge = Bridge::new(&bridge_name(network));

    // The config drive, as the controller's generator lays it out.
    let interface = InterfaceSpec {
        port_id: port,
        mac_address: mac.into(),
        network_id: network,
        network_name: "rg".into(),
        mtu: None,
        bridge: bridge.0.clone(),
        fixed_ips: vec![FixedIpSpec {
            ip_address: GUEST_IP.into(),
            ip_version: 4,
            subnet_cidr: "10.231.7.0/24".into(),
            gateway_ip: None,
            dns_nameservers: Vec::new(),
            host_routes: Vec::new(),
        }],
    };
    let tap = interface.tap_name();
    let meta_data = format!(
        r#"{{"uuid": "{instance}", "hostname": "rg-guest", "public_keys": {{"rg": "{PUBLIC_KEY}"}}, "name": "rg-guest"}}"#
    );
    let network_data = format!(
        r#"{{"links": [{{"id": "{tap}", "vif_id": "{port}", "type": "bridge", "mtu": null, "ethernet_mac_address": "{mac}"}}], "networks": [{{"id": "network0", "type": "ipv4", "link": "{tap}", "ip_address": "{GUEST_IP}", "netmask": "255.255.255.0", "routes": [], "network_id": "{network}", "services": []}}], "services": []}}"#
    );
    let user_data = fetch_script("/openstack/latest/meta_data.json");
    let files = vec![
        file("openstack/latest/meta_data.json", meta_data.as_bytes()),
        file(
            "openstack/latest/network_data.json",
            network_data.as_bytes(),
        ),
        file("openstack/latest/user_data", user_data.as_bytes()),
    ];
    let image = dir.0.join(config_drive::DISK_CONFIG);
    config_drive::build(&files, &image).expect("config drive");

    // The metadata proxy, forwarding to the stand-in controller.
    let controller = stand_in_controller(instance, GUEST_IP).await;
    let proxy = MetadataProxy::new(&controller);
    proxy.set_secret(Some(SECRET.into()));
    let spec = SpawnSpec {
        interfaces: vec![interface.clone()],
        ..small_spec(Some(files))
    };
    proxy.record(instance, &spec);
    // `record` served the bridge already (it exists): serving it again is
    // nothing to do, and says so when it could not.
    proxy
        .serve_bridge(&bridge.0)
        .expect("the proxy serves the bridge");

    // The guest: direct kernel boot, the CD-ROM, the NIC, a console log.
    let guest = Guest::boot(&dir, instance, &image, &interface);
    let console = tokio::task::spawn_blocking(move || {
        let console = guest.console_until("NOVUM-READY", READY_WITHIN);
        drop(guest);
        console
    })
    .await
    .expect("console");
    assert!(
        console.contains("NOVUM-READY"),
        "the guest did not finish: {console}"
    );
    assert!(console.contains("NOVUM-CONFIG-DRIVE /dev/sr0"), "{console}");
    assert!(
        console.contains(&format!("NOVUM-UUID {instance}")),
        "{console}"
    );
    assert!(
        console.contains(&format!("NOVUM-KEY {PUBLIC_KEY}")),
        "{console}"
    );
    assert!(console.contains("NOVUM-USER-DATA-BEGIN"), "{console}");
    assert!(
        console.contains(&format!("NOVUM-NET eth0 {mac} {GUEST_IP}/24")),
        "{console}"
    );
    // The user data's fetch, answered by the stand-in controller only for
    // a request the proxy signed for this instance.
    let fetched = fetched(&console);
    assert!(fetched.contains(PROXIED_MARK), "{fetched}");
    assert!(
        fetched.contains(&format!("\"uuid\": \"{instance}\"")),
        "{fetched}"
    );
    proxy.stop();
}
