//! The `[disclosure]` table of a policy: which landed columns are quasi-identifiers, the
//! threshold a release unit must meet, and how each quasi-identifier may be generalised.
//!
//! Only the text is read here and checked against the policy's own actions (a quasi-identifier
//! must be a column the policy lands; a generalisation must suit the action that made the
//! column). Measuring and enforcing are in [`super::classes`] and [`super::enforce`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::policy::FieldAction;

/// `[disclosure]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DisclosureFile {
    /// Smallest number of distinct patients an equivalence class may hold.
    k: u32,
    /// Largest share of a release unit's records that may be in classes smaller than `k`
    /// before the unit fails the check; also the most that enforcement suppresses before it
    /// generalises further. Default 0: no record may be at risk.
    #[serde(default)]
    max_share_at_risk: f64,
    /// What is measured and released as one: `month` (the default) or `partition`.
    #[serde(default)]
    release_unit: ReleaseUnit,
    /// For each subject, its quasi-identifier columns. Every subject the policy lands must be
    /// listed (an empty list says, explicitly, that it has none).
    quasi_identifiers: BTreeMap<String, Vec<String>>,
    /// For each quasi-identifier column, its generalisation ladder, finest first.
    #[serde(default)]
    generalise: BTreeMap<String, Vec<String>>,
}

/// What is measured, and released, as one population.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseUnit {
    /// A calendar month of event time: the days of a day-partitioned table together.
    #[default]
    Month,
    /// Each event-time partition of the table (a day or a month, as the policy partitions).
    Partition,
}

impl ReleaseUnit {
    /// The unit as written in a policy.
    pub fn name(self) -> &'static str {
        match self {
            ReleaseUnit::Month => "month",
            ReleaseUnit::Partition => "partition",
        }
    }
}

/// One step up a quasi-identifier's hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Generalisation {
    /// An age band (`40-44`, `90+`) widened to bands of `width` years; bands that reach `top`
    /// open upwards (`80+`).
    AgeBand {
        /// Width of the wider bands, a multiple of the landed width.
        width: u32,
        /// The policy's open top band, which stays open.
        top: u32,
    },
    /// A postcode sector (`LS6 2`) cut to its district, the outward code (`LS6`).
    PostcodeDistrict,
    /// A postcode sector or district cut to its area, the outward code's letters (`LS`).
    PostcodeArea,
    /// A code cut to its first `chars` characters (ICD-10 `E11.9` to `E11` to `E`).
    Prefix {
        /// Characters kept.
        chars: usize,
    },
    /// A `YYYY-MM` month cut to its year.
    Year,
    /// The column withheld (null) for the whole release unit.
    Withhold,
}

impl Generalisation {
    /// The step as written in a policy (`age_band:10`, `postcode_district`, `prefix:3`, ...).
    pub fn name(&self) -> String {
        match self {
            Generalisation::AgeBand { width, .. } => format!("age_band:{width}"),
            Generalisation::PostcodeDistrict => "postcode_district".to_owned(),
            Generalisation::PostcodeArea => "postcode_area".to_owned(),
            Generalisation::Prefix { chars } => format!("prefix:{chars}"),
            Generalisation::Year => "year".to_owned(),
            Generalisation::Withhold => "withhold".to_owned(),
        }
    }
}

/// A quasi-identifier column of one dataset and the steps it may be generalised by.
#[derive(Debug, Clone, PartialEq)]
pub struct QuasiIdentifier {
    /// The landed column.
    pub column: String,
    /// Its generalisations, finest first; level 0 is the column as landed, level `n` applies
    /// `ladder[n - 1]`.
    pub ladder: Vec<Generalisation>,
}

/// A purpose's disclosure control, checked against its policy's actions.
#[derive(Debug, Clone, PartialEq)]
pub struct DisclosureRules {
    /// Smallest number of distinct patients an equivalence class may hold.
    pub k: u32,
    /// Largest share of a release unit's records allowed in classes below `k` (0 to 1).
    pub max_share_at_risk: f64,
    /// What is measured and released as one.
    pub release_unit: ReleaseUnit,
    /// The landed column that identifies the patient (the pseudonym), for counting patients.
    pub patient_column: String,
    /// Each subject's quasi-identifiers, in the order the policy lists them.
    pub subjects: BTreeMap<String, Vec<QuasiIdentifier>>,
}

impl DisclosureRules {
    /// The quasi-identifiers of `subject`, if the rules cover it.
    pub fn quasi_identifiers(&self, subject: &str) -> Option<&[QuasiIdentifier]> {
        self.subjects.get(subject).map(Vec::as_slice)
    }

    /// Whether a release unit with `at_risk` of its `records` in classes below `k` meets the
    /// threshold.
    pub fn met_by(&self, at_risk: u64, records: u64) -> bool {
        records == 0 || at_risk as f64 <= self.max_share_at_risk * records as f64
    }
}

/// Checks `[disclosure]` against the policy's actions: the `subjects` and the field whose
/// landed column identifies the patient.
pub(crate) fn check(
    file: DisclosureFile,
    subjects: &BTreeMap<String, BTreeMap<String, FieldAction>>,
    patient_identifier: &str,
) -> Result<DisclosureRules, String> {
    if file.k < 2 {
        return Err(format!("[disclosure] k must be at least 2, got {}", file.k));
    }
    if !(0.0..1.0).contains(&file.max_share_at_risk) {
        return Err(format!(
            "[disclosure] max_share_at_risk is a share of records, from 0 up to (not including) 1, got {}",
            file.max_share_at_risk
        ));
    }
    let patient_column = patient_column(subjects, patient_identifier)?;
    for subject in subjects.keys() {
        if !file.quasi_identifiers.contains_key(subject) {
            return Err(format!(
                "[disclosure.quasi_identifiers] has no entry for subject `{subject}`: list its quasi-identifier \
                 columns, or write `{subject} = []` if it has none"
            ));
        }
    }
    let mut used_ladders = std::collections::BTreeSet::new();
    let mut checked = BTreeMap::new();
    for (subject, columns) in &file.quasi_identifiers {
        let actions = subjects.get(subject).ok_or_else(|| {
            format!("[disclosure.quasi_identifiers] names subject `{subject}`, which the policy does not land")
        })?;
        let mut quasi_identifiers = Vec::new();
        for column in columns {
            if quasi_identifiers.iter().any(|q: &QuasiIdentifier| &q.column == column) {
                return Err(format!("[disclosure.quasi_identifiers] lists `{column}` twice for `{subject}`"));
            }
            if column == &patient_column {
                return Err(format!(
                    "[disclosure.quasi_identifiers] `{subject}`: `{column}` is the patient pseudonym, which \
                     classes are counted by, not a quasi-identifier"
                ));
            }
            let action = actions
                .iter()
                .find_map(|(field, action)| (action.column(field) == Some(column.as_str())).then_some(action))
                .ok_or_else(|| {
                    format!(
                        "[disclosure.quasi_identifiers] `{subject}` names column `{column}`, which the policy does \
                         not land for `{subject}`"
                    )
                })?;
            let ladder = match file.generalise.get(column) {
                Some(steps) => {
                    used_ladders.insert(column.clone());
                    ladder(column, steps, action)?
                }
                None => Vec::new(),
            };
            quasi_identifiers.push(QuasiIdentifier { column: column.clone(), ladder });
        }
        checked.insert(subject.clone(), quasi_identifiers);
    }
    if let Some(unused) = file.generalise.keys().find(|column| !used_ladders.contains(*column)) {
        return Err(format!(
            "[disclosure.generalise] gives a ladder for `{unused}`, which no subject lists as a quasi-identifier"
        ));
    }
    Ok(DisclosureRules {
        k: file.k,
        max_share_at_risk: file.max_share_at_risk,
        release_unit: file.release_unit,
        patient_column,
        subjects: checked,
    })
}

/// The column the patient identifier lands in: it must be pseudonymised (`hmac`) the same way
/// in every subject, or patients could not be counted.
fn patient_column(
    subjects: &BTreeMap<String, BTreeMap<String, FieldAction>>,
    patient_identifier: &str,
) -> Result<String, String> {
    let mut column: Option<&str> = None;
    for (subject, actions) in subjects {
        match actions.get(patient_identifier) {
            Some(FieldAction::Hmac { column: landed }) => match column {
                None => column = Some(landed),
                Some(first) if first != landed => {
                    return Err(format!(
                        "[disclosure] needs the patient identifier `{patient_identifier}` in one column, but it \
                         lands as `{first}` and, for `{subject}`, as `{landed}`"
                    ));
                }
                Some(_) => {}
            },
            _ => {
                return Err(format!(
                    "[disclosure] counts classes in distinct patients, so `{patient_identifier}` must land as a \
                     pseudonym (`hmac`) in `{subject}`"
                ));
            }
        }
    }
    column.map(str::to_owned).ok_or_else(|| "[disclosure] needs at least one subject".to_owned())
}

/// A column's ladder: each step parsed, suited to the action that made the column, and coarser
/// than the one before.
fn ladder(column: &str, steps: &[String], action: &FieldAction) -> Result<Vec<Generalisation>, String> {
    let mut ladder: Vec<Generalisation> = Vec::new();
    for step in steps {
        let refuse = |why: &str| format!("[disclosure.generalise] `{column}`: step `{step}` {why}");
        if ladder.last() == Some(&Generalisation::Withhold) {
            return Err(refuse("comes after `withhold`, which must be the last step"));
        }
        let (name, argument) = match step.split_once(':') {
            Some((name, argument)) => (name, Some(argument)),
            None => (step.as_str(), None),
        };
        let number = |what: &str| -> Result<u32, String> {
            argument
                .and_then(|a| a.parse::<u32>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| refuse(&format!("needs {what}, as `{name}:N` with N a positive whole number")))
        };
        let next = match name {
            "age_band" => {
                let FieldAction::AgeBand { width: landed, top, .. } = action else {
                    return Err(refuse("needs a column made by `age_band`"));
                };
                let width = number("a band width in years")?;
                let finer = match ladder.last() {
                    Some(Generalisation::AgeBand { width, .. }) => *width,
                    _ => *landed,
                };
                if width <= finer || width % finer != 0 {
                    return Err(refuse(&format!(
                        "must be a multiple of the band before it ({finer} years), and wider"
                    )));
                }
                Generalisation::AgeBand { width, top: *top }
            }
            "postcode_district" => {
                if !matches!(action, FieldAction::PostcodeSector { .. }) || !ladder.is_empty() {
                    return Err(refuse("needs a column made by `postcode_sector`, as its first step"));
                }
                Generalisation::PostcodeDistrict
            }
            "postcode_area" => {
                let after_district = ladder.iter().all(|s| *s == Generalisation::PostcodeDistrict);
                if !matches!(action, FieldAction::PostcodeSector { .. } | FieldAction::PostcodeOutward { .. })
                    || !after_district
                {
                    return Err(refuse("needs a column made by `postcode_sector` or `postcode_outward`"));
                }
                Generalisation::PostcodeArea
            }
            "prefix" => {
                if !matches!(action, FieldAction::Keep {}) {
                    return Err(refuse("needs a column landed with `keep` (a code)"));
                }
                let chars = number("a number of characters")? as usize;
                if let Some(Generalisation::Prefix { chars: before }) = ladder.last()
                    && chars >= *before
                {
                    return Err(refuse(&format!("must keep fewer characters than the step before ({before})")));
                }
                Generalisation::Prefix { chars }
            }
            "year" => {
                if !matches!(action, FieldAction::DateYearMonth { .. }) || !ladder.is_empty() {
                    return Err(refuse("needs a column made by `date_year_month`, as its first step"));
                }
                Generalisation::Year
            }
            "withhold" => Generalisation::Withhold,
            _ => {
                return Err(refuse(
                    "is not a generalisation: use age_band:N, postcode_district, postcode_area, prefix:N, year or \
                     withhold",
                ));
            }
        };
        if name != "age_band" && name != "prefix" && argument.is_some() {
            return Err(refuse("takes no `:` argument"));
        }
        ladder.push(next);
    }
    Ok(ladder)
}
