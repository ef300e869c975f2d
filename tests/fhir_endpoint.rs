//! FHIR R4 over HTTP against a real broker process (Tansu): a real HTTP client POSTs the
//! realistic resources and Bundles of `producers/tests/fixtures/fhir/` to the running endpoint;
//! the answers, the topics and finally a lander prove what was stored and what a FHIR Consent
//! withholds.

mod support;

use std::{collections::BTreeMap, path::Path};

use serde_json::{Value, json};
use sluice::{keys, provision, topics::Topics};
use sluice_producers::{
    fhir::server::{FhirServerConfig, ServerCounts},
    headers::{SOURCE_ADAPTER, SOURCE_REFERENCE, TRACEPARENT, TraceContext},
};
use sluice_schemas::{Catalogue, Decoder, apache_avro::types::Value as Avro};
use sluice_testkit::{
    fhir::{FhirAnswer, post, post_json},
    fhir_fixture as fixture,
};
use support::{
    TopicRecord, land_until_caught_up, lander_config,
    listeners::{Serving, serve_fhir},
    read_topic,
    tansu::Tansu,
};

/// The endpoint as the tests run it, taking bodies of up to `max_body_bytes`.
async fn start_endpoint(
    client: &rdkafka::ClientConfig,
    topics: &Topics,
    max_body_bytes: usize,
) -> Serving<ServerCounts> {
    serve_fhir(client, topics, FhirServerConfig { max_body_bytes, ..FhirServerConfig::default() }).await
}

/// A decoded record's fields by name.
fn fields(record: &TopicRecord) -> BTreeMap<String, Avro> {
    let event = Decoder::new(Catalogue::embedded()).decode(&record.payload).unwrap();
    let Avro::Record(fields) = event.value else { panic!("not a record") };
    fields
        .into_iter()
        .map(|(name, value)| match value {
            Avro::Union(_, inner) => (name, *inner),
            value => (name, value),
        })
        .collect()
}

fn issue_code(answer: &FhirAnswer) -> &str {
    answer.body["issue"][0]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_and_bundles_are_answered_as_fhir_and_stored_once_with_trace_and_source_headers() {
    let broker = Tansu::start();
    let client = broker.client();
    let topics = Topics::embedded();
    provision::apply(&client, &topics).await.unwrap();
    let server = start_endpoint(&client, &topics, 64 * 1024).await;
    let address = server.address;

    // The capability statement, as FHIR clients ask for first.
    let metadata = tokio::task::spawn_blocking(move || {
        ureq::get(&format!("http://{address}/metadata")).call().unwrap().body_mut().read_to_string().unwrap()
    })
    .await
    .unwrap();
    let metadata: Value = serde_json::from_str(&metadata).unwrap();
    assert_eq!(metadata["resourceType"], "CapabilityStatement");
    assert_eq!(metadata["fhirVersion"], "4.0.1");

    // A transaction: Patient, Encounter, Condition and Observation of one admission.
    let trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let answer =
        post(address, "/", "application/fhir+json", fixture("transaction_admission.json").into_bytes(), Some(trace))
            .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["type"], "transaction-response");
    let statuses: Vec<&str> =
        answer.body["entry"].as_array().unwrap().iter().map(|e| e["response"]["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["201 Created"; 4]);
    assert_eq!(answer.body["entry"][1]["response"]["location"], "Encounter/adm-20260315-0042");

    // A batch: one result stored, one refused for its NHS number's check digit.
    let answer = post_json(address, "/", &fixture("batch_results.json")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["entry"][0]["response"]["status"], "201 Created");
    assert_eq!(answer.body["entry"][1]["response"]["status"], "422 Unprocessable Entity");
    let outcome = &answer.body["entry"][1]["response"]["outcome"]["issue"][0];
    assert_eq!(outcome["code"], "value");
    assert_eq!(outcome["expression"][0], "Observation.subject");
    assert!(!answer.body.to_string().contains("9990000019"), "the answer never quotes the bad value");

    // A Consent on its own endpoint.
    let answer = post_json(address, "/Consent", &fixture("consent_national_opt_out.json")).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.location.as_deref(), Some("Consent/ndop-9990000034-1"));
    assert_eq!(answer.body["resourceType"], "OperationOutcome");

    // Requests that are refused as a whole.
    let refusals = [
        (post_json(address, "/Observation", &fixture("consent_national_opt_out.json")).await, 400, "invalid"),
        (post_json(address, "/", "{\"resourceType\": \"Observation\", \"id\": ").await, 400, "structure"),
        (post(address, "/", "application/fhir+json", b"\xff\xfe".to_vec(), None).await, 400, "structure"),
        (post(address, "/Observation", "text/plain", b"hello".to_vec(), None).await, 415, "not-supported"),
        (post_json(address, "/Medication", "{\"resourceType\": \"Medication\"}").await, 404, "not-supported"),
        (
            post_json(address, "/", &format!("{{\"resourceType\": \"Basic\", \"id\": \"{}\"}}", "x".repeat(70 * 1024)))
                .await,
            413,
            "processing",
        ),
        (post_json(address, "/", "{\"resourceType\": \"Basic\"}").await, 422, "not-supported"),
    ];
    for (answer, status, code) in &refusals {
        assert_eq!((answer.status, issue_code(answer)), (*status, *code), "{answer:?}");
        assert_eq!(answer.body["resourceType"], "OperationOutcome");
    }
    // A transaction with one bad entry publishes nothing.
    let mut bad_transaction: Value = serde_json::from_str(&fixture("transaction_admission.json")).unwrap();
    bad_transaction["entry"][3]["resource"]["code"]["coding"][0]["code"] = json!("8867-5");
    let answer = post_json(address, "/", &bad_transaction.to_string()).await;
    assert_eq!((answer.status, issue_code(&answer)), (422, "code-invalid"), "{}", answer.body);
    assert_eq!(answer.body["issue"][0]["expression"][0], "Observation.code");

    let [requests, stored, events, refused, not_stored] = server.stop().await.snapshot();
    assert_eq!(requests, 10, "every POST but the one to an endpoint that does not exist");
    assert_eq!((stored, events, refused, not_stored), (6, 6, 6, 0));

    // Kafka holds the events of stored resources only, once each.
    let adt = read_topic(&client, "clinical.adt");
    let observations = read_topic(&client, "clinical.observation");
    let diagnoses = read_topic(&client, "clinical.diagnosis");
    let consent = read_topic(&client, topics.consent());
    assert_eq!((adt.len(), observations.len(), diagnoses.len(), consent.len()), (2, 2, 1, 1));
    let encounter = adt.iter().find(|r| r.headers[SOURCE_REFERENCE] == "fhir:Encounter/adm-20260315-0042").unwrap();
    let encounter_fields = fields(encounter);
    assert_eq!(encounter_fields["event_type"], Avro::Enum(0, "ADMIT".into()));
    assert_eq!(encounter_fields["nhs_number"], Avro::String("9990000042".into()), "resolved through the Bundle");
    assert_eq!(encounter_fields["local_patient_id"], Avro::String("H7654321".into()));
    assert_eq!(encounter_fields["source_system"], Avro::String("urn:rr8:epr".into()));
    assert_eq!(fields(&diagnoses[0])["is_primary"], Avro::Boolean(true), "ranked 1 by the Encounter");
    for record in adt.iter().chain(&diagnoses) {
        let context = TraceContext::parse(&record.headers[TRACEPARENT]).unwrap();
        assert_eq!(context.trace_id(), "0af7651916cd43dd8448eb211c80319c", "the client's trace continues");
        assert_eq!(record.headers[SOURCE_ADAPTER], "fhir-http");
    }
    // Keyed by the whole change, so that compacting the consent topic keeps every change.
    let key = consent[0].key.as_deref().unwrap();
    assert!(key.starts_with("9990000034:NATIONAL_DATA_OPT_OUT:DENY:"), "{key}");
    let consent_fields = fields(&consent[0]);
    assert_eq!(consent_fields["decision"], Avro::Enum(1, "DENY".into()));
    assert_eq!(consent_fields["source_organisation"], Avro::String("X26".into()));

    let dead_letters = read_topic(&client, topics.dead_letter());
    assert_eq!(dead_letters.len(), 6);
    let reasons: Vec<&str> = dead_letters.iter().map(|r| r.headers["sluice.dead_letter.reason"].as_str()).collect();
    assert!(reasons.iter().any(|r| r.starts_with("Observation.subject:")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("Observation.code:")), "{reasons:?}");
    let references: Vec<&str> = dead_letters.iter().map(|r| r.headers[SOURCE_REFERENCE].as_str()).collect();
    assert!(references.contains(&"fhir:Observation/lab-0091-2"), "{references:?}");
    assert!(references.contains(&"fhir:Bundle/tx-20260315-0042"), "{references:?}");
    for reason in reasons {
        assert!(!reason.contains("9990000019") && !reason.contains("8867-5"), "{reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fhir_consent_withholds_that_patients_fhir_results_from_research() {
    let broker = Tansu::start();
    let client = broker.client();
    let topics = Topics::embedded();
    provision::apply(&client, &topics).await.unwrap();
    let server = start_endpoint(&client, &topics, 1 << 20).await;

    // 9990000034 opts out nationally; then results arrive for them and for 9990000026.
    let answer = post_json(server.address, "/Consent", &fixture("consent_national_opt_out.json")).await;
    assert_eq!(answer.status, 201);
    let mut batch: Value = serde_json::from_str(&fixture("batch_results.json")).unwrap();
    batch["entry"][1]["resource"]["subject"]["identifier"]["value"] = json!("9990000034");
    let answer = post_json(server.address, "/", &batch.to_string()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["entry"][1]["response"]["status"], "201 Created", "{}", answer.body);
    server.stop().await;

    let lake = tempfile::tempdir().unwrap();
    let purposes = vec!["research".to_owned(), "direct-care".to_owned()];
    let config = lander_config(lake.path(), &purposes, "fhir-consent-test", &topics);
    let report = land_until_caught_up(&client, &config, &keys::generate(&purposes)).await;
    assert_eq!(report.landed["research"], 1, "{report:?}");
    assert_eq!(report.withheld["research"]["national_data_opt_out"], 1, "{report:?}");
    assert_eq!(report.landed["direct-care"], 2, "the National Data Opt-out does not apply to direct care");
}

/// On the in-process mock cluster, whose broker can be taken down: a resource Kafka cannot store
/// is answered 503 with Retry-After, never 201, and a resend after the outage is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_kafka_is_down_resources_are_answered_503_and_stored_when_sent_again() {
    let (cluster, mut client, topics) = support::mock_cluster();
    client.set("message.timeout.ms", "4000");
    let server = start_endpoint(&client, &topics, 1 << 20).await;
    cluster.broker_down(1).unwrap();
    let answer = post_json(server.address, "/Consent", &fixture("consent_national_opt_out.json")).await;
    assert_eq!((answer.status, answer.retry_after.as_deref()), (503, Some("5")), "{}", answer.body);
    assert_eq!(issue_code(&answer), "processing");
    cluster.broker_up(1).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let answer = post_json(server.address, "/Consent", &fixture("consent_national_opt_out.json")).await;
        if answer.status == 201 {
            break;
        }
        assert_eq!(answer.status, 503);
        assert!(std::time::Instant::now() < deadline, "never stored after the broker came back");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let [_, stored, _, refused, not_stored] = server.stop().await.snapshot();
    assert_eq!((stored, refused), (1, 0));
    assert!(not_stored >= 1);
    let consent = read_topic(&client, topics.consent());
    assert!(!consent.is_empty());
    assert!(
        consent
            .iter()
            .all(|r| r.key.as_deref().is_some_and(|k| k.starts_with("9990000034:NATIONAL_DATA_OPT_OUT:DENY:")))
    );
}

/// Free text that names a patient, sent in every place FHIR lets a sender write text about an
/// observation (the coding's display, the concept's text, a string value, notes, the reference
/// range's text, the interpretation's text), lands in no purpose's lake: not in any value, not
/// anywhere in the raw files or their dictionaries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_text_naming_a_patient_lands_in_no_purpose() {
    const NAME: &str = "Eleanor Hargreaves";
    const ADDRESS: &str = "27 Otley Road";
    const NOTE: &str = "taken at home visit, 27 Otley Road, for Eleanor Hargreaves NHS 943 476 5919 (9434765919)";
    let (_cluster, client, topics) = support::mock_cluster();
    let server = start_endpoint(&client, &topics, 1 << 20).await;
    let observation = json!({
        "resourceType": "Observation",
        "id": "free-text-1",
        "status": "final",
        "code": {
            "coding": [{ "system": "http://loinc.org", "code": "2823-3", "display": NOTE }],
            "text": NOTE
        },
        "subject": { "identifier": { "system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000026" } },
        "effectiveDateTime": "2026-03-15T08:10:00Z",
        "issued": "2026-03-15T11:02:00Z",
        "performer": [{ "identifier": { "system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RR8" } }],
        "valueQuantity": { "value": 4.1, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L" },
        "interpretation": [{ "coding": [{ "code": "N", "display": NOTE }], "text": NOTE }],
        "note": [{ "text": NOTE }],
        "referenceRange": [{ "low": { "value": 3.5 }, "high": { "value": 5.3 }, "text": NOTE }]
    });
    let answer = post_json(server.address, "/Observation", &observation.to_string()).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    server.stop().await;
    // The text did reach the topic: the test would see it if it landed.
    let stored = read_topic(&client, topics.by_subject()["observation"].as_str());
    assert!(stored.iter().any(|r| String::from_utf8_lossy(&r.payload).contains(ADDRESS)));

    let lake = tempfile::tempdir().unwrap();
    let purposes: Vec<String> = ["direct-care", "planning", "research"].map(str::to_owned).to_vec();
    let config = lander_config(lake.path(), &purposes, "free-text-test", &topics);
    let report = land_until_caught_up(&client, &config, &keys::generate(&purposes)).await;
    for purpose in &purposes {
        assert_eq!(report.landed[purpose], 1, "{purpose}: {report:?}");
        let files: Vec<_> = walk(&lake.path().join(purpose));
        assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "parquet")), "{purpose}: a file landed");
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            let raw = String::from_utf8_lossy(&bytes);
            if file.extension().is_some_and(|e| e == "parquet") {
                let cells = support::all_cells(&support::read_parquet(&file).batches).join("\n");
                for text in [NAME, ADDRESS, "Hargreaves", "Otley", "9434765919", "943 476 5919"] {
                    assert!(!cells.contains(text), "{}: a value holds `{text}`", file.display());
                }
            }
            // Parquet files are compressed, so the raw bytes are searched for what would
            // survive: the text as written (metadata, statistics and dictionaries hold it plain).
            for text in [NAME, ADDRESS, "9434765919", "943 476 5919"] {
                assert!(!raw.contains(text), "{}: the raw file holds `{text}`", file.display());
            }
        }
    }
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { stack.push(path) } else { files.push(path) }
        }
    }
    files
}
