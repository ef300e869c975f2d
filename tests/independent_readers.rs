//! The lake read by the tools analysts use, not by sluice: pyarrow and DuckDB (pinned in
//! `tests/readers/requirements.txt`) read every dataset of a demo run through
//! `tests/readers/read_lake.py`, and what they see must match what the lander reported: the same
//! rows, each event once, every row in its `event_date` (or, for research, `event_month`) partition, microsecond UTC timestamps,
//! real DATE and BOOLEAN and DOUBLE columns, the provenance metadata of the policy and key used,
//! and a data dictionary next to each dataset that explains every column.

mod support;

use std::{collections::BTreeMap, path::Path, process::Command};

use serde_json::{Value, json};
use sluice::{demo, keys, topics::Topics};
use sluice_consumers::policy::Policy;
use sluice_producers::{SyntheticSource, SyntheticSourceConfig, clinical::ResultDecimal};
use sluice_schemas::Framing;
use sluice_schemas::apache_avro::types::Value as Avro;

fn read_with_python(lake: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/read_lake.py");
    let output = Command::new("python3").arg(script).arg(lake).output().expect("python3 runs");
    assert!(
        output.status.success(),
        "the readers failed (install them with `python3 -m pip install -r tests/readers/requirements.txt`):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_and_duckdb_read_every_dataset_with_the_right_types_rows_and_provenance() {
    let lake = tempfile::tempdir().unwrap();
    let purposes = vec!["direct-care".to_owned(), "research".to_owned()];
    let keys = keys::generate(&purposes);
    let source = SyntheticSourceConfig { patients: 300, events: 3_000, seed: 3, ..SyntheticSourceConfig::default() };
    let summary = demo::run(demo::DemoOptions {
        source: source.clone(),
        keys: keys.clone(),
        purposes: purposes.clone(),
        lake_dir: lake.path().to_owned(),
        brokers: None,
        properties: Vec::new(),
        framing: Framing::SingleObject,
        topics: Topics::embedded(),
        max_buffered_rows: 1_500,
        show_progress: false,
    })
    .await
    .unwrap();
    assert_eq!(summary.problems(), Vec::<String>::new());

    let expected_lab_results = lab_results_sent(&source);
    let seen = read_with_python(lake.path());
    let datasets = seen.as_object().unwrap();
    assert_eq!(datasets.len(), 6, "three subjects for each of two purposes: {:?}", datasets.keys());
    let mut rows_per_purpose: BTreeMap<String, u64> = BTreeMap::new();
    for (dataset, views) in datasets {
        let (purpose, subject) = dataset.split_once('/').unwrap();
        let (arrow, duck) = (&views["pyarrow"], &views["duckdb"]);
        let landed: u64 = summary
            .landing
            .files
            .iter()
            .filter(|f| f.key.starts_with(&format!("{purpose}/{subject}/")))
            .map(|f| f.rows as u64)
            .sum();
        assert_eq!(arrow["rows"], landed, "{dataset}: pyarrow reads every landed row");
        assert_eq!(duck["rows"], landed, "{dataset}: DuckDB reads every landed row");
        assert_eq!(arrow["distinct_event_ids"], landed, "{dataset}: each event once");
        assert_eq!(duck["distinct_event_ids"], landed, "{dataset}: each event once");
        assert_eq!(duck["outside_partition"], 0, "{dataset}: every row in its event_date or event_month partition");
        *rows_per_purpose.entry(purpose.to_owned()).or_default() += landed;

        let arrow_types = arrow["types"].as_object().unwrap();
        let duck_types = duck["types"].as_object().unwrap();
        let time = if purpose == "research" { "occurred_at_shifted" } else { "occurred_at" };
        assert_eq!(arrow_types[time], "timestamp[us, tz=UTC]", "{dataset}");
        assert_eq!(duck_types[time], "TIMESTAMP WITH TIME ZONE", "{dataset}");
        if purpose == "research" {
            // The research policy shifts dates and so partitions by month.
            assert_eq!(duck_types["event_month"], "VARCHAR", "{dataset}: the hive partition reads as text");
            assert!(!duck_types.contains_key("event_date"), "{dataset}");
        } else {
            assert_eq!(duck_types["event_date"], "DATE", "{dataset}: the hive partition reads as a date");
        }
        for (column, kind) in arrow_types {
            assert!(!kind.as_str().unwrap().contains("[ns"), "{dataset}.{column} is {kind}: never nanoseconds");
        }
        match subject {
            "diagnosis" => {
                let onset = if purpose == "research" { "onset_date_shifted" } else { "onset_date" };
                assert_eq!(arrow_types[onset], "date32[day]", "{dataset}");
                assert_eq!(duck_types[onset], "DATE", "{dataset}");
                assert_eq!(duck_types["is_primary"], "BOOLEAN", "{dataset}");
            }
            "observation" => {
                assert_eq!(duck_types["value"], "DOUBLE", "{dataset}");
                check_lab_results(dataset, arrow, duck, &expected_lab_results);
            }
            _ => {}
        }
        // Event ids are UUIDs: the Parquet UUID logical type, read as such by both readers.
        assert!(
            ["extension<arrow.uuid>", "uuid", "fixed_size_binary[16]"]
                .contains(&arrow_types["event_id"].as_str().unwrap()),
            "{dataset}: event_id is {}",
            arrow_types["event_id"]
        );
        assert_eq!(duck_types["event_id"], "UUID", "{dataset}");
        for identifier in ["nhs_number", "family_name", "given_name", "date_of_birth", "postcode", "address_line"] {
            assert!(!arrow_types.contains_key(identifier), "{dataset} has {identifier}");
        }

        // The data dictionary sits next to the data (and the readers above skipped it).
        let dictionary = std::fs::read_to_string(lake.path().join(dataset).join("_dictionary.md")).unwrap();
        for column in arrow_types.keys().filter(|c| !["event_date", "event_month"].contains(&c.as_str())) {
            assert!(dictionary.contains(&format!("| `{column}` |")), "{dataset}: {column} is not in the dictionary");
        }
        let metadata = &arrow["metadata"];
        assert_eq!(metadata["sluice.purpose"], purpose);
        assert_eq!(metadata["sluice.subject"], subject);
        assert_eq!(metadata["sluice.policy_hash"], Policy::builtin(purpose).unwrap().hash());
        assert_eq!(metadata["sluice.key_id"], keys[purpose].id());
    }
    assert_eq!(rows_per_purpose, summary.landing.landed);
}

/// What the source sent for the observation v3 fields, by event id, in the form `read_lake.py`
/// prints: `[value_decimal, [low, high, text] or null, codes or null]`, decimals as plain text
/// with their six digits after the point. Events of older versions have none of them.
fn lab_results_sent(config: &SyntheticSourceConfig) -> BTreeMap<String, Value> {
    fn inner(value: &Avro) -> Option<&Avro> {
        match value {
            Avro::Union(_, inner) if **inner == Avro::Null => None,
            Avro::Union(_, inner) => Some(inner),
            other => Some(other),
        }
    }
    fn field<'v>(fields: &'v [(String, Avro)], name: &str) -> Option<&'v Avro> {
        fields.iter().find(|(n, _)| n == name).and_then(|(_, v)| inner(v))
    }
    let decimal = |value: Option<&Avro>| -> Value {
        value.map_or(Value::Null, |v| {
            let unscaled = ResultDecimal::from_avro(v).unwrap().unscaled();
            let sign = if unscaled < 0 { "-" } else { "" };
            let magnitude = unscaled.unsigned_abs();
            json!(format!("{sign}{}.{:06}", magnitude / 1_000_000, magnitude % 1_000_000))
        })
    };
    let source = SyntheticSource::new(config.clone()).unwrap();
    source
        .clinical_events()
        .filter(|event| event.subject == "observation")
        .map(|event| {
            let Avro::Record(fields) = &event.value else { panic!("a record") };
            let range = field(fields, "reference_range").map_or(Value::Null, |range| {
                let Avro::Record(range) = range else { panic!("a record") };
                let text = field(range, "text").map_or(Value::Null, |t| match t {
                    Avro::String(text) => json!(text),
                    other => panic!("{other:?}"),
                });
                json!([decimal(field(range, "low")), decimal(field(range, "high")), text])
            });
            let codes = field(fields, "interpretation_codes").map_or(Value::Null, |codes| match codes {
                Avro::Array(items) => items
                    .iter()
                    .map(|item| match item {
                        Avro::String(code) => json!(code),
                        other => panic!("{other:?}"),
                    })
                    .collect(),
                other => panic!("{other:?}"),
            });
            (event.truth.event_id.to_string(), json!([decimal(field(fields, "value_decimal")), range, codes]))
        })
        .collect()
}

/// Both readers see, for every landed observation, exactly the decimal result, reference range
/// and interpretation codes the source sent, with DECIMAL(18,6), struct and list types.
fn check_lab_results(dataset: &str, arrow: &Value, duck: &Value, sent: &BTreeMap<String, Value>) {
    let (arrow_types, duck_types) = (&arrow["types"], &duck["types"]);
    assert_eq!(arrow_types["value_decimal"], "decimal128(18, 6)", "{dataset}");
    assert_eq!(duck_types["value_decimal"], "DECIMAL(18,6)", "{dataset}");
    assert_eq!(
        arrow_types["reference_range"], "struct<low: decimal128(18, 6), high: decimal128(18, 6), text: string>",
        "{dataset}"
    );
    assert_eq!(
        duck_types["reference_range"], "STRUCT(low DECIMAL(18,6), high DECIMAL(18,6), \"text\" VARCHAR)",
        "{dataset}"
    );
    assert_eq!(arrow_types["interpretation_codes"], "list<item: string not null>", "{dataset}");
    assert_eq!(duck_types["interpretation_codes"], "VARCHAR[]", "{dataset}");
    let logical = &arrow["parquet_logical_types"];
    assert_eq!(logical["event_id"], "UUID", "{dataset}");
    assert_eq!(logical["value_decimal"], "Decimal(precision=18, scale=6)", "{dataset}");
    assert_eq!(duck["uuid_type"], json!([["UUID"]]), "{dataset}");

    for (reader, view) in [("pyarrow", arrow), ("DuckDB", duck)] {
        let landed = view["lab_results"].as_object().unwrap();
        assert_eq!(landed.len() as u64, view["rows"].as_u64().unwrap(), "{dataset} {reader}");
        let mut with_decimal = 0;
        for (event_id, results) in landed {
            let expected = sent.get(event_id).unwrap_or_else(|| panic!("{dataset} {reader}: unknown event {event_id}"));
            assert_eq!(results, expected, "{dataset} {reader}: event {event_id}");
            with_decimal += usize::from(!results[0].is_null());
        }
        assert!(with_decimal > 50, "{dataset} {reader}: only {with_decimal} exact results landed");
        assert!(landed.values().any(|r| r[0].is_null()), "{dataset} {reader}: some results are null");
        assert!(landed.values().any(|r| !r[1].is_null()), "{dataset} {reader}: some ranges landed");
        assert!(landed.values().any(|r| r[2].as_array().is_some_and(|c| c.len() == 2)), "{dataset} {reader}");
    }
}
