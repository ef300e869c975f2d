//! Loading the broker: the synthetic source's consent changes, then its clinical events,
//! published by sluice's own producer. Timing the clinical events gives the synthetic producer
//! rate.

use std::time::Instant;

use rdkafka::ClientConfig;
use sluice_producers::{EventPublisher, PublisherConfig, SyntheticSource, SyntheticSourceConfig};
use sluice_schemas::Catalogue;

use super::{Measurement, PROGRESS_EVERY};
use crate::topics::Topics;

/// What loading published. Bytes are filled in by reading the topics back.
pub struct Loaded {
    /// Consent changes.
    pub consent: Measurement,
    /// Clinical events.
    pub clinical: Measurement,
}

/// Publishes the consent changes and `events` clinical events of `patients` synthetic patients.
pub async fn synthetic(client: &ClientConfig, topics: &Topics, events: u64, patients: u32) -> Result<Loaded, String> {
    let source = SyntheticSource::new(SyntheticSourceConfig { events, patients, ..SyntheticSourceConfig::default() })?;
    let publisher = EventPublisher::new(client, Catalogue::embedded(), topics.by_subject(), PublisherConfig::default())
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let consent = publisher.publish_all(source.consent_events(), |_| {}).await.map_err(|e| e.to_string())?;
    let consent = Measurement { events: consent.total(), bytes: 0, elapsed: started.elapsed() };

    let started = Instant::now();
    let mut last_progress = Instant::now();
    let clinical = publisher
        .publish_all(source.clinical_events(), |acknowledged| {
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                eprintln!("bench:   {acknowledged} of {events} events acknowledged");
            }
        })
        .await
        .map_err(|e| e.to_string())?;
    publisher.flush().map_err(|e| e.to_string())?;
    let clinical = Measurement { events: clinical.total(), bytes: 0, elapsed: started.elapsed() };
    Ok(Loaded { consent, clinical })
}
