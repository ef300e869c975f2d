//! Changes bounded in time: dated after the store's clock, or ending (`effective_until`). They
//! take effect, and stop, when the clock reaches their times, whatever order they arrive in.

use proptest::prelude::*;

use super::*;
use crate::consent::store::Scope;

/// A change of the example patient from `at`, until `until` when given.
fn timed(scope: ConsentScope, deny: bool, at: i64, until: Option<i64>) -> ConsentChange {
    ConsentChange { effective_until: until, ..change(scope, deny, at) }
}

fn research_decision(store: &ConsentStore) -> Decision {
    store.decide(&Purpose::Research, &PurposeRules::default(), Some(patient()), false)
}

#[test]
fn a_change_dated_ahead_takes_effect_when_the_clock_reaches_it() {
    let mut store = ConsentStore::at(10);
    store.apply(timed(ConsentScope::NationalDataOptOut, true, 20, None));
    assert_eq!(research_decision(&store), RELEASE, "not yet in force");
    assert_eq!(store.patients(), 1, "the patient is known already");
    assert_eq!(store.next_transition(), Some(20));
    assert_eq!(store.advance_to(19), Vec::<NhsNumber>::new());
    assert_eq!(research_decision(&store), RELEASE);
    assert_eq!(store.advance_to(20), vec![patient()], "a DENY took effect: its patient is owed erasure");
    assert_eq!(research_decision(&store), withhold(WithholdReason::NationalDataOptOut));
    assert_eq!(store.next_transition(), None, "settled in the main table");
    assert_eq!(store.patients(), 1, "counted once");
    // The clock never goes back.
    assert!(store.advance_to(5).is_empty());
    assert_eq!(store.now(), 20);
    assert_eq!(research_decision(&store), withhold(WithholdReason::NationalDataOptOut));
}

#[test]
fn a_time_limited_consent_decides_only_within_its_period() {
    let opt_in_study = |store: &ConsentStore| store.decide(&s("S1"), &opt_in(), Some(patient()), false);
    let mut store = ConsentStore::at(0);
    store.apply(timed(study("S1"), false, 10, Some(20)));
    assert_eq!(opt_in_study(&store), withhold(WithholdReason::NoStudyConsent), "before the period");
    assert!(store.advance_to(10).is_empty(), "a PERMIT starting owes no erasure");
    assert_eq!(opt_in_study(&store), RELEASE);
    store.advance_to(19);
    assert_eq!(opt_in_study(&store), RELEASE);
    store.advance_to(20);
    assert_eq!(opt_in_study(&store), withhold(WithholdReason::NoStudyConsent), "the period is over");
    assert_eq!(store.next_transition(), None);
    // A change whose period ended before it was read changes nothing.
    let mut late = ConsentStore::at(30);
    late.apply(timed(ConsentScope::NationalDataOptOut, true, 10, Some(20)));
    late.apply(timed(study("S1"), true, 10, Some(20)));
    assert_eq!(research_decision(&late), RELEASE);
    assert_eq!(late.patients(), 0);
    // Nor does it make the patient count as known when a change that decides comes.
    late.apply(timed(study("S1"), true, 25, None));
    assert_eq!(late.patients(), 1);
}

#[test]
fn when_a_time_limited_withdrawal_ends_the_opt_out_it_withdrew_is_in_force_again() {
    let mut store = ConsentStore::at(0);
    store.apply(timed(ConsentScope::NationalDataOptOut, true, 1, None));
    store.apply(limited(timed(ConsentScope::NationalDataOptOut, false, 2, Some(5)), &["research"]));
    store.advance_to(3);
    let planning = store.decide(&Purpose::Planning, &PurposeRules::default(), Some(patient()), false);
    assert_eq!(planning, withhold(WithholdReason::NationalDataOptOut));
    assert_eq!(research_decision(&store), RELEASE);
    assert!(store.advance_to(5).is_empty(), "an opt-out back in force recalls nothing it had not");
    assert_eq!(research_decision(&store), withhold(WithholdReason::NationalDataOptOut));
}

#[test]
fn denials_that_took_effect_since_a_time_are_found_for_a_lander_starting_again() {
    let mut store = ConsentStore::at(100);
    let other = |at| ConsentChange { nhs_number: nth_patient(1), ..change(ConsentScope::Type1OptOut, true, at) };
    store.apply(change(ConsentScope::NationalDataOptOut, true, 50));
    store.apply(other(80));
    store.apply(ConsentChange { nhs_number: nth_patient(2), ..change(ConsentScope::NationalDataOptOut, false, 90) });
    store.apply(ConsentChange { nhs_number: nth_patient(3), ..timed(study("S1"), true, 95, Some(200)) });
    store.apply(ConsentChange { nhs_number: nth_patient(4), ..change(ConsentScope::NationalDataOptOut, true, 150) });
    let mut expected = vec![nth_patient(1), nth_patient(3)];
    expected.sort_by_key(NhsNumber::as_u64);
    assert_eq!(store.denials_effective_since(60), expected, "DENYs in (60, 100]: not permits, not the future");
    assert!(store.denials_effective_since(100).is_empty());
}

/// One generated change: (patient 0..2, scope 0..3, deny, effective_at 0..8, lasts 0..4 (0: no
/// end), purpose list 0..3).
type Generated = (u64, u8, bool, i64, i64, u8);

fn generated(strategy_value: Generated) -> ConsentChange {
    let (who, scope, deny, at, lasts, purposes) = strategy_value;
    let scope = match scope {
        0 => ConsentScope::NationalDataOptOut,
        1 => ConsentScope::Type1OptOut,
        _ => study("S1"),
    };
    let purposes: &[&str] = match purposes {
        0 => &[],
        1 => &["research"],
        _ => &["planning", "study:S1"],
    };
    let until = (lasts > 0).then_some(at + lasts);
    ConsentChange { nhs_number: nth_patient(who), ..limited(timed(scope, deny, at, until), purposes) }
}

fn generated_changes() -> impl Strategy<Value = Vec<Generated>> {
    proptest::collection::vec((0u64..2, 0u8..3, any::<bool>(), 0i64..8, 0i64..4, 0u8..3), 1..12)
}

proptest! {
    /// Whatever the order of arrival and however the clock moves between arrivals, the decision
    /// at a time is that of the latest change in force then (started, not ended) that covers the
    /// purpose, a DENY winning a tie: computed here from all changes without the store. The
    /// compacted topic gives the same.
    #[test]
    fn decisions_follow_the_changes_in_force_at_the_clock(
        (changes, shuffled) in generated_changes().prop_flat_map(|c| (Just(c.clone()), Just(c).prop_shuffle())),
        clock_moves in proptest::collection::vec(0i64..12, 0..6),
        now in 0i64..12,
    ) {
        let changes: Vec<ConsentChange> = changes.into_iter().map(generated).collect();
        let shuffled: Vec<ConsentChange> = shuffled.into_iter().map(generated).collect();
        // Arrivals interleaved with the clock moving on (never beyond `now`, and never back).
        let mut store = ConsentStore::at(0);
        let mut moves = clock_moves.into_iter().map(|t| t.min(now));
        for change in &shuffled {
            if let Some(t) = moves.next() {
                store.advance_to(t);
            }
            store.apply(change.clone());
        }
        store.advance_to(now);
        let mut at_once = ConsentStore::at(now);
        changes.iter().for_each(|c| at_once.apply(c.clone()));

        let purposes = [Purpose::Planning, Purpose::Research, s("S1")];
        let scopes =
            [(ConsentScope::NationalDataOptOut, Scope::National), (ConsentScope::Type1OptOut, Scope::Type1), (study("S1"), Scope::Study("S1"))];
        for who in 0..2 {
            for (scope, asked) in &scopes {
                for purpose in &purposes {
                    let expected = latest_covering(&changes, nth_patient(who), scope, purpose, now);
                    let patient = nth_patient(who).as_u64();
                    prop_assert_eq!(store.in_force(patient, *asked, purpose), expected, "{} {:?}", purpose, scope);
                    prop_assert_eq!(at_once.in_force(patient, *asked, purpose), expected);
                }
            }
        }
        // Keys name whole changes, periods included: two changes differing only in their end
        // are two records, and a repeat is one.
        let mut keys: Vec<String> = changes.iter().map(ConsentChange::record_key).collect();
        keys.sort();
        keys.dedup();
        let mut distinct = changes.clone();
        distinct.sort_by_key(ConsentChange::record_key);
        distinct.dedup();
        prop_assert_eq!(keys.len(), distinct.len());
    }
}

#[test]
fn a_record_with_a_period_is_read_and_one_ending_before_it_starts_is_refused() {
    use apache_avro::types::{Record, Value};
    use sluice_schemas::{Catalogue, Decoder, Encoder, Framing};
    let catalogue = Catalogue::embedded();
    let version = catalogue.latest("consent").unwrap();
    let record = |until: Option<i64>| {
        let mut record = Record::new(version.schema()).unwrap();
        record.put("event_id", Value::Uuid(apache_avro::Uuid::nil()));
        record.put("effective_at", Value::TimestampMicros(1_700_000_000_000_000));
        record.put(
            "effective_until",
            match until {
                Some(until) => Value::Union(1, Box::new(Value::TimestampMicros(until))),
                None => Value::Union(0, Box::new(Value::Null)),
            },
        );
        record.put("recorded_at", Value::TimestampMicros(1_700_000_000_000_000));
        record.put("source_organisation", "X26");
        record.put("nhs_number", DIGITS);
        record.put("scope", Value::Enum(2, "STUDY".to_owned()));
        record.put("study_id", Value::Union(1, Box::new(Value::String("S1".to_owned()))));
        record.put("decision", Value::Enum(0, "PERMIT".to_owned()));
        record.put("purposes", Value::Array(Vec::new()));
        let bytes = Encoder::new(catalogue, Framing::SingleObject).encode(version, &record.into()).unwrap();
        Decoder::new(catalogue).decode(&bytes).unwrap().value
    };
    let read = ConsentChange::from_record(&record(Some(1_800_000_000_000_000))).unwrap();
    assert_eq!(read.effective_until, Some(1_800_000_000_000_000));
    assert!(read.record_key().contains(":1700000000000000..1800000000000000:"));
    assert_eq!(ConsentChange::from_record(&record(None)).unwrap().effective_until, None);
    let error = ConsentChange::from_record(&record(Some(1_700_000_000_000_000))).unwrap_err();
    assert!(error.contains("effective_until is not after its effective_at"), "{error}");
}
