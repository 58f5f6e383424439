//! A server's properties and tags, and the usage report, with the real
//! `openstack` CLI against the real `novum serve` (an embedded agent on
//! libvirt's test driver): `server set/unset --property`, `server set
//! --tag` / `unset --tag` (2.26), `usage list` and `usage show`.

use novum_tests::{Cloud, openstack, openstack_json};

#[test]
fn properties_tags_and_usage_with_the_cli() -> anyhow::Result<()> {
    let _turn = novum_tests::shared_turn();
    let cloud = Cloud::start("server-details", "")?;
    let image_file = cloud.data_dir.join("details.img");
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
            "details-image",
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
            "details-image",
            "--nic",
            "none",
            "--wait",
            "details-demo",
        ],
    )?;
    assert_eq!(server["status"], "ACTIVE", "{server}");

    openstack(
        &cloud,
        &[
            "server",
            "set",
            "--property",
            "tier=web",
            "--property",
            "owner=ops",
            "details-demo",
        ],
    )?;
    let shown = openstack_json(&cloud, &["server", "show", "details-demo"])?;
    assert_eq!(shown["properties"]["tier"], "web", "{shown}");
    assert_eq!(shown["properties"]["owner"], "ops", "{shown}");
    openstack(
        &cloud,
        &["server", "unset", "--property", "owner", "details-demo"],
    )?;
    let shown = openstack_json(&cloud, &["server", "show", "details-demo"])?;
    assert!(shown["properties"].get("owner").is_none(), "{shown}");
    assert_eq!(shown["properties"]["tier"], "web", "{shown}");

    let tagged = ["--os-compute-api-version", "2.26"];
    let with = |args: &[&'static str]| -> Vec<&'static str> {
        tagged.iter().chain(args.iter()).copied().collect()
    };
    openstack(
        &cloud,
        &with(&[
            "server",
            "set",
            "--tag",
            "blue",
            "--tag",
            "red",
            "details-demo",
        ]),
    )?;
    let shown = openstack_json(&cloud, &with(&["server", "show", "details-demo"]))?;
    let tags = shown["tags"].to_string();
    assert!(tags.contains("blue") && tags.contains("red"), "{shown}");
    openstack(
        &cloud,
        &with(&["server", "unset", "--tag", "red", "details-demo"]),
    )?;
    let listed = openstack_json(&cloud, &with(&["server", "list", "--tags", "blue"]))?;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let listed = openstack_json(&cloud, &with(&["server", "list", "--tags", "red"]))?;
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");

    // The usage report counts the server (admin: every project).
    let usage = openstack_json(&cloud, &["usage", "list"])?;
    let rows = usage.as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "{usage}");
    // `-f json` prints the counted column as the list it counts.
    assert_eq!(
        rows[0]["Servers"].as_array().map(Vec::len),
        Some(1),
        "{usage}"
    );
    let usage = openstack_json(&cloud, &["usage", "show"])?;
    assert_eq!(
        usage["Servers"].as_array().map(Vec::len),
        Some(1),
        "{usage}"
    );

    openstack(&cloud, &["server", "delete", "--wait", "details-demo"])?;
    Ok(())
}
