//! The `diagnosis` subject: [`DiagnosisEvent`].

use apache_avro::types::Value;
use chrono::NaiveDate;

use super::patient::{common_fields, date_datum, read_common};
use super::read::{Fields, Read, date};
use super::write::Datum;
use super::{AvroEnum, PatientIdentity, Problem, Provenance, ValidationError};

/// Terminology of a diagnosis code: the `DiagnosisCodeSystem` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagnosisCodeSystem {
    /// ICD-10 (as used by NHS hospitals).
    Icd10,
    /// SNOMED CT (as used by GP systems).
    SnomedCt,
}

impl AvroEnum for DiagnosisCodeSystem {
    const AVRO_NAME: &'static str = "DiagnosisCodeSystem";
    const SYMBOLS: &'static [(Self, &'static str)] =
        &[(DiagnosisCodeSystem::Icd10, "ICD10"), (DiagnosisCodeSystem::SnomedCt, "SNOMED_CT")];
    const ALLOWED: &'static str = "ICD10 and SNOMED_CT";
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

impl DiagnosisEvent {
    /// Every field of the `diagnosis` record, by schema name.
    pub(crate) fn fields(&self) -> Vec<(&'static str, Datum)> {
        let mut fields = common_fields(&self.provenance, &self.patient);
        fields.extend([
            ("code_system", Datum::Symbol(self.code_system.symbol())),
            ("code", Datum::String(self.code.clone())),
            ("display", Datum::String(self.display.clone())),
            ("is_primary", Datum::Bool(self.is_primary)),
            ("onset_date", Datum::optional(self.onset_date, date_datum)),
        ]);
        fields
    }

    /// Reads what [`fields`](Self::fields) writes.
    pub(crate) fn read(record: &Fields<'_>) -> Read<Self> {
        let (provenance, patient) = read_common(record)?;
        Ok(DiagnosisEvent {
            provenance,
            patient,
            code_system: record.symbol("code_system")?,
            code: record.string("code")?,
            display: record.string("display")?,
            is_primary: match record.required("is_primary")? {
                Value::Boolean(primary) => *primary,
                _ => return Err(ValidationError::new("is_primary", Problem::Unreadable("boolean"))),
            },
            onset_date: record.nullable("onset_date")?.map(|v| date("onset_date", v)).transpose()?,
        })
    }
}
