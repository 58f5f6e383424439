//! Issue 3's acceptance sequence, driven with the real `openstack` CLI against
//! the real `novum serve` (all-in-one: SQLite, two embedded agents on
//! libvirt's test driver, the standard WASM plugin set).

use novum_tests::{Cloud, openstack, openstack_json};

fn field<'a>(value: &'a serde_json::Value, key: &str) -> &'a str {
    value
        .get(key)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
}

#[test]
fn openstack_cli_sequence() -> anyhow::Result<()> {
    let _turn = novum_tests::shared_turn();
    let cloud = Cloud::start("cli", "[agent]\nembedded_hosts = 2\n")?;

    let flavors = openstack_json(&cloud, &["flavor", "list"])?;
    assert!(
        flavors
            .as_array()
            .is_some_and(|list| list.iter().any(|f| field(f, "Name") == "m1.tiny")),
        "{flavors}"
    );

    let image_file = cloud.data_dir.join("tiny.img");
    std::fs::write(&image_file, vec![7u8; 4096])?;
    let image_path = image_file.display().to_string();
    let image = openstack_json(
        &cloud,
        &[
            "image",
            "create",
            "--file",
            &image_path,
            "--disk-format",
            "raw",
            "--property",
            "hw_architecture=x86_64",
            "demo-image",
        ],
    )?;
    assert_eq!(field(&image, "status"), "active", "{image}");
    let images = openstack_json(&cloud, &["image", "list"])?;
    assert!(images.to_string().contains("demo-image"), "{images}");

    let server = openstack_json(
        &cloud,
        &[
            "server",
            "create",
            "--flavor",
            "m1.tiny",
            "--image",
            "demo-image",
            "--nic",
            "none",
            "--wait",
            "demo",
        ],
    )?;
    assert_eq!(field(&server, "status"), "ACTIVE", "{server}");
    let servers = openstack_json(&cloud, &["server", "list"])?;
    assert!(servers.to_string().contains("demo"), "{servers}");
    let shown = openstack_json(&cloud, &["server", "show", "demo"])?;
    assert_eq!(field(&shown, "status"), "ACTIVE");

    let wait_status = |want: &str| -> anyhow::Result<()> {
        for _ in 0..100 {
            let shown = openstack_json(&cloud, &["server", "show", "demo"])?;
            if field(&shown, "status") == want {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        anyhow::bail!("server did not reach {want}")
    };
    openstack(&cloud, &["server", "stop", "demo"])?;
    wait_status("SHUTOFF")?;
    openstack(&cloud, &["server", "start", "demo"])?;
    wait_status("ACTIVE")?;
    openstack(&cloud, &["server", "reboot", "demo"])?;
    wait_status("ACTIVE")?;
    openstack(&cloud, &["server", "pause", "demo"])?;
    wait_status("PAUSED")?;
    openstack(&cloud, &["server", "unpause", "demo"])?;
    wait_status("ACTIVE")?;
    openstack(&cloud, &["server", "suspend", "demo"])?;
    wait_status("SUSPENDED")?;
    openstack(&cloud, &["server", "resume", "demo"])?;
    wait_status("ACTIVE")?;
    let flavor_name = |shown: &serde_json::Value| {
        shown["flavor"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| shown["flavor"]["name"].to_string())
    };
    openstack(
        &cloud,
        &["server", "resize", "--flavor", "m1.small", "--wait", "demo"],
    )?;
    wait_status("VERIFY_RESIZE")?;
    openstack(&cloud, &["server", "resize", "confirm", "demo"])?;
    wait_status("ACTIVE")?;
    let shown = openstack_json(&cloud, &["server", "show", "demo"])?;
    assert!(flavor_name(&shown).contains("m1.small"), "{shown}");
    openstack(
        &cloud,
        &[
            "server",
            "resize",
            "--flavor",
            "m1.medium",
            "--wait",
            "demo",
        ],
    )?;
    wait_status("VERIFY_RESIZE")?;
    openstack(&cloud, &["server", "resize", "revert", "demo"])?;
    wait_status("ACTIVE")?;
    let migrations = openstack_json(&cloud, &["server", "migration", "list"])?;
    assert_eq!(
        migrations.as_array().map(Vec::len),
        Some(2),
        "a confirmed and a reverted resize: {migrations}"
    );
    let shown = openstack_json(&cloud, &["server", "show", "demo"])?;
    assert!(flavor_name(&shown).contains("m1.small"), "{shown}");

    let events = openstack_json(&cloud, &["server", "event", "list", "demo"])?;
    let actions: Vec<&str> = events
        .as_array()
        .map(|list| list.iter().map(|e| field(e, "Action")).collect())
        .unwrap_or_default();
    for expected in [
        "create",
        "stop",
        "start",
        "reboot",
        "pause",
        "unpause",
        "suspend",
        "resume",
        "resize",
        "confirmResize",
        "revertResize",
    ] {
        assert!(
            actions.contains(&expected),
            "missing {expected} in {actions:?}"
        );
    }

    let hypervisors = openstack_json(&cloud, &["hypervisor", "list"])?;
    assert_eq!(
        hypervisors.as_array().map(Vec::len),
        Some(2),
        "{hypervisors}"
    );
    let services = openstack_json(&cloud, &["compute", "service", "list"])?;
    assert!(
        services.as_array().is_some_and(|list| list.len() >= 2),
        "{services}"
    );

    let hosts: Vec<String> = hypervisors
        .as_array()
        .map(|list| {
            list.iter()
                .map(|h| field(h, "Hypervisor Hostname").to_string())
                .collect()
        })
        .unwrap_or_default();
    openstack(&cloud, &["aggregate", "create", "--zone", "zone-a", "agg1"])?;
    openstack(&cloud, &["aggregate", "add", "host", "agg1", &hosts[0]])?;
    openstack(
        &cloud,
        &["aggregate", "set", "--property", "ssd=true", "agg1"],
    )?;
    let zones = openstack_json(&cloud, &["availability", "zone", "list", "--compute"])?;
    assert!(zones.to_string().contains("zone-a"), "{zones}");

    let group = openstack_json(
        &cloud,
        &[
            "server",
            "group",
            "create",
            "--policy",
            "anti-affinity",
            "spread",
        ],
    )?;
    let group_id = field(&group, "id").to_string();
    let hint = format!("group={group_id}");
    let mut placed = Vec::new();
    for name in ["spread-1", "spread-2"] {
        let server = openstack_json(
            &cloud,
            &[
                "server",
                "create",
                "--flavor",
                "m1.tiny",
                "--image",
                "demo-image",
                "--nic",
                "none",
                "--hint",
                &hint,
                "--wait",
                name,
            ],
        )?;
        assert_eq!(field(&server, "status"), "ACTIVE", "{server}");
        let shown = openstack_json(&cloud, &["server", "show", name])?;
        placed.push(field(&shown, "OS-EXT-SRV-ATTR:host").to_string());
    }
    assert_ne!(
        placed[0], placed[1],
        "anti-affinity group members share a host: {placed:?}"
    );

    let keypair = openstack(&cloud, &["keypair", "create", "demo-key"])?;
    assert!(keypair.contains("PRIVATE KEY"), "{keypair}");

    openstack(&cloud, &["server", "delete", "--wait", "demo"])?;
    let servers = openstack_json(&cloud, &["server", "list"])?;
    assert!(!servers.to_string().contains("\"demo\""), "{servers}");
    Ok(())
}
