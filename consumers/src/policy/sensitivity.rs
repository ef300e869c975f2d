//! Sensitivity labels: how identifying a schema field is, and which actions that forbids.
//!
//! The label is a custom `"sensitivity"` attribute on the field in the `.avsc` file. It belongs
//! to the schema, not to any policy, so that no policy can land an identifier as it is by
//! mistake: planning refuses the action whatever the policy says.

use apache_avro::schema::RecordField;

use super::FieldAction;

/// How identifying a field is, from its schema's `"sensitivity"` attribute. The label belongs
/// to the schema, not the policy, so no policy can land an identifier as it is by mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensitivity {
    /// Identifies a patient on its own (NHS number, local id, names, address): may only be
    /// dropped or replaced by an HMAC pseudonym.
    DirectIdentifier,
    /// Identifies a patient in combination with other data (date of birth, postcode): may be
    /// generalised, shifted or dropped, never kept.
    QuasiIdentifier,
    /// Free text, which can name anyone and anything: may only be dropped (or HMAC'd).
    FreeText,
}

impl Sensitivity {
    /// Name of the custom field attribute in the `.avsc` files.
    pub const ATTRIBUTE: &'static str = "sensitivity";

    /// The label as written in the schema.
    pub fn label(self) -> &'static str {
        match self {
            Sensitivity::DirectIdentifier => "direct-identifier",
            Sensitivity::QuasiIdentifier => "quasi-identifier",
            Sensitivity::FreeText => "free-text",
        }
    }

    /// The sensitivity of a schema field; `None` when it has no label. An unknown label is an
    /// error: a misspelt label must not quietly unprotect a field.
    pub fn of(field: &RecordField) -> std::result::Result<Option<Sensitivity>, String> {
        let Some(value) = field.custom_attributes.get(Self::ATTRIBUTE) else {
            return Ok(None);
        };
        let label = value.as_str().unwrap_or_default();
        [Sensitivity::DirectIdentifier, Sensitivity::QuasiIdentifier, Sensitivity::FreeText]
            .into_iter()
            .find(|s| s.label() == label)
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "the schema labels it with an unknown sensitivity `{}`; expected direct-identifier, \
                     quasi-identifier or free-text",
                    value.to_string().escape_debug()
                )
            })
    }

    /// Why `action` is not allowed for a field of this sensitivity, if it is not.
    pub(super) fn forbids(self, action: &FieldAction) -> Option<String> {
        let allowed = match self {
            Sensitivity::DirectIdentifier | Sensitivity::FreeText => {
                matches!(action, FieldAction::Drop { .. } | FieldAction::Hmac { .. })
            }
            Sensitivity::QuasiIdentifier => !matches!(action, FieldAction::Keep {}),
        };
        if allowed {
            return None;
        }
        Some(match self {
            Sensitivity::DirectIdentifier => format!(
                "the schema marks it a direct identifier, so `{}` is refused (it would land the identifier or part \
                 of it); use `drop` or `hmac`",
                action.name()
            ),
            Sensitivity::FreeText => format!(
                "the schema marks it free text, which can name people and places, so `{}` is refused; use `drop`",
                action.name()
            ),
            Sensitivity::QuasiIdentifier => "the schema marks it a quasi-identifier, so `keep` is refused (it would \
                 land it in full); generalise it (e.g. `age_band`, `postcode_outward`), shift it or drop it"
                .to_owned(),
        })
    }
}
