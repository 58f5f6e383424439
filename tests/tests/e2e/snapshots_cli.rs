//! Snapshots, backups and shelving with the real `openstack` CLI against
//! the real `novum serve` (all-in-one, an embedded agent on libvirt's test
//! driver): `server image create --wait` makes an active snapshot a server
//! boots from, `server backup create` keeps `--rotate` backups, `server
//! shelve` offloads the server (SHELVED_OFFLOADED) and `server unshelve`
//! brings it back ACTIVE.

use std::time::{Duration, Instant};

use novum_tests::{Cloud, openstack, openstack_json};

/// Waits until `openstack server show NAME` says `status`.
fn wait_status(cloud: &Cloud, name: &str, status: &str) -> anyhow::Result<serde_json::Value> {
    let since = Instant::now();
    loop {
        let server = openstack_json(cloud, &["server", "show", name])?;
        if server["status"] == status && server["OS-EXT-STS:task_state"].is_null() {
            return Ok(server);
        }
        anyhow::ensure!(
            since.elapsed() < Duration::from_secs(120),
            "{name} never {status}: {server}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn server_image_backup_shelve_and_unshelve() -> anyhow::Result<()> {
    let _turn = novum_tests::shared_turn();
    let cloud = Cloud::start("snapshots", "")?;
    let image_file = cloud.data_dir.join("snapshots.img");
    std::fs::write(&image_file, vec![3u8; 8192])?;
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
            "snapshots-base",
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
            "snapshots-base",
            "--nic",
            "none",
            "--wait",
            "snap-demo",
        ],
    )?;
    assert_eq!(server["status"], "ACTIVE", "{server}");

    let image = openstack_json(
        &cloud,
        &[
            "server",
            "image",
            "create",
            "--wait",
            "--name",
            "snap-demo-image",
            "snap-demo",
        ],
    )?;
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(image["name"], "snap-demo-image", "{image}");
    wait_status(&cloud, "snap-demo", "ACTIVE")?;
    let child = openstack_json(
        &cloud,
        &[
            "server",
            "create",
            "--flavor",
            "m1.tiny",
            "--image",
            "snap-demo-image",
            "--nic",
            "none",
            "--wait",
            "snap-child",
        ],
    )?;
    assert_eq!(child["status"], "ACTIVE", "{child}");

    for index in 0..2 {
        openstack(
            &cloud,
            &[
                "server",
                "backup",
                "create",
                "--name",
                &format!("snap-backup-{index}"),
                "--type",
                "daily",
                "--rotate",
                "1",
                "--wait",
                "snap-demo",
            ],
        )?;
        wait_status(&cloud, "snap-demo", "ACTIVE")?;
    }
    let since = Instant::now();
    loop {
        let images = openstack_json(&cloud, &["image", "list", "--private"])?;
        let backups: Vec<String> = images
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|image| image["Name"].as_str())
            .filter(|name| name.starts_with("snap-backup-"))
            .map(str::to_string)
            .collect();
        if backups == ["snap-backup-1"] {
            break;
        }
        anyhow::ensure!(
            since.elapsed() < Duration::from_secs(60),
            "rotation 1 keeps the newest backup only: {backups:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    openstack(&cloud, &["server", "shelve", "snap-demo"])?;
    let shelved = wait_status(&cloud, "snap-demo", "SHELVED_OFFLOADED")?;
    assert!(shelved["OS-EXT-SRV-ATTR:host"].is_null(), "{shelved}");
    openstack(&cloud, &["server", "unshelve", "snap-demo"])?;
    let back = wait_status(&cloud, "snap-demo", "ACTIVE")?;
    assert!(back["OS-EXT-SRV-ATTR:host"].is_string(), "{back}");

    openstack(
        &cloud,
        &["server", "delete", "--wait", "snap-demo", "snap-child"],
    )?;
    Ok(())
}
