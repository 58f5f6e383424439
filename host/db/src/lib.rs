//! novum's database layer: sqlx over SQLite (the embedded default) or
//! PostgreSQL, serialized transactions, the migrations, timestamps.
//!
//! Queries are written once in portable SQL with `$N` placeholders (SQLite
//! accepts them too) and run through sqlx's `Any` driver. Conventions that keep
//! the SQL portable: ids are TEXT (uuids) or BIGINT the database generates
//! ([`insert_returning_id`]), booleans are INTEGER 0/1 (`i64` in Rust),
//! timestamps are TEXT in RFC 3339 UTC with microseconds (so they sort as
//! text), JSON is TEXT.
//!
//! [`gap_cursor`]: a reader's place in a table of generated ids that sees
//! each row once though writers commit out of id order.
//!
//! Migrations live in `migrations/` (portable SQL, one numbered file per
//! part) and, for the few steps that have no portable spelling (generated
//! ids), in `migrations/sqlite/` and `migrations/postgres/` under the same
//! number: each engine runs the portable ones and its own, in number order.
//!
//! This crate knows nothing of HTTP or of the other novum crates: the API
//! maps [`DbError`] and `sqlx::Error` to its faults itself.

#![deny(missing_docs)]

pub mod batch;
pub mod clauses;
pub mod gap_cursor;
pub mod writer;
pub use batch::{Batch, StatementRows};
pub use clauses::{Bind, Clauses};
pub use gap_cursor::GapCursor;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor, Row};

/// Errors of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database URL could not be parsed or the database reached.
    #[error("cannot open database {url}: {source}")]
    Open {
        /// The URL, without credentials.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}

/// Which SQL engine a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (file in the data directory).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A connection pool plus what the rest of novum needs to know about it.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    /// SQLite: the one connection every write transaction runs on (one
    /// writer at a time holds the turn): a writer never waits in the turn
    /// for a connection the readers hold, and its statements stay prepared
    /// in one cache. PostgreSQL: `pool`.
    write_pool: AnyPool,
    backend: Backend,
    /// SQLite: the one writer's turn, handed from transaction to
    /// transaction in arrival order (see [`Tx`]), and the open group of
    /// [`Db::begin_grouped`] transactions.
    writer: Arc<writer::Writer>,
}

/// A transaction on a [`Db`]: it dereferences to its connection, as
/// sqlx's transaction does (`&mut *tx`, `&mut **tx` are executors).
///
/// On SQLite a transaction takes the database's one write lock at its
/// start (`BEGIN IMMEDIATE`), and a second one waits in SQLite's busy
/// handler, which polls with sleeps of up to 100 ms: under load the lock
/// sits idle between holders while waiters sleep. So every SQLite
/// transaction of a process first takes the process's write turn (a
/// first-come-first-served async lock) and holds it until it ends; the
/// lock itself is then always free when `BEGIN IMMEDIATE` asks, and the
/// next transaction starts the moment one ends. (Writers without a
/// transaction, and other processes, still meet the busy handler.) A
/// grouped transaction ([`Db::begin_grouped`]) may share one SQLite
/// transaction with others (see [`writer`]).
pub struct Tx {
    /// The connection's transaction; `None` once ended.
    inner: Option<sqlx::Transaction<'static, sqlx::Any>>,
    backend: Backend,
    turn: Option<writer::WriteTurn>,
    /// A grouped SQLite transaction's place in its group.
    group: Option<writer::Membership>,
}

/// What [`Tx`]'s connection is until the transaction ends.
const LIVE: &str = "a transaction keeps its connection until it ends";

/// The `kind` label of a write transaction: the kind of its
/// [`Db::begin_serialized`] lock name (`claim` of `claim:<node>`, …; the
/// known kinds only, so the label's values stay few), `plain` for
/// [`Db::begin`].
fn lock_kind(lock: Option<&str>) -> &'static str {
    const KINDS: &[&str] = &[
        "aggregates",
        "claim",
        "conductor",
        "flavors",
        "identity-assignments",
        "identity-revocations",
        "instance",
        "network",
        "network-default",
        "network-instance",
        "quota",
        "security-group-default",
        "services",
        "tasks",
    ];
    match lock {
        None => "plain",
        Some(name) => {
            let kind = name.split(':').next().unwrap_or(name);
            KINDS
                .iter()
                .find(|known| **known == kind)
                .copied()
                .unwrap_or("other")
        }
    }
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Tx").finish_non_exhaustive()
    }
}

impl std::ops::Deref for Tx {
    type Target = sqlx::AnyConnection;

    fn deref(&self) -> &Self::Target {
        self.inner.as_ref().expect(LIVE)
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.inner.as_mut().expect(LIVE)
    }
}

impl Tx {
    /// Commits (and passes the write turn on). A grouped transaction's
    /// answer is its group's commit.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let inner = self.inner.take().expect(LIVE);
        match self.group.take() {
            Some(membership) => {
                writer::end_member(inner, self.turn.take(), membership, writer::Ending::Keep).await
            }
            None => inner.commit().await,
        }
    }

    /// Runs `writes` (see [`Batch::run`]), then commits. A grouped SQLite
    /// transaction ends its part of the group with the writes' last
    /// hand-off, not one of its own: it releases its savepoint and opens
    /// the next member's there when it will hand the group on. When a
    /// write fails nothing is committed and the transaction is rolled back
    /// (a grouped one: its own part). Answers the rows each of `writes`
    /// returned, in order (see [`Batch::fetch_each`]).
    pub async fn commit_with(mut self, mut writes: Batch) -> Result<Vec<StatementRows>, DbError> {
        let Some((closing, savepoint_open)) = self
            .group
            .as_ref()
            .map(writer::Membership::closing_statements)
        else {
            let answers = writes.fetch_each(&mut self).await?;
            self.commit().await?;
            return Ok(answers);
        };
        let written = writes.len();
        for statement in closing {
            writes.push_statement(statement);
        }
        let mut answers = writes.fetch_each(&mut self).await?;
        answers.truncate(written);
        let inner = self.inner.take().expect(LIVE);
        match self.group.take() {
            Some(membership) => {
                let ending = writer::Ending::Kept { savepoint_open };
                writer::end_member(inner, self.turn.take(), membership, ending).await?;
            }
            None => inner.commit().await?,
        }
        Ok(answers)
    }

    /// Rolls back (and passes the write turn on). A grouped transaction
    /// undoes its own writes only.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let inner = self.inner.take().expect(LIVE);
        match self.group.take() {
            Some(membership) => {
                writer::end_member(inner, self.turn.take(), membership, writer::Ending::Undo).await
            }
            None => inner.rollback().await,
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        // Ended, or not grouped: the transaction's own drop rolls it back.
        if let (Some(inner), Some(membership)) = (self.inner.take(), self.group.take()) {
            writer::abandon(inner, self.turn.take(), membership);
        }
    }
}

/// The portable migrations (host/db/migrations), which both engines run.
static PORTABLE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations");
/// SQLite's own migrations (host/db/migrations/sqlite).
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
/// PostgreSQL's own migrations (host/db/migrations/postgres).
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// The migrations of `backend`, applied at start and by `novum db migrate`:
/// the portable ones and the engine's own, in number order.
pub fn migrator(backend: Backend) -> Migrator {
    let own = match backend {
        Backend::Sqlite => &SQLITE_MIGRATIONS,
        Backend::Postgres => &POSTGRES_MIGRATIONS,
    };
    Migrator::with_migrations(
        PORTABLE_MIGRATIONS
            .iter()
            .chain(own.iter())
            .cloned()
            .collect(),
    )
}

/// Runs `insert`, an `INSERT … RETURNING id` that leaves the table's `id`
/// column out, in `tx`, and returns the id the database gave the new row.
/// Every integer id novum shows (key pairs, aggregates, services, compute
/// nodes, migrations) comes from here: SQLite `INTEGER PRIMARY KEY
/// AUTOINCREMENT`, PostgreSQL an identity column. Ids increase, concurrent
/// inserts never share one, and a deleted row's id is not given again.
pub async fn insert_returning_id(
    tx: &mut Tx,
    insert: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
) -> Result<i64, DbError> {
    let row = insert.fetch_one(&mut **tx).await?;
    Ok(row.try_get("id")?)
}

/// What every SQLite connection is set up with.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 30000; \
                              PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";
/// What the writer's connection is set up with besides: no automatic
/// checkpoint (see [`spawn_checkpointer`]).
const SQLITE_WRITER_PRAGMAS: &str = "PRAGMA wal_autocheckpoint = 0;";

/// A SQLite pool of `connections`, each set up with [`SQLITE_PRAGMAS`] and
/// `more`. SQLite has one writer: a small pool, WAL, and writers that
/// wait. A connection to a local file does not go stale: no ping (a round
/// trip to the connection's worker thread) before each use.
fn sqlite_pool_options(connections: u32, more: &'static str) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                conn.execute(SQLITE_PRAGMAS).await?;
                if !more.is_empty() {
                    conn.execute(more).await?;
                }
                Ok(())
            })
        })
}

/// How often [`spawn_checkpointer`] copies the WAL into the database.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// SQLite: copies the write-ahead log into the database file in the
/// background, `PRAGMA wal_checkpoint(PASSIVE)` on a readers' connection
/// every [`CHECKPOINT_INTERVAL`] (a passive checkpoint waits for no reader
/// and no writer). The writer's own automatic checkpoint is off: it ran
/// inside the commit that crossed 1,000 WAL pages, copying them and
/// syncing the file while that transaction held the one writer's turn (a
/// fifth of the writer thread's time in a burst of creates, measured by
/// perf at 5,000 hosts). Ends once every handle of `writer`'s [`Db`] is
/// dropped.
fn spawn_checkpointer(pool: AnyPool, writer: std::sync::Weak<writer::Writer>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(CHECKPOINT_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if writer.strong_count() == 0 || pool.is_closed() {
                return;
            }
            if let Err(error) = pool.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
                tracing::warn!(%error, "checkpointing the SQLite write-ahead log failed");
            }
        }
    });
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_string(),
    }
}

impl Db {
    /// Opens `url` (`sqlite://path?mode=rwc` or `postgres://…`); does not migrate.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let open_error = |source| DbError::Open {
            url: redact(url),
            source,
        };
        let options = AnyConnectOptions::from_str(url).map_err(open_error)?;
        let pool_options = match backend {
            // The readers' pool; write transactions have a connection of
            // their own (`write_pool`).
            Backend::Sqlite => sqlite_pool_options(8, ""),
            Backend::Postgres => AnyPoolOptions::new().max_connections(32),
        };
        let pool = pool_options
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(open_error)?;
        let write_pool = match backend {
            Backend::Sqlite => sqlite_pool_options(1, SQLITE_WRITER_PRAGMAS)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await
                .map_err(open_error)?,
            Backend::Postgres => pool.clone(),
        };
        let writer: Arc<writer::Writer> = Arc::default();
        if backend == Backend::Sqlite {
            spawn_checkpointer(pool.clone(), Arc::downgrade(&writer));
        }
        Ok(Self {
            pool,
            write_pool,
            backend,
            writer,
        })
    }

    /// A SQLite transaction in this process's write turn (see [`Tx`]),
    /// joined to an open group when `grouped`.
    async fn begin_sqlite(&self, lock: Option<&str>, grouped: bool) -> Result<Tx, DbError> {
        let (inner, turn, group) =
            writer::begin(&self.write_pool, &self.writer, lock_kind(lock), grouped).await?;
        Ok(Tx {
            inner: Some(inner),
            backend: Backend::Sqlite,
            turn: Some(turn),
            group,
        })
    }

    /// A PostgreSQL transaction.
    async fn begin_postgres(&self) -> Result<Tx, DbError> {
        Ok(Tx {
            inner: Some(self.pool.begin().await?),
            backend: Backend::Postgres,
            turn: None,
            group: None,
        })
    }

    /// Opens `url` and applies every pending migration.
    pub async fn open(url: &str) -> Result<Self, DbError> {
        let db = Self::connect(url).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), DbError> {
        migrator(self.backend).run(&self.pool).await?;
        Ok(())
    }

    /// Closes the database: its pools, the writers' connection with
    /// them (SQLite folds its log into the database file when its last
    /// connection closes).
    pub async fn close(&self) {
        self.write_pool.close().await;
        self.pool.close().await;
    }

    /// The pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// What group commit ([`Db::begin_grouped`]) did so far in this
    /// process (SQLite; always nothing on PostgreSQL).
    pub fn write_groups(&self) -> writer::WriteGroups {
        self.writer.groups()
    }

    /// The engine behind the pool.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection of the pool, for reads outside a transaction.
    pub async fn connection(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, DbError> {
        Ok(self.pool.acquire().await?)
    }

    /// A transaction (reads, or writes that cannot race: single-row
    /// updates). SQLite: `BEGIN IMMEDIATE` as well — a deferred transaction
    /// that reads and then writes fails at once with "database is locked"
    /// (SQLITE_BUSY, no busy wait) when another connection wrote in between;
    /// taking the write lock at the start makes it wait its turn instead.
    /// Never hold one while opening another on the same database.
    pub async fn begin(&self) -> Result<Tx, DbError> {
        match self.backend {
            Backend::Sqlite => self.begin_sqlite(None, false).await,
            Backend::Postgres => self.begin_postgres().await,
        }
    }

    /// A transaction that serializes with every other `begin_serialized` on the
    /// same `lock` name: check-then-write sequences (quota check + instance
    /// insert, claims) run in it so no interleaving can break their invariant.
    /// SQLite: `BEGIN IMMEDIATE` (the database write lock). PostgreSQL: a
    /// transaction-scoped advisory lock on the name's hash.
    ///
    /// Lock order (PostgreSQL, where names are separate locks): `conductor`
    /// before `instance:<uuid>` before `quota:<project>` before
    /// `network:<network id>` (several in id order: novum-network's address
    /// allocation); a transaction that needs more than one takes them in
    /// that order (the others with [`Db::serialize_in`]), and may start
    /// anywhere in it. No lock is global on the create path: a create takes
    /// `quota:<project>` (then its networks'), the steps of a build
    /// (scheduling failures, the agent's result) `instance:<uuid>` alone; the
    /// other workflows on an instance still take `conductor`, then
    /// `instance:<uuid>`. `network-default` (creating the default network)
    /// comes before `quota:<project>`; `claim:<node uuid>`,
    /// `tasks:<host>`, `security-group-default:<project>` and
    /// `network-instance:<uuid>` are taken alone.
    pub async fn begin_serialized(&self, lock: &str) -> Result<Tx, DbError> {
        match self.backend {
            Backend::Sqlite => self.begin_sqlite(Some(lock), false).await,
            Backend::Postgres => {
                let mut tx = self.begin_postgres().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(advisory_key(lock))
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    /// [`Db::begin_serialized`] whose commit may share one SQLite
    /// transaction with other grouped transactions that wait for the
    /// writer (group commit, see [`writer`]): it costs its holder the
    /// latency of the members after it, and saves the writer a `BEGIN` and
    /// a `COMMIT` per member. Only for transactions whose holder, from its
    /// commit to the commit's answer, holds nothing (an in-process lock) a
    /// transaction could wait for inside. PostgreSQL: `begin_serialized`.
    pub async fn begin_grouped(&self, lock: &str) -> Result<Tx, DbError> {
        match self.backend {
            Backend::Sqlite => self.begin_sqlite(Some(lock), true).await,
            Backend::Postgres => self.begin_serialized(lock).await,
        }
    }

    /// A transaction like [`Db::begin`] that may be grouped (see
    /// [`Db::begin_grouped`]).
    pub async fn begin_grouped_plain(&self) -> Result<Tx, DbError> {
        match self.backend {
            Backend::Sqlite => self.begin_sqlite(None, true).await,
            Backend::Postgres => self.begin_postgres().await,
        }
    }

    /// Joins `lock` from inside a transaction begun with
    /// [`Db::begin_serialized`] (under another name): PostgreSQL takes the
    /// name's advisory transaction lock too; SQLite already holds the one
    /// database write lock.
    pub async fn serialize_in(&self, tx: &mut Tx, lock: &str) -> Result<(), DbError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(advisory_key(lock))
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

/// A stable 63-bit key for a PostgreSQL advisory lock name (FNV-1a).
fn advisory_key(name: &str) -> i64 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash >> 1) as i64
}

/// Now, as the database stores timestamps (RFC 3339 UTC, microseconds).
pub fn now() -> String {
    timestamp(chrono::Utc::now())
}

/// A timestamp as the database stores it.
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Test support: a fresh database for each test, SQLite in a temp dir, or
/// PostgreSQL (a new schema-isolated database) when `NOVUM_TEST_POSTGRES` or
/// the default local server is reachable.
pub mod testing {
    use super::{Db, DbError};

    /// A fresh, migrated SQLite database in `dir`.
    pub async fn sqlite(dir: &std::path::Path) -> Result<Db, DbError> {
        Db::open(&format!(
            "sqlite://{}?mode=rwc",
            dir.join("novum.db").display()
        ))
        .await
    }

    /// Applies the migrations of `db` up to and including `version` only (to
    /// test an upgrade: rows written by an older novum, then the rest).
    pub async fn migrate_to(db: &Db, version: i64) -> Result<(), DbError> {
        super::migrator(db.backend())
            .run_to(version, db.pool())
            .await?;
        Ok(())
    }

    /// The admin URL of the test PostgreSQL server.
    pub fn postgres_admin_url() -> String {
        std::env::var("NOVUM_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
    }

    /// A fresh, migrated PostgreSQL database (created with a unique name), or
    /// `None` with the reason printed when no server answers.
    pub async fn postgres() -> Option<Db> {
        let url = postgres_url().await?;
        match Db::open(&url).await {
            Ok(db) => Some(db),
            Err(error) => {
                println!("skipping PostgreSQL: {error}");
                None
            }
        }
    }

    /// The URL of a fresh, empty PostgreSQL database (created with a unique
    /// name), or `None` with the reason printed when no server answers.
    pub async fn postgres_url() -> Option<String> {
        let admin_url = postgres_admin_url();
        let admin = match Db::connect(&admin_url).await {
            Ok(admin) => admin,
            Err(error) => {
                println!("skipping PostgreSQL: {error}");
                return None;
            }
        };
        let name = format!("novum_test_{}", uuid::Uuid::new_v4().simple());
        if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(admin.pool())
            .await
        {
            println!("skipping PostgreSQL: cannot create a test database: {error}");
            return None;
        }
        admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map(|(base, _)| base.to_string())
            .unwrap_or(admin_url);
        Some(format!("{base}/{name}"))
    }
}

impl DbError {
    /// Whether this is a write refused by a unique constraint.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::Query(error) if is_unique_violation(error))
    }
}

/// Whether an insert failed on a unique constraint.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(error) => {
            error.is_unique_violation()
                || error.message().contains("UNIQUE constraint failed")
                || error.code().as_deref() == Some("23505")
        }
        _ => false,
    }
}
