//! The consent rules case by case ([`rules`]), the store's replay properties and size
//! ([`store`]), and the small types; with the helpers they share.

mod rules;
mod store;
mod table;
mod time;

use sluice_schemas::NhsNumber;

use super::*;

/// The example NHS number from NHS Digital's documentation.
const DIGITS: &str = "9434765919";

fn patient() -> NhsNumber {
    NhsNumber::parse(DIGITS).unwrap()
}

/// The `n`-th valid NHS number from 400 000 000x up: distinct for distinct `n`.
fn nth_patient(n: u64) -> NhsNumber {
    NhsNumber::valid_from(400_000_000 + n).next().unwrap()
}

fn change(scope: ConsentScope, deny: bool, effective_at: i64) -> ConsentChange {
    ConsentChange { nhs_number: patient(), scope, deny, effective_at, effective_until: None, purposes: Vec::new() }
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

/// The decision of the latest change of patient `who` about `scope` in force at `now` (started,
/// not ended) that covers `purpose`, a DENY winning a tie: computed from all changes without
/// the store, as the model the store must follow.
fn latest_covering(
    changes: &[ConsentChange],
    who: NhsNumber,
    scope: &ConsentScope,
    purpose: &Purpose,
    now: i64,
) -> Option<bool> {
    changes
        .iter()
        .filter(|c| c.nhs_number == who && &c.scope == scope)
        .filter(|c| c.effective_at <= now && c.effective_until.is_none_or(|until| now < until))
        .filter(|c| c.purposes.is_empty() || c.purposes.iter().any(|name| purpose.is_named(name)))
        .max_by_key(|c| (c.effective_at, c.deny))
        .map(|c| c.deny)
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
    // One canonical spelling per study, however it is written in configuration.
    for spelling in ["study:iras 123456", "study:IRAS ID: 123456", "study:iras-123456"] {
        assert_eq!(spelling.parse::<Purpose>().unwrap(), Purpose::Study("IRAS-123456".to_owned()), "{spelling}");
    }
}
