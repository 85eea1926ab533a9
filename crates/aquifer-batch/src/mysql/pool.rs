//! [`MySqlBulk`]: the bulk helpers on aquifer-mysql's pool, through its operation runner.

use std::future::Future;
use std::ops::Range;

use aquifer_core::OperationError;
use aquifer_mysql::{MySqlOperationError, MySqlPool};
use mysql_async::prelude::{FromRow, Queryable};
use mysql_async::{Params, Row, TxOpts, Value};

use super::{INSERT_RETURNING, InsertSql, KeyList, MySqlLimits, Suffix, convert, supports_insert_returning};
use crate::bulk_error::BulkError;

/// The error of a helper on the pool: a bad name or row shape, a row too large for any statement (nothing
/// sent), a server without `INSERT … RETURNING`, or the pool's operation error (no connection, or the driver's
/// error after retries).
pub type MySqlBulkError = BulkError<MySqlOperationError>;

/// The bulk helpers of [`aquifer_batch::mysql`](crate::mysql) on a [`MySqlPool`]: each checks a connection out,
/// runs through the pool's operation runner (transient failures retried by the pool's retry policy,
/// `db.client.operation.duration` recorded, the N+1 detector watching) and returns the connection. Results are
/// typed with mysql_async's [`FromRow`].
///
/// `limits`: `None` chunks under the `max_allowed_packet` the pool read when it opened its first connection
/// (one `SELECT @@max_allowed_packet` if it has not opened one yet); `Some` chunks under the limits given. A call
/// that fits in one statement runs it alone (a lookup through the pool's `fetch_all`, a write through its
/// `execute`); several statements run in one transaction through the pool's `transaction` helper (read-only
/// with a consistent snapshot for lookups), which runs them all again after a deadlock or a connection lost
/// before `COMMIT`.
///
/// Cancellation: as the pool's own helpers: dropping the future drops the attempt in flight (a transaction is
/// rolled back, a single write may or may not have run) and the pool closes a connection left mid-reply.
///
/// ```no_run
/// # async fn f(pool: &aquifer_mysql::MySqlPool) -> Result<(), aquifer_batch::mysql::MySqlBulkError> {
/// use aquifer_batch::mysql::MySqlBulk;
/// use mysql_async::Value;
///
/// let rows = vec![vec![Value::from(1), Value::from("Intro")], vec![Value::from(1), Value::from("Outro")]];
/// pool.insert(None, "tracks", &["album_id", "title"], &rows).await?;
/// let titles: Vec<(i32, String)> =
///     pool.fetch_by_keys(None, "tracks", &["album_id", "title"], "album_id", &[1]).await?;
/// // MariaDB 10.5+: the generated ids, in the order of `rows`.
/// let ids: Vec<u64> = pool.insert_returning(None, "tracks", &["album_id", "title"], &rows, &["id"]).await?;
/// # Ok(()) }
/// ```
pub trait MySqlBulk {
    /// [`fetch_by_keys`](super::fetch_by_keys) on pooled connections: the rows of `table` whose `key_column` is
    /// one of `keys`, converted to `V`, in one `IN (…)` statement per chunk of keys; retried as a read.
    fn fetch_by_keys<K, V>(
        &self,
        limits: Option<&MySqlLimits>,
        table: &str,
        columns: &[&str],
        key_column: &str,
        keys: &[K],
    ) -> impl Future<Output = Result<Vec<V>, MySqlBulkError>> + Send
    where
        K: Clone + Into<Value> + Sync,
        V: FromRow + Send + 'static;

    /// [`insert`](super::insert) on a pooled connection. Returns the number of rows inserted; with several
    /// statements, on error none is.
    fn insert(
        &self,
        limits: Option<&MySqlLimits>,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
    ) -> impl Future<Output = Result<u64, MySqlBulkError>> + Send;

    /// [`upsert`](super::upsert) on a pooled connection; run as [`insert`](MySqlBulk::insert).
    fn upsert(
        &self,
        limits: Option<&MySqlLimits>,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
        update_columns: &[&str],
    ) -> impl Future<Output = Result<u64, MySqlBulkError>> + Send;

    /// [`insert_returning`](super::insert_returning) on a pooled connection (MariaDB 10.5+;
    /// [`BulkError::Unsupported`] on MySQL, with nothing inserted): the `returning` columns of every row
    /// inserted, in the order of `rows`. Always one transaction, even for one statement, so that the pool's
    /// retry of a connection lost mid-way never inserts the rows twice.
    fn insert_returning<V>(
        &self,
        limits: Option<&MySqlLimits>,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
        returning: &[&str],
    ) -> impl Future<Output = Result<Vec<V>, MySqlBulkError>> + Send
    where
        V: FromRow + Send + 'static;
}

impl MySqlBulk for MySqlPool {
    async fn fetch_by_keys<K, V>(
        &self,
        limits: Option<&MySqlLimits>,
        table: &str,
        columns: &[&str],
        key_column: &str,
        keys: &[K],
    ) -> Result<Vec<V>, MySqlBulkError>
    where
        K: Clone + Into<Value> + Sync,
        V: FromRow + Send + 'static,
    {
        let list = KeyList::table(table, columns, key_column)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let limits = limits_for(self, limits).await?;
        read_keys(self, &list, keys.iter().cloned().map(Into::into).collect(), &limits).await
    }

    async fn insert(
        &self,
        limits: Option<&MySqlLimits>,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
    ) -> Result<u64, MySqlBulkError> {
        let insert = InsertSql::new(table, columns, Suffix::None)?;
        write(self, limits, &insert, rows).await
    }

    async fn upsert(
        &self,
        limits: Option<&MySqlLimits>,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
        update_columns: &[&str],
    ) -> Result<u64, MySqlBulkError> {
        let insert = InsertSql::new(table, columns, Suffix::Update(update_columns))?;
        write(self, limits, &insert, rows).await
    }

    async fn insert_returning<V>(
        &self,
        limits: Option<&MySqlLimits>,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
        returning: &[&str],
    ) -> Result<Vec<V>, MySqlBulkError>
    where
        V: FromRow + Send + 'static,
    {
        let insert = InsertSql::new(table, columns, Suffix::Returning(returning))?;
        insert.check(rows)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let limits = limits_for(self, limits).await?;
        let ranges = insert.ranges(rows, &limits)?;
        let (insert, ranges) = (&insert, &ranges);
        let outcome = self
            .transaction(|tx| {
                Box::pin(async move {
                    // In the transaction, on its connection: the pool's N+1 detector does not see it, so a loop of
                    // inserts is not reported as a loop of `SELECT VERSION()`.
                    let version: Option<String> = tx.query_first("SELECT VERSION()").await?;
                    let version = version.unwrap_or_default();
                    if !supports_insert_returning(&version) {
                        return Ok(Err(version));
                    }
                    let mut out = Vec::with_capacity(rows.len());
                    for r in ranges {
                        let returned: Vec<Row> = tx.exec(insert.sql(r.len()), insert.params(rows, r.clone())).await?;
                        out.extend(convert::<V>(returned)?);
                    }
                    Ok(Ok(out))
                })
            })
            .await?;
        outcome.map_err(|server| BulkError::Unsupported { what: INSERT_RETURNING, server })
    }
}

/// The limits given, or the server's ([`server_limits`]).
async fn limits_for(pool: &MySqlPool, limits: Option<&MySqlLimits>) -> Result<MySqlLimits, MySqlOperationError> {
    match limits {
        Some(limits) => Ok(*limits),
        None => server_limits(pool).await,
    }
}

/// The server's limits: the `max_allowed_packet` the pool read on its first connect, or, before it has connected,
/// one `SELECT @@max_allowed_packet` through it.
pub(super) async fn server_limits(pool: &MySqlPool) -> Result<MySqlLimits, MySqlOperationError> {
    if let Some(max) = pool.manager().max_allowed_packet() {
        return Ok(MySqlLimits::from_server(Some(max)));
    }
    let max: Option<u64> = pool.fetch_one("SELECT @@max_allowed_packet", ()).await?;
    Ok(MySqlLimits::from_server(max))
}

/// The rows of `list` for `keys`, chunked under `limits`: one chunk through the pool's `fetch_all` (a batched
/// statement to the N+1 detector, retried as a read), several in one read-only transaction with a consistent
/// snapshot.
pub(super) async fn read_keys<V>(
    pool: &MySqlPool,
    list: &KeyList,
    keys: Vec<Value>,
    limits: &MySqlLimits,
) -> Result<Vec<V>, MySqlBulkError>
where
    V: FromRow + Send + 'static,
{
    let ranges = list.ranges(&keys, limits)?;
    if let [_] = ranges.as_slice() {
        let rows: Vec<Row> = pool.fetch_all(&list.sql(keys.len()), Params::Positional(keys)).await?;
        return convert(rows).map_err(backend);
    }
    let mut options = TxOpts::default();
    options.with_consistent_snapshot(true).with_readonly(true);
    let (keys, ranges) = (&keys, &ranges);
    let rows = pool
        .transaction_with_options(options, |tx| {
            Box::pin(async move {
                let mut out = Vec::new();
                for r in ranges {
                    let rows: Vec<Row> =
                        tx.exec(list.sql(r.len()), Params::Positional(keys[r.clone()].to_vec())).await?;
                    out.extend(convert::<V>(rows)?);
                }
                Ok(out)
            })
        })
        .await?;
    Ok(rows)
}

/// An insert or upsert: one statement through the pool's `execute`, or a transaction of several.
async fn write(
    pool: &MySqlPool,
    limits: Option<&MySqlLimits>,
    insert: &InsertSql,
    rows: &[Vec<Value>],
) -> Result<u64, MySqlBulkError> {
    insert.check(rows)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let limits = limits_for(pool, limits).await?;
    let ranges = insert.ranges(rows, &limits)?;
    if let [range] = ranges.as_slice() {
        let done = pool.execute(&insert.sql(range.len()), insert.params(rows, range.clone())).await?;
        return Ok(done.rows_affected);
    }
    let ranges: &[Range<usize>] = &ranges;
    let affected = pool
        .transaction(|tx| {
            Box::pin(async move {
                let mut affected = 0;
                for r in ranges {
                    tx.exec_drop(insert.sql(r.len()), insert.params(rows, r.clone())).await?;
                    affected += tx.affected_rows();
                }
                Ok(affected)
            })
        })
        .await?;
    Ok(affected)
}

/// A driver error as the pool's.
fn backend(e: mysql_async::Error) -> MySqlBulkError {
    BulkError::Database(OperationError::Backend(e))
}
