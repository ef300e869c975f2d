//! W3C Trace Context: the `traceparent` value every published event carries in its Kafka
//! headers, so a trace runs from the source's request, through the producer and the broker, to
//! the lander and the file the event landed in.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// A W3C trace context: a trace id shared by everything that belongs to one source request and
/// a span id for the current step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// 16 random bytes, never all zero.
    trace_id: [u8; 16],
    /// 8 random bytes, never all zero.
    span_id: [u8; 8],
    /// Whether the trace is sampled (flag 01): only sampled traces are recorded.
    sampled: bool,
}

impl TraceContext {
    /// Starts a new, sampled trace. When telemetry is exported, the first span recorded with it
    /// applies the configured sampler and says whether it stays sampled (see
    /// [`crate::StepSpan::start`]).
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

    /// The same context with the sampled flag set as given.
    pub fn with_sampled(self, sampled: bool) -> Self {
        TraceContext { sampled, ..self }
    }

    /// Whether the trace is sampled.
    pub fn is_sampled(&self) -> bool {
        self.sampled
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lower-case hex digits.
    pub fn span_id(&self) -> String {
        hex(&self.span_id)
    }

    /// The `traceparent` header value.
    pub fn header(&self) -> String {
        format!("00-{}-{}-{:02x}", hex(&self.trace_id), hex(&self.span_id), u8::from(self.sampled))
    }

    /// The OpenTelemetry span context; `remote` when it came from another process (a header).
    pub fn span_context(&self, remote: bool) -> SpanContext {
        let flags = if self.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.span_id),
            flags,
            remote,
            TraceState::default(),
        )
    }

    /// The context of an OpenTelemetry span; `None` for an invalid (never recorded) one.
    pub fn from_span_context(context: &SpanContext) -> Option<Self> {
        context.is_valid().then(|| TraceContext {
            trace_id: context.trace_id().to_bytes(),
            span_id: context.span_id().to_bytes(),
            sampled: context.is_sampled(),
        })
    }
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
        let unsampled = context.with_sampled(false);
        assert_eq!(unsampled.header(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    }

    #[test]
    fn the_opentelemetry_span_context_carries_the_same_ids() {
        let context = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let span_context = context.span_context(true);
        assert_eq!(span_context.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span_context.span_id().to_string(), "00f067aa0ba902b7");
        assert!(span_context.is_sampled() && span_context.is_remote());
        assert_eq!(TraceContext::from_span_context(&span_context), Some(context));
        assert_eq!(TraceContext::from_span_context(&SpanContext::empty_context()), None);
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
