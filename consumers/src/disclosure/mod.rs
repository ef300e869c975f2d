//! # Disclosure control: re-identification risk of the landed records
//!
//! Pseudonymisation removes who a patient is, but not what makes them stand out: in a month of
//! planning data, the one woman of 90+ in a postcode sector admitted to a given provider is
//! recognisable to anyone who knows she was admitted, pseudonym or not. Statistical disclosure
//! control measures that risk by *equivalence classes*: records that share the value of every
//! *quasi-identifier* (age band, sex, geography, organisation, coarse dates, rare codes) cannot
//! be told apart by them, and a class is safe when it holds at least *k* distinct patients.
//!
//! ## Declaring it
//!
//! A purpose's policy declares its quasi-identifiers and threshold in `[disclosure]`
//! ([`DisclosureRules`]); a policy without the table has no disclosure control (direct care
//! needs none: it is identifiable by design).
//!
//! ```toml
//! [disclosure]
//! k = 5                        # smallest class, in distinct patients
//! max_share_at_risk = 0.01     # at most 1% of a unit's records in classes below k
//! release_unit = "month"       # measured and released a calendar month at a time
//!
//! [disclosure.quasi_identifiers]     # every landed subject, [] if none
//! adt = ["age_band_at_reference_date", "sex", "postcode_sector", "source_organisation"]
//! diagnosis = ["age_band_at_reference_date", "sex", "postcode_sector", "code"]
//!
//! [disclosure.generalise]            # each column's ladder, finest first
//! age_band_at_reference_date = ["age_band:10", "age_band:20"]
//! postcode_sector = ["postcode_district", "postcode_area"]
//! code = ["prefix:3", "prefix:1"]
//! ```
//!
//! The steps: `age_band:N` (wider bands; the top band stays open), `postcode_district` and
//! `postcode_area` (sector `LS6 2` to `LS6` to `LS`), `prefix:N` (a code's first N characters:
//! ICD-10 `E11.9` to `E11` to chapter letter `E`), `year` (`YYYY-MM` to `YYYY`) and `withhold`
//! (the column left out for the unit). The policy is refused if a column is not one it lands,
//! if a step does not suit the action that made the column, or if the patient identifier is not
//! landed as a pseudonym (patients could not be counted).
//!
//! ## Measuring it
//!
//! `sluice disclosure check` reads each dataset's table ([`scan`]) one release unit at a time
//! and reports, per unit ([`UnitAssessment`]): the records and patients, the smallest class,
//! the classes, records and patients below k, whether the threshold is met, and which columns
//! drive the risk (how many records would still be at risk with each column left out). It also
//! shows what enforcement would do to the unit ([`enforce`]): how far each ladder is climbed and
//! how many records are suppressed.
//!
//! ## What it does not cover
//!
//! Classes are measured per dataset. A patient's records in two datasets of one purpose join
//! by pseudonym, and their combined quasi-identifiers can single them out where neither does
//! alone; `docs/GOVERNANCE.md` says how that residual risk is handled.

pub mod classes;
pub mod enforce;
mod hierarchy;
pub mod release;
pub mod rules;
pub mod scan;
#[cfg(test)]
mod tests;

pub use classes::{Measurement, UnitRows, WITHHELD};
pub use enforce::EnforcementPlan;
pub use rules::{DisclosureRules, Generalisation, QuasiIdentifier, ReleaseUnit};

use crate::{
    Result,
    audit::{DisclosureRecord, DisclosureUnitRecord},
    lake::storage::LakeStorage,
    policy::Policy,
};

/// How much one quasi-identifier drives a unit's risk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Driver {
    /// The column.
    pub column: String,
    /// Records that would still be in classes below k were this column left out.
    pub records_at_risk_without: u64,
}

/// The risk of one release unit of one dataset, and what enforcement would do about it.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitAssessment {
    /// `<purpose>/<subject>`.
    pub dataset: String,
    /// The version of the dataset's table measured (none for a dataset without a table).
    pub table_version: Option<u64>,
    /// The release unit (`2026-03`, a partition's value, or [`scan::NO_EVENT_TIME`]).
    pub unit: String,
    /// The classes as landed.
    pub measured: Measurement,
    /// Whether the unit as landed meets the policy's threshold.
    pub meets_threshold: bool,
    /// Each quasi-identifier, the one whose removal leaves fewest records at risk first.
    pub drivers: Vec<Driver>,
    /// For each quasi-identifier, the step enforcement would climb to (`None`: as landed).
    pub generalised_to: Vec<(String, Option<Generalisation>)>,
    /// What enforcement would release and suppress.
    pub enforcement: EnforcementPlan,
}

/// Measures one release unit, whose records `rows` holds for `quasi_identifiers` (the
/// dataset's, from `rules`): its classes, their drivers, and enforcement's plan for it.
pub fn assess(
    dataset: &str,
    table_version: Option<u64>,
    unit: &str,
    rows: &mut UnitRows,
    quasi_identifiers: &[QuasiIdentifier],
    rules: &DisclosureRules,
) -> UnitAssessment {
    let (enforcement, _) = enforce::plan(rows, rules);
    let measured = enforcement.before;
    let mut drivers: Vec<Driver> = quasi_identifiers
        .iter()
        .enumerate()
        .map(|(index, quasi_identifier)| {
            let mut levels = vec![0; quasi_identifiers.len()];
            levels[index] = WITHHELD;
            let (without, _) = rows.measure(&levels, rules.k, None);
            Driver { column: quasi_identifier.column.clone(), records_at_risk_without: without.records_at_risk }
        })
        .collect();
    drivers.sort_by_key(|driver| driver.records_at_risk_without);
    let generalised_to = quasi_identifiers
        .iter()
        .zip(&enforcement.levels)
        .map(|(q, level)| (q.column.clone(), level.checked_sub(1).map(|step| q.ladder[step])))
        .collect();
    UnitAssessment {
        dataset: dataset.to_owned(),
        table_version,
        unit: unit.to_owned(),
        meets_threshold: rules.met_by(measured.records_at_risk, measured.records),
        measured,
        drivers,
        generalised_to,
        enforcement,
    }
}

/// Assesses every release unit of every dataset of `purpose` in the lake, one unit in memory at
/// a time, calling `each` with each unit's assessment as it is made (for progress output).
pub fn check_purpose(
    storage: &LakeStorage,
    purpose: &str,
    rules: &DisclosureRules,
    mut each: impl FnMut(&UnitAssessment),
) -> Result<Vec<UnitAssessment>> {
    let mut assessments = Vec::new();
    for (dataset, (table_version, keys)) in scan::datasets_of(storage, purpose)? {
        let subject = dataset.split_once('/').map_or(dataset.as_str(), |(_, subject)| subject);
        let Some(quasi_identifiers) = rules.quasi_identifiers(subject) else {
            return Err(crate::Error::Disclosure {
                path: dataset.clone(),
                reason: format!("the policy's [disclosure.quasi_identifiers] does not list subject `{subject}`"),
            });
        };
        for (unit, keys) in scan::by_release_unit(keys, rules.release_unit) {
            let mut rows = scan::read_unit(storage, &keys, quasi_identifiers, &rules.patient_column)?;
            let assessment = assess(&dataset, table_version, &unit, &mut rows, quasi_identifiers, rules);
            each(&assessment);
            assessments.push(assessment);
        }
    }
    Ok(assessments)
}

/// The audit record of a check of `policy`'s purpose: counts and column names only.
pub fn audit_record(policy: &Policy, rules: &DisclosureRules, assessments: &[UnitAssessment]) -> DisclosureRecord {
    DisclosureRecord {
        purpose: policy.purpose().to_owned(),
        policy: policy.label(),
        k: rules.k,
        max_share_at_risk: rules.max_share_at_risk,
        units: assessments
            .iter()
            .map(|a| DisclosureUnitRecord {
                dataset: a.dataset.clone(),
                table_version: a.table_version,
                unit: a.unit.clone(),
                records: a.measured.records,
                patients: a.measured.patients,
                classes: a.measured.classes,
                smallest_class: a.measured.smallest_class,
                records_at_risk: a.measured.records_at_risk,
                patients_at_risk: a.measured.patients_at_risk,
                meets_threshold: a.meets_threshold,
                drivers: a.drivers.iter().map(|d| d.column.clone()).collect(),
                generalised_to: a
                    .generalised_to
                    .iter()
                    .filter_map(|(column, step)| step.map(|step| (column.clone(), step.name())))
                    .collect(),
                records_suppressed: a.enforcement.records_suppressed(),
                exceeded_suppression_limit: a.enforcement.exceeded_suppression_limit,
            })
            .collect(),
    }
}
