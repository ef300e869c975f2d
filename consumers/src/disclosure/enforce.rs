//! Enforcement: how far to generalise a release unit, and which records to suppress, so that
//! no class it releases holds fewer than k distinct patients.
//!
//! Generalisation is global within the unit: a step up one quasi-identifier's ladder applies
//! to every record of the unit, so a column means one thing throughout it (all `40-49`, never
//! `40-49` beside `40-44`, which would let the finer records be subtracted from the coarser
//! class). Steps are taken one at a time, greedily: each time, the step that leaves the fewest
//! records at risk, ties to the quasi-identifier with the most distinct values at its level
//! (as Datafly does: when no single step helps yet, as when age, postcode and code must all be
//! coarsened before any class grows, the most detailed column goes first), then to the one the
//! policy lists first; until the share of records at risk is within the policy's
//! `max_share_at_risk` or every ladder is climbed. The levels kept are the first on that path
//! with the fewest records at risk, so no column is coarsened for nothing. Whatever is still
//! at risk there is suppressed: those records are not released. Suppressing a whole class
//! changes no other class's patients, so afterwards every released class has at least k.
//!
//! The search is not optimal (ARX searches the whole lattice of levels), but it is predictable,
//! explainable in the audit record step by step, and cheap: at most (steps x quasi-identifiers)
//! measurements of the unit.

use super::{
    classes::{Levels, Measurement, UnitRows},
    rules::DisclosureRules,
};

/// What enforcement does to one release unit.
#[derive(Debug, Clone, PartialEq)]
pub struct EnforcementPlan {
    /// The classes as landed (every level 0).
    pub before: Measurement,
    /// The level chosen for each quasi-identifier.
    pub levels: Levels,
    /// The classes at those levels, before suppression.
    pub generalised: Measurement,
    /// The classes released: at `levels`, without the suppressed records.
    pub after: Measurement,
    /// Whether generalising could not bring the share of records at risk within
    /// `max_share_at_risk`, so more records were suppressed than the policy allows for.
    pub exceeded_suppression_limit: bool,
}

impl EnforcementPlan {
    /// Records suppressed.
    pub fn records_suppressed(&self) -> u64 {
        self.generalised.records_at_risk
    }

    /// Whether enforcement changes anything.
    pub fn changes_anything(&self) -> bool {
        self.levels.iter().any(|level| *level > 0) || self.records_suppressed() > 0
    }
}

/// Chooses the levels and the records to suppress for one release unit of a dataset whose
/// quasi-identifiers `rows` was built for. Also returns, per record, whether it is suppressed
/// (in a class still below k at the chosen levels).
pub fn plan(rows: &mut UnitRows, rules: &DisclosureRules) -> (EnforcementPlan, Vec<bool>) {
    let k = rules.k;
    let mut levels: Levels = vec![0; rows.width()];
    let (before, at_risk) = rows.measure(&levels, k, None);
    // The best state so far: fewest records at risk, then the least generalised (the earliest).
    let mut best = (levels.clone(), before, at_risk);
    let mut current = before;
    while !rules.met_by(current.records_at_risk, current.records) {
        let mut step: Option<(usize, Measurement, Vec<bool>)> = None;
        for column in 0..rows.width() {
            if levels[column] >= rows.top_level(column) {
                continue;
            }
            let mut trial = levels.clone();
            trial[column] += 1;
            let (measured, risky) = rows.measure(&trial, k, None);
            let better = match &step {
                None => true,
                Some((chosen, chosen_measured, _)) => {
                    (measured.records_at_risk, std::cmp::Reverse(rows.distinct_values(column, levels[column])))
                        < (
                            chosen_measured.records_at_risk,
                            std::cmp::Reverse(rows.distinct_values(*chosen, levels[*chosen])),
                        )
                }
            };
            if better {
                step = Some((column, measured, risky));
            }
        }
        let Some((column, measured, risky)) = step else { break };
        levels[column] += 1;
        current = measured;
        if measured.records_at_risk < best.1.records_at_risk {
            best = (levels.clone(), measured, risky);
        }
    }
    let (levels, generalised, at_risk) = best;
    let exceeded_suppression_limit = !rules.met_by(generalised.records_at_risk, generalised.records);
    let (after, _) = rows.measure(&levels, k, Some(&at_risk));
    (EnforcementPlan { before, levels, generalised, after, exceeded_suppression_limit }, at_risk)
}
