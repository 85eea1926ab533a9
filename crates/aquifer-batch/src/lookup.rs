//! Batching without a hand-written [`Loader`]: a [`FetchRows`] source (typed rows for a list of keys, built by
//! each backend module from a pool and a table, or from one statement with a list parameter), the two loaders
//! that group its rows by a key read from each row ([`OneToOne`], [`OneToMany`]), and
//! [`preload`](FetchRows::preload), which attaches children to a slice of parents in one statement per chunk of
//! keys.
//!
//! The key is read from the typed row by a function of the caller (`|t: &Track| t.album_id`), not by column
//! name: every driver's row conversion (sqlx's `FromRow`, mysql_async's `FromRow`, rusqlite's `TryFrom<&Row>`,
//! neo4rs's serde) works the same way, and a key that cannot be read is a compile error, not a runtime one.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::hash::Hash;

use crate::batch_loader::{BatchLoader, BatchLoaderBuilder, DEFAULT_MAX_BATCH_SIZE};
use crate::loader::Loader;

/// Keys per statement of [`FetchRows::preload`]: as many as one [`BatchLoader`] batch holds by default.
pub const PRELOAD_CHUNK: usize = DEFAULT_MAX_BATCH_SIZE;

/// Typed rows for a list of keys, in as few statements as the backend's limits allow: the part of a loader
/// that talks to the database. Each backend module builds one from a pool (`aquifer_batch::postgres::PgRows`,
/// `mysql::MySqlRows`, `sqlite::SqliteRows`, `neo4j::Neo4jRows`); statements go through the pool's operation
/// runner, so they are retried, timed and seen by the N+1 detector (as batched statements, which it never
/// reports).
///
/// ```
/// use aquifer_batch::FetchRows;
///
/// /// Rows from memory, for the example: `(album, title)` pairs.
/// struct Tracks(Vec<(u32, &'static str)>);
///
/// impl FetchRows for Tracks {
///     type Key = u32;
///     type Row = (u32, &'static str);
///     type Error = std::io::Error;
///
///     fn system(&self) -> &'static str { "example" }
///     fn source(&self) -> &str { "tracks" }
///
///     async fn fetch_rows(&self, albums: &[u32]) -> Result<Vec<(u32, &'static str)>, std::io::Error> {
///         Ok(self.0.iter().filter(|(a, _)| albums.contains(a)).copied().collect())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tracks = Tracks(vec![(1, "Intro"), (1, "Outro"), (2, "Solo")]);
///
/// // Parents get their children in one statement per chunk of keys.
/// let mut albums = vec![(1_u32, Vec::new()), (2, Vec::new()), (3, Vec::new())];
/// tracks.preload(&mut albums, |a| a.0, |t| t.0, |album, tracks| album.1 = tracks).await?;
/// assert_eq!(albums[0].1.len(), 2);
/// assert!(albums[2].1.is_empty());
///
/// // Or a loader for code that asks one key at a time, concurrently (resolvers).
/// let by_album = tracks.one_to_many(|t| t.0);
/// assert_eq!(by_album.load(2).await?, Some(vec![(2, "Solo")]));
/// # Ok(()) }
/// ```
pub trait FetchRows: Send + Sync + Sized + 'static {
    /// The key asked for.
    type Key: Eq + Hash + Clone + Send + Sync + 'static;
    /// One typed row.
    type Row: Send + Sync + 'static;
    /// The error of a fetch (the adapter's operation error: a failed checkout or the driver's error).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The `db.system.name` of the database, for the loaders' metrics.
    fn system(&self) -> &'static str;

    /// What the rows come from (a table, or `statement`), the loaders' `aquifer.batch.loader` attribute.
    fn source(&self) -> &str;

    /// The rows whose key is one of `keys` (distinct), in any order; keys without rows are simply absent.
    fn fetch_rows(&self, keys: &[Self::Key]) -> impl Future<Output = Result<Vec<Self::Row>, Self::Error>> + Send;

    /// A [`BatchLoader`] whose value for a key is the row `key_of` maps to it (unique keys: a primary key).
    /// If two rows have the same key, the first one the server returned is kept.
    fn one_to_one<F>(self, key_of: F) -> BatchLoader<OneToOne<Self, F>>
    where
        Self::Row: Clone,
        F: Fn(&Self::Row) -> Self::Key + Send + Sync + 'static,
    {
        OneToOne::new(self, key_of).builder().build()
    }

    /// A [`BatchLoader`] whose value for a key is every row `key_of` maps to it (children by their parent's key),
    /// in the server's order; a key without rows loads `None`.
    fn one_to_many<F>(self, key_of: F) -> BatchLoader<OneToMany<Self, F>>
    where
        Self::Row: Clone,
        F: Fn(&Self::Row) -> Self::Key + Send + Sync + 'static,
    {
        OneToMany::new(self, key_of).builder().build()
    }

    /// Attaches to each of `parents` its children: the rows whose `child_key` equals the parent's
    /// `parent_key`, fetched in one statement per [`PRELOAD_CHUNK`] distinct keys (GORM's `Preload`,
    /// SQLAlchemy's `selectinload`). `attach` is called once per parent, in order, with its children in the
    /// server's order (empty when it has none). Parents that share a key get copies of the same children.
    ///
    /// Chunks run one after another on one connection at a time. On error, no parent has been touched.
    fn preload<P, PK, CK, A>(
        &self,
        parents: &mut [P],
        parent_key: PK,
        child_key: CK,
        mut attach: A,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send
    where
        P: Send,
        Self::Row: Clone,
        PK: Fn(&P) -> Self::Key + Send,
        CK: Fn(&Self::Row) -> Self::Key + Send,
        A: FnMut(&mut P, Vec<Self::Row>) + Send,
    {
        async move {
            let wanted: Vec<Self::Key> = parents.iter().map(&parent_key).collect();
            let mut parents_per_key: HashMap<Self::Key, usize> = HashMap::with_capacity(wanted.len());
            let mut keys = Vec::with_capacity(wanted.len());
            for key in &wanted {
                match parents_per_key.entry(key.clone()) {
                    Entry::Occupied(mut e) => *e.get_mut() += 1,
                    Entry::Vacant(e) => {
                        e.insert(1);
                        keys.push(key.clone());
                    }
                }
            }
            let mut children: HashMap<Self::Key, Vec<Self::Row>> = HashMap::with_capacity(keys.len());
            for chunk in keys.chunks(PRELOAD_CHUNK) {
                for row in self.fetch_rows(chunk).await? {
                    children.entry(child_key(&row)).or_default().push(row);
                }
            }
            for (parent, key) in parents.iter_mut().zip(wanted) {
                // The last parent of a key takes the rows; earlier ones get copies.
                let left = parents_per_key.get_mut(&key).expect("every parent's key was counted");
                *left -= 1;
                let rows = if *left == 0 {
                    children.remove(&key).unwrap_or_default()
                } else {
                    children.get(&key).cloned().unwrap_or_default()
                };
                attach(parent, rows);
            }
            Ok(())
        }
    }
}

/// A [`Loader`] of one row per key from a [`FetchRows`] source; see [`FetchRows::one_to_one`].
pub struct OneToOne<R, F> {
    rows: R,
    key_of: F,
}

/// A [`Loader`] of every row per key from a [`FetchRows`] source; see [`FetchRows::one_to_many`].
pub struct OneToMany<R, F> {
    rows: R,
    key_of: F,
}

/// The constructors the two loaders share.
macro_rules! grouping_loader {
    ($ty:ident) => {
        impl<R, F> $ty<R, F>
        where
            R: FetchRows,
            R::Row: Clone,
            F: Fn(&R::Row) -> R::Key + Send + Sync + 'static,
        {
            /// The loader of `rows`, grouped by `key_of`.
            pub fn new(rows: R, key_of: F) -> Self {
                $ty { rows, key_of }
            }

            /// A [`BatchLoader`] builder for this loader, its metrics named after the source and its system,
            /// for settings other than the defaults (`max_batch_size`, `delay`, `cache`).
            pub fn builder(self) -> BatchLoaderBuilder<Self> {
                let (name, system) = (self.rows.source().to_owned(), self.rows.system());
                BatchLoader::builder(self).name(name).system(system)
            }
        }

        impl<R, F> std::fmt::Debug for $ty<R, F>
        where
            R: FetchRows,
        {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("system", &self.rows.system())
                    .field("source", &self.rows.source())
                    .finish_non_exhaustive()
            }
        }
    };
}

grouping_loader!(OneToOne);
grouping_loader!(OneToMany);

impl<R, F> Loader for OneToOne<R, F>
where
    R: FetchRows,
    R::Row: Clone,
    F: Fn(&R::Row) -> R::Key + Send + Sync + 'static,
{
    type Key = R::Key;
    type Value = R::Row;
    type Error = R::Error;

    async fn load(&self, keys: &[R::Key]) -> Result<HashMap<R::Key, R::Row>, R::Error> {
        let mut out = HashMap::with_capacity(keys.len());
        for row in self.rows.fetch_rows(keys).await? {
            out.entry((self.key_of)(&row)).or_insert(row);
        }
        Ok(out)
    }
}

impl<R, F> Loader for OneToMany<R, F>
where
    R: FetchRows,
    R::Row: Clone,
    F: Fn(&R::Row) -> R::Key + Send + Sync + 'static,
{
    type Key = R::Key;
    type Value = Vec<R::Row>;
    type Error = R::Error;

    async fn load(&self, keys: &[R::Key]) -> Result<HashMap<R::Key, Vec<R::Row>>, R::Error> {
        let mut out: HashMap<R::Key, Vec<R::Row>> = HashMap::with_capacity(keys.len());
        for row in self.rows.fetch_rows(keys).await? {
            out.entry((self.key_of)(&row)).or_default().push(row);
        }
        Ok(out)
    }
}
