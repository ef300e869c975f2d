//! # sluice-producers: getting clinical events onto Kafka
//!
//! A producer turns what a source system sends into records of the `sluice-schemas` catalogue
//! and publishes them, framed, to one Kafka topic per subject. Every adapter follows the same
//! path: **read** the source's format, **map** it to a typed [`clinical::ClinicalEvent`],
//! **validate** it ([`clinical::validate`]: NHS number Modulus 11, required fields, plausible
//! timestamps, well-formed ICD-10, LOINC and SNOMED CT codes), **encode** it under the newest
//! schema version, **publish** it with its [`headers`] (W3C `traceparent`, source reference,
//! adapter), and only then **acknowledge** the source. What fails goes to the dead-letter topic
//! with the reason, and the source is told; no error message ever quotes a patient's data.
//!
//! | adapter | source systems | module | command |
//! |---|---|---|---|
//! | HL7 v2 over MLLP | PAS/EPR ADT feeds, laboratory ORU^R01 results | [`hl7`] | `sluice produce hl7 --listen ADDR` |
//! | FHIR R4 over HTTP | EPR and GP system integrations, consent services | [`fhir`] | `sluice produce fhir --listen ADDR` |
//! | NDJSON batch files | extracts of FHIR resources or of subject records | [`batch_file`], [`subject_json`] | `sluice produce file PATH` |
//! | synthetic | demos, tests and benchmarks | [`synthetic`] | `sluice produce synthetic` |
//!
//! [`publisher`] is the idempotent Kafka producer they share (`enable.idempotence=true`,
//! `acks=all`, keyed by patient so one patient's events stay in order in one partition);
//! [`read_back`] reads topics back, for resuming imports. `docs/SOURCES.md` in the repository is
//! the guide for the interface teams of source systems.

pub mod batch_file;
pub mod clinical;
pub mod fhir;
pub mod headers;
pub mod hl7;
pub mod publisher;
pub mod read_back;
pub mod secure_listener;
pub mod subject_json;
pub mod synthetic;

mod error;
mod json_input;
mod telemetry;

pub use error::{Error, Result};
pub use publisher::{Acknowledged, EventPublisher, Origin, PendingDelivery, PublishReport, PublisherConfig};
pub use synthetic::{SyntheticEvent, SyntheticSource, SyntheticSourceConfig};
