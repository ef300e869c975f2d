//! Batching output rows into Arrow record batches, one buffer per landed file, and putting a
//! file's rows in an order that says nothing about when they arrived ([`order_rows`]).

use std::sync::Arc;

use arrow::{
    array::{
        ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int32Builder, Int64Builder,
        StringBuilder, TimestampMicrosecondBuilder,
    },
    record_batch::RecordBatch,
};

use crate::{
    policy::{ColumnKind, LandingPlan, Transform},
    pseudonymise::Cell,
};

mod nested;
#[cfg(test)]
mod tests;

/// An Arrow builder for one column.
enum ColumnBuilder {
    Utf8(StringBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Date32(Date32Builder),
    TimestampMicros(TimestampMicrosecondBuilder),
    Decimal128(Decimal128Builder),
    /// Struct and list columns: the cells are kept and turned into arrays when the batch is
    /// finished, child by child (see [`nested::array_of`]).
    Nested(ColumnKind, Vec<Cell>),
}

/// Rows a new builder has room for before it grows. Small, because a lander holds one buffer per
/// source partition, dataset and event date, and there can be tens of thousands of them (research
/// datasets spread a day's events over a year of shifted dates); buffers double as rows arrive.
const INITIAL_ROWS: usize = 8;

impl ColumnBuilder {
    fn new(kind: &ColumnKind) -> Self {
        const ROWS: usize = INITIAL_ROWS;
        match kind {
            ColumnKind::Utf8 => ColumnBuilder::Utf8(StringBuilder::with_capacity(ROWS, ROWS * 16)),
            ColumnKind::Int32 => ColumnBuilder::Int32(Int32Builder::with_capacity(ROWS)),
            ColumnKind::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(ROWS)),
            ColumnKind::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(ROWS)),
            ColumnKind::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(ROWS)),
            ColumnKind::Date32 => ColumnBuilder::Date32(Date32Builder::with_capacity(ROWS)),
            ColumnKind::TimestampMicros => {
                ColumnBuilder::TimestampMicros(TimestampMicrosecondBuilder::with_capacity(ROWS).with_timezone("UTC"))
            }
            ColumnKind::Decimal128 { precision, scale } => ColumnBuilder::Decimal128(
                Decimal128Builder::with_capacity(ROWS)
                    .with_precision_and_scale(*precision, *scale)
                    .expect("planned decimals have a precision Arrow accepts"),
            ),
            ColumnKind::Struct(_) | ColumnKind::List { .. } => ColumnBuilder::Nested(kind.clone(), Vec::new()),
        }
    }

    /// Appends a cell; the pseudonymiser guarantees it has the column's kind (or is null).
    fn append(&mut self, cell: Cell) {
        match (self, cell) {
            (ColumnBuilder::Utf8(b), Cell::Utf8(v)) => b.append_value(v),
            (ColumnBuilder::Int32(b), Cell::Int32(v)) => b.append_value(v),
            (ColumnBuilder::Int64(b), Cell::Int64(v)) => b.append_value(v),
            (ColumnBuilder::Float64(b), Cell::Float64(v)) => b.append_value(v),
            (ColumnBuilder::Boolean(b), Cell::Boolean(v)) => b.append_value(v),
            (ColumnBuilder::Date32(b), Cell::Date32(v)) => b.append_value(v),
            (ColumnBuilder::TimestampMicros(b), Cell::TimestampMicros(v)) => b.append_value(v),
            (ColumnBuilder::Decimal128(b), Cell::Decimal128(v)) => b.append_value(v),
            (ColumnBuilder::Nested(_, cells), cell) => cells.push(cell),
            (builder, cell) => {
                debug_assert_eq!(cell, Cell::Null, "cell kind does not match its column");
                builder.append_null();
            }
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Utf8(b) => b.append_null(),
            ColumnBuilder::Int32(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Boolean(b) => b.append_null(),
            ColumnBuilder::Date32(b) => b.append_null(),
            ColumnBuilder::TimestampMicros(b) => b.append_null(),
            ColumnBuilder::Decimal128(b) => b.append_null(),
            ColumnBuilder::Nested(_, cells) => cells.push(Cell::Null),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::Date32(b) => Arc::new(b.finish()),
            ColumnBuilder::TimestampMicros(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal128(b) => Arc::new(b.finish()),
            ColumnBuilder::Nested(kind, cells) => nested::array_of(kind, std::mem::take(cells)),
        }
    }
}

/// Estimated bytes of one cell in Arrow memory (values, offsets, validity).
fn cell_bytes(cell: &Cell) -> usize {
    match cell {
        Cell::Null | Cell::Boolean(_) => 1,
        Cell::Utf8(text) => text.len() + 4,
        Cell::Int32(_) | Cell::Date32(_) => 4,
        Cell::Int64(_) | Cell::Float64(_) | Cell::TimestampMicros(_) => 8,
        Cell::Decimal128(_) => 16,
        Cell::Struct(cells) | Cell::List(cells) => 4 + cells.iter().map(cell_bytes).sum::<usize>(),
    }
}

/// Rows of one dataset waiting to be written.
pub struct RowBuffer {
    /// The plan the rows follow.
    plan: Arc<LandingPlan>,
    /// One builder per planned column.
    builders: Vec<ColumnBuilder>,
    /// Rows appended since the last [`RowBuffer::finish`].
    rows: usize,
    /// Estimated bytes of those rows in Arrow memory (values, offsets, validity), for rolling
    /// files by size.
    bytes: usize,
}

impl RowBuffer {
    /// An empty buffer for a plan.
    pub fn new(plan: Arc<LandingPlan>) -> Self {
        let builders = plan.columns.iter().map(|c| ColumnBuilder::new(&c.kind)).collect();
        RowBuffer { plan, builders, rows: 0, bytes: 0 }
    }

    /// Appends one row produced by [`crate::pseudonymise::pseudonymise`] for the same plan.
    pub fn push(&mut self, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.builders.len());
        for (builder, cell) in self.builders.iter_mut().zip(row) {
            self.bytes += cell_bytes(&cell);
            builder.append(cell);
        }
        self.rows += 1;
    }

    /// Rows waiting.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Estimated bytes of the rows held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The plan the rows follow.
    pub fn plan(&self) -> &Arc<LandingPlan> {
        &self.plan
    }

    /// Takes the waiting rows as a record batch and empties the buffer.
    pub fn finish(&mut self) -> RecordBatch {
        let columns = self.builders.iter_mut().map(ColumnBuilder::finish).collect();
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(self.plan.arrow_schema.clone(), columns)
            .expect("builders follow the plan's schema, and nullability is checked by pseudonymise")
    }
}

/// File metadata key listing the columns a landed file's rows are sorted by, comma-separated,
/// so that a merged file can be sorted the same way.
pub const SORTED_BY_KEY: &str = "sluice.sorted_by";

/// The columns a landed file's rows are sorted by: the patient pseudonym, the event time as
/// landed, then every other keyed pseudonym (the event pseudonym last), as the plan has them.
/// Each is keyed or shifted under the purpose's own key, so two purposes' files of the same
/// events come out in unrelated orders.
pub fn sort_columns(plan: &LandingPlan) -> Vec<String> {
    let mut columns: Vec<String> = plan.patient_pseudonym_column().map(str::to_owned).into_iter().collect();
    columns.extend(plan.event_time_column.map(|index| plan.columns[index].name.clone()));
    for column in &plan.columns {
        if column.transform == Transform::Hmac && !columns.contains(&column.name) {
            columns.push(column.name.clone());
        }
    }
    columns
}

/// The batch's rows sorted by the named columns (those it has; nulls first), so that the order
/// of a file's rows is not the order its events arrived in: arrival order would line rows up
/// with another purpose's file of the same events, row for row. A batch with none of the
/// columns comes back in a random order.
pub fn order_rows(batch: &RecordBatch, columns: &[String]) -> Result<RecordBatch, arrow::error::ArrowError> {
    use arrow::compute::{SortColumn, SortOptions, lexsort_to_indices, take_record_batch};
    let sort: Vec<SortColumn> = columns
        .iter()
        .filter_map(|name| batch.schema().index_of(name).ok())
        .map(|index| SortColumn {
            values: batch.column(index).clone(),
            options: Some(SortOptions { descending: false, nulls_first: true }),
        })
        .collect();
    let indices = if sort.is_empty() {
        use rand::seq::SliceRandom;
        let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
        order.shuffle(&mut rand::rng());
        arrow::array::UInt32Array::from(order)
    } else {
        lexsort_to_indices(&sort, None)?
    };
    take_record_batch(batch, &indices)
}
