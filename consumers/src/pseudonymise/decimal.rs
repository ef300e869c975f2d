//! Exact decimals: reading the unscaled value of an Avro `decimal` and checking that it fits
//! the precision its column declares.
//!
//! Avro stores a decimal as the big-endian two's-complement bytes of its unscaled value (the
//! number times 10^scale); the scale is in the schema, and the reader's schema is the one the
//! column was planned from, so only the unscaled value is read here. A value that does not fit
//! is refused rather than rounded or truncated, so the record goes to the dead-letter topic.

use apache_avro::types::Value;

/// The unscaled value of a decoded decimal (`Value::Decimal`, or the raw `bytes` or `fixed`
/// it is stored in); `None` for any other value, or for more than 128 bits of value.
pub fn unscaled(value: &Value) -> Option<i128> {
    match value {
        Value::Decimal(decimal) => from_be_bytes(&Vec::<u8>::try_from(decimal).ok()?),
        Value::Bytes(bytes) | Value::Fixed(_, bytes) => from_be_bytes(bytes),
        _ => None,
    }
}

/// A big-endian two's-complement integer of any length as `i128`; `None` if it is empty or does
/// not fit (sign-extension bytes beyond 16 are accepted).
pub fn from_be_bytes(bytes: &[u8]) -> Option<i128> {
    let negative = *bytes.first()? & 0x80 != 0;
    let extension = if negative { 0xFF } else { 0x00 };
    // Drop leading sign-extension bytes while the remaining first byte still carries the sign.
    let mut start = 0;
    while bytes.len() - start > 16 && bytes[start] == extension && (bytes[start + 1] & 0x80 != 0) == negative {
        start += 1;
    }
    let significant = &bytes[start..];
    if significant.len() > 16 {
        return None;
    }
    let mut full = [extension; 16];
    full[16 - significant.len()..].copy_from_slice(significant);
    Some(i128::from_be_bytes(full))
}

/// Whether an unscaled value has at most `precision` digits (`precision` at most 38).
pub fn fits(unscaled: i128, precision: u8) -> bool {
    let Some(limit) = 10i128.checked_pow(u32::from(precision)) else { return false };
    unscaled.checked_abs().is_some_and(|magnitude| magnitude < limit)
}

#[cfg(test)]
mod tests {
    use apache_avro::Decimal;
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn short_long_and_sign_extended_encodings_read_the_same() {
        assert_eq!(from_be_bytes(&[0x3F, 0x52, 0xF0]), Some(4_150_000));
        assert_eq!(from_be_bytes(&[0, 0, 0, 0, 0, 0x3F, 0x52, 0xF0]), Some(4_150_000));
        assert_eq!(from_be_bytes(&[0xFF]), Some(-1));
        assert_eq!(from_be_bytes(&[0xFF; 20]), Some(-1));
        assert_eq!(from_be_bytes(&[0x80]), Some(-128));
        assert_eq!(from_be_bytes(&[]), None);
        let mut too_big = vec![0u8; 17];
        too_big[0] = 1;
        assert_eq!(from_be_bytes(&too_big), None);
        assert_eq!(unscaled(&Value::Decimal(Decimal::from([0x3F, 0x52, 0xF0]))), Some(4_150_000));
        assert_eq!(unscaled(&Value::Double(4.15)), None);
    }

    #[test]
    fn precision_is_checked_not_truncated() {
        assert!(fits(999_999_999_999_999_999, 18));
        assert!(fits(-999_999_999_999_999_999, 18));
        assert!(!fits(1_000_000_000_000_000_000, 18));
        assert!(!fits(i128::MIN, 38));
        assert!(fits(0, 1));
    }

    proptest! {
        #[test]
        fn any_i128_round_trips_through_any_sign_extended_length(n in any::<i128>(), extra in 0usize..8) {
            let bytes = n.to_be_bytes();
            let sign = if n < 0 { 0xFF } else { 0 };
            let mut longer = vec![sign; extra];
            longer.extend_from_slice(&bytes);
            prop_assert_eq!(from_be_bytes(&longer), Some(n));
            // The shortest encoding, as a writer other than sluice may produce it.
            let mut short = &bytes[..];
            while short.len() > 1 && short[0] == sign && (short[1] & 0x80 != 0) == (n < 0) {
                short = &short[1..];
            }
            prop_assert_eq!(from_be_bytes(short), Some(n));
        }
    }
}
