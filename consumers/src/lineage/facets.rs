//! OpenLineage facets: the JSON objects attached to runs, jobs and datasets. Each carries the
//! `_producer` and `_schemaURL` the spec requires. Only names, types and counts go in: never a
//! field value.

use serde_json::{Map, Value, json};

use super::PRODUCER;
use crate::policy::{ColumnKind, LandingPlan};

/// Where the facets' JSON schemas are published.
const FACETS: &str = "https://openlineage.io/spec/facets";

/// A facet of the given spec file and version with its fields.
fn facet(spec: &str, version: &str, fields: Value) -> Value {
    let mut facet = Map::new();
    facet.insert("_producer".to_owned(), Value::from(PRODUCER));
    facet.insert("_schemaURL".to_owned(), Value::from(format!("{FACETS}/{version}/{spec}.json#/$defs/{spec}")));
    if let Value::Object(fields) = fields {
        facet.extend(fields);
    }
    Value::Object(facet)
}

/// `SchemaDatasetFacet` with the given fields (`name`, `type`, nested `fields`).
pub(super) fn schema(fields: Vec<Value>) -> Value {
    facet("SchemaDatasetFacet", "1-1-1", json!({ "fields": fields }))
}

/// `OutputStatisticsOutputDatasetFacet`.
pub(super) fn output_statistics(rows: u64, bytes: u64, files: u64) -> Value {
    facet("OutputStatisticsOutputDatasetFacet", "1-0-2", json!({ "rowCount": rows, "size": bytes, "fileCount": files }))
}

/// `InputStatisticsInputDatasetFacet`: messages consumed from a topic.
pub(super) fn input_statistics(messages: u64) -> Value {
    facet("InputStatisticsInputDatasetFacet", "1-0-0", json!({ "rowCount": messages }))
}

/// `ErrorMessageRunFacet`.
pub(super) fn error_message(message: &str) -> Value {
    facet("ErrorMessageRunFacet", "1-0-1", json!({ "message": message, "programmingLanguage": "Rust" }))
}

/// `JobTypeJobFacet` of a streaming landing job.
pub(super) fn job_type() -> Value {
    facet(
        "JobTypeJobFacet",
        "2-0-3",
        json!({ "processingType": "STREAMING", "integration": "SLUICE", "jobType": "LANDING" }),
    )
}

/// Schema fields of an Avro record schema, from its canonical JSON form: each field's name, its
/// type (`string`, `long`, `long (timestamp-micros)`, a nullable union as its other branch,
/// `array<...>`, `map<...>`, `enum`, `record` with nested fields) and its doc.
pub(super) fn avro_fields(schema: &Value) -> Vec<Value> {
    schema["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|field| {
            let mut out = Map::new();
            out.insert("name".to_owned(), field["name"].clone());
            let ty = &field["type"];
            out.insert("type".to_owned(), Value::from(avro_type(ty)));
            if let Some(doc) = field["doc"].as_str() {
                out.insert("description".to_owned(), Value::from(doc));
            }
            if let Some(record) = record_of(ty) {
                out.insert("fields".to_owned(), Value::from(avro_fields(record)));
            }
            Value::Object(out)
        })
        .collect()
}

/// The record a field's type is (or, in a nullable union, holds).
fn record_of(ty: &Value) -> Option<&Value> {
    match ty {
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("record") => Some(ty),
        Value::Array(branches) => {
            let others: Vec<&Value> = branches.iter().filter(|b| b.as_str() != Some("null")).collect();
            if let [only] = others.as_slice() { record_of(only) } else { None }
        }
        _ => None,
    }
}

/// A type name for an Avro type in canonical JSON.
fn avro_type(ty: &Value) -> String {
    match ty {
        Value::String(name) => name.clone(),
        Value::Array(branches) => {
            let others: Vec<String> = branches.iter().filter(|b| b.as_str() != Some("null")).map(avro_type).collect();
            others.join(" | ")
        }
        Value::Object(o) => {
            let base = o.get("type").map(avro_type).unwrap_or_default();
            match (base.as_str(), o.get("logicalType").and_then(Value::as_str)) {
                (_, Some(logical)) => format!("{base} ({logical})"),
                ("array", _) => format!("array<{}>", o.get("items").map(avro_type).unwrap_or_default()),
                ("map", _) => format!("map<{}>", o.get("values").map(avro_type).unwrap_or_default()),
                _ => base,
            }
        }
        _ => String::new(),
    }
}

/// Schema fields of a landing plan's output columns: the columns the Parquet files have.
pub(super) fn plan_fields(plan: &LandingPlan) -> Vec<Value> {
    plan.columns.iter().map(|c| column(&c.name, &c.kind)).collect()
}

fn column(name: &str, kind: &ColumnKind) -> Value {
    let mut out = Map::new();
    out.insert("name".to_owned(), Value::from(name));
    out.insert("type".to_owned(), Value::from(kind_name(kind)));
    if let ColumnKind::Struct(fields) = kind {
        out.insert("fields".to_owned(), fields.iter().map(|f| column(&f.name, &f.kind)).collect());
    }
    Value::Object(out)
}

/// The Parquet/Arrow type of an output column, as people write it.
fn kind_name(kind: &ColumnKind) -> String {
    match kind {
        ColumnKind::Utf8 => "string".to_owned(),
        ColumnKind::Int32 => "int32".to_owned(),
        ColumnKind::Int64 => "int64".to_owned(),
        ColumnKind::Float64 => "double".to_owned(),
        ColumnKind::Boolean => "boolean".to_owned(),
        ColumnKind::Date32 => "date".to_owned(),
        ColumnKind::TimestampMicros => "timestamp[us, UTC]".to_owned(),
        ColumnKind::Decimal128 { precision, scale } => format!("decimal({precision}, {scale})"),
        ColumnKind::Struct(_) => "struct".to_owned(),
        ColumnKind::List { item, .. } => format!("list<{}>", kind_name(item)),
    }
}
