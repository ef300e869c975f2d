//! Sensitivity labels: how much a schema field can say about who a patient is, or where a row
//! came from.
//!
//! The label is a custom `"sensitivity"` attribute on the field in the `.avsc` file. It belongs
//! to the schema, not to any landing policy, so that no policy can land an identifier as it is
//! by mistake: policies are checked against it before anything lands. **Every field that holds
//! text** (a string, a UUID, an array of strings) carries one, nested record fields included,
//! so that a field added without thought is refused rather than landed (see
//! [`Sensitivity::required_for`]).
//!
//! ```
//! use sluice_schemas::{Catalogue, Sensitivity};
//! use sluice_schemas::apache_avro::Schema;
//!
//! let observation = Catalogue::embedded().latest("observation")?;
//! let Schema::Record(record) = observation.schema() else { unreachable!() };
//! let label = |name: &str| {
//!     let field = record.fields.iter().find(|f| f.name == name).unwrap();
//!     Sensitivity::of(field).unwrap()
//! };
//! assert_eq!(label("nhs_number"), Some(Sensitivity::DirectIdentifier));
//! assert_eq!(label("event_id"), Some(Sensitivity::RecordIdentifier));
//! assert_eq!(label("display"), Some(Sensitivity::FreeText));
//! assert_eq!(label("code"), Some(Sensitivity::Coded));
//! assert_eq!(label("value"), None); // a number: no label needed
//! # Ok::<(), sluice_schemas::Error>(())
//! ```

use apache_avro::{Schema, schema::RecordField};

/// How identifying a field is, from its schema's `"sensitivity"` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sensitivity {
    /// Identifies a patient on its own (NHS number, local id, names, address): may only be
    /// dropped or replaced by a keyed pseudonym.
    DirectIdentifier,
    /// Identifies a patient in combination with other data (date of birth, postcode): may be
    /// generalised, shifted or dropped, never kept as it is.
    QuasiIdentifier,
    /// Identifies the source message a row came from (an event id, often derived from the
    /// sender's own message identifiers): may only be dropped or replaced by a keyed pseudonym,
    /// or one purpose's rows would join to another's and to the source messages.
    RecordIdentifier,
    /// Text the sender writes as it likes (comments, display names, notes), which can name
    /// anyone and anything: may only be dropped (or replaced by a keyed pseudonym).
    FreeText,
    /// A value from a code system or a controlled list (clinical codes, units, ODS codes,
    /// application names, study ids): identifies no one, landed as sent where a policy keeps it.
    Coded,
    /// sluice's own bookkeeping (audit records, hashes): holds no patient data and is never
    /// landed by a policy.
    Operational,
}

impl Sensitivity {
    /// Name of the custom field attribute in the `.avsc` files.
    pub const ATTRIBUTE: &'static str = "sensitivity";

    /// Every label, in the order the documentation lists them.
    pub const ALL: [Sensitivity; 6] = [
        Sensitivity::DirectIdentifier,
        Sensitivity::QuasiIdentifier,
        Sensitivity::RecordIdentifier,
        Sensitivity::FreeText,
        Sensitivity::Coded,
        Sensitivity::Operational,
    ];

    /// The label as written in the schema.
    pub fn label(self) -> &'static str {
        match self {
            Sensitivity::DirectIdentifier => "direct-identifier",
            Sensitivity::QuasiIdentifier => "quasi-identifier",
            Sensitivity::RecordIdentifier => "record-identifier",
            Sensitivity::FreeText => "free-text",
            Sensitivity::Coded => "coded",
            Sensitivity::Operational => "operational",
        }
    }

    /// The sensitivity of a schema field; `None` when it has no label. An unknown label is an
    /// error (the reason, naming the label): a misspelt label must not quietly unprotect a field.
    pub fn of(field: &RecordField) -> Result<Option<Sensitivity>, String> {
        let Some(value) = field.custom_attributes.get(Self::ATTRIBUTE) else {
            return Ok(None);
        };
        let label = value.as_str().unwrap_or_default();
        Self::ALL.into_iter().find(|s| s.label() == label).map(Some).ok_or_else(|| {
            let known: Vec<&str> = Self::ALL.iter().map(|s| s.label()).collect();
            format!(
                "the schema labels it with an unknown sensitivity `{}`; expected one of {}",
                value.to_string().escape_debug(),
                known.join(", ")
            )
        })
    }

    /// Whether a field of this type must carry a label: it holds text somewhere (a string, a
    /// UUID, an array of strings, possibly nullable). Records are not labelled as a whole:
    /// their own text fields are.
    pub fn required_for(schema: &Schema) -> bool {
        match schema {
            Schema::String | Schema::Uuid(_) => true,
            Schema::Array(array) => Self::required_for(&array.items),
            Schema::Union(union) => union.variants().iter().any(Self::required_for),
            _ => false,
        }
    }

    /// Every text field of a record schema (nested records included) that has no label, as
    /// dotted paths (`reference_range.text`), and every label that cannot be read, with the
    /// reason. Empty for a schema whose text fields are all labelled.
    pub fn unlabelled(schema: &Schema) -> Vec<String> {
        let mut found = Vec::new();
        collect_unlabelled(schema, "", &mut found);
        found
    }
}

fn collect_unlabelled(schema: &Schema, prefix: &str, found: &mut Vec<String>) {
    match schema {
        Schema::Record(record) => {
            for field in &record.fields {
                let path = format!("{prefix}{}", field.name);
                match Sensitivity::of(field) {
                    Err(reason) => found.push(format!("{path}: {reason}")),
                    Ok(None) if Sensitivity::required_for(&field.schema) => found.push(path.clone()),
                    Ok(_) => {}
                }
                collect_unlabelled(&field.schema, &format!("{path}."), found);
            }
        }
        Schema::Union(union) => union.variants().iter().for_each(|v| collect_unlabelled(v, prefix, found)),
        Schema::Array(array) => collect_unlabelled(&array.items, prefix, found),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalogue;

    #[test]
    fn every_text_field_of_every_schema_version_is_labelled() {
        let catalogue = Catalogue::embedded();
        for subject in catalogue.subject_names() {
            for version in catalogue.versions(subject).unwrap() {
                let unlabelled = Sensitivity::unlabelled(version.schema());
                assert!(unlabelled.is_empty(), "{}: {unlabelled:?}", version.label());
            }
        }
    }

    #[test]
    fn unlabelled_and_misspelt_text_fields_are_found_nested_too() {
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "R", "fields": [
                {"name": "code", "sensitivity": "coded", "type": "string"},
                {"name": "note", "type": ["null", "string"], "default": null},
                {"name": "id", "sensitivity": "record-identfier", "type": {"type": "string", "logicalType": "uuid"}},
                {"name": "codes", "type": {"type": "array", "items": "string"}},
                {"name": "count", "type": "int"},
                {"name": "range", "type": {"type": "record", "name": "Range", "fields": [
                    {"name": "low", "type": "double"},
                    {"name": "text", "type": "string"}
                ]}}
            ]}"#,
        )
        .unwrap();
        let found = Sensitivity::unlabelled(&schema);
        assert_eq!(found.len(), 4, "{found:?}");
        assert_eq!(found[0], "note");
        assert!(found[1].starts_with("id: ") && found[1].contains("record-identfier"), "{}", found[1]);
        assert_eq!(&found[2..], ["codes", "range.text"]);
    }
}
