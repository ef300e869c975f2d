//! `sluice produce fhir`: a write-only FHIR R4 endpoint.

use std::process::ExitCode;

use sluice_producers::fhir::server::{FhirServerConfig, ServerCounts};

use super::PublishArgs;
use crate::{commands::listener_args, services};

/// `sluice produce fhir`.
#[derive(clap::Args)]
pub struct FhirArgs {
    /// Address to listen on, e.g. 0.0.0.0:8080.
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// ODS code recorded for resources that name no organisation (without it they are refused).
    #[arg(long)]
    organisation: Option<String>,
    /// Source system recorded for resources without meta.source.
    #[arg(long, default_value = "fhir")]
    source_system: String,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_body_bytes: usize,
    #[command(flatten)]
    tls: listener_args::TlsArgs,
    #[command(flatten)]
    bearer_token: listener_args::BearerTokenArgs,
    #[command(flatten)]
    publish: PublishArgs,
}

impl FhirArgs {
    /// Serves until stopped, then prints what the endpoint did.
    pub fn run(self) -> Result<ExitCode, String> {
        let (topics, client) = self.publish.kafka.connect()?;
        let config = FhirServerConfig {
            max_body_bytes: self.max_body_bytes,
            organisation: self.organisation,
            source_system: self.source_system,
            tls: self.tls.config(),
            bearer_token: self.bearer_token.source(),
        };
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        let publisher = self.publish.publisher()?;
        let counts = crate::commands::run_service(async |shutdown| {
            let server = services::bind_fhir(&client, &topics, self.listen, config, publisher).await?;
            let address = server.local_addr().map_err(|e| e.to_string())?;
            eprintln!("sluice: FHIR R4 endpoint on {scheme}://{address}/");
            services::serve_fhir(server, shutdown).await
        })?;
        print!("{}", render_fhir(&counts));
        Ok(ExitCode::SUCCESS)
    }
}

/// The summary a FHIR endpoint prints when it stops.
fn render_fhir(counts: &ServerCounts) -> String {
    let [requests, stored, events, refused, not_stored] = counts.snapshot();
    let unauthenticated = counts.unauthenticated.load(std::sync::atomic::Ordering::Relaxed);
    format!(
        "FHIR endpoint: {requests} requests; {stored} resources stored ({events} events), {refused} refused and \
         dead-lettered, {not_stored} not stored (503), {unauthenticated} refused as unauthenticated\n"
    )
}
