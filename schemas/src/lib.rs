//! # sluice-schemas: the Avro catalogue of clinical events
//!
//! Every event that moves through sluice is an Avro record of one *subject* (`adt`,
//! `observation`, `diagnosis`, `consent`) under one numbered *version* of that subject's
//! schema. The schema files at `schemas/avro/<subject>/v<N>.avsc` are the single source of
//! truth; they are embedded into this crate at build time and can also be loaded from disk
//! (which is what `sluice schemas check` does before a new version is merged).
//!
//! This crate owns five things:
//!
//! * the [`Catalogue`] of subjects and versions, indexed by CRC-64-AVRO fingerprint and by a
//!   Confluent-style schema id;
//! * the wire [`Framing`] of a Kafka message value: Avro single-object encoding
//!   (`C3 01` + 8-byte little-endian fingerprint + body, the default) or the Confluent wire
//!   format (`00` + 4-byte big-endian schema id + body);
//! * the [`Encoder`] and [`Decoder`]: a consumer resolves the writer's schema from the framing
//!   header and reads every record with the **newest** version of its subject, using Avro
//!   schema resolution, so downstream code sees one shape per subject;
//! * the BACKWARD_TRANSITIVE [`compatibility`] rules that every new version must follow;
//! * the typed event [`model`]: one Rust type per subject, with its validation rules and its
//!   conversion to and from the Avro records of the catalogue, checked against the schema files
//!   by this crate's tests (see the module for how to add a field or a version).
//!
//! It also holds [`NhsNumber`], the validated patient identifier that every subject carries.
//!
//! Every field that holds text carries a custom `"sensitivity"` attribute in the schema files
//! ([`Sensitivity`]): `"direct-identifier"` (NHS number, local patient id, names, address),
//! `"quasi-identifier"` (date of birth, postcode), `"record-identifier"` (event ids),
//! `"free-text"` (comments, display names as sent), `"coded"` (codes, units, ODS codes) or
//! `"operational"` (sluice's own bookkeeping). Landing policies read it and refuse to land an
//! identifier or free text as it is, or any text field without a label. Custom attributes are
//! not part of the Avro Parsing Canonical Form, so adding or changing a label never changes a
//! fingerprint or schema id.
//!
//! Events are written through the typed [`model`]: a source builds a
//! [`ClinicalEvent`](model::ClinicalEvent), validates it, and the resulting record carries the
//! subject, the schema version (from the catalogue) and the Kafka key.
//!
//! ```
//! use sluice_schemas::model::{ClinicalEvent, ConsentEvent, ConsentScope};
//! use sluice_schemas::{Catalogue, Decoder, Encoder, Framing, NhsNumber};
//!
//! let catalogue = Catalogue::embedded();
//! // A National Data Opt-out, written with the newest consent schema in single-object framing.
//! let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
//! let change = ClinicalEvent::Consent(ConsentEvent {
//!     event_id: uuid::Uuid::nil(),
//!     effective_at: at,
//!     effective_until: None,
//!     recorded_at: at,
//!     source_organisation: "X26".into(),
//!     nhs_number: NhsNumber::parse("9434765919").unwrap(),
//!     scope: ConsentScope::NationalDataOptOut,
//!     deny: true,
//!     purposes: vec![],
//! });
//! let record = change.validate(at).unwrap().into_record();
//! let version = catalogue.version(record.subject(), record.version())?;
//! let bytes = Encoder::new(catalogue, Framing::SingleObject).encode(version, record.value())?;
//! assert_eq!(&bytes[..2], &[0xC3, 0x01]);
//!
//! let decoded = Decoder::new(catalogue).decode(&bytes)?;
//! assert_eq!(decoded.writer.subject(), "consent");
//! # Ok::<(), sluice_schemas::Error>(())
//! ```

mod catalogue;
mod codec;
pub mod compatibility;
mod consent_key;
mod error;
mod framing;
pub mod model;
mod nhs_number;
mod sensitivity;
mod study_id;

pub use catalogue::{Catalogue, SchemaVersion, fingerprint_of, fingerprinted_label, subjects};
pub use codec::{DecodedEvent, Decoder, Encoder, SchemaIdResolver};
pub use consent_key::consent_record_key;
pub use error::{Error, Result};
pub use framing::{Framing, WriterSchemaRef};
pub use nhs_number::{InvalidNhsNumber, NhsNumber};
pub use sensitivity::Sensitivity;
pub use study_id::{InvalidStudyId, MAX_STUDY_ID_LEN, StudyId};

/// Re-exported so that users of this crate build and read values with the same Avro version.
pub use apache_avro;
