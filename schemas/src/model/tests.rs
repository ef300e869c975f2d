//! The schema check: the model against the `.avsc` files it writes and reads.

use apache_avro::{Schema, schema::RecordSchema, types::Value};
use chrono::{DateTime, NaiveDate};
use uuid::Uuid;

use super::write::Datum;
use super::*;
use crate::Catalogue;

mod reading;

/// 2026-03-15T14:30:00Z plus `seconds`.
fn at(seconds: i64) -> DateTime<chrono::Utc> {
    DateTime::from_timestamp(1_773_585_000 + seconds, 0).unwrap()
}

fn provenance() -> Provenance {
    Provenance {
        event_id: Uuid::from_u128(0x0b6c_3b0e_6f1a_4a55_9a52_6a3f_7f0d_2c11),
        occurred_at: at(0),
        recorded_at: at(67),
        source_organisation: "RR8".into(),
        source_system: "LIMS".into(),
    }
}

fn patient() -> PatientIdentity {
    PatientIdentity {
        nhs_number: Some(NhsNumber::parse("9434765919").unwrap()),
        local_patient_id: Some("H1234567".into()),
        family_name: Some("Example".into()),
        given_name: Some("Alex".into()),
        date_of_birth: NaiveDate::from_ymd_opt(1970, 3, 14),
        sex: Some(AdministrativeSex::Female),
        postcode: Some("LS6 2QT".into()),
        address_line: None,
    }
}

/// One event of each subject with every field given a value (no `None`, no empty list).
pub(super) fn fully_populated() -> Vec<ClinicalEvent> {
    let adt = ClinicalEvent::Adt(AdtEvent {
        provenance: provenance(),
        patient: PatientIdentity { address_line: Some("12 Church Lane".into()), ..patient() },
        event_type: AdtEventType::Transfer,
        patient_class: Some(PatientClass::DayCase),
        location_code: Some("W12".into()),
        treatment_function_code: Some("300".into()),
    });
    let observation = ClinicalEvent::Observation(ObservationEvent {
        provenance: provenance(),
        patient: patient(),
        code_system: ObservationCodeSystem::Loinc,
        code: "2823-3".into(),
        display: "Potassium".into(),
        value: Some(5.9),
        unit: Some("mmol/L".into()),
        comment: Some("haemolysed".into()),
        interpretation: Some(Interpretation::High),
        value_decimal: ResultDecimal::parse("5.9"),
        reference_range: Some(ReferenceRange {
            low: ResultDecimal::parse("3.5"),
            high: ResultDecimal::parse("5.3"),
            text: Some("3.5-5.3".into()),
        }),
        interpretation_codes: Some(vec!["H".into(), "A".into()]),
    });
    let diagnosis = ClinicalEvent::Diagnosis(DiagnosisEvent {
        provenance: provenance(),
        patient: patient(),
        code_system: DiagnosisCodeSystem::SnomedCt,
        code: "44054006".into(),
        display: "Type 2 diabetes mellitus".into(),
        is_primary: true,
        onset_date: NaiveDate::from_ymd_opt(2019, 6, 1),
    });
    let consent = ClinicalEvent::Consent(ConsentEvent {
        event_id: Uuid::from_u128(7),
        effective_at: at(0),
        effective_until: Some(at(86_400)),
        recorded_at: at(60),
        source_organisation: "B86001".into(),
        nhs_number: NhsNumber::parse("9434765919").unwrap(),
        scope: ConsentScope::Study("IRAS-312456".into()),
        deny: true,
        purposes: vec!["research".into(), "study:IRAS-312456".into()],
    });
    vec![adt, observation, diagnosis, consent]
}

fn record_schema(schema: &Schema) -> &RecordSchema {
    match schema {
        Schema::Record(record) => record,
        _ => panic!("not a record schema"),
    }
}

fn names(record: &RecordSchema) -> Vec<&str> {
    record.fields.iter().map(|f| f.name.as_str()).collect()
}

fn model_fields(event: &ClinicalEvent) -> Vec<(&'static str, Datum)> {
    match event {
        ClinicalEvent::Adt(e) => e.fields(),
        ClinicalEvent::Observation(e) => e.fields(),
        ClinicalEvent::Diagnosis(e) => e.fields(),
        ClinicalEvent::Consent(e) => e.fields(),
    }
}

/// Checks that the model's fields are exactly the schema's, in order, nested records too.
fn same_fields(label: &str, path: &str, model: &[(&'static str, Datum)], schema: &RecordSchema) {
    let model_names: Vec<&str> = model.iter().map(|(name, _)| *name).collect();
    assert_eq!(model_names, names(schema), "{label}{path}: the model's fields and the schema's differ");
    for ((name, datum), field) in model.iter().zip(&schema.fields) {
        let inner = match &field.schema {
            Schema::Union(union) => union.variants().iter().find(|v| !matches!(v, Schema::Null)),
            other => Some(other),
        };
        if let (Datum::Record(nested), Some(Schema::Record(nested_schema))) = (datum, inner) {
            same_fields(label, &format!("{path}.{name}"), nested, nested_schema);
        }
    }
}

#[test]
fn every_subject_writes_exactly_the_fields_of_its_newest_schema_version() {
    let catalogue = Catalogue::embedded();
    let events = fully_populated();
    let subjects: Vec<&str> = events.iter().map(ClinicalEvent::subject).collect();
    assert_eq!(subjects, EVENT_SUBJECTS, "one example per event subject");
    for event in events {
        let latest = catalogue.latest(event.subject()).unwrap();
        assert_eq!(event.latest_version().fingerprint(), latest.fingerprint());
        let schema = record_schema(latest.schema());
        same_fields(&latest.label(), "", &model_fields(&event), schema);
        assert_eq!(event.field_names(), names(schema));

        let value = event.to_avro();
        assert!(value.validate(latest.schema()), "{}: the record does not validate", latest.label());
        // Resolution changes nothing: every union branch and enum index is the schema's.
        assert_eq!(value.clone().resolve(latest.schema()).unwrap(), value, "{}", latest.label());
        let Value::Record(fields) = &value else { panic!("not a record") };
        for (name, field) in fields {
            assert_ne!(field, &Value::Union(0, Box::new(Value::Null)), "{}: {name} is not populated", latest.label());
        }
        assert_eq!(ClinicalEvent::from_record(event.subject(), &value), Ok(event.clone()), "{}", latest.label());
    }
}

#[test]
fn every_catalogued_version_is_written_with_its_own_fields_and_read_back() {
    let catalogue = Catalogue::embedded();
    for event in fully_populated() {
        for version in catalogue.versions(event.subject()).unwrap() {
            let value = event.to_avro_as(version).unwrap_or_else(|e| panic!("{e}"));
            assert!(value.validate(version.schema()), "{}: the record does not validate", version.label());
            let Value::Record(fields) = &value else { panic!("not a record") };
            let written: Vec<&str> = fields.iter().map(|(name, _)| name.as_str()).collect();
            assert_eq!(written, names(record_schema(version.schema())), "{}", version.label());
            let read = ClinicalEvent::from_record_of(version, &value).unwrap_or_else(|e| panic!("{e}"));
            // What the version has survives; what it lacks reads as the newest schema's default.
            let newest = event.to_avro();
            let Value::Record(read_fields) = read.to_avro() else { panic!() };
            let Value::Record(newest_fields) = newest else { panic!() };
            for ((name, got), (_, full)) in read_fields.iter().zip(&newest_fields) {
                if written.contains(&name.as_str()) {
                    assert_eq!(got, full, "{} {name}", version.label());
                }
            }
        }
    }
    let adt = &fully_populated()[0];
    let consent_v2 = catalogue.version("consent", 2).unwrap();
    assert!(matches!(adt.to_avro_as(consent_v2), Err(WriteError::OtherSubject { .. })));
}

/// Every Avro enum in the newest schema versions, by name, with its symbols.
fn schema_enums() -> Vec<(String, Vec<String>)> {
    fn walk(schema: &Schema, found: &mut Vec<(String, Vec<String>)>) {
        match schema {
            Schema::Enum(e) => found.push((e.name.name().to_owned(), e.symbols.clone())),
            Schema::Union(union) => union.variants().iter().for_each(|v| walk(v, found)),
            Schema::Array(array) => walk(&array.items, found),
            Schema::Record(record) => record.fields.iter().for_each(|f| walk(&f.schema, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    for subject in EVENT_SUBJECTS {
        walk(Catalogue::embedded().latest(subject).unwrap().schema(), &mut found);
    }
    found.sort();
    found.dedup();
    found
}

fn one_to_one<T: AvroEnum>(enums: &[(String, Vec<String>)]) -> String {
    let symbols = &enums
        .iter()
        .find(|(name, _)| name == T::AVRO_NAME)
        .unwrap_or_else(|| panic!("no enum {} in the schemas", T::AVRO_NAME))
        .1;
    let mut model: Vec<&str> = T::SYMBOLS.iter().map(|(_, symbol)| *symbol).collect();
    let mut schema: Vec<&str> = symbols.iter().map(String::as_str).collect();
    model.sort();
    schema.sort();
    assert_eq!(model, schema, "{}: the Rust variants and the schema's symbols differ", T::AVRO_NAME);
    for (index, (variant, symbol)) in T::SYMBOLS.iter().enumerate() {
        assert!(T::SYMBOLS[..index].iter().all(|(v, _)| v != variant), "{}: a variant twice", T::AVRO_NAME);
        assert_eq!(T::from_symbol(symbol), Some(*variant));
        assert_eq!(variant.symbol(), *symbol);
    }
    T::AVRO_NAME.to_owned()
}

#[test]
fn every_enum_maps_its_variants_one_to_one_onto_the_schema_symbols() {
    let enums = schema_enums();
    let mut checked = vec![
        one_to_one::<AdministrativeSex>(&enums),
        one_to_one::<AdtEventType>(&enums),
        one_to_one::<PatientClass>(&enums),
        one_to_one::<ObservationCodeSystem>(&enums),
        one_to_one::<Interpretation>(&enums),
        one_to_one::<DiagnosisCodeSystem>(&enums),
        one_to_one::<ConsentScopeKind>(&enums),
        one_to_one::<ConsentDecision>(&enums),
    ];
    checked.sort();
    let all: Vec<String> = enums.into_iter().map(|(name, _)| name).collect();
    assert_eq!(checked, all, "every enum of the schemas has a Rust type");
}

#[test]
fn a_schema_field_the_model_does_not_know_fails_the_write() {
    let v1 = include_str!("../../avro/diagnosis/v1.avsc");
    let mut json: serde_json::Value = serde_json::from_str(v1).unwrap();
    json["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "laterality", "type": ["null", "string"], "default": null}));
    let next = Catalogue::from_files([
        ("diagnosis".to_owned(), "v1".to_owned(), v1.to_owned()),
        ("diagnosis".to_owned(), "v2".to_owned(), json.to_string()),
    ])
    .unwrap();
    let error = fully_populated()[2].to_avro_as(next.version("diagnosis", 2).unwrap()).unwrap_err();
    assert_eq!(error.to_string(), "diagnosis v2: the model has no value for field laterality");
}

#[test]
fn validation_gives_a_valid_event_whose_record_carries_the_key() {
    let now = at(3_600);
    for event in fully_populated() {
        let key = event.record_key();
        let record = event.clone().validate(now).unwrap_or_else(|e| panic!("{e}")).into_record();
        assert_eq!((record.subject(), record.key()), (event.subject(), key.as_str()));
        assert_eq!(record.version(), event.latest_version().version());
        assert_eq!(record.value(), &event.to_avro());
    }
    let mut bad = fully_populated().remove(2);
    let ClinicalEvent::Diagnosis(diagnosis) = &mut bad else { unreachable!() };
    diagnosis.code = "44054007".into();
    assert_eq!(bad.validate(now).unwrap_err().field, "code");
}
