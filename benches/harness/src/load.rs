//! Loading the broker: the synthetic source's consent changes, then its clinical events,
//! published as `sluice produce synthetic` publishes them. Timing the clinical events gives the
//! synthetic producer rate.

use std::time::Instant;

use rdkafka::ClientConfig;
use sluice_producers::{PublisherConfig, SyntheticSource, SyntheticSourceConfig};
use tokio::sync::watch;

use super::{Measurement, PROGRESS_EVERY};
use sluice::topics::Topics;

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
    // Never asked to stop; the sender lives until publishing is done.
    let (_never_stop, shutdown) = watch::channel(false);
    let mut last_progress = Instant::now();
    let outcome = sluice::services::produce_synthetic(
        client,
        topics,
        &source,
        PublisherConfig::default(),
        shutdown,
        |acknowledged| {
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                eprintln!("bench:   {acknowledged} of {events} events acknowledged");
            }
        },
    )
    .await?;
    let clinical = outcome.clinical.ok_or("publishing the clinical events stopped early")?;
    Ok(Loaded {
        consent: Measurement { events: outcome.consent.total(), bytes: 0, elapsed: outcome.consent_elapsed },
        clinical: Measurement { events: clinical.total(), bytes: 0, elapsed: outcome.clinical_elapsed },
    })
}
