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

use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use sluice_schemas::{Catalogue, Encoder, Framing};
use support::{
    pipeline::{Pipeline, assert_exactly, stop},
    read_topic,
};

/// A child process killed when the test ends, passed or not (a registry left running would keep
/// the test's output open).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sluice registry serve` on a free port, and its URL.
fn start_registry() -> (Running, String) {
    let mut registry = support::sluice()
        .args(["registry", "serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut announced = String::new();
    BufReader::new(registry.stderr.take().unwrap()).read_line(&mut announced).unwrap();
    let url = announced.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{announced}");
    (Running(registry), url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_confluent_serializer_frames_at_sluices_registry_land_like_sluices_own() {
    const EVENTS: u64 = 2_000;
    let pipeline = Pipeline::start().await;
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 300, events: EVENTS, ..Default::default() }).unwrap();
    // Consent from sluice's own producer; the clinical events come through the serializer.
    pipeline.publish(&source, 0, 0).await;
    let (registry, url) = start_registry();

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
    drop(registry);

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

/// The stand-in for an estate's own registry (`tests/registry/foreign_registry.py`): the process,
/// its URL, its id for each catalogued `<subject>/v<N>`, and the id of a schema the catalogue
/// does not hold.
fn start_foreign_registry() -> (Running, String, serde_json::Value, u32) {
    let repository = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut registry = std::process::Command::new("python3")
        .arg(repository.join("tests/registry/foreign_registry.py"))
        .arg(repository.join("schemas/avro"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(registry.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let started: serde_json::Value = serde_json::from_str(&first).unwrap();
    let url = started["url"].as_str().unwrap().to_owned();
    (Running(registry), url, started["ids"].clone(), started["not_catalogued"].as_u64().unwrap() as u32)
}

/// Confluent framing: a zero byte, the id big-endian, the body.
fn confluent(id: u32, body: &[u8]) -> Vec<u8> {
    let mut framed = vec![0];
    framed.extend_from_slice(&id.to_be_bytes());
    framed.extend_from_slice(body);
    framed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lander_reads_an_estates_own_registry_ids_and_dead_letters_a_schema_the_catalogue_lacks() {
    const EVENTS: u64 = 1_500;
    let pipeline = Pipeline::start().await;
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 300, events: EVENTS, ..Default::default() }).unwrap();
    pipeline.publish(&source, 0, 0).await;
    let (_registry, url, ids, not_catalogued) = start_foreign_registry();

    // Every event framed with the estate registry's id for its version, not sluice's.
    let catalogue = Catalogue::embedded();
    let encoder = Encoder::new(catalogue, Framing::SingleObject);
    let by_subject = pipeline.topics.by_subject();
    let producer: FutureProducer = pipeline.broker.client().create().unwrap();
    let mut used = std::collections::BTreeSet::new();
    for event in source.clinical_events().take(EVENTS as usize) {
        let version = catalogue.version(event.subject(), event.version()).unwrap();
        let id = ids[format!("{}/v{}", event.subject(), event.version())].as_u64().unwrap() as u32;
        assert_ne!(id, version.schema_id(), "the estate's ids are its own");
        used.insert(id);
        let body = &encoder.encode(version, event.value()).unwrap()[10..];
        let framed = confluent(id, body);
        let record = FutureRecord::to(&by_subject[event.subject()]).payload(&framed[..]).key(event.key());
        producer.send(record, Duration::from_secs(10)).await.unwrap();
    }
    // Three records under an id whose schema the catalogue does not hold.
    for n in 0..3u8 {
        let framed = confluent(not_catalogued, &[2, n]);
        producer
            .send(FutureRecord::to("clinical.adt").payload(&framed[..]).key("x"), Duration::from_secs(10))
            .await
            .unwrap();
    }

    // While the registry cannot be reached, the lander holds: it stops, commits nothing and
    // dead-letters nothing.
    let mut held = pipeline.lander_with("held", "held", &["--schema-registry", "http://127.0.0.1:9"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = held.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the lander did not stop:\n{}", pipeline.log("held"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let log = support::pipeline::strip_ansi(&pipeline.log("held"));
    assert!(!status.success(), "{log}");
    assert!(log.contains("landing holds until the schema registry answers"), "{log}");
    assert!(read_topic(&pipeline.broker.client(), pipeline.topics.dead_letter()).is_empty());
    let client = pipeline.broker.client();
    let ends = support::high_watermarks(&client, &pipeline.topics.clinical());
    let committed = support::pipeline::group_committed(&client, "held", &ends);
    assert!(committed.values().all(|offset| *offset <= 0), "nothing committed: {committed:?}");

    let lander = pipeline.lander_with("estate", "lander", &["--schema-registry", &url]);
    pipeline.wait_until_committed("estate", Duration::from_secs(180));
    stop(lander);
    assert_exactly(&pipeline.lake(), &pipeline.permitted(&source, EVENTS as usize));
    let dead_letters = read_topic(&pipeline.broker.client(), pipeline.topics.dead_letter());
    assert_eq!(dead_letters.len(), 3);
    for letter in &dead_letters {
        let reason = &letter.headers["sluice.dead_letter.reason"];
        assert!(
            reason.contains(&format!("schema id {not_catalogued} at the schema registry is not a catalogued version")),
            "{reason}"
        );
    }
    // Each id was asked about once, not once per record.
    let asked: serde_json::Value = {
        let url = format!("{url}/requests");
        tokio::task::spawn_blocking(move || {
            let mut response = ureq::get(&url).call().unwrap();
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
        })
        .await
        .unwrap()
    };
    assert_eq!(asked["count"].as_u64().unwrap() as usize, used.len() + 1, "{asked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_frames_with_an_estates_registry_ids_and_the_lander_lands_them() {
    let pipeline = Pipeline::start().await;
    let (_registry, url, ids, _) = start_foreign_registry();
    let keys = pipeline.dir.path().join("keys.toml");
    let produced = support::sluice()
        .args(["produce", "synthetic", "--events", "800", "--patients", "150", "--framing", "confluent"])
        .args(["--schema-registry", &url, "--brokers", &pipeline.broker.bootstrap()])
        .env("SLUICE_KEYS_FILE", &keys)
        .output()
        .unwrap();
    assert!(produced.status.success(), "{}", String::from_utf8_lossy(&produced.stderr));

    // Every clinical record carries one of the registry's ids, none of the catalogue's.
    let estate_ids: std::collections::BTreeSet<u64> =
        ids.as_object().unwrap().values().map(|id| id.as_u64().unwrap()).collect();
    let client = pipeline.broker.client();
    let mut records = 0;
    for topic in pipeline.topics.clinical().values() {
        for record in read_topic(&client, topic) {
            assert_eq!(record.payload[0], 0, "Confluent framing");
            let id = u32::from_be_bytes(record.payload[1..5].try_into().unwrap());
            assert!(estate_ids.contains(&u64::from(id)), "{topic}: id {id} is not the registry's");
            records += 1;
        }
    }
    assert_eq!(records, 800);

    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 150, events: 800, ..Default::default() }).unwrap();
    let lander = pipeline.lander_with("produced", "lander", &["--schema-registry", &url]);
    pipeline.wait_until_committed("produced", Duration::from_secs(180));
    stop(lander);
    assert_exactly(&pipeline.lake(), &pipeline.permitted(&source, 800));
    assert!(read_topic(&client, pipeline.topics.dead_letter()).is_empty());
}
