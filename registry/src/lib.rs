//! # A schema registry served from the catalogue
//!
//! Trusts with a Kafka estate, and integration engines, frame Avro records the Confluent way:
//! a zero byte, a four-byte schema id, then the body, with the id assigned by a Confluent Schema
//! Registry the serializer talks to. `sluice registry serve` is such a registry, answering from
//! sluice's reviewed catalogue (`schemas/avro`) and nothing else:
//!
//! * **Subjects** follow the topic-name strategy: the values of topic `clinical.adt` are subject
//!   `clinical.adt-value`, whose versions are the catalogue's `adt` versions, numbered alike.
//! * **Ids** are the catalogue's Confluent schema ids (the low 31 bits of each version's
//!   fingerprint), so the records sluice's own producers frame with Confluent framing carry ids
//!   this registry knows, and every instance of it gives the same ids.
//! * **Registering** a schema that is catalogued under the subject (the same Parsing Canonical
//!   Form: documentation and key order do not matter) returns its id, as a registry does for a
//!   schema it already holds. Anything else is refused with HTTP 409 and a message saying how
//!   schemas change here: a reviewed change to `schemas/avro`, checked by `sluice schemas check`.
//! * **Compatibility** is reported as `BACKWARD_TRANSITIVE`, and checks run against the catalogue.
//!
//! The API is the subset serializers and registry clients use (confluent-kafka's
//! `SchemaRegistryClient`, `AvroSerializer` and `AvroDeserializer` are tested against it):
//!
//! | Request | Answer |
//! | --- | --- |
//! | `GET /subjects` | the subjects |
//! | `GET /subjects/{subject}/versions` | their version numbers |
//! | `GET /subjects/{subject}/versions/{version}` (a number or `latest`) | `subject`, `version`, `id`, `schema` |
//! | `GET /subjects/{subject}/versions/{version}/schema` | the schema itself |
//! | `POST /subjects/{subject}/versions` `{"schema": ...}` | `{"id": ...}` for a catalogued schema, else 409 |
//! | `POST /subjects/{subject}` `{"schema": ...}` | the version it is, else 404 |
//! | `GET /schemas/ids/{id}` | `{"schema": ...}` |
//! | `GET /schemas/ids/{id}/subjects`, `.../versions` | where the id is registered |
//! | `GET /schemas/types` | `["AVRO"]` |
//! | `POST /compatibility/subjects/{subject}/versions/{version}` | `{"is_compatible": ...}` (and `messages` with `verbose=true`) |
//! | `GET /config`, `GET /config/{subject}` | `{"compatibilityLevel": "BACKWARD_TRANSITIVE"}` |
//! | `GET /mode` | `{"mode": "READONLY"}` |
//!
//! Errors are Confluent's JSON (`error_code`, `message`): 40401 subject not found, 40402 version
//! not found, 40403 schema not found, 42201 invalid schema, 42202 invalid version, 409 not in the
//! catalogue, 40501 changing configuration or deleting.
//!
//! ## An estate's own registry
//!
//! Where producers already frame with the ids of a registry the estate runs, the lander reads
//! those ids through [`RegistryIds`] (`sluice land --schema-registry URL`): each id is looked up
//! once and matched to a catalogued version by its canonical form; an id that names anything
//! else sends its records to the dead-letter topic with that reason.
//!
//! ```
//! use sluice_registry::CatalogueRegistry;
//! use sluice_schemas::Catalogue;
//!
//! let registry = CatalogueRegistry::new(Catalogue::embedded(), [("clinical.adt".into(), "adt".into())]);
//! let latest = registry.version("clinical.adt-value", "latest").unwrap();
//! let found = registry.find("clinical.adt-value", latest.version.json()).unwrap();
//! assert_eq!(found.id(), latest.id());
//! ```

pub mod catalogue_registry;
pub mod client;
pub mod server;

pub use catalogue_registry::{COMPATIBILITY, CatalogueRegistry, Registered};
pub use client::{RegistryIds, ids_for_producing};
pub use server::{RegistryServer, router};

/// What the registry refuses, with the Confluent error code each answers with. Messages name
/// subjects, versions and ids, never a record value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No such subject (40401).
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// The subject has no such version (40402).
    #[error("Version {version} not found under subject '{subject}'.")]
    VersionNotFound {
        /// The registry subject.
        subject: String,
        /// The version asked for.
        version: String,
    },
    /// No catalogued version has this id (40403).
    #[error("Schema {0} not found")]
    SchemaIdNotFound(u32),
    /// The version is neither a positive number nor `latest` (42202).
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    /// The schema text is not an Avro schema (42201).
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    /// A schema that is not a catalogued version of the subject (409 on registering, 40403 on
    /// looking up).
    #[error(
        "Schema not in the reviewed catalogue: this registry serves sluice's catalogue and registers nothing \
         new. Subject '{subject}' holds the versions of schemas/avro/{catalogued}/; a new version is a reviewed \
         change to that directory, checked by `sluice schemas check` (BACKWARD_TRANSITIVE)."
    )]
    NotCatalogued {
        /// The registry subject.
        subject: String,
        /// The catalogue subject it holds.
        catalogued: String,
    },
    /// Deleting, or changing the configuration or mode (40501).
    #[error("This registry is read-only: its schemas and configuration come from the reviewed catalogue.")]
    ReadOnly,
}

impl Error {
    /// The Confluent error code, whose first three digits are the HTTP status.
    pub fn error_code(&self) -> u32 {
        match self {
            Error::SubjectNotFound(_) => 40401,
            Error::VersionNotFound { .. } => 40402,
            Error::SchemaIdNotFound(_) => 40403,
            Error::InvalidSchema(_) => 42201,
            Error::InvalidVersion(_) => 42202,
            Error::NotCatalogued { .. } => 409,
            Error::ReadOnly => 40501,
        }
    }
}

/// The result of a registry operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
