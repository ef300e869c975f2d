//! Pseudonymisation: turning one decoded record into one output row under a [`LandingPlan`].
//!
//! Pure and synchronous. What each column receives is decided by the policy and checked when it
//! is planned; this module only applies it:
//!
//! * **pseudonyms** are the keyed HMAC-SHA256 of a value under the purpose's key
//!   ([`PurposeKey::pseudonym`]): the same patient gets the same pseudonym within a purpose, and
//!   pseudonyms of different purposes cannot be linked without the keys;
//! * **date shifts** move every date of one patient by the same number of days
//!   ([`PurposeKey::date_shift_days`]), derived from the same key, so intervals survive but
//!   calendar dates do not, and the shifts of different purposes are unrelated;
//! * **generalisations** keep a coarser version of a value: year or month of a date
//!   ([`dates`]), an age band instead of a date of birth, a postcode district or sector
//!   ([`postcode`]), the bucket of a number ([`numbers`]).
//!
//! A transform that cannot apply yields a null cell, never the original value. Errors name the
//! column and subject only; no value ever appears in one.
//!
//! The HMAC key is prepared once per purpose and cloned per use, so no per-event key schedule is
//! computed.

use std::fmt;

use apache_avro::types::Value;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    policy::{ColumnKind, ColumnPlan, LandingPlan, Transform},
    record::non_null,
};

pub mod dates;
pub mod decimal;
pub mod numbers;
pub mod postcode;
#[cfg(test)]
mod tests;

pub use dates::year_of;
pub use postcode::{outward_code, postcode_sector};

/// Smallest accepted key: HMAC-SHA256 keys shorter than the hash output weaken it.
pub const MIN_KEY_BYTES: usize = 32;

/// Prefix of the HMAC input from which a patient's date shift is derived. It keeps the shift
/// independent of the patient's pseudonym (HMAC of the bare identifier), so publishing one says
/// nothing about the other. The NUL byte cannot occur in an identifier's text.
const DATE_SHIFT_DOMAIN: &[u8] = b"sluice/date-shift/v1\0";

/// A purpose's pseudonymisation key. The secret never prints: `Debug` shows the id only.
#[derive(Clone)]
pub struct PurposeKey {
    /// Identifier of the key, recorded in every landed file (never the key itself).
    id: String,
    /// HMAC-SHA256 state keyed with the secret.
    mac: Hmac<Sha256>,
}

impl PurposeKey {
    /// A key from its id and secret bytes; refuses secrets shorter than [`MIN_KEY_BYTES`].
    pub fn new(id: &str, secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!("key `{id}` is {} bytes; at least {MIN_KEY_BYTES} are required", secret.len()));
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| format!("key `{id}` cannot key HMAC-SHA256"))?;
        Ok(PurposeKey { id: id.to_owned(), mac })
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The pseudonym of a value: lowercase hex of HMAC-SHA256(key, value).
    pub fn pseudonym(&self, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The number of days every date of `patient` is shifted by under this key, uniformly
    /// spread over `[-max_days, +max_days]`: HMAC-SHA256(key, domain prefix + patient), its
    /// first eight bytes reduced modulo `2 * max_days + 1`. The same patient always gets the same
    /// shift for one key and `max_days`; another purpose's key gives an unrelated one.
    /// `max_days` above `i32::MAX` is treated as `i32::MAX`.
    pub fn date_shift_days(&self, patient: &str, max_days: u32) -> i32 {
        let max_days = i64::from(max_days.min(i32::MAX as u32));
        let mut mac = self.mac.clone();
        mac.update(DATE_SHIFT_DOMAIN);
        mac.update(patient.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // 2^64 is so much larger than the span that the modulo bias is below 2^-50.
        let span = 2 * max_days as u64 + 1;
        let shift = (u64::from_be_bytes(first) % span) as i64 - max_days;
        i32::try_from(shift).expect("|shift| <= max_days <= i32::MAX")
    }
}

impl fmt::Debug for PurposeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PurposeKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// One output value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// No value.
    Null,
    /// Text.
    Utf8(String),
    /// 32-bit integer.
    Int32(i32),
    /// 64-bit integer.
    Int64(i64),
    /// 64-bit float.
    Float64(f64),
    /// Boolean.
    Boolean(bool),
    /// Days since 1970-01-01.
    Date32(i32),
    /// Microseconds since the Unix epoch, UTC.
    TimestampMicros(i64),
    /// The 16 bytes of a UUID, in its canonical (big-endian) order.
    Uuid([u8; 16]),
    /// The unscaled value of a decimal: the number times 10^scale of its column.
    Decimal128(i128),
    /// The fields of a nested record, in the order of the column's [`NestedField`]s.
    ///
    /// [`NestedField`]: crate::policy::NestedField
    Struct(Vec<Cell>),
    /// The items of a list.
    List(Vec<Cell>),
}

/// Computes the output row of one record (already resolved to the plan's reader version).
/// Fails, naming the column only, if a value does not have the planned type or a required
/// column has no value.
pub fn pseudonymise(plan: &LandingPlan, key: &PurposeKey, record: &Value) -> Result<Vec<Cell>, String> {
    let Value::Record(fields) = record else {
        return Err(format!("a `{}` event is not a record", plan.subject));
    };
    let field = |index: usize| fields.get(index).and_then(|(_, value)| non_null(value));
    plan.columns
        .iter()
        .map(|column| {
            let cell = match field(column.field_index) {
                None => Cell::Null,
                Some(value) => apply(plan, column, key, value, field)?,
            };
            if cell == Cell::Null && !column.nullable {
                return Err(format!("column `{}` of `{}` is required", column.name, plan.subject));
            }
            Ok(cell)
        })
        .collect()
}

/// One column's cell from its (non-null) source value; `field` gives the record's other values.
fn apply<'v>(
    plan: &LandingPlan,
    column: &ColumnPlan,
    key: &PurposeKey,
    value: &'v Value,
    field: impl Fn(usize) -> Option<&'v Value>,
) -> Result<Cell, String> {
    let wrong_type = || format!("column `{}` of `{}`: unexpected value type", column.name, plan.subject);
    let days = |value: &Value| dates::days_of(value).ok_or_else(wrong_type);
    let text = |value: &'v Value| match value {
        Value::String(text) => Ok(text.as_str()),
        _ => Err(wrong_type()),
    };
    Ok(match column.transform {
        Transform::Copy => copy(&column.kind, value)
            .map_err(|reason| format!("column `{}` of `{}`: {reason}", column.name, plan.subject))?,
        Transform::Hmac => match value {
            Value::String(text) | Value::Enum(_, text) => Cell::Utf8(key.pseudonym(text)),
            Value::Uuid(uuid) => Cell::Utf8(key.pseudonym(&uuid.to_string())),
            _ => return Err(wrong_type()),
        },
        Transform::DateYear => Cell::Int32(year_of(days(value)?)),
        Transform::DateYearMonth => Cell::Utf8(dates::year_month(days(value)?)),
        Transform::AgeBand { at, width, top } => {
            let birth = days(value)?;
            match field(at) {
                Some(at) => dates::age_band(birth, days(at)?, width, top).map_or(Cell::Null, Cell::Utf8),
                None => Cell::Null,
            }
        }
        Transform::PostcodeOutward => outward_code(text(value)?).map_or(Cell::Null, Cell::Utf8),
        Transform::PostcodeSector => postcode_sector(text(value)?).map_or(Cell::Null, Cell::Utf8),
        Transform::ShiftDate { patient, max_days } => match field(patient) {
            // Fail closed: without a patient there is no consistent shift, and the true date
            // must not land instead.
            Some(Value::String(id)) if !id.trim().is_empty() => {
                let shift = key.date_shift_days(id, max_days);
                dates::shift(value, shift).ok_or_else(wrong_type)?.unwrap_or(Cell::Null)
            }
            _ => Cell::Null,
        },
        Transform::BucketInt { width } => match value {
            Value::Int(n) => numbers::bucket_int(i64::from(*n), width)
                .and_then(|b| i32::try_from(b).ok())
                .map_or(Cell::Null, Cell::Int32),
            Value::Long(n) => numbers::bucket_int(*n, width).map_or(Cell::Null, Cell::Int64),
            _ => return Err(wrong_type()),
        },
        Transform::BucketFloat { width } => match value {
            Value::Double(x) => numbers::bucket_float(*x, width).map_or(Cell::Null, Cell::Float64),
            Value::Float(x) => numbers::bucket_float(f64::from(*x), width).map_or(Cell::Null, Cell::Float64),
            _ => return Err(wrong_type()),
        },
    })
}

/// The value as it is, in the column's kind. Fails, with the reason and never the value, if it
/// does not have that kind, if a decimal does not fit its declared precision, or if a required
/// nested field is null: nothing is truncated or made up.
fn copy(kind: &ColumnKind, value: &Value) -> Result<Cell, String> {
    let wrong_type = || Err("unexpected value type".to_owned());
    Ok(match (kind, value) {
        (ColumnKind::Utf8, Value::String(text)) => Cell::Utf8(text.clone()),
        (ColumnKind::Utf8, Value::Enum(_, symbol)) => Cell::Utf8(symbol.clone()),
        (ColumnKind::Utf8, Value::Uuid(uuid)) => Cell::Utf8(uuid.to_string()),
        (ColumnKind::Uuid, Value::Uuid(uuid)) => Cell::Uuid(*uuid.as_bytes()),
        (ColumnKind::Uuid, Value::String(text)) => match uuid::Uuid::try_parse(text) {
            Ok(uuid) => Cell::Uuid(*uuid.as_bytes()),
            Err(_) => return Err("the value is not a UUID".to_owned()),
        },
        (ColumnKind::Int32, Value::Int(n)) => Cell::Int32(*n),
        (ColumnKind::Int64, Value::Long(n)) => Cell::Int64(*n),
        (ColumnKind::Float64, Value::Double(x)) => Cell::Float64(*x),
        (ColumnKind::Float64, Value::Float(x)) => Cell::Float64(f64::from(*x)),
        (ColumnKind::Boolean, Value::Boolean(b)) => Cell::Boolean(*b),
        (ColumnKind::Date32, Value::Date(days)) => Cell::Date32(*days),
        (ColumnKind::TimestampMicros, Value::TimestampMicros(micros)) => Cell::TimestampMicros(*micros),
        (ColumnKind::TimestampMicros, Value::TimestampMillis(millis)) => match millis.checked_mul(1000) {
            Some(micros) => Cell::TimestampMicros(micros),
            None => return Err("the timestamp is out of range".to_owned()),
        },
        (ColumnKind::Decimal128 { precision, scale }, value) => {
            let Some(unscaled) = decimal::unscaled(value) else { return wrong_type() };
            if !decimal::fits(unscaled, *precision) {
                return Err(format!("a decimal has more digits than DECIMAL({precision},{scale}) holds"));
            }
            Cell::Decimal128(unscaled)
        }
        (ColumnKind::Struct(nested), Value::Record(fields)) => Cell::Struct(
            nested
                .iter()
                .map(|want| {
                    let value = fields.iter().find(|(name, _)| *name == want.name).and_then(|(_, v)| non_null(v));
                    match value {
                        Some(value) => copy(&want.kind, value).map_err(|reason| format!("`{}`: {reason}", want.name)),
                        None if want.nullable => Ok(Cell::Null),
                        None => Err(format!("`{}` is required", want.name)),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        (ColumnKind::List { item, item_nullable }, Value::Array(items)) => Cell::List(
            items
                .iter()
                .map(|value| match non_null(value) {
                    Some(value) => copy(item, value).map_err(|reason| format!("an item: {reason}")),
                    None if *item_nullable => Ok(Cell::Null),
                    None => Err("an item is null but items are required".to_owned()),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        _ => return wrong_type(),
    })
}
