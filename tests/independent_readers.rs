//! The lake read by the tools analysts use, not by sluice: pyarrow and DuckDB (pinned in
//! `tests/readers/requirements.txt`) read every dataset of a demo run through
//! `tests/readers/read_lake.py`, and what they see must match what the lander reported: the same
//! rows, each event once, every row in its `event_date` partition, microsecond UTC timestamps,
//! real DATE and BOOLEAN and DOUBLE columns, the provenance metadata of the policy and key used,
//! and a data dictionary next to each dataset that explains every column.

mod support;

use std::{collections::BTreeMap, path::Path, process::Command};

use serde_json::Value;
use sluice::{demo, keys, topics::Topics};
use sluice_consumers::policy::Policy;
use sluice_producers::SyntheticSourceConfig;
use sluice_schemas::Framing;

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
    let summary = demo::run(demo::DemoOptions {
        source: SyntheticSourceConfig { patients: 300, events: 3_000, seed: 3, ..SyntheticSourceConfig::default() },
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
        assert_eq!(duck["outside_partition"], 0, "{dataset}: every row in its event_date partition");
        *rows_per_purpose.entry(purpose.to_owned()).or_default() += landed;

        let arrow_types = arrow["types"].as_object().unwrap();
        let duck_types = duck["types"].as_object().unwrap();
        let time = if purpose == "research" { "occurred_at_shifted" } else { "occurred_at" };
        assert_eq!(arrow_types[time], "timestamp[us, tz=UTC]", "{dataset}");
        assert_eq!(duck_types[time], "TIMESTAMP WITH TIME ZONE", "{dataset}");
        assert_eq!(duck_types["event_date"], "DATE", "{dataset}: the hive partition reads as a date");
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
            "observation" => assert_eq!(duck_types["value"], "DOUBLE", "{dataset}"),
            _ => {}
        }
        for identifier in ["nhs_number", "family_name", "given_name", "date_of_birth", "postcode", "address_line"] {
            assert!(!arrow_types.contains_key(identifier), "{dataset} has {identifier}");
        }

        // The data dictionary sits next to the data (and the readers above skipped it).
        let dictionary = std::fs::read_to_string(lake.path().join(dataset).join("_dictionary.md")).unwrap();
        for column in arrow_types.keys().filter(|c| *c != "event_date") {
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
