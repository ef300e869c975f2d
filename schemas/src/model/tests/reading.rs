//! Reading records into the model: forms, errors and consent rules (moved from the producers' `from_record`).

use super::*;

fn field_mut<'v>(record: &'v mut Value, name: &str) -> &'v mut Value {
    let Value::Record(fields) = record else { panic!("not a record") };
    &mut fields.iter_mut().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no field {name}")).1
}

fn observation() -> ClinicalEvent {
    ClinicalEvent::Observation(ObservationEvent {
        provenance: Provenance {
            event_id: Uuid::from_u128(0x0b6c_3b0e_6f1a_4a55_9a52_6a3f_7f0d_2c11),
            occurred_at: DateTime::from_timestamp_micros(1_773_585_000_000_000).unwrap(),
            recorded_at: DateTime::from_timestamp_micros(1_773_585_067_250_000).unwrap(),
            source_organisation: "RR8".into(),
            source_system: "LIMS".into(),
        },
        patient: PatientIdentity {
            nhs_number: Some(NhsNumber::parse("9434765919").unwrap()),
            local_patient_id: Some("H1234567".into()),
            family_name: Some("Example".into()),
            given_name: None,
            date_of_birth: NaiveDate::from_ymd_opt(1970, 3, 14),
            sex: Some(AdministrativeSex::Female),
            postcode: Some("LS6 2QT".into()),
            address_line: None,
        },
        code_system: ObservationCodeSystem::Loinc,
        code: "8867-4".into(),
        display: "Heart rate".into(),
        value: Some(72.0),
        unit: Some("/min".into()),
        comment: None,
        interpretation: Some(Interpretation::Normal),
        value_decimal: ResultDecimal::parse("72"),
        reference_range: Some(ReferenceRange {
            low: ResultDecimal::parse("60"),
            high: ResultDecimal::parse("100"),
            text: Some("60-100".into()),
        }),
        interpretation_codes: Some(vec!["N".into()]),
    })
}

#[test]
fn fields_in_any_order_and_plain_avro_forms_are_read() {
    let event = observation();
    let mut value = event.to_avro();
    let Value::Record(fields) = &mut value else { panic!("not a record") };
    fields.reverse();
    *field_mut(&mut value, "event_id") = Value::String("0b6c3b0e-6f1a-4a55-9a52-6a3f7f0d2c11".into());
    *field_mut(&mut value, "occurred_at") = Value::Long(1_773_585_000_000_000);
    *field_mut(&mut value, "date_of_birth") = Value::Union(1, Box::new(Value::Int(72)));
    *field_mut(&mut value, "comment") = Value::Null;
    assert_eq!(ClinicalEvent::from_record("observation", &value), Ok(event));
}

#[test]
fn errors_name_the_field_and_never_the_value() {
    let record = observation().to_avro();
    let cases: [(&str, Value, &str, Problem); 7] = [
        ("nhs_number", Value::Union(1, Box::new(Value::String("9434765918".into()))), "nhs_number", {
            Problem::NhsNumber(crate::InvalidNhsNumber::CheckDigit)
        }),
        ("sex", Value::Union(1, Box::new(Value::Enum(1, "MALEISH".into()))), "sex", {
            Problem::NotAllowed("FEMALE, MALE, OTHER and UNKNOWN")
        }),
        ("event_id", Value::String("not-a-uuid-X1".into()), "event_id", Problem::Unreadable("UUID")),
        ("occurred_at", Value::TimestampMicros(i64::MAX), "occurred_at", Problem::Unreadable("timestamp")),
        ("date_of_birth", Value::Union(1, Box::new(Value::Date(i32::MAX))), "date_of_birth", {
            Problem::Unreadable("date")
        }),
        ("code", Value::Long(424242), "code", Problem::Unreadable("string")),
        ("display", Value::Union(0, Box::new(Value::Null)), "display", Problem::Unreadable("string")),
    ];
    for (name, bad, field, problem) in cases {
        let mut value = record.clone();
        *field_mut(&mut value, name) = bad;
        let error = ClinicalEvent::from_record("observation", &value).unwrap_err();
        assert_eq!(error, ValidationError::new(field, problem), "{name}");
        for secret in ["9434765918", "MALEISH", "X1", "424242"] {
            assert!(!error.to_string().contains(secret), "{error}");
        }
    }

    let mut missing = record.clone();
    let Value::Record(fields) = &mut missing else { panic!() };
    fields.retain(|(name, _)| name != "code");
    assert_eq!(
        ClinicalEvent::from_record("observation", &missing),
        Err(ValidationError::new("code", Problem::Missing))
    );

    let mut extra = record.clone();
    let Value::Record(fields) = &mut extra else { panic!() };
    fields.push(("ward_round".into(), Value::String("W12".into())));
    assert_eq!(
        ClinicalEvent::from_record("observation", &extra).unwrap_err().field,
        "ward_round",
        "a field without a place in the event is refused, not dropped"
    );

    let mut twice = record.clone();
    let Value::Record(fields) = &mut twice else { panic!() };
    fields.push(("code".into(), Value::String("8867-4".into())));
    assert_eq!(ClinicalEvent::from_record("observation", &twice).unwrap_err().field, "code");

    assert_eq!(
        ClinicalEvent::from_record("vaccination", &record).unwrap_err().field,
        "subject",
        "unknown subjects are refused"
    );
    assert_eq!(
        ClinicalEvent::from_record("observation", &Value::Null),
        Err(ValidationError::new("record", Problem::Unreadable("record")))
    );
    // The record of one subject is not read as another's.
    assert_eq!(ClinicalEvent::from_record("diagnosis", &record).unwrap_err().field, "value");
}

#[test]
fn consent_scope_and_study_id_must_agree() {
    let consent = ClinicalEvent::Consent(ConsentEvent {
        event_id: Uuid::from_u128(1),
        effective_at: DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap(),
        effective_until: None,
        recorded_at: DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap(),
        source_organisation: "X26".into(),
        nhs_number: NhsNumber::parse("9434765919").unwrap(),
        scope: ConsentScope::Study("IRAS-123456".into()),
        deny: true,
        purposes: vec!["study:IRAS-123456".into()],
    });
    let record = consent.to_avro();
    assert_eq!(ClinicalEvent::from_record("consent", &record), Ok(consent.clone()));

    // Other spellings of the study id and purposes come out canonical; a study change
    // limited to purposes that leave its own study out is refused.
    let mut spelled = record.clone();
    *field_mut(&mut spelled, "study_id") = Value::Union(1, Box::new(Value::String("iras 123456".into())));
    *field_mut(&mut spelled, "purposes") = Value::Array(vec![Value::String("study:IRAS ID: 123456".into())]);
    assert_eq!(ClinicalEvent::from_record("consent", &spelled), Ok(consent));
    let mut elsewhere = record.clone();
    *field_mut(&mut elsewhere, "purposes") = Value::Array(vec![Value::String("research".into())]);
    assert_eq!(
        ClinicalEvent::from_record("consent", &elsewhere),
        Err(ValidationError::new("purposes", Problem::OwnStudyMissing))
    );
    let mut unknown = record.clone();
    *field_mut(&mut unknown, "purposes") = Value::Array(vec![Value::String("marketing".into())]);
    assert_eq!(ClinicalEvent::from_record("consent", &unknown).unwrap_err().field, "purposes");

    let mut national = record.clone();
    *field_mut(&mut national, "scope") = Value::Enum(0, "NATIONAL_DATA_OPT_OUT".into());
    let error = ClinicalEvent::from_record("consent", &national).unwrap_err();
    assert_eq!(error.field, "study_id", "a study id would be lost");
    assert!(!error.to_string().contains("IRAS"), "{error}");

    let mut no_study = record.clone();
    *field_mut(&mut no_study, "study_id") = Value::Union(0, Box::new(Value::Null));
    assert_eq!(
        ClinicalEvent::from_record("consent", &no_study),
        Err(ValidationError::new("study_id", Problem::Missing))
    );
}
