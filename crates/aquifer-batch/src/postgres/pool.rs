//! [`PgBulk`]: the bulk helpers on aquifer-postgres's pool, through its operation runner.

use std::future::Future;

use aquifer_core::{Attempt, Failure, OperationError, run_operation};
use aquifer_postgres::{PgManager, PgOperationError, PgPool, PgPooled};
use sqlx::postgres::{PgHasArrayType, PgRow};
use sqlx::{AssertSqlSafe, Connection, Encode, FromRow, Postgres, Type};

use super::{Columns, ROWS_PER_STATEMENT, chunk_ranges, insert_sql, select_by_keys_sql, statement};
use crate::bulk_error::BulkError;

/// The error of a helper on the pool: a bad name or row shape (nothing sent), or the pool's operation error
/// (no connection, or the driver's error after retries).
pub type PgBulkError = BulkError<PgOperationError>;

/// The bulk helpers of [`aquifer_batch::postgres`](crate::postgres) on a [`PgPool`]: each checks a connection
/// out, runs through the pool's operation runner (transient failures retried by the pool's retry policy,
/// `db.client.operation.duration` recorded, the N+1 detector watching) and returns the connection. Results are
/// typed with sqlx's [`FromRow`].
///
/// ```no_run
/// # async fn f(pool: &aquifer_postgres::PgPool) -> Result<(), aquifer_batch::BulkError<aquifer_postgres::PgOperationError>> {
/// use aquifer_batch::postgres::{Columns, PgBulk};
///
/// let rows = Columns::new().column("album_id", vec![1_i32, 1]).column("title", vec!["Intro", "Outro"]);
/// let ids: Vec<(i64,)> = pool.insert_returning("tracks", &rows, &["id"]).await?;
/// let titles: Vec<(i32, String)> = pool.fetch_by_keys("tracks", &["album_id", "title"], "album_id", &[1]).await?;
/// # Ok(()) }
/// ```
pub trait PgBulk {
    /// [`fetch_by_keys`](super::fetch_by_keys) on a pooled connection: one `= ANY($1)` statement, retried as a
    /// read.
    fn fetch_by_keys<K, V>(
        &self,
        table: &str,
        columns: &[&str],
        key_column: &str,
        keys: &[K],
    ) -> impl Future<Output = Result<Vec<V>, PgBulkError>> + Send
    where
        K: for<'q> Encode<'q, Postgres> + Type<Postgres> + PgHasArrayType + Sync,
        V: for<'r> FromRow<'r, PgRow> + Send + Unpin;

    /// [`insert`](super::insert) on a pooled connection. Up to [`ROWS_PER_STATEMENT`] rows are one statement,
    /// retried when it cannot have applied; more run in one transaction, not retried.
    fn insert(&self, table: &str, rows: &Columns) -> impl Future<Output = Result<u64, PgBulkError>> + Send;

    /// [`upsert`](super::upsert) on a pooled connection; retried as [`insert`](PgBulk::insert).
    fn upsert(
        &self,
        table: &str,
        rows: &Columns,
        conflict_columns: &[&str],
    ) -> impl Future<Output = Result<u64, PgBulkError>> + Send;

    /// [`insert_returning`](super::insert_returning) on a pooled connection; retried as [`insert`](PgBulk::insert).
    fn insert_returning<V>(
        &self,
        table: &str,
        rows: &Columns,
        returning: &[&str],
    ) -> impl Future<Output = Result<Vec<V>, PgBulkError>> + Send
    where
        V: for<'r> FromRow<'r, PgRow> + Send + Unpin;
}

impl PgBulk for PgPool {
    async fn fetch_by_keys<K, V>(
        &self,
        table: &str,
        columns: &[&str],
        key_column: &str,
        keys: &[K],
    ) -> Result<Vec<V>, PgBulkError>
    where
        K: for<'q> Encode<'q, Postgres> + Type<Postgres> + PgHasArrayType + Sync,
        V: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        let sql = select_by_keys_sql(table, columns, key_column)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.fetch_all(|| sqlx::query(AssertSqlSafe(sql.clone())).bind(keys)).await?)
    }

    async fn insert(&self, table: &str, rows: &Columns) -> Result<u64, PgBulkError> {
        let sql = insert_sql(table, rows, None, None).map_err(BulkError::from_driver)?;
        write(self, &sql, rows).await
    }

    async fn upsert(&self, table: &str, rows: &Columns, conflict_columns: &[&str]) -> Result<u64, PgBulkError> {
        let sql = insert_sql(table, rows, Some(conflict_columns), None).map_err(BulkError::from_driver)?;
        write(self, &sql, rows).await
    }

    async fn insert_returning<V>(&self, table: &str, rows: &Columns, returning: &[&str]) -> Result<Vec<V>, PgBulkError>
    where
        V: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        let sql = insert_sql(table, rows, None, Some(returning)).map_err(BulkError::from_driver)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        if rows.len() <= ROWS_PER_STATEMENT {
            // One statement: the pool's `fetch_all` retries it only when it cannot have applied.
            return Ok(self.fetch_all(|| statement(&sql, rows, 0..rows.len())).await?);
        }
        let (_, returned) = run_operation(self, "INSERT", Chunks { sql: &sql, rows, returning: true }).await?;
        returned.iter().map(|row| V::from_row(row)).collect::<Result<_, _>>().map_err(backend)
    }
}

/// A driver error as the pool's.
fn backend(e: sqlx::Error) -> PgBulkError {
    BulkError::Database(OperationError::Backend(e))
}

/// An insert or upsert: one statement through the pool's `execute`, or a transaction of several.
async fn write(pool: &PgPool, sql: &str, rows: &Columns) -> Result<u64, PgBulkError> {
    match rows.len() {
        0 => Ok(0),
        n if n <= ROWS_PER_STATEMENT => Ok(pool.execute(|| statement(sql, rows, 0..n)).await?),
        _ => Ok(run_operation(pool, "INSERT", Chunks { sql, rows, returning: false }).await?.0),
    }
}

/// The statements of an insert of more than [`ROWS_PER_STATEMENT`] rows, in one transaction, as one attempt of
/// the operation runner: timed as an operation, and not retried (the pool's own `transaction` helper would
/// retry it, but it takes only closures that borrow nothing, and `rows` is borrowed).
struct Chunks<'a> {
    sql: &'a str,
    rows: &'a Columns,
    /// Keep the rows a `RETURNING` clause sends back.
    returning: bool,
}

impl Attempt<PgManager> for Chunks<'_> {
    type Output = (u64, Vec<PgRow>);

    async fn run(&mut self, mut conn: PgPooled) -> Result<(u64, Vec<PgRow>), Failure<sqlx::Error>> {
        let mut tx = conn.begin().await.map_err(Failure::permanent)?;
        let (mut affected, mut returned) = (0, Vec::new());
        for range in chunk_ranges(self.rows.len()) {
            let statement = statement(self.sql, self.rows, range);
            if self.returning {
                let rows = statement.fetch_all(&mut *tx).await.map_err(Failure::permanent)?;
                affected += rows.len() as u64;
                returned.extend(rows);
            } else {
                affected += statement.execute(&mut *tx).await.map_err(Failure::permanent)?.rows_affected();
            }
        }
        tx.commit().await.map_err(Failure::permanent)?;
        Ok((affected, returned))
    }
}

