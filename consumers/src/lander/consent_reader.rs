//! Reading the consent topic: whole at start-up (landing holds until it is read), then
//! whatever arrives while landing runs.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};
use sluice_schemas::Decoder;
use tracing::warn;

use super::{LanderConfig, consumer_config, state::LandingState};
use crate::{Error, Result};

/// Reads the consent topic and keeps the consent store up to date with it.
pub(super) struct ConsentReader {
    /// Assigned to every partition of the consent topic, no group commits.
    consumer: BaseConsumer,
    /// Asks for the topic's end offsets. A separate client, because on the reading client such a
    /// request can queue behind a long-polling fetch on the same connection.
    end_offsets: BaseConsumer,
    /// The consent topic's name.
    topic: String,
    /// Next offset to read per partition, once anything has been read from it.
    positions: HashMap<i32, i64>,
}

impl ConsentReader {
    pub(super) fn start(client: &ClientConfig, config: &LanderConfig) -> Result<Self> {
        let unavailable = |reason: String| Error::ConsentUnavailable { topic: config.consent_topic.clone(), reason };
        let consumer: BaseConsumer = consumer_config(client, &format!("{}-consent-reader", config.group_id))
            .create()
            .map_err(|source| Error::CreateClient { role: "consent reader", source })?;
        let timeout = Duration::from_secs(config.consent_load_timeout_secs.max(1));
        let metadata =
            consumer.fetch_metadata(Some(&config.consent_topic), timeout).map_err(|e| unavailable(e.to_string()))?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == config.consent_topic)
            .filter(|t| t.error().is_none())
            .map(|t| t.partitions().len())
            .filter(|n| *n > 0)
            .ok_or_else(|| unavailable("the topic does not exist".to_owned()))?;
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions as i32 {
            assignment
                .add_partition_offset(&config.consent_topic, partition, Offset::Beginning)
                .map_err(|e| unavailable(e.to_string()))?;
        }
        consumer.assign(&assignment).map_err(|e| unavailable(e.to_string()))?;
        let end_offsets = consumer_config(client, &format!("{}-consent-ends", config.group_id))
            .create()
            .map_err(|source| Error::CreateClient { role: "consent end-offset reader", source })?;
        Ok(ConsentReader { consumer, end_offsets, topic: config.consent_topic.clone(), positions: HashMap::new() })
    }

    /// Messages between the start and the end of the topic now (an upper bound on the changes
    /// the first catch-up applies), to size the consent store once rather than grow it.
    pub(super) fn backlog(&self) -> u64 {
        let Ok(assignment) = self.consumer.assignment() else { return 0 };
        assignment
            .elements()
            .iter()
            .filter_map(|e| self.end_offsets.fetch_watermarks(&self.topic, e.partition(), Duration::from_secs(5)).ok())
            .map(|(low, high)| (high - low).max(0) as u64)
            .sum()
    }

    /// Reads every partition up to the high watermark it has now, applying each change: after
    /// this returns, every consent change acknowledged by Kafka before the call is in force.
    /// Broker outages are retried until `timeout`; then landing holds with
    /// [`Error::ConsentUnavailable`]. Returns the number of changes applied.
    pub(super) fn catch_up(
        &mut self,
        decoder: &Decoder<'_>,
        state: &mut LandingState<'_>,
        timeout: Duration,
    ) -> Result<u64> {
        let started = Instant::now();
        let deadline = started + timeout;
        let unavailable = |reason: String| Error::ConsentUnavailable { topic: self.topic.clone(), reason };
        let assignment = self.consumer.assignment().map_err(|e| unavailable(e.to_string()))?;
        let mut remaining: HashMap<i32, i64> = HashMap::new();
        for element in assignment.elements() {
            let partition = element.partition();
            let (low, high) = loop {
                match self.end_offsets.fetch_watermarks(&self.topic, partition, Duration::from_secs(5)) {
                    Ok(watermarks) => break watermarks,
                    Err(error) if Instant::now() < deadline && self.end_offsets.client().fatal_error().is_none() => {
                        warn!(%error, "consent topic end not readable for now, retrying");
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    Err(error) => return Err(unavailable(error.to_string())),
                }
            };
            let position = self.positions.get(&partition).copied().unwrap_or(low).max(low);
            if high > position {
                remaining.insert(partition, high);
            }
        }
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            remaining = remaining.len(),
            "consent watermarks read"
        );
        let before = state.report.consent_changes + state.report.consent_dead_lettered;
        while !remaining.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(unavailable(format!("{} partitions not read to their end in time", remaining.len())));
            }
            match self.consumer.poll(left.min(Duration::from_millis(500))) {
                Some(Ok(message)) => {
                    state.handle_consent(decoder, &message)?;
                    let (partition, next) = (message.partition(), message.offset() + 1);
                    self.positions.insert(partition, next);
                    if remaining.get(&partition).is_some_and(|high| next >= *high) {
                        remaining.remove(&partition);
                    }
                }
                Some(Err(error)) => match self.consumer.client().fatal_error() {
                    Some((_, reason)) => return Err(unavailable(reason)),
                    None => warn!(%error, "consent topic not readable for now, retrying"),
                },
                None => {}
            }
        }
        Ok(state.report.consent_changes + state.report.consent_dead_lettered - before)
    }
}
