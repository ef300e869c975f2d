//! Realistic, synthetic UK Core resources. NHS numbers are from the reserved test range `999`
//! with valid Modulus 11 check digits; ODS codes, LOINC, SNOMED CT and ICD-10 codes are real
//! and well formed.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sluice_schemas::NhsNumber;

use crate::fhir::FhirDefaults;

pub(super) const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";
pub(super) const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
/// The synthetic patient's NHS number.
pub(super) const PATIENT_NHS: &str = "9990000018";
/// Another valid test number.
pub(super) const OTHER_NHS: &str = "9990000026";
/// `PATIENT_NHS` with a wrong check digit.
pub(super) const BAD_CHECK_DIGIT: &str = "9990000019";

pub(super) fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

pub(super) fn received_at() -> DateTime<Utc> {
    utc("2026-03-15T12:00:00Z")
}

pub(super) fn defaults() -> FhirDefaults {
    FhirDefaults { organisation: Some("RR8".into()), source_system: "sluice-fhir".into() }
}

pub(super) fn nhs(digits: &str) -> NhsNumber {
    NhsNumber::parse(digits).unwrap()
}

pub(super) fn nhs_subject(digits: &str) -> Value {
    json!({ "identifier": { "system": NHS, "value": digits } })
}

/// `value` with `key` set (or, for `Value::Null`, removed).
pub(super) fn with(mut value: Value, key: &str, member: Value) -> Value {
    let object = value.as_object_mut().unwrap();
    if member.is_null() {
        object.remove(key);
    } else {
        object.insert(key.to_owned(), member);
    }
    value
}

pub(super) fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "pat-1",
        "meta": { "versionId": "3", "lastUpdated": "2026-03-14T08:00:00+00:00", "source": "urn:sluice:test:pas" },
        "identifier": [
            {
                "extension": [{
                    "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
                    "valueCodeableConcept": { "coding": [{
                        "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland",
                        "code": "01",
                        "display": "Number present and verified"
                    }] }
                }],
                "system": NHS,
                "value": PATIENT_NHS
            },
            {
                "use": "secondary",
                "system": "https://fhir.example-gp-system.co.uk/Id/patient-guid",
                "value": "5f0c6a8e-3d41-4b8e-9a7c-2e1f0b9d8c7a"
            },
            {
                "use": "usual",
                "type": { "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                    "code": "MR",
                    "display": "Medical record number"
                }] },
                "system": "https://fhir.example-trust.nhs.uk/Id/local-patient-identifier",
                "value": "H1234567"
            }
        ],
        "name": [
            { "use": "usual", "family": "Brien", "given": ["Zoe"] },
            { "use": "official", "family": "O'Brien", "given": ["Zoë", "Ann"], "prefix": ["Ms"] }
        ],
        "gender": "female",
        "birthDate": "1970-03-14",
        "address": [
            { "use": "work", "line": ["1 Park Row"], "city": "Leeds", "postalCode": "LS1 5AB" },
            { "use": "home", "line": ["12 Church Lane", "Headingley"], "city": "Leeds", "postalCode": "LS6 2QT" }
        ],
        "managingOrganization": { "identifier": { "system": ODS, "value": "B86001" } }
    })
}

pub(super) fn encounter(status: &str) -> Value {
    json!({
        "resourceType": "Encounter",
        "id": "enc-1",
        "meta": { "versionId": "2", "lastUpdated": "2026-03-15T11:00:00Z" },
        "status": status,
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "IMP",
            "display": "inpatient encounter"
        },
        "serviceType": { "coding": [{
            "system": "https://fhir.nhs.uk/CodeSystem/NHSDataModelAndDictionary-treatment-function",
            "code": "300",
            "display": "General Internal Medicine Service"
        }] },
        "subject": nhs_subject(PATIENT_NHS),
        "period": { "start": "2026-03-10T14:20:00+00:00", "end": "2026-03-15T10:45:00+00:00" },
        "location": [{
            "location": {
                "identifier": { "system": "https://fhir.example-trust.nhs.uk/Id/location", "value": "WARD7" },
                "display": "Ward 7"
            }
        }],
        "serviceProvider": { "identifier": { "system": ODS, "value": "RR8" } }
    })
}

pub(super) fn heart_rate() -> Value {
    json!({
        "resourceType": "Observation",
        "id": "obs-hr-1",
        "meta": { "versionId": "1", "lastUpdated": "2026-03-15T09:35:00Z" },
        "status": "final",
        "category": [{ "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
            "display": "Vital Signs"
        }] }],
        "code": {
            "coding": [{ "system": "http://loinc.org", "code": "8867-4", "display": "Heart rate" }],
            "text": "Pulse rate"
        },
        "subject": nhs_subject(PATIENT_NHS),
        "effectiveDateTime": "2026-03-15T09:30:00+00:00",
        "issued": "2026-03-15T09:31:12.5Z",
        "performer": [
            { "reference": "Practitioner/prac-17", "display": "Staff Nurse" },
            { "identifier": { "system": ODS, "value": "RR8" } }
        ],
        "valueQuantity": {
            "value": 72,
            "unit": "beats/minute",
            "system": "http://unitsofmeasure.org",
            "code": "/min"
        },
        "interpretation": [{ "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
            "code": "N",
            "display": "Normal"
        }] }],
        "note": [{ "text": "Resting, seated" }]
    })
}

pub(super) fn glucose() -> Value {
    json!({
        "resourceType": "Observation",
        "id": "obs-glu-1",
        "status": "final",
        "code": { "coding": [{
            "system": "http://loinc.org",
            "code": "2345-7",
            "display": "Glucose [Mass/volume] in Serum or Plasma"
        }] },
        "subject": nhs_subject(OTHER_NHS),
        "effectiveDateTime": "2026-03-15T07:55:00Z",
        "valueQuantity": { "value": 142.5, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL" },
        "interpretation": [{ "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
            "code": "H"
        }] }],
        "performer": [{ "identifier": { "system": "https://fhir.nhs.uk/Id/ods-site-code", "value": "RR813" } }]
    })
}

pub(super) fn diabetes() -> Value {
    json!({
        "resourceType": "Condition",
        "id": "cond-1",
        "clinicalStatus": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": "active"
        }] },
        "verificationStatus": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            "code": "confirmed"
        }] },
        "category": [{ "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
            "code": "encounter-diagnosis"
        }] }],
        "code": {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/sid/icd-10",
                    "code": "E11.9",
                    "display": "Type 2 diabetes mellitus without complications"
                },
                { "system": "http://snomed.info/sct", "code": "44054006", "display": "Diabetes mellitus type 2" }
            ],
            "text": "Type 2 diabetes"
        },
        "subject": nhs_subject(PATIENT_NHS),
        "onsetDateTime": "2019-06-01",
        "recordedDate": "2026-03-15T10:05:00+00:00",
        "recorder": { "identifier": { "system": ODS, "value": "RR8" } }
    })
}

pub(super) fn consent(policy_uri: &str, status: &str, provision_type: &str) -> Value {
    json!({
        "resourceType": "Consent",
        "id": "consent-1",
        "status": status,
        "scope": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
            "code": "patient-privacy"
        }] },
        "category": [{ "coding": [{ "system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent" }] }],
        "patient": nhs_subject(PATIENT_NHS),
        "dateTime": "2026-02-01T09:00:00Z",
        "organization": [{ "identifier": { "system": ODS, "value": "X26" } }],
        "policy": [{ "uri": policy_uri }],
        "provision": { "type": provision_type, "period": { "start": "2026-02-02" } }
    })
}

pub(super) const PATIENT_URL: &str = "urn:uuid:0b7d2c1e-5a0f-4c1b-9d3e-7f6a8b9c0d1e";
pub(super) const ENCOUNTER_URL: &str = "urn:uuid:9e1f3a52-6c7d-4e8f-a0b1-c2d3e4f5a6b7";
pub(super) const OBSERVATION_URL: &str = "urn:uuid:4c5d6e7f-8091-4a2b-b3c4-d5e6f7a8b9c0";
pub(super) const CONDITION_URL: &str = "urn:uuid:d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6";

pub(super) fn transaction() -> Value {
    let by_url = json!({ "reference": PATIENT_URL });
    let patient = with(patient(), "id", Value::Null);
    let encounter = with(
        with(encounter("finished"), "subject", by_url.clone()),
        "diagnosis",
        json!([
            {
                "condition": { "reference": CONDITION_URL },
                "use": { "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/diagnosis-role",
                    "code": "DD",
                    "display": "Discharge diagnosis"
                }] },
                "rank": 1
            }
        ]),
    );
    let observation = with(heart_rate(), "subject", by_url.clone());
    let condition = with(with(diabetes(), "subject", by_url), "encounter", json!({ "reference": ENCOUNTER_URL }));
    json!({
        "resourceType": "Bundle",
        "id": "txn-1",
        "type": "transaction",
        "timestamp": "2026-03-15T11:58:00Z",
        "entry": [
            { "fullUrl": PATIENT_URL, "resource": patient, "request": { "method": "POST", "url": "Patient" } },
            { "fullUrl": ENCOUNTER_URL, "resource": encounter, "request": { "method": "POST", "url": "Encounter" } },
            { "fullUrl": OBSERVATION_URL, "resource": observation, "request": { "method": "POST", "url": "Observation" } },
            { "fullUrl": CONDITION_URL, "resource": condition, "request": { "method": "POST", "url": "Condition" } }
        ]
    })
}
