//! Every validation refusal, with Neutron's error type and status, and
//! nothing written by a refused request.

use novum_network::{
    AddressPairRequest, AllocationPool, FixedIpRequest, GatewayRequest, HostRoute, NetworkUpdate,
    NewNetwork, NewPort, NewSecurityGroup, NewSecurityGroupRule, NewSubnet, PortUpdate, Provider,
    SecurityGroupUpdate,
};

use super::{admin, alice, databases, network, refused, rows, service, subnet};

fn subnet_request(network_id: &str, cidr: &str) -> NewSubnet {
    NewSubnet {
        network_id: network_id.to_string(),
        ip_version: 4,
        cidr: cidr.to_string(),
        ..NewSubnet::default()
    }
}

fn pool(start: &str, end: &str) -> AllocationPool {
    AllocationPool {
        start: start.to_string(),
        end: end.to_string(),
    }
}

#[tokio::test]
async fn networks_refuse_admin_attributes_and_bad_mtu() {
    for backend in databases().await {
        let service = service(&backend);
        let alice = alice();
        for (new, rule) in [
            (
                NewNetwork {
                    shared: Some(true),
                    ..NewNetwork::default()
                },
                "create_network:shared",
            ),
            (
                NewNetwork {
                    router_external: Some(true),
                    ..NewNetwork::default()
                },
                "create_network:router:external",
            ),
            (
                NewNetwork {
                    provider: Provider {
                        network_type: Some("vlan".into()),
                        physical_network: Some("physnet1".into()),
                        segmentation_id: Some(10),
                    },
                    ..NewNetwork::default()
                },
                "create_network:provider:network_type",
            ),
        ] {
            let message = refused(
                service.create_network(&alice, &new).await,
                "PolicyNotAuthorized",
                403,
            );
            assert!(message.contains(rule), "{message}");
        }
        refused(
            service
                .create_network(
                    &alice,
                    &NewNetwork {
                        project_id: Some("project-b".into()),
                        ..NewNetwork::default()
                    },
                )
                .await,
            "InvalidInput",
            400,
        );
        refused(
            service
                .create_network(
                    &alice,
                    &NewNetwork {
                        mtu: Some(20),
                        ..NewNetwork::default()
                    },
                )
                .await,
            "InvalidInput",
            400,
        );
        refused(
            service
                .create_network(
                    &admin(),
                    &NewNetwork {
                        provider: Provider {
                            network_type: Some("vlan".into()),
                            physical_network: Some("physnet1".into()),
                            segmentation_id: Some(5000),
                        },
                        ..NewNetwork::default()
                    },
                )
                .await,
            "InvalidInput",
            400,
        );
        assert_eq!(rows(&backend, "networks").await, 0, "{}", backend.name);
        // An admin may; the revision goes up with an update.
        let vlan = service
            .create_network(
                &admin(),
                &NewNetwork {
                    provider: Provider {
                        network_type: Some("vlan".into()),
                        physical_network: Some("physnet1".into()),
                        segmentation_id: Some(100),
                    },
                    ..NewNetwork::default()
                },
            )
            .await
            .expect("admin creates a vlan network");
        assert_eq!(vlan.provider.segmentation_id, Some(100));
        assert_eq!(vlan.revision_number, 1);
        let updated = service
            .update_network(
                &admin(),
                &vlan.id,
                &NetworkUpdate {
                    name: Some("renamed".into()),
                    ..NetworkUpdate::default()
                },
            )
            .await
            .expect("update");
        assert_eq!(
            (updated.name.as_str(), updated.revision_number),
            ("renamed", 2)
        );
        assert!(updated.updated_at >= vlan.updated_at);
    }
}

#[tokio::test]
async fn subnets_refuse_what_neutron_refuses() {
    for backend in databases().await {
        let service = service(&backend);
        let alice = alice();
        let net = network(&service, &alice, "net").await;
        let cases: Vec<(NewSubnet, &str, u16)> = vec![
            (subnet_request(&net.id, "not-a-cidr"), "InvalidInput", 400),
            (subnet_request(&net.id, "10.0.0.5/24"), "InvalidInput", 400),
            (
                subnet_request(&net.id, "2001:db8::/64"),
                "InvalidInput",
                400,
            ),
            (subnet_request(&net.id, "0.0.0.0/0"), "InvalidInput", 400),
            (
                NewSubnet {
                    ip_version: 5,
                    ..subnet_request(&net.id, "10.0.0.0/24")
                },
                "InvalidInput",
                400,
            ),
            (
                NewSubnet {
                    gateway_ip: GatewayRequest::Address("10.0.1.1".into()),
                    ..subnet_request(&net.id, "10.0.0.0/24")
                },
                "InvalidInput",
                400,
            ),
            (
                NewSubnet {
                    gateway_ip: GatewayRequest::Address("10.0.0.255".into()),
                    ..subnet_request(&net.id, "10.0.0.0/24")
                },
                "InvalidInput",
                400,
            ),
            (
                NewSubnet {
                    allocation_pools: Some(vec![pool("10.0.0.1", "10.0.0.50")]),
                    ..subnet_request(&net.id, "10.0.0.0/24")
                },
                "GatewayConflictWithAllocationPools",
                409,
            ),
            (
                NewSubnet {
                    allocation_pools: Some(vec![pool("10.0.0.10", "10.0.1.10")]),
                    ..subnet_request(&net.id, "10.0.0.0/24")
                },
                "OutOfBoundsAllocationPool",
                400,
            ),
            (
                NewSubnet {
                    allocation_pools: Some(vec![
                        pool("10.0.0.10", "10.0.0.20"),
                        pool("10.0.0.15", "10.0.0.30"),
                    ]),
                    ..subnet_request(&net.id, "10.0.0.0/24")
                },
                "OverlappingAllocationPools",
                409,
            ),
            (
                NewSubnet {
                    allocation_pools: Some(vec![pool("10.0.0.30", "10.0.0.20")]),
                    ..subnet_request(&net.id, "10.0.0.0/24")
                },
                "InvalidAllocationPool",
                400,
            ),
            (
                NewSubnet {
                    dns_nameservers: vec!["8.8.8.8".into(), "8.8.8.8".into()],
                    ..subnet_request(&net.id, "10.0.0.0/24")
                },
                "InvalidInput",
                400,
            ),
            (
                NewSubnet {
                    dns_nameservers: (1..=6).map(|n| format!("10.9.9.{n}")).collect(),
                    ..subnet_request(&net.id, "10.0.0.0/24")
                },
                "DNSNameServersExhausted",
                400,
            ),
            (
                NewSubnet {
                    host_routes: vec![HostRoute {
                        destination: "2001:db8::/64".into(),
                        nexthop: "10.0.0.1".into(),
                    }],
                    ..subnet_request(&net.id, "10.0.0.0/24")
                },
                "InvalidInput",
                400,
            ),
            (
                NewSubnet {
                    ipv6_address_mode: Some("slaac".into()),
                    ..subnet_request(&net.id, "10.0.0.0/24")
                },
                "InvalidInput",
                400,
            ),
            (
                NewSubnet {
                    ip_version: 6,
                    ipv6_address_mode: Some("slaac".into()),
                    ..subnet_request(&net.id, "2001:db8::/80")
                },
                "InvalidInput",
                400,
            ),
            (
                NewSubnet {
                    ip_version: 6,
                    ipv6_ra_mode: Some("slaac".into()),
                    ipv6_address_mode: Some("dhcpv6-stateful".into()),
                    ..subnet_request(&net.id, "2001:db8::/64")
                },
                "InvalidInput",
                400,
            ),
            (
                subnet_request("no-such-network", "10.0.0.0/24"),
                "NetworkNotFound",
                404,
            ),
        ];
        for (request, kind, status) in cases {
            refused(service.create_subnet(&alice, &request).await, kind, status);
        }
        assert_eq!(rows(&backend, "subnets").await, 0, "{}", backend.name);
        // The default gateway and pool, and the overlap refusal.
        let first = subnet(&service, &alice, &net.id, "10.0.0.0/24").await;
        assert_eq!(first.gateway_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(first.allocation_pools, [pool("10.0.0.2", "10.0.0.254")]);
        let message = refused(
            service
                .create_subnet(&alice, &subnet_request(&net.id, "10.0.0.128/25"))
                .await,
            "InvalidInput",
            400,
        );
        assert!(
            message.contains("overlaps with another subnet"),
            "{message}"
        );
        // No gateway: the pool is the whole usable range; DNS order kept.
        let other = service
            .create_subnet(
                &alice,
                &NewSubnet {
                    gateway_ip: GatewayRequest::Disabled,
                    dns_nameservers: vec!["9.9.9.9".into(), "1.1.1.1".into()],
                    ..subnet_request(&net.id, "10.1.0.0/29")
                },
            )
            .await
            .expect("subnet without gateway");
        assert_eq!(other.gateway_ip, None);
        assert_eq!(other.allocation_pools, [pool("10.1.0.1", "10.1.0.6")]);
        assert_eq!(other.dns_nameservers, ["9.9.9.9", "1.1.1.1"]);
        // IPv6 SLAAC: EUI-64 addresses.
        let v6 = service
            .create_subnet(
                &alice,
                &NewSubnet {
                    ip_version: 6,
                    ipv6_ra_mode: Some("slaac".into()),
                    ipv6_address_mode: Some("slaac".into()),
                    ..subnet_request(&net.id, "2001:db8:1::/64")
                },
            )
            .await
            .expect("slaac subnet");
        let port = service
            .create_port(
                &alice,
                &NewPort {
                    network_id: net.id.clone(),
                    mac_address: Some("fa:16:3e:12:34:56".into()),
                    ..NewPort::default()
                },
            )
            .await
            .expect("port");
        let addresses: Vec<(&str, &str)> = port
            .fixed_ips
            .iter()
            .map(|ip| (ip.subnet_id.as_str(), ip.ip_address.as_str()))
            .collect();
        assert_eq!(
            addresses,
            [
                (first.id.as_str(), "10.0.0.2"),
                (v6.id.as_str(), "2001:db8:1:0:f816:3eff:fe12:3456")
            ]
        );
        // A subnet with allocations cannot go; without, it can.
        let message = refused(
            service.delete_subnet(&alice, &first.id).await,
            "SubnetInUse",
            409,
        );
        assert!(message.contains(&first.id), "{message}");
        service
            .delete_subnet(&alice, &other.id)
            .await
            .expect("unused subnet deleted");
    }
}

#[tokio::test]
async fn ports_refuse_bad_addresses_macs_and_settings() {
    for backend in databases().await {
        let service = service(&backend);
        let alice = alice();
        let net = network(&service, &alice, "net").await;
        let sub = subnet(&service, &alice, &net.id, "10.0.0.0/24").await;
        let other = network(&service, &alice, "other").await;
        let other_sub = subnet(&service, &alice, &other.id, "10.5.0.0/24").await;
        let port = |fixed: Vec<FixedIpRequest>| NewPort {
            network_id: net.id.clone(),
            fixed_ips: Some(fixed),
            ..NewPort::default()
        };
        let ip = |address: &str| FixedIpRequest {
            subnet_id: None,
            ip_address: Some(address.to_string()),
        };
        let taken = service
            .create_port(&alice, &port(vec![ip("10.0.0.50")]))
            .await
            .expect("port with a fixed ip");
        assert_eq!(taken.fixed_ips[0].ip_address, "10.0.0.50");
        let before = rows(&backend, "ports").await;
        let cases: Vec<(NewPort, &str, u16)> = vec![
            (
                port(vec![ip("10.0.0.50")]),
                "IpAddressAlreadyAllocated",
                409,
            ),
            (port(vec![ip("10.0.0.1")]), "IpAddressAlreadyAllocated", 409),
            (port(vec![ip("10.9.0.5")]), "InvalidIpForNetwork", 400),
            (port(vec![ip("10.0.0.255")]), "InvalidIpForNetwork", 400),
            (port(vec![ip("bogus")]), "InvalidInput", 400),
            (
                port(vec![FixedIpRequest {
                    subnet_id: Some(sub.id.clone()),
                    ip_address: Some("10.5.0.9".into()),
                }]),
                "InvalidIpForSubnet",
                400,
            ),
            (
                port(vec![FixedIpRequest {
                    subnet_id: Some(other_sub.id.clone()),
                    ip_address: None,
                }]),
                "InvalidInput",
                400,
            ),
            (port(vec![FixedIpRequest::default()]), "InvalidInput", 400),
            (
                NewPort {
                    mac_address: Some("zz:16:3e:00:00:01".into()),
                    ..port(vec![])
                },
                "InvalidInput",
                400,
            ),
            (
                NewPort {
                    mac_address: Some(taken.mac_address.clone()),
                    ..port(vec![])
                },
                "MacAddressInUse",
                409,
            ),
            (
                NewPort {
                    binding_host_id: Some("host-1".into()),
                    ..port(vec![])
                },
                "PolicyNotAuthorized",
                403,
            ),
            (
                NewPort {
                    binding_vnic_type: Some("sideways".into()),
                    ..port(vec![])
                },
                "InvalidInput",
                400,
            ),
            (
                NewPort {
                    port_security_enabled: Some(false),
                    security_groups: Some(vec!["any".into()]),
                    ..port(vec![])
                },
                "PortSecurityAndIPRequiredForSecurityGroups",
                400,
            ),
            (
                NewPort {
                    port_security_enabled: Some(false),
                    security_groups: Some(vec![]),
                    allowed_address_pairs: Some(vec![AddressPairRequest {
                        ip_address: "10.0.0.99".into(),
                        mac_address: None,
                    }]),
                    ..port(vec![])
                },
                "AddressPairAndPortSecurityRequired",
                409,
            ),
            (
                NewPort {
                    allowed_address_pairs: Some(vec![
                        AddressPairRequest {
                            ip_address: "10.0.0.99".into(),
                            mac_address: None,
                        },
                        AddressPairRequest {
                            ip_address: "10.0.0.99".into(),
                            mac_address: None,
                        },
                    ]),
                    ..port(vec![])
                },
                "DuplicateAddressPairInRequest",
                400,
            ),
            (
                NewPort {
                    security_groups: Some(vec!["no-such-group".into()]),
                    ..port(vec![])
                },
                "SecurityGroupNotFound",
                404,
            ),
            (
                NewPort {
                    network_id: "no-such-network".into(),
                    ..NewPort::default()
                },
                "NetworkNotFound",
                404,
            ),
        ];
        for (request, kind, status) in cases {
            refused(service.create_port(&alice, &request).await, kind, status);
        }
        assert_eq!(rows(&backend, "ports").await, before, "{}", backend.name);
        assert_eq!(rows(&backend, "network_ip_allocations").await, 1);
        // Port updates: address change, security off with groups on.
        let updated = service
            .update_port(
                &alice,
                &taken.id,
                &PortUpdate {
                    fixed_ips: Some(vec![ip("10.0.0.60")]),
                    ..PortUpdate::default()
                },
            )
            .await
            .expect("address changed");
        assert_eq!(updated.fixed_ips[0].ip_address, "10.0.0.60");
        assert_eq!(updated.revision_number, taken.revision_number + 1);
        refused(
            service
                .update_port(
                    &alice,
                    &taken.id,
                    &PortUpdate {
                        port_security_enabled: Some(false),
                        ..PortUpdate::default()
                    },
                )
                .await,
            "PortSecurityPortHasSecurityGroup",
            409,
        );
        // The freed address can be taken again.
        service
            .create_port(&alice, &port(vec![ip("10.0.0.50")]))
            .await
            .expect("10.0.0.50 free again");
        // A network with a port cannot go.
        let message = refused(
            service.delete_network(&alice, &net.id).await,
            "NetworkInUse",
            409,
        );
        assert!(message.contains(&net.id), "{message}");
    }
}

#[tokio::test]
async fn security_groups_and_rules_refuse_what_neutron_refuses() {
    for backend in databases().await {
        let service = service(&backend);
        let alice = alice();
        let group = service
            .create_security_group(
                &alice,
                &NewSecurityGroup {
                    name: "web".into(),
                    ..NewSecurityGroup::default()
                },
            )
            .await
            .expect("group");
        let egress: Vec<(&str, &str)> = group
            .rules
            .iter()
            .map(|rule| (rule.direction.as_str(), rule.ethertype.as_str()))
            .collect();
        assert_eq!(egress.len(), 2);
        assert!(egress.contains(&("egress", "IPv4")) && egress.contains(&("egress", "IPv6")));
        refused(
            service
                .create_security_group(
                    &alice,
                    &NewSecurityGroup {
                        name: "default".into(),
                        ..NewSecurityGroup::default()
                    },
                )
                .await,
            "SecurityGroupDefaultAlreadyExists",
            409,
        );
        let rule = |f: &dyn Fn(&mut NewSecurityGroupRule)| {
            let mut new = NewSecurityGroupRule {
                security_group_id: group.id.clone(),
                direction: "ingress".into(),
                ..NewSecurityGroupRule::default()
            };
            f(&mut new);
            new
        };
        let cases: Vec<(NewSecurityGroupRule, &str, u16)> = vec![
            (
                rule(&|r| r.direction = "sideways".into()),
                "InvalidInput",
                400,
            ),
            (
                rule(&|r| r.ethertype = Some("IPv5".into())),
                "InvalidInput",
                400,
            ),
            (
                rule(&|r| r.protocol = Some("bogus".into())),
                "SecurityGroupRuleInvalidProtocol",
                400,
            ),
            (
                rule(&|r| r.protocol = Some("300".into())),
                "SecurityGroupRuleInvalidProtocol",
                400,
            ),
            (
                rule(&|r| {
                    r.protocol = Some("tcp".into());
                    r.port_range_min = Some(80);
                    r.port_range_max = Some(22);
                }),
                "SecurityGroupInvalidPortRange",
                400,
            ),
            (
                rule(&|r| {
                    r.protocol = Some("tcp".into());
                    r.port_range_min = Some(0);
                    r.port_range_max = Some(22);
                }),
                "SecurityGroupInvalidPortValue",
                400,
            ),
            (
                rule(&|r| {
                    r.port_range_min = Some(22);
                    r.port_range_max = Some(22);
                }),
                "SecurityGroupProtocolRequiredWithPorts",
                400,
            ),
            (
                rule(&|r| {
                    r.protocol = Some("icmp".into());
                    r.port_range_min = Some(300);
                }),
                "SecurityGroupInvalidIcmpValue",
                400,
            ),
            (
                rule(&|r| {
                    r.protocol = Some("icmp".into());
                    r.port_range_max = Some(0);
                }),
                "SecurityGroupMissingIcmpType",
                400,
            ),
            (
                rule(&|r| r.protocol = Some("ipv6-icmp".into())),
                "SecurityGroupEthertypeConflictWithProtocol",
                400,
            ),
            (
                rule(&|r| r.remote_ip_prefix = Some("2001:db8::/64".into())),
                "SecurityGroupRuleParameterConflict",
                400,
            ),
            (
                rule(&|r| {
                    r.remote_ip_prefix = Some("10.0.0.0/8".into());
                    r.remote_group_id = Some(group.id.clone());
                }),
                "SecurityGroupRemoteGroupAndRemoteIpPrefix",
                400,
            ),
            (
                rule(&|r| r.remote_group_id = Some("no-such-group".into())),
                "SecurityGroupNotFound",
                404,
            ),
            (
                rule(&|r| r.security_group_id = "no-such-group".into()),
                "SecurityGroupNotFound",
                404,
            ),
        ];
        for (request, kind, status) in cases {
            refused(
                service.create_security_group_rule(&alice, &request).await,
                kind,
                status,
            );
        }
        let ssh = rule(&|r| {
            r.protocol = Some("tcp".into());
            r.port_range_min = Some(22);
            r.port_range_max = Some(22);
            r.remote_ip_prefix = Some("10.0.0.1/8".into());
        });
        let created = service
            .create_security_group_rule(&alice, &ssh)
            .await
            .expect("ssh rule");
        // Kept as given, host bits and all, as Neutron keeps it.
        assert_eq!(created.remote_ip_prefix.as_deref(), Some("10.0.0.1/8"));
        let message = refused(
            service.create_security_group_rule(&alice, &ssh).await,
            "SecurityGroupRuleExists",
            409,
        );
        assert!(message.contains(&created.id), "{message}");
        // The default group: not renamed, not deleted by its project, a
        // group in use not deleted.
        let default = service
            .ensure_default_security_group(&alice.project_id)
            .await
            .expect("default group");
        refused(
            service
                .update_security_group(
                    &alice,
                    &default,
                    &SecurityGroupUpdate {
                        name: Some("renamed".into()),
                        ..SecurityGroupUpdate::default()
                    },
                )
                .await,
            "SecurityGroupCannotUpdateDefault",
            409,
        );
        refused(
            service.delete_security_group(&alice, &default).await,
            "SecurityGroupCannotRemoveDefault",
            409,
        );
        let net = network(&service, &alice, "net").await;
        subnet(&service, &alice, &net.id, "10.0.0.0/24").await;
        let port = service
            .create_port(
                &alice,
                &NewPort {
                    network_id: net.id.clone(),
                    security_groups: Some(vec![group.id.clone()]),
                    ..NewPort::default()
                },
            )
            .await
            .expect("port in the group");
        refused(
            service.delete_security_group(&alice, &group.id).await,
            "SecurityGroupInUse",
            409,
        );
        service
            .delete_port(&alice, &port.id)
            .await
            .expect("port deleted");
        service
            .delete_security_group(&alice, &group.id)
            .await
            .expect("unused group deleted");
        service
            .delete_security_group(&admin(), &default)
            .await
            .expect("an admin may delete a default group");
    }
}
