//! Servers and their ports, on SQLite and PostgreSQL: networks resolved at
//! the API (unknown network, port in use, address outside the subnet are
//! refused there and leave nothing), ports bound to the host and carried by
//! the spawn task, `addresses` and `/ips`, security groups on a server,
//! ports released on delete (created ones deleted, the user's kept) and
//! rolled back when the build fails.

use axum::http::StatusCode;
use novum_network::{
    Caller, GatewayRequest, Listing, NewNetwork, NewPort, NewSecurityGroup, NewSubnet,
};
use novum_wire::{PowerState, TaskAction, TaskOutcome};
use serde_json::{Value, json};

use crate::api_common::backends;
use crate::compute::{Cloud, IMAGE, cloud_on};

/// Project `p-one` (the test's `member`) as the network service sees it.
fn member() -> Caller {
    Caller::project("p-one")
}

/// A private network of `p-one` named `name` with an IPv4 subnet `cidr`.
pub(crate) async fn network(cloud: &Cloud, name: &str, cidr: &str) -> String {
    let service = &cloud.state.network;
    let network = service
        .create_network(
            &member(),
            &NewNetwork {
                name: Some(name.to_string()),
                ..NewNetwork::default()
            },
        )
        .await
        .expect("network");
    service
        .create_subnet(
            &member(),
            &NewSubnet {
                network_id: network.id.clone(),
                name: Some(format!("{name}-subnet")),
                ip_version: 4,
                cidr: cidr.to_string(),
                gateway_ip: GatewayRequest::Default,
                ..NewSubnet::default()
            },
        )
        .await
        .expect("subnet");
    network.id
}

/// The ids of the ports whose device is `device`.
async fn ports_of(cloud: &Cloud, device: &str) -> Vec<String> {
    let listing = Listing::filtered("device_id", device);
    cloud
        .state
        .network
        .list_ports(&Caller::admin("p-admin"), &listing)
        .await
        .expect("ports")
        .items
        .into_iter()
        .map(|port| port.id)
        .collect()
}

/// Every port of the cloud.
async fn port_count(cloud: &Cloud) -> usize {
    cloud
        .state
        .network
        .list_ports(&Caller::admin("p-admin"), &Listing::default())
        .await
        .expect("ports")
        .items
        .len()
}

/// `who` calls the compute API at the base microversion.
async fn call(
    cloud: &Cloud,
    who: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    cloud.call(Some(who), method, path, body, None).await
}

async fn create(cloud: &Cloud, networks: Value) -> (StatusCode, Value) {
    cloud
        .create(
            "member",
            json!({"server": {"name": "web", "imageRef": IMAGE, "flavorRef": "1", "networks": networks}}),
        )
        .await
}

async fn create_ok(cloud: &Cloud, networks: Value) -> String {
    let (status, body) = create(cloud, networks).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["server"]["id"].as_str().expect("id").to_string()
}

async fn servers_and_ports_on(backend: &crate::api_common::Backend) {
    let cloud = cloud_on(backend).await;
    let token = cloud.register("h1", 16, 32768).await;
    let net = network(&cloud, "net1", "192.168.10.0/24").await;

    // Refused at the API, nothing left behind.
    let before = port_count(&cloud).await;
    let unknown = "8d1f6f0c-3a38-4a4e-9a0b-1f4c7a2b9e11";
    let (status, body) = create(&cloud, json!([{"uuid": unknown}])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.to_string().contains(unknown),
        "the fault names the network: {body}"
    );
    let (status, body) = create(&cloud, json!([{"uuid": net, "fixed_ip": "10.9.9.9"}])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = create(&cloud, json!([{"uuid": "not-a-uuid"}])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = cloud
        .create(
            "member",
            json!({"server": {"name": "two", "imageRef": IMAGE, "flavorRef": "1", "max_count": 2,
                              "networks": [{"uuid": net, "fixed_ip": "192.168.10.7"}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(port_count(&cloud).await, before, "refusals leave no port");

    // A server on the network at a chosen address: the spawn task carries
    // the interface, the server shows the address.
    let web = create_ok(&cloud, json!([{"uuid": net, "fixed_ip": "192.168.10.50"}])).await;
    let tasks = cloud.next_tasks("h1", &token).await;
    let TaskAction::Spawn(spec) = &tasks.tasks[0].action else {
        panic!("a spawn task: {:?}", tasks.tasks[0].action);
    };
    assert_eq!(spec.interfaces.len(), 1, "{spec:?}");
    let interface = &spec.interfaces[0];
    assert_eq!(interface.network_id.to_string(), net);
    assert_eq!(interface.network_name, "net1");
    assert_eq!(interface.bridge, novum_network::bridge_name(&net));
    assert_eq!(interface.fixed_ips[0].ip_address, "192.168.10.50");
    assert_eq!(interface.fixed_ips[0].subnet_cidr, "192.168.10.0/24");
    assert_eq!(
        interface.fixed_ips[0].gateway_ip.as_deref(),
        Some("192.168.10.1")
    );
    cloud
        .report(
            "h1",
            &token,
            tasks.tasks[0].id,
            TaskOutcome::Succeeded {
                power_state: PowerState::Running,
            },
        )
        .await;
    let server = cloud.wait_status(&web, "ACTIVE").await;
    let address = &server["addresses"]["net1"][0];
    assert_eq!(address["addr"], "192.168.10.50", "{server}");
    assert_eq!(address["version"], 4);
    assert_eq!(address["OS-EXT-IPS:type"], "fixed");
    assert_eq!(address["OS-EXT-IPS-MAC:mac_addr"], interface.mac_address);
    assert_eq!(server["security_groups"], json!([{"name": "default"}]));
    // Nova's `ip` filter: a regular expression searched in the addresses.
    for (query, expected) in [
        ("192.168.10.50", 1),
        ("%5E192%5C.168%5C.10%5C.", 1),
        ("10.9.", 0),
    ] {
        let (status, body) = call(
            &cloud,
            "member",
            "GET",
            &format!("/compute/v2.1/servers?ip={query}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["servers"].as_array().map(Vec::len),
            Some(expected),
            "ip={query}: {body}"
        );
    }
    // Before 2.75 an update answers without the extended attributes.
    let (status, body) = cloud
        .call(
            Some("member"),
            "PUT",
            &format!("/compute/v2.1/servers/{web}"),
            Some(json!({"server": {"name": "web"}})),
            Some("2.1"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["server"].get("security_groups").is_none(), "{body}");
    assert!(
        body["server"].get("OS-EXT-STS:vm_state").is_none(),
        "{body}"
    );
    assert_eq!(
        body["server"]["addresses"]["net1"][0]["addr"],
        "192.168.10.50"
    );
    let port_id = interface.port_id.to_string();
    let port = cloud
        .state
        .network
        .get_port(&member(), &port_id)
        .await
        .expect("port");
    assert_eq!(port.device_id, web);
    assert_eq!(port.binding.host_id, "h1");
    assert_eq!(port.status, "ACTIVE");
    assert_eq!(port.device_owner, "compute:nova");

    let (status, body) = call(
        &cloud,
        "member",
        "GET",
        &format!("/compute/v2.1/servers/{web}/ips"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["addresses"]["net1"][0]["addr"], "192.168.10.50");
    let (status, body) = call(
        &cloud,
        "member",
        "GET",
        &format!("/compute/v2.1/servers/{web}/ips/net1"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["net1"][0]["addr"], "192.168.10.50");
    let (status, _) = call(
        &cloud,
        "member",
        "GET",
        &format!("/compute/v2.1/servers/{web}/ips/other"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &cloud,
        "other",
        "GET",
        &format!("/compute/v2.1/servers/{web}/ips"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another project's server");

    // Security groups on the server.
    cloud
        .state
        .network
        .create_security_group(
            &member(),
            &NewSecurityGroup {
                name: "web".into(),
                ..NewSecurityGroup::default()
            },
        )
        .await
        .expect("group");
    let action = |body: Value| {
        let cloud = &cloud;
        let web = web.clone();
        async move {
            call(
                cloud,
                "member",
                "POST",
                &format!("/compute/v2.1/servers/{web}/action"),
                Some(body),
            )
            .await
        }
    };
    let (status, body) = action(json!({"addSecurityGroup": {"name": "web"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = action(json!({"addSecurityGroup": {"name": "nope"}})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = call(
        &cloud,
        "member",
        "GET",
        &format!("/compute/v2.1/servers/{web}/os-security-groups"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["security_groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|group| group["name"].as_str())
        .collect();
    assert_eq!(names, ["default", "web"], "{body}");
    let (status, body) = action(json!({"removeSecurityGroup": {"name": "default"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = action(json!({"removeSecurityGroup": {"name": "default"}})).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "not associated any more (Nova's 404): {body}"
    );
    assert_eq!(
        cloud.server(&web).await["security_groups"],
        json!([{"name": "web"}])
    );

    // os-interface: attach a second port, plugged by the agent; detach it.
    let net2 = network(&cloud, "net2", "172.16.5.0/24").await;
    let (status, body) = call(&cloud, "member", "POST", &format!("/compute/v2.1/servers/{web}/os-interface"), Some(json!({"interfaceAttachment": {"net_id": net2, "fixed_ips": [{"ip_address": "172.16.5.9"}]}}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let attached = body["interfaceAttachment"]["port_id"]
        .as_str()
        .expect("port id")
        .to_string();
    assert_eq!(body["interfaceAttachment"]["net_id"], net2.as_str());
    assert_eq!(
        body["interfaceAttachment"]["fixed_ips"][0]["ip_address"],
        "172.16.5.9"
    );
    let tasks = cloud.next_tasks("h1", &token).await;
    let TaskAction::AttachInterface { interface } = &tasks.tasks[0].action else {
        panic!("an attach task: {:?}", tasks.tasks[0].action);
    };
    assert_eq!(interface.port_id.to_string(), attached);
    assert_eq!(interface.bridge, novum_network::bridge_name(&net2));
    cloud
        .report(
            "h1",
            &token,
            tasks.tasks[0].id,
            TaskOutcome::Succeeded {
                power_state: PowerState::Running,
            },
        )
        .await;
    let (status, body) = call(
        &cloud,
        "member",
        "GET",
        &format!("/compute/v2.1/servers/{web}/os-interface"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["interfaceAttachments"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        cloud.server(&web).await["addresses"]["net2"][0]["addr"],
        "172.16.5.9"
    );
    let (status, body) = call(
        &cloud,
        "member",
        "POST",
        &format!("/compute/v2.1/servers/{web}/os-interface"),
        Some(json!({"interfaceAttachment": {"net_id": net2, "port_id": attached}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(
        &cloud,
        "member",
        "DELETE",
        &format!("/compute/v2.1/servers/{web}/os-interface/{attached}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let tasks = cloud.next_tasks("h1", &token).await;
    assert!(
        matches!(&tasks.tasks[0].action, TaskAction::DetachInterface { port_id, .. } if port_id.to_string() == attached),
        "{:?}",
        tasks.tasks[0].action
    );
    cloud
        .report(
            "h1",
            &token,
            tasks.tasks[0].id,
            TaskOutcome::Succeeded {
                power_state: PowerState::Running,
            },
        )
        .await;
    assert_eq!(
        ports_of(&cloud, &web).await.len(),
        1,
        "the attached port is gone"
    );
    let (status, body) = call(
        &cloud,
        "member",
        "GET",
        &format!("/compute/v2.1/servers/{web}/os-instance-actions"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let actions: Vec<&str> = body["instanceActions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|action| action["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"attach_interface") && actions.contains(&"detach_interface"),
        "{actions:?}"
    );

    // The user's own port: taken, in use for a second server, kept and
    // unbound when the server goes.
    let own = cloud
        .state
        .network
        .create_port(
            &member(),
            &NewPort {
                network_id: net.clone(),
                name: Some("mine".into()),
                ..NewPort::default()
            },
        )
        .await
        .expect("port");
    let db = create_ok(&cloud, json!([{"port": own.id}])).await;
    cloud.spawn_active("h1", &token, &db).await;
    let (status, body) = create(&cloud, json!([{"port": own.id}])).await;
    assert_eq!(status, StatusCode::CONFLICT, "port in use: {body}");

    // Delete: the port made for the server goes, the user's stays unbound.
    cloud.delete_done("h1", &token, &web).await;
    assert!(ports_of(&cloud, &web).await.is_empty());
    assert!(
        cloud
            .state
            .network
            .get_port(&member(), &port_id)
            .await
            .is_err(),
        "the created port is deleted"
    );
    cloud.delete_done("h1", &token, &db).await;
    let kept = cloud
        .state
        .network
        .get_port(&member(), &own.id)
        .await
        .expect("the user's port is kept");
    assert_eq!(kept.device_id, "");
    assert_eq!(kept.binding.host_id, "");

    // A failed build gives its ports back (one host: no alternate).
    let broken = create_ok(&cloud, json!([{"uuid": net}])).await;
    let tasks = cloud.next_tasks("h1", &token).await;
    assert_eq!(ports_of(&cloud, &broken).await.len(), 1);
    cloud
        .report(
            "h1",
            &token,
            tasks.tasks[0].id,
            TaskOutcome::Failed {
                message: "no disk".into(),
                power_state: None,
            },
        )
        .await;
    cloud.wait_status(&broken, "ERROR").await;
    assert!(
        ports_of(&cloud, &broken).await.is_empty(),
        "ports of a failed build are released"
    );

    // `auto`: the cloud's default shared network.
    let auto = create_ok(&cloud, json!("auto")).await;
    let server = cloud.spawn_active("h1", &token, &auto).await;
    assert!(
        server["addresses"]["shared"][0]["addr"]
            .as_str()
            .is_some_and(|addr| addr.starts_with("10.0.")),
        "{server}"
    );
    let none = create_ok(&cloud, json!("none")).await;
    let server = cloud.spawn_active("h1", &token, &none).await;
    assert_eq!(server["addresses"], json!({}));
}

#[tokio::test]
async fn servers_get_bind_show_and_release_ports() {
    for backend in backends().await {
        servers_and_ports_on(&backend).await;
    }
}
