//! Consent over time, from the outside, on the real broker process (Tansu): consent changes
//! published through the subject-JSON adapter's reading before and after the events they
//! govern, landed for direct care, planning, research and a study, and the landed rows counted
//! per patient and purpose. Then the consent topic is compacted as Kafka compacts (the last
//! record of each key) into a topic of its own, and a fresh lander reading it lands exactly the
//! rows a fresh lander reading the whole topic lands, which are the rows left in the first lake
//! after recall.

mod support;

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice::{keys, provision, topics::Topics};
use sluice_consumers::{
    LandingReport, RunUntil, keyring::KeyRing, lander::PurposeSetup, policy::Policy, pseudonymise::PurposeKey,
};
use sluice_producers::{
    EventPublisher, Origin, PublisherConfig, SyntheticSource, SyntheticSourceConfig, headers::TraceContext,
    subject_json::parse_subject_line,
};
use sluice_schemas::Catalogue;
use support::{column_strings, high_watermarks, lander_config, parquet_files, read_parquet, read_topic, tansu::Tansu};
use tokio::sync::watch;

const STUDY: &str = "study:IRAS-312456";
const PURPOSES: [&str; 4] = ["direct-care", "planning", "research", STUDY];

/// Each purpose under its built-in policy; the study under the research policy renamed.
fn setups(keys: &BTreeMap<String, PurposeKey>) -> BTreeMap<String, PurposeSetup> {
    let research =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/research.toml")).unwrap();
    let study = research
        .replace("purpose = \"research\"", "purpose = \"study:IRAS 312456\"")
        .replace("name = \"research\"", "name = \"iras-312456\"");
    PURPOSES
        .iter()
        .map(|purpose| {
            let policy = match *purpose {
                STUDY => Policy::from_toml(&study, "study.toml").unwrap(),
                builtin => Policy::builtin(builtin).unwrap(),
            };
            (purpose.to_string(), PurposeSetup { policy, keys: KeyRing::single(keys[*purpose].clone()) })
        })
        .collect()
}

async fn land(
    client: &rdkafka::ClientConfig,
    lake: &Path,
    group: &str,
    topics: &Topics,
    keys: &BTreeMap<String, PurposeKey>,
) -> LandingReport {
    let purposes: Vec<String> = PURPOSES.iter().map(|p| p.to_string()).collect();
    let config = lander_config(lake, &purposes, group, topics);
    let (_targets, targets) = watch::channel(Some(high_watermarks(client, &config.clinical_topics)));
    let (_shutdown, shutdown) = watch::channel(false);
    sluice_consumers::run(
        client,
        &config,
        &setups(keys),
        Catalogue::embedded(),
        RunUntil::CaughtUp(targets),
        shutdown,
        |_| {},
    )
    .await
    .unwrap()
}

/// Rows per (patient index, purpose) in a lake, found by each purpose's patient pseudonym.
fn rows(lake: &Path, keys: &BTreeMap<String, PurposeKey>, source: &SyntheticSource) -> BTreeMap<(u32, String), usize> {
    let mut by_pseudonym: HashMap<(String, String), u32> = HashMap::new();
    for index in 0..source.config().patients {
        let digits = source.patient(index).nhs_number.digits();
        for purpose in PURPOSES {
            by_pseudonym.insert((purpose.to_owned(), keys[purpose].patient_pseudonym(&digits)), index);
        }
    }
    let mut counts = BTreeMap::new();
    for purpose in PURPOSES {
        for file in parquet_files(&lake.join(purpose)) {
            for pseudonym in column_strings(&read_parquet(&file).batches, "patient_pseudonym") {
                let patient = by_pseudonym[&(purpose.to_owned(), pseudonym)];
                *counts.entry((patient, purpose.to_owned())).or_default() += 1;
            }
        }
    }
    counts
}

/// A consent change as a subject-JSON line, read as the file adapter reads it.
fn consent_line(
    nhs_number: &str,
    scope: &str,
    study: Option<&str>,
    decision: &str,
    at: &str,
    purposes: &str,
) -> sluice_producers::clinical::SubjectRecord {
    let study = study.map(|s| format!(r#", "study_id": "{s}""#)).unwrap_or_default();
    let line = format!(
        r#"{{"subject": "consent", "version": 1, "record": {{"event_id": "{}", "effective_at": "{at}", "recorded_at": "{at}", "source_organisation": "X26", "nhs_number": "{nhs_number}", "scope": "{scope}"{study}, "decision": "{decision}", "purposes": {purposes}}}}}"#,
        uuid::Uuid::new_v4()
    );
    parse_subject_line(line.as_bytes(), Catalogue::embedded(), chrono::Utc::now()).unwrap().into_record()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_decided_per_purpose_over_time_and_unchanged_by_compaction_on_a_real_broker() {
    let broker = Tansu::start();
    let client = broker.client();
    let topics = Topics::embedded();
    provision::apply(&client, &topics).await.unwrap();
    let publisher =
        EventPublisher::new(&client, Catalogue::embedded(), topics.by_subject(), PublisherConfig::default()).unwrap();
    let trace = TraceContext::new_root();
    let origin = Origin { source_reference: "file:consent.ndjson", adapter: "file", trace: &trace };
    let publish = |record: sluice_producers::clinical::SubjectRecord| {
        let publisher = &publisher;
        async move { publisher.publish_records(&[record], origin).await.unwrap() }
    };

    // Nobody has opted out in the source itself: every decision below is the test's own.
    let source = SyntheticSource::new(SyntheticSourceConfig {
        patients: 60,
        events: 1_600,
        national_opt_out_share: 0.0,
        type1_opt_out_share: 0.0,
        withdrawn_share: 0.0,
        missing_nhs_number_share: 0.0,
        seed: 31,
        ..Default::default()
    })
    .unwrap();
    let events: Vec<_> = source.clinical_events().collect();
    let (early, late) = events.split_at(800);
    let nhs = |index: u32| source.patient(index).nhs_number.digits();
    let [unlimited, research_withdrawn, study_dissent, unreadable, lifted, late_opt_out] = [1u32, 2, 3, 4, 5, 6];

    // Before the events: an unlimited opt-out; an opt-out withdrawn for research only; a study
    // dissent spelt two ways; an unreadable record under a key naming a patient; and one made
    // readable again under the same key.
    publish(consent_line(&nhs(unlimited), "NATIONAL_DATA_OPT_OUT", None, "DENY", "2025-01-01T00:00:00Z", "[]")).await;
    publish(consent_line(
        &nhs(research_withdrawn),
        "NATIONAL_DATA_OPT_OUT",
        None,
        "DENY",
        "2025-01-01T00:00:00Z",
        "[]",
    ))
    .await;
    publish(consent_line(
        &nhs(research_withdrawn),
        "NATIONAL_DATA_OPT_OUT",
        None,
        "PERMIT",
        "2025-02-01T00:00:00Z",
        r#"["research"]"#,
    ))
    .await;
    publish(consent_line(&nhs(study_dissent), "STUDY", Some("iras 312456"), "DENY", "2025-01-01T00:00:00Z", "[]"))
        .await;
    publish(consent_line(
        &nhs(study_dissent),
        "STUDY",
        Some("IRAS ID: 312456"),
        "DENY",
        "2025-01-02T00:00:00Z",
        r#"["study:IRAS-312456"]"#,
    ))
    .await;
    let producer: FutureProducer = client.create().unwrap();
    let garbage = b"\xC3\x01not a consent record".to_vec();
    let unreadable_key = format!("{}:NATIONAL_DATA_OPT_OUT:DENY:1:", nhs(unreadable));
    let lifted_record =
        consent_line(&nhs(lifted), "NATIONAL_DATA_OPT_OUT", None, "PERMIT", "2025-01-01T00:00:00Z", "[]");
    for key in [&unreadable_key, &lifted_record.key] {
        producer
            .send(
                FutureRecord::to(topics.consent()).key(key.as_str()).payload(&garbage),
                std::time::Duration::from_secs(5),
            )
            .await
            .unwrap();
    }
    publish(lifted_record).await;
    publisher.publish_all(early.iter().cloned(), |_| {}).await.unwrap();

    let lake = tempfile::tempdir().unwrap();
    let purposes: Vec<String> = PURPOSES.iter().map(|p| p.to_string()).collect();
    let keys = keys::generate(&purposes);
    let first = land(&client, lake.path(), "over-time", &topics, &keys).await;
    assert_eq!(first.consent_dead_lettered, 2);

    // After the first landing: an opt-out recalls what was landed; a back-dated research-only
    // opt-out, older than the withdrawal, changes nothing.
    publish(consent_line(&nhs(late_opt_out), "NATIONAL_DATA_OPT_OUT", None, "DENY", "2025-03-01T00:00:00Z", "[]"))
        .await;
    publish(consent_line(
        &nhs(research_withdrawn),
        "NATIONAL_DATA_OPT_OUT",
        None,
        "DENY",
        "2024-06-01T00:00:00Z",
        r#"["research"]"#,
    ))
    .await;
    publisher.publish_all(late.iter().cloned(), |_| {}).await.unwrap();
    let second = land(&client, lake.path(), "over-time", &topics, &keys).await;
    assert!(second.erased_rows > 0, "the late opt-out recalled rows: {second:?}");

    // Expected rows per patient and purpose, from the source and the decisions above.
    let events_of = |patient: u32| events.iter().filter(|e| e.truth.patient == patient).count();
    let expected = |patient: u32, purpose: &str| -> usize {
        let withheld = match purpose {
            "direct-care" => false,
            _ if patient == unlimited || patient == unreadable || patient == late_opt_out => true,
            "research" => false,
            _ if patient == research_withdrawn => true,
            STUDY => patient == study_dissent,
            _ => false,
        };
        if withheld { 0 } else { events_of(patient) }
    };
    let landed = rows(lake.path(), &keys, &source);
    for patient in 0..source.config().patients {
        for purpose in PURPOSES {
            let got = landed.get(&(patient, purpose.to_owned())).copied().unwrap_or(0);
            assert_eq!(got, expected(patient, purpose), "patient {patient}, {purpose}");
        }
    }
    for patient in [unlimited, research_withdrawn, study_dissent, unreadable, lifted, late_opt_out] {
        assert!(events_of(patient) > 0, "patient {patient} has events");
    }

    // Compaction as Kafka does it, into a consent topic of its own; fresh landers over both.
    let full = read_topic(&client, topics.consent());
    let mut last: Vec<&support::TopicRecord> = Vec::new();
    for record in &full {
        last.retain(|kept| kept.key != record.key);
        last.push(record);
    }
    assert!(last.len() < full.len(), "the topic has repeated keys to compact");
    let mut compacted_topics = topics.clone();
    for topic in &mut compacted_topics.topic {
        if topic.name == topics.consent() {
            topic.name = format!("{}.compacted", topic.name);
        }
    }
    provision::apply(&client, &compacted_topics).await.unwrap();
    for record in last {
        let mut out = FutureRecord::to(compacted_topics.consent()).payload(&record.payload);
        if let Some(key) = &record.key {
            out = out.key(key.as_str());
        }
        producer.send(out, std::time::Duration::from_secs(5)).await.unwrap();
    }
    let from_full = tempfile::tempdir().unwrap();
    land(&client, from_full.path(), "over-time-full", &topics, &keys).await;
    let from_compacted = tempfile::tempdir().unwrap();
    land(&client, from_compacted.path(), "over-time-compacted", &compacted_topics, &keys).await;
    let full_rows = rows(from_full.path(), &keys, &source);
    assert_eq!(full_rows, rows(from_compacted.path(), &keys, &source), "compaction changed what is released");
    assert_eq!(full_rows, landed, "a fresh landing equals the recalled lake");
}
