//! Reading a landed lake back in tests, with the Parquet reader: its files, their batches and
//! metadata, every value as text, and the event pseudonyms the tests compute with the purposes'
//! keys to tell landed rows apart.

use std::{
    collections::{BTreeMap, HashMap},
    fs::File,
    path::{Path, PathBuf},
};

use arrow::{
    array::{Array, AsArray, RecordBatch},
    datatypes::DataType,
    util::display::ArrayFormatter,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sluice_consumers::pseudonymise::PurposeKey;

/// The event pseudonym a purpose's key gives a source event id, as the lander computes it: the
/// tests hold the keys, so they can tell which source event a landed row is.
pub fn event_pseudonym(key: &PurposeKey, event_id: &uuid::Uuid) -> String {
    key.record_pseudonym("event_id", event_id.as_bytes())
}

/// Every landed event pseudonym under `lake`, with how often it landed.
pub fn landed_ids(lake: &Path) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for file in parquet_files(lake) {
        for id in column_strings(&read_parquet(&file).batches, "event_pseudonym") {
            *seen.entry(id).or_default() += 1;
        }
    }
    seen
}

/// The Parquet files under `dir` that a reader of the lake sees, in path order: in a dataset
/// with a Delta table, the files of the table's newest version (read from its `_delta_log`, by
/// this crate's own replay of the log, not by the writer's library); elsewhere, every file.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut tables: Vec<(PathBuf, std::collections::BTreeSet<PathBuf>)> = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        if let Some(current) = current_table_files(&dir) {
            tables.push((dir.clone(), current));
        }
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    for (root, current) in &tables {
        let missing: Vec<&PathBuf> = current.iter().filter(|file| !file.exists()).collect();
        assert!(missing.is_empty(), "the table at {} names files that are not there: {missing:?}", root.display());
    }
    let mut files = every_parquet_file(dir);
    files.retain(|file| match tables.iter().find(|(root, _)| file.starts_with(root)) {
        Some((_, current)) => current.contains(file),
        None => true,
    });
    files
}

/// The files of the newest version of the Delta table at `root` (its log's `add` actions
/// less its `remove` actions, in commit order), or `None` if `root` holds no table.
pub fn current_table_files(root: &Path) -> Option<std::collections::BTreeSet<PathBuf>> {
    let log = root.join("_delta_log");
    let mut commits: Vec<PathBuf> = std::fs::read_dir(&log)
        .ok()?
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    commits.sort();
    let mut current = std::collections::BTreeSet::new();
    for commit in commits {
        for line in std::fs::read_to_string(&commit).unwrap().lines().filter(|line| !line.trim().is_empty()) {
            let action: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(path) = action["add"]["path"].as_str() {
                current.insert(root.join(path));
            }
            if let Some(path) = action["remove"]["path"].as_str() {
                current.remove(&root.join(path));
            }
        }
    }
    Some(current)
}

/// Every landed Parquet file under `dir`, recursively, in path order, whether or not a table
/// holds it (files kept for a table's earlier versions too): what a scan for identifiers must
/// read. A table's checkpoints (Parquet files in its `_delta_log`) are the log's, not data:
/// [`crate::table_log`] checks them with the rest of the log.
pub fn every_parquet_file(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("_delta_log") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// A landed file read back: its batches and its key-value metadata.
pub struct LandedParquet {
    /// Every row of the file, in the batches the reader returned.
    pub batches: Vec<RecordBatch>,
    /// The file's key-value metadata (a key without a value maps to "").
    pub metadata: BTreeMap<String, String>,
}

/// Reads a landed Parquet file back whole.
pub fn read_parquet(path: &Path) -> LandedParquet {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let metadata = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| kv.iter().map(|e| (e.key.clone(), e.value.clone().unwrap_or_default())).collect())
        .unwrap_or_default();
    let batches = builder.build().unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    LandedParquet { batches, metadata }
}

/// Every value of a named column as text (nulls as "").
pub fn column_strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    let mut values = Vec::new();
    for batch in batches {
        let array = batch.column_by_name(column).unwrap_or_else(|| panic!("no column {column}"));
        // Named time zones need chrono-tz to format; the instants are what matter here.
        let array = match array.data_type() {
            DataType::Timestamp(_, _) => arrow::compute::cast(array, &DataType::Int64).unwrap(),
            _ => array.clone(),
        };
        // UUIDs (16 bytes with the arrow.uuid extension) in their canonical hyphenated form.
        if let Some(uuids) = array.as_fixed_size_binary_opt().filter(|a| a.value_length() == 16) {
            for row in 0..uuids.len() {
                values.push(if uuids.is_null(row) { String::new() } else { hyphenated_uuid(uuids.value(row)) });
            }
            continue;
        }
        let formatter = ArrayFormatter::try_new(array.as_ref(), &Default::default()).unwrap();
        for row in 0..array.len() {
            values.push(if array.is_null(row) { String::new() } else { formatter.value(row).to_string() });
        }
    }
    values
}

/// `0b6c3b0e-6f1a-4a55-9a52-6a3f7f0d2c11` of 16 bytes.
fn hyphenated_uuid(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// Every value of every column as text.
pub fn all_cells(batches: &[RecordBatch]) -> Vec<String> {
    let mut cells = Vec::new();
    for batch in batches {
        for field in batch.schema().fields() {
            cells.extend(column_strings(std::slice::from_ref(batch), field.name()));
        }
    }
    cells
}

/// Words of a text: maximal runs of ASCII letters and digits.
pub fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_read_back_in_their_hyphenated_form_and_text_splits_into_words() {
        let id = uuid::Uuid::new_v4();
        assert_eq!(hyphenated_uuid(id.as_bytes()), id.hyphenated().to_string());
        assert_eq!(words("seen  AB1 2CD, 943-476-5919!"), ["seen", "AB1", "2CD", "943", "476", "5919"]);
    }
}
