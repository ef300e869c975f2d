//! Telemetry for sluice: W3C trace context in Kafka headers, and OpenTelemetry traces, metrics
//! and logs exported over OTLP/HTTP when a collector is configured.
//!
//! # What is recorded
//!
//! * **Traces.** Every published event carries a `traceparent` header ([`TraceContext`]). A
//!   source adapter records a span for the request it answered (an HL7 message, a FHIR request,
//!   a batch-file line), continuing the caller's trace if the request came with one; the
//!   publisher records a `publish` span per event, from hand-over to Kafka's acknowledgement;
//!   the lander records a `land` span per event, child of its `publish` span, from consumption
//!   to the commit of its offset, linked to a `write parquet` span per file its rows went to.
//!   So a trace runs from the source's request to the landed file.
//! * **Metrics.** Events in, landed, withheld (per purpose and reason) and dead-lettered;
//!   consumer lag per partition; checkpoint latency; landed file sizes; producer acknowledgements
//!   and their latency. Instruments are created by the crates that record them.
//! * **Logs.** The `tracing` events the commands log, exported as OTLP log records through
//!   [`Telemetry::log_layer`], in addition to stderr (as text or JSON lines).
//!
//! Nothing in any of them identifies a patient: attributes and labels are topics, partitions,
//! offsets, purposes, subjects, reasons, file keys and counts. `tests/telemetry.rs` checks this
//! by scanning everything an end-to-end run emits for the identifiers it was given.
//!
//! # Configuring
//!
//! Nothing is exported, and no span is built, unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set
//! ([`TelemetryConfig::from_env`]). The usual `OTEL_*` variables apply: `OTEL_SERVICE_NAME`,
//! `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf` or `http/json`), `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` (sample a share of new traces),
//! `OTEL_BSP_MAX_QUEUE_SIZE` (spans held for export; beyond it spans are dropped, never
//! waited for) and `OTEL_METRIC_EXPORT_INTERVAL`.
//!
//! ```
//! use sluice_telemetry::{TelemetryConfig, TraceContext};
//!
//! // Without an endpoint nothing is installed and recording costs nothing.
//! let config = TelemetryConfig { endpoint: None, ..TelemetryConfig::from_env("sluice").unwrap() };
//! assert!(sluice_telemetry::install(&config).unwrap().is_none());
//!
//! // Headers still carry a trace context, so a later hop can continue the trace.
//! let request = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
//! let event = request.child();
//! assert_eq!(event.trace_id(), request.trace_id());
//! ```

mod export;
mod http_client;
mod step_span;
mod trace_context;

pub use export::{OtlpProtocol, Telemetry, TelemetryConfig, install, installed};
pub use opentelemetry::{KeyValue, trace::SpanKind};
pub use step_span::StepSpan;
pub use trace_context::TraceContext;

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An `OTEL_*` environment variable has a value sluice cannot use.
    #[error("{variable}: {reason}")]
    Config {
        /// The variable.
        variable: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// An OTLP exporter could not be built.
    #[error("cannot build the OTLP {signal} exporter: {source}")]
    Exporter {
        /// `traces`, `metrics` or `logs`.
        signal: &'static str,
        /// The exporter's reason.
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// [`install`] was called twice in one process.
    #[error("telemetry is already installed in this process")]
    AlreadyInstalled,
    /// Flushing at shutdown failed: what was still queued may not have reached the collector.
    #[error("exporting the last {signal} at shutdown failed: {reason}")]
    Shutdown {
        /// `traces`, `metrics` or `logs`.
        signal: &'static str,
        /// The SDK's reason.
        reason: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
