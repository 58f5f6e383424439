//! SQLite's write-ahead log is copied into the database file by a
//! background checkpointer, not by the one writer: the writer's connection
//! has no automatic checkpoint (which ran inside the commit that crossed
//! 1,000 WAL pages, while that transaction held the writer's turn), and
//! what it commits reaches the database file all the same.

use std::time::{Duration, Instant};

use sqlx::Row;

use novum_db::testing;

use crate::api_common::TempDir;

/// What the test commits: 64 rows of 64 KiB.
const WRITTEN_BYTES: u64 = 64 * 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writers_commits_reach_the_database_file_through_the_background_checkpointer() {
    let dir = TempDir::new();
    let db = testing::sqlite(&dir.0).await.expect("sqlite");
    let file = dir.0.join("novum.db");
    let mut tx = db.begin().await.expect("a write transaction");
    let automatic: i64 = sqlx::query("PRAGMA wal_autocheckpoint")
        .fetch_one(&mut *tx)
        .await
        .expect("wal_autocheckpoint")
        .try_get(0)
        .expect("a number");
    assert_eq!(automatic, 0, "the writer checkpoints by itself");
    sqlx::query("CREATE TABLE checkpoint_probe (payload BLOB NOT NULL)")
        .execute(&mut *tx)
        .await
        .expect("create the probe table");
    tx.commit().await.expect("commit");
    let before = std::fs::metadata(&file).expect("the database file").len();

    let mut tx = db.begin().await.expect("a write transaction");
    sqlx::query(
        "INSERT INTO checkpoint_probe (payload) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 64) \
         SELECT randomblob(65536) FROM n",
    )
    .execute(&mut *tx)
    .await
    .expect("insert");
    tx.commit().await.expect("commit");

    let since = Instant::now();
    loop {
        let size = std::fs::metadata(&file).expect("the database file").len();
        if size >= before + WRITTEN_BYTES {
            break;
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "the database file stayed at {size} bytes ({before} before the commit)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
