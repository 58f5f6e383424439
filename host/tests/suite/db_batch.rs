//! `novum_db::Batch`: writes handed to the database together, on SQLite
//! as multi-statement queries with renumbered placeholders, on PostgreSQL
//! one after the other. The same answers either way.

use sqlx::Row;

use novum_db::{Batch, Db, testing};

use crate::api_common::TempDir;

async fn probe_table(db: &Db) {
    sqlx::query("CREATE TABLE batch_probe (id BIGINT PRIMARY KEY, label TEXT NOT NULL, note TEXT)")
        .execute(db.pool())
        .await
        .expect("create the probe table");
}

async fn probe_rows(db: &Db) -> Vec<(i64, String, Option<String>)> {
    sqlx::query("SELECT id, label, note FROM batch_probe ORDER BY id")
        .fetch_all(db.pool())
        .await
        .expect("read the probe table")
        .iter()
        .map(|row| {
            (
                row.try_get("id").expect("id"),
                row.try_get("label").expect("label"),
                row.try_get("note").expect("note"),
            )
        })
        .collect()
}

/// Statements of different arities, a quoted `$2` that is text and not a
/// placeholder, a later statement reading what an earlier one wrote, and
/// more values than one SQLite query takes.
async fn writes_in_order_with_their_own_values(db: Db) {
    probe_table(&db).await;
    let mut tx = db.begin().await.expect("begin");
    let mut batch = Batch::new();
    batch
        .push(
            sqlx::query("INSERT INTO batch_probe (id, label, note) VALUES ($1, $2, '$2 stays')")
                .bind(1_i64)
                .bind("first"),
        )
        .expect("push");
    batch
        .push(
            sqlx::query("INSERT INTO batch_probe (id, label) VALUES ($1, $2)")
                .bind(2_i64)
                .bind("second"),
        )
        .expect("push");
    batch
        .push(
            sqlx::query(
                "UPDATE batch_probe SET note = (SELECT label FROM batch_probe WHERE id = $1) || $2 WHERE id = $3",
            )
            .bind(1_i64)
            .bind("+")
            .bind(2_i64),
        )
        .expect("push");
    // 300 rows of 20 values each: 6,000 values, more than one query binds.
    for id in 100..400_i64 {
        let placeholders: Vec<String> = (1..=20).map(|n| format!("${n}")).collect();
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO batch_probe (id, label, note) SELECT $1, $2, {} ",
            placeholders[2..].join(" || ")
        )));
        insert = insert.bind(id).bind(format!("row {id}"));
        for n in 3..=20 {
            insert = insert.bind(if n == 20 {
                id.to_string()
            } else {
                String::new()
            });
        }
        batch.push(insert).expect("push");
    }
    assert_eq!(batch.len(), 303);
    batch.run(&mut tx).await.expect("run the batch");
    tx.commit().await.expect("commit");
    let rows = probe_rows(&db).await;
    assert_eq!(rows.len(), 302);
    assert_eq!(
        rows[0],
        (1, "first".to_string(), Some("$2 stays".to_string()))
    );
    assert_eq!(
        rows[1],
        (2, "second".to_string(), Some("first+".to_string()))
    );
    for (index, id) in (100..400_i64).enumerate() {
        assert_eq!(
            rows[index + 2],
            (id, format!("row {id}"), Some(id.to_string()))
        );
    }
}

/// A statement that fails stops the batch with its error; rolled back,
/// nothing of the batch stays.
async fn a_failing_statement_stops_the_batch(db: Db) {
    probe_table(&db).await;
    let mut tx = db.begin().await.expect("begin");
    let mut batch = Batch::new();
    for id in [1_i64, 2, 1, 3] {
        batch
            .push(
                sqlx::query("INSERT INTO batch_probe (id, label) VALUES ($1, $2)")
                    .bind(id)
                    .bind("x"),
            )
            .expect("push");
    }
    let error = batch.run(&mut tx).await.expect_err("a duplicate id");
    assert!(error.is_unique_violation(), "{error}");
    tx.rollback().await.expect("rollback");
    assert!(probe_rows(&db).await.is_empty());
}

#[tokio::test]
async fn a_batch_writes_in_order_on_sqlite() {
    let dir = TempDir::new();
    writes_in_order_with_their_own_values(testing::sqlite(&dir.0).await.expect("sqlite")).await;
}

#[tokio::test]
async fn a_batch_writes_in_order_on_postgres() {
    if let Some(db) = testing::postgres().await {
        writes_in_order_with_their_own_values(db).await;
    }
}

#[tokio::test]
async fn a_failing_statement_stops_a_batch_on_sqlite() {
    let dir = TempDir::new();
    a_failing_statement_stops_the_batch(testing::sqlite(&dir.0).await.expect("sqlite")).await;
}

#[tokio::test]
async fn a_failing_statement_stops_a_batch_on_postgres() {
    if let Some(db) = testing::postgres().await {
        a_failing_statement_stops_the_batch(db).await;
    }
}
