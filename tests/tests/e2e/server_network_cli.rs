//! Issue 10's compute side with the real clients: the `openstack` CLI
//! boots servers with `--network`, `--port`, `--nic net-id=…,v4-fixed-ip=…`,
//! `--nic auto` and no `--nic`, adds and removes ports and security groups,
//! and shows addresses; openstacksdk's `create_server(wait=True)` (the path
//! of Ansible's `openstack.cloud.server`) returns a server with an IP.

use std::process::Command;

use novum_tests::{Cloud, openstack, openstack_cli, openstack_json};
use serde_json::Value;

fn field<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The addresses of `server` as the CLI shows them (`addresses` is a
/// mapping of network name to addresses in JSON output).
fn addresses(cloud: &Cloud, server: &str) -> String {
    let shown = openstack_json(cloud, &["server", "show", server]).expect("server show");
    shown["addresses"].to_string()
}

/// openstacksdk's cloud layer, as Ansible uses it: create an image, a server
/// on a network with `wait=True`, read its IP, delete it.
const SDK_SCRIPT: &str = r#"
import json, os, openstack
conn = openstack.connect(
    auth_url=os.environ["OS_AUTH_URL"], username=os.environ["OS_USERNAME"],
    password=os.environ["OS_PASSWORD"], project_name=os.environ["OS_PROJECT_NAME"],
    user_domain_name="Default", project_domain_name="Default",
    region_name=os.environ["OS_REGION_NAME"])
path = os.environ["NOVUM_SDK_IMAGE"]
image = conn.create_image("sdk-image", filename=path, disk_format="raw",
                          container_format="bare", wait=True)
server = conn.create_server("sdk-server", image=image.id, flavor="m1.tiny",
                            network="cli-net", wait=True, timeout=120)
found = conn.get_server(server.id)
auto = conn.create_server("sdk-auto", image=image.id, flavor="m1.tiny",
                          auto_ip=True, wait=True, timeout=120)
print(json.dumps({
    "status": found.status,
    "private_v4": found.private_v4,
    "auto_v4": conn.get_server(auto.id).private_v4,
    "networks": sorted(n.name for n in conn.list_networks()),
    "groups": sorted(g.name for g in conn.list_security_groups()),
}))
conn.delete_server(server.id, wait=True, timeout=120)
conn.delete_server(auto.id, wait=True, timeout=120)
"#;

#[test]
fn servers_on_networks_with_the_cli_and_the_sdk() {
    let _turn = novum_tests::shared_turn();
    let cloud = Cloud::start("server-net", "").expect("cloud");
    let run = |args: &[&str]| {
        openstack_json(&cloud, args).unwrap_or_else(|error| panic!("{args:?}: {error:#}"))
    };
    let image_file = cloud.data_dir.join("net.img");
    std::fs::write(&image_file, vec![3u8; 4096]).expect("image file");
    let image_path = image_file.display().to_string();
    run(&[
        "image",
        "create",
        "--file",
        &image_path,
        "--disk-format",
        "raw",
        "net-image",
    ]);
    run(&["network", "create", "cli-net"]);
    run(&[
        "subnet",
        "create",
        "--network",
        "cli-net",
        "--subnet-range",
        "192.168.77.0/24",
        "cli-subnet",
    ]);
    run(&["port", "create", "--network", "cli-net", "cli-port"]);
    run(&["security", "group", "create", "cli-web"]);
    run(&[
        "security",
        "group",
        "rule",
        "create",
        "--protocol",
        "tcp",
        "--dst-port",
        "22",
        "cli-web",
    ]);
    let boot = |name: &str, nic: &[&str]| {
        let mut args = vec![
            "server",
            "create",
            "--flavor",
            "m1.tiny",
            "--image",
            "net-image",
            "--wait",
        ];
        args.extend_from_slice(nic);
        args.push(name);
        let server = run(&args);
        assert_eq!(field(&server, "status"), "ACTIVE", "{name}: {server}");
        server
    };

    boot("by-network", &["--network", "cli-net"]);
    assert!(addresses(&cloud, "by-network").contains("192.168.77."));
    boot("by-port", &["--port", "cli-port"]);
    let shown = run(&["port", "show", "cli-port"]);
    assert_eq!(field(&shown, "status"), "ACTIVE", "{shown}");
    let net_id = field(&run(&["network", "show", "cli-net"]), "id").to_string();
    let nic = format!("net-id={net_id},v4-fixed-ip=192.168.77.123");
    boot("by-nic", &["--nic", &nic]);
    assert!(
        addresses(&cloud, "by-nic").contains("192.168.77.123"),
        "{}",
        addresses(&cloud, "by-nic")
    );
    boot("auto-nic", &["--nic", "auto"]);
    assert!(addresses(&cloud, "auto-nic").contains("10.0."));
    boot("no-nic", &[]);
    assert!(addresses(&cloud, "no-nic").contains("shared"));
    boot(
        "with-group",
        &["--network", "cli-net", "--security-group", "cli-web"],
    );
    let shown = run(&["server", "show", "with-group"]);
    assert!(
        shown["security_groups"].to_string().contains("cli-web"),
        "{shown}"
    );

    // A port in use, an address outside the subnet: refused at create.
    let refused = openstack(
        &cloud,
        &[
            "server",
            "create",
            "--flavor",
            "m1.tiny",
            "--image",
            "net-image",
            "--port",
            "cli-port",
            "taken",
        ],
    )
    .expect_err("the port is in use");
    assert!(refused.to_string().contains("409"), "{refused:#}");

    // Ports and groups on a running server.
    let extra = run(&["port", "create", "--network", "cli-net", "extra-port"]);
    openstack(
        &cloud,
        &["server", "add", "port", "by-network", "extra-port"],
    )
    .expect("add port");
    let extra_ip = extra["fixed_ips"].to_string();
    assert!(extra_ip.contains("192.168.77."), "{extra}");
    let interfaces = || {
        openstack_json(&cloud, &["port", "list", "--server", "by-network"])
            .expect("port list")
            .as_array()
            .map(Vec::len)
            .unwrap_or_default()
    };
    assert_eq!(interfaces(), 2);
    openstack(
        &cloud,
        &["server", "remove", "port", "by-network", "extra-port"],
    )
    .expect("remove port");
    assert_eq!(interfaces(), 1);
    let kept = run(&["port", "show", "extra-port"]);
    assert_eq!(
        field(&kept, "device_id"),
        "",
        "the user's port is kept: {kept}"
    );
    openstack(
        &cloud,
        &[
            "server",
            "add",
            "security",
            "group",
            "by-network",
            "cli-web",
        ],
    )
    .expect("add group");
    let shown = run(&["server", "show", "by-network"]);
    assert!(
        shown["security_groups"].to_string().contains("cli-web"),
        "{shown}"
    );
    openstack(
        &cloud,
        &[
            "server",
            "remove",
            "security",
            "group",
            "by-network",
            "cli-web",
        ],
    )
    .expect("remove group");
    let shown = run(&["server", "show", "by-network"]);
    assert!(
        !shown["security_groups"].to_string().contains("cli-web"),
        "{shown}"
    );

    // Deleting the server keeps the user's port, unbound.
    openstack(&cloud, &["server", "delete", "--wait", "by-port"]).expect("delete");
    let kept = run(&["port", "show", "cli-port"]);
    assert_eq!(field(&kept, "device_id"), "", "{kept}");

    // openstacksdk's create_server(wait=True) gets a server with an IP.
    let python = openstack_cli()
        .and_then(|cli| cli.parent().map(|bin| bin.join("python")))
        .expect("the CLI's venv");
    let output = Command::new(python)
        .args(["-c", SDK_SCRIPT])
        .envs(cloud.cli_env())
        .env("NOVUM_SDK_IMAGE", &image_path)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "openstacksdk failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let sdk: Value = serde_json::from_slice(&output.stdout).expect("sdk json");
    assert_eq!(sdk["status"], "ACTIVE", "{sdk}");
    assert!(
        field(&sdk, "private_v4").starts_with("192.168.77."),
        "{sdk}"
    );
    assert!(field(&sdk, "auto_v4").starts_with("10.0."), "{sdk}");
}
