//! `sluice produce hl7`: an MLLP listener for HL7 v2 messages.

use std::{path::PathBuf, process::ExitCode};

use sluice_producers::hl7::listener::{ListenerCounts, MllpListenerConfig};

use super::PublishArgs;
use crate::{commands::listener_args, services};

/// `sluice produce hl7`.
#[derive(clap::Args)]
pub struct Hl7Args {
    /// Address to listen on, e.g. 0.0.0.0:2575.
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// Directory for the journal of stored messages, so a repeated MSH-10 is recognised across restarts.
    #[arg(long, default_value = "sluice-state")]
    state_dir: PathBuf,
    /// MSH-3 of acknowledgements.
    #[arg(long, default_value = "SLUICE")]
    receiving_application: String,
    /// MSH-4 of acknowledgements (e.g. your organisation's ODS code).
    #[arg(long, default_value = "SLUICE")]
    receiving_facility: String,
    /// Largest message accepted, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_message_bytes: usize,
    /// Most connections served at once.
    #[arg(long, default_value_t = 64)]
    max_connections: usize,
    /// TOML file of per-sender local code tables: PV1-10 local codes to treatment function codes,
    /// OBX-3 local codes to LOINC or SNOMED CT (see docs/SOURCES.md). Read at start; an invalid
    /// table stops the listener before it accepts a connection.
    #[arg(long)]
    local_codes: Option<PathBuf>,
    #[command(flatten)]
    tls: listener_args::TlsArgs,
    #[command(flatten)]
    publish: PublishArgs,
}

impl Hl7Args {
    /// Listens until stopped, then prints what the listener did.
    pub fn run(self) -> Result<ExitCode, String> {
        let (topics, client) = self.publish.kafka.connect()?;
        let config = MllpListenerConfig {
            max_message_bytes: self.max_message_bytes,
            max_connections: self.max_connections,
            receiving_application: self.receiving_application,
            receiving_facility: self.receiving_facility,
            state_dir: Some(self.state_dir),
            tls: self.tls.config(),
            local_codes: self.local_codes,
            ..MllpListenerConfig::default()
        };
        let tls = if config.tls.is_some() { " with TLS" } else { "" };
        let publisher = self.publish.publisher()?;
        let counts = crate::commands::run_service(async |shutdown| {
            let listener = services::bind_hl7(&client, &topics, self.listen, config, publisher).await?;
            let address = listener.local_addr().map_err(|e| e.to_string())?;
            eprintln!("sluice: listening for HL7 v2 over MLLP{tls} on {address}");
            services::serve_hl7(listener, shutdown).await
        })?;
        print!("{}", render_hl7(&counts));
        Ok(ExitCode::SUCCESS)
    }
}

/// The summary an MLLP listener prints when it stops.
fn render_hl7(counts: &ListenerCounts) -> String {
    let [connections, accepted, events, duplicates, refused, not_stored] = counts.snapshot();
    let unauthenticated = counts.unauthenticated.load(std::sync::atomic::Ordering::Relaxed);
    let framing_errors = counts.framing_errors.load(std::sync::atomic::Ordering::Relaxed);
    let left_out = counts.fields_left_out.load(std::sync::atomic::Ordering::Relaxed);
    format!(
        "HL7 listener: {connections} connections ({unauthenticated} refused at the TLS handshake); {accepted} messages \
         stored ({events} events; {left_out} fields left out, warned in the ACK), {duplicates} repeats acknowledged \
         without publishing, {refused} refused and dead-lettered, {not_stored} not stored (AE 207), {framing_errors} \
         framing errors dead-lettered\n"
    )
}
