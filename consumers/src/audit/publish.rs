//! Publishing the audit trail to the audit topic, so that governance teams can consume it (and
//! re-verify its chain) without access to the lake's state directory.
//!
//! The log file stays the authority: a record is durable there before the offsets it describes
//! are committed. Publishing copies every record after the last one already in the topic, in
//! order, one message per record keyed by its sequence number, under the `audit` Avro schema
//! ([`sluice_schemas::subjects::AUDIT`]). The topic has one partition, so its last message says
//! how far it has got; publishers sharing a state directory take turns under a lock there, so a
//! record is published once. A publisher that cannot reach the topic leaves the rest to the next
//! attempt, which starts again from the topic's end.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::Path,
    time::Duration,
};

use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    producer::{FutureProducer, FutureRecord},
};
use sluice_schemas::{
    Catalogue, Decoder, Encoder, Framing, SchemaVersion, apache_avro::types::Value as Avro, subjects,
};

use crate::{Error, Result};

/// How long to wait for the topic's last message or a delivery.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Copies new audit records to the audit topic.
pub struct AuditPublisher<'c> {
    /// Reads the topic's last record, to know where to resume; kept for every publish (landers
    /// publish every few seconds) and re-assigned to the topic's end each time.
    reader: BaseConsumer,
    /// The audit topic.
    topic: String,
    /// Idempotent producer for the records.
    producer: FutureProducer,
    /// Encodes records under the newest `audit` schema.
    encoder: Encoder<'c>,
    /// Reads the topic's last record back.
    decoder: Decoder<'c>,
    /// The newest `audit` schema.
    schema: &'c SchemaVersion,
}

impl<'c> AuditPublisher<'c> {
    /// A publisher to `topic`.
    pub fn new(client: &ClientConfig, topic: &str, catalogue: &'c Catalogue) -> Result<Self> {
        let mut config = client.clone();
        config.set("enable.idempotence", "true").set("acks", "all");
        let producer = config.create().map_err(|source| Error::CreateClient { role: "audit producer", source })?;
        let schema = catalogue
            .latest(subjects::AUDIT)
            .map_err(|e| Error::AuditPublish { topic: topic.to_owned(), reason: e.to_string() })?;
        let reader: BaseConsumer = client
            .clone()
            .set("enable.auto.commit", "false")
            .set("group.id", "sluice-audit-publisher")
            .create()
            .map_err(|source| Error::CreateClient { role: "audit reader", source })?;
        Ok(AuditPublisher {
            reader,
            topic: topic.to_owned(),
            producer,
            encoder: Encoder::new(catalogue, Framing::SingleObject),
            decoder: Decoder::new(catalogue),
            schema,
        })
    }

    /// Publishes every record of the log at `log` after the last one in the topic, under the
    /// publishing lock of the state directory `state_dir`; returns how many were published.
    /// Blocks: call it from blocking code.
    pub fn publish_new(&self, log: &Path, state_dir: &Path) -> Result<u64> {
        let _turn = crate::lake::audit_publish_lock(state_dir)?;
        let next = self.last_published()?.map_or(0, |sequence| sequence + 1);
        let failed = |reason: String| Error::AuditPublish { topic: self.topic.clone(), reason };
        let file = match File::open(log) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(error) => return Err(Error::write(log)(error)),
        };
        let mut deliveries = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line.map_err(Error::write(log))?;
            let Ok(record) = serde_json::from_str::<serde_json::Value>(&line) else {
                break; // a torn last record: the next lander start cuts it off and records that
            };
            let Some(sequence) = record["sequence"].as_u64() else { break };
            if sequence < next {
                continue;
            }
            let text = |key: &str| Avro::String(record[key].as_str().unwrap_or_default().to_owned());
            let value = Avro::Record(vec![
                ("sequence".to_owned(), Avro::Long(sequence as i64)),
                ("recorded_at".to_owned(), text("recorded_at")),
                ("kind".to_owned(), Avro::String(record["event"]["kind"].as_str().unwrap_or_default().to_owned())),
                ("previous".to_owned(), text("previous")),
                ("hash".to_owned(), text("hash")),
                ("record".to_owned(), Avro::String(line.clone())),
            ]);
            let payload = self.encoder.encode(self.schema, &value).map_err(|e| failed(e.to_string()))?;
            let key = sequence.to_string();
            let delivery = self
                .producer
                .send_result(FutureRecord::to(&self.topic).key(&key).payload(&payload))
                .map_err(|(error, _)| failed(error.to_string()))?;
            deliveries.push(delivery);
        }
        let published = deliveries.len() as u64;
        for delivery in deliveries {
            match futures::executor::block_on(delivery) {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => return Err(failed(error.to_string())),
                Err(_) => return Err(failed("the delivery was cancelled".to_owned())),
            }
        }
        Ok(published)
    }

    /// Sequence number of the last record in the topic, if any.
    fn last_published(&self) -> Result<Option<u64>> {
        let failed = |reason: String| Error::AuditPublish { topic: self.topic.clone(), reason };
        let consumer = &self.reader;
        let (_, high) = consumer.fetch_watermarks(&self.topic, 0, TIMEOUT).map_err(|e| failed(e.to_string()))?;
        if high <= 0 {
            return Ok(None);
        }
        let mut partitions = TopicPartitionList::new();
        partitions.add_partition_offset(&self.topic, 0, Offset::Offset(high - 1)).map_err(|e| failed(e.to_string()))?;
        consumer.assign(&partitions).map_err(|e| failed(e.to_string()))?;
        let deadline = std::time::Instant::now() + TIMEOUT;
        while std::time::Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) if message.offset() == high - 1 => {
                    let event = self
                        .decoder
                        .decode(message.payload().unwrap_or_default())
                        .map_err(|e| failed(e.to_string()))?;
                    return match crate::record::RecordView::new(&event.value).and_then(|r| r.get("sequence")) {
                        Some(Avro::Long(sequence)) => Ok(Some(*sequence as u64)),
                        _ => Err(failed("its last message has no sequence number".to_owned())),
                    };
                }
                Some(Ok(_)) | None => {}
                Some(Err(error)) => return Err(failed(error.to_string())),
            }
        }
        Err(failed("its last message could not be read in time".to_owned()))
    }
}
