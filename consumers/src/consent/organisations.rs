//! The register of source organisations: what kind of organisation each ODS code is, which
//! decides the data a Type 1 opt-out covers.
//!
//! A Type 1 opt-out stops a patient's data leaving their GP practice. Whether an event came from a
//! practice cannot be told from the shape of its ODS code alone: practices send through hubs and
//! trusts' integration engines, and the code an event carries is then the relay's. The register
//! (`policies/source-organisations.csv`, a file operators maintain and review like a landing
//! policy) lists each sending organisation's type, and an event is treated as GP-sourced when its
//! organisation is
//!
//! * a `gp-practice`;
//! * an `integration-hub`: it relays data whose origin it may not carry, so the data may be a
//!   practice's (adapters put the originating organisation in `source_organisation` when the
//!   message names it, so a relayed message that does is judged by its origin);
//! * not in the register at all, or absent: fail closed. Such events are counted
//!   ([`crate::lander::LandingReport::unknown_source_organisations`]).
//!
//! ```
//! use sluice_consumers::consent::{OrganisationType, SourceOrganisations};
//!
//! let register = SourceOrganisations::parse(
//!     "ods_code,organisation_type,name\nRR8,nhs-trust,Leeds Teaching Hospitals\nB86001,gp-practice,\nQWE,integration-hub,A hub\n",
//!     "example.csv",
//! )
//! .unwrap();
//! assert_eq!(register.type_of("RR8"), Some(OrganisationType::NhsTrust));
//! assert!(!register.type_1_covers(Some("RR8")));
//! assert!(register.type_1_covers(Some("B86001")));
//! assert!(register.type_1_covers(Some("QWE")), "a hub's origin is unknown");
//! assert!(register.type_1_covers(Some("RXX")), "an unknown organisation: fail closed");
//! assert!(register.type_1_covers(None));
//! ```

use std::{collections::HashMap, path::Path, sync::LazyLock};

/// The register built into sluice, from `policies/source-organisations.csv`.
const EMBEDDED: &str = include_str!("../../../policies/source-organisations.csv");

/// What kind of organisation an ODS code is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrganisationType {
    /// A GP practice: its data is what Type 1 opt-outs cover.
    GpPractice,
    /// An NHS trust (or one of its sites).
    NhsTrust,
    /// A hub or integration engine relaying other organisations' data.
    IntegrationHub,
    /// A national service (for example the national data opt-out service).
    NationalService,
    /// An independent-sector provider.
    IndependentSector,
    /// Anything else a reviewer has classified.
    Other,
}

impl OrganisationType {
    /// Every type, with its label in the register.
    const LABELS: [(OrganisationType, &'static str); 6] = [
        (OrganisationType::GpPractice, "gp-practice"),
        (OrganisationType::NhsTrust, "nhs-trust"),
        (OrganisationType::IntegrationHub, "integration-hub"),
        (OrganisationType::NationalService, "national-service"),
        (OrganisationType::IndependentSector, "independent-sector"),
        (OrganisationType::Other, "other"),
    ];

    /// The type's label in the register.
    pub fn label(self) -> &'static str {
        Self::LABELS.iter().find(|(kind, _)| *kind == self).map(|(_, label)| *label).unwrap_or("other")
    }

    /// Whether data from an organisation of this type may be a GP practice's.
    fn may_be_gp_data(self) -> bool {
        matches!(self, OrganisationType::GpPractice | OrganisationType::IntegrationHub)
    }
}

/// Why a register could not be read. Names the line, never guesses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("register of source organisations {source_name}, line {line}: {reason}")]
pub struct RegisterError {
    /// Where the register came from.
    pub source_name: String,
    /// The line (from 1).
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// The register: the type of every listed ODS code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOrganisations {
    /// Type by ODS code (upper case, as ODS writes them).
    by_code: HashMap<String, OrganisationType>,
}

/// The embedded register, parsed once.
static BUILT_IN: LazyLock<SourceOrganisations> = LazyLock::new(|| {
    SourceOrganisations::parse(EMBEDDED, "builtin:policies/source-organisations.csv")
        .expect("the built-in register of source organisations is checked by this crate's tests")
});

impl SourceOrganisations {
    /// The register built into sluice (`policies/source-organisations.csv`).
    pub fn built_in() -> &'static SourceOrganisations {
        &BUILT_IN
    }

    /// Reads a register file.
    pub fn load(path: &Path) -> Result<Self, RegisterError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| RegisterError {
            source_name: name.clone(),
            line: 0,
            reason: error.to_string(),
        })?;
        Self::parse(&text, &name)
    }

    /// Parses a register: lines starting with `#` and blank lines are ignored; the first other
    /// line is the header `ods_code,organisation_type,name`; then one organisation per line. An
    /// ODS code listed twice, an unknown type or a code that is not an ODS code is refused.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, RegisterError> {
        let fail = |line: usize, reason: String| RegisterError { source_name: source_name.to_owned(), line, reason };
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(index, line)| (index + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'));
        match lines.next() {
            Some((_, "ods_code,organisation_type,name")) => {}
            Some((line, _)) => return Err(fail(line, "the header must be `ods_code,organisation_type,name`".into())),
            None => return Err(fail(0, "the register is empty".into())),
        }
        let mut by_code = HashMap::new();
        for (line, text) in lines {
            let mut cells = text.splitn(3, ',');
            let (code, kind) = (cells.next().unwrap_or("").trim(), cells.next().unwrap_or("").trim());
            if !is_ods_code(code) {
                return Err(fail(line, "the first cell is not an ODS code (3 to 6 capital letters and digits)".into()));
            }
            let Some((kind, _)) = OrganisationType::LABELS.iter().find(|(_, label)| *label == kind) else {
                let known: Vec<&str> = OrganisationType::LABELS.iter().map(|(_, label)| *label).collect();
                return Err(fail(line, format!("unknown organisation_type `{kind}`; one of {}", known.join(", "))));
            };
            if by_code.insert(code.to_owned(), *kind).is_some() {
                return Err(fail(line, format!("{code} is listed twice")));
            }
        }
        Ok(SourceOrganisations { by_code })
    }

    /// The type of `ods_code`, if it is listed.
    pub fn type_of(&self, ods_code: &str) -> Option<OrganisationType> {
        self.by_code.get(ods_code).copied()
    }

    /// Whether a Type 1 opt-out covers an event from `ods_code`: a GP practice, a hub (origin
    /// unknown), an organisation not in the register, or none given.
    pub fn type_1_covers(&self, ods_code: Option<&str>) -> bool {
        ods_code.and_then(|code| self.type_of(code)).is_none_or(OrganisationType::may_be_gp_data)
    }

    /// How an unlisted organisation is named in reports and logs: its code when it has the shape
    /// of an ODS code (an organisation's, never a patient's), else a placeholder, so that text a
    /// sender put in the field never reaches a log.
    pub fn report_label(ods_code: Option<&str>) -> String {
        match ods_code {
            Some(code) if is_ods_code(code) => code.to_owned(),
            Some(_) => "(not an ODS code)".to_owned(),
            None => "(none)".to_owned(),
        }
    }

    /// Number of organisations listed.
    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty()
    }
}

/// An ODS organisation code as the register lists it: 3 to 6 capital letters and digits.
fn is_ods_code(code: &str) -> bool {
    (3..=6).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_register_reads_and_lists_the_synthetic_sources() {
        let register = SourceOrganisations::built_in();
        assert!(register.len() >= 16);
        for trust in ["RR8", "RAE", "R0A", "RHQ"] {
            assert_eq!(register.type_of(trust), Some(OrganisationType::NhsTrust), "{trust}");
        }
        for practice in ["B86001", "Y02494"] {
            assert_eq!(register.type_of(practice), Some(OrganisationType::GpPractice), "{practice}");
        }
        assert_eq!(register.type_of("X26"), Some(OrganisationType::NationalService));
    }

    #[test]
    fn bad_registers_are_refused_naming_the_line() {
        let header = "ods_code,organisation_type,name\n";
        for (text, line, why) in [
            ("", 0, "empty"),
            ("code,type\nRR8,nhs-trust,\n", 1, "header"),
            (&*format!("{header}rr8,nhs-trust,\n"), 2, "not an ODS code"),
            (&*format!("{header}RR8,hospital,\n"), 2, "unknown organisation_type `hospital`"),
            (&*format!("# note\n{header}RR8,nhs-trust,\nRR8,gp-practice,\n"), 4, "listed twice"),
        ] {
            let error = SourceOrganisations::parse(text, "t.csv").unwrap_err();
            assert_eq!(error.line, line, "{error}");
            assert!(error.to_string().contains(why), "{error}");
        }
    }

    #[test]
    fn type_1_covers_practices_hubs_and_anything_unknown() {
        let text = "ods_code,organisation_type,name\nRR8,nhs-trust,\nB86001,gp-practice,\nQWE,integration-hub,\n\
                    X26,national-service,\nNT1,independent-sector,\nZZ9,other,\n";
        let register = SourceOrganisations::parse(text, "t.csv").unwrap();
        for (code, covered) in [
            (Some("RR8"), false),
            (Some("X26"), false),
            (Some("NT1"), false),
            (Some("ZZ9"), false),
            (Some("B86001"), true),
            (Some("QWE"), true),
            (Some("B86999"), true),
            (Some("RXX"), true),
            (None, true),
        ] {
            assert_eq!(register.type_1_covers(code), covered, "{code:?}");
        }
        for (kind, label) in OrganisationType::LABELS {
            assert_eq!(kind.label(), label);
        }
    }
}
