//! Loading, planning and the three standard policies.

use std::path::PathBuf;

use apache_avro::{Schema, types::Value};
use arrow::datatypes::{DataType, TimeUnit};
use sha2::{Digest, Sha256};
use sluice_schemas::{Catalogue, SchemaVersion, subjects};

use super::*;
use crate::{
    consent::{OptOutKind, StudyConsentModel},
    pseudonymise::{Cell, PurposeKey, pseudonymise},
    test_support::{day, micros, policy, policy_text, record, single_version_catalogue},
};

fn latest(subject: &str) -> &'static SchemaVersion {
    Catalogue::embedded().latest(subject).unwrap()
}

fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

fn plan_error(subject: &str, overrides: &[(&str, &str)]) -> String {
    let version = latest(subject);
    policy(version, overrides).plan(version).unwrap_err().to_string()
}

fn load_error(text: &str) -> String {
    Policy::from_toml(text, "policies/test.toml").unwrap_err().to_string()
}

// ---- the three standard policies -------------------------------------------------------------

#[test]
fn builtin_policies_plan_every_clinical_subject_without_landing_identifiers() {
    for purpose in Policy::BUILTIN_PURPOSES {
        let policy = Policy::builtin(purpose).unwrap();
        assert_eq!(policy.purpose(), purpose);
        assert_eq!(policy.origin(), format!("builtin:policies/{purpose}.toml"));
        assert!(policy.subjects().eq(["adt", "diagnosis", "observation"]), "{purpose}: only clinical subjects");
        for subject in subjects::CLINICAL {
            let version = latest(subject);
            let plan = policy.plan(version).unwrap_or_else(|e| panic!("{purpose}: {e}"));
            let Schema::Record(record) = version.schema() else { unreachable!() };
            let names: Vec<&str> = plan.columns.iter().map(|c| c.name.as_str()).collect();
            for forbidden in [
                "nhs_number",
                "local_patient_id",
                "family_name",
                "given_name",
                "address_line",
                "date_of_birth",
                "postcode",
                "comment",
                "event_id",
                "display",
            ] {
                assert!(!names.contains(&forbidden), "{purpose}/{subject} has a column {forbidden}");
            }
            for column in &plan.columns {
                let source = &record.fields[column.field_index];
                match Sensitivity::of(source).unwrap() {
                    Some(Sensitivity::DirectIdentifier | Sensitivity::FreeText | Sensitivity::RecordIdentifier) => {
                        assert_eq!(column.transform, Transform::Hmac, "{purpose}/{subject}.{}", source.name)
                    }
                    Some(Sensitivity::QuasiIdentifier) => {
                        assert_ne!(column.transform, Transform::Copy, "{purpose}/{subject}.{}", source.name)
                    }
                    Some(Sensitivity::Coded | Sensitivity::Operational) | None => {}
                }
            }
            for needed in ["event_pseudonym", "patient_pseudonym"] {
                assert!(names.contains(&needed), "{purpose}/{subject} lacks {needed}");
            }
            let occurred = match purpose {
                "research" => "occurred_at_shifted",
                "planning" => "occurred_at_hour",
                _ => "occurred_at",
            };
            assert_eq!(
                plan.arrow_schema.field_with_name(occurred).unwrap().data_type(),
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            );
        }
        let consent = latest(subjects::CONSENT);
        assert!(matches!(policy.plan(consent), Err(Error::UncoveredSubject { .. })), "consent is never landed");
    }
}

/// A record full of identifiers, pseudonymised under each standard policy: no identifier, no
/// date of birth and no full postcode comes out, in any form.
#[test]
fn builtin_policies_land_no_identifier_value() {
    let secrets = ["9434765919", "H0000001", "Hargreaves", "Eleanor", "LS16 5QP", "27 Otley Road", "Eleanor's son"];
    let birth = day(1948, 11, 2);
    for purpose in Policy::BUILTIN_PURPOSES {
        let policy = Policy::builtin(purpose).unwrap();
        let key = PurposeKey::new(purpose, &[3; 32]).unwrap();
        for subject in subjects::CLINICAL {
            let version = latest(subject);
            let plan = policy.plan(version).unwrap();
            let value = record(
                version,
                &[
                    ("occurred_at", Value::TimestampMicros(micros(2026, 3, 14, 22, 5))),
                    ("nhs_number", Value::String(secrets[0].into())),
                    ("local_patient_id", Value::String(secrets[1].into())),
                    ("family_name", Value::String(secrets[2].into())),
                    ("given_name", Value::String(secrets[3].into())),
                    ("postcode", Value::String(secrets[4].into())),
                    ("address_line", Value::String(secrets[5].into())),
                    ("comment", Value::String(secrets[6].into())),
                    ("date_of_birth", Value::Date(birth)),
                ],
            );
            let cells = pseudonymise(&plan, &key, &value).unwrap();
            for (column, cell) in plan.columns.iter().zip(&cells) {
                let text = format!("{cell:?}");
                for secret in secrets {
                    assert!(!text.contains(secret), "{purpose}/{subject}.{} lands an identifier", column.name);
                }
                assert!(!text.contains("LS16 5Q"), "{purpose}/{subject}.{}: finer than a sector", column.name);
                assert_ne!(*cell, Cell::Date32(birth), "{purpose}/{subject}.{} lands the birth date", column.name);
            }
            let age = plan.columns.iter().position(|c| c.name.starts_with("age_")).unwrap();
            let expected = if purpose == "direct-care" { "77" } else { "75-79" };
            assert_eq!(cells[age], Cell::Utf8(expected.into()), "{purpose}/{subject}");
        }
    }
}

#[test]
fn hash_is_the_sha256_of_the_file_bytes() {
    for purpose in Policy::BUILTIN_PURPOSES {
        let path = policies_dir().join(format!("{purpose}.toml"));
        let bytes = std::fs::read(&path).unwrap();
        let independent: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        let loaded = Policy::load(&path).unwrap();
        assert_eq!(loaded.hash(), independent, "{purpose}");
        assert_eq!(Policy::builtin(purpose).unwrap().hash(), independent, "{purpose}: builtin copy is the file");
        assert_eq!(loaded.origin(), path.display().to_string());
    }
    // One byte more (a trailing newline) is another policy.
    let text = std::fs::read_to_string(policies_dir().join("research.toml")).unwrap();
    let changed = Policy::from_toml(&format!("{text}\n"), "changed").unwrap();
    assert_ne!(changed.hash(), Policy::builtin("research").unwrap().hash());
}

#[test]
fn accessors_report_the_file() {
    let research = Policy::builtin("research").unwrap();
    assert_eq!((research.name(), research.version(), research.label()), ("research", 5, "research@v5".to_owned()));
    assert_eq!(research.patient_identifier(), "nhs_number");
    assert!(research.description().contains("shifted"));
    assert!(research.rules().exemptions.is_empty());
    assert!(matches!(research.actions("adt").unwrap()["sex"], FieldAction::Keep {}));
    assert!(Policy::builtin("study:X").is_none());
    assert!(Policy::builtin("marketing").is_none());
}

// ---- loading ---------------------------------------------------------------------------------

#[test]
fn consent_rules_are_read_from_the_consent_table() {
    let text = policy_text(latest("adt"), &[]).replace(
        "[subjects.adt]",
        "[consent]\nstudy_consent = \"opt-in\"\n[[consent.exemptions]]\nopt_out = \"national-data-opt-out\"\n\
         legal_basis = \"s251 support\"\nreference = \"CAG 10-02(b)/2026\"\n\n[subjects.adt]",
    );
    let text = text.replace("purpose = \"research\"", "purpose = \"study:IRAS-123456\"");
    let policy = Policy::from_toml(&text, "study.toml").unwrap();
    assert_eq!(policy.purpose(), "study:IRAS-123456");
    assert_eq!(policy.rules().study_consent, StudyConsentModel::OptIn);
    assert_eq!(policy.rules().exemptions[0].opt_out, OptOutKind::NationalDataOptOut);
    assert_eq!(policy.rules().exemptions[0].reference, "CAG 10-02(b)/2026");
    // Without the table, only the national rules apply.
    assert_eq!(Policy::from_toml(&policy_text(latest("adt"), &[]), "t").unwrap().rules(), &Default::default());
}

#[test]
fn files_are_partitioned_by_day_unless_the_policy_says_month() {
    let version = latest("adt");
    let base = policy_text(version, &[]);
    let by_day = Policy::from_toml(&base, "policies/test.toml").unwrap();
    assert_eq!(by_day.event_time_partition(), EventTimePartition::Day);
    assert_eq!(by_day.plan(version).unwrap().event_time_partition, EventTimePartition::Day);
    let monthly = base.replace("version = 1\n", "version = 1\nevent_time_partition = \"month\"\n");
    let by_month = Policy::from_toml(&monthly, "policies/test.toml").unwrap();
    assert_eq!(by_month.plan(version).unwrap().event_time_partition, EventTimePartition::Month);
    let weekly = load_error(&base.replace("version = 1\n", "version = 1\nevent_time_partition = \"week\"\n"));
    assert!(weekly.contains("unknown variant `week`"), "{weekly}");
    // Research shifts dates, so it files by month; the others by day.
    assert_eq!(Policy::builtin("research").unwrap().event_time_partition(), EventTimePartition::Month);
    assert_eq!(Policy::builtin("planning").unwrap().event_time_partition(), EventTimePartition::Day);
}

#[test]
fn unknown_keys_are_refused_naming_the_key_and_the_file() {
    let base = policy_text(latest("adt"), &[]);
    let top = load_error(&base.replace("version = 1\n", "version = 1\ncolour = \"blue\"\n"));
    assert!(top.starts_with("policy file `policies/test.toml` is invalid: line 3:"), "{top}");
    assert!(top.contains("unknown field `colour`"), "{top}");
    let in_action = load_error(&base.replace("sex = \"drop\"", "sex = { action = \"drop\", becuase = \"x\" }"));
    assert!(in_action.contains("unknown field `becuase`") && in_action.contains("policies/test.toml"), "{in_action}");
    let keep_with_column = load_error(&base.replace("sex = \"drop\"", "sex = { action = \"keep\", column = \"s\" }"));
    assert!(keep_with_column.contains("unknown field `column`"), "{keep_with_column}");
    let in_consent = load_error(&base.replace("[subjects.adt]", "[consent]\nexemption = []\n[subjects.adt]"));
    assert!(in_consent.contains("unknown field `exemption`"), "{in_consent}");
}

#[test]
fn bad_actions_purposes_and_headers_are_refused() {
    let base = policy_text(latest("adt"), &[]);
    let action = load_error(&base.replace("sex = \"drop\"", "sex = { action = \"blur\", column = \"s\" }"));
    assert!(action.contains("unknown variant `blur`"), "{action}");
    let short = load_error(&base.replace("sex = \"drop\"", "sex = \"hmac\""));
    assert!(short.contains("unknown short action `hmac`"), "{short}");
    let missing = load_error(&base.replace("sex = \"drop\"", "sex = { action = \"hmac\" }"));
    assert!(missing.contains("missing field `column`"), "{missing}");
    let purpose = load_error(&base.replace("purpose = \"research\"", "purpose = \"marketing\""));
    assert!(purpose.contains("unknown purpose `marketing`"), "{purpose}");
    assert!(load_error(&base.replace("version = 1", "version = 0")).contains("`version` starts at 1"));
    assert!(load_error(&base.replace("name = \"test\"", "name = \"a b\"")).contains("`name`"));
    assert!(load_error(&base.replace("description = \"unit test\"", "description = \" \"")).contains("description"));
    assert!(load_error(&base.replace("patient_identifier = \"nhs_number\"\n", "")).contains("patient_identifier"));
}

#[test]
fn every_shift_of_a_policy_uses_the_same_max_days() {
    let text = policy_text(
        latest("diagnosis"),
        &[
            ("occurred_at", r#"{ action = "shift_date", column = "a", max_days = 180 }"#),
            ("onset_date", r#"{ action = "shift_date", column = "b", max_days = 30 }"#),
        ],
    );
    let error = load_error(&text);
    assert!(error.contains("same max_days") && error.contains("diagnosis.onset_date"), "{error}");
}

#[test]
fn load_reports_unreadable_files() {
    let error = Policy::load(&policies_dir().join("no-such-purpose.toml")).unwrap_err();
    assert!(matches!(error, Error::ReadPolicy { .. }));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("binary.toml");
    std::fs::write(&path, [0xff, 0xfe]).unwrap();
    assert!(Policy::load(&path).unwrap_err().to_string().contains("not UTF-8"));
}

// ---- planning fails closed -------------------------------------------------------------------

#[test]
fn a_field_the_policy_does_not_mention_is_refused_at_planning() {
    let version = latest("observation");
    let text = policy_text(version, &[]).replace("interpretation = \"drop\"\n", "");
    let error = Policy::from_toml(&text, "t").unwrap().plan(version).unwrap_err().to_string();
    assert_eq!(
        error,
        "policy `test@v1` has no action for field `interpretation` of subject `observation` v4; add one before landing"
    );
}

#[test]
fn a_field_the_schema_does_not_have_is_refused_at_planning() {
    let error = plan_error("adt", &[("ethnicity", r#""keep""#)]);
    assert_eq!(
        error,
        "policy `test@v1` names field `ethnicity` under [subjects.adt], but subject `adt` v2 has no such field; \
         remove or correct the entry"
    );
}

#[test]
fn a_subject_without_a_table_is_refused() {
    let text = policy_text(latest("adt"), &[]);
    let error = Policy::from_toml(&text, "t").unwrap().plan(latest("diagnosis")).unwrap_err().to_string();
    assert_eq!(
        error,
        "policy `test@v1` has no [subjects.diagnosis] table, so subject `diagnosis` v2 cannot be landed under it"
    );
}

#[test]
fn actions_that_do_not_fit_the_field_type_are_refused() {
    let cases = [
        (
            "observation",
            "value",
            r#"{ action = "postcode_outward", column = "v" }"#,
            "`postcode_outward` needs a string",
        ),
        ("observation", "code", r#"{ action = "date_year", column = "y" }"#, "`date_year` needs a date or timestamp"),
        ("observation", "code", r#"{ action = "bucket", column = "b", width = 5 }"#, "`bucket` needs an int"),
        ("observation", "value", r#"{ action = "bucket", column = "b", width = 0 }"#, "positive `width`"),
        ("observation", "value", r#"{ action = "hmac", column = "h" }"#, "`hmac` needs a string"),
        ("adt", "sex", r#"{ action = "postcode_sector", column = "s" }"#, "`postcode_sector` needs a string"),
        ("diagnosis", "code", r#"{ action = "shift_date", column = "s", max_days = 10 }"#, "date or timestamp"),
        ("diagnosis", "onset_date", r#"{ action = "shift_date", column = "s", max_days = 0 }"#, "`max_days` between 1"),
        ("diagnosis", "onset_date", r#"{ action = "shift_date", column = "s", max_days = 4000 }"#, "and 3650"),
        (
            "diagnosis",
            "onset_date",
            r#"{ action = "truncate_time", column = "t", unit = "hour" }"#,
            "needs a timestamp",
        ),
        ("observation", "code", r#"{ action = "keep_fields", column = "k", fields = ["low"] }"#, "needs a record"),
        (
            "observation",
            "reference_range",
            r#"{ action = "keep_fields", column = "r", fields = ["middle"] }"#,
            "lists `middle`, which the record does not have",
        ),
        (
            "observation",
            "reference_range",
            r#"{ action = "keep_fields", column = "r", fields = ["low", "low"] }"#,
            "lists `low` twice",
        ),
        ("observation", "reference_range", r#"{ action = "keep_fields", column = "r", fields = [] }"#, "at least one"),
    ];
    for (subject, field, action, reason) in cases {
        let error = plan_error(subject, &[(field, action)]);
        assert!(error.contains(&format!("field `{field}` of subject `{subject} v")), "{error}");
        assert!(error.contains(reason), "{field} {action}: {error}");
    }
}

#[test]
fn age_band_needs_a_birth_date_and_another_date_to_take_the_age_at() {
    let band =
        |at: &str, width: u32| format!(r#"{{ action = "age_band", column = "age", at = "{at}", width = {width} }}"#);
    for (at, width, reason) in [
        ("sex", 5, "must name another date or timestamp field, not `sex`"),
        ("admitted_at", 5, "not `admitted_at`"),
        ("date_of_birth", 5, "not `date_of_birth`"),
        ("occurred_at", 0, "`width` and `top` of at least 1"),
    ] {
        let error = plan_error("adt", &[("date_of_birth", &band(at, width))]);
        assert!(error.contains("field `date_of_birth`") && error.contains(reason), "{error}");
    }
    let version = latest("diagnosis");
    policy(version, &[("date_of_birth", &band("onset_date", 10))]).plan(version).unwrap();
    for (action, reason) in [
        (r#"{ action = "age_band", column = "age" }"#, "exactly one of `at`"),
        (r#"{ action = "age_band", column = "age", at = "occurred_at", at_date = "2026-04-01" }"#, "exactly one of"),
        (r#"{ action = "age_band", column = "age", at_date = "1 April 2026" }"#, "YYYY-MM-DD, not `1 April 2026`"),
        (r#"{ action = "age_band", column = "age", at_date = "2026-02-30" }"#, "YYYY-MM-DD"),
    ] {
        let error = plan_error("adt", &[("date_of_birth", action)]);
        assert!(error.contains("field `date_of_birth`") && error.contains(reason), "{error}");
    }
}

#[test]
fn sensitive_fields_cannot_be_landed_as_they_are() {
    let cases = [
        ("nhs_number", r#""keep""#, "direct identifier, so `keep` is refused"),
        ("family_name", r#""keep""#, "direct identifier"),
        ("address_line", r#"{ action = "postcode_outward", column = "a" }"#, "direct identifier"),
        ("nhs_number", r#"{ action = "bucket", column = "b", width = 10 }"#, "`bucket` is refused"),
        ("date_of_birth", r#""keep""#, "quasi-identifier, so `keep` is refused"),
        ("postcode", r#""keep""#, "quasi-identifier"),
    ];
    for (field, action, reason) in cases {
        let error = plan_error("adt", &[(field, action)]);
        assert!(error.starts_with(&format!("policy `test@v1`: field `{field}` of subject `adt v2`: ")), "{error}");
        assert!(error.contains(reason), "{error}");
    }
    let comment = plan_error("observation", &[("comment", r#""keep""#)]);
    assert!(comment.contains("free text") && comment.contains("`keep` is refused"), "{comment}");
    let display = plan_error("observation", &[("display", r#""keep""#)]);
    assert!(display.contains("field `display`") && display.contains("free text"), "{display}");
    let event_id = plan_error("adt", &[("event_id", r#""keep""#)]);
    assert!(event_id.contains("record identifier") && event_id.contains("use `hmac`"), "{event_id}");
    // A record holding free text: not as a whole, and not the free text through keep_fields.
    let range = plan_error("observation", &[("reference_range", r#""keep""#)]);
    assert!(range.contains("nested field `text`") && range.contains("`keep_fields`"), "{range}");
    let with_text = r#"{ action = "keep_fields", column = "r", fields = ["low", "text"] }"#;
    let range = plan_error("observation", &[("reference_range", with_text)]);
    assert!(range.contains("lists `text`, which the schema labels free-text"), "{range}");
}

#[test]
fn keep_fields_lands_only_the_listed_nested_fields_in_the_records_order() {
    let version = latest("observation");
    let fields = r#"{ action = "keep_fields", column = "reference_range", fields = ["high", "low"] }"#;
    let plan = policy(version, &[("reference_range", fields)]).plan(version).unwrap();
    let ColumnKind::Struct(nested) = &plan.columns[0].kind else { panic!("{:?}", plan.columns[0].kind) };
    let names: Vec<&str> = nested.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["low", "high"]);
    let low = Value::Union(1, Box::new(Value::Decimal(apache_avro::Decimal::from(vec![0x01, 0x5f, 0x90]))));
    let range = Value::Record(vec![
        ("low".into(), low),
        ("high".into(), Value::Union(0, Box::new(Value::Null))),
        ("text".into(), Value::Union(1, Box::new(Value::String("seen at 27 Otley Road".into())))),
    ]);
    let cells =
        pseudonymise(&plan, &PurposeKey::new("k", &[1; 32]).unwrap(), &record(version, &[("reference_range", range)]))
            .unwrap();
    assert_eq!(cells, [Cell::Struct(vec![Cell::Decimal128(90_000), Cell::Null])]);
}

#[test]
fn text_fields_without_a_sensitivity_label_are_refused() {
    let catalogue = single_version_catalogue(
        "odd",
        r#"{"name": "nhs_number", "type": "string", "sensitivity": "direct-identifier"},
            {"name": "count", "type": "int"},
            {"name": "ward_note", "type": ["null", "string"], "default": null}"#,
    );
    let version = catalogue.latest("odd").unwrap();
    // Refused even where the policy would drop it: nobody has said what it is.
    let error = policy(version, &[("count", r#""keep""#)]).plan(version).unwrap_err().to_string();
    assert!(error.contains("field `ward_note`") && error.contains("no `sensitivity` label"), "{error}");
}

#[test]
fn two_fields_in_one_column_are_refused() {
    let error = plan_error(
        "adt",
        &[
            ("date_of_birth", r#"{ action = "date_year", column = "year" }"#),
            ("occurred_at", r#"{ action = "date_year", column = "year" }"#),
        ],
    );
    assert_eq!(
        error,
        "policy `test@v1`: fields `occurred_at` and `date_of_birth` of subject `adt v2` would both land as column `year`"
    );
}

#[test]
fn derived_columns_cannot_pass_for_schema_fields() {
    let cases = [
        ("nhs_number", r#"{ action = "hmac", column = "nhs_number" }"#, "must not keep the name `nhs_number`"),
        ("postcode", r#"{ action = "postcode_outward", column = "postcode" }"#, "must not keep the name"),
        ("nhs_number", r#"{ action = "hmac", column = "event_id" }"#, "would pass for field `event_id`"),
        ("nhs_number", r#"{ action = "hmac", column = "patient id" }"#, "letters, digits and `_`"),
        ("nhs_number", r#"{ action = "hmac", column = "" }"#, "letters, digits and `_`"),
    ];
    for (field, action, reason) in cases {
        let error = plan_error("adt", &[(field, action)]);
        assert!(error.contains(reason), "{action}: {error}");
    }
    // A non-sensitive field may keep its name when transformed.
    let version = latest("adt");
    let shifted = r#"{ action = "shift_date", column = "occurred_at", max_days = 7 }"#;
    policy(version, &[("occurred_at", shifted)]).plan(version).unwrap();
}

#[test]
fn the_patient_identifier_must_be_a_string_field() {
    let version = latest("adt");
    for identifier in ["nhs_numbr", "occurred_at"] {
        let text = policy_text(version, &[])
            .replace("patient_identifier = \"nhs_number\"", &format!("patient_identifier = \"{identifier}\""));
        let error = Policy::from_toml(&text, "t").unwrap().plan(version).unwrap_err().to_string();
        assert!(error.contains(&format!("field `{identifier}`")) && error.contains("patient_identifier"), "{error}");
    }
}

#[test]
fn unknown_sensitivity_labels_are_refused() {
    let catalogue = single_version_catalogue(
        "odd",
        r#"{"name": "nhs_number", "type": "string", "sensitivity": "direct-identifier"},
            {"name": "nickname", "type": "string", "sensitivity": "direct_identifier"}"#,
    );
    let version = catalogue.latest("odd").unwrap();
    let error = policy(version, &[("nickname", r#""drop""#)]).plan(version).unwrap_err().to_string();
    assert!(error.contains("field `nickname`") && error.contains("unknown sensitivity"), "{error}");
}

#[test]
fn plans_type_their_columns() {
    let version = latest("diagnosis");
    let plan = Policy::builtin("planning").unwrap().plan(version).unwrap();
    let kind = |name: &str| plan.columns.iter().find(|c| c.name == name).map(|c| (c.kind.clone(), c.nullable));
    assert_eq!(kind("onset_month"), Some((ColumnKind::Utf8, true)));
    assert_eq!(kind("age_band_at_reference_date"), Some((ColumnKind::Utf8, true)));
    assert_eq!(kind("is_primary"), Some((ColumnKind::Boolean, false)));
    assert_eq!(kind("event_pseudonym"), Some((ColumnKind::Utf8, false)));
    assert_eq!(kind("occurred_at_hour"), Some((ColumnKind::TimestampMicros, false)));
    let research = Policy::builtin("research").unwrap().plan(version).unwrap();
    let shifted = research.columns.iter().find(|c| c.name == "onset_date_shifted").unwrap();
    assert_eq!((shifted.kind.clone(), shifted.nullable), (ColumnKind::Date32, true));
    assert!(matches!(shifted.transform, Transform::ShiftDate { patient: 5, max_days: 180 }));
    let value = record(version, &[("onset_date", Value::Date(day(2020, 1, 1)))]);
    let cells = pseudonymise(&research, &PurposeKey::new("k", &[1; 32]).unwrap(), &value).unwrap();
    assert_eq!(cells.len(), research.arrow_schema.fields().len());
}

#[test]
fn plans_name_the_patient_pseudonym_column_erasure_searches() {
    for purpose in Policy::BUILTIN_PURPOSES {
        let policy = Policy::builtin(purpose).unwrap();
        for subject in subjects::CLINICAL {
            let plan = policy.plan(latest(subject)).unwrap();
            assert_eq!(plan.patient_pseudonym_column(), Some("patient_pseudonym"), "{purpose} {subject}");
        }
    }
    // A policy that drops the NHS number lands no pseudonym, so erasure cannot find the patient.
    let text = std::fs::read_to_string(policies_dir().join("research.toml"))
        .unwrap()
        .replace(r#"nhs_number = { action = "hmac", column = "patient_pseudonym" }"#, r#"nhs_number = "drop""#);
    // Disclosure control counts patients by their pseudonym, so it refuses such a policy...
    let refused = Policy::from_toml(&text, "test").unwrap_err().to_string();
    assert!(refused.contains("`nhs_number` must land as a pseudonym (`hmac`)"), "{refused}");
    // ... which, without [disclosure], lands no pseudonym for erasure to find.
    let (before, rest) = text.split_once("[disclosure]").unwrap();
    let without_disclosure = format!("{before}{}", &rest[rest.find("[subjects.adt]").unwrap()..]);
    let dropped = Policy::from_toml(&without_disclosure, "test").unwrap();
    assert_eq!(dropped.plan(latest("adt")).unwrap().patient_pseudonym_column(), None);
}

#[test]
fn keeping_landed_rows_after_an_opt_out_needs_a_reason() {
    let text = std::fs::read_to_string(policies_dir().join("research.toml")).unwrap();
    let keeping = |reason: &str| {
        text.replace("exemptions = []", &format!("exemptions = []\nkeep_landed_rows_on_opt_out = \"{reason}\""))
    };
    let policy = Policy::from_toml(&keeping("DARS agreement DARS-NIC-123456"), "t").unwrap();
    assert_eq!(policy.rules().keep_landed_rows_on_opt_out.as_deref(), Some("DARS agreement DARS-NIC-123456"));
    assert_eq!(Policy::builtin("research").unwrap().rules().keep_landed_rows_on_opt_out, None, "recall by default");
    let error = Policy::from_toml(&keeping("  "), "t").unwrap_err().to_string();
    assert!(error.contains("must say why"), "{error}");
}
