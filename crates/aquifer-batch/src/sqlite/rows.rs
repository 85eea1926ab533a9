//! [`SqliteRows`]: a [`FetchRows`] source on a [`SqlitePool`], for loaders and preloads without a hand-written
//! loader.

use std::hash::Hash;
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::Arc;

use aquifer_sqlite::{FromRow, SqliteOperationError, SqlitePool};
use rusqlite::types::Value;

use super::pool::fetch_keys;
use super::select_by_keys_sql;
use crate::ident::IdentError;
use crate::lookup::FetchRows;

/// Typed rows by key from a [`SqlitePool`]: `K` is the key (any type that converts into an SQLite
/// [`Value`]: integers, `String`, `f64`, `Vec<u8>`), passed as ONE `rarray` parameter whatever the number of
/// keys; `V` a row (aquifer-sqlite's [`FromRow`]: a tuple, or your type implementing
/// `TryFrom<&rusqlite::Row>`). Each fetch is one statement on a reader, on Tokio's blocking pool, through the
/// pool's operation runner (`SQLITE_BUSY` retried, timed, watched by the N+1 detector as a batched
/// statement). The `rarray` module is registered on each reader the first time it runs such a statement.
/// Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use aquifer_batch::FetchRows;
/// use aquifer_batch::sqlite::SqliteRows;
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct Track { album_id: i64, title: String }
///
/// impl TryFrom<&rusqlite::Row<'_>> for Track {
///     type Error = rusqlite::Error;
///     fn try_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<Track> {
///         Ok(Track { album_id: row.get("album_id")?, title: row.get("title")? })
///     }
/// }
///
/// let dir = tempfile::tempdir()?;
/// let pool = aquifer_sqlite::connect(&dir.path().join("music.db").to_string_lossy()).await?;
/// pool.execute("CREATE TABLE tracks (album_id INTEGER, title TEXT)", ()).await?;
/// pool.execute("INSERT INTO tracks VALUES (1, 'Intro'), (1, 'Outro'), (2, 'Solo')", ()).await?;
///
/// // A loader: each resolver loads one album's tracks; concurrent loads share one statement.
/// let tracks = SqliteRows::<i64, Track>::table(&pool, "tracks", "album_id", &["album_id", "title"])?;
/// let by_album = tracks.clone().one_to_many(|t| t.album_id);
/// assert_eq!(by_album.load(2).await?, Some(vec![Track { album_id: 2, title: "Solo".into() }]));
///
/// // A preload: every album's tracks in one statement.
/// struct Album { id: i64, tracks: Vec<Track> }
/// let mut albums = vec![Album { id: 1, tracks: vec![] }, Album { id: 3, tracks: vec![] }];
/// tracks.preload(&mut albums, |a| a.id, |t| t.album_id, |a, t| a.tracks = t).await?;
/// assert_eq!(albums[0].tracks.len(), 2);
/// assert!(albums[1].tracks.is_empty());
/// # Ok(()) }
/// ```
pub struct SqliteRows<K, V> {
    pool: SqlitePool,
    sql: Arc<str>,
    source: Arc<str>,
    _rows: PhantomData<fn(K) -> V>,
}

impl<K, V> Clone for SqliteRows<K, V> {
    fn clone(&self) -> Self {
        SqliteRows {
            pool: self.pool.clone(),
            sql: Arc::clone(&self.sql),
            source: Arc::clone(&self.source),
            _rows: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for SqliteRows<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRows").field("source", &self.source).field("sql", &self.sql).finish_non_exhaustive()
    }
}

impl<K, V> SqliteRows<K, V> {
    /// The rows of `table` whose `key_column` is one of the keys: `SELECT <columns> FROM <table> WHERE
    /// <key_column> IN rarray(?1)`, every name quoted (no columns selects `*`). Names are checked here, before
    /// anything is sent.
    pub fn table(pool: &SqlitePool, table: &str, key_column: &str, columns: &[&str]) -> Result<Self, IdentError> {
        let sql = select_by_keys_sql(table, columns, key_column)?;
        Ok(SqliteRows { pool: pool.clone(), sql: sql.into(), source: table.into(), _rows: PhantomData })
    }

    /// The rows of one statement of yours whose `?1` is the list of keys, as a table: `IN rarray(?1)` (or
    /// `JOIN rarray(?1) k ON k.value = …`), for lookups a table and a key column cannot describe (a join, a
    /// filter). The statement is an application constant, never built from input.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let pool = aquifer_sqlite::connect(&dir.path().join("music.db").to_string_lossy()).await?;
    /// let recent = aquifer_batch::sqlite::SqliteRows::<i64, (i64, String)>::statement(
    ///     &pool,
    ///     "SELECT t.album_id, t.title FROM tracks t JOIN albums a ON a.id = t.album_id \
    ///      WHERE t.album_id IN rarray(?1) AND a.year > 2000",
    /// );
    /// # Ok(()) }
    /// ```
    pub fn statement(pool: &SqlitePool, sql: impl Into<String>) -> Self {
        SqliteRows { pool: pool.clone(), sql: sql.into().into(), source: "statement".into(), _rows: PhantomData }
    }
}

impl<K, V> FetchRows for SqliteRows<K, V>
where
    K: Into<Value> + Eq + Hash + Clone + Send + Sync + 'static,
    V: FromRow + Send + Sync + 'static,
{
    type Key = K;
    type Row = V;
    type Error = SqliteOperationError;

    fn system(&self) -> &'static str {
        "sqlite"
    }

    fn source(&self) -> &str {
        &self.source
    }

    async fn fetch_rows(&self, keys: &[K]) -> Result<Vec<V>, SqliteOperationError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = keys.iter().cloned().map(Into::into).collect();
        fetch_keys(&self.pool, Arc::clone(&self.sql), keys, Location::caller()).await
    }
}
