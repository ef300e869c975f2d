//! The checkpoint: buffered rows become durable files, erasures owed to later opt-outs are
//! done, dead letters are acknowledged and the audit trail is appended, and only then are the
//! consumed offsets committed. An offset is never committed before everything it covers is
//! durable and recorded.
//!
//! Files get random names and their rows are sorted by keyed pseudonyms; which source offsets a
//! file holds is recorded in the landing ledger (see [`crate::lake::ledger`]) before it is
//! written, never in the file.

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
    state::{LandingState, PartitionProgress, PendingFile, PendingKey},
    telemetry,
};
use crate::{
    Error, Result,
    audit::{AuditEvent, ExemptionUse, FileRecord, LandingRecord, WithdrawalRecord},
    batch::{SORTED_BY_KEY, order_rows, sort_columns},
    erase::PSEUDONYM_COLUMN_KEY,
    lake::ledger::{self, LedgerEntry},
    lake::parquet::{LandedFile, write_parquet_leaving_directory_unsynced},
    policy::LandingPlan,
};

/// Files written at the same time at a checkpoint.
const CONCURRENT_FILE_WRITES: usize = 8;

/// What was written for one (purpose index, topic, partition) at this checkpoint.
struct WrittenFile {
    /// The context of its `write parquet` span, for the events' spans to link to.
    span: Option<sluice_telemetry::TraceContext>,
    landed: LandedFile,
    record: FileRecord,
    writer_schemas: Vec<String>,
}

impl LandingState<'_> {
    /// Writes every pending file, does owed erasures, waits for dead letters, appends the audit
    /// records, then commits the consumed offsets.
    /// `only` limits it to some source partitions (files rolling); `None` rolls every partition.
    pub(super) async fn checkpoint(
        &mut self,
        consumer: &LanderConsumer,
        only: Option<&BTreeSet<(String, i32)>>,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        let selected =
            |topic: &str, partition: i32| only.is_none_or(|set| set.contains(&(topic.to_owned(), partition)));
        let (rolling, kept): (BTreeMap<PendingKey, PendingFile>, BTreeMap<PendingKey, PendingFile>) =
            std::mem::take(&mut self.pending).into_iter().partition(|((_, t, p, _), _)| selected(t, *p));
        self.pending = kept;
        let mut committing = BTreeMap::new();
        for (key, progress) in std::mem::take(&mut self.uncommitted) {
            if selected(&key.0, key.1) {
                committing.insert(key, progress);
            } else {
                self.uncommitted.insert(key, progress);
            }
        }
        let rolled_rows: usize = rolling.values().map(|p| p.rows.rows()).sum();
        let mut written: HashMap<PendingKey, WrittenFile> = HashMap::new();
        let (checkpoint_span, checkpoint_trace) = telemetry::checkpoint_span(committing.len());
        let mut writes = Vec::with_capacity(rolling.len());
        let mut ledger_entries = Vec::with_capacity(rolling.len());
        for ((index, topic, partition, period), mut pending) in rolling {
            let runtime = &self.purposes[index];
            let plan = pending.rows.plan().clone();
            let key = format!(
                "{}/{}/{}/{}",
                runtime.purpose.name(),
                plan.subject,
                crate::lake::layout::event_time_directory(plan.event_time_partition, period),
                ledger::fresh_file_name()
            );
            ledger_entries.push(LedgerEntry::Landed {
                key: key.clone(),
                topic: topic.clone(),
                partition,
                first: pending.offsets.0,
                last: pending.offsets.1,
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
            let batch = pending.rows.finish();
            let file_span = telemetry::file_span(&checkpoint_trace, &key);
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
                ((index, topic, partition, period), subject, writer_schemas, file_span, written)
            });
        }
        // Recorded before any file is written, so a crash leaves no file the ledger does not know.
        let lake = self.config.lake_dir.clone();
        block(|| ledger::append(&lake, &ledger_entries))?;
        // Files are written several at a time: each ends with an fsync, and the file system
        // commits concurrent syncs together, while the other core encodes the next file.
        let mut writes = futures::stream::iter(writes).buffer_unordered(CONCURRENT_FILE_WRITES);
        while let Some((pending_key, subject, writer_schemas, mut file_span, landed)) = writes.next().await {
            let landed = landed?;
            let record = FileRecord::from(&landed);
            telemetry::record_file(
                &self.purposes[pending_key.0].purpose.name(),
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
            written.insert(pending_key, WrittenFile { span, landed, record, writer_schemas });
        }
        // Each directory the files went to is synced once, before anything refers to the files.
        let storage = Arc::clone(&self.storage);
        let keys: Vec<String> = written.values().map(|file| file.landed.key.clone()).collect();
        tokio::task::spawn_blocking(move || storage.sync_directories(keys.iter().map(String::as_str)))
            .await
            .expect("syncing directories does not panic")?;

        if let Some(erasures) = self.erasures.as_mut().filter(|e| e.has_work()) {
            let lake = self.config.lake_dir.clone();
            let (storage, audit, consent) = (&self.storage, &mut self.audit, &self.consent);
            let register = &self.source_organisations;
            let purposes: Vec<_> = self.purposes.iter().map(|p| (&p.purpose, p.setup.policy.rules())).collect();
            let erased = block(|| erasures.run(&lake, storage, audit, &purposes, consent, register))?;
            self.report.erased_rows += erased;
        }

        while let Some(delivery) = self.dead_letters_in_flight.next().await {
            let topic = self.config.dead_letter_topic.clone();
            match delivery {
                Ok(Ok(_)) => {}
                Ok(Err((source, _))) => return Err(Error::DeadLetter { topic, source }),
                Err(_) => return Err(Error::DeadLetter { topic, source: rdkafka::error::KafkaError::Canceled }),
            }
        }

        self.audit_landings(&committing, &written)?;

        if !committing.is_empty() {
            let mut offsets = TopicPartitionList::new();
            for ((topic, partition), progress) in &committing {
                offsets
                    .add_partition_offset(topic, *partition, Offset::Offset(progress.next))
                    .map_err(Error::kafka("prepare offsets"))?;
            }
            if let Err(error) = commit_with_retry(consumer, &offsets).await {
                if !lost_membership(&error) {
                    return Err(Error::kafka("commit offsets")(error));
                }
                // The group moved these partitions while the files were being written: the new
                // owner re-reads the uncommitted events, so withdraw this checkpoint's files and
                // let it land them, once.
                warn!(%error, files = written.len(), "commit refused after a rebalance: withdrawing this checkpoint's files");
                let mut withdrawn = Vec::new();
                for file in written.values() {
                    if block(|| file.landed.withdraw(&self.storage))? {
                        withdrawn.push(file.record.clone());
                    }
                }
                self.audit.append(&AuditEvent::Withdrawal(WithdrawalRecord {
                    reason: "offsets not committed: the partitions moved to another lander, which lands them again"
                        .to_owned(),
                    files: withdrawn,
                }))?;
                // Every partition is likely to have moved: leave all uncommitted work to the new owners.
                let partitions: Vec<(String, i32)> =
                    committing.keys().chain(self.uncommitted.keys()).cloned().collect();
                self.buffered_rows -= rolled_rows;
                self.revoke(&partitions);
                return Ok(());
            }
        }
        let rows: u64 = written.values().map(|f| f.record.rows).sum();
        info!(
            files = written.len(),
            rows,
            partitions = committing.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "checkpoint: files landed, offsets committed"
        );
        if !committing.is_empty() {
            consumer.context().note_committed(committing.iter().map(|(key, progress)| (key.clone(), progress.next)));
            let lake = self.config.lake_dir.clone();
            let offsets: Vec<(String, i32, i64)> =
                committing.iter().map(|((t, p), progress)| (t.clone(), *p, progress.next)).collect();
            block(|| crate::lake::record_committed(&lake, offsets.iter().map(|(t, p, n)| (t.as_str(), *p, *n))))?;
        }
        for ((topic, partition), progress) in &mut committing {
            let file_span = |index: usize, day: Option<i32>| {
                written.get(&(index, topic.clone(), *partition, day)).and_then(|file| file.span)
            };
            telemetry::record_landed(topic, *partition, std::mem::take(&mut progress.traced), file_span);
            telemetry::record_committed(&progress.tally, progress.started.elapsed());
        }
        checkpoint_span.end();
        let mut files: Vec<LandedFile> = written.into_values().map(|f| f.landed).collect();
        files.sort_by(|a, b| a.key.cmp(&b.key));
        self.report.files.extend(files);
        for (_, progress) in committing {
            self.report.absorb(progress.tally);
        }
        self.buffered_rows -= rolled_rows;
        self.publish_audit(false);
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
        committing: &BTreeMap<(String, i32), PartitionProgress>,
        written: &HashMap<PendingKey, WrittenFile>,
    ) -> Result<()> {
        let mut records = Vec::new();
        for ((topic, partition), progress) in committing {
            let subject = progress.tally.consumed.keys().next().cloned().unwrap_or_default();
            for (index, runtime) in self.purposes.iter().enumerate() {
                let purpose = runtime.purpose.name();
                let mut files: Vec<&WrittenFile> = written
                    .iter()
                    .filter(|((i, t, p, _), _)| *i == index && t == topic && p == partition)
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
                    topic: topic.clone(),
                    partition: *partition,
                    offsets: (progress.first, progress.next - 1),
                    received: tally.consumed_total(),
                    invalid: tally.dead_lettered,
                    withheld: tally.withheld.get(&purpose).cloned().unwrap_or_default(),
                    released_under_exemption,
                    landed: tally.landed.get(&purpose).copied().unwrap_or(0),
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
