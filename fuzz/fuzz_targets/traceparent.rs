//! Fuzzes the W3C `traceparent` header, read from HTTP requests (FHIR) and from Kafka headers
//! (the lander): parsing must never panic, and whatever it accepts must write back unchanged
//! (modulo surrounding spaces) and keep its ids through the OpenTelemetry span context.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_telemetry::TraceContext;

fuzz_target!(|header: &[u8]| {
    let Ok(header) = std::str::from_utf8(header) else { return };
    let Some(context) = TraceContext::parse(header) else { return };
    let written = context.header();
    assert_eq!(TraceContext::parse(&written), Some(context));
    assert_eq!(&written[..53], &header.trim()[..53], "version and ids are kept as sent");
    assert_eq!(TraceContext::from_span_context(&context.span_context(true)), Some(context));
    assert_eq!(context.child().trace_id(), context.trace_id());
});
