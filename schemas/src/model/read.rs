//! Reading the model from Avro records, as apache-avro produces them whether it built them from
//! a schema or was handed them by code: unions as `Value::Union(_, inner)` (or a bare value or
//! `Value::Null`), UUIDs as `Value::Uuid` or `Value::String`, timestamps as
//! `Value::TimestampMicros` or `Value::Long`, dates as `Value::Date` or `Value::Int` (days since
//! 1970-01-01) and enum symbols as `Value::Enum(_, symbol)` (the index is ignored; the symbol
//! decides). The record must hold every field of the schema version it is read as, each once,
//! and nothing else: a field the typed event has no place for is an error rather than something
//! to drop. Fields may come in any order. Errors name the field by its schema name and never
//! carry a value.

use apache_avro::{Schema, types::Value};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use uuid::Uuid;

use super::{
    AdtEvent, AvroEnum, ClinicalEvent, ConsentEvent, DiagnosisEvent, ObservationEvent, Problem, ReferenceRange,
    ResultDecimal, ValidationError,
};
use crate::{Catalogue, NhsNumber, SchemaVersion, subjects};

/// The outcome of reading one part of a record.
pub(crate) type Read<T> = Result<T, ValidationError>;

impl ClinicalEvent {
    /// The event held by `value`, a record of the newest schema version of `subject` (which is
    /// what a consumer's decoder yields for a record of any version).
    ///
    /// The record's Kafka key is not needed: [`ClinicalEvent::record_key`] derives it again.
    /// The event is not validated; call [`ClinicalEvent::validate`] before publishing it.
    pub fn from_record(subject: &str, value: &Value) -> Result<ClinicalEvent, ValidationError> {
        let latest = match Catalogue::embedded().latest(subject) {
            Ok(latest) if super::EVENT_SUBJECTS.contains(&subject) => latest,
            _ => {
                return Err(ValidationError::new(
                    "subject",
                    Problem::NotAllowed("the subjects adt, observation, diagnosis and consent"),
                ));
            }
        };
        let record = Fields::new(value, latest)?;
        Ok(match latest.subject() {
            subjects::ADT => ClinicalEvent::Adt(AdtEvent::read(&record)?),
            subjects::OBSERVATION => ClinicalEvent::Observation(ObservationEvent::read(&record)?),
            subjects::DIAGNOSIS => ClinicalEvent::Diagnosis(DiagnosisEvent::read(&record)?),
            _ => ClinicalEvent::Consent(ConsentEvent::read(&record)?),
        })
    }

    /// The event held by `value`, a record written with `version` (any catalogued version of an
    /// event subject), read without first resolving it to the newest version: fields the
    /// newest version added since take their schema defaults, as Avro schema resolution would
    /// give them.
    pub fn from_record_of(version: &SchemaVersion, value: &Value) -> Result<ClinicalEvent, ValidationError> {
        let subject = version.subject();
        let latest = Catalogue::embedded().latest(subject).ok();
        let Some(latest) = latest.filter(|latest| latest.fingerprint() != version.fingerprint()) else {
            return ClinicalEvent::from_record(subject, value);
        };
        Fields::new(value, version)?;
        let Value::Record(written) = value else { unreachable!("Fields::new checks that it is a record") };
        let Schema::Record(newest) = latest.schema() else {
            return Err(ValidationError::new("record", Problem::Unreadable("record")));
        };
        let mut fields = written.clone();
        for field in &newest.fields {
            if fields.iter().any(|(name, _)| *name == field.name) || has_field(version, &field.name) {
                continue;
            }
            let default = match &field.default {
                Some(serde_json::Value::Null) => Value::Null,
                Some(serde_json::Value::Array(items)) if items.is_empty() => Value::Array(Vec::new()),
                _ => return Err(ValidationError::new(field.name.as_str(), Problem::Missing)),
            };
            fields.push((field.name.clone(), default));
        }
        ClinicalEvent::from_record(subject, &Value::Record(fields))
    }
}

/// Whether `version` has a field called `name`.
fn has_field(version: &SchemaVersion, name: &str) -> bool {
    matches!(version.schema(), Schema::Record(record) if record.fields.iter().any(|f| f.name == name))
}

/// A record's fields by name, checked to be exactly the expected ones.
pub(crate) struct Fields<'v> {
    /// `(name, value)` as the record holds them.
    fields: &'v [(String, Value)],
}

impl<'v> Fields<'v> {
    /// Checks that `value` is a record whose fields are fields of `version`, each at most once.
    /// Absent fields are reported when they are read.
    pub(crate) fn new(value: &'v Value, version: &SchemaVersion) -> Read<Self> {
        let Value::Record(fields) = value else {
            return Err(ValidationError::new("record", Problem::Unreadable("record")));
        };
        for (index, (name, _)) in fields.iter().enumerate() {
            if !has_field(version, name) {
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

    /// The value of a field that must be present.
    pub(crate) fn required(&self, name: &'static str) -> Read<&'v Value> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value)
            .ok_or_else(|| ValidationError::new(name, Problem::Missing))
    }

    /// The value of a `["null", T]` field: `None` for null.
    pub(crate) fn nullable(&self, name: &'static str) -> Read<Option<&'v Value>> {
        Ok(match self.required(name)? {
            Value::Null => None,
            Value::Union(_, inner) => match inner.as_ref() {
                Value::Null => None,
                inner => Some(inner),
            },
            other => Some(other),
        })
    }

    pub(crate) fn string(&self, name: &'static str) -> Read<String> {
        string(name, self.required(name)?)
    }

    pub(crate) fn optional_string(&self, name: &'static str) -> Read<Option<String>> {
        self.nullable(name)?.map(|value| string(name, value)).transpose()
    }

    pub(crate) fn uuid(&self, name: &'static str) -> Read<Uuid> {
        match self.required(name)? {
            Value::Uuid(uuid) => Ok(*uuid),
            Value::String(text) => {
                Uuid::parse_str(text).map_err(|_| ValidationError::new(name, Problem::Unreadable("UUID")))
            }
            _ => Err(ValidationError::new(name, Problem::Unreadable("UUID"))),
        }
    }

    pub(crate) fn timestamp(&self, name: &'static str) -> Read<DateTime<Utc>> {
        match self.required(name)? {
            Value::TimestampMicros(micros) | Value::Long(micros) => DateTime::from_timestamp_micros(*micros),
            _ => None,
        }
        .ok_or_else(|| ValidationError::new(name, Problem::Unreadable("timestamp")))
    }

    pub(crate) fn optional_timestamp(&self, name: &'static str) -> Read<Option<DateTime<Utc>>> {
        self.nullable(name)?
            .map(|value| match value {
                Value::TimestampMicros(micros) | Value::Long(micros) => DateTime::from_timestamp_micros(*micros),
                _ => None,
            })
            .map(|at| at.ok_or_else(|| ValidationError::new(name, Problem::Unreadable("timestamp"))))
            .transpose()
    }

    pub(crate) fn symbol<T: AvroEnum>(&self, name: &'static str) -> Read<T> {
        symbol(name, self.required(name)?)
    }

    pub(crate) fn optional_symbol<T: AvroEnum>(&self, name: &'static str) -> Read<Option<T>> {
        self.nullable(name)?.map(|value| symbol(name, value)).transpose()
    }
}

pub(crate) fn nhs_number(text: &str) -> Read<NhsNumber> {
    NhsNumber::parse(text).map_err(|error| ValidationError::new("nhs_number", Problem::NhsNumber(error)))
}

pub(crate) fn string(name: &'static str, value: &Value) -> Read<String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        _ => Err(ValidationError::new(name, Problem::Unreadable("string"))),
    }
}

fn symbol<T: AvroEnum>(name: &'static str, value: &Value) -> Read<T> {
    let text = match value {
        Value::Enum(_, text) | Value::String(text) => text,
        _ => return Err(ValidationError::new(name, Problem::Unreadable("enum symbol"))),
    };
    T::from_symbol(text).ok_or_else(|| ValidationError::new(name, Problem::NotAllowed(T::ALLOWED)))
}

pub(crate) fn double(name: &'static str, value: &Value) -> Read<f64> {
    match value {
        Value::Double(number) => Ok(*number),
        Value::Float(number) => Ok(f64::from(*number)),
        Value::Int(number) => Ok(f64::from(*number)),
        _ => Err(ValidationError::new(name, Problem::Unreadable("number"))),
    }
}

pub(crate) fn decimal(name: &'static str, value: &Value) -> Read<ResultDecimal> {
    ResultDecimal::from_avro(value).ok_or_else(|| ValidationError::new(name, Problem::Unreadable("decimal(18,6)")))
}

/// A `ReferenceRange` record: its fields are named `<name>.low`, `<name>.high`, `<name>.text` in
/// errors.
pub(crate) fn reference_range(name: &'static str, value: &Value) -> Read<ReferenceRange> {
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

pub(crate) fn strings(name: &'static str, value: &Value) -> Read<Vec<String>> {
    match value {
        Value::Array(items) => items.iter().map(|item| string(name, item)).collect(),
        _ => Err(ValidationError::new(name, Problem::Unreadable("array of strings"))),
    }
}

pub(crate) fn date(name: &'static str, value: &Value) -> Read<NaiveDate> {
    match value {
        Value::Date(days) | Value::Int(days) => {
            NaiveDate::default().checked_add_signed(TimeDelta::days(i64::from(*days)))
        }
        _ => None,
    }
    .ok_or_else(|| ValidationError::new(name, Problem::Unreadable("date")))
}
