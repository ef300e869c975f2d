//! The HL7 v2 (MLLP) listener and the FHIR endpoint served in the test's own process on a free
//! loopback port, as `sluice produce hl7|fhir` serves them.

use std::{net::SocketAddr, sync::Arc};

use rdkafka::ClientConfig;
use sluice::{services, topics::Topics};
use sluice_producers::{
    PublisherConfig,
    fhir::server::{FhirServerConfig, ServerCounts},
    hl7::listener::{ListenerCounts, MllpListenerConfig},
};
use tokio::{sync::watch, task::JoinHandle};

/// A listener serving in the background until [`Serving::stop`].
pub struct Serving<C> {
    /// Where it listens.
    pub address: SocketAddr,
    /// What it has done so far.
    pub counts: Arc<C>,
    /// Turns true to stop it.
    stop: watch::Sender<bool>,
    /// The serving task, which returns the final counts.
    task: JoinHandle<Result<Arc<C>, String>>,
}

impl<C> Serving<C> {
    /// Stops it (each connection finishes the message in hand) and returns what it did.
    pub async fn stop(self) -> Arc<C> {
        self.stop.send(true).unwrap();
        self.task.await.unwrap().unwrap()
    }
}

/// The MLLP listener with `config`, publishing with the default publisher settings.
pub async fn serve_hl7(client: &ClientConfig, topics: &Topics, config: MllpListenerConfig) -> Serving<ListenerCounts> {
    let address = "127.0.0.1:0".parse().unwrap();
    let listener = services::bind_hl7(client, topics, address, config, PublisherConfig::default()).await.unwrap();
    let (address, counts) = (listener.local_addr().unwrap(), listener.counts());
    let (stop, shutdown) = watch::channel(false);
    Serving { address, counts, stop, task: tokio::spawn(services::serve_hl7(listener, shutdown)) }
}

/// The FHIR endpoint with `config`, publishing with the default publisher settings.
pub async fn serve_fhir(client: &ClientConfig, topics: &Topics, config: FhirServerConfig) -> Serving<ServerCounts> {
    let address = "127.0.0.1:0".parse().unwrap();
    let server = services::bind_fhir(client, topics, address, config, PublisherConfig::default()).await.unwrap();
    let (address, counts) = (server.local_addr().unwrap(), server.counts());
    let (stop, shutdown) = watch::channel(false);
    Serving { address, counts, stop, task: tokio::spawn(services::serve_fhir(server, shutdown)) }
}
