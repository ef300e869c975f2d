use std::sync::Arc;

use arrow::{
    array::Int64Array,
    datatypes::{DataType, Field, Schema},
    record_batch::RecordBatch,
};
use bytes::Bytes;

use super::*;
use crate::{
    audit::{AuditEvent, AuditLog, FileRecord, LandingRecord, WithdrawalRecord},
    compact::{CompactionOptions, compact},
    lake::layout::landed_file_name,
    lake::parquet::write_parquet,
};

const DIR: &str = "planning/adt/event_date=2026-11-25";

/// Lands a file of partition 0 holding `offsets` and records it as a landing.
fn land(storage: &LakeStorage, audit: &mut AuditLog, offsets: &[i64]) -> FileRecord {
    let schema = Arc::new(Schema::new(vec![Field::new("offset", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(offsets.to_vec()))]).unwrap();
    let range = (offsets[0], *offsets.last().unwrap());
    let key = format!("{DIR}/{}", landed_file_name("clinical.adt", 0, range));
    let landed = write_parquet(storage, &key, &batch, vec![("sluice.key_id".into(), "k1".into())]).unwrap();
    let record = FileRecord::from(&landed);
    audit
        .append(&AuditEvent::Landing(Box::new(LandingRecord {
            purpose: "planning".into(),
            topic: "clinical.adt".into(),
            offsets: range,
            landed: offsets.len() as u64,
            files: vec![record.clone()],
            ..LandingRecord::default()
        })))
        .unwrap();
    record
}

#[test]
fn a_lake_matches_its_log_through_landing_withdrawal_and_compaction_and_every_difference_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    let storage = LakeStorage::local(lake).unwrap();
    let log = lake.join("_audit/audit.jsonl");
    let mut audit = AuditLog::open(&log).unwrap();
    land(&storage, &mut audit, &[0, 1]);
    land(&storage, &mut audit, &[2, 3]);
    let withdrawn = land(&storage, &mut audit, &[4, 5]);
    storage.delete(&withdrawn.path).unwrap();
    audit.append(&AuditEvent::Withdrawal(WithdrawalRecord { reason: "test".into(), files: vec![withdrawn] })).unwrap();
    let intact = check_lake(&log, &storage).unwrap();
    assert_eq!((intact.recorded, intact.found, intact.problems.clone()), (2, 2, vec![]));

    crate::lake::record_committed(lake, [("clinical.adt", 0, 4)]).unwrap();
    let compaction = compact(lake, &storage, CompactionOptions::default(), &mut audit).unwrap();
    assert_eq!(compaction.merged.len(), 1);
    let compacted = check_lake(&log, &storage).unwrap();
    assert_eq!((compacted.recorded, compacted.found, compacted.problems.clone()), (1, 1, vec![]));

    // An edit, a removal and a stray file are each reported.
    let merged = compaction.merged[0].output.path.clone();
    storage.put(&merged, Bytes::from_static(b"not what was landed")).unwrap();
    let late = land(&storage, &mut audit, &[6]);
    storage.delete(&late.path).unwrap();
    storage.put(&format!("{DIR}/stray.parquet"), Bytes::from_static(b"x")).unwrap();
    let problems = check_lake(&log, &storage).unwrap().problems;
    assert_eq!(problems.len(), 3, "{problems:?}");
    let reported = |key: &str, what: &str| problems.iter().any(|p| p.starts_with(key) && p.contains(what));
    assert!(reported(&merged, "changed"), "{problems:?}");
    assert!(reported(&late.path, "missing"), "{problems:?}");
    assert!(reported(&format!("{DIR}/stray.parquet"), "no audit record"), "{problems:?}");
}

#[test]
fn an_erasure_replaces_the_checksum_a_file_is_held_to() {
    let line = |n: u64, event: serde_json::Value| (n, serde_json::json!({ "event": event }));
    let files = replay([
        line(
            1,
            serde_json::json!({"kind": "landing", "files": [{"path": "a", "sha256": "1"}, {"path": "b", "sha256": "2"}]}),
        ),
        line(
            2,
            serde_json::json!({"kind": "erasure", "files_rewritten": [{"path": "a", "sha256_before": "1", "sha256_after": "3"}]}),
        ),
        line(3, serde_json::json!({"kind": "recovery", "reason": "torn tail"})),
    ]);
    assert_eq!(files["a"], RecordedFile { sha256: "3".into(), line: 2 });
    assert_eq!(files["b"], RecordedFile { sha256: "2".into(), line: 1 });
}
