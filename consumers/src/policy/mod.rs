//! The pseudonymisation policy: what happens to every field of every landed schema.
//!
//! A [`Policy`] maps field names to [`FieldAction`]s. [`Policy::plan`] checks it against the
//! newest version of a subject's schema and produces a [`LandingPlan`]: the output columns, their
//! Arrow types, and the transform feeding each. Planning **fails closed**: a field the policy does
//! not mention (for example one added by a new schema version) stops the lander at start-up with
//! a message naming subject, version and field, so nothing new is ever landed by default.
//!
//! The first policy, [`Policy::baseline`], replaces the NHS number with a keyed HMAC-SHA256
//! pseudonym, drops names, address, local identifiers and free text, reduces date of birth to
//! the year and the postcode to its outward code, and keeps the clinical content.

use std::{collections::BTreeMap, sync::Arc};

use apache_avro::Schema;
use arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef, TimeUnit};
use sha2::{Digest, Sha256};
use sluice_schemas::SchemaVersion;

use crate::{Error, Result};

/// What happens to one field on its way to the lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldAction {
    /// Landed unchanged.
    Keep,
    /// Never landed (direct identifiers, free text).
    Drop,
    /// Replaced by the keyed HMAC-SHA256 of its value (lowercase hex) in column `column`.
    Hmac {
        /// Name of the output column.
        column: String,
    },
    /// A date reduced to its year, in column `column`.
    DateToYear {
        /// Name of the output column.
        column: String,
    },
    /// A UK postcode reduced to its outward code (`LS6 2QT` to `LS6`), in column `column`.
    PostcodeOutward {
        /// Name of the output column.
        column: String,
    },
}

impl FieldAction {
    fn describe(&self) -> String {
        match self {
            FieldAction::Keep => "keep".to_owned(),
            FieldAction::Drop => "drop".to_owned(),
            FieldAction::Hmac { column } => format!("hmac -> {column}"),
            FieldAction::DateToYear { column } => format!("year -> {column}"),
            FieldAction::PostcodeOutward { column } => format!("outward-code -> {column}"),
        }
    }
}

/// A named, versioned set of field actions.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Name of the policy, recorded in every landed file.
    name: String,
    /// Version of the policy, recorded in every landed file.
    version: u32,
    /// Action for each field name, across subjects.
    actions: BTreeMap<String, FieldAction>,
}

impl Policy {
    /// Builds a policy from field actions.
    pub fn new(name: &str, version: u32, actions: impl IntoIterator<Item = (String, FieldAction)>) -> Self {
        Policy { name: name.to_owned(), version, actions: actions.into_iter().collect() }
    }

    /// The first policy: identifiers pseudonymised or dropped, quasi-identifiers generalised.
    pub fn baseline() -> Self {
        use FieldAction::*;
        let keep = [
            "event_id",
            "occurred_at",
            "recorded_at",
            "source_organisation",
            "source_system",
            "sex",
            "event_type",
            "patient_class",
            "location_code",
            "treatment_function_code",
            "code_system",
            "code",
            "display",
            "value",
            "unit",
            "interpretation",
            "is_primary",
            "onset_date",
        ];
        let drop = ["local_patient_id", "family_name", "given_name", "address_line", "comment"];
        let actions = keep
            .iter()
            .map(|field| (field.to_string(), Keep))
            .chain(drop.iter().map(|field| (field.to_string(), Drop)))
            .chain([
                ("nhs_number".to_owned(), Hmac { column: "patient_pseudonym".to_owned() }),
                ("date_of_birth".to_owned(), DateToYear { column: "birth_year".to_owned() }),
                ("postcode".to_owned(), PostcodeOutward { column: "postcode_district".to_owned() }),
            ]);
        Policy::new("sluice-baseline", 1, actions)
    }

    /// `name@vN`.
    pub fn label(&self) -> String {
        format!("{}@v{}", self.name, self.version)
    }

    /// SHA-256 (hex) of the policy's canonical text: name, version and every action in field
    /// order. Recorded with every landed file so an auditor can tell which rules applied.
    pub fn hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(format!("{}\n{}\n", self.name, self.version));
        for (field, action) in &self.actions {
            hasher.update(format!("{field}={}\n", action.describe()));
        }
        hex::encode(hasher.finalize())
    }

    /// Checks the policy against a schema version and plans the output columns.
    pub fn plan(&self, version: &SchemaVersion) -> Result<LandingPlan> {
        let Schema::Record(record) = version.schema() else {
            return Err(self.mismatch(version, "<record>", "a landed subject must be a record"));
        };
        let mut columns = Vec::new();
        for (field_index, field) in record.fields.iter().enumerate() {
            let action = self.actions.get(&field.name).ok_or_else(|| Error::UnmappedField {
                policy: self.label(),
                subject: version.subject().to_owned(),
                version: version.version(),
                field: field.name.clone(),
            })?;
            let (nullable, inner) = unwrap_nullable(&field.schema);
            let kind = ColumnKind::of(inner);
            let (name, transform, kind, nullable) = match action {
                FieldAction::Drop => continue,
                FieldAction::Keep => {
                    let kind =
                        kind.ok_or_else(|| self.mismatch(version, &field.name, "this Avro type cannot be landed yet"))?;
                    (field.name.clone(), Transform::Copy, kind, nullable)
                }
                FieldAction::Hmac { column } => {
                    self.expect(version, &field.name, kind == Some(ColumnKind::Utf8), "hmac needs a string field")?;
                    (column.clone(), Transform::Hmac, ColumnKind::Utf8, nullable)
                }
                FieldAction::DateToYear { column } => {
                    self.expect(version, &field.name, kind == Some(ColumnKind::Date32), "year needs a date field")?;
                    (column.clone(), Transform::DateToYear, ColumnKind::Int32, nullable)
                }
                FieldAction::PostcodeOutward { column } => {
                    self.expect(
                        version,
                        &field.name,
                        kind == Some(ColumnKind::Utf8),
                        "outward-code needs a string field",
                    )?;
                    // An unparseable postcode becomes null rather than being landed whole.
                    (column.clone(), Transform::PostcodeOutward, ColumnKind::Utf8, true)
                }
            };
            columns.push(ColumnPlan { field_index, name, kind, nullable, transform });
        }
        let arrow_schema = Arc::new(ArrowSchema::new(
            columns.iter().map(|c| Field::new(&c.name, c.kind.data_type(), c.nullable)).collect::<Vec<_>>(),
        ));
        Ok(LandingPlan {
            subject: version.subject().to_owned(),
            reader_version: version.version(),
            reader_fingerprint: version.fingerprint(),
            columns,
            arrow_schema,
        })
    }

    fn expect(&self, version: &SchemaVersion, field: &str, ok: bool, reason: &str) -> Result<()> {
        if ok { Ok(()) } else { Err(self.mismatch(version, field, reason)) }
    }

    fn mismatch(&self, version: &SchemaVersion, field: &str, reason: &str) -> Error {
        Error::PolicyMismatch {
            policy: self.label(),
            subject: version.label(),
            field: field.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

/// How one output column is computed from its source field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// The value as it is.
    Copy,
    /// Keyed HMAC-SHA256 pseudonym.
    Hmac,
    /// Year of a date.
    DateToYear,
    /// Outward code of a postcode.
    PostcodeOutward,
}

/// Arrow type of an output column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// UTF-8 text (strings, enum symbols, UUIDs).
    Utf8,
    /// 32-bit integer.
    Int32,
    /// 64-bit integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// Boolean.
    Boolean,
    /// Calendar date (Parquet DATE).
    Date32,
    /// Timestamp in microseconds, UTC.
    TimestampMicros,
}

impl ColumnKind {
    fn of(schema: &Schema) -> Option<ColumnKind> {
        Some(match schema {
            Schema::String | Schema::Uuid(_) | Schema::Enum(_) => ColumnKind::Utf8,
            Schema::Int => ColumnKind::Int32,
            Schema::Long => ColumnKind::Int64,
            Schema::Float | Schema::Double => ColumnKind::Float64,
            Schema::Boolean => ColumnKind::Boolean,
            Schema::Date => ColumnKind::Date32,
            Schema::TimestampMicros | Schema::TimestampMillis => ColumnKind::TimestampMicros,
            _ => return None,
        })
    }

    /// The Arrow data type.
    pub fn data_type(self) -> DataType {
        match self {
            ColumnKind::Utf8 => DataType::Utf8,
            ColumnKind::Int32 => DataType::Int32,
            ColumnKind::Int64 => DataType::Int64,
            ColumnKind::Float64 => DataType::Float64,
            ColumnKind::Boolean => DataType::Boolean,
            ColumnKind::Date32 => DataType::Date32,
            ColumnKind::TimestampMicros => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }
}

/// One output column.
#[derive(Debug, Clone)]
pub struct ColumnPlan {
    /// Position of the source field in the reader schema's record.
    pub field_index: usize,
    /// Output column name.
    pub name: String,
    /// Output type.
    pub kind: ColumnKind,
    /// Whether the column may hold nulls.
    pub nullable: bool,
    /// How the value is computed.
    pub transform: Transform,
}

/// The checked plan for landing one subject under one policy.
#[derive(Debug, Clone)]
pub struct LandingPlan {
    /// Subject landed.
    pub subject: String,
    /// Version every record is read with (the newest).
    pub reader_version: u32,
    /// Fingerprint of that version.
    pub reader_fingerprint: u64,
    /// Output columns in order.
    pub columns: Vec<ColumnPlan>,
    /// The Arrow schema of the landed dataset.
    pub arrow_schema: SchemaRef,
}

fn unwrap_nullable(schema: &Schema) -> (bool, &Schema) {
    if let Schema::Union(union) = schema {
        let variants = union.variants();
        if variants.len() == 2 {
            if let Schema::Null = variants[0] {
                return (true, &variants[1]);
            }
            if let Schema::Null = variants[1] {
                return (true, &variants[0]);
            }
        }
    }
    (false, schema)
}

#[cfg(test)]
mod tests {
    use sluice_schemas::{Catalogue, subjects};

    use super::*;

    #[test]
    fn baseline_covers_every_clinical_subject_and_removes_identifiers() {
        let catalogue = Catalogue::embedded();
        for subject in subjects::CLINICAL {
            let plan = Policy::baseline().plan(catalogue.latest(subject).unwrap()).unwrap();
            let names: Vec<&str> = plan.columns.iter().map(|c| c.name.as_str()).collect();
            for identifier in [
                "nhs_number",
                "local_patient_id",
                "family_name",
                "given_name",
                "postcode",
                "date_of_birth",
                "address_line",
                "comment",
            ] {
                assert!(!names.contains(&identifier), "{subject} lands {identifier}");
            }
            for derived in ["patient_pseudonym", "birth_year", "postcode_district", "event_id", "occurred_at"] {
                assert!(names.contains(&derived), "{subject} lacks {derived}");
            }
            assert_eq!(
                plan.arrow_schema.field_with_name("occurred_at").unwrap().data_type(),
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            );
        }
    }

    #[test]
    fn a_field_the_policy_does_not_mention_is_refused_at_planning() {
        let mut policy = Policy::baseline();
        policy.actions.remove("interpretation");
        let v2 = Catalogue::embedded().version("observation", 2).unwrap();
        let error = policy.plan(v2).unwrap_err().to_string();
        assert_eq!(
            error,
            "policy `sluice-baseline@v1` has no action for field `interpretation` of subject `observation` v2; add one before landing"
        );
    }

    #[test]
    fn actions_that_do_not_fit_the_field_type_are_refused() {
        let mut policy = Policy::baseline();
        policy.actions.insert("value".into(), FieldAction::PostcodeOutward { column: "v".into() });
        let error = policy.plan(Catalogue::embedded().latest("observation").unwrap()).unwrap_err().to_string();
        assert!(error.contains("`value`") && error.contains("outward-code needs a string"), "{error}");
    }

    #[test]
    fn policy_hash_changes_with_any_action() {
        let baseline = Policy::baseline();
        let mut changed = Policy::baseline();
        changed.actions.insert("sex".into(), FieldAction::Drop);
        assert_eq!(baseline.hash(), Policy::baseline().hash());
        assert_ne!(baseline.hash(), changed.hash());
        assert_eq!(baseline.hash().len(), 64);
    }
}
