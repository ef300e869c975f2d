//! The audit trail: an append-only, hash-chained log of what was landed, withheld, released
//! under an exemption and erased, of every compaction and withdrawal, and of landers starting and
//! stopping under which policies and keys (see [`StartRecord`], [`StopRecord`],
//! [`ConfigurationChangeRecord`]).
//!
//! Each line of the log is one JSON record:
//!
//! ```text
//! {"sequence":7,"recorded_at":"2026-11-25T10:15:02.113Z","previous":"<sha256 of record 6>","event":{...},"hash":"<sha256>"}
//! ```
//!
//! `hash` is the SHA-256 of the line's bytes up to (not including) `,"hash":`, closed with `}`:
//! that is, of the record as written without its own hash. Each record names the hash of the
//! one before it (`previous`; 64 zeros for the first), so changing, removing or reordering any
//! record breaks every hash after it, which [`verify`] reports. Records never hold a patient
//! identifier: counts, offsets, files, checksums, policy hashes and key ids only.
//!
//! The log is opened with mode 0600, appended with one write per record, and fsynced after
//! each append: a record is in the log before the offsets it describes are committed.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
};

use serde::Serialize;
use sha2::{Digest, Sha256};

mod publish;
mod run_records;
pub use publish::AuditPublisher;
pub use run_records::{ConfigurationChangeRecord, PurposeInForce, StartRecord, StopRecord, configuration_changes};

use crate::{
    Error, Result,
    lake::parquet::{LandedFile, sha256_hex},
    lake::storage::LakeStorage,
};

/// `previous` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an audit record is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditEvent {
    /// Events of one partition consumed for one purpose and checkpointed.
    Landing(Box<LandingRecord>),
    /// Rows of patients removed from landed files.
    Erasure(ErasureRecord),
    /// Files removed again because the offsets they cover could not be committed.
    Withdrawal(WithdrawalRecord),
    /// The log itself was repaired after a crash.
    Recovery(RecoveryRecord),
    /// Small files merged into larger ones.
    Compaction(CompactionRecord),
    /// A lander started, and what each purpose lands under.
    Start(StartRecord),
    /// A lander stopped, and what it did.
    Stop(StopRecord),
    /// A purpose's policy or key changed since the last start.
    ConfigurationChange(ConfigurationChangeRecord),
    /// A consent record could not be read, and the patient its key names is held back.
    ConsentUnreadable(ConsentUnreadableRecord),
    /// A new version of a dataset's Delta table.
    TableCommit(TableCommitRecord),
    /// The re-identification risk of a purpose's datasets, measured per release unit.
    Disclosure(DisclosureRecord),
}

/// A disclosure check of one purpose's datasets (`sluice disclosure check`): per release unit,
/// the equivalence classes over the policy's quasi-identifiers and what enforcement would do.
/// Counts and column names only, never a value of a quasi-identifier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisclosureRecord {
    /// The purpose.
    pub purpose: String,
    /// The policy whose `[disclosure]` was applied (`name@vN`).
    pub policy: String,
    /// Its smallest class size, in distinct patients.
    pub k: u32,
    /// Its largest share of a unit's records allowed below k.
    pub max_share_at_risk: f64,
    /// Each release unit of each dataset.
    pub units: Vec<DisclosureUnitRecord>,
}

/// The measured risk of one release unit of one dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DisclosureUnitRecord {
    /// `<purpose>/<subject>`.
    pub dataset: String,
    /// The version of the dataset's table measured (none for a dataset without a table).
    pub table_version: Option<u64>,
    /// The release unit (`2026-03`).
    pub unit: String,
    /// Records measured.
    pub records: u64,
    /// Distinct patients.
    pub patients: u64,
    /// Equivalence classes.
    pub classes: u64,
    /// Distinct patients in the smallest class.
    pub smallest_class: Option<u64>,
    /// Records in classes below k.
    pub records_at_risk: u64,
    /// Distinct patients with a record in a class below k.
    pub patients_at_risk: u64,
    /// Whether the unit meets the threshold as landed.
    pub meets_threshold: bool,
    /// The quasi-identifiers, the one driving the risk most first.
    pub drivers: Vec<String>,
    /// Each quasi-identifier enforcement generalises, with the step it climbs to.
    pub generalised_to: BTreeMap<String, String>,
    /// Records enforcement suppresses after generalising.
    pub records_suppressed: u64,
    /// Whether that is more than the policy's share allows.
    pub exceeded_suppression_limit: bool,
}

/// A commit to a dataset's Delta table: the version an analyst reads to see exactly what the
/// lake held after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCommitRecord {
    /// The dataset, `<purpose>/<subject>`, whose table it is.
    pub table: String,
    /// The table's version after the commit.
    pub version: u64,
    /// What the commit did: `landing`, `compaction` or `erasure`.
    pub change: String,
    /// Keys of the files it added.
    pub added: Vec<String>,
    /// Keys of the files it removed.
    pub removed: Vec<String>,
}

/// A consent record sluice could not read. Names where it is and why, never whom it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentUnreadableRecord {
    /// The consent topic.
    pub topic: String,
    /// The record's partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// Why it could not be read.
    pub reason: String,
    /// Whether its key named a patient, who is now held back from every purpose but direct care
    /// until a readable record under the same key arrives; false for a record passed after
    /// review (`reviewed_consent_records`).
    pub patient_held: bool,
    /// Patients held back by unreadable consent records after this one.
    pub patients_held: u64,
}

/// One compaction run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompactionRecord {
    /// Landed files before the run.
    pub files_before: u64,
    /// Landed files after it.
    pub files_after: u64,
    /// Each merged file with the files it replaced.
    pub merged: Vec<MergedFile>,
    /// Inputs of an interrupted earlier compaction, removed because a merged file holds them.
    pub removed_leftovers: Vec<FileRecord>,
    /// Each table the compaction committed to, with its version after the compaction. The
    /// inputs of those merges stay in the lake for reading the tables' earlier versions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub table_versions: BTreeMap<String, u64>,
}

/// A file written by compaction, and its inputs (removed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergedFile {
    /// The merged file.
    pub output: FileRecord,
    /// The files it replaced, as they were.
    pub inputs: Vec<FileRecord>,
}

/// A repair of the log after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveryRecord {
    /// What was done.
    pub reason: String,
}

/// Files a lander removed again after its commit was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WithdrawalRecord {
    /// Why.
    pub reason: String,
    /// The files removed.
    pub files: Vec<FileRecord>,
}

/// What happened to one range of one clinical partition for one purpose, at one checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LandingRecord {
    /// The purpose.
    pub purpose: String,
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// First and last offset consumed in this range.
    pub offsets: (i64, i64),
    /// Messages consumed from the range.
    pub received: u64,
    /// Messages sent to the dead-letter topic (undecodable or invalid).
    pub invalid: u64,
    /// Events withheld from the purpose, by reason.
    pub withheld: BTreeMap<String, u64>,
    /// Events released although the patient holds an opt-out the purpose is exempt from, by opt-out.
    pub released_under_exemption: BTreeMap<String, ExemptionUse>,
    /// Rows landed.
    pub landed: u64,
    /// Events of the range the purpose's table already held from an earlier landing whose
    /// offsets were not committed (recorded by that landing's own record), so not landed again.
    #[serde(skip_serializing_if = "is_zero")]
    pub already_in_table: u64,
    /// The files the rows were written to (one per event date), if any.
    pub files: Vec<FileRecord>,
    /// Policy applied, `name@vN`.
    pub policy: String,
    /// SHA-256 of the policy file.
    pub policy_hash: String,
    /// Id of the pseudonymisation key (never the key).
    pub key_id: String,
    /// Schema the rows were read with, `subject vN fingerprint`.
    pub reader_schema: String,
    /// Fingerprints of the schemas the events were written with.
    pub writer_schemas: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Releases under one exemption, with the legal basis that allowed them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExemptionUse {
    /// Events released under it.
    pub events: u64,
    /// The legal basis declared in the purpose's policy.
    pub legal_basis: String,
    /// The approval's reference.
    pub reference: String,
}

/// A landed file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileRecord {
    /// Key of the file in the lake (its path relative to the lake root).
    pub path: String,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// Why rows were erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureTrigger {
    /// `sluice erase`, by an operator.
    Command,
    /// An opt-out or dissent read from the consent topic after the rows were landed.
    OptOut,
}

/// One erasure run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErasureRecord {
    /// What asked for it.
    pub trigger: ErasureTrigger,
    /// The operator's reference (e.g. a request or ticket number), or the consent offsets.
    pub reference: String,
    /// Purposes searched.
    pub purposes: Vec<String>,
    /// Number of patients searched for (never who they are).
    pub patients: u64,
    /// Files searched.
    pub files_searched: u64,
    /// Files rewritten, each with its checksums before and after.
    pub files_rewritten: Vec<RewrittenFile>,
    /// Files no current table version holds any more (replaced by a compaction or an earlier
    /// erasure, kept for reading earlier versions) that held rows of the patients: removed, so
    /// that no earlier version brings those rows back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_files_removed: Vec<FileRecord>,
    /// Each table the erasure committed to, with its version after the erasure.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub table_versions: BTreeMap<String, u64>,
    /// Rows of the patients removed from the files the tables hold now (and from files landed
    /// before tables); the earlier versions' files removed are listed above.
    pub rows_removed: u64,
}

/// A file rewritten without some rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RewrittenFile {
    /// Path relative to the lake root.
    pub path: String,
    /// Rows removed from it.
    pub rows_removed: u64,
    /// SHA-256 before the rewrite.
    pub sha256_before: String,
    /// SHA-256 after it.
    pub sha256_after: String,
    /// For a file of a dataset's table: the new file that holds the rows kept, which the
    /// erasure's table commit put in its place (the old file is removed at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

/// The envelope of every line, in the order its fields are written and hashed.
#[derive(Serialize)]
struct Envelope<'e> {
    sequence: u64,
    recorded_at: String,
    previous: &'e str,
    event: &'e AuditEvent,
}

/// An open audit log, positioned after its last record.
#[derive(Debug)]
pub struct AuditLog {
    /// The log file.
    path: PathBuf,
    /// Opened for appending.
    file: File,
    /// Hash of the last record (or [`GENESIS`]).
    previous: String,
    /// Sequence number of the next record.
    next_sequence: u64,
    /// Length of the file as this process last knew it: if it has grown, another process (a
    /// second lander, `sluice erase`) appended, and the chain continues from its last record.
    known_length: u64,
}

impl AuditLog {
    /// Opens (or creates, mode 0600) the log at `path`. The existing chain is verified first: a
    /// log that does not verify is not appended to, so a damaged trail is never extended as if
    /// nothing had happened.
    pub fn open(path: &Path) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Error::write(dir))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .mode(0o600)
            .open(path)
            .map_err(Error::write(path))?;
        let mut verified = verify(path)?;
        if verified.torn_tail {
            // A crash while appending left a partial last record. Its checkpoint was never
            // committed and will be done again, so the partial record is cut off, and the cut is
            // itself recorded below.
            file.set_len(verified.complete_bytes).map_err(Error::write(path))?;
            file.sync_all().map_err(Error::write(path))?;
            verified = verify(path)?;
            verified.torn_tail = true;
        }
        if let Some(problem) = verified.problems.first() {
            return Err(Error::AuditLog { path: path.to_owned(), reason: format!("does not verify: {problem}") });
        }
        let known_length = file.metadata().map_err(Error::write(path))?.len();
        let mut log = AuditLog {
            path: path.to_owned(),
            file,
            previous: verified.last_hash,
            next_sequence: verified.records,
            known_length,
        };
        if verified.torn_tail {
            log.append(&AuditEvent::Recovery(RecoveryRecord {
                reason: "a record left incomplete by a crash while it was being written was cut off".to_owned(),
            }))?;
        }
        Ok(log)
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record and syncs it to disk. Returns its hash. Processes sharing the log
    /// take turns under an exclusive lock on it, and each continues the chain from the record
    /// actually last in the file.
    pub fn append(&mut self, event: &AuditEvent) -> Result<String> {
        let path = self.path.clone();
        let failed = |error: std::io::Error| Error::AuditLog { path: path.clone(), reason: error.to_string() };
        self.file.lock().map_err(failed)?;
        let appended = self.append_locked(event);
        self.file.unlock().map_err(failed)?;
        appended
    }

    fn append_locked(&mut self, event: &AuditEvent) -> Result<String> {
        let path = self.path.clone();
        let failed = |error: std::io::Error| Error::AuditLog { path: path.clone(), reason: error.to_string() };
        let length = self.file.metadata().map_err(failed)?.len();
        if length != self.known_length {
            let (sequence, hash) = last_record(&self.path, length)?;
            self.next_sequence = sequence + 1;
            self.previous = hash;
        }
        let recorded_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let envelope = Envelope { sequence: self.next_sequence, recorded_at, previous: &self.previous, event };
        let body = serde_json::to_string(&envelope).expect("audit records always serialise");
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        let line = format!("{},\"hash\":\"{hash}\"}}\n", &body[..body.len() - 1]);
        self.file.write_all(line.as_bytes()).map_err(failed)?;
        self.file.sync_data().map_err(failed)?;
        self.previous = hash.clone();
        self.next_sequence += 1;
        self.known_length = length + line.len() as u64;
        Ok(hash)
    }
}

/// Sequence number and hash of the last record of a log `length` bytes long, which must be
/// complete and carry its own hash.
fn last_record(path: &Path, length: u64) -> Result<(u64, String)> {
    use std::io::{Seek, SeekFrom};
    let failed = |reason: String| Error::AuditLog { path: path.to_owned(), reason };
    let mut file = File::open(path).map_err(|e| failed(e.to_string()))?;
    let start = length.saturating_sub(1 << 20);
    file.seek(SeekFrom::Start(start)).map_err(|e| failed(e.to_string()))?;
    let mut tail = Vec::new();
    file.take(length - start).read_to_end(&mut tail).map_err(|e| failed(e.to_string()))?;
    let line = tail
        .strip_suffix(b"\n")
        .and_then(|rest| rest.split(|b| *b == b'\n').next_back())
        .ok_or_else(|| failed("the last record is incomplete".to_owned()))?;
    let envelope: serde_json::Value =
        serde_json::from_slice(line).map_err(|_| failed("the last record is not valid JSON".to_owned()))?;
    match (envelope["sequence"].as_u64(), stated_hash(line)) {
        (Some(sequence), Some(hash)) => Ok((sequence, hash)),
        _ => Err(failed("the last record has no sequence number or hash".to_owned())),
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    /// Records read.
    pub records: u64,
    /// Hash of the last record, or [`GENESIS`].
    pub last_hash: String,
    /// Every break in the chain, by line number; empty when the log is intact. An incomplete
    /// last record is not listed here but in `torn_tail`.
    pub problems: Vec<String>,
    /// The last record has no line end: a crash while it was being appended.
    pub torn_tail: bool,
    /// Bytes up to the end of the last complete line.
    pub complete_bytes: u64,
}

/// Recomputes the hash chain of the log at `path` (a missing file is an empty log).
pub fn verify(path: &Path) -> Result<Verification> {
    let read_error = |error: std::io::Error| Error::AuditLog { path: path.to_owned(), reason: error.to_string() };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Verification { last_hash: GENESIS.to_owned(), ..Verification::default() });
        }
        Err(error) => return Err(read_error(error)),
    };
    let mut verification = Verification { last_hash: GENESIS.to_owned(), ..Verification::default() };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        if reader.by_ref().take(64 << 20).read_until(b'\n', &mut line).map_err(read_error)? == 0 {
            break;
        }
        number += 1;
        if line.last() != Some(&b'\n') {
            verification.torn_tail = true;
            break;
        }
        verification.complete_bytes += line.len() as u64;
        match check_line(&line[..line.len() - 1], number - 1, &verification.last_hash) {
            Ok(hash) => verification.last_hash = hash,
            Err(problem) => {
                verification.problems.push(format!("line {number}: {problem}"));
                // Carry on from this record's own hash so that later, intact records are not
                // all reported too.
                if let Some(hash) = stated_hash(&line) {
                    verification.last_hash = hash;
                }
            }
        }
        verification.records += 1;
    }
    Ok(verification)
}

/// Checks one line (without its newline): returns its hash.
fn check_line(line: &[u8], expected_sequence: u64, previous: &str) -> Result<String, String> {
    const HASH_SUFFIX: usize = ",\"hash\":\"\"}".len() + 64;
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
    if text.len() < HASH_SUFFIX || !text.is_char_boundary(text.len() - HASH_SUFFIX) {
        return Err("not an audit record".to_owned());
    }
    let (body, suffix) = text.split_at(text.len() - HASH_SUFFIX);
    let stated = suffix
        .strip_prefix(",\"hash\":\"")
        .and_then(|rest| rest.strip_suffix("\"}"))
        .ok_or("no hash at the end of the record")?;
    let computed = hex::encode(Sha256::digest(format!("{body}}}").as_bytes()));
    if computed != stated {
        return Err("the record was changed after it was written (hash mismatch)".to_owned());
    }
    let envelope: serde_json::Value =
        serde_json::from_str(&format!("{body}}}")).map_err(|_| "the record is not valid JSON".to_owned())?;
    if envelope["previous"].as_str() != Some(previous) {
        return Err("does not follow the record before it (a record was removed, added or reordered)".to_owned());
    }
    if envelope["sequence"].as_u64() != Some(expected_sequence) {
        return Err(format!("sequence number is not {expected_sequence}"));
    }
    Ok(computed)
}

fn stated_hash(line: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(line).ok()?.trim_end();
    let start = text.rfind(",\"hash\":\"")? + ",\"hash\":\"".len();
    text.get(start..start + 64).map(str::to_owned)
}

/// The record of a landed file as it is in the lake now: key, checksum, rows and size.
pub fn file_record(storage: &LakeStorage, key: &str) -> Result<FileRecord> {
    let bytes = storage.get(key)?;
    let reader = parquet::file::reader::SerializedFileReader::new(bytes.clone()).map_err(|e| Error::Storage {
        location: storage.location().to_owned(),
        operation: "read the Parquet footer of",
        key: key.to_owned(),
        reason: e.to_string(),
    })?;
    let rows = parquet::file::reader::FileReader::metadata(&reader).file_metadata().num_rows();
    Ok(FileRecord {
        path: key.to_owned(),
        sha256: sha256_hex(&bytes),
        rows: u64::try_from(rows).unwrap_or(0),
        bytes: bytes.len() as u64,
    })
}

impl From<&LandedFile> for FileRecord {
    fn from(file: &LandedFile) -> Self {
        FileRecord { path: file.key.clone(), sha256: file.sha256.clone(), rows: file.rows as u64, bytes: file.bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erasure(rows: u64) -> AuditEvent {
        AuditEvent::Erasure(ErasureRecord {
            trigger: ErasureTrigger::Command,
            reference: "REQ-1".into(),
            purposes: vec!["research".into()],
            patients: 1,
            files_searched: 3,
            files_rewritten: Vec::new(),
            earlier_files_removed: Vec::new(),
            table_versions: BTreeMap::new(),
            rows_removed: rows,
        })
    }

    #[test]
    fn records_chain_and_reopening_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit/audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        let first = log.append(&erasure(1)).unwrap();
        drop(log);
        let mut log = AuditLog::open(&path).unwrap();
        let second = log.append(&erasure(2)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains(&format!("\"previous\":\"{GENESIS}\"")));
        assert!(lines[1].contains(&format!("\"previous\":\"{first}\"")), "{}", lines[1]);
        assert!(lines[1].ends_with(&format!(",\"hash\":\"{second}\"}}")));
        assert!(lines[0].contains("\"kind\":\"erasure\"") && lines[0].contains("\"sequence\":0"));
        let verified = verify(&path).unwrap();
        assert_eq!((verified.records, verified.last_hash, verified.problems), (2, second, Vec::<String>::new()));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn two_writers_sharing_a_log_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut lander = AuditLog::open(&path).unwrap();
        let mut operator = AuditLog::open(&path).unwrap();
        lander.append(&erasure(1)).unwrap();
        operator.append(&erasure(2)).unwrap();
        lander.append(&erasure(3)).unwrap();
        operator.append(&erasure(4)).unwrap();
        let verified = verify(&path).unwrap();
        assert_eq!((verified.records, verified.problems), (4, Vec::<String>::new()));
    }

    #[test]
    fn edits_removals_and_torn_records_are_reported_and_block_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        for rows in 1..=3 {
            log.append(&erasure(rows)).unwrap();
        }
        drop(log);
        let intact = std::fs::read_to_string(&path).unwrap();

        let edited = intact.replacen("\"rows_removed\":2", "\"rows_removed\":0", 1);
        std::fs::write(&path, &edited).unwrap();
        let problems = verify(&path).unwrap().problems;
        assert_eq!(problems, ["line 2: the record was changed after it was written (hash mismatch)"]);
        assert!(AuditLog::open(&path).unwrap_err().to_string().contains("does not verify"));

        let lines: Vec<&str> = intact.lines().collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        let problems = verify(&path).unwrap().problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("line 2: does not follow"), "{problems:?}");

        // A record torn by a crash is cut off when the log is next opened, and the cut recorded.
        std::fs::write(&path, &intact[..intact.len() - 10]).unwrap();
        let torn = verify(&path).unwrap();
        assert!(torn.torn_tail && torn.problems.is_empty());
        assert_eq!(torn.complete_bytes as usize, lines[0].len() + lines[1].len() + 2);
        let mut log = AuditLog::open(&path).unwrap();
        log.append(&erasure(4)).unwrap();
        let repaired = verify(&path).unwrap();
        assert_eq!((repaired.records, repaired.torn_tail, repaired.problems), (4, false, Vec::<String>::new()));
        assert!(std::fs::read_to_string(&path).unwrap().lines().nth(2).unwrap().contains("\"kind\":\"recovery\""));
    }
}
