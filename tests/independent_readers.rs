//! The lake read by the tools analysts use, not by sluice: pyarrow, DuckDB, Polars, the
//! `deltalake` package (counting with pandas) and Apache Spark (pyspark in local mode, on a Java
//! runtime; all pinned in `tests/readers/requirements.txt`) each read every dataset of a demo run
//! for every purpose through `tests/readers/read_lake.py`: Polars and `deltalake` read each
//! dataset's Delta table, the others the files of its newest version (after the demo's
//! compaction, so a reader that globbed the directory would count the replaced files too). What
//! each of them sees must match what the lander reported: the same rows, each event (a string `event_pseudonym`) once, every row in its
//! `event_date` (or, for research, `event_month`) partition by the UTC date of the purpose's time
//! column, microsecond UTC timestamps, real DATE, BOOLEAN, DOUBLE and DECIMAL(18,6) columns, the
//! exact lab results the source sent, no column of a UUID or fixed-size binary type (Spark 4
//! refuses Parquet's `FIXED_LEN_BYTE_ARRAY (UUID)`), the provenance metadata of the policy and
//! key used, and a data dictionary next to each dataset that explains every column.

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
        "the readers failed (install them with `python3 -m pip install -r tests/readers/requirements.txt`; \
         Spark also needs Java 17, Debian's openjdk-17-jre-headless):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A reader of `read_lake.py`'s report, with the names it gives the types the lake's columns
/// must have.
struct Reader {
    /// Its key in the report.
    key: &'static str,
    /// A timestamp in microseconds since the epoch, in UTC.
    timestamp: &'static str,
    date: &'static str,
    boolean: &'static str,
    double: &'static str,
    /// Text: the event pseudonym is one (never binary, never a UUID).
    string: &'static str,
    decimal: &'static str,
    /// The observation's `reference_range`: a struct of decimals `low` and `high`.
    reference_range: &'static str,
    /// The observation's `interpretation_codes`: a list of text.
    codes: &'static str,
    /// The `event_date` partition column, where the reader infers its type from the directory
    /// names (pyarrow reads partition values as text unless told otherwise).
    date_partition: Option<&'static str>,
    /// The `event_month` partition column (`YYYY-MM`, text to every reader).
    month_partition: Option<&'static str>,
}

const READERS: [Reader; 5] = [
    Reader {
        key: "pyarrow",
        timestamp: "timestamp[us, tz=UTC]",
        date: "date32[day]",
        boolean: "bool",
        double: "double",
        string: "string",
        decimal: "decimal128(18, 6)",
        reference_range: "struct<low: decimal128(18, 6), high: decimal128(18, 6)>",
        codes: "list<item: string not null>",
        date_partition: None,
        month_partition: None,
    },
    Reader {
        key: "duckdb",
        timestamp: "TIMESTAMP WITH TIME ZONE",
        date: "DATE",
        boolean: "BOOLEAN",
        double: "DOUBLE",
        string: "VARCHAR",
        decimal: "DECIMAL(18,6)",
        reference_range: "STRUCT(low DECIMAL(18,6), high DECIMAL(18,6))",
        codes: "VARCHAR[]",
        date_partition: Some("DATE"),
        month_partition: Some("VARCHAR"),
    },
    Reader {
        key: "polars",
        timestamp: "Datetime(time_unit='us', time_zone='UTC')",
        date: "Date",
        boolean: "Boolean",
        double: "Float64",
        string: "String",
        decimal: "Decimal(precision=18, scale=6)",
        reference_range: "Struct({'low': Decimal(precision=18, scale=6), 'high': Decimal(precision=18, scale=6)})",
        codes: "List(String)",
        date_partition: Some("Date"),
        month_partition: Some("String"),
    },
    Reader {
        // The Delta table read by delta-rs's Python package: its types are the table schema's,
        // in pyarrow's names, the partition column a real DATE.
        key: "deltalake",
        timestamp: "timestamp[us, tz=UTC]",
        date: "date32[day]",
        boolean: "bool",
        double: "double",
        string: "string",
        decimal: "decimal128(18, 6)",
        reference_range: "struct<low: decimal128(18, 6), high: decimal128(18, 6)>",
        codes: "list<element: string not null>",
        date_partition: Some("date32[day]"),
        month_partition: Some("string"),
    },
    Reader {
        key: "spark",
        // Spark's TIMESTAMP is an instant (TIMESTAMP_NTZ would be local time), always microseconds.
        timestamp: "timestamp",
        date: "date",
        boolean: "boolean",
        double: "double",
        string: "string",
        decimal: "decimal(18,6)",
        reference_range: "struct<low:decimal(18,6),high:decimal(18,6)>",
        codes: "array<string>",
        date_partition: Some("date"),
        month_partition: Some("string"),
    },
];

/// The column each purpose's policy lands the event time as: direct care as it was, planning
/// truncated to the hour, research shifted by a per-patient offset.
fn time_column(purpose: &str) -> &'static str {
    match purpose {
        "planning" => "occurred_at_hour",
        "research" => "occurred_at_shifted",
        _ => "occurred_at",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_duckdb_polars_deltalake_and_spark_read_every_dataset_with_the_right_types_rows_and_provenance() {
    let lake = tempfile::tempdir().unwrap();
    let purposes = vec!["direct-care".to_owned(), "planning".to_owned(), "research".to_owned()];
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
        // Tables with checkpoints: the Delta readers start from one.
        table_checkpoint_interval: std::num::NonZeroU64::new(2).unwrap(),
        show_progress: false,
    })
    .await
    .unwrap();
    assert_eq!(summary.problems(), Vec::<String>::new());

    let lab_results_sent = lab_results_sent(&source);
    let seen = read_with_python(lake.path());
    let datasets = seen.as_object().unwrap();
    assert_eq!(datasets.len(), 9, "three subjects for each of three purposes: {:?}", datasets.keys());
    // Each table was checkpointed (every second commit), so the Delta readers started from one.
    for dataset in datasets.keys() {
        let pointer = lake.path().join(dataset).join("_delta_log/_last_checkpoint");
        assert!(pointer.is_file(), "{dataset}: the table has a checkpoint");
    }
    let mut rows_per_purpose: BTreeMap<String, u64> = BTreeMap::new();
    for (dataset, views) in datasets {
        let (purpose, subject) = dataset.split_once('/').unwrap();
        let landed: u64 = summary
            .landing
            .files
            .iter()
            .filter(|f| f.key.starts_with(&format!("{purpose}/{subject}/")))
            .map(|f| f.rows as u64)
            .sum();
        *rows_per_purpose.entry(purpose.to_owned()).or_default() += landed;
        let time = time_column(purpose);
        // What the source sent, by the event pseudonym this purpose's key gives each event.
        let expected_lab_results: BTreeMap<String, &Value> = lab_results_sent
            .iter()
            .map(|(event_id, results)| (support::event_pseudonym(&keys[purpose], event_id), results))
            .collect();

        for reader in &READERS {
            let (name, view) = (reader.key, &views[reader.key]);
            assert_eq!(view["rows"], landed, "{dataset}: {name} reads every landed row");
            assert_eq!(view["distinct_event_pseudonyms"], landed, "{dataset}: {name} sees each event once");
            assert_eq!(
                view["outside_partition"], 0,
                "{dataset}: {name} sees every row in its event_date or event_month partition"
            );

            let types = view["types"].as_object().unwrap_or_else(|| panic!("{dataset}: {name} reports types"));
            assert_eq!(types["event_pseudonym"], reader.string, "{dataset}: {name}: the event pseudonym is text");
            assert_eq!(types[time], reader.timestamp, "{dataset}: {name}: {time} is a microsecond UTC timestamp");
            for other in ["occurred_at", "occurred_at_hour", "occurred_at_shifted"].into_iter().filter(|c| *c != time) {
                assert!(!types.contains_key(other), "{dataset}: {name} sees {other} beside {time}");
            }
            if purpose == "research" {
                // The research policy shifts dates and so partitions by month.
                if let Some(month) = reader.month_partition {
                    assert_eq!(types["event_month"], month, "{dataset}: {name} reads the hive partition as text");
                }
                assert!(!types.contains_key("event_date"), "{dataset}: {name}");
            } else {
                if let Some(date) = reader.date_partition {
                    assert_eq!(types["event_date"], date, "{dataset}: {name} reads the hive partition as a date");
                }
                assert!(!types.contains_key("event_month"), "{dataset}: {name}");
            }
            for (column, kind) in types {
                let kind = kind.as_str().unwrap().to_lowercase();
                for never in ["[ns", "'ns'", "timestamp_ns"] {
                    assert!(!kind.contains(never), "{dataset}.{column} is {kind} to {name}: never nanoseconds");
                }
                // No UUIDs, and no binary of any width: Spark 4 refuses FIXED_LEN_BYTE_ARRAY (UUID).
                for never in ["uuid", "binary", "blob", "fixed"] {
                    assert!(!kind.contains(never), "{dataset}.{column} is {kind} to {name}: never a UUID or binary");
                }
            }
            match subject {
                "diagnosis" => {
                    match purpose {
                        // Planning keeps only the month of onset, as text.
                        "planning" => assert_eq!(types["onset_month"], reader.string, "{dataset}: {name}"),
                        "research" => assert_eq!(types["onset_date_shifted"], reader.date, "{dataset}: {name}"),
                        _ => assert_eq!(types["onset_date"], reader.date, "{dataset}: {name}"),
                    }
                    assert_eq!(types["is_primary"], reader.boolean, "{dataset}: {name}");
                }
                "observation" => {
                    assert_eq!(types["value"], reader.double, "{dataset}: {name}");
                    assert_eq!(types["value_decimal"], reader.decimal, "{dataset}: {name}");
                    assert_eq!(types["reference_range"], reader.reference_range, "{dataset}: {name}");
                    assert_eq!(types["interpretation_codes"], reader.codes, "{dataset}: {name}");
                    check_lab_results(dataset, name, view, &expected_lab_results);
                }
                _ => {}
            }
        }

        let arrow = &views["pyarrow"];
        let arrow_types = arrow["types"].as_object().unwrap();
        // The Parquet types as written: no UUID logical type, no fixed-size binary (other than
        // for a decimal, should a writer ever choose it), microsecond UTC timestamps.
        let logical = arrow["parquet_logical_types"].as_object().unwrap();
        let physical = arrow["parquet_physical_types"].as_object().unwrap();
        for (column, kind) in logical {
            let kind = kind.as_str().unwrap();
            assert!(!kind.to_lowercase().contains("uuid"), "{dataset}.{column} is written as {kind}");
            if physical[column] == "FIXED_LEN_BYTE_ARRAY" {
                assert!(kind.starts_with("Decimal"), "{dataset}.{column} is written as a fixed-size binary {kind}");
            }
        }
        assert_eq!(physical["event_pseudonym"], "BYTE_ARRAY", "{dataset}");
        assert_eq!(logical["event_pseudonym"], "String", "{dataset}");
        assert!(
            logical[time].as_str().unwrap().starts_with("Timestamp(isAdjustedToUTC=true, timeUnit=microseconds"),
            "{dataset}: {time} is written as {}",
            logical[time]
        );
        if subject == "observation" {
            assert_eq!(logical["value_decimal"], "Decimal(precision=18, scale=6)", "{dataset}");
        }
        for identifier in
            ["event_id", "nhs_number", "family_name", "given_name", "date_of_birth", "postcode", "address_line"]
        {
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

/// What the source sent for the observation v3 fields, by source event id, in the form
/// `read_lake.py` prints: `[value_decimal, [low, high] or null, codes or null]`, decimals as plain
/// text with their six digits after the point. Events of older versions have none of them. The
/// range's `text` is not landed by any policy, so it is not here either.
fn lab_results_sent(config: &SyntheticSourceConfig) -> BTreeMap<uuid::Uuid, Value> {
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
        .filter(|event| event.subject() == "observation")
        .map(|event| {
            let Avro::Record(fields) = event.value() else { panic!("a record") };
            let range = field(fields, "reference_range").map_or(Value::Null, |range| {
                let Avro::Record(range) = range else { panic!("a record") };
                json!([decimal(field(range, "low")), decimal(field(range, "high"))])
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
            (event.truth.event_id, json!([decimal(field(fields, "value_decimal")), range, codes]))
        })
        .collect()
}

/// The reader sees, for every landed observation, exactly the decimal result, reference range
/// and interpretation codes the source sent for its event.
fn check_lab_results(dataset: &str, reader: &str, view: &Value, sent: &BTreeMap<String, &Value>) {
    let landed = view["lab_results"].as_object().unwrap_or_else(|| panic!("{dataset}: {reader} reports lab results"));
    assert_eq!(landed.len() as u64, view["rows"].as_u64().unwrap(), "{dataset} {reader}");
    let mut with_decimal = 0;
    for (pseudonym, results) in landed {
        assert!(
            pseudonym.len() == 32 && pseudonym.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
            "{dataset} {reader}: event pseudonym {pseudonym:?} is not 32 lowercase hex digits"
        );
        let expected = sent.get(pseudonym).unwrap_or_else(|| panic!("{dataset} {reader}: unknown event {pseudonym}"));
        assert_eq!(results, *expected, "{dataset} {reader}: event {pseudonym}");
        with_decimal += usize::from(!results[0].is_null());
    }
    assert!(with_decimal > 50, "{dataset} {reader}: only {with_decimal} exact results landed");
    assert!(landed.values().any(|r| r[0].is_null()), "{dataset} {reader}: some results are null");
    assert!(landed.values().any(|r| !r[1].is_null()), "{dataset} {reader}: some ranges landed");
    assert!(landed.values().any(|r| r[2].as_array().is_some_and(|c| c.len() == 2)), "{dataset} {reader}");
}
