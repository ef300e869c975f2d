//! `sluice compact`: merges the small committed files of every dataset's date partitions into
//! larger ones, audited.

use std::process::ExitCode;

use sluice_consumers::{
    audit::AuditLog,
    compact::{CompactionOptions, compact},
};

use super::{audit::audit_log_path, lake_args::LakeArgs};

/// `sluice compact`.
#[derive(clap::Args)]
pub struct CompactArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// Most rows in one merged file.
    #[arg(long, default_value_t = 1_000_000)]
    max_rows_per_file: usize,
}

impl CompactArgs {
    /// Merges the small committed files of every dataset's date partitions; audited.
    pub fn run(self) -> Result<ExitCode, String> {
        let (state, storage) = (self.lake.state_dir()?, self.lake.storage()?);
        let mut audit = AuditLog::open(&audit_log_path(&state)).map_err(|e| e.to_string())?;
        let options = CompactionOptions { max_rows_per_file: self.max_rows_per_file.max(1) };
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
}
