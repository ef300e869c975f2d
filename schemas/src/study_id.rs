//! Study ids: one canonical spelling per study, so that a dissent recorded as `IRAS 312456` at
//! one source and `iras-312456` at another is the same study's dissent, and a lander serving
//! `study:IRAS-312456` applies both.
//!
//! Every adapter and the lander read study ids through [`StudyId::parse`], which accepts the
//! spellings people use and refuses, with a reason a sender can act on, anything else:
//!
//! * an IRAS project id: `IRAS-312456`, from `IRAS 312456`, `iras-312456`, `IRAS ID: 312456`;
//! * an ISRCTN or ClinicalTrials.gov number: `ISRCTN12345678`, `NCT01234567` (also written with a
//!   space or `-` after the prefix);
//! * any other id: letters, digits, `-`, `_` and `.`, at most 64, starting with a letter or
//!   digit; spaces become `-`; letters are upper-cased.
//!
//! ```
//! use sluice_schemas::StudyId;
//!
//! for spelling in ["IRAS 312456", "iras-312456", "IRAS ID: 312456", " IRAS-312456 "] {
//!     assert_eq!(StudyId::parse(spelling).unwrap().as_str(), "IRAS-312456");
//! }
//! assert_eq!(StudyId::parse("isrctn 12345678").unwrap().as_str(), "ISRCTN12345678");
//! assert_eq!(StudyId::parse("renal cohort.v2").unwrap().as_str(), "RENAL-COHORT.V2");
//! assert!(StudyId::parse("IRAS/312456").is_err());
//! ```

use std::fmt;

/// Longest study id accepted.
pub const MAX_STUDY_ID_LEN: usize = 64;

/// A study id in its canonical spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StudyId(String);

/// Why a text is not a study id: a reason to show the sender (it quotes nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "is not a study id: {0}; use an IRAS project id (IRAS-312456), an ISRCTN or NCT number, or letters, digits, '-', \
     '_' and '.' (at most 64, starting with a letter or digit)"
)]
pub struct InvalidStudyId(&'static str);

impl StudyId {
    /// The canonical study id of `text`, or why it is not one.
    pub fn parse(text: &str) -> Result<StudyId, InvalidStudyId> {
        let text = text.trim();
        if text.is_empty() {
            return Err(InvalidStudyId("it is empty"));
        }
        if !text.is_ascii() || text.chars().any(|c| c.is_ascii_control()) {
            return Err(InvalidStudyId("it has characters other than ASCII letters, digits and punctuation"));
        }
        let upper = text.to_ascii_uppercase();
        if let Some(id) = registry_number(&upper) {
            return Ok(StudyId(id));
        }
        let mut id = String::with_capacity(upper.len());
        for word in upper.split_whitespace() {
            if !id.is_empty() {
                id.push('-');
            }
            id.push_str(word);
        }
        if id.len() > MAX_STUDY_ID_LEN {
            return Err(InvalidStudyId("it is longer than 64 characters"));
        }
        if !id.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(InvalidStudyId("it does not start with a letter or digit"));
        }
        if !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(InvalidStudyId("it has characters other than letters, digits, '-', '_' and '.'"));
        }
        Ok(StudyId(id))
    }

    /// The canonical spelling.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The canonical spelling, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for StudyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IRAS, ISRCTN or NCT number in its canonical spelling, if `upper` (upper-cased) is one.
fn registry_number(upper: &str) -> Option<String> {
    let registries: [(&str, &str, std::ops::RangeInclusive<usize>); 3] =
        [("IRAS", "IRAS-", 4..=8), ("ISRCTN", "ISRCTN", 8..=8), ("NCT", "NCT", 8..=8)];
    for (prefix, canonical, digits) in registries {
        let Some(rest) = upper.strip_prefix(prefix) else { continue };
        let separator = |c: char| c.is_whitespace() || ":-_".contains(c);
        let rest = rest.trim_start_matches(separator);
        let rest = if prefix == "IRAS" { rest.strip_prefix("ID").unwrap_or(rest) } else { rest };
        let number = rest.trim_start_matches(separator);
        if digits.contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit()) {
            return Some(format!("{canonical}{number}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_numbers_and_local_ids_have_one_spelling() {
        let cases = [
            ("IRAS 312456", "IRAS-312456"),
            ("iras-312456", "IRAS-312456"),
            ("IRAS ID: 312456", "IRAS-312456"),
            ("IRAS_ID_312456", "IRAS-312456"),
            ("IRAS312456", "IRAS-312456"),
            ("ISRCTN 12345678", "ISRCTN12345678"),
            ("nct-01234567", "NCT01234567"),
            ("S1", "S1"),
            ("renal cohort  v2", "RENAL-COHORT-V2"),
            ("IRAS-LOCAL", "IRAS-LOCAL"),
            ("iras 12", "IRAS-12"),
        ];
        for (text, canonical) in cases {
            assert_eq!(StudyId::parse(text).unwrap().as_str(), canonical, "{text}");
            // Canonical spellings are fixed points.
            assert_eq!(StudyId::parse(canonical).unwrap().as_str(), canonical);
        }
    }

    #[test]
    fn anything_else_is_refused_with_a_reason_that_quotes_nothing() {
        for (text, why) in [
            ("", "empty"),
            ("   ", "empty"),
            ("IRAS/312456", "characters other than"),
            ("-S1", "start with a letter or digit"),
            ("étude", "ASCII"),
            ("S1\u{7}", "ASCII"),
            (&"A".repeat(65), "longer than 64"),
        ] {
            let error = StudyId::parse(text).unwrap_err().to_string();
            assert!(error.contains(why) && error.contains("IRAS-312456"), "{text:?}: {error}");
            assert!(text.trim().is_empty() || !error.contains(text.trim()), "{error}");
        }
    }
}
