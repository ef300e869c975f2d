//! HL7 v2 over MLLP against a real broker process (Tansu): a real TCP client sends the realistic
//! messages of `producers/tests/fixtures/hl7/` to the running listener and reads the ACKs; the
//! topics are then read back to prove what was stored, once, with its headers.

mod support;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use rdkafka::ClientConfig;
use sluice::{provision, topics::Topics};
use sluice_producers::{
    headers::{SOURCE_ADAPTER, SOURCE_REFERENCE, TRACEPARENT, TraceContext},
    hl7::{
        listener::{ListenerCounts, MllpListenerConfig},
        message::Message,
        mllp::frame,
    },
};
use sluice_schemas::{Catalogue, Decoder, apache_avro::types::Value};
use sluice_testkit::mllp::{MllpSender, hl7_fixture as fixture};
use support::{
    TopicRecord,
    listeners::{Serving, serve_hl7},
    read_topic,
    tansu::Tansu,
};
use tokio::io::AsyncWriteExt;

fn altered(name: &str, from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(fixture(name)).unwrap();
    assert!(text.contains(from));
    text.replacen(from, to, 1).into_bytes()
}

/// The listener as the tests run it: acknowledging as `X26`, its journal in `state_dir`.
async fn start_listener(client: &ClientConfig, topics: &Topics, state_dir: &Path) -> Serving<ListenerCounts> {
    let config = MllpListenerConfig {
        state_dir: Some(state_dir.to_owned()),
        receiving_facility: "X26".into(),
        ..MllpListenerConfig::default()
    };
    serve_hl7(client, topics, config).await
}

fn assert_ack(ack: &Message, code: &str, control_id: &str) {
    assert_eq!(ack.get("MSA-1").as_deref(), Some(code), "ACK: {:?}", ack.get("ERR-8"));
    assert_eq!(ack.get("MSA-2").as_deref(), Some(control_id));
    assert_eq!(ack.get("MSH-9.1").as_deref(), Some("ACK"));
    assert_eq!(ack.get("MSH-4").as_deref(), Some("X26"));
}

/// Decodes a clinical record's `nhs_number` and `event_id`.
fn decoded(record: &TopicRecord) -> (Option<String>, String) {
    let decoder = Decoder::new(Catalogue::embedded());
    let event = decoder.decode(&record.payload).unwrap();
    let Value::Record(fields) = &event.value else { panic!("not a record") };
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap();
    let nhs_number = match field("nhs_number") {
        Value::Union(_, inner) => match *inner {
            Value::String(s) => Some(s),
            _ => None,
        },
        _ => None,
    };
    let event_id = match field("event_id") {
        Value::Uuid(id) => id.to_string(),
        Value::String(id) => id,
        other => panic!("event_id {other:?}"),
    };
    (nhs_number, event_id)
}

const ADT_FIXTURES: [(&str, &str); 8] = [
    ("adt_a01_admit.hl7", "PAS0000101"),
    ("adt_a02_transfer.hl7", "PAS0000102"),
    ("adt_a03_discharge.hl7", "PAS0000103"),
    ("adt_a04_register.hl7", "ED00088812"),
    ("adt_a08_update.hl7", "PAS0000108"),
    ("adt_a11_cancel_admit.hl7", "PAS0000111"),
    ("adt_a13_cancel_discharge.hl7", "PAS0000113"),
    ("adt_a40_merge.hl7", "PAS0000140"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_acknowledged_once_stored_refused_with_reasons_and_never_published_twice() {
    let broker = Tansu::start();
    let client = broker.client();
    let topics = Topics::embedded();
    provision::apply(&client, &topics).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let listener = start_listener(&client, &topics, state.path()).await;

    let mut sender = MllpSender::connect(listener.address).await.unwrap();
    for (name, control_id) in ADT_FIXTURES {
        assert_ack(&sender.send_expecting_ack(&fixture(name)).await, "AA", control_id);
    }
    assert_ack(&sender.send_expecting_ack(&fixture("oru_r01_results.hl7")).await, "AA", "LAB20260105000731");
    assert_ack(&sender.send_expecting_ack(&fixture("oru_r01_latin1.hl7")).await, "AA", "LAB20260105000732");
    // The sender missed our ACK and sends again: acknowledged, not published again.
    assert_ack(&sender.send_expecting_ack(&fixture("adt_a01_admit.hl7")).await, "AA", "PAS0000101");

    // Content errors: AE with an ERR segment naming where and why, never quoting the value.
    let bad_nhs = altered("adt_a01_admit.hl7", "|PAS0000101|", "|PAS0000199|");
    let bad_nhs = String::from_utf8(bad_nhs).unwrap().replacen("9990000018", "9990000017", 1).into_bytes();
    let ack = sender.send_expecting_ack(&bad_nhs).await;
    assert_ack(&ack, "AE", "PAS0000199");
    assert_eq!(ack.get("ERR-2").as_deref(), Some("PID"));
    assert_eq!(ack.get("ERR-2.3").as_deref(), Some("3"));
    assert_eq!(ack.get("ERR-3.1").as_deref(), Some("102"));
    assert!(!ack.get("ERR-8").unwrap().contains("9990000017"));
    // A message type this interface does not take: AR.
    let ack = sender
        .send_expecting_ack(&altered("adt_a01_admit.hl7", "ADT^A01^ADT_A01|PAS0000101", "SIU^S12^SIU_S12|SIU0001"))
        .await;
    assert_ack(&ack, "AR", "SIU0001");
    assert_eq!(ack.get("ERR-3.1").as_deref(), Some("200"));
    // Not HL7 at all: AR without a control id to echo.
    let ack = sender.send_expecting_ack(b"this is not an HL7 message").await;
    assert_eq!(ack.get("MSA-1").as_deref(), Some("AR"));
    assert_eq!(ack.get("MSA-2"), None);

    // Two senders on their own connections at once, one message in flight each.
    let (mut a, mut b) =
        (MllpSender::connect(listener.address).await.unwrap(), MllpSender::connect(listener.address).await.unwrap());
    let (update_a, update_b) = (
        altered("adt_a08_update.hl7", "PAS0000108", "PAS0000208"),
        altered("adt_a08_update.hl7", "PAS0000108", "PAS0000308"),
    );
    let (ack_a, ack_b) = tokio::join!(a.send_expecting_ack(&update_a), b.send_expecting_ack(&update_b));
    assert_ack(&ack_a, "AA", "PAS0000208");
    assert_ack(&ack_b, "AA", "PAS0000308");

    let [connections, accepted, events, duplicates, refused, not_stored] = listener.stop().await.snapshot();
    assert_eq!((connections, accepted, events, duplicates, refused, not_stored), (3, 12, 18, 1, 3, 0));

    // What Kafka holds: every event once, with trace and source reference; dead letters with reasons.
    let adt = read_topic(&client, "clinical.adt");
    assert_eq!(adt.len(), 10, "8 fixtures + 2 updates, the repeat not published again");
    let observations = read_topic(&client, "clinical.observation");
    assert_eq!(observations.len(), 8, "7 OBX of one result message and 1 of the other");
    let mut references: Vec<&str> = adt.iter().map(|r| r.headers[SOURCE_REFERENCE].as_str()).collect();
    references.sort();
    assert!(references.contains(&"hl7:PAS^RR8:PAS0000101"), "{references:?}");
    assert!(references.contains(&"hl7:EDIS^RR8:ED00088812"), "{references:?}");
    for record in adt.iter().chain(&observations) {
        assert!(TraceContext::parse(&record.headers[TRACEPARENT]).is_some());
        assert_eq!(record.headers[SOURCE_ADAPTER], "hl7-mllp");
        assert!(!record.headers[SOURCE_REFERENCE].contains("999000"), "no NHS number in a header");
    }
    let admit = adt.iter().find(|r| r.headers[SOURCE_REFERENCE] == "hl7:PAS^RR8:PAS0000101").unwrap();
    let (nhs_number, event_id) = decoded(admit);
    assert_eq!(nhs_number.as_deref(), Some("9990000018"));
    assert_eq!(admit.key.as_deref(), Some("9990000018"), "keyed by patient");
    let expected = sluice_producers::clinical::stable_event_id(&["hl7", "PAS^RR8", "PAS0000101", "0"]);
    assert_eq!(event_id, expected.to_string());
    let trace_ids: std::collections::HashSet<String> = observations
        .iter()
        .filter(|r| r.headers[SOURCE_REFERENCE] == "hl7:WinPath^RR8:LAB20260105000731")
        .map(|r| TraceContext::parse(&r.headers[TRACEPARENT]).unwrap().trace_id())
        .collect();
    assert_eq!(trace_ids.len(), 1, "the events of one message share one trace");

    let dead_letters = read_topic(&client, topics.dead_letter());
    assert_eq!(dead_letters.len(), 3);
    let reasons: Vec<&str> = dead_letters.iter().map(|r| r.headers["sluice.dead_letter.reason"].as_str()).collect();
    assert!(reasons.iter().any(|r| r.starts_with("PID-3: the NHS number is not valid")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("MSH-9.1:")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("does not start with an MSH segment")), "{reasons:?}");
    assert!(dead_letters.iter().any(|r| r.payload == bad_nhs), "the refused message is kept as sent");
    assert!(dead_letters.iter().any(|r| r.headers[SOURCE_REFERENCE] == "hl7:PAS^RR8:PAS0000199"));
    for reason in reasons {
        assert!(!reason.contains("9990000017"), "{reason}");
    }

    // After a restart the journal still knows the stored messages.
    let listener = start_listener(&client, &topics, state.path()).await;
    let mut sender = MllpSender::connect(listener.address).await.unwrap();
    assert_ack(&sender.send_expecting_ack(&fixture("adt_a03_discharge.hl7")).await, "AA", "PAS0000103");
    let counts = listener.stop().await.snapshot();
    assert_eq!((counts[1], counts[3]), (0, 1), "a repeat after a restart is not published");
    assert_eq!(read_topic(&client, "clinical.adt").len(), 10);
}

/// On the in-process mock cluster, whose broker can be taken down and up again. (Tansu 0.6 cannot
/// take an idempotent producer's epoch bump after timed-out deliveries, which librdkafka makes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_kafka_is_down_nothing_is_acknowledged_as_stored_and_a_resend_stores_every_event() {
    let (cluster, mut client, topics) = support::mock_cluster();
    // Fail deliveries quickly so the test need not wait for the default 30 s.
    client.set("message.timeout.ms", "4000");
    let state = tempfile::tempdir().unwrap();
    let listener = start_listener(&client, &topics, state.path()).await;
    let mut sender = MllpSender::connect(listener.address).await.unwrap();
    assert_ack(&sender.send_expecting_ack(&fixture("adt_a01_admit.hl7")).await, "AA", "PAS0000101");

    cluster.broker_down(1).unwrap();
    let started = Instant::now();
    let ack = sender.send_expecting_ack(&fixture("oru_r01_results.hl7")).await;
    assert_ack(&ack, "AE", "LAB20260105000731");
    assert_eq!(ack.get("ERR-3.1").as_deref(), Some("207"), "application internal error: send again");
    assert!(started.elapsed() < Duration::from_secs(30), "answered within the delivery timeout");

    cluster.broker_up(1).unwrap();
    // The interface engine sends the message again until it is acknowledged.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let ack = sender.send_expecting_ack(&fixture("oru_r01_results.hl7")).await;
        if ack.get("MSA-1").as_deref() == Some("AA") {
            break;
        }
        assert_eq!(ack.get("ERR-3.1").as_deref(), Some("207"));
        assert!(Instant::now() < deadline, "never stored after the broker came back");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_ack(&sender.send_expecting_ack(&fixture("oru_r01_results.hl7")).await, "AA", "LAB20260105000731");
    let [_, accepted, events, duplicates, refused, not_stored] = listener.stop().await.snapshot();
    assert!(not_stored >= 1, "the outage was answered with AE 207");
    assert_eq!((accepted, events, duplicates, refused), (2, 8, 1, 0));

    let observations = read_topic(&client, "clinical.observation");
    let mut ids: Vec<String> = observations.iter().map(|r| decoded(r).1).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7, "every OBX stored");
    assert_eq!(read_topic(&client, "clinical.adt").len(), 1);
}

/// On the in-process mock cluster: what is not a whole MLLP frame (a message sent without
/// framing, a frame over the size limit, a frame abandoned for a new one) goes to the
/// dead-letter topic with the reason, and the connection goes on serving the frames after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_errors_and_oversized_frames_are_dead_lettered_with_the_reason_and_the_connection_goes_on() {
    let (_cluster, client, topics) = support::mock_cluster();
    let config = MllpListenerConfig {
        max_message_bytes: 4096,
        receiving_facility: "X26".into(),
        ..MllpListenerConfig::default()
    };
    let listener = serve_hl7(&client, &topics, config).await;
    let mut sender = MllpSender::connect(listener.address).await.unwrap();

    // A message without MLLP framing, then a framed one in the same write.
    let unframed = fixture("adt_a03_discharge.hl7");
    sender.stream().write_all(&[unframed.clone(), frame(&fixture("adt_a01_admit.hl7"))].concat()).await.unwrap();
    assert_ack(&sender.receive_ack().await.unwrap(), "AA", "PAS0000101");
    // A frame over the limit: AR naming the message, its first 4096 bytes dead-lettered.
    let oversized = altered("oru_r01_results.hl7", "Sample slightly haemolysed", &"x".repeat(10_000));
    let ack = sender.send_expecting_ack(&oversized).await;
    assert_eq!(ack.get("MSA-1").as_deref(), Some("AR"));
    assert_eq!(ack.get("MSA-2").as_deref(), Some("LAB20260105000731"));
    // A frame abandoned for a new one.
    sender.stream().write_all(&[0x0B, b'M', b'S', b'H', b'|']).await.unwrap();
    assert_ack(&sender.send_expecting_ack(&fixture("adt_a02_transfer.hl7")).await, "AA", "PAS0000102");

    let counts = listener.stop().await;
    let [_, accepted, _, _, refused, not_stored] = counts.snapshot();
    assert_eq!((accepted, refused, not_stored), (2, 1, 0));
    let framing_errors = counts.framing_errors.load(std::sync::atomic::Ordering::Relaxed);

    let dead_letters = read_topic(&client, topics.dead_letter());
    let with_reason = |text: &str| -> Vec<&TopicRecord> {
        dead_letters.iter().filter(|r| r.headers["sluice.dead_letter.reason"].contains(text)).collect()
    };
    let outside = with_reason("arrived outside an MLLP frame");
    assert!(!outside.is_empty());
    assert_eq!(outside.iter().map(|r| r.payload.len()).sum::<usize>(), unframed.len(), "every unframed byte kept");
    if let [one] = outside.as_slice() {
        assert_eq!(one.payload, unframed);
    }
    let too_large = with_reason("an MLLP frame exceeded 4096 bytes without an end block");
    assert_eq!(too_large.len(), 1);
    assert_eq!(too_large[0].payload, oversized[..4096]);
    let abandoned = with_reason("a start block appeared inside an MLLP frame");
    assert_eq!(abandoned.len(), 1);
    assert_eq!(abandoned[0].payload, b"MSH|");
    assert_eq!(framing_errors as usize, outside.len() + abandoned.len());
    assert_eq!(dead_letters.len(), outside.len() + 2);
    for record in &dead_letters {
        assert_eq!(record.headers[SOURCE_REFERENCE], "hl7:mllp-framing");
    }
    assert_eq!(read_topic(&client, "clinical.adt").len(), 2);
}

/// The corpus of realistic messages (`producers/tests/fixtures/hl7/corpus/`) sent over MLLP to a
/// listener started with the corpus's local code tables: each ACK is the one the corpus expects,
/// Kafka holds exactly the expected events (an NHS number alone leaves the local id null), the
/// refused messages are dead-lettered, and every field left out is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_over_mllp_stores_the_expected_events_and_counts_the_fields_left_out() {
    let broker = Tansu::start();
    let client = broker.client();
    let topics = Topics::embedded();
    provision::apply(&client, &topics).await.unwrap();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("producers/tests/fixtures/hl7/corpus");
    let state = tempfile::tempdir().unwrap();
    let config = MllpListenerConfig {
        state_dir: Some(state.path().to_owned()),
        local_codes: Some(corpus.join("local-codes.toml")),
        ..MllpListenerConfig::default()
    };
    let listener = serve_hl7(&client, &topics, config).await;
    let mut sender = MllpSender::connect(listener.address).await.unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".hl7"))
        .collect();
    names.sort();
    let (mut events, mut warnings, mut refused, mut nhs_number_only) = (0, 0, 0, 0);
    // Every event of a message carries the positions its message's warnings name.
    let mut positions_carried = 0;
    for name in &names {
        let bytes: Vec<u8> =
            std::fs::read(corpus.join(name)).unwrap().iter().map(|b| if *b == b'\n' { b'\r' } else { *b }).collect();
        let expected: serde_json::Value =
            serde_json::from_slice(&std::fs::read(corpus.join(name.replace(".hl7", ".expected.json"))).unwrap())
                .unwrap();
        let ack = sender.send_expecting_ack(&bytes).await;
        assert_eq!(ack.get("MSA-1").as_deref(), expected["ack"].as_str(), "{name}");
        let expected_events = expected["events"].as_array().unwrap();
        events += expected_events.len();
        warnings += expected["warnings"].as_array().unwrap().len();
        positions_carried += expected["warnings"].as_array().unwrap().len() * expected_events.len();
        refused += usize::from(expected["ack"] != "AA");
        nhs_number_only += expected_events.iter().filter(|e| e["record"]["local_patient_id"].is_null()).count();
    }
    let counts = listener.stop().await;
    let [_, accepted, published, _, dead_lettered, not_stored] = counts.snapshot();
    assert_eq!((accepted as usize, published as usize), (names.len() - refused, events));
    assert_eq!((dead_lettered as usize, not_stored), (refused, 0));
    assert_eq!(counts.fields_left_out.load(std::sync::atomic::Ordering::Relaxed) as usize, warnings);
    assert!(warnings > 0 && refused > 0 && nhs_number_only > 0, "the corpus covers each case");

    let stored: Vec<TopicRecord> =
        ["clinical.adt", "clinical.observation"].iter().flat_map(|topic| read_topic(&client, topic)).collect();
    assert_eq!(stored.len(), events);
    let decoder = Decoder::new(Catalogue::embedded());
    let without_local_id = stored
        .iter()
        .filter(|record| {
            let Value::Record(fields) = decoder.decode(&record.payload).unwrap().value else { panic!("a record") };
            fields
                .iter()
                .any(|(name, value)| name == "local_patient_id" && *value == Value::Union(0, Box::new(Value::Null)))
        })
        .count();
    assert_eq!(without_local_id, nhs_number_only, "identified by NHS number alone, stored without a local id");
    let carried: usize = stored
        .iter()
        .filter_map(|record| record.headers.get("sluice.source.fields_left_out"))
        .map(|positions| {
            assert!(positions.split(',').all(|p| ["PV1-10", "PID-8", "PID-11.5"].contains(&p)), "{positions}");
            positions.split(',').count()
        })
        .sum();
    assert_eq!(carried, positions_carried, "each event names the fields left out of it");
    assert_eq!(read_topic(&client, topics.dead_letter()).len(), refused);
}
