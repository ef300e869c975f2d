//! How far an import of one file has got, kept in the state directory so a restarted import
//! neither skips nor repeats a line.
//!
//! A checkpoint says: every line before `next_line` is stored in Kafka, and every record this
//! file may have put in Kafka after that was written at or after the `scan_from` offsets. A
//! resumed import seeks to `byte_offset`, reads the topics from `scan_from` to their ends for this
//! file's source references, and skips exactly the outputs it finds there.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How much of the start of a file identifies it.
const IDENTITY_BYTES: u64 = 64 * 1024;

/// An import's progress through one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The file's identity (see [`file_identity`]).
    pub file_id: String,
    /// The first line (counting from 1) not known to be stored; every line before it is.
    pub next_line: u64,
    /// Where `next_line` starts in the file, in bytes.
    pub byte_offset: u64,
    /// Every line of the file is stored: importing it again publishes nothing.
    pub complete: bool,
    /// Offsets from which a resumed import must look for this file's records.
    pub scan_from: Vec<TopicOffset>,
}

/// An offset in one partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicOffset {
    /// Topic name.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

impl Checkpoint {
    /// Where the checkpoint of file `file_id` lives in `state_dir`.
    pub fn path(state_dir: &Path, file_id: &str) -> PathBuf {
        state_dir.join(format!("import-{file_id}.json"))
    }

    /// Reads a checkpoint; `None` when there is none yet.
    pub fn load(path: &Path) -> io::Result<Option<Checkpoint>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
                io::Error::new(io::ErrorKind::InvalidData, format!("not a sluice import checkpoint: {error}"))
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Writes the checkpoint durably: a temporary file, synced, renamed over the old one, and
    /// the directory synced, so a crash leaves the old checkpoint or the new one.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let temporary = path.with_extension("json.writing");
        let mut file = File::create(&temporary)?;
        file.write_all(&serde_json::to_vec_pretty(self).expect("a checkpoint serialises"))?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        File::open(dir)?.sync_all()
    }

    /// The scan offsets as a map.
    pub fn scan_from_map(&self) -> BTreeMap<(String, i32), i64> {
        self.scan_from.iter().map(|t| ((t.topic.clone(), t.partition), t.offset)).collect()
    }
}

/// Offsets from a map, for a checkpoint.
pub fn topic_offsets(offsets: &BTreeMap<(String, i32), i64>) -> Vec<TopicOffset> {
    offsets
        .iter()
        .map(|((topic, partition), offset)| TopicOffset {
            topic: topic.clone(),
            partition: *partition,
            offset: *offset,
        })
        .collect()
}

/// A file's identity: the SHA-256 of its first 64 KiB, as 32 hex digits. It does not depend on
/// the file's name or location, and survives lines appended past the first 64 KiB; a file whose
/// start changes is a different file.
pub fn file_identity(path: &Path) -> io::Result<String> {
    let mut start = Vec::new();
    File::open(path)?.take(IDENTITY_BYTES).read_to_end(&mut start)?;
    let digest = Sha256::digest(&start);
    Ok(digest[..16].iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_replace_each_other_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = Checkpoint::path(dir.path(), "abc");
        assert_eq!(Checkpoint::load(&path).unwrap(), None);
        let mut checkpoint = Checkpoint {
            file_id: "abc".into(),
            next_line: 42,
            byte_offset: 4096,
            complete: false,
            scan_from: vec![TopicOffset { topic: "clinical.adt".into(), partition: 3, offset: 17 }],
        };
        checkpoint.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap().as_ref(), Some(&checkpoint));
        checkpoint.complete = true;
        checkpoint.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), Some(checkpoint));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left behind");
        std::fs::write(&path, "{}").unwrap();
        assert!(Checkpoint::load(&path).is_err(), "a damaged checkpoint is an error, not a fresh start");
    }

    #[test]
    fn identity_follows_the_content_of_the_start_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
        std::fs::write(&a, "{\"line\": 1}\n").unwrap();
        std::fs::write(&b, "{\"line\": 1}\n").unwrap();
        assert_eq!(file_identity(&a).unwrap(), file_identity(&b).unwrap(), "names do not matter");
        std::fs::write(&b, "{\"line\": 2}\n").unwrap();
        assert_ne!(file_identity(&a).unwrap(), file_identity(&b).unwrap());
        let long = "x".repeat(70 * 1024);
        std::fs::write(&a, &long).unwrap();
        let before = file_identity(&a).unwrap();
        std::fs::write(&a, format!("{long}\nmore")).unwrap();
        assert_eq!(file_identity(&a).unwrap(), before, "appending past 64 KiB keeps the identity");
        assert_eq!(before.len(), 32);
    }
}
