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
//! ignored). It checks the record against the schema
//! version it names, reads it with the newest version of the subject exactly as a Kafka
//! consumer would read a message written with that version, turns it into a typed
//! [`ClinicalEvent`] and applies [`ClinicalEvent::validate`]: the same rules as every other
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
//! The record is checked against the version it names, then resolved to the newest version of
//! its subject with Avro schema resolution, as the consumers do with every message: fields added
//! since take their defaults. An `observation` line written as `"version": 1` has no
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
//! A dissent from one study, limited to research:
//!
//! ```json
//! {"subject": "consent", "version": 1, "record": {"event_id": "1e9d4c2b-7a3f-4b8e-9d6c-5a2f8e1b7c03", "effective_at": "2026-03-01T00:00:00Z", "recorded_at": "2026-03-02T10:15:00Z", "source_organisation": "B86001", "nhs_number": "9990000018", "scope": "STUDY", "study_id": "IRAS 312456", "decision": "DENY", "purposes": ["research"]}}
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
//! assert!(matches!(&event, ClinicalEvent::Consent(change) if change.deny && change.purposes.is_empty()));
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
use sluice_schemas::{Catalogue, SchemaVersion, subjects};

use crate::clinical::{ClinicalEvent, ValidationError};

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

/// The subjects [`ClinicalEvent`] covers.
const EVENT_SUBJECTS: [&str; 4] = [subjects::ADT, subjects::OBSERVATION, subjects::DIAGNOSIS, subjects::CONSENT];

/// Reads one line in subject JSON form (see the [module documentation](self)) into a valid
/// event. `now` is the time of receipt, against which timestamps are judged plausible.
pub fn parse_subject_line(line: &[u8], catalogue: &Catalogue, now: DateTime<Utc>) -> Result<ClinicalEvent, LineError> {
    let json = parse_json(line)?;
    let (writer, record) = writer_and_record(&json, catalogue)?;
    let value = Converter::new(writer).record_fields(record, record_schema(writer)?, &Path::Record, None)?;
    let value = to_newest(value, writer, catalogue)?;
    let in_record =
        |error: ValidationError| LineError::new(format!("record.{}", error.field), error.problem.to_string());
    let event = ClinicalEvent::from_record(writer.subject(), &value).map_err(in_record)?;
    event.validate(now).map_err(in_record)?;
    Ok(event)
}

/// A JSON value that keeps its object keys in order and duplicates, so that a repeated key can
/// be refused instead of one of its values silently winning.
#[derive(Debug, Clone, PartialEq)]
enum Json {
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

/// Parses the line as JSON. serde_json's messages are not passed on: the message is built from
/// the kind of error and its position only.
fn parse_json(line: &[u8]) -> Result<Json, LineError> {
    let text = std::str::from_utf8(line).map_err(|error| {
        let (line_number, column) = position(&line[..error.valid_up_to()]);
        LineError::new("", format!("is not valid UTF-8 (line {line_number}, column {column})"))
    })?;
    serde_json::from_str(text).map_err(|error| {
        use serde_json::error::Category;
        let what = match error.classify() {
            Category::Eof => "is not valid JSON: it ends before the JSON value does",
            Category::Syntax => "is not valid JSON",
            Category::Data | Category::Io => "could not be read as JSON",
        };
        LineError::new("", format!("{what} (line {}, column {})", error.line(), error.column()))
    })
}

/// Line and column (both from 1, the column in bytes) of the byte after `before`.
fn position(before: &[u8]) -> (usize, usize) {
    let line = 1 + before.iter().filter(|b| **b == b'\n').count();
    let column = 1 + before.iter().rev().take_while(|b| **b != b'\n').count();
    (line, column)
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

/// Resolves a record of `writer` to the newest version of its subject, as a consumer's decoder
/// does: fields added since take their defaults.
fn to_newest(value: Value, writer: &SchemaVersion, catalogue: &Catalogue) -> Result<Value, LineError> {
    let newest =
        catalogue.latest(writer.subject()).map_err(|_| LineError::new("subject", "has no newest schema version"))?;
    if newest.fingerprint() == writer.fingerprint() {
        return Ok(value);
    }
    value.resolve(newest.schema()).map_err(|error| {
        // apache-avro's messages can quote the value: keep the kind of failure only.
        let debug = format!("{:?}", error.details());
        let kind: String = debug.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        LineError::new("record", format!("cannot be read as {} ({kind})", newest.label()))
    })
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
            _ => fail("has an Avro type that subject JSON does not support".into()),
        }
    }
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
mod tests {
    use apache_avro::types::Value;
    use chrono::{FixedOffset, SecondsFormat, TimeDelta, TimeZone as _};
    use proptest::prelude::*;
    use sluice_schemas::{Decoder, Encoder, Framing, NhsNumber};
    use uuid::Uuid;

    use super::*;
    use crate::clinical::{
        AdministrativeSex, AdtEvent, AdtEventType, ConsentEvent, ConsentScope, DiagnosisCodeSystem, DiagnosisEvent,
        Interpretation, ObservationCodeSystem, ObservationEvent, PatientClass, PatientIdentity, Provenance,
        SubjectRecord, arbitrary,
    };

    fn parse(line: &[u8]) -> Result<ClinicalEvent, LineError> {
        parse_subject_line(line, Catalogue::embedded(), arbitrary::now())
    }

    /// The example lines of the module documentation, in order.
    fn documented_lines() -> Vec<&'static str> {
        include_str!("subject_json.rs")
            .lines()
            .skip_while(|line| *line != "//! ## Example lines")
            .filter_map(|line| line.strip_prefix("//! "))
            .filter(|line| line.starts_with(r#"{"subject""#))
            .collect()
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn test_patient() -> NhsNumber {
        NhsNumber::parse("9990000018").unwrap()
    }

    fn provenance(
        id: &str,
        occurred_at: DateTime<Utc>,
        recorded_at: DateTime<Utc>,
        org: &str,
        system: &str,
    ) -> Provenance {
        Provenance {
            event_id: Uuid::parse_str(id).unwrap(),
            occurred_at,
            recorded_at,
            source_organisation: org.into(),
            source_system: system.into(),
        }
    }

    fn patient(local_id: &str) -> PatientIdentity {
        PatientIdentity {
            nhs_number: Some(test_patient()),
            local_patient_id: local_id.into(),
            family_name: None,
            given_name: None,
            date_of_birth: None,
            sex: None,
            postcode: None,
            address_line: None,
        }
    }

    /// What each documented line means.
    fn documented_events() -> Vec<ClinicalEvent> {
        let adt = ClinicalEvent::Adt(AdtEvent {
            provenance: provenance(
                "0b6c3b0e-6f1a-4a55-9a52-6a3f7f0d2c11",
                at(2026, 3, 15, 14, 30, 0),
                at(2026, 3, 15, 14, 31, 7) + TimeDelta::milliseconds(250),
                "RR8",
                "PAS",
            ),
            patient: PatientIdentity {
                family_name: Some("Example".into()),
                given_name: Some("Alex".into()),
                date_of_birth: Some(day(1970, 3, 14)),
                sex: Some(AdministrativeSex::Female),
                postcode: Some("LS6 2QT".into()),
                address_line: Some("12 Church Lane".into()),
                ..patient("H1234567")
            },
            event_type: AdtEventType::Admit,
            patient_class: Some(PatientClass::Inpatient),
            location_code: Some("W12".into()),
            treatment_function_code: Some("300".into()),
        });
        let heart_rate = ClinicalEvent::Observation(ObservationEvent {
            provenance: provenance(
                "5d2a7c1e-3b7f-4e1a-8c55-0f6b2d9e4a31",
                at(2026, 3, 15, 15, 2, 0),
                at(2026, 3, 15, 15, 4, 30),
                "RR8",
                "LIMS",
            ),
            patient: patient("H1234567"),
            code_system: ObservationCodeSystem::Loinc,
            code: "8867-4".into(),
            display: "Heart rate".into(),
            value: Some(72.0),
            unit: Some("/min".into()),
            comment: None,
            interpretation: Some(Interpretation::Normal),
        });
        let blood_pressure_v1 = ClinicalEvent::Observation(ObservationEvent {
            provenance: provenance(
                "8f14e45f-ceea-467f-a8a1-2f9c1b7d3e60",
                at(2026, 3, 15, 14, 30, 0),
                at(2026, 3, 15, 14, 31, 0),
                "RR801",
                "OBS",
            ),
            patient: PatientIdentity { nhs_number: None, sex: Some(AdministrativeSex::Male), ..patient("H7654321") },
            code_system: ObservationCodeSystem::SnomedCt,
            code: "271649006".into(),
            display: "Systolic blood pressure".into(),
            value: Some(128.5),
            unit: Some("mm[Hg]".into()),
            comment: None,
            interpretation: None,
        });
        let diagnosis = ClinicalEvent::Diagnosis(DiagnosisEvent {
            provenance: provenance(
                "c3a1e7d2-9b4f-4d6a-b2e8-7f1c0a5d3b94",
                at(2026, 3, 16, 9, 0, 0),
                at(2026, 3, 16, 11, 45, 0),
                "RR8",
                "CODING",
            ),
            patient: PatientIdentity { date_of_birth: Some(day(1970, 3, 14)), ..patient("H1234567") },
            code_system: DiagnosisCodeSystem::Icd10,
            code: "E11.9".into(),
            display: "Type 2 diabetes mellitus without complications".into(),
            is_primary: true,
            onset_date: Some(day(2019, 6, 1)),
        });
        let consent = ClinicalEvent::Consent(ConsentEvent {
            event_id: Uuid::parse_str("1e9d4c2b-7a3f-4b8e-9d6c-5a2f8e1b7c03").unwrap(),
            effective_at: at(2026, 3, 1, 0, 0, 0),
            recorded_at: at(2026, 3, 2, 10, 15, 0),
            source_organisation: "B86001".into(),
            nhs_number: test_patient(),
            scope: ConsentScope::Study("IRAS 312456".into()),
            deny: true,
            purposes: vec!["research".into()],
        });
        vec![adt, heart_rate, blood_pressure_v1, diagnosis, consent]
    }

    #[test]
    fn each_documented_line_gives_its_event() {
        let lines = documented_lines();
        let expected = documented_events();
        assert_eq!(lines.len(), expected.len(), "one example per subject and version");
        for (line, event) in lines.iter().zip(expected) {
            assert_eq!(parse(line.as_bytes()), Ok(event), "{line}");
        }
        let versions: Vec<(String, Option<u32>)> = lines
            .iter()
            .map(|line| {
                let json: serde_json::Value = serde_json::from_str(line).unwrap();
                (json["subject"].as_str().unwrap().to_owned(), json["version"].as_u64().map(|v| v as u32))
            })
            .collect();
        for (subject, version) in [
            ("adt", Some(1)),
            ("observation", None),
            ("observation", Some(1)),
            ("diagnosis", Some(1)),
            ("consent", Some(1)),
        ] {
            assert!(versions.contains(&(subject.to_owned(), version)), "{subject} {version:?}");
        }
    }

    #[test]
    fn observation_v1_and_v2_lines() {
        let [_, heart_rate, blood_pressure_v1, ..] = documented_lines()[..] else { panic!() };
        // The newest version, named explicitly, is the same as no version.
        let v2 = heart_rate.replacen(r#""subject": "observation", "#, r#""subject": "observation", "version": 2, "#, 1);
        assert_eq!(parse(v2.as_bytes()), parse(heart_rate.as_bytes()));
        assert!(parse(heart_rate.as_bytes()).is_ok());

        // A v1 line gets no interpretation, and the v2 field is unknown to v1.
        let Ok(ClinicalEvent::Observation(event)) = parse(blood_pressure_v1.as_bytes()) else { panic!() };
        assert_eq!(event.interpretation, None);
        let with_interpretation =
            blood_pressure_v1.replacen(r#""comment": null"#, r#""comment": null, "interpretation": "HIGH""#, 1);
        let error = parse(with_interpretation.as_bytes()).unwrap_err();
        assert_eq!(error.field, "record");
        assert_eq!(error.message, "has a key that is not a field of observation v1");

        // The same v1 line read the way a consumer reads a v1 message: encode with v1, decode
        // (resolving to v2) and read the record back. The result is the same event.
        let catalogue = Catalogue::embedded();
        let json = parse_json(blood_pressure_v1.as_bytes()).unwrap();
        let (writer, record) = writer_and_record(&json, catalogue).unwrap();
        assert_eq!(writer.version(), 1);
        let value =
            Converter::new(writer).record_fields(record, record_schema(writer).unwrap(), &Path::Record, None).unwrap();
        let bytes = Encoder::new(catalogue, Framing::SingleObject).encode(writer, &value).unwrap();
        let decoded = Decoder::new(catalogue).decode(&bytes).unwrap();
        assert_eq!(decoded.reader.version(), 2);
        assert_eq!(decoded.value, to_newest(value, writer, catalogue).unwrap());
        assert_eq!(ClinicalEvent::from_record("observation", &decoded.value), Ok(ClinicalEvent::Observation(event)));
    }

    #[test]
    fn timestamps_and_dates_in_either_form_give_the_same_event() {
        let adt = documented_lines()[0];
        let expected = parse(adt.as_bytes()).unwrap();
        for occurred_at in [
            "1773585000000000",
            r#""2026-03-15T15:30:00+01:00""#,
            r#""2026-03-15T09:30:00-05:00""#,
            r#""2026-03-15T14:30:00.000000Z""#,
            r#""2026-03-15t14:30:00z""#,
        ] {
            let line = adt.replacen(r#""2026-03-15T14:30:00Z""#, occurred_at, 1);
            assert_ne!(line, adt);
            assert_eq!(parse(line.as_bytes()), Ok(expected.clone()), "{occurred_at}");
        }
        let line = adt.replacen(r#""1970-03-14""#, "72", 1);
        assert_eq!(parse(line.as_bytes()), Ok(expected.clone()));
        let line =
            adt.replacen(r#""recorded_at": "2026-03-15T14:31:07.250Z""#, r#""recorded_at": 1773585067250000"#, 1);
        assert_eq!(parse(line.as_bytes()), Ok(expected.clone()));

        // Absent nullable keys are null; `purposes` takes its default `[]`.
        let Ok(ClinicalEvent::Consent(consent)) =
            parse(documented_lines()[4].replacen(r#", "purposes": ["research"]"#, "", 1).as_bytes())
        else {
            panic!()
        };
        assert!(consent.purposes.is_empty());
    }

    /// `(line, field, a distinctive part of the line that the error must not repeat)`.
    fn refused_lines() -> Vec<(Vec<u8>, &'static str, &'static str)> {
        let lines = documented_lines();
        let (adt, consent) = (lines[0], lines[4]);
        let edit = |from: &str, to: &str| {
            let line = adt.replacen(from, to, 1);
            assert_ne!(line, adt, "{from}");
            line.into_bytes()
        };
        let edit_consent = |from: &str, to: &str| {
            let line = consent.replacen(from, to, 1);
            assert_ne!(line, consent, "{from}");
            line.into_bytes()
        };
        vec![
            (edit(r#""subject": "adt""#, r#""subject": "admissionsZQ""#), "subject", "admissionsZQ"),
            (edit(r#""subject": "adt""#, r#""subject": ["adt"]"#), "subject", "adt\""),
            (edit(r#""version": 1"#, r#""version": 977"#), "version", "977"),
            (edit(r#""version": 1"#, r#""version": 0"#), "version", "zzz"),
            (edit(r#""version": 1"#, r#""version": 1.5"#), "version", "1.5"),
            (edit(r#""version": 1"#, r#""version": 1, "sourceZQ": "x""#), "", "sourceZQ"),
            (edit(r#""version": 1"#, r#""version": 1, "version": 1"#), "version", "zzz"),
            (edit(r#""record": {"#, r#""record": {"wardZQ": "W12", "#), "record", "wardZQ"),
            (edit(r#""record": {"#, r#""record": {"nhs_number": "9434765919", "#), "record.nhs_number", "9434765919"),
            (edit(r#""local_patient_id": "H1234567", "#, ""), "record.local_patient_id", "zzz"),
            (
                edit(r#""local_patient_id": "H1234567""#, r#""local_patient_id": null"#),
                "record.local_patient_id",
                "zzz",
            ),
            (edit(r#""source_system": "PAS""#, r#""source_system": 4242"#), "record.source_system", "4242"),
            (edit(r#""2026-03-15T14:30:00Z""#, "1773585000000000.5"), "record.occurred_at", "1773585000000000"),
            (edit(r#""2026-03-15T14:30:00Z""#, "99999999999999999999"), "record.occurred_at", "99999999999999999999"),
            (edit(r#""1970-03-14""#, "2147483648"), "record.date_of_birth", "2147483648"),
            (edit(r#""1970-03-14""#, r#""14/03/1970""#), "record.date_of_birth", "14/03"),
            (edit(r#""1970-03-14""#, r#""1970-02-30""#), "record.date_of_birth", "02-30"),
            (edit(r#""FEMALE""#, r#""FEMALEZQ""#), "record.sex", "FEMALEZQ"),
            (edit(r#""FEMALE""#, r#""female""#), "record.sex", "female"),
            (edit("6a3f7f0d2c11", "6a3f7f0dZQ11"), "record.event_id", "6a3f7f0d"),
            (
                edit("0b6c3b0e-6f1a-4a55-9a52-6a3f7f0d2c11", "0b6c3b0e6f1a4a559a526a3f7f0d2c11"),
                "record.event_id",
                "0b6c3b0e",
            ),
            (edit(r#""2026-03-15T14:30:00Z""#, r#""2026-03-15T14:37:21""#), "record.occurred_at", "14:37:21"),
            (edit(r#""2026-03-15T14:30:00Z""#, r#""2026-03-15T14:37:21.1234567Z""#), "record.occurred_at", "1234567"),
            (edit(r#""2026-03-15T14:30:00Z""#, r#""2036-03-15T14:30:00Z""#), "record.occurred_at", "2036"),
            (edit(r#""nhs_number": "9990000018""#, r#""nhs_number": "9990000017""#), "record.nhs_number", "9990000017"),
            (edit(r#""nhs_number": "9990000018""#, r#""nhs_number": "99900000ZQ""#), "record.nhs_number", "ZQ"),
            (edit(r#""300""#, r#""30X""#), "record.treatment_function_code", "30X"),
            (edit(r#""LS6 2QT""#, r#""QQQ QQQ""#), "record.postcode", "QQQ"),
            (edit(r#""RR8""#, r#""rr8zq""#), "record.source_organisation", "rr8zq"),
            (edit_consent(r#""STUDY""#, r#""TYPE_1_OPT_OUT""#), "record.study_id", "312456"),
            (edit_consent(r#"["research"]"#, r#"["research", 7777]"#), "record.purposes[1]", "7777"),
            (edit_consent(r#"["research"]"#, r#""researchZQ""#), "record.purposes", "researchZQ"),
            (adt.as_bytes()[..adt.find("Example").unwrap() + 4].to_vec(), "", "Exam"),
            (br#"{"subject": admissionsZQ}"#.to_vec(), "", "admissionsZQ"),
            (br#"{"subject": "adt", "record": {"family_name": "Zq\xffx"}}"#.to_vec(), "", "Zq"),
            (b"\xffZQ".to_vec(), "", "ZQ"),
            (b"".to_vec(), "", "zzz"),
            (br#"["adtZQ"]"#.to_vec(), "", "adtZQ"),
            (br#"{"subject": "adt"}"#.to_vec(), "record", "zzz"),
            (br#"{"subject": "adt", "record": "ZQ"}"#.to_vec(), "record", "ZQ"),
            (br#"{"record": {}}"#.to_vec(), "subject", "zzz"),
        ]
    }

    #[test]
    fn refused_lines_name_the_field_but_never_a_value() {
        for (line, field, secret) in refused_lines() {
            let shown = String::from_utf8_lossy(&line).into_owned();
            assert!(shown.contains(secret) || secret == "zzz", "the secret is in the line: {shown}");
            let error = parse(&line).expect_err(&shown);
            assert_eq!(error.field, field, "{shown}: {error}");
            assert!(!error.field.contains(secret) && !error.message.contains(secret), "{shown}: {error}");
            assert!(!error.message.is_empty());
        }
    }

    #[test]
    fn messages_say_what_is_wrong() {
        let adt = documented_lines()[0];
        let message = |from: &str, to: &str| parse(adt.replacen(from, to, 1).as_bytes()).unwrap_err().to_string();
        assert_eq!(
            message(r#""nhs_number": "9990000018""#, r#""nhs_number": "9990000017""#),
            "`record.nhs_number`: the NHS number's check digit is wrong"
        );
        assert_eq!(
            message(r#""FEMALE""#, r#""F""#),
            "`record.sex`: is not one of the symbols FEMALE, MALE, OTHER, UNKNOWN"
        );
        assert_eq!(
            message(r#""2026-03-15T14:30:00Z""#, "1773585000000000.5"),
            "`record.occurred_at`: must be a whole number, not a fraction"
        );
        assert_eq!(message(r#""version": 1"#, r#""version": 3"#), "`version`: is not a version of `adt` (1 to 1)");
        assert_eq!(
            message(r#""subject": "adt""#, r#""subject": "x""#),
            "`subject`: is not one of the subjects adt, consent, diagnosis, observation"
        );
        assert_eq!(
            message(r#""source_system": "PAS""#, r#""source_system": true"#),
            "`record.source_system`: must be a string, not a boolean"
        );
        let truncated = parse(&adt.as_bytes()[..40]).unwrap_err().to_string();
        assert_eq!(truncated, "``: is not valid JSON: it ends before the JSON value does (line 1, column 40)");
        let invalid = parse(br#"{"subject": "adt",, "record": {}}"#).unwrap_err().to_string();
        assert_eq!(invalid, "``: is not valid JSON (line 1, column 19)");
        let not_utf8 = parse(b"{\"subject\": \"a\xe9\"}").unwrap_err().to_string();
        assert_eq!(not_utf8, "``: is not valid UTF-8 (line 1, column 15)");
    }

    /// The writer-schema value of `record` under a one-off schema.
    fn convert(schema: &str, record: &str) -> Result<Value, LineError> {
        let catalogue = Catalogue::from_files([("t".into(), "v1".into(), schema.into())]).unwrap();
        let version = catalogue.version("t", 1).unwrap();
        let json = parse_json(record.as_bytes()).unwrap();
        let Json::Object(entries) = &json else { panic!("not an object") };
        Converter::new(version).record_fields(entries, record_schema(version).unwrap(), &Path::Record, None)
    }

    #[test]
    fn references_nested_records_and_wide_unions() {
        let schema = r#"{"type": "record", "name": "T", "namespace": "n", "fields": [
            {"name": "a", "type": {"type": "enum", "name": "E", "symbols": ["X", "Y"]}},
            {"name": "b", "type": ["null", "E"], "default": null},
            {"name": "c", "type": {"type": "array", "items":
                {"type": "record", "name": "Inner", "fields": [{"name": "d", "type": "long"}]}}},
            {"name": "w", "type": ["null", "string", "long"], "default": null}
        ]}"#;
        let record = |fields: Vec<(&str, Value)>| {
            Value::Record(fields.into_iter().map(|(name, value)| (name.to_owned(), value)).collect())
        };
        assert_eq!(
            convert(schema, r#"{"c": [{"d": 1}, {"d": -2}], "b": "Y", "a": "X"}"#),
            Ok(record(vec![
                ("a", Value::Enum(0, "X".into())),
                ("b", Value::Union(1, Box::new(Value::Enum(1, "Y".into())))),
                ("c", Value::Array(vec![record(vec![("d", Value::Long(1))]), record(vec![("d", Value::Long(-2))])])),
                ("w", Value::Union(0, Box::new(Value::Null))),
            ]))
        );
        let refused = |line: &str| convert(schema, line).unwrap_err();
        assert_eq!(
            refused(r#"{"a": "X", "b": "Z", "c": []}"#),
            LineError::new("record.b", "is not one of the symbols X, Y")
        );
        assert_eq!(
            refused(r#"{"a": "X", "c": [{"d": 1}, {"dd": 2}]}"#),
            LineError::new("record.c[1]", "has a key that is not a field of the `Inner` record")
        );
        assert_eq!(refused(r#"{"a": "X", "c": [{}]}"#), LineError::new("record.c[0].d", "is required"));
        assert_eq!(
            refused(r#"{"a": "X", "c": [{"d": 1.5}]}"#),
            LineError::new("record.c[0].d", "must be a whole number, not a fraction")
        );
        assert_eq!(refused(r#"{"a": "X", "c": {}}"#), LineError::new("record.c", "must be an array, not an object"));
        assert_eq!(refused(r#"{"a": "X", "c": [], "w": "s"}"#).field, "record.w", "ambiguous without a branch name");
        assert_eq!(refused(r#"{"c": []}"#), LineError::new("record.a", "is required"));
    }

    /// How a test line writes what the Avro value leaves open.
    #[derive(Debug, Clone)]
    struct Style {
        /// 0: microseconds; 1: RFC 3339 in UTC; 2: RFC 3339 at +05:30.
        timestamps: u8,
        dates_as_days: bool,
        leave_out_nulls: bool,
        name_the_version: bool,
        /// Write an observation without interpretation as version 1.
        observation_as_v1: bool,
    }

    fn style() -> impl Strategy<Value = Style> {
        (0u8..3, any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(timestamps, dates_as_days, leave_out_nulls, name_the_version, observation_as_v1)| Style {
                timestamps,
                dates_as_days,
                leave_out_nulls,
                name_the_version,
                observation_as_v1,
            },
        )
    }

    /// The record in subject JSON form: a small serialiser for tests.
    fn to_line(record: &SubjectRecord, style: &Style) -> String {
        fn json(value: &Value, style: &Style) -> serde_json::Value {
            match value {
                Value::Null => serde_json::Value::Null,
                Value::Boolean(b) => (*b).into(),
                Value::Double(x) => (*x).into(),
                Value::String(s) | Value::Enum(_, s) => s.clone().into(),
                Value::Uuid(uuid) => uuid.hyphenated().to_string().into(),
                Value::Union(_, inner) => json(inner, style),
                Value::Array(items) => items.iter().map(|item| json(item, style)).collect(),
                Value::TimestampMicros(micros) => {
                    let at = DateTime::from_timestamp_micros(*micros).unwrap();
                    match style.timestamps {
                        0 => (*micros).into(),
                        1 => at.to_rfc3339_opts(SecondsFormat::AutoSi, true).into(),
                        _ => {
                            let india = FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
                            at.with_timezone(&india).to_rfc3339_opts(SecondsFormat::AutoSi, false).into()
                        }
                    }
                }
                Value::Date(days) if style.dates_as_days => (*days).into(),
                Value::Date(days) => {
                    (NaiveDate::default() + TimeDelta::days(i64::from(*days))).format("%Y-%m-%d").to_string().into()
                }
                Value::Record(fields) => fields
                    .iter()
                    .filter(|(_, v)| {
                        !(style.leave_out_nulls && matches!(v, Value::Union(_, inner) if **inner == Value::Null))
                    })
                    .map(|(name, v)| (name.clone(), json(v, style)))
                    .collect::<serde_json::Map<_, _>>()
                    .into(),
                other => panic!("no JSON form for {other:?}"),
            }
        }
        let mut record_json = json(&record.value, style);
        let mut version = record.version;
        if record.subject == "observation" && style.observation_as_v1 && record_json["interpretation"].is_null() {
            record_json.as_object_mut().unwrap().remove("interpretation");
            version = 1;
        }
        let mut line = serde_json::Map::new();
        line.insert("subject".into(), record.subject.into());
        if style.name_the_version || version != record.version {
            line.insert("version".into(), version.into());
        }
        line.insert("record".into(), record_json);
        serde_json::Value::Object(line).to_string()
    }

    /// Plausible and implausible JSON for the fields of a record.
    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        let interesting = prop::sample::select(vec![
            "FEMALE",
            "LOINC",
            "STUDY",
            "ADMIT",
            "9990000018",
            "8867-4",
            "E11.9",
            "RR8",
            "LS6 2QT",
            "2026-03-15T14:30:00Z",
            "2026-03-15T14:30:00",
            "1970-03-14",
            "0b6c3b0e-6f1a-4a55-9a52-6a3f7f0d2c11",
            "",
        ]);
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(Into::into),
            any::<i64>().prop_map(Into::into),
            any::<u64>().prop_map(Into::into),
            any::<f64>().prop_map(|x| serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, Into::into)),
            "\\PC{0,12}".prop_map(Into::into),
            interesting.prop_map(Into::into),
        ];
        leaf.prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Into::into),
                prop::collection::vec((field_name(), inner), 0..5)
                    .prop_map(|entries| serde_json::Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    fn field_name() -> impl Strategy<Value = String> {
        let catalogue = Catalogue::embedded();
        let mut names: Vec<String> = catalogue
            .subject_names()
            .flat_map(|subject| catalogue.versions(subject).unwrap())
            .flat_map(|version| match version.schema() {
                Schema::Record(record) => record.fields.iter().map(|f| f.name.clone()).collect(),
                _ => Vec::new(),
            })
            .collect();
        names.sort();
        names.dedup();
        prop_oneof![4 => prop::sample::select(names), 1 => "[a-z_]{1,12}"]
    }

    proptest! {
        #[test]
        fn valid_events_round_trip_through_lines(event in arbitrary::valid_event(), style in style()) {
            let line = to_line(&event.clone().into_record(), &style);
            prop_assert_eq!(parse(line.as_bytes()), Ok(event), "{}", line);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) {
            let _ = parse(&bytes);
        }

        #[test]
        fn arbitrary_records_never_panic(
            subject in prop_oneof![
                prop::sample::select(vec!["adt", "observation", "diagnosis", "consent"]).prop_map(String::from),
                "[a-z]{0,8}",
            ],
            version in proptest::option::of(prop_oneof![(0i64..4).prop_map(serde_json::Value::from), any_json()]),
            fields in prop::collection::vec((field_name(), any_json()), 0..24),
            extra in proptest::option::of(any_json()),
            base in prop::sample::select(vec![0usize, 1, 2, 3, 4]),
        ) {
            // Start from a documented line of some subject and overwrite or add fields, so that
            // many records get past the first checks.
            let documented: serde_json::Value = serde_json::from_str(documented_lines()[base]).unwrap();
            let mut record = documented["record"].as_object().unwrap().clone();
            for (name, value) in fields {
                record.insert(name, value);
            }
            let mut line = serde_json::json!({"subject": subject, "record": record});
            if let Some(version) = version {
                line["version"] = version;
            }
            if let Some(extra) = extra {
                line["extra"] = extra;
            }
            let _ = parse(line.to_string().as_bytes());
        }
    }
}
