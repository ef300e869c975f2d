//! The `observation` subject: [`ObservationEvent`].

use super::patient::{common_fields, read_common};
use super::read::{Fields, Read, decimal, double, reference_range, strings};
use super::write::Datum;
use super::{AvroEnum, PatientIdentity, Provenance, ResultDecimal};

/// Terminology of an observation code: the `ObservationCodeSystem` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservationCodeSystem {
    /// SNOMED CT concept id.
    SnomedCt,
    /// LOINC code.
    Loinc,
}

impl AvroEnum for ObservationCodeSystem {
    const AVRO_NAME: &'static str = "ObservationCodeSystem";
    const SYMBOLS: &'static [(Self, &'static str)] =
        &[(ObservationCodeSystem::SnomedCt, "SNOMED_CT"), (ObservationCodeSystem::Loinc, "LOINC")];
    const ALLOWED: &'static str = "SNOMED_CT and LOINC";
}

/// The laboratory's flag on a result: the `ObservationInterpretation` enum.
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

impl AvroEnum for Interpretation {
    const AVRO_NAME: &'static str = "ObservationInterpretation";
    const SYMBOLS: &'static [(Self, &'static str)] = &[
        (Interpretation::Normal, "NORMAL"),
        (Interpretation::Low, "LOW"),
        (Interpretation::High, "HIGH"),
        (Interpretation::CriticallyLow, "CRITICALLY_LOW"),
        (Interpretation::CriticallyHigh, "CRITICALLY_HIGH"),
        (Interpretation::Abnormal, "ABNORMAL"),
    ];
    const ALLOWED: &'static str = "the ObservationInterpretation symbols";
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
    /// Abnormal flag (from version 2).
    pub interpretation: Option<Interpretation>,
    /// The numeric result exactly as reported, when the source gave it as decimal text (from
    /// version 3).
    pub value_decimal: Option<ResultDecimal>,
    /// The range the result is judged against, when the source sent one (from version 3).
    pub reference_range: Option<ReferenceRange>,
    /// Every interpretation code the source gave (HL7 v3 ObservationInterpretation), in order;
    /// `None` when it sent none (from version 3).
    pub interpretation_codes: Option<Vec<String>>,
}

/// The reference range of a result, in the result's unit: the `ReferenceRange` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceRange {
    /// Lower limit, if any.
    pub low: Option<ResultDecimal>,
    /// Upper limit, if any.
    pub high: Option<ResultDecimal>,
    /// The range as the source wrote it (`3.5-5.3`, `<5.0`).
    pub text: Option<String>,
}

impl ObservationEvent {
    /// Every field of the `observation` record, by schema name.
    pub(crate) fn fields(&self) -> Vec<(&'static str, Datum)> {
        let mut fields = common_fields(&self.provenance, &self.patient);
        fields.extend([
            ("code_system", Datum::Symbol(self.code_system.symbol())),
            ("code", Datum::String(self.code.clone())),
            ("display", Datum::String(self.display.clone())),
            ("value", Datum::optional(self.value, Datum::Double)),
            ("unit", Datum::text(self.unit.as_deref())),
            ("comment", Datum::text(self.comment.as_deref())),
            ("interpretation", Datum::optional(self.interpretation, |flag| Datum::Symbol(flag.symbol()))),
            ("value_decimal", Datum::optional(self.value_decimal, Datum::Decimal)),
            (
                "reference_range",
                Datum::optional(self.reference_range.as_ref(), |range| {
                    Datum::Record(vec![
                        ("low", Datum::optional(range.low, Datum::Decimal)),
                        ("high", Datum::optional(range.high, Datum::Decimal)),
                        ("text", Datum::text(range.text.as_deref())),
                    ])
                }),
            ),
            (
                "interpretation_codes",
                Datum::optional(self.interpretation_codes.as_ref(), |codes| {
                    Datum::Array(codes.iter().cloned().map(Datum::String).collect())
                }),
            ),
        ]);
        fields
    }

    /// Reads what [`fields`](Self::fields) writes.
    pub(crate) fn read(record: &Fields<'_>) -> Read<Self> {
        let (provenance, patient) = read_common(record)?;
        Ok(ObservationEvent {
            provenance,
            patient,
            code_system: record.symbol("code_system")?,
            code: record.string("code")?,
            display: record.string("display")?,
            value: record.nullable("value")?.map(|v| double("value", v)).transpose()?,
            unit: record.optional_string("unit")?,
            comment: record.optional_string("comment")?,
            interpretation: record.optional_symbol("interpretation")?,
            value_decimal: record.nullable("value_decimal")?.map(|v| decimal("value_decimal", v)).transpose()?,
            reference_range: record
                .nullable("reference_range")?
                .map(|v| reference_range("reference_range", v))
                .transpose()?,
            interpretation_codes: record
                .nullable("interpretation_codes")?
                .map(|v| strings("interpretation_codes", v))
                .transpose()?,
        })
    }
}
