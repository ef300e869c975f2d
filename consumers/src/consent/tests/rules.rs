//! Every rule of `decide`, case by case.

use super::*;

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
fn an_unreadable_record_holds_its_patient_from_every_purpose_but_direct_care_until_a_readable_one_replaces_it() {
    let key = format!("{DIGITS}:NATIONAL_DATA_OPT_OUT");
    let mut store = store_with([]);
    store.hold_unreadable(&key, patient());
    assert_eq!(store.held_patients(), 1);
    let purposes = [Purpose::Planning, Purpose::Research, s("S1")];
    // Fail closed: no exemption and no study consent releases what nobody could read.
    for rules in [PurposeRules::default(), exempt(&[NDOO, TYPE_1]), opt_in()] {
        for purpose in &purposes {
            assert_eq!(
                store.decide(purpose, &rules, Some(patient()), false),
                withhold(WithholdReason::ConsentUnreadable),
                "{purpose}"
            );
        }
        assert_eq!(store.decide(&Purpose::DirectCare, &rules, Some(patient()), true), RELEASE);
    }
    store.apply(change(study("S1"), false, 10));
    assert_eq!(store.decide(&s("S1"), &opt_in(), Some(patient()), false), withhold(WithholdReason::ConsentUnreadable));
    assert_eq!(store.decide(&Purpose::Research, &PurposeRules::default(), Some(nth_patient(1)), false), RELEASE);

    // Held under two keys: both must be replaced. The same key again counts once.
    let study_key = format!("{DIGITS}:STUDY:S1");
    store.hold_unreadable(&study_key, patient());
    store.hold_unreadable(&study_key, patient());
    store.readable_record(&key);
    assert_eq!(
        store.decide(&Purpose::Research, &PurposeRules::default(), Some(patient()), false),
        withhold(WithholdReason::ConsentUnreadable)
    );
    store.readable_record(&study_key);
    assert_eq!(store.held_patients(), 0);
    assert_eq!(store.decide(&Purpose::Research, &PurposeRules::default(), Some(patient()), false), RELEASE);
    store.readable_record(&study_key);
    assert_eq!(store.held_patients(), 0, "a key with nothing held lifts nothing");
}

#[test]
fn the_patient_of_a_consent_record_key_is_its_leading_nhs_number() {
    assert_eq!(patient_of_record_key(format!("{DIGITS}:TYPE_1_OPT_OUT").as_bytes()), Some(patient()));
    assert_eq!(patient_of_record_key(format!("{DIGITS}:STUDY:IRAS-1").as_bytes()), Some(patient()));
    for key in ["tombstone", "", "9434765918:NATIONAL_DATA_OPT_OUT", "943476591:X", "943 476 5919:X", "9434765919"] {
        assert_eq!(patient_of_record_key(key.as_bytes()), None, "{key}");
    }
    assert_eq!(patient_of_record_key(&[0xff, b':']), None);
}
