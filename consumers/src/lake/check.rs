//! Checking the lake against its audit log: every file the log says the lake holds must be there
//! with the checksum of its latest recorded version, and every landed file in the lake must be
//! one the log recorded.
//!
//! The log is replayed in order: a landing adds its files, an erasure replaces a file's
//! checksum with the one after the rewrite (or, in a table, the file with its replacement, and
//! removes the earlier versions' files it removed), a compaction removes its inputs (and the
//! leftovers of an interrupted run) and adds its merged files, and a withdrawal removes its
//! files. A table's compaction keeps its inputs for the table's earlier versions: the lake may
//! hold them, unchanged.
//!
//! Each dataset's Delta table is checked against the log too: its newest version must hold
//! exactly the files the log says the dataset holds, and must not be older than a version the
//! log recorded. What is
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

/// What the audit log says the lake holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Files the lake must hold, by key.
    pub files: BTreeMap<String, RecordedFile>,
    /// Files only earlier versions of a table hold (replaced by a compaction), which the lake
    /// may still hold for reading those versions, by key.
    pub earlier: BTreeMap<String, RecordedFile>,
}

/// Replays audit records (line number, record) into the files the lake should hold, by key.
pub fn replay(records: impl IntoIterator<Item = (u64, Value)>) -> BTreeMap<String, RecordedFile> {
    replay_with_earlier(records).files
}

/// Replays audit records (line number, record) into the files the lake should hold and those it
/// may hold for earlier table versions.
pub fn replay_with_earlier(records: impl IntoIterator<Item = (u64, Value)>) -> Replayed {
    let mut replayed = Replayed::default();
    let add = |files: &mut BTreeMap<String, RecordedFile>, file: &Value, line: u64| {
        if let (Some(path), Some(sha256)) = (file["path"].as_str(), file["sha256"].as_str()) {
            files.insert(path.to_owned(), RecordedFile { sha256: sha256.to_owned(), line });
        }
    };
    let list = |value: &Value| value.as_array().cloned().unwrap_or_default();
    let Replayed { files, earlier } = &mut replayed;
    for (line, record) in records {
        let event = &record["event"];
        match event["kind"].as_str() {
            Some("landing") => list(&event["files"]).iter().for_each(|file| add(files, file, line)),
            Some("erasure") => {
                for file in list(&event["files_rewritten"]) {
                    let (Some(path), Some(sha256)) = (file["path"].as_str(), file["sha256_after"].as_str()) else {
                        continue;
                    };
                    let now = RecordedFile { sha256: sha256.to_owned(), line };
                    match file["replaced_by"].as_str() {
                        // A table's file: the rows kept went to a new file, the old one is gone.
                        Some(new_path) => {
                            files.remove(path);
                            files.insert(new_path.to_owned(), now);
                        }
                        None => {
                            files.insert(path.to_owned(), now);
                        }
                    }
                }
                for file in list(&event["earlier_files_removed"]) {
                    file["path"].as_str().map(|path| earlier.remove(path));
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
                let tables = &event["table_versions"];
                for merged in list(&event["merged"]) {
                    let output = merged["output"]["path"].as_str().unwrap_or_default();
                    let mut parts = output.splitn(3, '/');
                    let dataset = format!("{}/{}", parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
                    let in_a_table = tables.get(&dataset).is_some();
                    for input in list(&merged["inputs"]) {
                        let Some(path) = input["path"].as_str() else { continue };
                        // A table's compaction keeps its inputs for the table's earlier versions.
                        if let Some(file) = files.remove(path).filter(|_| in_a_table) {
                            earlier.insert(path.to_owned(), file);
                        }
                    }
                    add(files, &merged["output"], line);
                }
            }
            _ => {}
        }
    }
    replayed
}

/// Compares the lake in `storage` with what the audit log at `log` says it holds, reading and
/// hashing every landed file.
pub fn check_lake(log: &Path, storage: &LakeStorage) -> Result<LakeCheck> {
    let records = read_records(log)?;
    let table_versions = recorded_table_versions(&records);
    let Replayed { files: recorded, earlier } = replay_with_earlier(records);
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
    check_tables(storage, &recorded, &present, &table_versions, &mut check)?;
    for key in present.iter().filter(|key| !recorded.contains_key(*key)) {
        match earlier.get(key) {
            Some(file) => {
                let actual = sha256_hex(&storage.get(key)?);
                if actual != file.sha256 {
                    check.problems.push(format!(
                        "{key}: kept for earlier table versions but changed since line {} of the log recorded it",
                        file.line
                    ));
                }
            }
            None => check.problems.push(format!("{key}: in the lake but in no audit record")),
        }
    }
    Ok(check)
}

/// The newest version the log records for each table (by its commits, erasures and
/// compactions).
fn recorded_table_versions(records: &[(u64, Value)]) -> BTreeMap<String, (u64, u64)> {
    let mut versions: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut note = |table: &str, version: Option<u64>, line: u64| {
        if let Some(version) = version {
            let newest = versions.entry(table.to_owned()).or_insert((version, line));
            if version >= newest.0 {
                *newest = (version, line);
            }
        }
    };
    for (line, record) in records {
        let event = &record["event"];
        match event["kind"].as_str() {
            Some("table_commit") => note(event["table"].as_str().unwrap_or_default(), event["version"].as_u64(), *line),
            Some("erasure" | "compaction") => {
                for (table, version) in event["table_versions"].as_object().into_iter().flatten() {
                    note(table, version.as_u64(), *line);
                }
            }
            _ => {}
        }
    }
    versions
}

/// Checks each dataset's Delta table against the log: the table holds exactly the files the
/// log says the dataset holds, and is not at an older version than the log has recorded (a
/// table rolled back, or a log from another lake).
fn check_tables(
    storage: &LakeStorage,
    recorded: &BTreeMap<String, RecordedFile>,
    present: &BTreeSet<String>,
    versions: &BTreeMap<String, (u64, u64)>,
    check: &mut LakeCheck,
) -> Result<()> {
    let keys = recorded.keys().chain(present.iter()).cloned();
    for (dataset, keys) in super::table::by_dataset(keys) {
        let Some(table) = super::storage::block_on(super::table::DatasetTable::open_in(storage, &dataset))? else {
            if let Some((version, line)) = versions.get(&dataset) {
                check.problems.push(format!(
                    "{dataset}: no Delta table, but line {line} of the log records its version {version}"
                ));
            }
            continue;
        };
        let current: BTreeSet<String> = table.files()?.into_iter().map(|path| format!("{dataset}/{path}")).collect();
        for key in &current {
            if !recorded.contains_key(key) {
                check.problems.push(format!("{key}: in the table of {dataset} but in no audit record"));
            }
        }
        let keys: BTreeSet<String> = keys.into_iter().collect();
        for key in keys.iter().filter(|key| recorded.contains_key(*key) && !current.contains(*key)) {
            check.problems.push(format!(
                "{key}: recorded as landed but not part of the table of {dataset} (written, never committed)"
            ));
        }
        if let Some((version, line)) = versions.get(&dataset)
            && table.version() < *version
        {
            check.problems.push(format!(
                "{dataset}: the table is at version {}, older than version {version} recorded on line {line} of the log",
                table.version()
            ));
        }
    }
    Ok(())
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
