//! Routing one clinical event: decode it, check it against every purpose's consent rules, and
//! pseudonymise it under each purpose's policy that may receive it. Pure and synchronous: the
//! outcome depends only on the event, the consent state and the policies, nothing is counted,
//! buffered or sent, so it is tested without Kafka.

use std::{collections::HashMap, sync::Arc};

use sluice_schemas::Decoder;

use super::PurposeSetup;
use crate::{
    consent::{ConsentStore, Decision, Purpose, SourceOrganisations, event_consent_inputs},
    policy::LandingPlan,
    pseudonymise::{Cell, pseudonymise},
    record::RecordView,
};

/// One purpose as the run uses it.
pub(super) struct PurposeRuntime<'a> {
    /// The purpose.
    pub(super) purpose: Purpose,
    /// Its policy and keys.
    pub(super) setup: &'a PurposeSetup,
    /// Its landing plan for each clinical subject.
    pub(super) plans: HashMap<String, Arc<LandingPlan>>,
}

/// What one clinical event comes to, before anything is counted or buffered.
pub(super) struct Routed {
    /// Pseudonymised row per purpose index that may receive the event, with the plan it follows.
    pub(super) rows: Vec<(usize, Arc<LandingPlan>, Vec<Cell>)>,
    /// (purpose index, reason label) for every purpose the event is withheld from.
    pub(super) withheld: Vec<(usize, &'static str)>,
    /// (purpose index, opt-out label) for every exemption the release relied on.
    pub(super) exempted: Vec<(usize, &'static str)>,
    /// Fingerprint of the schema the event was written with.
    pub(super) writer_fingerprint: u64,
    /// When the event occurred at its source (microseconds since the Unix epoch), if it says.
    pub(super) event_time: Option<i64>,
    /// Its `source_organisation` when the register of source organisations does not list it
    /// (then a Type 1 opt-out covers it), as [`SourceOrganisations::report_label`] gives it.
    pub(super) unknown_organisation: Option<String>,
}

/// Routes clinical events for the configured purposes.
pub(super) struct Router<'a> {
    /// Configured purposes, in configuration order: a row's purpose index points here.
    pub(super) purposes: Vec<PurposeRuntime<'a>>,
    /// What kind of organisation each sender is: decides what a Type 1 opt-out covers.
    pub(super) source_organisations: SourceOrganisations,
    /// Subject of each clinical topic, so an event of another subject on it is refused.
    subject_of_topic: HashMap<String, String>,
}

impl<'a> Router<'a> {
    /// A router for `purposes`, judging Type 1 opt-outs by `source_organisations`, reading each
    /// clinical topic's subject from `clinical_topics` (subject -> topic).
    pub(super) fn new<'t>(
        purposes: Vec<PurposeRuntime<'a>>,
        source_organisations: SourceOrganisations,
        clinical_topics: impl IntoIterator<Item = (&'t String, &'t String)>,
    ) -> Self {
        let subject_of_topic = clinical_topics.into_iter().map(|(s, t)| (t.clone(), s.clone())).collect();
        Router { purposes, source_organisations, subject_of_topic }
    }

    /// The subject `topic` carries (empty for a topic the lander was not configured with).
    pub(super) fn subject_of(&self, topic: &str) -> String {
        self.subject_of_topic.get(topic).cloned().unwrap_or_default()
    }

    /// The name of the purpose at `index`.
    pub(super) fn purpose_name(&self, index: usize) -> String {
        self.purposes[index].purpose.name()
    }

    /// Decodes `payload`, checks consent for every purpose and pseudonymises it for each purpose
    /// that may receive it. An `Err` is the reason to dead-letter the whole event.
    pub(super) fn route(
        &self,
        consent: &ConsentStore,
        decoder: &Decoder<'_>,
        payload: &[u8],
        expected_subject: &str,
    ) -> Result<Routed, String> {
        let event = decoder.decode(payload).map_err(|e| e.to_string())?;
        if event.reader.subject() != expected_subject {
            return Err(format!("a `{}` event on the topic of `{expected_subject}`", event.reader.subject()));
        }
        let view = RecordView::new(&event.value).ok_or("the event is not a record")?;
        let inputs = event_consent_inputs(&view, &self.source_organisations);
        let (nhs_number, gp_sourced) = (inputs.nhs_number, inputs.gp_sourced);
        let mut routed = Routed {
            rows: Vec::new(),
            withheld: Vec::new(),
            exempted: Vec::new(),
            writer_fingerprint: event.writer.fingerprint(),
            event_time: view.timestamp_micros("occurred_at"),
            unknown_organisation: inputs
                .unknown_organisation
                .then(|| SourceOrganisations::report_label(view.string("source_organisation"))),
        };
        for (index, runtime) in self.purposes.iter().enumerate() {
            let plan = runtime.plans.get(expected_subject).ok_or("no landing plan for the subject")?;
            match consent.decide(&runtime.purpose, runtime.setup.policy.rules(), nhs_number, gp_sourced) {
                Decision::Release { exempted } => {
                    routed.exempted.extend(exempted.iter().map(|opt_out| (index, opt_out.label())));
                    let row = pseudonymise(plan, runtime.setup.keys.active(), &event.value)?;
                    routed.rows.push((index, plan.clone(), row));
                }
                Decision::Withhold(reason) => routed.withheld.push((index, reason.label())),
            }
        }
        Ok(routed)
    }
}

/// The UTC day or month (since 1970-01-01) a row is filed under, from its landed event time;
/// `None` when the policy lands no event time.
pub(super) fn landed_period(plan: &LandingPlan, row: &[Cell]) -> Option<i32> {
    plan.event_time_column.and_then(|column| match row[column] {
        Cell::TimestampMicros(micros) => crate::lake::layout::event_time_period(plan.event_time_partition, micros),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use apache_avro::types::Value;
    use sluice_schemas::{Catalogue, Encoder, Framing, NhsNumber};

    use super::*;
    use crate::{
        consent::{ConsentChange, ConsentScope},
        pseudonymise::PurposeKey,
        test_support::{micros, record},
    };

    const PATIENT: &str = "9434765919";

    fn setups() -> Vec<(Purpose, PurposeSetup)> {
        ["direct-care", "research"]
            .into_iter()
            .enumerate()
            .map(|(n, purpose)| {
                let key = PurposeKey::new(&format!("k{n}"), &[n as u8 + 1; 32]).unwrap();
                (purpose.parse().unwrap(), PurposeSetup::builtin(purpose, key).unwrap())
            })
            .collect()
    }

    fn router(setups: &[(Purpose, PurposeSetup)]) -> Router<'_> {
        let latest = Catalogue::embedded().latest("adt").unwrap();
        let purposes = setups
            .iter()
            .map(|(purpose, setup)| PurposeRuntime {
                purpose: purpose.clone(),
                setup,
                plans: HashMap::from([("adt".to_owned(), Arc::new(setup.policy.plan(latest).unwrap()))]),
            })
            .collect();
        let topics = [("adt".to_owned(), "clinical.adt".to_owned())];
        Router::new(purposes, SourceOrganisations::built_in().clone(), topics.iter().map(|(s, t)| (s, t)))
    }

    /// An admission of [`PATIENT`] at a trust, framed as a producer writes it.
    fn admission(source_organisation: &str) -> Vec<u8> {
        let catalogue = Catalogue::embedded();
        let version = catalogue.latest("adt").unwrap();
        let value = record(
            version,
            &[
                ("event_id", Value::Uuid("0b6c3b0e-6f1a-4a55-9a52-6a3f7f0d2c11".parse().unwrap())),
                ("occurred_at", Value::TimestampMicros(micros(2026, 3, 14, 9, 30))),
                ("recorded_at", Value::TimestampMicros(micros(2026, 3, 14, 9, 31))),
                ("source_organisation", Value::String(source_organisation.into())),
                ("source_system", Value::String("PAS".into())),
                ("nhs_number", Value::String(PATIENT.into())),
                ("local_patient_id", Value::String("H123456".into())),
                ("date_of_birth", Value::Date(crate::test_support::day(1961, 7, 2))),
                ("postcode", Value::String("LS1 4AP".into())),
            ],
        );
        Encoder::new(catalogue, Framing::SingleObject).encode(version, &value).unwrap()
    }

    fn national_opt_out() -> ConsentStore {
        let mut consent = ConsentStore::new();
        consent.apply(ConsentChange {
            nhs_number: NhsNumber::parse(PATIENT).unwrap(),
            scope: ConsentScope::NationalDataOptOut,
            deny: true,
            effective_at: 0,
            effective_until: None,
            purposes: Vec::new(),
        });
        consent
    }

    #[test]
    fn an_event_is_routed_to_every_purpose_its_consent_allows_without_kafka() {
        let setups = setups();
        let router = router(&setups);
        let decoder = Decoder::new(Catalogue::embedded());
        let payload = admission("RR8");
        assert_eq!(router.subject_of("clinical.adt"), "adt");

        let released = router.route(&ConsentStore::new(), &decoder, &payload, "adt").unwrap();
        let purposes: Vec<usize> = released.rows.iter().map(|(index, _, _)| *index).collect();
        assert_eq!(purposes, [0, 1], "both purposes receive a row");
        assert!(released.withheld.is_empty());
        assert_eq!(released.event_time, Some(micros(2026, 3, 14, 9, 30)));
        assert_eq!(released.unknown_organisation, None, "RR8 is a trust on the register");
        let (research_row, research_plan) = (&released.rows[1].2, &released.rows[1].1);
        assert!(
            !research_row.iter().any(|cell| matches!(cell, Cell::Utf8(text) if text.contains(PATIENT))),
            "the NHS number never reaches a research row"
        );
        assert_eq!(research_row.len(), research_plan.columns.len());

        let opted_out = router.route(&national_opt_out(), &decoder, &payload, "adt").unwrap();
        let purposes: Vec<usize> = opted_out.rows.iter().map(|(index, _, _)| *index).collect();
        assert_eq!(purposes, [0], "direct care is exempt from the National Data Opt-out");
        assert_eq!(opted_out.withheld, [(1, "national_data_opt_out")]);
    }

    #[test]
    fn an_event_of_another_subject_or_no_event_at_all_is_refused_with_a_reason() {
        let setups = setups();
        let router = router(&setups);
        let decoder = Decoder::new(Catalogue::embedded());
        let error = router.route(&ConsentStore::new(), &decoder, &admission("RR8"), "observation").err().unwrap();
        assert!(error.contains("on the topic of `observation`"), "{error}");
        let error = router.route(&ConsentStore::new(), &decoder, b"not avro", "adt").err().unwrap();
        assert!(!error.is_empty());
        let unlisted = router.route(&ConsentStore::new(), &decoder, &admission("ZZZ99"), "adt").unwrap();
        assert!(unlisted.unknown_organisation.is_some(), "an organisation the register does not list is named");
    }
}
