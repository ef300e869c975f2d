//! Reading FHIR JSON: typed access to elements, identifiers, codings and date/times.
//!
//! Every accessor takes the FHIRPath of the element that holds the value (`Observation`,
//! `Observation.valueQuantity`) so that an error can name exactly where the problem is. Errors
//! never quote the value. A JSON value of the wrong type is a structural error (400); an empty
//! string is read as absent.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone as _, Utc};
use serde_json::{Map, Value};
use sluice_schemas::{InvalidNhsNumber, NhsNumber};

use super::{FhirError, IssueType};
use crate::hl7::timestamp::uk_local_to_utc;

/// A JSON object: a resource or a complex element.
pub(super) type Object = Map<String, Value>;

/// Identifier system of the NHS number.
pub(super) const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
/// Identifier systems of ODS codes: organisations and their sites.
pub(super) const ODS_SYSTEMS: [&str; 2] =
    ["https://fhir.nhs.uk/Id/ods-organization-code", "https://fhir.nhs.uk/Id/ods-site-code"];

fn wrong_type(path: &str, key: &str, expected: &str) -> FhirError {
    FhirError::structure(format!("{path}.{key}"), format!("must be {expected}"))
}

/// An optional JSON object.
pub(super) fn object<'a>(parent: &'a Object, key: &str, path: &str) -> Result<Option<&'a Object>, FhirError> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(object)) => Ok(Some(object)),
        Some(_) => Err(wrong_type(path, key, "a JSON object")),
    }
}

/// An optional string; an empty or blank one counts as absent.
pub(super) fn string<'a>(parent: &'a Object, key: &str, path: &str) -> Result<Option<&'a str>, FhirError> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(wrong_type(path, key, "a string")),
    }
}

/// An optional array; absent reads as empty.
pub(super) fn array<'a>(parent: &'a Object, key: &str, path: &str) -> Result<&'a [Value], FhirError> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(wrong_type(path, key, "a JSON array")),
    }
}

/// An array whose items must all be objects.
pub(super) fn objects<'a>(parent: &'a Object, key: &str, path: &str) -> Result<Vec<&'a Object>, FhirError> {
    array(parent, key, path)?
        .iter()
        .map(|item| item.as_object().ok_or_else(|| wrong_type(path, key, "an array of JSON objects")))
        .collect()
}

/// An array whose items must all be strings; blank items are skipped.
pub(super) fn strings<'a>(parent: &'a Object, key: &str, path: &str) -> Result<Vec<&'a str>, FhirError> {
    let mut texts = Vec::new();
    for item in array(parent, key, path)? {
        match item.as_str() {
            Some(text) if text.trim().is_empty() => {}
            Some(text) => texts.push(text),
            None => return Err(wrong_type(path, key, "an array of strings")),
        }
    }
    Ok(texts)
}

/// An element that is one object in FHIR R4 but a list in later versions (`serviceType`).
pub(super) fn one_or_many<'a>(parent: &'a Object, key: &str, path: &str) -> Result<Vec<&'a Object>, FhirError> {
    match parent.get(key) {
        Some(Value::Object(object)) => Ok(vec![object]),
        _ => objects(parent, key, path),
    }
}

/// A FHIR `id` (and `Bundle.id`): 1 to 64 ASCII letters, digits, `-` and `.`.
pub(super) fn is_fhir_id(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// One `Coding`, as far as this adapter reads it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Coding<'a> {
    /// `Coding.system`.
    pub system: Option<&'a str>,
    /// `Coding.code`.
    pub code: Option<&'a str>,
    /// `Coding.display`.
    pub display: Option<&'a str>,
}

/// One coding object, `path` being the element that holds it.
pub(super) fn coding<'a>(coding: &'a Object, path: &str) -> Result<Coding<'a>, FhirError> {
    Ok(Coding {
        system: string(coding, "system", path)?,
        code: string(coding, "code", path)?,
        display: string(coding, "display", path)?,
    })
}

/// The codings of a `CodeableConcept`.
pub(super) fn codings<'a>(concept: &'a Object, path: &str) -> Result<Vec<Coding<'a>>, FhirError> {
    let coding_path = format!("{path}.coding");
    objects(concept, "coding", path)?.into_iter().map(|c| coding(c, &coding_path)).collect()
}

/// Whether an `Identifier` has the NHS number system.
pub(super) fn is_nhs_identifier(identifier: &Object, path: &str) -> Result<bool, FhirError> {
    Ok(string(identifier, "system", path)? == Some(NHS_NUMBER_SYSTEM))
}

/// The NHS number of an `Identifier` with the NHS number system (`None` for other systems).
/// `path` is the identifier's FHIRPath, for structural errors; `at` is the element reported
/// when the number is missing or invalid (the reference, for a logical reference).
pub(super) fn nhs_number(identifier: &Object, path: &str, at: &str) -> Result<Option<NhsNumber>, FhirError> {
    if !is_nhs_identifier(identifier, path)? {
        return Ok(None);
    }
    let Some(value) = string(identifier, "value", path)? else {
        return Err(FhirError::unprocessable(IssueType::Required, at, "an NHS number identifier has no value"));
    };
    NhsNumber::parse(value).map(Some).map_err(|error| invalid_nhs_number(at, error))
}

/// The error for an NHS number that fails `NhsNumber::parse`.
pub(super) fn invalid_nhs_number(path: &str, error: InvalidNhsNumber) -> FhirError {
    let rule = match error {
        InvalidNhsNumber::WrongLength => "10 digits",
        InvalidNhsNumber::NotDigits => "digits only",
        InvalidNhsNumber::CheckDigit => "check digit",
    };
    FhirError::unprocessable(IssueType::Value, path, format!("the NHS number is not valid ({rule})"))
}

/// The ODS code of a `Reference` identifying an organisation by `identifier`, if it has one.
pub(super) fn ods_code(reference: &Object, path: &str) -> Result<Option<String>, FhirError> {
    let Some(identifier) = object(reference, "identifier", path)? else { return Ok(None) };
    let path = format!("{path}.identifier");
    let system = string(identifier, "system", &path)?;
    if !system.is_some_and(|system| ODS_SYSTEMS.contains(&system)) {
        return Ok(None);
    }
    Ok(string(identifier, "value", &path)?.map(str::to_owned))
}

/// A FHIR `date` or `dateTime`, read as far as its precision allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FhirDateTime {
    /// `YYYY` or `YYYY-MM`.
    Partial,
    /// `YYYY-MM-DD`.
    Date(NaiveDate),
    /// A date and time with its offset.
    Instant(DateTime<FixedOffset>),
}

/// Why a date/time is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DateTimeProblem {
    /// Not in the FHIR layout, or an impossible date or time.
    Malformed,
    /// A time without a time zone offset.
    NoOffset,
}

/// Parses the FHIR `dateTime` layouts: `YYYY`, `YYYY-MM`, `YYYY-MM-DD` and
/// `YYYY-MM-DDThh:mm:ss[.f+](Z|(+|-)hh:mm)`.
pub(super) fn parse_date_time(text: &str) -> Result<FhirDateTime, DateTimeProblem> {
    use DateTimeProblem::Malformed;
    let bytes = text.as_bytes();
    let number = |from: usize, to: usize| -> Result<u32, DateTimeProblem> {
        let digits = bytes.get(from..to).ok_or(Malformed)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(Malformed);
        }
        Ok(digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let separator = |at: usize, expected: u8| if bytes.get(at) == Some(&expected) { Ok(()) } else { Err(Malformed) };
    let year = number(0, 4)? as i32;
    if bytes.len() == 4 {
        return Ok(FhirDateTime::Partial);
    }
    separator(4, b'-')?;
    let month = number(5, 7)?;
    if !(1..=12).contains(&month) {
        return Err(Malformed);
    }
    if bytes.len() == 7 {
        return Ok(FhirDateTime::Partial);
    }
    separator(7, b'-')?;
    let date = NaiveDate::from_ymd_opt(year, month, number(8, 10)?).ok_or(Malformed)?;
    if bytes.len() == 10 {
        return Ok(FhirDateTime::Date(date));
    }
    separator(10, b'T')?;
    separator(13, b':')?;
    separator(16, b':')?;
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    let mut at = 19;
    let mut nanos = 0;
    if bytes.get(at) == Some(&b'.') {
        let digits = bytes[at + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(Malformed);
        }
        let kept = digits.min(9);
        nanos = number(at + 1, at + 1 + kept)? * 10u32.pow(9 - kept as u32);
        at += 1 + digits;
    }
    // A leap second (`:60`) is the last nanoseconds of second 59, as chrono represents it.
    let time = if second == 60 {
        NaiveTime::from_hms_nano_opt(hour, minute, 59, 1_000_000_000 + nanos)
    } else {
        NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)
    }
    .ok_or(Malformed)?;
    let offset_seconds = match bytes.get(at) {
        None => return Err(DateTimeProblem::NoOffset),
        Some(b'Z') if bytes.len() == at + 1 => 0,
        Some(sign @ (b'+' | b'-')) if bytes.len() == at + 6 => {
            separator(at + 3, b':')?;
            let (hours, minutes) = (number(at + 1, at + 3)?, number(at + 4, at + 6)?);
            if hours > 14 || minutes > 59 {
                return Err(Malformed);
            }
            let seconds = (hours * 3600 + minutes * 60) as i32;
            if *sign == b'-' { -seconds } else { seconds }
        }
        Some(_) => return Err(Malformed),
    };
    let offset = FixedOffset::east_opt(offset_seconds).ok_or(Malformed)?;
    let instant = offset.from_local_datetime(&date.and_time(time)).single().ok_or(Malformed)?;
    Ok(FhirDateTime::Instant(instant))
}

fn date_time_error(path: &str, problem: DateTimeProblem) -> FhirError {
    let rule = match problem {
        DateTimeProblem::Malformed => {
            "is not a FHIR dateTime (YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.fff] with Z or +hh:mm)"
        }
        DateTimeProblem::NoOffset => "has a time but no time zone offset (Z or +hh:mm is required)",
    };
    FhirError::unprocessable(IssueType::Value, path, rule)
}

/// A `dateTime` read as an instant: a date alone is midnight Europe/London; a year or a month
/// alone is refused because an event needs at least a day.
pub(super) fn instant_of(text: &str, path: &str) -> Result<DateTime<Utc>, FhirError> {
    match parse_date_time(text).map_err(|problem| date_time_error(path, problem))? {
        FhirDateTime::Instant(instant) => Ok(instant.with_timezone(&Utc)),
        FhirDateTime::Date(date) => Ok(uk_local_to_utc(date.and_time(NaiveTime::MIN))),
        FhirDateTime::Partial => Err(FhirError::unprocessable(
            IssueType::Value,
            path,
            "gives only a year or a month; at least a day (YYYY-MM-DD) is required",
        )),
    }
}

/// A `dateTime` read as an instant when it has at least a day; `None` for a year or a month.
pub(super) fn instant_if_precise(text: &str, path: &str) -> Result<Option<DateTime<Utc>>, FhirError> {
    match parse_date_time(text).map_err(|problem| date_time_error(path, problem))? {
        FhirDateTime::Partial => Ok(None),
        _ => instant_of(text, path).map(Some),
    }
}

/// A FHIR `instant` (`meta.lastUpdated`, `Observation.issued`): date, time and offset.
pub(super) fn strict_instant(text: &str, path: &str) -> Result<DateTime<Utc>, FhirError> {
    match parse_date_time(text) {
        Ok(FhirDateTime::Instant(instant)) => Ok(instant.with_timezone(&Utc)),
        Err(DateTimeProblem::NoOffset) => Err(date_time_error(path, DateTimeProblem::NoOffset)),
        _ => Err(FhirError::unprocessable(
            IssueType::Value,
            path,
            "is not a FHIR instant (YYYY-MM-DDThh:mm:ss[.fff] with Z or +hh:mm)",
        )),
    }
}

/// The calendar date of a `date` or `dateTime` as written (no time zone conversion); `None`
/// for a year or a month alone.
pub(super) fn date_of(text: &str, path: &str) -> Result<Option<NaiveDate>, FhirError> {
    match parse_date_time(text).map_err(|problem| date_time_error(path, problem))? {
        FhirDateTime::Partial => Ok(None),
        FhirDateTime::Date(date) => Ok(Some(date)),
        FhirDateTime::Instant(instant) => Ok(Some(instant.date_naive())),
    }
}

/// A FHIR `date` (no time): `None` for a year or a month alone.
pub(super) fn date_only(text: &str, path: &str) -> Result<Option<NaiveDate>, FhirError> {
    match parse_date_time(text) {
        Ok(FhirDateTime::Partial) => Ok(None),
        Ok(FhirDateTime::Date(date)) => Ok(Some(date)),
        _ => Err(FhirError::unprocessable(IssueType::Value, path, "is not a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn date_times_are_read_at_their_precision() {
        let instant = |text| match parse_date_time(text) {
            Ok(FhirDateTime::Instant(at)) => at.with_timezone(&Utc),
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(instant("2026-03-15T14:30:00Z"), utc("2026-03-15T14:30:00Z"));
        assert_eq!(instant("2026-03-15T14:30:00+01:00"), utc("2026-03-15T13:30:00Z"));
        assert_eq!(instant("2026-03-15T14:30:00.25-05:00"), utc("2026-03-15T19:30:00.25Z"));
        assert_eq!(instant("2026-03-15T14:30:00.1234567891Z"), utc("2026-03-15T14:30:00.123456789Z"));
        assert_eq!(parse_date_time("2026"), Ok(FhirDateTime::Partial));
        assert_eq!(parse_date_time("2026-03"), Ok(FhirDateTime::Partial));
        assert_eq!(
            parse_date_time("2026-03-15"),
            Ok(FhirDateTime::Date(NaiveDate::from_ymd_opt(2026, 3, 15).unwrap()))
        );
        assert_eq!(parse_date_time("2026-03-15T14:30:00"), Err(DateTimeProblem::NoOffset));
        assert_eq!(parse_date_time("2026-03-15T14:30:00.5"), Err(DateTimeProblem::NoOffset));
        for bad in [
            "",
            "26",
            "2026-13",
            "2026-02-30",
            "2026-03-15T",
            "2026-03-15T25:00:00Z",
            "2026-03-15 14:30:00Z",
            "2026-03-15T14:30Z",
            "2026-03-15T14:30:00.Z",
            "2026-03-15T14:30:00+0100",
            "2026-03-15T14:30:00+15:00",
            "2026-03-15T14:30:00Zjunk",
            "2026-03-15t14:30:00Z",
            "２０２６-03-15",
        ] {
            assert_eq!(parse_date_time(bad), Err(DateTimeProblem::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn dates_alone_are_midnight_in_london_and_coarse_ones_are_refused() {
        assert_eq!(instant_of("2026-01-15", "X").unwrap(), utc("2026-01-15T00:00:00Z"));
        assert_eq!(instant_of("2026-07-15", "X").unwrap(), utc("2026-07-14T23:00:00Z"));
        assert_eq!(instant_of("2026", "X").unwrap_err().code, IssueType::Value);
        assert_eq!(instant_if_precise("2026-07", "X").unwrap(), None);
        assert!(strict_instant("2026-07-15", "X").is_err());
        assert_eq!(date_of("2026-07-15T00:30:00+01:00", "X").unwrap(), NaiveDate::from_ymd_opt(2026, 7, 15));
        assert!(date_only("2026-07-15T00:30:00+01:00", "X").is_err());
    }

    #[test]
    fn fhir_ids_are_opaque_tokens() {
        assert!(is_fhir_id("obs-1.2"));
        assert!(!is_fhir_id(""));
        assert!(!is_fhir_id("a b"));
        assert!(!is_fhir_id(&"a".repeat(65)));
    }
}
