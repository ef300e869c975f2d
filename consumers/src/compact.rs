//! Compaction: merging the small files of a dataset's date partition into fewer, larger ones
//! (`sluice compact`), so that analysts' scans do not pay per-file costs.
//!
//! Only files that can never be withdrawn again are merged: files whose offsets all lie before
//! the committed offset recorded in the lake for their source partition
//! (`_sluice/committed-offsets.json`, see [`crate::lake`]), and earlier merged files. Files are
//! merged only with files of the same source topic, Arrow schema, policy hash, key id and reader
//! schema, so a merged file's provenance metadata stays true; source partitions may mix. A
//! merged file is named `<topic>+merged-<hash of its inputs' names>.parquet`, lists its inputs
//! (`sluice.compacted_inputs`) and every source range (`sluice.source`) in its metadata, and is
//! written atomically before its inputs are removed. If a crash comes between the two, the next
//! compaction removes the inputs it finds listed in a merged file. Every run is recorded in the
//! audit log with each merged file and its inputs, with checksums.

use std::{collections::BTreeMap, path::Path};

use arrow::{compute::concat_batches, record_batch::RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::Digest;

use crate::{
    Error, Result,
    audit::{AuditEvent, AuditLog, CompactionRecord, FileRecord, MergedFile},
    lake,
    lander::layout::parse_landed_file_name,
    parquet_sink::sha256_hex,
    storage::LakeStorage,
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
    let mut record =
        CompactionRecord { files_before: 0, files_after: 0, merged: Vec::new(), removed_leftovers: Vec::new() };
    let mut directories: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in storage.parquet_files("")? {
        let dir = key.rsplit_once('/').map(|(dir, _)| dir).unwrap_or_default().to_owned();
        directories.entry(dir).or_default().push(key);
    }
    for (dir, files) in directories {
        record.files_before += files.len() as u64;
        let mut files = read_footers(storage, files)?;
        remove_leftovers(storage, &mut files, &mut record)?;
        let mut groups: BTreeMap<GroupKey, Vec<Footer>> = BTreeMap::new();
        for footer in files {
            let settled = match footer.range {
                Some((partition, _, last)) => {
                    last < committed.get(&footer.topic).and_then(|p| p.get(&partition)).copied().unwrap_or(0)
                }
                None => true,
            };
            if settled {
                groups.entry(footer.group_key()).or_default().push(footer);
            } else {
                record.files_after += 1;
            }
        }
        for mut group in groups.into_values() {
            group.sort_by(|a, b| a.range.cmp(&b.range).then_with(|| a.name.cmp(&b.name)));
            for run in runs(group, options.max_rows_per_file) {
                if run.len() == 1 {
                    record.files_after += 1;
                    continue;
                }
                record.merged.push(merge(storage, &dir, &run)?);
                record.files_after += 1;
            }
        }
    }
    audit.append(&AuditEvent::Compaction(record.clone()))?;
    Ok(record)
}

/// What merging needs to know of a landed file, from its name and footer.
#[derive(Debug, Clone)]
struct Footer {
    /// Key in the lake.
    key: String,
    /// The file as read: its checksum and rows, for the audit record.
    record: FileRecord,
    /// File name.
    name: String,
    /// Source topic (the name's prefix).
    topic: String,
    /// For a file straight from a lander: its source partition and offsets.
    range: Option<(i32, i64, i64)>,
    rows: usize,
    metadata: Vec<(String, String)>,
    schema: String,
}

/// Files with equal keys may be merged.
type GroupKey = (String, String, String, String, String);

impl Footer {
    fn value(&self, key: &str) -> String {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default()
    }

    fn group_key(&self) -> GroupKey {
        (
            self.topic.clone(),
            self.schema.clone(),
            self.value("sluice.policy_hash"),
            self.value("sluice.key_id"),
            self.value("sluice.reader_schema"),
        )
    }
}

fn read_footers(storage: &LakeStorage, keys: Vec<String>) -> Result<Vec<Footer>> {
    let mut footers = Vec::new();
    for key in keys {
        let name = key.rsplit('/').next().unwrap_or_default().to_owned();
        let (topic, range) = match parse_landed_file_name(&name) {
            Some(landed) => (landed.topic.to_owned(), Some((landed.partition, landed.first, landed.last))),
            None => match name.split_once("+merged-") {
                Some((topic, _)) => (topic.to_owned(), None),
                None => continue,
            },
        };
        let failed = |reason: String| Error::WriteFile { path: key.clone().into(), reason };
        let bytes = storage.get(&key)?;
        let record = FileRecord { path: key.clone(), sha256: sha256_hex(&bytes), rows: 0, bytes: bytes.len() as u64 };
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| failed(e.to_string()))?;
        let file_metadata = builder.metadata().file_metadata();
        let metadata = crate::parquet_sink::key_value_pairs(file_metadata);
        let rows = usize::try_from(file_metadata.num_rows()).unwrap_or(0);
        let schema = format!("{:?}", builder.schema().fields());
        let record = FileRecord { rows: rows as u64, ..record };
        footers.push(Footer { key, record, name, topic, range, rows, metadata, schema });
    }
    Ok(footers)
}

/// Removes files that a merged file in the same directory lists as its inputs: left behind by
/// a compaction interrupted after its merged file was written.
fn remove_leftovers(storage: &LakeStorage, files: &mut Vec<Footer>, record: &mut CompactionRecord) -> Result<()> {
    let listed: std::collections::BTreeSet<String> = files
        .iter()
        .flat_map(|f| f.value(INPUTS_KEY).split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter(|name| !name.is_empty())
        .collect();
    let (leftovers, kept): (Vec<Footer>, Vec<Footer>) =
        std::mem::take(files).into_iter().partition(|f| listed.contains(&f.name));
    for leftover in leftovers {
        storage.delete(&leftover.key)?;
        record.removed_leftovers.push(leftover.record);
    }
    *files = kept;
    Ok(())
}

/// Metadata key listing a merged file's inputs by name.
pub const INPUTS_KEY: &str = "sluice.compacted_inputs";

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

/// Writes one file holding every row of `run` (in order), then removes the inputs.
fn merge(storage: &LakeStorage, dir: &str, run: &[Footer]) -> Result<MergedFile> {
    let head = &run[0];
    let input_names: Vec<&str> = run.iter().map(|f| f.name.as_str()).collect();
    let digest = hex::encode(sha2::Sha256::digest(input_names.join(",").as_bytes()));
    let key = format!("{dir}/{}+merged-{}.parquet", head.topic, &digest[..16]);
    let mut inputs = Vec::new();
    let mut batches: Vec<RecordBatch> = Vec::new();
    let (mut sources, mut writer_fingerprints) = (Vec::new(), Vec::new());
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
        sources.extend(file.value("sluice.source").split(';').map(str::to_owned));
        writer_fingerprints.extend(file.value("sluice.writer_schema_fingerprints").split(',').map(str::to_owned));
        erased += file.value(crate::erase::ERASED_ROWS_KEY).parse::<u64>().unwrap_or(0);
    }
    for list in [&mut sources, &mut writer_fingerprints] {
        list.retain(|f| !f.is_empty());
        list.sort();
        list.dedup();
    }
    let schema = batches.first().map(|b| b.schema()).expect("a run holds at least one file with a schema");
    let merged = concat_batches(&schema, &batches)
        .map_err(|e| Error::WriteFile { path: key.clone().into(), reason: e.to_string() })?;
    let replaced = ["sluice.source", "sluice.writer_schema_fingerprints", crate::erase::ERASED_ROWS_KEY, INPUTS_KEY];
    let mut metadata: Vec<(String, String)> =
        head.metadata.iter().filter(|(k, _)| !replaced.contains(&k.as_str())).cloned().collect();
    metadata.push(("sluice.source".to_owned(), sources.join(";")));
    metadata.push(("sluice.writer_schema_fingerprints".to_owned(), writer_fingerprints.join(",")));
    metadata.push((INPUTS_KEY.to_owned(), input_names.join(",")));
    if erased > 0 {
        metadata.push((crate::erase::ERASED_ROWS_KEY.to_owned(), erased.to_string()));
    }
    let written = crate::parquet_sink::write_parquet(storage, &key, &merged, metadata)?;
    for file in run {
        storage.delete(&file.key)?;
    }
    Ok(MergedFile { output: FileRecord::from(&written), inputs })
}

#[cfg(test)]
mod tests;
