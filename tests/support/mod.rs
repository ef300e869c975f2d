//! Helpers shared by the integration tests: reading a lake back with the Parquet reader.

#![allow(dead_code)]

pub mod ground_truth;
pub mod tansu;

use std::{
    collections::BTreeMap,
    fs::File,
    path::{Path, PathBuf},
};

use arrow::{array::RecordBatch, datatypes::DataType, util::display::ArrayFormatter};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rdkafka::{
    ClientConfig,
    consumer::{BaseConsumer, Consumer},
    mocking::MockCluster,
    producer::DefaultProducerContext,
};
use sluice::topics::Topics;
use sluice_consumers::LanderConfig;

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

/// A lander configuration for the repository's topics.
pub fn lander_config(lake: &Path, purposes: &[String], group_id: &str, topics: &Topics) -> LanderConfig {
    LanderConfig {
        lake_dir: lake.to_owned(),
        purposes: purposes.to_vec(),
        group_id: group_id.to_owned(),
        clinical_topics: topics.clinical(),
        consent_topic: topics.consent().into(),
        dead_letter_topic: topics.dead_letter().into(),
        max_buffered_rows: 1_000,
        idle_flush_secs: 1,
        consent_load_timeout_secs: 30,
    }
}

/// The high watermark of every partition of the given topics.
pub fn high_watermarks(client: &ClientConfig, topics: &BTreeMap<String, String>) -> BTreeMap<(String, i32), i64> {
    let consumer: BaseConsumer = client.clone().set("group.id", "watermarks").create().unwrap();
    let mut targets = BTreeMap::new();
    for topic in topics.values() {
        let metadata = consumer.fetch_metadata(Some(topic), std::time::Duration::from_secs(10)).unwrap();
        for partition in 0..metadata.topics()[0].partitions().len() as i32 {
            let (_, high) = consumer.fetch_watermarks(topic, partition, std::time::Duration::from_secs(10)).unwrap();
            targets.insert((topic.clone(), partition), high);
        }
    }
    targets
}

/// Every Parquet file under `dir`, recursively, in path order.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// A landed file read back: its batches and its key-value metadata.
pub struct LandedParquet {
    pub batches: Vec<RecordBatch>,
    pub metadata: BTreeMap<String, String>,
}

pub fn read_parquet(path: &Path) -> LandedParquet {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let metadata = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| kv.iter().map(|e| (e.key.clone(), e.value.clone().unwrap_or_default())).collect())
        .unwrap_or_default();
    let batches = builder.build().unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    LandedParquet { batches, metadata }
}

/// Every value of a named column as text (nulls as "").
pub fn column_strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    let mut values = Vec::new();
    for batch in batches {
        let array = batch.column_by_name(column).unwrap_or_else(|| panic!("no column {column}"));
        // Named time zones need chrono-tz to format; the instants are what matter here.
        let array = match array.data_type() {
            DataType::Timestamp(_, _) => arrow::compute::cast(array, &DataType::Int64).unwrap(),
            _ => array.clone(),
        };
        let formatter = ArrayFormatter::try_new(array.as_ref(), &Default::default()).unwrap();
        for row in 0..array.len() {
            values.push(if array.is_null(row) { String::new() } else { formatter.value(row).to_string() });
        }
    }
    values
}

/// Every value of every column as text.
pub fn all_cells(batches: &[RecordBatch]) -> Vec<String> {
    let mut cells = Vec::new();
    for batch in batches {
        for field in batch.schema().fields() {
            cells.extend(column_strings(std::slice::from_ref(batch), field.name()));
        }
    }
    cells
}

/// Words of a text: maximal runs of ASCII letters and digits.
pub fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect()
}
