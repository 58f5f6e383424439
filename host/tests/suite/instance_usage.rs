//! `instance_usage`, the per project/user/flavor sums quota reads, kept by
//! the database's triggers (migration 0113): after every kind of change an
//! instance row can go through — created live or already deleted, resized
//! (flavor, vcpus and memory change together or alone), soft- and
//! hard-deleted, moved to another project or user, purged — the table
//! equals the count over the instances it replaces, on SQLite and
//! PostgreSQL, and quota's own reads (`count_instances`, `flavor_usage`)
//! answer from it.

use novum_db::Db;
use sqlx::Row as _;

use crate::api_common::backends;

/// The sums as the triggers keep them, without rows that count nothing.
async fn kept(db: &Db) -> Vec<(String, String, String, i64, i64, i64)> {
    let mut conn = db.pool().acquire().await.expect("connection");
    sqlx::query(
        "SELECT project_id, user_id, flavor, instances, cores, ram FROM instance_usage \
         WHERE instances <> 0 OR cores <> 0 OR ram <> 0 ORDER BY project_id, user_id, flavor",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("instance_usage")
    .iter()
    .map(row_of)
    .collect()
}

/// The sums counted over the live instances.
async fn counted(db: &Db) -> Vec<(String, String, String, i64, i64, i64)> {
    let mut conn = db.pool().acquire().await.expect("connection");
    sqlx::query(
        "SELECT project_id, user_id, flavor, COUNT(*) AS instances, \
         CAST(SUM(vcpus) AS BIGINT) AS cores, CAST(SUM(memory_mb) AS BIGINT) AS ram \
         FROM instances WHERE deleted = 0 GROUP BY project_id, user_id, flavor \
         ORDER BY project_id, user_id, flavor",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("count")
    .iter()
    .map(row_of)
    .collect()
}

fn row_of(row: &sqlx::any::AnyRow) -> (String, String, String, i64, i64, i64) {
    (
        row.get("project_id"),
        row.get("user_id"),
        row.get("flavor"),
        row.get("instances"),
        row.get("cores"),
        row.get("ram"),
    )
}

async fn run(db: &Db, sql: &str) {
    let mut tx = db.begin().await.expect("begin");
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    tx.commit().await.expect("commit");
}

fn insert(uuid: &str, project: &str, user: &str, flavor: &str, vcpus: i64, ram: i64) -> String {
    format!(
        "INSERT INTO instances (uuid, display_name, project_id, user_id, flavor_id, flavor, vm_state, \
         reservation_id, created_at, updated_at, vcpus, memory_mb) VALUES ('{uuid}', 'usage', \
         '{project}', '{user}', '{flavor}', '{{\"name\":\"{flavor}\"}}', 'active', 'r-{uuid}', \
         '2026-12-06T00:00:00Z', '2026-12-06T00:00:00Z', {vcpus}, {ram})"
    )
}

async fn follows_every_change(db: &Db) {
    let steps = [
        insert("u1", "p1", "alice", "small", 1, 512),
        insert("u2", "p1", "alice", "small", 1, 512),
        insert("u3", "p1", "bob", "large", 4, 8192),
        insert("u4", "p2", "alice", "large", 4, 8192),
        insert("u5", "p1", "alice", "small", 1, 512),
        "UPDATE instances SET deleted = 1 WHERE uuid = 'u5'".to_string(),
        // A resize awaiting confirmation: the larger of both flavors per resource.
        "UPDATE instances SET vcpus = 4, memory_mb = 8192 WHERE uuid = 'u1'".to_string(),
        // Confirmed: the new flavor snapshot.
        "UPDATE instances SET flavor = '{\"name\":\"large\"}' WHERE uuid = 'u1'".to_string(),
        // Reverted on another: flavor and resources back in one statement.
        "UPDATE instances SET flavor = '{\"name\":\"large\"}', vcpus = 4, memory_mb = 8192 WHERE uuid = 'u2'"
            .to_string(),
        "UPDATE instances SET flavor = '{\"name\":\"small\"}', vcpus = 1, memory_mb = 512 WHERE uuid = 'u2'"
            .to_string(),
        // A change quota does not see.
        "UPDATE instances SET vm_state = 'stopped', display_name = 'renamed' WHERE uuid = 'u3'"
            .to_string(),
        // Soft-deleted (vm_state only): still counts, as Nova counts it.
        "UPDATE instances SET vm_state = 'soft-delete' WHERE uuid = 'u3'".to_string(),
        // Moved to another user and project.
        "UPDATE instances SET user_id = 'bob' WHERE uuid = 'u2'".to_string(),
        "UPDATE instances SET project_id = 'p2' WHERE uuid = 'u3'".to_string(),
        // Deleted, then purged; a live row removed outright.
        "UPDATE instances SET deleted = 1, vm_state = 'deleted' WHERE uuid = 'u4'".to_string(),
        "DELETE FROM instances WHERE uuid = 'u4'".to_string(),
        "DELETE FROM instances WHERE uuid = 'u2'".to_string(),
        // Restored from deletion (Nova never does; the table must not care).
        "UPDATE instances SET deleted = 0 WHERE uuid = 'u5'".to_string(),
    ];
    for step in &steps {
        run(db, step).await;
        assert_eq!(kept(db).await, counted(db).await, "after {step}");
    }
    assert!(
        !counted(db).await.is_empty(),
        "the steps leave live instances"
    );

    let mut conn = db.pool().acquire().await.expect("connection");
    let usage = novum_quota::store::count_instances(&mut conn, "p1", None)
        .await
        .expect("count");
    // p1 holds u1 (large: 4, 8192) and u5 (small: 1, 512).
    assert_eq!(
        (usage.instances, usage.cores, usage.ram),
        (2, 5, 8704),
        "p1's usage"
    );
    let alice = novum_quota::store::count_instances(&mut conn, "p1", Some("alice"))
        .await
        .expect("count");
    assert_eq!((alice.instances, alice.cores, alice.ram), (2, 5, 8704));
    let bob = novum_quota::store::count_instances(&mut conn, "p1", Some("bob"))
        .await
        .expect("count");
    assert_eq!((bob.instances, bob.cores, bob.ram), (0, 0, 0));
    let flavors = novum_quota::store::flavor_usage(&mut conn, "p1")
        .await
        .expect("flavor usage");
    let mut names: Vec<(String, i64)> = flavors
        .iter()
        .map(|usage| (usage.flavor_name.clone(), i64::from(usage.count)))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![("large".to_string(), 1), ("small".to_string(), 1)]
    );
}

#[tokio::test]
async fn instance_usage_equals_the_count_on_each_backend() {
    for backend in backends().await {
        println!("backend {}", backend.name);
        follows_every_change(&backend.db).await;
    }
}
