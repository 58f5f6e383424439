//! The Network API (Neutron v2.0 subset) through the real router, on SQLite
//! and PostgreSQL: CRUD of every resource, Neutron's error bodies, project
//! isolation, listing (filters, fields, sorting, pagination links), quotas,
//! extensions and the auto-allocated topology.

use crate::api_common;

use api_common::{Backend, PUBLIC_URL, Reply, TestApp, backends};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

macro_rules! on_backends {
    ($test:ident) => {
        for backend in backends().await {
            println!("backend: {}", backend.name);
            $test(&backend).await;
        }
    };
}

const V2: &str = "/network/v2.0";

/// Asserts a Neutron error body with `status` and `kind`.
#[track_caller]
fn assert_neutron(reply: &Reply, status: StatusCode, kind: &str) {
    assert_eq!(reply.status, status, "{}", reply.json);
    let error = &reply.json["NeutronError"];
    assert_eq!(error["type"], kind, "{}", reply.json);
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        reply.json
    );
    assert_eq!(error["detail"], "", "{}", reply.json);
}

async fn get(app: &TestApp, token: &str, path: &str) -> Reply {
    app.call(
        Method::GET,
        &format!("{V2}{path}"),
        Some(token),
        Value::Null,
    )
    .await
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> Reply {
    app.call(Method::POST, &format!("{V2}{path}"), Some(token), body)
        .await
}

async fn put(app: &TestApp, token: &str, path: &str, body: Value) -> Reply {
    app.call(Method::PUT, &format!("{V2}{path}"), Some(token), body)
        .await
}

async fn delete(app: &TestApp, token: &str, path: &str) -> Reply {
    app.call(
        Method::DELETE,
        &format!("{V2}{path}"),
        Some(token),
        Value::Null,
    )
    .await
}

/// Creates `{"<kind>": body}` at `path`, asserting 201; the created object.
async fn create(app: &TestApp, token: &str, path: &str, kind: &str, body: Value) -> Value {
    let reply = post(app, token, path, json!({ kind: body })).await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "[{}] POST {path}: {}",
        app.backend,
        reply.json
    );
    reply.json[kind].clone()
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("id").to_string()
}

/// A network of the caller with a /24 subnet: (network id, subnet id).
async fn network_with_subnet(
    app: &TestApp,
    token: &str,
    name: &str,
    cidr: &str,
) -> (String, String) {
    let network = create(app, token, "/networks", "network", json!({"name": name})).await;
    let network_id = id_of(&network);
    let subnet = create(
        app,
        token,
        "/subnets",
        "subnet",
        json!({"network_id": network_id, "ip_version": 4, "cidr": cidr, "name": format!("{name}-subnet")}),
    )
    .await;
    (network_id, id_of(&subnet))
}

#[tokio::test]
async fn versions_catalog_and_extensions() {
    on_backends!(versions_on);
}

async fn versions_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    for path in ["/network", "/network/"] {
        let reply = app.call(Method::GET, path, None, Value::Null).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(reply.json["versions"][0]["id"], "v2.0");
        assert_eq!(reply.json["versions"][0]["status"], "CURRENT");
        assert_eq!(
            reply.json["versions"][0]["links"][0]["href"],
            format!("{PUBLIC_URL}/network/v2.0/")
        );
    }
    let without_slash = app
        .call(Method::GET, "/network/v2.0", None, Value::Null)
        .await;
    assert_eq!(without_slash.status, StatusCode::OK);
    let resources = app
        .call(Method::GET, "/network/v2.0/", None, Value::Null)
        .await;
    assert_eq!(resources.status, StatusCode::OK);
    assert_eq!(resources.json, without_slash.json);
    let collections: Vec<&str> = resources.json["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|resource| resource["collection"].as_str())
        .collect();
    assert_eq!(
        collections,
        [
            "networks",
            "subnets",
            "ports",
            "security_groups",
            "security_group_rules"
        ]
    );

    let admin = app.admin_token().await;
    // The token's catalog names the network service.
    let catalog = app
        .call(
            Method::GET,
            "/identity/v3/auth/catalog",
            Some(&admin),
            Value::Null,
        )
        .await;
    let network = catalog.json["catalog"]
        .as_array()
        .expect("catalog")
        .iter()
        .find(|service| service["type"] == "network")
        .cloned()
        .expect("network in the catalog");
    assert_eq!(network["name"], "neutron");
    let interfaces: Vec<&str> = network["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|endpoint| {
            assert_eq!(endpoint["url"], format!("{PUBLIC_URL}/network"));
            endpoint["interface"].as_str().expect("interface")
        })
        .collect();
    assert_eq!(interfaces, ["public", "internal", "admin"]);

    // Extensions: exactly what is served.
    for path in ["/extensions", "/extensions.json"] {
        let reply = get(&app, &admin, path).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        let mut aliases: Vec<&str> = reply.json["extensions"]
            .as_array()
            .expect("extensions")
            .iter()
            .map(|extension| {
                assert!(extension["name"].is_string());
                assert!(extension["description"].is_string());
                assert!(extension["updated"].is_string());
                extension["alias"].as_str().expect("alias")
            })
            .collect();
        aliases.sort_unstable();
        assert_eq!(
            aliases,
            [
                "allowed-address-pairs",
                "auto-allocated-topology",
                "binding",
                "external-net",
                "filter-validation",
                "network-mtu",
                "network-mtu-writable",
                "pagination",
                "port-security",
                "project-id",
                "provider",
                "quota-check-limit",
                "quota_details",
                "quotas",
                "security-group",
                "sorting",
                "standard-attr-description",
                "standard-attr-revisions",
                "standard-attr-timestamp",
                "stateful-security-group",
            ]
        );
    }
    let one = get(&app, &admin, "/extensions/security-group").await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json["extension"]["alias"], "security-group");
    let router = get(&app, &admin, "/extensions/router").await;
    assert_neutron(&router, StatusCode::NOT_FOUND, "HTTPNotFound");
}

#[tokio::test]
async fn networks_subnets_and_ports_crud() {
    on_backends!(crud_on);
}

async fn crud_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let (project, _, member) = app
        .project_user(&admin, "net-crud", "net-crud-user", "member")
        .await;

    // Network: create (with the .json suffix), show, update.
    let network = create(
        &app,
        &member,
        "/networks.json",
        "network",
        json!({"name": "blue", "description": "d", "admin_state_up": true}),
    )
    .await;
    let network_id = id_of(&network);
    assert_eq!(network["tenant_id"], project);
    assert_eq!(network["project_id"], project);
    assert_eq!(network["status"], "ACTIVE");
    assert_eq!(network["shared"], false);
    assert_eq!(network["router:external"], false);
    assert_eq!(network["mtu"], 1500);
    assert_eq!(network["port_security_enabled"], true);
    assert_eq!(network["subnets"], json!([]));
    assert_eq!(network["tags"], json!([]));
    assert_eq!(network["revision_number"], 1);
    assert_eq!(network["availability_zone_hints"], json!([]));
    assert!(network["ipv4_address_scope"].is_null());
    let created_at = network["created_at"].as_str().expect("created_at");
    assert!(
        created_at.len() == 20 && created_at.ends_with('Z') && created_at.as_bytes()[10] == b'T',
        "{created_at}"
    );
    // Provider attributes are the admin's.
    assert!(network.get("provider:network_type").is_none(), "{network}");
    let as_admin = get(&app, &admin, &format!("/networks/{network_id}")).await;
    assert_eq!(as_admin.json["network"]["provider:network_type"], "local");

    let shown = get(&app, &member, &format!("/networks/{network_id}.json")).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.json["network"]["name"], "blue");
    let updated = put(
        &app,
        &member,
        &format!("/networks/{network_id}"),
        json!({"network": {"name": "blue2", "mtu": 1400}}),
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.json);
    assert_eq!(updated.json["network"]["name"], "blue2");
    assert_eq!(updated.json["network"]["mtu"], 1400);
    assert_eq!(updated.json["network"]["revision_number"], 2);

    // Subnet: create, show, update.
    let subnet = create(
        &app,
        &member,
        "/subnets",
        "subnet",
        json!({"network_id": network_id, "ip_version": 4, "cidr": "192.168.10.0/24",
               "name": "blue-sub", "dns_nameservers": ["8.8.8.8"],
               "allocation_pools": [{"start": "192.168.10.10", "end": "192.168.10.20"}]}),
    )
    .await;
    let subnet_id = id_of(&subnet);
    assert_eq!(subnet["gateway_ip"], "192.168.10.1");
    assert_eq!(subnet["enable_dhcp"], true);
    assert_eq!(
        subnet["allocation_pools"],
        json!([{"start": "192.168.10.10", "end": "192.168.10.20"}])
    );
    assert_eq!(subnet["dns_nameservers"], json!(["8.8.8.8"]));
    assert_eq!(subnet["host_routes"], json!([]));
    assert!(subnet["subnetpool_id"].is_null());
    assert!(subnet["ipv6_ra_mode"].is_null());
    let network = get(&app, &member, &format!("/networks/{network_id}")).await;
    assert_eq!(network.json["network"]["subnets"], json!([subnet_id]));
    let renamed = put(
        &app,
        &member,
        &format!("/subnets/{subnet_id}"),
        json!({"subnet": {"name": "renamed", "gateway_ip": null}}),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.json);
    assert_eq!(renamed.json["subnet"]["name"], "renamed");
    assert!(renamed.json["subnet"]["gateway_ip"].is_null());
    let v6 = create(
        &app,
        &member,
        "/subnets",
        "subnet",
        json!({"network_id": network_id, "ip_version": 6, "cidr": "fd00:1::/64",
               "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac"}),
    )
    .await;
    assert_eq!(v6["ip_version"], 6);
    assert_eq!(v6["ipv6_address_mode"], "slaac");

    // Port: with an address, then with the next free one.
    let port = create(
        &app,
        &member,
        "/ports",
        "port",
        json!({"network_id": network_id, "name": "p1",
               "fixed_ips": [{"subnet_id": subnet_id, "ip_address": "192.168.10.15"}]}),
    )
    .await;
    let port_id = id_of(&port);
    assert_eq!(
        port["fixed_ips"],
        json!([{"subnet_id": subnet_id, "ip_address": "192.168.10.15"}])
    );
    assert!(
        port["mac_address"]
            .as_str()
            .is_some_and(|mac| mac.starts_with("fa:16:3e:"))
    );
    assert_eq!(port["status"], "DOWN");
    assert_eq!(port["port_security_enabled"], true);
    assert_eq!(port["security_groups"].as_array().map(Vec::len), Some(1));
    assert_eq!(port["allowed_address_pairs"], json!([]));
    assert_eq!(port["binding:vnic_type"], "normal");
    assert!(port.get("binding:host_id").is_none(), "{port}");
    let taken = post(
        &app,
        &member,
        "/ports",
        json!({"port": {"network_id": network_id,
               "fixed_ips": [{"ip_address": "192.168.10.15"}]}}),
    )
    .await;
    assert_neutron(&taken, StatusCode::CONFLICT, "IpAddressAlreadyAllocated");
    let second = create(
        &app,
        &member,
        "/ports",
        "port",
        json!({"network_id": network_id, "fixed_ips": [{"subnet_id": subnet_id}],
               "allowed_address_pairs": [{"ip_address": "10.9.9.9"}]}),
    )
    .await;
    assert_eq!(second["fixed_ips"][0]["ip_address"], "192.168.10.10");
    assert_eq!(
        second["allowed_address_pairs"][0]["mac_address"],
        second["mac_address"]
    );
    // Filters on fixed_ips.
    let by_ip = get(&app, &member, "/ports?fixed_ips=ip_address%3D192.168.10.15").await;
    assert_eq!(by_ip.status, StatusCode::OK, "{}", by_ip.json);
    let ids: Vec<&str> = by_ip.json["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|port| port["id"].as_str())
        .collect();
    assert_eq!(ids, [port_id.as_str()]);
    // Update; binding for the admin only.
    let named = put(
        &app,
        &member,
        &format!("/ports/{port_id}"),
        json!({"port": {"name": "p1b", "device_id": "dev-1", "device_owner": "compute:nova"}}),
    )
    .await;
    assert_eq!(named.status, StatusCode::OK, "{}", named.json);
    assert_eq!(named.json["port"]["device_owner"], "compute:nova");
    let bind = put(
        &app,
        &member,
        &format!("/ports/{port_id}"),
        json!({"port": {"binding:host_id": "host-1"}}),
    )
    .await;
    assert_neutron(&bind, StatusCode::FORBIDDEN, "PolicyNotAuthorized");
    let bound = put(
        &app,
        &admin,
        &format!("/ports/{port_id}"),
        json!({"port": {"binding:host_id": "host-1"}}),
    )
    .await;
    assert_eq!(bound.status, StatusCode::OK, "{}", bound.json);
    assert_eq!(bound.json["port"]["binding:host_id"], "host-1");
    assert_eq!(bound.json["port"]["binding:vif_type"], "bridge");
    assert!(bound.json["port"]["binding:vif_details"]["bridge_name"].is_string());

    // A network with ports is in use; its subnet too.
    let in_use = delete(&app, &member, &format!("/networks/{network_id}")).await;
    assert_neutron(&in_use, StatusCode::CONFLICT, "NetworkInUse");
    let subnet_in_use = delete(&app, &member, &format!("/subnets/{subnet_id}")).await;
    assert_neutron(&subnet_in_use, StatusCode::CONFLICT, "SubnetInUse");
    for id in [&port_id, &id_of(&second)] {
        let gone = delete(&app, &member, &format!("/ports/{id}")).await;
        assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.json);
    }
    let missing = get(&app, &member, &format!("/ports/{port_id}")).await;
    assert_neutron(&missing, StatusCode::NOT_FOUND, "PortNotFound");
    let gone = delete(&app, &member, &format!("/subnets/{subnet_id}.json")).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.json);
    let gone = delete(&app, &member, &format!("/networks/{network_id}")).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.json);
    let missing = get(&app, &member, &format!("/networks/{network_id}")).await;
    assert_neutron(&missing, StatusCode::NOT_FOUND, "NetworkNotFound");
}

#[tokio::test]
async fn security_groups_and_rules() {
    on_backends!(security_groups_on);
}

async fn security_groups_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let (project, _, member) = app
        .project_user(&admin, "sg-project", "sg-user", "member")
        .await;
    // The default group appears on first listing, with Neutron's 4 rules.
    let listed = get(&app, &member, "/security-groups").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.json);
    let groups = listed.json["security_groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 1, "{}", listed.json);
    assert_eq!(groups[0]["name"], "default");
    assert_eq!(groups[0]["tenant_id"], project);
    assert_eq!(
        groups[0]["security_group_rules"].as_array().map(Vec::len),
        Some(4)
    );
    let default_id = id_of(&groups[0]);

    let group = create(
        &app,
        &member,
        "/security-groups",
        "security_group",
        json!({"name": "web", "description": "web servers"}),
    )
    .await;
    let group_id = id_of(&group);
    assert_eq!(group["stateful"], true);
    let rules = group["security_group_rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 2);
    assert!(rules.iter().all(|rule| rule["direction"] == "egress"));
    let named_default = post(
        &app,
        &member,
        "/security-groups",
        json!({"security_group": {"name": "default"}}),
    )
    .await;
    assert_neutron(
        &named_default,
        StatusCode::CONFLICT,
        "SecurityGroupDefaultAlreadyExists",
    );

    // A rule as `openstack security group rule create --protocol tcp
    // --dst-port 22` sends it.
    let body = json!({"security_group_id": group_id, "direction": "ingress",
        "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
        "remote_ip_prefix": "0.0.0.0/0"});
    let rule = create(
        &app,
        &member,
        "/security-group-rules",
        "security_group_rule",
        body.clone(),
    )
    .await;
    let rule_id = id_of(&rule);
    assert_eq!(rule["protocol"], "tcp");
    assert_eq!(rule["port_range_min"], 22);
    assert_eq!(rule["remote_ip_prefix"], "0.0.0.0/0");
    assert!(rule["remote_group_id"].is_null());
    assert_eq!(rule["project_id"], project);
    let again = post(
        &app,
        &member,
        "/security-group-rules",
        json!({ "security_group_rule": body }),
    )
    .await;
    assert_neutron(&again, StatusCode::CONFLICT, "SecurityGroupRuleExists");
    let numeric = create(
        &app,
        &member,
        "/security-group-rules.json",
        "security_group_rule",
        json!({"security_group_id": group_id, "direction": "ingress", "protocol": 17,
               "port_range_min": 53, "port_range_max": 53}),
    )
    .await;
    assert_eq!(numeric["protocol"], "17");
    let bad_protocol = post(
        &app,
        &member,
        "/security-group-rules",
        json!({"security_group_rule": {"security_group_id": group_id, "direction": "ingress", "protocol": "bogus"}}),
    )
    .await;
    assert_neutron(
        &bad_protocol,
        StatusCode::BAD_REQUEST,
        "SecurityGroupRuleInvalidProtocol",
    );
    let range = post(
        &app,
        &member,
        "/security-group-rules",
        json!({"security_group_rule": {"security_group_id": group_id, "direction": "ingress",
               "protocol": "tcp", "port_range_min": 30, "port_range_max": 20}}),
    )
    .await;
    assert_neutron(
        &range,
        StatusCode::BAD_REQUEST,
        "SecurityGroupInvalidPortRange",
    );
    let shown = get(&app, &member, &format!("/security-group-rules/{rule_id}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(
        shown.json["security_group_rule"]["security_group_id"],
        group_id
    );
    let by_group = get(
        &app,
        &member,
        &format!("/security-group-rules?security_group_id={group_id}&direction=ingress"),
    )
    .await;
    assert_eq!(
        by_group.json["security_group_rules"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{}",
        by_group.json
    );
    let renamed = put(
        &app,
        &member,
        &format!("/security-groups/{group_id}"),
        json!({"security_group": {"name": "web2"}}),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.json);
    assert_eq!(renamed.json["security_group"]["name"], "web2");
    assert_eq!(
        renamed.json["security_group"]["security_group_rules"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    let rename_default = put(
        &app,
        &member,
        &format!("/security-groups/{default_id}"),
        json!({"security_group": {"name": "other"}}),
    )
    .await;
    assert_neutron(
        &rename_default,
        StatusCode::CONFLICT,
        "SecurityGroupCannotUpdateDefault",
    );
    let delete_default = delete(&app, &member, &format!("/security-groups/{default_id}")).await;
    assert_neutron(
        &delete_default,
        StatusCode::CONFLICT,
        "SecurityGroupCannotRemoveDefault",
    );
    // A group a port uses stays.
    let (network_id, _) = network_with_subnet(&app, &member, "sg-net", "10.20.0.0/24").await;
    let port = create(
        &app,
        &member,
        "/ports",
        "port",
        json!({"network_id": network_id, "security_groups": [group_id]}),
    )
    .await;
    assert_eq!(port["security_groups"], json!([group_id]));
    let used = delete(&app, &member, &format!("/security-groups/{group_id}")).await;
    assert_neutron(&used, StatusCode::CONFLICT, "SecurityGroupInUse");
    let gone = delete(&app, &member, &format!("/ports/{}", id_of(&port))).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let gone = delete(&app, &member, &format!("/security-group-rules/{rule_id}")).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.json);
    let missing = get(&app, &member, &format!("/security-group-rules/{rule_id}")).await;
    assert_neutron(&missing, StatusCode::NOT_FOUND, "SecurityGroupRuleNotFound");
    let gone = delete(&app, &member, &format!("/security-groups/{group_id}")).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.json);
    let missing = get(&app, &member, &format!("/security-groups/{group_id}")).await;
    assert_neutron(&missing, StatusCode::NOT_FOUND, "SecurityGroupNotFound");
}

#[tokio::test]
async fn refusals_are_neutron_errors() {
    on_backends!(refusals_on);
}

async fn refusals_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let (_, _, member) = app
        .project_user(&admin, "refusals", "refusals-user", "member")
        .await;
    let (_, _, reader) = app
        .project_user(&admin, "readers", "reader-user", "reader")
        .await;

    // No token, a bad token.
    let anonymous = app
        .call(Method::GET, &format!("{V2}/networks"), None, Value::Null)
        .await;
    assert_neutron(&anonymous, StatusCode::UNAUTHORIZED, "HTTPUnauthorized");
    let forged = get(&app, "not-a-token", "/networks").await;
    assert_neutron(&forged, StatusCode::UNAUTHORIZED, "HTTPUnauthorized");
    // Malformed bodies.
    let garbage = app
        .send(
            Method::POST,
            &format!("{V2}/networks"),
            &[
                ("x-auth-token", &member),
                ("content-type", "application/json"),
            ],
            b"{not json".to_vec(),
        )
        .await;
    assert_neutron(&garbage, StatusCode::BAD_REQUEST, "HTTPBadRequest");
    let no_resource = post(&app, &member, "/networks", json!({"net": {}})).await;
    assert_neutron(&no_resource, StatusCode::BAD_REQUEST, "HTTPBadRequest");
    let unknown = post(
        &app,
        &member,
        "/networks",
        json!({"network": {"colour": "red"}}),
    )
    .await;
    assert_neutron(&unknown, StatusCode::BAD_REQUEST, "HTTPBadRequest");
    assert!(
        unknown.json["NeutronError"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("colour"))
    );
    let wrong_type = post(
        &app,
        &member,
        "/networks",
        json!({"network": {"admin_state_up": "maybe"}}),
    )
    .await;
    assert_neutron(&wrong_type, StatusCode::BAD_REQUEST, "HTTPBadRequest");
    // Malformed path, unknown path, oversized body.
    let bad_path = get(&app, &member, "/networks/%FF").await;
    assert_neutron(&bad_path, StatusCode::BAD_REQUEST, "HTTPBadRequest");
    let nowhere = get(&app, &member, "/routers").await;
    assert_neutron(&nowhere, StatusCode::NOT_FOUND, "HTTPNotFound");
    let huge = app
        .send(
            Method::POST,
            &format!("{V2}/networks"),
            &[
                ("x-auth-token", &member),
                ("content-type", "application/json"),
            ],
            vec![b' '; 200_000],
        )
        .await;
    assert_neutron(
        &huge,
        StatusCode::PAYLOAD_TOO_LARGE,
        "HTTPRequestEntityTooLarge",
    );
    // Domain refusals carry Neutron's type.
    let missing = get(
        &app,
        &member,
        "/networks/00000000-0000-0000-0000-000000000000",
    )
    .await;
    assert_neutron(&missing, StatusCode::NOT_FOUND, "NetworkNotFound");
    let shared = post(
        &app,
        &member,
        "/networks",
        json!({"network": {"shared": true}}),
    )
    .await;
    assert_neutron(&shared, StatusCode::FORBIDDEN, "PolicyNotAuthorized");
    let provider = post(
        &app,
        &member,
        "/networks",
        json!({"network": {"provider:network_type": "vlan"}}),
    )
    .await;
    assert_neutron(&provider, StatusCode::FORBIDDEN, "PolicyNotAuthorized");
    let (network_id, _) = network_with_subnet(&app, &member, "refusal-net", "10.30.0.0/24").await;
    let bad_cidr = post(
        &app,
        &member,
        "/subnets",
        json!({"subnet": {"network_id": network_id, "ip_version": 4, "cidr": "10.30.0.0/33"}}),
    )
    .await;
    assert_neutron(&bad_cidr, StatusCode::BAD_REQUEST, "InvalidInput");
    let overlap = post(
        &app,
        &member,
        "/subnets",
        json!({"subnet": {"network_id": network_id, "ip_version": 4, "cidr": "10.30.0.128/25"}}),
    )
    .await;
    assert_neutron(&overlap, StatusCode::BAD_REQUEST, "InvalidInput");
    let outside = post(
        &app,
        &member,
        "/ports",
        json!({"port": {"network_id": network_id, "fixed_ips": [{"ip_address": "10.99.0.5"}]}}),
    )
    .await;
    assert_neutron(&outside, StatusCode::BAD_REQUEST, "InvalidIpForNetwork");
    let filter = get(&app, &member, "/networks?colour=red").await;
    assert_neutron(&filter, StatusCode::BAD_REQUEST, "InvalidInput");
    let sort = get(
        &app,
        &member,
        "/networks?sort_key=name&sort_key=id&sort_dir=asc",
    )
    .await;
    assert_neutron(&sort, StatusCode::BAD_REQUEST, "HTTPBadRequest");
    // A reader reads but does not write.
    let read = get(&app, &reader, "/networks").await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.json);
    let write = post(
        &app,
        &reader,
        "/networks",
        json!({"network": {"name": "r"}}),
    )
    .await;
    assert_neutron(&write, StatusCode::FORBIDDEN, "PolicyNotAuthorized");
}

#[tokio::test]
async fn projects_are_isolated() {
    on_backends!(isolation_on);
}

async fn isolation_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let (project_a, _, alice) = app
        .project_user(&admin, "iso-a", "iso-alice", "member")
        .await;
    let (_, _, bob) = app.project_user(&admin, "iso-b", "iso-bob", "member").await;
    let (network_id, subnet_id) = network_with_subnet(&app, &alice, "a-net", "10.40.0.0/24").await;
    let port = create(
        &app,
        &alice,
        "/ports",
        "port",
        json!({"network_id": network_id}),
    )
    .await;
    let port_id = id_of(&port);
    let group = create(
        &app,
        &alice,
        "/security-groups",
        "security_group",
        json!({"name": "a-sg"}),
    )
    .await;
    let group_id = id_of(&group);

    // Bob sees none of it, and cannot change or delete it.
    for path in [
        format!("/networks/{network_id}"),
        format!("/subnets/{subnet_id}"),
        format!("/ports/{port_id}"),
        format!("/security-groups/{group_id}"),
    ] {
        let shown = get(&app, &bob, &path).await;
        assert_eq!(
            shown.status,
            StatusCode::NOT_FOUND,
            "GET {path}: {}",
            shown.json
        );
        assert!(shown.json["NeutronError"]["type"].is_string());
        let deleted = delete(&app, &bob, &path).await;
        assert_eq!(deleted.status, StatusCode::NOT_FOUND, "DELETE {path}");
    }
    let renamed = put(
        &app,
        &bob,
        &format!("/networks/{network_id}"),
        json!({"network": {"name": "mine"}}),
    )
    .await;
    assert_neutron(&renamed, StatusCode::NOT_FOUND, "NetworkNotFound");
    let port_update = put(
        &app,
        &bob,
        &format!("/ports/{port_id}"),
        json!({"port": {"name": "mine"}}),
    )
    .await;
    assert_neutron(&port_update, StatusCode::NOT_FOUND, "PortNotFound");
    let sg_update = put(
        &app,
        &bob,
        &format!("/security-groups/{group_id}"),
        json!({"security_group": {"name": "mine"}}),
    )
    .await;
    assert_neutron(&sg_update, StatusCode::NOT_FOUND, "SecurityGroupNotFound");
    let on_foreign = post(
        &app,
        &bob,
        "/ports",
        json!({"port": {"network_id": network_id}}),
    )
    .await;
    assert_neutron(&on_foreign, StatusCode::NOT_FOUND, "NetworkNotFound");
    let foreign_rule = post(
        &app,
        &bob,
        "/security-group-rules",
        json!({"security_group_rule": {"security_group_id": group_id, "direction": "ingress"}}),
    )
    .await;
    assert_neutron(
        &foreign_rule,
        StatusCode::NOT_FOUND,
        "SecurityGroupNotFound",
    );
    let for_other = post(
        &app,
        &bob,
        "/networks",
        json!({"network": {"name": "x", "project_id": project_a}}),
    )
    .await;
    assert_eq!(
        for_other.status,
        StatusCode::BAD_REQUEST,
        "{}",
        for_other.json
    );

    // Bob's lists: the shared default network only; its subnet; no ports,
    // only his own default group.
    let networks = get(&app, &bob, "/networks").await;
    let names: Vec<&str> = networks.json["networks"]
        .as_array()
        .expect("networks")
        .iter()
        .filter_map(|network| network["name"].as_str())
        .collect();
    assert_eq!(names, ["shared"], "{}", networks.json);
    assert_eq!(networks.json["networks"][0]["shared"], true);
    let subnets = get(&app, &bob, "/subnets").await;
    assert_eq!(
        subnets.json["subnets"].as_array().map(Vec::len),
        Some(1),
        "{}",
        subnets.json
    );
    let ports = get(&app, &bob, "/ports").await;
    assert_eq!(ports.json["ports"], json!([]));
    let groups = get(&app, &bob, "/security-groups").await;
    let group_names: Vec<&str> = groups.json["security_groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|group| group["name"].as_str())
        .collect();
    assert_eq!(group_names, ["default"]);
    let rules = get(
        &app,
        &bob,
        &format!("/security-group-rules?security_group_id={group_id}"),
    )
    .await;
    assert_eq!(rules.json["security_group_rules"], json!([]));

    // Alice sees hers; the admin sees everyone's, with bindings.
    let mine = get(&app, &alice, "/ports").await;
    assert_eq!(mine.json["ports"].as_array().map(Vec::len), Some(1));
    let all = get(&app, &admin, &format!("/networks?tenant_id={project_a}")).await;
    assert_eq!(all.json["networks"].as_array().map(Vec::len), Some(1));
    let admin_port = get(&app, &admin, &format!("/ports/{port_id}")).await;
    assert_eq!(admin_port.json["port"]["binding:host_id"], "");
    assert_eq!(admin_port.json["port"]["binding:vif_type"], "unbound");
    // Alice's own quota is hers to read, not Bob's.
    let quota = get(&app, &bob, &format!("/quotas/{project_a}")).await;
    assert_neutron(&quota, StatusCode::FORBIDDEN, "NotAuthorized");
}

#[tokio::test]
async fn listing_filters_fields_sorting_and_pages() {
    on_backends!(listing_on);
}

fn names(reply: &Reply, collection: &str) -> Vec<String> {
    reply.json[collection]
        .as_array()
        .unwrap_or_else(|| panic!("{collection}: {}", reply.json))
        .iter()
        .map(|item| item["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn listing_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let (_, _, member) = app
        .project_user(&admin, "listing", "listing-user", "member")
        .await;
    for (name, up) in [
        ("n1", true),
        ("n2", false),
        ("n3", true),
        ("n4", true),
        ("n5", false),
    ] {
        create(
            &app,
            &member,
            "/networks",
            "network",
            json!({"name": name, "admin_state_up": up}),
        )
        .await;
    }
    // Filters: a repeated key is any of its values; keys all apply.
    let either = get(
        &app,
        &member,
        "/networks?name=n2&name=n4&sort_key=name&sort_dir=asc",
    )
    .await;
    assert_eq!(names(&either, "networks"), ["n2", "n4"]);
    let down = get(
        &app,
        &member,
        "/networks?admin_state_up=False&sort_key=name&sort_dir=asc",
    )
    .await;
    assert_eq!(names(&down, "networks"), ["n2", "n5"]);
    let both = get(&app, &member, "/networks?admin_state_up=true&name=n2").await;
    assert_eq!(names(&both, "networks"), Vec::<String>::new());
    // Fields.
    let fields = get(&app, &member, "/networks?name=n1&fields=id&fields=name").await;
    let only = fields.json["networks"][0].as_object().expect("network");
    let mut keys: Vec<&str> = only.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["id", "name"]);
    let id = only["id"].as_str().expect("id").to_string();
    let shown = get(&app, &member, &format!("/networks/{id}?fields=status")).await;
    assert_eq!(shown.json, json!({"network": {"status": "ACTIVE"}}));
    // Sorting: several keys, paired with directions.
    let sorted = get(
        &app,
        &member,
        "/networks?shared=false&sort_key=admin_state_up&sort_dir=desc&sort_key=name&sort_dir=desc",
    )
    .await;
    assert_eq!(names(&sorted, "networks"), ["n4", "n3", "n1", "n5", "n2"]);
    // Pages with links, forwards and back.
    let first = get(
        &app,
        &member,
        "/networks?shared=false&sort_key=name&sort_dir=asc&limit=2",
    )
    .await;
    assert_eq!(names(&first, "networks"), ["n1", "n2"]);
    let links = first.json["networks_links"].as_array().expect("links");
    assert_eq!(links.len(), 1, "{}", first.json);
    assert_eq!(links[0]["rel"], "next");
    let next = links[0]["href"].as_str().expect("href");
    let prefix = format!("{PUBLIC_URL}/network/v2.0/networks?");
    assert!(next.starts_with(&prefix), "{next}");
    assert!(
        next.contains("limit=2") && next.contains("shared=false"),
        "{next}"
    );
    let second = app
        .call(
            Method::GET,
            next.strip_prefix(PUBLIC_URL).expect("relative"),
            Some(&member),
            Value::Null,
        )
        .await;
    assert_eq!(names(&second, "networks"), ["n3", "n4"]);
    let links = second.json["networks_links"].as_array().expect("links");
    let rels: Vec<&str> = links
        .iter()
        .filter_map(|link| link["rel"].as_str())
        .collect();
    assert_eq!(rels, ["next", "previous"]);
    let previous = links[1]["href"].as_str().expect("href");
    assert!(previous.contains("page_reverse=True"), "{previous}");
    let back = app
        .call(
            Method::GET,
            previous.strip_prefix(PUBLIC_URL).expect("relative"),
            Some(&member),
            Value::Null,
        )
        .await;
    assert_eq!(names(&back, "networks"), ["n1", "n2"]);
    let back_links: Vec<&str> = back.json["networks_links"]
        .as_array()
        .expect("links")
        .iter()
        .filter_map(|link| link["rel"].as_str())
        .collect();
    assert_eq!(back_links, ["next"], "{}", back.json);
    let last_next = links[0]["href"].as_str().expect("href");
    let last = app
        .call(
            Method::GET,
            last_next.strip_prefix(PUBLIC_URL).expect("relative"),
            Some(&member),
            Value::Null,
        )
        .await;
    assert_eq!(names(&last, "networks"), ["n5"]);
    let last_rels: Vec<&str> = last.json["networks_links"]
        .as_array()
        .expect("links")
        .iter()
        .filter_map(|link| link["rel"].as_str())
        .collect();
    assert_eq!(last_rels, ["previous"]);
    // No limit: no links.
    let all = get(&app, &member, "/networks?shared=false").await;
    assert!(all.json.get("networks_links").is_none(), "{}", all.json);
    assert_eq!(all.json["networks"].as_array().map(Vec::len), Some(5));
    let bad_marker = get(&app, &member, "/networks?limit=1&marker=nope").await;
    assert_neutron(&bad_marker, StatusCode::NOT_FOUND, "NetworkNotFound");
    let bad_limit = get(&app, &member, "/networks?limit=-1").await;
    assert_neutron(&bad_limit, StatusCode::BAD_REQUEST, "HTTPBadRequest");
}

#[tokio::test]
async fn quotas_show_set_and_over_quota() {
    on_backends!(quotas_on);
}

async fn quotas_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let (project, _, member) = app
        .project_user(&admin, "quota-project", "quota-user", "member")
        .await;
    let defaults = json!({"network": 100, "subnet": 100, "port": 500,
        "security_group": 10, "security_group_rule": 100});
    let own = get(&app, &member, &format!("/quotas/{project}")).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.json);
    assert_eq!(own.json["quota"], defaults);
    let default = get(&app, &member, &format!("/quotas/{project}/default")).await;
    assert_eq!(default.json["quota"], defaults);
    // Members may not set.
    let refused = put(
        &app,
        &member,
        &format!("/quotas/{project}"),
        json!({"quota": {"network": 1}}),
    )
    .await;
    assert_neutron(&refused, StatusCode::FORBIDDEN, "NotAuthorized");
    let listed = get(&app, &member, "/quotas").await;
    assert_neutron(&listed, StatusCode::FORBIDDEN, "NotAuthorized");
    // The admin sets, as `openstack quota set --networks 2` sends it.
    let set = put(
        &app,
        &admin,
        &format!("/quotas/{project}"),
        json!({"quota": {"network": 2, "security_group": 3, "check_limit": true}}),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.json);
    assert_eq!(set.json["quota"]["network"], 2);
    assert_eq!(set.json["quota"]["security_group"], 3);
    assert_eq!(set.json["quota"]["port"], 500);
    let unknown = put(
        &app,
        &admin,
        &format!("/quotas/{project}"),
        json!({"quota": {"router": 2}}),
    )
    .await;
    assert_neutron(&unknown, StatusCode::BAD_REQUEST, "HTTPBadRequest");
    for name in ["q1", "q2"] {
        create(&app, &member, "/networks", "network", json!({"name": name})).await;
    }
    let over = post(
        &app,
        &member,
        "/networks",
        json!({"network": {"name": "q3"}}),
    )
    .await;
    assert_neutron(&over, StatusCode::CONFLICT, "OverQuota");
    assert!(
        over.json["NeutronError"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("'network'")),
        "{}",
        over.json
    );
    // Usage in the details; a limit under it is refused with check_limit.
    let details = get(&app, &member, &format!("/quotas/{project}/details")).await;
    assert_eq!(details.status, StatusCode::OK, "{}", details.json);
    assert_eq!(
        details.json["quota"]["network"],
        json!({"limit": 2, "used": 2, "reserved": 0})
    );
    let under = put(
        &app,
        &admin,
        &format!("/quotas/{project}"),
        json!({"quota": {"network": 1, "check_limit": true}}),
    )
    .await;
    assert_neutron(&under, StatusCode::BAD_REQUEST, "InvalidQuotaValue");
    let forced = put(
        &app,
        &admin,
        &format!("/quotas/{project}"),
        json!({"quota": {"network": 1, "force": true}}),
    )
    .await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.json);
    let listed = get(&app, &admin, "/quotas").await;
    let entry = listed.json["quotas"]
        .as_array()
        .expect("quotas")
        .iter()
        .find(|quota| quota["project_id"] == project)
        .cloned()
        .expect("the project is listed");
    assert_eq!(entry["network"], 1);
    assert_eq!(entry["tenant_id"], project);
    // Reset: the defaults again.
    let reset = delete(&app, &admin, &format!("/quotas/{project}")).await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT, "{}", reset.json);
    let own = get(&app, &member, &format!("/quotas/{project}")).await;
    assert_eq!(own.json["quota"], defaults);
}

#[tokio::test]
async fn auto_allocated_topology_is_the_default_network() {
    on_backends!(topology_on);
}

async fn topology_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let (project, _, member) = app
        .project_user(&admin, "auto-project", "auto-user", "member")
        .await;
    let (other, _, _) = app
        .project_user(&admin, "auto-other", "auto-other-user", "member")
        .await;
    let shared = get(&app, &member, "/networks?is_default=true").await;
    let default_id = shared.json["networks"][0]["id"]
        .as_str()
        .expect("a default network")
        .to_string();
    let topology = get(
        &app,
        &member,
        &format!("/auto-allocated-topology/{project}"),
    )
    .await;
    assert_eq!(topology.status, StatusCode::OK, "{}", topology.json);
    assert_eq!(
        topology.json["auto_allocated_topology"],
        json!({"id": default_id, "tenant_id": project, "project_id": project})
    );
    let dry_run = get(
        &app,
        &member,
        &format!("/auto-allocated-topology/{project}?fields=dry-run"),
    )
    .await;
    assert_eq!(
        dry_run.json,
        json!({"auto_allocated_topology": {"id": "dry-run=pass", "tenant_id": project, "project_id": project}})
    );
    let foreign = get(&app, &member, &format!("/auto-allocated-topology/{other}")).await;
    assert_neutron(&foreign, StatusCode::FORBIDDEN, "NotAuthorized");
    let by_admin = get(&app, &admin, &format!("/auto-allocated-topology/{other}")).await;
    assert_eq!(by_admin.json["auto_allocated_topology"]["id"], default_id);
    let deleted = delete(
        &app,
        &member,
        &format!("/auto-allocated-topology/{project}"),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.json);
}

#[tokio::test]
async fn bulk_creates_are_all_or_nothing() {
    on_backends!(bulk_on);
}

async fn bulk_on(backend: &Backend) {
    let app = TestApp::start(backend).await;
    let admin = app.admin_token().await;
    let (_, _, member) = app
        .project_user(&admin, "bulk", "bulk-user", "member")
        .await;
    let networks = post(
        &app,
        &member,
        "/networks",
        json!({"networks": [{"name": "bulk-1"}, {"name": "bulk-2"}]}),
    )
    .await;
    assert_eq!(networks.status, StatusCode::CREATED, "{}", networks.json);
    let made = networks.json["networks"].as_array().expect("networks");
    assert_eq!(made.len(), 2);
    let network_id = id_of(&made[0]);
    let subnets = post(
        &app,
        &member,
        "/subnets",
        json!({"subnets": [{"network_id": network_id, "ip_version": 4, "cidr": "10.50.0.0/24"}]}),
    )
    .await;
    assert_eq!(subnets.status, StatusCode::CREATED, "{}", subnets.json);
    // The second port asks for the address the first takes: 409, and the
    // first is undone.
    let ports = post(
        &app,
        &member,
        "/ports",
        json!({"ports": [
            {"network_id": network_id, "fixed_ips": [{"ip_address": "10.50.0.7"}]},
            {"network_id": network_id, "fixed_ips": [{"ip_address": "10.50.0.7"}]},
        ]}),
    )
    .await;
    assert_neutron(&ports, StatusCode::CONFLICT, "IpAddressAlreadyAllocated");
    let left = get(&app, &member, &format!("/ports?network_id={network_id}")).await;
    assert_eq!(left.json["ports"], json!([]), "{}", left.json);
    // A malformed item refuses the whole request before anything is made.
    let malformed = post(
        &app,
        &member,
        "/networks",
        json!({"networks": [{"name": "bulk-3"}, {"colour": "red"}]}),
    )
    .await;
    assert_neutron(&malformed, StatusCode::BAD_REQUEST, "HTTPBadRequest");
    let named = get(&app, &member, "/networks?name=bulk-3").await;
    assert_eq!(named.json["networks"], json!([]));
    let empty = post(&app, &member, "/networks", json!({"networks": []})).await;
    assert_neutron(&empty, StatusCode::BAD_REQUEST, "HTTPBadRequest");
}
