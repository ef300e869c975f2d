//! Consent over time, from the outside, on the real broker process (Tansu): consent changes
//! published through the subject-JSON adapter's reading before and after the events they
//! govern, landed for direct care, planning, research and a study, and the landed rows counted
//! per patient and purpose. Then the consent topic is compacted as Kafka compacts (the last
//! record of each key) into a topic of its own, and a fresh lander reading it lands exactly the
//! rows a fresh lander reading the whole topic lands, which are the rows left in the first lake
//! after recall. Changes bounded in time are among them: an opt-out dated a few seconds ahead
//! (released until then, recalled after), opt-outs whose period has ended or has not; and a
//! lander left running applies an opt-out dated ahead when its time comes, with no record
//! arriving then.

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
use support::{column_strings, lander_config, parquet_files, read_parquet, read_topic, tansu::Tansu};
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
    support::land_with_setups_until_caught_up(client, &config, &setups(keys)).await
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

/// A National Data Opt-out from `at`, until `until` when given, as a version 2 subject-JSON line.
fn opt_out_line(nhs_number: &str, at: &str, until: Option<&str>) -> sluice_producers::clinical::SubjectRecord {
    let until = until.map(|u| format!(r#", "effective_until": "{u}""#)).unwrap_or_default();
    let line = format!(
        r#"{{"subject": "consent", "version": 2, "record": {{"event_id": "{}", "effective_at": "{at}"{until}, "recorded_at": "2025-01-01T00:00:00Z", "source_organisation": "X26", "nhs_number": "{nhs_number}", "scope": "NATIONAL_DATA_OPT_OUT", "decision": "DENY"}}}}"#,
        uuid::Uuid::new_v4()
    );
    parse_subject_line(line.as_bytes(), Catalogue::embedded(), chrono::Utc::now()).unwrap().into_record()
}

/// A Tansu broker with sluice's topics, its client and a publisher to it.
async fn broker_with_publisher() -> (Tansu, rdkafka::ClientConfig, Topics, EventPublisher<'static>) {
    let broker = Tansu::start();
    let client = broker.client();
    let topics = Topics::embedded();
    provision::apply(&client, &topics).await.unwrap();
    let publisher =
        EventPublisher::new(&client, Catalogue::embedded(), topics.by_subject(), PublisherConfig::default()).unwrap();
    (broker, client, topics, publisher)
}

/// A synthetic source in which nobody has opted out: every decision in a test is its own.
fn source_without_decisions(patients: u32, events: u64, seed: u64) -> SyntheticSource {
    SyntheticSource::new(SyntheticSourceConfig {
        patients,
        events,
        national_opt_out_share: 0.0,
        type1_opt_out_share: 0.0,
        withdrawn_share: 0.0,
        missing_nhs_number_share: 0.0,
        seed,
        ..Default::default()
    })
    .unwrap()
}

/// An RFC 3339 time `seconds` from now.
fn seconds_from_now(seconds: i64) -> (chrono::DateTime<chrono::Utc>, String) {
    let at = chrono::Utc::now() + chrono::TimeDelta::seconds(seconds);
    (at, at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_decided_per_purpose_over_time_and_unchanged_by_compaction_on_a_real_broker() {
    let (_broker, client, topics, publisher) = broker_with_publisher().await;
    let trace = TraceContext::new_root();
    let origin =
        Origin { source_reference: "file:consent.ndjson", adapter: "file", trace: &trace, fields_left_out: &[] };
    let publish = |record: sluice_producers::clinical::SubjectRecord| {
        let publisher = &publisher;
        async move { publisher.publish_records(&[record], origin).await.unwrap() }
    };

    let source = source_without_decisions(60, 1_600, 31);
    let events: Vec<_> = source.clinical_events().collect();
    let (early, late) = events.split_at(800);
    let nhs = |index: u32| source.patient(index).nhs_number.digits();
    let [unlimited, research_withdrawn, study_dissent, unreadable, lifted, late_opt_out] = [1u32, 2, 3, 4, 5, 6];
    let [dated_ahead, period_over, period_running] = [7u32, 8, 9];

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
    let lifted_key = lifted_record.key().to_owned();
    for key in [&unreadable_key, &lifted_key] {
        producer
            .send(
                FutureRecord::to(topics.consent()).key(key.as_str()).payload(&garbage),
                std::time::Duration::from_secs(5),
            )
            .await
            .unwrap();
    }
    publish(lifted_record).await;
    // Bounded in time: an opt-out taking effect a few seconds from now; one whose period is
    // over (released); one whose period runs on (withheld).
    let (ahead, ahead_text) = seconds_from_now(15);
    publish(opt_out_line(&nhs(dated_ahead), &ahead_text, None)).await;
    publish(opt_out_line(&nhs(period_over), "2025-01-01T00:00:00Z", Some("2025-06-01T00:00:00Z"))).await;
    publish(opt_out_line(&nhs(period_running), "2025-01-01T00:00:00Z", Some("2099-01-01T00:00:00Z"))).await;
    publisher.publish_all(early.iter().cloned(), |_| {}).await.unwrap();

    let lake = tempfile::tempdir().unwrap();
    let purposes: Vec<String> = PURPOSES.iter().map(|p| p.to_string()).collect();
    let keys = keys::generate(&purposes);
    let first = land(&client, lake.path(), "over-time", &topics, &keys).await;
    assert_eq!(first.consent_dead_lettered, 2);
    let early_events_of = |patient: u32| early.iter().filter(|e| e.truth.patient == patient).count();
    if chrono::Utc::now() < ahead {
        // Landed before its time: released (on a machine slow enough to land after it, the
        // opt-out is in force already, which the expectations below cover too).
        let landed = rows(lake.path(), &keys, &source);
        let research = landed.get(&(dated_ahead, "research".to_owned())).copied().unwrap_or(0);
        assert_eq!(research, early_events_of(dated_ahead), "released before the opt-out takes effect");
    }
    // The second landing starts after the opt-out's time: no record arrives then, and its rows
    // are recalled all the same.
    if let Ok(wait) = (ahead - chrono::Utc::now()).to_std() {
        tokio::time::sleep(wait + std::time::Duration::from_millis(200)).await;
    }

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
            _ if [unlimited, unreadable, late_opt_out, dated_ahead, period_running].contains(&patient) => true,
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
    for patient in [
        unlimited,
        research_withdrawn,
        study_dissent,
        unreadable,
        lifted,
        late_opt_out,
        dated_ahead,
        period_over,
        period_running,
    ] {
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

/// Rows per (patient, purpose) read while a lander may be rewriting files: `None` when a file
/// went away under the reader (read again later).
fn rows_now(
    lake: &Path,
    keys: &BTreeMap<String, PurposeKey>,
    source: &SyntheticSource,
) -> Option<BTreeMap<(u32, String), usize>> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let counted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rows(lake, keys, source))).ok();
    std::panic::set_hook(hook);
    counted
}

/// Waits up to a minute for `done` to hold of the lake's rows.
async fn wait_for_rows(
    lake: &Path,
    keys: &BTreeMap<String, PurposeKey>,
    source: &SyntheticSource,
    what: &str,
    done: impl Fn(&BTreeMap<(u32, String), usize>) -> bool,
) -> BTreeMap<(u32, String), usize> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(rows) = rows_now(lake, keys, source).filter(|rows| done(rows)) {
            return rows;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_lander_applies_an_opt_out_dated_ahead_when_its_time_comes() {
    let (_broker, client, topics, publisher) = broker_with_publisher().await;
    let trace = TraceContext::new_root();
    let origin =
        Origin { source_reference: "file:consent.ndjson", adapter: "file", trace: &trace, fields_left_out: &[] };
    let source = source_without_decisions(20, 400, 37);
    let events: Vec<_> = source.clinical_events().collect();
    let (early, late) = events.split_at(200);
    let patient = 3u32;
    let count =
        |events: &[sluice_producers::SyntheticEvent]| events.iter().filter(|e| e.truth.patient == patient).count();
    assert!(count(early) > 0 && count(late) > 0, "the patient has events before and after");

    let (ahead, ahead_text) = seconds_from_now(20);
    let opt_out = opt_out_line(&source.patient(patient).nhs_number.digits(), &ahead_text, None);
    publisher.publish_records(&[opt_out], origin).await.unwrap();
    publisher.publish_all(early.iter().cloned(), |_| {}).await.unwrap();

    let lake = tempfile::tempdir().unwrap();
    let purposes: Vec<String> = PURPOSES.iter().map(|p| p.to_string()).collect();
    let keys = keys::generate(&purposes);
    let config = lander_config(lake.path(), &purposes, "running", &topics);
    let (stop, shutdown) = watch::channel(false);
    let setups = setups(&keys);
    let lander = {
        let (client, config) = (client.clone(), config.clone());
        tokio::spawn(async move {
            sluice_consumers::run(&client, &config, &setups, Catalogue::embedded(), RunUntil::Stopped, shutdown, |_| {})
                .await
        })
    };
    let research =
        |rows: &BTreeMap<(u32, String), usize>| rows.get(&(patient, "research".to_owned())).copied().unwrap_or(0);
    let direct = |rows: &BTreeMap<(u32, String), usize>| rows.keys().filter(|(_, p)| p == "direct-care").count();
    let landed = wait_for_rows(lake.path(), &keys, &source, "the early events", |rows| {
        rows.iter().filter(|((_, p), _)| p == "direct-care").map(|(_, n)| n).sum::<usize>() == early.len()
    })
    .await;
    assert!(direct(&landed) > 0);
    assert!(chrono::Utc::now() < ahead, "the early events landed before the opt-out's time (a slow machine?)");
    assert_eq!(research(&landed), count(early), "released before the opt-out takes effect");

    // Nothing more is published: the opt-out's time passing is what recalls the rows.
    let recalled = wait_for_rows(lake.path(), &keys, &source, "the recall", |rows| research(rows) == 0).await;
    assert!(chrono::Utc::now() >= ahead);
    assert_eq!(
        recalled.get(&(patient, "direct-care".to_owned())).copied(),
        Some(count(early)),
        "direct care keeps its rows"
    );

    publisher.publish_all(late.iter().cloned(), |_| {}).await.unwrap();
    let after = wait_for_rows(lake.path(), &keys, &source, "the late events", |rows| {
        rows.iter().filter(|((_, p), _)| p == "direct-care").map(|(_, n)| n).sum::<usize>() == events.len()
    })
    .await;
    assert_eq!(research(&after), 0, "withheld once in force");
    for purpose in ["planning", STUDY] {
        assert_eq!(after.get(&(patient, purpose.to_owned())).copied().unwrap_or(0), 0, "{purpose}");
    }
    // A lander that stopped by itself dropped the receiver: its error says why.
    let stopped = stop.send(true);
    let report = lander.await.unwrap().unwrap();
    assert!(stopped.is_ok(), "the lander stopped before it was asked to");
    assert!(report.erased_rows >= count(early) as u64, "{report:?}");
}
