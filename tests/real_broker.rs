//! Integration tests on a real Kafka-protocol broker process (Tansu, SQLite storage): topic
//! provisioning, end-to-end landing, `sluice land` processes sharing a consumer group, stopping and
//! resuming, and the broker killed and restarted mid-run.

mod support;

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};
use sluice::{
    provision::{self, TopicOutcome},
    topics::Topics,
};
use sluice_producers::{EventPublisher, PublisherConfig, SyntheticSource, SyntheticSourceConfig};
use sluice_schemas::{Catalogue, Framing};
use support::{ground_truth::*, tansu::Tansu, *};

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
    let summary = run_demo(lake.path(), Some(broker.bootstrap()), Framing::SingleObject, config.clone()).await;
    assert_eq!(summary.problems(), Vec::<String>::new(), "{}", summary.render());
    assert_lake_matches_source(lake.path(), config);
}

/// Everything the process-level tests share: a broker with the topics, a key file, a lake.
struct Pipeline {
    broker: Tansu,
    topics: Topics,
    dir: tempfile::TempDir,
}

impl Pipeline {
    async fn start() -> Pipeline {
        let broker = Tansu::start();
        let topics = Topics::embedded();
        provision::apply(&broker.client(), &topics).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        sluice::keys::write_new_file(&dir.path().join("keys.toml"), &["research".to_owned()]).unwrap();
        Pipeline { broker, topics, dir }
    }

    fn lake(&self) -> std::path::PathBuf {
        self.dir.path().join("lake")
    }

    /// Publishes `source`'s consent changes and clinical events (the part from `skip` on).
    async fn publish(&self, source: &SyntheticSource, skip: usize, take: usize) {
        let publisher = EventPublisher::new(
            &self.broker.client(),
            Catalogue::embedded(),
            self.topics.by_subject(),
            PublisherConfig::default(),
        )
        .unwrap();
        if skip == 0 {
            publisher.publish_all(source.consent_events(), |_| {}).await.unwrap();
        }
        publisher.publish_all(source.clinical_events().skip(skip).take(take), |_| {}).await.unwrap();
    }

    /// Starts a `sluice land` process in group `group`; its log goes to `<dir>/<name>.log`.
    fn lander(&self, group: &str, name: &str) -> Child {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["land", "--purpose", "research", "--group-id", group, "--idle-flush-secs", "1"])
            .args(["--max-buffered-rows", "700", "--brokers", &self.broker.bootstrap()])
            .arg("--lake")
            .arg(self.lake())
            .env("SLUICE_KEYS_FILE", self.dir.path().join("keys.toml"))
            .env("SLUICE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap()
    }

    /// A lander's log so far.
    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Waits until a lander's log shows `text` (ANSI colours removed).
    fn wait_for_log(&self, name: &str, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !strip_ansi(&self.log(name)).contains(text) {
            assert!(Instant::now() < deadline, "{name} never logged `{text}`:\n{}", self.log(name));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the group has committed every clinical partition up to its current end.
    fn wait_until_committed(&self, group: &str, timeout: Duration) {
        let client = self.broker.client();
        let targets = high_watermarks(&client, &self.topics.clinical());
        let deadline = Instant::now() + timeout;
        loop {
            let committed = group_committed(&client, group, &targets);
            if targets.iter().all(|(key, end)| committed.get(key).copied().unwrap_or(0) >= *end) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "group {group} did not catch up: {} of {} committed",
                committed.values().sum::<i64>(),
                targets.values().sum::<i64>()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Sends SIGTERM and returns the process's summary output; it must exit 0.
fn stop(mut lander: Child) -> String {
    let pid = lander.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while lander.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "lander did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = lander.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "lander failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// Clinical events a stopped lander reports having consumed (and committed).
fn consumed(summary: &str) -> u64 {
    summary.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no count in {summary}"))
}

fn group_committed(
    client: &ClientConfig,
    group: &str,
    targets: &BTreeMap<(String, i32), i64>,
) -> HashMap<(String, i32), i64> {
    let consumer: BaseConsumer = client.clone().set("group.id", group).create().unwrap();
    let mut list = TopicPartitionList::new();
    for (topic, partition) in targets.keys() {
        list.add_partition(topic, *partition);
    }
    let Ok(committed) = consumer.committed_offsets(list, Duration::from_secs(10)) else { return HashMap::new() };
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(n) => Some(((e.topic().to_owned(), e.partition()), n)),
            _ => None,
        })
        .collect()
}

/// The event ids the research purpose must receive from the first `count` events.
fn permitted(source: &SyntheticSource, count: usize) -> std::collections::HashSet<String> {
    source
        .clinical_events()
        .take(count)
        .filter(|e| {
            let patient = source.patient(e.truth.patient);
            e.truth.nhs_number_sent && !patient.national_opt_out && !(patient.type1_opt_out && e.truth.gp_sourced)
        })
        .map(|e| e.truth.event_id.to_string())
        .collect()
}

fn assert_exactly(lake: &Path, expected: &std::collections::HashSet<String>) {
    let landed = landed_ids(lake);
    assert!(landed.values().all(|n| *n == 1), "an event landed twice");
    let landed: std::collections::HashSet<String> = landed.into_keys().collect();
    assert_eq!(landed.len(), expected.len(), "landed {} of {} permitted events", landed.len(), expected.len());
    assert_eq!(&landed, expected);
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
    assert_exactly(&pipeline.lake(), &permitted(&source, 6_000));
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
    assert_exactly(&pipeline.lake(), &permitted(&source, 6_000));
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
    assert_exactly(&pipeline.lake(), &permitted(&source, 6_000));
}
