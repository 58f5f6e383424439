//! `network_data.json` of the instance metadata generator
//! (`novum_compute::instance_metadata::network_data`), rendered from a
//! spawn task's interfaces.

use novum_compute::instance_metadata::network_data::network_data as render;
use novum_wire::{FixedIpSpec, HostRoute, InterfaceSpec};

use serde_json::json;
use uuid::Uuid;

const PORT_A: &str = "1a81968a-797a-400f-8a80-567f997eb93f";
const PORT_B: &str = "e2406356-6541-4a97-9202-5d7a56b7a7d8";
const NET_A: &str = "dacd568d-5be6-4786-91fe-750c374b78b4";
const NET_B: &str = "04f9fcef-0cfe-42e0-9846-b82a1e3cd1ac";

fn uuid(text: &str) -> Uuid {
    Uuid::parse_str(text).unwrap()
}

fn fixed(address: &str, version: u8, cidr: &str, gateway: Option<&str>) -> FixedIpSpec {
    FixedIpSpec {
        ip_address: address.into(),
        ip_version: version,
        subnet_cidr: cidr.into(),
        gateway_ip: gateway.map(str::to_string),
        dns_nameservers: Vec::new(),
        host_routes: Vec::new(),
    }
}

fn interfaces() -> Vec<InterfaceSpec> {
    let mut v4 = fixed("172.19.1.34", 4, "172.19.0.0/22", Some("172.19.3.254"));
    v4.dns_nameservers = vec!["172.19.0.12".into(), "8.8.8.8".into()];
    v4.host_routes = vec![HostRoute {
        destination: "10.20.30.77/16".into(),
        nexthop: "172.19.1.1".into(),
    }];
    let mut v6 = fixed(
        "2001:db8:9:19::5",
        6,
        "2001:db8:9:19::/64",
        Some("2001:db8:9:19::1"),
    );
    v6.dns_nameservers = vec!["2001:4860:4860::8888".into(), "8.8.8.8".into()];
    vec![
        InterfaceSpec {
            port_id: uuid(PORT_A),
            mac_address: "FA:16:3E:ED:9A:59".into(),
            network_id: uuid(NET_A),
            network_name: "private".into(),
            mtu: Some(1450),
            bridge: novum_wire::bridge_name(uuid(NET_A)),
            fixed_ips: vec![v4, v6],
        },
        InterfaceSpec {
            port_id: uuid(PORT_B),
            mac_address: "fa:16:3e:00:00:02".into(),
            network_id: uuid(NET_B),
            network_name: "isolated".into(),
            mtu: None,
            bridge: novum_wire::bridge_name(uuid(NET_B)),
            fixed_ips: vec![fixed("192.168.7.10", 4, "192.168.7.0/24", None)],
        },
    ]
}

/// The document written by hand from the format Nova serves (the
/// metadata service's `openstack/latest/network_data.json`).
#[test]
fn renders_the_openstack_document() {
    let expected = json!({
        "links": [
            {
                "id": "tap1a81968a-79",
                "vif_id": PORT_A,
                "type": "bridge",
                "mtu": 1450,
                "ethernet_mac_address": "fa:16:3e:ed:9a:59"
            },
            {
                "id": "tape2406356-65",
                "vif_id": PORT_B,
                "type": "bridge",
                "mtu": null,
                "ethernet_mac_address": "fa:16:3e:00:00:02"
            }
        ],
        "networks": [
            {
                "id": "network0",
                "type": "ipv4",
                "link": "tap1a81968a-79",
                "ip_address": "172.19.1.34",
                "netmask": "255.255.252.0",
                "routes": [
                    {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "172.19.3.254"},
                    {"network": "10.20.0.0", "netmask": "255.255.0.0", "gateway": "172.19.1.1"}
                ],
                "network_id": NET_A,
                "services": [
                    {"type": "dns", "address": "172.19.0.12"},
                    {"type": "dns", "address": "8.8.8.8"}
                ]
            },
            {
                "id": "network1",
                "type": "ipv6",
                "link": "tap1a81968a-79",
                "ip_address": "2001:db8:9:19::5",
                "netmask": "ffff:ffff:ffff:ffff::",
                "routes": [
                    {"network": "::", "netmask": "::", "gateway": "2001:db8:9:19::1"}
                ],
                "network_id": NET_A,
                "services": [
                    {"type": "dns", "address": "2001:4860:4860::8888"},
                    {"type": "dns", "address": "8.8.8.8"}
                ]
            },
            {
                "id": "network2",
                "type": "ipv4",
                "link": "tape2406356-65",
                "ip_address": "192.168.7.10",
                "netmask": "255.255.255.0",
                "routes": [],
                "network_id": NET_B,
                "services": []
            }
        ],
        "services": [
            {"type": "dns", "address": "172.19.0.12"},
            {"type": "dns", "address": "8.8.8.8"},
            {"type": "dns", "address": "2001:4860:4860::8888"}
        ]
    });
    let data = render(&interfaces()).unwrap();
    assert_eq!(serde_json::to_value(&data).unwrap(), expected);
    let text: serde_json::Value = serde_json::from_str(&data.to_json()).unwrap();
    assert_eq!(text, expected);
}

#[test]
fn no_interfaces_is_an_empty_document() {
    assert_eq!(
        serde_json::to_value(render(&[]).unwrap()).unwrap(),
        json!({"links": [], "networks": [], "services": []})
    );
}

#[test]
fn a_port_without_addresses_gets_a_link_only() {
    let mut interfaces = interfaces();
    interfaces[1].fixed_ips.clear();
    let data = render(&interfaces).unwrap();
    assert_eq!(data.links.len(), 2);
    assert_eq!(data.networks.len(), 2);
    assert!(data.networks.iter().all(|n| n.link == "tap1a81968a-79"));
}

#[test]
fn netmasks_of_every_prefix() {
    let rendered = |address: &str, version: u8, cidr: &str| {
        let mut interfaces = interfaces();
        interfaces.truncate(1);
        interfaces[0].fixed_ips = vec![fixed(address, version, cidr, None)];
        render(&interfaces).unwrap().networks[0].netmask.clone()
    };
    assert_eq!(rendered("10.0.0.1", 4, "10.0.0.0/0"), "0.0.0.0");
    assert_eq!(rendered("10.0.0.1", 4, "10.0.0.0/8"), "255.0.0.0");
    assert_eq!(rendered("10.0.0.1", 4, "10.0.0.0/25"), "255.255.255.128");
    assert_eq!(rendered("10.0.0.1", 4, "10.0.0.1/32"), "255.255.255.255");
    assert_eq!(rendered("fd00::1", 6, "::/0"), "::");
    assert_eq!(rendered("fd00::1", 6, "fd00::/8"), "ff00::");
    assert_eq!(
        rendered("fd00::1", 6, "fd00::/127"),
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"
    );
    assert_eq!(
        rendered("fd00::1", 6, "fd00::1/128"),
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    );
    // A host route's destination is given as its network.
    let mut interfaces = interfaces();
    interfaces.truncate(1);
    interfaces[0].fixed_ips.truncate(1);
    let data = render(&interfaces).unwrap();
    assert_eq!(data.networks[0].routes[1].network, "10.20.0.0");
}

#[test]
fn invalid_addresses_are_errors_naming_the_port() {
    type Spoil = fn(&mut FixedIpSpec);
    let cases: [(Spoil, &str); 8] = [
        (
            |ip| ip.ip_address = "172.19.1.300".into(),
            "not an IP address",
        ),
        (|ip| ip.ip_version = 6, "is IPv4, not IPv6"),
        (|ip| ip.subnet_cidr = "172.19.0.0".into(), "not a CIDR"),
        (|ip| ip.subnet_cidr = "172.19.0.0/33".into(), "not a CIDR"),
        (
            |ip| ip.subnet_cidr = "10.0.0.0/8".into(),
            "outside its subnet",
        ),
        (|ip| ip.gateway_ip = Some("2001:db8::1".into()), "version"),
        (
            |ip| ip.dns_nameservers.push("dns.example.org".into()),
            "DNS server",
        ),
        (
            |ip| {
                ip.host_routes.push(HostRoute {
                    destination: "10.0.0.0/8".into(),
                    nexthop: "fe80::1".into(),
                })
            },
            "another IP version",
        ),
    ];
    for (spoil, expected) in cases {
        let mut interfaces = interfaces();
        spoil(&mut interfaces[0].fixed_ips[0]);
        let error = render(&interfaces).unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with(&format!("port {PORT_A}: ")), "{text}");
        assert!(text.contains(expected), "{expected}: {text}");
    }
}
