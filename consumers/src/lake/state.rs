//! The lake's state beyond its datasets, under `<state dir>/_sluice/`:
//!
//! * `lake.lock`: held while landed files are rewritten (erasure, compaction), so that two such
//!   rewrites never touch the same file at once;
//! * `audit-publish.lock`: held while audit records are copied to the audit topic (see
//!   [`crate::audit::AuditPublisher`]), so that each is published once;
//! * `landed-files.jsonl`: the [`super::ledger`] of which source offsets each landed file holds (file
//!   names and metadata say nothing of it, see there);
//! * `committed-offsets.json`: per source topic and partition, the next offset that landers
//!   have committed after landing everything before it. Compaction merges only files wholly
//!   before it, so it never touches a file that a restarted lander might withdraw. Its own lock
//!   (`committed.lock`) keeps landers' updates apart without waiting for a long compaction: the
//!   offsets only ever grow, so a compaction that read them a moment ago is merely cautious.

use std::{
    collections::BTreeMap,
    fs::File,
    path::{Path, PathBuf},
};

use crate::{Error, Result};

pub(super) fn state_dir(lake: &Path) -> Result<PathBuf> {
    let dir = lake.join("_sluice");
    std::fs::create_dir_all(&dir).map_err(Error::write(&dir))?;
    Ok(dir)
}

/// Takes the lake's rewrite lock (blocking until it is free); released when the file is dropped.
pub fn lock(lake: &Path) -> Result<File> {
    take(lake, "lake.lock")
}

/// Takes the lock that audit publishers sharing this state directory take turns under.
pub fn audit_publish_lock(lake: &Path) -> Result<File> {
    take(lake, "audit-publish.lock")
}

pub(super) fn take(lake: &Path, name: &str) -> Result<File> {
    let path = state_dir(lake)?.join(name);
    let file = File::create(&path).map_err(Error::write(&path))?;
    file.lock().map_err(Error::write(&path))?;
    Ok(file)
}

/// Committed next offsets by topic, then partition.
pub type CommittedOffsets = BTreeMap<String, BTreeMap<i32, i64>>;

/// The committed offsets recorded in the lake (empty if none were).
pub fn committed(lake: &Path) -> Result<CommittedOffsets> {
    let path = lake.join("_sluice").join("committed-offsets.json");
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::WriteFile { path, reason: format!("not a record of committed offsets: {e}") }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(CommittedOffsets::new()),
        Err(error) => Err(Error::write(&path)(error)),
    }
}

/// Records offsets just committed (each only ever moves forward), atomically and under the
/// record's own lock.
pub fn record_committed<'t>(lake: &Path, offsets: impl IntoIterator<Item = (&'t str, i32, i64)>) -> Result<()> {
    let _lock = take(lake, "committed.lock")?;
    let mut recorded = committed(lake)?;
    for (topic, partition, next) in offsets {
        let entry = recorded.entry(topic.to_owned()).or_default().entry(partition).or_insert(next);
        *entry = (*entry).max(next);
    }
    let path = state_dir(lake)?.join("committed-offsets.json");
    let text = serde_json::to_vec_pretty(&recorded).expect("offsets always serialise");
    crate::lake::parquet::write_small_file(&path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_commits_does_not_wait_for_a_rewrite_of_the_lake() {
        let dir = tempfile::tempdir().unwrap();
        let _compaction_running = lock(dir.path()).unwrap();
        record_committed(dir.path(), [("clinical.adt", 0, 3)]).unwrap();
        assert_eq!(committed(dir.path()).unwrap()["clinical.adt"][&0], 3);
    }

    #[test]
    fn committed_offsets_only_move_forward() {
        let dir = tempfile::tempdir().unwrap();
        assert!(committed(dir.path()).unwrap().is_empty());
        record_committed(dir.path(), [("clinical.adt", 0, 10), ("clinical.adt", 1, 5)]).unwrap();
        record_committed(dir.path(), [("clinical.adt", 0, 7), ("clinical.observation", 3, 2)]).unwrap();
        let recorded = committed(dir.path()).unwrap();
        assert_eq!(recorded["clinical.adt"], BTreeMap::from([(0, 10), (1, 5)]));
        assert_eq!(recorded["clinical.observation"], BTreeMap::from([(3, 2)]));
    }
}
