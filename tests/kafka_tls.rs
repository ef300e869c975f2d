//! Kafka over mutual TLS, through librdkafka settings only: a real broker process (Tansu) behind
//! a TLS terminator that demands client certificates, reached with the `[kafka]` table of a
//! `--kafka-config` file (its key password read from a file). Topics are created, events
//! published and landed over TLS; clients without a certificate, or without TLS, get nothing.
//!
//! Tansu 0.6 cannot terminate TLS itself, so the test puts the listeners' own TLS terminator
//! ([`TlsTerminator`]) in front of it and has the broker advertise the terminator's address.
//! The SASL/SCRAM settings are checked against librdkafka (the build must include OpenSSL for
//! them); no broker here speaks SCRAM.

mod support;

use std::{
    net::SocketAddr,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rcgen::ExtendedKeyUsagePurpose;
use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord},
};
use sluice::{broker, keys, provision, tansu::TansuBroker, topics::Topics};
use sluice_producers::{
    SyntheticSource, SyntheticSourceConfig,
    secure_listener::{ListenerTlsConfig, TlsTerminator},
};
use support::{land_until_caught_up, lander_config, publish_source, tls::TestCa};
use tokio::net::{TcpListener, TcpStream};

/// Writes a CA, a certificate for the broker's address and one for a client, as PEM files in
/// `dir`: `ca.crt`, `broker.crt`/`broker.key`, `client.crt`/`client.key`.
fn write_certificates(dir: &Path) {
    let ca = TestCa::new("Kafka test CA");
    std::fs::write(dir.join("ca.crt"), ca.certificate.pem()).unwrap();
    ca.issue("127.0.0.1", ExtendedKeyUsagePurpose::ServerAuth).write(dir, "broker");
    ca.issue("sluice-lander", ExtendedKeyUsagePurpose::ClientAuth).write(dir, "client");
}

/// Terminates TLS on `listener` and relays each connection to the broker at `upstream`; counts
/// the connections refused at the handshake.
async fn tls_terminator(
    listener: TcpListener,
    terminator: TlsTerminator,
    upstream: SocketAddr,
    refused: Arc<AtomicU64>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let (terminator, refused) = (terminator.clone(), refused.clone());
        tokio::spawn(async move {
            match terminator.handshake(tcp).await {
                Ok(mut tls) => {
                    if let Ok(mut broker) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
                    }
                }
                Err(_) => {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

/// Whether a producer with `client`'s settings gets one record acknowledged within a few seconds.
async fn can_publish(client: &ClientConfig) -> bool {
    let producer: FutureProducer = client.clone().set("message.timeout.ms", "4000").create().unwrap();
    producer
        .send(FutureRecord::<(), _>::to("clinical.adt").payload(&b"probe"[..]), Duration::from_secs(10))
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_published_and_landed_over_mutual_tls_set_up_through_librdkafka_settings() {
    let files = tempfile::tempdir().unwrap();
    write_certificates(files.path());
    let key_password = files.path().join("client-key-password");
    std::fs::write(&key_password, "unused-for-an-unencrypted-key\n").unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bootstrap = listener.local_addr().unwrap().to_string();
    let broker_dir = files.path().join("broker");
    let broker = TansuBroker::start_advertising(&broker_dir, Some(&bootstrap)).unwrap_or_else(|e| panic!("{e}"));
    let mut tls = ListenerTlsConfig::new(files.path().join("broker.crt"), files.path().join("broker.key"));
    tls.client_ca_file = Some(files.path().join("ca.crt"));
    let refused = Arc::new(AtomicU64::new(0));
    let upstream: SocketAddr = broker.bootstrap().parse().unwrap();
    tokio::spawn(tls_terminator(listener, TlsTerminator::new(&tls).unwrap(), upstream, refused.clone()));

    // The client's settings, as an operator writes them in --kafka-config.
    let path = |name: &str| files.path().join(name).display().to_string();
    let config_file = files.path().join("sluice.toml");
    std::fs::write(
        &config_file,
        format!(
            "[kafka]\n\"security.protocol\" = \"SSL\"\n\"ssl.ca.location\" = \"{}\"\n\"ssl.certificate.location\" = \"{}\"\n\
             \"ssl.key.location\" = \"{}\"\n\"ssl.key.password\" = {{ file = \"{}\" }}\n",
            path("ca.crt"),
            path("client.crt"),
            path("client.key"),
            key_password.display()
        ),
    )
    .unwrap();
    let properties = broker::load_properties(&config_file).unwrap();
    assert!(properties.contains(&("ssl.key.password".to_owned(), "unused-for-an-unencrypted-key".to_owned())));
    let client = broker::client_config(&bootstrap, &properties);

    let topics = Topics::embedded();
    provision::apply(&client, &topics).await.unwrap();
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 40, events: 200, ..Default::default() }).unwrap();
    let published = publish_source(&client, &topics, &source).await;
    let lake = tempfile::tempdir().unwrap();
    let purposes = vec!["research".to_owned()];
    let config = lander_config(lake.path(), &purposes, "kafka-tls-test", &topics);
    let report = land_until_caught_up(&client, &config, &keys::generate(&purposes)).await;
    assert_eq!(report.consumed_total(), published.total(), "every event published over TLS is consumed over TLS");
    assert_eq!(report.unreconciled(&purposes), Vec::<String>::new());
    assert!(report.landed["research"] > 100, "{:?}", report.landed);
    assert_eq!(refused.load(Ordering::Relaxed), 0, "the configured client is never refused");

    // Without a client certificate, and without TLS, nothing is stored.
    let mut no_certificate = client.clone();
    no_certificate.remove("ssl.certificate.location").remove("ssl.key.location").remove("ssl.key.password");
    assert!(!can_publish(&no_certificate).await, "a client without a certificate is refused");
    let mut plaintext = ClientConfig::new();
    plaintext.set("bootstrap.servers", &bootstrap);
    assert!(!can_publish(&plaintext).await, "a client without TLS is refused");
    assert!(refused.load(Ordering::Relaxed) >= 2, "both were refused at the TLS handshake");
    assert!(can_publish(&client).await, "the configured client still publishes");
}

#[test]
fn sasl_scram_over_tls_is_accepted_by_the_librdkafka_build() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("kafka-password");
    std::fs::write(&password, "a-scram-password\n").unwrap();
    let config_file = dir.path().join("sluice.toml");
    std::fs::write(
        &config_file,
        format!(
            "[kafka]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\
             \"sasl.username\" = \"sluice-lander\"\n\"sasl.password\" = {{ file = \"{}\" }}\n",
            password.display()
        ),
    )
    .unwrap();
    let client = broker::client_config("127.0.0.1:9", &broker::load_properties(&config_file).unwrap());
    assert_eq!(client.get("sasl.password"), Some("a-scram-password"));
    // librdkafka refuses these settings at creation when built without SSL or SASL support.
    let created: Result<FutureProducer, _> = client.create();
    assert!(created.is_ok(), "{:?}", created.err());
    let mut unsupported = client.clone();
    unsupported.set("sasl.mechanism", "NOT-A-MECHANISM");
    assert!(unsupported.create::<FutureProducer>().is_err(), "librdkafka checks the settings it is given");
}

#[test]
fn a_secret_given_on_the_command_line_is_refused_without_being_echoed() {
    for property in ["sasl.password=hunter2-secret-value", "ssl.key.password=hunter2-secret-value"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["produce", "hl7", "--listen", "127.0.0.1:0", "--brokers", "127.0.0.1:9", "-X", property])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains("--kafka-config"), "the error says where secrets go: {stderr}");
        assert!(
            !stderr.contains("hunter2") && !String::from_utf8_lossy(&output.stdout).contains("hunter2"),
            "{stderr}"
        );
    }
}
