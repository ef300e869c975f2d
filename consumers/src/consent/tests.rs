//! The consent rules case by case, the store's replay properties and its size.

use apache_avro::types::{Record, Value};
use proptest::prelude::*;
use sluice_schemas::{Catalogue, Decoder, Encoder, Framing, NhsNumber};

use super::*;

/// The example NHS number from NHS Digital's documentation.
const DIGITS: &str = "9434765919";

fn patient() -> NhsNumber {
    NhsNumber::parse(DIGITS).unwrap()
}

/// The `n`-th valid NHS number from 400 000 000x up: distinct for distinct `n`.
fn nth_patient(n: u64) -> NhsNumber {
    (400_000_000 + n..)
        .find_map(|first| {
            let digits: [u8; 9] = std::array::from_fn(|i| (first / 10u64.pow(8 - i as u32) % 10) as u8);
            NhsNumber::from_first_nine(digits)
        })
        .unwrap()
}

fn change(scope: ConsentScope, deny: bool, effective_at: i64) -> ConsentChange {
    ConsentChange { nhs_number: patient(), scope, deny, effective_at, purposes: Vec::new() }
}

fn limited(mut change: ConsentChange, purposes: &[&str]) -> ConsentChange {
    change.purposes = purposes.iter().map(|p| (*p).to_owned()).collect();
    change
}

fn study(id: &str) -> ConsentScope {
    ConsentScope::Study(id.to_owned())
}

fn s(id: &str) -> Purpose {
    Purpose::Study(id.to_owned())
}

fn store_with(changes: impl IntoIterator<Item = ConsentChange>) -> ConsentStore {
    let mut store = ConsentStore::new();
    changes.into_iter().for_each(|c| store.apply(c));
    store
}

fn exempt(opt_outs: &[OptOutKind]) -> PurposeRules {
    PurposeRules {
        exemptions: opt_outs
            .iter()
            .map(|opt_out| Exemption {
                opt_out: *opt_out,
                legal_basis: "s251 NHS Act 2006 support (COPI regulation 5)".to_owned(),
                reference: "CAG 10-02(b)/2026".to_owned(),
            })
            .collect(),
        ..PurposeRules::default()
    }
}

fn opt_in() -> PurposeRules {
    PurposeRules { study_consent: StudyConsentModel::OptIn, ..PurposeRules::default() }
}

const RELEASE: Decision = Decision::Release { exempted: ExemptedOptOuts::NONE };
const NDOO: OptOutKind = OptOutKind::NationalDataOptOut;
const TYPE_1: OptOutKind = OptOutKind::Type1OptOut;

fn released_exempt_from(opt_outs: &[OptOutKind]) -> Decision {
    Decision::Release { exempted: opt_outs.iter().fold(ExemptedOptOuts::NONE, |set, kind| set.with(*kind)) }
}

fn withhold(reason: WithholdReason) -> Decision {
    Decision::Withhold(reason)
}

#[test]
fn direct_care_is_never_subject_to_opt_outs_or_study_rules() {
    let store = store_with([
        change(ConsentScope::NationalDataOptOut, true, 10),
        change(ConsentScope::Type1OptOut, true, 10),
        change(study("S1"), true, 10),
    ]);
    for rules in [PurposeRules::default(), opt_in(), exempt(&[NDOO, TYPE_1])] {
        for gp_sourced in [false, true] {
            for nhs_number in [Some(patient()), None] {
                assert_eq!(store.decide(&Purpose::DirectCare, &rules, nhs_number, gp_sourced), RELEASE);
            }
        }
    }
}

#[test]
fn national_opt_out_withholds_from_planning_research_and_studies() {
    let store = store_with([change(ConsentScope::NationalDataOptOut, true, 10)]);
    let rules = PurposeRules::default();
    for purpose in [Purpose::Planning, Purpose::Research, s("IRAS-123456")] {
        for gp_sourced in [false, true] {
            assert_eq!(
                store.decide(&purpose, &rules, Some(patient()), gp_sourced),
                withhold(WithholdReason::NationalDataOptOut),
                "{purpose}"
            );
        }
    }
    assert_eq!(store.decide(&Purpose::Research, &rules, Some(nth_patient(1)), true), RELEASE, "someone else");
}

#[test]
fn an_exemption_from_the_national_opt_out_releases_and_is_marked() {
    let store = store_with([change(ConsentScope::NationalDataOptOut, true, 10)]);
    let rules = exempt(&[NDOO]);
    for purpose in [Purpose::Planning, Purpose::Research, s("S1")] {
        assert_eq!(store.decide(&purpose, &rules, Some(patient()), false), released_exempt_from(&[NDOO]));
    }
    assert_eq!(
        store.decide(&Purpose::Research, &rules, Some(nth_patient(1)), false),
        RELEASE,
        "only an opt-out actually held is marked"
    );
    assert_eq!(
        store.decide(&Purpose::Research, &exempt(&[TYPE_1]), Some(patient()), true),
        withhold(WithholdReason::NationalDataOptOut),
        "an exemption from the other opt-out does not help"
    );
}

#[test]
fn type1_opt_out_withholds_gp_sourced_data_from_every_purpose_but_direct_care() {
    let store = store_with([change(ConsentScope::Type1OptOut, true, 10)]);
    let rules = PurposeRules::default();
    for purpose in [Purpose::Planning, Purpose::Research, s("S1")] {
        assert_eq!(store.decide(&purpose, &rules, Some(patient()), true), withhold(WithholdReason::Type1OptOut));
        assert_eq!(store.decide(&purpose, &rules, Some(patient()), false), RELEASE, "not from a GP practice");
    }
}

#[test]
fn an_exemption_from_the_type1_opt_out_releases_and_is_marked() {
    let store = store_with([change(ConsentScope::Type1OptOut, true, 10)]);
    for purpose in [Purpose::Planning, Purpose::Research, s("S1")] {
        assert_eq!(store.decide(&purpose, &exempt(&[TYPE_1]), Some(patient()), true), released_exempt_from(&[TYPE_1]));
        assert_eq!(
            store.decide(&purpose, &exempt(&[TYPE_1]), Some(patient()), false),
            RELEASE,
            "the opt-out does not bear on data from elsewhere, so nothing is exempted"
        );
    }
    assert_eq!(
        store.decide(&Purpose::Research, &exempt(&[NDOO]), Some(patient()), true),
        withhold(WithholdReason::Type1OptOut)
    );
}

#[test]
fn both_opt_outs_need_both_exemptions() {
    let store =
        store_with([change(ConsentScope::NationalDataOptOut, true, 10), change(ConsentScope::Type1OptOut, true, 10)]);
    let research = |rules: &PurposeRules| store.decide(&Purpose::Research, rules, Some(patient()), true);
    assert_eq!(research(&exempt(&[NDOO])), withhold(WithholdReason::Type1OptOut));
    assert_eq!(research(&exempt(&[TYPE_1])), withhold(WithholdReason::NationalDataOptOut));
    let both = research(&exempt(&[TYPE_1, NDOO]));
    assert_eq!(both, released_exempt_from(&[NDOO, TYPE_1]));
    let Decision::Release { exempted } = both else { unreachable!() };
    assert_eq!(exempted.iter().collect::<Vec<_>>(), [NDOO, TYPE_1]);
}

#[test]
fn study_dissent_withholds_that_study_only_and_no_exemption_overrides_it() {
    let store = store_with([change(study("S1"), true, 10)]);
    for rules in [PurposeRules::default(), exempt(&[NDOO, TYPE_1]), opt_in()] {
        for gp_sourced in [false, true] {
            assert_eq!(
                store.decide(&s("S1"), &rules, Some(patient()), gp_sourced),
                withhold(WithholdReason::StudyDissent)
            );
        }
    }
    let rules = PurposeRules::default();
    assert_eq!(store.decide(&s("S2"), &rules, Some(patient()), false), RELEASE);
    assert_eq!(store.decide(&Purpose::Research, &rules, Some(patient()), false), RELEASE);
}

#[test]
fn study_dissent_wins_over_opt_outs_as_the_reason() {
    let store = store_with([
        change(ConsentScope::NationalDataOptOut, true, 10),
        change(ConsentScope::Type1OptOut, true, 10),
        change(study("S1"), true, 10),
    ]);
    assert_eq!(
        store.decide(&s("S1"), &exempt(&[NDOO, TYPE_1]), Some(patient()), true),
        withhold(WithholdReason::StudyDissent)
    );
}

#[test]
fn explicit_consent_to_a_study_sets_opt_outs_aside_for_that_study_only() {
    let store = store_with([
        change(ConsentScope::NationalDataOptOut, true, 10),
        change(ConsentScope::Type1OptOut, true, 10),
        change(study("S1"), false, 10),
    ]);
    for rules in [PurposeRules::default(), opt_in(), exempt(&[NDOO])] {
        for gp_sourced in [false, true] {
            assert_eq!(store.decide(&s("S1"), &rules, Some(patient()), gp_sourced), RELEASE, "consent, no exemption");
        }
    }
    let rules = PurposeRules::default();
    assert_eq!(store.decide(&s("S2"), &rules, Some(patient()), false), withhold(WithholdReason::NationalDataOptOut));
    assert_eq!(
        store.decide(&Purpose::Research, &rules, Some(patient()), true),
        withhold(WithholdReason::NationalDataOptOut)
    );
}

#[test]
fn opt_in_studies_release_only_with_consent_in_force() {
    let rules = opt_in();
    let empty = ConsentStore::new();
    assert_eq!(empty.decide(&s("S1"), &rules, Some(patient()), false), withhold(WithholdReason::NoStudyConsent));
    assert_eq!(
        empty.decide(&s("S1"), &exempt(&[NDOO, TYPE_1]), Some(patient()), false),
        RELEASE,
        "the same empty store releases to an opt-out study"
    );

    let consented = store_with([change(study("S1"), false, 10)]);
    assert_eq!(consented.decide(&s("S1"), &rules, Some(patient()), false), RELEASE);
    assert_eq!(
        consented.decide(&s("S2"), &rules, Some(patient()), false),
        withhold(WithholdReason::NoStudyConsent),
        "consent to another study does not count"
    );

    let withdrawn = store_with([change(study("S1"), false, 10), change(study("S1"), true, 20)]);
    assert_eq!(withdrawn.decide(&s("S1"), &rules, Some(patient()), false), withhold(WithholdReason::StudyDissent));
    let renewed = store_with([change(study("S1"), true, 10), change(study("S1"), false, 20)]);
    assert_eq!(renewed.decide(&s("S1"), &rules, Some(patient()), false), RELEASE);
}

#[test]
fn opt_in_study_without_consent_is_withheld_for_lack_of_consent_even_with_an_opt_out() {
    let store = store_with([change(ConsentScope::NationalDataOptOut, true, 10)]);
    assert_eq!(store.decide(&s("S1"), &opt_in(), Some(patient()), false), withhold(WithholdReason::NoStudyConsent));
}

#[test]
fn purpose_limited_changes_apply_only_to_the_purposes_they_name() {
    let store = store_with([limited(change(ConsentScope::NationalDataOptOut, true, 10), &["research"])]);
    let rules = PurposeRules::default();
    assert_eq!(
        store.decide(&Purpose::Research, &rules, Some(patient()), false),
        withhold(WithholdReason::NationalDataOptOut)
    );
    assert_eq!(store.decide(&Purpose::Planning, &rules, Some(patient()), false), RELEASE);
    assert_eq!(store.decide(&s("S1"), &rules, Some(patient()), false), RELEASE, "names are matched exactly");

    let store = store_with([limited(change(ConsentScope::Type1OptOut, true, 10), &["planning", "study:S1"])]);
    assert_eq!(store.decide(&Purpose::Planning, &rules, Some(patient()), true), withhold(WithholdReason::Type1OptOut));
    assert_eq!(store.decide(&s("S1"), &rules, Some(patient()), true), withhold(WithholdReason::Type1OptOut));
    assert_eq!(store.decide(&Purpose::Research, &rules, Some(patient()), true), RELEASE);

    let dissent = store_with([limited(change(study("S1"), true, 10), &["research"])]);
    assert_eq!(dissent.decide(&s("S1"), &rules, Some(patient()), false), RELEASE, "does not name the study");
    let consent = store_with([limited(change(study("S1"), false, 10), &["research"])]);
    assert_eq!(consent.decide(&s("S1"), &opt_in(), Some(patient()), false), withhold(WithholdReason::NoStudyConsent));
    let consent = store_with([limited(change(study("S1"), false, 10), &["study:S1"])]);
    assert_eq!(consent.decide(&s("S1"), &opt_in(), Some(patient()), false), RELEASE);
}

#[test]
fn events_without_a_usable_nhs_number_are_withheld_unless_nothing_needs_checking() {
    let store = store_with([change(ConsentScope::NationalDataOptOut, true, 10)]);
    let no_number =
        |purpose: &Purpose, rules: &PurposeRules, gp_sourced| store.decide(purpose, rules, None, gp_sourced);
    let withheld = withhold(WithholdReason::NoUsableNhsNumber);
    for purpose in [Purpose::Planning, Purpose::Research] {
        assert_eq!(no_number(&purpose, &PurposeRules::default(), false), withheld);
        assert_eq!(no_number(&purpose, &exempt(&[TYPE_1]), false), withheld);
        assert_eq!(no_number(&purpose, &exempt(&[NDOO]), false), RELEASE, "Type 1 does not bear on non-GP data");
        assert_eq!(no_number(&purpose, &exempt(&[NDOO]), true), withheld, "Type 1 needs checking");
        assert_eq!(no_number(&purpose, &exempt(&[NDOO, TYPE_1]), true), RELEASE, "nothing is known to be exempted");
    }
    for rules in [PurposeRules::default(), exempt(&[NDOO, TYPE_1]), opt_in()] {
        assert_eq!(no_number(&s("S1"), &rules, false), withheld, "a study always needs the patient");
    }
}

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
fn opt_out_kinds_and_reasons_share_their_labels() {
    assert_eq!(NDOO.label(), "national_data_opt_out");
    assert_eq!(TYPE_1.label(), "type_1_opt_out");
    assert_eq!(WithholdReason::NationalDataOptOut.label(), NDOO.label());
    assert_eq!(WithholdReason::Type1OptOut.label(), TYPE_1.label());
    assert_eq!(WithholdReason::NoStudyConsent.label(), "no_study_consent");
    assert_eq!(WithholdReason::StudyDissent.label(), "study_dissent");
    assert_eq!(WithholdReason::NoUsableNhsNumber.label(), "no_usable_nhs_number");
}

#[test]
fn exempted_opt_out_sets() {
    let none = ExemptedOptOuts::NONE;
    assert!(none.is_empty());
    assert_eq!(none.iter().count(), 0);
    assert_eq!(none, ExemptedOptOuts::default());
    let type1 = none.with(TYPE_1);
    assert!(!type1.is_empty() && type1.contains(TYPE_1) && !type1.contains(NDOO));
    assert_eq!(type1.with(TYPE_1), type1);
    let both = type1.with(NDOO);
    assert_eq!(both.iter().collect::<Vec<_>>(), [NDOO, TYPE_1]);
    assert_eq!(format!("{both:?}"), r#"{"national_data_opt_out", "type_1_opt_out"}"#);
}

#[test]
fn only_denials_withdraw_release() {
    assert!(change(ConsentScope::NationalDataOptOut, true, 1).withdraws_release());
    assert!(change(study("S1"), true, 1).withdraws_release());
    assert!(!change(ConsentScope::Type1OptOut, false, 1).withdraws_release());
    assert!(!change(study("S1"), false, 1).withdraws_release());
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
    assert_eq!(store::SLOT_BYTES, 20);
}

#[test]
fn a_million_national_opt_outs_take_under_fifty_bytes_each() {
    const N: usize = 1_000_000;
    let first = nth_patient(0).as_u64() / 10;
    let changes = || {
        (first..)
            .filter_map(|n| {
                let digits: [u8; 9] = std::array::from_fn(|i| (n / 10u64.pow(8 - i as u32) % 10) as u8);
                NhsNumber::from_first_nine(digits)
            })
            .take(N)
            .map(|nhs_number| ConsentChange { nhs_number, ..change(ConsentScope::NationalDataOptOut, true, 10) })
    };
    for mut store in [ConsentStore::new(), ConsentStore::with_capacity(N)] {
        changes().for_each(|c| store.apply(c));
        assert_eq!(store.patients(), N);
        let per_entry = store.heap_bytes() as f64 / N as f64;
        assert!(per_entry < 50.0, "{per_entry:.1} bytes per opt-out");
        assert!(per_entry >= store::SLOT_BYTES as f64, "{per_entry:.1} bytes per opt-out cannot be honest");
    }
}

#[test]
fn with_capacity_reserves_up_front() {
    let empty = ConsentStore::new().heap_bytes();
    assert_eq!(empty, 0);
    let reserved = ConsentStore::with_capacity(1000);
    let before = reserved.heap_bytes();
    assert!(before > 1000 * store::SLOT_BYTES);
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
            purposes: vec!["study:IRAS-123456".to_owned()],
        }
    );
    let value = round_trip(DIGITS, (0, "NATIONAL_DATA_OPT_OUT"), None, &[]);
    assert_eq!(ConsentChange::from_record(&value).unwrap().scope, ConsentScope::NationalDataOptOut);

    let error = ConsentChange::from_record(&round_trip("9434765918", (1, "TYPE_1_OPT_OUT"), None, &[])).unwrap_err();
    assert!(!error.contains("943476591"), "{error}");
    assert!(ConsentChange::from_record(&round_trip(DIGITS, (2, "STUDY"), None, &[])).is_err());
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

#[test]
fn gp_practice_codes_are_recognised() {
    assert!(is_gp_practice("B86001"));
    assert!(!is_gp_practice("RR8"));
    assert!(!is_gp_practice("RR801"));
    assert!(!is_gp_practice("X26"));
    assert!(!is_gp_practice("b86001"));
}

#[test]
fn purposes_parse_and_print() {
    for name in ["direct-care", "planning", "research", "study:IRAS-123456"] {
        let purpose = name.parse::<Purpose>().unwrap();
        assert_eq!(purpose.name(), name);
        assert!(purpose.is_named(name));
        assert!(!purpose.is_named("study:other"));
    }
    assert!("marketing".parse::<Purpose>().is_err());
    assert!("study:".parse::<Purpose>().is_err());
    assert!("study:../etc".parse::<Purpose>().is_err());
}
