//! What a landing run holds between checkpoints, and what it does with each record read: a
//! consent record is applied to the consent store; a clinical event is routed
//! ([`super::route`]), counted, and its rows buffered ([`super::buffers`]) or the event
//! dead-lettered ([`super::dead_letters`]).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use rdkafka::{ClientConfig, Message, message::BorrowedMessage};
use sluice_schemas::{Catalogue, Decoder, subjects};
use tracing::{info, warn};

use super::{
    LanderConfig, LandingReport, PurposeSetup,
    buffers::Buffers,
    dead_letters::DeadLetters,
    erasure::OptOutErasures,
    partition::TopicPartition,
    route::{PurposeRuntime, Routed, Router, landed_period},
};
use crate::{
    Error, Result,
    audit::{AuditEvent, AuditLog, AuditPublisher, ConsentUnreadableRecord, FileRecord, WithdrawalRecord, file_record},
    consent::{ConsentChange, ConsentStore, Purpose, SourceOrganisations, patient_of_record_key},
    lake::storage::{LakeStorage, ObjectTag},
};

/// Everything a run holds between checkpoints.
pub(super) struct LandingState<'a> {
    /// The lander's settings.
    pub(super) config: &'a LanderConfig,
    /// The configured purposes and how an event is routed to them.
    pub(super) router: Router<'a>,
    /// Current consent state.
    pub(super) consent: ConsentStore,
    /// Rows waiting for their files, and what each partition consumed since its last commit.
    pub(super) buffers: Buffers,
    /// Records that cannot be decoded or checked go here, with the reason.
    pub(super) dead_letters: DeadLetters,
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
    /// The landing ledger as last read, for what the tables hold at newly assigned partitions.
    ledger: crate::lake::ledger::CachedLedger,
    /// The datasets' Delta tables this lander commits to.
    pub(super) tables: super::tables::LanderTables,
    /// Per purpose (by index) and source partition, the offset ranges the purpose's table
    /// already held when the partition was assigned here: rows in them are not landed again.
    held: HashMap<(usize, TopicPartition), Vec<(i64, i64)>>,
}

/// A clinical event read and routed, not yet counted or buffered.
pub(super) struct ReadEvent {
    /// Its source topic and partition.
    source: TopicPartition,
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
        let dead_letters = DeadLetters::new(client, &config.dead_letter_topic)?;
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
        let tables = super::tables::LanderTables::new(&storage, &config.group_id, config.table_checkpoint_interval);
        Ok(LandingState {
            config,
            router: Router::new(purposes, source_organisations, &config.clinical_topics),
            consent: ConsentStore::new(),
            buffers: Buffers::new(roll_at_event_time_windows),
            dead_letters,
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
            tables,
            held: HashMap::new(),
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
        self.dead_letters.send(message, &reason)?;
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
        let source = TopicPartition::of(message);
        let offset = message.offset();
        let subject = self.router.subject_of(&source.topic);
        if !self.buffers.reading(&source) {
            // First event of this partition since it was assigned here: ask each table what it
            // already holds from it, and remove what an earlier owner wrote but never committed.
            self.take_over(&source, offset, &subject)?;
        }
        let payload = message.payload().unwrap_or_default();
        // A registry that cannot say what a schema id is: hold the record (stop without
        // committing it) rather than judge it.
        if self.config.schema_registry.is_some()
            && let Err(error @ sluice_schemas::Error::SchemaRegistry { .. }) = decoder.writer_of(payload)
        {
            return Err(Error::SchemaRegistryUnavailable(error.to_string()));
        }
        let routed = self.router.route(&self.consent, decoder, payload, &subject);
        Ok(ReadEvent { source, offset, subject, routed })
    }

    /// The partition whose files should roll before `event` is buffered, because the event is
    /// the first of its partition in a later event-time window than everything buffered for it
    /// (see [`LanderConfig::event_time_window_secs`]).
    pub(super) fn window_closed_by(&self, event: &ReadEvent) -> Option<TopicPartition> {
        self.buffers.window_closed_by(&event.source, self.event_time_window(event))
    }

    /// Whether this lander still reads the event's partition (a checkpoint can lose it).
    pub(super) fn still_reading(&self, event: &ReadEvent) -> bool {
        self.buffers.reading(&event.source)
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
        let ReadEvent { source, offset, subject, routed } = event;
        let (progress, skipped) = self.buffers.read(&source, offset, window, traced);
        let tally = &mut progress.tally;
        if skipped > 0 {
            warn!(
                topic = source.topic,
                partition = source.partition,
                skipped,
                "offsets skipped: the broker no longer holds them"
            );
            tally.skipped_offsets += skipped;
        }
        *tally.consumed.entry(subject).or_default() += 1;
        let routed = match routed {
            Ok(routed) => routed,
            Err(reason) => {
                warn!(
                    topic = source.topic,
                    partition = source.partition,
                    offset,
                    reason,
                    "record sent to the dead-letter topic"
                );
                tally.dead_lettered += 1;
                return self.dead_letters.send(message, &reason);
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
        let name = |index: usize| self.router.purpose_name(index);
        for (index, reason) in routed.withheld {
            *tally.withheld.entry(name(index)).or_default().entry(reason.to_owned()).or_default() += 1;
        }
        for (index, opt_out) in routed.exempted {
            *tally.released_under_exemption.entry(name(index)).or_default().entry(opt_out.to_owned()).or_default() += 1;
        }
        let held = &self.held;
        let in_table = |index: usize| {
            held.get(&(index, source.clone()))
                .is_some_and(|ranges| ranges.iter().any(|(first, last)| (*first..=*last).contains(&offset)))
        };
        for (index, _, _) in &routed.rows {
            let counted = if in_table(*index) { &mut tally.already_in_table } else { &mut tally.landed };
            *counted.entry(name(*index)).or_default() += 1;
        }
        for (index, plan, row) in routed.rows {
            if !in_table(index) {
                self.buffers.push_row(index, &source, offset, plan, row, routed.writer_fingerprint);
            }
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
        let name = |index: usize| self.router.purpose_name(index);
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

    /// Takes over `source` from offset `from` (where the group's committed offset says to
    /// begin), in every purpose's dataset of `subject`:
    ///
    /// * what the purpose's table already holds from it (a landing committed to the table whose
    ///   offsets were not committed to Kafka) is not landed again: the rows are counted as
    ///   already in the table;
    /// * files written for landings the table never committed are not part of it, and are
    ///   removed (audited as a withdrawal);
    /// * files landed before tables (the ledger names no table landing for them, or their names
    ///   give their offsets) from `from` on were never committed, and are removed too.
    fn take_over(&mut self, source: &TopicPartition, from: i64, subject: &str) -> Result<()> {
        let (topic, partition) = (source.topic.as_str(), source.partition);
        let storage = &self.storage;
        let (ledger, lake) = (&mut self.ledger, &self.config.lake_dir);
        let entries = super::block(|| ledger.entries(lake))?.to_vec();
        let mut removable: Vec<String> = Vec::new();
        for (index, runtime) in self.router.purposes.iter().enumerate() {
            let dataset = format!("{}/{subject}", runtime.purpose.name());
            let tables = &mut self.tables;
            let holdings = super::block(|| {
                tokio::runtime::Handle::current().block_on(tables.holdings(&dataset, source, &entries))
            })?;
            let ranges: Vec<(i64, i64)> = holdings.ranges.into_iter().filter(|(_, last)| *last >= from).collect();
            if !ranges.is_empty() {
                info!(
                    purpose = runtime.purpose.name(),
                    topic,
                    partition,
                    ranges = ranges.len(),
                    "the purpose's table already holds events from where the group's offsets begin: not landing them again"
                );
                self.held.insert((index, source.clone()), ranges);
            }
            removable.extend(holdings.never_committed);
        }
        let datasets: Vec<String> =
            self.router.purposes.iter().map(|p| format!("{}/{subject}/", p.purpose.name())).collect();
        for entry in &entries {
            if let crate::lake::ledger::LedgerEntry::Landed {
                key,
                topic: t,
                partition: p,
                first,
                table_landing: None,
                ..
            } = entry
                && t == topic
                && *p == partition
                && *first >= from
                && datasets.iter().any(|dataset| key.starts_with(dataset.as_str()))
            {
                removable.push(key.clone());
            }
        }
        removable.sort();
        removable.dedup();
        let mut withdrawn = Vec::new();
        for key in &removable {
            let (directory, name) = key.rsplit_once('/').unwrap_or(("", key));
            super::block(|| storage.remove_interrupted_writes(directory, name))?;
            let present = matches!(super::block(|| storage.e_tag(key))?, ObjectTag::Present(_));
            if !present {
                continue; // never written, or removed already
            }
            let record = super::block(|| -> Result<FileRecord> {
                let record = file_record(storage, key)?;
                storage.delete(key)?;
                Ok(record)
            })?;
            withdrawn.push(record);
        }
        // Files landed before the ledger existed say their offsets in their names.
        for runtime in &self.router.purposes {
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
                "removed files written but never committed (not part of any table); landing their events again"
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
    pub(super) fn revoke(&mut self, partitions: &[TopicPartition]) {
        self.buffers.revoke(partitions);
        self.held.retain(|(_, source), _| !partitions.contains(source));
    }

    /// Clinical messages consumed so far, committed or not.
    pub(super) fn consumed_so_far(&self) -> u64 {
        self.report.consumed_total() + self.buffers.consumed_uncommitted()
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
        self.buffers.has_uncommitted() || self.erasures.as_ref().is_some_and(OptOutErasures::has_work)
    }
}
