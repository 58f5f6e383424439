//! The real Tempest (installed by tests/bootstrap.sh next to the `openstack`
//! CLI) runs its whole compute API package (`tempest.api.compute`, with the
//! network service on) against the real `novum serve` (two embedded hosts on
//! libvirt's test driver); what novum does not serve yet is excluded in
//! [`EXCLUDE`], each with its reason and the issue it waits for. Tempest
//! checks every response body against Nova's JSON schemas, so this pins the
//! body shapes at microversion 2.1 as well as the behaviour. Credentials are
//! Tempest's dynamic ones: it creates its projects, users and role grants
//! through novum's Keystone subset as the admin.

use std::path::{Path, PathBuf};
use std::process::Command;

use novum_tests::{ADMIN_PASSWORD, Cloud, openstack_cli};

/// The Tempest tests that run, one regular expression per line (Tempest's
/// `--include-list`). Tests that need what novum lacks are skipped by the
/// feature flags in [`tempest_conf`] or excluded in [`EXCLUDE`]. For a quick
/// local iteration, `NOVUM_TEMPEST_INCLUDE` replaces this list with its own
/// regular expressions, one per line (or separated by `;`), e.g.
/// `NOVUM_TEMPEST_INCLUDE='\.compute\.security_groups\.'`; the count check
/// at the end is then skipped.
const INCLUDE: &[&str] = &[r"^tempest\.api\.compute\."];

/// The scheduler filters the Tempest cloud enables, as novum's plugin
/// names and Nova's class names (what `tempest.conf` tells Tempest): novum's
/// default list plus `SameHostFilter` and `DifferentHostFilter`, as
/// devstack enables them, so Tempest runs its tests of the `same_host` and
/// `different_host` hints.
const SCHEDULER_FILTERS: &[(&str, &str)] = &[
    ("compute-filter", "ComputeFilter"),
    ("compute-capabilities-filter", "ComputeCapabilitiesFilter"),
    ("image-properties-filter", "ImagePropertiesFilter"),
    (
        "server-group-anti-affinity-filter",
        "ServerGroupAntiAffinityFilter",
    ),
    ("server-group-affinity-filter", "ServerGroupAffinityFilter"),
    ("availability-zone-filter", "AvailabilityZoneFilter"),
    ("same-host-filter", "SameHostFilter"),
    ("different-host-filter", "DifferentHostFilter"),
];

/// The include list: [`INCLUDE`], or `NOVUM_TEMPEST_INCLUDE`'s when set
/// (then `true`: a partial run).
fn include_list() -> (Vec<String>, bool) {
    match std::env::var("NOVUM_TEMPEST_INCLUDE") {
        Ok(custom) if !custom.trim().is_empty() => (
            custom
                .split(['\n', ';'])
                .map(str::trim)
                .filter(|pattern| !pattern.is_empty())
                .map(str::to_string)
                .collect(),
            true,
        ),
        _ => (
            INCLUDE.iter().map(|pattern| pattern.to_string()).collect(),
            false,
        ),
    }
}

// Why the tests Tempest skips are skipped (its own skip messages, from the
// run of 2026-12-06 with the `tempest_conf` below: 450 passed, 65
// skipped, 0 failed; 14 of the package's tests excluded below). Each is a
// service novum does not offer, a feature that is still open, or what
// Tempest itself skips when Neutron backs Nova's proxies, never a failure
// hidden:
// - the volume service (Cinder), absent: every volume, attach and
//   boot-from-volume test (26);
// - guest validation off (`[validation] run_validation = false`: the
//   embedded agents run libvirt's test driver, whose domains run no guest
//   to log into): the tests that ssh into a guest or need its ACPI (10);
// - live migration and cold migration run since (issue 14): a run of
//   `NOVUM_TEMPEST_INCLUDE='live_migrat|migrat'` on 2026-12-06 gave 16
//   passed, 19 skipped (volumes, serial consoles, vTPM, trunks), 0 failed,
//   so the next whole run's counts are to be measured again;
// - stable device rescue (2.87 images with `hw_rescue_device`): 3;
// - VNC and SPICE consoles (only the serial console is served): 3;
// - personality files (accepted, not injected), `OS-DCF:diskConfig`
//   AUTO, FQDN hostname sanitization, image certificate validation: 6;
// - the security group proxy's negative tests Tempest skips with Neutron
//   behind it (duplicate names allowed; ids, names and descriptions not
//   checked on update; its bug 1161411 on create): 6;
// - nova-network, public networks (floating IPs): 2; Tempest's own
//   known-bug skips: 3.

/// Tests in [`INCLUDE`] that novum does not pass, each for a reason given
/// beside it (Tempest's `--exclude-list`).
const EXCLUDE: &[&str] = &[
    // Floating IPs need Neutron's L3 (routers, floating IPs), which the
    // built-in network service does not have.
    r"\.compute\.floating_ips\.",
];

/// The `tempest` entry point installed beside the `openstack` CLI.
pub(crate) fn tempest_bin() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("NOVUM_TEMPEST") {
        return Some(PathBuf::from(path));
    }
    let cli = openstack_cli()?;
    let tempest = cli.parent()?.join("tempest");
    tempest.exists().then_some(tempest)
}

/// Tempest's configuration for `cloud`: dynamic credentials through the
/// admin, the two images, the default flavors, and the features novum lacks
/// turned off.
fn tempest_conf(
    cloud: &Cloud,
    workspace: &Path,
    image: &str,
    image_alt: &str,
    extensions: &str,
) -> String {
    let url = &cloud.url;
    let dir = workspace.display();
    let filters = SCHEDULER_FILTERS
        .iter()
        .map(|(_, nova)| *nova)
        .collect::<Vec<_>>()
        .join(",");
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

[compute]
image_ref = {image}
image_ref_alt = {image_alt}
flavor_ref = 1
flavor_ref_alt = 2
fixed_network_name = shared
build_timeout = 60
build_interval = 1
min_compute_nodes = 2
min_microversion = 2.1
max_microversion = 2.104

[compute-feature-enabled]
scheduler_enabled_filters = {filters}
console_output = true
resize = true
pause = true
suspend = true
shelve = true
shelve_migrate = false
snapshot = true
rescue = true
cold_migration = true
live_migration = true
block_migration_for_live_migration = true
interface_attach = true
personality = false
change_password = true
metadata_service = true
config_drive = true
attach_encrypted_volume = false
enable_instance_password = true
vnc_console = false
spice_console = false
serial_console = false
disk_config = false

[service_available]
nova = true
glance = true
neutron = true
cinder = false
swift = false
placement = false

[network]
project_network_cidr = 10.100.0.0/16
project_network_mask_bits = 28
shared_physical_network = false

[network-feature-enabled]
api_extensions = {extensions}
ipv6 = true
port_security = true

[validation]
run_validation = false
"#
    )
}

/// The aliases of the Network API extensions `cloud` serves, comma
/// separated (Tempest skips the tests of any other).
fn network_extensions(cloud: &Cloud, token: &str) -> anyhow::Result<String> {
    let listed: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{}/network/v2.0/extensions", cloud.url))
        .header("x-auth-token", token)
        .send()?
        .error_for_status()?
        .json()?;
    let aliases: Vec<&str> = listed["extensions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|extension| extension["alias"].as_str())
        .collect();
    anyhow::ensure!(!aliases.is_empty(), "no network extensions: {listed}");
    Ok(aliases.join(","))
}

/// The lines of Tempest's output worth showing: the totals and every failure
/// with its traceback.
pub(crate) fn summary(output: &str) -> String {
    let mut shown = Vec::new();
    let mut in_failure = false;
    for line in output.lines() {
        if line.starts_with("{0}") {
            in_failure = line.contains("... FAILED");
        }
        if in_failure
            || line.starts_with("Totals")
            || line.starts_with(" - ")
            || line.starts_with("Sum of")
            || line.starts_with("==============================")
            || line.starts_with("Failed ")
        {
            shown.push(line);
        }
    }
    shown.join("\n")
}

/// The count Tempest prints after ` - {label}: ` in its totals.
pub(crate) fn total(output: &str, label: &str) -> Option<u32> {
    output.lines().find_map(|line| {
        line.strip_prefix(&format!(" - {label}: "))
            .and_then(|rest| rest.trim().parse().ok())
    })
}

#[test]
fn tempest_compute_api_subset() -> anyhow::Result<()> {
    let _turn = novum_tests::shared_turn();
    let tempest = tempest_bin().ok_or_else(|| {
        anyhow::anyhow!(
            "tempest is missing: run tests/bootstrap.sh (it installs it beside the openstack CLI)"
        )
    })?;
    let filters = SCHEDULER_FILTERS
        .iter()
        .map(|(plugin, _)| format!("{plugin:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let cloud = Cloud::start(
        "tempest",
        &format!("[agent]\nembedded_hosts = 2\n\n[scheduler]\nenabled_filters = [{filters}]\n"),
    )?;
    let token = cloud.admin_token()?;
    // Images whose guests run the QEMU guest agent, as changePassword needs.
    let guest_agent = serde_json::json!({"hw_qemu_guest_agent": "yes"});
    let image = cloud.create_image_with(&token, "tempest-image", guest_agent.clone())?;
    let image_alt = cloud.create_image_with(&token, "tempest-image-alt", guest_agent)?;

    // A workspace of our own, no `tempest init`: that would register it in
    // ~/.tempest. `tempest run --config-file` writes .stestr.conf here.
    let workspace = cloud.data_dir.join("tempest");
    for dir in ["etc", "logs", "locks"] {
        std::fs::create_dir_all(workspace.join(dir))?;
    }
    std::fs::write(
        workspace.join("etc/tempest.conf"),
        tempest_conf(
            &cloud,
            &workspace,
            &image,
            &image_alt,
            &network_extensions(&cloud, &token)?,
        ),
    )?;
    let (include, partial) = include_list();
    std::fs::write(workspace.join("include.txt"), include.join("\n") + "\n")?;
    std::fs::write(workspace.join("exclude.txt"), EXCLUDE.join("\n") + "\n")?;

    // Tempest runs stestr, which runs the tests with the venv's Python.
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
            "2",
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
        "tempest: {passed} passed, {skipped} skipped, {failed} failed in {:?}",
        started.elapsed()
    );
    assert!(
        run.status.success() && failed == 0,
        "tempest run failed ({}):\n{}\n\nfull output:\n{output}",
        run.status,
        summary(&output)
    );
    // A run where everything skipped would pass too: hold the count up.
    assert!(
        partial || passed >= 400,
        "only {passed} Tempest tests passed:\n{output}"
    );
    Ok(())
}
