//! Writing a batch to a Parquet file so that it is either wholly there or not there at all.
//!
//! The file is written under a temporary name in its final directory, fsynced, renamed into
//! place, and the directory is fsynced, so a crash at any point leaves no partial file under a
//! final name. Only after [`write_atomically`] returns may the offsets it covers be committed.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
};

use arrow::record_batch::RecordBatch;
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, ZstdLevel},
    file::{metadata::KeyValue, properties::WriterProperties},
};

use crate::{Error, Result};

/// A file now durable in the lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandedFile {
    /// Final path.
    pub path: PathBuf,
    /// Rows in the file.
    pub rows: usize,
    /// Size in bytes.
    pub bytes: u64,
    /// Inode of the file as written, so that a withdrawal removes this file and not one that
    /// another lander has since renamed onto the same path.
    pub inode: u64,
}

impl LandedFile {
    /// Removes the file if it is still the one this process wrote. Used when the offsets it
    /// covers could not be committed, so that the events are landed once, by whoever re-reads them.
    pub fn withdraw(&self) -> Result<bool> {
        use std::os::unix::fs::MetadataExt;
        match fs::metadata(&self.path) {
            Ok(metadata) if metadata.ino() == self.inode => {
                fs::remove_file(&self.path).map_err(Error::write(&self.path))?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(Error::write(&self.path)(error)),
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
/// temporary name, fsynced, renamed into place.
pub fn write_small_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let temporary = path.with_extension("inprogress");
    fs::write(&temporary, bytes)
        .and_then(|()| File::open(&temporary)?.sync_all())
        .and_then(|()| fs::rename(&temporary, path))
        .map_err(Error::write(path))
}

/// Writes `batch` to `path` with zstd compression and the given key-value metadata, atomically
/// and durably.
pub fn write_atomically(path: &Path, batch: &RecordBatch, metadata: Vec<(String, String)>) -> Result<LandedFile> {
    let dir = path.parent().expect("landed files live in a dataset directory");
    fs::create_dir_all(dir).map_err(Error::write(dir))?;
    let file_name = path.file_name().expect("file name").to_string_lossy();
    let temporary = dir.join(format!(".{file_name}.inprogress"));
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid zstd level")))
        .set_key_value_metadata(Some(metadata.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect()))
        .set_created_by(format!("sluice {}", env!("CARGO_PKG_VERSION")))
        .build();
    let parquet_error =
        |error: parquet::errors::ParquetError| Error::WriteFile { path: temporary.clone(), reason: error.to_string() };
    let file = File::create(&temporary).map_err(Error::write(&temporary))?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(properties)).map_err(parquet_error)?;
    writer.write(batch).map_err(parquet_error)?;
    let file = writer.into_inner().map_err(parquet_error)?;
    file.sync_all().map_err(Error::write(&temporary))?;
    let written = file.metadata().map_err(Error::write(&temporary))?;
    let (bytes, inode) = (written.len(), std::os::unix::fs::MetadataExt::ino(&written));
    drop(file);
    fs::rename(&temporary, path).map_err(Error::write(path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::write(dir))?;
    Ok(LandedFile { path: path.to_owned(), rows: batch.num_rows(), bytes, inode })
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
    fn written_file_reads_back_with_metadata_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("code", DataType::Utf8, false),
            Field::new("birth_year", DataType::Int32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from(vec!["I10", "E11.9"])), Arc::new(Int32Array::from(vec![Some(1950), None]))],
        )
        .unwrap();
        let path = dir.path().join("research/diagnosis/part.parquet");
        let landed = write_atomically(&path, &batch, vec![("sluice.key_id".into(), "k1".into())]).unwrap();
        assert_eq!(landed.rows, 2);
        assert_eq!(landed.bytes, fs::metadata(&path).unwrap().len());
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["part.parquet"]);

        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        let kv = builder.metadata().file_metadata().key_value_metadata().unwrap().clone();
        assert!(kv.iter().any(|e| e.key == "sluice.key_id" && e.value.as_deref() == Some("k1")));
        let read: Vec<RecordBatch> = builder.build().unwrap().collect::<std::result::Result<_, _>>().unwrap();
        assert_eq!(read, vec![batch.clone()]);

        // Withdrawal removes this file, but not another file renamed onto the same path since.
        let replaced = write_atomically(&path, &batch, vec![]).unwrap();
        assert!(!landed.withdraw().unwrap(), "a newer file at the path is left alone");
        assert!(path.exists());
        assert!(replaced.withdraw().unwrap());
        assert!(!path.exists());
    }
}
