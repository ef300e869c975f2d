//! Clinical events in a source-independent, typed form: what every adapter (HL7 v2, FHIR R4,
//! batch files) maps its input to before anything is published.
//!
//! Each adapter fills a [`ClinicalEvent`]; [`ClinicalEvent::validate`] applies the same rules to
//! all of them (NHS number Modulus 11, required fields, plausible timestamps, well-formed codes),
//! and [`ClinicalEvent::into_record`] turns a valid event into the newest schema version of its
//! subject, and [`ClinicalEvent::from_record`] reads such a record back (for sources that
//! already speak the catalogue's schemas, such as batch files in
//! [subject JSON form](crate::subject_json)). Errors name the field and the rule, never the value.

#[cfg(test)]
pub(crate) mod arbitrary;
mod decimal;
mod from_record;
mod record;
pub mod validate;

use chrono::{DateTime, NaiveDate, Utc};
use sluice_schemas::NhsNumber;
use uuid::Uuid;

pub use decimal::ResultDecimal;
pub use record::SubjectRecord;
pub use validate::{Problem, ValidationError};

/// Who the event is about, as the source identified and described them. Every one of these
/// fields is identifying; the consumers' policy decides what survives.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientIdentity {
    /// The NHS number, when the source sent one (already checked by Modulus 11).
    pub nhs_number: Option<NhsNumber>,
    /// The source organisation's own patient identifier (hospital number, GP system id).
    pub local_patient_id: String,
    /// Family name.
    pub family_name: Option<String>,
    /// Given name(s).
    pub given_name: Option<String>,
    /// Date of birth.
    pub date_of_birth: Option<NaiveDate>,
    /// Administrative sex.
    pub sex: Option<AdministrativeSex>,
    /// Postcode of the usual address.
    pub postcode: Option<String>,
    /// First line of the usual address.
    pub address_line: Option<String>,
}

/// Administrative sex (HL7 v2 PID-8, FHIR administrative-gender).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdministrativeSex {
    /// F / female.
    Female,
    /// M / male.
    Male,
    /// O / other.
    Other,
    /// U / unknown.
    Unknown,
}

/// Where and when an event happened and who recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    /// Stable identifier of the event, derived from the source's own identifiers so that a
    /// resent message gets the same id.
    pub event_id: Uuid,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// When the source recorded it.
    pub recorded_at: DateTime<Utc>,
    /// ODS code of the organisation that recorded it.
    pub source_organisation: String,
    /// The sending system (e.g. HL7 MSH-3).
    pub source_system: String,
}

/// An ADT trigger event, as the `adt` schema names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdtEventType {
    /// A01.
    Admit,
    /// A02.
    Transfer,
    /// A03.
    Discharge,
    /// A04.
    Register,
    /// A08.
    UpdatePatient,
    /// A11.
    CancelAdmit,
    /// A13.
    CancelDischarge,
    /// A40.
    MergePatient,
}

/// HL7 v2 PV1-2 patient class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientClass {
    /// I.
    Inpatient,
    /// O.
    Outpatient,
    /// E.
    Emergency,
    /// Day case (NHS usage of PV1-2 `D` or FHIR `SS`).
    DayCase,
    /// Anything else.
    Other,
}

/// A patient administration event.
#[derive(Debug, Clone, PartialEq)]
pub struct AdtEvent {
    /// When, where, who recorded.
    pub provenance: Provenance,
    /// The patient.
    pub patient: PatientIdentity,
    /// What happened.
    pub event_type: AdtEventType,
    /// Inpatient, outpatient...
    pub patient_class: Option<PatientClass>,
    /// Ward or clinic code.
    pub location_code: Option<String>,
    /// NHS treatment function code (three digits).
    pub treatment_function_code: Option<String>,
}

/// Terminology of an observation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservationCodeSystem {
    /// SNOMED CT concept id.
    SnomedCt,
    /// LOINC code.
    Loinc,
}

/// The laboratory's flag on a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpretation {
    /// N.
    Normal,
    /// L.
    Low,
    /// H.
    High,
    /// LL.
    CriticallyLow,
    /// HH.
    CriticallyHigh,
    /// A.
    Abnormal,
}

/// A vital sign or laboratory result.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationEvent {
    /// When, where, who recorded.
    pub provenance: Provenance,
    /// The patient.
    pub patient: PatientIdentity,
    /// Terminology of `code`.
    pub code_system: ObservationCodeSystem,
    /// What was observed.
    pub code: String,
    /// Human-readable name of `code`.
    pub display: String,
    /// Numeric result, when numeric.
    pub value: Option<f64>,
    /// UCUM unit of `value`.
    pub unit: Option<String>,
    /// Free-text comment (often identifying; dropped by every standard landing policy).
    pub comment: Option<String>,
    /// Abnormal flag.
    pub interpretation: Option<Interpretation>,
    /// The numeric result exactly as reported, when the source gave it as decimal text.
    pub value_decimal: Option<ResultDecimal>,
    /// The range the result is judged against, when the source sent one.
    pub reference_range: Option<ReferenceRange>,
    /// Every interpretation code the source gave (HL7 v3 ObservationInterpretation), in order;
    /// `None` when it sent none.
    pub interpretation_codes: Option<Vec<String>>,
}

/// The reference range of a result, in the result's unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceRange {
    /// Lower limit, if any.
    pub low: Option<ResultDecimal>,
    /// Upper limit, if any.
    pub high: Option<ResultDecimal>,
    /// The range as the source wrote it (`3.5-5.3`, `<5.0`).
    pub text: Option<String>,
}

/// Terminology of a diagnosis code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagnosisCodeSystem {
    /// ICD-10 (as used by NHS hospitals).
    Icd10,
    /// SNOMED CT (as used by GP systems).
    SnomedCt,
}

/// A diagnosis or problem.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagnosisEvent {
    /// When, where, who recorded.
    pub provenance: Provenance,
    /// The patient.
    pub patient: PatientIdentity,
    /// Terminology of `code`.
    pub code_system: DiagnosisCodeSystem,
    /// The diagnosis code.
    pub code: String,
    /// Human-readable name of `code`.
    pub display: String,
    /// Whether this is the primary diagnosis of its encounter.
    pub is_primary: bool,
    /// When the condition started.
    pub onset_date: Option<NaiveDate>,
}

/// What a consent change is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentScope {
    /// The National Data Opt-out.
    NationalDataOptOut,
    /// A Type 1 opt-out (GP data leaving the practice).
    Type1OptOut,
    /// One named study, by its identifier (e.g. IRAS number).
    Study(String),
}

/// A consent or opt-out change.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentEvent {
    /// Stable identifier of the change.
    pub event_id: Uuid,
    /// When the change takes effect; it may be in the future, and takes effect then.
    pub effective_at: DateTime<Utc>,
    /// When a time-limited change (a FHIR Consent's `provision.period.end`) stops having
    /// effect; `None` when it lasts until a later change.
    pub effective_until: Option<DateTime<Utc>>,
    /// When the source recorded it.
    pub recorded_at: DateTime<Utc>,
    /// ODS code of the recording organisation.
    pub source_organisation: String,
    /// The patient; a consent change without one is unusable.
    pub nhs_number: NhsNumber,
    /// What it is about.
    pub scope: ConsentScope,
    /// `true` for an opt-out or dissent, `false` for consent or a withdrawn opt-out.
    pub deny: bool,
    /// Purposes the decision is limited to; empty means all the scope covers.
    pub purposes: Vec<String>,
}

/// Any event an adapter can produce.
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

impl ClinicalEvent {
    /// The catalogue subject this event belongs to.
    pub fn subject(&self) -> &'static str {
        use sluice_schemas::subjects;
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
}

/// A name-based event id: the same source identifiers always give the same UUID (version 8,
/// SHA-256 of the parts), so a message that a source resends maps to the same event.
pub fn stable_event_id(parts: &[&str]) -> Uuid {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_event_ids_depend_on_every_part_and_its_boundaries() {
        let a = stable_event_id(&["PAS", "RX1", "MSG0001", "0"]);
        assert_eq!(a, stable_event_id(&["PAS", "RX1", "MSG0001", "0"]));
        assert_ne!(a, stable_event_id(&["PAS", "RX1", "MSG0001", "1"]));
        assert_ne!(stable_event_id(&["AB", "C"]), stable_event_id(&["A", "BC"]));
        assert_eq!(a.get_version_num(), 8);
    }
}
