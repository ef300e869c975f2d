//! The registry's HTTP API (see the crate documentation for the requests it answers).

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::{Path, RawQuery, State, rejection::JsonRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::watch};

use crate::{COMPATIBILITY, CatalogueRegistry, Error, Registered};

/// The media type Confluent's registry answers with; clients accept it and plain JSON alike.
const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A bound registry, ready to serve.
pub struct RegistryServer {
    /// The bound socket.
    listener: TcpListener,
    /// What every request is answered from.
    registry: Arc<CatalogueRegistry>,
}

impl RegistryServer {
    /// Binds `address` (port 0 picks a free port).
    pub async fn bind(address: SocketAddr, registry: CatalogueRegistry) -> std::io::Result<Self> {
        Ok(RegistryServer { listener: TcpListener::bind(address).await?, registry: Arc::new(registry) })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` turns true, then finishes the requests in hand.
    pub async fn serve(self, mut shutdown: watch::Receiver<bool>) -> std::io::Result<()> {
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        axum::serve(self.listener, router(self.registry)).with_graceful_shutdown(stop).await
    }
}

/// The API's routes over `registry`.
pub fn router(registry: Arc<CatalogueRegistry>) -> Router {
    use axum::routing::post;
    Router::new()
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(read_only))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(version).delete(read_only))
        .route("/subjects/{subject}/versions/{version}/schema", get(version_schema))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route("/schemas/types", get(|| async { answer(json!(["AVRO"])) }))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(compatibility))
        .route("/compatibility/subjects/{subject}/versions", post(compatibility_latest))
        .route("/config", get(config).put(read_only))
        .route("/config/{subject}", get(config).put(read_only).delete(read_only))
        .route("/mode", get(|| async { answer(json!({ "mode": "READONLY" })) }).put(read_only))
        .route("/", get(|| async { answer(json!({})) }))
        .with_state(registry)
}

type Shared = State<Arc<CatalogueRegistry>>;

/// A registration, lookup or compatibility request. Other keys clients send (`references`,
/// `metadata`, `ruleSet`) are accepted and play no part.
#[derive(Debug, Deserialize)]
struct SchemaRequest {
    /// The schema, as JSON text.
    schema: String,
    /// `AVRO` when present: the only type this registry holds.
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
}

impl SchemaRequest {
    /// The schema text of a well-formed Avro request.
    fn avro(request: Result<Json<SchemaRequest>, JsonRejection>) -> Result<String, Error> {
        let Json(request) = request.map_err(|rejection| Error::InvalidSchema(rejection.body_text()))?;
        match request.schema_type.as_deref() {
            None | Some("AVRO") => Ok(request.schema),
            Some(other) => Err(Error::InvalidSchema(format!("schema type {other} is not served here; only AVRO"))),
        }
    }
}

fn answer(body: Value) -> Response {
    ([(header::CONTENT_TYPE, MEDIA_TYPE)], body.to_string()).into_response()
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let code = self.error_code();
        let status = StatusCode::from_u16(if code < 1000 { code as u16 } else { (code / 100) as u16 })
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({ "error_code": code, "message": self.to_string() });
        (status, [(header::CONTENT_TYPE, MEDIA_TYPE)], body.to_string()).into_response()
    }
}

fn described(registered: Registered<'_>) -> Value {
    json!({
        "subject": registered.subject,
        "version": registered.version.version(),
        "id": registered.id(),
        "schema": registered.version.json(),
    })
}

fn schema_id(id: &str) -> Result<u32, Error> {
    id.parse().map_err(|_| Error::SchemaIdNotFound(0))
}

async fn subjects(State(registry): Shared) -> Response {
    answer(json!(registry.subjects()))
}

async fn versions(State(registry): Shared, Path(subject): Path<String>) -> Result<Response, Error> {
    let numbers: Vec<u32> = registry.versions(&subject)?.iter().map(|r| r.version.version()).collect();
    Ok(answer(json!(numbers)))
}

async fn version(State(registry): Shared, Path((subject, version)): Path<(String, String)>) -> Result<Response, Error> {
    Ok(answer(described(registry.version(&subject, &version)?)))
}

async fn version_schema(
    State(registry): Shared,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, Error> {
    Ok(answer_schema(registry.version(&subject, &version)?.version.json()))
}

fn answer_schema(json: &str) -> Response {
    ([(header::CONTENT_TYPE, MEDIA_TYPE)], json.to_owned()).into_response()
}

async fn register(
    State(registry): Shared,
    Path(subject): Path<String>,
    request: Result<Json<SchemaRequest>, JsonRejection>,
) -> Result<Response, Error> {
    let schema = SchemaRequest::avro(request)?;
    let found = registry.find(&subject, &schema);
    match &found {
        Ok(registered) => tracing::debug!(subject, id = registered.id(), "registration of a catalogued schema"),
        Err(error) => tracing::info!(subject, %error, "registration refused"),
    }
    let registered = found?;
    Ok(answer(json!({ "id": registered.id(), "version": registered.version.version(), "subject": registered.subject })))
}

async fn lookup(
    State(registry): Shared,
    Path(subject): Path<String>,
    request: Result<Json<SchemaRequest>, JsonRejection>,
) -> Result<Response, Error> {
    let schema = SchemaRequest::avro(request)?;
    match registry.find(&subject, &schema) {
        Ok(registered) => Ok(answer(described(registered))),
        // A registry answers a schema it does not hold under the subject with 40403.
        Err(Error::NotCatalogued { .. }) => {
            let body = json!({ "error_code": 40403, "message": "Schema not found" });
            Ok((StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, MEDIA_TYPE)], body.to_string()).into_response())
        }
        Err(error) => Err(error),
    }
}

async fn schema_by_id(State(registry): Shared, Path(id): Path<String>) -> Result<Response, Error> {
    Ok(answer(json!({ "schema": registry.schema(schema_id(&id)?)? })))
}

async fn raw_schema_by_id(State(registry): Shared, Path(id): Path<String>) -> Result<Response, Error> {
    Ok(answer_schema(registry.schema(schema_id(&id)?)?))
}

async fn subjects_by_id(State(registry): Shared, Path(id): Path<String>) -> Result<Response, Error> {
    let subjects: Vec<&str> = registry.by_id(schema_id(&id)?)?.iter().map(|r| r.subject).collect();
    Ok(answer(json!(subjects)))
}

async fn versions_by_id(State(registry): Shared, Path(id): Path<String>) -> Result<Response, Error> {
    let versions: Vec<Value> = registry
        .by_id(schema_id(&id)?)?
        .iter()
        .map(|r| json!({ "subject": r.subject, "version": r.version.version() }))
        .collect();
    Ok(answer(json!(versions)))
}

async fn compatibility(
    State(registry): Shared,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    request: Result<Json<SchemaRequest>, JsonRejection>,
) -> Result<Response, Error> {
    let schema = SchemaRequest::avro(request)?;
    let reasons = registry.compatibility(&subject, &version, &schema)?;
    let mut body = json!({ "is_compatible": reasons.is_empty() });
    if query.is_some_and(|query| query.split('&').any(|pair| pair == "verbose=true")) {
        body["messages"] = json!(reasons);
    }
    Ok(answer(body))
}

async fn compatibility_latest(
    registry: Shared,
    Path(subject): Path<String>,
    query: RawQuery,
    request: Result<Json<SchemaRequest>, JsonRejection>,
) -> Result<Response, Error> {
    compatibility(registry, Path((subject, "latest".to_owned())), query, request).await
}

async fn config() -> Response {
    answer(json!({ "compatibilityLevel": COMPATIBILITY, "compatibility": COMPATIBILITY }))
}

async fn read_only() -> Error {
    Error::ReadOnly
}
