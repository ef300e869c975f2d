//! What a landing run holds between checkpoints, how each record is routed, and the
//! checkpoint that makes buffered rows durable before committing their offsets.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use futures::{StreamExt, stream::FuturesUnordered};
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer},
    message::{BorrowedMessage, Header, OwnedHeaders},
    producer::{DeliveryFuture, FutureProducer, FutureRecord},
};
use sluice_schemas::{Catalogue, Decoder, NhsNumber, subjects};
use tracing::{info, warn};

use super::{LanderConfig, LanderConsumer, LandingReport, block};
use crate::{
    Error, Result,
    batch::RowBuffer,
    consent::{ConsentChange, ConsentStore, Decision, Purpose, PurposeRules, is_gp_practice},
    parquet_sink::write_atomically,
    policy::{LandingPlan, Policy},
    pseudonymise::{PurposeKey, pseudonymise},
    record::RecordView,
};

/// Rows waiting for one file, and what they came from.
struct PendingFile {
    /// The rows.
    rows: RowBuffer,
    /// Offset of the first and last event in the file.
    offsets: (i64, i64),
    /// Fingerprints of the schemas the events were written with.
    writer_fingerprints: BTreeSet<u64>,
}

/// Everything a run holds between checkpoints.
pub(super) struct LandingState<'a> {
    config: &'a LanderConfig,
    policy: &'a Policy,
    /// Configured purposes with their keys.
    purposes: Vec<(Purpose, &'a PurposeKey)>,
    /// Landing plan of each clinical subject.
    plans: HashMap<String, Arc<LandingPlan>>,
    /// Subject of each clinical topic.
    subject_of_topic: HashMap<String, String>,
    /// Current consent state.
    pub(super) consent: ConsentStore,
    /// Rows per (purpose index, topic, partition).
    pending: BTreeMap<(usize, String, i32), PendingFile>,
    /// Rows in all pending files.
    pub(super) buffered_rows: usize,
    /// Per clinical partition consumed since the last checkpoint: the next offset to commit and
    /// what its events came to. Merged into `report` only once committed, and dropped if the
    /// partition is revoked first (the new owner re-reads those events).
    uncommitted: BTreeMap<(String, i32), (i64, LandingReport)>,
    /// Next offset expected per partition in this run, to notice skipped offsets.
    positions: HashMap<(String, i32), i64>,
    /// Producer for the dead-letter topic.
    dead_letter_producer: FutureProducer,
    /// Dead-letter records not yet acknowledged.
    dead_letters_in_flight: FuturesUnordered<DeliveryFuture>,
    /// Totals of committed work (and of consent changes).
    pub(super) report: LandingReport,
}

/// What one clinical event comes to, before anything is counted or buffered.
struct Routed {
    /// Pseudonymised row per purpose index that may receive the event.
    rows: Vec<(usize, Vec<crate::pseudonymise::Cell>)>,
    /// (purpose, reason label) for every purpose the event is withheld from.
    withheld: Vec<(String, &'static str)>,
    /// Plan the rows follow.
    plan: Arc<LandingPlan>,
    /// Fingerprint of the schema the event was written with.
    writer_fingerprint: u64,
}

impl<'a> LandingState<'a> {
    pub(super) fn new(
        client: &ClientConfig,
        config: &'a LanderConfig,
        policy: &'a Policy,
        keys: &'a BTreeMap<String, PurposeKey>,
        catalogue: &Catalogue,
    ) -> Result<Self> {
        let mut purposes = Vec::new();
        for name in &config.purposes {
            let purpose: Purpose = name.parse()?;
            let key = keys.get(&purpose.name()).ok_or_else(|| Error::MissingKey(purpose.name()))?;
            purposes.push((purpose, key));
        }
        let mut plans = HashMap::new();
        for subject in config.clinical_topics.keys() {
            let latest = catalogue.latest(subject).map_err(|e| Error::PolicyMismatch {
                policy: policy.label(),
                subject: subject.clone(),
                field: "<subject>".to_owned(),
                reason: e.to_string(),
            })?;
            plans.insert(subject.clone(), Arc::new(policy.plan(latest)?));
        }
        let mut producer_config = client.clone();
        producer_config.set("enable.idempotence", "true").set("acks", "all");
        let dead_letter_producer =
            producer_config.create().map_err(|source| Error::CreateClient { role: "dead-letter producer", source })?;
        Ok(LandingState {
            config,
            policy,
            purposes,
            plans,
            subject_of_topic: config.clinical_topics.iter().map(|(s, t)| (t.clone(), s.clone())).collect(),
            consent: ConsentStore::new(),
            pending: BTreeMap::new(),
            buffered_rows: 0,
            uncommitted: BTreeMap::new(),
            positions: HashMap::new(),
            dead_letter_producer,
            dead_letters_in_flight: FuturesUnordered::new(),
            report: LandingReport::default(),
        })
    }

    pub(super) fn handle_consent(&mut self, decoder: &Decoder<'_>, message: &BorrowedMessage<'_>) -> Result<()> {
        let change =
            decoder.decode(message.payload().unwrap_or_default()).map_err(|e| e.to_string()).and_then(|event| {
                if event.reader.subject() == subjects::CONSENT {
                    ConsentChange::from_record(&event.value)
                } else {
                    Err(format!("a `{}` event on the consent topic", event.reader.subject()))
                }
            });
        match change {
            Ok(change) => {
                self.consent.apply(change);
                self.report.consent_changes += 1;
            }
            Err(reason) => {
                self.dead_letter(message, &reason)?;
                self.report.consent_dead_lettered += 1;
            }
        }
        Ok(())
    }

    pub(super) fn handle_clinical(&mut self, decoder: &Decoder<'_>, message: &impl Message) -> Result<()> {
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        let key = (topic.to_owned(), partition);
        let expected_subject = self.subject_of_topic.get(topic).cloned().unwrap_or_default();
        let routed = self.route(decoder, message, &expected_subject);

        let (next, tally) = self.uncommitted.entry(key.clone()).or_insert_with(|| (offset, LandingReport::default()));
        *next = offset + 1;
        if let Some(expected) = self.positions.insert(key, offset + 1)
            && offset > expected
        {
            warn!(topic, partition, skipped = offset - expected, "offsets skipped: the broker no longer holds them");
            tally.skipped_offsets += (offset - expected) as u64;
        }
        *tally.consumed.entry(expected_subject).or_default() += 1;
        let routed = match routed {
            Ok(routed) => routed,
            Err(reason) => {
                warn!(topic, partition, offset, reason, "record sent to the dead-letter topic");
                tally.dead_lettered += 1;
                return self.dead_letter(message, &reason);
            }
        };
        for (purpose, reason) in routed.withheld {
            *tally.withheld.entry(purpose).or_default().entry(reason.to_owned()).or_default() += 1;
        }
        for (index, row) in routed.rows {
            *tally.landed.entry(self.purposes[index].0.name()).or_default() += 1;
            let pending = self.pending.entry((index, topic.to_owned(), partition)).or_insert_with(|| PendingFile {
                rows: RowBuffer::new(routed.plan.clone()),
                offsets: (offset, offset),
                writer_fingerprints: BTreeSet::new(),
            });
            pending.rows.push(row);
            pending.offsets.1 = offset;
            pending.writer_fingerprints.insert(routed.writer_fingerprint);
            self.buffered_rows += 1;
        }
        Ok(())
    }

    /// Decodes the event, checks consent for every purpose and pseudonymises it for each purpose
    /// that may receive it. Changes nothing: an `Err` is the reason to dead-letter the whole event.
    fn route(&self, decoder: &Decoder<'_>, message: &impl Message, expected_subject: &str) -> Result<Routed, String> {
        let event = decoder.decode(message.payload().unwrap_or_default()).map_err(|e| e.to_string())?;
        if event.reader.subject() != expected_subject {
            return Err(format!("a `{}` event on the topic of `{expected_subject}`", event.reader.subject()));
        }
        let plan = self.plans.get(expected_subject).ok_or("no landing plan for the subject")?;
        let view = RecordView::new(&event.value).ok_or("the event is not a record")?;
        let nhs_number = view.string("nhs_number").and_then(|digits| NhsNumber::parse(digits).ok());
        let gp_sourced = view.string("source_organisation").is_some_and(is_gp_practice);
        let mut routed = Routed {
            rows: Vec::new(),
            withheld: Vec::new(),
            plan: plan.clone(),
            writer_fingerprint: event.writer.fingerprint(),
        };
        for (index, (purpose, key)) in self.purposes.iter().enumerate() {
            // Every purpose has the default rules (no exemptions, opt-out studies) until policy
            // files declare their own.
            match self.consent.decide(purpose, &PurposeRules::default(), nhs_number, gp_sourced) {
                Decision::Release { .. } => routed.rows.push((index, pseudonymise(plan, key, &event.value)?)),
                Decision::Withhold(reason) => routed.withheld.push((purpose.name(), reason.label())),
            }
        }
        Ok(routed)
    }

    /// Forgets everything buffered for partitions this lander no longer owns: nothing of theirs
    /// is written or committed here, and their new owner re-reads them from the committed offsets.
    pub(super) fn revoke(&mut self, partitions: &[(String, i32)]) {
        let mut dropped_rows = 0;
        self.pending.retain(|(_, topic, partition), pending| {
            let revoked = partitions.iter().any(|(t, p)| t == topic && p == partition);
            if revoked {
                dropped_rows += pending.rows.rows();
            }
            !revoked
        });
        self.buffered_rows -= dropped_rows;
        for key in partitions {
            self.uncommitted.remove(key);
            self.positions.remove(key);
        }
        info!(
            partitions = partitions.len(),
            dropped_rows, "partitions revoked: their uncommitted rows are left to the new owner"
        );
    }

    /// Clinical messages consumed so far, committed or not.
    pub(super) fn consumed_so_far(&self) -> u64 {
        self.report.consumed_total() + self.uncommitted.values().map(|(_, tally)| tally.consumed_total()).sum::<u64>()
    }

    fn dead_letter(&mut self, message: &impl Message, reason: &str) -> Result<()> {
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let headers = OwnedHeaders::new()
            .insert(Header { key: "sluice.dead_letter.reason", value: Some(reason) })
            .insert(Header { key: "sluice.dead_letter.source_topic", value: Some(message.topic()) })
            .insert(Header { key: "sluice.dead_letter.source_partition", value: Some(&partition) })
            .insert(Header { key: "sluice.dead_letter.source_offset", value: Some(&offset) });
        let mut record = FutureRecord::to(&self.config.dead_letter_topic)
            .payload(message.payload().unwrap_or_default())
            .headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        let delivery = self
            .dead_letter_producer
            .send_result(record)
            .map_err(|(source, _)| Error::DeadLetter { topic: self.config.dead_letter_topic.clone(), source })?;
        self.dead_letters_in_flight.push(delivery);
        Ok(())
    }

    pub(super) fn has_uncommitted(&self) -> bool {
        !self.uncommitted.is_empty()
    }

    pub(super) fn caught_up(
        &self,
        targets: &BTreeMap<(String, i32), i64>,
        committed: &HashMap<(String, i32), i64>,
    ) -> bool {
        targets.iter().all(|(key, target)| {
            let position = self.positions.get(key).or_else(|| committed.get(key)).copied().unwrap_or(0);
            position >= *target
        })
    }

    /// Writes every pending file, waits for dead letters, then commits the consumed offsets.
    pub(super) async fn checkpoint(&mut self, consumer: &LanderConsumer) -> Result<()> {
        let mut written = Vec::new();
        for ((index, topic, partition), mut pending) in std::mem::take(&mut self.pending) {
            let (purpose, key) = &self.purposes[index];
            let plan = pending.rows.plan().clone();
            let path = self
                .config
                .lake_dir
                .join(purpose.name())
                .join(&plan.subject)
                .join(format!("{topic}+{partition}+{:020}-{:020}.parquet", pending.offsets.0, pending.offsets.1));
            let metadata = vec![
                ("sluice.version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
                ("sluice.purpose".to_owned(), purpose.name()),
                ("sluice.subject".to_owned(), plan.subject.clone()),
                (
                    "sluice.reader_schema".to_owned(),
                    format!("{} v{} {:016x}", plan.subject, plan.reader_version, plan.reader_fingerprint),
                ),
                (
                    "sluice.writer_schema_fingerprints".to_owned(),
                    pending.writer_fingerprints.iter().map(|f| format!("{f:016x}")).collect::<Vec<_>>().join(","),
                ),
                ("sluice.policy".to_owned(), self.policy.label()),
                ("sluice.policy_hash".to_owned(), self.policy.hash()),
                ("sluice.key_id".to_owned(), key.id().to_owned()),
                (
                    "sluice.source".to_owned(),
                    format!("{topic}/{partition}/{}-{}", pending.offsets.0, pending.offsets.1),
                ),
            ];
            let batch = pending.rows.finish();
            let landed = tokio::task::spawn_blocking(move || write_atomically(&path, &batch, metadata))
                .await
                .expect("the file writer does not panic")?;
            written.push(landed);
        }
        while let Some(delivery) = self.dead_letters_in_flight.next().await {
            let topic = self.config.dead_letter_topic.clone();
            match delivery {
                Ok(Ok(_)) => {}
                Ok(Err((source, _))) => return Err(Error::DeadLetter { topic, source }),
                Err(_) => return Err(Error::DeadLetter { topic, source: rdkafka::error::KafkaError::Canceled }),
            }
        }
        if !self.uncommitted.is_empty() {
            let mut offsets = TopicPartitionList::new();
            for ((topic, partition), (next, _)) in &self.uncommitted {
                offsets
                    .add_partition_offset(topic, *partition, Offset::Offset(*next))
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
                for file in &written {
                    file.withdraw()?;
                }
                let partitions: Vec<(String, i32)> = self.uncommitted.keys().cloned().collect();
                self.revoke(&partitions);
                self.buffered_rows = 0;
                return Ok(());
            }
        }
        let rows: usize = written.iter().map(|f| f.rows).sum();
        info!(
            files = written.len(),
            rows,
            partitions = self.uncommitted.len(),
            "checkpoint: files landed, offsets committed"
        );
        self.report.files.extend(written);
        for (_, (_, tally)) in std::mem::take(&mut self.uncommitted) {
            self.report.absorb(tally);
        }
        self.buffered_rows = 0;
        Ok(())
    }
}

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
