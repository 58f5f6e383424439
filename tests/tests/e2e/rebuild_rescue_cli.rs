//! Rebuild, rescue and unrescue with the real `openstack` CLI against the
//! real `novum serve` (all-in-one, an embedded agent on libvirt's test
//! driver): `server rebuild --image …` answers the server (with the
//! password) and boots the new image, `server rescue` (with `--image` and `--password`)
//! reaches RESCUE and `server unrescue` ACTIVE again.

use std::time::{Duration, Instant};

use novum_tests::{Cloud, openstack, openstack_json};

/// Waits until server `name` shows `status`; its `server show`.
fn wait_status(cloud: &Cloud, name: &str, status: &str) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let server = openstack_json(cloud, &["server", "show", name])?;
        if server["status"] == status {
            return Ok(server);
        }
        anyhow::ensure!(
            Instant::now() < deadline && server["status"] != "ERROR",
            "server {name} never reached {status}: {server}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn rebuild_rescue_and_unrescue_with_the_cli() -> anyhow::Result<()> {
    let _turn = novum_tests::shared_turn();
    let cloud = Cloud::start("rebuild-rescue", "")?;
    let image_file = cloud.data_dir.join("rebuild.img");
    std::fs::write(&image_file, vec![7u8; 4096])?;
    let image_path = image_file.display().to_string();
    let mut ids = Vec::new();
    for name in ["first-image", "second-image"] {
        let image = openstack_json(
            &cloud,
            &[
                "image",
                "create",
                "--file",
                &image_path,
                "--disk-format",
                "raw",
                name,
            ],
        )?;
        ids.push(image["id"].as_str().unwrap_or_default().to_string());
    }
    let server = openstack_json(
        &cloud,
        &[
            "server",
            "create",
            "--flavor",
            "m1.tiny",
            "--image",
            "first-image",
            "--nic",
            "none",
            "--wait",
            "phoenix",
        ],
    )?;
    assert_eq!(server["status"], "ACTIVE", "{server}");

    let rebuilt = openstack_json(
        &cloud,
        &[
            "server",
            "rebuild",
            "--image",
            "second-image",
            "--name",
            "phoenix",
            "--password",
            "s3cret",
            "--property",
            "rebuilt=yes",
            "phoenix",
        ],
    )?;
    assert_eq!(rebuilt["adminPass"], "s3cret", "{rebuilt}");
    let server = wait_status(&cloud, "phoenix", "ACTIVE")?;
    let image = server["image"].as_str().unwrap_or_default();
    assert!(image.contains(&ids[1]), "{server}");
    assert!(
        server["properties"].to_string().contains("rebuilt"),
        "{server}"
    );

    openstack(
        &cloud,
        &[
            "server",
            "rescue",
            "--image",
            "first-image",
            "--password",
            "rescue-pw",
            "phoenix",
        ],
    )?;
    wait_status(&cloud, "phoenix", "RESCUE")?;
    let refused = openstack(&cloud, &["server", "rescue", "phoenix"])
        .expect_err("a rescued server cannot be rescued again")
        .to_string();
    assert!(refused.contains("vm_state rescued"), "{refused}");
    openstack(&cloud, &["server", "unrescue", "phoenix"])?;
    wait_status(&cloud, "phoenix", "ACTIVE")?;

    openstack(&cloud, &["server", "delete", "--wait", "phoenix"])?;
    Ok(())
}
