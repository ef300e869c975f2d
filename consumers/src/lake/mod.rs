//! The lake: where landed data lives and everything that reads or writes it directly. The
//! lander, compaction, erasure and the audit's checks all go through this module, so the
//! lake's rules are stated once.
//!
//! * [`layout`]: where a file goes (`<purpose>/<subject>/<event period>/<name>.parquet`), how
//!   event times become `event_date` / `event_month` directories, and the names files had
//!   before the ledger;
//! * [`storage`]: the datasets' storage, a local directory or an object store, with atomic
//!   writes, listing, removal of interrupted writes and directory syncs;
//! * [`parquet`]: writing one file atomically and durably, with its provenance metadata;
//! * [`ledger`]: which source offsets each landed file holds, kept in the state directory, never
//!   in the file;
//! * [`state`]: the state directory's locks and committed offsets;
//! * [`table`]: each dataset as a Delta Lake table, committed a version at a time, whose log
//!   keeps the lake's privacy rules;
//! * [`check`]: the lake against its audit log: every recorded file present with its checksum,
//!   every landed file recorded.

pub mod check;
pub mod layout;
pub mod ledger;
pub mod parquet;
pub mod state;
pub mod storage;
pub mod table;

pub use state::{CommittedOffsets, audit_publish_lock, committed, lock, record_committed};
pub use storage::LakeStorage;
