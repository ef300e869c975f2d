//! Batch NDJSON imports against a real broker process (Tansu): what each kind of line becomes,
//! a second run that publishes nothing, and `sluice produce file` killed with SIGKILL at random
//! moments and restarted until done, after which every line is in Kafka exactly once.

mod support;

use std::{
    collections::HashMap,
    process::Stdio,
    time::{Duration, Instant},
};

use sluice::{provision, services, topics::Topics};
use sluice_producers::{
    PublisherConfig,
    batch_file::{Checkpoint, FileImportConfig, file_identity},
    headers::{SOURCE_ADAPTER, SOURCE_REFERENCE},
};
use support::{TopicRecord, read_topic, tansu::Tansu};
use tokio::sync::watch;

/// The `n`th NHS number of the reserved test range with a valid Modulus 11 check digit.
fn test_nhs_number(n: u32) -> String {
    let mut candidate = 999_000_000 + n * 7;
    loop {
        let digits: Vec<u32> = candidate.to_string().chars().map(|c| c.to_digit(10).unwrap()).collect();
        let sum: u32 = digits.iter().enumerate().map(|(i, d)| d * (10 - i as u32)).sum();
        let check = (11 - sum % 11) % 11;
        if check != 10 {
            return format!("{candidate}{check}");
        }
        candidate += 1;
    }
}

/// A FHIR Observation line (glucose result) for patient `n`.
fn observation(id: &str, nhs_number: &str) -> String {
    format!(
        r#"{{"resourceType": "Observation", "id": "{id}", "status": "final", "code": {{"coding": [{{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose [Mass/volume] in Serum or Plasma"}}]}}, "subject": {{"identifier": {{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "{nhs_number}"}}}}, "effectiveDateTime": "2026-03-15T08:10:00Z", "issued": "2026-03-15T11:02:00Z", "performer": [{{"identifier": {{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RR8"}}}}], "valueQuantity": {{"value": 5.4, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}}}}"#
    )
}

/// An ADT line in subject JSON form.
fn admission(event_id: &str, nhs_number: &str) -> String {
    format!(
        r#"{{"subject": "adt", "version": 1, "record": {{"event_id": "{event_id}", "occurred_at": "2026-03-14T22:05:00Z", "recorded_at": "2026-03-14T22:06:30Z", "source_organisation": "RR8", "source_system": "PAS", "nhs_number": "{nhs_number}", "local_patient_id": "H0000001", "family_name": "Hargreaves", "given_name": "Eleanor", "date_of_birth": "1948-11-02", "sex": "FEMALE", "postcode": "LS16 5QP", "address_line": "27 Otley Road", "event_type": "ADMIT", "patient_class": "EMERGENCY", "location_code": "AMU", "treatment_function_code": "300"}}}}"#
    )
}

async fn broker_with_topics() -> (Tansu, Topics) {
    let broker = Tansu::start();
    let topics = Topics::embedded();
    provision::apply(&broker.client(), &topics).await.unwrap();
    (broker, topics)
}

/// Source reference -> how many records carry it, over every topic the import writes to.
fn references(client: &rdkafka::ClientConfig, topics: &Topics) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for topic in topics.topic.iter().map(|t| t.name.as_str()) {
        for TopicRecord { headers, .. } in read_topic(client, topic) {
            if headers.get(SOURCE_ADAPTER).map(String::as_str) == Some("file") {
                *seen.entry(headers[SOURCE_REFERENCE].clone()).or_default() += 1;
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_line_is_published_or_dead_lettered_once_and_a_second_run_publishes_nothing() {
    let (broker, topics) = broker_with_topics().await;
    let client = broker.client();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("extract.ndjson");
    let bundle = format!(
        r#"{{"resourceType": "Bundle", "type": "batch", "entry": [{{"resource": {}}}, {{"resource": {}}}]}}"#,
        observation("bundled-1", &test_nhs_number(1)),
        observation("bundled-2", "9990000019"),
    );
    let lines = [
        observation("obs-1", &test_nhs_number(2)),
        admission("0b7e5d0e-8c1a-4f3e-9a57-3c1d2e4f5a61", &test_nhs_number(3)),
        String::new(),
        observation("obs-bad", "9990000019"),
        "{\"resourceType\": \"Observation\", Zebedee".to_owned(),
        bundle,
        admission("not-a-uuid", &test_nhs_number(4)),
    ];
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let config = FileImportConfig { state_dir: dir.path().join("state"), ..FileImportConfig::default() };
    let import = || async {
        let (_stop, shutdown) = watch::channel(false);
        services::import_file(&client, &topics, &path, &config, PublisherConfig::default(), shutdown, |_| {})
            .await
            .unwrap()
    };

    let report = import().await;
    assert!(report.complete);
    assert_eq!((report.lines, report.blank_lines, report.dead_letters), (7, 1, 4));
    assert_eq!(report.events.get("observation"), Some(&2));
    assert_eq!(report.events.get("adt"), Some(&1));

    let id = file_identity(&path).unwrap();
    let seen = references(&client, &topics);
    let expected: Vec<String> = ["line=1", "line=2", "line=4", "line=5", "line=6#0", "line=6#1", "line=7"]
        .iter()
        .map(|suffix| format!("file:{id}:{suffix}"))
        .collect();
    let mut found: Vec<&String> = seen.keys().collect();
    found.sort();
    assert_eq!(found, expected.iter().collect::<Vec<_>>());
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    let dead_letters = read_topic(&client, topics.dead_letter());
    let reasons: Vec<&str> = dead_letters.iter().map(|r| r.headers["sluice.dead_letter.reason"].as_str()).collect();
    assert!(reasons.contains(&"line 5: is not valid JSON (line 1, column 33)"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("line 4: Observation.subject:")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("line 7: `record.event_id`:")), "{reasons:?}");
    assert!(reasons.iter().all(|r| !r.contains("Zebedee") && !r.contains("9990000019")), "{reasons:?}");
    assert!(dead_letters.iter().any(|r| r.payload == lines[4].as_bytes()), "the line is kept as it was");

    let again = import().await;
    assert!(again.complete);
    assert_eq!((again.lines, again.events.len(), again.dead_letters), (0, 0, 0));
    assert_eq!(references(&client, &topics), seen, "a second run publishes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_at_random_moments_and_restarted_publishes_every_line_exactly_once() {
    let (broker, topics) = broker_with_topics().await;
    let client = broker.client();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.ndjson");
    const LINES: u32 = 40_000;
    let mut text = String::new();
    for n in 1..=LINES {
        // Every 500th line is refused (a bad check digit) and must be dead-lettered exactly once too.
        let nhs_number = if n % 500 == 0 { "9990000019".to_owned() } else { test_nhs_number(n % 2_000) };
        text.push_str(&observation(&format!("obs-{n}"), &nhs_number));
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    let id = file_identity(&path).unwrap();
    let state = dir.path().join("state");

    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut random = seed;
    let mut next_delay = || {
        random = random.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        Duration::from_millis((random >> 33) % 500)
    };
    let run = || {
        support::sluice()
            .args(["produce", "file"])
            .arg(&path)
            .args(["--checkpoint-interval-secs", "1"])
            .arg("--state-dir")
            .arg(&state)
            .args(["--brokers", &broker.bootstrap()])
            .env("SLUICE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let checkpoint_line =
        || Checkpoint::load(&Checkpoint::path(&state, &id)).unwrap().map(|c| (c.next_line, c.complete));
    let mut kills = 0;
    // Kills after some lines were stored and before the end: the cases resuming is for.
    let mut mid_run_kills = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(Instant::now() < deadline, "the import did not finish (seed {seed})");
        let before = checkpoint_line().map_or(0, |(line, _)| line);
        let mut child = run();
        if kills < 6 {
            // Wait until this run has stored lines of its own, then kill it a random moment later.
            while child.try_wait().unwrap().is_none() && checkpoint_line().is_none_or(|(line, _)| line <= before) {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(next_delay());
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                mid_run_kills +=
                    u32::from(checkpoint_line().is_some_and(|(line, complete)| line > before && !complete));
                continue;
            }
        }
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "seed {seed}: {}", String::from_utf8_lossy(&output.stderr));
        if checkpoint_line().is_some_and(|(_, complete)| complete) {
            break;
        }
    }
    eprintln!("killed the import {kills} times, {mid_run_kills} of them mid-run (seed {seed})");
    assert!(mid_run_kills >= 2, "the import was never killed mid-run (seed {seed}); the test proves nothing");

    let seen = references(&client, &topics);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "published more than once (seed {seed}): {twice:?}");
    for n in 1..=LINES {
        assert!(seen.contains_key(&format!("file:{id}:line={n}")), "line {n} missing (seed {seed})");
    }
    assert_eq!(seen.len(), LINES as usize);
    assert_eq!(read_topic(&client, topics.dead_letter()).len(), (LINES / 500) as usize);
}
