//! The MLLP listener that hospital interface engines point at: `sluice produce hl7 --listen ADDR`.
//!
//! Each connection carries one message at a time: the listener reads a framed message, maps and
//! validates it, publishes its events, and only then writes the ACK and reads the next message.
//!
//! | what arrived | what happens | ACK |
//! |---|---|---|
//! | a valid ADT or ORU^R01 message | its events are published; the ACK waits for Kafka | `AA` |
//! | the same sender and MSH-10 again, after an `AA` | nothing is published again | `AA` |
//! | content that fails validation | the message goes to the dead-letter topic with the reason | `AE` + ERR |
//! | a message that cannot be parsed, or an unsupported type, trigger or version | dead-letter topic | `AR` + ERR |
//! | a frame over `max_message_bytes` | its first `max_message_bytes` go to the dead-letter topic | `AR` + ERR |
//! | bytes outside a frame, or a frame cut short by a new start block | they go to the dead-letter topic | none: there is no message to answer |
//! | anything, while Kafka cannot store it | nothing is acknowledged as stored | `AE` + ERR 207 |
//!
//! A message that was refused is never acknowledged with `AA`; a message that was acknowledged
//! with `AA` is in Kafka. Shutdown (SIGINT/SIGTERM) stops accepting connections, lets every
//! connection finish the message in hand, and closes them.
//!
//! With [`MllpListenerConfig::tls`] every connection must complete a TLS handshake first
//! (MLLP over TLS); with a client CA in it, the sender must also present a certificate that CA
//! issued. A connection that fails the handshake is closed before a byte of it is read as HL7:
//! nothing from it is published, dead-lettered or acknowledged, and it is counted in
//! [`ListenerCounts::unauthenticated`].

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sluice_telemetry::SpanKind;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpListener,
    sync::{Semaphore, watch},
    task::JoinSet,
};
use tracing::{debug, info, warn};

use super::ack::{Acknowledged, Receiver, acknowledgement, not_stored};
use super::local_codes::LocalCodes;
use super::map::{ErrorCode, FieldWarning, Hl7Error, MessageHeader, map_message};
use super::message::{Message, ParseError};
use super::mllp::{MllpDecoder, MllpError, frame};
use super::seen::{Claim, SeenMessages};
use crate::clinical::ValidEvent;
use crate::headers::TraceContext;
use crate::secure_listener::{ListenerTlsConfig, TlsTerminator};
use crate::{Error, EventPublisher, Origin, Result};

/// The adapter name in the `sluice.source.adapter` header.
pub const ADAPTER: &str = "hl7-mllp";

/// Settings of the MLLP listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MllpListenerConfig {
    /// Largest HL7 message accepted, in bytes; a larger one is refused with `AR`. Bounds the
    /// memory each connection can take.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Most connections served at once; more wait in the operating system's accept queue.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a connection may stay silent before it is closed.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// MSH-3 of every ACK (the receiving application the senders address).
    #[serde(default = "default_receiving_application")]
    pub receiving_application: String,
    /// MSH-4 of every ACK (the receiving facility, e.g. the ODS code of the organisation).
    #[serde(default = "default_receiving_facility")]
    pub receiving_facility: String,
    /// How many stored messages are remembered to recognise a sender's repeats.
    #[serde(default = "default_remembered_messages")]
    pub remembered_messages: usize,
    /// Directory holding the journal of stored messages, so repeats are recognised across
    /// restarts. Without one they are remembered in memory only.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// TLS for every connection, and optionally client certificates (mutual TLS). Without it
    /// the listener speaks plain MLLP, for use only inside a trusted network segment.
    #[serde(default)]
    pub tls: Option<ListenerTlsConfig>,
    /// A TOML file of per-sender local code tables ([`super::local_codes`]), read when the
    /// listener binds. Without one, local codes are not mapped.
    #[serde(default)]
    pub local_codes: Option<PathBuf>,
}

fn default_max_message_bytes() -> usize {
    1 << 20
}
fn default_max_connections() -> usize {
    64
}
fn default_idle_timeout_secs() -> u64 {
    600
}
fn default_receiving_application() -> String {
    "SLUICE".to_owned()
}
fn default_receiving_facility() -> String {
    "SLUICE".to_owned()
}
fn default_remembered_messages() -> usize {
    1_000_000
}

impl Default for MllpListenerConfig {
    fn default() -> Self {
        MllpListenerConfig {
            max_message_bytes: default_max_message_bytes(),
            max_connections: default_max_connections(),
            idle_timeout_secs: default_idle_timeout_secs(),
            receiving_application: default_receiving_application(),
            receiving_facility: default_receiving_facility(),
            remembered_messages: default_remembered_messages(),
            state_dir: None,
            tls: None,
            local_codes: None,
        }
    }
}

/// Name of the journal of stored messages in the state directory.
pub const JOURNAL_FILE: &str = "hl7-stored-messages.journal";

/// What the listener did, by outcome. Every message is counted in exactly one outcome.
#[derive(Debug, Default)]
pub struct ListenerCounts {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Messages whose events were published (`AA`).
    pub accepted: AtomicU64,
    /// Events published for those messages.
    pub events: AtomicU64,
    /// Repeats of stored messages, acknowledged again without publishing (`AA`).
    pub duplicates: AtomicU64,
    /// Messages refused and dead-lettered (`AE`/`AR` with the reason).
    pub refused: AtomicU64,
    /// Messages not stored because Kafka did not acknowledge them (`AE` 207): the sender resends.
    pub not_stored: AtomicU64,
    /// Stretches of bytes outside MLLP frames, and frames cut short by a new start block,
    /// dead-lettered without an ACK.
    pub framing_errors: AtomicU64,
    /// Connections closed because their TLS handshake failed: not TLS, no client certificate or
    /// one from another CA, or too slow. Also counted in `connections`; no message of theirs is
    /// counted anywhere else.
    pub unauthenticated: AtomicU64,
    /// Fields of stored messages left out of their events because their value could not be used
    /// (a local code without a table entry, a sex code outside HL7 table 0001, a postcode that is
    /// not a UK one); each was warned of in the ACK. Not an outcome: these messages are also
    /// counted in `accepted`.
    pub fields_left_out: AtomicU64,
}

impl ListenerCounts {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A plain copy: (connections, accepted, events, duplicates, refused, not stored).
    pub fn snapshot(&self) -> [u64; 6] {
        [&self.connections, &self.accepted, &self.events, &self.duplicates, &self.refused, &self.not_stored]
            .map(|c| c.load(Ordering::Relaxed))
    }
}

/// What every connection shares.
struct Shared {
    /// Publishes events and dead letters.
    publisher: Arc<EventPublisher<'static>>,
    /// Stored messages, for repeats.
    seen: Mutex<SeenMessages>,
    /// MSH-3/MSH-4 of our ACKs.
    receiver: Receiver,
    /// Settings.
    config: MllpListenerConfig,
    /// Outcomes.
    counts: Arc<ListenerCounts>,
    /// Terminates TLS on each connection, when configured.
    tls: Option<TlsTerminator>,
    /// The senders' local code tables (empty without a file).
    local_codes: LocalCodes,
}

/// A bound MLLP listener, ready to [`serve`](MllpListener::serve).
pub struct MllpListener {
    /// The bound socket.
    listener: TcpListener,
    /// State shared with connection tasks.
    shared: Arc<Shared>,
}

impl MllpListener {
    /// Binds `address` (port 0 picks a free port) and opens the journal of stored messages.
    pub async fn bind(
        address: SocketAddr,
        publisher: Arc<EventPublisher<'static>>,
        config: MllpListenerConfig,
    ) -> Result<Self> {
        let tls = config.tls.as_ref().map(TlsTerminator::new).transpose()?;
        let local_codes = match &config.local_codes {
            Some(path) => {
                let invalid = |reason: String| Error::LocalCodes { path: path.clone(), reason };
                let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
                LocalCodes::from_toml(&text).map_err(|e| invalid(e.to_string()))?
            }
            None => LocalCodes::default(),
        };
        let listener = TcpListener::bind(address).await.map_err(|source| Error::Listen { address, source })?;
        let seen = match &config.state_dir {
            Some(dir) => {
                let path = dir.join(JOURNAL_FILE);
                std::fs::create_dir_all(dir)
                    .and_then(|()| SeenMessages::open(&path, config.remembered_messages))
                    .map_err(|source| Error::State { path, source })?
            }
            None => SeenMessages::in_memory(config.remembered_messages),
        };
        let receiver =
            Receiver { application: config.receiving_application.clone(), facility: config.receiving_facility.clone() };
        let shared =
            Shared { publisher, seen: Mutex::new(seen), receiver, config, counts: Arc::default(), tls, local_codes };
        Ok(MllpListener { listener, shared: Arc::new(shared) })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|source| Error::Listen { address: ([0, 0, 0, 0], 0).into(), source })
    }

    /// The outcome counters, readable while it serves.
    pub fn counts(&self) -> Arc<ListenerCounts> {
        self.shared.counts.clone()
    }

    /// Serves connections until `shutdown` turns true, then waits for every connection to finish
    /// the message in hand.
    pub async fn serve(self, mut shutdown: watch::Receiver<bool>) -> Result<Arc<ListenerCounts>> {
        let address = self.local_addr()?;
        info!(%address, tls = self.shared.tls.is_some(), "MLLP listener ready");
        if !address.ip().is_loopback() {
            match &self.shared.tls {
                None => warn!(%address, "MLLP listener without TLS: any host that can reach it may send, in clear"),
                Some(tls) if !tls.requires_client_certificates() => {
                    warn!(%address, "MLLP listener without client certificates: any host that can reach it may send")
                }
                Some(_) => {}
            }
        }
        let permits = Arc::new(Semaphore::new(self.shared.config.max_connections.max(1)));
        let mut connections = JoinSet::new();
        loop {
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Running out of file descriptors and the like: wait and go on.
                    warn!(%error, "cannot accept an MLLP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            ListenerCounts::add(&self.shared.counts.connections, 1);
            let shared = self.shared.clone();
            let shutdown = shutdown.clone();
            connections.spawn(async move {
                match &shared.tls {
                    None => serve_connection(stream, peer, &shared, shutdown).await,
                    Some(tls) => match tls.handshake(stream).await {
                        Ok(stream) => serve_connection(stream, peer, &shared, shutdown).await,
                        Err(reason) => {
                            warn!(%peer, %reason, "MLLP connection refused: TLS handshake failed");
                            ListenerCounts::add(&shared.counts.unauthenticated, 1);
                        }
                    },
                }
                drop(permit);
            });
            // Reap finished connections so the set stays small.
            while connections.try_join_next().is_some() {}
        }
        info!(connections = connections.len(), "MLLP listener stopping; finishing messages in hand");
        while connections.join_next().await.is_some() {}
        Ok(self.shared.counts.clone())
    }
}

/// Reads framed messages from one connection and answers each before reading the next.
async fn serve_connection(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    peer: SocketAddr,
    shared: &Shared,
    mut shutdown: watch::Receiver<bool>,
) {
    debug!(%peer, "MLLP connection opened");
    let mut decoder = MllpDecoder::new(shared.config.max_message_bytes);
    let mut buffer = vec![0u8; 64 * 1024];
    let idle = Duration::from_secs(shared.config.idle_timeout_secs.max(1));
    loop {
        let answer = match decoder.next_message() {
            Ok(Some(message)) => Some(handle(shared, &message).await),
            Ok(None) => None,
            Err(error) => {
                let discarded = decoder.take_discarded();
                warn!(%peer, %error, "MLLP framing error; the bytes go to the dead-letter topic");
                let stored = dead_letter_framing(shared, &discarded, &error).await;
                match error {
                    MllpError::TooLarge { limit } => {
                        let outcome = if stored {
                            ListenerCounts::add(&shared.counts.refused, 1);
                            Hl7Error {
                                reject: true,
                                code: ErrorCode::ApplicationInternal,
                                location: String::new(),
                                message: format!("the message is larger than {limit} bytes"),
                            }
                        } else {
                            ListenerCounts::add(&shared.counts.not_stored, 1);
                            not_stored()
                        };
                        // The frame's first bytes usually hold MSH, so MSA-2 can name the message.
                        Some(ack(shared, &Acknowledged::salvage(&discarded), Err(&outcome)))
                    }
                    // No message to answer: the sender resends what it got no ACK for.
                    MllpError::OutsideFrame(_) | MllpError::NestedStart => {
                        ListenerCounts::add(&shared.counts.framing_errors, 1);
                        continue;
                    }
                }
            }
        };
        if let Some(answer) = answer {
            if let Err(error) = stream.write_all(&frame(&answer)).await {
                warn!(%peer, %error, "cannot write an ACK; closing the connection");
                break;
            }
            continue;
        }
        if *shutdown.borrow() {
            break;
        }
        let read = tokio::select! {
            read = stream.read(&mut buffer) => read,
            _ = shutdown.wait_for(|stop| *stop) => break,
            _ = tokio::time::sleep(idle) => {
                debug!(%peer, "MLLP connection idle; closing");
                break;
            }
        };
        match read {
            Ok(0) => break,
            Ok(n) => decoder.extend(&buffer[..n]),
            Err(error) => {
                warn!(%peer, %error, "MLLP connection failed");
                break;
            }
        }
    }
    let _ = stream.shutdown().await;
    debug!(%peer, "MLLP connection closed");
}

/// Handles one message and returns its ACK.
async fn handle(shared: &Shared, bytes: &[u8]) -> Vec<u8> {
    let (_request_span, trace) =
        crate::telemetry::request_span("receive hl7v2 message", SpanKind::Server, ADAPTER, None);
    let message = match Message::parse(bytes) {
        Ok(message) => message,
        Err(error) => {
            let original = Acknowledged::salvage(bytes);
            let error = Hl7Error {
                reject: true,
                code: parse_error_code(&error),
                location: if matches!(error, ParseError::NoMsh) { String::new() } else { "MSH".to_owned() },
                message: error.to_string(),
            };
            return refuse(shared, bytes, &original, &error, &trace).await;
        }
    };
    let original = Acknowledged::from_message(&message);
    let header = MessageHeader::read(&message);
    let mapped = match map_message(&message, Utc::now(), &shared.local_codes) {
        Ok(mapped) => mapped,
        Err(error) => return refuse(shared, bytes, &original, &error, &trace).await,
    };
    let key = format!("{}\t{}", header.sender(), header.control_id);
    let claim = shared.seen.lock().expect("no panics while holding the lock").claim(&key);
    match claim {
        Claim::AlreadyStored => {
            debug!(sender = header.sender(), control_id = header.control_id, "repeat of a stored message");
            ListenerCounts::add(&shared.counts.duplicates, 1);
            return ack(shared, &original, Ok(&[]));
        }
        Claim::InFlight => {
            ListenerCounts::add(&shared.counts.not_stored, 1);
            return ack(shared, &original, Err(&not_stored()));
        }
        Claim::New => {}
    }
    let records: Vec<_> = mapped.events.into_iter().map(ValidEvent::into_record).collect();
    let source_reference = header.source_reference();
    let left_out: Vec<&'static str> = mapped.warnings.iter().map(|warning| warning.location).collect();
    let origin =
        Origin { source_reference: &source_reference, adapter: ADAPTER, trace: &trace, fields_left_out: &left_out };
    match shared.publisher.publish_records(&records, origin).await {
        Ok(_) => {
            if let Err(error) = shared.seen.lock().expect("no panics while holding the lock").stored(&key) {
                // The events are in Kafka, so the answer is AA; only repeat detection suffers.
                warn!(%error, "cannot journal a stored message; a repeat of it would be published again");
            }
            ListenerCounts::add(&shared.counts.accepted, 1);
            ListenerCounts::add(&shared.counts.events, records.len() as u64);
            debug!(sender = header.sender(), control_id = header.control_id, events = records.len(), "stored");
            for warning in &mapped.warnings {
                // The position and why, never the value: the sender's team finds the message by
                // its control id.
                ListenerCounts::add(&shared.counts.fields_left_out, 1);
                crate::telemetry::HL7_FIELDS_LEFT_OUT
                    .add(1, &[opentelemetry::KeyValue::new("hl7.field", warning.location)]);
                info!(
                    sender = header.sender(),
                    control_id = header.control_id,
                    field = warning.location,
                    code = warning.code as u16,
                    "field left out of the events: {}",
                    warning.message
                );
            }
            ack(shared, &original, Ok(&mapped.warnings))
        }
        Err(error) => {
            shared.seen.lock().expect("no panics while holding the lock").release(&key);
            warn!(%error, sender = header.sender(), control_id = header.control_id, "message not stored; answered AE 207");
            ListenerCounts::add(&shared.counts.not_stored, 1);
            ack(shared, &original, Err(&not_stored()))
        }
    }
}

/// Keeps bytes a framing error discarded on the dead-letter topic, with the error as the reason;
/// whether Kafka stored them.
async fn dead_letter_framing(shared: &Shared, bytes: &[u8], error: &MllpError) -> bool {
    let trace = TraceContext::new_root();
    let origin = Origin { source_reference: "hl7:mllp-framing", adapter: ADAPTER, trace: &trace, fields_left_out: &[] };
    match shared.publisher.dead_letter(bytes, &error.to_string(), origin).await {
        Ok(_) => true,
        Err(kafka) => {
            warn!(error = %kafka, "bytes of an MLLP framing error could not be dead-lettered");
            false
        }
    }
}

/// Dead-letters a refused message with the reason, then answers with the error; when even the
/// dead letter cannot be stored, answers AE 207 so the sender keeps the message.
async fn refuse(
    shared: &Shared,
    bytes: &[u8],
    original: &Acknowledged,
    error: &Hl7Error,
    trace: &TraceContext,
) -> Vec<u8> {
    let source_reference =
        format!("hl7:{}^{}:{}", original.sending_application, original.sending_facility, original.control_id);
    let origin = Origin { source_reference: &source_reference, adapter: ADAPTER, trace, fields_left_out: &[] };
    match shared.publisher.dead_letter(bytes, &error.to_string(), origin).await {
        Ok(_) => {
            info!(
                code = error.code as u16,
                location = error.location,
                reject = error.reject,
                "message refused and dead-lettered"
            );
            ListenerCounts::add(&shared.counts.refused, 1);
            ack(shared, original, Err(error))
        }
        Err(kafka) => {
            warn!(error = %kafka, "a refused message could not be dead-lettered; answered AE 207");
            ListenerCounts::add(&shared.counts.not_stored, 1);
            ack(shared, original, Err(&not_stored()))
        }
    }
}

fn ack(shared: &Shared, original: &Acknowledged, outcome: std::result::Result<&[FieldWarning], &Hl7Error>) -> Vec<u8> {
    let control_id = format!("SLC{}", &uuid::Uuid::new_v4().simple().to_string()[..17]);
    acknowledgement(&shared.receiver, original, outcome, &control_id, Utc::now())
}

fn parse_error_code(error: &ParseError) -> ErrorCode {
    match error {
        ParseError::NoMsh | ParseError::BadSegmentName(_) => ErrorCode::SegmentSequence,
        ParseError::BadEncodingCharacters | ParseError::UnsupportedCharacterSet | ParseError::InvalidEncoding(_) => {
            ErrorCode::DataType
        }
    }
}
