//! Reading topics back: where they end now, and which records of one source (a batch file)
//! they already hold. Both block on the network; call them from `spawn_blocking` in async code.

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    message::Headers,
    types::RDKafkaErrorCode,
};

use crate::headers::SOURCE_REFERENCE;

/// How long one metadata or offsets request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The high watermark (the offset the next record will get) of every partition of `topics`.
pub fn high_watermarks<'t>(
    client: &ClientConfig,
    topics: impl IntoIterator<Item = &'t str>,
) -> Result<BTreeMap<(String, i32), i64>, KafkaError> {
    let consumer = reader(client)?;
    let mut ends = BTreeMap::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
        let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len());
        for partition in 0..partitions as i32 {
            let (_, high) = consumer.fetch_watermarks(topic, partition, REQUEST_TIMEOUT)?;
            ends.insert((topic.to_owned(), partition), high);
        }
    }
    Ok(ends)
}

/// The `sluice.source.reference` headers starting with `prefix` of every record from `from` up
/// to the end of each partition now. A partition missing from `from` is read from its start.
pub fn references_since(
    client: &ClientConfig,
    from: &BTreeMap<(String, i32), i64>,
    topics: &[String],
    prefix: &str,
) -> Result<HashSet<String>, KafkaError> {
    let consumer = reader(client)?;
    let mut found = HashSet::new();
    let ends = high_watermarks(client, topics.iter().map(String::as_str))?;
    // One partition at a time: a partition-EOF event names the partition but not the topic, and
    // some Kafka-protocol brokers answer many-partition fetches of old data slowly.
    for ((topic, partition), end) in &ends {
        let start = from.get(&(topic.clone(), *partition)).copied().unwrap_or(0);
        if start >= *end {
            continue;
        }
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, *partition, Offset::Offset(start))?;
        consumer.assign(&assignment)?;
        let mut last_progress = Instant::now();
        loop {
            let message = match consumer.poll(Duration::from_millis(200)) {
                None if last_progress.elapsed() > REQUEST_TIMEOUT => {
                    return Err(KafkaError::MessageConsumption(RDKafkaErrorCode::RequestTimedOut));
                }
                None => continue,
                // The end of the partition as the broker sees it now, at or past `end`; this also
                // covers a partition whose last offsets hold no record.
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(message) => message?,
            };
            last_progress = Instant::now();
            if message.offset() >= *end {
                break;
            }
            let reference = message
                .headers()
                .and_then(|headers| headers.iter().find(|h| h.key == SOURCE_REFERENCE).and_then(|h| h.value))
                .and_then(|value| std::str::from_utf8(value).ok());
            if let Some(reference) = reference.filter(|r| r.starts_with(prefix)) {
                found.insert(reference.to_owned());
            }
            if message.offset() + 1 >= *end {
                break;
            }
        }
    }
    consumer.unassign()?;
    Ok(found)
}

/// A consumer that only reads: no group membership, no commits.
fn reader(client: &ClientConfig) -> Result<BaseConsumer, KafkaError> {
    client
        .clone()
        .set("group.id", "sluice-file-import-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        // An offset the broker no longer holds (retention) means: from the oldest it has.
        .set("auto.offset.reset", "earliest")
        .create()
}
