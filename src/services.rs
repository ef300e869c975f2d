//! The long-running services: `sluice produce synthetic|hl7|fhir|file`, and `sluice land`. All stop cleanly
//! on SIGINT or SIGTERM: producers flush what they handed to Kafka (listeners first finish the
//! message in hand on every connection), the lander writes the rows in hand, commits their
//! offsets and leaves its consumer group.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use rdkafka::ClientConfig;
use sluice_consumers::{LanderConfig, LandingReport, RunUntil, lander::PurposeSetup};
use sluice_producers::batch_file::{FileImportConfig, ImportReport, Progress};
use sluice_producers::fhir::server::{FhirServer, FhirServerConfig, ServerCounts};
use sluice_producers::hl7::listener::{ListenerCounts, MllpListener, MllpListenerConfig};
use sluice_producers::{EventPublisher, PublishReport, PublisherConfig, SyntheticSource};
use sluice_schemas::Catalogue;
use tokio::sync::watch;
use tracing::info;

use crate::topics::Topics;

/// A receiver that turns true on the first SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> Result<watch::Receiver<bool>, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let (sender, receiver) = watch::channel(false);
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| format!("cannot listen for SIGINT: {e}"))?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => info!("SIGTERM received"),
            _ = interrupt.recv() => info!("SIGINT received"),
        }
        let _ = sender.send(true);
        // Keep the sender alive so receivers see `true`, not a closed channel, until exit.
        std::future::pending::<()>().await;
    });
    Ok(receiver)
}

/// What `sluice produce synthetic` did.
#[derive(Debug)]
pub struct ProduceOutcome {
    /// Consent changes acknowledged.
    pub consent: PublishReport,
    /// How long publishing the consent changes took, to their last acknowledgement.
    pub consent_elapsed: Duration,
    /// Clinical events acknowledged, or `None` when stopped before all were.
    pub clinical: Option<PublishReport>,
    /// How long publishing the clinical events took, to their last acknowledgement (or to the stop).
    pub clinical_elapsed: Duration,
}

/// Publishes the synthetic source's consent changes, then its clinical events, until done or
/// stopped. Whatever was handed to Kafka before a stop is flushed.
pub async fn produce_synthetic(
    client: &ClientConfig,
    topics: &Topics,
    source: &SyntheticSource,
    config: PublisherConfig,
    mut shutdown: watch::Receiver<bool>,
    on_acknowledged: impl FnMut(u64),
) -> Result<ProduceOutcome, String> {
    let publisher =
        EventPublisher::new(client, Catalogue::embedded(), topics.by_subject(), config).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let consent = publisher.publish_all(source.consent_events(), |_| {}).await.map_err(|e| e.to_string())?;
    let consent_elapsed = started.elapsed();
    info!(consent_changes = consent.total(), "consent changes published");
    let started = Instant::now();
    let clinical = tokio::select! {
        report = publisher.publish_all(source.clinical_events(), on_acknowledged) => Some(report.map_err(|e| e.to_string())?),
        _ = shutdown.wait_for(|stop| *stop) => None,
    };
    let clinical_elapsed = started.elapsed();
    publisher.flush().map_err(|e| e.to_string())?;
    Ok(ProduceOutcome { consent, consent_elapsed, clinical, clinical_elapsed })
}

/// How long a listener waits for Kafka to acknowledge an event before it answers the source that
/// the message was not stored (librdkafka `message.timeout.ms`, unless set explicitly). Shorter
/// than the usual ACK timeouts of interface engines, so they get an answer rather than a timeout.
const LISTENER_DELIVERY_TIMEOUT_MS: &str = "30000";

/// A publisher for an adapter that answers its source: dead letters enabled, bounded delivery
/// time.
pub fn adapter_publisher(
    client: &ClientConfig,
    topics: &Topics,
    config: PublisherConfig,
) -> Result<EventPublisher<'static>, String> {
    let mut client = client.clone();
    if client.get("message.timeout.ms").is_none() && client.get("delivery.timeout.ms").is_none() {
        client.set("message.timeout.ms", LISTENER_DELIVERY_TIMEOUT_MS);
    }
    Ok(EventPublisher::new(&client, Catalogue::embedded(), topics.by_subject(), config)
        .map_err(|e| e.to_string())?
        .with_dead_letter_topic(topics.dead_letter()))
}

/// Serves HL7 v2 over MLLP on `listener` until stopped; returns what it did.
pub async fn serve_hl7(listener: MllpListener, shutdown: watch::Receiver<bool>) -> Result<Arc<ListenerCounts>, String> {
    listener.serve(shutdown).await.map_err(|e| e.to_string())
}

/// Binds the MLLP listener.
pub async fn bind_hl7(
    client: &ClientConfig,
    topics: &Topics,
    address: SocketAddr,
    config: MllpListenerConfig,
    publisher: PublisherConfig,
) -> Result<MllpListener, String> {
    let publisher = Arc::new(adapter_publisher(client, topics, publisher)?);
    MllpListener::bind(address, publisher, config).await.map_err(|e| e.to_string())
}

/// The summary an MLLP listener prints when it stops.
pub fn render_hl7(counts: &ListenerCounts) -> String {
    let [connections, accepted, events, duplicates, refused, not_stored] = counts.snapshot();
    let unauthenticated = counts.unauthenticated.load(std::sync::atomic::Ordering::Relaxed);
    let framing_errors = counts.framing_errors.load(std::sync::atomic::Ordering::Relaxed);
    format!(
        "HL7 listener: {connections} connections ({unauthenticated} refused at the TLS handshake); {accepted} messages \
         stored ({events} events), {duplicates} repeats acknowledged without publishing, {refused} refused and \
         dead-lettered, {not_stored} not stored (AE 207), {framing_errors} framing errors dead-lettered\n"
    )
}

/// Binds the FHIR endpoint.
pub async fn bind_fhir(
    client: &ClientConfig,
    topics: &Topics,
    address: SocketAddr,
    config: FhirServerConfig,
    publisher: PublisherConfig,
) -> Result<FhirServer, String> {
    let publisher = Arc::new(adapter_publisher(client, topics, publisher)?);
    FhirServer::bind(address, publisher, config).await.map_err(|e| e.to_string())
}

/// Serves FHIR R4 over HTTP until stopped; returns what it did.
pub async fn serve_fhir(server: FhirServer, shutdown: watch::Receiver<bool>) -> Result<Arc<ServerCounts>, String> {
    server.serve(shutdown).await.map_err(|e| e.to_string())
}

/// The summary a FHIR endpoint prints when it stops.
pub fn render_fhir(counts: &ServerCounts) -> String {
    let [requests, stored, events, refused, not_stored] = counts.snapshot();
    let unauthenticated = counts.unauthenticated.load(std::sync::atomic::Ordering::Relaxed);
    format!(
        "FHIR endpoint: {requests} requests; {stored} resources stored ({events} events), {refused} refused and \
         dead-lettered, {not_stored} not stored (503), {unauthenticated} refused as unauthenticated\n"
    )
}

/// Imports one NDJSON file, resuming from its checkpoint, until done or stopped.
pub async fn import_file(
    client: &ClientConfig,
    topics: &Topics,
    path: &std::path::Path,
    config: &FileImportConfig,
    publisher: PublisherConfig,
    shutdown: watch::Receiver<bool>,
    on_progress: impl FnMut(Progress),
) -> Result<ImportReport, String> {
    let publisher = adapter_publisher(client, topics, publisher)?;
    let report = sluice_producers::batch_file::import_file(path, client, &publisher, config, shutdown, on_progress)
        .await
        .map_err(|e| e.to_string())?;
    publisher.flush().map_err(|e| e.to_string())?;
    Ok(report)
}

/// The summary a file import prints.
pub fn render_import(report: &ImportReport) -> String {
    let mut out = String::new();
    if report.complete && report.lines == 0 && report.started_at_line == 0 {
        let _ = writeln!(out, "file {} was already imported completely: nothing published", report.file_id);
        return out;
    }
    let events: u64 = report.events.values().sum();
    let subjects: Vec<String> = report.events.iter().map(|(s, n)| format!("{s} {n}")).collect();
    let _ = writeln!(
        out,
        "file {}: read {} lines from line {} ({} blank); published {events} events ({}), {} dead letters; {} outputs \
         already stored before a restart were not published again",
        report.file_id,
        report.lines,
        report.started_at_line,
        report.blank_lines,
        subjects.join(", "),
        report.dead_letters,
        report.already_stored,
    );
    let _ = writeln!(
        out,
        "{}",
        if report.complete { "import complete" } else { "import stopped early; run the same command again to resume" }
    );
    out
}

/// When `sluice land` stops, besides SIGINT or SIGTERM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LandUntil {
    /// Run as a service until stopped.
    Stopped,
    /// Land what the clinical topics held when the lander started, then stop: a scheduled
    /// batch run, or a benchmark.
    CaughtUp,
}

/// Runs a lander until stopped (or caught up), emitting its OpenLineage events as configured.
pub async fn land(
    client: &ClientConfig,
    config: &LanderConfig,
    setups: &BTreeMap<String, PurposeSetup>,
    until: LandUntil,
    shutdown: watch::Receiver<bool>,
) -> Result<LandingReport, String> {
    info!(purposes = ?config.purposes, lake = %config.lake_dir.display(), erase_on_opt_out = config.erase_on_opt_out, ?until, "landing");
    let until = match until {
        LandUntil::Stopped => RunUntil::Stopped,
        LandUntil::CaughtUp => {
            let ends = tokio::task::block_in_place(|| crate::broker::high_watermarks(client, &config.clinical_topics))?;
            // The sender is dropped at once; the lander keeps the last value it holds.
            RunUntil::CaughtUp(watch::channel(Some(ends)).1)
        }
    };
    crate::lineage::land(client, config, setups, Catalogue::embedded(), until, shutdown, |_| {}).await
}

/// The summary a lander prints when it stops.
pub fn render_landing(report: &LandingReport) -> String {
    let mut out = String::new();
    let _ =
        writeln!(out, "consumed {} clinical events, dead-lettered {}", report.consumed_total(), report.dead_lettered);
    for (purpose, landed) in &report.landed {
        let _ = write!(out, "  {purpose}: landed {landed}, withheld {}", report.withheld_total(purpose));
        for (reason, n) in report.withheld.get(purpose).into_iter().flatten() {
            let _ = write!(out, " ({reason} {n})");
        }
        for (opt_out, n) in report.released_under_exemption.get(purpose).into_iter().flatten() {
            let _ = write!(out, ", released under a {opt_out} exemption {n}");
        }
        let _ = writeln!(out);
    }
    let bytes: u64 = report.files.iter().map(|f| f.bytes).sum();
    let _ = writeln!(out, "  {} files written, {bytes} bytes", report.files.len());
    out
}
