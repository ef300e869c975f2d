//! End to end on the embedded mock cluster: synthetic source -> Kafka -> lander -> Parquet, read
//! back with the Parquet reader and checked against the source's ground truth.

mod support;

use std::collections::HashSet;

use sluice_producers::SyntheticSourceConfig;
use sluice_schemas::Framing;
use support::{ground_truth::*, *};

fn source_config() -> SyntheticSourceConfig {
    SyntheticSourceConfig { patients: 1_500, events: 12_000, ..SyntheticSourceConfig::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_permitted_event_lands_exactly_once_and_nothing_identifies_a_patient() {
    let lake = tempfile::tempdir().unwrap();
    let (summary, keys) = run_demo(lake.path(), None, Framing::SingleObject, source_config()).await;
    assert_eq!(summary.problems(), Vec::<String>::new(), "{}", summary.render());
    assert_eq!(summary.produced.total(), 12_000);
    assert_lake_matches_source(lake.path(), source_config(), &keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_framing_lands_the_same_events_and_older_schema_versions_read_as_the_newest() {
    let lake = tempfile::tempdir().unwrap();
    let config = SyntheticSourceConfig { patients: 300, events: 2_000, seed: 7, ..SyntheticSourceConfig::default() };
    let (summary, _keys) = run_demo(lake.path(), None, Framing::Confluent, config).await;
    assert_eq!(summary.problems(), Vec::<String>::new(), "{}", summary.render());
    assert!(summary.landing.landed["research"] > 1_500);
    // Observations come as v1 (GP systems), v2 (trust vital signs) and v3 (trust laboratory);
    // all land in one dataset with the newest columns, null where an older version lacks them.
    let mut interpretations = Vec::new();
    let mut exact_results = Vec::new();
    let mut writer_fingerprints = HashSet::new();
    for file in parquet_files(&lake.path().join("research/observation")) {
        let parquet = read_parquet(&file);
        writer_fingerprints.extend(parquet.metadata["sluice.writer_schema_fingerprints"].split(',').map(str::to_owned));
        interpretations.extend(column_strings(&parquet.batches, "interpretation"));
        exact_results.extend(column_strings(&parquet.batches, "value_decimal"));
    }
    assert_eq!(writer_fingerprints.len(), 3, "all three observation versions were written");
    assert!(interpretations.iter().any(String::is_empty), "v1 events have no interpretation");
    assert!(interpretations.iter().any(|i| i == "NORMAL"), "v2 and v3 events carry it");
    assert!(exact_results.iter().any(String::is_empty), "v1 and v2 events have no exact result");
    assert!(
        exact_results.iter().any(|v| v.ends_with("00000") && v.contains('.')),
        "v3 events carry it: {exact_results:?}"
    );
}
