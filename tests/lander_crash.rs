//! Exactly-once landing through crashes: `sluice land` processes are killed with SIGKILL at
//! random moments while events keep arriving, each restarted in the same group; at the end the
//! lake holds every permitted event exactly once, and the audit trail still verifies.

mod support;

use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng};
use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use support::pipeline::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lander_killed_at_random_moments_while_events_flow_lands_every_event_exactly_once() {
    const EVENTS: usize = 12_000;
    const CHUNKS: usize = 8;
    let pipeline = Pipeline::start().await;
    let source = SyntheticSource::new(SyntheticSourceConfig {
        patients: 700,
        events: EVENTS as u64,
        seed: 23,
        ..Default::default()
    })
    .unwrap();
    // Events arrive in chunks (the first after the consent changes) while landers come and go.
    let publishing = async {
        for chunk in 0..CHUNKS {
            let size = EVENTS / CHUNKS;
            pipeline.publish(&source, chunk * size, size).await;
            tokio::time::sleep(Duration::from_millis(900)).await;
        }
    };
    // A dead member keeps its partitions until its session times out: keep that short.
    let fast_rejoin = ["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000"];
    let killing = async {
        let mut rng = StdRng::seed_from_u64(20_261_125);
        let mut kills = 0;
        for round in 0..8 {
            let mut lander = pipeline.lander_with("crash-test", &format!("lander-{round}"), &fast_rejoin);
            tokio::time::sleep(Duration::from_millis(rng.random_range(1_500..6_000))).await;
            lander.kill().unwrap(); // SIGKILL: no shutdown, no final checkpoint
            lander.wait().unwrap();
            kills += 1;
        }
        kills
    };
    let ((), kills) = tokio::join!(publishing, killing);
    assert_eq!(kills, 8);

    let last = pipeline.lander_with("crash-test", "lander-last", &fast_rejoin);
    tokio::task::block_in_place(|| pipeline.wait_until_committed("crash-test", Duration::from_secs(240)));
    stop(last);

    // Every permitted event exactly once: nothing lost to a kill, nothing landed twice.
    assert_exactly(&pipeline.lake(), &pipeline.permitted(&source, EVENTS));
    let audit = pipeline.lake().join("_audit/audit.jsonl");
    let verified = sluice_consumers::audit::verify(&audit).unwrap();
    assert!(verified.problems.is_empty() && !verified.torn_tail, "{:?}", verified.problems);
    // And the lake holds exactly the files the log says, with the recorded checksums: files a
    // kill left unrecorded were withdrawn when their partition was consumed again.
    let storage = sluice_consumers::lake::storage::LakeStorage::local(&pipeline.lake()).unwrap();
    let check = sluice_consumers::lake::check::check_lake(&audit, &storage).unwrap();
    assert_eq!(check.problems, Vec::<String>::new());
    assert!(check.recorded > 0);
    let log = std::fs::read_to_string(&audit).unwrap();
    let withdrawals = log.lines().filter(|line| line.contains("\"kind\":\"withdrawal\"")).count();
    eprintln!("{kills} kills; {withdrawals} times files written after the last commit were withdrawn and landed again");
}
