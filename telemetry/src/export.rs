//! Installing the OpenTelemetry SDK with OTLP/HTTP exporters for traces, metrics and logs.

use std::{sync::OnceLock, time::Duration};

use opentelemetry::global;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{
    Resource, logs::SdkLoggerProvider, metrics::SdkMeterProvider, trace::SdkTracer, trace::SdkTracerProvider,
};

use crate::{Error, Result, http_client::UreqHttpClient};

/// The tracer spans are recorded with, once [`install`] has run.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// The tracer, when telemetry is exported; `None` means nothing is recorded, and callers skip
/// the work of building spans.
pub(crate) fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

/// Where and how telemetry is exported. Read from the standard OpenTelemetry environment
/// variables by [`TelemetryConfig::from_env`]; nothing is exported without an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// Base URL of the OTLP/HTTP collector, e.g. `http://127.0.0.1:4318`; signals go to
    /// `/v1/traces`, `/v1/metrics` and `/v1/logs` under it. `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: Option<String>,
    /// `http/protobuf` (the default) or `http/json`. `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub protocol: OtlpProtocol,
    /// The `service.name` resource attribute. `OTEL_SERVICE_NAME`, else the command's name.
    pub service_name: String,
    /// How often metrics are exported. `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds), default 10 s.
    pub metric_interval: Duration,
    /// How long one export may take before it is abandoned. `OTEL_EXPORTER_OTLP_TIMEOUT`
    /// (milliseconds), default 10 s.
    pub timeout: Duration,
}

/// The OTLP/HTTP encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtlpProtocol {
    /// Protocol buffers, what collectors expect by default.
    #[default]
    Protobuf,
    /// JSON, for collectors and tests that read it directly.
    Json,
}

impl TelemetryConfig {
    /// The configuration the `OTEL_*` environment variables give, for a command named
    /// `service_name`. Headers (`OTEL_EXPORTER_OTLP_HEADERS`, e.g. a bearer token) are read by
    /// the exporter itself, so a secret never passes through here.
    pub fn from_env(service_name: &str) -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.trim().is_empty());
        let millis = |name: &str, default: u64| -> Result<Duration> {
            match var(name) {
                None => Ok(Duration::from_millis(default)),
                Some(value) => value.trim().parse().map(Duration::from_millis).map_err(|_| Error::Config {
                    variable: name.to_owned(),
                    reason: format!("`{value}` is not a number of milliseconds"),
                }),
            }
        };
        let protocol = match var("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref().map(str::trim) {
            None | Some("http/protobuf") => OtlpProtocol::Protobuf,
            Some("http/json") => OtlpProtocol::Json,
            Some(other) => {
                return Err(Error::Config {
                    variable: "OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(),
                    reason: format!("`{other}` is not supported: use http/protobuf or http/json"),
                });
            }
        };
        Ok(TelemetryConfig {
            endpoint: var("OTEL_EXPORTER_OTLP_ENDPOINT").map(|url| url.trim().trim_end_matches('/').to_owned()),
            protocol,
            service_name: var("OTEL_SERVICE_NAME").unwrap_or_else(|| service_name.to_owned()),
            metric_interval: millis("OTEL_METRIC_EXPORT_INTERVAL", 10_000)?,
            timeout: millis("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000)?,
        })
    }
}

/// The installed providers. [`Telemetry::shutdown`] (or dropping it) exports what is still
/// queued, so a command's last spans, metrics and logs are not lost when it exits.
#[derive(Debug)]
pub struct Telemetry {
    /// Records and exports spans.
    tracer_provider: SdkTracerProvider,
    /// Aggregates and periodically exports metrics.
    meter_provider: SdkMeterProvider,
    /// Exports log records handed over by [`Telemetry::log_layer`].
    logger_provider: SdkLoggerProvider,
    /// Whether shutdown already ran.
    shut_down: bool,
}

/// Installs the SDK as the global tracer and meter provider and returns it, or `None` when no
/// endpoint is configured (then every instrument is a no-op and no span is built). Call it once,
/// first thing: instruments created before it stay no-ops.
pub fn install(config: &TelemetryConfig) -> Result<Option<Telemetry>> {
    let Some(endpoint) = &config.endpoint else { return Ok(None) };
    if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
        return Err(Error::Config {
            variable: "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            reason: format!("`{endpoint}` is not an http:// or https:// URL"),
        });
    }
    let protocol = match config.protocol {
        OtlpProtocol::Protobuf => Protocol::HttpBinary,
        OtlpProtocol::Json => Protocol::HttpJson,
    };
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let exporter_error = |signal: &'static str| move |source| Error::Exporter { signal, source };

    let spans = over_http(
        opentelemetry_otlp::SpanExporter::builder().with_http(),
        endpoint,
        config.timeout,
        protocol,
        "traces",
    )
    .build()
    .map_err(exporter_error("traces"))?;
    let tracer_provider =
        SdkTracerProvider::builder().with_batch_exporter(spans).with_resource(resource.clone()).build();

    let metrics = over_http(
        opentelemetry_otlp::MetricExporter::builder().with_http(),
        endpoint,
        config.timeout,
        protocol,
        "metrics",
    )
    .build()
    .map_err(exporter_error("metrics"))?;
    let reader =
        opentelemetry_sdk::metrics::PeriodicReader::builder(metrics).with_interval(config.metric_interval).build();
    let meter_provider = SdkMeterProvider::builder().with_reader(reader).with_resource(resource.clone()).build();

    let logs =
        over_http(opentelemetry_otlp::LogExporter::builder().with_http(), endpoint, config.timeout, protocol, "logs")
            .build()
            .map_err(exporter_error("logs"))?;
    let logger_provider = SdkLoggerProvider::builder().with_batch_exporter(logs).with_resource(resource).build();

    use opentelemetry::trace::TracerProvider as _;
    let tracer = tracer_provider.tracer("sluice");
    if TRACER.set(tracer).is_err() {
        return Err(Error::AlreadyInstalled);
    }
    global::set_tracer_provider(tracer_provider.clone());
    global::set_meter_provider(meter_provider.clone());
    Ok(Some(Telemetry { tracer_provider, meter_provider, logger_provider, shut_down: false }))
}

/// An OTLP exporter builder set up to send one signal (`traces`, `metrics` or `logs`) to
/// `<endpoint>/v1/<signal>` with ureq, in `protocol`, giving up after `timeout`.
fn over_http<B: WithExportConfig + WithHttpConfig>(
    builder: B,
    endpoint: &str,
    timeout: Duration,
    protocol: Protocol,
    signal: &str,
) -> B {
    builder
        .with_http_client(UreqHttpClient::new(timeout))
        .with_protocol(protocol)
        .with_timeout(timeout)
        .with_endpoint(format!("{endpoint}/v1/{signal}"))
}

impl Telemetry {
    /// A `tracing` layer that hands every log event (at the level the subscriber lets through)
    /// to the OTLP log exporter, with the trace and span ids of the span it was logged in.
    pub fn log_layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&self.logger_provider)
    }

    /// Exports everything still queued and stops the exporters. Errors are returned, not
    /// logged: the log exporter is among what is being shut down.
    pub fn shutdown(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.shut_down, true) {
            return Ok(());
        }
        let traces = self.tracer_provider.shutdown();
        let metrics = self.meter_provider.shutdown();
        let logs = self.logger_provider.shutdown();
        for (signal, outcome) in [("traces", traces), ("metrics", metrics), ("logs", logs)] {
            outcome.map_err(|source| Error::Shutdown { signal, reason: source.to_string() })?;
        }
        Ok(())
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            eprintln!("telemetry: {error}");
        }
    }
}

/// Whether telemetry is exported in this process (after [`install`]); recorders that need work
/// beyond calling an instrument (client statistics, per-event trace state) check it first.
pub fn installed() -> bool {
    TRACER.get().is_some()
}
