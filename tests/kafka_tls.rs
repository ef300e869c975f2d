//! Kafka security through librdkafka settings only, against a real broker process (Tansu):
//! mutual TLS (client certificates, key password from a file) and SASL/SCRAM-SHA-512 over TLS
//! (password from a file), each set up with the `[kafka]` table of a `--kafka-config` file.
//! Topics are created, events published and landed; clients without a certificate, with a wrong
//! password, without SASL or without TLS get nothing stored.
//!
//! Tansu 0.6 cannot terminate TLS itself, so the tests put the listeners' own TLS terminator
//! ([`TlsTerminator`]) in front of it and have the broker advertise the terminator's address;
//! SCRAM is Tansu's own (`--authentication`).

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
use sluice::{broker, keys, provision, topics::Topics};
use sluice_producers::{
    SyntheticSource, SyntheticSourceConfig,
    secure_listener::{ListenerTlsConfig, TlsTerminator},
};
use sluice_testkit::tansu::TansuBroker;
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

/// A broker behind the TLS terminator, which demands client certificates when `mutual`; with
/// `scram_users`, the broker demands SASL/SCRAM-SHA-512 as one of them. Returns the broker, the
/// terminator's address (the bootstrap) and its count of refused handshakes.
async fn broker_behind_tls(
    files: &Path,
    mutual: bool,
    scram_users: &[(&str, &str)],
) -> (TansuBroker, String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bootstrap = listener.local_addr().unwrap().to_string();
    let mut broker =
        TansuBroker::start_advertising(&files.join("broker"), Some(&bootstrap)).unwrap_or_else(|e| panic!("{e}"));
    if !scram_users.is_empty() {
        broker.require_scram(scram_users).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut tls = ListenerTlsConfig::new(files.join("broker.crt"), files.join("broker.key"));
    tls.client_ca_file = mutual.then(|| files.join("ca.crt"));
    let refused = Arc::new(AtomicU64::new(0));
    let upstream: SocketAddr = broker.bootstrap().parse().unwrap();
    tokio::spawn(tls_terminator(listener, TlsTerminator::new(&tls).unwrap(), upstream, refused.clone()));
    (broker, bootstrap, refused)
}

/// Publishes a small synthetic source over `client` and lands it; asserts every event arrived.
async fn publish_and_land(client: &ClientConfig, group: &str) {
    let topics = Topics::embedded();
    provision::apply(client, &topics).await.unwrap();
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 40, events: 200, ..Default::default() }).unwrap();
    let published = publish_source(client, &topics, &source).await;
    let lake = tempfile::tempdir().unwrap();
    let purposes = vec!["research".to_owned()];
    let config = lander_config(lake.path(), &purposes, group, &topics);
    let report = land_until_caught_up(client, &config, &keys::generate(&purposes)).await;
    assert_eq!(report.consumed_total(), published.total(), "every event published is consumed");
    assert_eq!(report.unreconciled(&purposes), Vec::<String>::new());
    assert!(report.landed["research"] > 100, "{:?}", report.landed);
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

    let (_broker, bootstrap, refused) = broker_behind_tls(files.path(), true, &[]).await;

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

    publish_and_land(&client, "kafka-tls-test").await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_published_and_landed_over_sasl_scram_and_tls_with_the_password_from_a_file() {
    let files = tempfile::tempdir().unwrap();
    write_certificates(files.path());
    let password = "a-scram-password-for-the-lander-0001";
    let (_broker, bootstrap, _refused) = broker_behind_tls(files.path(), false, &[("sluice-lander", password)]).await;

    let settings = |password_file: &Path| {
        let config_file = files.path().join("sluice.toml");
        std::fs::write(
            &config_file,
            format!(
                "[kafka]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\
                 \"sasl.username\" = \"sluice-lander\"\n\"sasl.password\" = {{ file = \"{}\" }}\n\
                 \"ssl.ca.location\" = \"{}\"\n",
                password_file.display(),
                files.path().join("ca.crt").display()
            ),
        )
        .unwrap();
        broker::client_config(&bootstrap, &broker::load_properties(&config_file).unwrap())
    };
    let password_file = files.path().join("kafka-password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let client = settings(&password_file);
    publish_and_land(&client, "kafka-scram-test").await;

    // A wrong password, and TLS without SASL, get nothing stored.
    let wrong_file = files.path().join("wrong-password");
    std::fs::write(&wrong_file, "not-the-password-of-the-lander\n").unwrap();
    assert!(!can_publish(&settings(&wrong_file)).await, "a wrong password is refused");
    let mut no_sasl = settings(&password_file);
    no_sasl.set("security.protocol", "SSL");
    assert!(!can_publish(&no_sasl).await, "a client that does not authenticate is refused");
    assert!(can_publish(&client).await, "the configured client still publishes");
}

#[test]
fn a_secret_given_on_the_command_line_is_refused_without_being_echoed() {
    for property in ["sasl.password=hunter2-secret-value", "ssl.key.password=hunter2-secret-value"] {
        let output = support::sluice()
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
