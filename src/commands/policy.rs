//! `sluice policy check`: plans every policy against the newest schemas and shows what it does
//! to every field; exits 1 if any field is not covered.

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;
use sluice_consumers::policy::Policy;

/// `sluice policy`.
#[derive(clap::Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Plan every policy against the newest schemas; exit 1 if any field is not covered.
    Check(PolicyCheckArgs),
}

impl PolicyArgs {
    /// Runs `policy check`.
    pub fn run(self) -> Result<ExitCode, String> {
        let PolicyCommand::Check(args) = self.command;
        args.run()
    }
}

/// `sluice policy check`.
#[derive(clap::Args)]
pub struct PolicyCheckArgs {
    /// Directory of policy files (`<purpose>.toml`); default: the built-in policies.
    #[arg(long)]
    policies: Option<PathBuf>,
}

impl PolicyCheckArgs {
    /// Plans every policy against the newest version of every clinical subject and prints, per
    /// field, what happens to it; exits 1 if any policy does not cover its schemas.
    pub fn run(self) -> Result<ExitCode, String> {
        let policies: Vec<Result<Policy, String>> = match &self.policies {
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
            match policy.disclosure() {
                Some(rules) => {
                    println!(
                        "  disclosure control: classes of at least {} distinct patients (by `{}`), at most {:.1}% of a \
                         {} unit's records below",
                        rules.k,
                        rules.patient_column,
                        rules.max_share_at_risk * 100.0,
                        rules.release_unit.name()
                    );
                    for (subject, quasi_identifiers) in &rules.subjects {
                        let described: Vec<String> = quasi_identifiers
                            .iter()
                            .map(|q| {
                                let ladder: Vec<String> = q.ladder.iter().map(|step| step.name()).collect();
                                match ladder.is_empty() {
                                    true => q.column.clone(),
                                    false => format!("{} ({})", q.column, ladder.join(" > ")),
                                }
                            })
                            .collect();
                        println!("    {subject} quasi-identifiers: {}", described.join(", "));
                    }
                }
                None => println!("  no disclosure control ([disclosure])"),
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
}
