//! Helpers that run a query or a transaction on a pooled connection and time it
//! (`db.client.operation.duration`).

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use aquifer_core::{PoolError, RetryPolicy};
use neo4rs::{Query, Row, Txn};

use crate::error::Neo4jError;
use crate::{Neo4jPool, Neo4jPoolError, Neo4jPooled};

/// The future a [`transaction`](Neo4jPoolExt::transaction) closure returns: `Box::pin(async move { .. })`.
pub type TxFuture<'t, T> = Pin<Box<dyn Future<Output = Result<T, Neo4jError>> + Send + 't>>;

/// Query and transaction helpers on a [`Neo4jPool`]. Each checks out a connection, runs the work, returns the
/// connection, and records `db.client.operation.duration` (with `db.operation.name` and, on failure,
/// `error.type`) through [`Pool::record_operation`](aquifer_core::Pool::record_operation). The time spent
/// waiting for a connection is not part of the operation (it is `db.client.connection.wait_time`).
///
/// A connection on which a helper saw the Bolt connection break is discarded rather than returned; one whose
/// helper future was dropped mid-exchange is repaired in the background (in-flight responses drained, RESET
/// sent, which rolls back an open transaction) before anyone else gets it.
pub trait Neo4jPoolExt {
    /// Runs a query and discards its result (`CREATE`, `MERGE`, `DELETE`...).
    ///
    /// neo4rs retries a query that fails with a Neo4j transient error by itself (backoff, up to 60 s in all).
    ///
    /// Cancel safety: dropping the future drops the query; its connection is repaired in the background before
    /// reuse. The query may or may not have been applied.
    fn run(&self, query: impl Into<Query> + Send) -> impl Future<Output = Result<(), Neo4jPoolError>> + Send;

    /// Runs a query and collects all its rows (use the connection's `execute` to stream a large result).
    ///
    /// neo4rs retries a query that fails with a Neo4j transient error by itself (backoff, up to 60 s in all).
    ///
    /// Cancel safety: dropping the future drops the query and the rows read so far; the connection is
    /// repaired in the background before reuse.
    fn fetch(&self, query: impl Into<Query> + Send) -> impl Future<Output = Result<Vec<Row>, Neo4jPoolError>> + Send;

    /// Runs `work` in a transaction: commits when it returns `Ok`, rolls back when it returns `Err`.
    /// The whole transaction (a fresh connection, BEGIN, `work`, COMMIT) is retried with
    /// [`RetryPolicy::default`] when it fails with a transient error ([`Neo4jError::is_transient`]: deadlock,
    /// lock timeout, lost connection), so `work` runs more than once then and must be safe to repeat.
    /// Return [`Neo4jError::abort`] from `work` to roll back with an error of your own.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use aquifer_neo4j::{Neo4jConfig, Neo4jPoolExt, PoolConfig, query};
    ///
    /// # let config = Neo4jConfig::new("bolt://127.0.0.1:7687", "root", "aquifer-secret").database("testdb");
    /// # let pool = aquifer_neo4j::connect(config, PoolConfig::default()).await?;
    /// let id = 7;
    /// let listeners: i64 = pool
    ///     .transaction(|txn| {
    ///         Box::pin(async move {
    ///             txn.run(query("MERGE (:AqDocListener {id: $id})").param("id", id)).await?;
    ///             let mut rows = txn.execute(query("MATCH (l:AqDocListener) RETURN count(l) AS n")).await?;
    ///             let row = rows.next(&mut *txn).await?.expect("count returns a row");
    ///             rows.finish(&mut *txn).await?;
    ///             Ok(row.get::<i64>("n")?)
    ///         })
    ///     })
    ///     .await?;
    /// assert!(listeners >= 1);
    /// # pool.run("MATCH (l:AqDocListener) DELETE l").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// Cancel safety: dropping the future drops the transaction in flight without COMMIT; the server rolls
    /// it back when the connection is reset in the background, before the connection is reused. If the
    /// future is dropped while COMMIT is in flight, the transaction may or may not have been committed.
    fn transaction<T, F>(&self, work: F) -> impl Future<Output = Result<T, Neo4jPoolError>> + Send
    where
        T: Send,
        F: for<'t> FnMut(&'t mut Txn) -> TxFuture<'t, T> + Send;

    /// [`transaction`](Neo4jPoolExt::transaction) with a retry policy of your own
    /// ([`RetryPolicy::never`] runs `work` once).
    ///
    /// Cancel safety: as for [`transaction`](Neo4jPoolExt::transaction).
    fn transaction_with<T, F>(
        &self,
        policy: RetryPolicy,
        work: F,
    ) -> impl Future<Output = Result<T, Neo4jPoolError>> + Send
    where
        T: Send,
        F: for<'t> FnMut(&'t mut Txn) -> TxFuture<'t, T> + Send;
}

impl Neo4jPoolExt for Neo4jPool {
    async fn run(&self, query: impl Into<Query> + Send) -> Result<(), Neo4jPoolError> {
        let query = query.into();
        let op = operation_name(query.query());
        let mut conn = self.get().await?;
        let started = Instant::now();
        conn.interrupted = true;
        let result = conn.graph().run(query).await.map_err(|e| self.manager().classify(e));
        finish(self, &mut conn, op, started, result)
    }

    async fn fetch(&self, query: impl Into<Query> + Send) -> Result<Vec<Row>, Neo4jPoolError> {
        let query = query.into();
        let op = operation_name(query.query());
        let mut conn = self.get().await?;
        let started = Instant::now();
        conn.interrupted = true;
        let result = async {
            let mut stream = conn.graph().execute(query).await?;
            let mut rows = Vec::new();
            while let Some(row) = stream.next().await? {
                rows.push(row);
            }
            Ok(rows)
        }
        .await
        .map_err(|e| self.manager().classify(e));
        finish(self, &mut conn, op, started, result)
    }

    async fn transaction<T, F>(&self, work: F) -> Result<T, Neo4jPoolError>
    where
        T: Send,
        F: for<'t> FnMut(&'t mut Txn) -> TxFuture<'t, T> + Send,
    {
        self.transaction_with(RetryPolicy::default(), work).await
    }

    async fn transaction_with<T, F>(&self, policy: RetryPolicy, work: F) -> Result<T, Neo4jPoolError>
    where
        T: Send,
        F: for<'t> FnMut(&'t mut Txn) -> TxFuture<'t, T> + Send,
    {
        // Attempts run one after another; the lock only lends `work` to the attempt in flight.
        let work = tokio::sync::Mutex::new(work);
        let work = &work;
        policy
            .run(
                || async move {
                    let mut work = work.lock().await;
                    attempt(self, &mut *work).await
                },
                |e: &Neo4jPoolError| matches!(e, PoolError::Backend(e) if e.is_transient()),
            )
            .await
    }
}

async fn attempt<T, F>(pool: &Neo4jPool, work: &mut F) -> Result<T, Neo4jPoolError>
where
    F: for<'t> FnMut(&'t mut Txn) -> TxFuture<'t, T> + Send,
{
    let mut conn = pool.get().await?;
    let started = Instant::now();
    conn.interrupted = true;
    let manager = pool.manager();
    let result = async {
        let mut txn = conn.graph().start_txn().await.map_err(|e| manager.classify(e))?;
        match work(&mut txn).await {
            Ok(value) => {
                txn.commit().await.map_err(|e| manager.classify(e))?;
                Ok(value)
            }
            Err(e) => {
                // After a failed statement the server ignores ROLLBACK (the transaction is already failed);
                // either way the inner pool's RESET on the next use clears it. The work's error is the news.
                if let Err(rollback) = txn.rollback().await {
                    tracing::debug!(error = %rollback, "rollback after a failed transaction did not succeed");
                }
                Err(e.with_context(manager.context()))
            }
        }
    }
    .await;
    finish(pool, &mut conn, "TRANSACTION", started, result)
}

/// Records the operation, marks the connection, and lifts the error into the pool's error type.
fn finish<T>(
    pool: &Neo4jPool,
    conn: &mut Neo4jPooled,
    op: &'static str,
    started: Instant,
    result: Result<T, Neo4jError>,
) -> Result<T, Neo4jPoolError> {
    let elapsed = started.elapsed();
    conn.interrupted = false;
    match result {
        Ok(v) => {
            pool.record_operation(op, elapsed, None);
            Ok(v)
        }
        Err(e) => {
            pool.record_operation(op, elapsed, Some(&e.error_type()));
            conn.broken |= e.is_connection_error();
            Err(PoolError::Backend(e))
        }
    }
}

/// `db.operation.name`: the query's first Cypher clause, from a fixed list so the metric stays low-cardinality;
/// `_OTHER` otherwise (see [`aquifer_core::metrics::operation_name`]).
pub(crate) fn operation_name(query: &str) -> &'static str {
    const CLAUSES: &[&str] = &[
        "MATCH",
        "OPTIONAL MATCH",
        "CREATE",
        "MERGE",
        "UNWIND",
        "RETURN",
        "WITH",
        "CALL",
        "DELETE",
        "DETACH DELETE",
        "SET",
        "REMOVE",
        "FOREACH",
        "LOAD CSV",
        "SHOW",
        "DROP",
        "USE",
        "EXPLAIN",
        "PROFILE",
    ];
    aquifer_core::metrics::operation_name(query, CLAUSES)
}

#[cfg(test)]
mod tests {
    use super::operation_name;

    #[test]
    fn operation_name_is_the_first_clause_from_a_fixed_list() {
        assert_eq!(operation_name("  match (n) return n"), "MATCH");
        assert_eq!(operation_name("UNWIND $rows AS r CREATE (:A)"), "UNWIND");
        assert_eq!(operation_name("OPTIONAL MATCH (n) RETURN n"), "OPTIONAL MATCH");
        assert_eq!(operation_name("// note\n detach delete n"), "DETACH DELETE");
        assert_eq!(operation_name("frobnicate everything"), "_OTHER");
        assert_eq!(operation_name(""), "_OTHER");
    }
}
