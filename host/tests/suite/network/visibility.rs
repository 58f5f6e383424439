//! Two projects and an admin: what each sees and may change.

use novum_network::{Listing, NetworkUpdate, NewNetwork, NewPort, NewSecurityGroup};

use super::{admin, alice, bob, databases, network, refused, service, subnet};

#[tokio::test]
async fn projects_see_their_own_and_shared_networks_only() {
    for backend in databases().await {
        let service = service(&backend);
        let (alice, bob, admin) = (alice(), bob(), admin());
        let private = network(&service, &alice, "alice-private").await;
        let private_subnet = subnet(&service, &alice, &private.id, "10.0.0.0/24").await;
        let shared = service
            .create_network(
                &admin,
                &NewNetwork {
                    name: Some("public-shared".into()),
                    shared: Some(true),
                    ..NewNetwork::default()
                },
            )
            .await
            .expect("shared network");
        let shared_subnet = subnet(&service, &admin, &shared.id, "10.1.0.0/24").await;
        let external = service
            .create_network(
                &admin,
                &NewNetwork {
                    name: Some("external".into()),
                    router_external: Some(true),
                    ..NewNetwork::default()
                },
            )
            .await
            .expect("external network");
        let alice_port = service
            .create_port(
                &alice,
                &NewPort {
                    network_id: private.id.clone(),
                    ..NewPort::default()
                },
            )
            .await
            .expect("alice's port");
        let bob_port = service
            .create_port(
                &bob,
                &NewPort {
                    network_id: shared.id.clone(),
                    ..NewPort::default()
                },
            )
            .await
            .expect("bob's port on the shared network");
        let bob_group = service
            .create_security_group(
                &bob,
                &NewSecurityGroup {
                    name: "bobs".into(),
                    ..NewSecurityGroup::default()
                },
            )
            .await
            .expect("bob's group");

        let names = |page: Vec<novum_network::Network>| {
            let mut names: Vec<String> = page.into_iter().map(|network| network.name).collect();
            names.sort();
            names
        };
        let bobs = service
            .list_networks(&bob, &Listing::default())
            .await
            .expect("list");
        assert_eq!(
            names(bobs.items),
            ["external", "public-shared"],
            "{}",
            backend.name
        );
        let alices = service
            .list_networks(&alice, &Listing::default())
            .await
            .expect("list");
        assert_eq!(
            names(alices.items),
            ["alice-private", "external", "public-shared"]
        );
        let all = service
            .list_networks(&admin, &Listing::default())
            .await
            .expect("list");
        assert_eq!(all.items.len(), 3);

        // What bob may not see does not exist for him.
        refused(
            service.get_network(&bob, &private.id).await,
            "NetworkNotFound",
            404,
        );
        refused(
            service.get_subnet(&bob, &private_subnet.id).await,
            "SubnetNotFound",
            404,
        );
        refused(
            service.get_port(&bob, &alice_port.id).await,
            "PortNotFound",
            404,
        );
        refused(
            service.delete_port(&bob, &alice_port.id).await,
            "PortNotFound",
            404,
        );
        refused(
            service.delete_network(&bob, &private.id).await,
            "NetworkNotFound",
            404,
        );
        refused(
            service
                .create_port(
                    &bob,
                    &NewPort {
                        network_id: private.id.clone(),
                        ..NewPort::default()
                    },
                )
                .await,
            "NetworkNotFound",
            404,
        );
        refused(
            service.get_security_group(&alice, &bob_group.id).await,
            "SecurityGroupNotFound",
            404,
        );
        // Shared: seen, used, not changed; its subnets are seen.
        assert_eq!(
            service
                .get_subnet(&bob, &shared_subnet.id)
                .await
                .expect("seen")
                .id,
            shared_subnet.id
        );
        refused(
            service
                .update_network(
                    &bob,
                    &shared.id,
                    &NetworkUpdate {
                        name: Some("mine".into()),
                        ..NetworkUpdate::default()
                    },
                )
                .await,
            "PolicyNotAuthorized",
            403,
        );
        refused(
            service.delete_network(&bob, &shared.id).await,
            "PolicyNotAuthorized",
            403,
        );
        refused(
            service
                .create_subnet(
                    &bob,
                    &novum_network::NewSubnet {
                        network_id: shared.id.clone(),
                        ip_version: 4,
                        cidr: "10.2.0.0/24".into(),
                        ..novum_network::NewSubnet::default()
                    },
                )
                .await,
            "PolicyNotAuthorized",
            403,
        );
        // An external network that is not shared takes no ports of others.
        refused(
            service
                .create_port(
                    &bob,
                    &NewPort {
                        network_id: external.id.clone(),
                        ..NewPort::default()
                    },
                )
                .await,
            "PolicyNotAuthorized",
            403,
        );
        // A fixed address on someone else's shared network: the owner's call.
        refused(
            service
                .create_port(
                    &bob,
                    &NewPort {
                        network_id: shared.id.clone(),
                        fixed_ips: Some(vec![novum_network::FixedIpRequest {
                            subnet_id: None,
                            ip_address: Some("10.1.0.77".into()),
                        }]),
                        ..NewPort::default()
                    },
                )
                .await,
            "PolicyNotAuthorized",
            403,
        );
        // Ports: each sees its own; the admin (network owner) sees bob's.
        let alice_ports = service
            .list_ports(&alice, &Listing::default())
            .await
            .expect("list");
        assert_eq!(
            alice_ports
                .items
                .iter()
                .map(|port| port.id.as_str())
                .collect::<Vec<_>>(),
            [alice_port.id.as_str()]
        );
        let bob_ports = service
            .list_ports(&bob, &Listing::default())
            .await
            .expect("list");
        assert_eq!(
            bob_ports
                .items
                .iter()
                .map(|port| port.id.as_str())
                .collect::<Vec<_>>(),
            [bob_port.id.as_str()]
        );
        let subnets = service
            .list_subnets(&bob, &Listing::default())
            .await
            .expect("list");
        assert_eq!(
            subnets
                .items
                .iter()
                .map(|subnet| subnet.id.as_str())
                .collect::<Vec<_>>(),
            [shared_subnet.id.as_str()]
        );
        // Groups: each its own (the default among them).
        let groups = service
            .list_security_groups(&alice, &Listing::default())
            .await
            .expect("list");
        assert!(
            groups
                .items
                .iter()
                .all(|group| group.project_id == alice.project_id)
        );
        assert_eq!(
            groups
                .items
                .iter()
                .filter(|group| group.name == "default")
                .count(),
            1
        );
        // Unsharing a network another project uses is refused.
        refused(
            service
                .update_network(
                    &admin,
                    &shared.id,
                    &NetworkUpdate {
                        shared: Some(false),
                        ..NetworkUpdate::default()
                    },
                )
                .await,
            "InvalidSharedSetting",
            409,
        );
        // Quotas: a project reads its own, not another's.
        service
            .quota_limits(&bob, "project-b")
            .await
            .expect("own quota");
        refused(
            service.quota_limits(&bob, "project-a").await,
            "NotAuthorized",
            403,
        );
    }
}
