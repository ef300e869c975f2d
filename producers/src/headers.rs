//! The Kafka headers every published event carries: where it came from and which trace it
//! belongs to. Neither ever contains a patient identifier.
//!
//! * `traceparent`: a W3C Trace Context header (`00-<trace id>-<span id>-<flags>`). An adapter
//!   continues the trace a source sent (an HTTP `traceparent` header) or starts a new one; each
//!   event gets its own span id in that trace, so a consumer can link the landed file back to the
//!   request that brought the event.
//! * `sluice.source.reference`: the source's own reference to what it sent, e.g.
//!   `hl7:PAS^RX1:MSG000123`, `fhir:Observation/5f1d...`, `file:admissions.ndjson:line=42`.
//!   Built from message control ids, resource ids and line numbers, never from patient data.
//! * `sluice.source.adapter`: which adapter received it (`hl7-mllp`, `fhir-http`, `file`,
//!   `synthetic`).
//! * `sluice.source.fields_left_out` (only when there are some): the positions of fields the
//!   source sent whose values could not be used, so the event carries them as null, e.g.
//!   `PV1-10,PID-8` for a local hospital-service code and a sex code outside HL7 table 0001.
//!   Positions only, never the values: the record of what was not mapped, kept with the event.

use rdkafka::message::{Header, OwnedHeaders};

/// Header with the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// Header with the source's reference to the message, resource or line.
pub const SOURCE_REFERENCE: &str = "sluice.source.reference";
/// Header naming the adapter that received the event.
pub const SOURCE_ADAPTER: &str = "sluice.source.adapter";
/// Header listing the positions of fields the source sent that the event leaves out.
pub const FIELDS_LEFT_OUT: &str = "sluice.source.fields_left_out";
/// Header with the reason a record went to the dead-letter topic.
pub const DEAD_LETTER_REASON: &str = "sluice.dead_letter.reason";
/// Header with the size in bytes of a refused input too large to keep whole on the dead-letter
/// topic; the record then holds its first [`crate::publisher::DEAD_LETTER_MAX_PAYLOAD_BYTES`].
pub const DEAD_LETTER_ORIGINAL_BYTES: &str = "sluice.dead_letter.original_bytes";

pub use sluice_telemetry::TraceContext;

/// The headers of one published event.
pub fn event_headers(trace: &TraceContext, source_reference: &str, adapter: &str) -> OwnedHeaders {
    let traceparent = trace.header();
    OwnedHeaders::new()
        .insert(Header { key: TRACEPARENT, value: Some(&traceparent) })
        .insert(Header { key: SOURCE_REFERENCE, value: Some(source_reference) })
        .insert(Header { key: SOURCE_ADAPTER, value: Some(adapter) })
}
