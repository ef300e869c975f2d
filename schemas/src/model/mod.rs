//! # The typed event model: one Rust type per subject, checked against the schema files
//!
//! Every adapter (HL7 v2, FHIR R4, batch files, the synthetic source) maps what it receives to a
//! [`ClinicalEvent`]: an [`AdtEvent`], [`ObservationEvent`], [`DiagnosisEvent`] or
//! [`ConsentEvent`]. This module is the only place that knows how those types become Avro
//! records of the catalogue and how they are read back:
//!
//! ```text
//!   source format ──map──▶ ClinicalEvent ──validate──▶ ValidEvent ──into_record──▶ SubjectRecord ──▶ publisher
//!                               ▲                                                     (subject, version,
//!   Avro record ──from_record───┘                                                      Kafka key, Avro value)
//! ```
//!
//! * [`ClinicalEvent::validate`] applies the rules of [`validate`] (NHS number Modulus 11,
//!   required fields, plausible timestamps, well-formed codes) and gives a [`ValidEvent`]. Only a
//!   `ValidEvent` becomes a [`SubjectRecord`], and the publisher only takes `SubjectRecord`s: an
//!   event that was not validated cannot be published.
//! * [`ValidEvent::into_record`] writes the **newest** schema version of the subject, as found in
//!   the [`Catalogue`]; [`ValidEvent::into_record_as`] writes an older catalogued
//!   version (fields that version does not have are left out), for sources that deliberately
//!   write an old version.
//! * [`ClinicalEvent::from_record`] reads a record of the newest version back (as the consumers'
//!   decoder yields every record), [`ClinicalEvent::from_record_of`] a record of any catalogued
//!   version.
//!
//! Nothing here hard-codes a schema version or an enum index. The writer walks the fields of the
//! schema it writes, in the schema's order, and asks the event for each one by name; an enum
//! value is written at the index of its symbol in the schema's symbol list, a nullable value at
//! the index of the union's `null` or non-null branch. Versions come from the catalogue.
//!
//! ## The schema check
//!
//! `schemas/src/model/tests.rs` holds the tests that keep the model and the `.avsc` files
//! together. For every subject they build a fully populated event and check
//!
//! * that the model lists exactly the fields of the newest schema version, in its order
//!   (nested records too), and that the record it writes validates against that schema
//!   (`Value::validate`), resolves to itself (`Value::resolve`) and reads back to the event;
//! * that writing it under every catalogued version gives exactly that version's fields, a
//!   record that validates against it, and reads back ([`ClinicalEvent::from_record_of`]);
//! * that each Rust enum ([`AvroEnum`]) maps its variants one to one onto the symbols of the
//!   schema's enum of the same name, and that every enum of the schemas has a Rust type.
//!
//! If a type and its schema differ, one of them fails and names the field or the symbol.
//!
//! ## How to add a field (a new schema version)
//!
//! 1. Add `schemas/avro/<subject>/v<N+1>.avsc`: the previous version with the new field, which
//!    must have a default (`null` for a `["null", T]` union) so that the version stays
//!    BACKWARD_TRANSITIVE compatible (`sluice schemas check` and the compatibility tests say so).
//! 2. Add the field to the subject's Rust type (e.g. [`ObservationEvent`], in `observation.rs`),
//!    usually as an `Option`. The compiler now shows every place that builds the type: the
//!    adapters' mappings, the synthetic source, the property-test generators.
//! 3. In the same file, write the field in `fields()` (by its schema name) and read it in
//!    `read()`. Until you do, the schema check fails with `<subject> v<N+1>: the model has no
//!    value for field <name>`.
//! 4. Add the field to the fully populated example in `tests.rs` if it is not set yet.
//!
//! Nothing else names versions: [`ValidEvent::into_record`] now writes v<N+1>, and sources
//! still writing an older version through [`ValidEvent::into_record_as`] keep doing so.
//!
//! ## How to add an enum symbol
//!
//! Add the symbol to the new schema version and the variant to the Rust enum, with its symbol
//! in the enum's [`AvroEnum::SYMBOLS`] table. The schema check fails until both agree.
//!
//! ## Errors
//!
//! Reading errors are [`ValidationError`]s: they name the field (by its schema name) and the
//! rule, never the value, because values identify patients.

mod adt;
mod consent;
mod decimal;
mod diagnosis;
mod observation;
mod patient;
mod read;
mod symbols;
mod valid;
pub mod validate;
mod write;

#[cfg(test)]
mod tests;

use apache_avro::types::Value;
use uuid::Uuid;

pub use adt::{AdtEvent, AdtEventType, PatientClass};
pub use consent::{ConsentDecision, ConsentEvent, ConsentScope, ConsentScopeKind};
pub use decimal::ResultDecimal;
pub use diagnosis::{DiagnosisCodeSystem, DiagnosisEvent};
pub use observation::{Interpretation, ObservationCodeSystem, ObservationEvent, ReferenceRange};
pub use patient::{AdministrativeSex, PatientIdentity, Provenance};
pub use symbols::AvroEnum;
pub use valid::{SubjectRecord, ValidEvent};
pub use validate::{Problem, ValidationError};
pub use write::WriteError;

use crate::{Catalogue, NhsNumber, SchemaVersion, subjects};

/// Any event an adapter can produce: one variant per subject of the catalogue that sources
/// send (the audit trail is written by sluice itself and has no event type here).
#[derive(Debug, Clone, PartialEq)]
pub enum ClinicalEvent {
    /// To the `adt` subject.
    Adt(AdtEvent),
    /// To the `observation` subject.
    Observation(ObservationEvent),
    /// To the `diagnosis` subject.
    Diagnosis(DiagnosisEvent),
    /// To the `consent` subject.
    Consent(ConsentEvent),
}

/// The subjects a [`ClinicalEvent`] can belong to.
pub const EVENT_SUBJECTS: [&str; 4] = [subjects::ADT, subjects::OBSERVATION, subjects::DIAGNOSIS, subjects::CONSENT];

impl ClinicalEvent {
    /// The catalogue subject this event belongs to.
    pub fn subject(&self) -> &'static str {
        match self {
            ClinicalEvent::Adt(_) => subjects::ADT,
            ClinicalEvent::Observation(_) => subjects::OBSERVATION,
            ClinicalEvent::Diagnosis(_) => subjects::DIAGNOSIS,
            ClinicalEvent::Consent(_) => subjects::CONSENT,
        }
    }

    /// The event's id.
    pub fn event_id(&self) -> Uuid {
        match self {
            ClinicalEvent::Adt(e) => e.provenance.event_id,
            ClinicalEvent::Observation(e) => e.provenance.event_id,
            ClinicalEvent::Diagnosis(e) => e.provenance.event_id,
            ClinicalEvent::Consent(e) => e.event_id,
        }
    }

    /// The Kafka key of the event's record: the NHS number, or `<organisation>:<local id>`
    /// without one, so that one patient's events stay in order in one partition. A consent
    /// change's key is the whole change ([`crate::consent_record_key`]), because the consent
    /// topic is compacted on the key and no change may be lost.
    pub fn record_key(&self) -> String {
        match self {
            ClinicalEvent::Adt(e) => e.patient.record_key(&e.provenance),
            ClinicalEvent::Observation(e) => e.patient.record_key(&e.provenance),
            ClinicalEvent::Diagnosis(e) => e.patient.record_key(&e.provenance),
            ClinicalEvent::Consent(e) => e.record_key(),
        }
    }

    /// The newest schema version of the event's subject in the embedded catalogue.
    pub fn latest_version(&self) -> &'static SchemaVersion {
        Catalogue::embedded().latest(self.subject()).expect("every event subject is in the embedded catalogue")
    }

    /// The event as an Avro record of the newest version of its subject's schema. It is not
    /// validated: use [`ValidEvent::into_record`] for what is to be published.
    pub fn to_avro(&self) -> Value {
        self.to_avro_as(self.latest_version())
            .expect("the model writes the newest schema versions (see the schema check)")
    }

    /// The event as an Avro record of `version` of its subject's schema: the fields that
    /// version has, in its order; fields it does not have are left out. Fails when `version`
    /// belongs to another subject or has a field the model has no value for.
    pub fn to_avro_as(&self, version: &SchemaVersion) -> Result<Value, WriteError> {
        if version.subject() != self.subject() {
            return Err(WriteError::OtherSubject { event: self.subject(), schema: version.label() });
        }
        let fields = match self {
            ClinicalEvent::Adt(e) => e.fields(),
            ClinicalEvent::Observation(e) => e.fields(),
            ClinicalEvent::Diagnosis(e) => e.fields(),
            ClinicalEvent::Consent(e) => e.fields(),
        };
        write::record(fields, version)
    }

    /// The names of the fields the model writes for this event, in the order it lists them.
    /// The schema check compares them with the newest schema version.
    pub fn field_names(&self) -> Vec<&'static str> {
        let fields = match self {
            ClinicalEvent::Adt(e) => e.fields(),
            ClinicalEvent::Observation(e) => e.fields(),
            ClinicalEvent::Diagnosis(e) => e.fields(),
            ClinicalEvent::Consent(e) => e.fields(),
        };
        fields.into_iter().map(|(name, _)| name).collect()
    }
}
