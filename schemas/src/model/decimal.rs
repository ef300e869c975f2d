//! [`ResultDecimal`]: a laboratory result as the laboratory wrote it, exactly.
//!
//! The `observation` schema (from version 3) carries exact results as an Avro `decimal` of
//! precision [`ResultDecimal::PRECISION`] and scale [`ResultDecimal::SCALE`]: `4.15` stays
//! `4.15`, where a `double` would hold the nearest binary fraction. A text with more digits
//! than that holds, before or after the point, is refused rather than rounded.

use std::fmt;

use apache_avro::{Decimal, types::Value};

/// An exact decimal of up to 18 digits, 6 of them after the point (Avro `decimal(18,6)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResultDecimal {
    /// The number times 10^6; its magnitude is below 10^18.
    unscaled: i64,
}

impl ResultDecimal {
    /// Total digits, as declared by the schema.
    pub const PRECISION: u32 = 18;
    /// Digits after the point, as declared by the schema.
    pub const SCALE: u32 = 6;
    /// Bytes of the Avro encoding: eight hold every value of 18 digits, and apache-avro refuses
    /// to resolve (read as a later schema version) a decimal stored in fewer bytes than its
    /// precision needs.
    const AVRO_BYTES: usize = 8;

    /// The decimal whose unscaled value (the number times 10^6) is `unscaled`; `None` if it has
    /// more than 18 digits.
    pub fn from_unscaled(unscaled: i64) -> Option<Self> {
        (unscaled.unsigned_abs() < 10u64.pow(Self::PRECISION)).then_some(ResultDecimal { unscaled })
    }

    /// The number times 10^6.
    pub fn unscaled(self) -> i64 {
        self.unscaled
    }

    /// Reads plain decimal text: an optional sign, digits, optionally a point and up to six
    /// more digits (`72`, `-0.5`, `4.150`). Exponents, spaces, thousands separators and more
    /// digits than the type holds are refused.
    pub fn parse(text: &str) -> Option<Self> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty())
            || !all_digits(whole)
            || !all_digits(fraction)
            || fraction.len() > Self::SCALE as usize
            || (digits.contains('.') && fraction.is_empty())
        {
            return None;
        }
        let whole = whole.trim_start_matches('0');
        if whole.len() > (Self::PRECISION - Self::SCALE) as usize {
            return None;
        }
        let padded = format!("{whole}{fraction:0<width$}", width = Self::SCALE as usize);
        let magnitude: i64 = if padded.is_empty() { 0 } else { padded.parse().ok()? };
        Self::from_unscaled(if negative { -magnitude } else { magnitude })
    }

    /// The Avro value of a `decimal(18,6)` field.
    pub fn to_avro(self) -> Value {
        Value::Decimal(Decimal::from(self.unscaled.to_be_bytes()))
    }

    /// Reads the Avro value of a `decimal(18,6)` field (`Value::Decimal` or its raw bytes).
    pub fn from_avro(value: &Value) -> Option<Self> {
        let bytes = match value {
            Value::Decimal(decimal) => Vec::<u8>::try_from(decimal).ok()?,
            Value::Bytes(bytes) => bytes.clone(),
            _ => return None,
        };
        let negative = *bytes.first()? & 0x80 != 0;
        let extension = if negative { 0xFF } else { 0x00 };
        let split = bytes.len().saturating_sub(Self::AVRO_BYTES);
        let (extra, significant) = bytes.split_at(split);
        if extra.iter().any(|b| *b != extension) {
            return None;
        }
        let mut full = [extension; Self::AVRO_BYTES];
        full[Self::AVRO_BYTES - significant.len()..].copy_from_slice(significant);
        let unscaled = i64::from_be_bytes(full);
        if (unscaled < 0) != negative {
            return None;
        }
        Self::from_unscaled(unscaled)
    }
}

impl fmt::Display for ResultDecimal {
    /// The shortest plain text of the value: `4.15`, `-0.5`, `72`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scale = 10u64.pow(Self::SCALE);
        let magnitude = self.unscaled.unsigned_abs();
        let sign = if self.unscaled < 0 { "-" } else { "" };
        let fraction = format!("{:06}", magnitude % scale);
        let fraction = fraction.trim_end_matches('0');
        if fraction.is_empty() {
            write!(f, "{sign}{}", magnitude / scale)
        } else {
            write!(f, "{sign}{}.{fraction}", magnitude / scale)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Catalogue;
    use apache_avro::Schema;
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn plain_decimal_text_is_read_exactly_and_anything_else_refused() {
        let read = |text: &str| ResultDecimal::parse(text).map(ResultDecimal::unscaled);
        assert_eq!(read("4.15"), Some(4_150_000));
        assert_eq!(read("-0.5"), Some(-500_000));
        assert_eq!(read("+72"), Some(72_000_000));
        assert_eq!(read(".25"), Some(250_000));
        assert_eq!(read("000123.000001"), Some(123_000_001));
        assert_eq!(read("999999999999.999999"), Some(999_999_999_999_999_999));
        for refused in ["", "-", ".", "1.", "1e3", "1,000", " 1", "1.2345678", "1000000000000", "--1", "0x10"] {
            assert_eq!(read(refused), None, "{refused}");
        }
    }

    #[test]
    fn the_constants_match_the_observation_schema() {
        let Schema::Record(record) = Catalogue::embedded().latest("observation").unwrap().schema() else {
            unreachable!()
        };
        let field = record.fields.iter().find(|f| f.name == "value_decimal").unwrap();
        let Schema::Union(union) = &field.schema else { panic!("value_decimal is nullable") };
        let Schema::Decimal(decimal) = &union.variants()[1] else { panic!("value_decimal is a decimal") };
        assert_eq!((decimal.precision, decimal.scale), (18, 6));
        assert_eq!((ResultDecimal::PRECISION, ResultDecimal::SCALE), (18, 6));
    }

    proptest! {
        #[test]
        fn text_and_avro_round_trip(unscaled in -999_999_999_999_999_999i64..=999_999_999_999_999_999) {
            let decimal = ResultDecimal::from_unscaled(unscaled).unwrap();
            prop_assert_eq!(ResultDecimal::parse(&decimal.to_string()), Some(decimal));
            prop_assert_eq!(ResultDecimal::from_avro(&decimal.to_avro()), Some(decimal));
        }
    }
}
