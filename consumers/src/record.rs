//! Read-only access to decoded Avro records by field name, looking through nullable unions.

use apache_avro::types::Value;

/// A borrowed view of a decoded record.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'v> {
    fields: &'v [(String, Value)],
}

impl<'v> RecordView<'v> {
    /// A view of `value` if it is a record.
    pub fn new(value: &'v Value) -> Option<Self> {
        match value {
            Value::Record(fields) => Some(RecordView { fields }),
            _ => None,
        }
    }

    /// A field's value with any union unwrapped; `None` if absent or null.
    pub fn get(&self, name: &str) -> Option<&'v Value> {
        let value = &self.fields.iter().find(|(field, _)| field == name)?.1;
        non_null(value)
    }

    /// A string (or UUID) field.
    pub fn string(&self, name: &str) -> Option<&'v str> {
        match self.get(name)? {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// An enum field's symbol.
    pub fn enum_symbol(&self, name: &str) -> Option<&'v str> {
        match self.get(name)? {
            Value::Enum(_, symbol) => Some(symbol),
            _ => None,
        }
    }

    /// A timestamp field in microseconds since the Unix epoch.
    pub fn timestamp_micros(&self, name: &str) -> Option<i64> {
        match self.get(name)? {
            Value::TimestampMicros(micros) | Value::Long(micros) => Some(*micros),
            Value::TimestampMillis(millis) => Some(millis * 1000),
            _ => None,
        }
    }

    /// An array-of-strings field.
    pub fn string_array(&self, name: &str) -> Option<Vec<String>> {
        match self.get(name)? {
            Value::Array(items) => items
                .iter()
                .map(|item| match non_null(item)? {
                    Value::String(text) => Some(text.clone()),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }
}

/// The value inside a union, or `None` for null.
pub fn non_null(value: &Value) -> Option<&Value> {
    match value {
        Value::Union(_, inner) => non_null(inner),
        Value::Null => None,
        other => Some(other),
    }
}
