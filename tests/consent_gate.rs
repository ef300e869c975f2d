//! The consent gate, end to end on the embedded mock cluster: a lander releases nothing while it
//! cannot read the consent topic, and an opt-out read after a patient's rows were landed stops
//! later releases and (with `erase_on_opt_out`) removes the landed rows, audited.

mod support;

use std::{collections::HashMap, time::Duration};

use sluice::keys;
use sluice_consumers::{Error, RunUntil};
use sluice_producers::{EventPublisher, PublisherConfig, SyntheticEvent, SyntheticSource, SyntheticSourceConfig};
use sluice_schemas::Catalogue;
use support::*;
use tokio::sync::watch;

/// A source in which nobody has opted out (yet), every event naming its patient.
fn source(national_opt_out_share: f64) -> SyntheticSource {
    SyntheticSource::new(SyntheticSourceConfig {
        patients: 40,
        events: 1_200,
        national_opt_out_share,
        type1_opt_out_share: 0.0,
        withdrawn_share: 0.0,
        missing_nhs_number_share: 0.0,
        seed: 5,
        ..SyntheticSourceConfig::default()
    })
    .unwrap()
}

/// The same synthetic event as sent by `organisation`: read back into the model, changed,
/// validated and recorded again under the version it was written with.
fn relabelled_event(event: &SyntheticEvent, organisation: &str) -> SyntheticEvent {
    use sluice_producers::clinical::ClinicalEvent;
    let version = Catalogue::embedded().version(event.subject(), event.version()).unwrap();
    let mut typed = ClinicalEvent::from_record_of(version, event.value()).unwrap();
    match &mut typed {
        ClinicalEvent::Adt(e) => e.provenance.source_organisation = organisation.to_owned(),
        ClinicalEvent::Observation(e) => e.provenance.source_organisation = organisation.to_owned(),
        ClinicalEvent::Diagnosis(e) => e.provenance.source_organisation = organisation.to_owned(),
        ClinicalEvent::Consent(e) => e.source_organisation = organisation.to_owned(),
    }
    let record = typed.validate(chrono::Utc::now()).unwrap().into_record_as(version).unwrap();
    SyntheticEvent::new(record, event.truth)
}

/// Publishes consent changes written as subject-JSON lines, read as the file adapter reads them.
async fn publish_consent_lines(publisher: &EventPublisher<'_>, lines: &[String]) {
    use sluice_producers::{Origin, headers::TraceContext, subject_json::parse_subject_line};
    let trace = TraceContext::new_root();
    for text in lines {
        let event = parse_subject_line(text.as_bytes(), Catalogue::embedded(), chrono::Utc::now()).unwrap();
        let origin =
            Origin { source_reference: "file:consent.ndjson", adapter: "file", trace: &trace, fields_left_out: &[] };
        publisher.publish_records(&[event.into_record()], origin).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_released_while_the_consent_topic_cannot_be_read() {
    let (cluster, client, topics) = mock_cluster();
    let publisher =
        EventPublisher::new(&client, Catalogue::embedded(), topics.by_subject(), PublisherConfig::default()).unwrap();
    publisher.publish_all(source(0.0).clinical_events().take(300), |_| {}).await.unwrap();

    // The consent topic's only broker goes away before the lander starts.
    let lake = tempfile::tempdir().unwrap();
    let purposes = vec!["research".to_owned(), "direct-care".to_owned()];
    let mut config = lander_config(lake.path(), &purposes, "gate-test", &topics);
    config.consent_load_timeout_secs = 3;
    cluster.broker_down(1).unwrap();
    let setups = builtin_setups(&keys::generate(&purposes));
    let (_shutdown, shutdown) = watch::channel(false);
    let run =
        sluice_consumers::run(&client, &config, &setups, Catalogue::embedded(), RunUntil::Stopped, shutdown, |_| {});
    let outcome = tokio::time::timeout(Duration::from_secs(60), run).await.expect("gives up within its timeout");
    match outcome {
        Err(Error::ConsentUnavailable { topic, .. }) => assert_eq!(topic, topics.consent()),
        other => panic!("expected landing to hold, got {other:?}"),
    }
    assert!(parquet_files(lake.path()).is_empty(), "nothing landed, not even for direct care");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_opt_out_stops_later_releases_and_erases_what_was_landed() {
    let (_cluster, mut client, topics) = mock_cluster();
    // The mock coordinator holds a rejoining group for the session timeout: keep it short.
    client.set("session.timeout.ms", "6000");
    let publisher =
        EventPublisher::new(&client, Catalogue::embedded(), topics.by_subject(), PublisherConfig::default()).unwrap();
    let before = source(0.0);
    let events: Vec<_> = before.clinical_events().collect();
    let (early, late) = events.split_at(600);
    publisher.publish_all(early.iter().cloned(), |_| {}).await.unwrap();

    let lake = tempfile::tempdir().unwrap();
    let purposes = vec!["direct-care".to_owned(), "research".to_owned()];
    let keys = keys::generate(&purposes);
    let mut config = lander_config(lake.path(), &purposes, "later-opt-out", &topics);
    config.erase_on_opt_out = true;
    let first = land_until_caught_up(&client, &config, &keys).await;
    assert_eq!(first.landed["research"], 600);

    // The patient with the most events opts out; their later events must not reach research,
    // and their earlier research rows must go. Direct care is not subject to the opt-out.
    let mut per_patient: HashMap<u32, usize> = HashMap::new();
    for event in &events {
        *per_patient.entry(event.truth.patient).or_default() += 1;
    }
    let (&patient, _) = per_patient.iter().max_by_key(|(index, n)| (**n, **index)).unwrap();
    let early_of_patient = early.iter().filter(|e| e.truth.patient == patient).count();
    let late_of_patient = late.iter().filter(|e| e.truth.patient == patient).count();
    assert!(early_of_patient > 0 && late_of_patient > 0);
    let everyone_opted_out = source(1.0);
    let opt_out = everyone_opted_out.consent_events().filter(|e| e.truth.patient == patient);
    publisher.publish_all(opt_out, |_| {}).await.unwrap();
    publisher.publish_all(late.iter().cloned(), |_| {}).await.unwrap();

    let second = land_until_caught_up(&client, &config, &keys).await;
    assert_eq!(second.consumed_total(), late.len() as u64);
    assert_eq!(second.withheld["research"]["national_data_opt_out"], late_of_patient as u64);
    assert_eq!(second.landed["direct-care"], late.len() as u64);
    assert_eq!(second.erased_rows, early_of_patient as u64, "the early research rows were erased");

    let pseudonym = keys["research"].patient_pseudonym(&before.patient(patient).nhs_number.digits());
    let mut research_rows = 0;
    for file in parquet_files(&lake.path().join("research")) {
        let pseudonyms = column_strings(&read_parquet(&file).batches, "patient_pseudonym");
        research_rows += pseudonyms.len();
        assert!(!pseudonyms.contains(&pseudonym), "{}: the opted-out patient is still there", file.display());
    }
    assert_eq!(research_rows, events.len() - early_of_patient - late_of_patient);
    let direct_care_pseudonym = keys["direct-care"].patient_pseudonym(&before.patient(patient).nhs_number.digits());
    let direct_care_rows: usize = parquet_files(&lake.path().join("direct-care"))
        .iter()
        .map(|file| {
            column_strings(&read_parquet(file).batches, "patient_pseudonym")
                .iter()
                .filter(|p| **p == direct_care_pseudonym)
                .count()
        })
        .sum();
    assert_eq!(direct_care_rows, early_of_patient + late_of_patient, "direct care keeps every row");

    let audit = std::fs::read_to_string(lake.path().join("_audit/audit.jsonl")).unwrap();
    let erasures: Vec<&str> = audit.lines().filter(|line| line.contains("\"kind\":\"erasure\"")).collect();
    assert_eq!(erasures.len(), 1, "{audit}");
    assert!(erasures[0].contains("\"trigger\":\"opt_out\""));
    assert!(erasures[0].contains(&format!("\"rows_removed\":{early_of_patient}")));
    assert!(!audit.contains(&before.patient(patient).nhs_number.digits()), "the audit never names the patient");
    let verified = sluice_consumers::audit::verify(&lake.path().join("_audit/audit.jsonl")).unwrap();
    assert!(verified.problems.is_empty(), "{:?}", verified.problems);
    let landings = audit.lines().filter(|line| line.contains("\"kind\":\"landing\"")).count();
    assert!(landings >= 2 * 3, "a landing record per purpose and partition range ({landings})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_under_an_exemption_are_counted_and_audited_with_their_legal_basis() {
    let (_cluster, client, topics) = mock_cluster();
    let opted_out = source(0.3);
    publish_source(&client, &topics, &opted_out).await;
    let held_back: u64 =
        opted_out.clinical_events().filter(|event| opted_out.patient(event.truth.patient).national_opt_out).count()
            as u64;
    assert!(held_back > 50, "the source exercises opt-outs ({held_back})");

    // Planning runs under a declared exemption from the National Data Opt-out; research does not.
    let planning_text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/planning.toml"))
        .unwrap()
        .replace(
            "exemptions = []",
            r#"exemptions = [{ opt_out = "national-data-opt-out", legal_basis = "s251 NHS Act 2006 (COPI regulation 5)", reference = "CAG 10-02(b)/2026" }]"#,
        );
    let planning = sluice_consumers::policy::Policy::from_toml(&planning_text, "test:planning-exempt.toml").unwrap();
    let purposes = vec!["planning".to_owned(), "research".to_owned()];
    let keys = keys::generate(&purposes);
    let mut setups = builtin_setups(&keys);
    setups.get_mut("planning").unwrap().policy = planning;

    let lake = tempfile::tempdir().unwrap();
    let config = lander_config(lake.path(), &purposes, "exemption-test", &topics);
    let report = support::land_with_setups_until_caught_up(&client, &config, &setups).await;

    assert_eq!(report.released_under_exemption["planning"]["national_data_opt_out"], held_back);
    assert_eq!(report.landed["planning"], 1_200, "planning receives every event");
    assert_eq!(report.withheld["research"]["national_data_opt_out"], held_back);
    assert!(!report.released_under_exemption.contains_key("research"));

    let audit = std::fs::read_to_string(lake.path().join("_audit/audit.jsonl")).unwrap();
    let mut audited = 0;
    for line in audit.lines().filter(|l| l.contains("\"kind\":\"landing\"") && l.contains("\"purpose\":\"planning\"")) {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(use_) = record["event"]["released_under_exemption"].get("national_data_opt_out") {
            assert_eq!(use_["legal_basis"], "s251 NHS Act 2006 (COPI regulation 5)");
            assert_eq!(use_["reference"], "CAG 10-02(b)/2026");
            audited += use_["events"].as_u64().unwrap();
        }
    }
    assert_eq!(audited, held_back, "every release under the exemption is in the audit trail");
}

/// A dissent from a study, sent as subject JSON lines with the study id spelt three ways, is the
/// study's dissent: the patient's data is withheld from the study (`study:iras 312456` in
/// configuration is the same study) and still released for research. Consent naming a study the
/// lander does not serve is reported, so a misspelt study policy is noticed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn study_ids_in_odd_spellings_name_one_study_and_unserved_studies_are_reported() {
    use sluice_consumers::{keyring::KeyRing, lander::PurposeSetup, policy::Policy};
    let (_cluster, client, topics) = mock_cluster();
    let publisher =
        EventPublisher::new(&client, Catalogue::embedded(), topics.by_subject(), PublisherConfig::default()).unwrap();
    let source = source(0.0);
    publisher.publish_all(source.clinical_events(), |_| {}).await.unwrap();
    let mut per_patient: HashMap<u32, usize> = HashMap::new();
    for event in source.clinical_events() {
        *per_patient.entry(event.truth.patient).or_default() += 1;
    }
    let (&dissenting, &events_of_patient) = per_patient.iter().max_by_key(|(index, n)| (**n, **index)).unwrap();
    let nhs_number = source.patient(dissenting).nhs_number.digits();
    let line = |study: &str, purposes: &str, at: &str| {
        format!(
            r#"{{"subject": "consent", "version": 1, "record": {{"event_id": "{}", "effective_at": "{at}", "recorded_at": "{at}", "source_organisation": "X26", "nhs_number": "{nhs_number}", "scope": "STUDY", "study_id": "{study}", "decision": "DENY", "purposes": {purposes}}}}}"#,
            uuid::Uuid::new_v4()
        )
    };
    let lines = [
        line("IRAS 312456", "[]", "2025-06-01T00:00:00Z"),
        line("iras-312456", r#"["study:IRAS ID: 312456"]"#, "2025-06-02T00:00:00Z"),
        line("IRAS ID: 312456", r#"["study:iras 312456"]"#, "2025-06-03T00:00:00Z"),
        line("ISRCTN 12345678", "[]", "2025-06-04T00:00:00Z"),
    ];
    publish_consent_lines(&publisher, &lines).await;

    let lake = tempfile::tempdir().unwrap();
    let purposes = vec!["study:iras 312456".to_owned(), "research".to_owned()];
    let keys = keys::generate(&["study:IRAS-312456".to_owned(), "research".to_owned()]);
    let research_policy =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/research.toml"))
            .unwrap();
    let study_policy = research_policy
        .replace("purpose = \"research\"", "purpose = \"study:IRAS 312456\"")
        .replace("name = \"research\"", "name = \"iras-312456\"");
    let mut setups = std::collections::BTreeMap::new();
    setups.insert(
        "study:IRAS-312456".to_owned(),
        PurposeSetup {
            policy: Policy::from_toml(&study_policy, "study.toml").unwrap(),
            keys: KeyRing::single(keys["study:IRAS-312456"].clone()),
        },
    );
    setups.insert(
        "research".to_owned(),
        PurposeSetup { policy: Policy::builtin("research").unwrap(), keys: KeyRing::single(keys["research"].clone()) },
    );
    let config = lander_config(lake.path(), &purposes, "study-test", &topics);
    let report = support::land_with_setups_until_caught_up(&client, &config, &setups).await;
    assert_eq!(report.consent_changes, 4);
    assert_eq!(report.withheld["study:IRAS-312456"]["study_dissent"], events_of_patient as u64, "{report:?}");
    assert_eq!(
        report.withheld.get("research").map(|w| w.values().sum::<u64>()).unwrap_or(0),
        0,
        "research is not the study"
    );
    assert_eq!(report.landed["research"], source.config().events);
    assert_eq!(report.consent_for_unserved_studies, std::collections::BTreeSet::from(["ISRCTN12345678".to_owned()]));
}

/// Type 1 by the data's origin: a Type 1 opt-out covers a patient's events from GP practices and
/// from organisations the register of source organisations does not list (counted), not those
/// from the trusts it lists; once an operator's register lists the organisation as a trust, its
/// events are released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_1_follows_the_register_of_source_organisations_and_fails_closed_on_unknown_ones() {
    let (_cluster, client, topics) = mock_cluster();
    let publisher =
        EventPublisher::new(&client, Catalogue::embedded(), topics.by_subject(), PublisherConfig::default()).unwrap();
    let source = source(0.0);
    let mut events: Vec<_> = source.clinical_events().collect();
    let patient = (0..source.config().patients)
        .max_by_key(|p| events.iter().filter(|e| e.truth.patient == *p && !e.truth.gp_sourced).count())
        .unwrap();
    let (mut from_gp, mut from_trusts, mut relabelled) = (0u64, 0u64, 0u64);
    for event in events.iter_mut().filter(|e| e.truth.patient == patient) {
        if event.truth.gp_sourced {
            from_gp += 1;
        } else if relabelled < 3 {
            // Sent by an organisation nobody has put in the register.
            *event = relabelled_event(event, "RZZ");
            relabelled += 1;
        } else {
            from_trusts += 1;
        }
    }
    assert!(from_gp > 0 && from_trusts > 0 && relabelled == 3, "{from_gp} {from_trusts} {relabelled}");
    publisher.publish_all(events.into_iter(), |_| {}).await.unwrap();
    let line = format!(
        r#"{{"subject": "consent", "record": {{"event_id": "{}", "effective_at": "2025-01-01T00:00:00Z", "recorded_at": "2025-01-01T00:00:00Z", "source_organisation": "B86001", "nhs_number": "{}", "scope": "TYPE_1_OPT_OUT", "decision": "DENY"}}}}"#,
        uuid::Uuid::new_v4(),
        source.patient(patient).nhs_number.digits()
    );
    publish_consent_lines(&publisher, &[line]).await;

    let purposes = vec!["research".to_owned()];
    let keys = keys::generate(&purposes);
    let lake = tempfile::tempdir().unwrap();
    let config = lander_config(lake.path(), &purposes, "register-built-in", &topics);
    let report = land_until_caught_up(&client, &config, &keys).await;
    assert_eq!(report.withheld["research"]["type_1_opt_out"], from_gp + relabelled, "{report:?}");
    assert_eq!(report.unknown_source_organisations, std::collections::BTreeMap::from([("RZZ".to_owned(), 3)]));
    assert_eq!(report.landed["research"], source.config().events - from_gp - relabelled);

    // The operator's register says what RZZ is: its events are a trust's.
    let register = lake.path().join("source-organisations.csv");
    let built_in = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/source-organisations.csv"),
    )
    .unwrap();
    std::fs::write(&register, format!("{built_in}RZZ,nhs-trust,A trust added after review\n")).unwrap();
    let reviewed_lake = tempfile::tempdir().unwrap();
    let config = sluice_consumers::LanderConfig {
        source_organisations: Some(register),
        ..lander_config(reviewed_lake.path(), &purposes, "register-reviewed", &topics)
    };
    let report = land_until_caught_up(&client, &config, &keys).await;
    assert_eq!(report.withheld["research"]["type_1_opt_out"], from_gp, "{report:?}");
    assert!(report.unknown_source_organisations.is_empty());

    // A register that cannot be read stops the lander before it releases anything.
    let broken = lake.path().join("broken.csv");
    std::fs::write(&broken, "ods_code,organisation_type,name\nRZZ,hospital,\n").unwrap();
    let config = sluice_consumers::LanderConfig {
        source_organisations: Some(broken),
        ..lander_config(tempfile::tempdir().unwrap().path(), &purposes, "register-broken", &topics)
    };
    let (_targets, targets) = watch::channel(None);
    let (_shutdown, shutdown) = watch::channel(false);
    let error = sluice_consumers::run(
        &client,
        &config,
        &sluice_consumers::lander::setups_from_builtin(&keys).unwrap(),
        Catalogue::embedded(),
        RunUntil::CaughtUp(targets),
        shutdown,
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(&error, Error::SourceOrganisations(e) if e.line == 2), "{error}");
    assert!(error.to_string().contains("unknown organisation_type `hospital`"), "{error}");
}
