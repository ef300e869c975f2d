//! Looking for links between purposes as a privacy reviewer would: a column of one purpose's
//! dataset that can serve as a join key (an identifier, a pseudonym, a time) and whose values
//! also appear in a column of another purpose's dataset of the same subject, in few enough rows
//! on both sides to pick rows out.
//!
//! A column can serve as a join key when it is *key-like* in either dataset: a timestamp
//! (compared by its time of day, which a shift in whole days keeps), hex digests (pseudonyms,
//! hashes), or values distinct in at least half the rows (ids, exact times as text). Dates are
//! not: with a few thousand days to choose from, two lakes' dates coincide by chance, and
//! whether a shifted date is the true one is checked row by row against the source instead
//! (see [`crate::ground_truth`]). A shared
//! value that covers many rows on either side (an hour, a sex) joins groups, not rows; one that
//! covers at most [`RARE_ROWS`] rows on both sides joins rows to rows. A column pair links when
//! more than 1% of either column's distinct values are such rare shared values.
//!
//! Clinical content that two purposes both keep as it is (a result, a code, a postcode sector)
//! is not key-like and is not scanned: combinations of such values are quasi-identifiers, whose
//! risk is a matter for disclosure control and for never giving one analyst two purposes
//! (docs/GOVERNANCE.md).

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use arrow::datatypes::DataType;

use crate::lake::{column_strings, every_parquet_file, read_parquet};

/// Most rows a value may cover on each side and still single rows out.
pub const RARE_ROWS: usize = 5;

/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

/// One landed column: its values (as text; timestamps as their time of day) with the number
/// of rows holding each, and whether it can serve as a join key.
#[derive(Debug, Default, Clone)]
pub struct ColumnValues {
    /// Each value, with the number of rows holding it (empty values, nulls, left out).
    pub counts: HashMap<String, usize>,
    /// Whether the column can serve as a join key (see the module documentation).
    pub key_like: bool,
}

impl ColumnValues {
    /// `kind`: `Some(true)` for a timestamp, `Some(false)` for a date, `None` for anything else.
    pub fn from_values<'v>(values: impl IntoIterator<Item = &'v str>, kind: Option<bool>) -> Self {
        let mut counts = HashMap::new();
        let mut rows = 0;
        for value in values.into_iter().filter(|v| !v.is_empty()) {
            *counts.entry(value.to_owned()).or_insert(0) += 1;
            rows += 1;
        }
        let digests = !counts.is_empty()
            && counts.keys().all(|v: &String| v.len() >= 16 && v.bytes().all(|b| b.is_ascii_hexdigit()));
        let key_like = match kind {
            Some(timestamp) => timestamp,
            None => digests || (rows > 0 && counts.len() * 2 >= rows),
        };
        ColumnValues { counts, key_like }
    }
}

/// Every column of a dataset (a purpose's subject), by name, read from its files.
pub fn dataset_columns(dir: &Path) -> BTreeMap<String, ColumnValues> {
    let mut columns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut kinds: BTreeMap<String, bool> = BTreeMap::new();
    // Every file, not only the table's newest version's: analysts can read earlier versions.
    for file in every_parquet_file(dir) {
        let parquet = read_parquet(&file);
        for batch in &parquet.batches {
            for field in batch.schema().fields() {
                let mut values = column_strings(std::slice::from_ref(batch), field.name());
                if matches!(field.data_type(), DataType::Date32) {
                    kinds.insert(field.name().clone(), false);
                }
                if matches!(field.data_type(), DataType::Timestamp(_, _)) {
                    kinds.insert(field.name().clone(), true);
                    for value in &mut values {
                        if let Ok(micros) = value.parse::<i64>() {
                            *value = format!("time of day {}", micros.rem_euclid(DAY_MICROS));
                        }
                    }
                }
                columns.entry(field.name().clone()).or_default().extend(values);
            }
        }
    }
    columns
        .into_iter()
        .map(|(name, values)| {
            let kind = kinds.get(&name).copied();
            (name, ColumnValues::from_values(values.iter().map(String::as_str), kind))
        })
        .collect()
}

/// A link between two columns: how many rare values they share, of how many distinct values each has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The column of the first dataset.
    pub left: String,
    /// The column of the second dataset.
    pub right: String,
    /// How many values the two share that cover at most [`RARE_ROWS`] rows on each side.
    pub shared_rare: usize,
    /// How many distinct values the left column has.
    pub left_distinct: usize,
    /// How many distinct values the right column has.
    pub right_distinct: usize,
}

/// Every column pair of the two datasets that links (see the module documentation).
pub fn links(left: &BTreeMap<String, ColumnValues>, right: &BTreeMap<String, ColumnValues>) -> Vec<Link> {
    let mut found = Vec::new();
    for (left_name, left_values) in left {
        for (right_name, right_values) in right {
            if !left_values.key_like && !right_values.key_like {
                continue;
            }
            let (small, large) = if left_values.counts.len() <= right_values.counts.len() {
                (left_values, right_values)
            } else {
                (right_values, left_values)
            };
            let shared_rare = small
                .counts
                .iter()
                .filter(|(value, rows)| {
                    **rows <= RARE_ROWS && large.counts.get(*value).is_some_and(|n| *n <= RARE_ROWS)
                })
                .count();
            let (left_distinct, right_distinct) = (left_values.counts.len(), right_values.counts.len());
            if shared_rare > 0 && (shared_rare * 100 > left_distinct || shared_rare * 100 > right_distinct) {
                found.push(Link {
                    left: left_name.clone(),
                    right: right_name.clone(),
                    shared_rare,
                    left_distinct,
                    right_distinct,
                });
            }
        }
    }
    found
}

/// Fails if any dataset landed for two of `purposes` under `lake` links to the other's.
pub fn assert_no_links_between_purposes(lake: &Path, purposes: &[&str]) {
    let mut subjects: Vec<String> = Vec::new();
    for purpose in purposes {
        for entry in std::fs::read_dir(lake.join(purpose)).into_iter().flatten() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if !name.starts_with(['_', '.']) && !subjects.contains(&name) {
                subjects.push(name);
            }
        }
    }
    assert!(!subjects.is_empty(), "no datasets under {}", lake.display());
    let mut compared = 0;
    for subject in &subjects {
        let datasets: Vec<(&str, BTreeMap<String, ColumnValues>)> = purposes
            .iter()
            .filter(|p| lake.join(p).join(subject).is_dir())
            .map(|p| (*p, dataset_columns(&lake.join(p).join(subject))))
            .collect();
        for (index, (first, first_columns)) in datasets.iter().enumerate() {
            for (second, second_columns) in &datasets[index + 1..] {
                let found = links(first_columns, second_columns);
                assert!(found.is_empty(), "{subject}: {first} links to {second}: {found:#?}");
                compared += 1;
            }
        }
    }
    assert!(compared > 0, "no dataset was landed for two purposes");
}

/// The scan finds what it looks for: an id kept in both, exact times, times of day kept
/// under a shift in whole days; and does not flag values that cover many rows.
pub fn assert_the_scan_finds_links() {
    let column = |values: Vec<String>| {
        let kind = values.iter().all(|v| v.starts_with("time of day")).then_some(true);
        ColumnValues::from_values(values.iter().map(String::as_str), kind)
    };
    let dataset = |columns: Vec<(&str, Vec<String>)>| -> BTreeMap<String, ColumnValues> {
        columns.into_iter().map(|(name, values)| (name.to_owned(), column(values))).collect()
    };
    let ids: Vec<String> = (0..1_000).map(|i| format!("id-{i}")).collect();
    let times: Vec<String> =
        (0..1_000i64).map(|i| format!("time of day {}", (i * 7_919_000_003).rem_euclid(DAY_MICROS))).collect();
    let sexes: Vec<String> = (0..1_000).map(|i| ["FEMALE", "MALE"][i % 2].to_owned()).collect();
    let other_ids: Vec<String> = (0..1_000).map(|i| format!("other-{i}")).collect();
    let left = dataset(vec![("event_id", ids.clone()), ("occurred_at", times.clone()), ("sex", sexes.clone())]);
    let right = dataset(vec![("event_ref", ids), ("occurred_at_shifted", times), ("sex", sexes.clone())]);
    let found = links(&left, &right);
    let pairs: Vec<(&str, &str)> = found.iter().map(|l| (l.left.as_str(), l.right.as_str())).collect();
    assert_eq!(pairs, [("event_id", "event_ref"), ("occurred_at", "occurred_at_shifted")], "{found:#?}");
    // 1% of 1,000 values is 10: ten rare shared values are allowed, eleven are a link.
    let mostly_other = |shared: usize| -> Vec<String> {
        (0..1_000).map(|i| if i < shared { format!("id-{i}") } else { format!("other-{i}") }).collect()
    };
    let ids: Vec<String> = (0..1_000).map(|i| format!("id-{i}")).collect();
    let left = dataset(vec![("event_id", ids)]);
    assert!(links(&left, &dataset(vec![("x", mostly_other(10))])).is_empty());
    assert_eq!(links(&left, &dataset(vec![("x", mostly_other(11))])).len(), 1);
    assert!(links(&left, &dataset(vec![("sex", sexes), ("y", other_ids)])).is_empty());
    // Content that is not key-like (results with a few rows each) is not scanned.
    let results: Vec<String> = (0..1_000).map(|i| format!("{}.0", i % 300)).collect();
    let content = dataset(vec![("value", results.clone())]);
    assert!(links(&content, &dataset(vec![("value", results)])).is_empty());
    // A pseudonym column is key-like however many rows each value has.
    let pseudonyms: Vec<String> = (0..1_000).map(|i| format!("{:064x}", i % 100)).collect();
    let shared = dataset(vec![("patient_pseudonym", pseudonyms.clone())]);
    let few: Vec<String> = (0..100).map(|i| format!("{i:064x}")).collect();
    assert_eq!(links(&shared, &dataset(vec![("p", few)])).len(), 0, "ten rows a value is not rare on the left");
    let once: Vec<String> = (0..100).map(|i| format!("{i:064x}")).collect();
    assert_eq!(links(&dataset(vec![("p", once.clone())]), &dataset(vec![("q", once)])).len(), 1);
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_scan_finds_links() {
        super::assert_the_scan_finds_links();
    }
}
