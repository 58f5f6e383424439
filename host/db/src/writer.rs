//! SQLite's one writer: the process's write turn, and group commit.
//!
//! The turn (see [`crate::Tx`]): every SQLite transaction of the process
//! first takes it, first come first served, and holds it until it ends.
//!
//! Group commit: a transaction begun with [`crate::Db::begin_grouped`]
//! that commits while others wait for the turn does not commit. It
//! releases its writes into the open transaction and hands that
//! transaction, still open, to the next holder of the turn, which joins it
//! behind a savepoint when it is grouped as well (its rollback then undoes
//! its own writes only), or commits it first when it is not. The member
//! that finds nobody waiting, or the group at [`MAX_MEMBERS`] or older than
//! [`MAX_AGE`], commits, and every member's `commit` returns that commit's
//! answer: a member never returns before its writes are as durable as a
//! transaction of its own made them, and a failed commit fails all of them.
//! A member saves its `BEGIN` and its `COMMIT` (a commit writes each page
//! the transaction dirtied to the log; members dirty the same pages: the
//! indexes' last pages, the outbox's, the tasks'), each a round trip to
//! the connection's worker thread. A member that ends with
//! [`crate::Tx::commit_with`] sends the end of its part (`RELEASE`) and the
//! next member's `SAVEPOINT` with its last writes, so that neither its end
//! nor the next member's start costs a round trip of its own.
//!
//! A member waits for the members after it. So a transaction may be
//! grouped only when, between its commit and the commit's answer, its
//! holder holds nothing that another transaction's holder could wait for
//! while it holds the turn (no in-process lock held across the commit that
//! a transaction takes inside). A member whose successor went away (its
//! future dropped while it waited for the turn) commits the group itself
//! after [`PATIENCE`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::{Any, AnyPool, Executor, Transaction};
use tokio::sync::oneshot;

/// Members of one group at most: the first member's commit waits for the
/// others, so its latency grows with the group.
pub const MAX_MEMBERS: usize = 32;

/// A group older than this (since its `BEGIN`) is committed by its next
/// member instead of handed on.
pub const MAX_AGE: Duration = Duration::from_millis(20);

/// How long a member waits for the group's answer before it looks whether
/// the group was left open with nobody to take it on.
const PATIENCE: Duration = Duration::from_millis(50);

/// Opens the next member's part of a group.
const SAVEPOINT: &str = "SAVEPOINT novum_group_member";
/// Keeps a member's part (its writes join the group's transaction).
const RELEASE: &str = "RELEASE novum_group_member";
/// Undoes a member's part.
const ROLLBACK: &str = "ROLLBACK TO novum_group_member; RELEASE novum_group_member";
/// Keeps a member's part and opens the next member's.
const RELEASE_AND_OPEN: &str = "RELEASE novum_group_member; SAVEPOINT novum_group_member";
/// Undoes a member's part and opens the next member's.
const ROLLBACK_AND_OPEN: &str =
    "ROLLBACK TO novum_group_member; RELEASE novum_group_member; SAVEPOINT novum_group_member";

/// A group's answer to each member: its commit's error as text (an error
/// is not `Clone`).
type Outcome = Result<(), String>;

/// The process's SQLite writer: the turn, how many wait for it, and the
/// group transaction left open for the next holder.
#[derive(Default)]
pub(crate) struct Writer {
    turn: Arc<tokio::sync::Mutex<()>>,
    waiting: AtomicUsize,
    parked: Mutex<Option<OpenGroup>>,
    /// Commits of groups of more than one member.
    shared_commits: AtomicU64,
    /// The members of those groups.
    shared_members: AtomicU64,
}

/// What group commit did so far in a process ([`crate::Db::write_groups`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteGroups {
    /// Commits of groups of more than one member.
    pub shared_commits: u64,
    /// The members of those groups (each saved its own commit but one).
    pub shared_members: u64,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Writer")
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// What group commit did so far.
    pub(crate) fn groups(&self) -> WriteGroups {
        WriteGroups {
            shared_commits: self.shared_commits.load(Ordering::Relaxed),
            shared_members: self.shared_members.load(Ordering::Relaxed),
        }
    }

    fn park(&self, group: OpenGroup) {
        let previous = self
            .parked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(group);
        // Only the turn's holder parks, and it took what was parked first.
        if let Some(previous) = previous {
            previous.fail("a group transaction was replaced".to_string());
        }
    }

    fn take_parked(&self) -> Option<OpenGroup> {
        self.parked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Counts a waiter for the turn while it waits (also when its future is
/// dropped while waiting).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// This process's SQLite write turn, held by one transaction: how long it
/// was waited for and held goes to `/metrics`
/// (`novum_db_write_turn_wait_seconds`, `novum_db_write_turn_held_seconds`:
/// the one writer's queue and its busy time).
pub(crate) struct WriteTurn {
    _guard: tokio::sync::OwnedMutexGuard<()>,
    since: Instant,
    kind: &'static str,
}

impl WriteTurn {
    async fn take(writer: &Writer, kind: &'static str) -> Self {
        let asked = Instant::now();
        let waiting = Waiting::new(&writer.waiting);
        let guard = Arc::clone(&writer.turn).lock_owned().await;
        drop(waiting);
        let since = Instant::now();
        metrics::histogram!("novum_db_write_turn_wait_seconds", "kind" => kind)
            .record(since.duration_since(asked).as_secs_f64());
        Self {
            _guard: guard,
            since,
            kind,
        }
    }
}

impl Drop for WriteTurn {
    fn drop(&mut self) {
        metrics::histogram!("novum_db_write_turn_held_seconds", "kind" => self.kind)
            .record(self.since.elapsed().as_secs_f64());
    }
}

/// A group's open transaction and the members waiting for its commit.
struct OpenGroup {
    tx: Transaction<'static, Any>,
    members: Vec<oneshot::Sender<Outcome>>,
    opened: Instant,
    /// The member that parked it opened the next member's savepoint with
    /// its own last statements (so joining costs no round trip).
    savepoint_open: bool,
}

impl OpenGroup {
    /// Commits on a task of its own, holding `turn` until it is done, and
    /// answers every member: a caller dropped while it waits does not cut
    /// the commit short (its members would hear an error for a commit that
    /// happened, and a claim would be tried again elsewhere).
    async fn commit(self, writer: &Arc<Writer>, turn: Option<WriteTurn>) -> Outcome {
        let writer = Arc::clone(writer);
        let committing = tokio::spawn(async move {
            let outcome = self.commit_here(&writer).await;
            drop(turn);
            outcome
        });
        committing
            .await
            .unwrap_or_else(|error| Err(format!("the commit's task failed: {error}")))
    }

    /// Commits, and answers every member.
    async fn commit_here(self, writer: &Writer) -> Outcome {
        let Self { tx, members, .. } = self;
        metrics::histogram!("novum_db_group_commit_members").record(members.len() as f64);
        if members.len() > 1 {
            writer.shared_commits.fetch_add(1, Ordering::Relaxed);
            writer
                .shared_members
                .fetch_add(members.len() as u64, Ordering::Relaxed);
        }
        let outcome = tx.commit().await.map_err(|error| error.to_string());
        for member in members {
            let _ = member.send(outcome.clone());
        }
        outcome
    }

    /// Rolls back (the transaction dropped), and answers every member `why`.
    fn fail(self, why: String) {
        let Self { tx, members, .. } = self;
        drop(tx);
        for member in members {
            let _ = member.send(Err(why.clone()));
        }
    }
}

/// A grouped transaction's place in its group.
pub(crate) struct Membership {
    writer: Arc<Writer>,
    /// The members before it, waiting for the group's commit.
    earlier: Vec<oneshot::Sender<Outcome>>,
    /// It joined an open group behind [`SAVEPOINT`] (the group's first
    /// member began the transaction itself).
    joined: bool,
    opened: Instant,
}

/// The group's failure as a member's commit error.
fn group_error(why: String) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(format!(
        "the grouped commit failed: {why}"
    )))
}

/// A SQLite transaction in the write turn: joined to the open group when
/// `grouped` and one is open (a group left open is committed first when
/// not), else `BEGIN IMMEDIATE`.
pub(crate) async fn begin(
    pool: &AnyPool,
    writer: &Arc<Writer>,
    kind: &'static str,
    grouped: bool,
) -> Result<(Transaction<'static, Any>, WriteTurn, Option<Membership>), sqlx::Error> {
    let turn = WriteTurn::take(writer, kind).await;
    if let Some(group) = writer.take_parked() {
        if grouped {
            let OpenGroup {
                mut tx,
                members,
                opened,
                savepoint_open,
            } = group;
            let joined = if savepoint_open {
                Ok(())
            } else {
                tx.execute(SAVEPOINT).await.map(|_| ())
            };
            match joined {
                Ok(()) => {
                    let membership = Membership {
                        writer: Arc::clone(writer),
                        earlier: members,
                        joined: true,
                        opened,
                    };
                    return Ok((tx, turn, Some(membership)));
                }
                Err(error) => OpenGroup {
                    tx,
                    members,
                    opened,
                    savepoint_open: false,
                }
                .fail(error.to_string()),
            }
        } else {
            // Its members have their answer; this transaction's own begins.
            let _ = group.commit(writer, None).await;
        }
    }
    let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let membership = grouped.then(|| Membership {
        writer: Arc::clone(writer),
        earlier: Vec::new(),
        joined: false,
        opened: Instant::now(),
    });
    Ok((tx, turn, membership))
}

/// How a grouped transaction ends its part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Its writes are kept (a commit).
    Keep,
    /// Its writes are undone (a rollback, an error, a drop).
    Undo,
    /// Its writes are kept, and its own last statements already ended its
    /// part ([`Membership::closing_statements`]): `savepoint_open` when
    /// they opened the next member's savepoint too.
    Kept {
        /// The next member's savepoint is open.
        savepoint_open: bool,
    },
}

impl Membership {
    /// Whether a member ending now would hand the group on (others wait
    /// for the turn, and the group, this member in it, is neither full nor
    /// old) rather than commit it.
    fn hands_on(&self, keep: bool) -> bool {
        let members = self.earlier.len() + usize::from(keep);
        self.writer.waiting.load(Ordering::SeqCst) > 0
            && members < MAX_MEMBERS
            && self.opened.elapsed() < MAX_AGE
    }

    /// The statements that end this member's part when run after its last
    /// write (so that its commit costs no round trip of its own), and
    /// whether they open the next member's savepoint: a member that will
    /// hand the group on releases its part (when it joined behind a
    /// savepoint) and opens the next one's; one that will commit needs
    /// nothing (`COMMIT` ends every savepoint).
    pub(crate) fn closing_statements(&self) -> (&'static [&'static str], bool) {
        match (self.hands_on(true), self.joined) {
            (true, true) => (&[RELEASE, SAVEPOINT], true),
            (true, false) => (&[SAVEPOINT], true),
            (false, _) => (&[], false),
        }
    }
}

/// Ends a grouped transaction's part as `ending` says; then hands the open
/// group on to the next holder of the turn or commits it. A kept part's
/// answer is the group's commit.
pub(crate) async fn end_member(
    mut tx: Transaction<'static, Any>,
    turn: Option<WriteTurn>,
    membership: Membership,
    ending: Ending,
) -> Result<(), sqlx::Error> {
    let keep = ending != Ending::Undo;
    let hand_on = membership.hands_on(keep)
        && match ending {
            // A joined member whose last statements did not release its
            // part (it was to commit) commits.
            Ending::Kept { savepoint_open } => savepoint_open || !membership.joined,
            Ending::Keep | Ending::Undo => true,
        };
    let Membership {
        writer,
        earlier,
        joined,
        opened,
    } = membership;
    // What is left to say to SQLite: a member that hands on opens the next
    // one's savepoint with its own last statement.
    let (statement, mut savepoint_open) = match (ending, joined, hand_on) {
        (Ending::Kept { savepoint_open }, _, _) => (None, savepoint_open),
        // The group's first member: nobody before it.
        (Ending::Undo, false, _) => return tx.rollback().await,
        (Ending::Keep, true, true) => (Some(RELEASE_AND_OPEN), true),
        (Ending::Undo, true, true) => (Some(ROLLBACK_AND_OPEN), true),
        (Ending::Undo, true, false) => (Some(ROLLBACK), false),
        // `COMMIT` ends a joined member's savepoint; a first member hands
        // on without one (the next opens its own).
        (Ending::Keep, _, _) => (None, false),
    };
    if let Some(statement) = statement
        && let Err(error) = tx.execute(statement).await
    {
        OpenGroup {
            tx,
            members: earlier,
            opened,
            savepoint_open: false,
        }
        .fail(error.to_string());
        return Err(error);
    }
    let mut members = earlier;
    let answer = keep.then(|| {
        let (sender, receiver) = oneshot::channel();
        members.push(sender);
        receiver
    });
    if !hand_on {
        // A savepoint opened for a successor that went away is committed
        // with the rest.
        savepoint_open = false;
    }
    let group = OpenGroup {
        tx,
        members,
        opened,
        savepoint_open,
    };
    if hand_on {
        writer.park(group);
        drop(turn);
        return match answer {
            Some(answer) => wait_for(answer, &writer).await,
            None => Ok(()),
        };
    }
    let outcome = group.commit(&writer, turn).await;
    if keep {
        outcome.map_err(group_error)
    } else {
        Ok(())
    }
}

/// A grouped transaction dropped without its end (an error on its way, or
/// its future dropped): its part is undone, and the group goes on, on a
/// task of its own (a drop cannot wait). Without a runtime the group
/// rolls back and its members are told.
pub(crate) fn abandon(
    tx: Transaction<'static, Any>,
    turn: Option<WriteTurn>,
    membership: Membership,
) {
    if !membership.joined {
        // Nobody before it: the transaction's own drop rolls it back.
        drop(tx);
        drop(turn);
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move {
                let _ = end_member(tx, turn, membership, Ending::Undo).await;
            });
        }
        Err(_) => OpenGroup {
            tx,
            members: membership.earlier,
            opened: membership.opened,
            savepoint_open: false,
        }
        .fail("the transaction was dropped outside a runtime".to_string()),
    }
}

/// Waits for the group's answer; when it is slow to come, takes the turn
/// and commits a group left open (its next holder gone).
async fn wait_for(
    mut answer: oneshot::Receiver<Outcome>,
    writer: &Arc<Writer>,
) -> Result<(), sqlx::Error> {
    loop {
        match tokio::time::timeout(PATIENCE, &mut answer).await {
            Ok(Ok(outcome)) => return outcome.map_err(group_error),
            Ok(Err(_)) => {
                return Err(group_error(
                    "its transaction ended without an answer".to_string(),
                ));
            }
            Err(_slow) => {
                let turn = WriteTurn::take(writer, "group-commit").await;
                if let Some(group) = writer.take_parked() {
                    let _ = group.commit(writer, Some(turn)).await;
                }
            }
        }
    }
}
