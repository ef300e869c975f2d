//! Two landers in one consumer group share the clinical partitions and together land every
//! permitted event exactly once, whatever the rebalances in between.

mod support;

use std::collections::HashMap;

use sluice::keys;
use sluice_consumers::{RunUntil, policy::Policy};
use sluice_producers::{EventPublisher, PublisherConfig, SyntheticSource, SyntheticSourceConfig};
use sluice_schemas::Catalogue;
use support::*;
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_landers_in_one_group_land_every_event_exactly_once() {
    let (_cluster, mut client, topics) = mock_cluster();
    // See tests/resume.rs: the mock coordinator waits out the session timeout on rejoins.
    client.set("session.timeout.ms", "6000");
    let catalogue = Catalogue::embedded();
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 500, events: 8_000, ..Default::default() }).unwrap();
    let publisher = EventPublisher::new(&client, catalogue, topics.by_subject(), PublisherConfig::default()).unwrap();
    publisher.publish_all(source.consent_events(), |_| {}).await.unwrap();
    publisher.publish_all(source.clinical_events(), |_| {}).await.unwrap();
    let targets = high_watermarks(&client, &topics.clinical());

    let purposes = vec!["research".to_owned()];
    let keys = keys::generate(&purposes);
    let policy = Policy::baseline();
    let lake = tempfile::tempdir().unwrap();
    let mut config = lander_config(lake.path(), &purposes, "shared-group", &topics);
    config.max_buffered_rows = 400;
    let (_targets_tx, targets_rx) = watch::channel(Some(targets));
    let (_shutdown_tx, shutdown_rx) = watch::channel(false);
    let lander = || {
        sluice_consumers::run(
            &client,
            &config,
            &policy,
            &keys,
            catalogue,
            RunUntil::CaughtUp(targets_rx.clone()),
            shutdown_rx.clone(),
            |_| {},
        )
    };
    let (first, second) = tokio::join!(lander(), lander());
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(first.consumed_total() > 0 && second.consumed_total() > 0, "both landers took partitions");
    assert_eq!(first.consumed_total() + second.consumed_total(), 8_000, "committed work adds up exactly");

    let mut seen: HashMap<String, usize> = HashMap::new();
    for file in parquet_files(lake.path()) {
        for id in column_strings(&read_parquet(&file).batches, "event_id") {
            *seen.entry(id).or_default() += 1;
        }
    }
    assert!(seen.values().all(|n| *n == 1), "an event landed twice");
    let withheld = first.withheld_total("research") + second.withheld_total("research");
    assert_eq!(seen.len() as u64 + withheld, 8_000, "every event landed or withheld");
}
