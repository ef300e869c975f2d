//! Clinical events in a source-independent, typed form: what every adapter (HL7 v2, FHIR R4,
//! batch files, the synthetic source) maps its input to before anything is published.
//!
//! The types are the catalogue's model, [`sluice_schemas::model`], re-exported here: each
//! adapter fills a [`ClinicalEvent`]; [`ClinicalEvent::validate`] applies the same rules to all
//! of them (NHS number Modulus 11, required fields, plausible timestamps, well-formed codes) and
//! gives a [`ValidEvent`]; [`ValidEvent::into_record`] turns it into the newest schema version
//! of its subject, the only thing the [publisher](crate::publisher) takes; and
//! [`ClinicalEvent::from_record`] reads such a record back (for sources that already speak the
//! catalogue's schemas, such as batch files in [subject JSON form](crate::subject_json)).
//! Errors name the field and the rule, never the value.

#[cfg(test)]
pub(crate) mod arbitrary;
#[cfg(test)]
mod tests;

pub use sluice_schemas::model::{
    AdministrativeSex, AdtEvent, AdtEventType, AvroEnum, ClinicalEvent, ConsentDecision, ConsentEvent, ConsentScope,
    ConsentScopeKind, DiagnosisCodeSystem, DiagnosisEvent, Interpretation, ObservationCodeSystem, ObservationEvent,
    PatientClass, PatientIdentity, Problem, Provenance, ReferenceRange, ResultDecimal, SubjectRecord, ValidEvent,
    ValidationError, WriteError, validate,
};

/// A name-based event id: the same source identifiers always give the same UUID (version 8,
/// SHA-256 of the parts), so a message that a source resends maps to the same event.
pub fn stable_event_id(parts: &[&str]) -> uuid::Uuid {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let bytes: [u8; 16] = digest[..16].try_into().expect("SHA-256 has 32 bytes");
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}
