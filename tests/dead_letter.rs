//! Poison input on the mock cluster: every record that cannot be decoded or checked goes to the
//! dead-letter topic with a reason, the lander keeps going, and every consumed record is
//! accounted for.

mod support;

use std::{collections::BTreeMap, time::Duration};

use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice::keys;
use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use sluice_schemas::{Catalogue, Encoder, Framing};
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
    let adt = source.clinical_events().find(|e| e.subject == "adt").unwrap();
    let encoder = Encoder::new(catalogue, Framing::SingleObject);
    let adt_bytes = encoder.encode(catalogue.version("adt", 1).unwrap(), &adt.value).unwrap();
    let mut unknown_schema = vec![0xC3, 0x01];
    unknown_schema.extend_from_slice(&0x1234_5678_9abc_def0u64.to_le_bytes());
    unknown_schema.extend_from_slice(&adt_bytes[10..]);
    let truncated = adt_bytes[..adt_bytes.len() / 2].to_vec();
    let mut bad_consent = source.consent_events().next().unwrap();
    if let sluice_schemas::apache_avro::types::Value::Record(fields) = &mut bad_consent.value {
        fields[4].1 = sluice_schemas::apache_avro::types::Value::String("1234567890".into());
    }
    let bad_consent_bytes = encoder.encode(catalogue.version("consent", 1).unwrap(), &bad_consent.value).unwrap();
    // A laboratory result with 19 digits for its decimal(18,6) field: Avro decodes it (16 bytes
    // hold it), but it must not land rounded or truncated.
    let mut too_wide = source.clinical_events().find(|e| e.subject == "observation" && e.version == 3).unwrap();
    if let sluice_schemas::apache_avro::types::Value::Record(fields) = &mut too_wide.value {
        let decimal = sluice_schemas::apache_avro::Decimal::from(1_234_567_890_123_456_789_000i128.to_be_bytes());
        fields.iter_mut().find(|(name, _)| name == "value_decimal").unwrap().1 =
            sluice_schemas::apache_avro::types::Value::Union(
                1,
                Box::new(sluice_schemas::apache_avro::types::Value::Decimal(decimal)),
            );
    }
    let too_wide_bytes = encoder.encode(catalogue.version("observation", 3).unwrap(), &too_wide.value).unwrap();
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
        producer.send(FutureRecord::<(), _>::to(topic).payload(payload), Duration::from_secs(5)).await.unwrap();
    }

    let lake = tempfile::tempdir().unwrap();
    let purposes = vec!["research".to_owned()];
    let config = lander_config(lake.path(), &purposes, "dead-letter-test", &topics);
    let report = land_until_caught_up(&client, &config, &keys::generate(&purposes)).await;

    assert_eq!(report.dead_lettered, 5);
    assert_eq!(report.consent_dead_lettered, 1);
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
    assert!(all_reasons.iter().any(|r| r.contains("cannot decode a `adt` v1 body")), "{all_reasons:?}");
    assert!(all_reasons.iter().any(|r| r.contains("a `adt` event on the topic of `observation`")), "{all_reasons:?}");
    assert!(all_reasons.iter().any(|r| r.contains("invalid NHS number")), "{all_reasons:?}");
    assert!(
        all_reasons.iter().any(|r| r
            .contains("column `value_decimal` of `observation`: a decimal has more digits than DECIMAL(18,6) holds")),
        "{all_reasons:?}"
    );
}
