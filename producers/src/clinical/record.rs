//! Turning a typed [`ClinicalEvent`] into an Avro record of its subject's schema.

use apache_avro::types::Value;
use chrono::{DateTime, NaiveDate, Utc};

use super::{
    AdministrativeSex, AdtEventType, ClinicalEvent, ConsentScope, DiagnosisCodeSystem, Interpretation,
    ObservationCodeSystem, PatientClass, PatientIdentity, Provenance, ReferenceRange, ResultDecimal,
};

/// An event ready for the encoder: subject, schema version, Kafka key and Avro value.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectRecord {
    /// Catalogue subject.
    pub subject: &'static str,
    /// Schema version the value conforms to.
    pub version: u32,
    /// Kafka key: the NHS number, or `<organisation>:<local id>` without one, so that one
    /// patient's events stay in order in one partition. Consent keys add the scope, because the
    /// consent topic is compacted on the key.
    pub key: String,
    /// The record.
    pub value: Value,
}

impl ClinicalEvent {
    /// The record of this event under the newest schema version of its subject.
    pub fn into_record(self) -> SubjectRecord {
        let subject = self.subject();
        match self {
            ClinicalEvent::Adt(event) => {
                let key = patient_key(&event.patient, &event.provenance);
                let mut fields = common_fields(&event.provenance, &event.patient);
                fields.extend([
                    field("address_line", optional_string(event.patient.address_line)),
                    field("event_type", adt_event_type(event.event_type)),
                    field("patient_class", nullable(event.patient_class.map(patient_class))),
                    field("location_code", optional_string(event.location_code)),
                    field("treatment_function_code", optional_string(event.treatment_function_code)),
                ]);
                SubjectRecord { subject, version: 1, key, value: Value::Record(fields) }
            }
            ClinicalEvent::Observation(event) => {
                let key = patient_key(&event.patient, &event.provenance);
                let mut fields = common_fields(&event.provenance, &event.patient);
                let code_system = match event.code_system {
                    ObservationCodeSystem::SnomedCt => (0, "SNOMED_CT"),
                    ObservationCodeSystem::Loinc => (1, "LOINC"),
                };
                fields.extend([
                    field("code_system", symbol(code_system)),
                    field("code", Value::String(event.code)),
                    field("display", Value::String(event.display)),
                    field("value", nullable(event.value.map(Value::Double))),
                    field("unit", optional_string(event.unit)),
                    field("comment", optional_string(event.comment)),
                    field("interpretation", nullable(event.interpretation.map(interpretation))),
                    field("value_decimal", nullable(event.value_decimal.map(ResultDecimal::to_avro))),
                    field("reference_range", nullable(event.reference_range.map(reference_range))),
                    field(
                        "interpretation_codes",
                        nullable(
                            event
                                .interpretation_codes
                                .map(|codes| Value::Array(codes.into_iter().map(Value::String).collect())),
                        ),
                    ),
                ]);
                SubjectRecord { subject, version: 3, key, value: Value::Record(fields) }
            }
            ClinicalEvent::Diagnosis(event) => {
                let key = patient_key(&event.patient, &event.provenance);
                let mut fields = common_fields(&event.provenance, &event.patient);
                let code_system = match event.code_system {
                    DiagnosisCodeSystem::Icd10 => (0, "ICD10"),
                    DiagnosisCodeSystem::SnomedCt => (1, "SNOMED_CT"),
                };
                fields.extend([
                    field("code_system", symbol(code_system)),
                    field("code", Value::String(event.code)),
                    field("display", Value::String(event.display)),
                    field("is_primary", Value::Boolean(event.is_primary)),
                    field("onset_date", nullable(event.onset_date.map(date))),
                ]);
                SubjectRecord { subject, version: 1, key, value: Value::Record(fields) }
            }
            ClinicalEvent::Consent(event) => {
                let (scope, study_id) = match event.scope {
                    ConsentScope::NationalDataOptOut => ((0, "NATIONAL_DATA_OPT_OUT"), None),
                    ConsentScope::Type1OptOut => ((1, "TYPE_1_OPT_OUT"), None),
                    ConsentScope::Study(study) => ((2, "STUDY"), Some(study)),
                };
                // The whole change, so that compacting the consent topic keeps every change.
                let key = sluice_schemas::consent_record_key(
                    &event.nhs_number.digits(),
                    scope.1,
                    study_id.as_deref(),
                    event.deny,
                    event.effective_at.timestamp_micros(),
                    event.effective_until.map(|until| until.timestamp_micros()),
                    &event.purposes,
                );
                let decision = if event.deny { (1, "DENY") } else { (0, "PERMIT") };
                let value = Value::Record(vec![
                    field("event_id", Value::Uuid(event.event_id)),
                    field("effective_at", micros(event.effective_at)),
                    field("effective_until", nullable(event.effective_until.map(micros))),
                    field("recorded_at", micros(event.recorded_at)),
                    field("source_organisation", Value::String(event.source_organisation)),
                    field("nhs_number", Value::String(event.nhs_number.digits())),
                    field("scope", symbol(scope)),
                    field("study_id", optional_string(study_id)),
                    field("decision", symbol(decision)),
                    field("purposes", Value::Array(event.purposes.into_iter().map(Value::String).collect())),
                ]);
                SubjectRecord { subject, version: 2, key, value }
            }
        }
    }
}

fn patient_key(patient: &PatientIdentity, provenance: &Provenance) -> String {
    match &patient.nhs_number {
        Some(nhs_number) => nhs_number.digits(),
        None => format!("{}:{}", provenance.source_organisation, patient.local_patient_id),
    }
}

/// The fields every clinical subject starts with, in schema order.
fn common_fields(provenance: &Provenance, patient: &PatientIdentity) -> Vec<(String, Value)> {
    vec![
        field("event_id", Value::Uuid(provenance.event_id)),
        field("occurred_at", micros(provenance.occurred_at)),
        field("recorded_at", micros(provenance.recorded_at)),
        field("source_organisation", Value::String(provenance.source_organisation.clone())),
        field("source_system", Value::String(provenance.source_system.clone())),
        field("nhs_number", nullable(patient.nhs_number.map(|n| Value::String(n.digits())))),
        field("local_patient_id", Value::String(patient.local_patient_id.clone())),
        field("family_name", optional_string(patient.family_name.clone())),
        field("given_name", optional_string(patient.given_name.clone())),
        field("date_of_birth", nullable(patient.date_of_birth.map(date))),
        field("sex", nullable(patient.sex.map(sex))),
        field("postcode", optional_string(patient.postcode.as_deref().map(normalise_postcode))),
    ]
}

/// `ls14ap` and `LS1  4AP` become `LS1 4AP`.
fn normalise_postcode(postcode: &str) -> String {
    let compact: String = postcode.chars().filter(|c| *c != ' ').map(|c| c.to_ascii_uppercase()).collect();
    let split = compact.len().saturating_sub(3);
    format!("{} {}", &compact[..split], &compact[split..])
}

fn sex(sex: AdministrativeSex) -> Value {
    symbol(match sex {
        AdministrativeSex::Female => (0, "FEMALE"),
        AdministrativeSex::Male => (1, "MALE"),
        AdministrativeSex::Other => (2, "OTHER"),
        AdministrativeSex::Unknown => (3, "UNKNOWN"),
    })
}

fn adt_event_type(event_type: AdtEventType) -> Value {
    symbol(match event_type {
        AdtEventType::Admit => (0, "ADMIT"),
        AdtEventType::Transfer => (1, "TRANSFER"),
        AdtEventType::Discharge => (2, "DISCHARGE"),
        AdtEventType::Register => (3, "REGISTER"),
        AdtEventType::UpdatePatient => (4, "UPDATE_PATIENT"),
        AdtEventType::CancelAdmit => (5, "CANCEL_ADMIT"),
        AdtEventType::CancelDischarge => (6, "CANCEL_DISCHARGE"),
        AdtEventType::MergePatient => (7, "MERGE_PATIENT"),
    })
}

fn patient_class(class: PatientClass) -> Value {
    symbol(match class {
        PatientClass::Inpatient => (0, "INPATIENT"),
        PatientClass::Outpatient => (1, "OUTPATIENT"),
        PatientClass::Emergency => (2, "EMERGENCY"),
        PatientClass::DayCase => (3, "DAY_CASE"),
        PatientClass::Other => (4, "OTHER"),
    })
}

fn interpretation(flag: Interpretation) -> Value {
    symbol(match flag {
        Interpretation::Normal => (0, "NORMAL"),
        Interpretation::Low => (1, "LOW"),
        Interpretation::High => (2, "HIGH"),
        Interpretation::CriticallyLow => (3, "CRITICALLY_LOW"),
        Interpretation::CriticallyHigh => (4, "CRITICALLY_HIGH"),
        Interpretation::Abnormal => (5, "ABNORMAL"),
    })
}

fn reference_range(range: ReferenceRange) -> Value {
    Value::Record(vec![
        field("low", nullable(range.low.map(ResultDecimal::to_avro))),
        field("high", nullable(range.high.map(ResultDecimal::to_avro))),
        field("text", optional_string(range.text)),
    ])
}

fn symbol((index, name): (u32, &str)) -> Value {
    Value::Enum(index, name.to_owned())
}

fn micros(at: DateTime<Utc>) -> Value {
    Value::TimestampMicros(at.timestamp_micros())
}

fn date(date: NaiveDate) -> Value {
    Value::Date(date.signed_duration_since(NaiveDate::default()).num_days() as i32)
}

fn field(name: &str, value: Value) -> (String, Value) {
    (name.to_owned(), value)
}

fn optional_string(value: Option<String>) -> Value {
    nullable(value.map(Value::String))
}

/// A value of a `["null", T]` union.
fn nullable(value: Option<Value>) -> Value {
    match value {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(value) => Value::Union(1, Box::new(value)),
    }
}
