//! TLS and sender authentication for the listeners source systems connect to: the MLLP listener
//! and the FHIR endpoint.
//!
//! Both take a [`ListenerTlsConfig`]: the listener's certificate chain and private key, and
//! optionally the CA certificates that issue senders' client certificates. With a client CA, a
//! sender must present a certificate that CA issued (mutual TLS); any other is refused during the
//! handshake, before it can send a byte of a message, and nothing it sent is published or
//! dead-lettered. Use a CA that issues certificates only to the interface engines allowed to send.
//!
//! The FHIR endpoint can also (or instead) require a bearer token, read from a file or an
//! environment variable ([`SecretSource`]); secrets are never taken from the command line, never
//! logged and never part of an error message.
//!
//! ```toml
//! [tls]
//! certificate_file = "/etc/sluice/tls/listener.crt"   # PEM: the certificate, then intermediates
//! private_key_file = "/etc/sluice/tls/listener.key"   # PEM: PKCS#8, PKCS#1 or SEC1
//! client_ca_file = "/etc/sluice/tls/senders-ca.crt"   # optional: mutual TLS
//! ```

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc},
    task::JoinHandle,
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        RootCertStore, ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
        server::WebPkiClientVerifier,
    },
    server::TlsStream,
};
use tracing::warn;

use crate::{Error, Result};

/// TLS settings of a listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConfig {
    /// PEM file holding the listener's certificate followed by any intermediate certificates.
    pub certificate_file: PathBuf,
    /// PEM file holding the certificate's private key. Read once, at start.
    pub private_key_file: PathBuf,
    /// PEM file of the CA certificates that issue senders' client certificates. When given,
    /// every sender must present a certificate one of them issued (mutual TLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Seconds a sender has to finish the TLS handshake before the connection is closed, so
    /// silent connections cannot hold the listener's slots.
    #[serde(default = "default_handshake_timeout_secs")]
    pub handshake_timeout_secs: u64,
}

fn default_handshake_timeout_secs() -> u64 {
    10
}

impl ListenerTlsConfig {
    /// TLS with the given certificate and key, without client certificates.
    pub fn new(certificate_file: PathBuf, private_key_file: PathBuf) -> Self {
        ListenerTlsConfig {
            certificate_file,
            private_key_file,
            client_ca_file: None,
            handshake_timeout_secs: default_handshake_timeout_secs(),
        }
    }
}

/// Terminates TLS for a listener: the loaded certificate, key and client CAs.
#[derive(Clone)]
pub struct TlsTerminator {
    /// rustls's acceptor, built once from the files.
    acceptor: TlsAcceptor,
    /// How long a handshake may take.
    handshake_timeout: Duration,
    /// Whether senders must present a client certificate.
    mutual: bool,
}

impl TlsTerminator {
    /// Loads the files `config` names and checks that the key fits the certificate.
    pub fn new(config: &ListenerTlsConfig) -> Result<Self> {
        let tls_error = |path: &PathBuf, reason: String| Error::Tls { path: path.clone(), reason };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.certificate_file)
            .and_then(|certificates| certificates.collect())
            .map_err(|e| tls_error(&config.certificate_file, e.to_string()))?;
        if chain.is_empty() {
            return Err(tls_error(&config.certificate_file, "no certificate in the file".to_owned()));
        }
        let key = PrivateKeyDer::from_pem_file(&config.private_key_file)
            .map_err(|e| tls_error(&config.private_key_file, e.to_string()))?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(&config.certificate_file, e.to_string()))?;
        let builder = match &config.client_ca_file {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for certificate in CertificateDer::pem_file_iter(path).map_err(|e| tls_error(path, e.to_string()))? {
                    let certificate = certificate.map_err(|e| tls_error(path, e.to_string()))?;
                    roots.add(certificate).map_err(|e| tls_error(path, e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(tls_error(path, "no CA certificate in the file".to_owned()));
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| tls_error(path, e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let server = builder
            .with_single_cert(chain, key)
            .map_err(|e| tls_error(&config.private_key_file, format!("does not fit the certificate: {e}")))?;
        Ok(TlsTerminator {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            handshake_timeout: Duration::from_secs(config.handshake_timeout_secs.max(1)),
            mutual: config.client_ca_file.is_some(),
        })
    }

    /// Whether senders must present a client certificate.
    pub fn requires_client_certificates(&self) -> bool {
        self.mutual
    }

    /// Runs the TLS handshake on an accepted connection. `Err` says why the sender was refused
    /// (no client certificate, one from another CA, not TLS at all, too slow); it holds no data
    /// the sender sent.
    pub async fn handshake(&self, stream: TcpStream) -> std::result::Result<TlsStream<TcpStream>, String> {
        match tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(stream)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no TLS handshake within {} s", self.handshake_timeout.as_secs())),
        }
    }
}

/// Most handshakes run at once by a [`TlsIncoming`]; more connections wait to be accepted.
const CONCURRENT_HANDSHAKES: usize = 64;

/// Accepted TCP connections after their TLS handshake, for `axum::serve`. Handshakes run on
/// their own tasks, so a slow or silent sender does not hold up others; failed ones are logged
/// and counted with `on_refused`, and never reach the server.
pub struct TlsIncoming {
    /// Connections whose handshake succeeded.
    connections: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    /// The listening address.
    local_addr: SocketAddr,
    /// The task accepting TCP connections; stopped when this is dropped.
    accepting: JoinHandle<()>,
}

impl TlsIncoming {
    /// Starts accepting on `listener`, terminating TLS with `terminator`.
    pub fn new(
        listener: TcpListener,
        terminator: TlsTerminator,
        on_refused: impl Fn() + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (sender, connections) = mpsc::channel(CONCURRENT_HANDSHAKES);
        let on_refused = Arc::new(on_refused);
        let slots = Arc::new(Semaphore::new(CONCURRENT_HANDSHAKES));
        let accepting = tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        warn!(%error, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (terminator, sender, on_refused) = (terminator.clone(), sender.clone(), on_refused.clone());
                tokio::spawn(async move {
                    match terminator.handshake(stream).await {
                        Ok(stream) => {
                            let _ = sender.send((stream, peer)).await;
                        }
                        Err(reason) => {
                            warn!(%peer, %reason, "TLS handshake failed; connection refused");
                            on_refused();
                        }
                    }
                    drop(slot);
                });
            }
        });
        Ok(TlsIncoming { connections, local_addr, accepting })
    }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsIncoming {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(connection) => connection,
            // The accepting task ended (only when it is aborted): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

/// Where a secret is kept: `{ env = "NAME" }` or `{ file = "PATH" }` in TOML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretSource {
    /// An environment variable of the process.
    Env(String),
    /// A file (e.g. a mounted Kubernetes secret); a trailing newline is removed.
    File(PathBuf),
}

impl SecretSource {
    /// Reads the secret. The error names the variable or file, never what it holds.
    pub fn read(&self) -> std::result::Result<Secret, String> {
        self.read_with(|name| std::env::var(name).ok())
    }

    /// [`read`](Self::read) with the environment given, for tests.
    pub fn read_with(&self, environment: impl Fn(&str) -> Option<String>) -> std::result::Result<Secret, String> {
        let value = match self {
            SecretSource::Env(name) => {
                environment(name).ok_or_else(|| format!("the environment variable {name} is not set"))?
            }
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        };
        if value.is_empty() {
            return Err(format!("{} is empty", self.describe()));
        }
        Ok(Secret(value))
    }

    /// The variable or file, for messages.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Env(name) => format!("the environment variable {name}"),
            SecretSource::File(path) => path.display().to_string(),
        }
    }
}

/// A secret value: its `Debug` form is redacted and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Shortest bearer token accepted, in characters: shorter ones are guessable.
pub const MIN_BEARER_TOKEN_CHARS: usize = 24;

/// Whether an `Authorization` header value carries `token` as its bearer token. The comparison
/// takes the same time wherever the first difference is.
pub fn bearer_matches(authorization: Option<&[u8]>, token: &Secret) -> bool {
    use subtle::ConstantTimeEq;
    let Some(value) = authorization else { return false };
    let Some(scheme) = value.get(..7) else { return false };
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return false;
    }
    let given = value[7..].trim_ascii();
    bool::from(given.ct_eq(token.expose().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_matches_only_itself_after_the_scheme() {
        let token = Secret("correct-horse-battery-staple-0001".to_owned());
        assert!(bearer_matches(Some(b"Bearer correct-horse-battery-staple-0001"), &token));
        assert!(bearer_matches(Some(b"bearer  correct-horse-battery-staple-0001 "), &token));
        assert!(!bearer_matches(Some(b"Bearer correct-horse-battery-staple-0002"), &token));
        assert!(!bearer_matches(Some(b"Bearer correct-horse-battery-staple-000"), &token));
        assert!(!bearer_matches(Some(b"Basic correct-horse-battery-staple-0001"), &token));
        assert!(!bearer_matches(Some(b"Bearer"), &token));
        assert!(!bearer_matches(None, &token));
    }

    #[test]
    fn secrets_are_read_from_a_variable_or_a_file_and_never_shown() {
        let environment = |name: &str| (name == "TOKEN").then(|| "from-the-environment".to_owned());
        let secret = SecretSource::Env("TOKEN".into()).read_with(environment).unwrap();
        assert_eq!(secret.expose(), "from-the-environment");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        let unset = SecretSource::Env("OTHER".into()).read_with(environment).unwrap_err();
        assert!(unset.contains("OTHER is not set"), "{unset}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "from-a-file\n").unwrap();
        assert_eq!(SecretSource::File(path.clone()).read().unwrap().expose(), "from-a-file");
        std::fs::write(&path, "\n").unwrap();
        assert!(SecretSource::File(path.clone()).read().unwrap_err().contains("is empty"));
        let missing = SecretSource::File(dir.path().join("absent")).read().unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");

        let parsed: SecretSource =
            toml::from_str::<toml::Table>("token = { env = \"TOKEN\" }").unwrap()["token"].clone().try_into().unwrap();
        assert_eq!(parsed, SecretSource::Env("TOKEN".into()));
    }

    #[test]
    fn missing_or_mismatched_files_are_reported_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let config = ListenerTlsConfig::new(dir.path().join("absent.crt"), dir.path().join("absent.key"));
        let error = TlsTerminator::new(&config).err().unwrap().to_string();
        assert!(error.contains("absent.crt"), "{error}");
        std::fs::write(dir.path().join("empty.crt"), "not PEM\n").unwrap();
        let config = ListenerTlsConfig::new(dir.path().join("empty.crt"), dir.path().join("absent.key"));
        let error = TlsTerminator::new(&config).err().unwrap().to_string();
        assert!(error.contains("empty.crt") && error.contains("no certificate"), "{error}");
    }
}
