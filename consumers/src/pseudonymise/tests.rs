//! Keys, date shifts, and every action applied to whole records through [`pseudonymise`].

use apache_avro::types::Value;
use proptest::prelude::*;
use sluice_schemas::{Catalogue, SchemaVersion};

use super::*;
use crate::test_support::{day, micros, policy, record};

fn key(id: &str, byte: u8) -> PurposeKey {
    PurposeKey::new(id, &[byte; 32]).unwrap()
}

fn latest(subject: &str) -> &'static SchemaVersion {
    Catalogue::embedded().latest(subject).unwrap()
}

/// Plans `overrides` (every other field dropped) and pseudonymises a record of `values`.
fn row(subject: &str, overrides: &[(&str, &str)], values: &[(&str, Value)]) -> Vec<(String, Cell)> {
    let version = latest(subject);
    let plan = policy(version, overrides).plan(version).unwrap();
    let cells = pseudonymise(&plan, &key("k", 1), &record(version, values)).unwrap();
    plan.columns.iter().map(|c| c.name.clone()).zip(cells).collect()
}

fn only(cells: Vec<(String, Cell)>, column: &str) -> Cell {
    cells.into_iter().find(|(name, _)| name == column).unwrap_or_else(|| panic!("no column {column}")).1
}

const NHS: &str = "9434765919";

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
    assert_eq!(k.pseudonym(NHS), k.pseudonym(NHS));
    assert_ne!(k.pseudonym(NHS), key("k2", 0x0c).pseudonym(NHS));
    assert!(PurposeKey::new("short", b"Jefe").unwrap_err().contains("at least 32"));
    assert!(!format!("{k:?}").contains("0b"), "secret never printed");
}

#[test]
fn date_shifts_are_spread_over_the_whole_range() {
    let k = key("k", 9);
    let shifts: std::collections::BTreeSet<i32> =
        (0..2_000).map(|i| k.date_shift_days(&format!("patient-{i}"), 3)).collect();
    assert_eq!(shifts.into_iter().collect::<Vec<_>>(), [-3, -2, -1, 0, 1, 2, 3]);
    assert_eq!(k.date_shift_days(NHS, u32::MAX).unsigned_abs(), k.date_shift_days(NHS, u32::MAX).unsigned_abs());
}

#[test]
fn date_shifts_of_different_keys_are_unrelated() {
    let (research, planning) = (key("research", 1), key("planning", 2));
    let same = (0..1_000)
        .filter(|i| {
            let patient = format!("{}", 9_000_000_000u64 + i);
            research.date_shift_days(&patient, 180) == planning.date_shift_days(&patient, 180)
        })
        .count();
    // Unrelated shifts agree for about 1 patient in 361: 2.8 expected in 1,000.
    assert!(same <= 15, "{same} of 1000 patients have the same shift under both keys");
}

proptest! {
    #[test]
    fn a_patient_has_one_shift_within_bounds(patient in "[0-9]{10}", max_days in 1u32..=3650, byte: u8) {
        let k = key("k", byte);
        let shift = k.date_shift_days(&patient, max_days);
        prop_assert_eq!(shift, k.clone().date_shift_days(&patient, max_days));
        prop_assert!(shift.unsigned_abs() <= max_days);
    }

    #[test]
    fn shifted_dates_keep_a_patients_intervals(onset in -20_000i32..30_000, gap in 0i64..3_000, hour in 0i64..24) {
        let occurred = i64::from(onset) * 86_400_000_000 + gap * 86_400_000_000 + hour * 3_600_000_000;
        let cells = row(
            "diagnosis",
            &[
                ("nhs_number", r#"{ action = "hmac", column = "patient_pseudonym" }"#),
                ("occurred_at", r#"{ action = "shift_date", column = "occurred_shifted", max_days = 180 }"#),
                ("onset_date", r#"{ action = "shift_date", column = "onset_shifted", max_days = 180 }"#),
            ],
            &[
                ("nhs_number", Value::String(NHS.into())),
                ("occurred_at", Value::TimestampMicros(occurred)),
                ("onset_date", Value::Date(onset)),
            ],
        );
        let (Cell::TimestampMicros(shifted_occurred), Cell::Date32(shifted_onset)) =
            (only(cells.clone(), "occurred_shifted"), only(cells, "onset_shifted"))
        else {
            panic!("shifted dates keep their types");
        };
        let shift = key("k", 1).date_shift_days(NHS, 180);
        prop_assert_eq!(shifted_onset, onset + shift);
        prop_assert_eq!(shifted_occurred - occurred, i64::from(shift) * 86_400_000_000);
    }
}

#[test]
fn keep_copies_and_drop_leaves_nothing() {
    let cells = row(
        "observation",
        &[("code", r#""keep""#), ("value", r#""keep""#), ("interpretation", r#""keep""#), ("sex", "\"keep\"")],
        &[("code", Value::String("8867-4".into())), ("value", Value::Double(72.0))],
    );
    let names: Vec<&str> = cells.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["sex", "code", "value", "interpretation"]);
    assert_eq!(only(cells.clone(), "code"), Cell::Utf8("8867-4".into()));
    assert_eq!(only(cells.clone(), "value"), Cell::Float64(72.0));
    assert_eq!(only(cells, "interpretation"), Cell::Null);
}

#[test]
fn hmac_pseudonymises_strings_enums_and_uuids() {
    let cells = row(
        "adt",
        &[
            ("nhs_number", r#"{ action = "hmac", column = "patient_pseudonym" }"#),
            ("event_type", r#"{ action = "hmac", column = "event_type_pseudonym" }"#),
            ("event_id", r#"{ action = "hmac", column = "event_pseudonym" }"#),
        ],
        &[("nhs_number", Value::String(NHS.into()))],
    );
    let k = key("k", 1);
    assert_eq!(only(cells.clone(), "patient_pseudonym"), Cell::Utf8(k.pseudonym(NHS)));
    assert_eq!(only(cells.clone(), "event_type_pseudonym"), Cell::Utf8(k.pseudonym("ADMIT")));
    assert_eq!(only(cells, "event_pseudonym"), Cell::Utf8(k.pseudonym("00000000-0000-0000-0000-000000000000")));
    let missing = row("adt", &[("nhs_number", r#"{ action = "hmac", column = "p" }"#)], &[]);
    assert_eq!(only(missing, "p"), Cell::Null);
}

#[test]
fn dates_reduce_to_year_and_month() {
    let overrides = [
        ("date_of_birth", r#"{ action = "date_year", column = "birth_year" }"#),
        ("occurred_at", r#"{ action = "date_year_month", column = "event_month" }"#),
        ("recorded_at", r#"{ action = "date_year", column = "recorded_year" }"#),
    ];
    let cells = row(
        "adt",
        &overrides,
        &[
            ("date_of_birth", Value::Date(day(1948, 11, 2))),
            ("occurred_at", Value::TimestampMicros(micros(2026, 3, 14, 23, 59))),
            ("recorded_at", Value::TimestampMicros(micros(2027, 1, 1, 0, 0) - 1)),
        ],
    );
    assert_eq!(only(cells.clone(), "birth_year"), Cell::Int32(1948));
    assert_eq!(only(cells.clone(), "event_month"), Cell::Utf8("2026-03".into()));
    assert_eq!(only(cells, "recorded_year"), Cell::Int32(2026), "the last microsecond of 2026, UTC");
}

#[test]
fn age_bands_at_the_event_and_null_when_they_cannot_apply() {
    let overrides =
        [("date_of_birth", r#"{ action = "age_band", column = "age_band", at = "occurred_at", width = 5, top = 90 }"#)];
    let at = |birth: Option<i32>, occurred: i64| {
        let mut values = vec![("occurred_at", Value::TimestampMicros(occurred))];
        values.extend(birth.map(|b| ("date_of_birth", Value::Date(b))));
        only(row("adt", &overrides, &values), "age_band")
    };
    let birth = day(1980, 3, 2);
    assert_eq!(at(Some(birth), micros(2026, 3, 1, 23, 59)), Cell::Utf8("45-49".into()));
    assert_eq!(at(Some(birth), micros(2026, 3, 2, 0, 0)), Cell::Utf8("45-49".into()));
    assert_eq!(at(Some(birth), micros(2025, 3, 1, 12, 0)), Cell::Utf8("40-44".into()));
    assert_eq!(at(Some(day(1920, 1, 1)), micros(2026, 3, 1, 0, 0)), Cell::Utf8("90+".into()));
    assert_eq!(at(Some(birth), micros(1979, 1, 1, 0, 0)), Cell::Null, "born after the event");
    assert_eq!(at(None, micros(2026, 3, 1, 0, 0)), Cell::Null, "no date of birth");
}

#[test]
fn postcodes_reduce_to_district_or_sector_and_nonsense_to_null() {
    let district = [("postcode", r#"{ action = "postcode_outward", column = "postcode_district" }"#)];
    let sector = [("postcode", r#"{ action = "postcode_sector", column = "postcode_sector" }"#)];
    let with = |overrides: &[(&str, &str)], postcode: &str, column: &str| {
        only(row("adt", overrides, &[("postcode", Value::String(postcode.into()))]), column)
    };
    assert_eq!(with(&district, "LS6 2QT", "postcode_district"), Cell::Utf8("LS6".into()));
    assert_eq!(with(&sector, "LS6 2QT", "postcode_sector"), Cell::Utf8("LS6 2".into()));
    assert_eq!(with(&district, "27 Otley Road", "postcode_district"), Cell::Null);
    assert_eq!(with(&sector, "NFA", "postcode_sector"), Cell::Null);
}

#[test]
fn shift_date_without_a_patient_is_null_not_the_true_date() {
    let overrides = [("onset_date", r#"{ action = "shift_date", column = "onset_shifted", max_days = 30 }"#)];
    let onset = ("onset_date", Value::Date(day(2020, 6, 1)));
    assert_eq!(only(row("diagnosis", &overrides, std::slice::from_ref(&onset)), "onset_shifted"), Cell::Null);
    let blank = ("nhs_number", Value::String("  ".into()));
    assert_eq!(only(row("diagnosis", &overrides, &[onset.clone(), blank]), "onset_shifted"), Cell::Null);
    let patient = ("nhs_number", Value::String(NHS.into()));
    let shifted = only(row("diagnosis", &overrides, &[onset, patient]), "onset_shifted");
    assert_eq!(shifted, Cell::Date32(day(2020, 6, 1) + key("k", 1).date_shift_days(NHS, 30)));
}

#[test]
fn bucket_keeps_the_type_and_the_lower_bound() {
    let overrides = [("value", r#"{ action = "bucket", column = "value_band", width = 10 }"#)];
    let band = |x: f64| only(row("observation", &overrides, &[("value", Value::Double(x))]), "value_band");
    assert_eq!(band(72.5), Cell::Float64(70.0));
    assert_eq!(band(-0.5), Cell::Float64(-10.0));
    assert_eq!(band(f64::NAN), Cell::Null);
    assert_eq!(only(row("observation", &overrides, &[]), "value_band"), Cell::Null);

    // Integer fields, from a schema of their own.
    let catalogue = Catalogue::from_files([(
        "counts".to_owned(),
        "v1".to_owned(),
        r#"{"type": "record", "name": "Counts", "fields": [
            {"name": "nhs_number", "type": "string", "sensitivity": "direct-identifier"},
            {"name": "small", "type": "int"}, {"name": "large", "type": "long"}]}"#
            .to_owned(),
    )])
    .unwrap();
    let version = catalogue.latest("counts").unwrap();
    let plan = policy(
        version,
        &[
            ("small", r#"{ action = "bucket", column = "small_band", width = 5 }"#),
            ("large", r#"{ action = "bucket", column = "large_band", width = 1000 }"#),
        ],
    )
    .plan(version)
    .unwrap();
    let cells = |small: i32, large: i64| {
        let value = record(version, &[("small", Value::Int(small)), ("large", Value::Long(large))]);
        pseudonymise(&plan, &key("k", 1), &value).unwrap()
    };
    assert_eq!(cells(-7, 123_456), [Cell::Int32(-10), Cell::Int64(123_000)]);
    assert_eq!(cells(i32::MIN, i64::MIN + 1), [Cell::Null, Cell::Null], "bounds below the type land as null");
}

#[test]
fn errors_name_the_column_never_the_value() {
    let version = latest("adt");
    let plan = policy(version, &[("event_id", r#""keep""#), ("nhs_number", r#"{ action = "hmac", column = "p" }"#)])
        .plan(version)
        .unwrap();
    // A value of the wrong type in the NHS number's place.
    let mut wrong = record(version, &[]);
    if let Value::Record(fields) = &mut wrong {
        fields[5].1 = Value::Union(1, Box::new(Value::Long(9_434_765_919)));
    }
    let error = pseudonymise(&plan, &key("k", 1), &wrong).unwrap_err();
    assert_eq!(error, "column `p` of `adt`: unexpected value type");
    // A required value missing.
    let mut missing = record(version, &[]);
    if let Value::Record(fields) = &mut missing {
        fields[0].1 = Value::Null;
    }
    assert_eq!(pseudonymise(&plan, &key("k", 1), &missing).unwrap_err(), "column `event_id` of `adt` is required");
}
