//! The host firewall answer of the agent RPC (`GET /rpc/v1/agents/{host}/firewall`),
//! on SQLite and PostgreSQL: the ports bound to the host with their groups'
//! rules, remote groups resolved to the members' addresses on any host,
//! another host's ports left out, and only the host's own credential
//! admitted. A live migration's destination has the moving guest's ports
//! from its preparation on (Nova's `pre_live_migration` sets up the
//! destination's filters before the guest arrives), and loses them when the
//! migration rolls back.

use axum::http::StatusCode;
use novum_wire::{Direction, HostFirewall};
use serde_json::json;

use crate::api_common::backends;
use crate::compute::{Cloud, IMAGE, cloud_on};

async fn server(cloud: &Cloud, host: &str, token: &str, groups: &[&str]) -> (String, String) {
    let groups: Vec<_> = groups.iter().map(|name| json!({"name": name})).collect();
    let (status, body) = cloud
        .create(
            "member",
            json!({"server": {"name": "fw", "imageRef": IMAGE, "flavorRef": "1", "networks": "auto", "security_groups": groups}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["server"]["id"].as_str().expect("id").to_string();
    let server = cloud.spawn_active(host, token, &id).await;
    let address = server["addresses"]["shared"][0]["addr"]
        .as_str()
        .expect("an address")
        .to_string();
    (id, address)
}

async fn firewall(cloud: &Cloud, host: &str, token: &str) -> (StatusCode, serde_json::Value) {
    cloud
        .rpc(
            token,
            "GET",
            &format!("/rpc/v1/agents/{host}/firewall"),
            None,
        )
        .await
}

async fn host_firewall_on(backend: &crate::api_common::Backend) {
    let cloud = cloud_on(backend).await;
    // h1 alone first, so that A and C land there.
    let h1 = cloud.register("h1", 16, 32768).await;
    let (status, body) = cloud
        .call(
            Some("member"),
            "POST",
            "/network/v2.0/security-groups",
            Some(json!({"security_group": {"name": "other"}})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Nothing bound yet: an empty answer.
    let (status, body) = firewall(&cloud, "h1", &h1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"ports": []}));

    let (a_id, a) = server(&cloud, "h1", &h1, &["default"]).await;
    let (_, c) = server(&cloud, "h1", &h1, &["other"]).await;
    let h2 = cloud.register("h2", 16, 32768).await;
    // Only h1's token reads h1's firewall.
    let (status, _) = firewall(&cloud, "h1", &h2).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // One more in the default group, on whichever host the scheduler picks:
    // a member of the group either way.
    let (_, b) = {
        // The scheduler picks h1 or h2; drive whichever got it.
        let (status, body) = cloud
            .create(
                "member",
                json!({"server": {"name": "fw", "imageRef": IMAGE, "flavorRef": "1", "networks": "auto"}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let id = body["server"]["id"].as_str().expect("id").to_string();
        let mut server = None;
        for _ in 0..200 {
            for (host, token) in [("h1", &h1), ("h2", &h2)] {
                let tasks = cloud.poll(host, token).await;
                if let Some(task) = tasks.tasks.first() {
                    cloud
                        .report(
                            host,
                            token,
                            task.id,
                            novum_wire::TaskOutcome::Succeeded {
                                power_state: novum_wire::PowerState::Running,
                            },
                        )
                        .await;
                    server = Some(cloud.wait_status(&id, "ACTIVE").await);
                }
            }
            if server.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let server = server.expect("the third server was built");
        let address = server["addresses"]["shared"][0]["addr"]
            .as_str()
            .expect("an address")
            .to_string();
        (id, address)
    };

    let (status, body) = firewall(&cloud, "h1", &h1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: HostFirewall = serde_json::from_value(body.clone()).expect("a HostFirewall");
    let port_a = answer
        .ports
        .iter()
        .find(|port| port.addresses == vec![a.clone()])
        .unwrap_or_else(|| panic!("A's port on h1: {body}"));
    let port_c = answer
        .ports
        .iter()
        .find(|port| port.addresses == vec![c.clone()])
        .unwrap_or_else(|| panic!("C's port on h1: {body}"));
    assert!(port_a.port_security_enabled && port_a.bridge.starts_with("brq"));
    assert!(port_a.tap.starts_with("tap") && port_a.mac_address.starts_with("fa:16:3e"));
    // Neutron's default group: ingress from the group (its members, on any
    // host), egress anywhere, for IPv4 and IPv6.
    let ingress_v4 = port_a
        .rules
        .iter()
        .find(|rule| rule.direction == Direction::Ingress && rule.ip_version == 4)
        .unwrap_or_else(|| panic!("an IPv4 ingress rule: {body}"));
    let mut members = ingress_v4.remote.clone().expect("remote group resolved");
    members.sort();
    let mut expected = vec![a.clone()];
    if answer.ports.len() == 3 {
        // B landed on h1 as well.
        assert!(
            answer
                .ports
                .iter()
                .any(|port| port.addresses == vec![b.clone()])
        );
    }
    expected.push(b.clone());
    expected.sort();
    assert_eq!(members, expected, "the default group's members: {body}");
    assert!(
        port_a
            .rules
            .iter()
            .any(|rule| rule.direction == Direction::Egress && rule.remote.is_none()),
        "{body}"
    );
    // The new group has Neutron's two egress rules and no ingress.
    assert!(
        port_c
            .rules
            .iter()
            .all(|rule| rule.direction == Direction::Egress),
        "{body}"
    );
    assert_eq!(port_c.rules.len(), 2, "{body}");

    // A live migration of A to h2: while h2 prepares (A's port still bound
    // to h1, where the guest runs), h2's firewall has A's port already, so
    // the guest is filtered from the moment it arrives.
    let in_firewall = |body: &serde_json::Value| {
        let answer: HostFirewall = serde_json::from_value(body.clone()).expect("a HostFirewall");
        answer
            .ports
            .iter()
            .any(|port| port.addresses == vec![a.clone()])
    };
    assert!(!in_firewall(&firewall(&cloud, "h2", &h2).await.1));
    let (status, body) = cloud
        .compute_at(
            "admin",
            "POST",
            &format!("/servers/{a_id}/action"),
            Some(json!({"os-migrateLive": {"host": "h2", "block_migration": "auto"}})),
            "2.30",
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let tasks = cloud.next_tasks("h2", &h2).await;
    let task = tasks.tasks.first().expect("a task");
    assert_eq!(task.action.kind(), "pre_live_migration");
    let (status, body) = firewall(&cloud, "h2", &h2).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(in_firewall(&body), "A's port on its destination: {body}");
    assert!(in_firewall(&firewall(&cloud, "h1", &h1).await.1));
    // The preparation fails: the migration rolls back, h2 has no A.
    cloud
        .report(
            "h2",
            &h2,
            task.id,
            novum_wire::TaskOutcome::Failed {
                message: "no room".into(),
                power_state: None,
            },
        )
        .await;
    let mut left = true;
    for _ in 0..200 {
        let tasks = cloud.poll("h2", &h2).await;
        for task in &tasks.tasks {
            // The destination's cleanup.
            cloud
                .report(
                    "h2",
                    &h2,
                    task.id,
                    novum_wire::TaskOutcome::Succeeded {
                        power_state: novum_wire::PowerState::NoState,
                    },
                )
                .await;
        }
        left = in_firewall(&firewall(&cloud, "h2", &h2).await.1);
        if !left {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!left, "A's port stays in h2's firewall after the rollback");
    assert!(in_firewall(&firewall(&cloud, "h1", &h1).await.1));
}

#[tokio::test]
async fn the_host_firewall_lists_its_ports_with_resolved_groups() {
    for backend in backends().await {
        host_firewall_on(&backend).await;
    }
}
