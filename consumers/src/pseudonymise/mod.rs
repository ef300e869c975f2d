//! Pseudonymisation: turning one decoded record into one output row under a [`LandingPlan`].
//!
//! Pure and synchronous. The HMAC key is prepared once per purpose ([`PurposeKey`]) and cloned
//! per pseudonym, so no per-event key schedule is computed.

use std::fmt;

use apache_avro::types::Value;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    policy::{ColumnKind, LandingPlan, Transform},
    record::non_null,
};

/// Smallest accepted key: HMAC-SHA256 keys shorter than the hash output weaken it.
pub const MIN_KEY_BYTES: usize = 32;

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
}

/// Computes the output row of one record (already resolved to the plan's reader version).
/// Fails, naming the column only, if a value does not have the planned type.
pub fn pseudonymise(plan: &LandingPlan, key: &PurposeKey, record: &Value) -> Result<Vec<Cell>, String> {
    let Value::Record(fields) = record else {
        return Err(format!("a `{}` event is not a record", plan.subject));
    };
    plan.columns
        .iter()
        .map(|column| {
            let value = fields.get(column.field_index).and_then(|(_, value)| non_null(value));
            let wrong_type = || format!("column `{}` of `{}`: unexpected value type", column.name, plan.subject);
            let Some(value) = value else {
                return if column.nullable {
                    Ok(Cell::Null)
                } else {
                    Err(format!("column `{}` is required", column.name))
                };
            };
            match column.transform {
                Transform::Copy => copy(column.kind, value).ok_or_else(wrong_type),
                Transform::Hmac => match value {
                    Value::String(text) => Ok(Cell::Utf8(key.pseudonym(text))),
                    _ => Err(wrong_type()),
                },
                Transform::DateToYear => match value {
                    Value::Date(days) => Ok(Cell::Int32(year_of(*days))),
                    _ => Err(wrong_type()),
                },
                Transform::PostcodeOutward => match value {
                    Value::String(text) => Ok(outward_code(text).map_or(Cell::Null, Cell::Utf8)),
                    _ => Err(wrong_type()),
                },
            }
        })
        .collect()
}

fn copy(kind: ColumnKind, value: &Value) -> Option<Cell> {
    Some(match (kind, value) {
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
        (ColumnKind::TimestampMicros, Value::TimestampMillis(millis)) => Cell::TimestampMicros(millis * 1000),
        _ => return None,
    })
}

/// The outward code of a UK postcode (`LS6 2QT` to `LS6`, `SW1A1AA` to `SW1A`), or `None` if the
/// text is not shaped like a postcode. The inward code is always a digit and two letters.
pub fn outward_code(postcode: &str) -> Option<String> {
    let compact: String = postcode.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
    if !(5..=7).contains(&compact.len()) || !compact.is_ascii() {
        return None;
    }
    let (outward, inward) = compact.split_at(compact.len() - 3);
    let inward = inward.as_bytes();
    let outward_ok = outward.as_bytes()[0].is_ascii_alphabetic() && outward.bytes().all(|b| b.is_ascii_alphanumeric());
    let inward_ok = inward[0].is_ascii_digit() && inward[1..].iter().all(u8::is_ascii_alphabetic);
    (outward_ok && inward_ok).then(|| outward.to_owned())
}

/// The calendar year of a day count since 1970-01-01 (proleptic Gregorian).
pub fn year_of(days_since_epoch: i32) -> i32 {
    // Howard Hinnant's civil_from_days, year part only.
    let z = days_since_epoch + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let year = year_of_era + era * 400;
    if month_index >= 10 { year + 1 } else { year }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(id: &str, byte: u8) -> PurposeKey {
        PurposeKey::new(id, &[byte; 32]).unwrap()
    }

    #[test]
    fn hmac_matches_rfc_4231_test_case_6() {
        // RFC 4231 section 4.7: a 131-byte key of 0xaa (longer than the block size).
        let key = PurposeKey::new("rfc4231-6", &[0xaa; 131]).unwrap();
        assert_eq!(
            key.pseudonym("Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn pseudonyms_are_stable_per_key_and_differ_between_keys() {
        let k = key("k1", 0x0b);
        assert_eq!(k.pseudonym("9434765919"), k.pseudonym("9434765919"));
        assert_ne!(k.pseudonym("9434765919"), key("k2", 0x0c).pseudonym("9434765919"));
        assert!(PurposeKey::new("short", b"Jefe").unwrap_err().contains("at least 32"));
        assert!(!format!("{k:?}").contains("0b"), "secret never printed");
    }

    #[test]
    fn postcodes_reduce_to_outward_codes() {
        assert_eq!(outward_code("LS6 2QT").as_deref(), Some("LS6"));
        assert_eq!(outward_code("sw1a 1aa").as_deref(), Some("SW1A"));
        assert_eq!(outward_code("M1 1AE").as_deref(), Some("M1"));
        assert_eq!(outward_code("EC1A1BB").as_deref(), Some("EC1A"));
        assert_eq!(outward_code("not a postcode"), None);
        assert_eq!(outward_code("12345"), None);
        assert_eq!(outward_code(""), None);
    }

    #[test]
    fn years_of_day_counts() {
        assert_eq!(year_of(0), 1970);
        assert_eq!(year_of(-1), 1969);
        assert_eq!(year_of(11_016), 2000); // 2000-02-29
        assert_eq!(year_of(20_818), 2026); // 2026-12-31
        assert_eq!(year_of(20_819), 2027);
    }

    proptest! {
        #[test]
        fn year_of_agrees_with_counting_days(days in -40_000i32..40_000) {
            let mut year = 1970;
            let mut start = 0i32;
            let leap = |y: i32| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            if days >= 0 {
                while days >= start + if leap(year) { 366 } else { 365 } {
                    start += if leap(year) { 366 } else { 365 };
                    year += 1;
                }
            } else {
                while days < start {
                    year -= 1;
                    start -= if leap(year) { 366 } else { 365 };
                }
            }
            prop_assert_eq!(year_of(days), year);
        }

        #[test]
        fn outward_code_never_returns_the_inward_part(outward in "[A-Z]{1,2}[0-9][0-9A-Z]?", inward in "[0-9][A-Z]{2}") {
            let code = outward_code(&format!("{outward} {inward}")).unwrap();
            prop_assert_eq!(code, outward);
        }
    }
}
