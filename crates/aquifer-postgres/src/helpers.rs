//! Helpers that run one statement or one transaction on a pooled connection, record
//! `db.client.operation.duration` and retry transient failures with the pool's [`RetryPolicy`].
//!
//! A statement is given as a closure that builds the query (`|| sqlx::query("...").bind(id)`), because sqlx
//! consumes a query when it runs it: each attempt builds a fresh one.
//!
//! [`RetryPolicy`]: aquifer_core::RetryPolicy

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use futures_util::TryStreamExt;
use sqlx::postgres::{PgArguments, PgConnection, PgDatabaseError, PgRow, PgSeverity, PgStatement, Postgres};
use sqlx::{Connection, Either, Execute, Executor, FromRow, SqlStr};

use crate::{PgPool, PgPoolError, PgPooled};

/// A boxed future, as returned by the closure given to [`transaction`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs a query and returns its first row mapped to `O`; fails with [`sqlx::Error::RowNotFound`] (inside
/// [`PgPoolError::Backend`]) when there is none. Like sqlx's `fetch_one`, every row is read before returning,
/// so an error reported after the first row (a deferred constraint) is not missed.
///
/// Records `db.client.operation.duration` per attempt with `db.operation.name` (the statement's first
/// keyword) and, on failure, `error.type`; retries serialization failures (40001), deadlocks (40P01) and a
/// connection the server closed before reporting the statement complete, when nothing can have been
/// committed (docs/postgres.md, "Helpers: metrics and retries").
///
/// Cancel safety: dropping the future drops the attempt in flight; the connection goes back to the pool,
/// which drains or discards it before anyone else uses it.
///
/// ```no_run
/// # async fn f(pool: &aquifer_postgres::PgPool) -> Result<(), aquifer_postgres::PgPoolError> {
/// let (n,): (i64,) = aquifer_postgres::fetch_one(pool, || sqlx::query("SELECT $1::int8").bind(42_i64)).await?;
/// # Ok(()) }
/// ```
pub async fn fetch_one<'q, O, Q>(pool: &PgPool, query: impl FnMut() -> Q) -> Result<O, PgPoolError>
where
    Q: Execute<'q, Postgres>,
    O: for<'r> FromRow<'r, PgRow>,
{
    let out = run_statement(pool, query, Keep::First).await?;
    let row = out.rows.into_iter().next().ok_or(PgPoolError::Backend(sqlx::Error::RowNotFound))?;
    O::from_row(&row).map_err(PgPoolError::Backend)
}

/// Runs a query and returns its first row mapped to `O`, or `None`. Otherwise as [`fetch_one`].
///
/// Cancel safety: as for [`fetch_one`].
pub async fn fetch_optional<'q, O, Q>(pool: &PgPool, query: impl FnMut() -> Q) -> Result<Option<O>, PgPoolError>
where
    Q: Execute<'q, Postgres>,
    O: for<'r> FromRow<'r, PgRow>,
{
    let out = run_statement(pool, query, Keep::First).await?;
    out.rows.first().map(|row| O::from_row(row)).transpose().map_err(PgPoolError::Backend)
}

/// Runs a query and returns all its rows mapped to `O`. Otherwise as [`fetch_one`].
///
/// Cancel safety: as for [`fetch_one`].
pub async fn fetch_all<'q, O, Q>(pool: &PgPool, query: impl FnMut() -> Q) -> Result<Vec<O>, PgPoolError>
where
    Q: Execute<'q, Postgres>,
    O: for<'r> FromRow<'r, PgRow>,
{
    let out = run_statement(pool, query, Keep::All).await?;
    out.rows.iter().map(|row| O::from_row(row)).collect::<Result<_, _>>().map_err(PgPoolError::Backend)
}

/// Runs a statement and returns the number of rows it affected. Otherwise as [`fetch_one`].
///
/// Cancel safety: as for [`fetch_one`].
pub async fn execute<'q, Q>(pool: &PgPool, query: impl FnMut() -> Q) -> Result<u64, PgPoolError>
where
    Q: Execute<'q, Postgres>,
{
    Ok(run_statement(pool, query, Keep::None).await?.rows_affected)
}

/// Runs `f` inside a transaction on a pooled connection: commits when it returns `Ok`, rolls back when it
/// returns `Err`. On a transient failure (serialization failure 40001, deadlock 40P01, the connection lost
/// before `COMMIT` was sent) the transaction is rolled back and `f` runs again from the start on a fresh
/// transaction, up to the pool's retry policy: never half. A connection lost *during* `COMMIT` is not
/// retried (the server may have committed) and comes back as an error.
///
/// `f` gets the transaction's connection; run statements with `&mut *conn`. It may run several times, so it
/// is `FnMut`: clone what the future needs into it (`let id = id;` then `Box::pin(async move { .. })`).
/// Behind PgBouncer ([`PgConfig::pgbouncer`](crate::PgConfig::pgbouncer)) prepared statements `f` created
/// are deallocated before `COMMIT`, so they cannot collide with other clients' statements on the shared
/// server connection.
///
/// Records `db.client.operation.duration` per attempt with `db.operation.name` = `TRANSACTION`.
///
/// Cancel safety: dropping the future drops the attempt in flight: the open transaction is rolled back (sqlx
/// queues the `ROLLBACK`, the pool sends it before the connection is reused), nothing is committed unless
/// `COMMIT` had already been sent.
///
/// ```no_run
/// # async fn f(pool: &aquifer_postgres::PgPool) -> Result<(), aquifer_postgres::PgPoolError> {
/// let moved = aquifer_postgres::transaction(pool, |conn| Box::pin(async move {
///     sqlx::query("UPDATE accounts SET balance = balance - 10 WHERE id = 1").execute(&mut *conn).await?;
///     sqlx::query("UPDATE accounts SET balance = balance + 10 WHERE id = 2").execute(&mut *conn).await?;
///     Ok(10)
/// })).await?;
/// # Ok(()) }
/// ```
pub async fn transaction<T, F>(pool: &PgPool, mut f: F) -> Result<T, PgPoolError>
where
    F: for<'c> FnMut(&'c mut PgConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>,
{
    // Built on the first failure only: the success path does not pay for the backoff's set-up.
    let mut delays = None;
    let mut verify = false;
    loop {
        let started = Instant::now();
        let result = transaction_attempt(pool, &mut f, verify).await;
        let failure = match result {
            Ok(value) => {
                pool.record_operation(TRANSACTION, started.elapsed(), None);
                return Ok(value);
            }
            Err(failure) => failure,
        };
        pool.record_operation(TRANSACTION, started.elapsed(), Some(&pool_error_type(&failure.error)));
        match delays.get_or_insert_with(|| pool.manager().retry_policy().delays()).next() {
            Some(delay) if failure.retry => {
                tracing::debug!(pool = %pool.name(), error = %failure.error, ?delay, "transaction failed transiently; retrying it");
                verify = failure.session_lost;
                tokio::time::sleep(delay).await;
            }
            _ => return Err(failure.error),
        }
    }
}

const TRANSACTION: &str = "TRANSACTION";

async fn transaction_attempt<T, F>(pool: &PgPool, f: &mut F, verify: bool) -> Result<T, Failure>
where
    F: for<'c> FnMut(&'c mut PgConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>,
{
    let mut conn = checkout(pool, verify).await?;
    let mut tx = conn.begin().await.map_err(Failure::before_commit)?;
    let value = match f(&mut tx).await {
        Ok(value) => value,
        Err(e) => {
            // A failed rollback means a dead connection: the pool discards it on return.
            let _ = tx.rollback().await;
            return Err(Failure::before_commit(e));
        }
    };
    if pool.manager().pgbouncer() {
        sqlx::raw_sql("DEALLOCATE ALL").execute(&mut *tx).await.map_err(Failure::before_commit)?;
    }
    tx.commit().await.map_err(Failure::at_commit)?;
    Ok(value)
}

/// Checks out a connection. After an attempt lost its session, the pool's other connections may be dead
/// too (a failover, a restart, `pg_terminate_backend`) while still inside the validation bypass window: the
/// retry then pings its connection first and takes another if the ping fails, so one dead connection per
/// retry does not exhaust the attempts.
async fn checkout(pool: &PgPool, verify: bool) -> Result<PgPooled, Failure> {
    let mut conn = pool.get().await.map_err(Failure::pool)?;
    if verify {
        for _ in 0..pool.state().max_size {
            if conn.ping().await.is_ok() {
                break;
            }
            conn.discard();
            conn = pool.get().await.map_err(Failure::pool)?;
        }
    }
    Ok(conn)
}

/// A failed attempt and whether another may follow.
struct Failure {
    error: PgPoolError,
    retry: bool,
    /// The attempt's connection died: the next attempt verifies its connection.
    session_lost: bool,
}

impl Failure {
    /// Acquiring failed: the engine already retried connects and waited; another attempt would only wait again.
    fn pool(error: PgPoolError) -> Self {
        Failure { error, retry: false, session_lost: false }
    }

    /// Nothing can have been committed: no `COMMIT` was sent.
    fn before_commit(e: sqlx::Error) -> Self {
        let session_lost = is_session_lost(&e);
        Failure { retry: is_rolled_back(&e) || session_lost, session_lost, error: PgPoolError::Backend(e) }
    }

    /// The server rolled back, or the outcome is unknown (only the former is retried).
    fn at_commit(e: sqlx::Error) -> Self {
        Failure { retry: is_rolled_back(&e), session_lost: is_session_lost(&e), error: PgPoolError::Backend(e) }
    }
}

/// Which rows to keep.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    None,
    First,
    All,
}

#[derive(Default)]
struct Output {
    rows: Vec<PgRow>,
    rows_affected: u64,
}

async fn run_statement<'q, Q>(pool: &PgPool, mut query: impl FnMut() -> Q, keep: Keep) -> Result<Output, PgPoolError>
where
    Q: Execute<'q, Postgres>,
{
    // Built on the first failure only: the success path does not pay for the backoff's set-up.
    let mut delays = None;
    let mut verify = false;
    loop {
        let started = Instant::now();
        let parts = Parts::new(query(), pool.manager().pgbouncer());
        let operation = operation_name(parts.sql.as_str());
        let failure = match statement_attempt(pool, parts, keep, verify).await {
            Ok(out) => {
                pool.record_operation(operation, started.elapsed(), None);
                return Ok(out);
            }
            Err(failure) => failure,
        };
        pool.record_operation(operation, started.elapsed(), Some(&pool_error_type(&failure.error)));
        match delays.get_or_insert_with(|| pool.manager().retry_policy().delays()).next() {
            Some(delay) if failure.retry => {
                tracing::debug!(pool = %pool.name(), error = %failure.error, ?delay, "statement failed transiently; retrying it");
                verify = failure.session_lost;
                tokio::time::sleep(delay).await;
            }
            _ => return Err(failure.error),
        }
    }
}

async fn statement_attempt(pool: &PgPool, parts: Parts, keep: Keep, verify: bool) -> Result<Output, Failure> {
    let args = parts.args.as_ref().map_err(|e| Failure {
        error: PgPoolError::Backend(sqlx::Error::Encode(e.to_string().into())),
        retry: false,
        session_lost: false,
    })?;
    // Behind PgBouncer in transaction mode the parse and the execution of a statement with parameters are
    // two exchanges; only a transaction keeps them on the same server connection.
    let wrap = pool.manager().pgbouncer() && args.is_some();
    let mut conn = checkout(pool, verify).await?;
    if !wrap {
        let (out, completed) = stream(&mut conn, parts, keep).await;
        return out.map_err(|e| {
            let session_lost = is_session_lost(&e);
            let retry = is_rolled_back(&e) || (session_lost && !completed);
            Failure { error: PgPoolError::Backend(e), retry, session_lost }
        });
    }
    let mut tx = conn.begin().await.map_err(Failure::before_commit)?;
    let (out, _) = stream(&mut tx, parts, keep).await;
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            let _ = tx.rollback().await;
            return Err(Failure::before_commit(e));
        }
    };
    tx.commit().await.map_err(Failure::at_commit)?;
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
struct Parts {
    sql: SqlStr,
    statement: Option<PgStatement>,
    args: Result<Option<PgArguments>, sqlx::error::BoxDynError>,
    persistent: bool,
}

impl Parts {
    fn new<'q, Q: Execute<'q, Postgres>>(mut query: Q, pgbouncer: bool) -> Self {
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

/// `db.operation.name`: the statement's first keyword, from a fixed set so the metric's cardinality stays
/// bounded; `_OTHER` for anything else (see [`aquifer_core::metrics::operation_name`]).
pub(crate) fn operation_name(sql: &str) -> &'static str {
    const KNOWN: &[&str] = &[
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
    aquifer_core::metrics::operation_name(sql, KNOWN)
}

/// The server rolled the statement or transaction back and says trying again may succeed.
fn is_rolled_back(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("40001" | "40P01")),
        _ => false,
    }
}

/// The session is gone: the socket failed, or the server ended the session (terminated backend, shutdown,
/// connection exception).
pub(crate) fn is_session_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => {
            let fatal = db
                .try_downcast_ref::<PgDatabaseError>()
                .is_some_and(|pg| matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic));
            fatal || db.code().is_some_and(|c| is_session_ending(&c))
        }
        _ => false,
    }
}

/// SQLSTATEs that end the session: class 08 (connection exception) and 57P01-57P03 (admin shutdown, crash
/// shutdown, cannot connect now).
pub(crate) fn is_session_ending(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
}

/// A low-cardinality `error.type` for a sqlx error: the SQLSTATE for server errors, a class name otherwise.
pub(crate) fn error_type(e: &sqlx::Error) -> Cow<'static, str> {
    Cow::Borrowed(match e {
        sqlx::Error::Database(db) => {
            return match db.code() {
                Some(code) => Cow::Owned(code.into_owned()),
                None => Cow::Borrowed("_OTHER"),
            };
        }
        sqlx::Error::Io(_) => "io",
        sqlx::Error::Tls(_) => "tls",
        sqlx::Error::Protocol(_) => "protocol",
        sqlx::Error::Configuration(_) => "configuration",
        sqlx::Error::RowNotFound => "row_not_found",
        sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_) => "decode",
        sqlx::Error::Encode(_) => "encode",
        _ => "_OTHER",
    })
}

/// `error.type` of a helper's failure: the driver's, or the pool's reason for not handing out a connection.
pub(crate) fn pool_error_type(e: &PgPoolError) -> Cow<'static, str> {
    match e {
        PgPoolError::Backend(e) => error_type(e),
        PgPoolError::Timeout { .. } => Cow::Borrowed("timeout"),
        PgPoolError::Unavailable { .. } => Cow::Borrowed("unavailable"),
        PgPoolError::Closed => Cow::Borrowed("pool_closed"),
        _ => Cow::Borrowed("_OTHER"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_name_is_the_first_keyword() {
        assert_eq!(operation_name("select 1"), "SELECT");
        assert_eq!(operation_name("  /* tag */ -- note\n INSERT INTO t VALUES (1)"), "INSERT");
        assert_eq!(operation_name("(SELECT 1) UNION (SELECT 2)"), "SELECT");
        assert_eq!(operation_name("with x as (select 1) delete from t"), "WITH");
        assert_eq!(operation_name("frobnicate everything"), "_OTHER");
        assert_eq!(operation_name(""), "_OTHER");
    }

    #[test]
    fn session_ending_codes() {
        assert!(is_session_ending("57P01"));
        assert!(is_session_ending("08006"));
        assert!(!is_session_ending("57014"));
        assert!(!is_session_ending("40001"));
    }
}
