//! Tests of the FHIR mapping with realistic, synthetic UK Core resources: [`fixtures`] holds
//! them, this module the mapping and request rules, [`consent`] sluice's Consent convention and
//! [`robustness`] the privacy of errors and a property test that nothing panics.

mod consent;
mod fixtures;
mod robustness;

use chrono::NaiveDate;
use serde_json::{Value, json};

use super::*;
use crate::clinical::{
    AdministrativeSex, AdtEvent, AdtEventType, ClinicalEvent, ConsentEvent, DiagnosisCodeSystem, DiagnosisEvent,
    Interpretation, ObservationCodeSystem, ObservationEvent, PatientClass, ReferenceRange, ResultDecimal,
    stable_event_id,
};
use fixtures::*;

fn map(body: &Value, expected: Option<&str>) -> Result<Mapped, FhirError> {
    map_request(body, expected, &defaults(), received_at())
}

/// The outcome of a single resource POSTed to its own endpoint.
fn single(body: &Value) -> EntryOutcome {
    let expected = body["resourceType"].as_str();
    match map(body, expected) {
        Ok(Mapped::Single(outcome)) => outcome,
        other => panic!("expected a single outcome, got {other:?}"),
    }
}

fn event(body: &Value) -> ClinicalEvent {
    let outcome = single(body);
    let mut events = outcome.result.unwrap_or_else(|e| panic!("refused: {e}"));
    assert_eq!(events.len(), 1);
    events.remove(0).into_event()
}

fn refusal(body: &Value) -> FhirError {
    match single(body).result {
        Err(error) => error,
        Ok(events) => panic!("expected a refusal, got {events:?}"),
    }
}

fn adt(event: ClinicalEvent) -> AdtEvent {
    match event {
        ClinicalEvent::Adt(adt) => adt,
        other => panic!("not ADT: {other:?}"),
    }
}

fn observation(event: ClinicalEvent) -> ObservationEvent {
    match event {
        ClinicalEvent::Observation(observation) => observation,
        other => panic!("not an observation: {other:?}"),
    }
}

fn diagnosis(event: ClinicalEvent) -> DiagnosisEvent {
    match event {
        ClinicalEvent::Diagnosis(diagnosis) => diagnosis,
        other => panic!("not a diagnosis: {other:?}"),
    }
}

fn consent_event(event: ClinicalEvent) -> ConsentEvent {
    match event {
        ClinicalEvent::Consent(consent) => consent,
        other => panic!("not a consent: {other:?}"),
    }
}

#[test]
fn a_transaction_resolves_references_between_its_entries() {
    let Ok(Mapped::Transaction { bundle_id, entries }) = map(&transaction(), None) else { panic!("a transaction") };
    assert_eq!(bundle_id.as_deref(), Some("txn-1"));
    let kinds: Vec<&str> = entries.iter().map(|e| e.resource_type.as_str()).collect();
    assert_eq!(kinds, ["Patient", "Encounter", "Observation", "Condition"]);
    let references: Vec<&str> = entries.iter().map(|e| e.reference.as_str()).collect();
    assert_eq!(references, ["Bundle/txn-1/entry/0", "Encounter/enc-1", "Observation/obs-hr-1", "Condition/cond-1"]);
    let mut events: Vec<ClinicalEvent> =
        entries.into_iter().map(|e| e.result.unwrap_or_else(|e| panic!("{e}")).remove(0).into_event()).collect();

    let condition = diagnosis(events.pop().unwrap());
    assert!(condition.is_primary, "the Encounter ranks the Condition first");
    assert_eq!(condition.code_system, DiagnosisCodeSystem::Icd10);
    assert_eq!(condition.code, "E11.9");
    assert_eq!(condition.display, "Type 2 diabetes mellitus without complications");
    assert_eq!(condition.onset_date, NaiveDate::from_ymd_opt(2019, 6, 1));
    assert_eq!(condition.provenance.occurred_at, utc("2026-03-15T10:05:00Z"));
    assert_eq!(condition.patient.family_name.as_deref(), Some("O'Brien"));

    let heart = observation(events.pop().unwrap());
    assert_eq!(heart.patient.nhs_number, Some(nhs(PATIENT_NHS)));
    assert_eq!(heart.patient.local_patient_id.as_deref(), Some("H1234567"));
    assert_eq!(heart.patient.given_name.as_deref(), Some("Zoë Ann"));

    let admission = adt(events.pop().unwrap());
    assert_eq!(admission.event_type, AdtEventType::Discharge);
    assert_eq!(admission.patient_class, Some(PatientClass::Inpatient));
    assert_eq!(admission.location_code.as_deref(), Some("WARD7"));
    assert_eq!(admission.treatment_function_code.as_deref(), Some("300"));
    assert_eq!(admission.provenance.occurred_at, utc("2026-03-15T10:45:00Z"));
    assert_eq!(admission.provenance.source_organisation, "RR8");
    assert_eq!(admission.patient.date_of_birth, NaiveDate::from_ymd_opt(1970, 3, 14));

    let update = adt(events.pop().unwrap());
    assert_eq!(update.event_type, AdtEventType::UpdatePatient);
    assert_eq!(update.patient, heart.patient);
}

#[test]
fn a_batch_maps_each_entry_on_its_own() {
    let invalid = with(glucose(), "subject", nhs_subject(BAD_CHECK_DIGIT));
    let bundle = json!({
        "resourceType": "Bundle",
        "id": "batch-7",
        "type": "batch",
        "entry": [
            { "fullUrl": "https://ehr.example-trust.nhs.uk/fhir/Observation/obs-hr-1", "resource": heart_rate() },
            { "resource": with(invalid, "id", Value::Null) }
        ]
    });
    let Ok(Mapped::Batch { bundle_id, entries }) = map(&bundle, None) else { panic!("a batch") };
    assert_eq!(bundle_id.as_deref(), Some("batch-7"));
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].reference, "Observation/obs-hr-1");
    assert_eq!(entries[0].result.as_ref().unwrap().len(), 1);
    assert_eq!(entries[1].reference, "Bundle/batch-7/entry/1");
    let error = entries[1].result.as_ref().unwrap_err();
    assert_eq!((error.status, error.code), (422, IssueType::Value));
    assert_eq!(error.expression, "Observation.subject");
    assert_eq!(error.to_string(), "Observation.subject: the NHS number is not valid (check digit)");
}

#[test]
fn a_patient_maps_to_an_update_with_its_demographics() {
    let update = adt(event(&patient()));
    assert_eq!(update.event_type, AdtEventType::UpdatePatient);
    let person = &update.patient;
    assert_eq!(person.nhs_number, Some(nhs(PATIENT_NHS)));
    assert_eq!(person.local_patient_id.as_deref(), Some("H1234567"), "the MR identifier wins over the first other one");
    assert_eq!(person.family_name.as_deref(), Some("O'Brien"));
    assert_eq!(person.given_name.as_deref(), Some("Zoë Ann"));
    assert_eq!(person.date_of_birth, NaiveDate::from_ymd_opt(1970, 3, 14));
    assert_eq!(person.sex, Some(AdministrativeSex::Female));
    assert_eq!(person.address_line.as_deref(), Some("12 Church Lane"));
    assert_eq!(person.postcode.as_deref(), Some("LS6 2QT"));
    let provenance = &update.provenance;
    assert_eq!(provenance.occurred_at, utc("2026-03-14T08:00:00Z"));
    assert_eq!(provenance.recorded_at, utc("2026-03-14T08:00:00Z"));
    assert_eq!(provenance.source_organisation, "B86001");
    assert_eq!(provenance.source_system, "urn:sluice:test:pas");
    assert_eq!(provenance.event_id, stable_event_id(&["fhir", "Patient", "pat-1", "3"]));
    assert_eq!(single(&patient()).reference, "Patient/pat-1");
}

#[test]
fn patient_identifiers_fall_back_in_order_and_partial_birth_dates_are_dropped() {
    let only_nhs = json!({
        "resourceType": "Patient",
        "identifier": [{ "system": NHS, "value": PATIENT_NHS }],
        "birthDate": "1970-03",
        "gender": "unknown"
    });
    let person = adt(event(&only_nhs)).patient;
    assert_eq!(person.local_patient_id, None, "the NHS number alone identifies the patient");
    assert_eq!(person.nhs_number.map(|n| n.digits()).as_deref(), Some(PATIENT_NHS));
    assert_eq!(person.date_of_birth, None);
    assert_eq!(person.sex, Some(AdministrativeSex::Unknown));
    assert_eq!(single(&only_nhs).reference, "Patient/-");

    let unidentified = json!({ "resourceType": "Patient", "id": "ed-unknown-42", "gender": "male" });
    let person = adt(event(&unidentified)).patient;
    assert_eq!(person.nhs_number, None, "an unidentified patient is allowed");
    assert_eq!(person.local_patient_id.as_deref(), Some("ed-unknown-42"));

    let nothing = json!({ "resourceType": "Patient", "gender": "male" });
    let error = refusal(&nothing);
    assert_eq!((error.code, error.expression.as_str()), (IssueType::Required, "Patient.identifier"));
}

#[test]
fn an_encounter_maps_each_status_to_its_adt_event() {
    let cases = [
        ("planned", AdtEventType::Register, "2026-03-10T14:20:00Z"),
        ("arrived", AdtEventType::Admit, "2026-03-10T14:20:00Z"),
        ("triaged", AdtEventType::Admit, "2026-03-10T14:20:00Z"),
        ("in-progress", AdtEventType::Admit, "2026-03-10T14:20:00Z"),
        ("onleave", AdtEventType::Transfer, "2026-03-10T14:20:00Z"),
        ("finished", AdtEventType::Discharge, "2026-03-15T10:45:00Z"),
        ("cancelled", AdtEventType::CancelAdmit, "2026-03-10T14:20:00Z"),
    ];
    for (status, expected, occurred) in cases {
        let mapped = adt(event(&encounter(status)));
        assert_eq!(mapped.event_type, expected, "{status}");
        assert_eq!(mapped.provenance.occurred_at, utc(occurred), "{status}");
        assert_eq!(mapped.provenance.recorded_at, utc("2026-03-15T11:00:00Z"), "{status}");
    }
    for (status, code) in [
        (json!("entered-in-error"), IssueType::NotSupported),
        (json!("unknown"), IssueType::Value),
        (json!("booked"), IssueType::CodeInvalid),
        (Value::Null, IssueType::Required),
    ] {
        let error = refusal(&with(encounter("planned"), "status", status.clone()));
        assert_eq!((error.status, error.code), (422, code), "{status}");
        assert_eq!(error.expression, "Encounter.status");
    }
}

#[test]
fn encounter_classes_follow_the_v3_act_codes() {
    for (code, class) in [
        ("IMP", PatientClass::Inpatient),
        ("ACUTE", PatientClass::Inpatient),
        ("NONAC", PatientClass::Inpatient),
        ("AMB", PatientClass::Outpatient),
        ("VR", PatientClass::Outpatient),
        ("HH", PatientClass::Outpatient),
        ("EMER", PatientClass::Emergency),
        ("SS", PatientClass::DayCase),
        ("PRENC", PatientClass::Other),
    ] {
        let body = with(
            encounter("arrived"),
            "class",
            json!({ "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": code }),
        );
        assert_eq!(adt(event(&body)).patient_class, Some(class), "{code}");
    }
    // Without a period, an encounter happened when it was last updated.
    let undated = with(encounter("arrived"), "period", Value::Null);
    assert_eq!(adt(event(&undated)).provenance.occurred_at, utc("2026-03-15T11:00:00Z"));
}

#[test]
fn an_observation_maps_code_value_unit_comment_and_flag() {
    let heart = observation(event(&heart_rate()));
    assert_eq!(heart.code_system, ObservationCodeSystem::Loinc);
    assert_eq!((heart.code.as_str(), heart.display.as_str()), ("8867-4", "Heart rate"));
    assert_eq!(heart.value, Some(72.0));
    assert_eq!(heart.unit.as_deref(), Some("/min"));
    assert_eq!(heart.comment.as_deref(), Some("Resting, seated"));
    assert_eq!(heart.interpretation, Some(Interpretation::Normal));
    assert_eq!(heart.provenance.occurred_at, utc("2026-03-15T09:30:00Z"));
    assert_eq!(heart.provenance.recorded_at, utc("2026-03-15T09:31:12.5Z"));
    assert_eq!(heart.provenance.source_system, "sluice-fhir");
    assert_eq!(heart.patient.local_patient_id, None, "identified by NHS number only");
    assert_eq!(heart.patient.family_name, None);

    let sugar = observation(event(&glucose()));
    assert_eq!(sugar.provenance.source_organisation, "RR813", "an ODS site code");
    assert_eq!(sugar.interpretation, Some(Interpretation::High));
    assert_eq!(sugar.provenance.recorded_at, received_at(), "no issued and no meta");
    // Exact result, reference range and interpretation codes for observation v3.
    assert_eq!(sugar.value_decimal, ResultDecimal::parse("142.5"));
    assert_eq!(sugar.reference_range, None);
    assert_eq!(sugar.interpretation_codes, Some(vec!["H".to_owned()]));
    let ranged = with(
        glucose(),
        "referenceRange",
        json!([{ "low": { "value": 70 }, "high": { "value": 99.9 }, "text": "70-99.9" }]),
    );
    let ranged = with(ranged, "valueQuantity", json!({ "value": 0.1234567, "unit": "mg/dL" }));
    let ranged = observation(event(&ranged));
    assert_eq!(
        ranged.reference_range,
        Some(ReferenceRange {
            low: ResultDecimal::parse("70"),
            high: ResultDecimal::parse("99.9"),
            text: Some("70-99.9".to_owned())
        })
    );
    assert_eq!(ranged.value, Some(0.1234567));
    assert_eq!(ranged.value_decimal, None, "seven decimals do not fit decimal(18,6): left out, not rounded");

    let weight = json!({
        "resourceType": "Observation",
        "status": "amended",
        "code": {
            "coding": [
                { "system": "http://example.org/local-codes", "code": "WT" },
                { "system": "http://snomed.info/sct", "code": "27113001" }
            ],
            "text": "Body weight, taken at home visit for Eleanor Hargreaves, 27 Otley Road, NHS 943 476 5919"
        },
        "subject": nhs_subject(OTHER_NHS),
        "effectivePeriod": { "start": "2026-03-14", "end": "2026-03-14" },
        "valueQuantity": { "value": 81.3, "unit": "kg" },
        "valueString": "weighed in clinic",
        "note": [{ "text": "scales recalibrated" }]
    });
    let weight = observation(event(&weight));
    assert_eq!(weight.code_system, ObservationCodeSystem::SnomedCt);
    // The concept's text is the sender's free text: never taken, even when no coding has a display.
    assert_eq!(weight.display, "27113001", "the code, when the coding has no display");
    assert!(!format!("{weight:?}").contains("Otley"), "the concept text goes nowhere");
    assert_eq!(weight.unit.as_deref(), Some("kg"));
    assert_eq!(weight.comment.as_deref(), Some("weighed in clinic\nscales recalibrated"));
    assert_eq!(weight.provenance.occurred_at, utc("2026-03-14T00:00:00Z"), "a date is midnight in London");
    assert_eq!(weight.provenance.source_organisation, "RR8", "the configured default");
}

#[test]
fn observations_need_an_accepted_status_code_and_time() {
    let cases = [
        (with(heart_rate(), "status", json!("registered")), IssueType::NotSupported, "Observation.status"),
        (
            with(heart_rate(), "code", json!({ "coding": [{ "system": "http://example.org/local", "code": "HR" }] })),
            IssueType::CodeInvalid,
            "Observation.code",
        ),
        (
            with(
                heart_rate(),
                "code",
                json!({ "coding": [{ "system": "http://loinc.org", "code": "8867-5", "display": "Heart rate" }] }),
            ),
            IssueType::CodeInvalid,
            "Observation.code",
        ),
        (with(heart_rate(), "effectiveDateTime", Value::Null), IssueType::Required, "Observation.effective[x]"),
        (
            with(heart_rate(), "effectiveDateTime", json!("2026-03-15T09:30:00")),
            IssueType::Value,
            "Observation.effectiveDateTime",
        ),
        (with(heart_rate(), "effectiveDateTime", json!("2026-03")), IssueType::Value, "Observation.effectiveDateTime"),
        (
            with(heart_rate(), "effectiveDateTime", json!("2027-03-15T09:30:00Z")),
            IssueType::Value,
            "Observation.effectiveDateTime",
        ),
        (with(heart_rate(), "subject", Value::Null), IssueType::Required, "Observation.subject"),
    ];
    for (body, code, expression) in cases {
        let error = refusal(&body);
        assert_eq!((error.status, error.code, error.expression.as_str()), (422, code, expression), "{error}");
    }
    // A coding without a display is valid FHIR: accepted, with the code as its display.
    let undisplayed =
        with(heart_rate(), "code", json!({ "coding": [{ "system": "http://loinc.org", "code": "8867-4" }] }));
    assert_eq!(observation(event(&undisplayed)).display, "8867-4");
    let error = refusal(&with(heart_rate(), "valueQuantity", json!({ "value": "72" })));
    assert_eq!((error.status, error.code), (400, IssueType::Structure));
    assert_eq!(error.expression, "Observation.valueQuantity.value");
}

#[test]
fn a_datetime_without_offset_is_refused() {
    let error = refusal(&with(heart_rate(), "effectiveDateTime", json!("2026-03-15T09:30:00")));
    assert_eq!((error.status, error.code), (422, IssueType::Value));
    assert!(error.diagnostics.contains("offset"), "{error}");
    let error = refusal(&with(diabetes(), "recordedDate", json!("2026-03-15T10:05:00.250")));
    assert_eq!(error.expression, "Condition.recordedDate");
}

#[test]
fn a_condition_maps_to_a_diagnosis() {
    let condition = diagnosis(event(&diabetes()));
    assert!(!condition.is_primary, "no Encounter lists it");
    assert_eq!(condition.code_system, DiagnosisCodeSystem::Icd10);
    assert_eq!(condition.provenance.recorded_at, utc("2026-03-15T10:05:00Z"));

    let snomed = with(
        diabetes(),
        "code",
        json!({ "coding": [{ "system": "http://snomed.info/sct", "code": "44054006", "display": "Diabetes mellitus type 2" }] }),
    );
    let snomed = with(with(snomed, "recordedDate", Value::Null), "onsetDateTime", json!("2019"));
    let snomed = with(snomed, "meta", json!({ "lastUpdated": "2026-03-12T16:00:00+00:00" }));
    let condition = diagnosis(event(&snomed));
    assert_eq!(condition.code_system, DiagnosisCodeSystem::SnomedCt);
    assert_eq!(condition.onset_date, None, "a year alone is no date");
    assert_eq!(condition.provenance.occurred_at, utc("2026-03-12T16:00:00Z"));

    for status in ["entered-in-error", "refuted"] {
        let refuted = with(
            diabetes(),
            "verificationStatus",
            json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": status }] }),
        );
        assert_eq!(refusal(&refuted).code, IssueType::NotSupported);
    }
    let uncoded =
        with(diabetes(), "code", json!({ "coding": [{ "system": "http://read.info/ctv3", "code": "C10F." }] }));
    assert_eq!(refusal(&uncoded).code, IssueType::CodeInvalid);
}

#[test]
fn a_condition_is_primary_when_an_encounter_in_the_bundle_ranks_it_first() {
    let ranked = |rank: u64| {
        with(
            encounter("finished"),
            "diagnosis",
            json!([{ "condition": { "reference": "Condition/cond-1" }, "rank": rank }]),
        )
    };
    for (rank, primary) in [(1, true), (2, false)] {
        let bundle = json!({
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{ "resource": ranked(rank) }, { "resource": diabetes() }]
        });
        let Ok(Mapped::Batch { entries, .. }) = map(&bundle, None) else { panic!("a batch") };
        let condition = diagnosis(entries[1].result.clone().unwrap().remove(0).into_event());
        assert_eq!(condition.is_primary, primary, "rank {rank}");
    }
    // An Encounter contained in the Condition and referenced by it counts too.
    let contained = json!({
        "resourceType": "Encounter",
        "id": "e",
        "status": "finished",
        "diagnosis": [{ "condition": { "reference": "#" }, "rank": 1 }]
    });
    let condition = with(with(diabetes(), "contained", json!([contained])), "encounter", json!({ "reference": "#e" }));
    assert!(diagnosis(event(&condition)).is_primary);
}

#[test]
fn a_contained_patient_is_resolved() {
    let contained = json!({
        "resourceType": "Patient",
        "id": "p",
        "identifier": [{ "system": NHS, "value": OTHER_NHS }],
        "name": [{ "family": "Okafor", "given": ["Chidi"] }],
        "birthDate": "1988-11-02"
    });
    let body = with(with(heart_rate(), "contained", json!([contained])), "subject", json!({ "reference": "#p" }));
    let heart = observation(event(&body));
    assert_eq!(heart.patient.nhs_number, Some(nhs(OTHER_NHS)));
    assert_eq!(heart.patient.family_name.as_deref(), Some("Okafor"));
    assert_eq!(heart.patient.local_patient_id.as_deref(), Some("p"));
}

#[test]
fn patient_references_that_cannot_be_used_are_refused() {
    let dangling = with(heart_rate(), "subject", json!({ "reference": "Patient/pat-404" }));
    let error = refusal(&dangling);
    assert_eq!((error.code, error.expression.as_str()), (IssueType::Processing, "Observation.subject"));

    // A logical identifier rescues a reference to a Patient held elsewhere.
    let rescued = with(
        heart_rate(),
        "subject",
        json!({ "reference": "Patient/pat-404", "identifier": { "system": NHS, "value": PATIENT_NHS } }),
    );
    assert_eq!(observation(event(&rescued)).patient.nhs_number, Some(nhs(PATIENT_NHS)));

    let local_only = with(
        heart_rate(),
        "subject",
        json!({ "identifier": { "system": "https://fhir.example-trust.nhs.uk/Id/local-patient-identifier", "value": "H1" } }),
    );
    assert_eq!(refusal(&local_only).code, IssueType::Required);

    let not_a_patient = with(
        heart_rate(),
        "contained",
        json!([{ "resourceType": "Group", "id": "g", "type": "person", "actual": true }]),
    );
    let not_a_patient = with(not_a_patient, "subject", json!({ "reference": "#g" }));
    assert_eq!(refusal(&not_a_patient).code, IssueType::Processing);

    // In a Bundle, a reference and an identifier that disagree are refused.
    let disagreeing = with(
        heart_rate(),
        "subject",
        json!({ "reference": "Patient/pat-1", "identifier": { "system": NHS, "value": OTHER_NHS } }),
    );
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{ "resource": patient() }, { "resource": disagreeing }]
    });
    let Ok(Mapped::Batch { entries, .. }) = map(&bundle, None) else { panic!("a batch") };
    assert!(entries[0].result.is_ok());
    assert_eq!(entries[1].result.as_ref().unwrap_err().code, IssueType::Value);
}

#[test]
fn the_organisation_falls_back_to_the_default_or_is_required() {
    let anonymous = with(heart_rate(), "performer", Value::Null);
    let no_default = FhirDefaults { organisation: None, source_system: "sluice-fhir".into() };
    let Ok(Mapped::Single(outcome)) = map_request(&anonymous, None, &no_default, received_at()) else { panic!() };
    let error = outcome.result.unwrap_err();
    assert_eq!((error.code, error.expression.as_str()), (IssueType::Required, "Observation.performer"));
    assert_eq!(observation(event(&anonymous)).provenance.source_organisation, "RR8");

    let lowercase = with(heart_rate(), "performer", json!([{ "identifier": { "system": ODS, "value": "rr8" } }]));
    let error = refusal(&lowercase);
    assert_eq!((error.code, error.expression.as_str()), (IssueType::CodeInvalid, "Observation.performer"));
}

#[test]
fn requests_that_do_not_fit_the_endpoint_are_refused() {
    let error = map(&heart_rate(), Some("Patient")).unwrap_err();
    assert_eq!((error.status, error.code), (400, IssueType::Invalid));
    assert_eq!(error.expression, "Patient.resourceType");
    let error = map(&transaction(), Some("Bundle")).unwrap_err();
    assert_eq!((error.status, error.code), (400, IssueType::Invalid));
    let error = map(&transaction(), Some("Observation")).unwrap_err();
    assert_eq!((error.status, error.code), (400, IssueType::Invalid));
    // A single resource may be POSTed to the base URL.
    assert!(matches!(map(&heart_rate(), None), Ok(Mapped::Single(_))));
}

#[test]
fn unsupported_and_unreadable_bodies_are_refused() {
    let medication = json!({ "resourceType": "MedicationRequest", "id": "mr-1", "status": "active" });
    let error = map(&medication, None).unwrap_err();
    assert_eq!(
        (error.status, error.code, error.expression.as_str()),
        (422, IssueType::NotSupported, "MedicationRequest")
    );
    assert!(error.diagnostics.contains("MedicationRequest"));

    for body in [json!([heart_rate()]), json!("Observation"), json!(42), Value::Null] {
        let error = map(&body, None).unwrap_err();
        assert_eq!((error.status, error.code), (400, IssueType::Structure), "{body}");
    }
    let error = map(&json!({ "id": "x" }), None).unwrap_err();
    assert_eq!(
        (error.status, error.code, error.expression.as_str()),
        (400, IssueType::Structure, "Resource.resourceType")
    );

    let document = json!({ "resourceType": "Bundle", "type": "document", "entry": [] });
    let error = map(&document, None).unwrap_err();
    assert_eq!((error.status, error.code, error.expression.as_str()), (422, IssueType::NotSupported, "Bundle.type"));
}

#[test]
fn bundle_entries_without_a_usable_resource_get_their_own_outcome() {
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            { "request": { "method": "DELETE", "url": "Observation/obs-1" } },
            { "resource": { "resourceType": "Bundle", "type": "batch" } },
            { "resource": { "resourceType": "Practitioner", "id": "prac-17" } },
            "not an entry",
            { "resource": heart_rate() }
        ]
    });
    let Ok(Mapped::Batch { bundle_id: None, entries }) = map(&bundle, None) else { panic!("a batch") };
    let status = |i: usize| entries[i].result.as_ref().map_err(|e| (e.status, e.code)).map(|_| ());
    assert_eq!(status(0), Err((400, IssueType::Required)));
    assert_eq!(status(1), Err((422, IssueType::NotSupported)));
    assert_eq!(status(2), Err((422, IssueType::NotSupported)));
    assert_eq!(status(3), Err((400, IssueType::Structure)));
    assert_eq!(status(4), Ok(()));
    assert_eq!(entries[0].reference, "Bundle/-/entry/0");
    assert_eq!(entries[2].reference, "Practitioner/prac-17");
    assert_eq!(entries[2].resource_type, "Practitioner");
}

#[test]
fn bundles_are_limited_in_size() {
    let entries = vec![json!({}); MAX_BUNDLE_ENTRIES + 1];
    let bundle = json!({ "resourceType": "Bundle", "type": "batch", "entry": entries });
    let error = map(&bundle, None).unwrap_err();
    assert_eq!((error.status, error.code, error.expression.as_str()), (422, IssueType::Processing, "Bundle.entry"));
}

#[test]
fn event_ids_are_stable_across_resends_and_change_with_the_version() {
    let first = event(&heart_rate()).event_id();
    assert_eq!(first, event(&heart_rate()).event_id());
    assert_eq!(first, stable_event_id(&["fhir", "Observation", "obs-hr-1", "1"]));
    let mut next_version = heart_rate();
    next_version["meta"]["versionId"] = json!("2");
    assert_ne!(first, event(&next_version).event_id());

    // Without an id, the content decides.
    let anonymous = with(heart_rate(), "id", Value::Null);
    let anonymous_id = event(&anonymous).event_id();
    assert_eq!(anonymous_id, event(&anonymous).event_id());
    assert_ne!(anonymous_id, first);
    let mut changed = anonymous.clone();
    changed["valueQuantity"]["value"] = json!(73);
    assert_ne!(anonymous_id, event(&changed).event_id());
}
