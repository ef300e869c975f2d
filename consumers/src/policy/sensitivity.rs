//! What a field's sensitivity label (see [`Sensitivity`], from the schema) allows a policy to
//! do with it. The label belongs to the schema, not the policy, so no policy can land an
//! identifier or free text as it is by mistake.

pub use sluice_schemas::Sensitivity;

use super::FieldAction;

/// Why `action` is not allowed for a field labelled `sensitivity`, if it is not.
pub(super) fn forbids(sensitivity: Sensitivity, action: &FieldAction) -> Option<String> {
    let allowed = match sensitivity {
        Sensitivity::DirectIdentifier | Sensitivity::FreeText | Sensitivity::RecordIdentifier => {
            matches!(action, FieldAction::Drop { .. } | FieldAction::Hmac { .. })
        }
        Sensitivity::QuasiIdentifier => !matches!(action, FieldAction::Keep {} | FieldAction::KeepFields { .. }),
        Sensitivity::Coded | Sensitivity::Operational => true,
    };
    if allowed {
        return None;
    }
    Some(match sensitivity {
        Sensitivity::DirectIdentifier => format!(
            "the schema marks it a direct identifier, so `{}` is refused (it would land the identifier or part of \
             it); use `drop` or `hmac`",
            action.name()
        ),
        Sensitivity::RecordIdentifier => format!(
            "the schema marks it a record identifier, which links rows to the source messages and to every other \
             purpose that lands it, so `{}` is refused; use `hmac` (a keyed pseudonym of this purpose's own) or `drop`",
            action.name()
        ),
        Sensitivity::FreeText => format!(
            "the schema marks it free text, which can name people and places, so `{}` is refused; use `drop`",
            action.name()
        ),
        Sensitivity::QuasiIdentifier => "the schema marks it a quasi-identifier, so `keep` is refused (it would \
             land it in full); generalise it (e.g. `age_band`, `postcode_outward`), shift it or drop it"
            .to_owned(),
        Sensitivity::Coded | Sensitivity::Operational => unreachable!("allowed above"),
    })
}
