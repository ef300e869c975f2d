//! Erasure: removing patients' rows from files already landed, when they opt out after their
//! data was released (or when an operator is asked to, with `sluice erase`).
//!
//! Landed files hold no NHS numbers, only pseudonyms, so a patient's rows are found by computing
//! their pseudonym under the key each file was written with (`sluice.key_id` in the file's
//! metadata, looked up in the purpose's [`KeyRing`], so files from before a key rotation are
//! found too) and matching it against the file's pseudonym column (`sluice.patient_pseudonym_column`).
//!
//! In a dataset's Delta table (see [`crate::lake::table`]), each file of the table's newest
//! version that holds any of those rows is written again, without them, under a new name, and
//! one commit per table replaces the old files with the new ones: a reader sees the table before
//! the erasure or after it, never a mix. The old files are then removed at once, and so are
//! files that only earlier versions hold (replaced by a compaction or an earlier erasure) if they
//! hold any of the rows: reading an earlier version can never bring an erased patient back (it
//! fails instead, on a missing file). Files a lander has written but its table not yet committed
//! are left to the lander, which withholds the patient from then on. A file landed before the
//! dataset had a table is rewritten in place, in one atomic write (see [`crate::lake::storage`]).
//! A file is kept even when no row is left. Every run appends one [`ErasureRecord`] to the audit
//! log with the files rewritten and their checksums before and after, and each table's new
//! version; the record counts patients but never names them.
//!
//! Erasure fails closed: a file written with a key the ring no longer holds, or without a
//! pseudonym column, stops the run with an error naming the file, because the patient's rows in
//! it could not be found.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    sync::Arc,
};

use arrow::{
    array::{Array, BooleanArray, StringArray},
    compute::{concat_batches, filter_record_batch},
    record_batch::RecordBatch,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sluice_schemas::NhsNumber;

use crate::{
    Error, Result,
    audit::{AuditEvent, AuditLog, ErasureRecord, ErasureTrigger, FileRecord, RewrittenFile},
    consent::SourceOrganisations,
    keyring::KeyRing,
    lake::ledger::LedgerEntry,
    lake::parquet::{sha256_hex, write_parquet},
    lake::storage::{LakeStorage, block_on},
    lake::table::{Change, DatasetFiles, DatasetTable, FileRole, TableFile, by_dataset},
};

/// File metadata key naming the column that holds the patient pseudonym.
pub const PSEUDONYM_COLUMN_KEY: &str = "sluice.patient_pseudonym_column";
/// Pseudonym column assumed for files that do not name one.
pub const DEFAULT_PSEUDONYM_COLUMN: &str = "patient_pseudonym";
/// File metadata key counting rows erased from the file so far.
pub const ERASED_ROWS_KEY: &str = "sluice.erased_rows";

/// One patient to erase from some purposes' datasets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientErasure {
    /// The patient. Never logged, never written anywhere.
    pub nhs_number: NhsNumber,
    /// Purposes whose landed files lose the patient's rows.
    pub purposes: Vec<String>,
    /// Only rows a Type 1 opt-out covers, by the register of source organisations (a GP
    /// practice's, a hub's, or an organisation's the register does not list); when a file has no
    /// `source_organisation` column every row of the patient goes, which errs on the safe side.
    pub gp_sourced_only: bool,
}

/// Removes the patients' rows from every landed file of the named purposes in `storage`, and
/// records the run in `audit`. `lake` is the lake's state directory, whose lock keeps rewrites
/// apart. `reference` says who or what asked (a ticket, or consent offsets). `register` says
/// which rows a Type 1 erasure ([`PatientErasure::gp_sourced_only`]) covers.
// Each argument is a separate thing the caller holds; a struct for them would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn erase(
    lake: &Path,
    storage: &LakeStorage,
    patients: &[PatientErasure],
    rings: &BTreeMap<String, KeyRing>,
    register: &SourceOrganisations,
    trigger: ErasureTrigger,
    reference: &str,
    audit: &mut AuditLog,
) -> Result<ErasureRecord> {
    let _lock = crate::lake::lock(lake)?;
    let mut by_purpose: BTreeMap<&str, Vec<(&NhsNumber, bool)>> = BTreeMap::new();
    for patient in patients {
        for purpose in &patient.purposes {
            by_purpose.entry(purpose).or_default().push((&patient.nhs_number, patient.gp_sourced_only));
        }
    }
    let mut record = ErasureRecord {
        trigger,
        reference: reference.to_owned(),
        purposes: by_purpose.keys().map(|p| p.to_string()).collect(),
        patients: patients.len() as u64,
        files_searched: 0,
        files_rewritten: Vec::new(),
        earlier_files_removed: Vec::new(),
        table_versions: BTreeMap::new(),
        rows_removed: 0,
    };
    let entries = crate::lake::ledger::read(lake)?;
    for (purpose, wanted) in &by_purpose {
        let ring = rings.get(*purpose).ok_or_else(|| Error::MissingKey(purpose.to_string()))?;
        let mut pseudonyms = PseudonymsByKey { purpose, ring, wanted, by_key: HashMap::new() };
        for (dataset, keys) in by_dataset(storage.parquet_files(purpose)?) {
            erase_in_dataset(lake, storage, &dataset, keys, &entries, &mut pseudonyms, register, &mut record)?;
        }
    }
    audit.append(&AuditEvent::Erasure(record.clone()))?;
    Ok(record)
}

/// The patients' pseudonyms under each key of a purpose's ring, computed once per key rather
/// than once per file; each with whether only its GP-sourced rows go.
struct PseudonymsByKey<'p> {
    purpose: &'p str,
    ring: &'p KeyRing,
    wanted: &'p [(&'p NhsNumber, bool)],
    by_key: HashMap<String, HashMap<String, bool>>,
}

impl PseudonymsByKey<'_> {
    fn under(&mut self, file: &LandedParquet) -> Result<&HashMap<String, bool>> {
        if !self.by_key.contains_key(&file.key_id) {
            let pseudonym_key = self.ring.by_id(&file.key_id).ok_or_else(|| Error::Erase {
                path: file.key.clone().into(),
                reason: format!(
                    "written with key `{}`, which purpose `{}` no longer holds; add it as a retired key",
                    file.key_id, self.purpose
                ),
            })?;
            let mut pseudonyms: HashMap<String, bool> = HashMap::new();
            for (nhs_number, gp_only) in self.wanted {
                let entry = pseudonyms.entry(pseudonym_key.patient_pseudonym(&nhs_number.digits())).or_insert(true);
                *entry &= *gp_only;
            }
            self.by_key.insert(file.key_id.clone(), pseudonyms);
        }
        Ok(&self.by_key[&file.key_id])
    }
}

/// Erases the patients from one dataset's files, by each file's role in the dataset's table.
// The lake, its ledger and the run's record are separate things the caller holds.
#[allow(clippy::too_many_arguments)]
fn erase_in_dataset(
    lake: &Path,
    storage: &LakeStorage,
    dataset: &str,
    keys: Vec<String>,
    entries: &[LedgerEntry],
    pseudonyms: &mut PseudonymsByKey<'_>,
    register: &SourceOrganisations,
    record: &mut ErasureRecord,
) -> Result<()> {
    let mut table = block_on(DatasetTable::open_in(storage, dataset))?;
    let files = block_on(DatasetFiles::read(table.as_ref(), dataset, entries))?;
    let (mut removed, mut added, mut replaced) = (Vec::new(), Vec::new(), Vec::new());
    for key in keys {
        let role = files.role(&key);
        if role == FileRole::Uncommitted {
            continue;
        }
        record.files_searched += 1;
        let file = LandedParquet::read(storage, &key)?;
        let (sha256_before, bytes_before, rows_before) = (file.sha256.clone(), file.bytes, file.rows());
        let Some(kept) = file.without_rows(pseudonyms.under(&file)?, register)? else { continue };
        // Rows removed from what the tables hold now; an earlier version's file goes whole.
        if role != FileRole::Earlier {
            record.rows_removed += kept.removed;
        }
        match role {
            FileRole::Current => {
                let directory = key.rsplit_once('/').map(|(directory, _)| directory).unwrap_or_default();
                let new_key = format!("{directory}/{}", crate::lake::ledger::fresh_file_name());
                // Recorded before it is written, as every file sluice writes into a table.
                let merged = LedgerEntry::Merged { key: new_key.clone(), inputs: vec![key.clone()] };
                crate::lake::ledger::append(lake, &[merged])?;
                let written = write_parquet(storage, &new_key, &kept.batch, kept.metadata)?;
                let unknown =
                    || Error::Erase { path: key.clone().into(), reason: "not in an event-time directory".into() };
                removed.push(TableFile::of_key(&key, bytes_before, rows_before).ok_or_else(unknown)?.1);
                added.push(TableFile::of_key(&new_key, written.bytes, written.rows as u64).ok_or_else(unknown)?.1);
                replaced.push(key.clone());
                record.files_rewritten.push(RewrittenFile {
                    path: key,
                    rows_removed: kept.removed,
                    sha256_before,
                    sha256_after: written.sha256,
                    replaced_by: Some(new_key),
                });
            }
            FileRole::Earlier => {
                storage.delete(&key)?;
                record.earlier_files_removed.push(FileRecord {
                    path: key,
                    sha256: sha256_before,
                    rows: rows_before,
                    bytes: bytes_before,
                });
            }
            FileRole::BeforeTables => {
                let written = write_parquet(storage, &key, &kept.batch, kept.metadata)?;
                record.files_rewritten.push(RewrittenFile {
                    path: key,
                    rows_removed: kept.removed,
                    sha256_before,
                    sha256_after: written.sha256,
                    replaced_by: None,
                });
            }
            // Skipped before it was read.
            FileRole::Uncommitted => {}
        }
    }
    if let Some(table) = table.as_mut().filter(|_| !replaced.is_empty()) {
        let version = block_on(table.commit(&added, &removed, Change::Erasure))?;
        record.table_versions.insert(dataset.to_owned(), version);
        // No version from now on holds them: remove them, so that no earlier one can be read.
        for key in &replaced {
            storage.delete(key)?;
        }
    }
    Ok(())
}

/// A landed file read whole, with what erasure needs from its metadata.
struct LandedParquet {
    key: String,
    /// SHA-256 of the file as read.
    sha256: String,
    /// Its size in bytes.
    bytes: u64,
    batches: Vec<RecordBatch>,
    schema: arrow::datatypes::SchemaRef,
    metadata: Vec<(String, String)>,
    key_id: String,
    pseudonym_column: String,
}

impl LandedParquet {
    fn read(storage: &LakeStorage, key: &str) -> Result<Self> {
        let failed = |reason: String| Error::Erase { path: key.into(), reason };
        let bytes = storage.get(key)?;
        let sha256 = sha256_hex(&bytes);
        let size = bytes.len() as u64;
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| failed(e.to_string()))?;
        let metadata = crate::lake::parquet::key_value_pairs(builder.metadata().file_metadata());
        let find = |key: &str| metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let key_id = find("sluice.key_id").ok_or_else(|| failed("no sluice.key_id in its metadata".to_owned()))?;
        let pseudonym_column = find(PSEUDONYM_COLUMN_KEY).unwrap_or_else(|| DEFAULT_PSEUDONYM_COLUMN.to_owned());
        let schema = builder.schema().clone();
        let batches = builder
            .build()
            .map_err(|e| failed(e.to_string()))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| failed(e.to_string()))?;
        Ok(LandedParquet {
            key: key.to_owned(),
            sha256,
            bytes: size,
            batches,
            schema,
            metadata,
            key_id,
            pseudonym_column,
        })
    }

    /// Rows in the file.
    fn rows(&self) -> u64 {
        self.batches.iter().map(|batch| batch.num_rows() as u64).sum()
    }

    /// The file's rows without those of the given pseudonyms (value: GP-sourced rows only),
    /// with its metadata counting them; `None` when it holds none of them.
    fn without_rows(&self, pseudonyms: &HashMap<String, bool>, register: &SourceOrganisations) -> Result<Option<Kept>> {
        let failed = |reason: String| Error::Erase { path: self.key.clone().into(), reason };
        let pseudonym_index = self.schema.index_of(&self.pseudonym_column).map_err(|_| {
            failed(format!("no `{}` column, so a patient's rows cannot be found in it", self.pseudonym_column))
        })?;
        let organisation_index = self.schema.index_of("source_organisation").ok();
        let mut removed = 0u64;
        let mut kept_batches = Vec::with_capacity(self.batches.len());
        for batch in &self.batches {
            let column = |index: usize| batch.column(index).as_any().downcast_ref::<StringArray>();
            let pseudonym = column(pseudonym_index).ok_or_else(|| failed("the pseudonym column is not text".into()))?;
            let organisation = organisation_index.and_then(column);
            let keep: BooleanArray = (0..batch.num_rows())
                .map(|row| {
                    let erase = !pseudonym.is_null(row)
                        && pseudonyms.get(pseudonym.value(row)).is_some_and(|gp_only| {
                            !gp_only
                                || register.type_1_covers(
                                    organisation.and_then(|orgs| orgs.is_valid(row).then(|| orgs.value(row))),
                                )
                        });
                    removed += u64::from(erase);
                    Some(!erase)
                })
                .collect();
            kept_batches.push(filter_record_batch(batch, &keep).map_err(|e| failed(e.to_string()))?);
        }
        if removed == 0 {
            return Ok(None);
        }
        let kept = concat_batches(&self.schema, &kept_batches).map_err(|e| failed(e.to_string()))?;
        let mut metadata = self.metadata.clone();
        let erased_before = metadata
            .iter()
            .position(|(k, _)| k == ERASED_ROWS_KEY)
            .map(|index| metadata.remove(index).1.parse::<u64>().unwrap_or(0))
            .unwrap_or(0);
        metadata.push((ERASED_ROWS_KEY.to_owned(), (erased_before + removed).to_string()));
        let batch = RecordBatch::try_new(Arc::clone(kept.schema_ref()), kept.columns().to_vec())
            .map_err(|e| failed(e.to_string()))?;
        Ok(Some(Kept { batch, metadata, removed }))
    }
}

/// What is left of a file once a patient's rows are taken out.
struct Kept {
    /// The rows kept.
    batch: RecordBatch,
    /// The file's metadata, counting the rows erased from it so far.
    metadata: Vec<(String, String)>,
    /// Rows taken out.
    removed: u64,
}

#[cfg(test)]
mod tests;
