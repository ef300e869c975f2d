//! Each dataset of the lake (`<purpose>/<subject>`) as a [Delta Lake] table: the Parquet files
//! sluice writes, plus a `_delta_log/` directory of numbered commits saying which files make up
//! each version of the table. A reader of the table sees only committed files, a version at a
//! time, and can read any earlier version again to reproduce an analysis.
//!
//! sluice writes the data files itself (see [`super::parquet`]) and uses delta-rs only to add
//! commits that name them: [`DatasetTable::commit`] adds and removes files in one commit, so a
//! landing, a compaction or an erasure is seen by readers whole or not at all.
//!
//! # What the log must not say
//!
//! Analysts read the log as well as the data, so it keeps the lake's privacy rules (see
//! docs/GOVERNANCE.md): no true times, no Kafka offsets, no source ids.
//!
//! * Every commit carries sluice's own `commitInfo`, with the operation and the time
//!   [`HIDDEN_TIME_MS`] (1980-01-01T00:00:00Z, the time landed files carry): delta-rs adds no
//!   wall-clock time, engine or client version when one is given.
//! * Version 0 is written here, not by delta-rs's `CreateBuilder`, so its `metaData` has no
//!   `createdTime`. The table's id is a fresh random UUID, its own.
//! * Every `add` has [`HIDDEN_TIME_MS`] as its modification time and `numRecords` as its only
//!   statistic; every `remove` has [`HIDDEN_TIME_MS`] as its deletion time.
//! * A landing's `txn` action holds an identifier of the lander and a sequence number the
//!   lander counts itself ([`Change::Landing`]), never an offset: which offsets a sequence
//!   number covers is kept in the restricted state directory.
//! * On a directory lake each log entry is fsynced with its directory and given
//!   [`HIDDEN_TIME_MS`] as its modification time. (An object store sets `Last-Modified` itself:
//!   see docs/GOVERNANCE.md.) Expired-log clean-up is off, so no history is lost to the hidden
//!   times; analysts travel in time by version.
//!
//! [Delta Lake]: https://github.com/delta-io/delta/blob/master/PROTOCOL.md

use std::{
    collections::HashMap,
    num::NonZeroU64,
    path::{Path, PathBuf},
};

use arrow::datatypes::Schema;
use deltalake::{
    DeltaTable, DeltaTableBuilder, DeltaTableError,
    kernel::{
        Action, Add, CommitInfo, Metadata, Protocol, Remove, StructField, StructType, Transaction,
        engine::arrow_conversion::TryIntoKernel,
        transaction::{CommitBuilder, CommitConflictError, CommitProperties, TransactionError},
    },
    protocol::{DeltaOperation, SaveMode},
};
use url::Url;

use crate::{
    Error, Result,
    lake::ledger::{LedgerEntry, TableLanding},
};

/// The time every commit, file and log entry of a table gives as its own (milliseconds since
/// the Unix epoch): 1980-01-01T00:00:00Z, as [`super::storage::HIDDEN_WRITE_TIME`].
pub const HIDDEN_TIME_MS: i64 = 315_532_800_000;

/// The directory of a table's log, under the table's root.
pub const LOG_DIRECTORY: &str = "_delta_log";

/// The file in a table's log that names its newest checkpoint.
pub const LAST_CHECKPOINT: &str = "_last_checkpoint";

/// Commits between two checkpoints of a table unless configured: Delta's own default.
pub const DEFAULT_CHECKPOINT_INTERVAL: NonZeroU64 = NonZeroU64::new(100).expect("not zero");

/// The settings a new table is created with.
#[derive(Debug, Clone, Copy)]
pub struct NewTable<'a> {
    /// The table's partition column (`event_date`, a `DATE`, or `event_month`, a string), which
    /// the files themselves do not hold; `None` for an unpartitioned table.
    pub partition_column: Option<&'a str>,
    /// Commits between two checkpoints (`delta.checkpointInterval`).
    pub checkpoint_interval: NonZeroU64,
}

impl<'a> NewTable<'a> {
    /// A table partitioned by `partition_column`, checkpointed at Delta's default interval.
    pub fn partitioned_by(partition_column: Option<&'a str>) -> Self {
        NewTable { partition_column, checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL }
    }
}

/// The id under which a lander records its landings from one source partition in one table
/// (the `appId` of the table's `txn` actions): 32 hex digits of SHA-256 over the table's own
/// random id, the consumer group, the topic and the partition. Every lander of the group that
/// is given the partition finds the same id, so it knows what the table already holds from it;
/// and because the table's id is part of it, the id in one purpose's table says nothing about
/// which partition, group or purpose it stands for in another's.
pub fn application_id(table_id: &str, group: &str, topic: &str, partition: i32) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in [table_id.as_bytes(), group.as_bytes(), topic.as_bytes(), &partition.to_be_bytes()] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hex::encode(&hash.finalize()[..16])
}

/// Where the table of `dataset` (`<purpose>/<subject>`) of the lake in `storage` is: a
/// directory, or an object store URL.
pub fn dataset_location(storage: &super::storage::LakeStorage, dataset: &str) -> String {
    let lake = match storage.local_root() {
        Some(root) => root.display().to_string(),
        None => storage.location().to_owned(),
    };
    format!("{}/{dataset}", lake.trim_end_matches('/'))
}

/// The datasets (`<purpose>/<subject>`) the landed files' `keys` are in, each with its keys.
pub fn by_dataset(keys: impl IntoIterator<Item = String>) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut datasets: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for key in keys {
        let mut parts = key.splitn(3, '/');
        if let (Some(purpose), Some(subject), Some(_)) = (parts.next(), parts.next(), parts.next()) {
            let dataset = format!("{purpose}/{subject}");
            datasets.entry(dataset).or_default().push(key);
        }
    }
    datasets
}

/// What a dataset's table makes of each file in its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    /// Part of the table's newest version.
    Current,
    /// Written for a landing the table has not committed: a lander's checkpoint in progress, or
    /// one that stopped first (the partition's next lander removes it). Not part of the table.
    Uncommitted,
    /// Part of an earlier version only: replaced by a compaction or an erasure, and kept so
    /// that the earlier version can still be read.
    Earlier,
    /// Landed before the dataset had a table.
    BeforeTables,
}

/// Which role each file of one dataset has, by the table and the landing ledger.
#[derive(Debug, Default)]
pub struct DatasetFiles {
    /// Keys of the files of the table's newest version.
    current: std::collections::HashSet<String>,
    /// Keys of files written for landings the table has not committed.
    uncommitted: std::collections::HashSet<String>,
    /// Keys of files written for table landings or merges (so part of the table once, if not now).
    of_the_table: std::collections::HashSet<String>,
}

impl DatasetFiles {
    /// Reads the roles of `dataset`'s files from its table (`None` if it has none) and the
    /// ledger's `entries`.
    pub async fn read(table: Option<&DatasetTable>, dataset: &str, entries: &[LedgerEntry]) -> Result<Self> {
        let prefix = format!("{dataset}/");
        let mut files = DatasetFiles::default();
        let Some(table) = table else { return Ok(files) };
        files.current = table.files()?.into_iter().map(|path| format!("{prefix}{path}")).collect();
        let mut committed: HashMap<&str, Option<i64>> = HashMap::new();
        for entry in entries {
            match entry {
                LedgerEntry::Landed { key, table_landing: Some(landing), .. } if key.starts_with(&prefix) => {
                    let last = match committed.get(landing.application.as_str()) {
                        Some(last) => *last,
                        None => {
                            let last = table.landed_sequence(&landing.application).await?;
                            committed.insert(&landing.application, last);
                            last
                        }
                    };
                    if last.is_none_or(|last| landing.sequence > last) {
                        files.uncommitted.insert(key.clone());
                    } else {
                        files.of_the_table.insert(key.clone());
                    }
                }
                LedgerEntry::Merged { key, .. } if key.starts_with(&prefix) => {
                    files.of_the_table.insert(key.clone());
                }
                _ => {}
            }
        }
        Ok(files)
    }

    /// The role of the file at `key`.
    pub fn role(&self, key: &str) -> FileRole {
        if self.current.contains(key) {
            FileRole::Current
        } else if self.uncommitted.contains(key) {
            FileRole::Uncommitted
        } else if self.of_the_table.contains(key) {
            FileRole::Earlier
        } else {
            FileRole::BeforeTables
        }
    }
}

impl TableFile {
    /// The dataset (`<purpose>/<subject>`) a landed file's key is in, and the file as its
    /// table names it: its path under the table's root and the value of the partition column
    /// its directory gives (`event_date=2026-01-05`, or Hive's name for a missing value).
    pub fn of_key(key: &str, bytes: u64, rows: u64) -> Option<(String, TableFile)> {
        let mut parts = key.splitn(3, '/');
        let (purpose, subject, path) = (parts.next()?, parts.next()?, parts.next()?);
        let directory = path.rsplit_once('/').map(|(directory, _)| directory)?;
        let (_, value) = directory.split_once('=')?;
        let partition_value = (value != super::layout::MISSING_PARTITION_VALUE).then(|| value.to_owned());
        Some((
            format!("{purpose}/{subject}"),
            TableFile { path: path.to_owned(), partition_value: Some(partition_value), bytes, rows },
        ))
    }
}

/// One data file of a table, by its path under the table's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFile {
    /// The file's path relative to the table's root, with `/` separators
    /// (`event_date=2026-01-05/part-<random>.parquet`).
    pub path: String,
    /// The value of the table's partition column for this file (`None` for a null value), or
    /// `None` for a table without one.
    pub partition_value: Option<Option<String>>,
    /// Size in bytes.
    pub bytes: u64,
    /// Rows in the file.
    pub rows: u64,
}

/// What a commit does, which decides how readers and delta-rs's conflict checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// New rows landed: for each source partition the files hold rows of, the lander's
    /// application id for it in this table and the landing's sequence number there, recorded
    /// as the commit's `txn` actions so that whoever lands the partition next knows which of its
    /// landings the table holds. Two commits naming the same application at once conflict:
    /// the later fails rather than land the same events twice.
    Landing {
        /// One per source partition landed; never empty.
        landings: Vec<TableLanding>,
    },
    /// Small files merged into larger ones: the rows are unchanged (`dataChange: false`).
    Compaction,
    /// Files rewritten without the rows of patients who opted out.
    Erasure,
}

/// A dataset's Delta table, as last read or committed.
pub struct DatasetTable {
    /// The delta-rs table, loaded at its newest version.
    table: DeltaTable,
    /// The table's root on a directory lake: its log entries are fsynced and their times hidden
    /// there.
    local_root: Option<PathBuf>,
    /// Where the table is, for messages.
    location: String,
    /// The table's partition column, if it has one.
    partition_column: Option<String>,
}

impl std::fmt::Debug for DatasetTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetTable")
            .field("location", &self.location)
            .field("version", &self.version())
            .field("partition_column", &self.partition_column)
            .finish()
    }
}

impl DatasetTable {
    /// Opens the table at `location` (a directory path, or an `s3://` URL), or `None` if no
    /// table has been created there.
    pub async fn open(location: &str) -> Result<Option<Self>> {
        Self::open_with(location, None).await
    }

    /// Opens the table of `dataset` (`<purpose>/<subject>`) in the lake `storage` holds, or
    /// `None` if no table has been created there.
    pub async fn open_in(storage: &super::storage::LakeStorage, dataset: &str) -> Result<Option<Self>> {
        Self::open_with(&dataset_location(storage, dataset), storage.bucket_root()).await
    }

    /// Creates the table of `dataset` in the lake `storage` holds (see [`Self::create`]).
    pub async fn create_in(
        storage: &super::storage::LakeStorage,
        dataset: &str,
        file_schema: &Schema,
        settings: NewTable<'_>,
    ) -> Result<Self> {
        Self::create_with(&dataset_location(storage, dataset), storage.bucket_root(), file_schema, settings).await
    }

    async fn open_with(location: &str, bucket_root: Option<BucketRoot>) -> Result<Option<Self>> {
        let (url, local_root) = table_url(location)?;
        let builder = table_builder(url, bucket_root).map_err(table_error(location, "open"))?;
        let log_store = builder.build_storage().map_err(table_error(location, "open"))?;
        if !log_store.is_delta_table_location().await.map_err(table_error(location, "open"))? {
            return Ok(None);
        }
        let table = builder.load().await.map_err(table_error(location, "read"))?;
        let partition_column =
            table.snapshot().map_err(table_error(location, "read"))?.metadata().partition_columns().first().cloned();
        Ok(Some(DatasetTable { table, local_root, location: location.to_owned(), partition_column }))
    }

    /// Creates the table at `location` for files of `file_schema`, with `settings` (its
    /// partition column and checkpoint interval). Fails if a table is already there.
    pub async fn create(location: &str, file_schema: &Schema, settings: NewTable<'_>) -> Result<Self> {
        Self::create_with(location, None, file_schema, settings).await
    }

    async fn create_with(
        location: &str,
        bucket_root: Option<BucketRoot>,
        file_schema: &Schema,
        settings: NewTable<'_>,
    ) -> Result<Self> {
        let partition_column = settings.partition_column;
        let (url, local_root) = table_url(location)?;
        let schema = table_schema(file_schema, partition_column).map_err(|reason| Error::Table {
            location: location.to_owned(),
            operation: "create",
            reason,
        })?;
        let protocol: Protocol = serde_json::from_value(serde_json::json!({
            "minReaderVersion": 1,
            "minWriterVersion": 2,
        }))
        .map_err(table_error(location, "create"))?;
        let metadata: Metadata = serde_json::from_value(serde_json::json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "format": { "provider": "parquet", "options": {} },
            "schemaString": serde_json::to_string(&schema).map_err(table_error(location, "create"))?,
            "partitionColumns": partition_column.into_iter().collect::<Vec<_>>(),
            // The log's times are hidden, so expiry by time would discard all history.
            "configuration": {
                "delta.enableExpiredLogCleanup": "false",
                "delta.checkpointInterval": settings.checkpoint_interval.to_string(),
            },
        }))
        .map_err(table_error(location, "create"))?;
        let log_store = table_builder(url.clone(), bucket_root)
            .and_then(|builder| builder.build_storage())
            .map_err(table_error(location, "create"))?;
        if log_store.is_delta_table_location().await.map_err(table_error(location, "create"))? {
            return Err(Error::Table {
                location: location.to_owned(),
                operation: "create",
                reason: "a table already exists there".to_owned(),
            });
        }
        let operation = DeltaOperation::Create {
            mode: SaveMode::ErrorIfExists,
            location: url,
            protocol: protocol.clone(),
            metadata: metadata.clone(),
        };
        let actions = vec![commit_info(&operation), Action::Protocol(protocol), Action::Metadata(metadata)];
        // No retry: a table another process created meanwhile must not get a second protocol
        // and schema as its next version.
        let committed = committer()
            .with_max_retries(0)
            .with_actions(actions)
            .build(None, log_store.clone(), operation)
            .await
            .map_err(table_error(location, "create"))?;
        let mut loaded = DeltaTable::new(log_store);
        loaded.load().await.map_err(table_error(location, "read"))?;
        let mut table = DatasetTable {
            table: loaded,
            local_root,
            location: location.to_owned(),
            partition_column: partition_column.map(str::to_owned),
        };
        table.settle_log_entry(committed.version())?;
        Ok(table)
    }

    /// The table's newest version, as last read or committed.
    pub fn version(&self) -> u64 {
        self.table.version().unwrap_or(0)
    }

    /// The table's own random id (its `metaData.id`), from which the lander's application ids
    /// in it are derived ([`application_id`]).
    pub fn table_id(&self) -> Result<String> {
        let snapshot = self.table.snapshot().map_err(table_error(&self.location, "read"))?;
        Ok(snapshot.metadata().id().to_owned())
    }

    /// Where the table is.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The highest landing sequence number `application` has committed to this table
    /// ([`Change::Landing`]), if any.
    pub async fn landed_sequence(&self, application: &str) -> Result<Option<i64>> {
        let snapshot = self.table.snapshot().map_err(table_error(&self.location, "read"))?;
        snapshot
            .transaction_version(self.table.log_store().as_ref(), application)
            .await
            .map_err(table_error(&self.location, "read"))
    }

    /// Reads the commits others made since this table was last read or committed.
    pub async fn refresh(&mut self) -> Result<()> {
        self.table.update_incremental(None).await.map_err(table_error(&self.location, "read"))
    }

    /// The table's partition column (`event_date` or `event_month`), if it has one.
    pub fn partition_column(&self) -> Option<&str> {
        self.partition_column.as_deref()
    }

    /// The paths (relative to the table's root) of the files that make up the newest version.
    pub fn files(&self) -> Result<Vec<String>> {
        let snapshot = self.table.snapshot().map_err(table_error(&self.location, "read"))?;
        Ok(snapshot.log_data().iter().map(|file| file.path().into_owned()).collect())
    }

    /// Commits `added` and `removed` files as one new version and returns it. A landing
    /// removes nothing; a compaction or an erasure removes the files it replaced.
    pub async fn commit(&mut self, added: &[TableFile], removed: &[TableFile], change: Change) -> Result<u64> {
        self.commit_with_columns(added, removed, change, None).await
    }

    /// As [`Self::commit`], for files written with `file_schema`: columns it has that the
    /// table's schema does not (a newer source schema added them) are added to the table's
    /// schema in the same commit, as nullable columns, so files landed before read with them
    /// as null.
    pub async fn commit_with_columns(
        &mut self,
        added: &[TableFile],
        removed: &[TableFile],
        change: Change,
        file_schema: Option<&Schema>,
    ) -> Result<u64> {
        let evolved = match file_schema {
            Some(schema) => self.evolved_metadata(schema)?,
            None => None,
        };
        let partition_by = self.partition_column.iter().cloned().collect::<Vec<_>>();
        let (operation, data_change, transaction) = match &change {
            Change::Landing { landings } => (
                DeltaOperation::Write {
                    mode: SaveMode::Append,
                    partition_by: (!partition_by.is_empty()).then(|| partition_by.clone()),
                    predicate: None,
                },
                true,
                landings.iter().map(|l| Transaction::new(&l.application, l.sequence)).collect(),
            ),
            Change::Compaction => (DeltaOperation::Optimize { predicate: None, target_size: 0 }, false, Vec::new()),
            Change::Erasure => (DeltaOperation::Delete { predicate: None }, true, Vec::new()),
        };
        let mut actions = vec![commit_info(&operation)];
        actions.extend(evolved.map(Action::Metadata));
        actions.extend(removed.iter().map(|file| Action::Remove(self.remove_action(file, data_change))));
        actions.extend(added.iter().map(|file| Action::Add(self.add_action(file, data_change))));
        actions.extend(transaction.into_iter().map(Action::Txn));
        let landing = matches!(change, Change::Landing { .. });
        let mut attempt = 0;
        let committed = loop {
            attempt += 1;
            let snapshot = self.table.snapshot().map_err(table_error(&self.location, "commit to"))?;
            let outcome = committer()
                .with_actions(actions.clone())
                .build(Some(snapshot), self.table.log_store(), operation.clone())
                .await;
            match outcome {
                Ok(committed) => break committed,
                // A landing adds files it wrote itself and reads none: a compaction or an
                // erasure committed since this table was read does not touch it, so it is
                // tried again on the newer version. The same application id committed by
                // someone else is another matter: that lander holds the partition now.
                Err(DeltaTableError::Transaction { source: TransactionError::CommitConflict(conflict) })
                    if landing
                        && attempt < COMMIT_ATTEMPTS
                        && !matches!(conflict, CommitConflictError::ConcurrentTransaction) =>
                {
                    tracing::debug!(%conflict, attempt, "table changed while landing; committing on its newer version");
                    self.refresh().await?;
                }
                Err(error) => return Err(table_error(&self.location, "commit to")(error)),
            }
        };
        let version = committed.version();
        self.settle_log_entry(version)?;
        self.table.update_incremental(Some(version)).await.map_err(table_error(&self.location, "read"))?;
        self.checkpoint_if_due(version).await;
        Ok(version)
    }

    /// Writes a checkpoint of `version` when it is a multiple of the table's checkpoint interval
    /// (`delta.checkpointInterval`, 100 commits unless the table says otherwise), so that opening
    /// the table (a lander starting, `sluice audit verify`, an analyst's reader) reads one Parquet
    /// file and the commits after it rather than every commit since the table began.
    ///
    /// A checkpoint only speeds reading: every commit stays in the log, so a failure to write one
    /// is logged and the landing it follows stands.
    async fn checkpoint_if_due(&mut self, version: u64) {
        use deltalake::table::config::TablePropertiesExt;
        let Ok(snapshot) = self.table.snapshot() else { return };
        let interval = snapshot.table_config().checkpoint_interval().get();
        if version == 0 || !version.is_multiple_of(interval) {
            return;
        }
        let written = deltalake::checkpoints::create_checkpoint(&self.table, None)
            .await
            .map_err(table_error(&self.location, "write a checkpoint of"))
            .and_then(|()| self.settle_checkpoint(version));
        match written {
            Ok(()) => tracing::debug!(version, "table checkpoint written"),
            Err(error) => {
                tracing::warn!(%error, version, "no table checkpoint written; readers replay the commits instead")
            }
        }
    }

    /// Makes a checkpoint and the `_last_checkpoint` pointer to it durable with their times
    /// hidden, on a directory lake, as [`Self::settle_log_entry`] does for commits.
    fn settle_checkpoint(&self, version: u64) -> Result<()> {
        let Some(root) = &self.local_root else { return Ok(()) };
        let log = root.join(LOG_DIRECTORY);
        for file in [log.join(format!("{version:020}.checkpoint.parquet")), log.join(LAST_CHECKPOINT)] {
            super::storage::settle(&file).map_err(Error::write(&file))?;
        }
        super::storage::settle(&log).map_err(Error::write(&log))
    }

    /// The table's metadata with the columns of `file_schema` it lacks appended (nullable), or
    /// `None` when it has them all.
    fn evolved_metadata(&self, file_schema: &Schema) -> Result<Option<Metadata>> {
        use deltalake::kernel::MetadataExt;
        let snapshot = self.table.snapshot().map_err(table_error(&self.location, "read"))?;
        let current = snapshot.schema();
        let mut fields: Vec<StructField> = current.fields().cloned().collect();
        let mut grew = false;
        for field in file_schema.fields() {
            if current.field(field.name()).is_none() {
                let data_type: deltalake::kernel::DataType =
                    field.data_type().try_into_kernel().map_err(|error| Error::Table {
                        location: self.location.clone(),
                        operation: "add a column to",
                        reason: format!("column `{}` has no Delta type: {error}", field.name()),
                    })?;
                fields.push(StructField::new(field.name(), data_type, true));
                grew = true;
            }
        }
        if !grew {
            return Ok(None);
        }
        let schema = StructType::try_new(fields).map_err(table_error(&self.location, "add a column to"))?;
        let metadata =
            snapshot.metadata().clone().with_schema(&schema).map_err(table_error(&self.location, "add a column to"))?;
        Ok(Some(metadata))
    }

    fn partition_values(&self, file: &TableFile) -> HashMap<String, Option<String>> {
        match (&self.partition_column, &file.partition_value) {
            (Some(column), Some(value)) => HashMap::from([(column.clone(), value.clone())]),
            (Some(column), None) => HashMap::from([(column.clone(), None)]),
            _ => HashMap::new(),
        }
    }

    fn add_action(&self, file: &TableFile, data_change: bool) -> Add {
        Add {
            path: file.path.clone(),
            partition_values: self.partition_values(file),
            size: i64::try_from(file.bytes).unwrap_or(i64::MAX),
            modification_time: HIDDEN_TIME_MS,
            data_change,
            // The row count only: minimum and maximum values would copy values out of the
            // files into the log, where column statistics of times would outlive an erasure.
            stats: Some(serde_json::json!({ "numRecords": file.rows }).to_string()),
            ..Add::default()
        }
    }

    fn remove_action(&self, file: &TableFile, data_change: bool) -> Remove {
        Remove {
            path: file.path.clone(),
            data_change,
            deletion_timestamp: Some(HIDDEN_TIME_MS),
            extended_file_metadata: Some(true),
            partition_values: Some(self.partition_values(file)),
            size: Some(i64::try_from(file.bytes).unwrap_or(i64::MAX)),
            ..Remove::default()
        }
    }

    /// Makes a new log entry durable and hides its write time, on a directory lake.
    fn settle_log_entry(&mut self, version: u64) -> Result<()> {
        let Some(root) = &self.local_root else { return Ok(()) };
        let log = root.join(LOG_DIRECTORY);
        let entry = log.join(format!("{version:020}.json"));
        super::storage::settle(&entry).map_err(Error::write(&entry))?;
        super::storage::settle(&log).map_err(Error::write(&log))
    }
}

/// Most attempts at a landing's commit while compactions or erasures commit in between.
const COMMIT_ATTEMPTS: usize = 5;

/// A commit builder that neither writes checkpoints nor cleans up the log by time: both read or
/// compare wall-clock times the log does not hold.
fn committer() -> CommitBuilder {
    CommitBuilder::from(
        CommitProperties::default().with_create_checkpoint(false).with_cleanup_expired_logs(Some(false)),
    )
}

/// The `commitInfo` of a commit: the operation and the hidden time, nothing else.
fn commit_info(operation: &DeltaOperation) -> Action {
    Action::CommitInfo(CommitInfo {
        timestamp: Some(HIDDEN_TIME_MS),
        operation: Some(operation.name().to_owned()),
        ..CommitInfo::default()
    })
}

/// The table's schema: the files' columns (as nullable as they are there) and the partition
/// column, which lives in the log and the directory names rather than in the files.
fn table_schema(file_schema: &Schema, partition_column: Option<&str>) -> std::result::Result<StructType, String> {
    let mut fields = Vec::with_capacity(file_schema.fields().len() + 1);
    for field in file_schema.fields() {
        let data_type: deltalake::kernel::DataType = field
            .data_type()
            .try_into_kernel()
            .map_err(|error| format!("column `{}` has no Delta type: {error}", field.name()))?;
        fields.push(StructField::new(field.name(), data_type, field.is_nullable()));
    }
    if let Some(column) = partition_column {
        let data_type = if column == "event_date" {
            deltalake::kernel::DataType::DATE
        } else {
            deltalake::kernel::DataType::STRING
        };
        fields.push(StructField::new(column, data_type, true));
    }
    StructType::try_new(fields).map_err(|error| error.to_string())
}

/// An object store at its bucket's root.
type BucketRoot = std::sync::Arc<dyn object_store::ObjectStore>;

/// A table builder for `url`, through the lake's own object store when it has one (delta-rs is
/// built without its cloud back ends: the lake's store already speaks to the bucket).
fn table_builder(url: Url, bucket_root: Option<BucketRoot>) -> deltalake::DeltaResult<DeltaTableBuilder> {
    let builder = DeltaTableBuilder::from_url(url.clone())?;
    Ok(match bucket_root {
        Some(root) => {
            register_log_store(&url);
            builder.with_storage_backend(root, url)
        }
        None => builder,
    })
}

/// Registers delta-rs's default log store (commits by conditional put) for the scheme of
/// `url`, where delta-rs has none: sluice gives it the store to use.
fn register_log_store(url: &Url) {
    use deltalake::logstore::{LogStoreFactory, default_logstore, logstore_factories};
    struct ConditionalPutLogStore;
    impl LogStoreFactory for ConditionalPutLogStore {
        fn with_options(
            &self,
            prefixed_store: deltalake::logstore::ObjectStoreRef,
            root_store: deltalake::logstore::ObjectStoreRef,
            location: &Url,
            options: &deltalake::logstore::StorageConfig,
        ) -> deltalake::DeltaResult<std::sync::Arc<dyn deltalake::logstore::LogStore>> {
            Ok(default_logstore(prefixed_store, root_store, location, options))
        }
    }
    let Ok(scheme) = Url::parse(&format!("{}://", url.scheme())) else { return };
    let factories = logstore_factories();
    if !factories.contains_key(&scheme) {
        factories.insert(scheme, std::sync::Arc::new(ConditionalPutLogStore));
    }
}

/// The URL delta-rs opens a table by, and the table's directory when it is local.
fn table_url(location: &str) -> Result<(Url, Option<PathBuf>)> {
    let invalid = |reason: String| Error::Table { location: location.to_owned(), operation: "open", reason };
    if location.contains("://") && !location.starts_with("file://") {
        return Ok((Url::parse(location).map_err(|e| invalid(e.to_string()))?, None));
    }
    let path = Path::new(location.strip_prefix("file://").unwrap_or(location));
    std::fs::create_dir_all(path).map_err(Error::write(path))?;
    let path = path.canonicalize().map_err(Error::write(path))?;
    let url = Url::from_directory_path(&path).map_err(|()| invalid("not an absolute path".to_owned()))?;
    Ok((url, Some(path)))
}

fn table_error<'l, E: std::fmt::Display>(location: &'l str, operation: &'static str) -> impl Fn(E) -> Error + 'l {
    move |error| Error::Table { location: location.to_owned(), operation, reason: error.to_string() }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::{
        array::{Float64Array, RecordBatch, StringArray},
        datatypes::{DataType, Field},
    };

    use super::*;

    fn file_schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("patient_pseudonym", DataType::Utf8, false),
            Field::new("value", DataType::Float64, true),
        ]))
    }

    /// Writes a Parquet file of `rows` rows under the table's root, as the lander would.
    fn write_file(root: &Path, day: &str, name: &str, rows: usize) -> TableFile {
        let batch = RecordBatch::try_new(
            file_schema(),
            vec![
                Arc::new(StringArray::from_iter_values((0..rows).map(|n| format!("p{n}")))),
                Arc::new(Float64Array::from_iter_values((0..rows).map(|n| n as f64))),
            ],
        )
        .unwrap();
        let bytes = crate::lake::parquet::encode(&batch, Vec::new()).unwrap();
        let path = format!("event_date={day}/{name}.parquet");
        std::fs::create_dir_all(root.join(format!("event_date={day}"))).unwrap();
        std::fs::write(root.join(&path), &bytes).unwrap();
        TableFile { path, partition_value: Some(Some(day.to_owned())), bytes: bytes.len() as u64, rows: rows as u64 }
    }

    /// A new table at `location` for files of [`file_schema`], partitioned by `event_date`.
    async fn dated_table(location: &str) -> DatasetTable {
        DatasetTable::create(location, &file_schema(), NewTable::partitioned_by(Some("event_date"))).await.unwrap()
    }

    fn landing(sequence: i64) -> Change {
        Change::Landing { landings: vec![TableLanding { application: "lander-3f1c".to_owned(), sequence }] }
    }

    #[tokio::test]
    async fn a_landing_is_one_version_and_the_table_knows_its_sequence_number_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join("research/observation");
        let location = location.to_str().unwrap();
        assert!(DatasetTable::open(location).await.unwrap().is_none());
        let mut table = dated_table(location).await;
        assert_eq!(table.version(), 0);
        assert_eq!(table.landed_sequence("lander-3f1c").await.unwrap(), None);

        let root = Path::new(location);
        let files = [write_file(root, "2026-01-05", "part-a", 3), write_file(root, "2026-01-06", "part-b", 2)];
        assert_eq!(table.commit(&files, &[], landing(1)).await.unwrap(), 1);
        let third = write_file(root, "2026-01-06", "part-c", 4);
        assert_eq!(table.commit(std::slice::from_ref(&third), &[], landing(2)).await.unwrap(), 2);

        let reopened = DatasetTable::open(location).await.unwrap().unwrap();
        assert_eq!(reopened.version(), 2);
        assert_eq!(reopened.landed_sequence("lander-3f1c").await.unwrap(), Some(2));
        assert_eq!(reopened.landed_sequence("another lander").await.unwrap(), None);
        let mut paths = reopened.files().unwrap();
        paths.sort();
        assert_eq!(
            paths,
            [
                "event_date=2026-01-05/part-a.parquet",
                "event_date=2026-01-06/part-b.parquet",
                "event_date=2026-01-06/part-c.parquet"
            ]
        );

        let error = DatasetTable::create(location, &file_schema(), NewTable::partitioned_by(Some("event_date")))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("a table already exists there"), "{error}");
    }

    #[tokio::test]
    async fn a_checkpoint_every_interval_holds_the_files_and_landings_with_hidden_times() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().to_str().unwrap();
        let settings =
            NewTable { partition_column: Some("event_date"), checkpoint_interval: NonZeroU64::new(2).unwrap() };
        let mut table = DatasetTable::create(location, &file_schema(), settings).await.unwrap();
        for sequence in 1..=4 {
            let file = write_file(dir.path(), "2026-01-05", &format!("part-{sequence}"), 3);
            table.commit(&[file], &[], landing(sequence)).await.unwrap();
        }
        let other =
            Change::Landing { landings: vec![TableLanding { application: "lander-9a2b".to_owned(), sequence: 1 }] };
        table.commit(&[write_file(dir.path(), "2026-01-06", "part-5", 3)], &[], other).await.unwrap();
        let log = dir.path().join(LOG_DIRECTORY);
        let checkpoints: Vec<String> = {
            let mut names: Vec<String> = std::fs::read_dir(&log)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.contains("checkpoint"))
                .collect();
            names.sort();
            names
        };
        assert_eq!(
            checkpoints,
            ["00000000000000000002.checkpoint.parquet", "00000000000000000004.checkpoint.parquet", LAST_CHECKPOINT]
        );
        for name in &checkpoints {
            let modified = std::fs::metadata(log.join(name)).unwrap().modified().unwrap();
            let millis = modified.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
            assert_eq!(millis, HIDDEN_TIME_MS, "{name}: its file time is hidden");
        }
        let pointer: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(log.join(LAST_CHECKPOINT)).unwrap()).unwrap();
        assert_eq!(pointer["version"], 4);

        // The checkpoint alone gives the table up to its version: without the commits before
        // it, the table still has every file and knows the lander's last landing.
        for version in 0..=4 {
            std::fs::remove_file(log.join(format!("{version:020}.json"))).unwrap();
        }
        let reopened = DatasetTable::open(location).await.unwrap().unwrap();
        assert_eq!(reopened.version(), 5);
        assert_eq!(reopened.files().unwrap().len(), 5);
        assert_eq!(reopened.landed_sequence("lander-3f1c").await.unwrap(), Some(4));
        assert_eq!(reopened.landed_sequence("lander-9a2b").await.unwrap(), Some(1));
    }

    #[tokio::test]
    async fn a_new_optional_column_joins_the_table_schema_as_nullable_once() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().to_str().unwrap();
        let mut table = dated_table(location).await;
        let columns = |table: &DatasetTable| -> Vec<(String, bool)> {
            let snapshot = table.table.snapshot().unwrap();
            snapshot.schema().fields().map(|f| (f.name().clone(), f.is_nullable())).collect()
        };
        let first = write_file(dir.path(), "2026-01-05", "part-a", 3);
        table.commit_with_columns(&[first], &[], landing(1), Some(&file_schema())).await.unwrap();
        assert_eq!(columns(&table).len(), 3, "the same columns: the schema is unchanged");

        let mut fields: Vec<Field> = file_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("unit", DataType::Utf8, false));
        let newer = Schema::new(fields);
        let second = write_file(dir.path(), "2026-01-06", "part-b", 2);
        let version = table.commit_with_columns(&[second], &[], landing(2), Some(&newer)).await.unwrap();
        let expected = [
            ("patient_pseudonym".to_owned(), false),
            ("value".to_owned(), true),
            ("event_date".to_owned(), true),
            ("unit".to_owned(), true),
        ];
        assert_eq!(columns(&table), expected, "added at the end, nullable: earlier files have no value");
        let reopened = DatasetTable::open(location).await.unwrap().unwrap();
        assert_eq!((reopened.version(), columns(&reopened)), (version, expected.to_vec()));
        let log = std::fs::read_to_string(dir.path().join("_delta_log").join(format!("{version:020}.json"))).unwrap();
        assert!(log.contains("\"metaData\"") && !log.contains("createdTime\":1"), "{log}");
    }

    #[tokio::test]
    async fn a_compaction_replaces_files_in_one_version_and_earlier_versions_still_list_them() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().to_str().unwrap();
        let mut table = dated_table(location).await;
        let small =
            [write_file(dir.path(), "2026-01-05", "part-a", 3), write_file(dir.path(), "2026-01-05", "part-b", 2)];
        table.commit(&small, &[], landing(1)).await.unwrap();
        let merged = write_file(dir.path(), "2026-01-05", "part-m", 5);
        assert_eq!(table.commit(std::slice::from_ref(&merged), &small, Change::Compaction).await.unwrap(), 2);
        assert_eq!(table.files().unwrap(), ["event_date=2026-01-05/part-m.parquet"]);
        // The landing's sequence number survives the compaction.
        assert_eq!(table.landed_sequence("lander-3f1c").await.unwrap(), Some(1));

        let (url, _) = table_url(location).unwrap();
        let mut before = DeltaTableBuilder::from_url(url).unwrap().load().await.unwrap();
        before.load_version(1).await.unwrap();
        let mut earlier: Vec<String> =
            before.snapshot().unwrap().log_data().iter().map(|f| f.path().into_owned()).collect();
        earlier.sort();
        assert_eq!(earlier, ["event_date=2026-01-05/part-a.parquet", "event_date=2026-01-05/part-b.parquet"]);
    }

    #[tokio::test]
    async fn the_log_holds_no_time_but_the_hidden_one_and_no_engine_or_creation_details() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().to_str().unwrap();
        let mut table = dated_table(location).await;
        let files = [write_file(dir.path(), "2026-01-05", "part-a", 3)];
        table.commit(&files, &[], landing(7)).await.unwrap();
        let merged = write_file(dir.path(), "2026-01-05", "part-m", 3);
        table.commit(std::slice::from_ref(&merged), &files, Change::Compaction).await.unwrap();
        let rewritten = write_file(dir.path(), "2026-01-05", "part-e", 2);
        table.commit(std::slice::from_ref(&rewritten), std::slice::from_ref(&merged), Change::Erasure).await.unwrap();

        let log = dir.path().join(LOG_DIRECTORY);
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&log).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        assert_eq!(entries.len(), 4, "{entries:?}");
        let hidden = std::time::UNIX_EPOCH + std::time::Duration::from_millis(HIDDEN_TIME_MS as u64);
        for entry in &entries {
            assert_eq!(std::fs::metadata(entry).unwrap().modified().unwrap(), hidden, "{entry:?}");
            let text = std::fs::read_to_string(entry).unwrap();
            for forbidden in ["engineInfo", "clientVersion", "lastUpdated"] {
                assert!(!text.contains(forbidden), "{forbidden} in {entry:?}: {text}");
            }
            // Every number in the log that could be a time since 1970 in milliseconds (any
            // from 2001 on) is the hidden time.
            for line in text.lines() {
                let action: serde_json::Value = serde_json::from_str(line).unwrap();
                // delta-rs writes the table's creation time as null when none is given.
                if let Some(metadata) = action.get("metaData") {
                    assert_eq!(metadata["createdTime"], serde_json::Value::Null, "{line}");
                }
                let mut numbers = Vec::new();
                collect_numbers(&action, &mut numbers);
                for number in numbers.into_iter().filter(|n| *n >= 1_000_000_000_000) {
                    assert_eq!(number, HIDDEN_TIME_MS, "{line}");
                }
            }
        }
        let all: String = entries.iter().map(|e| std::fs::read_to_string(e).unwrap()).collect();
        assert!(all.contains(r#""txn":{"appId":"lander-3f1c","version":7}"#), "{all}");
        assert_eq!(std::fs::metadata(&log).unwrap().modified().unwrap(), hidden);
    }

    #[tokio::test]
    async fn application_ids_differ_between_tables_and_say_nothing_of_the_partition() {
        let dir = tempfile::tempdir().unwrap();
        let (research, planning) = (dir.path().join("research/adt"), dir.path().join("planning/adt"));
        let research = DatasetTable::create(research.to_str().unwrap(), &file_schema(), NewTable::partitioned_by(None))
            .await
            .unwrap();
        let planning = DatasetTable::create(planning.to_str().unwrap(), &file_schema(), NewTable::partitioned_by(None))
            .await
            .unwrap();
        let (research_id, planning_id) = (research.table_id().unwrap(), planning.table_id().unwrap());
        assert_ne!(research_id, planning_id);
        let id = application_id(&research_id, "sluice-lander", "clinical.adt", 3);
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(id, application_id(&research_id, "sluice-lander", "clinical.adt", 3), "stable");
        for other in [
            application_id(&planning_id, "sluice-lander", "clinical.adt", 3),
            application_id(&research_id, "sluice-lander", "clinical.adt", 4),
            application_id(&research_id, "another group", "clinical.adt", 3),
            // The parts are length-prefixed: moving text between them gives another id.
            application_id(&research_id, "sluice-lande", "rclinical.adt", 3),
        ] {
            assert_ne!(id, other);
        }
    }

    fn collect_numbers(value: &serde_json::Value, into: &mut Vec<i64>) {
        match value {
            serde_json::Value::Number(n) => into.extend(n.as_i64()),
            // Statistics are a JSON document inside a string.
            serde_json::Value::String(text) if text.starts_with('{') => {
                if let Ok(inner) = serde_json::from_str(text) {
                    collect_numbers(&inner, into);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_numbers(v, into)),
            serde_json::Value::Object(map) => map.values().for_each(|v| collect_numbers(v, into)),
            _ => {}
        }
    }
}
