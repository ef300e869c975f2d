//! A lake in S3-compatible object storage: `sluice land` writes its datasets to an `s3://` URL
//! (a local moto server standing in for S3) and keeps its state in a local directory; the events
//! land exactly once across a restart, and `sluice compact` works on the bucket too.

mod support;

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sluice_consumers::lake::{
    storage::LakeStorage,
    table::{DatasetTable, by_dataset},
};
use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use support::{column_strings, pipeline::*};

const BUCKET: &str = "sluice-lake";

/// An S3-compatible server (moto, from PyPI) on a free local port, stopped when dropped.
struct S3Server {
    process: Child,
    endpoint: String,
}

impl S3Server {
    fn start() -> S3Server {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let process = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with moto[server] (tests/readers/requirements.txt; infra/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the S3 server did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        let server = S3Server { process, endpoint: format!("http://127.0.0.1:{port}") };
        // CreateBucket is a bare PUT of the bucket's path.
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "PUT /{BUCKET} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "bucket not created: {response}");
        server
    }

    /// The environment a sluice process reads its S3 connection from.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
            ("AWS_REGION", "eu-west-2".to_owned()),
        ]
    }

    fn storage(&self, url: &str) -> LakeStorage {
        let env = self.env();
        let options: Vec<(&str, &str)> = vec![
            ("aws_endpoint", &env[0].1),
            ("aws_allow_http", "true"),
            ("aws_access_key_id", "test"),
            ("aws_secret_access_key", "test"),
            ("aws_region", "eu-west-2"),
        ];
        LakeStorage::open_with(url, &options).unwrap()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The keys of the files of the newest version of every dataset's table under `prefix`, read
/// through delta-rs from the bucket.
async fn table_files(storage: &LakeStorage, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for dataset in by_dataset(storage.parquet_files(prefix).unwrap()).into_keys() {
        let table = DatasetTable::open_in(storage, &dataset).await.unwrap().expect("every dataset is a table");
        keys.extend(table.files().unwrap().into_iter().map(|path| format!("{dataset}/{path}")));
    }
    keys.sort();
    keys
}

/// Event pseudonyms of every file of the bucket's tables, counted.
async fn landed_ids(storage: &LakeStorage) -> std::collections::HashMap<String, usize> {
    let mut seen = std::collections::HashMap::new();
    for key in table_files(storage, "").await {
        let reader = ParquetRecordBatchReaderBuilder::try_new(storage.get(&key).unwrap()).unwrap().build().unwrap();
        let batches: Vec<_> = reader.map(Result::unwrap).collect();
        for id in column_strings(&batches, "event_pseudonym") {
            *seen.entry(id).or_default() += 1;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_in_object_storage_lands_every_event_once_and_compacts() {
    let s3 = S3Server::start();
    let pipeline = Pipeline::start().await;
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 300, events: 3_000, ..Default::default() }).unwrap();
    let url = format!("s3://{BUCKET}/lake");
    let state = pipeline.dir.path().join("state");
    let state_arg = state.display().to_string();
    let lander = |name: &str| {
        // A checkpoint every second commit: delta-rs writes them to the bucket as well.
        let args = ["--lake", &url, "--state-dir", &state_arg, "--table-checkpoint-interval", "2"];
        let mut command = pipeline.lander_command("s3-test", name, &args);
        command.envs(s3.env());
        command.spawn().unwrap()
    };

    // Two runs, the second after more events arrived: it resumes, withdrawing nothing it must keep.
    pipeline.publish(&source, 0, 1_500).await;
    let first = lander("first");
    pipeline.wait_until_committed("s3-test", Duration::from_secs(120));
    stop(first);
    pipeline.publish(&source, 1_500, 1_500).await;
    let second = lander("second");
    pipeline.wait_until_committed("s3-test", Duration::from_secs(120));
    stop(second);

    let storage = s3.storage(&url);
    let expected = pipeline.permitted(&source, 3_000);
    let landed = landed_ids(&storage).await;
    assert!(landed.values().all(|n| *n == 1), "an event landed twice");
    assert_eq!(landed.keys().cloned().collect::<std::collections::HashSet<_>>(), expected);
    let files = table_files(&storage, "research").await;
    // The research policy files by month of the shifted event time.
    assert!(!files.is_empty() && files.iter().all(|key| key.contains("/event_month=")), "{files:?}");
    let checkpoint = storage.get("research/adt/_delta_log/_last_checkpoint").expect("the table has a checkpoint");
    let checkpoint: serde_json::Value = serde_json::from_slice(&checkpoint).unwrap();
    let version = checkpoint["version"].as_u64().unwrap();
    assert!(storage.get(&format!("research/adt/_delta_log/{version:020}.checkpoint.parquet")).is_ok());
    let dictionary = String::from_utf8(storage.get("research/adt/_dictionary.md").unwrap().to_vec()).unwrap();
    assert!(dictionary.contains("patient_pseudonym"));

    // The state directory holds the audit log and offsets, and no data.
    assert!(!state.join("research").exists(), "datasets went to the bucket, not the state directory");
    let audit = std::fs::read_to_string(state.join("_audit/audit.jsonl")).unwrap();
    let first_file = audit.lines().find(|l| l.contains("\"kind\":\"landing\"") && l.contains(".parquet")).unwrap();
    assert!(first_file.contains("\"path\":\"research/"), "audit records name keys in the lake: {first_file}");

    // Compaction reads and rewrites the bucket's files; every event is still there once.
    let output =
        support::sluice().args(["compact", "--lake", &url, "--state-dir", &state_arg]).envs(s3.env()).output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
    // One commit per table replaced the small files: the tables' newest versions hold fewer.
    assert!(table_files(&storage, "research").await.len() < files.len(), "{printed}");
    // Merged files are named like any other; the ledger in the state directory says which they are.
    let ledger = std::fs::read_to_string(state.join("_sluice/landed-files.jsonl")).unwrap();
    let merged: Vec<&str> = ledger.lines().filter(|line| line.contains("\"kind\":\"merged\"")).collect();
    let present = table_files(&storage, "research").await;
    assert!(
        merged.iter().any(|line| present.iter().any(|key| line.contains(&format!("\"key\":\"{key}\"")))),
        "{merged:?}"
    );
    assert!(present.iter().all(|key| key.rsplit('/').next().unwrap().starts_with("part-")), "{present:?}");
    let compacted = landed_ids(&storage).await;
    assert!(compacted.values().all(|n| *n == 1), "an event is in two files after compaction");
    assert_eq!(compacted.len(), expected.len());

    // The landers copied their audit records to the audit topic as they ran; the compaction's
    // record is the one left to copy.
    let published = support::sluice()
        .args([
            "audit",
            "publish",
            "--lake",
            &url,
            "--state-dir",
            &state_arg,
            "--brokers",
            &pipeline.broker.bootstrap(),
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&published.stdout);
    assert!(published.status.success(), "{said}{}", String::from_utf8_lossy(&published.stderr));
    assert!(said.contains("1 audit records published to sluice.audit"), "{said}");
    let in_topic = support::read_topic(&pipeline.broker.client(), "sluice.audit").len();
    assert_eq!(in_topic, std::fs::read_to_string(state.join("_audit/audit.jsonl")).unwrap().lines().count());

    // Without a state directory an object-store lake is refused, with the reason.
    let refused = support::sluice().args(["compact", "--lake", &url]).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--state-dir"));
}
