//! Batch extracts: `sluice produce file PATH` imports an NDJSON file of FHIR R4 resources or of
//! subject JSON records (see [`mod@line`]), line by line, with progress, and can be stopped, killed
//! and restarted without publishing any line twice or skipping one.
//!
//! # How resuming works
//!
//! Every record carries the source reference `file:<file id>:line=<n>` (with `#<k>` for the k-th
//! output of a line that has several, such as a Bundle), where the file id is a hash of the
//! file's start (see [`checkpoint::file_identity`]), never its name. Lines are handed to Kafka
//! in order with many in flight; acknowledgements are taken in order too, so "every line before
//! `n` is stored" is always known. That, and where the topics ended at a moment when it was safe
//! to say that everything of this file written later starts there, is saved in a
//! [`Checkpoint`] every few seconds, durably. A resumed import seeks past the stored lines, reads
//! the topics from the saved offsets to their ends, collects this file's source references, and
//! skips exactly the outputs it finds: a line stored just before a crash is not published again.
//!
//! The offsets in a checkpoint are those of a snapshot taken while the import ran; a snapshot
//! becomes the checkpoint's only once every line handed to Kafka before it was taken is stored
//! (and, on a resumed run, once the import has passed every line the resume scan found), so
//! nothing this file wrote can lie before it.
//!
//! A line that cannot be read or mapped goes to the dead-letter topic with the reason (which
//! never quotes the line) and counts as done; a delivery that Kafka refuses stops the import
//! with an error after saving the checkpoint.

pub mod checkpoint;
pub mod line;

use std::{
    collections::{BTreeMap, HashSet, VecDeque},
    io::{BufRead, BufReader, Seek, SeekFrom},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use chrono::Utc;
use futures::FutureExt as _;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use sluice_schemas::Catalogue;
use sluice_telemetry::SpanKind;
use tokio::{sync::watch, task::JoinHandle};
use tracing::info;

pub use checkpoint::{Checkpoint, file_identity};
use line::{Output, map_line};

use crate::fhir::FhirDefaults;
use crate::read_back;
use crate::{Error, EventPublisher, Origin, PendingDelivery, Result};

/// The adapter name in the `sluice.source.adapter` header.
pub const ADAPTER: &str = "file";

/// Settings of a file import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileImportConfig {
    /// Directory of the checkpoints (one per file).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Most lines handed to Kafka and not yet acknowledged. Bounds memory and the work a
    /// resumed import has to scan.
    #[serde(default = "default_max_in_flight_lines")]
    pub max_in_flight_lines: usize,
    /// Seconds between checkpoints.
    #[serde(default = "default_checkpoint_interval_secs")]
    pub checkpoint_interval_secs: u64,
    /// Longest line accepted, in bytes; a longer one is dead-lettered (its first bytes kept).
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// ODS code recorded for FHIR resources that name no organisation.
    #[serde(default)]
    pub organisation: Option<String>,
    /// Source system recorded for FHIR resources without `meta.source`.
    #[serde(default = "default_source_system")]
    pub source_system: String,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("sluice-state")
}
fn default_max_in_flight_lines() -> usize {
    10_000
}
fn default_checkpoint_interval_secs() -> u64 {
    2
}
fn default_max_line_bytes() -> usize {
    8 << 20
}
fn default_source_system() -> String {
    "batch-file".to_owned()
}

impl Default for FileImportConfig {
    fn default() -> Self {
        FileImportConfig {
            state_dir: default_state_dir(),
            max_in_flight_lines: default_max_in_flight_lines(),
            checkpoint_interval_secs: default_checkpoint_interval_secs(),
            max_line_bytes: default_max_line_bytes(),
            organisation: None,
            source_system: default_source_system(),
        }
    }
}

/// How far an import is, for progress output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Lines whose outputs Kafka has stored.
    pub lines_stored: u64,
    /// Bytes of the file up to there.
    pub bytes_stored: u64,
    /// Size of the file.
    pub total_bytes: u64,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// The file's identity.
    pub file_id: String,
    /// The line this run started at (1 for a new file).
    pub started_at_line: u64,
    /// Lines this run read (blank ones included).
    pub lines: u64,
    /// Blank lines, which are not records.
    pub blank_lines: u64,
    /// Events published per subject.
    pub events: BTreeMap<String, u64>,
    /// Lines (or entries of a line) dead-lettered with a reason.
    pub dead_letters: u64,
    /// Outputs found already in Kafka by the resume scan, and not published again.
    pub already_stored: u64,
    /// Every line of the file is stored (false when stopped early).
    pub complete: bool,
}

/// One line handed to Kafka and not yet acknowledged.
struct InFlightLine {
    /// Its number.
    number: u64,
    /// Where the next line starts.
    end_byte: u64,
    /// One delivery per output not already stored.
    deliveries: Vec<PendingDelivery>,
}

/// A snapshot of where the topics end, and how many lines had been handed to Kafka by then.
struct Snapshot {
    /// The last line handed to Kafka before the snapshot was complete.
    last_line_submitted: u64,
    /// The high watermarks.
    ends: BTreeMap<(String, i32), i64>,
}

/// Imports `path` through `publisher` (which must have a dead-letter topic), resuming from its
/// checkpoint in the state directory. `client` is the broker configuration, for reading the
/// topics back. Stops early, with a checkpoint, when `shutdown` turns true.
pub async fn import_file(
    path: &Path,
    client: &ClientConfig,
    publisher: &EventPublisher<'_>,
    config: &FileImportConfig,
    shutdown: watch::Receiver<bool>,
    mut on_progress: impl FnMut(Progress),
) -> Result<ImportReport> {
    let state = |source| Error::State { path: path.to_owned(), source };
    let file_id = file_identity(path).map_err(state)?;
    let checkpoint_path = Checkpoint::path(&config.state_dir, &file_id);
    let saved =
        Checkpoint::load(&checkpoint_path).map_err(|source| Error::State { path: checkpoint_path.clone(), source })?;
    let mut report = ImportReport { file_id: file_id.clone(), ..ImportReport::default() };
    if saved.as_ref().is_some_and(|c| c.complete) {
        info!(file_id, "already imported completely; nothing to do");
        report.complete = true;
        return Ok(report);
    }
    let topics = publisher.topic_names();
    let prefix = format!("file:{file_id}:");
    let (start_line, start_byte, found, scan_from) = match saved {
        Some(checkpoint) => {
            let from = checkpoint.scan_from_map();
            let found = blocking(client, {
                let (from, topics, prefix) = (from.clone(), topics.clone(), prefix.clone());
                move |client| read_back::references_since(&client, &from, &topics, &prefix)
            })
            .await?;
            info!(file_id, line = checkpoint.next_line, already_stored = found.len(), "resuming");
            (checkpoint.next_line, checkpoint.byte_offset, found, from)
        }
        None => {
            let ends = blocking(client, {
                let topics = topics.clone();
                move |client| read_back::high_watermarks(&client, topics.iter().map(String::as_str))
            })
            .await?;
            (1, 0, HashSet::new(), ends)
        }
    };
    // No snapshot may be trusted until the import has passed every line the scan found.
    let resume_horizon = found.iter().filter_map(|r| line_number(r, &prefix)).max().unwrap_or(0);
    report.started_at_line = start_line;

    let file = std::fs::File::open(path).map_err(state)?;
    let total_bytes = file.metadata().map_err(state)?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    reader.seek(SeekFrom::Start(start_byte)).map_err(state)?;

    let mut run = Run {
        checkpoint: Checkpoint {
            file_id: file_id.clone(),
            next_line: start_line,
            byte_offset: start_byte,
            complete: false,
            scan_from: checkpoint::topic_offsets(&scan_from),
        },
        checkpoint_path,
        in_flight: VecDeque::new(),
        snapshot: None,
        pending_snapshot: None,
        resume_horizon,
    };
    // Saved before anything is handed to Kafka: a run killed before its first interval must
    // still leave the offsets from which its records are to be found.
    run.checkpoint
        .save(&run.checkpoint_path)
        .map_err(|source| Error::State { path: run.checkpoint_path.clone(), source })?;
    let defaults =
        FhirDefaults { organisation: config.organisation.clone(), source_system: config.source_system.clone() };
    let mut number = start_line - 1;
    let mut byte = start_byte;
    let mut buffer = Vec::new();
    let mut last_checkpoint = Instant::now();
    let interval = Duration::from_secs(config.checkpoint_interval_secs.max(1));
    let mut reached_end = false;
    while !*shutdown.borrow() {
        let (consumed, too_long) = read_line(&mut reader, &mut buffer, config.max_line_bytes).map_err(state)?;
        if consumed == 0 {
            reached_end = true;
            break;
        }
        number += 1;
        byte += consumed as u64;
        report.lines += 1;
        let outputs = if too_long {
            let reason =
                format!("line {number}: is longer than {} bytes; its first bytes are kept", config.max_line_bytes);
            vec![(format!("{prefix}line={number}"), Output::DeadLetter(reason))]
        } else {
            map_line(&buffer, number, &file_id, Catalogue::embedded(), &defaults, Utc::now())
        };
        if outputs.is_empty() {
            report.blank_lines += 1;
        }
        let (_line_span, trace) = crate::telemetry::request_span("read batch line", SpanKind::Internal, ADAPTER, None);
        let mut deliveries = Vec::with_capacity(outputs.len());
        for (reference, output) in &outputs {
            if found.contains(reference) {
                report.already_stored += 1;
                continue;
            }
            let origin = Origin { source_reference: reference, adapter: ADAPTER, trace: &trace, fields_left_out: &[] };
            let delivery = match output {
                Output::Event(record) => {
                    *report.events.entry(record.subject().to_owned()).or_default() += 1;
                    publisher.submit(record, origin).await
                }
                Output::DeadLetter(reason) => {
                    report.dead_letters += 1;
                    publisher.submit_dead_letter(&buffer, reason, origin).await
                }
            };
            match delivery {
                Ok(delivery) => deliveries.push(delivery),
                Err(error) => return Err(run.fail(error)),
            }
        }
        run.in_flight.push_back(InFlightLine { number, end_byte: byte, deliveries });
        run.take_snapshot_result(number);
        while run.in_flight.len() > config.max_in_flight_lines.max(1) {
            run.settle_oldest().await?;
        }
        if last_checkpoint.elapsed() >= interval {
            run.save(client, &topics, number)
                .map_err(|source| Error::State { path: run.checkpoint_path.clone(), source })?;
            last_checkpoint = Instant::now();
            on_progress(Progress {
                lines_stored: run.checkpoint.next_line - 1,
                bytes_stored: run.checkpoint.byte_offset,
                total_bytes,
            });
        }
    }
    while !run.in_flight.is_empty() {
        run.settle_oldest().await?;
    }
    if let Some(snapshot) = run.pending_snapshot.take() {
        // Wait for a snapshot in progress, so the final checkpoint can use it.
        if let Ok(Ok(ends)) = snapshot.await {
            run.snapshot = Some(Snapshot { last_line_submitted: number, ends });
        }
    }
    run.checkpoint.complete = reached_end;
    report.complete = reached_end;
    run.promote_snapshot();
    run.checkpoint
        .save(&run.checkpoint_path)
        .map_err(|source| Error::State { path: run.checkpoint_path.clone(), source })?;
    on_progress(Progress {
        lines_stored: run.checkpoint.next_line - 1,
        bytes_stored: run.checkpoint.byte_offset,
        total_bytes,
    });
    info!(file_id, lines = report.lines, dead_letters = report.dead_letters, complete = reached_end, "import finished");
    Ok(report)
}

/// High watermarks, or why they could not be read.
type SnapshotResult = std::result::Result<BTreeMap<(String, i32), i64>, rdkafka::error::KafkaError>;

/// The state of one import run.
struct Run {
    /// The checkpoint as it stands (saved every interval).
    checkpoint: Checkpoint,
    /// Where it is saved.
    checkpoint_path: PathBuf,
    /// Lines handed to Kafka and not yet acknowledged, oldest first.
    in_flight: VecDeque<InFlightLine>,
    /// The newest completed snapshot not yet in the checkpoint.
    snapshot: Option<Snapshot>,
    /// A snapshot being taken.
    pending_snapshot: Option<JoinHandle<SnapshotResult>>,
    /// The last line found by the resume scan: snapshots are trusted only past it.
    resume_horizon: u64,
}

impl Run {
    /// Waits for Kafka's acknowledgement of the oldest line in flight.
    async fn settle_oldest(&mut self) -> Result<()> {
        let Some(line) = self.in_flight.pop_front() else { return Ok(()) };
        for delivery in line.deliveries {
            if let Err(error) = delivery.acknowledged().await {
                return Err(self.fail(error));
            }
        }
        self.checkpoint.next_line = line.number + 1;
        self.checkpoint.byte_offset = line.end_byte;
        Ok(())
    }

    /// Saves what is known to be stored before reporting `error`.
    fn fail(&mut self, error: Error) -> Error {
        self.promote_snapshot();
        match self.checkpoint.save(&self.checkpoint_path) {
            Ok(()) => error,
            Err(source) => Error::State { path: self.checkpoint_path.clone(), source },
        }
    }

    /// Records a finished snapshot, with the last line handed to Kafka before it finished.
    fn take_snapshot_result(&mut self, last_line_submitted: u64) {
        if self.pending_snapshot.as_ref().is_some_and(JoinHandle::is_finished) {
            let handle = self.pending_snapshot.take().expect("checked");
            if let Some(Ok(Ok(ends))) = handle.now_or_never() {
                self.snapshot = Some(Snapshot { last_line_submitted, ends });
            }
        }
    }

    /// Moves the newest snapshot into the checkpoint once nothing of this file can lie before it.
    fn promote_snapshot(&mut self) {
        let stored_through = self.checkpoint.next_line - 1;
        if let Some(snapshot) = &self.snapshot
            && stored_through >= snapshot.last_line_submitted
            && stored_through >= self.resume_horizon
        {
            self.checkpoint.scan_from = checkpoint::topic_offsets(&snapshot.ends);
            self.snapshot = None;
        }
    }

    /// Saves the checkpoint and starts the next snapshot when none is waiting.
    fn save(&mut self, client: &ClientConfig, topics: &[String], submitted: u64) -> std::io::Result<()> {
        self.take_snapshot_result(submitted);
        self.promote_snapshot();
        self.checkpoint.save(&self.checkpoint_path)?;
        if self.snapshot.is_none() && self.pending_snapshot.is_none() {
            let (client, topics) = (client.clone(), topics.to_vec());
            self.pending_snapshot = Some(tokio::task::spawn_blocking(move || {
                read_back::high_watermarks(&client, topics.iter().map(String::as_str))
            }));
        }
        Ok(())
    }
}

/// Runs a blocking Kafka read on a blocking thread.
async fn blocking<T: Send + 'static>(
    client: &ClientConfig,
    read: impl FnOnce(ClientConfig) -> std::result::Result<T, rdkafka::error::KafkaError> + Send + 'static,
) -> Result<T> {
    let client = client.clone();
    tokio::task::spawn_blocking(move || read(client))
        .await
        .expect("reading topics does not panic")
        .map_err(|source| Error::ReadBack { source })
}

/// `42` of `file:<id>:line=42` or `file:<id>:line=42#3`.
fn line_number(reference: &str, prefix: &str) -> Option<u64> {
    let rest = reference.strip_prefix(prefix)?.strip_prefix("line=")?;
    rest.split('#').next()?.parse().ok()
}

/// Reads one line into `buffer` (without its line ending), keeping at most `max` bytes of it.
/// Returns the bytes consumed from the file (0 at its end) and whether the line was longer.
fn read_line(reader: &mut impl BufRead, buffer: &mut Vec<u8>, max: usize) -> std::io::Result<(usize, bool)> {
    buffer.clear();
    let mut consumed = 0;
    let mut too_long = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            break;
        }
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(end) => (&available[..=end], true),
            None => (available, false),
        };
        let room = max.saturating_sub(buffer.len());
        too_long |= chunk.len() > room && !(done && chunk.len() == room + 1);
        buffer.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let length = chunk.len();
        reader.consume(length);
        consumed += length;
        if done {
            break;
        }
    }
    while buffer.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buffer.pop();
    }
    Ok((consumed, too_long))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_whole_or_cut_at_the_limit_without_losing_their_place() {
        let text = b"{\"a\":1}\r\n\n0123456789abcdef\nlast";
        let mut reader = BufReader::with_capacity(4, &text[..]);
        let mut buffer = Vec::new();
        assert_eq!(read_line(&mut reader, &mut buffer, 10).unwrap(), (9, false));
        assert_eq!(buffer, b"{\"a\":1}");
        assert_eq!(read_line(&mut reader, &mut buffer, 10).unwrap(), (1, false));
        assert!(buffer.is_empty());
        assert_eq!(read_line(&mut reader, &mut buffer, 10).unwrap(), (17, true));
        assert_eq!(buffer, b"0123456789");
        assert_eq!(read_line(&mut reader, &mut buffer, 10).unwrap(), (4, false));
        assert_eq!(buffer, b"last");
        assert_eq!(read_line(&mut reader, &mut buffer, 10).unwrap(), (0, false));
        let mut exact = BufReader::new(&b"0123456789\n"[..]);
        assert_eq!(read_line(&mut exact, &mut buffer, 10).unwrap(), (11, false), "the newline is not content");
    }

    #[test]
    fn line_numbers_are_read_from_references() {
        assert_eq!(line_number("file:ab:line=42", "file:ab:"), Some(42));
        assert_eq!(line_number("file:ab:line=42#3", "file:ab:"), Some(42));
        assert_eq!(line_number("file:cd:line=42", "file:ab:"), None);
    }
}
