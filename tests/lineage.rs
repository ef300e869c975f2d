//! A landing run's OpenLineage events: START then COMPLETE (or FAIL) with one run id, written to
//! the lineage file and POSTed to the endpoint, with the landed counts and no patient data.

mod support;

use std::{collections::BTreeMap, path::Path};

use serde_json::Value;
use sluice::keys;
use sluice_consumers::{LanderConfig, LandingReport, RunUntil, lander::PurposeSetup, lineage::LineageConfig};
use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use support::*;
use tokio::sync::watch;

async fn land(
    client: &rdkafka::ClientConfig,
    config: &LanderConfig,
    lineage: &LineageConfig,
    setups: &BTreeMap<String, PurposeSetup>,
) -> Result<LandingReport, String> {
    let (_targets, targets) = watch::channel(Some(high_watermarks(client, &config.clinical_topics)));
    let (_shutdown, shutdown) = watch::channel(false);
    sluice::lineage::land(lineage, client, config, setups, RunUntil::CaughtUp(targets), shutdown, |_| {}).await
}

fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_landing_run_emits_start_then_complete_to_the_file_and_the_endpoint() {
    let (_cluster, client, topics, source) =
        mock_cluster_with_source(SyntheticSourceConfig { patients: 300, events: 3_000, ..Default::default() }).await;

    let purposes = vec!["direct-care".to_owned(), "research".to_owned()];
    let lake = tempfile::tempdir().unwrap();
    let lineage_file = lake.path().join("_lineage/openlineage.jsonl");
    let (server, received) = http_server();
    let url = format!("{server}/api/v1/lineage");
    let config = lander_config(lake.path(), &purposes, "lineage-test", &topics);
    let lineage = LineageConfig { file: Some(lineage_file.clone()), url: Some(url), ..LineageConfig::default() };
    let report = land(&client, &config, &lineage, &builtin_setups(&keys::generate(&purposes))).await.unwrap();
    assert_eq!(report.consumed_total(), 3_000);

    let events = read_events(&lineage_file);
    let types: Vec<&str> = events.iter().map(|e| e["eventType"].as_str().unwrap()).collect();
    assert_eq!(types, ["START", "COMPLETE"]);
    let (start, complete) = (&events[0], &events[1]);
    assert_eq!(start["run"]["runId"], complete["run"]["runId"]);
    assert_eq!(complete["job"]["name"], "land:lineage-test");

    let mut inputs: Vec<&str> =
        complete["inputs"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    inputs.sort_unstable();
    let clinical_topics = topics.clinical();
    let mut clinical: Vec<&str> = clinical_topics.values().map(String::as_str).collect();
    clinical.sort_unstable();
    assert_eq!(inputs, clinical);
    let consumed: u64 = complete["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["inputFacets"]["inputStatistics"]["rowCount"].as_u64().unwrap())
        .sum();
    assert_eq!(consumed, 3_000);

    let outputs = complete["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), purposes.len() * clinical.len());
    let stat = |d: &Value, key: &str| d["outputFacets"]["outputStatistics"][key].as_u64().unwrap();
    for purpose in &purposes {
        let mine = outputs.iter().filter(|d| d["name"].as_str().unwrap().starts_with(&format!("{purpose}/")));
        let rows: u64 = mine.clone().map(|d| stat(d, "rowCount")).sum();
        assert_eq!(rows, report.landed[purpose], "{purpose}");
    }
    let rows: u64 = outputs.iter().map(|d| stat(d, "rowCount")).sum();
    assert_eq!(rows, report.landed.values().sum::<u64>());
    let files: u64 = outputs.iter().map(|d| stat(d, "fileCount")).sum();
    assert_eq!(files, report.files.len() as u64);
    assert_eq!(files, parquet_files(lake.path()).len() as u64);
    let bytes: u64 = outputs.iter().map(|d| stat(d, "size")).sum();
    assert_eq!(bytes, report.files.iter().map(|f| f.bytes).sum::<u64>());

    // The endpoint received the same two events, as JSON.
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 2, "{received:?}");
    for ((headers, body), sent) in received.iter().zip(&events) {
        assert!(headers[":request"].starts_with("POST /api/v1/lineage "), "{headers:?}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(&serde_json::from_slice::<Value>(body).unwrap(), sent);
    }

    // Names, schemas and counts only: no patient's NHS number anywhere.
    let text = std::fs::read_to_string(&lineage_file).unwrap();
    let numbers: std::collections::HashSet<String> =
        (0..source.config().patients).map(|i| source.patient(i).nhs_number.digits()).collect();
    let leaked: Vec<&str> = words(&text).into_iter().filter(|w| numbers.contains(*w)).collect();
    assert!(leaked.is_empty(), "NHS numbers in the lineage: {leaked:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_fails_emits_fail_with_the_error_and_an_unreachable_endpoint_does_not_stop_it() {
    let (_cluster, client, topics) = mock_cluster();
    let purposes = vec!["direct-care".to_owned(), "research".to_owned()];
    let lake = tempfile::tempdir().unwrap();
    let lineage_file = lake.path().join("lineage.jsonl");
    let config = lander_config(lake.path(), &purposes, "lineage-fail", &topics);
    let lineage = LineageConfig {
        file: Some(lineage_file.clone()),
        // Nothing listens there: the POSTs fail, are logged, and change nothing.
        url: Some("http://127.0.0.1:9/lineage".to_owned()),
        timeout_secs: 2,
    };
    // No policy for research: the run fails before it consumes anything.
    let setups = builtin_setups(&keys::generate(&purposes[..1]));
    let error = land(&client, &config, &lineage, &setups).await.unwrap_err();
    assert!(error.contains("research"), "{error}");

    let events = read_events(&lineage_file);
    let types: Vec<&str> = events.iter().map(|e| e["eventType"].as_str().unwrap()).collect();
    assert_eq!(types, ["START", "FAIL"]);
    assert_eq!(events[0]["run"]["runId"], events[1]["run"]["runId"]);
    let facet = &events[1]["run"]["facets"]["errorMessage"];
    assert_eq!(facet["message"], error.as_str());
    assert_eq!(facet["programmingLanguage"], "Rust");
    assert!(facet["_schemaURL"].as_str().unwrap().contains("ErrorMessageRunFacet"));

    // The same lander with both policies lands, although the endpoint is still unreachable.
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 50, events: 300, ..Default::default() }).unwrap();
    publish_source(&client, &topics, &source).await;
    let report = land(&client, &config, &lineage, &builtin_setups(&keys::generate(&purposes))).await.unwrap();
    assert_eq!(report.consumed_total(), 300);
    let types: Vec<String> =
        read_events(&lineage_file).iter().map(|e| e["eventType"].as_str().unwrap().to_owned()).collect();
    assert_eq!(types, ["START", "FAIL", "START", "COMPLETE"]);
}
