//! # Subject JSON: batch extracts as NDJSON
//!
//! A batch extract in *subject JSON form* is a text file of
//! [newline-delimited JSON](https://github.com/ndjson/ndjson-spec): one JSON object per line,
//! each line one record of a catalogue subject, written in plain JSON that follows the fields of
//! one version of that subject's Avro schema (`schemas/avro/<subject>/v<N>.avsc`):
//!
//! ```json
//! {"subject": "observation", "version": 2, "record": { ...fields of observation v2... }}
//! ```
//!
//! | Key | Required | Meaning |
//! |---|---|---|
//! | `subject` | yes | `adt`, `observation`, `diagnosis` or `consent` |
//! | `version` | no | the schema version the record is written in, a positive integer; the newest version of the subject when absent |
//! | `record` | yes | an object holding the fields of that schema version, by field name, in any order |
//!
//! [`parse_subject_line`] reads one line (the reader of the file splits lines, decides what to
//! do with blank ones and removes a byte-order mark at the start of the file; a trailing `\r` is
//! ignored). It parses the line once, checks each value against the field of the schema
//! version it names, and reads that version's record directly into a typed [`ClinicalEvent`]
//! ([`ClinicalEvent::from_record_of`]: no resolution to the newest version first; the fields
//! that version lacks take the newest version's defaults, as a Kafka consumer would read a
//! message written with that version), then applies [`ClinicalEvent::validate`]: the same rules as every other
//! adapter (NHS number Modulus 11 check, ODS codes, plausible timestamps, well-formed ICD-10,
//! LOINC and SNOMED CT codes, UK postcodes).
//!
//! ## Values
//!
//! Values are plain JSON, read by the type that the schema gives the field:
//!
//! | Schema type | JSON | Example |
//! |---|---|---|
//! | `string` | a string | `"RR8"` |
//! | `boolean` | `true` or `false` | `true` |
//! | `int`, `long` | an integer in range, without a fraction, decimal point or exponent | `42` |
//! | `double` | a number | `7.25`, `72` |
//! | enum | one of the enum's symbols, as a string, in upper case | `"FEMALE"` |
//! | `string` with logical type `uuid` | the canonical hyphenated form (either case) | `"0b6c3b0e-6f1a-4a55-9a52-6a3f7f0d2c11"` |
//! | `long` with logical type `timestamp-micros` | an [RFC 3339](https://www.rfc-editor.org/rfc/rfc3339) timestamp **with** an offset (`Z` or `±hh:mm`), at most microsecond precision; or an integer of microseconds since 1970-01-01T00:00:00Z | `"2026-03-15T14:30:00Z"`, `"2026-03-15T14:30:00.250+01:00"`, `1773585000000000` |
//! | `int` with logical type `date` | `YYYY-MM-DD`; or an integer of days since 1970-01-01 | `"1970-03-14"`, `72` |
//! | `bytes` with logical type `decimal` | a string of plain decimal text with at most `scale` digits after the point (refused, never rounded, if it has more digits than the type holds); or an integer | `"4.15"`, `"-0.5"`, `72` |
//! | record | a JSON object of its fields, by the same rules | `{"low": "3.5", "high": "5.3"}` |
//! | array | a JSON array of the item type | `["research"]` |
//! | `["null", T]` | `null`, or leave the key out; otherwise a value of `T` | `null` |
//!
//! A key left out of `record` takes the field's schema default (`purposes` defaults to `[]`),
//! or null when the field is nullable; a field that has neither is required. A timestamp without
//! an offset is refused rather than guessed at: write local times with their offset (`+01:00`
//! in British Summer Time) or convert them to UTC (`Z`).
//!
//! ## Failing closed
//!
//! A line that does not say exactly one thing is refused, so nothing is dropped or guessed
//! silently: a key of `record` that is not a field of the named schema version, a key outside
//! `subject`, `version` and `record` at the top level, a key that appears twice, a fraction or
//! an out-of-range number for an integer, an enum symbol the schema does not list, a
//! `study_id` on a consent change whose scope is not `STUDY`. Record fields are matched by
//! their exact, case-sensitive schema names.
//!
//! ## Versions
//!
//! The record is checked against the version it names and read as that version, as the
//! consumers read every message with Avro schema resolution: fields added since take their
//! defaults. An `observation` line written as `"version": 1` has no
//! `interpretation` key (it would be refused as unknown) and becomes an observation without an
//! interpretation.
//!
//! ## Errors
//!
//! A refused line gives a [`LineError`]: the JSON path of the offending part
//! (`record.nhs_number`, `record.purposes[2]`, `subject`, `version`, `record`, or empty for the
//! line as a whole) and what is wrong with it, e.g. ``record.nhs_number`: the NHS number's
//! check digit is wrong``. An error never contains a value from the line (not even an unknown
//! key, which might be a misplaced value), so errors can be logged and returned to the source's
//! data team. A line that is not valid UTF-8 or not valid JSON is reported by line and column
//! (counted in bytes from 1) of the first problem.
//!
//! ## Example lines
//!
//! One line per subject (synthetic patients; `9990000018` is in the NHS test range). An
//! admission:
//!
//! ```json
//! {"subject": "adt", "version": 1, "record": {"event_id": "0b6c3b0e-6f1a-4a55-9a52-6a3f7f0d2c11", "occurred_at": "2026-03-15T14:30:00Z", "recorded_at": "2026-03-15T14:31:07.250Z", "source_organisation": "RR8", "source_system": "PAS", "nhs_number": "9990000018", "local_patient_id": "H1234567", "family_name": "Example", "given_name": "Alex", "date_of_birth": "1970-03-14", "sex": "FEMALE", "postcode": "LS6 2QT", "address_line": "12 Church Lane", "event_type": "ADMIT", "patient_class": "INPATIENT", "location_code": "W12", "treatment_function_code": "300"}}
//! ```
//!
//! A heart rate under the newest `observation` version (no `version` key), with optional fields
//! left out:
//!
//! ```json
//! {"subject": "observation", "record": {"event_id": "5d2a7c1e-3b7f-4e1a-8c55-0f6b2d9e4a31", "occurred_at": "2026-03-15T15:02:00+00:00", "recorded_at": "2026-03-15T15:04:30Z", "source_organisation": "RR8", "source_system": "LIMS", "nhs_number": "9990000018", "local_patient_id": "H1234567", "code_system": "LOINC", "code": "8867-4", "display": "Heart rate", "value": 72, "unit": "/min", "interpretation": "NORMAL"}}
//! ```
//!
//! A systolic blood pressure written by a version 1 source, with integer timestamps:
//!
//! ```json
//! {"subject": "observation", "version": 1, "record": {"event_id": "8f14e45f-ceea-467f-a8a1-2f9c1b7d3e60", "occurred_at": 1773585000000000, "recorded_at": 1773585060000000, "source_organisation": "RR801", "source_system": "OBS", "nhs_number": null, "local_patient_id": "H7654321", "family_name": null, "given_name": null, "date_of_birth": null, "sex": "MALE", "postcode": null, "code_system": "SNOMED_CT", "code": "271649006", "display": "Systolic blood pressure", "value": 128.5, "unit": "mm[Hg]", "comment": null}}
//! ```
//!
//! A primary diagnosis coded in ICD-10:
//!
//! ```json
//! {"subject": "diagnosis", "version": 1, "record": {"event_id": "c3a1e7d2-9b4f-4d6a-b2e8-7f1c0a5d3b94", "occurred_at": "2026-03-16T09:00:00Z", "recorded_at": "2026-03-16T11:45:00Z", "source_organisation": "RR8", "source_system": "CODING", "nhs_number": "9990000018", "local_patient_id": "H1234567", "date_of_birth": "1970-03-14", "code_system": "ICD10", "code": "E11.9", "display": "Type 2 diabetes mellitus without complications", "is_primary": true, "onset_date": "2019-06-01"}}
//! ```
//!
//! A dissent from one study (its id in any accepted spelling: it is stored as `IRAS-312456`). A
//! study change limited to purposes must name its own study among them, or it is refused:
//!
//! ```json
//! {"subject": "consent", "version": 1, "record": {"event_id": "1e9d4c2b-7a3f-4b8e-9d6c-5a2f8e1b7c03", "effective_at": "2026-03-01T00:00:00Z", "recorded_at": "2026-03-02T10:15:00Z", "source_organisation": "B86001", "nhs_number": "9990000018", "scope": "STUDY", "study_id": "IRAS 312456", "decision": "DENY", "purposes": ["study:IRAS 312456"]}}
//! ```
//!
//! A consent to a study for six months (version 2 of the consent schema adds `effective_until`;
//! `effective_at` may be up to a year ahead, and a lander applies the change when its time comes):
//!
//! ```json
//! {"subject": "consent", "version": 2, "record": {"event_id": "5b0e7c1d-2f4a-4c8e-8d3b-9a6f1e2c7d40", "effective_at": "2026-03-01T00:00:00Z", "effective_until": "2026-09-01T00:00:00Z", "recorded_at": "2026-03-02T10:15:00Z", "source_organisation": "B86001", "nhs_number": "9990000018", "scope": "STUDY", "study_id": "IRAS-312456", "decision": "PERMIT", "purposes": []}}
//! ```
//!
//! Reading a line:
//!
//! ```
//! use chrono::Utc;
//! use sluice_producers::{clinical::ClinicalEvent, subject_json::parse_subject_line};
//! use sluice_schemas::Catalogue;
//!
//! let line = br#"{"subject": "consent", "record": {"event_id": "1e9d4c2b-7a3f-4b8e-9d6c-5a2f8e1b7c03", "effective_at": "2026-03-01T00:00:00Z", "recorded_at": "2026-03-02T10:15:00Z", "source_organisation": "X26", "nhs_number": "9990000018", "scope": "NATIONAL_DATA_OPT_OUT", "decision": "DENY"}}"#;
//! let event = parse_subject_line(line, Catalogue::embedded(), Utc::now()).unwrap();
//! assert!(matches!(&*event, ClinicalEvent::Consent(change) if change.deny && change.purposes.is_empty()));
//!
//! let error = parse_subject_line(br#"{"subject": "consent", "record": {}}"#, Catalogue::embedded(), Utc::now())
//!     .unwrap_err();
//! assert_eq!(error.to_string(), "`record.event_id`: is required");
//! ```

use std::{cell::OnceCell, fmt};

use apache_avro::{
    Schema,
    schema::{EnumSchema, Name, RecordField, RecordSchema, ResolvedSchema},
    types::Value,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use sluice_schemas::{Catalogue, SchemaVersion};

use crate::clinical::{ClinicalEvent, ValidEvent, ValidationError};
use crate::json_input;

/// Why a line was refused. Neither part ever contains a value from the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct LineError {
    /// JSON path of the offending part: `subject`, `version`, `record`, `record.nhs_number`,
    /// `record.purposes[2]`; empty for the line as a whole.
    pub field: String,
    /// What is wrong, for the source's data team.
    pub message: String,
}

impl LineError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        LineError { field: field.into(), message: message.into() }
    }
}

use sluice_schemas::model::EVENT_SUBJECTS;

/// Reads one line in subject JSON form (see the [module documentation](self)) into a valid
/// event. `now` is the time of receipt, against which timestamps are judged plausible.
pub fn parse_subject_line(line: &[u8], catalogue: &Catalogue, now: DateTime<Utc>) -> Result<ValidEvent, LineError> {
    read_subject_json(&parse_json(line)?, catalogue, now)
}

/// [`parse_subject_line`] of a line already parsed (by a reader that looked at its keys to
/// tell subject JSON from FHIR), so that a line is parsed once.
pub(crate) fn read_subject_json(
    json: &Json,
    catalogue: &Catalogue,
    now: DateTime<Utc>,
) -> Result<ValidEvent, LineError> {
    let (writer, record) = writer_and_record(json, catalogue)?;
    let value = Converter::new(writer).record_fields(record, record_schema(writer)?, &Path::Record, None)?;
    let in_record =
        |error: ValidationError| LineError::new(format!("record.{}", error.field), error.problem.to_string());
    // Read as written: fields the writer's version lacks take the newest version's defaults.
    let event = ClinicalEvent::from_record_of(writer, &value).map_err(in_record)?;
    event.validate(now).map_err(in_record)
}

/// A JSON value that keeps its object keys in order and duplicates, so that a repeated key can
/// be refused instead of one of its values silently winning.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    /// A number written without a fraction or exponent that fits in 64 bits (signed or not).
    Integer(i128),
    /// Any other number.
    Float(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Whether this is an object with the key `key`.
    pub(crate) fn has_key(&self, key: &str) -> bool {
        matches!(self, Json::Object(entries) if entries.iter().any(|(name, _)| name == key))
    }

    /// The value as serde_json holds it, for readers of other formats (FHIR): a repeated key
    /// keeps its last value, as serde_json's own parser does.
    pub(crate) fn into_serde(self) -> serde_json::Value {
        match self {
            Json::Null => serde_json::Value::Null,
            Json::Bool(b) => serde_json::Value::Bool(b),
            Json::Integer(n) => match (i64::try_from(n), u64::try_from(n)) {
                (Ok(i), _) => serde_json::Value::from(i),
                (_, Ok(u)) => serde_json::Value::from(u),
                _ => serde_json::Value::from(n as f64),
            },
            Json::Float(x) => {
                serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
            Json::String(s) => serde_json::Value::String(s),
            Json::Array(items) => serde_json::Value::Array(items.into_iter().map(Json::into_serde).collect()),
            Json::Object(entries) => {
                let mut map = serde_json::Map::new();
                for (key, value) in entries {
                    map.insert(key, value.into_serde());
                }
                serde_json::Value::Object(map)
            }
        }
    }

    /// The kind of value, for messages (never the value itself).
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Integer(_) | Json::Float(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    /// A schema default, as the schema parser holds it.
    fn from_default(value: &serde_json::Value) -> Json {
        match value {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(*b),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Json::Integer(i128::from(i)),
                (None, Some(u)) => Json::Integer(i128::from(u)),
                (None, None) => Json::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Json::String(s.clone()),
            serde_json::Value::Array(items) => Json::Array(items.iter().map(Json::from_default).collect()),
            serde_json::Value::Object(entries) => {
                Json::Object(entries.iter().map(|(k, v)| (k.clone(), Json::from_default(v))).collect())
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
        Ok(Json::Integer(i128::from(n)))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
        Ok(Json::Integer(i128::from(n)))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Json, E> {
        Ok(Json::Float(n))
    }

    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Json, E> {
        Ok(Json::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            entries.push((key, value));
        }
        Ok(Json::Object(entries))
    }
}

/// Parses the line as JSON, with errors that never quote it.
fn parse_json(line: &[u8]) -> Result<Json, LineError> {
    let text = json_input::utf8(line).map_err(|message| LineError::new("", message))?;
    serde_json::from_str(text).map_err(|error| LineError::new("", json_input::describe(&error)))
}

/// The fields of a JSON object, in the order written.
type Entries = [(String, Json)];

/// The schema version the line names and its `record` object.
fn writer_and_record<'j, 'c>(
    json: &'j Json,
    catalogue: &'c Catalogue,
) -> Result<(&'c SchemaVersion, &'j Entries), LineError> {
    let Json::Object(entries) = json else {
        return Err(LineError::new(
            "",
            "must be a JSON object with the keys `subject`, `record` and optionally `version`",
        ));
    };
    let (mut subject, mut version, mut record) = (None, None, None);
    for (key, value) in entries {
        let (name, slot) = match key.as_str() {
            "subject" => ("subject", &mut subject),
            "version" => ("version", &mut version),
            "record" => ("record", &mut record),
            _ => return Err(LineError::new("", "has a key other than `subject`, `version` and `record`")),
        };
        if slot.replace(value).is_some() {
            return Err(LineError::new(name, "appears more than once"));
        }
    }

    let subject = match subject {
        Some(Json::String(subject)) => subject,
        Some(other) => return Err(LineError::new("subject", format!("must be a string, not {}", other.kind()))),
        None => return Err(LineError::new("subject", "is required")),
    };
    let versions = match catalogue.versions(subject) {
        Ok(versions) if EVENT_SUBJECTS.contains(&subject.as_str()) => versions,
        _ => {
            let known: Vec<&str> = catalogue.subject_names().filter(|name| EVENT_SUBJECTS.contains(name)).collect();
            return Err(LineError::new("subject", format!("is not one of the subjects {}", known.join(", "))));
        }
    };
    let newest = versions.last().expect("a subject has at least one version");
    let writer = match version {
        None => newest,
        Some(Json::Integer(number)) => usize::try_from(*number)
            .ok()
            .and_then(|number| number.checked_sub(1))
            .and_then(|index| versions.get(index))
            .ok_or_else(|| {
                LineError::new(
                    "version",
                    format!("is not a version of `{}` (1 to {})", newest.subject(), newest.version()),
                )
            })?,
        Some(other) => {
            return Err(LineError::new("version", format!("must be a whole number such as 1, not {}", other.kind())));
        }
    };
    match record {
        Some(Json::Object(fields)) => Ok((writer, fields)),
        Some(other) => Err(LineError::new("record", format!("must be an object, not {}", other.kind()))),
        None => Err(LineError::new("record", "is required")),
    }
}

fn record_schema(version: &SchemaVersion) -> Result<&RecordSchema, LineError> {
    match version.schema() {
        Schema::Record(record) => Ok(record),
        _ => Err(LineError::new("record", format!("cannot be read: {} is not a record schema", version.label()))),
    }
}

/// Where a value is in the line; rendered only for an error. Names come from the schema, never
/// from the line.
enum Path<'p> {
    /// The `record` object.
    Record,
    /// A field of a record.
    Field(&'p Path<'p>, &'p str),
    /// An item of an array, from 0.
    Item(&'p Path<'p>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Record => f.write_str("record"),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Item(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// Builds an Avro value of the writer schema from plain JSON, field by field.
struct Converter<'s> {
    /// The schema version the line names.
    version: &'s SchemaVersion,
    /// Named types of the schema, for references to a type defined earlier; built on first use.
    names: OnceCell<Option<ResolvedSchema<'s>>>,
}

type Converted = Result<Value, LineError>;

const TIMESTAMP: &str = "an RFC 3339 timestamp with an offset (e.g. 2026-03-15T14:30:00Z) \
                         or an integer of microseconds since 1970-01-01T00:00:00Z";
const DATE: &str = "a date written YYYY-MM-DD or an integer of days since 1970-01-01";
const UUID: &str = "a UUID in its canonical form (8-4-4-4-12 hexadecimal digits)";

impl<'s> Converter<'s> {
    fn new(version: &'s SchemaVersion) -> Self {
        Converter { version, names: OnceCell::new() }
    }

    /// The record named by `path` from the keys of a JSON object.
    fn record_fields(
        &self,
        entries: &Entries,
        schema: &'s RecordSchema,
        path: &Path<'_>,
        namespace: Option<&'s str>,
    ) -> Converted {
        let namespace = schema.name.namespace().or(namespace);
        for (index, (key, _)) in entries.iter().enumerate() {
            let Some(field) = schema.fields.iter().find(|field| field.name == *key) else {
                let whose = match path {
                    Path::Record => self.version.label(),
                    _ => format!("the `{}` record", schema.name.name()),
                };
                return Err(LineError::new(path.to_string(), format!("has a key that is not a field of {whose}")));
            };
            if entries[..index].iter().any(|(earlier, _)| earlier == key) {
                let field_path = Path::Field(path, &field.name);
                return Err(LineError::new(field_path.to_string(), "appears more than once"));
            }
        }
        let mut values = Vec::with_capacity(schema.fields.len());
        for field in &schema.fields {
            let field_path = Path::Field(path, &field.name);
            let value = match entries.iter().find(|(key, _)| *key == field.name) {
                Some((_, json)) => self.value(json, &field.schema, &field_path, namespace)?,
                None => self.absent(field, &field_path, namespace)?,
            };
            values.push((field.name.clone(), value));
        }
        Ok(Value::Record(values))
    }

    /// The value of a field whose key the record leaves out: its default, else null.
    fn absent(&self, field: &'s RecordField, path: &Path<'_>, namespace: Option<&'s str>) -> Converted {
        if let Some(default) = &field.default {
            return self.value(&Json::from_default(default), &field.schema, path, namespace).map_err(|_| {
                LineError::new(path.to_string(), "is absent and its schema default does not fit its type")
            });
        }
        match self.named(&field.schema, path, namespace)? {
            Schema::Union(union) if union.variants().iter().any(|v| matches!(v, Schema::Null)) => {
                self.value(&Json::Null, &field.schema, path, namespace)
            }
            _ => Err(LineError::new(path.to_string(), "is required")),
        }
    }

    /// The schema a reference names, or `schema` itself.
    fn named(&self, schema: &'s Schema, path: &Path<'_>, namespace: Option<&'s str>) -> Result<&'s Schema, LineError> {
        let Schema::Ref { name } = schema else { return Ok(schema) };
        let names = self.names.get_or_init(|| ResolvedSchema::try_from(self.version.schema()).ok());
        let full: &Name = &name.fully_qualified_name(namespace);
        names
            .as_ref()
            .and_then(|names| names.get_names().get(full).copied())
            .ok_or_else(|| LineError::new(path.to_string(), "has a type the schema does not define"))
    }

    fn value(&self, json: &Json, schema: &'s Schema, path: &Path<'_>, namespace: Option<&'s str>) -> Converted {
        let fail = |message: String| Err(LineError::new(path.to_string(), message));
        let mismatch = |expected: &str| fail(format!("must be {expected}, not {}", json.kind()));
        match (self.named(schema, path, namespace)?, json) {
            (Schema::Union(union), _) => {
                let variants = union.variants();
                if let (Json::Null, Some(index)) = (json, variants.iter().position(|v| matches!(v, Schema::Null))) {
                    return Ok(Value::Union(index as u32, Box::new(Value::Null)));
                }
                let mut non_null = variants.iter().enumerate().filter(|(_, v)| !matches!(v, Schema::Null));
                match (non_null.next(), non_null.next()) {
                    (Some((index, variant)), None) => {
                        Ok(Value::Union(index as u32, Box::new(self.value(json, variant, path, namespace)?)))
                    }
                    (None, _) => mismatch("null"),
                    (Some(_), Some(_)) => {
                        fail("has a union type of several non-null types, which subject JSON cannot express".into())
                    }
                }
            }
            (Schema::Null, Json::Null) => Ok(Value::Null),
            (Schema::Null, _) => mismatch("null"),
            (Schema::Boolean, Json::Bool(b)) => Ok(Value::Boolean(*b)),
            (Schema::Boolean, _) => mismatch("true or false"),
            (Schema::Int, _) => {
                Ok(Value::Int(integer(json, "an int").map_err(|m| LineError::new(path.to_string(), m))?))
            }
            (Schema::Long, _) => {
                Ok(Value::Long(integer(json, "a long").map_err(|m| LineError::new(path.to_string(), m))?))
            }
            (Schema::Double, Json::Integer(n)) => Ok(Value::Double(*n as f64)),
            (Schema::Double, Json::Float(x)) => Ok(Value::Double(*x)),
            (Schema::Double, _) => mismatch("a number"),
            (Schema::Float, Json::Integer(n)) => Ok(Value::Float(*n as f32)),
            (Schema::Float, Json::Float(x)) if (*x as f32).is_finite() => Ok(Value::Float(*x as f32)),
            (Schema::Float, Json::Float(_)) => fail("is out of range for a float".into()),
            (Schema::Float, _) => mismatch("a number"),
            (Schema::String, Json::String(s)) => Ok(Value::String(s.clone())),
            (Schema::String, _) => mismatch("a string"),
            (Schema::Enum(EnumSchema { symbols, .. }), Json::String(s)) => match symbols.iter().position(|x| x == s) {
                Some(index) => Ok(Value::Enum(index as u32, s.clone())),
                None => fail(format!("is not one of the symbols {}", symbols.join(", "))),
            },
            (Schema::Enum(EnumSchema { symbols, .. }), _) => {
                mismatch(&format!("a string holding one of the symbols {}", symbols.join(", ")))
            }
            (Schema::Array(array), Json::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| self.value(item, &array.items, &Path::Item(path, index), namespace))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            (Schema::Array(_), _) => mismatch("an array"),
            (Schema::Record(record), Json::Object(entries)) => self.record_fields(entries, record, path, namespace),
            (Schema::Record(_), _) => mismatch("an object"),
            (Schema::Uuid(_), Json::String(s)) => match canonical_uuid(s) {
                Some(uuid) => Ok(Value::Uuid(uuid)),
                None => fail(format!("is not {UUID}")),
            },
            (Schema::Uuid(_), _) => mismatch(UUID),
            (Schema::TimestampMicros, Json::String(s)) => match timestamp_micros(s) {
                Ok(micros) => Ok(Value::TimestampMicros(micros)),
                Err(message) => fail(message),
            },
            (Schema::TimestampMicros, Json::Integer(_) | Json::Float(_)) => Ok(Value::TimestampMicros(
                integer(json, "a timestamp in microseconds").map_err(|m| LineError::new(path.to_string(), m))?,
            )),
            (Schema::TimestampMicros, _) => mismatch(TIMESTAMP),
            (Schema::Date, Json::String(s)) => match date(s) {
                Some(days) => Ok(Value::Date(days)),
                None => fail(format!("is not {DATE}")),
            },
            (Schema::Date, Json::Integer(_) | Json::Float(_)) => {
                Ok(Value::Date(integer(json, "a date in days").map_err(|m| LineError::new(path.to_string(), m))?))
            }
            (Schema::Date, _) => mismatch(DATE),
            (Schema::Decimal(decimal), Json::String(s)) => {
                decimal_value(s, decimal.precision, decimal.scale).or_else(fail)
            }
            (Schema::Decimal(decimal), Json::Integer(n)) => {
                decimal_value(&n.to_string(), decimal.precision, decimal.scale).or_else(fail)
            }
            (Schema::Decimal(decimal), _) => mismatch(&format!(
                "a string holding a decimal number with at most {} digits after the point, such as \"4.15\" \
                 (a JSON number with a fraction is not exact)",
                decimal.scale
            )),
            _ => fail("has an Avro type that subject JSON does not support".into()),
        }
    }
}

/// The Avro value of plain decimal text (`-4.15`) for a `decimal(precision, scale)` field,
/// exactly: more digits than the type holds, before or after the point, are refused, never
/// rounded. The value is stored in as many bytes as the precision needs, because apache-avro
/// refuses to read a decimal stored in fewer.
fn decimal_value(text: &str, precision: usize, scale: usize) -> Result<Value, String> {
    let not_decimal = || format!("is not a plain decimal number with at most {scale} digits after the point");
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let plain = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !plain(whole) || !plain(fraction) || (digits.contains('.') && fraction.is_empty()) {
        return Err(not_decimal());
    }
    if fraction.len() > scale {
        return Err(format!("has more than {scale} digits after the point, and would have to be rounded"));
    }
    let whole = whole.trim_start_matches('0');
    if precision > 38 || whole.len() + scale > precision {
        return Err(format!("has more digits than a decimal({precision},{scale}) holds"));
    }
    let unscaled: i128 = format!("0{whole}{fraction:0<scale$}").parse().map_err(|_| not_decimal())?;
    let unscaled = if negative { -unscaled } else { unscaled };
    // Bytes needed: the smallest n with 10^precision - 1 <= 2^(8n - 1) - 1.
    let needed = (1..=16).find(|n| (precision as f64) <= ((8 * n - 1) as f64 * 2f64.log10())).unwrap_or(16);
    Ok(Value::Decimal(apache_avro::Decimal::from(&unscaled.to_be_bytes()[16 - needed..])))
}

/// An integer of type `T` from a JSON number written as an integer.
fn integer<T: TryFrom<i128>>(json: &Json, what: &str) -> Result<T, String> {
    let range = || format!("is out of range for {what}");
    match json {
        Json::Integer(n) => T::try_from(*n).map_err(|_| range()),
        Json::Float(x) if x.fract() != 0.0 => Err("must be a whole number, not a fraction".into()),
        Json::Float(x) if x.abs() >= 2f64.powi(63) => Err(range()),
        Json::Float(_) => Err("must be written as an integer, without a decimal point or exponent".into()),
        other => Err(format!("must be an integer, not {}", other.kind())),
    }
}

/// A UUID in its canonical 8-4-4-4-12 form (the braced, URN and unhyphenated forms are refused
/// so that one id has one spelling).
fn canonical_uuid(text: &str) -> Option<uuid::Uuid> {
    let bytes = text.as_bytes();
    let canonical = bytes.len() == 36
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) { *b == b'-' } else { b.is_ascii_hexdigit() });
    canonical.then(|| uuid::Uuid::parse_str(text).ok()).flatten()
}

/// Microseconds since the epoch of an RFC 3339 timestamp with an offset.
fn timestamp_micros(text: &str) -> Result<i64, String> {
    let at = DateTime::parse_from_rfc3339(text).map_err(|_| format!("is not {TIMESTAMP}"))?;
    if at.timestamp_subsec_nanos() % 1_000 != 0 {
        return Err("is more precise than a microsecond".into());
    }
    Ok(at.timestamp_micros())
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
fn date(text: &str) -> Option<i32> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| if matches!(i, 4 | 7) { *b == b'-' } else { b.is_ascii_digit() });
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().filter(|_| shaped)?;
    i32::try_from(date.signed_duration_since(NaiveDate::default()).num_days()).ok()
}

#[cfg(test)]
mod tests;
