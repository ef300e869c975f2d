use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde_json::Value;
use sluice_schemas::Catalogue;

use super::*;
use crate::{lake::parquet::LandedFile, lander::PurposeSetup, pseudonymise::PurposeKey};

fn config(lake: &std::path::Path) -> LanderConfig {
    let text = format!(
        r#"
        lake_dir = "{}"
        purposes = ["direct-care", "research"]
        group_id = "ward-7"
        consent_topic = "clinical.consent"
        dead_letter_topic = "sluice.dead-letter"
        [clinical_topics]
        adt = "clinical.adt"
        observation = "clinical.observation"
        "#,
        lake.display()
    );
    toml::from_str(&text).unwrap()
}

fn setups() -> BTreeMap<String, PurposeSetup> {
    ["direct-care", "research"]
        .into_iter()
        .map(|p| (p.to_owned(), PurposeSetup::builtin(p, PurposeKey::new("k1", &[7; 32]).unwrap()).unwrap()))
        .collect()
}

fn client() -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", "broker-1:9092,broker-2:9092");
    client
}

fn file(key: &str, rows: usize, bytes: u64) -> LandedFile {
    LandedFile { key: key.to_owned(), rows, bytes, sha256: "00".repeat(32), e_tag: None }
}

/// The structure every RunEvent must have, with the types the spec gives.
fn assert_run_event(event: &Value, event_type: &str) {
    assert_eq!(event["eventType"], event_type);
    let time = event["eventTime"].as_str().expect("eventTime is a string");
    chrono::DateTime::parse_from_rfc3339(time).expect("eventTime is RFC 3339");
    Uuid::parse_str(event["run"]["runId"].as_str().unwrap()).expect("runId is a UUID");
    assert_eq!(event["job"]["namespace"], JOB_NAMESPACE);
    assert_eq!(event["job"]["name"], "land:ward-7");
    assert_eq!(event["producer"], PRODUCER);
    assert!(PRODUCER.starts_with("https://"));
    assert_eq!(event["schemaURL"], RUN_EVENT_SCHEMA);
    for dataset in event["inputs"].as_array().unwrap().iter().chain(event["outputs"].as_array().unwrap()) {
        assert!(dataset["namespace"].is_string() && dataset["name"].is_string(), "{dataset}");
        for kind in ["facets", "inputFacets", "outputFacets"] {
            for (_, facet) in dataset[kind].as_object().into_iter().flatten() {
                assert_facet(facet);
            }
        }
    }
    for facets in [&event["run"]["facets"], &event["job"]["facets"]] {
        for (_, facet) in facets.as_object().unwrap() {
            assert_facet(facet);
        }
    }
}

fn assert_facet(facet: &Value) {
    assert_eq!(facet["_producer"], PRODUCER, "{facet}");
    let url = facet["_schemaURL"].as_str().unwrap();
    assert!(url.starts_with("https://openlineage.io/spec/facets/") && url.contains(".json#/$defs/"), "{url}");
}

#[test]
fn start_and_complete_share_the_run_and_count_what_the_report_landed() {
    let lake = tempfile::tempdir().unwrap();
    let config = config(lake.path());
    let lineage = LandingLineage::new(&client(), &config, &setups(), Catalogue::embedded());
    let start = lineage.start();
    assert_run_event(&start, "START");

    let inputs = start["inputs"].as_array().unwrap();
    let names: Vec<&str> = inputs.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["clinical.adt", "clinical.observation"]);
    assert!(inputs.iter().all(|d| d["namespace"] == "kafka://broker-1:9092"));
    let adt_fields = inputs[0]["facets"]["schema"]["fields"].as_array().unwrap();
    assert!(adt_fields.iter().any(|f| f["name"] == "nhs_number"), "the reader schema's fields: {adt_fields:?}");
    assert!(adt_fields.iter().all(|f| f["type"].as_str().is_some_and(|t| !t.is_empty())), "{adt_fields:?}");

    let outputs = start["outputs"].as_array().unwrap();
    let names: Vec<&str> = outputs.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["direct-care/adt", "direct-care/observation", "research/adt", "research/observation"]);
    let lake_namespace = format!("file://{}", lake.path().canonicalize().unwrap().display());
    assert!(outputs.iter().all(|d| d["namespace"] == lake_namespace.as_str()));
    // Output columns are the policy's: research lands no NHS number as it is.
    let research_adt = outputs[2]["facets"]["schema"]["fields"].as_array().unwrap();
    assert!(!research_adt.is_empty());
    assert!(research_adt.iter().all(|f| f["name"] != "nhs_number"), "{research_adt:?}");
    assert!(outputs.iter().all(|d| d.get("outputFacets").is_none()));

    let mut report = LandingReport::default();
    report.consumed.insert("adt".to_owned(), 5);
    report.consumed.insert("observation".to_owned(), 7);
    report.landed.insert("direct-care".to_owned(), 12);
    report.landed.insert("research".to_owned(), 9);
    report.files = vec![
        file(
            "direct-care/adt/event_date=2026-03-01/clinical.adt+0+00000000000000000000-00000000000000000004.parquet",
            5,
            100,
        ),
        file("direct-care/observation/event_date=2026-03-01/a.parquet", 4, 80),
        file("direct-care/observation/event_date=2026-03-02/b.parquet", 3, 60),
        file("research/adt/event_date=2026-03-01/c.parquet", 4, 90),
        file("research/observation/event_date=2026-03-01/d.parquet", 5, 70),
    ];
    let complete = lineage.complete(&report);
    assert_run_event(&complete, "COMPLETE");
    assert_eq!(complete["run"]["runId"], start["run"]["runId"]);
    let stats = |name: &str| {
        let dataset = complete["outputs"].as_array().unwrap().iter().find(|d| d["name"] == name).unwrap();
        let s = &dataset["outputFacets"]["outputStatistics"];
        (s["rowCount"].as_u64().unwrap(), s["size"].as_u64().unwrap(), s["fileCount"].as_u64().unwrap())
    };
    assert_eq!(stats("direct-care/adt"), (5, 100, 1));
    assert_eq!(stats("direct-care/observation"), (7, 140, 2));
    for purpose in ["direct-care", "research"] {
        let rows: u64 = ["adt", "observation"].iter().map(|s| stats(&format!("{purpose}/{s}")).0).sum();
        assert_eq!(rows, report.landed[purpose], "{purpose}");
    }
    let consumed: Vec<u64> = complete["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["inputFacets"]["inputStatistics"]["rowCount"].as_u64().unwrap())
        .collect();
    assert_eq!(consumed, [5, 7]);

    // A new run has a new id.
    let again = LandingLineage::new(&client(), &config, &setups(), Catalogue::embedded());
    assert_ne!(again.run_id(), lineage.run_id());
}

#[test]
fn fail_carries_the_error_message() {
    let lake = tempfile::tempdir().unwrap();
    let lineage = LandingLineage::new(&client(), &config(lake.path()), &BTreeMap::new(), Catalogue::embedded());
    let fail = lineage.fail("no policy for purpose `research`");
    assert_run_event(&fail, "FAIL");
    let facet = &fail["run"]["facets"]["errorMessage"];
    assert_eq!(facet["message"], "no policy for purpose `research`");
    assert_eq!(facet["programmingLanguage"], "Rust");
    // Without policies the outputs are still named, just without a schema.
    assert_eq!(fail["outputs"].as_array().unwrap().len(), 4);
    assert!(fail["outputs"][0]["facets"].is_null());
}

#[test]
fn an_object_store_lake_is_the_outputs_namespace() {
    let lake = tempfile::tempdir().unwrap();
    let mut config = config(lake.path());
    config.lake_url = Some("s3://lake-bucket/sluice/".to_owned());
    let start = LandingLineage::new(&client(), &config, &setups(), Catalogue::embedded()).start();
    assert!(start["outputs"].as_array().unwrap().iter().all(|d| d["namespace"] == "s3://lake-bucket/sluice"));
}

#[test]
fn lineage_config_defaults_to_nothing_emitted() {
    assert!(!LineageConfig::default().enabled());
    let parsed: LineageConfig = toml::from_str("file = \"/tmp/l.jsonl\"").unwrap();
    assert!(parsed.enabled());
    assert_eq!(parsed.timeout_secs, 10);
    assert!(toml::from_str::<LineageConfig>("endpoint = \"x\"").is_err());
}
