//! `sluice produce file`: a resumable import of an NDJSON batch extract.

use std::{fmt::Write as _, path::PathBuf, process::ExitCode};

use sluice_producers::batch_file::{FileImportConfig, ImportReport};

use super::PublishArgs;
use crate::{progress, services};

/// `sluice produce file`.
#[derive(clap::Args)]
pub struct FileArgs {
    /// The NDJSON file.
    path: PathBuf,
    /// Directory of import checkpoints (one per file), for resuming.
    #[arg(long, default_value = "sluice-state")]
    state_dir: PathBuf,
    /// ODS code recorded for FHIR resources that name no organisation.
    #[arg(long)]
    organisation: Option<String>,
    /// Source system recorded for FHIR resources without meta.source.
    #[arg(long, default_value = "batch-file")]
    source_system: String,
    /// Most lines handed to Kafka and not yet acknowledged.
    #[arg(long, default_value_t = 10_000)]
    max_in_flight_lines: usize,
    /// Seconds between checkpoints.
    #[arg(long, default_value_t = 2)]
    checkpoint_interval_secs: u64,
    #[command(flatten)]
    publish: PublishArgs,
}

impl FileArgs {
    /// Imports the file from where an earlier import of it stopped, with progress on stderr.
    pub fn run(self) -> Result<ExitCode, String> {
        let (topics, client) = self.publish.kafka.connect()?;
        let config = FileImportConfig {
            state_dir: self.state_dir,
            max_in_flight_lines: self.max_in_flight_lines,
            checkpoint_interval_secs: self.checkpoint_interval_secs,
            organisation: self.organisation,
            source_system: self.source_system,
            ..FileImportConfig::default()
        };
        let publisher = self.publish.publisher()?;
        let progress = progress::Reporter::new("lines", std::io::IsTerminal::is_terminal(&std::io::stderr()));
        let report = crate::commands::run_service(async |shutdown| {
            services::import_file(&client, &topics, &self.path, &config, publisher, shutdown, |p| {
                progress.update(p.bytes_stored, p.total_bytes, p.lines_stored)
            })
            .await
        });
        progress.finish();
        print!("{}", render_import(&report?));
        Ok(ExitCode::SUCCESS)
    }
}

/// The summary a file import prints.
fn render_import(report: &ImportReport) -> String {
    let mut out = String::new();
    if report.complete && report.lines == 0 && report.started_at_line == 0 {
        let _ = writeln!(out, "file {} was already imported completely: nothing published", report.file_id);
        return out;
    }
    let events: u64 = report.events.values().sum();
    let subjects: Vec<String> = report.events.iter().map(|(s, n)| format!("{s} {n}")).collect();
    let _ = writeln!(
        out,
        "file {}: read {} lines from line {} ({} blank); published {events} events ({}), {} dead letters; {} outputs \
         already stored before a restart were not published again",
        report.file_id,
        report.lines,
        report.started_at_line,
        report.blank_lines,
        subjects.join(", "),
        report.dead_letters,
        report.already_stored,
    );
    let _ = writeln!(
        out,
        "{}",
        if report.complete { "import complete" } else { "import stopped early; run the same command again to resume" }
    );
    out
}
