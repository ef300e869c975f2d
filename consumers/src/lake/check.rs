//! Checking the lake against its audit log: every file the log says the lake holds must be there
//! with the checksum of its latest recorded version, and every landed file in the lake must be
//! one the log recorded.
//!
//! The log is replayed in order: a landing adds its files, an erasure replaces a file's
//! checksum with the one after the rewrite, a compaction removes its inputs (and the leftovers
//! of an interrupted run) and adds its merged files, and a withdrawal removes its files. What is
//! left is what the lake should hold now. A file in the lake that no record names was written
//! without its record reaching the log (a lander stopped between the two, and the file is
//! withdrawn when its partition is consumed again) or by something other than sluice.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::File,
    io::{BufRead, BufReader},
    path::Path,
};

use serde_json::Value;

use crate::{Error, Result, lake::parquet::sha256_hex, lake::storage::LakeStorage};

/// A file the log says the lake holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedFile {
    /// SHA-256 of its latest recorded version.
    pub sha256: String,
    /// Line of the log that recorded that version.
    pub line: u64,
}

/// What [`check_lake`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LakeCheck {
    /// Files the log says the lake holds.
    pub recorded: u64,
    /// Landed files found in the lake.
    pub found: u64,
    /// Every file missing, changed or unrecorded; empty when the lake matches its log.
    pub problems: Vec<String>,
}

/// Replays audit records (line number, record) into the files the lake should hold, by key.
pub fn replay(records: impl IntoIterator<Item = (u64, Value)>) -> BTreeMap<String, RecordedFile> {
    let mut files: BTreeMap<String, RecordedFile> = BTreeMap::new();
    let add = |files: &mut BTreeMap<String, RecordedFile>, file: &Value, line: u64| {
        if let (Some(path), Some(sha256)) = (file["path"].as_str(), file["sha256"].as_str()) {
            files.insert(path.to_owned(), RecordedFile { sha256: sha256.to_owned(), line });
        }
    };
    let list = |value: &Value| value.as_array().cloned().unwrap_or_default();
    for (line, record) in records {
        let event = &record["event"];
        match event["kind"].as_str() {
            Some("landing") => list(&event["files"]).iter().for_each(|file| add(&mut files, file, line)),
            Some("erasure") => {
                for file in list(&event["files_rewritten"]) {
                    if let (Some(path), Some(sha256)) = (file["path"].as_str(), file["sha256_after"].as_str()) {
                        files.insert(path.to_owned(), RecordedFile { sha256: sha256.to_owned(), line });
                    }
                }
            }
            Some("withdrawal") => {
                for file in list(&event["files"]) {
                    file["path"].as_str().map(|path| files.remove(path));
                }
            }
            Some("compaction") => {
                for file in list(&event["removed_leftovers"]) {
                    file["path"].as_str().map(|path| files.remove(path));
                }
                for merged in list(&event["merged"]) {
                    for input in list(&merged["inputs"]) {
                        input["path"].as_str().map(|path| files.remove(path));
                    }
                    add(&mut files, &merged["output"], line);
                }
            }
            _ => {}
        }
    }
    files
}

/// Compares the lake in `storage` with what the audit log at `log` says it holds, reading and
/// hashing every landed file.
pub fn check_lake(log: &Path, storage: &LakeStorage) -> Result<LakeCheck> {
    let recorded = replay(read_records(log)?);
    let present: BTreeSet<String> = storage.parquet_files("")?.into_iter().collect();
    let mut check = LakeCheck { recorded: recorded.len() as u64, found: present.len() as u64, problems: Vec::new() };
    for (key, file) in &recorded {
        if !present.contains(key) {
            check.problems.push(format!("{key}: missing (recorded on line {} of the log)", file.line));
            continue;
        }
        let actual = sha256_hex(&storage.get(key)?);
        if actual != file.sha256 {
            check.problems.push(format!(
                "{key}: changed since line {} of the log recorded it (SHA-256 {actual}, recorded {})",
                file.line, file.sha256
            ));
        }
    }
    for key in present.iter().filter(|key| !recorded.contains_key(*key)) {
        check.problems.push(format!("{key}: in the lake but in no audit record"));
    }
    Ok(check)
}

/// The log's complete records that parse, with their line numbers (the hash chain is
/// [`super::verify`]'s to judge).
fn read_records(log: &Path) -> Result<Vec<(u64, Value)>> {
    let failed = |error: std::io::Error| Error::AuditLog { path: log.to_owned(), reason: error.to_string() };
    let file = match File::open(log) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(failed(error)),
    };
    let mut records = Vec::new();
    for (index, line) in BufReader::new(file).split(b'\n').enumerate() {
        if let Ok(record) = serde_json::from_slice::<Value>(&line.map_err(failed)?) {
            records.push((index as u64 + 1, record));
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests;
