//! Poison input on the mock cluster: every record that cannot be decoded or checked goes to the
//! dead-letter topic with a reason, the lander keeps going, and every consumed record is
//! accounted for. The producers' side: refused input too large for a Kafka record is kept cut,
//! with its size, so the source is told it is refused rather than to send it again.

mod support;

use std::{collections::BTreeMap, time::Duration};

use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice::keys;
use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use sluice_schemas::{
    Catalogue, Encoder, Framing,
    apache_avro::{reader::datum::GenericDatumReader, types::Value},
};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_are_dead_lettered_with_a_reason_and_never_stall_landing() {
    let (_cluster, client, topics) = mock_cluster();

    let catalogue = Catalogue::embedded();
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 50, events: 200, ..Default::default() }).unwrap();
    let good = publish_source(&client, &topics, &source).await;

    // Poison: not Avro at all; an unknown writer schema; a body cut short; an ADT event on the
    // observation topic; a consent change with an invalid NHS number.
    let adt = source.clinical_events().find(|e| e.subject() == "adt").unwrap();
    let encoder = Encoder::new(catalogue, Framing::SingleObject);
    let adt_bytes = encoder.encode(catalogue.version("adt", adt.version()).unwrap(), adt.value()).unwrap();
    let mut unknown_schema = vec![0xC3, 0x01];
    unknown_schema.extend_from_slice(&0x1234_5678_9abc_def0u64.to_le_bytes());
    unknown_schema.extend_from_slice(&adt_bytes[10..]);
    let truncated = adt_bytes[..adt_bytes.len() / 2].to_vec();
    let bad_consent = source.consent_events().next().unwrap();
    let mut bad_consent_value = bad_consent.value().clone();
    if let sluice_schemas::apache_avro::types::Value::Record(fields) = &mut bad_consent_value {
        let nhs_number = fields.iter_mut().find(|(name, _)| name == "nhs_number").unwrap();
        nhs_number.1 = sluice_schemas::apache_avro::types::Value::String("1234567890".into());
    }
    let bad_consent_bytes =
        encoder.encode(catalogue.version("consent", bad_consent.version()).unwrap(), &bad_consent_value).unwrap();
    // A laboratory result with 19 digits for its decimal(18,6) field: Avro decodes it (16 bytes
    // hold it), but it must not land rounded or truncated.
    let newest_observation = catalogue.latest("observation").unwrap().version();
    let too_wide =
        source.clinical_events().find(|e| e.subject() == "observation" && e.version() == newest_observation).unwrap();
    let mut too_wide_value = too_wide.value().clone();
    if let sluice_schemas::apache_avro::types::Value::Record(fields) = &mut too_wide_value {
        let decimal = sluice_schemas::apache_avro::Decimal::from(1_234_567_890_123_456_789_000i128.to_be_bytes());
        fields.iter_mut().find(|(name, _)| name == "value_decimal").unwrap().1 =
            sluice_schemas::apache_avro::types::Value::Union(
                1,
                Box::new(sluice_schemas::apache_avro::types::Value::Decimal(decimal)),
            );
    }
    let too_wide_bytes =
        encoder.encode(catalogue.version("observation", newest_observation).unwrap(), &too_wide_value).unwrap();
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("clinical.observation", b"{\"resourceType\":\"Observation\"}".to_vec()),
        ("clinical.observation", unknown_schema),
        ("clinical.adt", truncated),
        ("clinical.observation", adt_bytes.clone()),
        ("clinical.consent", bad_consent_bytes),
        ("clinical.observation", too_wide_bytes),
    ];
    let producer: FutureProducer = client.create().unwrap();
    for (topic, payload) in &poison {
        // The consent record keeps its key, which names its patient: the lander holds them back.
        let key = if *topic == "clinical.consent" { bad_consent.key() } else { "" };
        producer.send(FutureRecord::to(topic).payload(payload).key(key), Duration::from_secs(5)).await.unwrap();
    }
    // Events of the patient the unreadable consent record names: whatever else they decided,
    // each is now withheld because that record could not be read.
    let held = source
        .clinical_events()
        .filter(|e| {
            let patient = source.patient(e.truth.patient);
            bad_consent.key().starts_with(&patient.nhs_number.digits()) && e.truth.nhs_number_sent
        })
        .count() as u64;

    let lake = tempfile::tempdir().unwrap();
    let purposes = vec!["research".to_owned()];
    let config = lander_config(lake.path(), &purposes, "dead-letter-test", &topics);
    let report = land_until_caught_up(&client, &config, &keys::generate(&purposes)).await;

    assert_eq!(report.dead_lettered, 5);
    assert_eq!(report.consent_dead_lettered, 1);
    assert!(held > 0, "the held patient has events to withhold");
    assert_eq!(report.withheld["research"].get("consent_unreadable").copied().unwrap_or(0), held, "{report:?}");
    assert_eq!(report.consumed_total(), good.total() + 5);
    assert_eq!(report.unreconciled(&purposes), Vec::<String>::new());
    assert!(report.landed["research"] > 150);

    // The dead-letter topic holds each poison record unchanged, with where it came from and why.
    let dead_letters = read_topic(&client, topics.dead_letter());
    assert_eq!(dead_letters.len(), 6);
    let mut reasons = BTreeMap::new();
    for TopicRecord { payload, headers, .. } in &dead_letters {
        let reason = &headers["sluice.dead_letter.reason"];
        assert!(
            poison
                .iter()
                .any(|(topic, bytes)| bytes == payload && headers["sluice.dead_letter.source_topic"] == *topic)
        );
        assert!(headers.contains_key("sluice.dead_letter.source_offset"));
        assert!(!reason.contains("1234567890"), "a reason must not quote a value: {reason}");
        assert!(!reason.contains("1234567.89"), "a reason must not quote a value: {reason}");
        reasons.insert(reason.clone(), headers["sluice.dead_letter.source_topic"].clone());
    }
    let all_reasons: Vec<&String> = reasons.keys().collect();
    assert!(all_reasons.iter().any(|r| r.contains("framing marker")), "{all_reasons:?}");
    assert!(
        all_reasons.iter().any(|r| r.contains("no schema in the catalogue is fingerprint 123456789abcdef0")),
        "{all_reasons:?}"
    );
    let truncated_reason = format!("cannot decode a `adt` v{} body", adt.version());
    assert!(all_reasons.iter().any(|r| r.contains(&truncated_reason)), "{all_reasons:?}");
    assert!(all_reasons.iter().any(|r| r.contains("a `adt` event on the topic of `observation`")), "{all_reasons:?}");
    assert!(all_reasons.iter().any(|r| r.contains("invalid NHS number")), "{all_reasons:?}");
    assert!(
        all_reasons.iter().any(|r| r
            .contains("column `value_decimal` of `observation`: a decimal has more digits than DECIMAL(18,6) holds")),
        "{all_reasons:?}"
    );
}

/// Deterministic bytes that are not Avro of any schema (a linear congruential generator), so
/// a failure is reproducible.
fn garbage(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect()
}

/// An Avro `long` as written on the wire: zig-zag, then a base-128 varint.
fn avro_long(value: i64) -> Vec<u8> {
    let mut n = ((value << 1) ^ (value >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Sets a field of a record (or, for a nullable field, its non-null branch).
fn set_field(record: &mut Value, name: &str, value: Value) {
    let Value::Record(fields) = record else { panic!("not a record") };
    let field = &mut fields.iter_mut().find(|(field, _)| field == name).unwrap_or_else(|| panic!("no {name}")).1;
    *field = match field {
        Value::Union(..) => Value::Union(1, Box::new(value)),
        _ => value,
    };
}

/// The text of a string field (or of a nullable one's non-null branch).
fn field_text(record: &Value, name: &str) -> Option<String> {
    let Value::Record(fields) = record else { panic!("not a record") };
    match &fields.iter().find(|(field, _)| field == name)?.1 {
        Value::String(text) => Some(text.clone()),
        Value::Union(_, inner) => match inner.as_ref() {
            Value::String(text) => Some(text.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// One poison record: where it is sent, its key and value (`None`: no value at all, a
/// tombstone), and what the reason it is dead-lettered with must say.
struct Poison {
    topic: &'static str,
    key: Option<String>,
    payload: Option<Vec<u8>>,
    reason: String,
}

/// Poison the test above does not send: a record with an empty value and records with no
/// value at all (tombstones, on a clinical and on the compacted consent topic), a string that
/// is not UTF-8 under a real fingerprint, one subject's body under another subject's
/// fingerprint, an unknown Confluent schema id, a length prefix claiming a terabyte, and
/// records of 0.9 and 1.01 MB of garbage after a real fingerprint. The last is larger than
/// librdkafka's default `message.max.bytes` (1,000,000) but within a broker's default
/// (1,048,588), so a producer with a larger limit can write it: copying it to the dead-letter
/// topic must not stop the lander. Each is dead-lettered unchanged with a reason that names
/// the failure and quotes no value, landing goes on, and every consumed record is accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_oversized_and_mistyped_records_are_dead_lettered_and_landing_goes_on() {
    let (_cluster, client, topics) = mock_cluster();
    let catalogue = Catalogue::embedded();
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 50, events: 200, ..Default::default() }).unwrap();
    let good = publish_source(&client, &topics, &source).await;

    let encoder = Encoder::new(catalogue, Framing::SingleObject);
    let adt = source.clinical_events().find(|e| e.subject() == "adt").unwrap();
    let adt_version = catalogue.version("adt", adt.version()).unwrap();
    let observation_version = catalogue.latest("observation").unwrap();
    let single_object = |fingerprint: u64, body: &[u8]| {
        let mut message = vec![0xC3, 0x01];
        message.extend_from_slice(&fingerprint.to_le_bytes());
        message.extend_from_slice(body);
        message
    };
    let nhs_number = field_text(adt.value(), "nhs_number").expect("the synthetic ADT event has an NHS number");
    let adt_body = encoder.encode(adt_version, adt.value()).unwrap()[10..].to_vec();

    // The local patient id of a real ADT event, overwritten byte for byte with 0xFF (a byte that
    // never occurs in UTF-8): the string's length prefix is still right, its bytes are not text.
    const MARKER: &str = "to-be-overwritten";
    let mut marked = adt.value().clone();
    set_field(&mut marked, "local_patient_id", Value::String(MARKER.into()));
    let mut not_utf8 = encoder.encode(adt_version, &marked).unwrap();
    let at = not_utf8.windows(MARKER.len()).position(|w| w == MARKER.as_bytes()).unwrap();
    not_utf8[at..at + MARKER.len()].fill(0xFF);
    // The lander's reasons name only the kind of failure, so check here what apache-avro itself
    // says: the marked body reads, the overwritten one fails as not UTF-8 and for nothing else.
    let read = |message: &[u8]| {
        GenericDatumReader::builder(adt_version.schema()).build().unwrap().read_value(&mut &message[10..])
    };
    assert!(read(&encoder.encode(adt_version, &marked).unwrap()).is_ok());
    assert!(read(&not_utf8).unwrap_err().to_string().contains("Invalid utf-8"));

    // The first field (the event id, a string) claims 2^40 bytes.
    let mut terabyte = avro_long(1 << 40);
    terabyte.extend_from_slice(&adt_body);
    let claimed = read(&single_object(adt_version.fingerprint(), &terabyte)).unwrap_err().to_string();
    assert!(claimed.contains("Unable to allocate 1099511627776 bytes"), "{claimed}");
    // Confluent framing naming a schema id no schema has.
    let mut unknown_id = vec![0x00, 0x7F, 0xFF, 0xFF, 0xFF];
    unknown_id.extend_from_slice(&adt_body);

    let adt_decode = format!("cannot decode a `adt` v{} body", adt_version.version());
    let too_short = "message of 0 bytes is too short for single-object framing".to_owned();
    let poison = vec![
        Poison { topic: "clinical.adt", key: None, payload: Some(Vec::new()), reason: too_short.clone() },
        Poison { topic: "clinical.diagnosis", key: Some("tombstone".into()), payload: None, reason: too_short.clone() },
        // A tombstone on the consent topic deletes the record under its key when the broker
        // compacts: until then nobody knows what it replaced, so its patient is held back.
        Poison {
            topic: "clinical.consent",
            key: Some(format!("{nhs_number}:NATIONAL_DATA_OPT_OUT")),
            payload: None,
            reason: too_short,
        },
        Poison {
            topic: "clinical.adt",
            key: None,
            payload: Some(not_utf8),
            reason: format!("{adt_decode}: a string is not valid UTF-8"),
        },
        Poison {
            topic: "clinical.observation",
            key: None,
            payload: Some(single_object(observation_version.fingerprint(), &adt_body)),
            reason: format!("cannot decode a `observation` v{} body", observation_version.version()),
        },
        Poison {
            topic: "clinical.adt",
            key: None,
            payload: Some(unknown_id),
            reason: "no schema in the catalogue is schema id 2147483647".to_owned(),
        },
        Poison {
            topic: "clinical.adt",
            key: None,
            payload: Some(single_object(adt_version.fingerprint(), &terabyte)),
            reason: format!("{adt_decode}: a length is larger than the data could hold"),
        },
        Poison {
            topic: "clinical.adt",
            key: None,
            payload: Some(single_object(adt_version.fingerprint(), &garbage(900_000))),
            reason: adt_decode.clone(),
        },
        Poison {
            topic: "clinical.observation",
            key: None,
            payload: Some(single_object(observation_version.fingerprint(), &garbage(1_010_000))),
            reason: format!("cannot decode a `observation` v{} body", observation_version.version()),
        },
    ];
    // Room for the largest record; the mock broker enforces no limit of its own.
    let producer: FutureProducer = client.clone().set("message.max.bytes", "2000000").create().unwrap();
    for Poison { topic, key, payload, .. } in &poison {
        let mut record = FutureRecord::<str, [u8]>::to(topic);
        if let Some(key) = key {
            record = record.key(key.as_str());
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        producer.send(record, Duration::from_secs(5)).await.unwrap();
    }

    let lake = tempfile::tempdir().unwrap();
    let purposes = vec!["research".to_owned()];
    let config = lander_config(lake.path(), &purposes, "dead-letter-test", &topics);
    let report = land_until_caught_up(&client, &config, &keys::generate(&purposes)).await;

    let clinical_poison = poison.iter().filter(|p| p.topic != "clinical.consent").count() as u64;
    assert_eq!(report.dead_lettered, clinical_poison);
    assert_eq!(report.consent_dead_lettered, 1);
    assert_eq!(report.consumed_total(), good.total() + clinical_poison);
    assert_eq!(report.unreconciled(&purposes), Vec::<String>::new());
    assert!(report.landed["research"] > 150, "{:?}", report.landed);
    let held =
        source.clinical_events().filter(|e| field_text(e.value(), "nhs_number").as_ref() == Some(&nhs_number)).count();
    assert_eq!(
        report.withheld["research"].get("consent_unreadable").copied().unwrap_or(0),
        held as u64,
        "the patient the consent tombstone names is held back: {report:?}"
    );

    let dead_letters = read_topic(&client, topics.dead_letter());
    assert_eq!(dead_letters.len(), poison.len());
    for expected in &poison {
        let payload = expected.payload.as_deref().unwrap_or_default();
        let found: Vec<&TopicRecord> = dead_letters
            .iter()
            .filter(|d| d.headers["sluice.dead_letter.source_topic"] == expected.topic && d.payload == payload)
            .collect();
        assert_eq!(found.len(), 1, "one dead letter for each poison record on {}", expected.topic);
        let TopicRecord { key, headers, .. } = found[0];
        let reason = &headers["sluice.dead_letter.reason"];
        assert!(reason.starts_with(&expected.reason), "{reason:?} should start with {:?}", expected.reason);
        assert!(!reason.contains(&nhs_number), "a reason must not quote an NHS number: {reason}");
        assert!(reason.len() < 200, "a reason is a sentence, not a dump of the record: {reason}");
        assert_eq!(key.as_deref(), expected.key.as_deref(), "the dead letter keeps the record's key");
        assert!(headers.contains_key("sluice.dead_letter.source_offset"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_source_input_too_large_for_a_kafka_record_is_dead_lettered_cut_with_its_size() {
    use sluice_producers::{
        EventPublisher, Origin, PublisherConfig,
        headers::{DEAD_LETTER_ORIGINAL_BYTES, DEAD_LETTER_REASON, TraceContext},
        publisher::DEAD_LETTER_MAX_PAYLOAD_BYTES,
    };
    let (_cluster, client, topics) = mock_cluster();
    let publisher =
        EventPublisher::new(&client, Catalogue::embedded(), topics.by_subject(), PublisherConfig::default())
            .unwrap()
            .with_dead_letter_topic(topics.dead_letter());
    let trace = TraceContext::new_root();
    let origin =
        Origin { source_reference: "hl7:PAS^RR8:BIG0001", adapter: "hl7-mllp", trace: &trace, fields_left_out: &[] };
    // A refused MLLP message within the listener's 1 MiB frame limit, over librdkafka's 1,000,000.
    let huge: Vec<u8> = (0..1_040_000u32).map(|i| b'A' + (i % 26) as u8).collect();
    publisher.dead_letter(&huge, "PID-5: is longer than 2000 characters", origin).await.unwrap();
    let small = b"MSH|^~\\&|not a message".to_vec();
    publisher.dead_letter(&small, "MSH-9.1: only ADT and ORU messages are accepted", origin).await.unwrap();

    let dead_letters = read_topic(&client, topics.dead_letter());
    assert_eq!(dead_letters.len(), 2);
    let cut = dead_letters.iter().find(|r| r.headers.contains_key(DEAD_LETTER_ORIGINAL_BYTES)).unwrap();
    assert_eq!(cut.payload, huge[..DEAD_LETTER_MAX_PAYLOAD_BYTES]);
    assert_eq!(cut.headers[DEAD_LETTER_ORIGINAL_BYTES], "1040000");
    assert_eq!(
        cut.headers[DEAD_LETTER_REASON],
        "PID-5: is longer than 2000 characters; kept here cut to its first 900000 of 1040000 bytes"
    );
    let whole = dead_letters.iter().find(|r| !r.headers.contains_key(DEAD_LETTER_ORIGINAL_BYTES)).unwrap();
    assert_eq!(
        (whole.payload.as_slice(), whole.headers[DEAD_LETTER_REASON].as_str()),
        (small.as_slice(), "MSH-9.1: only ADT and ORU messages are accepted")
    );
}

/// A consent record that cannot be read and whose key names no patient could have been anybody's
/// opt-out: the lander stops with an error naming where it is, before it releases anything;
/// once someone has reviewed it, `reviewed_consent_records` lets the lander past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_consent_record_naming_no_patient_stops_the_lander_until_it_is_reviewed() {
    use sluice_consumers::{Error, RunUntil};
    let (_cluster, client, topics) = mock_cluster();
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 30, events: 100, ..Default::default() }).unwrap();
    publish_source(&client, &topics, &source).await;
    let producer: FutureProducer = client.create().unwrap();
    let delivery = producer
        .send(
            FutureRecord::<str, [u8]>::to(topics.consent()).key("not a patient").payload(&garbage(40)),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let (partition, offset) = (delivery.partition, delivery.offset);

    let lake = tempfile::tempdir().unwrap();
    let purposes = vec!["research".to_owned()];
    let keys = keys::generate(&purposes);
    let setups = builtin_setups(&keys);
    let land = |config: sluice_consumers::LanderConfig| {
        let (client, setups) = (client.clone(), setups.clone());
        async move {
            let targets = high_watermarks(&client, &config.clinical_topics);
            let (_targets, targets) = tokio::sync::watch::channel(Some(targets));
            let (_shutdown, shutdown) = tokio::sync::watch::channel(false);
            let until = RunUntil::CaughtUp(targets);
            sluice_consumers::run(&client, &config, &setups, Catalogue::embedded(), until, shutdown, |_| {}).await
        }
    };
    let config = lander_config(lake.path(), &purposes, "unreadable-consent-test", &topics);
    let error = land(config.clone()).await.unwrap_err();
    assert!(
        matches!(&error, Error::ConsentRecordWithoutPatient { partition: p, offset: o, .. } if (*p, *o) == (partition, offset)),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains(&format!("--reviewed-consent-record {partition}:{offset}")), "{message}");
    assert!(parquet_files(lake.path()).is_empty(), "nothing landed before the record was reviewed");

    let reviewed = sluice_consumers::LanderConfig { reviewed_consent_records: vec![(partition, offset)], ..config };
    let report = land(reviewed).await.unwrap();
    assert_eq!(report.consent_dead_lettered, 1);
    assert!(report.landed["research"] > 50, "{report:?}");
    assert_eq!(report.withheld["research"].get("consent_unreadable"), None, "nobody is held");
    let audit = std::fs::read_to_string(lake.path().join("_audit/audit.jsonl")).unwrap();
    let record = audit.lines().find(|l| l.contains("\"kind\":\"consent_unreadable\"")).expect("audited");
    assert!(record.contains("\"patient_held\":false"), "{record}");
}

/// A consent record whose key is not the key of the change it holds (here a key naming only
/// patient and scope, as earlier producers wrote) could be compacted away by another record
/// under that key: it counts as unreadable, so its patient is held back. Only a readable record
/// under that same key would lift the hold (as compaction would keep only that one): the same
/// change under its proper key, a record of its own, does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_record_under_a_key_that_does_not_name_its_change_holds_its_patient() {
    let (_cluster, client, topics) = mock_cluster();
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 40, events: 300, ..Default::default() }).unwrap();
    publish_source(&client, &topics, &source).await;
    let encoder = Encoder::new(Catalogue::embedded(), Framing::SingleObject);
    let change = source.consent_events().next().unwrap();
    let payload =
        encoder.encode(Catalogue::embedded().version("consent", change.version()).unwrap(), change.value()).unwrap();
    let nhs_number = field_text(change.value(), "nhs_number").unwrap();
    let old_key = format!("{nhs_number}:NATIONAL_DATA_OPT_OUT");
    assert_ne!(old_key, change.key());
    let producer: FutureProducer = client.create().unwrap();
    let send = |key: String| {
        let (producer, payload, topic) = (producer.clone(), payload.clone(), topics.consent().to_owned());
        async move {
            producer.send(FutureRecord::to(&topic).key(&key).payload(&payload), Duration::from_secs(5)).await.unwrap()
        }
    };
    send(old_key).await;

    let patient_events =
        source.clinical_events().filter(|e| field_text(e.value(), "nhs_number").as_ref() == Some(&nhs_number)).count()
            as u64;
    assert!(patient_events > 0);
    let purposes = vec!["research".to_owned()];
    let lake = tempfile::tempdir().unwrap();
    let config = lander_config(lake.path(), &purposes, "key-test", &topics);
    let report = land_until_caught_up(&client, &config, &keys::generate(&purposes)).await;
    assert_eq!(report.consent_dead_lettered, 1);
    assert_eq!(report.withheld["research"].get("consent_unreadable").copied(), Some(patient_events), "{report:?}");
    let dead = read_topic(&client, topics.dead_letter());
    assert!(
        dead[0].headers["sluice.dead_letter.reason"].contains("key is not the key of the change"),
        "{:?}",
        dead[0].headers
    );

    // The same change again under its own key, read by a fresh lander: still held, since the
    // record under the other key still stands and says nobody knows what.
    send(change.key().to_owned()).await;
    let lake = tempfile::tempdir().unwrap();
    let config = lander_config(lake.path(), &purposes, "key-test-2", &topics);
    let report = land_until_caught_up(&client, &config, &keys::generate(&purposes)).await;
    assert_eq!(report.withheld["research"].get("consent_unreadable").copied(), Some(patient_events), "{report:?}");
}
