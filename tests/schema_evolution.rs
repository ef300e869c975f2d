//! Files landed under an older version of a subject's schema stay readable together with files
//! of the newest. A new version only adds nullable columns, so the dataset's Delta table (whose
//! schema has them all) reads with `deltalake` as it is, and the readers analysts use on its
//! files (DuckDB with `union_by_name`, pyarrow with the files' schemas unified, Polars
//! concatenating files by column name, Spark with `mergeSchema`; `tests/readers/read_evolved.py`)
//! read a dataset holding both: nulls in the added columns for rows of older files, every other
//! value as landed.
//! Compaction never merges files of different schemas.

mod support;

use std::{collections::BTreeMap, path::Path, process::Command};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use sluice::keys;
use sluice_consumers::{
    audit::AuditLog,
    compact::{CompactionOptions, compact},
    lake::{
        parquet::{encode, key_value_pairs},
        storage::LakeStorage,
        table::{Change, DatasetTable, TableFile},
    },
};
use sluice_producers::SyntheticSourceConfig;
use sluice_schemas::Catalogue;
use support::*;

/// Columns observation v3 added to v2.
const ADDED_IN_V3: [&str; 3] = ["value_decimal", "reference_range", "interpretation_codes"];

/// The readers that check a dataset of mixed versions.
const READERS: [&str; 5] = ["deltalake", "pyarrow", "duckdb", "polars", "spark"];

/// What the named readers of `read_evolved.py` see in a dataset: `{reader: {types, rows,
/// value_decimal: {event pseudonym: exact text or null}}}`.
fn read_evolved(dataset: &Path, readers: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/read_evolved.py");
    let output = Command::new("python3").arg(script).arg(dataset).args(readers).output().expect("python3 runs");
    assert!(output.status.success(), "the readers failed:\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Rewrites a landed file of `dataset` as a lander from before observation v3 wrote it: without
/// the columns v3 added, and read with v2; under a new name, which one table commit puts in
/// place of the old file (a file in a table is never changed in place).
async fn as_landed_before_v3(lake: &Path, dataset: &str, path: &Path) {
    let new_path = path.with_file_name(format!("part-{}.parquet", uuid::Uuid::new_v4().simple()));
    write_before_v3(path, &new_path);
    let storage = LakeStorage::local(lake).unwrap();
    let mut table = DatasetTable::open_in(&storage, dataset).await.unwrap().unwrap();
    let table_file = |path: &Path| {
        let key = path.strip_prefix(lake).unwrap().to_str().unwrap().to_owned();
        let rows = read_parquet(path).batches.iter().map(|b| b.num_rows() as u64).sum();
        TableFile::of_key(&key, std::fs::metadata(path).unwrap().len(), rows).unwrap().1
    };
    let (old, new) = (table_file(path), table_file(&new_path));
    table.commit(&[new], &[old], Change::Compaction).await.unwrap();
    std::fs::remove_file(path).unwrap();
}

fn write_before_v3(path: &Path, new_path: &Path) {
    let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
    let mut metadata = key_value_pairs(builder.metadata().file_metadata());
    let v2 = Catalogue::embedded().version("observation", 2).unwrap();
    for (key, value) in &mut metadata {
        if key == "sluice.reader_schema" {
            *value = format!("observation v2 {:016x}", v2.fingerprint());
        }
    }
    let batches: Vec<_> = builder.build().unwrap().map(Result::unwrap).collect();
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let kept: Vec<usize> =
        (0..batch.num_columns()).filter(|i| !ADDED_IN_V3.contains(&batch.schema().field(*i).name().as_str())).collect();
    std::fs::write(new_path, encode(&batch.project(&kept).unwrap(), metadata).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_an_older_schema_version_read_together_with_the_newest() {
    let (_cluster, client, topics, _source) = mock_cluster_with_source(SyntheticSourceConfig {
        patients: 200,
        events: 2_000,
        seed: 11,
        ..Default::default()
    })
    .await;
    let lake = tempfile::tempdir().unwrap();
    let purposes = vec!["direct-care".to_owned()];
    let config = lander_config(lake.path(), &purposes, "evolution-test", &topics);
    land_until_caught_up(&client, &config, &keys::generate(&purposes)).await;

    let dataset = lake.path().join("direct-care/observation");
    let as_landed = read_evolved(&dataset, &["pyarrow"])["pyarrow"]["value_decimal"].as_object().unwrap().clone();
    let files = parquet_files(&dataset);
    assert!(files.len() >= 4, "enough files to mix versions: {}", files.len());
    let newest_columns = read_parquet(&files[1]).batches[0].num_columns();

    // Every other file (so most date partitions hold both kinds) becomes one landed before v3.
    let mut older_pseudonyms = Vec::new();
    for path in files.iter().step_by(2) {
        older_pseudonyms.extend(column_strings(&read_parquet(path).batches, "event_pseudonym"));
        as_landed_before_v3(lake.path(), "direct-care/observation", path).await;
    }
    assert!(
        older_pseudonyms.iter().any(|pseudonym| !as_landed[pseudonym].is_null()),
        "the rewritten files held results, so their nulls now are the readers' doing"
    );

    let check = |readers: &[&str]| {
        let seen = read_evolved(&dataset, readers);
        for reader in readers {
            let view = &seen[reader];
            assert_eq!(view["rows"].as_u64().unwrap() as usize, as_landed.len(), "{reader} reads every row");
            let types = view["types"].as_object().unwrap();
            for column in ADDED_IN_V3 {
                assert!(types.contains_key(column), "{reader} sees the added column {column}: {types:?}");
            }
            let decimal = types["value_decimal"].as_str().unwrap().to_lowercase();
            assert!(decimal.contains("decimal") && decimal.contains("18") && decimal.contains('6'), "{decimal}");
            let values = view["value_decimal"].as_object().unwrap();
            let mut expected: BTreeMap<&String, &Value> = as_landed.iter().collect();
            for pseudonym in &older_pseudonyms {
                expected.insert(pseudonym, &Value::Null);
            }
            let actual: BTreeMap<&String, &Value> = values.iter().collect();
            assert_eq!(actual, expected, "{reader}: nulls for older files, values as landed for the rest");
        }
    };
    check(&READERS);

    // Compaction merges like with like only; the dataset reads the same afterwards.
    let storage = LakeStorage::local(lake.path()).unwrap();
    let mut audit = AuditLog::open(&lake.path().join("_audit/audit.jsonl")).unwrap();
    let record = compact(lake.path(), &storage, CompactionOptions::default(), &mut audit).unwrap();
    assert!(!record.merged.is_empty(), "compaction merged files");
    for path in parquet_files(&dataset) {
        let columns = read_parquet(&path).batches[0].num_columns();
        assert!(columns == newest_columns || columns == newest_columns - ADDED_IN_V3.len(), "{}", path.display());
    }
    // Spark, slow to start, read the mixed files above; the others read them again here.
    check(&["pyarrow", "duckdb", "polars"]);
}
