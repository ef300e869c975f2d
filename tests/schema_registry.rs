//! Producers that use a Confluent Schema Registry: `sluice registry serve` answers confluent-kafka's
//! own `SchemaRegistryClient`, `AvroSerializer` and `AvroDeserializer` (Python, from PyPI), the
//! serializer's records go to a real broker (Tansu), and `sluice land` lands them exactly as it
//! lands the records of sluice's own producers.

mod support;

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, Stdio},
    time::Duration,
};

use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use sluice_schemas::{Catalogue, Encoder, Framing};
use support::pipeline::{Pipeline, assert_exactly, stop};

/// `sluice registry serve` on a free port, and its URL.
fn start_registry() -> (Child, String) {
    let mut registry = support::sluice()
        .args(["registry", "serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut announced = String::new();
    BufReader::new(registry.stderr.take().unwrap()).read_line(&mut announced).unwrap();
    let url = announced.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{announced}");
    (registry, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_confluent_serializer_frames_at_sluices_registry_land_like_sluices_own() {
    const EVENTS: u64 = 2_000;
    let pipeline = Pipeline::start().await;
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 300, events: EVENTS, ..Default::default() }).unwrap();
    // Consent from sluice's own producer; the clinical events come through the serializer.
    pipeline.publish(&source, 0, 0).await;
    let (mut registry, url) = start_registry();

    // The events as sluice encodes them, for the Python producer to decode and frame again.
    let catalogue = Catalogue::embedded();
    let encoder = Encoder::new(catalogue, Framing::SingleObject);
    let by_subject = pipeline.topics.by_subject();
    let records = pipeline.dir.path().join("records.jsonl");
    let mut file = std::fs::File::create(&records).unwrap();
    for event in source.clinical_events().take(EVENTS as usize) {
        let bytes =
            encoder.encode(catalogue.version(event.subject(), event.version()).unwrap(), event.value()).unwrap();
        let line = serde_json::json!({
            "topic": by_subject[event.subject()],
            "key": event.key(),
            "value_hex": bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        });
        writeln!(file, "{line}").unwrap();
    }
    drop(file);

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registry/confluent_producer.py");
    let output = std::process::Command::new("python3")
        .arg(&script)
        .args(["--registry", &url, "--brokers", &pipeline.broker.bootstrap(), "--records"])
        .arg(&records)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    registry.kill().unwrap();
    registry.wait().unwrap();

    assert_eq!(summary["produced"], EVENTS, "{summary}");
    assert!(summary["subjects"].as_array().unwrap().iter().any(|s| s == "clinical.observation-value"), "{summary}");
    // The serializer framed with the registry's ids: the catalogue's own Confluent ids.
    for (subject, topic) in &by_subject {
        if let Some(id) = summary["ids"].get(topic.as_str()) {
            assert_eq!(id, catalogue.latest(subject).unwrap().schema_id(), "{topic}");
        }
    }
    assert_eq!(summary["framing"]["magic"], 0);
    assert_eq!(summary["reads_back"], true, "AvroDeserializer reads the record back: {summary}");
    let novel = &summary["novel_schema"];
    assert_eq!((&novel["http_status"], &novel["error_code"]), (&serde_json::json!(409), &serde_json::json!(409)));
    assert!(novel["message"].as_str().unwrap().contains("schemas/avro/adt/"), "{novel}");

    // sluice lands the serializer's records: exactly the events the consent and policy permit.
    let lander = pipeline.lander("registry", "lander");
    pipeline.wait_until_committed("registry", Duration::from_secs(180));
    stop(lander);
    assert_exactly(&pipeline.lake(), &pipeline.permitted(&source, EVENTS as usize));
}
