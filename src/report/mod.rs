//! `sluice report`: one self-contained HTML page for information governance, made from the audit
//! log and its verification: flows (topic -> purpose -> dataset) with counts over time, withheld
//! events by reason, the policy, key and schema versions in force, other operations on the lake,
//! and whether the log and the lake verify. Counts of 1 to 7 are suppressed ([`suppress`]).

pub mod html;
pub mod model;
pub mod suppress;
mod svg;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::ExitCode,
};

use serde_json::Value;
use sluice_consumers::audit;

use crate::{
    governance::{audit_log_path, verify_chain},
    lake_args::LakeArgs,
    topics::Topics,
};

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

/// The records of the log at `path`, one JSON value per line; lines that are not JSON are left
/// out (verification reports them). A log that cannot be read is an error.
pub fn read_records(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read the audit log {}: {e}", path.display()))?;
    Ok(text.split(|b| *b == b'\n').filter_map(|line| serde_json::from_slice(line).ok()).collect())
}

/// Verifies the log and the lake as `sluice audit verify` does, then writes the report. Exits 0
/// even when verification found problems (the page shows them); fails if the log cannot be read.
pub fn run_report(args: ReportArgs) -> Result<ExitCode, String> {
    let path = audit_log_path(&args.lake.state_dir()?);
    let records = read_records(&path)?;
    let verification = verify_chain(&path)?;
    let storage = args.lake.storage()?;
    let lake = audit::check_lake(&path, &storage).map_err(|e| e.to_string())?;
    let status = model::AuditStatus {
        records: verification.records,
        chain_problems: verification.problems,
        lake: Some(model::LakeStatus {
            location: storage.location().to_owned(),
            recorded: lake.recorded,
            found: lake.found,
            problems: lake.problems,
        }),
    };
    let topics = match &args.topics {
        Some(file) => Topics::load(file)?,
        None => Topics::embedded(),
    };
    let subjects: BTreeMap<String, String> =
        topics.clinical().into_iter().map(|(subject, topic)| (topic, subject)).collect();
    let model = model::build(&records, &subjects, status);
    let context = html::Context {
        generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        lake: args.lake.lake.clone(),
    };
    let page = html::render(&model, &context);
    std::fs::write(&args.output, page).map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    let verdict = if model.status.intact() { "audit log and lake verify" } else { "VERIFICATION FOUND PROBLEMS" };
    println!("wrote {} ({} flows, {verdict})", args.output.display(), model.flows.len());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests;
