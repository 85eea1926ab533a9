//! [`PgRows`]: a [`FetchRows`] source on a [`PgPool`], for loaders and preloads without a hand-written loader.

use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use aquifer_postgres::{PgOperationError, PgPool};
use sqlx::postgres::{PgHasArrayType, PgRow};
use sqlx::{AssertSqlSafe, Encode, FromRow, Postgres, Type};

use super::select_by_keys_sql;
use crate::ident::IdentError;
use crate::lookup::FetchRows;

/// Typed rows by key from a [`PgPool`]: `K` is the key (bound as one array parameter), `V` a row (sqlx's
/// [`FromRow`]: a tuple, or your `#[derive(sqlx::FromRow)]` struct). Each fetch is one statement through the
/// pool's `fetch_all` (retried, timed, watched by the N+1 detector as a batched statement). Cheap to clone.
///
/// ```no_run
/// # async fn f(pool: &aquifer_postgres::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// use aquifer_batch::FetchRows;
/// use aquifer_batch::postgres::PgRows;
///
/// #[derive(Clone, sqlx::FromRow)]
/// struct Track { album_id: i32, title: String }
///
/// // A loader: each resolver loads one album's tracks; concurrent loads share one statement.
/// let tracks = PgRows::<i32, Track>::table(pool, "tracks", "album_id", &["album_id", "title"])?;
/// let by_album = tracks.clone().one_to_many(|t| t.album_id);
/// let first: Option<Vec<Track>> = by_album.load(1).await?;
///
/// // A preload: every album's tracks in one statement.
/// struct Album { id: i32, tracks: Vec<Track> }
/// let mut albums = vec![Album { id: 1, tracks: vec![] }, Album { id: 2, tracks: vec![] }];
/// tracks.preload(&mut albums, |a| a.id, |t| t.album_id, |a, t| a.tracks = t).await?;
/// # Ok(()) }
/// ```
pub struct PgRows<K, V> {
    pool: PgPool,
    sql: Arc<str>,
    source: Arc<str>,
    _rows: PhantomData<fn(K) -> V>,
}

impl<K, V> Clone for PgRows<K, V> {
    fn clone(&self) -> Self {
        PgRows {
            pool: self.pool.clone(),
            sql: Arc::clone(&self.sql),
            source: Arc::clone(&self.source),
            _rows: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for PgRows<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRows").field("source", &self.source).field("sql", &self.sql).finish_non_exhaustive()
    }
}

impl<K, V> PgRows<K, V> {
    /// The rows of `table` whose `key_column` is one of the keys: `SELECT <columns> FROM <table> WHERE
    /// <key_column> = ANY($1)`, every name quoted (no columns selects `*`). Names are checked here, before
    /// anything is sent.
    pub fn table(pool: &PgPool, table: &str, key_column: &str, columns: &[&str]) -> Result<Self, IdentError> {
        let sql = select_by_keys_sql(table, columns, key_column)?;
        Ok(PgRows { pool: pool.clone(), sql: sql.into(), source: table.into(), _rows: PhantomData })
    }

    /// The rows of one statement of yours whose `$1` is the list of keys (an array: `= ANY($1)`,
    /// `UNNEST($1)`), for lookups a table and a key column cannot describe (a join, a filter). The statement
    /// is an application constant, never built from input.
    ///
    /// ```no_run
    /// # fn f(pool: &aquifer_postgres::PgPool) {
    /// let recent = aquifer_batch::postgres::PgRows::<i32, (i32, String)>::statement(
    ///     pool,
    ///     "SELECT t.album_id, t.title FROM tracks t JOIN albums a ON a.id = t.album_id \
    ///      WHERE t.album_id = ANY($1) AND a.year > 2000",
    /// );
    /// # }
    /// ```
    pub fn statement(pool: &PgPool, sql: impl Into<String>) -> Self {
        PgRows { pool: pool.clone(), sql: sql.into().into(), source: "statement".into(), _rows: PhantomData }
    }
}

impl<K, V> FetchRows for PgRows<K, V>
where
    K: for<'q> Encode<'q, Postgres> + Type<Postgres> + PgHasArrayType + Eq + Hash + Clone + Send + Sync + 'static,
    V: for<'r> FromRow<'r, PgRow> + Send + Sync + Unpin + 'static,
{
    type Key = K;
    type Row = V;
    type Error = PgOperationError;

    fn system(&self) -> &'static str {
        "postgresql"
    }

    fn source(&self) -> &str {
        &self.source
    }

    async fn fetch_rows(&self, keys: &[K]) -> Result<Vec<V>, PgOperationError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.pool.fetch_all(|| sqlx::query(AssertSqlSafe(self.sql.to_string())).bind(keys)).await
    }
}
