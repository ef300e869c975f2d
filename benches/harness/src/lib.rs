//! # sluice-bench: how fast sluice lands governed clinical data
//!
//! Measured against the most a Kafka client can read and against the Python script users would
//! otherwise write. The `sluice-bench` program runs it; it is a tool of this repository, kept out
//! of the `sluice` product (which it measures as a process of its own).
//!
//! One run, on one machine, in this order:
//!
//! 1. **load**: a broker (a Tansu process of its own, unless `--brokers` names one) gets the
//!    synthetic source's consent changes and N clinical events, published by sluice's producer:
//!    the *synthetic producer* rate;
//! 2. **raw consume**: every clinical partition read from the beginning to its end by a bare
//!    librdkafka consumer that only counts messages and bytes: the ceiling;
//! 3. **sluice land**: `sluice land --until-caught-up` for one purpose (research unless
//!    `--purpose` says otherwise) in a process of its own: consent topic read, then every event
//!    decoded, checked against consent, pseudonymised and written to Parquet, committed and
//!    audited. Its peak resident memory and CPU time are read from `/proc`;
//! 4. **Python peer**: `benches/peer/land.py` (confluent-kafka, fastavro, pyarrow) doing the same
//!    consent check, HMAC and Parquet write, also in a process of its own; its counts (consumed,
//!    landed, withheld, dead-lettered) must equal sluice's, or the comparison would not be like
//!    for like and the run fails;
//! 5. **HL7 v2 over MLLP**: an MLLP listener in this process, with interface-engine senders on
//!    several connections, each sending one message and waiting for its ACK, into topics of its
//!    own.
//!
//! It prints a table of events/s and MB/s (message bytes as stored in Kafka) with the ratios
//! sluice / raw consume and sluice / Python, and checks them against the targets in
//! `docs/BENCHMARKS.md`. The figures are what this run saw; nothing is asserted about speed in
//! the tests.

mod hl7;
mod load;
mod process;
mod raw;
mod report;

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use rdkafka::ClientConfig;
pub use report::{BenchReport, LanderRun, Measurement, PeakMemory};

use sluice::{broker, topics::Topics};
use sluice_testkit::tansu::TansuBroker;

/// What to measure, and where.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Clinical events to load and land.
    pub events: u64,
    /// The purpose both sluice and the Python peer land for under its built-in policy:
    /// `research` (pseudonyms, shifted dates) or `planning`.
    pub purpose: String,
    /// Synthetic patients they are spread over.
    pub patients: u32,
    /// An existing cluster's bootstrap servers; `None` starts a Tansu broker in `work_dir`.
    pub brokers: Option<String>,
    /// Extra librdkafka properties for every client.
    pub properties: Vec<(String, String)>,
    /// Scratch directory: broker data, key file, both lakes, logs. Must be new or empty.
    pub work_dir: PathBuf,
    /// The `sluice` binary run as the lander.
    pub sluice: PathBuf,
    /// Python interpreter and script of the peer; `None` skips it.
    pub peer: Option<(PathBuf, PathBuf)>,
    /// HL7 v2 messages sent over MLLP; 0 skips that measurement.
    pub mllp_messages: u64,
    /// Concurrent MLLP connections.
    pub mllp_connections: usize,
}

/// Runs every measurement and returns the figures. Progress goes to stderr.
pub fn run(options: &BenchOptions) -> Result<BenchReport, String> {
    prepare_work_dir(&options.work_dir)?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the async runtime: {e}"))?;
    // Keep the broker until the end: dropping it kills the process.
    let mut tansu = None;
    let bootstrap = match &options.brokers {
        Some(brokers) => brokers.clone(),
        None => {
            stage("starting a Tansu broker (SQLite storage)");
            let broker = TansuBroker::start(&options.work_dir.join("broker"))?;
            let bootstrap = broker.bootstrap();
            tansu = Some(broker);
            bootstrap
        }
    };
    let client = broker::client_config(&bootstrap, &options.properties);
    let topics = Topics::embedded();
    runtime.block_on(sluice::provision::apply(&client, &topics))?;
    let keys_file = options.work_dir.join("keys.toml");
    sluice::keys::write_new_file(&keys_file, std::slice::from_ref(&options.purpose))?;

    stage(&format!("loading {} clinical events for {} patients", options.events, options.patients));
    let loaded = runtime.block_on(load::synthetic(&client, &topics, options.events, options.patients))?;

    stage("raw consume: librdkafka reading every clinical partition, no processing");
    let ends = broker::high_watermarks(&client, &topics.clinical())?;
    let raw = raw::consume_to_end(&client, &ends)?;
    if raw.events != loaded.clinical.events {
        return Err(format!("{} events were published but {} could be read back", loaded.clinical.events, raw.events));
    }
    let mut synthetic_producer = loaded.clinical;
    synthetic_producer.bytes = raw.bytes;
    let mut consent = loaded.consent;
    let consent_topic = BTreeMap::from([("consent".to_owned(), topics.consent().to_owned())]);
    consent.bytes = raw::consume_to_end(&client, &broker::high_watermarks(&client, &consent_topic)?)?.bytes;

    stage(&format!("sluice land --until-caught-up ({})", options.purpose));
    let sluice = process::land_with_sluice(options, &bootstrap, &keys_file, raw.bytes)?;
    if sluice.consumed != raw.events || sluice.landed + sluice.withheld + sluice.dead_lettered != raw.events {
        return Err(format!(
            "sluice consumed {} of {} events, landed {}, withheld {} and dead-lettered {}: they must add up",
            sluice.consumed, raw.events, sluice.landed, sluice.withheld, sluice.dead_lettered
        ));
    }

    let peer = match &options.peer {
        Some((python, script)) => {
            stage(&format!("Python peer: confluent-kafka, fastavro, pyarrow ({})", options.purpose));
            let peer = process::land_with_python(options, python, script, &bootstrap, &keys_file, raw.bytes)?;
            // The comparison is only fair if both did the same job.
            let counts = |run: &LanderRun| (run.consumed, run.landed, run.withheld, run.dead_lettered);
            if counts(&peer) != counts(&sluice) {
                return Err(format!(
                    "the Python peer's (consumed, landed, withheld, dead-lettered) {:?} differ from sluice's {:?}",
                    counts(&peer),
                    counts(&sluice)
                ));
            }
            Some(peer)
        }
        None => None,
    };

    let mllp = if options.mllp_messages > 0 {
        stage(&format!(
            "HL7 v2 over MLLP: {} messages on {} connections",
            options.mllp_messages, options.mllp_connections
        ));
        Some(runtime.block_on(hl7::send_over_mllp(
            &client,
            &options.work_dir,
            options.mllp_messages,
            options.mllp_connections,
        ))?)
    } else {
        None
    };
    drop(tansu);
    Ok(BenchReport {
        events: options.events,
        patients: options.patients,
        purpose: options.purpose.clone(),
        broker: options.brokers.clone().unwrap_or_else(|| "Tansu 0.6 (SQLite), this machine".to_owned()),
        consent,
        synthetic_producer,
        raw,
        sluice,
        peer,
        mllp,
    })
}

/// A stage's heading on stderr.
fn stage(text: &str) {
    eprintln!("bench: {text}");
}

/// A measurement in progress says how far it is, every few seconds.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// The work directory must be new or empty: a benchmark never reuses an old broker or lake.
fn prepare_work_dir(dir: &std::path::Path) -> Result<(), String> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        if entries.next().is_some() {
            return Err(format!("{} is not empty; give a new --work-dir", dir.display()));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// The client the clinical consumer of a measurement starts from.
fn consumer_client(client: &ClientConfig, group: &str) -> ClientConfig {
    let mut config = client.clone();
    config.set("group.id", group).set("enable.auto.commit", "false").set("enable.partition.eof", "false");
    config
}
