//! Tests of the subject JSON line format.
use apache_avro::types::Value;
use chrono::{FixedOffset, SecondsFormat, TimeDelta, TimeZone as _};
use proptest::prelude::*;
use sluice_schemas::{Decoder, Encoder, Framing, NhsNumber};
use uuid::Uuid;

use super::*;
use crate::clinical::{
    AdministrativeSex, AdtEvent, AdtEventType, ConsentEvent, ConsentScope, DiagnosisCodeSystem, DiagnosisEvent,
    Interpretation, ObservationCodeSystem, ObservationEvent, PatientClass, PatientIdentity, Provenance, ResultDecimal,
    SubjectRecord, ValidEvent, arbitrary,
};

fn parse(line: &[u8]) -> Result<ClinicalEvent, LineError> {
    parse_subject_line(line, Catalogue::embedded(), arbitrary::now()).map(ValidEvent::into_event)
}

/// Resolves a record of `writer` to the newest version of its subject, as a consumer's decoder
/// does (the parser reads the writer's record directly; this is what it must agree with).
fn to_newest(value: Value, writer: &SchemaVersion, catalogue: &Catalogue) -> Result<Value, String> {
    let newest = catalogue.latest(writer.subject()).map_err(|e| e.to_string())?;
    if newest.fingerprint() == writer.fingerprint() {
        return Ok(value);
    }
    value.resolve(newest.schema()).map_err(|e| e.to_string())
}

/// The example lines of the module documentation, in order.
fn documented_lines() -> Vec<&'static str> {
    include_str!("mod.rs")
        .lines()
        .skip_while(|line| *line != "//! ## Example lines")
        .filter_map(|line| line.strip_prefix("//! "))
        .filter(|line| line.starts_with(r#"{"subject""#))
        .collect()
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn test_patient() -> NhsNumber {
    NhsNumber::parse("9990000018").unwrap()
}

fn provenance(id: &str, occurred_at: DateTime<Utc>, recorded_at: DateTime<Utc>, org: &str, system: &str) -> Provenance {
    Provenance {
        event_id: Uuid::parse_str(id).unwrap(),
        occurred_at,
        recorded_at,
        source_organisation: org.into(),
        source_system: system.into(),
    }
}

fn patient(local_id: &str) -> PatientIdentity {
    PatientIdentity {
        nhs_number: Some(test_patient()),
        local_patient_id: Some(local_id.into()),
        family_name: None,
        given_name: None,
        date_of_birth: None,
        sex: None,
        postcode: None,
        address_line: None,
    }
}

/// What each documented line means.
fn documented_events() -> Vec<ClinicalEvent> {
    let adt = ClinicalEvent::Adt(AdtEvent {
        provenance: provenance(
            "0b6c3b0e-6f1a-4a55-9a52-6a3f7f0d2c11",
            at(2026, 3, 15, 14, 30, 0),
            at(2026, 3, 15, 14, 31, 7) + TimeDelta::milliseconds(250),
            "RR8",
            "PAS",
        ),
        patient: PatientIdentity {
            family_name: Some("Example".into()),
            given_name: Some("Alex".into()),
            date_of_birth: Some(day(1970, 3, 14)),
            sex: Some(AdministrativeSex::Female),
            postcode: Some("LS6 2QT".into()),
            address_line: Some("12 Church Lane".into()),
            ..patient("H1234567")
        },
        event_type: AdtEventType::Admit,
        patient_class: Some(PatientClass::Inpatient),
        location_code: Some("W12".into()),
        treatment_function_code: Some("300".into()),
    });
    let heart_rate = ClinicalEvent::Observation(ObservationEvent {
        provenance: provenance(
            "5d2a7c1e-3b7f-4e1a-8c55-0f6b2d9e4a31",
            at(2026, 3, 15, 15, 2, 0),
            at(2026, 3, 15, 15, 4, 30),
            "RR8",
            "LIMS",
        ),
        patient: patient("H1234567"),
        code_system: ObservationCodeSystem::Loinc,
        code: "8867-4".into(),
        display: "Heart rate".into(),
        value: Some(72.0),
        unit: Some("/min".into()),
        comment: None,
        interpretation: Some(Interpretation::Normal),
        value_decimal: None,
        reference_range: None,
        interpretation_codes: None,
    });
    let blood_pressure_v1 = ClinicalEvent::Observation(ObservationEvent {
        provenance: provenance(
            "8f14e45f-ceea-467f-a8a1-2f9c1b7d3e60",
            at(2026, 3, 15, 14, 30, 0),
            at(2026, 3, 15, 14, 31, 0),
            "RR801",
            "OBS",
        ),
        patient: PatientIdentity { nhs_number: None, sex: Some(AdministrativeSex::Male), ..patient("H7654321") },
        code_system: ObservationCodeSystem::SnomedCt,
        code: "271649006".into(),
        display: "Systolic blood pressure".into(),
        value: Some(128.5),
        unit: Some("mm[Hg]".into()),
        comment: None,
        interpretation: None,
        value_decimal: None,
        reference_range: None,
        interpretation_codes: None,
    });
    let diagnosis = ClinicalEvent::Diagnosis(DiagnosisEvent {
        provenance: provenance(
            "c3a1e7d2-9b4f-4d6a-b2e8-7f1c0a5d3b94",
            at(2026, 3, 16, 9, 0, 0),
            at(2026, 3, 16, 11, 45, 0),
            "RR8",
            "CODING",
        ),
        patient: PatientIdentity { date_of_birth: Some(day(1970, 3, 14)), ..patient("H1234567") },
        code_system: DiagnosisCodeSystem::Icd10,
        code: "E11.9".into(),
        display: "Type 2 diabetes mellitus without complications".into(),
        is_primary: true,
        onset_date: Some(day(2019, 6, 1)),
    });
    let consent = ClinicalEvent::Consent(ConsentEvent {
        event_id: Uuid::parse_str("1e9d4c2b-7a3f-4b8e-9d6c-5a2f8e1b7c03").unwrap(),
        effective_at: at(2026, 3, 1, 0, 0, 0),
        effective_until: None,
        recorded_at: at(2026, 3, 2, 10, 15, 0),
        source_organisation: "B86001".into(),
        nhs_number: test_patient(),
        scope: ConsentScope::Study("IRAS-312456".into()),
        deny: true,
        purposes: vec!["study:IRAS-312456".into()],
    });
    let limited_consent = ClinicalEvent::Consent(ConsentEvent {
        event_id: Uuid::parse_str("5b0e7c1d-2f4a-4c8e-8d3b-9a6f1e2c7d40").unwrap(),
        effective_at: at(2026, 3, 1, 0, 0, 0),
        effective_until: Some(at(2026, 9, 1, 0, 0, 0)),
        recorded_at: at(2026, 3, 2, 10, 15, 0),
        source_organisation: "B86001".into(),
        nhs_number: test_patient(),
        scope: ConsentScope::Study("IRAS-312456".into()),
        deny: false,
        purposes: Vec::new(),
    });
    vec![adt, heart_rate, blood_pressure_v1, diagnosis, consent, limited_consent]
}

#[test]
fn each_documented_line_gives_its_event() {
    let lines = documented_lines();
    let expected = documented_events();
    assert_eq!(lines.len(), expected.len(), "one example per subject and version");
    for (line, event) in lines.iter().zip(expected) {
        assert_eq!(parse(line.as_bytes()), Ok(event), "{line}");
    }
    let versions: Vec<(String, Option<u32>)> = lines
        .iter()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).unwrap();
            (json["subject"].as_str().unwrap().to_owned(), json["version"].as_u64().map(|v| v as u32))
        })
        .collect();
    for (subject, version) in [
        ("adt", Some(1)),
        ("observation", None),
        ("observation", Some(1)),
        ("diagnosis", Some(1)),
        ("consent", Some(1)),
        ("consent", Some(2)),
    ] {
        assert!(versions.contains(&(subject.to_owned(), version)), "{subject} {version:?}");
    }
}

#[test]
fn observation_v1_and_v2_lines() {
    let [_, heart_rate, blood_pressure_v1, ..] = documented_lines()[..] else { panic!() };
    // The newest version, named explicitly, is the same as no version.
    let v2 = heart_rate.replacen(r#""subject": "observation", "#, r#""subject": "observation", "version": 2, "#, 1);
    assert_eq!(parse(v2.as_bytes()), parse(heart_rate.as_bytes()));
    assert!(parse(heart_rate.as_bytes()).is_ok());

    // A v1 line gets no interpretation, and the v2 field is unknown to v1.
    let Ok(ClinicalEvent::Observation(event)) = parse(blood_pressure_v1.as_bytes()) else { panic!() };
    assert_eq!(event.interpretation, None);
    let with_interpretation =
        blood_pressure_v1.replacen(r#""comment": null"#, r#""comment": null, "interpretation": "HIGH""#, 1);
    let error = parse(with_interpretation.as_bytes()).unwrap_err();
    assert_eq!(error.field, "record");
    assert_eq!(error.message, "has a key that is not a field of observation v1");

    // The same v1 line read the way a consumer reads a v1 message: encode with v1, decode
    // (resolving to v2) and read the record back. The result is the same event.
    let catalogue = Catalogue::embedded();
    let json = parse_json(blood_pressure_v1.as_bytes()).unwrap();
    let (writer, record) = writer_and_record(&json, catalogue).unwrap();
    assert_eq!(writer.version(), 1);
    let value =
        Converter::new(writer).record_fields(record, record_schema(writer).unwrap(), &Path::Record, None).unwrap();
    let bytes = Encoder::new(catalogue, Framing::SingleObject).encode(writer, &value).unwrap();
    let decoded = Decoder::new(catalogue).decode(&bytes).unwrap();
    assert_eq!(decoded.reader.version(), 4);
    assert_eq!(decoded.value, to_newest(value, writer, catalogue).unwrap());
    assert_eq!(ClinicalEvent::from_record("observation", &decoded.value), Ok(ClinicalEvent::Observation(event)));
}

#[test]
fn timestamps_and_dates_in_either_form_give_the_same_event() {
    let adt = documented_lines()[0];
    let expected = parse(adt.as_bytes()).unwrap();
    for occurred_at in [
        "1773585000000000",
        r#""2026-03-15T15:30:00+01:00""#,
        r#""2026-03-15T09:30:00-05:00""#,
        r#""2026-03-15T14:30:00.000000Z""#,
        r#""2026-03-15t14:30:00z""#,
    ] {
        let line = adt.replacen(r#""2026-03-15T14:30:00Z""#, occurred_at, 1);
        assert_ne!(line, adt);
        assert_eq!(parse(line.as_bytes()), Ok(expected.clone()), "{occurred_at}");
    }
    let line = adt.replacen(r#""1970-03-14""#, "72", 1);
    assert_eq!(parse(line.as_bytes()), Ok(expected.clone()));
    let line = adt.replacen(r#""recorded_at": "2026-03-15T14:31:07.250Z""#, r#""recorded_at": 1773585067250000"#, 1);
    assert_eq!(parse(line.as_bytes()), Ok(expected.clone()));

    // Absent nullable keys are null; `purposes` takes its default `[]`.
    let Ok(ClinicalEvent::Consent(consent)) =
        parse(documented_lines()[4].replacen(r#", "purposes": ["study:IRAS 312456"]"#, "", 1).as_bytes())
    else {
        panic!()
    };
    assert!(consent.purposes.is_empty());
}

/// `(line, field, a distinctive part of the line that the error must not repeat)`.
fn refused_lines() -> Vec<(Vec<u8>, &'static str, &'static str)> {
    let lines = documented_lines();
    let (adt, consent) = (lines[0], lines[4]);
    let edit = |from: &str, to: &str| {
        let line = adt.replacen(from, to, 1);
        assert_ne!(line, adt, "{from}");
        line.into_bytes()
    };
    let edit_consent = |from: &str, to: &str| {
        let line = consent.replacen(from, to, 1);
        assert_ne!(line, consent, "{from}");
        line.into_bytes()
    };
    vec![
        (edit(r#""subject": "adt""#, r#""subject": "admissionsZQ""#), "subject", "admissionsZQ"),
        (edit(r#""subject": "adt""#, r#""subject": ["adt"]"#), "subject", "adt\""),
        (edit(r#""version": 1"#, r#""version": 977"#), "version", "977"),
        (edit(r#""version": 1"#, r#""version": 0"#), "version", "zzz"),
        (edit(r#""version": 1"#, r#""version": 1.5"#), "version", "1.5"),
        (edit(r#""version": 1"#, r#""version": 1, "sourceZQ": "x""#), "", "sourceZQ"),
        (edit(r#""version": 1"#, r#""version": 1, "version": 1"#), "version", "zzz"),
        (edit(r#""record": {"#, r#""record": {"wardZQ": "W12", "#), "record", "wardZQ"),
        (edit(r#""record": {"#, r#""record": {"nhs_number": "9434765919", "#), "record.nhs_number", "9434765919"),
        (edit(r#""local_patient_id": "H1234567", "#, ""), "record.local_patient_id", "zzz"),
        (edit(r#""local_patient_id": "H1234567""#, r#""local_patient_id": null"#), "record.local_patient_id", "zzz"),
        (edit(r#""source_system": "PAS""#, r#""source_system": 4242"#), "record.source_system", "4242"),
        (edit(r#""2026-03-15T14:30:00Z""#, "1773585000000000.5"), "record.occurred_at", "1773585000000000"),
        (edit(r#""2026-03-15T14:30:00Z""#, "99999999999999999999"), "record.occurred_at", "99999999999999999999"),
        (edit(r#""1970-03-14""#, "2147483648"), "record.date_of_birth", "2147483648"),
        (edit(r#""1970-03-14""#, r#""14/03/1970""#), "record.date_of_birth", "14/03"),
        (edit(r#""1970-03-14""#, r#""1970-02-30""#), "record.date_of_birth", "02-30"),
        (edit(r#""FEMALE""#, r#""FEMALEZQ""#), "record.sex", "FEMALEZQ"),
        (edit(r#""FEMALE""#, r#""female""#), "record.sex", "female"),
        (edit("6a3f7f0d2c11", "6a3f7f0dZQ11"), "record.event_id", "6a3f7f0d"),
        (
            edit("0b6c3b0e-6f1a-4a55-9a52-6a3f7f0d2c11", "0b6c3b0e6f1a4a559a526a3f7f0d2c11"),
            "record.event_id",
            "0b6c3b0e",
        ),
        (edit(r#""2026-03-15T14:30:00Z""#, r#""2026-03-15T14:37:21""#), "record.occurred_at", "14:37:21"),
        (edit(r#""2026-03-15T14:30:00Z""#, r#""2026-03-15T14:37:21.1234567Z""#), "record.occurred_at", "1234567"),
        (edit(r#""2026-03-15T14:30:00Z""#, r#""2036-03-15T14:30:00Z""#), "record.occurred_at", "2036"),
        (edit(r#""nhs_number": "9990000018""#, r#""nhs_number": "9990000017""#), "record.nhs_number", "9990000017"),
        (edit(r#""nhs_number": "9990000018""#, r#""nhs_number": "99900000ZQ""#), "record.nhs_number", "ZQ"),
        (edit(r#""300""#, r#""30X""#), "record.treatment_function_code", "30X"),
        (edit(r#""LS6 2QT""#, r#""QQQ QQQ""#), "record.postcode", "QQQ"),
        (edit(r#""RR8""#, r#""rr8zq""#), "record.source_organisation", "rr8zq"),
        (edit_consent(r#""STUDY""#, r#""TYPE_1_OPT_OUT""#), "record.study_id", "312456"),
        (edit_consent(r#"["study:IRAS 312456"]"#, r#"["research", 7777]"#), "record.purposes[1]", "7777"),
        (edit_consent(r#"["study:IRAS 312456"]"#, r#""researchZQ""#), "record.purposes", "researchZQ"),
        // A study change limited to purposes that leave its own study out, an unknown purpose,
        // and a study id that is none: refused, the field named.
        (edit_consent(r#"["study:IRAS 312456"]"#, r#"["research"]"#), "record.purposes", "zzz"),
        (edit_consent(r#"["study:IRAS 312456"]"#, r#"["marketingZQ"]"#), "record.purposes", "marketingZQ"),
        (edit_consent(r#""IRAS 312456""#, r#""IRAS/312456""#), "record.study_id", "IRAS/312456"),
        (adt.as_bytes()[..adt.find("Example").unwrap() + 4].to_vec(), "", "Exam"),
        (br#"{"subject": admissionsZQ}"#.to_vec(), "", "admissionsZQ"),
        (br#"{"subject": "adt", "record": {"family_name": "Zq\xffx"}}"#.to_vec(), "", "Zq"),
        (b"\xffZQ".to_vec(), "", "ZQ"),
        (b"".to_vec(), "", "zzz"),
        (br#"["adtZQ"]"#.to_vec(), "", "adtZQ"),
        (br#"{"subject": "adt"}"#.to_vec(), "record", "zzz"),
        (br#"{"subject": "adt", "record": "ZQ"}"#.to_vec(), "record", "ZQ"),
        (br#"{"record": {}}"#.to_vec(), "subject", "zzz"),
    ]
}

#[test]
fn refused_lines_name_the_field_but_never_a_value() {
    for (line, field, secret) in refused_lines() {
        let shown = String::from_utf8_lossy(&line).into_owned();
        assert!(shown.contains(secret) || secret == "zzz", "the secret is in the line: {shown}");
        let error = parse(&line).expect_err(&shown);
        assert_eq!(error.field, field, "{shown}: {error}");
        assert!(!error.field.contains(secret) && !error.message.contains(secret), "{shown}: {error}");
        assert!(!error.message.is_empty());
    }
}

#[test]
fn messages_say_what_is_wrong() {
    let adt = documented_lines()[0];
    let message = |from: &str, to: &str| parse(adt.replacen(from, to, 1).as_bytes()).unwrap_err().to_string();
    assert_eq!(
        message(r#""nhs_number": "9990000018""#, r#""nhs_number": "9990000017""#),
        "`record.nhs_number`: the NHS number's check digit is wrong"
    );
    assert_eq!(
        message(r#""FEMALE""#, r#""F""#),
        "`record.sex`: is not one of the symbols FEMALE, MALE, OTHER, UNKNOWN"
    );
    assert_eq!(
        message(r#""2026-03-15T14:30:00Z""#, "1773585000000000.5"),
        "`record.occurred_at`: must be a whole number, not a fraction"
    );
    assert_eq!(message(r#""version": 1"#, r#""version": 3"#), "`version`: is not a version of `adt` (1 to 2)");
    assert_eq!(
        message(r#""subject": "adt""#, r#""subject": "x""#),
        "`subject`: is not one of the subjects adt, consent, diagnosis, observation"
    );
    assert_eq!(
        message(r#""source_system": "PAS""#, r#""source_system": true"#),
        "`record.source_system`: must be a string, not a boolean"
    );
    let truncated = parse(&adt.as_bytes()[..40]).unwrap_err().to_string();
    assert_eq!(truncated, "``: is not valid JSON: it ends before the JSON value does (line 1, column 40)");
    let invalid = parse(br#"{"subject": "adt",, "record": {}}"#).unwrap_err().to_string();
    assert_eq!(invalid, "``: is not valid JSON (line 1, column 19)");
    let not_utf8 = parse(b"{\"subject\": \"a\xe9\"}").unwrap_err().to_string();
    assert_eq!(not_utf8, "``: is not valid UTF-8 (line 1, column 15)");
}

/// The writer-schema value of `record` under a one-off schema.
fn convert(schema: &str, record: &str) -> Result<Value, LineError> {
    let catalogue = Catalogue::from_files([("t".into(), "v1".into(), schema.into())]).unwrap();
    let version = catalogue.version("t", 1).unwrap();
    let json = parse_json(record.as_bytes()).unwrap();
    let Json::Object(entries) = &json else { panic!("not an object") };
    Converter::new(version).record_fields(entries, record_schema(version).unwrap(), &Path::Record, None)
}

#[test]
fn references_nested_records_and_wide_unions() {
    let schema = r#"{"type": "record", "name": "T", "namespace": "n", "fields": [
        {"name": "a", "type": {"type": "enum", "name": "E", "symbols": ["X", "Y"]}},
        {"name": "b", "type": ["null", "E"], "default": null},
        {"name": "c", "type": {"type": "array", "items":
            {"type": "record", "name": "Inner", "fields": [{"name": "d", "type": "long"}]}}},
        {"name": "w", "type": ["null", "string", "long"], "default": null}
    ]}"#;
    let record = |fields: Vec<(&str, Value)>| {
        Value::Record(fields.into_iter().map(|(name, value)| (name.to_owned(), value)).collect())
    };
    assert_eq!(
        convert(schema, r#"{"c": [{"d": 1}, {"d": -2}], "b": "Y", "a": "X"}"#),
        Ok(record(vec![
            ("a", Value::Enum(0, "X".into())),
            ("b", Value::Union(1, Box::new(Value::Enum(1, "Y".into())))),
            ("c", Value::Array(vec![record(vec![("d", Value::Long(1))]), record(vec![("d", Value::Long(-2))])])),
            ("w", Value::Union(0, Box::new(Value::Null))),
        ]))
    );
    let refused = |line: &str| convert(schema, line).unwrap_err();
    assert_eq!(
        refused(r#"{"a": "X", "b": "Z", "c": []}"#),
        LineError::new("record.b", "is not one of the symbols X, Y")
    );
    assert_eq!(
        refused(r#"{"a": "X", "c": [{"d": 1}, {"dd": 2}]}"#),
        LineError::new("record.c[1]", "has a key that is not a field of the `Inner` record")
    );
    assert_eq!(refused(r#"{"a": "X", "c": [{}]}"#), LineError::new("record.c[0].d", "is required"));
    assert_eq!(
        refused(r#"{"a": "X", "c": [{"d": 1.5}]}"#),
        LineError::new("record.c[0].d", "must be a whole number, not a fraction")
    );
    assert_eq!(refused(r#"{"a": "X", "c": {}}"#), LineError::new("record.c", "must be an array, not an object"));
    assert_eq!(refused(r#"{"a": "X", "c": [], "w": "s"}"#).field, "record.w", "ambiguous without a branch name");
    assert_eq!(refused(r#"{"c": []}"#), LineError::new("record.a", "is required"));
}

/// How a test line writes what the Avro value leaves open.
#[derive(Debug, Clone)]
struct Style {
    /// 0: microseconds; 1: RFC 3339 in UTC; 2: RFC 3339 at +05:30.
    timestamps: u8,
    dates_as_days: bool,
    leave_out_nulls: bool,
    name_the_version: bool,
    /// Write an observation without interpretation as version 1.
    observation_as_v1: bool,
}

fn style() -> impl Strategy<Value = Style> {
    (0u8..3, any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(timestamps, dates_as_days, leave_out_nulls, name_the_version, observation_as_v1)| Style {
            timestamps,
            dates_as_days,
            leave_out_nulls,
            name_the_version,
            observation_as_v1,
        },
    )
}

/// The record in subject JSON form: a small serialiser for tests.
fn to_line(record: &SubjectRecord, style: &Style) -> String {
    fn json(value: &Value, style: &Style) -> serde_json::Value {
        match value {
            Value::Null => serde_json::Value::Null,
            Value::Boolean(b) => (*b).into(),
            Value::Double(x) => (*x).into(),
            Value::String(s) | Value::Enum(_, s) => s.clone().into(),
            Value::Uuid(uuid) => uuid.hyphenated().to_string().into(),
            decimal @ Value::Decimal(_) => ResultDecimal::from_avro(decimal).unwrap().to_string().into(),
            Value::Union(_, inner) => json(inner, style),
            Value::Array(items) => items.iter().map(|item| json(item, style)).collect(),
            Value::TimestampMicros(micros) => {
                let at = DateTime::from_timestamp_micros(*micros).unwrap();
                match style.timestamps {
                    0 => (*micros).into(),
                    1 => at.to_rfc3339_opts(SecondsFormat::AutoSi, true).into(),
                    _ => {
                        let india = FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
                        at.with_timezone(&india).to_rfc3339_opts(SecondsFormat::AutoSi, false).into()
                    }
                }
            }
            Value::Date(days) if style.dates_as_days => (*days).into(),
            Value::Date(days) => {
                (NaiveDate::default() + TimeDelta::days(i64::from(*days))).format("%Y-%m-%d").to_string().into()
            }
            Value::Record(fields) => fields
                .iter()
                .filter(|(_, v)| {
                    !(style.leave_out_nulls && matches!(v, Value::Union(_, inner) if **inner == Value::Null))
                })
                .map(|(name, v)| (name.clone(), json(v, style)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
            other => panic!("no JSON form for {other:?}"),
        }
    }
    let mut record_json = json(record.value(), style);
    let mut version = record.version();
    let added_since_v1 = ["interpretation", "value_decimal", "reference_range", "interpretation_codes"];
    if record.subject() == "observation"
        && style.observation_as_v1
        && added_since_v1.iter().all(|name| record_json[*name].is_null())
        // v1 requires the local id (optional from v4).
        && !record_json["local_patient_id"].is_null()
    {
        for name in added_since_v1 {
            record_json.as_object_mut().unwrap().remove(name);
        }
        version = 1;
    }
    let mut line = serde_json::Map::new();
    line.insert("subject".into(), record.subject().into());
    if style.name_the_version || version != record.version() {
        line.insert("version".into(), version.into());
    }
    line.insert("record".into(), record_json);
    serde_json::Value::Object(line).to_string()
}

/// Plausible and implausible JSON for the fields of a record.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let interesting = prop::sample::select(vec![
        "FEMALE",
        "LOINC",
        "STUDY",
        "ADMIT",
        "9990000018",
        "8867-4",
        "E11.9",
        "RR8",
        "LS6 2QT",
        "2026-03-15T14:30:00Z",
        "2026-03-15T14:30:00",
        "1970-03-14",
        "0b6c3b0e-6f1a-4a55-9a52-6a3f7f0d2c11",
        "",
    ]);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(Into::into),
        any::<i64>().prop_map(Into::into),
        any::<u64>().prop_map(Into::into),
        any::<f64>().prop_map(|x| serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, Into::into)),
        "\\PC{0,12}".prop_map(Into::into),
        interesting.prop_map(Into::into),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Into::into),
            prop::collection::vec((field_name(), inner), 0..5)
                .prop_map(|entries| serde_json::Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    let catalogue = Catalogue::embedded();
    let mut names: Vec<String> = catalogue
        .subject_names()
        .flat_map(|subject| catalogue.versions(subject).unwrap())
        .flat_map(|version| match version.schema() {
            Schema::Record(record) => record.fields.iter().map(|f| f.name.clone()).collect(),
            _ => Vec::new(),
        })
        .collect();
    names.sort();
    names.dedup();
    prop_oneof![4 => prop::sample::select(names), 1 => "[a-z_]{1,12}"]
}

proptest! {
    #[test]
    fn valid_events_round_trip_through_lines(event in arbitrary::valid_event(), style in style()) {
        let line = to_line(&event.clone().validate(arbitrary::now()).unwrap().into_record(), &style);
        prop_assert_eq!(parse(line.as_bytes()), Ok(event), "{}", line);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes: Vec<u8>) {
        let _ = parse(&bytes);
    }

    #[test]
    fn arbitrary_records_never_panic(
        subject in prop_oneof![
            prop::sample::select(vec!["adt", "observation", "diagnosis", "consent"]).prop_map(String::from),
            "[a-z]{0,8}",
        ],
        version in proptest::option::of(prop_oneof![(0i64..4).prop_map(serde_json::Value::from), any_json()]),
        fields in prop::collection::vec((field_name(), any_json()), 0..24),
        extra in proptest::option::of(any_json()),
        base in prop::sample::select(vec![0usize, 1, 2, 3, 4]),
    ) {
        // Start from a documented line of some subject and overwrite or add fields, so that
        // many records get past the first checks.
        let documented: serde_json::Value = serde_json::from_str(documented_lines()[base]).unwrap();
        let mut record = documented["record"].as_object().unwrap().clone();
        for (name, value) in fields {
            record.insert(name, value);
        }
        let mut line = serde_json::json!({"subject": subject, "record": record});
        if let Some(version) = version {
            line["version"] = version;
        }
        if let Some(extra) = extra {
            line["extra"] = extra;
        }
        let _ = parse(line.to_string().as_bytes());
    }
}

#[test]
fn a_consent_line_may_carry_the_end_of_its_period() {
    let line = br#"{"subject": "consent", "version": 2, "record": {"event_id": "1e9d4c2b-7a3f-4b8e-9d6c-5a2f8e1b7c03", "effective_at": "2026-03-01T00:00:00Z", "effective_until": "2026-09-01T00:00:00Z", "recorded_at": "2026-03-02T10:15:00Z", "source_organisation": "B86001", "nhs_number": "9990000018", "scope": "STUDY", "study_id": "IRAS 312456", "decision": "PERMIT"}}"#;
    let ClinicalEvent::Consent(consent) = parse(line).unwrap() else { panic!("a consent line") };
    assert_eq!(consent.effective_until, Some(at(2026, 9, 1, 0, 0, 0)));
    assert_eq!(consent.scope, ConsentScope::Study("IRAS-312456".into()));
    // Version 1 lines, and version 2 lines without it, last until a later change.
    for version in ["1", "2"] {
        let line = format!(
            r#"{{"subject": "consent", "version": {version}, "record": {{"event_id": "1e9d4c2b-7a3f-4b8e-9d6c-5a2f8e1b7c03", "effective_at": "2026-03-01T00:00:00Z", "recorded_at": "2026-03-02T10:15:00Z", "source_organisation": "X26", "nhs_number": "9990000018", "scope": "NATIONAL_DATA_OPT_OUT", "decision": "DENY"}}}}"#
        );
        let ClinicalEvent::Consent(consent) = parse(line.as_bytes()).unwrap() else { panic!("a consent line") };
        assert_eq!(consent.effective_until, None, "version {version}");
    }
    // A period that ends before it starts is refused, naming the field.
    let backwards = String::from_utf8(line.to_vec()).unwrap().replace("2026-09-01", "2026-02-01");
    let error = parse(backwards.as_bytes()).unwrap_err().to_string();
    assert!(error.contains("effective_until"), "{error}");
}
