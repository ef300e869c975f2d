//! What a landing run holds between checkpoints, and how each record is routed: decoded,
//! checked against every purpose's consent rules, and pseudonymised under each purpose's policy.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use futures::stream::FuturesUnordered;
use rdkafka::{
    ClientConfig, Message,
    message::{BorrowedMessage, Header, OwnedHeaders},
    producer::{DeliveryFuture, FutureProducer, FutureRecord},
};
use sluice_schemas::{Catalogue, Decoder, subjects};
use tracing::{info, warn};

use super::{LanderConfig, LandingReport, PurposeSetup, erasure::OptOutErasures, event_clock::EventClock};
use crate::{
    Error, Result,
    audit::{AuditEvent, AuditLog, AuditPublisher, ConsentUnreadableRecord, FileRecord, WithdrawalRecord, file_record},
    batch::RowBuffer,
    consent::{
        ConsentChange, ConsentStore, Decision, Purpose, SourceOrganisations, event_consent_inputs,
        patient_of_record_key,
    },
    lake::storage::{LakeStorage, ObjectTag},
    policy::LandingPlan,
    pseudonymise::{Cell, pseudonymise},
    record::RecordView,
};

/// librdkafka's `message.max.bytes` for the dead-letter producer unless the client sets it.
/// A poison record is copied to the dead-letter topic as it was read, and librdkafka refuses
/// locally any message over its default of 1,000,000 bytes, less than a broker accepts
/// (1,048,588 by default): a record that another producer wrote within the broker's limit
/// would fail the lander at the same offset on every run, and landing would never get past
/// it. With this limit the broker's own `max.message.bytes` for the dead-letter topic decides.
const DEAD_LETTER_MAX_BYTES: &str = "16777216";

/// One purpose as the run uses it.
pub(super) struct PurposeRuntime<'a> {
    /// The purpose.
    pub(super) purpose: Purpose,
    /// Its policy and keys.
    pub(super) setup: &'a PurposeSetup,
    /// Its landing plan for each clinical subject.
    pub(super) plans: HashMap<String, Arc<LandingPlan>>,
}

/// Rows waiting for one file, and what they came from.
pub(super) struct PendingFile {
    /// The rows.
    pub(super) rows: RowBuffer,
    /// Offset of the first and last event in the file.
    pub(super) offsets: (i64, i64),
    /// Fingerprints of the schemas the events were written with.
    pub(super) writer_fingerprints: BTreeSet<u64>,
}

/// Which file a row goes to: purpose index, source topic and partition, and the UTC day or
/// month of the event as landed (days or months since 1970-01-01, as the purpose's policy
/// partitions; `None` when the policy lands no event time).
pub(super) type PendingKey = (usize, String, i32, Option<i32>);

/// A clinical partition consumed since the last checkpoint.
#[derive(Debug)]
pub(super) struct PartitionProgress {
    /// When its first event since the last roll was read, for rolling by age.
    pub(super) started: std::time::Instant,
    /// First offset consumed since the last checkpoint.
    pub(super) first: i64,
    /// Next offset to commit.
    pub(super) next: i64,
    /// What the events came to, per purpose. Merged into the run's report only once committed.
    pub(super) tally: LandingReport,
    /// Sampled events whose `land` spans are recorded at the commit (see [`super::telemetry`]).
    pub(super) traced: Vec<super::telemetry::TracedEvent>,
}

/// Everything a run holds between checkpoints.
pub(super) struct LandingState<'a> {
    pub(super) config: &'a LanderConfig,
    /// Configured purposes, in configuration order.
    pub(super) purposes: Vec<PurposeRuntime<'a>>,
    /// Subject of each clinical topic.
    subject_of_topic: HashMap<String, String>,
    /// Current consent state.
    pub(super) consent: ConsentStore,
    /// What kind of organisation each sender is: decides what a Type 1 opt-out covers, here and
    /// in erasure.
    pub(super) source_organisations: SourceOrganisations,
    /// Rows per file to be written.
    pub(super) pending: BTreeMap<PendingKey, PendingFile>,
    /// Rows in all pending files.
    pub(super) buffered_rows: usize,
    /// Clinical partitions consumed since the last checkpoint. Dropped if the partition is
    /// revoked first (the new owner re-reads those events).
    pub(super) uncommitted: BTreeMap<(String, i32), PartitionProgress>,
    /// Next offset expected per partition in this run, to notice skipped offsets.
    pub(super) positions: HashMap<(String, i32), i64>,
    /// Event-time progress per partition in this run, for rolling at window boundaries.
    clocks: HashMap<(String, i32), EventClock>,
    /// Whether files roll when a partition's true event time enters a new window. Not when any
    /// purpose shifts time: its files would then end at true midnights, grouping its rows by
    /// true day.
    roll_at_event_time_windows: bool,
    /// Producer for the dead-letter topic.
    dead_letter_producer: FutureProducer,
    /// Dead-letter records not yet acknowledged.
    pub(super) dead_letters_in_flight: FuturesUnordered<DeliveryFuture>,
    /// The audit trail, appended at every checkpoint before offsets are committed.
    pub(super) audit: AuditLog,
    /// Where the datasets are stored.
    pub(super) storage: Arc<LakeStorage>,
    /// Copies the audit trail to the audit topic, when one is configured.
    pub(super) audit_publisher: Option<AuditPublisher<'a>>,
    /// When the trail was last copied.
    pub(super) audit_published_at: Option<std::time::Instant>,
    /// Erasures owed to opt-outs read after rows were landed, when configured.
    pub(super) erasures: Option<OptOutErasures>,
    /// Totals of committed work (and of consent changes).
    pub(super) report: LandingReport,
    /// The landing ledger as last read, for withdrawing files at newly assigned partitions.
    ledger: crate::lake::ledger::CachedLedger,
}

/// What one clinical event comes to, before anything is counted or buffered.
struct Routed {
    /// Pseudonymised row per purpose index that may receive the event, with the plan it follows.
    rows: Vec<(usize, Arc<LandingPlan>, Vec<Cell>)>,
    /// (purpose index, reason label) for every purpose the event is withheld from.
    withheld: Vec<(usize, &'static str)>,
    /// (purpose index, opt-out label) for every exemption the release relied on.
    exempted: Vec<(usize, &'static str)>,
    /// Fingerprint of the schema the event was written with.
    writer_fingerprint: u64,
    /// When the event occurred at its source (microseconds since the Unix epoch), if it says.
    event_time: Option<i64>,
    /// Its `source_organisation` when the register of source organisations does not list it
    /// (then a Type 1 opt-out covers it), as [`crate::consent::SourceOrganisations::report_label`]
    /// gives it.
    unknown_organisation: Option<String>,
}

/// A clinical event read and routed, not yet counted or buffered.
pub(super) struct ReadEvent {
    /// Its source topic and partition.
    key: (String, i32),
    /// Its offset there.
    offset: i64,
    /// The subject its topic carries.
    subject: String,
    /// Where it goes, or why it goes to the dead-letter topic.
    routed: Result<Routed, String>,
}

impl<'a> LandingState<'a> {
    pub(super) fn new(
        client: &ClientConfig,
        config: &'a LanderConfig,
        setups: &'a BTreeMap<String, PurposeSetup>,
        catalogue: &'a Catalogue,
    ) -> Result<Self> {
        let storage = Arc::new(config.storage()?);
        let mut purposes = Vec::new();
        for name in &config.purposes {
            let purpose: Purpose = name.parse()?;
            let setup = setups.get(&purpose.name()).ok_or_else(|| Error::NoPolicy(purpose.name()))?;
            if setup.policy.purpose() != purpose.name() {
                return Err(Error::PolicyForAnotherPurpose {
                    policy: setup.policy.label(),
                    written_for: setup.policy.purpose().to_owned(),
                    purpose: purpose.name(),
                });
            }
            let mut plans = HashMap::new();
            for subject in config.clinical_topics.keys() {
                let latest = catalogue.latest(subject).map_err(|e| Error::PolicyMismatch {
                    policy: setup.policy.label(),
                    subject: subject.clone(),
                    field: "<subject>".to_owned(),
                    reason: e.to_string(),
                })?;
                let plan = setup.policy.plan(latest)?;
                if config.erase_on_opt_out && plan.patient_pseudonym_column().is_none() {
                    // Rows without a pseudonym could never be found again to erase: refuse now
                    // rather than fail at the first opt-out.
                    return Err(Error::PolicyMismatch {
                        policy: setup.policy.label(),
                        subject: latest.label(),
                        field: setup.policy.patient_identifier().to_owned(),
                        reason: "erase_on_opt_out needs the patient identifier landed as an hmac pseudonym".to_owned(),
                    });
                }
                let dataset = format!("{}/{subject}", purpose.name());
                crate::dictionary::write(&storage, &dataset, &crate::dictionary::render(&setup.policy, latest, &plan))?;
                plans.insert(subject.clone(), Arc::new(plan));
            }
            info!(
                purpose = %purpose,
                policy = setup.policy.label(),
                policy_hash = setup.policy.hash(),
                key_id = setup.keys.active().id(),
                "purpose ready"
            );
            purposes.push(PurposeRuntime { purpose, setup, plans });
        }
        let names: Vec<String> = purposes.iter().map(|p| p.purpose.name()).collect();
        crate::keyring::check_distinct(names.iter().map(String::as_str).zip(purposes.iter().map(|p| &p.setup.keys)))
            .map_err(Error::SharedKey)?;
        let roll_at_event_time_windows = !purposes.iter().any(|p| p.setup.policy.shifts_time());
        let mut producer_config = client.clone();
        producer_config.set("enable.idempotence", "true").set("acks", "all");
        if client.get("message.max.bytes").is_none() {
            producer_config.set("message.max.bytes", DEAD_LETTER_MAX_BYTES);
        }
        let dead_letter_producer =
            producer_config.create().map_err(|source| Error::CreateClient { role: "dead-letter producer", source })?;
        let source_organisations = match &config.source_organisations {
            Some(path) => SourceOrganisations::load(path)?,
            None => SourceOrganisations::built_in().clone(),
        };
        info!(organisations = source_organisations.len(), "register of source organisations read");
        let erasures = if config.erase_on_opt_out {
            let rings = purposes.iter().map(|p| (p.purpose.name(), p.setup.keys.clone())).collect();
            Some(OptOutErasures::open(&config.lake_dir, rings)?)
        } else {
            None
        };
        Ok(LandingState {
            config,
            purposes,
            subject_of_topic: config.clinical_topics.iter().map(|(s, t)| (t.clone(), s.clone())).collect(),
            consent: ConsentStore::new(),
            pending: BTreeMap::new(),
            buffered_rows: 0,
            uncommitted: BTreeMap::new(),
            positions: HashMap::new(),
            clocks: HashMap::new(),
            roll_at_event_time_windows,
            dead_letter_producer,
            dead_letters_in_flight: FuturesUnordered::new(),
            audit: AuditLog::open(&config.audit_log_path())?,
            storage,
            audit_publisher: match &config.audit_topic {
                Some(topic) => Some(AuditPublisher::new(client, topic, catalogue)?),
                None => None,
            },
            audit_published_at: None,
            erasures,
            report: LandingReport::default(),
            ledger: Default::default(),
            source_organisations,
        })
    }

    /// Applies one consent record. A record that cannot be read holds back the patient its key
    /// names (every purpose but direct care) until a readable record under the same key comes,
    /// and is dead-lettered, counted and audited; one whose key names nobody stops the lander
    /// unless it has been reviewed ([`LanderConfig::reviewed_consent_records`]).
    pub(super) fn handle_consent(&mut self, decoder: &Decoder<'_>, message: &BorrowedMessage<'_>) -> Result<()> {
        let change = decoder
            .decode(message.payload().unwrap_or_default())
            .map_err(|e| e.to_string())
            .and_then(|event| {
                if event.reader.subject() == subjects::CONSENT {
                    ConsentChange::from_record(&event.value)
                } else {
                    Err(format!("a `{}` event on the consent topic", event.reader.subject()))
                }
            })
            .and_then(|change| {
                // A key that is not the whole change could be compacted away by another record's.
                if message.key() == Some(change.record_key().as_bytes()) {
                    Ok(change)
                } else {
                    Err("the record's key is not the key of the change it holds, so compacting the consent topic could \
                         drop it"
                        .to_owned())
                }
            });
        let reason = match change {
            Ok(change) => {
                if let Some(key) = message.key() {
                    self.consent.readable_record(&String::from_utf8_lossy(key));
                }
                let (nhs_number, deny) = (change.nhs_number, change.deny);
                self.consent.apply(change);
                self.report.consent_changes += 1;
                if let Some(erasures) = &mut self.erasures {
                    erasures.note(message.partition(), message.offset(), deny.then_some(nhs_number));
                }
                return Ok(());
            }
            Err(reason) => reason,
        };
        let (partition, offset) = (message.partition(), message.offset());
        let patient = message.key().and_then(patient_of_record_key);
        match patient {
            Some(patient) => {
                let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                self.consent.hold_unreadable(&key, patient);
            }
            None if self.config.reviewed_consent_records.contains(&(partition, offset)) => {
                warn!(
                    partition,
                    offset, "consent record passed after review: unreadable, and its key names no patient"
                );
            }
            None => {
                return Err(Error::ConsentRecordWithoutPatient {
                    topic: self.config.consent_topic.clone(),
                    partition,
                    offset,
                    reason,
                });
            }
        }
        warn!(
            partition,
            offset,
            reason,
            patient_held = patient.is_some(),
            "consent record unreadable: sent to the dead-letter topic; the patient it names is held back"
        );
        self.dead_letter(message, &reason)?;
        self.report.consent_dead_lettered += 1;
        self.audit.append(&AuditEvent::ConsentUnreadable(ConsentUnreadableRecord {
            topic: self.config.consent_topic.clone(),
            partition,
            offset,
            reason,
            patient_held: patient.is_some(),
            patients_held: self.consent.held_patients() as u64,
        }))?;
        if let Some(erasures) = &mut self.erasures {
            erasures.note(partition, offset, None);
        }
        Ok(())
    }

    /// Reads one clinical event: withdraws what an earlier owner left uncommitted if it is the
    /// partition's first event here, then decodes and routes it. Nothing is counted or buffered
    /// until [`Self::buffer_clinical`].
    pub(super) fn read_clinical(&mut self, decoder: &Decoder<'_>, message: &impl Message) -> Result<ReadEvent> {
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        let key = (topic.to_owned(), partition);
        let subject = self.subject_of_topic.get(topic).cloned().unwrap_or_default();
        if !self.positions.contains_key(&key) {
            // First event of this partition since it was assigned here: files an earlier owner
            // wrote from this offset on were never committed, and are about to be landed again.
            self.withdraw_uncommitted_files(topic, partition, offset, &subject)?;
        }
        let routed = self.route(decoder, message, &subject);
        Ok(ReadEvent { key, offset, subject, routed })
    }

    /// The partition whose files should roll before `event` is buffered, because the event is
    /// the first of its partition in a later event-time window than everything buffered for it
    /// (see [`LanderConfig::event_time_window_secs`]).
    pub(super) fn window_closed_by(&self, event: &ReadEvent) -> Option<(String, i32)> {
        if !self.roll_at_event_time_windows {
            return None;
        }
        let window = self.event_time_window(event)?;
        let clock = self.clocks.get(&event.key)?;
        let holds_rows = self.uncommitted.contains_key(&event.key);
        (holds_rows && clock.in_order() && clock.watermark.is_some_and(|latest| window > latest))
            .then(|| event.key.clone())
    }

    /// Whether this lander still reads the event's partition (a checkpoint can lose it).
    pub(super) fn still_reading(&self, event: &ReadEvent) -> bool {
        self.positions.contains_key(&event.key)
    }

    fn event_time_window(&self, event: &ReadEvent) -> Option<i64> {
        let micros = event.routed.as_ref().ok()?.event_time?;
        let window_micros = i64::try_from(self.config.event_time_window_secs.max(1)).ok()?.saturating_mul(1_000_000);
        Some(micros.div_euclid(window_micros))
    }

    /// Counts a read event and buffers its rows (or sends it to the dead-letter topic).
    pub(super) fn buffer_clinical(&mut self, message: &impl Message, event: ReadEvent) -> Result<()> {
        let window = self.event_time_window(&event);
        let traced = super::telemetry::trace_event(message, || self.outcome_attributes(&event.routed));
        let ReadEvent { key, offset, subject: expected_subject, routed } = event;
        let (topic, partition) = (key.0.clone(), key.1);
        let progress = self.uncommitted.entry(key.clone()).or_insert_with(|| PartitionProgress {
            started: std::time::Instant::now(),
            first: offset,
            next: offset,
            tally: LandingReport::default(),
            traced: Vec::new(),
        });
        progress.next = offset + 1;
        if let Some(traced) = traced.filter(|_| progress.traced.len() < super::telemetry::MAX_TRACED_PER_PARTITION) {
            progress.traced.push(traced);
        }
        if let Some(window) = window {
            self.clocks.entry(key.clone()).or_default().observe(window);
        }
        let tally = &mut progress.tally;
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
        if let Some(code) = routed.unknown_organisation {
            let seen = tally.unknown_source_organisations.entry(code).or_default();
            *seen += 1;
            if *seen == 1 {
                warn!(
                    "events from an organisation the register of source organisations does not list: a Type 1 \
                     opt-out covers them (see the report's unknown_source_organisations)"
                );
            }
        }
        let name = |index: usize| self.purposes[index].purpose.name();
        for (index, reason) in routed.withheld {
            *tally.withheld.entry(name(index)).or_default().entry(reason.to_owned()).or_default() += 1;
        }
        for (index, opt_out) in routed.exempted {
            *tally.released_under_exemption.entry(name(index)).or_default().entry(opt_out.to_owned()).or_default() += 1;
        }
        for (index, plan, row) in routed.rows {
            *tally.landed.entry(name(index)).or_default() += 1;
            let period = landed_period(&plan, &row);
            let pending =
                self.pending.entry((index, topic.clone(), partition, period)).or_insert_with(|| PendingFile {
                    rows: RowBuffer::new(plan),
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

    /// What became of an event, as attributes of its `land` span (the purposes it was landed
    /// for, those it was withheld from and why, or that it was dead-lettered), and the pending
    /// files its rows go to.
    fn outcome_attributes(
        &self,
        routed: &Result<Routed, String>,
    ) -> (Vec<opentelemetry::KeyValue>, Vec<(usize, Option<i32>)>) {
        use opentelemetry::{Array, KeyValue, StringValue, Value};
        let names =
            |purposes: Vec<String>| Value::Array(Array::String(purposes.into_iter().map(StringValue::from).collect()));
        let Ok(routed) = routed else { return (vec![KeyValue::new("sluice.dead_lettered", true)], Vec::new()) };
        let name = |index: usize| self.purposes[index].purpose.name();
        let landed_for = routed.rows.iter().map(|(index, _, _)| name(*index)).collect();
        let withheld = routed.withheld.iter().map(|(index, reason)| format!("{}: {reason}", name(*index))).collect();
        let files = routed.rows.iter().map(|(index, plan, row)| (*index, landed_period(plan, row))).collect();
        (
            vec![
                KeyValue::new("sluice.landed_for", names(landed_for)),
                KeyValue::new("sluice.withheld", names(withheld)),
            ],
            files,
        )
    }

    /// Decodes the event, checks consent for every purpose and pseudonymises it for each purpose
    /// that may receive it. Changes nothing: an `Err` is the reason to dead-letter the whole event.
    fn route(&self, decoder: &Decoder<'_>, message: &impl Message, expected_subject: &str) -> Result<Routed, String> {
        let event = decoder.decode(message.payload().unwrap_or_default()).map_err(|e| e.to_string())?;
        if event.reader.subject() != expected_subject {
            return Err(format!("a `{}` event on the topic of `{expected_subject}`", event.reader.subject()));
        }
        let view = RecordView::new(&event.value).ok_or("the event is not a record")?;
        let inputs = event_consent_inputs(&view, &self.source_organisations);
        let (nhs_number, gp_sourced) = (inputs.nhs_number, inputs.gp_sourced);
        let mut routed = Routed {
            rows: Vec::new(),
            withheld: Vec::new(),
            exempted: Vec::new(),
            writer_fingerprint: event.writer.fingerprint(),
            event_time: view.timestamp_micros("occurred_at"),
            unknown_organisation: inputs
                .unknown_organisation
                .then(|| SourceOrganisations::report_label(view.string("source_organisation"))),
        };
        for (index, runtime) in self.purposes.iter().enumerate() {
            let plan = runtime.plans.get(expected_subject).ok_or("no landing plan for the subject")?;
            match self.consent.decide(&runtime.purpose, runtime.setup.policy.rules(), nhs_number, gp_sourced) {
                Decision::Release { exempted } => {
                    routed.exempted.extend(exempted.iter().map(|opt_out| (index, opt_out.label())));
                    let row = pseudonymise(plan, runtime.setup.keys.active(), &event.value)?;
                    routed.rows.push((index, plan.clone(), row));
                }
                Decision::Withhold(reason) => routed.withheld.push((index, reason.label())),
            }
        }
        Ok(routed)
    }

    /// Removes files of `topic`/`partition` holding offsets from `from` on, in every purpose's
    /// dataset of `subject`: they were written by a lander that stopped (or crashed) before it
    /// committed them, and consuming resumes from `from`, so keeping them would land their events
    /// twice. The landing ledger says which files those are (their names do not). Each removal is
    /// recorded in the audit log.
    fn withdraw_uncommitted_files(&mut self, topic: &str, partition: i32, from: i64, subject: &str) -> Result<()> {
        let storage = &self.storage;
        let (ledger, lake) = (&mut self.ledger, &self.config.lake_dir);
        let entries = super::block(|| ledger.entries(lake))?;
        let datasets: Vec<String> = self.purposes.iter().map(|p| format!("{}/{subject}/", p.purpose.name())).collect();
        let mut withdrawn = Vec::new();
        for (key, (file_topic, file_partition, first, _)) in crate::lake::ledger::landed_ranges(entries) {
            if file_topic != topic || file_partition != partition || first < from {
                continue;
            }
            if !datasets.iter().any(|dataset| key.starts_with(dataset.as_str())) {
                continue;
            }
            let (directory, name) = key.rsplit_once('/').unwrap_or(("", key));
            super::block(|| storage.remove_interrupted_writes(directory, name))?;
            let present = matches!(super::block(|| storage.e_tag(key))?, ObjectTag::Present(_));
            if !present {
                continue; // never written, or withdrawn already
            }
            let record = super::block(|| -> Result<FileRecord> {
                let record = file_record(storage, key)?;
                storage.delete(key)?;
                Ok(record)
            })?;
            withdrawn.push(record);
        }
        // Files landed before the ledger existed say their offsets in their names.
        for runtime in &self.purposes {
            let dataset = format!("{}/{subject}", runtime.purpose.name());
            super::block(|| storage.remove_interrupted_writes(&dataset, &format!("{topic}+{partition}+")))?;
            for key in super::block(|| storage.parquet_files(&dataset))? {
                let name = key.rsplit('/').next().unwrap_or_default();
                let Some(landed) = crate::lake::layout::parse_landed_file_name(name) else { continue };
                if landed.topic != topic || landed.partition != partition || landed.first < from {
                    continue;
                }
                let record = super::block(|| -> Result<FileRecord> {
                    let record = file_record(storage, &key)?;
                    storage.delete(&key)?;
                    Ok(record)
                })?;
                withdrawn.push(record);
            }
        }
        withdrawn.sort_by(|a, b| a.path.cmp(&b.path));
        if !withdrawn.is_empty() {
            warn!(
                topic,
                partition,
                files = withdrawn.len(),
                "removed files written after the last commit; landing them again"
            );
            self.audit.append(&AuditEvent::Withdrawal(WithdrawalRecord {
                reason: format!(
                    "written from offset {from} of {topic}/{partition} but never committed (the lander stopped first); landed again"
                ),
                files: withdrawn,
            }))?;
        }
        Ok(())
    }

    /// Forgets everything buffered for partitions this lander no longer owns: nothing of theirs
    /// is written or committed here, and their new owner re-reads them from the committed offsets.
    pub(super) fn revoke(&mut self, partitions: &[(String, i32)]) {
        let mut dropped_rows = 0;
        self.pending.retain(|(_, topic, partition, _), pending| {
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
            self.clocks.remove(key);
        }
        info!(
            partitions = partitions.len(),
            dropped_rows, "partitions revoked: their uncommitted rows are left to the new owner"
        );
    }

    /// Clinical messages consumed so far, committed or not.
    pub(super) fn consumed_so_far(&self) -> u64 {
        self.report.consumed_total() + self.uncommitted.values().map(|p| p.tally.consumed_total()).sum::<u64>()
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

    /// The source partitions whose files should roll now (see the [module docs](super)).
    pub(super) fn partitions_due(&self) -> BTreeSet<(String, i32)> {
        let mut held: BTreeMap<(String, i32), (usize, usize)> = BTreeMap::new();
        for ((_, topic, partition, _), pending) in &self.pending {
            let entry = held.entry((topic.clone(), *partition)).or_default();
            entry.0 += pending.rows.rows();
            entry.1 += pending.rows.bytes();
        }
        let max_age = std::time::Duration::from_secs(self.config.max_file_age_secs.max(1));
        let mut due: BTreeSet<(String, i32)> = self
            .uncommitted
            .iter()
            .filter(|(key, progress)| {
                let (rows, bytes) = held.get(*key).copied().unwrap_or_default();
                rows >= self.config.max_file_rows.max(1)
                    || bytes >= self.config.max_file_bytes.max(1)
                    || progress.started.elapsed() >= max_age
            })
            .map(|(key, _)| key.clone())
            .collect();
        let limit = self.config.max_buffered_rows.max(1);
        if self.buffered_rows >= limit {
            let mut by_size: Vec<_> = held.iter().map(|(key, (rows, _))| (key, *rows)).collect();
            by_size.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            // Rows left in memory once the partitions already due have rolled.
            let mut remaining = self.buffered_rows
                - held.iter().filter(|(key, _)| due.contains(*key)).map(|(_, (rows, _))| rows).sum::<usize>();
            for (key, rows) in by_size {
                if remaining <= limit / 2 {
                    break;
                }
                if due.insert(key.clone()) {
                    remaining = remaining.saturating_sub(rows);
                }
            }
        }
        due
    }

    /// Moves the consent store's clock to the wall clock's time: changes dated up to now take
    /// effect and time-limited ones that have ended stop. A DENY that took effect queues its
    /// patient for erasure as an opt-out just read does. Cheap when nothing is due.
    pub(super) fn advance_consent_clock(&mut self) {
        let now = crate::consent::wall_clock_micros();
        let due = self.consent.next_transition().is_some_and(|at| at <= now);
        let denied = self.consent.advance_to(now);
        if due {
            info!(patients_denied = denied.len(), "consent changes dated ahead or time-limited took effect or ended");
        }
        if let Some(erasures) = &mut self.erasures {
            erasures.took_effect(denied);
        }
    }

    /// Whether opt-outs read since the last checkpoint owe erasures.
    pub(super) fn owes_erasures(&self) -> bool {
        self.erasures.as_ref().is_some_and(OptOutErasures::has_work)
    }

    /// Whether a checkpoint has anything to do: consumed offsets to commit or erasures owed.
    pub(super) fn has_uncommitted(&self) -> bool {
        !self.uncommitted.is_empty() || self.erasures.as_ref().is_some_and(OptOutErasures::has_work)
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
}

/// The UTC day or month (since 1970-01-01) a row is filed under, from its landed event time;
/// `None` when the policy lands no event time.
fn landed_period(plan: &LandingPlan, row: &[Cell]) -> Option<i32> {
    plan.event_time_column.and_then(|column| match row[column] {
        Cell::TimestampMicros(micros) => crate::lake::layout::event_time_period(plan.event_time_partition, micros),
        _ => None,
    })
}
