//! Reading each dataset's Delta log as an analyst can, for what it must not say: no true time
//! (commit, file or log entry times other than the hidden 1980-01-01), no column statistics
//! but row counts, no source offsets, and no identifier (table id, application id, file name)
//! that appears in two purposes' logs.
//!
//! The log is read here as plain JSON lines, not through the library that wrote it, so a
//! field that library adds behind sluice's back is seen too. A checkpoint (the table's state at
//! a version, as one Parquet file) is read row by row and each of its actions checked as a
//! commit's would be; the `_last_checkpoint` pointer may say only where the checkpoint is and
//! how large.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use serde_json::Value;

/// The time (milliseconds since the epoch) every time in a table's log must be: 1980-01-01.
pub const HIDDEN_TIME_MS: i64 = 315_532_800_000;

/// The identifiers one purpose's table logs carry: table ids, application ids, file names.
pub type LogIdentifiers = BTreeSet<String>;

/// Checks every table log of `purpose` under `lake` (one per subject) and returns the
/// identifiers they carry. Panics, naming the log and the field, on anything that breaks the
/// rules in the module documentation.
pub fn check_purpose_logs(lake: &Path, purpose: &str) -> LogIdentifiers {
    let mut identifiers = LogIdentifiers::new();
    for entry in std::fs::read_dir(lake.join(purpose)).into_iter().flatten() {
        let log = entry.unwrap().path().join("_delta_log");
        if log.is_dir() {
            check_log(&log, &mut identifiers);
        }
    }
    identifiers
}

/// Fails if the table logs of two of `purposes` under `lake` share an identifier, or if any
/// breaks the rules in the module documentation.
pub fn assert_table_logs_keep_the_privacy_rules(lake: &Path, purposes: &[&str]) {
    let by_purpose: BTreeMap<&str, LogIdentifiers> =
        purposes.iter().map(|purpose| (*purpose, check_purpose_logs(lake, purpose))).collect();
    assert!(by_purpose.values().any(|ids| !ids.is_empty()), "no table logs under {}", lake.display());
    let listed: Vec<(&&str, &LogIdentifiers)> = by_purpose.iter().collect();
    for (index, (first, first_ids)) in listed.iter().enumerate() {
        for (second, second_ids) in &listed[index + 1..] {
            let shared: Vec<&String> = first_ids.intersection(second_ids).collect();
            assert!(shared.is_empty(), "the table logs of {first} and {second} share identifiers: {shared:?}");
        }
    }
}

/// What a file in a table's log is, by its name.
#[derive(Debug, PartialEq, Eq)]
enum LogFile {
    /// `<version>.json`: one commit.
    Commit,
    /// `<version>.checkpoint.parquet`: the table's state at a version.
    Checkpoint(u64),
    /// `_last_checkpoint`: which checkpoint is the newest.
    LastCheckpoint,
}

fn log_file(name: &str) -> Option<LogFile> {
    fn numbered(digits: &str) -> Option<&str> {
        (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
    }
    if name == "_last_checkpoint" {
        Some(LogFile::LastCheckpoint)
    } else if let Some(version) = name.strip_suffix(".checkpoint.parquet").and_then(numbered) {
        Some(LogFile::Checkpoint(version.parse().unwrap()))
    } else {
        name.strip_suffix(".json").and_then(numbered).map(|_| LogFile::Commit)
    }
}

fn check_log(log: &Path, identifiers: &mut LogIdentifiers) {
    let mut entries: Vec<_> = std::fs::read_dir(log).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    let mut checkpoints = BTreeSet::new();
    let mut newest_checkpoint = None;
    for entry in entries {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        let kind = log_file(&name)
            .unwrap_or_else(|| panic!("{}: only commits and checkpoints, no other file", entry.display()));
        let modified = std::fs::metadata(&entry).unwrap().modified().unwrap();
        let seconds = modified.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        assert_eq!(seconds * 1000, HIDDEN_TIME_MS, "{}: the log entry's file time is hidden", entry.display());
        match kind {
            LogFile::Commit => {
                for line in std::fs::read_to_string(&entry).unwrap().lines().filter(|l| !l.trim().is_empty()) {
                    let action: Value = serde_json::from_str(line).unwrap();
                    let at = format!("{}: {line}", entry.display());
                    check_action(&action, &at, identifiers);
                }
            }
            LogFile::Checkpoint(version) => {
                check_checkpoint(&entry, identifiers);
                checkpoints.insert(version);
            }
            LogFile::LastCheckpoint => {
                let pointer: Value = serde_json::from_str(&std::fs::read_to_string(&entry).unwrap()).unwrap();
                let at = format!("{}: {pointer}", entry.display());
                let keys: BTreeSet<&str> = pointer.as_object().unwrap().keys().map(String::as_str).collect();
                let allowed =
                    ["version", "size", "parts", "sizeInBytes", "numOfAddFiles", "checkpointSchema", "checksum"];
                assert!(keys.iter().all(|key| allowed.contains(key)), "{at}: says more than where the checkpoint is");
                newest_checkpoint = Some(pointer["version"].as_u64().unwrap_or_else(|| panic!("{at}: no version")));
            }
        }
    }
    assert_eq!(newest_checkpoint, checkpoints.last().copied(), "{}: _last_checkpoint names the newest", log.display());
}

/// Checks every action a checkpoint holds, one row per action.
fn check_checkpoint(path: &Path, identifiers: &mut LogIdentifiers) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut actions = 0;
    for row in reader.get_row_iter(None).unwrap() {
        let row = row.unwrap().to_json_value();
        for (kind, body) in row.as_object().unwrap().iter().filter(|(_, body)| !body.is_null()) {
            let action = serde_json::json!({ kind: body });
            check_action(&action, &format!("{}: {action}", path.display()), identifiers);
            actions += 1;
        }
    }
    assert!(actions > 0, "{}: a checkpoint with no action", path.display());
}

fn check_action(action: &Value, at: &str, identifiers: &mut LogIdentifiers) {
    let object = action.as_object().unwrap_or_else(|| panic!("{at}: not an action"));
    assert_eq!(object.len(), 1, "{at}: one action per line");
    let (kind, body) = object.iter().next().unwrap();
    // Fields written as null say nothing.
    let fields: BTreeSet<&str> = body
        .as_object()
        .map(|o| o.iter().filter(|(_, value)| !value.is_null()).map(|(key, _)| key.as_str()).collect())
        .unwrap_or_default();
    let only = |allowed: &[&str]| {
        let extra: Vec<&&str> = fields.iter().filter(|field| !allowed.contains(field)).collect();
        assert!(extra.is_empty(), "{at}: {kind} carries {extra:?}");
    };
    match kind.as_str() {
        "commitInfo" => {
            only(&["timestamp", "operation", "operationParameters", "isBlindAppend"]);
            assert_eq!(body["timestamp"].as_i64(), Some(HIDDEN_TIME_MS), "{at}: commit time hidden");
        }
        "protocol" => only(&["minReaderVersion", "minWriterVersion"]),
        "metaData" => {
            only(&["id", "format", "schemaString", "partitionColumns", "configuration"]);
            identifiers.insert(format!("table id {}", body["id"].as_str().unwrap()));
        }
        "add" => {
            only(&["path", "partitionValues", "size", "modificationTime", "dataChange", "stats"]);
            assert_eq!(body["modificationTime"].as_i64(), Some(HIDDEN_TIME_MS), "{at}: file time hidden");
            let stats: Value = serde_json::from_str(body["stats"].as_str().unwrap_or("{}")).unwrap();
            let keys: Vec<&String> = stats.as_object().map(|o| o.keys().collect()).unwrap_or_default();
            assert_eq!(keys, ["numRecords"], "{at}: row counts are the only statistics");
            identifiers.insert(format!("file {}", file_name(body, at)));
        }
        "remove" => {
            only(&["path", "partitionValues", "size", "deletionTimestamp", "dataChange", "extendedFileMetadata"]);
            assert_eq!(body["deletionTimestamp"].as_i64(), Some(HIDDEN_TIME_MS), "{at}: removal time hidden");
            file_name(body, at);
        }
        "txn" => {
            only(&["appId", "version"]);
            let application = body["appId"].as_str().unwrap();
            assert!(
                application.len() == 32 && application.bytes().all(|b| b.is_ascii_hexdigit()),
                "{at}: an opaque application id"
            );
            identifiers.insert(format!("application {application}"));
        }
        other => panic!("{at}: an action sluice does not write: {other}"),
    }
}

/// A file's name, checked to be random (`part-` and 32 hex digits) under an event-time directory.
fn file_name(body: &Value, at: &str) -> String {
    let path = body["path"].as_str().unwrap();
    let (directory, name) = path.rsplit_once('/').unwrap_or_else(|| panic!("{at}: a file outside a directory"));
    assert!(directory.starts_with("event_date=") || directory.starts_with("event_month="), "{at}");
    let random = name.strip_prefix("part-").and_then(|rest| rest.strip_suffix(".parquet"));
    assert!(
        random.is_some_and(|r| r.len() == 32 && r.bytes().all(|b| b.is_ascii_hexdigit())),
        "{at}: a random file name"
    );
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fails(action: &str) -> bool {
        let action: Value = serde_json::from_str(action).unwrap();
        std::panic::catch_unwind(|| check_action(&action, "test", &mut LogIdentifiers::new())).is_err()
    }

    #[test]
    fn true_times_statistics_offsets_and_clear_ids_are_refused() {
        let name = "part-0123456789abcdef0123456789abcdef.parquet";
        let add = |time: i64, stats: &str| {
            format!(
                r#"{{"add":{{"path":"event_date=2026-01-05/{name}","partitionValues":{{}},"size":1,"modificationTime":{time},"dataChange":true,"stats":"{stats}"}}}}"#
            )
        };
        assert!(!fails(&add(HIDDEN_TIME_MS, r#"{\"numRecords\":3}"#)), "what sluice writes passes");
        assert!(fails(&add(1_765_000_000_000, r#"{\"numRecords\":3}"#)), "a true file time");
        assert!(fails(&add(HIDDEN_TIME_MS, r#"{\"numRecords\":3,\"minValues\":{\"occurred_at\":1}}"#)), "statistics");
        assert!(fails(r#"{"commitInfo":{"timestamp":1765000000000,"operation":"WRITE"}}"#), "a true commit time");
        assert!(fails(r#"{"commitInfo":{"timestamp":315532800000,"engineInfo":"delta-rs:1.1"}}"#), "engine");
        assert!(fails(r#"{"txn":{"appId":"clinical.adt-0","version":4711}}"#), "a readable application id");
        assert!(fails(
            r#"{"txn":{"appId":"0123456789abcdef0123456789abcdef","version":1,"lastUpdated":1765000000000}}"#
        ));
        assert!(fails(r#"{"metaData":{"id":"x","createdTime":1765000000000}}"#), "a creation time");
        assert!(fails(r#"{"cdc":{"path":"x"}}"#), "an action sluice never writes");
    }

    #[test]
    fn the_log_holds_commits_and_checkpoints_and_nothing_else() {
        assert_eq!(log_file("00000000000000000007.json"), Some(LogFile::Commit));
        assert_eq!(log_file("00000000000000000100.checkpoint.parquet"), Some(LogFile::Checkpoint(100)));
        assert_eq!(log_file("_last_checkpoint"), Some(LogFile::LastCheckpoint));
        for other in
            ["7.json", "00000000000000000007.crc", "_commits", "00000000000000000100.checkpoint.0001.0002.parquet"]
        {
            assert_eq!(log_file(other), None, "{other}");
        }
    }

    /// A table of `subject` under `<lake>/<purpose>` with one file per landing and a
    /// checkpoint every second commit, written by sluice's own table code.
    async fn table_with_checkpoints(lake: &Path, purpose: &str, landings: i64) {
        use std::sync::Arc;

        use arrow::{
            array::{RecordBatch, StringArray},
            datatypes::{DataType, Field, Schema},
        };
        use sluice_consumers::lake::{
            ledger::TableLanding,
            table::{Change, DatasetTable, NewTable, TableFile},
        };
        let schema = Arc::new(Schema::new(vec![Field::new("patient_pseudonym", DataType::Utf8, false)]));
        let root = lake.join(purpose).join("observation");
        let settings = NewTable { partition_column: Some("event_date"), checkpoint_interval: 2.try_into().unwrap() };
        let mut table = DatasetTable::create(root.to_str().unwrap(), &schema, settings).await.unwrap();
        let application = sluice_consumers::lake::table::application_id(
            &table.table_id().unwrap(),
            "group",
            "clinical.observation",
            0,
        );
        for sequence in 1..=landings {
            let batch =
                RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec!["a", "b"]))]).unwrap();
            let bytes = sluice_consumers::lake::parquet::encode(&batch, Vec::new()).unwrap();
            let path = format!("event_date=2026-01-05/part-{}.parquet", uuid::Uuid::new_v4().simple());
            std::fs::create_dir_all(root.join("event_date=2026-01-05")).unwrap();
            std::fs::write(root.join(&path), &bytes).unwrap();
            let file = TableFile {
                path,
                partition_value: Some(Some("2026-01-05".to_owned())),
                bytes: bytes.len() as u64,
                rows: 2,
            };
            let landing = TableLanding { application: application.clone(), sequence };
            table.commit(&[file], &[], Change::Landing { landings: vec![landing] }).await.unwrap();
        }
    }

    #[tokio::test]
    async fn checkpoints_are_read_and_held_to_the_same_rules() {
        let lake = tempfile::tempdir().unwrap();
        table_with_checkpoints(lake.path(), "research", 4).await;
        table_with_checkpoints(lake.path(), "planning", 3).await;
        let log = lake.path().join("research/observation/_delta_log");
        assert!(log.join("00000000000000000004.checkpoint.parquet").is_file());
        assert_table_logs_keep_the_privacy_rules(lake.path(), &["research", "planning"]);

        // The identifiers a checkpoint holds are collected from it: with the commits before
        // it gone, its files and application are still found.
        let all = check_purpose_logs(lake.path(), "research");
        for version in 0..=4 {
            std::fs::remove_file(log.join(format!("{version:020}.json"))).unwrap();
        }
        assert_eq!(check_purpose_logs(lake.path(), "research"), all);

        // A pointer that says more than where the checkpoint is, is refused.
        let pointer = log.join("_last_checkpoint");
        let mut said: Value = serde_json::from_str(&std::fs::read_to_string(&pointer).unwrap()).unwrap();
        said["writtenAt"] = serde_json::json!(1_765_000_000_000_i64);
        std::fs::write(&pointer, said.to_string()).unwrap();
        let hidden = std::fs::FileTimes::new()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_millis(HIDDEN_TIME_MS as u64));
        std::fs::File::options().write(true).open(&pointer).unwrap().set_times(hidden).unwrap();
        let lake = lake.path().to_owned();
        assert!(std::panic::catch_unwind(move || check_purpose_logs(&lake, "research")).is_err());
    }
}
