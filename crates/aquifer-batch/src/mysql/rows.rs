//! [`MySqlRows`]: a [`FetchRows`] source on a [`MySqlPool`], for loaders and preloads without a hand-written
//! loader.

use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use aquifer_core::Manager;
use aquifer_mysql::{MySqlOperationError, MySqlPool};
use mysql_async::Value;
use mysql_async::prelude::FromRow;
use tokio::sync::OnceCell;

use super::pool::{read_keys, server_limits};
use super::{KeyList, KeysMarkerError, MySqlLimits};
use crate::bulk_error::BulkError;
use crate::ident::IdentError;
use crate::lookup::FetchRows;

/// Typed rows by key from a [`MySqlPool`]: `K` is the key (one `?` of an `IN (…)` list per key), `V` a row
/// (mysql_async's [`FromRow`]: a tuple, a single value, your own `FromRow` type, or `Row`). A fetch is one
/// statement per chunk of keys under the server's limits (65,535 placeholders, `max_allowed_packet`): one chunk
/// through the pool's `fetch_all` (retried, timed, seen by the N+1 detector as a batched statement, which it
/// never reports), several in one read-only transaction with a consistent snapshot. The limits are the ones
/// the pool read when it connected (one `SELECT @@max_allowed_packet` if it has not connected yet), read once
/// per `MySqlRows` and its clones, or the ones given to [`with_limits`](MySqlRows::with_limits). Cheap to clone.
///
/// ```no_run
/// # async fn f(pool: &aquifer_mysql::MySqlPool) -> Result<(), Box<dyn std::error::Error>> {
/// use aquifer_batch::FetchRows;
/// use aquifer_batch::mysql::MySqlRows;
///
/// // (user_id, word) rows; a tuple converts with mysql_async's `FromRow`.
/// type Saved = (u64, String);
///
/// // A loader: each resolver loads one user's words; concurrent loads share one statement.
/// let words = MySqlRows::<u64, Saved>::table(pool, "saved_words", "user_id", &["user_id", "word"])?;
/// let by_user = words.clone().one_to_many(|w: &Saved| w.0);
/// let first: Option<Vec<Saved>> = by_user.load(1).await?;
///
/// // A preload: every user's words in one statement.
/// struct User { id: u64, words: Vec<Saved> }
/// let mut users = vec![User { id: 1, words: vec![] }, User { id: 2, words: vec![] }];
/// words.preload(&mut users, |u| u.id, |w| w.0, |u, w| u.words = w).await?;
///
/// // A statement of your own: `{keys}` becomes the chunk's `?, ?, …`.
/// let due = MySqlRows::<u64, Saved>::statement(
///     pool,
///     "SELECT user_id, word FROM saved_words WHERE user_id IN ({keys}) AND NOT is_known",
/// )?;
/// # Ok(()) }
/// ```
pub struct MySqlRows<K, V> {
    pool: MySqlPool,
    sql: Arc<KeyList>,
    source: Arc<str>,
    system: &'static str,
    limits: Arc<OnceCell<MySqlLimits>>,
    _rows: PhantomData<fn(K) -> V>,
}

impl<K, V> Clone for MySqlRows<K, V> {
    fn clone(&self) -> Self {
        MySqlRows {
            pool: self.pool.clone(),
            sql: Arc::clone(&self.sql),
            source: Arc::clone(&self.source),
            system: self.system,
            limits: Arc::clone(&self.limits),
            _rows: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for MySqlRows<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlRows")
            .field("system", &self.system)
            .field("source", &self.source)
            .field("sql", &self.sql.sql(1))
            .field("limits", &self.limits.get())
            .finish_non_exhaustive()
    }
}

impl<K, V> MySqlRows<K, V> {
    /// The rows of `table` whose `key_column` is one of the keys: `SELECT <columns> FROM <table> WHERE
    /// <key_column> IN (?, …)`, every name quoted (no columns selects `*`). Names are checked here, before
    /// anything is sent.
    pub fn table(pool: &MySqlPool, table: &str, key_column: &str, columns: &[&str]) -> Result<Self, IdentError> {
        Ok(Self::new(pool, KeyList::table(table, columns, key_column)?, table))
    }

    /// The rows of one statement of yours, for lookups a table and a key column cannot describe (a join, a
    /// filter): `sql` contains [`KEYS_MARKER`](super::KEYS_MARKER) (`{keys}`) exactly once, where each chunk's placeholders go
    /// (`WHERE w.user_id IN ({keys})`), and no other parameter. MySQL has no array parameter, so the list
    /// cannot be one `?`. The statement is an application constant, never built from input; a marker missing or
    /// repeated is a [`KeysMarkerError`].
    pub fn statement(pool: &MySqlPool, sql: &str) -> Result<Self, KeysMarkerError> {
        Ok(Self::new(pool, KeyList::statement(sql)?, "statement"))
    }

    /// Chunks under `limits` instead of the server's (a smaller `max_allowed_packet`, say).
    #[must_use]
    pub fn with_limits(mut self, limits: MySqlLimits) -> Self {
        self.limits = Arc::new(OnceCell::new_with(Some(limits)));
        self
    }

    fn new(pool: &MySqlPool, sql: KeyList, source: &str) -> Self {
        // The pool's `db.system.name` (its config's `system`, else the URL scheme's): a `&'static str` for the
        // loaders' metrics.
        let system = match pool.manager().descriptor().system.as_ref() {
            "mariadb" => "mariadb",
            _ => "mysql",
        };
        MySqlRows {
            pool: pool.clone(),
            sql: Arc::new(sql),
            source: source.into(),
            system,
            limits: Arc::new(OnceCell::new()),
            _rows: PhantomData,
        }
    }
}

impl<K, V> FetchRows for MySqlRows<K, V>
where
    K: Into<Value> + Eq + Hash + Clone + Send + Sync + 'static,
    V: FromRow + Send + Sync + 'static,
{
    type Key = K;
    type Row = V;
    type Error = MySqlOperationError;

    fn system(&self) -> &'static str {
        self.system
    }

    fn source(&self) -> &str {
        &self.source
    }

    /// A key too large for any statement under the packet limit fails as
    /// `OperationError::Backend(mysql_async::Error::Other(..))` holding the
    /// [`MySqlBulkError`](super::MySqlBulkError) `RowTooLarge`.
    async fn fetch_rows(&self, keys: &[K]) -> Result<Vec<V>, MySqlOperationError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let limits = *self.limits.get_or_try_init(|| server_limits(&self.pool)).await?;
        let keys: Vec<Value> = keys.iter().cloned().map(Into::into).collect();
        match read_keys(&self.pool, &self.sql, keys, &limits).await {
            Ok(rows) => Ok(rows),
            Err(BulkError::Database(e)) => Err(e),
            Err(other) => Err(MySqlOperationError::Backend(mysql_async::Error::Other(Box::new(other)))),
        }
    }
}
