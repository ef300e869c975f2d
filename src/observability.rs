//! Logging and telemetry for the `sluice` command: log lines on stderr as text or JSON, and,
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, traces, metrics and logs exported over OTLP (see
//! `sluice_telemetry`). Log lines never carry a patient identifier: the code logs topics,
//! offsets, counts, purposes, reasons and file keys only.

use sluice_telemetry::{Telemetry, TelemetryConfig};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line (timestamp, level, target, message and fields), for collectors.
    Json,
}

/// Sets up logging (filtered by `SLUICE_LOG`, else `default_filter`) and, if configured, OTLP
/// export under `service`. Keep the returned [`Telemetry`] until the command ends and shut it
/// down then, so the last records are exported.
pub fn start(service: &str, default_filter: &str, format: LogFormat) -> Result<Option<Telemetry>, String> {
    let config = TelemetryConfig::from_env(service).map_err(|error| format!("telemetry: {error}"))?;
    let telemetry = sluice_telemetry::install(&config).map_err(|error| format!("telemetry: {error}"))?;
    let filter = EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let stderr = match format {
        // Colour codes only on a terminal, so log files and CI output stay plain text.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => {
            tracing_subscriber::fmt::layer().json().flatten_event(true).with_writer(std::io::stderr).boxed()
        }
    };
    let otlp = telemetry.as_ref().map(Telemetry::log_layer);
    tracing_subscriber::registry().with(filter).with(stderr).with(otlp).init();
    Ok(telemetry)
}
