//! OpenTelemetry end to end: `sluice demo` run as a process with OTLP/HTTP export to a local
//! collector and JSON logs. Checks that traces run from each event's `publish` span through the
//! Kafka `traceparent` header to its `land` span and on to the file it landed in, that the metrics
//! agree with the audit log, that logs are structured, and that nothing the run emitted (spans,
//! metrics, logs, stdout, stderr, lineage, audit) holds a patient identifier.

mod support;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use support::{pipeline::*, *};

const EVENTS: u64 = 3_000;

fn source_config() -> SyntheticSourceConfig {
    SyntheticSourceConfig { patients: 400, events: EVENTS, seed: 77, ..SyntheticSourceConfig::default() }
}

#[test]
fn a_demo_run_exports_linked_traces_agreeing_metrics_and_structured_logs_and_no_identifier() {
    let (collector, received) = http_server();
    let lake = tempfile::tempdir().unwrap();
    let output = support::sluice()
        .args(["demo", "--events", &EVENTS.to_string(), "--patients", "400", "--seed", "77", "--lake"])
        .arg(lake.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
        // Room for every span of the run, so the test sees them all.
        .env("OTEL_BSP_MAX_QUEUE_SIZE", "100000")
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .env("SLUICE_LOG", "debug")
        .env("SLUICE_LOG_FORMAT", "json")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");

    let received = received.lock().unwrap().clone();
    let (traces, metrics, logs) =
        (bodies(&received, "/v1/traces"), bodies(&received, "/v1/metrics"), bodies(&received, "/v1/logs"));
    let stop = audit_stop_record(lake.path());

    // Traces: every consumed event's `land` span is the child of its `publish` span, in the
    // same trace, and links to the `write parquet` spans of the files it landed in.
    let spans = spans(&traces);
    let by_id: HashMap<(&str, &str), &Value> =
        spans.iter().map(|span| ((text(span, "traceId"), text(span, "spanId")), *span)).collect();
    let named = |name: &'static str| spans.iter().filter(move |span| span["name"] == name).copied();
    let consumed: u64 = stop["consumed"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(consumed, EVENTS);
    assert!(named("publish").count() as u64 >= EVENTS, "a publish span per event");
    // The files as landed (the demo compacts them afterwards), from the audit log's landing records.
    let files_landed: HashSet<String> = audit_events(lake.path())
        .iter()
        .filter(|event| event["kind"] == "landing")
        .flat_map(|event| items(event, "files"))
        .map(|file| text(file, "path").to_owned())
        .collect();
    assert_eq!(files_landed.len() as u64, stop["files"].as_u64().unwrap());
    let mut lands = 0;
    let mut files_reached = HashSet::new();
    for land in named("land") {
        lands += 1;
        let parent = by_id.get(&(text(land, "traceId"), text(land, "parentSpanId"))).expect("the publish span");
        assert_eq!(parent["name"], "publish");
        assert_eq!(attribute(parent, "messaging.kafka.offset"), attribute(land, "messaging.kafka.offset"));
        let landed_for = attribute(land, "sluice.landed_for").unwrap();
        let links = items(land, "links");
        if landed_for["arrayValue"]["values"].as_array().is_some_and(|v| !v.is_empty()) {
            assert!(!links.is_empty(), "a landed event links to its files: {land}");
        }
        for link in links {
            let file = by_id.get(&(text(link, "traceId"), text(link, "spanId"))).expect("the file's span");
            assert_eq!(file["name"], "write parquet");
            files_reached.insert(attribute(file, "sluice.file").unwrap()["stringValue"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(lands, EVENTS, "a land span per consumed event");
    let unreached: Vec<&String> = files_landed.difference(&files_reached).collect();
    let unknown: Vec<&String> = files_reached.difference(&files_landed).collect();
    assert!(
        unreached.is_empty() && unknown.is_empty(),
        "every landed file is reached from an event's trace: {} of {} unreached (e.g. {:?}), {} unknown (e.g. {:?})",
        unreached.len(),
        files_landed.len(),
        unreached.first(),
        unknown.len(),
        unknown.first()
    );

    // Metrics agree with the audit log's stop record.
    let points = data_points(&metrics);
    let total = |name: &str, label: Option<(&str, &str)>| -> u64 {
        // Cumulative sums: the largest value exported for each label set is the final one.
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        for (metric, labels, value) in points.iter().filter(|(metric, _, _)| metric == name) {
            if label.is_none_or(|(key, value)| labels.get(key).map(String::as_str) == Some(value)) {
                let slot = last.entry(format!("{metric}{labels:?}")).or_default();
                *slot = (*slot).max(*value);
            }
        }
        last.values().sum()
    };
    assert_eq!(total("sluice.lander.events.consumed", None), EVENTS);
    for (purpose, rows) in stop["landed"].as_object().unwrap() {
        assert_eq!(total("sluice.lander.events.landed", Some(("sluice.purpose", purpose))), rows.as_u64().unwrap());
    }
    for (purpose, reasons) in stop["withheld"].as_object().unwrap() {
        let withheld: u64 = reasons.as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
        assert!(withheld > 0);
        assert_eq!(total("sluice.lander.events.withheld", Some(("sluice.purpose", purpose))), withheld);
    }
    assert_eq!(total("sluice.lander.file.size", None), files_landed.len() as u64, "one size per file");
    assert!(total("sluice.lander.checkpoint.latency", None) > 0);
    assert!(points.iter().any(|(metric, _, _)| metric == "sluice.lander.consumer.lag"), "lag is reported");
    assert!(total("sluice.producer.events.published", Some(("sluice.source.adapter", "synthetic"))) >= EVENTS);

    // Logs: JSON lines on stderr and the same records over OTLP.
    // (The demo also writes its banner and summary for people; log lines are the JSON objects.)
    let stderr_lines: Vec<Value> = stderr
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(stderr_lines.iter().all(|line| line["timestamp"].is_string() && line["level"].is_string()));
    assert!(stderr_lines.iter().any(|line| line["message"] == "checkpoint: files landed, offsets committed"));
    let log_bodies: Vec<&str> = logs
        .iter()
        .flat_map(|body| items(body, "resourceLogs"))
        .flat_map(|resource| items(resource, "scopeLogs"))
        .flat_map(|scope| items(scope, "logRecords"))
        .filter_map(|record| record["body"]["stringValue"].as_str())
        .collect();
    assert!(log_bodies.contains(&"checkpoint: files landed, offsets committed"), "{log_bodies:?}");

    // Nothing emitted identifies a patient.
    let scanner = IdentifierScan::new(&SyntheticSource::new(source_config()).unwrap());
    let mut emitted: Vec<(String, String)> = received
        .iter()
        .map(|(headers, body)| (headers[":request"].clone(), String::from_utf8_lossy(body).into_owned()))
        .collect();
    emitted.push(("stdout".to_owned(), stdout.into_owned()));
    emitted.push(("stderr".to_owned(), stderr.into_owned()));
    for side_file in ["_audit/audit.jsonl", "_lineage/openlineage.jsonl"] {
        emitted.push((side_file.to_owned(), std::fs::read_to_string(lake.path().join(side_file)).unwrap()));
    }
    assert!(emitted.iter().map(|(_, text)| text.len()).sum::<usize>() > 1_000_000, "the run emitted plenty to scan");
    for (what, text) in &emitted {
        assert_eq!(scanner.find(text), None, "{what} holds an identifier");
    }
    // The scan can fail: it finds each kind of identifier when one is there.
    let first = &scanner.patient_texts[0];
    for planted in first {
        let text = format!("{} {{\"value\":\"{planted}\"}}", emitted[0].1);
        assert!(scanner.find(&text).is_some(), "the scan misses {planted:?}");
    }
}

/// The OTLP settings of a process exporting to `collector` as JSON, promptly.
fn otlp_env(command: &mut Command, collector: &str) {
    command
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
        .env("OTEL_BSP_MAX_QUEUE_SIZE", "100000")
        .env("OTEL_BSP_SCHEDULE_DELAY", "200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fhir_callers_trace_runs_through_the_producer_and_kafka_to_the_landed_file() {
    let pipeline = Pipeline::start().await;
    let (collector, received) = http_server();
    let address = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut producer = support::sluice();
    producer
        .args(["produce", "fhir", "--brokers", &pipeline.broker.bootstrap(), "--listen", &address.to_string()])
        .env("SLUICE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    otlp_env(&mut producer, &collector);
    let producer = producer.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "the FHIR endpoint never listened");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A caller (an EPR's integration engine) sends a transaction Bundle within its own trace.
    let (caller_trace, caller_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let bundle = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("producers/tests/fixtures/fhir/transaction_admission.json"),
    )
    .unwrap();
    let url = format!("http://{address}/");
    let status = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let response = agent
            .post(&url)
            .header("Content-Type", "application/fhir+json")
            .header("traceparent", &format!("00-{caller_trace}-{caller_span}-01"))
            .send(&bundle[..])
            .unwrap();
        response.status().as_u16()
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    stop(producer);

    let lake = pipeline.lake().display().to_string();
    let mut lander = pipeline.lander_command("traced", "lander", &["--lake", &lake]);
    otlp_env(&mut lander, &collector);
    let lander = lander.spawn().unwrap();
    pipeline.wait_until_committed("traced", Duration::from_secs(120));
    stop(lander);

    let received = received.lock().unwrap().clone();
    let traces = bodies(&received, "/v1/traces");
    let spans: Vec<&Value> = spans(&traces).into_iter().filter(|span| text(span, "traceId") == caller_trace).collect();
    let with_parent = |parent: &str, name: &str| -> Vec<&Value> {
        spans.iter().filter(|span| text(span, "parentSpanId") == parent && span["name"] == name).copied().collect()
    };
    let requests = with_parent(caller_span, "receive fhir request");
    assert_eq!(requests.len(), 1, "the request's span continues the caller's trace: {spans:?}");
    let publishes = with_parent(text(requests[0], "spanId"), "publish");
    assert!(publishes.len() >= 3, "a publish span per resource's event: {publishes:?}");
    let mut linked_files = 0;
    let all_spans = self::spans(&traces);
    for publish in &publishes {
        let lands = with_parent(text(publish, "spanId"), "land");
        assert_eq!(lands.len(), 1, "each published event is landed once: {publish}");
        for link in items(lands[0], "links") {
            let file = all_spans
                .iter()
                .find(|span| text(span, "spanId") == text(link, "spanId") && span["name"] == "write parquet")
                .expect("the linked span is a file's");
            let key = attribute(file, "sluice.file").unwrap()["stringValue"].as_str().unwrap();
            assert!(pipeline.lake().join(key).is_file(), "{key} is in the lake");
            linked_files += 1;
        }
    }
    assert!(linked_files > 0, "the Bundle's events reached landed files");
}

#[test]
fn an_unreachable_collector_costs_telemetry_not_data() {
    let lake = tempfile::tempdir().unwrap();
    let mut demo = support::sluice();
    demo.args(["demo", "--events", "500", "--patients", "100", "--lake"]).arg(lake.path());
    // Nothing listens on the discard port.
    otlp_env(&mut demo, "http://127.0.0.1:9");
    let output = demo.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let stop = audit_stop_record(lake.path());
    assert_eq!(stop["consumed"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>(), 500);
    assert!(stop["files"].as_u64().unwrap() > 0);
}

/// The identifiers of the synthetic patients, and a search for them in text.
struct IdentifierScan {
    /// Per patient: NHS number (plain and spaced 3-3-4), local id, names, full postcode,
    /// address line and date of birth.
    patient_texts: Vec<Vec<String>>,
    /// Every identifier as its sequence of words (runs of letters and digits), joined by `|`:
    /// a postcode `AB1 2CD` is `AB1|2CD`, a date of birth `1980-02-03` is `1980|02|03`.
    word_sequences: HashSet<String>,
    /// The most words in one identifier.
    longest: usize,
}

impl IdentifierScan {
    fn new(source: &SyntheticSource) -> Self {
        let mut patient_texts = Vec::new();
        for index in 0..source.config().patients {
            let patient = source.patient(index);
            let digits = patient.nhs_number.digits();
            patient_texts.push(vec![
                digits.clone(),
                format!("{} {} {}", &digits[..3], &digits[3..6], &digits[6..]),
                patient.local_patient_id.clone(),
                patient.family_name.to_owned(),
                patient.given_name.to_owned(),
                patient.postcode.clone(),
                patient.address_line.clone(),
                iso_date(patient.date_of_birth),
            ]);
        }
        let word_sequences: HashSet<String> =
            patient_texts.iter().flatten().map(|text| words(text).join("|")).collect();
        let longest = word_sequences.iter().map(|sequence| sequence.split('|').count()).max().unwrap();
        IdentifierScan { patient_texts, word_sequences, longest }
    }

    /// The kind of identifier found in `text`, if any (never the identifier itself).
    fn find(&self, text: &str) -> Option<String> {
        let words = words(text);
        for start in 0..words.len() {
            for length in 1..=self.longest.min(words.len() - start) {
                if self.word_sequences.contains(&words[start..start + length].join("|")) {
                    return Some(format!("an identifier of {length} words"));
                }
            }
        }
        None
    }
}

fn iso_date(days_since_epoch: i32) -> String {
    (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(i64::from(days_since_epoch)))
        .format("%Y-%m-%d")
        .to_string()
}

/// The events of the lake's audit log.
fn audit_events(lake: &Path) -> Vec<Value> {
    let log = std::fs::read_to_string(lake.join("_audit/audit.jsonl")).unwrap();
    log.lines().map(|line| serde_json::from_str::<Value>(line).unwrap()["event"].clone()).collect()
}

/// The last `stop` record of the lake's audit log.
fn audit_stop_record(lake: &Path) -> Value {
    audit_events(lake).into_iter().rfind(|event| event["kind"] == "stop").expect("a stop record")
}

/// The JSON bodies the collector received at `path` (`/v1/traces`, ...).
fn bodies(received: &[Received], path: &str) -> Vec<Value> {
    received
        .iter()
        .filter(|(headers, _)| headers[":request"].starts_with(&format!("POST {path} ")))
        .map(|(headers, body)| {
            assert_eq!(headers["content-type"], "application/json");
            serde_json::from_slice(body).unwrap()
        })
        .collect()
}

/// Every span in OTLP/JSON trace bodies.
fn spans(traces: &[Value]) -> Vec<&Value> {
    traces
        .iter()
        .flat_map(|body| items(body, "resourceSpans"))
        .flat_map(|resource| items(resource, "scopeSpans"))
        .flat_map(|scope| items(scope, "spans"))
        .collect()
}

fn items<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map(Vec::as_slice).unwrap_or_default()
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_default()
}

/// The value of a span's attribute, as OTLP/JSON writes it (`{"stringValue": ...}` etc.).
fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    items(span, "attributes").iter().find(|a| a["key"] == key).map(|a| &a["value"])
}

/// (metric name, labels, value) of every exported data point: sums and gauges by value,
/// histograms by count.
fn data_points(bodies: &[Value]) -> Vec<(String, BTreeMap<String, String>, u64)> {
    let number = |value: &Value| -> u64 {
        match value {
            Value::String(text) => text.parse().unwrap_or(0),
            Value::Number(number) => number.as_u64().or_else(|| number.as_f64().map(|f| f as u64)).unwrap_or(0),
            _ => 0,
        }
    };
    let mut points = Vec::new();
    for metric in bodies
        .iter()
        .flat_map(|body| items(body, "resourceMetrics"))
        .flat_map(|resource| items(resource, "scopeMetrics"))
        .flat_map(|scope| items(scope, "metrics"))
    {
        let name = text(metric, "name").to_owned();
        for (kind, field) in [("sum", "asInt"), ("gauge", "asInt"), ("histogram", "count")] {
            for point in items(&metric[kind], "dataPoints") {
                let labels = items(point, "attributes")
                    .iter()
                    .map(|a| {
                        (text(a, "key").to_owned(), a["value"]["stringValue"].as_str().unwrap_or_default().to_owned())
                    })
                    .collect();
                points.push((name.clone(), labels, number(&point[field])));
            }
        }
    }
    points
}
