//! The scheduler's host state, kept in memory (Nova's HostManager): loaded
//! whole once, then brought up to date before each decision from the change
//! log the database's triggers write (`host_state_changes`, migration 0102),
//! so a decision reads only what changed since the last one.
//!
//! - A change names a host (its node, an instance placed on or taken off it,
//!   its service disabled or forced down): that host is re-read, alone. A
//!   change with no host means aggregates changed: they are re-read and
//!   every host's zone and aggregates re-derived in memory.
//! - Liveness is not logged (every heartbeat would write a row): the
//!   services' `last_seen_up` is re-read every [`LIVENESS_INTERVAL`] and
//!   `service_up` recomputed.
//! - Every controller reads the same log, so a claim one controller makes is
//!   seen by the others at their next decision. A stale view can still pick
//!   a host that has just filled up: the claim's generation check refuses it
//!   and the decision moves to an alternate (see `claims`).
//! - Log ids are handed out when a row is inserted, not when it commits, so
//!   on PostgreSQL a reader can see id 11 before id 10 commits. The cursor
//!   (`novum_db::GapCursor`, which the notification dispatcher uses too)
//!   keeps such gaps open and reads from below them until they fill or
//!   [`GAP_PATIENCE`] passes; and the whole state is re-read every
//!   `[scheduler] host_state_resync_seconds` all the same.
//!
//! Snapshots are immutable and shared: an unchanged cloud hands every
//! decision the same [`CloudSnapshot`] (and the column groups plugins have
//! already had built), a change makes a new one sharing every unchanged host.
//!
//! A decision does not hold the scheduler's slot while its claim commits:
//! the pipeline's choice is *reserved* here ([`HostStateCache::reserve`]),
//! the slot passes to the next decision, and the claim's transaction runs
//! beside it. Every snapshot handed out carries the reservations not yet
//! seen in the database applied to their hosts (as Nova's HostManager
//! consumes a selection in memory), so the next decision counts them. A
//! reservation ends when its claim failed ([`Reservation::cancel`]), or, once
//! its claim committed ([`Reservation::committed`]), at the first refresh
//! that began after the commit (which reads the claim's change-log row). A
//! host that lists the reserved instance already does not count it again,
//! so a build's claim is counted exactly once; a resize's (whose instance
//! the destination does not list yet) may be counted twice for the moment
//! between its commit and the next refresh, never not at all.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use sqlx::Row;
use tokio::sync::Mutex;

use novum_db::{Db, DbError, GapCursor};
use novum_plugin_sdk::Request;
use novum_scheduler::{Aggregate, CloudSnapshot, HostState};

use super::snapshot::{self, LoadedHost, Membership};

/// How often the services' liveness is re-read.
pub const LIVENESS_INTERVAL: Duration = Duration::from_secs(2);

/// How long a gap in the change log's ids is waited for (a transaction that
/// took its id and has not committed yet) before it counts as rolled back.
pub const GAP_PATIENCE: Duration = novum_db::gap_cursor::DEFAULT_PATIENCE;

/// How long change-log rows are kept. A controller that has not looked for
/// longer than half of it re-reads everything instead.
pub const CHANGE_RETENTION: Duration = Duration::from_secs(600);

/// One host as cached: its state and its liveness inputs.
#[derive(Debug)]
struct CachedHost {
    state: Arc<HostState>,
    last_seen_up: Option<String>,
    forced_down: bool,
}

impl CachedHost {
    fn new(loaded: LoadedHost) -> Self {
        Self {
            state: Arc::new(loaded.state),
            last_seen_up: loaded.last_seen_up,
            forced_down: loaded.forced_down,
        }
    }
}

/// The state between decisions.
#[derive(Debug, Default)]
struct Cached {
    hosts: BTreeMap<String, CachedHost>,
    aggregates: Vec<(Aggregate, Vec<String>)>,
    cursor: GapCursor,
    snapshot: Option<Arc<CloudSnapshot>>,
    loaded_at: Option<Instant>,
    polled_at: Option<Instant>,
    liveness_at: Option<Instant>,
}

/// What one refresh did, for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refresh {
    /// Everything was re-read.
    pub full: bool,
    /// Hosts re-read from the change log.
    pub hosts_reread: usize,
    /// Aggregates were re-read.
    pub aggregates_reread: bool,
}

/// A decision's choice whose claim has not been read back from the
/// database yet.
#[derive(Debug)]
struct Reserved {
    id: u64,
    host: String,
    request: Request,
    instance_uuid: String,
    /// When its claim committed.
    committed_at: Option<Instant>,
}

/// The reservations of one controller, and the overlay snapshot last made
/// from them (reused while neither they nor the base changed).
#[derive(Debug, Default)]
struct Reservations {
    next_id: u64,
    held: Vec<Reserved>,
    /// Bumped by every change of `held`.
    version: u64,
    overlay: Option<Overlay>,
}

/// A snapshot with reservations applied, and what it was made from.
#[derive(Debug)]
struct Overlay {
    base: Arc<CloudSnapshot>,
    version: u64,
    snapshot: Arc<CloudSnapshot>,
}

/// The in-memory host state of one controller.
#[derive(Debug)]
pub struct HostStateCache {
    db: Db,
    default_zone: String,
    down_time_seconds: u64,
    resync: Duration,
    cached: Mutex<Cached>,
    reservations: Arc<std::sync::Mutex<Reservations>>,
    /// Signalled whenever a reservation is answered (committed or ended).
    answered: Arc<tokio::sync::Notify>,
}

/// A reserved choice (see the module doc). Dropped without
/// [`Reservation::committed`], it is cancelled.
#[derive(Debug)]
pub struct Reservation {
    id: u64,
    reservations: Arc<std::sync::Mutex<Reservations>>,
    answered: Arc<tokio::sync::Notify>,
    done: bool,
}

impl Reservation {
    /// Its claim committed: it ends at the next refresh that begins from now.
    pub fn committed(mut self) {
        self.done = true;
        let mut reservations = lock(&self.reservations);
        if let Some(reserved) = reservations
            .held
            .iter_mut()
            .find(|reserved| reserved.id == self.id)
        {
            reserved.committed_at = Some(Instant::now());
        }
        drop(reservations);
        self.answered.notify_waiters();
    }

    /// Its claim failed: it ends now.
    pub fn cancel(mut self) {
        self.end();
    }

    fn end(&mut self) {
        self.done = true;
        let mut reservations = lock(&self.reservations);
        let before = reservations.held.len();
        reservations.held.retain(|reserved| reserved.id != self.id);
        if reservations.held.len() != before {
            reservations.version += 1;
        }
        drop(reservations);
        self.answered.notify_waiters();
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            self.end();
        }
    }
}

fn lock(reservations: &std::sync::Mutex<Reservations>) -> std::sync::MutexGuard<'_, Reservations> {
    reservations
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl HostStateCache {
    /// A cache over `db`, empty until the first [`HostStateCache::snapshot`].
    pub fn new(db: Db, default_zone: &str, down_time_seconds: u64, resync: Duration) -> Self {
        Self {
            db,
            default_zone: default_zone.to_string(),
            down_time_seconds,
            resync,
            cached: Mutex::new(Cached::default()),
            reservations: Arc::default(),
            answered: Arc::default(),
        }
    }

    /// The cloud as it is now, brought up to date from the change log, with
    /// the reservations whose claims it does not show yet applied.
    pub async fn snapshot(&self) -> Result<Arc<CloudSnapshot>, DbError> {
        Ok(self.snapshot_with_unanswered().await?.0)
    }

    /// [`HostStateCache::snapshot`], and the reservations it counts whose
    /// claims are not answered yet (see
    /// [`HostStateCache::wait_answered`]).
    pub async fn snapshot_with_unanswered(
        &self,
    ) -> Result<(Arc<CloudSnapshot>, Vec<u64>), DbError> {
        let started = Instant::now();
        let base = self.refresh().await?.0;
        let mut reservations = lock(&self.reservations);
        let before = reservations.held.len();
        reservations.held.retain(|reserved| {
            reserved
                .committed_at
                .is_none_or(|at| at >= started && !shows(&base, reserved))
        });
        if reservations.held.len() != before {
            reservations.version += 1;
        }
        if reservations.held.is_empty() {
            reservations.overlay = None;
            return Ok((base, Vec::new()));
        }
        let unanswered = reservations
            .held
            .iter()
            .filter(|reserved| reserved.committed_at.is_none())
            .map(|reserved| reserved.id)
            .collect();
        if let Some(overlay) = &reservations.overlay
            && overlay.version == reservations.version
            && Arc::ptr_eq(&overlay.base, &base)
        {
            return Ok((Arc::clone(&overlay.snapshot), unanswered));
        }
        let snapshot = Arc::new(apply_reservations(&base, &reservations.held));
        reservations.overlay = Some(Overlay {
            base,
            version: reservations.version,
            snapshot: Arc::clone(&snapshot),
        });
        Ok((snapshot, unanswered))
    }

    /// Waits (at most `patience`) until each reservation of `ids` is
    /// answered: its claim committed or failed. A decision that found no
    /// host while others' claims were in flight waits for them and looks
    /// again, so that a claim about to fail never makes it give up.
    pub async fn wait_answered(&self, ids: &[u64], patience: Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let answered = self.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            let pending = lock(&self.reservations)
                .held
                .iter()
                .any(|reserved| reserved.committed_at.is_none() && ids.contains(&reserved.id));
            if !pending || tokio::time::timeout_at(deadline, answered).await.is_err() {
                return;
            }
        }
    }

    /// Reserves `host` for `instance_uuid` as `request` asks (see the module
    /// doc): every snapshot counts it until it ends.
    pub fn reserve(&self, host: &str, request: &Request, instance_uuid: &str) -> Reservation {
        let mut reservations = lock(&self.reservations);
        reservations.next_id += 1;
        reservations.version += 1;
        let id = reservations.next_id;
        reservations.held.push(Reserved {
            id,
            host: host.to_string(),
            request: request.clone(),
            instance_uuid: instance_uuid.to_string(),
            committed_at: None,
        });
        Reservation {
            id,
            reservations: Arc::clone(&self.reservations),
            answered: Arc::clone(&self.answered),
            done: false,
        }
    }

    /// Reservations held (not yet seen back from the database).
    pub fn reservations_held(&self) -> usize {
        lock(&self.reservations).held.len()
    }

    /// Brings the state up to date: the snapshot, and what it took.
    pub async fn refresh(&self) -> Result<(Arc<CloudSnapshot>, Refresh), DbError> {
        let mut cached = self.cached.lock().await;
        let now = Instant::now();
        let stale = |at: Option<Instant>, limit: Duration| {
            at.is_none_or(|at| now.duration_since(at) >= limit)
        };
        if cached.snapshot.is_none()
            || stale(cached.loaded_at, self.resync)
            || stale(cached.polled_at, CHANGE_RETENTION / 2)
        {
            self.load_all(&mut cached, now).await?;
            let snapshot = Arc::clone(cached.snapshot.get_or_insert_default());
            let refresh = Refresh {
                full: true,
                ..Refresh::default()
            };
            return Ok((snapshot, refresh));
        }
        let mut refresh = Refresh::default();
        let mut changed = false;
        let (hosts, aggregates) = self.read_changes(&mut cached.cursor, now).await?;
        cached.polled_at = Some(now);
        if aggregates {
            refresh.aggregates_reread = true;
            changed |= self.reread_aggregates(&mut cached).await?;
        }
        if !hosts.is_empty() {
            refresh.hosts_reread = hosts.len();
            self.reread_hosts(&mut cached, hosts).await?;
            changed = true;
        }
        if stale(cached.liveness_at, LIVENESS_INTERVAL) {
            cached.liveness_at = Some(now);
            changed |= self.reread_liveness(&mut cached).await?;
        }
        if changed || cached.snapshot.is_none() {
            cached.snapshot = Some(Arc::new(build_snapshot(&cached)));
        }
        let snapshot = Arc::clone(cached.snapshot.get_or_insert_default());
        Ok((snapshot, refresh))
    }

    /// Re-reads everything, and moves the cursor past the log as it was
    /// before the read (changes made during it are read again next time).
    async fn load_all(&self, cached: &mut Cached, now: Instant) -> Result<(), DbError> {
        let last: Option<i64> = sqlx::query("SELECT MAX(id) AS last FROM host_state_changes")
            .fetch_one(self.db.pool())
            .await?
            .try_get("last")?;
        let aggregates = snapshot::aggregates(&self.db).await?;
        let membership = Membership::new(&aggregates, &self.default_zone);
        let hosts =
            snapshot::load_hosts(&self.db, &membership, self.down_time_seconds, None).await?;
        cached.hosts = hosts
            .into_iter()
            .map(|host| (host.state.name.clone(), CachedHost::new(host)))
            .collect();
        cached.aggregates = aggregates;
        cached.cursor = GapCursor::at(last.unwrap_or(0), GAP_PATIENCE);
        cached.loaded_at = Some(now);
        cached.polled_at = Some(now);
        cached.liveness_at = Some(now);
        cached.snapshot = Some(Arc::new(build_snapshot(cached)));
        Ok(())
    }

    /// The hosts named by changes since the cursor, and whether aggregates
    /// changed.
    async fn read_changes(
        &self,
        cursor: &mut GapCursor,
        now: Instant,
    ) -> Result<(Vec<String>, bool), DbError> {
        let rows = sqlx::query("SELECT id, host FROM host_state_changes WHERE id > $1 ORDER BY id")
            .bind(cursor.floor())
            .fetch_all(self.db.pool())
            .await?;
        let mut by_id = HashMap::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let host: Option<String> = row.try_get("host")?;
            by_id.insert(id, host);
        }
        let visible: Vec<i64> = by_id.keys().copied().collect();
        let mut hosts = HashSet::new();
        let mut aggregates = false;
        for id in cursor.advance(&visible, now) {
            match by_id.remove(&id).flatten() {
                Some(host) => {
                    hosts.insert(host);
                }
                None => aggregates = true,
            }
        }
        Ok((hosts.into_iter().collect(), aggregates))
    }

    /// Re-reads the aggregates and re-derives every host's zone and
    /// aggregates; whether any host changed.
    async fn reread_aggregates(&self, cached: &mut Cached) -> Result<bool, DbError> {
        let aggregates = snapshot::aggregates(&self.db).await?;
        let membership = Membership::new(&aggregates, &self.default_zone);
        let mut changed = aggregates != cached.aggregates;
        for (name, host) in &mut cached.hosts {
            let zone = membership.zone_of(name);
            let ids = membership.aggregates_of(name);
            if host.state.availability_zone != zone || host.state.aggregates != ids {
                let state = Arc::make_mut(&mut host.state);
                state.availability_zone = zone;
                state.aggregates = ids;
                changed = true;
            }
        }
        cached.aggregates = aggregates;
        Ok(changed)
    }

    /// Re-reads `names` (a host no longer in the database leaves the state).
    async fn reread_hosts(&self, cached: &mut Cached, names: Vec<String>) -> Result<(), DbError> {
        let membership = Membership::new(&cached.aggregates, &self.default_zone);
        let loaded =
            snapshot::load_hosts(&self.db, &membership, self.down_time_seconds, Some(&names))
                .await?;
        for name in &names {
            cached.hosts.remove(name);
        }
        for host in loaded {
            cached
                .hosts
                .insert(host.state.name.clone(), CachedHost::new(host));
        }
        Ok(())
    }

    /// Re-reads when each compute service last reported and recomputes
    /// which are up; whether any host's liveness changed.
    async fn reread_liveness(&self, cached: &mut Cached) -> Result<bool, DbError> {
        let mut rows = sqlx::query(
            "SELECT n.host, s.last_seen_up, s.forced_down FROM compute_nodes n \
             JOIN services s ON s.id = n.service_id",
        )
        .fetch(self.db.pool());
        let mut changed = false;
        while let Some(row) = rows.try_next().await? {
            let name: String = row.try_get("host")?;
            let Some(host) = cached.hosts.get_mut(&name) else {
                continue;
            };
            host.last_seen_up = row.try_get("last_seen_up")?;
            host.forced_down = row.try_get::<i64, _>("forced_down")? != 0;
            let up = snapshot::service_is_up(
                host.last_seen_up.as_deref(),
                host.forced_down,
                self.down_time_seconds,
            );
            if host.state.service_up != up {
                Arc::make_mut(&mut host.state).service_up = up;
                changed = true;
            }
        }
        Ok(changed)
    }
}

/// The snapshot of what is cached, hosts in name order.
fn build_snapshot(cached: &Cached) -> CloudSnapshot {
    CloudSnapshot::from_shared(
        cached
            .hosts
            .values()
            .map(|host| Arc::clone(&host.state))
            .collect(),
        cached
            .aggregates
            .iter()
            .map(|(aggregate, _)| aggregate.clone())
            .collect(),
    )
}

/// Whether `host` already lists the reservation's instance (its claim was
/// read back).
fn holds(host: &HostState, reserved: &Reserved) -> bool {
    host.instances
        .iter()
        .any(|instance| instance.uuid == reserved.instance_uuid)
}

/// Whether `snapshot` already shows the reservation's claim.
fn shows(snapshot: &CloudSnapshot, reserved: &Reserved) -> bool {
    snapshot
        .hosts()
        .binary_search_by(|host| host.name.as_str().cmp(&reserved.host))
        .is_ok_and(|index| holds(&snapshot.hosts()[index], reserved))
}

/// `base` with each reservation consumed from its host (one whose host
/// lists its instance already is not counted twice) (a host gone from
/// `base` is skipped); every other host is shared.
fn apply_reservations(base: &CloudSnapshot, held: &[Reserved]) -> CloudSnapshot {
    let mut hosts = base.hosts().to_vec();
    for reserved in held {
        let Ok(index) = hosts.binary_search_by(|host| host.name.as_str().cmp(&reserved.host))
        else {
            continue;
        };
        if holds(&hosts[index], reserved) {
            continue;
        }
        Arc::make_mut(&mut hosts[index]).consume(&reserved.request, Some(&reserved.instance_uuid));
    }
    CloudSnapshot::from_shared(hosts, base.aggregates().to_vec())
}

/// Deletes change-log rows older than [`CHANGE_RETENTION`]; how many.
pub async fn prune_changes(db: &Db) -> Result<u64, DbError> {
    let cutoff = chrono::Utc::now().timestamp_millis() - CHANGE_RETENTION.as_millis() as i64;
    Ok(
        sqlx::query("DELETE FROM host_state_changes WHERE changed_at_ms < $1")
            .bind(cutoff)
            .execute(db.pool())
            .await?
            .rows_affected(),
    )
}
