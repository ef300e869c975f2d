//! Consent: who may have their data released for which purpose.
//!
//! This module is pure and synchronous: the [`ConsentStore`] is built by applying
//! [`ConsentChange`]s read from the consent topic, and [`ConsentStore::decide`] says whether one
//! event may be released to one [`Purpose`]. The rules, after the NHS England opt-out policy:
//!
//! * **direct care** is never subject to opt-outs;
//! * the **National Data Opt-out** withholds a patient's data from planning and research;
//! * a **Type 1 opt-out** withholds GP-sourced data from every purpose except direct care;
//! * a **study**'s dissent (DENY) withholds the patient's data from that study; deny wins over
//!   permit at the same effective time;
//! * an event without a usable NHS number is withheld from every purpose that needs an opt-out
//!   check, because nobody can tell whether its patient opted out.
//!
//! Changes are applied in effective order per patient and scope: a change older than the one in
//! force is ignored, so replaying the compacted consent topic always rebuilds the same state.

use std::{collections::HashMap, fmt, str::FromStr};

use apache_avro::types::Value;
use serde::{Deserialize, Serialize};
use sluice_schemas::NhsNumber;

use crate::{Error, record::RecordView};

/// What data is released for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    /// Care of the individual patient: opt-outs do not apply.
    DirectCare,
    /// Planning of services (commissioning, service evaluation): the National Data Opt-out applies.
    Planning,
    /// Research in general: the National Data Opt-out applies.
    Research,
    /// One named study, e.g. by IRAS id: opt-outs apply, and so do the study's consents and dissents.
    Study(String),
}

impl Purpose {
    /// Whether opt-outs must be checked, so an event needs a usable NHS number.
    pub fn needs_opt_out_check(&self) -> bool {
        !matches!(self, Purpose::DirectCare)
    }

    /// The name used in configuration, paths and consent changes' purpose lists.
    pub fn name(&self) -> String {
        match self {
            Purpose::DirectCare => "direct-care".to_owned(),
            Purpose::Planning => "planning".to_owned(),
            Purpose::Research => "research".to_owned(),
            Purpose::Study(id) => format!("study:{id}"),
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Purpose {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "direct-care" => Ok(Purpose::DirectCare),
            "planning" => Ok(Purpose::Planning),
            "research" => Ok(Purpose::Research),
            _ => match text.strip_prefix("study:") {
                Some(id) if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) => {
                    Ok(Purpose::Study(id.to_owned()))
                }
                _ => Err(Error::UnknownPurpose(text.to_owned())),
            },
        }
    }
}

/// An opt-out that a purpose may be exempt from under a declared legal basis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptOutKind {
    /// The National Data Opt-out.
    NationalDataOptOut,
    /// The Type 1 opt-out held at the GP practice.
    Type1OptOut,
}

/// A declared legal basis under which an opt-out does not apply to one purpose, for example a
/// regulation 5 COPI support approved by the Confidentiality Advisory Group. Declared in the
/// purpose's policy file (so it is versioned and hashed with it) and recorded in the audit
/// whenever data is released under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    /// The opt-out that does not apply to this purpose.
    pub opt_out: OptOutKind,
    /// The legal basis in words, e.g. "s251 NHS Act 2006 support (COPI regulation 5)".
    pub legal_basis: String,
    /// Where the approval is recorded, e.g. a CAG reference such as "CAG 10-02(b)/2026".
    pub reference: String,
}

/// How a study's own consents and dissents decide release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StudyConsentModel {
    /// Everyone is included unless they dissented from the study (opt-outs still apply).
    #[default]
    OptOut,
    /// Only patients with an explicit consent (PERMIT) to the study in force are included.
    OptIn,
}

/// The consent rules of one purpose, beyond the national rules that always apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurposeRules {
    /// For a study purpose: whether it is opt-out (dissent withholds) or opt-in (only consent
    /// releases). Ignored for other purposes.
    #[serde(default)]
    pub study_consent: StudyConsentModel,
    /// Opt-outs that do not apply to this purpose, each with its legal basis.
    #[serde(default)]
    pub exemptions: Vec<Exemption>,
}

/// Why an event was withheld from a purpose. The labels are stable: they appear in reports and audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WithholdReason {
    /// The patient holds a National Data Opt-out.
    NationalDataOptOut,
    /// The patient holds a Type 1 opt-out and the event came from their GP practice.
    Type1OptOut,
    /// The patient dissented from this study.
    StudyDissent,
    /// The event has no valid NHS number, so opt-outs cannot be checked.
    NoUsableNhsNumber,
}

impl WithholdReason {
    /// Stable snake_case label.
    pub fn label(self) -> &'static str {
        match self {
            WithholdReason::NationalDataOptOut => "national_data_opt_out",
            WithholdReason::Type1OptOut => "type_1_opt_out",
            WithholdReason::StudyDissent => "study_dissent",
            WithholdReason::NoUsableNhsNumber => "no_usable_nhs_number",
        }
    }
}

/// The outcome of a consent check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The event may be released to the purpose (after pseudonymisation).
    Release,
    /// The event must not be released to the purpose.
    Withhold(WithholdReason),
}

/// What a consent change is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentScope {
    /// The National Data Opt-out.
    NationalDataOptOut,
    /// A Type 1 opt-out at the GP practice.
    Type1OptOut,
    /// One study, by id.
    Study(String),
}

/// One decoded change from the consent topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentChange {
    /// The patient.
    pub nhs_number: NhsNumber,
    /// What the change is about.
    pub scope: ConsentScope,
    /// True for an opt-out or dissent, false for a withdrawal of an opt-out or a consent.
    pub deny: bool,
    /// When the change takes effect (microseconds since the Unix epoch, UTC).
    pub effective_at: i64,
    /// Purposes the change is limited to; empty means every purpose the scope covers.
    pub purposes: Vec<String>,
}

impl ConsentChange {
    /// Reads a change from a `consent` record (any version, resolved to the newest). The error
    /// names what is wrong without quoting any value.
    pub fn from_record(record: &Value) -> Result<Self, String> {
        let view = RecordView::new(record).ok_or("a consent change must be a record")?;
        let nhs_number = view
            .string("nhs_number")
            .ok_or("consent change has no NHS number")
            .and_then(|text| NhsNumber::parse(text).map_err(|_| "consent change has an invalid NHS number"))?;
        let scope = match view.enum_symbol("scope") {
            Some("NATIONAL_DATA_OPT_OUT") => ConsentScope::NationalDataOptOut,
            Some("TYPE_1_OPT_OUT") => ConsentScope::Type1OptOut,
            Some("STUDY") => ConsentScope::Study(
                view.string("study_id")
                    .filter(|id| !id.is_empty())
                    .ok_or("a STUDY consent change needs a study_id")?
                    .to_owned(),
            ),
            _ => return Err("consent change has an unknown scope".to_owned()),
        };
        let deny = match view.enum_symbol("decision") {
            Some("DENY") => true,
            Some("PERMIT") => false,
            _ => return Err("consent change has an unknown decision".to_owned()),
        };
        let effective_at = view.timestamp_micros("effective_at").ok_or("consent change has no effective_at")?;
        let purposes = view.string_array("purposes").unwrap_or_default();
        Ok(ConsentChange { nhs_number, scope, deny, effective_at, purposes })
    }
}

/// The change in force for one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InForce {
    deny: bool,
    effective_at: i64,
    purposes: Vec<String>,
}

impl InForce {
    fn denies(&self, purpose: &Purpose) -> bool {
        self.deny && (self.purposes.is_empty() || self.purposes.iter().any(|p| *p == purpose.name()))
    }
}

/// A patient's consent state: at most one change in force per scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PatientConsent {
    national: Option<InForce>,
    type1: Option<InForce>,
    studies: Vec<(String, InForce)>,
}

/// Consent state of every patient with at least one change, keyed by NHS number as an integer.
#[derive(Debug, Default)]
pub struct ConsentStore {
    patients: HashMap<u64, PatientConsent>,
    /// Changes applied (including superseded ones), for progress and audit.
    changes_applied: u64,
}

impl ConsentStore {
    /// An empty store: nobody has opted out.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of patients with any recorded change.
    pub fn patients(&self) -> usize {
        self.patients.len()
    }

    /// Number of changes applied so far.
    pub fn changes_applied(&self) -> u64 {
        self.changes_applied
    }

    /// Applies one change. A change older than the one in force for the same scope is ignored;
    /// at equal effective times a DENY wins.
    pub fn apply(&mut self, change: ConsentChange) {
        self.changes_applied += 1;
        let patient = self.patients.entry(change.nhs_number.as_u64()).or_default();
        let slot = match change.scope {
            ConsentScope::NationalDataOptOut => &mut patient.national,
            ConsentScope::Type1OptOut => &mut patient.type1,
            ConsentScope::Study(id) => {
                let index = match patient.studies.iter().position(|(study, _)| *study == id) {
                    Some(index) => index,
                    None => {
                        patient
                            .studies
                            .push((id, InForce { deny: false, effective_at: i64::MIN, purposes: Vec::new() }));
                        patient.studies.len() - 1
                    }
                };
                let (_, in_force) = &mut patient.studies[index];
                replace_if_newer(in_force, change.deny, change.effective_at, change.purposes);
                return;
            }
        };
        match slot {
            Some(in_force) => replace_if_newer(in_force, change.deny, change.effective_at, change.purposes),
            None => {
                *slot =
                    Some(InForce { deny: change.deny, effective_at: change.effective_at, purposes: change.purposes })
            }
        }
    }

    /// Whether an event may be released to `purpose`. `nhs_number` is `None` when the event has
    /// no valid NHS number; `gp_sourced` is true when a GP practice sent it.
    pub fn decide(&self, purpose: &Purpose, nhs_number: Option<NhsNumber>, gp_sourced: bool) -> Decision {
        if !purpose.needs_opt_out_check() {
            return Decision::Release;
        }
        let Some(nhs_number) = nhs_number else {
            return Decision::Withhold(WithholdReason::NoUsableNhsNumber);
        };
        let Some(patient) = self.patients.get(&nhs_number.as_u64()) else {
            return Decision::Release;
        };
        if patient.national.as_ref().is_some_and(|c| c.denies(purpose)) {
            return Decision::Withhold(WithholdReason::NationalDataOptOut);
        }
        if gp_sourced && patient.type1.as_ref().is_some_and(|c| c.denies(purpose)) {
            return Decision::Withhold(WithholdReason::Type1OptOut);
        }
        if let Purpose::Study(study) = purpose
            && patient.studies.iter().any(|(id, c)| id == study && c.deny)
        {
            return Decision::Withhold(WithholdReason::StudyDissent);
        }
        Decision::Release
    }
}

fn replace_if_newer(in_force: &mut InForce, deny: bool, effective_at: i64, purposes: Vec<String>) {
    let newer = effective_at > in_force.effective_at || (effective_at == in_force.effective_at && deny);
    if newer {
        *in_force = InForce { deny, effective_at, purposes };
    }
}

/// Whether an ODS code is a GP practice's: one letter followed by five digits (e.g. B86001).
/// Trust and site codes (RR8, RR801) and national bodies (X26) are not.
pub fn is_gp_practice(ods_code: &str) -> bool {
    let bytes = ods_code.as_bytes();
    bytes.len() == 6 && bytes[0].is_ascii_uppercase() && bytes[1..].iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn nhs(digits: &str) -> NhsNumber {
        NhsNumber::parse(digits).unwrap()
    }

    fn change(scope: ConsentScope, deny: bool, effective_at: i64) -> ConsentChange {
        ConsentChange { nhs_number: nhs("9434765919"), scope, deny, effective_at, purposes: Vec::new() }
    }

    const ALL: [Purpose; 3] = [Purpose::DirectCare, Purpose::Planning, Purpose::Research];

    #[test]
    fn national_opt_out_applies_to_planning_and_research_not_direct_care() {
        let mut store = ConsentStore::new();
        store.apply(change(ConsentScope::NationalDataOptOut, true, 10));
        let decisions: Vec<Decision> = ALL.iter().map(|p| store.decide(p, Some(nhs("9434765919")), false)).collect();
        assert_eq!(
            decisions,
            [
                Decision::Release,
                Decision::Withhold(WithholdReason::NationalDataOptOut),
                Decision::Withhold(WithholdReason::NationalDataOptOut)
            ]
        );
        let study = Purpose::Study("IRAS-123456".into());
        assert_eq!(
            store.decide(&study, Some(nhs("9434765919")), false),
            Decision::Withhold(WithholdReason::NationalDataOptOut)
        );
    }

    #[test]
    fn type1_opt_out_withholds_only_gp_sourced_data_and_never_from_direct_care() {
        let mut store = ConsentStore::new();
        store.apply(change(ConsentScope::Type1OptOut, true, 10));
        let patient = Some(nhs("9434765919"));
        assert_eq!(store.decide(&Purpose::Research, patient, true), Decision::Withhold(WithholdReason::Type1OptOut));
        assert_eq!(store.decide(&Purpose::Planning, patient, true), Decision::Withhold(WithholdReason::Type1OptOut));
        assert_eq!(store.decide(&Purpose::Research, patient, false), Decision::Release);
        assert_eq!(store.decide(&Purpose::DirectCare, patient, true), Decision::Release);
    }

    #[test]
    fn study_dissent_applies_to_that_study_only() {
        let mut store = ConsentStore::new();
        store.apply(change(ConsentScope::Study("ABC".into()), true, 10));
        let patient = Some(nhs("9434765919"));
        assert_eq!(
            store.decide(&Purpose::Study("ABC".into()), patient, false),
            Decision::Withhold(WithholdReason::StudyDissent)
        );
        assert_eq!(store.decide(&Purpose::Study("XYZ".into()), patient, false), Decision::Release);
        assert_eq!(store.decide(&Purpose::Research, patient, false), Decision::Release);
    }

    #[test]
    fn purpose_limited_opt_out_applies_only_to_listed_purposes() {
        let mut store = ConsentStore::new();
        let mut limited = change(ConsentScope::NationalDataOptOut, true, 10);
        limited.purposes = vec!["research".into()];
        store.apply(limited);
        let patient = Some(nhs("9434765919"));
        assert_eq!(
            store.decide(&Purpose::Research, patient, false),
            Decision::Withhold(WithholdReason::NationalDataOptOut)
        );
        assert_eq!(store.decide(&Purpose::Planning, patient, false), Decision::Release);
    }

    #[test]
    fn events_without_a_usable_nhs_number_are_withheld_where_opt_outs_apply() {
        let store = ConsentStore::new();
        assert_eq!(
            store.decide(&Purpose::Research, None, false),
            Decision::Withhold(WithholdReason::NoUsableNhsNumber)
        );
        assert_eq!(store.decide(&Purpose::DirectCare, None, false), Decision::Release);
    }

    #[test]
    fn latest_effective_change_wins_and_deny_wins_ties() {
        let mut store = ConsentStore::new();
        let patient = Some(nhs("9434765919"));
        store.apply(change(ConsentScope::NationalDataOptOut, true, 10));
        store.apply(change(ConsentScope::NationalDataOptOut, false, 20));
        assert_eq!(store.decide(&Purpose::Research, patient, false), Decision::Release, "withdrawal in force");
        store.apply(change(ConsentScope::NationalDataOptOut, true, 15));
        assert_eq!(store.decide(&Purpose::Research, patient, false), Decision::Release, "older change ignored");
        store.apply(change(ConsentScope::NationalDataOptOut, true, 20));
        assert_eq!(
            store.decide(&Purpose::Research, patient, false),
            Decision::Withhold(WithholdReason::NationalDataOptOut)
        );
        assert_eq!(store.changes_applied(), 4);
        assert_eq!(store.patients(), 1);
    }

    proptest! {
        /// Applying the same changes in any order gives the same decisions: replaying the
        /// consent topic is deterministic.
        #[test]
        fn order_of_application_does_not_matter(
            changes in proptest::collection::vec((0u8..3, any::<bool>(), 0i64..20), 1..12),
            seed: u64,
        ) {
            let build = |order: &[(u8, bool, i64)]| {
                let mut store = ConsentStore::new();
                for (scope, deny, at) in order {
                    let scope = match scope {
                        0 => ConsentScope::NationalDataOptOut,
                        1 => ConsentScope::Type1OptOut,
                        _ => ConsentScope::Study("S1".into()),
                    };
                    store.apply(change(scope, *deny, *at));
                }
                let patient = Some(nhs("9434765919"));
                [Purpose::Research, Purpose::Planning, Purpose::Study("S1".into())]
                    .iter()
                    .flat_map(|p| [store.decide(p, patient, true), store.decide(p, patient, false)])
                    .collect::<Vec<_>>()
            };
            let mut shuffled = changes.clone();
            let len = shuffled.len();
            for i in 0..len {
                shuffled.swap(i, (seed as usize).wrapping_add(i * 7) % len);
            }
            prop_assert_eq!(build(&changes), build(&shuffled));
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
            assert_eq!(name.parse::<Purpose>().unwrap().name(), name);
        }
        assert!("marketing".parse::<Purpose>().is_err());
        assert!("study:".parse::<Purpose>().is_err());
        assert!("study:../etc".parse::<Purpose>().is_err());
    }
}
