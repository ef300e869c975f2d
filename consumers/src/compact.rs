//! Compaction: merging the small files of a dataset's date partition into fewer, larger ones
//! (`sluice compact`), so that analysts' scans do not pay per-file costs.
//!
//! Only files that can never be withdrawn again are merged: files whose offsets all lie before
//! the committed offset recorded in the lake for their source partition
//! (`_sluice/committed-offsets.json`, see [`crate::lake`]), as the landing ledger
//! ([`crate::lake::ledger`]) gives them, and earlier merged files. A file the ledger does not
//! know is left alone. Files are merged only with files of the same Arrow schema, policy hash,
//! key id and reader schema, so a merged file's provenance metadata stays true. A merged file
//! gets a fresh random name like any landed file, its rows are sorted again (so the order of its
//! inputs says nothing either), and it names neither its inputs nor any source offsets: the
//! ledger records its inputs, before it is written. If a crash comes between writing it and
//! removing its inputs, the next compaction removes the inputs the ledger lists for a merged
//! file that exists. Every run is recorded in the audit log with each merged file and its
//! inputs, with checksums.

use std::{collections::BTreeMap, path::Path};

use arrow::{compute::concat_batches, record_batch::RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::{
    Error, Result,
    audit::{AuditEvent, AuditLog, CompactionRecord, FileRecord, MergedFile},
    batch::{SORTED_BY_KEY, order_rows},
    lake::layout::parse_landed_file_name,
    lake::parquet::sha256_hex,
    lake::storage::LakeStorage,
    lake::{
        self,
        ledger::{self, LedgerEntry},
        storage::block_on,
        table::{Change, DatasetFiles, DatasetTable, FileRole, TableFile, by_dataset},
    },
};

/// How far compaction goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionOptions {
    /// Most rows in one merged file (and so in memory at once).
    pub max_rows_per_file: usize,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        CompactionOptions { max_rows_per_file: 1_000_000 }
    }
}

/// Merges the small files of every dataset in `storage` (every purpose), and records it.
/// `lake_dir` is the lake's state directory (its lock and committed offsets).
pub fn compact(
    lake_dir: &Path,
    storage: &LakeStorage,
    options: CompactionOptions,
    audit: &mut AuditLog,
) -> Result<CompactionRecord> {
    let _lock = lake::lock(lake_dir)?;
    let committed = lake::committed(lake_dir)?;
    let entries = ledger::read(lake_dir)?;
    let ranges = ledger::landed_ranges(&entries);
    let merges: BTreeMap<&str, &[String]> = entries
        .iter()
        .filter_map(|entry| match entry {
            LedgerEntry::Merged { key, inputs } => Some((key.as_str(), inputs.as_slice())),
            LedgerEntry::Landed { .. } => None,
        })
        .collect();
    let mut record = CompactionRecord {
        files_before: 0,
        files_after: 0,
        merged: Vec::new(),
        removed_leftovers: Vec::new(),
        table_versions: BTreeMap::new(),
    };
    for (dataset, keys) in by_dataset(storage.parquet_files("")?) {
        let table = block_on(DatasetTable::open_in(storage, &dataset))?;
        match table {
            Some(table) => compact_table(lake_dir, storage, options, &dataset, table, keys, &entries, &mut record)?,
            None => {
                let mut directories: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for key in keys {
                    let dir = key.rsplit_once('/').map(|(dir, _)| dir).unwrap_or_default().to_owned();
                    directories.entry(dir).or_default().push(key);
                }
                for (dir, files) in directories {
                    record.files_before += files.len() as u64;
                    let files = remove_leftovers(storage, files, &merges, &mut record)?;
                    let mut groups: BTreeMap<GroupKey, Vec<Footer>> = BTreeMap::new();
                    for key in files {
                        let name = key.rsplit('/').next().unwrap_or_default();
                        // Where the file's events came from: the ledger, or the name of a file
                        // landed before the ledger existed.
                        let range = match (ranges.get(key.as_str()), parse_landed_file_name(name)) {
                            (Some((topic, partition, first, last)), _) => {
                                Some((topic.to_string(), *partition, *first, *last))
                            }
                            (None, Some(old)) => Some((old.topic.to_owned(), old.partition, old.first, old.last)),
                            (None, None) => None,
                        };
                        let settled = match &range {
                            Some((topic, partition, _, last)) => {
                                *last < committed.get(topic).and_then(|p| p.get(partition)).copied().unwrap_or(0)
                            }
                            None => merges.contains_key(key.as_str()) || name.contains("+merged-"),
                        };
                        if settled {
                            let footer = read_footer(storage, key, range.map(|(_, p, first, last)| (p, first, last)))?;
                            groups.entry(footer.group_key()).or_default().push(footer);
                        } else {
                            record.files_after += 1;
                        }
                    }
                    for run in groups.into_values().flat_map(|group| ordered_runs(group, options)) {
                        if run.len() > 1 {
                            let merged = merge(lake_dir, storage, &dir, &run)?;
                            for file in &run {
                                storage.delete(&file.key)?;
                            }
                            record.merged.push(merged);
                        }
                        record.files_after += 1;
                    }
                }
            }
        }
    }
    audit.append(&AuditEvent::Compaction(record.clone()))?;
    // Entries of files merged away (and of earlier merges) are no longer needed.
    let present = storage.parquet_files("")?.into_iter().collect();
    ledger::prune(lake_dir, &committed, &present)?;
    Ok(record)
}

/// Compacts a dataset that has a table: only files of the table's newest version are merged
/// (they are committed, so never withdrawn), and one commit per table replaces each run of
/// small files with its merged file. The small files stay in the lake, for reading earlier
/// versions of the table.
// The lake, its ledger and the run's record are separate things the caller holds.
#[allow(clippy::too_many_arguments)]
fn compact_table(
    lake_dir: &Path,
    storage: &LakeStorage,
    options: CompactionOptions,
    dataset: &str,
    mut table: DatasetTable,
    keys: Vec<String>,
    entries: &[LedgerEntry],
    record: &mut CompactionRecord,
) -> Result<()> {
    let files = block_on(DatasetFiles::read(Some(&table), dataset, entries))?;
    let ranges = ledger::landed_ranges(entries);
    let mut directories: BTreeMap<String, BTreeMap<GroupKey, Vec<Footer>>> = BTreeMap::new();
    for key in keys.into_iter().filter(|key| files.role(key) == FileRole::Current) {
        record.files_before += 1;
        let dir = key.rsplit_once('/').map(|(dir, _)| dir).unwrap_or_default().to_owned();
        let range = ranges.get(key.as_str()).map(|(_, partition, first, last)| (*partition, *first, *last));
        let footer = read_footer(storage, key, range)?;
        directories.entry(dir).or_default().entry(footer.group_key()).or_default().push(footer);
    }
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    let mut merged_here = Vec::new();
    for (dir, groups) in directories {
        for run in groups.into_values().flat_map(|group| ordered_runs(group, options)) {
            record.files_after += 1;
            if run.len() < 2 {
                continue;
            }
            let merged = merge(lake_dir, storage, &dir, &run)?;
            for file in &run {
                removed.push(table_file(&file.key, file.record.bytes, file.record.rows)?);
            }
            added.push(table_file(&merged.output.path, merged.output.bytes, merged.output.rows)?);
            merged_here.push(merged);
        }
    }
    if !added.is_empty() {
        let version = block_on(table.commit(&added, &removed, Change::Compaction))?;
        record.table_versions.insert(dataset.to_owned(), version);
        record.merged.extend(merged_here);
    }
    Ok(())
}

/// The file at `key` as its table names it.
fn table_file(key: &str, bytes: u64, rows: u64) -> Result<TableFile> {
    TableFile::of_key(key, bytes, rows)
        .map(|(_, file)| file)
        .ok_or_else(|| Error::WriteFile { path: key.into(), reason: "not in an event-time directory".to_owned() })
}

/// A group's files in offset order, in runs of at most the options' rows each.
fn ordered_runs(mut group: Vec<Footer>, options: CompactionOptions) -> Vec<Vec<Footer>> {
    group.sort_by(|a, b| a.range.cmp(&b.range).then_with(|| a.key.cmp(&b.key)));
    runs(group, options.max_rows_per_file)
}

/// What merging needs to know of a landed file, from the ledger and its footer.
#[derive(Debug, Clone)]
struct Footer {
    /// Key in the lake.
    key: String,
    /// The file as read: its checksum and rows, for the audit record.
    record: FileRecord,
    /// For a file straight from a lander: its source partition and offsets.
    range: Option<(i32, i64, i64)>,
    rows: usize,
    metadata: Vec<(String, String)>,
    schema: String,
}

/// Files with equal keys may be merged.
type GroupKey = (String, String, String, String);

impl Footer {
    fn value(&self, key: &str) -> String {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default()
    }

    fn group_key(&self) -> GroupKey {
        (
            self.schema.clone(),
            self.value("sluice.policy_hash"),
            self.value("sluice.key_id"),
            self.value("sluice.reader_schema"),
        )
    }
}

fn read_footer(storage: &LakeStorage, key: String, range: Option<(i32, i64, i64)>) -> Result<Footer> {
    let failed = |reason: String| Error::WriteFile { path: key.clone().into(), reason };
    let bytes = storage.get(&key)?;
    let record = FileRecord { path: key.clone(), sha256: sha256_hex(&bytes), rows: 0, bytes: bytes.len() as u64 };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| failed(e.to_string()))?;
    let file_metadata = builder.metadata().file_metadata();
    let metadata = crate::lake::parquet::key_value_pairs(file_metadata);
    let rows = usize::try_from(file_metadata.num_rows()).unwrap_or(0);
    let schema = format!("{:?}", builder.schema().fields());
    let record = FileRecord { rows: rows as u64, ..record };
    Ok(Footer { key, record, range, rows, metadata, schema })
}

/// Removes files that the ledger lists as inputs of a merged file present in the same listing:
/// left behind by a compaction interrupted after its merged file was written. Returns the rest.
fn remove_leftovers(
    storage: &LakeStorage,
    files: Vec<String>,
    merges: &BTreeMap<&str, &[String]>,
    record: &mut CompactionRecord,
) -> Result<Vec<String>> {
    let present: std::collections::BTreeSet<&str> = files.iter().map(String::as_str).collect();
    let listed: std::collections::BTreeSet<&str> = merges
        .iter()
        .filter(|(merged, _)| present.contains(*merged))
        .flat_map(|(_, inputs)| inputs.iter().map(String::as_str))
        .collect();
    let (leftovers, kept): (Vec<String>, Vec<String>) =
        files.iter().cloned().partition(|key| listed.contains(key.as_str()));
    for leftover in leftovers {
        let bytes = storage.get(&leftover)?;
        let leftover_record =
            FileRecord { path: leftover.clone(), sha256: sha256_hex(&bytes), rows: 0, bytes: bytes.len() as u64 };
        storage.delete(&leftover)?;
        record.removed_leftovers.push(leftover_record);
    }
    Ok(kept)
}

/// Consecutive files (by offset) grouped so that no group exceeds `max_rows` rows.
fn runs(files: Vec<Footer>, max_rows: usize) -> Vec<Vec<Footer>> {
    let mut runs: Vec<Vec<Footer>> = Vec::new();
    let mut rows = 0;
    for file in files {
        match runs.last_mut() {
            Some(run) if rows + file.rows <= max_rows => {
                rows += file.rows;
                run.push(file);
            }
            _ => {
                rows = file.rows;
                runs.push(vec![file]);
            }
        }
    }
    runs
}

/// Writes one file holding every row of `run`, sorted as landed files are. The ledger records
/// the merge before the merged file is written; the caller removes the inputs or replaces them
/// in the table.
fn merge(lake_dir: &Path, storage: &LakeStorage, dir: &str, run: &[Footer]) -> Result<MergedFile> {
    let head = &run[0];
    let key = format!("{dir}/{}", ledger::fresh_file_name());
    let mut inputs = Vec::new();
    let mut batches: Vec<RecordBatch> = Vec::new();
    let mut writer_fingerprints = Vec::new();
    let mut erased: u64 = 0;
    for file in run {
        let bytes = storage.get(&file.key)?;
        let failed = |reason: String| Error::WriteFile { path: file.key.clone().into(), reason };
        if sha256_hex(&bytes) != file.record.sha256 {
            return Err(failed("changed while being compacted".to_owned()));
        }
        inputs.push(file.record.clone());
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| failed(e.to_string()))?;
        for batch in reader {
            batches.push(batch.map_err(|e| failed(e.to_string()))?);
        }
        writer_fingerprints.extend(file.value("sluice.writer_schema_fingerprints").split(',').map(str::to_owned));
        erased += file.value(crate::erase::ERASED_ROWS_KEY).parse::<u64>().unwrap_or(0);
    }
    writer_fingerprints.retain(|f| !f.is_empty());
    writer_fingerprints.sort();
    writer_fingerprints.dedup();
    let schema = batches.first().map(|b| b.schema()).expect("a run holds at least one file with a schema");
    let failed = |reason: String| Error::WriteFile { path: key.clone().into(), reason };
    let merged = concat_batches(&schema, &batches).map_err(|e| failed(e.to_string()))?;
    let sorted_by: Vec<String> =
        head.value(SORTED_BY_KEY).split(',').filter(|c| !c.is_empty()).map(str::to_owned).collect();
    let merged = order_rows(&merged, &sorted_by).map_err(|e| failed(e.to_string()))?;
    // Offsets and input names of earlier versions' files are not carried over: they would tell
    // analysts which source events the file holds.
    let replaced = ["sluice.source", "sluice.writer_schema_fingerprints", crate::erase::ERASED_ROWS_KEY, INPUTS_KEY];
    let mut metadata: Vec<(String, String)> =
        head.metadata.iter().filter(|(k, _)| !replaced.contains(&k.as_str())).cloned().collect();
    metadata.push(("sluice.writer_schema_fingerprints".to_owned(), writer_fingerprints.join(",")));
    if erased > 0 {
        metadata.push((crate::erase::ERASED_ROWS_KEY.to_owned(), erased.to_string()));
    }
    let inputs_keys = run.iter().map(|f| f.key.clone()).collect();
    ledger::append(lake_dir, &[LedgerEntry::Merged { key: key.clone(), inputs: inputs_keys }])?;
    let written = crate::lake::parquet::write_parquet(storage, &key, &merged, metadata)?;
    Ok(MergedFile { output: FileRecord::from(&written), inputs })
}

/// Metadata key that listed a merged file's inputs in files merged before the landing ledger.
const INPUTS_KEY: &str = "sluice.compacted_inputs";

#[cfg(test)]
mod tests;
