//! `sluice produce synthetic`, and the synthetic source's settings `sluice demo` shares.

use std::process::ExitCode;

use sluice_producers::{SyntheticSource, SyntheticSourceConfig};

use super::PublishArgs;
use crate::services;

/// Settings of the synthetic source.
#[derive(clap::Args)]
pub struct SyntheticArgs {
    /// Clinical events to produce.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Synthetic patients the events are spread over.
    #[arg(long, default_value_t = 10_000)]
    pub patients: u32,
    /// Share of patients with a National Data Opt-out.
    #[arg(long, default_value_t = 0.054)]
    pub opt_out_share: f64,
    /// Share of patients with a Type 1 opt-out.
    #[arg(long, default_value_t = 0.025)]
    pub type1_share: f64,
    /// Seed of the synthetic source.
    #[arg(long, default_value_t = 20_261_125)]
    pub seed: u64,
}

impl SyntheticArgs {
    /// The source's configuration.
    pub fn config(&self) -> SyntheticSourceConfig {
        SyntheticSourceConfig {
            patients: self.patients,
            events: self.events,
            national_opt_out_share: self.opt_out_share,
            type1_opt_out_share: self.type1_share,
            seed: self.seed,
            ..SyntheticSourceConfig::default()
        }
    }
}

/// Publishes the synthetic source's consent changes, then its clinical events, until done or
/// stopped.
pub(super) fn produce(source: SyntheticArgs, publish: PublishArgs) -> Result<ExitCode, String> {
    let (topics, client) = publish.kafka.connect()?;
    let source = SyntheticSource::new(source.config())?;
    let config = publish.publisher()?;
    let outcome = crate::commands::run_service(async |shutdown| {
        services::produce_synthetic(&client, &topics, &source, config, shutdown, |_| {}).await
    })?;
    match outcome.clinical {
        Some(report) => {
            println!("published {} consent changes and {} clinical events", outcome.consent.total(), report.total())
        }
        None => println!(
            "stopped: {} consent changes published; clinical events handed to Kafka were flushed",
            outcome.consent.total()
        ),
    }
    Ok(ExitCode::SUCCESS)
}
