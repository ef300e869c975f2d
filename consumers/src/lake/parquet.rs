//! Writing a batch to a Parquet file in the lake so that it is either wholly there or not there
//! at all.
//!
//! The file is encoded in memory (its checksum computed on the way) and stored with one atomic
//! write (see [`crate::lake::storage`]: on a directory, a complete file renamed into place and fsynced).
//! Only after [`write_parquet`] returns may the offsets it covers be committed.

use std::{fs, fs::File, path::Path};

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, ZstdLevel},
    file::{metadata::KeyValue, properties::WriterProperties},
};
use sha2::{Digest, Sha256};

use crate::{Error, Result, lake::storage::LakeStorage};

/// A file now durable in the lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandedFile {
    /// Its key in the lake (a path relative to the lake root).
    pub key: String,
    /// Rows in the file.
    pub rows: usize,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    /// The store's tag of the version written, so that a withdrawal removes this file and not
    /// one that another lander has since written to the same key.
    pub e_tag: Option<String>,
}

impl LandedFile {
    /// Removes the file if it is still the one this process wrote. Used when the offsets it
    /// covers could not be committed, so that the events are landed once, by whoever re-reads them.
    pub fn withdraw(&self, storage: &LakeStorage) -> Result<bool> {
        match storage.e_tag(&self.key)? {
            crate::lake::storage::ObjectTag::Present(current) if current == self.e_tag => {
                storage.delete(&self.key)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// A file's key-value metadata as pairs (a key without a value reads as empty).
pub fn key_value_pairs(metadata: &parquet::file::metadata::FileMetaData) -> Vec<(String, String)> {
    metadata
        .key_value_metadata()
        .map(|pairs| pairs.iter().map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default())).collect())
        .unwrap_or_default()
}

/// Writes small bytes (a state record) to `path` durably and atomically: written under a
/// temporary name, fsynced, renamed into place. The temporary name is the writer's own, so two
/// landers sharing a lake that write the same record at once cannot rename each other's.
pub fn write_small_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let temporary = path.with_extension(format!("{}.inprogress", uuid::Uuid::new_v4().simple()));
    fs::write(&temporary, bytes)
        .and_then(|()| File::open(&temporary)?.sync_all())
        .and_then(|()| fs::rename(&temporary, path))
        .inspect_err(|_| {
            let _ = fs::remove_file(&temporary);
        })
        .map_err(Error::write(path))
}

/// Encodes `batch` as a Parquet file with zstd compression and the given key-value metadata.
pub fn encode(batch: &RecordBatch, metadata: Vec<(String, String)>) -> std::result::Result<Vec<u8>, String> {
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid zstd level")))
        .set_key_value_metadata(Some(metadata.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect()))
        .set_created_by(format!("sluice {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut writer =
        ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties)).map_err(|error| error.to_string())?;
    writer.write(batch).map_err(|error| error.to_string())?;
    writer.into_inner().map_err(|error| error.to_string())
}

/// SHA-256 (hex) of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `batch` to `key` in the lake as Parquet (see [`encode`]), atomically and durably.
pub fn write_parquet(
    storage: &LakeStorage,
    key: &str,
    batch: &RecordBatch,
    metadata: Vec<(String, String)>,
) -> Result<LandedFile> {
    let landed = write_parquet_leaving_directory_unsynced(storage, key, batch, metadata)?;
    storage.sync_directories([key])?;
    Ok(landed)
}

/// [`write_parquet`] without syncing the file's directory: see
/// [`LakeStorage::put_leaving_directory_unsynced`].
pub fn write_parquet_leaving_directory_unsynced(
    storage: &LakeStorage,
    key: &str,
    batch: &RecordBatch,
    metadata: Vec<(String, String)>,
) -> Result<LandedFile> {
    let encoded = encode(batch, metadata).map_err(|reason| Error::Storage {
        location: storage.location().to_owned(),
        operation: "encode",
        key: key.to_owned(),
        reason,
    })?;
    let sha256 = sha256_hex(&encoded);
    let stored = storage.put_leaving_directory_unsynced(key, Bytes::from(encoded))?;
    Ok(LandedFile { key: stored.key, rows: batch.num_rows(), bytes: stored.bytes, sha256, e_tag: stored.e_tag })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::{
        array::{Int32Array, StringArray},
        datatypes::{DataType, Field, Schema},
    };
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    #[test]
    fn written_file_reads_back_with_metadata_and_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LakeStorage::local(dir.path()).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("code", DataType::Utf8, false),
            Field::new("birth_year", DataType::Int32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from(vec!["I10", "E11.9"])), Arc::new(Int32Array::from(vec![Some(1950), None]))],
        )
        .unwrap();
        let key = "research/diagnosis/part.parquet";
        let landed = write_parquet(&storage, key, &batch, vec![("sluice.key_id".into(), "k1".into())]).unwrap();
        let path = dir.path().join(key);
        assert_eq!(landed.rows, 2);
        assert_eq!(landed.bytes, fs::metadata(&path).unwrap().len());
        assert_eq!(landed.sha256, sha256_hex(&fs::read(&path).unwrap()));
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["part.parquet"]);

        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        let kv = builder.metadata().file_metadata().key_value_metadata().unwrap().clone();
        assert!(kv.iter().any(|e| e.key == "sluice.key_id" && e.value.as_deref() == Some("k1")));
        let read: Vec<RecordBatch> = builder.build().unwrap().collect::<std::result::Result<_, _>>().unwrap();
        assert_eq!(read, vec![batch.clone()]);

        // Withdrawal removes this file, but not another file written to the same key since.
        let replaced = write_parquet(&storage, key, &batch, vec![]).unwrap();
        assert!(!landed.withdraw(&storage).unwrap(), "a newer file at the key is left alone");
        assert!(path.exists());
        assert!(replaced.withdraw(&storage).unwrap());
        assert!(!path.exists());
    }
}
