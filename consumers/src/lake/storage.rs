//! Where landed datasets are stored: a local directory or S3-compatible object storage, through
//! [`object_store`], chosen by the lake's location.
//!
//! * A plain path or a `file://` URL is a directory. Every object written there is fsynced, and
//!   its directory too, before the write returns, so a crash never loses a file whose offsets were
//!   committed.
//! * `s3://bucket/prefix` is an S3 bucket (or any S3-compatible store). The connection is
//!   configured from the environment as the AWS tools do: `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT` (for a store other than AWS) and
//!   `AWS_ALLOW_HTTP=true` (only for a store on a trusted local network). A PUT is atomic there:
//!   an object is either wholly present or absent.
//!
//! Objects are named by *keys*, paths relative to the lake root with `/` separators
//! (`research/diagnosis/event_date=2026-01-05/clinical.diagnosis+3+...parquet`), the same on
//! every backend; audit records hold these keys.
//!
//! What is not data (the audit log, the record of committed offsets, locks, erasure progress)
//! stays in a local *state directory*: for a directory lake, the lake itself.
//!
//! The calls are synchronous: landing, erasure and compaction call them from blocking code.
//! Inside a multi-threaded Tokio runtime they block the calling worker in place; elsewhere each
//! runs on a small runtime of its own.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::Arc,
};

use bytes::Bytes;
use futures::StreamExt;
use object_store::{
    ObjectStore, ObjectStoreExt, PutPayload, aws::AmazonS3Builder, local::LocalFileSystem, path::Path as Key,
    prefix::PrefixStore,
};

use crate::{Error, Result};

/// The storage of one lake's datasets.
#[derive(Debug)]
pub struct LakeStorage {
    /// The backend, rooted at the lake.
    store: Arc<dyn ObjectStore>,
    /// The lake's location as configured, for messages.
    location: String,
    /// The lake's directory when it is local: written objects are fsynced there.
    local_root: Option<PathBuf>,
    /// On an object store, the store at its bucket's root, through which the datasets' Delta
    /// tables are read and committed (their URLs say where in the bucket they are).
    bucket_root: Option<Arc<dyn ObjectStore>>,
}

/// An object just written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// The store's tag of this version of the object (on a directory: inode, time and size),
    /// so that a later removal can tell it from another object written to the same key since.
    pub e_tag: Option<String>,
}

/// What [`LakeStorage::e_tag`] finds at a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectTag {
    /// No object.
    Absent,
    /// An object, with its entity tag when the store gives one (each write gets a new one).
    Present(Option<String>),
}

impl LakeStorage {
    /// Opens the lake at `location`: a directory path, a `file://` URL or an `s3://` URL.
    pub fn open(location: &str) -> Result<Self> {
        Self::open_with(location, &[])
    }

    /// Opens the lake at `location` with object-store settings beyond the environment's, by
    /// their `object_store` names (`aws_endpoint`, `aws_allow_http`, `aws_region`, ...).
    pub fn open_with(location: &str, options: &[(&str, &str)]) -> Result<Self> {
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(storage_error(location, "open", "", "the URL names no bucket".to_owned()));
            }
            let mut builder = AmazonS3Builder::from_env().with_url(format!("s3://{bucket}"));
            for (name, value) in options {
                let key = name
                    .parse()
                    .map_err(|e: object_store::Error| storage_error(location, "configure", name, e.to_string()))?;
                builder = builder.with_config(key, *value);
            }
            let s3: Arc<dyn ObjectStore> =
                Arc::new(builder.build().map_err(|e| storage_error(location, "open", "", e.to_string()))?);
            let prefix = prefix.trim_matches('/');
            let store: Arc<dyn ObjectStore> =
                if prefix.is_empty() { Arc::clone(&s3) } else { Arc::new(PrefixStore::new(Arc::clone(&s3), prefix)) };
            return Ok(LakeStorage {
                store,
                location: location.trim_end_matches('/').to_owned(),
                local_root: None,
                bucket_root: Some(s3),
            });
        }
        if location.contains("://") && !location.starts_with("file://") {
            return Err(storage_error(
                location,
                "open",
                "",
                "unsupported scheme: the lake is a directory, a file:// URL or an s3:// URL".to_owned(),
            ));
        }
        Self::local(Path::new(location.strip_prefix("file://").unwrap_or(location)))
    }

    /// Opens (creating it if needed) a lake directory.
    pub fn local(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(Error::write(dir))?;
        let root = dir.canonicalize().map_err(Error::write(dir))?;
        let store = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| storage_error(&root.display().to_string(), "open", "", e.to_string()))?;
        Ok(LakeStorage {
            store: Arc::new(store),
            location: root.display().to_string(),
            local_root: Some(root),
            bucket_root: None,
        })
    }

    /// The lake's location, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// On an object store, the store at its bucket's root (for the datasets' Delta tables).
    pub fn bucket_root(&self) -> Option<Arc<dyn ObjectStore>> {
        self.bucket_root.clone()
    }

    /// The lake's directory, when it is local.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// Where a key is, for people: a file path or a URL.
    pub fn describe(&self, key: &str) -> String {
        match &self.local_root {
            Some(root) => root.join(key).display().to_string(),
            None => format!("{}/{key}", self.location),
        }
    }

    /// Writes `bytes` to `key` atomically and durably.
    pub fn put(&self, key: &str, bytes: Bytes) -> Result<Stored> {
        let stored = self.put_leaving_directory_unsynced(key, bytes)?;
        self.sync_directories([key])?;
        Ok(stored)
    }

    /// Like [`Self::put`], but in a local lake the directory entry is not yet synced: the caller
    /// calls [`Self::sync_directories`] for the keys before relying on them, once per directory
    /// however many files it wrote there (a checkpoint writes many files to few directories).
    pub fn put_leaving_directory_unsynced(&self, key: &str, bytes: Bytes) -> Result<Stored> {
        let size = bytes.len() as u64;
        let result = self
            .block_on(self.store.put(&parse_key(&self.location, key)?, PutPayload::from_bytes(bytes)))
            .map_err(|e| storage_error(&self.location, "write", key, e.to_string()))?;
        let mut e_tag = result.e_tag;
        if let Some(root) = &self.local_root {
            // The local store renames a complete staging file into place but does not sync.
            let path = root.join(key);
            std::fs::File::open(&path)
                .and_then(|file| {
                    file.set_times(hidden_times())?;
                    file.sync_all()
                })
                .map_err(Error::write(&path))?;
            // The local store's tag includes the modification time just set.
            e_tag = match self.e_tag(key)? {
                ObjectTag::Present(tag) => tag,
                ObjectTag::Absent => return Err(Error::write(&path)(std::io::ErrorKind::NotFound.into())),
            };
        }
        Ok(Stored { key: key.to_owned(), bytes: size, e_tag })
    }

    /// Syncs, in a local lake, the directory of each key once, so that files put there survive
    /// a crash, and gives it and the directories above it (below the lake's root) the
    /// [`HIDDEN_WRITE_TIME`]. Object stores need nothing: a completed put is durable.
    pub fn sync_directories<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> Result<()> {
        let Some(root) = &self.local_root else { return Ok(()) };
        let directories: BTreeSet<PathBuf> =
            keys.into_iter().filter_map(|key| root.join(key).parent().map(Path::to_owned)).collect();
        for dir in &directories {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(Error::write(dir))?;
        }
        self.hide_directory_times(root, directories)
    }

    /// Gives each directory, and each directory above it below `root`, the hidden write time.
    fn hide_directory_times(&self, root: &Path, directories: impl IntoIterator<Item = PathBuf>) -> Result<()> {
        let mut all = BTreeSet::new();
        for dir in directories {
            all.extend(dir.ancestors().take_while(|d| *d != root && d.starts_with(root)).map(Path::to_owned));
        }
        for dir in all {
            std::fs::File::open(&dir).and_then(|d| d.set_times(hidden_times())).map_err(Error::write(&dir))?;
        }
        Ok(())
    }

    /// Reads the object at `key` whole.
    pub fn get(&self, key: &str) -> Result<Bytes> {
        let location = parse_key(&self.location, key)?;
        self.block_on(async { self.store.get(&location).await?.bytes().await })
            .map_err(|e| storage_error(&self.location, "read", key, e.to_string()))
    }

    /// Whether there is an object at `key`, and its current tag.
    pub fn e_tag(&self, key: &str) -> Result<ObjectTag> {
        match self.block_on(self.store.head(&parse_key(&self.location, key)?)) {
            Ok(meta) => Ok(ObjectTag::Present(meta.e_tag)),
            Err(object_store::Error::NotFound { .. }) => Ok(ObjectTag::Absent),
            Err(error) => Err(storage_error(&self.location, "look up", key, error.to_string())),
        }
    }

    /// Removes the object at `key` (nothing to do if it is gone already).
    pub fn delete(&self, key: &str) -> Result<()> {
        match self.block_on(self.store.delete(&parse_key(&self.location, key)?)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(storage_error(&self.location, "remove", key, error.to_string())),
        }
        if let Some(root) = &self.local_root
            && let Some(dir) = root.join(key).parent().map(Path::to_owned)
        {
            std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(Error::write(&dir))?;
            self.hide_directory_times(root, [dir])?;
        }
        Ok(())
    }

    /// Keys of every landed Parquet file under `prefix` (a key prefix such as `research` or
    /// `research/diagnosis`), in key order. Names starting with `_` or `.` (state, dictionaries,
    /// temporary files) are skipped at any level.
    pub fn parquet_files(&self, prefix: &str) -> Result<Vec<String>> {
        let location = parse_key(&self.location, prefix)?;
        let listed: Vec<object_store::Result<object_store::ObjectMeta>> =
            self.block_on(self.store.list(Some(&location)).collect());
        let mut keys = Vec::new();
        for meta in listed {
            let meta = match meta {
                Ok(meta) => meta,
                // A file removed between listing its directory and reading its metadata.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(error) => return Err(storage_error(&self.location, "list", prefix, error.to_string())),
            };
            let key = meta.location.to_string();
            let hidden = key.split('/').any(|part| part.starts_with('_') || part.starts_with('.'));
            if !hidden && key.ends_with(".parquet") {
                keys.push(key);
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Removes what interrupted writes left under `prefix` on a directory lake: staging files
    /// (`<name>#<digits>`) whose name starts with `name_prefix`. Readers that list directories
    /// themselves would otherwise trip over them. Object stores leave nothing behind: a PUT is
    /// atomic there.
    pub fn remove_interrupted_writes(&self, prefix: &str, name_prefix: &str) -> Result<usize> {
        let Some(root) = &self.local_root else { return Ok(0) };
        let mut removed = 0;
        let mut pending = vec![root.join(prefix)];
        while let Some(dir) = pending.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(Error::write(&dir)(error)),
            };
            for entry in entries {
                let path = entry.map_err(Error::write(&dir))?.path();
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if path.is_dir() {
                    pending.push(path);
                } else if name.starts_with(name_prefix)
                    && name
                        .rsplit_once('#')
                        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                {
                    std::fs::remove_file(&path).map_err(Error::write(&path))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    fn block_on<F: Future + Send>(&self, future: F) -> F::Output
    where
        F::Output: Send,
    {
        block_on(future)
    }
}

/// Runs `future` to its end from synchronous code, inside a multi-threaded Tokio runtime or
/// outside any.
pub(crate) fn block_on<F: Future + Send>(future: F) -> F::Output
where
    F::Output: Send,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(future))
        }
        // On a thread of its own with a runtime of its own, so that it also works inside a
        // single-threaded runtime, and the runtime is dropped outside any async context.
        _ => std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a Tokio runtime for lake storage")
                        .block_on(future)
                })
                .join()
                .expect("lake storage call panicked")
        }),
    }
}

/// The modification and access time of every file sluice writes to a directory lake, and of
/// the directories holding them: 1980-01-01T00:00:00Z, as reproducible builds and ZIP archives
/// use. A file's true write time would tell roughly when its events arrived, which is true time
/// that a date-shifted purpose must not reveal; `ls`, `rsync -t` and copies carry this instead.
/// (A file system's change time, `ctime`, cannot be set and still tells: see docs/GOVERNANCE.md.)
pub const HIDDEN_WRITE_TIME: std::time::Duration = std::time::Duration::from_secs(315_532_800);

/// Makes a file or directory just written durable (fsynced) and gives it the hidden times.
pub(crate) fn settle(path: &Path) -> std::io::Result<()> {
    let handle = std::fs::File::open(path)?;
    handle.sync_all()?;
    handle.set_times(hidden_times())
}

fn hidden_times() -> std::fs::FileTimes {
    let at = std::time::UNIX_EPOCH + HIDDEN_WRITE_TIME;
    std::fs::FileTimes::new().set_modified(at).set_accessed(at)
}

fn parse_key(location: &str, key: &str) -> Result<Key> {
    Key::parse(key).map_err(|e| storage_error(location, "name", key, e.to_string()))
}

fn storage_error(location: &str, operation: &'static str, key: &str, reason: String) -> Error {
    Error::Storage { location: location.to_owned(), operation, key: key.to_owned(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_lake_round_trips_objects_and_lists_only_landed_files() {
        let dir = tempfile::tempdir().unwrap();
        let lake = LakeStorage::open(&format!("file://{}", dir.path().display())).unwrap();
        let stored = lake.put("research/adt/event_date=2026-01-01/a.parquet", Bytes::from_static(b"one")).unwrap();
        assert_eq!(stored.bytes, 3);
        assert!(stored.e_tag.is_some());
        lake.put("research/adt/_dictionary.md", Bytes::from_static(b"doc")).unwrap();
        lake.put("research/adt/event_date=2026-01-02/b.parquet", Bytes::from_static(b"two")).unwrap();
        assert!(dir.path().join("research/adt/event_date=2026-01-01/a.parquet").is_file());
        assert_eq!(
            lake.parquet_files("research").unwrap(),
            ["research/adt/event_date=2026-01-01/a.parquet", "research/adt/event_date=2026-01-02/b.parquet"]
        );
        assert!(lake.parquet_files("planning").unwrap().is_empty(), "a missing prefix lists nothing");
        assert_eq!(lake.get("research/adt/event_date=2026-01-02/b.parquet").unwrap(), Bytes::from_static(b"two"));

        // A rewrite changes the tag, so a removal can tell the versions apart.
        let key = "research/adt/event_date=2026-01-01/a.parquet";
        let rewritten = lake.put(key, Bytes::from_static(b"one, again")).unwrap();
        assert_ne!(rewritten.e_tag, stored.e_tag);
        assert_eq!(lake.e_tag(key).unwrap(), ObjectTag::Present(rewritten.e_tag));
        lake.delete(key).unwrap();
        lake.delete(key).unwrap();
        assert_eq!(lake.e_tag(key).unwrap(), ObjectTag::Absent);
    }

    #[test]
    fn staging_files_of_interrupted_writes_are_removed_for_one_name_prefix_only() {
        let dir = tempfile::tempdir().unwrap();
        let lake = LakeStorage::local(dir.path()).unwrap();
        let day = dir.path().join("research/adt/event_date=2026-01-01");
        std::fs::create_dir_all(&day).unwrap();
        for name in ["t+1+0-9.parquet#3", "t+1+0-9.parquet", "t+2+0-9.parquet#4", "t+1+note#x"] {
            std::fs::write(day.join(name), b"x").unwrap();
        }
        assert_eq!(lake.remove_interrupted_writes("research/adt", "t+1+").unwrap(), 1);
        let mut left: Vec<String> =
            std::fs::read_dir(&day).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        assert_eq!(left, ["t+1+0-9.parquet", "t+1+note#x", "t+2+0-9.parquet#4"]);
    }

    #[test]
    fn directories_are_synced_once_per_directory_after_puts_that_leave_them() {
        let dir = tempfile::tempdir().unwrap();
        let lake = LakeStorage::local(dir.path()).unwrap();
        let keys = ["r/adt/event_date=2026-01-01/a.parquet", "r/adt/event_date=2026-01-01/b.parquet", "r/dx/c.parquet"];
        for key in keys {
            lake.put_leaving_directory_unsynced(key, Bytes::from_static(b"x")).unwrap();
        }
        lake.sync_directories(keys).unwrap();
        assert_eq!(lake.parquet_files("r").unwrap(), keys.iter().map(|k| k.to_string()).collect::<Vec<_>>());
        // Syncing really opens each directory: one that is gone is an error naming it.
        let error = lake.sync_directories(["r/gone/x.parquet"]).unwrap_err().to_string();
        assert!(error.contains("gone"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_work_from_inside_a_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let lake = LakeStorage::local(dir.path()).unwrap();
        lake.put("a/b.parquet", Bytes::from_static(b"x")).unwrap();
        assert_eq!(lake.parquet_files("a").unwrap(), ["a/b.parquet"]);
    }

    #[tokio::test]
    async fn calls_work_from_inside_a_single_threaded_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let lake = LakeStorage::local(dir.path()).unwrap();
        lake.put("a/b.parquet", Bytes::from_static(b"x")).unwrap();
        assert_eq!(lake.get("a/b.parquet").unwrap(), Bytes::from_static(b"x"));
    }

    #[test]
    fn unknown_schemes_and_bucketless_urls_are_refused() {
        assert!(LakeStorage::open("ftp://host/lake").unwrap_err().to_string().contains("unsupported scheme"));
        assert!(LakeStorage::open("s3:///lake").unwrap_err().to_string().contains("no bucket"));
    }
}
