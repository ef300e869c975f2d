//! Robustness: no error ever quotes an input value, and no input makes the mapping panic.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::fixtures::*;
use super::map;
use crate::fhir::{BundleKind, FhirError, IssueType, Mapped, ResponseEntry, bundle_response, operation_outcome};
use crate::json_input;

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
        assert_renders_without(error, &SECRETS);
    }
}

/// Every rendering of a refusal (what is dead-lettered, answered and logged) is free of each of
/// `values`.
fn assert_renders_without(error: &FhirError, values: &[&str]) {
    let renderings = [
        format!("{error:?}"),
        error.to_string(),
        operation_outcome(&[error]).to_string(),
        bundle_response(BundleKind::BatchResponse, &[ResponseEntry::refused(error)]).to_string(),
    ];
    for rendering in renderings {
        for value in values {
            assert!(!rendering.contains(value), "{rendering} holds {value:?}");
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
                                prop_assert!(event.check(received_at()).is_ok());
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The server's reading step (`fhir::server`, before [`map_request`](crate::fhir::map_request)):
/// the body must be UTF-8, then JSON. Either failure is refused (400 `structure`) and
/// dead-lettered with this text, which gives the position only.
fn read_body(bytes: &[u8]) -> Result<Value, String> {
    let text = json_input::utf8(bytes)?;
    serde_json::from_str(text).map_err(|error| json_input::describe(&error))
}

/// NHS numbers no refusal may quote.
const NHS_NUMBERS: [&str; 2] = [PATIENT_NHS, OTHER_NHS];

/// Every rendering of a refusal is free of NHS numbers.
fn assert_quotes_no_nhs_number(error: &FhirError) {
    assert_renders_without(error, &NHS_NUMBERS);
}

/// Poison bodies the reading step must refuse before any mapping: bytes that are not UTF-8
/// (inside the NHS number, so the refusal must not quote the text around it), a lone UTF-16
/// surrogate escape (valid-looking JSON that is no Unicode text), and 10,000 nested arrays or
/// objects. serde_json stops at a depth of 128, so nesting cannot overflow the stack of the
/// server's task, here or later when the value is mapped, dropped or re-serialised.
#[test]
fn bodies_that_are_not_utf8_or_nest_too_deeply_are_refused_by_position_only() {
    let patient_body = serde_json::to_vec(&patient()).unwrap();
    assert!(read_body(&patient_body).is_ok(), "the unaltered fixture reads");
    let at = patient_body.windows(PATIENT_NHS.len()).position(|w| w == PATIENT_NHS.as_bytes()).unwrap();
    let mut not_utf8 = patient_body.clone();
    not_utf8[at + 5] = 0xFF;
    let error = read_body(&not_utf8).unwrap_err();
    assert_eq!(error, format!("is not valid UTF-8 (line 1, column {})", at + 6));
    assert!(!error.contains("99900"), "{error}");

    let surrogate = br#"{"resourceType":"Patient","name":[{"family":"\ud800"}]}"#;
    assert!(read_body(surrogate).unwrap_err().starts_with("is not valid JSON"));

    let depth = 10_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects =
        format!(r#"{{"resourceType":"Observation","extension":{}1{}}}"#, r#"{"url":"#.repeat(depth), "}".repeat(depth));
    for body in [arrays, objects] {
        let error = read_body(body.as_bytes()).unwrap_err();
        assert!(error.starts_with("is not valid JSON (line 1, column "), "{error}");
    }

    // Nesting the reader allows, where the mapping does not look or where it expects another type.
    let nested = |depth: usize| read_body(format!("{}0{}", "[".repeat(depth), "]".repeat(depth)).as_bytes()).unwrap();
    let events = map(&with(heart_rate(), "extension", nested(120)), Some("Observation")).unwrap();
    assert!(events.entries()[0].result.is_ok(), "an ignored element may be deep");
    let Ok(mapped) = map(&with(heart_rate(), "subject", nested(120)), Some("Observation")) else { panic!("mapped") };
    let error = mapped.entries()[0].result.clone().unwrap_err();
    assert_eq!(
        (error.status, error.code, error.expression.as_str()),
        (400, IssueType::Structure, "Observation.subject")
    );
}

/// Resources this adapter does not map (Medication, Basic, and an Observation whose subject is
/// the Basic) in a batch and in a transaction: each is refused on its own with a reason, the
/// other entries still map, and no reason quotes the NHS numbers the unexpected resources carry.
#[test]
fn unexpected_resources_in_batch_and_transaction_bundles_are_refused_on_their_own() {
    let medication = json!({
        "resourceType": "Medication",
        "id": "med-1",
        "code": { "coding": [{ "system": "http://snomed.info/sct", "code": "322236009" }] }
    });
    let basic = json!({
        "resourceType": "Basic",
        "id": "basic-1",
        "identifier": [{ "system": NHS, "value": OTHER_NHS }],
        "code": { "text": "a note about the patient" },
        "subject": nhs_subject(PATIENT_NHS)
    });
    let about_basic = with(with(heart_rate(), "id", json!("obs-2")), "subject", json!({ "reference": "urn:uuid:b" }));
    for kind in ["batch", "transaction"] {
        let bundle = json!({
            "resourceType": "Bundle",
            "id": "poison-1",
            "type": kind,
            "entry": [
                { "fullUrl": "urn:uuid:m", "resource": medication },
                { "fullUrl": "urn:uuid:b", "resource": basic },
                { "resource": about_basic },
                { "resource": heart_rate() }
            ]
        });
        let mapped = map(&bundle, None).unwrap();
        assert_eq!(matches!(mapped, Mapped::Transaction { .. }), kind == "transaction");
        let entries = mapped.entries();
        let outcome = |index: usize| {
            let entry = &entries[index];
            let error = entry.result.as_ref().map(|_| ()).map_err(|e| (e.status, e.code, e.expression.as_str()));
            (entry.resource_type.as_str(), entry.reference.as_str(), error)
        };
        assert_eq!(outcome(0), ("Medication", "Medication/med-1", Err((422, IssueType::NotSupported, "Medication"))));
        assert_eq!(outcome(1), ("Basic", "Basic/basic-1", Err((422, IssueType::NotSupported, "Basic"))));
        assert_eq!(
            outcome(2),
            ("Observation", "Observation/obs-2", Err((422, IssueType::Processing, "Observation.subject")))
        );
        assert_eq!(outcome(3), ("Observation", "Observation/obs-hr-1", Ok(())));
        assert_eq!(entries[3].result.as_ref().unwrap().len(), 1);
        for error in entries.iter().filter_map(|entry| entry.result.as_ref().err()) {
            assert!(!error.diagnostics.is_empty());
            assert_quotes_no_nhs_number(error);
        }
    }
}

/// JSON of the wrong type where FHIR expects an object, an array or a string (an NHS number as
/// a bare string where a Reference belongs, a number where a string belongs, an object where
/// an array belongs): each is a 400 `structure` refusal naming the element, never its value.
#[test]
fn elements_of_the_wrong_json_type_are_structure_errors_that_quote_nothing() {
    let nhs_number = PATIENT_NHS.parse::<u64>().unwrap();
    let bundle = |members: Value| {
        let mut bundle = json!({ "resourceType": "Bundle", "type": "batch", "entry": [] });
        bundle.as_object_mut().unwrap().extend(members.as_object().unwrap().clone());
        bundle
    };
    // (body, element at fault)
    let cases = [
        (with(heart_rate(), "subject", json!(PATIENT_NHS)), "Observation.subject"),
        (
            with(heart_rate(), "subject", json!({ "identifier": [{ "system": NHS, "value": PATIENT_NHS }] })),
            "Observation.subject.identifier",
        ),
        (with(heart_rate(), "code", json!("8867-4")), "Observation.code"),
        (with(heart_rate(), "status", json!(true)), "Observation.status"),
        (with(heart_rate(), "meta", json!("2026-03-15T09:35:00Z")), "Observation.meta"),
        (with(heart_rate(), "valueQuantity", json!([72])), "Observation.valueQuantity"),
        (with(patient(), "identifier", json!({ "system": NHS, "value": PATIENT_NHS })), "Patient.identifier"),
        (with(patient(), "identifier", json!([{ "system": NHS, "value": nhs_number }])), "Patient.identifier.value"),
        (with(patient(), "name", json!([{ "family": ["O'Brien"] }])), "Patient.name.family"),
        (json!({ "resourceType": ["Observation"], "subject": PATIENT_NHS }), "Resource.resourceType"),
        (bundle(json!({ "entry": { "resource": heart_rate() } })), "Bundle.entry"),
        (bundle(json!({ "type": ["batch"] })), "Bundle.type"),
        (bundle(json!({ "entry": [{ "resource": PATIENT_NHS }] })), "Bundle.entry.resource"),
    ];
    for (body, element) in cases {
        let error = match map(&body, None) {
            Err(error) => error,
            Ok(mapped) => mapped.entries()[0].result.clone().expect_err(element),
        };
        assert_eq!((error.status, error.code, error.expression.as_str()), (400, IssueType::Structure, element));
        assert_quotes_no_nhs_number(&error);
        assert!(!error.to_string().contains("O'Brien") && !error.to_string().contains("8867-4"), "{error}");
    }
}
