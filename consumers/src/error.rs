//! Errors of landing. None carries a field value: a patient identifier must never reach a log
//! line or an error message.

use std::path::PathBuf;

use rdkafka::error::KafkaError;

/// Result of landing operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can stop a lander.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The register of source organisations (which decides what a Type 1 opt-out covers) could
    /// not be read; the lander does not start without one.
    #[error(transparent)]
    SourceOrganisations(#[from] crate::consent::RegisterError),
    /// The lander's configuration leaves out something it cannot run without (no purposes, no
    /// clinical topics, or no consent or dead-letter topic): [`crate::LanderConfig::default`]
    /// names no topics, because only the deployment knows them.
    #[error("the lander's configuration is incomplete: {0}")]
    IncompleteConfig(&'static str),
    /// A Kafka client could not be created from the given configuration.
    #[error("cannot create the Kafka {role}: {source}")]
    CreateClient {
        /// Which client (consumer, consent reader, dead-letter producer).
        role: &'static str,
        /// librdkafka's reason.
        source: KafkaError,
    },

    /// A Kafka operation failed.
    #[error("Kafka {operation} failed: {source}")]
    Kafka {
        /// What was being done.
        operation: String,
        /// librdkafka's reason.
        source: KafkaError,
    },

    /// The consent topic could not be read to its end. Landing holds rather than release data
    /// without knowing patients' opt-outs.
    #[error("the consent topic `{topic}` cannot be read ({reason}); landing holds until it can")]
    ConsentUnavailable {
        /// The consent topic.
        topic: String,
        /// Why.
        reason: String,
    },

    /// The schema registry the producers frame with could not say what a record's schema id is.
    /// The record is neither landed nor dead-lettered: the lander stops without committing it.
    #[error("{0}; landing holds until the schema registry answers")]
    SchemaRegistryUnavailable(String),

    /// The pseudonymisation policy does not say what to do with a field of a schema that
    /// would be landed. Fail closed: such a field is never landed by default.
    #[error(
        "policy `{policy}` has no action for field `{field}` of subject `{subject}` v{version}; add one before landing"
    )]
    UnmappedField {
        /// The policy's name.
        policy: String,
        /// Subject whose schema has the field.
        subject: String,
        /// Schema version (the newest, which consumers read with).
        version: u32,
        /// The field.
        field: String,
    },

    /// The policy names a field in a way the schema cannot satisfy: an action unsuited to the
    /// field's type, an action the field's sensitivity forbids (such as `keep` of a direct
    /// identifier), or parameters that make no sense.
    #[error("policy `{policy}`: field `{field}` of subject `{subject}`: {reason}")]
    PolicyMismatch {
        /// The policy's label (`name@vN`).
        policy: String,
        /// Subject and version, e.g. `adt v1`.
        subject: String,
        /// Field.
        field: String,
        /// What does not fit.
        reason: String,
    },

    /// The policy gives an action for a field the schema does not have. A stale or misspelt
    /// policy is refused rather than guessed at: the reviewer may believe a field is governed
    /// when it is not.
    #[error(
        "policy `{policy}` names field `{field}` under [subjects.{subject}], but subject `{subject}` v{version} has no such field; remove or correct the entry"
    )]
    UnknownPolicyField {
        /// The policy's label (`name@vN`).
        policy: String,
        /// Subject.
        subject: String,
        /// Schema version planned against (the newest).
        version: u32,
        /// The field named in the policy.
        field: String,
    },

    /// The policy has no `[subjects.<subject>]` table for a subject that would be landed.
    #[error(
        "policy `{policy}` has no [subjects.{subject}] table, so subject `{subject}` v{version} cannot be landed under it"
    )]
    UncoveredSubject {
        /// The policy's label (`name@vN`).
        policy: String,
        /// Subject.
        subject: String,
        /// Schema version planned against (the newest).
        version: u32,
    },

    /// Two fields of one subject would land in the same output column.
    #[error(
        "policy `{policy}`: fields `{first}` and `{second}` of subject `{subject}` would both land as column `{column}`"
    )]
    ColumnClash {
        /// The policy's label (`name@vN`).
        policy: String,
        /// Subject and version, e.g. `adt v1`.
        subject: String,
        /// The contested column name.
        column: String,
        /// The field that claimed the column first.
        first: String,
        /// The field that claimed it again.
        second: String,
    },

    /// A policy file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    ReadPolicy {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// A policy file is not a valid policy: bad TOML, an unknown key, a missing key, an unknown
    /// action or purpose. The reason quotes the file, never a patient's data.
    #[error("policy file `{origin}` is invalid: {reason}")]
    InvalidPolicy {
        /// Where the text came from (a path, or `builtin:policies/<purpose>.toml`).
        origin: String,
        /// What is wrong, naming the key or value of the policy file.
        reason: String,
    },

    /// No policy was given for a purpose, and sluice has no built-in one for it (studies always
    /// need their own policy file).
    #[error("no policy for purpose `{0}`: give a policy file for it")]
    NoPolicy(String),

    /// The policy given for a purpose is written for another purpose.
    #[error("policy `{policy}` is written for purpose `{written_for}`, not `{purpose}`")]
    PolicyForAnotherPurpose {
        /// The policy's label.
        policy: String,
        /// The purpose named in the policy.
        written_for: String,
        /// The purpose it was given for.
        purpose: String,
    },

    /// A consent record could be read neither as a change nor for the patient its Kafka key
    /// names, so nobody knows whose decision it was. Landing stops rather than guess; once the
    /// record has been reviewed, `reviewed_consent_records` (`--reviewed-consent-record
    /// PARTITION:OFFSET`) lets the lander past it.
    #[error(
        "consent record at partition {partition}, offset {offset} of `{topic}` cannot be read ({reason}) and its key \
         names no patient, so whose decision it holds is unknown; landing stops rather than release anybody's data. \
         Review it (it is on the dead-letter topic), then pass --reviewed-consent-record {partition}:{offset}"
    )]
    ConsentRecordWithoutPatient {
        /// The consent topic.
        topic: String,
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
        /// Why it could not be read (never a value from it).
        reason: String,
    },

    /// Two purposes were given keys with the same secret (the message names purposes and key
    /// ids, never the secret).
    #[error("{0}")]
    SharedKey(String),

    /// No pseudonymisation key was supplied for a purpose.
    #[error("no pseudonymisation key for purpose `{0}`")]
    MissingKey(String),

    /// A purpose name is not one sluice knows.
    #[error("unknown purpose `{0}`: expected direct-care, planning, research or study:<id>")]
    UnknownPurpose(String),

    /// A landed file could not be written, synced or renamed into place. Nothing is committed.
    #[error("cannot write {path}: {reason}")]
    WriteFile {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// The lake's storage (a directory or an object store) refused an operation. Nothing that
    /// depends on it is committed.
    #[error("lake {location}: cannot {operation} `{key}`: {reason}")]
    Storage {
        /// The lake's location (a directory or a URL).
        location: String,
        /// What was being done.
        operation: &'static str,
        /// The object's key in the lake.
        key: String,
        /// The store's reason.
        reason: String,
    },

    /// A dataset's Delta table could not be opened, created or committed to (see
    /// [`crate::lake::table`]). Nothing that depends on the commit is done: its offsets are not
    /// committed and its audit record is not written.
    #[error("table {location}: cannot {operation} it: {reason}")]
    Table {
        /// The table's location.
        location: String,
        /// What was being done.
        operation: &'static str,
        /// delta-rs's reason.
        reason: String,
    },

    /// The audit log cannot be read, verified or appended to. Landing and erasure stop rather
    /// than act without a record.
    #[error("audit log {path}: {reason}")]
    AuditLog {
        /// The log file.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// Rows could not be erased from a landed file; the file is left as it was.
    #[error("cannot erase from {path}: {reason}")]
    Erase {
        /// The landed file.
        path: PathBuf,
        /// Why (never a value from the file).
        reason: String,
    },

    /// A dataset could not be measured for disclosure risk: a file unreadable, or without the
    /// patient pseudonym its classes are counted by. Nothing is reported for it as safe.
    #[error("cannot measure the disclosure risk of {path}: {reason}")]
    Disclosure {
        /// The landed file, or the dataset (`<purpose>/<subject>`).
        path: String,
        /// Why (never a value from the file).
        reason: String,
    },

    /// Audit records could not be copied to the audit topic. The log file, which is the
    /// authority, is unaffected; the next attempt starts from the topic's end.
    #[error("cannot publish the audit trail to `{topic}`: {reason}")]
    AuditPublish {
        /// The audit topic.
        topic: String,
        /// Why.
        reason: String,
    },

    /// A dead-letter record was not acknowledged, so the offsets it covers are not committed.
    #[error("cannot dead-letter a record to `{topic}`: {source}")]
    DeadLetter {
        /// The dead-letter topic.
        topic: String,
        /// librdkafka's reason.
        source: KafkaError,
    },
}

impl Error {
    pub(crate) fn kafka(operation: impl Into<String>) -> impl FnOnce(KafkaError) -> Error {
        let operation = operation.into();
        move |source| Error::Kafka { operation, source }
    }

    pub(crate) fn write(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |error| Error::WriteFile { path: path.to_owned(), reason: error.to_string() }
    }
}
