//! Errors of the schema catalogue and of Avro framing and decoding.
//!
//! No variant ever carries a field value: decode failures name the subject, the version and
//! the kind of failure only, because a message body may hold patient identifiers.

use std::path::PathBuf;

use crate::{Framing, WriterSchemaRef};

/// Result of catalogue, framing and codec operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A schema file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    ReadSchemaFile {
        /// The file or directory that could not be read.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },

    /// A schema file is not at `<subject>/v<N>.avsc`.
    #[error("schema file {path} is not named <subject>/v<N>.avsc with N a positive number")]
    BadSchemaFileName {
        /// The offending file.
        path: PathBuf,
    },

    /// A schema file does not parse as an Avro schema.
    #[error("subject `{subject}` version {version}: not a valid Avro schema: {reason}")]
    InvalidSchema {
        /// Subject the file belongs to.
        subject: String,
        /// Version number taken from the file name.
        version: u32,
        /// The Avro parser's explanation.
        reason: String,
    },

    /// A subject's versions are not numbered 1, 2, ... N without gaps.
    #[error("subject `{subject}` has versions {found:?}; versions must be numbered 1..N without gaps")]
    VersionGap {
        /// The subject with the gap.
        subject: String,
        /// The version numbers that exist.
        found: Vec<u32>,
    },

    /// Two schema files have the same fingerprint or the same derived schema id, so a reader
    /// could not tell which one wrote a message.
    #[error("`{first}` and `{second}` cannot be told apart on the wire ({what})")]
    AmbiguousSchema {
        /// `subject vN` of the first schema.
        first: String,
        /// `subject vN` of the second schema.
        second: String,
        /// Which identifier collides.
        what: &'static str,
    },

    /// The catalogue has no such subject.
    #[error("unknown subject `{0}`")]
    UnknownSubject(String),

    /// A message is too short to hold its framing header.
    #[error("message of {len} bytes is too short for {framing} framing")]
    TruncatedHeader {
        /// The framing the first byte announced.
        framing: Framing,
        /// Length of the message.
        len: usize,
    },

    /// A message starts with neither the single-object marker `C3 01` nor the Confluent magic byte `00`.
    #[error("message does not start with a known framing marker (first byte 0x{first_byte:02x})")]
    UnknownFraming {
        /// The first byte of the message.
        first_byte: u8,
    },

    /// The writer schema named in the header is not in the catalogue.
    #[error("no schema in the catalogue is {0}")]
    UnknownWriterSchema(WriterSchemaRef),

    /// A record of this version cannot be framed with the schema registry's ids: the registry
    /// gave it none.
    #[error("{0} has no id at the schema registry")]
    NoRegistryId(String),

    /// The schema registry's id names a schema that is not a catalogued version (or no schema).
    #[error("schema id {0} at the schema registry is not a catalogued version")]
    NotCataloguedAtRegistry(u32),

    /// The schema registry could not say what an id names (unreachable, or an answer that is
    /// not a registry's): the record must wait, not be judged.
    #[error("the schema registry cannot say what schema id {id} is: {reason}")]
    SchemaRegistry {
        /// The id asked about.
        id: u32,
        /// Why not.
        reason: String,
    },

    /// The message body does not decode with the writer schema named in its header.
    #[error("cannot decode a `{subject}` v{version} body: {reason}")]
    Decode {
        /// Subject of the writer schema.
        subject: String,
        /// Version of the writer schema.
        version: u32,
        /// Kind of failure, without any field value.
        reason: String,
    },

    /// A value does not match the schema it was to be written with.
    #[error("cannot encode a `{subject}` v{version} record: {reason}")]
    Encode {
        /// Subject of the schema.
        subject: String,
        /// Version of the schema.
        version: u32,
        /// Kind of failure, without any field value.
        reason: String,
    },
}

/// The kind of an Avro error without its payload: apache-avro's messages can quote the
/// offending value, which may be a patient identifier, so the reason is one of these fixed
/// phrases, chosen by the kind of failure, and never apache-avro's own text.
pub(crate) fn redacted_reason(error: &apache_avro::Error) -> String {
    use apache_avro::error::Details;
    let reason = match error.details() {
        Details::ConvertToUtf8(_) | Details::ConvertToUtf8Error(_) => "a string is not valid UTF-8",
        Details::MemoryAllocation { .. } => "a length is larger than the data could hold",
        Details::ReadBytes(_)
        | Details::ReadString(_)
        | Details::ReadFixed(..)
        | Details::ReadBoolean(_)
        | Details::ReadDouble(_)
        | Details::ReadFloat(_)
        | Details::ReadDuration(_)
        | Details::ReadVariableIntegerBytes(_) => "the body ends before its last field",
        Details::IntegerOverflow | Details::ZagI32(..) | Details::ConvertI64ToUsize(..) => {
            "an integer or length is out of range"
        }
        Details::GetUnionVariant { .. } => "a union branch index is out of range",
        Details::GetEnumSymbol(_) => "an enum index is out of range",
        Details::BoolValue(_) => "a boolean byte is neither 0 nor 1",
        Details::ConvertStrToUuid(_) | Details::ConvertSliceToUuid(_) => "a UUID is malformed",
        _ => "malformed data",
    };
    reason.to_owned()
}
