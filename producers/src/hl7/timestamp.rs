//! HL7 v2 date/time values (TS and DTM: `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`).
//!
//! A value without an offset is local time where the message was sent. NHS systems in England
//! send UK local time, so such values are read as Europe/London: GMT in winter, BST (UTC+1) from
//! 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday of October. A local
//! time that occurs twice (the hour before the autumn change) is read as the first (BST) one; a
//! local time that does not exist (the spring gap) is read as if the clocks had not changed yet.

use chrono::{DateTime, Datelike as _, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc, Weekday};

/// Why a date/time cannot be read. Carries no part of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not digits in the HL7 layout, or an impossible date or time.
    #[error("is not an HL7 date/time (YYYYMMDD[HHMM[SS[.SSSS]]][+/-ZZZZ])")]
    Malformed,
    /// Only a year or a month: too coarse for an event time.
    #[error("has no day (at least YYYYMMDD is needed)")]
    TooCoarse,
}

/// Reads a TS/DTM value as a UTC instant; at least the day must be present.
pub fn parse_timestamp(value: &str) -> Result<DateTime<Utc>, TimestampError> {
    let (local, offset) = split_offset(value)?;
    let digits_end = local.find('.').unwrap_or(local.len());
    let (digits, fraction) = local.split_at(digits_end);
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 4 | 6 | 8 | 10 | 12 | 14) {
        return Err(TimestampError::Malformed);
    }
    if digits.len() < 8 {
        return Err(TimestampError::TooCoarse);
    }
    if !fraction.is_empty() && (digits.len() != 14 || !(2..=5).contains(&fraction.len())) {
        return Err(TimestampError::Malformed);
    }
    let number = |range: std::ops::Range<usize>| digits.get(range).map_or(Ok(0), |d| d.parse::<u32>());
    let parsed = (|| -> Result<Option<NaiveDateTime>, std::num::ParseIntError> {
        let date = NaiveDate::from_ymd_opt(number(0..4)? as i32, number(4..6)?, number(6..8)?);
        let micros = if fraction.is_empty() {
            0
        } else {
            let digits = &fraction[1..];
            digits.parse::<u32>()? * 10u32.pow(6 - digits.len() as u32)
        };
        let time = NaiveTime::from_hms_micro_opt(number(8..10)?, number(10..12)?, number(12..14)?, micros);
        Ok(date.zip(time).map(|(d, t)| d.and_time(t)))
    })()
    .ok()
    .flatten()
    .ok_or(TimestampError::Malformed)?;
    Ok(match offset {
        Some(offset) => (parsed - offset).and_utc(),
        None => uk_local_to_utc(parsed),
    })
}

/// Reads the date part of a TS/DTM/DT value (a date of birth, say); time and offset are ignored.
pub fn parse_date(value: &str) -> Result<NaiveDate, TimestampError> {
    let digits = value.get(..8).ok_or(TimestampError::TooCoarse)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimestampError::Malformed);
    }
    NaiveDate::parse_from_str(digits, "%Y%m%d").map_err(|_| TimestampError::Malformed)
}

/// Splits `+ZZZZ`/`-ZZZZ` off the end.
fn split_offset(value: &str) -> Result<(&str, Option<TimeDelta>), TimestampError> {
    let Some(at) = value.rfind(['+', '-']) else { return Ok((value, None)) };
    let (local, offset) = value.split_at(at);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let digits = &offset[1..];
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimestampError::Malformed);
    }
    let hours: i64 = digits[..2].parse().map_err(|_| TimestampError::Malformed)?;
    let minutes: i64 = digits[2..].parse().map_err(|_| TimestampError::Malformed)?;
    if hours > 14 || minutes > 59 {
        return Err(TimestampError::Malformed);
    }
    Ok((local, Some(TimeDelta::minutes(sign * (hours * 60 + minutes)))))
}

/// Europe/London local time to UTC, by the rules in force since 1996.
pub fn uk_local_to_utc(local: NaiveDateTime) -> DateTime<Utc> {
    let year = local.year();
    let starts = last_sunday(year, 3).and_hms_opt(1, 0, 0).expect("valid time");
    let ends = last_sunday(year, 10).and_hms_opt(1, 0, 0).expect("valid time");
    // Read as BST (UTC+1); it is BST when that instant falls in the summer-time window.
    let as_summer = local - TimeDelta::hours(1);
    if as_summer >= starts && as_summer < ends { as_summer.and_utc() } else { local.and_utc() }
}

fn last_sunday(year: i32, month: u32) -> NaiveDate {
    let last_day = NaiveDate::from_ymd_opt(year, month + 1, 1).expect("valid month") - TimeDelta::days(1);
    let back = last_day.weekday().num_days_from_sunday();
    let sunday = last_day - TimeDelta::days(i64::from(back));
    debug_assert_eq!(sunday.weekday(), Weekday::Sun);
    sunday
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn offsets_are_applied_and_precision_is_kept() {
        assert_eq!(parse_timestamp("20260315143000+0000"), Ok(utc("2026-03-15T14:30:00Z")));
        assert_eq!(parse_timestamp("20260315143000-0500"), Ok(utc("2026-03-15T19:30:00Z")));
        assert_eq!(parse_timestamp("20260315143000.25+0100"), Ok(utc("2026-03-15T13:30:00.25Z")));
        assert_eq!(parse_timestamp("202603151430+0000"), Ok(utc("2026-03-15T14:30:00Z")));
        assert_eq!(parse_timestamp("20260315"), Ok(utc("2026-03-15T00:00:00Z")));
    }

    #[test]
    fn local_times_follow_uk_summer_time() {
        // 2026: BST from 29 March 01:00 UTC to 25 October 01:00 UTC.
        assert_eq!(parse_timestamp("20260115120000"), Ok(utc("2026-01-15T12:00:00Z")));
        assert_eq!(parse_timestamp("20260715120000"), Ok(utc("2026-07-15T11:00:00Z")));
        assert_eq!(parse_timestamp("20260329005959"), Ok(utc("2026-03-29T00:59:59Z")));
        assert_eq!(parse_timestamp("20260329020000"), Ok(utc("2026-03-29T01:00:00Z")));
        // 01:30 on 25 October happens twice; the first (BST) reading wins.
        assert_eq!(parse_timestamp("20261025013000"), Ok(utc("2026-10-25T00:30:00Z")));
        assert_eq!(parse_timestamp("20261025020000"), Ok(utc("2026-10-25T02:00:00Z")));
    }

    #[test]
    fn malformed_and_coarse_values_are_refused() {
        for bad in ["", "2026-03-15", "20261315", "20260230", "2026031525", "20260315+01", "20260315.5", "2026031514a"]
        {
            assert_eq!(parse_timestamp(bad), Err(TimestampError::Malformed), "{bad:?}");
        }
        assert_eq!(parse_timestamp("2026"), Err(TimestampError::TooCoarse));
        assert_eq!(parse_timestamp("202603"), Err(TimestampError::TooCoarse));
        assert_eq!(parse_date("19840229"), Ok(NaiveDate::from_ymd_opt(1984, 2, 29).unwrap()));
        assert_eq!(parse_date("19850229"), Err(TimestampError::Malformed));
    }
}
