//! The namespaced fleet harness itself (`novum_tests::fleet`): two hosts
//! come up in their own network namespaces, each agent reporting its
//! namespace's address, and a test that panics still leaves nothing behind
//! (agents gone, namespaces, veths and bridge deleted).

use std::process::Command;

use novum_tests::fleet::{self, Fleet, HostSize};

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
