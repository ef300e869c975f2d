//! The lander: consume -> decode -> consent -> pseudonymise -> batch -> Parquet -> commit.
//!
//! One [`run`] call is one landing service. It first reads the whole consent topic up to its high
//! watermark (and holds, returning [`Error::ConsentUnavailable`], if it cannot), then consumes the
//! clinical topics in its consumer group. Each event is decoded with the newest schema of its
//! subject, checked against every configured purpose, pseudonymised for each purpose that may
//! receive it, and buffered per (purpose, topic, partition). New consent changes keep being
//! applied while it runs, so a later opt-out stops later releases: clinical messages are read
//! in batches, and a batch is released only after a *consent barrier*, the consent topic read up
//! to where it ended once the batch had been read. The lander asks where it ends as soon as a
//! batch is read and lands the batch before it while the broker answers.
//!
//! A *checkpoint* writes buffers to Parquet files (atomically and durably), waits for every
//! dead-letter record to be acknowledged, appends the audit records, and only then commits the
//! consumed offsets: an offset is never committed before the work it covers is durable. Files
//! *roll* per source partition: all of a partition's buffers (every purpose, every event date)
//! are written together and its offsets committed when it holds
//! [`LanderConfig::max_file_rows`] rows or [`LanderConfig::max_file_bytes`] bytes, when its
//! oldest uncommitted event is [`LanderConfig::max_file_age_secs`] old, when its events move on
//! to a later event-time window ([`LanderConfig::event_time_window_secs`]), or when the lander
//! holds more than [`LanderConfig::max_buffered_rows`] in all (the largest partitions roll first).
//! Every partition rolls after [`LanderConfig::idle_flush_secs`] without events, on shutdown,
//! and when the run's target offsets are reached. Because a partition's files always end at a
//! commit, a restarted lander can tell committed files from uncommitted ones by the landing
//! ledger ([`crate::lake::ledger`]).
//!
//! The stages, one module each: `consent_reader` (the consent topic into the consent store),
//! `barrier` (a batch released only once consent has been read past it), `route` (one event
//! decoded, checked and pseudonymised: pure and synchronous), `buffers` (rows per pending file,
//! keyed by purpose, `TopicPartition` and period, and which partitions are due to roll),
//! `dead_letters`, and `committer` (the checkpoint's steps, in the order its documentation
//! gives). `state` holds them together for a run; the lake itself is [`crate::lake`].

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    time::{Duration, Instant},
};

use std::sync::Mutex;

use rdkafka::{
    ClientConfig, ClientContext, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer},
    message::OwnedMessage,
};
use serde::{Deserialize, Serialize};
use sluice_registry::RegistryIds;
use sluice_schemas::{Catalogue, Decoder};
use tokio::sync::watch;
use tracing::{info, warn};

mod barrier;
mod buffers;
mod committer;
mod consent_reader;
mod dead_letters;
mod erasure;
mod event_clock;
mod partition;
mod report;
mod route;
mod run_audit;
mod setup;
mod state;
mod tables;
mod telemetry;

use barrier::{AwaitingConsent, Barrier, answer_for, forget_revoked, is_revoked};
use consent_reader::ConsentReader;
use partition::TopicPartition;
pub use report::LandingReport;
pub use setup::{PurposeSetup, setups_from_builtin, setups_from_dir};
use state::LandingState;

use crate::{Error, Result, consent::ConsentStore};

/// Configuration of a lander (everything but the broker connection and the keys).
///
/// Every setting has a default ([`LanderConfig::default`]), in code and in a configuration file
/// alike: a file names only what it changes. The topics have none that would work (they are the
/// deployment's), so a caller sets them, as `sluice::pipeline` does from `infra/topics.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LanderConfig {
    /// Root of the lake; datasets are written to `<lake_dir>/<purpose>/<subject>/`, unless
    /// [`Self::lake_url`] puts them elsewhere. The lake's state (audit log, committed offsets,
    /// locks, erasure progress) is always kept here.
    pub lake_dir: PathBuf,
    /// Where datasets are written when not under `lake_dir`: an object-store URL such as
    /// `s3://bucket/prefix` (see [`crate::lake::storage`]). `lake_dir` then holds only the state.
    pub lake_url: Option<String>,
    /// Purposes to land for (`direct-care`, `planning`, `research`, `study:<id>`).
    pub purposes: Vec<String>,
    /// Consumer group; landers in one group share the clinical partitions.
    pub group_id: String,
    /// Topic of each clinical subject to land, by subject.
    pub clinical_topics: BTreeMap<String, String>,
    /// The compacted topic of consent changes.
    pub consent_topic: String,
    /// Topic that records which cannot be decoded or checked are sent to, with the reason.
    pub dead_letter_topic: String,
    /// Rows held in memory over all source partitions: above it, the partitions holding the
    /// most rows roll their files until half of it is left.
    pub max_buffered_rows: usize,
    /// Rows of one source partition after which its files roll (are written and its offsets
    /// committed), so that files are large under load.
    pub max_file_rows: usize,
    /// Estimated bytes (in Arrow memory) of one source partition's rows after which its files roll.
    pub max_file_bytes: usize,
    /// Seconds after a source partition's first event since its last roll after which its files
    /// roll anyway, so data appears promptly under light but steady traffic.
    pub max_file_age_secs: u64,
    /// Length of the event-time windows files roll at, in seconds (a UTC day by default, the
    /// span of one `event_date` directory): when a source partition's first event of a later
    /// window than all its buffered events arrives, the partition's files roll before that event
    /// is buffered. A stream in time order so gets one complete file per window; late events
    /// never roll files back.
    pub event_time_window_secs: u64,
    /// Seconds without new events after which buffered rows are written anyway.
    pub idle_flush_secs: u64,
    /// Most clinical messages checked against consent after one consent barrier. Each barrier
    /// asks the broker where every consent partition ends (one ListOffsets request), and a busy
    /// broker can take hundreds of milliseconds to answer (Tansu did), so under load batches
    /// are large and each batch's question is answered while the batch before it is landed
    /// (docs/BENCHMARKS.md). Rows wait for a checkpoint anyway, so a large batch delays no
    /// file; it does make files roll up to one batch past their row limit.
    pub max_batch_messages: usize,
    /// Seconds allowed to read the consent topic to its end at start-up before landing holds.
    pub consent_load_timeout_secs: u64,
    /// Whether an opt-out or dissent read after a patient's rows were landed also removes those
    /// rows from the landed files of the purposes it now withholds them from (see
    /// [`crate::erase`]), except purposes whose policy keeps them
    /// (`keep_landed_rows_on_opt_out`). On by default: recall is what patients are promised.
    /// Without it, a later opt-out only stops later releases.
    pub erase_on_opt_out: bool,
    /// Topic the audit trail is copied to for governance (see [`crate::audit::AuditPublisher`]);
    /// none when not given.
    pub audit_topic: Option<String>,
    /// The audit log; `<lake_dir>/_audit/audit.jsonl` when not given.
    pub audit_log: Option<PathBuf>,
    /// Consent records (partition and offset on the consent topic) that could be read neither
    /// as a change nor for the patient their key names, and that someone has reviewed and let
    /// pass. Without review such a record stops the lander
    /// ([`crate::Error::ConsentRecordWithoutPatient`]): it may have been anybody's opt-out.
    pub reviewed_consent_records: Vec<(i32, i64)>,
    /// The register of source organisations that decides which data a Type 1 opt-out covers
    /// ([`crate::consent::SourceOrganisations`]): a CSV file operators maintain. `None` for the
    /// one built into sluice (`policies/source-organisations.csv`).
    pub source_organisations: Option<PathBuf>,
    /// Commits between two checkpoints of a dataset's Delta table, set as the table's
    /// `delta.checkpointInterval` when the lander creates it (a table keeps its own afterwards).
    /// A checkpoint lets a reader start from one Parquet file instead of replaying every commit;
    /// a lander that commits every few seconds makes thousands of commits a day.
    pub table_checkpoint_interval: std::num::NonZeroU64,
    /// The URL of the schema registry whose ids producers frame Confluent records with, for an
    /// estate that runs its own ([`sluice_registry::RegistryIds`]). `None`: Confluent ids are
    /// the catalogue's (those `sluice registry serve` gives).
    pub schema_registry: Option<String>,
}

impl LanderConfig {
    /// Refuses a configuration that names no purpose, no clinical topic, or no consent or
    /// dead-letter topic: such a lander would land nothing, or land without reading consent.
    pub fn check_complete(&self) -> Result<()> {
        let missing = if self.purposes.is_empty() {
            "no purposes to land for"
        } else if self.clinical_topics.is_empty() {
            "no clinical topics"
        } else if self.consent_topic.is_empty() {
            "no consent topic"
        } else if self.dead_letter_topic.is_empty() {
            "no dead-letter topic"
        } else {
            return Ok(());
        };
        Err(Error::IncompleteConfig(missing))
    }

    /// The storage the datasets are written to.
    pub fn storage(&self) -> Result<crate::lake::storage::LakeStorage> {
        match &self.lake_url {
            Some(url) => crate::lake::storage::LakeStorage::open(url),
            None => crate::lake::storage::LakeStorage::local(&self.lake_dir),
        }
    }

    /// The audit log this lander appends to.
    pub fn audit_log_path(&self) -> PathBuf {
        self.audit_log.clone().unwrap_or_else(|| self.lake_dir.join("_audit").join("audit.jsonl"))
    }
}

/// [`LanderConfig::max_buffered_rows`] unless configured. A buffered row costs about 600 bytes
/// of resident memory (its Arrow buffers and the allocator's slack): at 200,000 the lander
/// landing a million research events peaked at 322-329 MB, at 100,000 at 258-270 MB
/// (docs/BENCHMARKS.md).
pub const DEFAULT_MAX_BUFFERED_ROWS: usize = 100_000;
/// [`LanderConfig::max_batch_messages`] unless configured.
pub const DEFAULT_MAX_BATCH_MESSAGES: usize = 10_000;

impl Default for LanderConfig {
    /// The defaults of `sluice land`: a lake in `./lake`, the `sluice-lander` group, files rolled
    /// at 250,000 rows, 128 MiB, 5 minutes or a UTC day, recall on opt-out, the built-in register
    /// of source organisations; no purposes and no topics (see the type's documentation).
    fn default() -> Self {
        LanderConfig {
            lake_dir: PathBuf::from("lake"),
            lake_url: None,
            purposes: Vec::new(),
            group_id: "sluice-lander".to_owned(),
            clinical_topics: BTreeMap::new(),
            consent_topic: String::new(),
            dead_letter_topic: String::new(),
            max_buffered_rows: DEFAULT_MAX_BUFFERED_ROWS,
            max_file_rows: 250_000,
            max_file_bytes: 128 << 20,
            max_file_age_secs: 300,
            event_time_window_secs: 86_400,
            idle_flush_secs: 5,
            max_batch_messages: DEFAULT_MAX_BATCH_MESSAGES,
            consent_load_timeout_secs: 60,
            erase_on_opt_out: true,
            audit_topic: None,
            audit_log: None,
            reviewed_consent_records: Vec::new(),
            source_organisations: None,
            table_checkpoint_interval: crate::lake::table::DEFAULT_CHECKPOINT_INTERVAL,
            schema_registry: None,
        }
    }
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

/// Runs a lander until `until` is met or `shutdown` turns true (or its sender is dropped). `on_progress` receives the
/// number of clinical messages consumed so far.
///
/// The run is bracketed in the audit log by a start record (what each purpose lands under) and a
/// stop record (what it did, or the error that stopped it).
pub async fn run(
    client: &ClientConfig,
    config: &LanderConfig,
    purposes: &BTreeMap<String, PurposeSetup>,
    catalogue: &Catalogue,
    until: RunUntil,
    shutdown: watch::Receiver<bool>,
    on_progress: impl FnMut(u64),
) -> Result<LandingReport> {
    config.check_complete()?;
    let mut audit = crate::audit::AuditLog::open(&config.audit_log_path())?;
    let lake = config.lake_url.clone().unwrap_or_else(|| config.lake_dir.display().to_string());
    run_audit::record_start(&mut audit, config, purposes, catalogue, &lake)?;
    let stopped = shutdown.clone();
    let outcome = land(client, config, purposes, catalogue, until, shutdown, on_progress).await;
    let stop = run_audit::stop_record(&outcome, *stopped.borrow());
    let appended = audit.append(&crate::audit::AuditEvent::Stop(stop));
    if let Some(topic) = &config.audit_topic {
        // The stop record (and anything a failed run left unpublished) goes out too.
        let published = crate::audit::AuditPublisher::new(client, topic, catalogue)
            .and_then(|publisher| block(|| publisher.publish_new(audit.path(), &config.lake_dir)));
        if let Err(error) = published {
            warn!(%error, "audit records not copied to the audit topic; `sluice audit publish` copies them later");
        }
    }
    match (appended, outcome) {
        (Err(error), Ok(_)) => Err(error),
        (_, outcome) => outcome,
    }
}

/// Says which studies the lander serves and records (warning when it serves any) the studies
/// consent records name that it does not: a dissent under a study id spelt otherwise than in
/// the study's policy would never apply.
fn note_studies(state: &mut LandingState<'_>) {
    let served: Vec<String> = state
        .router
        .purposes
        .iter()
        .filter_map(|p| match &p.purpose {
            crate::consent::Purpose::Study(id) => Some(id.clone()),
            _ => None,
        })
        .collect();
    let unserved: std::collections::BTreeSet<String> =
        state.consent.study_ids().filter(|id| !served.iter().any(|s| s == id)).map(str::to_owned).collect();
    info!(studies = ?served, "studies served");
    if !served.is_empty() && !unserved.is_empty() {
        tracing::warn!(
            studies = ?unserved,
            "consent records name studies this lander does not serve: check each study policy's purpose id"
        );
    }
    state.report.consent_for_unserved_studies = unserved;
}

async fn land(
    client: &ClientConfig,
    config: &LanderConfig,
    purposes: &BTreeMap<String, PurposeSetup>,
    catalogue: &Catalogue,
    mut until: RunUntil,
    mut shutdown: watch::Receiver<bool>,
    mut on_progress: impl FnMut(u64),
) -> Result<LandingReport> {
    let mut state = LandingState::new(client, config, purposes, catalogue)?;
    let decoder = match &config.schema_registry {
        Some(url) => Decoder::new(catalogue).with_schema_ids(std::sync::Arc::new(RegistryIds::new(url, catalogue))),
        None => Decoder::new(catalogue),
    };

    let consent_timeout = Duration::from_secs(config.consent_load_timeout_secs.max(1));
    let mut consent_reader = block(|| ConsentReader::start(client, config))?;
    let backlog = block(|| consent_reader.backlog());
    state.consent = ConsentStore::with_capacity(usize::try_from(backlog).unwrap_or(usize::MAX).min(50_000_000));
    let loaded = block(|| consent_reader.catch_up(&decoder, &mut state, consent_timeout))?;
    // Once for the whole load, not per record: changes dated up to now take effect before
    // anything is decided (each later read of the consent topic is followed by the same).
    state.advance_consent_clock();
    info!(consent_changes = loaded, patients_with_changes = state.consent.patients(), "consent topic read to its end");
    if let Some(erasures) = &mut state.erasures {
        erasures.after_initial_load(&state.consent)?;
    }
    note_studies(&mut state);

    let consumer: LanderConsumer = consumer_config(client, &config.group_id)
        .create_with_context(LanderContext::default())
        .map_err(|source| Error::CreateClient { role: "clinical consumer", source })?;
    let topics: Vec<&str> = config.clinical_topics.values().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(Error::kafka("subscribe to the clinical topics"))?;

    let idle = Duration::from_secs(config.idle_flush_secs.max(1));
    let mut targets: Option<BTreeMap<TopicPartition, i64>> = None;
    if let RunUntil::CaughtUp(receiver) = &mut until {
        targets = receiver.borrow_and_update().as_ref().map(by_partition);
    }
    // Offsets the whole group has committed, for partitions this lander does not hold.
    let mut group_committed: HashMap<TopicPartition, i64> = HashMap::new();
    let mut group_committed_read_at: Option<Instant> = None;
    // The batch read last, waiting for the consent topic's ends asked for after it was read.
    // Its barrier is awaited only when the next batch has been read (or nothing more comes),
    // so the broker's answer, which on a busy broker can take hundreds of milliseconds, arrives
    // while the lander reads instead of stopping it.
    let mut awaiting: Option<AwaitingConsent> = None;
    loop {
        let revoked = apply_revocations(&consumer, &mut state)?;
        forget_revoked(&mut awaiting, &revoked);
        if *shutdown.borrow() {
            break;
        }
        if let Some(targets) = &targets {
            if !state.buffers.caught_up(targets, &group_committed)
                && group_committed_read_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
            {
                group_committed = block(|| committed_offsets(&consumer, targets))?;
                group_committed_read_at = Some(Instant::now());
            }
            if state.buffers.caught_up(targets, &group_committed) {
                break;
            }
        }
        let mut barrier = Barrier {
            consumer: &consumer,
            consent_reader: &mut consent_reader,
            decoder: &decoder,
            timeout: consent_timeout,
        };
        tokio::select! {
            biased;
            changed = shutdown.changed() => {
                // A dropped sender means whoever could ask for shutdown is gone: stop too.
                if changed.is_err() || *shutdown.borrow() {
                    info!("shutdown requested: landing the rows in hand");
                    break;
                }
            }
            changed = wait_for_targets(&mut until) => {
                if changed.is_some() {
                    targets = changed;
                    group_committed_read_at = None;
                }
            }
            message = consumer.recv() => {
                let first = match message {
                    Ok(message) => message.detach(),
                    Err(error) => {
                        // Broker outages surface here; librdkafka reconnects by itself, and the
                        // rows in hand stay uncommitted until a checkpoint succeeds.
                        fail_if_fatal(&consumer, &error)?;
                        warn!(%error, "consuming paused: the cluster is not reachable, retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                let mut batch = collect_batch(&consumer, first, config.max_batch_messages.max(1)).await?;
                // Rebalances are served while reading: neither batch may hold a revoked partition.
                let revoked = apply_revocations(&consumer, &mut state)?;
                forget_revoked(&mut awaiting, &revoked);
                batch.retain(|m| !is_revoked(&revoked, m));
                // Consent barrier: the ends asked for now are past every consent change Kafka
                // acknowledged before these events were read; the batch is released only once
                // the consent store has read that far.
                let next = AwaitingConsent { ends: barrier.consent_reader.ask_ends(consent_timeout), messages: batch };
                if let Some(previous) = awaiting.replace(next) {
                    barrier.land(previous, &mut state).await?;
                    on_progress(state.consumed_so_far());
                }
            }
            answer = answer_for(&mut awaiting) => {
                // Nothing new to read before the barrier of the last batch came back: land it.
                let ends = answer?;
                if let Some(batch) = awaiting.take() {
                    barrier.land_with(batch.messages, &ends, &mut state).await?;
                    on_progress(state.consumed_so_far());
                }
            }
            _ = tokio::time::sleep(idle) => {
                // Quiet clinical topics: keep the consent state (and erasures owed) current anyway.
                block(|| consent_reader.catch_up(&decoder, &mut state, consent_timeout))?;
                state.advance_consent_clock();
                apply_revocations(&consumer, &mut state)?;
                if state.has_uncommitted() {
                    state.checkpoint(&consumer, None).await?;
                }
            }
        }
    }
    if awaiting.take().is_some() {
        // Read but not released: its offsets are not committed, so it is read again next run.
        info!("the last batch read is left for the next run: its consent barrier had not come back");
    }
    apply_revocations(&consumer, &mut state)?;
    state.checkpoint(&consumer, None).await?;
    leave_group(consumer).await;
    Ok(state.report)
}

/// Longest a lander waits, when it stops, for the group to take its partitions back, and then
/// for librdkafka to close the consumer.
const LEAVE_GROUP_WITHIN: Duration = Duration::from_secs(15);

/// Leaves the consumer group now rather than when the session times out, so the partitions
/// move to the other landers at once, and closes the consumer.
///
/// The revocation that leaving causes is served here, while the consumer is open: served
/// inside librdkafka's close instead, it asks for the group's rebalance protocol, which a
/// closing client may never answer (confluentinc/librdkafka#4041), and a test binary hung there
/// for good. Closing runs on a thread of its own and is given up after [`LEAVE_GROUP_WITHIN`]:
/// everything the lander landed is committed by now, and a process that exits closes the
/// connection anyway.
async fn leave_group(consumer: LanderConsumer) {
    consumer.unsubscribe();
    let deadline = Instant::now() + LEAVE_GROUP_WITHIN;
    while consumer.assignment().is_ok_and(|assigned| assigned.count() > 0) && Instant::now() < deadline {
        // A message read now is left uncommitted, for the partition's next owner.
        let _ = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await;
    }
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(consumer);
        let _ = closed_tx.send(());
    });
    if block(|| closed_rx.recv_timeout(LEAVE_GROUP_WITHIN)).is_err() {
        warn!("the clinical consumer did not close in time; leaving it to the process's exit");
    }
}

/// The clinical consumer, with the context that notices revoked partitions.
pub(super) type LanderConsumer = StreamConsumer<LanderContext>;

/// Records partitions revoked in a rebalance. librdkafka calls it from inside `recv`, on the run
/// loop's own task, so the loop can forget those partitions' uncommitted rows before it writes
/// or commits anything else.
#[derive(Default)]
pub(super) struct LanderContext {
    /// Partitions revoked since the loop last looked.
    revoked: Mutex<Vec<TopicPartition>>,
    /// The offset this lander last committed per partition, for the lag metric (librdkafka's
    /// statistics do not always know it).
    committed: Mutex<HashMap<TopicPartition, i64>>,
}

impl LanderContext {
    /// Notes offsets just committed.
    pub(super) fn note_committed(&self, offsets: impl IntoIterator<Item = (TopicPartition, i64)>) {
        self.committed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend(offsets);
    }
}

impl ClientContext for LanderContext {
    fn stats_raw(&self, statistics: &[u8]) {
        let committed = self.committed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        telemetry::record_lag(statistics, |topic, partition| {
            committed.get(&TopicPartition::new(topic, partition)).copied()
        });
    }
}

impl ConsumerContext for LanderContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            let mut revoked = self.revoked.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            revoked.extend(partitions.elements().iter().map(|e| TopicPartition::new(e.topic(), e.partition())));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => info!(partitions = partitions.count(), "clinical partitions assigned"),
            Rebalance::Revoke(partitions) => info!(partitions = partitions.count(), "clinical partitions revoked"),
            Rebalance::Error(error) => warn!(%error, "consumer group rebalance failed"),
        }
    }
}

/// Turns a consumer error into a lander failure only if librdkafka says the client cannot recover.
pub(super) fn fail_if_fatal(consumer: &LanderConsumer, error: &rdkafka::error::KafkaError) -> Result<()> {
    match consumer.client().fatal_error() {
        Some((_, reason)) => Err(Error::Kafka { operation: format!("consume ({reason})"), source: error.clone() }),
        None => Ok(()),
    }
}

/// Forgets the uncommitted work of partitions revoked since the last call; returns them.
fn apply_revocations(consumer: &LanderConsumer, state: &mut LandingState<'_>) -> Result<Vec<TopicPartition>> {
    let revoked =
        std::mem::take(&mut *consumer.context().revoked.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    if !revoked.is_empty() {
        state.revoke(&revoked);
        read_again_what_was_given_back(consumer, &revoked)?;
    }
    Ok(revoked)
}

/// Seeks each of the `revoked` partitions that the group has already given back to this lander
/// to the group's committed offset. Their messages read since the revocation (from the new
/// assignment, which began at the committed offset) were dropped with the revoked ones; without
/// the seek they would be read by no one, and a later commit would pass over them.
fn read_again_what_was_given_back(consumer: &LanderConsumer, revoked: &[TopicPartition]) -> Result<()> {
    let Ok(assigned) = consumer.assignment() else { return Ok(()) };
    let given_back: BTreeMap<TopicPartition, i64> = revoked
        .iter()
        .filter(|source| assigned.find_partition(&source.topic, source.partition).is_some())
        .map(|source| (source.clone(), 0))
        .collect();
    if given_back.is_empty() {
        return Ok(());
    }
    // Fails closed: a lander that cannot read them again stops, and whoever lands the
    // partitions next reads them from the committed offsets.
    let committed = block(|| committed_offsets(consumer, &given_back))?;
    for source in given_back.keys() {
        let offset = committed.get(source).map_or(Offset::Beginning, |offset| Offset::Offset(*offset));
        block(|| consumer.seek(&source.topic, source.partition, offset, Duration::from_secs(10)))
            .map_err(Error::kafka("read a partition given back again"))?;
        info!(%source, "partition given back within a batch: reading it again from the group's offset");
    }
    Ok(())
}

/// Longest wait for more messages to join a batch.
const BATCH_WINDOW: Duration = Duration::from_millis(250);

/// Gathers the messages that are ready (up to `most`, waiting at most [`BATCH_WINDOW`]), so
/// that one consent barrier covers many events.
async fn collect_batch(consumer: &LanderConsumer, first: OwnedMessage, most: usize) -> Result<Vec<OwnedMessage>> {
    let mut batch = vec![first];
    let started = tokio::time::Instant::now();
    let until = started + BATCH_WINDOW;
    while batch.len() < most {
        match tokio::time::timeout_at(until, consumer.recv()).await {
            Ok(Ok(message)) => batch.push(message.detach()),
            Ok(Err(error)) => {
                fail_if_fatal(consumer, &error)?;
                break;
            }
            Err(_elapsed) => break,
        }
    }
    tracing::debug!(messages = batch.len(), elapsed_ms = started.elapsed().as_millis() as u64, "batch read");
    Ok(batch)
}

/// Waits for new run targets; never completes when running until stopped.
async fn wait_for_targets(until: &mut RunUntil) -> Option<BTreeMap<TopicPartition, i64>> {
    match until {
        RunUntil::Stopped => std::future::pending().await,
        RunUntil::CaughtUp(receiver) => {
            if receiver.changed().await.is_err() {
                // The sender is gone: no targets will ever come, so wait forever (until shutdown).
                std::future::pending::<()>().await;
            }
            receiver.borrow_and_update().as_ref().map(by_partition)
        }
    }
}

/// Run targets keyed by [`TopicPartition`].
fn by_partition(targets: &BTreeMap<(String, i32), i64>) -> BTreeMap<TopicPartition, i64> {
    targets.iter().map(|(source, offset)| (TopicPartition::from(source.clone()), *offset)).collect()
}

/// Runs a blocking librdkafka call without stalling the runtime's other tasks.
fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Most kilobytes of messages librdkafka fetches ahead of the lander, per consumer.
const PREFETCH_KIB: &str = "16384";

fn consumer_config(client: &ClientConfig, group_id: &str) -> ClientConfig {
    let mut config = client.clone();
    config
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_committed");
    if client.get("queued.max.messages.kbytes").is_none() {
        // librdkafka prefetches up to 64 MiB per consumer by default; a quarter of that keeps
        // well ahead of landing and keeps the lander's memory bounded (docs/BENCHMARKS.md).
        config.set("queued.max.messages.kbytes", PREFETCH_KIB);
    }
    if sluice_telemetry::installed() {
        // librdkafka's statistics carry each partition's lag, exported as a metric.
        config.set("statistics.interval.ms", telemetry::STATISTICS_INTERVAL_MS);
    }
    config
}

fn committed_offsets(
    consumer: &LanderConsumer,
    targets: &BTreeMap<TopicPartition, i64>,
) -> Result<HashMap<TopicPartition, i64>> {
    let mut list = TopicPartitionList::new();
    for source in targets.keys() {
        list.add_partition(&source.topic, source.partition);
    }
    let committed =
        consumer.committed_offsets(list, Duration::from_secs(30)).map_err(Error::kafka("read committed offsets"))?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(offset) => Some((TopicPartition::new(e.topic(), e.partition()), offset)),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod config_tests {
    use super::*;

    #[test]
    fn a_configuration_file_names_only_what_it_changes() {
        let parsed: LanderConfig = toml::from_str(
            r#"
            purposes = ["research"]
            consent_topic = "clinical.consent"
            dead_letter_topic = "sluice.dead-letter"
            max_file_age_secs = 60
            [clinical_topics]
            adt = "clinical.adt"
            "#,
        )
        .unwrap();
        let expected = LanderConfig {
            purposes: vec!["research".to_owned()],
            consent_topic: "clinical.consent".to_owned(),
            dead_letter_topic: "sluice.dead-letter".to_owned(),
            max_file_age_secs: 60,
            clinical_topics: [("adt".to_owned(), "clinical.adt".to_owned())].into(),
            ..LanderConfig::default()
        };
        assert_eq!(parsed, expected);
        assert_eq!(parsed.max_buffered_rows, DEFAULT_MAX_BUFFERED_ROWS);
        assert!(parsed.erase_on_opt_out, "recall is on unless turned off");
        assert!(toml::from_str::<LanderConfig>("max_file_rowz = 5").is_err(), "a misspelt setting is an error");
    }

    #[test]
    fn a_lander_without_topics_or_purposes_is_refused() {
        let complete = LanderConfig {
            purposes: vec!["planning".to_owned()],
            clinical_topics: [("adt".to_owned(), "clinical.adt".to_owned())].into(),
            consent_topic: "clinical.consent".to_owned(),
            dead_letter_topic: "sluice.dead-letter".to_owned(),
            ..LanderConfig::default()
        };
        assert!(complete.check_complete().is_ok());
        let cases = [
            (LanderConfig { purposes: Vec::new(), ..complete.clone() }, "no purposes"),
            (LanderConfig { clinical_topics: BTreeMap::new(), ..complete.clone() }, "no clinical topics"),
            (LanderConfig { consent_topic: String::new(), ..complete.clone() }, "no consent topic"),
            (LanderConfig { dead_letter_topic: String::new(), ..complete.clone() }, "no dead-letter topic"),
        ];
        for (config, expected) in cases {
            let error = config.check_complete().unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
        assert!(LanderConfig::default().check_complete().is_err());
    }
}
