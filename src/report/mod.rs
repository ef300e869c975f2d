//! `sluice report`: one self-contained HTML page for information governance, made from the audit
//! log and its verification: flows (topic -> purpose -> dataset) with counts over time, withheld
//! events by reason, the policy, key and schema versions in force, other operations on the lake,
//! and whether the log and the lake verify. Counts of 1 to 7 are suppressed ([`suppress`]).

pub mod disclosure;
pub mod html;
pub mod model;
pub mod suppress;
mod svg;

use std::path::Path;

use serde_json::Value;

/// The records of the log at `path`, one JSON value per line; lines that are not JSON are left
/// out (verification reports them). A log that cannot be read is an error.
pub fn read_records(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read the audit log {}: {e}", path.display()))?;
    Ok(text.split(|b| *b == b'\n').filter_map(|line| serde_json::from_slice(line).ok()).collect())
}

#[cfg(test)]
mod tests;
