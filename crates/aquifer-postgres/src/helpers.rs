//! Helpers that run one statement or one transaction on a pooled connection, record
//! `db.client.operation.duration` and retry transient failures with the pool's [`RetryPolicy`].
//!
//! A statement is given as a closure that builds the query (`|| sqlx::query("...").bind(id)`), because sqlx
//! consumes a query when it runs it: each attempt builds a fresh one.
//!
//! [`RetryPolicy`]: aquifer_core::RetryPolicy

use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;

use aquifer_core::{Attempt, CallSite, Failure, run_operation, run_operation_at};
use futures_util::TryStreamExt;
use sqlx::postgres::{PgArguments, PgConnection, PgRow, PgStatement, Postgres};
use sqlx::{Connection, Either, Execute, Executor, FromRow, SqlStr};

use crate::error::{is_rolled_back, is_session_lost};
use crate::{PgManager, PgOperationError, PgPool, PgPooled, PgSession};

/// A boxed future, as returned by the closure given to [`PgPool::transaction`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Writes the statement helpers (`fetch_one`, `fetch_optional`, `fetch_all`, `execute`) of a type once for
/// [`PgPool`] and [`PgScoped`](crate::PgScoped): they differ only in their docs and in the session the
/// statement runs with, which the type's `$runs_on` method returns with the pool.
macro_rules! statement_helpers {
    (
        impl $ty:ty, runs_on $runs_on:ident;
        $($(#[$doc:meta])* fn $name:ident -> $out:ty = ($keep:ident, $read:ident);)*
        rows_affected: $(#[$execute_doc:meta])* fn execute;
    ) => {
        impl $ty {
            $(
                $(#[$doc])*
                #[track_caller]
                pub fn $name<'q, O, Q>(
                    &self,
                    query: impl FnMut() -> Q + Send,
                ) -> impl std::future::Future<Output = Result<$out, $crate::PgOperationError>>
                where
                    Q: sqlx::Execute<'q, sqlx::Postgres>,
                    O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
                {
                    let (pool, session) = self.$runs_on();
                    let read = ($crate::helpers::Keep::$keep, $crate::helpers::Output::$read::<O> as _);
                    pool.run_statement(query, read, session, std::panic::Location::caller())
                }
            )*

            $(#[$execute_doc])*
            #[track_caller]
            pub fn execute<'q, Q>(
                &self,
                query: impl FnMut() -> Q + Send,
            ) -> impl std::future::Future<Output = Result<u64, $crate::PgOperationError>>
            where
                Q: sqlx::Execute<'q, sqlx::Postgres>,
            {
                let (pool, session) = self.$runs_on();
                let read = ($crate::helpers::Keep::None, $crate::helpers::Output::rows_affected as _);
                pool.run_statement(query, read, session, std::panic::Location::caller())
            }
        }
    };
}
pub(crate) use statement_helpers;

statement_helpers! {
    impl PgPool, runs_on runs_on;

    /// Runs a query and returns its first row mapped to `O`; fails with [`sqlx::Error::RowNotFound`] (inside
    /// [`PgOperationError::Backend`](aquifer_core::OperationError::Backend)) when there is none. Like sqlx's
    /// `fetch_one`, every row is read before returning, so an error reported after the first row (a
    /// deferred constraint) is not missed.
    ///
    /// The query is given as a closure that builds it (`|| sqlx::query("...").bind(id)`), because sqlx
    /// consumes a query when it runs it: each attempt builds a fresh one.
    ///
    /// Runs through [`aquifer_core::run_operation`]: records `db.client.operation.duration` per attempt
    /// (timed from checkout) with `db.operation.name` (the statement's first keyword) and, on failure,
    /// `error.type`; retries serialization failures (40001), deadlocks (40P01) and a connection the server
    /// closed before reporting the statement complete, when nothing can have been committed
    /// (docs/postgres.md, "Helpers: metrics and retries").
    ///
    /// Cancel safety: dropping the future drops the attempt in flight; the connection goes back to the pool,
    /// which drains or discards it before anyone else uses it.
    ///
    /// ```no_run
    /// # async fn f(pool: &aquifer_postgres::PgPool) -> Result<(), aquifer_postgres::PgOperationError> {
    /// let (n,): (i64,) = pool.fetch_one(|| sqlx::query("SELECT $1::int8").bind(42_i64)).await?;
    /// # Ok(()) }
    /// ```
    fn fetch_one -> O = (First, one);

    /// Runs a query and returns its first row mapped to `O`, or `None`. Otherwise as
    /// [`fetch_one`](PgPool::fetch_one).
    ///
    /// Cancel safety: as for [`fetch_one`](PgPool::fetch_one).
    fn fetch_optional -> Option<O> = (First, optional);

    /// Runs a query and returns all its rows mapped to `O`. Otherwise as [`fetch_one`](PgPool::fetch_one).
    ///
    /// Cancel safety: as for [`fetch_one`](PgPool::fetch_one).
    fn fetch_all -> Vec<O> = (All, all);

    rows_affected:
    /// Runs a statement and returns the number of rows it affected. Otherwise as
    /// [`fetch_one`](PgPool::fetch_one).
    ///
    /// Cancel safety: as for [`fetch_one`](PgPool::fetch_one).
    fn execute;
}

impl PgPool {
    /// The pool and the session the statement helpers run with: no session.
    fn runs_on(&self) -> (&PgPool, Option<&PgSession>) {
        (self, None)
    }

    /// Runs `f` inside a transaction on a pooled connection: commits when it returns `Ok`, rolls back when
    /// it returns `Err`. On a transient failure (serialization failure 40001, deadlock 40P01, the connection
    /// lost before `COMMIT` was sent) the transaction is rolled back and `f` runs again from the start on a
    /// fresh transaction, up to the config's retry policy: never half. A connection lost *during* `COMMIT`
    /// is not retried (the server may have committed) and comes back as an error.
    ///
    /// `f` gets the transaction's connection; run statements with `&mut *conn`. It may run several times,
    /// so it is `FnMut`: clone what the future needs into it (`let id = id;` then
    /// `Box::pin(async move { .. })`). Behind PgBouncer ([`PgConfig::pgbouncer`](crate::PgConfig::pgbouncer))
    /// prepared statements `f` created are deallocated before `COMMIT`, so they cannot collide with other
    /// clients' statements on the shared server connection.
    ///
    /// Records `db.client.operation.duration` per attempt with `db.operation.name` = `TRANSACTION`.
    ///
    /// Cancel safety: dropping the future drops the attempt in flight: the open transaction is rolled back
    /// (sqlx queues the `ROLLBACK`, the pool sends it before the connection is reused), nothing is committed
    /// unless `COMMIT` had already been sent.
    ///
    /// ```no_run
    /// # async fn f(pool: &aquifer_postgres::PgPool) -> Result<(), aquifer_postgres::PgOperationError> {
    /// let moved = pool.transaction(|conn| Box::pin(async move {
    ///     sqlx::query("UPDATE accounts SET balance = balance - 10 WHERE id = 1").execute(&mut *conn).await?;
    ///     sqlx::query("UPDATE accounts SET balance = balance + 10 WHERE id = 2").execute(&mut *conn).await?;
    ///     Ok(10)
    /// })).await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T, F>(&self, f: F) -> Result<T, PgOperationError>
    where
        T: Send,
        F: for<'c> FnMut(&'c mut PgConnection) -> BoxFuture<'c, Result<T, sqlx::Error>> + Send,
    {
        self.run_transaction(f, None).await
    }

    pub(crate) async fn run_transaction<T, F>(
        &self,
        mut f: F,
        session: Option<&PgSession>,
    ) -> Result<T, PgOperationError>
    where
        T: Send,
        F: for<'c> FnMut(&'c mut PgConnection) -> BoxFuture<'c, Result<T, sqlx::Error>> + Send,
    {
        let pgbouncer = self.manager().pgbouncer();
        let attempt = TransactionAttempt { f: &mut f, pgbouncer, session, _output: PhantomData };
        run_operation(self, TRANSACTION, attempt).await
    }

    /// Runs one statement through the operation runner, keeping the rows `keep` says, and reads the helper's
    /// result from them with `read`.
    pub(crate) async fn run_statement<'q, T, Q>(
        &self,
        mut query: impl FnMut() -> Q + Send,
        (keep, read): Reading<T>,
        session: Option<&PgSession>,
        caller: &'static Location<'static>,
    ) -> Result<T, PgOperationError>
    where
        Q: Execute<'q, Postgres>,
    {
        let pgbouncer = self.manager().pgbouncer();
        // The query's type (and its lifetime) stays in this closure, out of the attempt's type.
        let mut build = move || Parts::new(query(), pgbouncer);
        let first = build();
        let operation = operation_name(first.sql.as_str());
        // The text is copied out of `first` (an `Arc` clone), which the attempt takes.
        let sql = first.sql.clone();
        let site = CallSite { statement: sql.as_str(), caller };
        let attempt = StatementAttempt { build, first: Some(first), keep, pgbouncer, session };
        let out = run_operation_at(self, operation, site, attempt).await?;
        read(out).map_err(PgOperationError::Backend)
    }
}

const TRANSACTION: &str = "TRANSACTION";

/// One run of a transaction closure.
struct TransactionAttempt<'f, T, F> {
    f: &'f mut F,
    pgbouncer: bool,
    /// Applied as the transaction's first statement.
    session: Option<&'f PgSession>,
    /// Ties `T` to the attempt, so the attempt's future may hold it.
    _output: PhantomData<fn() -> T>,
}

impl<T, F> Attempt<PgManager> for TransactionAttempt<'_, T, F>
where
    T: Send,
    F: for<'c> FnMut(&'c mut PgConnection) -> BoxFuture<'c, Result<T, sqlx::Error>> + Send,
{
    type Output = T;

    async fn run(&mut self, mut conn: PgPooled) -> Result<T, Failure<sqlx::Error>> {
        let mut tx = conn.begin().await.map_err(before_commit)?;
        if let Some(session) = self.session {
            session.apply_local(&mut tx).await.map_err(before_commit)?;
        }
        let value = match (self.f)(&mut tx).await {
            Ok(value) => value,
            Err(e) => {
                // A failed rollback means a dead connection: the pool discards it on return.
                let _ = tx.rollback().await;
                return Err(before_commit(e));
            }
        };
        if self.pgbouncer {
            sqlx::raw_sql("DEALLOCATE ALL").execute(&mut *tx).await.map_err(before_commit)?;
        }
        tx.commit().await.map_err(at_commit)?;
        Ok(value)
    }
}

/// One run of a statement; the first attempt uses the query built to name the operation.
struct StatementAttempt<'s, B> {
    build: B,
    first: Option<Parts>,
    keep: Keep,
    pgbouncer: bool,
    /// Applied inside the statement's transaction.
    session: Option<&'s PgSession>,
}

impl<B: FnMut() -> Parts + Send> Attempt<PgManager> for StatementAttempt<'_, B> {
    type Output = Output;

    async fn run(&mut self, mut conn: PgPooled) -> Result<Output, Failure<sqlx::Error>> {
        let parts = match self.first.take() {
            Some(parts) => parts,
            None => (self.build)(),
        };
        statement_attempt(&mut conn, parts, self.keep, self.pgbouncer, self.session).await
    }
}

/// Nothing can have been committed: no `COMMIT` was sent.
fn before_commit(e: sqlx::Error) -> Failure<sqlx::Error> {
    let lost = is_session_lost(&e);
    let retry = is_rolled_back(&e) || lost;
    Failure::new(e, retry, lost)
}

/// The server rolled back, or the outcome is unknown (only the former is retried).
fn at_commit(e: sqlx::Error) -> Failure<sqlx::Error> {
    let (retry, lost) = (is_rolled_back(&e), is_session_lost(&e));
    Failure::new(e, retry, lost)
}

/// Which rows to keep.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    None,
    First,
    All,
}

#[derive(Default)]
pub(crate) struct Output {
    rows: Vec<PgRow>,
    rows_affected: u64,
}

/// Which rows a statement helper keeps, and how it reads its result from them.
pub(crate) type Reading<T> = (Keep, fn(Output) -> Result<T, sqlx::Error>);

/// How each statement helper reads its result from the statement's output (after keeping the rows it needs).
impl Output {
    /// The first row mapped to `O`; none is [`sqlx::Error::RowNotFound`].
    pub(crate) fn one<O: for<'r> FromRow<'r, PgRow>>(self) -> Result<O, sqlx::Error> {
        O::from_row(self.rows.first().ok_or(sqlx::Error::RowNotFound)?)
    }

    /// The first row mapped to `O`, if any.
    pub(crate) fn optional<O: for<'r> FromRow<'r, PgRow>>(self) -> Result<Option<O>, sqlx::Error> {
        self.rows.first().map(|row| O::from_row(row)).transpose()
    }

    /// Every row mapped to `O`.
    pub(crate) fn all<O: for<'r> FromRow<'r, PgRow>>(self) -> Result<Vec<O>, sqlx::Error> {
        self.rows.iter().map(|row| O::from_row(row)).collect()
    }

    /// The number of rows the statement affected.
    pub(crate) fn rows_affected(self) -> Result<u64, sqlx::Error> {
        Ok(self.rows_affected)
    }
}

async fn statement_attempt(
    conn: &mut PgConnection,
    parts: Parts,
    keep: Keep,
    pgbouncer: bool,
    session: Option<&PgSession>,
) -> Result<Output, Failure<sqlx::Error>> {
    let args = parts.args.as_ref().map_err(|e| Failure::permanent(sqlx::Error::Encode(e.to_string().into())))?;
    // Behind PgBouncer in transaction mode the parse and the execution of a statement with parameters are
    // two exchanges; only a transaction keeps them on the same server connection.
    // With a session, the settings must share the statement's transaction.
    if !(pgbouncer && args.is_some()) && session.is_none() {
        let (out, completed) = stream(conn, parts, keep).await;
        return out.map_err(|e| {
            let lost = is_session_lost(&e);
            let retry = is_rolled_back(&e) || (lost && !completed);
            Failure::new(e, retry, lost)
        });
    }
    let mut tx = conn.begin().await.map_err(before_commit)?;
    if let Some(session) = session {
        session.apply_local(&mut tx).await.map_err(before_commit)?;
    }
    let (out, _) = stream(&mut tx, parts, keep).await;
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            let _ = tx.rollback().await;
            return Err(before_commit(e));
        }
    };
    tx.commit().await.map_err(at_commit)?;
    Ok(out)
}

/// Runs the statement to its end. Also says whether the server reported it complete (`CommandComplete`):
/// before that report PostgreSQL cannot have committed a statement sent with parameters (the extended
/// protocol commits at `Sync`, after the report), so a lost session is safe to retry.
async fn stream(conn: &mut PgConnection, parts: Parts, keep: Keep) -> (Result<Output, sqlx::Error>, bool) {
    let mut out = Output::default();
    let mut completed = false;
    let mut results = conn.fetch_many(parts);
    loop {
        match results.try_next().await {
            Ok(Some(Either::Left(done))) => {
                completed = true;
                out.rows_affected += done.rows_affected();
            }
            Ok(Some(Either::Right(row))) => {
                if keep == Keep::All || (keep == Keep::First && out.rows.is_empty()) {
                    out.rows.push(row);
                }
            }
            Ok(None) => return (Ok(out), completed),
            Err(e) => return (Err(e), completed),
        }
    }
}

/// A query taken apart, so the helpers can see its SQL (for `db.operation.name`) and its arguments (for
/// PgBouncer mode), and can turn named prepared statements off.
pub(crate) struct Parts {
    pub(crate) sql: SqlStr,
    statement: Option<PgStatement>,
    args: Result<Option<PgArguments>, sqlx::error::BoxDynError>,
    persistent: bool,
}

impl Parts {
    pub(crate) fn new<'q, Q: Execute<'q, Postgres>>(mut query: Q, pgbouncer: bool) -> Self {
        let statement = query.statement().cloned();
        let persistent = query.persistent() && !pgbouncer;
        let args = query.take_arguments();
        Parts { sql: query.sql(), statement, args, persistent }
    }
}

impl<'q> Execute<'q, Postgres> for Parts {
    fn sql(self) -> SqlStr {
        self.sql
    }

    fn statement(&self) -> Option<&PgStatement> {
        self.statement.as_ref()
    }

    fn take_arguments(&mut self) -> Result<Option<PgArguments>, sqlx::error::BoxDynError> {
        std::mem::replace(&mut self.args, Ok(None))
    }

    fn persistent(&self) -> bool {
        self.persistent
    }
}

/// The leading words [`operation_name`] names; any other is `_OTHER`.
const OPERATION_NAMES: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "MERGE",
    "WITH",
    "VALUES",
    "TABLE",
    "COPY",
    "CALL",
    "DO",
    "CREATE",
    "ALTER",
    "DROP",
    "TRUNCATE",
    "BEGIN",
    "START",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "SET",
    "RESET",
    "SHOW",
    "EXPLAIN",
    "LOCK",
    "GRANT",
    "REVOKE",
    "ANALYZE",
    "VACUUM",
    "REFRESH",
    "LISTEN",
    "NOTIFY",
    "UNLISTEN",
    "PREPARE",
    "EXECUTE",
    "DEALLOCATE",
    "DISCARD",
    "COMMENT",
    "REINDEX",
    "CLUSTER",
    "FETCH",
    "DECLARE",
    "CLOSE",
    "MOVE",
];

/// `db.operation.name`: the statement's first keyword, from a fixed set so the metric's cardinality stays
/// bounded; `_OTHER` for anything else (see [`aquifer_core::metrics::operation_name`]).
pub(crate) fn operation_name(sql: &str) -> &'static str {
    aquifer_core::metrics::operation_name(sql, OPERATION_NAMES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_name_is_the_first_keyword_of_a_fixed_list() {
        aquifer_testing::check_operation_names(operation_name, OPERATION_NAMES, &["frobnicate everything"]);
    }
}
