//! Decoded record -> cell -> Arrow -> Parquet -> read back, for the types that need more than a
//! primitive column: event pseudonyms of UUIDs, decimals, nested records and lists, and records
//! of older schema versions read with the newest one.

use std::sync::Arc;

use apache_avro::{Decimal, types::Value};
use arrow::{
    array::{Array, AsArray, RecordBatch},
    datatypes::{DataType, Decimal128Type},
};
use parquet::{
    arrow::{ArrowWriter, arrow_reader::ParquetRecordBatchReaderBuilder},
    basic::{ConvertedType, LogicalType, Repetition},
    schema::types::Type,
};
use proptest::prelude::*;
use sluice_schemas::{Catalogue, Decoder, Encoder, Framing, SchemaVersion};

use super::RowBuffer;
use crate::{
    policy::{ColumnKind, LandingPlan},
    pseudonymise::{Cell, PurposeKey, pseudonymise},
    test_support::{policy, record, single_version_catalogue},
};

const EVENT_ID: &str = "0b6c3b0e-6f1a-4a55-9a52-6a3f7f0d2c11";

/// The newest `observation` version, as the lander reads every observation (v3 added the
/// decimal, range and code fields these tests are about).
fn newest() -> &'static SchemaVersion {
    Catalogue::embedded().latest("observation").unwrap()
}

/// Pseudonymises the event id, keeps the v3 fields (the reference range without its text),
/// drops everything else.
fn plan() -> Arc<LandingPlan> {
    let keep = r#""keep""#;
    let overrides = [
        ("event_id", r#"{ action = "hmac", column = "event_pseudonym" }"#),
        ("value_decimal", keep),
        ("reference_range", r#"{ action = "keep_fields", column = "reference_range", fields = ["low", "high"] }"#),
        ("interpretation_codes", keep),
    ];
    Arc::new(policy(newest(), &overrides).plan(newest()).unwrap())
}

fn key() -> PurposeKey {
    PurposeKey::new("k", &[7; 32]).unwrap()
}

/// The Avro value of a `decimal(18,6)` as sluice's producers write it (eight bytes).
fn decimal(unscaled: i64) -> Value {
    Value::Decimal(Decimal::from(unscaled.to_be_bytes()))
}

fn nullable(value: Option<Value>) -> Value {
    match value {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(value) => Value::Union(1, Box::new(value)),
    }
}

fn range(low: Option<i64>, high: Option<i64>, text: Option<&str>) -> Value {
    Value::Record(vec![
        ("low".into(), nullable(low.map(decimal))),
        ("high".into(), nullable(high.map(decimal))),
        ("text".into(), nullable(text.map(|t| Value::String(t.into())))),
    ])
}

/// An observation with the given fields (those v3 added), through the encoder and decoder as a
/// consumer reads it.
fn observation_with(value: Option<i64>, range_: Option<Value>, codes: Option<Vec<&str>>) -> Value {
    let event_id = Value::Uuid(EVENT_ID.parse().unwrap());
    let mut values = vec![("event_id", event_id), ("nhs_number", Value::String("9434765919".into()))];
    values.extend(value.map(|v| ("value_decimal", decimal(v))));
    values.extend(range_.map(|r| ("reference_range", r)));
    values.extend(
        codes.map(|c| ("interpretation_codes", Value::Array(c.into_iter().map(|s| Value::String(s.into())).collect()))),
    );
    round_trip(newest(), record(newest(), &values))
}

fn round_trip(version: &SchemaVersion, value: Value) -> Value {
    let catalogue = Catalogue::embedded();
    let bytes = Encoder::new(catalogue, Framing::SingleObject).encode(version, &value).unwrap();
    let decoded = Decoder::new(catalogue).decode(&bytes).unwrap();
    assert_eq!(decoded.reader.version(), newest().version(), "read with the newest version");
    decoded.value
}

/// Writes the rows as one Parquet file and returns its top-level schema fields and the batch
/// read back with the Parquet reader.
fn through_parquet(plan: &Arc<LandingPlan>, rows: Vec<Vec<Cell>>) -> (Vec<Arc<Type>>, RecordBatch) {
    let mut buffer = RowBuffer::new(plan.clone());
    for row in rows {
        buffer.push(row);
    }
    let batch = buffer.finish();
    let file = tempfile::tempfile().unwrap();
    let mut writer = ArrowWriter::try_new(file.try_clone().unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let fields = builder.metadata().file_metadata().schema_descr().root_schema().get_fields().to_vec();
    let read: Vec<RecordBatch> = builder.build().unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(read.len(), 1);
    (fields, read.into_iter().next().unwrap())
}

fn parquet_field<'f>(fields: &'f [Arc<Type>], name: &str) -> &'f Type {
    fields.iter().find(|f| f.name() == name).unwrap_or_else(|| panic!("no Parquet field {name}"))
}

#[test]
fn the_plan_types_pseudonym_decimal_struct_and_list_columns() {
    let plan = plan();
    let kind = |name: &str| plan.columns.iter().find(|c| c.name == name).map(|c| c.kind.clone()).unwrap();
    assert_eq!(kind("event_pseudonym"), ColumnKind::Utf8);
    assert_eq!(kind("value_decimal"), ColumnKind::Decimal128 { precision: 18, scale: 6 });
    let ColumnKind::Struct(fields) = kind("reference_range") else { panic!("reference_range is a struct") };
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["low", "high"]);
    assert!(fields.iter().all(|f| f.nullable));
    assert_eq!(fields[0].kind, ColumnKind::Decimal128 { precision: 18, scale: 6 });
    assert_eq!(
        kind("interpretation_codes"),
        ColumnKind::List { item: Box::new(ColumnKind::Utf8), item_nullable: false }
    );
    let event = plan.arrow_schema.field_with_name("event_pseudonym").unwrap();
    assert_eq!(event.data_type(), &DataType::Utf8);
    assert_eq!(event.extension_type_name(), None);
}

#[test]
fn a_uuid_a_policy_may_keep_lands_as_its_canonical_text() {
    // Spark cannot read Parquet's UUID type, so no landed column has it.
    let catalogue = single_version_catalogue(
        "devices",
        r#"{"name": "nhs_number", "type": "string", "sensitivity": "direct-identifier"},
            {"name": "device", "sensitivity": "coded", "type": {"type": "string", "logicalType": "uuid"}}"#,
    );
    let version = catalogue.latest("devices").unwrap();
    let plan = policy(version, &[("device", r#""keep""#)]).plan(version).unwrap();
    assert_eq!(plan.columns[0].kind, ColumnKind::Utf8);
    let row = pseudonymise(&plan, &key(), &record(version, &[("device", Value::Uuid(EVENT_ID.parse().unwrap()))]));
    assert_eq!(row.unwrap(), [Cell::Utf8(EVENT_ID.to_owned())]);
}

#[test]
fn pseudonym_decimal_struct_and_list_land_with_their_parquet_logical_types_and_exact_values() {
    let plan = plan();
    let key = key();
    let rows = [
        observation_with(
            Some(4_150_000),
            Some(range(Some(3_500_000), Some(5_300_000), Some("3.5-5.3"))),
            Some(vec!["N"]),
        ),
        observation_with(Some(-1), Some(range(None, Some(5_000_000), Some("<5.0"))), Some(vec!["HH", "A"])),
        observation_with(None, None, None),
        observation_with(Some(999_999_999_999_999_999), None, Some(vec![])),
    ];
    let cells: Vec<Vec<Cell>> = rows.iter().map(|r| pseudonymise(&plan, &key, r).unwrap()).collect();
    let (fields, batch) = through_parquet(&plan, cells);

    // The Parquet schema: STRING, DECIMAL(18,6), a group, a LIST.
    let event = parquet_field(&fields, "event_pseudonym");
    assert_eq!(event.get_basic_info().logical_type_ref(), Some(&LogicalType::String));
    assert_eq!(event.get_basic_info().repetition(), Repetition::REQUIRED);
    let value = parquet_field(&fields, "value_decimal");
    assert_eq!(value.get_basic_info().logical_type_ref(), Some(&LogicalType::decimal(6, 18)));
    let range_group = parquet_field(&fields, "reference_range");
    assert!(range_group.is_group());
    let children: Vec<(&str, Option<&LogicalType>)> =
        range_group.get_fields().iter().map(|f| (f.name(), f.get_basic_info().logical_type_ref())).collect();
    let decimal_type = LogicalType::decimal(6, 18);
    assert_eq!(children, [("low", Some(&decimal_type)), ("high", Some(&decimal_type))]);
    let codes = parquet_field(&fields, "interpretation_codes");
    assert!(codes.is_group());
    assert_eq!(codes.get_basic_info().converted_type(), ConvertedType::LIST);
    assert_eq!(codes.get_basic_info().logical_type_ref(), Some(&LogicalType::List));

    // Read back: the Arrow types and the values, exactly.
    let pseudonyms = batch.column_by_name("event_pseudonym").unwrap().as_string::<i32>();
    let expected: uuid::Uuid = EVENT_ID.parse().unwrap();
    assert!((0..4).all(|row| pseudonyms.value(row) == key.record_pseudonym("event_id", expected.as_bytes())));

    let values = batch.column_by_name("value_decimal").unwrap().as_primitive::<Decimal128Type>();
    assert_eq!(values.data_type(), &DataType::Decimal128(18, 6));
    assert_eq!(values.value_as_string(0), "4.150000");
    assert_eq!(values.value_as_string(1), "-0.000001");
    assert!(values.is_null(2));
    assert_eq!(values.value(3), 999_999_999_999_999_999);

    let ranges = batch.column_by_name("reference_range").unwrap().as_struct();
    assert_eq!(ranges.num_columns(), 2, "the range's text is not landed");
    let (low, high) =
        (ranges.column(0).as_primitive::<Decimal128Type>(), ranges.column(1).as_primitive::<Decimal128Type>());
    assert_eq!((low.value(0), high.value(0)), (3_500_000, 5_300_000));
    assert!(low.is_null(1));
    assert_eq!(high.value(1), 5_000_000);
    assert!(ranges.is_valid(1) && ranges.is_null(2) && ranges.is_null(3));

    let lists = batch.column_by_name("interpretation_codes").unwrap().as_list::<i32>();
    let items = |row: usize| -> Vec<String> {
        let list = lists.value(row);
        let strings = list.as_string::<i32>();
        (0..strings.len()).map(|i| strings.value(i).to_owned()).collect()
    };
    assert_eq!(items(0), ["N"]);
    assert_eq!(items(1), ["HH", "A"]);
    assert!(lists.is_null(2));
    assert!(lists.is_valid(3) && items(3).is_empty(), "an empty list is not a null one");
}

#[test]
fn older_versions_read_with_the_newest_land_nulls_in_the_new_columns() {
    let plan = plan();
    for version in [1, 2] {
        let old = Catalogue::embedded().version("observation", version).unwrap();
        let value = round_trip(
            old,
            record(
                old,
                &[("event_id", Value::Uuid(EVENT_ID.parse().unwrap())), ("nhs_number", Value::String("x".into()))],
            ),
        );
        let row = pseudonymise(&plan, &key(), &value).unwrap();
        let (_, batch) = through_parquet(&plan, vec![row]);
        for column in ["value_decimal", "reference_range", "interpretation_codes"] {
            assert!(batch.column_by_name(column).unwrap().is_null(0), "v{version} {column}");
        }
        assert!(batch.column_by_name("event_pseudonym").unwrap().is_valid(0));
    }
}

#[test]
fn a_decimal_too_wide_for_its_column_is_refused_not_truncated() {
    let plan = plan();
    // 10^18 needs 19 digits; DECIMAL(18,6) holds 18. apache-avro does not check this on reading.
    let too_wide = Value::Decimal(Decimal::from(1_000_000_000_000_000_000i128.to_be_bytes()));
    let mut value = observation_with(None, None, None);
    let Value::Record(fields) = &mut value else { unreachable!() };
    fields.iter_mut().find(|(name, _)| name == "value_decimal").unwrap().1 = nullable(Some(too_wide.clone()));
    let error = pseudonymise(&plan, &key(), &value).unwrap_err();
    assert_eq!(error, "column `value_decimal` of `observation`: a decimal has more digits than DECIMAL(18,6) holds");
    assert!(!error.contains("1000000"), "no value in the error");

    // Inside the nested record too, naming the nested field.
    let Value::Record(fields) = &mut value else { unreachable!() };
    fields.iter_mut().find(|(name, _)| name == "value_decimal").unwrap().1 = nullable(None);
    let wide_range = Value::Record(vec![
        ("low".into(), nullable(Some(too_wide))),
        ("high".into(), nullable(None)),
        ("text".into(), nullable(None)),
    ]);
    fields.iter_mut().find(|(name, _)| name == "reference_range").unwrap().1 = nullable(Some(wide_range));
    let error = pseudonymise(&plan, &key(), &value).unwrap_err();
    assert_eq!(
        error,
        "column `reference_range` of `observation`: `low`: a decimal has more digits than DECIMAL(18,6) holds"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn decimals_ranges_and_codes_survive_parquet_exactly(
        rows in prop::collection::vec(
            (
                proptest::option::of(-999_999_999_999_999_999i64..=999_999_999_999_999_999),
                proptest::option::of((
                    proptest::option::of(any::<i64>().prop_map(|n| n % 1_000_000_000_000_000_000)),
                    proptest::option::of(any::<i64>().prop_map(|n| n % 1_000_000_000_000_000_000)),
                    proptest::option::of("[ -~]{0,8}"),
                )),
                proptest::option::of(prop::collection::vec("[A-Z]{1,2}", 0..4)),
            ),
            1..20,
        ),
    ) {
        let plan = plan();
        let key = key();
        let cells: Vec<Vec<Cell>> = rows
            .iter()
            .map(|(value, range_, codes)| {
                let range_ = range_.as_ref().map(|(low, high, text)| range(*low, *high, text.as_deref()));
                let codes = codes.as_ref().map(|c| c.iter().map(String::as_str).collect());
                pseudonymise(&plan, &key, &observation_with(*value, range_, codes)).unwrap()
            })
            .collect();
        let (_, batch) = through_parquet(&plan, cells);
        let values = batch.column_by_name("value_decimal").unwrap().as_primitive::<Decimal128Type>();
        let ranges = batch.column_by_name("reference_range").unwrap().as_struct();
        let lows = ranges.column(0).as_primitive::<Decimal128Type>();
        let highs = ranges.column(1).as_primitive::<Decimal128Type>();
        let lists = batch.column_by_name("interpretation_codes").unwrap().as_list::<i32>();
        for (row, (value, range_, codes)) in rows.iter().enumerate() {
            prop_assert_eq!(values.is_valid(row).then(|| values.value(row)), value.map(i128::from));
            prop_assert_eq!(ranges.is_valid(row), range_.is_some());
            if let Some((low, high, _)) = range_ {
                prop_assert_eq!(lows.is_valid(row).then(|| lows.value(row)), low.map(i128::from));
                prop_assert_eq!(highs.is_valid(row).then(|| highs.value(row)), high.map(i128::from));
            }
            prop_assert_eq!(lists.is_valid(row), codes.is_some());
            if let Some(codes) = codes {
                let list = lists.value(row);
                let strings = list.as_string::<i32>();
                let read: Vec<&str> = (0..strings.len()).map(|i| strings.value(i)).collect();
                prop_assert_eq!(read, codes.iter().map(String::as_str).collect::<Vec<_>>());
            }
        }
    }
}
