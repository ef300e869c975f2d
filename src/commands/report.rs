//! `sluice report`: writes the governance report (see [`crate::report`]) for a lake.

use std::{collections::BTreeMap, path::PathBuf, process::ExitCode};

use sluice_consumers::lake::check::check_lake;

use super::{
    audit::{audit_log_path, verify_chain},
    lake_args::LakeArgs,
};
use crate::{report, topics::Topics};

/// `sluice report`.
#[derive(clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// Where to write the HTML page.
    #[arg(long, default_value = "report.html")]
    output: PathBuf,
    /// Topic definitions, for the subject (dataset) of each topic (default: the compiled-in
    /// infra/topics.toml).
    #[arg(long)]
    topics: Option<PathBuf>,
}

impl ReportArgs {
    /// Verifies the log and the lake as `sluice audit verify` does, then writes the report. Exits 0
    /// even when verification found problems (the page shows them); fails if the log cannot be read.
    pub fn run(self) -> Result<ExitCode, String> {
        let path = audit_log_path(&self.lake.state_dir()?);
        let records = report::read_records(&path)?;
        let verification = verify_chain(&path)?;
        let storage = self.lake.storage()?;
        let lake = check_lake(&path, &storage).map_err(|e| e.to_string())?;
        let status = report::model::AuditStatus {
            records: verification.records,
            chain_problems: verification.problems,
            lake: Some(report::model::LakeStatus {
                location: storage.location().to_owned(),
                recorded: lake.recorded,
                found: lake.found,
                problems: lake.problems,
            }),
        };
        let topics = match &self.topics {
            Some(file) => Topics::load(file)?,
            None => Topics::embedded(),
        };
        let subjects: BTreeMap<String, String> =
            topics.clinical().into_iter().map(|(subject, topic)| (topic, subject)).collect();
        let model = report::model::build(&records, &subjects, status);
        let context = report::html::Context {
            generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            lake: self.lake.lake.clone(),
        };
        let page = report::html::render(&model, &context);
        std::fs::write(&self.output, page).map_err(|e| format!("cannot write {}: {e}", self.output.display()))?;
        let verdict = if model.status.intact() { "audit log and lake verify" } else { "VERIFICATION FOUND PROBLEMS" };
        println!("wrote {} ({} flows, {verdict})", self.output.display(), model.flows.len());
        Ok(ExitCode::SUCCESS)
    }
}
