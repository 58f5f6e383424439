//! The namespaced fleet harness itself (`novum_tests::fleet`): two hosts
//! come up in their own network namespaces, each agent reporting its
//! namespace's address, and a test that panics still leaves nothing behind
//! (agents gone, namespaces, veths and bridge deleted). A host of real
//! guests runs its agent in its own daemon's network, mount and UTS
//! namespaces (its host name, its `/run/libvirt`, its instances directory),
//! a bridge spans the hosts with a peer on it, and a panic stops the
//! daemon and its QEMU too.

use std::process::Command;

use novum_tests::fleet::{self, Fleet, HostSize, Hypervisor};

/// `ip ARGS`'s standard output.
fn ip(args: &[&str]) -> String {
    let output = Command::new("ip").args(args).output().expect("ip");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What a fleet made, to look for after it is gone.
struct Made {
    bridge: String,
    namespaces: Vec<String>,
    agents: Vec<u32>,
}

#[test]
fn a_fleet_comes_up_in_namespaces_and_a_panic_tears_it_down() {
    if let Some(reason) = fleet::unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let _turn = novum_tests::shared_turn();
    let mut made = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let fleet = Fleet::start("harness", &[HostSize::default(); 2], "").expect("fleet");
        made = Some(Made {
            bridge: fleet.bridge().to_string(),
            namespaces: fleet.hosts.iter().map(|h| h.namespace.clone()).collect(),
            agents: fleet.hosts.iter().filter_map(|h| h.agent_pid()).collect(),
        });
        assert!(
            ip(&["-4", "addr", "show", "dev", fleet.bridge()])
                .contains(&format!("{}/24", fleet.gateway())),
            "the bridge holds the controller's address"
        );
        for host in &fleet.hosts {
            // The agent runs inside the namespace: its address is there,
            // and (checked by `Fleet::start`) it is the host_ip it reported.
            let inside = ip(&["-n", &host.namespace, "-4", "addr", "show", "dev", "eth0"]);
            assert!(inside.contains(&host.address), "{inside}");
            let netns =
                std::fs::read_link(format!("/proc/{}/ns/net", host.agent_pid().expect("pid")))
                    .expect("the agent's network namespace");
            let own = std::fs::read_link("/proc/self/ns/net").expect("this namespace");
            assert_ne!(netns, own, "{} runs in its own namespace", host.name);
        }
        panic!("a failing test, on purpose");
    }));
    assert!(outcome.is_err(), "the closure panics on purpose");
    let made = made.expect("the fleet came up");
    let namespaces = ip(&["netns", "list"]);
    for namespace in &made.namespaces {
        assert!(
            !namespaces
                .lines()
                .any(|line| line.split_whitespace().next() == Some(namespace)),
            "{namespace} left behind: {namespaces}"
        );
    }
    let links = ip(&["-br", "link"]);
    assert!(
        !links.lines().any(|line| line.starts_with(&made.bridge)),
        "{} or its veths left behind: {links}",
        made.bridge
    );
    for pid in made.agents {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "agent {pid} still runs"
        );
    }
}

/// The namespace `kind` (`net`, `mnt`, `uts`) of process `pid`.
fn namespace_of(pid: u32, kind: &str) -> std::path::PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).expect("a namespace link")
}

#[test]
fn a_real_host_runs_its_agent_in_its_own_daemons_namespaces_and_a_panic_stops_both() {
    if let Some(reason) = fleet::libvirtd_unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let _turn = novum_tests::shared_turn();
    let mut made = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let real = Hypervisor::Libvirtd {
            disk_gb: 10,
            live_migration_mib_s: 0,
        };
        let mut fleet = Fleet::start_hosts("harness-real", &[real], "").expect("fleet");
        let peer = fleet
            .span_bridge("brqharness", "192.168.73.250/24")
            .expect("a spanning bridge");
        let host = &fleet.hosts[0];
        let daemon = host.libvirtd.as_ref().expect("a daemon");
        let agent = host.agent_pid().expect("the agent runs");
        for kind in ["net", "mnt", "uts"] {
            assert_eq!(
                namespace_of(agent, kind),
                namespace_of(daemon.pid(), kind),
                "the agent shares its daemon's {kind} namespace"
            );
            assert_ne!(
                namespace_of(daemon.pid(), kind),
                namespace_of(std::process::id(), kind),
                "the daemon has a {kind} namespace of its own"
            );
        }
        assert_eq!(
            daemon.virsh(&["hostname"]).expect("hostname").trim(),
            host.name
        );
        // The bridge is on the host, joined to the peer's segment.
        let bridged = ip(&[
            "-n",
            &host.namespace,
            "-br",
            "link",
            "show",
            "master",
            "brqharness",
        ]);
        assert_eq!(bridged.lines().count(), 1, "{bridged}");
        assert!(ip(&["-n", &peer, "-4", "addr"]).contains("192.168.73.250/24"));
        // What the agent writes to its instances directory is in the
        // daemon's root.
        assert_eq!(host.instances_dir(), daemon.root().join("instances"));
        assert!(host.instances_dir().is_dir());
        // A guest (no disk: it idles in its firmware) whose QEMU must not
        // outlive the test.
        let xml = daemon.root().join("idle.xml");
        std::fs::write(
            &xml,
            "<domain type='qemu'><name>idle</name><memory unit='MiB'>32</memory>\
             <os><type arch='x86_64' machine='pc'>hvm</type></os></domain>",
        )
        .expect("domain xml");
        daemon
            .virsh(&["create", &xml.display().to_string()])
            .expect("an idle guest");
        let qemu: u32 = std::fs::read_to_string(daemon.root().join("run/qemu/idle.pid"))
            .expect("QEMU's pid file")
            .trim()
            .parse()
            .expect("a pid");
        made = Some(Made {
            bridge: fleet.bridge().to_string(),
            namespaces: [host.namespace.clone(), peer.clone()].to_vec(),
            agents: [agent, daemon.pid(), qemu].to_vec(),
        });
        panic!("a failing test, on purpose");
    }));
    assert!(outcome.is_err(), "the closure panics on purpose");
    let made = made.expect("the fleet came up");
    let namespaces = ip(&["netns", "list"]);
    for namespace in &made.namespaces {
        assert!(
            !namespaces
                .lines()
                .any(|line| line.split_whitespace().next() == Some(namespace)),
            "{namespace} left behind: {namespaces}"
        );
    }
    assert!(!ip(&["-br", "link"]).contains(&made.bridge));
    for pid in made.agents {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            state.is_empty() || state.contains(") Z "),
            "process {pid} still runs: {state}"
        );
    }
}
