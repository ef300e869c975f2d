//! The benchmark harness (`benches/harness`, the `sluice-bench` program) end to end on a small
//! load: every measurement runs on a Tansu broker it starts itself, this package's `sluice`
//! binary and the Python peer (`benches/peer/land.py`) land the same events with the same
//! outcome, and the table reports them. Nothing about speed is asserted: these are benchmarks,
//! and the figures belong in docs/BENCHMARKS.md, not in a test.

mod support;

use std::path::PathBuf;

use parquet::file::{reader::FileReader, serialized_reader::SerializedFileReader};

/// The cells after `label` in the table row that starts with it.
fn row<'t>(table: &'t str, label: &str) -> Vec<&'t str> {
    let line = table
        .lines()
        .find(|line| line.split('|').nth(1).is_some_and(|cell| cell.trim() == label))
        .unwrap_or_else(|| panic!("no `{label}` row in:\n{table}"));
    line.split('|').skip(2).map(str::trim).filter(|cell| !cell.is_empty()).collect()
}

fn number(cell: &str) -> u64 {
    cell.replace(',', "").parse().unwrap_or_else(|_| panic!("`{cell}` is not a count"))
}

#[test]
fn bench_measures_every_stage_and_the_python_peer_lands_what_sluice_lands() {
    let work = tempfile::tempdir().unwrap();
    let run_dir = work.path().join("run");
    let options = sluice_bench::BenchOptions {
        events: 3_000,
        patients: 300,
        purpose: "research".to_owned(),
        brokers: None,
        properties: Vec::new(),
        work_dir: run_dir.clone(),
        sluice: support::sluice_binary().to_owned(),
        peer: Some(("python3".into(), PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/peer/land.py"))),
        mllp_messages: 40,
        mllp_connections: 2,
    };
    let report = sluice_bench::run(&options).unwrap_or_else(|error| panic!("the benchmark failed: {error}"));
    let table = report.render();

    // Every stage has its row, with the events it moved.
    assert_eq!(number(row(&table, "raw consume (librdkafka, no processing)")[0]), 3_000);
    assert_eq!(number(row(&table, "sluice land (decode, consent, pseudonymise, Parquet)")[0]), 3_000);
    assert_eq!(number(row(&table, "Python peer (confluent-kafka, fastavro, pyarrow)")[0]), 3_000);
    assert_eq!(number(row(&table, "producer: synthetic events")[0]), 3_000);
    assert_eq!(number(row(&table, "producer: HL7 v2 over MLLP, 2 connections (MB of HL7)")[0]), 40);

    // Both landers did the same job: the same events landed and withheld, none lost.
    let sluice = row(&table, "sluice");
    let peer = row(&table, "Python peer");
    assert_eq!(sluice[..4], peer[..4], "consumed, landed, withheld, dead-lettered:\n{table}");
    let (landed, withheld) = (number(sluice[1]), number(sluice[2]));
    assert_eq!(landed + withheld, 3_000);
    assert!(withheld > 0 && landed > 2_000, "the synthetic source's opt-outs are withheld:\n{table}");
    // Peak memory was read from /proc for both.
    assert_ne!(sluice[6], "n/a");
    assert_ne!(peer[6], "n/a");

    // The lake sluice wrote holds the landed rows, and the lander's audit log says it caught up.
    let audit = std::fs::read_to_string(run_dir.join("lake-sluice/_audit/audit.jsonl")).unwrap();
    assert!(audit.lines().any(|line| line.contains("\"kind\":\"stop\"") && line.contains("\"failed\":false")));
    let rows: u64 = support::parquet_files(&run_dir.join("lake-sluice/research"))
        .iter()
        .map(|path| {
            let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
            reader.metadata().file_metadata().num_rows() as u64
        })
        .sum();
    assert_eq!(rows, landed);

    // The targets are reported, met or not.
    for target in ["landing rate / raw consume rate", "landing rate / Python peer", "lander peak RSS"] {
        assert!(table.contains(target), "no `{target}` line:\n{table}");
    }
}
