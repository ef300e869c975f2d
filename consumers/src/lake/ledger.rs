//! The landing ledger, `<state>/_sluice/landed-files.jsonl`: which source events each landed
//! file holds, kept where analysts never look.
//!
//! Landed files carry no Kafka topic, partition or offset in their names or metadata: an offset
//! is the same in every purpose's files, so it would join one purpose's rows to another's and to
//! the source topics. Exactly-once landing still needs to know which files hold which offsets (a
//! restarted lander withdraws the files written after its last commit, compaction merges only
//! files wholly before it), and this ledger, in the restricted state directory, is where that is
//! recorded.
//!
//! Each line is one JSON [`LedgerEntry`]. A lander appends the entries of a checkpoint's files
//! (durably, with one fsync) **before** it writes them, so a crash at any later point leaves an
//! entry for every file that may exist. Compaction appends an entry for a merged file, with its
//! inputs, before writing it, so an interrupted merge can be finished (its inputs removed) or
//! ignored. A line cut short by a crash while it was being appended is the last line, and named
//! no file that was written; it is skipped. Any other unreadable line stops the reader: the
//! ledger is never guessed at.
//!
//! Compaction keeps the ledger bounded ([`prune`]): it drops the entries of files that are gone
//! and can never be withdrawn again (their offsets are committed), so the ledger lists about as
//! many files as the lake holds.

use std::{
    fs::OpenOptions,
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// File name of the ledger in the state directory's `_sluice/`.
pub const LEDGER_FILE: &str = "landed-files.jsonl";

/// One line of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LedgerEntry {
    /// A file a lander is about to write: the events of one source partition, from `first` to
    /// `last`, for one purpose and dataset.
    Landed {
        /// Key of the file in the lake.
        key: String,
        /// Source topic.
        topic: String,
        /// Source partition.
        partition: i32,
        /// Offset of the first event in the file.
        first: i64,
        /// Offset of the last event in the file.
        last: i64,
        /// The landing of the dataset's Delta table the file was written for, when it was
        /// (absent in ledgers written before tables): which of the table's commits, if any,
        /// holds it, and so which offsets the table holds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        table_landing: Option<TableLanding>,
    },
    /// A file compaction is about to write from committed files, which it removes once the
    /// merged file is durable.
    Merged {
        /// Key of the merged file.
        key: String,
        /// Keys of the files merged into it.
        inputs: Vec<String>,
    },
}

/// One landing of a dataset's Delta table: the lander's application id in that table and the
/// landing's sequence number (the table's `txn` action, see
/// [`crate::lake::table::Change::Landing`]). The ledger is where a sequence number is tied to
/// offsets: the table's log never names one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableLanding {
    /// The lander's id in the table ([`crate::lake::table::application_id`]).
    pub application: String,
    /// The landing's sequence number.
    pub sequence: i64,
}

/// What a table holds from the source partitions `application` lands, given the highest
/// sequence number the table has committed for it: per source topic and partition, the offset
/// ranges its committed landings cover (each landing from the first to the last offset of its
/// files' rows), merged where they touch, in order.
///
/// A range, not a last offset: a landing need not begin where the group's offsets do (a lander
/// that lost a partition and was given it back part-way through a batch begins where it picked
/// up), so offsets before a landing, or between two, are not held whatever comes after them.
pub fn table_holds(
    entries: &[LedgerEntry],
    application: &str,
    committed: Option<i64>,
) -> std::collections::BTreeMap<(String, i32), Vec<(i64, i64)>> {
    let mut landings: std::collections::BTreeMap<(String, i32, i64), (i64, i64)> = Default::default();
    let Some(committed) = committed else { return Default::default() };
    for entry in entries {
        if let LedgerEntry::Landed { topic, partition, first, last, table_landing: Some(landing), .. } = entry
            && landing.application == application
            && landing.sequence <= committed
        {
            let range = landings.entry((topic.clone(), *partition, landing.sequence)).or_insert((*first, *last));
            *range = (range.0.min(*first), range.1.max(*last));
        }
    }
    let mut held: std::collections::BTreeMap<(String, i32), Vec<(i64, i64)>> = Default::default();
    for ((topic, partition, _), range) in landings {
        held.entry((topic, partition)).or_default().push(range);
    }
    for ranges in held.values_mut() {
        ranges.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
        for &(first, last) in ranges.iter() {
            match merged.last_mut() {
                Some(previous) if first <= previous.1.saturating_add(1) => previous.1 = previous.1.max(last),
                _ => merged.push((first, last)),
            }
        }
        *ranges = merged;
    }
    held
}

/// The files written for landings of `application` that the table never committed (sequence
/// numbers above `committed`): not part of the table, so never seen by its readers, and removed
/// by the next lander of those partitions.
pub fn never_committed<'e>(entries: &'e [LedgerEntry], application: &str, committed: Option<i64>) -> Vec<&'e str> {
    entries
        .iter()
        .filter_map(|entry| match entry {
            LedgerEntry::Landed { key, table_landing: Some(landing), .. }
                if landing.application == application && committed.is_none_or(|c| landing.sequence > c) =>
            {
                Some(key.as_str())
            }
            _ => None,
        })
        .collect()
}

fn path(state_dir: &Path) -> Result<PathBuf> {
    let dir = state_dir.join("_sluice");
    std::fs::create_dir_all(&dir).map_err(Error::write(&dir))?;
    Ok(dir.join(LEDGER_FILE))
}

/// Appends entries durably (one write, one fsync), under the ledger's own lock so that landers
/// sharing a state directory never interleave their lines.
pub fn append(state_dir: &Path, entries: &[LedgerEntry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let _lock = super::state::take(state_dir, "ledger.lock")?;
    let path = path(state_dir)?;
    let mut lines = Vec::new();
    for entry in entries {
        serde_json::to_writer(&mut lines, entry).expect("ledger entries always serialise");
        lines.push(b'\n');
    }
    let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(Error::write(&path))?;
    file.write_all(&lines).and_then(|()| file.sync_all()).map_err(Error::write(&path))
}

/// Every entry, in the order appended (none if there is no ledger yet).
pub fn read(state_dir: &Path) -> Result<Vec<LedgerEntry>> {
    let path = path(state_dir)?;
    let text = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(Error::write(&path)(error)),
    };
    let mut entries = Vec::new();
    let mut lines = text.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice(line) {
            Ok(entry) => entries.push(entry),
            // The last line, with no newline after it: an append cut short, before any file it
            // names was written.
            Err(_) if lines.peek().is_none() => break,
            Err(error) => {
                return Err(Error::WriteFile {
                    path,
                    reason: format!("line {} is not a ledger entry: {error}", entries.len() + 1),
                });
            }
        }
    }
    Ok(entries)
}

/// A copy of the ledger read once and read again only when the file's length has changed (a
/// lander asks at every partition it is newly assigned; the entries are the same until someone
/// appends or prunes).
#[derive(Debug, Default)]
pub struct CachedLedger {
    /// The file's length when read, and its entries.
    read: Option<(u64, Vec<LedgerEntry>)>,
}

impl CachedLedger {
    /// The ledger's entries as they are now.
    pub fn entries(&mut self, state_dir: &Path) -> Result<&[LedgerEntry]> {
        let path = path(state_dir)?;
        let length = match std::fs::metadata(&path) {
            Ok(metadata) => metadata.len(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
            Err(error) => return Err(Error::write(&path)(error)),
        };
        if self.read.as_ref().is_none_or(|(read_length, _)| *read_length != length) {
            self.read = Some((length, read(state_dir)?));
        }
        Ok(&self.read.as_ref().expect("just read").1)
    }
}

/// Drops the entries no one needs again, atomically, under the ledger's lock: a landed file's
/// entry once the file is gone (merged or withdrawn) and its offsets are committed (so no
/// lander will withdraw or write it again), and a merge's entry once neither the merged file nor
/// any of its inputs is in the lake. `present` lists the lake's files; an entry appended after
/// it was listed is for offsets not yet committed and stays. Returns how many were dropped.
pub fn prune(
    state_dir: &Path,
    committed: &super::CommittedOffsets,
    present: &std::collections::BTreeSet<String>,
) -> Result<usize> {
    let _lock = super::state::take(state_dir, "ledger.lock")?;
    let entries = read(state_dir)?;
    let before = entries.len();
    let kept: Vec<&LedgerEntry> = entries
        .iter()
        .filter(|entry| match entry {
            LedgerEntry::Landed { key, topic, partition, last, .. } => {
                let settled = committed.get(topic).and_then(|p| p.get(partition)).is_some_and(|next| last < next);
                present.contains(key) || !settled
            }
            LedgerEntry::Merged { key, inputs } => present.contains(key) || inputs.iter().any(|i| present.contains(i)),
        })
        .collect();
    if kept.len() == before {
        return Ok(0);
    }
    let mut lines = Vec::new();
    for entry in &kept {
        serde_json::to_writer(&mut lines, entry).expect("ledger entries always serialise");
        lines.push(b'\n');
    }
    crate::lake::parquet::write_small_file(&path(state_dir)?, &lines)?;
    Ok(before - kept.len())
}

/// The source partition and offsets of every file a lander recorded, by key (files merged
/// since are still listed: their keys no longer exist in the lake).
pub fn landed_ranges(entries: &[LedgerEntry]) -> std::collections::HashMap<&str, (&str, i32, i64, i64)> {
    entries
        .iter()
        .filter_map(|entry| match entry {
            LedgerEntry::Landed { key, topic, partition, first, last, .. } => {
                Some((key.as_str(), (topic.as_str(), *partition, *first, *last)))
            }
            LedgerEntry::Merged { .. } => None,
        })
        .collect()
}

/// A fresh name for a landed file: `part-` and 32 random hex digits. It says nothing about the
/// events inside, when the file was written, or by whom.
pub fn fresh_file_name() -> String {
    format!("part-{}.parquet", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn landed(key: &str, partition: i32, first: i64, last: i64) -> LedgerEntry {
        LedgerEntry::Landed {
            key: key.to_owned(),
            topic: "clinical.adt".to_owned(),
            partition,
            first,
            last,
            table_landing: None,
        }
    }

    fn landed_for(
        key: &str,
        partition: i32,
        (first, last): (i64, i64),
        application: &str,
        sequence: i64,
    ) -> LedgerEntry {
        let landing = TableLanding { application: application.to_owned(), sequence };
        match landed(key, partition, first, last) {
            LedgerEntry::Landed { key, topic, partition, first, last, .. } => {
                LedgerEntry::Landed { key, topic, partition, first, last, table_landing: Some(landing) }
            }
            other => other,
        }
    }

    #[test]
    fn a_table_holds_the_offsets_of_its_committed_landings_and_no_others() {
        let dir = tempfile::tempdir().unwrap();
        let entries = [
            landed_for("a", 0, (0, 9), "app-0", 1),
            landed_for("b", 0, (10, 19), "app-0", 2),
            landed_for("c", 0, (20, 29), "app-0", 3),
            // The same sequence number of another application (another partition or table).
            landed_for("d", 1, (0, 99), "app-1", 2),
            // A ledger written before tables.
            landed("e", 0, 30, 39),
        ];
        append(dir.path(), &entries).unwrap();
        let entries = read(dir.path()).unwrap();
        let held = |committed| table_holds(&entries, "app-0", committed);
        assert!(held(None).is_empty());
        assert_eq!(held(Some(2)), [(("clinical.adt".to_owned(), 0), vec![(0, 19)])].into(), "touching ranges merge");
        assert_eq!(held(Some(3)), [(("clinical.adt".to_owned(), 0), vec![(0, 29)])].into());
        assert_eq!(never_committed(&entries, "app-0", Some(2)), ["c"]);
        assert_eq!(never_committed(&entries, "app-0", None), ["a", "b", "c"]);
        assert!(never_committed(&entries, "app-0", Some(3)).is_empty());
        assert_eq!(never_committed(&entries, "app-1", Some(1)), ["d"]);
        // Entries without a table landing still read, and their lines carry no such field.
        let text = std::fs::read_to_string(path(dir.path()).unwrap()).unwrap();
        assert_eq!(text.lines().filter(|line| line.contains("table_landing")).count(), 4);
    }

    #[test]
    fn offsets_before_or_between_committed_landings_are_not_held() {
        // A lander picked the partition up at 98 (it had dropped 0..=97 when the partition was
        // taken from it and given back within one batch), and a later landing skipped 200..=209.
        let entries = [
            landed_for("a", 0, (98, 150), "app-0", 1),
            landed_for("b", 0, (120, 183), "app-0", 1),
            landed_for("c", 0, (210, 230), "app-0", 2),
        ];
        let held = table_holds(&entries, "app-0", Some(2));
        assert_eq!(held[&("clinical.adt".to_owned(), 0)], [(98, 183), (210, 230)]);
    }

    #[test]
    fn entries_append_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_empty());
        append(dir.path(), &[landed("a", 0, 0, 9), landed("b", 1, 3, 4)]).unwrap();
        let merged = LedgerEntry::Merged { key: "m".to_owned(), inputs: vec!["a".to_owned()] };
        append(dir.path(), std::slice::from_ref(&merged)).unwrap();
        let entries = read(dir.path()).unwrap();
        assert_eq!(entries, [landed("a", 0, 0, 9), landed("b", 1, 3, 4), merged]);
        let ranges = landed_ranges(&entries);
        assert_eq!(ranges["b"], ("clinical.adt", 1, 3, 4));
        assert!(!ranges.contains_key("m"));
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_a_bad_line_before_it_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), &[landed("a", 0, 0, 9)]).unwrap();
        let file = dir.path().join("_sluice").join(LEDGER_FILE);
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push_str(r#"{"kind":"landed","key":"b","to"#);
        std::fs::write(&file, &text).unwrap();
        assert_eq!(read(dir.path()).unwrap(), [landed("a", 0, 0, 9)]);
        text.push_str("\n{}\n");
        std::fs::write(&file, &text).unwrap();
        let error = read(dir.path()).unwrap_err().to_string();
        assert!(error.contains("line 2 is not a ledger entry"), "{error}");
    }

    #[test]
    fn pruning_drops_only_entries_of_files_gone_and_settled() {
        let dir = tempfile::tempdir().unwrap();
        let merged = |key: &str, inputs: &[&str]| LedgerEntry::Merged {
            key: key.to_owned(),
            inputs: inputs.iter().map(|i| i.to_string()).collect(),
        };
        append(
            dir.path(),
            &[
                landed("gone-settled", 0, 0, 9),
                landed("gone-uncommitted", 0, 10, 19),
                landed("present", 1, 0, 4),
                landed("gone-other-partition", 2, 0, 4),
                merged("m-present", &["gone-settled"]),
                merged("m-gone", &["gone-too"]),
                merged("m-gone-input-left", &["present"]),
            ],
        )
        .unwrap();
        let committed = super::super::CommittedOffsets::from([(
            "clinical.adt".to_owned(),
            std::collections::BTreeMap::from([(0, 10), (1, 5)]),
        )]);
        let present = ["present", "m-present"].map(str::to_owned).into_iter().collect();
        assert_eq!(prune(dir.path(), &committed, &present).unwrap(), 2);
        let keys: Vec<String> = read(dir.path())
            .unwrap()
            .into_iter()
            .map(|entry| match entry {
                LedgerEntry::Landed { key, .. } | LedgerEntry::Merged { key, .. } => key,
            })
            .collect();
        // Partition 2 has no committed offset: its entry may still be withdrawn.
        assert_eq!(keys, ["gone-uncommitted", "present", "gone-other-partition", "m-present", "m-gone-input-left"]);
        assert_eq!(prune(dir.path(), &committed, &present).unwrap(), 0);
    }

    #[test]
    fn fresh_names_are_random_and_carry_no_offsets() {
        let (a, b) = (fresh_file_name(), fresh_file_name());
        assert_ne!(a, b);
        assert!(a.starts_with("part-") && a.ends_with(".parquet") && a.len() == 45, "{a}");
        assert!(a[5..37].bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
