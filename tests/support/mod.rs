//! Helpers shared by the integration tests: running `sluice`, mock clusters, landing, reading
//! topics back. Reading a lake back with the Parquet reader and the ground-truth and linkage
//! checks are `sluice_testkit`'s ([`sluice_testkit::lake`], re-exported here).

#![allow(dead_code)]

pub mod ground_truth;
pub mod listeners;
pub mod pipeline;
pub mod tansu;
pub mod tls;
pub mod watchdog;

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    path::Path,
    sync::{Arc, Mutex},
};

use rdkafka::{
    ClientConfig, Message as _, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    message::Headers as _,
    mocking::MockCluster,
    producer::DefaultProducerContext,
};
use sluice::{pipeline::LandingPipeline, topics::Topics};
use sluice_consumers::{
    LanderConfig, LandingReport,
    lander::{PurposeSetup, setups_from_builtin},
    pseudonymise::PurposeKey,
};
use sluice_producers::{EventPublisher, PublishReport, PublisherConfig, SyntheticSource, SyntheticSourceConfig};
use sluice_schemas::Catalogue;
pub use sluice_testkit::lake::*;
use tokio::sync::watch;

/// The `sluice` binary these tests run (built by Cargo with them).
pub fn sluice_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sluice"))
}

/// A command running the `sluice` binary.
pub fn sluice() -> std::process::Command {
    std::process::Command::new(sluice_binary())
}

/// An in-process mock cluster with every topic of `infra/topics.toml`, and a client for it.
pub fn mock_cluster() -> (MockCluster<'static, DefaultProducerContext>, ClientConfig, Topics) {
    let cluster = MockCluster::new(1).unwrap();
    let topics = Topics::embedded();
    for topic in &topics.topic {
        cluster.create_topic(&topic.name, topic.partitions, 1).unwrap();
    }
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", cluster.bootstrap_servers());
    (cluster, client, topics)
}

/// A lander configuration for the repository's topics, as every landing is built
/// ([`sluice::pipeline::lander_config`]), with smaller buffers and quicker timeouts for tests.
pub fn lander_config(lake: &Path, purposes: &[String], group_id: &str, topics: &Topics) -> LanderConfig {
    LanderConfig {
        lake_dir: lake.to_owned(),
        purposes: purposes.to_vec(),
        group_id: group_id.to_owned(),
        max_buffered_rows: 1_000,
        idle_flush_secs: 1,
        // Small batches, so that tests of rolling and of stopping part-way see several.
        max_batch_messages: 2_000,
        consent_load_timeout_secs: 30,
        // The audit topic only where a test asks for it.
        audit_topic: None,
        ..sluice::pipeline::lander_config(topics)
    }
}

/// Each purpose under its built-in policy with its key.
pub fn builtin_setups(keys: &BTreeMap<String, PurposeKey>) -> BTreeMap<String, PurposeSetup> {
    setups_from_builtin(keys).unwrap()
}

/// The high watermark of every partition of the given topics.
pub fn high_watermarks(client: &ClientConfig, topics: &BTreeMap<String, String>) -> BTreeMap<(String, i32), i64> {
    sluice::broker::high_watermarks(client, topics).unwrap()
}

/// Runs a lander with each purpose's built-in policy until it (with its group) has consumed
/// every clinical partition up to where it ends now.
pub async fn land_until_caught_up(
    client: &ClientConfig,
    config: &LanderConfig,
    keys: &BTreeMap<String, PurposeKey>,
) -> LandingReport {
    land_with_setups_until_caught_up(client, config, &builtin_setups(keys)).await
}

/// Runs a lander with the given purposes' setups until it (with its group) has consumed every
/// clinical partition up to where it ends now.
pub async fn land_with_setups_until_caught_up(
    client: &ClientConfig,
    config: &LanderConfig,
    setups: &BTreeMap<String, PurposeSetup>,
) -> LandingReport {
    let landing = LandingPipeline {
        client: client.clone(),
        config: config.clone(),
        setups: setups.clone(),
        lineage: Default::default(),
    };
    let until = landing.caught_up_now().unwrap();
    let (_shutdown, shutdown) = watch::channel(false);
    let _watchdog = watchdog::Watchdog::start("a lander running until caught up", LANDING_LIMIT);
    landing.run(until, shutdown, |_| {}).await.unwrap()
}

/// Longest a test lander may take to catch up (they take seconds to a minute) before the
/// test binary is stopped as hung.
pub const LANDING_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Publishes a synthetic source's consent changes, then its clinical events.
pub async fn publish_source(client: &ClientConfig, topics: &Topics, source: &SyntheticSource) -> PublishReport {
    let publisher =
        EventPublisher::new(client, Catalogue::embedded(), topics.by_subject(), PublisherConfig::default()).unwrap();
    publisher.publish_all(source.consent_events(), |_| {}).await.unwrap();
    publisher.publish_all(source.clinical_events(), |_| {}).await.unwrap()
}

/// A mock cluster with the repository's topics (see [`mock_cluster`]) holding the consent
/// changes and clinical events of the synthetic source `config` describes, and that source.
pub async fn mock_cluster_with_source(
    config: SyntheticSourceConfig,
) -> (MockCluster<'static, DefaultProducerContext>, ClientConfig, Topics, SyntheticSource) {
    let (cluster, client, topics) = mock_cluster();
    let source = SyntheticSource::new(config).unwrap();
    publish_source(&client, &topics, &source).await;
    (cluster, client, topics, source)
}

/// One record read back from a topic.
#[derive(Debug, Clone)]
pub struct TopicRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

/// Every record of `topic` from the beginning up to its high watermark now, in partition and
/// offset order.
pub fn read_topic(client: &ClientConfig, topic: &str) -> Vec<TopicRecord> {
    let ends = high_watermarks(client, &BTreeMap::from([(topic.to_owned(), topic.to_owned())]));
    let consumer: BaseConsumer = client.clone().set("group.id", "sluice-test-reader").create().unwrap();
    let mut assignment = TopicPartitionList::new();
    for ((_, partition), _) in ends.iter().filter(|(_, end)| **end > 0) {
        assignment.add_partition_offset(topic, *partition, Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let mut remaining: usize = ends.values().filter(|end| **end > 0).count();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while remaining > 0 {
        assert!(std::time::Instant::now() < deadline, "{topic} not read to its end within 60 s");
        let Some(message) = consumer.poll(std::time::Duration::from_millis(200)) else { continue };
        let message = message.unwrap();
        let end = ends[&(topic.to_owned(), message.partition())];
        if message.offset() >= end {
            continue;
        }
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        records.push(TopicRecord {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
        });
        if message.offset() + 1 == end {
            remaining -= 1;
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}

/// One request received: its headers (names lower-cased) and body.
pub type Received = (BTreeMap<String, String>, Vec<u8>);

/// A tiny HTTP server on a free local port that answers 200 to everything and keeps what it got;
/// returns its base URL (`http://127.0.0.1:<port>`). Each request's `:request` header is its
/// request line.
pub fn http_server() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let keep = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = BTreeMap::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            headers.insert(":request".to_owned(), line.trim().to_owned());
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let Some((name, value)) = line.trim_end().split_once(':') else { break };
                headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
            }
            let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
            keep.lock().unwrap().push((headers, body));
        }
    });
    (url, received)
}
