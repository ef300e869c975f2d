//! `sluice erase`: removes patients' rows from a purpose's landed files (after a late opt-out,
//! say), audited with the request's reference; NHS numbers are never printed or logged.

use std::{path::PathBuf, process::ExitCode};

use sluice_consumers::{
    audit::{AuditLog, ErasureTrigger},
    consent::SourceOrganisations,
    erase::{PatientErasure, erase},
};
use sluice_schemas::NhsNumber;

use super::{audit::audit_log_path, lake_args::LakeArgs};
use crate::keys;

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

impl EraseArgs {
    /// Removes the patients' rows from the purposes' landed files, with keys from the environment.
    pub fn run(self) -> Result<ExitCode, String> {
        let mut numbers = self.patients.clone();
        if let Some(path) = &self.patients_file {
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
                    .map_err(|_| {
                        format!("patient number {} of {} is not a valid NHS number", index + 1, numbers.len())
                    })?;
                Ok(PatientErasure { nhs_number, purposes: self.purposes.clone(), gp_sourced_only: false })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let rings = keys::required_rings(&self.purposes)?;
        let (state, storage) = (self.lake.state_dir()?, self.lake.storage()?);
        let mut audit = AuditLog::open(&audit_log_path(&state)).map_err(|e| e.to_string())?;
        let record = erase(
            &state,
            &storage,
            &patients,
            &rings,
            SourceOrganisations::built_in(),
            ErasureTrigger::Command,
            &self.reference,
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
}
