//! Pseudonymisation: turning one decoded record into one output row under a [`LandingPlan`].
//!
//! Pure and synchronous. What each column receives is decided by the policy and checked when it
//! is planned; this module only applies it:
//!
//! * **pseudonyms** are keyed HMAC-SHA256 digests under the purpose's key
//!   ([`PurposeKey::pseudonym`]), **separated by domain**: the input is a fixed prefix, the name
//!   of the field the value came from (`nhs_number`, `source_organisation`, `event_id`), a NUL
//!   byte and the value. The same patient gets the same pseudonym within a purpose; the same text
//!   in two fields (an ODS code that is also a study site, say) gets unrelated pseudonyms; and
//!   pseudonyms of different purposes cannot be linked without both keys. Record identifiers
//!   (UUIDs) get a 128-bit pseudonym of their 16 bytes ([`PurposeKey::record_pseudonym`]);
//! * **time shifts** move every date and time of one patient by the same offset, to the
//!   microsecond, anywhere within the policy's `max_days` ([`PurposeKey::time_shift_micros`]),
//!   derived from the same key under a domain of its own, so intervals survive but neither the
//!   calendar date nor the time of day of any event does, and the shifts of different purposes
//!   are unrelated;
//! * **generalisations** keep a coarser version of a value: year or month of a date, a time
//!   truncated to its hour ([`dates`]), an age band instead of a date of birth, a postcode
//!   district or sector ([`postcode`]), the bucket of a number ([`numbers`]).
//!
//! A transform that cannot apply yields a null cell, never the original value. Errors name the
//! column and subject only; no value ever appears in one.
//!
//! The HMAC key is prepared once per purpose and cloned per use, so no per-event key schedule is
//! computed.
//!
//! ```
//! use sluice_consumers::pseudonymise::PurposeKey;
//!
//! let key = PurposeKey::new("research-2026-12", &[7; 32]).unwrap();
//! let patient = key.pseudonym("nhs_number", "9434765919");
//! assert_eq!(patient.len(), 64);
//! assert_eq!(patient, key.patient_pseudonym("9434765919"));
//! // Another field, another domain: the same text gives an unrelated pseudonym.
//! assert_ne!(patient, key.pseudonym("local_patient_id", "9434765919"));
//! // A record identifier: 128 bits, as 32 hex digits.
//! assert_eq!(key.record_pseudonym("event_id", &[0; 16]).len(), 32);
//! // A shift of up to 180 days either way, the same for every event of the patient.
//! let shift = key.time_shift_micros("9434765919", 180);
//! assert!(shift.abs() <= 180 * 86_400_000_000);
//! ```

use std::fmt;

use apache_avro::types::Value;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    policy::{AgeAt, ColumnKind, ColumnPlan, LandingPlan, Transform},
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

/// The domain of patient pseudonyms: the field that holds the NHS number. Erasure computes a
/// patient's pseudonym in it to find their rows.
pub const PATIENT_DOMAIN: &str = "nhs_number";

/// Start of every pseudonym's HMAC input; the domain label, a NUL byte and the value follow.
/// Labels are field names, which hold no NUL, so no two (domain, value) pairs share an input.
const PSEUDONYM_PREFIX: &[u8] = b"sluice/pseudonym/v2\0";

/// Start of the HMAC input from which a patient's time shift is derived; the patient
/// identifier follows. It keeps the shift independent of every pseudonym, so publishing one
/// says nothing about the other.
const TIME_SHIFT_PREFIX: &[u8] = b"sluice/time-shift/v2\0";

/// HMAC input of a key's fingerprint, used only to tell whether two purposes share a secret.
const FINGERPRINT_INPUT: &[u8] = b"sluice/key-fingerprint/v1\0";

/// Microseconds in a day.
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Largest `max_days` a time shift honours (about 2,700 years): keeps the arithmetic exact.
const MAX_SHIFT_DAYS_HONOURED: u32 = 1_000_000;

/// A purpose's pseudonymisation key. The secret never prints: `Debug` shows the id only.
#[derive(Clone)]
pub struct PurposeKey {
    /// Identifier of the key, recorded in every landed file (never the key itself).
    id: String,
    /// HMAC-SHA256 state keyed with the secret.
    mac: Hmac<Sha256>,
    /// HMAC of a fixed input under the secret: equal for equal secrets, so purposes that share
    /// a secret can be refused without keeping the secret itself.
    fingerprint: [u8; 32],
}

impl PurposeKey {
    /// A key from its id and secret bytes; refuses secrets shorter than [`MIN_KEY_BYTES`].
    pub fn new(id: &str, secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!("key `{id}` is {} bytes; at least {MIN_KEY_BYTES} are required", secret.len()));
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| format!("key `{id}` cannot key HMAC-SHA256"))?;
        let mut fingerprint_mac = mac.clone();
        fingerprint_mac.update(FINGERPRINT_INPUT);
        let fingerprint = fingerprint_mac.finalize().into_bytes().into();
        Ok(PurposeKey { id: id.to_owned(), mac, fingerprint })
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the two keys have the same secret (whatever their ids). Two purposes with one
    /// secret would give each patient the same pseudonym in both, linking their data.
    pub fn shares_secret_with(&self, other: &PurposeKey) -> bool {
        self.fingerprint == other.fingerprint
    }

    fn digest(&self, domain: &str, value: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(PSEUDONYM_PREFIX);
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        mac.finalize().into_bytes().into()
    }

    /// The pseudonym of a value of the field named `domain`: lowercase hex of
    /// HMAC-SHA256(key, prefix + domain + NUL + value), 64 digits.
    pub fn pseudonym(&self, domain: &str, value: &str) -> String {
        hex::encode(self.digest(domain, value.as_bytes()))
    }

    /// A patient's pseudonym: [`Self::pseudonym`] of the NHS number in [`PATIENT_DOMAIN`].
    pub fn patient_pseudonym(&self, nhs_number: &str) -> String {
        self.pseudonym(PATIENT_DOMAIN, nhs_number)
    }

    /// The pseudonym of a record identifier (a UUID's 16 bytes) of the field named `domain`:
    /// the first 128 bits of the HMAC, as 32 lowercase hex digits. 128 bits keep collisions
    /// out of reach for any number of events a lake will hold.
    pub fn record_pseudonym(&self, domain: &str, id: &[u8; 16]) -> String {
        hex::encode(&self.digest(domain, id)[..16])
    }

    /// The offset, in microseconds, by which every date and time of `patient` is shifted under
    /// this key: uniformly spread over `[-max_days, +max_days]` days, from HMAC-SHA256(key,
    /// prefix + patient), its first sixteen bytes reduced modulo the span. The same patient always
    /// gets the same offset for one key and `max_days`; another purpose's key gives an unrelated
    /// one. `max_days` above a million is treated as a million.
    pub fn time_shift_micros(&self, patient: &str, max_days: u32) -> i64 {
        let max_micros = i64::from(max_days.min(MAX_SHIFT_DAYS_HONOURED)) * MICROS_PER_DAY;
        let mut mac = self.mac.clone();
        mac.update(TIME_SHIFT_PREFIX);
        mac.update(patient.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        // 2^128 is so much larger than the span that the modulo bias is below 2^-70.
        let span = 2 * max_micros as u128 + 1;
        (u128::from_be_bytes(first) % span) as i64 - max_micros
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
            Value::String(text) | Value::Enum(_, text) => Cell::Utf8(key.pseudonym(&column.source_field, text)),
            Value::Uuid(uuid) => Cell::Utf8(key.record_pseudonym(&column.source_field, uuid.as_bytes())),
            _ => return Err(wrong_type()),
        },
        Transform::DateYear => Cell::Int32(year_of(days(value)?)),
        Transform::DateYearMonth => Cell::Utf8(dates::year_month(days(value)?)),
        Transform::AgeBand { at, width, top } => {
            let birth = days(value)?;
            let at = match at {
                AgeAt::Date(day) => Some(day),
                AgeAt::Field(index) => field(index).map(days).transpose()?,
            };
            at.and_then(|at| dates::age_band(birth, at, width, top)).map_or(Cell::Null, Cell::Utf8)
        }
        Transform::PostcodeOutward => outward_code(text(value)?).map_or(Cell::Null, Cell::Utf8),
        Transform::PostcodeSector => postcode_sector(text(value)?).map_or(Cell::Null, Cell::Utf8),
        Transform::ShiftDate { patient, max_days } => match field(patient) {
            // Fail closed: without a patient there is no consistent shift, and the true date
            // must not land instead.
            Some(Value::String(id)) if !id.trim().is_empty() => {
                let shift = key.time_shift_micros(id, max_days);
                dates::shift(value, shift).ok_or_else(wrong_type)?.unwrap_or(Cell::Null)
            }
            _ => Cell::Null,
        },
        Transform::TruncateTime { unit_micros } => {
            dates::truncate(value, unit_micros).ok_or_else(wrong_type)?.unwrap_or(Cell::Null)
        }
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
