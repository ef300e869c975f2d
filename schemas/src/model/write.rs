//! Writing the model as Avro: a subject type lists its fields as [`Datum`]s by schema name, and
//! [`record`] shapes them by the schema being written, field by field in the schema's order.
//! Enum indices come from the schema's symbol lists and union indices from its branches, so no
//! index is written by hand.

use apache_avro::{
    Schema,
    schema::{RecordField, RecordSchema},
    types::Value,
};
use uuid::Uuid;

use super::ResultDecimal;
use crate::SchemaVersion;

/// A field's value as the model holds it, before the schema gives it its Avro shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Datum {
    /// No value: the `null` branch of a nullable field.
    Null,
    /// A `boolean`.
    Bool(bool),
    /// A `double`.
    Double(f64),
    /// A `string`.
    String(String),
    /// A `string` of logical type `uuid`.
    Uuid(Uuid),
    /// A `long` of logical type `timestamp-micros`.
    TimestampMicros(i64),
    /// An `int` of logical type `date`: days since 1970-01-01.
    Date(i32),
    /// A `bytes` of logical type `decimal(18,6)`.
    Decimal(ResultDecimal),
    /// An enum symbol, by name.
    Symbol(&'static str),
    /// An `array`.
    Array(Vec<Datum>),
    /// A nested record, its fields by name.
    Record(Vec<(&'static str, Datum)>),
}

impl Datum {
    /// `Null` for `None`.
    pub(crate) fn optional<T>(value: Option<T>, datum: impl FnOnce(T) -> Datum) -> Datum {
        value.map_or(Datum::Null, datum)
    }

    /// A nullable string.
    pub(crate) fn text(value: Option<&str>) -> Datum {
        Datum::optional(value, |text| Datum::String(text.to_owned()))
    }
}

/// Why the model could not be written under a schema version: always a mismatch between the
/// model and the schema files (the schema check finds these before they ship), or a version of
/// another subject. Names fields, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The schema has a field the model has no value for.
    #[error("{schema}: the model has no value for field {field}")]
    NoValue {
        /// `subject vN`.
        schema: String,
        /// The field's path, e.g. `reference_range.low`.
        field: String,
    },
    /// The model's value does not fit the field's Avro type (or an enum symbol is not listed).
    #[error("{schema}: the model's value of field {field} does not fit its Avro type")]
    Mismatch {
        /// `subject vN`.
        schema: String,
        /// The field's path.
        field: String,
    },
    /// The schema version is not a record.
    #[error("{schema} is not a record schema")]
    NotRecord {
        /// `subject vN`.
        schema: String,
    },
    /// The event was to be written with another subject's schema.
    #[error("a {event} event cannot be written as {schema}")]
    OtherSubject {
        /// The event's subject.
        event: &'static str,
        /// `subject vN`.
        schema: String,
    },
}

/// The record of `version` made of `fields`: the version's fields in its order, each shaped by
/// its schema. Fields the version does not have are left out.
pub(crate) fn record(fields: Vec<(&'static str, Datum)>, version: &SchemaVersion) -> Result<Value, WriteError> {
    let Schema::Record(schema) = version.schema() else {
        return Err(WriteError::NotRecord { schema: version.label() });
    };
    Writer { label: version.label() }.record(fields, schema, "")
}

/// Shapes values by one schema version, naming it in errors.
struct Writer {
    /// `subject vN`.
    label: String,
}

impl Writer {
    fn record(
        &self,
        mut fields: Vec<(&'static str, Datum)>,
        schema: &RecordSchema,
        prefix: &str,
    ) -> Result<Value, WriteError> {
        let mut values = Vec::with_capacity(schema.fields.len());
        for RecordField { name, schema, .. } in &schema.fields {
            let path = format!("{prefix}{name}");
            let Some(index) = fields.iter().position(|(field, _)| field == name) else {
                return Err(WriteError::NoValue { schema: self.label.clone(), field: path });
            };
            let (_, datum) = fields.swap_remove(index);
            values.push((name.clone(), self.value(datum, schema, &path)?));
        }
        Ok(Value::Record(values))
    }

    fn value(&self, datum: Datum, schema: &Schema, path: &str) -> Result<Value, WriteError> {
        let mismatch = || WriteError::Mismatch { schema: self.label.clone(), field: path.to_owned() };
        Ok(match (schema, datum) {
            (Schema::Union(union), Datum::Null) => {
                let index = union.variants().iter().position(|v| matches!(v, Schema::Null)).ok_or_else(mismatch)?;
                Value::Union(index as u32, Box::new(Value::Null))
            }
            (Schema::Union(union), datum) => {
                let mut branches = union.variants().iter().enumerate().filter(|(_, v)| !matches!(v, Schema::Null));
                let (index, branch) = branches.next().ok_or_else(mismatch)?;
                if branches.next().is_some() {
                    return Err(mismatch());
                }
                Value::Union(index as u32, Box::new(self.value(datum, branch, path)?))
            }
            (Schema::Null, Datum::Null) => Value::Null,
            (Schema::Boolean, Datum::Bool(b)) => Value::Boolean(b),
            (Schema::Double, Datum::Double(x)) => Value::Double(x),
            (Schema::String, Datum::String(s)) => Value::String(s),
            (Schema::Uuid(_), Datum::Uuid(u)) => Value::Uuid(u),
            (Schema::TimestampMicros, Datum::TimestampMicros(t)) => Value::TimestampMicros(t),
            (Schema::Date, Datum::Date(d)) => Value::Date(d),
            (Schema::Decimal(decimal), Datum::Decimal(d))
                if (decimal.precision, decimal.scale)
                    == (ResultDecimal::PRECISION as usize, ResultDecimal::SCALE as usize) =>
            {
                d.to_avro()
            }
            (Schema::Enum(schema), Datum::Symbol(symbol)) => {
                let index = schema.symbols.iter().position(|s| s == symbol).ok_or_else(mismatch)?;
                Value::Enum(index as u32, symbol.to_owned())
            }
            (Schema::Array(array), Datum::Array(items)) => Value::Array(
                items.into_iter().map(|item| self.value(item, &array.items, path)).collect::<Result<_, _>>()?,
            ),
            (Schema::Record(record), Datum::Record(fields)) => self.record(fields, record, &format!("{path}."))?,
            _ => return Err(mismatch()),
        })
    }
}
