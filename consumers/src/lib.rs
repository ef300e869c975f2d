//! # sluice-consumers: landing governed clinical data
//!
//! The landing side of sluice, shaped like the data flow:
//!
//! ```text
//! Kafka topic -> decode (sluice-schemas) -> consent -> pseudonymise -> batch -> Parquet -> commit
//! ```
//!
//! * [`consent`]: the consent store built from the compacted consent topic and the rules that
//!   decide, per purpose, whether an event may be released (pure, no Kafka).
//! * [`policy`]: the landing policy of a purpose, a reviewed TOML file (`policies/<purpose>.toml`)
//!   saying what happens to every field of every subject, and its per-subject
//!   [`policy::LandingPlan`], which refuses at start-up any field the policy does not cover, any
//!   field it names that does not exist, and any identifier it would land as it is (fail closed).
//! * [`pseudonymise`]: keyed HMAC-SHA256 pseudonyms, per-patient date shifts and generalisation
//!   of quasi-identifiers (age bands, postcode districts and sectors, buckets), turning a decoded
//!   record into an output row (pure).
//! * [`batch`]: Arrow builders, one buffer per file to be written.
//! * [`lander`]: the async service that ties them together and commits offsets only after the
//!   files covering them are durable and recorded in the audit log; on restart it withdraws files
//!   written after the last commit, so every event lands once.
//! * [`audit`]: the append-only, hash-chained audit log and its verification.
//! * [`keyring`]: a purpose's active and retired keys (rotation without losing erasability).
//! * [`erase`]: removing patients' rows from landed files, atomically and audited.
//! * [`compact`]: merging small committed files of a date partition.
//! * [`dictionary`]: the data dictionary written next to every dataset.
//! * [`lake`]: the lake itself: its layout, storage (a directory or an object store), atomic
//!   Parquet writing, the ledger of landed offsets, locks and committed offsets, and the check
//!   of the lake against its audit log; everything that touches landed files goes through it.
//! * [`lineage`]: OpenLineage run events (START, COMPLETE, FAIL) of landing runs.
//!
//! Records that cannot be decoded or checked go to a dead-letter topic with the reason in a
//! header; nothing is dropped silently and no field value appears in a log line or error.

pub mod audit;
pub mod batch;
pub mod compact;
pub mod consent;
pub mod dictionary;
pub mod disclosure;
pub mod erase;
pub mod keyring;
pub mod lake;
pub mod lander;
pub mod lineage;
pub mod policy;
pub mod pseudonymise;
pub mod record;

mod error;
#[cfg(test)]
mod test_support;

pub use error::{Error, Result};
pub use lander::{LanderConfig, LandingReport, RunUntil, run};
