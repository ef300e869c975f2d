//! End to end on the embedded mock cluster: synthetic source -> Kafka -> lander -> Parquet, read
//! back with the Parquet reader and checked against the source's ground truth.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};

use arrow::datatypes::{DataType, TimeUnit};
use sluice::{demo, keys, topics::Topics};
use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use sluice_schemas::Framing;
use support::*;

const PURPOSES: [&str; 2] = ["planning", "research"];

fn source_config() -> SyntheticSourceConfig {
    SyntheticSourceConfig { patients: 1_500, events: 12_000, ..SyntheticSourceConfig::default() }
}

async fn run_demo(lake: &std::path::Path, framing: Framing, config: SyntheticSourceConfig) -> demo::DemoSummary {
    let purposes: Vec<String> = PURPOSES.iter().map(|p| p.to_string()).collect();
    demo::run(demo::DemoOptions {
        source: config,
        keys: keys::generate(&purposes),
        purposes,
        lake_dir: lake.to_owned(),
        brokers: None,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_permitted_event_lands_exactly_once_and_nothing_identifies_a_patient() {
    let lake = tempfile::tempdir().unwrap();
    let summary = run_demo(lake.path(), Framing::SingleObject, source_config()).await;
    assert_eq!(summary.problems(), Vec::<String>::new(), "{}", summary.render());
    assert_eq!(summary.produced.total(), 12_000);

    // Ground truth from the source, computed without the lander's code: an event may be
    // released for planning and research when it carries an NHS number, its patient holds no
    // National Data Opt-out, and it is not GP data of a patient with a Type 1 opt-out.
    let source = SyntheticSource::new(source_config()).unwrap();
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
    let leaks = |text: &str| -> Option<String> {
        let words = words(text);
        if let Some(word) = words.iter().find(|w| identifying_words.contains(**w)) {
            return Some(format!("identifier-like word of {} chars", word.len()));
        }
        words
            .windows(2)
            .any(|pair| full_postcodes.contains(&format!("{} {}", pair[0], pair[1])))
            .then(|| "a full postcode".to_owned())
    };
    // The scan can fail: it finds identifiers when they are there.
    let first = &patients[0];
    assert!(leaks(&format!("seen {} today", first.nhs_number.digits())).is_some());
    assert!(leaks(&format!("{} {}", first.given_name, first.family_name)).is_some());
    assert!(leaks(&format!("lives at {}", first.postcode)).is_some());
    assert!(leaks(&first.postcode[..first.postcode.find(' ').unwrap()]).is_none(), "outward code alone is fine");

    let mut pseudonyms_per_purpose: BTreeMap<&str, HashMap<u32, HashSet<String>>> = BTreeMap::new();
    for purpose in PURPOSES {
        let files = parquet_files(&lake.path().join(purpose));
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
            assert_eq!(
                schema.field_with_name("occurred_at").unwrap().data_type(),
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            );
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
            if let Some(what) = leaks(&raw) {
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
    let planning: HashSet<&String> = pseudonyms_per_purpose["planning"].values().flatten().collect();
    let research: HashSet<&String> = pseudonyms_per_purpose["research"].values().flatten().collect();
    assert!(planning.is_disjoint(&research), "pseudonyms must not link across purposes");
}

fn summary_key_id(metadata: &BTreeMap<String, String>) -> String {
    let id = metadata["sluice.key_id"].clone();
    assert!(id.starts_with(&format!("ephemeral-{}-", metadata["sluice.purpose"])), "{id}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_framing_lands_the_same_events_and_older_schema_versions_read_as_the_newest() {
    let lake = tempfile::tempdir().unwrap();
    let config = SyntheticSourceConfig { patients: 300, events: 2_000, seed: 7, ..SyntheticSourceConfig::default() };
    let summary = run_demo(lake.path(), Framing::Confluent, config).await;
    assert_eq!(summary.problems(), Vec::<String>::new(), "{}", summary.render());
    assert!(summary.landing.landed["research"] > 1_500);
    // Observations come as v1 (GP systems) and v2 (trust laboratories); both land in one
    // dataset with the v2 column, null for v1 events.
    let mut interpretations = Vec::new();
    let mut writer_fingerprints = HashSet::new();
    for file in parquet_files(&lake.path().join("research/observation")) {
        let parquet = read_parquet(&file);
        writer_fingerprints.extend(parquet.metadata["sluice.writer_schema_fingerprints"].split(',').map(str::to_owned));
        interpretations.extend(column_strings(&parquet.batches, "interpretation"));
    }
    assert_eq!(writer_fingerprints.len(), 2, "both observation versions were written");
    assert!(interpretations.iter().any(String::is_empty), "v1 events have no interpretation");
    assert!(interpretations.iter().any(|i| i == "NORMAL"), "v2 events carry it");
}
