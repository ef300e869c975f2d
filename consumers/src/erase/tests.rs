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
