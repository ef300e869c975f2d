//! sluice's Consent convention: scopes, decisions, withdrawal, and what is refused.

use serde_json::{Value, json};

use super::fixtures::*;
use super::{consent_event, event, refusal};
use crate::clinical::{ConsentEvent, ConsentScope};
use crate::fhir::IssueType;

fn consent_of(body: &Value) -> ConsentEvent {
    consent_event(event(body))
}

#[test]
fn consents_map_each_scope() {
    let national = consent_of(&consent("urn:sluice:policy:national-data-opt-out", "active", "deny"));
    assert_eq!(national.scope, ConsentScope::NationalDataOptOut);
    assert!(national.deny);
    assert_eq!(national.nhs_number, nhs(PATIENT_NHS));
    assert_eq!(national.effective_at, utc("2026-02-02T00:00:00Z"));
    assert_eq!(national.recorded_at, utc("2026-02-01T09:00:00Z"));
    assert_eq!(national.source_organisation, "X26");
    assert!(national.purposes.is_empty());

    let type1 = consent_of(&consent("urn:sluice:policy:type-1-opt-out", "active", "deny"));
    assert_eq!(type1.scope, ConsentScope::Type1OptOut);
    assert!(type1.deny);

    let mut study = consent("urn:sluice:policy:study:IRAS-312456", "active", "permit");
    study["provision"]["purpose"] = json!([
        { "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HRESCH", "display": "healthcare research" },
        { "system": "urn:sluice:purpose", "code": "study:IRAS-312456" },
        { "system": "urn:sluice:purpose", "code": "research" }
    ]);
    let study = consent_of(&study);
    assert_eq!(study.scope, ConsentScope::Study("IRAS-312456".into()));
    assert!(!study.deny);
    assert_eq!(study.purposes, ["research", "study:IRAS-312456"]);

    let mut dated = consent("urn:sluice:policy:national-data-opt-out", "active", "deny");
    dated["provision"] = json!({ "type": "deny" });
    assert_eq!(consent_of(&dated).effective_at, utc("2026-02-01T09:00:00Z"), "dateTime when no period");
}

#[test]
fn an_inactive_consent_withdraws_its_decision() {
    let withdrawn_opt_out = consent_of(&consent("urn:sluice:policy:national-data-opt-out", "inactive", "deny"));
    assert!(!withdrawn_opt_out.deny);
    let withdrawn_consent = consent_of(&consent("urn:sluice:policy:study:IRAS-312456", "inactive", "permit"));
    assert!(withdrawn_consent.deny);
}

#[test]
fn consents_that_could_widen_or_lose_a_decision_are_refused() {
    let base = || consent("urn:sluice:policy:national-data-opt-out", "active", "deny");
    let mut unknown_purpose = base();
    unknown_purpose["provision"]["purpose"] =
        json!([{ "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HMARKT" }]);
    let mut two_policies = base();
    two_policies["policy"] = json!([
        { "uri": "urn:sluice:policy:national-data-opt-out" },
        { "uri": "urn:sluice:policy:type-1-opt-out" }
    ]);
    let mut foreign_policy = base();
    foreign_policy["policy"] = json!([{ "uri": "https://www.nhs.uk/your-nhs-data-matters/" }]);
    let mut nested = base();
    nested["provision"]["provision"] = json!([{ "type": "permit" }]);
    let mut no_type = base();
    no_type["provision"] = json!({ "period": { "start": "2026-02-02" } });
    let mut undated = base();
    undated["provision"] = json!({ "type": "deny" });
    let undated = with(undated, "dateTime", Value::Null);
    let unidentified = with(
        base(),
        "patient",
        json!({ "identifier": { "system": "https://fhir.example-gp-system.co.uk/Id/patient-guid", "value": "x" } }),
    );
    let contained_without_nhs = with(
        with(base(), "contained", json!([{ "resourceType": "Patient", "id": "p", "gender": "female" }])),
        "patient",
        json!({ "reference": "#p" }),
    );
    let cases = [
        (unknown_purpose, IssueType::CodeInvalid, "Consent.provision.purpose"),
        (two_policies, IssueType::CodeInvalid, "Consent.policy"),
        (foreign_policy, IssueType::CodeInvalid, "Consent.policy"),
        (consent("urn:sluice:policy:study:IRAS/1", "active", "deny"), IssueType::CodeInvalid, "Consent.policy"),
        (consent("urn:sluice:policy:type-1-opt-out", "draft", "deny"), IssueType::NotSupported, "Consent.status"),
        (
            consent("urn:sluice:policy:type-1-opt-out", "active", "maybe"),
            IssueType::CodeInvalid,
            "Consent.provision.type",
        ),
        (nested, IssueType::NotSupported, "Consent.provision.provision"),
        (no_type, IssueType::Required, "Consent.provision.type"),
        (undated, IssueType::Required, "Consent.provision.period.start"),
        (unidentified, IssueType::Required, "Consent.patient"),
        (contained_without_nhs, IssueType::Required, "Consent.patient"),
    ];
    for (body, code, expression) in cases {
        let error = refusal(&body);
        assert_eq!((error.status, error.code, error.expression.as_str()), (422, code, expression), "{error}");
    }
}

#[test]
fn study_ids_in_any_accepted_spelling_become_one_and_a_study_consent_must_name_its_study() {
    for uri in [
        "urn:sluice:policy:study:IRAS%20312456",
        "urn:sluice:policy:study:iras-312456",
        "urn:sluice:policy:study:IRAS%20ID%3A%20312456",
    ] {
        let mut body = consent(uri, "active", "deny");
        body["provision"]["purpose"] = json!([{ "system": "urn:sluice:purpose", "code": "study:iras 312456" }]);
        let mapped = consent_of(&body);
        assert_eq!(mapped.scope, ConsentScope::Study("IRAS-312456".into()), "{uri}");
        assert_eq!(mapped.purposes, ["study:IRAS-312456"], "{uri}");
    }
    // A dissent from a study limited to research alone would never apply to the study.
    let mut elsewhere = consent("urn:sluice:policy:study:IRAS-312456", "active", "deny");
    elsewhere["provision"]["purpose"] =
        json!([{ "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HRESCH" }]);
    let error = refusal(&elsewhere);
    assert_eq!(error.status, 422);
    assert!(error.to_string().contains("must name the change's own study"), "{error}");
    // A broken escape in the id is refused too.
    let error = refusal(&consent("urn:sluice:policy:study:IRAS%2", "active", "deny"));
    assert_eq!((error.status, error.code, error.expression.as_str()), (422, IssueType::CodeInvalid, "Consent.policy"));
}

#[test]
fn a_period_end_makes_the_decision_time_limited() {
    let mut limited = consent("urn:sluice:policy:study:IRAS-312456", "active", "permit");
    limited["provision"]["period"] = json!({ "start": "2026-02-02", "end": "2027-02-02T12:00:00Z" });
    let mapped = consent_of(&limited);
    assert_eq!(mapped.effective_at, utc("2026-02-02T00:00:00Z"));
    assert_eq!(mapped.effective_until, Some(utc("2027-02-02T12:00:00Z")));
    let open = consent_of(&consent("urn:sluice:policy:study:IRAS-312456", "active", "permit"));
    assert_eq!(open.effective_until, None, "no end: until a later change");
    // An end alone is measured from dateTime.
    let mut end_only = consent("urn:sluice:policy:national-data-opt-out", "active", "deny");
    end_only["provision"]["period"] = json!({ "end": "2026-03-01" });
    let mapped = consent_of(&end_only);
    assert_eq!(
        (mapped.effective_at, mapped.effective_until),
        (utc("2026-02-01T09:00:00Z"), Some(utc("2026-03-01T00:00:00Z")))
    );
    for end in ["2026-02-02", "2026-01-01"] {
        let mut backwards = consent("urn:sluice:policy:study:IRAS-312456", "active", "permit");
        backwards["provision"]["period"] = json!({ "start": "2026-02-02", "end": end });
        let error = refusal(&backwards);
        assert_eq!(
            (error.status, error.code, error.expression.as_str()),
            (422, IssueType::Value, "Consent.provision.period.end"),
            "{error}"
        );
    }
}
