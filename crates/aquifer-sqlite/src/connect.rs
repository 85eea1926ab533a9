//! Constructors: a started pool (fails at start-up when the database cannot be opened) or a lazy one (opens
//! on first use), from a path or `sqlite:` URL, from a [`SqliteConfig`] or from the environment. Every one
//! returns a [`SqliteStartError`].

use crate::{SqliteConfig, SqlitePool, SqlitePoolBuilder, SqliteStartError};

/// The prefix of the environment variables [`connect_env`] and [`connect_env_lazy`] read.
pub const ENV_PREFIX: &str = "SQLITE";

impl SqliteConfig {
    /// A builder with these settings, to add a meter or a leak hook before
    /// [`connect`](SqlitePoolBuilder::connect).
    pub fn builder(&self) -> SqlitePoolBuilder {
        SqlitePoolBuilder::from_config(self.clone())
    }

    /// Builds the writer and reader pools and waits until their first connections are open (the writer's
    /// first: it creates the file and sets the journal mode), so a missing directory, a file that is not a
    /// database or a read-only location fails here, at once, as [`StartError::Connect`](aquifer_core::StartError::Connect)
    /// with `is_permanent()` and the [`ConnectionError`](crate::ConnectionError) naming the path inside; a lock
    /// another process holds past `busy_timeout` fails after the pool's `fail_fast_after`. Starts the
    /// checkpoint task. Must run in a Tokio runtime.
    ///
    /// Cancel safety: dropping the future drops the pools, which closes them: connects in flight are abandoned
    /// (one already running on the blocking pool finishes there and its connection is closed).
    pub async fn connect(&self) -> Result<SqlitePool, SqliteStartError> {
        SqlitePool::build(self.clone(), Default::default())?.start().await
    }

    /// Builds the writer and reader pools without opening anything: the writer opens (and creates the file) on
    /// first use, and the first reader to open opens a writer connection first, so reads of a database nobody
    /// wrote yet find it created. Must be called within a Tokio runtime.
    pub fn connect_lazy(&self) -> Result<SqlitePool, SqliteStartError> {
        SqlitePool::build(self.clone(), Default::default())
    }
}

/// A started pool with default settings for `path_or_url` (a file path, `:memory:`, a `file:` URI, or
/// `sqlite://path`; see [`SqliteConfig::from_url`]).
///
/// Cancel safety: as for [`SqliteConfig::connect`].
pub async fn connect(path_or_url: &str) -> Result<SqlitePool, SqliteStartError> {
    SqliteConfig::from_url(path_or_url).connect().await
}

/// A lazy pool with default settings for `path_or_url`. Must be called within a Tokio runtime.
pub fn connect_lazy(path_or_url: &str) -> Result<SqlitePool, SqliteStartError> {
    SqliteConfig::from_url(path_or_url).connect_lazy()
}

/// A started pool configured from the `SQLITE_*` variables ([`SqliteConfig::from_env`]: `SQLITE_PATH` or
/// `SQLITE_URL`, `SQLITE_POOL_*`, `SQLITE_JOURNAL_MODE`...). For another prefix:
/// `SqliteConfig::from_env("BOOKS")?.connect()`.
///
/// Cancel safety: as for [`SqliteConfig::connect`].
pub async fn connect_env() -> Result<SqlitePool, SqliteStartError> {
    SqliteConfig::from_env(ENV_PREFIX)?.connect().await
}

/// A lazy pool configured from the `SQLITE_*` variables ([`SqliteConfig::from_env`]). Must be called within a
/// Tokio runtime.
pub fn connect_env_lazy() -> Result<SqlitePool, SqliteStartError> {
    SqliteConfig::from_env(ENV_PREFIX)?.connect_lazy()
}
