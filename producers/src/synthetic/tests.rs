//! The synthetic source: validity, determinism, versions and distributions.

use std::collections::HashSet;

use sluice_schemas::{Catalogue, Encoder, Framing, NhsNumber};

use super::*;

fn small() -> SyntheticSource {
    SyntheticSource::new(SyntheticSourceConfig { patients: 500, events: 3_000, ..Default::default() }).unwrap()
}

#[test]
fn every_event_encodes_with_its_declared_schema_version() {
    let source = small();
    let catalogue = Catalogue::embedded();
    let encoder = Encoder::new(catalogue, Framing::SingleObject);
    let mut seen = HashSet::new();
    for event in source.clinical_events().chain(source.consent_events()) {
        let version = catalogue.version(event.subject(), event.version()).unwrap();
        encoder.encode(version, event.value()).unwrap_or_else(|e| panic!("{}: {e}", version.label()));
        seen.insert((event.subject(), event.version()));
    }
    for expected in
        [("adt", 2), ("observation", 1), ("observation", 2), ("observation", 4), ("diagnosis", 2), ("consent", 2)]
    {
        assert!(seen.contains(&expected), "no {expected:?} event");
    }
}

#[test]
fn every_event_decodes_back_to_what_was_encoded_in_both_framings() {
    let source = small();
    let catalogue = Catalogue::embedded();
    let decoder = sluice_schemas::Decoder::new(catalogue);
    for framing in [Framing::SingleObject, Framing::Confluent] {
        let encoder = Encoder::new(catalogue, framing);
        for event in source.clinical_events().chain(source.consent_events()) {
            let bytes =
                encoder.encode(catalogue.version(event.subject(), event.version()).unwrap(), event.value()).unwrap();
            let decoded = decoder.decode(&bytes).unwrap();
            assert_eq!((decoded.writer.subject(), decoded.writer.version()), (event.subject(), event.version()));
            let (Value::Record(written), Value::Record(read)) = (event.value(), &decoded.value) else {
                panic!("records expected")
            };
            // Every written field reads back unchanged (a field a newer version made optional, as
            // the union's value branch); fields added by newer versions take their defaults.
            for ((name, wrote), (read_name, got)) in written.iter().zip(&read[..written.len()]) {
                assert_eq!(name, read_name);
                match (wrote, got) {
                    (Value::Union(..), _) | (_, Value::Union(0, _)) => assert_eq!(got, wrote, "{name}"),
                    (_, Value::Union(_, inner)) => assert_eq!(inner.as_ref(), wrote, "{name}"),
                    _ => assert_eq!(got, wrote, "{name}"),
                }
            }
            for (_, added) in &read[written.len()..] {
                assert_eq!(added, &Value::Union(0, Box::new(Value::Null)));
            }
        }
    }
}

#[test]
fn same_seed_same_events_and_valid_distinct_test_range_nhs_numbers() {
    let source = small();
    let first: Vec<Uuid> = source.clinical_events().map(|e| e.truth.event_id).collect();
    let second: Vec<Uuid> = small().clinical_events().map(|e| e.truth.event_id).collect();
    assert_eq!(first, second);
    assert_eq!(first.iter().collect::<HashSet<_>>().len(), first.len(), "event ids are unique");
    let numbers: HashSet<String> = (0..500).map(|i| source.patient(i).nhs_number.digits()).collect();
    assert_eq!(numbers.len(), 500);
    for digits in &numbers {
        assert!(digits.starts_with("999"), "test range only");
        assert!(NhsNumber::parse(digits).is_ok());
    }
}

#[test]
fn opt_out_shares_and_consent_changes_match_the_configuration() {
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 20_000, events: 0, ..Default::default() }).unwrap();
    let patients: Vec<SyntheticPatient> = (0..20_000).map(|i| source.patient(i)).collect();
    let national = patients.iter().filter(|p| p.national_opt_out).count() as f64 / 20_000.0;
    let type1 = patients.iter().filter(|p| p.type1_opt_out).count() as f64 / 20_000.0;
    assert!((0.040..0.058).contains(&national), "{national}");
    assert!((0.018..0.032).contains(&type1), "{type1}");
    let withdrawn = patients.iter().filter(|p| p.national_opt_out_withdrawn).count();
    let expected_changes = patients
        .iter()
        .map(|p| {
            usize::from(p.national_opt_out)
                + 2 * usize::from(p.national_opt_out_withdrawn)
                + usize::from(p.type1_opt_out)
        })
        .sum::<usize>();
    assert!(withdrawn > 0);
    assert_eq!(source.consent_events().count(), expected_changes);
}

#[test]
fn bad_configuration_is_refused_with_the_setting_named() {
    let error =
        SyntheticSource::new(SyntheticSourceConfig { type1_opt_out_share: 1.5, ..Default::default() }).unwrap_err();
    assert!(error.contains("type1_opt_out_share"), "{error}");
    let error = SyntheticSource::new(SyntheticSourceConfig { period_start: "2026-13-01".into(), ..Default::default() })
        .unwrap_err();
    assert!(error.contains("period_start"), "{error}");
}

#[test]
fn every_event_passes_validation_for_any_seed() {
    // Events are validated as they are made (an invalid one panics with the field and rule).
    for seed in [1, 7, 20_261_125, u64::MAX] {
        let source = SyntheticSource::new(SyntheticSourceConfig {
            patients: 2_000,
            events: 20_000,
            seed,
            national_opt_out_share: 0.2,
            type1_opt_out_share: 0.2,
            missing_nhs_number_share: 0.1,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(source.clinical_events().count(), 20_000);
        assert!(source.consent_events().count() > 0);
    }
    let early = SyntheticSource::new(SyntheticSourceConfig { period_start: "2020-01-01".into(), ..Default::default() });
    assert!(early.unwrap_err().contains("period_start"), "patients would be born after events about them");
}
