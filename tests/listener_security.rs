//! The source-facing listeners under TLS and sender authentication: real TLS clients (rustls)
//! with certificates from a test CA talk to the running MLLP listener and FHIR endpoint.
//! Senders that are not authenticated are refused before anything they sent is read, so nothing
//! of theirs is published, dead-lettered or acknowledged; authenticated senders are served.

mod support;

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use rcgen::ExtendedKeyUsagePurpose;
use serde_json::Value;
use sluice::services;
use sluice_producers::{
    PublisherConfig,
    fhir::server::FhirServerConfig,
    hl7::{listener::MllpListenerConfig, message::Message},
    secure_listener::{ListenerTlsConfig, SecretSource},
};
use sluice_testkit::{
    fhir_fixture,
    mllp::{MllpSender, NoAck, hl7_fixture},
};
use support::{
    listeners::{serve_fhir, serve_hl7},
    read_topic,
    tls::{Issued, TestCa},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::{
    TlsConnector,
    rustls::{
        ClientConfig, RootCertStore,
        crypto::aws_lc_rs,
        pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
    },
};

/// The listener's TLS files under `dir`, with the senders' CA when `client_ca` is given.
fn listener_tls(dir: &Path, server_ca: &TestCa, client_ca: Option<&TestCa>) -> ListenerTlsConfig {
    let (certificate, key) = server_ca.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth).write(dir, "listener");
    let mut config = ListenerTlsConfig::new(certificate, key);
    config.client_ca_file = client_ca.map(|ca| {
        let path = dir.join("senders-ca.crt");
        std::fs::write(&path, ca.certificate.pem()).unwrap();
        path
    });
    config.handshake_timeout_secs = 2;
    config
}

/// A TLS client trusting `server_ca`, presenting `identity` when given.
fn connector(server_ca: &TestCa, identity: Option<&Issued>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(server_ca.certificate.der().clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some(identity) => {
            let chain = vec![CertificateDer::from_pem_slice(identity.certificate_pem.as_bytes()).unwrap()];
            let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

/// Sends one MLLP-framed message and reads what comes back until an ACK or the end of the
/// connection: the ACK, or `None` when the listener closed the connection (or failed it) first.
async fn send_mllp(stream: impl AsyncRead + AsyncWrite + Unpin, message: &[u8]) -> Option<Message> {
    match MllpSender::new(stream).with_timeout(Duration::from_secs(30)).send(message).await {
        Ok((ack, _)) => Some(ack),
        Err(NoAck::Timeout(wait)) => panic!("the listener neither answered nor closed within {wait:?}"),
        Err(NoAck::NotHl7(why)) => panic!("the listener's answer is not HL7: {why}"),
        // A write may already fail once the listener has refused the handshake; bytes that are
        // no MLLP frame (a TLS alert to a plain-TCP sender) are no ACK either.
        Err(NoAck::Send(_) | NoAck::Closed | NoAck::NotMllp(_)) => None,
    }
}

/// Sends over TLS; `None` also when the handshake itself fails on the client's side.
async fn send_mllp_tls(address: SocketAddr, connector: &TlsConnector, message: &[u8]) -> Option<Message> {
    let tcp = TcpStream::connect(address).await.unwrap();
    let stream = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.ok()?;
    send_mllp(stream, message).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mllp_over_mutual_tls_serves_senders_with_a_certificate_of_the_senders_ca_and_refuses_all_others() {
    let (_cluster, client, topics) = support::mock_cluster();
    let files = tempfile::tempdir().unwrap();
    let (server_ca, senders_ca, stranger_ca) =
        (TestCa::new("sluice test server CA"), TestCa::new("interface engines CA"), TestCa::new("someone else"));
    let config = MllpListenerConfig {
        tls: Some(listener_tls(files.path(), &server_ca, Some(&senders_ca))),
        ..MllpListenerConfig::default()
    };
    let listener = serve_hl7(&client, &topics, config).await;
    let address = listener.address;

    let engine = senders_ca.issue("pas-interface-engine", ExtendedKeyUsagePurpose::ClientAuth);
    let ack = send_mllp_tls(address, &connector(&server_ca, Some(&engine)), &hl7_fixture("adt_a01_admit.hl7")).await;
    let ack = ack.expect("a sender with a certificate of the senders' CA is answered");
    assert_eq!(ack.get("MSA-1").as_deref(), Some("AA"));
    assert_eq!(ack.get("MSA-2").as_deref(), Some("PAS0000101"));

    // Refused at the handshake: no client certificate; a certificate of another CA; no TLS at all.
    let discharge = hl7_fixture("adt_a03_discharge.hl7");
    assert!(send_mllp_tls(address, &connector(&server_ca, None), &discharge).await.is_none());
    let stranger = stranger_ca.issue("pas-interface-engine", ExtendedKeyUsagePurpose::ClientAuth);
    assert!(send_mllp_tls(address, &connector(&server_ca, Some(&stranger)), &discharge).await.is_none());
    assert!(send_mllp(TcpStream::connect(address).await.unwrap(), &discharge).await.is_none());

    let counts = listener.stop().await;
    let [connections, accepted, events, duplicates, refused, not_stored] = counts.snapshot();
    assert_eq!((connections, accepted, events, duplicates, refused, not_stored), (4, 1, 1, 0, 0, 0));
    assert_eq!(counts.unauthenticated.load(std::sync::atomic::Ordering::Relaxed), 3);
    let adt = read_topic(&client, "clinical.adt");
    assert_eq!(adt.len(), 1, "only the authenticated sender's message is published");
    assert!(read_topic(&client, topics.dead_letter()).is_empty(), "nothing unauthenticated is dead-lettered");
}

/// An HTTP/1.1 answer read from a raw connection: status, headers, body.
struct HttpAnswer {
    status: u16,
    head: String,
    body: Value,
}

/// Sends one HTTP/1.1 request over `stream` and reads the whole answer (`Connection: close`).
async fn http(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: &str,
) -> HttpAnswer {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(authorization) = authorization {
        request.push_str(&format!("Authorization: {authorization}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // A TLS peer may close without close_notify after `Connection: close`; what was read counts.
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    HttpAnswer { status, head: head.to_ascii_lowercase(), body: serde_json::from_str(body).unwrap_or(Value::Null) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fhir_endpoint_over_https_stores_only_posts_carrying_its_bearer_token() {
    let (_cluster, client, topics) = support::mock_cluster();
    let files = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("sluice test server CA");
    let token = "a-long-random-token-for-the-gp-system-0123456789";
    let token_file = files.path().join("fhir-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();

    // A token short enough to guess is refused at start, and the message does not show it.
    let short_file = files.path().join("short-token");
    std::fs::write(&short_file, "guessable").unwrap();
    let config = FhirServerConfig { bearer_token: Some(SecretSource::File(short_file)), ..FhirServerConfig::default() };
    let error =
        services::bind_fhir(&client, &topics, "127.0.0.1:0".parse().unwrap(), config, PublisherConfig::default())
            .await
            .err()
            .expect("a short token is refused");
    assert!(error.contains("fewer than 24 characters") && !error.contains("guessable"), "{error}");

    let config = FhirServerConfig {
        tls: Some(listener_tls(files.path(), &server_ca, None)),
        bearer_token: Some(SecretSource::File(token_file)),
        ..FhirServerConfig::default()
    };
    let server = serve_fhir(&client, &topics, config).await;
    let address = server.address;

    let tls = connector(&server_ca, None);
    let connect = || async {
        let tcp = TcpStream::connect(address).await.unwrap();
        tls.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap()
    };
    let consent = fhir_fixture("consent_national_opt_out.json");

    // The capability statement is public; posting is not.
    let metadata = http(connect().await, "GET", "/metadata", None, "").await;
    assert_eq!((metadata.status, metadata.body["resourceType"].as_str()), (200, Some("CapabilityStatement")));
    for authorization in
        [None, Some("Bearer a-long-random-token-for-the-gp-system-0123456780"), Some("Basic Zm9vOmJhcg==")]
    {
        let answer = http(connect().await, "POST", "/Consent", authorization, &consent).await;
        assert_eq!(answer.status, 401, "{authorization:?}");
        assert!(answer.head.contains("www-authenticate: bearer"), "{}", answer.head);
        assert_eq!(answer.body["issue"][0]["code"], "security");
    }
    let stored = http(connect().await, "POST", "/Consent", Some(&format!("Bearer {token}")), &consent).await;
    assert_eq!(stored.status, 201, "{}", stored.body);

    // Plain HTTP to the HTTPS port gets no HTTP answer at all.
    let mut plain = TcpStream::connect(address).await.unwrap();
    plain.write_all(b"POST /Consent HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), plain.read_to_end(&mut answer)).await.unwrap();
    assert!(!answer.starts_with(b"HTTP/"), "plain HTTP is not served");

    let counts = server.stop().await;
    let [requests, stored, _events, refused, not_stored] = counts.snapshot();
    assert_eq!((requests, stored, refused, not_stored), (4, 1, 0, 0), "the POSTs: three refused, one stored");
    // Three 401s, and the plain-HTTP connection refused at the handshake.
    assert_eq!(counts.unauthenticated.load(std::sync::atomic::Ordering::Relaxed), 4);
    assert!(read_topic(&client, topics.dead_letter()).is_empty(), "nothing unauthenticated is dead-lettered");
}
