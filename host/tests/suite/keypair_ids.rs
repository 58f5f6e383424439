//! Integer ids the database generates: two projects creating key pairs at
//! once through the real API get distinct ids (SQLite and PostgreSQL; with
//! `MAX(id) + 1` under a per-project lock, PostgreSQL gave two projects the
//! same ids), and the upgrade to generated ids keeps every row and its id,
//! gives new ids above the largest, and never gives a deleted id again.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use novum_db::{Db, insert_returning_id, testing};
use serde_json::json;
use sqlx::Row;
use tokio::sync::Barrier;

use crate::api_common::{self, Backend, Reply, TestApp};

/// Key pairs each project creates at once: the default `key_pairs` quota of
/// their one user.
const PER_PROJECT: usize = 100;

/// An SSH public key to import (importing costs no key generation).
const PUBLIC_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDx8nkQv/zgGgB4rMYmIf+6A4l6Rr+o/6lHBQdW5aYd44bd8JttDCE/F/pNRr0lRE+PiqSPO8nDPHw0010JeMH9gYgnnFlyY3/OcJ02RhIPyyxYpv9FhY+2YiUkpwFOcLImyrxEsYXpD/0d3ac30bNH6Sw9JD9UZHYcpSxsIbECHw== Generated-by-Nova";

/// A compute API call at microversion 2.2 (key pair ids are shown from 2.2 on
/// in `GET /os-keypairs/{name}`; creates answer 201).
async fn compute(app: &TestApp, token: &str, method: Method, path: &str, body: &[u8]) -> Reply {
    app.send(
        method,
        &format!("/compute/v2.1/{path}"),
        &[
            ("content-type", "application/json"),
            ("x-auth-token", token),
            ("openstack-api-version", "compute 2.2"),
        ],
        body.to_vec(),
    )
    .await
}

async fn concurrent_key_pairs_get_distinct_ids(backend: Backend) {
    let app = Arc::new(TestApp::start(&backend).await);
    let admin = app.admin_token().await;
    let mut tokens = Vec::new();
    for project in ["ids-one", "ids-two"] {
        let (_, _, token) = app
            .project_user(&admin, project, &format!("{project}-user"), "member")
            .await;
        tokens.push(token);
    }
    let barrier = Arc::new(Barrier::new(PER_PROJECT * tokens.len()));
    let mut creates = tokio::task::JoinSet::new();
    for token in &tokens {
        for index in 0..PER_PROJECT {
            let (app, barrier, token) = (Arc::clone(&app), Arc::clone(&barrier), token.clone());
            creates.spawn(async move {
                let body =
                    json!({"keypair": {"name": format!("key-{index}"), "public_key": PUBLIC_KEY}});
                barrier.wait().await;
                let reply = compute(
                    &app,
                    &token,
                    Method::POST,
                    "os-keypairs",
                    body.to_string().as_bytes(),
                )
                .await;
                (index, reply.status, reply.json)
            });
        }
    }
    while let Some(created) = creates.join_next().await {
        let (index, status, body) = created.expect("create task");
        assert_eq!(
            status,
            StatusCode::CREATED,
            "[{}] key-{index}: {body}",
            backend.name
        );
    }
    let mut ids = BTreeSet::new();
    let mut duplicates = Vec::new();
    for token in &tokens {
        for index in 0..PER_PROJECT {
            let reply = compute(
                &app,
                token,
                Method::GET,
                &format!("os-keypairs/key-{index}"),
                b"",
            )
            .await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "[{}] {}",
                backend.name,
                reply.json
            );
            let id = reply.json["keypair"]["id"].as_i64().expect("key pair id");
            if !ids.insert(id) {
                duplicates.push(id);
            }
        }
    }
    assert!(
        duplicates.is_empty(),
        "[{}] {} of {} key pairs share an id with another, e.g. {:?}",
        backend.name,
        duplicates.len(),
        PER_PROJECT * tokens.len(),
        &duplicates[..duplicates.len().min(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projects_creating_key_pairs_at_once_get_distinct_ids_sqlite() {
    let backend = api_common::backends().await.remove(0);
    concurrent_key_pairs_get_distinct_ids(backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projects_creating_key_pairs_at_once_get_distinct_ids_postgres() {
    let Some(backend) = api_common::backends()
        .await
        .into_iter()
        .find(|backend| backend.name == "postgres")
    else {
        println!("skipping: no PostgreSQL");
        return;
    };
    concurrent_key_pairs_get_distinct_ids(backend).await;
}

/// What a novum before migration 0082 wrote: ids from `MAX(id) + 1`, key
/// pair id 4 given to two users' key pairs, an aggregate with a host and a
/// zone on a service's compute node.
const ROWS_BEFORE_0082: [&str; 7] = [
    "INSERT INTO services (id, uuid, host, binary_name, topic, created_at) \
     VALUES (1, 's1', 'h1', 'nova-compute', 'compute', 't'), (5, 's5', 'h5', 'nova-compute', 'compute', 't')",
    "INSERT INTO compute_nodes (id, uuid, service_id, host, hypervisor_hostname, vcpus, memory_mb, local_gb, \
     hypervisor_type, hypervisor_version, created_at) VALUES (3, 'n3', 5, 'h5', 'h5', 1, 512, 1, 'TEST', 1, 't')",
    "INSERT INTO aggregates (id, uuid, name, created_at) VALUES (7, 'a7', 'rack', 't')",
    "INSERT INTO aggregate_hosts (aggregate_id, host) VALUES (7, 'h5')",
    "INSERT INTO aggregate_metadata (aggregate_id, key, value) VALUES (7, 'availability_zone', 'az1')",
    "INSERT INTO keypairs (user_id, name, public_key, fingerprint, key_type, created_at, id) \
     VALUES ('u1', 'k1', 'pk', 'fp', 'ssh', '2020', 4), ('u2', 'k1', 'pk', 'fp', 'ssh', '2021', 4), \
     ('u2', 'k2', 'pk', 'fp', 'ssh', '2022', 9)",
    "INSERT INTO migrations (uuid, id, instance_uuid, migration_type, source_compute, source_node, old_flavor, \
     new_flavor, old_vm_state, user_id, project_id, status, created_at, updated_at) \
     VALUES ('m12', 12, 'i', 'resize', 'h5', 'h5', '{}', '{}', 'active', 'u', 'p', 'confirmed', 't', 't')",
];

/// Per table with a generated id: an insert of a new row named by `$1`, and
/// the id the first one after the upgrade gets (one above the largest).
const INSERTS_AFTER_0082: [(&str, &str, i64); 5] = [
    (
        "services",
        "INSERT INTO services (uuid, host, binary_name, topic, created_at) \
         VALUES ($1, $1, 'nova-compute', 'compute', 't') RETURNING id",
        6,
    ),
    (
        "compute_nodes",
        "INSERT INTO compute_nodes (uuid, service_id, host, hypervisor_hostname, vcpus, memory_mb, local_gb, \
         hypervisor_type, hypervisor_version, created_at) VALUES ($1, 5, $1, $1, 1, 512, 1, 'TEST', 1, 't') RETURNING id",
        4,
    ),
    (
        "aggregates",
        "INSERT INTO aggregates (uuid, name, created_at) VALUES ($1, $1, 't') RETURNING id",
        8,
    ),
    (
        "keypairs",
        "INSERT INTO keypairs (user_id, name, public_key, fingerprint, key_type, created_at) \
         VALUES ('u3', $1, 'pk', 'fp', 'ssh', 't') RETURNING id",
        11,
    ),
    (
        "migrations",
        "INSERT INTO migrations (uuid, instance_uuid, migration_type, source_compute, source_node, old_flavor, \
         new_flavor, old_vm_state, user_id, project_id, status, created_at, updated_at) \
         VALUES ($1, 'i', 'resize', 'h5', 'h5', '{}', '{}', 'active', 'u', 'p', 'confirmed', 't', 't') RETURNING id",
        13,
    ),
];

/// The first column of `query`'s rows, as text (`id` or `id:name`).
async fn column(db: &Db, query: &'static str) -> Vec<String> {
    sqlx::query(query)
        .fetch_all(db.pool())
        .await
        .unwrap_or_else(|error| panic!("{query}: {error}"))
        .iter()
        .map(|row| row.try_get::<String, _>(0).expect("text column"))
        .collect()
}

/// Inserts a row named `name` with `insert` and returns its generated id.
async fn insert(db: &Db, insert: &'static str, name: &str) -> i64 {
    let mut tx = db.begin().await.expect("begin");
    let id = insert_returning_id(&mut tx, sqlx::query(insert).bind(name))
        .await
        .unwrap_or_else(|error| panic!("{insert}: {error}"));
    tx.commit().await.expect("commit");
    id
}

async fn the_upgrade_keeps_every_id_and_continues_above_them(db: Db) {
    let engine = format!("{:?}", db.backend());
    testing::migrate_to(&db, 81)
        .await
        .expect("migrate up to 0081");
    for statement in ROWS_BEFORE_0082 {
        sqlx::query(statement)
            .execute(db.pool())
            .await
            .unwrap_or_else(|error| panic!("{statement}: {error}"));
    }
    db.migrate().await.expect("the upgrade");
    for (query, expected) in [
        (
            "SELECT CAST(id AS TEXT) || ':' || host FROM services ORDER BY id",
            vec!["1:h1", "5:h5"],
        ),
        (
            "SELECT CAST(id AS TEXT) || ':' || CAST(service_id AS TEXT) FROM compute_nodes ORDER BY id",
            vec!["3:5"],
        ),
        (
            "SELECT CAST(id AS TEXT) || ':' || name FROM aggregates ORDER BY id",
            vec!["7:rack"],
        ),
        (
            "SELECT CAST(aggregate_id AS TEXT) || ':' || host FROM aggregate_hosts",
            vec!["7:h5"],
        ),
        (
            "SELECT CAST(aggregate_id AS TEXT) || ':' || value FROM aggregate_metadata",
            vec!["7:az1"],
        ),
        // The older of the two key pairs with id 4 keeps it; the other one
        // gets the next id above the largest.
        (
            "SELECT CAST(id AS TEXT) || ':' || user_id || '/' || name FROM keypairs ORDER BY id",
            vec!["4:u1/k1", "9:u2/k2", "10:u2/k1"],
        ),
        (
            "SELECT CAST(id AS TEXT) || ':' || uuid FROM migrations ORDER BY id",
            vec!["12:m12"],
        ),
    ] {
        assert_eq!(column(&db, query).await, expected, "[{engine}] {query}");
    }
    for (table, statement, next) in INSERTS_AFTER_0082 {
        assert_eq!(
            insert(&db, statement, "new").await,
            next,
            "[{engine}] the first new id of {table}"
        );
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE id = $1"
        )))
        .bind(next)
        .execute(db.pool())
        .await
        .unwrap_or_else(|error| panic!("delete from {table}: {error}"));
        assert_eq!(
            insert(&db, statement, "newer").await,
            next + 1,
            "[{engine}] {table} gives the id of a deleted row again"
        );
    }
}

#[tokio::test]
async fn the_upgrade_to_generated_ids_keeps_every_id_and_continues_above_them_sqlite() {
    let dir = api_common::TempDir::new();
    let url = format!("sqlite://{}?mode=rwc", dir.0.join("novum.db").display());
    let db = Db::connect(&url).await.expect("sqlite");
    the_upgrade_keeps_every_id_and_continues_above_them(db).await;
}

#[tokio::test]
async fn the_upgrade_to_generated_ids_keeps_every_id_and_continues_above_them_postgres() {
    let Some(url) = testing::postgres_url().await else {
        println!("skipping: no PostgreSQL");
        return;
    };
    let db = Db::connect(&url).await.expect("postgres");
    the_upgrade_keeps_every_id_and_continues_above_them(db).await;
}
