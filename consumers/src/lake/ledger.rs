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
    let _lock = super::take(state_dir, "ledger.lock")?;
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

/// The source partition and offsets of every file a lander recorded, by key (files merged
/// since are still listed: their keys no longer exist in the lake).
pub fn landed_ranges(entries: &[LedgerEntry]) -> std::collections::HashMap<&str, (&str, i32, i64, i64)> {
    entries
        .iter()
        .filter_map(|entry| match entry {
            LedgerEntry::Landed { key, topic, partition, first, last } => {
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
        LedgerEntry::Landed { key: key.to_owned(), topic: "clinical.adt".to_owned(), partition, first, last }
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
    fn fresh_names_are_random_and_carry_no_offsets() {
        let (a, b) = (fresh_file_name(), fresh_file_name());
        assert_ne!(a, b);
        assert!(a.starts_with("part-") && a.ends_with(".parquet") && a.len() == 45, "{a}");
        assert!(a[5..37].bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
