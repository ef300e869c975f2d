//! Erasure driven by later opt-outs ([`super::LanderConfig::erase_on_opt_out`]).
//!
//! An opt-out or dissent read from the consent topic after a patient's rows were landed queues
//! the patient. The lander then checkpoints at once, before it releases anything more: the rows
//! released before the opt-out was read are written, and each queued patient's rows are erased
//! from every purpose the consent **now in force** withholds them from (only the GP practices'
//! rows when it is a Type 1 opt-out alone), before the checkpoint commits: a later record that
//! withdraws the opt-out, read before the checkpoint, means nothing is erased. Purposes whose
//! policy keeps landed rows (`keep_landed_rows_on_opt_out`, with its reason) and direct care are
//! never erased from, and neither are rows held back only by a consent record that could not be
//! read (a hold withholds; it does not recall).
//!
//! A change dated in the future, or a time-limited one, takes effect when the consent store's
//! clock reaches it ([`ConsentStore::advance_to`]); a DENY taking effect so queues its patient
//! as one just read would.
//!
//! "After" is measured on the consent topic: `<lake>/_sluice/erasure-consent-offsets.json`
//! records, per consent partition, the next offset whose changes have not yet been considered,
//! and the consent clock up to which changes taking effect have been (a time, not a patient: the
//! file names nobody). A lander starting again queues the patients of every DENY that took
//! effect after that time, so one that took effect while no lander ran is not missed.
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
    consent::{ConsentStore, Decision, Purpose, PurposeRules, SourceOrganisations},
    erase::{PatientErasure, erase},
    keyring::KeyRing,
    lake::storage::LakeStorage,
};

/// The persisted progress through the consent topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Considered {
    /// Next consent offset not yet considered, per consent partition.
    next_offsets: BTreeMap<i32, i64>,
    /// The consent store's clock (microseconds since the Unix epoch) when progress was last
    /// saved: DENYs taking effect by then have been considered. Absent in files from before
    /// consent changes could be dated ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clock_micros: Option<i64>,
}

/// Erasures owed to opt-outs read after rows were landed.
pub(super) struct OptOutErasures {
    /// Where the progress is kept.
    path: PathBuf,
    /// Progress as last saved; `None` until the first run has read the consent topic to its end.
    considered: Option<Considered>,
    /// Next offset per consent partition read in this run.
    read_up_to: BTreeMap<i32, i64>,
    /// Patients who opted out or dissented since rows were landed, by NHS number as an integer:
    /// what to erase is decided at the next checkpoint, from the consent in force then.
    queue: BTreeMap<u64, NhsNumber>,
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
        Ok(OptOutErasures { path, considered, read_up_to: BTreeMap::new(), queue: BTreeMap::new(), rings })
    }

    /// Notes one consent message just applied: `denied` is the patient of an opt-out or dissent
    /// (`None` for other changes and unreadable messages).
    pub(super) fn note(&mut self, partition: i32, offset: i64, denied: Option<NhsNumber>) {
        self.read_up_to.insert(partition, offset + 1);
        let (Some(considered), Some(nhs_number)) = (&self.considered, denied) else { return };
        if offset < considered.next_offsets.get(&partition).copied().unwrap_or(0) {
            return;
        }
        self.queue.insert(nhs_number.as_u64(), nhs_number);
    }

    /// What to erase for each queued patient under the consent in force now: the purposes that
    /// withhold all their rows, and those that withhold only GP-sourced ones.
    fn erasures_now(&self, purposes: &[(&Purpose, &PurposeRules)], store: &ConsentStore) -> Vec<PatientErasure> {
        let mut erasures = Vec::new();
        for nhs_number in self.queue.values() {
            let withheld = |purpose: &Purpose, rules: &PurposeRules, gp_sourced: bool| {
                matches!(
                    store.decide_without_holds(purpose, rules, Some(*nhs_number), gp_sourced),
                    Decision::Withhold(_)
                )
            };
            let (mut every_row, mut gp_rows) = (Vec::new(), Vec::new());
            let recalled = purposes.iter().filter(|(purpose, rules)| {
                purpose.needs_opt_out_check() && rules.keep_landed_rows_on_opt_out.is_none()
            });
            for (purpose, rules) in recalled {
                if withheld(purpose, rules, false) {
                    every_row.push(purpose.name());
                } else if withheld(purpose, rules, true) {
                    gp_rows.push(purpose.name());
                }
            }
            for (purposes, gp_sourced_only) in [(every_row, false), (gp_rows, true)] {
                if !purposes.is_empty() {
                    erasures.push(PatientErasure { nhs_number: *nhs_number, purposes, gp_sourced_only });
                }
            }
        }
        erasures
    }

    /// Notes patients for whom a DENY took effect as the consent clock moved on.
    pub(super) fn took_effect(&mut self, denied: Vec<NhsNumber>) {
        if self.considered.is_none() {
            return;
        }
        for nhs_number in denied {
            self.queue.insert(nhs_number.as_u64(), nhs_number);
        }
    }

    /// Called once the consent topic has been read to its end at start-up: on the first run,
    /// that end (and the store's clock) is where "later" begins; on later runs, every DENY in
    /// `store` that took effect after the clock last saved is queued.
    pub(super) fn after_initial_load(&mut self, store: &ConsentStore) -> Result<()> {
        match &self.considered {
            None => {
                self.considered = Some(Considered::default());
                self.save(store.now())?;
            }
            Some(Considered { clock_micros: Some(clock), .. }) => {
                let denied = store.denials_effective_since(*clock);
                self.took_effect(denied);
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Whether erasures are queued.
    pub(super) fn has_work(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Erases the queued patients' rows from the purposes the consent in force in `store` now
    /// withholds them from, records it in the audit log and saves the progress. Returns the rows
    /// removed.
    pub(super) fn run(
        &mut self,
        lake: &Path,
        storage: &LakeStorage,
        audit: &mut AuditLog,
        purposes: &[(&Purpose, &PurposeRules)],
        store: &ConsentStore,
        register: &SourceOrganisations,
    ) -> Result<u64> {
        let mut rows = 0;
        let erasures = self.erasures_now(purposes, store);
        if !erasures.is_empty() {
            let reference = format!(
                "opt-outs read from consent offsets up to {}, or taking effect by {}",
                self.read_up_to.iter().map(|(p, next)| format!("{p}:{}", next - 1)).collect::<Vec<_>>().join(","),
                chrono::DateTime::from_timestamp_micros(store.now())
                    .map_or_else(|| store.now().to_string(), |at| at.to_rfc3339())
            );
            let record =
                erase(lake, storage, &erasures, &self.rings, register, ErasureTrigger::OptOut, &reference, audit)?;
            info!(
                patients = erasures.len(),
                rows = record.rows_removed,
                files = record.files_rewritten.len(),
                "rows of patients who opted out after landing erased"
            );
            rows = record.rows_removed;
        }
        self.queue.clear();
        self.save(store.now())?;
        Ok(rows)
    }

    /// Records every offset read so far, and every change taking effect by `clock`, as
    /// considered.
    fn save(&mut self, clock: i64) -> Result<()> {
        let considered = self.considered.get_or_insert_with(Considered::default);
        let before = considered.clone();
        considered.clock_micros = Some(considered.clock_micros.map_or(clock, |saved| saved.max(clock)));
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
        crate::lake::parquet::write_small_file(&self.path, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::{ConsentChange, ConsentScope};

    const LATER: i64 = 2_000_000_000_000_000;

    fn patient() -> NhsNumber {
        NhsNumber::parse("9434765919").unwrap()
    }

    fn change(deny: bool, effective_at: i64) -> ConsentChange {
        ConsentChange {
            nhs_number: patient(),
            scope: ConsentScope::NationalDataOptOut,
            deny,
            effective_at,
            effective_until: None,
            purposes: Vec::new(),
        }
    }

    /// A queue past its first start, with `patient` noted as denied at offset 5.
    fn queued() -> (tempfile::TempDir, OptOutErasures) {
        let dir = tempfile::tempdir().unwrap();
        let mut erasures = OptOutErasures::open(dir.path(), BTreeMap::new()).unwrap();
        erasures.after_initial_load(&ConsentStore::new()).unwrap();
        erasures.note(0, 5, Some(patient()));
        assert!(erasures.has_work());
        (dir, erasures)
    }

    #[test]
    fn what_is_erased_follows_the_consent_in_force_at_the_checkpoint_not_when_the_opt_out_was_read() {
        let (research, planning, direct) = (Purpose::Research, Purpose::Planning, Purpose::DirectCare);
        let rules = PurposeRules::default();
        let purposes = [(&research, &rules), (&planning, &rules), (&direct, &rules)];
        let (_dir, erasures) = queued();
        let mut store = ConsentStore::at(LATER + 10);
        store.apply(change(true, LATER));
        let now = erasures.erasures_now(&purposes, &store);
        assert_eq!(now.len(), 1);
        assert_eq!(now[0].purposes, ["research", "planning"], "never direct care");
        assert!(!now[0].gp_sourced_only);
        // The opt-out withdrawn by a record read before the checkpoint: nothing to erase.
        store.apply(change(false, LATER + 1));
        assert!(erasures.erasures_now(&purposes, &store).is_empty());
    }

    #[test]
    fn purposes_that_keep_rows_and_patients_held_by_an_unreadable_record_are_not_erased_from() {
        let (research, planning) = (Purpose::Research, Purpose::Planning);
        let keep =
            PurposeRules { keep_landed_rows_on_opt_out: Some("DARS agreement 2026-114".into()), ..Default::default() };
        let rules = PurposeRules::default();
        let (_dir, erasures) = queued();
        let mut store = ConsentStore::at(LATER + 10);
        store.apply(change(true, LATER));
        let now = erasures.erasures_now(&[(&research, &keep), (&planning, &rules)], &store);
        assert_eq!(now[0].purposes, ["planning"]);
        // Held back only because a record could not be read: withheld, never erased.
        let mut held = ConsentStore::new();
        held.hold_unreadable("9434765919:NATIONAL_DATA_OPT_OUT", patient());
        assert!(erasures.erasures_now(&[(&research, &rules)], &held).is_empty());
    }

    #[test]
    fn opt_outs_read_before_the_first_start_or_before_saved_progress_queue_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut erasures = OptOutErasures::open(dir.path(), BTreeMap::new()).unwrap();
        erasures.note(0, 3, Some(patient()));
        assert!(!erasures.has_work(), "the first load was in force before anything landed");
        erasures.after_initial_load(&ConsentStore::new()).unwrap();
        let mut again = OptOutErasures::open(dir.path(), BTreeMap::new()).unwrap();
        again.note(0, 3, Some(patient()));
        assert!(!again.has_work(), "considered already");
        again.note(0, 4, Some(patient()));
        assert!(again.has_work());
    }
}
