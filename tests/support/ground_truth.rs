//! Checking a landed lake against the synthetic source's ground truth, for any broker.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::Path,
};

use arrow::datatypes::{DataType, TimeUnit};
use sluice::{demo, keys, topics::Topics};
use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use sluice_schemas::Framing;

use super::*;

/// The purposes the shared checks land for.
pub const PURPOSES: [&str; 2] = ["planning", "research"];

/// Runs the demo into `lake` on the mock cluster (`brokers: None`) or on the given brokers.
pub async fn run_demo(
    lake: &Path,
    brokers: Option<String>,
    framing: Framing,
    config: SyntheticSourceConfig,
) -> demo::DemoSummary {
    let purposes: Vec<String> = PURPOSES.iter().map(|p| p.to_string()).collect();
    demo::run(demo::DemoOptions {
        source: config,
        keys: keys::generate(&purposes),
        purposes,
        lake_dir: lake.to_owned(),
        brokers,
        properties: Vec::new(),
        framing,
        topics: Topics::embedded(),
        // Small enough to force several checkpoints (and several files per partition).
        max_buffered_rows: 7_000,
        show_progress: false,
    })
    .await
    .expect("demo runs")
}

/// Reads every file of the lake back and checks it against the source's ground truth: every
/// permitted event landed exactly once per purpose, nothing withheld landed, no identifier is in
/// any value or anywhere in the raw files, pseudonyms are stable per patient within a purpose and
/// unlinkable across purposes, and provenance metadata and types are right.
pub fn assert_lake_matches_source(lake: &Path, source_config: SyntheticSourceConfig) {
    let source = SyntheticSource::new(source_config).unwrap();
    // Ground truth from the source, computed without the lander's code: an event may be
    // released for planning and research when it carries an NHS number, its patient holds no
    // National Data Opt-out, and it is not GP data of a patient with a Type 1 opt-out.
    let mut expected: HashMap<String, u32> = HashMap::new();
    let mut withheld = 0;
    for event in source.clinical_events() {
        let patient = source.patient(event.truth.patient);
        let released = event.truth.nhs_number_sent
            && !patient.national_opt_out
            && !(patient.type1_opt_out && event.truth.gp_sourced);
        if released {
            expected.insert(event.truth.event_id.to_string(), event.truth.patient);
        } else {
            withheld += 1;
        }
    }
    assert!(withheld > 300, "the source must exercise opt-outs ({withheld} withheld)");

    // Everything a re-identifier could look for.
    let patients: Vec<_> = (0..source.config().patients).map(|i| source.patient(i)).collect();
    let identifying_words: HashSet<String> = patients
        .iter()
        .flat_map(|p| {
            [p.nhs_number.digits(), p.family_name.to_owned(), p.given_name.to_owned(), p.local_patient_id.clone()]
        })
        .collect();
    let full_postcodes: HashSet<String> = patients.iter().map(|p| p.postcode.clone()).collect();
    // `shortest` is the shortest word that counts: compressed bytes are close to random, and a
    // three-letter surname turns up in them by chance, so raw files are searched for longer words.
    let leaks_longer_than = |text: &str, shortest: usize| -> Option<String> {
        let words = words(text);
        if let Some(word) = words.iter().find(|w| w.len() >= shortest && identifying_words.contains(**w)) {
            return Some(format!("identifier-like word of {} chars", word.len()));
        }
        words
            .windows(2)
            .any(|pair| full_postcodes.contains(&format!("{} {}", pair[0], pair[1])))
            .then(|| "a full postcode".to_owned())
    };
    let leaks = |text: &str| leaks_longer_than(text, 1);
    // The scans can fail: they find identifiers when they are there.
    assert_eq!((iso_date(0), iso_date(20_782)), ("1970-01-01".to_owned(), "2026-11-25".to_owned()));
    let birth_column = arrow::array::Date32Array::from(vec![patients[0].date_of_birth]);
    let birth_batch =
        arrow::array::RecordBatch::try_from_iter([("d", std::sync::Arc::new(birth_column) as _)]).unwrap();
    assert_eq!(column_strings(&[birth_batch], "d"), [iso_date(patients[0].date_of_birth)]);
    let first = &patients[0];
    assert!(leaks(&format!("seen {} today", first.nhs_number.digits())).is_some());
    assert!(leaks_longer_than(&format!("\u{1}{}\u{2}", first.nhs_number.digits()), 6).is_some());
    assert!(leaks(&format!("{} {}", first.given_name, first.family_name)).is_some());
    assert!(leaks(&format!("lives at {}", first.postcode)).is_some());
    assert!(leaks(&first.postcode[..first.postcode.find(' ').unwrap()]).is_none(), "outward code alone is fine");

    let mut pseudonyms_per_purpose: BTreeMap<&str, HashMap<u32, HashSet<String>>> = BTreeMap::new();
    let mut birth_matches: BTreeMap<(&str, String), (usize, usize)> = BTreeMap::new();
    for purpose in PURPOSES {
        let files = parquet_files(&lake.join(purpose));
        assert!(files.len() >= 28, "{purpose}: {} files", files.len());
        let mut landed: HashMap<String, u32> = HashMap::new();
        let per_patient = pseudonyms_per_purpose.entry(purpose).or_default();
        for file in &files {
            let parquet = read_parquet(file);
            // Provenance recorded in every file.
            assert_eq!(parquet.metadata["sluice.purpose"], purpose);
            assert_eq!(parquet.metadata["sluice.key_id"], summary_key_id(&parquet.metadata));
            assert_eq!(parquet.metadata["sluice.policy_hash"].len(), 64);
            let schema = parquet.batches[0].schema();
            // The research policy shifts event times, and says so in the column's name; planning
            // keeps them.
            let (occurred, absent) = match purpose {
                "research" => ("occurred_at_shifted", "occurred_at"),
                _ => ("occurred_at", "occurred_at_shifted"),
            };
            assert_eq!(
                schema.field_with_name(occurred).unwrap().data_type(),
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            );
            assert!(schema.field_with_name(absent).is_err(), "{purpose} has {absent}");
            // Hive-style partitions by the landed event time's UTC date (planning) or, where
            // dates are shifted, its month (research).
            let directory = file.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
            let (key, period) = directory.split_once('=').unwrap_or_else(|| panic!("{}", file.display()));
            let (expected_key, period_length, policy) = match purpose {
                "research" => ("event_month", 7, "research@v3"),
                _ => ("event_date", 10, "planning@v2"),
            };
            assert_eq!(key, expected_key, "{}", file.display());
            for micros in column_strings(&parquet.batches, occurred) {
                let day = micros.parse::<i64>().unwrap().div_euclid(86_400_000_000) as i32;
                assert_eq!(
                    &iso_date(day)[..period_length],
                    period,
                    "{}: an event outside its partition",
                    file.display()
                );
            }
            assert_eq!(parquet.metadata["sluice.policy"], policy);
            assert_eq!(parquet.metadata["sluice.patient_pseudonym_column"], "patient_pseudonym");
            // Rows holding their own patient's full date of birth, per column. A landed date of
            // birth matches on every row; an unrelated date (a shifted onset, say) only by chance.
            for batch in &parquet.batches {
                let one = std::slice::from_ref(batch);
                let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
                let columns: Vec<Vec<String>> = names.iter().map(|name| column_strings(one, name)).collect();
                for (row, id) in column_strings(one, "event_id").iter().enumerate() {
                    let Some(patient) = expected.get(id) else { continue };
                    let birth = iso_date(patients[*patient as usize].date_of_birth);
                    for (name, column) in names.iter().zip(&columns) {
                        let counts = birth_matches.entry((purpose, name.clone())).or_insert((0, 0));
                        counts.0 += usize::from(column[row] == birth);
                        counts.1 += 1;
                    }
                }
            }
            for forbidden in [
                "nhs_number",
                "family_name",
                "given_name",
                "postcode",
                "date_of_birth",
                "local_patient_id",
                "address_line",
                "comment",
            ] {
                assert!(schema.field_with_name(forbidden).is_err(), "{} has column {forbidden}", file.display());
            }
            // No identifier anywhere: not in any value, nor in the raw file (metadata, statistics).
            for cell in all_cells(&parquet.batches) {
                if let Some(what) = leaks(&cell) {
                    panic!("{}: a value contains {what}", file.display());
                }
            }
            let raw = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
            if let Some(what) = leaks_longer_than(&raw, 6) {
                panic!("{}: the raw file contains {what}", file.display());
            }
            let ids = column_strings(&parquet.batches, "event_id");
            let pseudonyms = column_strings(&parquet.batches, "patient_pseudonym");
            for (id, pseudonym) in ids.into_iter().zip(pseudonyms) {
                let patient =
                    *expected.get(&id).unwrap_or_else(|| panic!("{purpose}: landed an event that must be withheld"));
                assert!(landed.insert(id, patient).is_none(), "{purpose}: an event landed twice");
                assert_eq!(pseudonym.len(), 64);
                per_patient.entry(patient).or_default().insert(pseudonym);
            }
        }
        assert_eq!(landed.len(), expected.len(), "{purpose}: every permitted event landed");
        for (patient, pseudonyms) in per_patient.iter() {
            assert_eq!(pseudonyms.len(), 1, "{purpose}: patient {patient} has one stable pseudonym");
        }
        let distinct: HashSet<&String> = per_patient.values().flatten().collect();
        assert_eq!(distinct.len(), per_patient.len(), "{purpose}: different patients, different pseudonyms");
    }
    for ((purpose, column), (matches, rows)) in &birth_matches {
        assert!(
            matches * 100 <= *rows,
            "{purpose}.{column}: {matches} of {rows} rows hold the patient's date of birth"
        );
    }
    let planning: HashSet<&String> = pseudonyms_per_purpose["planning"].values().flatten().collect();
    let research: HashSet<&String> = pseudonyms_per_purpose["research"].values().flatten().collect();
    assert!(planning.is_disjoint(&research), "pseudonyms must not link across purposes");
}

/// A day count since 1970-01-01 as the Parquet reader prints dates (`YYYY-MM-DD`).
fn iso_date(days: i32) -> String {
    let date = chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163).unwrap();
    date.format("%Y-%m-%d").to_string()
}

fn summary_key_id(metadata: &BTreeMap<String, String>) -> String {
    let id = metadata["sluice.key_id"].clone();
    assert!(id.starts_with(&format!("ephemeral-{}-", metadata["sluice.purpose"])), "{id}");
    id
}
