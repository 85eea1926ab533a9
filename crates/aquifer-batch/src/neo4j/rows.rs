//! [`Neo4jRows`]: a [`FetchRows`] source on a [`Neo4jPool`], for loaders and preloads without a hand-written
//! loader.

use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use aquifer_neo4j::{Neo4jError, Neo4jOperationError, Neo4jPool};
use neo4rs::{BoltType, Node, Row, query};
use serde::de::DeserializeOwned;

use super::fetch_by_keys_cypher;
use crate::ident::IdentError;
use crate::lookup::FetchRows;

/// Typed rows by key from a [`Neo4jPool`]: `K` is the key (sent as one list parameter, `$keys`), `V` a row,
/// deserialized with serde (`#[derive(serde::Deserialize)]`, or a scalar for a statement of one column).
/// Each fetch is one statement through the pool's `fetch_all` (retried as a read, timed, watched by the N+1
/// detector, which counts a statement with `IN $keys` or `UNWIND $keys` as batched and never reports it).
/// Cheap to clone.
///
/// ```no_run
/// # async fn f(pool: &aquifer_neo4j::Neo4jPool) -> Result<(), Box<dyn std::error::Error>> {
/// use aquifer_batch::FetchRows;
/// use aquifer_batch::neo4j::Neo4jRows;
///
/// #[derive(Clone, serde::Deserialize)]
/// struct Artist { id: i64, name: String }
///
/// // Nodes by a property: each resolver loads one artist; concurrent loads share one statement.
/// let artists = Neo4jRows::<i64, Artist>::nodes(pool, "Artist", "id")?.one_to_one(|a| a.id);
/// let first: Option<Artist> = artists.load(1).await?;
///
/// // Neighbours through a statement of yours: every artist's albums.
/// #[derive(Clone, serde::Deserialize)]
/// struct Album { artist_id: i64, title: String }
/// let albums = Neo4jRows::<i64, Album>::statement(
///     pool,
///     "MATCH (a:Artist)-[:RELEASED]->(al:Album) WHERE a.id IN $keys RETURN a.id AS artist_id, al.title AS title",
/// );
///
/// // A preload: every artist's albums in one statement.
/// struct Page { artist: i64, albums: Vec<Album> }
/// let mut pages = vec![Page { artist: 1, albums: vec![] }, Page { artist: 2, albums: vec![] }];
/// albums.preload(&mut pages, |p| p.artist, |al| al.artist_id, |p, al| p.albums = al).await?;
/// # Ok(()) }
/// ```
pub struct Neo4jRows<K, V> {
    pool: Neo4jPool,
    cypher: Arc<str>,
    source: Arc<str>,
    /// Nodes (`RETURN n`: `V` from the node's properties), or a statement's row (`V` from its columns).
    nodes: bool,
    _rows: PhantomData<fn(K) -> V>,
}

impl<K, V> Clone for Neo4jRows<K, V> {
    fn clone(&self) -> Self {
        Neo4jRows {
            pool: self.pool.clone(),
            cypher: Arc::clone(&self.cypher),
            source: Arc::clone(&self.source),
            nodes: self.nodes,
            _rows: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for Neo4jRows<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Neo4jRows").field("source", &self.source).field("cypher", &self.cypher).finish_non_exhaustive()
    }
}

impl<K, V> Neo4jRows<K, V> {
    /// The nodes labelled `label` whose `key_property` is one of the keys: `MATCH (n:Label) WHERE n.key IN
    /// $keys RETURN n`, both names backquoted. Each row is the node's properties, deserialized into `V`.
    /// Names are checked here, before anything is sent.
    pub fn nodes(pool: &Neo4jPool, label: &str, key_property: &str) -> Result<Self, IdentError> {
        let cypher = fetch_by_keys_cypher(label, key_property)?;
        Ok(Neo4jRows {
            pool: pool.clone(),
            cypher: cypher.into(),
            source: label.into(),
            nodes: true,
            _rows: PhantomData,
        })
    }

    /// The rows of one Cypher statement of yours whose `$keys` parameter is the list of keys (`WHERE a.id IN
    /// $keys`, `UNWIND $keys AS k`), for lookups a label and a property cannot describe (neighbours, a filter).
    /// Each row's columns are deserialized into `V` by name (`RETURN a.id AS artist_id, al.title AS title`
    /// into a struct with fields `artist_id` and `title`); a row of one column also deserializes as that
    /// column's value. The statement is an application constant, never built from input.
    ///
    /// ```no_run
    /// # fn f(pool: &aquifer_neo4j::Neo4jPool) {
    /// #[derive(Clone, serde::Deserialize)]
    /// struct Album { artist_id: i64, title: String }
    ///
    /// let recent = aquifer_batch::neo4j::Neo4jRows::<i64, Album>::statement(
    ///     pool,
    ///     "MATCH (a:Artist)-[:RELEASED]->(al:Album) WHERE a.id IN $keys AND al.year > 2000 \
    ///      RETURN a.id AS artist_id, al.title AS title",
    /// );
    /// # }
    /// ```
    pub fn statement(pool: &Neo4jPool, cypher: impl Into<String>) -> Self {
        Neo4jRows {
            pool: pool.clone(),
            cypher: cypher.into().into(),
            source: "statement".into(),
            nodes: false,
            _rows: PhantomData,
        }
    }
}

impl<K, V> FetchRows for Neo4jRows<K, V>
where
    K: Into<BoltType> + Eq + Hash + Clone + Send + Sync + 'static,
    V: DeserializeOwned + Send + Sync + 'static,
{
    type Key = K;
    type Row = V;
    type Error = Neo4jOperationError;

    fn system(&self) -> &'static str {
        "neo4j"
    }

    fn source(&self) -> &str {
        &self.source
    }

    async fn fetch_rows(&self, keys: &[K]) -> Result<Vec<V>, Neo4jOperationError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<BoltType> = keys.iter().cloned().map(Into::into).collect();
        let rows = self.pool.fetch_all(query(&self.cypher).param("keys", keys)).await?;
        let typed = if self.nodes { from_nodes(&rows) } else { rows.iter().map(Row::to::<V>).collect() };
        typed.map_err(deserialization)
    }
}

/// A row that does not deserialize into the caller's type, as the pool's error (as the adapter reports a
/// value that does not convert).
pub(super) fn deserialization(e: neo4rs::DeError) -> Neo4jOperationError {
    Neo4jOperationError::Backend(Neo4jError::Driver(neo4rs::Error::DeserializationError(e)))
}

/// `V` from each row's node `n` (the statement of [`super::fetch_by_keys_cypher`]).
pub(super) fn from_nodes<V: DeserializeOwned>(rows: &[Row]) -> Result<Vec<V>, neo4rs::DeError> {
    rows.iter().map(|row| row.get::<Node>("n")?.to::<V>()).collect()
}
