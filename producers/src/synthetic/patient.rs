//! Synthetic patients, derived on demand from the seed and the patient's index so that a source
//! for millions of patients holds none of them in memory.

use rand::{Rng, SeedableRng, rngs::StdRng};
use sluice_schemas::{NhsNumber, model::AdministrativeSex};

use super::vocabulary::*;

/// Everything a source knows about one synthetic patient, and the truth a test needs about
/// their opt-outs.
#[derive(Debug, Clone)]
pub struct SyntheticPatient {
    /// Position of the patient in the source (0-based).
    pub index: u32,
    /// NHS number from the 999 test range.
    pub nhs_number: NhsNumber,
    /// Hospital number used by trusts.
    pub local_patient_id: String,
    /// Family name.
    pub family_name: &'static str,
    /// Given name.
    pub given_name: &'static str,
    /// Date of birth, as days since 1970-01-01.
    pub date_of_birth: i32,
    /// Administrative sex.
    pub sex: AdministrativeSex,
    /// Full postcode, e.g. `LS6 2QT`.
    pub postcode: String,
    /// First line of the address.
    pub address_line: String,
    /// ODS code of the GP practice the patient is registered with.
    pub gp_practice: &'static str,
    /// ODS code of the trust that usually treats the patient.
    pub trust: &'static str,
    /// The patient holds a National Data Opt-out (after any withdrawal).
    pub national_opt_out: bool,
    /// The patient opted out and later withdrew the opt-out (both changes are emitted).
    pub national_opt_out_withdrawn: bool,
    /// The patient holds a Type 1 opt-out at their GP practice.
    pub type1_opt_out: bool,
}

/// The years synthetic patients are born in: a period of events starts after the last of
/// them, so that no patient is born after an event about them.
pub(super) const BIRTH_YEARS: std::ops::Range<i32> = 1930..2024;

/// Shares of patients with each kind of opt-out, from the source's configuration.
#[derive(Debug, Clone, Copy)]
pub(super) struct OptOutShares {
    pub national: f64,
    pub type1: f64,
    pub withdrawn: f64,
}

pub(super) fn derive_patient(seed: u64, index: u32, shares: OptOutShares) -> SyntheticPatient {
    let mut rng = StdRng::seed_from_u64(seed ^ (u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    let nhs_number = test_range_nhs_number(index, &mut rng);
    let born = rng.random_range(BIRTH_YEARS);
    let date_of_birth = days_from_civil(born, rng.random_range(1..=12), rng.random_range(1..=28));
    let sex = match rng.random_range(0..100) {
        0..49 => AdministrativeSex::Female,
        49..98 => AdministrativeSex::Male,
        98 => AdministrativeSex::Other,
        _ => AdministrativeSex::Unknown,
    };
    let outward = OUTWARD_CODES[rng.random_range(0..OUTWARD_CODES.len())];
    let postcode = format!(
        "{outward} {}{}{}",
        rng.random_range(1..10),
        char::from(INWARD_LETTERS[rng.random_range(0..INWARD_LETTERS.len())]),
        char::from(INWARD_LETTERS[rng.random_range(0..INWARD_LETTERS.len())]),
    );
    let opted_out = rng.random_bool(shares.national);
    let withdrawn = opted_out && rng.random_bool(shares.withdrawn);
    SyntheticPatient {
        index,
        nhs_number,
        local_patient_id: format!("H{:07}", rng.random_range(0..10_000_000)),
        family_name: FAMILY_NAMES[rng.random_range(0..FAMILY_NAMES.len())],
        given_name: GIVEN_NAMES[rng.random_range(0..GIVEN_NAMES.len())],
        date_of_birth,
        sex,
        postcode,
        address_line: format!("{} {}", rng.random_range(1..200), STREETS[rng.random_range(0..STREETS.len())]),
        gp_practice: GP_PRACTICES[rng.random_range(0..GP_PRACTICES.len())],
        trust: TRUSTS[rng.random_range(0..TRUSTS.len())],
        national_opt_out: opted_out && !withdrawn,
        national_opt_out_withdrawn: withdrawn,
        type1_opt_out: rng.random_bool(shares.type1),
    }
}

/// A distinct valid NHS number per index in the reserved test range 999 000 000x - 999 999 999x:
/// the index picks the middle six digits, and the first free value with a check digit is used.
fn test_range_nhs_number(index: u32, rng: &mut StdRng) -> NhsNumber {
    // Each index owns a block of 10 consecutive first-nine-digit values; at most one value in 11
    // lacks a check digit, so a block always holds a valid number.
    let block = u64::from(index % 60_000_000) * 10;
    let start = rng.random_range(0..10);
    (0..10)
        .map(|offset| 999_000_000 + (block + (start + offset) % 10) % 1_000_000)
        .find_map(NhsNumber::from_first_nine_value)
        .expect("one of ten consecutive values has a check digit")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's civil-from-days inverse).
pub(super) fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = month as i32;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day as i32 - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_convert_to_unix_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2026, 11, 25), 20_782);
    }
}
