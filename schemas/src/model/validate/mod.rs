//! The rules every adapter's events must pass before they are published. A failure names the
//! field and the rule; it never quotes the value, because the value may identify a patient.
//!
//! Code checks are structural: an ICD-10 code must look like one, a LOINC code must carry its
//! Mod 10 check digit, a SNOMED CT identifier its Verhoeff check digit. Whether a code exists in
//! the current release of its terminology is for the terminology server, not for this adapter.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use super::{ClinicalEvent, DiagnosisCodeSystem, ObservationCodeSystem, PatientIdentity, Provenance};
use crate::{InvalidNhsNumber, InvalidStudyId, StudyId};

mod codes;

pub use codes::{is_icd10_code, is_loinc_code, is_snomed_ct_id, is_uk_postcode};

/// Which field broke which rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {problem}")]
pub struct ValidationError {
    /// The field, by its schema name (or the source's, e.g. `PID-3` or `Observation.code`).
    pub field: String,
    /// The rule it broke.
    pub problem: Problem,
}

impl ValidationError {
    /// A failure of `field`.
    pub fn new(field: impl Into<String>, problem: Problem) -> Self {
        ValidationError { field: field.into(), problem }
    }
}

/// The rules. Messages are written for the source system's interface team.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A required value is absent or empty.
    #[error("is required")]
    Missing,
    /// Not a valid NHS number; the inner error says which part.
    #[error("{0}")]
    NhsNumber(#[from] InvalidNhsNumber),
    /// A timestamp or date could not be read.
    #[error("is not a valid {0}")]
    Unreadable(&'static str),
    /// A timestamp or date outside the plausible range.
    #[error("is {0}")]
    Implausible(&'static str),
    /// A code that is malformed for its terminology.
    #[error("is not a well-formed {0} code")]
    Code(&'static str),
    /// A value outside the set the field allows.
    #[error("has a value outside {0}")]
    NotAllowed(&'static str),
    /// Text that is too long or contains control characters.
    #[error("is longer than {0} characters or contains control characters")]
    BadText(usize),
    /// Not a study id (the inner error says what is accepted).
    #[error("{0}")]
    StudyId(#[from] InvalidStudyId),
    /// A study change limited to purposes that leave its own study out: it would never apply.
    #[error("must name the change's own study (study:<id>) when it limits a study change to purposes")]
    OwnStudyMissing,
}

/// A consent change's study id and purposes in their canonical spellings (`IRAS 312456` becomes
/// `IRAS-312456`, `study:iras 312456` becomes `study:IRAS-312456`), or why they are refused: a
/// study id that is none, a purpose sluice does not know, or a study change limited to
/// purposes that leave its own study out. Every adapter maps consent changes through this.
pub fn canonical_consent(
    scope: super::ConsentScope,
    purposes: Vec<String>,
) -> Result<(super::ConsentScope, Vec<String>), ValidationError> {
    use super::ConsentScope;
    let scope = match scope {
        ConsentScope::Study(id) => ConsentScope::Study(
            StudyId::parse(&id).map_err(|e| ValidationError::new("study_id", e.into()))?.into_string(),
        ),
        other => other,
    };
    let mut canonical: Vec<String> = Vec::with_capacity(purposes.len());
    for purpose in purposes {
        let name = match purpose.as_str() {
            "direct-care" | "planning" | "research" => purpose,
            other => match other.strip_prefix("study:") {
                Some(id) => {
                    format!("study:{}", StudyId::parse(id).map_err(|e| ValidationError::new("purposes", e.into()))?)
                }
                None => {
                    return Err(ValidationError::new(
                        "purposes",
                        Problem::NotAllowed("direct-care, planning, research and study:<id>"),
                    ));
                }
            },
        };
        if !canonical.contains(&name) {
            canonical.push(name);
        }
    }
    if let ConsentScope::Study(id) = &scope
        && !canonical.is_empty()
        && !canonical.iter().any(|name| name.strip_prefix("study:") == Some(id.as_str()))
    {
        return Err(ValidationError::new("purposes", Problem::OwnStudyMissing));
    }
    Ok((scope, canonical))
}

/// Longest text accepted in any field; longer is a sign of a mapping error upstream.
const MAX_TEXT: usize = 2_000;
/// Earliest plausible clinical event.
const EARLIEST_EVENT: NaiveDate = NaiveDate::from_ymd_opt(1900, 1, 1).expect("valid date");
/// How far in the future a timestamp may be, for clocks that run fast.
const CLOCK_SKEW: TimeDelta = TimeDelta::hours(24);
/// How far ahead a consent change may take effect: a consent or opt-out arranged for a later
/// date is recorded now, but one dated years ahead is more likely a typing error.
const CONSENT_HORIZON: TimeDelta = TimeDelta::days(366);

type Checked = Result<(), ValidationError>;

impl ClinicalEvent {
    /// Checks the event against every rule, `now` being the time of receipt, without taking
    /// it: [`ClinicalEvent::validate`] does the same and gives a [`super::ValidEvent`].
    pub fn check(&self, now: DateTime<Utc>) -> Checked {
        match self {
            ClinicalEvent::Adt(event) => {
                provenance(&event.provenance, now)?;
                patient(&event.patient, &event.provenance)?;
                optional_text("location_code", event.location_code.as_deref())?;
                if let Some(code) = &event.treatment_function_code
                    && (code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()))
                {
                    return Err(ValidationError::new("treatment_function_code", Problem::Code("treatment function")));
                }
                Ok(())
            }
            ClinicalEvent::Observation(event) => {
                provenance(&event.provenance, now)?;
                patient(&event.patient, &event.provenance)?;
                let well_formed = match event.code_system {
                    ObservationCodeSystem::SnomedCt => is_snomed_ct_id(&event.code),
                    ObservationCodeSystem::Loinc => is_loinc_code(&event.code),
                };
                if !well_formed {
                    let system = if event.code_system == ObservationCodeSystem::Loinc { "LOINC" } else { "SNOMED CT" };
                    return Err(ValidationError::new("code", Problem::Code(system)));
                }
                required_text("display", &event.display)?;
                if event.value.is_some_and(|v| !v.is_finite()) {
                    return Err(ValidationError::new("value", Problem::NotAllowed("finite numbers")));
                }
                optional_text("unit", event.unit.as_deref())?;
                optional_text("comment", event.comment.as_deref())?;
                if let Some(range) = &event.reference_range {
                    optional_text("reference_range", range.text.as_deref())?;
                }
                interpretation_codes(event.interpretation_codes.as_deref())
            }
            ClinicalEvent::Diagnosis(event) => {
                provenance(&event.provenance, now)?;
                patient(&event.patient, &event.provenance)?;
                let (well_formed, system) = match event.code_system {
                    DiagnosisCodeSystem::Icd10 => (is_icd10_code(&event.code), "ICD-10"),
                    DiagnosisCodeSystem::SnomedCt => (is_snomed_ct_id(&event.code), "SNOMED CT"),
                };
                if !well_formed {
                    return Err(ValidationError::new("code", Problem::Code(system)));
                }
                required_text("display", &event.display)?;
                if let Some(onset) = event.onset_date {
                    date_in_range("onset_date", onset, event.provenance.occurred_at)?;
                }
                Ok(())
            }
            ClinicalEvent::Consent(event) => {
                // A change may be dated ahead (it takes effect then), but not implausibly far.
                if event.effective_at > now + CONSENT_HORIZON {
                    return Err(ValidationError::new(
                        "effective_at",
                        Problem::Implausible("more than a year in the future"),
                    ));
                }
                timestamp("effective_at", event.effective_at.min(now), now)?;
                if event.effective_until.is_some_and(|until| until <= event.effective_at) {
                    return Err(ValidationError::new(
                        "effective_until",
                        Problem::Implausible("not after effective_at"),
                    ));
                }
                timestamp("recorded_at", event.recorded_at, now)?;
                ods_code("source_organisation", &event.source_organisation)?;
                // Only canonical spellings reach Kafka: a lander matches study ids exactly.
                let (scope, purposes) = canonical_consent(event.scope.clone(), event.purposes.clone())?;
                if scope != event.scope || purposes != event.purposes {
                    return Err(ValidationError::new("study_id", Problem::NotAllowed("canonical study ids")));
                }
                Ok(())
            }
        }
    }
}

fn provenance(provenance: &Provenance, now: DateTime<Utc>) -> Checked {
    timestamp("occurred_at", provenance.occurred_at, now)?;
    timestamp("recorded_at", provenance.recorded_at, now)?;
    ods_code("source_organisation", &provenance.source_organisation)?;
    required_text("source_system", &provenance.source_system)
}

fn patient(patient: &PatientIdentity, provenance: &Provenance) -> Checked {
    // Who the event is about: the NHS number, the source's own id, or both. An empty local id
    // is no id (a blank PID-3 repetition, an empty FHIR identifier value).
    match patient.local_patient_id.as_deref() {
        Some(local) => required_text("local_patient_id", local)?,
        None if patient.nhs_number.is_none() => return Err(ValidationError::new("local_patient_id", Problem::Missing)),
        None => {}
    }
    optional_text("family_name", patient.family_name.as_deref())?;
    optional_text("given_name", patient.given_name.as_deref())?;
    optional_text("address_line", patient.address_line.as_deref())?;
    if let Some(born) = patient.date_of_birth {
        date_in_range("date_of_birth", born, provenance.occurred_at)?;
    }
    if let Some(postcode) = &patient.postcode
        && !is_uk_postcode(postcode)
    {
        return Err(ValidationError::new("postcode", Problem::NotAllowed("UK postcodes")));
    }
    Ok(())
}

fn timestamp(field: &str, at: DateTime<Utc>, now: DateTime<Utc>) -> Checked {
    if at.date_naive() < EARLIEST_EVENT {
        return Err(ValidationError::new(field, Problem::Implausible("before 1900")));
    }
    if at > now + CLOCK_SKEW {
        return Err(ValidationError::new(field, Problem::Implausible("more than a day in the future")));
    }
    Ok(())
}

fn date_in_range(field: &str, date: NaiveDate, event_at: DateTime<Utc>) -> Checked {
    if date.year_ce().1 < 1880 {
        return Err(ValidationError::new(field, Problem::Implausible("before 1880")));
    }
    if date > (event_at + CLOCK_SKEW).date_naive() {
        return Err(ValidationError::new(field, Problem::Implausible("after the event")));
    }
    Ok(())
}

use chrono::Datelike as _;

fn required_text(field: &str, text: &str) -> Checked {
    if text.trim().is_empty() {
        return Err(ValidationError::new(field, Problem::Missing));
    }
    optional_text(field, Some(text))
}

fn optional_text(field: &str, text: Option<&str>) -> Checked {
    match text {
        Some(text) if text.chars().count() > MAX_TEXT || text.chars().any(|c| c.is_control() && c != '\n') => {
            Err(ValidationError::new(field, Problem::BadText(MAX_TEXT)))
        }
        _ => Ok(()),
    }
}

/// Most interpretation codes one result may carry (HL7 table 0078 has fewer than 50).
const MAX_INTERPRETATION_CODES: usize = 16;

/// Interpretation codes (`H`, `LL`, `POS`...): at most 16 codes of 1 to 20 printable ASCII
/// characters each.
fn interpretation_codes(codes: Option<&[String]>) -> Checked {
    let codes = codes.unwrap_or_default();
    let well_formed = |code: &String| (1..=20).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_graphic());
    if codes.len() > MAX_INTERPRETATION_CODES || !codes.iter().all(well_formed) {
        return Err(ValidationError::new("interpretation_codes", Problem::Code("interpretation")));
    }
    Ok(())
}

fn ods_code(field: &str, code: &str) -> Checked {
    if code.is_empty() {
        return Err(ValidationError::new(field, Problem::Missing));
    }
    if !(3..=10).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
        return Err(ValidationError::new(field, Problem::Code("ODS organisation")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn consent_may_be_dated_ahead_within_a_year_and_must_end_after_it_starts() {
        use crate::model::{ClinicalEvent, ConsentEvent, ConsentScope};
        use chrono::{DateTime, TimeDelta};
        let now = DateTime::from_timestamp_micros(1_780_000_000_000_000).unwrap();
        let consent = |effective_at: DateTime<chrono::Utc>, effective_until| {
            ClinicalEvent::Consent(ConsentEvent {
                event_id: uuid::Uuid::from_u128(7),
                effective_at,
                effective_until,
                recorded_at: now,
                source_organisation: "X26".into(),
                nhs_number: crate::NhsNumber::parse("9434765919").unwrap(),
                scope: ConsentScope::NationalDataOptOut,
                deny: true,
                purposes: Vec::new(),
            })
        };
        let field = |event: ClinicalEvent| event.check(now).map_err(|error| (error.field.clone(), error.to_string()));
        assert_eq!(field(consent(now + TimeDelta::days(30), None)), Ok(()), "a month ahead takes effect then");
        assert_eq!(field(consent(now, Some(now + TimeDelta::days(400)))), Ok(()), "an end may be far ahead");
        let (name, message) = field(consent(now + TimeDelta::days(400), None)).unwrap_err();
        assert_eq!(name, "effective_at");
        assert!(message.contains("more than a year in the future"), "{message}");
        let (name, message) = field(consent(now, Some(now))).unwrap_err();
        assert_eq!(name, "effective_until");
        assert!(message.contains("not after effective_at"), "{message}");
    }
}
