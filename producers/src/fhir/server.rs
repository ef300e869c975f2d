//! The FHIR R4 HTTP endpoint: `sluice produce fhir --listen ADDR`.
//!
//! A write-only FHIR server for EPR and GP systems: resources POSTed to it are mapped (see the
//! [module docs](super)), published to Kafka, and answered only once Kafka has stored them.
//!
//! | request | answer |
//! |---|---|
//! | `GET /metadata` | `200` a `CapabilityStatement` |
//! | `POST /{type}` with a resource of that type, `POST /` with any | `201 Created`, `Location: {type}/{id}`, an informational `OperationOutcome` |
//! | `POST /` with a `batch` Bundle | `200` a `batch-response`: `201 Created` per stored entry, `400`/`422` with an `OperationOutcome` per refused one |
//! | `POST /` with a `transaction` Bundle | `200` a `transaction-response` when every entry is stored; else nothing is published and the answer is the refused entries' status with their `OperationOutcome` |
//! | a body that is not JSON, or not a resource | `400` |
//! | a resource that breaks a rule | `422` (`400` when it cannot be read) |
//! | a body over the size limit | `413` |
//! | a content type other than `application/fhir+json` or `application/json` | `415` |
//! | a resource type this endpoint does not take, at its own URL | `404` |
//! | Kafka cannot store it now | `503` with `Retry-After`: nothing was acknowledged, send it again |
//! | a `POST` without the configured bearer token | `401` with `WWW-Authenticate: Bearer`; the body is not read |
//!
//! Every refused resource (or refused request body) is kept on the dead-letter topic with the
//! reason and the source reference (`fhir:Observation/obs-1`) in its headers before the answer is
//! sent; when even that cannot be stored the answer is `503`. A W3C `traceparent` request header
//! is continued into every event's headers.
//!
//! [`FhirServerConfig::tls`] serves HTTPS (with a client CA: only to senders holding a
//! certificate it issued); [`FhirServerConfig::bearer_token`] requires
//! `Authorization: Bearer <token>` on every `POST`. An unauthenticated request is answered
//! before its body is read, so nothing it carried is published, dead-lettered or logged.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    Router,
    extract::{Path, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_telemetry::SpanKind;
use tokio::{net::TcpListener, sync::watch};
use tracing::{info, warn};

use super::{
    BundleKind, EntryOutcome, FhirDefaults, FhirError, IssueType, Mapped, ResponseEntry, SUPPORTED, bundle_response,
    information_outcome, map_request, operation_outcome,
};
use crate::clinical::{SubjectRecord, ValidEvent};
use crate::headers::{TRACEPARENT, TraceContext};
use crate::secure_listener::{
    ListenerTlsConfig, MIN_BEARER_TOKEN_CHARS, Secret, SecretSource, TlsIncoming, TlsTerminator, bearer_matches,
};
use crate::{Error, EventPublisher, Origin, Result, json_input};

/// The adapter name in the `sluice.source.adapter` header.
pub const ADAPTER: &str = "fhir-http";

/// Settings of the FHIR endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirServerConfig {
    /// Largest request body accepted, in bytes; larger ones get `413`. Bounds memory per request.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// ODS code recorded for resources that name no organisation; without one such resources
    /// are refused.
    #[serde(default)]
    pub organisation: Option<String>,
    /// Source system recorded for resources without `meta.source`.
    #[serde(default = "default_source_system")]
    pub source_system: String,
    /// HTTPS, and optionally client certificates (mutual TLS). Without it the endpoint speaks
    /// plain HTTP, for use only behind a TLS-terminating proxy or inside a trusted segment.
    #[serde(default)]
    pub tls: Option<ListenerTlsConfig>,
    /// Where the bearer token every `POST` must carry is kept (`{ env = "NAME" }` or
    /// `{ file = "PATH" }`); at least 24 characters. Without it any sender that can connect may post.
    #[serde(default)]
    pub bearer_token: Option<SecretSource>,
}

fn default_max_body_bytes() -> usize {
    16 << 20
}
fn default_source_system() -> String {
    "fhir".to_owned()
}

impl Default for FhirServerConfig {
    fn default() -> Self {
        FhirServerConfig {
            max_body_bytes: default_max_body_bytes(),
            organisation: None,
            source_system: default_source_system(),
            tls: None,
            bearer_token: None,
        }
    }
}

/// What the endpoint did. Every resource that was read is counted in exactly one of stored,
/// refused or not stored; a body over the size limit is answered `413` without being read.
#[derive(Debug, Default)]
pub struct ServerCounts {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Resources whose events Kafka stored.
    pub stored: AtomicU64,
    /// Events published for them.
    pub events: AtomicU64,
    /// Resources (or request bodies) refused and dead-lettered.
    pub refused: AtomicU64,
    /// Resources not stored because Kafka was unavailable (`503`).
    pub not_stored: AtomicU64,
    /// Requests refused for a missing or wrong bearer token (`401`, also counted in `requests`),
    /// and connections refused at the TLS handshake.
    pub unauthenticated: AtomicU64,
}

impl ServerCounts {
    /// A plain copy: (requests, stored, events, refused, not stored).
    pub fn snapshot(&self) -> [u64; 5] {
        [&self.requests, &self.stored, &self.events, &self.refused, &self.not_stored].map(|c| c.load(Ordering::Relaxed))
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// What every request handler shares.
struct Shared {
    /// Publishes events and dead letters.
    publisher: Arc<EventPublisher<'static>>,
    /// Organisation and source system for resources that carry none.
    defaults: FhirDefaults,
    /// Body size limit.
    max_body_bytes: usize,
    /// Outcomes.
    counts: Arc<ServerCounts>,
    /// The bearer token every `POST` must carry, when configured.
    bearer_token: Option<Secret>,
}

/// A bound FHIR endpoint, ready to [`serve`](FhirServer::serve).
pub struct FhirServer {
    /// The bound socket.
    listener: TcpListener,
    /// State shared with the handlers.
    shared: Arc<Shared>,
    /// Terminates TLS on each connection, when configured.
    tls: Option<TlsTerminator>,
}

impl FhirServer {
    /// Binds `address` (port 0 picks a free port), after loading the TLS files and reading the
    /// bearer token the config names.
    pub async fn bind(
        address: SocketAddr,
        publisher: Arc<EventPublisher<'static>>,
        config: FhirServerConfig,
    ) -> Result<Self> {
        let tls = config.tls.as_ref().map(TlsTerminator::new).transpose()?;
        let bearer_token = config.bearer_token.as_ref().map(read_bearer_token).transpose()?;
        let listener = TcpListener::bind(address).await.map_err(|source| Error::Listen { address, source })?;
        let defaults = FhirDefaults { organisation: config.organisation, source_system: config.source_system };
        let shared =
            Shared { publisher, defaults, max_body_bytes: config.max_body_bytes, counts: Arc::default(), bearer_token };
        Ok(FhirServer { listener, shared: Arc::new(shared), tls })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|source| Error::Listen { address: ([0, 0, 0, 0], 0).into(), source })
    }

    /// The outcome counters, readable while it serves.
    pub fn counts(&self) -> Arc<ServerCounts> {
        self.shared.counts.clone()
    }

    /// Serves until `shutdown` turns true, then finishes the requests in hand.
    pub async fn serve(self, mut shutdown: watch::Receiver<bool>) -> Result<Arc<ServerCounts>> {
        let address = self.local_addr()?;
        let counts = self.shared.counts.clone();
        let bearer_token = self.shared.bearer_token.is_some();
        info!(%address, tls = self.tls.is_some(), bearer_token, "FHIR endpoint ready");
        if self.tls.is_none() && !address.ip().is_loopback() {
            warn!(
                %address,
                "FHIR endpoint without TLS: resources{} cross the network in clear unless a TLS proxy sits in front",
                if bearer_token { " and the bearer token" } else { "" }
            );
        }
        if !bearer_token && self.tls.as_ref().is_none_or(|tls| !tls.requires_client_certificates()) {
            warn!(%address, "FHIR endpoint without sender authentication: any client that can reach it may post");
        }
        let router = Router::new()
            .route("/metadata", get(capability_statement))
            .route("/", post(create_at_base))
            .route("/{resource_type}", post(create_of_type))
            .fallback(not_found)
            .with_state(self.shared);
        let stopping = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
            info!("FHIR endpoint stopping; finishing requests in hand");
        };
        let served = match self.tls {
            None => axum::serve(self.listener, router).with_graceful_shutdown(stopping).await,
            Some(tls) => {
                let refused = counts.clone();
                let incoming = TlsIncoming::new(self.listener, tls, move || add(&refused.unauthenticated, 1))
                    .map_err(|source| Error::Listen { address, source })?;
                axum::serve(incoming, router).with_graceful_shutdown(stopping).await
            }
        };
        served.map_err(|source| Error::Listen { address, source })?;
        Ok(counts)
    }
}

/// Reads the endpoint's bearer token and refuses one short enough to guess.
fn read_bearer_token(source: &SecretSource) -> Result<Secret> {
    let token = source.read().map_err(|reason| Error::Secret { what: "the FHIR bearer token", reason })?;
    if token.expose().chars().count() < MIN_BEARER_TOKEN_CHARS {
        return Err(Error::Secret {
            what: "the FHIR bearer token",
            reason: format!("{} holds fewer than {MIN_BEARER_TOKEN_CHARS} characters", source.describe()),
        });
    }
    Ok(token)
}

/// `401`: the request did not carry the endpoint's bearer token.
fn unauthenticated() -> Response {
    let error = FhirError::new(
        401,
        IssueType::Security,
        "Resource",
        "this endpoint requires an Authorization: Bearer token; nothing was read or stored",
    );
    let mut response = fhir_json(StatusCode::UNAUTHORIZED, &operation_outcome(&[&error]));
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"sluice\""));
    response
}

/// A FHIR JSON response.
fn fhir_json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+json"));
    response
}

fn refused_response(error: &FhirError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
    fhir_json(status, &operation_outcome(&[error]))
}

/// `503`: nothing was acknowledged as stored; the client sends it again.
fn unavailable() -> Response {
    let error = FhirError::new(
        503,
        IssueType::Processing,
        "Resource",
        "the resources could not be stored now; nothing was accepted: send them again",
    );
    let mut response = fhir_json(StatusCode::SERVICE_UNAVAILABLE, &operation_outcome(&[&error]));
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

async fn capability_statement() -> Response {
    let resources: Vec<Value> =
        SUPPORTED.iter().map(|kind| json!({ "type": kind, "interaction": [{ "code": "create" }] })).collect();
    fhir_json(
        StatusCode::OK,
        &json!({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": Utc::now().format("%Y-%m-%d").to_string(),
            "kind": "instance",
            "software": { "name": "sluice", "version": env!("CARGO_PKG_VERSION") },
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json", "json"],
            "rest": [{
                "mode": "server",
                "documentation": "Write-only: resources are mapped to clinical events and published to Kafka.",
                "resource": resources,
                "interaction": [{ "code": "batch" }, { "code": "transaction" }],
            }],
        }),
    )
}

async fn not_found() -> Response {
    let error = FhirError::new(
        404,
        IssueType::NotSupported,
        "Resource",
        "only POST of supported resources and GET /metadata are served",
    );
    fhir_json(StatusCode::NOT_FOUND, &operation_outcome(&[&error]))
}

async fn create_at_base(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    handle(&shared, None, request).await
}

async fn create_of_type(
    State(shared): State<Arc<Shared>>,
    Path(resource_type): Path<String>,
    request: Request,
) -> Response {
    let Some(expected) = SUPPORTED.iter().find(|kind| **kind == resource_type) else {
        return not_found().await;
    };
    handle(&shared, Some(expected), request).await
}

/// Reads, maps, dead-letters what is refused, publishes what is not, and answers.
async fn handle(shared: &Shared, expected_type: Option<&str>, request: Request) -> Response {
    add(&shared.counts.requests, 1);
    if let Some(token) = &shared.bearer_token
        && !bearer_matches(request.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes), token)
    {
        warn!("FHIR request refused: missing or wrong bearer token");
        add(&shared.counts.unauthenticated, 1);
        return unauthenticated();
    }
    let (_request_span, trace) = crate::telemetry::request_span(
        "receive fhir request",
        SpanKind::Server,
        ADAPTER,
        caller_trace(request.headers()),
    );
    if let Some(refusal) = unacceptable_content_type(request.headers()) {
        return refusal;
    }
    let body = match axum::body::to_bytes(request.into_body(), shared.max_body_bytes).await {
        Ok(body) => body,
        Err(_) => {
            let error = FhirError::new(
                413,
                IssueType::Processing,
                "Resource",
                format!("the request body is larger than {} bytes, or could not be read", shared.max_body_bytes),
            );
            return fhir_json(StatusCode::PAYLOAD_TOO_LARGE, &operation_outcome(&[&error]));
        }
    };
    let mapped = json_input::utf8(&body)
        .map_err(|message| FhirError::new(400, IssueType::Structure, "Resource", message))
        .and_then(|text| {
            serde_json::from_str::<Value>(text)
                .map_err(|error| FhirError::new(400, IssueType::Structure, "Resource", json_input::describe(&error)))
        })
        .and_then(|json| map_request(&json, expected_type, &shared.defaults, Utc::now()));
    let mapped = match mapped {
        Ok(mapped) => mapped,
        Err(error) => {
            let reference = format!("fhir:{}", expected_type.unwrap_or("Resource"));
            return match dead_letter(shared, &body, &error.to_string(), &reference, &trace).await {
                Ok(()) => refused_response(&error),
                Err(()) => unavailable(),
            };
        }
    };
    match mapped {
        Mapped::Single(entry) => single(shared, &body, entry, &trace).await,
        Mapped::Batch { entries, .. } => batch(shared, &body, entries, &trace).await,
        Mapped::Transaction { bundle_id, entries } => transaction(shared, &body, bundle_id, entries, &trace).await,
    }
}

async fn single(shared: &Shared, body: &[u8], entry: EntryOutcome, trace: &TraceContext) -> Response {
    let reference = format!("fhir:{}", entry.reference);
    match entry.result {
        Err(error) => match dead_letter(shared, body, &error.to_string(), &reference, trace).await {
            Ok(()) => refused_response(&error),
            Err(()) => unavailable(),
        },
        Ok(events) => {
            let count = events.len();
            if publish(shared, &[(into_records(events), reference)], trace).await.is_err() {
                return unavailable();
            }
            let mut response =
                fhir_json(StatusCode::CREATED, &information_outcome(&format!("stored as {count} event(s)")));
            if let Some(location) = location(&entry.reference)
                && let Ok(value) = HeaderValue::from_str(&location)
            {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
    }
}

async fn batch(shared: &Shared, body: &[u8], entries: Vec<EntryOutcome>, trace: &TraceContext) -> Response {
    let body_json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut responses = Vec::with_capacity(entries.len());
    let mut accepted = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let reference = format!("fhir:{}", entry.reference);
        match entry.result {
            Err(error) => {
                let resource = body_json["entry"][index].to_string();
                if dead_letter(shared, resource.as_bytes(), &error.to_string(), &reference, trace).await.is_err() {
                    return unavailable();
                }
                responses.push(ResponseEntry::refused(&error));
            }
            Ok(events) => {
                responses.push(created(&entry.reference));
                accepted.push((into_records(events), reference));
            }
        }
    }
    if publish(shared, &accepted, trace).await.is_err() {
        return unavailable();
    }
    fhir_json(StatusCode::OK, &bundle_response(BundleKind::BatchResponse, &responses))
}

async fn transaction(
    shared: &Shared,
    body: &[u8],
    bundle_id: Option<String>,
    entries: Vec<EntryOutcome>,
    trace: &TraceContext,
) -> Response {
    let errors: Vec<&FhirError> = entries.iter().filter_map(|entry| entry.result.as_ref().err()).collect();
    if !errors.is_empty() {
        // All or nothing: the whole Bundle is kept as a dead letter with every reason.
        let reason = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ");
        let reference = format!("fhir:Bundle/{}", bundle_id.as_deref().unwrap_or("-"));
        if dead_letter(shared, body, &reason, &reference, trace).await.is_err() {
            return unavailable();
        }
        let status = if errors.iter().any(|e| e.status == 400) {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        return fhir_json(status, &operation_outcome(&errors));
    }
    let responses: Vec<ResponseEntry> = entries.iter().map(|entry| created(&entry.reference)).collect();
    let accepted: Vec<(Vec<SubjectRecord>, String)> = entries
        .into_iter()
        .map(|entry| (into_records(entry.result.expect("no refused entries")), format!("fhir:{}", entry.reference)))
        .collect();
    if publish(shared, &accepted, trace).await.is_err() {
        return unavailable();
    }
    fhir_json(StatusCode::OK, &bundle_response(BundleKind::TransactionResponse, &responses))
}

fn into_records(events: Vec<ValidEvent>) -> Vec<SubjectRecord> {
    events.into_iter().map(ValidEvent::into_record).collect()
}

/// `201 Created` for an entry, with its location when it has an id.
fn created(reference: &str) -> ResponseEntry {
    ResponseEntry { status: "201 Created".to_owned(), location: location(reference), outcome: None }
}

/// `Observation/obs-1` for a resource with an id; none for `Bundle/…/entry/n` or `Type/-`.
fn location(reference: &str) -> Option<String> {
    let (kind, id) = reference.split_once('/')?;
    (kind != "Bundle" && id != "-").then(|| reference.to_owned())
}

/// Publishes the records of every resource (with its source reference) and waits for Kafka;
/// counts the outcome.
async fn publish(
    shared: &Shared,
    resources: &[(Vec<SubjectRecord>, String)],
    trace: &TraceContext,
) -> std::result::Result<(), ()> {
    let records: Vec<(&SubjectRecord, Origin<'_>)> = resources
        .iter()
        .flat_map(|(records, reference)| {
            let origin = Origin { source_reference: reference, adapter: ADAPTER, trace, fields_left_out: &[] };
            records.iter().map(move |record| (record, origin))
        })
        .collect();
    match shared.publisher.publish_each(&records).await {
        Ok(_) => {
            add(&shared.counts.stored, resources.len() as u64);
            add(&shared.counts.events, records.len() as u64);
            Ok(())
        }
        Err(error) => {
            warn!(%error, resources = resources.len(), "FHIR resources not stored; answered 503");
            add(&shared.counts.not_stored, resources.len() as u64);
            Err(())
        }
    }
}

/// Keeps a refused body or resource on the dead-letter topic, with the reason.
async fn dead_letter(
    shared: &Shared,
    payload: &[u8],
    reason: &str,
    reference: &str,
    trace: &TraceContext,
) -> std::result::Result<(), ()> {
    let origin = Origin { source_reference: reference, adapter: ADAPTER, trace, fields_left_out: &[] };
    match shared.publisher.dead_letter(payload, reason, origin).await {
        Ok(_) => {
            info!(reason, "FHIR resource refused and dead-lettered");
            add(&shared.counts.refused, 1);
            Ok(())
        }
        Err(error) => {
            warn!(%error, "a refused FHIR resource could not be dead-lettered; answered 503");
            add(&shared.counts.not_stored, 1);
            Err(())
        }
    }
}

/// The caller's trace, from the request's `traceparent` header, if it sent a valid one.
fn caller_trace(headers: &HeaderMap) -> Option<TraceContext> {
    headers.get(TRACEPARENT).and_then(|value| value.to_str().ok()).and_then(TraceContext::parse)
}

/// `415` unless the body is declared FHIR JSON or JSON (a missing content type is read as JSON).
fn unacceptable_content_type(headers: &HeaderMap) -> Option<Response> {
    let declared = headers.get(header::CONTENT_TYPE)?.to_str().unwrap_or_default();
    let media_type = declared.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if matches!(media_type.as_str(), "application/fhir+json" | "application/json" | "") {
        return None;
    }
    let error = FhirError::new(
        415,
        IssueType::NotSupported,
        "Resource",
        "the body must be application/fhir+json (or application/json)",
    );
    Some(fhir_json(StatusCode::UNSUPPORTED_MEDIA_TYPE, &operation_outcome(&[&error])))
}
