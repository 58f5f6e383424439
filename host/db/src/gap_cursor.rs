//! A reader's place in a table whose ids the database generates
//! ([`crate::insert_returning_id`]: SQLite AUTOINCREMENT, a PostgreSQL
//! identity column), read in id order by a reader that must see every row
//! once: the scheduler's host-state change log (`host_state_changes`) and
//! the notification outbox (`notification_outbox`).
//!
//! Ids are handed out when a row is inserted, not when its transaction
//! commits. On PostgreSQL two writers not serialized with each other can
//! commit out of order: a reader sees id 11 while id 10 is still in flight.
//! A reader that simply moved past 11 would never read 10. [`GapCursor`]
//! keeps every such gap (an id above the floor not seen yet) open and reads
//! it again until it fills or its patience runs out (the transaction rolled
//! back, or a crash made the sequence skip values): the floor never passes
//! an id that may still commit within the patience. SQLite has one writer
//! at a time (and a rolled-back AUTOINCREMENT id is given again), so it
//! never sees a gap that later fills.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How long a gap is waited for by default before it counts as rolled back.
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(30);

/// Where a reader of a table of generated ids stands.
#[derive(Clone, Debug)]
pub struct GapCursor {
    /// Every id at or below it has been read (or given up).
    floor: i64,
    /// Ids above the floor already read.
    read: BTreeSet<i64>,
    /// Ids above the floor not seen yet, with when they were first missed.
    gaps: BTreeMap<i64, Instant>,
    /// How long a gap is waited for.
    patience: Duration,
}

impl Default for GapCursor {
    /// A cursor before the first id, with the default patience.
    fn default() -> Self {
        Self::at(0, DEFAULT_PATIENCE)
    }
}

impl GapCursor {
    /// A cursor past every id up to `last`, waiting up to `patience` for a
    /// gap.
    pub fn at(last: i64, patience: Duration) -> Self {
        Self {
            floor: last,
            read: BTreeSet::new(),
            gaps: BTreeMap::new(),
            patience,
        }
    }

    /// Every id at or below it has been read or given up: read again from
    /// above it (`id > floor`), or, to read only what is new, the ids in
    /// [`GapCursor::gaps`] and those above [`GapCursor::top`]. A durable
    /// cursor saved at the floor loses nothing.
    pub fn floor(&self) -> i64 {
        self.floor
    }

    /// The highest id read (the floor when nothing above it was).
    pub fn top(&self) -> i64 {
        self.read.last().copied().unwrap_or(self.floor)
    }

    /// The ids waited for (above the floor, below the top, not seen yet),
    /// lowest first.
    pub fn gaps(&self) -> Vec<i64> {
        self.gaps.keys().copied().collect()
    }

    /// Whether `id` was read (at or below the floor, or seen above it).
    pub fn was_read(&self, id: i64) -> bool {
        id <= self.floor || self.read.contains(&id)
    }

    /// Takes in the ids of one read (ids above the floor that were visible:
    /// every one of them from the floor up to the highest returned, or any
    /// subset of gaps and new ids, as long as no id between two returned
    /// ones that was visible is left out), answering which are new, in
    /// order; marks the ids below the highest read and never seen as gaps,
    /// gives up the gaps older than the patience, and moves the floor up
    /// past everything read below the first gap still waited for.
    pub fn advance(&mut self, visible: &[i64], now: Instant) -> Vec<i64> {
        let mut fresh: Vec<i64> = visible
            .iter()
            .copied()
            .filter(|id| *id > self.floor && self.read.insert(*id))
            .collect();
        fresh.sort_unstable();
        for id in &fresh {
            self.gaps.remove(id);
        }
        let top = self.top();
        let mut expected = self.floor + 1;
        for id in self.read.iter().take_while(|id| **id <= top) {
            while expected < *id {
                self.gaps.entry(expected).or_insert(now);
                expected += 1;
            }
            expected = id + 1;
        }
        let patience = self.patience;
        self.gaps
            .retain(|_, missed| now.duration_since(*missed) < patience);
        self.floor = match self.gaps.keys().next() {
            Some(first_gap) => first_gap - 1,
            None => top,
        };
        let floor = self.floor;
        self.read.retain(|id| *id > floor);
        fresh
    }
}
