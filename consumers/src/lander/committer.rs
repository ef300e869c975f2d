//! The committer: a checkpoint makes buffered rows durable files and only then commits the
//! offsets they came from. In order:
//!
//! 1. **take** the rolling partitions' files and consumed ranges out of the buffers;
//! 2. **record** the files in the landing ledger, each with the table landing it belongs to,
//!    then **write** them, several at a time, each atomically and fsynced;
//! 3. **sync** the directories they went to, once each;
//! 4. **drain** the dead-letter records: wait until every one is acknowledged;
//! 5. **audit**: one landing record per partition range and purpose, with its files;
//! 6. **commit to the tables**: one Delta commit per dataset adds the files (see
//!    [`super::tables`]); from here on readers of the table see them;
//! 7. **erase** the rows owed to opt-outs read since they were decided, this checkpoint's
//!    included (an erasure works on what the tables hold);
//! 8. **commit** the offsets. If the group gave the partitions to another lander meanwhile,
//!    the files stay in their tables and the new owner, which asks the tables what they hold,
//!    does not land those events again.
//!
//! An offset is never committed before everything it covers is durable, recorded and part of
//! its table. Files get random names and their rows are sorted by keyed pseudonyms; which
//! source offsets a file holds is recorded in the landing ledger (see
//! [`crate::lake::ledger`]) before it is written, never in the file or the table's log.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use futures::StreamExt;
use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer},
};
use tracing::{info, warn};

use super::{
    LanderConsumer, block,
    buffers::{PartitionProgress, PendingFile, Rolling},
    partition::{PendingFileKey, TopicPartition},
    state::LandingState,
    telemetry,
};
use crate::{
    Error, Result,
    audit::{AuditEvent, ExemptionUse, FileRecord, LandingRecord, TableCommitRecord},
    batch::{SORTED_BY_KEY, order_rows, sort_columns},
    erase::PSEUDONYM_COLUMN_KEY,
    lake::{
        ledger::{self, LedgerEntry, TableLanding},
        parquet::{LandedFile, write_parquet_leaving_directory_unsynced},
        table::TableFile,
    },
    policy::LandingPlan,
};

/// Files written at the same time at a checkpoint.
const CONCURRENT_FILE_WRITES: usize = 8;

/// What was written for one pending file at this checkpoint.
struct WrittenFile {
    /// The context of its `write parquet` span, for the events' spans to link to.
    span: Option<sluice_telemetry::TraceContext>,
    /// The file as landed (key, rows, bytes, e-tag), to withdraw it if the commit is refused.
    landed: LandedFile,
    /// Its audit record.
    record: FileRecord,
    /// Fingerprints of the schemas its events were written with.
    writer_schemas: Vec<String>,
    /// The table landing it belongs to.
    table_landing: TableLanding,
    /// Its columns, which its table's schema must have.
    schema: arrow::datatypes::SchemaRef,
}

/// Whether a checkpoint's offsets were committed.
enum Commit {
    /// Committed: the files are the partitions' landing.
    Done,
    /// Refused because the group moved the partitions to another lander.
    MovedAway(rdkafka::error::KafkaError),
}

impl LandingState<'_> {
    /// Checkpoints the partitions in `only` (files rolling), or every partition when `None`:
    /// the steps of the [module documentation](self), in that order.
    pub(super) async fn checkpoint(
        &mut self,
        consumer: &LanderConsumer,
        only: Option<&BTreeSet<TopicPartition>>,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        let Rolling { files, partitions: mut committing, rows: rolled_rows } = self.buffers.take(only);
        let (checkpoint_span, checkpoint_trace) = telemetry::checkpoint_span(committing.len());
        let written = self.write_files(files, &checkpoint_trace).await?;
        self.sync_directories(&written).await?;
        self.dead_letters.drain().await?;
        self.audit_landings(&committing, &written)?;
        self.commit_tables(&written).await?;
        self.run_erasures()?;
        if let Commit::MovedAway(error) = self.commit(consumer, &committing).await? {
            warn!(
                %error,
                files = written.len(),
                "offsets not committed after a rebalance: the files are in their tables, and the partitions' new \
                 owners do not land those events again"
            );
            // Every partition is likely to have moved: leave all uncommitted work to the new owners.
            let partitions: Vec<TopicPartition> =
                committing.keys().chain(self.buffers.uncommitted()).cloned().collect();
            self.buffers.rolled(rolled_rows);
            self.revoke(&partitions);
            return Ok(());
        }
        let rows: u64 = written.values().map(|f| f.record.rows).sum();
        info!(
            files = written.len(),
            rows,
            partitions = committing.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "checkpoint: files landed, offsets committed"
        );
        for (source, progress) in &mut committing {
            let file_span = |purpose: usize, period: Option<i32>| {
                let key = PendingFileKey { purpose, source: source.clone(), period };
                written.get(&key).and_then(|file| file.span)
            };
            telemetry::record_landed(&source.topic, source.partition, std::mem::take(&mut progress.traced), file_span);
            telemetry::record_committed(&progress.tally, progress.started.elapsed());
        }
        checkpoint_span.end();
        let mut files: Vec<LandedFile> = written.into_values().map(|f| f.landed).collect();
        files.sort_by(|a, b| a.key.cmp(&b.key));
        self.report.files.extend(files);
        for (_, progress) in committing {
            self.report.absorb(progress.tally);
        }
        self.buffers.rolled(rolled_rows);
        self.publish_audit(false);
        Ok(())
    }

    /// Steps 2 and 3: records the files in the ledger, then writes them (several at a time).
    async fn write_files(
        &mut self,
        files: BTreeMap<PendingFileKey, PendingFile>,
        checkpoint_trace: &sluice_telemetry::TraceContext,
    ) -> Result<HashMap<PendingFileKey, WrittenFile>> {
        let mut writes = Vec::with_capacity(files.len());
        let mut ledger_entries = Vec::with_capacity(files.len());
        for (pending_key, mut pending) in files {
            let (router, tables) = (&self.router, &mut self.tables);
            let runtime = &router.purposes[pending_key.purpose];
            let plan = pending.rows.plan().clone();
            let dataset = format!("{}/{}", runtime.purpose.name(), plan.subject);
            let key = format!(
                "{dataset}/{}/{}",
                crate::lake::layout::event_time_directory(plan.event_time_partition, pending_key.period),
                ledger::fresh_file_name()
            );
            let batch = pending.rows.finish();
            let partition_column = crate::lake::layout::partition_column(plan.event_time_partition);
            let table_landing =
                tables.next_landing(&dataset, batch.schema_ref(), partition_column, &pending_key.source).await?;
            ledger_entries.push(LedgerEntry::Landed {
                key: key.clone(),
                topic: pending_key.source.topic.clone(),
                partition: pending_key.source.partition,
                first: pending.offsets.0,
                last: pending.offsets.1,
                table_landing: Some(table_landing.clone()),
            });
            let writer_schemas: Vec<String> = pending.writer_fingerprints.iter().map(|f| format!("{f:016x}")).collect();
            let sorted_by = sort_columns(&plan);
            // Nothing here may tell which source events the file holds or when it was written:
            // the ledger records that, in the state directory.
            let mut metadata = vec![
                ("sluice.version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
                ("sluice.purpose".to_owned(), runtime.purpose.name()),
                ("sluice.subject".to_owned(), plan.subject.clone()),
                ("sluice.reader_schema".to_owned(), reader_schema(&plan)),
                ("sluice.writer_schema_fingerprints".to_owned(), writer_schemas.join(",")),
                ("sluice.policy".to_owned(), runtime.setup.policy.label()),
                ("sluice.policy_hash".to_owned(), runtime.setup.policy.hash()),
                ("sluice.key_id".to_owned(), runtime.setup.keys.active().id().to_owned()),
                (SORTED_BY_KEY.to_owned(), sorted_by.join(",")),
            ];
            if let Some(column) = plan.patient_pseudonym_column() {
                metadata.push((PSEUDONYM_COLUMN_KEY.to_owned(), column.to_owned()));
            }
            let file_span = telemetry::file_span(checkpoint_trace, &key);
            let schema = batch.schema();
            let storage = Arc::clone(&self.storage);
            let subject = plan.subject.clone();
            writes.push(async move {
                let written = tokio::task::spawn_blocking(move || {
                    let batch = order_rows(&batch, &sorted_by).map_err(|error| Error::Storage {
                        location: storage.location().to_owned(),
                        operation: "sort rows for",
                        key: key.clone(),
                        reason: error.to_string(),
                    })?;
                    write_parquet_leaving_directory_unsynced(&storage, &key, &batch, metadata)
                })
                .await
                .expect("the file writer does not panic");
                (pending_key, subject, writer_schemas, (table_landing, schema), file_span, written)
            });
        }
        // Recorded before any file is written, so a crash leaves no file the ledger does not know.
        let lake = self.config.lake_dir.clone();
        block(|| ledger::append(&lake, &ledger_entries))?;
        // Files are written several at a time: each ends with an fsync, and the file system
        // commits concurrent syncs together, while the other core encodes the next file.
        let mut writes = futures::stream::iter(writes).buffer_unordered(CONCURRENT_FILE_WRITES);
        let mut written = HashMap::new();
        while let Some((pending_key, subject, writer_schemas, (table_landing, schema), mut file_span, landed)) =
            writes.next().await
        {
            let landed = landed?;
            let record = FileRecord::from(&landed);
            telemetry::record_file(
                &self.router.purpose_name(pending_key.purpose),
                &subject,
                landed.bytes,
                landed.rows as u64,
            );
            file_span.set_attributes([
                opentelemetry::KeyValue::new("sluice.rows", i64::try_from(landed.rows).unwrap_or(i64::MAX)),
                opentelemetry::KeyValue::new("sluice.bytes", i64::try_from(landed.bytes).unwrap_or(i64::MAX)),
            ]);
            let span = file_span.context();
            file_span.end();
            written.insert(pending_key, WrittenFile { span, landed, record, writer_schemas, table_landing, schema });
        }
        Ok(written)
    }

    /// Step 3: syncs each directory the files went to once, before anything refers to the files.
    async fn sync_directories(&self, written: &HashMap<PendingFileKey, WrittenFile>) -> Result<()> {
        let storage = Arc::clone(&self.storage);
        let keys: Vec<String> = written.values().map(|file| file.landed.key.clone()).collect();
        tokio::task::spawn_blocking(move || storage.sync_directories(keys.iter().map(String::as_str)))
            .await
            .expect("syncing directories does not panic")
    }

    /// Step 7: removes the rows of patients whose opt-out was read after their rows were decided.
    fn run_erasures(&mut self) -> Result<()> {
        let Some(erasures) = self.erasures.as_mut().filter(|e| e.has_work()) else { return Ok(()) };
        let lake = self.config.lake_dir.clone();
        let (storage, audit, consent) = (&self.storage, &mut self.audit, &self.consent);
        let register = &self.router.source_organisations;
        let purposes: Vec<_> = self.router.purposes.iter().map(|p| (&p.purpose, p.setup.policy.rules())).collect();
        let erased = block(|| erasures.run(&lake, storage, audit, &purposes, consent, register))?;
        self.report.erased_rows += erased;
        Ok(())
    }

    /// Step 8: commits the partitions' next offsets and records them in the lake.
    async fn commit(
        &mut self,
        consumer: &LanderConsumer,
        committing: &BTreeMap<TopicPartition, PartitionProgress>,
    ) -> Result<Commit> {
        if committing.is_empty() {
            return Ok(Commit::Done);
        }
        let mut offsets = TopicPartitionList::new();
        for (source, progress) in committing {
            offsets
                .add_partition_offset(&source.topic, source.partition, Offset::Offset(progress.next))
                .map_err(Error::kafka("prepare offsets"))?;
        }
        if let Err(error) = commit_with_retry(consumer, &offsets).await {
            if !lost_membership(&error) {
                return Err(Error::kafka("commit offsets")(error));
            }
            return Ok(Commit::MovedAway(error));
        }
        consumer.context().note_committed(committing.iter().map(|(source, progress)| (source.clone(), progress.next)));
        let lake = self.config.lake_dir.clone();
        let offsets =
            committing.iter().map(|(source, progress)| (source.topic.as_str(), source.partition, progress.next));
        block(|| crate::lake::record_committed(&lake, offsets))?;
        Ok(Commit::Done)
    }

    /// Step 6: one commit per dataset's table adding the checkpoint's files, each audited with
    /// the table's new version.
    async fn commit_tables(&mut self, written: &HashMap<PendingFileKey, WrittenFile>) -> Result<()> {
        let mut by_table: BTreeMap<String, Vec<(TableFile, TableLanding, arrow::datatypes::SchemaRef)>> =
            BTreeMap::new();
        for file in written.values() {
            let landed = &file.landed;
            let (dataset, table_file) = super::tables::table_file(&landed.key, landed.bytes, landed.rows as u64)
                .ok_or_else(|| Error::Table {
                    location: self.storage.describe(&landed.key),
                    operation: "commit to",
                    reason: "the file is not in a dataset's event-time directory".to_owned(),
                })?;
            by_table.entry(dataset).or_default().push((table_file, file.table_landing.clone(), file.schema.clone()));
        }
        let mut added: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (dataset, files) in &mut by_table {
            files.sort_by(|a, b| a.0.path.cmp(&b.0.path));
            added.insert(dataset.clone(), files.iter().map(|(file, ..)| format!("{dataset}/{}", file.path)).collect());
        }
        let versions = self.tables.commit(by_table).await?;
        for (table, version) in versions {
            let added = added.remove(&table).unwrap_or_default();
            self.audit.append(&AuditEvent::TableCommit(TableCommitRecord {
                table,
                version,
                change: "landing".to_owned(),
                added,
                removed: Vec::new(),
            }))?;
        }
        Ok(())
    }

    /// Copies new audit records to the audit topic, if one is configured, at most every
    /// [`AUDIT_PUBLISH_EVERY`] unless `now`. A failure is logged and left to the next attempt:
    /// the log file, already durable, is the authority.
    pub(super) fn publish_audit(&mut self, now: bool) {
        let Some(publisher) = &self.audit_publisher else { return };
        if !now && self.audit_published_at.is_some_and(|at| at.elapsed() < AUDIT_PUBLISH_EVERY) {
            return;
        }
        self.audit_published_at = Some(std::time::Instant::now());
        match block(|| publisher.publish_new(self.audit.path(), &self.config.lake_dir)) {
            Ok(published) => tracing::debug!(published, "audit records copied to the audit topic"),
            Err(error) => warn!(%error, "audit records not copied to the audit topic yet; trying again later"),
        }
    }

    /// One audit record per consumed partition range and purpose, with the file written for it.
    fn audit_landings(
        &mut self,
        committing: &BTreeMap<TopicPartition, PartitionProgress>,
        written: &HashMap<PendingFileKey, WrittenFile>,
    ) -> Result<()> {
        let mut records = Vec::new();
        for (source, progress) in committing {
            let subject = progress.tally.consumed.keys().next().cloned().unwrap_or_default();
            for (index, runtime) in self.router.purposes.iter().enumerate() {
                let purpose = runtime.purpose.name();
                let mut files: Vec<&WrittenFile> = written
                    .iter()
                    .filter(|(key, _)| key.purpose == index && key.source == *source)
                    .map(|(_, file)| file)
                    .collect();
                files.sort_by(|a, b| a.record.path.cmp(&b.record.path));
                let mut writer_schemas: Vec<String> = files.iter().flat_map(|f| f.writer_schemas.clone()).collect();
                writer_schemas.sort();
                writer_schemas.dedup();
                let tally = &progress.tally;
                let exemptions = runtime.setup.policy.rules().exemptions.as_slice();
                let released_under_exemption = tally
                    .released_under_exemption
                    .get(&purpose)
                    .into_iter()
                    .flatten()
                    .map(|(label, events)| {
                        let declared = exemptions.iter().find(|e| e.opt_out.label() == label);
                        let use_ = ExemptionUse {
                            events: *events,
                            legal_basis: declared.map(|e| e.legal_basis.clone()).unwrap_or_default(),
                            reference: declared.map(|e| e.reference.clone()).unwrap_or_default(),
                        };
                        (label.clone(), use_)
                    })
                    .collect();
                records.push(LandingRecord {
                    purpose: purpose.clone(),
                    topic: source.topic.clone(),
                    partition: source.partition,
                    offsets: (progress.first, progress.next - 1),
                    received: tally.consumed_total(),
                    invalid: tally.dead_lettered,
                    withheld: tally.withheld.get(&purpose).cloned().unwrap_or_default(),
                    released_under_exemption,
                    landed: tally.landed.get(&purpose).copied().unwrap_or(0),
                    already_in_table: tally.already_in_table.get(&purpose).copied().unwrap_or(0),
                    files: files.iter().map(|f| f.record.clone()).collect(),
                    policy: runtime.setup.policy.label(),
                    policy_hash: runtime.setup.policy.hash(),
                    key_id: runtime.setup.keys.active().id().to_owned(),
                    reader_schema: runtime.plans.get(&subject).map(|plan| reader_schema(plan)).unwrap_or_default(),
                    writer_schemas,
                });
            }
        }
        for record in records {
            self.audit.append(&AuditEvent::Landing(Box::new(record)))?;
        }
        Ok(())
    }
}

/// `subject vN fingerprint` of the schema a plan reads with.
fn reader_schema(plan: &LandingPlan) -> String {
    sluice_schemas::fingerprinted_label(&plan.subject, plan.reader_version, plan.reader_fingerprint)
}

/// Least time between two copies of the audit trail to the audit topic during a run.
const AUDIT_PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a checkpoint keeps retrying a commit the cluster cannot take (for example while the
/// broker restarts) before the lander gives up. The files are already durable; only the commit waits.
const COMMIT_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(120);

async fn commit_with_retry(
    consumer: &LanderConsumer,
    offsets: &TopicPartitionList,
) -> std::result::Result<(), rdkafka::error::KafkaError> {
    let deadline = std::time::Instant::now() + COMMIT_RETRY_FOR;
    let mut pause = std::time::Duration::from_millis(200);
    loop {
        match block(|| consumer.commit(offsets, CommitMode::Sync)) {
            Ok(()) => return Ok(()),
            Err(error)
                if !lost_membership(&error)
                    && consumer.client().fatal_error().is_none()
                    && std::time::Instant::now() < deadline =>
            {
                warn!(%error, "offset commit failed, retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
            }
            Err(error) => return Err(error),
        }
    }
}

/// Whether a commit failed because this lander is no longer the owner of its partitions.
fn lost_membership(error: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode::*;
    matches!(
        error.rdkafka_error_code(),
        Some(UnknownMemberId | IllegalGeneration | RebalanceInProgress | FencedInstanceId)
    )
}
