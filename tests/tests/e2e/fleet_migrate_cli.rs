//! Cold migration across a fleet of namespaced hosts (issue 14), through
//! the real `openstack` CLI: three hosts, each a network namespace running
//! its own `novum-agent` on libvirt's test driver and registering with the
//! real `novum serve` over HTTP (`novum_tests::fleet`). A server on a
//! network migrates to the scheduler's choice (never its own host) and is
//! confirmed, then to a named host (`--host`, 2.56) and is reverted; after
//! each step the claims (`os-hypervisors`), the libvirt domains (each
//! agent's domain store) and the port's binding are where they should be:
//! both hosts while VERIFY_RESIZE, nothing on the source after a confirm,
//! nothing on the destination after a revert. Nova's refusals of a named
//! host (its own, an unknown one) come back through the CLI, a migration
//! with every other host disabled finds no valid host and leaves the
//! server where it was, and disabling a host keeps new builds away from
//! it while its servers are migrated off (a drain), then re-enabling it
//! lets builds land there again. Last, failure detection: a disabled host's
//! servers show `host_status` MAINTENANCE, a forced-down one's (2.11) DOWN
//! at once, and when a host's agent is killed its servers turn UNKNOWN and
//! its hypervisor `down` after `service_down_time`.

use std::collections::BTreeMap;

use novum_tests::fleet::{self, Fleet, HostSize};
use novum_tests::{Cloud, openstack, openstack_json};
use reqwest::Method;
use serde_json::Value;

use crate::agent_process::{server, wait_for, wait_status};

/// Runs the CLI, failing the test with its output when it fails.
pub(crate) fn cli(cloud: &Cloud, args: &[&str]) -> Value {
    openstack_json(cloud, args).unwrap_or_else(|error| panic!("{args:?}: {error:#}"))
}

/// Runs a CLI command that prints nothing.
pub(crate) fn cli_quiet(cloud: &Cloud, args: &[&str]) {
    openstack(cloud, args).unwrap_or_else(|error| panic!("{args:?}: {error:#}"));
}

/// Boots an m1.tiny named `name` on the test's network (the CLI waits
/// for it); returns its id.
fn create_server(cloud: &Cloud, name: &str) -> String {
    let created = cli(
        cloud,
        &[
            "server",
            "create",
            "--image",
            "migrate-image",
            "--flavor",
            "m1.tiny",
            "--network",
            "migrate-net",
            "--wait",
            name,
        ],
    );
    created["id"].as_str().expect("server id").to_string()
}

/// `openstack compute service set --enable|--disable HOST nova-compute`.
pub(crate) fn set_service(cloud: &Cloud, host: &str, switch: &str) {
    cli_quiet(
        cloud,
        &["compute", "service", "set", switch, host, "nova-compute"],
    );
}

pub(crate) fn host_of(shown: &Value) -> String {
    shown["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `field` of each hypervisor by hostname, as `os-hypervisors` shows them
/// at 2.53 (the CLI prints no usage from 2.88).
pub(crate) fn hypervisor_field(cloud: &Cloud, token: &str, field: &str) -> BTreeMap<String, Value> {
    let (status, body) = cloud
        .compute(token, Method::GET, "/os-hypervisors/detail", None, "2.53")
        .expect("os-hypervisors");
    assert_eq!(status, 200, "{body}");
    body["hypervisors"]
        .as_array()
        .expect("hypervisors")
        .iter()
        .map(|hypervisor| {
            (
                hypervisor["hypervisor_hostname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                hypervisor[field].clone(),
            )
        })
        .collect()
}

/// vCPUs claimed per host.
pub(crate) fn vcpus_used(cloud: &Cloud, token: &str) -> BTreeMap<String, i64> {
    hypervisor_field(cloud, token, "vcpus_used")
        .into_iter()
        .map(|(host, used)| (host, used.as_i64().unwrap_or(-1)))
        .collect()
}

/// The host the server's only port is bound to (`binding:host_id`, from
/// the network API).
pub(crate) fn port_binding(cloud: &Cloud, token: &str, server_id: &str) -> String {
    let listed: Value = reqwest::blocking::Client::new()
        .get(format!(
            "{}/network/v2.0/ports?device_id={server_id}",
            cloud.url
        ))
        .header("x-auth-token", token)
        .send()
        .and_then(reqwest::blocking::Response::error_for_status)
        .and_then(reqwest::blocking::Response::json)
        .expect("ports");
    let ports = listed["ports"].as_array().expect("ports");
    assert_eq!(ports.len(), 1, "{listed}");
    ports[0]["binding:host_id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// What each host's libvirt holds of `server_id`: `Some(running)` where it
/// has a domain.
pub(crate) fn domains(fleet: &Fleet, server_id: &str) -> BTreeMap<String, Option<bool>> {
    fleet
        .hosts
        .iter()
        .map(|host| {
            (
                host.name.clone(),
                host.domain(server_id).map(|domain| domain.running),
            )
        })
        .collect()
}

/// Where a server (an m1.tiny) should be: claimed and defined on `hosts`
/// and nowhere else, running on `running` with its port bound there; each
/// of `others` holds one more m1.tiny server.
pub(crate) struct Placed<'a> {
    pub(crate) hosts: &'a [&'a str],
    pub(crate) running: &'a str,
    pub(crate) others: &'a [&'a str],
}

/// The placement one migration step should leave.
pub(crate) fn placed<'a>(hosts: &'a [&'a str], running: &'a str) -> Placed<'a> {
    Placed {
        hosts,
        running,
        others: &[],
    }
}

pub(crate) fn check_placed(fleet: &Fleet, token: &str, server_id: &str, expected: &Placed<'_>) {
    let cloud = &fleet.cloud;
    let wanted_usage: BTreeMap<String, i64> = fleet
        .hosts
        .iter()
        .map(|host| {
            let name = host.name.as_str();
            let claims = i64::from(expected.hosts.contains(&name))
                + i64::from(expected.others.contains(&name));
            (host.name.clone(), claims)
        })
        .collect();
    wait_for(&format!("claims {wanted_usage:?}"), 30, || {
        (vcpus_used(cloud, token) == wanted_usage).then_some(())
    });
    let wanted_domains: BTreeMap<String, Option<bool>> = fleet
        .hosts
        .iter()
        .map(|host| {
            let defined = expected.hosts.contains(&host.name.as_str());
            let running = expected.running == host.name.as_str();
            (host.name.clone(), defined.then_some(running))
        })
        .collect();
    assert_eq!(domains(fleet, server_id), wanted_domains);
    assert_eq!(port_binding(cloud, token, server_id), expected.running);
}

/// The CLI's failure text of `args` (which must fail).
pub(crate) fn refusal(cloud: &Cloud, args: &[&str]) -> String {
    match openstack(cloud, args) {
        Ok(output) => panic!("{args:?} succeeded: {output}"),
        Err(error) => format!("{error:#}"),
    }
}

/// The migrations of `server_id` as (type, status, source, destination),
/// oldest first (`os-migrations` at 2.80).
pub(crate) fn migrations(cloud: &Cloud, token: &str, server_id: &str) -> Vec<[String; 4]> {
    let (status, body) = cloud
        .compute(
            token,
            Method::GET,
            &format!("/os-migrations?instance_uuid={server_id}"),
            None,
            "2.80",
        )
        .expect("os-migrations");
    assert_eq!(status, 200, "{body}");
    let text = |row: &Value, key: &str| row[key].as_str().unwrap_or_default().to_string();
    let mut rows: Vec<(i64, [String; 4])> = body["migrations"]
        .as_array()
        .expect("migrations")
        .iter()
        .map(|row| {
            (
                row["id"].as_i64().unwrap_or_default(),
                [
                    text(row, "migration_type"),
                    text(row, "status"),
                    text(row, "source_compute"),
                    text(row, "dest_compute"),
                ],
            )
        })
        .collect();
    rows.sort();
    rows.into_iter().map(|(_, row)| row).collect()
}

#[test]
fn cold_migration_across_a_namespaced_fleet_with_the_cli() {
    if let Some(reason) = fleet::unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let _turn = novum_tests::shared_turn();
    // Hosts are down 4 s after their last beat (they beat every second).
    let mut fleet = Fleet::start(
        "migrate",
        &[HostSize::default(); 3],
        "[compute]\nservice_down_time = 4\n",
    )
    .expect("fleet");
    let token = fleet.cloud.admin_token().expect("token");
    let cloud = &fleet.cloud;
    let image_file = cloud.data_dir.join("migrate.img");
    std::fs::write(&image_file, vec![7u8; 4096]).expect("image file");
    cli(
        cloud,
        &[
            "image",
            "create",
            "--file",
            &image_file.display().to_string(),
            "--disk-format",
            "raw",
            "migrate-image",
        ],
    );
    cli(cloud, &["network", "create", "migrate-net"]);
    cli(
        cloud,
        &[
            "subnet",
            "create",
            "--network",
            "migrate-net",
            "--subnet-range",
            "192.168.91.0/24",
            "migrate-subnet",
        ],
    );
    let id = create_server(cloud, "mover");
    let source = host_of(&wait_status(cloud, &token, &id, "ACTIVE"));
    check_placed(&fleet, &token, &id, &placed(&[&source], &source));

    // Nova's refusals of a named destination, at 2.56.
    let at_2_56 = ["--os-compute-api-version", "2.56"];
    let own = refusal(
        cloud,
        &[
            &at_2_56[..],
            &["server", "migrate", "--host", &source, "mover"],
        ]
        .concat(),
    );
    assert!(
        own.contains("Cannot migrate to the host where the server exists.") && own.contains("400"),
        "{own}"
    );
    let unknown = refusal(
        cloud,
        &[
            &at_2_56[..],
            &["server", "migrate", "--host", "nowhere", "mover"],
        ]
        .concat(),
    );
    assert!(
        unknown.contains("Compute host nowhere could not be found.") && unknown.contains("400"),
        "{unknown}"
    );

    // 1. The scheduler's choice (never the source), then confirm: nothing
    //    is left on the source.
    cli_quiet(cloud, &["server", "migrate", "--wait", "mover"]);
    let moved = wait_status(cloud, &token, &id, "VERIFY_RESIZE");
    let first = host_of(&moved);
    assert_ne!(first, source, "{moved}");
    check_placed(&fleet, &token, &id, &placed(&[&source, &first], &first));
    cli_quiet(cloud, &["server", "migration", "confirm", "mover"]);
    let confirmed = wait_status(cloud, &token, &id, "ACTIVE");
    assert_eq!(host_of(&confirmed), first, "{confirmed}");
    check_placed(&fleet, &token, &id, &placed(&[&first], &first));

    // 2. A named destination (2.56), then revert: nothing is left on it.
    let third = fleet
        .hosts
        .iter()
        .map(|host| host.name.clone())
        .find(|name| *name != source && *name != first)
        .expect("a third host");
    cli_quiet(
        cloud,
        &[
            &at_2_56[..],
            &["server", "migrate", "--host", &third, "--wait", "mover"],
        ]
        .concat(),
    );
    let moved = wait_status(cloud, &token, &id, "VERIFY_RESIZE");
    assert_eq!(host_of(&moved), third, "{moved}");
    check_placed(&fleet, &token, &id, &placed(&[&first, &third], &third));
    cli_quiet(cloud, &["server", "migration", "revert", "mover"]);
    let reverted = wait_status(cloud, &token, &id, "ACTIVE");
    assert_eq!(host_of(&reverted), first, "{reverted}");
    check_placed(&fleet, &token, &id, &placed(&[&first], &first));

    // 3. Every other host disabled: no valid host; the server stays put.
    for host in [&source, &third] {
        set_service(cloud, host, "--disable");
    }
    cli_quiet(cloud, &["server", "migrate", "mover"]);
    wait_for("the failed migration to end", 30, || {
        let rows = migrations(cloud, &token, &id);
        rows.last().filter(|row| row[1] == "error").map(drop)
    });
    let stayed = wait_status(cloud, &token, &id, "ACTIVE");
    assert_eq!(host_of(&stayed), first, "{stayed}");
    check_placed(&fleet, &token, &id, &placed(&[&first], &first));
    let row =
        |status: &str, from: &str, to: &str| ["migration", status, from, to].map(str::to_string);
    assert_eq!(
        migrations(cloud, &token, &id),
        vec![
            row("confirmed", &source, &first),
            row("reverted", &first, &third),
            row("error", &first, ""),
        ]
    );

    // 4. Drain `first`: re-enable `source`, disable `first`; a new build
    //    avoids `first`, its server migrates off, then `first` is enabled
    //    again and takes a build (the only host with room).
    set_service(cloud, &source, "--enable");
    set_service(cloud, &first, "--disable");
    let newcomer = create_server(cloud, "newcomer");
    assert_eq!(
        host_of(&wait_status(cloud, &token, &newcomer, "ACTIVE")),
        source,
        "the only enabled host"
    );
    cli_quiet(cloud, &["server", "migrate", "--wait", "mover"]);
    assert_eq!(
        host_of(&wait_status(cloud, &token, &id, "VERIFY_RESIZE")),
        source
    );
    cli_quiet(cloud, &["server", "migration", "confirm", "mover"]);
    wait_status(cloud, &token, &id, "ACTIVE");
    let on_first = cli(
        cloud,
        &["server", "list", "--all-projects", "--host", &first],
    );
    assert_eq!(on_first.as_array().map(Vec::len), Some(0), "{on_first}");
    check_placed(
        &fleet,
        &token,
        &id,
        &Placed {
            others: &[&source],
            ..placed(&[&source], &source)
        },
    );
    set_service(cloud, &first, "--enable");
    set_service(cloud, &source, "--disable");
    let returner = create_server(cloud, "returner");
    assert_eq!(
        host_of(&wait_status(cloud, &token, &returner, "ACTIVE")),
        first,
        "the re-enabled host (the others disabled)"
    );

    // The instance actions name each move.
    let events = cli(cloud, &["server", "event", "list", "mover"]);
    let actions: Vec<&str> = events
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|event| event["Action"].as_str())
        .collect();
    for expected in ["migrate", "confirmResize", "revertResize"] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    assert!(!actions.contains(&"resize"), "{actions:?}");

    // 5. Failure detection (2.11, 2.16): `mover`'s host is disabled
    //    (MAINTENANCE), then forced down (DOWN at once); the agent of
    //    `returner`'s host dies and, after service_down_time, its servers
    //    are UNKNOWN and its hypervisor down.
    let host_status = |cloud: &Cloud, server_id: &str| {
        server(cloud, &token, server_id)["host_status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(host_status(cloud, &id), "MAINTENANCE");
    assert_eq!(host_status(cloud, &returner), "UP");
    cli_quiet(
        cloud,
        &[
            "--os-compute-api-version",
            "2.11",
            "compute",
            "service",
            "set",
            "--down",
            &source,
            "nova-compute",
        ],
    );
    assert_eq!(host_status(cloud, &id), "DOWN");
    fleet
        .hosts
        .iter_mut()
        .find(|host| host.name == first)
        .expect("the returner's host")
        .kill_agent();
    let cloud = &fleet.cloud;
    wait_for("the silent host's server UNKNOWN", 20, || {
        (host_status(cloud, &returner) == "UNKNOWN").then_some(())
    });
    let states = hypervisor_field(cloud, &token, "state");
    assert_eq!(states.get(&first), Some(&Value::from("down")), "{states:?}");
    assert_eq!(states.get(&third), Some(&Value::from("up")), "{states:?}");
}
