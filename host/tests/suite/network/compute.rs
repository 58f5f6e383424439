//! The compute side: ports allocated for an instance, bound to a host,
//! released (deleted or unbound), rolled back when one request fails, and
//! what the agent gets; get-me-a-network.

use novum_network::{
    Caller, InstancePortRequest, NetworkBackend, NetworkConfig, NetworkService, NewPort,
    NewSecurityGroup, bridge_name, ensure_default_network,
};

use super::{admin, alice, bob, databases, network, refused, rows, service, service_with, subnet};

fn on_network(network_id: &str, fixed_ip: Option<&str>) -> InstancePortRequest {
    InstancePortRequest::Network {
        network_id: network_id.to_string(),
        fixed_ip: fixed_ip.map(str::to_string),
        port_id: uuid::Uuid::new_v4().to_string(),
    }
}

#[tokio::test]
async fn instance_ports_are_allocated_bound_and_released() {
    for backend in databases().await {
        let service = service(&backend);
        let alice = alice();
        let net = network(&service, &alice, "private").await;
        let sub = subnet(&service, &alice, &net.id, "192.168.10.0/24").await;
        let web = service
            .create_security_group(
                &alice,
                &NewSecurityGroup {
                    name: "web".into(),
                    ..NewSecurityGroup::default()
                },
            )
            .await
            .expect("group");
        let own = service
            .create_port(
                &alice,
                &NewPort {
                    network_id: net.id.clone(),
                    name: Some("mine".into()),
                    ..NewPort::default()
                },
            )
            .await
            .expect("user's port");
        let instance = uuid::Uuid::new_v4().to_string();
        let requests = vec![
            on_network(&net.id, Some("192.168.10.77")),
            InstancePortRequest::Port {
                port_id: own.id.clone(),
            },
        ];
        let ports = service
            .allocate_for_instance(&alice, &instance, &["web".to_string()], &requests)
            .await
            .expect("allocated");
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0].fixed_ips[0].ip_address, "192.168.10.77");
        assert_eq!(ports[0].security_groups, std::slice::from_ref(&web.id));
        assert!(ports[0].created_for_instance);
        assert_eq!(ports[1].id, own.id);
        assert!(!ports[1].created_for_instance);
        assert!(ports.iter().all(|port| port.device_id == instance));
        assert!(ports.iter().all(|port| port.status == "DOWN"));
        // Idempotent: the same requests give the same ports.
        let again = service
            .allocate_for_instance(&alice, &instance, &["web".to_string()], &requests)
            .await
            .expect("again");
        assert_eq!(
            again.iter().map(|port| &port.id).collect::<Vec<_>>(),
            ports.iter().map(|port| &port.id).collect::<Vec<_>>()
        );
        assert_eq!(rows(&backend, "ports").await, 2, "{}", backend.name);
        // Another instance cannot take a port in use.
        let message = refused(
            service
                .allocate_for_instance(
                    &alice,
                    "other-instance",
                    &[],
                    &[InstancePortRequest::Port {
                        port_id: own.id.clone(),
                    }],
                )
                .await,
            "PortInUse",
            409,
        );
        assert!(message.contains(&instance), "{message}");

        // Bind: owner, host, vif type, ACTIVE; twice changes nothing.
        let bound = service
            .bind_instance_ports(&instance, "compute-1", "nova")
            .await
            .expect("bound");
        for port in &bound {
            assert_eq!(port.device_owner, "compute:nova");
            assert_eq!(port.binding.host_id, "compute-1");
            assert_eq!(port.binding.vif_type, "bridge");
            assert_eq!(port.status, "ACTIVE");
        }
        let rebound = service
            .bind_instance_ports(&instance, "compute-1", "nova")
            .await
            .expect("bound again");
        assert_eq!(
            rebound
                .iter()
                .map(|port| port.revision_number)
                .collect::<Vec<_>>(),
            bound
                .iter()
                .map(|port| port.revision_number)
                .collect::<Vec<_>>()
        );

        // What the agent and `addresses` get.
        let info = service
            .instance_ports(&instance)
            .await
            .expect("instance ports");
        assert_eq!(info.len(), 2);
        let first = info
            .iter()
            .find(|port| port.port.id == ports[0].id)
            .expect("created port");
        assert_eq!(first.network_name, "private");
        assert_eq!(first.mtu, 1500);
        assert_eq!(first.bridge, bridge_name(&net.id));
        assert_eq!(first.bridge.len(), 14);
        assert!(first.bridge.starts_with("brq"));
        assert_eq!(first.ips.len(), 1);
        assert_eq!(first.ips[0].address, "192.168.10.77");
        assert_eq!(first.ips[0].version, 4);
        assert_eq!(first.ips[0].cidr, "192.168.10.0/24");
        assert_eq!(first.ips[0].gateway.as_deref(), Some("192.168.10.1"));
        assert_eq!(first.ips[0].subnet_id, sub.id);
        let groups = service
            .instance_security_groups(&instance)
            .await
            .expect("groups");
        let mut names: Vec<&str> = groups.iter().map(|group| group.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["default", "web"]);

        // Release: the created port goes, the user's is unbound and kept.
        let released = service
            .release_instance_ports(&instance)
            .await
            .expect("released");
        assert_eq!(released.deleted, [ports[0].id.clone()]);
        assert_eq!(released.unbound, std::slice::from_ref(&own.id));
        let kept = service.get_port(&alice, &own.id).await.expect("kept");
        assert_eq!(kept.device_id, "");
        assert_eq!(kept.device_owner, "");
        assert_eq!(kept.binding.host_id, "");
        assert_eq!(kept.binding.vif_type, "unbound");
        assert_eq!(kept.status, "DOWN");
        refused(
            service.get_port(&alice, &ports[0].id).await,
            "PortNotFound",
            404,
        );
        assert_eq!(rows(&backend, "network_ip_allocations").await, 1);
        let twice = service
            .release_instance_ports(&instance)
            .await
            .expect("released twice");
        assert!(twice.deleted.is_empty() && twice.unbound.is_empty());
        // The freed address can be given again.
        service
            .allocate_for_instance(
                &alice,
                "next-instance",
                &[],
                &[on_network(&net.id, Some("192.168.10.77"))],
            )
            .await
            .expect("address free again");
        // Detach: a created port goes.
        let detached = service
            .detach_instance_port(
                "next-instance",
                &service
                    .instance_ports("next-instance")
                    .await
                    .expect("ports")[0]
                    .port
                    .id,
            )
            .await
            .expect("detached");
        assert_eq!(detached.deleted.len(), 1);
        refused(
            service.detach_instance_port("next-instance", &own.id).await,
            "PortNotFound",
            404,
        );
    }
}

#[tokio::test]
async fn a_failed_allocation_leaves_nothing() {
    for backend in databases().await {
        let service = service(&backend);
        let alice = alice();
        let net = network(&service, &alice, "private").await;
        subnet(&service, &alice, &net.id, "192.168.10.0/24").await;
        let taken = service
            .create_port(
                &alice,
                &NewPort {
                    network_id: net.id.clone(),
                    fixed_ips: Some(vec![novum_network::FixedIpRequest {
                        subnet_id: None,
                        ip_address: Some("192.168.10.5".into()),
                    }]),
                    ..NewPort::default()
                },
            )
            .await
            .expect("port");
        let before = (
            rows(&backend, "ports").await,
            rows(&backend, "network_ip_allocations").await,
            rows(&backend, "port_security_group_bindings").await,
        );
        let instance = "doomed-instance";
        for (requests, kind, status) in [
            (
                vec![
                    on_network(&net.id, None),
                    on_network(&net.id, Some("192.168.10.5")),
                ],
                "IpAddressAlreadyAllocated",
                409,
            ),
            (
                vec![
                    on_network(&net.id, None),
                    on_network(&net.id, Some("10.0.0.5")),
                ],
                "InvalidIpForNetwork",
                400,
            ),
            (
                vec![
                    on_network(&net.id, None),
                    on_network("no-such-network", None),
                ],
                "NetworkNotFound",
                404,
            ),
            (
                vec![
                    on_network(&net.id, None),
                    InstancePortRequest::Port {
                        port_id: "no-such-port".into(),
                    },
                ],
                "PortNotFound",
                404,
            ),
        ] {
            refused(
                service
                    .allocate_for_instance(&alice, instance, &[], &requests)
                    .await,
                kind,
                status,
            );
        }
        refused(
            service
                .allocate_for_instance(
                    &alice,
                    instance,
                    &["no-such-group".into()],
                    &[on_network(&net.id, None)],
                )
                .await,
            "SecurityGroupNotFound",
            404,
        );
        let after = (
            rows(&backend, "ports").await,
            rows(&backend, "network_ip_allocations").await,
            rows(&backend, "port_security_group_bindings").await,
        );
        assert_eq!(after, before, "{}: nothing half-made", backend.name);
        assert!(
            service
                .instance_ports(instance)
                .await
                .expect("ports")
                .is_empty()
        );
        // A port of another project is not found, not taken.
        refused(
            service
                .allocate_for_instance(
                    &bob(),
                    "bobs-instance",
                    &[],
                    &[InstancePortRequest::Port {
                        port_id: taken.id.clone(),
                    }],
                )
                .await,
            "PortNotFound",
            404,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_default_network_is_made_once_and_handed_out() {
    for backend in databases().await {
        let config = NetworkConfig::default();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (db, config) = (backend.db.clone(), config.clone());
            tasks.push(tokio::spawn(async move {
                ensure_default_network(&db, &config, "admin-project").await
            }));
        }
        let mut ids = std::collections::BTreeSet::new();
        for task in tasks {
            let network = task
                .await
                .expect("task")
                .expect("ensured")
                .expect("enabled");
            ids.insert(network.id);
        }
        assert_eq!(ids.len(), 1, "{}: one default network", backend.name);
        assert_eq!(rows(&backend, "networks").await, 1);
        assert_eq!(rows(&backend, "subnets").await, 1);
        let service = service(&backend);
        let id = ids.into_iter().next().expect("one");
        let network = service.get_network(&alice(), &id).await.expect("shared");
        assert!(network.shared && network.is_default);
        assert_eq!(network.name, "shared");
        assert_eq!(network.mtu, 1500);
        let subnet = service
            .get_subnet(&alice(), &network.subnets[0])
            .await
            .expect("subnet");
        assert_eq!(subnet.cidr, "10.0.0.0/22");
        assert_eq!(subnet.gateway_ip.as_deref(), Some("10.0.0.1"));
        let topology = service
            .auto_allocated_topology(&alice(), "project-a")
            .await
            .expect("topology");
        assert_eq!(topology.id, id);
        refused(
            service.auto_allocated_topology(&alice(), "project-b").await,
            "NotAuthorized",
            403,
        );
        // Every project may boot on it.
        let ports = service
            .allocate_for_instance(
                &Caller::project("anyone"),
                "auto-instance",
                &[],
                &[on_network(&topology.id, None)],
            )
            .await
            .expect("port on the default network");
        assert_eq!(ports[0].fixed_ips[0].ip_address, "10.0.0.2");
        // Without it, auto-allocation fails with Neutron's type.
        let empty = crate::api_common::backends().await;
        if let Some(fresh) = empty.iter().find(|other| other.name == backend.name) {
            refused(
                service_with(fresh, NetworkConfig::default())
                    .auto_allocated_topology(&admin(), "project-a")
                    .await,
                "AutoAllocationFailure",
                409,
            );
            let off = NetworkConfig {
                default_network: false,
                ..NetworkConfig::default()
            };
            assert!(
                ensure_default_network(&fresh.db, &off, "admin")
                    .await
                    .expect("off")
                    .is_none()
            );
        }
    }
}

#[tokio::test]
async fn the_neutron_backend_is_a_seam_only() {
    for backend in databases().await {
        let config = NetworkConfig {
            backend: NetworkBackend::Neutron,
            ..NetworkConfig::default()
        };
        let error = NetworkService::new(backend.db.clone(), config).expect_err("not built");
        assert_eq!(error.status(), 501);
        assert!(
            error.to_string().contains("not implemented in this build"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn instance_security_groups_are_added_and_removed() {
    for backend in databases().await {
        let service = service(&backend);
        let alice = alice();
        let net = network(&service, &alice, "private").await;
        subnet(&service, &alice, &net.id, "192.168.10.0/24").await;
        let db_group = service
            .create_security_group(
                &alice,
                &NewSecurityGroup {
                    name: "db".into(),
                    ..NewSecurityGroup::default()
                },
            )
            .await
            .expect("group");
        let instance = "grouped-instance";
        service
            .allocate_for_instance(
                &alice,
                instance,
                &[],
                &[on_network(&net.id, None), on_network(&net.id, None)],
            )
            .await
            .expect("two ports");
        let added = service
            .add_instance_security_group(&alice, instance, "db")
            .await
            .expect("added");
        assert_eq!(added, db_group.id);
        // Twice is harmless.
        service
            .add_instance_security_group(&alice, instance, &db_group.id)
            .await
            .expect("added again");
        for port in service.instance_ports(instance).await.expect("ports") {
            assert_eq!(port.port.security_groups.len(), 2, "{}", backend.name);
            assert!(port.port.security_groups.contains(&db_group.id));
        }
        let names: Vec<String> = service
            .instance_security_groups(instance)
            .await
            .expect("groups")
            .into_iter()
            .map(|group| group.name)
            .collect();
        assert_eq!(names, ["db", "default"]);
        service
            .remove_instance_security_group(&alice, instance, "default")
            .await
            .expect("removed");
        let names: Vec<String> = service
            .instance_security_groups(instance)
            .await
            .expect("groups")
            .into_iter()
            .map(|group| group.name)
            .collect();
        assert_eq!(names, ["db"]);
        refused(
            service
                .add_instance_security_group(&alice, instance, "nope")
                .await,
            "SecurityGroupNotFound",
            404,
        );
        // Two groups of one name: use an id.
        service
            .create_security_group(
                &alice,
                &NewSecurityGroup {
                    name: "db".into(),
                    ..NewSecurityGroup::default()
                },
            )
            .await
            .expect("second db group");
        refused(
            service
                .add_instance_security_group(&alice, instance, "db")
                .await,
            "NoUniqueMatch",
            409,
        );
    }
}

#[tokio::test]
async fn subnet_and_port_updates_keep_what_is_named() {
    for backend in databases().await {
        let service = service(&backend);
        let alice = alice();
        let net = network(&service, &alice, "private").await;
        let sub = subnet(&service, &alice, &net.id, "192.168.10.0/24").await;
        let updated = service
            .update_subnet(
                &alice,
                &sub.id,
                &novum_network::SubnetUpdate {
                    dns_nameservers: Some(vec!["192.168.10.53".into(), "9.9.9.9".into()]),
                    allocation_pools: Some(vec![novum_network::AllocationPool {
                        start: "192.168.10.100".into(),
                        end: "192.168.10.110".into(),
                    }]),
                    ..novum_network::SubnetUpdate::default()
                },
            )
            .await
            .expect("subnet updated");
        assert_eq!(updated.dns_nameservers, ["192.168.10.53", "9.9.9.9"]);
        assert_eq!(updated.revision_number, 2);
        refused(
            service
                .update_subnet(
                    &alice,
                    &sub.id,
                    &novum_network::SubnetUpdate {
                        gateway_ip: Some(Some("192.168.10.105".into())),
                        ..novum_network::SubnetUpdate::default()
                    },
                )
                .await,
            "GatewayConflictWithAllocationPools",
            409,
        );
        let port = service
            .create_port(
                &alice,
                &NewPort {
                    network_id: net.id.clone(),
                    ..NewPort::default()
                },
            )
            .await
            .expect("port");
        assert_eq!(port.fixed_ips[0].ip_address, "192.168.10.100");
        // A subnet-only entry keeps the address; a new one is added.
        let two = service
            .update_port(
                &alice,
                &port.id,
                &novum_network::PortUpdate {
                    fixed_ips: Some(vec![
                        novum_network::FixedIpRequest {
                            subnet_id: Some(sub.id.clone()),
                            ip_address: None,
                        },
                        novum_network::FixedIpRequest {
                            subnet_id: None,
                            ip_address: Some("192.168.10.20".into()),
                        },
                    ]),
                    ..novum_network::PortUpdate::default()
                },
            )
            .await
            .expect("port updated");
        let addresses: Vec<&str> = two
            .fixed_ips
            .iter()
            .map(|ip| ip.ip_address.as_str())
            .collect();
        assert_eq!(
            addresses,
            ["192.168.10.100", "192.168.10.20"],
            "{}",
            backend.name
        );
        // Naming only the second releases the first.
        let one = service
            .update_port(
                &alice,
                &port.id,
                &novum_network::PortUpdate {
                    fixed_ips: Some(vec![novum_network::FixedIpRequest {
                        subnet_id: None,
                        ip_address: Some("192.168.10.20".into()),
                    }]),
                    ..novum_network::PortUpdate::default()
                },
            )
            .await
            .expect("port updated");
        assert_eq!(one.fixed_ips.len(), 1);
        assert_eq!(one.fixed_ips[0].ip_address, "192.168.10.20");
        assert_eq!(rows(&backend, "network_ip_allocations").await, 1);
        // Admin binding through an update.
        refused(
            service
                .update_port(
                    &alice,
                    &port.id,
                    &novum_network::PortUpdate {
                        binding_host_id: Some("compute-1".into()),
                        ..novum_network::PortUpdate::default()
                    },
                )
                .await,
            "PolicyNotAuthorized",
            403,
        );
        let bound = service
            .update_port(
                &admin(),
                &port.id,
                &novum_network::PortUpdate {
                    binding_host_id: Some("compute-1".into()),
                    ..novum_network::PortUpdate::default()
                },
            )
            .await
            .expect("bound by admin");
        assert_eq!(
            (
                bound.binding.host_id.as_str(),
                bound.binding.vif_type.as_str(),
                bound.status.as_str()
            ),
            ("compute-1", "bridge", "ACTIVE")
        );
    }
}
