use std::{path::PathBuf, sync::Arc};

use arrow::{
    array::{Int32Array, StringArray},
    datatypes::{DataType, Field, Schema},
};

use super::*;
use crate::{audit::verify, pseudonymise::PurposeKey};

fn storage(lake: &Path) -> LakeStorage {
    LakeStorage::local(lake).unwrap()
}

/// A landed file read through a store rooted at its own directory.
fn read(path: &Path) -> LandedParquet {
    let name = path.file_name().unwrap().to_string_lossy();
    LandedParquet::read(&storage(path.parent().unwrap()), &name).unwrap()
}

fn key(id: &str, byte: u8) -> PurposeKey {
    PurposeKey::new(id, &[byte; 32]).unwrap()
}

fn nhs(digits: &str) -> NhsNumber {
    NhsNumber::parse(digits).unwrap()
}

const ERASED: &str = "9434765919";
const KEPT: &str = "9434765870";

/// Writes a landed file of (patient, source organisation, value) rows under `key`.
fn land(lake: &Path, relative_path: &str, key: &PurposeKey, rows: &[(&str, &str, i32)]) -> PathBuf {
    let schema = Arc::new(Schema::new(vec![
        Field::new("patient_pseudonym", DataType::Utf8, true),
        Field::new("source_organisation", DataType::Utf8, false),
        Field::new("value", DataType::Int32, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|(p, _, _)| Some(key.patient_pseudonym(p))).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(rows.iter().map(|(_, o, _)| *o).collect::<Vec<_>>())),
            Arc::new(Int32Array::from(rows.iter().map(|(_, _, v)| *v).collect::<Vec<_>>())),
        ],
    )
    .unwrap();
    let metadata = vec![
        ("sluice.key_id".to_owned(), key.id().to_owned()),
        (PSEUDONYM_COLUMN_KEY.to_owned(), "patient_pseudonym".to_owned()),
    ];
    write_parquet(&storage(lake), relative_path, &batch, metadata).unwrap();
    lake.join(relative_path)
}

fn values(path: &Path) -> Vec<i32> {
    read(path)
        .batches
        .iter()
        .flat_map(|b| b.column(2).as_any().downcast_ref::<Int32Array>().unwrap().values().to_vec())
        .collect()
}

fn metadata(path: &Path, wanted: &str) -> Option<String> {
    read(path).metadata.into_iter().find(|(k, _)| k == wanted).map(|(_, v)| v)
}

/// [`erase`] on the lake's own storage, with the built-in register of source organisations.
fn erase_in(
    lake: &std::path::Path,
    request: &[PatientErasure],
    rings: &BTreeMap<String, KeyRing>,
    trigger: ErasureTrigger,
    reference: &str,
    audit: &mut AuditLog,
) -> Result<ErasureRecord> {
    erase(lake, &storage(lake), request, rings, SourceOrganisations::built_in(), trigger, reference, audit)
}

#[test]
fn a_patients_rows_go_from_every_file_of_the_purposes_even_under_retired_keys_and_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    let (old, new) = (key("research-2026-05", 1), key("research-2026-11", 2));
    let before_rotation =
        land(lake, "research/observation/a.parquet", &old, &[(ERASED, "RR8", 1), (KEPT, "RR8", 2), (ERASED, "RR8", 3)]);
    let after_rotation = land(lake, "research/adt/b.parquet", &new, &[(KEPT, "RR8", 4), (ERASED, "B86001", 5)]);
    let untouched = land(lake, "research/adt/c.parquet", &new, &[(KEPT, "RR8", 6)]);
    let other_purpose = land(lake, "planning/adt/d.parquet", &key("planning-1", 3), &[(ERASED, "RR8", 7)]);
    let untouched_bytes = std::fs::read(&untouched).unwrap();

    let rings = BTreeMap::from([("research".to_owned(), KeyRing::new(new.clone(), vec![old.clone()]).unwrap())]);
    let mut audit = AuditLog::open(&lake.join("_audit/audit.jsonl")).unwrap();
    let request =
        [PatientErasure { nhs_number: nhs(ERASED), purposes: vec!["research".into()], gp_sourced_only: false }];
    let record = erase_in(lake, &request, &rings, ErasureTrigger::Command, "REQ-42", &mut audit).unwrap();

    assert_eq!(values(&before_rotation), [2]);
    assert_eq!(values(&after_rotation), [4]);
    assert_eq!(std::fs::read(&untouched).unwrap(), untouched_bytes, "a file without the patient is not rewritten");
    assert_eq!(values(&other_purpose), [7], "other purposes are not touched");
    assert_eq!(metadata(&before_rotation, "sluice.key_id").as_deref(), Some("research-2026-05"));
    assert_eq!(metadata(&before_rotation, ERASED_ROWS_KEY).as_deref(), Some("2"));

    assert_eq!(record.rows_removed, 3);
    assert_eq!(record.files_searched, 3);
    let rewritten: Vec<(&str, u64)> =
        record.files_rewritten.iter().map(|f| (f.path.as_str(), f.rows_removed)).collect();
    assert_eq!(rewritten, [("research/adt/b.parquet", 1), ("research/observation/a.parquet", 2)]);
    for file in &record.files_rewritten {
        assert_ne!(file.sha256_before, file.sha256_after);
        assert_eq!(file.sha256_after, sha256_hex(&std::fs::read(lake.join(&file.path)).unwrap()));
    }
    let log = std::fs::read_to_string(audit.path()).unwrap();
    assert!(log.contains("\"kind\":\"erasure\"") && log.contains("\"reference\":\"REQ-42\""));
    assert!(!log.contains(ERASED), "the audit never names the patient");
    assert!(!log.contains(&new.patient_pseudonym(ERASED)), "nor their pseudonym");
    assert!(verify(audit.path()).unwrap().problems.is_empty());

    // Erasing again finds nothing and rewrites nothing; a file left without rows stays in place.
    let again = erase_in(lake, &request, &rings, ErasureTrigger::Command, "REQ-42", &mut audit).unwrap();
    assert_eq!((again.rows_removed, again.files_rewritten.len()), (0, 0));
    let only = land(lake, "research/diagnosis/e.parquet", &new, &[(ERASED, "RR8", 8)]);
    erase_in(lake, &request, &rings, ErasureTrigger::OptOut, "consent", &mut audit).unwrap();
    assert!(only.exists());
    assert_eq!(values(&only), Vec::<i32>::new());
}

#[test]
fn a_type_1_erasure_removes_only_gp_sourced_rows() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    let k = key("planning-1", 4);
    let file = land(
        lake,
        "planning/adt/a.parquet",
        &k,
        &[(ERASED, "RR8", 1), (ERASED, "B86001", 2), (KEPT, "B86001", 3), (ERASED, "RXX", 4)],
    );
    let rings = BTreeMap::from([("planning".to_owned(), KeyRing::single(k))]);
    let mut audit = AuditLog::open(&lake.join("_audit/audit.jsonl")).unwrap();
    let request =
        [PatientErasure { nhs_number: nhs(ERASED), purposes: vec!["planning".into()], gp_sourced_only: true }];
    erase_in(lake, &request, &rings, ErasureTrigger::OptOut, "consent", &mut audit).unwrap();
    // The trust's row stays; the practice's goes, and so does the row from an organisation the
    // register does not list (fail closed).
    assert_eq!(values(&file), [1, 3]);
}

#[test]
fn files_whose_key_is_not_in_the_ring_stop_the_erasure_and_stay_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    let lost = key("research-lost", 5);
    let file = land(lake, "research/adt/a.parquet", &lost, &[(ERASED, "RR8", 1)]);
    let rings = BTreeMap::from([("research".to_owned(), KeyRing::single(key("research-2", 6)))]);
    let mut audit = AuditLog::open(&lake.join("_audit/audit.jsonl")).unwrap();
    let request =
        [PatientErasure { nhs_number: nhs(ERASED), purposes: vec!["research".into()], gp_sourced_only: false }];
    let error = erase_in(lake, &request, &rings, ErasureTrigger::Command, "REQ", &mut audit).unwrap_err().to_string();
    assert!(error.contains("research-lost") && error.contains("add it as a retired key"), "{error}");
    assert!(!error.contains(ERASED));
    assert_eq!(values(&file), [1]);
    let missing_ring = erase_in(
        lake,
        &[PatientErasure { purposes: vec!["planning".into()], ..request[0].clone() }],
        &rings,
        ErasureTrigger::Command,
        "REQ",
        &mut audit,
    );
    assert!(matches!(missing_ring, Err(Error::MissingKey(purpose)) if purpose == "planning"));
}

/// Commits landed files to the dataset's table (creating it) as one landing, with a ledger
/// entry for each naming that landing, as a lander does.
async fn commit_landing(lake: &Path, dataset: &str, keys: &[&str], sequence: i64) -> DatasetTable {
    use crate::lake::{ledger::TableLanding, table::application_id};
    let storage = storage(lake);
    let mut table = match DatasetTable::open_in(&storage, dataset).await.unwrap() {
        Some(table) => table,
        None => {
            let schema = read(&lake.join(keys[0])).schema;
            DatasetTable::create_in(
                &storage,
                dataset,
                &schema,
                crate::lake::table::NewTable::partitioned_by(Some("event_date")),
            )
            .await
            .unwrap()
        }
    };
    let landing = TableLanding { application: application_id(&table.table_id().unwrap(), "g", "t", 0), sequence };
    let mut files = Vec::new();
    let mut entries = Vec::new();
    for key in keys {
        let file = read(&lake.join(key));
        files.push(TableFile::of_key(key, file.bytes, file.rows()).unwrap().1);
        entries.push(LedgerEntry::Landed {
            key: key.to_string(),
            topic: "t".into(),
            partition: 0,
            first: sequence * 10,
            last: sequence * 10 + 9,
            table_landing: Some(landing.clone()),
        });
    }
    crate::lake::ledger::append(lake, &entries).unwrap();
    table.commit(&files, &[], Change::Landing { landings: vec![landing] }).await.unwrap();
    table
}

/// Every file in the lake holding a row of `pseudonym`.
fn files_holding(lake: &Path, pseudonym: &str) -> Vec<String> {
    let storage = storage(lake);
    storage
        .parquet_files("")
        .unwrap()
        .into_iter()
        .filter(|key| {
            let file = LandedParquet::read(&storage, key).unwrap();
            file.batches.iter().any(|batch| {
                let column = batch.column(0).as_any().downcast_ref::<StringArray>().unwrap();
                column.iter().any(|value| value == Some(pseudonym))
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_table_an_erasure_is_one_commit_and_no_version_keeps_the_patient() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    let k = key("research-1", 7);
    let day = "research/adt/event_date=2026-01-05";
    land(lake, &format!("{day}/part-a.parquet"), &k, &[(ERASED, "RR8", 1), (KEPT, "RR8", 2)]);
    land(lake, &format!("{day}/part-b.parquet"), &k, &[(KEPT, "RR8", 3)]);
    land(lake, &format!("{day}/part-c.parquet"), &k, &[(ERASED, "RR8", 4)]);
    let a = format!("{day}/part-a.parquet");
    let b = format!("{day}/part-b.parquet");
    let c = format!("{day}/part-c.parquet");
    commit_landing(lake, "research/adt", &[&a, &b], 1).await;
    let mut table = commit_landing(lake, "research/adt", &[&c], 2).await;
    // A compaction replaced c by d (same rows): c is held by earlier versions only.
    let d = format!("{day}/part-d.parquet");
    land(lake, &d, &k, &[(ERASED, "RR8", 4)]);
    crate::lake::ledger::append(lake, &[LedgerEntry::Merged { key: d.clone(), inputs: vec![c.clone()] }]).unwrap();
    let (c_file, d_file) = (read(&lake.join(&c)), read(&lake.join(&d)));
    table
        .commit(
            &[TableFile::of_key(&d, d_file.bytes, d_file.rows()).unwrap().1],
            &[TableFile::of_key(&c, c_file.bytes, c_file.rows()).unwrap().1],
            Change::Compaction,
        )
        .await
        .unwrap();
    // A landing written but not yet committed to the table is the lander's, not the erasure's.
    let pending = format!("{day}/part-e.parquet");
    land(lake, &pending, &k, &[(ERASED, "RR8", 5)]);
    let landing = crate::lake::ledger::TableLanding {
        application: crate::lake::table::application_id(&table.table_id().unwrap(), "g", "t", 0),
        sequence: 3,
    };
    crate::lake::ledger::append(
        lake,
        &[LedgerEntry::Landed {
            key: pending.clone(),
            topic: "t".into(),
            partition: 0,
            first: 30,
            last: 30,
            table_landing: Some(landing),
        }],
    )
    .unwrap();
    let before = table.version();

    let rings = BTreeMap::from([("research".to_owned(), KeyRing::single(k.clone()))]);
    let mut audit = AuditLog::open(&lake.join("_audit/audit.jsonl")).unwrap();
    let request =
        [PatientErasure { nhs_number: nhs(ERASED), purposes: vec!["research".into()], gp_sourced_only: false }];
    let record = erase_in(lake, &request, &rings, ErasureTrigger::Command, "REQ-7", &mut audit).unwrap();

    table.refresh().await.unwrap();
    assert_eq!(table.version(), before + 1, "one commit for the table");
    assert_eq!(record.table_versions, BTreeMap::from([("research/adt".to_owned(), before + 1)]));
    assert_eq!(record.rows_removed, 2, "from a and d; the earlier version's c went whole");
    assert_eq!(files_holding(lake, &k.patient_pseudonym(ERASED)), [pending], "only the uncommitted landing");
    let mut current = table.files().unwrap();
    current.sort();
    let replaced: Vec<&str> = record.files_rewritten.iter().filter_map(|f| f.replaced_by.as_deref()).collect();
    assert_eq!(replaced.len(), 2, "a and d were replaced by new files");
    assert!(current.contains(&"event_date=2026-01-05/part-b.parquet".to_owned()), "b is untouched");
    for new_file in &replaced {
        assert!(current.contains(&new_file.trim_start_matches("research/adt/").to_owned()));
    }
    assert_eq!(current.len(), 3);
    for gone in [&a, &c, &d] {
        assert!(!lake.join(gone).exists(), "{gone} is removed at once");
    }
    let earlier: Vec<&str> = record.earlier_files_removed.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(earlier, [c.as_str()]);
    let log = std::fs::read_to_string(audit.path()).unwrap();
    assert!(!log.contains(&k.patient_pseudonym(ERASED)), "the audit never names the patient's pseudonym");
}
