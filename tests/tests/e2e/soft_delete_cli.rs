//! Soft delete and the guest actions with the real `openstack` CLI against
//! the real `novum serve` (all-in-one, an embedded agent on libvirt's test
//! driver) with `[compute] reclaim_instance_interval` set: `server delete`
//! leaves the server SOFT_DELETED, `server restore` brings it back; `server
//! set --password` (the image runs the QEMU guest agent) and
//! `--no-password`, `server dump create` (2.17) and `server show
//! --diagnostics`.

use std::time::{Duration, Instant};

use novum_tests::{Cloud, openstack, openstack_json};

/// Waits until `server` shows `status`.
fn wait_status(cloud: &Cloud, server: &str, status: &str) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown = openstack_json(cloud, &["server", "show", server])?;
        if shown["status"] == status {
            return Ok(shown);
        }
        anyhow::ensure!(Instant::now() < deadline, "never {status}: {shown}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn soft_delete_restore_and_the_guest_actions() -> anyhow::Result<()> {
    let _turn = novum_tests::shared_turn();
    let cloud = Cloud::start(
        "softdelete",
        "[compute]\nreclaim_instance_interval = 3600\n",
    )?;
    let image_file = cloud.data_dir.join("agent.img");
    std::fs::write(&image_file, vec![7u8; 4096])?;
    let image_path = image_file.display().to_string();
    openstack_json(
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
            "--property",
            "hw_qemu_guest_agent=yes",
            "agent-image",
        ],
    )?;
    let server = openstack_json(
        &cloud,
        &[
            "server",
            "create",
            "--flavor",
            "m1.tiny",
            "--image",
            "agent-image",
            "--nic",
            "none",
            "--wait",
            "soft-demo",
        ],
    )?;
    assert_eq!(server["status"], "ACTIVE", "{server}");
    // A soft-deleted server is in no default list (as in Nova): its id,
    // not its name, finds it.
    let id = server["id"].as_str().unwrap_or_default().to_string();

    openstack(
        &cloud,
        &["server", "set", "--password", "n3w-Secret", "soft-demo"],
    )?;
    openstack(&cloud, &["server", "set", "--no-password", "soft-demo"])?;
    openstack(
        &cloud,
        &[
            "--os-compute-api-version",
            "2.17",
            "server",
            "dump",
            "create",
            "soft-demo",
        ],
    )?;
    let diagnostics = openstack_json(
        &cloud,
        &[
            "--os-compute-api-version",
            "2.48",
            "server",
            "show",
            "--diagnostics",
            "soft-demo",
        ],
    )?;
    assert_eq!(diagnostics["state"], "running", "{diagnostics}");
    assert_eq!(diagnostics["driver"], "libvirt", "{diagnostics}");

    openstack(&cloud, &["server", "delete", &id])?;
    let shown = wait_status(&cloud, &id, "SOFT_DELETED")?;
    assert_eq!(shown["OS-EXT-STS:vm_state"], "soft-delete", "{shown}");
    openstack(&cloud, &["server", "restore", &id])?;
    wait_status(&cloud, &id, "ACTIVE")?;

    let actions = openstack_json(&cloud, &["server", "event", "list", &id])?;
    let names: Vec<&str> = actions
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|action| action["Action"].as_str())
                .collect()
        })
        .unwrap_or_default();
    for expected in [
        "create",
        "changePassword",
        "trigger_crash_dump",
        "delete",
        "restore",
    ] {
        assert!(names.contains(&expected), "{expected}: {actions}");
    }
    // `--force` is Nova's forceDelete: gone at once, soft delete or not.
    openstack(&cloud, &["server", "delete", "--force", "--wait", &id])?;
    Ok(())
}
