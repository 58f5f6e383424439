//! The reads that must not grow with the fleet or the history, timed at
//! scale over the real router and a real SQLite database: a page of
//! servers among 20,000 instances (5 % live in the caller's project, most
//! of the rest deleted), hypervisor statistics and lists over 5,000 compute
//! nodes, and a project's usage. Prints the numbers, asserts only that the
//! answers are right (timings are the benchmark's, not a test's):
//!
//! `cargo test -p novum --test suite list_scale -- --ignored --nocapture`

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use novum_db::Db;
use serde_json::Value;

use crate::api_common::{TestApp, backends};

/// Instances in the database.
const INSTANCES: usize = 20_000;
/// Compute nodes (each with its enabled, up compute service).
const NODES: usize = 5_000;
/// Every `LIVE_EVERY`-th instance is live in the caller's project (5 %).
const LIVE_EVERY: usize = 20;
/// Every `OTHER_LIVE_EVERY`-th of the others is live in another project;
/// the rest are deleted.
const OTHER_LIVE_EVERY: usize = 10;
/// Timed calls per request (the median is printed).
const RUNS: usize = 7;

/// The flavor every seeded instance has, as the instance row stores it.
pub const FLAVOR_JSON: &str = r#"{"id":"1","name":"m1.tiny","vcpus":1,"memory_mb":512,"root_gb":1,"ephemeral_gb":0,"swap":0,"extra_specs":{}}"#;

/// Seeds `INSTANCES` instances: `project` holds every `LIVE_EVERY`-th
/// (live, on hosts `host-N`), other projects hold live and deleted ones.
async fn seed_instances(db: &Db, project: &str, user: &str) {
    let mut tx = db.begin().await.expect("begin");
    let start = chrono::Utc::now() - chrono::Duration::days(30);
    for index in 0..INSTANCES {
        let created = novum_db::timestamp(start + chrono::Duration::seconds(index as i64 * 60));
        let (owner, deleted) = if index % LIVE_EVERY == 0 {
            (project.to_string(), false)
        } else {
            (
                format!("project-{}", index % 97),
                index % OTHER_LIVE_EVERY != 1,
            )
        };
        sqlx::query(
            "INSERT INTO instances (uuid, display_name, project_id, user_id, flavor_id, flavor, vm_state, power_state, \
             host, node, availability_zone, reservation_id, launched_at, terminated_at, created_at, updated_at, \
             deleted_at, deleted, vcpus, memory_mb) \
             VALUES ($1, $2, $3, $4, '1', $5, $6, $7, $8, $8, 'nova', $9, $10, $11, $10, $10, $11, $12, 1, 512)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(format!("vm-{index}"))
        .bind(&owner)
        .bind(user)
        .bind(FLAVOR_JSON)
        .bind(if deleted { "deleted" } else { "active" })
        .bind(if deleted { 0_i64 } else { 1 })
        .bind(format!("host-{}", index % NODES))
        .bind(format!("r-{index}"))
        .bind(&created)
        .bind(deleted.then(|| created.clone()))
        .bind(i64::from(deleted))
        .execute(&mut *tx)
        .await
        .expect("insert instance");
    }
    tx.commit().await.expect("commit");
}

/// Seeds `NODES` compute services (up, enabled) and their nodes.
async fn seed_nodes(db: &Db) {
    let mut tx = db.begin().await.expect("begin");
    let now = novum_db::now();
    for index in 0..NODES {
        let host = format!("host-{index}");
        sqlx::query(
            "INSERT INTO services (uuid, host, binary_name, topic, last_seen_up, created_at, updated_at) \
             VALUES ($1, $2, 'nova-compute', 'compute', $3, $3, $3)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(&host)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .expect("insert service");
        sqlx::query(
            "INSERT INTO compute_nodes (uuid, service_id, host, hypervisor_hostname, vcpus, memory_mb, local_gb, \
             vcpus_used, memory_mb_used, local_gb_used, running_vms, hypervisor_type, hypervisor_version, created_at) \
             SELECT $1, id, host, $2, 16, 65536, 1000, 4, 2048, 4, 4, 'QEMU', 8002000, $3 FROM services \
             WHERE host = $4 AND binary_name = 'nova-compute'",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(format!("{host}.example"))
        .bind(&now)
        .bind(&host)
        .execute(&mut *tx)
        .await
        .expect("insert compute node");
    }
    tx.commit().await.expect("commit");
}

/// The median time of `RUNS` calls of `path` (with `token`, at `version`),
/// checking each answers 200, and the last answer.
async fn timed(app: &TestApp, token: &str, version: &str, path: &str) -> (Duration, Value) {
    let mut times = Vec::with_capacity(RUNS);
    let mut last = Value::Null;
    for _ in 0..RUNS {
        let started = Instant::now();
        let reply = app
            .send(
                Method::GET,
                path,
                &[
                    ("x-auth-token", token),
                    ("openstack-api-version", &format!("compute {version}")),
                ],
                Vec::new(),
            )
            .await;
        times.push(started.elapsed());
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.json);
        last = reply.json;
    }
    times.sort();
    (times[RUNS / 2], last)
}

#[tokio::test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn list_scale() {
    let backend = backends().await.into_iter().next().expect("sqlite");
    let app = TestApp::start(&backend).await;
    let admin = app.admin_token().await;
    let (project, user, member) = app
        .project_user(&admin, "scale", "scale-user", "member")
        .await;
    let seeding = Instant::now();
    seed_instances(&app.state.db, &project, &user).await;
    seed_nodes(&app.state.db).await;
    println!(
        "seeded {INSTANCES} instances ({} live in the caller's project) and {NODES} nodes in {:.1?}",
        INSTANCES / LIVE_EVERY,
        seeding.elapsed()
    );

    let mut rows: Vec<(String, Duration)> = Vec::new();
    let (time, body) = timed(&app, &member, "2.1", "/compute/v2.1/servers?limit=100").await;
    assert_eq!(body["servers"].as_array().map(Vec::len), Some(100));
    rows.push(("GET /servers?limit=100 (member)".into(), time));
    let marker = body["servers"][99]["id"].as_str().expect("id").to_string();
    let (time, body) = timed(
        &app,
        &member,
        "2.1",
        &format!("/compute/v2.1/servers?limit=100&marker={marker}"),
    )
    .await;
    assert_eq!(body["servers"].as_array().map(Vec::len), Some(100));
    rows.push(("GET /servers?limit=100&marker= (member)".into(), time));
    let (time, body) = timed(
        &app,
        &member,
        "2.1",
        "/compute/v2.1/servers/detail?limit=100",
    )
    .await;
    assert_eq!(body["servers"].as_array().map(Vec::len), Some(100));
    rows.push(("GET /servers/detail?limit=100 (member)".into(), time));
    let (time, body) = timed(
        &app,
        &admin,
        "2.1",
        "/compute/v2.1/servers?all_tenants=1&limit=100",
    )
    .await;
    assert_eq!(body["servers"].as_array().map(Vec::len), Some(100));
    rows.push(("GET /servers?all_tenants=1&limit=100 (admin)".into(), time));
    let (time, body) = timed(
        &app,
        &admin,
        "2.1",
        "/compute/v2.1/os-hypervisors/statistics",
    )
    .await;
    assert_eq!(body["hypervisor_statistics"]["count"], NODES);
    rows.push(("GET /os-hypervisors/statistics".into(), time));
    let (time, body) = timed(
        &app,
        &admin,
        "2.33",
        "/compute/v2.1/os-hypervisors/detail?limit=100",
    )
    .await;
    assert_eq!(body["hypervisors"].as_array().map(Vec::len), Some(100));
    rows.push(("GET /os-hypervisors/detail?limit=100".into(), time));
    let (time, body) = timed(
        &app,
        &member,
        "2.40",
        &format!("/compute/v2.1/os-simple-tenant-usage/{project}?limit=100"),
    )
    .await;
    assert!(body["tenant_usage"].is_object(), "{body}");
    rows.push((
        "GET /os-simple-tenant-usage/{project}?limit=100".into(),
        time,
    ));

    println!("{:<50} {:>12}", "request", "median");
    for (request, time) in rows {
        println!("{request:<50} {:>9.2} ms", time.as_secs_f64() * 1000.0);
    }
}

/// The plan SQLite chooses for `statement` (its steps' details).
async fn query_plan(db: &Db, statement: &str) -> String {
    use sqlx::Row;
    let mut connection = db.connection().await.expect("connection");
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "EXPLAIN QUERY PLAN {statement}"
    )))
    .fetch_all(&mut *connection)
    .await
    .expect("plan");
    rows.iter()
        .map(|row| row.try_get::<String, _>("detail").expect("detail"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The statements every heartbeat, claim and action event makes read the
/// host's or the action's rows through an index, not every live instance
/// or every event ever recorded: their cost must not grow with the cloud.
#[tokio::test]
async fn per_host_and_per_action_statements_use_their_index() {
    let dir = std::env::temp_dir().join(format!("novum-plans-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = novum_db::testing::sqlite(&dir).await.expect("db");
    for (statement, index) in [
        (
            "SELECT uuid, vm_state, power_state FROM instances \
             WHERE host = 'h' AND deleted = 0 AND task_state IS NULL",
            "instances_host_live",
        ),
        (
            "SELECT uuid, host, server_group, image_properties FROM instances \
             WHERE deleted = 0 AND host IS NOT NULL AND host IN ('a', 'b')",
            "instances_host_live",
        ),
        (
            "SELECT COUNT(*) AS n FROM instances WHERE host = 'h' AND deleted = 0",
            "instances_host_live",
        ),
        (
            "UPDATE instance_action_events SET finish_time = 't', result = 'Success' \
             WHERE action_id = 'a' AND finish_time IS NULL AND event = 'e'",
            "instance_action_events_action",
        ),
    ] {
        let plan = query_plan(&db, statement).await;
        assert!(plan.contains(index), "{statement}: {plan}");
    }
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A page read as one JSON array (SQLite) holds the very instances the
/// rows hold: every column of `Instance`, its NULLs and its numbers.
#[tokio::test]
async fn a_page_holds_every_column_of_its_instances() {
    use novum_compute::conductor::model::Instance;
    use novum_compute::store::server_listing::{self, ServerListing};
    for backend in backends().await {
        let db = &backend.db;
        let columns = Instance::COLUMNS;
        let values: Vec<String> = (1..=columns.len())
            .map(|index| format!("${index}"))
            .collect();
        let sql = format!(
            "INSERT INTO instances ({}) VALUES ({})",
            columns.join(", "),
            values.join(", ")
        );
        for (index, nulls) in [(1, false), (2, true)] {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for column in columns {
                query = match *column {
                    "power_state" | "launch_index" | "locked" => query.bind(index * 7),
                    "deleted" => query.bind(0_i64),
                    "flavor" => query.bind(FLAVOR_JSON.to_string()),
                    "uuid" => query.bind(format!("00000000-0000-0000-0000-00000000000{index}")),
                    "description"
                    | "task_state"
                    | "host"
                    | "node"
                    | "availability_zone"
                    | "requested_availability_zone"
                    | "key_name"
                    | "key_data"
                    | "user_data"
                    | "server_group"
                    | "fault"
                    | "launched_at"
                    | "terminated_at"
                    | "deleted_at"
                    | "locked_by"
                        if nulls =>
                    {
                        query.bind(None::<String>)
                    }
                    other => query.bind(format!("{other} \"{index}\" é\n")),
                };
            }
            query.execute(db.pool()).await.expect("insert instance");
        }
        let page = server_listing::page(db, &ServerListing::default(), None, 10)
            .await
            .expect("page");
        assert_eq!(page.len(), 2, "{}", backend.name);
        for listed in page {
            let fetched = Instance::fetch(db.pool(), &listed.uuid)
                .await
                .expect("fetch")
                .expect("instance");
            assert_eq!(listed, fetched, "{}", backend.name);
        }
    }
}
