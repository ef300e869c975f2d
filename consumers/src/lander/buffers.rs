//! Buffering and rolling: the rows waiting for their files, what each source partition has
//! consumed since its last commit, and which partitions' files are due to roll (see the
//! [lander's documentation](super) for when). Synchronous and free of Kafka: the state a
//! checkpoint takes its work from.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use tracing::info;

use super::{
    LanderConfig, LandingReport,
    event_clock::EventClock,
    partition::{PendingFileKey, TopicPartition},
    telemetry::TracedEvent,
};
use crate::{batch::RowBuffer, policy::LandingPlan, pseudonymise::Cell};

/// Rows waiting for one file, and what they came from.
pub(super) struct PendingFile {
    /// The rows.
    pub(super) rows: RowBuffer,
    /// Offset of the first and last event in the file.
    pub(super) offsets: (i64, i64),
    /// Fingerprints of the schemas the events were written with.
    pub(super) writer_fingerprints: BTreeSet<u64>,
}

/// A clinical partition consumed since the last checkpoint.
#[derive(Debug)]
pub(super) struct PartitionProgress {
    /// When its first event since the last roll was read, for rolling by age.
    pub(super) started: Instant,
    /// First offset consumed since the last checkpoint.
    pub(super) first: i64,
    /// Next offset to commit.
    pub(super) next: i64,
    /// What the events came to, per purpose. Merged into the run's report only once committed.
    pub(super) tally: LandingReport,
    /// Sampled events whose `land` spans are recorded at the commit (see [`super::telemetry`]).
    pub(super) traced: Vec<TracedEvent>,
}

/// What the checkpoint of some partitions takes out of the buffers.
pub(super) struct Rolling {
    /// The files to write.
    pub(super) files: BTreeMap<PendingFileKey, PendingFile>,
    /// The partitions whose offsets to commit, with what they consumed.
    pub(super) partitions: BTreeMap<TopicPartition, PartitionProgress>,
    /// Rows in `files`.
    pub(super) rows: usize,
}

/// Everything held between checkpoints.
pub(super) struct Buffers {
    /// Rows per file to be written.
    pending: BTreeMap<PendingFileKey, PendingFile>,
    /// Rows in all pending files (and in files being written, until their checkpoint ends).
    buffered_rows: usize,
    /// Clinical partitions consumed since the last checkpoint. Dropped if the partition is
    /// revoked first (the new owner re-reads those events).
    uncommitted: BTreeMap<TopicPartition, PartitionProgress>,
    /// Next offset expected per partition in this run, to notice skipped offsets. A partition
    /// is here from its first event in this run until it is revoked.
    positions: HashMap<TopicPartition, i64>,
    /// Event-time progress per partition in this run, for rolling at window boundaries.
    clocks: HashMap<TopicPartition, EventClock>,
    /// Whether files roll when a partition's true event time enters a new window. Not when any
    /// purpose shifts time: its files would then end at true midnights, grouping its rows by
    /// true day.
    roll_at_event_time_windows: bool,
}

impl Buffers {
    /// Empty buffers; files roll at event-time windows only if `roll_at_event_time_windows`.
    pub(super) fn new(roll_at_event_time_windows: bool) -> Self {
        Buffers {
            pending: BTreeMap::new(),
            buffered_rows: 0,
            uncommitted: BTreeMap::new(),
            positions: HashMap::new(),
            clocks: HashMap::new(),
            roll_at_event_time_windows,
        }
    }

    /// Whether `source` has been read in this run (and not revoked since).
    pub(super) fn reading(&self, source: &TopicPartition) -> bool {
        self.positions.contains_key(source)
    }

    /// The partition whose files should roll before an event of `source` in event-time
    /// `window` is buffered, because the event is the first of its partition in a later window
    /// than everything buffered for it (see [`LanderConfig::event_time_window_secs`]).
    pub(super) fn window_closed_by(&self, source: &TopicPartition, window: Option<i64>) -> Option<TopicPartition> {
        if !self.roll_at_event_time_windows {
            return None;
        }
        let window = window?;
        let clock = self.clocks.get(source)?;
        let holds_rows = self.uncommitted.contains_key(source);
        (holds_rows && clock.in_order() && clock.watermark.is_some_and(|latest| window > latest))
            .then(|| source.clone())
    }

    /// Records that the event at `offset` of `source` was read, in event-time `window`; returns
    /// the partition's progress (to count what the event comes to) and how many offsets before
    /// it were skipped (the broker no longer held them).
    pub(super) fn read(
        &mut self,
        source: &TopicPartition,
        offset: i64,
        window: Option<i64>,
        traced: Option<TracedEvent>,
    ) -> (&mut PartitionProgress, u64) {
        // Looked up before inserting: the key is cloned once per partition, not once per event.
        let skipped = match self.positions.get_mut(source) {
            Some(expected) => {
                let skipped = if offset > *expected { (offset - *expected) as u64 } else { 0 };
                *expected = offset + 1;
                skipped
            }
            None => {
                self.positions.insert(source.clone(), offset + 1);
                0
            }
        };
        if let Some(window) = window {
            match self.clocks.get_mut(source) {
                Some(clock) => clock.observe(window),
                None => self.clocks.entry(source.clone()).or_default().observe(window),
            }
        }
        if !self.uncommitted.contains_key(source) {
            let progress = PartitionProgress {
                started: Instant::now(),
                first: offset,
                next: offset,
                tally: LandingReport::default(),
                traced: Vec::new(),
            };
            self.uncommitted.insert(source.clone(), progress);
        }
        let progress = self.uncommitted.get_mut(source).expect("inserted above");
        progress.next = offset + 1;
        if let Some(traced) = traced.filter(|_| progress.traced.len() < super::telemetry::MAX_TRACED_PER_PARTITION) {
            progress.traced.push(traced);
        }
        (progress, skipped)
    }

    /// Adds a row of the event at `offset` of `source` to its purpose's file for its period.
    pub(super) fn push_row(
        &mut self,
        purpose: usize,
        source: &TopicPartition,
        offset: i64,
        plan: Arc<LandingPlan>,
        row: Vec<Cell>,
        writer_fingerprint: u64,
    ) {
        let period = super::route::landed_period(&plan, &row);
        let key = PendingFileKey { purpose, source: source.clone(), period };
        let pending = self.pending.entry(key).or_insert_with(|| PendingFile {
            rows: RowBuffer::new(plan),
            offsets: (offset, offset),
            writer_fingerprints: BTreeSet::new(),
        });
        pending.rows.push(row);
        pending.offsets.1 = offset;
        pending.writer_fingerprints.insert(writer_fingerprint);
        self.buffered_rows += 1;
    }

    /// Takes out the files and progress of the partitions in `only` (every partition when
    /// `None`) for a checkpoint. Their rows still count as buffered until [`Self::rolled`].
    pub(super) fn take(&mut self, only: Option<&BTreeSet<TopicPartition>>) -> Rolling {
        let selected = |source: &TopicPartition| only.is_none_or(|set| set.contains(source));
        let (files, kept): (BTreeMap<_, _>, BTreeMap<_, _>) =
            std::mem::take(&mut self.pending).into_iter().partition(|(key, _)| selected(&key.source));
        self.pending = kept;
        let (partitions, kept): (BTreeMap<_, _>, BTreeMap<_, _>) =
            std::mem::take(&mut self.uncommitted).into_iter().partition(|(source, _)| selected(source));
        self.uncommitted = kept;
        let rows = files.values().map(|file| file.rows.rows()).sum();
        Rolling { files, partitions, rows }
    }

    /// A checkpoint's `rows` are written (or withdrawn): they no longer count as buffered.
    pub(super) fn rolled(&mut self, rows: usize) {
        self.buffered_rows -= rows;
    }

    /// Forgets everything buffered for partitions this lander no longer owns: nothing of theirs
    /// is written or committed here, and their new owner re-reads them from the committed offsets.
    pub(super) fn revoke(&mut self, partitions: &[TopicPartition]) {
        let mut dropped_rows = 0;
        self.pending.retain(|key, pending| {
            let revoked = partitions.contains(&key.source);
            if revoked {
                dropped_rows += pending.rows.rows();
            }
            !revoked
        });
        self.buffered_rows -= dropped_rows;
        for source in partitions {
            self.uncommitted.remove(source);
            self.positions.remove(source);
            self.clocks.remove(source);
        }
        info!(
            partitions = partitions.len(),
            dropped_rows, "partitions revoked: their uncommitted rows are left to the new owner"
        );
    }

    /// The partitions consumed since the last checkpoint.
    pub(super) fn uncommitted(&self) -> impl Iterator<Item = &TopicPartition> {
        self.uncommitted.keys()
    }

    /// Whether any partition has consumed offsets to commit.
    pub(super) fn has_uncommitted(&self) -> bool {
        !self.uncommitted.is_empty()
    }

    /// Clinical messages consumed since the last checkpoint.
    pub(super) fn consumed_uncommitted(&self) -> u64 {
        self.uncommitted.values().map(|p| p.tally.consumed_total()).sum()
    }

    /// The source partitions whose files should roll now (see the [lander's documentation](super)).
    pub(super) fn partitions_due(&self, config: &LanderConfig) -> BTreeSet<TopicPartition> {
        let mut held: BTreeMap<&TopicPartition, (usize, usize)> = BTreeMap::new();
        for (key, pending) in &self.pending {
            let entry = held.entry(&key.source).or_default();
            entry.0 += pending.rows.rows();
            entry.1 += pending.rows.bytes();
        }
        let max_age = Duration::from_secs(config.max_file_age_secs.max(1));
        let mut due: BTreeSet<TopicPartition> = self
            .uncommitted
            .iter()
            .filter(|(source, progress)| {
                let (rows, bytes) = held.get(source).copied().unwrap_or_default();
                rows >= config.max_file_rows.max(1)
                    || bytes >= config.max_file_bytes.max(1)
                    || progress.started.elapsed() >= max_age
            })
            .map(|(source, _)| source.clone())
            .collect();
        let limit = config.max_buffered_rows.max(1);
        if self.buffered_rows >= limit {
            let mut by_size: Vec<_> = held.iter().map(|(source, (rows, _))| (*source, *rows)).collect();
            by_size.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            // Rows left in memory once the partitions already due have rolled.
            let mut remaining = self.buffered_rows
                - held.iter().filter(|(source, _)| due.contains(**source)).map(|(_, (rows, _))| rows).sum::<usize>();
            for (source, rows) in by_size {
                if remaining <= limit / 2 {
                    break;
                }
                if due.insert(source.clone()) {
                    remaining = remaining.saturating_sub(rows);
                }
            }
        }
        due
    }

    /// Whether every partition in `targets` has been read (in this run, or by the group as
    /// `committed` says) up to its target offset.
    pub(super) fn caught_up(
        &self,
        targets: &BTreeMap<TopicPartition, i64>,
        committed: &HashMap<TopicPartition, i64>,
    ) -> bool {
        targets.iter().all(|(source, target)| {
            let position = self.positions.get(source).or_else(|| committed.get(source)).copied().unwrap_or(0);
            position >= *target
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LanderConfig {
        LanderConfig { max_file_rows: 3, max_buffered_rows: 100, ..LanderConfig::default() }
    }

    /// A plan for rows of one integer column, no event time.
    fn plan() -> Arc<LandingPlan> {
        let catalogue = crate::test_support::single_version_catalogue(
            "adt",
            r#"{"name": "nhs_number", "type": "string", "sensitivity": "direct-identifier"},
                {"name": "count", "type": "long"}"#,
        );
        let version = catalogue.latest("adt").unwrap();
        Arc::new(crate::test_support::policy(version, &[("count", "\"keep\"")]).plan(version).unwrap())
    }

    fn buffer(buffers: &mut Buffers, plan: &Arc<LandingPlan>, source: &TopicPartition, offset: i64) {
        let (progress, _) = buffers.read(source, offset, None, None);
        *progress.tally.consumed.entry("adt".to_owned()).or_default() += 1;
        let row = vec![Cell::Int64(offset)];
        buffers.push_row(0, source, offset, plan.clone(), row, 7);
    }

    #[test]
    fn a_partition_rolls_at_its_row_limit_and_its_checkpoint_takes_only_its_files() {
        let plan = plan();
        let (adt0, adt1) = (TopicPartition::new("clinical.adt", 0), TopicPartition::new("clinical.adt", 1));
        let mut buffers = Buffers::new(true);
        for offset in 0..3 {
            buffer(&mut buffers, &plan, &adt0, offset);
        }
        buffer(&mut buffers, &plan, &adt1, 10);
        assert_eq!(buffers.partitions_due(&config()), BTreeSet::from([adt0.clone()]));

        let rolling = buffers.take(Some(&BTreeSet::from([adt0.clone()])));
        assert_eq!(rolling.rows, 3);
        assert_eq!(rolling.files.len(), 1);
        let (key, file) = rolling.files.iter().next().unwrap();
        assert_eq!(key.source, adt0);
        assert_eq!(file.offsets, (0, 2));
        let progress = &rolling.partitions[&adt0];
        assert_eq!((progress.first, progress.next), (0, 3));
        assert_eq!(buffers.uncommitted().collect::<Vec<_>>(), [&adt1]);
        assert_eq!(buffers.consumed_uncommitted(), 1);
        buffers.rolled(rolling.rows);
        assert!(buffers.partitions_due(&config()).is_empty());
    }

    #[test]
    fn skipped_offsets_are_noticed_and_revoked_partitions_forgotten() {
        let plan = plan();
        let adt0 = TopicPartition::new("clinical.adt", 0);
        let mut buffers = Buffers::new(true);
        buffer(&mut buffers, &plan, &adt0, 5);
        let (_, skipped) = buffers.read(&adt0, 9, None, None);
        assert_eq!(skipped, 3, "offsets 6, 7 and 8 were not read");
        assert!(buffers.reading(&adt0));
        assert!(buffers.caught_up(&BTreeMap::from([(adt0.clone(), 10)]), &HashMap::new()));
        assert!(!buffers.caught_up(&BTreeMap::from([(adt0.clone(), 11)]), &HashMap::new()));

        buffers.revoke(std::slice::from_ref(&adt0));
        assert!(!buffers.reading(&adt0));
        assert!(!buffers.has_uncommitted());
        let rolling = buffers.take(None);
        assert!(rolling.files.is_empty() && rolling.partitions.is_empty());
        // The group's committed offsets still count for a partition read elsewhere.
        assert!(buffers.caught_up(&BTreeMap::from([(adt0.clone(), 10)]), &HashMap::from([(adt0, 10)])));
    }

    #[test]
    fn over_the_memory_limit_the_largest_partitions_roll_until_half_is_left() {
        let plan = plan();
        let config = LanderConfig { max_file_rows: 1_000, max_buffered_rows: 10, ..LanderConfig::default() };
        let mut buffers = Buffers::new(true);
        let sources: Vec<_> = (0..3).map(|p| TopicPartition::new("clinical.adt", p)).collect();
        let mut offset = 0;
        for (source, rows) in sources.iter().zip([6, 3, 2]) {
            for _ in 0..rows {
                buffer(&mut buffers, &plan, source, offset);
                offset += 1;
            }
        }
        // 11 rows held, limit 10: partition 0 (6 rows) rolls, leaving 5, half the limit.
        assert_eq!(buffers.partitions_due(&config), BTreeSet::from([sources[0].clone()]));
    }
}
