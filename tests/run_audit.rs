//! A landing run is bracketed in the audit log: a start record says what each purpose lands
//! under, a change record follows whenever a purpose's policy or key differs from the last
//! start's, and a stop record says what the run did.

mod support;

use serde_json::Value;
use sluice::keys;
use sluice_producers::SyntheticSourceConfig;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_record_their_start_stop_and_changes_of_key() {
    let (_cluster, client, topics, _source) =
        mock_cluster_with_source(SyntheticSourceConfig { patients: 100, events: 600, ..Default::default() }).await;
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
    // Landings, and the table commits that follow them, as many as checkpoints: counted apart.
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .filter(|k| *k != "landing" && *k != "table_commit")
        .collect();
    assert_eq!(
        kinds,
        ["start", "configuration_change", "configuration_change", "stop", "start", "configuration_change", "stop"]
    );
    let first_stop = events.iter().position(|e| e["kind"] == "stop").unwrap();
    let commits: Vec<&Value> = events.iter().filter(|e| e["kind"] == "table_commit").collect();
    assert!(!commits.is_empty(), "the first run committed its landings to the tables");
    assert!(
        events[first_stop..].iter().all(|e| e["kind"] != "table_commit"),
        "the second run, with nothing new, committed nothing"
    );
    for commit in &commits {
        assert!(commit["table"].as_str().unwrap().starts_with("planning/"), "{commit}");
        assert!(commit["version"].as_u64().unwrap() >= 1 && commit["change"] == "landing", "{commit}");
    }
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

/// The audit trail is copied to the audit topic in order, each record once, under its own Avro
/// schema, with the record as written so the chain can be re-verified from the topic alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_is_copied_to_the_audit_topic_once_and_in_order() {
    use sha2::{Digest, Sha256};
    use sluice_schemas::{Catalogue, Decoder, apache_avro::types::Value as Avro};

    let (_cluster, client, topics, _source) =
        mock_cluster_with_source(SyntheticSourceConfig { patients: 100, events: 800, seed: 4, ..Default::default() })
            .await;
    let purposes = vec!["research".to_owned()];
    let lake = tempfile::tempdir().unwrap();
    let mut config = lander_config(lake.path(), &purposes, "audit-topic-test", &topics);
    config.audit_topic = Some(sluice::topics::Topics::embedded().audit().unwrap().to_owned());
    config.max_file_rows = 100;
    let keys = keys::generate(&purposes);
    land_until_caught_up(&client, &config, &keys).await;
    // A second run appends more records; only those are published.
    land_until_caught_up(&client, &config, &keys).await;

    let log = std::fs::read_to_string(lake.path().join("_audit/audit.jsonl")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let decoder = Decoder::new(Catalogue::embedded());
    let published = read_topic(&client, config.audit_topic.as_deref().unwrap());
    assert_eq!(published.len(), lines.len(), "every record once");
    let mut previous = "0".repeat(64);
    for (index, message) in published.iter().enumerate() {
        let event = decoder.decode(&message.payload).unwrap();
        assert_eq!(event.reader.subject(), "audit");
        let Avro::Record(fields) = &event.value else { panic!("not a record") };
        let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(field("sequence"), Avro::Long(index as i64));
        assert_eq!(message.key.as_deref(), Some(index.to_string().as_str()));
        let Avro::String(record) = field("record") else { panic!("record is text") };
        assert_eq!(record, lines[index], "the record exactly as written in the log");
        // Re-verify the chain from the topic alone.
        let (body, _) = record.rsplit_once(",\"hash\":\"").unwrap();
        let hash = hex::encode(Sha256::digest(format!("{body}}}").as_bytes()));
        assert_eq!(field("hash"), Avro::String(hash.clone()));
        assert_eq!(field("previous"), Avro::String(previous.clone()));
        previous = hash;
    }
    let kinds: Vec<String> = published
        .iter()
        .map(|m| match decoder.decode(&m.payload).unwrap().value {
            Avro::Record(fields) => format!("{:?}", fields.iter().find(|(n, _)| n == "kind").unwrap().1),
            _ => unreachable!(),
        })
        .collect();
    assert!(kinds.iter().any(|k| k.contains("landing")) && kinds.last().unwrap().contains("stop"));
}
