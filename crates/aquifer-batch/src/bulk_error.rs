//! [`BulkError`]: what a bulk helper can fail with.

use crate::ident::IdentError;

/// The error of a bulk helper: a bad identifier or row shape (found before anything is sent), a row too large
/// for any statement, or the driver's error. The message includes the driver error's, so `source()` returns
/// only causes it leaves out ([`aquifer_core::source_not_in`]); [`BulkError::Database`] holds the driver error.
#[derive(Debug)]
pub enum BulkError<E> {
    /// A table, column, label or property name that cannot be used.
    Ident(IdentError),
    /// The rows do not match the columns: `row` (0-based) has `found` values where `expected` were named.
    RowShape {
        /// The 0-based index of the offending row (or column, for column-wise input).
        row: usize,
        /// How many values it has.
        found: usize,
        /// How many columns were named.
        expected: usize,
    },
    /// One row alone does not fit in a statement under the server's limit (MySQL's `max_allowed_packet`).
    RowTooLarge {
        /// The 0-based index of the row.
        row: usize,
        /// Its estimated statement size in bytes.
        size: usize,
        /// The limit it exceeds.
        limit: usize,
    },
    /// The server cannot do what was asked (MySQL has no `INSERT … RETURNING`, MariaDB has).
    Unsupported {
        /// What was asked.
        what: &'static str,
        /// The server, as it named itself (its version string).
        server: String,
    },
    /// The driver's error.
    Database(E),
}

impl<E: std::fmt::Display> std::fmt::Display for BulkError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BulkError::Ident(e) => std::fmt::Display::fmt(e, f),
            BulkError::RowShape { row, found, expected } => {
                write!(f, "row {row} has {found} values but {expected} columns were named")
            }
            BulkError::RowTooLarge { row, size, limit } => write!(
                f,
                "row {row} needs about {size} bytes in a statement; the server accepts at most {limit} (max_allowed_packet)"
            ),
            BulkError::Unsupported { what, server } => write!(f, "{what} is not supported by this server ({server})"),
            BulkError::Database(e) => write!(f, "database error: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for BulkError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let cause: &(dyn std::error::Error + 'static) = match self {
            BulkError::Ident(e) => e,
            BulkError::Database(e) => e,
            BulkError::RowShape { .. } | BulkError::RowTooLarge { .. } | BulkError::Unsupported { .. } => return None,
        };
        aquifer_core::source_not_in(&self.to_string(), cause)
    }
}

impl<E> From<IdentError> for BulkError<E> {
    fn from(e: IdentError) -> Self {
        BulkError::Ident(e)
    }
}

/// A failed checkout, for code that checks a connection out itself and then calls a connection-level helper:
/// `let mut conn = pool.get().await?;` in a function returning `BulkError<PgOperationError>` (or another
/// adapter's operation error).
impl<E, C> From<aquifer_core::PoolError<C>> for BulkError<aquifer_core::OperationError<E, C>>
where
    E: std::error::Error + 'static,
    C: std::error::Error + 'static,
{
    fn from(e: aquifer_core::PoolError<C>) -> Self {
        BulkError::Database(aquifer_core::OperationError::Acquire(e))
    }
}

/// An adapter helper's error (`pool.fetch_all(..).await?`) in a function returning a pool-level bulk helper's
/// error.
impl<E, C> From<aquifer_core::OperationError<E, C>> for BulkError<aquifer_core::OperationError<E, C>>
where
    E: std::error::Error + 'static,
    C: std::error::Error + 'static,
{
    fn from(e: aquifer_core::OperationError<E, C>) -> Self {
        BulkError::Database(e)
    }
}

impl<E: std::error::Error + 'static, C: std::error::Error + 'static> BulkError<aquifer_core::OperationError<E, C>> {
    /// A connection-level helper's error as a pool-level one: the driver's error becomes
    /// [`OperationError::Backend`](aquifer_core::OperationError::Backend).
    pub fn from_driver(e: BulkError<E>) -> Self {
        match e {
            BulkError::Ident(e) => BulkError::Ident(e),
            BulkError::RowShape { row, found, expected } => BulkError::RowShape { row, found, expected },
            BulkError::RowTooLarge { row, size, limit } => BulkError::RowTooLarge { row, size, limit },
            BulkError::Unsupported { what, server } => BulkError::Unsupported { what, server },
            BulkError::Database(e) => BulkError::Database(aquifer_core::OperationError::Backend(e)),
        }
    }
}
