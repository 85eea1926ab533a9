//! The helpers every Aquifer adapter has, on [`SqlitePool`]: [`fetch_one`](SqlitePool::fetch_one),
//! [`fetch_optional`](SqlitePool::fetch_optional) and [`fetch_all`](SqlitePool::fetch_all) on a reader,
//! [`execute`](SqlitePool::execute) and [`transaction`](SqlitePool::transaction) on the writer. Each checks a
//! connection out, runs, returns the connection, records `db.client.operation.duration` (with the statement's
//! keyword as `db.operation.name`, `TRANSACTION` for `transaction`) and retries transient failures with the
//! config's [`RetryPolicy`](aquifer_core::RetryPolicy) ([`SqliteConfig::retry`](crate::SqliteConfig::retry)),
//! all through the engine's one operation runner ([`aquifer_core::run_operation`]).
//!
//! Retried: `SQLITE_BUSY` and `SQLITE_LOCKED` (another connection or process held a lock until `busy_timeout`
//! ran out): the statement or transaction that got them did not apply (SQLite rolls back a statement that
//! could not take its lock, and the helper rolls back the transaction), so running it again cannot apply it
//! twice. SQLite has no connection to lose; nothing else is retried.
//!
//! Statements take `(sql, params)` as in aquifer-mysql: `params` is any [`rusqlite::Params`] that is `Clone`,
//! `Send` and `'static` (a tuple such as `(42, name.clone())`, an array, `()`), because a retry binds them
//! again and a call may run on the blocking pool. Rows convert with [`FromRow`]: tuples of SQL values, or your
//! type implementing `TryFrom<&rusqlite::Row>`.

use std::future::Future;
use std::panic::Location;

use aquifer_core::{Attempt, CallSite, Failure, run_operation, run_operation_at};
use rusqlite::{Connection, Params, Row, Transaction};

use crate::error::is_busy;
use crate::manager::{Role, SqliteManager};
use crate::pool::Inner;
use crate::pool::run::{TRANSACTION, catch, run_blocking, yield_for};
use crate::pool::write::{Inline, write_inline, write_transaction};
use crate::{SqliteOperationError, SqlitePool, SqlitePooled};

/// A type a row converts into: rusqlite's own row conversion (`TryFrom<&Row>`), implemented for tuples of
/// [`FromSql`](rusqlite::types::FromSql) values (`(i64,)`, `(String, Option<i64>)`) and for any type of yours
/// implementing `TryFrom<&'a rusqlite::Row<'a>, Error = rusqlite::Error>`.
pub trait FromRow: for<'r> TryFrom<&'r Row<'r>, Error = rusqlite::Error> {}

impl<T> FromRow for T where T: for<'r> TryFrom<&'r Row<'r>, Error = rusqlite::Error> {}

/// What [`SqlitePool::execute`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Executed {
    /// Rows inserted, updated or deleted by the statement (`sqlite3_changes`).
    pub rows_affected: u64,
    /// The rowid of the connection's most recent successful `INSERT` (`sqlite3_last_insert_rowid`). SQLite does
    /// not reset it for statements that insert nothing, so read it after an `INSERT` only.
    pub last_insert_rowid: i64,
}

impl SqlitePool {
    /// The first row of `sql`'s result, converted to `T`; fails with
    /// [`rusqlite::Error::QueryReturnedNoRows`] when there is none. Runs on a reader (inline on the calling
    /// worker when it may, as [`read`](SqlitePool::read) does), as a cached prepared statement. Retries
    /// `SQLITE_BUSY` / `SQLITE_LOCKED` (see the [module docs](crate::helpers)).
    ///
    /// ```no_run
    /// # async fn demo(pool: &aquifer_sqlite::SqlitePool) -> Result<(), aquifer_sqlite::SqliteOperationError> {
    /// let (title, year): (String, i64) = pool.fetch_one("SELECT title, year FROM plots WHERE id = ?1", (7,)).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// Cancel safety: dropping the future while it waits for a reader gives up the wait; a statement already
    /// running on the blocking pool finishes there and its result is discarded.
    #[track_caller]
    pub fn fetch_one<T, P>(&self, sql: &str, params: P) -> impl Future<Output = Result<T, SqliteOperationError>>
    where
        T: FromRow + Send + 'static,
        P: Params + Clone + Send + 'static,
    {
        let caller = Location::caller();
        async move {
            self.statement(Role::Reader, sql, params, first::<T, P>, caller)
                .await?
                .ok_or(SqliteOperationError::Backend(rusqlite::Error::QueryReturnedNoRows))
        }
    }

    /// The first row of `sql`'s result converted to `T`, or `None` when there is none. See
    /// [`fetch_one`](SqlitePool::fetch_one).
    ///
    /// Cancel safety: as for [`fetch_one`](SqlitePool::fetch_one).
    #[track_caller]
    pub fn fetch_optional<T, P>(
        &self,
        sql: &str,
        params: P,
    ) -> impl Future<Output = Result<Option<T>, SqliteOperationError>>
    where
        T: FromRow + Send + 'static,
        P: Params + Clone + Send + 'static,
    {
        self.statement(Role::Reader, sql, params, first::<T, P>, Location::caller())
    }

    /// Every row of `sql`'s result, converted to `T`. See [`fetch_one`](SqlitePool::fetch_one).
    ///
    /// Cancel safety: as for [`fetch_one`](SqlitePool::fetch_one).
    #[track_caller]
    pub fn fetch_all<T, P>(&self, sql: &str, params: P) -> impl Future<Output = Result<Vec<T>, SqliteOperationError>>
    where
        T: FromRow + Send + 'static,
        P: Params + Clone + Send + 'static,
    {
        self.statement(Role::Reader, sql, params, all::<T, P>, Location::caller())
    }

    /// Runs a statement that returns no rows (`INSERT`, `UPDATE`, `DELETE`, DDL) on the writer, in autocommit
    /// mode. Retries `SQLITE_BUSY` / `SQLITE_LOCKED` (the statement did not apply).
    ///
    /// ```no_run
    /// # async fn demo(pool: &aquifer_sqlite::SqlitePool) -> Result<(), aquifer_sqlite::SqliteOperationError> {
    /// let done = pool.execute("INSERT INTO plots (title, year) VALUES (?1, ?2)", ("Dune".to_owned(), 1965)).await?;
    /// assert_eq!(done.rows_affected, 1);
    /// # Ok(()) }
    /// ```
    ///
    /// Cancel safety: dropping the future while it waits for the writer gives up the wait (nothing is
    /// written); once the statement has started it runs to its end and applies, and only the result is lost.
    #[track_caller]
    pub fn execute<P>(&self, sql: &str, params: P) -> impl Future<Output = Result<Executed, SqliteOperationError>>
    where
        P: Params + Clone + Send + 'static,
    {
        self.statement(Role::Writer, sql, params, execute::<P>, Location::caller())
    }

    /// Runs `body` in a `BEGIN IMMEDIATE` transaction on the writer: committed when it returns `Ok`, rolled
    /// back when it returns `Err` or panics. On `SQLITE_BUSY` / `SQLITE_LOCKED` (another process held the write
    /// lock past `busy_timeout`) the transaction is rolled back and `body` runs again, whole, in a fresh one, up
    /// to the retry policy's attempts: `body` must therefore have no effects outside the database, or tolerate
    /// repeats. `body` is synchronous (rusqlite is) and runs where [`write`](SqlitePool::write) runs; it must
    /// not block on async work.
    ///
    /// ```no_run
    /// # async fn demo(pool: &aquifer_sqlite::SqlitePool) -> Result<(), aquifer_sqlite::SqliteOperationError> {
    /// let author = "Ursula".to_owned();
    /// let id = pool
    ///     .transaction(move |tx| {
    ///         tx.execute("INSERT INTO authors (name) VALUES (?1)", [&author])?;
    ///         let id = tx.last_insert_rowid();
    ///         tx.execute("INSERT INTO plots (author_id, title) VALUES (?1, 'untitled')", [id])?;
    ///         Ok(id)
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// Cancel safety: as for [`write`](SqlitePool::write): dropping the future while it waits for the writer
    /// gives up the wait; once `body` has started, the attempt runs to its end and commits or rolls back as
    /// `body` decides, and no further attempt starts.
    pub async fn transaction<T, F>(&self, body: F) -> Result<T, SqliteOperationError>
    where
        F: FnMut(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let mut charge = None;
        let attempt = Retried {
            inner: self.inner(),
            role: Role::Writer,
            call: "transaction",
            state: Some(body),
            run: transaction::<T, F>,
            in_tx: |tx, body| body(tx),
            charge: &mut charge,
        };
        let result = run_operation(self.writer(), TRANSACTION, attempt).await;
        yield_for(charge).await;
        result
    }

    /// Runs one statement (`sql` with `params`) on `role`'s connection with `run`, retried on `SQLITE_BUSY`.
    async fn statement<P, T>(
        &self,
        role: Role,
        sql: &str,
        params: P,
        run: fn(&Connection, &str, P) -> rusqlite::Result<T>,
        caller: &'static Location<'static>,
    ) -> Result<T, SqliteOperationError>
    where
        P: Params + Clone + Send + 'static,
        T: Send + 'static,
    {
        let mut charge = None;
        let attempt = Retried {
            inner: self.inner(),
            role,
            call: "statement",
            state: Some(Statement { sql: sql.to_owned(), params, run }),
            run: |c, s| (s.run)(c, &s.sql, s.params.clone()),
            in_tx: |tx, s| (s.run)(tx, &s.sql, s.params.clone()),
            charge: &mut charge,
        };
        let site = CallSite { statement: sql, caller };
        let result = run_operation_at(self.inner().pool(role), operation_name(sql), site, attempt).await;
        yield_for(charge).await;
        result
    }
}

/// A statement and its parameters, owned: a call may move to the blocking pool, and a retry binds them again.
struct Statement<P, T> {
    sql: String,
    params: P,
    run: fn(&Connection, &str, P) -> rusqlite::Result<T>,
}

/// An attempt that may run again: `state` (a statement, a transaction body) goes to where the attempt runs and
/// comes back with its result, so a retry finds it.
struct Retried<'a, S, T> {
    inner: &'a Inner,
    role: Role,
    call: &'static str,
    /// `None` only after an attempt that panicked or was cancelled (neither is retried).
    state: Option<S>,
    /// The attempt on a connection of its own: on the blocking pool, or inline for reads.
    run: fn(&mut Connection, &mut S) -> rusqlite::Result<T>,
    /// The same inside a `BEGIN IMMEDIATE` transaction [`write_inline`] opened: how writes run inline (with
    /// `inline_writes`).
    in_tx: fn(&Transaction<'_>, &mut S) -> rusqlite::Result<T>,
    charge: &'a mut Option<std::time::Duration>,
}

impl<S: Send + 'static, T: Send + 'static> Attempt<SqliteManager> for Retried<'_, S, T> {
    type Output = T;

    async fn run(&mut self, mut conn: SqlitePooled) -> Result<T, Failure<rusqlite::Error>> {
        let Some(mut state) = self.state.take() else {
            // Only reached if the runner retried a failure this attempt marked permanent.
            return Err(Failure::permanent(rusqlite::Error::InvalidQuery));
        };
        let (run, in_tx) = (self.run, self.in_tx);
        if let Some(inline) = self.inner.place(self.role) {
            let busy = self.inner.target().config.busy_timeout;
            let outcome = catch(self.call, &mut conn, |c| match self.role {
                Role::Reader => Some(run(c, &mut state)),
                Role::Writer => match write_inline(c, busy, |tx| in_tx(tx, &mut state)) {
                    Inline::Done(result) => Some(result),
                    Inline::Busy(_) => None,
                },
            });
            match outcome {
                // Another process holds the write lock: wait for it on the blocking pool below.
                Ok(None) => drop(inline),
                Ok(Some(result)) => {
                    drop(conn);
                    *self.charge = Some(inline.finish());
                    self.state = Some(state);
                    return result.map_err(|e| self.failure(e));
                }
                Err(panic) => {
                    drop(conn);
                    *self.charge = Some(inline.finish());
                    return Err(Failure::permanent(panic));
                }
            }
        }
        let result = run_blocking(self.call, conn, move |c| {
            let result = run(c, &mut state);
            (state, result)
        })
        .await;
        match result {
            Ok((state, result)) => {
                self.state = Some(state);
                result.map_err(|e| self.failure(e))
            }
            // A panic: never retried.
            Err(panic) => Err(Failure::permanent(panic)),
        }
    }
}

impl<S, T> Retried<'_, S, T> {
    /// `SQLITE_BUSY` / `SQLITE_LOCKED` are retried: the statement or transaction did not apply.
    fn failure(&self, e: rusqlite::Error) -> Failure<rusqlite::Error> {
        let retry = is_busy(&e) && self.state.is_some();
        Failure::new(e, retry, false)
    }
}

fn first<T: FromRow, P: Params>(c: &Connection, sql: &str, params: P) -> rusqlite::Result<Option<T>> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    match rows.next()? {
        Some(row) => T::try_from(row).map(Some),
        None => Ok(None),
    }
}

fn all<T: FromRow, P: Params>(c: &Connection, sql: &str, params: P) -> rusqlite::Result<Vec<T>> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(T::try_from(row)?);
    }
    Ok(out)
}

fn execute<P: Params>(c: &Connection, sql: &str, params: P) -> rusqlite::Result<Executed> {
    let rows = c.prepare_cached(sql)?.execute(params)?;
    Ok(Executed { rows_affected: rows as u64, last_insert_rowid: c.last_insert_rowid() })
}

fn transaction<T, F>(c: &mut Connection, body: &mut F) -> rusqlite::Result<T>
where
    F: FnMut(&Transaction<'_>) -> rusqlite::Result<T>,
{
    write_transaction(c, body)
}

/// The statement keywords [`operation_name`] names; any other leading word is `_OTHER`.
const OPERATION_NAMES: [&str; 22] = [
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "REPLACE",
    "WITH",
    "VALUES",
    "CREATE",
    "DROP",
    "ALTER",
    "PRAGMA",
    "BEGIN",
    "COMMIT",
    "END",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "ATTACH",
    "DETACH",
    "VACUUM",
    "ANALYZE",
    "REINDEX",
];

/// `db.operation.name` of a statement: its leading keyword when it is one of SQLite's statement keywords,
/// `_OTHER` otherwise (a fixed set keeps the metric's cardinality low; see
/// [`aquifer_core::metrics::operation_name`]).
pub(crate) fn operation_name(sql: &str) -> &'static str {
    aquifer_core::metrics::operation_name(sql, &OPERATION_NAMES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_name_is_the_leading_keyword_of_a_fixed_list() {
        aquifer_testing::check_operation_names(operation_name, &OPERATION_NAMES, &["EXPLAIN QUERY PLAN SELECT 1"]);
    }

    #[test]
    fn busy_and_locked_are_retried_nothing_else_is() {
        use rusqlite::ffi;
        let failure = |code| rusqlite::Error::SqliteFailure(ffi::Error::new(code), None);
        assert!(is_busy(&failure(ffi::SQLITE_BUSY)));
        assert!(is_busy(&failure(ffi::SQLITE_LOCKED)));
        assert!(!is_busy(&failure(ffi::SQLITE_CONSTRAINT)));
        assert!(!is_busy(&failure(ffi::SQLITE_READONLY)));
        assert!(!is_busy(&rusqlite::Error::QueryReturnedNoRows));
        let panic = crate::error::panic_error("transaction", Box::new("boom"));
        assert!(!is_busy(&panic));
    }
}
