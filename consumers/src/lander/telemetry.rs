//! What the lander records for OpenTelemetry (see `sluice_telemetry`).
//!
//! * Metrics, counted when a checkpoint commits (so they agree with the audit log): events
//!   consumed per subject, landed per purpose, withheld per purpose and reason, dead-lettered;
//!   checkpoint latency (first event read to offsets committed) per partition; landed file sizes
//!   and rows; consumer lag per partition, from librdkafka's statistics.
//! * Spans, when telemetry is installed and the event's trace is sampled: a `land` span per
//!   event, child of the producer's `publish` span named in its `traceparent` header, from
//!   consumption to commit, saying which purposes received it and which withheld it (with the
//!   reason), and linked to the `write parquet` span of each file its partition landed at that
//!   checkpoint.
//!
//! Labels and attributes are topics, partitions, offsets, purposes, subjects, reason labels and
//! file keys: never a value from an event.

use std::{
    sync::LazyLock,
    time::{Duration, SystemTime},
};

use opentelemetry::{
    KeyValue, global,
    metrics::{Counter, Gauge, Histogram},
};
use rdkafka::{Message, message::Headers};
use sluice_telemetry::{SpanKind, StepSpan, TraceContext};

use super::LandingReport;

fn counter(name: &'static str, description: &'static str) -> Counter<u64> {
    global::meter("sluice-consumers").u64_counter(name).with_description(description).with_unit("{event}").build()
}

/// Clinical events consumed (and committed), by subject.
static EVENTS_CONSUMED: LazyLock<Counter<u64>> =
    LazyLock::new(|| counter("sluice.lander.events.consumed", "Clinical events consumed and committed, by subject"));
/// Rows landed, by purpose.
static EVENTS_LANDED: LazyLock<Counter<u64>> =
    LazyLock::new(|| counter("sluice.lander.events.landed", "Events landed as rows, by purpose"));
/// Events withheld, by purpose and reason.
static EVENTS_WITHHELD: LazyLock<Counter<u64>> =
    LazyLock::new(|| counter("sluice.lander.events.withheld", "Events withheld from a purpose, by purpose and reason"));
/// Events sent to the dead-letter topic.
static EVENTS_DEAD_LETTERED: LazyLock<Counter<u64>> = LazyLock::new(|| {
    counter(
        "sluice.lander.events.dead_lettered",
        "Clinical events sent to the dead-letter topic (undecodable or unroutable)",
    )
});
/// Offsets the group has not yet committed, per partition.
static CONSUMER_LAG: LazyLock<Gauge<i64>> = LazyLock::new(|| {
    global::meter("sluice-consumers")
        .i64_gauge("sluice.lander.consumer.lag")
        .with_description("Messages in a clinical partition after the group's committed offset")
        .with_unit("{message}")
        .build()
});
/// Seconds from a partition's first event read since its last checkpoint to the commit.
static CHECKPOINT_LATENCY: LazyLock<Histogram<f64>> = LazyLock::new(|| {
    global::meter("sluice-consumers")
        .f64_histogram("sluice.lander.checkpoint.latency")
        .with_description("Seconds from reading a partition's first uncommitted event to committing its offsets")
        .with_unit("s")
        .build()
});
/// Bytes of each landed Parquet file.
static FILE_SIZE: LazyLock<Histogram<u64>> = LazyLock::new(|| {
    global::meter("sluice-consumers")
        .u64_histogram("sluice.lander.file.size")
        .with_description("Bytes of each landed Parquet file, by purpose and subject")
        .with_unit("By")
        .with_boundaries(vec![1e3, 1e4, 1e5, 1e6, 4e6, 1.6e7, 6.4e7, 2.56e8, 1e9])
        .build()
});
/// Rows of each landed Parquet file.
static FILE_ROWS: LazyLock<Histogram<u64>> = LazyLock::new(|| {
    global::meter("sluice-consumers")
        .u64_histogram("sluice.lander.file.rows")
        .with_description("Rows of each landed Parquet file, by purpose and subject")
        .with_unit("{row}")
        .with_boundaries(vec![10.0, 100.0, 1e3, 1e4, 5e4, 1e5, 2.5e5, 1e6])
        .build()
});

/// Counts what one partition's committed checkpoint covered.
pub(super) fn record_committed(tally: &LandingReport, since_first_read: Duration) {
    for (subject, events) in &tally.consumed {
        EVENTS_CONSUMED.add(*events, &[KeyValue::new("sluice.subject", subject.clone())]);
    }
    for (purpose, events) in &tally.landed {
        EVENTS_LANDED.add(*events, &[KeyValue::new("sluice.purpose", purpose.clone())]);
    }
    for (purpose, reasons) in &tally.withheld {
        for (reason, events) in reasons {
            EVENTS_WITHHELD.add(
                *events,
                &[KeyValue::new("sluice.purpose", purpose.clone()), KeyValue::new("sluice.reason", reason.clone())],
            );
        }
    }
    if tally.dead_lettered > 0 {
        EVENTS_DEAD_LETTERED.add(tally.dead_lettered, &[]);
    }
    CHECKPOINT_LATENCY.record(since_first_read.as_secs_f64(), &[]);
}

/// Records one landed file's size.
pub(super) fn record_file(purpose: &str, subject: &str, bytes: u64, rows: u64) {
    let labels =
        [KeyValue::new("sluice.purpose", purpose.to_owned()), KeyValue::new("sluice.subject", subject.to_owned())];
    FILE_SIZE.record(bytes, &labels);
    FILE_ROWS.record(rows, &labels);
}

/// Records the lag of each assigned clinical partition: its high watermark, from librdkafka's
/// statistics JSON, less the offset this lander last committed for it (`committed`), or the
/// committed offset librdkafka reports when this lander has not committed it yet. Only the
/// fields needed are read from the JSON.
pub(super) fn record_lag(statistics: &[u8], committed: impl Fn(&str, i32) -> Option<i64>) {
    let Ok(statistics) = serde_json::from_slice::<serde_json::Value>(statistics) else { return };
    let Some(topics) = statistics["topics"].as_object() else { return };
    for (topic, details) in topics {
        let Some(partitions) = details["partitions"].as_object() else { continue };
        for (partition, details) in partitions {
            // -1 is librdkafka's internal unassigned partition.
            let Ok(number) = partition.parse::<i32>() else { continue };
            let high = details["hi_offset"].as_i64().unwrap_or(-1);
            let reported = details["committed_offset"].as_i64().filter(|offset| *offset >= 0);
            let Some(committed) = committed(topic, number).or(reported) else { continue };
            if number < 0 || high < 0 {
                continue;
            }
            let lag = (high - committed).max(0);
            CONSUMER_LAG.record(
                lag,
                &[
                    KeyValue::new("messaging.destination.name", topic.clone()),
                    KeyValue::new("messaging.destination.partition.id", partition.clone()),
                ],
            );
        }
    }
}

/// How often librdkafka reports statistics (for the lag) when telemetry is exported.
pub(super) const STATISTICS_INTERVAL_MS: &str = "1000";

/// One consumed event whose trace is sampled, waiting for its partition's commit to record its
/// `land` span.
#[derive(Debug)]
pub(super) struct TracedEvent {
    /// The producer's context, from the `traceparent` header: the span's parent.
    parent: TraceContext,
    /// The event's offset.
    offset: i64,
    /// When it was consumed: the span's start.
    read_at: SystemTime,
    /// What became of it, as span attributes.
    outcome: Vec<KeyValue>,
    /// The files its rows go to: (purpose index, landed day), as in the pending files' keys.
    pub(super) files: Vec<(usize, Option<i32>)>,
}

/// Most traced events held per partition between checkpoints: beyond it events go untraced,
/// so tracing never holds more than a bounded amount of memory.
pub(super) const MAX_TRACED_PER_PARTITION: usize = 100_000;

/// The event's trace state, when telemetry is exported and its `traceparent` is sampled.
/// `outcome` is only called then.
pub(super) fn trace_event(
    message: &impl Message,
    outcome: impl FnOnce() -> (Vec<KeyValue>, Vec<(usize, Option<i32>)>),
) -> Option<TracedEvent> {
    if !sluice_telemetry::installed() {
        return None;
    }
    let headers = message.headers()?;
    let parent = headers
        .iter()
        .find(|header| header.key == "traceparent")
        .and_then(|header| std::str::from_utf8(header.value?).ok())
        .and_then(TraceContext::parse)
        .filter(TraceContext::is_sampled)?;
    let (outcome, files) = outcome();
    Some(TracedEvent { parent, offset: message.offset(), read_at: SystemTime::now(), outcome, files })
}

/// Records the `land` spans of a partition's committed events, each linked to the `write
/// parquet` spans of the files its rows went to (`file_span` finds them).
pub(super) fn record_landed(
    topic: &str,
    partition: i32,
    events: Vec<TracedEvent>,
    file_span: impl Fn(usize, Option<i32>) -> Option<TraceContext>,
) {
    for event in events {
        let links: Vec<TraceContext> = event.files.iter().filter_map(|(index, day)| file_span(*index, *day)).collect();
        let mut attributes = vec![
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.operation.type", "process"),
            KeyValue::new("messaging.destination.name", topic.to_owned()),
            KeyValue::new("messaging.destination.partition.id", partition.to_string()),
            KeyValue::new("messaging.kafka.offset", event.offset),
        ];
        attributes.extend(event.outcome);
        StepSpan::record("land", SpanKind::Consumer, &event.parent, event.read_at, attributes, &links);
    }
}

/// Starts the span of one checkpoint, parent of its `write parquet` spans.
pub(super) fn checkpoint_span(partitions: usize) -> (StepSpan, TraceContext) {
    StepSpan::start(
        "checkpoint",
        SpanKind::Internal,
        TraceContext::new_root(),
        None,
        vec![KeyValue::new("sluice.partitions", i64::try_from(partitions).unwrap_or(i64::MAX))],
    )
}

/// Starts the span of writing one file, under the checkpoint's span.
pub(super) fn file_span(checkpoint: &TraceContext, key: &str) -> StepSpan {
    StepSpan::start(
        "write parquet",
        SpanKind::Internal,
        checkpoint.child(),
        Some(checkpoint),
        vec![KeyValue::new("sluice.file", key.to_owned())],
    )
    .0
}
