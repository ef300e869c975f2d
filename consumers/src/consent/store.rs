//! The consent store: the changes in force for every (patient, scope), per purpose, kept
//! compact enough for the millions of opt-outs England holds.
//!
//! # Layout
//!
//! One hash table maps a packed key to a packed value, and everything that repeats lives in small
//! interned tables beside it:
//!
//! * the **key** is the NHS number (ten digits fit in 34 bits) with a 30-bit scope code above
//!   it: 0 for the National Data Opt-out, 1 for the Type 1 opt-out, 2 and up for studies, by the
//!   order in which their ids were first seen. It is stored as two `u32` halves so that slots are
//!   4-byte aligned;
//! * the **value** is the change in force: its `effective_at` (again two `u32` halves) and one
//!   `u32` holding the DENY flag in its top bit and the id of an interned purpose list below it,
//!   0 meaning "every purpose the scope covers".
//!
//! A slot is therefore 20 bytes, plus one control byte of the standard library's SwissTable.
//!
//! Most (patient, scope) pairs only ever need one change: the latest. Where changes are limited
//! to some purposes, an older change can still decide for a purpose the later ones do not name
//! (an unlimited opt-out, then a withdrawal for research only: planning is still opted out). Those
//! older changes are kept beside the slot, in a small second table ([`ConsentStore`]'s
//! `earlier`), and a change is dropped only when it can never decide again: when every purpose it
//! covers is covered by a change that beats it. At
//! its load factor of 7/8 and with a power-of-two number of slots, a million patients take about
//! 44 bytes each. [`ConsentStore::with_capacity`] sizes the table once for the number of changes
//! the lander is about to read, so it does not double (and briefly hold both copies) while
//! loading. A single table for every scope keeps that hint exact: there can be no more
//! (patient, scope) pairs than changes.
//!
//! Changes bounded in time (dated after the store's clock, or with an end) wait in a table of
//! their own ([`super::timed`]) until [`ConsentStore::advance_to`] brings their time; the store's
//! clock starts at the wall clock's time when it is made.
//!
//! Keys are hashed with the standard library's default, SipHash with a random key, on the NHS
//! number alone: a patient's scopes share one probe sequence, so looking at all of them costs
//! about one cache miss rather than one per scope.

use std::{
    collections::{HashMap, HashSet, hash_map::Entry},
    fmt,
    hash::{Hash, Hasher},
    mem::size_of,
};

use sluice_schemas::NhsNumber;

use super::{
    ConsentChange, ConsentScope, Purpose,
    timed::{TimedChange, TimedChanges},
};

/// Bits of a key taken by the NHS number: 10^10 - 1 < 2^34.
const NHS_NUMBER_BITS: u32 = 34;
/// The NHS number's bits of a packed key.
const NHS_NUMBER_MASK: u64 = (1 << NHS_NUMBER_BITS) - 1;
/// Scope code of the National Data Opt-out.
const NATIONAL: u32 = 0;
/// Scope code of the Type 1 opt-out.
const TYPE_1: u32 = 1;
/// Scope code of the first study seen; later studies count up from it.
const FIRST_STUDY: u32 = 2;
/// Largest scope code that fits above the NHS number.
const MAX_SCOPE: u32 = (1 << (64 - NHS_NUMBER_BITS)) - 1;
/// The DENY flag in [`InForce::tag`]; the bits below it hold the purpose list id.
const DENY_BIT: u32 = 1 << 31;
/// Purpose list id meaning "every purpose the scope covers".
const ALL_PURPOSES: u32 = 0;
/// Control bytes a SwissTable allocates beyond one per slot (one SIMD group).
const TABLE_GROUP_WIDTH: usize = 16;

/// A scope as [`ConsentStore::in_force`] is asked about it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scope<'a> {
    /// The National Data Opt-out.
    National,
    /// The Type 1 opt-out.
    Type1,
    /// One study, by id.
    Study(&'a str),
}

/// A (patient, scope) pair packed into 64 bits and kept as two halves, so that a table slot
/// (key and [`InForce`]) is 20 bytes with 4-byte alignment instead of 24 with 8-byte alignment.
/// Deliberately not `Debug`: it holds an NHS number.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key([u32; 2]);

impl Key {
    /// Packs a patient (an NHS number as an integer) and a scope code.
    fn new(nhs_number: u64, scope: u32) -> Self {
        debug_assert!(nhs_number >> NHS_NUMBER_BITS == 0 && scope <= MAX_SCOPE);
        let packed = nhs_number | (u64::from(scope) << NHS_NUMBER_BITS);
        Key([packed as u32, (packed >> 32) as u32])
    }

    /// The 64-bit packed form.
    fn packed(self) -> u64 {
        u64::from(self.0[0]) | (u64::from(self.0[1]) << 32)
    }

    /// The key of a packed form.
    fn from_packed(packed: u64) -> Self {
        Key([packed as u32, (packed >> 32) as u32])
    }

    /// The patient, as an NHS number.
    fn nhs_number(self) -> NhsNumber {
        NhsNumber::from_first_nine_value((self.packed() & NHS_NUMBER_MASK) / 10)
            .expect("a key packs a valid NHS number, whose first nine digits give its check digit")
    }
}

/// Hashes the NHS number only, leaving the scope out, so that every scope of one patient lands
/// in the same probe sequence of the table: checking a patient's other scopes, as
/// [`ConsentStore::apply`] and [`ConsentStore::decide`] do, then reads memory already in cache.
/// Keys equal in full are equal in their NHS number, so equal keys still hash alike.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.packed() & NHS_NUMBER_MASK);
    }
}

/// The change in force for one (patient, scope), packed into 12 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct InForce {
    /// `effective_at` in microseconds, low half then high half.
    effective_at: [u32; 2],
    /// [`DENY_BIT`] for a DENY, or-ed with the id of the interned purpose list.
    tag: u32,
}

impl InForce {
    /// Packs one change's decision.
    fn new(effective_at: i64, deny: bool, purposes: u32) -> Self {
        let bits = effective_at as u64;
        InForce { effective_at: [bits as u32, (bits >> 32) as u32], tag: purposes | if deny { DENY_BIT } else { 0 } }
    }

    /// When the change took effect.
    fn effective_at(self) -> i64 {
        (u64::from(self.effective_at[0]) | (u64::from(self.effective_at[1]) << 32)) as i64
    }

    /// True for a DENY (opt-out or dissent), false for a PERMIT (withdrawal or consent).
    pub(super) fn deny(self) -> bool {
        self.tag & DENY_BIT != 0
    }

    /// Id of the change's interned purpose list, [`ALL_PURPOSES`] when unlimited.
    fn purposes(self) -> u32 {
        self.tag & !DENY_BIT
    }
}

/// Distinct purpose lists, each kept once, sorted and without duplicates. Consent changes that
/// limit their purposes use a handful of lists between them, so a change in force holds a
/// 31-bit id instead of a vector of strings.
#[derive(Default)]
struct PurposeLists {
    /// List `id` is at `lists[id - 1]`; id [`ALL_PURPOSES`] has no list.
    lists: Vec<Vec<String>>,
    /// The id of each list, to find it again when it recurs.
    ids: HashMap<Vec<String>, u32>,
}

impl PurposeLists {
    /// The id of `names` as a set: sorted, without duplicates; empty means every purpose.
    fn intern(&mut self, mut names: Vec<String>) -> u32 {
        if names.is_empty() {
            return ALL_PURPOSES;
        }
        names.sort_unstable();
        names.dedup();
        if let Some(id) = self.ids.get(&names) {
            return *id;
        }
        let id = u32::try_from(self.lists.len() + 1)
            .ok()
            .filter(|id| id & DENY_BIT == 0)
            .expect("fewer than 2^31 distinct purpose lists");
        self.lists.push(names.clone());
        self.ids.insert(names, id);
        id
    }

    /// The id of the union of two lists; an unlimited list absorbs any other.
    fn union(&mut self, a: u32, b: u32) -> u32 {
        if a == ALL_PURPOSES || b == ALL_PURPOSES {
            return ALL_PURPOSES;
        }
        if a == b {
            return a;
        }
        let names = [a, b].iter().flat_map(|id| self.names(*id)).cloned().collect();
        self.intern(names)
    }

    /// The names in list `id`; empty for [`ALL_PURPOSES`].
    fn names(&self, id: u32) -> &[String] {
        match id {
            ALL_PURPOSES => &[],
            id => &self.lists[id as usize - 1],
        }
    }

    /// Whether list `id` covers `purpose`.
    fn covers(&self, id: u32, purpose: &Purpose) -> bool {
        id == ALL_PURPOSES || self.names(id).iter().any(|name| purpose.is_named(name))
    }

    /// Heap held by the lists and their index.
    fn heap_bytes(&self) -> usize {
        let names = |list: &Vec<String>| {
            list.capacity() * size_of::<String>() + list.iter().map(String::capacity).sum::<usize>()
        };
        self.lists.capacity() * size_of::<Vec<String>>()
            + self.lists.iter().map(names).sum::<usize>()
            + table_bytes::<(Vec<String>, u32)>(self.ids.capacity())
            + self.ids.keys().map(names).sum::<usize>()
    }
}

/// Consent state of every patient with at least one change, at the time of its clock.
///
/// Its `Debug` output shows counts and sizes only, never an NHS number.
pub struct ConsentStore {
    /// The time decisions are made at, in microseconds since the Unix epoch: a change dated
    /// later has not taken effect, and one whose end is at or before it no longer has.
    now: i64,
    /// Changes dated after `now` or with an end, which cannot go into `in_force` (a change there
    /// is in force for good).
    timed: TimedChanges,
    /// The latest change per (patient, scope): the one table that grows with the population.
    in_force: HashMap<Key, InForce>,
    /// Older changes of a (patient, scope) that can still decide for some purpose, because the
    /// later ones are limited to other purposes: empty for almost every patient.
    earlier: HashMap<Key, Vec<InForce>>,
    /// Study ids, each with its scope code (from [`FIRST_STUDY`] up).
    studies: HashMap<String, u32>,
    /// The purpose lists that changes are limited to.
    purpose_lists: PurposeLists,
    /// Patients with a change about any study. With lookups of the two opt-out scopes it tells
    /// whether a patient is new without scanning every study; study participants are few.
    study_patients: HashSet<u64>,
    /// Distinct patients with any change, for [`ConsentStore::patients`].
    patients: usize,
    /// Changes applied (including superseded ones), for progress and audit.
    changes_applied: u64,
    /// Consent records that could not be read, by their Kafka key, with the patient the key
    /// names: each holds that patient's data back until a readable record under the same key
    /// replaces it (as compaction would keep only the later one).
    unreadable: HashMap<String, u64>,
    /// Patients held by unreadable records, with how many of their keys hold them.
    held: HashMap<u64, u32>,
}

impl Default for ConsentStore {
    fn default() -> Self {
        ConsentStore::at(wall_clock_micros())
    }
}

/// Microseconds since the Unix epoch, now.
pub fn wall_clock_micros() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX)
}

impl ConsentStore {
    /// An empty store whose clock reads the wall clock's time: nobody has opted out.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose clock reads `now` (microseconds since the Unix epoch), for deciding
    /// as of a given time.
    pub fn at(now: i64) -> Self {
        ConsentStore {
            now,
            timed: TimedChanges::default(),
            in_force: HashMap::new(),
            earlier: HashMap::new(),
            studies: HashMap::new(),
            purpose_lists: PurposeLists::default(),
            study_patients: HashSet::new(),
            patients: 0,
            changes_applied: 0,
            unreadable: HashMap::new(),
            held: HashMap::new(),
        }
    }

    /// An empty store with room for `changes` (patient, scope) pairs, so that loading that many
    /// changes never grows the table. A hint: the lander knows how many consent messages it is
    /// about to read, and there cannot be more pairs than changes.
    pub fn with_capacity(changes: usize) -> Self {
        ConsentStore { in_force: HashMap::with_capacity(changes), ..Self::default() }
    }

    /// The store's clock, in microseconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// The earliest time after the clock at which a change takes effect or ends, if any: the
    /// lander moves the clock on ([`Self::advance_to`]) when the wall clock reaches it.
    pub fn next_transition(&self) -> Option<i64> {
        self.timed.next_transition()
    }

    /// Moves the clock on to `now` (an earlier time is ignored: the clock never goes back).
    /// Changes dated up to `now` take effect and changes ending by then stop. Returns the
    /// patients for whom a DENY (an opt-out or a dissent) took effect, which a lander that
    /// recalls rows must consider for erasure as it would an opt-out just read.
    pub fn advance_to(&mut self, now: i64) -> Vec<NhsNumber> {
        if now <= self.now {
            return Vec::new();
        }
        let before = std::mem::replace(&mut self.now, now);
        let mut denied = Vec::new();
        for (packed, due) in self.timed.advance(before, now) {
            let key = Key::from_packed(packed);
            for change in due.settled {
                self.settle(key, InForce::new(change.effective_at, change.deny, change.purposes));
            }
            if due.denial_started {
                denied.push(key.nhs_number());
            }
        }
        // A patient whose DENYs started in more than one scope is named once.
        denied.sort_unstable_by_key(NhsNumber::as_u64);
        denied.dedup();
        denied
    }

    /// Patients with a DENY in the store that took effect after `after` and by the clock:
    /// the erasures a lander owes when it starts again after its clock had reached `after`.
    pub fn denials_effective_since(&self, after: i64) -> Vec<NhsNumber> {
        let now = self.now;
        let in_window = |effective_at: i64| after < effective_at && effective_at <= now;
        let mut keys: Vec<u64> = self
            .in_force
            .iter()
            .filter(|(_, change)| change.deny() && in_window(change.effective_at()))
            .map(|(key, _)| key.packed())
            .collect();
        for (key, changes) in &self.earlier {
            if changes.iter().any(|change| change.deny() && in_window(change.effective_at())) {
                keys.push(key.packed());
            }
        }
        keys.extend(
            self.timed.keys_with(|change| change.deny && change.in_force_at(now) && in_window(change.effective_at)),
        );
        let mut patients: Vec<NhsNumber> =
            keys.into_iter().map(|packed| Key::from_packed(packed).nhs_number()).collect();
        patients.sort_unstable_by_key(NhsNumber::as_u64);
        patients.dedup();
        patients
    }

    /// Number of distinct patients with any recorded change.
    pub fn patients(&self) -> usize {
        self.patients
    }

    /// Number of changes applied so far.
    pub fn changes_applied(&self) -> u64 {
        self.changes_applied
    }

    /// An estimate of the heap the store holds, in bytes, computed from its tables' capacities
    /// and entry sizes as the standard library lays them out (a SwissTable: one slot and one
    /// control byte per bucket, a power-of-two number of buckets at most 7/8 full). It counts
    /// reserved but unused room, and not the allocator's own bookkeeping.
    pub fn heap_bytes(&self) -> usize {
        table_bytes::<(Key, InForce)>(self.in_force.capacity())
            + self.timed.heap_bytes(table_bytes::<(u64, Vec<TimedChange>)>)
            + table_bytes::<(String, u32)>(self.studies.capacity())
            + self.studies.keys().map(String::capacity).sum::<usize>()
            + self.purpose_lists.heap_bytes()
            + table_bytes::<u64>(self.study_patients.capacity())
            + table_bytes::<(Key, Vec<InForce>)>(self.earlier.capacity())
            + self.earlier.values().map(|v| v.capacity() * size_of::<InForce>()).sum::<usize>()
    }

    /// Applies one change. It is kept while it can still decide for some purpose: until every
    /// purpose it covers is covered by a later change (or one as late that is a DENY where it is a
    /// PERMIT). Two changes with the same time and decision combine their purpose lists. A change
    /// dated after the clock, or with an end, waits for its times ([`Self::advance_to`]); one
    /// that ended before the clock changes nothing.
    ///
    /// # Panics
    ///
    /// With more than about a billion distinct study ids or two billion distinct purpose lists,
    /// which no consent topic holds.
    pub fn apply(&mut self, change: ConsentChange) {
        self.changes_applied += 1;
        let patient = change.nhs_number.as_u64();
        let scope = match change.scope {
            ConsentScope::NationalDataOptOut => NATIONAL,
            ConsentScope::Type1OptOut => TYPE_1,
            ConsentScope::Study(id) => self.study_scope(id),
        };
        if change.effective_until.is_some_and(|until| until <= self.now) {
            // Over before it was read: it can never decide, and its patient is not counted.
            return;
        }
        let purposes = self.purpose_lists.intern(change.purposes);
        // Looked at before the entry is taken, as the entry borrows the table; the patient's
        // other scopes share this key's probe sequence, so this costs little more than the entry.
        let known = (scope != NATIONAL && self.in_force.contains_key(&Key::new(patient, NATIONAL)))
            || (scope != TYPE_1 && self.in_force.contains_key(&Key::new(patient, TYPE_1)))
            || self.study_patients.contains(&patient)
            || [NATIONAL, TYPE_1].iter().any(|scope| self.timed.contains(Key::new(patient, *scope).packed()));
        let key = Key::new(patient, scope);
        if scope >= FIRST_STUDY {
            self.study_patients.insert(patient);
        }
        if change.effective_at <= self.now && change.effective_until.is_none() {
            if self.settle(key, InForce::new(change.effective_at, change.deny, purposes)) && !known {
                self.patients += 1;
            }
        } else {
            if !known && !self.in_force.contains_key(&key) {
                self.patients += 1;
            }
            let timed = TimedChange {
                effective_at: change.effective_at,
                effective_until: change.effective_until,
                deny: change.deny,
                purposes,
            };
            self.timed.insert(key.packed(), timed, self.now);
        }
    }

    /// Puts a change in force for good into the main table. Returns whether the (patient, scope)
    /// had nothing there before.
    fn settle(&mut self, key: Key, incoming: InForce) -> bool {
        match self.in_force.entry(key) {
            Entry::Occupied(mut slot) => {
                let mut changes = self.earlier.remove(&key).unwrap_or_default();
                changes.push(*slot.get());
                changes.push(incoming);
                let mut kept = deciding(changes, &mut self.purpose_lists);
                slot.insert(kept.remove(0));
                if !kept.is_empty() {
                    self.earlier.insert(key, kept);
                }
                false
            }
            Entry::Vacant(slot) => {
                slot.insert(incoming);
                true
            }
        }
    }

    /// Holds `patient` back from every purpose but direct care because the latest consent record
    /// under `record_key` could not be read: sluice cannot tell what it said. A readable record
    /// under the same key lifts the hold ([`Self::readable_record`]).
    pub fn hold_unreadable(&mut self, record_key: &str, patient: sluice_schemas::NhsNumber) {
        let patient = patient.as_u64();
        match self.unreadable.insert(record_key.to_owned(), patient) {
            Some(before) if before == patient => {}
            before => {
                if let Some(before) = before {
                    self.release_hold(before);
                }
                *self.held.entry(patient).or_default() += 1;
            }
        }
    }

    /// A readable record arrived under `record_key`: whatever an unreadable one before it said is
    /// replaced, so its hold is lifted.
    pub fn readable_record(&mut self, record_key: &str) {
        if let Some(patient) = self.unreadable.remove(record_key) {
            self.release_hold(patient);
        }
    }

    fn release_hold(&mut self, patient: u64) {
        if let Entry::Occupied(mut count) = self.held.entry(patient) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
    }

    /// The ids of every study some consent change names.
    pub fn study_ids(&self) -> impl Iterator<Item = &str> {
        self.studies.keys().map(String::as_str)
    }

    /// Patients held back by unreadable consent records now.
    pub fn held_patients(&self) -> usize {
        self.held.len()
    }

    /// Whether an unreadable consent record holds `patient` back.
    pub(super) fn is_held(&self, patient: u64) -> bool {
        !self.held.is_empty() && self.held.contains_key(&patient)
    }

    /// The scope code of a study, given one on first sight.
    fn study_scope(&mut self, id: String) -> u32 {
        if let Some(scope) = self.studies.get(&id) {
            return *scope;
        }
        let scope = u32::try_from(self.studies.len())
            .ok()
            .and_then(|n| n.checked_add(FIRST_STUDY))
            .filter(|scope| *scope <= MAX_SCOPE)
            .expect("fewer than 2^30 distinct study ids");
        self.studies.insert(id, scope);
        scope
    }

    /// The decision in force at the clock for a patient and scope that applies to `purpose`: the
    /// latest change in force that covers the purpose (a DENY winning a tie). `Some(true)` for a
    /// DENY, `Some(false)` for a PERMIT, `None` when no change covers it.
    pub(super) fn in_force(&self, patient: u64, scope: Scope<'_>, purpose: &Purpose) -> Option<bool> {
        let scope = match scope {
            Scope::National => NATIONAL,
            Scope::Type1 => TYPE_1,
            Scope::Study(id) => *self.studies.get(id)?,
        };
        let key = Key::new(patient, scope);
        let covers = |change: &&InForce| self.purpose_lists.covers(change.purposes(), purpose);
        // Kept changes are sorted, so the first that covers the purpose decides among them.
        let settled = self
            .in_force
            .get(&key)
            .and_then(|latest| Some(latest).filter(covers).or_else(|| self.earlier.get(&key)?.iter().find(covers)));
        let timed =
            self.timed.in_force(key.packed(), self.now, |purposes| self.purpose_lists.covers(purposes, purpose));
        match (settled, timed) {
            (Some(settled), Some(timed))
                if (timed.effective_at, timed.deny) > (settled.effective_at(), settled.deny()) =>
            {
                Some(timed.deny)
            }
            (Some(settled), _) => Some(settled.deny()),
            (None, timed) => timed.map(|timed| timed.deny),
        }
    }
}

impl fmt::Debug for ConsentStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsentStore")
            .field("patients", &self.patients)
            .field("in_force", &self.in_force.len())
            .field("with_earlier_changes", &self.earlier.len())
            .field("with_changes_bounded_in_time", &self.timed.keys())
            .field("studies", &self.studies.len())
            .field("purpose_lists", &self.purpose_lists.lists.len())
            .field("changes_applied", &self.changes_applied)
            .field("unreadable_records", &self.unreadable.len())
            .field("heap_bytes", &self.heap_bytes())
            .finish()
    }
}

/// Whether `a` beats `b` for a purpose both cover: it is later, or as late and a DENY where `b`
/// is a PERMIT.
fn beats(a: InForce, b: InForce) -> bool {
    (a.effective_at(), a.deny()) > (b.effective_at(), b.deny())
}

/// The changes of one (patient, scope) that can still decide for some purpose, latest first (a
/// DENY before a PERMIT at the same time). Changes of the same time and decision become one with
/// both purpose lists; a change is dropped when every purpose it covers is covered by a change
/// that beats it. The decision for a purpose is the first kept change that covers it, whatever
/// order the changes came in: the kept set depends only on the set of changes.
fn deciding(changes: Vec<InForce>, lists: &mut PurposeLists) -> Vec<InForce> {
    let mut merged: Vec<InForce> = Vec::with_capacity(changes.len());
    for change in changes {
        match merged.iter_mut().find(|m| (m.effective_at(), m.deny()) == (change.effective_at(), change.deny())) {
            Some(same) => {
                *same = InForce::new(same.effective_at(), same.deny(), lists.union(same.purposes(), change.purposes()))
            }
            None => merged.push(change),
        }
    }
    merged.sort_by_key(|m| std::cmp::Reverse((m.effective_at(), m.deny())));
    let mut kept: Vec<InForce> = Vec::with_capacity(merged.len());
    for change in merged {
        // Everything kept so far beats this change; it still decides for a purpose none of them covers.
        let covered = if change.purposes() == ALL_PURPOSES {
            kept.iter().any(|k| k.purposes() == ALL_PURPOSES)
        } else {
            lists.names(change.purposes()).iter().all(|name| {
                kept.iter().any(|k| k.purposes() == ALL_PURPOSES || lists.names(k.purposes()).contains(name))
            })
        };
        debug_assert!(kept.iter().all(|k| beats(*k, change)));
        if !covered {
            kept.push(change);
        }
    }
    kept
}

/// Heap bytes of a standard-library hash table of `T` entries with room for `capacity`: a
/// power-of-two number of buckets, each with a `T` slot and a control byte, plus one trailing
/// group of control bytes.
fn table_bytes<T>(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = (capacity + 1).max(capacity * 8 / 7).next_power_of_two();
    buckets * (size_of::<T>() + 1) + TABLE_GROUP_WIDTH
}

/// Bytes of one slot of the main table, which the store's compactness rests on.
#[cfg(test)]
pub(super) const SLOT_BYTES: usize = size_of::<(Key, InForce)>();
