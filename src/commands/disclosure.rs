//! `sluice disclosure check`: measures the re-identification risk of each purpose's datasets
//! per release unit against its policy's `[disclosure]` threshold (see
//! [`sluice_consumers::disclosure`]), records it in the audit log, and exits 1 when a unit does
//! not meet it.

use std::{collections::BTreeSet, path::PathBuf, process::ExitCode};

use clap::Subcommand;
use sluice_consumers::{
    audit::{AuditEvent, AuditLog},
    disclosure::{self, UnitAssessment},
    lake::table::by_dataset,
    policy::Policy,
};

use super::{audit::audit_log_path, lake_args::LakeArgs};

/// `sluice disclosure`.
#[derive(clap::Args)]
pub struct DisclosureArgs {
    #[command(subcommand)]
    command: DisclosureCommand,
}

#[derive(Subcommand)]
enum DisclosureCommand {
    /// Measure each dataset's equivalence classes per release unit against the policy's
    /// threshold; exit 1 if any unit does not meet it.
    Check(DisclosureCheckArgs),
}

impl DisclosureArgs {
    /// Runs the subcommand.
    pub fn run(self) -> Result<ExitCode, String> {
        let DisclosureCommand::Check(args) = self.command;
        args.run()
    }
}

/// `sluice disclosure check`.
#[derive(clap::Args)]
pub struct DisclosureCheckArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// Only this purpose (default: every purpose in the lake).
    #[arg(long)]
    purpose: Option<String>,
    /// Directory of policy files, one `<purpose>.toml` per purpose (default: the built-in
    /// policies).
    #[arg(long)]
    policies: Option<PathBuf>,
}

impl DisclosureCheckArgs {
    /// Checks each purpose whose policy declares `[disclosure]`, prints every release unit's
    /// risk as it is measured, and appends one audit record per purpose. Exits 1 if any unit
    /// does not meet its threshold; fails if a purpose has no policy, or a named purpose's
    /// policy declares no disclosure control.
    pub fn run(self) -> Result<ExitCode, String> {
        let storage = self.lake.storage()?;
        let purposes: BTreeSet<String> = match &self.purpose {
            Some(purpose) => [purpose.clone()].into(),
            None => by_dataset(storage.parquet_files("").map_err(|e| e.to_string())?)
                .keys()
                .filter_map(|dataset| dataset.split_once('/').map(|(purpose, _)| purpose.to_owned()))
                .collect(),
        };
        let mut audit = AuditLog::open(&audit_log_path(&self.lake.state_dir()?)).map_err(|e| e.to_string())?;
        let mut failing_units = 0;
        for purpose in purposes {
            let policy = self.policy(&purpose)?;
            let Some(rules) = policy.disclosure() else {
                if self.purpose.is_some() {
                    return Err(format!(
                        "policy {} declares no [disclosure], so purpose `{purpose}` has no threshold to check",
                        policy.label()
                    ));
                }
                println!("{purpose}: policy {} declares no [disclosure]; not measured", policy.label());
                continue;
            };
            println!(
                "{purpose}: policy {}, classes of at least k = {} patients, at most {} of a {} unit's records below it",
                policy.label(),
                rules.k,
                percent(rules.max_share_at_risk),
                rules.release_unit.name(),
            );
            let assessments =
                disclosure::check_purpose(&storage, &purpose, rules, print_unit).map_err(|e| e.to_string())?;
            failing_units += assessments.iter().filter(|a| !a.meets_threshold).count();
            let record = disclosure::audit_record(&policy, rules, &assessments);
            audit.append(&AuditEvent::Disclosure(record)).map_err(|e| e.to_string())?;
        }
        println!("recorded in {}", audit.path().display());
        if failing_units > 0 {
            println!("{failing_units} release unit(s) do not meet their threshold");
            return Ok(ExitCode::from(1));
        }
        Ok(ExitCode::SUCCESS)
    }

    fn policy(&self, purpose: &str) -> Result<Policy, String> {
        match &self.policies {
            Some(dir) => {
                let path = dir.join(format!("{purpose}.toml"));
                Policy::load(&path).map_err(|e| format!("purpose `{purpose}` cannot be checked: {e}"))
            }
            None => Policy::builtin(purpose).ok_or_else(|| {
                format!("purpose `{purpose}` has no built-in policy: give its policy directory with --policies")
            }),
        }
    }
}

/// One release unit, as measured and as enforcement would leave it.
fn print_unit(a: &UnitAssessment) {
    let m = &a.measured;
    let version = a.table_version.map(|v| format!(" (table version {v})")).unwrap_or_default();
    println!(
        "  {} {}{version}: {} records, {} patients, {} classes, smallest {}; below k: {} classes, {} records ({}), {} patients -> {}",
        a.dataset,
        a.unit,
        m.records,
        m.patients,
        m.classes,
        m.smallest_class.map_or("-".to_owned(), |s| s.to_string()),
        m.classes_at_risk,
        m.records_at_risk,
        percent(m.share_of_records_at_risk()),
        m.patients_at_risk,
        if a.meets_threshold { "meets the threshold" } else { "DOES NOT MEET THE THRESHOLD" },
    );
    if m.records_at_risk > 0 {
        let drivers: Vec<String> = a
            .drivers
            .iter()
            .map(|d| format!("{} ({} at risk without it)", d.column, d.records_at_risk_without))
            .collect();
        println!("    drives the risk: {}", drivers.join(", "));
    }
    let steps: Vec<String> = a
        .generalised_to
        .iter()
        .filter_map(|(column, step)| step.map(|step| format!("{column} to {}", step.name())))
        .collect();
    let e = &a.enforcement;
    if e.changes_anything() {
        println!(
            "    enforcement would generalise {} and suppress {} records ({}){}",
            if steps.is_empty() { "nothing".to_owned() } else { steps.join(", ") },
            e.records_suppressed(),
            percent(if m.records == 0 { 0.0 } else { e.records_suppressed() as f64 / m.records as f64 }),
            if e.exceeded_suppression_limit { ", more than the policy allows" } else { "" },
        );
    }
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}
