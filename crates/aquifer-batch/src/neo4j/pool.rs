//! [`Neo4jBulk`]: the bulk helpers on aquifer-neo4j's pool, through its query helpers and its `transaction`.

use std::future::Future;
use std::sync::Arc;

use aquifer_neo4j::{Neo4jOperationError, Neo4jPool};
use neo4rs::{BoltType, query};
use serde::de::DeserializeOwned;

use super::rows::{deserialization, from_nodes};
use super::{batch_size_or_default, fetch_by_keys_cypher, merge_body};
use crate::bulk_error::BulkError;

/// The error of a helper on the pool: a bad label or property name (nothing sent), or the pool's operation
/// error (no connection, the server's or driver's error after retries, or a node that does not deserialize).
pub type Neo4jBulkError = BulkError<Neo4jOperationError>;

/// The bulk helpers of [`aquifer_batch::neo4j`](crate::neo4j) on a [`Neo4jPool`]: each checks a connection
/// out, runs through the pool's operation runner (transient failures retried by the pool's retry policy,
/// `db.client.operation.duration` recorded) and returns the connection. `fetch_by_keys` goes through the pool's
/// `fetch_all`, which the N+1 detector watches (its `IN $keys` makes it a batched statement, never reported);
/// the writes go through the pool's `transaction`, which the detector does not watch. Nodes come back typed,
/// deserialized from their properties with serde.
///
/// Cypher has no generated keys: see the [module documentation](crate::neo4j).
///
/// ```no_run
/// # async fn f(pool: &aquifer_neo4j::Neo4jPool) -> Result<(), aquifer_batch::neo4j::Neo4jBulkError> {
/// use std::collections::HashMap;
///
/// use aquifer_batch::neo4j::Neo4jBulk;
/// use aquifer_neo4j::BoltType;
///
/// #[derive(serde::Deserialize)]
/// struct Artist { id: i64, name: String }
///
/// let row = |id: i64, name: &str| -> BoltType {
///     HashMap::from([("id".to_owned(), BoltType::from(id)), ("name".to_owned(), BoltType::from(name))]).into()
/// };
/// pool.merge_nodes("Artist", "id", &[row(1, "Nina"), row(2, "Miles")], 0).await?;
/// let artists: Vec<Artist> = pool.fetch_by_keys("Artist", "id", &[1_i64, 2]).await?;
/// pool.unwind("MATCH (a:Artist {id: row.id}) SET a.checked = true", &[row(1, "Nina")], 0).await?;
/// # Ok(()) }
/// ```
pub trait Neo4jBulk {
    /// [`fetch_by_keys`](super::fetch_by_keys) on a pooled connection, each node's properties deserialized into
    /// `V`: one `IN $keys` statement through the pool's `fetch_all`, retried as a read. A node that does not
    /// deserialize fails the call with neo4rs's `DeserializationError` (its message names the field).
    fn fetch_by_keys<K, V>(
        &self,
        label: &str,
        key_property: &str,
        keys: &[K],
    ) -> impl Future<Output = Result<Vec<V>, Neo4jBulkError>> + Send
    where
        K: Into<BoltType> + Clone + Sync,
        V: DeserializeOwned + Send;

    /// [`unwind`](super::unwind) through the pool's [`transaction`](Neo4jPool::transaction): `UNWIND $rows AS
    /// row <body>` in batches of `batch_size` (0 means [`DEFAULT_UNWIND_BATCH`](super::DEFAULT_UNWIND_BATCH)),
    /// all in one transaction. Returns the number of statements of the transaction that committed.
    ///
    /// The transaction is retried whole on a transient failure (deadlock, lock timeout, lost connection), as
    /// the pool's `transaction` is; a failed attempt was rolled back, so a retry applies the rows once, except
    /// when the connection was lost while COMMIT was in flight: that attempt may have committed. A `MERGE`
    /// body is safe to repeat; a `CREATE` body may then create its nodes twice. The rows are copied once, so
    /// a retry can send them again.
    fn unwind(
        &self,
        body: &str,
        rows: &[BoltType],
        batch_size: usize,
    ) -> impl Future<Output = Result<usize, Neo4jBulkError>> + Send;

    /// [`merge_nodes`](super::merge_nodes) through the pool's [`transaction`](Neo4jPool::transaction):
    /// one node labelled `label` per row (a map of properties), matched on `key_property`, created or
    /// updated. Safe to repeat, so the transaction's retries (see [`unwind`](Neo4jBulk::unwind)) apply it once.
    /// Returns the number of statements run.
    fn merge_nodes(
        &self,
        label: &str,
        key_property: &str,
        rows: &[BoltType],
        batch_size: usize,
    ) -> impl Future<Output = Result<usize, Neo4jBulkError>> + Send;
}

impl Neo4jBulk for Neo4jPool {
    async fn fetch_by_keys<K, V>(&self, label: &str, key_property: &str, keys: &[K]) -> Result<Vec<V>, Neo4jBulkError>
    where
        K: Into<BoltType> + Clone + Sync,
        V: DeserializeOwned + Send,
    {
        let cypher = fetch_by_keys_cypher(label, key_property)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<BoltType> = keys.iter().cloned().map(Into::into).collect();
        let rows = self.fetch_all(query(&cypher).param("keys", keys)).await?;
        from_nodes(&rows).map_err(|e| BulkError::Database(deserialization(e)))
    }

    async fn unwind(&self, body: &str, rows: &[BoltType], batch_size: usize) -> Result<usize, Neo4jBulkError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let cypher: Arc<str> = format!("UNWIND $rows AS row {body}").into();
        let size = batch_size_or_default(batch_size);
        // The transaction's closure must own what its future uses (it runs again on a retry): shared, not
        // borrowed.
        let rows: Arc<[BoltType]> = rows.into();
        let statements = self
            .transaction(move |txn| {
                let (cypher, rows) = (Arc::clone(&cypher), Arc::clone(&rows));
                Box::pin(async move {
                    let mut statements = 0;
                    for chunk in rows.chunks(size) {
                        txn.run(query(&cypher).param("rows", chunk.to_vec())).await?;
                        statements += 1;
                    }
                    Ok(statements)
                })
            })
            .await?;
        Ok(statements)
    }

    async fn merge_nodes(
        &self,
        label: &str,
        key_property: &str,
        rows: &[BoltType],
        batch_size: usize,
    ) -> Result<usize, Neo4jBulkError> {
        let body = merge_body(label, key_property)?;
        self.unwind(&body, rows, batch_size).await
    }
}
