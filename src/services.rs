//! The producing services behind `sluice produce synthetic|hl7|fhir|file` (and the benchmark and
//! tests, which run them in process), and the signal handling every long-running command shares.
//! All stop cleanly on SIGINT or SIGTERM: producers flush what they handed to Kafka, and
//! listeners first finish the message in hand on every connection. Landing is assembled in
//! [`crate::pipeline`].

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use rdkafka::ClientConfig;
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
