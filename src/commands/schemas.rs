//! `sluice schemas check|list`: the Avro schema catalogue, its subjects, versions, fingerprints
//! and schema ids, and whether every subject is BACKWARD_TRANSITIVE compatible.

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;
use sluice_schemas::{Catalogue, compatibility};

/// `sluice schemas`.
#[derive(clap::Args)]
pub struct SchemasArgs {
    #[command(subcommand)]
    command: SchemasCommand,
}

#[derive(Subcommand)]
enum SchemasCommand {
    /// Check that every subject is BACKWARD_TRANSITIVE compatible across its versions.
    Check {
        /// Directory of `<subject>/v<N>.avsc` files (default: the compiled-in catalogue).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// List subjects, versions, fingerprints and schema ids.
    List,
}

impl SchemasArgs {
    /// Checks or lists the catalogue; `check` exits 1 on any compatibility problem.
    pub fn run(self) -> Result<ExitCode, String> {
        match self.command {
            SchemasCommand::Check { dir } => check(dir),
            SchemasCommand::List => list(),
        }
    }
}

fn check(dir: Option<PathBuf>) -> Result<ExitCode, String> {
    let loaded;
    let catalogue = match &dir {
        Some(dir) => {
            loaded = Catalogue::load_dir(dir).map_err(|e| e.to_string())?;
            &loaded
        }
        None => Catalogue::embedded(),
    };
    let problems = compatibility::check_backward_transitive(catalogue);
    let subjects: Vec<String> = catalogue
        .subject_names()
        .map(|s| format!("{s} (v1..v{})", catalogue.versions(s).map_or(0, |v| v.len())))
        .collect();
    if problems.is_empty() {
        println!("schemas: {} subjects BACKWARD_TRANSITIVE compatible: {}", subjects.len(), subjects.join(", "));
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &problems {
        eprintln!("error: {problem}");
    }
    eprintln!("schemas: {} compatibility problem(s)", problems.len());
    Ok(ExitCode::FAILURE)
}

fn list() -> Result<ExitCode, String> {
    let catalogue = Catalogue::embedded();
    println!("{:<14}{:>8}  {:<18}{:>12}", "subject", "version", "fingerprint", "schema id");
    for subject in catalogue.subject_names() {
        for version in catalogue.versions(subject).unwrap_or_default() {
            println!(
                "{subject:<14}{:>8}  {:016x}  {:>12}",
                version.version(),
                version.fingerprint(),
                version.schema_id()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
