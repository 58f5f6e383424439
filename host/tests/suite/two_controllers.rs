//! Two controllers on one database (SQLite and PostgreSQL): who runs an
//! operation's scheduling step. A step owned by a dead controller, or left
//! unowned too long, is adopted; one a live controller owns, one placed
//! already, or one just made is not; a controller that stops cleanly hands
//! its steps over at once. A multi-create's servers waiting for their turn
//! are their controller's own, not orphans.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use novum_db::Db;
use serde_json::json;
use sqlx::Row;

use crate::api_common::{self, Backend, TestApp};

async fn controller(backend: &Backend, host: &str) -> TestApp {
    let mut config = api_common::config(&backend.dir.0);
    config.agent.embedded = false;
    config.host = host.to_string();
    config.scheduler.backend = novum_plugin_host::Backend::Native;
    TestApp::new(backend, config).await
}

/// A running operation in `step`, owned by `owner`, last moved `age` ago
/// (its instance does not exist: a scheduling step taken ends at once and
/// leaves the row as it is, owner included).
async fn operation(db: &Db, id: &str, step: &str, owner: Option<&str>, age: chrono::Duration) {
    let at = novum_db::timestamp(chrono::Utc::now() - age);
    sqlx::query(
        "INSERT INTO conductor_operations (id, instance_uuid, kind, step, state, data, request_id, action_id, \
         created_at, updated_at, owner) VALUES ($1, $2, 'build', $3, 'running', '{}', 'req-test', NULL, $4, $4, $5)",
    )
    .bind(id)
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(step)
    .bind(&at)
    .bind(owner)
    .execute(db.pool())
    .await
    .expect("operation");
}

async fn owner(db: &Db, id: &str) -> Option<String> {
    sqlx::query("SELECT owner FROM conductor_operations WHERE id = $1")
        .bind(id)
        .fetch_one(db.pool())
        .await
        .expect("operation")
        .try_get("owner")
        .expect("owner")
}

/// Waits until operation `id` is owned by `wanted`.
async fn owned_by(db: &Db, id: &str, wanted: Option<&str>, backend: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = owner(db, id).await;
        if now.as_deref() == wanted {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "[{backend}] {id} owned by {now:?}, not {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn adoption(backend: Backend) {
    let one = controller(&backend, "ctl-1").await;
    let two = controller(&backend, "ctl-2").await;
    let (first, second) = (&one.state.conductor, &two.state.conductor);
    first.renew_controller().await.expect("renew");
    second.renew_controller().await.expect("renew");
    assert_eq!(first.live_peers().await.expect("peers"), 1);
    let db = &backend.db;
    sqlx::query(
        "INSERT INTO controllers (id, host, started_at, expires_at) VALUES ('dead', 'ctl-0', $1, $1)",
    )
    .bind(novum_db::timestamp(
        chrono::Utc::now() - chrono::Duration::minutes(1),
    ))
    .execute(db.pool())
    .await
    .expect("dead controller");
    let now = chrono::Duration::zero();
    let minute = chrono::Duration::minutes(1);
    operation(db, "of-the-dead", "schedule", Some("dead"), now).await;
    operation(db, "of-a-ghost", "schedule", Some("never-registered"), now).await;
    operation(
        db,
        "of-the-living",
        "schedule",
        Some(first.controller_id()),
        now,
    )
    .await;
    operation(db, "just-made", "schedule", None, now).await;
    operation(db, "forgotten", "schedule", None, minute).await;
    operation(db, "placed", "spawn", Some("dead"), minute).await;

    let started = second.adopt_orphans().await.expect("adopt");
    assert_eq!(started, 3, "[{}] adopted", backend.name);
    for id in ["of-the-dead", "of-a-ghost", "forgotten"] {
        owned_by(db, id, Some(second.controller_id()), backend.name).await;
    }
    assert_eq!(
        owner(db, "of-the-living").await.as_deref(),
        Some(first.controller_id())
    );
    assert_eq!(owner(db, "just-made").await, None);
    assert_eq!(owner(db, "placed").await.as_deref(), Some("dead"));
    // The first controller takes nothing the second (alive) holds.
    assert_eq!(first.adopt_orphans().await.expect("adopt"), 0);

    // The second stops cleanly: the first adopts its steps at once.
    second.deregister_controller().await.expect("deregister");
    assert_eq!(first.live_peers().await.expect("peers"), 0);
    assert_eq!(first.adopt_orphans().await.expect("adopt"), 3);
    for id in ["of-the-dead", "of-a-ghost", "forgotten"] {
        owned_by(db, id, Some(first.controller_id()), backend.name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_controllers_scheduling_steps_are_adopted_sqlite() {
    let backend = api_common::backends().await.remove(0);
    adoption(backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_controllers_scheduling_steps_are_adopted_postgres() {
    let Some(backend) = api_common::backends()
        .await
        .into_iter()
        .find(|backend| backend.name == "postgres")
    else {
        println!("skipping: no PostgreSQL");
        return;
    };
    adoption(backend).await;
}

/// The controller that accepted a multi-create schedules its servers one
/// after the other; those still waiting for their turn are marked as its
/// own, so none is adopted however long the wait (unmarked, every server
/// still waiting after `ADOPT_UNOWNED_AFTER` was adopted and scheduled at
/// once, beside the others: thousands of decisions contending for the
/// database behind a large background).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_creates_waiting_servers_are_not_adopted() {
    let backend = api_common::backends().await.remove(0);
    let mut config = api_common::config(&backend.dir.0);
    config.agent.embedded = false;
    config.quota.instances = -1;
    config.quota.cores = -1;
    config.quota.ram = -1;
    let app = TestApp::new(&backend, config).await;
    let admin = app.admin_token().await;
    let image = app.public_image(&admin).await;
    let body = json!({"server": {"name": "many", "imageRef": image, "flavorRef": "1",
        "networks": "none", "min_count": 100}});
    let reply = app
        .send(
            Method::POST,
            "/compute/v2.1/servers",
            &[
                ("x-auth-token", &admin),
                ("content-type", "application/json"),
                ("openstack-api-version", "compute 2.37"),
            ],
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
    // Every step looks as if it had waited a minute.
    sqlx::query("UPDATE conductor_operations SET updated_at = $1")
        .bind(novum_db::timestamp(
            chrono::Utc::now() - chrono::Duration::minutes(1),
        ))
        .execute(backend.db.pool())
        .await
        .expect("age the steps");
    let waiting: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM conductor_operations WHERE state = 'running' AND step = 'schedule'",
    )
    .fetch_one(backend.db.pool())
    .await
    .expect("count")
    .try_get("n")
    .expect("n");
    assert!(waiting > 0, "the servers wait for their turn");
    assert_eq!(app.state.conductor.adopt_orphans().await.expect("adopt"), 0);
}
