//! `sluice audit verify|publish`: the audit trail. `verify` recomputes the log's hash chain and
//! checks the lake's files against it; `publish` copies the records not yet on the audit topic
//! to it.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Subcommand;
use sluice_consumers::audit;
use sluice_schemas::Catalogue;

use super::{args::KafkaArgs, lake_args::LakeArgs};

/// Where a lake's audit log lives, in its state directory.
pub fn audit_log_path(state_dir: &Path) -> PathBuf {
    state_dir.join("_audit").join("audit.jsonl")
}

/// Recomputes the hash chain of the log at `path`; an incomplete last record is listed among the
/// problems.
pub fn verify_chain(path: &Path) -> Result<audit::Verification, String> {
    let mut verification = audit::verify(path).map_err(|e| e.to_string())?;
    if verification.torn_tail {
        verification.problems.push(
            "the last record is incomplete (a crash while it was written); the next lander start cuts it off"
                .to_owned(),
        );
    }
    Ok(verification)
}

/// `sluice audit`.
#[derive(clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the audit log's hash chain and check the lake's files against it; report any
    /// edit, gap, reordering, missing, changed or unrecorded file (exit 1).
    Verify(AuditVerifyArgs),
    /// Copy the audit records not yet in the audit topic to it (landers do so as they run;
    /// this catches up after `sluice erase` or `sluice compact`).
    Publish(AuditPublishArgs),
}

impl AuditArgs {
    /// Verifies or publishes the audit trail.
    pub fn run(self) -> Result<ExitCode, String> {
        match self.command {
            AuditCommand::Verify(args) => args.run(),
            AuditCommand::Publish(args) => args.run(),
        }
    }
}

/// `sluice audit verify`.
#[derive(clap::Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// Only recompute the hash chain; do not read the lake's files to compare their checksums.
    #[arg(long)]
    chain_only: bool,
}

impl AuditVerifyArgs {
    /// Recomputes the audit log's hash chain and checks the lake's files against it (every file
    /// recorded is there with its recorded SHA-256, every landed file is recorded); exits 1 on any
    /// break, edit, missing or unrecorded file.
    pub fn run(self) -> Result<ExitCode, String> {
        let path = audit_log_path(&self.lake.state_dir()?);
        let verification = verify_chain(&path)?;
        for problem in &verification.problems {
            println!("{}: {problem}", path.display());
        }
        let chain = if verification.problems.is_empty() { "hash chain intact" } else { "hash chain broken" };
        println!("{}: {} records, {chain}", path.display(), verification.records);
        let mut problems = verification.problems.len();
        if !self.chain_only {
            let storage = self.lake.storage()?;
            let check = sluice_consumers::lake::check::check_lake(&path, &storage).map_err(|e| e.to_string())?;
            for problem in &check.problems {
                println!("{}: {problem}", storage.location());
            }
            println!(
                "{}: {} files recorded, {} found, {}",
                storage.location(),
                check.recorded,
                check.found,
                if check.problems.is_empty() { "every checksum matches" } else { "the lake differs from its log" }
            );
            problems += check.problems.len();
        }
        if problems == 0 {
            return Ok(ExitCode::SUCCESS);
        }
        println!("{problems} problems");
        Ok(ExitCode::FAILURE)
    }
}

/// `sluice audit publish`.
#[derive(clap::Args)]
pub struct AuditPublishArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// The topic definitions (which name the audit topic) and the brokers.
    #[command(flatten)]
    kafka: KafkaArgs,
}

impl AuditPublishArgs {
    /// Publishes the records of the lake's audit log that the audit topic does not have yet.
    pub fn run(self) -> Result<ExitCode, String> {
        let (topics, client) = self.kafka.connect()?;
        let topic = topics.audit().ok_or("the topic definitions name no audit topic (role = \"audit\")")?;
        let state = self.lake.state_dir()?;
        let log = audit_log_path(&state);
        let publisher = audit::AuditPublisher::new(&client, topic, Catalogue::embedded()).map_err(|e| e.to_string())?;
        let published = publisher.publish_new(&log, &state).map_err(|e| e.to_string())?;
        println!("{published} audit records published to {topic}");
        Ok(ExitCode::SUCCESS)
    }
}
