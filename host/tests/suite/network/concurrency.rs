//! Concurrency: the default security group, the IPAM and the quotas under
//! many simultaneous requests, on SQLite and PostgreSQL.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Instant;

use novum_network::{Caller, NetworkError, NewNetwork, NewPort, QuotaResource};

use super::{admin, databases, network, rows, service, subnet};

/// The races run one at a time: each may hold a full pool of PostgreSQL
/// connections (32), and the server takes 100.
static ONE_RACE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_uses_make_one_default_group() {
    let _race = ONE_RACE_AT_A_TIME.lock().await;
    for backend in databases().await {
        let service = service(&backend);
        let caller = Caller::project("first-use");
        let net = network(&service, &caller, "net").await;
        subnet(&service, &caller, &net.id, "10.0.0.0/24").await;
        let mut tasks = Vec::new();
        for index in 0..30 {
            let service = service.clone();
            let caller = caller.clone();
            let network_id = net.id.clone();
            tasks.push(tokio::spawn(async move {
                match index % 3 {
                    0 => service
                        .ensure_default_security_group(&caller.project_id)
                        .await
                        .expect("ensure"),
                    1 => {
                        let page = service
                            .list_security_groups(&caller, &Default::default())
                            .await
                            .expect("list");
                        page.items
                            .into_iter()
                            .find(|group| group.name == "default")
                            .expect("default listed")
                            .id
                    }
                    _ => {
                        let port = service
                            .create_port(
                                &caller,
                                &NewPort {
                                    network_id,
                                    ..NewPort::default()
                                },
                            )
                            .await
                            .expect("port");
                        assert_eq!(port.security_groups.len(), 1);
                        port.security_groups[0].clone()
                    }
                }
            }));
        }
        let mut ids = BTreeSet::new();
        for task in tasks {
            ids.insert(task.await.expect("task"));
        }
        assert_eq!(
            ids.len(),
            1,
            "{}: every first use saw one group",
            backend.name
        );
        let groups = service
            .list_security_groups(&caller, &Default::default())
            .await
            .expect("list");
        assert_eq!(groups.items.len(), 1, "{}", backend.name);
        let group = &groups.items[0];
        let mut rules: Vec<(String, String, Option<String>)> = group
            .rules
            .iter()
            .map(|rule| {
                (
                    rule.direction.clone(),
                    rule.ethertype.clone(),
                    rule.remote_group_id.clone(),
                )
            })
            .collect();
        rules.sort();
        assert_eq!(
            rules,
            [
                ("egress".to_string(), "IPv4".to_string(), None),
                ("egress".to_string(), "IPv6".to_string(), None),
                (
                    "ingress".to_string(),
                    "IPv4".to_string(),
                    Some(group.id.clone())
                ),
                (
                    "ingress".to_string(),
                    "IPv6".to_string(),
                    Some(group.id.clone())
                ),
            ]
        );
        assert!(
            group
                .rules
                .iter()
                .all(|rule| rule.remote_ip_prefix.is_none())
        );
        assert_eq!(rows(&backend, "security_groups").await, 1);
        assert_eq!(rows(&backend, "security_group_rules").await, 4);
    }
}

/// `count` concurrent port creates on a fresh network with one subnet
/// `cidr`: the addresses of the ports made and the refusals' types.
async fn race_ports(
    backend: &crate::api_common::Backend,
    cidr: &str,
    count: usize,
) -> (Vec<String>, Vec<&'static str>) {
    let service = service(backend);
    let caller = Caller::project("racers");
    let net = network(&service, &caller, "race").await;
    subnet(&service, &caller, &net.id, cidr).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..count {
        let service = service.clone();
        let caller = caller.clone();
        let network_id = net.id.clone();
        tasks.push(tokio::spawn(async move {
            service
                .create_port(
                    &caller,
                    &NewPort {
                        network_id,
                        ..NewPort::default()
                    },
                )
                .await
        }));
    }
    let mut addresses = Vec::new();
    let mut refusals = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok(port) => {
                assert_eq!(port.fixed_ips.len(), 1);
                addresses.push(port.fixed_ips[0].ip_address.clone());
            }
            Err(error) => refusals.push(error.error_type()),
        }
    }
    println!(
        "{}: {count} concurrent port creates on {cidr}: {} made, {} refused, {:?}",
        backend.name,
        addresses.len(),
        refusals.len(),
        started.elapsed()
    );
    (addresses, refusals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_ports_get_two_hundred_addresses() {
    let _race = ONE_RACE_AT_A_TIME.lock().await;
    for backend in databases().await {
        let (addresses, refusals) = race_ports(&backend, "10.20.0.0/24", 200).await;
        assert!(refusals.is_empty(), "{}: {refusals:?}", backend.name);
        let distinct: BTreeSet<Ipv4Addr> = addresses
            .iter()
            .map(|address| address.parse().expect("IPv4"))
            .collect();
        assert_eq!(distinct.len(), 200, "{}: every address once", backend.name);
        // The lowest free ones: .2 to .201.
        let first: Ipv4Addr = "10.20.0.2".parse().expect("ip");
        let last: Ipv4Addr = "10.20.0.201".parse().expect("ip");
        assert_eq!(distinct.first(), Some(&first));
        assert_eq!(distinct.last(), Some(&last));
        assert_eq!(rows(&backend, "network_ip_allocations").await, 200);
        assert_eq!(rows(&backend, "ports").await, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exhausted_subnet_refuses_cleanly() {
    let _race = ONE_RACE_AT_A_TIME.lock().await;
    for backend in databases().await {
        // A /27: 32 addresses less network, broadcast and gateway.
        let (addresses, refusals) = race_ports(&backend, "10.30.0.0/27", 40).await;
        assert_eq!(addresses.len(), 29, "{}", backend.name);
        assert_eq!(
            addresses.iter().collect::<BTreeSet<_>>().len(),
            29,
            "{}: distinct",
            backend.name
        );
        assert_eq!(refusals, vec!["IpAddressGenerationFailure"; 11]);
        // Nothing half-made: a port row for each address, no more.
        assert_eq!(rows(&backend, "ports").await, 29, "{}", backend.name);
        assert_eq!(rows(&backend, "network_ip_allocations").await, 29);
        assert_eq!(rows(&backend, "port_security_group_bindings").await, 29);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_races_never_pass_the_limit() {
    let _race = ONE_RACE_AT_A_TIME.lock().await;
    for backend in databases().await {
        let service = service(&backend);
        let project = "quota-racers";
        let caller = Caller::project(project);
        service
            .set_quotas(
                &admin(),
                project,
                &[(QuotaResource::Port, 5), (QuotaResource::Network, 3)],
            )
            .await
            .expect("limits set");
        let net = network(&service, &caller, "net").await;
        subnet(&service, &caller, &net.id, "10.0.0.0/24").await;
        let mut ports = Vec::new();
        let mut networks = Vec::new();
        for _ in 0..20 {
            let (port_service, port_caller, network_id) =
                (service.clone(), caller.clone(), net.id.clone());
            ports.push(tokio::spawn(async move {
                port_service
                    .create_port(
                        &port_caller,
                        &NewPort {
                            network_id,
                            ..NewPort::default()
                        },
                    )
                    .await
            }));
            let (service, caller) = (service.clone(), caller.clone());
            networks.push(tokio::spawn(async move {
                service
                    .create_network(&caller, &NewNetwork::default())
                    .await
            }));
        }
        let mut made = 0;
        for task in ports {
            match task.await.expect("task") {
                Ok(_) => made += 1,
                Err(error) => {
                    assert!(matches!(&error, NetworkError::OverQuota(overs) if overs == &["port"]));
                    assert_eq!(error.to_string(), "Quota exceeded for resources: ['port'].");
                    assert_eq!(error.status(), 409);
                }
            }
        }
        assert_eq!(made, 5, "{}: exactly the port limit", backend.name);
        let mut networks_made = 0;
        for task in networks {
            if task.await.expect("task").is_ok() {
                networks_made += 1;
            }
        }
        // One network existed before the race.
        assert_eq!(
            networks_made, 2,
            "{}: exactly the network limit",
            backend.name
        );
        let details = service
            .quota_details(&caller, project)
            .await
            .expect("details");
        assert_eq!(details[&QuotaResource::Port].used, 5);
        assert_eq!(details[&QuotaResource::Port].limit, 5);
        assert_eq!(details[&QuotaResource::Network].used, 3);
        assert_eq!(details[&QuotaResource::Subnet].limit, 100);
        // Reset: the defaults again.
        service
            .reset_quotas(&admin(), project)
            .await
            .expect("reset");
        let limits = service
            .quota_limits(&caller, project)
            .await
            .expect("limits");
        assert_eq!(limits[&QuotaResource::Port], 500);
        assert_eq!(limits[&QuotaResource::SecurityGroupRule], 100);
        assert!(matches!(
            service
                .set_quotas(&caller, project, &[(QuotaResource::Port, 1)])
                .await,
            Err(NetworkError::NotAuthorized)
        ));
    }
}
