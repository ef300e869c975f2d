//! What producers record for OpenTelemetry (see `sluice_telemetry`): a `publish` span per
//! event, from hand-over to librdkafka to Kafka's acknowledgement, and counters of what was
//! acknowledged or refused. Labels are topics and adapter names only.

use std::{sync::LazyLock, time::Instant};

use opentelemetry::{
    KeyValue, global,
    metrics::{Counter, Histogram},
};
use sluice_telemetry::{SpanKind, StepSpan, TraceContext};

/// Events Kafka acknowledged, by topic and adapter.
static EVENTS_PUBLISHED: LazyLock<Counter<u64>> = LazyLock::new(|| {
    global::meter("sluice-producers")
        .u64_counter("sluice.producer.events.published")
        .with_description("Events Kafka acknowledged, by topic and source adapter")
        .with_unit("{event}")
        .build()
});

/// Events Kafka refused or never acknowledged, by topic.
static PUBLISH_FAILURES: LazyLock<Counter<u64>> = LazyLock::new(|| {
    global::meter("sluice-producers")
        .u64_counter("sluice.producer.publish.failures")
        .with_description("Events Kafka refused or did not acknowledge, by topic")
        .with_unit("{event}")
        .build()
});

/// Seconds from hand-over to Kafka's acknowledgement.
static PUBLISH_DURATION: LazyLock<Histogram<f64>> = LazyLock::new(|| {
    global::meter("sluice-producers")
        .f64_histogram("sluice.producer.publish.duration")
        .with_description("Seconds from handing an event to the Kafka client to its acknowledgement")
        .with_unit("s")
        .build()
});

/// Fields of accepted HL7 v2 messages left out of their events because their value could not be
/// used, by HL7 position (`hl7.field`, e.g. `PV1-10`): never the value.
pub(crate) static HL7_FIELDS_LEFT_OUT: LazyLock<Counter<u64>> = LazyLock::new(|| {
    global::meter("sluice-producers")
        .u64_counter("sluice.producer.hl7.fields_left_out")
        .with_description("Fields of accepted HL7 v2 messages left out of their events, by HL7 position")
        .with_unit("{field}")
        .build()
});

/// One event on its way to Kafka: its span and when it was handed over.
#[derive(Debug)]
pub(crate) struct PublishTrace {
    /// The `publish` span, ended at the acknowledgement.
    span: StepSpan,
    /// When the event was handed to librdkafka.
    submitted: Instant,
    /// Adapter that received it, for the metric label.
    adapter: &'static str,
}

impl PublishTrace {
    /// Starts the `publish` span of one event to `topic` as a child of `parent` (the source
    /// request's context), or as a new trace's root; returns it with the context the event's
    /// `traceparent` header must carry.
    pub(crate) fn start(topic: &str, adapter: &'static str, parent: Option<&TraceContext>) -> (Self, TraceContext) {
        let context = parent.map_or_else(TraceContext::new_root, TraceContext::child);
        let (span, context) = StepSpan::start(
            "publish",
            SpanKind::Producer,
            context,
            parent,
            vec![
                KeyValue::new("messaging.system", "kafka"),
                KeyValue::new("messaging.operation.type", "send"),
                KeyValue::new("messaging.destination.name", topic.to_owned()),
                KeyValue::new("sluice.source.adapter", adapter),
            ],
        );
        (PublishTrace { span, submitted: Instant::now(), adapter }, context)
    }

    /// Kafka stored the event at `partition` and `offset`.
    pub(crate) fn acknowledged(mut self, topic: &str, partition: i32, offset: i64) {
        if !sluice_telemetry::installed() {
            return;
        }
        let topic_label = KeyValue::new("messaging.destination.name", topic.to_owned());
        PUBLISH_DURATION.record(self.submitted.elapsed().as_secs_f64(), std::slice::from_ref(&topic_label));
        EVENTS_PUBLISHED.add(1, &[topic_label, KeyValue::new("sluice.source.adapter", self.adapter)]);
        if self.span.is_recording() {
            self.span.set_attributes([
                KeyValue::new("messaging.destination.partition.id", partition.to_string()),
                KeyValue::new("messaging.kafka.offset", offset),
            ]);
        }
        self.span.end();
    }

    /// Kafka refused the event, or the client gave up on it.
    pub(crate) fn failed(self, topic: &str, reason: String) {
        if !sluice_telemetry::installed() {
            return;
        }
        PUBLISH_FAILURES.add(1, &[KeyValue::new("messaging.destination.name", topic.to_owned())]);
        self.span.fail(reason);
    }
}

/// Starts the span of one source request (an HL7 message, a FHIR request, a file line) that an
/// adapter is answering: a child of the caller's context when the request carried one, else the
/// root of a new trace. The events it publishes become its children. Ends when dropped.
/// `kind` is `Server` for a request answered over the network, `Internal` for a file's line.
pub(crate) fn request_span(
    name: &'static str,
    kind: SpanKind,
    adapter: &'static str,
    caller: Option<TraceContext>,
) -> (StepSpan, TraceContext) {
    let context = caller.as_ref().map_or_else(TraceContext::new_root, TraceContext::child);
    StepSpan::start(name, kind, context, caller.as_ref(), vec![KeyValue::new("sluice.source.adapter", adapter)])
}
