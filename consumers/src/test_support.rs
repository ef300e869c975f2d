//! Helpers shared by this crate's unit tests: small policies and records built from schemas.

use apache_avro::{Schema, types::Value};
use sluice_schemas::{Catalogue, SchemaVersion};

use crate::policy::Policy;

/// Policy text covering every field of `version`'s record with `drop`, except the fields in
/// `overrides`, whose action is given as a TOML value (`"keep"`, `{ action = "hmac", ... }`).
pub(crate) fn policy_text(version: &SchemaVersion, overrides: &[(&str, &str)]) -> String {
    let Schema::Record(record) = version.schema() else { panic!("{} is not a record", version.label()) };
    let mut text = String::from(
        "name = \"test\"\nversion = 1\npurpose = \"research\"\ndescription = \"unit test\"\n\
         patient_identifier = \"nhs_number\"\n",
    );
    text.push_str(&format!("[subjects.{}]\n", version.subject()));
    for field in &record.fields {
        let action = overrides.iter().find(|(name, _)| *name == field.name).map_or("\"drop\"", |(_, a)| a);
        text.push_str(&format!("{} = {action}\n", field.name));
    }
    for (name, action) in overrides {
        if !record.fields.iter().any(|f| f.name == *name) {
            text.push_str(&format!("{name} = {action}\n"));
        }
    }
    text
}

/// A catalogue of one subject with one version (`v1`): a record named after the subject with
/// the given fields (their JSON, as in an `.avsc` file's `fields` array, without the brackets).
pub(crate) fn single_version_catalogue(subject: &str, fields: &str) -> Catalogue {
    let schema = format!(r#"{{"type": "record", "name": "{subject}", "fields": [{fields}]}}"#);
    Catalogue::from_files([(subject.to_owned(), "v1".to_owned(), schema)]).unwrap()
}

/// The policy of [`policy_text`].
pub(crate) fn policy(version: &SchemaVersion, overrides: &[(&str, &str)]) -> Policy {
    Policy::from_toml(&policy_text(version, overrides), "test.toml").unwrap()
}

/// A record of `version` with the given values (unwrapped: nullable fields are wrapped in their
/// union here). Fields not given are null when nullable, else a placeholder of their type.
pub(crate) fn record(version: &SchemaVersion, values: &[(&str, Value)]) -> Value {
    let Schema::Record(record) = version.schema() else { panic!("{} is not a record", version.label()) };
    let fields = record
        .fields
        .iter()
        .map(|field| {
            let given = values.iter().find(|(name, _)| *name == field.name).map(|(_, v)| v.clone());
            let value = match &field.schema {
                Schema::Union(union) if matches!(union.variants()[0], Schema::Null) => match given {
                    Some(value) => Value::Union(1, Box::new(value)),
                    None => Value::Union(0, Box::new(Value::Null)),
                },
                schema => given.unwrap_or_else(|| placeholder(schema)),
            };
            (field.name.clone(), value)
        })
        .collect();
    Value::Record(fields)
}

fn placeholder(schema: &Schema) -> Value {
    match schema {
        Schema::String => Value::String("x".into()),
        Schema::Uuid(_) => Value::Uuid(apache_avro::Uuid::nil()),
        Schema::Enum(e) => Value::Enum(0, e.symbols[0].clone()),
        Schema::Boolean => Value::Boolean(false),
        Schema::Int => Value::Int(0),
        Schema::Long => Value::Long(0),
        Schema::Double => Value::Double(0.0),
        Schema::Date => Value::Date(0),
        Schema::TimestampMicros => Value::TimestampMicros(0),
        other => panic!("no placeholder for {other:?}"),
    }
}

/// Days since 1970-01-01 of a calendar date.
pub(crate) fn day(year: i32, month: u32, day: u32) -> i32 {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    (chrono::NaiveDate::from_ymd_opt(year, month, day).unwrap() - epoch).num_days() as i32
}

/// Microseconds since the epoch of a UTC date and time.
pub(crate) fn micros(year: i32, month: u32, d: u32, hour: i64, minute: i64) -> i64 {
    (i64::from(day(year, month, d)) * 86_400 + hour * 3_600 + minute * 60) * 1_000_000
}
