//! Consoles with the real `openstack` CLI against the real `novum serve`
//! (all-in-one, an embedded agent on libvirt's test driver, which runs
//! nothing): `console log show --lines` prints the end of the log the
//! agent keeps of the domain, `console url
//! show --serial` a websocket URL on the controller with a one-time token.
//! A real guest's consoles are tested in the host's suite (`real_console`).

use novum_tests::{Cloud, openstack, openstack_json};

#[test]
fn console_log_and_serial_console_url() -> anyhow::Result<()> {
    let _turn = novum_tests::shared_turn();
    let cloud = Cloud::start("consoles", "")?;
    let image_file = cloud.data_dir.join("console.img");
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
            "console-image",
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
            "console-image",
            "--nic",
            "none",
            "--wait",
            "console-demo",
        ],
    )?;
    assert_eq!(server["status"], "ACTIVE", "{server}");

    let log = openstack(
        &cloud,
        &["console", "log", "show", "--lines", "5", "console-demo"],
    )?;
    // The test driver runs no guest: the agent's record of the domain.
    assert!(log.contains("] running"), "{log}");
    assert!(log.trim_end().lines().count() <= 5, "{log}");

    let console = openstack_json(
        &cloud,
        &["console", "url", "show", "--serial", "console-demo"],
    )?;
    assert_eq!(console["type"], "serial", "{console}");
    assert_eq!(console["protocol"], "serial", "{console}");
    let url = console["url"].as_str().unwrap_or_default();
    assert!(
        url.starts_with("ws://") && url.contains("/serial-console?token="),
        "{console}"
    );
    let novnc = openstack(
        &cloud,
        &["console", "url", "show", "--novnc", "console-demo"],
    );
    let refusal = novnc.expect_err("no VNC console").to_string();
    assert!(
        refusal.contains("Unavailable console type novnc"),
        "{refusal}"
    );

    openstack(&cloud, &["server", "delete", "--wait", "console-demo"])?;
    Ok(())
}
