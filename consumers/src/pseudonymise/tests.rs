//! Keys, date shifts, and every action applied to whole records through [`pseudonymise`].

use apache_avro::types::Value;
use proptest::prelude::*;
use sluice_schemas::{Catalogue, SchemaVersion};

use super::*;
use crate::test_support::{day, micros, policy, record, single_version_catalogue};

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

/// HMAC-SHA256 written out from its definition (RFC 2104) on SHA-256 alone, so that the
/// pseudonyms are checked against the standard construction and not against the `hmac` crate
/// they are made with.
fn hmac_by_hand(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

#[test]
fn the_hand_written_hmac_matches_rfc_4231() {
    // Test case 6: a 131-byte key of 0xaa (longer than the block size).
    assert_eq!(
        hex::encode(hmac_by_hand(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First")),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
    // Test case 2: a short key.
    assert_eq!(
        hex::encode(hmac_by_hand(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn pseudonyms_are_hmacs_of_prefix_domain_and_value() {
    let secret = [0x5a; 40];
    let k = PurposeKey::new("k", &secret).unwrap();
    let expected = hmac_by_hand(&secret, b"sluice/pseudonym/v2\0nhs_number\09434765919");
    assert_eq!(k.patient_pseudonym(NHS), hex::encode(expected));
    assert_eq!(k.pseudonym("nhs_number", NHS), hex::encode(expected));
    let id = [0x11; 16];
    let mut message = b"sluice/pseudonym/v2\0event_id\0".to_vec();
    message.extend_from_slice(&id);
    assert_eq!(k.record_pseudonym("event_id", &id), hex::encode(&hmac_by_hand(&secret, &message)[..16]));
}

#[test]
fn pseudonyms_are_stable_per_key_and_differ_between_keys_and_domains() {
    let k = key("k1", 0x0b);
    assert_eq!(k.patient_pseudonym(NHS), k.patient_pseudonym(NHS));
    assert_ne!(k.patient_pseudonym(NHS), key("k2", 0x0c).patient_pseudonym(NHS));
    // The same text in two fields: unrelated pseudonyms.
    assert_ne!(k.pseudonym("source_organisation", "RR8"), k.pseudonym("location_code", "RR8"));
    // A domain and value can never be re-split into another pair.
    assert_ne!(k.pseudonym("ab", "c"), k.pseudonym("a", "bc"));
    assert!(PurposeKey::new("short", b"Jefe").unwrap_err().contains("at least 32"));
    assert!(!format!("{k:?}").contains("0b"), "secret never printed");
    assert!(k.shares_secret_with(&key("another id", 0x0b)));
    assert!(!k.shares_secret_with(&key("k1", 0x0c)));
}

const DAY: i64 = 86_400_000_000;

#[test]
fn time_shifts_are_spread_over_the_whole_range_to_the_microsecond() {
    let k = key("k", 9);
    let shifts: Vec<i64> = (0..2_000).map(|i| k.time_shift_micros(&format!("patient-{i}"), 3)).collect();
    assert!(shifts.iter().all(|s| s.abs() <= 3 * DAY));
    // Spread over all seven days of the range, and over the time of day.
    let days: std::collections::BTreeSet<i64> = shifts.iter().map(|s| s.div_euclid(DAY)).collect();
    assert_eq!(days.into_iter().collect::<Vec<_>>(), [-3, -2, -1, 0, 1, 2]);
    let hours: std::collections::BTreeSet<i64> = shifts.iter().map(|s| s.rem_euclid(DAY) / 3_600_000_000).collect();
    assert_eq!(hours.len(), 24, "every hour of the day");
    let whole_seconds = shifts.iter().filter(|s| *s % 1_000_000 == 0).count();
    assert!(whole_seconds <= 2, "{whole_seconds} of 2000 shifts are whole seconds");
    assert_eq!(k.time_shift_micros(NHS, u32::MAX), k.time_shift_micros(NHS, 1_000_000));
}

#[test]
fn time_shifts_of_different_keys_are_unrelated() {
    let (research, planning) = (key("research", 1), key("planning", 2));
    let same_day = (0..1_000)
        .filter(|i| {
            let patient = format!("{}", 9_000_000_000u64 + i);
            research.time_shift_micros(&patient, 180).div_euclid(DAY)
                == planning.time_shift_micros(&patient, 180).div_euclid(DAY)
        })
        .count();
    // Unrelated shifts fall on the same day for about 1 patient in 360: 2.8 expected in 1,000.
    assert!(same_day <= 15, "{same_day} of 1000 patients have the same shift under both keys");
}

proptest! {
    #[test]
    fn a_patient_has_one_shift_within_bounds(patient in "[0-9]{10}", max_days in 1u32..=3650, byte: u8) {
        let k = key("k", byte);
        let shift = k.time_shift_micros(&patient, max_days);
        prop_assert_eq!(shift, k.clone().time_shift_micros(&patient, max_days));
        prop_assert!(shift.abs() <= i64::from(max_days) * DAY);
    }

    #[test]
    fn shifted_dates_keep_a_patients_intervals(onset in -20_000i32..30_000, gap in 0i64..3_000, hour in 0i64..24) {
        let occurred = i64::from(onset) * DAY + gap * DAY + hour * 3_600_000_000;
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
        let shift = key("k", 1).time_shift_micros(NHS, 180);
        prop_assert_eq!(shifted_occurred - occurred, shift);
        // The date moves by whole days, to the date its midnight moves to.
        prop_assert_eq!(i64::from(shifted_onset), i64::from(onset) + shift.div_euclid(DAY));
        // So the interval from onset to event stays true to within the day.
        let true_interval = occurred - i64::from(onset) * DAY;
        let shifted_interval = shifted_occurred - i64::from(shifted_onset) * DAY;
        prop_assert!((shifted_interval - true_interval).abs() < DAY);
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
    assert_eq!(only(cells.clone(), "patient_pseudonym"), Cell::Utf8(k.patient_pseudonym(NHS)));
    assert_eq!(only(cells.clone(), "event_type_pseudonym"), Cell::Utf8(k.pseudonym("event_type", "ADMIT")));
    // A UUID: 128 bits of its 16 bytes, in the event id's own domain.
    let event = only(cells, "event_pseudonym");
    assert_eq!(event, Cell::Utf8(k.record_pseudonym("event_id", &[0; 16])));
    assert!(matches!(&event, Cell::Utf8(text) if text.len() == 32));
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
fn age_bands_at_a_fixed_date_are_one_band_per_patient() {
    let overrides = [(
        "date_of_birth",
        r#"{ action = "age_band", column = "age_band", at_date = "2026-04-01", width = 5, top = 90 }"#,
    )];
    let at = |birth: i32, occurred: i64| {
        let values = [("occurred_at", Value::TimestampMicros(occurred)), ("date_of_birth", Value::Date(birth))];
        only(row("adt", &overrides, &values), "age_band")
    };
    // Turns 45 on 2 April 2026: 40-44 on 1 April, whatever the event's date.
    let birth = day(1981, 4, 2);
    for occurred in [micros(2026, 1, 5, 9, 0), micros(2026, 4, 2, 9, 0), micros(2027, 3, 1, 9, 0)] {
        assert_eq!(at(birth, occurred), Cell::Utf8("40-44".into()));
    }
    assert_eq!(at(day(1981, 4, 1), micros(2026, 1, 5, 9, 0)), Cell::Utf8("45-49".into()));
    assert_eq!(at(day(2026, 5, 1), micros(2026, 6, 1, 9, 0)), Cell::Null, "born after the reference date");
}

#[test]
fn truncated_times_keep_the_hour_and_nothing_finer() {
    let overrides = [("occurred_at", r#"{ action = "truncate_time", column = "occurred_at_hour", unit = "hour" }"#)];
    let at = |occurred: i64| {
        only(row("adt", &overrides, &[("occurred_at", Value::TimestampMicros(occurred))]), "occurred_at_hour")
    };
    assert_eq!(at(micros(2026, 3, 14, 23, 59) + 59_999_999), Cell::TimestampMicros(micros(2026, 3, 14, 23, 0)));
    assert_eq!(at(micros(2026, 3, 14, 0, 0)), Cell::TimestampMicros(micros(2026, 3, 14, 0, 0)));
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
    let shift_days = key("k", 1).time_shift_micros(NHS, 30).div_euclid(DAY) as i32;
    assert_eq!(shifted, Cell::Date32(day(2020, 6, 1) + shift_days));
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
    let catalogue = single_version_catalogue(
        "counts",
        r#"{"name": "nhs_number", "type": "string", "sensitivity": "direct-identifier"},
            {"name": "small", "type": "int"}, {"name": "large", "type": "long"}"#,
    );
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
    let plan =
        policy(version, &[("source_system", r#""keep""#), ("nhs_number", r#"{ action = "hmac", column = "p" }"#)])
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
        fields[4].1 = Value::Null;
    }
    assert_eq!(pseudonymise(&plan, &key("k", 1), &missing).unwrap_err(), "column `source_system` of `adt` is required");
}
