//! The quota API and the server-create race over real HTTP: the real router
//! served on 127.0.0.1:0, real Keystone tokens from the identity API, the
//! embedded compute agents (libvirt test driver) building what is created.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::http_cloud;
use http_cloud::{Cloud, server};

fn keys(body: &Value) -> Vec<String> {
    let mut keys: Vec<String> = body
        .as_object()
        .map(|object| object.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_sets_classes_and_limits_over_http() {
    let cloud = Cloud::start(|config| config.agent.embedded = false).await;
    let admin = cloud.admin.clone();
    let (project, user, member) = cloud.tenant("quota-p1", "alice", "member").await;
    let (other, _, outsider) = cloud.tenant("quota-p2", "bob", "reader").await;
    let path = format!("/os-quota-sets/{project}");

    // Show: shapes per microversion, members read their own.
    let (status, body) = cloud
        .compute(&member, Method::GET, &path, None, "2.1")
        .await;
    assert_eq!(status, 200, "{body}");
    let set = &body["quota_set"];
    assert_eq!(set["id"], project.as_str());
    assert_eq!(
        (
            set["instances"].as_i64(),
            set["cores"].as_i64(),
            set["ram"].as_i64()
        ),
        (Some(10), Some(20), Some(51200))
    );
    assert_eq!(
        (set["floating_ips"].as_i64(), set["injected_files"].as_i64()),
        (Some(-1), Some(5))
    );
    assert_eq!(keys(set).len(), 15);
    let (_, body) = cloud
        .compute(&member, Method::GET, &path, None, "2.36")
        .await;
    assert!(
        body["quota_set"].get("floating_ips").is_none()
            && body["quota_set"].get("injected_files").is_some()
    );
    let (_, body) = cloud
        .compute(&member, Method::GET, &path, None, "2.57")
        .await;
    assert_eq!(
        keys(&body["quota_set"]),
        [
            "cores",
            "id",
            "instances",
            "key_pairs",
            "metadata_items",
            "ram",
            "server_group_members",
            "server_groups"
        ]
    );
    let (status, body) = cloud
        .compute(&outsider, Method::GET, &path, None, "2.57")
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["forbidden"]["message"],
        "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed."
    );
    let (status, _) = cloud
        .compute(
            &outsider,
            Method::GET,
            &format!("{path}/detail"),
            None,
            "2.57",
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = cloud
        .compute(
            &admin,
            Method::GET,
            "/os-quota-sets/no-such-project",
            None,
            "2.57",
        )
        .await;
    assert_eq!(
        (status, body["badRequest"]["message"].as_str()),
        (
            400,
            Some("Project ID no-such-project is not a valid project.")
        )
    );

    // Update: admin only; the CLI sends 2.56; no id in the answer.
    let update = |value: Value| Some(json!({"quota_set": value}));
    let (status, _) = cloud
        .compute(
            &member,
            Method::PUT,
            &path,
            update(json!({"instances": 20})),
            "2.56",
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = cloud
        .compute(
            &admin,
            Method::PUT,
            &path,
            update(json!({"instances": 20, "cores": "40"})),
            "2.56",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["quota_set"].get("id").is_none());
    assert_eq!(
        (
            body["quota_set"]["instances"].as_i64(),
            body["quota_set"]["cores"].as_i64()
        ),
        (Some(20), Some(40))
    );
    assert_eq!(body["quota_set"]["injected_files"], 5);
    for (bad, version) in [
        (json!({"injected_files": 3}), "2.57"),
        (json!({"floating_ips": 3}), "2.36"),
        (json!({"instances": -2}), "2.57"),
        (json!({"instances": "ten"}), "2.57"),
        (json!({"instances": 2147483648_i64}), "2.57"),
        (json!({"networks": 1}), "2.1"),
        (json!({"force": "maybe"}), "2.57"),
    ] {
        let (status, body) = cloud
            .compute(&admin, Method::PUT, &path, update(bad.clone()), version)
            .await;
        assert_eq!(status, 400, "{bad} at {version}: {body}");
    }
    let (status, _) = cloud
        .compute(
            &admin,
            Method::PUT,
            &path,
            Some(json!({"quota": {"instances": 1}})),
            "2.57",
        )
        .await;
    assert_eq!(status, 400);
    let (_, body) = cloud
        .compute(
            &member,
            Method::GET,
            &format!("{path}/defaults"),
            None,
            "2.57",
        )
        .await;
    assert_eq!(
        (
            body["quota_set"]["id"].as_str(),
            body["quota_set"]["instances"].as_i64()
        ),
        (Some(project.as_str()), Some(10))
    );

    // The default class changes the defaults of every project without rows.
    let (status, _) = cloud
        .compute(
            &member,
            Method::GET,
            "/os-quota-class-sets/default",
            None,
            "2.57",
        )
        .await;
    assert_eq!(status, 403);
    let (_, body) = cloud
        .compute(
            &admin,
            Method::GET,
            "/os-quota-class-sets/default",
            None,
            "2.1",
        )
        .await;
    assert_eq!(body["quota_class_set"]["id"], "default");
    assert!(
        body["quota_class_set"].get("server_groups").is_none()
            && body["quota_class_set"].get("floating_ips").is_some()
    );
    let (status, body) = cloud
        .compute(
            &admin,
            Method::PUT,
            "/os-quota-class-sets/default",
            Some(json!({"quota_class_set": {"cores": 30, "server_groups": 7}})),
            "2.57",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["quota_class_set"]["cores"].as_i64(),
            body["quota_class_set"]["server_groups"].as_i64()
        ),
        (Some(30), Some(7))
    );
    assert!(body["quota_class_set"].get("id").is_none());
    let (_, body) = cloud
        .compute(
            &admin,
            Method::GET,
            &format!("/os-quota-sets/{other}"),
            None,
            "2.57",
        )
        .await;
    assert_eq!(
        (
            body["quota_set"]["cores"].as_i64(),
            body["quota_set"]["instances"].as_i64()
        ),
        (Some(30), Some(10))
    );
    let (_, body) = cloud
        .compute(
            &admin,
            Method::GET,
            &format!("/os-quota-sets/{other}/defaults"),
            None,
            "2.57",
        )
        .await;
    assert_eq!(body["quota_set"]["cores"], 30);
    let (_, body) = cloud
        .compute(&admin, Method::GET, &path, None, "2.57")
        .await;
    assert_eq!(
        body["quota_set"]["cores"], 40,
        "the project's row wins over the class"
    );

    // Usage: two servers (m1.tiny: 1 vCPU, 512 MiB).
    for name in ["a", "b"] {
        let (status, body) = cloud
            .compute(
                &member,
                Method::POST,
                "/servers",
                Some(server(name, "1")),
                "2.57",
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, body) = cloud
        .compute(
            &member,
            Method::GET,
            &format!("{path}/detail"),
            None,
            "2.57",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["quota_set"]["instances"],
        json!({"in_use": 2, "limit": 20, "reserved": 0})
    );
    assert_eq!(
        body["quota_set"]["cores"],
        json!({"in_use": 2, "limit": 40, "reserved": 0})
    );
    assert_eq!(
        body["quota_set"]["ram"],
        json!({"in_use": 1024, "limit": 51200, "reserved": 0})
    );
    assert_eq!(body["quota_set"]["id"], project.as_str());

    // force: without it a limit below usage is refused.
    let (status, body) = cloud
        .compute(
            &admin,
            Method::PUT,
            &path,
            update(json!({"instances": 1})),
            "2.56",
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["badRequest"]["message"],
        "Quota limit 1 for instances must be greater than or equal to already used and reserved 2."
    );
    let (status, body) = cloud
        .compute(
            &admin,
            Method::PUT,
            &path,
            update(json!({"instances": 1, "force": true})),
            "2.56",
        )
        .await;
    assert_eq!(
        (status, body["quota_set"]["instances"].as_i64()),
        (200, Some(1)),
        "{body}"
    );
    let (status, body) = cloud
        .compute(
            &member,
            Method::POST,
            "/servers",
            Some(server("c", "1")),
            "2.57",
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["forbidden"]["message"],
        "Quota exceeded for instances: Requested 1, but already used 2 of 1 instances"
    );

    // Per-user limits.
    let (status, _) = cloud
        .compute(
            &admin,
            Method::PUT,
            &path,
            update(json!({"instances": 10, "force": true})),
            "2.56",
        )
        .await;
    assert_eq!(status, 200);
    let user_path = format!("{path}?user_id={user}");
    let (status, body) = cloud
        .compute(
            &admin,
            Method::PUT,
            &user_path,
            update(json!({"instances": 11})),
            "2.56",
        )
        .await;
    assert_eq!(status, 400, "above the project's limit: {body}");
    assert_eq!(
        body["badRequest"]["message"],
        "Quota limit 11 for instances must be less than or equal to 10."
    );
    let (status, _) = cloud
        .compute(
            &admin,
            Method::PUT,
            &user_path,
            update(json!({"instances": 1})),
            "2.56",
        )
        .await;
    assert_eq!(status, 400, "below the user's usage");
    let (status, body) = cloud
        .compute(
            &admin,
            Method::PUT,
            &user_path,
            update(json!({"instances": 3})),
            "2.56",
        )
        .await;
    assert_eq!(
        (status, body["quota_set"]["instances"].as_i64()),
        (200, Some(3)),
        "{body}"
    );
    let (_, body) = cloud
        .compute(&member, Method::GET, &user_path, None, "2.57")
        .await;
    assert_eq!(body["quota_set"]["instances"], 3);
    let (_, body) = cloud
        .compute(&member, Method::GET, &path, None, "2.57")
        .await;
    assert_eq!(body["quota_set"]["instances"], 10);
    let (status, _) = cloud
        .compute(
            &member,
            Method::POST,
            "/servers",
            Some(server("c", "1")),
            "2.57",
        )
        .await;
    assert_eq!(status, 202);
    let (status, body) = cloud
        .compute(
            &member,
            Method::POST,
            "/servers",
            Some(server("d", "1")),
            "2.57",
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        body["forbidden"]["message"],
        "Quota exceeded for instances: Requested 1, but already used 3 of 3 instances"
    );

    // min_count/max_count: as many as fit.
    let (status, _) = cloud
        .compute(&admin, Method::DELETE, &user_path, None, "2.57")
        .await;
    assert_eq!(status, 202);
    let (status, _) = cloud
        .compute(
            &admin,
            Method::PUT,
            &path,
            update(json!({"instances": 5})),
            "2.56",
        )
        .await;
    assert_eq!(status, 200);
    let many = json!({"server": {"name": "many", "imageRef": http_cloud::IMAGE, "flavorRef": "1", "networks": "none", "min_count": 1, "max_count": 4, "return_reservation_id": true}});
    let (status, body) = cloud
        .compute(&member, Method::POST, "/servers", Some(many), "2.57")
        .await;
    assert_eq!(status, 202, "{body}");
    let (_, body) = cloud
        .compute(
            &member,
            Method::GET,
            &format!("{path}/detail"),
            None,
            "2.57",
        )
        .await;
    assert_eq!(
        body["quota_set"]["instances"]["in_use"], 5,
        "2 of the 4 fit"
    );

    // Limits.
    let (status, body) = cloud
        .compute(&member, Method::GET, "/limits", None, "2.1")
        .await;
    assert_eq!(status, 200, "{body}");
    let absolute = &body["limits"]["absolute"];
    assert_eq!(body["limits"]["rate"], json!([]));
    assert_eq!(
        (
            absolute["maxTotalInstances"].as_i64(),
            absolute["totalInstancesUsed"].as_i64()
        ),
        (Some(5), Some(5))
    );
    assert_eq!(
        (
            absolute["maxTotalCores"].as_i64(),
            absolute["totalCoresUsed"].as_i64()
        ),
        (Some(40), Some(5))
    );
    assert_eq!(
        (
            absolute["maxTotalRAMSize"].as_i64(),
            absolute["totalRAMUsed"].as_i64()
        ),
        (Some(51200), Some(2560))
    );
    assert_eq!(
        (
            absolute["maxServerGroups"].as_i64(),
            absolute["totalServerGroupsUsed"].as_i64()
        ),
        (Some(7), Some(0))
    );
    for name in [
        "maxServerMeta",
        "maxImageMeta",
        "maxPersonality",
        "maxPersonalitySize",
        "maxTotalFloatingIps",
        "maxSecurityGroups",
        "totalFloatingIpsUsed",
        "maxTotalKeypairs",
        "maxServerGroupMembers",
    ] {
        assert!(absolute.get(name).is_some(), "{name} at 2.1");
    }
    let (_, body) = cloud
        .compute(&member, Method::GET, "/limits", None, "2.57")
        .await;
    assert_eq!(
        keys(&body["limits"]["absolute"]),
        [
            "maxServerGroupMembers",
            "maxServerGroups",
            "maxServerMeta",
            "maxTotalCores",
            "maxTotalInstances",
            "maxTotalKeypairs",
            "maxTotalRAMSize",
            "totalCoresUsed",
            "totalInstancesUsed",
            "totalRAMUsed",
            "totalServerGroupsUsed"
        ]
    );
    let (status, _) = cloud
        .compute(
            &member,
            Method::GET,
            &format!("/limits?tenant_id={other}"),
            None,
            "2.57",
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = cloud
        .compute(
            &admin,
            Method::GET,
            &format!("/limits?tenant_id={project}"),
            None,
            "2.57",
        )
        .await;
    assert_eq!(
        (
            status,
            body["limits"]["absolute"]["totalInstancesUsed"].as_i64()
        ),
        (200, Some(5))
    );

    // Delete: back to the class and configuration.
    let (status, _) = cloud
        .compute(&member, Method::DELETE, &path, None, "2.57")
        .await;
    assert_eq!(status, 403);
    let (status, _) = cloud
        .compute(&admin, Method::DELETE, &path, None, "2.57")
        .await;
    assert_eq!(status, 202);
    let (_, body) = cloud
        .compute(&member, Method::GET, &path, None, "2.57")
        .await;
    assert_eq!(
        (
            body["quota_set"]["instances"].as_i64(),
            body["quota_set"]["cores"].as_i64()
        ),
        (Some(10), Some(30))
    );
    cloud.stop().await;
}

/// Which quota the race is about.
#[derive(Clone, Copy, Debug)]
enum Limited {
    /// instances = 100, every request m1.tiny.
    Instances,
    /// cores = 100, requests cycling m1.tiny / m1.medium / m1.large (1, 2, 4 vCPUs).
    Cores,
}

/// 500 concurrent `POST /servers` over real HTTP at a project whose
/// `limited` quota is 100, on SQLite or PostgreSQL, with the default
/// scheduler settings: what is accepted fits the quota exactly (instances:
/// exactly 100; cores: at most 100 and nearly all of it), every denial is a
/// 403 with Nova's message, every accepted server goes ACTIVE (none in
/// ERROR), and usage equals what exists.
async fn five_hundred_concurrent_creates(database_url: Option<String>, limited: Limited) {
    let cloud = Cloud::start(|config| {
        config.database.url = database_url;
        config.agent.embedded = true;
        config.agent.embedded_hosts = 4;
        config.agent.embedded_vcpus = 64;
        config.agent.embedded_memory_mb = 262_144;
        config.agent.embedded_disk_gb = 4000;
    })
    .await;
    cloud.wait_for_hosts(4).await;
    let (project, _, member) = cloud.tenant("race", "racer", "member").await;
    let path = format!("/os-quota-sets/{project}");
    let (quota, flavors, resource): (Value, &[&str], &str) = match limited {
        Limited::Instances => (
            json!({"instances": 100, "cores": -1, "ram": -1}),
            &["1"],
            "instances",
        ),
        Limited::Cores => (
            json!({"instances": -1, "cores": 100, "ram": -1}),
            &["1", "3", "4"],
            "cores",
        ),
    };
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::PUT,
            &path,
            Some(json!({"quota_set": quota})),
            "2.56",
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let started = Instant::now();
    let requests: Vec<_> = (0..500)
        .map(|index| {
            let client = cloud.client.clone();
            let url = format!("{}/compute/v2.1/servers", cloud.base);
            let token = member.clone();
            let flavor = flavors[index % flavors.len()];
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .header("x-auth-token", token)
                    .header("openstack-api-version", "compute 2.57")
                    .json(&server(&format!("race-{index}"), flavor))
                    .send()
                    .await
                    .expect("send");
                let status = response.status().as_u16();
                (
                    status,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            })
        })
        .collect();
    let mut accepted = 0;
    let mut denied = 0;
    for request in requests {
        let (status, body) = request.await.expect("task");
        match status {
            202 => accepted += 1,
            403 => {
                denied += 1;
                let message = body["forbidden"]["message"].as_str().unwrap_or_default();
                assert!(
                    message.starts_with(&format!("Quota exceeded for {resource}: Requested ")),
                    "{message}"
                );
                assert!(
                    message.ends_with(&format!(" of 100 {resource}")),
                    "{message}"
                );
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    println!(
        "{limited:?} on {}: 500 concurrent POST /servers in {:?}: {accepted} accepted, {denied} denied",
        cloud.database_url.split(':').next().unwrap_or("?"),
        started.elapsed()
    );
    assert_eq!(accepted + denied, 500);
    if let Limited::Instances = limited {
        assert_eq!((accepted, denied), (100, 400));
    }

    // Every accepted server builds; none ends in ERROR.
    let deadline = Instant::now() + Duration::from_secs(180);
    let servers = loop {
        let (status, body) = cloud
            .compute(
                &member,
                Method::GET,
                "/servers/detail?limit=1000",
                None,
                "2.57",
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let servers = body["servers"].as_array().cloned().unwrap_or_default();
        assert_eq!(servers.len(), accepted);
        let errors: Vec<&Value> = servers
            .iter()
            .filter(|server| server["status"] == "ERROR")
            .map(|server| &server["fault"]["message"])
            .collect();
        assert!(
            errors.is_empty(),
            "{} servers in ERROR, e.g. {:?}",
            errors.len(),
            errors.first()
        );
        if servers.iter().all(|server| server["status"] == "ACTIVE") {
            break servers;
        }
        assert!(Instant::now() < deadline, "servers still building");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("all {accepted} ACTIVE after {:?}", started.elapsed());
    let cores: u64 = servers
        .iter()
        .map(|server| match server["flavor"]["original_name"].as_str() {
            Some("m1.medium") => 2,
            Some("m1.large") => 4,
            _ => 1,
        })
        .sum();
    let (_, body) = cloud
        .compute(
            &member,
            Method::GET,
            &format!("{path}/detail"),
            None,
            "2.57",
        )
        .await;
    assert_eq!(body["quota_set"]["instances"]["in_use"], accepted);
    assert_eq!(body["quota_set"]["cores"]["in_use"], cores);
    if let Limited::Cores = limited {
        assert!((97..=100).contains(&cores), "{cores} cores committed");
    }
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_creates_instances_sqlite() {
    five_hundred_concurrent_creates(None, Limited::Instances).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_creates_cores_sqlite() {
    five_hundred_concurrent_creates(None, Limited::Cores).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_creates_instances_postgres() {
    if let Some(url) = novum::db::testing::postgres_url().await {
        five_hundred_concurrent_creates(Some(url), Limited::Instances).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_creates_cores_postgres() {
    if let Some(url) = novum::db::testing::postgres_url().await {
        five_hundred_concurrent_creates(Some(url), Limited::Cores).await;
    }
}

/// Personality files (before 2.57) count against injected_files,
/// injected_file_path_bytes and injected_file_content_bytes through the
/// quota policies; 2.57 removed the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn personality_files_are_limited_by_the_injected_file_quotas() {
    let cloud = Cloud::start(|config| config.agent.embedded = false).await;
    let (_, _, member) = cloud.tenant("personal", "writer", "member").await;
    let create = |files: Vec<Value>, version: &'static str| {
        let mut body = server("files", "1");
        body["server"]["personality"] = json!(files);
        if version == "2.1" {
            // `networks: "none"` exists from 2.37 on.
            if let Some(server) = body["server"].as_object_mut() {
                server.remove("networks");
            }
        }
        let cloud = &cloud;
        let member = member.clone();
        async move {
            cloud
                .compute(&member, Method::POST, "/servers", Some(body), version)
                .await
        }
    };
    let file = |path: &str, contents: &str| json!({"path": path, "contents": contents});
    let five: Vec<Value> = (0..5)
        .map(|n| file(&format!("/etc/f{n}"), "aGVsbG8="))
        .collect();
    let (status, body) = create(five.clone(), "2.1").await;
    assert_eq!(status, 202, "five files fit the default of 5: {body}");

    let mut six = five.clone();
    six.push(file("/etc/f5", "aGVsbG8="));
    let (status, body) = create(six, "2.1").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["forbidden"]["message"],
        "Quota exceeded for injected_files: Requested 6, but already used 0 of 5 injected_files"
    );

    let long_path = format!("/{}", "p".repeat(255));
    let (status, body) = create(vec![file(&long_path, "aGVsbG8=")], "2.1").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["forbidden"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Quota exceeded for injected_file_path_bytes: Requested 256"),
        "{body}"
    );

    let (status, body) = create(vec![file("/etc/x", "not base64!")], "2.1").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = create(vec![file("/etc/x", "aGVsbG8=")], "2.57").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["badRequest"]["message"],
        "Additional properties are not allowed ('personality' was unexpected)"
    );
    cloud.stop().await;
}
