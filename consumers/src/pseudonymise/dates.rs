//! Dates: calendar arithmetic on Avro dates (days since 1970-01-01) and timestamps
//! (microseconds since the Unix epoch, UTC), and the date generalisations of a policy.
//!
//! Timestamps are reduced to their **UTC** calendar date before any generalisation, so the same
//! instant gives the same year, month and age wherever the lander runs.
//!
//! Ages are *completed years*, as the law counts them: a patient born on 2 March 1980 is 45 until
//! the end of 1 March 2026 and 46 from 2 March 2026. A patient born on 29 February turns a year
//! older on 1 March in years that have no 29 February.

use apache_avro::types::Value;

use crate::pseudonymise::Cell;

/// Microseconds in a day.
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Milliseconds in a day.
const MILLIS_PER_DAY: i64 = 86_400_000;

/// The (year, month 1-12, day 1-31) of a day count since 1970-01-01, proleptic Gregorian.
pub fn civil_from_days(days_since_epoch: i32) -> (i32, u32, u32) {
    // Howard Hinnant's civil_from_days, in i64 so no day count can overflow.
    let z = i64::from(days_since_epoch) + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // |days| < 2^31 keeps the year within about six million: it fits.
    (year as i32, month as u32, day as u32)
}

/// The calendar year of a day count since 1970-01-01 (proleptic Gregorian).
pub fn year_of(days_since_epoch: i32) -> i32 {
    civil_from_days(days_since_epoch).0
}

/// `YYYY-MM` of a day count since 1970-01-01.
pub fn year_month(days_since_epoch: i32) -> String {
    let (year, month, _) = civil_from_days(days_since_epoch);
    format!("{year:04}-{month:02}")
}

/// The UTC calendar day (days since 1970-01-01) of a date or timestamp value; `None` for any
/// other value or a timestamp beyond the range of dates.
pub fn days_of(value: &Value) -> Option<i32> {
    match value {
        Value::Date(days) => Some(*days),
        Value::TimestampMicros(micros) => i32::try_from(micros.div_euclid(MICROS_PER_DAY)).ok(),
        Value::TimestampMillis(millis) => i32::try_from(millis.div_euclid(MILLIS_PER_DAY)).ok(),
        _ => None,
    }
}

/// Completed years of age on day `at` of someone born on day `birth`; `None` if born after it.
pub fn completed_years(birth: i32, at: i32) -> Option<u32> {
    if birth > at {
        return None;
    }
    let (birth_year, birth_month, birth_day) = civil_from_days(birth);
    let (year, month, day) = civil_from_days(at);
    let before_birthday = (month, day) < (birth_month, birth_day);
    u32::try_from(year - birth_year - i32::from(before_birthday)).ok()
}

/// The age band at day `at` of someone born on day `birth`: `"<lower>-<upper>"` for bands of
/// `width` years starting at 0 (the band below `top` may be narrower), just `"<lower>"` when a
/// band is one year wide, and `"<top>+"` from `top` up. `None` if born after `at`, or if
/// `width` or `top` is 0.
pub fn age_band(birth: i32, at: i32, width: u32, top: u32) -> Option<String> {
    if width == 0 || top == 0 {
        return None;
    }
    let age = completed_years(birth, at)?;
    if age >= top {
        return Some(format!("{top}+"));
    }
    let lower = age / width * width;
    let upper = (lower + (width - 1)).min(top - 1);
    Some(if upper == lower { lower.to_string() } else { format!("{lower}-{upper}") })
}

/// A date or timestamp moved by `micros` microseconds, in the same type (timestamps as
/// microseconds). A date moves to the UTC date its midnight moves to, so all of one patient's
/// dates move by the same whole number of days and keep their intervals exactly. `None` if the
/// value is not a date or timestamp; `Some(None)` if the result would leave the range of its type.
pub fn shift(value: &Value, micros: i64) -> Option<Option<Cell>> {
    Some(match value {
        Value::Date(date) => {
            let days = i64::from(*date) + micros.div_euclid(MICROS_PER_DAY);
            i32::try_from(days).ok().map(Cell::Date32)
        }
        Value::TimestampMicros(at) => at.checked_add(micros).map(Cell::TimestampMicros),
        Value::TimestampMillis(millis) => {
            millis.checked_mul(1000).and_then(|at| at.checked_add(micros)).map(Cell::TimestampMicros)
        }
        _ => return None,
    })
}

/// A timestamp cut down to the start of its unit (`unit_micros` long: a minute, an hour, a day,
/// counted from the Unix epoch in UTC), as microseconds. `None` if the value is not a
/// timestamp; `Some(None)` if it is out of range.
pub fn truncate(value: &Value, unit_micros: i64) -> Option<Option<Cell>> {
    let micros = match value {
        Value::TimestampMicros(at) => Some(*at),
        Value::TimestampMillis(millis) => millis.checked_mul(1000),
        _ => return None,
    };
    let unit = unit_micros.max(1);
    Some(micros.and_then(|at| at.checked_sub(at.rem_euclid(unit))).map(Cell::TimestampMicros))
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, NaiveDate};
    use proptest::prelude::*;

    use super::*;

    fn day(year: i32, month: u32, day: u32) -> i32 {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        (NaiveDate::from_ymd_opt(year, month, day).unwrap() - epoch).num_days() as i32
    }

    #[test]
    fn years_and_months_of_day_counts() {
        assert_eq!(year_of(0), 1970);
        assert_eq!(year_of(-1), 1969);
        assert_eq!(year_of(11_016), 2000); // 2000-02-29
        assert_eq!(year_of(20_818), 2026); // 2026-12-31
        assert_eq!(year_of(20_819), 2027);
        assert_eq!(year_month(day(2000, 2, 29)), "2000-02");
        assert_eq!(year_month(day(1969, 12, 31)), "1969-12");
        assert_eq!(year_month(day(2026, 3, 14)), "2026-03");
        for extreme in [i32::MIN, i32::MAX] {
            let (_, month, day) = civil_from_days(extreme);
            assert!((1..=12).contains(&month) && (1..=31).contains(&day));
        }
    }

    #[test]
    fn timestamps_count_by_their_utc_day() {
        let midnight = i64::from(day(2026, 3, 14)) * MICROS_PER_DAY;
        assert_eq!(days_of(&Value::TimestampMicros(midnight)), Some(day(2026, 3, 14)));
        assert_eq!(days_of(&Value::TimestampMicros(midnight - 1)), Some(day(2026, 3, 13)));
        assert_eq!(days_of(&Value::TimestampMicros(-1)), Some(-1));
        assert_eq!(days_of(&Value::TimestampMillis(midnight / 1000)), Some(day(2026, 3, 14)));
        assert_eq!(days_of(&Value::Date(7)), Some(7));
        assert_eq!(days_of(&Value::Long(7)), None);
    }

    #[test]
    fn ages_are_completed_years_and_bands_follow_width_and_top() {
        let birth = day(1980, 3, 2);
        assert_eq!(completed_years(birth, day(2026, 3, 1)), Some(45));
        assert_eq!(completed_years(birth, day(2026, 3, 2)), Some(46));
        assert_eq!(completed_years(birth, birth), Some(0));
        assert_eq!(completed_years(birth, birth - 1), None);
        assert_eq!(age_band(birth, day(2026, 3, 1), 5, 90).as_deref(), Some("45-49"));
        assert_eq!(age_band(birth, day(2026, 3, 1), 10, 90).as_deref(), Some("40-49"));
        assert_eq!(age_band(birth, day(2026, 3, 1), 1, 90).as_deref(), Some("45"));
        assert_eq!(age_band(birth, day(2026, 3, 1), 10, 42).as_deref(), Some("42+"));
        assert_eq!(age_band(birth, day(2019, 3, 1), 10, 42).as_deref(), Some("30-39"));
        assert_eq!(age_band(birth, day(2021, 3, 1), 10, 45).as_deref(), Some("40-44"), "band below top is narrower");
        assert_eq!(age_band(day(1930, 1, 1), day(2026, 1, 1), 5, 90).as_deref(), Some("90+"));
        assert_eq!(age_band(birth, birth, 5, 90).as_deref(), Some("0-4"));
        assert_eq!(age_band(birth, birth - 1, 5, 90), None, "born after the event");
        assert_eq!(age_band(birth, birth, 0, 90), None);
    }

    #[test]
    fn leap_day_birthdays_come_on_the_29th_or_the_1st_of_march() {
        let birth = day(2000, 2, 29);
        assert_eq!(completed_years(birth, day(2001, 2, 28)), Some(0));
        assert_eq!(completed_years(birth, day(2001, 3, 1)), Some(1));
        assert_eq!(completed_years(birth, day(2004, 2, 28)), Some(3));
        assert_eq!(completed_years(birth, day(2004, 2, 29)), Some(4));
        assert_eq!(completed_years(birth, day(2100, 2, 28)), Some(99), "2100 is not a leap year");
        assert_eq!(completed_years(birth, day(2100, 3, 1)), Some(100));
    }

    #[test]
    fn shifts_keep_the_type_and_refuse_overflow() {
        let hour = 3_600_000_000;
        assert_eq!(shift(&Value::Date(10), -3 * MICROS_PER_DAY), Some(Some(Cell::Date32(7))));
        // A date moves to the date its midnight moves to: 5 hours back is the day before.
        assert_eq!(shift(&Value::Date(10), -5 * hour), Some(Some(Cell::Date32(9))));
        assert_eq!(shift(&Value::Date(10), 5 * hour), Some(Some(Cell::Date32(10))));
        assert_eq!(shift(&Value::TimestampMicros(5), 7), Some(Some(Cell::TimestampMicros(12))));
        assert_eq!(shift(&Value::TimestampMillis(5), 0), Some(Some(Cell::TimestampMicros(5_000))));
        assert_eq!(shift(&Value::Date(i32::MAX), MICROS_PER_DAY), Some(None));
        assert_eq!(shift(&Value::TimestampMicros(i64::MAX - 1), 2), Some(None));
        assert_eq!(shift(&Value::Long(1), 1), None);
    }

    #[test]
    fn truncation_keeps_the_start_of_the_unit_before_and_after_1970() {
        let hour = 3_600_000_000;
        let at = 20_782 * MICROS_PER_DAY + 13 * hour + 17 * 60_000_000 + 123;
        assert_eq!(
            truncate(&Value::TimestampMicros(at), hour),
            Some(Some(Cell::TimestampMicros(at - 17 * 60_000_000 - 123)))
        );
        assert_eq!(
            truncate(&Value::TimestampMicros(at), MICROS_PER_DAY),
            Some(Some(Cell::TimestampMicros(20_782 * MICROS_PER_DAY)))
        );
        assert_eq!(truncate(&Value::TimestampMicros(-1), hour), Some(Some(Cell::TimestampMicros(-hour))));
        assert_eq!(truncate(&Value::TimestampMillis(1_500), 1_000_000), Some(Some(Cell::TimestampMicros(1_000_000))));
        assert_eq!(truncate(&Value::TimestampMillis(i64::MAX), hour), Some(None));
        // The earliest hours a timestamp can hold have no start of their hour in range.
        assert_eq!(truncate(&Value::TimestampMicros(i64::MIN), hour), Some(None));
        assert_eq!(truncate(&Value::TimestampMicros(i64::MIN + 1), hour), Some(None));
        assert_eq!(truncate(&Value::TimestampMicros(i64::MAX), 1), Some(Some(Cell::TimestampMicros(i64::MAX))));
        assert_eq!(truncate(&Value::Date(3), hour), None);
    }

    /// Independent age: chrono's dates, and "has the birthday passed" by calendar arithmetic
    /// (a 29 February birthday falls on 1 March in common years).
    fn chrono_age(birth: NaiveDate, at: NaiveDate) -> u32 {
        let mut age = at.year() - birth.year();
        let birthday = NaiveDate::from_ymd_opt(at.year(), birth.month(), birth.day())
            .unwrap_or_else(|| NaiveDate::from_ymd_opt(at.year(), 3, 1).unwrap());
        if at < birthday {
            age -= 1;
        }
        age as u32
    }

    proptest! {
        #[test]
        fn civil_dates_agree_with_chrono(days in -1_000_000i32..1_000_000) {
            let date = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::TimeDelta::days(i64::from(days));
            prop_assert_eq!(civil_from_days(days), (date.year(), date.month(), date.day()));
        }

        #[test]
        fn age_bands_contain_the_age(
            birth in -30_000i32..25_000,
            gap in 0i32..45_000,
            width in 1u32..=20,
            top in 1u32..=120,
        ) {
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
            let at = birth + gap;
            let age = chrono_age(epoch + chrono::TimeDelta::days(birth.into()), epoch + chrono::TimeDelta::days(at.into()));
            prop_assert_eq!(completed_years(birth, at), Some(age));
            let band = age_band(birth, at, width, top).unwrap();
            if let Some(open) = band.strip_suffix('+') {
                prop_assert_eq!(open.parse::<u32>().unwrap(), top);
                prop_assert!(age >= top);
            } else {
                let lower: u32 = band.split('-').next().unwrap().parse().unwrap();
                prop_assert!(lower <= age && age < lower + width && age < top, "{band} for {age}");
                prop_assert_eq!(lower % width, 0);
            }
        }

        #[test]
        fn leap_day_births_band_like_everyone_else(
            year in (1904i32..2096).prop_map(|y| y - y % 4),
            gap in 0i32..40_000,
            width in 1u32..=10,
        ) {
            prop_assume!(year % 100 != 0 || year % 400 == 0);
            let birth = day(year, 2, 29);
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
            let at = birth + gap;
            let age = chrono_age(epoch + chrono::TimeDelta::days(birth.into()), epoch + chrono::TimeDelta::days(at.into()));
            prop_assert_eq!(completed_years(birth, at), Some(age));
            let band = age_band(birth, at, width, 90).unwrap();
            if band != "90+" {
                let lower: u32 = band.split('-').next().unwrap().parse().unwrap();
                prop_assert!(lower <= age && age < lower + width);
            }
        }
    }
}
