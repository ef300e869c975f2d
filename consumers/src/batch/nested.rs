//! Arrow arrays of struct and list columns, built from their cells when a batch is finished.
//!
//! A nested column is rare and small next to the rest of a row, so its cells are kept as they
//! come and each child becomes an array of its own, recursively, with the parent's nulls on top.

use std::sync::Arc;

use arrow::{
    array::{ArrayRef, ListArray, StructArray},
    buffer::{NullBuffer, OffsetBuffer},
    datatypes::DataType,
};

use super::ColumnBuilder;
use crate::{policy::ColumnKind, pseudonymise::Cell};

/// The array of one column (or nested field) of `kind` holding `cells`, which the pseudonymiser
/// made for that kind (or null).
pub(super) fn array_of(kind: &ColumnKind, cells: Vec<Cell>) -> ArrayRef {
    match kind {
        ColumnKind::Struct(nested) => {
            let DataType::Struct(fields) = kind.data_type() else { unreachable!("a struct kind has a struct type") };
            let valid: Vec<bool> = cells.iter().map(|cell| matches!(cell, Cell::Struct(_))).collect();
            let mut children: Vec<Vec<Cell>> = nested.iter().map(|_| Vec::with_capacity(cells.len())).collect();
            for cell in cells {
                match cell {
                    Cell::Struct(values) => {
                        debug_assert_eq!(values.len(), children.len(), "struct cell does not match its column");
                        for (child, value) in children.iter_mut().zip(values) {
                            child.push(value);
                        }
                    }
                    _ => children.iter_mut().for_each(|child| child.push(Cell::Null)),
                }
            }
            let arrays = nested.iter().zip(children).map(|(field, cells)| array_of(&field.kind, cells)).collect();
            Arc::new(
                StructArray::try_new(fields, arrays, Some(NullBuffer::from(valid)))
                    .expect("children follow the struct's fields, and required children are checked by pseudonymise"),
            )
        }
        ColumnKind::List { item, .. } => {
            let DataType::List(field) = kind.data_type() else { unreachable!("a list kind has a list type") };
            let valid: Vec<bool> = cells.iter().map(|cell| matches!(cell, Cell::List(_))).collect();
            let mut lengths = Vec::with_capacity(cells.len());
            let mut items = Vec::new();
            for cell in cells {
                match cell {
                    Cell::List(values) => {
                        lengths.push(values.len());
                        items.extend(values);
                    }
                    _ => lengths.push(0),
                }
            }
            let values = array_of(item, items);
            Arc::new(
                ListArray::try_new(field, OffsetBuffer::from_lengths(lengths), values, Some(NullBuffer::from(valid)))
                    .expect("items follow the list's item type, and required items are checked by pseudonymise"),
            )
        }
        _ => {
            let mut builder = ColumnBuilder::new(kind);
            for cell in cells {
                builder.append(cell);
            }
            builder.finish()
        }
    }
}
