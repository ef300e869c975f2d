//! [`ConsentStore::decide`]: the rules of the module documentation, in the order they are
//! checked.

use sluice_schemas::NhsNumber;

use super::{
    ConsentStore, Decision, ExemptedOptOuts, OptOutKind, Purpose, PurposeRules, StudyConsentModel, WithholdReason,
    store::Scope,
};

/// A release with nothing exempted.
const RELEASE: Decision = Decision::Release { exempted: ExemptedOptOuts::NONE };

impl ConsentStore {
    /// Whether an event may be released to `purpose` under its `rules`. `nhs_number` is `None`
    /// when the event has no valid NHS number; `gp_sourced` is true when a GP practice sent it.
    ///
    /// In order: direct care is always released; an event without an NHS number is withheld
    /// unless nothing needs checking; a patient named by a consent record sluice could not read
    /// is withheld, exemptions or not (fail closed: nobody knows what the record said); for a study, a dissent withholds, a consent releases, and
    /// an opt-in study withholds without consent; then the National Data Opt-out and (for
    /// GP-sourced data) the Type 1 opt-out withhold unless the purpose is exempt from them, in
    /// which case the release lists them in `exempted`.
    pub fn decide(
        &self,
        purpose: &Purpose,
        rules: &PurposeRules,
        nhs_number: Option<NhsNumber>,
        gp_sourced: bool,
    ) -> Decision {
        self.decide_checking(purpose, rules, nhs_number, gp_sourced, true)
    }

    /// [`Self::decide`] as if no unreadable record held anybody back: what the readable
    /// consent says. Erasure asks this, because a hold withholds but must not recall rows.
    pub fn decide_without_holds(
        &self,
        purpose: &Purpose,
        rules: &PurposeRules,
        nhs_number: Option<NhsNumber>,
        gp_sourced: bool,
    ) -> Decision {
        self.decide_checking(purpose, rules, nhs_number, gp_sourced, false)
    }

    fn decide_checking(
        &self,
        purpose: &Purpose,
        rules: &PurposeRules,
        nhs_number: Option<NhsNumber>,
        gp_sourced: bool,
        holds: bool,
    ) -> Decision {
        let study = match purpose {
            Purpose::DirectCare => return RELEASE,
            Purpose::Planning | Purpose::Research => None,
            Purpose::Study(id) => Some(id.as_str()),
        };
        let national_exempt = rules.is_exempt_from(OptOutKind::NationalDataOptOut);
        let type1_exempt = rules.is_exempt_from(OptOutKind::Type1OptOut);

        let Some(nhs_number) = nhs_number else {
            let nothing_to_check = study.is_none() && national_exempt && (type1_exempt || !gp_sourced);
            return if nothing_to_check { RELEASE } else { Decision::Withhold(WithholdReason::NoUsableNhsNumber) };
        };
        let patient = nhs_number.as_u64();
        if holds && self.is_held(patient) {
            return Decision::Withhold(WithholdReason::ConsentUnreadable);
        }

        if let Some(study) = study {
            match self.in_force(patient, Scope::Study(study), purpose) {
                Some(true) => return Decision::Withhold(WithholdReason::StudyDissent),
                // Explicit consent: opt-outs do not apply to this study.
                Some(false) => return RELEASE,
                None if rules.study_consent == StudyConsentModel::OptIn => {
                    return Decision::Withhold(WithholdReason::NoStudyConsent);
                }
                None => {}
            }
        }

        let mut exempted = ExemptedOptOuts::NONE;
        if self.in_force(patient, Scope::National, purpose) == Some(true) {
            if !national_exempt {
                return Decision::Withhold(WithholdReason::NationalDataOptOut);
            }
            exempted = exempted.with(OptOutKind::NationalDataOptOut);
        }
        if gp_sourced && self.in_force(patient, Scope::Type1, purpose) == Some(true) {
            if !type1_exempt {
                return Decision::Withhold(WithholdReason::Type1OptOut);
            }
            exempted = exempted.with(OptOutKind::Type1OptOut);
        }
        Decision::Release { exempted }
    }
}
