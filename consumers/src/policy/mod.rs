//! # Landing policies: what each purpose receives, field by field
//!
//! A *policy* is a TOML file, one per purpose (`policies/direct-care.toml`,
//! `policies/planning.toml`, `policies/research.toml`, or one for a `study:<id>`). It is the
//! single statement of what leaves the source systems for that purpose: for every field of every
//! landed subject it says whether the field is kept, dropped, pseudonymised or generalised, and
//! it carries the purpose's consent rules (study consent model and opt-out exemptions with their
//! legal basis). A Caldicott guardian or information governance lead can review the file as it
//! is; the lander does exactly what it says and nothing else.
//!
//! ## The file
//!
//! ```toml
//! name = "research"                    # recorded with every landed file
//! version = 3                          # bump on every change
//! purpose = "research"                 # direct-care | planning | research | study:<id>
//! description = "Pseudonymised research extract"
//! patient_identifier = "nhs_number"    # keys date shifting: one offset per patient
//!
//! [consent]                            # optional, see consent::PurposeRules
//! # [[consent.exemptions]]
//! # opt_out = "national-data-opt-out"
//! # legal_basis = "s251 NHS Act 2006 support (COPI regulation 5)"
//! # reference = "CAG 10-02(b)/2026"
//!
//! [subjects.adt]
//! event_id = { action = "hmac", column = "event_pseudonym" }
//! nhs_number = { action = "hmac", column = "patient_pseudonym" }
//! date_of_birth = { action = "age_band", column = "age_band", at_date = "2026-04-01" }
//! postcode = { action = "postcode_outward", column = "postcode_district" }
//! family_name = { action = "drop", reason = "direct identifier" }
//! # ... and every other field of the newest adt schema
//! ```
//!
//! The actions ([`FieldAction`]):
//!
//! | action | parameters | lands |
//! |---|---|---|
//! | `keep` | | the value unchanged, under the field's own name, in the type its schema gives: UUIDs as text, decimals as DECIMAL(p,s) (an event whose decimal has more digits than that is dead-lettered, never rounded), records as structs, arrays as lists |
//! | `keep_fields` | `column`, `fields` | a record with only the listed nested fields, each unchanged |
//! | `drop` | `reason` (optional) | nothing |
//! | `hmac` | `column` | HMAC-SHA256 under the purpose's key, in the domain of the field's name, lowercase hex: 64 digits, or 32 (128 bits) for a UUID |
//! | `date_year` | `column` | the year of a date or timestamp (integer) |
//! | `date_year_month` | `column` | `YYYY-MM` of a date or timestamp |
//! | `age_band` | `column`, `at` or `at_date`, `width` (5), `top` (90) | completed years of age at the date of field `at`, or on the fixed date `at_date` (`YYYY-MM-DD`), as `40-44` or `90+` |
//! | `postcode_outward` | `column` | `LS6 2QT` becomes `LS6` |
//! | `postcode_sector` | `column` | `LS6 2QT` becomes `LS6 2` |
//! | `shift_date` | `column`, `max_days` | the date or timestamp moved by the patient's offset, to the microsecond, in `[-max_days, +max_days]` days (a date moves to the date its midnight moves to) |
//! | `truncate_time` | `column`, `unit` | a timestamp cut down to the start of its `minute`, `hour` or `day` (UTC) |
//! | `bucket` | `column`, `width` | `floor(value / width) * width` of a number |
//!
//! A transform that cannot apply (a postcode that is not shaped like one, a birth date after the
//! event, a shift for a record without a patient identifier) lands **null**, never the original
//! value.
//!
//! ## Fail closed
//!
//! A policy is checked against the newest version of every subject before anything is landed
//! ([`Policy::plan`]), and the lander does not start if any check fails:
//!
//! * every field of the schema must have an action, so a field added by a new schema version is
//!   never landed by default ([`Error::UnmappedField`]);
//! * every field the policy names must exist, so a stale or misspelt policy is refused rather
//!   than believed ([`Error::UnknownPolicyField`]);
//! * every landed subject must have its `[subjects.<name>]` table ([`Error::UncoveredSubject`]);
//! * each action must suit the field's type, and `age_band.at` must name a date or timestamp
//!   field ([`Error::PolicyMismatch`]);
//! * no two fields may land in the same column ([`Error::ColumnClash`]);
//! * fields the schema labels with a `sensitivity` attribute are protected whatever the policy
//!   says: a `direct-identifier`, `record-identifier` or `free-text` field may only be dropped
//!   or HMAC'd, and a `quasi-identifier` (date of birth, postcode) may never be kept as it is;
//!   a record with such a nested field may only be landed with `keep_fields` leaving it out
//!   ([`Error::PolicyMismatch`]);
//! * every text field of the schema must carry a `sensitivity` label at all, so a text field
//!   nobody has classified is never landed ([`Error::PolicyMismatch`]).
//!
//! Loading refuses any key the format does not define, naming the key and the file.
//!
//! ## Provenance
//!
//! [`Policy::hash`] is the SHA-256 of the file's exact bytes and [`Policy::label`] is
//! `name@vN`; both are recorded in every landed Parquet file. A reviewer can run
//! `sha256sum policies/research.toml` and compare it with the `sluice.policy_hash` of any file in
//! the lake to know precisely which rules produced it.
//!
//! The three standard policies are also compiled into sluice ([`Policy::builtin`]) so that
//! `sluice demo` works without a policy directory.

use std::{collections::BTreeMap, path::Path};

use sha2::{Digest, Sha256};

use crate::{Error, Result, consent::Purpose, consent::PurposeRules, disclosure::DisclosureRules};

mod file;
mod plan;
mod sensitivity;
#[cfg(test)]
mod tests;

pub use file::{DEFAULT_AGE_BAND_TOP, DEFAULT_AGE_BAND_WIDTH, EventTimePartition, FieldAction, TruncateUnit};
pub use plan::{
    AgeAt, ColumnKind, ColumnPlan, LandingPlan, MAX_DECIMAL_PRECISION, MAX_SHIFT_DAYS, NestedField, Transform,
};
pub use sensitivity::Sensitivity;

use file::PolicyFile;

/// The standard policies compiled into sluice: (purpose, origin, file text).
const BUILTIN: [(&str, &str, &str); 3] = [
    ("direct-care", "builtin:policies/direct-care.toml", include_str!("../../../policies/direct-care.toml")),
    ("planning", "builtin:policies/planning.toml", include_str!("../../../policies/planning.toml")),
    ("research", "builtin:policies/research.toml", include_str!("../../../policies/research.toml")),
];

/// A loaded, versioned landing policy for one purpose. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct Policy {
    /// Name of the policy, recorded in every landed file.
    name: String,
    /// Version of the policy, recorded in every landed file.
    version: u32,
    /// The purpose the policy lands for, as written (`research`, `study:IRAS-123456`).
    purpose: String,
    /// What the policy is for, in words.
    description: String,
    /// The field whose value identifies the patient (keys date shifting).
    patient_identifier: String,
    /// The purpose's consent rules.
    rules: PurposeRules,
    /// Action of each field, per subject.
    subjects: BTreeMap<String, BTreeMap<String, FieldAction>>,
    /// How landed files are divided into directories by event time.
    event_time_partition: EventTimePartition,
    /// The purpose's disclosure control, if its policy declares one.
    disclosure: Option<DisclosureRules>,
    /// Where the text came from, for messages.
    origin: String,
    /// SHA-256 (lowercase hex) of the exact file bytes.
    hash: String,
}

impl Policy {
    /// Purposes that have a compiled-in policy.
    pub const BUILTIN_PURPOSES: [&'static str; 3] = ["direct-care", "planning", "research"];

    /// Reads and checks a policy file. The hash covers the file's exact bytes.
    pub fn load(path: &Path) -> Result<Policy> {
        let bytes = std::fs::read(path).map_err(|source| Error::ReadPolicy { path: path.to_owned(), source })?;
        let origin = path.display().to_string();
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::InvalidPolicy { origin: origin.clone(), reason: "the file is not UTF-8".to_owned() })?;
        Policy::from_toml(&text, &origin)
    }

    /// Parses and checks policy text; `origin` (a path or `builtin:...`) names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Policy> {
        let invalid = |reason: String| Error::InvalidPolicy { origin: origin.to_owned(), reason };
        let file: PolicyFile = toml::from_str(text).map_err(|error| invalid(describe_toml_error(text, &error)))?;
        if file.name.is_empty() || !file.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(invalid(format!(
                "`name` must be letters, digits, `-`, `_` or `.`, got `{}`",
                file.name.escape_debug()
            )));
        }
        if file.version == 0 {
            return Err(invalid("`version` starts at 1".to_owned()));
        }
        let purpose: Purpose = file.purpose.parse().map_err(|error: Error| invalid(error.to_string()))?;
        if file.description.trim().is_empty() {
            return Err(invalid("`description` must say what the policy is for".to_owned()));
        }
        if file.patient_identifier.is_empty() {
            return Err(invalid("`patient_identifier` must name a field".to_owned()));
        }
        let subjects: BTreeMap<String, BTreeMap<String, FieldAction>> = file
            .subjects
            .into_iter()
            .map(|(subject, fields)| (subject, fields.into_iter().map(|(field, entry)| (field, entry.0)).collect()))
            .collect();
        check_one_shift(&subjects).map_err(invalid)?;
        let disclosure = file
            .disclosure
            .map(|disclosure| crate::disclosure::rules::check(disclosure, &subjects, &file.patient_identifier))
            .transpose()
            .map_err(invalid)?;
        if file.consent.keep_landed_rows_on_opt_out.as_deref().is_some_and(|reason| reason.trim().is_empty()) {
            return Err(invalid(
                "`[consent] keep_landed_rows_on_opt_out` must say why this purpose keeps rows after an opt-out"
                    .to_owned(),
            ));
        }
        Ok(Policy {
            name: file.name,
            version: file.version,
            purpose: purpose.name(),
            description: file.description,
            patient_identifier: file.patient_identifier,
            rules: file.consent,
            subjects,
            event_time_partition: file.event_time_partition,
            disclosure,
            origin: origin.to_owned(),
            hash: hex::encode(Sha256::digest(text.as_bytes())),
        })
    }

    /// The compiled-in copy of `policies/<purpose>.toml` for `direct-care`, `planning` or
    /// `research`; `None` for any other purpose.
    pub fn builtin(purpose: &str) -> Option<Policy> {
        let (_, origin, text) = BUILTIN.iter().find(|(name, _, _)| *name == purpose)?;
        Some(Policy::from_toml(text, origin).expect("the builtin policies are checked by this crate's tests"))
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy's version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// `name@vN`, recorded with every landed file.
    pub fn label(&self) -> String {
        format!("{}@v{}", self.name, self.version)
    }

    /// The purpose the policy is for (`direct-care`, `planning`, `research`, `study:<id>`).
    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// How the policy's files are divided into directories by event time.
    pub fn event_time_partition(&self) -> EventTimePartition {
        self.event_time_partition
    }

    /// What the policy is for, in words.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The field whose value identifies the patient.
    pub fn patient_identifier(&self) -> &str {
        &self.patient_identifier
    }

    /// The purpose's consent rules from the `[consent]` table (defaults when absent).
    pub fn rules(&self) -> &PurposeRules {
        &self.rules
    }

    /// Where the policy was read from (a path or `builtin:policies/<purpose>.toml`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// SHA-256 (lowercase hex) of the exact bytes of the policy file: what `sha256sum` prints.
    pub fn hash(&self) -> String {
        self.hash.clone()
    }

    /// Whether the policy shifts dates and times (any `shift_date`): such a purpose's output must
    /// not reveal true time in any other way either, so its files are never rolled at true
    /// day boundaries and their modification times are hidden.
    pub fn shifts_time(&self) -> bool {
        self.subjects.values().flat_map(|fields| fields.values()).any(|a| matches!(a, FieldAction::ShiftDate { .. }))
    }

    /// The purpose's disclosure control (`[disclosure]`), if the policy declares one.
    pub fn disclosure(&self) -> Option<&DisclosureRules> {
        self.disclosure.as_ref()
    }

    /// The subjects the policy has a table for.
    pub fn subjects(&self) -> impl Iterator<Item = &str> {
        self.subjects.keys().map(String::as_str)
    }

    /// The action of each field of one subject, if the policy covers it.
    pub fn actions(&self, subject: &str) -> Option<&BTreeMap<String, FieldAction>> {
        self.subjects.get(subject)
    }
}

/// Every `shift_date` of a policy must use the same `max_days`: the offset of a patient depends
/// on it, so different values would move one patient's dates by different amounts, breaking
/// intervals and letting the two shifted copies be compared.
fn check_one_shift(subjects: &BTreeMap<String, BTreeMap<String, FieldAction>>) -> std::result::Result<(), String> {
    let mut first: Option<(String, u32)> = None;
    for (subject, fields) in subjects {
        for (field, action) in fields {
            if let FieldAction::ShiftDate { max_days, .. } = action {
                match &first {
                    None => first = Some((format!("{subject}.{field}"), *max_days)),
                    Some((where_first, days)) if days != max_days => {
                        return Err(format!(
                            "every shift_date must use the same max_days: `{where_first}` uses {days}, \
                             `{subject}.{field}` uses {max_days}"
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
    }
    Ok(())
}

/// A one-line description of a TOML error: line number and the parser's message (which names
/// the offending key). The policy file holds no patient data, so quoting it is safe.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    match error.span() {
        Some(span) => {
            let line = text.as_bytes()[..span.start.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message.to_owned(),
    }
}
