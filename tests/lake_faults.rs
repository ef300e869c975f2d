//! The lake failing under a running `sluice land` on a real broker: its dataset directory
//! replaced by a file (as when a mount goes away or a directory is made read-only), and the disk
//! full (simulated with a file-size limit, so writes fail with EFBIG exactly where ENOSPC would).
//! Each time the lander stops with an error naming what it could not write and why, commits no
//! offset past what it had landed, and a lander started after the fault is mended lands every
//! permitted event exactly once.

mod support;

use std::{
    collections::BTreeMap,
    process::{Child, Command},
    time::{Duration, Instant},
};

use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use support::{
    high_watermarks,
    pipeline::{Pipeline, assert_exactly, group_committed, stop, strip_ansi},
};

/// Waits for a lander to exit by itself and returns whether it succeeded.
fn wait_for_exit(lander: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = lander.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the lander did not stop on a lake it cannot write");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Offsets the group has committed, over every clinical partition.
fn committed_total(pipeline: &Pipeline, group: &str) -> i64 {
    let client = pipeline.broker.client();
    let targets: BTreeMap<(String, i32), i64> = high_watermarks(&client, &pipeline.topics.clinical());
    group_committed(&client, group, &targets).values().sum()
}

/// What a lander error must never contain: any NHS number of the source.
fn assert_no_nhs_number(text: &str, source: &SyntheticSource) {
    let patients: std::collections::BTreeSet<u32> = source.clinical_events().map(|e| e.truth.patient).collect();
    for patient in patients {
        let nhs_number = source.patient(patient).nhs_number.digits();
        assert!(!text.contains(&nhs_number), "an NHS number in the lander's output");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_directory_gone_mid_run_stops_landing_without_committing_and_a_later_run_lands_the_rest() {
    let pipeline = Pipeline::start().await;
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 400, events: 4_000, ..Default::default() }).unwrap();
    pipeline.publish(&source, 0, 2_000).await;
    let mut lander = pipeline.lander("faults", "first");
    pipeline.wait_until_committed("faults", Duration::from_secs(120));
    let landed_before = committed_total(&pipeline, "faults");
    assert!(landed_before > 0);

    // The research datasets' directory is replaced by a file, then more events arrive.
    let research = pipeline.lake().join("research");
    let saved = pipeline.lake().join("research.saved");
    std::fs::rename(&research, &saved).unwrap();
    std::fs::write(&research, "not a directory").unwrap();
    pipeline.publish(&source, 2_000, 2_000).await;

    let status = wait_for_exit(&mut lander, Duration::from_secs(120));
    let log = strip_ansi(&pipeline.log("first"));
    assert!(!status.success(), "a lander that cannot write its lake must fail:\n{log}");
    assert!(status.code().is_some(), "it exits with an error, not a crash: {status:?}");
    assert!(log.contains("lake/research") && log.contains("Not a directory"), "a clear error:\n{log}");
    assert_no_nhs_number(&log, &source);
    assert_eq!(committed_total(&pipeline, "faults"), landed_before, "nothing committed after the fault");

    // Mended: the next lander lands the rest, and nothing twice.
    std::fs::remove_file(&research).unwrap();
    std::fs::rename(&saved, &research).unwrap();
    let lander = pipeline.lander("faults", "second");
    pipeline.wait_until_committed("faults", Duration::from_secs(120));
    stop(lander);
    assert_exactly(&pipeline.lake(), &pipeline.permitted(&source, 4_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_landing_with_the_reason_commits_nothing_and_landing_resumes_when_space_returns() {
    let pipeline = Pipeline::start().await;
    let source =
        SyntheticSource::new(SyntheticSourceConfig { patients: 400, events: 3_000, ..Default::default() }).unwrap();
    pipeline.publish(&source, 0, 3_000).await;

    // The lander as a process whose files may not grow past 32 KiB: with SIGXFSZ ignored, a write
    // beyond that fails with EFBIG ("File too large"), as a write to a full disk fails with ENOSPC.
    // The first write to fail is the audit log's, before any offset can be committed.
    let lake = pipeline.lake().display().to_string();
    let lander = pipeline.lander_command("full", "full", &["--lake", &lake]);
    let mut limited = Command::new("bash");
    limited
        .args(["-c", "trap '' XFSZ; ulimit -f 32; exec \"$0\" \"$@\""])
        .arg(lander.get_program())
        .args(lander.get_args())
        .envs(lander.get_envs().filter_map(|(key, value)| Some((key, value?))))
        .stderr(std::fs::File::create(pipeline.dir.path().join("full.log")).unwrap());
    let mut lander = limited.spawn().unwrap();

    let status = wait_for_exit(&mut lander, Duration::from_secs(120));
    let log = strip_ansi(&pipeline.log("full"));
    assert!(!status.success() && status.code().is_some(), "fails with an error, not a crash: {status:?}\n{log}");
    assert!(log.contains("File too large"), "the reason is given:\n{log}");
    assert_no_nhs_number(&log, &source);
    assert_eq!(committed_total(&pipeline, "full"), 0, "nothing committed: nothing could be landed");

    let lander = pipeline.lander("full", "after");
    pipeline.wait_until_committed("full", Duration::from_secs(120));
    stop(lander);
    assert_exactly(&pipeline.lake(), &pipeline.permitted(&source, 3_000));
}
