//! The `adt` subject: [`AdtEvent`].

use super::patient::{common_fields, read_common};
use super::read::{Fields, Read};
use super::write::Datum;
use super::{AvroEnum, PatientIdentity, Provenance};

/// An ADT trigger event: the `AdtEventType` enum.
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

impl AvroEnum for AdtEventType {
    const AVRO_NAME: &'static str = "AdtEventType";
    const SYMBOLS: &'static [(Self, &'static str)] = &[
        (AdtEventType::Admit, "ADMIT"),
        (AdtEventType::Transfer, "TRANSFER"),
        (AdtEventType::Discharge, "DISCHARGE"),
        (AdtEventType::Register, "REGISTER"),
        (AdtEventType::UpdatePatient, "UPDATE_PATIENT"),
        (AdtEventType::CancelAdmit, "CANCEL_ADMIT"),
        (AdtEventType::CancelDischarge, "CANCEL_DISCHARGE"),
        (AdtEventType::MergePatient, "MERGE_PATIENT"),
    ];
    const ALLOWED: &'static str = "the AdtEventType symbols";
}

/// HL7 v2 PV1-2 patient class: the `PatientClass` enum.
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

impl AvroEnum for PatientClass {
    const AVRO_NAME: &'static str = "PatientClass";
    const SYMBOLS: &'static [(Self, &'static str)] = &[
        (PatientClass::Inpatient, "INPATIENT"),
        (PatientClass::Outpatient, "OUTPATIENT"),
        (PatientClass::Emergency, "EMERGENCY"),
        (PatientClass::DayCase, "DAY_CASE"),
        (PatientClass::Other, "OTHER"),
    ];
    const ALLOWED: &'static str = "INPATIENT, OUTPATIENT, EMERGENCY, DAY_CASE and OTHER";
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

impl AdtEvent {
    /// Every field of the `adt` record, by schema name.
    pub(crate) fn fields(&self) -> Vec<(&'static str, Datum)> {
        let mut fields = common_fields(&self.provenance, &self.patient);
        fields.extend([
            ("address_line", Datum::text(self.patient.address_line.as_deref())),
            ("event_type", Datum::Symbol(self.event_type.symbol())),
            ("patient_class", Datum::optional(self.patient_class, |class| Datum::Symbol(class.symbol()))),
            ("location_code", Datum::text(self.location_code.as_deref())),
            ("treatment_function_code", Datum::text(self.treatment_function_code.as_deref())),
        ]);
        fields
    }

    /// Reads what [`fields`](Self::fields) writes.
    pub(crate) fn read(record: &Fields<'_>) -> Read<Self> {
        let (provenance, mut patient) = read_common(record)?;
        patient.address_line = record.optional_string("address_line")?;
        Ok(AdtEvent {
            provenance,
            patient,
            event_type: record.symbol("event_type")?,
            patient_class: record.optional_symbol("patient_class")?,
            location_code: record.optional_string("location_code")?,
            treatment_function_code: record.optional_string("treatment_function_code")?,
        })
    }
}
