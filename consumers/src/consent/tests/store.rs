//! The store: order of changes, replay in any order, counts, size, and reading changes from
//! consent records.

use apache_avro::types::{Record, Value};
use proptest::prelude::*;
use sluice_schemas::{Catalogue, Decoder, Encoder, Framing};

use super::*;
use crate::consent::store::SLOT_BYTES;

#[test]
fn latest_effective_change_wins_and_deny_wins_ties() {
    let mut store = ConsentStore::new();
    let research =
        |store: &ConsentStore| store.decide(&Purpose::Research, &PurposeRules::default(), Some(patient()), false);
    store.apply(change(ConsentScope::NationalDataOptOut, true, 10));
    store.apply(change(ConsentScope::NationalDataOptOut, false, 20));
    assert_eq!(research(&store), RELEASE, "withdrawal in force");
    store.apply(change(ConsentScope::NationalDataOptOut, true, 15));
    assert_eq!(research(&store), RELEASE, "older change ignored");
    store.apply(change(ConsentScope::NationalDataOptOut, true, 20));
    assert_eq!(research(&store), withhold(WithholdReason::NationalDataOptOut));
    store.apply(change(ConsentScope::NationalDataOptOut, false, 20));
    assert_eq!(research(&store), withhold(WithholdReason::NationalDataOptOut), "a PERMIT at the same time loses");
    assert_eq!(store.changes_applied(), 5);
    assert_eq!(store.patients(), 1);
}

#[test]
fn equal_changes_at_the_same_time_combine_their_purposes() {
    let first = limited(change(ConsentScope::NationalDataOptOut, true, 10), &["research"]);
    let second = limited(change(ConsentScope::NationalDataOptOut, true, 10), &["planning"]);
    for store in [store_with([first.clone(), second.clone()]), store_with([second, first])] {
        for purpose in [Purpose::Planning, Purpose::Research] {
            assert_eq!(
                store.decide(&purpose, &PurposeRules::default(), Some(patient()), false),
                withhold(WithholdReason::NationalDataOptOut)
            );
        }
    }
}

#[test]
fn patients_are_counted_once_whatever_their_scopes() {
    let mut store = store_with([
        change(ConsentScope::NationalDataOptOut, true, 10),
        change(ConsentScope::Type1OptOut, true, 10),
        change(study("S1"), true, 10),
        change(study("S2"), false, 10),
    ]);
    assert_eq!(store.patients(), 1);
    let other = |scope| ConsentChange { nhs_number: nth_patient(7), ..change(scope, true, 10) };
    store.apply(other(study("S2")));
    store.apply(other(ConsentScope::Type1OptOut));
    store.apply(other(ConsentScope::NationalDataOptOut));
    assert_eq!(store.patients(), 2);
    assert_eq!(store.changes_applied(), 7);
}

#[test]
fn debug_output_shows_no_nhs_number() {
    let store = store_with([change(ConsentScope::NationalDataOptOut, true, 10), change(study("S1"), true, 10)]);
    let change = change(ConsentScope::Type1OptOut, true, 10);
    for debug in [format!("{store:?}"), format!("{change:?}")] {
        assert!(!debug.contains(DIGITS), "{debug}");
        assert!(!debug.contains(&DIGITS[..6]), "{debug}");
    }
    assert!(format!("{store:?}").contains("patients: 1"));
}

#[test]
fn a_slot_of_the_store_is_twenty_bytes() {
    assert_eq!(SLOT_BYTES, 20);
}

#[test]
fn a_million_national_opt_outs_take_under_fifty_bytes_each() {
    const N: usize = 1_000_000;
    let first = nth_patient(0).as_u64() / 10;
    let changes = || {
        NhsNumber::valid_from(first)
            .take(N)
            .map(|nhs_number| ConsentChange { nhs_number, ..change(ConsentScope::NationalDataOptOut, true, 10) })
    };
    for mut store in [ConsentStore::new(), ConsentStore::with_capacity(N)] {
        changes().for_each(|c| store.apply(c));
        assert_eq!(store.patients(), N);
        let per_entry = store.heap_bytes() as f64 / N as f64;
        assert!(per_entry < 50.0, "{per_entry:.1} bytes per opt-out");
        assert!(per_entry >= SLOT_BYTES as f64, "{per_entry:.1} bytes per opt-out cannot be honest");
    }
}

#[test]
fn with_capacity_reserves_up_front() {
    let empty = ConsentStore::new().heap_bytes();
    assert_eq!(empty, 0);
    let reserved = ConsentStore::with_capacity(1000);
    let before = reserved.heap_bytes();
    assert!(before > 1000 * SLOT_BYTES);
    let mut store = reserved;
    (0..1000).for_each(|n| {
        store.apply(ConsentChange { nhs_number: nth_patient(n), ..change(ConsentScope::NationalDataOptOut, true, 1) })
    });
    assert_eq!(store.heap_bytes(), before, "the table did not grow");
}

/// Encodes a consent record with the newest schema and decodes it the way the lander does.
fn round_trip(nhs_number: &str, scope: (u32, &str), study_id: Option<&str>, purposes: &[&str]) -> Value {
    let catalogue = Catalogue::embedded();
    let version = catalogue.latest("consent").unwrap();
    let mut record = Record::new(version.schema()).unwrap();
    record.put("event_id", Value::Uuid(apache_avro::Uuid::nil()));
    record.put("effective_at", Value::TimestampMicros(1_700_000_000_000_000));
    record.put("recorded_at", Value::TimestampMicros(1_700_000_000_000_001));
    record.put("source_organisation", "X26");
    record.put("nhs_number", nhs_number);
    record.put("scope", Value::Enum(scope.0, scope.1.to_owned()));
    record.put(
        "study_id",
        match study_id {
            Some(id) => Value::Union(1, Box::new(Value::String(id.to_owned()))),
            None => Value::Union(0, Box::new(Value::Null)),
        },
    );
    record.put("decision", Value::Enum(1, "DENY".to_owned()));
    record.put("purposes", Value::Array(purposes.iter().map(|p| Value::String((*p).to_owned())).collect()));
    let bytes = Encoder::new(catalogue, Framing::SingleObject).encode(version, &record.into()).unwrap();
    Decoder::new(catalogue).decode(&bytes).unwrap().value
}

#[test]
fn changes_are_read_from_consent_records() {
    let value = round_trip(DIGITS, (2, "STUDY"), Some("IRAS-123456"), &["study:IRAS-123456"]);
    assert_eq!(
        ConsentChange::from_record(&value).unwrap(),
        ConsentChange {
            nhs_number: patient(),
            scope: study("IRAS-123456"),
            deny: true,
            effective_at: 1_700_000_000_000_000,
            effective_until: None,
            purposes: vec!["study:IRAS-123456".to_owned()],
        }
    );
    let value = round_trip(DIGITS, (0, "NATIONAL_DATA_OPT_OUT"), None, &[]);
    assert_eq!(ConsentChange::from_record(&value).unwrap().scope, ConsentScope::NationalDataOptOut);

    let error = ConsentChange::from_record(&round_trip("9434765918", (1, "TYPE_1_OPT_OUT"), None, &[])).unwrap_err();
    assert!(!error.contains("943476591"), "{error}");
    assert!(ConsentChange::from_record(&round_trip(DIGITS, (2, "STUDY"), None, &[])).is_err());
    // A study id on a change that is not about a study is contradictory: which did the source
    // mean? Unreadable, so the patient's data is held back rather than released on a guess.
    let error = ConsentChange::from_record(&round_trip(DIGITS, (0, "NATIONAL_DATA_OPT_OUT"), Some("S1"), &[]));
    assert!(error.unwrap_err().contains("`study_id`"));

    // Study ids and purposes in any accepted spelling come out canonical.
    let value = round_trip(DIGITS, (2, "STUDY"), Some("IRAS 123456"), &["study:iras-123456", "research"]);
    let change = ConsentChange::from_record(&value).unwrap();
    assert_eq!(change.scope, study("IRAS-123456"));
    assert_eq!(change.purposes, ["study:IRAS-123456", "research"]);
    // A study change limited to purposes that leave its own study out, an unknown purpose and a
    // study id that is none: unreadable, with a reason.
    for (study_id, purposes, why) in [
        (Some("IRAS-123456"), &["research"][..], "must name the change's own study"),
        (Some("IRAS-123456"), &["study:IRAS-654321"][..], "must name the change's own study"),
        (None, &["researh"][..], "`purposes`: has a value outside direct-care, planning, research"),
        (Some("IRAS/123456"), &[][..], "not a study id"),
    ] {
        let scope = if study_id.is_some() { (2, "STUDY") } else { (0, "NATIONAL_DATA_OPT_OUT") };
        let error = ConsentChange::from_record(&round_trip(DIGITS, scope, study_id, purposes)).unwrap_err();
        assert!(error.contains(why), "{error}");
    }
}

/// One generated change: (patient 0..2, scope 0..4, deny, effective_at, purpose list 0..4).
type Generated = (u64, u8, bool, i64, u8);

fn generated_change((who, scope, deny, at, purposes): Generated) -> ConsentChange {
    let scope = match scope {
        0 => ConsentScope::NationalDataOptOut,
        1 => ConsentScope::Type1OptOut,
        2 => study("S1"),
        _ => study("S2"),
    };
    let purposes: &[&str] = match purposes {
        0 => &[],
        1 => &["research"],
        2 => &["planning", "study:S1"],
        _ => &["study:S1", "research", "study:S2"],
    };
    ConsentChange { nhs_number: nth_patient(who), ..limited(change(scope, deny, at), purposes) }
}

/// Every decision the store can make for the two patients, under a range of rules.
fn all_decisions(store: &ConsentStore) -> Vec<Decision> {
    let rule_sets = [PurposeRules::default(), opt_in(), exempt(&[NDOO]), exempt(&[TYPE_1]), exempt(&[NDOO, TYPE_1])];
    let purposes = [Purpose::DirectCare, Purpose::Planning, Purpose::Research, s("S1"), s("S2"), s("S3")];
    let mut decisions = Vec::new();
    for who in 0..2 {
        for purpose in &purposes {
            for rules in &rule_sets {
                for gp_sourced in [false, true] {
                    decisions.push(store.decide(purpose, rules, Some(nth_patient(who)), gp_sourced));
                }
            }
        }
    }
    decisions
}

proptest! {
    /// Applying the same changes in any order, or twice, gives the same decisions: replaying
    /// the consent topic is deterministic.
    #[test]
    fn order_of_application_does_not_matter(
        (changes, shuffled) in proptest::collection::vec((0u64..2, 0u8..4, any::<bool>(), 0i64..6, 0u8..4), 1..16)
            .prop_flat_map(|changes| (Just(changes.clone()), Just(changes).prop_shuffle())),
    ) {
        let in_order = store_with(changes.iter().copied().map(generated_change));
        let reordered = store_with(shuffled.iter().copied().map(generated_change));
        let twice = store_with(shuffled.iter().chain(&changes).copied().map(generated_change));
        prop_assert_eq!(all_decisions(&in_order), all_decisions(&reordered));
        prop_assert_eq!(all_decisions(&in_order), all_decisions(&twice));
        prop_assert_eq!(in_order.patients(), reordered.patients());
    }
}

proptest! {
    /// For every patient, scope and purpose, the store's decision is the one of the latest
    /// change that covers the purpose (a DENY winning a tie), computed here from all changes
    /// without the store: purpose-limited changes and withdrawals decide only what they name.
    #[test]
    fn each_purpose_follows_the_latest_change_that_covers_it(
        changes in proptest::collection::vec((0u64..2, 0u8..4, any::<bool>(), 0i64..6, 0u8..4), 1..14),
    ) {
        use crate::consent::store::Scope;
        let changes: Vec<ConsentChange> = changes.into_iter().map(generated_change).collect();
        let store = store_with(changes.clone());
        let purposes = [Purpose::Planning, Purpose::Research, s("S1"), s("S2"), s("S3")];
        let scopes = [
            (ConsentScope::NationalDataOptOut, Scope::National),
            (ConsentScope::Type1OptOut, Scope::Type1),
            (study("S1"), Scope::Study("S1")),
            (study("S2"), Scope::Study("S2")),
        ];
        for who in 0..2 {
            for (scope, asked) in &scopes {
                for purpose in &purposes {
                    let expected = latest_covering(&changes, nth_patient(who), scope, purpose, i64::MAX);
                    prop_assert_eq!(store.in_force(nth_patient(who).as_u64(), *asked, purpose), expected, "{} {:?}", purpose, scope);
                }
            }
        }
    }
}

/// A consent topic as records in offset order: a key, and the change it holds (`None`: a record
/// that cannot be read, or a tombstone).
type Topic = Vec<(String, Option<ConsentChange>)>;

/// Applies a topic's records in order, as the lander does: a readable record lifts the hold of
/// an unreadable one under its key; an unreadable one holds the patient its key names.
fn resolve(topic: &Topic) -> ConsentStore {
    let mut store = ConsentStore::new();
    for (key, change) in topic {
        match change {
            Some(change) => {
                store.readable_record(key);
                store.apply(change.clone());
            }
            None => store.hold_unreadable(key, patient_of_record_key(key.as_bytes()).unwrap()),
        }
    }
    store
}

/// What Kafka's compaction leaves of a topic: the last record of each key, in offset order.
fn compacted(topic: &Topic) -> Topic {
    topic
        .iter()
        .enumerate()
        .filter(|(index, (key, _))| !topic[index + 1..].iter().any(|(later, _)| later == key))
        .map(|(_, record)| record.clone())
        .collect()
}

proptest! {
    /// Resolving the consent topic, its compacted form and any interleaving of its keys (Kafka
    /// keeps order per key, not across keys) gives the same decisions, with changes limited to
    /// purposes, withdrawals, back-dated changes published late, republished changes and
    /// unreadable records among them: record keys name whole changes.
    #[test]
    fn compaction_never_changes_a_decision(
        records in proptest::collection::vec(((0u64..2, 0u8..4, any::<bool>(), 0i64..6, 0u8..4), 0u8..6), 1..20),
        seed: u64,
    ) {
        let topic: Topic = records
            .into_iter()
            .map(|(generated, kind)| {
                let change = generated_change(generated);
                // One record in six cannot be read (say, a broken body under a producer's key).
                let readable = kind != 0;
                (change.record_key(), readable.then_some(change))
            })
            .collect();
        // Republish some records, as a producer retrying would.
        let mut topic = topic;
        let again: Topic = topic.iter().step_by(3).cloned().collect();
        topic.extend(again);
        let full = all_decisions(&resolve(&topic));
        prop_assert_eq!(&full, &all_decisions(&resolve(&compacted(&topic))));
        // Another interleaving of the keys, each key's records in their order.
        use rand::{SeedableRng, seq::SliceRandom};
        let mut keys: Vec<&String> = topic.iter().map(|(key, _)| key).collect();
        keys.dedup();
        keys.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        let mut interleaved: Topic = Vec::new();
        for key in keys {
            interleaved.extend(topic.iter().filter(|(k, _)| k == key).cloned());
        }
        prop_assert_eq!(&full, &all_decisions(&resolve(&interleaved)));
    }
}

#[test]
fn a_key_that_names_only_patient_and_scope_would_let_compaction_change_consent() {
    // Why keys name whole changes: under one key per patient and scope, a research-only
    // withdrawal published after an unlimited opt-out leaves only the withdrawal after compaction.
    let opt_out = ConsentChange { nhs_number: nth_patient(0), ..change(ConsentScope::NationalDataOptOut, true, 1) };
    let withdrawal = ConsentChange { nhs_number: nth_patient(0), ..change(ConsentScope::NationalDataOptOut, false, 2) };
    let withdrawal = limited(withdrawal, &["research"]);
    let old_key = format!("{}:NATIONAL_DATA_OPT_OUT", nth_patient(0).digits());
    let topic: Topic = vec![(old_key.clone(), Some(opt_out.clone())), (old_key, Some(withdrawal.clone()))];
    assert_ne!(all_decisions(&resolve(&topic)), all_decisions(&resolve(&compacted(&topic))));
    let topic: Topic = vec![(opt_out.record_key(), Some(opt_out)), (withdrawal.record_key(), Some(withdrawal))];
    assert_eq!(all_decisions(&resolve(&topic)), all_decisions(&resolve(&compacted(&topic))));
}
