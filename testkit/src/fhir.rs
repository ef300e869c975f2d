//! A FHIR R4 sender's end of the endpoint, for tests of `sluice produce fhir`: a real HTTP
//! client (ureq, on a blocking thread) that POSTs a body and reads the answer.

use std::net::SocketAddr;

use serde_json::Value;

/// An HTTP answer: the status, the headers the tests look at, and the JSON body.
#[derive(Debug)]
pub struct FhirAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The `Location` header, for a created resource.
    pub location: Option<String>,
    /// The `Retry-After` header, when the endpoint asks to be tried again.
    pub retry_after: Option<String>,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
}

/// POSTs `body` as `content_type` to `path` at `address`, with a W3C `traceparent` if given.
pub async fn post(
    address: SocketAddr,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
    traceparent: Option<&str>,
) -> FhirAnswer {
    let url = format!("http://{address}{path}");
    let content_type = content_type.to_owned();
    let traceparent = traceparent.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut request = agent.post(&url).header("Content-Type", &content_type);
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", &traceparent);
        }
        let mut response = request.send(&body[..]).unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (location, retry_after) = (header("location"), header("retry-after"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        FhirAnswer { status, location, retry_after, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
    })
    .await
    .expect("the HTTP client does not panic")
}

/// POSTs a FHIR JSON resource or Bundle (`application/fhir+json`).
pub async fn post_json(address: SocketAddr, path: &str, body: &str) -> FhirAnswer {
    post(address, path, "application/fhir+json", body.as_bytes().to_vec(), None).await
}
