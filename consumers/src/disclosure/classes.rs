//! Equivalence classes of one release unit, counted in distinct patients.
//!
//! [`UnitRows`] holds a release unit reduced to what classes are made of: for each record, its
//! patient (a 64-bit hash of the pseudonym, never the pseudonym) and, per quasi-identifier, the
//! number of its value in that column's dictionary. That is 8 bytes plus 4 per quasi-identifier
//! a record, whatever the rest of the record holds, and about as much again while one level is
//! measured: a month of a million records measures in about 34 MB (docs/BENCHMARKS.md); the lake
//! is measured one release unit at a time.
//!
//! A class is the set of records that share every quasi-identifier's value at the chosen
//! generalisation levels ([`Levels`]); its size is the number of distinct patients in it. Two
//! patients whose hashes collide count as one, which can only make a class look smaller: the
//! error is on the safe side.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
};

use super::rules::QuasiIdentifier;

/// The level of each quasi-identifier: 0 is the column as landed, `n` its ladder's `n`th step,
/// and [`WITHHELD`] the column left out of the classes altogether.
pub type Levels = Vec<usize>;

/// A level meaning "this column is not part of the classes" (as if withheld for the unit),
/// used to measure how much a column drives the risk.
pub const WITHHELD: usize = usize::MAX;

/// A release unit's records, reduced to patients and dictionary-coded quasi-identifiers.
#[derive(Debug, Clone)]
pub struct UnitRows {
    /// For each quasi-identifier: its values at each level of its ladder (`None` withheld), and,
    /// for levels above 0, the map from a level-0 value's number to its number at that level.
    columns: Vec<ColumnLevels>,
    /// Number of each quasi-identifier's level-0 values, while rows are being added.
    lookup: Vec<Dictionary>,
    /// Each record's patient.
    patients: Vec<u64>,
    /// Each record's level-0 value numbers, one per quasi-identifier, record after record.
    codes: Vec<u32>,
}

/// The numbers of one column's level-0 values: looked up by `&str`, so a record already seen
/// costs no allocation.
#[derive(Debug, Clone, Default)]
struct Dictionary {
    /// Each text value's number.
    text: HashMap<String, u32>,
    /// The number of null, once seen.
    null: Option<u32>,
}

#[derive(Debug, Clone)]
struct ColumnLevels {
    /// The column's ladder.
    ladder: Vec<super::rules::Generalisation>,
    /// `values[level][n]`: the text of value `n` at `level`.
    values: Vec<Vec<Option<String>>>,
    /// `maps[level - 1][n]`: the number at `level` of level-0 value `n`.
    maps: Vec<Vec<u32>>,
}

/// What the classes of a release unit look like at some levels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measurement {
    /// Records measured.
    pub records: u64,
    /// Distinct patients among them.
    pub patients: u64,
    /// Equivalence classes.
    pub classes: u64,
    /// Distinct patients in the smallest class (`None` when there are no records).
    pub smallest_class: Option<u64>,
    /// Classes with fewer than k distinct patients.
    pub classes_at_risk: u64,
    /// Records in those classes.
    pub records_at_risk: u64,
    /// Distinct patients with at least one record in those classes.
    pub patients_at_risk: u64,
}

impl Measurement {
    /// The share of records in classes below k (0 when there are no records).
    pub fn share_of_records_at_risk(&self) -> f64 {
        if self.records == 0 { 0.0 } else { self.records_at_risk as f64 / self.records as f64 }
    }
}

/// The patient a pseudonym stands for, as a 64-bit hash; records without one all count as one
/// patient, so they can never make a class look bigger than it is.
pub fn patient_of(pseudonym: Option<&str>) -> u64 {
    let mut hasher = DefaultHasher::new();
    match pseudonym {
        Some(pseudonym) => pseudonym.hash(&mut hasher),
        None => "\0no patient".hash(&mut hasher),
    }
    hasher.finish()
}

impl UnitRows {
    /// No records yet, for these quasi-identifiers.
    pub fn new(quasi_identifiers: &[QuasiIdentifier]) -> Self {
        UnitRows {
            columns: quasi_identifiers
                .iter()
                .map(|q| ColumnLevels { ladder: q.ladder.clone(), values: vec![Vec::new()], maps: Vec::new() })
                .collect(),
            lookup: vec![Dictionary::default(); quasi_identifiers.len()],
            patients: Vec::new(),
            codes: Vec::new(),
        }
    }

    /// Adds a record: its patient and its value of each quasi-identifier, in the order given
    /// to [`Self::new`].
    pub fn push(&mut self, patient: u64, values: &[Option<&str>]) {
        assert_eq!(values.len(), self.columns.len(), "one value per quasi-identifier");
        for ((column, lookup), value) in self.columns.iter_mut().zip(&mut self.lookup).zip(values) {
            // Levels above 0 are built from the whole dictionary: a new record makes them stale.
            column.values.truncate(1);
            column.maps.clear();
            let known = match value {
                Some(text) => lookup.text.get(*text).copied(),
                None => lookup.null,
            };
            let code = match known {
                Some(code) => code,
                None => {
                    let code = u32::try_from(column.values[0].len()).expect("fewer than 2^32 distinct values");
                    column.values[0].push(value.map(str::to_owned));
                    match value {
                        Some(text) => lookup.text.insert((*text).to_owned(), code),
                        None => lookup.null.replace(code),
                    };
                    code
                }
            };
            self.codes.push(code);
        }
        self.patients.push(patient);
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.patients.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.patients.is_empty()
    }

    /// Number of quasi-identifiers.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// Highest level of quasi-identifier `column` (the length of its ladder).
    pub fn top_level(&self, column: usize) -> usize {
        self.columns[column].ladder.len()
    }

    /// Distinct values of quasi-identifier `column` at `level` (after [`Self::finish`]).
    pub fn distinct_values(&self, column: usize, level: usize) -> usize {
        self.columns[column].values.get(level).map_or(0, Vec::len)
    }

    /// Builds every level's dictionary from the level-0 values. Called once all records are in;
    /// [`Self::measure`] calls it if needed.
    pub fn finish(&mut self) {
        for column in &mut self.columns {
            column.values.truncate(1);
            column.maps.clear();
            let mut previous: Vec<u32> = (0..column.values[0].len() as u32).collect();
            for (level, step) in column.ladder.iter().enumerate() {
                let mut numbers: HashMap<Option<String>, u32> = HashMap::new();
                let mut texts: Vec<Option<String>> = Vec::new();
                let below = &column.values[level];
                let map_below: Vec<u32> = below
                    .iter()
                    .map(|value| {
                        let up = value.as_deref().and_then(|v| step.apply(v));
                        *numbers.entry(up).or_insert_with_key(|up| {
                            texts.push(up.clone());
                            texts.len() as u32 - 1
                        })
                    })
                    .collect();
                previous = previous.iter().map(|n| map_below[*n as usize]).collect();
                column.maps.push(previous.clone());
                column.values.push(texts);
            }
        }
    }

    /// The value number of record `row`'s quasi-identifier `column` at `level`.
    fn code(&self, row: usize, column: usize, level: usize) -> u32 {
        let code = self.codes[row * self.columns.len() + column];
        match level {
            0 => code,
            WITHHELD => 0,
            level => self.columns[column].maps[level - 1][code as usize],
        }
    }

    /// Record `row`'s class key at `levels`: each quasi-identifier's text (`None` withheld).
    pub fn class_of(&self, row: usize, levels: &[usize]) -> Vec<Option<String>> {
        (0..self.columns.len())
            .map(|column| match levels[column] {
                WITHHELD => None,
                level => self.columns[column].values[level][self.code(row, column, level) as usize].clone(),
            })
            .collect()
    }

    /// The classes at `levels` of the records not `excluded`, with `k` the smallest safe size.
    /// Also says, per record, whether it is in a class below `k`.
    pub fn measure(&mut self, levels: &[usize], k: u32, excluded: Option<&[bool]>) -> (Measurement, Vec<bool>) {
        if self.columns.iter().any(|c| c.values.len() != c.ladder.len() + 1) {
            self.finish();
        }
        self.measure_finished(levels, k, excluded)
    }

    fn measure_finished(&self, levels: &[usize], k: u32, excluded: Option<&[bool]>) -> (Measurement, Vec<bool>) {
        assert_eq!(levels.len(), self.columns.len(), "one level per quasi-identifier");
        let mut class_numbers: HashMap<Box<[u32]>, u32> = HashMap::new();
        let mut key: Vec<u32> = Vec::with_capacity(self.columns.len());
        // (class, patient, record) for every record measured.
        let mut members: Vec<(u32, u64, u32)> = Vec::with_capacity(self.len());
        for row in 0..self.len() {
            if excluded.is_some_and(|excluded| excluded[row]) {
                continue;
            }
            key.clear();
            key.extend((0..self.columns.len()).map(|column| self.code(row, column, levels[column])));
            let next = class_numbers.len() as u32;
            let class = match class_numbers.get(key.as_slice()) {
                Some(class) => *class,
                None => {
                    class_numbers.insert(key.clone().into_boxed_slice(), next);
                    next
                }
            };
            members.push((class, self.patients[row], row as u32));
        }
        drop(class_numbers);
        members.sort_unstable();
        let mut measurement = Measurement { records: members.len() as u64, ..Measurement::default() };
        let mut at_risk = vec![false; self.len()];
        let mut patients_at_risk: Vec<u64> = Vec::new();
        for class in members.chunk_by(|a, b| a.0 == b.0) {
            let patients = 1 + class.windows(2).filter(|pair| pair[0].1 != pair[1].1).count() as u64;
            measurement.classes += 1;
            measurement.smallest_class = Some(measurement.smallest_class.map_or(patients, |s| s.min(patients)));
            if patients < u64::from(k) {
                measurement.classes_at_risk += 1;
                measurement.records_at_risk += class.len() as u64;
                for (_, patient, row) in class {
                    at_risk[*row as usize] = true;
                    patients_at_risk.push(*patient);
                }
            }
        }
        patients_at_risk.sort_unstable();
        patients_at_risk.dedup();
        measurement.patients_at_risk = patients_at_risk.len() as u64;
        let mut patients: Vec<u64> = members.iter().map(|m| m.1).collect();
        patients.sort_unstable();
        patients.dedup();
        measurement.patients = patients.len() as u64;
        (measurement, at_risk)
    }
}
