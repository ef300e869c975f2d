use std::{fs::File, path::PathBuf, sync::Arc};

use arrow::{
    array::{Int64Array, StringArray},
    datatypes::{DataType, Field, Schema},
};

use super::*;
use crate::{audit::verify, lake::layout::landed_file_name, lake::parquet::write_parquet};

/// Lands a file as a lander does: a fresh name, recorded in the ledger first.
fn land(lake: &Path, partition: i32, offsets: &[i64], key_id: &str) -> PathBuf {
    let key = format!("{DIR}/{}", ledger::fresh_file_name());
    let (first, last) = (offsets[0], *offsets.last().unwrap());
    let entry = LedgerEntry::Landed {
        key: key.clone(),
        topic: "clinical.adt".to_owned(),
        partition,
        first,
        last,
        table_landing: None,
    };
    ledger::append(lake, &[entry]).unwrap();
    write_file(lake, &key, partition, offsets, key_id)
}

/// Lands a file as sluice did before the ledger: offsets in its name, not in the ledger.
fn land_with_offsets_in_name(lake: &Path, partition: i32, offsets: &[i64], key_id: &str) -> PathBuf {
    let range = (offsets[0], *offsets.last().unwrap());
    let key = format!("{DIR}/{}", landed_file_name("clinical.adt", partition, range));
    write_file(lake, &key, partition, offsets, key_id)
}

fn storage(lake: &Path) -> LakeStorage {
    LakeStorage::local(lake).unwrap()
}

const DIR: &str = "research/adt/event_date=2026-11-25";

/// Writes a file holding the given offsets of `partition` (one row each) under `key_id`.
fn write_file(lake: &Path, key: &str, partition: i32, offsets: &[i64], key_id: &str) -> PathBuf {
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("offset", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(offsets.iter().map(|o| format!("e{partition}-{o}")).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(offsets.to_vec())),
        ],
    )
    .unwrap();
    let metadata = vec![
        ("sluice.key_id".to_owned(), key_id.to_owned()),
        ("sluice.policy_hash".to_owned(), "p1".to_owned()),
        ("sluice.writer_schema_fingerprints".to_owned(), format!("f{}", offsets[0] % 2)),
        (SORTED_BY_KEY.to_owned(), "event_id".to_owned()),
    ];
    write_parquet(&storage(lake), key, &batch, metadata).unwrap();
    lake.join(key)
}

fn event_ids_in(path: &Path) -> Vec<String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap().build().unwrap();
    reader
        .flat_map(|b| {
            let b = b.unwrap();
            let ids = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            ids.iter().map(|id| id.unwrap().to_owned()).collect::<Vec<_>>()
        })
        .collect()
}

fn offsets_in(path: &Path) -> Vec<i64> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap().build().unwrap();
    reader.flat_map(|b| b.unwrap().column(1).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()).collect()
}

fn names(lake: &Path) -> Vec<String> {
    storage(lake).parquet_files(DIR).unwrap().iter().map(|key| key.rsplit('/').next().unwrap().to_owned()).collect()
}

/// Merged files present, as the ledger knows them.
fn merged_files(lake: &Path) -> Vec<PathBuf> {
    let merged: Vec<String> = ledger::read(lake)
        .unwrap()
        .into_iter()
        .filter_map(|entry| match entry {
            LedgerEntry::Merged { key, .. } => Some(key),
            LedgerEntry::Landed { .. } => None,
        })
        .collect();
    let keys = storage(lake).parquet_files(DIR).unwrap();
    keys.into_iter().filter(|key| merged.contains(key)).map(|key| lake.join(key)).collect()
}

fn sorted(mut offsets: Vec<i64>) -> Vec<i64> {
    offsets.sort();
    offsets
}

#[test]
fn committed_files_are_merged_per_key_and_uncommitted_ones_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    land(lake, 0, &[0, 2], "k1");
    land(lake, 0, &[3, 5, 6], "k1");
    land(lake, 1, &[1], "k1");
    land(lake, 1, &[4], "k1");
    land(lake, 0, &[12, 13], "k2"); // another key: never merged with k1 files
    let uncommitted = land(lake, 0, &[20, 21], "k1");
    crate::lake::record_committed(lake, [("clinical.adt", 0, 20), ("clinical.adt", 1, 5)]).unwrap();

    let mut audit = AuditLog::open(&lake.join("_audit/audit.jsonl")).unwrap();
    let record = compact(lake, &storage(lake), CompactionOptions::default(), &mut audit).unwrap();

    assert_eq!((record.files_before, record.files_after, record.merged.len()), (6, 3, 1));
    assert_eq!(record.merged[0].inputs.len(), 4);
    let merged = merged_files(lake);
    assert_eq!(merged.len(), 1);
    assert_eq!(sorted(offsets_in(&merged[0])), [0, 1, 2, 3, 4, 5, 6], "every row once");
    // Sorted as the files say (by event id here), not in the order the inputs came.
    let ids = event_ids_in(&merged[0]);
    assert_eq!(ids, ["e0-0", "e0-2", "e0-3", "e0-5", "e0-6", "e1-1", "e1-4"]);
    assert!(uncommitted.exists(), "a file a restarted lander may still withdraw is not touched");
    assert_eq!(names(lake).len(), 3);
    let name = merged[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("part-") && !name.contains("clinical") && !name.contains("merged"), "{name}");

    let merged_key = merged[0].strip_prefix(lake).unwrap().to_string_lossy().into_owned();
    let footer = read_footer(&storage(lake), merged_key, None).unwrap();
    assert_eq!(footer.value("sluice.source"), "", "no source offsets in a merged file");
    assert_eq!(footer.value(INPUTS_KEY), "", "nor its inputs' names");
    assert_eq!(footer.value("sluice.writer_schema_fingerprints"), "f0,f1");
    assert_eq!(footer.value("sluice.key_id"), "k1");
    assert!(verify(audit.path()).unwrap().problems.is_empty());
    assert!(std::fs::read_to_string(audit.path()).unwrap().contains("\"kind\":\"compaction\""));

    // Once the last file is committed too, it joins the merged file.
    crate::lake::record_committed(lake, [("clinical.adt", 0, 22)]).unwrap();
    let again = compact(lake, &storage(lake), CompactionOptions::default(), &mut audit).unwrap();
    assert_eq!((again.files_before, again.files_after, again.merged.len()), (3, 2, 1));
    let merged = merged_files(lake);
    assert_eq!(merged.len(), 1, "the earlier merged file was an input");
    assert_eq!(sorted(offsets_in(&merged[0])), [0, 1, 2, 3, 4, 5, 6, 20, 21]);
    let settled = compact(lake, &storage(lake), CompactionOptions::default(), &mut audit).unwrap();
    assert_eq!((settled.files_before, settled.files_after, settled.merged.len()), (2, 2, 0));
}

#[test]
fn runs_respect_the_row_limit_and_leftovers_of_an_interrupted_run_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    let mut inputs = Vec::new();
    for first in [0, 10, 20, 30] {
        inputs.push(land(lake, 0, &[first, first + 1, first + 2], "k1"));
    }
    let copies: Vec<Vec<u8>> = inputs.iter().map(|p| std::fs::read(p).unwrap()).collect();
    crate::lake::record_committed(lake, [("clinical.adt", 0, 100)]).unwrap();
    let mut audit = AuditLog::open(&lake.join("_audit/audit.jsonl")).unwrap();
    let record = compact(lake, &storage(lake), CompactionOptions { max_rows_per_file: 6 }, &mut audit).unwrap();
    assert_eq!(record.merged.len(), 2, "two files of six rows, not one of twelve");
    assert_eq!(names(lake).len(), 2);

    // As if that compaction had crashed after writing its merged files: the inputs are back.
    for (path, bytes) in inputs.iter().zip(&copies) {
        std::fs::write(path, bytes).unwrap();
    }
    let record = compact(lake, &storage(lake), CompactionOptions { max_rows_per_file: 6 }, &mut audit).unwrap();
    assert_eq!(record.removed_leftovers.len(), 4);
    assert!(inputs.iter().all(|p| !p.exists()));
    let mut offsets: Vec<i64> = merged_files(lake).iter().flat_map(|p| offsets_in(p)).collect();
    offsets.sort();
    assert_eq!(offsets, [0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32], "every row exactly once");
}

#[test]
fn without_recorded_commits_nothing_is_merged() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    land(lake, 0, &[0], "k1");
    land(lake, 0, &[1], "k1");
    let mut audit = AuditLog::open(&lake.join("_audit/audit.jsonl")).unwrap();
    let record = compact(lake, &storage(lake), CompactionOptions::default(), &mut audit).unwrap();
    assert_eq!((record.files_after, record.merged.len()), (2, 0));
}

#[test]
fn files_landed_before_the_ledger_are_merged_by_the_offsets_in_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    land_with_offsets_in_name(lake, 0, &[0, 1], "k1");
    land_with_offsets_in_name(lake, 0, &[2], "k1");
    let late = land_with_offsets_in_name(lake, 0, &[9], "k1");
    land(lake, 0, &[3, 4], "k1");
    crate::lake::record_committed(lake, [("clinical.adt", 0, 5)]).unwrap();
    let mut audit = AuditLog::open(&lake.join("_audit/audit.jsonl")).unwrap();
    let record = compact(lake, &storage(lake), CompactionOptions::default(), &mut audit).unwrap();
    assert_eq!((record.files_before, record.files_after, record.merged.len()), (4, 2, 1));
    assert_eq!(sorted(offsets_in(&merged_files(lake)[0])), [0, 1, 2, 3, 4]);
    assert!(late.exists(), "not committed yet");
}

#[test]
fn a_file_the_ledger_does_not_know_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    land(lake, 0, &[0], "k1");
    let stranger = write_file(lake, &format!("{DIR}/{}", ledger::fresh_file_name()), 0, &[1], "k1");
    crate::lake::record_committed(lake, [("clinical.adt", 0, 10)]).unwrap();
    let mut audit = AuditLog::open(&lake.join("_audit/audit.jsonl")).unwrap();
    let record = compact(lake, &storage(lake), CompactionOptions::default(), &mut audit).unwrap();
    assert_eq!((record.files_after, record.merged.len()), (2, 0));
    assert!(stranger.exists());
}
