use std::{fs::File, path::PathBuf, sync::Arc};

use arrow::{
    array::{Int64Array, StringArray},
    datatypes::{DataType, Field, Schema},
};

use super::*;
use crate::{audit::verify, lander::layout::landed_file_name, parquet_sink::write_parquet};

fn storage(lake: &Path) -> LakeStorage {
    LakeStorage::local(lake).unwrap()
}

const DIR: &str = "research/adt/event_date=2026-11-25";

/// Lands a file of `topic`/`partition` holding the given offsets (one row each) under `key_id`.
fn land(lake: &Path, partition: i32, offsets: &[i64], key_id: &str) -> PathBuf {
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
    let range = (offsets[0], *offsets.last().unwrap());
    let key = format!("{DIR}/{}", landed_file_name("clinical.adt", partition, range));
    let metadata = vec![
        ("sluice.key_id".to_owned(), key_id.to_owned()),
        ("sluice.policy_hash".to_owned(), "p1".to_owned()),
        ("sluice.writer_schema_fingerprints".to_owned(), format!("f{}", range.0 % 2)),
        ("sluice.source".to_owned(), format!("clinical.adt/{partition}/{}-{}", range.0, range.1)),
    ];
    write_parquet(&storage(lake), &key, &batch, metadata).unwrap();
    lake.join(key)
}

fn offsets_in(path: &Path) -> Vec<i64> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap().build().unwrap();
    reader.flat_map(|b| b.unwrap().column(1).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()).collect()
}

fn names(lake: &Path) -> Vec<String> {
    storage(lake).parquet_files(DIR).unwrap().iter().map(|key| key.rsplit('/').next().unwrap().to_owned()).collect()
}

fn merged_files(lake: &Path) -> Vec<PathBuf> {
    let keys = storage(lake).parquet_files(DIR).unwrap();
    keys.into_iter().filter(|key| key.contains("+merged-")).map(|key| lake.join(key)).collect()
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
    assert_eq!(offsets_in(&merged[0]), [0, 2, 3, 5, 6, 1, 4], "every row once, by source partition and offset");
    assert!(uncommitted.exists(), "a file a restarted lander may still withdraw is not touched");
    assert_eq!(names(lake).len(), 3);

    let merged_key = merged[0].strip_prefix(lake).unwrap().to_string_lossy().into_owned();
    let footer = &read_footers(&storage(lake), vec![merged_key]).unwrap()[0];
    assert_eq!(
        footer.value("sluice.source"),
        "clinical.adt/0/0-2;clinical.adt/0/3-6;clinical.adt/1/1-1;clinical.adt/1/4-4"
    );
    assert_eq!(footer.value("sluice.writer_schema_fingerprints"), "f0,f1");
    assert_eq!(footer.value("sluice.key_id"), "k1");
    assert_eq!(footer.value(INPUTS_KEY).split(',').count(), 4);
    assert!(verify(audit.path()).unwrap().problems.is_empty());
    assert!(std::fs::read_to_string(audit.path()).unwrap().contains("\"kind\":\"compaction\""));

    // Once the last file is committed too, it joins the merged file.
    crate::lake::record_committed(lake, [("clinical.adt", 0, 22)]).unwrap();
    let again = compact(lake, &storage(lake), CompactionOptions::default(), &mut audit).unwrap();
    assert_eq!((again.files_before, again.files_after, again.merged.len()), (3, 2, 1));
    let merged = merged_files(lake);
    assert_eq!(offsets_in(&merged[0]), [0, 2, 3, 5, 6, 1, 4, 20, 21]);
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
