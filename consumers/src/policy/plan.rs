//! Planning: checking a policy against one schema version, field by field, and producing the
//! [`LandingPlan`] the pseudonymiser and the Parquet writer follow.
//!
//! Every check here fails closed: when in doubt, the lander does not start.

use std::{collections::BTreeMap, sync::Arc};

use apache_avro::{Schema, schema::RecordField};
use arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef, TimeUnit};
use sluice_schemas::SchemaVersion;

use super::{EventTimePartition, FieldAction, Policy, Sensitivity, sensitivity::forbids};
use crate::{Error, Result};

/// Largest `shift_date.max_days` accepted: ten years. Larger shifts protect no better and make
/// the dates useless.
pub const MAX_SHIFT_DAYS: u32 = 3650;

/// How one output column is computed from its source field. Each variant carries what it needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    /// The value as it is.
    Copy,
    /// Keyed HMAC-SHA256 pseudonym of the value's text.
    Hmac,
    /// Calendar year of a date or timestamp (UTC).
    DateYear,
    /// `YYYY-MM` of a date or timestamp (UTC).
    DateYearMonth,
    /// Age band of a birth date at the date of another field, or at a fixed date.
    AgeBand {
        /// When the age is taken.
        at: AgeAt,
        /// Width of a band in years.
        width: u32,
        /// Age of the open top band.
        top: u32,
    },
    /// Outward code of a postcode.
    PostcodeOutward,
    /// Sector (outward code and inward digit) of a postcode.
    PostcodeSector,
    /// Date or timestamp shifted by the patient's offset.
    ShiftDate {
        /// Position of the patient identifier field that keys the offset.
        patient: usize,
        /// Largest shift in days, either way.
        max_days: u32,
    },
    /// Timestamp truncated to the start of its unit.
    TruncateTime {
        /// Length of the unit in microseconds (a minute, an hour or a day).
        unit_micros: i64,
    },
    /// Lower bound of an integer's bucket.
    BucketInt {
        /// Width of a bucket (positive).
        width: i64,
    },
    /// Lower bound of a floating-point number's bucket.
    BucketFloat {
        /// Width of a bucket (positive, finite).
        width: f64,
    },
}

/// When an age band's age is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeAt {
    /// At the date of the field at this position of the same record.
    Field(usize),
    /// At this fixed day (days since 1970-01-01).
    Date(i32),
}

/// Arrow type of an output column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// UTF-8 text (strings, enum symbols, pseudonyms).
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
    /// An exact decimal number (Parquet DECIMAL(precision, scale)), from an Avro `decimal`.
    Decimal128 {
        /// Total number of digits, at most [`MAX_DECIMAL_PRECISION`].
        precision: u8,
        /// Digits after the decimal point.
        scale: i8,
    },
    /// A nested record (Arrow struct, Parquet group), from an Avro record.
    Struct(Vec<NestedField>),
    /// A list (Arrow list, Parquet LIST), from an Avro array.
    List {
        /// Type of the items.
        item: Box<ColumnKind>,
        /// Whether an item may be null.
        item_nullable: bool,
    },
}

/// One field of a [`ColumnKind::Struct`] column, named as in the Avro record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestedField {
    /// Field name, from the Avro record.
    pub name: String,
    /// Its type.
    pub kind: ColumnKind,
    /// Whether it may be null (a `["null", T]` union in Avro).
    pub nullable: bool,
}

/// Largest decimal precision landed: what an Arrow `Decimal128` holds.
pub const MAX_DECIMAL_PRECISION: usize = 38;

/// Name of the item field of a landed list, as arrow-rs names it.
const LIST_ITEM: &str = "item";

impl ColumnKind {
    fn of(schema: &Schema) -> Option<ColumnKind> {
        Some(match schema {
            // UUIDs land as their canonical text: Spark cannot read Parquet's UUID type.
            Schema::String | Schema::Enum(_) | Schema::Uuid(_) => ColumnKind::Utf8,
            Schema::Int => ColumnKind::Int32,
            Schema::Long => ColumnKind::Int64,
            Schema::Float | Schema::Double => ColumnKind::Float64,
            Schema::Boolean => ColumnKind::Boolean,
            Schema::Date => ColumnKind::Date32,
            Schema::TimestampMicros | Schema::TimestampMillis => ColumnKind::TimestampMicros,
            Schema::Decimal(decimal) => {
                if decimal.precision == 0
                    || decimal.precision > MAX_DECIMAL_PRECISION
                    || decimal.scale > decimal.precision
                {
                    return None;
                }
                ColumnKind::Decimal128 { precision: decimal.precision as u8, scale: decimal.scale as i8 }
            }
            Schema::Record(record) if !record.fields.is_empty() => ColumnKind::Struct(
                record
                    .fields
                    .iter()
                    .map(|field| {
                        let (nullable, inner) = unwrap_nullable(&field.schema);
                        Some(NestedField { name: field.name.clone(), kind: ColumnKind::of(inner)?, nullable })
                    })
                    .collect::<Option<Vec<_>>>()?,
            ),
            Schema::Array(array) => {
                let (item_nullable, inner) = unwrap_nullable(&array.items);
                ColumnKind::List { item: Box::new(ColumnKind::of(inner)?), item_nullable }
            }
            _ => return None,
        })
    }

    fn is_temporal(&self) -> bool {
        matches!(self, ColumnKind::Date32 | ColumnKind::TimestampMicros)
    }

    /// The Arrow data type.
    pub fn data_type(&self) -> DataType {
        match self {
            ColumnKind::Utf8 => DataType::Utf8,
            ColumnKind::Int32 => DataType::Int32,
            ColumnKind::Int64 => DataType::Int64,
            ColumnKind::Float64 => DataType::Float64,
            ColumnKind::Boolean => DataType::Boolean,
            ColumnKind::Date32 => DataType::Date32,
            ColumnKind::TimestampMicros => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ColumnKind::Decimal128 { precision, scale } => DataType::Decimal128(*precision, *scale),
            ColumnKind::Struct(fields) => {
                DataType::Struct(fields.iter().map(|f| f.kind.field(&f.name, f.nullable)).collect::<Vec<_>>().into())
            }
            ColumnKind::List { item, item_nullable } => DataType::List(Arc::new(item.field(LIST_ITEM, *item_nullable))),
        }
    }

    /// The Arrow field of a column (or nested field) of this kind.
    pub fn field(&self, name: &str, nullable: bool) -> Field {
        Field::new(name, self.data_type(), nullable)
    }
}

/// One output column.
#[derive(Debug, Clone)]
pub struct ColumnPlan {
    /// Position of the source field in the reader schema's record.
    pub field_index: usize,
    /// Name of the source field: the domain of the column's pseudonyms, so that one value in
    /// two fields never gets the same pseudonym.
    pub source_field: String,
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
    /// Position of the patient identifier field (the policy's `patient_identifier`) in the
    /// reader schema's record.
    pub patient_field_index: usize,
    /// Output column holding the event time as landed (`occurred_at`, kept or shifted): files
    /// are partitioned by its UTC date or month. `None` when the policy lands no such timestamp.
    pub event_time_column: Option<usize>,
    /// Whether files are partitioned by that time's UTC day or month (the policy says).
    pub event_time_partition: EventTimePartition,
}

/// The field every clinical subject has for when the event happened.
pub const EVENT_TIME_FIELD: &str = "occurred_at";

impl LandingPlan {
    /// The output column holding the keyed pseudonym of the patient identifier, if the policy
    /// lands one. Erasure finds a patient's rows through it.
    pub fn patient_pseudonym_column(&self) -> Option<&str> {
        self.columns
            .iter()
            .find(|c| c.field_index == self.patient_field_index && c.transform == Transform::Hmac)
            .map(|c| c.name.as_str())
    }
}

impl Policy {
    /// Checks the policy against a schema version (the newest of its subject) and plans the
    /// output columns. Fails closed; see the [module documentation](super) for every check.
    pub fn plan(&self, version: &SchemaVersion) -> Result<LandingPlan> {
        let Schema::Record(record) = version.schema() else {
            return Err(self.mismatch(version, "<record>", "a landed subject must be a record".to_owned()));
        };
        let subject = version.subject();
        let actions = self.subjects.get(subject).ok_or_else(|| Error::UncoveredSubject {
            policy: self.label(),
            subject: subject.to_owned(),
            version: version.version(),
        })?;
        for field in &record.fields {
            if !actions.contains_key(&field.name) {
                return Err(Error::UnmappedField {
                    policy: self.label(),
                    subject: subject.to_owned(),
                    version: version.version(),
                    field: field.name.clone(),
                });
            }
        }
        if let Some(field) = actions.keys().find(|name| !record.lookup.contains_key(*name)) {
            return Err(Error::UnknownPolicyField {
                policy: self.label(),
                subject: subject.to_owned(),
                version: version.version(),
                field: field.clone(),
            });
        }
        if let Some(unlabelled) = Sensitivity::unlabelled(version.schema()).into_iter().next() {
            let (field, reason) = unlabelled.split_once(": ").unwrap_or((&unlabelled, ""));
            let reason = if reason.is_empty() {
                "the schema gives this text field no `sensitivity` label, so nobody has said whether it may be \
                 landed; label it in the .avsc file"
                    .to_owned()
            } else {
                reason.to_owned()
            };
            return Err(self.mismatch(version, field, reason));
        }
        let fields = Fields { version, fields: &record.fields };
        let patient = fields.index(&self.patient_identifier).filter(|i| fields.kind(*i).0 == Some(ColumnKind::Utf8));
        let patient = patient.ok_or_else(|| {
            self.mismatch(
                version,
                &self.patient_identifier,
                "`patient_identifier` must name a string field of every landed subject".to_owned(),
            )
        })?;

        let mut columns = Vec::new();
        let mut owners: BTreeMap<String, String> = BTreeMap::new();
        for (field_index, field) in record.fields.iter().enumerate() {
            let action = &actions[&field.name];
            let sensitivity = Sensitivity::of(field).map_err(|reason| self.mismatch(version, &field.name, reason))?;
            if let Some(reason) = sensitivity.and_then(|s| forbids(s, action)) {
                return Err(self.mismatch(version, &field.name, reason));
            }
            let Some((transform, kind, nullable)) = self
                .transform(&fields, field_index, action, patient)
                .map_err(|r| self.mismatch(version, &field.name, r))?
            else {
                continue;
            };
            let name = action.column(&field.name).unwrap_or(&field.name).to_owned();
            self.check_column_name(&fields, field, sensitivity, transform, &name)?;
            if let Some(first) = owners.insert(name.clone(), field.name.clone()) {
                return Err(Error::ColumnClash {
                    policy: self.label(),
                    subject: version.label(),
                    column: name,
                    first,
                    second: field.name.clone(),
                });
            }
            columns.push(ColumnPlan { field_index, source_field: field.name.clone(), name, kind, nullable, transform });
        }
        let arrow_schema =
            Arc::new(ArrowSchema::new(columns.iter().map(|c| c.kind.field(&c.name, c.nullable)).collect::<Vec<_>>()));
        Ok(LandingPlan {
            subject: subject.to_owned(),
            reader_version: version.version(),
            reader_fingerprint: version.fingerprint(),
            event_time_column: fields.index(EVENT_TIME_FIELD).and_then(|field| {
                columns.iter().position(|c| c.field_index == field && c.kind == ColumnKind::TimestampMicros)
            }),
            event_time_partition: self.event_time_partition(),
            columns,
            arrow_schema,
            patient_field_index: patient,
        })
    }

    /// The transform, output kind and nullability of one field's action; `None` for `drop`.
    /// The error is the reason, without the field (the caller names it).
    fn transform(
        &self,
        fields: &Fields<'_>,
        index: usize,
        action: &FieldAction,
        patient: usize,
    ) -> std::result::Result<Option<(Transform, ColumnKind, bool)>, String> {
        let (kind, nullable) = fields.kind(index);
        let need = |ok: bool, what: &str| if ok { Ok(()) } else { Err(format!("`{}` needs {what}", action.name())) };
        let temporal = kind.as_ref().is_some_and(ColumnKind::is_temporal);
        Ok(Some(match action {
            FieldAction::Drop { .. } => return Ok(None),
            FieldAction::Keep {} => {
                let kind = kind.ok_or("this Avro type cannot be landed yet")?;
                if let Some(nested) = fields.nested_refusing_keep(index)? {
                    return Err(format!(
                        "its nested field `{nested}` may not be landed as it is, so `keep` is refused; use \
                         `keep_fields` listing the nested fields to land"
                    ));
                }
                (Transform::Copy, kind, nullable)
            }
            FieldAction::KeepFields { fields: wanted, .. } => {
                let Some(ColumnKind::Struct(nested)) = kind else {
                    return Err("`keep_fields` needs a record field".to_owned());
                };
                let labels = fields.nested_sensitivity(index)?;
                let mut kept = Vec::new();
                for want in wanted {
                    if wanted.iter().filter(|w| *w == want).count() > 1 {
                        return Err(format!("`keep_fields` lists `{want}` twice"));
                    }
                    let field = nested
                        .iter()
                        .find(|f| &f.name == want)
                        .ok_or_else(|| format!("`keep_fields` lists `{want}`, which the record does not have"))?;
                    if let Some((_, Some(label))) = labels.iter().find(|(name, _)| name == want)
                        && forbids(*label, &FieldAction::Keep {}).is_some()
                    {
                        return Err(format!(
                            "`keep_fields` lists `{want}`, which the schema labels {}: it may not land as it is",
                            label.label()
                        ));
                    }
                    kept.push(field.clone());
                }
                if kept.is_empty() {
                    return Err("`keep_fields` must list at least one field (or use `drop`)".to_owned());
                }
                // The record's order, whatever the policy's.
                kept.sort_by_key(|f| nested.iter().position(|n| n.name == f.name));
                (Transform::Copy, ColumnKind::Struct(kept), nullable)
            }
            FieldAction::Hmac { .. } => {
                need(matches!(kind, Some(ColumnKind::Utf8)), "a string, enum or UUID field")?;
                (Transform::Hmac, ColumnKind::Utf8, nullable)
            }
            FieldAction::DateYear { .. } => {
                need(temporal, "a date or timestamp field")?;
                (Transform::DateYear, ColumnKind::Int32, nullable)
            }
            FieldAction::DateYearMonth { .. } => {
                need(temporal, "a date or timestamp field")?;
                (Transform::DateYearMonth, ColumnKind::Utf8, nullable)
            }
            FieldAction::AgeBand { at, at_date, width, top, .. } => {
                need(temporal, "a date (of birth) field")?;
                let at = match (at, at_date) {
                    (Some(at), None) => AgeAt::Field(
                        fields
                            .index(at)
                            .filter(|i| *i != index && fields.kind(*i).0.as_ref().is_some_and(ColumnKind::is_temporal))
                            .ok_or_else(|| {
                                format!("`age_band.at` must name another date or timestamp field, not `{at}`")
                            })?,
                    ),
                    (None, Some(date)) => AgeAt::Date(parse_iso_date(date).ok_or_else(|| {
                        format!("`age_band.at_date` must be a date written YYYY-MM-DD, not `{}`", date.escape_debug())
                    })?),
                    _ => return Err("`age_band` needs exactly one of `at` (a field) and `at_date` (a date)".to_owned()),
                };
                need(*width >= 1 && *top >= 1, "`width` and `top` of at least 1")?;
                (Transform::AgeBand { at, width: *width, top: *top }, ColumnKind::Utf8, true)
            }
            FieldAction::PostcodeOutward { .. } | FieldAction::PostcodeSector { .. } => {
                need(fields.is_string(index), "a string field")?;
                let transform = match action {
                    FieldAction::PostcodeOutward { .. } => Transform::PostcodeOutward,
                    _ => Transform::PostcodeSector,
                };
                // An unparseable postcode lands as null rather than whole.
                (transform, ColumnKind::Utf8, true)
            }
            FieldAction::ShiftDate { max_days, .. } => {
                let kind = kind.filter(|k| k.is_temporal()).ok_or("`shift_date` needs a date or timestamp field")?;
                need((1..=MAX_SHIFT_DAYS).contains(max_days), &format!("`max_days` between 1 and {MAX_SHIFT_DAYS}"))?;
                // Null when the patient is unknown: no shift can be derived, and the true date
                // must not land instead.
                (Transform::ShiftDate { patient, max_days: *max_days }, kind, true)
            }
            FieldAction::TruncateTime { unit, .. } => {
                need(kind == Some(ColumnKind::TimestampMicros), "a timestamp field")?;
                (Transform::TruncateTime { unit_micros: unit.micros() }, ColumnKind::TimestampMicros, nullable)
            }
            FieldAction::Bucket { width, .. } => {
                need(width.is_finite() && *width > 0.0, "a positive `width`")?;
                let transform = match &kind {
                    Some(ColumnKind::Int32 | ColumnKind::Int64) => {
                        need(width.fract() == 0.0 && *width <= i64::MAX as f64, "a whole-number `width` here")?;
                        Transform::BucketInt { width: *width as i64 }
                    }
                    Some(ColumnKind::Float64) => Transform::BucketFloat { width: *width },
                    _ => return Err("`bucket` needs an int, long, float or double field".to_owned()),
                };
                (transform, kind.unwrap_or(ColumnKind::Float64), true)
            }
        }))
    }

    /// Column names must be plain identifiers, and a derived column must not pass for a field
    /// of the schema: it may not take another field's name, nor the name of the sensitive field
    /// it is derived from (a `postcode` column must never hold anything but the full postcode,
    /// and no policy may land that).
    fn check_column_name(
        &self,
        fields: &Fields<'_>,
        field: &RecordField,
        sensitivity: Option<Sensitivity>,
        transform: Transform,
        name: &str,
    ) -> Result<()> {
        let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let reason = if !plain {
            format!("column name `{}` must be letters, digits and `_`, not starting with a digit", name.escape_debug())
        } else if transform != Transform::Copy && name != field.name && fields.index(name).is_some() {
            format!("column `{name}` would pass for field `{name}` of the schema; choose a name of its own")
        } else if transform != Transform::Copy && name == field.name && sensitivity.is_some() {
            format!(
                "`{name}` is a sensitive field, so its transformed column must not keep the name `{name}`; \
                 choose a name saying what the column holds"
            )
        } else {
            return Ok(());
        };
        Err(self.mismatch(fields.version, &field.name, reason))
    }

    fn mismatch(&self, version: &SchemaVersion, field: &str, reason: String) -> Error {
        Error::PolicyMismatch { policy: self.label(), subject: version.label(), field: field.to_owned(), reason }
    }
}

/// The fields of the record being planned, with their landed types.
struct Fields<'s> {
    /// The schema version planned against.
    version: &'s SchemaVersion,
    /// Its record's fields.
    fields: &'s [RecordField],
}

impl Fields<'_> {
    fn index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// Landed kind (if any) and nullability of a field.
    fn kind(&self, index: usize) -> (Option<ColumnKind>, bool) {
        let (nullable, inner) = unwrap_nullable(&self.fields[index].schema);
        (ColumnKind::of(inner), nullable)
    }

    /// The sensitivity label of each field of a (possibly nullable) record field, by name.
    fn nested_sensitivity(&self, index: usize) -> std::result::Result<Vec<(String, Option<Sensitivity>)>, String> {
        let Schema::Record(record) = unwrap_nullable(&self.fields[index].schema).1 else { return Ok(Vec::new()) };
        record
            .fields
            .iter()
            .map(|f| Sensitivity::of(f).map(|label| (f.name.clone(), label)).map_err(|r| format!("`{}`: {r}", f.name)))
            .collect()
    }

    /// The first nested field of a record field whose label forbids landing it as it is.
    fn nested_refusing_keep(&self, index: usize) -> std::result::Result<Option<String>, String> {
        Ok(self
            .nested_sensitivity(index)?
            .into_iter()
            .find(|(_, label)| label.is_some_and(|l| forbids(l, &FieldAction::Keep {}).is_some()))
            .map(|(name, _)| name))
    }

    /// Whether a field is a plain string (not an enum or UUID).
    fn is_string(&self, index: usize) -> bool {
        matches!(unwrap_nullable(&self.fields[index].schema).1, Schema::String)
    }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
fn parse_iso_date(text: &str) -> Option<i32> {
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((date - epoch).num_days()).ok()
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
