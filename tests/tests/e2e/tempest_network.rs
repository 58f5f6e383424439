//! The real Tempest runs its network API tests (`tempest.api.network`)
//! against the real `novum serve` with only the network service counted on
//! (`[service_available] neutron = true`, nova and glance off, so no class
//! needs a server), and the extensions Tempest may use are exactly those
//! `GET /v2.0/extensions` names. Tests that need what the Network API does
//! not serve (routers, floating IPs, agents) are excluded in [`EXCLUDE`],
//! each with its reason; the rest must pass. Credentials are Tempest's
//! dynamic ones, made through novum's Keystone subset as the admin.

use std::path::Path;
use std::process::Command;

use novum_tests::{ADMIN_PASSWORD, Cloud};

use crate::tempest::{summary, tempest_bin, total};

/// The extensions of novum's Network API (`GET /v2.0/extensions`), which
/// Tempest's `requires_ext` checks against.
const EXTENSIONS: &str = "allowed-address-pairs,auto-allocated-topology,binding,external-net,\
filter-validation,network-mtu,network-mtu-writable,pagination,port-security,project-id,\
provider,quota-check-limit,quota_details,quotas,security-group,sorting,\
standard-attr-description,standard-attr-revisions,standard-attr-timestamp,\
stateful-security-group";

/// Tests of `tempest.api.network` novum does not pass, each for a reason
/// given beside it (Tempest's `--exclude-list`).
const EXCLUDE: &[&str] = &[
    // No routers: these create one (or list them in their cleanup) without
    // asking for the `router` extension.
    r"\.test_ports\.PortsTestJSON\.test_port_list_filter_by_router_id\b",
    r"\.test_ports\.PortsIpV6TestJSON\.test_port_list_filter_by_router_id\b",
    r"\.test_dhcp_ipv6\.NetworksTestDHCPv6\.",
    // No floating IPs.
    r"\.test_external_network_extension\.ExternalNetworksTestJSON\.test_delete_external_networks_with_floating_ip\b",
    // No agents API (`GET /v2.0/agents`).
    r"\.test_agent_management_negative\.AgentManagementNegativeTest\.test_list_agents_non_admin\b",
    // Deleting a SLAAC or DHCPv6-stateless subnet whose addresses ports
    // hold: Neutron removes those addresses, novum-network refuses with
    // SubnetInUse.
    r"\.test_networks\.NetworksIpV6TestAttrs\.test_create_delete_slaac_subnet_with_ports\b",
    r"\.test_networks\.NetworksIpV6TestAttrs\.test_create_delete_stateless_subnet_with_ports\b",
];

/// Tempest's configuration for `cloud`'s network API.
fn tempest_conf(cloud: &Cloud, workspace: &Path) -> String {
    let url = &cloud.url;
    let dir = workspace.display();
    format!(
        r#"[DEFAULT]
log_dir = {dir}/logs
log_file = tempest.log

[oslo_concurrency]
lock_path = {dir}/locks

[auth]
use_dynamic_credentials = true
create_isolated_networks = false
admin_username = admin
admin_password = {ADMIN_PASSWORD}
admin_project_name = admin
admin_domain_name = Default
default_credentials_domain_name = Default

[identity]
uri_v3 = {url}/identity/v3
auth_version = v3
region = RegionOne

[network]
project_network_cidr = 10.100.0.0/16
project_network_mask_bits = 28
project_network_v6_cidr = 2001:db8::/48
project_network_v6_mask_bits = 64
project_networks_reachable = false
shared_physical_network = false

[network-feature-enabled]
ipv6 = true
ipv6_subnet_attributes = true
api_extensions = {EXTENSIONS}

[service_available]
nova = false
glance = false
neutron = true
cinder = false
swift = false
placement = false
"#
    )
}

#[test]
fn tempest_network_api() -> anyhow::Result<()> {
    let _turn = novum_tests::shared_turn();
    let tempest = tempest_bin().ok_or_else(|| {
        anyhow::anyhow!(
            "tempest is missing: run tests/bootstrap.sh (it installs it beside the openstack CLI)"
        )
    })?;
    let cloud = Cloud::start("tempest-network", "")?;
    let workspace = cloud.data_dir.join("tempest");
    for dir in ["etc", "logs", "locks"] {
        std::fs::create_dir_all(workspace.join(dir))?;
    }
    std::fs::write(
        workspace.join("etc/tempest.conf"),
        tempest_conf(&cloud, &workspace),
    )?;
    std::fs::write(
        workspace.join("include.txt"),
        "^tempest\\.api\\.network\\.\n",
    )?;
    std::fs::write(workspace.join("exclude.txt"), EXCLUDE.join("\n") + "\n")?;
    let venv_bin = tempest.parent().map(Path::to_path_buf).unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(venv_bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    let started = std::time::Instant::now();
    let run = Command::new(&tempest)
        .args([
            "run",
            "--config-file",
            "etc/tempest.conf",
            "--include-list",
            "include.txt",
            "--exclude-list",
            "exclude.txt",
            "--concurrency",
            "1",
        ])
        .current_dir(&workspace)
        .env("PATH", path)
        .output()?;
    let output = format!(
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let passed = total(&output, "Passed").unwrap_or(0);
    let skipped = total(&output, "Skipped").unwrap_or(0);
    let failed = total(&output, "Failed").unwrap_or(0);
    eprintln!(
        "tempest network: {passed} passed, {skipped} skipped, {failed} failed in {:?}",
        started.elapsed()
    );
    assert!(
        run.status.success() && failed == 0,
        "tempest run failed ({}):\n{}\n\nfull output:\n{output}",
        run.status,
        summary(&output)
    );
    // A run where everything skipped would pass too: hold the count up
    // (147 passed when this was written).
    assert!(
        passed >= 140,
        "only {passed} Tempest tests passed:\n{output}"
    );
    Ok(())
}
