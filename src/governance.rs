//! Commands for information governance: erasing patients from the lake and verifying the audit
//! trail.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use sluice_consumers::{
    audit::{self, AuditLog, ErasureTrigger},
    consent::SourceOrganisations,
    erase::{PatientErasure, erase},
};
use sluice_schemas::NhsNumber;

use crate::{keys, lake_args::LakeArgs};

/// Where a lake's audit log lives.
pub fn audit_log_path(lake: &Path) -> PathBuf {
    lake.join("_audit").join("audit.jsonl")
}

/// `sluice erase`.
#[derive(clap::Args)]
pub struct EraseArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// Purposes whose landed files lose the patients' rows (repeatable or comma-separated).
    #[arg(long = "purpose", value_delimiter = ',', required = true)]
    purposes: Vec<String>,
    /// NHS number of a patient to erase (repeatable). Prefer --patients-file: command lines are
    /// visible to other users of the machine and kept in shell history.
    #[arg(long = "patient")]
    patients: Vec<String>,
    /// A file with one NHS number per line (`-` for standard input).
    #[arg(long)]
    patients_file: Option<PathBuf>,
    /// Reference of the request (e.g. the IG ticket), recorded in the audit log.
    #[arg(long, required = true)]
    reference: String,
}

/// Removes the patients' rows from the purposes' landed files, with keys from the environment.
pub fn run_erase(args: EraseArgs) -> Result<ExitCode, String> {
    let mut numbers = args.patients.clone();
    if let Some(path) = &args.patients_file {
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).map_err(|e| format!("cannot read standard input: {e}"))?
        } else {
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
        };
        numbers.extend(text.lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_owned));
    }
    if numbers.is_empty() {
        return Err("no patients given: use --patient or --patients-file".to_owned());
    }
    let patients = numbers
        .iter()
        .enumerate()
        .map(|(index, digits)| {
            let nhs_number = NhsNumber::parse(&digits.replace(' ', ""))
                // Say which entry, never what it holds.
                .map_err(|_| format!("patient number {} of {} is not a valid NHS number", index + 1, numbers.len()))?;
            Ok(PatientErasure { nhs_number, purposes: args.purposes.clone(), gp_sourced_only: false })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let rings = keys::required_rings(&args.purposes)?;
    let (state, storage) = (args.lake.state_dir()?, args.lake.storage()?);
    let mut audit = AuditLog::open(&audit_log_path(&state)).map_err(|e| e.to_string())?;
    let record = erase(
        &state,
        &storage,
        &patients,
        &rings,
        SourceOrganisations::built_in(),
        ErasureTrigger::Command,
        &args.reference,
        &mut audit,
    )
    .map_err(|e| e.to_string())?;
    println!(
        "erased {} rows of {} patients from {} of {} files ({}); recorded in {}",
        record.rows_removed,
        record.patients,
        record.files_rewritten.len(),
        record.files_searched,
        record.purposes.join(", "),
        audit.path().display()
    );
    Ok(ExitCode::SUCCESS)
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

/// `sluice audit verify`.
#[derive(clap::Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// Only recompute the hash chain; do not read the lake's files to compare their checksums.
    #[arg(long)]
    chain_only: bool,
}

/// Recomputes the audit log's hash chain and checks the lake's files against it (every file
/// recorded is there with its recorded SHA-256, every landed file is recorded); exits 1 on any
/// break, edit, missing or unrecorded file.
pub fn run_audit_verify(args: AuditVerifyArgs) -> Result<ExitCode, String> {
    let path = audit_log_path(&args.lake.state_dir()?);
    let verification = verify_chain(&path)?;
    for problem in &verification.problems {
        println!("{}: {problem}", path.display());
    }
    let chain = if verification.problems.is_empty() { "hash chain intact" } else { "hash chain broken" };
    println!("{}: {} records, {chain}", path.display(), verification.records);
    let mut problems = verification.problems.len();
    if !args.chain_only {
        let storage = args.lake.storage()?;
        let check = audit::check_lake(&path, &storage).map_err(|e| e.to_string())?;
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

/// `sluice policy check`.
#[derive(clap::Args)]
pub struct PolicyCheckArgs {
    /// Directory of policy files (`<purpose>.toml`); default: the built-in policies.
    #[arg(long)]
    policies: Option<PathBuf>,
}

/// Plans every policy against the newest version of every clinical subject and prints, per
/// field, what happens to it; exits 1 if any policy does not cover its schemas.
pub fn run_policy_check(args: PolicyCheckArgs) -> Result<ExitCode, String> {
    use sluice_consumers::policy::Policy;
    let policies: Vec<Result<Policy, String>> = match &args.policies {
        None => Policy::BUILTIN_PURPOSES
            .iter()
            .map(|purpose| Policy::builtin(purpose).ok_or_else(|| format!("no built-in policy for {purpose}")))
            .collect(),
        Some(dir) => {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|e| e == "toml"))
                .collect();
            paths.sort();
            paths.into_iter().map(|path| Policy::load(&path).map_err(|e| e.to_string())).collect()
        }
    };
    let catalogue = sluice_schemas::Catalogue::embedded();
    let mut failures = 0;
    for policy in policies {
        let policy = match policy {
            Ok(policy) => policy,
            Err(error) => {
                failures += 1;
                println!("REFUSED {error}\n");
                continue;
            }
        };
        println!(
            "{} ({}) for purpose {}\n  sha256 {}\n  {}",
            policy.label(),
            policy.origin(),
            policy.purpose(),
            policy.hash(),
            policy.description()
        );
        for exemption in &policy.rules().exemptions {
            println!(
                "  exempt from {}: {} ({})",
                exemption.opt_out.label(),
                exemption.legal_basis,
                exemption.reference
            );
        }
        for subject in sluice_schemas::subjects::CLINICAL {
            let version = catalogue.latest(subject).map_err(|e| e.to_string())?;
            match policy.plan(version) {
                Ok(plan) => {
                    println!("  {} -> {} columns", version.label(), plan.columns.len());
                    for (field, action) in policy.actions(subject).into_iter().flatten() {
                        let outcome = match action.column(field) {
                            Some(column) => format!("-> {column}"),
                            None => "not landed".to_owned(),
                        };
                        println!("    {field:<26} {:<18} {outcome}", action.name());
                    }
                }
                Err(error) => {
                    failures += 1;
                    println!("  REFUSED {error}");
                }
            }
        }
        println!();
    }
    if failures > 0 {
        println!("{failures} problems: nothing can be landed under a refused policy");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `sluice compact`.
#[derive(clap::Args)]
pub struct CompactArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// Most rows in one merged file.
    #[arg(long, default_value_t = 1_000_000)]
    max_rows_per_file: usize,
}

/// Merges the small committed files of every dataset's date partitions; audited.
pub fn run_compact(args: CompactArgs) -> Result<ExitCode, String> {
    use sluice_consumers::compact::{CompactionOptions, compact};
    let (state, storage) = (args.lake.state_dir()?, args.lake.storage()?);
    let mut audit = AuditLog::open(&audit_log_path(&state)).map_err(|e| e.to_string())?;
    let options = CompactionOptions { max_rows_per_file: args.max_rows_per_file.max(1) };
    let record = compact(&state, &storage, options, &mut audit).map_err(|e| e.to_string())?;
    println!(
        "{} files before, {} after: {} merged files written; recorded in {}",
        record.files_before,
        record.files_after,
        record.merged.len(),
        audit.path().display()
    );
    Ok(ExitCode::SUCCESS)
}
