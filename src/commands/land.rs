//! `sluice land`: lands clinical events as pseudonymised Parquet for one or more purposes, as a
//! service (until SIGINT/SIGTERM) or as a batch run (`--until-caught-up`).

use std::{fmt::Write as _, path::PathBuf, process::ExitCode};

use sluice_consumers::{LandingReport, RunUntil, lineage::LineageConfig};
use tracing::info;

use super::{args::KafkaArgs, lake_args::LakeArgs};
use crate::{keys, pipeline::LandingPipeline};

/// `sluice land`.
#[derive(clap::Args)]
pub struct LandArgs {
    /// Purpose to land for (repeatable or comma-separated): direct-care, planning, research, study:<id>.
    /// Keys come from the key file named by SLUICE_KEYS_FILE.
    #[arg(long = "purpose", value_delimiter = ',', required = true)]
    purposes: Vec<String>,
    #[command(flatten)]
    lake: LakeArgs,
    /// Consumer group; landers in one group share the partitions.
    #[arg(long, default_value = "sluice-lander")]
    group_id: String,
    /// Rows held in memory before files are written and offsets committed.
    #[arg(long, default_value_t = sluice_consumers::lander::DEFAULT_MAX_BUFFERED_ROWS)]
    max_buffered_rows: usize,
    /// Seconds without new events after which buffered rows are written anyway.
    #[arg(long, default_value_t = 5)]
    idle_flush_secs: u64,
    /// Directory of policy files, one `<purpose>.toml` per purpose (default: the built-in
    /// policies of direct-care, planning and research; a study always needs a file).
    #[arg(long)]
    policies: Option<PathBuf>,
    /// Keep rows already landed when their patient later opts out (only stop later releases).
    /// By default a later opt-out or dissent erases them, except for purposes whose policy says
    /// `keep_landed_rows_on_opt_out = "<reason>"`.
    #[arg(long)]
    keep_landed_rows_on_opt_out: bool,
    /// Seconds after a source partition's first unlanded event after which its files are
    /// written anyway (files also roll at 250,000 rows or 128 MiB per partition).
    #[arg(long, default_value_t = 300)]
    max_file_age_secs: u64,
    /// Event-time window, in seconds, that files roll at: a partition's files are written when
    /// its events move on to a later window (a UTC day by default, one `event_date` directory).
    #[arg(long, default_value_t = 86_400)]
    event_time_window_secs: u64,
    /// Commits between two checkpoints of a dataset's Delta table, given to each table this
    /// lander creates (Delta's `delta.checkpointInterval`; a table keeps its own afterwards).
    #[arg(long, default_value_t = sluice_consumers::lake::table::DEFAULT_CHECKPOINT_INTERVAL)]
    table_checkpoint_interval: std::num::NonZeroU64,
    /// The schema registry your producers frame Confluent records with, when the estate runs its
    /// own (e.g. http://registry:8081): its ids are looked up there and matched to catalogued
    /// versions. Without it, Confluent ids are the catalogue's, as `sluice registry serve` gives.
    #[arg(long)]
    schema_registry: Option<String>,
    /// Append the run's OpenLineage events (START, then COMPLETE or FAIL) to this file, one JSON
    /// object a line, synced.
    #[arg(long)]
    lineage_file: Option<PathBuf>,
    /// Also POST each OpenLineage event to this http:// endpoint, e.g. Marquez's
    /// `http://marquez:5000/api/v1/lineage`. A failed POST is logged; landing goes on.
    #[arg(long)]
    lineage_url: Option<String>,
    /// Land what the clinical topics hold when the lander starts, then stop (a scheduled batch
    /// run instead of a service).
    #[arg(long)]
    until_caught_up: bool,
    /// A consent record, as PARTITION:OFFSET of the consent topic, that can be read neither as
    /// a change nor for the patient its key names, and that has been reviewed (repeatable).
    /// Without it such a record stops the lander, since it may have been anybody's opt-out.
    #[arg(long = "reviewed-consent-record", value_parser = parse_record_position)]
    reviewed_consent_records: Vec<(i32, i64)>,
    /// The register of source organisations (CSV: ods_code,organisation_type,name) that decides
    /// which data a Type 1 opt-out covers: GP practices', hubs' and any organisation's it does
    /// not list. Default: the one built in, policies/source-organisations.csv.
    #[arg(long, value_name = "CSV")]
    source_organisations: Option<PathBuf>,
    #[command(flatten)]
    kafka: KafkaArgs,
}

impl LandArgs {
    /// Lands until stopped (or caught up), then prints what the run did.
    pub fn run(self) -> Result<ExitCode, String> {
        let landing = self.pipeline()?;
        let config = &landing.config;
        info!(purposes = ?config.purposes, lake = %config.lake_dir.display(), erase_on_opt_out = config.erase_on_opt_out, until_caught_up = self.until_caught_up, "landing");
        let until = if self.until_caught_up { landing.caught_up_now()? } else { RunUntil::Stopped };
        let report = super::run_service(async |shutdown| landing.run(until, shutdown, |_| {}).await)?;
        print!("{}", render_landing(&report));
        Ok(ExitCode::SUCCESS)
    }

    /// The landing these arguments describe, with keys from the key file.
    fn pipeline(&self) -> Result<LandingPipeline, String> {
        let (topics, client) = self.kafka.connect()?;
        let rings = keys::required_rings(&self.purposes)?;
        LandingPipeline::builder(&client, &topics)
            .lake(self.lake.state_dir()?, self.lake.datasets_elsewhere()?)
            .purposes(&self.purposes)
            .policies(self.policies.as_deref(), rings)
            .lineage(LineageConfig {
                file: self.lineage_file.clone(),
                url: self.lineage_url.clone(),
                ..LineageConfig::default()
            })
            .configure(|config| {
                config.group_id.clone_from(&self.group_id);
                config.max_buffered_rows = self.max_buffered_rows;
                config.idle_flush_secs = self.idle_flush_secs;
                config.erase_on_opt_out = !self.keep_landed_rows_on_opt_out;
                config.max_file_age_secs = self.max_file_age_secs;
                config.event_time_window_secs = self.event_time_window_secs;
                config.table_checkpoint_interval = self.table_checkpoint_interval;
                config.schema_registry.clone_from(&self.schema_registry);
                config.reviewed_consent_records.clone_from(&self.reviewed_consent_records);
                config.source_organisations.clone_from(&self.source_organisations);
            })
            .build()
    }
}

/// `PARTITION:OFFSET` of a record on a topic.
fn parse_record_position(text: &str) -> Result<(i32, i64), String> {
    let (partition, offset) = text.split_once(':').ok_or("expected PARTITION:OFFSET, e.g. 3:1042")?;
    let partition = partition.trim().parse().map_err(|_| format!("`{partition}` is not a partition number"))?;
    let offset = offset.trim().parse().map_err(|_| format!("`{offset}` is not an offset"))?;
    Ok((partition, offset))
}

/// The summary a lander prints when it stops.
fn render_landing(report: &LandingReport) -> String {
    let mut out = String::new();
    let _ =
        writeln!(out, "consumed {} clinical events, dead-lettered {}", report.consumed_total(), report.dead_lettered);
    for (purpose, landed) in &report.landed {
        let _ = write!(out, "  {purpose}: landed {landed}, withheld {}", report.withheld_total(purpose));
        for (reason, n) in report.withheld.get(purpose).into_iter().flatten() {
            let _ = write!(out, " ({reason} {n})");
        }
        for (opt_out, n) in report.released_under_exemption.get(purpose).into_iter().flatten() {
            let _ = write!(out, ", released under a {opt_out} exemption {n}");
        }
        let _ = writeln!(out);
    }
    let bytes: u64 = report.files.iter().map(|f| f.bytes).sum();
    let _ = writeln!(out, "  {} files written, {bytes} bytes", report.files.len());
    out
}
