//! Group commit (`Db::begin_grouped`): grouped transactions that wait for
//! SQLite's one writer share one transaction, each behind a savepoint, and
//! each commit answers only once the group's commit did. What one member
//! undoes (a rollback, an error, a dropped transaction) stays undone and
//! takes nothing of the others'. PostgreSQL runs the same cases with a
//! transaction each.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use tokio::sync::Barrier;

use novum_db::{Db, testing};

use crate::api_common::TempDir;

async fn probe_table(db: &Db) {
    sqlx::query("CREATE TABLE group_probe (id BIGINT PRIMARY KEY, label TEXT NOT NULL)")
        .execute(db.pool())
        .await
        .expect("create the probe table");
}

async fn probe_ids(db: &Db) -> Vec<i64> {
    sqlx::query("SELECT id FROM group_probe ORDER BY id")
        .fetch_all(db.pool())
        .await
        .expect("read the probe table")
        .iter()
        .map(|row| row.try_get("id").expect("id"))
        .collect()
}

/// How member `id` ends its transaction.
#[derive(Clone, Copy, Debug)]
enum Ending {
    Commit,
    Rollback,
    /// Dropped without an end, as on an error's way out.
    Drop,
    /// A statement fails (a duplicate key) and the transaction is dropped.
    Fail,
    /// A last write, then the commit, in one batch (`Tx::commit_with`).
    CommitWith,
    /// `Tx::commit_with` whose batch fails (a duplicate key): nothing of
    /// the member stays.
    CommitWithFailing,
}

fn ending_of(id: i64) -> Ending {
    match id % 9 {
        3 => Ending::Rollback,
        4 => Ending::Drop,
        5 => Ending::Fail,
        6 | 8 => Ending::CommitWith,
        7 => Ending::CommitWithFailing,
        _ => Ending::Commit,
    }
}

/// The batch of [`Ending::CommitWith`]: the member's row relabelled; with
/// `failing`, then a duplicate key.
fn last_writes(id: i64, failing: bool) -> novum_db::Batch {
    let mut writes = novum_db::Batch::new();
    writes
        .push(
            sqlx::query("UPDATE group_probe SET label = 'batched' WHERE id = $1 RETURNING id")
                .bind(id),
        )
        .expect("relabel");
    if failing {
        writes
            .push(sqlx::query(
                "INSERT INTO group_probe (id, label) VALUES (0, 'again')",
            ))
            .expect("duplicate");
    }
    writes
}

/// `members` grouped transactions at once, each writing its row (and
/// reading the table inside, which sees the members before it) and ending
/// as [`ending_of`] says; every committed row is there, no other, and
/// every commit answered `Ok`.
async fn members_keep_their_own_endings(db: Db, members: i64) {
    probe_table(&db).await;
    sqlx::query("INSERT INTO group_probe (id, label) VALUES (0, 'before')")
        .execute(db.pool())
        .await
        .expect("first row");
    let start = Arc::new(Barrier::new(usize::try_from(members).expect("count")));
    let mut tasks = Vec::new();
    for id in 1..=members {
        let db = db.clone();
        let start = Arc::clone(&start);
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let mut tx = db.begin_grouped("probe").await.expect("begin");
            let seen: i64 = sqlx::query("SELECT COUNT(*) AS n FROM group_probe WHERE id = 0")
                .fetch_one(&mut *tx)
                .await
                .expect("read inside")
                .try_get("n")
                .expect("n");
            assert_eq!(seen, 1, "a member sees what was committed before");
            sqlx::query("INSERT INTO group_probe (id, label) VALUES ($1, 'member')")
                .bind(id)
                .execute(&mut *tx)
                .await
                .expect("insert");
            // Let others queue for the writer.
            tokio::time::sleep(Duration::from_millis(1)).await;
            match ending_of(id) {
                Ending::Commit => tx.commit().await.expect("commit"),
                Ending::Rollback => tx.rollback().await.expect("rollback"),
                Ending::Drop => drop(tx),
                Ending::Fail => {
                    let duplicate =
                        sqlx::query("INSERT INTO group_probe (id, label) VALUES (0, 'again')")
                            .execute(&mut *tx)
                            .await;
                    assert!(duplicate.is_err(), "the duplicate key fails");
                    drop(tx);
                }
                Ending::CommitWith => {
                    // The answers are the batch's own statements' (not the
                    // group's savepoint statements after them).
                    let answers = tx
                        .commit_with(last_writes(id, false))
                        .await
                        .expect("commit with");
                    let returned: Vec<Vec<i64>> = answers
                        .iter()
                        .map(|answer| {
                            answer
                                .rows
                                .iter()
                                .map(|row| row.try_get("id").expect("id"))
                                .collect()
                        })
                        .collect();
                    assert_eq!(returned, vec![vec![id]], "what the batch returned");
                }
                Ending::CommitWithFailing => {
                    let failed = tx.commit_with(last_writes(id, true)).await;
                    assert!(
                        failed.is_err(),
                        "the batch's duplicate key fails the commit"
                    );
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("member");
    }
    let mut expected = vec![0];
    expected.extend(
        (1..=members).filter(|id| matches!(ending_of(*id), Ending::Commit | Ending::CommitWith)),
    );
    // A dropped member's undo runs on a task of its own: wait for the
    // writer to be free again.
    db.begin()
        .await
        .expect("the writer is free")
        .commit()
        .await
        .expect("commit");
    assert_eq!(probe_ids(&db).await, expected);
    let batched: Vec<i64> =
        sqlx::query("SELECT id FROM group_probe WHERE label = 'batched' ORDER BY id")
            .fetch_all(db.pool())
            .await
            .expect("read the labels")
            .iter()
            .map(|row| row.try_get("id").expect("id"))
            .collect();
    let expected_batched: Vec<i64> = (1..=members)
        .filter(|id| matches!(ending_of(*id), Ending::CommitWith))
        .collect();
    assert_eq!(
        batched, expected_batched,
        "each batch's write is kept with its member"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_members_keep_their_own_endings_on_sqlite() {
    let dir = TempDir::new();
    let db = testing::sqlite(&dir.0).await.expect("sqlite");
    members_keep_their_own_endings(db.clone(), 64).await;
    let groups = db.write_groups();
    assert!(
        groups.shared_commits > 0 && groups.shared_members > groups.shared_commits,
        "64 members at once share commits: {groups:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_members_keep_their_own_endings_on_postgres() {
    if let Some(db) = testing::postgres().await {
        members_keep_their_own_endings(db, 64).await;
    }
}

/// A transaction that is not grouped, arriving while a group is open,
/// commits the group before it begins; the group's members and its own
/// writes are all there, and a reader never sees a member's write before
/// that member's commit answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ungrouped_transaction_commits_an_open_group_first() {
    let dir = TempDir::new();
    let db = testing::sqlite(&dir.0).await.expect("sqlite");
    probe_table(&db).await;
    let mut first = db.begin_grouped("probe").await.expect("first member");
    sqlx::query("INSERT INTO group_probe (id, label) VALUES (1, 'first')")
        .execute(&mut *first)
        .await
        .expect("insert");
    // A plain transaction waits for the writer meanwhile.
    let plain = {
        let db = db.clone();
        tokio::spawn(async move {
            let mut tx = db.begin().await.expect("plain");
            let seen: i64 = sqlx::query("SELECT COUNT(*) AS n FROM group_probe")
                .fetch_one(&mut *tx)
                .await
                .expect("count")
                .try_get("n")
                .expect("n");
            sqlx::query("INSERT INTO group_probe (id, label) VALUES (2, 'plain')")
                .execute(&mut *tx)
                .await
                .expect("insert");
            tx.commit().await.expect("commit");
            seen
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Someone waits: the first member hands its transaction on, and its
    // commit answers once the plain transaction committed the group.
    first.commit().await.expect("the group's commit");
    assert_eq!(
        probe_ids(&db).await.first(),
        Some(&1),
        "committed when answered"
    );
    assert_eq!(
        plain.await.expect("plain"),
        1,
        "the plain one saw the group's write"
    );
    assert_eq!(probe_ids(&db).await, vec![1, 2]);
}
