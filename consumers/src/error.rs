//! Errors of landing. None carries a field value: a patient identifier must never reach a log
//! line or an error message.

use std::path::PathBuf;

use rdkafka::error::KafkaError;

/// Result of landing operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can stop a lander.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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

    /// The policy names a field in a way the schema cannot satisfy.
    #[error("policy `{policy}`: field `{field}` of subject `{subject}`: {reason}")]
    PolicyMismatch {
        /// The policy's name.
        policy: String,
        /// Subject.
        subject: String,
        /// Field.
        field: String,
        /// What does not fit.
        reason: String,
    },

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
