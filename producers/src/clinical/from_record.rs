//! Reading a typed [`ClinicalEvent`] back from an Avro record of its subject's newest schema
//! version: the inverse of [`ClinicalEvent::into_record`].
//!
//! The record must hold every field of that version, each once, and nothing else: a field the
//! typed event has no place for is an error rather than something to drop. Fields may come in
//! any order. Values are read as apache-avro produces them, whether it built them from a schema
//! or was handed them by code: unions as `Value::Union(_, inner)` (or a bare value or
//! `Value::Null`), UUIDs as `Value::Uuid` or `Value::String`, timestamps as
//! `Value::TimestampMicros` or `Value::Long`, dates as `Value::Date` or `Value::Int` (days since
//! 1970-01-01) and enum symbols as `Value::Enum(_, symbol)` (the index is ignored; the symbol
//! decides). Errors name the field by its schema name and never carry a value.

use apache_avro::types::Value;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use sluice_schemas::{NhsNumber, subjects};
use uuid::Uuid;

use super::{
    AdministrativeSex, AdtEvent, AdtEventType, ClinicalEvent, ConsentEvent, ConsentScope, DiagnosisCodeSystem,
    DiagnosisEvent, Interpretation, ObservationCodeSystem, ObservationEvent, PatientClass, PatientIdentity, Problem,
    Provenance, ReferenceRange, ResultDecimal, ValidationError,
};

/// The fields every clinical subject starts with (see `common_fields` in `record.rs`).
const COMMON: [&str; 12] = [
    "event_id",
    "occurred_at",
    "recorded_at",
    "source_organisation",
    "source_system",
    "nhs_number",
    "local_patient_id",
    "family_name",
    "given_name",
    "date_of_birth",
    "sex",
    "postcode",
];
const ADT: [&str; 5] = ["address_line", "event_type", "patient_class", "location_code", "treatment_function_code"];
const OBSERVATION: [&str; 10] = [
    "code_system",
    "code",
    "display",
    "value",
    "unit",
    "comment",
    "interpretation",
    "value_decimal",
    "reference_range",
    "interpretation_codes",
];
const DIAGNOSIS: [&str; 5] = ["code_system", "code", "display", "is_primary", "onset_date"];
const CONSENT: [&str; 10] = [
    "event_id",
    "effective_at",
    "effective_until",
    "recorded_at",
    "source_organisation",
    "nhs_number",
    "scope",
    "study_id",
    "decision",
    "purposes",
];

type Read<T> = Result<T, ValidationError>;

impl ClinicalEvent {
    /// The event held by `value`, a record of the newest schema version of `subject`.
    ///
    /// The record's Kafka key is not needed: [`ClinicalEvent::into_record`] derives it again.
    /// The event is not validated; call [`ClinicalEvent::validate`] before publishing it.
    pub fn from_record(subject: &str, value: &Value) -> Result<ClinicalEvent, ValidationError> {
        match subject {
            subjects::ADT => {
                let record = Fields::new(value, &[&COMMON, &ADT])?;
                let (provenance, mut patient) = provenance_and_patient(&record)?;
                patient.address_line = record.optional_string("address_line")?;
                Ok(ClinicalEvent::Adt(AdtEvent {
                    provenance,
                    patient,
                    event_type: record.symbol("event_type", ADT_EVENT_TYPES)?,
                    patient_class: record.optional_symbol("patient_class", PATIENT_CLASSES)?,
                    location_code: record.optional_string("location_code")?,
                    treatment_function_code: record.optional_string("treatment_function_code")?,
                }))
            }
            subjects::OBSERVATION => {
                let record = Fields::new(value, &[&COMMON, &OBSERVATION])?;
                let (provenance, patient) = provenance_and_patient(&record)?;
                Ok(ClinicalEvent::Observation(ObservationEvent {
                    provenance,
                    patient,
                    code_system: record.symbol("code_system", OBSERVATION_CODE_SYSTEMS)?,
                    code: record.string("code")?,
                    display: record.string("display")?,
                    value: record.nullable("value")?.map(|v| double("value", v)).transpose()?,
                    unit: record.optional_string("unit")?,
                    comment: record.optional_string("comment")?,
                    interpretation: record.optional_symbol("interpretation", INTERPRETATIONS)?,
                    value_decimal: record
                        .nullable("value_decimal")?
                        .map(|v| decimal("value_decimal", v))
                        .transpose()?,
                    reference_range: record
                        .nullable("reference_range")?
                        .map(|v| reference_range("reference_range", v))
                        .transpose()?,
                    interpretation_codes: record
                        .nullable("interpretation_codes")?
                        .map(|v| strings("interpretation_codes", v))
                        .transpose()?,
                }))
            }
            subjects::DIAGNOSIS => {
                let record = Fields::new(value, &[&COMMON, &DIAGNOSIS])?;
                let (provenance, patient) = provenance_and_patient(&record)?;
                Ok(ClinicalEvent::Diagnosis(DiagnosisEvent {
                    provenance,
                    patient,
                    code_system: record.symbol("code_system", DIAGNOSIS_CODE_SYSTEMS)?,
                    code: record.string("code")?,
                    display: record.string("display")?,
                    is_primary: match record.required("is_primary")? {
                        Value::Boolean(primary) => *primary,
                        _ => return Err(ValidationError::new("is_primary", Problem::Unreadable("boolean"))),
                    },
                    onset_date: record.nullable("onset_date")?.map(|v| date("onset_date", v)).transpose()?,
                }))
            }
            subjects::CONSENT => {
                let record = Fields::new(value, &[&CONSENT])?;
                let study_id = record.optional_string("study_id")?;
                let scope = match (record.symbol("scope", CONSENT_SCOPES)?, study_id) {
                    (Scope::Study, Some(study)) => ConsentScope::Study(study),
                    (Scope::Study, None) => return Err(ValidationError::new("study_id", Problem::Missing)),
                    (_, Some(_)) => {
                        return Err(ValidationError::new(
                            "study_id",
                            Problem::NotAllowed("changes whose scope is STUDY"),
                        ));
                    }
                    (Scope::NationalDataOptOut, None) => ConsentScope::NationalDataOptOut,
                    (Scope::Type1OptOut, None) => ConsentScope::Type1OptOut,
                };
                let purposes = match record.required("purposes")? {
                    Value::Array(items) => items
                        .iter()
                        .map(|item| match item {
                            Value::String(purpose) => Ok(purpose.clone()),
                            _ => Err(ValidationError::new("purposes", Problem::Unreadable("string"))),
                        })
                        .collect::<Read<Vec<String>>>()?,
                    _ => return Err(ValidationError::new("purposes", Problem::Unreadable("array of strings"))),
                };
                let nhs_number = match record.required("nhs_number")? {
                    Value::String(text) => nhs_number(text)?,
                    _ => return Err(ValidationError::new("nhs_number", Problem::Unreadable("string"))),
                };
                let (scope, purposes) = super::validate::canonical_consent(scope, purposes)?;
                Ok(ClinicalEvent::Consent(ConsentEvent {
                    event_id: record.uuid("event_id")?,
                    effective_at: record.timestamp("effective_at")?,
                    effective_until: record.optional_timestamp("effective_until")?,
                    recorded_at: record.timestamp("recorded_at")?,
                    source_organisation: record.string("source_organisation")?,
                    nhs_number,
                    scope,
                    deny: record.symbol("decision", DECISIONS)?,
                    purposes,
                }))
            }
            _ => Err(ValidationError::new(
                "subject",
                Problem::NotAllowed("the subjects adt, observation, diagnosis and consent"),
            )),
        }
    }
}

fn provenance_and_patient(record: &Fields<'_>) -> Read<(Provenance, PatientIdentity)> {
    let provenance = Provenance {
        event_id: record.uuid("event_id")?,
        occurred_at: record.timestamp("occurred_at")?,
        recorded_at: record.timestamp("recorded_at")?,
        source_organisation: record.string("source_organisation")?,
        source_system: record.string("source_system")?,
    };
    let nhs_number = match record.nullable("nhs_number")? {
        None => None,
        Some(Value::String(text)) => Some(nhs_number(text)?),
        Some(_) => return Err(ValidationError::new("nhs_number", Problem::Unreadable("string"))),
    };
    let patient = PatientIdentity {
        nhs_number,
        local_patient_id: record.string("local_patient_id")?,
        family_name: record.optional_string("family_name")?,
        given_name: record.optional_string("given_name")?,
        date_of_birth: record.nullable("date_of_birth")?.map(|v| date("date_of_birth", v)).transpose()?,
        sex: record.optional_symbol("sex", SEXES)?,
        postcode: record.optional_string("postcode")?,
        address_line: None,
    };
    Ok((provenance, patient))
}

/// The symbols of one enum and what each one means, with the rule an unknown symbol breaks.
struct Symbols<T: 'static> {
    /// `(symbol, meaning)` in schema order.
    table: &'static [(&'static str, T)],
    /// For [`Problem::NotAllowed`]: the symbols, as a phrase.
    allowed: &'static str,
}

const SEXES: Symbols<AdministrativeSex> = Symbols {
    table: &[
        ("FEMALE", AdministrativeSex::Female),
        ("MALE", AdministrativeSex::Male),
        ("OTHER", AdministrativeSex::Other),
        ("UNKNOWN", AdministrativeSex::Unknown),
    ],
    allowed: "FEMALE, MALE, OTHER and UNKNOWN",
};

const ADT_EVENT_TYPES: Symbols<AdtEventType> = Symbols {
    table: &[
        ("ADMIT", AdtEventType::Admit),
        ("TRANSFER", AdtEventType::Transfer),
        ("DISCHARGE", AdtEventType::Discharge),
        ("REGISTER", AdtEventType::Register),
        ("UPDATE_PATIENT", AdtEventType::UpdatePatient),
        ("CANCEL_ADMIT", AdtEventType::CancelAdmit),
        ("CANCEL_DISCHARGE", AdtEventType::CancelDischarge),
        ("MERGE_PATIENT", AdtEventType::MergePatient),
    ],
    allowed: "the AdtEventType symbols",
};

const PATIENT_CLASSES: Symbols<PatientClass> = Symbols {
    table: &[
        ("INPATIENT", PatientClass::Inpatient),
        ("OUTPATIENT", PatientClass::Outpatient),
        ("EMERGENCY", PatientClass::Emergency),
        ("DAY_CASE", PatientClass::DayCase),
        ("OTHER", PatientClass::Other),
    ],
    allowed: "INPATIENT, OUTPATIENT, EMERGENCY, DAY_CASE and OTHER",
};

const OBSERVATION_CODE_SYSTEMS: Symbols<ObservationCodeSystem> = Symbols {
    table: &[("SNOMED_CT", ObservationCodeSystem::SnomedCt), ("LOINC", ObservationCodeSystem::Loinc)],
    allowed: "SNOMED_CT and LOINC",
};

const INTERPRETATIONS: Symbols<Interpretation> = Symbols {
    table: &[
        ("NORMAL", Interpretation::Normal),
        ("LOW", Interpretation::Low),
        ("HIGH", Interpretation::High),
        ("CRITICALLY_LOW", Interpretation::CriticallyLow),
        ("CRITICALLY_HIGH", Interpretation::CriticallyHigh),
        ("ABNORMAL", Interpretation::Abnormal),
    ],
    allowed: "the ObservationInterpretation symbols",
};

const DIAGNOSIS_CODE_SYSTEMS: Symbols<DiagnosisCodeSystem> = Symbols {
    table: &[("ICD10", DiagnosisCodeSystem::Icd10), ("SNOMED_CT", DiagnosisCodeSystem::SnomedCt)],
    allowed: "ICD10 and SNOMED_CT",
};

/// The consent scope symbol alone; a study scope takes its id from `study_id`.
#[derive(Clone, Copy)]
enum Scope {
    NationalDataOptOut,
    Type1OptOut,
    Study,
}

const CONSENT_SCOPES: Symbols<Scope> = Symbols {
    table: &[
        ("NATIONAL_DATA_OPT_OUT", Scope::NationalDataOptOut),
        ("TYPE_1_OPT_OUT", Scope::Type1OptOut),
        ("STUDY", Scope::Study),
    ],
    allowed: "NATIONAL_DATA_OPT_OUT, TYPE_1_OPT_OUT and STUDY",
};

/// `deny` by decision symbol.
const DECISIONS: Symbols<bool> = Symbols { table: &[("PERMIT", false), ("DENY", true)], allowed: "PERMIT and DENY" };

/// A record's fields by name, checked to be exactly the expected ones.
struct Fields<'v> {
    /// `(name, value)` as the record holds them.
    fields: &'v [(String, Value)],
}

impl<'v> Fields<'v> {
    /// Checks that `value` is a record whose fields are among `expected` (the concatenation of
    /// the slices), each at most once. Absent fields are reported when they are read.
    fn new(value: &'v Value, expected: &[&[&str]]) -> Read<Self> {
        let Value::Record(fields) = value else {
            return Err(ValidationError::new("record", Problem::Unreadable("record")));
        };
        for (index, (name, _)) in fields.iter().enumerate() {
            if !expected.iter().any(|names| names.contains(&name.as_str())) {
                return Err(ValidationError::new(
                    name.as_str(),
                    Problem::NotAllowed("the fields of its subject's newest schema"),
                ));
            }
            if fields[..index].iter().any(|(earlier, _)| earlier == name) {
                return Err(ValidationError::new(
                    name.as_str(),
                    Problem::Unreadable("record: the field appears more than once"),
                ));
            }
        }
        Ok(Fields { fields })
    }

    fn required(&self, name: &'static str) -> Read<&'v Value> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value)
            .ok_or_else(|| ValidationError::new(name, Problem::Missing))
    }

    /// The value of a `["null", T]` field: `None` for null.
    fn nullable(&self, name: &'static str) -> Read<Option<&'v Value>> {
        Ok(match self.required(name)? {
            Value::Null => None,
            Value::Union(_, inner) => match inner.as_ref() {
                Value::Null => None,
                inner => Some(inner),
            },
            other => Some(other),
        })
    }

    fn string(&self, name: &'static str) -> Read<String> {
        string(name, self.required(name)?)
    }

    fn optional_string(&self, name: &'static str) -> Read<Option<String>> {
        self.nullable(name)?.map(|value| string(name, value)).transpose()
    }

    fn uuid(&self, name: &'static str) -> Read<Uuid> {
        match self.required(name)? {
            Value::Uuid(uuid) => Ok(*uuid),
            Value::String(text) => {
                Uuid::parse_str(text).map_err(|_| ValidationError::new(name, Problem::Unreadable("UUID")))
            }
            _ => Err(ValidationError::new(name, Problem::Unreadable("UUID"))),
        }
    }

    fn timestamp(&self, name: &'static str) -> Read<DateTime<Utc>> {
        match self.required(name)? {
            Value::TimestampMicros(micros) | Value::Long(micros) => DateTime::from_timestamp_micros(*micros),
            _ => None,
        }
        .ok_or_else(|| ValidationError::new(name, Problem::Unreadable("timestamp")))
    }

    fn optional_timestamp(&self, name: &'static str) -> Read<Option<DateTime<Utc>>> {
        self.nullable(name)?
            .map(|value| match value {
                Value::TimestampMicros(micros) | Value::Long(micros) => DateTime::from_timestamp_micros(*micros),
                _ => None,
            })
            .map(|at| at.ok_or_else(|| ValidationError::new(name, Problem::Unreadable("timestamp"))))
            .transpose()
    }

    fn symbol<T: Copy>(&self, name: &'static str, symbols: Symbols<T>) -> Read<T> {
        symbol(name, self.required(name)?, symbols)
    }

    fn optional_symbol<T: Copy>(&self, name: &'static str, symbols: Symbols<T>) -> Read<Option<T>> {
        self.nullable(name)?.map(|value| symbol(name, value, symbols)).transpose()
    }
}

fn nhs_number(text: &str) -> Read<NhsNumber> {
    NhsNumber::parse(text).map_err(|error| ValidationError::new("nhs_number", Problem::NhsNumber(error)))
}

fn string(name: &'static str, value: &Value) -> Read<String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        _ => Err(ValidationError::new(name, Problem::Unreadable("string"))),
    }
}

fn symbol<T: Copy>(name: &'static str, value: &Value, symbols: Symbols<T>) -> Read<T> {
    let text = match value {
        Value::Enum(_, text) | Value::String(text) => text,
        _ => return Err(ValidationError::new(name, Problem::Unreadable("enum symbol"))),
    };
    symbols
        .table
        .iter()
        .find(|(symbol, _)| symbol == text)
        .map(|(_, meaning)| *meaning)
        .ok_or_else(|| ValidationError::new(name, Problem::NotAllowed(symbols.allowed)))
}

fn double(name: &'static str, value: &Value) -> Read<f64> {
    match value {
        Value::Double(number) => Ok(*number),
        Value::Float(number) => Ok(f64::from(*number)),
        Value::Int(number) => Ok(f64::from(*number)),
        _ => Err(ValidationError::new(name, Problem::Unreadable("number"))),
    }
}

fn decimal(name: &'static str, value: &Value) -> Read<ResultDecimal> {
    ResultDecimal::from_avro(value).ok_or_else(|| ValidationError::new(name, Problem::Unreadable("decimal(18,6)")))
}

/// A `ReferenceRange` record: its fields are named `<name>.low`, `<name>.high`, `<name>.text` in
/// errors.
fn reference_range(name: &'static str, value: &Value) -> Read<ReferenceRange> {
    let Value::Record(fields) = value else {
        return Err(ValidationError::new(name, Problem::Unreadable("record")));
    };
    let mut range = ReferenceRange { low: None, high: None, text: None };
    for (field, value) in fields {
        let value = match value {
            Value::Union(_, inner) => inner.as_ref(),
            other => other,
        };
        if matches!(value, Value::Null) {
            continue;
        }
        match field.as_str() {
            "low" => range.low = Some(decimal("reference_range.low", value)?),
            "high" => range.high = Some(decimal("reference_range.high", value)?),
            "text" => range.text = Some(string("reference_range.text", value)?),
            _ => {
                return Err(ValidationError::new(
                    format!("{name}.{field}"),
                    Problem::NotAllowed("the fields low, high and text"),
                ));
            }
        }
    }
    Ok(range)
}

fn strings(name: &'static str, value: &Value) -> Read<Vec<String>> {
    match value {
        Value::Array(items) => items.iter().map(|item| string(name, item)).collect(),
        _ => Err(ValidationError::new(name, Problem::Unreadable("array of strings"))),
    }
}

fn date(name: &'static str, value: &Value) -> Read<NaiveDate> {
    match value {
        Value::Date(days) | Value::Int(days) => {
            NaiveDate::default().checked_add_signed(TimeDelta::days(i64::from(*days)))
        }
        _ => None,
    }
    .ok_or_else(|| ValidationError::new(name, Problem::Unreadable("date")))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::arbitrary;
    use super::*;

    fn field_mut<'v>(record: &'v mut Value, name: &str) -> &'v mut Value {
        let Value::Record(fields) = record else { panic!("not a record") };
        &mut fields.iter_mut().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no field {name}")).1
    }

    fn observation() -> ClinicalEvent {
        ClinicalEvent::Observation(ObservationEvent {
            provenance: Provenance {
                event_id: Uuid::from_u128(0x0b6c_3b0e_6f1a_4a55_9a52_6a3f_7f0d_2c11),
                occurred_at: DateTime::from_timestamp_micros(1_773_585_000_000_000).unwrap(),
                recorded_at: DateTime::from_timestamp_micros(1_773_585_067_250_000).unwrap(),
                source_organisation: "RR8".into(),
                source_system: "LIMS".into(),
            },
            patient: PatientIdentity {
                nhs_number: Some(NhsNumber::parse("9434765919").unwrap()),
                local_patient_id: "H1234567".into(),
                family_name: Some("Example".into()),
                given_name: None,
                date_of_birth: NaiveDate::from_ymd_opt(1970, 3, 14),
                sex: Some(AdministrativeSex::Female),
                postcode: Some("LS6 2QT".into()),
                address_line: None,
            },
            code_system: ObservationCodeSystem::Loinc,
            code: "8867-4".into(),
            display: "Heart rate".into(),
            value: Some(72.0),
            unit: Some("/min".into()),
            comment: None,
            interpretation: Some(Interpretation::Normal),
            value_decimal: ResultDecimal::parse("72"),
            reference_range: Some(ReferenceRange {
                low: ResultDecimal::parse("60"),
                high: ResultDecimal::parse("100"),
                text: Some("60-100".into()),
            }),
            interpretation_codes: Some(vec!["N".into()]),
        })
    }

    #[test]
    fn fields_in_any_order_and_plain_avro_forms_are_read() {
        let event = observation();
        let mut value = event.clone().into_record().value;
        let Value::Record(fields) = &mut value else { panic!("not a record") };
        fields.reverse();
        *field_mut(&mut value, "event_id") = Value::String("0b6c3b0e-6f1a-4a55-9a52-6a3f7f0d2c11".into());
        *field_mut(&mut value, "occurred_at") = Value::Long(1_773_585_000_000_000);
        *field_mut(&mut value, "date_of_birth") = Value::Union(1, Box::new(Value::Int(72)));
        *field_mut(&mut value, "comment") = Value::Null;
        assert_eq!(ClinicalEvent::from_record("observation", &value), Ok(event));
    }

    #[test]
    fn errors_name_the_field_and_never_the_value() {
        let record = observation().into_record().value;
        let cases: [(&str, Value, &str, Problem); 7] = [
            ("nhs_number", Value::Union(1, Box::new(Value::String("9434765918".into()))), "nhs_number", {
                Problem::NhsNumber(sluice_schemas::InvalidNhsNumber::CheckDigit)
            }),
            ("sex", Value::Union(1, Box::new(Value::Enum(1, "MALEISH".into()))), "sex", {
                Problem::NotAllowed("FEMALE, MALE, OTHER and UNKNOWN")
            }),
            ("event_id", Value::String("not-a-uuid-X1".into()), "event_id", Problem::Unreadable("UUID")),
            ("occurred_at", Value::TimestampMicros(i64::MAX), "occurred_at", Problem::Unreadable("timestamp")),
            ("date_of_birth", Value::Union(1, Box::new(Value::Date(i32::MAX))), "date_of_birth", {
                Problem::Unreadable("date")
            }),
            ("code", Value::Long(424242), "code", Problem::Unreadable("string")),
            ("display", Value::Union(0, Box::new(Value::Null)), "display", Problem::Unreadable("string")),
        ];
        for (name, bad, field, problem) in cases {
            let mut value = record.clone();
            *field_mut(&mut value, name) = bad;
            let error = ClinicalEvent::from_record("observation", &value).unwrap_err();
            assert_eq!(error, ValidationError::new(field, problem), "{name}");
            for secret in ["9434765918", "MALEISH", "X1", "424242"] {
                assert!(!error.to_string().contains(secret), "{error}");
            }
        }

        let mut missing = record.clone();
        let Value::Record(fields) = &mut missing else { panic!() };
        fields.retain(|(name, _)| name != "code");
        assert_eq!(
            ClinicalEvent::from_record("observation", &missing),
            Err(ValidationError::new("code", Problem::Missing))
        );

        let mut extra = record.clone();
        let Value::Record(fields) = &mut extra else { panic!() };
        fields.push(("ward_round".into(), Value::String("W12".into())));
        assert_eq!(
            ClinicalEvent::from_record("observation", &extra).unwrap_err().field,
            "ward_round",
            "a field without a place in the event is refused, not dropped"
        );

        let mut twice = record.clone();
        let Value::Record(fields) = &mut twice else { panic!() };
        fields.push(("code".into(), Value::String("8867-4".into())));
        assert_eq!(ClinicalEvent::from_record("observation", &twice).unwrap_err().field, "code");

        assert_eq!(
            ClinicalEvent::from_record("vaccination", &record).unwrap_err().field,
            "subject",
            "unknown subjects are refused"
        );
        assert_eq!(
            ClinicalEvent::from_record("observation", &Value::Null),
            Err(ValidationError::new("record", Problem::Unreadable("record")))
        );
        // The record of one subject is not read as another's.
        assert_eq!(ClinicalEvent::from_record("diagnosis", &record).unwrap_err().field, "value");
    }

    #[test]
    fn consent_scope_and_study_id_must_agree() {
        let consent = ClinicalEvent::Consent(ConsentEvent {
            event_id: Uuid::from_u128(1),
            effective_at: DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap(),
            effective_until: None,
            recorded_at: DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap(),
            source_organisation: "X26".into(),
            nhs_number: NhsNumber::parse("9434765919").unwrap(),
            scope: ConsentScope::Study("IRAS-123456".into()),
            deny: true,
            purposes: vec!["study:IRAS-123456".into()],
        });
        let record = consent.clone().into_record().value;
        assert_eq!(ClinicalEvent::from_record("consent", &record), Ok(consent.clone()));

        // Other spellings of the study id and purposes come out canonical; a study change
        // limited to purposes that leave its own study out is refused.
        let mut spelled = record.clone();
        *field_mut(&mut spelled, "study_id") = Value::Union(1, Box::new(Value::String("iras 123456".into())));
        *field_mut(&mut spelled, "purposes") = Value::Array(vec![Value::String("study:IRAS ID: 123456".into())]);
        assert_eq!(ClinicalEvent::from_record("consent", &spelled), Ok(consent));
        let mut elsewhere = record.clone();
        *field_mut(&mut elsewhere, "purposes") = Value::Array(vec![Value::String("research".into())]);
        assert_eq!(
            ClinicalEvent::from_record("consent", &elsewhere),
            Err(ValidationError::new("purposes", Problem::OwnStudyMissing))
        );
        let mut unknown = record.clone();
        *field_mut(&mut unknown, "purposes") = Value::Array(vec![Value::String("marketing".into())]);
        assert_eq!(ClinicalEvent::from_record("consent", &unknown).unwrap_err().field, "purposes");

        let mut national = record.clone();
        *field_mut(&mut national, "scope") = Value::Enum(0, "NATIONAL_DATA_OPT_OUT".into());
        let error = ClinicalEvent::from_record("consent", &national).unwrap_err();
        assert_eq!(error.field, "study_id", "a study id would be lost");
        assert!(!error.to_string().contains("IRAS"), "{error}");

        let mut no_study = record.clone();
        *field_mut(&mut no_study, "study_id") = Value::Union(0, Box::new(Value::Null));
        assert_eq!(
            ClinicalEvent::from_record("consent", &no_study),
            Err(ValidationError::new("study_id", Problem::Missing))
        );
    }

    proptest! {
        #[test]
        fn from_record_inverts_into_record(event in arbitrary::valid_event()) {
            prop_assert_eq!(event.validate(arbitrary::now()), Ok(()), "the strategy makes valid events");
            let record = event.clone().into_record();
            prop_assert_eq!(ClinicalEvent::from_record(record.subject, &record.value), Ok(event));
        }
    }
}
