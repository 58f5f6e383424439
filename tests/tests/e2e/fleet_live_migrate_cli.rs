//! Live migration across a fleet of namespaced hosts (issue 14), through
//! the real `openstack` CLI: three hosts, each a network namespace with its
//! own `novum-agent` on libvirt's test driver (which cannot migrate: the
//! agents simulate the move, the source copying the guest's memory at a
//! fixed rate before its domain leaves, the destination defining and
//! starting it), registered with the real `novum serve`. A server on a
//! network is live-migrated to the scheduler's choice and to a named host
//! (`--host`, 2.30); after each step the claims, each host's domains and
//! the port's binding are checked: everything on the destination, nothing
//! on the source. A named host that is full is refused by the filters, a
//! forced one (2.30 `force`) by its claim: both end in `error` with the
//! server ACTIVE where it was. A migration aborted while it runs
//! (`server migration abort`, 2.24) rolls back: the guest keeps running on
//! its source, nothing is left on the destination, the record is
//! `cancelled`. `server migration list` shows every record.

use novum_tests::fleet::{self, Fleet, HostSize};
use novum_tests::{Cloud, openstack};
use reqwest::Method;
use serde_json::{Value, json};

use crate::agent_process::{wait_for, wait_status};
use crate::fleet_migrate_cli::{check_placed, cli, cli_quiet, host_of, migrations, placed};

/// Aborts live migration `migration` of `server` with the CLI (2.24).
pub(crate) fn abort_live_migration(cloud: &Cloud, server: &str, migration: i64) {
    cli_quiet(
        cloud,
        &[
            "--os-compute-api-version",
            "2.24",
            "server",
            "migration",
            "abort",
            server,
            &migration.to_string(),
        ],
    );
}

/// Waits until server `id` has a live migration `running` (its guest
/// moving, `GET /servers/{id}/migrations`, 2.24); returns its id.
pub(crate) fn running_live_migration(cloud: &Cloud, token: &str, id: &str) -> i64 {
    wait_for("a running live migration", 60, || {
        let (status, body) = cloud
            .compute(
                token,
                Method::GET,
                &format!("/servers/{id}/migrations"),
                None,
                "2.24",
            )
            .ok()?;
        (status == 200).then_some(())?;
        let row = body["migrations"].as_array()?.first()?.clone();
        (row["status"] == "running")
            .then(|| row["id"].as_i64())
            .flatten()
    })
}

#[test]
fn live_migration_across_a_namespaced_fleet_with_the_cli() {
    if let Some(reason) = fleet::unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let _turn = novum_tests::shared_turn();
    // The third host takes one m1.tiny only.
    let small = HostSize {
        vcpus: 1,
        ..HostSize::default()
    };
    // vCPUs are not over-committed: the small host is full with one server.
    let fleet = Fleet::start(
        "live",
        &[HostSize::default(), HostSize::default(), small],
        "[compute]\ncpu_allocation_ratio = 1.0\n",
    )
    .expect("fleet");
    let token = fleet.cloud.admin_token().expect("token");
    let cloud = &fleet.cloud;
    let names: Vec<String> = fleet.hosts.iter().map(|host| host.name.clone()).collect();
    let (a, b, full) = (&names[0], &names[1], &names[2]);
    let image_file = cloud.data_dir.join("live.img");
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
            "live-image",
        ],
    );
    cli(cloud, &["network", "create", "live-net"]);
    cli(
        cloud,
        &[
            "subnet",
            "create",
            "--network",
            "live-net",
            "--subnet-range",
            "192.168.92.0/24",
            "live-subnet",
        ],
    );
    let create = |name: &str, flavor: &str, host: &str| {
        let created = cli(
            cloud,
            &[
                "server",
                "create",
                "--image",
                "live-image",
                "--flavor",
                flavor,
                "--network",
                "live-net",
                "--availability-zone",
                &format!("nova:{host}"),
                "--wait",
                name,
            ],
        );
        created["id"].as_str().expect("server id").to_string()
    };
    let id = create("mover", "m1.tiny", a);
    assert_eq!(host_of(&wait_status(cloud, &token, &id, "ACTIVE")), *a);
    check_placed(&fleet, &token, &id, &placed(&[a], a));

    // 1. The scheduler's choice: the other host with room.
    cli_quiet(
        cloud,
        &["server", "migrate", "--live-migration", "--wait", "mover"],
    );
    let moved = wait_status(cloud, &token, &id, "ACTIVE");
    let first = host_of(&moved);
    assert_ne!(first, *a, "{moved}");
    check_placed(&fleet, &token, &id, &placed(&[&first], &first));

    // 2. Fill the small host; then to it by name (2.30): the filters
    //    refuse it, and forced (`force`, by the API: the CLI has no flag)
    //    its claim does. The server stays ACTIVE where it was.
    let filler = create("filler", "m1.tiny", full);
    assert_eq!(
        host_of(&wait_status(cloud, &token, &filler, "ACTIVE")),
        *full
    );
    let at_2_30 = ["--os-compute-api-version", "2.30"];
    cli_quiet(
        cloud,
        &[
            &at_2_30[..],
            &[
                "server",
                "migrate",
                "--live-migration",
                "--host",
                full,
                "mover",
            ],
        ]
        .concat(),
    );
    let failed = |count: usize| {
        let mut rows = Vec::new();
        for _ in 0..120 {
            rows = migrations(cloud, &token, &id);
            if rows.len() == count && rows.last().is_some_and(|row| row[1] == "error") {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        panic!(
            "no failed live migration #{count}: {rows:?}; vcpus {:?}, used {:?}",
            crate::fleet_migrate_cli::hypervisor_field(cloud, &token, "vcpus"),
            crate::fleet_migrate_cli::vcpus_used(cloud, &token)
        );
    };
    failed(2);
    let (status, body) = cloud
        .compute(
            &token,
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(
                json!({"os-migrateLive": {"host": full, "block_migration": "auto", "force": true}}),
            ),
            "2.30",
        )
        .expect("forced live migration");
    assert_eq!(status, 202, "{body}");
    failed(3);
    let stayed = wait_status(cloud, &token, &id, "ACTIVE");
    assert_eq!(host_of(&stayed), first, "{stayed}");
    check_placed(
        &fleet,
        &token,
        &id,
        &crate::fleet_migrate_cli::Placed {
            others: &[full],
            ..placed(&[&first], &first)
        },
    );

    // 3. Aborted while the guest moves (2.24): it keeps running on its
    //    source, nothing is left on the destination.
    let other = if first == *a { b } else { a };
    cli_quiet(
        cloud,
        &[
            &at_2_30[..],
            &[
                "server",
                "migrate",
                "--live-migration",
                "--host",
                other,
                "mover",
            ],
        ]
        .concat(),
    );
    let running = running_live_migration(cloud, &token, &id);
    let shown = crate::agent_process::server(cloud, &token, &id);
    assert_eq!(shown["status"], "MIGRATING", "{shown}");
    assert_eq!(shown["OS-EXT-STS:task_state"], "migrating");
    abort_live_migration(cloud, "mover", running);
    wait_for("the aborted live migration to end", 30, || {
        let rows = migrations(cloud, &token, &id);
        rows.last().filter(|row| row[1] == "cancelled").map(drop)
    });
    let stayed = wait_status(cloud, &token, &id, "ACTIVE");
    assert_eq!(host_of(&stayed), first, "{stayed}");
    wait_for("the destination cleaned up", 30, || {
        fleet
            .hosts
            .iter()
            .all(|host| host.name == first || host.domain(&id).is_none())
            .then_some(())
    });
    check_placed(
        &fleet,
        &token,
        &id,
        &crate::fleet_migrate_cli::Placed {
            others: &[full],
            ..placed(&[&first], &first)
        },
    );

    // 4. Named (2.30), a block migration: it moves.
    cli_quiet(
        cloud,
        &[
            &at_2_30[..],
            &[
                "server",
                "migrate",
                "--live-migration",
                "--block-migration",
                "--host",
                other,
                "--wait",
                "mover",
            ],
        ]
        .concat(),
    );
    let moved = wait_status(cloud, &token, &id, "ACTIVE");
    assert_eq!(host_of(&moved), *other, "{moved}");
    check_placed(
        &fleet,
        &token,
        &id,
        &crate::fleet_migrate_cli::Placed {
            others: &[full],
            ..placed(&[other], other)
        },
    );

    // The records, through the CLI too.
    let row = |status: &str, from: &str, to: &str| {
        ["live-migration", status, from, to].map(str::to_string)
    };
    assert_eq!(
        migrations(cloud, &token, &id),
        vec![
            row("completed", a, &first),
            row("error", &first, ""),
            row("error", &first, ""),
            row("cancelled", &first, other),
            row("completed", &first, other),
        ]
    );
    let listed: Value = serde_json::from_str(
        &openstack(
            cloud,
            &[
                "--os-compute-api-version",
                "2.80",
                "server",
                "migration",
                "list",
                "--server",
                "mover",
                "-f",
                "json",
            ],
        )
        .expect("server migration list"),
    )
    .expect("json");
    let statuses: Vec<&str> = listed
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|row| row["Status"].as_str())
        .collect();
    assert_eq!(statuses.len(), 5, "{listed}");
    assert!(statuses.contains(&"cancelled"), "{listed}");
    let events = cli(cloud, &["server", "event", "list", "mover"]);
    let lives = events
        .as_array()
        .expect("events")
        .iter()
        .filter(|event| event["Action"] == "live-migration")
        .count();
    assert_eq!(lives, 5, "{events}");
}
