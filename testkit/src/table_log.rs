//! Reading each dataset's Delta log as an analyst can, for what it must not say: no true time
//! (commit, file or log entry times other than the hidden 1980-01-01), no column statistics
//! but row counts, no source offsets, and no identifier (table id, application id, file name)
//! that appears in two purposes' logs.
//!
//! The log is read here as plain JSON lines, not through the library that wrote it, so a
//! field that library adds behind sluice's back is seen too.

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

fn check_log(log: &Path, identifiers: &mut LogIdentifiers) {
    let mut commits: Vec<_> = std::fs::read_dir(log).unwrap().map(|e| e.unwrap().path()).collect();
    commits.sort();
    for commit in commits {
        let name = commit.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.len() == 25 && name.ends_with(".json") && name[..20].bytes().all(|b| b.is_ascii_digit()),
            "{}: only numbered commits, no checkpoint or other file",
            commit.display()
        );
        let modified = std::fs::metadata(&commit).unwrap().modified().unwrap();
        let seconds = modified.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        assert_eq!(seconds * 1000, HIDDEN_TIME_MS, "{}: the log entry's file time is hidden", commit.display());
        for line in std::fs::read_to_string(&commit).unwrap().lines().filter(|l| !l.trim().is_empty()) {
            let action: Value = serde_json::from_str(line).unwrap();
            let at = format!("{}: {line}", commit.display());
            check_action(&action, &at, identifiers);
        }
    }
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
}
