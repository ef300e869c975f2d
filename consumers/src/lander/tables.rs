//! The lander's side of the datasets' Delta tables (see [`crate::lake::table`]).
//!
//! A checkpoint lands into each dataset it wrote files for with **one** table commit. Before
//! the files are written, each file's landing ledger entry names the table landing it belongs
//! to: the lander's application id for its source partition in that table and the next
//! sequence number there ([`LanderTables::next_landing`]). After the files are durable, one
//! commit per table adds them with a `txn` action per source partition
//! ([`LanderTables::commit`]); only then are the Kafka offsets committed.
//!
//! A lander newly given a partition asks each table what it already holds from it
//! ([`LanderTables::holdings`]): the ledger entries of landings the table committed give the
//! offset ranges it holds (events in them are not landed into that table again), and the files
//! of landings it never committed are not part of it and are removed.

use std::collections::{BTreeMap, HashMap};

use arrow::datatypes::{Schema, SchemaRef};

use super::partition::TopicPartition;
use crate::{
    Result,
    lake::{
        ledger::{LedgerEntry, TableLanding},
        storage::LakeStorage,
        table::{Change, DatasetTable, NewTable, TableFile, application_id},
    },
};

/// The tables a lander lands into, opened as it first needs each.
pub(super) struct LanderTables {
    /// Where each dataset's table is: `<lake>/<dataset>`.
    lake: std::sync::Arc<LakeStorage>,
    /// The consumer group: part of every application id, so every lander of the group finds
    /// the same id for a partition.
    group: String,
    /// Tables opened or created so far, by dataset (`<purpose>/<subject>`).
    tables: HashMap<String, DatasetTable>,
    /// The last sequence number committed per dataset and application id, as read from the
    /// table once and counted on from there (the table's own answer needs a read of its log).
    sequences: HashMap<(String, String), i64>,
    /// The checkpoint interval a table this lander creates is given
    /// ([`crate::lander::LanderConfig::table_checkpoint_interval`]).
    checkpoint_interval: std::num::NonZeroU64,
}

/// What one table already holds from one source partition, when a lander is given it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Holdings {
    /// The offset ranges of the partition the table holds (see
    /// [`crate::lake::ledger::table_holds`]), in order.
    pub(super) ranges: Vec<(i64, i64)>,
    /// Keys of files written for landings the table never committed: not part of it.
    pub(super) never_committed: Vec<String>,
}

impl LanderTables {
    pub(super) fn new(
        storage: &std::sync::Arc<LakeStorage>,
        group: &str,
        checkpoint_interval: std::num::NonZeroU64,
    ) -> Self {
        LanderTables {
            lake: std::sync::Arc::clone(storage),
            group: group.to_owned(),
            tables: HashMap::new(),
            sequences: HashMap::new(),
            checkpoint_interval,
        }
    }

    /// The dataset's table, if one has been created.
    async fn open(&mut self, dataset: &str) -> Result<Option<&mut DatasetTable>> {
        if !self.tables.contains_key(dataset) {
            let Some(table) = DatasetTable::open_in(&self.lake, dataset).await? else { return Ok(None) };
            self.tables.insert(dataset.to_owned(), table);
        }
        Ok(self.tables.get_mut(dataset))
    }

    /// The dataset's table, created for files of `file_schema` if there is none yet.
    async fn open_or_create(
        &mut self,
        dataset: &str,
        file_schema: &Schema,
        partition_column: &str,
    ) -> Result<&mut DatasetTable> {
        if self.open(dataset).await?.is_none() {
            let new_table =
                NewTable { partition_column: Some(partition_column), checkpoint_interval: self.checkpoint_interval };
            let table = match DatasetTable::create_in(&self.lake, dataset, file_schema, new_table).await {
                Ok(table) => table,
                // Another lander of the group created it first.
                Err(error) => DatasetTable::open_in(&self.lake, dataset).await?.ok_or(error)?,
            };
            self.tables.insert(dataset.to_owned(), table);
        }
        Ok(self.tables.get_mut(dataset).expect("opened or created above"))
    }

    /// The next landing of `source` into the dataset's table (created if need be): the lander's
    /// application id for it there and the sequence number after the last one committed.
    pub(super) async fn next_landing(
        &mut self,
        dataset: &str,
        file_schema: &Schema,
        partition_column: &str,
        source: &TopicPartition,
    ) -> Result<TableLanding> {
        let group = self.group.clone();
        let table = self.open_or_create(dataset, file_schema, partition_column).await?;
        let application = application_id(&table.table_id()?, &group, &source.topic, source.partition);
        let key = (dataset.to_owned(), application.clone());
        let last = match self.sequences.get(&key) {
            Some(last) => *last,
            None => {
                let table = self.tables.get_mut(dataset).expect("opened above");
                table.refresh().await?;
                let last = table.landed_sequence(&application).await?.unwrap_or(0);
                self.sequences.insert(key, last);
                last
            }
        };
        Ok(TableLanding { application, sequence: last + 1 })
    }

    /// Commits a checkpoint's files to their tables, one commit per table, and returns each
    /// table's new version. `files` are by dataset, each with the landing it belongs to.
    pub(super) async fn commit(
        &mut self,
        files: BTreeMap<String, Vec<(TableFile, TableLanding, SchemaRef)>>,
    ) -> Result<BTreeMap<String, u64>> {
        let mut versions = BTreeMap::new();
        for (dataset, files) in files {
            let mut landings: Vec<TableLanding> = files.iter().map(|(_, landing, _)| landing.clone()).collect();
            landings.sort_by(|a, b| a.application.cmp(&b.application));
            landings.dedup();
            // Every file of one dataset at one checkpoint is written with the same plan.
            let schema = files.first().map(|(_, _, schema)| schema.clone());
            let added: Vec<TableFile> = files.into_iter().map(|(file, ..)| file).collect();
            let table = self.open(&dataset).await?.expect("a table is created before its files are written");
            let change = Change::Landing { landings: landings.clone() };
            let version = table.commit_with_columns(&added, &[], change, schema.as_deref()).await?;
            for landing in landings {
                self.sequences.insert((dataset.clone(), landing.application), landing.sequence);
            }
            versions.insert(dataset, version);
        }
        Ok(versions)
    }

    /// What the dataset's table holds from `source`, by the ledger's `entries`.
    pub(super) async fn holdings(
        &mut self,
        dataset: &str,
        source: &TopicPartition,
        entries: &[LedgerEntry],
    ) -> Result<Holdings> {
        let group = self.group.clone();
        let Some(table) = self.open(dataset).await? else {
            // No table yet: whatever was written for it was never committed.
            let never_committed = entries
                .iter()
                .filter_map(|entry| match entry {
                    LedgerEntry::Landed { key, topic, partition, table_landing: Some(_), .. }
                        if *topic == source.topic
                            && *partition == source.partition
                            && key.starts_with(&format!("{dataset}/")) =>
                    {
                        Some(key.clone())
                    }
                    _ => None,
                })
                .collect();
            return Ok(Holdings { ranges: Vec::new(), never_committed });
        };
        table.refresh().await?;
        let application = application_id(&table.table_id()?, &group, &source.topic, source.partition);
        let committed = table.landed_sequence(&application).await?;
        self.sequences.insert((dataset.to_owned(), application.clone()), committed.unwrap_or(0));
        let ranges = crate::lake::ledger::table_holds(entries, &application, committed)
            .remove(&source.key())
            .unwrap_or_default();
        let never_committed = crate::lake::ledger::never_committed(entries, &application, committed)
            .into_iter()
            .map(str::to_owned)
            .collect();
        Ok(Holdings { ranges, never_committed })
    }
}

/// The dataset a landed file's key is in, and the file as its table names it (see
/// [`TableFile::of_key`]).
pub(super) fn table_file(key: &str, bytes: u64, rows: u64) -> Option<(String, TableFile)> {
    TableFile::of_key(key, bytes, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_landed_key_names_its_dataset_path_and_partition_value() {
        let (dataset, file) = table_file("research/adt/event_date=2026-01-05/part-ab.parquet", 10, 2).unwrap();
        assert_eq!(dataset, "research/adt");
        assert_eq!(file.path, "event_date=2026-01-05/part-ab.parquet");
        assert_eq!(file.partition_value, Some(Some("2026-01-05".to_owned())));
        let (_, file) =
            table_file("planning/adt/event_month=__HIVE_DEFAULT_PARTITION__/part-cd.parquet", 1, 1).unwrap();
        assert_eq!(file.partition_value, Some(None), "Hive's missing value is a null partition value");
        assert!(table_file("research/adt/part-ab.parquet", 1, 1).is_none(), "no partition directory");
    }
}
