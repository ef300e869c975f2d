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

use rdkafka::message::{Header, OwnedHeaders};

/// Header with the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// Header with the source's reference to the message, resource or line.
pub const SOURCE_REFERENCE: &str = "sluice.source.reference";
/// Header naming the adapter that received the event.
pub const SOURCE_ADAPTER: &str = "sluice.source.adapter";
/// Header with the reason a record went to the dead-letter topic.
pub const DEAD_LETTER_REASON: &str = "sluice.dead_letter.reason";

/// A W3C trace context: a trace id shared by everything that belongs to one source request and
/// a span id for the current step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// 16 random bytes, never all zero.
    trace_id: [u8; 16],
    /// 8 random bytes, never all zero.
    span_id: [u8; 8],
    /// Whether the trace is sampled (flag 01).
    sampled: bool,
}

impl TraceContext {
    /// Starts a new, sampled trace.
    pub fn new_root() -> Self {
        let mut rng = rand::rng();
        TraceContext { trace_id: non_zero(&mut rng), span_id: non_zero(&mut rng), sampled: true }
    }

    /// Reads a `traceparent` header; `None` when it is not a valid version-00 header, in which
    /// case the caller starts a new trace as the specification asks.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || version != "00" {
            return None;
        }
        let trace_id: [u8; 16] = lower_hex(trace)?.try_into().ok()?;
        let span_id: [u8; 8] = lower_hex(span)?.try_into().ok()?;
        let flags: [u8; 1] = lower_hex(flags)?.try_into().ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext { trace_id, span_id, sampled: flags[0] & 1 == 1 })
    }

    /// A new span in the same trace.
    pub fn child(&self) -> Self {
        TraceContext { span_id: non_zero(&mut rand::rng()), ..*self }
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id(&self) -> String {
        hex(&self.trace_id)
    }

    /// The `traceparent` header value.
    pub fn header(&self) -> String {
        format!("00-{}-{}-{:02x}", hex(&self.trace_id), hex(&self.span_id), u8::from(self.sampled))
    }
}

/// The headers of one published event.
pub fn event_headers(trace: &TraceContext, source_reference: &str, adapter: &str) -> OwnedHeaders {
    let traceparent = trace.header();
    OwnedHeaders::new()
        .insert(Header { key: TRACEPARENT, value: Some(&traceparent) })
        .insert(Header { key: SOURCE_REFERENCE, value: Some(source_reference) })
        .insert(Header { key: SOURCE_ADAPTER, value: Some(adapter) })
}

fn non_zero<const N: usize>(rng: &mut impl rand::Rng) -> [u8; N] {
    loop {
        let bytes: [u8; N] = rng.random();
        if bytes != [0; N] {
            return bytes;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn lower_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips_and_children_keep_the_trace() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::parse(header).expect("the specification's example");
        assert_eq!(context.header(), header);
        let child = context.child();
        assert_eq!(child.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(child.header(), header);
        assert!(TraceContext::parse(&TraceContext::new_root().header()).is_some());
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
    }
}
