//! Publishing framed events to Kafka, idempotently and in patient order.
//!
//! Following rust-rdkafka's at-least-once example, nothing is reported as published until Kafka
//! has acknowledged it: [`EventPublisher::publish_all`] keeps at most
//! [`PublisherConfig::max_in_flight`] events unacknowledged, awaits every acknowledgement, and
//! stops at the first failure. With `enable.idempotence=true` and `acks=all` a retried send is
//! never written twice and never reordered within a partition.

use std::{collections::BTreeMap, collections::HashMap, time::Duration};

use futures::channel::oneshot::Canceled;
use futures::{StreamExt, stream::FuturesUnordered};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::{
    ClientConfig,
    error::{KafkaError, RDKafkaErrorCode},
    producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer, future_producer::OwnedDeliveryResult},
};
use serde::{Deserialize, Serialize};
use sluice_schemas::{Catalogue, Encoder, Framing};

use crate::clinical::SubjectRecord;
use crate::headers::{self, TraceContext};
use crate::telemetry::PublishTrace;
use crate::{Error, Result, SyntheticEvent};

/// How the publisher behaves, apart from the broker connection (which comes as a librdkafka
/// client configuration so TLS, SASL and any other client setting pass through unchanged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherConfig {
    /// The most events handed to librdkafka and not yet acknowledged. Bounds memory and the
    /// amount of work to redo after a crash.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// How long to wait for outstanding acknowledgements when flushing, in seconds.
    #[serde(default = "default_flush_timeout_secs")]
    pub flush_timeout_secs: u64,
    /// Framing of every message value.
    #[serde(default)]
    pub framing: Framing,
    /// For Confluent framing with an estate's own schema registry: its id for each catalogued
    /// version, by fingerprint (see `sluice_registry::ids_for_producing`). Empty: the
    /// catalogue's ids, which `sluice registry serve` gives.
    #[serde(default)]
    pub schema_ids: std::collections::BTreeMap<u64, u32>,
}

fn default_max_in_flight() -> usize {
    20_000
}
fn default_flush_timeout_secs() -> u64 {
    60
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            max_in_flight: default_max_in_flight(),
            flush_timeout_secs: default_flush_timeout_secs(),
            framing: Framing::default(),
            schema_ids: std::collections::BTreeMap::new(),
        }
    }
}

/// What Kafka acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Acknowledged events per subject.
    pub per_subject: BTreeMap<String, u64>,
}

impl PublishReport {
    /// All acknowledged events.
    pub fn total(&self) -> u64 {
        self.per_subject.values().sum()
    }
}

/// Most bytes of a refused input kept on the dead-letter topic: under librdkafka's default
/// `message.max.bytes` (1,000,000) and a broker's default limit (1,048,588), with room for the
/// headers.
pub const DEAD_LETTER_MAX_PAYLOAD_BYTES: usize = 900_000;

/// An idempotent Kafka producer for catalogue events.
pub struct EventPublisher<'c> {
    /// The librdkafka producer.
    producer: FutureProducer,
    /// Encodes and frames records.
    encoder: Encoder<'c>,
    /// Where schema versions are looked up.
    catalogue: &'c Catalogue,
    /// Topic of each subject.
    topics: HashMap<String, String>,
    /// Behaviour settings.
    config: PublisherConfig,
    /// Where adapters send what fails validation; `None` refuses dead letters.
    dead_letter_topic: Option<String>,
}

/// A record handed to librdkafka and not yet acknowledged by Kafka.
#[must_use = "a delivery is only done once acknowledged"]
pub struct PendingDelivery {
    /// The topic it is for.
    topic: String,
    /// librdkafka's delivery report.
    delivery: DeliveryFuture,
    /// The record's `publish` span and latency clock.
    trace: PublishTrace,
}

impl PendingDelivery {
    /// Waits for Kafka: where it stored the record, or why it did not.
    pub async fn acknowledged(self) -> Result<Acknowledged> {
        let settled = settle(&self.topic, self.delivery.await);
        match &settled {
            Ok(stored) => self.trace.acknowledged(&self.topic, stored.partition, stored.offset),
            Err(error) => self.trace.failed(&self.topic, error.to_string()),
        }
        settled
    }
}

/// Where Kafka stored an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// Who sent a record and in which trace: the headers that go with it.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The source's reference to the message, resource or line (see [`crate::headers`]).
    pub source_reference: &'a str,
    /// The adapter, e.g. `hl7-mllp`.
    pub adapter: &'static str,
    /// The trace of the source request; each record gets a child span of it.
    pub trace: &'a TraceContext,
    /// Positions of fields the source sent but the events leave out because their value could
    /// not be used (e.g. `PV1-10`), for the `sluice.source.fields_left_out` header; empty for none.
    pub fields_left_out: &'a [&'static str],
}

impl<'c> EventPublisher<'c> {
    /// Creates a publisher. `client` carries the broker address and any librdkafka settings;
    /// the delivery guarantees (idempotence, `acks=all`) are always set on top of it.
    pub fn new(
        client: &ClientConfig,
        catalogue: &'c Catalogue,
        topics: HashMap<String, String>,
        config: PublisherConfig,
    ) -> Result<Self> {
        let mut client = client.clone();
        client
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // The Java client's partitioner, so keys land where other Kafka producers put them.
            .set("partitioner", "murmur2_random");
        for (key, default) in
            [("linger.ms", "5"), ("compression.type", "lz4"), ("queue.buffering.max.messages", "100000")]
        {
            if client.get(key).is_none() {
                client.set(key, default);
            }
        }
        let producer: FutureProducer = client.create().map_err(Error::CreateProducer)?;
        Ok(EventPublisher {
            producer,
            encoder: Encoder::new(catalogue, config.framing).with_schema_ids(config.schema_ids.clone()),
            catalogue,
            topics,
            config,
            dead_letter_topic: None,
        })
    }

    /// Sends records that fail validation to `topic`, with the reason in a header.
    pub fn with_dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.dead_letter_topic = Some(topic.into());
        self
    }

    /// Publishes the records of one source message together and waits until Kafka has
    /// acknowledged every one of them: only then may the adapter acknowledge the source. On an
    /// error some records may have been stored; their event ids are stable, so when the source
    /// resends, the duplicates carry the same ids.
    pub async fn publish_records(&self, records: &[SubjectRecord], origin: Origin<'_>) -> Result<Vec<Acknowledged>> {
        let records: Vec<(&SubjectRecord, Origin<'_>)> = records.iter().map(|record| (record, origin)).collect();
        self.publish_each(&records).await
    }

    /// Like [`publish_records`](Self::publish_records), for records from several source
    /// references (the resources of a FHIR Bundle): each record with its own origin.
    pub async fn publish_each(&self, records: &[(&SubjectRecord, Origin<'_>)]) -> Result<Vec<Acknowledged>> {
        let mut pending = Vec::with_capacity(records.len());
        for (record, origin) in records {
            pending.push(self.submit(record, *origin).await?);
        }
        let mut acknowledged = Vec::with_capacity(pending.len());
        for delivery in pending {
            acknowledged.push(delivery.acknowledged().await?);
        }
        Ok(acknowledged)
    }

    /// Hands one record to librdkafka without waiting for Kafka: the returned
    /// [`PendingDelivery`] resolves when Kafka has acknowledged it. For adapters that keep many
    /// records in flight (batch files) and track acknowledgements themselves.
    pub async fn submit(&self, record: &SubjectRecord, origin: Origin<'_>) -> Result<PendingDelivery> {
        let topic = self.topics.get(record.subject()).ok_or_else(|| Error::NoTopic(record.subject().to_owned()))?;
        let version = self.catalogue.version(record.subject(), record.version())?;
        let payload = self.encoder.encode(version, record.value())?;
        let (trace, context) = PublishTrace::start(topic, origin.adapter, Some(origin.trace));
        let mut headers = headers::event_headers(&context, origin.source_reference, origin.adapter);
        if !origin.fields_left_out.is_empty() {
            let left_out = origin.fields_left_out.join(",");
            headers = headers.insert(Header { key: headers::FIELDS_LEFT_OUT, value: Some(&left_out) });
        }
        let delivery = self.send(topic, Some(record.key()), &payload, headers).await?;
        Ok(PendingDelivery { topic: topic.clone(), delivery, trace })
    }

    /// Stores a record that could not be published on the dead-letter topic: the payload as the
    /// source sent it, the reason and the source reference in headers. Waits for Kafka's
    /// acknowledgement so the adapter answers the source only once nothing can be lost.
    ///
    /// A payload over [`DEAD_LETTER_MAX_PAYLOAD_BYTES`] (a refused MLLP message or FHIR body can
    /// be larger than a Kafka record may be) is kept as its first that many bytes, its full size
    /// in the `sluice.dead_letter.original_bytes` header and said in the reason. Otherwise Kafka
    /// would refuse the dead letter on every attempt and the source, told to send again, would
    /// never learn that the input itself is refused.
    pub async fn dead_letter(&self, payload: &[u8], reason: &str, origin: Origin<'_>) -> Result<Acknowledged> {
        self.submit_dead_letter(payload, reason, origin).await?.acknowledged().await
    }

    /// Hands a dead letter to librdkafka without waiting for Kafka (see [`dead_letter`](Self::dead_letter)).
    pub async fn submit_dead_letter(
        &self,
        payload: &[u8],
        reason: &str,
        origin: Origin<'_>,
    ) -> Result<PendingDelivery> {
        let topic = self.dead_letter_topic.as_deref().ok_or_else(|| Error::NoTopic("dead letters".to_owned()))?;
        let (trace, context) = PublishTrace::start(topic, origin.adapter, Some(origin.trace));
        let mut headers = headers::event_headers(&context, origin.source_reference, origin.adapter);
        let (kept, original_bytes) = match payload.len() {
            size if size > DEAD_LETTER_MAX_PAYLOAD_BYTES => (&payload[..DEAD_LETTER_MAX_PAYLOAD_BYTES], Some(size)),
            _ => (payload, None),
        };
        let reason = match original_bytes {
            Some(size) => {
                format!("{reason}; kept here cut to its first {DEAD_LETTER_MAX_PAYLOAD_BYTES} of {size} bytes")
            }
            None => reason.to_owned(),
        };
        headers = headers.insert(Header { key: headers::DEAD_LETTER_REASON, value: Some(&reason) });
        if let Some(size) = original_bytes {
            headers =
                headers.insert(Header { key: headers::DEAD_LETTER_ORIGINAL_BYTES, value: Some(&size.to_string()) });
        }
        let delivery = self.send(topic, None, kept, headers).await?;
        Ok(PendingDelivery { topic: topic.to_owned(), delivery, trace })
    }

    /// Every topic this publisher may write to: the subjects' and the dead-letter topic.
    pub fn topic_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.topics.values().cloned().chain(self.dead_letter_topic.clone()).collect();
        names.sort();
        names.dedup();
        names
    }

    /// Hands one message to librdkafka, waiting while its local queue is full.
    async fn send(
        &self,
        topic: &str,
        key: Option<&str>,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> Result<DeliveryFuture> {
        loop {
            let mut record = FutureRecord::to(topic).payload(payload).headers(headers.clone());
            if let Some(key) = key {
                record = record.key(key);
            }
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((source, _)) => return Err(Error::Delivery { topic: topic.to_owned(), source }),
            }
        }
    }

    /// Publishes every event, waiting for Kafka to acknowledge each. `on_acknowledged` is called
    /// with the running count, for progress output. Stops at the first event Kafka refuses.
    pub async fn publish_all(
        &self,
        events: impl IntoIterator<Item = SyntheticEvent>,
        on_acknowledged: impl FnMut(u64),
    ) -> Result<PublishReport> {
        let mut pending =
            Acknowledgements { in_flight: FuturesUnordered::new(), report: PublishReport::default(), on_acknowledged };
        for event in events {
            if pending.in_flight.len() >= self.config.max_in_flight.max(1) {
                pending.settle_one().await?;
            }
            let topic = self.topics.get(event.subject()).ok_or_else(|| Error::NoTopic(event.subject().to_owned()))?;
            let version = self.catalogue.version(event.subject(), event.version())?;
            let payload = self.encoder.encode(version, event.value())?;
            let source_reference = format!("synthetic:{}", event.truth.event_id);
            let (trace, context) = PublishTrace::start(topic, "synthetic", None);
            let headers = headers::event_headers(&context, &source_reference, "synthetic");
            let delivery = loop {
                let record = FutureRecord::to(topic).key(event.key()).payload(&payload).headers(headers.clone());
                match self.producer.send_result(record) {
                    Ok(delivery) => break delivery,
                    // librdkafka's local queue is full: make room by waiting for acknowledgements.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                        if !pending.in_flight.is_empty() =>
                    {
                        pending.settle_one().await?;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((source, _)) => return Err(Error::Delivery { topic: topic.clone(), source }),
                }
            };
            pending.in_flight.push(tagged(event.subject(), topic.clone(), delivery, trace));
        }
        while !pending.in_flight.is_empty() {
            pending.settle_one().await?;
        }
        self.flush()?;
        Ok(pending.report)
    }

    /// Waits until librdkafka has no unacknowledged message left.
    pub fn flush(&self) -> Result<()> {
        let seconds = self.config.flush_timeout_secs;
        self.producer.flush(Duration::from_secs(seconds)).map_err(|source| Error::Flush { seconds, source })
    }
}

/// Where Kafka stored a message, or why it did not.
fn settle(topic: &str, outcome: DeliveryOutcome) -> Result<Acknowledged> {
    match outcome {
        Ok(Ok(delivery)) => {
            Ok(Acknowledged { topic: topic.to_owned(), partition: delivery.partition, offset: delivery.offset })
        }
        Ok(Err((source, _message))) => Err(Error::Delivery { topic: topic.to_owned(), source }),
        Err(Canceled) => Err(Error::Delivery { topic: topic.to_owned(), source: KafkaError::Canceled }),
    }
}

/// The outcome of one delivery future.
type DeliveryOutcome = std::result::Result<OwnedDeliveryResult, Canceled>;

/// A delivery future that remembers the subject and topic it is for.
async fn tagged(
    subject: &'static str,
    topic: String,
    delivery: DeliveryFuture,
    trace: PublishTrace,
) -> (&'static str, String, DeliveryOutcome) {
    let outcome = delivery.await;
    match &outcome {
        Ok(Ok(delivery)) => trace.acknowledged(&topic, delivery.partition, delivery.offset),
        Ok(Err((error, _))) => trace.failed(&topic, error.to_string()),
        Err(Canceled) => trace.failed(&topic, KafkaError::Canceled.to_string()),
    }
    (subject, topic, outcome)
}

/// Events handed to librdkafka and not yet acknowledged, and what has been acknowledged so far.
struct Acknowledgements<F, P> {
    /// Delivery futures of unacknowledged events.
    in_flight: FuturesUnordered<F>,
    /// Acknowledged events per subject.
    report: PublishReport,
    /// Progress callback, given the running total.
    on_acknowledged: P,
}

impl<F, P> Acknowledgements<F, P>
where
    F: Future<Output = (&'static str, String, DeliveryOutcome)>,
    P: FnMut(u64),
{
    /// Waits for the next acknowledgement; a refusal is an error.
    async fn settle_one(&mut self) -> Result<()> {
        let (subject, topic, outcome) = self.in_flight.next().await.expect("called with events in flight");
        match outcome {
            Ok(Ok(_delivery)) => {
                *self.report.per_subject.entry(subject.to_owned()).or_default() += 1;
                (self.on_acknowledged)(self.report.total());
                Ok(())
            }
            Ok(Err((source, _message))) => Err(Error::Delivery { topic, source }),
            Err(Canceled) => Err(Error::Delivery { topic, source: KafkaError::Canceled }),
        }
    }
}
