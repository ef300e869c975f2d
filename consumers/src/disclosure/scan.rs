//! Reading a dataset's table into release units: only the patient pseudonym and the
//! quasi-identifier columns of the files of the table's newest version, one release unit at a
//! time, so memory grows with the largest unit and never with the lake.

use std::collections::BTreeMap;

use arrow::{
    array::{Array, StringArray},
    compute::cast,
    datatypes::DataType,
};
use parquet::arrow::{ProjectionMask, arrow_reader::ParquetRecordBatchReaderBuilder};

use super::{
    classes::{UnitRows, patient_of},
    rules::{QuasiIdentifier, ReleaseUnit},
};
use crate::{
    Error, Result,
    lake::{
        layout::MISSING_PARTITION_VALUE,
        storage::{LakeStorage, block_on},
        table::{DatasetTable, by_dataset},
    },
};

/// The name of a release unit whose records have no event time.
pub const NO_EVENT_TIME: &str = "no event time";

/// A dataset's files as measured: its table's newest version and the keys of that version's
/// files (no version, and every Parquet file, for a dataset landed before tables).
pub type DatasetFiles = (Option<u64>, Vec<String>);

/// Each dataset (`<purpose>/<subject>`) of `purpose` in the lake, with its files.
pub fn datasets_of(storage: &LakeStorage, purpose: &str) -> Result<BTreeMap<String, DatasetFiles>> {
    let mut datasets = BTreeMap::new();
    for (dataset, listed) in by_dataset(storage.parquet_files(&format!("{purpose}/"))?) {
        let found = match block_on(DatasetTable::open_in(storage, &dataset))? {
            Some(table) => {
                let keys = table.files()?.into_iter().map(|path| format!("{dataset}/{path}")).collect();
                (Some(table.version()), keys)
            }
            None => (None, listed),
        };
        datasets.insert(dataset, found);
    }
    Ok(datasets)
}

/// The files of one dataset grouped by release unit: `2026-03` for a month, `2026-03-05` for a
/// day partition measured by partition, [`NO_EVENT_TIME`] for files without an event time.
pub fn by_release_unit(keys: Vec<String>, unit: ReleaseUnit) -> BTreeMap<String, Vec<String>> {
    let mut units: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in keys {
        let directory = key.rsplit_once('/').map(|(directory, _)| directory).unwrap_or_default();
        let value = directory.rsplit('/').next().and_then(|last| last.split_once('=')).map(|(_, value)| value);
        let name = match value {
            None | Some(MISSING_PARTITION_VALUE) => NO_EVENT_TIME.to_owned(),
            Some(value) => match unit {
                ReleaseUnit::Partition => value.to_owned(),
                ReleaseUnit::Month => value.get(..7).unwrap_or(value).to_owned(),
            },
        };
        units.entry(name).or_default().push(key);
    }
    units
}

/// Reads the records of one release unit (its files' `keys`) into [`UnitRows`]: the patient
/// from `patient_column`, and each quasi-identifier as text. A file without a quasi-identifier
/// column (landed before a schema change added it) reads it as null; a file without the
/// patient column is refused, because its patients cannot be counted.
pub fn read_unit(
    storage: &LakeStorage,
    keys: &[String],
    quasi_identifiers: &[QuasiIdentifier],
    patient_column: &str,
) -> Result<UnitRows> {
    let mut rows = UnitRows::new(quasi_identifiers);
    for key in keys {
        let failed = |reason: String| Error::Disclosure { path: key.clone(), reason };
        let bytes = storage.get(key)?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| failed(e.to_string()))?;
        let schema = builder.schema().clone();
        if schema.index_of(patient_column).is_err() {
            return Err(failed(format!("no `{patient_column}` column, so its patients cannot be counted")));
        }
        let wanted: Vec<&str> = std::iter::once(patient_column)
            .chain(quasi_identifiers.iter().map(|q| q.column.as_str()))
            .filter(|column| schema.index_of(column).is_ok())
            .collect();
        let mask = ProjectionMask::columns(builder.parquet_schema(), wanted.iter().copied());
        let reader = builder.with_projection(mask).build().map_err(|e| failed(e.to_string()))?;
        for batch in reader {
            let batch = batch.map_err(|e| failed(e.to_string()))?;
            let text = |column: &str| -> Result<Option<StringArray>> {
                let Some(array) = batch.column_by_name(column) else { return Ok(None) };
                let array = cast(array, &DataType::Utf8).map_err(|e| failed(format!("`{column}`: {e}")))?;
                Ok(array.as_any().downcast_ref::<StringArray>().cloned())
            };
            let patients = text(patient_column)?.ok_or_else(|| failed(format!("`{patient_column}` is not text")))?;
            let columns: Vec<Option<StringArray>> =
                quasi_identifiers.iter().map(|q| text(&q.column)).collect::<Result<_>>()?;
            let mut values: Vec<Option<&str>> = Vec::with_capacity(columns.len());
            for row in 0..batch.num_rows() {
                values.clear();
                values.extend(columns.iter().map(|column| {
                    column.as_ref().and_then(|column| (!column.is_null(row)).then(|| column.value(row)))
                }));
                let patient = (!patients.is_null(row)).then(|| patients.value(row));
                rows.push(patient_of(patient), &values);
            }
        }
    }
    Ok(rows)
}
