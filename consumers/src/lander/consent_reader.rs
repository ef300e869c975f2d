//! Reading the consent topic: whole at start-up (landing holds until it is read), then
//! whatever arrives while landing runs.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    error::{KafkaError, KafkaResult, RDKafkaErrorCode},
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
    /// request can queue behind a long-polling fetch on the same connection; shared with the
    /// threads that ask while the lander works (see [`ConsentReader::ask_ends`]).
    end_offsets: Arc<BaseConsumer>,
    /// The consent topic's name.
    topic: String,
    /// The topic's partitions (all of them are read).
    partitions: Vec<i32>,
    /// Next offset to read per partition, once anything has been read from it.
    positions: HashMap<i32, i64>,
}

/// Where each consent partition ended when the lander asked, being found out on a thread of its
/// own; await it for the answer.
pub(super) struct ConsentEnds {
    /// The consent topic, to name in an error.
    topic: String,
    /// The request, running on a blocking thread.
    request: tokio::task::JoinHandle<Result<Vec<(i32, i64)>>>,
}

impl ConsentEnds {
    /// Ends already known, for tests of what awaits them.
    #[cfg(test)]
    pub(super) fn answered(ends: Vec<(i32, i64)>) -> Self {
        ConsentEnds { topic: "consent".to_owned(), request: tokio::task::spawn(async move { Ok(ends) }) }
    }

    /// The end offset of every consent partition, as the broker answered.
    pub(super) async fn answer(&mut self) -> Result<Vec<(i32, i64)>> {
        (&mut self.request).await.unwrap_or_else(|stopped| {
            Err(Error::ConsentUnavailable {
                topic: self.topic.clone(),
                reason: format!("the request for its end offsets stopped: {stopped}"),
            })
        })
    }
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
        let partitions: Vec<i32> = (0..partitions as i32).collect();
        let mut assignment = TopicPartitionList::new();
        for partition in &partitions {
            assignment
                .add_partition_offset(&config.consent_topic, *partition, Offset::Beginning)
                .map_err(|e| unavailable(e.to_string()))?;
        }
        consumer.assign(&assignment).map_err(|e| unavailable(e.to_string()))?;
        let end_offsets = consumer_config(client, &format!("{}-consent-ends", config.group_id))
            .create()
            .map_err(|source| Error::CreateClient { role: "consent end-offset reader", source })?;
        Ok(ConsentReader {
            consumer,
            end_offsets: Arc::new(end_offsets),
            topic: config.consent_topic.clone(),
            partitions,
            positions: HashMap::new(),
        })
    }

    /// Messages between the start and the end of the topic now (an upper bound on the changes
    /// the first catch-up applies), to size the consent store once rather than grow it.
    pub(super) fn backlog(&self) -> u64 {
        self.partitions
            .iter()
            .filter_map(|p| self.end_offsets.fetch_watermarks(&self.topic, *p, Duration::from_secs(5)).ok())
            .map(|(low, high)| (high - low).max(0) as u64)
            .sum()
    }

    /// Asks where every consent partition ends now, on a blocking thread, and returns at once;
    /// the lander keeps working and awaits the answer before releasing the events it had read
    /// when it asked. Broker outages are retried until `timeout`, then the answer is
    /// [`Error::ConsentUnavailable`].
    pub(super) fn ask_ends(&self, timeout: Duration) -> ConsentEnds {
        let (client, topic, partitions) = (self.end_offsets.clone(), self.topic.clone(), self.partitions.clone());
        let deadline = Instant::now() + timeout;
        let request = {
            let topic = topic.clone();
            tokio::task::spawn_blocking(move || ends_by(&client, &topic, &partitions, deadline))
        };
        ConsentEnds { topic, request }
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
        let deadline = Instant::now() + timeout;
        let ends = ends_by(&self.end_offsets, &self.topic, &self.partitions, deadline)?;
        self.read_to(&ends, decoder, state, deadline)
    }

    /// Reads every partition up to the given end offsets (from [`Self::ask_ends`]), applying
    /// each change: after this returns, every consent change acknowledged by Kafka before the
    /// ends were asked for is in force. Returns the number of changes applied.
    pub(super) fn read_to(
        &mut self,
        ends: &[(i32, i64)],
        decoder: &Decoder<'_>,
        state: &mut LandingState<'_>,
        deadline: Instant,
    ) -> Result<u64> {
        let unavailable = |reason: String| Error::ConsentUnavailable { topic: self.topic.clone(), reason };
        let mut remaining: HashMap<i32, i64> = HashMap::new();
        for &(partition, high) in ends {
            let position = match self.positions.get(&partition) {
                Some(position) => *position,
                // Nothing read from it yet: reading starts at its first offset still kept,
                // which only this slower request says.
                None if high > 0 => {
                    retry_until(deadline, &self.end_offsets, "consent topic start", || {
                        self.end_offsets.fetch_watermarks(&self.topic, partition, Duration::from_secs(5))
                    })
                    .map_err(|error| unavailable(error.to_string()))?
                    .0
                }
                None => continue,
            };
            if high > position {
                remaining.insert(partition, high);
            }
        }
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

/// Where each of `partitions` of `topic` ends now, retried until `deadline`: one ListOffsets
/// request for all of them (one per broker), where asking for each partition's watermarks in
/// turn costs two round trips per partition.
fn ends_by(client: &BaseConsumer, topic: &str, partitions: &[i32], deadline: Instant) -> Result<Vec<(i32, i64)>> {
    let started = Instant::now();
    let ends = retry_until(deadline, client, "consent topic end", || end_offsets(client, topic, partitions))
        .map_err(|error| Error::ConsentUnavailable { topic: topic.to_owned(), reason: error.to_string() })?;
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "consent topic ends read");
    Ok(ends)
}

fn end_offsets(client: &BaseConsumer, topic: &str, partitions: &[i32]) -> KafkaResult<Vec<(i32, i64)>> {
    let mut request = TopicPartitionList::new();
    for partition in partitions {
        request.add_partition_offset(topic, *partition, Offset::End)?;
    }
    let answer = client.offsets_for_times(request, Duration::from_secs(5))?;
    let mut ends = Vec::with_capacity(partitions.len());
    for element in answer.elements() {
        element.error()?;
        match element.offset() {
            Offset::Offset(end) => ends.push((element.partition(), end)),
            _ => return Err(KafkaError::OffsetFetch(RDKafkaErrorCode::OffsetOutOfRange)),
        }
    }
    if ends.len() != partitions.len() {
        return Err(KafkaError::OffsetFetch(RDKafkaErrorCode::UnknownPartition));
    }
    Ok(ends)
}

/// Calls `request` until it succeeds, the client fails for good, or `deadline` passes.
fn retry_until<T>(
    deadline: Instant,
    client: &BaseConsumer,
    what: &str,
    mut request: impl FnMut() -> KafkaResult<T>,
) -> KafkaResult<T> {
    loop {
        match request() {
            Ok(answer) => return Ok(answer),
            Err(error) if Instant::now() < deadline && client.client().fatal_error().is_none() => {
                warn!(%error, what, "not readable for now, retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(error) => return Err(error),
        }
    }
}
