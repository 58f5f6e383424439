//! The server-create path takes no global lock (issue 13): a create is
//! serialized with the creates of its own project only (`quota:<project>`),
//! a build's steps with the changes to its own instance
//! (`instance:<uuid>`), and notifications are numbered without a hot row.
//! On PostgreSQL, where lock names are separate locks (SQLite has one
//! writer whatever the name).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::http_cloud::{Cloud, server};
use novum_notify::builders::{InstanceAction, InstanceInfo, RequestContext, instance_action};
use novum_notify::{Phase, Publisher};

/// A controller on a fresh PostgreSQL database with `hosts` embedded
/// hosts, or `None` (reason printed) when no server answers.
async fn postgres_cloud(hosts: u32, vcpus: u32) -> Option<Cloud> {
    let url = novum_db::testing::postgres_url().await?;
    let cloud = Cloud::start(|config| {
        config.database.url = Some(url);
        config.agent.embedded = true;
        config.agent.embedded_hosts = hosts;
        config.agent.embedded_vcpus = vcpus;
        config.agent.embedded_memory_mb = u64::from(vcpus) * 1024;
        config.agent.embedded_disk_gb = u64::from(vcpus) * 10;
    })
    .await;
    cloud.wait_for_hosts(hosts as usize).await;
    Some(cloud)
}

/// A project whose member may create servers without quota limits; its
/// (project id, member token).
async fn unlimited_tenant(cloud: &Cloud, name: &str) -> (String, String) {
    let (project, _, member) = cloud
        .tenant(name, &format!("{name}-member"), "member")
        .await;
    let (status, body) = cloud
        .compute(
            &cloud.admin,
            Method::PUT,
            &format!("/os-quota-sets/{project}"),
            Some(json!({"quota_set": {"instances": -1, "cores": -1, "ram": -1}})),
            "2.56",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (project, member)
}

/// `POST /servers` of one m1.tiny server as `token`: (status, body).
async fn post_server(
    client: reqwest::Client,
    base: String,
    token: String,
    name: String,
) -> (u16, Value) {
    let response = client
        .post(format!("{base}/compute/v2.1/servers"))
        .header("x-auth-token", token)
        .header("openstack-api-version", "compute 2.57")
        .json(&server(&name, "1"))
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn server_id(body: &Value) -> String {
    body["server"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no server id in {body}"))
        .to_string()
}

/// An `instance.create.start` of an instance no one knows.
fn stray_notification() -> novum_notify::Notification {
    instance_action(
        &Publisher::compute("held"),
        &InstanceInfo {
            uuid: uuid::Uuid::new_v4().to_string(),
            vm_state: "building".into(),
            ..InstanceInfo::default()
        },
        InstanceAction::Create,
        Phase::Start,
        &RequestContext::default(),
        None,
    )
}

/// While a transaction holds what a create of project A held before
/// (the global `conductor` lock, A's quota lock, and an emitted, not yet
/// committed notification), a create of project B is accepted and its
/// server built to ACTIVE; A's own create waits for A's quota lock and
/// goes through as soon as it is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creates_of_other_projects_do_not_wait_for_one_project_postgres() {
    let Some(cloud) = postgres_cloud(1, 16).await else {
        return;
    };
    let (project_a, token_a) = unlimited_tenant(&cloud, "held").await;
    let (_, token_b) = unlimited_tenant(&cloud, "free").await;
    let db = novum_db::Db::connect(&cloud.database_url)
        .await
        .expect("db");

    let mut held = db.begin_serialized("conductor").await.expect("conductor");
    db.serialize_in(&mut held, &novum_quota::lock_name(&project_a))
        .await
        .expect("quota lock");
    novum_notify::emit(&mut held, &stray_notification())
        .await
        .expect("emit");

    let started = Instant::now();
    let (status, body) = tokio::time::timeout(
        Duration::from_secs(30),
        post_server(
            cloud.client.clone(),
            cloud.base.clone(),
            token_b.clone(),
            "free-1".into(),
        ),
    )
    .await
    .expect("project B's create waited for project A's transaction");
    assert_eq!(status, 202, "{body}");
    let free = server_id(&body);
    cloud.wait_status(&free, "ACTIVE").await;
    println!(
        "project B: accepted and ACTIVE in {:?} while A's transaction was held",
        started.elapsed()
    );

    let waiting = tokio::spawn(post_server(
        cloud.client.clone(),
        cloud.base.clone(),
        token_a.clone(),
        "held-1".into(),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !waiting.is_finished(),
        "project A's create did not wait for A's quota lock"
    );
    held.commit().await.expect("commit");
    let (status, body) = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("project A's create after the release")
        .expect("task");
    assert_eq!(status, 202, "{body}");
    cloud.wait_status(&server_id(&body), "ACTIVE").await;
    db.close().await;
    cloud.stop().await;
}

/// Creates/s of `projects` × `per_project` concurrent `POST /servers`
/// (`workers` requests in flight per project), every one accepted.
async fn creates_per_second(
    cloud: &Cloud,
    label: &str,
    projects: usize,
    per_project: usize,
    workers: usize,
) -> f64 {
    let mut tokens = Vec::new();
    for index in 0..projects {
        tokens.push(unlimited_tenant(cloud, &format!("{label}-{index}")).await.1);
    }
    let started = Instant::now();
    let mut requests = Vec::new();
    for (project, token) in tokens.iter().enumerate() {
        for worker in 0..workers {
            let (client, base, token) = (cloud.client.clone(), cloud.base.clone(), token.clone());
            let count = per_project / workers + usize::from(worker < per_project % workers);
            requests.push(tokio::spawn(async move {
                for index in 0..count {
                    let name = format!("bench-{project}-{worker}-{index}");
                    let (status, body) =
                        post_server(client.clone(), base.clone(), token.clone(), name).await;
                    assert_eq!(status, 202, "{body}");
                }
            }));
        }
    }
    for request in requests {
        request.await.expect("task");
    }
    let elapsed = started.elapsed();
    let total = projects * per_project;
    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "{label}: {total} creates ({projects} projects x {per_project}, {} in flight) in {elapsed:.2?}: {rate:.0} creates/s",
        projects * workers
    );
    rate
}

/// The benchmark of issue 13's create path: concurrent `POST /servers`
/// over real HTTP on PostgreSQL, 8 embedded hosts building what is
/// accepted, 16 projects × 40 servers with 4 requests in flight per
/// project, then one project × 640 with 64 in flight (its creates
/// serialize on its quota lock, as they must). Run with
/// `cargo test -p novum --test suite bench_concurrent_creates -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: prints creates/s"]
async fn bench_concurrent_creates_postgres() {
    let Some(cloud) = postgres_cloud(8, 512).await else {
        return;
    };
    // Warm up: tokens, plugins, connections.
    creates_per_second(&cloud, "warm-up", 4, 4, 1).await;
    creates_per_second(&cloud, "16 projects", 16, 40, 4).await;
    creates_per_second(&cloud, "1 project", 1, 640, 64).await;
    cloud.stop().await;
}
