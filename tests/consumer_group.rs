//! Two landers in one consumer group share the clinical partitions and together land every
//! permitted event exactly once, whatever the rebalances in between.

mod support;

use sluice::keys;
use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_landers_in_one_group_land_every_event_exactly_once() {
    let (_cluster, mut client, topics) = mock_cluster();
    // See tests/resume.rs: the mock coordinator waits out the session timeout on rejoins.
    client.set("session.timeout.ms", "6000");
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 500, events: 8_000, ..Default::default() }).unwrap();
    publish_source(&client, &topics, &source).await;

    let purposes = vec!["research".to_owned()];
    let keys = keys::generate(&purposes);
    let lake = tempfile::tempdir().unwrap();
    let mut config = lander_config(lake.path(), &purposes, "shared-group", &topics);
    config.max_buffered_rows = 400;
    // Each lander on its own task, as each would be its own process: one blocked in librdkafka
    // (committing, or closing its consumer) must not stop the other from serving a rebalance.
    let lander = || {
        let (client, config, keys) = (client.clone(), config.clone(), keys.clone());
        tokio::spawn(async move { land_until_caught_up(&client, &config, &keys).await })
    };
    let (first, second) = (lander(), lander());
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert!(first.consumed_total() > 0 && second.consumed_total() > 0, "both landers took partitions");
    assert_eq!(first.consumed_total() + second.consumed_total(), 8_000, "committed work adds up exactly");

    let seen = landed_ids(lake.path());
    assert!(seen.values().all(|n| *n == 1), "an event landed twice");
    let withheld = first.withheld_total("research") + second.withheld_total("research");
    assert_eq!(seen.len() as u64 + withheld, 8_000, "every event landed or withheld");
}
