//! [`SqliteBulk`]: the bulk helpers on aquifer-sqlite's pool, and the lookup every pool-level read shares.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::rc::Rc;
use std::sync::Arc;

use aquifer_core::{Attempt, CallSite, Failure, run_operation_at};
use aquifer_sqlite::{FromRow, SqliteManager, SqliteOperationError, SqlitePool, SqlitePooled, is_busy};
use rusqlite::Connection;
use rusqlite::types::Value;

use super::{InsertPlan, query_keys, select_by_keys_sql, variable_limit};
use crate::bulk_error::BulkError;

/// The error of a helper on the pool: a bad name or row shape (nothing sent), or the pool's operation error
/// (no connection, or the driver's error after retries).
pub type SqliteBulkError = BulkError<SqliteOperationError>;

/// The bulk helpers of [`aquifer_batch::sqlite`](crate::sqlite) on a [`SqlitePool`], typed with
/// aquifer-sqlite's [`FromRow`] (a tuple, or your type implementing `TryFrom<&rusqlite::Row>`).
///
/// Lookups run on a reader, on Tokio's blocking pool, through the pool's operation runner: `SQLITE_BUSY` and
/// `SQLITE_LOCKED` are retried by the pool's retry policy, `db.client.operation.duration` is recorded, and the
/// N+1 detector sees the statement (an `IN rarray(?1)`, batched, which it never reports). Writes run in one
/// `BEGIN IMMEDIATE` transaction on the writer through the pool's
/// [`transaction`](SqlitePool::transaction) (retried whole on `SQLITE_BUSY`, recorded as `TRANSACTION`); the
/// rows are copied once, because the transaction's body must own what it uses.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use aquifer_batch::sqlite::SqliteBulk;
/// use rusqlite::types::Value;
///
/// let dir = tempfile::tempdir()?;
/// let pool = aquifer_sqlite::connect(&dir.path().join("music.db").to_string_lossy()).await?;
/// pool.execute("CREATE TABLE tracks (id INTEGER PRIMARY KEY, album_id INTEGER, title TEXT UNIQUE)", ()).await?;
///
/// let rows: Vec<Vec<Value>> =
///     [(1, "Intro"), (1, "Outro"), (2, "Solo")].map(|(a, t)| vec![Value::Integer(a), Value::Text(t.into())]).into();
/// // Generated ids, matched to the input by the title (SQLite returns them in no promised order).
/// let ids: Vec<(i64, String)> = pool.insert_returning("tracks", &["album_id", "title"], &rows, &["id", "title"]).await?;
/// assert_eq!(ids.len(), 3);
///
/// let mut titles: Vec<(i64, String)> = pool.fetch_by_keys("tracks", &["album_id", "title"], "album_id", &[1_i64]).await?;
/// titles.sort();
/// assert_eq!(titles, [(1, "Intro".to_owned()), (1, "Outro".to_owned())]);
/// # Ok(()) }
/// ```
pub trait SqliteBulk {
    /// [`fetch_by_keys`](super::fetch_by_keys) on a reader, typed: the rows of `table` whose `key_column` is one
    /// of `keys`, converted to `V`, in one `IN rarray(?1)` statement whatever the number of keys (no columns
    /// selects `*`). Rows come back in SQLite's order; match them to keys by their key column.
    fn fetch_by_keys<K, V>(
        &self,
        table: &str,
        columns: &[&str],
        key_column: &str,
        keys: &[K],
    ) -> impl Future<Output = Result<Vec<V>, SqliteBulkError>> + Send
    where
        K: Clone + Into<Value> + Sync,
        V: FromRow + Send + 'static;

    /// [`insert`](super::insert) on the writer: multi-row `VALUES` lists under the writer's variable limit, all
    /// in one transaction. Returns the number of rows inserted; on error nothing is inserted.
    fn insert(
        &self,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
    ) -> impl Future<Output = Result<usize, SqliteBulkError>> + Send;

    /// [`upsert`](super::upsert) on the writer, in one transaction as [`insert`](SqliteBulk::insert).
    fn upsert(
        &self,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
        conflict_columns: &[&str],
    ) -> impl Future<Output = Result<usize, SqliteBulkError>> + Send;

    /// [`insert_returning`](super::insert_returning) on the writer, in one transaction as
    /// [`insert`](SqliteBulk::insert): what `RETURNING <returning>` yields for every row inserted, converted
    /// to `V`. SQLite promises no order for these rows: return a column you inserted to match them to the
    /// input.
    fn insert_returning<V>(
        &self,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
        returning: &[&str],
    ) -> impl Future<Output = Result<Vec<V>, SqliteBulkError>> + Send
    where
        V: FromRow + Send + 'static;
}

impl SqliteBulk for SqlitePool {
    async fn fetch_by_keys<K, V>(
        &self,
        table: &str,
        columns: &[&str],
        key_column: &str,
        keys: &[K],
    ) -> Result<Vec<V>, SqliteBulkError>
    where
        K: Clone + Into<Value> + Sync,
        V: FromRow + Send + 'static,
    {
        let sql: Arc<str> = select_by_keys_sql(table, columns, key_column)?.into();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = keys.iter().cloned().map(Into::into).collect();
        Ok(fetch_keys(self, sql, keys, Location::caller()).await?)
    }

    async fn insert(&self, table: &str, columns: &[&str], rows: &[Vec<Value>]) -> Result<usize, SqliteBulkError> {
        let plan = InsertPlan::new(table, columns, rows, None, None).map_err(BulkError::from_driver)?;
        write(self, plan, rows, |plan, c, rows, per| plan.execute(c, rows, per)).await
    }

    async fn upsert(
        &self,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
        conflict_columns: &[&str],
    ) -> Result<usize, SqliteBulkError> {
        let plan =
            InsertPlan::new(table, columns, rows, Some(conflict_columns), None).map_err(BulkError::from_driver)?;
        write(self, plan, rows, |plan, c, rows, per| plan.execute(c, rows, per)).await
    }

    async fn insert_returning<V>(
        &self,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
        returning: &[&str],
    ) -> Result<Vec<V>, SqliteBulkError>
    where
        V: FromRow + Send + 'static,
    {
        let plan = InsertPlan::new(table, columns, rows, None, Some(returning)).map_err(BulkError::from_driver)?;
        write(self, plan, rows, |plan, c, rows, per| plan.returning(c, rows, per)).await
    }
}

/// An insert's statements in one transaction on the writer, through the pool's `transaction` helper.
async fn write<T, F>(pool: &SqlitePool, plan: InsertPlan, rows: &[Vec<Value>], run: F) -> Result<T, SqliteBulkError>
where
    T: Default + Send + 'static,
    F: Fn(&InsertPlan, &Connection, &[Vec<Value>], usize) -> rusqlite::Result<T> + Send + 'static,
{
    if rows.is_empty() {
        return Ok(T::default());
    }
    let rows: Arc<[Vec<Value>]> = rows.into();
    let done = pool
        .transaction(move |tx| match plan.per_statement(variable_limit(tx)?) {
            Ok(per) => run(&plan, tx, &rows, per).map(Ok),
            // A row wider than the writer's variable limit: nothing was written, the empty transaction commits.
            Err(e) => Ok(Err(e)),
        })
        .await?;
    done.map_err(BulkError::from_driver)
}

/// The rows of `sql` (whose `?1` is the key list) for `keys`, on a reader, through the operation runner with
/// `caller` as the call site the N+1 detector notes.
pub(crate) async fn fetch_keys<V>(
    pool: &SqlitePool,
    sql: Arc<str>,
    keys: Vec<Value>,
    caller: &'static Location<'static>,
) -> Result<Vec<V>, SqliteOperationError>
where
    V: FromRow + Send + 'static,
{
    let operation = aquifer_core::metrics::operation_name(&sql, &["SELECT", "WITH", "VALUES"]);
    let attempt = Select { sql: Arc::clone(&sql), keys: Some(keys), _rows: PhantomData };
    run_operation_at(pool.readers(), operation, CallSite { statement: &sql, caller }, attempt).await
}

/// One attempt of a lookup. The pool's own `fetch_all` cannot run it: its parameters must be `Send` (an
/// `rarray` is an `Rc`) and the reader may not have the `rarray` module registered yet; so the attempt runs on
/// the blocking pool with the connection itself, as the pool's closures do.
struct Select<V> {
    sql: Arc<str>,
    /// The keys go to the blocking pool with each attempt and come back for a retry; `None` only after an
    /// attempt that panicked, which is never retried.
    keys: Option<Vec<Value>>,
    _rows: PhantomData<fn() -> V>,
}

impl<V: FromRow + Send + 'static> Attempt<SqliteManager> for Select<V> {
    type Output = Vec<V>;

    async fn run(&mut self, conn: SqlitePooled) -> Result<Vec<V>, Failure<rusqlite::Error>> {
        let Some(keys) = self.keys.take() else {
            return Err(Failure::permanent(rusqlite::Error::InvalidQuery));
        };
        let sql = Arc::clone(&self.sql);
        let task = tokio::task::spawn_blocking(move || {
            // Built here: an `Rc` cannot cross threads. The statement cache clears its bindings, so the `Rc` is
            // unique again once the statement is back in the cache.
            let keys = Rc::new(keys);
            let result = query_keys::<V>(&conn, &sql, Rc::clone(&keys));
            drop(conn);
            (Rc::try_unwrap(keys).unwrap_or_else(|keys| keys.to_vec()), result)
        });
        match task.await {
            Ok((keys, result)) => {
                self.keys = Some(keys);
                result.map_err(|e| {
                    let retry = is_busy(&e);
                    Failure::new(e, retry, false)
                })
            }
            Err(join) => Err(Failure::permanent(panic_error(join))),
        }
    }
}

/// A panic of the lookup's task (a row conversion of the caller's that panicked), as rusqlite's error for a
/// failing user function, the variant aquifer-sqlite returns its closures' panics in.
fn panic_error(join: tokio::task::JoinError) -> rusqlite::Error {
    let message: std::sync::Arc<str> =
        if join.is_panic() { crate::batch_loader::panic_message(join.into_panic()) } else { join.to_string().into() };
    rusqlite::Error::UserFunctionError(format!("a lookup on the SQLite pool panicked: {message}").into())
}
