//! Per-sender tables of local codes, for senders that put their own codes where HL7 and the NHS
//! expect national ones.
//!
//! A PAS may send its own specialty code (`MED`) in PV1-10 rather than a three-digit treatment
//! function code, and a laboratory its own test code (`K`) in OBX-3 rather than a LOINC or
//! SNOMED CT code. The interface team of the receiving organisation writes a table per sender
//! (`MSH-3^MSH-4`, sending application and facility) in TOML:
//!
//! ```toml
//! [senders."PAS^RR8".treatment_function]   # PV1-10: local code -> treatment function code
//! MED = "300"
//! GSURG = "100"
//!
//! [senders."LIMS^RCB".observation]          # OBX-3: local code -> LOINC (LN) or SNOMED CT (SCT)
//! K = { system = "LN", code = "2823-3", display = "Potassium [Moles/volume] in Serum or Plasma" }
//! ```
//!
//! and passes it to `sluice produce hl7 --local-codes FILE`. A national code is always taken as
//! sent; the table is consulted only for a code that is not one. What happens to a local code
//! with no entry depends on the field: PV1-10 is optional, so the event lands with the field
//! null and the ACK warns (see [`super::map`]); OBX-3 is what the result *is*, so the message is
//! refused (AE) until the table has an entry.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Every sender's table, by sender (`MSH-3^MSH-4`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalCodes {
    /// The tables, by `MSH-3^MSH-4` of the sender that uses them.
    #[serde(default)]
    senders: BTreeMap<String, SenderCodes>,
}

/// One sender's local codes, by the field they appear in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderCodes {
    /// PV1-10 (hospital service): local code -> national treatment function code (3 digits).
    #[serde(default)]
    treatment_function: BTreeMap<String, String>,
    /// OBX-3 (observation identifier, component 1 or 4): local code -> national coding.
    #[serde(default)]
    observation: BTreeMap<String, NationalObservationCode>,
}

/// The national coding a local observation code stands for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NationalObservationCode {
    /// `LN` (LOINC) or `SCT` (SNOMED CT), as in OBX-3.3.
    pub system: String,
    /// The LOINC code or SNOMED CT concept id.
    pub code: String,
    /// The code's display text, which becomes the event's `display`.
    pub display: String,
}

/// Why a table cannot be used. Names the sender and code, which are configuration, not
/// patient data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalCodesError {
    /// The file is not TOML of the documented shape.
    #[error("the local code tables are not valid: {0}")]
    Syntax(String),
    /// A treatment function code in a table is not three digits.
    #[error("sender `{sender}`: treatment_function `{local}` must map to a three-digit treatment function code")]
    TreatmentFunction {
        /// The sender whose table holds it.
        sender: String,
        /// The local code.
        local: String,
    },
    /// An observation entry names a coding system other than LOINC or SNOMED CT.
    #[error("sender `{sender}`: observation `{local}` must map to system LN (LOINC) or SCT (SNOMED CT)")]
    ObservationSystem {
        /// The sender whose table holds it.
        sender: String,
        /// The local code.
        local: String,
    },
}

impl LocalCodes {
    /// Reads tables from TOML text and checks every entry is a national code.
    pub fn from_toml(text: &str) -> Result<Self, LocalCodesError> {
        let codes: LocalCodes = toml::from_str(text).map_err(|e| LocalCodesError::Syntax(e.message().to_owned()))?;
        for (sender, table) in &codes.senders {
            for (local, national) in &table.treatment_function {
                if !is_treatment_function_code(national) {
                    return Err(LocalCodesError::TreatmentFunction { sender: sender.clone(), local: local.clone() });
                }
            }
            for (local, national) in &table.observation {
                if !matches!(national.system.as_str(), "LN" | "SCT") {
                    return Err(LocalCodesError::ObservationSystem { sender: sender.clone(), local: local.clone() });
                }
            }
        }
        Ok(codes)
    }

    /// The treatment function code `sender` means by the local PV1-10 code `local`.
    pub fn treatment_function(&self, sender: &str, local: &str) -> Option<&str> {
        self.senders.get(sender)?.treatment_function.get(local).map(String::as_str)
    }

    /// The national coding `sender` means by the local OBX-3 code `local`.
    pub fn observation(&self, sender: &str, local: &str) -> Option<&NationalObservationCode> {
        self.senders.get(sender)?.observation.get(local)
    }

    /// How many senders have a table.
    pub fn senders(&self) -> usize {
        self.senders.len()
    }
}

/// A national treatment function code: three digits (NHS Data Model and Dictionary).
pub fn is_treatment_function_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_read_by_sender_and_field() {
        let codes = LocalCodes::from_toml(
            r#"
            [senders."PAS^RR8".treatment_function]
            MED = "300"
            [senders."LIMS^RCB".observation]
            K = { system = "LN", code = "2823-3", display = "Potassium" }
            "#,
        )
        .unwrap();
        assert_eq!(codes.treatment_function("PAS^RR8", "MED"), Some("300"));
        assert_eq!(codes.treatment_function("PAS^RR8", "SURG"), None);
        assert_eq!(codes.treatment_function("PAS^RCB", "MED"), None, "another sender's table is not used");
        assert_eq!(codes.observation("LIMS^RCB", "K").map(|c| c.code.as_str()), Some("2823-3"));
        assert_eq!(codes.senders(), 2);
    }

    #[test]
    fn entries_that_are_not_national_codes_are_refused_with_the_sender_and_code() {
        let error = LocalCodes::from_toml("[senders.\"PAS^RR8\".treatment_function]\nMED = \"30\"\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "sender `PAS^RR8`: treatment_function `MED` must map to a three-digit treatment function code"
        );
        let error = LocalCodes::from_toml(
            "[senders.\"L^R\".observation]\nK = { system = \"LOCAL\", code = \"1\", display = \"x\" }\n",
        )
        .unwrap_err();
        assert!(matches!(error, LocalCodesError::ObservationSystem { .. }), "{error}");
        let error = LocalCodes::from_toml("[senders.\"L^R\".specialty]\nK = \"1\"\n").unwrap_err();
        assert!(matches!(error, LocalCodesError::Syntax(_)), "unknown tables are refused: {error}");
    }
}
