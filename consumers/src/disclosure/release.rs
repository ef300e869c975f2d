//! Applying an enforcement plan to landed records: each quasi-identifier generalised to the
//! plan's level, and the records of classes still below k left out.
//!
//! A [`ReleaseRule`] is made from a release unit's [`EnforcementPlan`] and then applied to the
//! unit's record batches one at a time ([`ReleaseRule::apply`]), so a unit is rewritten in
//! bounded memory. The records left out are those whose class, at the plan's levels, is one the
//! plan suppresses: the rule holds those classes (as generalised values, which name nobody on
//! their own but are still kept only in memory), not record positions, so it gives the same
//! answer whatever order the batches come in.

use std::collections::HashSet;

use arrow::{
    array::{Array, ArrayRef, BooleanArray, StringArray, new_null_array},
    compute::{cast, filter_record_batch},
    datatypes::DataType,
    record_batch::RecordBatch,
};

use super::{
    classes::{Levels, UnitRows},
    rules::{Generalisation, QuasiIdentifier},
};

/// What to do to each record of one release unit.
#[derive(Debug, Clone)]
pub struct ReleaseRule {
    /// The unit's quasi-identifiers, with the steps of their ladders.
    quasi_identifiers: Vec<QuasiIdentifier>,
    /// The level of each (0: as landed).
    levels: Levels,
    /// The classes (each quasi-identifier's generalised value, `None` withheld) whose records
    /// are left out.
    suppressed: HashSet<Vec<Option<String>>>,
}

/// A batch as released, and how many of its records were left out.
#[derive(Debug)]
pub struct Released {
    /// The records released, quasi-identifiers generalised, in the batch's schema.
    pub batch: RecordBatch,
    /// Records of the input batch left out.
    pub suppressed: u64,
}

impl ReleaseRule {
    /// The rule for a unit whose records `rows` holds, planned with `levels` and `suppressed`
    /// (per record of `rows`, as [`super::enforce::plan`] returns them).
    pub fn new(quasi_identifiers: &[QuasiIdentifier], rows: &UnitRows, levels: &[usize], suppressed: &[bool]) -> Self {
        let suppressed = (0..rows.len()).filter(|row| suppressed[*row]).map(|row| rows.class_of(row, levels)).collect();
        ReleaseRule { quasi_identifiers: quasi_identifiers.to_vec(), levels: levels.to_vec(), suppressed }
    }

    /// Generalises `batch`'s quasi-identifier columns and leaves out the suppressed records. A
    /// quasi-identifier column the batch does not have stays absent (it reads as null, and was
    /// measured as null). Fails if a column to be generalised is not text.
    pub fn apply(&self, batch: &RecordBatch) -> Result<Released, String> {
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        let mut generalised: Vec<Option<StringArray>> = Vec::with_capacity(self.quasi_identifiers.len());
        for (quasi_identifier, level) in self.quasi_identifiers.iter().zip(&self.levels) {
            let Ok(index) = batch.schema().index_of(&quasi_identifier.column) else {
                generalised.push(None);
                continue;
            };
            let original = batch.column(index);
            let text = cast(original, &DataType::Utf8)
                .map_err(|e| format!("`{}` cannot be read as text: {e}", quasi_identifier.column))?;
            let text = text.as_any().downcast_ref::<StringArray>().expect("cast to Utf8 gives a StringArray");
            let steps = &quasi_identifier.ladder[..*level];
            let values: StringArray = text
                .iter()
                .map(|value| steps.iter().try_fold(value?.to_owned(), |value, step| step.apply(&value)))
                .collect();
            if !steps.is_empty() {
                columns[index] = if steps.last() == Some(&Generalisation::Withhold) {
                    new_null_array(original.data_type(), batch.num_rows())
                } else if matches!(
                    original.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Dictionary(..)
                ) {
                    cast(&values, original.data_type()).map_err(|e| format!("`{}`: {e}", quasi_identifier.column))?
                } else {
                    return Err(format!(
                        "`{}` is {}, not text, so it can only be withheld",
                        quasi_identifier.column,
                        original.data_type()
                    ));
                };
            }
            generalised.push(Some(values));
        }
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|row| {
                let class: Vec<Option<String>> = generalised
                    .iter()
                    .map(|column| column.as_ref().and_then(|c| (!c.is_null(row)).then(|| c.value(row).to_owned())))
                    .collect();
                Some(!self.suppressed.contains(&class))
            })
            .collect();
        let released = RecordBatch::try_new(batch.schema(), columns).map_err(|e| e.to_string())?;
        let released = filter_record_batch(&released, &keep).map_err(|e| e.to_string())?;
        let suppressed = (batch.num_rows() - released.num_rows()) as u64;
        Ok(Released { batch: released, suppressed })
    }
}
