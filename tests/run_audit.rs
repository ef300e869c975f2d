//! A landing run is bracketed in the audit log: a start record says what each purpose lands
//! under, a change record follows whenever a purpose's policy or key differs from the last
//! start's, and a stop record says what the run did.

mod support;

use serde_json::Value;
use sluice::keys;
use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_record_their_start_stop_and_changes_of_key() {
    let (_cluster, client, topics) = mock_cluster();
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 100, events: 600, ..Default::default() }).unwrap();
    publish_source(&client, &topics, &source).await;
    let purposes = vec!["planning".to_owned()];
    let lake = tempfile::tempdir().unwrap();
    let config = lander_config(lake.path(), &purposes, "run-audit-test", &topics);
    let first_keys = keys::generate(&purposes);
    let report = land_until_caught_up(&client, &config, &first_keys).await;
    // The same lander again, after the key was rotated: nothing new to land.
    let second_keys = keys::generate(&purposes);
    land_until_caught_up(&client, &config, &second_keys).await;

    let log = std::fs::read_to_string(lake.path().join("_audit/audit.jsonl")).unwrap();
    let events: Vec<Value> = log.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).filter(|k| *k != "landing").collect();
    assert_eq!(
        kinds,
        ["start", "configuration_change", "configuration_change", "stop", "start", "configuration_change", "stop"]
    );
    let start = &events[0];
    assert_eq!(start["group_id"], "run-audit-test");
    assert_eq!(start["purposes"][0]["purpose"], "planning");
    assert_eq!(start["purposes"][0]["key_id"], first_keys["planning"].id());
    assert!(start["purposes"][0]["policy"].as_str().unwrap().starts_with("planning@v"));
    assert_eq!(start["purposes"][0]["reader_schemas"].as_array().unwrap().len(), 3);

    let stops: Vec<&Value> = events.iter().filter(|e| e["kind"] == "stop").collect();
    assert_eq!(stops[0]["reason"], "caught up with its targets");
    assert_eq!(stops[0]["failed"], false);
    assert_eq!(stops[0]["landed"]["planning"].as_u64().unwrap(), report.landed["planning"]);
    assert_eq!(stops[0]["consumed"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>(), 600);
    assert_eq!(stops[1]["landed"].as_object().unwrap().len(), 0, "the second run had nothing to land");

    let key_change = events.iter().rfind(|e| e["kind"] == "configuration_change").unwrap();
    assert_eq!(key_change["item"], "key");
    assert_eq!(key_change["before"], first_keys["planning"].id());
    assert_eq!(key_change["after"], second_keys["planning"].id());
    assert!(sluice_consumers::audit::verify(&lake.path().join("_audit/audit.jsonl")).unwrap().problems.is_empty());
}
