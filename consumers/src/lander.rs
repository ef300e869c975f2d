//! The lander: consume -> decode -> consent -> pseudonymise -> batch -> Parquet -> commit.
//!
//! One [`run`] call is one landing service. It first reads the whole consent topic up to its high
//! watermark (and holds, returning [`Error::ConsentUnavailable`], if it cannot), then consumes the
//! clinical topics in its consumer group. Each event is decoded with the newest schema of its
//! subject, checked against every configured purpose, pseudonymised for each purpose that may
//! receive it, and buffered per (purpose, topic, partition). New consent changes keep being
//! applied while it runs, so a later opt-out stops later releases.
//!
//! A *checkpoint* writes every buffer to its own Parquet file (atomically and durably), waits for
//! every dead-letter record to be acknowledged, and only then commits the consumed offsets: an
//! offset is never committed before the work it covers is durable. Checkpoints happen when the
//! buffered rows reach [`LanderConfig::max_buffered_rows`], after
//! [`LanderConfig::idle_flush_secs`] without events, on shutdown, and when the run's target
//! offsets are reached.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt, stream::FuturesUnordered};
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer},
    message::{BorrowedMessage, Header, OwnedHeaders},
    producer::{DeliveryFuture, FutureProducer, FutureRecord},
};
use serde::{Deserialize, Serialize};
use sluice_schemas::{Catalogue, Decoder, NhsNumber, subjects};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{
    Error, Result,
    batch::RowBuffer,
    consent::{ConsentChange, ConsentStore, Decision, Purpose, is_gp_practice},
    parquet_sink::{LandedFile, write_atomically},
    policy::{LandingPlan, Policy},
    pseudonymise::{PurposeKey, pseudonymise},
    record::RecordView,
};

/// Configuration of a lander (everything but the broker connection and the keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanderConfig {
    /// Root of the lake; datasets are written to `<lake_dir>/<purpose>/<subject>/`.
    pub lake_dir: PathBuf,
    /// Purposes to land for (`direct-care`, `planning`, `research`, `study:<id>`).
    pub purposes: Vec<String>,
    /// Consumer group; landers in one group share the clinical partitions.
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Topic of each clinical subject to land, by subject.
    pub clinical_topics: BTreeMap<String, String>,
    /// The compacted topic of consent changes.
    pub consent_topic: String,
    /// Topic that records which cannot be decoded or checked are sent to, with the reason.
    pub dead_letter_topic: String,
    /// Rows held in memory, over all datasets, before files are written and offsets committed.
    #[serde(default = "default_max_buffered_rows")]
    pub max_buffered_rows: usize,
    /// Seconds without new events after which buffered rows are written anyway.
    #[serde(default = "default_idle_flush_secs")]
    pub idle_flush_secs: u64,
    /// Seconds allowed to read the consent topic to its end at start-up before landing holds.
    #[serde(default = "default_consent_load_timeout_secs")]
    pub consent_load_timeout_secs: u64,
}

fn default_group_id() -> String {
    "sluice-lander".to_owned()
}
fn default_max_buffered_rows() -> usize {
    200_000
}
fn default_idle_flush_secs() -> u64 {
    5
}
fn default_consent_load_timeout_secs() -> u64 {
    60
}

/// When a run ends (besides shutdown).
#[derive(Debug)]
pub enum RunUntil {
    /// Run until shut down: the long-running service.
    Stopped,
    /// Stop once every listed partition has been consumed up to the given offset (its high
    /// watermark when producing finished). `None` until the targets are known.
    CaughtUp(watch::Receiver<Option<BTreeMap<(String, i32), i64>>>),
}

/// What a run did, for the summary and for reconciliation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LandingReport {
    /// Clinical messages consumed, per subject (from the topic they were read from).
    pub consumed: BTreeMap<String, u64>,
    /// Clinical messages sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Consent messages sent to the dead-letter topic.
    pub consent_dead_lettered: u64,
    /// Consent changes applied (at start-up and while running).
    pub consent_changes: u64,
    /// Rows landed, per purpose.
    pub landed: BTreeMap<String, u64>,
    /// Events withheld, per purpose and reason label.
    pub withheld: BTreeMap<String, BTreeMap<String, u64>>,
    /// Offsets skipped over in clinical partitions (data removed by the broker before it was read).
    pub skipped_offsets: u64,
    /// Files written, in order.
    pub files: Vec<LandedFile>,
}

impl LandingReport {
    /// All clinical messages consumed.
    pub fn consumed_total(&self) -> u64 {
        self.consumed.values().sum()
    }

    /// Events withheld from one purpose, all reasons.
    pub fn withheld_total(&self, purpose: &str) -> u64 {
        self.withheld.get(purpose).map_or(0, |reasons| reasons.values().sum())
    }

    /// Checks, for each purpose, that every consumed message is accounted for exactly once:
    /// consumed = landed + withheld + dead-lettered. Returns the purposes that do not add up.
    pub fn unreconciled(&self, purposes: &[String]) -> Vec<String> {
        purposes
            .iter()
            .filter(|p| {
                let landed = self.landed.get(*p).copied().unwrap_or(0);
                landed + self.withheld_total(p) + self.dead_lettered != self.consumed_total()
            })
            .cloned()
            .collect()
    }
}

/// Runs a lander until `until` is met or `shutdown` turns true. `on_progress` receives the
/// number of clinical messages consumed so far.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: &ClientConfig,
    config: &LanderConfig,
    policy: &Policy,
    keys: &BTreeMap<String, PurposeKey>,
    catalogue: &Catalogue,
    mut until: RunUntil,
    mut shutdown: watch::Receiver<bool>,
    mut on_progress: impl FnMut(u64),
) -> Result<LandingReport> {
    let mut state = LandingState::new(client, config, policy, keys, catalogue)?;
    let decoder = Decoder::new(catalogue);

    let consent_reader = block(|| ConsentReader::start(client, config))?;
    let loaded = block(|| {
        consent_reader.read_to_end(&decoder, &mut state, Duration::from_secs(config.consent_load_timeout_secs))
    })?;
    info!(consent_changes = loaded, patients_with_changes = state.consent.patients(), "consent topic read to its end");

    let consumer: StreamConsumer = consumer_config(client, &config.group_id)
        .create()
        .map_err(|source| Error::CreateClient { role: "clinical consumer", source })?;
    let topics: Vec<&str> = config.clinical_topics.values().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(Error::kafka("subscribe to the clinical topics"))?;

    let idle = Duration::from_secs(config.idle_flush_secs.max(1));
    let mut targets: Option<BTreeMap<(String, i32), i64>> = None;
    let mut committed_at_start: HashMap<(String, i32), i64> = HashMap::new();
    if let RunUntil::CaughtUp(receiver) = &mut until
        && let Some(known) = receiver.borrow_and_update().clone()
    {
        committed_at_start = block(|| committed_offsets(&consumer, &known))?;
        targets = Some(known);
    }
    let mut last_consent_poll = Instant::now();
    loop {
        if let Some(targets) = &targets
            && state.caught_up(targets, &committed_at_start)
        {
            break;
        }
        tokio::select! {
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    info!("shutdown requested: landing the rows in hand");
                    break;
                }
            }
            changed = wait_for_targets(&mut until) => {
                if let Some(new_targets) = changed {
                    committed_at_start = block(|| committed_offsets(&consumer, &new_targets))?;
                    targets = Some(new_targets);
                }
            }
            message = consumer.recv() => {
                let message = message.map_err(Error::kafka("consume"))?;
                state.handle_clinical(&decoder, &message)?;
                on_progress(state.report.consumed_total());
                if state.buffered_rows >= config.max_buffered_rows.max(1) {
                    state.checkpoint(&consumer).await?;
                }
            }
            _ = tokio::time::sleep(idle) => {
                if state.has_uncommitted() {
                    state.checkpoint(&consumer).await?;
                }
            }
        }
        if last_consent_poll.elapsed() >= Duration::from_millis(200) {
            block(|| consent_reader.apply_new(&decoder, &mut state))?;
            last_consent_poll = Instant::now();
        }
    }
    state.checkpoint(&consumer).await?;
    Ok(state.report)
}

/// Waits for new run targets; never completes when running until stopped.
async fn wait_for_targets(until: &mut RunUntil) -> Option<BTreeMap<(String, i32), i64>> {
    match until {
        RunUntil::Stopped => std::future::pending().await,
        RunUntil::CaughtUp(receiver) => {
            if receiver.changed().await.is_err() {
                // The sender is gone: no targets will ever come, so wait forever (until shutdown).
                std::future::pending::<()>().await;
            }
            receiver.borrow_and_update().clone()
        }
    }
}

/// Runs a blocking librdkafka call without stalling the runtime's other tasks.
fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn consumer_config(client: &ClientConfig, group_id: &str) -> ClientConfig {
    let mut config = client.clone();
    config
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_committed");
    config
}

fn committed_offsets(
    consumer: &StreamConsumer,
    targets: &BTreeMap<(String, i32), i64>,
) -> Result<HashMap<(String, i32), i64>> {
    let mut list = TopicPartitionList::new();
    for (topic, partition) in targets.keys() {
        list.add_partition(topic, *partition);
    }
    let committed =
        consumer.committed_offsets(list, Duration::from_secs(30)).map_err(Error::kafka("read committed offsets"))?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(offset) => Some(((e.topic().to_owned(), e.partition()), offset)),
            _ => None,
        })
        .collect())
}

/// Reads the consent topic: fully at start-up, then whatever is new.
struct ConsentReader {
    /// Assigned to every partition of the consent topic, no group commits.
    consumer: BaseConsumer,
    /// The consent topic's name.
    topic: String,
}

impl ConsentReader {
    fn start(client: &ClientConfig, config: &LanderConfig) -> Result<Self> {
        let unavailable = |reason: String| Error::ConsentUnavailable { topic: config.consent_topic.clone(), reason };
        let consumer: BaseConsumer = consumer_config(client, &format!("{}-consent-reader", config.group_id))
            .create()
            .map_err(|source| Error::CreateClient { role: "consent reader", source })?;
        let timeout = Duration::from_secs(config.consent_load_timeout_secs.max(1));
        let metadata =
            consumer.fetch_metadata(Some(&config.consent_topic), timeout).map_err(|e| unavailable(e.to_string()))?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == config.consent_topic)
            .filter(|t| t.error().is_none())
            .map(|t| t.partitions().len())
            .filter(|n| *n > 0)
            .ok_or_else(|| unavailable("the topic does not exist".to_owned()))?;
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions as i32 {
            assignment
                .add_partition_offset(&config.consent_topic, partition, Offset::Beginning)
                .map_err(|e| unavailable(e.to_string()))?;
        }
        consumer.assign(&assignment).map_err(|e| unavailable(e.to_string()))?;
        Ok(ConsentReader { consumer, topic: config.consent_topic.clone() })
    }

    /// Reads every partition up to the high watermark it had when reading started.
    fn read_to_end(&self, decoder: &Decoder<'_>, state: &mut LandingState<'_>, timeout: Duration) -> Result<u64> {
        let unavailable = |reason: String| Error::ConsentUnavailable { topic: self.topic.clone(), reason };
        let deadline = Instant::now() + timeout;
        let assignment = self.consumer.assignment().map_err(|e| unavailable(e.to_string()))?;
        let mut remaining: HashMap<i32, i64> = HashMap::new();
        for element in assignment.elements() {
            let (low, high) = self
                .consumer
                .fetch_watermarks(&self.topic, element.partition(), timeout)
                .map_err(|e| unavailable(e.to_string()))?;
            if high > low {
                remaining.insert(element.partition(), high);
            }
        }
        let before = state.report.consent_changes;
        while !remaining.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(unavailable(format!("{} partitions not read to their end in time", remaining.len())));
            }
            match self.consumer.poll(left.min(Duration::from_millis(500))) {
                Some(Ok(message)) => {
                    state.handle_consent(decoder, &message)?;
                    if remaining.get(&message.partition()).is_some_and(|high| message.offset() + 1 >= *high) {
                        remaining.remove(&message.partition());
                    }
                }
                Some(Err(error)) => return Err(unavailable(error.to_string())),
                None => {}
            }
        }
        Ok(state.report.consent_changes - before)
    }

    /// Applies consent changes that arrived since the last call, without waiting.
    fn apply_new(&self, decoder: &Decoder<'_>, state: &mut LandingState<'_>) -> Result<()> {
        while let Some(polled) = self.consumer.poll(Duration::ZERO) {
            let message =
                polled.map_err(|e| Error::ConsentUnavailable { topic: self.topic.clone(), reason: e.to_string() })?;
            state.handle_consent(decoder, &message)?;
        }
        Ok(())
    }
}

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
struct LandingState<'a> {
    config: &'a LanderConfig,
    policy: &'a Policy,
    /// Configured purposes with their keys.
    purposes: Vec<(Purpose, &'a PurposeKey)>,
    /// Landing plan of each clinical subject.
    plans: HashMap<String, Arc<LandingPlan>>,
    /// Subject of each clinical topic.
    subject_of_topic: HashMap<String, String>,
    /// Current consent state.
    consent: ConsentStore,
    /// Rows per (purpose index, topic, partition).
    pending: BTreeMap<(usize, String, i32), PendingFile>,
    /// Rows in all pending files.
    buffered_rows: usize,
    /// Next offset to commit per clinical partition consumed since the last checkpoint.
    uncommitted: BTreeMap<(String, i32), i64>,
    /// Next offset expected per partition in this run, to notice skipped offsets.
    positions: HashMap<(String, i32), i64>,
    /// Producer for the dead-letter topic.
    dead_letter_producer: FutureProducer,
    /// Dead-letter records not yet acknowledged.
    dead_letters_in_flight: FuturesUnordered<DeliveryFuture>,
    /// Totals so far.
    report: LandingReport,
}

impl<'a> LandingState<'a> {
    fn new(
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

    fn handle_consent(&mut self, decoder: &Decoder<'_>, message: &BorrowedMessage<'_>) -> Result<()> {
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

    fn handle_clinical(&mut self, decoder: &Decoder<'_>, message: &BorrowedMessage<'_>) -> Result<()> {
        let topic = message.topic().to_owned();
        let partition = message.partition();
        let offset = message.offset();
        let key = (topic.clone(), partition);
        if let Some(expected) = self.positions.get(&key)
            && offset > *expected
        {
            warn!(topic, partition, skipped = offset - expected, "offsets skipped: the broker no longer holds them");
            self.report.skipped_offsets += (offset - expected) as u64;
        }
        self.positions.insert(key.clone(), offset + 1);
        self.uncommitted.insert(key, offset + 1);
        let expected_subject = self.subject_of_topic.get(&topic).cloned().unwrap_or_default();
        *self.report.consumed.entry(expected_subject.clone()).or_default() += 1;

        match self.route(decoder, message, &expected_subject) {
            Ok(()) => Ok(()),
            Err(reason) => {
                warn!(topic, partition, offset, reason, "record sent to the dead-letter topic");
                self.report.dead_lettered += 1;
                self.dead_letter(message, &reason)
            }
        }
    }

    /// Decodes, checks consent for every purpose and buffers the pseudonymised rows. An `Err`
    /// is a reason to dead-letter the whole event (nothing of it is buffered).
    fn route(
        &mut self,
        decoder: &Decoder<'_>,
        message: &BorrowedMessage<'_>,
        expected_subject: &str,
    ) -> Result<(), String> {
        let event = decoder.decode(message.payload().unwrap_or_default()).map_err(|e| e.to_string())?;
        if event.reader.subject() != expected_subject {
            return Err(format!("a `{}` event on the topic of `{expected_subject}`", event.reader.subject()));
        }
        let plan = self.plans.get(expected_subject).ok_or("no landing plan for the subject")?;
        let view = RecordView::new(&event.value).ok_or("the event is not a record")?;
        let nhs_number = view.string("nhs_number").and_then(|digits| NhsNumber::parse(digits).ok());
        let gp_sourced = view.string("source_organisation").is_some_and(is_gp_practice);

        let mut rows = Vec::new();
        for (index, (purpose, key)) in self.purposes.iter().enumerate() {
            match self.consent.decide(purpose, nhs_number, gp_sourced) {
                Decision::Release => rows.push((index, pseudonymise(plan, key, &event.value)?)),
                Decision::Withhold(reason) => {
                    *self
                        .report
                        .withheld
                        .entry(purpose.name())
                        .or_default()
                        .entry(reason.label().to_owned())
                        .or_default() += 1;
                }
            }
        }
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        for (index, row) in rows {
            let pending = self.pending.entry((index, topic.to_owned(), partition)).or_insert_with(|| PendingFile {
                rows: RowBuffer::new(plan.clone()),
                offsets: (offset, offset),
                writer_fingerprints: BTreeSet::new(),
            });
            pending.rows.push(row);
            pending.offsets.1 = offset;
            pending.writer_fingerprints.insert(event.writer.fingerprint());
            self.buffered_rows += 1;
            *self.report.landed.entry(self.purposes[index].0.name()).or_default() += 1;
        }
        Ok(())
    }

    fn dead_letter(&mut self, message: &BorrowedMessage<'_>, reason: &str) -> Result<()> {
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

    fn has_uncommitted(&self) -> bool {
        !self.uncommitted.is_empty()
    }

    fn caught_up(&self, targets: &BTreeMap<(String, i32), i64>, committed: &HashMap<(String, i32), i64>) -> bool {
        targets.iter().all(|(key, target)| {
            let position = self.positions.get(key).or_else(|| committed.get(key)).copied().unwrap_or(0);
            position >= *target
        })
    }

    /// Writes every pending file, waits for dead letters, then commits the consumed offsets.
    async fn checkpoint(&mut self, consumer: &StreamConsumer) -> Result<()> {
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
            for ((topic, partition), next) in &self.uncommitted {
                offsets
                    .add_partition_offset(topic, *partition, Offset::Offset(*next))
                    .map_err(Error::kafka("prepare offsets"))?;
            }
            block(|| consumer.commit(&offsets, CommitMode::Sync)).map_err(Error::kafka("commit offsets"))?;
        }
        let rows: usize = written.iter().map(|f| f.rows).sum();
        info!(
            files = written.len(),
            rows,
            partitions = self.uncommitted.len(),
            "checkpoint: files landed, offsets committed"
        );
        self.report.files.extend(written);
        self.uncommitted.clear();
        self.buffered_rows = 0;
        Ok(())
    }
}
