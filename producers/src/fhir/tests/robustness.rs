//! Robustness: no error ever quotes an input value, and no input makes the mapping panic.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::fixtures::*;
use super::map;
use crate::fhir::{BundleKind, IssueType, ResponseEntry, bundle_response, operation_outcome};

#[test]
fn errors_never_contain_input_values() {
    const SECRETS: [&str; 9] =
        ["Zebedee", "ZEBEDEE", OTHER_NHS, "999 000 0026", BAD_CHECK_DIGIT, "1970-03-14", "H7654321", "13:45", "zq9"];
    let named = |mut body: Value| {
        body["name"] = json!([{ "family": "Zebedee", "given": ["Zebedee"] }]);
        body["identifier"] = json!([
            { "system": NHS, "value": OTHER_NHS },
            { "system": "https://fhir.example-trust.nhs.uk/Id/local-patient-identifier", "value": "H7654321" }
        ]);
        body
    };
    let zebedee_patient = named(patient());
    let mut bodies: Vec<(Value, Option<&str>)> = Vec::new();
    let mut add = |body: Value| bodies.push((body, None));
    add(with(named(patient()), "identifier", json!([{ "system": NHS, "value": BAD_CHECK_DIGIT }])));
    add(with(named(patient()), "identifier", json!([{ "system": NHS, "value": "999 000 0026 Zebedee" }])));
    add(with(zebedee_patient.clone(), "birthDate", json!("1970-03-14T13:45:00")));
    add(with(zebedee_patient.clone(), "gender", json!("Zebedee")));
    add(with(zebedee_patient.clone(), "address", json!([{ "line": ["Zebedee House"], "postalCode": "ZEBEDEE" }])));
    add(with(zebedee_patient.clone(), "id", json!("Zebedee 9990000026")));
    add(with(
        zebedee_patient.clone(),
        "managingOrganization",
        json!({ "identifier": { "system": ODS, "value": "zq9" } }),
    ));
    add(with(heart_rate(), "subject", nhs_subject(BAD_CHECK_DIGIT)));
    add(with(heart_rate(), "subject", nhs_subject("99900000")));
    add(with(heart_rate(), "subject", json!({ "reference": "Patient/Zebedee" })));
    add(with(heart_rate(), "effectiveDateTime", json!("Zebedee")));
    add(with(heart_rate(), "effectiveDateTime", json!("1970-03-14T13:45:00")));
    add(with(
        heart_rate(),
        "code",
        json!({ "coding": [{ "system": "http://loinc.org", "code": "Zebedee", "display": "x" }] }),
    ));
    add(with(heart_rate(), "valueQuantity", json!({ "value": "Zebedee" })));
    add(with(heart_rate(), "note", json!([{ "text": "Zebedee\u{7}" }])));
    add(with(encounter("Zebedee"), "subject", nhs_subject(OTHER_NHS)));
    add(with(
        diabetes(),
        "code",
        json!({ "coding": [{ "system": "http://hl7.org/fhir/sid/icd-10", "code": "Zebedee", "display": "x" }] }),
    ));
    add(consent("urn:sluice:policy:study:Zebedee/9990000026", "active", "deny"));
    add(with(consent("urn:sluice:policy:type-1-opt-out", "active", "deny"), "patient", nhs_subject(BAD_CHECK_DIGIT)));
    let mut purpose = consent("urn:sluice:policy:type-1-opt-out", "active", "deny");
    purpose["provision"]["purpose"] = json!([{ "system": "urn:sluice:purpose", "code": "Zebedee" }]);
    add(purpose);
    add(json!({ "resourceType": "Zebedee", "id": "x", "name": "Zebedee" }));
    add(json!({ "resourceType": "Bundle", "id": "Zebedee!", "type": "batch" }));
    add(json!({ "resourceType": "Bundle", "type": "Zebedee" }));
    add(json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            { "fullUrl": "urn:uuid:1", "resource": zebedee_patient.clone() },
            { "resource": with(heart_rate(), "subject", json!({ "reference": "urn:uuid:1", "identifier": { "system": NHS, "value": PATIENT_NHS } })) },
            { "resource": { "resourceType": "Zebedee" } },
            { "resource": with(heart_rate(), "subject", json!({ "reference": "urn:uuid:Zebedee" })) }
        ]
    }));
    add(json!("Zebedee 9990000026"));
    bodies.push((json!({ "resourceType": "Zebedee" }), Some("Observation")));
    bodies.push((heart_rate(), Some("Zebedee")));
    bodies.push((with(named(patient()), "resourceType", json!("Zebedee")), Some("Patient")));

    let mut errors = Vec::new();
    for (body, expected) in &bodies {
        match map(body, *expected) {
            Err(error) => errors.push(error),
            Ok(mapped) => {
                for entry in mapped.entries() {
                    for secret in SECRETS {
                        assert!(!entry.reference.contains(secret), "reference {:?} holds {secret:?}", entry.reference);
                        assert!(
                            !entry.resource_type.contains(secret),
                            "type {:?} holds {secret:?}",
                            entry.resource_type
                        );
                    }
                    if let Err(error) = &entry.result {
                        errors.push(error.clone());
                    }
                }
            }
        }
    }
    assert!(errors.len() >= bodies.len());
    let codes: std::collections::HashSet<IssueType> = errors.iter().map(|e| e.code).collect();
    assert!(codes.len() >= 6, "the bad inputs exercise many rules: {codes:?}");
    for error in &errors {
        let renderings = [
            format!("{error:?}"),
            error.to_string(),
            operation_outcome(&[error]).to_string(),
            bundle_response(BundleKind::BatchResponse, &[ResponseEntry::refused(error)]).to_string(),
        ];
        for rendering in renderings {
            for secret in SECRETS {
                assert!(!rendering.contains(secret), "{rendering} holds {secret:?}");
            }
        }
    }
}

/// Arbitrary JSON from a small vocabulary, so that generated resources reach deep into the
/// mapping rather than failing at the first element.
fn json_value() -> BoxedStrategy<Value> {
    let words = prop::sample::select(vec![
        "Patient",
        "Encounter",
        "Observation",
        "Condition",
        "Consent",
        "Bundle",
        "batch",
        "transaction",
        "final",
        "finished",
        "active",
        "inactive",
        "deny",
        "permit",
        "official",
        "home",
        "MR",
        "IMP",
        "N",
        "#p",
        "p",
        "Patient/p",
        "Condition/c",
        "urn:uuid:1",
        "2026-03-15",
        "2026-03-15T10:00:00Z",
        "2026-03-15T10:00:00",
        "2026",
        "9990000018",
        "9990000019",
        "RR8",
        "8867-4",
        "E11.9",
        "44054006",
        "https://fhir.nhs.uk/Id/nhs-number",
        "https://fhir.nhs.uk/Id/ods-organization-code",
        "http://loinc.org",
        "http://snomed.info/sct",
        "http://hl7.org/fhir/sid/icd-10",
        "http://unitsofmeasure.org",
        "urn:sluice:policy:national-data-opt-out",
        "urn:sluice:policy:study:S-1",
        "urn:sluice:purpose",
        "research",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        words.prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    let keys = prop::sample::select(vec![
        "resourceType",
        "id",
        "meta",
        "lastUpdated",
        "versionId",
        "source",
        "identifier",
        "system",
        "value",
        "type",
        "subject",
        "patient",
        "reference",
        "contained",
        "code",
        "coding",
        "display",
        "text",
        "status",
        "effectiveDateTime",
        "effectiveInstant",
        "effectivePeriod",
        "issued",
        "start",
        "end",
        "period",
        "valueQuantity",
        "valueString",
        "unit",
        "note",
        "interpretation",
        "performer",
        "entry",
        "resource",
        "fullUrl",
        "diagnosis",
        "condition",
        "rank",
        "encounter",
        "recordedDate",
        "onsetDateTime",
        "onsetPeriod",
        "verificationStatus",
        "policy",
        "uri",
        "provision",
        "purpose",
        "dateTime",
        "organization",
        "name",
        "family",
        "given",
        "birthDate",
        "gender",
        "address",
        "line",
        "postalCode",
        "class",
        "location",
        "serviceType",
        "serviceProvider",
        "managingOrganization",
    ]);
    leaf.prop_recursive(5, 96, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..8)
                .prop_map(|members| Value::Object(members.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
    .boxed()
}

/// Replaces (or, for `None`, removes) the element reached by `steps`: each step picks a member
/// of an object or an item of an array, modulo its size.
fn mutate(target: &mut Value, steps: &[usize], replacement: Option<Value>) {
    let Some((step, rest)) = steps.split_first() else {
        if let Some(value) = replacement {
            *target = value;
        }
        return;
    };
    match target {
        Value::Object(members) if !members.is_empty() => {
            let key = members.keys().nth(step % members.len()).cloned().unwrap_or_default();
            match (rest.is_empty(), replacement) {
                (true, Some(value)) => drop(members.insert(key, value)),
                (true, None) => drop(members.remove(&key)),
                (false, replacement) => mutate(members.get_mut(&key).unwrap(), rest, replacement),
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let index = step % items.len();
            match (rest.is_empty(), replacement) {
                (true, Some(value)) => items[index] = value,
                (true, None) => drop(items.remove(index)),
                (false, replacement) => mutate(&mut items[index], rest, replacement),
            }
        }
        other => {
            if let Some(value) = replacement {
                *other = value;
            }
        }
    }
}

/// One of the realistic fixtures with a few random edits anywhere in it.
fn mutated_fixture() -> impl Strategy<Value = Value> {
    let edits =
        prop::collection::vec((prop::collection::vec(any::<usize>(), 1..7), prop::option::of(json_value())), 1..4);
    (0..8usize, edits).prop_map(|(fixture, edits)| {
        let mut body = match fixture {
            0 => patient(),
            1 => encounter("finished"),
            2 => heart_rate(),
            3 => glucose(),
            4 => diabetes(),
            5 => consent("urn:sluice:policy:study:IRAS-312456", "active", "deny"),
            6 => consent("urn:sluice:policy:national-data-opt-out", "inactive", "permit"),
            _ => transaction(),
        };
        for (steps, replacement) in edits {
            mutate(&mut body, &steps, replacement);
        }
        body
    })
}

/// Arbitrary JSON, a resource of a supported type with arbitrary members, a Bundle of them, or
/// a realistic fixture with random edits.
fn request_body() -> impl Strategy<Value = Value> {
    let kinds = prop::sample::select(vec!["Patient", "Encounter", "Observation", "Condition", "Consent", "Bundle"]);
    let resource = (kinds, json_value())
        .prop_map(|(kind, members)| {
            let mut resource = match members {
                Value::Object(members) => members,
                _ => serde_json::Map::new(),
            };
            resource.insert("resourceType".into(), Value::from(kind));
            Value::Object(resource)
        })
        .boxed();
    prop_oneof![
        1 => json_value(),
        1 => resource.clone(),
        4 => mutated_fixture(),
        1 => (prop::sample::select(vec!["batch", "transaction"]), prop::collection::vec((json_value(), resource), 0..6))
            .prop_map(|(kind, entries)| {
                let entries: Vec<Value> = entries
                    .into_iter()
                    .map(|(full_url, resource)| json!({ "fullUrl": full_url, "resource": resource }))
                    .collect();
                json!({ "resourceType": "Bundle", "type": kind, "entry": entries })
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn map_request_never_panics(
        body in request_body(),
        expected in prop::option::of(prop::sample::select(vec!["Patient", "Observation", "Consent"])),
    ) {
        match map(&body, expected) {
            Err(error) => prop_assert!(matches!(error.status, 400 | 422)),
            Ok(mapped) => {
                for entry in mapped.entries() {
                    match &entry.result {
                        Err(error) => prop_assert!(matches!(error.status, 400 | 422)),
                        Ok(events) => {
                            for event in events {
                                prop_assert!(event.validate(received_at()).is_ok());
                            }
                        }
                    }
                }
            }
        }
    }
}
