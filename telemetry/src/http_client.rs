//! The HTTP client the OTLP exporters send with: ureq, already used for lineage, so telemetry
//! adds no second HTTP stack. The SDK's batch processors export from their own threads, where a
//! blocking call is what they expect.

use std::time::Duration;

use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};

/// Sends OTLP requests with a blocking ureq agent.
#[derive(Debug)]
pub(crate) struct UreqHttpClient {
    /// The agent; collector answers of any status are returned to the exporter, which reports them.
    agent: ureq::Agent,
}

impl UreqHttpClient {
    /// A client whose requests give up after `timeout`.
    pub(crate) fn new(timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build();
        UreqHttpClient { agent: ureq::Agent::new_with_config(config) }
    }
}

#[async_trait::async_trait]
impl HttpClient for UreqHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut response = self.agent.run(Request::from_parts(parts, body.to_vec()))?;
        let status = response.status();
        let body = response.body_mut().read_to_vec()?;
        Ok(Response::builder().status(status).body(Bytes::from(body))?)
    }
}
