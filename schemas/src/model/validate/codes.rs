//! Structural checks of codes and postcodes: whether a value is shaped like one of its kind,
//! with its check digit where it has one (not whether it exists in its terminology).

/// A UK postcode in the standard format (outward code, space optional, inward code), including
/// the pseudo-postcodes such as `ZZ99 3VZ` (no fixed abode).
pub fn is_uk_postcode(postcode: &str) -> bool {
    let compact: Vec<u8> = postcode.bytes().filter(|b| *b != b' ').map(|b| b.to_ascii_uppercase()).collect();
    if !(5..=7).contains(&compact.len()) {
        return false;
    }
    let (outward, inward) = compact.split_at(compact.len() - 3);
    let inward_ok = inward[0].is_ascii_digit() && inward[1..].iter().all(u8::is_ascii_alphabetic);
    let letters = outward.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    let rest = &outward[letters..];
    let outward_ok = (1..=2).contains(&letters)
        && !rest.is_empty()
        && rest[0].is_ascii_digit()
        && rest.len() <= 2
        && rest.iter().all(u8::is_ascii_alphanumeric);
    inward_ok && outward_ok
}

/// An ICD-10 code as NHS hospitals record it: a letter, two digits, then optionally a dot and up
/// to four more characters (`J18.9`, `I10X`, `E11.9`, `S72.00`).
pub fn is_icd10_code(code: &str) -> bool {
    let bytes = code.as_bytes();
    if bytes.len() < 3 || !bytes[0].is_ascii_uppercase() || !bytes[1..3].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let rest = bytes[3..].strip_prefix(b".").unwrap_or(&bytes[3..]);
    rest.len() <= 4 && rest.iter().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

/// A LOINC code: digits, a hyphen and the Mod 10 (Luhn) check digit of those digits (`2345-7`).
pub fn is_loinc_code(code: &str) -> bool {
    let Some((number, check)) = code.split_once('-') else { return false };
    if number.is_empty() || number.len() > 7 || check.len() != 1 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = number
        .bytes()
        .rev()
        .enumerate()
        .map(|(position, b)| {
            let digit = u32::from(b - b'0');
            if position % 2 == 0 {
                let doubled = digit * 2;
                doubled / 10 + doubled % 10
            } else {
                digit
            }
        })
        .sum();
    check.parse::<u32>().ok() == Some((10 - sum % 10) % 10)
}

/// A SNOMED CT identifier: 6 to 18 digits, no leading zero, valid Verhoeff check digit.
pub fn is_snomed_ct_id(code: &str) -> bool {
    (6..=18).contains(&code.len())
        && !code.starts_with('0')
        && code.bytes().all(|b| b.is_ascii_digit())
        && verhoeff_checksum(code) == 0
}

/// The Verhoeff checksum of a digit string: zero when its last digit is a valid check digit.
fn verhoeff_checksum(digits: &str) -> u8 {
    const MULTIPLY: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const PERMUTE: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    digits
        .bytes()
        .rev()
        .enumerate()
        .fold(0, |check, (i, b)| MULTIPLY[check as usize][PERMUTE[i % 8][(b - b'0') as usize] as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snomed_ct_ids_carry_a_verhoeff_check_digit() {
        // Essential hypertension, systolic blood pressure, body weight, type 2 diabetes.
        for valid in ["38341003", "271649006", "27113001", "44054006"] {
            assert!(is_snomed_ct_id(valid), "{valid}");
        }
        for invalid in ["38341004", "271649007", "12345", "038341003", "3834100A", ""] {
            assert!(!is_snomed_ct_id(invalid), "{invalid}");
        }
    }

    #[test]
    fn loinc_codes_carry_a_mod_10_check_digit() {
        // Glucose, haemoglobin, creatinine, potassium.
        for valid in ["2345-7", "718-7", "2160-0", "2823-3"] {
            assert!(is_loinc_code(valid), "{valid}");
        }
        for invalid in ["2345-8", "718-1", "2345", "-7", "23a5-7", "2345-77"] {
            assert!(!is_loinc_code(invalid), "{invalid}");
        }
    }

    #[test]
    fn icd10_codes_have_the_nhs_shapes() {
        for valid in ["J18.9", "I10X", "E11.9", "S72.00", "I21"] {
            assert!(is_icd10_code(valid), "{valid}");
        }
        for invalid in ["j18.9", "18.9", "J1", "J18.99999", "J18-9"] {
            assert!(!is_icd10_code(invalid), "{invalid}");
        }
    }

    #[test]
    fn uk_postcodes_in_every_format_are_accepted() {
        for valid in
            ["LS1 4AP", "M1 1AE", "B33 8TH", "CR2 6XH", "DN55 1PT", "W1A 0AX", "EC1A 1BB", "ZZ99 3VZ", "ls14ap"]
        {
            assert!(is_uk_postcode(valid), "{valid}");
        }
        for invalid in ["LS1", "1LS 4AP", "LS1 AAP", "LSX1 4AP", "LS1 4A1", "LS123 4AP"] {
            assert!(!is_uk_postcode(invalid), "{invalid}");
        }
    }
}
