//! What the agent RPC keeps in memory so that an agent that has nothing new
//! to say costs the database (almost) nothing.
//!
//! - **Liveness.** A heartbeat — or any other authenticated request of the
//!   agent, its long polls above all — is noted here (host → time of its
//!   last beat)
//!   and written to `services.last_seen_up`/`updated_at` with every other
//!   beat since, by [`Agents::flush`]: one transaction (one UPDATE per 500
//!   hosts) every [`flush_interval`] (2 s, shorter when
//!   `service_down_time` is short), and once more at shutdown. Whatever
//!   reads liveness (`os-services`, `host_status`, the scheduler's host
//!   state, `/metrics`, registration's "host is up") reads the database and
//!   so sees a beat at most one interval late; each controller flushes the
//!   beats of the agents that talk to it.
//! - **Inventory.** A beat writes the service and compute node
//!   (`nodes::upsert_host`) only when its inventory differs from what this
//!   controller last wrote for the host (a fingerprint; the first beat after
//!   a start always writes). The `uptime` line, which changes with every
//!   beat, is not part of the fingerprint: it is written with the flush, at
//!   most once per [`UPTIME_REFRESH`] per host.
//! - **Power states.** `reconcile_power` (which reads the host's instances)
//!   runs when the reported power states differ from the host's previous
//!   report, at the beat after one that found an instance without its
//!   domain (a vanished domain is called gone on the second look), after a
//!   task result of the host arrived (its instances changed), and every
//!   [`POWER_SYNC_INTERVAL`] otherwise (Nova's `sync_power_state_interval`).
//! - **Credentials.** A token that matched the database is trusted for
//!   [`TOKEN_TTL`] without a query; a registration on this controller
//!   replaces the host's entry at once, so the previous token stops working
//!   here at once and, on the other controllers of the same database,
//!   within [`CREDENTIAL_REFRESH`]: every trusted token is checked against
//!   the database in one read of all credentials every
//!   [`CREDENTIAL_REFRESH`] (at 10,000 hosts, one query every 10 s instead
//!   of one per host every [`TOKEN_TTL`]). A token that does not match is
//!   always checked against the database (no negative is kept).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use novum_compute::conductor::tasks::{SWEEP_INTERVAL, TaskBoard};
use novum_compute::store::{agent_credentials, services};
use novum_db::{Db, DbError};
use novum_wire::{HeartbeatRequest, InstancePower, Inventory};

/// How long a token that matched the database is trusted without asking it
/// again: the longest a credential revoked by a registration on another
/// controller keeps working on this one.
pub const TOKEN_TTL: Duration = Duration::from_secs(30);

/// How often every trusted token is checked against the database, all in
/// one read ([`Agents::refresh_credentials`]); well inside [`TOKEN_TTL`], so
/// that an agent's requests ask the database nothing while the reads succeed.
pub const CREDENTIAL_REFRESH: Duration = Duration::from_secs(10);

/// How often a host's power states are reconciled even when its report did
/// not change (a safety net for changes no beat shows): Nova's
/// `sync_power_state_interval` default.
pub const POWER_SYNC_INTERVAL: Duration = Duration::from_secs(600);

/// How often, at most, a host's changed `uptime` line is written when
/// nothing else of its inventory changed.
pub const UPTIME_REFRESH: Duration = Duration::from_secs(60);

/// The longest time between two flushes of the heartbeats.
pub const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// The flush interval for `service_down_time` (seconds): [`MAX_FLUSH_INTERVAL`],
/// or a quarter of `service_down_time` when that is shorter (at least 100 ms).
pub fn flush_interval(service_down_time: u64) -> Duration {
    let quarter = Duration::from_millis(service_down_time.saturating_mul(250));
    quarter
        .min(MAX_FLUSH_INTERVAL)
        .max(Duration::from_millis(100))
}

/// What this controller remembers of one agent host.
#[derive(Debug, Default)]
struct HostEntry {
    /// The hash of the token that matched the database, and when.
    token: Option<(String, Instant)>,
    /// The fingerprint of the inventory this controller last wrote.
    inventory: Option<u64>,
    /// The `uptime` last written, and when.
    uptime: Option<(Option<String>, Instant)>,
    /// The fingerprint of the power states last reconciled.
    power: Option<u64>,
    /// When its power states were last reconciled.
    synced_at: Option<Instant>,
    /// The last reconcile found an instance without its domain: reconcile
    /// at the next beat too (the sync calls a domain gone on its second
    /// look), whether the report changed or not.
    recheck: bool,
}

/// A beat not written yet.
#[derive(Debug, Clone)]
struct PendingBeat {
    at: chrono::DateTime<chrono::Utc>,
    /// An `uptime` to write with it.
    uptime: Option<Option<String>>,
}

/// What a heartbeat must write, as [`Agents::beat`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeatPlan {
    /// Upsert the service and compute node; the inventory's fingerprint
    /// (hand it to [`Agents::inventory_written`] once written).
    pub inventory: Option<u64>,
    /// Reconcile the power states.
    pub reconcile: bool,
}

/// The agents' liveness, inventory fingerprints and credentials, in memory
/// (see the module doc).
#[derive(Debug)]
pub struct Agents {
    db: Db,
    interval: Duration,
    hosts: Mutex<HashMap<String, HostEntry>>,
    pending: Mutex<HashMap<String, PendingBeat>>,
    /// One flush at a time.
    flushing: tokio::sync::Mutex<()>,
}

/// The fingerprint of `inventory`, without its `uptime`.
pub fn inventory_fingerprint(inventory: &Inventory) -> u64 {
    let mut hasher = DefaultHasher::new();
    let without_uptime = Inventory {
        uptime: None,
        ..inventory.clone()
    };
    serde_json::to_vec(&without_uptime)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// The fingerprint of a power report, whatever its order.
fn power_fingerprint(instances: &[InstancePower]) -> u64 {
    let mut pairs: Vec<_> = instances
        .iter()
        .map(|item| (item.uuid, item.power_state))
        .collect();
    pairs.sort_unstable_by_key(|(uuid, _)| *uuid);
    let mut hasher = DefaultHasher::new();
    pairs.hash(&mut hasher);
    hasher.finish()
}

impl Agents {
    /// The agents of a controller over `db` whose services count as down
    /// after `service_down_time` seconds without a heartbeat.
    pub fn new(db: Db, service_down_time: u64) -> Arc<Self> {
        Arc::new(Self {
            db,
            interval: flush_interval(service_down_time),
            hosts: Mutex::default(),
            pending: Mutex::default(),
            flushing: tokio::sync::Mutex::new(()),
        })
    }

    /// Starts (within a tokio runtime) the heartbeat flush, every
    /// [`flush_interval`], and the sweep of `board` for offered tasks no
    /// wake-up announced, every [`SWEEP_INTERVAL`]; both end once these
    /// agents (or the board) are dropped.
    pub fn start(self: &Arc<Self>, board: &Arc<TaskBoard>) {
        self.every(self.interval, |agents| async move {
            if let Err(error) = agents.flush().await {
                tracing::warn!(%error, "cannot record the agents' heartbeats; retried at the next flush");
            }
            true
        });
        self.every(CREDENTIAL_REFRESH, |agents| async move {
            if let Err(error) = agents.refresh_credentials().await {
                tracing::warn!(%error, "cannot refresh the agents' credentials; each is checked at its next request");
            }
            true
        });
        let board = Arc::downgrade(board);
        self.every(SWEEP_INTERVAL, move |agents| {
            let board = Weak::upgrade(&board);
            async move {
                let Some(board) = board.filter(|board| !board.is_closed()) else {
                    return false;
                };
                if let Err(error) = board.sweep(&agents.db).await {
                    tracing::warn!(%error, "cannot look for offered tasks");
                }
                true
            }
        });
    }

    /// Runs `work` every `period` (the first time one period from now)
    /// until these agents are dropped or `work` answers false.
    fn every<Work, Done>(self: &Arc<Self>, period: Duration, work: Work)
    where
        Work: Fn(Arc<Self>) -> Done + Send + 'static,
        Done: Future<Output = bool> + Send + 'static,
    {
        let agents = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(agents) = Weak::upgrade(&agents) else {
                    return;
                };
                if !work(agents).await {
                    return;
                }
            }
        });
    }

    /// The interval between two flushes.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    fn with_host<T>(&self, host: &str, change: impl FnOnce(&mut HostEntry) -> T) -> T {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        change(hosts.entry(host.to_string()).or_default())
    }

    /// Whether `token_hash` matched `host`'s credential in the database less
    /// than [`TOKEN_TTL`] ago (or was issued here since).
    pub fn token_known(&self, host: &str, token_hash: &str) -> bool {
        let hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        hosts
            .get(host)
            .and_then(|entry| entry.token.as_ref())
            .is_some_and(|(hash, checked)| hash == token_hash && checked.elapsed() < TOKEN_TTL)
    }

    /// Checks every token this controller trusts against the database in
    /// one read: a token that still matches is trusted for another
    /// [`TOKEN_TTL`] from the read, any other is forgotten (its next request
    /// asks the database). A token remembered after the read began is left
    /// as it is. So an agent's requests cost no credential query whatever
    /// the fleet's size, and a credential replaced on another controller
    /// stops working here within [`CREDENTIAL_REFRESH`].
    pub async fn refresh_credentials(&self) -> Result<(), DbError> {
        let read_at = Instant::now();
        let current = agent_credentials::all(&self.db).await?;
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        for (host, entry) in hosts.iter_mut() {
            let Some((hash, checked)) = &mut entry.token else {
                continue;
            };
            if *checked >= read_at {
                continue;
            }
            if current.get(host) == Some(hash) {
                *checked = read_at;
            } else {
                entry.token = None;
            }
        }
        Ok(())
    }

    /// Remembers that `token_hash` matched `host`'s credential just now.
    pub fn remember_token(&self, host: &str, token_hash: &str) {
        self.with_host(host, |entry| {
            entry.token = Some((token_hash.to_string(), Instant::now()));
        });
    }

    /// `host` registered on this controller with `token_hash` and
    /// `inventory` (written by the registration): the previous token stops
    /// working here at once, and its next beat reconciles its power states.
    pub fn registered(&self, host: &str, token_hash: &str, inventory: &Inventory) {
        let now = Instant::now();
        self.with_host(host, |entry| {
            *entry = HostEntry {
                token: Some((token_hash.to_string(), now)),
                inventory: Some(inventory_fingerprint(inventory)),
                uptime: Some((inventory.uptime.clone(), now)),
                power: None,
                synced_at: None,
                recheck: false,
            };
        });
    }

    /// Notes a heartbeat of `host` (written at the next flush) and decides
    /// what else it must write.
    pub fn beat(&self, host: &str, request: &HeartbeatRequest) -> BeatPlan {
        let now = Instant::now();
        let fingerprint = inventory_fingerprint(&request.inventory);
        let power = power_fingerprint(&request.instances);
        let mut uptime = None;
        let plan = self.with_host(host, |entry| {
            let inventory = (entry.inventory != Some(fingerprint)).then_some(fingerprint);
            if inventory.is_none() {
                let stale = entry.uptime.as_ref().is_none_or(|(written, at)| {
                    *written != request.inventory.uptime && at.elapsed() >= UPTIME_REFRESH
                });
                if stale {
                    uptime = Some(request.inventory.uptime.clone());
                    entry.uptime = Some((request.inventory.uptime.clone(), now));
                }
            }
            let changed = entry.power != Some(power);
            let reconcile = changed
                || entry.recheck
                || entry
                    .synced_at
                    .is_none_or(|at| now.duration_since(at) >= POWER_SYNC_INTERVAL);
            if reconcile {
                entry.recheck = false;
                entry.power = Some(power);
                entry.synced_at = Some(now);
            }
            BeatPlan {
                inventory,
                reconcile,
            }
        });
        self.note_alive(host, uptime);
        plan
    }

    /// Notes that `host`'s agent is alive now, written with the next flush.
    /// Any authenticated request proves it: between two heartbeats its long
    /// polls (one at least every `max_poll_wait_seconds`) keep it up.
    pub fn alive(&self, host: &str) {
        self.note_alive(host, None);
    }

    fn note_alive(&self, host: &str, uptime: Option<Option<String>>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let at = chrono::Utc::now();
        let beat = pending
            .entry(host.to_string())
            .or_insert(PendingBeat { at, uptime: None });
        beat.at = at;
        if uptime.is_some() {
            beat.uptime = uptime;
        }
    }

    /// The inventory with `fingerprint` (and `uptime`) is written for `host`.
    pub fn inventory_written(&self, host: &str, fingerprint: u64, uptime: Option<String>) {
        self.with_host(host, |entry| {
            entry.inventory = Some(fingerprint);
            entry.uptime = Some((uptime, Instant::now()));
        });
    }

    /// Writing `host`'s inventory failed, or its service is gone: its next
    /// beat writes it.
    pub fn forget_inventory(&self, host: &str) {
        self.with_host(host, |entry| entry.inventory = None);
    }

    /// `host`'s power states were reconciled; `second_look`: an instance
    /// was missing from its report, so its next beat reconciles again.
    pub fn reconciled(&self, host: &str, second_look: bool) {
        self.with_host(host, |entry| entry.recheck = second_look);
    }

    /// `host`'s instances changed (a task result), or reconciling its power
    /// states failed: its next beat reconciles them.
    pub fn power_stale(&self, host: &str) {
        self.with_host(host, |entry| entry.power = None);
    }

    /// Writes every beat noted since the last flush (see
    /// [`services::record_heartbeats`]); a failed write is kept for the next.
    pub async fn flush(&self) -> Result<(), DbError> {
        let _one = self.flushing.lock().await;
        let beats =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if beats.is_empty() {
            return Ok(());
        }
        // The oldest of the latest beats: no service looks up longer than
        // its agent beats.
        let seen = beats
            .values()
            .map(|beat| beat.at)
            .min()
            .unwrap_or_else(chrono::Utc::now);
        let hosts: Vec<String> = beats.keys().cloned().collect();
        let uptimes: Vec<(String, Option<String>)> = beats
            .iter()
            .filter_map(|(host, beat)| beat.uptime.clone().map(|uptime| (host.clone(), uptime)))
            .collect();
        match services::record_heartbeats(&self.db, &novum_db::timestamp(seen), &hosts, &uptimes)
            .await
        {
            Ok(missing) => {
                for host in missing {
                    // Its next beat creates its service again.
                    self.forget_inventory(&host);
                }
                Ok(())
            }
            Err(error) => {
                let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                for (host, beat) in beats {
                    pending.entry(host).or_insert(beat);
                }
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flush_interval_follows_short_down_times() {
        assert_eq!(flush_interval(60), MAX_FLUSH_INTERVAL);
        assert_eq!(flush_interval(4), Duration::from_secs(1));
        assert_eq!(flush_interval(2), Duration::from_millis(500));
        assert_eq!(flush_interval(0), Duration::from_millis(100));
    }

    #[test]
    fn fingerprints_ignore_uptime_and_order() {
        let inventory = Inventory {
            vcpus: 4,
            memory_mb: 8192,
            disk_gb: 100,
            cpu_info: novum_wire::CpuInfo::default(),
            hypervisor_type: "QEMU".into(),
            hypervisor_version: 8_002_000,
            hypervisor_hostname: "h1".into(),
            host_ip: None,
            supported_instances: Vec::new(),
            uptime: Some("10:00 up 1 day".into()),
        };
        let later = Inventory {
            uptime: Some("10:01 up 1 day".into()),
            ..inventory.clone()
        };
        assert_eq!(
            inventory_fingerprint(&inventory),
            inventory_fingerprint(&later)
        );
        let bigger = Inventory {
            vcpus: 8,
            ..inventory.clone()
        };
        assert_ne!(
            inventory_fingerprint(&inventory),
            inventory_fingerprint(&bigger)
        );

        let a = InstancePower {
            uuid: uuid::Uuid::new_v4(),
            power_state: novum_wire::PowerState::Running,
        };
        let b = InstancePower {
            uuid: uuid::Uuid::new_v4(),
            power_state: novum_wire::PowerState::Shutdown,
        };
        assert_eq!(
            power_fingerprint(&[a.clone(), b.clone()]),
            power_fingerprint(&[b.clone(), a.clone()])
        );
        assert_ne!(
            power_fingerprint(std::slice::from_ref(&a)),
            power_fingerprint(&[a, b])
        );
    }
}
