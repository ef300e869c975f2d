//! The audit records of a run itself: a start record with what each purpose lands under (and a
//! configuration change record for each policy or key that differs from the last start's,
//! remembered in `<lake>/_sluice/in-force.json`), and a stop record with what the run did.

use std::{collections::BTreeMap, path::Path};

use sluice_schemas::Catalogue;

use super::{LanderConfig, LandingReport, PurposeSetup};
use crate::{
    Error, Result,
    audit::{AuditEvent, AuditLog, PurposeInForce, StartRecord, StopRecord, configuration_changes},
};

/// Appends the start record, and a change record for each purpose whose policy or key is not the
/// one in force at the last start.
pub(super) fn record_start(
    audit: &mut AuditLog,
    config: &LanderConfig,
    setups: &BTreeMap<String, PurposeSetup>,
    catalogue: &Catalogue,
    lake: &str,
) -> Result<()> {
    let reader_schemas: Vec<String> = config
        .clinical_topics
        .keys()
        .filter_map(|subject| catalogue.latest(subject).ok())
        .map(|latest| latest.fingerprinted_label())
        .collect();
    let in_force: Vec<PurposeInForce> = config
        .purposes
        .iter()
        .filter_map(|name| {
            let name = name.parse::<crate::consent::Purpose>().ok()?.name();
            let setup = setups.get(&name)?;
            Some(PurposeInForce {
                purpose: name,
                policy: setup.policy.label(),
                policy_hash: setup.policy.hash(),
                key_id: setup.keys.active().id().to_owned(),
                reader_schemas: reader_schemas.clone(),
            })
        })
        .collect();
    audit.append(&AuditEvent::Start(StartRecord {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        group_id: config.group_id.clone(),
        topics: config.clinical_topics.values().cloned().collect(),
        lake: lake.to_owned(),
        purposes: in_force.clone(),
    }))?;
    let path = config.lake_dir.join("_sluice").join("in-force.json");
    let before = read_in_force(&path)?;
    for change in configuration_changes(&before, &in_force) {
        audit.append(&AuditEvent::ConfigurationChange(change))?;
    }
    // Purposes this lander does not land keep what was last in force for them.
    let mut remembered: Vec<PurposeInForce> =
        before.into_iter().filter(|p| !in_force.iter().any(|now| now.purpose == p.purpose)).collect();
    remembered.extend(in_force);
    std::fs::create_dir_all(config.lake_dir.join("_sluice")).map_err(Error::write(&config.lake_dir))?;
    crate::lake::parquet::write_small_file(&path, &serde_json::to_vec_pretty(&remembered).expect("serialises"))
}

fn read_in_force(path: &Path) -> Result<Vec<PurposeInForce>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::WriteFile {
            path: path.to_owned(),
            reason: format!("not a record of the policies and keys in force: {e}"),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(Error::write(path)(error)),
    }
}

/// The stop record of a run that ended with `outcome`.
pub(super) fn stop_record(outcome: &Result<LandingReport>, shutdown_requested: bool) -> StopRecord {
    match outcome {
        Ok(report) => StopRecord {
            reason: if shutdown_requested { "shutdown requested" } else { "caught up with its targets" }.to_owned(),
            failed: false,
            consumed: report.consumed.clone(),
            invalid: report.dead_lettered,
            withheld: report.withheld.clone(),
            landed: report.landed.clone(),
            files: report.files.len() as u64,
            unknown_source_organisations: report.unknown_source_organisations.clone(),
        },
        Err(error) => StopRecord {
            reason: error.to_string(),
            failed: true,
            consumed: BTreeMap::new(),
            invalid: 0,
            withheld: BTreeMap::new(),
            landed: BTreeMap::new(),
            files: 0,
            unknown_source_organisations: BTreeMap::new(),
        },
    }
}
