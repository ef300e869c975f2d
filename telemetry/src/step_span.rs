//! A span recorded under ids sluice chose itself: the span id written into an event's
//! `traceparent` header must be the id of the span exported for that step, so the next hop's
//! span finds its parent.

use std::{borrow::Cow, time::SystemTime};

use opentelemetry::{
    Context, KeyValue,
    trace::{Link, Span as _, SpanKind, Status, TraceContextExt, TraceId, Tracer as _},
};

use crate::{TraceContext, export::tracer};

/// One step of a trace; ends when [`StepSpan::end`] or [`StepSpan::fail`] is called (or when
/// dropped). Without telemetry installed it records nothing and costs nothing.
#[derive(Debug)]
#[must_use = "a span is exported when it ends"]
pub struct StepSpan {
    /// The recording span; `None` when telemetry is off or the trace is not sampled.
    span: Option<opentelemetry_sdk::trace::Span>,
}

impl StepSpan {
    /// Starts a span named `name` with `context`'s span id: a child of `parent` when given (a
    /// caller's or earlier hop's context), else the root of `context`'s trace, sampled as the
    /// configured sampler decides. Returns the span and `context` with the sampled flag decided,
    /// which is what headers must carry.
    pub fn start(
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        context: TraceContext,
        parent: Option<&TraceContext>,
        attributes: Vec<KeyValue>,
    ) -> (Self, TraceContext) {
        let Some(tracer) = tracer() else { return (StepSpan { span: None }, context) };
        let builder = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_span_id(context.span_context(false).span_id())
            .with_attributes(attributes);
        let span = match parent {
            Some(parent) => {
                builder.start_with_context(tracer, &Context::new().with_remote_span_context(parent.span_context(true)))
            }
            None => builder
                .with_trace_id(TraceId::from_bytes(context.span_context(false).trace_id().to_bytes()))
                .start_with_context(tracer, &Context::new()),
        };
        let sampled = span.span_context().is_sampled();
        (StepSpan { span: sampled.then_some(span) }, context.with_sampled(sampled))
    }

    /// Records a finished step after the fact: a span that started at `started`, under `parent`
    /// (a remote context, from a header), with `links` to related spans, ending now. Returns
    /// nothing: such a span has no children.
    pub fn record(
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        parent: &TraceContext,
        started: SystemTime,
        attributes: Vec<KeyValue>,
        links: &[TraceContext],
    ) {
        let Some(tracer) = tracer() else { return };
        if !parent.is_sampled() {
            return;
        }
        let links = links.iter().map(|link| Link::with_context(link.span_context(false))).collect();
        let mut span = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_start_time(started)
            .with_attributes(attributes)
            .with_links(links)
            .start_with_context(tracer, &Context::new().with_remote_span_context(parent.span_context(true)));
        span.end();
    }

    /// The span's context, to link other spans to; `None` when nothing is recorded.
    pub fn context(&self) -> Option<TraceContext> {
        self.span.as_ref().and_then(|span| TraceContext::from_span_context(span.span_context()))
    }

    /// Whether the span is being recorded (so building attributes for it is worth it).
    pub fn is_recording(&self) -> bool {
        self.span.is_some()
    }

    /// Adds attributes learnt during the step.
    pub fn set_attributes(&mut self, attributes: impl IntoIterator<Item = KeyValue>) {
        if let Some(span) = &mut self.span {
            span.set_attributes(attributes);
        }
    }

    /// Ends the step successfully.
    pub fn end(self) {
        drop(self);
    }

    /// Ends the step as failed, with a reason that never names a patient.
    pub fn fail(mut self, reason: impl Into<Cow<'static, str>>) {
        if let Some(span) = &mut self.span {
            span.set_status(Status::error(reason));
        }
    }
}

impl Drop for StepSpan {
    fn drop(&mut self) {
        if let Some(span) = &mut self.span {
            span.end();
        }
    }
}
