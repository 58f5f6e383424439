//! What an agent with nothing new to say costs the controller (issue 13's
//! "cheap agents"), on SQLite and PostgreSQL: heartbeats are written in
//! batches (the service is up after a beat, through the flush), an
//! unchanged inventory writes no compute node while a changed one is
//! written at once, a credential revoked by a registration stops working,
//! an idle poll and an unchanged beat write nothing (they answer while
//! another transaction holds the write locks), and a task queued without
//! waking the board is still delivered within a few seconds. Over real
//! HTTP: the API answers HTTP/2 with prior knowledge, and `/metrics` shows
//! the file-descriptor budget.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use novum_db::Db;
use novum_wire::TaskAction;
use serde_json::Value;
use sqlx::Row;

use crate::api_common::{Backend, backends};
use crate::compute::{Cloud, cloud_on};

/// `services.last_seen_up` of `host`'s compute service.
async fn last_seen_up(db: &Db, host: &str) -> Option<String> {
    sqlx::query(
        "SELECT last_seen_up FROM services WHERE host = $1 AND binary_name = 'nova-compute'",
    )
    .bind(host)
    .fetch_optional(db.pool())
    .await
    .expect("service")
    .and_then(|row| row.try_get("last_seen_up").expect("last_seen_up"))
}

/// (vcpus, updated_at, uptime) of `host`'s compute node.
async fn node(db: &Db, host: &str) -> (i64, String, Option<String>) {
    let row = sqlx::query("SELECT vcpus, updated_at, uptime FROM compute_nodes WHERE host = $1")
        .bind(host)
        .fetch_one(db.pool())
        .await
        .expect("compute node");
    (
        row.try_get("vcpus").expect("vcpus"),
        row.try_get("updated_at").expect("updated_at"),
        row.try_get("uptime").expect("uptime"),
    )
}

/// Makes `host`'s last heartbeat ten minutes old (down).
async fn age_heartbeat(db: &Db, host: &str) {
    let old = novum_db::timestamp(chrono::Utc::now() - chrono::Duration::minutes(10));
    sqlx::query("UPDATE services SET last_seen_up = $1 WHERE host = $2")
        .bind(old)
        .bind(host)
        .execute(db.pool())
        .await
        .expect("age");
}

/// The state (`up`/`down`) `os-services` shows for `host`.
async fn service_state(cloud: &Cloud, host: &str) -> String {
    let (status, body) = cloud
        .call(
            Some("admin"),
            "GET",
            &format!("/compute/v2.1/os-services?host={host}"),
            None,
            Some("2.53"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["services"][0]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn heartbeat_raw(cloud: &Cloud, host: &str, token: &str, body: Value) -> StatusCode {
    cloud
        .rpc(
            token,
            "POST",
            &format!("/rpc/v1/agents/{host}/heartbeat"),
            Some(body),
        )
        .await
        .0
}

/// A heartbeat body: `host`'s test inventory with `vcpus` and `uptime`.
fn beat(host: &str, vcpus: u32, uptime: Option<&str>) -> Value {
    let mut inventory = crate::compute::inventory(host, vcpus, 8192);
    inventory.uptime = uptime.map(str::to_string);
    serde_json::to_value(novum_wire::HeartbeatRequest {
        inventory,
        instances: Vec::new(),
    })
    .expect("json")
}

async fn liveness_and_inventory(backend: &Backend) {
    let cloud = cloud_on(backend).await;
    let db = &cloud.state.db;
    let token = cloud.register("cheap-1", 4, 8192).await;
    let (vcpus, registered_at, _) = node(db, "cheap-1").await;
    assert_eq!(vcpus, 4);

    // Liveness: a beat after a long silence brings the service up, through
    // the background flush (every 2 s at most) without anyone asking.
    cloud.state.agents.flush().await.expect("flush");
    age_heartbeat(db, "cheap-1").await;
    assert_eq!(service_state(&cloud, "cheap-1").await, "down");
    let before = last_seen_up(db, "cheap-1").await;
    assert_eq!(
        heartbeat_raw(&cloud, "cheap-1", &token, beat("cheap-1", 4, None)).await,
        StatusCode::NO_CONTENT
    );
    let deadline = Instant::now() + cloud.state.agents.interval() * 2 + Duration::from_secs(3);
    while last_seen_up(db, "cheap-1").await == before {
        assert!(Instant::now() < deadline, "the beat was never written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(service_state(&cloud, "cheap-1").await, "up");

    // Unchanged inventory, only the uptime line moving: no compute node write.
    tokio::time::sleep(Duration::from_millis(5)).await;
    for minute in 0..5 {
        let uptime = format!(" 10:0{minute}:00 up 1 day");
        assert_eq!(
            heartbeat_raw(&cloud, "cheap-1", &token, beat("cheap-1", 4, Some(&uptime))).await,
            StatusCode::NO_CONTENT
        );
    }
    cloud.state.agents.flush().await.expect("flush");
    let (vcpus, updated_at, _) = node(db, "cheap-1").await;
    assert_eq!(
        (vcpus, updated_at.as_str()),
        (4, registered_at.as_str()),
        "no write"
    );

    // A changed inventory is written at once (no flush).
    assert_eq!(
        heartbeat_raw(
            &cloud,
            "cheap-1",
            &token,
            beat("cheap-1", 6, Some(" 10:09:00 up"))
        )
        .await,
        StatusCode::NO_CONTENT
    );
    let (vcpus, updated_at, uptime) = node(db, "cheap-1").await;
    assert_eq!(vcpus, 6);
    assert_ne!(updated_at, registered_at);
    assert_eq!(uptime.as_deref(), Some(" 10:09:00 up"));

    // A deleted service comes back with the beats that follow.
    let (status, body) = cloud
        .call(
            Some("admin"),
            "GET",
            "/compute/v2.1/os-services?host=cheap-1",
            None,
            Some("2.53"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let id = body["services"][0]["id"].as_str().expect("id").to_string();
    let (status, body) = cloud
        .call(
            Some("admin"),
            "DELETE",
            &format!("/compute/v2.1/os-services/{id}"),
            None,
            Some("2.53"),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for _ in 0..2 {
        assert_eq!(
            heartbeat_raw(&cloud, "cheap-1", &token, beat("cheap-1", 6, None)).await,
            StatusCode::NO_CONTENT
        );
        cloud.state.agents.flush().await.expect("flush");
    }
    assert_eq!(node(db, "cheap-1").await.0, 6, "the node is back");
    assert_eq!(service_state(&cloud, "cheap-1").await, "up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beats_are_batched_and_unchanged_inventory_is_not_written_on_each_backend() {
    for backend in backends().await {
        println!("backend {}", backend.name);
        liveness_and_inventory(&backend).await;
    }
}

async fn revoked_credentials(backend: &Backend) {
    let first = cloud_on(backend).await;
    // A second controller on the same database.
    let second = cloud_on(backend).await;
    let db = &first.state.db;
    let token = first.register("cheap-2", 4, 8192).await;
    assert_eq!(
        heartbeat_raw(&first, "cheap-2", &token, beat("cheap-2", 4, None)).await,
        StatusCode::NO_CONTENT
    );
    // Known to the second controller too (from the database).
    assert_eq!(
        heartbeat_raw(&second, "cheap-2", &token, beat("cheap-2", 4, None)).await,
        StatusCode::NO_CONTENT
    );

    // Down, then registered again on the first controller: the old token
    // stops working there at once, and on the second (which has not
    // trusted it for long) the new one works at once.
    first.state.agents.flush().await.expect("flush");
    second.state.agents.flush().await.expect("flush");
    age_heartbeat(db, "cheap-2").await;
    let renewed = first.register("cheap-2", 4, 8192).await;
    assert_eq!(
        heartbeat_raw(&first, "cheap-2", &token, beat("cheap-2", 4, None)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        first.poll_status("cheap-2", &token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        heartbeat_raw(&first, "cheap-2", &renewed, beat("cheap-2", 4, None)).await,
        StatusCode::NO_CONTENT
    );
    // The second controller checked the old token a moment ago and trusts
    // it until its next refresh of every credential (one read), which
    // drops it.
    assert_eq!(
        heartbeat_raw(&second, "cheap-2", &token, beat("cheap-2", 4, None)).await,
        StatusCode::NO_CONTENT
    );
    second
        .state
        .agents
        .refresh_credentials()
        .await
        .expect("refresh");
    assert_eq!(
        heartbeat_raw(&second, "cheap-2", &token, beat("cheap-2", 4, None)).await,
        StatusCode::UNAUTHORIZED,
        "a replaced credential stops working at the refresh"
    );
    assert_eq!(
        heartbeat_raw(&second, "cheap-2", &renewed, beat("cheap-2", 4, None)).await,
        StatusCode::NO_CONTENT,
        "a fresh credential is never locked out"
    );
    // A refresh keeps trusting a credential that still matches.
    second
        .state
        .agents
        .refresh_credentials()
        .await
        .expect("refresh");
    assert!(
        second
            .state
            .agents
            .token_known("cheap-2", &novum_api::rpc::hash_token(&renewed))
    );
    // A wrong token is always asked of the database, and refused.
    assert_eq!(
        heartbeat_raw(
            &second,
            "cheap-2",
            "not-the-token",
            beat("cheap-2", 4, None)
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_revoked_by_a_registration_stops_working_on_each_backend() {
    for backend in backends().await {
        println!("backend {}", backend.name);
        revoked_credentials(&backend).await;
    }
}

/// Queues a task for `host` straight in the database, waking nobody.
async fn enqueue_unannounced(db: &Db, host: &str) -> String {
    let mut tx = db.begin().await.expect("tx");
    let id = novum_compute::conductor::tasks::enqueue(
        &mut tx,
        host,
        &uuid::Uuid::new_v4().to_string(),
        "op-cheap",
        &TaskAction::Pause,
        "req-cheap",
    )
    .await
    .expect("enqueue");
    tx.commit().await.expect("commit");
    id
}

async fn idle_polls(backend: &Backend) {
    let cloud = cloud_on(backend).await;
    let db = &cloud.state.db;
    let token = cloud.register("cheap-3", 4, 8192).await;
    assert_eq!(
        heartbeat_raw(&cloud, "cheap-3", &token, beat("cheap-3", 4, None)).await,
        StatusCode::NO_CONTENT
    );
    assert!(cloud.poll("cheap-3", &token).await.tasks.is_empty());

    // Another transaction holds the write locks (SQLite's one write lock;
    // on PostgreSQL the tables, and the locks the old heartbeat and lease
    // took): idle polls and unchanged beats still answer, so they write
    // nothing and wait for no lock.
    let mut blocker = db.begin_serialized("services").await.expect("lock");
    if backend.name == "postgres" {
        db.serialize_in(&mut blocker, "tasks:cheap-3")
            .await
            .expect("lock");
        sqlx::query("LOCK TABLE tasks, services, compute_nodes IN EXCLUSIVE MODE")
            .execute(&mut *blocker)
            .await
            .expect("lock tables");
    }
    let idle = async {
        for _ in 0..3 {
            assert!(cloud.poll("cheap-3", &token).await.tasks.is_empty());
            assert_eq!(
                heartbeat_raw(&cloud, "cheap-3", &token, beat("cheap-3", 4, None)).await,
                StatusCode::NO_CONTENT
            );
        }
    };
    tokio::time::timeout(Duration::from_secs(5), idle)
        .await
        .expect("idle polls and beats answer while the write locks are held");
    blocker.rollback().await.expect("rollback");

    // A task queued without waking the board (another controller's, say)
    // reaches a waiting long poll within the sweep interval.
    let queued_at = Instant::now();
    let id = enqueue_unannounced(db, "cheap-3").await;
    let (status, body) = cloud
        .rpc(&token, "GET", "/rpc/v1/agents/cheap-3/tasks?wait=10", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tasks"][0]["id"], id.as_str(), "{body}");
    assert!(
        queued_at.elapsed()
            < novum_compute::conductor::tasks::SWEEP_INTERVAL + Duration::from_secs(2),
        "delivered after {:?}",
        queued_at.elapsed()
    );
    // Leased once; further idle polls leave it alone.
    let offers = |db: Db, id: String| async move {
        sqlx::query("SELECT offers, updated_at FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_one(db.pool())
            .await
            .map(|row| {
                (
                    row.try_get::<i64, _>("offers").expect("offers"),
                    row.try_get::<String, _>("updated_at").expect("updated_at"),
                )
            })
            .expect("task")
    };
    let leased = offers(db.clone(), id.clone()).await;
    assert_eq!(leased.0, 1);
    for _ in 0..3 {
        assert!(cloud.poll("cheap-3", &token).await.tasks.is_empty());
    }
    assert_eq!(offers(db.clone(), id.clone()).await, leased);

    // A task queued on this controller (which wakes the board) is handed
    // out at the next poll, at once.
    let queued = cloud.enqueue_and_wake("cheap-3").await;
    let tasks = cloud.poll("cheap-3", &token).await.tasks;
    assert_eq!(
        tasks
            .iter()
            .map(|task| task.id.to_string())
            .collect::<Vec<_>>(),
        [queued]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_polls_write_nothing_and_queued_tasks_still_arrive_on_each_backend() {
    for backend in backends().await {
        println!("backend {}", backend.name);
        idle_polls(&backend).await;
    }
}

impl Cloud {
    /// The status of a poll of `host`'s tasks with `token`.
    pub(crate) async fn poll_status(&self, host: &str, token: &str) -> StatusCode {
        self.rpc(
            token,
            "GET",
            &format!("/rpc/v1/agents/{host}/tasks?wait=0"),
            None,
        )
        .await
        .0
    }

    /// Queues a task for `host` as the conductor does: committed, then the
    /// board woken.
    pub(crate) async fn enqueue_and_wake(&self, host: &str) -> String {
        let id = enqueue_unannounced(&self.state.db, host).await;
        self.state.conductor.board().wake(host);
        id
    }
}

/// The API over real HTTP answers HTTP/2 with prior knowledge (h2c) as well
/// as HTTP/1.1, and `/metrics` shows the file-descriptor budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_speaks_h2c_and_shows_its_fd_budget() {
    let cloud = crate::http_cloud::Cloud::start(|config| {
        config.agent.embedded = false;
    })
    .await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    // Several requests over the one connection, at once.
    let requests: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(
                h2.get(format!("{}/compute/v2.1/os-services", cloud.base))
                    .header("x-auth-token", &cloud.admin)
                    .send(),
            )
        })
        .collect();
    for request in requests {
        let response = request
            .await
            .expect("request task")
            .expect("an HTTP/2 answer");
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.status().as_u16(), 200);
    }
    // The agent RPC too: an unknown credential is refused in the RPC's shape.
    let response = h2
        .get(format!(
            "{}{}?wait=0",
            cloud.base,
            novum_wire::tasks_path("nobody")
        ))
        .bearer_auth("nothing")
        .send()
        .await
        .expect("rpc over h2");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status().as_u16(), 401);
    // HTTP/1.1 still works.
    let response = reqwest::Client::new()
        .get(format!("{}/metrics", cloud.base))
        .header("x-auth-token", &cloud.admin)
        .send()
        .await
        .expect("http/1.1");
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("scrape");
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    let open = value("novum_process_open_fds");
    let limit = value("novum_process_fd_limit");
    assert!(open >= 3.0, "open fds {open}");
    assert!(limit == 0.0 || limit >= open, "limit {limit}, open {open}");
    cloud.stop().await;
}

/// Times heartbeats of many hosts against the real API (in-process router,
/// SQLite): `cargo test -p novum --test suite -- --ignored --nocapture
/// heartbeat_cost`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn heartbeat_cost() {
    const HOSTS: usize = 1_000;
    const BEATS: usize = 10_000;
    let backend = backends().await.into_iter().next().expect("sqlite");
    let cloud = cloud_on(&backend).await;
    let mut tokens = Vec::with_capacity(HOSTS);
    for index in 0..HOSTS {
        tokens.push(cloud.register(&format!("bench-{index}"), 4, 8192).await);
    }
    let bodies: Vec<Value> = (0..HOSTS)
        .map(|index| beat(&format!("bench-{index}"), 4, None))
        .collect();
    // One round first: what the first beat after a start writes.
    for index in 0..HOSTS {
        heartbeat_raw(
            &cloud,
            &format!("bench-{index}"),
            &tokens[index],
            bodies[index].clone(),
        )
        .await;
    }
    let started = Instant::now();
    for beat in 0..BEATS {
        let index = beat % HOSTS;
        let status = heartbeat_raw(
            &cloud,
            &format!("bench-{index}"),
            &tokens[index],
            bodies[index].clone(),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let beats = started.elapsed();
    let started = Instant::now();
    for poll in 0..BEATS {
        let index = poll % HOSTS;
        assert_eq!(
            cloud
                .poll_status(&format!("bench-{index}"), &tokens[index])
                .await,
            StatusCode::OK
        );
    }
    let polls = started.elapsed();
    // The floor: requests the router answers without the database (a
    // path no route knows).
    let started = Instant::now();
    for _ in 0..BEATS {
        assert_eq!(
            cloud.rpc("none", "GET", "/rpc/v1/nothing", None).await.0,
            StatusCode::NOT_FOUND
        );
    }
    let floor = started.elapsed();
    // Concurrent: 50 agents beating at once.
    let cloud = std::sync::Arc::new(cloud);
    let tokens = std::sync::Arc::new(tokens);
    let bodies = std::sync::Arc::new(bodies);
    let started = Instant::now();
    let workers: Vec<_> = (0..50)
        .map(|worker| {
            let (cloud, tokens, bodies) = (cloud.clone(), tokens.clone(), bodies.clone());
            tokio::spawn(async move {
                for beat in (worker..BEATS).step_by(50) {
                    let index = beat % HOSTS;
                    let status = heartbeat_raw(
                        &cloud,
                        &format!("bench-{index}"),
                        &tokens[index],
                        bodies[index].clone(),
                    )
                    .await;
                    assert_eq!(status, StatusCode::NO_CONTENT);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let concurrent = started.elapsed();
    println!(
        "{BEATS} heartbeats of {HOSTS} hosts: {beats:?} ({:?} a beat); {BEATS} idle polls: {polls:?} ({:?} a poll); \
         floor (a 404 without the database): {:?} a request; 50 concurrent agents: {:?} a beat",
        beats / BEATS as u32,
        polls / BEATS as u32,
        floor / BEATS as u32,
        concurrent / BEATS as u32
    );
}
