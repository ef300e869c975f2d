//! The dead-letter topic: records that cannot be decoded or checked are copied there as they
//! were read, with the reason and where they came from in headers, and a checkpoint commits no
//! offset until every one of them is acknowledged.

use futures::{StreamExt, stream::FuturesUnordered};
use rdkafka::{
    ClientConfig, Message,
    message::{Header, OwnedHeaders},
    producer::{DeliveryFuture, FutureProducer, FutureRecord},
};

use crate::{Error, Result};

/// librdkafka's `message.max.bytes` for the dead-letter producer unless the client sets it.
/// A poison record is copied to the dead-letter topic as it was read, and librdkafka refuses
/// locally any message over its default of 1,000,000 bytes, less than a broker accepts
/// (1,048,588 by default): a record that another producer wrote within the broker's limit
/// would fail the lander at the same offset on every run, and landing would never get past
/// it. With this limit the broker's own `max.message.bytes` for the dead-letter topic decides.
const DEAD_LETTER_MAX_BYTES: &str = "16777216";

/// The lander's producer for the dead-letter topic.
pub(super) struct DeadLetters {
    /// The topic.
    topic: String,
    /// An idempotent producer that waits for every replica.
    producer: FutureProducer,
    /// Records sent and not yet acknowledged.
    in_flight: FuturesUnordered<DeliveryFuture>,
}

impl DeadLetters {
    /// A producer for `topic` on the lander's cluster.
    pub(super) fn new(client: &ClientConfig, topic: &str) -> Result<Self> {
        let mut config = client.clone();
        config.set("enable.idempotence", "true").set("acks", "all");
        if client.get("message.max.bytes").is_none() {
            config.set("message.max.bytes", DEAD_LETTER_MAX_BYTES);
        }
        let producer =
            config.create().map_err(|source| Error::CreateClient { role: "dead-letter producer", source })?;
        Ok(DeadLetters { topic: topic.to_owned(), producer, in_flight: FuturesUnordered::new() })
    }

    /// Sends a copy of `message` with `reason` (which never holds a field's value).
    pub(super) fn send(&mut self, message: &impl Message, reason: &str) -> Result<()> {
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let headers = OwnedHeaders::new()
            .insert(Header { key: "sluice.dead_letter.reason", value: Some(reason) })
            .insert(Header { key: "sluice.dead_letter.source_topic", value: Some(message.topic()) })
            .insert(Header { key: "sluice.dead_letter.source_partition", value: Some(&partition) })
            .insert(Header { key: "sluice.dead_letter.source_offset", value: Some(&offset) });
        let mut record = FutureRecord::to(&self.topic).payload(message.payload().unwrap_or_default()).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(source, _)| Error::DeadLetter { topic: self.topic.clone(), source })?;
        self.in_flight.push(delivery);
        Ok(())
    }

    /// Waits until every record sent is acknowledged; an error if any was not stored.
    pub(super) async fn drain(&mut self) -> Result<()> {
        while let Some(delivery) = self.in_flight.next().await {
            let topic = self.topic.clone();
            match delivery {
                Ok(Ok(_)) => {}
                Ok(Err((source, _))) => return Err(Error::DeadLetter { topic, source }),
                Err(_) => return Err(Error::DeadLetter { topic, source: rdkafka::error::KafkaError::Canceled }),
            }
        }
        Ok(())
    }
}
