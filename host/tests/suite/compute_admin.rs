//! The Compute API's admin and per-user resources, in-process over the real
//! router, real tokens and a real database (SQLite, and PostgreSQL when one
//! answers): os-hypervisors, os-services, os-aggregates,
//! os-availability-zone, os-server-groups, os-keypairs, and server create's
//! image, key pair and server group handling as the scheduler sees them.
//! Hosts enroll through the real agent RPC (the test plays the agent).

use crate::api_common;

use std::time::Duration;

use api_common::{Backend, Reply, TestApp, backends};
use axum::http::{Method, StatusCode};
use novum_wire::{CpuInfo, Inventory, RegisterRequest, SupportedInstance};
use serde_json::{Value, json};

const ENROLLMENT: &str = "enroll-me";

/// A user's token and ids.
struct Caller {
    token: String,
    user_id: String,
    project_id: String,
}

struct Env {
    app: TestApp,
    admin: Caller,
    member: Caller,
    reader: Caller,
    other: Caller,
}

async fn env(backend: &Backend) -> Env {
    let mut config = api_common::config(&backend.dir.0);
    config.agent.embedded = false;
    config.agent.enrollment_token = Some(ENROLLMENT.to_string());
    config.scheduler.backend = novum::plugins::Backend::Native;
    config.plugins.cache_dir = Some(backend.dir.0.join("cache"));
    let app = TestApp::new(backend, config).await;
    let admin_token = app.admin_token().await;
    let ids = |reply: &Reply| {
        (
            reply.json["token"]["user"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            reply.json["token"]["project"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    };
    let admin_reply = app
        .password_auth("admin", api_common::ADMIN_PASSWORD, Some("admin"))
        .await;
    let (admin_user, admin_project) = ids(&admin_reply);
    let (project, member_user, member_token) = app
        .project_user(&admin_token, "p-one", "alice", "member")
        .await;
    let reader_token = app
        .add_user(&admin_token, &project, "p-one", "rita", "reader")
        .await;
    let reader_reply = app.password_auth("rita", "pw", Some("p-one")).await;
    let (other_project, other_user, other_token) = app
        .project_user(&admin_token, "p-two", "bob", "member")
        .await;
    Env {
        admin: Caller {
            token: admin_token,
            user_id: admin_user,
            project_id: admin_project,
        },
        member: Caller {
            token: member_token,
            user_id: member_user,
            project_id: project.clone(),
        },
        reader: Caller {
            token: reader_token,
            user_id: ids(&reader_reply).0,
            project_id: project,
        },
        other: Caller {
            token: other_token,
            user_id: other_user,
            project_id: other_project,
        },
        app,
    }
}

impl Env {
    /// A compute API call at microversion `version`.
    async fn compute(
        &self,
        caller: &Caller,
        method: Method,
        path: &str,
        version: &str,
        body: Value,
    ) -> Reply {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).expect("json")
        };
        let version = format!("compute {version}");
        self.app
            .send(
                method,
                &format!("/compute/v2.1/{path}"),
                &[
                    ("content-type", "application/json"),
                    ("x-auth-token", &caller.token),
                    ("openstack-api-version", &version),
                ],
                bytes,
            )
            .await
    }

    /// Enrolls `host` through the agent RPC, as an agent does.
    async fn register(&self, host: &str, arch: &str) {
        let request = RegisterRequest {
            host: host.to_string(),
            inventory: Inventory {
                vcpus: 8,
                memory_mb: 16384,
                disk_gb: 100,
                cpu_info: CpuInfo {
                    arch: arch.into(),
                    ..CpuInfo::default()
                },
                hypervisor_type: "TEST".into(),
                hypervisor_version: 2_000_000,
                hypervisor_hostname: format!("{host}.example"),
                host_ip: Some("192.0.2.10".into()),
                supported_instances: vec![SupportedInstance {
                    arch: arch.into(),
                    hv_type: "test".into(),
                    vm_mode: "hvm".into(),
                }],
            },
            agent_version: "test".into(),
        };
        let reply = self
            .app
            .send(
                Method::POST,
                "/rpc/v1/agents/register",
                &[
                    ("content-type", "application/json"),
                    ("authorization", &format!("Bearer {ENROLLMENT}")),
                ],
                serde_json::to_vec(&request).expect("json"),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    }

    /// An active image owned by `caller` with `properties`.
    async fn image(&self, caller: &Caller, name: &str, properties: Value) -> String {
        let mut body = json!({"name": name, "disk_format": "raw", "container_format": "bare"});
        if let (Some(body), Some(properties)) = (body.as_object_mut(), properties.as_object()) {
            body.extend(properties.clone());
        }
        let reply = self
            .app
            .call(Method::POST, "/image/v2/images", Some(&caller.token), body)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
        let id = reply.json["id"].as_str().expect("image id").to_string();
        let reply = self
            .app
            .send(
                Method::PUT,
                &format!("/image/v2/images/{id}/file"),
                &[
                    ("content-type", "application/octet-stream"),
                    ("x-auth-token", &caller.token),
                ],
                vec![1u8; 512],
            )
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.json);
        id
    }

    async fn create_server(&self, caller: &Caller, server: Value, hints: Value) -> Reply {
        let mut body = json!({"server": server});
        if !hints.is_null() {
            body["os:scheduler_hints"] = hints;
        }
        self.compute(caller, Method::POST, "servers", "2.96", body)
            .await
    }

    /// Waits until the scheduler has placed (or failed) server `id`.
    async fn placed(&self, id: &str) -> Value {
        for _ in 0..300 {
            let reply = self
                .compute(
                    &self.admin,
                    Method::GET,
                    &format!("servers/{id}"),
                    "2.96",
                    Value::Null,
                )
                .await;
            let server = reply.json["server"].clone();
            if server["OS-EXT-SRV-ATTR:host"].is_string() || server["status"] == "ERROR" {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server {id} was never placed");
    }
}

/// Asserts Nova's fault body (`{"<name>": {"code", "message"}}`).
fn assert_fault(reply: &Reply, status: StatusCode, name: &str) {
    assert_eq!(reply.status, status, "{}", reply.json);
    assert_eq!(
        reply.json[name]["code"],
        json!(status.as_u16()),
        "{}",
        reply.json
    );
    assert!(reply.json[name]["message"].is_string(), "{}", reply.json);
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .map(|object| object.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

async fn hypervisors(env: &Env) {
    env.register("alpha", "x86_64").await;
    env.register("beta", "x86_64").await;
    let reply = env
        .compute(
            &env.member,
            Method::GET,
            "os-hypervisors",
            "2.1",
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");

    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-hypervisors",
            "2.1",
            Value::Null,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let list = reply.json["hypervisors"].as_array().expect("list").clone();
    assert_eq!(list.len(), 2);
    assert_eq!(
        keys(&list[0]),
        ["hypervisor_hostname", "id", "state", "status"]
    );
    assert!(list[0]["id"].is_i64());
    assert_eq!(list[0]["state"], "up");
    assert_eq!(list[0]["status"], "enabled");
    let int_id = list[0]["id"].as_i64().expect("id");

    // 2.1 detail: resource fields, cpu_info as a string.
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-hypervisors/detail",
            "2.1",
            Value::Null,
        )
        .await;
    let first = &reply.json["hypervisors"][0];
    assert_eq!(first["vcpus"], 8);
    assert_eq!(first["memory_mb"], 16384);
    assert!(first["cpu_info"].is_string(), "{first}");
    assert!(first["service"]["id"].is_i64());
    assert_eq!(first["hypervisor_type"], "TEST");
    // 2.28: cpu_info is an object.
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            &format!("os-hypervisors/{int_id}"),
            "2.28",
            Value::Null,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["hypervisor"]["cpu_info"]["arch"], "x86_64");

    // 2.53: uuids, hostname pattern, with_servers; integer ids are refused.
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-hypervisors?hypervisor_hostname_pattern=beta",
            "2.53",
            Value::Null,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let beta = reply.json["hypervisors"][0].clone();
    assert_eq!(beta["hypervisor_hostname"], "beta.example");
    let uuid = beta["id"].as_str().expect("uuid").to_string();
    assert!(uuid::Uuid::parse_str(&uuid).is_ok());
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-hypervisors?hypervisor_hostname_pattern=nowhere",
            "2.53",
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-hypervisors?hypervisor_hostname_pattern=beta&limit=1",
            "2.53",
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            &format!("os-hypervisors/{int_id}"),
            "2.53",
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            &format!("os-hypervisors/{}", uuid::Uuid::new_v4()),
            "2.53",
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");

    // 2.88: no resource fields; statistics gone.
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            &format!("os-hypervisors/{uuid}"),
            "2.88",
            Value::Null,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let shown = &reply.json["hypervisor"];
    assert!(
        shown.get("vcpus").is_none() && shown.get("cpu_info").is_none(),
        "{shown}"
    );
    assert!(shown.get("uptime").is_some(), "{shown}");
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-hypervisors/statistics",
            "2.88",
            Value::Null,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-hypervisors/statistics",
            "2.1",
            Value::Null,
        )
        .await;
    assert_eq!(reply.json["hypervisor_statistics"]["count"], 2);
    assert_eq!(reply.json["hypervisor_statistics"]["vcpus"], 16);

    // Paging (2.33+).
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-hypervisors?limit=1",
            "2.33",
            Value::Null,
        )
        .await;
    assert_eq!(reply.json["hypervisors"].as_array().map(Vec::len), Some(1));
    assert!(
        reply.json["hypervisors_links"][0]["href"]
            .as_str()
            .is_some_and(|href| href.contains("marker=")),
        "{}",
        reply.json
    );

    // Before 2.53: /search and /servers sub-resources.
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-hypervisors/alpha/search",
            "2.1",
            Value::Null,
        )
        .await;
    assert_eq!(
        reply.json["hypervisors"][0]["hypervisor_hostname"],
        "alpha.example"
    );
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-hypervisors/zzz/servers",
            "2.1",
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-hypervisors/alpha/search",
            "2.53",
            Value::Null,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

async fn services(env: &Env) {
    let reply = env
        .compute(&env.reader, Method::GET, "os-services", "2.1", Value::Null)
        .await;
    assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");
    let reply = env
        .compute(&env.admin, Method::GET, "os-services", "2.1", Value::Null)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let first = reply.json["services"][0].clone();
    assert_eq!(
        keys(&first),
        [
            "binary",
            "disabled_reason",
            "host",
            "id",
            "state",
            "status",
            "updated_at",
            "zone"
        ]
    );
    assert_eq!(first["binary"], "nova-compute");
    assert_eq!(first["zone"], "nova");
    assert_eq!(first["state"], "up");

    // Legacy disable before 2.53.
    let reply = env
        .compute(
            &env.admin,
            Method::PUT,
            "os-services/disable-log-reason",
            "2.1",
            json!({"host": "beta", "binary": "nova-compute", "disabled_reason": "maintenance"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["service"]["status"], "disabled");
    assert_eq!(reply.json["service"]["disabled_reason"], "maintenance");
    let reply = env
        .compute(
            &env.admin,
            Method::PUT,
            "os-services/enable",
            "2.1",
            json!({"host": "beta", "binary": "nova-compute"}),
        )
        .await;
    assert_eq!(reply.json["service"]["status"], "enabled");
    let reply = env
        .compute(
            &env.admin,
            Method::PUT,
            "os-services/enable",
            "2.1",
            json!({"host": "nope", "binary": "nova-compute"}),
        )
        .await;
    assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");

    // 2.53: by uuid.
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-services?host=beta",
            "2.53",
            Value::Null,
        )
        .await;
    let beta = reply.json["services"][0].clone();
    assert_eq!(beta["forced_down"], false);
    let id = beta["id"].as_str().expect("uuid").to_string();
    let reply = env
        .compute(
            &env.admin,
            Method::PUT,
            &format!("os-services/{id}"),
            "2.53",
            json!({"status": "enabled", "disabled_reason": "why"}),
        )
        .await;
    assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
    let reply = env
        .compute(
            &env.member,
            Method::PUT,
            &format!("os-services/{id}"),
            "2.53",
            json!({"status": "disabled"}),
        )
        .await;
    assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");
    let reply = env
        .compute(
            &env.admin,
            Method::PUT,
            &format!("os-services/{id}"),
            "2.53",
            json!({"status": "disabled", "disabled_reason": "drain", "forced_down": true}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["service"]["status"], "disabled");
    assert_eq!(reply.json["service"]["state"], "down");
    assert_eq!(reply.json["service"]["forced_down"], true);
    let reply = env
        .compute(
            &env.admin,
            Method::PUT,
            &format!("os-services/{}", uuid::Uuid::new_v4()),
            "2.53",
            json!({"status": "disabled"}),
        )
        .await;
    assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");

    // The disabled, forced-down host takes no servers: every build lands on alpha.
    let image = env.image(&env.member, "plain", json!({})).await;
    for name in ["only-alpha-1", "only-alpha-2"] {
        let reply = env
            .create_server(
                &env.member,
                json!({"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}),
                Value::Null,
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
        let id = reply.json["server"]["id"].as_str().expect("id").to_string();
        let server = env.placed(&id).await;
        assert_eq!(server["OS-EXT-SRV-ATTR:host"], "alpha", "{server}");
    }
    // The hypervisors list the servers they hold: with_servers (2.53) and
    // /{pattern}/servers before.
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-hypervisors?with_servers=true",
            "2.53",
            Value::Null,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(
        reply.json["hypervisors"][0]["servers"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert!(
        reply.json["hypervisors"][1].get("servers").is_none(),
        "{}",
        reply.json
    );
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-hypervisors/alpha/servers",
            "2.1",
            Value::Null,
        )
        .await;
    let servers = reply.json["hypervisors"][0]["servers"].clone();
    assert_eq!(servers.as_array().map(Vec::len), Some(2), "{}", reply.json);
    assert!(servers[0]["uuid"].is_string() && servers[0]["name"].is_string());
    let reply = env
        .compute(
            &env.admin,
            Method::PUT,
            &format!("os-services/{id}"),
            "2.53",
            json!({"status": "enabled", "forced_down": false}),
        )
        .await;
    assert_eq!(reply.json["service"]["status"], "enabled");
    assert_eq!(reply.json["service"]["disabled_reason"], Value::Null);
}

async fn aggregates_and_zones(env: &Env) {
    let reply = env
        .compute(
            &env.member,
            Method::POST,
            "os-aggregates",
            "2.1",
            json!({"aggregate": {"name": "agg"}}),
        )
        .await;
    assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");
    let reply = env
        .compute(
            &env.admin,
            Method::POST,
            "os-aggregates",
            "2.1",
            json!({"aggregate": {"name": "agg-a", "availability_zone": "zone-a"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let created = reply.json["aggregate"].clone();
    assert_eq!(created["availability_zone"], "zone-a");
    assert!(
        created.get("hosts").is_none() && created.get("uuid").is_none(),
        "{created}"
    );
    let a = created["id"].as_i64().expect("id");
    let reply = env
        .compute(
            &env.admin,
            Method::POST,
            "os-aggregates",
            "2.41",
            json!({"aggregate": {"name": "agg-a"}}),
        )
        .await;
    assert_fault(&reply, StatusCode::CONFLICT, "conflictingRequest");
    let reply = env
        .compute(
            &env.admin,
            Method::POST,
            "os-aggregates",
            "2.41",
            json!({"aggregate": {"name": "agg-b", "availability_zone": "zone-b"}}),
        )
        .await;
    assert!(
        reply.json["aggregate"]["uuid"].is_string(),
        "{}",
        reply.json
    );
    let b = reply.json["aggregate"]["id"].as_i64().expect("id");
    let reply = env
        .compute(
            &env.admin,
            Method::POST,
            "os-aggregates",
            "2.1",
            json!({"aggregate": {"name": "x", "bogus": 1}}),
        )
        .await;
    assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");

    let action = |id: i64, body: Value| async move {
        env.compute(
            &env.admin,
            Method::POST,
            &format!("os-aggregates/{id}/action"),
            "2.41",
            body,
        )
        .await
    };
    let reply = action(a, json!({"add_host": {"host": "alpha"}})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["aggregate"]["hosts"], json!(["alpha"]));
    let reply = action(a, json!({"add_host": {"host": "alpha"}})).await;
    assert_fault(&reply, StatusCode::CONFLICT, "conflictingRequest");
    let reply = action(a, json!({"add_host": {"host": "ghost"}})).await;
    assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
    // alpha is in zone-a: it cannot join zone-b.
    let reply = action(b, json!({"add_host": {"host": "alpha"}})).await;
    assert_fault(&reply, StatusCode::CONFLICT, "conflictingRequest");
    let reply = action(
        a,
        json!({"set_metadata": {"metadata": {"ssd": "true", "gone": null}}}),
    )
    .await;
    assert_eq!(
        reply.json["aggregate"]["metadata"],
        json!({"availability_zone": "zone-a", "ssd": "true"})
    );
    let reply = action(a, json!({"explode": {}})).await;
    assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");

    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-aggregates/abc",
            "2.1",
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-aggregates/999",
            "2.1",
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            &format!("os-aggregates/{a}"),
            "2.1",
            Value::Null,
        )
        .await;
    assert_eq!(reply.json["aggregate"]["hosts"], json!(["alpha"]));
    assert!(reply.json["aggregate"].get("uuid").is_none());
    let reply = env
        .compute(
            &env.admin,
            Method::PUT,
            &format!("os-aggregates/{a}"),
            "2.1",
            json!({"aggregate": {"name": "agg-a2"}}),
        )
        .await;
    assert_eq!(reply.json["aggregate"]["name"], "agg-a2");
    let reply = env
        .compute(
            &env.admin,
            Method::DELETE,
            &format!("os-aggregates/{a}"),
            "2.1",
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");

    // Zones: zone-a (alpha), and the default zone for beta.
    let reply = env
        .compute(
            &env.member,
            Method::GET,
            "os-availability-zone",
            "2.1",
            Value::Null,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let names: Vec<&str> = reply.json["availabilityZoneInfo"]
        .as_array()
        .map(|zones| {
            zones
                .iter()
                .filter_map(|z| z["zoneName"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(names, ["nova", "zone-a"]);
    assert_eq!(reply.json["availabilityZoneInfo"][1]["hosts"], Value::Null);
    let reply = env
        .compute(
            &env.member,
            Method::GET,
            "os-availability-zone/detail",
            "2.1",
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-availability-zone/detail",
            "2.1",
            Value::Null,
        )
        .await;
    let zone_a = &reply.json["availabilityZoneInfo"][1];
    assert_eq!(zone_a["zoneName"], "zone-a");
    assert_eq!(zone_a["hosts"]["alpha"]["nova-compute"]["available"], true);
    assert_eq!(zone_a["hosts"]["alpha"]["nova-compute"]["active"], true);

    // The scheduler sees the zone: a server asking for zone-a lands on alpha,
    // one asking for an unknown zone is refused.
    let image = env.image(&env.member, "zoned", json!({})).await;
    let reply = env
        .create_server(
            &env.member,
            json!({"name": "in-a", "imageRef": image, "flavorRef": "1", "networks": "none", "availability_zone": "zone-a"}),
            Value::Null,
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
    let server = env
        .placed(reply.json["server"]["id"].as_str().expect("id"))
        .await;
    assert_eq!(server["OS-EXT-SRV-ATTR:host"], "alpha", "{server}");
    assert_eq!(server["OS-EXT-AZ:availability_zone"], "zone-a", "{server}");
    let reply = env
        .create_server(
            &env.member,
            json!({"name": "nowhere", "imageRef": image, "flavorRef": "1", "networks": "none", "availability_zone": "zone-q"}),
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");

    let reply = action(a, json!({"remove_host": {"host": "alpha"}})).await;
    assert_eq!(reply.json["aggregate"]["hosts"], json!([]));
    let reply = action(a, json!({"remove_host": {"host": "alpha"}})).await;
    assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
    let reply = env
        .compute(
            &env.admin,
            Method::DELETE,
            &format!("os-aggregates/{a}"),
            "2.1",
            Value::Null,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let reply = env
        .compute(&env.admin, Method::GET, "os-aggregates", "2.1", Value::Null)
        .await;
    assert_eq!(reply.json["aggregates"].as_array().map(Vec::len), Some(1));
}

async fn server_groups(env: &Env) {
    let reply = env
        .compute(
            &env.member,
            Method::POST,
            "os-server-groups",
            "2.1",
            json!({"server_group": {"name": "g1", "policies": ["anti-affinity"]}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(
        keys(&reply.json["server_group"]),
        ["id", "members", "metadata", "name", "policies"]
    );
    let g1 = reply.json["server_group"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let reply = env
        .compute(
            &env.member,
            Method::POST,
            "os-server-groups",
            "2.1",
            json!({"server_group": {"name": "g", "policies": ["soft-affinity"]}}),
        )
        .await;
    assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
    let reply = env
        .compute(
            &env.member,
            Method::POST,
            "os-server-groups",
            "2.64",
            json!({"server_group": {"name": "g", "policy": "affinity", "rules": {"max_server_per_host": 2}}}),
        )
        .await;
    assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
    let reply = env
        .compute(
            &env.member,
            Method::POST,
            "os-server-groups",
            "2.64",
            json!({"server_group": {"name": "g2", "policy": "anti-affinity", "rules": {"max_server_per_host": 2}}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(
        keys(&reply.json["server_group"]),
        [
            "id",
            "members",
            "name",
            "policy",
            "project_id",
            "rules",
            "user_id"
        ]
    );
    assert_eq!(
        reply.json["server_group"]["rules"]["max_server_per_host"],
        2
    );
    let g2 = reply.json["server_group"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let reply = env
        .compute(
            &env.reader,
            Method::POST,
            "os-server-groups",
            "2.64",
            json!({"server_group": {"name": "r", "policy": "affinity"}}),
        )
        .await;
    assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");

    // Quota: one more group is over a limit of 2, in the create transaction.
    let reply = env
        .compute(
            &env.admin,
            Method::PUT,
            &format!("os-quota-sets/{}", env.member.project_id),
            "2.1",
            json!({"quota_set": {"server_groups": 2}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let reply = env
        .compute(
            &env.member,
            Method::POST,
            "os-server-groups",
            "2.64",
            json!({"server_group": {"name": "g3", "policy": "affinity"}}),
        )
        .await;
    assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");

    // Visibility: own project; all_projects for admins only.
    let reply = env
        .compute(
            &env.other,
            Method::GET,
            &format!("os-server-groups/{g1}"),
            "2.1",
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
    let reply = env
        .compute(
            &env.other,
            Method::GET,
            "os-server-groups",
            "2.1",
            Value::Null,
        )
        .await;
    assert_eq!(reply.json["server_groups"], json!([]));
    let reply = env
        .compute(
            &env.other,
            Method::GET,
            "os-server-groups?all_projects=True",
            "2.1",
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");
    let reply = env
        .compute(
            &env.admin,
            Method::GET,
            "os-server-groups?all_projects=True",
            "2.13",
            Value::Null,
        )
        .await;
    assert_eq!(
        reply.json["server_groups"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        reply.json["server_groups"][0]["project_id"],
        json!(env.member.project_id)
    );
    let reply = env
        .compute(
            &env.reader,
            Method::GET,
            "os-server-groups?limit=1&offset=1",
            "2.1",
            Value::Null,
        )
        .await;
    assert_eq!(reply.json["server_groups"][0]["id"], json!(g2));

    // Anti-affinity spreads members; a third member finds no host.
    let image = env.image(&env.member, "grouped", json!({})).await;
    let mut hosts = Vec::new();
    for name in ["spread-1", "spread-2", "spread-3"] {
        let reply = env
            .create_server(
                &env.member,
                json!({"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}),
                json!({"group": g1}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
        let server = env
            .placed(reply.json["server"]["id"].as_str().expect("id"))
            .await;
        hosts.push(server["OS-EXT-SRV-ATTR:host"].clone());
        if name == "spread-3" {
            assert_eq!(server["status"], "ERROR", "{server}");
            assert!(
                server["fault"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("No valid host")),
                "{server}"
            );
        }
    }
    assert_ne!(hosts[0], hosts[1], "{hosts:?}");
    assert!(hosts[0].is_string() && hosts[1].is_string(), "{hosts:?}");
    let reply = env
        .compute(
            &env.member,
            Method::GET,
            &format!("os-server-groups/{g1}"),
            "2.1",
            Value::Null,
        )
        .await;
    assert_eq!(
        reply.json["server_group"]["members"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    // An unknown group is refused at create.
    let reply = env
        .create_server(
            &env.member,
            json!({"name": "lost", "imageRef": image, "flavorRef": "1", "networks": "none"}),
            json!({"group": uuid::Uuid::new_v4().to_string()}),
        )
        .await;
    assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");

    let reply = env
        .compute(
            &env.other,
            Method::DELETE,
            &format!("os-server-groups/{g2}"),
            "2.1",
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
    let reply = env
        .compute(
            &env.member,
            Method::DELETE,
            &format!("os-server-groups/{g2}"),
            "2.1",
            Value::Null,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
}

const IMPORTED: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDx8nkQv/zgGgB4rMYmIf+6A4l6Rr+o/6lHBQdW5aYd44bd8JttDCE/F/pNRr0lRE+PiqSPO8nDPHw0010JeMH9gYgnnFlyY3/OcJ02RhIPyyxYpv9FhY+2YiUkpwFOcLImyrxEsYXpD/0d3ac30bNH6Sw9JD9UZHYcpSxsIbECHw== Generated-by-Nova";
const IMPORTED_FINGERPRINT: &str = "1e:2c:9b:56:79:4b:45:77:f9:ca:7a:98:2c:b0:d5:3c";
const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----
MIIBPTCB8KADAgECAhM9kyfVcRr37tGkCwFEqB8teIQ6MAUGAytlcDAVMRMwEQYD
VQQDDApub3Z1bS10ZXN0MB4XDTI2MTEyMTIzMDAxMloXDTM2MTExODIzMDAxMlow
FTETMBEGA1UEAwwKbm92dW0tdGVzdDAqMAUGAytlcAMhABTw8GzhFO+3VQiazIP2
vmdwo9MPn5SvJpPb4z6nMaV2o1MwUTAdBgNVHQ4EFgQUnvNKesGIksCMdGsjgIWP
SpafX34wHwYDVR0jBBgwFoAUnvNKesGIksCMdGsjgIWPSpafX34wDwYDVR0TAQH/
BAUwAwEB/zAFBgMrZXADQQDozqAJ9hoWs3A4ueOo9Q6DQWujaaMCsGih4ALod8op
FZO3S3C6SsmueadjZm67yM1JmwioVpzn3u9OHkQkS0kB
-----END CERTIFICATE-----
";
/// `openssl x509 -noout -fingerprint -sha1` of [`CERTIFICATE`].
const CERTIFICATE_FINGERPRINT: &str = "62:62:66:ee:54:e5:1a:fe:2a:b7:8b:63:e1:71:34:ce:0f:f2:81:d8";

async fn keypairs(env: &Env) {
    // Generated at 2.1: 200 with the private key, no type.
    let reply = env
        .compute(
            &env.member,
            Method::POST,
            "os-keypairs",
            "2.1",
            json!({"keypair": {"name": "gen"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let generated = reply.json["keypair"].clone();
    assert!(
        generated["private_key"]
            .as_str()
            .is_some_and(|k| k.contains("PRIVATE KEY")),
        "{generated}"
    );
    assert!(generated.get("type").is_none());
    assert_eq!(generated["user_id"], json!(env.member.user_id));
    // Imported at 2.2: 201 with type, Nova's fingerprint.
    let reply = env
        .compute(
            &env.member,
            Method::POST,
            "os-keypairs",
            "2.2",
            json!({"keypair": {"name": "imported", "public_key": IMPORTED}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    assert_eq!(reply.json["keypair"]["fingerprint"], IMPORTED_FINGERPRINT);
    assert_eq!(reply.json["keypair"]["type"], "ssh");
    assert!(reply.json["keypair"].get("private_key").is_none());
    let reply = env
        .compute(
            &env.member,
            Method::POST,
            "os-keypairs",
            "2.2",
            json!({"keypair": {"name": "cert", "type": "x509", "public_key": CERTIFICATE}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    assert_eq!(
        reply.json["keypair"]["fingerprint"],
        CERTIFICATE_FINGERPRINT
    );
    for (body, version, status, fault) in [
        (
            json!({"keypair": {"name": "imported", "public_key": IMPORTED}}),
            "2.2",
            StatusCode::CONFLICT,
            "conflictingRequest",
        ),
        (
            json!({"keypair": {"name": "bad", "public_key": "ssh-rsa bogus"}}),
            "2.2",
            StatusCode::BAD_REQUEST,
            "badRequest",
        ),
        (
            json!({"keypair": {"name": "bad$name"}}),
            "2.2",
            StatusCode::BAD_REQUEST,
            "badRequest",
        ),
        (
            json!({"keypair": {"name": "typed", "type": "x509"}}),
            "2.1",
            StatusCode::BAD_REQUEST,
            "badRequest",
        ),
        (
            json!({"keypair": {"name": "nokey"}}),
            "2.92",
            StatusCode::BAD_REQUEST,
            "badRequest",
        ),
        (
            json!({"keypair": {"name": "theirs", "user_id": env.other.user_id}}),
            "2.10",
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ] {
        let reply = env
            .compute(
                &env.member,
                Method::POST,
                "os-keypairs",
                version,
                body.clone(),
            )
            .await;
        assert_fault(&reply, status, fault);
    }
    // An admin creates one for another user (2.10).
    let reply = env
        .compute(
            &env.admin,
            Method::POST,
            "os-keypairs",
            "2.10",
            json!({"keypair": {"name": "for-bob", "user_id": env.other.user_id, "public_key": IMPORTED}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    assert_eq!(reply.json["keypair"]["user_id"], json!(env.other.user_id));
    let reply = env
        .compute(
            &env.other,
            Method::GET,
            "os-keypairs/for-bob",
            "2.2",
            Value::Null,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let reply = env
        .compute(
            &env.member,
            Method::GET,
            &format!("os-keypairs?user_id={}", env.other.user_id),
            "2.10",
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");

    // List and show shapes; paging from 2.35.
    let reply = env
        .compute(&env.member, Method::GET, "os-keypairs", "2.2", Value::Null)
        .await;
    let list = reply.json["keypairs"].as_array().expect("list").clone();
    assert_eq!(list.len(), 3);
    assert_eq!(
        keys(&list[0]["keypair"]),
        ["fingerprint", "name", "public_key", "type"]
    );
    let reply = env
        .compute(
            &env.member,
            Method::GET,
            "os-keypairs?limit=1",
            "2.35",
            Value::Null,
        )
        .await;
    assert_eq!(reply.json["keypairs"].as_array().map(Vec::len), Some(1));
    assert!(reply.json["keypairs_links"].is_array(), "{}", reply.json);
    let reply = env
        .compute(
            &env.member,
            Method::GET,
            "os-keypairs/imported",
            "2.1",
            Value::Null,
        )
        .await;
    assert_eq!(
        keys(&reply.json["keypair"]),
        [
            "created_at",
            "deleted",
            "deleted_at",
            "fingerprint",
            "id",
            "name",
            "public_key",
            "updated_at",
            "user_id"
        ]
    );
    let reply = env
        .compute(
            &env.other,
            Method::GET,
            "os-keypairs/imported",
            "2.1",
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");

    // key_name on server create resolves the caller's key pair.
    let image = env.image(&env.member, "keyed", json!({})).await;
    let reply = env
        .create_server(
            &env.member,
            json!({"name": "keyed", "imageRef": image, "flavorRef": "1", "networks": "none", "key_name": "imported"}),
            Value::Null,
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
    let server = env
        .placed(reply.json["server"]["id"].as_str().expect("id"))
        .await;
    assert_eq!(server["key_name"], "imported");
    let reply = env
        .create_server(
            &env.member,
            json!({"name": "keyed", "imageRef": image, "flavorRef": "1", "networks": "none", "key_name": "for-bob"}),
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");

    // Quota: key pairs are limited per user, checked in the create transaction.
    let reply = env
        .compute(
            &env.admin,
            Method::PUT,
            &format!("os-quota-sets/{}", env.member.project_id),
            "2.1",
            json!({"quota_set": {"key_pairs": 3}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let reply = env
        .compute(
            &env.member,
            Method::POST,
            "os-keypairs",
            "2.2",
            json!({"keypair": {"name": "fourth", "public_key": IMPORTED}}),
        )
        .await;
    assert_fault(&reply, StatusCode::FORBIDDEN, "forbidden");

    let reply = env
        .compute(
            &env.member,
            Method::DELETE,
            "os-keypairs/gen",
            "2.1",
            Value::Null,
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let reply = env
        .compute(
            &env.member,
            Method::DELETE,
            "os-keypairs/cert",
            "2.2",
            Value::Null,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = env
        .compute(
            &env.member,
            Method::DELETE,
            "os-keypairs/cert",
            "2.2",
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::NOT_FOUND, "itemNotFound");
}

async fn boot_images(env: &Env) {
    // Unknown and other projects' private images are a 400 at create.
    let reply = env
        .create_server(
            &env.member,
            json!({"name": "x", "imageRef": uuid::Uuid::new_v4().to_string(), "flavorRef": "1", "networks": "none"}),
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
    let private = env.image(&env.other, "bobs", json!({})).await;
    let reply = env
        .create_server(
            &env.member,
            json!({"name": "x", "imageRef": private, "flavorRef": "1", "networks": "none"}),
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");
    let big = env
        .image(&env.member, "big", json!({"min_ram": 4096}))
        .await;
    let reply = env
        .create_server(
            &env.member,
            json!({"name": "x", "imageRef": big, "flavorRef": "1", "networks": "none"}),
            Value::Null,
        )
        .await;
    assert_fault(&reply, StatusCode::BAD_REQUEST, "badRequest");

    // Image properties reach the scheduler: no host runs ppc64 guests; x86_64 ones boot.
    let ppc = env
        .image(&env.member, "ppc", json!({"hw_architecture": "ppc64"}))
        .await;
    let reply = env
        .create_server(
            &env.member,
            json!({"name": "ppc", "imageRef": ppc, "flavorRef": "1", "networks": "none"}),
            Value::Null,
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
    let server = env
        .placed(reply.json["server"]["id"].as_str().expect("id"))
        .await;
    assert_eq!(server["status"], "ERROR", "{server}");
    assert!(
        server["fault"]["details"]
            .as_str()
            .is_some_and(|details| details.contains("image-properties")),
        "{server}"
    );
    let x86 = env
        .image(&env.member, "x86", json!({"hw_architecture": "x86_64"}))
        .await;
    // Boot from a block device mapping of the image.
    let reply = env
        .create_server(
            &env.member,
            json!({"name": "bdm", "flavorRef": "1", "networks": "none", "block_device_mapping_v2": [
                {"source_type": "image", "destination_type": "local", "boot_index": 0, "uuid": x86}
            ]}),
            Value::Null,
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
    let server = env
        .placed(reply.json["server"]["id"].as_str().expect("id"))
        .await;
    assert!(server["OS-EXT-SRV-ATTR:host"].is_string(), "{server}");
    assert_eq!(server["image"]["id"], json!(x86));
}

#[tokio::test]
async fn compute_admin_resources() {
    for backend in backends().await {
        let env = env(&backend).await;
        hypervisors(&env).await;
        services(&env).await;
        aggregates_and_zones(&env).await;
        server_groups(&env).await;
        keypairs(&env).await;
        boot_images(&env).await;
        eprintln!("[{}] compute admin resources: ok", backend.name);
    }
}
