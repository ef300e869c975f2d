//! The data dictionary written next to every dataset (`<lake>/<purpose>/<subject>/_dictionary.md`):
//! for an analyst, what each column is, its type, which source field it came from and what the
//! purpose's policy did to it; and which source fields were not landed, and why.
//!
//! It is generated from the schema's field documentation and the policy, so it cannot drift
//! from what the lander does. Files whose names start with `_` are skipped by pyarrow, Spark and
//! DuckDB globs over `*.parquet`, so the dictionary never gets in the way of reading the data.

use std::fmt::Write as _;

use apache_avro::Schema;
use sluice_schemas::SchemaVersion;

use crate::{
    Result,
    lake::storage::LakeStorage,
    policy::{ColumnKind, EventTimePartition, FieldAction, LandingPlan, Policy},
};

/// Name of the dictionary file in each dataset directory.
pub const DICTIONARY_FILE: &str = "_dictionary.md";

/// The dictionary of one dataset, as Markdown.
pub fn render(policy: &Policy, version: &SchemaVersion, plan: &LandingPlan) -> String {
    let Schema::Record(record) = version.schema() else { return String::new() };
    let actions = policy.actions(&plan.subject);
    let action_of = |field: &str| actions.and_then(|a| a.get(field));
    let mut out = String::new();
    let _ = writeln!(out, "# {} / {}\n", policy.purpose(), plan.subject);
    let _ = writeln!(out, "{}\n", record.doc.as_deref().unwrap_or("").trim());
    let _ = writeln!(out, "- Purpose: `{}`. {}", policy.purpose(), policy.description());
    let _ = writeln!(out, "- Policy: `{}` (`{}`), SHA-256 `{}`.", policy.label(), policy.origin(), policy.hash());
    let _ = writeln!(
        out,
        "- Read with schema `{}` v{} (fingerprint `{:016x}`); events written with older versions are read as this one.",
        plan.subject, plan.reader_version, plan.reader_fingerprint
    );
    let _ = writeln!(
        out,
        "- {}",
        match plan.event_time_partition {
            EventTimePartition::Day =>
                "Files are partitioned by `event_date` (UTC date of the event time as landed), one directory per date.",
            EventTimePartition::Month =>
                "Files are partitioned by `event_month` (`YYYY-MM`, UTC month of the event time as landed), one directory per month.",
        }
    );
    let _ = writeln!(out, "- Every file records the policy hash and key id in its Parquet key-value metadata.\n");
    let _ = writeln!(out, "## Columns\n");
    let _ = writeln!(out, "| column | type | from field | what was done | meaning of the source field |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for column in &plan.columns {
        let field = &record.fields[column.field_index];
        let treatment = action_of(&field.name).map_or_else(|| "kept".to_owned(), describe);
        let _ = writeln!(
            out,
            "| `{}` | {}{} | `{}` | {} | {} |",
            column.name,
            type_name(&column.kind),
            if column.nullable { ", may be null" } else { "" },
            field.name,
            treatment,
            cell(field.doc.as_deref().unwrap_or(""))
        );
    }
    let _ = writeln!(out, "\n## Source fields not landed\n");
    let _ = writeln!(out, "| field | why |");
    let _ = writeln!(out, "|---|---|");
    for field in &record.fields {
        if let Some(FieldAction::Drop { reason }) = action_of(&field.name) {
            let _ =
                writeln!(out, "| `{}` | {} |", field.name, cell(reason.as_deref().unwrap_or("dropped by the policy")));
        }
    }
    out
}

/// Writes the dictionary of one dataset (its key prefix, `<purpose>/<subject>`) next to its
/// data, atomically.
pub fn write(storage: &LakeStorage, dataset: &str, text: &str) -> Result<()> {
    storage.put(&format!("{dataset}/{DICTIONARY_FILE}"), bytes::Bytes::from(text.to_owned())).map(drop)
}

fn describe(action: &FieldAction) -> String {
    match action {
        FieldAction::Keep {} => "kept as sent".to_owned(),
        FieldAction::Drop { .. } => "not landed".to_owned(),
        FieldAction::Hmac { .. } => "keyed HMAC-SHA256 (hex) under this purpose's key, in a domain of this field's own: \
             the same value gives the same pseudonym within this purpose only (64 hex digits; 32 for a record identifier)"
            .to_owned(),
        FieldAction::DateYear { .. } => "reduced to the year".to_owned(),
        FieldAction::DateYearMonth { .. } => "reduced to year and month (`YYYY-MM`)".to_owned(),
        FieldAction::AgeBand { at, at_date, width, top, .. } => {
            let when = match (at, at_date) {
                (Some(field), _) => format!("at `{field}`"),
                (None, Some(date)) => format!("on {date} (the same band at every event; null if born after it)"),
                (None, None) => String::new(),
            };
            format!("age in {width}-year bands {when} (`{top}+` for {top} and over); the date itself is not landed")
        }
        FieldAction::PostcodeOutward { .. } => "postcode district (outward code, e.g. `LS6`)".to_owned(),
        FieldAction::PostcodeSector { .. } => "postcode sector (e.g. `LS6 2`)".to_owned(),
        FieldAction::ShiftDate { max_days, .. } => format!(
            "shifted by the patient's own offset, to the microsecond, of up to {max_days} days either way (the same for all of the patient's dates and times in this purpose; a date moves to the date its midnight moves to): intervals are true, calendar dates and times of day are not"
        ),
        FieldAction::TruncateTime { unit, .. } => {
            format!("cut down to the start of its {} (UTC)", unit.name())
        }
        FieldAction::KeepFields { fields, .. } => {
            let fields: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
            format!("only the nested fields {} kept as sent; the others not landed", fields.join(", "))
        }
        FieldAction::Bucket { width, .. } => format!("lower bound of its bucket of width {width}"),
    }
}

fn type_name(kind: &ColumnKind) -> String {
    match kind {
        ColumnKind::Utf8 => "text".to_owned(),
        ColumnKind::Int32 => "32-bit integer".to_owned(),
        ColumnKind::Int64 => "64-bit integer".to_owned(),
        ColumnKind::Float64 => "double".to_owned(),
        ColumnKind::Boolean => "boolean".to_owned(),
        ColumnKind::Date32 => "date".to_owned(),
        ColumnKind::TimestampMicros => "timestamp (microseconds, UTC)".to_owned(),
        ColumnKind::Decimal128 { precision, scale } => {
            format!("decimal({precision},{scale}): exact, up to {precision} digits, {scale} after the point")
        }
        ColumnKind::Struct(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|f| {
                    format!("`{}` {}{}", f.name, type_name(&f.kind), if f.nullable { " (may be null)" } else { "" })
                })
                .collect();
            format!("record of {}", fields.join(", "))
        }
        ColumnKind::List { item, item_nullable } => {
            format!("list of {}{}", type_name(item), if *item_nullable { " (items may be null)" } else { "" })
        }
    }
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use sluice_schemas::Catalogue;

    use super::*;

    #[test]
    fn the_research_dictionary_explains_every_column_and_every_dropped_field() {
        let policy = Policy::builtin("research").unwrap();
        let version = Catalogue::embedded().latest("diagnosis").unwrap();
        let plan = policy.plan(version).unwrap();
        let text = render(&policy, version, &plan);
        for column in &plan.columns {
            assert!(text.contains(&format!("| `{}` |", column.name)), "{} missing:\n{text}", column.name);
        }
        assert!(
            text.contains("| `patient_pseudonym` | text, may be null | `nhs_number` | keyed HMAC-SHA256"),
            "{text}"
        );
        assert!(text.contains("| `onset_date_shifted` | date, may be null | `onset_date` | shifted by"), "{text}");
        assert!(text.contains("| `family_name` | direct identifier |"), "{text}");
        assert!(text.contains(&policy.hash()));
        assert!(
            text.contains("The patient's 10-digit NHS number") || text.contains("NHS number"),
            "schema docs carried"
        );
    }

    #[test]
    fn the_dictionary_describes_pseudonym_decimal_record_and_list_columns() {
        let policy = Policy::builtin("planning").unwrap();
        let version = Catalogue::embedded().latest("observation").unwrap();
        let plan = policy.plan(version).unwrap();
        let text = render(&policy, version, &plan);
        assert!(
            text.contains("| `event_pseudonym` | text | `event_id` | keyed HMAC-SHA256 (hex) under this purpose's key"),
            "{text}"
        );
        assert!(text.contains("32 for a record identifier"), "{text}");
        assert!(
            text.contains(
                "| `value_decimal` | decimal(18,6): exact, up to 18 digits, 6 after the point, may be null | \
                 `value_decimal` | kept as sent | Added in version 3"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| `reference_range` | record of `low` decimal(18,6): exact, up to 18 digits, 6 after the point \
                 (may be null), `high` decimal(18,6): exact, up to 18 digits, 6 after the point (may be null), \
                 may be null | `reference_range` | only the nested fields `low`, `high` kept as sent; the others not \
                 landed |"
            ),
            "{text}"
        );
        assert!(text.contains("| `display` | free text as far as sluice can tell"), "{text}");
        assert!(text.contains("| `interpretation_codes` | list of text, may be null |"), "{text}");
        let adt = Catalogue::embedded().latest("adt").unwrap();
        let text = render(&policy, adt, &policy.plan(adt).unwrap());
        assert!(text.contains("| `occurred_at_hour` | timestamp (microseconds, UTC) | `occurred_at` | cut down to the start of its hour (UTC) |"), "{text}");
        assert!(
            text.contains("age in 5-year bands on 2026-04-01 (the same band at every event; null if born after it)"),
            "{text}"
        );
    }
}
