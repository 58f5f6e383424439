//! Listing as Neutron does it: filters (several values = any of them),
//! sort keys with directions, pages with limit and marker, backwards.

use novum_network::{Listing, NetworkUpdate, NewNetwork, NewPort, SortDirection};

use super::{alice, databases, refused, service, subnet};

#[tokio::test]
async fn filters_sorting_and_pages() {
    for backend in databases().await {
        let service = service(&backend);
        let alice = alice();
        let mut ids = Vec::new();
        for (name, mtu) in [
            ("c", 1400),
            ("a", 1500),
            ("e", 1450),
            ("b", 1500),
            ("d", 1400),
        ] {
            let network = service
                .create_network(
                    &alice,
                    &NewNetwork {
                        name: Some(name.to_string()),
                        mtu: Some(mtu),
                        ..NewNetwork::default()
                    },
                )
                .await
                .expect("network");
            ids.push(network.id);
        }
        service
            .update_network(
                &alice,
                &ids[0],
                &NetworkUpdate {
                    admin_state_up: Some(false),
                    ..NetworkUpdate::default()
                },
            )
            .await
            .expect("update");
        let names = |listing: Listing| {
            let service = service.clone();
            let alice = alice.clone();
            async move {
                let page = service.list_networks(&alice, &listing).await.expect("list");
                (
                    page.items
                        .into_iter()
                        .map(|network| network.name)
                        .collect::<Vec<_>>(),
                    page.more,
                )
            }
        };
        let by_name = vec![("name".to_string(), SortDirection::Asc)];
        // Equality filters; several values are OR; booleans parse.
        let (found, _) = names(Listing {
            filters: vec![("mtu".into(), vec!["1400".into()])],
            sort: by_name.clone(),
            ..Listing::default()
        })
        .await;
        assert_eq!(found, ["c", "d"], "{}", backend.name);
        let (found, _) = names(Listing {
            filters: vec![("name".into(), vec!["a".into(), "e".into()])],
            sort: by_name.clone(),
            ..Listing::default()
        })
        .await;
        assert_eq!(found, ["a", "e"]);
        let (found, _) = names(Listing {
            filters: vec![
                ("admin_state_up".into(), vec!["False".into()]),
                ("tenant_id".into(), vec![alice.project_id.clone()]),
            ],
            ..Listing::default()
        })
        .await;
        assert_eq!(found, ["c"]);
        // Two keys: mtu descending, then name ascending.
        let (found, _) = names(Listing {
            sort: vec![
                ("mtu".into(), SortDirection::Desc),
                ("name".into(), SortDirection::Asc),
            ],
            ..Listing::default()
        })
        .await;
        assert_eq!(found, ["a", "b", "e", "c", "d"]);
        // Pages of two by name, following the marker.
        let mut seen = Vec::new();
        let mut marker = None;
        loop {
            let page = service
                .list_networks(
                    &alice,
                    &Listing {
                        sort: by_name.clone(),
                        limit: Some(2),
                        marker: marker.clone(),
                        ..Listing::default()
                    },
                )
                .await
                .expect("page");
            seen.extend(page.items.iter().map(|network| network.name.clone()));
            marker = page.items.last().map(|network| network.id.clone());
            if !page.more {
                break;
            }
        }
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
        // Backwards from "d": the two before it, still in order, more before.
        let d = ids[4].clone();
        let page = service
            .list_networks(
                &alice,
                &Listing {
                    sort: by_name.clone(),
                    limit: Some(2),
                    marker: Some(d),
                    page_reverse: true,
                    ..Listing::default()
                },
            )
            .await
            .expect("reverse page");
        assert_eq!(
            page.items
                .iter()
                .map(|network| network.name.as_str())
                .collect::<Vec<_>>(),
            ["b", "c"]
        );
        assert!(page.more);
        // Unknown filters and sort keys, and a marker not seen.
        refused(
            service
                .list_networks(&alice, &Listing::filtered("colour", "blue"))
                .await,
            "InvalidInput",
            400,
        );
        refused(
            service
                .list_networks(
                    &alice,
                    &Listing {
                        sort: vec![("colour".into(), SortDirection::Asc)],
                        ..Listing::default()
                    },
                )
                .await,
            "InvalidInput",
            400,
        );
        refused(
            service
                .list_networks(
                    &alice,
                    &Listing {
                        marker: Some("no-such-network".into()),
                        ..Listing::default()
                    },
                )
                .await,
            "NetworkNotFound",
            404,
        );
        refused(
            service
                .list_networks(&alice, &Listing::filtered("shared", "maybe"))
                .await,
            "InvalidInput",
            400,
        );
        // Ports by fixed IP, device and network.
        let sub = subnet(&service, &alice, &ids[1], "10.0.0.0/24").await;
        let mut ports = Vec::new();
        for device in ["vm-1", "vm-2", "vm-1"] {
            ports.push(
                service
                    .create_port(
                        &alice,
                        &NewPort {
                            network_id: ids[1].clone(),
                            device_id: Some(device.to_string()),
                            ..NewPort::default()
                        },
                    )
                    .await
                    .expect("port"),
            );
        }
        let by_ip = service
            .list_ports(
                &alice,
                &Listing::filtered(
                    "fixed_ips",
                    &format!("ip_address={}", ports[1].fixed_ips[0].ip_address),
                ),
            )
            .await
            .expect("by ip");
        assert_eq!(by_ip.items.len(), 1);
        assert_eq!(by_ip.items[0].id, ports[1].id);
        let by_subnet = service
            .list_ports(
                &alice,
                &Listing::filtered("fixed_ips", &format!("subnet_id={}", sub.id)),
            )
            .await
            .expect("by subnet");
        assert_eq!(by_subnet.items.len(), 3);
        let by_device = service
            .list_ports(&alice, &Listing::filtered("device_id", "vm-1"))
            .await
            .expect("by device");
        assert_eq!(by_device.items.len(), 2);
        let by_network = service
            .list_subnets(&alice, &Listing::filtered("network_id", &ids[1]))
            .await
            .expect("subnets by network");
        assert_eq!(by_network.items.len(), 1);
        let by_subnets = service
            .list_networks(&alice, &Listing::filtered("subnets", &sub.id))
            .await
            .expect("networks by subnet");
        assert_eq!(by_subnets.items.len(), 1);
        assert_eq!(by_subnets.items[0].subnets, std::slice::from_ref(&sub.id));
    }
}
