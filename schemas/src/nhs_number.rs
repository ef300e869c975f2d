//! The NHS number: England's 10-digit patient identifier, with its Modulus 11 check digit.
//!
//! An [`NhsNumber`] can only be made from a valid number, and it never prints itself: its
//! `Debug` output is redacted and it has no `Display`, so one cannot slip into a log line or an
//! error message by accident. Code that needs the digits (pseudonymisation, the Kafka key) asks
//! for them with [`NhsNumber::digits`].

use std::fmt;

/// A valid NHS number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NhsNumber(u64);

/// Why a text is not a valid NHS number. Carries no digits of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidNhsNumber {
    /// Not ten digits once spaces are removed.
    #[error("an NHS number has exactly 10 digits")]
    WrongLength,
    /// A character other than a digit or a space.
    #[error("an NHS number contains only digits (and optional spaces)")]
    NotDigits,
    /// The Modulus 11 check digit does not match the first nine digits (or the remainder
    /// gives 10, which no valid number has).
    #[error("the NHS number's check digit is wrong")]
    CheckDigit,
}

impl NhsNumber {
    /// Parses `9434765919` or `943 476 5919`, checking the Modulus 11 check digit.
    pub fn parse(text: &str) -> Result<Self, InvalidNhsNumber> {
        let mut digits = [0u8; 10];
        let mut count = 0;
        for c in text.chars().filter(|c| *c != ' ') {
            let digit = c.to_digit(10).ok_or(InvalidNhsNumber::NotDigits)?;
            if count == 10 {
                return Err(InvalidNhsNumber::WrongLength);
            }
            digits[count] = digit as u8;
            count += 1;
        }
        if count != 10 {
            return Err(InvalidNhsNumber::WrongLength);
        }
        let first_nine: [u8; 9] = digits[..9].try_into().expect("nine digits");
        if check_digit(&first_nine) != Some(digits[9]) {
            return Err(InvalidNhsNumber::CheckDigit);
        }
        Ok(NhsNumber(digits.iter().fold(0, |n, d| n * 10 + u64::from(*d))))
    }

    /// Completes nine digits with their check digit, or `None` when no check digit exists
    /// for them (Modulus 11 remainder of 1). Used by synthetic sources.
    pub fn from_first_nine(first_nine: [u8; 9]) -> Option<Self> {
        let check = check_digit(&first_nine)?;
        let value = first_nine.iter().fold(0u64, |n, d| n * 10 + u64::from(*d));
        Some(NhsNumber(value * 10 + u64::from(check)))
    }

    /// [`Self::from_first_nine`] for nine digits given as a number below 10^9 (leading digits
    /// may be zero); `None` above that or when no check digit exists.
    pub fn from_first_nine_value(first_nine: u64) -> Option<Self> {
        if first_nine >= 1_000_000_000 {
            return None;
        }
        Self::from_first_nine(std::array::from_fn(|i| (first_nine / 10u64.pow(8 - i as u32) % 10) as u8))
    }

    /// Every valid NHS number whose first nine digits are `first_nine` or more, in increasing
    /// order (the one value in eleven without a check digit is skipped). Synthetic sources,
    /// tests and benchmarks take as many distinct numbers as they need from it.
    pub fn valid_from(first_nine: u64) -> impl Iterator<Item = NhsNumber> {
        (first_nine..1_000_000_000).filter_map(Self::from_first_nine_value)
    }

    /// The ten digits, without spaces. Handle with care: this is a direct identifier.
    pub fn digits(&self) -> String {
        format!("{:010}", self.0)
    }

    /// The number as an integer, for compact storage (for example in the consent store).
    pub fn as_u64(&self) -> u64 {
        self.0
    }
}

/// The Modulus 11 check digit of the first nine digits: weights 10 down to 2, remainder of the
/// sum by 11 subtracted from 11; 11 becomes 0 and 10 means the digits cannot form a number.
fn check_digit(first_nine: &[u8; 9]) -> Option<u8> {
    let sum: u32 = first_nine.iter().zip((2..=10).rev()).map(|(digit, weight)| u32::from(*digit) * weight).sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        check => Some(check as u8),
    }
}

impl fmt::Debug for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NhsNumber(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn known_valid_and_invalid_numbers() {
        // 943 476 5919 is the example NHS number used in NHS Digital's own documentation.
        let number = NhsNumber::parse("943 476 5919").unwrap();
        assert_eq!(number.digits(), "9434765919");
        assert_eq!(NhsNumber::parse("9434765918"), Err(InvalidNhsNumber::CheckDigit));
        assert_eq!(NhsNumber::parse("943476591"), Err(InvalidNhsNumber::WrongLength));
        assert_eq!(NhsNumber::parse("94347659190"), Err(InvalidNhsNumber::WrongLength));
        assert_eq!(NhsNumber::parse("94347X5919"), Err(InvalidNhsNumber::NotDigits));
        assert_eq!(NhsNumber::parse(""), Err(InvalidNhsNumber::WrongLength));
        // Remainder 1 gives check value 10: no valid number starts with these nine digits.
        assert_eq!(NhsNumber::from_first_nine([0, 0, 0, 0, 0, 0, 0, 0, 6]), None);
    }

    #[test]
    fn debug_output_never_shows_the_digits() {
        let number = NhsNumber::parse("9434765919").unwrap();
        assert_eq!(format!("{number:?}"), "NhsNumber(<redacted>)");
        assert!(!InvalidNhsNumber::CheckDigit.to_string().contains("943"));
    }

    #[test]
    fn numbers_from_a_start_are_valid_increasing_and_skip_values_without_a_check_digit() {
        // 000 000 006 has no check digit (see above); its neighbours have.
        assert_eq!(NhsNumber::from_first_nine_value(6), None);
        assert_eq!(NhsNumber::from_first_nine_value(943_476_591), NhsNumber::parse("9434765919").ok());
        assert_eq!(NhsNumber::from_first_nine_value(1_000_000_000), None);
        let numbers: Vec<NhsNumber> = NhsNumber::valid_from(5).take(3).collect();
        assert_eq!(numbers.iter().map(|n| n.as_u64() / 10).collect::<Vec<_>>(), [5, 7, 8]);
        assert!(numbers.iter().all(|n| NhsNumber::parse(&n.digits()) == Ok(*n)));
        assert_eq!(NhsNumber::valid_from(999_999_999).count(), 1, "the last nine digits, then the end");
    }

    proptest! {
        #[test]
        fn completed_numbers_parse_and_one_changed_digit_is_caught(
            first_nine in proptest::array::uniform9(0u8..10),
            position in 0usize..10,
            delta in 1u8..10,
        ) {
            if let Some(number) = NhsNumber::from_first_nine(first_nine) {
                let digits = number.digits();
                prop_assert_eq!(NhsNumber::parse(&digits), Ok(number));
                // Modulus 11 with distinct weights detects every single-digit substitution.
                let mut changed: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
                changed[position] = (changed[position] + delta) % 10;
                let changed: String = changed.iter().map(|d| char::from(b'0' + d)).collect();
                prop_assert!(NhsNumber::parse(&changed).is_err());
            }
        }
    }
}
