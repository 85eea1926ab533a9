//! Neo4j bulk helpers and lookups without a hand-written loader (feature `neo4j`).
//!
//! Writes send rows as one list parameter, `UNWIND $rows AS row …`, in batches of [`DEFAULT_UNWIND_BATCH`]
//! rows by default: every batch has the same statement text, so the server plans it once, and all batches
//! run in one transaction. Lookups pass all keys as one list parameter (`WHERE n.key IN $keys`). Labels and
//! property keys are backquoted (`` ` `` doubled), never spliced raw.
//!
//! The functions take `&neo4rs::Graph`, which aquifer-neo4j's pooled connections dereference to; the same
//! helpers on the pool itself, with typed results, are [`Neo4jBulk`], and [`Neo4jRows`] feeds loaders and
//! preloads ([`FetchRows`](crate::FetchRows)) without a hand-written [`Loader`](crate::Loader).
//!
//! Generated keys: Cypher has no auto-increment and Bolt returns no generated key, so there is no
//! `insert_returning` here. A node's `elementId` (or the deprecated `id`) is not an application key either:
//! Neo4j reuses the ids of deleted nodes and documents `elementId` as reliable only within one transaction.
//! Give nodes a key of your own (a UUID the application generates, sent in the rows), and look them up by it
//! ([`merge_nodes`] matches on it).
//!
//! Cancellation: dropping a future mid-transaction drops the transaction handle uncommitted; its connection
//! goes back to the `Graph`'s own connection pool, which sends Bolt `RESET` (rolling the transaction back)
//! before the connection is used again. Nothing of an unfinished call is committed. The helpers on the pool
//! ([`Neo4jBulk`]) inherit the pool's cancel safety: the dropped transaction is rolled back when the pool
//! repairs its connection, before reuse.

mod pool;
mod rows;

use neo4rs::{BoltType, Graph, Node, query};

use crate::bulk_error::BulkError;
use crate::ident::{self, IdentError};

pub use pool::{Neo4jBulk, Neo4jBulkError};
pub use rows::Neo4jRows;

/// Rows per `UNWIND` statement unless told otherwise.
pub const DEFAULT_UNWIND_BATCH: usize = 10_000;

/// `name` quoted as a Cypher label or property key (`` `na``me` ``): any character but NUL.
pub fn quote_name(name: &str, what: &'static str) -> Result<String, IdentError> {
    ident::quote(name, what, '`', usize::MAX, "Neo4j")
}

/// `MATCH (n:Label) WHERE n.key IN $keys RETURN n`, both names backquoted.
pub fn fetch_by_keys_cypher(label: &str, key_property: &str) -> Result<String, IdentError> {
    Ok(format!(
        "MATCH (n:{}) WHERE n.{} IN $keys RETURN n",
        quote_name(label, "label")?,
        quote_name(key_property, "property")?
    ))
}

/// `MERGE (n:Label {key: row.key}) SET n += row`, both names backquoted: what [`merge_nodes`] runs after
/// `UNWIND $rows AS row`.
fn merge_body(label: &str, key_property: &str) -> Result<String, IdentError> {
    let key = quote_name(key_property, "property")?;
    Ok(format!("MERGE (n:{} {{{key}: row.{key}}}) SET n += row", quote_name(label, "label")?))
}

/// The batch size `0` stands for.
fn batch_size_or_default(batch_size: usize) -> usize {
    if batch_size == 0 { DEFAULT_UNWIND_BATCH } else { batch_size }
}

/// The nodes labelled `label` whose `key_property` is one of `keys`, in one statement with one list parameter.
/// On a pool, [`Neo4jBulk::fetch_by_keys`] returns typed rows instead of nodes.
///
/// Cancellation: see the module documentation.
pub async fn fetch_by_keys(
    graph: &Graph,
    label: &str,
    key_property: &str,
    keys: Vec<BoltType>,
) -> Result<Vec<Node>, BulkError<neo4rs::Error>> {
    let cypher = fetch_by_keys_cypher(label, key_property)?;
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut stream = graph.execute(query(&cypher).param("keys", keys)).await.map_err(BulkError::Database)?;
    let mut nodes = Vec::new();
    while let Some(row) = stream.next().await.map_err(BulkError::Database)? {
        nodes.push(row.get::<Node>("n").map_err(|e| BulkError::Database(neo4rs::Error::DeserializationError(e)))?);
    }
    Ok(nodes)
}

/// Runs `UNWIND $rows AS row <body>` for `rows` in batches of `batch_size` (0 means
/// [`DEFAULT_UNWIND_BATCH`]), all in one transaction. `body` is the caller's Cypher (a constant of the
/// application, not data), reading each row as `row`. Returns the number of statements run.
///
/// Cancellation: see the module documentation.
pub async fn unwind(
    graph: &Graph,
    body: &str,
    rows: &[BoltType],
    batch_size: usize,
) -> Result<usize, BulkError<neo4rs::Error>> {
    if rows.is_empty() {
        return Ok(0);
    }
    let cypher = format!("UNWIND $rows AS row {body}");
    let size = batch_size_or_default(batch_size);
    let mut txn = graph.start_txn().await.map_err(BulkError::Database)?;
    let mut statements = 0;
    for chunk in rows.chunks(size) {
        txn.run(query(&cypher).param("rows", chunk.to_vec())).await.map_err(BulkError::Database)?;
        statements += 1;
    }
    txn.commit().await.map_err(BulkError::Database)?;
    Ok(statements)
}

/// Creates or updates one node labelled `label` per row (a map of properties), matched on `key_property`:
/// `UNWIND $rows AS row MERGE (n:Label {key: row.key}) SET n += row`, in batches of `batch_size` (0 means
/// [`DEFAULT_UNWIND_BATCH`]) inside one transaction. Returns the number of statements run.
///
/// Cancellation: see the module documentation.
pub async fn merge_nodes(
    graph: &Graph,
    label: &str,
    key_property: &str,
    rows: &[BoltType],
    batch_size: usize,
) -> Result<usize, BulkError<neo4rs::Error>> {
    unwind(graph, &merge_body(label, key_property)?, rows, batch_size).await
}
