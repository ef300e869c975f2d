//! Consent changes bounded in time: dated after the store's clock, or with an end
//! (`effective_until`, a FHIR Consent's `provision.period.end`).
//!
//! The store's main table holds only changes that are in force from their `effective_at` on,
//! for good (until a later change beats them), so it can drop a change that can never decide
//! again. A change that has yet to start, or that will end, cannot be treated so: it waits
//! here, with the times at which something about it changes in a schedule, and
//! [`super::ConsentStore::advance_to`] moves the store's clock on. A future change without an
//! end moves into the main table when its time comes; a change with an end stays here, deciding
//! while it is in force, and is dropped when it ends.
//!
//! England's opt-outs are almost all open-ended and dated when they were made, so this table is
//! empty or small; it is keyed like the main table, by the packed (patient, scope).

use std::collections::{BTreeSet, HashMap};

/// One change bounded in time, packed as the main table packs a change in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TimedChange {
    /// When it takes effect, in microseconds since the Unix epoch.
    pub(super) effective_at: i64,
    /// When it stops having effect; `None` when it lasts until a later change beats it.
    pub(super) effective_until: Option<i64>,
    /// True for a DENY.
    pub(super) deny: bool,
    /// Id of its interned purpose list.
    pub(super) purposes: u32,
}

impl TimedChange {
    /// Whether it is in force at `now`: started, and not ended.
    pub(super) fn in_force_at(&self, now: i64) -> bool {
        self.effective_at <= now && self.effective_until.is_none_or(|until| now < until)
    }

    /// Whether it will never be in force at `now` or later.
    fn over_at(&self, now: i64) -> bool {
        self.effective_until.is_some_and(|until| until <= now)
    }
}

/// What moving the clock on did to one (patient, scope).
#[derive(Debug, Default)]
pub(super) struct Due {
    /// Open-ended changes now in force, to move into the main table.
    pub(super) settled: Vec<TimedChange>,
    /// Whether a DENY took effect (it started after the previous clock and is in force now).
    pub(super) denial_started: bool,
}

/// The changes bounded in time, by packed (patient, scope) key, and when each key next changes.
#[derive(Default)]
pub(super) struct TimedChanges {
    /// The changes of each key that have not settled or ended.
    by_key: HashMap<u64, Vec<TimedChange>>,
    /// (time, key) for every start still to come and every end: a key is looked at again at each
    /// of its times. Entries whose change has since gone are harmless.
    schedule: BTreeSet<(i64, u64)>,
}

impl TimedChanges {
    /// Whether `key` has a change waiting or in force here.
    pub(super) fn contains(&self, key: u64) -> bool {
        !self.by_key.is_empty() && self.by_key.contains_key(&key)
    }

    /// Number of (patient, scope) keys with changes here.
    pub(super) fn keys(&self) -> usize {
        self.by_key.len()
    }

    /// Keeps `change` of `key`, unless it is already over at `now`. A repeat of a change kept
    /// already is kept once.
    pub(super) fn insert(&mut self, key: u64, change: TimedChange, now: i64) {
        if change.over_at(now) {
            return;
        }
        if change.effective_at > now {
            self.schedule.insert((change.effective_at, key));
        }
        if let Some(until) = change.effective_until {
            self.schedule.insert((until, key));
        }
        let changes = self.by_key.entry(key).or_default();
        if !changes.contains(&change) {
            changes.push(change);
        }
    }

    /// The change of `key` in force at `now` that beats the others covering a purpose: the latest,
    /// a DENY winning a tie. `covers` says whether a purpose list covers the purpose asked about.
    pub(super) fn in_force(&self, key: u64, now: i64, covers: impl Fn(u32) -> bool) -> Option<TimedChange> {
        if self.by_key.is_empty() {
            return None;
        }
        self.by_key
            .get(&key)?
            .iter()
            .filter(|change| change.in_force_at(now) && covers(change.purposes))
            .max_by_key(|change| (change.effective_at, change.deny))
            .copied()
    }

    /// The keys with a change for which `matches` holds.
    pub(super) fn keys_with(&self, matches: impl Fn(&TimedChange) -> bool) -> Vec<u64> {
        self.by_key.iter().filter(|(_, changes)| changes.iter().any(&matches)).map(|(key, _)| *key).collect()
    }

    /// The earliest time at which some change starts or ends.
    pub(super) fn next_transition(&self) -> Option<i64> {
        self.schedule.first().map(|(at, _)| *at)
    }

    /// Moves the clock from `before` to `now` (later): every key with a time in between is looked
    /// at, and what happened to it returned. Changes now over are dropped.
    pub(super) fn advance(&mut self, before: i64, now: i64) -> Vec<(u64, Due)> {
        let mut keys = Vec::new();
        while let Some(&(at, key)) = self.schedule.first() {
            if at > now {
                break;
            }
            self.schedule.pop_first();
            keys.push(key);
        }
        // Each key once, however many of its times fell in between: a study's consents all
        // ending on one date are thousands of keys at once.
        keys.sort_unstable();
        keys.dedup();
        let mut due = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(changes) = self.by_key.remove(&key) else { continue };
            let mut this = Due::default();
            let mut waiting = Vec::new();
            for change in changes {
                if change.over_at(now) {
                    continue;
                }
                if change.effective_at > now {
                    waiting.push(change);
                    continue;
                }
                this.denial_started |= change.deny && change.effective_at > before;
                if change.effective_until.is_none() {
                    this.settled.push(change);
                } else {
                    waiting.push(change);
                }
            }
            if !waiting.is_empty() {
                self.by_key.insert(key, waiting);
            }
            due.push((key, this));
        }
        due
    }

    /// Heap held, estimated as [`super::store`] estimates its tables.
    pub(super) fn heap_bytes(&self, table_bytes: impl Fn(usize) -> usize) -> usize {
        table_bytes(self.by_key.capacity())
            + self.by_key.values().map(|v| v.capacity() * size_of::<TimedChange>()).sum::<usize>()
            // A B-tree node holds up to 11 entries; count a node per 6 as a typical fill.
            + self.schedule.len().div_ceil(6) * (11 * size_of::<(i64, u64)>() + 12 * size_of::<usize>())
    }
}
