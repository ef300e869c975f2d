//! The broker process (Tansu) killed under the services that depend on it. Producers never
//! acknowledge what Kafka did not store: the MLLP listener answers `AE` with ERR-3 `207` and the
//! FHIR endpoint `503`. A lander that cannot read the consent topic releases nothing, and lands
//! everything once the broker is back.
//!
//! (Tansu 0.6 cannot take the epoch bump an idempotent producer makes after timed-out
//! deliveries, so the producers' recovery after the outage is tested on the mock cluster in
//! `hl7_listener.rs` and `fhir_endpoint.rs`; here they face the real process dying.)

mod support;

use std::time::Duration;

use rdkafka::ClientConfig;
use sluice::{keys, provision, topics::Topics};
use sluice_consumers::{Error, RunUntil};
use sluice_producers::{
    SyntheticSource, SyntheticSourceConfig, fhir::server::FhirServerConfig, hl7::listener::MllpListenerConfig,
};
use sluice_schemas::Catalogue;
use sluice_testkit::{
    fhir_fixture,
    mllp::{MllpSender, hl7_fixture},
};
use support::{
    builtin_setups, land_until_caught_up, lander_config,
    listeners::{serve_fhir, serve_hl7},
    parquet_files, publish_source,
    tansu::Tansu,
};
use tokio::{net::TcpStream, sync::watch};

/// Sends one framed message and returns its ACK's MSA-1 and ERR-3.1.
async fn send(sender: &mut MllpSender<TcpStream>, message: &[u8]) -> (Option<String>, Option<String>) {
    let ack = sender.send_expecting_ack(message).await;
    (ack.get("MSA-1"), ack.get("ERR-3.1"))
}

/// POSTs a FHIR resource and returns the status.
async fn post(address: std::net::SocketAddr, path: &str, body: String) -> u16 {
    sluice_testkit::fhir::post_json(address, path, &body).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_broker_process_is_dead_sources_are_told_nothing_was_stored() {
    let mut broker = Tansu::start();
    let topics = Topics::embedded();
    provision::apply(&broker.client(), &topics).await.unwrap();
    let mut client: ClientConfig = broker.client();
    client.set("message.timeout.ms", "4000");

    let state = tempfile::tempdir().unwrap();
    let hl7_config = MllpListenerConfig { state_dir: Some(state.path().to_owned()), ..MllpListenerConfig::default() };
    let hl7 = serve_hl7(&client, &topics, hl7_config).await;
    let fhir = serve_fhir(&client, &topics, FhirServerConfig::default()).await;
    let (hl7_address, fhir_address) = (hl7.address, fhir.address);
    let consent = fhir_fixture("consent_national_opt_out.json");

    let mut sender = MllpSender::connect(hl7_address).await.unwrap();
    assert_eq!(send(&mut sender, &hl7_fixture("adt_a01_admit.hl7")).await.0.as_deref(), Some("AA"));
    assert_eq!(post(fhir_address, "/Consent", consent.clone()).await, 201);

    broker.kill();
    let (code, error) = send(&mut sender, &hl7_fixture("adt_a03_discharge.hl7")).await;
    assert_eq!((code.as_deref(), error.as_deref()), (Some("AE"), Some("207")), "told to send it again");
    assert_eq!(post(fhir_address, "/Consent", consent).await, 503, "told to send it again");

    let (hl7_counts, fhir_counts) = (hl7.stop().await, fhir.stop().await);
    let [_, accepted, _, _, refused, not_stored] = hl7_counts.snapshot();
    assert_eq!((accepted, refused, not_stored), (1, 0, 1));
    let [_, stored, _, refused, not_stored] = fhir_counts.snapshot();
    assert_eq!((stored, refused, not_stored), (1, 0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lander_releases_nothing_while_the_broker_holding_consent_is_down_and_everything_once_it_is_back() {
    let mut broker = Tansu::start();
    let client = broker.client();
    let topics = Topics::embedded();
    provision::apply(&client, &topics).await.unwrap();
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 100, events: 600, ..Default::default() }).unwrap();
    let published = publish_source(&client, &topics, &source).await;

    let lake = tempfile::tempdir().unwrap();
    let purposes = vec!["research".to_owned(), "direct-care".to_owned()];
    let keys = keys::generate(&purposes);
    let mut config = lander_config(lake.path(), &purposes, "broker-down", &topics);
    config.consent_load_timeout_secs = 3;
    broker.kill();
    let (_shutdown, shutdown) = watch::channel(false);
    let setups = builtin_setups(&keys);
    let run =
        sluice_consumers::run(&client, &config, &setups, Catalogue::embedded(), RunUntil::Stopped, shutdown, |_| {});
    match tokio::time::timeout(Duration::from_secs(90), run).await.expect("gives up within its timeout") {
        Err(Error::ConsentUnavailable { topic, .. }) => assert_eq!(topic, topics.consent()),
        other => panic!("expected landing to hold, got {other:?}"),
    }
    assert!(parquet_files(lake.path()).is_empty(), "nothing landed, not even for direct care");

    broker.restart();
    let report = land_until_caught_up(&client, &config, &keys).await;
    assert_eq!(report.consumed_total(), published.total());
    assert_eq!(report.unreconciled(&purposes), Vec::<String>::new());
    assert!(!parquet_files(lake.path()).is_empty());
}
