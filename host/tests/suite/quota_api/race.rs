//! The server-create race: 500 concurrent `POST /servers` against an
//! instance or a core quota, with the embedded agents building what is
//! accepted, on SQLite and PostgreSQL.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::http_cloud::{Cloud, server};

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
    if let Some(url) = novum_db::testing::postgres_url().await {
        five_hundred_concurrent_creates(Some(url), Limited::Instances).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_creates_cores_postgres() {
    if let Some(url) = novum_db::testing::postgres_url().await {
        five_hundred_concurrent_creates(Some(url), Limited::Cores).await;
    }
}
