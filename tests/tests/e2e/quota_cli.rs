//! Quotas with the real `openstack` CLI against the real `novum serve` (one
//! embedded compute host): `quota show`, `quota set --instances 20` (sent at
//! compute microversion 2.56), `quota show --usage`, and `limits show
//! --absolute` with the limits and the counts in use. The network quotas the
//! CLI also asks for (the catalog has a network service) are
//! `network_cli`'s subject; there is no volume service.

use novum_tests::{Cloud, openstack, openstack_json};
use serde_json::Value;

/// The `Limit` (or another column) of `resource` in a `quota show` table.
fn quota(table: &Value, resource: &str, column: &str) -> Value {
    table
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["Resource"] == resource))
        .map(|row| row[column].clone())
        .unwrap_or_else(|| panic!("no {resource} in {table}"))
}

/// The value of `name` in a `limits show --absolute` table.
fn limit(table: &Value, name: &str) -> Value {
    table
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["Name"] == name))
        .map(|row| row["Value"].clone())
        .unwrap_or_else(|| panic!("no {name} in {table}"))
}

#[test]
fn quotas_and_limits_with_the_openstack_cli() {
    let _turn = novum_tests::shared_turn();
    let cloud = Cloud::start(
        "quota-cli",
        "[agent]\nembedded = true\nheartbeat_seconds = 1\n",
    )
    .expect("novum serve");
    let run = |args: &[&str]| openstack_json(&cloud, args).expect("openstack");

    // Defaults (Nova's), for another project.
    run(&["project", "create", "quota-cli"]);
    let shown = run(&["quota", "show", "quota-cli"]);
    assert_eq!(quota(&shown, "instances", "Limit"), 10, "{shown}");
    assert_eq!(quota(&shown, "cores", "Limit"), 20, "{shown}");
    assert_eq!(quota(&shown, "ram", "Limit"), 51_200, "{shown}");

    // Set, then show reflects it; the other limits stay.
    openstack(&cloud, &["quota", "set", "--instances", "20", "quota-cli"]).expect("quota set");
    let shown = run(&["quota", "show", "quota-cli"]);
    assert_eq!(quota(&shown, "instances", "Limit"), 20, "{shown}");
    assert_eq!(quota(&shown, "cores", "Limit"), 20, "{shown}");
    let limits = run(&["limits", "show", "--absolute", "--project", "quota-cli"]);
    assert_eq!(limit(&limits, "max_total_instances"), 20, "{limits}");
    assert_eq!(limit(&limits, "total_instances_used"), 0, "{limits}");

    // Usage: two m1.tiny servers in the admin project, whose quota is set too.
    openstack(&cloud, &["quota", "set", "--instances", "20", "admin"]).expect("quota set");
    let image = cloud.data_dir.join("image.raw");
    std::fs::write(&image, vec![0_u8; 4096]).expect("image file");
    let image = image.display().to_string();
    run(&[
        "image",
        "create",
        "tiny",
        "--disk-format",
        "raw",
        "--container-format",
        "bare",
        "--file",
        &image,
    ]);
    for name in ["quota-vm-1", "quota-vm-2"] {
        let server = run(&[
            "server", "create", "--flavor", "m1.tiny", "--image", "tiny", "--nic", "none",
            "--wait", name,
        ]);
        assert_eq!(server["status"], "ACTIVE", "{server}");
    }
    let limits = run(&["limits", "show", "--absolute"]);
    for (name, value) in [
        ("max_total_instances", 20),
        ("total_instances_used", 2),
        ("max_total_cores", 20),
        ("total_cores_used", 2),
        ("max_total_ram_size", 51_200),
        ("total_ram_used", 1024),
    ] {
        assert_eq!(limit(&limits, name), value, "{name}: {limits}");
    }
    let usage = run(&["quota", "show", "--usage", "admin"]);
    assert_eq!(quota(&usage, "instances", "Limit"), 20, "{usage}");
    assert_eq!(quota(&usage, "instances", "In Use"), 2, "{usage}");
    assert_eq!(quota(&usage, "cores", "In Use"), 2, "{usage}");
    assert_eq!(quota(&usage, "ram", "In Use"), 1024, "{usage}");

    // Below what is in use: Nova refuses without --force.
    let refused = openstack(&cloud, &["quota", "set", "--instances", "1", "admin"])
        .expect_err("a limit below usage is refused");
    assert!(refused.to_string().contains("400"), "{refused}");
}
