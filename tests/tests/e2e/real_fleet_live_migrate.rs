//! Issue 14's live migration with real guests, through the whole stack:
//! the real `novum serve` and two namespaced fleet hosts, each with its own
//! `libvirtd` (`novum_tests::fleet::Libvirtd`: its own network and mount
//! namespace, run and state directories, host UUID, instances directory,
//! TCP listener) and a standalone `novum-agent` inside the same namespaces
//! (its `qemu:///system` is its host's daemon), registered over HTTP.
//!
//! Through the real `openstack` CLI: an image of the test guest
//! (tests/guest's disk, built by tests/bootstrap.sh), a network whose
//! bridge on both hosts is joined to one layer-2 segment with a peer
//! namespace on it (`Fleet::span_bridge`, the provider wiring), ICMP let
//! in by the default security group, and a QEMU (TCG) server with a config
//! drive on the first host (the agents move guests at most
//! [`LIVE_MIGRATION_MIB_S`], so a move lasts seconds). When the peer
//! reaches the guest: a move aborted while it runs (`server migration
//! abort`: libvirt's job cancelled, the guest running and answering on
//! the first host, nothing on the second); then the peer pings it every
//! 50 ms while `openstack server migrate --live-migration` (block
//! migration `auto`: the hosts share no storage) moves it to the other
//! host. Then: the server is ACTIVE on the second host, its domain runs on
//! that host's daemon and is gone from the first's, the claims are on the
//! second host only, the port is bound there, the disk files are gone from
//! the first host, the migration record is `completed`, and the guest
//! answers from its new host. Last, the move back forced to complete
//! (`server migration force complete`: the source pauses the guest) ends
//! with the guest running (ACTIVE, not PAUSED) on the first host. The
//! measured ping loss, the migration's wall time and QEMU's downtime are
//! printed. It skips, saying why, where a fleet or real guests cannot run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use novum_tests::fleet::{self, Fleet, Hypervisor};
use serde_json::Value;

use crate::agent_process::{wait_for, wait_status};
use crate::fleet_live_migrate_cli::{abort_live_migration, running_live_migration};
use crate::fleet_migrate_cli::{cli, cli_quiet, host_of, migrations, port_binding, vcpus_used};

/// The guest network's range, and the peer's address on its segment (in
/// the peer's namespace only), outside the allocation pool.
const SUBNET: &str = "192.168.71.0/24";
const POOL: &str = "start=192.168.71.10,end=192.168.71.99";
const PEER_CIDR: &str = "192.168.71.250/24";
/// The hosts' `--live-migration-bandwidth`, MiB/s: a move of the test
/// guest then lasts long enough for an abort or a force-complete to reach
/// it while it runs.
const LIVE_MIGRATION_MIB_S: u64 = 16;

/// The test guest's files, or why this machine cannot run the test.
fn test_guest() -> Result<PathBuf, String> {
    if let Some(reason) = fleet::libvirtd_unavailable() {
        return Err(reason);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace directory")?
        .join("target/test-guest");
    if !dir.join("disk.qcow2").exists() {
        return Err(format!(
            "no test guest in {} (tests/bootstrap.sh builds it)",
            dir.display()
        ));
    }
    Ok(dir)
}

/// Whether the guest at `address` answers `count` pings from `peer`.
fn answers(peer: &str, address: &str, count: &str) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", peer, "ping", "-c", count, "-W", "1", address,
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// `(sent, received)` of ping's summary line in `text`.
fn ping_counts(text: &str) -> (u64, u64) {
    let summary = text
        .lines()
        .find(|line| line.contains("packets transmitted"))
        .unwrap_or_default();
    let numbers: Vec<u64> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|part| part.parse().ok())
        .collect();
    (
        numbers.first().copied().unwrap_or(0),
        numbers.get(1).copied().unwrap_or(0),
    )
}

/// A `ping` every 50 ms from a peer's namespace; [`Pinger::stop`] ends it
/// and returns what it printed, dropping it (a failed test) kills it.
struct Pinger(Option<Child>);

impl Pinger {
    fn start(peer: &str, address: &str) -> Self {
        // A deadline too, should the test die before it stops it.
        let child = Command::new("ip")
            .args([
                "netns", "exec", peer, "ping", "-i", "0.05", "-w", "300", address,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("ping");
        Self(Some(child))
    }

    /// Interrupts it (ping then prints its summary); its output.
    fn stop(mut self) -> String {
        let Some(child) = self.0.take() else {
            return String::new();
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let output = child.wait_with_output().expect("ping ends");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The server's IPv4 address on its only network.
fn address_of(shown: &Value) -> String {
    let text = shown["addresses"].to_string();
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|part| part.split('.').count() == 4)
        .unwrap_or_else(|| panic!("no IPv4 address in {text}"))
        .to_string()
}

#[test]
fn a_real_guest_live_migrates_between_two_fleet_hosts_through_the_cli() {
    let guest = match test_guest() {
        Ok(guest) => guest,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let _turn = novum_tests::shared_turn();
    let began = Instant::now();
    let real = Hypervisor::Libvirtd {
        disk_gb: 20,
        live_migration_mib_s: LIVE_MIGRATION_MIB_S,
    };
    let mut fleet = Fleet::start_hosts("rlm", &[real, real], "").expect("fleet");
    let up = began.elapsed();
    let token = fleet.cloud.admin_token().expect("token");
    let (a, b) = (fleet.hosts[0].name.clone(), fleet.hosts[1].name.clone());

    let cloud = &fleet.cloud;
    cli(
        cloud,
        &[
            "image",
            "create",
            "--disk-format",
            "qcow2",
            "--container-format",
            "bare",
            "--file",
            &guest.join("disk.qcow2").display().to_string(),
            "rlm-guest",
        ],
    );
    cli(
        cloud,
        &[
            "flavor",
            "create",
            "--ram",
            "256",
            "--disk",
            "1",
            "--vcpus",
            "1",
            "rlm.small",
        ],
    );
    let network = cli(cloud, &["network", "create", "rlm-net"]);
    let network_id = network["id"].as_str().expect("network id").to_string();
    cli(
        cloud,
        &[
            "subnet",
            "create",
            "--network",
            "rlm-net",
            "--subnet-range",
            SUBNET,
            "--allocation-pool",
            POOL,
            "rlm-subnet",
        ],
    );
    // The peer outside the cloud pings the guest: ICMP in.
    cli(
        cloud,
        &[
            "security",
            "group",
            "rule",
            "create",
            "--ingress",
            "--protocol",
            "icmp",
            "default",
        ],
    );
    let bridge = format!("brq{}", &network_id[..11]);
    let peer = fleet
        .span_bridge(&bridge, PEER_CIDR)
        .expect("the network's segment");

    let cloud = &fleet.cloud;
    let created = cli(
        cloud,
        &[
            "server",
            "create",
            "--image",
            "rlm-guest",
            "--flavor",
            "rlm.small",
            "--network",
            "rlm-net",
            "--config-drive",
            "True",
            "--availability-zone",
            &format!("nova:{a}"),
            "--wait",
            "rlm-mover",
        ],
    );
    let id = created["id"].as_str().expect("server id").to_string();
    let shown = wait_status(cloud, &token, &id, "ACTIVE");
    assert_eq!(host_of(&shown), a, "{shown}");
    let address = address_of(&shown);
    let booted = Instant::now();
    wait_for("the guest to answer the peer", 120, || {
        answers(&peer, &address, "1").then_some(())
    });
    let boot = booted.elapsed();
    let (source, destination) = (&fleet.hosts[0], &fleet.hosts[1]);
    let source_files = source.instances_dir().join(&id);
    assert!(source_files.join("disk").exists(), "{source_files:?}");

    let domstate = |host: &fleet::FleetHost| {
        host.libvirtd
            .as_ref()
            .expect("a daemon")
            .virsh(&["domstate", &id])
            .map(|state| state.trim().to_string())
            .unwrap_or_default()
    };
    let has_domain = |host: &fleet::FleetHost| {
        host.libvirtd
            .as_ref()
            .expect("a daemon")
            .domains()
            .contains(&id)
    };

    // 1. Aborted while the guest moves (2.24): libvirt's job is cancelled
    //    (`virDomainAbortJob` on the source), the guest keeps running on
    //    the first host and answering, nothing is left on the second.
    cli_quiet(cloud, &["server", "migrate", "--live-migration", &id]);
    let running = running_live_migration(cloud, &token, &id);
    let abort_sent = Instant::now();
    abort_live_migration(cloud, &id, running);
    wait_for("the aborted live migration to end", 60, || {
        migrations(cloud, &token, &id)
            .last()
            .filter(|row| row[1] == "cancelled")
            .map(drop)
    });
    let aborted = abort_sent.elapsed();
    let stayed = wait_status(cloud, &token, &id, "ACTIVE");
    assert_eq!(host_of(&stayed), a, "{stayed}");
    assert_eq!(domstate(source), "running");
    wait_for("the destination cleaned up", 30, || {
        (!has_domain(destination) && !destination.instances_dir().join(&id).exists()).then_some(())
    });
    assert_eq!(vcpus_used(cloud, &token).get(&a), Some(&1));
    assert!(
        answers(&peer, &address, "3"),
        "the guest answers on its first host after the abort"
    );

    // 2. The move, with 50 ms pings through it until SIGINT.
    let pinger = Pinger::start(&peer, &address);
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    cli_quiet(
        cloud,
        &["server", "migrate", "--live-migration", "--wait", &id],
    );
    let moved = wait_status(cloud, &token, &id, "ACTIVE");
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let text = pinger.stop();
    let (sent, received) = ping_counts(&text);

    // Where everything is now.
    assert_eq!(host_of(&moved), b, "{moved}");
    let uuid = id.as_str();
    assert_eq!(domstate(destination), "running");
    assert!(
        !has_domain(source),
        "the domain is left on the source's daemon"
    );
    let claims = vcpus_used(cloud, &token);
    assert_eq!(
        claims.values().copied().collect::<Vec<_>>(),
        vec![0, 1],
        "claims: {claims:?}"
    );
    assert_eq!(claims.get(&b), Some(&1), "{claims:?}");
    assert_eq!(port_binding(cloud, &token, &id), b);
    assert!(!source_files.exists(), "{source_files:?} is left");
    assert!(destination.instances_dir().join(&id).join("disk").exists());
    let records = migrations(cloud, &token, &id);
    assert_eq!(
        records,
        vec![
            ["live-migration", "cancelled", &a, &b].map(str::to_string),
            ["live-migration", "completed", &a, &b].map(str::to_string),
        ]
    );
    let downtime = destination
        .libvirtd
        .as_ref()
        .expect("a daemon")
        .virsh(&["domjobinfo", uuid, "--completed"])
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with("Total downtime"))
        .unwrap_or("Total downtime: unknown")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(sent > 0 && received > 0, "{text}");
    assert!(
        sent - received <= 20,
        "the guest stopped answering for over a second: {text}"
    );
    assert!(
        answers(&peer, &address, "3"),
        "the guest answers from its new host"
    );

    // 3. Back, forced to complete while it moves (2.22): the source pauses
    //    the guest so its memory stops changing, the move ends, and the
    //    guest runs again on the first host (ACTIVE, not PAUSED).
    cli_quiet(cloud, &["server", "migrate", "--live-migration", &id]);
    let running = running_live_migration(cloud, &token, &id);
    let forced = Instant::now();
    cli_quiet(
        cloud,
        &[
            "--os-compute-api-version",
            "2.22",
            "server",
            "migration",
            "force",
            "complete",
            &id,
            &running.to_string(),
        ],
    );
    let back = wait_status(cloud, &token, &id, "ACTIVE");
    let force_took = forced.elapsed();
    assert_eq!(host_of(&back), a, "{back}");
    assert_eq!(back["OS-EXT-STS:power_state"], 1, "{back}");
    assert_eq!(domstate(source), "running");
    assert!(!has_domain(destination), "the domain is left on {b}");
    assert!(!destination.instances_dir().join(&id).exists());
    assert_eq!(
        migrations(cloud, &token, &id)
            .last()
            .map(|row| row[1].clone()),
        Some("completed".to_string())
    );
    assert!(
        answers(&peer, &address, "3"),
        "the guest answers on its first host after the forced move"
    );
    eprintln!(
        "measured: fleet up in {:.1} s, guest answering {:.1} s after ACTIVE; \
         migrations at most {LIVE_MIGRATION_MIB_S} MiB/s; an abort ended {:.2} s after \
         the CLI was started; `openstack server migrate --live-migration --wait` of a \
         256 MiB TCG guest (block migration) took {:.2} s; {} of {sent} pings (50 ms \
         apart) lost; {downtime}; the move back forced to complete in {:.2} s; whole \
         test {:.1} s",
        up.as_secs_f64(),
        boot.as_secs_f64(),
        aborted.as_secs_f64(),
        took.as_secs_f64(),
        sent.saturating_sub(received),
        force_took.as_secs_f64(),
        began.elapsed().as_secs_f64(),
    );
    // Deleted: nothing left on either host.
    cli_quiet(cloud, &["server", "delete", "--wait", &id]);
    wait_for("the domain gone", 30, || {
        (!has_domain(source)).then_some(())
    });
    assert!(!source_files.exists(), "{source_files:?} is left");
    assert!(!has_domain(destination));
}
