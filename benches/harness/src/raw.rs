//! The ceiling: a bare librdkafka consumer reading partitions from the beginning to a known end,
//! counting messages and their bytes and doing nothing else with them.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};

use super::{Measurement, PROGRESS_EVERY, consumer_client};

/// Longest wait for the next message before the read is given up.
const STALL_LIMIT: Duration = Duration::from_secs(60);

/// Reads every partition in `ends` (topic, partition -> high watermark) from its beginning up to
/// its end.
pub fn consume_to_end(client: &ClientConfig, ends: &BTreeMap<(String, i32), i64>) -> Result<Measurement, String> {
    let consumer: BaseConsumer = consumer_client(client, "sluice-bench-raw")
        .create()
        .map_err(|e| format!("cannot create the raw consumer: {e}"))?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for ((topic, partition), end) in ends {
        if *end > 0 {
            assignment
                .add_partition_offset(topic, *partition, Offset::Beginning)
                .map_err(|e| format!("cannot assign {topic}/{partition}: {e}"))?;
            remaining.insert((topic.clone(), *partition), *end);
        }
    }
    consumer.assign(&assignment).map_err(|e| format!("cannot assign the partitions: {e}"))?;
    let started = Instant::now();
    let mut measured = Measurement::default();
    let mut last_message = Instant::now();
    let mut last_progress = Instant::now();
    while !remaining.is_empty() {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            if last_message.elapsed() > STALL_LIMIT {
                return Err(format!(
                    "no message for {} s with {} partitions unfinished",
                    STALL_LIMIT.as_secs(),
                    remaining.len()
                ));
            }
            continue;
        };
        let message = message.map_err(|e| format!("raw consume: {e}"))?;
        last_message = Instant::now();
        measured.events += 1;
        measured.bytes += message.payload_len() as u64;
        let key = (message.topic().to_owned(), message.partition());
        if remaining.get(&key).is_some_and(|end| message.offset() + 1 >= *end) {
            remaining.remove(&key);
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            eprintln!("bench:   {} messages read", measured.events);
        }
    }
    measured.elapsed = started.elapsed();
    Ok(measured)
}
