//! Consent: who may have their data released for which purpose.
//!
//! This module is pure and synchronous. The lander reads the compacted consent topic and
//! [`ConsentStore::apply`]s every [`ConsentChange`] in it; then, for every clinical event and
//! every configured [`Purpose`], [`ConsentStore::decide`] says whether the event may be released
//! to that purpose. A purpose's own [`PurposeRules`] (from its policy file) say whether it is
//! exempt from an opt-out under a declared legal basis and, for a study, whether the study is
//! opt-out or opt-in.
//!
//! ```
//! use sluice_consumers::consent::{
//!     ConsentChange, ConsentScope, ConsentStore, Decision, ExemptedOptOuts, Purpose, PurposeRules,
//!     WithholdReason,
//! };
//! use sluice_schemas::NhsNumber;
//!
//! let patient = NhsNumber::parse("943 476 5919").unwrap();
//! let mut store = ConsentStore::with_capacity(1);
//! store.apply(ConsentChange {
//!     nhs_number: patient,
//!     scope: ConsentScope::NationalDataOptOut,
//!     deny: true,
//!     effective_at: 1_700_000_000_000_000,
//!     effective_until: None,
//!     purposes: Vec::new(),
//! });
//! let rules = PurposeRules::default();
//! assert_eq!(
//!     store.decide(&Purpose::Research, &rules, Some(patient), false),
//!     Decision::Withhold(WithholdReason::NationalDataOptOut)
//! );
//! assert_eq!(
//!     store.decide(&Purpose::DirectCare, &rules, Some(patient), false),
//!     Decision::Release { exempted: ExemptedOptOuts::NONE }
//! );
//! ```
//!
//! # The rules
//!
//! Sources: NHS England, *National data opt-out operational policy guidance document*
//! (what the opt-out covers, and where it does not apply: direct care, explicit consent, and
//! flows whose legal basis sets it aside, such as a section 251 support approved by the
//! Confidentiality Advisory Group); and NHS England's guidance on the *Type 1 opt-out* (an
//! objection recorded at the GP practice to confidential patient information leaving the
//! practice for purposes beyond the patient's individual care).
//!
//! 1. **Direct care** is never subject to opt-outs or study rules: always released, with no
//!    exemption recorded. (NDOO guidance: the opt-out applies only to purposes beyond
//!    individual care.)
//! 2. The **National Data Opt-out** withholds the patient's data from planning, research and
//!    every study (NDOO guidance: it covers research and planning) — unless the purpose's
//!    [`PurposeRules::exemptions`] list [`OptOutKind::NationalDataOptOut`]. Then the data is
//!    released as `Release { exempted }` with that opt-out in `exempted`, so the release under
//!    the legal basis is recorded in the audit.
//! 3. A **Type 1 opt-out** withholds data that came from a GP practice (`gp_sourced`) from every
//!    purpose except direct care (Type 1 guidance) — unless exempted in the same way. Which data
//!    came from a practice is decided by the register of source organisations
//!    ([`SourceOrganisations`]): practices, hubs whose data's origin is unknown, and
//!    organisations the register does not list (fail closed).
//! 4. A **study** ([`Purpose::Study`]) also has the patient's own decisions about that study:
//!    * a DENY in force for the study (a dissent) withholds ([`WithholdReason::StudyDissent`]);
//!      it wins over everything, exemptions included: a legal basis may set an opt-out aside,
//!      never the patient's refusal of this very study;
//!    * a PERMIT in force for the study is explicit consent. The NDOO guidance says the opt-out
//!      does not apply where the patient consented, so neither the National Data Opt-out nor a
//!      Type 1 opt-out withholds from *that* study (released with nothing exempted: it is
//!      consent, not an exemption). Other purposes and other studies are unaffected;
//!    * an opt-in study ([`StudyConsentModel::OptIn`]) releases only with such a consent in
//!      force; without one the event is withheld ([`WithholdReason::NoStudyConsent`]).
//! 5. A change's `purposes` list limits where it applies: it applies to a purpose whose
//!    [`Purpose::name`] is in the list; an empty list means every purpose its scope covers.
//!    A study change covers only its study, so a list there must name the study
//!    (`study:<id>`) for the change to count.
//! 6. A patient named (by its Kafka key) in a consent record sluice **cannot read** is withheld
//!    from every purpose but direct care, exemptions included ([`WithholdReason::ConsentUnreadable`]),
//!    until a readable record under the same key replaces it
//!    ([`ConsentStore::hold_unreadable`], [`ConsentStore::readable_record`]): the record may have
//!    been an opt-out, and the rule is to fail closed.
//! 7. An event **without a usable NHS number** cannot be matched with anybody's decisions, so it
//!    is withheld ([`WithholdReason::NoUsableNhsNumber`]) from every purpose that needs a check:
//!    from every study always (dissent and consent are per patient), and from planning and
//!    research unless every opt-out that could apply is exempted for the purpose (the National
//!    Data Opt-out always, the Type 1 opt-out when the event is GP-sourced). In that case nothing
//!    is checked and the event is released with *nothing* marked as exempted, because nobody is
//!    known to have opted out.
//!
//! # Order of changes
//!
//! For each patient, scope (National Data Opt-out, Type 1 opt-out, or one study) and **purpose**,
//! the change with the latest `effective_at` among those that cover the purpose is in force; at
//! equal effective times a DENY wins over a PERMIT, and two changes with the same time and
//! decision combine their purpose lists. A change limited to some purposes therefore decides for
//! those purposes only: an unlimited opt-out followed by a withdrawal for research alone still
//! withholds from planning. The decision depends only on the set of changes, so replaying the
//! compacted consent topic in any order rebuilds the same state (the table in
//! `docs/GOVERNANCE.md`, "How changes combine over time", is tested row by row in every order of
//! arrival).
//!
//! # Size
//!
//! The store keeps one 20-byte slot per (patient, scope) in force plus small interned tables of
//! study ids and purpose lists — about 44 bytes per patient with a million National Data
//! Opt-outs, or 176 MB for five million; see [`ConsentStore::heap_bytes`] and
//! `docs/BENCHMARKS.md`. Nothing in it prints an NHS number: its `Debug` output holds counts only.

mod change;
mod organisations;
mod rules;
mod store;
#[cfg(test)]
mod tests;
mod timed;

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use sluice_schemas::NhsNumber;

pub use change::{ConsentChange, ConsentScope, patient_of_record_key};
pub use organisations::{OrganisationType, RegisterError, SourceOrganisations};
pub use store::{ConsentStore, wall_clock_micros};

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

    /// Whether `name` is this purpose's [`Purpose::name`], without building the name.
    pub(crate) fn is_named(&self, name: &str) -> bool {
        match self {
            Purpose::DirectCare => name == "direct-care",
            Purpose::Planning => name == "planning",
            Purpose::Research => name == "research",
            Purpose::Study(id) => name.strip_prefix("study:") == Some(id.as_str()),
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
            // A study in its canonical spelling: `study:iras 312456` is `study:IRAS-312456`.
            _ => match text.strip_prefix("study:").map(sluice_schemas::StudyId::parse) {
                Some(Ok(id)) => Ok(Purpose::Study(id.into_string())),
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

impl OptOutKind {
    /// Every kind, in label order.
    const ALL: [OptOutKind; 2] = [OptOutKind::NationalDataOptOut, OptOutKind::Type1OptOut];

    /// Stable snake_case label, the same as the matching [`WithholdReason::label`], for reports
    /// and the audit.
    pub fn label(self) -> &'static str {
        match self {
            OptOutKind::NationalDataOptOut => "national_data_opt_out",
            OptOutKind::Type1OptOut => "type_1_opt_out",
        }
    }

    /// This kind's bit in an [`ExemptedOptOuts`] set.
    const fn bit(self) -> u8 {
        match self {
            OptOutKind::NationalDataOptOut => 1,
            OptOutKind::Type1OptOut => 2,
        }
    }
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
    /// Why rows already landed for this purpose stay when their patient later opts out. By
    /// default a later opt-out or dissent erases them (recall); a purpose keeps them only when
    /// its policy says so and why, e.g. a reference to the legal basis or the data access
    /// agreement. `None`: rows are recalled.
    #[serde(default)]
    pub keep_landed_rows_on_opt_out: Option<String>,
}

impl PurposeRules {
    /// Whether the purpose is exempt from `opt_out` under a declared legal basis.
    pub fn is_exempt_from(&self, opt_out: OptOutKind) -> bool {
        self.exemptions.iter().any(|exemption| exemption.opt_out == opt_out)
    }
}

/// A set of opt-outs, one bit each: the opt-outs a patient holds that a release was exempt from.
///
/// Small and `Copy` so a [`Decision`] stays cheap to return for every event and purpose.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ExemptedOptOuts(u8);

impl ExemptedOptOuts {
    /// No opt-out exempted: the plain release.
    pub const NONE: ExemptedOptOuts = ExemptedOptOuts(0);

    /// This set with `opt_out` added.
    pub const fn with(self, opt_out: OptOutKind) -> Self {
        ExemptedOptOuts(self.0 | opt_out.bit())
    }

    /// Whether no opt-out was exempted, so the release needs no audit entry of its own.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// Whether `opt_out` is in the set.
    pub fn contains(&self, opt_out: OptOutKind) -> bool {
        self.0 & opt_out.bit() != 0
    }

    /// The opt-outs in the set, in label order.
    pub fn iter(&self) -> impl Iterator<Item = OptOutKind> + use<> {
        let set = *self;
        OptOutKind::ALL.into_iter().filter(move |kind| set.contains(*kind))
    }
}

impl fmt::Debug for ExemptedOptOuts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(OptOutKind::label)).finish()
    }
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
    /// The study is opt-in and the patient has no consent to it in force.
    NoStudyConsent,
    /// A consent record naming the patient could not be read, so what they decided is unknown.
    ConsentUnreadable,
}

impl WithholdReason {
    /// Stable snake_case label.
    pub fn label(self) -> &'static str {
        match self {
            WithholdReason::NationalDataOptOut => OptOutKind::NationalDataOptOut.label(),
            WithholdReason::Type1OptOut => OptOutKind::Type1OptOut.label(),
            WithholdReason::StudyDissent => "study_dissent",
            WithholdReason::NoUsableNhsNumber => "no_usable_nhs_number",
            WithholdReason::NoStudyConsent => "no_study_consent",
            WithholdReason::ConsentUnreadable => "consent_unreadable",
        }
    }
}

/// The outcome of a consent check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The event may be released to the purpose (after pseudonymisation).
    Release {
        /// Opt-outs the patient holds that this purpose is exempt from under a declared legal
        /// basis. Non-empty means the release happened only because of an exemption and must be
        /// recorded in the audit with it.
        exempted: ExemptedOptOuts,
    },
    /// The event must not be released to the purpose.
    Withhold(WithholdReason),
}

/// What [`ConsentStore::decide`] needs from a decoded clinical event, read once per event and
/// checked against every purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventConsentInputs {
    /// The patient's NHS number; `None` when the event has none or it is not a valid one.
    pub nhs_number: Option<NhsNumber>,
    /// Whether a Type 1 opt-out covers the event: its `source_organisation` is a GP practice, a
    /// hub, or unknown to the register ([`SourceOrganisations::type_1_covers`]).
    pub gp_sourced: bool,
    /// Whether its `source_organisation` is missing from the register (or absent): treated as
    /// GP-sourced, and counted so that the register can be completed.
    pub unknown_organisation: bool,
}

/// Reads [`EventConsentInputs`] from a decoded clinical event, classing its organisation by
/// `register`.
pub fn event_consent_inputs(event: &RecordView<'_>, register: &SourceOrganisations) -> EventConsentInputs {
    let nhs_number = event.string("nhs_number").and_then(|digits| NhsNumber::parse(digits).ok());
    let organisation = event.string("source_organisation");
    EventConsentInputs {
        nhs_number,
        gp_sourced: register.type_1_covers(organisation),
        unknown_organisation: organisation.and_then(|code| register.type_of(code)).is_none(),
    }
}
