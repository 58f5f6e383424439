//! The host firewall enforcing security groups, on real nftables: three
//! network namespaces on one Linux bridge stand in for three guests (their
//! host-side veth ends named as the ports' taps), and pings must pass or be
//! dropped as the groups say.

use std::process::Command;

use novum_agent::firewall::Firewall;
use novum_wire::{Direction, FirewallRule, HostFirewall, PortFirewall};
use uuid::Uuid;

fn run(args: &[&str]) {
    let status = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(status.success(), "{args:?} failed");
}

/// Whether `from`'s namespace gets an answer to one ping of `to`.
fn pings(namespace: &str, to: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", namespace, "ping", "-c", "1", "-W", "1", to])
        .output()
        .map(|output| output.status.success())
        .unwrap_or(false)
}

/// A bridge and guests in namespaces, removed again when dropped.
struct Lab {
    bridge: String,
    namespaces: Vec<String>,
    firewall: Firewall,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.firewall.remove();
        for namespace in &self.namespaces {
            let _ = Command::new("ip")
                .args(["netns", "del", namespace])
                .status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

struct Guest {
    namespace: String,
    tap: String,
    mac: String,
    ip: String,
}

fn rule(direction: Direction, remote: Option<Vec<String>>) -> FirewallRule {
    FirewallRule {
        direction,
        ip_version: 4,
        protocol: None,
        port_range_min: None,
        port_range_max: None,
        remote,
    }
}

fn port(guest: &Guest, bridge: &str, rules: Vec<FirewallRule>) -> PortFirewall {
    PortFirewall {
        port_id: Uuid::new_v4(),
        bridge: bridge.to_string(),
        tap: guest.tap.clone(),
        mac_address: guest.mac.clone(),
        addresses: vec![guest.ip.clone()],
        port_security_enabled: true,
        rules,
    }
}

#[test]
fn security_groups_pass_and_drop_pings_between_guests_on_a_bridge() {
    if !nix_is_root() {
        eprintln!("skipped: the host firewall test needs root (network namespaces, nftables)");
        return;
    }
    let id = &Uuid::new_v4().simple().to_string()[..6];
    let subnet = 100 + (u8::from_str_radix(&id[..2], 16).unwrap_or(0) % 100);
    let bridge = format!("brqfw{id}");
    let mut lab = Lab {
        bridge: bridge.clone(),
        namespaces: Vec::new(),
        firewall: Firewall::new(format!("novum_fwtest_{id}")),
    };
    run(&["ip", "link", "add", &bridge, "type", "bridge"]);
    run(&["ip", "link", "set", &bridge, "up"]);
    let guests: Vec<Guest> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(n, name)| {
            let guest = Guest {
                namespace: format!("novumfw{id}{name}"),
                tap: format!("tapfw{id}{name}"),
                mac: format!("fa:16:3e:fe:00:0{}", n + 1),
                ip: format!("10.231.{subnet}.{}", n + 1),
            };
            lab.namespaces.push(guest.namespace.clone());
            run(&["ip", "netns", "add", &guest.namespace]);
            run(&[
                "ip",
                "link",
                "add",
                &guest.tap,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &guest.namespace,
            ]);
            run(&["ip", "link", "set", &guest.tap, "master", &bridge, "up"]);
            let ns = &guest.namespace;
            run(&["ip", "-n", ns, "link", "set", "eth0", "address", &guest.mac]);
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", guest.ip),
                "dev",
                "eth0",
            ]);
            run(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            guest
        })
        .collect();
    let [a, b, c] = &guests[..] else {
        unreachable!()
    };
    // Unfiltered, everyone reaches everyone.
    assert!(
        pings(&a.namespace, &c.ip),
        "no connectivity before filtering"
    );

    // Neutron's default group on A and B (ingress from the group's members,
    // egress anywhere); C in a group admitting only its own members.
    let default_members = Some(vec![a.ip.clone(), b.ip.clone()]);
    let default_rules = vec![
        rule(Direction::Ingress, default_members.clone()),
        rule(Direction::Egress, None),
    ];
    let other_rules = vec![
        rule(Direction::Ingress, Some(vec![c.ip.clone()])),
        rule(Direction::Egress, None),
    ];
    let mut firewall = HostFirewall {
        ports: vec![
            port(a, &bridge, default_rules.clone()),
            port(b, &bridge, default_rules),
            port(c, &bridge, other_rules),
        ],
    };
    assert!(lab.firewall.apply(&firewall).expect("applying the rules"));
    assert!(
        !lab.firewall.apply(&firewall).expect("applying again"),
        "the same rules again change nothing"
    );
    assert!(pings(&a.namespace, &b.ip), "A → B (same group) must pass");
    assert!(pings(&b.namespace, &a.ip), "B → A (same group) must pass");
    assert!(
        !pings(&a.namespace, &c.ip),
        "A → C (other group) must be dropped"
    );
    assert!(
        !pings(&c.namespace, &a.ip),
        "C → A (not in A's group) must be dropped"
    );

    // A spoofed source address is dropped at the tap.
    run(&[
        "ip",
        "-n",
        &b.namespace,
        "addr",
        "add",
        &format!("10.231.{subnet}.9/24"),
        "dev",
        "eth0",
    ]);
    let spoofed = Command::new("ip")
        .args([
            "netns",
            "exec",
            &b.namespace,
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            "-I",
            &format!("10.231.{subnet}.9"),
            &a.ip,
        ])
        .output()
        .map(|output| output.status.success())
        .unwrap_or(false);
    assert!(!spoofed, "a spoofed source address must be dropped");

    // A rule opening ICMP on C from anywhere lets A in.
    let mut icmp = rule(Direction::Ingress, Some(vec!["0.0.0.0/0".to_string()]));
    icmp.protocol = Some("icmp".to_string());
    firewall.ports[2].rules.push(icmp);
    assert!(
        lab.firewall
            .apply(&firewall)
            .expect("applying the new rule")
    );
    assert!(
        pings(&a.namespace, &c.ip),
        "A → C after opening ICMP must pass"
    );

    // Port security off: not filtered at all.
    firewall.ports[0].port_security_enabled = false;
    firewall.ports[2].rules.pop();
    assert!(lab.firewall.apply(&firewall).expect("applying"));
    assert!(
        pings(&c.namespace, &a.ip),
        "C → A with A's port security off must pass"
    );
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}
