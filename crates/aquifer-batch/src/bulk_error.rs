//! [`BulkError`]: what a bulk helper can fail with.

use crate::ident::IdentError;

/// The error of a bulk helper: a bad identifier or row shape (found before anything is sent), a row too large
/// for any statement, or the driver's error.
#[derive(Debug, thiserror::Error)]
pub enum BulkError<E> {
    /// A table, column, label or property name that cannot be used.
    #[error(transparent)]
    Ident(#[from] IdentError),
    /// The rows do not match the columns: `row` (0-based) has `found` values where `expected` were named.
    #[error("row {row} has {found} values but {expected} columns were named")]
    RowShape {
        /// The 0-based index of the offending row (or column, for column-wise input).
        row: usize,
        /// How many values it has.
        found: usize,
        /// How many columns were named.
        expected: usize,
    },
    /// One row alone does not fit in a statement under the server's limit (MySQL's `max_allowed_packet`).
    #[error(
        "row {row} needs about {size} bytes in a statement; the server accepts at most {limit} (max_allowed_packet)"
    )]
    RowTooLarge {
        /// The 0-based index of the row.
        row: usize,
        /// Its estimated statement size in bytes.
        size: usize,
        /// The limit it exceeds.
        limit: usize,
    },
    /// The driver's error.
    #[error("database error: {0}")]
    Database(#[source] E),
}
