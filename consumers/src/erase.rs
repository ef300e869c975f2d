//! Erasure: removing patients' rows from files already landed, when they opt out after their
//! data was released (or when an operator is asked to, with `sluice erase`).
//!
//! Landed files hold no NHS numbers, only pseudonyms, so a patient's rows are found by computing
//! their pseudonym under the key each file was written with (`sluice.key_id` in the file's
//! metadata, looked up in the purpose's [`KeyRing`], so files from before a key rotation are
//! found too) and matching it against the file's pseudonym column (`sluice.patient_pseudonym_column`).
//!
//! A file that holds any of those rows is rewritten without them, in one atomic write (see
//! [`crate::lake::storage`]), so a reader or a crash sees either the old file or the new one, never a mix. A file is kept even when no row is left, so that the
//! offsets it covers still read as landed. Every run appends one [`ErasureRecord`] to the audit
//! log with the files rewritten and their checksums before and after; the record counts patients
//! but never names them.
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
    audit::{AuditEvent, AuditLog, ErasureRecord, ErasureTrigger, RewrittenFile},
    consent::SourceOrganisations,
    keyring::KeyRing,
    lake::parquet::{sha256_hex, write_parquet},
    lake::storage::LakeStorage,
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
        rows_removed: 0,
    };
    for (purpose, wanted) in &by_purpose {
        let ring = rings.get(*purpose).ok_or_else(|| Error::MissingKey(purpose.to_string()))?;
        // Pseudonyms per key id, computed once per key rather than once per file.
        let mut pseudonyms_by_key: HashMap<String, HashMap<String, bool>> = HashMap::new();
        for key in storage.parquet_files(purpose)? {
            record.files_searched += 1;
            let file = LandedParquet::read(storage, &key)?;
            let pseudonyms = match pseudonyms_by_key.get(&file.key_id) {
                Some(pseudonyms) => pseudonyms,
                None => {
                    let pseudonym_key = ring.by_id(&file.key_id).ok_or_else(|| Error::Erase {
                        path: key.clone().into(),
                        reason: format!(
                            "written with key `{}`, which purpose `{purpose}` no longer holds; add it as a retired key",
                            file.key_id
                        ),
                    })?;
                    let mut pseudonyms: HashMap<String, bool> = HashMap::new();
                    for (nhs_number, gp_only) in wanted {
                        let entry =
                            pseudonyms.entry(pseudonym_key.patient_pseudonym(&nhs_number.digits())).or_insert(true);
                        *entry &= *gp_only;
                    }
                    pseudonyms_by_key.entry(file.key_id.clone()).or_insert(pseudonyms)
                }
            };
            if let Some(rewritten) = file.remove_rows(pseudonyms, register, storage)? {
                record.rows_removed += rewritten.rows_removed;
                record.files_rewritten.push(rewritten);
            }
        }
    }
    audit.append(&AuditEvent::Erasure(record.clone()))?;
    Ok(record)
}

/// A landed file read whole, with what erasure needs from its metadata.
struct LandedParquet {
    key: String,
    /// SHA-256 of the file as read.
    sha256: String,
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
        Ok(LandedParquet { key: key.to_owned(), sha256, batches, schema, metadata, key_id, pseudonym_column })
    }

    /// Rewrites the file without the rows of the given pseudonyms (value: GP-sourced rows only);
    /// `None` when it holds none of them.
    fn remove_rows(
        self,
        pseudonyms: &HashMap<String, bool>,
        register: &SourceOrganisations,
        storage: &LakeStorage,
    ) -> Result<Option<RewrittenFile>> {
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
        let mut metadata = self.metadata;
        let erased_before = metadata
            .iter()
            .position(|(k, _)| k == ERASED_ROWS_KEY)
            .map(|index| metadata.remove(index).1.parse::<u64>().unwrap_or(0))
            .unwrap_or(0);
        metadata.push((ERASED_ROWS_KEY.to_owned(), (erased_before + removed).to_string()));
        let kept = RecordBatch::try_new(Arc::clone(kept.schema_ref()), kept.columns().to_vec())
            .map_err(|e| failed(e.to_string()))?;
        let rewritten = write_parquet(storage, &self.key, &kept, metadata)?;
        Ok(Some(RewrittenFile {
            path: self.key,
            rows_removed: removed,
            sha256_before: self.sha256,
            sha256_after: rewritten.sha256,
        }))
    }
}

#[cfg(test)]
mod tests;
