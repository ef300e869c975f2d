//! The report's disclosure section: each dataset's newest disclosure check (`sluice disclosure
//! check`), per release unit, with small numbers suppressed as everywhere in the report.
//!
//! The size of the smallest class is shown only as below or at least the policy's k: the exact
//! size of a class of 1 to 7 is itself a small number.

use std::{collections::BTreeMap, fmt::Write};

use serde_json::Value;

use super::{
    html::{cell, escape},
    model::{number, text},
};

/// The newest disclosure check of one dataset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatasetDisclosure {
    /// The policy checked against (`name@vN`).
    pub policy: String,
    /// Its k.
    pub k: u64,
    /// Its largest share of records allowed below k, as a percentage (`1.0%`).
    pub share_allowed: String,
    /// When the check was recorded.
    pub checked_at: String,
    /// Each release unit, oldest first.
    pub units: Vec<UnitDisclosure>,
}

/// One release unit as the check measured it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitDisclosure {
    /// The release unit (`2026-03`).
    pub unit: String,
    /// The table version measured.
    pub table_version: Option<u64>,
    /// Records measured.
    pub records: u64,
    /// Records in classes below k.
    pub records_at_risk: u64,
    /// Patients with a record in a class below k.
    pub patients_at_risk: u64,
    /// Whether the smallest class is below k.
    pub smallest_below_k: bool,
    /// Whether the unit meets the threshold.
    pub meets_threshold: bool,
    /// The column driving the risk most, when any record is at risk.
    pub main_driver: Option<String>,
    /// Each column enforcement generalises, and to what.
    pub generalised_to: BTreeMap<String, String>,
    /// Records enforcement suppresses.
    pub records_suppressed: u64,
    /// Whether that is more than the policy allows.
    pub exceeded_suppression_limit: bool,
}

/// Notes a `disclosure` audit record: it replaces the earlier check of each dataset it covers.
pub fn note(checks: &mut BTreeMap<String, DatasetDisclosure>, event: &Value, recorded_at: &str) {
    let k = number(&event["k"]);
    let mut fresh: BTreeMap<String, DatasetDisclosure> = BTreeMap::new();
    for unit in event["units"].as_array().into_iter().flatten() {
        let dataset = unit["dataset"].as_str().unwrap_or("(unnamed)").to_owned();
        let check = fresh.entry(dataset).or_insert_with(|| DatasetDisclosure {
            policy: text(&event["policy"]),
            k,
            share_allowed: format!("{:.1}%", event["max_share_at_risk"].as_f64().unwrap_or(0.0) * 100.0),
            checked_at: recorded_at.to_owned(),
            units: Vec::new(),
        });
        check.units.push(UnitDisclosure {
            unit: text(&unit["unit"]),
            table_version: unit["table_version"].as_u64(),
            records: number(&unit["records"]),
            records_at_risk: number(&unit["records_at_risk"]),
            patients_at_risk: number(&unit["patients_at_risk"]),
            smallest_below_k: unit["smallest_class"].as_u64().is_some_and(|smallest| smallest < k),
            meets_threshold: unit["meets_threshold"].as_bool().unwrap_or(false),
            main_driver: unit["drivers"][0]
                .as_str()
                .filter(|_| number(&unit["records_at_risk"]) > 0)
                .map(str::to_owned),
            generalised_to: unit["generalised_to"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(column, step)| (column.clone(), text(step)))
                .collect(),
            records_suppressed: number(&unit["records_suppressed"]),
            exceeded_suppression_limit: unit["exceeded_suppression_limit"].as_bool().unwrap_or(false),
        });
    }
    checks.extend(fresh);
}

/// The section, or a line saying no check has been recorded.
pub fn render(page: &mut String, checks: &BTreeMap<String, DatasetDisclosure>) {
    page.push_str(r#"<section id="disclosure"><h2>Disclosure risk</h2>"#);
    if checks.is_empty() {
        page.push_str(
            r#"<p class="note">No disclosure check is recorded: run <code>sluice disclosure check</code> for the purposes whose policies declare <code>[disclosure]</code>.</p></section>"#,
        );
        return;
    }
    page.push_str(
        r#"<p class="note">The newest <code>sluice disclosure check</code> of each dataset. Records sharing every quasi-identifier the policy declares form a class; a class below k distinct patients is at risk. A unit meets the threshold when at most the policy's share of its records is at risk. Enforcement generalises the unit along the policy's ladders, then suppresses what is still at risk.</p><table><thead><tr><th>Dataset</th><th>Policy (k, share allowed)</th><th>Unit</th><th>Table version</th><th>Records</th><th>Records at risk</th><th>Patients at risk</th><th>Smallest class</th><th>Threshold</th><th>Driven most by</th><th>Enforcement generalises</th><th>Records suppressed</th></tr></thead><tbody>"#,
    );
    for (dataset, check) in checks {
        for unit in &check.units {
            let generalised: Vec<String> =
                unit.generalised_to.iter().map(|(column, step)| format!("{column} to {step}")).collect();
            let _ = write!(
                page,
                r#"<tr><td>{}</td><td>{} (k = {}, {})</td><td>{}</td><td class="version">{}</td>{}{}{}<td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr>"#,
                escape(dataset),
                escape(&check.policy),
                check.k,
                escape(&check.share_allowed),
                escape(&unit.unit),
                unit.table_version.map(|v| format!("v{v}")).unwrap_or_default(),
                cell(unit.records),
                cell(unit.records_at_risk),
                cell(unit.patients_at_risk),
                if unit.smallest_below_k { format!("below {}", check.k) } else { format!("{} or more", check.k) },
                if unit.meets_threshold { "met" } else { "<b>not met</b>" },
                escape(unit.main_driver.as_deref().unwrap_or("")),
                escape(&format!(
                    "{}{}",
                    if generalised.is_empty() { "nothing".to_owned() } else { generalised.join(", ") },
                    if unit.exceeded_suppression_limit { "; suppresses more than the share allowed" } else { "" }
                )),
                cell(unit.records_suppressed),
            );
        }
    }
    page.push_str("</tbody></table></section>");
}
