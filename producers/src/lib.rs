//! # sluice-producers: getting clinical events onto Kafka
//!
//! A producer turns what a source system sends into records of the `sluice-schemas` catalogue
//! and publishes them, framed, to one Kafka topic per subject. Two pieces live here today:
//!
//! * [`synthetic`]: a deterministic source of realistic clinical events for a configurable
//!   number of patients (NHS numbers from the reserved test range `999`, with valid Modulus 11
//!   check digits), with a configurable share of patients holding National Data Opt-outs or
//!   Type 1 opt-outs. It exists for demos, tests and benchmarks; it never emits a real identifier.
//! * [`publisher`]: an idempotent Kafka producer (`enable.idempotence=true`, `acks=all`) that
//!   keys every event by patient so one patient's events stay in order in one partition, bounds
//!   the number of unacknowledged messages, and reports only what Kafka has acknowledged.
//! * [`fhir`]: FHIR R4 resources and Bundles mapped to validated clinical events, and the FHIR responses.
//!
//! Adapters for HL7 v2 over MLLP, FHIR R4 over HTTP and batch files will sit beside these and
//! feed the same publisher. [`subject_json`] reads the lines of batch extracts that already
//! follow the catalogue's schemas, in plain JSON, into validated clinical events.

pub mod batch_file;
pub mod clinical;
pub mod fhir;
pub mod headers;
pub mod hl7;
pub mod publisher;
pub mod read_back;
pub mod subject_json;
pub mod synthetic;

mod error;
mod json_input;

pub use error::{Error, Result};
pub use publisher::{Acknowledged, EventPublisher, Origin, PendingDelivery, PublishReport, PublisherConfig};
pub use synthetic::{SyntheticEvent, SyntheticSource, SyntheticSourceConfig};
