//! Erasure driven by later opt-outs ([`super::LanderConfig::erase_on_opt_out`]).
//!
//! An opt-out or dissent read from the consent topic after a patient's rows were landed queues
//! an erasure of those rows from every purpose the change now withholds them from (only the GP
//! practices' rows when it is a Type 1 opt-out alone). The queue is worked off at the next
//! checkpoint, after that checkpoint's files are written and before its offsets are committed.
//!
//! "After" is measured on the consent topic: `<lake>/_sluice/erasure-consent-offsets.json`
//! records, per consent partition, the next offset whose changes have not yet been considered.
//! The first run with erasure switched on records where the consent topic ends when it starts;
//! changes before that were in force before anything was landed with this setting. A crash
//! before the record is updated only means the same changes are considered again, and erasing
//! rows that are already gone changes nothing.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sluice_schemas::NhsNumber;
use tracing::info;

use crate::{
    Error, Result,
    audit::{AuditLog, ErasureTrigger},
    consent::{ConsentStore, Decision, Purpose, PurposeRules},
    erase::{PatientErasure, erase},
    keyring::KeyRing,
    storage::LakeStorage,
};

/// The persisted progress through the consent topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Considered {
    /// Next consent offset not yet considered, per consent partition.
    next_offsets: BTreeMap<i32, i64>,
}

/// Erasures owed to opt-outs read after rows were landed.
pub(super) struct OptOutErasures {
    /// Where the progress is kept.
    path: PathBuf,
    /// Progress as last saved; `None` until the first run has read the consent topic to its end.
    considered: Option<Considered>,
    /// Next offset per consent partition read in this run.
    read_up_to: BTreeMap<i32, i64>,
    /// Patients to erase at the next checkpoint.
    queue: Vec<PatientErasure>,
    /// Every purpose's keys, to find rows written under retired keys too.
    rings: BTreeMap<String, KeyRing>,
}

impl OptOutErasures {
    pub(super) fn open(lake: &Path, rings: BTreeMap<String, KeyRing>) -> Result<Self> {
        let path = lake.join("_sluice").join("erasure-consent-offsets.json");
        let considered = match std::fs::read(&path) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| Error::WriteFile {
                path: path.clone(),
                reason: format!("not a record of consent offsets: {e}"),
            })?),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(Error::write(&path)(error)),
        };
        Ok(OptOutErasures { path, considered, read_up_to: BTreeMap::new(), queue: Vec::new(), rings })
    }

    /// Notes one consent message just applied to `store`: `denied` is the patient of an opt-out
    /// or dissent (`None` for other changes and unreadable messages).
    pub(super) fn note(
        &mut self,
        partition: i32,
        offset: i64,
        denied: Option<NhsNumber>,
        purposes: &[(&Purpose, &PurposeRules)],
        store: &ConsentStore,
    ) {
        self.read_up_to.insert(partition, offset + 1);
        let (Some(considered), Some(nhs_number)) = (&self.considered, denied) else { return };
        if offset < considered.next_offsets.get(&partition).copied().unwrap_or(0) {
            return;
        }
        let withheld = |purpose: &Purpose, rules: &PurposeRules, gp_sourced: bool| {
            matches!(store.decide(purpose, rules, Some(nhs_number), gp_sourced), Decision::Withhold(_))
        };
        let (mut every_row, mut gp_rows) = (Vec::new(), Vec::new());
        for (purpose, rules) in purposes.iter().filter(|(purpose, _)| purpose.needs_opt_out_check()) {
            if withheld(purpose, rules, false) {
                every_row.push(purpose.name());
            } else if withheld(purpose, rules, true) {
                gp_rows.push(purpose.name());
            }
        }
        for (purposes, gp_sourced_only) in [(every_row, false), (gp_rows, true)] {
            if !purposes.is_empty() {
                self.queue.push(PatientErasure { nhs_number, purposes, gp_sourced_only });
            }
        }
    }

    /// Called once the consent topic has been read to its end at start-up: on the first run,
    /// that end is where "later" begins.
    pub(super) fn after_initial_load(&mut self) -> Result<()> {
        if self.considered.is_none() {
            self.considered = Some(Considered::default());
            self.save()?;
        }
        Ok(())
    }

    /// Whether erasures are queued.
    pub(super) fn has_work(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Erases the queued patients, records it in the audit log and saves the progress. Returns
    /// the rows removed.
    pub(super) fn run(&mut self, lake: &Path, storage: &LakeStorage, audit: &mut AuditLog) -> Result<u64> {
        let mut rows = 0;
        if !self.queue.is_empty() {
            let reference = format!(
                "opt-outs read from consent offsets up to {}",
                self.read_up_to.iter().map(|(p, next)| format!("{p}:{}", next - 1)).collect::<Vec<_>>().join(",")
            );
            let record = erase(lake, storage, &self.queue, &self.rings, ErasureTrigger::OptOut, &reference, audit)?;
            info!(
                patients = self.queue.len(),
                rows = record.rows_removed,
                files = record.files_rewritten.len(),
                "rows of patients who opted out after landing erased"
            );
            rows = record.rows_removed;
            self.queue.clear();
        }
        self.save()?;
        Ok(rows)
    }

    /// Records every offset read so far as considered.
    fn save(&mut self) -> Result<()> {
        let considered = self.considered.get_or_insert_with(Considered::default);
        let before = considered.clone();
        for (partition, next) in &self.read_up_to {
            let entry = considered.next_offsets.entry(*partition).or_insert(0);
            *entry = (*entry).max(*next);
        }
        if *considered == before && self.path.exists() {
            return Ok(());
        }
        let dir = self.path.parent().expect("the progress file lives in the lake's _sluice directory");
        std::fs::create_dir_all(dir).map_err(Error::write(dir))?;
        let text = serde_json::to_vec_pretty(considered).expect("offsets always serialise");
        crate::parquet_sink::write_small_file(&self.path, &text)
    }
}
