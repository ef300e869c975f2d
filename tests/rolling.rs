//! Files roll per source partition: a partition's files are written and its offsets committed
//! when it holds `max_file_rows`, independently of the other partitions, and every event still
//! lands exactly once.

mod support;

use std::collections::BTreeMap;

use sluice::keys;
use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_roll_at_their_row_limit_and_every_event_lands_once() {
    let (_cluster, client, topics, _source) =
        mock_cluster_with_source(SyntheticSourceConfig { patients: 500, events: 9_000, ..Default::default() }).await;

    let purposes = vec!["direct-care".to_owned()];
    let lake = tempfile::tempdir().unwrap();
    let mut config = lander_config(lake.path(), &purposes, "rolling-test", &topics);
    config.max_buffered_rows = 1_000_000;
    config.max_file_rows = 300;
    config.idle_flush_secs = 60;
    let report = land_until_caught_up(&client, &config, &keys::generate(&purposes)).await;
    assert_eq!(report.landed["direct-care"], 9_000, "direct care receives every event");

    let seen = landed_ids(lake.path());
    assert_eq!(seen.len(), 9_000);
    assert!(seen.values().all(|n| *n == 1), "an event landed twice");

    // One audit landing record per roll of a partition: partitions rolled on their own, many
    // times, each roll holding about max_file_rows (one consumed batch of at most 2,000 can
    // overshoot it).
    let audit = std::fs::read_to_string(lake.path().join("_audit/audit.jsonl")).unwrap();
    let mut rolls: BTreeMap<(String, i64), Vec<u64>> = BTreeMap::new();
    for line in audit.lines().filter(|l| l.contains("\"kind\":\"landing\"")) {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let event = &record["event"];
        let key = (event["topic"].as_str().unwrap().to_owned(), event["partition"].as_i64().unwrap());
        rolls.entry(key).or_default().push(event["landed"].as_u64().unwrap());
    }
    let partitions = rolls.len();
    let total_rolls: usize = rolls.values().map(Vec::len).sum();
    assert!(total_rolls >= 9_000 / 2_300, "{total_rolls} rolls over {partitions} partitions");
    assert!(rolls.values().any(|r| r.len() >= 2), "some partition rolled more than once: {rolls:?}");
    for ((topic, partition), landed) in &rolls {
        for (i, rows) in landed.iter().enumerate() {
            assert!(*rows <= 300 + 2_000, "{topic}/{partition} roll {i}: {rows} rows");
            if i + 1 < landed.len() {
                assert!(*rows >= 300, "{topic}/{partition} rolled at {rows} rows, before its limit");
            }
        }
    }
}

/// A partition's files roll when its events move on to a later event-time window: a day's events
/// land in files of their own, committed before the next day's first event is buffered, even
/// though no row, byte or age limit is near.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_roll_when_events_move_on_to_the_next_day() {
    let (_cluster, client, topics) = mock_cluster();
    let day = |seed: u64, start: &str| {
        SyntheticSource::new(SyntheticSourceConfig {
            patients: 200,
            events: 8_000,
            seed,
            period_start: start.to_owned(),
            period_days: 1,
            ..Default::default()
        })
        .unwrap()
    };
    // Two days published in time order, as a live feed would send them.
    publish_source(&client, &topics, &day(1, "2026-03-01")).await;
    publish_source(&client, &topics, &day(2, "2026-03-02")).await;

    let purposes = vec!["direct-care".to_owned()];
    let lake = tempfile::tempdir().unwrap();
    let mut config = lander_config(lake.path(), &purposes, "window-test", &topics);
    config.max_buffered_rows = 1_000_000;
    config.max_file_rows = 1_000_000;
    config.max_file_age_secs = 3_600;
    config.idle_flush_secs = 60;
    let report = land_until_caught_up(&client, &config, &keys::generate(&purposes)).await;
    assert_eq!(report.landed["direct-care"], 16_000);

    // Each partition's landing records, in order: the first holds only the first day's files,
    // the last only the second day's.
    let audit = std::fs::read_to_string(lake.path().join("_audit/audit.jsonl")).unwrap();
    let mut rolls: BTreeMap<(String, i64), Vec<Vec<String>>> = BTreeMap::new();
    for line in audit.lines().filter(|l| l.contains("\"kind\":\"landing\"")) {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let event = &record["event"];
        let key = (event["topic"].as_str().unwrap().to_owned(), event["partition"].as_i64().unwrap());
        let dates = event["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().split('/').find(|s| s.starts_with("event_date=")).unwrap().to_owned())
            .collect();
        rolls.entry(key).or_default().push(dates);
    }
    assert!(!rolls.is_empty());
    for (partition, landings) in &rolls {
        assert_eq!(
            landings,
            &[vec!["event_date=2026-03-01".to_owned()], vec!["event_date=2026-03-02".to_owned()]],
            "{partition:?} rolled once at the change of day"
        );
    }
    let seen = landed_ids(lake.path());
    assert_eq!(seen.len(), 16_000);
    assert!(seen.values().all(|n| *n == 1), "an event landed twice");
}
