//! `sluice demo`: the whole pipeline on synthetic data (see [`crate::demo`]).

use std::{path::PathBuf, process::ExitCode};

use sluice_schemas::Framing;

use super::{args::KafkaArgs, produce::SyntheticArgs};
use crate::{demo, keys};

/// `sluice demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    source: SyntheticArgs,
    /// Purposes to land for, comma-separated (direct-care, planning, research, study:<id>).
    #[arg(long, value_delimiter = ',', default_value = "planning,research")]
    purposes: Vec<String>,
    /// Directory of the lake.
    #[arg(long, default_value = "lake")]
    lake: PathBuf,
    /// Message framing: single-object or confluent.
    #[arg(long, default_value = "single-object")]
    framing: Framing,
    /// Rows held in memory before files are written and offsets committed.
    #[arg(long, default_value_t = sluice_consumers::lander::DEFAULT_MAX_BUFFERED_ROWS)]
    max_buffered_rows: usize,
    /// Commits between two checkpoints of each dataset's Delta table (Delta's
    /// `delta.checkpointInterval`): a reader opening a table starts from its newest checkpoint.
    #[arg(long, default_value_t = sluice_consumers::lake::table::DEFAULT_CHECKPOINT_INTERVAL)]
    table_checkpoint_interval: std::num::NonZeroU64,
    /// Topic definitions and brokers (default: an embedded mock cluster).
    #[command(flatten)]
    kafka: KafkaArgs,
}

impl DemoArgs {
    /// Runs the demo and prints its summary; exits 1 if the summary found a problem.
    pub fn run(self) -> Result<ExitCode, String> {
        let topics = self.kafka.topics()?;
        let (keys, key_source) = keys::from_environment_or_generate(&self.purposes)?;
        eprintln!(
            "sluice demo: {} events for {} synthetic patients, landing for {}; keys {key_source}",
            self.source.events,
            self.source.patients,
            self.purposes.join(", ")
        );
        let options = demo::DemoOptions {
            source: self.source.config(),
            purposes: self.purposes,
            keys,
            lake_dir: self.lake,
            brokers: self.kafka.broker.brokers.clone(),
            properties: self.kafka.broker.properties()?,
            framing: self.framing,
            topics,
            max_buffered_rows: self.max_buffered_rows,
            table_checkpoint_interval: self.table_checkpoint_interval,
            show_progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        };
        let summary = super::runtime()?.block_on(demo::run(options)).map_err(|e| e.to_string())?;
        println!("{}", summary.render());
        Ok(if summary.problems().is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}
