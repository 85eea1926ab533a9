//! Helpers that run a query or a transaction on a pooled connection through the engine's one operation runner
//! ([`aquifer_core::run_operation`]): checkout, `db.client.operation.duration` timed from checkout, `error.type`,
//! and retries of transient failures with the config's [`RetryPolicy`](aquifer_core::RetryPolicy).

use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;

use aquifer_core::{Attempt, CallSite, Failure, run_operation, run_operation_at};
use neo4rs::{Query, Row, Txn};

use crate::error::Neo4jError;
use crate::{Neo4jManager, Neo4jPool, Neo4jPooled};

/// The future a [`transaction`](Neo4jPool::transaction) closure returns: `Box::pin(async move { .. })`.
pub type TxFuture<'t, T> = Pin<Box<dyn Future<Output = Result<T, Neo4jError>> + Send + 't>>;

/// Query and transaction helpers. Each checks out a connection, runs the work, returns the connection, and
/// records `db.client.operation.duration` (with `db.operation.name` and, on failure, `error.type`). The time
/// spent waiting for a connection is not part of the operation (it is `db.client.connection.wait_time`), and
/// a failed checkout is returned as the `Acquire` variant of [`Neo4jOperationError`](crate::Neo4jOperationError)
/// without being recorded as an operation.
///
/// A connection on which a helper saw the Bolt connection break is discarded rather than returned; one whose
/// helper future was dropped mid-exchange is repaired in the background (in-flight responses drained, RESET
/// sent, which rolls back an open transaction) before anyone else gets it.
impl Neo4jPool {
    /// Runs a query and returns its first row; fails with [`Neo4jError::RowNotFound`] when there is none.
    /// Every row is read, so an error after the first row is not missed.
    ///
    /// Retries transient failures ([`Neo4jError::is_transient`]: deadlock, lock timeout, lost connection)
    /// with the config's retry policy; neo4rs also retries a Neo4j transient error by itself (backoff, up to
    /// 60 s in all).
    ///
    /// Cancel safety: dropping the future drops the query and the rows read so far; the connection is
    /// repaired in the background before reuse.
    #[track_caller]
    pub fn fetch_one(
        &self,
        query: impl Into<Query> + Send,
    ) -> impl Future<Output = Result<Row, crate::Neo4jOperationError>> {
        let caller = Location::caller();
        async move {
            self.rows(query.into(), caller)
                .await?
                .into_iter()
                .next()
                .ok_or(crate::Neo4jOperationError::Backend(Neo4jError::RowNotFound))
        }
    }

    /// Runs a query and returns its first row, or `None`. Otherwise as [`fetch_one`](Neo4jPool::fetch_one).
    ///
    /// Cancel safety: as for [`fetch_one`](Neo4jPool::fetch_one).
    #[track_caller]
    pub fn fetch_optional(
        &self,
        query: impl Into<Query> + Send,
    ) -> impl Future<Output = Result<Option<Row>, crate::Neo4jOperationError>> {
        let caller = Location::caller();
        async move { Ok(self.rows(query.into(), caller).await?.into_iter().next()) }
    }

    /// Runs a query and collects all its rows (use the connection's `execute` to stream a large result).
    /// Otherwise as [`fetch_one`](Neo4jPool::fetch_one).
    ///
    /// Cancel safety: as for [`fetch_one`](Neo4jPool::fetch_one).
    #[track_caller]
    pub fn fetch_all(
        &self,
        query: impl Into<Query> + Send,
    ) -> impl Future<Output = Result<Vec<Row>, crate::Neo4jOperationError>> {
        let caller = Location::caller();
        async move { self.rows(query.into(), caller).await }
    }

    async fn rows(
        &self,
        query: Query,
        caller: &'static Location<'static>,
    ) -> Result<Vec<Row>, crate::Neo4jOperationError> {
        let op = operation_name(query.query());
        let site = CallSite { statement: query.query(), caller };
        let attempt = Statement { manager: self.manager(), query: &query, rows: true, database: None };
        run_operation_at(self, op, site, attempt).await.map(|out| out.unwrap_or_default())
    }

    /// Runs a query and discards its result (`CREATE`, `MERGE`, `DELETE`...). A connection lost after the query
    /// was sent is not retried (it may have been applied); use [`transaction`](Neo4jPool::transaction) for
    /// writes that must be retried.
    ///
    /// Cancel safety: dropping the future drops the query; its connection is repaired in the background before
    /// reuse. The query may or may not have been applied.
    #[track_caller]
    pub fn execute(
        &self,
        query: impl Into<Query> + Send,
    ) -> impl Future<Output = Result<(), crate::Neo4jOperationError>> {
        let caller = Location::caller();
        async move {
            let query = query.into();
            let op = operation_name(query.query());
            let site = CallSite { statement: query.query(), caller };
            run_operation_at(
                self,
                op,
                site,
                Statement { manager: self.manager(), query: &query, rows: false, database: None },
            )
            .await
            .map(|_| ())
        }
    }

    /// Runs `work` in a transaction: commits when it returns `Ok`, rolls back when it returns `Err`.
    /// The whole transaction (a fresh connection, BEGIN, `work`, COMMIT) is retried with the config's retry
    /// policy when it fails with a transient error ([`Neo4jError::is_transient`]: deadlock, lock timeout, lost
    /// connection), so `work` runs more than once then and must be safe to repeat. Return
    /// [`Neo4jError::abort`] from `work` to roll back with an error of your own.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use aquifer_neo4j::{Neo4jConfig, query};
    ///
    /// # let uri = std::env::var("NEO4J_URI").unwrap_or_else(|_| "bolt://127.0.0.1:7687".into());
    /// # let config = Neo4jConfig::new(uri, "root", "aquifer-secret").database("testdb");
    /// # let pool = config.connect().await?;
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
    /// # pool.execute("MATCH (l:AqDocListener) DELETE l").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// Cancel safety: dropping the future drops the transaction in flight without COMMIT; the server rolls
    /// it back when the connection is reset in the background, before the connection is reused. If the
    /// future is dropped while COMMIT is in flight, the transaction may or may not have been committed.
    pub async fn transaction<T, F>(&self, mut work: F) -> Result<T, crate::Neo4jOperationError>
    where
        T: Send,
        F: for<'t> FnMut(&'t mut Txn) -> TxFuture<'t, T> + Send,
    {
        let attempt = Transaction { manager: self.manager(), work: &mut work, database: None, _output: PhantomData };
        run_operation(self, "TRANSACTION", attempt).await
    }

    /// The helpers with every query and transaction sent to `database` (the `db` field of each Bolt `RUN`
    /// and `BEGIN` message) instead of the configured one: a database per tenant. The database travels
    /// with each message, so nothing is left on the connection for the next user (Bolt sessions hold no
    /// current database), and a cancelled call leaves only what any cancelled call leaves (repaired before
    /// reuse).
    ///
    /// Impersonation (`imp_user`) is not offered: neo4rs 0.9 sends it only with its unstable Bolt protocol
    /// feature, and ArcadeDB ignores it (docs/neo4j.md, "Tenants").
    pub fn with_database(&self, database: impl Into<String>) -> Neo4jScoped<'_> {
        Neo4jScoped { pool: self, database: neo4rs::Database::from(database.into()) }
    }
}

/// A [`Neo4jPool`] whose helpers run on one database ([`Neo4jPool::with_database`]). The helpers behave as
/// [`Neo4jPool`]'s (metrics, retries, cancel safety).
#[derive(Debug, Clone)]
pub struct Neo4jScoped<'p> {
    pool: &'p Neo4jPool,
    database: neo4rs::Database,
}

impl Neo4jScoped<'_> {
    /// The database every call runs on.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// As [`Neo4jPool::fetch_one`], on this database.
    ///
    /// Cancel safety: as for [`Neo4jPool::fetch_one`].
    pub async fn fetch_one(&self, query: impl Into<Query> + Send) -> Result<Row, crate::Neo4jOperationError> {
        self.fetch_optional(query).await?.ok_or(crate::Neo4jOperationError::Backend(Neo4jError::RowNotFound))
    }

    /// As [`Neo4jPool::fetch_optional`], on this database.
    ///
    /// Cancel safety: as for [`Neo4jPool::fetch_one`].
    pub async fn fetch_optional(
        &self,
        query: impl Into<Query> + Send,
    ) -> Result<Option<Row>, crate::Neo4jOperationError> {
        Ok(self.fetch_all(query).await?.into_iter().next())
    }

    /// As [`Neo4jPool::fetch_all`], on this database.
    ///
    /// Cancel safety: as for [`Neo4jPool::fetch_one`].
    pub async fn fetch_all(&self, query: impl Into<Query> + Send) -> Result<Vec<Row>, crate::Neo4jOperationError> {
        let query = query.into();
        let op = operation_name(query.query());
        let manager = self.pool.manager();
        let attempt = Statement { manager, query: &query, rows: true, database: Some(&self.database) };
        run_operation(self.pool, op, attempt).await.map(|out| out.unwrap_or_default())
    }

    /// As [`Neo4jPool::execute`], on this database.
    ///
    /// Cancel safety: as for [`Neo4jPool::execute`].
    pub async fn execute(&self, query: impl Into<Query> + Send) -> Result<(), crate::Neo4jOperationError> {
        let query = query.into();
        let op = operation_name(query.query());
        let manager = self.pool.manager();
        let attempt = Statement { manager, query: &query, rows: false, database: Some(&self.database) };
        run_operation(self.pool, op, attempt).await.map(|_| ())
    }

    /// As [`Neo4jPool::transaction`], on this database.
    ///
    /// Cancel safety: as for [`Neo4jPool::transaction`].
    pub async fn transaction<T, F>(&self, mut work: F) -> Result<T, crate::Neo4jOperationError>
    where
        T: Send,
        F: for<'t> FnMut(&'t mut Txn) -> TxFuture<'t, T> + Send,
    {
        let manager = self.pool.manager();
        let attempt = Transaction { manager, work: &mut work, database: Some(&self.database), _output: PhantomData };
        run_operation(self.pool, "TRANSACTION", attempt).await
    }
}

/// One run of a query; `rows` keeps its rows (`fetch_*`), otherwise the result is discarded (`execute`).
struct Statement<'q> {
    manager: &'q Neo4jManager,
    query: &'q Query,
    rows: bool,
    /// Instead of the configured database.
    database: Option<&'q neo4rs::Database>,
}

impl Attempt<Neo4jManager> for Statement<'_> {
    type Output = Option<Vec<Row>>;

    async fn run(&mut self, mut conn: Neo4jPooled) -> Result<Option<Vec<Row>>, Failure<Neo4jError>> {
        conn.interrupted = true;
        let result = if self.rows {
            async {
                let mut stream = match self.database {
                    Some(db) => conn.graph().execute_on(db.clone(), self.query.clone()).await?,
                    None => conn.graph().execute(self.query.clone()).await?,
                };
                let mut rows = Vec::new();
                while let Some(row) = stream.next().await? {
                    rows.push(row);
                }
                Ok(Some(rows))
            }
            .await
        } else {
            match self.database {
                Some(db) => conn.graph().run_on(db.clone(), self.query.clone()).await.map(|()| None),
                None => conn.graph().run(self.query.clone()).await.map(|()| None),
            }
        };
        let rows = self.rows;
        // A read can be repeated; a write whose connection was lost after sending may have been applied.
        let retry = |e: &Neo4jError| e.is_transient() && (rows || !e.is_connection_error());
        finish(&mut conn, result.map_err(|e| self.manager.classify(e)), retry)
    }
}

/// One run of a transaction closure.
struct Transaction<'f, T, F> {
    manager: &'f Neo4jManager,
    work: &'f mut F,
    /// Instead of the configured database.
    database: Option<&'f neo4rs::Database>,
    _output: PhantomData<fn() -> T>,
}

impl<T, F> Attempt<Neo4jManager> for Transaction<'_, T, F>
where
    T: Send,
    F: for<'t> FnMut(&'t mut Txn) -> TxFuture<'t, T> + Send,
{
    type Output = T;

    async fn run(&mut self, mut conn: Neo4jPooled) -> Result<T, Failure<Neo4jError>> {
        conn.interrupted = true;
        let manager = self.manager;
        let result = async {
            let txn = match self.database {
                Some(db) => conn.graph().start_txn_on(db.clone()).await,
                None => conn.graph().start_txn().await,
            };
            let mut txn = txn.map_err(|e| manager.classify(e))?;
            match (self.work)(&mut txn).await {
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
        finish(&mut conn, result, Neo4jError::is_transient)
    }
}

/// Marks the connection (no exchange in flight; broken if the Bolt connection broke) and turns an error into
/// the runner's [`Failure`], retryable when `retry` says so.
fn finish<T>(
    conn: &mut Neo4jPooled,
    result: Result<T, Neo4jError>,
    retry: impl Fn(&Neo4jError) -> bool,
) -> Result<T, Failure<Neo4jError>> {
    conn.interrupted = false;
    result.map_err(|e| {
        let lost = e.is_connection_error();
        if lost {
            conn.mark_broken();
        }
        let retry = retry(&e);
        Failure::new(e, retry, lost)
    })
}

/// The leading words [`operation_name`] names; any other is `_OTHER`.
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

/// `db.operation.name`: the query's first Cypher clause, from a fixed list so the metric stays low-cardinality;
/// `_OTHER` otherwise (see [`aquifer_core::metrics::operation_name`]).
pub(crate) fn operation_name(query: &str) -> &'static str {
    aquifer_core::metrics::operation_name(query, CLAUSES)
}

#[cfg(test)]
mod tests {
    use super::{CLAUSES, operation_name};

    #[test]
    fn operation_name_is_the_first_clause_from_a_fixed_list() {
        aquifer_testing::check_operation_names(operation_name, CLAUSES, &["frobnicate everything"]);
    }
}
