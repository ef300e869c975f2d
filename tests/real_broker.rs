//! Integration tests on a real Kafka-protocol broker process (Tansu, SQLite storage): topic
//! provisioning, end-to-end landing, `sluice land` processes sharing a consumer group, stopping and
//! resuming, and the broker killed and restarted mid-run.

mod support;

use std::time::Duration;

use sluice::{
    provision::{self, TopicOutcome},
    topics::Topics,
};
use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use sluice_schemas::Framing;
use support::{ground_truth::*, pipeline::*, tansu::Tansu};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_apply_creates_then_changes_nothing_and_reports_drift() {
    let broker = Tansu::start();
    let topics = Topics::embedded();
    let first = provision::apply(&broker.client(), &topics).await.unwrap();
    assert!(first.topics.iter().all(|(_, outcome)| *outcome == TopicOutcome::Created), "{first}");
    let second = provision::apply(&broker.client(), &topics).await.unwrap();
    assert!(second.topics.iter().all(|(_, outcome)| *outcome == TopicOutcome::Unchanged), "{second}");

    let mut changed = topics.clone();
    changed.topic[0].partitions += 4;
    let drift = provision::apply(&broker.client(), &changed).await.unwrap();
    assert!(drift.has_drift());
    let TopicOutcome::Drift(differences) = &drift.topics[0].1 else { panic!("{drift}") };
    assert_eq!(
        differences,
        &[format!(
            "partitions: {} defined, {} on the cluster",
            topics.topic[0].partitions + 4,
            topics.topic[0].partitions
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lands_every_permitted_event_exactly_once_on_a_real_broker() {
    let broker = Tansu::start();
    let lake = tempfile::tempdir().unwrap();
    let config = SyntheticSourceConfig { patients: 800, events: 6_000, seed: 11, ..SyntheticSourceConfig::default() };
    let (summary, keys) = run_demo(lake.path(), Some(broker.bootstrap()), Framing::SingleObject, config.clone()).await;
    assert_eq!(summary.problems(), Vec::<String>::new(), "{}", summary.render());
    assert_lake_matches_source(lake.path(), config, &keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_land_processes_in_one_group_land_every_event_exactly_once() {
    let pipeline = Pipeline::start().await;
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 600, events: 6_000, ..Default::default() }).unwrap();
    let first = pipeline.lander("shared", "first");
    pipeline.wait_for_log("first", "clinical partitions assigned partitions=28", Duration::from_secs(60));
    let second = pipeline.lander("shared", "second");
    // Publish only once the group has settled with the 28 partitions split between the two.
    pipeline.wait_for_log("second", "clinical partitions assigned partitions=14", Duration::from_secs(90));
    pipeline.wait_for_log("first", "clinical partitions assigned partitions=14", Duration::from_secs(90));
    pipeline.publish(&source, 0, 6_000).await;
    pipeline.wait_until_committed("shared", Duration::from_secs(180));
    let (first, second) = (stop(first), stop(second));
    assert!(consumed(&first) > 0 && consumed(&second) > 0, "both shared the work:\n{first}\n{second}");
    assert_eq!(consumed(&first) + consumed(&second), 6_000, "\n{first}\n{second}");
    assert_exactly(&pipeline.lake(), &pipeline.permitted(&source, 6_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_lander_resumes_from_its_committed_offsets() {
    let pipeline = Pipeline::start().await;
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 600, events: 6_000, ..Default::default() }).unwrap();
    pipeline.publish(&source, 0, 3_000).await;
    let lander = pipeline.lander("resume", "before");
    pipeline.wait_until_committed("resume", Duration::from_secs(120));
    let before = stop(lander);
    assert_eq!(consumed(&before), 3_000, "{before}");

    pipeline.publish(&source, 3_000, 3_000).await;
    let lander = pipeline.lander("resume", "after");
    pipeline.wait_until_committed("resume", Duration::from_secs(120));
    let after = stop(lander);
    assert_eq!(consumed(&after), 3_000, "only the new events are read again: {after}");
    // The default log shows the lander's checkpoints, not delta-rs's snapshot building.
    let log = strip_ansi(&pipeline.log("after"));
    assert!(log.contains("checkpoint: files landed"), "{log}");
    let table_lines: Vec<&str> =
        log.lines().filter(|line| line.contains("buoyant_kernel") || line.contains("deltalake")).collect();
    assert!(table_lines.is_empty(), "delta-rs's info lines in the default log: {table_lines:?}");
    assert_exactly(&pipeline.lake(), &pipeline.permitted(&source, 6_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_killed_and_restarted_mid_run_loses_nothing() {
    let mut pipeline = Pipeline::start().await;
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 600, events: 6_000, ..Default::default() }).unwrap();
    pipeline.publish(&source, 0, 3_000).await;
    let lander = pipeline.lander("crash", "lander");
    // Let the lander get going, then crash the broker under it.
    pipeline.wait_for_log("lander", "checkpoint: files landed", Duration::from_secs(60));
    pipeline.broker.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    pipeline.broker.restart();
    pipeline.publish(&source, 3_000, 3_000).await;
    pipeline.wait_until_committed("crash", Duration::from_secs(180));
    let summary = stop(lander);
    assert_eq!(consumed(&summary), 6_000, "{summary}\n{}", pipeline.broker.log());
    assert_exactly(&pipeline.lake(), &pipeline.permitted(&source, 6_000));
}
