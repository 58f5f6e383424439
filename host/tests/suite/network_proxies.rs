//! Nova's network proxies over real HTTP with real tokens:
//! `os-security-groups`, `os-security-group-rules` (to 2.35, 404 from
//! 2.36), `os-security-group-default-rules` (410), a server's groups and
//! the `addSecurityGroup`/`removeSecurityGroup` actions with groups made
//! through the proxy (on an embedded host), `os-networks` and
//! `os-tenant-networks` (to 2.35; their nova-network routes 410).

use reqwest::Method;
use serde_json::{Value, json};

use crate::http_cloud::{Cloud, IMAGE, Reply};

/// The last microversion of the proxies.
const PROXY: &str = "2.35";
/// The first without them.
const AFTER: &str = "2.36";

/// The message of a Nova fault `name` (e.g. `badRequest`) with `status`.
fn fault(reply: &Reply, status: u16, name: &str) -> String {
    assert_eq!(reply.0, status, "{}", reply.1);
    reply.1[name]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("a {name} fault: {}", reply.1))
        .to_string()
}

/// Creates group `name` as `token`; returns its view.
async fn create_group(cloud: &Cloud, token: &str, name: &str) -> Value {
    let (status, body) = cloud
        .compute(
            token,
            Method::POST,
            "/os-security-groups",
            Some(json!({"security_group": {"name": name, "description": format!("{name} group")}})),
            PROXY,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["security_group"].clone()
}

/// Creates rule `rule` (the `security_group_rule` fields) as `token`.
async fn create_rule(cloud: &Cloud, token: &str, rule: Value) -> Reply {
    cloud
        .compute(
            token,
            Method::POST,
            "/os-security-group-rules",
            Some(json!({ "security_group_rule": rule })),
            PROXY,
        )
        .await
}

/// The ids of the groups `token` lists at `query`.
async fn listed_ids(cloud: &Cloud, token: &str, query: &str) -> Vec<String> {
    let (status, body) = cloud
        .compute(
            token,
            Method::GET,
            &format!("/os-security-groups{query}"),
            None,
            PROXY,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["security_groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|group| group["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn security_groups_and_rules_through_the_compute_proxy() {
    let cloud = Cloud::start(|_| {}).await;
    let (project, _, member) = cloud.tenant("proxy-one", "alice", "member").await;
    let (_, _, reader) = cloud.tenant("proxy-reader", "rita", "reader").await;

    // Create, show, list: Nova's shape, the name kept with its spaces.
    let web = create_group(&cloud, &member, " web ").await;
    let web_id = web["id"].as_str().expect("id").to_string();
    assert_eq!(web["name"], " web ");
    assert_eq!(web["description"], " web  group");
    assert_eq!(web["tenant_id"], project.as_str());
    assert_eq!(web["rules"], json!([]), "egress rules are not shown");
    let (status, shown) = cloud
        .compute(
            &member,
            Method::GET,
            &format!("/os-security-groups/{web_id}"),
            None,
            PROXY,
        )
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["security_group"], web);
    let (status, listed) = cloud
        .compute(&member, Method::GET, "/os-security-groups", None, "2.1")
        .await;
    assert_eq!(status, 200, "{listed}");
    let names: Vec<&str> = listed["security_groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|group| group["name"].as_str())
        .collect();
    assert_eq!(names, [" web ", "default"], "sorted by name: {listed}");
    let default = &listed["security_groups"][1];
    assert_eq!(
        default["rules"][0]["group"],
        json!({"name": "default", "tenant_id": project}),
        "the default group admits its members: {default}"
    );
    assert_eq!(default["rules"][0]["ip_range"], json!({}));
    assert_eq!(default["rules"][0]["ip_protocol"], Value::Null);
    let default_id = default["id"].as_str().expect("default id").to_string();

    // Paging: limit and offset, as Nova's `limited`.
    assert_eq!(listed_ids(&cloud, &member, "?limit=1").await.len(), 1);
    assert_eq!(listed_ids(&cloud, &member, "?offset=1").await.len(), 1);
    let reply = cloud
        .compute(
            &member,
            Method::GET,
            "/os-security-groups?limit=x",
            None,
            PROXY,
        )
        .await;
    assert!(fault(&reply, 400, "badRequest").contains("limit"));

    // all_tenants: every project's groups for an admin, ignored otherwise.
    let admin_group = create_group(&cloud, &cloud.admin, "admins").await;
    let admin_id = admin_group["id"].as_str().expect("id").to_string();
    let everything = listed_ids(&cloud, &cloud.admin, "?all_tenants=1").await;
    assert!(everything.contains(&web_id) && everything.contains(&admin_id));
    let own = listed_ids(&cloud, &cloud.admin, "").await;
    assert!(own.contains(&admin_id) && !own.contains(&web_id));
    let members = listed_ids(&cloud, &member, "?all_tenants=1").await;
    assert!(members.contains(&web_id) && !members.contains(&admin_id));

    // Update: name and description both required.
    let (status, updated) = cloud
        .compute(
            &member,
            Method::PUT,
            &format!("/os-security-groups/{web_id}"),
            Some(json!({"security_group": {"name": "www", "description": "served"}})),
            PROXY,
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["security_group"]["name"], "www");
    assert_eq!(updated["security_group"]["description"], "served");
    let reply = cloud
        .compute(
            &member,
            Method::PUT,
            &format!("/os-security-groups/{web_id}"),
            Some(json!({"security_group": {"name": "www"}})),
            PROXY,
        )
        .await;
    assert_eq!(
        fault(&reply, 400, "badRequest"),
        "'description' is a required property"
    );

    // Rules: a TCP rule from anywhere, a CIDR one, ICMP, one from a group.
    let (status, rule) = create_rule(
        &cloud,
        &member,
        json!({"parent_group_id": web_id, "ip_protocol": "tcp", "from_port": 22, "to_port": 22}),
    )
    .await;
    assert_eq!(status, 200, "{rule}");
    let ssh = rule["security_group_rule"].clone();
    assert_eq!(
        (
            &ssh["parent_group_id"],
            &ssh["ip_protocol"],
            &ssh["from_port"],
            &ssh["to_port"]
        ),
        (&json!(web_id), &json!("tcp"), &json!(22), &json!(22))
    );
    assert_eq!(ssh["ip_range"], json!({"cidr": "0.0.0.0/0"}));
    assert_eq!(ssh["group"], json!({}));
    let (status, rule) = create_rule(
        &cloud,
        &member,
        json!({"parent_group_id": web_id, "ip_protocol": "tcp", "from_port": 80, "to_port": 81, "cidr": "10.2.3.124/24"}),
    )
    .await;
    assert_eq!(status, 200, "{rule}");
    assert_eq!(
        rule["security_group_rule"]["ip_range"],
        json!({"cidr": "10.2.3.124/24"}),
        "the CIDR as given"
    );
    let (status, rule) = create_rule(
        &cloud,
        &member,
        json!({"parent_group_id": web_id, "ip_protocol": "icmp", "from_port": -1, "to_port": -1}),
    )
    .await;
    assert_eq!(status, 200, "{rule}");
    let ping_id = rule["security_group_rule"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let peer = create_group(&cloud, &member, "peer").await;
    let peer_id = peer["id"].as_str().expect("id").to_string();
    let (status, rule) = create_rule(
        &cloud,
        &member,
        json!({"parent_group_id": web_id, "ip_protocol": "udp", "group_id": peer_id}),
    )
    .await;
    assert_eq!(status, 200, "{rule}");
    let from_peer = &rule["security_group_rule"];
    assert_eq!(
        from_peer["group"],
        json!({"name": "peer", "tenant_id": project})
    );
    assert_eq!(from_peer["ip_range"], json!({}));
    assert_eq!(
        (&from_peer["from_port"], &from_peer["to_port"]),
        (&json!(1), &json!(65535))
    );
    let reply = cloud
        .compute(
            &reader,
            Method::GET,
            &format!("/os-security-groups/{web_id}"),
            None,
            PROXY,
        )
        .await;
    assert_eq!(
        fault(&reply, 404, "itemNotFound"),
        format!("Security group {web_id} does not exist"),
        "another project's group"
    );
    let (status, shown) = cloud
        .compute(
            &member,
            Method::GET,
            &format!("/os-security-groups/{web_id}"),
            None,
            PROXY,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        shown["security_group"]["rules"].as_array().map(Vec::len),
        Some(4)
    );

    // Rule refusals, in Nova's words.
    for (rule, status, wanted) in [
        (
            json!({"parent_group_id": web_id, "ip_protocol": "tcp", "from_port": 22, "to_port": 22}),
            400,
            format!("This rule already exists in group {web_id}"),
        ),
        (
            json!({"parent_group_id": web_id, "ip_protocol": "gre", "from_port": 1, "to_port": 2}),
            400,
            "Invalid IP protocol gre.".to_string(),
        ),
        (
            json!({"parent_group_id": web_id, "ip_protocol": "tcp", "from_port": 65536, "to_port": 22}),
            400,
            "Invalid port range 65536:22. Former value cannot be greater than the later"
                .to_string(),
        ),
        (
            json!({"parent_group_id": web_id, "ip_protocol": "tcp", "from_port": 22, "to_port": 70000}),
            400,
            "Invalid port range 22:70000. Valid TCP ports should be between 1-65535".to_string(),
        ),
        (
            json!({"parent_group_id": web_id, "ip_protocol": "tcp", "from_port": 1, "to_port": 2, "cidr": "10.0.0.300/8"}),
            400,
            "10.0.0.300/8 is not a valid IP network.".to_string(),
        ),
        (
            json!({"parent_group_id": web_id, "ip_protocol": "tcp"}),
            400,
            "Not enough parameters to build a valid rule.".to_string(),
        ),
        (
            json!({"parent_group_id": "not-a-uuid", "ip_protocol": "tcp", "from_port": 1, "to_port": 2}),
            400,
            "Invalid input for field/attribute parent_group_id. Value: \"not-a-uuid\". \"not-a-uuid\" is not a 'uuid'".to_string(),
        ),
        (
            json!({"parent_group_id": "0c7a3b59-5a7e-4e7b-9f0e-3f6f2e7f9a10", "ip_protocol": "tcp", "from_port": 1, "to_port": 2}),
            404,
            "Security group 0c7a3b59-5a7e-4e7b-9f0e-3f6f2e7f9a10 does not exist".to_string(),
        ),
    ] {
        let reply = create_rule(&cloud, &member, rule).await;
        let name = if status == 404 { "itemNotFound" } else { "badRequest" };
        assert_eq!(fault(&reply, status, name), wanted);
    }
    let reply = create_rule(
        &cloud,
        &reader,
        json!({"parent_group_id": web_id, "ip_protocol": "tcp", "from_port": 1, "to_port": 2}),
    )
    .await;
    assert_eq!(reply.0, 403, "a reader may not write: {}", reply.1);

    // Rule delete: 202, then 404; a bad id 400.
    let path = format!("/os-security-group-rules/{ping_id}");
    let (status, _) = cloud
        .compute(&member, Method::DELETE, &path, None, PROXY)
        .await;
    assert_eq!(status, 202);
    let reply = cloud
        .compute(&member, Method::DELETE, &path, None, PROXY)
        .await;
    assert_eq!(
        fault(&reply, 404, "itemNotFound"),
        format!("Security group rule {ping_id} does not exist")
    );
    let reply = cloud
        .compute(
            &member,
            Method::DELETE,
            "/os-security-group-rules/x",
            None,
            PROXY,
        )
        .await;
    assert_eq!(
        fault(&reply, 400, "badRequest"),
        "Security group id should be uuid"
    );

    // Deleting the peer group takes the rule admitting it along.
    let (status, _) = cloud
        .compute(
            &member,
            Method::DELETE,
            &format!("/os-security-groups/{peer_id}"),
            None,
            PROXY,
        )
        .await;
    assert_eq!(status, 202);
    let (_, shown) = cloud
        .compute(
            &member,
            Method::GET,
            &format!("/os-security-groups/{web_id}"),
            None,
            PROXY,
        )
        .await;
    let rules = shown["security_group"]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 2, "{shown}");
    assert!(rules.iter().all(|rule| rule["group"] == json!({})));

    // Group refusals: the default group (400), unknown (404), not a uuid.
    let reply = cloud
        .compute(
            &member,
            Method::DELETE,
            &format!("/os-security-groups/{default_id}"),
            None,
            PROXY,
        )
        .await;
    fault(&reply, 400, "badRequest");
    let unknown = "/os-security-groups/0c7a3b59-5a7e-4e7b-9f0e-3f6f2e7f9a10";
    for method in [Method::GET, Method::DELETE] {
        let reply = cloud.compute(&member, method, unknown, None, PROXY).await;
        fault(&reply, 404, "itemNotFound");
    }
    let reply = cloud
        .compute(
            &member,
            Method::PUT,
            unknown,
            Some(json!({"security_group": {"name": "n", "description": "d"}})),
            PROXY,
        )
        .await;
    fault(&reply, 404, "itemNotFound");
    let reply = cloud
        .compute(&member, Method::GET, "/os-security-groups/12", None, PROXY)
        .await;
    assert_eq!(
        fault(&reply, 400, "badRequest"),
        "Security group id should be uuid"
    );
    let reply = cloud
        .compute(
            &member,
            Method::POST,
            "/os-security-groups",
            Some(json!({"security_group": {"name": "x".repeat(256), "description": ""}})),
            PROXY,
        )
        .await;
    assert!(fault(&reply, 400, "badRequest").ends_with("is too long"));
    let reply = cloud
        .compute(
            &member,
            Method::POST,
            "/os-security-groups",
            Some(json!({"security_group": {"name": "default", "description": ""}})),
            PROXY,
        )
        .await;
    assert_eq!(reply.0, 403, "Neutron's 409 is Nova's 403: {}", reply.1);
    let reply = cloud
        .compute(
            &reader,
            Method::POST,
            "/os-security-groups",
            Some(json!({"security_group": {"name": "r", "description": ""}})),
            PROXY,
        )
        .await;
    assert_eq!(reply.0, 403, "{}", reply.1);

    // From 2.36 every route is gone (404); default rules are 410 always.
    for (method, path, body) in [
        (Method::GET, "/os-security-groups".to_string(), None),
        (
            Method::POST,
            "/os-security-groups".to_string(),
            Some(json!({"security_group": {"name": "n", "description": "d"}})),
        ),
        (Method::GET, format!("/os-security-groups/{web_id}"), None),
        (
            Method::PUT,
            format!("/os-security-groups/{web_id}"),
            Some(json!({"security_group": {"name": "n", "description": "d"}})),
        ),
        (
            Method::DELETE,
            format!("/os-security-groups/{web_id}"),
            None,
        ),
        (
            Method::POST,
            "/os-security-group-rules".to_string(),
            Some(json!({"security_group_rule": {"parent_group_id": web_id}})),
        ),
        (
            Method::DELETE,
            format!(
                "/os-security-group-rules/{}",
                ssh["id"].as_str().expect("id")
            ),
            None,
        ),
    ] {
        let reply = cloud.compute(&member, method, &path, body, AFTER).await;
        assert_eq!(
            fault(&reply, 404, "itemNotFound"),
            "The resource could not be found.",
            "{path}"
        );
    }
    for version in [PROXY, AFTER] {
        for (method, path) in [
            (Method::GET, "/os-security-group-default-rules"),
            (Method::POST, "/os-security-group-default-rules"),
            (Method::GET, "/os-security-group-default-rules/1"),
            (Method::DELETE, "/os-security-group-default-rules/1"),
        ] {
            let body = (method == Method::POST).then(|| json!({}));
            let reply = cloud.compute(&member, method, path, body, version).await;
            fault(&reply, 410, "computeFault");
        }
    }

    // The group still exists at 2.35 and deletes.
    let (status, _) = cloud
        .compute(
            &member,
            Method::DELETE,
            &format!("/os-security-groups/{web_id}"),
            None,
            PROXY,
        )
        .await;
    assert_eq!(status, 202);
    cloud.stop().await;
}

#[tokio::test]
async fn a_server_gains_and_loses_groups_made_through_the_proxy() {
    let cloud = Cloud::start(|config| {
        config.agent.embedded = true;
        config.agent.embedded_hosts = 1;
    })
    .await;
    cloud.wait_for_hosts(1).await;
    let (project, _, member) = cloud.tenant("proxy-servers", "bob", "member").await;
    let (_, networks) = cloud
        .compute(&member, Method::GET, "/os-tenant-networks", None, PROXY)
        .await;
    let shared = networks["networks"][0]["id"]
        .as_str()
        .expect("the shared network")
        .to_string();
    let (status, body) = cloud
        .compute(
            &member,
            Method::POST,
            "/servers",
            Some(json!({"server": {"name": "s", "imageRef": IMAGE, "flavorRef": "1", "networks": [{"uuid": shared}]}})),
            "2.1",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let server = body["server"]["id"].as_str().expect("id").to_string();
    cloud.wait_status(&server, "ACTIVE").await;

    let web = create_group(&cloud, &member, "web").await;
    let web_id = web["id"].as_str().expect("id").to_string();
    let (status, _) = create_rule(
        &cloud,
        &member,
        json!({"parent_group_id": web_id, "ip_protocol": "tcp", "from_port": 443, "to_port": 443}),
    )
    .await;
    assert_eq!(status, 200);
    let action = |body: Value| {
        let cloud = &cloud;
        let member = member.clone();
        let path = format!("/servers/{server}/action");
        async move {
            cloud
                .compute(&member, Method::POST, &path, Some(body), PROXY)
                .await
        }
    };
    let (status, body) = action(json!({"addSecurityGroup": {"name": "web"}})).await;
    assert_eq!(status, 202, "{body}");
    let reply = action(json!({"addSecurityGroup": {"name": "nope"}})).await;
    assert_eq!(
        fault(&reply, 404, "itemNotFound"),
        format!("Security group nope is not found for project {project}")
    );

    let (status, groups) = cloud
        .compute(
            &member,
            Method::GET,
            &format!("/servers/{server}/os-security-groups"),
            None,
            PROXY,
        )
        .await;
    assert_eq!(status, 200, "{groups}");
    let shown = groups["security_groups"].as_array().expect("groups");
    let names: Vec<&str> = shown
        .iter()
        .filter_map(|group| group["name"].as_str())
        .collect();
    assert_eq!(names, ["default", "web"]);
    assert_eq!(shown[1]["id"], web_id.as_str());
    assert_eq!(shown[1]["tenant_id"], project.as_str());
    assert_eq!(
        shown[1]["rules"][0]["ip_range"],
        json!({"cidr": "0.0.0.0/0"})
    );
    assert_eq!(shown[1]["rules"][0]["from_port"], 443);
    assert_eq!(
        shown[0]["rules"][0]["group"],
        json!({"name": "default", "tenant_id": project})
    );

    // In use: Nova answers Neutron's 409 with 400.
    let path = format!("/os-security-groups/{web_id}");
    let reply = cloud
        .compute(&member, Method::DELETE, &path, None, PROXY)
        .await;
    fault(&reply, 400, "badRequest");

    let (status, body) = action(json!({"removeSecurityGroup": {"name": "web"}})).await;
    assert_eq!(status, 202, "{body}");
    let reply = action(json!({"removeSecurityGroup": {"name": "web"}})).await;
    assert_eq!(
        fault(&reply, 404, "itemNotFound"),
        format!("Security group web not associated with the instance {server}")
    );
    let (status, _) = cloud
        .compute(&member, Method::DELETE, &path, None, PROXY)
        .await;
    assert_eq!(status, 202);

    let (status, _) = cloud
        .compute(
            &member,
            Method::DELETE,
            &format!("/servers/{server}"),
            None,
            "2.1",
        )
        .await;
    assert_eq!(status, 204);
    cloud.stop().await;
}

#[tokio::test]
async fn os_networks_and_os_tenant_networks_show_the_visible_networks() {
    let cloud = Cloud::start(|_| {}).await;
    let (_, _, member) = cloud.tenant("proxy-nets", "carol", "member").await;
    let (status, private) = cloud
        .call(
            &cloud.admin,
            Method::POST,
            "/network/v2.0/networks",
            Some(json!({"network": {"name": "admins-only"}})),
            "2.1",
        )
        .await;
    assert_eq!(status, 201, "{private}");
    let private_id = private["network"]["id"].as_str().expect("id").to_string();

    // os-networks: id and label, the nova-network fields null; admins see
    // every network and the admin fields.
    let (status, listed) = cloud
        .compute(&member, Method::GET, "/os-networks", None, PROXY)
        .await;
    assert_eq!(status, 200, "{listed}");
    let networks = listed["networks"].as_array().expect("networks");
    assert_eq!(networks.len(), 1, "only the shared network: {listed}");
    let shared = &networks[0];
    assert_eq!(shared["label"], "shared");
    assert_eq!(shared["cidr"], Value::Null);
    assert_eq!(shared.as_object().map(|fields| fields.len()), Some(11));
    let shared_id = shared["id"].as_str().expect("id").to_string();
    let (status, listed) = cloud
        .compute(&cloud.admin, Method::GET, "/os-networks", None, PROXY)
        .await;
    assert_eq!(status, 200);
    let labels: Vec<&str> = listed["networks"]
        .as_array()
        .expect("networks")
        .iter()
        .filter_map(|network| network["label"].as_str())
        .collect();
    assert!(labels.contains(&"admins-only") && labels.contains(&"shared"));
    let (status, shown) = cloud
        .compute(
            &cloud.admin,
            Method::GET,
            &format!("/os-networks/{shared_id}"),
            None,
            PROXY,
        )
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["network"]["label"], "shared");
    assert_eq!(shown["network"]["mtu"], Value::Null);
    assert_eq!(
        shown["network"].as_object().map(|fields| fields.len()),
        Some(32)
    );
    let reply = cloud
        .compute(
            &member,
            Method::GET,
            &format!("/os-networks/{private_id}"),
            None,
            PROXY,
        )
        .await;
    assert_eq!(fault(&reply, 404, "itemNotFound"), "Network not found");

    // os-tenant-networks: id, label and the string "None" as cidr.
    let (status, listed) = cloud
        .compute(&member, Method::GET, "/os-tenant-networks", None, PROXY)
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed["networks"],
        json!([{"id": shared_id, "label": "shared", "cidr": "None"}])
    );
    let (status, shown) = cloud
        .compute(
            &member,
            Method::GET,
            &format!("/os-tenant-networks/{shared_id}"),
            None,
            PROXY,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        shown["network"],
        json!({"id": shared_id, "label": "shared", "cidr": "None"})
    );
    let reply = cloud
        .compute(
            &member,
            Method::GET,
            &format!("/os-tenant-networks/{private_id}"),
            None,
            PROXY,
        )
        .await;
    assert_eq!(fault(&reply, 404, "itemNotFound"), "Network not found");

    // From 2.36 the reads are 404; what only nova-network did is 410 at
    // every microversion; an unknown network action 400.
    for path in [
        "/os-networks".to_string(),
        format!("/os-networks/{shared_id}"),
        "/os-tenant-networks".to_string(),
        format!("/os-tenant-networks/{shared_id}"),
    ] {
        let reply = cloud
            .compute(&member, Method::GET, &path, None, AFTER)
            .await;
        fault(&reply, 404, "itemNotFound");
    }
    for version in [PROXY, AFTER] {
        for (method, path, body) in [
            (Method::POST, "/os-networks".to_string(), Some(json!({}))),
            (
                Method::POST,
                "/os-networks/add".to_string(),
                Some(json!({})),
            ),
            (Method::DELETE, format!("/os-networks/{shared_id}"), None),
            (
                Method::POST,
                format!("/os-networks/{shared_id}/action"),
                Some(json!({"disassociate": null})),
            ),
            (
                Method::POST,
                format!("/os-networks/{shared_id}/action"),
                Some(json!({"associate_host": "h1"})),
            ),
            (
                Method::POST,
                "/os-tenant-networks".to_string(),
                Some(json!({})),
            ),
            (
                Method::DELETE,
                format!("/os-tenant-networks/{shared_id}"),
                None,
            ),
        ] {
            let reply = cloud
                .compute(&cloud.admin, method, &path, body, version)
                .await;
            assert_eq!(
                fault(&reply, 410, "computeFault"),
                "This resource is no longer available.  No forwarding address is given.",
                "{path}"
            );
        }
    }
    let reply = cloud
        .compute(
            &cloud.admin,
            Method::POST,
            &format!("/os-networks/{shared_id}/action"),
            Some(json!({"fly": null})),
            PROXY,
        )
        .await;
    assert_eq!(
        fault(&reply, 400, "badRequest"),
        "There is no such action: fly"
    );
    cloud.stop().await;
}
