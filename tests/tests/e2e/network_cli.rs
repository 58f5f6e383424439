//! The Network API with the real clients against the real `novum serve`:
//! the `openstack` CLI creates a network, a subnet, a port with a fixed
//! address, a security group and an SSH rule, lists and shows them, shows
//! and sets the network quotas, and is refused deleting a network in use;
//! openstacksdk (the CLI's venv) lists networks and security groups through
//! its network proxy and its cloud layer.

use std::process::Command;

use novum_tests::{Cloud, openstack, openstack_cli, openstack_json};
use serde_json::Value;

/// The `Limit` of `resource` in a `quota show` table.
fn quota(table: &Value, resource: &str) -> Value {
    table
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["Resource"] == resource))
        .map(|row| row["Limit"].clone())
        .unwrap_or_else(|| panic!("no {resource} in {table}"))
}

/// The `Name` column of a list.
fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .filter_map(|row| row["Name"].as_str().map(str::to_string))
        .collect()
}

/// What the SDK script prints: networks by the proxy and by the cloud
/// layer, security groups by the cloud layer, the admin project's quota.
const SDK_SCRIPT: &str = r#"
import json
import openstack

conn = openstack.connect()
proxy = sorted(network.name for network in conn.network.networks())
cloud = sorted(network["name"] for network in conn.list_networks())
groups = sorted(group["name"] for group in conn.list_security_groups())
subnets = sorted(subnet["cidr"] for subnet in conn.list_subnets())
extensions = sorted(extension.alias for extension in conn.network.extensions())
paged = [network.name for network in conn.network.networks(limit=1, sort_key="name", sort_dir="asc")]
print(json.dumps({
    "proxy": proxy,
    "cloud": cloud,
    "groups": groups,
    "subnets": subnets,
    "extensions": extensions,
    "paged": paged,
}))
"#;

#[test]
fn networks_ports_and_security_groups_with_the_openstack_cli_and_sdk() {
    let _turn = novum_tests::shared_turn();
    let cloud = Cloud::start("network-cli", "").expect("novum serve");
    let run = |args: &[&str]| openstack_json(&cloud, args).expect("openstack");

    let network = run(&["network", "create", "cli-net"]);
    assert_eq!(network["name"], "cli-net", "{network}");
    assert_eq!(network["status"], "ACTIVE", "{network}");
    let network_id = network["id"].as_str().expect("id").to_string();

    let subnet = run(&[
        "subnet",
        "create",
        "--network",
        "cli-net",
        "--subnet-range",
        "192.168.50.0/24",
        "cli-subnet",
    ]);
    assert_eq!(subnet["cidr"], "192.168.50.0/24", "{subnet}");
    assert_eq!(subnet["gateway_ip"], "192.168.50.1", "{subnet}");
    assert_eq!(subnet["network_id"], network_id.as_str(), "{subnet}");

    let port = run(&[
        "port",
        "create",
        "--network",
        "cli-net",
        "--fixed-ip",
        "subnet=cli-subnet,ip-address=192.168.50.10",
        "cli-port",
    ]);
    assert!(
        port["fixed_ips"].to_string().contains("192.168.50.10"),
        "{port}"
    );
    let mac = port["mac_address"].as_str().expect("mac").to_string();
    assert!(mac.starts_with("fa:16:3e:"), "{port}");

    let group = run(&["security", "group", "create", "cli-web"]);
    assert_eq!(group["name"], "cli-web", "{group}");
    let rule = run(&[
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
    assert_eq!(rule["port_range_min"], 22, "{rule}");
    assert_eq!(rule["port_range_max"], 22, "{rule}");
    assert_eq!(rule["protocol"], "tcp", "{rule}");
    assert_eq!(rule["direction"], "ingress", "{rule}");
    let groups = run(&["security", "group", "list"]);
    let mut group_names = names(&groups);
    group_names.sort();
    assert_eq!(group_names, ["cli-web", "default"], "{groups}");
    let rules = run(&["security", "group", "rule", "list", "cli-web"]);
    assert_eq!(rules.as_array().map(Vec::len), Some(3), "{rules}");

    let networks = run(&["network", "list"]);
    let mut network_names = names(&networks);
    network_names.sort();
    assert_eq!(network_names, ["cli-net", "shared"], "{networks}");
    let shown = run(&["port", "show", "cli-port"]);
    assert_eq!(shown["mac_address"], mac.as_str(), "{shown}");
    assert_eq!(shown["network_id"], network_id.as_str(), "{shown}");
    let ports = run(&["port", "list", "--network", "cli-net"]);
    assert_eq!(ports.as_array().map(Vec::len), Some(1), "{ports}");

    // Network quotas appear beside compute's; setting one is seen.
    let quotas = run(&["quota", "show"]);
    assert_eq!(quota(&quotas, "networks"), 100, "{quotas}");
    assert_eq!(quota(&quotas, "ports"), 500, "{quotas}");
    assert_eq!(quota(&quotas, "subnets"), 100, "{quotas}");
    assert_eq!(quota(&quotas, "security_groups"), 10, "{quotas}");
    assert_eq!(quota(&quotas, "security_group_rules"), 100, "{quotas}");
    assert_eq!(quota(&quotas, "instances"), 10, "{quotas}");
    openstack(&cloud, &["quota", "set", "--networks", "7", "admin"]).expect("quota set");
    let quotas = run(&["quota", "show", "admin"]);
    assert_eq!(quota(&quotas, "networks"), 7, "{quotas}");
    let usage = run(&["quota", "show", "--usage", "admin"]);
    let networks_row = usage
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["Resource"] == "networks"))
        .cloned()
        .expect("networks usage");
    // The shared default network is the admin project's too.
    assert_eq!(networks_row["In Use"], 2, "{usage}");
    // Get-me-a-network: the shared default network.
    let shared_id = networks
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["Name"] == "shared"))
        .and_then(|row| row["ID"].as_str())
        .expect("the shared network")
        .to_string();
    let topology = run(&["network", "auto", "allocated", "topology", "create"]);
    assert_eq!(topology["id"], shared_id.as_str(), "{topology}");
    let check = run(&[
        "network",
        "auto",
        "allocated",
        "topology",
        "create",
        "--check-resources",
    ]);
    // Neutron answers `{"id": "dry-run=pass"}`; the CLI shows a `dry_run`
    // column it never fills (as against Neutron): success is the answer.
    assert!(check.get("dry_run").is_some(), "{check}");
    let extensions = run(&["extension", "list", "--network"]);
    assert!(
        extensions.to_string().contains("security-group"),
        "{extensions}"
    );

    // In use: refused with Neutron's 409.
    let refused = openstack(&cloud, &["network", "delete", "cli-net"])
        .expect_err("a network with a port is in use");
    assert!(refused.to_string().contains("409"), "{refused}");

    // openstacksdk: the network proxy and the cloud layer.
    let python = openstack_cli()
        .and_then(|cli| cli.parent().map(|bin| bin.join("python")))
        .expect("the CLI's venv");
    let output = Command::new(python)
        .args(["-c", SDK_SCRIPT])
        .envs(cloud.cli_env())
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "openstacksdk failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let sdk: Value = serde_json::from_slice(&output.stdout).expect("sdk json");
    assert_eq!(
        sdk["proxy"],
        serde_json::json!(["cli-net", "shared"]),
        "{sdk}"
    );
    assert_eq!(
        sdk["cloud"],
        serde_json::json!(["cli-net", "shared"]),
        "{sdk}"
    );
    assert_eq!(
        sdk["groups"],
        serde_json::json!(["cli-web", "default"]),
        "{sdk}"
    );
    assert!(
        sdk["subnets"]
            .as_array()
            .is_some_and(|cidrs| cidrs.iter().any(|cidr| cidr == "192.168.50.0/24")),
        "{sdk}"
    );
    assert!(
        sdk["extensions"]
            .as_array()
            .is_some_and(|aliases| aliases.iter().any(|alias| alias == "port-security")),
        "{sdk}"
    );
    // limit=1 pages through the links to every network.
    assert_eq!(
        sdk["paged"],
        serde_json::json!(["cli-net", "shared"]),
        "{sdk}"
    );

    // Clean up in order: the port, then the network goes.
    openstack(&cloud, &["port", "delete", "cli-port"]).expect("port delete");
    openstack(&cloud, &["security", "group", "delete", "cli-web"]).expect("group delete");
    openstack(&cloud, &["network", "delete", "cli-net"]).expect("network delete");
    let networks = run(&["network", "list"]);
    assert_eq!(names(&networks), ["shared"], "{networks}");
}
