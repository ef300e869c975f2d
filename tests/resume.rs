//! Offsets are committed only for landed work: a lander stopped mid-stream lands what it holds,
//! and the next lander in the same group resumes from the committed offsets, so together they
//! land every permitted event exactly once.

mod support;

use std::time::Duration;

use sluice::keys;
use sluice_consumers::{RunUntil, lander::setups_from_builtin};
use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use support::*;
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_lander_commits_what_it_landed_and_the_next_one_resumes_without_loss_or_duplicates() {
    let (_cluster, mut client, topics) = mock_cluster();
    // The mock coordinator holds a rejoining group for the session timeout minus a second even
    // after the previous member left (a real broker does not): keep the wait short.
    client.set("session.timeout.ms", "6000");
    let catalogue = sluice_schemas::Catalogue::embedded();
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 400, events: 6_000, ..Default::default() }).unwrap();
    publish_source(&client, &topics, &source).await;

    let purposes = vec!["research".to_owned()];
    let keys = keys::generate(&purposes);
    let setups = setups_from_builtin(&keys).unwrap();
    let lake = tempfile::tempdir().unwrap();
    let mut config = lander_config(lake.path(), &purposes, "resume-test", &topics);
    config.max_buffered_rows = 500;

    // First lander: runs until asked to stop, which happens once it has consumed 2,000 events.
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let first =
        sluice_consumers::run(&client, &config, &setups, catalogue, RunUntil::Stopped, shutdown_rx, |consumed| {
            if consumed == 2_000 {
                let _ = shutdown_tx.send(true);
            }
        });
    let first = tokio::time::timeout(Duration::from_secs(60), first).await.expect("stops when asked").unwrap();
    assert!(first.consumed_total() >= 2_000 && first.consumed_total() < 6_000, "{}", first.consumed_total());
    assert_eq!(first.unreconciled(&purposes), Vec::<String>::new());

    // Second lander, same group: resumes where the first committed and stops at the end.
    let second = land_until_caught_up(&client, &config, &keys).await;
    assert_eq!(first.consumed_total() + second.consumed_total(), 6_000, "nothing consumed twice or skipped");

    // Read back: every event id at most once, and landed + withheld covers every event.
    let seen = landed_ids(lake.path());
    assert!(seen.values().all(|n| *n == 1), "an event landed twice");
    let withheld = first.withheld_total("research") + second.withheld_total("research");
    assert_eq!(seen.len() as u64 + withheld, 6_000);
}

/// A landing its table committed but whose offsets the group did not (the lander was killed in
/// between, or lost its partitions) is not landed again: the next lander reads the events again
/// from the group's offsets, asks each table what it holds, and lands none of it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_a_table_holds_are_not_landed_again_when_the_group_offsets_fall_behind_it() {
    use rdkafka::{
        Offset, TopicPartitionList,
        consumer::{BaseConsumer, CommitMode, Consumer},
    };
    let (_cluster, mut client, topics) = mock_cluster();
    client.set("session.timeout.ms", "6000");
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 300, events: 3_000, ..Default::default() }).unwrap();
    publish_source(&client, &topics, &source).await;
    let purposes = vec!["research".to_owned(), "planning".to_owned()];
    let keys = keys::generate(&purposes);
    let lake = tempfile::tempdir().unwrap();
    let config = lander_config(lake.path(), &purposes, "table-holds-test", &topics);
    let first = land_until_caught_up(&client, &config, &keys).await;
    let landed_first = landed_ids(lake.path());
    assert!(first.landed.values().sum::<u64>() > 0);

    // The group's offsets go back to the start, as if no commit after the tables' had happened.
    let mut rewind = TopicPartitionList::new();
    for ((topic, partition), _) in high_watermarks(&client, &topics.clinical()) {
        rewind.add_partition_offset(&topic, partition, Offset::Offset(0)).unwrap();
    }
    // Committed by a member of the group (the mock coordinator takes no other commits), once
    // the group has given it the partitions.
    let member: BaseConsumer = client.clone().set("group.id", "table-holds-test").create().unwrap();
    let subscribed: Vec<&str> = config.clinical_topics.values().map(String::as_str).collect();
    member.subscribe(&subscribed).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    tokio::task::block_in_place(|| {
        while member.assignment().unwrap().count() < rewind.count() {
            assert!(std::time::Instant::now() < deadline, "the group never gave its partitions to the member");
            let _ = member.poll(Duration::from_millis(200));
        }
        member.commit(&rewind, CommitMode::Sync).unwrap();
        member.unsubscribe();
        drop(member);
    });

    let second = land_until_caught_up(&client, &config, &keys).await;
    assert_eq!(second.consumed_total(), 3_000, "every event was read again");
    assert_eq!(second.landed.values().sum::<u64>(), 0, "and none landed again: {:?}", second.landed);
    assert_eq!(second.already_in_table, first.landed, "each purpose's table held what the first run landed");
    assert_eq!(second.unreconciled(&purposes), Vec::<String>::new());
    assert_eq!(landed_ids(lake.path()), landed_first, "the tables hold the same rows, each once");
    let log = std::fs::read_to_string(lake.path().join("_audit/audit.jsonl")).unwrap();
    assert!(log.contains("\"already_in_table\":"), "the landing records say so");
}
