//! Errors of event sources and of publishing to Kafka.

use rdkafka::error::KafkaError;

/// Result of producer operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while producing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kafka producer could not be created from the given client configuration.
    #[error("cannot create the Kafka producer: {0}")]
    CreateProducer(#[source] KafkaError),

    /// A source event could not be encoded with its schema.
    #[error("cannot encode an event: {0}")]
    Encode(#[from] sluice_schemas::Error),

    /// No topic is configured for a subject the source emitted.
    #[error("no topic is configured for subject `{0}`")]
    NoTopic(String),

    /// Kafka did not acknowledge an event. Nothing after it is reported as published.
    #[error("Kafka did not acknowledge an event for topic `{topic}`: {source}")]
    Delivery {
        /// The topic the event was for.
        topic: String,
        /// librdkafka's reason.
        source: KafkaError,
    },

    /// Outstanding events were not acknowledged before the flush timeout.
    #[error("Kafka did not acknowledge all events within {seconds} s of flushing: {source}")]
    Flush {
        /// How long the flush waited.
        seconds: u64,
        /// librdkafka's reason.
        source: KafkaError,
    },

    /// A listener could not bind or accept on its address.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: std::net::SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },

    /// A state file (the HL7 journal of stored messages, a file import's checkpoint) could not
    /// be read or written.
    #[error("cannot use the state file {path}: {source}")]
    State {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },

    /// The HL7 listener's local code tables could not be read or are not valid.
    #[error("cannot use the local code tables {path}: {reason}")]
    LocalCodes {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong: the operating system's reason or the entry at fault.
        reason: String,
    },

    /// The topics could not be read back (to resume a file import where it stopped).
    #[error("cannot read the topics back to find what is already stored: {source}")]
    ReadBack {
        /// librdkafka's reason.
        source: KafkaError,
    },

    /// A listener's TLS certificate, key or client CA file could not be used.
    #[error("cannot set up TLS with {path}: {reason}")]
    Tls {
        /// The PEM file.
        path: std::path::PathBuf,
        /// Why it could not be used (never the file's contents).
        reason: String,
    },

    /// A secret (a listener's bearer token) could not be read from its file or environment
    /// variable, or is unfit for use.
    #[error("cannot use {what}: {reason}")]
    Secret {
        /// Which secret.
        what: &'static str,
        /// Why, naming the file or variable and never the value.
        reason: String,
    },
}
