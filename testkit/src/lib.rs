//! # sluice-testkit: what the tests and benchmarks need and the product does not
//!
//! sluice's integration tests and its benchmark harness (`benches/harness`) run against a real
//! Kafka-protocol broker process: [`tansu::TansuBroker`] starts Tansu (SQLite storage) on a free
//! loopback port, kills it as a crash would, restarts it on the same port and data, and turns
//! on SASL/SCRAM. [`mllp::MllpSender`] is an interface engine's end of an MLLP connection,
//! [`fhir::post`] a FHIR sender's HTTP POST, and
//! [`mllp::hl7_fixture`] and [`fhir_fixture`] read the adapters' fixtures.
//!
//! It also holds what the tests check a landed lake with: [`lake`] reads it back with the
//! Parquet reader (its files, batches, metadata and every value as text, and the event
//! pseudonyms that tell landed rows apart); [`linkage`] is the unlinkability scan, which looks
//! for columns that join one purpose's dataset to another's (with its own self-test,
//! [`linkage::assert_the_scan_finds_links`]); and [`ground_truth::assert_lake_matches_source`]
//! checks a lake landed for [`ground_truth::PURPOSES`] against the synthetic source's ground
//! truth. Landing that lake (the demo) is left to the tests, since this crate does not depend on
//! the root `sluice` crate, whose tests use it.
//!
//! It is a dev-dependency only, so nothing here (the broker's path, the helper
//! script that indexes its database, the checks) is built into the `sluice` binary.
//!
//! ```no_run
//! let dir = std::env::temp_dir().join("sluice-testkit-example");
//! let broker = sluice_testkit::tansu::TansuBroker::start(&dir).unwrap();
//! println!("a Kafka-protocol broker on {}", broker.bootstrap());
//! ```

pub mod fhir;
pub mod ground_truth;
pub mod lake;
pub mod linkage;
pub mod mllp;
pub mod table_log;
pub mod tansu;

use std::path::{Path, PathBuf};

/// The repository's root directory.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("testkit/ is in the repository").to_owned()
}

/// A fixture of `producers/tests/fixtures/fhir`, as text.
pub fn fhir_fixture(name: &str) -> String {
    let path = repository().join("producers/tests/fixtures/fhir").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
