//! Checking a landed lake against the synthetic source's ground truth, for any broker. The check
//! itself ([`assert_lake_matches_source`], [`PURPOSES`]) is in `sluice_testkit::ground_truth`;
//! landing the lake with the demo, which is the root `sluice` crate's, stays here.

use std::{collections::BTreeMap, path::Path};

use sluice::{demo, keys, topics::Topics};
use sluice_consumers::pseudonymise::PurposeKey;
use sluice_producers::SyntheticSourceConfig;
use sluice_schemas::Framing;
pub use sluice_testkit::ground_truth::*;

/// Runs the demo into `lake` on the mock cluster (`brokers: None`) or on the given brokers.
/// Returns its summary and the purposes' keys, with which the tests tell landed rows apart.
pub async fn run_demo(
    lake: &Path,
    brokers: Option<String>,
    framing: Framing,
    config: SyntheticSourceConfig,
) -> (demo::DemoSummary, BTreeMap<String, PurposeKey>) {
    let purposes: Vec<String> = PURPOSES.iter().map(|p| p.to_string()).collect();
    let keys = keys::generate(&purposes);
    let summary = demo::run(demo::DemoOptions {
        source: config,
        keys: keys.clone(),
        purposes,
        lake_dir: lake.to_owned(),
        brokers,
        properties: Vec::new(),
        framing,
        topics: Topics::embedded(),
        // Small enough to force several checkpoints (and several files per partition).
        max_buffered_rows: 7_000,
        // Small enough that tables have checkpoints, whose privacy the linkage checks read too.
        table_checkpoint_interval: std::num::NonZeroU64::new(2).unwrap(),
        show_progress: false,
    })
    .await
    .expect("demo runs");
    (summary, keys)
}
