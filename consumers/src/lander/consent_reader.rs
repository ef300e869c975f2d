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

use super::{LanderConfig, consumer_config, state::LandingState};
use crate::{Error, Result};

/// Reads the consent topic: fully at start-up, then whatever is new.
pub(super) struct ConsentReader {
    /// Assigned to every partition of the consent topic, no group commits.
    consumer: BaseConsumer,
    /// The consent topic's name.
    topic: String,
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
        Ok(ConsentReader { consumer, topic: config.consent_topic.clone() })
    }

    /// Reads every partition up to the high watermark it had when reading started.
    pub(super) fn read_to_end(
        &self,
        decoder: &Decoder<'_>,
        state: &mut LandingState<'_>,
        timeout: Duration,
    ) -> Result<u64> {
        let unavailable = |reason: String| Error::ConsentUnavailable { topic: self.topic.clone(), reason };
        let deadline = Instant::now() + timeout;
        let assignment = self.consumer.assignment().map_err(|e| unavailable(e.to_string()))?;
        let mut remaining: HashMap<i32, i64> = HashMap::new();
        for element in assignment.elements() {
            let (low, high) = self
                .consumer
                .fetch_watermarks(&self.topic, element.partition(), timeout)
                .map_err(|e| unavailable(e.to_string()))?;
            if high > low {
                remaining.insert(element.partition(), high);
            }
        }
        let before = state.report.consent_changes;
        while !remaining.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(unavailable(format!("{} partitions not read to their end in time", remaining.len())));
            }
            match self.consumer.poll(left.min(Duration::from_millis(500))) {
                Some(Ok(message)) => {
                    state.handle_consent(decoder, &message)?;
                    if remaining.get(&message.partition()).is_some_and(|high| message.offset() + 1 >= *high) {
                        remaining.remove(&message.partition());
                    }
                }
                Some(Err(error)) => return Err(unavailable(error.to_string())),
                None => {}
            }
        }
        Ok(state.report.consent_changes - before)
    }

    /// Applies consent changes that arrived since the last call, without waiting.
    pub(super) fn apply_new(&self, decoder: &Decoder<'_>, state: &mut LandingState<'_>) -> Result<()> {
        while let Some(polled) = self.consumer.poll(Duration::ZERO) {
            match polled {
                Ok(message) => state.handle_consent(decoder, &message)?,
                Err(error) => match self.consumer.client().fatal_error() {
                    Some((_, reason)) => return Err(Error::ConsentUnavailable { topic: self.topic.clone(), reason }),
                    // A broker outage: clinical consumption pauses too; reading resumes with it.
                    None => {
                        tracing::warn!(%error, "consent topic not readable for now, retrying");
                        break;
                    }
                },
            }
        }
        Ok(())
    }
}
